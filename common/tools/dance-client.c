/*
 * dance-client -- TLS client that authenticates with DANCE.
 *
 * Connects, presents a certificate and sends its DNS name in the
 * dane_clientid extension (only when the server asks for it), then
 * reads the server's answer.  In TLS 1.3 the client's handshake is done
 * before the server has judged the certificate, so a refusal only shows
 * as an alert on the first read; the tool reads (or sends an HTTP
 * request and reads) to learn the outcome.
 *
 * Exit: 0 accepted (HTTP 2xx, or "DANCE-Status: SUCCESS" in raw mode),
 * 1 refused / failed / network error, 2 usage or configuration error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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

#define PROG "dance-client"
#define MAX_HEADERS 32
#define RESPONSE_MAX 65536
#define IO_TIMEOUT_DEFAULT 30	/* seconds */
#define COUNT_MAX 10000000ul

struct client_opts {
	const char *cert;
	const char *key;
	const char *chain;
	const char *name;
	const char *servername;
	const char *cafile;
	const char *http_path;
	const char *raw_file;	/* TEST ONLY: request bytes, verbatim */
	char *raw;
	size_t raw_len;
	const char *headers[MAX_HEADERS];
	size_t n_headers;
	const char *target;
	unsigned ext_type;
	int tls12;
	int no_ext;
	int zero_name;		/* TEST ONLY: protocol violation */
	unsigned long count;
	unsigned io_timeout;
	char host[256];
	char port[16];
};

/* Outcome of one connection. */
struct exchange {
	int alert;		/* alert received from the server, -1 none */
	int rc;			/* TOOL_EXIT_* */
	int verify_server;	/* --cafile given */
	char msg[512];		/* what to print on failure */
	char *resp;		/* response bytes, NUL-terminated */
	size_t resp_len;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " --cert FILE --key FILE --name NAME [options] HOST:PORT\n"
"\n"
"Connect with TLS, present a client certificate and send NAME in the\n"
"dane_clientid extension, so that a DANCE server can authenticate the\n"
"client by the TLSA records at NAME.  The name is sent only when the\n"
"server asks for it (dane_clientid in its CertificateRequest).\n"
"\n"
"Client identity:\n"
"  --cert FILE        client certificate (PEM; further certs in the file\n"
"                     are sent as its chain)\n"
"  --key FILE         its private key (PEM, unencrypted)\n"
"  --chain FILE       extra chain certificates (PEM), e.g. the issuing CA\n"
"                     for DANE-TA(2); a copy of the leaf is ignored\n"
"  --name NAME        DNS name of the client's TLSA RRset, sent as\n"
"                     ClientName (required unless --no-ext/--zero-name)\n"
"  --ext-type N       dane_clientid code point, decimal or 0x hex\n"
"                     (default 0x%04X)\n"
"\n"
"Protocol:\n"
"  --tls1.2           force TLS 1.2 (legacy tests: TLS 1.2 has no place\n"
"                     for the extension, the name is never sent)\n"
"  --no-ext           do not send dane_clientid at all\n"
"  --zero-name        TEST ONLY: send a zero-length ClientName, a protocol\n"
"                     violation that a server must refuse\n"
"  --servername SNI   server name indication (default: HOST unless it is\n"
"                     an IP address)\n"
"  --cafile FILE      verify the server certificate against these CAs and\n"
"                     the server name (SNI or HOST).  Without --cafile the\n"
"                     server is NOT verified (test tool default)\n"
"\n"
"Exchange:\n"
"  --http PATH        send 'GET PATH HTTP/1.0'; success is a 2xx status\n"
"  --header 'K: V'    extra request header for --http (repeatable)\n"
"  --raw FILE         TEST ONLY: send FILE's bytes as they are instead of\n"
"                     --http's request (malformed or pipelined HTTP for\n"
"                     server tests); success is a 2xx status\n"
"  (without --http)   send nothing, read the server's answer; success is\n"
"                     a line 'DANCE-Status: SUCCESS' in it\n"
"  --count N          make N connections, each a full handshake (no\n"
"                     resumption), print a summary and the rate instead\n"
"                     of the response\n"
"  --io-timeout SEC   give up on a silent server after SEC seconds\n"
"                     (default %d)\n"
"  --help             this text\n"
"\n"
"The server's response goes to stdout.  A refusal in the handshake is\n"
"reported as '" PROG ": server refused: <alert>' on stderr.\n"
"Exit status: 0 accepted, 1 refused or failed, 2 usage/config error.\n",
		DANCE_EXT_TYPE_DEFAULT, IO_TIMEOUT_DEFAULT);
}

