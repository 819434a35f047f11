/*
 * dance-server -- reference TLS server with DANCE client authentication.
 *
 * One thread, one poll() loop: non-blocking accept and handshakes, and
 * the resolver in event mode with its fd in the same poll set, so a
 * slow DNS answer for one client never holds up another.
 *
 * Per connection: the handshake asks for dane_clientid.  A cached TLSA
 * answer is checked inside the handshake (a mismatch is a
 * handshake_failure alert); on a cache miss the handshake completes,
 * the connection waits for the lookup and the verdict comes as an HTTP
 * status (403 in required mode).  The reply is a small HTTP/1.0
 * response whose body tells the outcome:
 *
 *   DANCE-Status: SUCCESS | FAILED:<reason> | NONE
 *   DANCE-Client-Id: <name or ->
 *   DANCE-Usage: <TLSA usage or ->
 *
 * The decision (name sources, allow-list, lookup, match, status text)
 * is libdance's dance_conn_decide(); this file only does the I/O.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
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
#include "tool_util.h"

#define PROG "dance-server"
#define MAX_CONNS_DEFAULT 1024
#define MAX_CONNS_LIMIT 100000
#define CONN_TIMEOUT_DEFAULT 10000	/* ms, handshake and idle */
#define LINGER_MS 2000	/* wait for the client's close after ours */
#define ACCEPT_PAUSE_MS 100	/* after a failed accept() */
#define ALLOW_MAX 1024

/*
 * The one global: set by the SIGINT/SIGTERM handler.  Signals are
 * blocked except inside ppoll(), so a signal cannot slip in between the
 * check and the wait.
 */
static volatile sig_atomic_t stop_signal;

struct srv_opts {
	const char *cert;
	const char *key;
	const char *listen;
	const char *allow[ALLOW_MAX];
	size_t n_allow;
	struct tool_resolver_opts ro;
	const char *ca_file;
	const char *stats_file;
	const char *metrics;		/* --metrics ADDR:PORT */
	int optional;
	int legacy_san;
	int once;
	unsigned long max_conns;
	unsigned long conn_timeout_ms;
};

enum conn_phase {
	PH_HANDSHAKE,	/* SSL_accept in progress */
	PH_WAIT,	/* handshake done, TLSA lookup in flight */
	PH_WRITE,	/* sending the response */
	PH_SHUTDOWN,	/* sending close_notify */
	PH_LINGER,	/* draining until the client closes */
	PH_DONE
};

struct server;

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	unsigned long id;	/* accept order, for the log */
	int fd;
	SSL *ssl;
	enum conn_phase phase;
	short want;		/* POLLIN / POLLOUT for the next SSL call */
	long long deadline;	/* monotonic ms */
	char peer[INET6_ADDRSTRLEN + 24];
	char addr[INET6_ADDRSTRLEN];	/* the peer without port */
	int answered;		/* a lookup callback has run */
	const char *via;	/* how the verdict was reached, for the log */
	/* Outcome, for the response and the log. */
	char name[DANCE_NAME_MAX + 1];
	const char *outcome;	/* SUCCESS FAILED NONE REFUSED ERROR */
	const char *status;	/* dance_conn_status_text() */
	int usage;
	int http_status;
	char reason[256];
	char out[1024];
	size_t out_len, out_off;
};

