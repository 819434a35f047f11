
/*
 * ngx_http_dance_ssl.c -- DANCE for nginx: the TLS side.  Each worker
 * runs one core resolver in nginx's event loop and attaches the core's
 * TLS glue to the SSL_CTX of every DANCE server; the verdict of a TLS
 * connection is kept with it, shared by its requests and streams.
 */


#include "ngx_http_dance_module.h"

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>


static void ngx_http_dance_conn_cleanup(void *data);
static void ngx_http_dance_log(ngx_http_dance_conn_t *hc,
    struct dance_conn *dc, enum dance_status st);
static int ngx_http_dance_verify_callback(int ok, X509_STORE_CTX *xs);
static void ngx_http_dance_info_callback(const SSL *ssl, int where, int ret);
static void ngx_http_dance_wake(ngx_http_dance_conn_t *hc);
static void ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc,
    void *arg);
static void ngx_http_dance_on_refuse(SSL *ssl, struct dance_conn *dc,
    void *arg);
static ngx_uint_t ngx_http_dance_sni_dance(SSL *ssl);
static void ngx_http_dance_resolver_handler(ngx_event_t *rev);
static void ngx_http_dance_timer_handler(ngx_event_t *ev);
static void ngx_http_dance_timer_update(ngx_http_dance_main_conf_t *dmcf);


/*
 * The host's state of a TLS connection (the real one: HTTP/2 streams
 * have fake connections), kept as the core connection's host data: the
 * requests parked on its lookup, and what was logged.  The verdict
 * itself is the core's (dance_conn_decide()).
 */

ngx_http_dance_conn_t *
ngx_http_dance_conn(SSL *ssl, ngx_http_dance_srv_conf_t *dscf)
{
    ngx_connection_t       *c;
    struct dance_conn      *dc;
    ngx_pool_cleanup_t     *cln;
    ngx_http_dance_conn_t  *hc;

    dc = dance_conn_get(ssl);
    if (dc == NULL) {
        return NULL;
    }

    hc = dance_conn_host_data(dc);
    if (hc) {
        return hc;
    }

    c = ngx_ssl_get_connection(ssl);
    if (c == NULL) {
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

    cln->handler = ngx_http_dance_conn_cleanup;
    cln->data = hc;

    hc->connection = c;
    hc->dscf = dscf;
    ngx_queue_init(&hc->waiting);

    dance_conn_set_host_data(dc, hc);

    return hc;
}


/* the SSL normally goes first; if not, the core must not point here */

static void
ngx_http_dance_conn_cleanup(void *data)
{
    ngx_http_dance_conn_t  *hc = data;

    struct dance_conn  *dc;

    if (hc->connection->ssl && hc->connection->ssl->connection) {
        dc = dance_conn_get(hc->connection->ssl->connection);

        if (dc && dance_conn_host_data(dc) == hc) {
            dance_conn_set_host_data(dc, NULL);
        }
    }
}


/*
 * The connection's decision, the core's: SUCCESS, PENDING (a lookup in
 * flight: park and wait for ngx_http_dance_on_answer()), NONE or
 * FAILED.  Logged once per connection when final.
 */

enum dance_status
ngx_http_dance_decide(ngx_http_dance_srv_conf_t *dscf, SSL *ssl,
    ngx_http_dance_conn_t **hcp)
{
    enum dance_status       st;
    struct dance_conn      *dc;
    ngx_http_dance_conn_t  *hc;

    st = dance_conn_decide(ssl, NULL);

    /* only a lookup the call started brings a new deadline */

    if (st == DANCE_STATUS_PENDING) {
        ngx_http_dance_timer_update(dscf->dmcf);
    }

    hc = ngx_http_dance_conn(ssl, dscf);
    *hcp = hc;

    if (hc == NULL) {
        /* out of memory: no way to park or log, fail closed */
        return st == DANCE_STATUS_SUCCESS ? st : DANCE_STATUS_FAILED;
    }

    if (st != DANCE_STATUS_PENDING && !hc->logged) {
        hc->logged = 1;
        dc = dance_conn_get(ssl);
        ngx_http_dance_log(hc, dc, st);
    }

    return st;
}


/* every outcome once per connection: failures at info or warn */

static void
ngx_http_dance_log(ngx_http_dance_conn_t *hc, struct dance_conn *dc,
    enum dance_status st)
{
    ngx_log_t   *log;
    ngx_uint_t   level;
    const char  *name, *why;

    log = hc->connection->log;
    name = dance_conn_name(dc);
    why = dance_conn_reason(dc);

    if (why[0] == '\0') {
        why = dance_reason_str(dance_conn_reason_code(dc));
    }

    switch (st) {

    case DANCE_STATUS_SUCCESS:
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "dance: client \"%s\" authenticated, usage %d, "
                      "name from %s", name, dance_conn_usage(dc),
                      dance_name_source_str(dance_conn_source(dc)));
        break;

    case DANCE_STATUS_FAILED:
        level = (hc->dscf->mode == NGX_HTTP_DANCE_ON) ? NGX_LOG_WARN
                                                      : NGX_LOG_INFO;
        ngx_log_error(level, log, 0, "dance: client \"%s\" %s: %s",
                      name[0] ? name : "(no name)",
                      hc->dscf->mode == NGX_HTTP_DANCE_ON
                      ? "refused" : "not authenticated", why);
        break;

    default: /* NONE: not a DANCE client */
        if (hc->dscf->mode == NGX_HTTP_DANCE_ON) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "dance: client refused: %s", why);
        } else {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                           "dance: no DANCE identity: %s", why);
        }
        break;
    }

    if (dance_conn_tlsa_notes(dc)[0]) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "dance: client \"%s\": unusable TLSA records: %s",
                      name, dance_conn_tlsa_notes(dc));
    }

    ngx_http_dance_status_log(hc->connection, dc);
}


