/*
 * core_bench.c -- CPU cost of one DANCE decision on a cache hit against
 * one X509 chain verification with a CA store, and resolver memory per
 * pending lookup.  Built and run by bench/run.sh.
 *
 *   core_bench -n ITERS [-op NAME] CERTDIR TA_FILE
 *       time each operation ITERS times; prints per operation
 *       "op NAME iters N wall_us X cpu_us Y"
 *   core_bench -mem N CERTDIR TA_FILE UNBOUND_CONF
 *       start N lookups on a never-answering authoritative, print
 *       "mem lookups N pending P answered A rss_kib_before B after C
 *       per_lookup_bytes D healthy STATUS ms M": memory per pending lookup,
 *       then how long a healthy uncached name takes while they hang
 *   core_bench -mem-ad N FORWARDER
 *       the same memory figure for the trust_ad transport, forwarding to
 *       a server that never answers: "memad lookups N pending P
 *       rss_kib_before B after C per_lookup_bytes D"
 *
 * The timed loop of each operation is the function bench_loop(), so
 * that "valgrind --tool=callgrind --collect-atstart=no
 * --toggle-collect=bench_loop" counts only the operations themselves.
 *
 * Operations (all with ECDSA P-256 certificates of the test world):
 *   dane_ee_match   dance_match(): DANE-EE 3 1 1 on ee311.crt
 *   dane_ta_match   dance_match(): DANE-TA 2 0 1 on sensor7 + devca
 *   decision_ee     the whole post-handshake cache-hit path: name check,
 *                   allow-list, cache peek, dance_match, unref
 *   arm_ee          the in-handshake path: name check, allow-list, cache
 *                   peek, dance_ssl_arm on a server SSL, then OpenSSL's
 *                   X509_verify_cert with that SSL's DANE state (what the
 *                   handshake itself runs); SSL_new/SSL_free excluded
 *   ssl_new_free    SSL_new + SSL_free on a DANE-enabled SSL_CTX (the
 *                   part of arm_ee nginx pays for every connection anyway)
 *   pkix_ca         X509_verify_cert of sensor7.crt against a store
 *                   holding devca.crt, purpose ssl_client (what
 *                   "ssl_verify_client on" runs per handshake)
 *   hs_ee           a whole TLS 1.3 handshake in memory (client and
 *                   server in this process) with dane_clientid, the
 *                   cached DANE-EE answer armed in the handshake, then
 *                   dance_conn_decide(): the cache-hit decision as a
 *                   host makes it, without metrics
 *   hs_ee_metrics   the same with dance_tls_server_set_metrics() (the
 *                   metric set of nginx, dance-server ...), for the
 *                   side-by-side ratio of bench/run.sh section metrics
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dance.h"

struct bench {
	X509 *ee311, *sensor7, *devca;
	STACK_OF(X509) *chain7;		/* devca, as sent by sensor7 */
	struct dance_answer *a_ee, *a_ta;
	struct dance_matcher *m;
	struct dance_policy *pol;
	struct dance_resolver *r;
	SSL_CTX *dane_ctx;
	X509_STORE *ca_store;
};

typedef int (*op_fn)(struct bench *b);

/* DIR/NAME opened for reading, or exit. */
static FILE *
open_in(const char *dir, const char *name)
{
	char path[1024];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "r")) == NULL) {
		perror(path);
		exit(2);
	}
	return fp;
}

static X509 *
load_cert(const char *dir, const char *name)
{
	FILE *fp = open_in(dir, name);
	X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);

	fclose(fp);
	if (x == NULL) {
		fprintf(stderr, "core_bench: cannot read %s/%s\n", dir, name);
		exit(2);
	}
	return x;
}

/* A secure answer with one record: selector 1 hashes the SPKI, 0 the
 * whole certificate; SHA2-256 either way. */
static struct dance_answer *
answer_for(const char *name, X509 *x, uint8_t usage, uint8_t selector)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct dance_tlsa t;
	unsigned char *der = NULL;
	int dlen;

	/* X509_pubkey_digest() hashes only the key bits, not the SPKI */
	if (selector == 1) {
		dlen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
		EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL);
		OPENSSL_free(der);
	} else {
		X509_digest(x, EVP_sha256(), md, &mdlen);
	}
	t.usage = usage;
	t.selector = selector;
	t.mtype = 1;
	t.len = mdlen;
	t.data = md;
	return dance_answer_new(DANCE_DNS_SECURE, name, &t, 1, 3600, NULL);
}

