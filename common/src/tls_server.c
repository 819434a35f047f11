/*
 * tls_server.c -- server side of the TLS glue: the dane_clientid
 * extension callbacks, the verify step, and attaching to SSL_CTXs.
 *
 * Server flow (TLS 1.3 only: a TLS 1.2 CertificateRequest carries no
 * extensions, so such clients simply stay in state NONE; a TLS 1.3
 * client without the extension is NONE too, or fails the handshake
 * under refuse_no_ext):
 *   CertificateRequest  add_cb sends dane_clientid with a zero-length
 *                       ClientName (one octet 00);
 *   client Certificate  parse_cb (leaf entry) checks syntax and the
 *                       allow-list (failure: handshake_failure, no DNS,
 *                       unless defer_refuse), then (decide.c)
 *                         cache hit, secure   -> arm OpenSSL DANE: ARMED
 *                         cache hit, other    -> ANSWERED
 *                         miss, event mode    -> start lookup: PENDING
 *                         miss, threaded mode -> bounded wait, as a hit;
 *   chain verification  verify callback: for ARMED, OpenSSL's verdict
 *                       is the DANE verdict (SUCCESS / FAILED);
 *   after handshake     dance_conn_decide() (decide.c): legacy name
 *                       sources, lookup, post-handshake match.
 *
 * OpenSSL runs the parse callback before chain verification, so arming
 * DANE there makes the handshake itself enforce the TLSA match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "match_int.h"
#include "tls_int.h"

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

/* A bad or disallowed name: no DNS.  The handshake ends here unless
 * the host decides later (defer_refuse). */
