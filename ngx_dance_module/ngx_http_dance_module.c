
/*
 * ngx_http_dance_module.c -- DANE client authentication (DANCE,
 * draft-ietf-dance-client-auth) for nginx.
 *
 * A TLS 1.3 client names itself in the dane_clientid extension of its
 * Certificate message; the name is checked against "dance_allow", the
 * TLSA RRset at that name is looked up with DNSSEC validation, and the
 * client certificate must match it.  All of that is done by the DANCE
 * core (libdance, dance.h); this module is the nginx glue:
 *
 *   - configuration, and the core's TLS glue attached to the SSL_CTX of
 *     every server with "dance on|optional", by each worker;
 *   - one core resolver per worker in event mode: its descriptor and a
 *     timer live in nginx's event loop;
 *   - on a cache hit the core arms OpenSSL's DANE verifier inside the
 *     handshake; on a miss the lookup starts in the handshake (from our
 *     verify callback; the core asks the shared cache first) and requests
 *     wait in the post-read phase until the answer is in;
 *   - the verdict is kept per connection (in the SSL), so HTTP/2 streams
 *     and keepalive requests share it;
 *   - $dance_client_id, $dance_status, $dance_usage, and the identity
 *     header: client copies are always removed.
 */


#include "ngx_http_dance_module.h"


#define NGX_HTTP_DANCE_OFF        0
#define NGX_HTTP_DANCE_OPTIONAL   1
#define NGX_HTTP_DANCE_ON         2

#define NGX_HTTP_DANCE_LEGACY_OFF  0
#define NGX_HTTP_DANCE_LEGACY_SAN  1

/* per connection verdict */
#define NGX_HTTP_DANCE_UNKNOWN    0
#define NGX_HTTP_DANCE_PENDING    1
#define NGX_HTTP_DANCE_NONE       2
#define NGX_HTTP_DANCE_SUCCESS    3
#define NGX_HTTP_DANCE_FAILED     4


typedef struct ngx_http_dance_main_conf_s  ngx_http_dance_main_conf_t;


typedef struct {
    ngx_uint_t                   mode;
    ngx_uint_t                   legacy;
    ngx_str_t                    ca_file;
    ngx_str_t                    header;
    ngx_str_t                    header_lc;

    struct dance_policy         *policy;

    /* set in postconfiguration for servers with DANCE enabled */
    SSL_CTX                     *ssl_ctx;
    struct dance_matcher        *matcher;
    ngx_http_dance_main_conf_t  *dmcf;
    ngx_http_core_srv_conf_t    *cscf;
    void                       (*info_callback)(const SSL *ssl, int where,
                                                int ret);

    /* per worker, from init_process */
    struct dance_tls_server_cfg  tls_cfg;
    struct dance_tls_server     *tls;
} ngx_http_dance_srv_conf_t;


struct ngx_http_dance_main_conf_s {
    ngx_array_t                 *trust_anchors;   /* of char * */
    ngx_flag_t                   trust_ad;
    ngx_array_t                 *forwarders;      /* of char * */
    ngx_flag_t                   forward_tls;
    ngx_str_t                    forward_tls_ca;
    ngx_str_t                    unbound_conf;
    ngx_msec_t                   timeout;
    ngx_uint_t                   max_pending;
    ngx_uint_t                   worker_cache;
    time_t                       min_ttl;
    time_t                       max_ttl;
    time_t                       neg_ttl;
    time_t                       fail_ttl;
    ngx_uint_t                   ext_type;
    ngx_shm_zone_t              *shm_zone;
    ngx_uint_t                   shm_set;         /* unsigned shm_set:1; */

    ngx_array_t                  servers;   /* ngx_http_dance_srv_conf_t * */
    struct dance_resolver_cfg    resolver_cfg;

    /* per worker */
    struct dance_resolver       *resolver;
    ngx_connection_t            *connection;
    ngx_event_t                  timer;
};


/* per connection, shared by all requests of it (HTTP/2 streams too) */

typedef struct {
    ngx_uint_t                   state;
    int                          usage;
    u_char                       name[DANCE_NAME_MAX + 1];
    u_char                       reason[256];

    ngx_queue_t                  waiting;     /* parked requests */
    ngx_connection_t            *connection;
    ngx_http_dance_srv_conf_t   *dscf;

    /* legacy clients (no dane_clientid): name from the SAN */
    struct dance_lookup         *lookup;
    struct dance_answer         *answer;

    unsigned                     legacy_started:1;
    unsigned                     logged:1;
    unsigned                     refused:1;   /* by the core, in handshake */
} ngx_http_dance_conn_t;


typedef struct {
    ngx_queue_t                  queue;
    ngx_http_request_t          *request;
    unsigned                     parked:1;
    unsigned                     cleanup:1;
    unsigned                     header_added:1;
} ngx_http_dance_ctx_t;


static ngx_int_t ngx_http_dance_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_dance_park(ngx_http_request_t *r,
    ngx_http_dance_ctx_t *ctx, ngx_http_dance_conn_t *hc);
static void ngx_http_dance_unpark(void *data);
static void ngx_http_dance_wake(ngx_http_dance_conn_t *hc);
static ngx_int_t ngx_http_dance_strip_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf);
static ngx_int_t ngx_http_dance_add_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf, ngx_http_dance_conn_t *hc);

static ngx_http_dance_conn_t *ngx_http_dance_conn(SSL *ssl,
    ngx_http_dance_srv_conf_t *dscf);
static void ngx_http_dance_conn_cleanup(void *data);
static ngx_uint_t ngx_http_dance_verdict(ngx_http_dance_conn_t *hc,
    SSL *ssl);
static ngx_uint_t ngx_http_dance_legacy(ngx_http_dance_conn_t *hc,
    SSL *ssl);
static void ngx_http_dance_legacy_start(ngx_http_dance_conn_t *hc,
    X509 *cert);
static void ngx_http_dance_legacy_done(void *arg, struct dance_answer *a);
static void ngx_http_dance_set(ngx_http_dance_conn_t *hc, ngx_uint_t state,
    const char *name, int usage, const char *reason);
static void ngx_http_dance_log(ngx_http_dance_conn_t *hc);

static int ngx_http_dance_verify_callback(int ok, X509_STORE_CTX *xs);
static void ngx_http_dance_info_callback(const SSL *ssl, int where, int ret);
static void ngx_http_dance_resolve(SSL *ssl, ngx_http_dance_srv_conf_t *dscf,
    struct dance_conn *dc);
static void ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc,
    void *arg);
static void ngx_http_dance_on_refuse(SSL *ssl, struct dance_conn *dc,
    void *arg);

static void ngx_http_dance_resolver_handler(ngx_event_t *rev);
static void ngx_http_dance_timer_handler(ngx_event_t *ev);
static void ngx_http_dance_timer_update(ngx_http_dance_main_conf_t *dmcf);

