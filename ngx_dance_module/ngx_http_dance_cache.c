
/*
 * ngx_http_dance_cache.c -- TLSA answers shared by all workers.
 *
 * "dance_cache shared:NAME:SIZE" keeps serialized core answers
 * (dance_answer_serialize) in a slab zone, keyed by the client name,
 * with the expiry the core computed from the DNS TTL.  A worker looks
 * here before asking its own resolver and stores what it resolved, so
 * one name is queried once per TTL, not once per worker.
 */


#include "ngx_http_dance_module.h"


typedef struct {
    ngx_str_node_t               node;      /* key: the client name */
    ngx_queue_t                  queue;     /* least recently used last */
    time_t                       expire;
    size_t                       len;       /* serialized answer */
    u_char                       data[1];   /* name, then answer */
} ngx_http_dance_cache_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;
} ngx_http_dance_cache_sh_t;


static ngx_int_t ngx_http_dance_cache_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_dance_cache_free_node(ngx_slab_pool_t *shpool,
    ngx_http_dance_cache_sh_t *sh, ngx_http_dance_cache_node_t *cn);


char *
ngx_http_dance_cache_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_shm_zone_t **zone)
{
    u_char     *p;
    ssize_t     size;
    ngx_str_t   name, s;

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

    *zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_dance_module);
    if (*zone == NULL) {
        return NGX_CONF_ERROR;
    }

    (*zone)->init = ngx_http_dance_cache_init;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid DANCE cache \"%V\", "
                       "expected \"off\" or \"shared:NAME:SIZE\"", value);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_dance_cache_init(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                      len;
    ngx_slab_pool_t            *shpool;
    ngx_http_dance_cache_sh_t  *sh;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_dance_cache_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    shm_zone->data = sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->queue);

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


struct dance_answer *
ngx_http_dance_cache_get(ngx_shm_zone_t *zone, const char *name,
    ngx_log_t *log)
{
    time_t                        now;
    uint32_t                      hash;
    ngx_str_t                     key;
    ngx_slab_pool_t              *shpool;
    struct dance_answer          *a;
    ngx_http_dance_cache_sh_t    *sh;
    ngx_http_dance_cache_node_t  *cn;

    sh = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    key.data = (u_char *) name;
    key.len = ngx_strlen(name);
    hash = ngx_crc32_short(key.data, key.len);
    now = ngx_time();
    a = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    cn = (ngx_http_dance_cache_node_t *)
             ngx_str_rbtree_lookup(&sh->rbtree, &key, hash);

    if (cn != NULL) {

        if (cn->expire > now) {
            a = dance_answer_deserialize(cn->data + key.len, cn->len);

            ngx_queue_remove(&cn->queue);
            ngx_queue_insert_head(&sh->queue, &cn->queue);

            if (a != NULL) {
                /* the rest of the TTL, for the worker's own cache */
                a->ttl = (uint32_t) (cn->expire - now);
            }

        } else {
            ngx_http_dance_cache_free_node(shpool, sh, cn);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "dance: shared cache %s for \"%s\"",
                   a ? "hit" : "miss", name);

    return a;
}


void
ngx_http_dance_cache_put(ngx_shm_zone_t *zone, const struct dance_answer *a,
    ngx_log_t *log)
{
    size_t                        len, nlen;
    u_char                       *buf;
    uint32_t                      hash;
    ngx_str_t                     key;
    ngx_queue_t                  *q;
    ngx_slab_pool_t              *shpool;
    ngx_http_dance_cache_sh_t    *sh;
    ngx_http_dance_cache_node_t  *cn;

    if (a->ttl == 0) {
        return;
    }

    len = dance_answer_serialize_size(a);
    if (len == 0) {
        return;
    }

    buf = ngx_alloc(len, log);
    if (buf == NULL) {
        return;
    }

    if (dance_answer_serialize(a, buf, len) != len) {
        ngx_free(buf);
        return;
    }

    sh = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    nlen = ngx_strlen(a->name);
    key.data = (u_char *) a->name;
    key.len = nlen;
    hash = ngx_crc32_short(key.data, key.len);

    ngx_shmtx_lock(&shpool->mutex);

    cn = (ngx_http_dance_cache_node_t *)
             ngx_str_rbtree_lookup(&sh->rbtree, &key, hash);

    if (cn != NULL) {
        ngx_http_dance_cache_free_node(shpool, sh, cn);
    }

    for ( ;; ) {
        cn = ngx_slab_alloc_locked(shpool,
                         offsetof(ngx_http_dance_cache_node_t, data)
                         + nlen + len);
        if (cn != NULL || ngx_queue_empty(&sh->queue)) {
            break;
        }

        q = ngx_queue_last(&sh->queue);
        ngx_http_dance_cache_free_node(shpool, sh,
                    ngx_queue_data(q, ngx_http_dance_cache_node_t, queue));
    }

    if (cn != NULL) {
        ngx_memcpy(cn->data, a->name, nlen);
        ngx_memcpy(cn->data + nlen, buf, len);

        cn->node.node.key = hash;
        cn->node.str.data = cn->data;
        cn->node.str.len = nlen;
        cn->len = len;
        cn->expire = ngx_time() + a->ttl;

        ngx_rbtree_insert(&sh->rbtree, &cn->node.node);
        ngx_queue_insert_head(&sh->queue, &cn->queue);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_free(buf);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                   "dance: shared cache %s \"%s\" %s ttl:%uD",
                   cn ? "stored" : "could not store", a->name,
                   dance_dns_status_str(a->status), a->ttl);
}


static void
ngx_http_dance_cache_free_node(ngx_slab_pool_t *shpool,
    ngx_http_dance_cache_sh_t *sh, ngx_http_dance_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&sh->rbtree, &cn->node.node);
    ngx_slab_free_locked(shpool, cn);
}
