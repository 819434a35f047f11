/*
 * resolver.c -- DNSSEC-validated TLSA lookups through libunbound, with an
 * answer cache, coalescing of identical in-flight names, a cap on
 * distinct in-flight queries and a per-query deadline.
 *
 * Two backends sit behind the same in-flight table: libunbound (local
 * validation with trust anchors), or, with trust_ad and no anchors, the
 * stub transport of stub.c, which asks trusted validating resolvers and
 * believes their AD bit.  Each backend has submit (under the lock),
 * cancel and process; the rest of this file does not care which.
 *
 * Locking: one mutex per resolver guards every table (cache, in-flight
 * table, deadline list, waiters, stats), in both modes.  It is never held
 * while a user callback runs or while ub_process() runs (our libunbound
 * callback takes it), so callbacks may call back into the resolver.  It
 * is held around ub_resolve_async() so an answer cannot overtake the
 * registration of its query; libunbound calls no callback from there.
 *
 * Cancellation: after ub_cancel() libunbound does not call the callback,
 * unless another thread is already inside ub_process() between fetching
 * the answer and calling it.  So ub_cancel() is only ever called on the
 * driving thread (the event-mode caller, or the internal thread), the
 * same thread that runs ub_process().  A query abandoned from another
 * thread is parked on the doomed list, and the internal thread cancels it.
 *
 * The stub backend does all its socket work under the mutex (it is
 * short and never blocks), so any thread may start or drop a query.
 * Its epoll events carry the query pointer; the driving thread takes
 * one event at a time and re-checks the query under the lock, and a
 * query dropped from another thread stays allocated (doomed) until the
 * driving thread reaps it, so such a pointer is never stale.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unbound.h>

#include "dance_int.h"
#include "cache.h"
#include "stub.h"

#define RR_TYPE_TLSA	52
#define RR_CLASS_IN	1
#define RCODE_NOERROR	0
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3
/* dance_resolve_wait() waits this much beyond the query deadline before
 * it gives up on the driving thread. */
#define WAIT_MARGIN_MS	500
#define INFLIGHT_MAX_BUCKETS (1u << 16)

struct query;

struct dance_lookup {
	struct dance_resolver *r;
	struct query *q;		/* NULL once detached for delivery */
	struct dance_lookup *prev, *next;
	dance_lookup_cb cb;
	void *arg;
	int cancelled;			/* cancelled while detached */
	int running;			/* callback started */
};

struct query {
	struct dance_resolver *r;
	char name[DANCE_NAME_MAX + 1];
	uint32_t hash;
	int async_id;			/* libunbound backend */
	struct dance_stubq *sq;		/* stub backend */
	int doomed;			/* abandoned, awaiting ub_cancel */
	uint64_t deadline;
	struct query *hnext;		/* in-flight table chain */
	struct query *prev, *next;	/* deadline list or doomed list */
	struct dance_lookup *waiters, *wtail;	/* in arrival order */
	size_t nwaiters;
};

struct qlist {
	struct query *head, *tail;
};

struct dance_resolver {
	enum dance_resolver_mode mode;
	unsigned timeout_ms, max_pending;
	uint32_t min_ttl, max_ttl, neg_ttl, fail_ttl;
	struct ub_ctx *ub;		/* one backend: ub ... */
	struct dance_stub *stub;	/* ... or stub (trust_ad mode) */
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* dance_resolve_wait() */
	struct dance_cache *cache;
	struct query **inflight;
	size_t nbuckets;		/* power of two */
	/* In flight, by deadline: every query gets the same timeout, so
	 * appending keeps the list sorted and the head is the earliest. */
	struct qlist live;
	struct qlist doomed;
	unsigned pending;
	struct dance_resolver_stats st;
	/* Handed out when even an error answer cannot be allocated. */
	struct dance_answer *oom;
	/* Threaded mode. */
	pthread_t thread;
	int thread_started;
	int stop;
	int wake[2];			/* self-pipe to the internal thread */
};

void
dance_resolver_cfg_init(struct dance_resolver_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = DANCE_RESOLVER_EVENT;
	cfg->timeout_ms = 3000;
	cfg->max_pending = 1000;
	cfg->cache_size = 10000;
	cfg->min_ttl = 0;
	cfg->max_ttl = 3600;
	cfg->neg_ttl = 60;
	cfg->fail_ttl = 5;
}

/* ------------------------------------------------------------------ */
/* Lists and tables (caller holds r->mu)                               */
/* ------------------------------------------------------------------ */

static void
ql_append(struct qlist *l, struct query *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
}

static void
ql_remove(struct qlist *l, struct query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
}

static struct query *
inflight_find(struct dance_resolver *r, const char *name, uint32_t h)
{
	struct query *q = r->inflight[h & (r->nbuckets - 1)];

	for (; q != NULL; q = q->hnext) {
		if (q->hash == h && strcmp(q->name, name) == 0)
			return q;
	}
	return NULL;
}

static void
inflight_insert(struct dance_resolver *r, struct query *q)
{
	struct query **b = &r->inflight[q->hash & (r->nbuckets - 1)];

	q->hnext = *b;
	*b = q;
}

static void
inflight_remove(struct dance_resolver *r, struct query *q)
{
	struct query **p = &r->inflight[q->hash & (r->nbuckets - 1)];

	for (; *p != NULL; p = &(*p)->hnext) {
		if (*p == q) {
			*p = q->hnext;
			break;
		}
	}
	q->hnext = NULL;
}

/* Take a live query out of every table; it no longer counts as pending. */
static void
query_unlink(struct dance_resolver *r, struct query *q)
{
	inflight_remove(r, q);
	ql_remove(&r->live, q);
	r->pending--;
}

static void
waiter_attach(struct query *q, struct dance_lookup *w)
{
	w->q = q;
	w->next = NULL;
	w->prev = q->wtail;
	if (q->wtail != NULL)
		q->wtail->next = w;
	else
		q->waiters = w;
	q->wtail = w;
	q->nwaiters++;
}

