/*
 * test_names.c -- dance_name_check, dance_name_equal and the error
 * helpers (dance_code_str, dance_err_set, dance_str_lower).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dance.h"
#include "dance_int.h"

/* A name made of labels of the given lengths, e.g. {63, 63, 63, 61}. */
static void
make_name(char *buf, const int *lens, int n)
{
	int i, j;
	char *p = buf;

	for (i = 0; i < n; i++) {
		if (i > 0)
			*p++ = '.';
		for (j = 0; j < lens[i]; j++)
			*p++ = (char)('a' + (i + j) % 26);
	}
	*p = '\0';
}

static void
ok_name(const char *in, int wild, const char *want)
{
	char out[DANCE_NAME_MAX + 1];
	struct dance_error err;

	memset(out, 'X', sizeof(out));
	err.reason[0] = '\0';
	if (dance_name_check(in, strlen(in), wild, out, &err) != DANCE_OK)
		fail_msg("'%s' rejected: %s", in, err.reason);
	assert_string_equal(out, want);
}

static void
bad_len(const char *in, size_t len, int wild, const char *why)
{
	char out[DANCE_NAME_MAX + 1] = "untouched";
	struct dance_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(dance_name_check(in, len, wild, out, &err),
		DANCE_ERR_NAME);
	assert_int_equal(err.code, DANCE_ERR_NAME);
	if (strstr(err.reason, why) == NULL)
		fail_msg("reason '%s' lacks '%s'", err.reason, why);
	/* Nothing written on failure. */
	assert_string_equal(out, "untouched");
	/* And no crash without an error struct. */
	assert_int_equal(dance_name_check(in, len, wild, NULL, NULL),
		DANCE_ERR_NAME);
}

static void
bad(const char *in, int wild, const char *why)
{
	bad_len(in, strlen(in), wild, why);
}

static void
test_plain(void **state)
{
	(void)state;
	ok_name("dev1.example.com", 0, "dev1.example.com");
	ok_name("localhost", 0, "localhost");
	ok_name("123.example", 0, "123.example");
	ok_name("a", 0, "a");
	ok_name("a-b.example", 0, "a-b.example");
	/* Loose: a trailing hyphen and "--" are accepted. */
	ok_name("a-.example", 0, "a-.example");
	ok_name("xn--bcher-kva.example", 0, "xn--bcher-kva.example");
	ok_name("XN--BCHER-KVA.example", 0, "xn--bcher-kva.example");
}

static void
test_uppercase(void **state)
{
	(void)state;
	ok_name("Dev1.EXAMPLE.Com", 0, "dev1.example.com");
	ok_name("ABCDEFGHIJKLMNOPQRSTUVWXYZ.Z", 0,
		"abcdefghijklmnopqrstuvwxyz.z");
}

static void
test_underscore(void **state)
{
	(void)state;
	ok_name("_service.client.example", 0, "_service.client.example");
	ok_name("device._device.org.example", 0,
		"device._device.org.example");
	ok_name("_.example", 0, "_.example");
	ok_name("_443._tcp.Host.example", 0, "_443._tcp.host.example");
	ok_name("a_b.example", 0, "a_b.example");
}

static void
test_label_length(void **state)
{
	char name[400];
	int l63[] = { 63, 7 }, l64[] = { 7, 64 }, l1[] = { 1, 1, 1 };

	(void)state;
	make_name(name, l63, 2);
	ok_name(name, 0, name);
	make_name(name, l64, 2);
	bad(name, 0, "label 2 is 64 octets long (max 63)");
	make_name(name, l1, 3);
	ok_name(name, 0, name);
}

static void
test_total_length(void **state)
{
	char name[400];
	int l253[] = { 63, 63, 63, 61 }, l254[] = { 63, 63, 63, 62 };
	int l255[] = { 63, 63, 63, 63 };

	(void)state;
	make_name(name, l253, 4);
	assert_int_equal(strlen(name), 253);
	ok_name(name, 0, name);
	make_name(name, l254, 4);
	assert_int_equal(strlen(name), 254);
	bad(name, 0, "name is 254 octets long (max 253)");
	make_name(name, l255, 4);
	bad(name, 0, "255 octets");
}

static void
test_dots(void **state)
{
	(void)state;
	bad("example.com.", 0, "trailing dot not allowed");
	bad(".", 0, "root name");
	bad(".example.com", 0, "empty label (offset 0)");
	bad("a..b", 0, "empty label (offset 2)");
	bad("", 0, "empty name");
	bad_len(NULL, 0, 0, "empty name");
	bad_len(NULL, 5, 0, "empty name");
}

static void
test_octets(void **state)
{
	(void)state;
	bad_len("ab\0c.example", 12, 0, "NUL octet inside the name "
		"(offset 2)");
	bad("b\xc3\xbc" "cher.example", 0,
		"U-label/non-ASCII; send the A-label (xn--)");
	bad("a.\xff", 0, "octet 0xff at offset 2");
	bad("a\\.b.example", 0, "presentation escapes");
	bad("a\\065.example", 0, "not allowed in ClientName");
	bad("a b.example", 0, "invalid octet 0x20 at offset 1");
	bad("a@b.example", 0, "invalid character '@' at offset 1");
	bad("a/b", 0, "invalid character '/'");
	bad("a\tb", 0, "invalid octet 0x09");
	bad("a\x7f", 0, "invalid octet 0x7f");
}

static void
test_hyphen(void **state)
{
	(void)state;
	bad("-a.example", 0, "label 1 starts with '-'");
	bad("a.-b.example", 0, "label 2 starts with '-'");
	bad("-", 0, "starts with '-'");
}

