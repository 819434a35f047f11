/*
 * dance_int.h -- internal helpers shared by the libdance sources.
 * Not installed; hosts use dance.h only.
 */
#ifndef DANCE_INT_H
#define DANCE_INT_H

#include "dance.h"

/* Fill err (may be NULL) with code and a printf-style reason; returns
 * code so callers can write "return dance_err_set(...)". */
int dance_err_set(struct dance_error *err, enum dance_code code,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lower-case an ASCII string in place. */
void dance_str_lower(char *s);

#endif /* DANCE_INT_H */
