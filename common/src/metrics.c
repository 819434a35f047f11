/*
 * metrics.c -- the one metric set of the suite: what the decision and
 * the resolver count, the list every exporter walks (names, help,
 * types, labels), the Prometheus text, and the log line of a decision.
 *
 * The counters are a flat array of uint64_t updated with relaxed
 * atomic adds, so that nginx can keep them in shared memory and every
 * worker add to them; the names follow unbound-control stats and
 * unbound_exporter where the two overlap (queries, cache, up,
 * response time).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "metrics_int.h"
#include "tls_int.h"

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

/* Verdict results, in the order they are exported. */
enum { V_SUCCESS, V_REFUSED, V_UNAUTH, V_NONE, V_N };
static const char *const verdict_words[V_N] = {
	"success", "refused", "unauthenticated", "none"
};

enum { C_HIT, C_NEG_HIT, C_MISS, C_COALESCED, C_N };
static const char *const cache_words[C_N] = {
	"hit", "negative_hit", "miss", "coalesced"
};

/* DNS query outcomes exported, with their status. */
static const struct {
	const char *word;
	enum dance_dns_status st;
} outcomes[] = {
	{ "secure", DANCE_DNS_SECURE },
	{ "insecure", DANCE_DNS_INSECURE },
	{ "bogus", DANCE_DNS_BOGUS },
	{ "nxdomain", DANCE_DNS_NXDOMAIN },
	{ "nodata", DANCE_DNS_NODATA },
	{ "servfail", DANCE_DNS_SERVFAIL },
	{ "timeout", DANCE_DNS_TIMEOUT },
};
#define O_N (sizeof(outcomes) / sizeof(outcomes[0]))

enum { CAP_WAITING, CAP_MAX_PENDING, CAP_N };
static const char *const cap_words[CAP_N] = { "waiting", "max_pending" };

static const char *const usage_words[4] = { "0", "1", "2", "3" };

#define R_N (DANCE_REASON_MAX + 1)

static const unsigned bucket_ms[DANCE_LOOKUP_BUCKETS] = {
	1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};

/* Slot offsets of the counters. */
enum {
	S_VERDICT = 0,
	S_USAGE = S_VERDICT + V_N,
	S_REASON = S_USAGE + 4,
	S_ALLOW = S_REASON + R_N,
	S_CAP = S_ALLOW + 1,
	S_CACHE = S_CAP + CAP_N,
	S_ENTRIES = S_CACHE + C_N,
	S_EVICT,
	S_QUERY,
	S_INFLIGHT = S_QUERY + O_N,
	S_PARKED,
	S_UP,
	S_BUCKET,
	S_DUR_SUM = S_BUCKET + DANCE_LOOKUP_BUCKETS + 1,
	S_DUR_COUNT,
	S_TIMEOUT,		/* the largest resolver timeout, ms */
	S_N
};

#define DANCE_METRICS_MAGIC 0x44414e43454d5431ULL	/* "DANCEMT1" */

struct dance_metrics {
	uint64_t magic;
	uint64_t v[S_N];
};

static void
add(struct dance_metrics *m, unsigned slot, int64_t d)
{
	if (m != NULL && d != 0)
		(void)__atomic_fetch_add(&m->v[slot], (uint64_t)d,
			__ATOMIC_RELAXED);
}

static uint64_t
get(const struct dance_metrics *m, unsigned slot)
{
	return __atomic_load_n(&m->v[slot], __ATOMIC_RELAXED);
}

size_t
dance_metrics_size(void)
{
	return sizeof(struct dance_metrics);
}

struct dance_metrics *
dance_metrics_init(void *mem, size_t len)
{
	struct dance_metrics *m = mem;

	if (m == NULL || len < sizeof(*m) || (uintptr_t)mem % 8 != 0)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->magic = DANCE_METRICS_MAGIC;
	return m;
}

struct dance_metrics *
dance_metrics_new(void)
{
	void *mem = malloc(sizeof(struct dance_metrics));

	if (mem == NULL)
		return NULL;
	return dance_metrics_init(mem, sizeof(struct dance_metrics));
}

