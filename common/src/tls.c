/*
 * tls.c -- OpenSSL glue for the dane_clientid extension (server and
 * client side) and the per-connection DANCE state machine.
 *
 * Server flow (TLS 1.3 only: a TLS 1.2 CertificateRequest carries no
 * extensions, so such clients simply stay in state NONE; a TLS 1.3
 * client without the extension is NONE too, or fails the handshake
 * under refuse_no_ext):
 *   CertificateRequest  add_cb sends dane_clientid with a zero-length
 *                       ClientName (one octet 00);
 *   client Certificate  parse_cb (leaf entry) checks syntax and the
 *                       allow-list (failure: handshake_failure, no DNS),
 *                       then
 *                         cache hit, secure   -> arm OpenSSL DANE: ARMED
 *                         cache hit, other    -> ANSWERED
 *                         miss, event mode    -> start lookup: PENDING
 *                         miss, threaded mode -> bounded wait, as a hit;
 *   chain verification  verify callback: for ARMED, OpenSSL's verdict
 *                       is the DANE verdict (SUCCESS / FAILED);
 *   after handshake     dance_conn_verdict(): post-handshake match for
 *                       ANSWERED, stored verdict otherwise.
 *
 * OpenSSL runs the parse callback before chain verification, so arming
 * DANE there makes the handshake itself enforce the TLSA match.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "dance_int.h"
#include "match_int.h"

/* dane_clientid is defined for CR and CT of TLS 1.3 only. */
#define EXT_CONTEXT (SSL_EXT_TLS1_3_CERTIFICATE_REQUEST | \
	SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS_IMPLEMENTATION_ONLY | \
	SSL_EXT_TLS1_3_ONLY)

struct dance_tls_server {
	struct dance_tls_server_cfg cfg;
	struct dance_matcher *own_matcher;	/* when cfg.matcher is NULL */
	int threaded;				/* resolver in threaded mode */
};

/* Per-connection state; the public part comes first so that
 * dance_conn_get() can hand out &pub. */
struct conn_priv {
	struct dance_conn pub;
	SSL *ssl;
	enum dance_code code;	/* verdict code for REJECTED / FAILED */
	int starting;		/* inside dance_resolver_lookup() */
};

/* An encoded ClientName, the client's dane_clientid extension_data. */
struct cli_name {
	size_t len;			/* 0: no name */
	unsigned char enc[1 + 255];
};

/* Client side, owned by the SSL_CTX (ex_data with a free function). */
struct tls_client {
	unsigned ext_type;
	struct cli_name name;		/* len 0: names come per SSL */
};

/* The only process-wide state: OpenSSL ex_data indexes. */
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;
static int idx_srv = -1;	/* SSL_CTX -> struct dance_tls_server */
static int idx_client = -1;	/* SSL_CTX -> struct tls_client */
static int idx_conn = -1;	/* SSL -> struct conn_priv */
static int idx_cli_name = -1;	/* SSL -> struct cli_name (client) */

/* An SSL_dup() must not share (and later double-free) the state. */
static int
ex_nodup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	int idx, long argl, void *argp)
{
	*from_d = NULL;
	return 1;
}

static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
	long argl, void *argp)
{
	struct conn_priv *c = ptr;

	if (c == NULL)
		return;
	/* An SSL freed mid-lookup: the callback must never run. */
	if (c->pub.lookup != NULL)
		dance_lookup_cancel(c->pub.lookup);
	if (c->pub.answer != NULL)
		dance_answer_unref(c->pub.answer);
	free(c);
}

static void
client_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
	long argl, void *argp)
{
	free(ptr);
}

/* SSL_dup() of a client SSL keeps its own copy of the name. */
static int
cli_name_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	int idx, long argl, void *argp)
{
	struct cli_name *n;

	if (*from_d == NULL)
		return 1;
	if ((n = malloc(sizeof(*n))) == NULL) {
		*from_d = NULL;
		return 0;
	}
	memcpy(n, *from_d, sizeof(*n));
	*from_d = n;
	return 1;
}

static void
idx_init(void)
{
	idx_srv = SSL_CTX_get_ex_new_index(0, "dance server", NULL, NULL,
		NULL);
	idx_client = SSL_CTX_get_ex_new_index(0, "dance client", NULL,
		NULL, client_ex_free);
	idx_conn = SSL_get_ex_new_index(0, "dance conn", NULL, ex_nodup,
		conn_ex_free);
	idx_cli_name = SSL_get_ex_new_index(0, "dance client name", NULL,
		cli_name_dup, client_ex_free);
}

