/*
 * dance_int.h -- internal helpers shared by the libdance sources.
 * Not installed; hosts use dance.h only.
 */
#ifndef DANCE_INT_H
#define DANCE_INT_H

#include "dance.h"

/* The answer behind the accessors of dance.h. */
struct dance_answer {
	enum dance_dns_status status;
	char name[DANCE_NAME_MAX + 1];
	char why[256];		/* reason for non-secure outcomes */
	uint32_t ttl;		/* seconds this answer may be cached (as
				 * computed when it was made; cached copies
				 * keep it) */
	size_t n;
	struct dance_tlsa *rr;	/* n records */
	int from_cache;		/* 1: served from the resolver cache (the
				 * cache keeps its own immutable copy with
				 * this set); 0: fresh from a query */
	int refs;		/* atomic; answers may cross threads */
};


/* Fill err (may be NULL) with code and a printf-style reason; returns
 * code so callers can write "return dance_err_set(...)". */
int dance_err_set(struct dance_error *err, enum dance_code code,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lower-case an ASCII string in place. */
void dance_str_lower(char *s);

#endif /* DANCE_INT_H */