static void
waiter_detach(struct query *q, struct dance_lookup *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		q->waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		q->wtail = w->prev;
	q->nwaiters--;
	w->q = NULL;
}

/* Detach all waiters for delivery; they keep their next links. */
static struct dance_lookup *
waiters_take(struct query *q)
{
	struct dance_lookup *w, *list = q->waiters;

	for (w = list; w != NULL; w = w->next)
		w->q = NULL;
	q->waiters = q->wtail = NULL;
	q->nwaiters = 0;
	return list;
}

static int
on_driving_thread(struct dance_resolver *r)
{
	if (r->mode == DANCE_RESOLVER_EVENT)
		return 1;
	return r->thread_started && pthread_equal(pthread_self(), r->thread);
}

static void
wake_thread(struct dance_resolver *r)
{
	ssize_t n;

	if (r->wake[1] < 0)
		return;
	/* Non-blocking: a full pipe already means "wake up". */
	n = write(r->wake[1], "w", 1);
	(void)n;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

static struct dance_answer *
answer_simple(struct dance_resolver *r, enum dance_dns_status status,
	const char *name, uint32_t ttl, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static struct dance_answer *
answer_simple(struct dance_resolver *r, enum dance_dns_status status,
	const char *name, uint32_t ttl, const char *fmt, ...)
{
	struct dance_answer *a;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	a = dance_answer_new(status, name, NULL, 0, ttl, why);
	if (a == NULL) {
		a = r->oom;
		dance_answer_ref(a);
	}
	return a;
}

static uint32_t
neg_ttl(struct dance_resolver *r, int ttl)
{
	if (ttl < 0)
		return 0;
	return (uint32_t)ttl < r->neg_ttl ? (uint32_t)ttl : r->neg_ttl;
}

static uint32_t
pos_ttl(struct dance_resolver *r, int ttl)
{
	uint32_t t = ttl < 0 ? 0 : (uint32_t)ttl;

	if (t < r->min_ttl)
		t = r->min_ttl;
	if (t > r->max_ttl)
		t = r->max_ttl;
	return t;
}

/* Secure, non-empty RRset of n rdata: parse each, keep the usable
 * ones.  Shared by both backends. */
static struct dance_answer *
answer_secure(struct dance_resolver *r, const char *name,
	char *const *data, const int *len, size_t n, int ttl)
{
	struct dance_tlsa *rr;
	struct dance_answer *a;
	struct dance_error e;
	char skipwhy[200] = "";
	size_t i, used = 0, skipped = 0;

	if ((rr = calloc(n, sizeof(*rr))) == NULL)
		return answer_simple(r, DANCE_DNS_ERROR, name, 0,
			"out of memory");
	for (i = 0; i < n; i++) {
		if (len[i] >= 0 && dance_tlsa_parse(
			(const unsigned char *)data[i],
			(size_t)len[i], &rr[used], &e) == DANCE_OK) {
			used++;
			continue;
		}
		if (skipped++ == 0)
			(void)snprintf(skipwhy, sizeof(skipwhy), "%.199s",
				len[i] < 0 ? "bad length" : e.reason);
	}
	if (used == 0) {
		/* Validated, but nothing that could ever match: the same
		 * as no TLSA at all for authentication, and cached as
		 * negative data. */
		free(rr);
		return answer_simple(r, DANCE_DNS_NODATA, name,
			neg_ttl(r, ttl),
			"no usable TLSA records (%zu malformed: %s)",
			skipped, skipwhy);
	}
	if (skipped > 0) {
		char why[256];

		(void)snprintf(why, sizeof(why),
			"ignored %zu malformed TLSA record%s: %s", skipped,
			skipped == 1 ? "" : "s", skipwhy);
		a = dance_answer_new(DANCE_DNS_SECURE, name, rr, used,
			pos_ttl(r, ttl), why);
	} else {
		a = dance_answer_new(DANCE_DNS_SECURE, name, rr, used,
			pos_ttl(r, ttl), NULL);
	}
	free(rr);
	if (a == NULL)
		return answer_simple(r, DANCE_DNS_ERROR, name, 0,
			"out of memory");
	return a;
}

/* Map a libunbound result to an outcome.  Order matters: a bogus result
 * usually also carries SERVFAIL, and bogus is the more useful reason. */
static struct dance_answer *
classify(struct dance_resolver *r, const char *name, int err,
	struct ub_result *res)
{
	size_t n;

	if (err != 0 || res == NULL)
		return answer_simple(r, DANCE_DNS_ERROR, name, 0,
			"libunbound: %s", ub_strerror(err));
	if (res->bogus)
		return answer_simple(r, DANCE_DNS_BOGUS, name, r->fail_ttl,
			"DNSSEC validation failed: %s", res->why_bogus != NULL
			? res->why_bogus : "no reason given");
	if (res->rcode == RCODE_SERVFAIL)
		return answer_simple(r, DANCE_DNS_SERVFAIL, name, r->fail_ttl,
			"SERVFAIL (no server gave a usable answer)");
	if (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)
		return answer_simple(r, DANCE_DNS_SERVFAIL, name, r->fail_ttl,
			"DNS error, rcode %d", res->rcode);
	if (!res->secure)
		return answer_simple(r, DANCE_DNS_INSECURE, name, r->neg_ttl,
			"answer is not DNSSEC-signed (no chain of trust)%s",
			res->nxdomain ? ", name does not exist" :
			!res->havedata ? ", no TLSA" : "");
	if (res->nxdomain)
		return answer_simple(r, DANCE_DNS_NXDOMAIN, name,
			neg_ttl(r, res->ttl), "name does not exist (secure)");
	if (!res->havedata || res->data == NULL || res->data[0] == NULL)
		return answer_simple(r, DANCE_DNS_NODATA, name,
			neg_ttl(r, res->ttl), "no TLSA records (secure)");
	n = 0;
	while (res->data[n] != NULL)
		n++;
	return answer_secure(r, name, res->data, res->len, n, res->ttl);
}

static int
ttl_int(int64_t t)
{
	return t < 0 ? -1 : t > INT_MAX ? INT_MAX : (int)t;
}

/*
 * Map a trusted resolver's answer to an outcome: AD is its verdict.  A
 * validating resolver answers SERVFAIL for bogus data, so that cannot be
 * told apart from an unreachable zone, except through an Extended DNS
 * Error, which goes into the reason.
 */
static struct dance_answer *
classify_stub(struct dance_resolver *r, const char *name, int ret,
	const struct dance_stub_result *res, const char *server)
{
	char ede[160] = "";

	if (ret != DANCE_STUB_OK)
		return answer_simple(r, DANCE_DNS_ERROR, name, 0,
			"malformed answer from %s: %s", server, res->why);
	if (res->ede >= 0)
		(void)snprintf(ede, sizeof(ede), "; EDE %d%s%s", res->ede,
			res->ede_text[0] != '\0' ? ": " : "", res->ede_text);
	if (res->rcode == RCODE_SERVFAIL)
		return answer_simple(r, DANCE_DNS_SERVFAIL, name, r->fail_ttl,
			"upstream SERVFAIL (bogus or unreachable) from %s%s",
			server, ede);
	if (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)
		return answer_simple(r, DANCE_DNS_SERVFAIL, name, r->fail_ttl,
			"DNS error from %s, rcode %d%s", server, res->rcode,
			ede);
	if (!res->ad)
		return answer_simple(r, DANCE_DNS_INSECURE, name, r->neg_ttl,
			"resolver did not set AD (%s: not validated as "
			"secure)%s", server,
			res->rcode == RCODE_NXDOMAIN ? ", name does not exist" :
			res->n == 0 ? ", no TLSA" : "");
	if (res->rcode == RCODE_NXDOMAIN)
		return answer_simple(r, DANCE_DNS_NXDOMAIN, name,
			neg_ttl(r, ttl_int(res->ttl)),
			"name does not exist (secure, AD from %s)", server);
	if (res->n == 0)
		return answer_simple(r, DANCE_DNS_NODATA, name,
			neg_ttl(r, ttl_int(res->ttl)),
			"no TLSA records (secure, AD from %s)", server);
	return answer_secure(r, name, (char *const *)res->data, res->len,
		res->n, ttl_int(res->ttl));
}

/* Store a copy with from_cache set, so cache hits are distinguishable
 * while every answer stays immutable.  Caller holds r->mu. */
static void
cache_store(struct dance_resolver *r, const struct dance_answer *a)
{
	struct dance_answer *c;

	if (a->ttl == 0 || a->status == DANCE_DNS_OVERLOAD
		|| a->status == DANCE_DNS_ERROR || a->name[0] == '\0')
		return;
	if ((c = dance_answer_copy(a, 1)) == NULL)
		return;
	(void)dance_cache_put(r->cache, c, dance_now_ms()
		+ (uint64_t)a->ttl * 1000u);
	dance_answer_unref(c);
}

/* Call the callbacks of detached waiters, without the lock.  A waiter
 * cancelled meanwhile (e.g. by an earlier callback) is skipped. */
static void
deliver(struct dance_resolver *r, struct dance_lookup *list,
	struct dance_answer *a)
{
	struct dance_lookup *w, *next;

	for (w = list; w != NULL; w = next) {
		pthread_mutex_lock(&r->mu);
		next = w->next;
		if (w->cancelled) {
			pthread_mutex_unlock(&r->mu);
			free(w);
			continue;
		}
		w->running = 1;
		pthread_mutex_unlock(&r->mu);
		w->cb(w->arg, a);
		pthread_mutex_lock(&r->mu);
		free(w);
		pthread_mutex_unlock(&r->mu);
	}
}

/*
 * q (already out of the in-flight table) is over with answer a (owned):
 * cache it, hand it to the waiters and free q.  Called with r->mu held;
 * returns with it released, as the callbacks must run unlocked.
 */
static void
query_finish(struct dance_resolver *r, struct query *q,
	struct dance_answer *a)
{
	struct dance_lookup *ws;

	/* Cached even without waiters: the work is done. */
	cache_store(r, a);
	ws = waiters_take(q);
	pthread_mutex_unlock(&r->mu);
	free(q);
	deliver(r, ws, a);
	dance_answer_unref(a);
}

/* ------------------------------------------------------------------ */
/* libunbound callback, deadlines, cancellation                       */
/* ------------------------------------------------------------------ */

static void
ub_cb(void *mydata, int err, struct ub_result *res)
{
	struct query *q = mydata;
	struct dance_resolver *r = q->r;
	struct dance_answer *a;

	a = classify(r, q->name, err, res);
	if (res != NULL)
		ub_resolve_free(res);
	pthread_mutex_lock(&r->mu);
	if (q->doomed)
		ql_remove(&r->doomed, q);
	else
		query_unlink(r, q);
	query_finish(r, q, a);
}

/* Stop the backend's work on q.  libunbound: driving thread only (see
 * the top); the stub may drop its sockets from any thread.  Holds r->mu. */
static void
backend_cancel(struct dance_resolver *r, struct query *q)
{
	if (r->stub != NULL) {
		dance_stubq_free(r->stub, q->sq);
		q->sq = NULL;
		return;
	}
	(void)ub_cancel(r->ub, q->async_id);
}

/* Stub backend: run the retransmit timers that are due.  Every query
 * has its own, so this walks the in-flight list.  Holds r->mu. */
static void
stub_timers(struct dance_resolver *r, uint64_t now)
{
	struct query *q;

	for (q = r->live.head; q != NULL; q = q->next) {
		if (q->sq != NULL && dance_stubq_next(q->sq) <= now)
			dance_stubq_timer(r->stub, q->sq, now);
	}
}

/* Stub backend: read the ready sockets and answer the queries that are
 * done.  Never blocks.  Driving thread. */
static void
stub_process(struct dance_resolver *r)
{
	struct dance_stub_result *res;
	struct dance_answer *a;
	struct query *q;
	int ret;

	/* Drain: hosts may watch our fd edge-triggered (nginx), like
	 * ub_process(), which reads every ready answer.  Each query's
	 * socket is emptied per event, so the loop ends; the bound is
	 * only against a flood re-arming sockets meanwhile. */
	for (unsigned i = 0; i < 2 * r->max_pending + 16; i++) {
		pthread_mutex_lock(&r->mu);
		if ((q = dance_stub_ready(r->stub)) == NULL) {
			pthread_mutex_unlock(&r->mu);
			return;
		}
		if (q->doomed || q->sq == NULL || !dance_stubq_io(r->stub,
			q->sq, dance_now_ms(), &res, &ret)) {
			pthread_mutex_unlock(&r->mu);
			continue;
		}
		a = classify_stub(r, q->name, ret, res,
			dance_stubq_server(r->stub, q->sq));
		backend_cancel(r, q);
		query_unlink(r, q);
		query_finish(r, q, a);
	}
}

/* Read what the backend has ready (never blocks).  Driving thread. */
static void
backend_process(struct dance_resolver *r)
{
	if (r->stub != NULL) {
		stub_process(r);
		return;
	}
	/* Reads the answers that are ready and calls ub_cb for each.  A
	 * pipe error leaves the queries to their deadline. */
	(void)ub_process(r->ub);
}

static int
backend_fd(struct dance_resolver *r)
{
	return r->stub != NULL ? dance_stub_fd(r->stub) : ub_fd(r->ub);
}

/* Answer TIMEOUT for every query past its deadline.  Driving thread. */
static void
expire(struct dance_resolver *r)
{
	struct dance_answer *a;
	struct query *q;
	uint64_t now = dance_now_ms();

	pthread_mutex_lock(&r->mu);
	while ((q = r->live.head) != NULL && q->deadline <= now) {
		query_unlink(r, q);
		r->st.timeouts++;
		backend_cancel(r, q);
		a = answer_simple(r, DANCE_DNS_TIMEOUT, q->name, r->fail_ttl,
			"no answer within %u ms", r->timeout_ms);
		/* Callbacks may start lookups; those get later deadlines,
		 * so this loop ends. */
		query_finish(r, q, a);
		pthread_mutex_lock(&r->mu);
	}
	/* After the deadlines: no retransmit for a query that is over. */
	if (r->stub != NULL)
		stub_timers(r, now);
	pthread_mutex_unlock(&r->mu);
}

/* Cancel the queries abandoned by other threads.  Driving thread. */
static void
reap_doomed(struct dance_resolver *r)
{
	struct query *q;

	pthread_mutex_lock(&r->mu);
	while ((q = r->doomed.head) != NULL) {
		ql_remove(&r->doomed, q);
		backend_cancel(r, q);
		free(q);
	}
	pthread_mutex_unlock(&r->mu);
}

/* Remove one waiter; drop the query when it was the last.  Holds r->mu. */
static void
cancel_locked(struct dance_resolver *r, struct dance_lookup *w)
{
	struct query *q = w->q;

	if (q == NULL) {
		/* Detached for delivery: skip it unless it already runs
		 * (a callback cancelling itself, or a cross-thread race
		 * the caller lost). */
		if (!w->running)
			w->cancelled = 1;
		return;
	}
	waiter_detach(q, w);
	free(w);
	if (q->nwaiters > 0)
		return;
	query_unlink(r, q);
	if (on_driving_thread(r)) {
		backend_cancel(r, q);
		free(q);
		return;
	}
	/* The stub's sockets can go now; q itself must wait for the
	 * driving thread, which may hold its pointer from an event. */
	if (r->stub != NULL)
		backend_cancel(r, q);
	q->doomed = 1;
	ql_append(&r->doomed, q);
	wake_thread(r);
}

void
dance_lookup_cancel(struct dance_lookup *l)
{
	struct dance_resolver *r;

	if (l == NULL)
		return;
	r = l->r;
	pthread_mutex_lock(&r->mu);
	cancel_locked(r, l);
	pthread_mutex_unlock(&r->mu);
}

/* ms until the earliest deadline or stub retransmit, -1 if none.
 * Holds r->mu. */
static int
next_timeout_locked(struct dance_resolver *r)
{
	uint64_t now, d, t;
	struct query *q;

	if (r->live.head == NULL)
		return -1;
	t = r->live.head->deadline;
	for (q = r->live.head; r->stub != NULL && q != NULL; q = q->next) {
		if (q->sq != NULL && dance_stubq_next(q->sq) < t)
			t = dance_stubq_next(q->sq);
	}
	now = dance_now_ms();
	if (t <= now)
		return 0;
	d = t - now;
	return d > INT_MAX ? INT_MAX : (int)d;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */
/* ------------------------------------------------------------------ */

/* Lower-cased copy of name into key; 0 if it cannot be a name. */
static int
name_key(const char *name, char *key)
{
	size_t len;

	if (name == NULL || (len = strlen(name)) == 0
		|| len > DANCE_NAME_MAX)
		return 0;
	memcpy(key, name, len + 1);
	dance_str_lower(key);
	return 1;
}

/* Hand q to the backend.  Holds r->mu: an answer cannot overtake the
 * registration of q.  Non-zero with *now set to an error answer. */
static int
backend_submit(struct dance_resolver *r, struct query *q,
	struct dance_answer **now)
{
	char why[200];
	int ret;

	if (r->stub != NULL) {
		q->sq = dance_stubq_start(r->stub, q->name, q, dance_now_ms(),
			why, sizeof(why));
		if (q->sq == NULL) {
			*now = answer_simple(r, DANCE_DNS_ERROR, q->name, 0,
				"%s", why);
			return -1;
		}
		return 0;
	}
	ret = ub_resolve_async(r->ub, q->name, RR_TYPE_TLSA, RR_CLASS_IN, q,
		ub_cb, &q->async_id);
	if (ret != 0) {
		*now = answer_simple(r, DANCE_DNS_ERROR, q->name, 0,
			"ub_resolve_async(%s): %s", q->name, ub_strerror(ret));
		return -1;
	}
	return 0;
}

/* Caller holds r->mu.  Returns the waiter, or NULL with *now set to an
 * answer to deliver at once. */
static struct dance_lookup *
lookup_locked(struct dance_resolver *r, const char *key, dance_lookup_cb cb,
	void *arg, struct dance_answer **now, int *wake)
{
	struct dance_lookup *w;
	struct query *q;
	uint32_t h;

	r->st.lookups++;
	if ((*now = dance_cache_get(r->cache, key, dance_now_ms())) != NULL) {
		r->st.cache_hits++;
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		*now = answer_simple(r, DANCE_DNS_ERROR, key, 0,
			"out of memory");
		return NULL;
	}
	w->r = r;
	w->cb = cb;
	w->arg = arg;
	h = dance_name_hash(key);
	if ((q = inflight_find(r, key, h)) != NULL) {
		waiter_attach(q, w);
		r->st.coalesced++;
		return w;
	}
	if (r->pending >= r->max_pending) {
		free(w);
		r->st.overload++;
		*now = answer_simple(r, DANCE_DNS_OVERLOAD, key, 0,
			"%u queries in flight (max_pending)", r->pending);
		return NULL;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		free(w);
		*now = answer_simple(r, DANCE_DNS_ERROR, key, 0,
			"out of memory");
		return NULL;
	}
	q->r = r;
	memcpy(q->name, key, strlen(key) + 1);
	q->hash = h;
	if (backend_submit(r, q, now) != 0) {
		free(q);
		free(w);
		return NULL;
	}
	q->deadline = dance_now_ms() + r->timeout_ms;
	/* An idle internal thread sleeps without a deadline, and the
	 * stub's retransmit may come before the deadlines it knows. */
	*wake = r->live.head == NULL || r->stub != NULL;
	ql_append(&r->live, q);
	inflight_insert(r, q);
	r->pending++;
	r->st.queries++;
	waiter_attach(q, w);
	return w;
}

struct dance_lookup *
dance_resolver_lookup(struct dance_resolver *r, const char *name,
	dance_lookup_cb cb, void *arg, int *done)
{
	char key[DANCE_NAME_MAX + 1];
	struct dance_lookup *w = NULL;
	struct dance_answer *a = NULL;
	int dummy, wake = 0;

	if (done == NULL)
		done = &dummy;
	*done = 0;
	if (r == NULL || cb == NULL) {
		*done = 1;
		return NULL;
	}
	if (!name_key(name, key)) {
		pthread_mutex_lock(&r->mu);
		r->st.lookups++;
		pthread_mutex_unlock(&r->mu);
		a = answer_simple(r, DANCE_DNS_ERROR, "", 0,
			"not a DNS name (empty or longer than %d)",
			DANCE_NAME_MAX);
	} else {
		pthread_mutex_lock(&r->mu);
		w = lookup_locked(r, key, cb, arg, &a, &wake);
		pthread_mutex_unlock(&r->mu);
	}
	if (wake && r->mode == DANCE_RESOLVER_THREADED)
		wake_thread(r);
	if (w != NULL)
		return w;
	*done = 1;
	cb(arg, a);
	dance_answer_unref(a);
	return NULL;
}

struct dance_answer *
dance_resolver_cached(struct dance_resolver *r, const char *name)
{
	char key[DANCE_NAME_MAX + 1];
	struct dance_answer *a;

	if (r == NULL || !name_key(name, key))
		return NULL;
	pthread_mutex_lock(&r->mu);
	a = dance_cache_get(r->cache, key, dance_now_ms());
	pthread_mutex_unlock(&r->mu);
	return a;
}

void
dance_resolver_cache_put(struct dance_resolver *r, struct dance_answer *a)
{
	if (r == NULL || a == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	cache_store(r, a);
	pthread_mutex_unlock(&r->mu);
}

void
dance_resolver_stats(struct dance_resolver *r,
	struct dance_resolver_stats *st)
{
	pthread_mutex_lock(&r->mu);
	*st = r->st;
	st->pending = r->pending;
	pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------ */
/* Event mode                                                          */
/* ------------------------------------------------------------------ */

enum dance_resolver_mode
dance_resolver_get_mode(const struct dance_resolver *r)
{
	return r->mode;
}

int
dance_resolver_fd(struct dance_resolver *r)
{
	if (r == NULL || r->mode != DANCE_RESOLVER_EVENT)
		return -1;
	return backend_fd(r);
}

void
dance_resolver_process(struct dance_resolver *r)
{
	if (r == NULL || r->mode != DANCE_RESOLVER_EVENT)
		return;
	backend_process(r);
	expire(r);
}

int
dance_resolver_next_timeout(struct dance_resolver *r)
{
	int t;

	if (r == NULL)
		return -1;
	pthread_mutex_lock(&r->mu);
	t = next_timeout_locked(r);
	pthread_mutex_unlock(&r->mu);
	return t;
}

/* ------------------------------------------------------------------ */
/* Threaded mode                                                       */
/* ------------------------------------------------------------------ */

static void *
thread_main(void *arg)
{
	struct dance_resolver *r = arg;
	struct pollfd pfd[2];
	char buf[64];
	int t;

	pfd[0].fd = backend_fd(r);
	pfd[0].events = POLLIN;
	pfd[1].fd = r->wake[0];
	pfd[1].events = POLLIN;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		t = next_timeout_locked(r);
		pthread_mutex_unlock(&r->mu);
		reap_doomed(r);
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, t) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0) {
			while (read(r->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		if (pfd[0].revents != 0)
			backend_process(r);
		expire(r);
	}
	return NULL;
}

struct waitctx {
	struct dance_resolver *r;
	struct dance_answer *a;
	int done;
	char name[DANCE_NAME_MAX + 1];
};

static void
wait_cb(void *arg, struct dance_answer *a)
{
	struct waitctx *wc = arg;

	dance_answer_ref(a);
	pthread_mutex_lock(&wc->r->mu);
	wc->a = a;
	wc->done = 1;
	pthread_cond_broadcast(&wc->r->cv);
	pthread_mutex_unlock(&wc->r->mu);
}

/* Give up on a lookup that outlived its deadline plus margin (the
 * driving thread is stuck or the host stopped driving us). */
static struct dance_answer *
wait_abandon(struct dance_resolver *r, struct dance_lookup *l,
	struct waitctx *wc)
{
	if (l->q != NULL || !l->running) {
		cancel_locked(r, l);
		return answer_simple(r, DANCE_DNS_TIMEOUT, wc->name, 0,
			"no answer within %u ms", r->timeout_ms);
	}
	/* The callback is running and about to store the answer. */
	while (!wc->done)
		pthread_cond_wait(&r->cv, &r->mu);
	return wc->a;
}

static struct dance_answer *
wait_threaded(struct dance_resolver *r, struct dance_lookup *l,
	struct waitctx *wc)
{
	struct dance_answer *a;
	struct timespec ts;
	uint64_t ns;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = (uint64_t)ts.tv_nsec + ((uint64_t)r->timeout_ms + WAIT_MARGIN_MS)
		* 1000000u;
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&r->mu);
	while (!wc->done) {
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT
			&& !wc->done) {
			a = wait_abandon(r, l, wc);
			pthread_mutex_unlock(&r->mu);
			return a;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return wc->a;
}

/* Event mode: drive the resolver ourselves until the answer is in. */
static struct dance_answer *
wait_event(struct dance_resolver *r, struct dance_lookup *l,
	struct waitctx *wc)
{
	struct dance_answer *a;
	struct pollfd pfd;
	uint64_t end, now;
	int t;

	end = dance_now_ms() + r->timeout_ms + WAIT_MARGIN_MS;
	pfd.fd = backend_fd(r);
	pfd.events = POLLIN;
	while (!wc->done) {
		now = dance_now_ms();
		if (now >= end) {
			pthread_mutex_lock(&r->mu);
			a = wait_abandon(r, l, wc);
			pthread_mutex_unlock(&r->mu);
			return a;
		}
		t = dance_resolver_next_timeout(r);
		if (t < 0 || (uint64_t)t > end - now)
			t = (int)(end - now);
		(void)poll(&pfd, 1, t);
		dance_resolver_process(r);
	}
	return wc->a;
}

struct dance_answer *
dance_resolve_wait(struct dance_resolver *r, const char *name)
{
	struct waitctx wc;
	struct dance_lookup *l;
	int done;

	if (r == NULL)
		return NULL;
	if (r->mode == DANCE_RESOLVER_THREADED && on_driving_thread(r))
		return answer_simple(r, DANCE_DNS_ERROR, name, 0,
			"dance_resolve_wait() called from a resolver callback");
	memset(&wc, 0, sizeof(wc));
	wc.r = r;
	if (name != NULL)
		(void)snprintf(wc.name, sizeof(wc.name), "%s", name);
	l = dance_resolver_lookup(r, name, wait_cb, &wc, &done);
	if (done)
		return wc.a;
	if (r->mode == DANCE_RESOLVER_THREADED)
		return wait_threaded(r, l, &wc);
	return wait_event(r, l, &wc);
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static int
readable(const char *what, const char *file, struct dance_error *err)
{
	FILE *f = fopen(file, "r");

	if (f == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"%s \"%s\": %s", what, file, strerror(errno));
	(void)fclose(f);
	return DANCE_OK;
}

static int
ub_fail(struct dance_error *err, const char *what, const char *val, int ret)
{
	return dance_err_set(err, DANCE_ERR_CONFIG, "%s \"%s\": %s", what,
		val, ub_strerror(ret));
}

/*
 * Forwarder "addr[@port][#tls-auth-name]".  libunbound wants the port
 * whenever an auth name follows, so the default port is made explicit
 * (853 for DNS-over-TLS, else 53).
 */
static int
add_forwarder(struct ub_ctx *ub, const char *fwd, int tls,
	struct dance_error *err)
{
	char buf[512];
	const char *at, *hash, *p;
	unsigned long port;
	int ret;

	if (fwd[0] == '\0' || strlen(fwd) >= sizeof(buf) - 8)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"bad forwarder \"%s\": empty or too long", fwd);
	hash = strchr(fwd, '#');
	at = strchr(fwd, '@');
	if (hash != NULL && hash[1] == '\0')
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"bad forwarder \"%s\": empty TLS auth name", fwd);
	if (at != NULL && (hash == NULL || at < hash)) {
		port = 0;
		for (p = at + 1; *p != '\0' && *p != '#'; p++) {
			if (*p < '0' || *p > '9' || port > 65535)
				break;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (p == at + 1 || (*p != '\0' && *p != '#') || port == 0
			|| port > 65535)
			return dance_err_set(err, DANCE_ERR_CONFIG,
				"bad forwarder \"%s\": bad port", fwd);
		(void)snprintf(buf, sizeof(buf), "%s", fwd);
	} else if (hash != NULL) {
		(void)snprintf(buf, sizeof(buf), "%.*s@%d%s",
			(int)(hash - fwd), fwd, tls ? 853 : 53, hash);
	} else {
		(void)snprintf(buf, sizeof(buf), "%s", fwd);
	}
	if ((ret = ub_ctx_set_fwd(ub, buf)) != 0)
		return ub_fail(err, "bad forwarder", fwd, ret);
	return DANCE_OK;
}

/*
 * Bring a libunbound option to at most (raise == 0) or at least
 * (raise == 1) val, leaving a value from unbound_conf that is already
 * on the right side of it alone.
 */
static int
clamp_option(struct ub_ctx *ub, const char *opt, uint32_t val, int raise,
	struct dance_error *err)
{
	char name[64], buf[16], *cur = NULL;
	int ret;

	(void)snprintf(name, sizeof(name), "%s", opt);
	name[strlen(name) - 1] = '\0';	/* get_option wants no colon */
	if (ub_ctx_get_option(ub, name, &cur) == 0 && cur != NULL) {
		unsigned long c = strtoul(cur, NULL, 10);

		free(cur);
		if (raise ? c >= val : c < val)
			return DANCE_OK;
	}
	(void)snprintf(buf, sizeof(buf), "%u", (unsigned)val);
	if ((ret = ub_ctx_set_option(ub, opt, buf)) != 0)
		return ub_fail(err, "libunbound option", opt, ret);
	return DANCE_OK;
}

/*
 * Our cache bounds also bound libunbound's, so a max_ttl expiry really
 * re-fetches.  Its query capacity must match max_pending: libunbound's
 * default of 16 outgoing sockets lets a few lookups hanging on a dead
 * server queue every other name behind them (the slowloris case).
 * Sockets are opened per query, so the higher limit costs nothing idle.
 */
static int
ub_limits(struct ub_ctx *ub, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	uint32_t cap = cfg->max_pending + 64;

	if (clamp_option(ub, "cache-max-ttl:", cfg->max_ttl, 0, err) != 0
		|| clamp_option(ub, "cache-max-negative-ttl:", cfg->neg_ttl, 0,
		err) != 0
		|| clamp_option(ub, "outgoing-range:", cap, 1, err) != 0
		|| clamp_option(ub, "num-queries-per-thread:", cap, 1, err) != 0)
		return DANCE_ERR_CONFIG;
	return DANCE_OK;
}

static int
cfg_check(const struct dance_resolver_cfg *cfg, struct dance_error *err)
{
	int has_ta = cfg->trust_anchor_files != NULL
		&& cfg->trust_anchor_files[0] != NULL;
	int has_fwd = cfg->forwarders != NULL && cfg->forwarders[0] != NULL;

	if (cfg->mode != DANCE_RESOLVER_EVENT
		&& cfg->mode != DANCE_RESOLVER_THREADED)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"unknown resolver mode %d", (int)cfg->mode);
	if (!has_ta && !cfg->trust_ad)
		return dance_err_set(err, DANCE_ERR_CONFIG, "no trust anchor: "
			"refusing to run without DNSSEC validation");
	/* trust_ad without anchors: the stub backend, because libunbound
	 * (checked with 1.17.1) clears the AD bit of a forwarder's
	 * answer.  Only plain DNS to the forwarders, nothing of
	 * libunbound's configuration applies. */
	if (!has_ta && !has_fwd)
		return dance_err_set(err, DANCE_ERR_CONFIG, "trust_ad without "
			"trust anchors needs forwarders (validating resolvers "
			"whose AD bit is trusted)");
	if (!has_ta && cfg->forward_tls)
		return dance_err_set(err, DANCE_ERR_CONFIG, "forward_tls is "
			"not supported with trust_ad (no trust anchors): the "
			"path to the resolver must be trusted as it is");
	if (!has_ta && cfg->unbound_conf != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "unbound_conf "
			"\"%s\" is not used with trust_ad (no trust anchors: "
			"the forwarders resolve)", cfg->unbound_conf);
	if (cfg->forward_tls && !has_fwd)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"forward_tls needs forwarders");
	if (cfg->timeout_ms == 0)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"timeout_ms must be > 0");
	if (cfg->max_pending == 0)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"max_pending must be > 0");
	if (cfg->min_ttl > cfg->max_ttl)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"min_ttl %u > max_ttl %u", (unsigned)cfg->min_ttl,
			(unsigned)cfg->max_ttl);
	return DANCE_OK;
}

