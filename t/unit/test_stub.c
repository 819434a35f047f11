/*
 * test_stub.c -- the trust_ad stub transport's wire format: query
 * encoding and the answer parser (bounds, compression pointers, CNAMEs,
 * what counts as "our" answer).  No network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stub.h"

#define ID 0x1234

static unsigned char qw[256];
static size_t qwl;

/* A packet under construction. */
struct pkt {
	unsigned char b[2048];
	size_t len;
};

static void
p16(struct pkt *p, unsigned v)
{
	p->b[p->len++] = (unsigned char)(v >> 8);
	p->b[p->len++] = (unsigned char)v;
}

static void
p32(struct pkt *p, uint32_t v)
{
	p16(p, v >> 16);
	p16(p, v & 0xffff);
}

static void
pbytes(struct pkt *p, const void *d, size_t n)
{
	memcpy(p->b + p->len, d, n);
	p->len += n;
}

/* Header with counts, then the question for qw (at offset 12). */
static void
start(struct pkt *p, unsigned flags, unsigned an, unsigned ns, unsigned ar)
{
	p->len = 0;
	p16(p, ID);
	p16(p, flags);
	p16(p, 1);
	p16(p, an);
	p16(p, ns);
	p16(p, ar);
	pbytes(p, qw, qwl);
	p16(p, 52);
	p16(p, 1);
}

/* RR header; owner given as wire octets (may be a pointer). */
static void
rr(struct pkt *p, const void *owner, size_t olen, unsigned type,
	uint32_t ttl, unsigned rdlen)
{
	pbytes(p, owner, olen);
	p16(p, type);
	p16(p, 1);
	p32(p, ttl);
	p16(p, rdlen);
}

static const unsigned char PTRQ[2] = { 0xc0, 12 };	/* -> qname */

static void
tlsa_rdata(struct pkt *p, unsigned char fill)
{
	unsigned char d[32];

	p->b[p->len++] = 3;
	p->b[p->len++] = 1;
	p->b[p->len++] = 1;
	memset(d, fill, sizeof(d));
	pbytes(p, d, sizeof(d));
}

/* Parse an exact-size heap copy, so ASan sees any over-read. */
static int
parse(const struct pkt *p, size_t len, struct dance_stub_result *res)
{
	unsigned char *c = malloc(len ? len : 1);
	int ret;

	assert_non_null(c);
	memcpy(c, p->b, len);
	ret = dance_stub_parse(c, len, ID, qw, qwl, res);
	/* Pointers into c are not used after this. */
	dance_stub_result_clear(res);
	free(c);
	return ret;
}

static int
setup(void **state)
{
	(void)state;
	qwl = dance_stub_name_wire("Dev1.Example", qw);
	return qwl == 14 ? 0 : -1;
}

static void
test_name_wire(void **state)
{
	unsigned char w[256];
	char lab[80], big[300];

	(void)state;
	assert_int_equal(qwl, 14);
	assert_memory_equal(qw, "\4dev1\7example\0", 14);
	assert_int_equal(dance_stub_name_wire("", w), 0);
	assert_int_equal(dance_stub_name_wire(NULL, w), 0);
	assert_int_equal(dance_stub_name_wire("a..b", w), 0);
	assert_int_equal(dance_stub_name_wire(".a", w), 0);
	assert_int_equal(dance_stub_name_wire("a.", w), 0);
	memset(lab, 'x', 63);
	lab[63] = '\0';
	assert_int_equal(dance_stub_name_wire(lab, w), 65);
	lab[63] = 'x';
	lab[64] = '\0';
	assert_int_equal(dance_stub_name_wire(lab, w), 0);
	/* 127 labels "a." = 253 characters: 255 octets on the wire. */
	for (int i = 0; i < 127; i++)
		memcpy(big + 2 * i, "a.", 2);
	big[253] = '\0';
	assert_int_equal(dance_stub_name_wire(big, w), 255);
	/* One label more: 257 octets. */
	memcpy(big + 253, ".b", 3);
	assert_int_equal(dance_stub_name_wire(big, w), 0);
}

static void
test_query(void **state)
{
	unsigned char q[12 + 256 + 4 + 11];
	size_t n;

	(void)state;
	n = dance_stub_query(qw, qwl, 0xbeef, q);
	assert_int_equal(n, 12 + qwl + 4 + 11);
	assert_memory_equal(q, "\xbe\xef\x01\x00\0\1\0\0\0\0\0\1", 12);
	assert_memory_equal(q + 12, qw, qwl);
	assert_memory_equal(q + 12 + qwl, "\0\x34\0\1", 4);
	/* OPT: root, type 41, payload 1232, DO, no options. */
	assert_memory_equal(q + 16 + qwl,
		"\0\0\x29\x04\xd0\0\0\x80\0\0\0", 11);
}