void
dance_metrics_free(struct dance_metrics *m)
{
	free(m);
}

void
dance_metrics_add(struct dance_metrics *dst, const struct dance_metrics *src)
{
	unsigned i;

	for (i = 0; i < S_N; i++) {
		if (i == S_TIMEOUT) {
			if (get(src, i) > get(dst, i))
				__atomic_store_n(&dst->v[i], get(src, i),
					__ATOMIC_RELAXED);
			continue;
		}
		add(dst, i, (int64_t)get(src, i));
	}
}

unsigned
dance_metrics_bucket_ms(unsigned i)
{
	return i < DANCE_LOOKUP_BUCKETS ? bucket_ms[i] : 0;
}

/* ------------------------------------------------------------------ */
/* Resolver side                                                       */
/* ------------------------------------------------------------------ */

void
dance_stats_note_answer(struct dance_resolver_stats *st,
	enum dance_dns_status status, uint64_t ms)
{
	unsigned i;

	if ((unsigned)status <= DANCE_DNS_ERROR)
		st->outcomes[status]++;
	for (i = 0; i < DANCE_LOOKUP_BUCKETS && ms > bucket_ms[i]; i++)
		;
	st->duration[i]++;
	st->duration_ms += (unsigned long)ms;
}

/* Signed difference of two figures (a gauge may shrink). */
static int64_t
delta(unsigned long now, unsigned long before)
{
	return (int64_t)now - (int64_t)before;
}

void
dance_metrics_resolver_sync(struct dance_metrics *m,
	struct dance_resolver *r, struct dance_resolver_stats *last)
{
	struct dance_resolver_stats now;
	unsigned i;

	memset(&now, 0, sizeof(now));
	if (r != NULL)
		dance_resolver_stats(r, &now);
	else {
		/* Gone: counters stay, gauges go back to nothing. */
		now = *last;
		now.pending = 0;
		now.cache_entries = 0;
		now.timeout_ms = 0;
	}
	if (m == NULL) {
		*last = now;
		return;
	}
	for (i = 0; i < O_N; i++)
		add(m, S_QUERY + i, delta(now.outcomes[outcomes[i].st],
			last->outcomes[outcomes[i].st]));
	for (i = 0; i <= DANCE_LOOKUP_BUCKETS; i++) {
		add(m, S_BUCKET + i, delta(now.duration[i],
			last->duration[i]));
		add(m, S_DUR_COUNT, delta(now.duration[i],
			last->duration[i]));
	}
	add(m, S_DUR_SUM, delta(now.duration_ms, last->duration_ms));
	add(m, S_CACHE + C_COALESCED, delta(now.coalesced, last->coalesced));
	add(m, S_CAP + CAP_MAX_PENDING, delta(now.overload, last->overload));
	add(m, S_INFLIGHT, delta(now.pending, last->pending));
	add(m, S_ENTRIES, delta(now.cache_entries, last->cache_entries));
	add(m, S_EVICT, delta(now.cache_evictions, last->cache_evictions));
	/* up: one per live resolver (a timeout is never 0) */
	add(m, S_UP, (now.timeout_ms != 0) - (last->timeout_ms != 0));
	if (now.timeout_ms > get(m, S_TIMEOUT))
		__atomic_store_n(&m->v[S_TIMEOUT], (uint64_t)now.timeout_ms,
			__ATOMIC_RELAXED);
	*last = now;
}

/* ------------------------------------------------------------------ */
/* Decision side                                                       */
/* ------------------------------------------------------------------ */

void
dance_tls_server_set_metrics(struct dance_tls_server *s,
	struct dance_metrics *m)
{
	if (s != NULL)
		s->metrics = m;
}

void
dance_tls_server_set_refuse_failed(struct dance_tls_server *s, int on)
{
	if (s != NULL)
		s->refuse_failed = on != 0;
}

