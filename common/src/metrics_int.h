/*
 * metrics_int.h -- internal: what the resolver and the decision record
 * for the metrics (metrics.c).  Not installed; hosts use dance.h only.
 */
#ifndef DANCE_METRICS_INT_H
#define DANCE_METRICS_INT_H

#include <stdint.h>

#include "dance.h"

/* Per connection, inside struct conn_priv: the lookup it waited for,
 * and whether its verdict was counted. */
struct dance_conn_mx {
	uint64_t wait_start;	/* ms, while waiting for DNS */
	unsigned lookup_ms;	/* how long it waited */
	unsigned char cache;	/* DANCE_MX_CACHE_* */
	unsigned char waiting;	/* counted in the parked gauge */
	unsigned char counted;	/* verdict counted */
	unsigned char refused;	/* the glue ended the handshake */
};
#define DANCE_MX_CACHE_NONE 0	/* no lookup (refused before DNS) */
#define DANCE_MX_CACHE_HIT 1
#define DANCE_MX_CACHE_MISS 2

struct conn_priv;
struct dance_tls_server;

/* A query of the resolver ended with status after ms (resolver.c,
 * under its lock). */
void dance_stats_note_answer(struct dance_resolver_stats *st,
	enum dance_dns_status status, uint64_t ms);

/* decide.c, tls_server.c and conn.c: a cache hit (a is the answer), a
 * wait for DNS that starts and ends, a refusal at a waiting cap, a
 * verdict (counted once per connection; PENDING is none), a connection
 * freed. */
void dance_mx_cache_hit(struct conn_priv *c, const struct dance_answer *a);
void dance_mx_wait_start(struct conn_priv *c);
void dance_mx_wait_end(struct conn_priv *c);
void dance_mx_cap_refusal(struct dance_tls_server *srv);
void dance_mx_verdict(struct conn_priv *c);
void dance_mx_refused(struct conn_priv *c);
void dance_mx_conn_free(struct conn_priv *c);

#endif /* DANCE_METRICS_INT_H */
