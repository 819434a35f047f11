/*
 * test_match.c -- DANE matching (match.c), the TLS glue
 * (tls_server.c, tls_client.c) and the decision (decide.c),
 * offline: certificates are generated here with OpenSSL, TLSA answers
 * are built by hand, handshakes run over in-memory BIO pairs and the
 * resolver is only used as a cache (dance_resolver_cache_put).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dance.h"
#include "tls_int.h"	/* white-box: the connection and answer internals */

#define EXT DANCE_EXT_TYPE_DEFAULT
#define DAY (24L * 3600L)

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

struct cspec {
	const char *cn;
	const char *san;	/* "DNS:a,DNS:b" or NULL */
	int ca;
	long nb, na;		/* validity, days from now */
	X509 *issuer;		/* NULL: self-signed */
	EVP_PKEY *ikey;
};

static EVP_PKEY *
mkkey(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, val);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

static X509 *
mkcert(EVP_PKEY *key, const struct cspec *s)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509 *iss;
	X509_NAME *n;

	assert_non_null(x);
	iss = s->issuer != NULL ? s->issuer : x;
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), s->nb * DAY);
	X509_gmtime_adj(X509_getm_notAfter(x), s->na * DAY);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
		(const unsigned char *)s->cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(iss));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_ext(x, iss, NID_basic_constraints, s->ca ? "critical,CA:TRUE" :
		"critical,CA:FALSE");
	add_ext(x, iss, NID_key_usage, s->ca ?
		"critical,keyCertSign,cRLSign,digitalSignature" :
		"critical,digitalSignature");
	if (!s->ca)
		add_ext(x, iss, NID_ext_key_usage, "clientAuth,serverAuth");
	add_ext(x, iss, NID_subject_key_identifier, "hash");
	if (s->issuer != NULL)
		add_ext(x, iss, NID_authority_key_identifier, "keyid");
	if (s->san != NULL)
		add_ext(x, iss, NID_subject_alt_name, s->san);
	assert_true(X509_sign(x, s->ikey != NULL ? s->ikey : key,
		EVP_sha256()) > 0);
	return x;
}

/* TLSA association data of x for selector/mtype; returns length. */
static size_t
assoc(X509 *x, int sel, int mt, unsigned char *out, size_t outlen)
{
	unsigned char *der = NULL;
	unsigned int dl = 0;
	int n;

	n = sel == 0 ? i2d_X509(x, &der) :
		i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(n > 0);
	if (mt == 0) {
		assert_true((size_t)n <= outlen);
		memcpy(out, der, (size_t)n);
		dl = (unsigned)n;
	} else {
		assert_int_equal(EVP_Digest(der, (size_t)n, out, &dl,
			mt == 1 ? EVP_sha256() : EVP_sha512(), NULL), 1);
	}
	OPENSSL_free(der);
	return dl;
}

/* ------------------------------------------------------------------ */
/* Hand-built answers                                                  */
/* ------------------------------------------------------------------ */

#define TA_MAX 8

struct tans {
	struct dance_answer a;
	struct dance_tlsa rr[TA_MAX];
	unsigned char buf[TA_MAX][2048];
};

static void
ans_init(struct tans *t, const char *name, enum dance_dns_status st,
	const char *why)
{
	memset(t, 0, sizeof(*t));
	t->a.status = st;
	snprintf(t->a.name, sizeof(t->a.name), "%s", name);
	snprintf(t->a.why, sizeof(t->a.why), "%s", why);
	t->a.ttl = 300;
	t->a.rr = t->rr;
	t->a.refs = 1;
}

static void
ans_raw(struct tans *t, int u, int s, int m, const unsigned char *d,
	size_t len)
{
	size_t i = t->a.n++;

	assert_true(i < TA_MAX && len <= sizeof(t->buf[0]));
	memcpy(t->buf[i], d, len);
	t->rr[i].usage = (uint8_t)u;
	t->rr[i].selector = (uint8_t)s;
	t->rr[i].mtype = (uint8_t)m;
	t->rr[i].len = len;
	t->rr[i].data = t->buf[i];
}

static void
ans_add(struct tans *t, int u, int s, int m, X509 *x)
{
	unsigned char d[2048];

	ans_raw(t, u, s, m, d, assoc(x, s, m, d, sizeof(d)));
}

/* A library-owned copy (for the resolver cache). */
static struct dance_answer *
ans_owned(const struct tans *t)
{
	struct dance_answer *a = dance_answer_new(t->a.status, t->a.name,
		t->a.rr, t->a.n, t->a.ttl, t->a.why);

	assert_non_null(a);
	return a;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

struct fx {
	EVP_PKEY *k_ee, *k_other, *k_ca, *k_leaf, *k_pca, *k_pee, *k_srv;
	X509 *ee;		/* self-signed, SAN ee.clients.test */
	X509 *other;		/* self-signed, unrelated key */
	X509 *expired;		/* self-signed, expired */
	X509 *future;		/* self-signed, not yet valid */
	X509 *ca;		/* device CA */
	X509 *leaf;		/* by ca, SAN sensor7._device.clients.test */
	X509 *nosan;		/* by ca, SAN other.example */
	X509 *cnonly;		/* by ca, CN = the name, no SAN */
	X509 *wild;		/* by ca, SAN *._device.clients.test */
	X509 *leaf_exp;		/* by ca, expired, right SAN */
	X509 *pca;		/* PKIX CA */
	X509 *pee;		/* by pca, SAN pkix-ee.clients.test */
	X509 *srv;		/* TLS server cert */
	STACK_OF(X509) *ch_ca;		/* [ca] */
	STACK_OF(X509) *ch_leafca;	/* [leaf, ca] */
	STACK_OF(X509) *ch_pca;		/* [pca] */
	char ca_file[64];
	char ta_file[64];
	struct dance_matcher *m;	/* no CA store */
	struct dance_matcher *m_pkix;	/* pca trusted */
};

#define N_TA "sensor7._device.clients.test"
#define N_EE "ee.clients.test"
#define N_PEE "pkix-ee.clients.test"

static STACK_OF(X509) *
stack_of(X509 *a, X509 *b)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	assert_non_null(sk);
	if (a != NULL)
		assert_true(sk_X509_push(sk, a) > 0);
	if (b != NULL)
		assert_true(sk_X509_push(sk, b) > 0);
	return sk;
}

static void
write_file(char *path, const char *text, X509 *x)
{
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	if (text != NULL)
		fputs(text, f);
	if (x != NULL)
		PEM_write_X509(f, x);
	fclose(f);
}

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct dance_error e;
	struct cspec s;

	assert_non_null(f);
	f->k_ee = mkkey();
	f->k_other = mkkey();
	f->k_ca = mkkey();
	f->k_leaf = mkkey();
	f->k_pca = mkkey();
	f->k_pee = mkkey();
	f->k_srv = mkkey();
	s = (struct cspec){ "ee", "DNS:" N_EE, 0, -1, 365, NULL, NULL };
	f->ee = mkcert(f->k_ee, &s);
	s = (struct cspec){ "other", "DNS:other.example", 0, -1, 365, NULL,
		NULL };
	f->other = mkcert(f->k_other, &s);
	s = (struct cspec){ "expired", "DNS:" N_EE, 0, -30, -1, NULL, NULL };
	f->expired = mkcert(f->k_ee, &s);
	s = (struct cspec){ "future", "DNS:" N_EE, 0, 10, 20, NULL, NULL };
	f->future = mkcert(f->k_ee, &s);
	s = (struct cspec){ "Device CA", NULL, 1, -1, 3650, NULL, NULL };
	f->ca = mkcert(f->k_ca, &s);
	s = (struct cspec){ "sensor7", "DNS:" N_TA, 0, -1, 365, f->ca,
		f->k_ca };
	f->leaf = mkcert(f->k_leaf, &s);
	s.san = "DNS:other.example";
	f->nosan = mkcert(f->k_leaf, &s);
	s.san = NULL;
	s.cn = N_TA;
	f->cnonly = mkcert(f->k_leaf, &s);
	s.cn = "wild";
	s.san = "DNS:*._device.clients.test";
	f->wild = mkcert(f->k_leaf, &s);
	s = (struct cspec){ "sensor7 old", "DNS:" N_TA, 0, -30, -1, f->ca,
		f->k_ca };
	f->leaf_exp = mkcert(f->k_leaf, &s);
	s = (struct cspec){ "PKIX CA", NULL, 1, -1, 3650, NULL, NULL };
	f->pca = mkcert(f->k_pca, &s);
	s = (struct cspec){ "pkix-ee", "DNS:" N_PEE, 0, -1, 365, f->pca,
		f->k_pca };
	f->pee = mkcert(f->k_pee, &s);
	s = (struct cspec){ "localhost", "DNS:localhost", 0, -1, 365, NULL,
		NULL };
	f->srv = mkcert(f->k_srv, &s);
	f->ch_ca = stack_of(f->ca, NULL);
	f->ch_leafca = stack_of(f->leaf, f->ca);
	f->ch_pca = stack_of(f->pca, NULL);

	snprintf(f->ca_file, sizeof(f->ca_file), "/tmp/test_match.ca.XXXXXX");
	write_file(f->ca_file, NULL, f->pca);
	/* Never used for a query; the resolver only needs to accept it. */
	snprintf(f->ta_file, sizeof(f->ta_file), "/tmp/test_match.ta.XXXXXX");
	write_file(f->ta_file, "test. 3600 IN DS 12345 13 2 "
		"0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef\n", NULL);

	f->m = dance_matcher_new(NULL, &e);
	assert_non_null(f->m);
	f->m_pkix = dance_matcher_new(f->ca_file, &e);
	assert_non_null(f->m_pkix);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;

	dance_matcher_free(f->m);
	dance_matcher_free(f->m_pkix);
	unlink(f->ca_file);
	unlink(f->ta_file);
	sk_X509_free(f->ch_ca);
	sk_X509_free(f->ch_leafca);
	sk_X509_free(f->ch_pca);
	X509_free(f->ee);
	X509_free(f->other);
	X509_free(f->expired);
	X509_free(f->future);
	X509_free(f->ca);
	X509_free(f->leaf);
	X509_free(f->nosan);
	X509_free(f->cnonly);
	X509_free(f->wild);
	X509_free(f->leaf_exp);
	X509_free(f->pca);
	X509_free(f->pee);
	X509_free(f->srv);
	EVP_PKEY_free(f->k_ee);
	EVP_PKEY_free(f->k_other);
	EVP_PKEY_free(f->k_ca);
	EVP_PKEY_free(f->k_leaf);
	EVP_PKEY_free(f->k_pca);
	EVP_PKEY_free(f->k_pee);
	EVP_PKEY_free(f->k_srv);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* dance_match                                                         */
/* ------------------------------------------------------------------ */

/* Match and check the outcome; returns the result for more checks. */
static struct dance_match_result
match(struct dance_matcher *m, struct tans *t, X509 *leaf,
	STACK_OF(X509) *chain, int want_rc)
{
	struct dance_match_result r;
	int rc = dance_match(m, &t->a, leaf, chain, &r);

	if (rc != want_rc)
		print_error("dance_match: rc %d, want %d, reason: %s\n", rc,
			want_rc, r.reason);
	assert_int_equal(rc, want_rc);
	assert_int_equal(r.ok, want_rc == DANCE_OK);
	if (want_rc != DANCE_OK) {
		assert_true(r.reason[0] != '\0');
		assert_int_equal(r.usage, -1);
	}
	assert_int_equal(ERR_peek_error(), 0);
	return r;
}

