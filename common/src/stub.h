/*
 * stub.h -- internal: the DNS stub transport of trust_ad mode.
 *
 * Without trust anchors, a validating resolver we trust does the work and
 * its AD bit is the verdict.  libunbound cannot pass that bit on, so this
 * sends the TLSA query itself: UDP with EDNS0 DO to the forwarders in
 * turn, TCP when the answer is truncated.  Every query socket sits in one
 * epoll set, so the host still watches a single descriptor.
 *
 * Not locked: the resolver serialises every call with its mutex.
 */
#ifndef DANCE_STUB_H
#define DANCE_STUB_H

#include <stddef.h>
#include <stdint.h>
#include "dance.h"

/* ---- wire format (pure functions, no I/O) ---- */

enum dance_stub_parse_ret {
	DANCE_STUB_OK = 0,	/* a response to our question */
	DANCE_STUB_MISMATCH,	/* not ours (ID or question differ) */
	DANCE_STUB_MALFORMED	/* ours, but broken (res->why says how) */
};

struct dance_stub_result {
	int rcode;		/* header rcode (4 bits) */
	int ad, tc;
	/* Positive: min TTL of the TLSA RRs (and CNAMEs followed).
	 * Negative: min(SOA TTL, SOA minimum) from the authority
	 * section.  -1 when unknown. */
	int64_t ttl;
	size_t n;		/* TLSA RRs at the final name */
	const char **data;	/* n rdata, pointing into the packet */
	int *len;
	int ede;		/* Extended DNS Error code, -1 if none */
	char ede_text[96];	/* its EXTRA-TEXT, printable only */
	char why[128];		/* for DANCE_STUB_MALFORMED */
};

/* Encode name (presentation, no trailing dot) as an uncompressed wire
 * name into out (256 octets).  Returns its length, 0 if the name is not
 * encodable (empty or over-long label, too long). */
size_t dance_stub_name_wire(const char *name, unsigned char *out);

/* Build the query for qname/TLSA/IN with RD and EDNS0 DO (payload
 * 1232).  out needs 12 + 256 + 4 + 11 octets.  Returns its length. */
size_t dance_stub_query(const unsigned char *qwire, size_t qwlen,
	uint16_t id, unsigned char *out);

/* Parse pkt as the answer to query id for qwire (lower-case wire).
 * On DANCE_STUB_OK fills res; the caller frees it with
 * dance_stub_result_clear(), also after other returns. */
int dance_stub_parse(const unsigned char *pkt, size_t len, uint16_t id,
	const unsigned char *qwire, size_t qwlen,
	struct dance_stub_result *res);
void dance_stub_result_clear(struct dance_stub_result *res);

/* ---- transport ---- */

struct dance_stub;
struct dance_stubq;

/* forwarders: "addr[@port]" (IPv4 or IPv6), at least one.  DANCE_OK or
 * DANCE_ERR_CONFIG / DANCE_ERR_INTERNAL with the reason. */
int dance_stub_new(struct dance_stub **out, const char *const *forwarders,
	unsigned timeout_ms, struct dance_error *err);
void dance_stub_free(struct dance_stub *s);
/* The epoll descriptor: readable when some query socket is ready. */
int dance_stub_fd(const struct dance_stub *s);
/* Cookie of one ready query (the pointer given at start), NULL when
 * none.  Never blocks. */
void *dance_stub_ready(struct dance_stub *s);

/* Send the first try.  NULL with why filled when the name cannot be
 * encoded or no forwarder could be reached. */
struct dance_stubq *dance_stubq_start(struct dance_stub *s, const char *name,
	void *cookie, uint64_t now, char *why, size_t whylen);
/* Close the sockets and free; sq may be NULL. */
void dance_stubq_free(struct dance_stub *s, struct dance_stubq *sq);
/* When the query next wants its timer run (ms), UINT64_MAX if never. */
uint64_t dance_stubq_next(const struct dance_stubq *sq);
/* Timer due: retransmit, or move on to the next forwarder. */
void dance_stubq_timer(struct dance_stub *s, struct dance_stubq *sq,
	uint64_t now);
/* Its socket is ready.  Returns 1 when the query is finished: *res is
 * filled (valid until dance_stubq_free) and *ret says how it parsed;
 * 0 to keep waiting. */
int dance_stubq_io(struct dance_stub *s, struct dance_stubq *sq, uint64_t now,
	struct dance_stub_result **res, int *ret);
/* The forwarder that answered (for reasons), as given in the config. */
const char *dance_stubq_server(const struct dance_stub *s,
	const struct dance_stubq *sq);

#endif /* DANCE_STUB_H */
