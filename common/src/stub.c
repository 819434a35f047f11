/*
 * stub.c -- DNS stub transport for trust_ad mode: TLSA queries with
 * EDNS0 DO to trusted validating resolvers, whose AD bit is the verdict.
 *
 * Wire parsing trusts nothing: every read is bounds-checked, compression
 * pointers may only point backwards (so they cannot loop), and an answer
 * counts as ours only when its ID and question match what we sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dance_int.h"
#include "stub.h"

#define T_CNAME		5
#define T_SOA		6
#define T_OPT		41
#define T_TLSA		52
#define C_IN		1
#define EDNS_PAYLOAD	1232
#define EDNS_DO		0x8000
#define OPT_EDE		15
#define F_QR		0x8000
#define F_TC		0x0200
#define F_RD		0x0100
#define F_AD		0x0020
#define MAX_CNAMES	8
/* Pointers per name: a name has at most 127 labels, so more is a
 * chain crafted to make parsing slow. */
#define MAX_PTRS	128
#define WIRE_MAX	255
/* Retransmit interval: a third of the timeout, within these bounds. */
#define RTX_MIN_MS	50
#define RTX_MAX_MS	1000
#define QUERY_MAX	(12 + WIRE_MAX + 4 + 11)

/* ------------------------------------------------------------------ */
/* Wire format                                                         */
/* ------------------------------------------------------------------ */

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16)
		| ((uint32_t)p[2] << 8) | p[3];
}

static void
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

size_t
dance_stub_name_wire(const char *name, unsigned char *out)
{
	size_t o = 0, l;
	const char *p = name, *dot;

	if (name == NULL || *name == '\0')
		return 0;
	for (;;) {
		dot = strchr(p, '.');
		l = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63 || o + 1 + l + 1 > WIRE_MAX)
			return 0;
		out[o++] = (unsigned char)l;
		for (size_t i = 0; i < l; i++)
			out[o++] = lower((unsigned char)p[i]);
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	out[o++] = 0;
	return o;
}

size_t
dance_stub_query(const unsigned char *qwire, size_t qwlen, uint16_t id,
	unsigned char *out)
{
	unsigned char *p = out;

	memset(out, 0, 12);
	put16(p, id);
	put16(p + 2, F_RD);
	put16(p + 4, 1);		/* QDCOUNT */
	put16(p + 10, 1);		/* ARCOUNT: OPT */
	p += 12;
	memcpy(p, qwire, qwlen);
	p += qwlen;
	put16(p, T_TLSA);
	put16(p + 2, C_IN);
	p += 4;
	/* OPT: root owner, payload size as class, DO in the TTL flags. */
	p[0] = 0;
	put16(p + 1, T_OPT);
	put16(p + 3, EDNS_PAYLOAD);
	p[5] = 0;			/* extended rcode */
	p[6] = 0;			/* version */
	put16(p + 7, EDNS_DO);
	put16(p + 9, 0);		/* RDLEN */
	p += 11;
	return (size_t)(p - out);
}

/*
 * Read the name at *off, whose own octets must end before end.  Pointers
 * may lead anywhere earlier in the packet, but only strictly backwards
 * (no loops) and at most MAX_PTRS of them (no slow chains).  out receives the uncompressed, lower-cased wire
 * name (WIRE_MAX octets at most); *off moves past the name's in-place
 * octets.  Returns the wire length, 0 when malformed.
 */