static void
test_ee_all_selectors_mtypes(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;
	int s, m;

	for (s = 0; s <= 1; s++) {
		for (m = 0; m <= 2; m++) {
			ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
			ans_add(&t, 3, s, m, f->ee);
			r = match(f->m, &t, f->ee, NULL, DANCE_OK);
			assert_int_equal(r.usage, 3);
			assert_int_equal(r.depth, 0);
			/* The wrong key never matches. */
			r = match(f->m, &t, f->other, NULL,
				DANCE_ERR_NOMATCH);
			assert_non_null(strstr(r.reason,
				"no matching DANE TLSA records"));
		}
	}
}

static void
test_ee_ignores_names_and_dates(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;

	/* The cert's only SAN is other.example: DANE-EE does not care. */
	ans_init(&t, "dev.unrelated.test", DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 1, 1, f->other);
	match(f->m, &t, f->other, NULL, DANCE_OK);
	/* Expired and not-yet-valid self-signed certs (RFC 7671 5.1). */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 0, 1, f->expired);
	r = match(f->m, &t, f->expired, NULL, DANCE_OK);
	assert_int_equal(r.usage, 3);
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 0, 1, f->future);
	match(f->m, &t, f->future, NULL, DANCE_OK);
	/* DANE-EE of a CA-issued leaf, CA unknown: still the key. */
	ans_init(&t, "x.test", DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 1, 1, f->leaf);
	r = match(f->m, &t, f->leaf, NULL, DANCE_OK);
	assert_int_equal(r.depth, 0);
}

static void
test_dane_ta(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;
	int s, m;

	for (s = 0; s <= 1; s++) {
		for (m = 0; m <= 2; m++) {
			ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
			ans_add(&t, 2, s, m, f->ca);
			/* Chain without, then with the leaf. */
			r = match(f->m, &t, f->leaf, f->ch_ca, DANCE_OK);
			assert_int_equal(r.usage, 2);
			assert_int_equal(r.depth, 1);
			r = match(f->m, &t, f->leaf, f->ch_leafca, DANCE_OK);
			assert_int_equal(r.usage, 2);
		}
	}
	/* Name check is case-insensitive (names are lower-cased anyway). */
	ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
	ans_add(&t, 2, 0, 1, f->ca);
	/* The TA cert must be in the chain the client sent. */
	r = match(f->m, &t, f->leaf, NULL, DANCE_ERR_NOMATCH);
	/* A different issuer does not match. */
	ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
	ans_add(&t, 2, 0, 1, f->pca);
	r = match(f->m, &t, f->leaf, f->ch_ca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "no matching DANE TLSA records"));
}

static void
test_dane_ta_needs_san(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;

	ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
	ans_add(&t, 2, 0, 1, f->ca);
	r = match(f->m, &t, f->nosan, f->ch_ca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "name not in certificate SAN"));
	/* No fallback to the subject CN. */
	r = match(f->m, &t, f->cnonly, f->ch_ca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "name not in certificate SAN"));
	/* A wildcard SAN is not the client's name. */
	r = match(f->m, &t, f->wild, f->ch_ca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "name not in certificate SAN"));
	/* DANE-TA checks dates. */
	r = match(f->m, &t, f->leaf_exp, f->ch_ca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "validity"));
	/* The same names under DANE-EE of the leaf: fine. */
	ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 1, 1, f->leaf);
	match(f->m, &t, f->nosan, f->ch_ca, DANCE_OK);
	match(f->m, &t, f->leaf_exp, f->ch_ca, DANCE_OK);
}

static void
test_pkix(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;

	/* PKIX-EE 1 1 1: chain to a trusted CA plus the leaf key. */
	ans_init(&t, N_PEE, DANCE_DNS_SECURE, "");
	ans_add(&t, 1, 1, 1, f->pee);
	r = match(f->m_pkix, &t, f->pee, f->ch_pca, DANCE_OK);
	assert_int_equal(r.usage, 1);
	assert_int_equal(r.depth, 0);
	/* Chain need not carry the CA when the store has it. */
	match(f->m_pkix, &t, f->pee, NULL, DANCE_OK);
	/* Without the CA in the matcher's store: never. */
	r = match(f->m, &t, f->pee, f->ch_pca, DANCE_ERR_NOMATCH);
	/* Name must be in the SAN. */
	ans_init(&t, "other." N_PEE, DANCE_DNS_SECURE, "");
	ans_add(&t, 1, 1, 1, f->pee);
	r = match(f->m_pkix, &t, f->pee, f->ch_pca, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "name not in certificate SAN"));

	/* PKIX-TA 0 0 1 of the CA (sent in the chain). */
	ans_init(&t, N_PEE, DANCE_DNS_SECURE, "");
	ans_add(&t, 0, 0, 1, f->pca);
	r = match(f->m_pkix, &t, f->pee, f->ch_pca, DANCE_OK);
	assert_int_equal(r.usage, 0);
	assert_int_equal(r.depth, 1);
	ans_init(&t, N_PEE, DANCE_DNS_SECURE, "");
	ans_add(&t, 0, 1, 2, f->pca);
	r = match(f->m_pkix, &t, f->pee, f->ch_pca, DANCE_OK);
	assert_int_equal(r.usage, 0);
	/* Untrusted CA: PKIX-TA fails even though the digest matches. */
	match(f->m, &t, f->pee, f->ch_pca, DANCE_ERR_NOMATCH);
	/* Trusted CA, but the TLSA names another one. */
	ans_init(&t, N_PEE, DANCE_DNS_SECURE, "");
	ans_add(&t, 0, 0, 1, f->ca);
	match(f->m_pkix, &t, f->pee, f->ch_pca, DANCE_ERR_NOMATCH);
	/* A self-signed cert is not PKIX-EE even with a matching digest. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_add(&t, 1, 1, 1, f->ee);
	match(f->m_pkix, &t, f->ee, NULL, DANCE_ERR_NOMATCH);
}

/*
 * RFC 7671 section 9 digest agility as OpenSSL implements it: per
 * usage and selector, only records of the strongest digest present
 * (SHA2-512 over SHA2-256) are tried; "Full" (0) is always tried.
 */
static void
test_digest_agility(void **state)
{
	struct fx *f = *state;
	struct tans t;
	unsigned char junk[64];

	memset(junk, 0x5a, sizeof(junk));
	/* Wrong 3 1 2 hides a correct 3 1 1. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 2, junk, 64);
	ans_add(&t, 3, 1, 1, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_ERR_NOMATCH);
	/* Correct 3 1 2 with a wrong 3 1 1: fine. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 1, junk, 32);
	ans_add(&t, 3, 1, 2, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_OK);
	/* Order in the RRset does not matter. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 1, 1, f->ee);
	ans_raw(&t, 3, 1, 2, junk, 64);
	match(f->m, &t, f->ee, NULL, DANCE_ERR_NOMATCH);
	/* Agility is per selector: a wrong 3 1 2 does not hide 3 0 1. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 2, junk, 64);
	ans_add(&t, 3, 0, 1, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_OK);
	/* ... and per usage: a wrong 3 1 2 does not hide 2 1 1. */
	ans_init(&t, N_TA, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 2, junk, 64);
	ans_add(&t, 2, 1, 1, f->ca);
	match(f->m, &t, f->leaf, f->ch_ca, DANCE_OK);
	/* Full data is never hidden by a digest. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 2, junk, 64);
	ans_add(&t, 3, 1, 0, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_OK);
}

static void
test_rrset_and_unusable(void **state)
{
	struct fx *f = *state;
	struct dance_match_result r;
	struct tans t;
	unsigned char junk[64];

	memset(junk, 0xa5, sizeof(junk));
	/* Rollover: old and new keys both match. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_add(&t, 3, 1, 1, f->other);
	ans_add(&t, 3, 1, 1, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_OK);
	match(f->m, &t, f->other, NULL, DANCE_OK);
	/* Unknown usage / selector / matching type, bad full data:
	 * skipped, not fatal. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 4, 1, 1, junk, 32);
	ans_raw(&t, 3, 2, 1, junk, 32);
	ans_raw(&t, 3, 1, 3, junk, 32);
	ans_raw(&t, 3, 1, 0, junk, 40);
	r = match(f->m, &t, f->ee, NULL, DANCE_ERR_NOMATCH);
	assert_non_null(strstr(r.reason, "no usable TLSA records"));
	ans_add(&t, 3, 1, 1, f->ee);
	match(f->m, &t, f->ee, NULL, DANCE_OK);
}

static void
test_not_secure(void **state)
{
	struct fx *f = *state;
	static const enum dance_dns_status st[] = { DANCE_DNS_NODATA,
		DANCE_DNS_NXDOMAIN, DANCE_DNS_INSECURE, DANCE_DNS_BOGUS,
		DANCE_DNS_SERVFAIL, DANCE_DNS_TIMEOUT, DANCE_DNS_OVERLOAD,
		DANCE_DNS_ERROR };
	struct dance_match_result r;
	struct dance_error e;
	struct tans t;
	size_t i;
	SSL_CTX *ctx;
	SSL *ssl;

	for (i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		/* Records present (e.g. an insecure set): still refused. */
		ans_init(&t, N_EE, st[i], "because of the test");
		ans_add(&t, 3, 1, 1, f->ee);
		r = match(f->m, &t, f->ee, NULL, DANCE_ERR_DNS);
		assert_non_null(strstr(r.reason, dance_dns_status_str(st[i])));
		assert_non_null(strstr(r.reason, "because of the test"));
	}
	/* Secure but empty. */
	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	r = match(f->m, &t, f->ee, NULL, DANCE_ERR_DNS);
	/* Arming a live SSL refuses the same. */
	ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_true(SSL_CTX_dane_enable(ctx) > 0);
	ssl = SSL_new(ctx);
	ans_init(&t, N_EE, DANCE_DNS_BOGUS, "sig expired");
	ans_add(&t, 3, 1, 1, f->ee);
	assert_int_equal(dance_ssl_arm(ssl, &t.a, &e), DANCE_ERR_DNS);
	assert_non_null(strstr(e.reason, "sig expired"));
	t.a.status = DANCE_DNS_SECURE;
	assert_int_equal(dance_ssl_arm(ssl, &t.a, &e), DANCE_OK);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	/* Bad arguments are errors, not crashes. */
	assert_int_equal(dance_match(f->m, &t.a, NULL, NULL, &r),
		DANCE_ERR_INTERNAL);
	assert_int_equal(dance_match(NULL, &t.a, f->ee, NULL, &r),
		DANCE_ERR_INTERNAL);
	assert_int_equal(dance_match(f->m, NULL, f->ee, NULL, &r),
		DANCE_ERR_INTERNAL);
}

static void
test_matcher_new(void **state)
{
	struct dance_error e;

	(void)state;
	assert_null(dance_matcher_new("/nonexistent/ca.pem", &e));
	assert_int_equal(e.code, DANCE_ERR_CONFIG);
	assert_non_null(strstr(e.reason, "/nonexistent/ca.pem"));
	dance_matcher_free(NULL);
}

