
/*
 * ngx_http_dance_cache.c -- TLSA answers shared by all workers.
 *
 * "dance_cache shared:NAME:SIZE" keeps serialized core answers
 * (dance_answer_serialize) in a slab zone, keyed by the client name.  The
 * zone is the second tier of each worker's resolver (struct
 * dance_cache_tier): the core asks it on a miss of the worker's own cache
 * before any query and fills it after every fresh answer, so one name is
 * queried once per TTL, not once per worker.
 *
 * Trust: the zone carries the digest of the trust configuration
 * (dance_resolver_cfg_digest: anchors' content, trust_ad, forwarders,
 * TTL caps) of the configuration that last set it up.  A reload with a
 * different one empties the zone, and workers of the old configuration
 * (still finishing their connections) neither read nor write it any
 * more: nothing validated under a removed anchor is served again.
 *
 * Expiry is on CLOCK_MONOTONIC, as in the core: a wall clock stepped back
 * must not keep a revoked TLSA set alive.  That clock counts from boot
 * and is the same for every process of the machine, so the master and
 * all workers, old and new, agree on it.  The zone lives as long as the
 * master: a reload keeps it (same clock), a restart or a binary upgrade
 * starts with an empty one, so no deadline from another boot is ever
 * read.  (CLOCK_MONOTONIC stops while the machine is suspended: an entry
 * then outlives its TTL by the suspended time, as in each worker's own
 * cache.)
 *
 * Size: an answer bigger than an eighth of the zone is not stored, and
 * storing one evicts at most NGX_HTTP_DANCE_CACHE_EVICT of the least
 * recently used entries: one huge TLSA set cannot empty the zone.
 */


#include "ngx_http_dance_module.h"


#define NGX_HTTP_DANCE_CACHE_EVICT  16


typedef struct {
    ngx_str_node_t               node;      /* key: the client name */
    ngx_queue_t                  queue;     /* least recently used last */
    uint64_t                     expire;    /* CLOCK_MONOTONIC, ms */
    size_t                       len;       /* serialized answer */
    u_char                       data[1];   /* name, then answer */
} ngx_http_dance_cache_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;
    u_char                       trust[DANCE_DIGEST_LEN];
} ngx_http_dance_cache_sh_t;


/* per configuration; shm_zone->data */

typedef struct {
    ngx_http_dance_cache_sh_t   *sh;
    ngx_slab_pool_t             *shpool;
    ngx_shm_zone_t              *shm_zone;
    u_char                       trust[DANCE_DIGEST_LEN];
} ngx_http_dance_cache_t;


static ngx_int_t ngx_http_dance_cache_init(ngx_shm_zone_t *shm_zone,
    void *data);
static struct dance_answer *ngx_http_dance_cache_get(void *arg,
    const char *name);
static void ngx_http_dance_cache_put(void *arg, const struct dance_answer *a);
static void ngx_http_dance_cache_flush(ngx_http_dance_cache_t *cache);
static void ngx_http_dance_cache_free_node(ngx_http_dance_cache_t *cache,
    ngx_http_dance_cache_node_t *cn);
static uint64_t ngx_http_dance_cache_now(void);


char *
ngx_http_dance_cache_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_shm_zone_t **zone)
{
    u_char                  *p;
    ssize_t                  size;
    ngx_str_t                name, s;
    ngx_http_dance_cache_t  *cache;

    if (ngx_strcmp(value->data, "off") == 0) {
        *zone = NULL;
        return NGX_CONF_OK;
    }

    if (value->len <= sizeof("shared:") - 1
        || ngx_strncmp(value->data, "shared:", sizeof("shared:") - 1) != 0)
    {
        goto invalid;
    }

    name.data = value->data + sizeof("shared:") - 1;

    p = (u_char *) ngx_strchr(name.data, ':');
    if (p == NULL) {
        goto invalid;
    }

    name.len = p - name.data;

    if (name.len == 0) {
        goto invalid;
    }

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        goto invalid;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "DANCE cache \"%V\" is too small", value);
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_dance_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    *zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_dance_module);
    if (*zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if ((*zone)->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "DANCE cache \"%V\" is already declared", &name);
        return NGX_CONF_ERROR;
    }

    cache->shm_zone = *zone;

    (*zone)->init = ngx_http_dance_cache_init;
    (*zone)->data = cache;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid DANCE cache \"%V\", "
                       "expected \"off\" or \"shared:NAME:SIZE\"", value);

    return NGX_CONF_ERROR;
}