static ngx_int_t ngx_http_dance_client_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dance_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_dance_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_http_dance_conn_t *ngx_http_dance_request_conn(
    ngx_http_request_t *r, ngx_uint_t *misdirected);

static ngx_int_t ngx_http_dance_add_variables(ngx_conf_t *cf);
static void *ngx_http_dance_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_dance_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_dance_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_dance_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_dance_allow(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_identity_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_dance_file_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_forwarder(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_cache_ttl(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_ext_type(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_dance_worker_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_dance_cleanup_policy(void *data);
static void ngx_http_dance_cleanup_matcher(void *data);
static ngx_int_t ngx_http_dance_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_dance_init_server(ngx_conf_t *cf,
    ngx_http_dance_main_conf_t *dmcf, ngx_http_core_srv_conf_t *cscf,
    ngx_http_dance_srv_conf_t *dscf);
static ngx_int_t ngx_http_dance_init_process(ngx_cycle_t *cycle);
static void ngx_http_dance_exit_process(ngx_cycle_t *cycle);


/* SSL ex_data index of ngx_http_dance_conn_t, SSL_CTX index of dscf */
static int  ngx_http_dance_conn_index = -1;
static int  ngx_http_dance_ctx_index = -1;


static ngx_conf_enum_t  ngx_http_dance_modes[] = {
    { ngx_string("off"), NGX_HTTP_DANCE_OFF },
    { ngx_string("optional"), NGX_HTTP_DANCE_OPTIONAL },
    { ngx_string("on"), NGX_HTTP_DANCE_ON },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_dance_legacy_modes[] = {
    { ngx_string("off"), NGX_HTTP_DANCE_LEGACY_OFF },
    { ngx_string("san"), NGX_HTTP_DANCE_LEGACY_SAN },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_dance_commands[] = {

    { ngx_string("dance"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_dance_srv_conf_t, mode),
      &ngx_http_dance_modes },

    { ngx_string("dance_allow"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_dance_allow,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_legacy_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_dance_srv_conf_t, legacy),
      &ngx_http_dance_legacy_modes },

    { ngx_string("dance_pkix_ca"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_dance_srv_conf_t, ca_file),
      NULL },

    { ngx_string("dance_identity_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_dance_identity_header,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_trust_anchor"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_dance_file_list,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, trust_anchors),
      NULL },

    { ngx_string("dance_trust_ad"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, trust_ad),
      NULL },

    { ngx_string("dance_forwarder"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_dance_forwarder,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_forward_tls"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, forward_tls),
      NULL },

    { ngx_string("dance_forward_tls_ca"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, forward_tls_ca),
      NULL },

    { ngx_string("dance_unbound_conf"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, unbound_conf),
      NULL },

    { ngx_string("dance_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, timeout),
      NULL },

    { ngx_string("dance_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_dance_main_conf_t, max_pending),
      NULL },

    { ngx_string("dance_worker_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dance_worker_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dance_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_dance_cache_ttl,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dance_extension_type"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dance_ext_type,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dance_module_ctx = {
    ngx_http_dance_add_variables,          /* preconfiguration */
    ngx_http_dance_init,                   /* postconfiguration */

    ngx_http_dance_create_main_conf,       /* create main configuration */
    ngx_http_dance_init_main_conf,         /* init main configuration */

    ngx_http_dance_create_srv_conf,        /* create server configuration */
    ngx_http_dance_merge_srv_conf,         /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_dance_module = {
    NGX_MODULE_V1,
    &ngx_http_dance_module_ctx,            /* module context */
    ngx_http_dance_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_dance_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_dance_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_dance_vars[] = {

    { ngx_string("dance_client_id"), NULL,
      ngx_http_dance_client_id_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dance_status"), NULL,
      ngx_http_dance_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dance_usage"), NULL,
      ngx_http_dance_usage_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* request processing: the post-read phase handler */

static ngx_int_t
ngx_http_dance_handler(ngx_http_request_t *r)
{
    ngx_uint_t                  state, misdirected;
    ngx_http_dance_ctx_t       *ctx;
    ngx_http_dance_conn_t      *hc;
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    ctx = ngx_http_get_module_ctx(r, ngx_http_dance_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_dance_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->request = r;
        ngx_http_set_ctx(r, ctx, ngx_http_dance_module);

        /* whatever the mode: only this module may set the header */

        if (dscf->header.len
            && ngx_http_dance_strip_header(r, dscf) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (dscf->mode == NGX_HTTP_DANCE_OFF) {
        return NGX_DECLINED;
    }

    if (ctx->parked) {
        /* a spurious wake-up, the lookup is still in flight */
        return NGX_DONE;
    }

    hc = ngx_http_dance_request_conn(r, &misdirected);

    if (misdirected) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dance: request for a server other than the TLS "
                      "server name, not authenticated");

        if (dscf->mode == NGX_HTTP_DANCE_ON) {
            return NGX_HTTP_MISDIRECTED_REQUEST;
        }

        return NGX_DECLINED;
    }

    if (hc == NULL) {
        state = NGX_HTTP_DANCE_NONE;

    } else {
        state = hc->state;

        if (state == NGX_HTTP_DANCE_UNKNOWN
            || state == NGX_HTTP_DANCE_PENDING)
        {
            state = ngx_http_dance_verdict(hc, r->connection->ssl->connection);
        }
    }

    switch (state) {

    case NGX_HTTP_DANCE_PENDING:
        return ngx_http_dance_park(r, ctx, hc);

    case NGX_HTTP_DANCE_SUCCESS:

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dance: request from \"%s\", usage %d",
                       hc->name, hc->usage);

        if (dscf->header.len && !ctx->header_added) {
            if (ngx_http_dance_add_header(r, dscf, hc) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->header_added = 1;
        }

        return NGX_DECLINED;

    default: /* NONE, FAILED */

        if (dscf->mode == NGX_HTTP_DANCE_OPTIONAL) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "dance: unauthenticated request passed");
            return NGX_DECLINED;
        }

        if (state == NGX_HTTP_DANCE_FAILED) {
            /* logged with name and reason when decided */
            return NGX_HTTPS_CERT_ERROR;
        }

        if (hc == NULL || !hc->logged) {
            if (hc) {
                hc->logged = 1;
            }

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "dance: client refused: %s",
                          hc ? (char *) hc->reason
                          : dscf->tls ? "no TLS handshake with DANCE"
                          : "DANCE unavailable in this worker (see the "
                            "startup error)");
        }

        if (r->connection->ssl == NULL
            || SSL_get0_peer_certificate(r->connection->ssl->connection)
               == NULL)
        {
            return NGX_HTTPS_NO_CERT;
        }

        return NGX_HTTPS_CERT_ERROR;
    }
}


static ngx_int_t
ngx_http_dance_park(ngx_http_request_t *r, ngx_http_dance_ctx_t *ctx,
    ngx_http_dance_conn_t *hc)
{
    ngx_pool_cleanup_t  *cln;

    if (!ctx->cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_dance_unpark;
        cln->data = ctx;
        ctx->cleanup = 1;
    }

    ngx_queue_insert_tail(&hc->waiting, &ctx->queue);
    ctx->parked = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dance: request waits for the TLSA lookup of \"%s\"",
                   hc->name);

    return NGX_DONE;
}


static void
ngx_http_dance_unpark(void *data)
{
    ngx_http_dance_ctx_t  *ctx = data;

    if (ctx->parked) {
        ngx_queue_remove(&ctx->queue);
        ctx->parked = 0;
    }
}


/*
 * The verdict is in: let every waiting request run its phases again.
 * Posted, not called, so that no request is finalized (and no
 * connection freed) under the resolver's callback.
 */

static void
ngx_http_dance_wake(ngx_http_dance_conn_t *hc)
{
    ngx_queue_t           *q;
    ngx_http_request_t    *r;
    ngx_http_dance_ctx_t  *ctx;

    while (!ngx_queue_empty(&hc->waiting)) {
        q = ngx_queue_head(&hc->waiting);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_dance_ctx_t, queue);
        ctx->parked = 0;
        r = ctx->request;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dance: waking up request");

        ngx_post_event(r->connection->write, &ngx_posted_events);
    }
}


/*
 * ngx_list_t has no delete: the request's header list is rebuilt
 * without the client's copies.  The typed pointers of headers_in keep
 * pointing into the old list, which is fine: the identity header is
 * never one of the known headers (checked at configuration time).
 */

static ngx_int_t
ngx_http_dance_strip_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf)
{
    ngx_uint_t        i, found;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    found = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == dscf->header.len
            && ngx_strncasecmp(h[i].key.data, dscf->header.data,
                               dscf->header.len) == 0)
        {
            found++;
        }
    }

    if (found == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "dance: client sent \"%V\" header (%ui), removed",
                  &dscf->header, found);

    /* iterating needs only "part" and "next" of the old list */

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, 20,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &old.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == dscf->header.len
            && ngx_strncasecmp(h[i].key.data, dscf->header.data,
                               dscf->header.len) == 0)
        {
            continue;
        }

        nh = ngx_list_push(&r->headers_in.headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    return NGX_OK;
}


/*
 * The authenticated name as a request header: forwarded upstream even
 * without proxy_set_header, and what $http_<name> shows.
 */

static ngx_int_t
ngx_http_dance_add_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf, ngx_http_dance_conn_t *hc)
{
    size_t            len;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(hc->name);

    h->key = dscf->header;
    h->lowcase_key = dscf->header_lc.data;
    h->hash = ngx_hash_key(dscf->header_lc.data, dscf->header_lc.len);

    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, hc->name, len);
    h->value.len = len;

    return NGX_OK;
}


/* connection state */

static ngx_http_dance_conn_t *
ngx_http_dance_request_conn(ngx_http_request_t *r, ngx_uint_t *misdirected)
{
    SSL                        *ssl;
    ngx_http_dance_srv_conf_t  *dscf, *hdscf;

    *misdirected = 0;

    if (r->connection->ssl == NULL) {
        return NULL;
    }

    ssl = r->connection->ssl->connection;
    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    /* the server whose SSL_CTX did the handshake (SNI) */
    hdscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
                                ngx_http_dance_ctx_index);

    if (hdscf == NULL) {
        /* no DANCE in that handshake: no certificate was asked for */
        return NULL;
    }

    if (hdscf != dscf) {
        /* verified under another server's allow-list */
        *misdirected = 1;
        return NULL;
    }

    return ngx_http_dance_conn(ssl, dscf);
}


/*
 * The state of the TLS connection (the real one: HTTP/2 streams have
 * fake connections), created on first use from the connection's pool.
 */

static ngx_http_dance_conn_t *
ngx_http_dance_conn(SSL *ssl, ngx_http_dance_srv_conf_t *dscf)
{
    ngx_connection_t       *c;
    ngx_pool_cleanup_t     *cln;
    ngx_http_dance_conn_t  *hc;

    hc = SSL_get_ex_data(ssl, ngx_http_dance_conn_index);
    if (hc) {
        return hc;
    }

    c = ngx_ssl_get_connection(ssl);
    if (c == NULL || dscf == NULL || dscf->tls == NULL) {
        return NULL;
    }

    hc = ngx_pcalloc(c->pool, sizeof(ngx_http_dance_conn_t));
    if (hc == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    if (SSL_set_ex_data(ssl, ngx_http_dance_conn_index, hc) == 0) {
        ngx_ssl_error(NGX_LOG_ALERT, c->log, 0, "SSL_set_ex_data() failed");
        return NULL;
    }

    cln->handler = ngx_http_dance_conn_cleanup;
    cln->data = hc;

    hc->usage = -1;
    hc->connection = c;
    hc->dscf = dscf;
    ngx_queue_init(&hc->waiting);

    return hc;
}


static void
ngx_http_dance_conn_cleanup(void *data)
{
    ngx_http_dance_conn_t  *hc = data;

    if (hc->lookup) {
        dance_lookup_cancel(hc->lookup);
        hc->lookup = NULL;
    }

    if (hc->answer) {
        dance_answer_unref(hc->answer);
        hc->answer = NULL;
    }

    if (hc->connection->ssl && hc->connection->ssl->connection) {
        SSL_set_ex_data(hc->connection->ssl->connection,
                        ngx_http_dance_conn_index, NULL);
    }
}


/*
 * The connection's verdict, decided once: by the core for clients that
 * sent dane_clientid, from the certificate's SAN for legacy clients if
 * configured.  Returns PENDING while a lookup is in flight.
 */

static ngx_uint_t
ngx_http_dance_verdict(ngx_http_dance_conn_t *hc, SSL *ssl)
{
    int                  rc;
    struct dance_conn   *dc;

    dc = dance_conn_get(ssl);

    if (dc == NULL || dc->state == DANCE_CONN_NONE) {
        return ngx_http_dance_legacy(hc, ssl);
    }

    if (dc->state == DANCE_CONN_PENDING) {

        if (dc->lookup == NULL) {
            /* the verify callback did not run: start it now */
            ngx_http_dance_resolve(ssl, hc->dscf, dc);
        }

        if (dc->state == DANCE_CONN_PENDING) {
            ngx_cpystrn(hc->name, (u_char *) dc->name, sizeof(hc->name));
            hc->state = NGX_HTTP_DANCE_PENDING;
            return hc->state;
        }
    }

    rc = dance_conn_verdict(ssl, &dc);

    if (rc == DANCE_OK) {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_SUCCESS, dc->name, dc->usage,
                           "");

    } else {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_FAILED,
                           dc ? dc->name : "", -1,
                           dc ? dc->reason : dance_code_str(rc));
    }

    return hc->state;
}


static ngx_uint_t
ngx_http_dance_legacy(ngx_http_dance_conn_t *hc, SSL *ssl)
{
    X509                       *cert;
    STACK_OF(X509)             *chain;
    ngx_http_dance_srv_conf_t  *dscf;
    struct dance_match_result   res;

    dscf = hc->dscf;

    cert = SSL_get0_peer_certificate(ssl);

    if (dscf->legacy != NGX_HTTP_DANCE_LEGACY_SAN || cert == NULL) {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_NONE, "", -1,
                           cert == NULL ? "no client certificate"
                           : SSL_session_reused(ssl)
                           ? "resumed session, no dane_clientid"
                           : "no dane_clientid");
        return hc->state;
    }

    if (!hc->legacy_started) {
        ngx_http_dance_legacy_start(hc, cert);

        if (hc->state == NGX_HTTP_DANCE_FAILED) {
            return hc->state;
        }
    }

    if (hc->lookup) {
        hc->state = NGX_HTTP_DANCE_PENDING;
        return hc->state;
    }

    if (hc->answer == NULL) {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_FAILED, (char *) hc->name, -1,
                           "TLSA lookup failed");
        return hc->state;
    }

    chain = SSL_get_peer_cert_chain(ssl);

    if (dance_match(dscf->matcher, hc->answer, cert, chain, &res)
        == DANCE_OK)
    {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_SUCCESS, (char *) hc->name,
                           res.usage, "");

    } else {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_FAILED, (char *) hc->name, -1,
                           res.reason);
    }

    return hc->state;
}


