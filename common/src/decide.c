/*
 * decide.c -- the DANCE decision for a server connection, owned by the
 * core so that every host reaches the same outcome for the same input:
 *
 *   name source (extension | san | identity, in the configured order)
 *     -> allow-list (dance_policy_match: no DNS for other names)
 *     -> waiting budget (global and per allow-list entry)
 *     -> cache, else lookup (event: async + on_answer; threaded:
 *        bounded blocking wait)
 *     -> match (in the handshake when armed, else post-handshake)
 *     -> status (SUCCESS / PENDING / NONE / FAILED) and reason word.
 *
 * Hosts call dance_conn_decide() and do their I/O with the outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match_int.h"
#include "tls_int.h"

/* The waiting budget (budget.c), or FAILED/overload. */
static int
budget_enter(struct dance_tls_server *srv, struct conn_priv *c)
{
	char why[256];
	int rc;

	if ((rc = dance_budget_enter(srv, c, why, sizeof(why))) == DANCE_ERR_OVERLOAD)
		dance_mx_cap_refusal(srv);
	if (rc != DANCE_OK)
		dance_conn_set(c, DANCE_CONN_FAILED, (enum dance_code)rc,
			dance_reason_of_code((enum dance_code)rc), why);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Lookup                                                              */
/* ------------------------------------------------------------------ */

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

/* Lookup callback (event mode): keep the answer, tell the host. */
static void
conn_lookup_done(void *arg, struct dance_answer *a)
{
	struct conn_priv *c = arg;
	struct dance_tls_server *srv = c->pub.srv;

	c->pub.lookup = NULL;
	dance_mx_wait_end(c);
	dance_budget_leave(srv, c);
	dance_answer_ref(a);
	dance_conn_keep_answer(c, a);
	dance_conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK, DANCE_REASON_OK, "");
	/* Synchronous completion is visible to the caller on return. */
	if (!c->starting && srv != NULL && srv->cfg.on_answer != NULL)
		srv->cfg.on_answer(c->ssl, &c->pub, srv->cfg.on_answer_arg);
}

/*
 * Cache, else the waiting budget, then DNS.  Leaves c ANSWERED,
 * PENDING with a lookup in flight (event mode), or FAILED (over a cap,
 * lookup could not start).
 */
static void
conn_lookup(struct dance_tls_server *srv, struct conn_priv *c)
{
	struct dance_answer *a;
	struct dance_lookup *l;
	int done = 0;

	if ((a = dance_resolver_cached(srv->cfg.resolver, c->pub.name))
	    != NULL) {
		dance_mx_cache_hit(c, a);
		dance_conn_keep_answer(c, a);
		dance_conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK,
			DANCE_REASON_OK, "");
		return;
	}
	if (budget_enter(srv, c) != DANCE_OK)
		return;
	dance_mx_wait_start(c);
	if (srv->threaded) {
		a = dance_resolve_wait(srv->cfg.resolver, c->pub.name);
		dance_mx_wait_end(c);
		dance_budget_leave(srv, c);
		dance_conn_keep_answer(c, a);
		dance_conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK,
			DANCE_REASON_OK, "");
		return;
	}
	dance_conn_set(c, DANCE_CONN_PENDING, DANCE_OK, DANCE_REASON_OK,
		"lookup pending");
	c->starting = 1;
	l = dance_resolver_lookup(srv->cfg.resolver, c->pub.name,
		conn_lookup_done, c, &done);
	c->starting = 0;
	if (done)
		return;
	if (l == NULL) {
		dance_mx_wait_end(c);
		dance_budget_leave(srv, c);
		dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_DNS,
			DANCE_REASON_DNS_ERROR, "TLSA lookup could not be "
			"started");
		return;
	}
	c->pub.lookup = l;
}

int
dance_conn_refuse(struct dance_tls_server *srv, struct conn_priv *c,
	int *al)
{
	dance_mx_refused(c);
	if (srv != NULL && srv->cfg.on_refuse != NULL)
		srv->cfg.on_refuse(c->ssl, &c->pub, srv->cfg.on_answer_arg);
	if (al != NULL)
		*al = SSL_AD_HANDSHAKE_FAILURE;
	return 0;
}

/*
 * The answer is in during the handshake: arm OpenSSL's verifier for a
 * secure set, otherwise leave the verdict for later, or fail now when
 * DANCE is required.  Returns the parse callback's result.
 */