/* Usage error: message and exit code. */
#define die_usage(fmt, arg) tool_usage_err(PROG, fmt, arg)

static int
valid_header(const char *h)
{
	const char *c = strchr(h, ':');

	/* A CR or LF would let a header smuggle extra request lines. */
	return c != NULL && c != h && strpbrk(h, "\r\n") == NULL;
}

static int
parse_args(int argc, char **argv, struct client_opts *o)
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
		} else if (strcmp(a, "--tls1.2") == 0) {
			o->tls12 = 1;
		} else if (strcmp(a, "--no-ext") == 0) {
			o->no_ext = 1;
		} else if (strcmp(a, "--zero-name") == 0) {
			o->zero_name = 1;
		} else if (OPT("--cert")) {
			o->cert = v;
		} else if (OPT("--key")) {
			o->key = v;
		} else if (OPT("--chain")) {
			o->chain = v;
		} else if (OPT("--name")) {
			o->name = v;
		} else if (OPT("--servername")) {
			o->servername = v;
		} else if (OPT("--cafile")) {
			o->cafile = v;
		} else if (OPT("--http")) {
			o->http_path = v;
		} else if (OPT("--raw")) {
			o->raw_file = v;
		} else if (OPT("--header")) {
			if (r > 0 && o->n_headers >= MAX_HEADERS)
				return die_usage("too many --header options",
					NULL);
			if (r > 0 && !valid_header(v))
				return die_usage("--header '%s': want "
					"'Name: value' on one line", v);
			if (r > 0)
				o->headers[o->n_headers++] = v;
		} else if (OPT("--ext-type")) {
			if (r > 0 && tool_parse_ext_type(v, &o->ext_type,
			    &err) != DANCE_OK)
				return die_usage("%s", err.reason);
		} else if (OPT("--count")) {
			if (r > 0 && (tool_parse_uint(v, COUNT_MAX, &n) != 0
			    || n == 0))
				return die_usage("--count '%s': want a "
					"positive number", v);
			if (r > 0)
				o->count = n;
		} else if (OPT("--io-timeout")) {
			if (r > 0 && (tool_parse_uint(v, 3600, &n) != 0 ||
			    n == 0))
				return die_usage("--io-timeout '%s': want "
					"seconds, 1..3600", v);
			if (r > 0)
				o->io_timeout = (unsigned)n;
		} else if (a[0] == '-' && a[1] != '\0') {
			return die_usage("unknown option %s", a);
		} else if (o->target == NULL) {
			o->target = a;
		} else {
			return die_usage("unexpected argument %s", a);
		}
		if (r < 0)
			return die_usage("%s needs a value", a);
#undef OPT
	}
	return -1;
}

