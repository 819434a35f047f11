/*
 * test_resolver.c -- the libunbound resolver against the offline DNSSEC
 * test world (t/world/world.sh).  Needs WORLD_ENV=DIR/env, or the WORLD_*
 * variables themselves; without a world every test fails (the runner
 * always starts one, so a missing world is a harness bug, not a skip).
 *
 * Query counts come from the world's query log ("world.sh count"): they
 * show what really reached the authoritative side.  Every test makes its
 * own resolver, so libunbound's own cache starts empty each time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dance.h"
#include "dance_int.h"	/* white-box: the answer internals */

/* ------------------------------------------------------------------ */
/* World                                                               */
/* ------------------------------------------------------------------ */

static char w_dir[PATH_MAX], w_conf[PATH_MAX], w_ta[PATH_MAX];
static char w_certs[PATH_MAX], w_sh[PATH_MAX], w_tmp[PATH_MAX];
static int w_proxy_port;
static const char *w_tas[2];

static void
env_line(const char *key, const char *val)
{
	if (strcmp(key, "WORLD_DIR") == 0)
		snprintf(w_dir, sizeof(w_dir), "%s", val);
	else if (strcmp(key, "WORLD_UNBOUND_CONF") == 0)
		snprintf(w_conf, sizeof(w_conf), "%s", val);
	else if (strcmp(key, "WORLD_TA") == 0)
		snprintf(w_ta, sizeof(w_ta), "%s", val);
	else if (strcmp(key, "WORLD_CERTS") == 0)
		snprintf(w_certs, sizeof(w_certs), "%s", val);
	else if (strcmp(key, "WORLD_PROXY_PORT") == 0)
		w_proxy_port = atoi(val);
}

static void
env_file(const char *path)
{
	char line[PATH_MAX + 64], *eq;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		print_error("cannot read WORLD_ENV %s: %s\n", path,
			strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		env_line(line, eq + 1);
	}
	fclose(f);
}

/* world.sh: next to the sources; tests run from the top directory or
 * from anywhere with the binary in BUILD/t/. */
static int
find_world_sh(void)
{
	char exe[PATH_MAX], *p;
	ssize_t n;

	if (access("t/world/world.sh", R_OK) == 0) {
		snprintf(w_sh, sizeof(w_sh), "t/world/world.sh");
		return 1;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	/* BUILD/t/test_resolver -> BUILD/../t/world/world.sh */
	for (int up = 0; up < 3 && (p = strrchr(exe, '/')) != NULL; up++)
		*p = '\0';
	snprintf(w_sh, sizeof(w_sh), "%.4000s/t/world/world.sh", exe);
	return access(w_sh, R_OK) == 0;
}

static int
group_setup(void **state)
{
	const char *e = getenv("WORLD_ENV");
	const char *tmp = getenv("TMPDIR");

	(void)state;
	if (e != NULL) {
		env_file(e);
	} else {
		static const char *keys[] = { "WORLD_DIR",
			"WORLD_UNBOUND_CONF", "WORLD_TA", "WORLD_CERTS",
			"WORLD_PROXY_PORT", NULL };
		for (int i = 0; keys[i] != NULL; i++) {
			if (getenv(keys[i]) != NULL)
				env_line(keys[i], getenv(keys[i]));
		}
	}
	if (w_dir[0] == '\0' || w_conf[0] == '\0' || w_ta[0] == '\0'
		|| w_certs[0] == '\0') {
		print_error("NO TEST WORLD: set WORLD_ENV=DIR/env after "
			"'sh t/world/world.sh start DIR' (or WORLD_DIR, "
			"WORLD_UNBOUND_CONF, WORLD_TA, WORLD_CERTS)\n");
		return -1;
	}
	if (!find_world_sh()) {
		print_error("cannot find t/world/world.sh\n");
		return -1;
	}
	w_tas[0] = w_ta;
	w_tas[1] = NULL;
	snprintf(w_tmp, sizeof(w_tmp), "%s", tmp != NULL ? tmp : "/tmp");
	return 0;
}

/* A name no other test (or concurrent run) asks for, so its query
 * count is ours alone: "PREFIX-PID.SUFFIX". */
static const char *
uniq(char *buf, size_t len, const char *prefix, const char *suffix)
{
	snprintf(buf, len, "%s-%ld.%s", prefix, (long)getpid(), suffix);
	return buf;
}

/* Queries for name/TLSA that reached the authoritative side. */
static int
world_count(const char *name)
{
	char cmd[3 * PATH_MAX];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "sh '%s' count '%s' '%s'", w_sh, w_dir,
		name);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
world_cfg(struct dance_resolver_cfg *c, enum dance_resolver_mode mode)
{
	dance_resolver_cfg_init(c);
	c->mode = mode;
	c->trust_anchor_files = w_tas;
	c->unbound_conf = w_conf;
}

static struct dance_resolver *
mk(const struct dance_resolver_cfg *c)
{
	struct dance_error e = { 0, "" };
	struct dance_resolver *r = dance_resolver_new(c, &e);

	if (r == NULL)
		print_error("dance_resolver_new: %s\n", e.reason);
	assert_non_null(r);
	return r;
}

static struct dance_resolver *
mk_mode(enum dance_resolver_mode mode)
{
	struct dance_resolver_cfg c;

	world_cfg(&c, mode);
	return mk(&c);
}

/* One callback target; counter (optional) is shared by a group. */
struct got {
	int calls;
	struct dance_answer *a;
	uint64_t at;
	int *counter;
	struct dance_lookup *cancel_other;	/* cancel this from cb */
	struct dance_resolver *r;		/* start a lookup from cb */
	const char *next_name;
	struct got *next_got;
};

static void
got_cb(void *arg, struct dance_answer *a)
{
	struct got *g = arg;

	g->calls++;
	g->at = now_ms();
	if (g->a == NULL) {
		dance_answer_ref(a);
		g->a = a;
	}
	if (g->counter != NULL)
		__atomic_add_fetch(g->counter, 1, __ATOMIC_SEQ_CST);
	if (g->cancel_other != NULL)
		dance_lookup_cancel(g->cancel_other);
	if (g->next_name != NULL) {
		int done;
		(void)dance_resolver_lookup(g->r, g->next_name, got_cb,
			g->next_got, &done);
	}
}

static void
got_clear(struct got *g)
{
	dance_answer_unref(g->a);
	memset(g, 0, sizeof(*g));
}

/* Event mode: run the loop until *counter reaches target or max_ms. */
static void
drive(struct dance_resolver *r, int *counter, int target, int max_ms)
{
	uint64_t end = now_ms() + (uint64_t)max_ms;
	struct pollfd p;

	p.fd = dance_resolver_fd(r);
	p.events = POLLIN;
	while ((counter == NULL || *counter < target) && now_ms() < end) {
		int left = (int)(end - now_ms());
		int t = dance_resolver_next_timeout(r);

		if (t < 0 || t > left)
			t = left;
		(void)poll(&p, 1, t);
		dance_resolver_process(r);
	}
}

/* Event-mode lookup to completion; referenced answer. */
static struct dance_answer *
ev_lookup(struct dance_resolver *r, const char *name, int max_ms)
{
	struct got g;
	struct dance_lookup *l;
	int n = 0, done = -1;

	memset(&g, 0, sizeof(g));
	g.counter = &n;
	l = dance_resolver_lookup(r, name, got_cb, &g, &done);
	if (done) {
		assert_null(l);
	} else {
		assert_non_null(l);
		drive(r, &n, 1, max_ms);
	}
	assert_int_equal(g.calls, 1);
	assert_non_null(g.a);
	return g.a;
}

static void
expect_status(struct dance_answer *a, enum dance_dns_status s)
{
	if (a->status != s)
		print_error("%s: got %s (%s), want %s\n", a->name,
			dance_dns_status_str(a->status), a->why,
			dance_dns_status_str(s));
	assert_int_equal(a->status, s);
}

static struct dance_resolver_stats
stats(struct dance_resolver *r)
{
	struct dance_resolver_stats st;

	dance_resolver_stats(r, &st);
	return st;
}

/* Digest of a certificate's DER (selector 0) or SPKI (selector 1). */
static size_t
cert_digest(const char *cert, int selector, int mtype, unsigned char *out)
{
	char path[PATH_MAX + 32];
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	X509 *x;
	FILE *f;
	int len;

	snprintf(path, sizeof(path), "%s/%s.crt", w_certs, cert);
	f = fopen(path, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	if (selector == 0)
		len = i2d_X509(x, &der);
	else
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, out, &mdlen,
		mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL), 1);
	OPENSSL_free(der);
	X509_free(x);
	return mdlen;
}

static void
expect_rr(const struct dance_tlsa *rr, int u, int s, int m, const char *cert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t n = cert_digest(cert, s, m, md);

	assert_int_equal(rr->usage, u);
	assert_int_equal(rr->selector, s);
	assert_int_equal(rr->mtype, m);
	assert_int_equal(rr->len, n);
	assert_memory_equal(rr->data, md, n);
}

/* Same records, in any order. */
static void
same_rrset(const struct dance_answer *a, const struct dance_answer *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		size_t j;

		for (j = 0; j < b->n; j++) {
			if (a->rr[i].usage == b->rr[j].usage
				&& a->rr[i].selector == b->rr[j].selector
				&& a->rr[i].mtype == b->rr[j].mtype
				&& a->rr[i].len == b->rr[j].len
				&& memcmp(a->rr[i].data, b->rr[j].data,
				a->rr[i].len) == 0)
				break;
		}
		assert_true(j < b->n);
	}
}


