
/*
 * ngx_http_dance_request.c -- DANCE for nginx: requests.  The phase
 * handler enforces the connection's verdict on every way into a
 * location, parks requests while the lookup runs and wakes them, and
 * keeps the identity header the module's alone; the variables.
 */


#include "ngx_http_dance_module.h"


static ngx_int_t ngx_http_dance_log_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_dance_header_is_client_copy(ngx_table_elt_t *h,
    ngx_http_dance_srv_conf_t *dscf);
static ngx_int_t ngx_http_dance_unavailable(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf);
static ngx_int_t ngx_http_dance_park(ngx_http_request_t *r,
    ngx_http_dance_ctx_t *ctx, ngx_http_dance_conn_t *hc);
static void ngx_http_dance_unpark(void *data);
static ngx_int_t ngx_http_dance_strip_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf);
static ngx_int_t ngx_http_dance_add_header(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf, const char *name);
static SSL *ngx_http_dance_request_ssl(ngx_http_request_t *r,
    ngx_uint_t *misdirected);

/*
 * request processing: the phase handler, run at post-read, server
 * rewrite and rewrite (see ngx_http_dance_init()), so that no request
 * reaches a location's content without it, whatever path it took.
 * Internal redirects clear the module's context: the handler then runs
 * again, which is cheap (the verdict belongs to the connection).
 */

ngx_int_t
ngx_http_dance_handler(ngx_http_request_t *r)
{
    SSL                        *ssl;
    ngx_uint_t                  misdirected;
    enum dance_status           st;
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

    if (dscf->tls == NULL) {
        return ngx_http_dance_unavailable(r, dscf);
    }

    ssl = ngx_http_dance_request_ssl(r, &misdirected);

    if (misdirected) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dance: request for a server other than the TLS "
                      "server name, not authenticated");

        if (dscf->mode == NGX_HTTP_DANCE_ON) {
            return NGX_HTTP_MISDIRECTED_REQUEST;
        }

        return NGX_DECLINED;
    }

    hc = NULL;
    st = ssl ? ngx_http_dance_decide(dscf, ssl, &hc) : DANCE_STATUS_NONE;

    switch (st) {

    case DANCE_STATUS_PENDING:
        return ngx_http_dance_park(r, ctx, hc);

    case DANCE_STATUS_SUCCESS:

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "dance: request from \"%s\"",
                       dance_conn_name(dance_conn_get(ssl)));

        if (dscf->header.len
            && ngx_http_dance_add_header(r, dscf,
                                         dance_conn_name(dance_conn_get(ssl)))
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;

    default: /* NONE, FAILED: logged with the reason when decided */

        if (dscf->mode == NGX_HTTP_DANCE_OPTIONAL) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "dance: unauthenticated request passed");
            return NGX_DECLINED;
        }

        if (st == DANCE_STATUS_FAILED) {
            return NGX_HTTPS_CERT_ERROR;
        }

        if (ssl == NULL || SSL_get0_peer_certificate(ssl) == NULL) {
            return NGX_HTTPS_NO_CERT;
        }

        return NGX_HTTPS_CERT_ERROR;
    }
}


/*
 * This worker could not set DANCE up (its resolver: see the startup
 * error).  Nobody can be authenticated here, which is the server's
 * fault, not the client's: 503, with the reason in the log.
 */

static ngx_int_t
ngx_http_dance_unavailable(ngx_http_request_t *r,
    ngx_http_dance_srv_conf_t *dscf)
{
    if (dscf->mode == NGX_HTTP_DANCE_OPTIONAL) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "dance: no client can be authenticated by this worker: "
                  "%s", dscf->dmcf->unavailable[0]
                        ? (char *) dscf->dmcf->unavailable
                        : "DANCE is not set up");

    return NGX_HTTP_SERVICE_UNAVAILABLE;
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
                   dance_conn_name(dance_conn_get(
                                       hc->connection->ssl->connection)));

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
 * A client copy of the identity header, in any spelling that some
 * backend could take for it: letters in any case, and "-" or "_" in
 * any place (CGI, FastCGI, uwsgi, SCGI and WSGI all fold "-" and "_"
 * into one variable, HTTP_X_DANCE_CLIENT_ID).  The header the module
 * added itself shares the configured name's storage, so it is never
 * taken for a client copy.
 */

