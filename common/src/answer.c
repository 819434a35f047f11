/*
 * answer.c -- immutable, reference-counted lookup answers and their flat
 * serialisation.
 *
 * An answer is one allocation: the struct, then the rr array, then the
 * record data.  It is never modified after construction, so the only
 * shared mutable word is the reference count, which is atomic because
 * threaded hosts (FreeRADIUS) hand answers between threads.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "dance_int.h"
#include "cache.h"

const char *
dance_dns_status_str(enum dance_dns_status s)
{
	switch (s) {
	case DANCE_DNS_SECURE:		return "secure";
	case DANCE_DNS_NODATA:		return "nodata";
	case DANCE_DNS_NXDOMAIN:	return "nxdomain";
	case DANCE_DNS_INSECURE:	return "insecure";
	case DANCE_DNS_BOGUS:		return "bogus";
	case DANCE_DNS_SERVFAIL:	return "servfail";
	case DANCE_DNS_TIMEOUT:		return "timeout";
	case DANCE_DNS_OVERLOAD:	return "overload";
	case DANCE_DNS_ERROR:		return "error";
	}
	return "unknown";
}

static struct dance_answer *
answer_build(enum dance_dns_status status, const char *name,
	const struct dance_tlsa *rr, size_t n, uint32_t ttl, const char *why,
	int from_cache)
{
	struct dance_answer *a;
	unsigned char *p;
	size_t i, total, datalen = 0;

	if (n > 0 && rr == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (rr[i].len > 0 && rr[i].data == NULL)
			return NULL;
		if (rr[i].len > SIZE_MAX / 2 - datalen)
			return NULL;
		datalen += rr[i].len;
	}
	if (n > (SIZE_MAX / 2) / sizeof(struct dance_tlsa))
		return NULL;
	total = sizeof(*a) + n * sizeof(struct dance_tlsa);
	if (datalen > SIZE_MAX - total)
		return NULL;
	total += datalen;
	/* calloc: unused name/why bytes are zero, so serialised copies
	 * never carry stale memory. */
	a = calloc(1, total);
	if (a == NULL)
		return NULL;
	a->status = status;
	if (name != NULL) {
		(void)snprintf(a->name, sizeof(a->name), "%s", name);
		dance_str_lower(a->name);
	}
	if (why != NULL)
		(void)snprintf(a->why, sizeof(a->why), "%s", why);
	a->ttl = ttl;
	a->n = n;
	a->from_cache = from_cache;
	a->refs = 1;
	if (n == 0)
		return a;
	/* The rr array directly follows the struct; the struct's size is a
	 * multiple of its (pointer) alignment, so the array is aligned. */
	a->rr = (struct dance_tlsa *)(a + 1);
	p = (unsigned char *)(a->rr + n);
	for (i = 0; i < n; i++) {
		a->rr[i].usage = rr[i].usage;
		a->rr[i].selector = rr[i].selector;
		a->rr[i].mtype = rr[i].mtype;
		a->rr[i].len = rr[i].len;
		a->rr[i].data = p;
		if (rr[i].len > 0)
			memcpy(p, rr[i].data, rr[i].len);
		p += rr[i].len;
	}
	return a;
}

struct dance_answer *
dance_answer_new(enum dance_dns_status status, const char *name,
	const struct dance_tlsa *rr, size_t n, uint32_t ttl, const char *why)
{
	return answer_build(status, name, rr, n, ttl, why, 0);
}

struct dance_answer *
dance_answer_copy(const struct dance_answer *a, int from_cache)
{
	return answer_build(a->status, a->name, a->rr, a->n, a->ttl, a->why,
		from_cache);
}

void
dance_answer_ref(struct dance_answer *a)
{
	if (a != NULL)
		(void)__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
}

void
dance_answer_unref(struct dance_answer *a)
{
	if (a == NULL)
		return;
	/* acq_rel: the thread that frees must see every other thread's
	 * last use of the answer. */
	if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(a);
}

/*
 * Flat format, version 1, integers in network order:
 *   "DNCA" | version 1 | status 1 | flags 1 (bit 0 from_cache) | ttl 4
 *   | namelen 1 | name | whylen 1 | why | n 2
 *   | n * (usage 1 | selector 1 | mtype 1 | len 2 | data)
 * Names and reasons carry no NUL; the buffer holds nothing else.
 */
#define SER_MAGIC "DNCA"
#define SER_VERSION 1
#define SER_HEAD (4 + 1 + 1 + 1 + 4)
#define SER_RR_HEAD 5

size_t
dance_answer_serialize_size(const struct dance_answer *a)
{
	size_t i, sz;

	if (a == NULL || a->n > 0xffff)
		return 0;
	sz = SER_HEAD + 1 + strnlen(a->name, DANCE_NAME_MAX) + 1
		+ strnlen(a->why, 255) + 2;
	for (i = 0; i < a->n; i++) {
		if (a->rr[i].len > 0xffff)
			return 0;
		sz += SER_RR_HEAD + a->rr[i].len;
	}
	return sz;
}

static unsigned char *
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return p + 2;
}