static size_t
rd_name(const unsigned char *pkt, size_t *off, size_t end,
	unsigned char *out)
{
	size_t p = *off, o = 0, limit = end;
	int jumped = 0, ptrs = 0;

	for (;;) {
		unsigned c;

		if (p >= limit)
			return 0;
		c = pkt[p];
		if ((c & 0xc0) == 0xc0) {
			size_t ptr;

			if (p + 1 >= limit)
				return 0;
			ptr = ((size_t)(c & 0x3f) << 8) | pkt[p + 1];
			if (!jumped)
				*off = p + 2;
			jumped = 1;
			if (ptr >= p || ++ptrs > MAX_PTRS)
				return 0;
			limit = p;
			p = ptr;
			continue;
		}
		if ((c & 0xc0) != 0)
			return 0;	/* obsolete/extended label types */
		if (p + 1 + c > limit || o + 1 + c > WIRE_MAX)
			return 0;
		out[o++] = (unsigned char)c;
		if (c == 0) {
			if (!jumped)
				*off = p + 1;
			return o;
		}
		for (unsigned i = 0; i < c; i++)
			out[o++] = lower(pkt[p + 1 + i]);
		p += 1 + c;
	}
}

struct rr {
	unsigned char owner[WIRE_MAX];
	size_t olen;
	uint16_t type, cls;
	uint32_t ttl;
	size_t rd, rdlen;	/* rdata offset and length */
};

static int
rd_rr(const unsigned char *pkt, size_t len, size_t *off, struct rr *rr)
{
	if ((rr->olen = rd_name(pkt, off, len, rr->owner)) == 0
		|| *off + 10 > len)
		return 0;
	rr->type = get16(pkt + *off);
	rr->cls = get16(pkt + *off + 2);
	rr->ttl = get32(pkt + *off + 4);
	/* RFC 2181 8: a TTL with the top bit set means zero. */
	if (rr->ttl > 0x7fffffffu)
		rr->ttl = 0;
	rr->rdlen = get16(pkt + *off + 8);
	rr->rd = *off + 10;
	if (rr->rd + rr->rdlen > len)
		return 0;
	*off = rr->rd + rr->rdlen;
	return 1;
}

static int
malformed(struct dance_stub_result *res, const char *why)
{
	(void)snprintf(res->why, sizeof(res->why), "%s", why);
	return DANCE_STUB_MALFORMED;
}

static int64_t
ttl_min(int64_t cur, uint32_t t)
{
	return cur < 0 || (int64_t)t < cur ? (int64_t)t : cur;
}

/* Negative-answer TTL from an SOA: min(its TTL, its MINIMUM field). */
static int
soa_ttl(const unsigned char *pkt, const struct rr *rr, int64_t *ttl)
{
	unsigned char scratch[WIRE_MAX];
	size_t off = rr->rd, end = rr->rd + rr->rdlen;

	if (rd_name(pkt, &off, end, scratch) == 0
		|| rd_name(pkt, &off, end, scratch) == 0 || off + 20 != end)
		return 0;
	*ttl = ttl_min(ttl_min(*ttl, rr->ttl), get32(pkt + off + 16) &
		0x7fffffffu);
	return 1;
}

/* Extended DNS Error (RFC 8914) from the OPT rdata: code and printable
 * text only, the text is the resolver's and goes into our reasons. */
static void
opt_ede(const unsigned char *pkt, const struct rr *rr,
	struct dance_stub_result *res)
{
	size_t off = rr->rd, end = rr->rd + rr->rdlen, o = 0;

	while (off + 4 <= end) {
		uint16_t code = get16(pkt + off), len = get16(pkt + off + 2);

		off += 4;
		if (off + len > end)
			return;
		if (code == OPT_EDE && len >= 2 && res->ede < 0) {
			res->ede = get16(pkt + off);
			for (size_t i = 2; i < len
				&& o + 1 < sizeof(res->ede_text); i++) {
				unsigned char c = pkt[off + i];

				res->ede_text[o++] = c >= 0x20 && c < 0x7f
					? (char)c : '?';
			}
			res->ede_text[o] = '\0';
		}
		off += len;
	}
}

/* Follow CNAMEs in the answer section from the qname; the final name
 * goes to cur.  0 when the chain is malformed or too long. */
static int
follow_cnames(const unsigned char *pkt, size_t len, size_t an_off,
	unsigned ancount, unsigned char *cur, size_t *curlen, int64_t *ttl,
	struct dance_stub_result *res)
{
	struct rr rr;