static int
answered_in_handshake(struct dance_tls_server *srv, struct conn_priv *c,
	int *al)
{
	const struct dance_answer *a = c->pub.answer;
	struct dance_error e;
	char why[256];
	int rc;

	if (a->status == DANCE_DNS_SECURE && a->n > 0) {
		rc = dance_ssl_arm_notes(c->ssl, a, c->notes,
			sizeof(c->notes), &e);
		if (rc == DANCE_OK) {
			dance_conn_set(c, DANCE_CONN_ARMED, DANCE_OK,
				DANCE_REASON_OK, "");
			return 1;
		}
		dance_conn_set(c, DANCE_CONN_FAILED, (enum dance_code)rc,
			dance_reason_of_code((enum dance_code)rc), e.reason);
	} else {
		if (!srv->cfg.required)
			return 1;
		dns_reason(a, why, sizeof(why));
		dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_DNS,
			dance_reason_of_dns(a->status), why);
	}
	if (!srv->cfg.required)
		return 1;
	return dance_conn_refuse(srv, c, al);
}

int
dance_decide_in_handshake(struct dance_tls_server *srv, struct conn_priv *c,
	int *al)
{
	struct dance_answer *a;

	if (!srv->cfg.lookup_in_handshake) {
		/* Only a cache hit is used now; decide does the rest. */
		a = dance_resolver_cached(srv->cfg.resolver, c->pub.name);
		if (a == NULL) {
			dance_conn_set(c, DANCE_CONN_PENDING, DANCE_OK,
				DANCE_REASON_OK, "lookup pending (host calls "
				"dance_conn_decide)");
			return 1;
		}
		dance_mx_cache_hit(c, a);
		dance_conn_keep_answer(c, a);
		dance_conn_set(c, DANCE_CONN_ANSWERED, DANCE_OK,
			DANCE_REASON_OK, "");
	} else {
		conn_lookup(srv, c);
	}
	switch (c->pub.state) {
	case DANCE_CONN_ANSWERED:
		return answered_in_handshake(srv, c, al);
	case DANCE_CONN_FAILED:
		/* Over a cap, or the lookup could not start. */
		return srv->cfg.required ? dance_conn_refuse(srv, c, al) : 1;
	default:
		return 1;
	}
}

/* ------------------------------------------------------------------ */
/* Legacy name sources                                                 */
/* ------------------------------------------------------------------ */

/* Append "; " and a formatted note to buf. */
static void
why_add(char *buf, size_t len, const char *fmt, const char *a,
	const char *b)
{
	size_t used = strlen(buf);

	if (used > 0 && used + 2 < len) {
		memcpy(buf + used, "; ", 3);
		used += 2;
	}
	if (used + 1 < len)
		(void)snprintf(buf + used, len - used, fmt, a, b);
}

/* The identity, when it is a name the allow-list admits. */
static int
source_identity(struct dance_tls_server *srv, struct conn_priv *c,
	char *name, char *why, size_t whylen, int *disallowed)
{
	struct dance_error e;
	char shown[68];

	if (c->identity == NULL || c->identity[0] == '\0') {
		why_add(why, whylen, "identity: none%s%s", "", "");
		return 0;
	}
	if (dance_name_check(c->identity, strlen(c->identity), 0, name, &e)
	    != DANCE_OK) {
		/* the client's bytes, escaped: they end up in logs */
		why_add(why, whylen, "identity \"%s\": %s",
			dance_escape(c->identity, strlen(c->identity), shown,
			sizeof(shown)), e.reason);
		return 0;
	}
	if (dance_policy_match(srv->cfg.policy, name, &c->entry, &e)
	    != DANCE_OK) {
		*disallowed = 1;
		why_add(why, whylen, "identity %s: %s", name, e.reason);
		return 0;
	}
	return 1;
}

/* The first SAN dNSName the allow-list admits. */
static int
source_san(struct dance_tls_server *srv, struct conn_priv *c, X509 *leaf,
	char *name, char *why, size_t whylen, int *disallowed)
{
	struct dance_error e;

	if (dance_cert_san_name(leaf, srv->cfg.policy, name, &e) != DANCE_OK) {
		if (e.code == DANCE_ERR_NOT_ALLOWED)
			*disallowed = 1;
		why_add(why, whylen, "SAN: %s%s", e.reason, "");
		return 0;
	}
	return dance_policy_match(srv->cfg.policy, name, &c->entry, NULL) ==
		DANCE_OK;
}

/*
 * A client without dane_clientid: its name from the legacy sources, in
 * the configured order.  Leaves c PENDING with name, source and entry,
 * or NONE with the reason.
 */