static void
test_san_name(void **state)
{
	struct fx *f = *state;
	struct dance_policy *p = dance_policy_new();
	struct dance_error e;
	struct cspec s = { "x", "DNS:*.wild.test,DNS:bad_name!.test,"
		"IP:127.0.0.1,DNS:A.Example,DNS:b.test", 0, -1, 30, NULL,
		NULL };
	char out[DANCE_NAME_MAX + 1];
	X509 *x = mkcert(f->k_other, &s);

	assert_non_null(p);
	/* First valid dNSName, lower-cased; wildcards and junk skipped. */
	assert_int_equal(dance_cert_san_name(x, NULL, out, &e), DANCE_OK);
	assert_string_equal(out, "a.example");
	assert_int_equal(dance_policy_add(p, "b.test", &e), DANCE_OK);
	assert_int_equal(dance_cert_san_name(x, p, out, &e), DANCE_OK);
	assert_string_equal(out, "b.test");
	/* None allowed. */
	assert_int_equal(dance_cert_san_name(f->ee, p, out, &e),
		DANCE_ERR_NOT_ALLOWED);
	assert_non_null(strstr(e.reason, N_EE));
	/* No SAN at all. */
	assert_int_equal(dance_cert_san_name(f->cnonly, NULL, out, &e),
		DANCE_ERR_NAME);
	assert_int_equal(dance_cert_san_name(f->ca, p, out, &e),
		DANCE_ERR_NAME);
	assert_int_equal(dance_cert_san_name(f->leaf, NULL, out, &e),
		DANCE_OK);
	assert_string_equal(out, N_TA);
	dance_policy_free(p);
	X509_free(x);
}

/* "DNS:n0.test,DNS:n1.test,..." with "DNS:ok.test" at position ok. */
static void
san_list(char *san, int n, int ok)
{
	int i;

	for (i = 0, san[0] = '\0'; i < n; i++) {
		if (i == ok)
			sprintf(san + strlen(san), "%sDNS:ok.test", i ? "," : "");
		else
			sprintf(san + strlen(san), "%sDNS:n%d.test", i ? "," : "",
				i);
	}
}

/* The client chooses its SAN names: only the first DANCE_SAN_MAX
 * dNSNames cost an allow-list check. */
static void
test_san_cap(void **state)
{
	struct fx *f = *state;
	struct dance_policy *p = dance_policy_new();
	struct dance_error e;
	char san[64 * 40], out[DANCE_NAME_MAX + 1];
	struct cspec s = { "x", san, 0, -1, 30, NULL, NULL };
	X509 *early, *late;

	assert_non_null(p);
	assert_int_equal(dance_policy_add(p, "ok.test", &e), DANCE_OK);
	/* 40 names: the allowed one 5th, then 35th */
	san_list(san, 40, 4);
	early = mkcert(f->k_other, &s);
	san_list(san, 40, 34);
	late = mkcert(f->k_other, &s);
	assert_int_equal(dance_cert_san_name(early, p, out, &e), DANCE_OK);
	assert_string_equal(out, "ok.test");
	assert_int_equal(dance_cert_san_name(late, p, out, &e),
		DANCE_ERR_NOT_ALLOWED);
	assert_non_null(strstr(e.reason, "first 32 SAN dNSNames"));
	dance_policy_free(p);
	X509_free(early);
	X509_free(late);
}

/* ------------------------------------------------------------------ */
/* TLS glue, end to end over BIO pairs                                 */
/* ------------------------------------------------------------------ */

struct world {
	struct fx *f;
	struct dance_policy *policy;
	struct dance_resolver *res;
	struct dance_tls_server *srv;
	struct dance_tls_server_cfg cfg;
	SSL_CTX *sctx;
	int answers;		/* on_answer calls */
	int refusals;		/* on_refuse calls */
	char refused_reason[256];
};

static void
on_refuse(SSL *ssl, struct dance_conn *c, void *arg)
{
	struct world *w = arg;

	assert_non_null(ssl);
	assert_true(c->state == DANCE_CONN_REJECTED ||
		c->state == DANCE_CONN_FAILED);
	w->refusals++;
	(void)snprintf(w->refused_reason, sizeof(w->refused_reason), "%s",
		c->reason);
}

static void
on_answer(SSL *ssl, struct dance_conn *c, void *arg)
{
	struct world *w = arg;

	assert_non_null(ssl);
	assert_int_equal(c->state, DANCE_CONN_ANSWERED);
	w->answers++;
}

static SSL_CTX *
server_ctx(struct fx *f)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, f->srv), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, f->k_srv), 1);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	return ctx;
}

/* Server glue with policy "*.clients.test", a cache-only resolver;
 * refuse_no_ext as given. */
static void
world_init_refuse(struct world *w, struct fx *f, int required, int in_hs,
	const char *forwarder, int refuse_no_ext)
{
	const char *tas[2] = { f->ta_file, NULL };
	const char *fwd[2] = { forwarder, NULL };
	struct dance_resolver_cfg rc;
	struct dance_error e;

	memset(w, 0, sizeof(*w));
	w->f = f;
	w->policy = dance_policy_new();
	assert_non_null(w->policy);
	assert_int_equal(dance_policy_add(w->policy, "*.clients.test", &e),
		DANCE_OK);
	dance_resolver_cfg_init(&rc);
	rc.mode = DANCE_RESOLVER_EVENT;
	rc.trust_anchor_files = tas;
	rc.forwarders = forwarder != NULL ? fwd : NULL;
	rc.timeout_ms = 500;
	w->res = dance_resolver_new(&rc, &e);
	if (w->res == NULL)
		print_error("dance_resolver_new: %s\n", e.reason);
	assert_non_null(w->res);
	w->cfg.ext_type = EXT;
	w->cfg.policy = w->policy;
	w->cfg.resolver = w->res;
	w->cfg.matcher = f->m;
	w->cfg.required = required;
	w->cfg.lookup_in_handshake = in_hs;
	w->cfg.on_answer = on_answer;
	w->cfg.on_answer_arg = w;
	w->cfg.on_refuse = on_refuse;
	w->cfg.refuse_no_ext = refuse_no_ext;
	w->srv = dance_tls_server_new(&w->cfg, &e);
	assert_non_null(w->srv);
	w->sctx = server_ctx(f);
	assert_int_equal(dance_tls_server_attach(w->srv, w->sctx, 0, &e),
		DANCE_OK);
}

static void
world_init(struct world *w, struct fx *f, int required, int in_hs,
	const char *forwarder)
{
	world_init_refuse(w, f, required, in_hs, forwarder, 0);
}

static void
world_free(struct world *w)
{
	SSL_CTX_free(w->sctx);
	dance_tls_server_free(w->srv);
	dance_resolver_free(w->res);
	dance_policy_free(w->policy);
}

/* Cache a secure answer "u s m of cert x" for name. */
static void
world_cache(struct world *w, const char *name, enum dance_dns_status st,
	int u, int s, int m, X509 *x)
{
	struct dance_answer *a;
	struct tans t;

	ans_init(&t, name, st, st == DANCE_DNS_SECURE ? "" : "test says so");
	if (x != NULL)
		ans_add(&t, u, s, m, x);
	a = ans_owned(&t);
	dance_resolver_cache_put(w->res, a);
	dance_answer_unref(a);
}

static void
info_cb(const SSL *ssl, int where, int ret)
{
	int *alert = SSL_get_app_data(ssl);

	if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && alert != NULL)
		*alert = ret & 0xff;
}

/* Client context: cert x (+chain), optional DANCE name. */
static SSL_CTX *
client_ctx(X509 *x, EVP_PKEY *k, X509 *chain, const char *name, int tls12)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct dance_error e;

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
	if (chain != NULL)
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, chain), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_info_callback(ctx, info_cb);
	if (tls12)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	if (name != NULL)
		assert_int_equal(dance_tls_client_attach(ctx, EXT, name, &e),
			DANCE_OK);
	return ctx;
}

struct hs {
	SSL *c, *s;
	int c_ok, s_ok;		/* handshake completed */
	int data;		/* client read the server's first bytes */
	int alert;		/* alert the client received, -1 none */
};

static int
step(SSL *ssl, int *done, int *failed)
{
	int r;

	if (*done || *failed)
		return 0;
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = 1;
		return 1;
	}
	r = SSL_get_error(ssl, r);
	if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
		*failed = 1;
	return 0;
}

/* Run a handshake of client SSL c (h owns it from here); the caller
 * frees h->c and h->s. */
static void
handshake_ssl(SSL *c, SSL_CTX *sctx, struct hs *h)
{
	BIO *bc, *bs;
	int cf = 0, sf = 0, i;
	char buf[16];

	memset(h, 0, sizeof(*h));
	h->alert = -1;
	ERR_clear_error();
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	h->c = c;
	h->s = SSL_new(sctx);
	assert_non_null(h->c);
	assert_non_null(h->s);
	SSL_set_app_data(h->c, &h->alert);
	SSL_set_bio(h->c, bc, bc);
	SSL_set_bio(h->s, bs, bs);
	SSL_set_connect_state(h->c);
	SSL_set_accept_state(h->s);
	for (i = 0; i < 20; i++) {
		step(h->c, &h->c_ok, &cf);
		step(h->s, &h->s_ok, &sf);
	}
	/* TLS 1.3: the client learns about a rejection when it reads. */
	if (h->s_ok)
		assert_int_equal(SSL_write(h->s, "hi", 2), 2);
	if (h->c_ok && SSL_read(h->c, buf, sizeof(buf)) == 2)
		h->data = 1;
	ERR_clear_error();
}

static void
handshake(SSL_CTX *cctx, SSL_CTX *sctx, struct hs *h)
{
	handshake_ssl(SSL_new(cctx), sctx, h);
}

/* Handshake with a client SSL that has its own name (NULL: none). */
static void
handshake_as(SSL_CTX *cctx, SSL_CTX *sctx, struct hs *h, const char *name)
{
	struct dance_error e;
	SSL *c = SSL_new(cctx);

	assert_non_null(c);
	if (name != NULL &&
	    dance_tls_client_set_name(c, name, &e) != DANCE_OK)
		fail_msg("dance_tls_client_set_name(%s): %s", name, e.reason);
	handshake_ssl(c, sctx, h);
}

static void
hs_free(struct hs *h)
{
	SSL_free(h->c);
	SSL_free(h->s);
}