/* ------------------------------------------------------------------ */
/* Variants                                                            */
/* ------------------------------------------------------------------ */

/*
 * Most scenarios run twice: in group "resolver" with libunbound
 * validating against the world's trust anchor, and in group
 * "resolver_trust_ad" trusting the AD bit of a validating unbound
 * daemon (forwarder).  The test's cmocka state points at one of these;
 * the fields past cfg are where the two legitimately answer apart.
 */
struct variant {
	void (*cfg)(struct dance_resolver_cfg *, enum dance_resolver_mode);
	enum dance_dns_status bogus;	/* what bogus.clients.test gives */
	const char *bogus_why;		/* ... with this in its why */
	const char *bogus_why_more;	/* and more than this, or NULL */
	const char *insecure_why;	/* in an insecure why; NULL: any */
	int early_ms, late_ms;		/* a timeout's allowed slack */
	int threaded_timeout_ms;	/* for test_threaded_outcomes */
};

static void
var_cfg(void **state, struct dance_resolver_cfg *c,
	enum dance_resolver_mode mode)
{
	const struct variant *v = *state;

	assert_non_null(v);
	v->cfg(c, mode);
}

static struct dance_resolver *
mk_var(void **state, enum dance_resolver_mode mode)
{
	struct dance_resolver_cfg c;

	var_cfg(state, &c, mode);
	return mk(&c);
}

/* A timeout of timeout_ms that fired after dt ms: on time? */
static void
expect_timeout_dt(void **state, int timeout_ms, uint64_t dt)
{
	const struct variant *v = *state;

	print_message("timeout after %llu ms\n", (unsigned long long)dt);
	assert_true(dt >= (uint64_t)(timeout_ms - v->early_ms)
		&& dt <= (uint64_t)(timeout_ms + v->late_ms));
}

/* ------------------------------------------------------------------ */
/* Outcomes, event mode                                                */
/* ------------------------------------------------------------------ */

static void
test_secure_ee311(void **state)
{
	static const char *names[] = { "ee311.clients.test",
		"rollover.clients.test", "sensor7._device.clients.test" };
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_resolver *lu = mk_mode(DANCE_RESOLVER_EVENT);
	struct dance_answer *a, *b;

	/* Upper case in the query: the key and the answer are lower. */
	a = ev_lookup(r, "EE311.Clients.Test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_string_equal(a->name, "ee311.clients.test");
	assert_int_equal(a->n, 1);
	expect_rr(&a->rr[0], 3, 1, 1, "ee311");
	assert_int_equal(a->from_cache, 0);
	assert_true(a->ttl > 0 && a->ttl <= 300);
	assert_string_equal(a->why, "");
	dance_answer_unref(a);
	/* The same records as local validation by another libunbound
	 * resolver. */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		a = ev_lookup(r, names[i], 3000);
		b = ev_lookup(lu, names[i], 3000);
		expect_status(a, DANCE_DNS_SECURE);
		expect_status(b, DANCE_DNS_SECURE);
		same_rrset(a, b);
		same_rrset(b, a);
		dance_answer_unref(a);
		dance_answer_unref(b);
	}
	assert_int_equal(stats(r).queries, 3);
	assert_int_equal(stats(r).cache_hits, 1);	/* ee311 again */
	dance_resolver_free(lu);
	dance_resolver_free(r);
}