static void
secure_pkt(struct pkt *p)
{
	start(p, 0x81a0, 2, 0, 0);		/* QR RD RA AD */
	rr(p, PTRQ, 2, 52, 300, 35);
	tlsa_rdata(p, 0xaa);
	rr(p, PTRQ, 2, 52, 100, 35);
	tlsa_rdata(p, 0xbb);
}

static void
test_secure(void **state)
{
	struct dance_stub_result res;
	struct pkt p;

	(void)state;
	secure_pkt(&p);
	assert_int_equal(dance_stub_parse(p.b, p.len, ID, qw, qwl, &res),
		DANCE_STUB_OK);
	assert_int_equal(res.rcode, 0);
	assert_true(res.ad);
	assert_false(res.tc);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.ttl, 100);
	assert_int_equal(res.len[0], 35);
	assert_int_equal((unsigned char)res.data[0][3], 0xaa);
	assert_int_equal((unsigned char)res.data[1][34], 0xbb);
	assert_int_equal(res.ede, -1);
	dance_stub_result_clear(&res);
	/* Every strict prefix is refused, without reading past it. */
	for (size_t l = 0; l < p.len; l++)
		assert_int_not_equal(parse(&p, l, &res), DANCE_STUB_OK);
	/* Trailing octets are tolerated. */
	p.b[p.len++] = 0;
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_OK);
}

static void
test_not_ours(void **state)
{
	struct dance_stub_result res;
	unsigned char other[256];
	size_t ol;
	struct pkt p;

	(void)state;
	secure_pkt(&p);
	p.b[1] ^= 1;					/* ID */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[2] &= 0x7f;					/* a query */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[2] |= 0x08;					/* opcode */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[5] = 2;					/* QDCOUNT */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[12 + qwl + 1] = 1;				/* QTYPE A */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[12 + qwl + 3] = 3;				/* QCLASS CH */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	secure_pkt(&p);
	p.b[13] = 'e';					/* qname */
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
	/* Case does not matter (0x20 randomisation by a resolver). */
	secure_pkt(&p);
	p.b[13] = 'D';
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_OK);
	/* Asked for a shorter name, a suffix of the one answered. */
	secure_pkt(&p);
	ol = dance_stub_name_wire("example", other);
	assert_int_equal(dance_stub_parse(p.b, p.len, ID, other, ol, &res),
		DANCE_STUB_MISMATCH);
}

static void
test_cname_chain(void **state)
{
	struct dance_stub_result res;
	struct pkt p;
	size_t tpos;

	(void)state;
	/* qname CNAME target.example; TLSA at target (300) and a decoy
	 * TLSA at the qname, which is not the final name. */
	start(&p, 0x81a0, 3, 0, 0);
	rr(&p, PTRQ, 2, 5, 60, 9);
	tpos = p.len;
	pbytes(&p, "\6target\xc0\x11", 9);	/* -> "example" at 17 */
	rr(&p, PTRQ, 2, 52, 30, 35);
	tlsa_rdata(&p, 0x11);
	p.b[p.len++] = 0xc0;
	p.b[p.len++] = (unsigned char)tpos;
	p16(&p, 52);
	p16(&p, 1);
	p32(&p, 300);
	p16(&p, 35);
	tlsa_rdata(&p, 0x22);
	assert_int_equal(dance_stub_parse(p.b, p.len, ID, qw, qwl, &res),
		DANCE_STUB_OK);
	assert_int_equal(res.n, 1);
	assert_int_equal((unsigned char)res.data[0][3], 0x22);
	assert_int_equal(res.ttl, 60);		/* min with the CNAME */
	dance_stub_result_clear(&res);

	/* A CNAME loop: qname -> qname. */
	start(&p, 0x81a0, 1, 0, 0);
	rr(&p, PTRQ, 2, 5, 60, 2);
	pbytes(&p, PTRQ, 2);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* CNAME rdata longer than its name. */
	start(&p, 0x81a0, 1, 0, 0);
	rr(&p, PTRQ, 2, 5, 60, 3);
	pbytes(&p, "\xc0\x0c\0", 3);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
}