static void
test_wildcard(void **state)
{
	(void)state;
	bad("*.example.com", 0, "not allowed in a client name");
	ok_name("*.Example.com", 1, "*.example.com");
	ok_name("*._device.org.example", 1, "*._device.org.example");
	bad("a.*.example", 1, "only allowed as the leftmost label");
	bad("a.*", 1, "only allowed as the leftmost label");
	bad("*", 1, "needs a parent name");
	bad("*a.example", 1, "must be a whole label");
	bad("a*.example", 1, "must be a whole label");
	bad("**.example", 1, "must be a whole label");
	bad("*.*.example", 1, "leftmost");
	bad("*.", 1, "trailing dot");
}

static void
test_not_terminated(void **state)
{
	char out[DANCE_NAME_MAX + 1];
	const char buf[] = { 'H', 'o', 's', 't', '.', 'a' };

	(void)state;
	/* len, not NUL, ends the name. */
	assert_int_equal(dance_name_check("example.com", 7, 0, out, NULL),
		DANCE_OK);
	assert_string_equal(out, "example");
	assert_int_equal(dance_name_check(buf, sizeof(buf), 0, out, NULL),
		DANCE_OK);
	assert_string_equal(out, "host.a");
	/* Checking without output. */
	assert_int_equal(dance_name_check("x.y", 3, 0, NULL, NULL), DANCE_OK);
}

static void
test_equal(void **state)
{
	(void)state;
	assert_true(dance_name_equal("a.example", "a.example"));
	assert_true(dance_name_equal("A.Example", "a.EXAMPLE"));
	assert_true(dance_name_equal("", ""));
	assert_false(dance_name_equal("a.example", "b.example"));
	assert_false(dance_name_equal("a.example", "a.example.com"));
	assert_false(dance_name_equal("a.example.com", "a.example"));
	assert_false(dance_name_equal("a.example", NULL));
	assert_false(dance_name_equal(NULL, NULL));
	/* Only ASCII letters fold: '@' (0x40) is not '`' (0x60). */
	assert_false(dance_name_equal("@", "`"));
}

static void
test_code_str(void **state)
{
	int c, d;

	(void)state;
	assert_string_equal(dance_code_str(DANCE_OK), "ok");
	assert_string_equal(dance_code_str(DANCE_ERR_NOT_ALLOWED),
		"not allowed");
	for (c = DANCE_OK; c <= DANCE_ERR_INTERNAL; c++) {
		assert_non_null(dance_code_str((enum dance_code)c));
		assert_string_not_equal(dance_code_str((enum dance_code)c),
			"unknown error");
		for (d = DANCE_OK; d < c; d++)
			assert_string_not_equal(
				dance_code_str((enum dance_code)c),
				dance_code_str((enum dance_code)d));
	}
	assert_string_equal(dance_code_str((enum dance_code)999),
		"unknown error");
}

static void
test_err_set(void **state)
{
	struct dance_error err;
	char long_arg[600];

	(void)state;
	assert_int_equal(dance_err_set(NULL, DANCE_ERR_DNS, "x %d", 1),
		DANCE_ERR_DNS);
	assert_int_equal(dance_err_set(&err, DANCE_ERR_TLS, "a %s %d", "b",
		7), DANCE_ERR_TLS);
	assert_int_equal(err.code, DANCE_ERR_TLS);
	assert_string_equal(err.reason, "a b 7");
	/* Truncated, still terminated. */
	memset(long_arg, 'z', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	dance_err_set(&err, DANCE_ERR_CONFIG, "%s", long_arg);
	assert_int_equal(strlen(err.reason), sizeof(err.reason) - 1);
	assert_int_equal(err.code, DANCE_ERR_CONFIG);
}

static void
test_str_lower(void **state)
{
	char s[] = "AbC.XYZ_09-@[`{\xc3\x9c";

	(void)state;
	dance_str_lower(s);
	assert_string_equal(s, "abc.xyz_09-@[`{\xc3\x9c");
}

/* Client bytes for logs: no control octet, no line break, no quote
 * survives, and a cut never splits an escape. */
static void
test_escape(void **state)
{
	char out[32];

	(void)state;
	assert_string_equal(dance_escape("alice@example.com", 17, out,
		sizeof(out)), "alice@example.com");
	assert_string_equal(dance_escape("a\nb\"c\\\x1b[31m", 11, out,
		sizeof(out)), "a\\x0ab\\\"c\\\\\\x1b[31m");
	assert_string_equal(dance_escape("\xc3\xa9\0z", 4, out, sizeof(out)),
		"\\xc3\\xa9\\x00z");
	/* 40 octets into 16: 12 kept, then "..." */
	assert_string_equal(dance_escape("0123456789012345678901234567890123456789",
		40, out, 16), "012345678901...");
	/* the cut falls before an escape, not inside it */
	assert_string_equal(dance_escape("abcdefghij\x01\x02\x03", 13, out,
		16), "abcdefghij...");
	assert_string_equal(dance_escape("abc", 3, out, 4), "abc");
	assert_string_equal(dance_escape("abcd", 4, out, 4), "...");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_uppercase),
		cmocka_unit_test(test_underscore),
		cmocka_unit_test(test_label_length),
		cmocka_unit_test(test_total_length),
		cmocka_unit_test(test_dots),
		cmocka_unit_test(test_octets),
		cmocka_unit_test(test_hyphen),
		cmocka_unit_test(test_wildcard),
		cmocka_unit_test(test_not_terminated),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_code_str),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_str_lower),
	};

	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