static void
test_secure_ee312(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "ee312.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->n, 1);
	expect_rr(&a->rr[0], 3, 1, 2, "ee312");
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_secure_rollover(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;
	int seen = 0;

	a = ev_lookup(r, "rollover.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->n, 3);
	/* RRset order is not defined: identify each record. */
	for (size_t i = 0; i < a->n; i++) {
		unsigned char md[EVP_MAX_MD_SIZE];
		size_t n;

		if (a->rr[i].mtype == 2) {
			expect_rr(&a->rr[i], 3, 1, 2, "rollnew");
			seen |= 4;
			continue;
		}
		n = cert_digest("rollold", 1, 1, md);
		if (a->rr[i].len == n && memcmp(a->rr[i].data, md, n) == 0) {
			expect_rr(&a->rr[i], 3, 1, 1, "rollold");
			seen |= 1;
		} else {
			expect_rr(&a->rr[i], 3, 1, 1, "rollnew");
			seen |= 2;
		}
	}
	assert_int_equal(seen, 7);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_secure_wildcard(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "sensor7._device.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_string_equal(a->name, "sensor7._device.clients.test");
	assert_int_equal(a->n, 1);
	expect_rr(&a->rr[0], 2, 0, 1, "devca");
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_nodata(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "nodata.clients.test", 3000);
	expect_status(a, DANCE_DNS_NODATA);
	assert_int_equal(a->n, 0);
	assert_null(a->rr);
	assert_true(a->ttl > 0 && a->ttl <= 60);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_nxdomain(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "nx.clients.test", 3000);
	expect_status(a, DANCE_DNS_NXDOMAIN);
	assert_int_equal(a->n, 0);
	assert_true(a->ttl > 0 && a->ttl <= 60);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_insecure(void **state)
{
	const struct variant *v = *state;
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "x.insecure.clients.test", 3000);
	expect_status(a, DANCE_DNS_INSECURE);
	assert_int_equal(a->n, 0);
	assert_int_equal(a->ttl, 60);		/* neg_ttl */
	assert_true(strlen(a->why) > 0);
	if (v->insecure_why != NULL)
		assert_non_null(strstr(a->why, v->insecure_why));
	dance_answer_unref(a);
	dance_resolver_free(r);
}

/* Never SECURE: BOGUS where we validate, the validating forwarder's
 * SERVFAIL where we trust its AD bit. */
static void
test_bogus(void **state)
{
	const struct variant *v = *state;
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "bogus.clients.test", 3000);
	expect_status(a, v->bogus);
	assert_int_equal(a->n, 0);
	assert_int_equal(a->ttl, 5);		/* fail_ttl */
	print_message("bogus: %s\n", a->why);
	assert_non_null(strstr(a->why, v->bogus_why));
	if (v->bogus_why_more != NULL)
		assert_true(strlen(a->why) > strlen(v->bogus_why_more));
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_servfail(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	a = ev_lookup(r, "x.servfail.clients.test", 4000);
	expect_status(a, DANCE_DNS_SERVFAIL);
	assert_int_equal(a->ttl, 5);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_timeout(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	uint64_t t0, dt;

	var_cfg(state, &c, DANCE_RESOLVER_EVENT);
	c.timeout_ms = 500;
	r = mk(&c);
	t0 = now_ms();
	a = ev_lookup(r, "x.slow.clients.test", 3000);
	dt = now_ms() - t0;
	expect_status(a, DANCE_DNS_TIMEOUT);
	expect_timeout_dt(state, 500, dt);
	assert_int_equal(stats(r).timeouts, 1);
	assert_int_equal(stats(r).pending, 0);
	assert_int_equal(dance_resolver_next_timeout(r), -1);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_overload(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_lookup *l[4];
	struct got g[5];
	int n = 0, done;

	(void)state;
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 5; i++)
		g[i].counter = &n;
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.max_pending = 2;
	c.timeout_ms = 500;
	r = mk(&c);
	l[0] = dance_resolver_lookup(r, "a.slow.clients.test", got_cb, &g[0],
		&done);
	assert_non_null(l[0]);
	assert_int_equal(done, 0);
	l[1] = dance_resolver_lookup(r, "b.slow.clients.test", got_cb, &g[1],
		&done);
	assert_non_null(l[1]);
	/* Third distinct name: refused at once, callback already ran. */
	l[2] = dance_resolver_lookup(r, "c.slow.clients.test", got_cb, &g[2],
		&done);
	assert_null(l[2]);
	assert_int_equal(done, 1);
	assert_int_equal(g[2].calls, 1);
	expect_status(g[2].a, DANCE_DNS_OVERLOAD);
	assert_int_equal(stats(r).overload, 1);
	assert_int_equal(stats(r).pending, 2);
	/* Joining an in-flight name is still fine. */
	l[3] = dance_resolver_lookup(r, "a.slow.clients.test", got_cb, &g[3],
		&done);
	assert_non_null(l[3]);
	assert_int_equal(stats(r).coalesced, 1);
	assert_int_equal(stats(r).queries, 2);
	drive(r, &n, 4, 3000);
	assert_int_equal(n, 4);
	expect_status(g[0].a, DANCE_DNS_TIMEOUT);
	expect_status(g[1].a, DANCE_DNS_TIMEOUT);
	expect_status(g[3].a, DANCE_DNS_TIMEOUT);
	assert_int_equal(stats(r).pending, 0);
	/* Capacity is back. */
	l[0] = dance_resolver_lookup(r, "d.slow.clients.test", got_cb, &g[4],
		&done);
	assert_non_null(l[0]);
	dance_lookup_cancel(l[0]);
	assert_int_equal(g[4].calls, 0);
	for (int i = 0; i < 5; i++)
		got_clear(&g[i]);
	dance_resolver_free(r);
}

/*
 * Slowloris: lookups hanging on a server that never answers must not
 * hold up other names (libunbound's default of 16 outgoing sockets
 * would queue everything else behind 64 hanging queries).
 */
static void
test_slow_does_not_starve(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct got g[65];
	char name[64];
	int n = 0, fast = 0, done, i;
	uint64_t t0;

	(void)state;
	memset(g, 0, sizeof(g));
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.timeout_ms = 4000;
	r = mk(&c);
	for (i = 0; i < 64; i++) {
		g[i].counter = &n;
		(void)snprintf(name, sizeof(name), "s%d.slow.clients.test", i);
		assert_non_null(dance_resolver_lookup(r, name, got_cb, &g[i],
			&done));
	}
	g[64].counter = &fast;
	t0 = now_ms();
	assert_non_null(dance_resolver_lookup(r, "ee312.clients.test",
		got_cb, &g[64], &done));
	drive(r, &fast, 1, 3000);
	assert_int_equal(fast, 1);
	expect_status(g[64].a, DANCE_DNS_SECURE);
	/* Answered well before the hanging ones time out. */
	assert_true(g[64].at - t0 < 3000);
	assert_int_equal(n, 0);
	assert_int_equal(stats(r).pending, 64);
	dance_resolver_free(r);
	for (i = 0; i < 65; i++)
		got_clear(&g[i]);
}

/* ------------------------------------------------------------------ */
/* Coalescing and caching                                              */
/* ------------------------------------------------------------------ */

static void
test_coalesce_and_cache(void **state)
{
	const char *name = "dev.late.clients.test";
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;
	struct got g[10];
	int n = 0, done, before, after;

	memset(g, 0, sizeof(g));
	before = world_count(name);
	assert_true(before >= 0);
	for (int i = 0; i < 10; i++) {
		g[i].counter = &n;
		assert_non_null(dance_resolver_lookup(r, name, got_cb, &g[i],
			&done));
		assert_int_equal(done, 0);
	}
	assert_int_equal(stats(r).queries, 1);
	assert_int_equal(stats(r).coalesced, 9);
	assert_int_equal(stats(r).pending, 1);
	drive(r, &n, 10, 5000);
	assert_int_equal(n, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(g[i].calls, 1);
		expect_status(g[i].a, DANCE_DNS_SECURE);
		/* One answer object, shared by every waiter. */
		assert_ptr_equal(g[i].a, g[0].a);
		assert_int_equal(g[i].a->from_cache, 0);
	}
	expect_rr(&g[0].a->rr[0], 3, 1, 1, "ee311");
	after = world_count(name);
	assert_int_equal(after - before, 1);

	/* Cache hit: synchronous, marked, no new query anywhere. */
	a = ev_lookup(r, name, 100);
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->from_cache, 1);
	assert_int_equal(a->n, 1);
	expect_rr(&a->rr[0], 3, 1, 1, "ee311");
	dance_answer_unref(a);
	assert_int_equal(stats(r).cache_hits, 1);
	assert_int_equal(stats(r).queries, 1);
	assert_int_equal(stats(r).lookups, 11);
	a = dance_resolver_cached(r, name);
	assert_non_null(a);
	assert_int_equal(a->from_cache, 1);
	dance_answer_unref(a);
	assert_null(dance_resolver_cached(r, "ee312.clients.test"));
	assert_int_equal(world_count(name), after);
	for (int i = 0; i < 10; i++)
		got_clear(&g[i]);
	dance_resolver_free(r);
}

static void
test_negative_cache(void **state)
{
	char buf[DANCE_NAME_MAX + 1];
	const char *name = uniq(buf, sizeof(buf), "nx", "clients.test");
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;
	int c1;

	a = ev_lookup(r, name, 3000);
	expect_status(a, DANCE_DNS_NXDOMAIN);
	assert_int_equal(a->from_cache, 0);
	dance_answer_unref(a);
	c1 = world_count(name);
	a = ev_lookup(r, name, 100);
	expect_status(a, DANCE_DNS_NXDOMAIN);
	assert_int_equal(a->from_cache, 1);
	dance_answer_unref(a);
	assert_int_equal(stats(r).cache_hits, 1);
	assert_int_equal(stats(r).queries, 1);
	assert_int_equal(world_count(name), c1);
	dance_resolver_free(r);
}

static void
test_ttl_expiry(void **state)
{
	/* Through the wildcard: secure data only this test asks for. */
	char buf[DANCE_NAME_MAX + 1];
	const char *name = uniq(buf, sizeof(buf), "ttl",
		"_device.clients.test");
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	int c1;

	(void)state;
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.max_ttl = 1;
	r = mk(&c);
	a = ev_lookup(r, name, 3000);
	expect_status(a, DANCE_DNS_SECURE);
	expect_rr(&a->rr[0], 2, 0, 1, "devca");
	assert_int_equal(a->ttl, 1);
	dance_answer_unref(a);
	c1 = world_count(name);
	a = ev_lookup(r, name, 100);
	assert_int_equal(a->from_cache, 1);
	dance_answer_unref(a);
	usleep(1100 * 1000);
	/* Our cache counts milliseconds: the entry is gone after 1 s. */
	assert_null(dance_resolver_cached(r, name));
	/* libunbound counts whole seconds and keeps a TTL-1 entry until
	 * the clock has moved 2 s past its second of storage. */
	usleep(1000 * 1000);
	a = ev_lookup(r, name, 3000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->from_cache, 0);
	dance_answer_unref(a);
	assert_int_equal(stats(r).queries, 2);
	assert_int_equal(stats(r).cache_hits, 1);
	/* libunbound's own cache is bounded by max_ttl too: the data
	 * really was fetched again. */
	assert_int_equal(world_count(name), c1 + 1);
	dance_resolver_free(r);
}

static void
test_no_cache(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;

	var_cfg(state, &c, DANCE_RESOLVER_EVENT);
	c.cache_size = 0;
	r = mk(&c);
	for (int i = 0; i < 2; i++) {
		a = ev_lookup(r, "ee312.clients.test", 3000);
		expect_status(a, DANCE_DNS_SECURE);
		assert_int_equal(a->from_cache, 0);
		dance_answer_unref(a);
	}
	assert_int_equal(stats(r).queries, 2);
	assert_int_equal(stats(r).cache_hits, 0);
	dance_resolver_free(r);
}

/* The trust digest follows the anchors' content and every trust
 * setting, and nothing else. */
static void
test_cfg_digest(void **state)
{
	unsigned char d0[DANCE_DIGEST_LEN], d[DANCE_DIGEST_LEN];
	struct dance_resolver_cfg c;
	struct dance_error e;
	char ta[PATH_MAX + 32];
	const char *tas[2] = { ta, NULL };
	const char *fw[2] = { "127.0.0.1@53", NULL };
	FILE *f;

	(void)state;
	snprintf(ta, sizeof(ta), "%s/digest-ta.%d", w_tmp, (int)getpid());
	assert_non_null(f = fopen(ta, "w"));
	fputs("test. IN DS 1 13 2 00\n", f);
	fclose(f);
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.trust_anchor_files = tas;
	assert_int_equal(dance_resolver_cfg_digest(&c, d0, &e), DANCE_OK);
	c.timeout_ms = 7;		/* not about trust */
	c.max_pending = 3;
	c.cache_size = 0;
	c.mode = DANCE_RESOLVER_THREADED;
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_equal(d, d0, sizeof(d));
	/* Same file name, other content. */
	assert_non_null(f = fopen(ta, "w"));
	fputs("test. IN DS 1 13 2 01\n", f);
	fclose(f);
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_not_equal(d, d0, sizeof(d));
	memcpy(d0, d, sizeof(d));
	c.trust_ad = 1;
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_not_equal(d, d0, sizeof(d));
	c.trust_ad = 0;
	c.max_ttl = 3599;
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_not_equal(d, d0, sizeof(d));
	c.max_ttl = 3600;
	c.forwarders = fw;
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_not_equal(d, d0, sizeof(d));
	c.forwarders = NULL;
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e), DANCE_OK);
	assert_memory_equal(d, d0, sizeof(d));
	unlink(ta);
	assert_int_equal(dance_resolver_cfg_digest(&c, d, &e),
		DANCE_ERR_CONFIG);
	assert_non_null(strstr(e.reason, ta));
}

static void
test_cache_put_lru(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a[3], *x, *t0, *ov;
	struct dance_tlsa rr = { 3, 1, 1, 32, NULL };
	unsigned char dig[32];
	static const char *names[] = { "a.example", "b.example", "c.example" };
	int done;
	struct got g;

	(void)state;
	memset(dig, 0xab, sizeof(dig));
	rr.data = dig;
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.cache_size = 2;
	r = mk(&c);
	for (int i = 0; i < 3; i++) {
		a[i] = dance_answer_new(DANCE_DNS_SECURE, names[i], &rr, 1, 60,
			NULL);
		assert_non_null(a[i]);
	}
	dance_resolver_cache_put(r, a[0]);
	dance_resolver_cache_put(r, a[1]);
	x = dance_resolver_cached(r, "A.example");	/* a: most recent */
	assert_non_null(x);
	assert_int_equal(x->from_cache, 1);
	assert_int_equal(a[0]->from_cache, 0);	/* the original is intact */
	assert_memory_equal(x->rr[0].data, dig, 32);
	dance_answer_unref(x);
	dance_resolver_cache_put(r, a[2]);		/* evicts b */
	assert_null(dance_resolver_cached(r, "b.example"));
	x = dance_resolver_cached(r, "a.example");
	assert_non_null(x);
	dance_answer_unref(x);
	x = dance_resolver_cached(r, "c.example");
	assert_non_null(x);
	dance_answer_unref(x);
	/* Not cacheable: ttl 0, overload, error. */
	t0 = dance_answer_new(DANCE_DNS_SECURE, "t0.example", &rr, 1, 0, NULL);
	ov = dance_answer_new(DANCE_DNS_OVERLOAD, "ov.example", NULL, 0, 60,
		"x");
	dance_resolver_cache_put(r, t0);
	dance_resolver_cache_put(r, ov);
	assert_null(dance_resolver_cached(r, "t0.example"));
	assert_null(dance_resolver_cached(r, "ov.example"));
	/* A put answer serves lookups without a query. */
	memset(&g, 0, sizeof(g));
	assert_null(dance_resolver_lookup(r, "c.example", got_cb, &g, &done));
	assert_int_equal(done, 1);
	assert_int_equal(g.a->from_cache, 1);
	assert_int_equal(stats(r).queries, 0);
	got_clear(&g);
	for (int i = 0; i < 3; i++)
		dance_answer_unref(a[i]);
	dance_answer_unref(t0);
	dance_answer_unref(ov);
	dance_resolver_free(r);
}

/* ------------------------------------------------------------------ */
/* Cancellation and re-entrancy                                        */
/* ------------------------------------------------------------------ */

static void
test_cancel(void **state)
{
	const char *name = "dev.late.clients.test";
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_lookup *l1, *l2;
	struct got g1, g2;
	int n = 0, done;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	g1.counter = g2.counter = &n;
	/* Sole waiter: the query goes too. */
	l1 = dance_resolver_lookup(r, name, got_cb, &g1, &done);
	assert_non_null(l1);
	assert_int_equal(stats(r).pending, 1);
	dance_lookup_cancel(l1);
	assert_int_equal(stats(r).pending, 0);
	assert_int_equal(dance_resolver_next_timeout(r), -1);
	drive(r, NULL, 0, 1300);
	assert_int_equal(g1.calls, 0);
	/* One of two: the other still gets the answer. */
	l1 = dance_resolver_lookup(r, name, got_cb, &g1, &done);
	l2 = dance_resolver_lookup(r, name, got_cb, &g2, &done);
	assert_non_null(l1);
	assert_non_null(l2);
	dance_lookup_cancel(l1);
	assert_int_equal(stats(r).pending, 1);
	drive(r, &n, 1, 3000);
	drive(r, NULL, 0, 100);
	assert_int_equal(g1.calls, 0);
	assert_int_equal(g2.calls, 1);
	expect_status(g2.a, DANCE_DNS_SECURE);
	got_clear(&g2);
	dance_resolver_free(r);
}

static void
test_cancel_from_callback(void **state)
{
	const char *name = "rollover.clients.test";
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct got g1, g2;
	int n = 0, done;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	g1.counter = g2.counter = &n;
	assert_non_null(dance_resolver_lookup(r, name, got_cb, &g1, &done));
	/* Waiters are answered in arrival order: g1 cancels g2. */
	g1.cancel_other = dance_resolver_lookup(r, name, got_cb, &g2, &done);
	assert_non_null(g1.cancel_other);
	drive(r, &n, 1, 3000);
	drive(r, NULL, 0, 100);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g2.calls, 0);
	got_clear(&g1);
	dance_resolver_free(r);
}