	for (int hops = 0; ; hops++) {
		size_t off = an_off;
		int found = 0;

		for (unsigned i = 0; i < ancount && !found; i++) {
			size_t t;

			/* The first pass checked every RR. */
			(void)rd_rr(pkt, len, &off, &rr);
			if (rr.type != T_CNAME || rr.cls != C_IN
				|| rr.olen != *curlen
				|| memcmp(rr.owner, cur, *curlen) != 0)
				continue;
			if (hops == MAX_CNAMES) {
				(void)malformed(res, "CNAME chain too long");
				return 0;
			}
			t = rr.rd;
			if ((*curlen = rd_name(pkt, &t, rr.rd + rr.rdlen, cur))
				== 0 || t != rr.rd + rr.rdlen) {
				(void)malformed(res, "bad CNAME rdata");
				return 0;
			}
			*ttl = ttl_min(*ttl, rr.ttl);
			found = 1;
		}
		if (!found)
			return 1;
	}
}

static int
collect_tlsa(const unsigned char *pkt, size_t len, size_t an_off,
	unsigned ancount, const unsigned char *name, size_t nlen,
	int64_t *ttl, struct dance_stub_result *res)
{
	struct rr rr;
	size_t off = an_off, n = 0;

	for (int pass = 0; pass < 2; pass++) {
		off = an_off;
		for (unsigned i = 0; i < ancount; i++) {
			(void)rd_rr(pkt, len, &off, &rr);
			if (rr.type != T_TLSA || rr.cls != C_IN
				|| rr.olen != nlen
				|| memcmp(rr.owner, name, nlen) != 0)
				continue;
			if (pass == 0) {
				n++;
				continue;
			}
			res->data[res->n] = (const char *)pkt + rr.rd;
			res->len[res->n] = (int)rr.rdlen;
			res->n++;
			*ttl = ttl_min(*ttl, rr.ttl);
		}
		if (pass == 0) {
			if (n == 0)
				return 1;
			res->data = calloc(n, sizeof(*res->data));
			res->len = calloc(n, sizeof(*res->len));
			if (res->data == NULL || res->len == NULL) {
				(void)malformed(res, "out of memory");
				return 0;
			}
		}
	}
	return 1;
}

int
dance_stub_parse(const unsigned char *pkt, size_t len, uint16_t id,
	const unsigned char *qwire, size_t qwlen,
	struct dance_stub_result *res)
{
	unsigned char cur[WIRE_MAX];
	size_t off = 12, an_off, curlen;
	unsigned counts[3];
	int64_t pttl = -1, nttl = -1;
	uint16_t flags;
	struct rr rr;

	memset(res, 0, sizeof(*res));
	res->ttl = -1;
	res->ede = -1;
	/* Ours?  ID, a response to a standard query, our one question. */
	if (pkt == NULL || len < 12 || get16(pkt) != id)
		return DANCE_STUB_MISMATCH;
	flags = get16(pkt + 2);
	if (!(flags & F_QR) || ((flags >> 11) & 0xf) != 0
		|| get16(pkt + 4) != 1)
		return DANCE_STUB_MISMATCH;
	if (rd_name(pkt, &off, len, cur) != qwlen || off + 4 > len
		|| memcmp(cur, qwire, qwlen) != 0
		|| get16(pkt + off) != T_TLSA || get16(pkt + off + 2) != C_IN)
		return DANCE_STUB_MISMATCH;
	off += 4;
	res->rcode = flags & 0xf;
	res->ad = (flags & F_AD) != 0;
	res->tc = (flags & F_TC) != 0;
	if (res->tc)
		return DANCE_STUB_OK;	/* retried over TCP, rest unused */
	for (int s = 0; s < 3; s++)
		counts[s] = get16(pkt + 6 + 2 * s);
	an_off = off;
	for (unsigned i = 0; i < counts[0]; i++) {
		if (!rd_rr(pkt, len, &off, &rr))
			return malformed(res, "bad answer section");
	}
	for (unsigned i = 0; i < counts[1]; i++) {
		if (!rd_rr(pkt, len, &off, &rr))
			return malformed(res, "bad authority section");
		if (rr.type == T_SOA && rr.cls == C_IN
			&& !soa_ttl(pkt, &rr, &nttl))
			return malformed(res, "bad SOA rdata");
	}
	for (unsigned i = 0; i < counts[2]; i++) {
		if (!rd_rr(pkt, len, &off, &rr))
			return malformed(res, "bad additional section");
		if (rr.type == T_OPT)
			opt_ede(pkt, &rr, res);
	}
	memcpy(cur, qwire, qwlen);
	curlen = qwlen;
	if (!follow_cnames(pkt, len, an_off, counts[0], cur, &curlen, &pttl,
		res) || !collect_tlsa(pkt, len, an_off, counts[0], cur, curlen,
		&pttl, res))
		return DANCE_STUB_MALFORMED;
	res->ttl = res->n > 0 ? pttl : nttl;
	return DANCE_STUB_OK;
}