/* legacy client: the first SAN dNSName the allow-list accepts */

static void
ngx_http_dance_legacy_start(ngx_http_dance_conn_t *hc, X509 *cert)
{
    int                          done;
    char                         name[DANCE_NAME_MAX + 1];
    ngx_connection_t            *c;
    struct dance_lookup         *l;
    struct dance_error           err;
    ngx_http_dance_main_conf_t  *dmcf;

    hc->legacy_started = 1;
    c = hc->connection;
    dmcf = hc->dscf->dmcf;

    if (dance_cert_san_name(cert, hc->dscf->policy, name, &err) != DANCE_OK) {
        ngx_http_dance_set(hc, NGX_HTTP_DANCE_FAILED, "", -1, err.reason);
        return;
    }

    ngx_cpystrn(hc->name, (u_char *) name, sizeof(hc->name));

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "dance: legacy client, SAN name \"%s\"", name);

    done = 0;
    l = dance_resolver_lookup(dmcf->resolver, name, ngx_http_dance_legacy_done,
                              hc, &done);

    if (!done) {
        hc->lookup = l;

        if (l == NULL) {
            ngx_http_dance_set(hc, NGX_HTTP_DANCE_FAILED, name, -1,
                               "TLSA lookup could not be started");
        }
    }

    ngx_http_dance_timer_update(dmcf);
}