static int
srv_reject(struct dance_tls_server *srv, struct conn_priv *c,
	const struct dance_error *e, int *al)
{
	dance_conn_set(c, DANCE_CONN_REJECTED, e->code,
		dance_reason_of_code(e->code), e->reason);
	if (srv->cfg.defer_refuse)
		return 1;
	return dance_conn_refuse(srv, c, al);
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
	srv = dance_tls_server_of(ssl);
	if (srv == NULL || (c = dance_conn_priv(ssl, 1)) == NULL) {
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
	c->source = DANCE_SRC_EXTENSION;
	if (dance_ext_parse(in, inlen, c->pub.name, &e) != DANCE_OK) {
		c->pub.name[0] = '\0';
		return srv_reject(srv, c, &e, al);
	}
	if (dance_policy_match(srv->cfg.policy, c->pub.name, &c->entry, &e)
	    != DANCE_OK)
		return srv_reject(srv, c, &e, al);
	return dance_decide_in_handshake(srv, c, al);
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

/*
 * A client presented a certificate without dane_clientid.  A server
 * that requires DANCE (and takes no legacy name) must abort with
 * handshake_failure (draft, Server Behavior); a TLS 1.2 client cannot
 * send the extension at all, and such a server must not negotiate a
 * version below TLS 1.3 (draft, Security Considerations).  The version
 * is checked here, after SNI chose the server: the SSL_CTX's minimum
 * version only applies when the server was chosen without SNI.
 * Returns 1 when refused.
 */
static int
verify_no_ext(SSL *ssl, struct conn_priv *c, X509_STORE_CTX *xs)
{
	struct dance_tls_server *srv;

	if (c != NULL && c->pub.state != DANCE_CONN_NONE)
		return 0;
	if (ssl == NULL || X509_STORE_CTX_get_error_depth(xs) != 0)
		return 0;
	srv = dance_tls_server_of(ssl);
	if (srv == NULL || !srv->cfg.refuse_no_ext)
		return 0;
	/* The conn carries the reason for on_refuse and the host; if it
	 * cannot be made, the handshake still fails. */
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	if (c == NULL && (c = dance_conn_priv(ssl, 1)) == NULL)
		return 1;
	c->pub.srv = srv;
	dance_conn_reject_no_ext(c, ssl);
	(void)dance_conn_refuse(srv, c, NULL);
	return 1;
}

void
dance_conn_reject_no_ext(struct conn_priv *c, SSL *ssl)
{
	int tls13 = SSL_version(ssl) >= TLS1_3_VERSION;

	dance_conn_set(c, DANCE_CONN_REJECTED, DANCE_ERR_PROTOCOL,
		tls13 ? DANCE_REASON_NO_EXT : DANCE_REASON_PROTOCOL,
		tls13 ? "client sent no dane_clientid" : "client negotiated "
		"a version below TLS 1.3, which cannot carry dane_clientid");
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
	c = dance_conn_priv(ssl, 0);
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
		dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_NOMATCH,
			DANCE_REASON_NOMATCH, c->pub.reason);
		c->pub.usage = -1;
		if (!required)
			return 1;
		/* The draft wants handshake_failure; OpenSSL maps this
		 * error (and only this one) to it, not bad_certificate. */
		X509_STORE_CTX_set_error(xs,
			X509_V_ERR_APPLICATION_VERIFICATION);
		return dance_conn_refuse(c->pub.srv, c, NULL);
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

/* ------------------------------------------------------------------ */
/* Server setup                                                        */
/* ------------------------------------------------------------------ */

/* n == 0 means the extension only; otherwise each source once. */
static int
sources_check(struct dance_tls_server_cfg *cfg, int *use_ext,
	struct dance_error *err)
{
	unsigned i, j;

	if (cfg->sources.n == 0) {
		cfg->sources.n = 1;
		cfg->sources.src[0] = DANCE_SRC_EXTENSION;
	}
	if (cfg->sources.n > DANCE_SRC_MAX)
		return dance_err_set(err, DANCE_ERR_CONFIG, "more than %d "
			"name sources", DANCE_SRC_MAX);
	*use_ext = 0;
	for (i = 0; i < cfg->sources.n; i++) {
		if (cfg->sources.src[i] < DANCE_SRC_EXTENSION ||
		    cfg->sources.src[i] > DANCE_SRC_MAX)
			return dance_err_set(err, DANCE_ERR_CONFIG, "unknown "
				"name source %d", (int)cfg->sources.src[i]);
		for (j = 0; j < i; j++) {
			if (cfg->sources.src[j] == cfg->sources.src[i])
				return dance_err_set(err, DANCE_ERR_CONFIG,
					"name source %s given twice",
					dance_name_source_str(
					cfg->sources.src[i]));
		}
		if (cfg->sources.src[i] == DANCE_SRC_EXTENSION)
			*use_ext = 1;
	}
	return DANCE_OK;
}

struct dance_tls_server *
dance_tls_server_new(const struct dance_tls_server_cfg *cfg,
	struct dance_error *err)
{
	struct dance_tls_server *s;

	if (dance_tls_idx_ready(err) != DANCE_OK)
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
	if (sources_check(&s->cfg, &s->use_ext, err) != DANCE_OK) {
		free(s);
		return NULL;
	}
	s->threaded = dance_resolver_get_mode(cfg->resolver) ==
		DANCE_RESOLVER_THREADED;
	if (cfg->matcher == NULL &&
	    (s->own_matcher = dance_matcher_new(NULL, err)) == NULL) {
		free(s);
		return NULL;
	}
	(void)pthread_mutex_init(&s->budget_mu, NULL);
	return s;
}

void
dance_tls_server_free(struct dance_tls_server *s)
{
	if (s == NULL)
		return;
	dance_matcher_free(s->own_matcher);
	(void)pthread_mutex_destroy(&s->budget_mu);
	free(s->slots);
	free(s);
}

int
dance_tls_server_attach(struct dance_tls_server *s, SSL_CTX *ctx,
	int keep_verify_cb, struct dance_error *err)
{
	SSL_verify_cb cb;
	char eb[160];
	int mode;

	if (dance_tls_idx_ready(err) != DANCE_OK)
		return DANCE_ERR_TLS;
	if (s == NULL || ctx == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no server or "
			"SSL_CTX");
	if (SSL_CTX_get_ex_data(ctx, dance_tls_idx.srv) != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX already "
			"has a DANCE server attached");
	if (SSL_CTX_dane_enable(ctx) <= 0)
		return dance_err_set(err, DANCE_ERR_TLS, "SSL_CTX_dane_enable: "
			"%s", dance_ssl_err_text(eb, sizeof(eb)));
	/* Without "extension" among the sources, do not ask for it. */
	if (s->use_ext && SSL_CTX_add_custom_ext(ctx, s->cfg.ext_type,
	    DANCE_EXT_CONTEXT, srv_add_cb, srv_free_cb, NULL, srv_parse_cb,
	    NULL) != 1)
		return dance_err_set(err, DANCE_ERR_TLS, "cannot register "
			"extension 0x%04X (already registered?): %s",
			s->cfg.ext_type, dance_ssl_err_text(eb, sizeof(eb)));
	if (!SSL_CTX_set_ex_data(ctx, dance_tls_idx.srv, s))
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	/* Ask for a certificate; whether one is mandatory is the host's
	 * choice (its FAIL_IF_NO_PEER_CERT bit is kept). */
	/* A resumed session has no client Certificate, hence no
	 * dane_clientid: every connection must authenticate afresh. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	mode = SSL_CTX_get_verify_mode(ctx) | SSL_VERIFY_PEER;
	/* Required, extension only: no TLS 1.2, and no handshake without
	 * a certificate (a TLS 1.3 client without one gets OpenSSL's
	 * certificate_required alert: OpenSSL 3.0 has no hook between
	 * an empty Certificate and its own alert). */
	if (s->cfg.refuse_no_ext) {
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
			return dance_err_set(err, DANCE_ERR_TLS, "cannot "
				"require TLS 1.3: %s",
				dance_ssl_err_text(eb, sizeof(eb)));
	}
	cb = keep_verify_cb ? SSL_CTX_get_verify_callback(ctx) :
		dance_tls_verify_cb;
	SSL_CTX_set_verify(ctx, mode, cb);
	return DANCE_OK;
}

