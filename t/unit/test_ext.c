/*
 * test_ext.c -- dane_clientid extension_data: encode and parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "dance.h"

/* Parse failure with code and a reason containing why. */
static void
bad(const unsigned char *in, size_t inlen, int code, const char *why)
{
	char name[DANCE_NAME_MAX + 1] = "untouched";
	struct dance_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(dance_ext_parse(in, inlen, name, &err), code);
	assert_int_equal(err.code, code);
	if (strstr(err.reason, why) == NULL)
		fail_msg("reason '%s' lacks '%s'", err.reason, why);
	assert_string_equal(name, "untouched");
	assert_int_equal(dance_ext_parse(in, inlen, NULL, NULL), code);
}

/* Extension data: length octet n, then len octets of c. */
static size_t
filled(unsigned char *buf, unsigned n, size_t len, char c)
{
	buf[0] = (unsigned char)n;
	memset(buf + 1, c, len);
	return len + 1;
}

static void
test_encode(void **state)
{
	unsigned char buf[300];

	(void)state;
	assert_int_equal(dance_ext_encode("dev1.example.com", buf,
		sizeof(buf)), 17);
	assert_int_equal(buf[0], 16);
	assert_memory_equal(buf + 1, "dev1.example.com", 16);
	/* Exact fit, and one octet short. */
	assert_int_equal(dance_ext_encode("abc", buf, 4), 4);
	assert_int_equal(dance_ext_encode("abc", buf, 3), 0);
	assert_int_equal(dance_ext_encode("", buf, sizeof(buf)), 0);
	assert_int_equal(dance_ext_encode(NULL, buf, sizeof(buf)), 0);
	assert_int_equal(dance_ext_encode("abc", NULL, 10), 0);
}

static void
test_encode_limits(void **state)
{
	unsigned char buf[300];
	char name[300];

	(void)state;
	memset(name, 'a', 255);
	name[255] = '\0';
	assert_int_equal(dance_ext_encode(name, buf, sizeof(buf)), 256);
	assert_int_equal(buf[0], 255);
	name[255] = 'a';
	name[256] = '\0';
	assert_int_equal(dance_ext_encode(name, buf, sizeof(buf)), 0);
}

static void
test_parse_ok(void **state)
{
	unsigned char buf[300];
	char name[DANCE_NAME_MAX + 1];
	struct dance_error err;
	size_t n;

	(void)state;
	n = dance_ext_encode("Device._device.Org.example", buf, sizeof(buf));
	assert_int_equal(n, 27);
	assert_int_equal(dance_ext_parse(buf, n, name, &err), DANCE_OK);
	assert_string_equal(name, "device._device.org.example");
	/* Shortest possible name. */
	assert_int_equal(dance_ext_parse((const unsigned char *)"\001x", 2,
		name, &err), DANCE_OK);
	assert_string_equal(name, "x");
	/* name may be NULL: syntax check only. */
	assert_int_equal(dance_ext_parse(buf, n, NULL, NULL), DANCE_OK);
}

static void
test_parse_253(void **state)
{
	unsigned char buf[300];
	char name[DANCE_NAME_MAX + 1];
	struct dance_error err;
	size_t n;

	(void)state;
	/* 63.63.63.61 = 253 octets: the longest accepted name. */
	n = filled(buf, 253, 253, 'q');
	buf[1 + 63] = buf[1 + 127] = buf[1 + 191] = '.';
	assert_int_equal(dance_ext_parse(buf, n, name, &err), DANCE_OK);
	assert_int_equal(strlen(name), 253);
	assert_memory_equal(name, buf + 1, 253);
}

static void
test_parse_zero(void **state)
{
	unsigned char buf[4] = { 0, 'a', 'b', 'c' };

	(void)state;
	bad(buf, 0, DANCE_ERR_PROTOCOL, "zero-length ClientName");
	bad(NULL, 0, DANCE_ERR_PROTOCOL, "zero-length ClientName");
	bad(buf, 1, DANCE_ERR_PROTOCOL, "zero-length ClientName");
	/* Length 0 followed by junk is still a zero-length ClientName. */
	bad(buf, 4, DANCE_ERR_PROTOCOL, "zero-length ClientName");
}

static void
test_parse_mismatch(void **state)
{
	unsigned char buf[300];
	size_t n;

	(void)state;
	n = filled(buf, 5, 4, 'a');
	bad(buf, n, DANCE_ERR_PROTOCOL, "length octet says 5 octets but 4 "
		"follow");
	n = filled(buf, 3, 4, 'a');
	bad(buf, n, DANCE_ERR_PROTOCOL, "says 3 octets but 4 follow");
	bad(buf, 1, DANCE_ERR_PROTOCOL, "says 3 octets but 0 follow");
	n = filled(buf, 255, 254, 'a');
	bad(buf, n, DANCE_ERR_PROTOCOL, "says 255 octets but 254 follow");
	n = filled(buf, 254, 255, 'a');
	bad(buf, n, DANCE_ERR_PROTOCOL, "says 254 octets but 255 follow");
}

static void
test_parse_255(void **state)
{
	unsigned char buf[300];
	size_t n;

	(void)state;
	/* A well-formed vector of the maximum size: the wire format is
	 * fine, the name is too long for a DNS name. */
	n = filled(buf, 255, 255, 'a');
	buf[1 + 63] = buf[1 + 127] = buf[1 + 191] = '.';
	bad(buf, n, DANCE_ERR_NAME, "name is 255 octets long (max 253)");
	n = filled(buf, 254, 254, 'a');
	buf[1 + 63] = buf[1 + 127] = buf[1 + 191] = '.';
	bad(buf, n, DANCE_ERR_NAME, "254 octets");
}

static void
test_parse_bad_name(void **state)
{
	(void)state;
	bad((const unsigned char *)"\015*.example.com", 14, DANCE_ERR_NAME,
		"not allowed in a client name");
	bad((const unsigned char *)"\014example.com.", 13, DANCE_ERR_NAME,
		"trailing dot");
	bad((const unsigned char *)"\004a\000bc", 5, DANCE_ERR_NAME,
		"NUL octet");
	bad((const unsigned char *)"\003\xc3\xbcx", 4, DANCE_ERR_NAME,
		"U-label/non-ASCII");
	bad((const unsigned char *)"\004a\\.b", 5, DANCE_ERR_NAME,
		"presentation escapes");
	bad((const unsigned char *)"\001.", 2, DANCE_ERR_NAME, "root name");
}

/* The code point: private use is fine, OpenSSL's own types are not. */
static void
test_ext_type_check(void **state)
{
	struct dance_error e;

	(void)state;
	assert_int_equal(dance_ext_type_check(DANCE_EXT_TYPE_DEFAULT, &e),
		DANCE_OK);
	assert_int_equal(dance_ext_type_check(0xFF42, NULL), DANCE_OK);
	assert_int_equal(dance_ext_type_check(0xFF01, &e), DANCE_ERR_CONFIG);
	assert_non_null(strstr(e.reason, "renegotiation_info"));
	assert_int_equal(dance_ext_type_check(0, &e), DANCE_ERR_CONFIG);
	assert_int_equal(dance_ext_type_check(0x10000, &e), DANCE_ERR_CONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_253),
		cmocka_unit_test(test_parse_zero),
		cmocka_unit_test(test_parse_mismatch),
		cmocka_unit_test(test_parse_255),
		cmocka_unit_test(test_parse_bad_name),
		cmocka_unit_test(test_ext_type_check),
	};

	return cmocka_run_group_tests_name("ext", tests, NULL, NULL);
}