static void
ngx_http_dance_legacy_done(void *arg, struct dance_answer *a)
{
    ngx_http_dance_conn_t  *hc = arg;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, hc->connection->log, 0,
                   "dance: TLSA for \"%s\": %s",
                   a->name, dance_dns_status_str(a->status));

    hc->lookup = NULL;

    dance_answer_ref(a);
    hc->answer = a;

    if (hc->state == NGX_HTTP_DANCE_PENDING) {
        hc->state = NGX_HTTP_DANCE_UNKNOWN;
        ngx_http_dance_wake(hc);
    }
}


static void
ngx_http_dance_set(ngx_http_dance_conn_t *hc, ngx_uint_t state,
    const char *name, int usage, const char *reason)
{
    hc->state = state;
    hc->usage = usage;

    if ((u_char *) name != hc->name) {
        ngx_cpystrn(hc->name, (u_char *) name, sizeof(hc->name));
    }

    ngx_cpystrn(hc->reason, (u_char *) reason, sizeof(hc->reason));

    ngx_http_dance_log(hc);
}


/* every outcome once per connection: failures at info or warn */

static void
ngx_http_dance_log(ngx_http_dance_conn_t *hc)
{
    ngx_log_t   *log;
    ngx_uint_t   level;

    if (hc->logged) {
        return;
    }

    log = hc->connection->log;

    switch (hc->state) {

    case NGX_HTTP_DANCE_SUCCESS:
        hc->logged = 1;
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "dance: client \"%s\" authenticated, usage %d",
                      hc->name, hc->usage);
        break;

    case NGX_HTTP_DANCE_FAILED:
        hc->logged = 1;
        level = (hc->dscf->mode == NGX_HTTP_DANCE_ON) ? NGX_LOG_WARN
                                                      : NGX_LOG_INFO;
        ngx_log_error(level, log, 0, "dance: client \"%s\" %s: %s",
                      hc->name[0] ? (char *) hc->name : "(no name)",
                      hc->dscf->mode == NGX_HTTP_DANCE_ON
                      ? "refused" : "not authenticated",
                      hc->reason);
        break;

    default:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "dance: no DANCE identity: %s", hc->reason);
        break;
    }
}


/* handshake */

/*
 * Our verify callback: the core's opinion first (it fails a DANE
 * mismatch armed from the cache); then, for a name that passed the
 * allow-list but is not in the worker's cache, the lookup starts here,
 * while the handshake goes on.  With "dance on" and no legacy names
 * the core also refuses a TLS 1.3 certificate without dane_clientid.
 * Nothing else fails the handshake: other clients without DANCE are
 * judged per request, as nginx does for "ssl_verify_client optional".
 */

static int
ngx_http_dance_verify_callback(int ok, X509_STORE_CTX *xs)
{
    SSL                        *ssl;
    X509                       *cert;
    ngx_connection_t           *c;
    struct dance_conn          *dc;
    ngx_http_dance_conn_t      *hc;
    ngx_http_dance_srv_conf_t  *dscf;

    ok = dance_tls_verify_step(ok, xs);

    ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    c = ngx_ssl_get_connection(ssl);
    dscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ngx_http_dance_ctx_index);

    if (c == NULL || dscf == NULL || dscf->tls == NULL) {
        return 1;
    }

    dc = dance_conn_get(ssl);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "dance: verify depth:%d ok:%d state:%d",
                   X509_STORE_CTX_get_error_depth(xs), ok,
                   dc ? (int) dc->state : -1);

    if (dc != NULL && dc->state != DANCE_CONN_NONE) {

        if (dc->state == DANCE_CONN_PENDING && dc->lookup == NULL) {
            ngx_http_dance_resolve(ssl, dscf, dc);
        }

        return ok;
    }

    /* no dane_clientid: a legacy client may be named by its SAN */

    if (dscf->legacy == NGX_HTTP_DANCE_LEGACY_SAN
        && X509_STORE_CTX_get_error_depth(xs) == 0)
    {
        hc = ngx_http_dance_conn(ssl, dscf);
        cert = X509_STORE_CTX_get_current_cert(xs);

        if (hc && cert && !hc->legacy_started) {
            ngx_http_dance_legacy_start(hc, cert);
        }
    }

    return 1;
}