/* handshake */

/*
 * Our verify callback: the core's opinion first (it fails a DANE
 * mismatch armed from the cache, and under "dance on" without legacy
 * names a certificate without dane_clientid or below TLS 1.3).  Then,
 * at the leaf, a lookup the handshake could not answer from the caches
 * starts here, while the handshake goes on: for a dane_clientid name,
 * or for a SAN name with "dance_legacy_name san".  Nothing else fails
 * the handshake: other clients are judged per request, as nginx does
 * for "ssl_verify_client optional".
 */

static int
ngx_http_dance_verify_callback(int ok, X509_STORE_CTX *xs)
{
    SSL                        *ssl;
    ngx_connection_t           *c;
    enum dance_conn_state       state;
    ngx_http_dance_srv_conf_t  *dscf;

    ok = dance_tls_verify_step(ok, xs);

    ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    c = ngx_ssl_get_connection(ssl);
    dscf = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ngx_http_dance_ctx_index);

    if (c == NULL || dscf == NULL || dscf->tls == NULL) {
        return 1;
    }

    state = dance_conn_state(dance_conn_get(ssl));

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "dance: verify depth:%d ok:%d state:%d",
                   X509_STORE_CTX_get_error_depth(xs), ok, (int) state);

    if (state != DANCE_CONN_NONE && state != DANCE_CONN_PENDING) {
        return ok;
    }

    if (X509_STORE_CTX_get_error_depth(xs) == 0
        && (state == DANCE_CONN_PENDING
            || dscf->legacy == NGX_HTTP_DANCE_LEGACY_SAN))
    {
        if (dance_conn_decide(ssl, xs) == DANCE_STATUS_PENDING) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "dance: resolving TLSA for \"%s\"",
                           dance_conn_name(dance_conn_get(ssl)));
            ngx_http_dance_timer_update(dscf->dmcf);
        }
    }

    return state == DANCE_CONN_NONE ? 1 : ok;
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


/* the core: a lookup started for a connection is answered */