static struct dance_metrics *
metrics_of(const struct conn_priv *c)
{
	return c->pub.srv == NULL ? NULL : c->pub.srv->metrics;
}

void
dance_mx_cache_hit(struct conn_priv *c, const struct dance_answer *a)
{
	c->mx.cache = DANCE_MX_CACHE_HIT;
	add(metrics_of(c), S_CACHE + (a->status == DANCE_DNS_SECURE &&
		a->n > 0 ? C_HIT : C_NEG_HIT), 1);
}

void
dance_mx_wait_start(struct conn_priv *c)
{
	c->mx.cache = DANCE_MX_CACHE_MISS;
	c->mx.wait_start = dance_now_ms();
	c->mx.waiting = 1;
	add(metrics_of(c), S_CACHE + C_MISS, 1);
	add(metrics_of(c), S_PARKED, 1);
}

void
dance_mx_wait_end(struct conn_priv *c)
{
	if (!c->mx.waiting)
		return;
	c->mx.waiting = 0;
	c->mx.lookup_ms = (unsigned)(dance_now_ms() - c->mx.wait_start);
	add(metrics_of(c), S_PARKED, -1);
}

void
dance_mx_cap_refusal(struct dance_tls_server *srv)
{
	if (srv != NULL)
		add(srv->metrics, S_CAP + CAP_WAITING, 1);
}

/* The verdict word's index, V_N while there is none. */
static unsigned
verdict_of(const struct dance_conn *c)
{
	switch (dance_conn_status(c)) {
	case DANCE_STATUS_SUCCESS:
		return V_SUCCESS;
	case DANCE_STATUS_FAILED:
		/* refused: the handshake was ended, DANCE is required, or
		 * the host refuses every FAILED client itself (defer_refuse:
		 * FreeRADIUS; dance_tls_server_set_refuse_failed(): hostapd) */
		if (((const struct conn_priv *)c)->mx.refused ||
		    (c->srv != NULL && (c->srv->cfg.required ||
		    c->srv->cfg.defer_refuse || c->srv->refuse_failed)))
			return V_REFUSED;
		return V_UNAUTH;
	case DANCE_STATUS_NONE:
		return V_NONE;
	case DANCE_STATUS_PENDING:
		break;
	}
	return V_N;
}

void
dance_mx_verdict(struct conn_priv *c)
{
	struct dance_metrics *m = metrics_of(c);
	unsigned v = verdict_of(&c->pub);
	enum dance_reason why = c->why;

	if (c->mx.counted || v == V_N)
		return;
	c->mx.counted = 1;
	if (m == NULL)
		return;
	add(m, S_VERDICT + v, 1);
	if (v == V_SUCCESS && c->pub.usage >= 0 && c->pub.usage <= 3)
		add(m, S_USAGE + (unsigned)c->pub.usage, 1);
	if ((v == V_REFUSED || v == V_UNAUTH) && (unsigned)why <= R_N - 1)
		add(m, S_REASON + why, 1);
	if (why == DANCE_REASON_NOT_ALLOWED && v != V_SUCCESS)
		add(m, S_ALLOW, 1);
}

void
dance_mx_refused(struct conn_priv *c)
{
	c->mx.refused = 1;
	dance_mx_verdict(c);
}

void
dance_mx_conn_free(struct conn_priv *c)
{
	dance_mx_wait_end(c);
	/* Judged but never asked again (e.g. a handshake that failed
	 * later): the verdict still counts, once. */
	if (c->pub.state != DANCE_CONN_NONE || c->sources_tried)
		dance_mx_verdict(c);
}

/* ------------------------------------------------------------------ */
/* The list every exporter walks                                       */
/* ------------------------------------------------------------------ */

enum fam_kind { K_COUNTER, K_GAUGE, K_HIST };