void
dance_stub_result_clear(struct dance_stub_result *res)
{
	free(res->data);
	free(res->len);
	res->data = NULL;
	res->len = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ */
/* Transport                                                           */
/* ------------------------------------------------------------------ */

struct fwd {
	struct sockaddr_storage ss;
	socklen_t sl;
	char text[64];
};

struct dance_stub {
	int epfd;
	struct fwd *fwd;
	size_t nfwd;
	unsigned rtx_ms;
	unsigned char rbuf[65536];	/* one UDP datagram at a time */
};

enum stq_state { ST_UDP, ST_TCP_CONNECT, ST_TCP_WRITE, ST_TCP_READ };

struct dance_stubq {
	void *cookie;
	unsigned char qwire[WIRE_MAX];
	size_t qwlen;
	/* The query with room for TCP's 2-octet length in front. */
	unsigned char msg[2 + QUERY_MAX];
	size_t qlen;
	uint16_t id;
	int fd;
	enum stq_state state;
	size_t fwd;		/* forwarder of fd */
	unsigned tries;		/* forwarder turns taken */
	uint64_t rtx;		/* timer, UINT64_MAX when none */
	size_t woff;		/* TCP: octets of msg sent */
	unsigned char lenbuf[2];
	size_t lgot;
	unsigned char *resp;	/* the final answer (or TCP buffer) */
	size_t rlen, rgot;
	struct dance_stub_result res;
};

static int
parse_fwd(const char *spec, struct fwd *f, struct dance_error *err)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *at = strchr(spec, '@');
	unsigned long port = 53;
	size_t hl = at != NULL ? (size_t)(at - spec) : strlen(spec);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&f->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&f->ss;

	memset(f, 0, sizeof(*f));
	if (strchr(spec, '#') != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "bad forwarder "
			"\"%s\": no DNS-over-TLS with trust_ad (the path to "
			"the resolver must be trusted as it is)", spec);
	if (hl == 0 || hl >= sizeof(host))
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"bad forwarder \"%s\": bad address", spec);
	if (at != NULL) {
		const char *p = at + 1;

		port = 0;
		for (; *p >= '0' && *p <= '9' && port <= 65535; p++)
			port = port * 10 + (unsigned long)(*p - '0');
		if (p == at + 1 || *p != '\0' || port == 0 || port > 65535)
			return dance_err_set(err, DANCE_ERR_CONFIG,
				"bad forwarder \"%s\": bad port", spec);
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		f->sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		f->sl = sizeof(*s6);
	} else {
		return dance_err_set(err, DANCE_ERR_CONFIG, "bad forwarder "
			"\"%s\": not an IPv4 or IPv6 address", spec);
	}
	(void)snprintf(f->text, sizeof(f->text), "%s@%lu", host, port);
	return DANCE_OK;
}