/*
 * libunbound sets up its TLS context only when a worker starts, and a
 * libunbound built without OpenSSL (Debian's uses nettle) cannot do
 * DNS-over-TLS at all: every lookup would fail.  A synchronous lookup of
 * a local-only name starts a worker without any network traffic.
 */
static int
tls_probe(struct ub_ctx *ub, struct dance_error *err)
{
	static const char probe[] = "dance-tls-probe.invalid.";
	struct ub_result *res = NULL;
	int ret;

	if ((ret = ub_ctx_zone_add(ub, probe, "static")) != 0)
		return ub_fail(err, "local zone", probe, ret);
	ret = ub_resolve(ub, probe, 1, RR_CLASS_IN, &res);
	if (res != NULL)
		ub_resolve_free(res);
	if (ret != 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "forward_tls: "
			"libunbound cannot set up DNS-over-TLS (%s): it is "
			"built without OpenSSL (as Debian's is), or "
			"tls_ca_file is unusable", ub_strerror(ret));
	return DANCE_OK;
}

static int
ub_setup(struct dance_resolver *r, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	const char *const *p;
	int ret;

	if ((r->ub = ub_ctx_create()) == NULL)
		return dance_err_set(err, DANCE_ERR_NOMEM,
			"ub_ctx_create failed");
	/* Answers come back through a pipe from libunbound's thread. */
	if ((ret = ub_ctx_async(r->ub, 1)) != 0)
		return ub_fail(err, "ub_ctx_async", "1", ret);
	if (cfg->unbound_conf != NULL) {
		if (readable("unbound_conf", cfg->unbound_conf, err) != 0)
			return DANCE_ERR_CONFIG;
		if ((ret = ub_ctx_config(r->ub, cfg->unbound_conf)) != 0)
			return ub_fail(err, "unbound_conf", cfg->unbound_conf,
				ret);
	}
	for (p = cfg->trust_anchor_files; p != NULL && *p != NULL; p++) {
		if (readable("trust anchor file", *p, err) != 0)
			return DANCE_ERR_CONFIG;
		if ((ret = ub_ctx_add_ta_file(r->ub, *p)) != 0)
			return ub_fail(err, "trust anchor file", *p, ret);
	}
	for (p = cfg->forwarders; p != NULL && *p != NULL; p++) {
		if (add_forwarder(r->ub, *p, cfg->forward_tls, err) != 0)
			return DANCE_ERR_CONFIG;
	}
	if (cfg->forward_tls) {
		if ((ret = ub_ctx_set_tls(r->ub, 1)) != 0)
			return ub_fail(err, "forward_tls", "1", ret);
		if (cfg->tls_ca_file != NULL) {
			if (readable("tls_ca_file", cfg->tls_ca_file, err) != 0)
				return DANCE_ERR_CONFIG;
			if ((ret = ub_ctx_set_option(r->ub, "tls-cert-bundle:",
				cfg->tls_ca_file)) != 0)
				return ub_fail(err, "tls_ca_file",
					cfg->tls_ca_file, ret);
		}
	}
	if (ub_limits(r->ub, cfg, err) != DANCE_OK)
		return DANCE_ERR_CONFIG;
	/* libunbound reads trust anchors and the rest only when it is
	 * finalised; removing a zone that does not exist forces that now,
	 * so a bad file fails here rather than at the first lookup. */
	if ((ret = ub_ctx_zone_remove(r->ub, "dance-finalize.invalid.")) != 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "libunbound "
			"rejected the configuration (trust anchor file \"%s\"%s, "
			"unbound_conf \"%s\"; details on stderr): %s",
			cfg->trust_anchor_files[0],
			cfg->trust_anchor_files[1] != NULL ? " ..." : "",
			cfg->unbound_conf != NULL ? cfg->unbound_conf : "",
			ub_strerror(ret));
	if (cfg->forward_tls)
		return tls_probe(r->ub, err);
	return DANCE_OK;
}