static void
test_tls_armed_success(void **state)
{
	struct fx *f = *state;
	struct dance_resolver_stats st;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	cctx = client_ctx(f->ee, f->k_ee, NULL, "EE.clients.test", 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(SSL_version(h.s), TLS1_3_VERSION);
	c = dance_conn_get(h.s);
	assert_non_null(c);
	assert_int_equal(c->state, DANCE_CONN_SUCCESS);
	assert_string_equal(c->name, N_EE);
	assert_int_equal(c->usage, 3);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(c->usage, 3);
	/* Idempotent. */
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(SSL_get_verify_result(h.s), X509_V_OK);
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.queries, 0);
	assert_int_equal(w.answers, 0);
	hs_free(&h);
	SSL_CTX_free(cctx);

	/* DANE-TA in the handshake: the client sends leaf + CA. */
	world_cache(&w, N_TA, DANCE_DNS_SECURE, 2, 0, 1, f->ca);
	cctx = client_ctx(f->leaf, f->k_leaf, f->ca, N_TA, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(c->usage, 2);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* ... without the CA: no match, handshake fails. */
	cctx = client_ctx(f->leaf, f->k_leaf, NULL, N_TA, 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_false(h.data);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

static void
test_tls_armed_wrong_key(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	/* Required: handshake_failure, not bad_certificate. */
	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	cctx = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_false(h.data);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	assert_string_equal(SSL_alert_desc_string_long(h.alert),
		"handshake failure");
	c = dance_conn_get(h.s);
	assert_non_null(c);
	assert_int_equal(c->state, DANCE_CONN_FAILED);
	assert_non_null(strstr(c->reason, "no matching DANE TLSA records"));
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_NOMATCH);
	assert_int_equal(c->usage, -1);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);

	/* Optional: handshake completes, client unauthenticated. */
	world_init(&w, f, 0, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	cctx = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_NOMATCH);
	assert_int_equal(c->state, DANCE_CONN_FAILED);
	assert_non_null(strstr(c->reason, "no matching DANE TLSA records"));
	/* The original error is not laundered. */
	assert_int_equal(SSL_get_verify_result(h.s), X509_V_ERR_DANE_NO_MATCH);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

static void
test_tls_not_allowed(void **state)
{
	struct fx *f = *state;
	struct dance_resolver_stats st;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	const char *names[] = { "ee.elsewhere.test", "clients.test" };
	size_t i;

	for (i = 0; i < 2; i++) {
		world_init(&w, f, 0, 1, NULL);
		world_cache(&w, names[i], DANCE_DNS_SECURE, 3, 1, 1, f->ee);
		cctx = client_ctx(f->ee, f->k_ee, NULL, names[i], 0);
		handshake(cctx, w.sctx, &h);
		/* Even optional mode refuses a name outside the list. */
		assert_false(h.s_ok);
		assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
		c = dance_conn_get(h.s);
		assert_non_null(c);
		assert_int_equal(c->state, DANCE_CONN_REJECTED);
		assert_int_equal(dance_conn_verdict(h.s, &c),
			DANCE_ERR_NOT_ALLOWED);
		/* The host heard of it once, with the reason to log. */
		assert_int_equal(w.refusals, 1);
		assert_non_null(strstr(w.refused_reason, "allow-list"));
		/* Not even the cache was consulted, let alone DNS. */
		dance_resolver_stats(w.res, &st);
		assert_int_equal(st.queries, 0);
		assert_int_equal(st.cache_hits, 0);
		hs_free(&h);
		SSL_CTX_free(cctx);
		world_free(&w);
	}
}

/* A raw client that sends a fixed dane_clientid payload. */
struct raw_ext {
	const unsigned char *data;
	size_t len;
	int sent;
};

static int
raw_add(SSL *s, unsigned int type, unsigned int ctx,
	const unsigned char **out, size_t *outlen, X509 *x, size_t idx,
	int *al, void *arg)
{
	struct raw_ext *r = arg;

	if (!(ctx & SSL_EXT_TLS1_3_CERTIFICATE) || idx != 0)
		return 0;
	*out = r->data;
	*outlen = r->len;
	r->sent++;
	return 1;
}

static int
raw_parse(SSL *s, unsigned int type, unsigned int ctx,
	const unsigned char *in, size_t inlen, X509 *x, size_t idx, int *al,
	void *arg)
{
	return 1;
}

static void
test_tls_zero_length_name(void **state)
{
	struct fx *f = *state;
	static const unsigned char zero[1] = { 0 };
	static const unsigned char bad[] = { 3, 'a', '.', '.' };
	static const unsigned char trail[] = { 1, 'a', 'b' };
	struct raw_ext cases[] = { { zero, 0, 0 }, { zero, 1, 0 },
		{ bad, sizeof(bad), 0 }, { trail, sizeof(trail), 0 } };
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		world_init(&w, f, 0, 1, NULL);
		cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
		assert_int_equal(SSL_CTX_add_custom_ext(cctx, EXT,
			SSL_EXT_TLS1_3_CERTIFICATE_REQUEST |
			SSL_EXT_TLS1_3_CERTIFICATE |
			SSL_EXT_TLS_IMPLEMENTATION_ONLY |
			SSL_EXT_TLS1_3_ONLY, raw_add, NULL, &cases[i],
			raw_parse, NULL), 1);
		handshake(cctx, w.sctx, &h);
		assert_int_equal(cases[i].sent, 1);
		assert_false(h.s_ok);
		assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
		c = dance_conn_get(h.s);
		assert_non_null(c);
		assert_int_equal(c->state, DANCE_CONN_REJECTED);
		assert_true(c->reason[0] != '\0');
		assert_int_not_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
		hs_free(&h);
		SSL_CTX_free(cctx);
		world_free(&w);
	}
}

static void
test_tls12_client(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 1);
	handshake(cctx, w.sctx, &h);
	/* Not refused by the glue: TLS 1.2 policy is the host's. */
	assert_true(h.s_ok && h.data);
	assert_int_equal(SSL_version(h.s), TLS1_2_VERSION);
	assert_null(dance_conn_get(h.s));
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_PROTOCOL);
	assert_non_null(c);
	assert_int_equal(c->state, DANCE_CONN_NONE);
	assert_non_null(strstr(c->reason, "no dane_clientid"));
	hs_free(&h);
	SSL_CTX_free(cctx);

	/* A TLS 1.3 client without DANCE: state NONE as well. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_PROTOCOL);
	assert_int_equal(c->state, DANCE_CONN_NONE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

/*
 * refuse_no_ext: a TLS 1.3 client with a certificate but no
 * dane_clientid fails the handshake (handshake_failure, on_refuse once);
 * without the flag it completes in state NONE; TLS 1.2 and clients
 * without a certificate are never refused for it.
 */
static void
test_tls_refuse_no_ext(void **state)
{
	struct fx *f = *state;
	struct dance_resolver_stats st;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	int i;

	world_init_refuse(&w, f, 1, 1, NULL, 1);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	/* Self-signed leaf, then leaf + CA: refused once, not per depth. */
	for (i = 0; i < 2; i++) {
		w.refusals = 0;
		w.refused_reason[0] = '\0';
		cctx = i == 0 ? client_ctx(f->ee, f->k_ee, NULL, NULL, 0) :
			client_ctx(f->leaf, f->k_leaf, f->ca, NULL, 0);
		handshake(cctx, w.sctx, &h);
		assert_false(h.s_ok);
		assert_false(h.data);
		assert_int_equal(SSL_version(h.s), TLS1_3_VERSION);
		assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
		assert_string_equal(SSL_alert_desc_string_long(h.alert),
			"handshake failure");
		assert_int_equal(w.refusals, 1);
		assert_string_equal(w.refused_reason,
			"client sent no dane_clientid");
		c = dance_conn_get(h.s);
		assert_non_null(c);
		assert_int_equal(c->state, DANCE_CONN_REJECTED);
		assert_string_equal(c->name, "");
		assert_int_equal(dance_conn_verdict(h.s, &c),
			DANCE_ERR_PROTOCOL);
		assert_int_equal(c->state, DANCE_CONN_REJECTED);
		hs_free(&h);
		SSL_CTX_free(cctx);
	}
	/* A DANCE client on the same server is still served. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* TLS 1.2 cannot carry the extension, and a server that requires
	 * DANCE must not negotiate it: refused in the handshake. */
	w.refusals = 0;
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_false(h.data);
	assert_int_equal(h.alert, SSL_AD_PROTOCOL_VERSION);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* No certificate at all: the handshake fails too (TLS 1.3's own
	 * alert for it, certificate_required: OpenSSL has no hook between
	 * the empty Certificate and its alert). */
	cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_info_callback(cctx, info_cb);
	handshake(cctx, w.sctx, &h);
	assert_false(h.data);
	assert_int_equal(h.alert, 116);	/* certificate_required */
	assert_int_equal(w.refusals, 0);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* No DNS for any of these. */
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.queries, 0);
	world_free(&w);

	/* Without the flag (required or not): completes, state NONE. */
	for (i = 0; i < 2; i++) {
		world_init_refuse(&w, f, i, 1, NULL, 0);
		cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
		handshake(cctx, w.sctx, &h);
		assert_true(h.s_ok && h.data);
		assert_int_equal(SSL_version(h.s), TLS1_3_VERSION);
		assert_null(dance_conn_get(h.s));
		assert_int_equal(dance_conn_verdict(h.s, &c),
			DANCE_ERR_PROTOCOL);
		assert_int_equal(c->state, DANCE_CONN_NONE);
		assert_int_equal(w.refusals, 0);
		hs_free(&h);
		SSL_CTX_free(cctx);
		world_free(&w);
	}
}

static int
spy_add(SSL *s, unsigned int type, unsigned int ctx,
	const unsigned char **out, size_t *outlen, X509 *x, size_t idx,
	int *al, void *arg)
{
	return 0;	/* never ask */
}

static int
spy_parse(SSL *s, unsigned int type, unsigned int ctx,
	const unsigned char *in, size_t inlen, X509 *x, size_t idx, int *al,
	void *arg)
{
	(*(int *)arg)++;
	return 1;
}

static int
spy_verify_ok(int ok, X509_STORE_CTX *xs)
{
	return 1;
}

static void
test_tls_client_only_when_asked(void **state)
{
	struct fx *f = *state;
	SSL_CTX *cctx, *sctx;
	struct hs h;
	int seen = 0;

	sctx = server_ctx(f);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, spy_verify_ok);
	assert_int_equal(SSL_CTX_add_custom_ext(sctx, EXT,
		SSL_EXT_TLS1_3_CERTIFICATE_REQUEST |
		SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS1_3_ONLY |
		SSL_EXT_TLS_IMPLEMENTATION_ONLY, spy_add, NULL, NULL,
		spy_parse, &seen), 1);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, sctx, &h);
	/* The client sent its certificate but no dane_clientid. */
	assert_true(h.s_ok && h.data);
	assert_non_null(SSL_get0_peer_certificate(h.s));
	assert_int_equal(seen, 0);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* A server whose CertificateRequest carries data (arg): the DANCE
 * client tolerates an empty ClientName vector, refuses anything else. */
static int
req_add(SSL *s, unsigned int type, unsigned int ctx,
	const unsigned char **out, size_t *outlen, X509 *x, size_t idx,
	int *al, void *arg)
{
	const struct raw_ext *r = arg;

	if (!(ctx & SSL_EXT_TLS1_3_CERTIFICATE_REQUEST))
		return 0;
	*out = r->data;
	*outlen = r->len;
	return 1;
}

