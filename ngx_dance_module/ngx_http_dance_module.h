
/*
 * ngx_http_dance_module.h -- DANE client authentication (DANCE) for
 * nginx: declarations shared by the module's source files.
 */


#ifndef _NGX_HTTP_DANCE_MODULE_H_INCLUDED_
#define _NGX_HTTP_DANCE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <dance.h>


/* the shared TLSA answer cache, ngx_http_dance_cache.c */

char *ngx_http_dance_cache_conf(ngx_conf_t *cf, ngx_str_t *value,
    ngx_shm_zone_t **zone);
struct dance_answer *ngx_http_dance_cache_get(ngx_shm_zone_t *zone,
    const char *name, ngx_log_t *log);
void ngx_http_dance_cache_put(ngx_shm_zone_t *zone,
    const struct dance_answer *a, ngx_log_t *log);


extern ngx_module_t  ngx_http_dance_module;


#endif /* _NGX_HTTP_DANCE_MODULE_H_INCLUDED_ */
