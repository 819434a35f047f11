/*
 * resolver_backend.h -- internal: what a resolver backend provides and
 * what resolver.c gives it back.
 *
 * resolver.c owns everything common (cache and its second tier,
 * coalescing, the max_pending cap, deadlines, waiters and callbacks,
 * locking, the driving thread).  A backend only sends one TLSA question
 * per in-flight name and reports the DNS facts of its answer; the TTL
 * caps are applied by resolver.c (dance_query_answer).  A new backend is
 * one file defining a struct dance_backend_ops, plus one line in
 * resolver.c's table (the first whose selects() accepts the
 * configuration is used).
 */
#ifndef DANCE_RESOLVER_BACKEND_H
#define DANCE_RESOLVER_BACKEND_H

#include <stdint.h>
#include "dance.h"

/* One in-flight name (resolver.c).  Backends keep their per-query state
 * in its slot. */
struct dance_query;

union dance_query_slot {
	void *p;
	int id;
};

struct dance_backend_ops {
	const char *name;
	/* 1 when cfg (already checked by resolver.c) selects this
	 * backend. */
	int (*selects)(const struct dance_resolver_cfg *cfg);
	/* The backend's state, or NULL with err set.  r is kept for
	 * dance_resolver_lock() and the answer helpers. */
	void *(*create)(struct dance_resolver *r,
		const struct dance_resolver_cfg *cfg, struct dance_error *err);
	/* After drop() of every remaining query; no completion may come
	 * after it.  be may be NULL. */
	void (*free)(void *be);
	/* The descriptor the driving thread polls for reading. */
	int (*fd)(void *be);
	/* Send q's question.  Lock held (an answer cannot overtake the
	 * registration of q).  0, or -1 with *now set to an error answer
	 * (dance_query_answer). */
	int (*submit)(void *be, struct dance_query *q,
		struct dance_answer **now);
	/* Stop q's work; q will not complete.  Lock held.  Called at most
	 * once per query, on the driving thread unless cancel_any_thread. */
	void (*cancel)(void *be, struct dance_query *q);
	int cancel_any_thread;
	/* Teardown, before free(): release what q holds, without I/O that
	 * could block.  NULL when free() releases everything. */
	void (*drop)(void *be, struct dance_query *q);
	/* Read what is ready and complete finished queries through
	 * dance_query_done().  Never blocks.  Driving thread, lock NOT
	 * held (take it with dance_resolver_lock()). */
	void (*process)(void *be);
	/* Optional per-query timers (retransmits): when q next wants
	 * timer() (monotonic ms, UINT64_MAX for never), and run it.  Lock
	 * held, driving thread. */
	uint64_t (*next_timer)(void *be, struct dance_query *q);
	void (*timer)(void *be, struct dance_query *q, uint64_t now);
};

extern const struct dance_backend_ops dance_backend_unbound;
extern const struct dance_backend_ops dance_backend_stub;

/* ---- given by resolver.c ---- */

void dance_resolver_lock(struct dance_resolver *r);
void dance_resolver_unlock(struct dance_resolver *r);

struct dance_resolver *dance_query_resolver(struct dance_query *q);
const char *dance_query_name(const struct dance_query *q);
union dance_query_slot *dance_query_slot(struct dance_query *q);

/*
 * An answer for q with the resolver's TTL policy for status applied to
 * dns_ttl (the DNS TTL in seconds, -1 when unknown): ERROR 0; BOGUS and
 * SERVFAIL fail_ttl; INSECURE neg_ttl; NXDOMAIN and NODATA
 * min(dns_ttl, neg_ttl).  Never NULL (an out-of-memory answer instead).
 */
struct dance_answer *dance_query_answer(struct dance_query *q,
	enum dance_dns_status status, int64_t dns_ttl, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A validated, non-empty RRset of n rdata: SECURE with the usable
 * records (TTL between min_ttl and max_ttl), or NODATA when none
 * parses. */
struct dance_answer *dance_query_answer_rrset(struct dance_query *q,
	char *const *data, const int *len, size_t n, int64_t dns_ttl);

/* q is over with answer a (owned).  Lock held; returns with it
 * released (the waiters' callbacks run unlocked) and q freed. */
void dance_query_done(struct dance_query *q, struct dance_answer *a);

#endif /* DANCE_RESOLVER_BACKEND_H */
