/*
 * fuzz_policy.c -- allow-list entries (names, subtrees, wildcards and
 * ~regex) and matching.  Input: lines; every line but the last is an
 * entry for dance_policy_add(), the last is the client name.  Checks
 * that a reported entry is one that was added, that match and check
 * agree, and (by libFuzzer's -timeout) that no regex runs away.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dance.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[DANCE_NAME_MAX + 1];
	struct dance_policy *p;
	struct dance_error err;
	const char *entry;
	char *buf, *line, *next;
	int rc, rc2;

	if (size > 4096 || (buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if ((p = dance_policy_new()) == NULL) {
		free(buf);
		return 0;
	}
	line = buf;
	while ((next = strchr(line, '\n')) != NULL) {
		*next = '\0';
		rc = dance_policy_add(p, line, &err);
		CHECK(rc == DANCE_OK || rc == DANCE_ERR_CONFIG ||
			rc == DANCE_ERR_NAME || rc == DANCE_ERR_NOMEM);
		line = next + 1;
	}
	if (dance_name_check(line, strlen(line), 0, name, NULL) == DANCE_OK) {
		rc = dance_policy_match(p, name, &entry, &err);
		rc2 = dance_policy_check(p, name, NULL);
		CHECK(rc == rc2);
		CHECK(rc == DANCE_OK || rc == DANCE_ERR_NOT_ALLOWED);
		CHECK((rc == DANCE_OK) == (entry != NULL));
		CHECK(dance_policy_count(p) > 0 || rc != DANCE_OK);
	}
	dance_policy_free(p);
	free(buf);
	return 0;
}
