/*
 *   This program is free software; you can redistribute it and/or modify
 *   it under the terms of the GNU General Public License as published by
 *   the Free Software Foundation; either version 2 of the License, or (at
 *   your option) any later version.
 */

/**
 * @file rlm_dance.c
 * @brief DANE client authentication (DANCE) for EAP-TLS and RADIUS/TLS.
 *
 * The module owns no TLS itself.  At instantiation it looks up the TLS
 * configurations FreeRADIUS already has (the "tls-config" sections of
 * the eap module, and the "tls" sections of TCP listeners), and on each
 * of their SSL_CTXs
 *
 *  - lets libdance register the dane_clientid extension, and
 *  - installs an SSL_CTX cert_verify_callback (rlm_dance_cert_verify).
 *
 * OpenSSL calls that callback instead of X509_verify_cert() for every
 * peer chain.  It runs X509_verify_cert() itself, with FreeRADIUS' own
 * per-SSL verify callback (cbtls_verify) wrapped: when PKIX fails for
 * lack of a trust anchor, DANE decides, and cbtls_verify then sees the
 * outcome as if OpenSSL had produced it.  See the top-level README.md, "Verify path: design".
 *
 * Everything DANE (names, allow-list, DNSSEC lookup, matching) is done by
 * libdance (common/include/dance.h); this file is FreeRADIUS glue only.
 */
RCSID("$Id$")

#include <freeradius/radiusd.h>
#include <freeradius/modules.h>
#include <freeradius/rad_assert.h>
#include <freeradius/listen.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <ctype.h>

#include "dance.h"

#ifndef WITH_TLS
#  error rlm_dance needs FreeRADIUS built with TLS
#endif

/*
 *	Values of DANCE-Status (dictionary.dance).  libdance decides; this
 *	maps its status and reason word onto the dictionary's values.
 */
typedef enum {
	RLM_DANCE_ST_AUTHENTICATED = 0,
	RLM_DANCE_ST_PKIX = 1,
	RLM_DANCE_ST_NO_NAME = 2,
	RLM_DANCE_ST_NOT_ALLOWED = 3,
	RLM_DANCE_ST_NO_MATCH = 4,
	RLM_DANCE_ST_OVERLOAD = 5,
	RLM_DANCE_ST_DNS_NODATA = 6,
	RLM_DANCE_ST_DNS_NXDOMAIN = 7,
	RLM_DANCE_ST_DNS_INSECURE = 8,
	RLM_DANCE_ST_DNS_BOGUS = 9,
	RLM_DANCE_ST_DNS_SERVFAIL = 10,
	RLM_DANCE_ST_DNS_TIMEOUT = 11,
	RLM_DANCE_ST_DNS_ERROR = 12,
	RLM_DANCE_ST_ERROR = 13
} rlm_dance_status_t;

static const FR_NAME_NUMBER rlm_dance_status_names[] = {
	{ "Authenticated",	RLM_DANCE_ST_AUTHENTICATED },
	{ "PKIX",		RLM_DANCE_ST_PKIX },
	{ "No-Name",		RLM_DANCE_ST_NO_NAME },
	{ "Not-Allowed",	RLM_DANCE_ST_NOT_ALLOWED },
	{ "No-Match",		RLM_DANCE_ST_NO_MATCH },
	{ "Overload",		RLM_DANCE_ST_OVERLOAD },
	{ "DNS-NODATA",		RLM_DANCE_ST_DNS_NODATA },
	{ "DNS-NXDOMAIN",	RLM_DANCE_ST_DNS_NXDOMAIN },
	{ "DNS-Insecure",	RLM_DANCE_ST_DNS_INSECURE },
	{ "DNS-Bogus",		RLM_DANCE_ST_DNS_BOGUS },
	{ "DNS-SERVFAIL",	RLM_DANCE_ST_DNS_SERVFAIL },
	{ "DNS-Timeout",	RLM_DANCE_ST_DNS_TIMEOUT },
	{ "DNS-Error",		RLM_DANCE_ST_DNS_ERROR },
	{ "Error",		RLM_DANCE_ST_ERROR },
	{ NULL, 0 }
};

static const FR_NAME_NUMBER rlm_dance_usage_names[] = {
	{ "PKIX-TA",	0 },
	{ "PKIX-EE",	1 },
	{ "DANE-TA",	2 },
	{ "DANE-EE",	3 },
	{ NULL, 0 }
};

/* DANCE-Name-Source values are libdance's enum dance_name_source. */
static const FR_NAME_NUMBER rlm_dance_src_values[] = {
	{ "Extension",	DANCE_SRC_EXTENSION },
	{ "SAN",	DANCE_SRC_SAN },
	{ "Identity",	DANCE_SRC_IDENTITY },
	{ NULL, 0 }
};

/*
 *	The dictionary.dance attributes.  Registered at bootstrap when the
 *	dictionary file was not $INCLUDEd, so the module works either way.
 */
static const struct {
	char const	*name;
	int		attr;
	PW_TYPE		type;
	FR_NAME_NUMBER const *values;
} rlm_dance_attrs[] = {
	{ "DANCE-Client-Id",	3440, PW_TYPE_STRING,	NULL },
	{ "DANCE-Status",	3441, PW_TYPE_INTEGER,	rlm_dance_status_names },
	{ "DANCE-Usage",	3442, PW_TYPE_INTEGER,	rlm_dance_usage_names },
	{ "DANCE-Reason",	3443, PW_TYPE_STRING,	NULL },
	{ "DANCE-Name-Source",	3444, PW_TYPE_INTEGER,	rlm_dance_src_values },
	{ NULL, 0, 0, NULL }
};

typedef struct rlm_dance_t {
	char const	*xlat_name;

	/* Configuration */
	char const	*allow;			/* first of possibly many */
	char const	*name_source;
	bool		require;
	char const	*trust_anchor_file;	/* first of possibly many */
	bool		trust_ad;
	char const	*forwarder;		/* first of possibly many */
	bool		forward_tls;
	char const	*tls_ca_file;
	char const	*unbound_conf;
	uint32_t	timeout;		/* ms */
	uint32_t	max_pending;
	uint32_t	cache_size;
	uint32_t	min_ttl;
	uint32_t	max_ttl;
	uint32_t	neg_ttl;
	uint32_t	fail_ttl;
	uint32_t	max_waiting;
	uint32_t	max_waiting_per_domain;
	char const	*pkix_ca_file;
	uint32_t	ext_type;
	char const	*eap_module;
	char const	*eap_tls_config;	/* first of possibly many */
	bool		radsec;
	uint32_t	stats_interval;		/* s, 0: no summary line */

	/* Runtime */
	struct dance_policy	*policy;
	struct dance_resolver	*resolver;
	struct dance_matcher	*matcher;
	struct dance_tls_server	*server;
	struct dance_tls_server_cfg server_cfg;	/* name sources, caps */
	int			attached;	/* SSL_CTXs we hooked */
	struct rlm_dance_stats_s *stats;	/* the metrics (rlm_dance_stats_*) */
} rlm_dance_t;