static ngx_uint_t
ngx_http_dance_header_is_client_copy(ngx_table_elt_t *h,
    ngx_http_dance_srv_conf_t *dscf)
{
    u_char      c;
    ngx_uint_t  i;

    if (h->key.len != dscf->header_lc.len
        || h->key.data == dscf->header.data)
    {
        return 0;
    }

    for (i = 0; i < h->key.len; i++) {
        c = ngx_tolower(h->key.data[i]);

        if (c == '_') {
            c = '-';
        }

        if (c != dscf->header_lc.data[i]) {
            return 0;
        }
    }

    return 1;
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

        if (ngx_http_dance_header_is_client_copy(&h[i], dscf)) {
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

        if (ngx_http_dance_header_is_client_copy(&h[i], dscf)) {
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
    ngx_http_dance_srv_conf_t *dscf, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* once per request, also when it comes back after a redirect */

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

        if (h[i].key.data == dscf->header.data) {
            return NGX_OK;
        }
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(name);

    h->key = dscf->header;
    h->lowcase_key = dscf->header_lc.data;
    h->hash = ngx_hash_key(dscf->header_lc.data, dscf->header_lc.len);

    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, name, len);
    h->value.len = len;

    return NGX_OK;
}


/*
 * The TLS connection whose verdict applies to a request of a DANCE
 * server: the one whose handshake this very server did.  NULL without
 * TLS; misdirected when SNI chose another server (its allow-list, or
 * no DANCE at all, applied to the handshake).
 */

static SSL *
ngx_http_dance_request_ssl(ngx_http_request_t *r, ngx_uint_t *misdirected)
{
    SSL                        *ssl;
    ngx_http_dance_srv_conf_t  *dscf, *hdscf;

    *misdirected = 0;

    if (r->connection->ssl == NULL) {
        return NULL;
    }

    ssl = r->connection->ssl->connection;
    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    hdscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
                                ngx_http_dance_ctx_index);

    if (hdscf != dscf) {
        /* another server did the handshake, with DANCE or without */
        *misdirected = 1;
        return NULL;
    }

    return ssl;
}


/* variables */

/* the decision that applies to the request, NULL: none (NONE) */

static struct dance_conn *
ngx_http_dance_var_conn(ngx_http_request_t *r)
{
    SSL                        *ssl;
    ngx_uint_t                  misdirected;
    ngx_http_dance_conn_t      *hc;
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    if (dscf->mode == NGX_HTTP_DANCE_OFF || dscf->tls == NULL) {
        return NULL;
    }

    ssl = ngx_http_dance_request_ssl(r, &misdirected);

    if (ssl == NULL) {
        return NULL;
    }

    (void) ngx_http_dance_decide(dscf, ssl, &hc);

    return dance_conn_get(ssl);
}


ngx_int_t
ngx_http_dance_client_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    struct dance_conn  *dc;

    dc = ngx_http_dance_var_conn(r);

    if (dance_conn_status(dc) != DANCE_STATUS_SUCCESS) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) dance_conn_name(dc);
    v->len = ngx_strlen(v->data);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the core's one text: SUCCESS, PENDING, NONE or FAILED:<reason> */

ngx_int_t
ngx_http_dance_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->data = (u_char *) dance_conn_status_text(ngx_http_dance_var_conn(r));
    v->len = ngx_strlen(v->data);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_dance_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char             *p;
    struct dance_conn  *dc;

    dc = ngx_http_dance_var_conn(r);

    if (dance_conn_status(dc) != DANCE_STATUS_SUCCESS
        || dance_conn_usage(dc) < 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%d", dance_conn_usage(dc)) - p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * A request that nginx rejects while reading its headers (400, 494, 497
 * ...) runs no phase but the log phase.  Its client copies of the
 * identity header are removed there too, before ngx_http_log_module
 * writes $http_... to the access log.  Log phase handlers run in the
 * order of their array (not reversed like the other phases), so ours
 * goes to the front.
 */

ngx_int_t
ngx_http_dance_log_first(ngx_http_core_main_conf_t *cmcf)
{
    ngx_array_t          *a;
    ngx_http_handler_pt  *h;

    a = &cmcf->phases[NGX_HTTP_LOG_PHASE].handlers;

    if (ngx_array_push(a) == NULL) {
        return NGX_ERROR;
    }

    h = a->elts;
    ngx_memmove(&h[1], &h[0], (a->nelts - 1) * sizeof(ngx_http_handler_pt));
    h[0] = ngx_http_dance_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dance_log_handler(ngx_http_request_t *r)
{
    ngx_http_dance_srv_conf_t  *dscf;

    dscf = ngx_http_get_module_srv_conf(r, ngx_http_dance_module);

    if (dscf->header.len) {
        (void) ngx_http_dance_strip_header(r, dscf);
    }

    return NGX_OK;
}