static int
idx_ready(struct dance_error *err)
{
	(void)pthread_once(&idx_once, idx_init);
	if (idx_srv < 0 || idx_client < 0 || idx_conn < 0 ||
	    idx_cli_name < 0)
		return dance_err_set(err, DANCE_ERR_TLS, "cannot allocate "
			"OpenSSL ex_data indexes");
	return DANCE_OK;
}

const char *
dance_ssl_err_text(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		(void)snprintf(buf, len, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* OpenSSL refuses custom extensions of the types it handles itself. */
int
dance_ext_type_check(unsigned type, struct dance_error *err)
{
	if (type > 0xFFFF)
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"%u does not fit 16 bits", type);
	if (type == 0xFF01)
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"0xFF01 is renegotiation_info, handled inside OpenSSL");
	if (SSL_extension_supported(type))
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"0x%04X is handled inside OpenSSL", type);
	return DANCE_OK;
}

/* ------------------------------------------------------------------ */
/* Connection state                                                    */
/* ------------------------------------------------------------------ */

static struct conn_priv *
conn_of(SSL *ssl, int create)
{
	struct conn_priv *c;

	if (ssl == NULL || idx_ready(NULL) != DANCE_OK)
		return NULL;
	c = SSL_get_ex_data(ssl, idx_conn);
	if (c != NULL || !create)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->pub.state = DANCE_CONN_NONE;
	c->pub.usage = -1;
	c->ssl = ssl;
	c->code = DANCE_OK;
	if (!SSL_set_ex_data(ssl, idx_conn, c)) {
		free(c);
		return NULL;
	}
	return c;
}

struct dance_conn *
dance_conn_get(SSL *ssl)
{
	struct conn_priv *c = conn_of(ssl, 0);

	return c == NULL ? NULL : &c->pub;
}

static void
conn_set(struct conn_priv *c, enum dance_conn_state st,
	enum dance_code code, const char *reason)
{
	c->pub.state = st;
	c->code = code;
	if (reason != c->pub.reason)
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason), "%s",
			reason);
}

/* Keep answer a (caller's reference is transferred). */
static void
conn_keep_answer(struct conn_priv *c, struct dance_answer *a)
{
	if (c->pub.answer != NULL)
		dance_answer_unref(c->pub.answer);
	c->pub.answer = a;
}

/* Reason for a non-secure answer, as dance_match() words it. */
static void
dns_reason(const struct dance_answer *a, char *buf, size_t len)
{
	if (a->why[0] != '\0')
		(void)snprintf(buf, len, "%s: %.*s",
			dance_dns_status_str(a->status), 200, a->why);
	else
		(void)snprintf(buf, len, "%s",
			dance_dns_status_str(a->status));
}

/* The glue ends the handshake itself: tell the host, which has no
 * other place to log the name and reason (OpenSSL only says "bad
 * extension" or "certificate verify failed"). */
static int
conn_refuse(struct dance_tls_server *srv, struct conn_priv *c, int *al)
{
	if (srv != NULL && srv->cfg.on_refuse != NULL)
		srv->cfg.on_refuse(c->ssl, &c->pub, srv->cfg.on_answer_arg);
	if (al != NULL)
		*al = SSL_AD_HANDSHAKE_FAILURE;
	return 0;
}

/*
 * A lookup outcome arrived during the handshake (owned reference a):
 * arm OpenSSL's verifier for a secure set, otherwise leave the verdict
 * for later, or fail now when DANCE is required.  Returns the parse
 * callback's result.
 */
static int
conn_answered_in_handshake(struct dance_tls_server *srv,
	struct conn_priv *c, struct dance_answer *a, int *al)
{
	struct dance_error e;
	char why[256];
	int rc;

	conn_keep_answer(c, a);
	if (a->status == DANCE_DNS_SECURE && a->n > 0) {
		rc = dance_ssl_arm(c->ssl, a, &e);
		if (rc == DANCE_OK) {
			conn_set(c, DANCE_CONN_ARMED, DANCE_OK, "");
			return 1;
		}
		conn_set(c, DANCE_CONN_FAILED, (enum dance_code)rc, e.reason);
	} else {
		dns_reason(a, why, sizeof(why));
		if (!srv->cfg.required) {
			conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK, "");
			return 1;
		}
		conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_DNS, why);
	}
	if (!srv->cfg.required)
		return 1;
	return conn_refuse(srv, c, al);
}