/*
 * The zone becomes the second tier of the resolvers made from rc, for
 * the trust configuration rc describes (rc is complete: the digest reads
 * the trust anchor files now, in the master, at each reload).
 */

ngx_int_t
ngx_http_dance_cache_tier(ngx_conf_t *cf, ngx_shm_zone_t *zone,
    struct dance_resolver_cfg *rc)
{
    struct dance_error       err;
    ngx_http_dance_cache_t  *cache;

    cache = zone->data;

    if (dance_resolver_cfg_digest(rc, cache->trust, &err) != DANCE_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "DANCE cache \"%V\": %s",
                           &zone->shm.name, err.reason);
        return NGX_ERROR;
    }

    rc->tier.get = ngx_http_dance_cache_get;
    rc->tier.put = ngx_http_dance_cache_put;
    rc->tier.arg = cache;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_cache_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_dance_cache_t  *ocache = data;

    size_t                      len;
    ngx_slab_pool_t            *shpool;
    ngx_http_dance_cache_t     *cache;
    ngx_http_dance_cache_sh_t  *sh;

    cache = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ocache || shm_zone->shm.exists) {
        /* reload: the zone is kept, unless the trust changed */

        cache->sh = ocache ? ocache->sh : shpool->data;
        cache->shpool = shpool;

        ngx_shmtx_lock(&shpool->mutex);

        if (ngx_memcmp(cache->sh->trust, cache->trust, DANCE_DIGEST_LEN)
            != 0)
        {
            ngx_http_dance_cache_flush(cache);
            ngx_memcpy(cache->sh->trust, cache->trust, DANCE_DIGEST_LEN);

            ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                          "DANCE cache \"%V\" emptied: the trust "
                          "configuration changed", &shm_zone->shm.name);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_dance_cache_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    cache->sh = sh;
    cache->shpool = shpool;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->queue);
    ngx_memcpy(sh->trust, cache->trust, DANCE_DIGEST_LEN);

    len = sizeof(" in DANCE cache \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in DANCE cache \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts the oldest answers, it is not an error */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/* the core's resolver: a miss in the worker's own cache */

static struct dance_answer *
ngx_http_dance_cache_get(void *arg, const char *name)
{
    ngx_http_dance_cache_t  *cache = arg;

    uint64_t                      now;
    uint32_t                      hash;
    ngx_str_t                     key;
    struct dance_answer          *a;
    ngx_http_dance_cache_node_t  *cn;

    key.data = (u_char *) name;
    key.len = ngx_strlen(name);
    hash = ngx_crc32_short(key.data, key.len);
    now = ngx_http_dance_cache_now();
    a = NULL;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* a worker of an older trust configuration finds nothing */

    if (ngx_memcmp(cache->sh->trust, cache->trust, DANCE_DIGEST_LEN) != 0) {
        goto done;
    }

    cn = (ngx_http_dance_cache_node_t *)
             ngx_str_rbtree_lookup(&cache->sh->rbtree, &key, hash);

    if (cn == NULL) {
        goto done;
    }

    /* at least a second left: the core's TTL is in seconds */

    if (cn->expire < now + 1000) {
        ngx_http_dance_cache_free_node(cache, cn);
        goto done;
    }

    a = dance_answer_deserialize(cn->data + key.len, cn->len);

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    if (a != NULL) {
        /* the rest of the TTL, for the worker's own cache */
        dance_answer_set_ttl(a, (uint32_t) ((cn->expire - now) / 1000));
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "dance: shared cache %s for \"%s\"",
                   a ? "hit" : "miss", name);

    return a;
}


/* the core's resolver: a fresh answer, to be kept for its TTL */

static void
ngx_http_dance_cache_put(void *arg, const struct dance_answer *a)
{
    ngx_http_dance_cache_t  *cache = arg;

    size_t                        len, nlen, size;
    u_char                       *buf;
    uint32_t                      hash;
    ngx_str_t                     key;
    ngx_uint_t                    evicted;
    ngx_queue_t                  *q;
    ngx_http_dance_cache_node_t  *cn;

    len = dance_answer_serialize_size(a);
    nlen = ngx_strlen(dance_answer_name(a));
    size = offsetof(ngx_http_dance_cache_node_t, data) + nlen + len;

    if (len == 0 || size > cache->shm_zone->shm.size / 8) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "dance: TLSA answer for \"%s\" (%uz octets) "
                      "too large for DANCE cache \"%V\", not shared",
                      dance_answer_name(a), size, &cache->shm_zone->shm.name);
        return;
    }

    buf = ngx_alloc(len, ngx_cycle->log);
    if (buf == NULL) {
        return;
    }

    if (dance_answer_serialize(a, buf, len) != len) {
        ngx_free(buf);
        return;
    }

    key.data = (u_char *) dance_answer_name(a);
    key.len = nlen;
    hash = ngx_crc32_short(key.data, key.len);
    cn = NULL;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (ngx_memcmp(cache->sh->trust, cache->trust, DANCE_DIGEST_LEN) != 0) {
        goto done;
    }

    cn = (ngx_http_dance_cache_node_t *)
             ngx_str_rbtree_lookup(&cache->sh->rbtree, &key, hash);

    if (cn != NULL) {
        ngx_http_dance_cache_free_node(cache, cn);
    }

    for (evicted = 0; /* void */; evicted++) {
        cn = ngx_slab_alloc_locked(cache->shpool, size);

        if (cn != NULL
            || evicted == NGX_HTTP_DANCE_CACHE_EVICT
            || ngx_queue_empty(&cache->sh->queue))
        {
            break;
        }

        q = ngx_queue_last(&cache->sh->queue);
        ngx_http_dance_cache_free_node(cache,
                    ngx_queue_data(q, ngx_http_dance_cache_node_t, queue));
    }

    if (cn != NULL) {
        ngx_memcpy(cn->data, dance_answer_name(a), nlen);
        ngx_memcpy(cn->data + nlen, buf, len);

        cn->node.node.key = hash;
        cn->node.str.data = cn->data;
        cn->node.str.len = nlen;
        cn->len = len;
        cn->expire = ngx_http_dance_cache_now() + (uint64_t) dance_answer_ttl(a) * 1000;

        ngx_rbtree_insert(&cache->sh->rbtree, &cn->node.node);
        ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_free(buf);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "dance: shared cache %s \"%s\" %s ttl:%uD",
                   cn ? "stored" : "could not store", dance_answer_name(a),
                   dance_dns_status_str(dance_answer_status(a)), dance_answer_ttl(a));
}


