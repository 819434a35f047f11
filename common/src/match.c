/*
 * match.c -- match a client certificate against a TLSA RRset with
 * OpenSSL's DANE implementation (RFC 6698, RFC 7671).
 *
 * OpenSSL does the actual work: the TLSA records are loaded into a
 * (scratch or live) SSL with SSL_dane_tlsa_add(), and X509_verify_cert()
 * with that SSL's DANE state attached decides.  That gives us, for free
 * and as OpenSSL implements them:
 *   - DANE-EE(3) at depth 0: no name check (with
 *     DANE_FLAG_NO_DANE_EE_NAMECHECKS), no validity dates, no chain;
 *   - DANE-TA(2): chain to the matched issuer, dates, name in SAN;
 *   - PKIX-TA(0) / PKIX-EE(1): chain to the matcher's CA store as well;
 *   - digest agility (RFC 7671 section 9): per usage and selector only
 *     the strongest matching type present is used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "dance_int.h"
#include "match_int.h"

struct dance_matcher {
	SSL_CTX *ctx;		/* DANE-enabled, for scratch SSLs */
	X509_STORE *store;	/* CA store for PKIX usages, maybe empty */
};

struct dance_matcher *
dance_matcher_new(const char *ca_file, struct dance_error *err)
{
	struct dance_matcher *m;
	char eb[160];

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if ((m->ctx = SSL_CTX_new(TLS_method())) == NULL ||
	    SSL_CTX_dane_enable(m->ctx) <= 0 ||
	    (m->store = X509_STORE_new()) == NULL) {
		dance_err_set(err, DANCE_ERR_TLS, "matcher setup: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
		dance_matcher_free(m);
		return NULL;
	}
	if (ca_file != NULL && X509_STORE_load_file(m->store, ca_file) != 1) {
		dance_err_set(err, DANCE_ERR_CONFIG, "cannot load CA file "
			"%s: %s", ca_file, dance_ssl_err_text(eb, sizeof(eb)));
		dance_matcher_free(m);
		return NULL;
	}
	return m;
}

void
dance_matcher_free(struct dance_matcher *m)
{
	if (m == NULL)
		return;
	SSL_CTX_free(m->ctx);
	X509_STORE_free(m->store);
	free(m);
}

/* Only a secure, non-empty TLSA set can authenticate. */
static int
answer_usable(const struct dance_answer *a, struct dance_error *err)
{
	if (a == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no answer");
	if (a->status != DANCE_DNS_SECURE) {
		if (a->why[0] != '\0')
			return dance_err_set(err, DANCE_ERR_DNS, "%s: %.*s",
				dance_dns_status_str(a->status), 200, a->why);
		return dance_err_set(err, DANCE_ERR_DNS, "%s",
			dance_dns_status_str(a->status));
	}
	if (a->n == 0 || a->rr == NULL)
		return dance_err_set(err, DANCE_ERR_DNS, "secure answer "
			"without TLSA records");
	return DANCE_OK;
}

/* Append "u s m: why" for record t, unusable to OpenSSL, to notes. */
static void
note_unusable(const struct dance_tlsa *t, char *notes, size_t len)
{
	const char *why = ERR_reason_error_string(ERR_peek_last_error());
	size_t used = strlen(notes);

	if (used + 1 >= len)
		return;
	(void)snprintf(notes + used, len - used, "%s%u %u %u: %s",
		used > 0 ? "; " : "", t->usage, t->selector, t->mtype,
		why != NULL ? why : "unusable");
}

/*
 * Enable DANE for a->name on ssl and load the records.  Unusable
 * records (unknown usage, selector or matching type, unparsable full
 * data) are skipped as RFC 7671 wants, their reasons go to notes (may
 * be NULL); none usable is a non-match.
 */
static int
dane_load(SSL *ssl, const struct dance_answer *a, char *notes,
	size_t noteslen, struct dance_error *err)
{
	const struct dance_tlsa *t;
	size_t i, usable = 0;
	char eb[160];
	int r;

	if (notes != NULL && noteslen > 0)
		notes[0] = '\0';
	if (SSL_dane_enable(ssl, a->name) <= 0)
		return dance_err_set(err, DANCE_ERR_TLS, "SSL_dane_enable: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	/* RFC 7671 5.1: DANE-EE matches the key, not a name. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	/* DANE-TA / PKIX: the client's name itself must be a SAN dNSName
	 * (draft-ietf-dance-client-auth): no wildcards, no CN fallback. */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_WILDCARDS |
		X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	for (i = 0; i < a->n; i++) {
		t = &a->rr[i];
		ERR_clear_error();
		r = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype,
			t->data, t->len);
		if (r < 0)
			return dance_err_set(err, DANCE_ERR_TLS,
				"SSL_dane_tlsa_add: %s",
				dance_ssl_err_text(eb, sizeof(eb)));
		if (r > 0)
			usable++;
		else if (notes != NULL && noteslen > 0)
			note_unusable(t, notes, noteslen);
	}
	/* The skipped records' reasons are in notes now. */
	ERR_clear_error();
	if (usable == 0)
		return dance_err_set(err, DANCE_ERR_NOMATCH, "no usable TLSA "
			"records (%zu record%s, none OpenSSL can use)", a->n,
			a->n == 1 ? "" : "s");
	return DANCE_OK;
}

int
dance_ssl_arm_notes(SSL *ssl, const struct dance_answer *a, char *notes,
	size_t noteslen, struct dance_error *err)
{
	int rc;

	if (ssl == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no SSL");
	if ((rc = answer_usable(a, err)) != DANCE_OK)
		return rc;
	return dane_load(ssl, a, notes, noteslen, err);
}

int
dance_ssl_arm(SSL *ssl, const struct dance_answer *a,
	struct dance_error *err)
{
	return dance_ssl_arm_notes(ssl, a, NULL, 0, err);
}

void
dance_verify_reason(int xerr, int depth, char *buf, size_t len)
{
	const char *ctx = NULL;
	const char *s = X509_verify_cert_error_string(xerr);
	char where[32];

	switch (xerr) {
	case X509_V_ERR_DANE_NO_MATCH:
		ctx = "no matching DANE TLSA records";
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
		ctx = "name not in certificate SAN (DANE-TA/PKIX)";
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		ctx = "chain does not reach a TLSA-matched or trusted issuer";
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		ctx = "certificate outside its validity period (DANE-TA/PKIX)";
		break;
	case X509_V_ERR_INVALID_PURPOSE:
		ctx = "certificate not usable for TLS client authentication";
		break;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		ctx = "bad signature in the certificate chain";
		break;
	case X509_V_ERR_APPLICATION_VERIFICATION:
		ctx = "rejected by DANCE";
		break;
	default:
		break;
	}
	if (depth >= 0)
		(void)snprintf(where, sizeof(where), ", depth %d", depth);
	else
		where[0] = '\0';
	if (ctx == NULL)
		(void)snprintf(buf, len, "%s (X509 error %d%s)", s, xerr,
			where);
	else if (strcasecmp(ctx, s) == 0)
		(void)snprintf(buf, len, "%s (X509 error %d%s)", ctx, xerr,
			where);
	else
		(void)snprintf(buf, len, "%s: %s (X509 error %d%s)", ctx, s,
			xerr, where);
}

/* The untrusted chain without the leaf (callers may pass either
 * form).  The certificates stay owned by the caller's stack. */
static STACK_OF(X509) *
chain_without_leaf(X509 *leaf, STACK_OF(X509) *chain)
{
	STACK_OF(X509) *sk;
	X509 *x;
	int i;

	if ((sk = sk_X509_new_null()) == NULL)
		return NULL;
	for (i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		x = sk_X509_value(chain, i);
		if (X509_cmp(x, leaf) == 0)
			continue;
		if (!sk_X509_push(sk, x)) {
			sk_X509_free(sk);
			return NULL;
		}
	}
	return sk;
}

/* X509_verify_cert with the DANE state of ssl; fills res. */
static int
verify_with_dane(struct dance_matcher *m, SSL *ssl, X509 *leaf,
	STACK_OF(X509) *untrusted, struct dance_match_result *res,
	struct dance_error *err)
{
	X509_STORE_CTX *xs;
	uint8_t u, s, mt;
	char eb[160];
	int ok, xerr;

	if ((xs = X509_STORE_CTX_new()) == NULL)
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	if (!X509_STORE_CTX_init(xs, m->store, leaf, untrusted)) {
		X509_STORE_CTX_free(xs);
		return dance_err_set(err, DANCE_ERR_TLS, "verify setup: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	}
	/* As a TLS server checks its clients: purpose sslclient. */
	X509_STORE_CTX_set_default(xs, "ssl_client");
	/* Carries the DANE name (host check) set by SSL_dane_enable. */
	X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(xs),
		SSL_get0_param(ssl));
	X509_STORE_CTX_set0_dane(xs, SSL_get0_dane(ssl));
	ok = X509_verify_cert(xs);
	xerr = X509_STORE_CTX_get_error(xs);
	if (ok > 0) {
		res->ok = 1;
		res->depth = SSL_get0_dane_authority(ssl, NULL, NULL);
		if (SSL_get0_dane_tlsa(ssl, &u, &s, &mt, NULL, NULL) >= 0)
			res->usage = u;
	} else if (ok == 0) {
		dance_verify_reason(xerr, X509_STORE_CTX_get_error_depth(xs),
			res->reason, sizeof(res->reason));
	}
	X509_STORE_CTX_free(xs);
	if (ok < 0)
		return dance_err_set(err, DANCE_ERR_TLS, "X509_verify_cert: "
			"%s", dance_ssl_err_text(eb, sizeof(eb)));
	ERR_clear_error();
	if (!res->ok)
		return dance_err_set(err, DANCE_ERR_NOMATCH, "%s",
			res->reason);
	return DANCE_OK;
}

int
dance_match(struct dance_matcher *m, const struct dance_answer *a,
	X509 *leaf, STACK_OF(X509) *chain, struct dance_match_result *res)
{
	struct dance_error e;
	STACK_OF(X509) *untrusted = NULL;
	SSL *ssl = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	res->usage = -1;
	res->depth = -1;
	e.code = DANCE_OK;
	e.reason[0] = '\0';
	if (m == NULL || leaf == NULL) {
		rc = dance_err_set(&e, DANCE_ERR_INTERNAL, "%s",
			m == NULL ? "no matcher" : "no client certificate");
		goto out;
	}
	if ((rc = answer_usable(a, &e)) != DANCE_OK)
		goto out;
	if ((ssl = SSL_new(m->ctx)) == NULL) {
		rc = dance_err_set(&e, DANCE_ERR_NOMEM, "SSL_new failed");
		goto out;
	}
	if ((rc = dane_load(ssl, a, res->skipped, sizeof(res->skipped),
	    &e)) != DANCE_OK)
		goto out;
	if ((untrusted = chain_without_leaf(leaf, chain)) == NULL) {
		rc = dance_err_set(&e, DANCE_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = verify_with_dane(m, ssl, leaf, untrusted, res, &e);
out:
	sk_X509_free(untrusted);
	SSL_free(ssl);
	if (rc != DANCE_OK) {
		res->ok = 0;
		(void)snprintf(res->reason, sizeof(res->reason), "%s",
			e.reason);
	}
	return rc;
}

int
dance_cert_san_name(X509 *cert, const struct dance_policy *policy,
	char *out, struct dance_error *err)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	char name[DANCE_NAME_MAX + 1];
	char first[DANCE_NAME_MAX + 1];
	int i, n, found = 0, seen = 0;

	if (cert == NULL)
		return dance_err_set(err, DANCE_ERR_NAME, "no certificate");
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	first[0] = '\0';
	n = gens == NULL ? 0 : sk_GENERAL_NAME_num(gens);
	for (i = 0; i < n && !found && seen < DANCE_SAN_MAX; i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		/* The client chose these names: bound the allow-list work
		 * one certificate can cause before any authentication. */
		seen++;
		/* Wildcards and malformed names cannot be an identity. */
		if (dance_name_check((const char *)ASN1_STRING_get0_data(
		    g->d.dNSName), (size_t)ASN1_STRING_length(g->d.dNSName),
		    0, name, NULL) != DANCE_OK)
			continue;
		if (first[0] == '\0')
			memcpy(first, name, sizeof(first));
		if (policy == NULL ||
		    dance_policy_check(policy, name, NULL) == DANCE_OK)
			found = 1;
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	if (found) {
		memcpy(out, name, sizeof(name));
		return DANCE_OK;
	}
	if (first[0] == '\0')
		return dance_err_set(err, DANCE_ERR_NAME, "certificate has no "
			"valid SAN dNSName");
	if (seen == DANCE_SAN_MAX)
		return dance_err_set(err, DANCE_ERR_NOT_ALLOWED, "none of the "
			"first %d SAN dNSNames of the certificate is allowed "
			"(first: %s; no more are examined)", DANCE_SAN_MAX, first);
	return dance_err_set(err, DANCE_ERR_NOT_ALLOWED, "no SAN dNSName of "
		"the certificate is allowed (first: %s)", first);
}