static void
test_lookup_from_callback(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct got g1, g2;
	int n = 0, done;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	g1.counter = g2.counter = &n;
	g1.r = r;
	g1.next_name = "ee312.clients.test";
	g1.next_got = &g2;
	assert_non_null(dance_resolver_lookup(r, "ee311.clients.test", got_cb,
		&g1, &done));
	drive(r, &n, 2, 5000);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g2.calls, 1);
	expect_status(g1.a, DANCE_DNS_SECURE);
	expect_status(g2.a, DANCE_DNS_SECURE);
	assert_string_equal(g2.a->name, "ee312.clients.test");
	got_clear(&g1);
	got_clear(&g2);
	dance_resolver_free(r);
}

/* Freeing with lookups in flight: no callback, no leak (ASan). */
static void
test_free_pending(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct got g;
	int done;

	memset(&g, 0, sizeof(g));
	assert_non_null(dance_resolver_lookup(r, "x.slow.clients.test",
		got_cb, &g, &done));
	assert_non_null(dance_resolver_lookup(r, "x.slow.clients.test",
		got_cb, &g, &done));
	dance_resolver_free(r);
	assert_int_equal(g.calls, 0);
	r = mk_var(state, DANCE_RESOLVER_THREADED);
	assert_non_null(dance_resolver_lookup(r, "y.slow.clients.test",
		got_cb, &g, &done));
	dance_resolver_free(r);
	assert_int_equal(g.calls, 0);
}

/* ------------------------------------------------------------------ */
/* Blocking calls                                                      */
/* ------------------------------------------------------------------ */

static void
test_event_resolve_wait(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;

	assert_int_equal(dance_resolver_get_mode(r), DANCE_RESOLVER_EVENT);
	a = dance_resolve_wait(r, "ee311.clients.test");
	assert_non_null(a);
	expect_status(a, DANCE_DNS_SECURE);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_threaded_outcomes(void **state)
{
	const struct variant *v = *state;
	const struct {
		const char *name;
		enum dance_dns_status st;
		size_t n;
	} cases[] = {
		{ "ee311.clients.test", DANCE_DNS_SECURE, 1 },
		{ "ee312.clients.test", DANCE_DNS_SECURE, 1 },
		{ "rollover.clients.test", DANCE_DNS_SECURE, 3 },
		{ "sensor7._device.clients.test", DANCE_DNS_SECURE, 1 },
		{ "nodata.clients.test", DANCE_DNS_NODATA, 0 },
		{ "nx.clients.test", DANCE_DNS_NXDOMAIN, 0 },
		{ "x.insecure.clients.test", DANCE_DNS_INSECURE, 0 },
		{ "bogus.clients.test", v->bogus, 0 },
		{ "x.servfail.clients.test", DANCE_DNS_SERVFAIL, 0 },
		{ "x.slow.clients.test", DANCE_DNS_TIMEOUT, 0 },
		{ "ee311.clients.test", DANCE_DNS_SECURE, 1 },
	};
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	uint64_t t0, dt;

	var_cfg(state, &c, DANCE_RESOLVER_THREADED);
	c.timeout_ms = v->threaded_timeout_ms;
	r = mk(&c);
	assert_int_equal(dance_resolver_get_mode(r), DANCE_RESOLVER_THREADED);
	assert_int_equal(dance_resolver_fd(r), -1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t0 = now_ms();
		a = dance_resolve_wait(r, cases[i].name);
		dt = now_ms() - t0;
		assert_non_null(a);
		expect_status(a, cases[i].st);
		assert_int_equal(a->n, cases[i].n);
		if (cases[i].st == DANCE_DNS_TIMEOUT)
			expect_timeout_dt(state, c.timeout_ms, dt);
		dance_answer_unref(a);
	}
	/* The last one was the first's cache hit. */
	assert_int_equal(stats(r).cache_hits, 1);
	assert_int_equal(stats(r).timeouts, 1);
	assert_int_equal(stats(r).pending, 0);
	dance_resolver_free(r);
}

struct tharg {
	struct dance_resolver *r;
	const char *name;
	pthread_barrier_t *bar;
	enum dance_dns_status st;
	size_t n;
};

static void *
th_wait(void *p)
{
	struct tharg *t = p;
	struct dance_answer *a;

	pthread_barrier_wait(t->bar);
	a = dance_resolve_wait(t->r, t->name);
	t->st = a->status;
	t->n = a->n;
	dance_answer_unref(a);
	return NULL;
}

static void
test_threaded_coalesce(void **state)
{
	/* A fresh name below late.clients.test would be NXDOMAIN, and
	 * proving that takes several slow round trips (DS lookups). */
	const char *name = "dev.late.clients.test";
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_THREADED);
	struct dance_resolver_stats st;
	pthread_barrier_t bar;
	pthread_t th[8];
	struct tharg ta[8];
	int before = world_count(name);

	pthread_barrier_init(&bar, NULL, 8);
	for (int i = 0; i < 8; i++) {
		ta[i].r = r;
		ta[i].name = name;
		ta[i].bar = &bar;
		ta[i].st = DANCE_DNS_ERROR;
		assert_int_equal(pthread_create(&th[i], NULL, th_wait, &ta[i]),
			0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(ta[i].st, DANCE_DNS_SECURE);
		assert_int_equal(ta[i].n, 1);
	}
	st = stats(r);
	assert_int_equal(st.lookups, 8);
	assert_int_equal(st.queries, 1);
	/* The late server takes 800 ms, so all of them joined. */
	assert_int_equal(st.coalesced, 7);
	assert_int_equal(world_count(name) - before, 1);
	assert_int_equal(st.pending, 0);
	dance_resolver_free(r);
}

static void
test_threaded_cancel(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_THREADED);
	struct dance_lookup *l;
	struct dance_answer *a;
	struct got g;
	int done;

	memset(&g, 0, sizeof(g));
	l = dance_resolver_lookup(r, "dev.late.clients.test", got_cb, &g,
		&done);
	assert_non_null(l);
	dance_lookup_cancel(l);
	assert_int_equal(stats(r).pending, 0);
	usleep(1300 * 1000);
	assert_int_equal(__atomic_load_n(&g.calls, __ATOMIC_SEQ_CST), 0);
	/* The resolver is still fine afterwards. */
	a = dance_resolve_wait(r, "ee311.clients.test");
	expect_status(a, DANCE_DNS_SECURE);
	dance_answer_unref(a);
	dance_resolver_free(r);
}