static int
op_dane_ee_match(struct bench *b)
{
	struct dance_match_result res;

	return dance_match(b->m, b->a_ee, b->ee311, NULL, &res) == DANCE_OK;
}

static int
op_dane_ta_match(struct bench *b)
{
	struct dance_match_result res;

	return dance_match(b->m, b->a_ta, b->sensor7, b->chain7, &res) ==
		DANCE_OK;
}

/* Name check, allow-list, cache peek: the front of every decision. */
static struct dance_answer *
front(struct bench *b, const char *wire)
{
	char name[DANCE_NAME_MAX + 1];
	struct dance_error e;

	if (dance_name_check(wire, strlen(wire), 0, name, &e) != DANCE_OK ||
	    dance_policy_check(b->pol, name, &e) != DANCE_OK)
		return NULL;
	return dance_resolver_cached(b->r, name);
}

static int
op_decision_ee(struct bench *b)
{
	struct dance_match_result res;
	struct dance_answer *a;
	int ok;

	if ((a = front(b, "EE311.clients.test")) == NULL)
		return 0;
	ok = dance_match(b->m, a, b->ee311, NULL, &res) == DANCE_OK;
	dance_answer_unref(a);
	return ok;
}

/* What OpenSSL's ssl_verify_cert_chain does on a server with DANE. */
static int
handshake_verify(SSL *ssl, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int ok;

	X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
		leaf, chain);
	X509_STORE_CTX_set_ex_data(xs,
		SSL_get_ex_data_X509_STORE_CTX_idx(), ssl);
	X509_STORE_CTX_set_default(xs, "ssl_client");
	X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(xs),
		SSL_get0_param(ssl));
	X509_STORE_CTX_set0_dane(xs, SSL_get0_dane(ssl));
	ok = X509_verify_cert(xs) == 1;
	X509_STORE_CTX_free(xs);
	return ok;
}

/* One pre-made SSL per iteration, so that SSL_new is not counted. */
static SSL **ssl_pool;
static long ssl_next;

static int
op_arm_ee(struct bench *b)
{
	struct dance_answer *a;
	struct dance_error e;
	SSL *ssl = ssl_pool[ssl_next++];
	int ok;

	if ((a = front(b, "EE311.clients.test")) == NULL)
		return 0;
	ok = dance_ssl_arm(ssl, a, &e) == DANCE_OK &&
		handshake_verify(ssl, b->ee311, NULL);
	dance_answer_unref(a);
	return ok;
}

static int
op_ssl_new_free(struct bench *b)
{
	SSL *ssl = SSL_new(b->dane_ctx);

	SSL_free(ssl);
	return ssl != NULL;
}

static int
op_pkix_ca(struct bench *b)
{
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int ok;

	X509_STORE_CTX_init(xs, b->ca_store, b->sensor7, NULL);
	X509_STORE_CTX_set_default(xs, "ssl_client");
	ok = X509_verify_cert(xs) == 1;
	X509_STORE_CTX_free(xs);
	return ok;
}

/* hs_ee, hs_ee_metrics: one server glue each, the same client. */
struct hs_side {
	struct dance_tls_server_cfg cfg;
	struct dance_tls_server *srv;
	SSL_CTX *sctx;
	struct dance_metrics *m;
};
static struct hs_side hs_plain, hs_metrics;
static SSL_CTX *hs_cctx;

static EVP_PKEY *
load_key(const char *dir, const char *name)
{
	FILE *fp = open_in(dir, name);
	EVP_PKEY *k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);

	fclose(fp);
	if (k == NULL) {
		fprintf(stderr, "core_bench: cannot read %s/%s\n", dir, name);
		exit(2);
	}
	return k;
}