static void
test_tls_client_request_check(void **state)
{
	struct fx *f = *state;
	static const unsigned char zero[] = { 0 };
	static const unsigned char junk[] = { 3, 'a', 'b', 'c' };
	struct raw_ext req[] = { { zero, 1, 0 }, { junk, 4, 0 } };
	SSL_CTX *cctx, *sctx;
	struct hs h;
	int i, seen;

	for (i = 0; i < 2; i++) {
		seen = 0;
		sctx = server_ctx(f);
		SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, spy_verify_ok);
		assert_int_equal(SSL_CTX_add_custom_ext(sctx, EXT,
			SSL_EXT_TLS1_3_CERTIFICATE_REQUEST |
			SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS1_3_ONLY |
			SSL_EXT_TLS_IMPLEMENTATION_ONLY, req_add, NULL,
			&req[i], spy_parse, &seen), 1);
		cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
		handshake(cctx, sctx, &h);
		if (i == 0) {
			/* Accepted: the client answers with its name. */
			assert_true(h.c_ok && h.s_ok && h.data);
			assert_int_equal(seen, 1);
		} else {
			assert_false(h.c_ok);
			assert_false(h.s_ok);
			assert_int_equal(seen, 0);
		}
		hs_free(&h);
		SSL_CTX_free(sctx);
		SSL_CTX_free(cctx);
	}
}

static void
test_tls_cached_not_secure(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	/* Required: fail in the handshake. */
	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_BOGUS, 3, 1, 1, f->ee);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	assert_non_null(strstr(c->reason, "test says so"));
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);

	/* Optional: ANSWERED, the verdict names the DNS outcome. */
	world_init(&w, f, 0, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_NXDOMAIN, 0, 0, 0, NULL);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	c = dance_conn_get(h.s);
	assert_int_equal(c->state, DANCE_CONN_ANSWERED);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	assert_int_equal(c->state, DANCE_CONN_FAILED);
	assert_non_null(strstr(c->reason,
		dance_dns_status_str(DANCE_DNS_NXDOMAIN)));
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

/* The host defers the lookup: PENDING, then dance_conn_resolve() and a
 * post-handshake match. */
static void
test_tls_deferred_lookup(void **state)
{
	struct fx *f = *state;
	struct dance_resolver_stats st;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h, h2;
	SSL_CTX *cctx, *cctx2;

	world_init(&w, f, 1, 0, NULL);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	cctx2 = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	handshake(cctx2, w.sctx, &h2);
	assert_true(h.s_ok && h2.s_ok);
	c = dance_conn_get(h.s);
	assert_int_equal(c->state, DANCE_CONN_PENDING);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	assert_string_equal(c->reason, "lookup pending");
	assert_int_equal(c->state, DANCE_CONN_PENDING);
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.queries, 0);
	/* The answer arrives (another worker's cache, say). */
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	assert_int_equal(dance_conn_resolve(h.s, &e), DANCE_OK);
	assert_int_equal(c->state, DANCE_CONN_ANSWERED);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(c->state, DANCE_CONN_SUCCESS);
	assert_int_equal(c->usage, 3);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	/* The wrong key, post-handshake. */
	assert_int_equal(dance_conn_resolve(h2.s, &e), DANCE_OK);
	assert_int_equal(dance_conn_verdict(h2.s, &c), DANCE_ERR_NOMATCH);
	assert_non_null(strstr(c->reason, "no matching DANE TLSA records"));
	assert_int_equal(w.answers, 0);
	hs_free(&h);
	hs_free(&h2);
	SSL_CTX_free(cctx);
	SSL_CTX_free(cctx2);
	world_free(&w);
}

/* Cache miss with the lookup started from the handshake: PENDING; the
 * SSL is freed while the lookup is in flight (cancel, no callback). */
static void
test_tls_pending_free(void **state)
{
	struct fx *f = *state;
	struct dance_resolver_stats st;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	/* A forwarder that never answers (discard port). */
	world_init(&w, f, 1, 1, "127.0.0.1@9");
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	/* Required, but the verdict is after the lookup: host decides. */
	assert_true(h.s_ok);
	c = dance_conn_get(h.s);
	assert_int_equal(c->state, DANCE_CONN_PENDING);
	assert_non_null(c->lookup);
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.pending, 1);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	hs_free(&h);
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.pending, 0);
	assert_int_equal(w.answers, 0);
	SSL_CTX_free(cctx);
	world_free(&w);
}

/* keep_verify_cb: the host's own callback consults DANCE first. */
static int
host_verify_cb(int ok, X509_STORE_CTX *xs)
{
	return dance_tls_verify_step(ok, xs);
}

static void
test_tls_keep_verify_cb(void **state)
{
	struct fx *f = *state;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *sctx;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	sctx = server_ctx(f);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER |
		SSL_VERIFY_FAIL_IF_NO_PEER_CERT, host_verify_cb);
	assert_int_equal(dance_tls_server_attach(w.srv, sctx, 1, &e),
		DANCE_OK);
	assert_true(SSL_CTX_get_verify_callback(sctx) == host_verify_cb);
	/* No resumption: every connection shows its certificate. */
	assert_int_equal(SSL_CTX_get_num_tickets(sctx), 0);
	assert_true(SSL_CTX_get_options(sctx) & SSL_OP_NO_TICKET);
	assert_int_equal(SSL_CTX_get_session_cache_mode(sctx),
		SSL_SESS_CACHE_OFF);
	assert_int_equal(SSL_CTX_get_verify_mode(sctx), SSL_VERIFY_PEER |
		SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	/* A second attach of the same SSL_CTX is refused. */
	assert_int_equal(dance_tls_server_attach(w.srv, sctx, 1, &e),
		DANCE_ERR_CONFIG);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(c->usage, 3);
	hs_free(&h);
	SSL_CTX_free(cctx);
	cctx = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, sctx, &h);
	assert_false(h.s_ok);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	world_free(&w);
}

/* SNI switches the SSL_CTX: the new context's DANCE server decides. */
static int
sni_cb(SSL *ssl, int *al, void *arg)
{
	SSL_set_SSL_CTX(ssl, arg);
	return SSL_TLSEXT_ERR_OK;
}

static void
test_tls_sni_switch(void **state)
{
	struct fx *f = *state;
	struct dance_policy *p2 = dance_policy_new();
	struct dance_tls_server_cfg cfg2;
	struct dance_tls_server *srv2;
	struct dance_resolver_stats st;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *ctx2;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	/* The second virtual server allows only another subtree. */
	assert_int_equal(dance_policy_add(p2, ".elsewhere.test", &e),
		DANCE_OK);
	cfg2 = w.cfg;
	cfg2.policy = p2;
	srv2 = dance_tls_server_new(&cfg2, &e);
	assert_non_null(srv2);
	ctx2 = server_ctx(f);
	assert_int_equal(dance_tls_server_attach(srv2, ctx2, 0, &e),
		DANCE_OK);
	SSL_CTX_set_tlsext_servername_callback(w.sctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(w.sctx, ctx2);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(SSL_get_SSL_CTX(h.s) == ctx2);
	assert_false(h.s_ok);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	c = dance_conn_get(h.s);
	assert_int_equal(c->state, DANCE_CONN_REJECTED);
	assert_true(c->srv == srv2);
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.cache_hits, 0);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(ctx2);
	dance_tls_server_free(srv2);
	dance_policy_free(p2);
	world_free(&w);
}

/* A threaded resolver whose forwarder never answers (discard port);
 * "test." names end as libunbound's local-zone NXDOMAIN or timeout. */
static struct dance_resolver *
threaded_resolver(struct fx *f)
{
	const char *tas[2] = { f->ta_file, NULL };
	const char *fwd[2] = { "127.0.0.1@9", NULL };
	struct dance_resolver_cfg rc;
	struct dance_resolver *res;
	struct dance_error e;

	dance_resolver_cfg_init(&rc);
	rc.mode = DANCE_RESOLVER_THREADED;
	rc.trust_anchor_files = tas;
	rc.forwarders = fwd;
	rc.timeout_ms = 300;
	res = dance_resolver_new(&rc, &e);
	assert_non_null(res);
	return res;
}

/* Threaded resolver: the parse callback waits (bounded) in the
 * handshake; a non-secure outcome fails a required handshake. */