size_t
dance_answer_serialize(const struct dance_answer *a, unsigned char *buf,
	size_t buflen)
{
	size_t i, sz, nl, wl;
	unsigned char *p = buf;

	sz = dance_answer_serialize_size(a);
	if (sz == 0 || buf == NULL || buflen < sz)
		return 0;
	nl = strnlen(a->name, DANCE_NAME_MAX);
	wl = strnlen(a->why, 255);
	memcpy(p, SER_MAGIC, 4);
	p += 4;
	*p++ = SER_VERSION;
	*p++ = (unsigned char)a->status;
	*p++ = a->from_cache ? 1 : 0;
	*p++ = (unsigned char)(a->ttl >> 24);
	*p++ = (unsigned char)(a->ttl >> 16);
	*p++ = (unsigned char)(a->ttl >> 8);
	*p++ = (unsigned char)a->ttl;
	*p++ = (unsigned char)nl;
	memcpy(p, a->name, nl);
	p += nl;
	*p++ = (unsigned char)wl;
	memcpy(p, a->why, wl);
	p += wl;
	p = put16(p, (unsigned)a->n);
	for (i = 0; i < a->n; i++) {
		*p++ = a->rr[i].usage;
		*p++ = a->rr[i].selector;
		*p++ = a->rr[i].mtype;
		p = put16(p, (unsigned)a->rr[i].len);
		if (a->rr[i].len > 0)
			memcpy(p, a->rr[i].data, a->rr[i].len);
		p += a->rr[i].len;
	}
	return (size_t)(p - buf);
}

/* A bounds-checked reader: every take fails once the input is short. */
struct rd {
	const unsigned char *p;
	size_t left;
};

static const unsigned char *
take(struct rd *r, size_t n)
{
	const unsigned char *p = r->p;

	if (n > r->left)
		return NULL;
	r->p += n;
	r->left -= n;
	return p;
}

/* A length-prefixed string without NUL octets, copied NUL-terminated
 * into out (outsz > max). */
static int
take_str(struct rd *r, size_t max, char *out)
{
	const unsigned char *lp, *s;

	if ((lp = take(r, 1)) == NULL || *lp > max)
		return 0;
	if ((s = take(r, *lp)) == NULL || memchr(s, 0, *lp) != NULL)
		return 0;
	memcpy(out, s, *lp);
	out[*lp] = '\0';
	return 1;
}

struct dance_answer *
dance_answer_deserialize(const unsigned char *buf, size_t len)
{
	struct rd r = { buf, len };
	const unsigned char *h, *np, *rp;
	char name[DANCE_NAME_MAX + 1], why[256];
	struct dance_tlsa *rr = NULL;
	struct dance_answer *a = NULL;
	uint32_t ttl;
	size_t i, n;

	if (buf == NULL || (h = take(&r, SER_HEAD)) == NULL)
		return NULL;
	if (memcmp(h, SER_MAGIC, 4) != 0 || h[4] != SER_VERSION
		|| h[5] > DANCE_DNS_ERROR || (h[6] & ~1u) != 0)
		return NULL;
	ttl = (uint32_t)h[7] << 24 | (uint32_t)h[8] << 16
		| (uint32_t)h[9] << 8 | h[10];
	if (!take_str(&r, DANCE_NAME_MAX, name) || !take_str(&r, 255, why))
		return NULL;
	if ((np = take(&r, 2)) == NULL)
		return NULL;
	n = (size_t)np[0] << 8 | np[1];
	/* Only a secure answer carries records, and it always has some:
	 * anything else was not written by dance_answer_serialize. */
	if ((h[5] == DANCE_DNS_SECURE) != (n > 0))
		return NULL;
	if (n > r.left / SER_RR_HEAD)
		return NULL;
	if (n > 0 && (rr = calloc(n, sizeof(*rr))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((rp = take(&r, SER_RR_HEAD)) == NULL)
			goto out;
		rr[i].usage = rp[0];
		rr[i].selector = rp[1];
		rr[i].mtype = rp[2];
		rr[i].len = (size_t)rp[3] << 8 | rp[4];
		if ((rr[i].data = (unsigned char *)take(&r, rr[i].len)) == NULL)
			goto out;
	}
	if (r.left != 0)
		goto out;
	a = answer_build((enum dance_dns_status)h[5], name, rr, n, ttl, why,
		h[6] & 1);
out:
	free(rr);
	return a;
}

enum dance_dns_status
dance_answer_status(const struct dance_answer *a)
{
	return a->status;
}

const char *
dance_answer_name(const struct dance_answer *a)
{
	return a->name;
}

const char *
dance_answer_why(const struct dance_answer *a)
{
	return a->why;
}

uint32_t
dance_answer_ttl(const struct dance_answer *a)
{
	return a->ttl;
}

size_t
dance_answer_count(const struct dance_answer *a)
{
	return a->n;
}

const struct dance_tlsa *
dance_answer_record(const struct dance_answer *a, size_t i)
{
	return i < a->n ? &a->rr[i] : NULL;
}

int
dance_answer_from_cache(const struct dance_answer *a)
{
	return a->from_cache;
}

void
dance_answer_set_ttl(struct dance_answer *a, uint32_t ttl)
{
	a->ttl = ttl;
}