static void
decide_sources(struct dance_tls_server *srv, struct conn_priv *c,
	X509 *leaf)
{
	char name[DANCE_NAME_MAX + 1], why[256];
	int disallowed = 0, found = 0;
	unsigned i;

	c->sources_tried = 1;
	why[0] = '\0';
	if (leaf == NULL) {
		dance_conn_set(c, DANCE_CONN_NONE, DANCE_ERR_PROTOCOL,
			DANCE_REASON_NO_CERT, "no client certificate");
		return;
	}
	for (i = 0; i < srv->cfg.sources.n && !found; i++) {
		switch (srv->cfg.sources.src[i]) {
		case DANCE_SRC_EXTENSION:
			why_add(why, sizeof(why), "extension: not sent%s%s",
				SSL_session_reused(c->ssl) ? " (resumed "
				"session)" : "", "");
			break;
		case DANCE_SRC_SAN:
			found = source_san(srv, c, leaf, name, why,
				sizeof(why), &disallowed);
			break;
		case DANCE_SRC_IDENTITY:
			found = source_identity(srv, c, name, why,
				sizeof(why), &disallowed);
			break;
		default:
			break;
		}
		if (found)
			c->source = srv->cfg.sources.src[i];
	}
	if (found) {
		memcpy(c->pub.name, name, sizeof(c->pub.name));
		dance_conn_set(c, DANCE_CONN_PENDING, DANCE_OK,
			DANCE_REASON_OK, "");
		return;
	}
	c->entry = NULL;
	/* Required, extension only: the same refusal as in the handshake
	 * (verify_no_ext), for hosts whose own verify path gets here. */
	if (srv->cfg.refuse_no_ext)
		dance_conn_reject_no_ext(c, c->ssl);
	else if (srv->cfg.sources.n <= 1 && srv->use_ext)
		dance_conn_set(c, DANCE_CONN_NONE, DANCE_ERR_PROTOCOL,
			DANCE_REASON_NO_EXT, SSL_session_reused(c->ssl) ?
			"resumed session, no dane_clientid" :
			"client sent no dane_clientid (TLS 1.2 or not a "
			"DANCE client)");
	else
		dance_conn_set(c, DANCE_CONN_NONE, DANCE_ERR_PROTOCOL,
			disallowed ? DANCE_REASON_NOT_ALLOWED :
			DANCE_REASON_NO_NAME, why);
}

/* ------------------------------------------------------------------ */
/* Verdict                                                             */
/* ------------------------------------------------------------------ */

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
		dance_conn_set(c, DANCE_CONN_SUCCESS, DANCE_OK,
			DANCE_REASON_OK, "");
		c->pub.usage = u;
		return DANCE_OK;
	}
	if (v != X509_V_OK)
		dance_verify_reason((int)v, -1, c->pub.reason,
			sizeof(c->pub.reason));
	else
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"DANE verification did not run");
	dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_NOMATCH,
		DANCE_REASON_NOMATCH, c->pub.reason);
	return DANCE_ERR_NOMATCH;
}

/* The match of leaf (and chain) against the kept answer, once. */
static int
verdict_match(struct conn_priv *c, X509 *leaf, STACK_OF(X509) *chain)
{
	struct dance_tls_server *srv = c->pub.srv;
	const struct dance_answer *a = c->pub.answer;
	struct dance_matcher *m;
	struct dance_match_result res;
	enum dance_reason why;
	int rc;

	if (leaf == NULL && !SSL_is_init_finished(c->ssl)) {
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"handshake not finished");
		return DANCE_ERR_PROTOCOL;
	}
	if (leaf == NULL) {
		dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_PROTOCOL,
			DANCE_REASON_NO_CERT, "no client certificate");
		return DANCE_ERR_PROTOCOL;
	}
	m = srv == NULL ? NULL : srv->cfg.matcher != NULL ?
		srv->cfg.matcher : srv->own_matcher;
	rc = dance_match(m, a, leaf, chain, &res);
	memcpy(c->notes, res.skipped, sizeof(c->notes));
	if (rc == DANCE_OK) {
		dance_conn_set(c, DANCE_CONN_SUCCESS, DANCE_OK,
			DANCE_REASON_OK, "");
		c->pub.usage = res.usage;
		return DANCE_OK;
	}
	if (rc == DANCE_ERR_DNS && a != NULL && a->status != DANCE_DNS_SECURE)
		why = dance_reason_of_dns(a->status);
	else if (rc == DANCE_ERR_DNS)
		why = DANCE_REASON_NODATA;	/* secure, no records */
	else
		why = dance_reason_of_code((enum dance_code)rc);
	dance_conn_set(c, DANCE_CONN_FAILED, (enum dance_code)rc, why,
		res.reason);
	return rc;
}