struct dance_resolver *
dance_resolver_new(const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	struct dance_resolver *r;
	pthread_condattr_t ca;
	size_t nb = 16;

	if (cfg == NULL) {
		dance_err_set(err, DANCE_ERR_CONFIG, "no configuration");
		return NULL;
	}
	if (cfg_check(cfg, err) != DANCE_OK)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	r->wake[0] = r->wake[1] = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	r->mode = cfg->mode;
	r->timeout_ms = cfg->timeout_ms;
	r->max_pending = cfg->max_pending;
	r->min_ttl = cfg->min_ttl;
	r->max_ttl = cfg->max_ttl;
	r->neg_ttl = cfg->neg_ttl;
	r->fail_ttl = cfg->fail_ttl;
	if (cfg->trust_anchor_files != NULL
		&& cfg->trust_anchor_files[0] != NULL) {
		/* Local validation wins: trust_ad is ignored. */
		if (ub_setup(r, cfg, err) != DANCE_OK)
			goto fail;
	} else if (dance_stub_new(&r->stub, cfg->forwarders, cfg->timeout_ms,
		err) != DANCE_OK) {
		goto fail;
	}
	while (nb < cfg->max_pending && nb < INFLIGHT_MAX_BUCKETS)
		nb <<= 1;
	r->nbuckets = nb;
	r->inflight = calloc(nb, sizeof(*r->inflight));
	r->cache = dance_cache_new(cfg->cache_size);
	r->oom = dance_answer_new(DANCE_DNS_ERROR, "", NULL, 0, 0,
		"out of memory");
	if (r->inflight == NULL || r->cache == NULL || r->oom == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if (r->mode == DANCE_RESOLVER_THREADED) {
		if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
			dance_err_set(err, DANCE_ERR_INTERNAL, "pipe: %s",
				strerror(errno));
			goto fail;
		}
		if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
			dance_err_set(err, DANCE_ERR_INTERNAL,
				"cannot start the resolver thread");
			goto fail;
		}
		r->thread_started = 1;
	}
	return r;
