/*
 * loadgen.c -- closed-loop HTTPS load with client certificates and
 * latency percentiles, for bench/run.sh.
 *
 *   loadgen --cert F --key F [--name NAME] [-t THREADS] [-s SECONDS]
 *           [--path P] HOST:PORT
 *
 * Every thread repeats, for SECONDS: connect, full TLS 1.3 handshake
 * (no resumption; with --name the dane_clientid extension carries
 * NAME), "GET P HTTP/1.0", read to the end.  One operation is one
 * connection; its latency runs from connect() to the end of the
 * response.  Prints one line:
 *   "ops N ok M seconds S rate R p50_us A p90_us B p99_us C max_us D"
 * (rate counts successful operations, 2xx, per second).
 */
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
#include <openssl/ssl.h>

#include "dance.h"

#define MAX_SAMPLES 2000000

struct load {
	SSL_CTX *ctx;
	struct addrinfo *ai;
	const char *path;
	double seconds;
	struct timespec t0;
	pthread_mutex_t mu;
	long *lat;		/* microseconds of successful operations */
	long nlat, ops, ok;
};

static long
us_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000 +
		(t.tv_nsec - t0->tv_nsec) / 1000;
}

/* One connection; HTTP status, 0 on failure. */
static int
one(struct load *l)
{
	char buf[4096];
	struct timeval tmo = { 30, 0 };
	int fd, n, len = 0, status = 0, on = 1;
	SSL *ssl;

	if ((fd = socket(l->ai->ai_family, SOCK_STREAM, 0)) < 0)
		return 0;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	if (connect(fd, l->ai->ai_addr, l->ai->ai_addrlen) != 0) {
		close(fd);
		return 0;
	}
	ssl = SSL_new(l->ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1) {
		n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\n"
			"Host: bench.test\r\n\r\n", l->path);
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
	struct load *l = arg;
	long *mine = malloc(sizeof(long) * 200000);
	long n = 0, ops = 0, ok = 0, t, i;
	struct timespec s;
	int st;

	while (us_since(&l->t0) < (long)(l->seconds * 1e6)) {
		clock_gettime(CLOCK_MONOTONIC, &s);
		st = one(l);
		t = us_since(&s);
		ops++;
		if (st >= 200 && st < 300) {
			ok++;
			if (mine != NULL && n < 200000)
				mine[n++] = t;
		}
	}
	pthread_mutex_lock(&l->mu);
	for (i = 0; i < n && l->nlat < MAX_SAMPLES; i++)
		l->lat[l->nlat++] = mine[i];
	l->ops += ops;
	l->ok += ok;
	pthread_mutex_unlock(&l->mu);
	free(mine);
	return NULL;
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long
pct(const struct load *l, double p)
{
	long i;

	if (l->nlat == 0)
		return 0;
	i = (long)(p * (double)(l->nlat - 1) + 0.5);
	return l->lat[i];
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen --cert F --key F [--name NAME] "
		"[-t THREADS] [-s SECONDS] [--path P] HOST:PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct load l;
	struct addrinfo hints;
	struct dance_error e;
	const char *cert = NULL, *key = NULL, *name = NULL, *hp = NULL;
	char host[256], *port;
	pthread_t *th;
	int i, threads = 4;
	double s;

	memset(&l, 0, sizeof(l));
	l.path = "/";
	l.seconds = 5;
	pthread_mutex_init(&l.mu, NULL);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
			l.path = argv[++i];
		else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			l.seconds = atof(argv[++i]);
		else if (argv[i][0] != '-' && hp == NULL)
			hp = argv[i];
		else
			usage();
	}
	if (hp == NULL || cert == NULL || key == NULL || threads < 1 ||
	    threads > 256 || strlen(hp) >= sizeof(host) || l.seconds <= 0 ||
	    l.seconds > 120)
		usage();
	strcpy(host, hp);
	if ((port = strrchr(host, ':')) == NULL)
		usage();
	*port++ = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &l.ai) != 0) {
		fprintf(stderr, "loadgen: cannot resolve %s\n", hp);
		return 2;
	}
	if ((l.ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return 2;
	SSL_CTX_set_min_proto_version(l.ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(l.ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(l.ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_use_certificate_chain_file(l.ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(l.ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "loadgen: cannot load %s / %s\n", cert, key);
		return 2;
	}
	if (name != NULL &&
	    dance_tls_client_attach(l.ctx, 0, name, &e) != DANCE_OK) {
		fprintf(stderr, "loadgen: %s\n", e.reason);
		return 2;
	}
	if ((l.lat = malloc(sizeof(long) * MAX_SAMPLES)) == NULL ||
	    (th = calloc((size_t)threads, sizeof(*th))) == NULL)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &l.t0);
	for (i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, run, &l) != 0)
			return 2;
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	s = us_since(&l.t0) / 1e6;
	qsort(l.lat, (size_t)l.nlat, sizeof(long), cmp_long);
	printf("ops %ld ok %ld seconds %.2f rate %.1f p50_us %ld p90_us %ld "
		"p99_us %ld max_us %ld\n", l.ops, l.ok, s, l.ok / s,
		pct(&l, 0.5), pct(&l, 0.9), pct(&l, 0.99),
		l.nlat ? l.lat[l.nlat - 1] : 0);
	SSL_CTX_free(l.ctx);
	freeaddrinfo(l.ai);
	free(l.lat);
	free(th);
	return l.ok > 0 ? 0 : 1;
}