/* the worker's cache missed: the core asks the shared cache, then DNS */

static void
ngx_http_dance_resolve(SSL *ssl, ngx_http_dance_srv_conf_t *dscf,
    struct dance_conn *dc)
{
    ngx_connection_t            *c;
    struct dance_error           err;
    ngx_http_dance_main_conf_t  *dmcf;

    c = ngx_ssl_get_connection(ssl);
    dmcf = dscf->dmcf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "dance: resolving TLSA for \"%s\"", dc->name);

    if (dance_conn_resolve(ssl, &err) != DANCE_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "dance: lookup not started: %s", err.reason);
    }

    ngx_http_dance_timer_update(dmcf);
}


/* the core: a lookup started in a handshake is answered */

static void
ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc, void *arg)
{
    ngx_connection_t       *c;
    ngx_http_dance_conn_t  *hc;

    c = ngx_ssl_get_connection(ssl);

    if (c) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "dance: TLSA for \"%s\": %s%s", dc->name,
                       dc->answer ? dance_dns_status_str(dc->answer->status)
                                  : "no answer",
                       dc->answer && dc->answer->from_cache
                       ? " (cached)" : "");
    }

    hc = SSL_get_ex_data(ssl, ngx_http_dance_conn_index);

    if (hc && hc->state == NGX_HTTP_DANCE_PENDING) {
        hc->state = NGX_HTTP_DANCE_UNKNOWN;
        ngx_http_dance_wake(hc);
    }
}


/*
 * The core ends a handshake itself (bad or disallowed name, a mismatch
 * with a cached TLSA set, a failed lookup when required, no
 * dane_clientid under "dance on"): log it once, with name and reason.
 */

static void
ngx_http_dance_on_refuse(SSL *ssl, struct dance_conn *dc, void *arg)
{
    ngx_http_dance_srv_conf_t  *dscf = arg;

    ngx_connection_t       *c;
    ngx_http_dance_conn_t  *hc;

    c = ngx_ssl_get_connection(ssl);
    if (c == NULL) {
        return;
    }

    hc = ngx_http_dance_conn(ssl, dscf);
    if (hc) {
        if (hc->refused) {
            return;
        }

        hc->refused = 1;
        hc->logged = 1;
    }

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "dance: client \"%s\" refused in handshake: %s",
                  dc->name[0] ? dc->name : "(no name)", dc->reason);
}


/*
 * nginx logs handshake errors it does not know ("bad extension",
 * "certificate verify failed") at "crit".  A handshake the core ended
 * is the client's doing and is logged by ngx_http_dance_on_refuse():
 * when its alert goes out, the error is reported as a failed callback,
 * which nginx logs at "info".  nginx's own info callback runs as before.
 */

static void
ngx_http_dance_info_callback(const SSL *ssl, int where, int ret)
{
    ngx_http_dance_conn_t      *hc;
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ngx_http_dance_ctx_index);

    if (dscf && dscf->info_callback) {
        dscf->info_callback(ssl, where, ret);
    }

    if (!(where & SSL_CB_WRITE_ALERT) || (ret >> 8) != SSL3_AL_FATAL) {
        return;
    }

    hc = SSL_get_ex_data(ssl, ngx_http_dance_conn_index);

    if (hc && hc->refused) {
        ERR_clear_error();
        ERR_raise(ERR_LIB_SSL, SSL_R_CALLBACK_FAILED);
    }
}


/* the resolver in the event loop */

static void
ngx_http_dance_resolver_handler(ngx_event_t *rev)
{
    ngx_connection_t            *c;
    ngx_http_dance_main_conf_t  *dmcf;

    c = rev->data;
    dmcf = c->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rev->log, 0, "dance: resolver event");

    dance_resolver_process(dmcf->resolver);

    ngx_http_dance_timer_update(dmcf);

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rev->log, 0,
                      "dance: cannot watch the resolver descriptor");
    }
}


static void
ngx_http_dance_timer_handler(ngx_event_t *ev)
{
    ngx_http_dance_main_conf_t  *dmcf = ev->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "dance: resolver timer");

    dance_resolver_process(dmcf->resolver);

    ngx_http_dance_timer_update(dmcf);
}


/*
 * The timer follows the core's next deadline.  It is not cancelable:
 * a worker shutting down (reload) waits for the lookups that requests
 * are waiting on, they end with an answer or a timeout.
 */

static void
ngx_http_dance_timer_update(ngx_http_dance_main_conf_t *dmcf)
{
    int  ms;

    if (dmcf->resolver == NULL) {
        return;
    }

    ms = dance_resolver_next_timeout(dmcf->resolver);

    if (dmcf->timer.timer_set) {
        ngx_del_timer(&dmcf->timer);
    }

    if (ms >= 0) {
        ngx_add_timer(&dmcf->timer, (ngx_msec_t) (ms ? ms : 1));
    }
}


/* variables */

static ngx_http_dance_conn_t *
ngx_http_dance_var_conn(ngx_http_request_t *r)
{
    ngx_uint_t                  misdirected;
    ngx_http_dance_conn_t      *hc;
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    if (dscf->mode == NGX_HTTP_DANCE_OFF) {
        return NULL;
    }

    hc = ngx_http_dance_request_conn(r, &misdirected);

    if (hc && hc->state == NGX_HTTP_DANCE_UNKNOWN) {
        (void) ngx_http_dance_verdict(hc, r->connection->ssl->connection);
    }

    return hc;
}


static ngx_int_t
ngx_http_dance_client_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_dance_conn_t  *hc;

    hc = ngx_http_dance_var_conn(r);

    if (hc == NULL || hc->state != NGX_HTTP_DANCE_SUCCESS) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = hc->name;
    v->len = ngx_strlen(hc->name);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    size_t                  len;
    u_char                 *p;
    ngx_http_dance_conn_t  *hc;

    hc = ngx_http_dance_var_conn(r);

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    if (hc == NULL) {
        ngx_str_set(v, "NONE");
        return NGX_OK;
    }

    switch (hc->state) {

    case NGX_HTTP_DANCE_SUCCESS:
        ngx_str_set(v, "SUCCESS");
        return NGX_OK;

    case NGX_HTTP_DANCE_PENDING:
        ngx_str_set(v, "PENDING");
        return NGX_OK;

    case NGX_HTTP_DANCE_FAILED:
        len = sizeof("FAILED:") - 1 + ngx_strlen(hc->reason);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "FAILED:%s", hc->reason) - p;
        return NGX_OK;

    default:
        ngx_str_set(v, "NONE");
        return NGX_OK;
    }
}