/* --raw: the whole file, at most 64 KiB; 0 or -1 with errno. */
static int
read_raw(struct client_opts *o)
{
	FILE *f = fopen(o->raw_file, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	o->raw = malloc(RESPONSE_MAX);
	n = o->raw != NULL ? fread(o->raw, 1, RESPONSE_MAX, f) : 0;
	if (o->raw == NULL || ferror(f) || n == 0 || !feof(f)) {
		if (o->raw != NULL && !ferror(f))
			errno = n == 0 ? ENODATA : EFBIG;
		(void)fclose(f);
		return -1;
	}
	(void)fclose(f);
	o->raw_len = n;
	return 0;
}

/* Everything that does not need the network; exit code or -1. */
static int
check_args(struct client_opts *o)
{
	struct dance_error err;
	char lower[DANCE_NAME_MAX + 1];

	if (o->target == NULL)
		return die_usage("missing HOST:PORT", NULL);
	if (tool_split_hostport(o->target, o->host, sizeof(o->host), o->port,
	    sizeof(o->port)) != 0)
		return die_usage("'%s': want HOST:PORT", o->target);
	if (o->cert == NULL || o->key == NULL)
		return die_usage("--cert and --key are required", NULL);
	if (o->no_ext && o->zero_name)
		return die_usage("--no-ext and --zero-name exclude each "
			"other", NULL);
	if (o->name == NULL && !o->no_ext && !o->zero_name)
		return die_usage("--name is required (or --no-ext)", NULL);
	if (o->name != NULL && dance_name_check(o->name, strlen(o->name), 0,
	    lower, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": --name '%s': %s\n", o->name,
			err.reason);
		return TOOL_EXIT_USAGE;
	}
	if (o->n_headers > 0 && o->http_path == NULL)
		return die_usage("--header needs --http", NULL);
	if (o->raw_file != NULL && o->http_path != NULL)
		return die_usage("--raw and --http exclude each other", NULL);
	if (o->raw_file != NULL && read_raw(o) != 0) {
		fprintf(stderr, PROG ": --raw '%s': %s\n", o->raw_file,
			strerror(errno));
		return TOOL_EXIT_USAGE;
	}
	if (o->http_path != NULL && (o->http_path[0] != '/' ||
	    strpbrk(o->http_path, " \r\n") != NULL))
		return die_usage("--http '%s': want an absolute path without "
			"blanks", o->http_path);
	return -1;
}

/* ------------------------------------------------------------------ */
/* TEST ONLY: zero-length ClientName (--zero-name)                      */
/* ------------------------------------------------------------------ */

/*
 * A conforming client never sends this; the option exists so tests can
 * check that servers abort with handshake_failure.  Registered instead
 * of dance_tls_client_attach(), with the same contexts, so OpenSSL still
 * only sends it when the server's CertificateRequest carried the
 * extension.
 */
static int
zero_name_add_cb(SSL *s, unsigned int ext_type, unsigned int context,
	const unsigned char **out, size_t *outlen, X509 *x, size_t chainidx,
	int *al, void *add_arg)
{
	/* opaque ClientName<0..2^8-1> with length 0: one zero octet. */
	static const unsigned char zero_len_name[1] = { 0 };

	if (context != SSL_EXT_TLS1_3_CERTIFICATE || chainidx != 0)
		return 0;
	*out = zero_len_name;
	*outlen = sizeof(zero_len_name);
	return 1;
}

static int
zero_name_parse_cb(SSL *s, unsigned int ext_type, unsigned int context,
	const unsigned char *in, size_t inlen, X509 *x, size_t chainidx,
	int *al, void *parse_arg)
{
	return 1;
}

static int
attach_zero_name(SSL_CTX *ctx, unsigned ext_type)
{
	return SSL_CTX_add_custom_ext(ctx, ext_type,
		SSL_EXT_TLS1_3_CERTIFICATE_REQUEST | SSL_EXT_TLS1_3_CERTIFICATE,
		zero_name_add_cb, NULL, NULL, zero_name_parse_cb, NULL) == 1;
}

/* ------------------------------------------------------------------ */
/* TLS context                                                         */
/* ------------------------------------------------------------------ */

/* Remember the first alert the server sent (close_notify is not a
 * refusal). */
static void
info_cb(const SSL *ssl, int where, int ret)
{
	struct exchange *ex = SSL_get_app_data(ssl);

	if (ex == NULL || (where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT)
		return;
	if ((ret & 0xff) == SSL_AD_CLOSE_NOTIFY || ex->alert >= 0)
		return;
	ex->alert = ret;
}

static SSL_CTX *
make_ctx(const struct client_opts *o)
{
	struct dance_error err;
	SSL_CTX *ctx;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	char eb[160];
	int ok = 0;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		fprintf(stderr, PROG ": SSL_CTX_new: %s\n",
			dance_ssl_err_text(eb, sizeof(eb)));
		return NULL;
	}
	if (o->tls12) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	} else {
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	}
	/* Every connection is a full handshake: a resumed session has no
	 * client Certificate, so nothing would be authenticated. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_info_callback(ctx, info_cb);

	if (tool_load_cert_chain(o->cert, o->chain, &leaf, &chain, &err) !=
	    DANCE_OK || tool_load_key(o->key, &key, &err) != DANCE_OK ||
	    tool_ctx_use_cert(ctx, leaf, chain, key, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		goto out;
	}
	if (o->cafile != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, o->cafile, NULL) != 1) {
			fprintf(stderr, PROG ": --cafile %s: %s\n", o->cafile,
				dance_ssl_err_text(eb, sizeof(eb)));
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (o->zero_name) {
		if (!attach_zero_name(ctx, o->ext_type)) {
			fprintf(stderr, PROG ": cannot register extension "
				"0x%04X: %s\n", o->ext_type,
				dance_ssl_err_text(eb, sizeof(eb)));
			goto out;
		}
	} else if (!o->no_ext && dance_tls_client_attach(ctx, o->ext_type,
	    o->name, &err) != DANCE_OK) {
		fprintf(stderr, PROG ": %s\n", err.reason);
		goto out;
	}
	ok = 1;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	if (!ok) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* ------------------------------------------------------------------ */
/* Network                                                             */
/* ------------------------------------------------------------------ */

/* Connect within the I/O timeout; leaves a blocking socket with send
 * and receive timeouts, or -1 with ex->msg set. */
static int
connect_to(const struct client_opts *o, struct exchange *ex)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv;
	int fd = -1, rc, err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	if ((rc = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		(void)snprintf(ex->msg, sizeof(ex->msg), "%s: %s", o->target,
			gai_strerror(rc));
		return -1;
	}
	tv.tv_sec = (time_t)o->io_timeout;
	tv.tv_usec = 0;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t sl = sizeof(err);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
			SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = 0;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			err = errno;
			if (err == EINPROGRESS) {
				p.fd = fd;
				p.events = POLLOUT;
				rc = poll(&p, 1, (int)o->io_timeout * 1000);
				if (rc == 0)
					err = ETIMEDOUT;
				else if (rc < 0 || getsockopt(fd, SOL_SOCKET,
				    SO_ERROR, &err, &sl) != 0)
					err = errno;
			}
		}
		if (err == 0 && fcntl(fd, F_SETFL, 0) == 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv)) == 0 && setsockopt(fd, SOL_SOCKET,
		    SO_SNDTIMEO, &tv, sizeof(tv)) == 0)
			break;
		if (err == 0)
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		(void)snprintf(ex->msg, sizeof(ex->msg), "connect %s: %s",
			o->target, strerror(err));
	return fd;
}