static const struct family {
	const char *name;
	const char *help;
	enum fam_kind kind;
	int per_server;
	unsigned slot;			/* first slot */
	const char *label;		/* NULL: one sample */
	const char *const *words;	/* label values, by slot */
	unsigned n;			/* label values */
	unsigned skip;			/* slot not exported (reason ok) */
} families[] = {
	{ "dance_verdicts_total", "DANCE decisions by result.", K_COUNTER,
	  1, S_VERDICT, "result", verdict_words, V_N, ~0u },
	{ "dance_successes_total", "Authenticated clients by the TLSA "
	  "usage that matched.", K_COUNTER, 1, S_USAGE, "usage",
	  usage_words, 4, ~0u },
	{ "dance_failures_total", "Clients not authenticated, by reason.",
	  K_COUNTER, 1, S_REASON, "reason", NULL, R_N, DANCE_REASON_OK },
	{ "dance_allowlist_refusals_total", "Names outside the allow-list "
	  "(refused without a DNS query).", K_COUNTER, 1, S_ALLOW, NULL,
	  NULL, 1, ~0u },
	{ "dance_cap_refusals_total", "Clients refused at a cap on pending "
	  "lookups (waiting budget, max_pending), without a query.",
	  K_COUNTER, 1, S_CAP, "cap", cap_words, CAP_N, ~0u },
	{ "dance_cache_requests_total", "TLSA answers needed by decisions: "
	  "cache hit, negative hit, miss (a lookup), coalesced (a lookup "
	  "that joined one in flight).", K_COUNTER, 1, S_CACHE, "result",
	  cache_words, C_N, ~0u },
	{ "dance_parked_clients", "Clients (requests, sessions) waiting "
	  "for a TLSA lookup now.", K_GAUGE, 1, S_PARKED, NULL, NULL, 1,
	  ~0u },
	{ "dance_queries_total", "TLSA queries by outcome.", K_COUNTER, 0,
	  S_QUERY, "outcome", NULL, O_N, ~0u },
	{ "dance_request_list_current", "TLSA lookups in flight now.",
	  K_GAUGE, 0, S_INFLIGHT, NULL, NULL, 1, ~0u },
	{ "dance_cache_entries", "Answers in the resolvers' caches now.",
	  K_GAUGE, 0, S_ENTRIES, NULL, NULL, 1, ~0u },
	{ "dance_cache_evictions_total", "Answers evicted from a full "
	  "cache before they expired.", K_COUNTER, 0, S_EVICT, NULL, NULL,
	  1, ~0u },
	{ "dance_up", "Resolvers running (nginx: one per worker).",
	  K_GAUGE, 0, S_UP, NULL, NULL, 1, ~0u },
	{ "dance_response_time_seconds", "TLSA query duration, from the "
	  "query to its answer or timeout.", K_HIST, 0, S_BUCKET, "le",
	  NULL, 0, ~0u },
};
#define F_N (sizeof(families) / sizeof(families[0]))

/* Label value j of family f into buf (bounds, reasons, outcomes). */
static const char *
label_word(const struct family *f, unsigned j)
{
	if (f->words != NULL)
		return f->words[j];
	if (f->slot == S_REASON)
		return dance_reason_str((enum dance_reason)j);
	if (f->slot == S_QUERY)
		return outcomes[j].word;
	return NULL;
}

/* Histogram buckets exported: the bounds up to the first that holds
 * the timeout (longer waits cannot be), then +Inf. */
static unsigned
hist_nbounds(const struct dance_metrics *m)
{
	uint64_t t = get(m, S_TIMEOUT);
	unsigned i;

	for (i = 0; i < DANCE_LOOKUP_BUCKETS; i++) {
		if (t != 0 && bucket_ms[i] >= t)
			return i + 1;
	}
	return DANCE_LOOKUP_BUCKETS;
}

/* Samples of family f for m. */
static unsigned
fam_samples(const struct family *f, const struct dance_metrics *m)
{
	if (f->kind == K_HIST)
		return hist_nbounds(m) + 1 + 2;	/* +Inf, _sum, _count */
	return f->skip < f->n ? f->n - 1 : f->n;
}

