
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
static char *ngx_http_dance_ext_type(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_dance_cleanup_policy(void *data);
static void ngx_http_dance_cleanup_matcher(void *data);
static ngx_int_t ngx_http_dance_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_dance_init_server(ngx_conf_t *cf,
    ngx_http_dance_main_conf_t *dmcf, ngx_http_core_srv_conf_t *cscf,
    ngx_http_dance_srv_conf_t *dscf);


/* SSL_CTX ex_data index of the DANCE server's dscf */
int  ngx_http_dance_ctx_index = -1;


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

    { ngx_string("dance_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_dance_status,
      0,
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
ngx_http_dance_ext_type(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dance_main_conf_t  *dmcf = conf;

    char                *end;
    u_char               buf[16];
    ngx_str_t           *value;
    unsigned long        n;
    struct dance_error   err;

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

    /* the suite's one code point rule */

    if (dance_ext_type_check((unsigned) n, &err) != DANCE_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid extension type \"%V\": %s",
                           &value[1], err.reason);
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
    ngx_http_ssl_srv_conf_t      *sscf;
    ngx_http_core_srv_conf_t    **cscfp;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_dance_srv_conf_t    *dscf;
    ngx_http_dance_main_conf_t   *dmcf;
    struct dance_resolver_cfg    *rc;

    static ngx_uint_t  phases[] = {
        NGX_HTTP_POST_READ_PHASE,
        NGX_HTTP_SERVER_REWRITE_PHASE,
        NGX_HTTP_REWRITE_PHASE
    };

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dance_module);

    /*
     * Every way into a location passes one of these phases: a new
     * request starts at post-read, an internal redirect (error_page
     * with a URI, a request nginx rejected while reading its headers)
     * and a subrequest at server rewrite, a named location at
     * (location) rewrite.  Handlers of a phase run in reverse order of
     * registration, so ours, registered last, runs before "return" and
     * "rewrite" of that phase.
     */

    for (s = 0; s < sizeof(phases) / sizeof(phases[0]); s++) {
        h = ngx_array_push(&cmcf->phases[phases[s]].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_dance_handler;
    }

    if (ngx_http_dance_log_first(cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_dance_ctx_index == -1) {
        ngx_http_dance_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL,
                                                            NULL, NULL);
        if (ngx_http_dance_ctx_index == -1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_get_ex_new_index() failed");
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

    if (ngx_http_dance_status_init(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (dmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    /* tickets of other servers never resume into a DANCE server */

    for (s = 0; s < cmcf->servers.nelts; s++) {
        sscf = cscfp[s]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];

        if (sscf && sscf->ssl.ctx
            && SSL_CTX_set_session_ticket_cb(sscf->ssl.ctx, NULL,
                                             ngx_http_dance_ticket, NULL)
               != 1)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_set_session_ticket_cb() failed");
            return NGX_ERROR;
        }
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

    /* what a worker will do with it, as the worker's user */

    return ngx_http_dance_check_worker(cf, dmcf);
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
