/*
 * resolver.c -- DNSSEC-validated TLSA lookups: the part common to every
 * backend.  An answer cache (with an optional second tier, e.g. nginx's
 * shared memory), coalescing of identical in-flight names, a cap on
 * distinct in-flight queries, a per-query deadline, waiters and their
 * callbacks, and the driving thread of threaded mode.
 *
 * Backends (resolver_backend.h): resolver_unbound.c (libunbound, local
 * validation with trust anchors) and resolver_stub.c (trust_ad: the AD
 * bit of trusted validating resolvers, through stub.c).  The rule: a
 * backend sends one question per in-flight name and reports the DNS
 * facts through dance_query_answer*() and dance_query_done(); it never
 * sees waiters, the cache or the caps, and nothing here tests which
 * backend runs.  A third backend is one file plus one line in
 * backends[] below.
 *
 * Locking: one mutex per resolver guards every table (cache, in-flight
 * table, deadline list, waiters, stats) and every backend call but
 * process().  It is never held while a user callback runs or while a
 * backend's process() reads (the backend takes it to complete a query),
 * so callbacks may call back into the resolver.  It is held around
 * submit so an answer cannot overtake the registration of its query.
 * The second tier's get/put run under it (they must not call back).
 *
 * Cancellation: a backend whose cancel is only safe on the driving
 * thread (libunbound: see resolver_unbound.c) gets a query abandoned
 * from another thread parked on the doomed list, and the internal
 * thread cancels it.  Backends with cancel_any_thread stop at once; the
 * query itself still waits on the doomed list for the driving thread,
 * which may hold its pointer from an event.
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

#include "dance_int.h"
#include "cache.h"
#include "metrics_int.h"
#include "resolver_backend.h"

/* dance_resolve_wait() waits this much beyond the query deadline before
 * it gives up on the driving thread. */
#define WAIT_MARGIN_MS	500
#define INFLIGHT_MAX_BUCKETS (1u << 16)

/* Tried in order: the first backend that selects the configuration. */
static const struct dance_backend_ops *const backends[] = {
	&dance_backend_unbound,
	&dance_backend_stub,
};

struct dance_lookup {
	struct dance_resolver *r;
	struct dance_query *q;		/* NULL once detached for delivery */
	struct dance_lookup *prev, *next;
	dance_lookup_cb cb;
	void *arg;
	int cancelled;			/* cancelled while detached */
	int running;			/* callback started */
};

struct dance_query {
	struct dance_resolver *r;
	char name[DANCE_NAME_MAX + 1];
	uint32_t hash;
	union dance_query_slot slot;	/* the backend's */
	int be_done;			/* backend cancelled or dropped */
	int doomed;			/* abandoned, awaiting the driver */
	uint64_t deadline;
	struct dance_query *hnext;	/* in-flight table chain */
	struct dance_query *prev, *next;	/* deadline or doomed list */
	struct dance_lookup *waiters, *wtail;	/* in arrival order */
	size_t nwaiters;
};

struct qlist {
	struct dance_query *head, *tail;
};