static void
test_pointers(void **state)
{
	struct dance_stub_result res;
	struct pkt p;
	size_t at;

	(void)state;
	/* Pointer to itself. */
	start(&p, 0x81a0, 1, 0, 0);
	at = p.len;
	p.b[p.len++] = 0xc0;
	p.b[p.len++] = (unsigned char)at;
	p16(&p, 52);
	p16(&p, 1);
	p32(&p, 1);
	p16(&p, 0);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* Forward pointer. */
	p.b[at + 1] = (unsigned char)(at + 4);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* Pointer beyond the packet. */
	p.b[at] = 0xcf;
	p.b[at + 1] = 0xff;
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* Two pointers pointing at each other: the second is forward. */
	start(&p, 0x81a0, 2, 0, 0);
	at = p.len;
	rr(&p, "\xc0\x00", 2, 1, 1, 0);
	p.b[at + 1] = (unsigned char)(at + 12);
	rr(&p, "\xc0\x00", 2, 1, 1, 0);
	p.b[at + 13] = (unsigned char)at;
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* Chains of pointers (in an unknown RR's rdata) leading to the
	 * qname: 100 are fine, 200 look like an attack on the CPU. */
	for (int n = 100; n <= 200; n += 100) {
		size_t base, last;

		start(&p, 0x81a0, 2, 0, 0);
		rr(&p, PTRQ, 2, 99, 1, (unsigned)(2 * n));
		base = p.len;
		for (int k = 0; k < n; k++) {
			size_t to = k == 0 ? 12 : base + 2 * (size_t)(k - 1);

			p.b[p.len++] = (unsigned char)(0xc0 | to >> 8);
			p.b[p.len++] = (unsigned char)to;
		}
		last = base + 2 * (size_t)(n - 1);
		p.b[p.len++] = (unsigned char)(0xc0 | last >> 8);
		p.b[p.len++] = (unsigned char)last;
		p16(&p, 52);
		p16(&p, 1);
		p32(&p, 7);
		p16(&p, 35);
		tlsa_rdata(&p, 0x33);
		assert_int_equal(parse(&p, p.len, &res), n == 100
			? DANCE_STUB_OK : DANCE_STUB_MALFORMED);
	}
	/* Extended label type 0x40 in an owner. */
	start(&p, 0x81a0, 1, 0, 0);
	rr(&p, "\x41x\0", 3, 1, 1, 0);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
	/* Question name through a pointer is not ours (we sent none). */
	p.len = 0;
	p16(&p, ID);
	p16(&p, 0x81a0);
	p16(&p, 1);
	p16(&p, 0);
	p16(&p, 0);
	p16(&p, 0);
	pbytes(&p, "\xc0\x0c", 2);
	p16(&p, 52);
	p16(&p, 1);
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MISMATCH);
}

static void
test_negative_and_ede(void **state)
{
	struct dance_stub_result res;
	struct pkt p;

	(void)state;
	/* NXDOMAIN, AD, SOA (TTL 3600, MINIMUM 30), OPT with an EDE. */
	start(&p, 0x81a3, 0, 1, 1);
	rr(&p, "\xc0\x11", 2, 6, 3600, 2 + 2 + 20);
	pbytes(&p, "\xc0\x11\xc0\x11", 4);
	p32(&p, 1);
	p32(&p, 2);
	p32(&p, 3);
	p32(&p, 4);
	p32(&p, 30);
	p.b[p.len++] = 0;
	p16(&p, 41);
	p16(&p, 1232);
	p32(&p, 0x8000);
	p16(&p, 4 + 2 + 3);
	p16(&p, 15);
	p16(&p, 2 + 3);
	p16(&p, 6);
	pbytes(&p, "x\001y", 3);
	assert_int_equal(dance_stub_parse(p.b, p.len, ID, qw, qwl, &res),
		DANCE_STUB_OK);
	assert_int_equal(res.rcode, 3);
	assert_true(res.ad);
	assert_int_equal(res.n, 0);
	assert_int_equal(res.ttl, 30);
	assert_int_equal(res.ede, 6);
	assert_string_equal(res.ede_text, "x?y");
	dance_stub_result_clear(&res);
	for (size_t l = 0; l < p.len; l++)
		assert_int_not_equal(parse(&p, l, &res), DANCE_STUB_OK);
	/* SOA rdata one octet short. */
	p.b[12 + qwl + 4 + 2 + 8 + 1] = 23;
	assert_int_equal(parse(&p, p.len, &res), DANCE_STUB_MALFORMED);
}

static void
test_truncated_flag(void **state)
{
	struct dance_stub_result res;
	struct pkt p;

	(void)state;
	/* TC with only the question: OK, tc set, nothing else read. */
	start(&p, 0x8380, 5, 5, 5);
	assert_int_equal(dance_stub_parse(p.b, p.len, ID, qw, qwl, &res),
		DANCE_STUB_OK);
	assert_true(res.tc);
	dance_stub_result_clear(&res);
}

/* Random mutations of valid packets: no crash, no over-read (ASan). */
static void
test_mutations(void **state)
{
	struct dance_stub_result res;
	struct pkt p, m;
	unsigned seed = 12345;

	(void)state;
	secure_pkt(&p);
	for (int i = 0; i < 200000; i++) {
		int k = 1 + (int)(rand_r(&seed) % 4);

		m = p;
		while (k-- > 0)
			m.b[12 + rand_r(&seed) % (p.len - 12)] =
				(unsigned char)rand_r(&seed);
		m.len = p.len - (size_t)(rand_r(&seed) % 8 == 0
			? rand_r(&seed) % p.len : 0);
		(void)parse(&m, m.len, &res);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_wire),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_secure),
		cmocka_unit_test(test_not_ours),
		cmocka_unit_test(test_cname_chain),
		cmocka_unit_test(test_pointers),
		cmocka_unit_test(test_negative_and_ede),
		cmocka_unit_test(test_truncated_flag),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests_name("stub", tests, setup, NULL);
}
