/*
 * tlsa.c -- one TLSA RDATA (RFC 6698 section 2.1).
 *
 * Only the structure is checked here: 3 header octets and a non-empty
 * association.  Digest lengths are enforced for the two digests we know
 * (SHA2-256: 32, SHA2-512: 64), because a wrong length can never match
 * and usually means corrupted data.  Unknown usage, selector and
 * matching-type values are accepted: RFC 7671 (digest agility) wants
 * such records ignored, not fatal to the RRset, and OpenSSL's
 * SSL_dane_tlsa_add() skips them (returns 0) without failing.
 */
#include "dance_int.h"

#define TLSA_HDR 3

static size_t
digest_len(uint8_t mtype)
{
	switch (mtype) {
	case 1: return 32;	/* SHA2-256 */
	case 2: return 64;	/* SHA2-512 */
	default: return 0;	/* full data or unknown: any length */
	}
}

int
dance_tlsa_parse(const unsigned char *rdata, size_t len,
	struct dance_tlsa *tlsa, struct dance_error *err)
{
	size_t dlen, want;

	if (rdata == NULL || len < TLSA_HDR + 1)
		return dance_err_set(err, DANCE_ERR_DNS, "TLSA rdata too "
			"short (%zu octets, need at least %d)",
			rdata == NULL ? (size_t)0 : len, TLSA_HDR + 1);
	dlen = len - TLSA_HDR;
	want = digest_len(rdata[2]);
	if (want != 0 && dlen != want)
		return dance_err_set(err, DANCE_ERR_DNS, "TLSA %u %u %u: "
			"digest is %zu octets, matching type %u needs %zu",
			rdata[0], rdata[1], rdata[2], dlen, rdata[2], want);
	if (tlsa != NULL) {
		tlsa->usage = rdata[0];
		tlsa->selector = rdata[1];
		tlsa->mtype = rdata[2];
		tlsa->len = dlen;
		/* Points into rdata (documented); the cast drops const
		 * because struct dance_tlsa is also used for owned data. */
		tlsa->data = (unsigned char *)(rdata + TLSA_HDR);
	}
	return DANCE_OK;
}
