/*
 * fuzz_name.c -- dance_name_check, dance_name_equal and the allow-list.
 *
 * Each input is used three ways: as a ClientName (with and without
 * wildcards; properties of accepted names are checked), as a name
 * checked against a fixed policy (verdict compared with a naive
 * reference), and as an allow-list entry added to a fresh policy
 * (an accepted entry must allow what its form promises).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dance.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static struct dance_policy *fixed;

static int
ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

/* The same verdict as the fixed policy, computed the slow way. */
static int
reference(const char *n)
{
	const char *p;

	if (strcmp(n, "a.example") == 0 || strcmp(n, "b.example") == 0 ||
	    ends_with(n, ".b.example") || ends_with(n, ".c.example"))
		return 1;
	/* ~^r[0-9]+\.example$ */
	if (n[0] != 'r' || n[1] < '0' || n[1] > '9')
		return 0;
	for (p = n + 1; *p >= '0' && *p <= '9'; p++)
		;
	return strcmp(p, ".example") == 0;
}

static void
setup(void)
{
	static const char *e[] = { "a.example", ".b.example", "*.c.example",
		"~^r[0-9]+\\.example$", NULL };
	int i;

	if (fixed != NULL)
		return;
	fixed = dance_policy_new();
	CHECK(fixed != NULL);
	for (i = 0; e[i] != NULL; i++)
		CHECK(dance_policy_add(fixed, e[i], NULL) == DANCE_OK);
}

static void
as_name(const uint8_t *data, size_t size, const char *str)
{
	char out[DANCE_NAME_MAX + 1], outw[DANCE_NAME_MAX + 1];
	char again[DANCE_NAME_MAX + 1];
	unsigned char wire[DANCE_NAME_MAX + 2];
	struct dance_error err;
	int rc, rcw;
	size_t i, n;

	rc = dance_name_check((const char *)data, size, 0, out, &err);
	rcw = dance_name_check((const char *)data, size, 1, outw, &err);
	CHECK(rc == DANCE_OK || rc == DANCE_ERR_NAME);
	CHECK(rcw == DANCE_OK || rcw == DANCE_ERR_NAME);
	if (rcw == DANCE_OK) {
		CHECK(size <= DANCE_NAME_MAX && strlen(outw) == size);
		CHECK(strchr(outw, '*') == NULL || (outw[0] == '*' &&
			outw[1] == '.' && strchr(outw + 1, '*') == NULL));
	} else {
		CHECK(err.code == DANCE_ERR_NAME && err.reason[0] != '\0');
		CHECK(strlen(err.reason) < sizeof(err.reason));
	}
	if (rc != DANCE_OK) {
		/* Never allowed, even when the raw octets happen to
		 * spell an entry. */
		CHECK(dance_policy_check(fixed, str, NULL) ==
			DANCE_ERR_NOT_ALLOWED || strlen(str) != size);
		return;
	}
	CHECK(rcw == DANCE_OK && strcmp(out, outw) == 0);
	CHECK(strchr(out, '*') == NULL);
	for (i = 0; i < size; i++)
		CHECK(!(out[i] >= 'A' && out[i] <= 'Z') && out[i] != '\0');
	CHECK(dance_name_equal(out, str));
	CHECK(dance_name_check(out, size, 0, again, NULL) == DANCE_OK);
	CHECK(strcmp(out, again) == 0);

	/* Wire round trip. */
	n = dance_ext_encode(str, wire, sizeof(wire));
	CHECK(n == size + 1);
	CHECK(dance_ext_parse(wire, n, again, NULL) == DANCE_OK);
	CHECK(strcmp(out, again) == 0);

	rc = dance_policy_check(fixed, str, &err);
	CHECK(rc == (reference(out) ? DANCE_OK : DANCE_ERR_NOT_ALLOWED));
}

/* "a." + name, if it fits. */
static int
child(const char *name, char *buf)
{
	if (strlen(name) + 2 > DANCE_NAME_MAX)
		return 0;
	buf[0] = 'a';
	buf[1] = '.';
	strcpy(buf + 2, name);
	return 1;
}

static void
as_entry(const char *str)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;
	char kid[DANCE_NAME_MAX + 1];
	const char *name = str;
	int rc;

	CHECK(p != NULL);
	rc = dance_policy_add(p, str, &err);
	CHECK(rc == DANCE_OK || rc == DANCE_ERR_CONFIG);
	CHECK(dance_policy_count(p) == (rc == DANCE_OK));
	if (rc != DANCE_OK || str[0] == '~') {
		/* Regex entries are only compiled: matching arbitrary
		 * patterns would measure PCRE2, not us. */
		dance_policy_free(p);
		return;
	}
	/* Idempotent. */
	CHECK(dance_policy_add(p, str, NULL) == DANCE_OK);
	CHECK(dance_policy_count(p) == 1);
	if (str[0] == '.' || str[0] == '*')
		name = str[0] == '.' ? str + 1 : str + 2;
	CHECK(dance_policy_check(p, name, NULL) ==
		(str[0] == '*' ? DANCE_ERR_NOT_ALLOWED : DANCE_OK));
	if (child(name, kid))
		CHECK(dance_policy_check(p, kid, NULL) ==
			(str[0] == '.' || str[0] == '*' ? DANCE_OK :
			DANCE_ERR_NOT_ALLOWED));
	dance_policy_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *str;

	setup();
	/* Copy: the library must not read past size (ASan checks). */
	if ((str = malloc(size + 1)) == NULL)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	as_name(data, size, str);
	as_entry(str);
	free(str);
	return 0;
}
