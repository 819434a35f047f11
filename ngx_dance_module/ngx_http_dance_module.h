
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
ngx_int_t ngx_http_dance_cache_tier(ngx_conf_t *cf, ngx_shm_zone_t *zone,
    struct dance_resolver_cfg *rc);


extern ngx_module_t  ngx_http_dance_module;


#endif /* _NGX_HTTP_DANCE_MODULE_H_INCLUDED_ */
