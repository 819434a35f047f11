/*
 * test_policy.c -- the allow-list: exact, ".subtree", "*.below" and
 * "~regex" entries, which entry dance_policy_match() reports, rejected
 * entries, a large list, and a rough look at the cost of a check against
 * 10 vs 100k entries (printed, not asserted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "dance.h"

static struct dance_policy *
policy_of(const char *const *entries)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;

	assert_non_null(p);
	for (; *entries != NULL; entries++) {
		if (dance_policy_add(p, *entries, &err) != DANCE_OK)
			fail_msg("entry '%s' rejected: %s", *entries,
				err.reason);
	}
	return p;
}

static void
allowed(const struct dance_policy *p, const char *name)
{
	struct dance_error err;

	if (dance_policy_check(p, name, &err) != DANCE_OK)
		fail_msg("'%s' not allowed: %s", name, err.reason);
}

static void
denied(const struct dance_policy *p, const char *name)
{
	struct dance_error err;

	memset(&err, 0, sizeof(err));
	if (dance_policy_check(p, name, &err) != DANCE_ERR_NOT_ALLOWED)
		fail_msg("'%s' allowed", name);
	assert_int_equal(err.code, DANCE_ERR_NOT_ALLOWED);
	assert_true(err.reason[0] != '\0');
}

/* name is allowed, and by the entry want (normalised text). */
static const char *
matched(const struct dance_policy *p, const char *name, const char *want)
{
	struct dance_error err;
	const char *entry = "unset";

	memset(&err, 0, sizeof(err));
	if (dance_policy_match(p, name, &entry, &err) != DANCE_OK)
		fail_msg("'%s' not allowed: %s", name, err.reason);
	assert_non_null(entry);
	if (strcmp(entry, want) != 0)
		fail_msg("'%s' allowed by '%s', expected '%s'", name, entry,
			want);
	/* The plain check agrees. */
	assert_int_equal(dance_policy_check(p, name, NULL), DANCE_OK);
	return entry;
}

static void
bad_entry(const char *entry, const char *why)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(dance_policy_add(p, entry, &err), DANCE_ERR_CONFIG);
	assert_int_equal(err.code, DANCE_ERR_CONFIG);
	if (strstr(err.reason, why) == NULL)
		fail_msg("entry '%s': reason '%s' lacks '%s'", entry,
			err.reason, why);
	assert_int_equal(dance_policy_count(p), 0);
	dance_policy_free(p);
}