static void
test_tls_threaded(void **state)
{
	struct fx *f = *state;
	struct dance_tls_server *srv;
	struct dance_resolver *res;
	struct dance_answer *a;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *sctx;

	world_init(&w, f, 1, 1, NULL);
	res = threaded_resolver(f);
	assert_int_equal(dance_resolver_get_mode(res),
		DANCE_RESOLVER_THREADED);
	w.cfg.resolver = res;
	srv = dance_tls_server_new(&w.cfg, &e);
	assert_non_null(srv);
	sctx = server_ctx(f);
	assert_int_equal(dance_tls_server_attach(srv, sctx, 0, &e), DANCE_OK);
	/* Miss: waits for the (non-secure: "test." is one of libunbound's
	 * default local zones, NXDOMAIN) answer, handshake_failure. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, sctx, &h);
	assert_false(h.s_ok);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	c = dance_conn_get(h.s);
	assert_int_equal(c->state, DANCE_CONN_FAILED);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_DNS);
	assert_true(c->reason[0] != '\0');
	hs_free(&h);
	/* Hit: armed in the handshake. */
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	a = dance_resolver_cached(w.res, N_EE);
	assert_non_null(a);
	dance_resolver_cache_put(res, a);
	dance_answer_unref(a);
	handshake(cctx, sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	dance_tls_server_free(srv);
	dance_resolver_free(res);
	world_free(&w);
}

/* ------------------------------------------------------------------ */
/* Client: per-connection names                                        */
/* ------------------------------------------------------------------ */

/* The server's name for the client of h, "" when it saw none. */
static const char *
hs_server_name(struct hs *h)
{
	struct dance_conn *c = dance_conn_get(h->s);

	return c == NULL ? "" : c->name;
}

static void
test_tls_client_name_per_ssl(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct dance_error e;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	SSL *ssl, *dup;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, N_TA, DANCE_DNS_SECURE, 2, 0, 1, f->ca);
	/* The context says N_TA, this connection says N_EE: N_EE wins
	 * (lower-cased), and the ee certificate matches it. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_TA, 0);
	handshake_as(cctx, w.sctx, &h, "EE.Clients.TEST");
	assert_true(h.s_ok && h.data);
	assert_string_equal(hs_server_name(&h), N_EE);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_int_equal(c->usage, 3);
	hs_free(&h);
	/* Same context, no name of its own: the context's N_TA is sent,
	 * and the ee certificate does not match that TLSA. */
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_int_equal(h.alert, SSL_AD_HANDSHAKE_FAILURE);
	assert_string_equal(hs_server_name(&h), N_TA);
	hs_free(&h);
	/* NULL removes the connection's name: the context's applies. */
	ssl = SSL_new(cctx);
	assert_non_null(ssl);
	assert_int_equal(dance_tls_client_set_name(ssl, N_EE, &e), DANCE_OK);
	assert_int_equal(dance_tls_client_set_name(ssl, NULL, &e), DANCE_OK);
	handshake_ssl(ssl, w.sctx, &h);
	assert_false(h.s_ok);
	assert_string_equal(hs_server_name(&h), N_TA);
	hs_free(&h);
	/* Setting twice: the last name counts. */
	ssl = SSL_new(cctx);
	assert_non_null(ssl);
	assert_int_equal(dance_tls_client_set_name(ssl, N_TA, &e), DANCE_OK);
	assert_int_equal(dance_tls_client_set_name(ssl, N_EE, &e), DANCE_OK);
	handshake_ssl(ssl, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_string_equal(hs_server_name(&h), N_EE);
	hs_free(&h);
	/* SSL_dup() of a fresh SSL carries its own copy of the name. */
	ssl = SSL_new(cctx);
	assert_non_null(ssl);
	assert_int_equal(dance_tls_client_set_name(ssl, N_EE, &e), DANCE_OK);
	dup = SSL_dup(ssl);
	assert_non_null(dup);
	assert_ptr_not_equal(dup, ssl);
	SSL_free(ssl);
	handshake_ssl(dup, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_string_equal(hs_server_name(&h), N_EE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

static void
test_tls_client_ctx_without_name(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct dance_error e;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, N_TA, DANCE_DNS_SECURE, 2, 0, 1, f->ca);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	assert_int_equal(dance_tls_client_attach(cctx, 0, NULL, &e),
		DANCE_OK);
	/* Registered once per context, with or without a name. */
	assert_int_equal(dance_tls_client_attach(cctx, 0, N_EE, &e),
		DANCE_ERR_CONFIG);
	handshake_as(cctx, w.sctx, &h, N_EE);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_string_equal(c->name, N_EE);
	assert_int_equal(c->usage, 3);
	hs_free(&h);
	/* Two connections of one context, two names. */
	SSL_CTX_free(cctx);
	cctx = client_ctx(f->leaf, f->k_leaf, f->ca, NULL, 0);
	assert_int_equal(dance_tls_client_attach(cctx, 0, NULL, &e),
		DANCE_OK);
	handshake_as(cctx, w.sctx, &h, N_TA);
	assert_true(h.s_ok && h.data);
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_OK);
	assert_string_equal(c->name, N_TA);
	assert_int_equal(c->usage, 2);
	hs_free(&h);
	handshake_as(cctx, w.sctx, &h, N_EE);
	assert_false(h.s_ok);
	assert_string_equal(hs_server_name(&h), N_EE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

static void
test_tls_client_no_name_no_ext(void **state)
{
	static const struct raw_ext empty = { NULL, 0, 0 };
	struct fx *f = *state;
	struct dance_conn *c;
	struct dance_error e;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *sctx;
	int seen;

	/* The DANCE server asks; a client with neither name stays NONE
	 * (not REJECTED: it sent nothing), and the handshake completes. */
	world_init(&w, f, 1, 1, NULL);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	assert_int_equal(dance_tls_client_attach(cctx, EXT, NULL, &e),
		DANCE_OK);
	handshake(cctx, w.sctx, &h);
	assert_true(h.c_ok && h.s_ok && h.data);
	assert_null(dance_conn_get(h.s));
	assert_int_equal(dance_conn_verdict(h.s, &c), DANCE_ERR_PROTOCOL);
	assert_int_equal(c->state, DANCE_CONN_NONE);
	assert_int_equal(w.refusals, 0);
	hs_free(&h);
	world_free(&w);

	/* On the wire: a spy server that asks sees no extension from the
	 * nameless connection, and one from a named one of the same
	 * context. */
	seen = 0;
	sctx = server_ctx(f);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, spy_verify_ok);
	assert_int_equal(SSL_CTX_add_custom_ext(sctx, EXT,
		SSL_EXT_TLS1_3_CERTIFICATE_REQUEST |
		SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS1_3_ONLY |
		SSL_EXT_TLS_IMPLEMENTATION_ONLY, req_add, NULL,
		(void *)&empty, spy_parse, &seen), 1);
	handshake(cctx, sctx, &h);
	assert_true(h.c_ok && h.s_ok && h.data);
	assert_non_null(SSL_get0_peer_certificate(h.s));
	assert_int_equal(seen, 0);
	hs_free(&h);
	handshake_as(cctx, sctx, &h, N_EE);
	assert_true(h.c_ok && h.s_ok && h.data);
	assert_int_equal(seen, 1);
	hs_free(&h);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void
test_tls_client_set_name_errors(void **state)
{
	struct fx *f = *state;
	struct dance_error e;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *plain;
	SSL *ssl;

	world_init(&w, f, 1, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	assert_int_equal(dance_tls_client_attach(cctx, EXT, NULL, &e),
		DANCE_OK);
	ssl = SSL_new(cctx);
	assert_non_null(ssl);
	assert_int_equal(dance_tls_client_set_name(ssl, N_EE, &e), DANCE_OK);
	/* Bad names are refused and the previous name stays. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(dance_tls_client_set_name(ssl, "bad..name", &e),
		DANCE_ERR_NAME);
	assert_int_equal(e.code, DANCE_ERR_NAME);
	assert_true(e.reason[0] != '\0');
	assert_int_equal(dance_tls_client_set_name(ssl, "", &e),
		DANCE_ERR_NAME);
	assert_int_equal(dance_tls_client_set_name(ssl, "*.clients.test",
		&e), DANCE_ERR_NAME);
	assert_int_equal(dance_tls_client_set_name(ssl, "ee.clients.test.",
		&e), DANCE_ERR_NAME);
	assert_int_equal(dance_tls_client_set_name(ssl,
		"\xc3\xa9t\xc3\xa9.clients.test", &e), DANCE_ERR_NAME);
	handshake_ssl(ssl, w.sctx, &h);
	assert_true(h.s_ok && h.data);
	assert_string_equal(hs_server_name(&h), N_EE);
	hs_free(&h);
	assert_int_equal(dance_tls_client_set_name(NULL, N_EE, &e),
		DANCE_ERR_INTERNAL);
	/* A context without the extension could never send the name. */
	plain = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	ssl = SSL_new(plain);
	assert_non_null(ssl);
	assert_int_equal(dance_tls_client_set_name(ssl, N_EE, &e),
		DANCE_ERR_CONFIG);
	assert_int_equal(e.code, DANCE_ERR_CONFIG);
	/* ... but a bad name is still a bad name. */
	assert_int_equal(dance_tls_client_set_name(ssl, "bad..name", &e),
		DANCE_ERR_NAME);
	SSL_free(ssl);
	SSL_CTX_free(plain);
	SSL_CTX_free(cctx);
	world_free(&w);
}

static void
test_tls_config_errors(void **state)
{
	struct fx *f = *state;
	struct dance_tls_server_cfg cfg;
	struct dance_error e;
	struct world w;
	SSL_CTX *ctx;

	world_init(&w, f, 1, 1, NULL);
	cfg = w.cfg;
	cfg.policy = NULL;
	assert_null(dance_tls_server_new(&cfg, &e));
	assert_int_equal(e.code, DANCE_ERR_CONFIG);
	cfg = w.cfg;
	cfg.ext_type = 0xFF01;
	assert_null(dance_tls_server_new(&cfg, &e));
	assert_int_equal(e.code, DANCE_ERR_CONFIG);
	cfg.ext_type = 0x10000;
	assert_null(dance_tls_server_new(&cfg, &e));
	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(dance_tls_client_attach(ctx, EXT, "bad..name", &e),
		DANCE_ERR_NAME);
	assert_int_equal(dance_tls_client_attach(ctx, EXT, "", &e),
		DANCE_ERR_NAME);
	assert_int_equal(dance_tls_client_attach(ctx, 0xFF01, N_EE, &e),
		DANCE_ERR_CONFIG);
	assert_int_equal(dance_tls_client_attach(ctx, EXT, N_EE, &e),
		DANCE_OK);
	assert_int_equal(dance_tls_client_attach(ctx, EXT, N_EE, &e),
		DANCE_ERR_CONFIG);
	SSL_CTX_free(ctx);
	/* A server SSL that never saw DANCE. */
	assert_null(dance_conn_get(NULL));
	assert_int_equal(dance_conn_resolve(NULL, &e), DANCE_ERR_PROTOCOL);
	world_free(&w);
}

/* ------------------------------------------------------------------ */
/* Decision: dance_conn_decide, name sources, status texts, budget     */
/* ------------------------------------------------------------------ */

/* Recreate w's server glue and SSL_CTX from w->cfg (sources, caps). */
static void
world_rebuild(struct world *w)
{
	struct dance_error e;

	SSL_CTX_free(w->sctx);
	dance_tls_server_free(w->srv);
	w->srv = dance_tls_server_new(&w->cfg, &e);
	if (w->srv == NULL)
		fail_msg("dance_tls_server_new: %s", e.reason);
	w->sctx = server_ctx(w->f);
	assert_int_equal(dance_tls_server_attach(w->srv, w->sctx, 0, &e),
		DANCE_OK);
}

/* world_init() with name sources spec and its own glue. */
static void
world_sources(struct world *w, struct fx *f, int required,
	const char *forwarder, const char *sources)
{
	struct dance_error e;

	world_init(w, f, required, 1, forwarder);
	if (dance_name_sources_parse(sources, &w->cfg.sources, &e) !=
	    DANCE_OK)
		fail_msg("dance_name_sources_parse(%s): %s", sources,
			e.reason);
	world_rebuild(w);
}

/* Everything was decided without a DNS query; free w. */
static void
world_free_no_query(struct world *w)
{
	struct dance_resolver_stats st;

	dance_resolver_stats(w->res, &st);
	assert_int_equal(st.queries, 0);
	world_free(w);
}

/* Decide for the server side of h; check status and its text. */
static struct dance_conn *
decide(struct hs *h, enum dance_status want, const char *text)
{
	enum dance_status st = dance_conn_decide(h->s, NULL);
	struct dance_conn *c = dance_conn_get(h->s);

	if (st != want || strcmp(dance_conn_status_text(c), text) != 0)
		fail_msg("decide: status %d (%s), want %d (%s); reason: %s",
			st, dance_conn_status_text(c), want, text,
			dance_conn_reason(c));
	assert_int_equal(dance_conn_status(c), want);
	return c;
}

/* Run the event-mode resolver until w has seen n answers (<= 5 s). */
static void
world_wait_answers(struct world *w, int n)
{
	struct pollfd p;
	int i;

	for (i = 0; i < 100 && w->answers < n; i++) {
		p.fd = dance_resolver_fd(w->res);
		p.events = POLLIN;
		(void)poll(&p, 1, 50);
		dance_resolver_process(w->res);
	}
	assert_int_equal(w->answers, n);
}

static void
test_decide_texts(void **state)
{
	struct dance_name_sources s;
	struct dance_error e;
	unsigned r, k;

	assert_string_equal(dance_status_text(DANCE_STATUS_SUCCESS, 0),
		"SUCCESS");
	assert_string_equal(dance_status_text(DANCE_STATUS_PENDING, 0),
		"PENDING");
	assert_string_equal(dance_status_text(DANCE_STATUS_NONE,
		DANCE_REASON_NO_EXT), "NONE");
	assert_string_equal(dance_status_text(DANCE_STATUS_FAILED,
		DANCE_REASON_NXDOMAIN), "FAILED:nxdomain");
	assert_string_equal(dance_status_text(DANCE_STATUS_FAILED,
		DANCE_REASON_NOT_ALLOWED), "FAILED:not-allowed");
	assert_string_equal(dance_status_text(DANCE_STATUS_FAILED, 999),
		"FAILED:unknown");
	assert_string_equal(dance_reason_str(999), "unknown");
	/* One word per reason, distinct, and FAILED:<word> as the text. */
	for (r = 0; r <= DANCE_REASON_MAX; r++) {
		char want[64];

		(void)snprintf(want, sizeof(want), "FAILED:%s",
			dance_reason_str(r));
		assert_string_equal(dance_status_text(DANCE_STATUS_FAILED, r),
			want);
		assert_null(strchr(dance_reason_str(r), ' '));
		for (k = 0; k < r; k++)
			assert_string_not_equal(dance_reason_str(r),
				dance_reason_str(k));
	}
	assert_int_equal(dance_name_sources_parse("extension,san,identity",
		&s, &e), DANCE_OK);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.src[0], DANCE_SRC_EXTENSION);
	assert_int_equal(s.src[1], DANCE_SRC_SAN);
	assert_int_equal(s.src[2], DANCE_SRC_IDENTITY);
	assert_int_equal(dance_name_sources_parse(" Identity, ext \tsan ",
		&s, &e), DANCE_OK);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.src[0], DANCE_SRC_IDENTITY);
	assert_int_equal(s.src[1], DANCE_SRC_EXTENSION);
	assert_int_equal(dance_name_sources_parse("san dns", &s, &e),
		DANCE_ERR_CONFIG);
	assert_non_null(strstr(e.reason, "unknown name source \"dns\""));
	assert_int_equal(dance_name_sources_parse("san,extension,san", &s,
		&e), DANCE_ERR_CONFIG);
	assert_non_null(strstr(e.reason, "\"san\" given twice"));
	assert_int_equal(dance_name_sources_parse(" , ", &s, &e),
		DANCE_ERR_CONFIG);
	assert_int_equal(dance_name_sources_parse(NULL, &s, &e),
		DANCE_ERR_CONFIG);
	assert_string_equal(dance_name_source_str(DANCE_SRC_SAN), "san");
	assert_string_equal(dance_name_source_str(DANCE_SRC_NONE), "none");
	/* No connection: accessors say nothing happened. */
	assert_int_equal(dance_conn_state(NULL), DANCE_CONN_NONE);
	assert_int_equal(dance_conn_status(NULL), DANCE_STATUS_NONE);
	assert_string_equal(dance_conn_status_text(NULL), "NONE");
	assert_string_equal(dance_conn_name(NULL), "");
	assert_string_equal(dance_conn_reason(NULL), "");
	assert_int_equal(dance_conn_usage(NULL), -1);
	assert_null(dance_conn_entry(NULL));
	assert_null(dance_conn_answer(NULL));
	/* The one code-point rule: any type OpenSSL does not own. */
	assert_int_equal(dance_ext_type_check(0x1234, &e), DANCE_OK);
	assert_int_equal(dance_ext_type_check(0xFF01, &e), DANCE_ERR_CONFIG);
	assert_int_equal(dance_ext_type_check(0, &e), DANCE_ERR_CONFIG);
}

/* Source "extension": the decision and its texts via decide. */
static void
test_decide_extension(void **state)
{
	struct fx *f = *state;
	static const unsigned char bad_name[] = { 3, 'a', '.', '.' };
	struct raw_ext bad = { bad_name, sizeof(bad_name), 0 };
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_init(&w, f, 0, 1, NULL);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, "nx.clients.test", DANCE_DNS_NXDOMAIN, 0, 0, 0, NULL);
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok);
	c = decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
	assert_string_equal(dance_conn_name(c), N_EE);
	assert_int_equal(dance_conn_usage(c), 3);
	assert_int_equal(dance_conn_source(c), DANCE_SRC_EXTENSION);
	assert_string_equal(dance_conn_entry(c), "*.clients.test");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_OK);
	decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
	hs_free(&h);
	/* Cached NXDOMAIN, optional: FAILED:nxdomain with the detail. */
	handshake_as(cctx, w.sctx, &h, "nx.clients.test");
	assert_true(h.s_ok);
	c = decide(&h, DANCE_STATUS_FAILED, "FAILED:nxdomain");
	assert_non_null(strstr(dance_conn_reason(c), "nxdomain"));
	assert_string_equal(dance_conn_name(c), "nx.clients.test");
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* Wrong key: FAILED:nomatch. */
	cctx = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_FAILED, "FAILED:nomatch");
	assert_non_null(strstr(dance_conn_reason(c), "no matching DANE"));
	assert_int_equal(dance_conn_usage(c), -1);
	hs_free(&h);
	/* Not allowed, refusal deferred to the host: the handshake ends,
	 * no cache or DNS, decide says FAILED:not-allowed. */
	w.cfg.defer_refuse = 1;
	world_rebuild(&w);
	handshake_as(cctx, w.sctx, &h, "ee.elsewhere.test");
	assert_true(h.s_ok);
	assert_int_equal(w.refusals, 0);
	c = decide(&h, DANCE_STATUS_FAILED, "FAILED:not-allowed");
	assert_int_equal(dance_conn_state(c), DANCE_CONN_REJECTED);
	assert_null(dance_conn_entry(c));
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* A bad name, deferred: FAILED:bad-name. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	assert_int_equal(SSL_CTX_add_custom_ext(cctx, EXT,
		SSL_EXT_TLS1_3_CERTIFICATE_REQUEST |
		SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS_IMPLEMENTATION_ONLY |
		SSL_EXT_TLS1_3_ONLY, raw_add, NULL, &bad, raw_parse, NULL), 1);
	handshake(cctx, w.sctx, &h);
	assert_int_equal(bad.sent, 1);
	assert_true(h.s_ok);
	decide(&h, DANCE_STATUS_FAILED, "FAILED:bad-name");
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* No dane_clientid, extension the only source: NONE, no-ext. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 0);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_NONE, "NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NO_EXT);
	assert_non_null(strstr(dance_conn_reason(c), "no dane_clientid"));
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free_no_query(&w);
}