static void
ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc, void *arg)
{
    ngx_http_dance_conn_t  *hc;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "dance: TLSA for \"%s\": %s", dance_conn_name(dc),
                   dance_conn_answer(dc)
                   ? dance_dns_status_str(dance_answer_status(
                                                     dance_conn_answer(dc)))
                   : "no answer");

    hc = dance_conn_host_data(dc);

    if (hc) {
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
                  dance_conn_name(dc)[0] ? dance_conn_name(dc) : "(no name)",
                  dance_conn_reason(dc));

    ngx_http_dance_status_log(c, dc);
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

    hc = dance_conn_host_data(dance_conn_get((SSL *) ssl));

    if (hc && hc->refused) {
        ERR_clear_error();
        ERR_raise(ERR_LIB_SSL, SSL_R_CALLBACK_FAILED);
    }
}


/*
 * A resumed session carries no certificate, so a DANCE server issues no
 * tickets; but a ticket from another server of the same listener (the
 * default server, with DANCE off) is decrypted, and the resumption
 * decided, with that server's SSL_CTX, before nginx 1.22's SNI callback
 * switches to the DANCE server.  This ticket callback, on every server's
 * SSL_CTX, ignores a ticket (full handshake) whenever the name the
 * client sent selects a DANCE server, or the switch already happened
 * (nginx >= 1.25 selects the server from its ClientHello callback).
 * Regular-expression server names are not looked up: a name that no
 * exact or wildcard name matches resumes only on a listener without
 * regex names.
 */

SSL_TICKET_RETURN
ngx_http_dance_ticket(SSL *ssl, SSL_SESSION *sess,
    const unsigned char *keyname, size_t keyname_len,
    SSL_TICKET_STATUS status, void *arg)
{
    switch (status) {

    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:

        if (ngx_http_dance_sni_dance(ssl)) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "dance: ticket ignored, the name selects a "
                           "DANCE server: full handshake");
            return SSL_TICKET_RETURN_IGNORE;
        }

        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE
                                            : SSL_TICKET_RETURN_USE_RENEW;

    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW;

    default:
        return SSL_TICKET_RETURN_ABORT;
    }
}


/* does the server name in the ClientHello select a DANCE server? */

static ngx_uint_t
ngx_http_dance_sni_dance(SSL *ssl)
{
    u_char                      *p, name[256];
    size_t                       len, i;
    ngx_connection_t            *c;
    ngx_http_connection_t       *hc;
    ngx_http_virtual_names_t    *vn;
    ngx_http_core_srv_conf_t    *cscf;
    ngx_http_dance_srv_conf_t   *dscf;

    if (SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ngx_http_dance_ctx_index)) {
        return 1;
    }

    c = ngx_ssl_get_connection(ssl);
    if (c == NULL || c->data == NULL) {
        return 1;
    }

    hc = c->data;
    vn = hc->addr_conf->virtual_names;
    cscf = hc->addr_conf->default_server;

    /* server_name extension: list length, type, name length, name */

    if (vn
        && SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name,
                                     (const unsigned char **) &p, &len)
        && len > 5 && len - 5 < sizeof(name)
        && p[2] == TLSEXT_NAMETYPE_host_name
        && (size_t) ((p[3] << 8) + p[4]) == len - 5)
    {
        len -= 5;

        for (i = 0; i < len; i++) {
            name[i] = ngx_tolower(p[5 + i]);
        }

        cscf = ngx_hash_find_combined(&vn->names, ngx_hash_key(name, len),
                                      name, len);

        if (cscf == NULL) {
            if (vn->nregex) {
                return 1;
            }

            cscf = hc->addr_conf->default_server;
        }
    }

    dscf = cscf->ctx->srv_conf[ngx_http_dance_module.ctx_index];

    return dscf->mode != NGX_HTTP_DANCE_OFF;
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


/*
 * At configuration time (start, "nginx -t", reload), a child process
 * does what a worker will do: as the worker's user, it creates the
 * resolver, which reads the trust anchors, dance_unbound_conf and
 * dance_forward_tls_ca.  A file the worker cannot read then stops nginx
 * with the reason, instead of a worker that authenticates nobody.  In a
 * child, libunbound's per-parse memory is not kept by the master, so
 * every reload is checked.  The "user" directive is known here when it
 * comes before "http", as it conventionally does; otherwise nginx's
 * default user is assumed.
 */