static ngx_int_t
ngx_http_dance_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                 *p;
    ngx_http_dance_conn_t  *hc;

    hc = ngx_http_dance_var_conn(r);

    if (hc == NULL || hc->state != NGX_HTTP_DANCE_SUCCESS || hc->usage < 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%d", hc->usage) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dance_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* configuration */

static void *
ngx_http_dance_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_dance_main_conf_t  *dmcf;

    dmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dance_main_conf_t));
    if (dmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dmcf->trust_anchors = NULL;
     *     dmcf->forwarders = NULL;
     *     dmcf->forward_tls_ca = { 0, NULL };
     *     dmcf->unbound_conf = { 0, NULL };
     *     dmcf->shm_zone = NULL;
     *     dmcf->resolver = NULL;
     */

    dmcf->trust_ad = NGX_CONF_UNSET;
    dmcf->forward_tls = NGX_CONF_UNSET;
    dmcf->timeout = NGX_CONF_UNSET_MSEC;
    dmcf->max_pending = NGX_CONF_UNSET_UINT;
    dmcf->worker_cache = NGX_CONF_UNSET_UINT;
    dmcf->min_ttl = NGX_CONF_UNSET;
    dmcf->max_ttl = NGX_CONF_UNSET;
    dmcf->neg_ttl = NGX_CONF_UNSET;
    dmcf->fail_ttl = NGX_CONF_UNSET;
    dmcf->ext_type = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&dmcf->servers, cf->pool, 4,
                       sizeof(ngx_http_dance_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return dmcf;
}


static char *
ngx_http_dance_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    struct dance_resolver_cfg  def;

    dance_resolver_cfg_init(&def);

    ngx_conf_init_value(dmcf->trust_ad, 0);
    ngx_conf_init_value(dmcf->forward_tls, 0);
    ngx_conf_init_msec_value(dmcf->timeout, def.timeout_ms);
    ngx_conf_init_uint_value(dmcf->max_pending, def.max_pending);
    ngx_conf_init_uint_value(dmcf->worker_cache, def.cache_size);
    ngx_conf_init_value(dmcf->min_ttl, (time_t) def.min_ttl);
    ngx_conf_init_value(dmcf->max_ttl, (time_t) def.max_ttl);
    ngx_conf_init_value(dmcf->neg_ttl, (time_t) def.neg_ttl);
    ngx_conf_init_value(dmcf->fail_ttl, (time_t) def.fail_ttl);
    ngx_conf_init_uint_value(dmcf->ext_type, DANCE_EXT_TYPE_DEFAULT);

    return NGX_CONF_OK;
}


static void *
ngx_http_dance_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_dance_srv_conf_t));
    if (dscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     dscf->ca_file = { 0, NULL };
     *     dscf->policy = NULL;
     *     dscf->ssl_ctx = NULL;
     *     dscf->matcher = NULL;
     *     dscf->tls = NULL;
     */

    dscf->mode = NGX_CONF_UNSET_UINT;
    dscf->legacy = NGX_CONF_UNSET_UINT;
    dscf->header.len = NGX_CONF_UNSET_SIZE;

    return dscf;
}


static char *
ngx_http_dance_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_dance_srv_conf_t *prev = parent;
    ngx_http_dance_srv_conf_t *conf = child;

    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_HTTP_DANCE_OFF);
    ngx_conf_merge_uint_value(conf->legacy, prev->legacy,
                              NGX_HTTP_DANCE_LEGACY_OFF);
    ngx_conf_merge_str_value(conf->ca_file, prev->ca_file, "");

    if (conf->header.len == NGX_CONF_UNSET_SIZE) {
        if (prev->header.len == NGX_CONF_UNSET_SIZE) {
            ngx_str_null(&conf->header);
            ngx_str_null(&conf->header_lc);

        } else {
            conf->header = prev->header;
            conf->header_lc = prev->header_lc;
        }
    }

    if (conf->policy == NULL) {
        conf->policy = prev->policy;
    }

    return NGX_CONF_OK;
}


/* dance_allow entry ...; checked by the core now, not at the first client */

