
/*
 * ngx_http_dance_module.h -- DANE client authentication (DANCE) for
 * nginx: declarations shared by the module's source files.
 *
 *   ngx_http_dance_module.c   directives, configuration, variables
 *                             registration, postconfiguration
 *   ngx_http_dance_request.c  the phase handler: enforce, park and wake
 *                             requests, the identity header, variables
 *   ngx_http_dance_ssl.c      per worker: the core's TLS glue and
 *                             resolver in nginx's event loop, the
 *                             connection's verdict
 *   ngx_http_dance_cache.c    the shared TLSA answer cache
 *   ngx_http_dance_status.c   dance_status: the metrics, Prometheus text
 */


#ifndef _NGX_HTTP_DANCE_MODULE_H_INCLUDED_
#define _NGX_HTTP_DANCE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <dance.h>


#define NGX_HTTP_DANCE_OFF        0
#define NGX_HTTP_DANCE_OPTIONAL   1
#define NGX_HTTP_DANCE_ON         2

#define NGX_HTTP_DANCE_LEGACY_OFF  0
#define NGX_HTTP_DANCE_LEGACY_SAN  1



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
    ngx_uint_t                   status;          /* dance_status used */
    ngx_shm_zone_t              *status_zone;     /* the metrics */

    ngx_array_t                  servers;   /* ngx_http_dance_srv_conf_t * */
    struct dance_resolver_cfg    resolver_cfg;

    /* per worker */
    struct dance_resolver       *resolver;
    u_char                       unavailable[256];  /* why no resolver */
    ngx_connection_t            *connection;
    ngx_event_t                  timer;
};


/*
 * per TLS connection, shared by all requests of it (HTTP/2 streams
 * too); the verdict itself is the core's
 */

typedef struct {
    ngx_queue_t                  waiting;     /* parked requests */
    ngx_connection_t            *connection;
    ngx_http_dance_srv_conf_t   *dscf;

    unsigned                     logged:1;
    unsigned                     refused:1;   /* by the core, in handshake */
} ngx_http_dance_conn_t;


typedef struct {
    ngx_queue_t                  queue;
    ngx_http_request_t          *request;
    unsigned                     parked:1;
    unsigned                     cleanup:1;
} ngx_http_dance_ctx_t;


/* SSL_CTX ex_data index of the DANCE server's dscf */
extern int  ngx_http_dance_ctx_index;


/* request processing, ngx_http_dance_request.c */

ngx_int_t ngx_http_dance_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_dance_log_first(ngx_http_core_main_conf_t *cmcf);
ngx_int_t ngx_http_dance_client_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_dance_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_dance_usage_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* TLS and resolver glue, ngx_http_dance_ssl.c */

ngx_http_dance_conn_t *ngx_http_dance_conn(SSL *ssl,
    ngx_http_dance_srv_conf_t *dscf);
enum dance_status ngx_http_dance_decide(ngx_http_dance_srv_conf_t *dscf,
    SSL *ssl, ngx_http_dance_conn_t **hcp);
SSL_TICKET_RETURN ngx_http_dance_ticket(SSL *ssl, SSL_SESSION *sess,
    const unsigned char *keyname, size_t keyname_len,
    SSL_TICKET_STATUS status, void *arg);
ngx_int_t ngx_http_dance_check_worker(ngx_conf_t *cf,
    ngx_http_dance_main_conf_t *dmcf);
ngx_int_t ngx_http_dance_init_process(ngx_cycle_t *cycle);
void ngx_http_dance_exit_process(ngx_cycle_t *cycle);


/* the shared TLSA answer cache, ngx_http_dance_cache.c */

char *ngx_http_dance_cache_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_shm_zone_t **zone);
ngx_int_t ngx_http_dance_cache_tier(ngx_conf_t *cf, ngx_shm_zone_t *zone,
    struct dance_resolver_cfg *rc);


char *ngx_http_dance_worker_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_dance_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_dance_cache_ttl(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


/* the metrics, ngx_http_dance_status.c */

char *ngx_http_dance_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_dance_status_init(ngx_conf_t *cf,
    ngx_http_dance_main_conf_t *dmcf);
struct dance_metrics *ngx_http_dance_status_metrics(
    ngx_http_dance_main_conf_t *dmcf, ngx_uint_t i);
void ngx_http_dance_status_start(ngx_cycle_t *cycle,
    ngx_http_dance_main_conf_t *dmcf);
void ngx_http_dance_status_stop(ngx_http_dance_main_conf_t *dmcf);
void ngx_http_dance_status_log(ngx_connection_t *c, struct dance_conn *dc);


extern ngx_module_t  ngx_http_dance_module;


#endif /* _NGX_HTTP_DANCE_MODULE_H_INCLUDED_ */