static void
hs_side_init(struct bench *b, struct hs_side *h, const char *dir,
	int metrics)
{
	struct dance_error e;
	X509 *srv = load_cert(dir, "server.crt");
	EVP_PKEY *k = load_key(dir, "server.key");

	memset(h, 0, sizeof(*h));
	h->cfg.policy = b->pol;
	h->cfg.resolver = b->r;
	h->cfg.matcher = b->m;
	h->cfg.required = 1;
	h->cfg.refuse_no_ext = 1;
	h->sctx = SSL_CTX_new(TLS_server_method());
	if (h->sctx == NULL || SSL_CTX_use_certificate(h->sctx, srv) != 1 ||
	    SSL_CTX_use_PrivateKey(h->sctx, k) != 1 ||
	    (h->srv = dance_tls_server_new(&h->cfg, &e)) == NULL ||
	    dance_tls_server_attach(h->srv, h->sctx, 0, &e) != DANCE_OK) {
		fprintf(stderr, "core_bench: TLS server setup failed\n");
		exit(2);
	}
	if (metrics) {
		if ((h->m = dance_metrics_new()) == NULL)
			exit(2);
		dance_tls_server_set_metrics(h->srv, h->m);
	}
	X509_free(srv);
	EVP_PKEY_free(k);
}

static void
hs_init(struct bench *b, const char *dir)
{
	struct dance_error e;
	EVP_PKEY *k = load_key(dir, "ee311.key");

	hs_side_init(b, &hs_plain, dir, 0);
	hs_side_init(b, &hs_metrics, dir, 1);
	hs_cctx = SSL_CTX_new(TLS_client_method());
	if (hs_cctx == NULL ||
	    SSL_CTX_use_certificate(hs_cctx, b->ee311) != 1 ||
	    SSL_CTX_use_PrivateKey(hs_cctx, k) != 1 ||
	    dance_tls_client_attach(hs_cctx, 0, "ee311.clients.test", &e) !=
	    DANCE_OK) {
		fprintf(stderr, "core_bench: TLS client setup failed\n");
		exit(2);
	}
	SSL_CTX_set_verify(hs_cctx, SSL_VERIFY_NONE, NULL);
	EVP_PKEY_free(k);
}

/* One handshake over a BIO pair, then the decision. */
static int
hs_run(struct hs_side *h)
{
	SSL *c = SSL_new(hs_cctx), *s = SSL_new(h->sctx);
	BIO *bc, *bs;
	int i, cd = 0, sd = 0, ok;

	if (c == NULL || s == NULL || !BIO_new_bio_pair(&bc, 0, &bs, 0))
		return 0;
	SSL_set_bio(c, bc, bc);
	SSL_set_bio(s, bs, bs);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 10 && !(cd && sd); i++) {
		if (!cd)
			cd = SSL_do_handshake(c) == 1;
		if (!sd)
			sd = SSL_do_handshake(s) == 1;
	}
	ok = sd && dance_conn_decide(s, NULL) == DANCE_STATUS_SUCCESS;
	SSL_free(c);
	SSL_free(s);
	return ok;
}

static int
op_hs_ee(struct bench *b)
{
	return hs_run(&hs_plain);
}

static int
op_hs_ee_metrics(struct bench *b)
{
	return hs_run(&hs_metrics);
}

/* The only function callgrind collects in. */
__attribute__((noinline)) long
bench_loop(struct bench *b, op_fn fn, long n)
{
	long i, ok = 0;

	for (i = 0; i < n; i++)
		ok += fn(b);
	return ok;
}