/* Why an SSL call failed, for ex->msg.  An alert from the server means
 * it refused us; anything else is a local or transport problem. */
static void
explain_failure(SSL *ssl, int ret, const char *what, struct exchange *ex)
{
	char eb[160];
	int e = SSL_get_error(ssl, ret);

	ex->rc = TOOL_EXIT_FAIL;
	if (ex->alert >= 0) {
		(void)snprintf(ex->msg, sizeof(ex->msg),
			"server refused: %s",
			SSL_alert_desc_string_long(ex->alert));
	} else if (ex->verify_server &&
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		(void)snprintf(ex->msg, sizeof(ex->msg), "server certificate "
			"not accepted (--cafile): %s",
			X509_verify_cert_error_string(
			SSL_get_verify_result(ssl)));
	} else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		(void)snprintf(ex->msg, sizeof(ex->msg), "%s: %s", what,
			errno == EAGAIN || errno == EWOULDBLOCK ?
			"timed out" : errno == 0 ?
			"connection closed by server" : strerror(errno));
	} else {
		(void)snprintf(ex->msg, sizeof(ex->msg), "%s failed: %s",
			what, dance_ssl_err_text(eb, sizeof(eb)));
	}
	ERR_clear_error();
}

static int
send_request(SSL *ssl, const struct client_opts *o, const char *sni)
{
	char req[8192];
	size_t i;
	int n;

	if (o->raw != NULL)
		return SSL_write(ssl, o->raw, (int)o->raw_len);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n"
		"User-Agent: " PROG "/" DANCE_VERSION "\r\n", o->http_path,
		sni != NULL ? sni : o->host);
	for (i = 0; i < o->n_headers && n > 0 && (size_t)n < sizeof(req);
	    i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n",
			o->headers[i]);
	if (n > 0 && (size_t)n < sizeof(req))
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (n <= 0 || (size_t)n >= sizeof(req))
		return -2;
	return SSL_write(ssl, req, n);
}