fail:
	dance_resolver_free(r);
	return NULL;
}

static void
free_queries(struct dance_resolver *r, struct qlist *l)
{
	struct dance_lookup *w, *wn;
	struct query *q;

	while ((q = l->head) != NULL) {
		ql_remove(l, q);
		if (r->stub != NULL)
			dance_stubq_free(r->stub, q->sq);
		for (w = q->waiters; w != NULL; w = wn) {
			wn = w->next;
			free(w);
		}
		free(q);
	}
}

void
dance_resolver_free(struct dance_resolver *r)
{
	if (r == NULL)
		return;
	if (r->thread_started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_mutex_unlock(&r->mu);
		wake_thread(r);
		(void)pthread_join(r->thread, NULL);
	}
	/* After ub_ctx_delete no libunbound callback can run, so the
	 * queries (its callback arguments) can go; their waiters are
	 * dropped without a callback. */
	if (r->ub != NULL)
		ub_ctx_delete(r->ub);
	free_queries(r, &r->live);
	free_queries(r, &r->doomed);
	dance_stub_free(r->stub);
	free(r->inflight);
	dance_cache_free(r->cache);
	dance_answer_unref(r->oom);
	if (r->wake[0] >= 0)
		(void)close(r->wake[0]);
	if (r->wake[1] >= 0)
		(void)close(r->wake[1]);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