enum dance_status
dance_conn_decide(SSL *ssl, X509_STORE_CTX *xs)
{
	struct dance_tls_server *srv;
	struct conn_priv *c;
	X509 *leaf;
	STACK_OF(X509) *chain;
	uint8_t u, s, mt;

	if ((c = dance_conn_priv(ssl, 1)) == NULL)
		return DANCE_STATUS_FAILED;	/* out of memory */
	if (c->pub.srv == NULL)
		c->pub.srv = dance_tls_server_of(ssl);
	if ((srv = c->pub.srv) == NULL) {
		dance_conn_set(c, DANCE_CONN_FAILED, DANCE_ERR_CONFIG,
			DANCE_REASON_INTERNAL, "no DANCE server attached to "
			"this SSL_CTX");
		return DANCE_STATUS_FAILED;
	}
	if (xs != NULL) {
		leaf = X509_STORE_CTX_get0_cert(xs);
		chain = X509_STORE_CTX_get0_untrusted(xs);
	} else {
		leaf = SSL_get0_peer_certificate(ssl);
		chain = SSL_get_peer_cert_chain(ssl);
	}
	if (c->pub.state == DANCE_CONN_NONE) {
		if (c->sources_tried)
			return DANCE_STATUS_NONE;
		decide_sources(srv, c, leaf);
	}
	if (c->pub.state == DANCE_CONN_PENDING && c->pub.lookup == NULL)
		conn_lookup(srv, c);
	switch (c->pub.state) {
	case DANCE_CONN_ARMED:
		/* In a verify callback the handshake's own DANE check has
		 * not run yet: match the kept answer directly. */
		if (xs != NULL)
			(void)verdict_match(c, leaf, chain);
		else
			(void)verdict_armed(ssl, c);
		break;
	case DANCE_CONN_ANSWERED:
		(void)verdict_match(c, leaf, chain);
		break;
	case DANCE_CONN_SUCCESS:
		if (c->pub.usage < 0 &&
		    SSL_get0_dane_tlsa(ssl, &u, &s, &mt, NULL, NULL) >= 0)
			c->pub.usage = u;
		break;
	default:
		break;
	}
	dance_mx_verdict(c);
	return dance_conn_status(&c->pub);
}

/* ------------------------------------------------------------------ */
/* Older interface                                                     */
/* ------------------------------------------------------------------ */

int
dance_conn_verdict(SSL *ssl, struct dance_conn **out)
{
	struct conn_priv *c = dance_conn_priv(ssl, 1);
	X509 *leaf;
	uint8_t u, s, mt;

	if (out != NULL)
		*out = c == NULL ? NULL : &c->pub;
	if (c == NULL)
		return DANCE_ERR_NOMEM;
	switch (c->pub.state) {
	case DANCE_CONN_NONE:
		dance_conn_set(c, DANCE_CONN_NONE, DANCE_ERR_PROTOCOL,
			DANCE_REASON_NO_EXT, "client sent no dane_clientid "
			"(TLS 1.2 or not a DANCE client)");
		return DANCE_ERR_PROTOCOL;
	case DANCE_CONN_PENDING:
		/* Not a verdict: the host waits for on_answer. */
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason),
			"lookup pending");
		return DANCE_ERR_DNS;
	case DANCE_CONN_ARMED:
		return verdict_armed(ssl, c);
	case DANCE_CONN_ANSWERED:
		leaf = SSL_get0_peer_certificate(ssl);
		return verdict_match(c, leaf, SSL_get_peer_cert_chain(ssl));
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
	struct conn_priv *c = dance_conn_priv(ssl, 0);

	if (c == NULL || c->pub.state == DANCE_CONN_NONE)
		return dance_err_set(err, DANCE_ERR_PROTOCOL, "client sent "
			"no dane_clientid");
	if (c->pub.state == DANCE_CONN_REJECTED)
		return dance_err_set(err, c->code, "%s", c->pub.reason);
	/* Answered, armed or judged already; or already in flight. */
	if (c->pub.state != DANCE_CONN_PENDING || c->pub.lookup != NULL)
		return DANCE_OK;
	if (c->pub.srv == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "connection "
			"without DANCE server");
	conn_lookup(c->pub.srv, c);
	if (c->pub.state == DANCE_CONN_FAILED)
		return dance_err_set(err, c->code, "%s", c->pub.reason);
	return DANCE_OK;
}