/* Read until the server closes.  0 done; -1 failed, *ret is what
 * SSL_read returned. */
static int
read_response(SSL *ssl, struct exchange *ex, int *ret)
{
	char buf[4096];
	int n;

	for (;;) {
		n = SSL_read(ssl, buf, sizeof(buf));
		if (n <= 0) {
			int e = SSL_get_error(ssl, n);

			/* close_notify, or a plain EOF after some data
			 * (HTTP/1.0 ends the body by closing). */
			if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && errno == 0 &&
			    ERR_peek_error() == 0 && ex->resp_len > 0 &&
			    ex->alert < 0)) {
				ERR_clear_error();
				return 0;
			}
			*ret = n;
			return -1;
		}
		if (ex->resp_len + (size_t)n > RESPONSE_MAX)
			n = (int)(RESPONSE_MAX - ex->resp_len);
		memcpy(ex->resp + ex->resp_len, buf, (size_t)n);
		ex->resp_len += (size_t)n;
		ex->resp[ex->resp_len] = '\0';
		if (ex->resp_len >= RESPONSE_MAX)
			return 0;
	}
}

/* Copy the line starting at p (without CR/LF) into ex->msg after pfx. */
static void
msg_line(struct exchange *ex, const char *pfx, const char *p)
{
	size_t l = strcspn(p, "\r\n");

	(void)snprintf(ex->msg, sizeof(ex->msg), "%s%.*s", pfx, (int)l, p);
}

/* Decide from the response bytes. */
static void
judge_response(const struct client_opts *o, struct exchange *ex)
{
	const char *r = ex->resp;
	const char *st;

	if (ex->resp_len == 0) {
		ex->rc = TOOL_EXIT_FAIL;
		(void)snprintf(ex->msg, sizeof(ex->msg),
			"connection closed by server without a response");
		return;
	}
	if (o->http_path != NULL || o->raw != NULL) {
		/* "HTTP/1.x NNN reason", on the first line */
		const char *sp = strchr(r, ' ');

		if (sp != NULL && (size_t)(sp - r) > strcspn(r, "\r\n"))
			sp = NULL;
		if (strncmp(r, "HTTP/", 5) == 0 && sp != NULL &&
		    sp[1] == '2' && sp[2] >= '0' && sp[2] <= '9' &&
		    sp[3] >= '0' && sp[3] <= '9') {
			ex->rc = TOOL_EXIT_OK;
			return;
		}
		ex->rc = TOOL_EXIT_FAIL;
		msg_line(ex, "", r);
		return;
	}
	st = strstr(r, "DANCE-Status:");
	if (st != NULL && strncmp(st, "DANCE-Status: SUCCESS", 21) == 0 &&
	    strchr("\r\n", st[21]) != NULL) {
		ex->rc = TOOL_EXIT_OK;
		return;
	}
	ex->rc = TOOL_EXIT_FAIL;
	msg_line(ex, "", st != NULL ? st : r);
}

/* One full connection: connect, handshake, exchange, judge. */
static void
exchange_once(SSL_CTX *ctx, const struct client_opts *o,
	struct exchange *ex)
{
	const char *sni = o->servername;
	unsigned char addr[16];
	SSL *ssl = NULL;
	int fd, ret;