struct server {
	struct srv_opts *o;
	SSL_CTX *ctx;
	struct dance_policy *policy;
	struct dance_resolver *resolver;
	struct dance_matcher *matcher;
	struct dance_tls_server *tls;
	struct dance_tls_server_cfg tcfg;
	unsigned lookup_timeout_ms;	/* the resolver's, for deadlines */
	int lfd;
	long long accept_pause;	/* no accept() before (out of fds) */
	struct conn *conns;
	unsigned long n_conns;
	unsigned long accepted;
	struct pollfd *pfd;
	struct conn **pconn;	/* pfd index -> connection */
	int mfd;			/* --metrics listener, -1 */
	struct dance_metrics *metrics;
	struct dance_resolver_stats mlast;	/* synced so far */
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --cert FILE --key FILE --listen ADDR:PORT --allow ENTRY...\n"
"                    --ta FILE [options]\n"
"\n"
"Reference TLS server with DANE client authentication (DANCE).  Asks\n"
"every client for dane_clientid, checks the name against the allow-list,\n"
"looks up its DNSSEC-validated TLSA records and matches the client\n"
"certificate.  Replies with a small HTTP/1.0 response whose body is\n"
"  DANCE-Status: SUCCESS | FAILED:<reason> | NONE\n"
"  (reason: one word, e.g. nxdomain, nomatch, not-allowed, timeout;\n"
"  a refused peer (403) gets FAILED alone, the log line has the reason)\n"
"  DANCE-Client-Id: <name>\n"
"  DANCE-Usage: <TLSA usage>\n"
"and closes.  A cached TLSA answer is checked inside the handshake\n"
"(mismatch: handshake_failure alert); after a cache miss the verdict is\n"
"given after the handshake (403 Forbidden when refused).\n"
"\n"
"Server:\n"
"  --cert FILE        server certificate (PEM, may include its chain)\n"
"  --key FILE         its private key\n"
"  --listen ADDR:PORT address to listen on ([V6]:PORT for IPv6); port 0\n"
"                     picks a free port, printed as 'listening on ...'\n"
"  --allow ENTRY      allow-list entry, repeatable: name, .subtree,\n"
"                     *.below, ~regex (nothing is allowed without one)\n"
"  --optional         DANCE optional: unauthenticated and failed clients\n"
"                     get 200 and the status in the body (default:\n"
"                     required, failures are refused)\n"
"  --ca-file FILE     CA certificates for PKIX-TA(0)/PKIX-EE(1) records\n"
"  --legacy-san       clients without dane_clientid (e.g. TLS 1.2): take\n"
"                     the first allowed SAN dNSName of the certificate as\n"
"                     the name and authenticate it the same way\n"
"  --max-conns N      concurrent connections (default %d)\n"
"  --conn-timeout MS  handshake / idle timeout per connection (default %d)\n"
"  --once             exit after the first connection is finished\n"
"  --stats-file FILE  write resolver statistics there at exit\n"
"  --metrics ADDR:PORT  serve the metrics there in the Prometheus text\n"
"                     format (plain HTTP, any path; loopback or a\n"
"                     network you control: no access control)\n"
"  --help             this text\n"
"\n", MAX_CONNS_DEFAULT, CONN_TIMEOUT_DEFAULT);
	tool_resolver_usage(f);
	fprintf(f,
"\n"
"TLS 1.2 is accepted but carries no dane_clientid: such clients are not\n"
"DANCE-authenticated (status NONE) unless --legacy-san.  A TLS 1.3 client\n"
"with a certificate but no dane_clientid is refused in the handshake\n"
"(handshake_failure) when DANCE is required without --legacy-san, and\n"
"gets status NONE otherwise.  Session tickets\n"
"and the session cache are off, so every connection is authenticated by\n"
"a full handshake.\n"
"\n"
"One log line per connection goes to stderr:\n"
"  conn=N peer=ADDR:PORT name=NAME|- outcome=O usage=U|- via=V http=CODE\n"
"  reason=R  (N counts accepted connections; lines come in completion\n"
"  order), and for each DANCE decision the line every host writes:\n"
"  dance: client=ADDR name=NAME outcome=O usage=U|reason=R lookup_ms=MS\n"
"  cached=yes|no|-\n"
"  O: SUCCESS, FAILED (verdict after the handshake), NONE (no DANCE),\n"
"     REFUSED (DANCE aborted the handshake: handshake_failure alert),\n"
"     ERROR (other handshake or transport failure, timeout)\n"
"  V: handshake (cached TLSA checked by OpenSSL in the handshake), lookup\n"
"     (waited for DNS), cache (cached failure), legacy-san, no-ext\n"
"  http=0: no response was sent\n"
"SIGINT/SIGTERM: clean exit 0.  Exit 2 on configuration errors.\n");
}

/* Usage error: message and exit code. */
#define die_usage(fmt, arg) tool_usage_err(PROG, fmt, arg)

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static int
parse_args(int argc, char **argv, struct srv_opts *o)
{
	struct dance_error err;
	const char *v;
	unsigned long n;
	int i, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		r = 0;
		v = NULL;
#define OPT(name) ((r = tool_opt_value(argc, argv, &i, name, &v)) != 0)
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(TOOL_EXIT_OK);
		} else if (strcmp(a, "--optional") == 0) {
			o->optional = 1;
		} else if (strcmp(a, "--legacy-san") == 0) {
			o->legacy_san = 1;
		} else if (strcmp(a, "--once") == 0) {
			o->once = 1;
		} else if (OPT("--cert")) {
			o->cert = v;
		} else if (OPT("--key")) {
			o->key = v;
		} else if (OPT("--listen")) {
			o->listen = v;
		} else if (OPT("--ca-file")) {
			o->ca_file = v;
		} else if (OPT("--stats-file")) {
			o->stats_file = v;
		} else if (OPT("--metrics")) {
			o->metrics = v;
		} else if (OPT("--allow")) {
			if (r > 0 && o->n_allow >= ALLOW_MAX)
				return die_usage("more than %s --allow "
					"entries", "1024");
			if (r > 0)
				o->allow[o->n_allow++] = v;
		} else if (OPT("--max-conns")) {
			if (r > 0 && (tool_parse_uint(v, MAX_CONNS_LIMIT, &n)
			    != 0 || n == 0))
				return die_usage("--max-conns '%s': want "
					"1..100000", v);
			if (r > 0)
				o->max_conns = n;
		} else if (OPT("--conn-timeout")) {
			if (r > 0 && (tool_parse_uint(v, TOOL_TIMEOUT_MAX, &n)
			    != 0 || n == 0))
				return die_usage("--conn-timeout '%s': want "
					"milliseconds", v);
			if (r > 0)
				o->conn_timeout_ms = n;
		} else if ((r = tool_resolver_opt(&o->ro, argc, argv, &i,
		    &err)) != 0) {
			if (r < 0)
				return die_usage("%s", err.reason);
			r = 0;
		} else if (a[0] == '-') {
			return die_usage("unknown option %s", a);
		} else {
			return die_usage("unexpected argument %s", a);
		}
		if (r < 0)
			return die_usage("%s needs a value", a);
