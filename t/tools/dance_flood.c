/*
 * dance_flood.c -- many concurrent DANCE client connections, for the
 * nginx module's load tests and benchmark.
 *
 *   dance_flood --cert F --key F [--chain F] [--name NAME] [--no-ext]
 *               [-n CONNS] [--path P] [--loop SECONDS] [--us] HOST:PORT
 *
 * NAME may contain one "%d" (replaced by the connection number, so that
 * every connection asks for its own TLSA name).  Each connection runs in
 * its own thread: TLS 1.3 handshake, "GET P HTTP/1.0", read to the end.
 *
 * One-shot mode prints, unbuffered,
 *   "handshake I MS"          when connection I finished its handshake,
 *   "done I STATUS MS"        STATUS: HTTP status, or "refused" (alert),
 * with MS counted from the start (microseconds with --us).
 *
 * With --loop it is the suite's load generator (tests and bench/): each
 * of the CONNS threads repeats, for SECONDS, connect + full TLS 1.3
 * handshake (no resumption) + GET + read to the end, and the tool prints
 *   "handshakes N ok M seconds S rate R p50_us A p90_us B p99_us C max_us D"
 * where M counts 2xx answers, R = M / S, and the percentiles are the
 * latencies of those M connections, from connect() to the end of the
 * response.  Exit status 1 when none succeeded.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "dance.h"

struct flood {
	SSL_CTX *ctx;		/* without a name (--no-ext, or %d names) */
	const char *name_fmt;
	const char *cert, *key, *chain;
	int noext;
	const char *path;
	struct addrinfo *ai;
	double loop;		/* seconds, 0: one shot */
	int us;			/* report microseconds */
	struct timespec t0;
	pthread_mutex_t mu;
	unsigned long total, ok;
	long *lat;		/* --loop: microseconds of 2xx connections */
	size_t nlat;
};

#define MAX_SAMPLES	2000000
#define THREAD_SAMPLES	200000

struct job {
	struct flood *f;
	int i;
	SSL_CTX *ctx;
};

static long
us_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000 +
		(t.tv_nsec - t0->tv_nsec) / 1000;
}

static long
ms_since(const struct timespec *t0)
{
	return us_since(t0) / 1000;
}

/* Time stamp for the report lines. */
static long
stamp(const struct flood *f)
{
	return f->us ? us_since(&f->t0) : ms_since(&f->t0);
}

/* Extra chain certificates; a copy of the leaf is skipped. */
static int
add_chain(SSL_CTX *ctx, const char *file)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx), *x;
	FILE *fp;
	int n = 0;

	if ((fp = fopen(file, "r")) == NULL)
		return -1;
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		n++;
		if (leaf != NULL && X509_cmp(x, leaf) == 0) {
			X509_free(x);
			continue;
		}
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			fclose(fp);
			return -1;
		}
	}
	ERR_clear_error();
	fclose(fp);
	return n > 0 ? 0 : -1;
}