int
dance_stub_new(struct dance_stub **out, const char *const *forwarders,
	unsigned timeout_ms, struct dance_error *err)
{
	struct dance_stub *s;
	size_t n = 0;

	*out = NULL;
	while (forwarders != NULL && forwarders[n] != NULL)
		n++;
	if (n == 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "trust_ad without "
			"trust anchors needs forwarders (validating resolvers "
			"whose AD bit is trusted)");
	if ((s = calloc(1, sizeof(*s))) == NULL
		|| (s->fwd = calloc(n, sizeof(*s->fwd))) == NULL) {
		free(s);
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	}
	s->epfd = -1;
	s->nfwd = n;
	for (size_t i = 0; i < n; i++) {
		if (parse_fwd(forwarders[i], &s->fwd[i], err) != DANCE_OK) {
			dance_stub_free(s);
			return DANCE_ERR_CONFIG;
		}
	}
	s->rtx_ms = timeout_ms / 3;
	if (s->rtx_ms < RTX_MIN_MS)
		s->rtx_ms = RTX_MIN_MS;
	if (s->rtx_ms > RTX_MAX_MS)
		s->rtx_ms = RTX_MAX_MS;
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		int e = errno;

		dance_stub_free(s);
		return dance_err_set(err, DANCE_ERR_INTERNAL,
			"epoll_create1: %s", strerror(e));
	}
	*out = s;
	return DANCE_OK;
}

void
dance_stub_free(struct dance_stub *s)
{
	if (s == NULL)
		return;
	if (s->epfd >= 0)
		(void)close(s->epfd);
	free(s->fwd);
	free(s);
}

int
dance_stub_fd(const struct dance_stub *s)
{
	return s->epfd;
}

void *
dance_stub_ready(struct dance_stub *s)
{
	struct epoll_event ev;

	/* One at a time: a callback run for this one may free others,
	 * so no stale pointers are kept from a batch. */
	if (epoll_wait(s->epfd, &ev, 1, 0) != 1)
		return NULL;
	return ev.data.ptr;
}

static void
sock_close(struct dance_stub *s, struct dance_stubq *sq)
{
	if (sq->fd >= 0) {
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, sq->fd, NULL);
		(void)close(sq->fd);
		sq->fd = -1;
	}
	free(sq->resp);
	sq->resp = NULL;
	sq->rlen = sq->rgot = sq->lgot = sq->woff = 0;
	sq->state = ST_UDP;
}

/* A connected, non-blocking socket to forwarder i in the epoll set. */
static int
sock_open(struct dance_stub *s, struct dance_stubq *sq, size_t i, int tcp)
{
	const struct fwd *f = &s->fwd[i];
	struct epoll_event ev;
	int fd;

	fd = socket(f->ss.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM)
		| SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* UDP: the kernel picks a random ephemeral source port, and a
	 * connected socket only hears from the forwarder. */
	if (connect(fd, (const struct sockaddr *)&f->ss, f->sl) != 0
		&& !(tcp && errno == EINPROGRESS)) {
		(void)close(fd);
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = tcp ? EPOLLOUT : EPOLLIN;
	ev.data.ptr = sq->cookie;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		(void)close(fd);
		return -1;
	}
	sq->fd = fd;
	sq->fwd = i;
	sq->state = tcp ? ST_TCP_CONNECT : ST_UDP;
	return 0;
}

/*
 * Send the query over UDP to the next forwarder in turn (the same socket,
 * so the same ID and port, when that is the current one: a late answer to
 * the earlier try still counts).  Skips forwarders that fail at once.
 * Returns 0 when sent, else -1 with errno.
 */