static const CONF_PARSER module_config[] = {
	{ "allow", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_MULTI | PW_TYPE_REQUIRED | PW_TYPE_NOT_EMPTY, rlm_dance_t, allow), NULL },
	{ "name_source", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_NOT_EMPTY, rlm_dance_t, name_source), "extension san identity" },
	{ "require", FR_CONF_OFFSET(PW_TYPE_BOOLEAN, rlm_dance_t, require), "no" },
	{ "trust_anchor_file", FR_CONF_OFFSET(PW_TYPE_FILE_INPUT | PW_TYPE_MULTI, rlm_dance_t, trust_anchor_file), NULL },
	{ "trust_ad", FR_CONF_OFFSET(PW_TYPE_BOOLEAN, rlm_dance_t, trust_ad), "no" },
	{ "forwarder", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_MULTI, rlm_dance_t, forwarder), NULL },
	{ "forward_tls", FR_CONF_OFFSET(PW_TYPE_BOOLEAN, rlm_dance_t, forward_tls), "no" },
	{ "tls_ca_file", FR_CONF_OFFSET(PW_TYPE_FILE_INPUT, rlm_dance_t, tls_ca_file), NULL },
	{ "unbound_conf", FR_CONF_OFFSET(PW_TYPE_FILE_INPUT, rlm_dance_t, unbound_conf), NULL },
	{ "timeout", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, timeout), "3000" },
	{ "max_pending", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, max_pending), "1000" },
	{ "cache_size", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, cache_size), "10000" },
	{ "min_ttl", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, min_ttl), "0" },
	{ "max_ttl", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, max_ttl), "3600" },
	{ "neg_ttl", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, neg_ttl), "60" },
	{ "fail_ttl", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, fail_ttl), "5" },
	{ "max_waiting", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, max_waiting), "16" },
	{ "max_waiting_per_domain", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, max_waiting_per_domain), "4" },
	{ "pkix_ca_file", FR_CONF_OFFSET(PW_TYPE_FILE_INPUT, rlm_dance_t, pkix_ca_file), NULL },
	{ "ext_type", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, ext_type), "65348" },	/* 0xFF44 */
	{ "eap_module", FR_CONF_OFFSET(PW_TYPE_STRING, rlm_dance_t, eap_module), "eap" },
	{ "eap_tls_config", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_MULTI, rlm_dance_t, eap_tls_config), "tls-common" },
	{ "radsec", FR_CONF_OFFSET(PW_TYPE_BOOLEAN, rlm_dance_t, radsec), "no" },
	{ "stats_interval", FR_CONF_OFFSET(PW_TYPE_INTEGER, rlm_dance_t, stats_interval), "0" },
	CONF_PARSER_TERMINATOR
};

/*
 *	Per-verification state, reachable from the wrapped verify
 *	callback through the X509_STORE_CTX's ex_data.  Lives on the stack
 *	of rlm_dance_cert_verify().
 */
typedef enum {
	RLM_DANCE_V_UNDECIDED = 0,	/* PKIX has not failed (yet) */
	RLM_DANCE_V_PASS,		/* DANE authenticated the client */
	RLM_DANCE_V_FAIL,		/* DANE client, not authenticated */
	RLM_DANCE_V_SKIP		/* not a DANE client: PKIX result stands */
} rlm_dance_verdict_t;

typedef struct {
	rlm_dance_t		*inst;
	SSL			*ssl;
	REQUEST			*request;
	int			(*orig_cb)(int, X509_STORE_CTX *);
	rlm_dance_verdict_t	verdict;
} rlm_dance_verify_t;

static void rlm_dance_stats_log_decision(rlm_dance_verify_t *v, struct dance_conn const *c);
static int rlm_dance_stats_init(rlm_dance_t *inst, CONF_SECTION *conf);
static void rlm_dance_stats_free(rlm_dance_t *inst);

/* The one process-wide item: OpenSSL ex_data index (OpenSSL's design). */
static pthread_once_t rlm_dance_index_once = PTHREAD_ONCE_INIT;
static int rlm_dance_xs_index = -1;

/*
 *	FreeRADIUS 3.2 uses SSL ex_data slots it never allocated: the fixed
 *	FR_TLS_EX_INDEX_* (10..17 in 3.2.1, 10..18 in 3.2.10), and
 *	fr_tls_ex_index_certs, which it allocates in the SSL_SESSION class
 *	but uses with SSL_set_ex_data().  An index libdance later allocates
 *	in the SSL class would share a slot with them (and its free callback
 *	would free() FreeRADIUS' talloc memory).  So burn every SSL-class
 *	index up to the highest one FreeRADIUS touches before libdance
 *	allocates its own.  The header has no "last index" macro, so
 *	build.sh takes the highest FR_TLS_EX_INDEX_* from tls.h.
 */
#ifndef RLM_DANCE_FR_TLS_EX_INDEX_MAX
#  error "define RLM_DANCE_FR_TLS_EX_INDEX_MAX, the highest FR_TLS_EX_INDEX_* of tls.h (freeradius_module/build.sh does)"
#endif
#if (FR_TLS_EX_INDEX_FIX_CERT_ORDER > RLM_DANCE_FR_TLS_EX_INDEX_MAX) || \
    (defined(FR_TLS_EX_INDEX_HOME) && (FR_TLS_EX_INDEX_HOME > RLM_DANCE_FR_TLS_EX_INDEX_MAX))
#  error "RLM_DANCE_FR_TLS_EX_INDEX_MAX is lower than an FR_TLS_EX_INDEX_* of tls.h"
#endif
#define RLM_DANCE_FR_MAX_FIXED_INDEX RLM_DANCE_FR_TLS_EX_INDEX_MAX