static void
test_empty(void **state)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;

	(void)state;
	assert_int_equal(dance_policy_count(p), 0);
	assert_int_equal(dance_policy_check(p, "a.example", &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_string_equal(err.reason, "name 'a.example' is not in the "
		"allow-list (the allow-list is empty)");
	assert_int_equal(dance_policy_check(NULL, "a.example", &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_int_equal(dance_policy_check(p, NULL, NULL),
		DANCE_ERR_NOT_ALLOWED);
	assert_int_equal(dance_policy_count(NULL), 0);
	dance_policy_free(p);
	dance_policy_free(NULL);
}

static void
test_exact(void **state)
{
	const char *e[] = { "dev1.example.com", "_service.client.example",
		NULL };
	struct dance_policy *p = policy_of(e);
	struct dance_error err;

	(void)state;
	assert_int_equal(dance_policy_count(p), 2);
	allowed(p, "dev1.example.com");
	allowed(p, "_service.client.example");
	denied(p, "x.dev1.example.com");
	denied(p, "example.com");
	denied(p, "dev1.example");
	denied(p, "dev11.example.com");
	denied(p, "ev1.example.com");
	denied(p, "client.example");
	assert_int_equal(dance_policy_check(p, "x.evil.example", &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_string_equal(err.reason,
		"name 'x.evil.example' is not in the allow-list");
	dance_policy_free(p);
}

static void
test_subtree(void **state)
{
	const char *e[] = { ".example.com", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	allowed(p, "example.com");
	allowed(p, "a.example.com");
	allowed(p, "a.b.c.example.com");
	allowed(p, "_x._device.example.com");
	denied(p, "badexample.com");
	denied(p, "example.com.evil");
	denied(p, "example.org");
	denied(p, "com");
	denied(p, "xample.com");
	dance_policy_free(p);
}

static void
test_below(void **state)
{
	const char *e[] = { "*.example.com", "*._device.org.example", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	assert_int_equal(dance_policy_count(p), 2);
	denied(p, "example.com");
	allowed(p, "a.example.com");
	allowed(p, "a.b.c.example.com");
	denied(p, "xexample.com");
	denied(p, "com");
	allowed(p, "device._device.org.example");
	denied(p, "_device.org.example");
	denied(p, "device.org.example");
	dance_policy_free(p);
}

static void
test_below_plus_apex(void **state)
{
	const char *e[] = { "*.example.com", "example.com", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	/* Same key, two flags: two entries. */
	assert_int_equal(dance_policy_count(p), 2);
	allowed(p, "example.com");
	allowed(p, "a.example.com");
	denied(p, "example.org");
	dance_policy_free(p);
}

static void
test_nested(void **state)
{
	/* An exact entry below a wildcard parent, and a wildcard below an
	 * exact one: each entry keeps its own meaning. */
	const char *e[] = { "a.b.example", "*.c.example", "x.c.example",
		".d.example", "y.d.example", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	allowed(p, "a.b.example");
	denied(p, "b.example");
	denied(p, "z.a.b.example");
	allowed(p, "x.c.example");
	allowed(p, "q.x.c.example");
	denied(p, "c.example");
	allowed(p, "d.example");
	allowed(p, "y.d.example");
	allowed(p, "z.y.d.example");
	dance_policy_free(p);
}

static void
test_case(void **state)
{
	const char *e[] = { "Dev1.EXAMPLE.com", ".Zone.Example", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	allowed(p, "dev1.example.com");
	allowed(p, "a.zone.example");
	/* Checked names are lower-cased, but mixed case is still safe. */
	allowed(p, "DEV1.example.COM");
	allowed(p, "A.ZONE.EXAMPLE");
	dance_policy_free(p);
}

static void
test_client_wildcard(void **state)
{
	const char *e[] = { "*.example.com", ".zone.example", NULL };
	struct dance_policy *p = policy_of(e);
	struct dance_error err;

	(void)state;
	/* A literal '*' from a client is never a match, even against the
	 * wildcard entry spelled the same way. */
	assert_int_equal(dance_policy_check(p, "*.example.com", &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_non_null(strstr(err.reason, "invalid name"));
	denied(p, "*.zone.example");
	/* Names that would fail dance_name_check never pass. */
	denied(p, "a..example.com");
	denied(p, "a.example.com.");
	denied(p, "");
	denied(p, "b\xc3\xbc.example.com");
	dance_policy_free(p);
}

static void
test_bad_entries(void **state)
{
	char longname[300];

	(void)state;
	bad_entry("", "empty allow-list entry");
	bad_entry("~", "empty regular expression");
	bad_entry("a.*.b", "only allowed as the leftmost label");
	bad_entry("*", "needs a parent name");
	bad_entry("*.", "trailing dot");
	bad_entry(".*.example", "'.*' is not an entry form");
	bad_entry("*x.example", "must be a whole label");
	bad_entry("*.*.example", "leftmost");
	bad_entry("example.com.", "trailing dot");
	bad_entry(".", "empty name");
	bad_entry("..example", "empty label");
	bad_entry("-a.example", "starts with '-'");
	bad_entry("b\xc3\xbc" "cher.example", "U-label/non-ASCII");
	bad_entry("a\\.b", "presentation escapes");
	bad_entry("a b", "invalid octet 0x20");
	memset(longname, 'a', 254);
	longname[254] = '\0';
	longname[100] = '.';
	bad_entry(longname, "254 octets");
	/* The entry is quoted, shortened and made printable. */
	bad_entry("bad\x01" "entry.*.x", "allow-list entry 'bad?entry.*.x'");
	assert_int_equal(dance_policy_add(NULL, "a", NULL), DANCE_ERR_CONFIG);
}

static void
test_duplicates(void **state)
{
	const char *e[] = { "a.example", "a.example", "A.EXAMPLE",
		".a.example", ".a.example", "*.a.example", "*.a.example",
		"~^x$", "~^x$", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	assert_int_equal(dance_policy_count(p), 4);
	allowed(p, "a.example");
	allowed(p, "x");
	dance_policy_free(p);
}

static void
test_regex(void **state)
{
	const char *e[] = { "~^dev[0-9]+\\.example\\.com$",
		"~^([a-z0-9-]+\\.)+lab\\.example$", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	assert_int_equal(dance_policy_count(p), 2);
	allowed(p, "dev1.example.com");
	allowed(p, "dev12345.example.com");
	/* Matched against the lower-cased name. */
	allowed(p, "DEV7.Example.COM");
	denied(p, "devx.example.com");
	denied(p, "dev1.example.com.evil");
	denied(p, "xdev1.example.com");
	/* Anything below lab.example. */
	allowed(p, "a.b.lab.example");
	denied(p, "lab.example");
	dance_policy_free(p);
}

static void
test_regex_mixed(void **state)
{
	const char *e[] = { "exact.example", "~^r[0-9]\\.example$",
		"*.w.example", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	assert_int_equal(dance_policy_count(p), 3);
	allowed(p, "exact.example");
	allowed(p, "r5.example");
	allowed(p, "a.w.example");
	denied(p, "w.example");
	denied(p, "r55.example");
	dance_policy_free(p);
}

static void
test_bad_regex(void **state)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;

	(void)state;
	assert_int_equal(dance_policy_add(p, "~^dev[0-9", &err),
		DANCE_ERR_CONFIG);
	/* PCRE2's own message and the offset. */
	assert_non_null(strstr(err.reason, "bad regular expression"));
	assert_non_null(strstr(err.reason, "missing terminating ]"));
	assert_non_null(strstr(err.reason, "at offset 8"));
	assert_non_null(strstr(err.reason, "'~^dev[0-9'"));
	assert_int_equal(dance_policy_add(p, "~(abc", &err),
		DANCE_ERR_CONFIG);
	assert_non_null(strstr(err.reason, "missing closing parenthesis"));
	assert_int_equal(dance_policy_count(p), 0);
	denied(p, "dev1");
	dance_policy_free(p);
}

/* Patterns that cannot mean what their author meant are refused. */
static void
test_regex_rules(void **state)
{
	const char *ok[] = { "~^(?<Dev>dev)\\d+\\z", "~(?i)^Dev[0-9]+$",
		"~^\\p{Ll}+$", "~^a\\.b$", "~(*LIMIT_MATCH=100)^a$", NULL };
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;
	size_t i;

	(void)state;
	for (i = 0; ok[i] != NULL; i++)
		assert_int_equal(dance_policy_add(p, ok[i], &err), DANCE_OK);
	/* Not anchored at both ends: would allow dev1.example.evil. */
	assert_int_equal(dance_policy_add(p, "~dev[0-9]+", &err),
		DANCE_ERR_CONFIG);
	assert_non_null(strstr(err.reason, "anchored at both ends"));
	assert_int_equal(dance_policy_add(p, "~^dev[0-9]+", &err),
		DANCE_ERR_CONFIG);
	assert_int_equal(dance_policy_add(p, "~dev[0-9]+$", &err),
		DANCE_ERR_CONFIG);
	assert_int_equal(dance_policy_add(p, "~^dev\\$", &err),
		DANCE_ERR_CONFIG);
	/* Upper case can never match a lower-cased name. */
	assert_int_equal(dance_policy_add(p, "~^Dev[0-9]+$", &err),
		DANCE_ERR_CONFIG);
	assert_non_null(strstr(err.reason, "upper-case 'D' at offset 1"));
	assert_int_equal(dance_policy_add(p, "~^\\Qa.B\\E$", &err),
		DANCE_ERR_CONFIG);
	assert_int_equal(dance_policy_count(p), 5);
	dance_policy_free(p);

	/* Matched against the whole name, whatever the alternation. */
	p = dance_policy_new();
	assert_int_equal(dance_policy_add(p, "~^a|^b$", &err), DANCE_OK);
	allowed(p, "a");
	allowed(p, "b");
	denied(p, "ab");
	denied(p, "a.evil");
	dance_policy_free(p);
}

/* A backtracking pattern stops at the match limit: not allowed, and
 * said so, instead of PCRE2's 10 million steps per check. */
static void
test_regex_limit(void **state)
{
	const char *e[] = {
		"~^([a-z0-9]+-?)+\\.devices\\.example\\.com$", NULL };
	struct dance_policy *p = policy_of(e);
	struct dance_error err;
	char name[DANCE_NAME_MAX + 1];

	(void)state;
	memset(name, 'a', 60);
	strcpy(name + 60, ".devices.example.con");
	assert_int_equal(dance_policy_check(p, name, &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_non_null(strstr(err.reason, "match limit"));
	/* The same pattern still works for the names it is meant for. */
	strcpy(name + 60, ".devices.example.com");
	allowed(p, name);
	allowed(p, "cam-7.devices.example.com");
	dance_policy_free(p);
}

static void
test_match_exact_first(void **state)
{
	/* Exact beats every subtree form of the same or a parent name,
	 * whatever the order of adding. */
	const char *e[] = { ".example.com", "*.example.com", "~^dev.*$",
		"dev1.example.com", ".dev1.example.com", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	matched(p, "dev1.example.com", "dev1.example.com");
	/* Below the exact name: its own ".name" is the closest. */
	matched(p, "a.dev1.example.com", ".dev1.example.com");
	/* The parent has both forms: the narrower "*." is reported. */
	matched(p, "dev2.example.com", "*.example.com");
	/* The apex: only ".example.com" covers it. */
	matched(p, "example.com", ".example.com");
	dance_policy_free(p);
}

static void
test_match_longest_subtree(void **state)
{
	const char *fwd[] = { ".example.com", ".b.example.com",
		"*.c.b.example.com", "~^.+$", NULL };
	const char *rev[] = { "~^.+$", "*.c.b.example.com", ".b.example.com",
		".example.com", NULL };
	const char *const *lists[] = { fwd, rev };
	struct dance_policy *p;
	const char *e1, *e2;
	int k;

	(void)state;
	for (k = 0; k < 2; k++) {
		p = policy_of(lists[k]);
		matched(p, "x.a.c.b.example.com", "*.c.b.example.com");
		matched(p, "a.c.b.example.com", "*.c.b.example.com");
		/* "*.c.b..." does not cover c.b... itself. */
		matched(p, "c.b.example.com", ".b.example.com");
		matched(p, "b.example.com", ".b.example.com");
		matched(p, "q.example.com", ".example.com");
		matched(p, "example.com", ".example.com");
		/* Outside every name entry: the regex. */
		matched(p, "other.org", "~^.+$");
		/* One entry, one pointer: a per-entry budget can compare
		 * pointers. */
		e1 = matched(p, "d1.b.example.com", ".b.example.com");
		e2 = matched(p, "x.d2.b.example.com", ".b.example.com");
		assert_ptr_equal(e1, e2);
		dance_policy_free(p);
	}
}

static void
test_match_regex(void **state)
{
	const char *e[] = { "~^dev[0-9]+\\.lab$", "~^.*\\.lab$", "~(?i)^DEV[0-9]+\\.LAB$",
		".name.lab", NULL };
	struct dance_policy *p = policy_of(e);

	(void)state;
	/* Regexes in the order added: the first that matches. */
	matched(p, "dev1.lab", "~^dev[0-9]+\\.lab$");
	matched(p, "devx.lab", "~^.*\\.lab$");
	/* Name entries come before any regex. */
	matched(p, "dev1.name.lab", ".name.lab");
	/* A pattern is reported as written, and the name is lower-cased
	 * before matching. */
	matched(p, "DEV7.LAB", "~^dev[0-9]+\\.lab$");
	denied(p, "dev7.org");
	dance_policy_free(p);
}

static void
test_match_normalised(void **state)
{
	const char *e[] = { "Dev1.EXAMPLE.com", ".Zone.Example",
		"*.W.Example", NULL };
	struct dance_policy *p = policy_of(e);
	struct dance_error err;
	const char *before, *entry;
	char buf[64];
	int i;

	(void)state;
	before = matched(p, "dev1.example.com", "dev1.example.com");
	matched(p, "DEV1.Example.Com", "dev1.example.com");
	matched(p, "a.zone.example", ".zone.example");
	matched(p, "A.ZONE.EXAMPLE", ".zone.example");
	matched(p, "x.w.example", "*.w.example");
	/* Stable while the policy lives: adding entries (and growing the
	 * table many times) moves nothing the caller holds. */
	for (i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "h%d.pad.example", i);
		assert_int_equal(dance_policy_add(p, buf, &err), DANCE_OK);
	}
	assert_string_equal(before, "dev1.example.com");
	assert_ptr_equal(matched(p, "dev1.example.com", "dev1.example.com"),
		before);
	matched(p, "h4321.pad.example", "h4321.pad.example");
	/* Denied: DANCE_ERR_NOT_ALLOWED, *entry cleared, same reason as
	 * dance_policy_check(). */
	entry = before;
	memset(&err, 0, sizeof(err));
	assert_int_equal(dance_policy_match(p, "w.example", &entry, &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_null(entry);
	assert_string_equal(err.reason,
		"name 'w.example' is not in the allow-list");
	entry = before;
	assert_int_equal(dance_policy_match(p, "*.w.example", &entry, &err),
		DANCE_ERR_NOT_ALLOWED);
	assert_null(entry);
	entry = before;
	assert_int_equal(dance_policy_match(NULL, "a.zone.example", &entry,
		NULL), DANCE_ERR_NOT_ALLOWED);
	assert_null(entry);
	/* entry may be NULL: the plain check. */
	assert_int_equal(dance_policy_match(p, "a.zone.example", NULL, NULL),
		DANCE_OK);
	dance_policy_free(p);
}

#define N_EXACT 20000
#define N_SUB 5000
#define N_BELOW 5000

static struct dance_policy *
big_policy(void)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error err;
	char buf[128];
	int i;

	assert_non_null(p);
	for (i = 0; i < N_EXACT; i++) {
		snprintf(buf, sizeof(buf), "host%d.example.net", i);
		assert_int_equal(dance_policy_add(p, buf, &err), DANCE_OK);
	}
	for (i = 0; i < N_SUB; i++) {
		snprintf(buf, sizeof(buf), ".zone%d.example.org", i);
		assert_int_equal(dance_policy_add(p, buf, &err), DANCE_OK);
	}
	for (i = 0; i < N_BELOW; i++) {
		snprintf(buf, sizeof(buf), "*.w%d.example.edu", i);
		assert_int_equal(dance_policy_add(p, buf, &err), DANCE_OK);
	}
	return p;
}

static void
test_large(void **state)
{
	struct dance_policy *p = big_policy();
	char buf[128];
	int i;

	(void)state;
	assert_int_equal(dance_policy_count(p), N_EXACT + N_SUB + N_BELOW);
	for (i = 0; i < N_EXACT; i++) {
		snprintf(buf, sizeof(buf), "host%d.example.net", i);
		allowed(p, buf);
		snprintf(buf, sizeof(buf), "a.host%d.example.net", i);
		denied(p, buf);
	}
	for (i = N_EXACT; i < N_EXACT + 1000; i++) {
		snprintf(buf, sizeof(buf), "host%d.example.net", i);
		denied(p, buf);
	}
	for (i = 0; i < N_SUB; i++) {
		snprintf(buf, sizeof(buf), "zone%d.example.org", i);
		allowed(p, buf);
		snprintf(buf, sizeof(buf), "d.c.zone%d.example.org", i);
		allowed(p, buf);
		if (i % 97 == 0) {
			char want[64];

			snprintf(want, sizeof(want), ".zone%d.example.org", i);
			matched(p, buf, want);
		}
		snprintf(buf, sizeof(buf), "zone%dx.example.org", i);
		denied(p, buf);
	}
	for (i = 0; i < N_BELOW; i++) {
		snprintf(buf, sizeof(buf), "w%d.example.edu", i);
		denied(p, buf);
		snprintf(buf, sizeof(buf), "dev.w%d.example.edu", i);
		allowed(p, buf);
	}
	denied(p, "example.net");
	denied(p, "example.org");
	denied(p, "net");
	dance_policy_free(p);
}

#define N_CHECKS 100000

static double
time_checks(const struct dance_policy *p)
{
	static const char *names[] = { "host5.example.net",
		"a.b.c.d.e.f.zone3.example.org", "q.zone3.example.org",
		"nothere.example.com", "x.y.w4.example.edu" };
	struct timespec t0, t1;
	int i, ok = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < N_CHECKS; i++)
		ok += dance_policy_check(p, names[i % 5], NULL) == DANCE_OK;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Identical verdicts in both lists (see below). */
	assert_int_equal(ok, N_CHECKS / 5 * 4);
	return (double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void
test_cost(void **state)
{
	const char *e[] = { "host5.example.net", "host7.example.net",
		".zone3.example.org", "*.w4.example.edu", "a.example",
		"b.example", "c.example", "d.example", "e.example",
		".f.example", NULL };
	struct dance_policy *small = policy_of(e), *big;
	struct dance_error err;
	char buf[64];
	double ts, tb;
	int i;

	(void)state;
	big = policy_of(e);
	for (i = 0; dance_policy_count(big) < 100000; i++) {
		snprintf(buf, sizeof(buf), "n%d.pad.example", i);
		assert_int_equal(dance_policy_add(big, buf, &err), DANCE_OK);
	}
	ts = time_checks(small);
	tb = time_checks(big);
	/* Information only: timing is too noisy to assert on. */
	printf("# policy cost: %d checks, 10 entries %.3f s, %zu entries "
		"%.3f s, ratio %.2f\n", N_CHECKS, ts, dance_policy_count(big),
		tb, ts > 0 ? tb / ts : 0.0);
	dance_policy_free(small);
	dance_policy_free(big);
}

struct worker {
	const struct dance_policy *p;
	int bad;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char buf[64];
	int i;

	for (i = 0; i < 20000; i++) {
		snprintf(buf, sizeof(buf), "dev%d.example.com", i);
		if (dance_policy_check(w->p, buf, NULL) != DANCE_OK)
			w->bad++;
		snprintf(buf, sizeof(buf), "devx%d.example.com", i);
		if (dance_policy_check(w->p, buf, NULL) == DANCE_OK)
			w->bad++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	const char *e[] = { "~^dev[0-9]+\\.example\\.com$", "a.example",
		NULL };
	struct dance_policy *p = policy_of(e);
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	/* A filled policy is shared read-only; regex match data is per
	 * call, so concurrent checks must agree with serial ones. */
	for (i = 0; i < 4; i++) {
		w[i].p = p;
		w[i].bad = 0;
		assert_int_equal(pthread_create(&th[i], NULL, worker_run,
			&w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].bad, 0);
	}
	dance_policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_subtree),
		cmocka_unit_test(test_below),
		cmocka_unit_test(test_below_plus_apex),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_client_wildcard),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_regex_mixed),
		cmocka_unit_test(test_regex_rules),
		cmocka_unit_test(test_regex_limit),
		cmocka_unit_test(test_bad_regex),
		cmocka_unit_test(test_match_exact_first),
		cmocka_unit_test(test_match_longest_subtree),
		cmocka_unit_test(test_match_regex),
		cmocka_unit_test(test_match_normalised),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