/* Lookup callback (event mode): keep the answer, tell the host. */
static void
conn_lookup_done(void *arg, struct dance_answer *a)
{
	struct conn_priv *c = arg;
	struct dance_tls_server *srv = c->pub.srv;

	c->pub.lookup = NULL;
	dance_answer_ref(a);
	conn_keep_answer(c, a);
	conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK, "");
	/* Synchronous completion is visible to the caller on return. */
	if (!c->starting && srv != NULL && srv->cfg.on_answer != NULL)
		srv->cfg.on_answer(c->ssl, &c->pub, srv->cfg.on_answer_arg);
}

/* Event mode: start (or join) the lookup; PENDING or ANSWERED. */
static int
conn_start_lookup(struct dance_tls_server *srv, struct conn_priv *c,
	struct dance_error *err)
{
	struct dance_lookup *l;
	int done = 0;

	conn_set(c, DANCE_CONN_PENDING, DANCE_OK, "lookup pending");
	c->starting = 1;
	l = dance_resolver_lookup(srv->cfg.resolver, c->pub.name,
		conn_lookup_done, c, &done);
	c->starting = 0;
	if (done)
		return DANCE_OK;
	if (l == NULL) {
		conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_DNS, "TLSA lookup "
			"could not be started");
		return dance_err_set(err, DANCE_ERR_DNS, "%s", c->pub.reason);
	}
	c->pub.lookup = l;
	return DANCE_OK;
}

/* Threaded mode: bounded blocking lookup; ANSWERED. */
static void
conn_wait_lookup(struct dance_tls_server *srv, struct conn_priv *c)
{
	conn_keep_answer(c, dance_resolve_wait(srv->cfg.resolver,
		c->pub.name));
	conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK, "");
}

/* ------------------------------------------------------------------ */
/* Server callbacks                                                    */
/* ------------------------------------------------------------------ */

static int
srv_add_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char **out, size_t *outlen, X509 *x, size_t chainidx,
	int *al, void *add_arg)
{
	/* draft -13: extension_data is always opaque ClientName<0..255>;
	 * the request is a zero-length ClientName, one octet 00. */
	static const unsigned char zero_length_name[1] = { 0 };

	if ((context & SSL_EXT_TLS1_3_CERTIFICATE_REQUEST) == 0)
		return 0;
	*out = zero_length_name;
	*outlen = sizeof(zero_length_name);
	return 1;
}

static void
srv_free_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char *out, void *add_arg)
{
	/* Nothing allocated: srv_add_cb sends a static octet. */
}

static int
srv_reject(struct dance_tls_server *srv, struct conn_priv *c,
	const struct dance_error *e, int *al)
{
	conn_set(c, DANCE_CONN_REJECTED, e->code, e->reason);
	return conn_refuse(srv, c, al);
}

/* After the name passed the allow-list: cache, then DNS. */
static int
srv_name_accepted(struct dance_tls_server *srv, struct conn_priv *c,
	int *al)
{
	struct dance_answer *a;
	struct dance_error e;

	a = dance_resolver_cached(srv->cfg.resolver, c->pub.name);
	if (a != NULL)
		return conn_answered_in_handshake(srv, c, a, al);
	if (!srv->cfg.lookup_in_handshake) {
		conn_set(c, DANCE_CONN_PENDING, DANCE_OK, "lookup pending "
			"(host calls dance_conn_resolve)");
		return 1;
	}
	if (srv->threaded)
		return conn_answered_in_handshake(srv, c,
			dance_resolve_wait(srv->cfg.resolver, c->pub.name), al);
	if (conn_start_lookup(srv, c, &e) != DANCE_OK) {
		if (!srv->cfg.required)
			return 1;
		return conn_refuse(srv, c, al);
	}
	if (c->pub.state == DANCE_CONN_ANSWERED) {
		/* Answered synchronously (e.g. overload): decide now. */
		a = c->pub.answer;
		c->pub.answer = NULL;
		return conn_answered_in_handshake(srv, c, a, al);
	}
	return 1;
}