	ex->alert = -1;
	ex->rc = TOOL_EXIT_FAIL;
	ex->verify_server = o->cafile != NULL;
	ex->msg[0] = '\0';
	ex->resp_len = 0;
	ex->resp[0] = '\0';
	if ((fd = connect_to(o, ex)) < 0)
		return;
	if (sni == NULL && inet_pton(AF_INET, o->host, addr) != 1 &&
	    inet_pton(AF_INET6, o->host, addr) != 1)
		sni = o->host;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    (sni != NULL && SSL_set_tlsext_host_name(ssl, sni) != 1) ||
	    (o->cafile != NULL && SSL_set1_host(ssl, sni != NULL ? sni :
	    o->host) != 1)) {
		char eb[160];

		(void)snprintf(ex->msg, sizeof(ex->msg), "SSL setup: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
		goto out;
	}
	SSL_set_app_data(ssl, ex);
	errno = 0;
	if ((ret = SSL_connect(ssl)) != 1) {
		explain_failure(ssl, ret, "TLS handshake", ex);
		goto out;
	}
	if (o->http_path != NULL || o->raw != NULL) {
		errno = 0;
		ret = send_request(ssl, o, sni);
		if (ret == -2) {
			(void)snprintf(ex->msg, sizeof(ex->msg),
				"HTTP request too long");
			goto out;
		}
		/* The write can fail because the server has refused us
		 * already: read once so that its alert is seen. */
		if (ret <= 0) {
			int saved = errno;
			char c;

			(void)SSL_read(ssl, &c, 1);
			errno = saved;
			explain_failure(ssl, ret, "send", ex);
			goto out;
		}
	}
	errno = 0;
	if (read_response(ssl, ex, &ret) != 0) {
		explain_failure(ssl, ret, "read", ex);
		goto out;
	}
	judge_response(o, ex);
	(void)SSL_shutdown(ssl);
out:
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --count N: only a summary; the first failure is shown. */
static int
run_count(SSL_CTX *ctx, const struct client_opts *o, struct exchange *ex)
{
	unsigned long i, ok = 0;
	double t0, t;
	int shown = 0;

	t0 = now_s();
	for (i = 0; i < o->count; i++) {
		exchange_once(ctx, o, ex);
		if (ex->rc == TOOL_EXIT_OK) {
			ok++;
		} else if (!shown) {
			fprintf(stderr, PROG ": connection %lu: %s\n", i + 1,
				ex->msg);
			shown = 1;
		}
	}
	t = now_s() - t0;
	printf("%lu connections, %lu ok, %lu failed, %.3f s, "
		"%.1f handshakes/s\n", o->count, ok, o->count - ok, t,
		t > 0 ? (double)o->count / t : 0.0);
	return ok == o->count ? TOOL_EXIT_OK : TOOL_EXIT_FAIL;
}

int
main(int argc, char **argv)
{
	struct client_opts o;
	struct exchange ex;
	SSL_CTX *ctx;
	int rc;

	memset(&o, 0, sizeof(o));
	o.ext_type = DANCE_EXT_TYPE_DEFAULT;
	o.count = 1;
	o.io_timeout = IO_TIMEOUT_DEFAULT;
	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;
	if ((rc = check_args(&o)) >= 0)
		return rc;
	/* A server closing early must give an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if ((ctx = make_ctx(&o)) == NULL)
		return TOOL_EXIT_USAGE;
	memset(&ex, 0, sizeof(ex));
	if ((ex.resp = malloc(RESPONSE_MAX + 1)) == NULL) {
		SSL_CTX_free(ctx);
		fprintf(stderr, PROG ": out of memory\n");
		return TOOL_EXIT_FAIL;
	}
	if (o.count > 1) {
		rc = run_count(ctx, &o, &ex);
	} else {
		exchange_once(ctx, &o, &ex);
		if (ex.resp_len > 0)
			fwrite(ex.resp, 1, ex.resp_len, stdout);
		fflush(stdout);
		if (ex.rc != TOOL_EXIT_OK)
			fprintf(stderr, PROG ": %s\n", ex.msg);
		rc = ex.rc;
	}
	free(ex.resp);
	free(o.raw);
	SSL_CTX_free(ctx);
	return rc;
}