static double
now(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void
run_op(struct bench *b, const char *name, op_fn fn, long n)
{
	double w0, c0, w1, c1;
	long ok, i;

	if (fn == op_arm_ee) {
		ssl_pool = calloc((size_t)n + 3, sizeof(*ssl_pool));
		for (i = 0; i < n + 3; i++)
			ssl_pool[i] = SSL_new(b->dane_ctx);
		ssl_next = 0;
	}
	/* warm-up, outside bench_loop: first-use costs (fetches, caches) */
	for (i = 0; i < 3; i++)
		(void)fn(b);
	w0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	ok = bench_loop(b, fn, n);
	c1 = now(CLOCK_PROCESS_CPUTIME_ID);
	w1 = now(CLOCK_MONOTONIC);
	if (fn == op_arm_ee) {
		for (i = 0; i < n + 3; i++)
			SSL_free(ssl_pool[i]);
		free(ssl_pool);
	}
	if (ok != n) {
		fprintf(stderr, "core_bench: %s failed %ld of %ld times\n",
			name, n - ok, n);
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	printf("op %s iters %ld wall_us %.3f cpu_us %.3f\n", name, n,
		(w1 - w0) * 1e6 / n, (c1 - c0) * 1e6 / n);
}

static void
setup(struct bench *b, const char *dir, const char *ta,
	const char *ub_conf, unsigned max_pending)
{
	struct dance_resolver_cfg cfg;
	struct dance_error e;
	const char *tas[2] = { ta, NULL };

	memset(b, 0, sizeof(*b));
	b->ee311 = load_cert(dir, "ee311.crt");
	b->sensor7 = load_cert(dir, "sensor7.crt");
	b->devca = load_cert(dir, "devca.crt");
	b->chain7 = sk_X509_new_null();
	sk_X509_push(b->chain7, b->devca);
	b->a_ee = answer_for("ee311.clients.test", b->ee311, 3, 1);
	b->a_ta = answer_for("sensor7._device.clients.test", b->devca, 2, 0);
	b->pol = dance_policy_new();
	if (b->a_ee == NULL || b->a_ta == NULL || b->pol == NULL ||
	    dance_policy_add(b->pol, ".clients.test", &e) != DANCE_OK ||
	    (b->m = dance_matcher_new(NULL, &e)) == NULL) {
		fprintf(stderr, "core_bench: setup failed\n");
		exit(2);
	}
	dance_resolver_cfg_init(&cfg);
	cfg.mode = DANCE_RESOLVER_EVENT;
	cfg.trust_anchor_files = tas;
	cfg.unbound_conf = ub_conf;
	cfg.timeout_ms = 8000;	/* -mem: lookups stay pending for the 3 s measured */
	if (max_pending)
		cfg.max_pending = max_pending;
	if ((b->r = dance_resolver_new(&cfg, &e)) == NULL) {
		fprintf(stderr, "core_bench: resolver: %s\n", e.reason);
		exit(2);
	}
	dance_resolver_cache_put(b->r, b->a_ee);
	b->dane_ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_dane_enable(b->dane_ctx);
	b->ca_store = X509_STORE_new();
	X509_STORE_add_cert(b->ca_store, b->devca);
}

static long
rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *fp = fopen("/proc/self/status", "r");

	while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (fp != NULL)
		fclose(fp);
	return v;
}

static void
count_cb(void *arg, struct dance_answer *a)
{
	(*(long *)arg)++;
}

/* Let libunbound's thread take the queries in and send them. */
static void
drive(struct dance_resolver *r, int ms)
{
	struct pollfd p = { dance_resolver_fd(r), POLLIN, 0 };
	double end = now(CLOCK_MONOTONIC) + ms / 1000.0;

	while (now(CLOCK_MONOTONIC) < end) {
		if (poll(&p, 1, 50) > 0)
			dance_resolver_process(r);
	}
}

/* Start n lookups under slow.clients.test (never answered) and give
 * the resolver 2 s to send them; VmRSS before and after, in KiB. */
static void
mem_park(struct dance_resolver *r, long n, long *got, long *before,
	long *after)
{
	char name[64];
	long i;
	int done;

	*before = rss_kib();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "m%ld.slow.clients.test", i);
		done = 0;
		dance_resolver_lookup(r, name, count_cb, got, &done);
	}
	drive(r, 2000);
	*after = rss_kib();
}

static int
mem_mode(struct bench *b, long n)
{
	struct dance_resolver_stats st;
	struct dance_answer *a;
	long got = 0, before, after;
	double t0, t1;
	int done = 0;

	/* Prime: trust chain down to clients.test, one slow lookup in
	 * flight (its DNSKEY fetch too), allocator warmed. */
	a = dance_resolve_wait(b->r, "ee312.clients.test");
	dance_answer_unref(a);
	dance_resolver_lookup(b->r, "prime.slow.clients.test", count_cb,
		&got, &done);
	drive(b->r, 1000);
	mem_park(b->r, n, &got, &before, &after);
	dance_resolver_stats(b->r, &st);
	/* a healthy, uncached name while the others hang */
	t0 = now(CLOCK_MONOTONIC);
	a = dance_resolve_wait(b->r, "ee301.clients.test");
	t1 = now(CLOCK_MONOTONIC);
	printf("mem lookups %ld pending %u answered %ld rss_kib_before %ld "
		"after %ld per_lookup_bytes %.0f healthy %s ms %.1f\n", n,
		st.pending, got, before, after, (after - before) * 1024.0 / n,
		dance_dns_status_str(dance_answer_status(a)), (t1 - t0) * 1000);
	dance_answer_unref(a);
	return 0;
}

