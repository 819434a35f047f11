/*
 * status.c -- the one text of each decision status and reason, the
 * name sources and their configuration syntax: what every host prints
 * and parses, defined once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls_int.h"

/* ------------------------------------------------------------------ */
/* Status texts, reason words, name sources                            */
/* ------------------------------------------------------------------ */

/* One word and one FAILED text per reason (static: hosts print them
 * without allocating). */
static const struct {
	const char *word;
	const char *failed;
} reasons[] = {
	[DANCE_REASON_OK] =		{ "ok",		 "FAILED:ok" },
	[DANCE_REASON_NO_EXT] =		{ "no-ext",	 "FAILED:no-ext" },
	[DANCE_REASON_NO_CERT] =	{ "no-cert",	 "FAILED:no-cert" },
	[DANCE_REASON_NO_NAME] =	{ "no-name",	 "FAILED:no-name" },
	[DANCE_REASON_BAD_NAME] =	{ "bad-name",	 "FAILED:bad-name" },
	[DANCE_REASON_PROTOCOL] =	{ "protocol",	 "FAILED:protocol" },
	[DANCE_REASON_NOT_ALLOWED] =	{ "not-allowed", "FAILED:not-allowed" },
	[DANCE_REASON_NXDOMAIN] =	{ "nxdomain",	 "FAILED:nxdomain" },
	[DANCE_REASON_NODATA] =		{ "nodata",	 "FAILED:nodata" },
	[DANCE_REASON_INSECURE] =	{ "insecure",	 "FAILED:insecure" },
	[DANCE_REASON_BOGUS] =		{ "bogus",	 "FAILED:bogus" },
	[DANCE_REASON_SERVFAIL] =	{ "servfail",	 "FAILED:servfail" },
	[DANCE_REASON_TIMEOUT] =	{ "timeout",	 "FAILED:timeout" },
	[DANCE_REASON_OVERLOAD] =	{ "overload",	 "FAILED:overload" },
	[DANCE_REASON_DNS_ERROR] =	{ "dns-error",	 "FAILED:dns-error" },
	[DANCE_REASON_NOMATCH] =	{ "nomatch",	 "FAILED:nomatch" },
	[DANCE_REASON_INTERNAL] =	{ "internal",	 "FAILED:internal" },
};

const char *
dance_reason_str(enum dance_reason r)
{
	if ((unsigned)r > DANCE_REASON_MAX)
		return "unknown";
	return reasons[r].word;
}

const char *
dance_status_text(enum dance_status st, enum dance_reason r)
{
	switch (st) {
	case DANCE_STATUS_SUCCESS:
		return "SUCCESS";
	case DANCE_STATUS_PENDING:
		return "PENDING";
	case DANCE_STATUS_FAILED:
		if ((unsigned)r > DANCE_REASON_MAX)
			return "FAILED:unknown";
		return reasons[r].failed;
	case DANCE_STATUS_NONE:
		break;
	}
	return "NONE";
}

static const char *const source_names[] = {
	[DANCE_SRC_NONE] = "none",
	[DANCE_SRC_EXTENSION] = "extension",
	[DANCE_SRC_SAN] = "san",
	[DANCE_SRC_IDENTITY] = "identity",
};

const char *
dance_name_source_str(enum dance_name_source src)
{
	if ((unsigned)src > DANCE_SRC_MAX)
		return "unknown";
	return source_names[src];
}

int
dance_name_sources_parse(const char *spec, struct dance_name_sources *out,
	struct dance_error *err)
{
	struct dance_name_sources s;
	const char *p = spec, *w;
	size_t len;
	unsigned i, k;

	memset(&s, 0, sizeof(s));
	while (p != NULL && *p != '\0') {
		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		w = p;
		len = strcspn(p, ", \t");
		p += len;
		for (k = DANCE_SRC_EXTENSION; k <= DANCE_SRC_MAX; k++) {
			if (strlen(source_names[k]) == len &&
			    strncasecmp(w, source_names[k], len) == 0)
				break;
		}
		/* hostapd's configuration spells it "ext". */
		if (len == 3 && strncasecmp(w, "ext", 3) == 0)
			k = DANCE_SRC_EXTENSION;
		if (k > DANCE_SRC_MAX)
			return dance_err_set(err, DANCE_ERR_CONFIG, "unknown "
				"name source \"%.*s\" (use extension or ext, "
				"san, identity)", (int)(len > 64 ? 64 : len), w);
		for (i = 0; i < s.n; i++) {
			if (s.src[i] == (enum dance_name_source)k)
				return dance_err_set(err, DANCE_ERR_CONFIG,
					"name source \"%s\" given twice",
					source_names[k]);
		}
		s.src[s.n++] = (enum dance_name_source)k;
	}
	if (s.n == 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "no name source "
			"(use extension, san, identity)");
	*out = s;
	return DANCE_OK;
}

enum dance_reason
dance_reason_of_code(enum dance_code code)
{
	switch (code) {
	case DANCE_OK:			return DANCE_REASON_OK;
	case DANCE_ERR_NAME:		return DANCE_REASON_BAD_NAME;
	case DANCE_ERR_NOT_ALLOWED:	return DANCE_REASON_NOT_ALLOWED;
	case DANCE_ERR_PROTOCOL:	return DANCE_REASON_PROTOCOL;
	case DANCE_ERR_DNS:		return DANCE_REASON_DNS_ERROR;
	case DANCE_ERR_NOMATCH:		return DANCE_REASON_NOMATCH;
	case DANCE_ERR_OVERLOAD:	return DANCE_REASON_OVERLOAD;
	case DANCE_ERR_TIMEOUT:		return DANCE_REASON_TIMEOUT;
	default:			return DANCE_REASON_INTERNAL;
	}
}

enum dance_reason
dance_reason_of_dns(enum dance_dns_status st)
{
	switch (st) {
	case DANCE_DNS_SECURE:		return DANCE_REASON_OK;
	case DANCE_DNS_NODATA:		return DANCE_REASON_NODATA;
	case DANCE_DNS_NXDOMAIN:	return DANCE_REASON_NXDOMAIN;
	case DANCE_DNS_INSECURE:	return DANCE_REASON_INSECURE;
	case DANCE_DNS_BOGUS:		return DANCE_REASON_BOGUS;
	case DANCE_DNS_SERVFAIL:	return DANCE_REASON_SERVFAIL;
	case DANCE_DNS_TIMEOUT:		return DANCE_REASON_TIMEOUT;
	case DANCE_DNS_OVERLOAD:	return DANCE_REASON_OVERLOAD;
	case DANCE_DNS_ERROR:		break;
	}
	return DANCE_REASON_DNS_ERROR;
}