static void
ngx_http_dance_cache_flush(ngx_http_dance_cache_t *cache)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&cache->sh->queue)) {
        q = ngx_queue_last(&cache->sh->queue);
        ngx_http_dance_cache_free_node(cache,
                    ngx_queue_data(q, ngx_http_dance_cache_node_t, queue));
    }
}


static void
ngx_http_dance_cache_free_node(ngx_http_dance_cache_t *cache,
    ngx_http_dance_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node.node);
    ngx_slab_free_locked(cache->shpool, cn);
}


/* ms on CLOCK_MONOTONIC, the core's clock (see the top) */

static uint64_t
ngx_http_dance_cache_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/* the directives of both cache tiers: the worker's and the shared one */

char *
ngx_http_dance_worker_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (dmcf->worker_cache != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        dmcf->worker_cache = 0;
        return NGX_CONF_OK;
    }

    /* the core counts entries in an unsigned int */

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0 || n > NGX_MAX_INT32_VALUE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of entries \"%V\", expected "
                           "1 to %ui or \"off\"", &value[1],
                           (ngx_uint_t) NGX_MAX_INT32_VALUE);
        return NGX_CONF_ERROR;
    }

    dmcf->worker_cache = n;

    return NGX_CONF_OK;
}

char *
ngx_http_dance_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    ngx_str_t  *value;

    if (dmcf->shm_set) {
        return "is duplicate";
    }

    dmcf->shm_set = 1;
    value = cf->args->elts;

    return ngx_http_dance_cache_conf(cf, &value[1], &dmcf->shm_zone);
}

/* dance_cache_ttl [min=T] [max=T] [negative=T] [failure=T]; */

char *
ngx_http_dance_cache_ttl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    time_t      *t;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "min=", 4) == 0) {
            t = &dmcf->min_ttl;
            s.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "max=", 4) == 0) {
            t = &dmcf->max_ttl;
            s.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "negative=", 9) == 0) {
            t = &dmcf->neg_ttl;
            s.data = value[i].data + 9;

        } else if (ngx_strncmp(value[i].data, "failure=", 8) == 0) {
            t = &dmcf->fail_ttl;
            s.data = value[i].data + 8;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s.len = value[i].data + value[i].len - s.data;

        *t = ngx_parse_time(&s, 1);
        if (*t == (time_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (dmcf->min_ttl != NGX_CONF_UNSET && dmcf->max_ttl != NGX_CONF_UNSET
        && dmcf->min_ttl > dmcf->max_ttl)
    {
        return "has min= above max=";
    }

    return NGX_CONF_OK;
}
