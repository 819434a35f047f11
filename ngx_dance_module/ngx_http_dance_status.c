/*
 * ngx_http_dance_status.c -- "dance_status;" in a location: the core's
 * metric set (dance.h, "Metrics") of every worker, in the Prometheus
 * text exposition format, in the style of stub_status (access is the
 * operator's business: allow/deny).
 *
 * The counters live in a small shared zone, one struct dance_metrics
 * per DANCE server: the core adds each decision with relaxed atomics,
 * from whichever worker made it.  Each worker has its own resolver; it
 * adds what its resolver counted to the zone every second (and before
 * answering a scrape itself), so a scrape sees every worker.  Counters
 * survive a reload when the DANCE servers stay the same.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_dance_module.h"


#define NGX_HTTP_DANCE_STATUS_SYNC   1000   /* ms between resolver syncs */
#define NGX_HTTP_DANCE_STATUS_NAME   64     /* server label, bytes */


/* in the zone */

typedef struct {
    ngx_uint_t                   n;
    struct dance_metrics       **metrics;   /* n, per DANCE server */
    u_char                     (*names)[NGX_HTTP_DANCE_STATUS_NAME];
} ngx_http_dance_status_sh_t;


/* per configuration; shm_zone->data */

typedef struct {
    ngx_http_dance_status_sh_t  *sh;
    ngx_uint_t                   n;
    u_char                     (*names)[NGX_HTTP_DANCE_STATUS_NAME];
} ngx_http_dance_status_t;


static ngx_int_t ngx_http_dance_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_dance_status_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_dance_status_sync(ngx_http_dance_main_conf_t *dmcf);
static void ngx_http_dance_status_timer(ngx_event_t *ev);


/* per worker: its resolver's figures already added, the sync timer */

static struct dance_resolver_stats   ngx_http_dance_status_last;
static ngx_event_t                   ngx_http_dance_status_ev;


char *
ngx_http_dance_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t    *clcf;
    ngx_http_dance_main_conf_t  *dmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_dance_status_handler;

    /* the zone is sized in postconfiguration, once the servers are known */
    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dance_module);
    dmcf->status = 1;

    return NGX_CONF_OK;
}


/*
 * postconfiguration, after the DANCE servers are collected: the zone,
 * with a label per server ("server" label only with several servers:
 * the server_name, made unique)
 */