#undef OPT
	}
	if (o->cert == NULL || o->key == NULL)
		return die_usage("--cert and --key are required", NULL);
	if (o->listen == NULL)
		return die_usage("--listen ADDR:PORT is required", NULL);
	if (o->n_allow == 0)
		return die_usage("no --allow entry: nobody could "
			"authenticate", NULL);
	return -1;
}

/* Bound, listening, non-blocking socket for ADDR:PORT, or -1. */
static int
open_listener(const char *opt, const char *spec)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16], hb[INET6_ADDRSTRLEN], pb[16];
	int fd, one = 1, rc;

	if (tool_split_hostport(spec, host, sizeof(host), port,
	    sizeof(port)) != 0) {
		fprintf(stderr, PROG ": %s '%s': want ADDR:PORT\n", opt,
			spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, PROG ": %s %s: %s\n", opt, spec,
			gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
		SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0
	    || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		fprintf(stderr, PROG ": %s %s: %s\n", opt, spec,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	if (getnameinfo((struct sockaddr *)&ss, sl, hb, sizeof(hb), pb,
	    sizeof(pb), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		fprintf(stderr, PROG ": %s on %s%s%s:%s\n",
			strcmp(opt, "--listen") == 0 ? "listening" :
			"metrics", ss.ss_family == AF_INET6 ? "[" : "", hb,
			ss.ss_family == AF_INET6 ? "]" : "", pb);
	return fd;
}

static void on_answer(SSL *ssl, struct dance_conn *dc, void *arg);

/*
 * PKIX-TA/PKIX-EE records checked inside the handshake (cache hit) need
 * the CAs in the store OpenSSL verifies client chains with; the matcher
 * has its own copy for the post-handshake path.  A verify-only store
 * keeps the CAs out of the server's own chain building.
 */
static int
set_client_ca_store(SSL_CTX *ctx, const char *ca_file)
{
	X509_STORE *st = X509_STORE_new();
	char eb[160];

	if (st == NULL || X509_STORE_load_file(st, ca_file) != 1 ||
	    SSL_CTX_set1_verify_cert_store(ctx, st) != 1) {
		fprintf(stderr, PROG ": --ca-file %s: %s\n", ca_file,
			dance_ssl_err_text(eb, sizeof(eb)));
		X509_STORE_free(st);
		return -1;
	}
	/* The SSL_CTX holds its own reference now. */
	X509_STORE_free(st);
	return 0;
}

static int
setup_tls(struct server *s)
{
	struct dance_error err;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	char eb[160];
	int rc = -1;

	if ((s->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		fprintf(stderr, PROG ": SSL_CTX_new: %s\n",
			dance_ssl_err_text(eb, sizeof(eb)));
		return -1;
	}
	/* TLS 1.2 stays possible so that legacy clients can be shown as
	 * "not DANCE-authenticated" (or use --legacy-san). */
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	/* A resumed session has no client Certificate: it would bypass
	 * the DANE check, so every connection is a full handshake. */
	SSL_CTX_set_options(s->ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(s->ctx, 0);
	/* The verdict belongs to the first handshake; a TLS 1.2
	 * renegotiation could bring another certificate. */
	SSL_CTX_set_options(s->ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
	/* The server chain comes from --cert only; never build it from
	 * the client-CA store (costs a verify per handshake). */
	SSL_CTX_set_mode(s->ctx, SSL_MODE_NO_AUTO_CHAIN |
		SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (tool_load_cert_chain(s->o->cert, NULL, &leaf, &chain, &err) !=
	    DANCE_OK || tool_load_key(s->o->key, &key, &err) != DANCE_OK ||
	    tool_ctx_use_cert(s->ctx, leaf, chain, key, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		goto out;
	}
	if (s->o->ca_file != NULL && set_client_ca_store(s->ctx,
	    s->o->ca_file) != 0)
		goto out;
	memset(&s->tcfg, 0, sizeof(s->tcfg));
	s->tcfg.ext_type = s->o->ro.ext_type;
	s->tcfg.policy = s->policy;
	s->tcfg.resolver = s->resolver;
	s->tcfg.matcher = s->matcher;
	s->tcfg.required = !s->o->optional;
	/* Required and no name from the SAN: a TLS 1.3 client without
	 * dane_clientid is refused in the handshake (the draft's MUST). */
	s->tcfg.refuse_no_ext = s->tcfg.required && !s->o->legacy_san;
	/* --legacy-san: a client without dane_clientid is named by the
	 * first SAN dNSName the allow-list admits (libdance does it). */
	if (s->o->legacy_san && dance_name_sources_parse("extension,san",
	    &s->tcfg.sources, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		goto out;
	}
	s->tcfg.lookup_in_handshake = 1;
	s->tcfg.on_answer = on_answer;
	s->tcfg.on_answer_arg = s;
	if ((s->tls = dance_tls_server_new(&s->tcfg, &err)) == NULL ||
	    dance_tls_server_attach(s->tls, s->ctx, 0, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		goto out;
	}
	dance_tls_server_set_metrics(s->tls, s->metrics);
	rc = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

static int
setup(struct server *s)
{
	struct dance_resolver_cfg rcfg;
	struct dance_error err;
	size_t i;

	if ((s->policy = dance_policy_new()) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return -1;
	}
	for (i = 0; i < s->o->n_allow; i++) {
		if (dance_policy_add(s->policy, s->o->allow[i], &err) !=
		    DANCE_OK) {
			fprintf(stderr, PROG ": --allow '%s': %s\n",
				s->o->allow[i], err.reason);
			return -1;
		}
	}
	tool_resolver_cfg(&s->o->ro, DANCE_RESOLVER_EVENT, &rcfg);
	s->lookup_timeout_ms = rcfg.timeout_ms;
	if ((s->resolver = tool_resolver_new(&s->o->ro,
	    DANCE_RESOLVER_EVENT, &err)) == NULL) {
		fprintf(stderr, PROG ": resolver: %s\n", err.reason);
		return -1;
	}
	if ((s->matcher = dance_matcher_new(s->o->ca_file, &err)) == NULL) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		return -1;
	}
	if ((s->metrics = dance_metrics_new()) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return -1;
	}
	if (setup_tls(s) != 0)
		return -1;
	s->pfd = calloc(s->o->max_conns + 3, sizeof(*s->pfd));
	s->pconn = calloc(s->o->max_conns + 3, sizeof(*s->pconn));
	if (s->pfd == NULL || s->pconn == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return -1;
	}
	if ((s->lfd = open_listener("--listen", s->o->listen)) < 0)
		return -1;
	if (s->o->metrics != NULL &&
	    (s->mfd = open_listener("--metrics", s->o->metrics)) < 0)
		return -1;
	return 0;
}

static void
write_stats(struct server *s)
{
	struct dance_resolver_stats st;
	FILE *f;

	if (s->o->stats_file == NULL || s->resolver == NULL)
		return;
	dance_resolver_stats(s->resolver, &st);
	if ((f = fopen(s->o->stats_file, "w")) == NULL) {
		fprintf(stderr, PROG ": --stats-file %s: %s\n",
			s->o->stats_file, strerror(errno));
		return;
	}
	fprintf(f, "connections %lu\nlookups %lu\ncache_hits %lu\n"
		"queries %lu\ncoalesced %lu\ntimeouts %lu\noverload %lu\n"
		"pending %u\n", s->accepted, st.lookups, st.cache_hits,
		st.queries, st.coalesced, st.timeouts, st.overload,
		st.pending);
	if (fclose(f) != 0)
		fprintf(stderr, PROG ": --stats-file %s: %s\n",
			s->o->stats_file, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

/* Printable copy of a reason: it ends up in a response header line and
 * in the one-line log; a client must not be able to split either. */
static void
clean_copy(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
	dst[i] = '\0';
}

static void
conn_log(struct conn *c)
{
	char usage[16], reason[256];

	if (c->usage >= 0)
		(void)snprintf(usage, sizeof(usage), "%d", c->usage);
	else
		(void)snprintf(usage, sizeof(usage), "-");
	clean_copy(reason, sizeof(reason), c->reason);
	fprintf(stderr, PROG ": conn=%lu peer=%s name=%s outcome=%s usage=%s "
		"via=%s http=%d reason=%s\n", c->id, c->peer,
		c->name[0] != '\0' ? c->name : "-",
		c->outcome != NULL ? c->outcome : "ERROR", usage,
		c->via != NULL ? c->via : "-", c->http_status,
		reason[0] != '\0' ? reason : "-");
}

/* The core's line for a DANCE decision (same fields in every host). */
static void
decision_log(struct conn *c)
{
	const struct dance_conn *dc = dance_conn_get(c->ssl);
	char line[600];

	if (dc == NULL || dance_conn_status(dc) == DANCE_STATUS_PENDING)
		return;
	fprintf(stderr, PROG ": %s\n", dance_conn_log_line(dc, c->addr, line,
		sizeof(line)));
}

static void
conn_free(struct conn *c)
{
	struct server *s = c->srv;

	conn_log(c);
	/* The glue cancels its own in-flight lookup when the SSL goes. */
	SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->n_conns--;
	free(c);
}

static void
conn_fail(struct conn *c, const char *outcome, const char *fmt,
	const char *arg)
{
	c->outcome = outcome;
	(void)snprintf(c->reason, sizeof(c->reason), fmt, arg);
	c->phase = PH_DONE;
}

/* Lookup finished for a connection (glue path).  Called from inside
 * dance_resolver_process(): only mark it, the loop drives it on. */
static void
on_answer(SSL *ssl, struct dance_conn *dc, void *arg)
{
	struct conn *c = SSL_get_app_data(ssl);

	if (c != NULL)
		c->answered = 1;
}

static void
build_response(struct conn *c)
{
	const struct srv_opts *o = c->srv->o;
	const char *status = c->status != NULL ? c->status : "NONE";
	char usage[16];
	int ok = strcmp(status, "SUCCESS") == 0;
	int n;

	if (c->usage >= 0)
		(void)snprintf(usage, sizeof(usage), "%d", c->usage);
	else
		(void)snprintf(usage, sizeof(usage), "-");
	c->http_status = ok || o->optional ? 200 : 403;
	/* A refused peer learns that it failed, not why (the draft's one
	 * generic alert, for the same reason); the log line has it. */
	if (c->http_status == 403 && strncmp(status, "FAILED:", 7) == 0)
		status = "FAILED";
	n = snprintf(c->out, sizeof(c->out), "HTTP/1.0 %s\r\n"
		"Content-Type: text/plain\r\nConnection: close\r\n\r\n"
		"DANCE-Status: %s\r\nDANCE-Client-Id: %s\r\n"
		"DANCE-Usage: %s\r\n",
		c->http_status == 200 ? "200 OK" : "403 Forbidden", status,
		c->name[0] != '\0' ? c->name : "-", usage);
	c->out_len = n > 0 && (size_t)n < sizeof(c->out) ? (size_t)n :
		strlen(c->out);
	c->out_off = 0;
}

/* Read and drop whatever the client sent so far (an HTTP request);
 * closing with unread data would reset the connection. */
static void
discard_input(struct conn *c)
{
	char buf[2048];
	int i;

	/* Bounded: a client streaming data must not hold the loop. */
	for (i = 0; i < 16; i++) {
		if (SSL_read(c->ssl, buf, sizeof(buf)) <= 0)
			break;
	}
	ERR_clear_error();
}

/* The verdict is known: prepare the response. */
static void
conn_respond(struct conn *c)
{
	char reason[256];

	if (c->outcome == NULL)
		c->outcome = "NONE";
	clean_copy(reason, sizeof(reason), c->reason);
	memcpy(c->reason, reason, sizeof(c->reason));
	discard_input(c);
	build_response(c);
	c->phase = PH_WRITE;
	c->want = POLLOUT;
	c->deadline = now_ms() + (long long)c->srv->o->conn_timeout_ms;
}

/* The decision is made (not PENDING): take it for response and log. */
static void
decided(struct conn *c, enum dance_status st)
{
	const struct dance_conn *dc = dance_conn_get(c->ssl);
	const char *notes = dance_conn_tlsa_notes(dc);

	(void)snprintf(c->name, sizeof(c->name), "%s", dance_conn_name(dc));
	c->usage = dance_conn_usage(dc);
	c->status = dance_conn_status_text(dc);
	c->outcome = st == DANCE_STATUS_SUCCESS ? "SUCCESS" :
		st == DANCE_STATUS_FAILED ? "FAILED" : "NONE";
	(void)snprintf(c->reason, sizeof(c->reason), "%s",
		dance_conn_reason(dc));
	if (notes[0] != '\0')
		fprintf(stderr, PROG ": conn=%lu name=%s unusable TLSA "
			"records: %s\n", c->id, c->name, notes);
	if (dance_conn_source(dc) == DANCE_SRC_SAN)
		c->via = "legacy-san";
	decision_log(c);
	conn_respond(c);
}

/* Handshake complete: decide now, or park until the lookup is in. */
static void
after_handshake(struct conn *c)
{
	struct dance_conn *dc = dance_conn_get(c->ssl);
	enum dance_status st;

	c->deadline = now_ms() + (long long)c->srv->o->conn_timeout_ms;
	/* Where the verdict comes from: OpenSSL's DANE check inside the
	 * handshake (cached secure answer), a cached failure, or a lookup
	 * that this connection waited for; no-ext: no dane_clientid. */
	switch (dance_conn_state(dc)) {
	case DANCE_CONN_NONE:
		c->via = "no-ext";
		break;
	case DANCE_CONN_ARMED:
	case DANCE_CONN_SUCCESS:
	case DANCE_CONN_FAILED:
	case DANCE_CONN_REJECTED:
		c->via = "handshake";
		break;
	case DANCE_CONN_ANSWERED:
		c->via = c->answered ? "lookup" : "cache";
		break;
	default:
		c->via = "lookup";
		break;
	}
	st = dance_conn_decide(c->ssl, NULL);
	if (st == DANCE_STATUS_PENDING) {
		/* The resolver bounds the wait; the deadline is a backstop
		 * beyond its own timeout. */
		c->phase = PH_WAIT;
		c->deadline += c->srv->lookup_timeout_ms;
		return;
	}
	decided(c, st);
}

/* Why the handshake failed, for the log. */
static void
handshake_failed(struct conn *c, int ret)
{
	struct dance_conn *dc = dance_conn_get(c->ssl);
	char eb[160];
	int e = SSL_get_error(c->ssl, ret);

	(void)snprintf(c->name, sizeof(c->name), "%s", dance_conn_name(dc));
	/* REFUSED: DANCE turned the client down (the glue sent the
	 * alert); anything else is a failed handshake, ERROR. */
	if (dance_conn_status(dc) == DANCE_STATUS_FAILED &&
	    dance_conn_reason(dc)[0] != '\0') {
		conn_fail(c, "REFUSED", "%s", dance_conn_reason(dc));
		decision_log(c);
	}
	else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		conn_fail(c, "ERROR", "handshake: %s", errno == 0 ?
			"connection closed by client" : strerror(errno));
	else
		conn_fail(c, "ERROR", "handshake: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	if (dc != NULL)
		c->via = "handshake";
	ERR_clear_error();
}

/* Map an SSL want to poll events; 0 when it is a real error. */
static int
ssl_want(struct conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		c->want = POLLIN;
		return 1;
	case SSL_ERROR_WANT_WRITE:
		c->want = POLLOUT;
		return 1;
	default:
		return 0;
	}
}

static void
step_handshake(struct conn *c)
{
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_accept(c->ssl);
	if (ret == 1)
		after_handshake(c);
	else if (!ssl_want(c, ret))
		handshake_failed(c, ret);
}

static void
step_write(struct conn *c)
{
	int ret;

	ERR_clear_error();
	while (c->out_off < c->out_len) {
		ret = SSL_write(c->ssl, c->out + c->out_off,
			(int)(c->out_len - c->out_off));
		if (ret <= 0) {
			if (!ssl_want(c, ret)) {
				/* The verdict stands; log the lost reply. */
				c->phase = PH_DONE;
				ERR_clear_error();
			}
			return;
		}
		c->out_off += (size_t)ret;
	}
	c->phase = PH_SHUTDOWN;
	c->want = POLLOUT;
}

static void
step_shutdown(struct conn *c)
{
	int ret;

	ERR_clear_error();
	ret = SSL_shutdown(c->ssl);
	if (ret < 0 && ssl_want(c, ret))
		return;
	ERR_clear_error();
	/* close_notify is out; let the client read it and close first. */
	(void)shutdown(c->fd, SHUT_WR);
	c->phase = PH_LINGER;
	c->want = POLLIN;
	c->deadline = now_ms() + LINGER_MS;
}

static void
step_linger(struct conn *c)
{
	char buf[4096];
	ssize_t n = 1;
	int i;

	/* Bounded per wake-up; LINGER_MS bounds the whole wait. */
	for (i = 0; i < 16 && n > 0; i++)
		n = read(c->fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR))
		c->phase = PH_DONE;
}

/* Advance one connection as far as it goes without blocking. */
static void
conn_step(struct conn *c)
{
	enum conn_phase before;

	do {
		before = c->phase;
		switch (c->phase) {
		case PH_HANDSHAKE:
			step_handshake(c);
			break;
		case PH_WAIT:
			if (!c->answered)
				return;
			decided(c, dance_conn_decide(c->ssl, NULL));
			break;
		case PH_WRITE:
			step_write(c);
			break;
		case PH_SHUTDOWN:
			step_shutdown(c);
			break;
		case PH_LINGER:
			step_linger(c);
			break;
		case PH_DONE:
			return;
		}
	} while (c->phase != before);
}

static void
conn_timeout(struct conn *c)
{
	switch (c->phase) {
	case PH_HANDSHAKE:
		conn_fail(c, "ERROR", "%s", "handshake timeout");
		break;
	case PH_WAIT:
		conn_fail(c, "ERROR", "%s", "no lookup result in time");
		break;
	case PH_WRITE:
	case PH_SHUTDOWN:
		/* Verdict already logged in the outcome; note the stall. */
		(void)snprintf(c->reason, sizeof(c->reason), "%s",
			"client stopped reading");
		c->phase = PH_DONE;
		break;
	default:
		c->phase = PH_DONE;
		break;
	}
}

static void
accept_new(struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct conn *c;
	char hb[INET6_ADDRSTRLEN], pb[16];
	int fd;

	while (s->n_conns < s->o->max_conns &&
	    !(s->o->once && s->accepted > 0)) {
		sl = sizeof(ss);
		fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED) {
				/* E.g. out of descriptors: the listener
				 * stays readable, so back off instead of
				 * spinning. */
				fprintf(stderr, PROG ": accept: %s\n",
					strerror(errno));
				s->accept_pause = now_ms() + ACCEPT_PAUSE_MS;
			}
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->ssl = SSL_new(s->ctx)) == NULL ||
		    SSL_set_fd(c->ssl, fd) != 1) {
			fprintf(stderr, PROG ": out of memory for a new "
				"connection\n");
			if (c != NULL)
				SSL_free(c->ssl);
			free(c);
			close(fd);
			ERR_clear_error();
			continue;
		}
		if (getnameinfo((struct sockaddr *)&ss, sl, hb, sizeof(hb),
		    pb, sizeof(pb), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			(void)snprintf(c->peer, sizeof(c->peer), "?");
		else {
			(void)snprintf(c->peer, sizeof(c->peer), "%s%s%s:%s",
				ss.ss_family == AF_INET6 ? "[" : "", hb,
				ss.ss_family == AF_INET6 ? "]" : "", pb);
			(void)snprintf(c->addr, sizeof(c->addr), "%s", hb);
		}
		c->srv = s;
		c->fd = fd;
		c->usage = -1;
		c->phase = PH_HANDSHAKE;
		c->want = POLLIN;
		c->deadline = now_ms() + (long long)s->o->conn_timeout_ms;
		SSL_set_app_data(c->ssl, c);
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
		c->id = ++s->accepted;
		/* ClientHello is usually already there. */
		conn_step(c);
	}
}

/* ------------------------------------------------------------------ */
/* Metrics endpoint                                                    */
/* ------------------------------------------------------------------ */

/* The exposition text, allocated; NULL when out of memory. */
static char *
metrics_text(struct server *s, size_t *len)
{
	const struct dance_metrics *m = s->metrics;
	char *buf;

	dance_metrics_resolver_sync(s->metrics, s->resolver, &s->mlast);
	*len = dance_metrics_format_prometheus(&m, NULL, 1, NULL, 0);
	if ((buf = malloc(*len + 1)) != NULL)
		(void)dance_metrics_format_prometheus(&m, NULL, 1, buf,
			*len + 1);
	return buf;
}

static void
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0 && (n = write(fd, p, len)) > 0) {
		p += n;
		len -= (size_t)n;
	}
}

/*
 * One scrape: read the request head, answer, close.  Blocking with
 * short socket timeouts (a scraper sends its request at once): the
 * loop is held at most METRICS_IO_MS per read and write, by a client
 * of an address the operator chose (loopback, a private network).
 */
#define METRICS_IO_MS 500
static void
metrics_serve(struct server *s, int fd)
{
	struct timeval tv = { 0, METRICS_IO_MS * 1000 };
	char req[4096], head[256], *body = NULL;
	size_t got = 0, len = 0;
	ssize_t n;
	int hn;

	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (got < sizeof(req) - 1 &&
	    (n = read(fd, req + got, sizeof(req) - 1 - got)) > 0) {
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL ||
		    strstr(req, "\n\n") != NULL)
			break;
	}
	req[got] = '\0';
	if (strncmp(req, "GET ", 4) != 0 && strncmp(req, "HEAD ", 5) != 0) {
		hn = snprintf(head, sizeof(head), "HTTP/1.0 405 Method Not "
			"Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n"
			"Connection: close\r\n\r\n");
	} else if ((body = metrics_text(s, &len)) == NULL) {
		hn = snprintf(head, sizeof(head), "HTTP/1.0 500 Internal "
			"Server Error\r\nContent-Length: 0\r\n"
			"Connection: close\r\n\r\n");
	} else {
		hn = snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\n"
			"Content-Type: text/plain; version=0.0.4; "
			"charset=utf-8\r\nContent-Length: %zu\r\n"
			"Connection: close\r\n\r\n", len);
		if (req[0] == 'H')
			len = 0;
	}
	if (hn > 0 && (size_t)hn < sizeof(head))
		write_all(fd, head, (size_t)hn);
	if (body != NULL)
		write_all(fd, body, len);
	free(body);
	(void)shutdown(fd, SHUT_WR);
	close(fd);
}

static void
metrics_accept(struct server *s)
{
	int fd, i;

	/* bounded per wake-up, like the TLS listener's work */
	for (i = 0; i < 8; i++) {
		fd = accept4(s->mfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		metrics_serve(s, fd);
	}
}

/* ------------------------------------------------------------------ */
/* Event loop                                                          */
/* ------------------------------------------------------------------ */

static void
on_signal(int sig)
{
	stop_signal = sig;
}

/* Fill the poll set; returns the count and the poll timeout in ms. */
static nfds_t
build_pollset(struct server *s, int *timeout, int *ires)
{
	struct conn *c;
	long long now = now_ms(), next = -1;
	nfds_t n = 0;
	int rt;

	*ires = -1;
	if (s->n_conns < s->o->max_conns && !(s->o->once && s->accepted > 0)) {
		if (s->accept_pause <= now) {
			s->pfd[n].fd = s->lfd;
			s->pfd[n].events = POLLIN;
			s->pconn[n++] = NULL;
		} else {
			next = s->accept_pause;
		}
	}
	s->pfd[n].fd = dance_resolver_fd(s->resolver);
	s->pfd[n].events = POLLIN;
	s->pconn[n] = NULL;
	*ires = (int)n++;
	if (s->mfd >= 0) {
		s->pfd[n].fd = s->mfd;
		s->pfd[n].events = POLLIN;
		s->pconn[n++] = NULL;
	}
	for (c = s->conns; c != NULL; c = c->next) {
		if (next < 0 || c->deadline < next)
			next = c->deadline;
		/* A parked connection waits for the resolver, not for its
		 * socket: polling it would spin on a pending request. */
		if (c->phase == PH_WAIT)
			continue;
		s->pfd[n].fd = c->fd;
		s->pfd[n].events = c->want;
		s->pconn[n++] = c;
	}
	*timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
	rt = dance_resolver_next_timeout(s->resolver);
	if (rt >= 0 && (*timeout < 0 || rt < *timeout))
		*timeout = rt;
	return n;
}

static void
run(struct server *s, const sigset_t *waitmask)
{
	struct conn *c, *next;
	struct timespec ts;
	nfds_t n, i;
	int timeout, ires, rc;

	while (!stop_signal) {
		if (s->o->once && s->accepted > 0 && s->n_conns == 0)
			break;
		n = build_pollset(s, &timeout, &ires);
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
		rc = ppoll(s->pfd, n, timeout < 0 ? NULL : &ts, waitmask);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
			break;
		}
		if ((s->pfd[ires].revents & POLLIN) ||
		    dance_resolver_next_timeout(s->resolver) == 0)
			dance_resolver_process(s->resolver);
		for (i = 0; i < n; i++) {
			if (s->pconn[i] != NULL && s->pfd[i].revents != 0)
				conn_step(s->pconn[i]);
		}
		if (s->pfd[0].fd == s->lfd && (s->pfd[0].revents & POLLIN))
			accept_new(s);
		if (s->mfd >= 0 && (s->pfd[ires + 1].revents & POLLIN))
			metrics_accept(s);
		for (c = s->conns; c != NULL; c = next) {
			next = c->next;
			if (c->phase == PH_WAIT && c->answered)
				conn_step(c);
			if (c->phase != PH_DONE && c->deadline <= now_ms())
				conn_timeout(c);
			if (c->phase == PH_DONE)
				conn_free(c);
		}
	}
}

static void
cleanup(struct server *s)
{
	while (s->conns != NULL) {
		if (s->conns->outcome == NULL)
			conn_fail(s->conns, "ERROR", "%s", "server stopped");
		conn_free(s->conns);
	}
	write_stats(s);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->mfd >= 0)
		close(s->mfd);
	SSL_CTX_free(s->ctx);
	dance_tls_server_free(s->tls);
	dance_matcher_free(s->matcher);
	dance_resolver_free(s->resolver);
	dance_policy_free(s->policy);
	free(s->pfd);
	free(s->pconn);
	dance_metrics_free(s->metrics);
}

int
main(int argc, char **argv)
{
	struct srv_opts o;
	struct server s;
	struct sigaction sa;
	sigset_t block, waitmask;
	int rc;

	memset(&o, 0, sizeof(o));
	tool_resolver_opts_init(&o.ro);
	o.max_conns = MAX_CONNS_DEFAULT;
	o.conn_timeout_ms = CONN_TIMEOUT_DEFAULT;
	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;

	memset(&s, 0, sizeof(s));
	s.o = &o;
	s.lfd = -1;
	s.mfd = -1;
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);

	if (setup(&s) != 0) {
		cleanup(&s);
		return TOOL_EXIT_USAGE;
	}
	run(&s, &waitmask);
	if (stop_signal)
		fprintf(stderr, PROG ": signal %d, exiting\n",
			(int)stop_signal);
	cleanup(&s);
	return TOOL_EXIT_OK;
}