static void rlm_dance_index_init(void)
{
	int idx, highest = RLM_DANCE_FR_MAX_FIXED_INDEX;

	if (fr_tls_ex_index_certs > highest) highest = fr_tls_ex_index_certs;
	if (fr_tls_ex_index_vps > highest) highest = fr_tls_ex_index_vps;
	do {
		idx = SSL_get_ex_new_index(0, "rlm_dance: slot used by FreeRADIUS", NULL, NULL, NULL);
	} while ((idx >= 0) && (idx <= highest));

	rlm_dance_xs_index = X509_STORE_CTX_get_ex_new_index(0, "rlm_dance", NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Logging and attributes                                              */
/* ------------------------------------------------------------------ */

#define DLOG_DEBUG(_r, _fmt, ...) do { \
	REQUEST *request = (_r); \
	if (request) { \
		RDEBUG2("dance: " _fmt, ## __VA_ARGS__); \
	} else { \
		DEBUG2("rlm_dance: " _fmt, ## __VA_ARGS__); \
	} \
} while (0)

/*
 *	Rejections always reach the server log (with name and reason), not
 *	only the debug output: L_AUTH, like "Login incorrect".
 */
#define DLOG_REJECT(_r, _fmt, ...) do { \
	REQUEST *request = (_r); \
	if (request) { \
		REDEBUG("dance: " _fmt, ## __VA_ARGS__); \
	} \
	AUTH("rlm_dance: " _fmt, ## __VA_ARGS__); \
} while (0)

/*
 *	Attributes go into FreeRADIUS' per-session certificate list (the
 *	one cbtls_verify fills with TLS-Client-Cert-*): EAP copies it into
 *	every later request of the session; for RADSEC it is the
 *	connection's list, which mod_authorize copies into each request.
 *	So DANCE-* are visible in authorize/post-auth and can be copied to
 *	the reply.
 */
static void rlm_dance_attr(SSL *ssl, REQUEST *request, char const *attr, char const *value)
{
	VALUE_PAIR	**certs;
	TALLOC_CTX	*talloc_ctx;
	VALUE_PAIR	*vp;

	if (!value) return;
	certs = (VALUE_PAIR **)SSL_get_ex_data(ssl, fr_tls_ex_index_certs);
	talloc_ctx = SSL_get_ex_data(ssl, FR_TLS_EX_INDEX_TALLOC);
	if (!certs) return;

	vp = fr_pair_make(talloc_ctx, certs, attr, value, T_OP_SET);
	if (vp && request) rdebug_pair(L_DBG_LVL_2, request, vp, "dance: ");
}

static void rlm_dance_record(rlm_dance_verify_t *v, char const *name, enum dance_name_source src,
			     rlm_dance_status_t st, int usage, char const *reason)
{
	char buf[16];

	if (name && *name) rlm_dance_attr(v->ssl, v->request, "DANCE-Client-Id", name);
	if (src != DANCE_SRC_NONE) {
		rlm_dance_attr(v->ssl, v->request, "DANCE-Name-Source",
			       fr_int2str(rlm_dance_src_values, src, NULL));
	}
	rlm_dance_attr(v->ssl, v->request, "DANCE-Status",
		       fr_int2str(rlm_dance_status_names, st, "Error"));
	if (usage >= 0) {
		snprintf(buf, sizeof(buf), "%d", usage);
		rlm_dance_attr(v->ssl, v->request, "DANCE-Usage", buf);
	}
	if (reason && *reason) rlm_dance_attr(v->ssl, v->request, "DANCE-Reason", reason);
}

/* DANCE-Status value of a libdance FAILED reason. */
static rlm_dance_status_t rlm_dance_failed_status(enum dance_reason why)
{
	switch (why) {
	case DANCE_REASON_NOT_ALLOWED:
	case DANCE_REASON_BAD_NAME:
	case DANCE_REASON_PROTOCOL:
	case DANCE_REASON_NO_EXT:	return RLM_DANCE_ST_NOT_ALLOWED;
	case DANCE_REASON_NOMATCH:	return RLM_DANCE_ST_NO_MATCH;
	case DANCE_REASON_OVERLOAD:	return RLM_DANCE_ST_OVERLOAD;
	case DANCE_REASON_NODATA:	return RLM_DANCE_ST_DNS_NODATA;
	case DANCE_REASON_NXDOMAIN:	return RLM_DANCE_ST_DNS_NXDOMAIN;
	case DANCE_REASON_INSECURE:	return RLM_DANCE_ST_DNS_INSECURE;
	case DANCE_REASON_BOGUS:	return RLM_DANCE_ST_DNS_BOGUS;
	case DANCE_REASON_SERVFAIL:	return RLM_DANCE_ST_DNS_SERVFAIL;
	case DANCE_REASON_TIMEOUT:	return RLM_DANCE_ST_DNS_TIMEOUT;
	case DANCE_REASON_DNS_ERROR:	return RLM_DANCE_ST_DNS_ERROR;
	default:			return RLM_DANCE_ST_ERROR;
	}
}

/* A DANCE client libdance did not authenticate: log and record why. */
static void rlm_dance_failed(rlm_dance_verify_t *v, struct dance_conn const *c)
{
	enum dance_reason	why = dance_conn_reason_code(c);
	char const		*name = dance_conn_name(c);
	char const		*detail = dance_conn_reason(c);
	char			text[300];

	switch (why) {
	case DANCE_REASON_NOT_ALLOWED:
		snprintf(text, sizeof(text), "%s", detail);
		DLOG_REJECT(v->request, "client %s (%s) rejected: not allowed: %s", name,
			    dance_name_source_str(dance_conn_source(c)), detail);
		break;
	case DANCE_REASON_NOMATCH:
		snprintf(text, sizeof(text), "%s", detail);
		DLOG_REJECT(v->request, "client %s rejected: TLSA does not match: %s", name, detail);
		break;
	case DANCE_REASON_OVERLOAD:
		snprintf(text, sizeof(text), "%s", detail);
		DLOG_REJECT(v->request, "client %s rejected: overload: %s", name, detail);
		break;
	case DANCE_REASON_NODATA:
	case DANCE_REASON_NXDOMAIN:
	case DANCE_REASON_INSECURE:
	case DANCE_REASON_BOGUS:
	case DANCE_REASON_SERVFAIL:
	case DANCE_REASON_TIMEOUT:
	case DANCE_REASON_DNS_ERROR:
		snprintf(text, sizeof(text), "TLSA lookup %s", detail);
		DLOG_REJECT(v->request, "client %s rejected: %s", name, text);
		break;
	default:
		snprintf(text, sizeof(text), "%s", detail);
		DLOG_REJECT(v->request, "client %s rejected: %s: %s", name[0] ? name : "?",
			    dance_reason_str(why), detail);
		break;
	}
	rlm_dance_record(v, name, dance_conn_source(c), rlm_dance_failed_status(why), -1, text);
}

/*
 *	The DANE decision is libdance's (dance_conn_decide): name source
 *	(extension, SAN, EAP identity), allow-list first (no DNS for names
 *	that are not allowed), the waiting caps, the TLSA set with a lookup
 *	bounded by the timeout, then OpenSSL's DANE matcher.  A client that
 *	sent dane_clientid is a DANE client whatever happens; a legacy
 *	client without an allowed name is not one (SKIP: the PKIX result
 *	stands).
 */
static void rlm_dance_judge(rlm_dance_verify_t *v, X509_STORE_CTX *xs)
{
	struct dance_conn	*c;
	enum dance_status	st;
	char			**identity;
	char const		*notes;

	identity = (char **)SSL_get_ex_data(v->ssl, FR_TLS_EX_INDEX_IDENTITY);
	if (identity && *identity && **identity) (void)dance_conn_set_identity(v->ssl, *identity);

	st = dance_conn_decide(v->ssl, xs);
	c = dance_conn_get(v->ssl);

	if (dance_conn_answer(c)) {
		DLOG_DEBUG(v->request, "TLSA for %s %s (%s)", dance_conn_name(c),
			   dance_answer_from_cache(dance_conn_answer(c)) ? "from cache" : "looked up",
			   dance_dns_status_str(dance_answer_status(dance_conn_answer(c))));
	}
	notes = dance_conn_tlsa_notes(c);
	if (notes[0]) WARN("rlm_dance: client %s: unusable TLSA records skipped: %s", dance_conn_name(c), notes);

	switch (st) {
	case DANCE_STATUS_SUCCESS:
		DLOG_DEBUG(v->request, "client %s authenticated by DANE (%s, usage %s, allow entry \"%s\")",
			   dance_conn_name(c), dance_name_source_str(dance_conn_source(c)),
			   fr_int2str(rlm_dance_usage_names, dance_conn_usage(c), "?"),
			   dance_conn_entry(c) ? dance_conn_entry(c) : "?");
		if (!v->request) INFO("rlm_dance: client %s authenticated by DANE (usage %d)",
				   dance_conn_name(c), dance_conn_usage(c));
		rlm_dance_record(v, dance_conn_name(c), dance_conn_source(c), RLM_DANCE_ST_AUTHENTICATED,
				 dance_conn_usage(c), NULL);
		v->verdict = RLM_DANCE_V_PASS;
		break;

	case DANCE_STATUS_NONE:
		DLOG_DEBUG(v->request, "not a DANE client: %s", dance_conn_reason(c));
		rlm_dance_record(v, NULL, DANCE_SRC_NONE,
				 dance_conn_reason_code(c) == DANCE_REASON_NOT_ALLOWED ?
				 RLM_DANCE_ST_NOT_ALLOWED : RLM_DANCE_ST_NO_NAME, -1, dance_conn_reason(c));
		v->verdict = RLM_DANCE_V_SKIP;
		break;

	default:	/* FAILED; PENDING cannot happen with a threaded resolver */
		rlm_dance_failed(v, c);
		v->verdict = RLM_DANCE_V_FAIL;
		break;
	}
	rlm_dance_stats_log_decision(v, c);
}

/*
 *	Errors that mean "no configured CA vouches for this chain".  Only
 *	these hand the decision to DANE: a chain that does reach a
 *	configured CA but is revoked, expired etc. keeps failing as before.
 */
static bool rlm_dance_trust_error(int err)
{
	switch (err) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_DANE_NO_MATCH:
		return true;
	default:
		return false;
	}
}

/*
 *	Wraps FreeRADIUS' per-SSL verify callback (cbtls_verify) for the
 *	duration of one X509_verify_cert().  cbtls_verify still runs for
 *	every certificate and still does everything it does (attributes,
 *	check_cert_cn, OCSP, the external verify command); it only sees
 *	DANE's verdict instead of the missing trust anchor.
 */
static int rlm_dance_verify_step(int ok, X509_STORE_CTX *xs)
{
	rlm_dance_verify_t	*v = X509_STORE_CTX_get_ex_data(xs, rlm_dance_xs_index);
	int			err = X509_STORE_CTX_get_error(xs);

	if (!v) return ok;

	if (!ok && v->verdict == RLM_DANCE_V_UNDECIDED && rlm_dance_trust_error(err)) {
		rlm_dance_judge(v, xs);
	}

	switch (v->verdict) {
	case RLM_DANCE_V_PASS:
		/*
		 *	Swallow the error report: OpenSSL still calls us with
		 *	ok=1 for every depth afterwards, and cbtls_verify must
		 *	see each certificate once (it adds attributes with +=).
		 */
		if (!ok) {
			X509_STORE_CTX_set_error(xs, X509_V_OK);
			return 1;
		}
		break;

	case RLM_DANCE_V_FAIL:
		/*
		 *	DANE's failure, not PKIX's (e.g. self-signed):
		 *	OpenSSL then sends handshake_failure, as the draft
		 *	says, not unknown_ca.
		 */
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		ok = 0;
		break;

	default:
		break;
	}

	return v->orig_cb ? v->orig_cb(ok, xs) : ok;
}

/*
 *	SSL_CTX cert_verify_callback: OpenSSL calls this instead of
 *	X509_verify_cert() after it has put the per-SSL verify callback
 *	(cbtls_verify) into xs.  Per-SSL SSL_set_verify() does not replace
 *	it, which is why this is the hook.
 */
static int rlm_dance_cert_verify(X509_STORE_CTX *xs, void *arg)
{
	rlm_dance_verify_t	v;
	int			ret;

	memset(&v, 0, sizeof(v));
	v.inst = arg;
	v.ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	if (!v.ssl || rlm_dance_xs_index < 0) return X509_verify_cert(xs);
	v.request = SSL_get_ex_data(v.ssl, FR_TLS_EX_INDEX_REQUEST);
	v.orig_cb = X509_STORE_CTX_get_verify_cb(xs);

	/*
	 *	A client that sent dane_clientid asked for DANE, and with
	 *	"require" every client must pass DANE: decide up front,
	 *	PKIX does not get a say.  Under require, a client without a
	 *	name is refused too (with only the extension as name source
	 *	libdance already says FAILED, reason no-ext or protocol).
	 */
	if (v.inst->require || (dance_conn_source(dance_conn_get(v.ssl)) == DANCE_SRC_EXTENSION)) {
		rlm_dance_judge(&v, xs);
		if (v.inst->require && (v.verdict == RLM_DANCE_V_SKIP)) {
			DLOG_REJECT(v.request, "client rejected: DANCE required: %s",
				    dance_conn_reason(dance_conn_get(v.ssl)));
			v.verdict = RLM_DANCE_V_FAIL;
		}
	}

	X509_STORE_CTX_set_ex_data(xs, rlm_dance_xs_index, &v);
	X509_STORE_CTX_set_verify_cb(xs, rlm_dance_verify_step);
	ret = X509_verify_cert(xs);
	X509_STORE_CTX_set_verify_cb(xs, v.orig_cb);
	X509_STORE_CTX_set_ex_data(xs, rlm_dance_xs_index, NULL);

	switch (v.verdict) {
	case RLM_DANCE_V_UNDECIDED:
		if (ret > 0) rlm_dance_record(&v, NULL, DANCE_SRC_NONE, RLM_DANCE_ST_PKIX, -1, NULL);
		break;

	case RLM_DANCE_V_PASS:
		if (ret > 0) X509_STORE_CTX_set_error(xs, X509_V_OK);
		break;

	case RLM_DANCE_V_FAIL:
		if (X509_STORE_CTX_get_error(xs) == X509_V_OK) {
			X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		}
		ret = 0;
		break;

	default:
		break;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Attaching to FreeRADIUS' SSL_CTXs                                   */
/* ------------------------------------------------------------------ */

/*
 *	The FreeRADIUS release this module was compiled against.  Structures
 *	it reads (fr_tls_server_conf_t, rad_listen_t, listen_socket_t) change
 *	between 3.2 releases, so it runs only in a server of that release.
 */
static char const rlm_dance_fr_version[] = RADIUSD_VERSION_STRING;

/* "3.2.10" -> 30210, 0 when unparsable. */
static unsigned int rlm_dance_version_num(char const *version)
{
	unsigned int major, minor, patch;

	if (!version || (sscanf(version, "%u.%u.%u", &major, &minor, &patch) != 3)) return 0;
	return (major * 10000) + (minor * 100) + patch;
}

/*
 *	The running server's version, from the "version" section it adds to
 *	its own configuration (version.freeradius-server).
 */
static int rlm_dance_check_version(CONF_SECTION *conf)
{
	CONF_SECTION	*version = cf_section_sub_find(cf_top_section(conf), "version");
	CONF_PAIR	*cp = version ? cf_pair_find(version, "freeradius-server") : NULL;
	char const	*running = cp ? cf_pair_value(cp) : NULL;

	if (!running) {
		cf_log_err_cs(conf, "rlm_dance: built for FreeRADIUS %s, cannot tell which version is running",
			      rlm_dance_fr_version);
		return -1;
	}
	if (strcmp(running, rlm_dance_fr_version) != 0) {
		cf_log_err_cs(conf, "rlm_dance: built for FreeRADIUS %s, but this is FreeRADIUS %s: "
			      "rebuild rlm_dance against this server (freeradius_module/build.sh)",
			      rlm_dance_fr_version, running);
		return -1;
	}
	return 0;
}

/*
 *	reject_unknown_intermediate_ca is checked by cbtls_verify after our
 *	verdict, on the chain the client sent: a DANE-TA client sends its CA,
 *	so it is rejected although DANE authenticated it (and the session's
 *	DANCE-Status still says Authenticated).  FreeRADIUS before 3.2.7
 *	counts the client's own certificate as untrusted: everybody fails.
 */
static void rlm_dance_warn_untrusted(char const *what)
{
	if (rlm_dance_version_num(rlm_dance_fr_version) < 30207) {
		WARN("rlm_dance: %s sets reject_unknown_intermediate_ca; FreeRADIUS %s then rejects every "
		     "client, DANE-authenticated or not", what, rlm_dance_fr_version);
		return;
	}
	WARN("rlm_dance: %s sets reject_unknown_intermediate_ca; FreeRADIUS then rejects DANE-TA clients "
	     "that send their CA certificate, even after DANE authenticated them (DANCE-Status = Authenticated)",
	     what);
}

/*
 *	tls_server_conf_parse() caches its result on the section, so the
 *	eap module / the listener get the very same fr_tls_server_conf_t
 *	(and SSL_CTX) whether they parse it before or after us.
 */
static int rlm_dance_attach_section(rlm_dance_t *inst, CONF_SECTION *tls_cs, char const *what)
{
	fr_tls_server_conf_t	*conf;
	struct dance_error	err;

	conf = tls_server_conf_parse(tls_cs);
	if (!conf || !conf->ctx) {
		cf_log_err_cs(tls_cs, "rlm_dance: failed parsing TLS configuration of %s", what);
		return -1;
	}

	if (inst->server_cfg.refuse_no_ext) {
		if (conf->max_version && (conf->max_version < TLS1_3_VERSION)) {
			cf_log_err_cs(tls_cs, "rlm_dance: require = yes with name_source = \"extension\" needs "
				      "TLS 1.3 in %s: set tls_max_version = \"1.3\"", what);
			return -1;
		}
		if ((strncmp(what, "RADIUS/TLS", 10) == 0) && !conf->require_client_cert) {
			cf_log_err_cs(tls_cs, "rlm_dance: require = yes needs require_client_cert = yes in %s",
				      what);
			return -1;
		}
	}

	memset(&err, 0, sizeof(err));
	if (dance_tls_server_attach(inst->server, conf->ctx, 1, &err) != DANCE_OK) {
		cf_log_err_cs(tls_cs, "rlm_dance: cannot attach to %s: %s", what, err.reason);
		return -1;
	}
	SSL_CTX_set_cert_verify_callback(conf->ctx, rlm_dance_cert_verify, inst);

	if (conf->realm_dir) {
		WARN("rlm_dance: %s uses realm_dir; DANE is only active on its default certificate's SSL_CTX", what);
	}
	if (conf->ocsp_enable && !conf->ocsp_softfail) {
		WARN("rlm_dance: %s has OCSP enabled without softfail; DANE-EE clients have no issuer to ask", what);
	}
	if (conf->disallow_untrusted) rlm_dance_warn_untrusted(what);
	inst->attached++;
	cf_log_info(tls_cs, "rlm_dance: DANE client authentication enabled on %s", what);
	return 0;
}

static int rlm_dance_attach_eap(rlm_dance_t *inst, CONF_SECTION *conf)
{
	CONF_SECTION	*modules, *eap_cs, *tls_cs;
	CONF_PAIR	*cp;
	char		what[256];

	modules = cf_item_parent(cf_section_to_item(conf));
	if (!modules) return 0;

	eap_cs = cf_section_sub_find(modules, inst->eap_module);
	if (!eap_cs) eap_cs = cf_section_sub_find_name2(modules, "eap", inst->eap_module);
	if (!eap_cs) {
		WARN("rlm_dance: no module \"%s\" found, not attaching to EAP-TLS", inst->eap_module);
		return 0;
	}

	for (cp = cf_pair_find(conf, "eap_tls_config"); cp; cp = cf_pair_find_next(conf, cp, "eap_tls_config")) {
		char const *name = cf_pair_value(cp);

		if (!name || !*name) continue;
		tls_cs = cf_section_sub_find_name2(eap_cs, "tls-config", name);
		if (!tls_cs) {
			cf_log_err_cp(cp, "rlm_dance: module %s has no \"tls-config %s\" section",
				      inst->eap_module, name);
			return -1;
		}
		snprintf(what, sizeof(what), "%s tls-config %s", inst->eap_module, name);
		if (rlm_dance_attach_section(inst, tls_cs, what) < 0) return -1;
	}
	return 0;
}

static int rlm_dance_attach_listeners(rlm_dance_t *inst, CONF_SECTION *parent, char const *where)
{
	CONF_SECTION	*listen, *tls_cs;
	char		what[256];

	for (listen = cf_subsection_find_next(parent, NULL, "listen");
	     listen;
	     listen = cf_subsection_find_next(parent, listen, "listen")) {
		tls_cs = cf_section_sub_find(listen, "tls");
		if (!tls_cs) continue;
		snprintf(what, sizeof(what), "RADIUS/TLS listener%s%s", where ? " of server " : "", where ? where : "");
		if (rlm_dance_attach_section(inst, tls_cs, what) < 0) return -1;
	}
	return 0;
}

static int rlm_dance_attach_radsec(rlm_dance_t *inst, CONF_SECTION *conf)
{
	CONF_SECTION	*root = cf_top_section(conf);
	CONF_SECTION	*server;

	if (rlm_dance_attach_listeners(inst, root, NULL) < 0) return -1;
	for (server = cf_subsection_find_next(root, NULL, "server");
	     server;
	     server = cf_subsection_find_next(root, server, "server")) {
		if (rlm_dance_attach_listeners(inst, server, cf_section_name2(server)) < 0) return -1;
	}
	return 0;
}

/*
 *	Since 3.2.7 a RADIUS/TLS client may have a tls section of its own:
 *	connections from it use that SSL_CTX instead of the listener's.
 *	Clients are read from the top level, from "clients" groups and from
 *	virtual servers.  Clients created at run time (dynamic_clients)
 *	cannot be hooked here: their tls section, if any, is parsed later.
 */
static int rlm_dance_attach_clients(rlm_dance_t *inst, CONF_SECTION *parent, char const *of)
{
	CONF_SECTION	*client, *tls_cs;
	CONF_PAIR	*proto;
	char		what[256];

	for (client = cf_subsection_find_next(parent, NULL, "client");
	     client;
	     client = cf_subsection_find_next(parent, client, "client")) {
		tls_cs = cf_section_sub_find(client, "tls");
		proto = cf_pair_find(client, "proto");
		if (cf_pair_find(client, "dynamic_clients") &&
		    (tls_cs || (proto && cf_pair_value(proto) && (strcmp(cf_pair_value(proto), "tls") == 0)))) {
			WARN("rlm_dance: client %s%s defines dynamic RADIUS/TLS clients; a tls section of "
			     "their own is not hooked, DANCE is off for them (those using the listener's TLS "
			     "are covered)", cf_section_name2(client), of);
		}
		if (!tls_cs) continue;
		snprintf(what, sizeof(what), "RADIUS/TLS client %s%s", cf_section_name2(client), of);
		if (rlm_dance_attach_section(inst, tls_cs, what) < 0) return -1;
	}
	return 0;
}

static int rlm_dance_attach_client_tls(rlm_dance_t *inst, CONF_SECTION *conf)
{
	CONF_SECTION	*root = cf_top_section(conf);
	CONF_SECTION	*cs;
	char		of[160];

	if (rlm_dance_version_num(rlm_dance_fr_version) < 30207) return 0;

	if (rlm_dance_attach_clients(inst, root, "") < 0) return -1;
	for (cs = cf_subsection_find_next(root, NULL, "clients");
	     cs;
	     cs = cf_subsection_find_next(root, cs, "clients")) {
		snprintf(of, sizeof(of), " of clients %s", cf_section_name2(cs) ? cf_section_name2(cs) : "");
		if (rlm_dance_attach_clients(inst, cs, of) < 0) return -1;
	}
	for (cs = cf_subsection_find_next(root, NULL, "server");
	     cs;
	     cs = cf_subsection_find_next(root, cs, "server")) {
		snprintf(of, sizeof(of), " of server %s", cf_section_name2(cs) ? cf_section_name2(cs) : "");
		if (rlm_dance_attach_clients(inst, cs, of) < 0) return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Metrics: %{dance:stats}, %{dance:<figure>}, the summary line         */
/* ------------------------------------------------------------------ */

/*
 *	The core's metric set (dance.h, "Metrics"): the same figures as
 *	nginx's dance_status and dance-server --metrics, on one line of
 *	key=value words (dance_metrics_format_line()).  %{dance:stats} is
 *	that line, %{dance:<key>} one figure of it, e.g.
 *	%{dance:verdicts_success} or %{dance:failures_timeout}, for a status
 *	virtual server.  With stats_interval > 0 the line also goes to
 *	radius.log every stats_interval seconds.
 */
typedef struct rlm_dance_stats_s {
	struct dance_metrics		*metrics;
	struct dance_resolver_stats	last;	/* the resolver's, added so far */
	pthread_mutex_t			mu;	/* last, and the summary thread */
	pthread_cond_t			cv;
	pthread_t			thread;
	bool				running;
	bool				stop;
} rlm_dance_stats_t;

/* The summary line, the resolver's latest figures added. */
static void rlm_dance_stats_line(rlm_dance_t *inst, char *buf, size_t len)
{
	rlm_dance_stats_t *st = inst->stats;

	pthread_mutex_lock(&st->mu);
	dance_metrics_resolver_sync(st->metrics, inst->resolver, &st->last);
	pthread_mutex_unlock(&st->mu);
	(void)dance_metrics_format_line(st->metrics, buf, len);
}

static ssize_t rlm_dance_stats_xlat(void *instance, UNUSED REQUEST *request, char const *fmt,
				    char *out, size_t outlen)
{
	rlm_dance_t	*inst = instance;
	char		line[4096], key[128];
	char const	*p;
	size_t		klen;

	rlm_dance_stats_line(inst, line, sizeof(line));
	while (isspace((uint8_t)*fmt)) fmt++;
	if (strcmp(fmt, "stats") == 0) return strlcpy(out, line, outlen) >= outlen ? -1 : (ssize_t)strlen(out);

	klen = snprintf(key, sizeof(key), "%s=", fmt);
	if (klen >= sizeof(key) || strchr(fmt, ' ')) goto unknown;
	for (p = line; (p = strstr(p, key)) != NULL; p += klen) {
		if ((p == line) || (p[-1] == ' ')) {
			size_t n = strcspn(p + klen, " ");

			if (n >= outlen) return -1;
			memcpy(out, p + klen, n);
			out[n] = '\0';
			return n;
		}
	}
unknown:
	REDEBUG("%s: unknown figure \"%s\" (use stats, or a key of %%{%s:stats})", inst->xlat_name, fmt,
		inst->xlat_name);
	*out = '\0';
	return -1;
}

static void *rlm_dance_stats_thread(void *arg)
{
	rlm_dance_t		*inst = arg;
	rlm_dance_stats_t	*st = inst->stats;
	struct timespec		ts;
	char			line[4096];
	int			rc;

	pthread_mutex_lock(&st->mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	while (!st->stop) {
		ts.tv_sec += inst->stats_interval;
		do {
			rc = pthread_cond_timedwait(&st->cv, &st->mu, &ts);
		} while (!st->stop && (rc != ETIMEDOUT));
		if (st->stop) break;
		pthread_mutex_unlock(&st->mu);
		rlm_dance_stats_line(inst, line, sizeof(line));
		INFO("rlm_dance (%s): stats %s", inst->xlat_name, line);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static int rlm_dance_stats_init(rlm_dance_t *inst, CONF_SECTION *conf)
{
	rlm_dance_stats_t *st;

	st = talloc_zero(inst, rlm_dance_stats_t);
	if (!st || !(st->metrics = dance_metrics_new())) {
		cf_log_err_cs(conf, "rlm_dance: out of memory");
		return -1;
	}
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	inst->stats = st;
	dance_tls_server_set_metrics(inst->server, st->metrics);
	if (inst->stats_interval == 0) return 0;
	if (pthread_create(&st->thread, NULL, rlm_dance_stats_thread, inst) != 0) {
		cf_log_err_cs(conf, "rlm_dance: cannot start the stats_interval thread");
		return -1;
	}
	st->running = true;
	return 0;
}

static void rlm_dance_stats_free(rlm_dance_t *inst)
{
	rlm_dance_stats_t *st = inst->stats;

	if (!st) return;
	if (st->running) {
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	dance_metrics_free(st->metrics);
	inst->stats = NULL;
}

/*
 *	The core's line for a DANE decision (same fields as in every host).
 *	The client is the supplicant's Calling-Station-Id for EAP, else the
 *	packet's source address (RADIUS/TLS).
 */
static void rlm_dance_stats_log_decision(rlm_dance_verify_t *v, struct dance_conn const *c)
{
	char		client[128], line[600];
	VALUE_PAIR	*vp;

	client[0] = '\0';
	if (v->request && v->request->packet) {
		vp = fr_pair_find_by_num(v->request->packet->vps, PW_CALLING_STATION_ID, 0, TAG_ANY);
		if (vp && (vp->vp_length > 0)) {
			(void)dance_escape(vp->vp_strvalue, vp->vp_length, client, sizeof(client));
		} else {
			(void)inet_ntop(v->request->packet->src_ipaddr.af,
					&v->request->packet->src_ipaddr.ipaddr, client, sizeof(client));
		}
	}
	INFO("rlm_dance: %s", dance_conn_log_line(c, client, line, sizeof(line)));
}

/* ------------------------------------------------------------------ */
/* Module interface                                                    */
/* ------------------------------------------------------------------ */

static int mod_bootstrap(CONF_SECTION *conf, void *instance)
{
	rlm_dance_t	*inst = instance;
	ATTR_FLAGS	flags;
	int		i, j;

	inst->xlat_name = cf_section_name2(conf);
	if (!inst->xlat_name) inst->xlat_name = cf_section_name1(conf);
	xlat_register(inst->xlat_name, rlm_dance_stats_xlat, NULL, inst);

	memset(&flags, 0, sizeof(flags));
	for (i = 0; rlm_dance_attrs[i].name; i++) {
		if (dict_attrbyname(rlm_dance_attrs[i].name)) continue;
		if (dict_addattr(rlm_dance_attrs[i].name, rlm_dance_attrs[i].attr, 0, rlm_dance_attrs[i].type, flags) < 0) {
			cf_log_err_cs(conf, "rlm_dance: failed creating attribute %s: %s",
				      rlm_dance_attrs[i].name, fr_strerror());
			return -1;
		}
		if (!rlm_dance_attrs[i].values) continue;
		for (j = 0; rlm_dance_attrs[i].values[j].name; j++) {
			if (dict_addvalue(rlm_dance_attrs[i].values[j].name, rlm_dance_attrs[i].name,
					  rlm_dance_attrs[i].values[j].number) < 0) {
				cf_log_err_cs(conf, "rlm_dance: failed creating value %s: %s",
					      rlm_dance_attrs[i].values[j].name, fr_strerror());
				return -1;
			}
		}
	}
	return 0;
}

static int rlm_dance_parse_sources(rlm_dance_t *inst, CONF_SECTION *conf)
{
	struct dance_error	err;

	memset(&err, 0, sizeof(err));
	if (dance_name_sources_parse(inst->name_source, &inst->server_cfg.sources, &err) != DANCE_OK) {
		cf_log_err_cs(conf, "rlm_dance: name_source: %s", err.reason);
		return -1;
	}
	return 0;
}

static int rlm_dance_build_policy(rlm_dance_t *inst, CONF_SECTION *conf)
{
	CONF_PAIR		*cp;
	struct dance_error	err;

	inst->policy = dance_policy_new();
	if (!inst->policy) return -1;
	for (cp = cf_pair_find(conf, "allow"); cp; cp = cf_pair_find_next(conf, cp, "allow")) {
		memset(&err, 0, sizeof(err));
		if (dance_policy_add(inst->policy, cf_pair_value(cp), &err) != DANCE_OK) {
			cf_log_err_cp(cp, "rlm_dance: bad allow entry \"%s\": %s", cf_pair_value(cp), err.reason);
			return -1;
		}
	}
	return 0;
}

/* NULL-terminated array of every value of a (multi) item, or NULL. */
static char const **rlm_dance_multi(TALLOC_CTX *ctx, CONF_SECTION *conf, char const *item)
{
	CONF_PAIR	*cp;
	char const	**out;
	size_t		n = 0;

	for (cp = cf_pair_find(conf, item); cp; cp = cf_pair_find_next(conf, cp, item)) n++;
	if (n == 0) return NULL;
	out = talloc_zero_array(ctx, char const *, n + 1);
	if (!out) return NULL;
	n = 0;
	for (cp = cf_pair_find(conf, item); cp; cp = cf_pair_find_next(conf, cp, item)) {
		out[n++] = cf_pair_value(cp);
	}
	return out;
}

static int rlm_dance_build_resolver(rlm_dance_t *inst, CONF_SECTION *conf)
{
	struct dance_resolver_cfg	cfg;
	struct dance_error		err;

	dance_resolver_cfg_init(&cfg);
	cfg.mode = DANCE_RESOLVER_THREADED;
	cfg.trust_anchor_files = rlm_dance_multi(inst, conf, "trust_anchor_file");
	cfg.forwarders = rlm_dance_multi(inst, conf, "forwarder");
	cfg.trust_ad = inst->trust_ad;
	cfg.forward_tls = inst->forward_tls;
	cfg.tls_ca_file = inst->tls_ca_file;
	cfg.unbound_conf = inst->unbound_conf;
	cfg.timeout_ms = inst->timeout;
	cfg.max_pending = inst->max_pending;
	cfg.cache_size = inst->cache_size;
	cfg.min_ttl = inst->min_ttl;
	cfg.max_ttl = inst->max_ttl;
	cfg.neg_ttl = inst->neg_ttl;
	cfg.fail_ttl = inst->fail_ttl;

	if (!cfg.trust_anchor_files && !cfg.trust_ad) {
		cf_log_err_cs(conf, "rlm_dance: set trust_anchor_file (local DNSSEC validation) "
			      "or trust_ad = yes (trusted validating forwarders)");
		return -1;
	}

	memset(&err, 0, sizeof(err));
	inst->resolver = dance_resolver_new(&cfg, &err);
	if (!inst->resolver) {
		cf_log_err_cs(conf, "rlm_dance: resolver: %s", err.reason);
		return -1;
	}
	return 0;
}

static int mod_instantiate(CONF_SECTION *conf, void *instance)
{
	rlm_dance_t		*inst = instance;
	struct dance_error	err;

	if (rlm_dance_check_version(conf) < 0) return -1;

	pthread_once(&rlm_dance_index_once, rlm_dance_index_init);
	if (rlm_dance_xs_index < 0) {
		cf_log_err_cs(conf, "rlm_dance: no OpenSSL ex_data index");
		return -1;
	}

	FR_INTEGER_BOUND_CHECK("timeout", inst->timeout, >=, 100);
	FR_INTEGER_BOUND_CHECK("timeout", inst->timeout, <=, 60000);
	FR_INTEGER_BOUND_CHECK("max_waiting", inst->max_waiting, >=, 1);
	FR_INTEGER_BOUND_CHECK("max_waiting", inst->max_waiting, <=, 4096);
	FR_INTEGER_BOUND_CHECK("max_waiting_per_domain", inst->max_waiting_per_domain, >=, 1);
	FR_INTEGER_BOUND_CHECK("max_waiting_per_domain", inst->max_waiting_per_domain, <=, inst->max_waiting);
	FR_INTEGER_BOUND_CHECK("max_pending", inst->max_pending, >=, 1);
	memset(&err, 0, sizeof(err));
	if (dance_ext_type_check(inst->ext_type, &err) != DANCE_OK) {
		cf_log_err_cs(conf, "rlm_dance: ext_type %u: %s", inst->ext_type, err.reason);
		return -1;
	}
	if (inst->min_ttl > inst->max_ttl) {
		cf_log_err_cs(conf, "rlm_dance: min_ttl is larger than max_ttl");
		return -1;
	}

	if (rlm_dance_parse_sources(inst, conf) < 0) return -1;
	if (rlm_dance_build_policy(inst, conf) < 0) return -1;

	if (rlm_dance_build_resolver(inst, conf) < 0) return -1;

	memset(&err, 0, sizeof(err));
	inst->matcher = dance_matcher_new(inst->pkix_ca_file, &err);
	if (!inst->matcher) {
		cf_log_err_cs(conf, "rlm_dance: matcher: %s", err.reason);
		return -1;
	}

	/*
	 *	The verdict is made in our cert_verify_callback
	 *	(dance_conn_decide, with a bounded blocking lookup), so
	 *	libdance's handshake glue only registers the extension and
	 *	records the name (arming OpenSSL's DANE on a cache hit): no
	 *	lookup from the extension callback, no verify callback of its
	 *	own, and no refusal inside OpenSSL (defer_refuse), where there
	 *	is no FreeRADIUS request to log name and reason on.  The
	 *	allow-list still applies before any DNS query.
	 */
	inst->server_cfg.ext_type = inst->ext_type;
	inst->server_cfg.policy = inst->policy;
	inst->server_cfg.resolver = inst->resolver;
	inst->server_cfg.matcher = inst->matcher;
	inst->server_cfg.required = 0;
	inst->server_cfg.lookup_in_handshake = 0;
	inst->server_cfg.defer_refuse = 1;
	inst->server_cfg.max_waiting = inst->max_waiting;
	inst->server_cfg.max_waiting_per_entry = inst->max_waiting_per_domain;
	/*
	 *	DANCE required and the extension the only name source: the
	 *	draft's MUSTs in the handshake (libdance: TLS 1.3 only, a
	 *	certificate without dane_clientid fails with
	 *	handshake_failure).  A certificate is mandatory already:
	 *	EAP-TLS always asks for one, listeners are checked below.
	 */
	inst->server_cfg.refuse_no_ext = inst->require && (inst->server_cfg.sources.n == 1) &&
		(inst->server_cfg.sources.src[0] == DANCE_SRC_EXTENSION);
	memset(&err, 0, sizeof(err));
	inst->server = dance_tls_server_new(&inst->server_cfg, &err);
	if (!inst->server) {
		cf_log_err_cs(conf, "rlm_dance: %s", err.reason);
		return -1;
	}

	if (rlm_dance_stats_init(inst, conf) < 0) return -1;
	if (rlm_dance_attach_eap(inst, conf) < 0) return -1;
	if (inst->radsec && (rlm_dance_attach_radsec(inst, conf) < 0)) return -1;
	if (inst->radsec && (rlm_dance_attach_client_tls(inst, conf) < 0)) return -1;
	if (inst->attached == 0) {
		WARN("rlm_dance (%s): not attached to any TLS configuration", inst->xlat_name);
	}
	return 0;
}

static int mod_detach(void *instance)
{
	rlm_dance_t *inst = instance;

	/*
	 *	The SSL_CTXs may outlive us on HUP; unhook them is not
	 *	possible without their list, so the server must not be
	 *	freed while they are live.  FreeRADIUS 3 frees modules only
	 *	at exit, after the TLS configurations.
	 */
	if (inst->server) dance_tls_server_free(inst->server);
	rlm_dance_stats_free(inst);
	if (inst->matcher) dance_matcher_free(inst->matcher);
	if (inst->resolver) dance_resolver_free(inst->resolver);
	if (inst->policy) dance_policy_free(inst->policy);
	return 0;
}

/*
 *	post-auth: one log line per DANE decision, and "ok" for DANE
 *	clients so unlang can branch on it.  The attributes themselves are
 *	already in the request (copied from the TLS session by EAP /
 *	the RADSEC listener).
 */
static rlm_rcode_t CC_HINT(nonnull) mod_post_auth(void *instance, REQUEST *request)
{
	rlm_dance_t	*inst = instance;
	VALUE_PAIR	*status, *name;

	status = fr_pair_find_by_num(request->packet->vps, 3441, 0, TAG_ANY);
	if (!status) return RLM_MODULE_NOOP;
	name = fr_pair_find_by_num(request->packet->vps, 3440, 0, TAG_ANY);

	RDEBUG2("%s: client %s status %s", inst->xlat_name, name ? name->vp_strvalue : "-",
		fr_int2str(rlm_dance_status_names, status->vp_integer, "?"));
	switch (status->vp_integer) {
	case RLM_DANCE_ST_AUTHENTICATED:
		return RLM_MODULE_OK;
	case RLM_DANCE_ST_PKIX:
	case RLM_DANCE_ST_NO_NAME:
		return RLM_MODULE_NOOP;
	default:
		return RLM_MODULE_REJECT;
	}
}

/*
 *	authorize / preacct: RADIUS/TLS (RADSEC) requests carry the DANCE-*
 *	attributes of their connection.  FreeRADIUS 3.2 copies a
 *	connection's certificate attributes only into the one fake request
 *	of check_client_connections, so the module copies ours into every
 *	request read from a TLS listener.  EAP requests get the attributes
 *	of their own EAP-TLS session from the eap module instead; those are
 *	left alone (the supplicant is not the access point).
 */
static rlm_rcode_t CC_HINT(nonnull) mod_authorize(UNUSED void *instance, REQUEST *request)
{
	rad_listen_t		*listener = request->listener;
	listen_socket_t		*sock;
	VALUE_PAIR		*vp;
	int			i;

	if (!listener || !listener->tls) return RLM_MODULE_NOOP;
	if ((listener->type != RAD_LISTEN_AUTH) && (listener->type != RAD_LISTEN_ACCT)) return RLM_MODULE_NOOP;
	if (fr_pair_find_by_num(request->packet->vps, PW_EAP_MESSAGE, 0, TAG_ANY)) return RLM_MODULE_NOOP;
	if (fr_pair_find_by_num(request->packet->vps, 3441, 0, TAG_ANY)) return RLM_MODULE_NOOP;

	sock = listener->data;
	if (!sock || !sock->certs) return RLM_MODULE_NOOP;

	for (i = 0; rlm_dance_attrs[i].name; i++) {
		vp = fr_pair_list_copy_by_num(request->packet, sock->certs, rlm_dance_attrs[i].attr, 0, TAG_ANY);
		if (vp) fr_pair_add(&request->packet->vps, vp);
	}
	vp = fr_pair_find_by_num(request->packet->vps, 3441, 0, TAG_ANY);
	if (!vp) return RLM_MODULE_NOOP;
	RDEBUG2("RADIUS/TLS connection: DANCE-Status = %s", fr_int2str(rlm_dance_status_names, vp->vp_integer, "?"));
	return RLM_MODULE_UPDATED;
}

extern module_t rlm_dance;
module_t rlm_dance = {
	.magic		= RLM_MODULE_INIT,
	.name		= "dance",
	.type		= RLM_TYPE_THREAD_SAFE,
	.inst_size	= sizeof(rlm_dance_t),
	.config		= module_config,
	.bootstrap	= mod_bootstrap,
	.instantiate	= mod_instantiate,
	.detach		= mod_detach,
	.methods = {
		[MOD_AUTHORIZE]		= mod_authorize,
		[MOD_PREACCT]		= mod_authorize,
		[MOD_POST_AUTH]		= mod_post_auth
	},
};