struct dance_resolver {
	enum dance_resolver_mode mode;
	unsigned timeout_ms, max_pending;
	uint32_t min_ttl, max_ttl, neg_ttl, fail_ttl;
	const struct dance_backend_ops *be_ops;
	void *be;
	struct dance_cache_tier tier;	/* second tier, get NULL if none */
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* dance_resolve_wait() */
	struct dance_cache *cache;
	struct dance_query **inflight;
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
ql_append(struct qlist *l, struct dance_query *q)
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
ql_remove(struct qlist *l, struct dance_query *q)
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

static struct dance_query *
inflight_find(struct dance_resolver *r, const char *name, uint32_t h)
{
	struct dance_query *q = r->inflight[h & (r->nbuckets - 1)];

	for (; q != NULL; q = q->hnext) {
		if (q->hash == h && strcmp(q->name, name) == 0)
			return q;
	}
	return NULL;
}

static void
inflight_insert(struct dance_resolver *r, struct dance_query *q)
{
	struct dance_query **b = &r->inflight[q->hash & (r->nbuckets - 1)];

	q->hnext = *b;
	*b = q;
}

static void
inflight_remove(struct dance_resolver *r, struct dance_query *q)
{
	struct dance_query **p = &r->inflight[q->hash & (r->nbuckets - 1)];

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
query_unlink(struct dance_resolver *r, struct dance_query *q)
{
	inflight_remove(r, q);
	ql_remove(&r->live, q);
	r->pending--;
}

static void
waiter_attach(struct dance_query *q, struct dance_lookup *w)
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
waiter_detach(struct dance_query *q, struct dance_lookup *w)
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
waiters_take(struct dance_query *q)
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
neg_ttl(struct dance_resolver *r, int64_t ttl)
{
	if (ttl < 0)
		return 0;
	return (uint64_t)ttl < r->neg_ttl ? (uint32_t)ttl : r->neg_ttl;
}

static uint32_t
pos_ttl(struct dance_resolver *r, int64_t ttl)
{
	uint64_t t = ttl < 0 ? 0 : (uint64_t)ttl;

	if (t < r->min_ttl)
		t = r->min_ttl;
	if (t > r->max_ttl)
		t = r->max_ttl;
	return (uint32_t)t;
}

/* The TTL caps, by outcome: one policy for every backend. */
static uint32_t
ttl_for(struct dance_resolver *r, enum dance_dns_status status,
	int64_t dns_ttl)
{
	switch (status) {
	case DANCE_DNS_SECURE:
		return pos_ttl(r, dns_ttl);
	case DANCE_DNS_NODATA:
	case DANCE_DNS_NXDOMAIN:
		return neg_ttl(r, dns_ttl);
	case DANCE_DNS_INSECURE:
		return r->neg_ttl;
	case DANCE_DNS_BOGUS:
	case DANCE_DNS_SERVFAIL:
	case DANCE_DNS_TIMEOUT:
		return r->fail_ttl;
	case DANCE_DNS_OVERLOAD:
	case DANCE_DNS_ERROR:
		break;
	}
	return 0;
}

struct dance_answer *
dance_query_answer(struct dance_query *q, enum dance_dns_status status,
	int64_t dns_ttl, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return answer_simple(q->r, status, q->name,
		ttl_for(q->r, status, dns_ttl), "%s", why);
}

struct dance_answer *
dance_query_answer_rrset(struct dance_query *q, char *const *data,
	const int *len, size_t n, int64_t dns_ttl)
{
	struct dance_resolver *r = q->r;
	struct dance_tlsa *rr;
	struct dance_answer *a;
	struct dance_error e;
	char skipwhy[200] = "";
	size_t i, used = 0, skipped = 0;

	if ((rr = calloc(n, sizeof(*rr))) == NULL)
		return answer_simple(r, DANCE_DNS_ERROR, q->name, 0,
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
		return dance_query_answer(q, DANCE_DNS_NODATA, dns_ttl,
			"no usable TLSA records (%zu malformed: %s)",
			skipped, skipwhy);
	}
	if (skipped > 0) {
		char why[256];

		(void)snprintf(why, sizeof(why),
			"ignored %zu malformed TLSA record%s: %s", skipped,
			skipped == 1 ? "" : "s", skipwhy);
		a = dance_answer_new(DANCE_DNS_SECURE, q->name, rr, used,
			pos_ttl(r, dns_ttl), why);
	} else {
		a = dance_answer_new(DANCE_DNS_SECURE, q->name, rr, used,
			pos_ttl(r, dns_ttl), NULL);
	}
	free(rr);
	if (a == NULL)
		return answer_simple(r, DANCE_DNS_ERROR, q->name, 0,
			"out of memory");
	return a;
}

static int
cacheable(const struct dance_answer *a)
{
	return a->ttl > 0 && a->status != DANCE_DNS_OVERLOAD
		&& a->status != DANCE_DNS_ERROR && a->name[0] != '\0';
}

/* Store a copy with from_cache set, so cache hits are distinguishable
 * while every answer stays immutable.  Caller holds r->mu. */
static void
cache_store(struct dance_resolver *r, const struct dance_answer *a)
{
	struct dance_answer *c;

	if (!cacheable(a) || (c = dance_answer_copy(a, 1)) == NULL)
		return;
	(void)dance_cache_put(r->cache, c, dance_now_ms()
		+ (uint64_t)a->ttl * 1000u);
	dance_answer_unref(c);
}

/* Local miss: the second tier.  Its answer is kept locally for the rest
 * of its TTL and handed out as a cache hit.  Caller holds r->mu. */
static struct dance_answer *
tier_get(struct dance_resolver *r, const char *key)
{
	struct dance_answer *a, *c;

	if (r->tier.get == NULL || (a = r->tier.get(r->tier.arg, key)) == NULL)
		return NULL;
	c = strcmp(a->name, key) == 0 ? dance_answer_copy(a, 1) : NULL;
	dance_answer_unref(a);
	if (c == NULL)
		return NULL;
	r->st.tier_hits++;
	if (cacheable(c))
		(void)dance_cache_put(r->cache, c, dance_now_ms()
			+ (uint64_t)c->ttl * 1000u);
	return c;
}

/* Both tiers; a referenced answer or NULL.  Caller holds r->mu. */
static struct dance_answer *
cache_get(struct dance_resolver *r, const char *key)
{
	struct dance_answer *a;

	if ((a = dance_cache_get(r->cache, key, dance_now_ms())) != NULL)
		return a;
	return tier_get(r, key);
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
query_finish(struct dance_resolver *r, struct dance_query *q,
	struct dance_answer *a)
{
	struct dance_lookup *ws;

	/* Cached even without waiters: the work is done. */
	dance_stats_note_answer(&r->st, a->status,
		dance_now_ms() + r->timeout_ms - q->deadline);
	cache_store(r, a);
	if (r->tier.put != NULL && cacheable(a))
		r->tier.put(r->tier.arg, a);
	ws = waiters_take(q);
	pthread_mutex_unlock(&r->mu);
	free(q);
	deliver(r, ws, a);
	dance_answer_unref(a);
}

/* ------------------------------------------------------------------ */
/* Backends, deadlines, cancellation                                  */
/* ------------------------------------------------------------------ */

void
dance_resolver_lock(struct dance_resolver *r)
{
	pthread_mutex_lock(&r->mu);
}

void
dance_resolver_unlock(struct dance_resolver *r)
{
	pthread_mutex_unlock(&r->mu);
}

struct dance_resolver *
dance_query_resolver(struct dance_query *q)
{
	return q->r;
}

const char *
dance_query_name(const struct dance_query *q)
{
	return q->name;
}

union dance_query_slot *
dance_query_slot(struct dance_query *q)
{
	return &q->slot;
}

void
dance_query_done(struct dance_query *q, struct dance_answer *a)
{
	struct dance_resolver *r = q->r;

	if (q->doomed)
		ql_remove(&r->doomed, q);
	else
		query_unlink(r, q);
	query_finish(r, q, a);
}

/* Stop the backend's work on q, once.  Holds r->mu. */
static void
backend_cancel(struct dance_resolver *r, struct dance_query *q)
{
	if (q->be_done)
		return;
	q->be_done = 1;
	r->be_ops->cancel(r->be, q);
}

/* Run the backend's per-query timers that are due.  Holds r->mu. */
static void
backend_timers(struct dance_resolver *r, uint64_t now)
{
	struct dance_query *q;

	if (r->be_ops->timer == NULL)
		return;
	for (q = r->live.head; q != NULL; q = q->next) {
		if (r->be_ops->next_timer(r->be, q) <= now)
			r->be_ops->timer(r->be, q, now);
	}
}

/* Read what the backend has ready (never blocks).  Driving thread. */
static void
backend_process(struct dance_resolver *r)
{
	r->be_ops->process(r->be);
}

static int
backend_fd(struct dance_resolver *r)
{
	return r->be_ops->fd(r->be);
}

/* Answer TIMEOUT for every query past its deadline.  Driving thread. */
static void
expire(struct dance_resolver *r)
{
	struct dance_answer *a;
	struct dance_query *q;
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
	backend_timers(r, now);
	pthread_mutex_unlock(&r->mu);
}

/* Cancel the queries abandoned by other threads.  Driving thread. */
static void
reap_doomed(struct dance_resolver *r)
{
	struct dance_query *q;

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
	struct dance_query *q = w->q;

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
	/* The backend's work can stop now if it allows; q itself must
	 * wait for the driving thread, which may hold its pointer. */
	if (r->be_ops->cancel_any_thread)
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

/* ms until the earliest deadline or backend timer, -1 if none.
 * Holds r->mu. */
static int
next_timeout_locked(struct dance_resolver *r)
{
	uint64_t now, d, t;
	struct dance_query *q;

	if (r->live.head == NULL)
		return -1;
	t = r->live.head->deadline;
	for (q = r->live.head; r->be_ops->timer != NULL && q != NULL;
		q = q->next) {
		uint64_t b = r->be_ops->next_timer(r->be, q);

		if (b < t)
			t = b;
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
backend_submit(struct dance_resolver *r, struct dance_query *q,
	struct dance_answer **now)
{
	return r->be_ops->submit(r->be, q, now);
}

/* Caller holds r->mu.  Returns the waiter, or NULL with *now set to an
 * answer to deliver at once. */
static struct dance_lookup *
lookup_locked(struct dance_resolver *r, const char *key, dance_lookup_cb cb,
	void *arg, struct dance_answer **now, int *wake)
{
	struct dance_lookup *w;
	struct dance_query *q;
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
	/* Not in flight here: the second tier, before any query (and
	 * before the cap, as a hit needs no query). */
	if ((*now = tier_get(r, key)) != NULL) {
		free(w);
		return NULL;
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
	/* An idle internal thread sleeps without a deadline, and a
	 * backend timer may come before the deadlines it knows. */
	*wake = r->live.head == NULL || r->be_ops->timer != NULL;
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
	a = cache_get(r, key);
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
	st->cache_entries = dance_cache_count(r->cache);
	st->cache_evictions = dance_cache_evictions(r->cache);
	st->timeout_ms = r->timeout_ms;
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
	 * answer; it checks what applies to it. */
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
	r->tier = cfg->tier;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		if (backends[i]->selects(cfg)) {
			r->be_ops = backends[i];
			break;
		}
	}
	if (r->be_ops == NULL) {
		dance_err_set(err, DANCE_ERR_CONFIG, "no resolver backend "
			"for this configuration");
		goto fail;
	}
	if ((r->be = r->be_ops->create(r, cfg, err)) == NULL)
		goto fail;
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
	struct dance_query *q;

	while ((q = l->head) != NULL) {
		ql_remove(l, q);
		if (!q->be_done && r->be_ops->drop != NULL)
			r->be_ops->drop(r->be, q);
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
	/* Nothing drives the backend any more, so no query completes:
	 * each is dropped, then the backend goes (after which none can
	 * complete either); waiters are dropped without a callback. */
	if (r->be_ops != NULL) {
		free_queries(r, &r->live);
		free_queries(r, &r->doomed);
		r->be_ops->free(r->be);
	}
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