static int
srv_parse_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char *in, size_t inlen, X509 *x, size_t chainidx,
	int *al, void *parse_arg)
{
	struct dance_tls_server *srv;
	struct conn_priv *c;
	struct dance_error e;

	/* Only the leaf entry of the client's Certificate names it. */
	if ((context & SSL_EXT_TLS1_3_CERTIFICATE) == 0 || chainidx > 0)
		return 1;
	/* SNI may have switched the SSL_CTX; its attach holds the srv. */
	srv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), idx_srv);
	if (srv == NULL || (c = conn_of(ssl, 1)) == NULL) {
		*al = SSL_AD_INTERNAL_ERROR;
		return 0;
	}
	if (c->pub.state != DANCE_CONN_NONE) {
		/* A second Certificate (post-handshake auth) may not
		 * rename an already judged connection. */
		dance_err_set(&e, DANCE_ERR_PROTOCOL, "second dane_clientid "
			"on one connection");
		return srv_reject(srv, c, &e, al);
	}
	c->pub.srv = srv;
	if (dance_ext_parse(in, inlen, c->pub.name, &e) != DANCE_OK) {
		c->pub.name[0] = '\0';
		return srv_reject(srv, c, &e, al);
	}
	if (dance_policy_check(srv->cfg.policy, c->pub.name, &e) != DANCE_OK)
		return srv_reject(srv, c, &e, al);
	return srv_name_accepted(srv, c, al);
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

/*
 * A TLS 1.3 client presented a certificate without dane_clientid.  A
 * server that requires DANCE (and takes no legacy name) must abort with
 * handshake_failure (draft, Server Behavior).  TLS 1.2 cannot carry the
 * extension, so it is never refused here.  Returns 1 when refused.
 */
static int
verify_no_ext(SSL *ssl, struct conn_priv *c, X509_STORE_CTX *xs)
{
	struct dance_tls_server *srv;

	if (c != NULL && c->pub.state != DANCE_CONN_NONE)
		return 0;
	if (ssl == NULL || X509_STORE_CTX_get_error_depth(xs) != 0 ||
	    SSL_version(ssl) != TLS1_3_VERSION)
		return 0;
	/* SNI may have switched the SSL_CTX; its attach holds the srv. */
	srv = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), idx_srv);
	if (srv == NULL || !srv->cfg.refuse_no_ext)
		return 0;
	/* The conn carries the reason for on_refuse and the host; if it
	 * cannot be made, the handshake still fails. */
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	if (c == NULL && (c = conn_of(ssl, 1)) == NULL)
		return 1;
	c->pub.srv = srv;
	conn_set(c, DANCE_CONN_REJECTED, DANCE_ERR_PROTOCOL,
		"client sent no dane_clientid");
	(void)conn_refuse(srv, c, NULL);
	return 1;
}

int
dance_tls_verify_step(int ok, X509_STORE_CTX *xs)
{
	struct conn_priv *c;
	SSL *ssl;
	uint8_t u, s, mt;
	int required;

	ssl = X509_STORE_CTX_get_ex_data(xs,
		SSL_get_ex_data_X509_STORE_CTX_idx());
	c = conn_of(ssl, 0);
	if (verify_no_ext(ssl, c, xs))
		return 0;
	/* Not armed: OpenSSL's PKIX opinion is not DANCE's business; the
	 * host judges with dance_conn_verdict() after the handshake.  The
	 * error stays in SSL_get_verify_result() for hosts that care. */
	if (c == NULL || (c->pub.state != DANCE_CONN_ARMED &&
	    c->pub.state != DANCE_CONN_SUCCESS))
		return 1;
	required = c->pub.srv != NULL && c->pub.srv->cfg.required;
	if (!ok) {
		dance_verify_reason(X509_STORE_CTX_get_error(xs),
			X509_STORE_CTX_get_error_depth(xs), c->pub.reason,
			sizeof(c->pub.reason));
		c->pub.state = DANCE_CONN_FAILED;
		c->pub.usage = -1;
		c->code = DANCE_ERR_NOMATCH;
		if (!required)
			return 1;
		/* The draft wants handshake_failure; OpenSSL maps this
		 * error (and only this one) to it, not bad_certificate. */
		X509_STORE_CTX_set_error(xs,
			X509_V_ERR_APPLICATION_VERIFICATION);
		return conn_refuse(c->pub.srv, c, NULL);
	}
	if (c->pub.state == DANCE_CONN_ARMED &&
	    X509_STORE_CTX_get_error_depth(xs) == 0) {
		c->pub.state = DANCE_CONN_SUCCESS;
		c->pub.reason[0] = '\0';
		if (SSL_get0_dane_tlsa(ssl, &u, &s, &mt, NULL, NULL) >= 0)
			c->pub.usage = u;
	}
	return 1;
}