static void
hist_sample(const struct family *f, const struct dance_metrics *m,
	unsigned j, struct dance_metric_sample *s)
{
	/* bucket_ms in seconds, as the exposition format wants */
	static const char *const le[DANCE_LOOKUP_BUCKETS] = {
		"0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1",
		"0.25", "0.5", "1", "2.5", "5", "10", "30"
	};
	unsigned nb = hist_nbounds(m), k;
	uint64_t cum = 0;

	if (j <= nb) {
		s->name = "dance_response_time_seconds_bucket";
		s->label = "le";
		s->label_value = j < nb ? le[j] : "+Inf";
		if (j == nb)
			cum = get(m, S_DUR_COUNT);
		else
			for (k = 0; k <= j; k++)
				cum += get(m, S_BUCKET + k);
		s->value = (double)cum;
	} else if (j == nb + 1) {
		s->name = "dance_response_time_seconds_sum";
		s->value = (double)get(m, S_DUR_SUM) / 1000.0;
	} else {
		s->name = "dance_response_time_seconds_count";
		s->value = (double)get(m, S_DUR_COUNT);
	}
}

int
dance_metrics_sample(const struct dance_metrics *m, size_t i,
	struct dance_metric_sample *s)
{
	const struct family *f;
	unsigned k, j, n, slot;

	if (m == NULL || s == NULL)
		return 0;
	for (k = 0; k < F_N; k++) {
		f = &families[k];
		n = fam_samples(f, m);
		if (i >= n) {
			i -= n;
			continue;
		}
		memset(s, 0, sizeof(*s));
		s->family = s->name = f->name;
		s->help = f->help;
		s->type = f->kind == K_COUNTER ? "counter" :
			f->kind == K_GAUGE ? "gauge" : "histogram";
		s->first = i == 0;
		s->per_server = f->per_server;
		if (f->kind == K_HIST) {
			hist_sample(f, m, (unsigned)i, s);
			return 1;
		}
		j = (unsigned)i;
		if (f->skip < f->n && j >= f->skip)
			j++;
		slot = f->slot + j;
		s->label = f->label;
		s->label_value = f->label != NULL ? label_word(f, j) : NULL;
		if (f->kind == K_GAUGE) {
			s->value = (double)(int64_t)get(m, slot);
			if (slot == S_UP && s->value > 1)
				s->value = 1;
		} else {
			s->value = (double)get(m, slot);
		}
		return 1;
	}
	return 0;
}

double
dance_metrics_get(const struct dance_metrics *m, const char *name,
	const char *label_value)
{
	struct dance_metric_sample s;
	double sum = 0;
	size_t i;

	for (i = 0; dance_metrics_sample(m, i, &s); i++) {
		if (strcmp(s.name, name) != 0)
			continue;
		if (label_value == NULL)
			sum += s.value;
		else if (s.label_value != NULL &&
		    strcmp(s.label_value, label_value) == 0)
			return s.value;
	}
	/* histograms: only _sum/_count make sense without a label */
	return label_value == NULL ? sum : 0;
}

/* ------------------------------------------------------------------ */
/* Formats                                                             */
/* ------------------------------------------------------------------ */

struct out {
	char *buf;
	size_t len, used;
};

static void __attribute__((format(printf, 2, 3)))
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->used < o->len ? o->buf + o->used : NULL,
		o->used < o->len ? o->len - o->used : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

/* A label value as the exposition format wants it (\\, \", \n). */
static void
out_label(struct out *o, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			out_printf(o, "\\%c", *v);
		else if (*v == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *v);
	}
}

static void
out_sample(struct out *o, const struct dance_metric_sample *s,
	const char *server)
{
	out_printf(o, "%s", s->name);
	if (server != NULL || s->label != NULL) {
		out_printf(o, "{");
		if (server != NULL) {
			out_printf(o, "server=\"");
			out_label(o, server);
			out_printf(o, "\"%s", s->label != NULL ? "," : "");
		}
		if (s->label != NULL) {
			out_printf(o, "%s=\"", s->label);
			out_label(o, s->label_value);
			out_printf(o, "\"");
		}
		out_printf(o, "}");
	}
	out_printf(o, " %.15g\n", s->value);
}