ngx_int_t
ngx_http_dance_status_init(ngx_conf_t *cf, ngx_http_dance_main_conf_t *dmcf)
{
    size_t                       size;
    ngx_str_t                    name = ngx_string("dance_status");
    ngx_uint_t                   i, j, n;
    ngx_http_server_name_t      *sn;
    ngx_http_dance_status_t     *st;
    ngx_http_dance_srv_conf_t  **dscfp;

    if (!dmcf->status) {
        return NGX_OK;
    }

    n = dmcf->servers.nelts ? dmcf->servers.nelts : 1;

    st = ngx_pcalloc(cf->pool, sizeof(ngx_http_dance_status_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    st->n = n;
    st->names = ngx_pcalloc(cf->pool, n * NGX_HTTP_DANCE_STATUS_NAME);
    if (st->names == NULL) {
        return NGX_ERROR;
    }

    dscfp = dmcf->servers.elts;

    for (i = 0; i < dmcf->servers.nelts; i++) {
        sn = dscfp[i]->cscf->server_names.nelts
             ? dscfp[i]->cscf->server_names.elts : NULL;

        if (sn && sn[0].name.len) {
            ngx_snprintf(st->names[i], NGX_HTTP_DANCE_STATUS_NAME - 1,
                         "%V", &sn[0].name);
        } else {
            ngx_snprintf(st->names[i], NGX_HTTP_DANCE_STATUS_NAME - 1,
                         "server%ui", i + 1);
        }

        for (j = 0; j < i; j++) {
            if (ngx_strcmp(st->names[j], st->names[i]) == 0) {
                /* same server_name on another listener */
                ngx_snprintf(st->names[i] + ngx_strlen(st->names[i]),
                             NGX_HTTP_DANCE_STATUS_NAME - 1
                             - ngx_strlen(st->names[i]),
                             "#%ui", i + 1);
                break;
            }
        }
    }

    size = 8 * ngx_pagesize
           + n * (dance_metrics_size() + NGX_HTTP_DANCE_STATUS_NAME + 64);

    dmcf->status_zone = ngx_shared_memory_add(cf, &name, size,
                                              &ngx_http_dance_module);
    if (dmcf->status_zone == NULL) {
        return NGX_ERROR;
    }

    dmcf->status_zone->init = ngx_http_dance_status_zone_init;
    dmcf->status_zone->data = st;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_status_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_dance_status_t  *ost = data;

    ngx_uint_t                   i;
    ngx_slab_pool_t             *shpool;
    ngx_http_dance_status_t     *st;
    ngx_http_dance_status_sh_t  *sh;

    st = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ost && ost->sh && ost->sh->n == st->n) {
        /* reload, same zone size: the counters go on ... */
        st->sh = ost->sh;

        if (ngx_memcmp(st->sh->names, st->names,
                       st->n * NGX_HTTP_DANCE_STATUS_NAME) != 0)
        {
            /* ... unless the servers changed: they start again */
            for (i = 0; i < st->n; i++) {
                (void) dance_metrics_init(st->sh->metrics[i],
                                          dance_metrics_size());
            }

            ngx_memcpy(st->sh->names, st->names,
                       st->n * NGX_HTTP_DANCE_STATUS_NAME);
        }

        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_dance_status_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->n = st->n;
    sh->metrics = ngx_slab_alloc(shpool, st->n * sizeof(void *));
    sh->names = ngx_slab_alloc(shpool, st->n * NGX_HTTP_DANCE_STATUS_NAME);

    if (sh->metrics == NULL || sh->names == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sh->names, st->names, st->n * NGX_HTTP_DANCE_STATUS_NAME);

    for (i = 0; i < st->n; i++) {
        /* slab allocations are aligned well beyond uint64_t */
        sh->metrics[i] = dance_metrics_init(
                             ngx_slab_alloc(shpool, dance_metrics_size()),
                             dance_metrics_size());
        if (sh->metrics[i] == NULL) {
            return NGX_ERROR;
        }
    }

    st->sh = sh;

    return NGX_OK;
}


/* the metrics of DANCE server i, for the core's TLS glue; NULL: none */

struct dance_metrics *
ngx_http_dance_status_metrics(ngx_http_dance_main_conf_t *dmcf, ngx_uint_t i)
{
    ngx_http_dance_status_t  *st;

    if (dmcf->status_zone == NULL) {
        return NULL;
    }

    st = dmcf->status_zone->data;

    return i < st->sh->n ? st->sh->metrics[i] : NULL;
}


/* a worker's resolver is up: its figures go to the zone every second */

void
ngx_http_dance_status_start(ngx_cycle_t *cycle,
    ngx_http_dance_main_conf_t *dmcf)
{
    if (dmcf->status_zone == NULL) {
        return;
    }

    ngx_memzero(&ngx_http_dance_status_last,
                sizeof(struct dance_resolver_stats));

    ngx_http_dance_status_sync(dmcf);

    ngx_http_dance_status_ev.handler = ngx_http_dance_status_timer;
    ngx_http_dance_status_ev.data = dmcf;
    ngx_http_dance_status_ev.log = cycle->log;

    /* never holds a worker that shuts down */
    ngx_http_dance_status_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_dance_status_ev, NGX_HTTP_DANCE_STATUS_SYNC);
}


/* the worker's resolver goes: last figures in, its gauges taken back */

void
ngx_http_dance_status_stop(ngx_http_dance_main_conf_t *dmcf)
{
    if (dmcf->status_zone == NULL) {
        return;
    }

    if (ngx_http_dance_status_ev.timer_set) {
        ngx_del_timer(&ngx_http_dance_status_ev);
    }

    ngx_http_dance_status_sync(dmcf);
    dance_metrics_resolver_sync(ngx_http_dance_status_metrics(dmcf, 0), NULL,
                                &ngx_http_dance_status_last);
}


static void
ngx_http_dance_status_sync(ngx_http_dance_main_conf_t *dmcf)
{
    if (dmcf->resolver == NULL) {
        return;
    }

    /* the resolver figures are summed over the servers: keep them in 0 */
    dance_metrics_resolver_sync(ngx_http_dance_status_metrics(dmcf, 0),
                                dmcf->resolver, &ngx_http_dance_status_last);
}


static void
ngx_http_dance_status_timer(ngx_event_t *ev)
{
    ngx_http_dance_main_conf_t  *dmcf = ev->data;

    ngx_http_dance_status_sync(dmcf);

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_DANCE_STATUS_SYNC);
    }
}


/* the core's line of a decision, the same in every host (README) */

void
ngx_http_dance_status_log(ngx_connection_t *c, struct dance_conn *dc)
{
    u_char  addr[NGX_SOCKADDR_STRLEN + 1];
    char    line[600];

    ngx_cpystrn(addr, c->addr_text.data,
                ngx_min(c->addr_text.len + 1, sizeof(addr)));

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "%s",
                  dance_conn_log_line(dc, (const char *) addr, line,
                                      sizeof(line)));
}


static ngx_int_t
ngx_http_dance_status_handler(ngx_http_request_t *r)
{
    size_t                        len, size;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i;
    ngx_chain_t                   out;
    const char                  **names;
    ngx_http_dance_status_t      *st;
    ngx_http_dance_main_conf_t   *dmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_dance_module);

    if (dmcf->status_zone == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st = dmcf->status_zone->data;

    /* this worker's latest resolver figures; the others' are <= 1 s old */
    ngx_http_dance_status_sync(dmcf);

    names = NULL;

    if (st->sh->n > 1) {
        names = ngx_palloc(r->pool, st->sh->n * sizeof(char *));
        if (names == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (i = 0; i < st->sh->n; i++) {
            names[i] = (const char *) st->sh->names[i];
        }
    }

    /* room for counters that grow meanwhile (other workers) */
    size = dance_metrics_format_prometheus(
               (const struct dance_metrics *const *) st->sh->metrics,
               names, st->sh->n, NULL, 0) + 1024;

    for ( ;; ) {
        b = ngx_create_temp_buf(r->pool, size);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = dance_metrics_format_prometheus(
                  (const struct dance_metrics *const *) st->sh->metrics,
                  names, st->sh->n, (char *) b->pos, size);

        if (len < size) {
            break;
        }

        size = len + 1024;
    }

    b->last = b->pos + len;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