int
dance_tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	return dance_tls_verify_step(ok, xs);
}

/* ARMED after the handshake: what did the in-handshake verifier say?
 * (Reached only when the host's own callback skipped ours.) */
static int
verdict_armed(SSL *ssl, struct conn_priv *c)
{
	long v = SSL_get_verify_result(ssl);
	uint8_t u, s, mt;

	if (!SSL_is_init_finished(ssl)) {
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"handshake not finished");
		return DANCE_ERR_PROTOCOL;
	}
	if (v == X509_V_OK && SSL_get0_dane_tlsa(ssl, &u, &s, &mt, NULL,
	    NULL) >= 0) {
		conn_set(c, DANCE_CONN_SUCCESS, DANCE_OK, "");
		c->pub.usage = u;
		return DANCE_OK;
	}
	if (v != X509_V_OK)
		dance_verify_reason((int)v, -1, c->pub.reason,
			sizeof(c->pub.reason));
	else
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"DANE verification did not run");
	conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_NOMATCH, c->pub.reason);
	return DANCE_ERR_NOMATCH;
}

/* ANSWERED after the handshake: the post-handshake match, once. */
static int
verdict_answered(SSL *ssl, struct conn_priv *c)
{
	struct dance_tls_server *srv = c->pub.srv;
	struct dance_matcher *m;
	struct dance_match_result res;
	X509 *leaf;
	int rc;

	leaf = SSL_get0_peer_certificate(ssl);
	if (leaf == NULL && !SSL_is_init_finished(ssl)) {
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"handshake not finished");
		return DANCE_ERR_PROTOCOL;
	}
	m = srv == NULL ? NULL : srv->cfg.matcher != NULL ?
		srv->cfg.matcher : srv->own_matcher;
	if (leaf == NULL) {
		conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_PROTOCOL,
			"no client certificate");
		return DANCE_ERR_PROTOCOL;
	}
	rc = dance_match(m, c->pub.answer, leaf,
		SSL_get_peer_cert_chain(ssl), &res);
	if (rc == DANCE_OK) {
		conn_set(c, DANCE_CONN_SUCCESS, DANCE_OK, "");
		c->pub.usage = res.usage;
		return DANCE_OK;
	}
	conn_set(c, DANCE_CONN_FAILED, (enum dance_code)rc, res.reason);
	return rc;
}

int
dance_conn_verdict(SSL *ssl, struct dance_conn **out)
{
	struct conn_priv *c = conn_of(ssl, 1);
	uint8_t u, s, mt;

	if (out != NULL)
		*out = c == NULL ? NULL : &c->pub;
	if (c == NULL)
		return DANCE_ERR_NOMEM;
	switch (c->pub.state) {
	case DANCE_CONN_NONE:
		conn_set(c, DANCE_CONN_NONE, DANCE_ERR_PROTOCOL, "client sent "
			"no dane_clientid (TLS 1.2 or not a DANCE client)");
		return DANCE_ERR_PROTOCOL;
	case DANCE_CONN_PENDING:
		/* Not a verdict: the host waits for on_answer. */
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"lookup pending");
		return DANCE_ERR_DNS;
	case DANCE_CONN_ARMED:
		return verdict_armed(ssl, c);
	case DANCE_CONN_ANSWERED:
		return verdict_answered(ssl, c);
	case DANCE_CONN_SUCCESS:
		if (c->pub.usage < 0 &&
		    SSL_get0_dane_tlsa(ssl, &u, &s, &mt, NULL, NULL) >= 0)
			c->pub.usage = u;
		return DANCE_OK;
	case DANCE_CONN_REJECTED:
	case DANCE_CONN_FAILED:
		break;
	}
	return c->code != DANCE_OK ? (int)c->code : DANCE_ERR_INTERNAL;
}