static SSL_CTX *
make_ctx(struct flood *f, const char *name)
{
	struct dance_error e;
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* the certificate file may hold the chain after the leaf */
	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1 ||
	    (f->chain != NULL && add_chain(ctx, f->chain) != 0)) {
		fprintf(stderr, "dance_flood: cannot load %s / %s%s%s\n",
			f->cert, f->key, f->chain ? " / " : "",
			f->chain ? f->chain : "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!f->noext && name != NULL &&
	    dance_tls_client_attach(ctx, 0, name, &e) != DANCE_OK) {
		fprintf(stderr, "dance_flood: %s\n", e.reason);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* One connection; returns the HTTP status, 0 when refused. */
static int
one(struct job *j, int report)
{
	struct flood *f = j->f;
	char buf[4096];
	struct timeval tmo = { 30, 0 };
	int fd, n, len = 0, status = 0, on = 1;
	SSL *ssl;

	if ((fd = socket(f->ai->ai_family, SOCK_STREAM, 0)) < 0)
		return 0;
	/* the request follows the client's last flight: no Nagle wait */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/* a silent server fails the connection, never hangs the tool */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	if (connect(fd, f->ai->ai_addr, f->ai->ai_addrlen) != 0) {
		close(fd);
		return 0;
	}
	ssl = SSL_new(j->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1) {
		if (report)
			printf("handshake %d %ld\n", j->i, stamp(f));
		n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\n"
			"Host: dance.test\r\n\r\n", f->path);
		if (SSL_write(ssl, buf, n) == n) {
			while ((n = SSL_read(ssl, buf + len,
			    (int)sizeof(buf) - 1 - len)) > 0)
				len += n;
			buf[len] = '\0';
			if (len > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
				status = atoi(buf + 9);
		}
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
	return status;
}

static void *
run(void *arg)
{
	struct job *j = arg;
	struct flood *f = j->f;
	unsigned long total = 0, ok = 0;
	long *mine, t;
	size_t n = 0, i;
	struct timespec s;
	int st;

	if (f->loop <= 0) {
		st = one(j, 1);
		if (st > 0)
			printf("done %d %d %ld\n", j->i, st, stamp(f));
		else
			printf("done %d refused %ld\n", j->i, stamp(f));
		return NULL;
	}
	mine = malloc(sizeof(*mine) * THREAD_SAMPLES);
	while (ms_since(&f->t0) < (long)(f->loop * 1000)) {
		clock_gettime(CLOCK_MONOTONIC, &s);
		st = one(j, 0);
		t = us_since(&s);
		total++;
		if (st >= 200 && st < 300) {
			ok++;
			if (mine != NULL && n < THREAD_SAMPLES)
				mine[n++] = t;
		}
	}
	pthread_mutex_lock(&f->mu);
	f->total += total;
	f->ok += ok;
	for (i = 0; i < n && f->lat != NULL && f->nlat < MAX_SAMPLES; i++)
		f->lat[f->nlat++] = mine[i];
	pthread_mutex_unlock(&f->mu);
	free(mine);
	return NULL;
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Percentile P (0..1) of the sorted latencies. */
static long
pct(const struct flood *f, double p)
{
	if (f->nlat == 0)
		return 0;
	return f->lat[(size_t)(p * (double)(f->nlat - 1) + 0.5)];
}

static void
usage(void)
{
	fprintf(stderr, "usage: dance_flood --cert F --key F [--chain F] "
		"[--name NAME] [--no-ext] [-n CONNS] [--path P] "
		"[--loop SECONDS] [--us] HOST:PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct flood f;
	struct addrinfo hints;
	struct job *jobs;
	pthread_t *th;
	char host[256], name[DANCE_NAME_MAX + 1], *port;
	const char *hp = NULL;
	int i, n = 1, per_conn;

	memset(&f, 0, sizeof(f));
	f.path = "/";
	pthread_mutex_init(&f.mu, NULL);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			f.cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			f.key = argv[++i];
		else if (strcmp(argv[i], "--chain") == 0 && i + 1 < argc)
			f.chain = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			f.name_fmt = argv[++i];
		else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
			f.path = argv[++i];
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc)
			f.loop = atof(argv[++i]);
		else if (strcmp(argv[i], "--no-ext") == 0)
			f.noext = 1;
		else if (strcmp(argv[i], "--us") == 0)
			f.us = 1;
		else if (argv[i][0] != '-' && hp == NULL)
			hp = argv[i];
		else
			usage();
	}
	if (hp == NULL || f.cert == NULL || f.key == NULL || n < 1 ||
	    strlen(hp) >= sizeof(host) || f.loop < 0 || f.loop > 600)
		usage();
	if (f.loop > 0 &&
	    (f.lat = malloc(sizeof(*f.lat) * MAX_SAMPLES)) == NULL)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);

	strcpy(host, hp);
	if ((port = strrchr(host, ':')) == NULL)
		usage();
	*port++ = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &f.ai) != 0) {
		fprintf(stderr, "dance_flood: cannot resolve %s\n", hp);
		return 2;
	}

	per_conn = f.name_fmt != NULL && strstr(f.name_fmt, "%d") != NULL;
	if (!per_conn && (f.ctx = make_ctx(&f, f.name_fmt)) == NULL)
		return 2;
	jobs = calloc((size_t)n, sizeof(*jobs));
	th = calloc((size_t)n, sizeof(*th));
	if (jobs == NULL || th == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		jobs[i].f = &f;
		jobs[i].i = i;
		if (per_conn) {
			snprintf(name, sizeof(name), f.name_fmt, i);
			if ((jobs[i].ctx = make_ctx(&f, name)) == NULL)
				return 2;
		} else {
			jobs[i].ctx = f.ctx;
		}
	}

	clock_gettime(CLOCK_MONOTONIC, &f.t0);
	for (i = 0; i < n; i++) {
		if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) {
			fprintf(stderr, "dance_flood: pthread_create: %s\n",
				strerror(errno));
			return 2;
		}
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);

	if (f.loop > 0) {
		double s = us_since(&f.t0) / 1e6;

		qsort(f.lat, f.nlat, sizeof(*f.lat), cmp_long);
		printf("handshakes %lu ok %lu seconds %.2f rate %.1f "
			"p50_us %ld p90_us %ld p99_us %ld max_us %ld\n",
			f.total, f.ok, s, f.ok / s, pct(&f, 0.5), pct(&f, 0.9),
			pct(&f, 0.99), f.nlat ? f.lat[f.nlat - 1] : 0);
	}
	for (i = 0; i < n; i++)
		if (jobs[i].ctx != f.ctx)
			SSL_CTX_free(jobs[i].ctx);
	SSL_CTX_free(f.ctx);
	freeaddrinfo(f.ai);
	free(jobs);
	free(th);
	free(f.lat);
	return f.loop > 0 && f.ok == 0 ? 1 : 0;
}