/* trust_ad transport: one UDP socket and a small record per query. */
static int
mem_ad_mode(long n, const char *forwarder)
{
	struct dance_resolver_cfg cfg;
	struct dance_resolver_stats st;
	struct dance_resolver *r;
	struct dance_error e;
	const char *fwd[2] = { forwarder, NULL };
	long got = 0, before, after;
	int done = 0;

	dance_resolver_cfg_init(&cfg);
	cfg.mode = DANCE_RESOLVER_EVENT;
	cfg.trust_ad = 1;
	cfg.forwarders = fwd;
	cfg.timeout_ms = 8000;
	cfg.max_pending = (unsigned)n + 16;
	if ((r = dance_resolver_new(&cfg, &e)) == NULL) {
		fprintf(stderr, "core_bench: resolver: %s\n", e.reason);
		return 2;
	}
	dance_resolver_lookup(r, "prime.slow.clients.test", count_cb, &got,
		&done);
	drive(r, 1000);
	mem_park(r, n, &got, &before, &after);
	dance_resolver_stats(r, &st);
	printf("memad lookups %ld pending %u rss_kib_before %ld after %ld "
		"per_lookup_bytes %.0f\n", n, st.pending, before, after,
		(after - before) * 1024.0 / n);
	dance_resolver_free(r);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		op_fn fn;
	} ops[] = {
		{ "dane_ee_match", op_dane_ee_match },
		{ "dane_ta_match", op_dane_ta_match },
		{ "decision_ee", op_decision_ee },
		{ "arm_ee", op_arm_ee },
		{ "ssl_new_free", op_ssl_new_free },
		{ "pkix_ca", op_pkix_ca },
		{ "hs_ee", op_hs_ee },
		{ "hs_ee_metrics", op_hs_ee_metrics },
	};
	struct bench b;
	const char *only = NULL;
	long n = 2000, mem = 0, mem_ad = 0;
	size_t k;
	int i = 1;

	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "-n") == 0)
			n = atol(argv[i + 1]);
		else if (strcmp(argv[i], "-op") == 0)
			only = argv[i + 1];
		else if (strcmp(argv[i], "-mem") == 0)
			mem = atol(argv[i + 1]);
		else if (strcmp(argv[i], "-mem-ad") == 0)
			mem_ad = atol(argv[i + 1]);
		else
			break;
	}
	if (mem_ad > 0 && argc - i == 1)
		return mem_ad_mode(mem_ad, argv[i]);
	if (argc - i < 2 || (mem > 0 && argc - i < 3) || n < 1) {
		fprintf(stderr, "usage: core_bench [-n ITERS] [-op NAME] "
			"CERTDIR TA_FILE [UNBOUND_CONF]\n"
			"       core_bench -mem N CERTDIR TA_FILE UNBOUND_CONF\n"
			"       core_bench -mem-ad N FORWARDER\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup(&b, argv[i], argv[i + 1], argc - i > 2 ? argv[i + 2] : NULL,
		mem > 0 ? (unsigned)mem + 16 : 0);
	if (mem > 0)
		return mem_mode(&b, mem);
	hs_init(&b, argv[i]);
	for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		/* the handshakes only when asked (-op): section metrics */
		if (only == NULL && strncmp(ops[k].name, "hs_", 3) == 0)
			continue;
		if (only == NULL || strcmp(only, ops[k].name) == 0)
			run_op(&b, ops[k].name, ops[k].fn, n);
	}
	/* the metrics were counted: warm-up and timed decisions */
	if (only != NULL && strcmp(only, "hs_ee_metrics") == 0)
		printf("metrics verdicts_success %.0f cache_requests_hit %.0f\n",
			dance_metrics_get(hs_metrics.m, "dance_verdicts_total",
			"success"), dance_metrics_get(hs_metrics.m,
			"dance_cache_requests_total", "hit"));
	return 0;
}
