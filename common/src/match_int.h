/*
 * match_int.h -- internal helpers shared by match.c and tls.c.
 * Not installed; hosts use dance.h only.
 */
#ifndef DANCE_MATCH_INT_H
#define DANCE_MATCH_INT_H

#include <stddef.h>

/*
 * Human-readable reason for an X509 verification error met while
 * matching a client certificate with DANE: a short explanation in
 * DANCE terms (e.g. "name not in certificate SAN (DANE-TA/PKIX)") plus
 * OpenSSL's error string and the chain depth.
 */
void dance_verify_reason(int xerr, int depth, char *buf, size_t len);

#endif /* DANCE_MATCH_INT_H */
