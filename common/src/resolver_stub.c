/*
 * resolver_stub.c -- the trust_ad backend: without trust anchors, the
 * validating resolvers we trust (the forwarders) do the work and their
 * AD bit is the verdict, through the stub transport of stub.c.
 *
 * All socket work is done under the resolver's lock (it is short and
 * never blocks), so any thread may cancel a query (cancel_any_thread).
 * Epoll events carry the query pointer; the driving thread takes one
 * event at a time and re-checks the query under the lock.  A query
 * cancelled from another thread has no sockets left, so it raises no
 * more events, and resolver.c keeps it allocated until the driving
 * thread reaps it: a pointer from an event is never stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dance_int.h"
#include "cache.h"
#include "resolver_backend.h"
#include "stub.h"

#define RCODE_NOERROR	0
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3

struct stub_backend {
	struct dance_resolver *r;
	struct dance_stub *stub;
	unsigned drain_max;
};

/*
 * Map a trusted resolver's answer to an outcome: AD is its verdict.  A
 * validating resolver answers SERVFAIL for bogus data, so that cannot be
 * told apart from an unreachable zone, except through an Extended DNS
 * Error, which goes into the reason.
 */
static struct dance_answer *
classify(struct dance_query *q, int ret, const struct dance_stub_result *res,
	const char *server)
{
	char ede[160] = "";

	if (ret != DANCE_STUB_OK)
		return dance_query_answer(q, DANCE_DNS_ERROR, -1,
			"malformed answer from %s: %s", server, res->why);
	if (res->ede >= 0)
		(void)snprintf(ede, sizeof(ede), "; EDE %d%s%s", res->ede,
			res->ede_text[0] != '\0' ? ": " : "", res->ede_text);
	if (res->rcode == RCODE_SERVFAIL)
		return dance_query_answer(q, DANCE_DNS_SERVFAIL, -1,
			"upstream SERVFAIL (bogus or unreachable) from %s%s",
			server, ede);
	if (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)
		return dance_query_answer(q, DANCE_DNS_SERVFAIL, -1,
			"DNS error from %s, rcode %d%s", server, res->rcode,
			ede);
	if (!res->ad)
		return dance_query_answer(q, DANCE_DNS_INSECURE, -1,
			"resolver did not set AD (%s: not validated as "
			"secure)%s", server,
			res->rcode == RCODE_NXDOMAIN ? ", name does not exist" :
			res->n == 0 ? ", no TLSA" : "");
	if (res->rcode == RCODE_NXDOMAIN)
		return dance_query_answer(q, DANCE_DNS_NXDOMAIN, res->ttl,
			"name does not exist (secure, AD from %s)", server);
	if (res->n == 0)
		return dance_query_answer(q, DANCE_DNS_NODATA, res->ttl,
			"no TLSA records (secure, AD from %s)", server);
	return dance_query_answer_rrset(q, (char *const *)res->data, res->len,
		res->n, res->ttl);
}

static int
sb_selects(const struct dance_resolver_cfg *cfg)
{
	return cfg->trust_ad;
}

/* Only plain DNS to the forwarders: nothing of libunbound's
 * configuration applies. */
static int
sb_check(const struct dance_resolver_cfg *cfg, struct dance_error *err)
{
	if (cfg->forwarders == NULL || cfg->forwarders[0] == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "trust_ad without "
			"trust anchors needs forwarders (validating resolvers "
			"whose AD bit is trusted)");
	if (cfg->forward_tls)
		return dance_err_set(err, DANCE_ERR_CONFIG, "forward_tls is "
			"not supported with trust_ad (no trust anchors): the "
			"path to the resolver must be trusted as it is");
	if (cfg->unbound_conf != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "unbound_conf "
			"\"%s\" is not used with trust_ad (no trust anchors: "
			"the forwarders resolve)", cfg->unbound_conf);
	return DANCE_OK;
}

static void
sb_free(void *be)
{
	struct stub_backend *b = be;

	if (b == NULL)
		return;
	dance_stub_free(b->stub);
	free(b);
}

static void *
sb_create(struct dance_resolver *r, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	struct stub_backend *b;

	if (sb_check(cfg, err) != DANCE_OK)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	b->r = r;
	/* Hosts may watch our fd edge-triggered (nginx), so process()
	 * drains it; the bound is only against a flood re-arming sockets
	 * meanwhile. */
	b->drain_max = 2 * cfg->max_pending + 16;
	if (dance_stub_new(&b->stub, cfg->forwarders, cfg->timeout_ms, err)
		!= DANCE_OK) {
		free(b);
		return NULL;
	}
	return b;
}

static int
sb_fd(void *be)
{
	return dance_stub_fd(((struct stub_backend *)be)->stub);
}

static int
sb_submit(void *be, struct dance_query *q, struct dance_answer **now)
{
	struct stub_backend *b = be;
	struct dance_stubq *sq;
	char why[200];

	sq = dance_stubq_start(b->stub, dance_query_name(q), q,
		dance_now_ms(), why, sizeof(why));
	if (sq == NULL) {
		*now = dance_query_answer(q, DANCE_DNS_ERROR, -1, "%s", why);
		return -1;
	}
	dance_query_slot(q)->p = sq;
	return 0;
}

static void
sb_cancel(void *be, struct dance_query *q)
{
	struct stub_backend *b = be;
	union dance_query_slot *s = dance_query_slot(q);

	dance_stubq_free(b->stub, s->p);
	s->p = NULL;
}

/* Read the ready sockets and answer the queries that are done.  Each
 * query's socket is emptied per event, so the loop ends. */
static void
sb_process(void *be)
{
	struct stub_backend *b = be;
	struct dance_stub_result *res;
	struct dance_stubq *sq;
	struct dance_answer *a;
	struct dance_query *q;
	int ret;

	for (unsigned i = 0; i < b->drain_max; i++) {
		dance_resolver_lock(b->r);
		if ((q = dance_stub_ready(b->stub)) == NULL) {
			dance_resolver_unlock(b->r);
			return;
		}
		sq = dance_query_slot(q)->p;
		if (sq == NULL || !dance_stubq_io(b->stub, sq, dance_now_ms(),
			&res, &ret)) {
			dance_resolver_unlock(b->r);
			continue;
		}
		a = classify(q, ret, res, dance_stubq_server(b->stub, sq));
		sb_cancel(b, q);
		dance_query_done(q, a);
	}
}

static uint64_t
sb_next_timer(void *be, struct dance_query *q)
{
	struct dance_stubq *sq = dance_query_slot(q)->p;

	(void)be;
	return sq != NULL ? dance_stubq_next(sq) : UINT64_MAX;
}

static void
sb_timer(void *be, struct dance_query *q, uint64_t now)
{
	struct stub_backend *b = be;
	struct dance_stubq *sq = dance_query_slot(q)->p;

	if (sq != NULL)
		dance_stubq_timer(b->stub, sq, now);
}

const struct dance_backend_ops dance_backend_stub = {
	.name = "trust_ad",
	.selects = sb_selects,
	.create = sb_create,
	.free = sb_free,
	.fd = sb_fd,
	.submit = sb_submit,
	.cancel = sb_cancel,
	.cancel_any_thread = 1,
	.drop = sb_cancel,
	.process = sb_process,
	.next_timer = sb_next_timer,
	.timer = sb_timer,
};
