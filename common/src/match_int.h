/*
 * match_int.h -- internal helpers of match.c for the TLS glue.
 * Not installed; hosts use dance.h only.
 */
#ifndef DANCE_MATCH_INT_H
#define DANCE_MATCH_INT_H

#include <stddef.h>

#include "dance.h"

/*
 * Human-readable reason for an X509 verification error met while
 * matching a client certificate with DANE: a short explanation in
 * DANCE terms (e.g. "name not in certificate SAN (DANE-TA/PKIX)") plus
 * OpenSSL's error string and the chain depth.
 */
void dance_verify_reason(int xerr, int depth, char *buf, size_t len);

/* dance_ssl_arm(), and the reasons of unusable records into notes
 * (noteslen octets, "" when all were usable; notes may be NULL). */
int dance_ssl_arm_notes(SSL *ssl, const struct dance_answer *a, char *notes,
	size_t noteslen, struct dance_error *err);

#endif /* DANCE_MATCH_INT_H */