/* Source "san": TLS 1.2 and TLS 1.3 clients without dane_clientid. */
static void
test_decide_san(void **state)
{
	struct fx *f = *state;
	struct cspec s = { "ee-wrong", "DNS:" N_EE, 0, -1, 365, NULL, NULL };
	X509 *wrong = mkcert(f->k_other, &s);
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	int tls12;

	world_sources(&w, f, 1, NULL, "extension,san");
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, N_TA, DANCE_DNS_SECURE, 2, 0, 1, f->ca);
	for (tls12 = 0; tls12 <= 1; tls12++) {
		cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, tls12);
		handshake(cctx, w.sctx, &h);
		assert_true(h.s_ok);
		c = decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
		assert_int_equal(dance_conn_source(c), DANCE_SRC_SAN);
		assert_string_equal(dance_conn_name(c), N_EE);
		assert_int_equal(dance_conn_usage(c), 3);
		hs_free(&h);
		SSL_CTX_free(cctx);
	}
	/* DANE-TA through the SAN name, chain from the client. */
	cctx = client_ctx(f->leaf, f->k_leaf, f->ca, NULL, 1);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
	assert_string_equal(dance_conn_name(c), N_TA);
	assert_int_equal(dance_conn_usage(c), 2);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* SAN allowed, key wrong: FAILED:nomatch. */
	cctx = client_ctx(wrong, f->k_other, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_FAILED, "FAILED:nomatch");
	assert_string_equal(dance_conn_name(c), N_EE);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* Only SANs outside the allow-list: not a DANCE client. */
	cctx = client_ctx(f->other, f->k_other, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_NONE, "NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NOT_ALLOWED);
	assert_non_null(strstr(dance_conn_reason(c), "extension: not sent"));
	assert_non_null(strstr(dance_conn_reason(c), "SAN: "));
	assert_string_equal(dance_conn_name(c), "");
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* No SAN at all (the name only in CN): no-name. */
	cctx = client_ctx(f->cnonly, f->k_leaf, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	c = decide(&h, DANCE_STATUS_NONE, "NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NO_NAME);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* The dane_clientid name wins over the SAN. */
	cctx = client_ctx(f->ee, f->k_ee, NULL, "nx.clients.test", 0);
	world_cache(&w, "nx.clients.test", DANCE_DNS_NXDOMAIN, 0, 0, 0, NULL);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);	/* required: refused in the handshake */
	c = decide(&h, DANCE_STATUS_FAILED, "FAILED:nxdomain");
	assert_int_equal(dance_conn_source(c), DANCE_SRC_EXTENSION);
	hs_free(&h);
	SSL_CTX_free(cctx);
	X509_free(wrong);
	world_free_no_query(&w);
}

/* Handshake of a client of cctx; the host gives identity (NULL: none);
 * decide as wanted. */
static struct dance_conn *
decide_identity(struct hs *h, SSL_CTX *cctx, SSL_CTX *sctx,
	const char *identity, enum dance_status want, const char *text)
{
	handshake(cctx, sctx, h);
	if (identity != NULL)
		assert_int_equal(dance_conn_set_identity(h->s, identity),
			DANCE_OK);
	return decide(h, want, text);
}

/* Source "identity", and the order of the legacy sources. */
static void
test_decide_identity(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_sources(&w, f, 0, NULL, "identity");
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, "x.clients.test", DANCE_DNS_NODATA, 0, 0, 0, NULL);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	/* No identity given. */
	c = decide_identity(&h, cctx, w.sctx, NULL, DANCE_STATUS_NONE,
		"NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NO_NAME);
	assert_non_null(strstr(dance_conn_reason(c), "identity: none"));
	hs_free(&h);
	/* An identity that is a name the allow-list admits. */
	c = decide_identity(&h, cctx, w.sctx, "EE.clients.test",
		DANCE_STATUS_SUCCESS, "SUCCESS");
	assert_int_equal(dance_conn_source(c), DANCE_SRC_IDENTITY);
	assert_string_equal(dance_conn_name(c), N_EE);
	hs_free(&h);
	/* Not a DNS name. */
	c = decide_identity(&h, cctx, w.sctx, "user@corp",
		DANCE_STATUS_NONE, "NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NO_NAME);
	assert_non_null(strstr(dance_conn_reason(c), "identity \"user@corp\""));
	hs_free(&h);
	/* A client's control bytes never reach a log line as they are. */
	c = decide_identity(&h, cctx, w.sctx, "x\n[warn] forged\x1b[0m",
		DANCE_STATUS_NONE, "NONE");
	assert_non_null(strstr(dance_conn_reason(c),
		"identity \"x\\x0a[warn] forged\\x1b[0m\""));
	assert_null(strchr(dance_conn_reason(c), '\n'));
	assert_null(strchr(dance_conn_reason(c), '\x1b'));
	hs_free(&h);
	/* A name outside the allow-list. */
	c = decide_identity(&h, cctx, w.sctx, "ee.elsewhere.test",
		DANCE_STATUS_NONE, "NONE");
	assert_int_equal(dance_conn_reason_code(c), DANCE_REASON_NOT_ALLOWED);
	hs_free(&h);
	/* Identity before SAN: the identity's name, and its NODATA. */
	w.cfg.sources.n = 2;
	w.cfg.sources.src[0] = DANCE_SRC_IDENTITY;
	w.cfg.sources.src[1] = DANCE_SRC_SAN;
	world_rebuild(&w);
	SSL_CTX_free(cctx);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	c = decide_identity(&h, cctx, w.sctx, "x.clients.test",
		DANCE_STATUS_FAILED, "FAILED:nodata");
	assert_string_equal(dance_conn_name(c), "x.clients.test");
	hs_free(&h);
	/* SAN before identity: the SAN's name. */
	w.cfg.sources.src[0] = DANCE_SRC_SAN;
	w.cfg.sources.src[1] = DANCE_SRC_IDENTITY;
	world_rebuild(&w);
	SSL_CTX_free(cctx);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	c = decide_identity(&h, cctx, w.sctx, "x.clients.test",
		DANCE_STATUS_SUCCESS, "SUCCESS");
	assert_int_equal(dance_conn_source(c), DANCE_SRC_SAN);
	/* Without a server on the SSL_CTX, no identity can be set. */
	assert_int_equal(dance_conn_set_identity(h.c, "x.clients.test"),
		DANCE_ERR_CONFIG);
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

/* Event mode: PENDING, on_answer, then the verdict. */
static void
test_decide_pending(void **state)
{
	struct fx *f = *state;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	enum dance_reason r;

	world_sources(&w, f, 1, "127.0.0.1@9", "extension san");
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok);
	c = decide(&h, DANCE_STATUS_PENDING, "PENDING");
	assert_true(dance_conn_waiting(c));
	assert_string_equal(dance_conn_name(c), N_EE);
	assert_int_equal(dance_conn_source(c), DANCE_SRC_SAN);
	/* Asking again does not start a second lookup. */
	decide(&h, DANCE_STATUS_PENDING, "PENDING");
	world_wait_answers(&w, 1);
	assert_false(dance_conn_waiting(c));
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_FAILED);
	r = dance_conn_reason_code(c);
	assert_true(r >= DANCE_REASON_NXDOMAIN && r <= DANCE_REASON_DNS_ERROR);
	assert_string_equal(dance_conn_status_text(c),
		dance_status_text(DANCE_STATUS_FAILED, r));
	assert_non_null(dance_conn_answer(c));
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
}

/* Waiting caps: per allow-list entry and global, no query over a cap. */
static void
test_decide_budget(void **state)
{
	struct fx *f = *state;
	struct cspec s = { "ee2", "DNS:ee2.clients.test", 0, -1, 365, NULL,
		NULL };
	X509 *ee2 = mkcert(f->k_ee, &s);
	struct dance_resolver_stats st;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h1, h2, h3;
	SSL_CTX *c1, *c2, *c3;

	world_sources(&w, f, 0, "127.0.0.1@9", "san");
	assert_int_equal(dance_policy_add(w.policy, "other.example", &e),
		DANCE_OK);
	w.cfg.max_waiting_per_entry = 1;
	world_rebuild(&w);
	c1 = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	c2 = client_ctx(ee2, f->k_ee, NULL, NULL, 1);
	c3 = client_ctx(f->other, f->k_other, NULL, NULL, 1);
	handshake(c1, w.sctx, &h1);
	handshake(c2, w.sctx, &h2);
	handshake(c3, w.sctx, &h3);
	decide(&h1, DANCE_STATUS_PENDING, "PENDING");
	/* Same entry "*.clients.test": over its budget, no query. */
	c = decide(&h2, DANCE_STATUS_FAILED, "FAILED:overload");
	assert_non_null(strstr(dance_conn_reason(c),
		"allow entry \"*.clients.test\" (per-entry cap)"));
	/* Another entry has its own budget. */
	c = decide(&h3, DANCE_STATUS_PENDING, "PENDING");
	assert_string_equal(dance_conn_entry(c), "other.example");
	dance_resolver_stats(w.res, &st);
	assert_int_equal(st.queries, 2);
	/* A freed connection gives its place back. */
	hs_free(&h1);
	handshake(c2, w.sctx, &h1);
	decide(&h1, DANCE_STATUS_PENDING, "PENDING");
	hs_free(&h1);
	hs_free(&h2);
	hs_free(&h3);
	/* Global cap. */
	w.cfg.max_waiting_per_entry = 0;
	w.cfg.max_waiting = 1;
	world_rebuild(&w);
	handshake(c1, w.sctx, &h1);
	handshake(c3, w.sctx, &h3);
	decide(&h1, DANCE_STATUS_PENDING, "PENDING");
	c = decide(&h3, DANCE_STATUS_FAILED, "FAILED:overload");
	assert_non_null(strstr(dance_conn_reason(c), "(global cap)"));
	hs_free(&h1);
	hs_free(&h3);
	SSL_CTX_free(c1);
	SSL_CTX_free(c2);
	SSL_CTX_free(c3);
	X509_free(ee2);
	world_free(&w);
}

/* From inside a verify callback (the FreeRADIUS way): the leaf comes
 * from the X509_STORE_CTX, the SSL has no peer certificate yet. */
static enum dance_status in_cb_status;

static int
deciding_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
		SSL_get_ex_data_X509_STORE_CTX_idx());

	if (X509_STORE_CTX_get_error_depth(xs) == 0 && ok == 0) {
		in_cb_status = dance_conn_decide(ssl, xs);
		return in_cb_status == DANCE_STATUS_SUCCESS;
	}
	return 1;
}