size_t
dance_metrics_format_prometheus(const struct dance_metrics *const *m,
	const char *const *server, size_t n, char *buf, size_t len)
{
	struct dance_metrics sum;
	struct dance_metric_sample s, si;
	struct out o = { buf, len, 0 };
	size_t i, k;

	if (len > 0)
		buf[0] = '\0';
	(void)dance_metrics_init(&sum, sizeof(sum));
	for (k = 0; k < n; k++)
		dance_metrics_add(&sum, m[k]);
	for (i = 0; dance_metrics_sample(&sum, i, &s); i++) {
		if (s.first)
			out_printf(&o, "# HELP %s %s\n# TYPE %s %s\n",
				s.family, s.help, s.family, s.type);
		if (!s.per_server || server == NULL) {
			out_sample(&o, &s, NULL);
			continue;
		}
		for (k = 0; k < n; k++) {
			if (dance_metrics_sample(m[k], i, &si))
				out_sample(&o, &si, server[k] != NULL ?
					server[k] : "");
		}
	}
	if (len > 0 && o.used >= len)
		buf[len - 1] = '\0';
	return o.used;
}

size_t
dance_metrics_format_line(const struct dance_metrics *m, char *buf,
	size_t len)
{
	struct dance_metric_sample s;
	struct out o = { buf, len, 0 };
	const char *name;
	size_t i, l;

	if (len > 0)
		buf[0] = '\0';
	for (i = 0; dance_metrics_sample(m, i, &s); i++) {
		/* the histogram's buckets are too many for one line */
		if (strcmp(s.type, "histogram") == 0 &&
		    strcmp(s.name, s.family) != 0 && s.label != NULL)
			continue;
		name = s.name + (strncmp(s.name, "dance_", 6) == 0 ? 6 : 0);
		l = strlen(name);
		if (l > 6 && strcmp(name + l - 6, "_total") == 0)
			l -= 6;
		out_printf(&o, "%s%.*s%s%s=%.15g", o.used > 0 ? " " : "",
			(int)l, name, s.label != NULL ? "_" : "",
			s.label != NULL ? s.label_value : "", s.value);
	}
	if (len > 0 && o.used >= len)
		buf[len - 1] = '\0';
	return o.used;
}

/* ------------------------------------------------------------------ */
/* Log line                                                            */
/* ------------------------------------------------------------------ */

const char *
dance_conn_outcome(const struct dance_conn *c)
{
	unsigned v = verdict_of(c);

	if (c == NULL)
		return "none";
	return v == V_N ? "pending" : verdict_words[v];
}

const char *
dance_conn_log_line(const struct dance_conn *c, const char *client,
	char *buf, size_t len)
{
	const struct conn_priv *p = (const struct conn_priv *)c;
	char name[DANCE_NAME_MAX * 4 + 8], detail[32];
	const char *n = dance_conn_name(c), *cached = "-";

	if (n[0] != '\0')
		(void)dance_escape(n, strlen(n), name, sizeof(name));
	else
		memcpy(name, "-", 2);
	if (dance_conn_status(c) == DANCE_STATUS_SUCCESS)
		(void)snprintf(detail, sizeof(detail), "usage=%d",
			dance_conn_usage(c));
	else
		(void)snprintf(detail, sizeof(detail), "reason=%s",
			dance_reason_str(dance_conn_status(c) ==
			DANCE_STATUS_PENDING ? DANCE_REASON_OK :
			dance_conn_reason_code(c)));
	if (p != NULL && p->mx.cache != DANCE_MX_CACHE_NONE)
		cached = p->mx.cache == DANCE_MX_CACHE_HIT ? "yes" : "no";
	(void)snprintf(buf, len, "dance: client=%s name=%s outcome=%s %s "
		"lookup_ms=%u cached=%s", client != NULL && client[0] != '\0' ?
		client : "-", name, dance_conn_outcome(c), detail,
		p == NULL ? 0 : p->mx.lookup_ms, cached);
	return buf;
}