int
dance_conn_resolve(SSL *ssl, struct dance_error *err)
{
	struct conn_priv *c = conn_of(ssl, 0);
	struct dance_tls_server *srv;
	struct dance_answer *a;

	if (c == NULL || c->pub.state == DANCE_CONN_NONE)
		return dance_err_set(err, DANCE_ERR_PROTOCOL, "client sent "
			"no dane_clientid");
	if (c->pub.state == DANCE_CONN_REJECTED)
		return dance_err_set(err, c->code, "%s", c->pub.reason);
	/* Answered, armed or judged already; or already in flight. */
	if (c->pub.state != DANCE_CONN_PENDING || c->pub.lookup != NULL)
		return DANCE_OK;
	if ((srv = c->pub.srv) == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "connection "
			"without DANCE server");
	if ((a = dance_resolver_cached(srv->cfg.resolver, c->pub.name))
	    != NULL) {
		conn_keep_answer(c, a);
		conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK, "");
		return DANCE_OK;
	}
	if (srv->threaded) {
		conn_wait_lookup(srv, c);
		return DANCE_OK;
	}
	return conn_start_lookup(srv, c, err);
}

/* ------------------------------------------------------------------ */
/* Server setup                                                        */
/* ------------------------------------------------------------------ */

struct dance_tls_server *
dance_tls_server_new(const struct dance_tls_server_cfg *cfg,
	struct dance_error *err)
{
	struct dance_tls_server *s;