/* ------------------------------------------------------------------ */
/* Forwarders                                                          */
/* ------------------------------------------------------------------ */

/* A libunbound config with only what the forwarding tests need. */
static void
write_nodefault_conf(char *path, size_t len)
{
	FILE *f;
	int fd;

	snprintf(path, len, "%.4000s/dance-res-XXXXXX", w_tmp);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "server:\n\tlocal-zone: \"test.\" nodefault\n"
		"\tdo-not-query-localhost: no\n");
	fclose(f);
}

static void
test_forwarder(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	char conf[PATH_MAX], fwd[64];
	const char *fwds[2] = { fwd, NULL };

	(void)state;
	if (w_proxy_port <= 0)
		fail_msg("WORLD_PROXY_PORT missing from the world env");
	write_nodefault_conf(conf, sizeof(conf));
	/* The world's proxy fronts the authoritative server: as a
	 * forwarder it answers everything under test., and validation
	 * stays local (trust anchor). */
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", w_proxy_port);
	dance_resolver_cfg_init(&c);
	c.trust_anchor_files = w_tas;
	c.unbound_conf = conf;
	c.forwarders = fwds;
	r = mk(&c);
	a = ev_lookup(r, "ee311.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	expect_rr(&a->rr[0], 3, 1, 1, "ee311");
	dance_answer_unref(a);
	a = ev_lookup(r, "bogus.clients.test", 3000);
	expect_status(a, DANCE_DNS_BOGUS);
	dance_answer_unref(a);
	a = ev_lookup(r, "x.insecure.clients.test", 3000);
	expect_status(a, DANCE_DNS_INSECURE);
	dance_answer_unref(a);
	dance_resolver_free(r);
	unlink(conf);
}

/* ------------------------------------------------------------------ */
/* Serialisation                                                       */
/* ------------------------------------------------------------------ */

static void
check_same(const struct dance_answer *a, const struct dance_answer *b)
{
	assert_int_equal(a->status, b->status);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->why, b->why);
	assert_int_equal(a->ttl, b->ttl);
	assert_int_equal(a->from_cache, b->from_cache);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_int_equal(a->rr[i].usage, b->rr[i].usage);
		assert_int_equal(a->rr[i].selector, b->rr[i].selector);
		assert_int_equal(a->rr[i].mtype, b->rr[i].mtype);
		assert_int_equal(a->rr[i].len, b->rr[i].len);
		assert_memory_equal(a->rr[i].data, b->rr[i].data,
			a->rr[i].len);
	}
}

static void
roundtrip(const struct dance_answer *a)
{
	size_t sz = dance_answer_serialize_size(a);
	unsigned char *buf;
	struct dance_answer *b;

	assert_true(sz > 0);
	buf = malloc(sz + 1);
	assert_non_null(buf);
	assert_int_equal(dance_answer_serialize(a, buf, sz - 1), 0);
	assert_int_equal(dance_answer_serialize(a, buf, sz), sz);
	b = dance_answer_deserialize(buf, sz);
	assert_non_null(b);
	check_same(a, b);
	assert_int_equal(b->refs, 1);
	dance_answer_unref(b);
	/* Every truncation, and one byte too many, is refused. */
	for (size_t len = 0; len < sz; len++)
		assert_null(dance_answer_deserialize(buf, len));
	buf[sz] = 0;
	assert_null(dance_answer_deserialize(buf, sz + 1));
	/* Bad magic, version, status. */
	buf[0] ^= 0xff;
	assert_null(dance_answer_deserialize(buf, sz));
	buf[0] ^= 0xff;
	buf[4] = 99;
	assert_null(dance_answer_deserialize(buf, sz));
	buf[4] = 1;
	buf[5] = 200;
	assert_null(dance_answer_deserialize(buf, sz));
	free(buf);
}