static int
try_next(struct dance_stub *s, struct dance_stubq *sq, uint64_t now)
{
	int e = EHOSTUNREACH;

	sq->rtx = now + s->rtx_ms;
	for (size_t k = 0; k < s->nfwd; k++) {
		size_t i = sq->tries++ % s->nfwd;

		if (sq->fd < 0 || sq->state != ST_UDP || sq->fwd != i) {
			sock_close(s, sq);
			if (sock_open(s, sq, i, 0) != 0) {
				e = errno;
				continue;
			}
		}
		if (send(sq->fd, sq->msg + 2, sq->qlen, 0) >= 0
			|| errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		e = errno;
		sock_close(s, sq);
	}
	errno = e;
	return -1;
}

/* This try failed: fail over at once while some forwarder has not had
 * its first turn, else wait for the timer (no busy loop on errors). */
static void
try_failed(struct dance_stub *s, struct dance_stubq *sq, uint64_t now,
	int keep)
{
	if (sq->tries < s->nfwd) {
		(void)try_next(s, sq, now);
		return;
	}
	if (!keep)
		sock_close(s, sq);
}

struct dance_stubq *
dance_stubq_start(struct dance_stub *s, const char *name, void *cookie,
	uint64_t now, char *why, size_t whylen)
{
	struct dance_stubq *sq;

	if ((sq = calloc(1, sizeof(*sq))) == NULL) {
		(void)snprintf(why, whylen, "out of memory");
		return NULL;
	}
	sq->fd = -1;
	sq->cookie = cookie;
	if ((sq->qwlen = dance_stub_name_wire(name, sq->qwire)) == 0) {
		(void)snprintf(why, whylen, "cannot encode \"%s\" as a DNS "
			"name (empty label or one over 63 octets)", name);
		free(sq);
		return NULL;
	}
	if (getrandom(&sq->id, sizeof(sq->id), 0) != (ssize_t)sizeof(sq->id)) {
		(void)snprintf(why, whylen, "getrandom: %s", strerror(errno));
		free(sq);
		return NULL;
	}
	sq->qlen = dance_stub_query(sq->qwire, sq->qwlen, sq->id, sq->msg + 2);
	put16(sq->msg, (uint16_t)sq->qlen);
	if (try_next(s, sq, now) != 0) {
		(void)snprintf(why, whylen, "cannot send to any forwarder "
			"(last: %s): %s", s->fwd[s->nfwd - 1].text,
			strerror(errno));
		dance_stubq_free(s, sq);
		return NULL;
	}
	return sq;
}

void
dance_stubq_free(struct dance_stub *s, struct dance_stubq *sq)
{
	if (sq == NULL)
		return;
	sock_close(s, sq);
	dance_stub_result_clear(&sq->res);
	free(sq);
}

uint64_t
dance_stubq_next(const struct dance_stubq *sq)
{
	return sq->rtx;
}

void
dance_stubq_timer(struct dance_stub *s, struct dance_stubq *sq, uint64_t now)
{
	if (now < sq->rtx)
		return;
	/* Nothing reachable: try again at the next tick. */
	(void)try_next(s, sq, now);
}

const char *
dance_stubq_server(const struct dance_stub *s, const struct dance_stubq *sq)
{
	return s->fwd[sq->fwd].text;
}

static void
start_tcp(struct dance_stub *s, struct dance_stubq *sq, uint64_t now)
{
	size_t i = sq->fwd;

	sock_close(s, sq);
	sq->rtx = now + s->rtx_ms;
	if (sock_open(s, sq, i, 1) != 0)
		try_failed(s, sq, now, 0);
}

/* Keep the final packet: res points into sq->resp from now on. */
static int
finish(struct dance_stubq *sq, unsigned char *pkt, size_t len, int *ret)
{
	if (pkt != sq->resp) {
		free(sq->resp);
		if ((sq->resp = malloc(len)) == NULL) {
			dance_stub_result_clear(&sq->res);
			(void)malformed(&sq->res, "out of memory");
			*ret = DANCE_STUB_MALFORMED;
			return 1;
		}
		memcpy(sq->resp, pkt, len);
	}
	dance_stub_result_clear(&sq->res);
	*ret = dance_stub_parse(sq->resp, len, sq->id, sq->qwire, sq->qwlen,
		&sq->res);
	return 1;
}

static int
io_udp(struct dance_stub *s, struct dance_stubq *sq, uint64_t now, int *ret)
{
	ssize_t n;
	int pr;

	for (;;) {
		n = recv(sq->fd, s->rbuf, sizeof(s->rbuf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				try_failed(s, sq, now, 1);  /* e.g. ICMP */
			return 0;
		}
		pr = dance_stub_parse(s->rbuf, (size_t)n, sq->id, sq->qwire,
			sq->qwlen, &sq->res);
		if (pr == DANCE_STUB_MISMATCH) {
			dance_stub_result_clear(&sq->res);
			continue;	/* stray or forged: not ours */
		}
		if (pr == DANCE_STUB_OK && sq->res.tc) {
			dance_stub_result_clear(&sq->res);
			start_tcp(s, sq, now);
			return 0;
		}
		return finish(sq, s->rbuf, (size_t)n, ret);
	}
}

static int
io_tcp_write(struct dance_stub *s, struct dance_stubq *sq, uint64_t now)
{
	struct epoll_event ev;
	socklen_t sl = sizeof(int);
	int soerr = 0;
	ssize_t n;

	if (sq->state == ST_TCP_CONNECT) {
		if (getsockopt(sq->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0
			|| soerr != 0) {
			try_failed(s, sq, now, 0);
			return 0;
		}
		sq->state = ST_TCP_WRITE;
	}
	n = send(sq->fd, sq->msg + sq->woff, sq->qlen + 2 - sq->woff,
		MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			try_failed(s, sq, now, 0);
		return 0;
	}
	sq->woff += (size_t)n;
	if (sq->woff < sq->qlen + 2)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = sq->cookie;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, sq->fd, &ev) != 0) {
		try_failed(s, sq, now, 0);
		return 0;
	}
	sq->state = ST_TCP_READ;
	return 0;
}

/* Read the 2-octet length, then the message; 1 when complete, 0 to wait,
 * -1 when the connection failed. */
static int
tcp_fill(struct dance_stubq *sq)
{
	ssize_t n;

	while (sq->lgot < 2) {
		n = recv(sq->fd, sq->lenbuf + sq->lgot, 2 - sq->lgot, 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK
				|| errno == EINTR ? 0 : -1;
		sq->lgot += (size_t)n;
		if (sq->lgot == 2) {
			if ((sq->rlen = get16(sq->lenbuf)) == 0
				|| (sq->resp = malloc(sq->rlen)) == NULL)
				return -1;
		}
	}
	while (sq->rgot < sq->rlen) {
		n = recv(sq->fd, sq->resp + sq->rgot, sq->rlen - sq->rgot, 0);
		if (n == 0)
			return -1;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK
				|| errno == EINTR ? 0 : -1;
		sq->rgot += (size_t)n;
	}
	return 1;
}

int
dance_stubq_io(struct dance_stub *s, struct dance_stubq *sq, uint64_t now,
	struct dance_stub_result **res, int *ret)
{
	int r;

	*res = &sq->res;
	if (sq->fd < 0)
		return 0;
	switch (sq->state) {
	case ST_UDP:
		return io_udp(s, sq, now, ret);
	case ST_TCP_CONNECT:
	case ST_TCP_WRITE:
		return io_tcp_write(s, sq, now);
	case ST_TCP_READ:
		break;
	}
	if ((r = tcp_fill(sq)) <= 0) {
		if (r < 0)
			try_failed(s, sq, now, 0);
		return 0;
	}
	(void)finish(sq, sq->resp, sq->rlen, ret);
	if (*ret == DANCE_STUB_MISMATCH) {
		/* One exchange per connection: a wrong answer here is a
		 * broken server, not a stray packet. */
		dance_stub_result_clear(&sq->res);
		try_failed(s, sq, now, 0);
		return 0;
	}
	if (*ret == DANCE_STUB_OK && sq->res.tc) {
		dance_stub_result_clear(&sq->res);
		(void)malformed(&sq->res, "truncated over TCP");
		*ret = DANCE_STUB_MALFORMED;
	}
	return 1;
}