static char *
ngx_http_dance_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_srv_conf_t  *dscf = conf;

    char                *entry;
    ngx_str_t           *value;
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;
    struct dance_error   err;

    if (dscf->policy == NULL) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        dscf->policy = dance_policy_new();
        if (dscf->policy == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_dance_cleanup_policy;
        cln->data = dscf->policy;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        entry = (char *) ngx_pnalloc(cf->pool, value[i].len + 1);
        if (entry == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn((u_char *) entry, value[i].data, value[i].len + 1);

        if (dance_policy_add(dscf->policy, entry, &err) != DANCE_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid dance_allow entry \"%V\": %s",
                               &value[i], err.reason);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dance_identity_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_srv_conf_t  *dscf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (dscf->header.len != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_null(&dscf->header);
        ngx_str_null(&dscf->header_lc);
        return NGX_CONF_OK;
    }

    for (i = 0; i < value[1].len; i++) {
        if (!((value[1].data[i] >= 'a' && value[1].data[i] <= 'z')
              || (value[1].data[i] >= 'A' && value[1].data[i] <= 'Z')
              || (value[1].data[i] >= '0' && value[1].data[i] <= '9')
              || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\": only letters, "
                               "digits and \"-\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "has an empty header name";
    }

    dscf->header = value[1];

    dscf->header_lc.len = value[1].len;
    dscf->header_lc.data = ngx_pnalloc(cf->pool, value[1].len);
    if (dscf->header_lc.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(dscf->header_lc.data, value[1].data, value[1].len);

    return NGX_CONF_OK;
}


/* a list of file names, kept as NUL-terminated strings for the core */

static char *
ngx_http_dance_file_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char             **s;
    ngx_str_t         *value;
    ngx_uint_t         i;
    ngx_array_t      **a;
    ngx_file_info_t    fi;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a == NULL) {
        *a = ngx_array_create(cf->pool, 2, sizeof(char *));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_conf_full_name(cf->cycle, &value[i], 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (ngx_file_info(value[i].data, &fi) == NGX_FILE_ERROR
            && ngx_errno != NGX_EACCES)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               ngx_file_info_n " \"%V\" failed", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = (char *) value[i].data;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dance_forwarder(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    char        **s;
    ngx_str_t    *value;
    ngx_uint_t    i;

    if (dmcf->forwarders == NULL) {
        dmcf->forwarders = ngx_array_create(cf->pool, 2, sizeof(char *));
        if (dmcf->forwarders == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = ngx_array_push(dmcf->forwarders);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = (char *) value[i].data;
    }

    return NGX_CONF_OK;
}


static char *
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

static char *
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


static char *
ngx_http_dance_ext_type(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    char        *end;
    u_char       buf[16];
    ngx_str_t   *value;
    unsigned long  n;

    if (dmcf->ext_type != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len >= sizeof(buf)) {
        goto invalid;
    }

    ngx_cpystrn(buf, value[1].data, value[1].len + 1);

    n = strtoul((char *) buf, &end, 0);

    if (*end != '\0' || n == 0 || n > 0xffff) {
        goto invalid;
    }

    if (n == 0xff01 || SSL_extension_supported((unsigned int) n)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "extension type \"%V\" is handled by OpenSSL",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    dmcf->ext_type = n;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid extension type \"%V\", expected a number "
                       "from 1 to 0xffff", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
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

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of entries \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    dmcf->worker_cache = n;

    return NGX_CONF_OK;
}


static void
ngx_http_dance_cleanup_policy(void *data)
{
    dance_policy_free(data);
}


static void
ngx_http_dance_cleanup_matcher(void *data)
{
    dance_matcher_free(data);
}


/*
 * postconfiguration: the phase handler, and for each server with DANCE
 * the checks and the SSL_CTX settings that must be in place before the
 * workers fork.  The core's TLS glue needs the worker's resolver, so it
 * is attached by each worker (ngx_http_dance_init_process()).
 */

static ngx_int_t
ngx_http_dance_init(ngx_conf_t *cf)
{
    char                        **p;
    ngx_uint_t                    s;
    ngx_http_handler_pt          *h;
    struct dance_error            err;
    struct dance_resolver        *res;
    ngx_http_core_srv_conf_t    **cscfp;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_dance_srv_conf_t    *dscf;
    ngx_http_dance_main_conf_t   *dmcf;
    struct dance_resolver_cfg    *rc;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dance_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dance_handler;

    if (ngx_http_dance_conn_index == -1) {
        ngx_http_dance_conn_index = SSL_get_ex_new_index(0, NULL, NULL,
                                                         NULL, NULL);
        ngx_http_dance_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL,
                                                            NULL, NULL);

        if (ngx_http_dance_conn_index == -1
            || ngx_http_dance_ctx_index == -1)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_get_ex_new_index() failed");
            return NGX_ERROR;
        }
    }

    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        dscf = cscfp[s]->ctx->srv_conf[ngx_http_dance_module.ctx_index];

        if (ngx_http_dance_init_server(cf, dmcf, cscfp[s], dscf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (dmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    /* the resolver configuration, checked by creating one here */

    rc = &dmcf->resolver_cfg;
    dance_resolver_cfg_init(rc);

    rc->mode = DANCE_RESOLVER_EVENT;
    rc->trust_ad = dmcf->trust_ad;
    rc->forward_tls = dmcf->forward_tls;
    rc->timeout_ms = dmcf->timeout;
    rc->max_pending = dmcf->max_pending;
    rc->cache_size = dmcf->worker_cache;
    rc->min_ttl = (uint32_t) dmcf->min_ttl;
    rc->max_ttl = (uint32_t) dmcf->max_ttl;
    rc->neg_ttl = (uint32_t) dmcf->neg_ttl;
    rc->fail_ttl = (uint32_t) dmcf->fail_ttl;

    if (dmcf->trust_anchors == NULL && !dmcf->trust_ad) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "DANCE needs \"dance_trust_anchor\" (local DNSSEC "
                      "validation) or \"dance_trust_ad on\"");
        return NGX_ERROR;
    }

    if (dmcf->trust_anchors) {
        p = ngx_array_push(dmcf->trust_anchors);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *p = NULL;
        rc->trust_anchor_files =
                             (const char *const *) dmcf->trust_anchors->elts;
    }

    if (dmcf->forwarders) {
        p = ngx_array_push(dmcf->forwarders);
        if (p == NULL) {
            return NGX_ERROR;
        }

        *p = NULL;
        rc->forwarders = (const char *const *) dmcf->forwarders->elts;
    }

    if (dmcf->forward_tls_ca.len) {
        rc->tls_ca_file = (const char *) dmcf->forward_tls_ca.data;
    }

    if (dmcf->unbound_conf.len) {
        rc->unbound_conf = (const char *) dmcf->unbound_conf.data;
    }

    /* the shared cache is the core's second tier, for this trust */

    if (dmcf->shm_zone
        && ngx_http_dance_cache_tier(cf, dmcf->shm_zone, rc) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * a bad trust anchor or unbound_conf stops "nginx -t" and the first
     * start; not every reload: libunbound's configuration parser keeps
     * some 16K per context it reads, the master would grow each time
     * (workers report a broken configuration and fail closed)
     */

    if (!ngx_test_config && cf->cycle->old_cycle->conf_ctx != NULL) {
        return NGX_OK;
    }

    res = dance_resolver_new(rc, &err);
    if (res == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid DANCE resolver configuration: %s",
                      err.reason);
        return NGX_ERROR;
    }

    dance_resolver_free(res);

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_init_server(ngx_conf_t *cf, ngx_http_dance_main_conf_t *dmcf,
    ngx_http_core_srv_conf_t *cscf, ngx_http_dance_srv_conf_t *dscf)
{
    u_char                      *ca;
    ngx_uint_t                   hash;
    ngx_pool_cleanup_t          *cln;
    ngx_http_ssl_srv_conf_t     *sscf;
    ngx_http_dance_srv_conf_t  **dscfp;
    struct dance_error           err;

    if (dscf->header.len) {
        hash = ngx_hash_key(dscf->header_lc.data, dscf->header_lc.len);

        if (ngx_hash_find(&((ngx_http_core_main_conf_t *)
                  ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module))
                  ->headers_in_hash, hash, dscf->header_lc.data,
                  dscf->header_lc.len))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "dance_identity_header \"%V\" is a standard "
                          "header, in server %s:%ui", &dscf->header,
                          cscf->file_name, cscf->line);
            return NGX_ERROR;
        }
    }

    if (dscf->mode == NGX_HTTP_DANCE_OFF) {
        return NGX_OK;
    }

    sscf = cscf->ctx->srv_conf[ngx_http_ssl_module.ctx_index];

    if (sscf == NULL || sscf->ssl.ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dance\" needs TLS (\"ssl_certificate\") "
                      "in server %s:%ui", cscf->file_name, cscf->line);
        return NGX_ERROR;
    }

    if (dscf->policy == NULL || dance_policy_count(dscf->policy) == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dance\" without \"dance_allow\" allows nobody, "
                      "in server %s:%ui", cscf->file_name, cscf->line);
        return NGX_ERROR;
    }

    if (!(sscf->protocols & NGX_SSL_TLSv1_3)) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "TLSv1.3 is not in \"ssl_protocols\" of server %s:%ui: "
                      "clients cannot send dane_clientid (only legacy "
                      "names work)", cscf->file_name, cscf->line);
    }

    if (sscf->verify) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"ssl_verify_client\" is not off in server %s:%ui: "
                      "nginx then refuses DANCE clients whose certificate "
                      "is not valid for it; DANCE requests the certificate "
                      "itself", cscf->file_name, cscf->line);
    }

    /*
     * A resumed session carries no certificate and no dane_clientid:
     * no tickets and no session cache, every client does the full
     * handshake and is judged again.
     */

    SSL_CTX_set_session_cache_mode(sscf->ssl.ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(sscf->ssl.ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(sscf->ssl.ctx, 0);

    if (dscf->ca_file.len) {
        if (ngx_conf_full_name(cf->cycle, &dscf->ca_file, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        ca = dscf->ca_file.data;

        /*
         * PKIX-TA/EE (usages 0 and 1) verified inside the handshake use
         * the SSL_CTX's store: the same CA as the post-handshake matcher
         */

        if (SSL_CTX_load_verify_locations(sscf->ssl.ctx, (char *) ca, NULL)
            == 0)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_load_verify_locations(\"%s\") failed",
                          ca);
            return NGX_ERROR;
        }

    } else {
        ca = NULL;
    }

    dscf->matcher = dance_matcher_new((char *) ca, &err);
    if (dscf->matcher == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "DANCE matcher for server %s:%ui: %s",
                      cscf->file_name, cscf->line, err.reason);
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        dance_matcher_free(dscf->matcher);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_dance_cleanup_matcher;
    cln->data = dscf->matcher;

    if (SSL_CTX_set_ex_data(sscf->ssl.ctx, ngx_http_dance_ctx_index, dscf)
        == 0)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_ex_data() failed");
        return NGX_ERROR;
    }

    dscf->ssl_ctx = sscf->ssl.ctx;
    dscf->dmcf = dmcf;
    dscf->cscf = cscf;

    dscfp = ngx_array_push(&dmcf->servers);
    if (dscfp == NULL) {
        return NGX_ERROR;
    }

    *dscfp = dscf;

    return NGX_OK;
}


/*
 * Each worker: its resolver (libunbound contexts do not survive a
 * fork), the descriptor in the event loop, and the core's TLS glue on
 * every DANCE server's SSL_CTX.
 */

static ngx_int_t
ngx_http_dance_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_event_t                 *rev;
    ngx_connection_t            *c;
    struct dance_error           err;
    ngx_http_dance_srv_conf_t  **dscfp, *dscf;
    ngx_http_dance_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dance_module);

    if (dmcf == NULL || dmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    dmcf->resolver = dance_resolver_new(&dmcf->resolver_cfg, &err);
    if (dmcf->resolver == NULL) {
        /*
         * e.g. a file the worker's user cannot read: the worker stays
         * up for other servers, DANCE servers fail closed (no client
         * is authenticated)
         */
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "dance: cannot create the resolver: %s; "
                      "no client will be authenticated", err.reason);
        return NGX_OK;
    }

    c = ngx_get_connection(dance_resolver_fd(dmcf->resolver), cycle->log);
    if (c == NULL) {
        goto failed;
    }

    c->data = dmcf;
    dmcf->connection = c;

    rev = c->read;
    rev->handler = ngx_http_dance_resolver_handler;
    rev->log = cycle->log;

    if (ngx_add_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
        goto failed;
    }

    dmcf->timer.handler = ngx_http_dance_timer_handler;
    dmcf->timer.data = dmcf;
    dmcf->timer.log = cycle->log;
    dmcf->timer.cancelable = 0;

    dscfp = dmcf->servers.elts;

    for (i = 0; i < dmcf->servers.nelts; i++) {
        dscf = dscfp[i];

        dscf->tls_cfg.ext_type = dmcf->ext_type;
        dscf->tls_cfg.policy = dscf->policy;
        dscf->tls_cfg.resolver = dmcf->resolver;
        dscf->tls_cfg.matcher = dscf->matcher;
        dscf->tls_cfg.required = (dscf->mode == NGX_HTTP_DANCE_ON);

        /* required and no legacy name: the draft's handshake_failure */
        dscf->tls_cfg.refuse_no_ext =
                           (dscf->mode == NGX_HTTP_DANCE_ON
                            && dscf->legacy != NGX_HTTP_DANCE_LEGACY_SAN);

        dscf->tls_cfg.lookup_in_handshake = 0;
        dscf->tls_cfg.on_answer = ngx_http_dance_on_answer;
        dscf->tls_cfg.on_refuse = ngx_http_dance_on_refuse;
        dscf->tls_cfg.on_answer_arg = dscf;

        dscf->tls = dance_tls_server_new(&dscf->tls_cfg, &err);
        if (dscf->tls == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "dance: server %s:%ui: %s", dscf->cscf->file_name,
                          dscf->cscf->line, err.reason);
            goto failed;
        }

        if (dance_tls_server_attach(dscf->tls, dscf->ssl_ctx, 1, &err)
            != DANCE_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "dance: server %s:%ui: %s", dscf->cscf->file_name,
                          dscf->cscf->line, err.reason);
            goto failed;
        }

        SSL_CTX_set_verify(dscf->ssl_ctx,
                           SSL_CTX_get_verify_mode(dscf->ssl_ctx),
                           ngx_http_dance_verify_callback);

        dscf->info_callback = SSL_CTX_get_info_callback(dscf->ssl_ctx);
        SSL_CTX_set_info_callback(dscf->ssl_ctx, ngx_http_dance_info_callback);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "dance: resolver fd:%d, %ui servers",
                   c->fd, dmcf->servers.nelts);

    return NGX_OK;

failed:

    ngx_http_dance_exit_process(cycle);

    return NGX_ERROR;
}


static void
ngx_http_dance_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_connection_t            *c;
    ngx_http_dance_srv_conf_t  **dscfp;
    ngx_http_dance_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dance_module);

    if (dmcf == NULL || dmcf->resolver == NULL) {
        return;
    }

    if (dmcf->timer.timer_set) {
        ngx_del_timer(&dmcf->timer);
    }

    c = dmcf->connection;

    if (c) {
        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        /* the descriptor belongs to libunbound */
        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
        dmcf->connection = NULL;
    }

    dscfp = dmcf->servers.elts;

    for (i = 0; i < dmcf->servers.nelts; i++) {
        if (dscfp[i]->tls) {
            dance_tls_server_free(dscfp[i]->tls);
            dscfp[i]->tls = NULL;
        }
    }

    dance_resolver_free(dmcf->resolver);
    dmcf->resolver = NULL;
}
