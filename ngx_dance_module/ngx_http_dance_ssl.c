
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
static void ngx_http_dance_shared_get(ngx_http_dance_main_conf_t *dmcf,
    const char *name, ngx_log_t *log);
static void ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc,
    void *arg);
static void ngx_http_dance_on_refuse(SSL *ssl, struct dance_conn *dc,
    void *arg);
static void ngx_http_dance_resolver_handler(ngx_event_t *rev);
static void ngx_http_dance_timer_handler(ngx_event_t *ev);
static void ngx_http_dance_timer_update(ngx_http_dance_main_conf_t *dmcf);



/*
 * The state of the TLS connection (the real one: HTTP/2 streams have
 * fake connections), created on first use from the connection's pool.
 */

ngx_http_dance_conn_t *
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

ngx_uint_t
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

    if (dmcf->shm_zone) {
        ngx_http_dance_shared_get(dmcf, name, c->log);
    }

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

    if (!a->from_cache && hc->dscf->dmcf->shm_zone) {
        ngx_http_dance_cache_put(hc->dscf->dmcf->shm_zone, a,
                                 hc->connection->log);
    }

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


/* the worker's cache missed: the shared cache, then the resolver */

static void
ngx_http_dance_resolve(SSL *ssl, ngx_http_dance_srv_conf_t *dscf,
    struct dance_conn *dc)
{
    ngx_connection_t            *c;
    struct dance_error           err;
    ngx_http_dance_main_conf_t  *dmcf;

    c = ngx_ssl_get_connection(ssl);
    dmcf = dscf->dmcf;

    if (dmcf->shm_zone) {
        ngx_http_dance_shared_get(dmcf, dc->name, c->log);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "dance: resolving TLSA for \"%s\"", dc->name);

    if (dance_conn_resolve(ssl, &err) != DANCE_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "dance: lookup not started: %s", err.reason);
    }

    ngx_http_dance_timer_update(dmcf);
}


static void
ngx_http_dance_shared_get(ngx_http_dance_main_conf_t *dmcf, const char *name,
    ngx_log_t *log)
{
    struct dance_answer  *a;

    a = ngx_http_dance_cache_get(dmcf->shm_zone, name, log);

    if (a) {
        /* the core finds it from here on, in this and later handshakes */
        dance_resolver_cache_put(dmcf->resolver, a);
        dance_answer_unref(a);
    }
}


/* the core: a lookup started in a handshake is answered */

static void
ngx_http_dance_on_answer(SSL *ssl, struct dance_conn *dc, void *arg)
{
    ngx_http_dance_srv_conf_t  *dscf = arg;

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

    if (dc->answer && !dc->answer->from_cache && dscf->dmcf->shm_zone) {
        ngx_http_dance_cache_put(dscf->dmcf->shm_zone, dc->answer,
                                 c ? c->log : ngx_cycle->log);
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
