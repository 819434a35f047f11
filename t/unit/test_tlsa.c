/*
 * test_tlsa.c -- TLSA RDATA parsing (RFC 6698 2.1, RFC 7671 agility).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "dance.h"

static unsigned char rd[600];

/* RDATA u s m followed by dlen octets 0x00, 0x01, ... */
static size_t
rdata(unsigned u, unsigned s, unsigned m, size_t dlen)
{
	size_t i;

	rd[0] = (unsigned char)u;
	rd[1] = (unsigned char)s;
	rd[2] = (unsigned char)m;
	for (i = 0; i < dlen; i++)
		rd[3 + i] = (unsigned char)i;
	return 3 + dlen;
}

static void
ok(size_t len, unsigned u, unsigned s, unsigned m)
{
	struct dance_tlsa t;
	struct dance_error err;

	memset(&t, 0xa5, sizeof(t));
	if (dance_tlsa_parse(rd, len, &t, &err) != DANCE_OK)
		fail_msg("%u %u %u len %zu rejected: %s", u, s, m, len,
			err.reason);
	assert_int_equal(t.usage, u);
	assert_int_equal(t.selector, s);
	assert_int_equal(t.mtype, m);
	assert_int_equal(t.len, len - 3);
	/* Not copied: points into the RDATA. */
	assert_ptr_equal(t.data, rd + 3);
	assert_int_equal(dance_tlsa_parse(rd, len, NULL, NULL), DANCE_OK);
}

static void
bad(const unsigned char *r, size_t len, const char *why)
{
	struct dance_tlsa t;
	struct dance_error err;

	memset(&t, 0, sizeof(t));
	memset(&err, 0, sizeof(err));
	assert_int_equal(dance_tlsa_parse(r, len, &t, &err), DANCE_ERR_DNS);
	assert_int_equal(err.code, DANCE_ERR_DNS);
	if (strstr(err.reason, why) == NULL)
		fail_msg("reason '%s' lacks '%s'", err.reason, why);
	/* Untouched on failure. */
	assert_null(t.data);
	assert_int_equal(dance_tlsa_parse(r, len, NULL, NULL), DANCE_ERR_DNS);
}

static void
test_sha256(void **state)
{
	(void)state;
	ok(rdata(3, 1, 1, 32), 3, 1, 1);
	ok(rdata(2, 0, 1, 32), 2, 0, 1);
	rdata(3, 1, 1, 31);
	bad(rd, 34, "digest is 31 octets, matching type 1 needs 32");
	rdata(3, 1, 1, 33);
	bad(rd, 36, "digest is 33 octets, matching type 1 needs 32");
	/* A SHA2-512-sized digest labelled SHA2-256. */
	rdata(3, 1, 1, 64);
	bad(rd, 67, "TLSA 3 1 1: digest is 64 octets");
}

static void
test_sha512(void **state)
{
	(void)state;
	ok(rdata(3, 1, 2, 64), 3, 1, 2);
	rdata(3, 1, 2, 63);
	bad(rd, 66, "digest is 63 octets, matching type 2 needs 64");
	rdata(3, 1, 2, 65);
	bad(rd, 68, "digest is 65 octets, matching type 2 needs 64");
	rdata(3, 1, 2, 32);
	bad(rd, 35, "matching type 2 needs 64");
}

static void
test_full(void **state)
{
	(void)state;
	/* Full data: any non-empty length. */
	ok(rdata(3, 1, 0, 1), 3, 1, 0);
	ok(rdata(3, 0, 0, 550), 3, 0, 0);
	ok(rdata(0, 0, 0, 32), 0, 0, 0);
}

static void
test_short(void **state)
{
	(void)state;
	rdata(3, 1, 0, 0);
	bad(rd, 3, "TLSA rdata too short (3 octets, need at least 4)");
	bad(rd, 2, "too short (2 octets");
	bad(rd, 0, "too short (0 octets");
	bad(NULL, 40, "too short");
	rdata(3, 1, 1, 0);
	bad(rd, 3, "too short");
}

static void
test_unknown(void **state)
{
	(void)state;
	/* RFC 7671 digest agility: unknown parameters parse; they are
	 * unusable later, not errors. */
	ok(rdata(4, 1, 1, 32), 4, 1, 1);
	ok(rdata(3, 2, 1, 32), 3, 2, 1);
	ok(rdata(3, 1, 3, 5), 3, 1, 3);
	ok(rdata(255, 255, 255, 1), 255, 255, 255);
	ok(rdata(3, 1, 255, 100), 3, 1, 255);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_sha512),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_short),
		cmocka_unit_test(test_unknown),
	};

	return cmocka_run_group_tests_name("tlsa", tests, NULL, NULL);
}