ngx_int_t
ngx_http_dance_check_worker(ngx_conf_t *cf, ngx_http_dance_main_conf_t *dmcf)
{
    int                     fd[2], status;
    char                    why[512];
    ssize_t                 n;
    ngx_pid_t               pid;
    const char             *user;
    struct group           *grp;
    struct passwd          *pwd;
    ngx_core_conf_t        *ccf;
    struct dance_error      err;
    struct dance_resolver  *res;
    ngx_uid_t               uid;
    ngx_gid_t               gid;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);

    uid = 0;
    gid = 0;
    user = "root";

    if (geteuid() == 0) {
        if (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
            uid = ccf->user;
            gid = ccf->group;
            user = ccf->username;

        } else {
            pwd = getpwnam(NGX_USER);
            grp = getgrnam(NGX_GROUP);

            if (pwd && grp) {
                uid = pwd->pw_uid;
                gid = grp->gr_gid;
                user = NGX_USER;
            }
        }
    }

    if (pipe(fd) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno, "fork() failed");
        close(fd[0]);
        close(fd[1]);
        return NGX_ERROR;
    }

    if (pid == 0) {
        close(fd[0]);
        why[0] = '\0';

        if (uid != 0
            && (setgid(gid) == -1 || initgroups(user, gid) == -1
                || setuid(uid) == -1))
        {
            ngx_snprintf((u_char *) why, sizeof(why) - 1,
                         "cannot become the worker's user: %s%Z",
                         strerror(errno));

        } else {
            res = dance_resolver_new(&dmcf->resolver_cfg, &err);

            if (res == NULL) {
                ngx_cpystrn((u_char *) why, (u_char *) err.reason,
                            sizeof(why));
            }
        }

        n = write(fd[1], why, ngx_strlen(why));
        _exit(n < 0 || why[0] != '\0');
    }

    close(fd[1]);
    n = read(fd[0], why, sizeof(why) - 1);
    close(fd[0]);

    why[n > 0 ? n : 0] = '\0';

    /*
     * the master's SIGCHLD handler may have reaped the child already
     * (ECHILD): then the reason it wrote, or none, is the answer
     */

    status = 0;

    while (waitpid(pid, &status, 0) == -1 && ngx_errno == NGX_EINTR) {
        /* void */
    }

    if (why[0] == '\0' && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "invalid DANCE resolver configuration for the workers "
                  "(user \"%s\"): %s", user,
                  why[0] ? why : "the check failed");

    return NGX_ERROR;
}


/*
 * Each worker: its resolver (libunbound contexts do not survive a
 * fork), the descriptor in the event loop, and the core's TLS glue on
 * every DANCE server's SSL_CTX.
 */

ngx_int_t
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
        ngx_cpystrn(dmcf->unavailable, (u_char *) err.reason,
                    sizeof(dmcf->unavailable));
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

        /* the extension, and the SAN for legacy clients if asked */
        dscf->tls_cfg.sources.n = 0;

        if (dscf->legacy == NGX_HTTP_DANCE_LEGACY_SAN) {
            dscf->tls_cfg.sources.n = 2;
            dscf->tls_cfg.sources.src[0] = DANCE_SRC_EXTENSION;
            dscf->tls_cfg.sources.src[1] = DANCE_SRC_SAN;
        }

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

        dance_tls_server_set_metrics(dscf->tls,
                                     ngx_http_dance_status_metrics(dmcf, i));

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

    ngx_http_dance_status_start(cycle, dmcf);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "dance: resolver fd:%d, %ui servers",
                   c->fd, dmcf->servers.nelts);

    return NGX_OK;

failed:

    ngx_http_dance_exit_process(cycle);

    return NGX_ERROR;
}


void
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

    ngx_http_dance_status_stop(dmcf);

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