	if (idx_ready(err) != DANCE_OK)
		return NULL;
	if (cfg == NULL || cfg->policy == NULL || cfg->resolver == NULL) {
		dance_err_set(err, DANCE_ERR_CONFIG, "DANCE server needs a "
			"policy and a resolver");
		return NULL;
	}
	if (dance_ext_type_check(cfg->ext_type == 0 ? DANCE_EXT_TYPE_DEFAULT :
	    cfg->ext_type, err) != DANCE_OK)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.ext_type == 0)
		s->cfg.ext_type = DANCE_EXT_TYPE_DEFAULT;
	s->threaded = dance_resolver_get_mode(cfg->resolver) ==
		DANCE_RESOLVER_THREADED;
	if (cfg->matcher == NULL &&
	    (s->own_matcher = dance_matcher_new(NULL, err)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
dance_tls_server_free(struct dance_tls_server *s)
{
	if (s == NULL)
		return;
	dance_matcher_free(s->own_matcher);
	free(s);
}

int
dance_tls_server_attach(struct dance_tls_server *s, SSL_CTX *ctx,
	int keep_verify_cb, struct dance_error *err)
{
	SSL_verify_cb cb;
	char eb[160];
	int mode;

	if (idx_ready(err) != DANCE_OK)
		return DANCE_ERR_TLS;
	if (s == NULL || ctx == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no server or "
			"SSL_CTX");
	if (SSL_CTX_get_ex_data(ctx, idx_srv) != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX already "
			"has a DANCE server attached");
	if (SSL_CTX_dane_enable(ctx) <= 0)
		return dance_err_set(err, DANCE_ERR_TLS, "SSL_CTX_dane_enable: "
			"%s", dance_ssl_err_text(eb, sizeof(eb)));
	if (SSL_CTX_add_custom_ext(ctx, s->cfg.ext_type, EXT_CONTEXT,
	    srv_add_cb, srv_free_cb, NULL, srv_parse_cb, NULL) != 1)
		return dance_err_set(err, DANCE_ERR_TLS, "cannot register "
			"extension 0x%04X (already registered?): %s",
			s->cfg.ext_type, dance_ssl_err_text(eb, sizeof(eb)));
	if (!SSL_CTX_set_ex_data(ctx, idx_srv, s))
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	/* Ask for a certificate; whether one is mandatory is the host's
	 * choice (its FAIL_IF_NO_PEER_CERT bit is kept). */
	/* A resumed session has no client Certificate, hence no
	 * dane_clientid: every connection must authenticate afresh. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	mode = SSL_CTX_get_verify_mode(ctx) | SSL_VERIFY_PEER;
	cb = keep_verify_cb ? SSL_CTX_get_verify_callback(ctx) :
		dance_tls_verify_cb;
	SSL_CTX_set_verify(ctx, mode, cb);
	return DANCE_OK;
}

/* ------------------------------------------------------------------ */
/* Client side                                                         */
/* ------------------------------------------------------------------ */

static int
cli_add_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char **out, size_t *outlen, X509 *x, size_t chainidx,
	int *al, void *add_arg)
{
	const struct tls_client *cl = add_arg;
	const struct cli_name *n;

	/* OpenSSL calls this for CT only when the server's
	 * CertificateRequest carried the extension; the name goes with
	 * the leaf entry only. */
	if ((context & SSL_EXT_TLS1_3_CERTIFICATE) == 0 || x == NULL ||
	    chainidx != 0)
		return 0;
	/* The connection's own name wins over the context's. */
	if ((n = SSL_get_ex_data(ssl, idx_cli_name)) == NULL)
		n = &cl->name;
	if (n->len == 0)
		return 0;	/* no name for this connection: send nothing */
	*out = n->enc;
	*outlen = n->len;
	return 1;
}

static int
cli_parse_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char *in, size_t inlen, X509 *x, size_t chainidx,
	int *al, void *parse_arg)
{
	if ((context & SSL_EXT_TLS1_3_CERTIFICATE_REQUEST) == 0) {
		*al = SSL_AD_UNSUPPORTED_EXTENSION;
		return 0;
	}
	/* A zero-length ClientName (draft -13), or the empty
	 * extension_data of older servers (the tls-clientid draft). */
	if (inlen == 0 || (inlen == 1 && in[0] == 0))
		return 1;
	*al = SSL_AD_DECODE_ERROR;
	return 0;
}

/* Check and encode a client name. */
static int
cli_name_make(const char *name, struct cli_name *n, struct dance_error *err)
{
	char lname[DANCE_NAME_MAX + 1];
	int rc;

	if ((rc = dance_name_check(name, strlen(name), 0, lname, err))
	    != DANCE_OK)
		return rc;
	if ((n->len = dance_ext_encode(lname, n->enc, sizeof(n->enc))) == 0)
		return dance_err_set(err, DANCE_ERR_NAME, "cannot encode "
			"name %s", lname);
	return DANCE_OK;
}

int
dance_tls_client_attach(SSL_CTX *ctx, unsigned ext_type, const char *name,
	struct dance_error *err)
{
	struct tls_client *cl;
	char eb[160];
	int rc;

	if ((rc = idx_ready(err)) != DANCE_OK)
		return rc;
	if (ctx == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no SSL_CTX");
	if (ext_type == 0)
		ext_type = DANCE_EXT_TYPE_DEFAULT;
	if ((rc = dance_ext_type_check(ext_type, err)) != DANCE_OK)
		return rc;
	if (SSL_CTX_get_ex_data(ctx, idx_client) != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX already "
			"has the DANCE client extension");
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	cl->ext_type = ext_type;
	/* No name: every connection brings its own (or sends none). */
	if (name != NULL && (rc = cli_name_make(name, &cl->name, err))
	    != DANCE_OK) {
		free(cl);
		return rc;
	}
	/* ctx owns cl from here (freed with it). */
	if (!SSL_CTX_set_ex_data(ctx, idx_client, cl)) {
		free(cl);
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	}
	if (SSL_CTX_add_custom_ext(ctx, ext_type, EXT_CONTEXT, cli_add_cb,
	    NULL, cl, cli_parse_cb, cl) != 1) {
		(void)SSL_CTX_set_ex_data(ctx, idx_client, NULL);
		free(cl);
		return dance_err_set(err, DANCE_ERR_TLS, "cannot register "
			"extension 0x%04X: %s", ext_type,
			dance_ssl_err_text(eb, sizeof(eb)));
	}
	return DANCE_OK;
}

int
dance_tls_client_set_name(SSL *ssl, const char *name,
	struct dance_error *err)
{
	struct cli_name *n, *old;
	int rc;

	if ((rc = idx_ready(err)) != DANCE_OK)
		return rc;
	if (ssl == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no SSL");
	n = NULL;
	if (name != NULL) {
		if ((n = malloc(sizeof(*n))) == NULL)
			return dance_err_set(err, DANCE_ERR_NOMEM,
				"out of memory");
		if ((rc = cli_name_make(name, n, err)) != DANCE_OK) {
			free(n);
			return rc;
		}
	}
	/* Without the extension on the context, a name would silently
	 * never be sent. */
	if (SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), idx_client) == NULL) {
		free(n);
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX has no "
			"DANCE client extension (dance_tls_client_attach)");
	}
	old = SSL_get_ex_data(ssl, idx_cli_name);
	if (!SSL_set_ex_data(ssl, idx_cli_name, n)) {
		free(n);
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	}
	free(old);
	return DANCE_OK;
}