static void
test_decide_in_verify_cb(void **state)
{
	struct fx *f = *state;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx, *sctx;

	world_sources(&w, f, 0, NULL, "san");
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	sctx = server_ctx(f);
	assert_int_equal(dance_tls_server_attach(w.srv, sctx, 1, &e),
		DANCE_OK);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, deciding_verify_cb);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	in_cb_status = DANCE_STATUS_NONE;
	handshake(cctx, sctx, &h);
	assert_int_equal(in_cb_status, DANCE_STATUS_SUCCESS);
	assert_true(h.s_ok);
	c = decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
	assert_int_equal(dance_conn_usage(c), 3);
	hs_free(&h);
	SSL_CTX_free(cctx);
	/* The wrong key fails the handshake from the callback. */
	cctx = client_ctx(f->other, f->k_other, NULL, NULL, 1);
	world_cache(&w, "other.example", DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	assert_int_equal(dance_policy_add(w.policy, "other.example", &e),
		DANCE_OK);
	handshake(cctx, sctx, &h);
	assert_int_equal(in_cb_status, DANCE_STATUS_FAILED);
	assert_false(h.s_ok);
	decide(&h, DANCE_STATUS_FAILED, "FAILED:nomatch");
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	world_free(&w);
}

/* Threaded mode: the decision blocks for the lookup (bounded). */
static void
test_decide_threaded(void **state)
{
	struct fx *f = *state;
	struct dance_resolver *res;
	struct dance_error e;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;

	world_init(&w, f, 0, 0, NULL);
	res = threaded_resolver(f);
	w.cfg.resolver = res;
	assert_int_equal(dance_name_sources_parse("identity",
		&w.cfg.sources, &e), DANCE_OK);
	w.cfg.max_waiting = 4;
	world_rebuild(&w);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	assert_int_equal(dance_conn_set_identity(h.s, N_EE), DANCE_OK);
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_FAILED);
	c = dance_conn_get(h.s);
	assert_false(dance_conn_waiting(c));
	assert_non_null(dance_conn_answer(c));
	assert_true(dance_conn_reason_code(c) >= DANCE_REASON_NXDOMAIN &&
		dance_conn_reason_code(c) <= DANCE_REASON_DNS_ERROR);
	hs_free(&h);
	SSL_CTX_free(cctx);
	SSL_CTX_free(w.sctx);
	w.sctx = NULL;
	dance_tls_server_free(w.srv);
	w.srv = NULL;
	dance_resolver_free(res);
	world_free(&w);
}

/* Unusable TLSA records are reported with their reason. */
static void
test_decide_tlsa_notes(void **state)
{
	struct fx *f = *state;
	static const unsigned char junk[32];
	struct dance_answer *a;
	struct dance_conn *c;
	struct world w;
	struct hs h;
	struct tans t;
	SSL_CTX *cctx;
	struct dance_match_result r;
	int tls12;

	ans_init(&t, N_EE, DANCE_DNS_SECURE, "");
	ans_raw(&t, 3, 1, 9, junk, sizeof(junk));
	ans_add(&t, 3, 1, 1, f->ee);
	assert_int_equal(dance_match(f->m, &t.a, f->ee, NULL, &r), DANCE_OK);
	assert_non_null(strstr(r.skipped, "3 1 9: "));
	world_sources(&w, f, 1, NULL, "extension,san");
	a = ans_owned(&t);
	dance_resolver_cache_put(w.res, a);
	dance_answer_unref(a);
	/* In the handshake (armed) and after it (SAN name). */
	for (tls12 = 0; tls12 <= 1; tls12++) {
		cctx = client_ctx(f->ee, f->k_ee, NULL, tls12 ? NULL : N_EE,
			tls12);
		handshake(cctx, w.sctx, &h);
		c = decide(&h, DANCE_STATUS_SUCCESS, "SUCCESS");
		assert_non_null(strstr(dance_conn_tlsa_notes(c), "3 1 9: "));
		assert_null(strstr(dance_conn_tlsa_notes(c), "3 1 1"));
		hs_free(&h);
		SSL_CTX_free(cctx);
	}
	world_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ee_all_selectors_mtypes),
		cmocka_unit_test(test_ee_ignores_names_and_dates),
		cmocka_unit_test(test_dane_ta),
		cmocka_unit_test(test_dane_ta_needs_san),
		cmocka_unit_test(test_pkix),
		cmocka_unit_test(test_digest_agility),
		cmocka_unit_test(test_rrset_and_unusable),
		cmocka_unit_test(test_not_secure),
		cmocka_unit_test(test_matcher_new),
		cmocka_unit_test(test_san_name),
		cmocka_unit_test(test_san_cap),
		cmocka_unit_test(test_tls_armed_success),
		cmocka_unit_test(test_tls_armed_wrong_key),
		cmocka_unit_test(test_tls_not_allowed),
		cmocka_unit_test(test_tls_zero_length_name),
		cmocka_unit_test(test_tls12_client),
		cmocka_unit_test(test_tls_refuse_no_ext),
		cmocka_unit_test(test_tls_client_only_when_asked),
		cmocka_unit_test(test_tls_client_request_check),
		cmocka_unit_test(test_tls_cached_not_secure),
		cmocka_unit_test(test_tls_deferred_lookup),
		cmocka_unit_test(test_tls_pending_free),
		cmocka_unit_test(test_tls_keep_verify_cb),
		cmocka_unit_test(test_tls_sni_switch),
		cmocka_unit_test(test_tls_threaded),
		cmocka_unit_test(test_tls_client_name_per_ssl),
		cmocka_unit_test(test_tls_client_ctx_without_name),
		cmocka_unit_test(test_tls_client_no_name_no_ext),
		cmocka_unit_test(test_tls_client_set_name_errors),
		cmocka_unit_test(test_tls_config_errors),
		cmocka_unit_test(test_decide_texts),
		cmocka_unit_test(test_decide_extension),
		cmocka_unit_test(test_decide_san),
		cmocka_unit_test(test_decide_identity),
		cmocka_unit_test(test_decide_pending),
		cmocka_unit_test(test_decide_budget),
		cmocka_unit_test(test_decide_in_verify_cb),
		cmocka_unit_test(test_decide_threaded),
		cmocka_unit_test(test_decide_tlsa_notes),
	};

	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