static void
test_serialize(void **state)
{
	const struct variant *v = *state;
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	struct dance_answer *a;
	unsigned char junk[64];

	a = ev_lookup(r, "rollover.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	roundtrip(a);
	dance_answer_unref(a);
	a = ev_lookup(r, "rollover.clients.test", 100);	/* from cache */
	assert_int_equal(a->from_cache, 1);
	roundtrip(a);
	dance_answer_unref(a);
	a = ev_lookup(r, "bogus.clients.test", 3000);
	expect_status(a, v->bogus);
	roundtrip(a);
	dance_answer_unref(a);
	memset(junk, 'D', sizeof(junk));
	assert_null(dance_answer_deserialize(junk, sizeof(junk)));
	assert_null(dance_answer_deserialize(NULL, 10));
	assert_int_equal(dance_answer_serialize_size(NULL), 0);
	dance_resolver_free(r);
}

/* ------------------------------------------------------------------ */
/* Configuration errors                                                */
/* ------------------------------------------------------------------ */

static void
expect_config_error(const struct dance_resolver_cfg *c, const char *in)
{
	struct dance_error e = { DANCE_OK, "" };
	struct dance_resolver *r = dance_resolver_new(c, &e);

	if (r != NULL)
		dance_resolver_free(r);
	assert_null(r);
	assert_int_equal(e.code, DANCE_ERR_CONFIG);
	if (strstr(e.reason, in) == NULL)
		print_error("reason \"%s\" lacks \"%s\"\n", e.reason, in);
	assert_non_null(strstr(e.reason, in));
}

static void
test_config_errors(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_error e;
	char garbage[PATH_MAX], conf[PATH_MAX];
	const char *fwd[2] = { NULL, NULL };
	const char *bad_ta[2] = { "/nonexistent/dance.ta", NULL };
	const char *garbage_ta[2] = { garbage, NULL };
	FILE *f;
	int fd;

	(void)state;
	dance_resolver_cfg_init(&c);
	c.unbound_conf = w_conf;
	expect_config_error(&c, "no trust anchor");
	/* trust_ad without anchors: forwarders required, and nothing of
	 * libunbound's configuration applies (test_ad_config has more). */
	c.trust_ad = 1;
	expect_config_error(&c, "needs forwarders");
	fwd[0] = "127.0.0.1";
	c.forwarders = fwd;
	expect_config_error(&c, "unbound_conf");
	c.trust_ad = 0;

	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.forwarders = fwd;
	fwd[0] = "not-an-address";
	expect_config_error(&c, "not-an-address");
	fwd[0] = "127.0.0.1@99999";
	expect_config_error(&c, "127.0.0.1@99999");
	fwd[0] = "127.0.0.1@";
	expect_config_error(&c, "bad port");
	fwd[0] = "127.0.0.1#";
	expect_config_error(&c, "auth name");
	fwd[0] = "";
	expect_config_error(&c, "forwarder");

	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.unbound_conf = "/nonexistent/dance-unbound.conf";
	expect_config_error(&c, "/nonexistent/dance-unbound.conf");
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.trust_anchor_files = bad_ta;
	expect_config_error(&c, "/nonexistent/dance.ta");

	/* Files that exist but libunbound cannot use. */
	snprintf(garbage, sizeof(garbage), "%.4000s/dance-ta-XXXXXX", w_tmp);
	fd = mkstemp(garbage);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("this is not a trust anchor\n", f);
	fclose(f);
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.trust_anchor_files = garbage_ta;
	expect_config_error(&c, garbage);
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.unbound_conf = garbage;
	expect_config_error(&c, garbage);
	unlink(garbage);

	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.timeout_ms = 0;
	expect_config_error(&c, "timeout_ms");
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.max_pending = 0;
	expect_config_error(&c, "max_pending");
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.min_ttl = 10;
	c.max_ttl = 5;
	expect_config_error(&c, "min_ttl");
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.forward_tls = 1;
	expect_config_error(&c, "forward_tls");
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.mode = (enum dance_resolver_mode)7;
	expect_config_error(&c, "mode");
	assert_null(dance_resolver_new(NULL, &e));
	assert_int_equal(e.code, DANCE_ERR_CONFIG);

	/* Accepted forms: auth name without a port, IPv6, trust_ad
	 * alongside anchors (validation stays local). */
	write_nodefault_conf(conf, sizeof(conf));
	world_cfg(&c, DANCE_RESOLVER_EVENT);
	c.unbound_conf = conf;
	c.forwarders = fwd;
	c.trust_ad = 1;
	fwd[0] = "127.0.0.1#dns.example";
	r = dance_resolver_new(&c, &e);
	if (r == NULL)
		print_error("%s\n", e.reason);
	assert_non_null(r);
	dance_resolver_free(r);
	fwd[0] = "::1@5353";
	r = dance_resolver_new(&c, &e);
	assert_non_null(r);
	dance_resolver_free(r);
	/* DNS-over-TLS: an unreadable CA file is refused; a libunbound
	 * without TLS (Debian's) is refused at creation, not at each
	 * lookup. */
	c.forward_tls = 1;
	c.tls_ca_file = "/nonexistent/ca.pem";
	fwd[0] = "127.0.0.1@853#dns.example";
	expect_config_error(&c, "/nonexistent/ca.pem");
	c.tls_ca_file = w_ta;	/* readable; content matters only later */
	r = dance_resolver_new(&c, &e);
	if (r != NULL) {
		print_message("this libunbound supports DNS-over-TLS\n");
		dance_resolver_free(r);
	} else {
		assert_int_equal(e.code, DANCE_ERR_CONFIG);
		assert_non_null(strstr(e.reason, "DNS-over-TLS"));
	}
	unlink(conf);
}

/* A second cache tier as a host keeps one (e.g. nginx's shared zone):
 * one serialized answer, and what the resolver asked of it. */
struct tier {
	unsigned char buf[4096];
	size_t len;
	int gets, puts;
	int wrong_name;		/* get() answers for another name */
};

static struct dance_answer *
tier_get(void *arg, const char *name)
{
	struct tier *t = arg;
	struct dance_answer *a;

	t->gets++;
	if (t->len == 0)
		return NULL;
	a = dance_answer_deserialize(t->buf, t->len);
	assert_non_null(a);
	if (!t->wrong_name && strcmp(a->name, name) != 0) {
		dance_answer_unref(a);
		return NULL;
	}
	return a;
}

static void
tier_put(void *arg, const struct dance_answer *a)
{
	struct tier *t = arg;

	t->puts++;
	assert_int_equal(a->from_cache, 0);
	t->len = dance_answer_serialize(a, t->buf, sizeof(t->buf));
	assert_true(t->len > 0);
}

static struct dance_resolver *
mk_tier(void **state, struct tier *t)
{
	struct dance_resolver_cfg c;

	var_cfg(state, &c, DANCE_RESOLVER_EVENT);
	c.tier.get = tier_get;
	c.tier.put = tier_put;
	c.tier.arg = t;
	return mk(&c);
}

/* The tier is asked on a local miss before any query and filled after
 * a fresh answer; a second resolver on the same tier asks no DNS. */
static void
test_cache_tier(void **state)
{
	const char *name = "ee311.clients.test";
	struct dance_resolver *r1, *r2, *r3;
	struct dance_answer *a;
	struct tier t;

	memset(&t, 0, sizeof(t));
	r1 = mk_tier(state, &t);
	a = ev_lookup(r1, name, 5000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->from_cache, 0);
	dance_answer_unref(a);
	assert_int_equal(t.gets, 1);		/* missed, then the query */
	assert_int_equal(t.puts, 1);		/* filled after it */
	assert_int_equal(stats(r1).queries, 1);
	a = ev_lookup(r1, name, 100);		/* local hit: tier not asked */
	assert_int_equal(a->from_cache, 1);
	dance_answer_unref(a);
	assert_int_equal(t.gets, 1);

	r2 = mk_tier(state, &t);
	a = ev_lookup(r2, name, 100);		/* synchronous tier hit */
	expect_status(a, DANCE_DNS_SECURE);
	assert_int_equal(a->from_cache, 1);
	expect_rr(&a->rr[0], 3, 1, 1, "ee311");
	dance_answer_unref(a);
	assert_int_equal(t.gets, 2);
	assert_int_equal(t.puts, 1);		/* not written back */
	assert_int_equal(stats(r2).queries, 0);
	assert_int_equal(stats(r2).tier_hits, 1);
	assert_int_equal(stats(r2).cache_hits, 0);
	a = dance_resolver_cached(r2, name);	/* now in r2's own cache */
	assert_non_null(a);
	dance_answer_unref(a);
	assert_int_equal(t.gets, 2);
	/* A peek asks the tier too. */
	a = dance_resolver_cached(r1, "ee312.clients.test");
	assert_null(a);
	assert_int_equal(t.gets, 3);

	/* An answer for another name is not taken. */
	t.wrong_name = 1;
	r3 = mk_tier(state, &t);
	a = ev_lookup(r3, "ee312.clients.test", 5000);
	expect_status(a, DANCE_DNS_SECURE);
	assert_string_equal(a->name, "ee312.clients.test");
	assert_int_equal(a->from_cache, 0);
	dance_answer_unref(a);
	assert_int_equal(stats(r3).queries, 1);
	assert_int_equal(stats(r3).tier_hits, 0);
	dance_resolver_free(r1);
	dance_resolver_free(r2);
	dance_resolver_free(r3);
}

static void
test_bad_names(void **state)
{
	struct dance_resolver *r = mk_var(state, DANCE_RESOLVER_EVENT);
	char longname[300];
	struct dance_answer *a;

	a = ev_lookup(r, "", 100);
	expect_status(a, DANCE_DNS_ERROR);
	dance_answer_unref(a);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	a = ev_lookup(r, longname, 100);
	expect_status(a, DANCE_DNS_ERROR);
	dance_answer_unref(a);
	/* libunbound refuses a label over 63 octets. */
	longname[70] = '\0';
	a = ev_lookup(r, longname, 3000);
	expect_status(a, DANCE_DNS_ERROR);
	assert_true(strlen(a->why) > 0);
	dance_answer_unref(a);
	/* Not encodable (empty label): refused before any packet. */
	a = ev_lookup(r, "a..clients.test", 100);
	expect_status(a, DANCE_DNS_ERROR);
	dance_answer_unref(a);
	assert_int_equal(stats(r).pending, 0);
	dance_resolver_free(r);
}

/* ------------------------------------------------------------------ */
/* trust_ad: a real validating unbound daemon as the forwarder         */
/* ------------------------------------------------------------------ */

/*
 * Each test gets a fresh "unbound -d" (its cache empty, so the world's
 * query counts are ours), validating with the world's trust anchor and
 * reaching the world through its stub zones.  The daemon is the trusted
 * resolver; our resolver has no anchor and believes its AD bit.
 */
static pid_t ub_pid = -1;
static int ub_port;
static char ub_dir[PATH_MAX];

/* A port free for UDP and TCP on 127.0.0.1 (the kernel's choice for
 * UDP, tried for TCP). */
static int
free_port_once(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int u, t, port = -1, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((u = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
		return -1;
	if (bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0
		&& getsockname(u, (struct sockaddr *)&sa, &sl) == 0) {
		t = socket(AF_INET, SOCK_STREAM, 0);
		/* As unbound binds it: TIME_WAIT leftovers do not count. */
		if (t >= 0)
			(void)setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one,
				sizeof(one));
		if (t >= 0 && bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			port = ntohs(sa.sin_port);
		if (t >= 0)
			close(t);
	}
	close(u);
	return port;
}

static int
free_port(void)
{
	int port = -1;

	for (int i = 0; i < 50 && port <= 0; i++)
		port = free_port_once();
	return port;
}

static int
tcp_ready(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void
ub_log(void)
{
	char path[PATH_MAX + 32], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%.4000s/unbound.log", ub_dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		print_error("unbound: %s", line);
	fclose(f);
}

static int
ub_stop(void **state)
{
	char cmd[PATH_MAX + 32];
	int st;

	(void)state;
	if (ub_pid > 0) {
		kill(ub_pid, SIGTERM);
		for (int i = 0; i < 50; i++) {
			if (waitpid(ub_pid, &st, WNOHANG) == ub_pid)
				break;
			if (i == 49) {
				kill(ub_pid, SIGKILL);
				waitpid(ub_pid, &st, 0);
			}
			usleep(100 * 1000);
		}
		ub_pid = -1;
	}
	if (ub_dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ub_dir);
		if (system(cmd) != 0)
			print_error("cannot remove %s\n", ub_dir);
		ub_dir[0] = '\0';
	}
	return 0;
}

static int
ub_start(void **state)
{
	char conf[PATH_MAX + 32], out[PATH_MAX + 32];
	FILE *f;
	int st;

	(void)state;
	snprintf(ub_dir, sizeof(ub_dir), "%.4000s/dance-ub-XXXXXX", w_tmp);
	if (mkdtemp(ub_dir) == NULL || (ub_port = free_port()) <= 0) {
		print_error("no tmp dir or port for unbound\n");
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/unbound.conf", ub_dir);
	snprintf(out, sizeof(out), "%s/stderr", ub_dir);
	if ((f = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(f, "server:\n"
		"\tusername: \"\"\n\tchroot: \"\"\n"
		"\tdirectory: \"%s\"\n\tpidfile: \"%s/unbound.pid\"\n"
		"\tlogfile: \"%s/unbound.log\"\n\tuse-syslog: no\n"
		"\tinterface: 127.0.0.1\n\tport: %d\n"
		"\taccess-control: 127.0.0.0/8 allow\n"
		"\tnum-threads: 1\n\tede: yes\n"
		"\ttrust-anchor-file: \"%s\"\n"
		"include: \"%s\"\n",
		ub_dir, ub_dir, ub_dir, ub_port, w_ta, w_conf);
	fclose(f);
	if ((ub_pid = fork()) < 0)
		return -1;
	if (ub_pid == 0) {
		/* Never outlive the test, even when it crashes. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (freopen(out, "w", stdout) == NULL
			|| freopen(out, "w", stderr) == NULL)
			_exit(126);
		execl("/usr/sbin/unbound", "unbound", "-d", "-c", conf,
			(char *)NULL);
		execlp("unbound", "unbound", "-d", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (waitpid(ub_pid, &st, WNOHANG) == ub_pid) {
			print_error("unbound exited (status %d), see %s\n",
				st, out);
			ub_pid = -1;
			ub_log();
			return -1;
		}
		if (tcp_ready(ub_port))
			return 0;
		usleep(50 * 1000);
	}
	print_error("unbound did not start on port %d\n", ub_port);
	ub_log();
	ub_stop(state);
	return -1;
}

static char ad_fwd[64];
static const char *ad_fwds[3] = { ad_fwd, NULL, NULL };

static void
ad_cfg(struct dance_resolver_cfg *c, enum dance_resolver_mode mode)
{
	dance_resolver_cfg_init(c);
	c->mode = mode;
	c->trust_ad = 1;
	snprintf(ad_fwd, sizeof(ad_fwd), "127.0.0.1@%d", ub_port);
	ad_fwds[0] = ad_fwd;
	ad_fwds[1] = NULL;
	c->forwarders = ad_fwds;
}

/* A forwarder that is down (ICMP refused) or silent: the next one
 * answers, at once or after the retransmit interval. */
static void
test_ad_failover(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char dead[64], silent[64];
	uint64_t t0, dt;
	int hole;

	(void)state;
	ad_cfg(&c, DANCE_RESOLVER_EVENT);
	snprintf(dead, sizeof(dead), "127.0.0.1@%d", free_port());
	ad_fwds[0] = dead;
	ad_fwds[1] = ad_fwd;
	r = mk(&c);
	t0 = now_ms();
	a = ev_lookup(r, "ee311.clients.test", 3000);
	dt = now_ms() - t0;
	expect_status(a, DANCE_DNS_SECURE);
	print_message("refused forwarder skipped in %llu ms\n",
		(unsigned long long)dt);
	assert_true(dt < 500);
	dance_answer_unref(a);
	dance_resolver_free(r);

	/* A bound socket nobody reads: a black hole. */
	hole = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(hole, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(hole, (struct sockaddr *)&sa, &sl), 0);
	snprintf(silent, sizeof(silent), "127.0.0.1@%d", ntohs(sa.sin_port));
	ad_fwds[0] = silent;
	c.timeout_ms = 1500;		/* retransmit after 500 ms */
	r = mk(&c);
	t0 = now_ms();
	a = ev_lookup(r, "ee312.clients.test", 3000);
	dt = now_ms() - t0;
	expect_status(a, DANCE_DNS_SECURE);
	print_message("silent forwarder skipped in %llu ms\n",
		(unsigned long long)dt);
	assert_true(dt >= 450 && dt < 1500);
	dance_answer_unref(a);
	dance_resolver_free(r);
	close(hole);
}

/*
 * A fake forwarder in front of the unbound daemon, for what a healthy
 * resolver never does: truncate every UDP answer (TCP fallback), send
 * forged answers first, or a mangled one.  UDP and TCP on one port; the
 * real answers come from the daemon (relayed over UDP).
 */
enum fake_mode { FAKE_TC, FAKE_FORGED_FIRST, FAKE_MANGLED };

struct fake {
	enum fake_mode mode;
	int udp, tcp, port;
	int stop;
	int udp_queries, tcp_queries;
	pthread_t th;
};

/* The daemon's answer to q, or 0. */
static size_t
fake_relay(const unsigned char *q, size_t qlen, unsigned char *out,
	size_t outlen)
{
	struct sockaddr_in sa;
	struct pollfd p;
	ssize_t n = -1;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)ub_port);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
		&& send(fd, q, qlen, 0) == (ssize_t)qlen) {
		p.fd = fd;
		p.events = POLLIN;
		if (poll(&p, 1, 3000) == 1)
			n = recv(fd, out, outlen, 0);
	}
	if (fd >= 0)
		close(fd);
	return n > 0 ? (size_t)n : 0;
}

/* Offset just past the question (uncompressed qname), 0 if none. */
static size_t
fake_qend(const unsigned char *m, size_t len)
{
	size_t o = 12;

	while (o < len && m[o] != 0 && m[o] < 64)
		o += 1 + m[o];
	return o + 5 <= len && m[o] == 0 ? o + 5 : 0;
}

static void
fake_udp(struct fake *f)
{
	unsigned char q[512], a[4096], x[4096];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	size_t alen, qe;

	n = recvfrom(f->udp, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 12 || (qe = fake_qend(q, (size_t)n)) == 0)
		return;
	__atomic_add_fetch(&f->udp_queries, 1, __ATOMIC_SEQ_CST);
	if (f->mode == FAKE_TC) {
		/* Header and question only, QR and TC set. */
		q[2] |= 0x82;
		memset(q + 6, 0, 6);
		(void)sendto(f->udp, q, qe, 0, (struct sockaddr *)&from, fl);
		return;
	}
	if ((alen = fake_relay(q, (size_t)n, a, sizeof(a))) < 12)
		return;
	if (f->mode == FAKE_MANGLED) {
		/* Cut inside the last record. */
		(void)sendto(f->udp, a, alen - 3, 0, (struct sockaddr *)&from,
			fl);
		return;
	}
	/* Forged SERVFAILs, with a wrong ID, then with a wrong question
	 * type; then the real answer. */
	memcpy(x, a, alen);
	x[1] ^= 0x5a;
	x[3] = (unsigned char)((x[3] & 0xf0) | 2);
	(void)sendto(f->udp, x, alen, 0, (struct sockaddr *)&from, fl);
	x[1] ^= 0x5a;
	x[qe - 3] ^= 0x01;
	(void)sendto(f->udp, x, alen, 0, (struct sockaddr *)&from, fl);
	(void)sendto(f->udp, a, alen, 0, (struct sockaddr *)&from, fl);
}

static int
fake_full(int fd, unsigned char *buf, size_t len, int wr)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = wr ? send(fd, buf + got, len - got, MSG_NOSIGNAL)
			: recv(fd, buf + got, len - got, 0);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void
fake_tcp(struct fake *f)
{
	unsigned char q[2 + 512], a[2 + 4096];
	struct timeval tv = { 3, 0 };
	size_t qlen, alen;
	int c = accept(f->tcp, NULL, NULL);

	if (c < 0)
		return;
	__atomic_add_fetch(&f->tcp_queries, 1, __ATOMIC_SEQ_CST);
	(void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fake_full(c, q, 2, 0) == 0
		&& (qlen = (size_t)(q[0] << 8 | q[1])) <= 512
		&& fake_full(c, q + 2, qlen, 0) == 0
		&& (alen = fake_relay(q + 2, qlen, a + 2, sizeof(a) - 2)) > 0) {
		a[0] = (unsigned char)(alen >> 8);
		a[1] = (unsigned char)alen;
		/* In two pieces: the reader must reassemble. */
		(void)fake_full(c, a, 3, 1);
		usleep(20 * 1000);
		(void)fake_full(c, a + 3, alen - 1, 1);
	}
	close(c);
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[2];

	p[0].fd = f->udp;
	p[1].fd = f->tcp;
	p[0].events = p[1].events = POLLIN;
	while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
		if (poll(p, 2, 100) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			fake_udp(f);
		if (p[1].revents & POLLIN)
			fake_tcp(f);
	}
	return NULL;
}

static void
fake_start(struct fake *f, enum fake_mode mode)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int one = 1;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->tcp = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(f->tcp >= 0);
	(void)setsockopt(f->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(f->tcp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(f->tcp, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(listen(f->tcp, 8), 0);
	f->port = ntohs(sa.sin_port);
	f->udp = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(f->udp >= 0);
	assert_int_equal(bind(f->udp, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	__atomic_store_n(&f->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(f->th, NULL);
	close(f->udp);
	close(f->tcp);
}

static struct dance_resolver *
mk_fake(const struct fake *f, char *fwd, size_t len)
{
	struct dance_resolver_cfg c;
	static const char *fw[2];

	snprintf(fwd, len, "127.0.0.1@%d", f->port);
	fw[0] = fwd;
	fw[1] = NULL;
	dance_resolver_cfg_init(&c);
	c.trust_ad = 1;
	c.forwarders = fw;
	return mk(&c);
}

static void
test_ad_tcp_fallback(void **state)
{
	struct dance_resolver *r, *lu;
	struct dance_answer *a, *b;
	struct fake f;
	char fwd[64];

	(void)state;
	fake_start(&f, FAKE_TC);
	r = mk_fake(&f, fwd, sizeof(fwd));
	a = ev_lookup(r, "rollover.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	lu = mk_mode(DANCE_RESOLVER_EVENT);
	b = ev_lookup(lu, "rollover.clients.test", 3000);
	same_rrset(a, b);
	same_rrset(b, a);
	dance_answer_unref(a);
	dance_answer_unref(b);
	dance_resolver_free(lu);
	a = ev_lookup(r, "bogus.clients.test", 3000);
	expect_status(a, DANCE_DNS_SERVFAIL);
	dance_answer_unref(a);
	assert_int_equal(__atomic_load_n(&f.udp_queries, __ATOMIC_SEQ_CST), 2);
	assert_int_equal(__atomic_load_n(&f.tcp_queries, __ATOMIC_SEQ_CST), 2);
	dance_resolver_free(r);
	fake_stop(&f);
}

static void
test_ad_forged_and_mangled(void **state)
{
	struct dance_resolver *r;
	struct dance_answer *a;
	struct fake f;
	char fwd[64];

	(void)state;
	/* Answers with a wrong ID or question are not ours: ignored. */
	fake_start(&f, FAKE_FORGED_FIRST);
	r = mk_fake(&f, fwd, sizeof(fwd));
	a = ev_lookup(r, "ee311.clients.test", 3000);
	expect_status(a, DANCE_DNS_SECURE);
	expect_rr(&a->rr[0], 3, 1, 1, "ee311");
	dance_answer_unref(a);
	dance_resolver_free(r);
	fake_stop(&f);
	/* Ours but cut short: an error, never secure, not cached. */
	fake_start(&f, FAKE_MANGLED);
	r = mk_fake(&f, fwd, sizeof(fwd));
	a = ev_lookup(r, "ee311.clients.test", 3000);
	expect_status(a, DANCE_DNS_ERROR);
	assert_non_null(strstr(a->why, "malformed"));
	print_message("mangled: %s\n", a->why);
	dance_answer_unref(a);
	assert_null(dance_resolver_cached(r, "ee311.clients.test"));
	dance_resolver_free(r);
	fake_stop(&f);
}

/* The world's proxy fronts an authoritative server, which never sets
 * AD: nothing it says can be secure. */
static void
test_ad_authoritative_insecure(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_answer *a;
	char fwd[64];
	const char *fwds[2] = { fwd, NULL };

	(void)state;
	if (w_proxy_port <= 0)
		fail_msg("WORLD_PROXY_PORT missing from the world env");
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", w_proxy_port);
	dance_resolver_cfg_init(&c);
	c.trust_ad = 1;
	c.forwarders = fwds;
	r = mk(&c);
	a = ev_lookup(r, "ee311.clients.test", 3000);
	expect_status(a, DANCE_DNS_INSECURE);
	assert_int_equal(a->n, 0);
	assert_non_null(strstr(a->why, "did not set AD"));
	dance_answer_unref(a);
	dance_resolver_free(r);
}

static void
test_ad_config(void **state)
{
	struct dance_resolver_cfg c;
	struct dance_resolver *r;
	struct dance_error e;
	const char *fwd[3] = { NULL, NULL, NULL };

	(void)state;
	dance_resolver_cfg_init(&c);
	c.trust_ad = 1;
	expect_config_error(&c, "needs forwarders");
	c.forwarders = fwd;
	expect_config_error(&c, "needs forwarders");
	fwd[0] = "127.0.0.1#dns.example";
	expect_config_error(&c, "DNS-over-TLS");
	fwd[0] = "resolver.example";
	expect_config_error(&c, "resolver.example");
	fwd[0] = "127.0.0.1@0";
	expect_config_error(&c, "bad port");
	fwd[0] = "127.0.0.1@65536";
	expect_config_error(&c, "bad port");
	fwd[0] = "127.0.0.1@53x";
	expect_config_error(&c, "bad port");
	fwd[0] = "";
	expect_config_error(&c, "forwarder");
	fwd[0] = "127.0.0.1";
	c.forward_tls = 1;
	expect_config_error(&c, "forward_tls");
	c.forward_tls = 0;
	c.unbound_conf = w_conf;
	expect_config_error(&c, "unbound_conf");
	c.unbound_conf = NULL;
	/* Accepted: IPv4 and IPv6, with and without a port. */
	fwd[0] = "::1@5353";
	fwd[1] = "127.0.0.1";
	r = dance_resolver_new(&c, &e);
	if (r == NULL)
		print_error("%s\n", e.reason);
	assert_non_null(r);
	assert_true(dance_resolver_fd(r) >= 0);
	assert_int_equal(dance_resolver_next_timeout(r), -1);
	dance_resolver_free(r);
	/* Anchors given: trust_ad is ignored, validation is local (the
	 * authoritative proxy as forwarder still gives SECURE, where it
	 * gave INSECURE above for lack of AD; the world's stub zones
	 * would take precedence, so they are left out). */
	if (w_proxy_port > 0) {
		char f[64];
		const char *fw[2] = { f, NULL };
		struct dance_answer *a;

		snprintf(f, sizeof(f), "127.0.0.1@%d", w_proxy_port);
		world_cfg(&c, DANCE_RESOLVER_EVENT);
		c.trust_ad = 1;
		c.forwarders = fw;
		r = mk(&c);
		a = ev_lookup(r, "ee311.clients.test", 3000);
		expect_status(a, DANCE_DNS_SECURE);
		dance_answer_unref(a);
		dance_resolver_free(r);
	}
}

/* Scenarios every variant runs: once per group, each with its own
 * configuration (struct variant) as the cmocka state. */
static const struct CMUnitTest shared_tests[] = {
	cmocka_unit_test(test_secure_ee311),
	cmocka_unit_test(test_secure_ee312),
	cmocka_unit_test(test_secure_rollover),
	cmocka_unit_test(test_secure_wildcard),
	cmocka_unit_test(test_nodata),
	cmocka_unit_test(test_nxdomain),
	cmocka_unit_test(test_insecure),
	cmocka_unit_test(test_bogus),
	cmocka_unit_test(test_servfail),
	cmocka_unit_test(test_timeout),
	cmocka_unit_test(test_coalesce_and_cache),
	cmocka_unit_test(test_negative_cache),
	cmocka_unit_test(test_no_cache),
	cmocka_unit_test(test_cancel),
	cmocka_unit_test(test_cancel_from_callback),
	cmocka_unit_test(test_lookup_from_callback),
	cmocka_unit_test(test_free_pending),
	cmocka_unit_test(test_event_resolve_wait),
	cmocka_unit_test(test_threaded_outcomes),
	cmocka_unit_test(test_threaded_coalesce),
	cmocka_unit_test(test_threaded_cancel),
	cmocka_unit_test(test_serialize),
	cmocka_unit_test(test_cache_tier),
	cmocka_unit_test(test_bad_names),
};

#define N_SHARED (sizeof(shared_tests) / sizeof(shared_tests[0]))

/* libunbound only: its options, cache and configuration. */
static const struct CMUnitTest lu_tests[] = {
	cmocka_unit_test(test_overload),
	cmocka_unit_test(test_slow_does_not_starve),
	cmocka_unit_test(test_ttl_expiry),
	cmocka_unit_test(test_cache_put_lru),
	cmocka_unit_test(test_cfg_digest),
	cmocka_unit_test(test_forwarder),
	cmocka_unit_test(test_config_errors),
};

/* trust_ad only: forwarder failures, fake forwarders, configuration. */
static const struct CMUnitTest ad_tests[] = {
	cmocka_unit_test_setup_teardown(test_ad_failover, ub_start, ub_stop),
	cmocka_unit_test_setup_teardown(test_ad_tcp_fallback, ub_start,
		ub_stop),
	cmocka_unit_test_setup_teardown(test_ad_forged_and_mangled,
		ub_start, ub_stop),
	cmocka_unit_test(test_ad_authoritative_insecure),
	cmocka_unit_test(test_ad_config),
};

/* The shared scenarios for variant v (with the given per-test fixtures),
 * then the group's own n tests. */
static int
run_group(const char *name, struct variant *v, CMFixtureFunction setup,
	CMFixtureFunction teardown, const struct CMUnitTest *own, size_t n)
{
	struct CMUnitTest t[N_SHARED + n];
	size_t i;

	for (i = 0; i < N_SHARED; i++) {
		t[i] = shared_tests[i];
		t[i].setup_func = setup;
		t[i].teardown_func = teardown;
		t[i].initial_state = v;
	}
	for (size_t j = 0; j < n; j++)
		t[i + j] = own[j];
	return _cmocka_run_group_tests(name, t, N_SHARED + n, group_setup,
		NULL);
}

int
main(void)
{
	struct variant lu = {
		.cfg = world_cfg,
		.bogus = DANCE_DNS_BOGUS,
		.bogus_why = "validation failed",
		.bogus_why_more = "DNSSEC validation failed: ",
		.insecure_why = NULL,
		.early_ms = 100, .late_ms = 1000,
		.threaded_timeout_ms = 500,
	};
	/* The daemon answers bogus data with SERVFAIL; it works through
	 * the world more slowly, hence the longer threaded timeout. */
	struct variant ad = {
		.cfg = ad_cfg,
		.bogus = DANCE_DNS_SERVFAIL,
		.bogus_why = "upstream SERVFAIL",
		.bogus_why_more = NULL,
		.insecure_why = "did not set AD",
		.early_ms = 50, .late_ms = 500,
		.threaded_timeout_ms = 1500,
	};
	int fails;

	fails = run_group("resolver", &lu, NULL, NULL, lu_tests,
		sizeof(lu_tests) / sizeof(lu_tests[0]));
	/* trust_ad mode: a fresh validating unbound daemon as the
	 * forwarder for every test. */
	fails += run_group("resolver_trust_ad", &ad, ub_start, ub_stop,
		ad_tests, sizeof(ad_tests) / sizeof(ad_tests[0]));
	return fails;
}
