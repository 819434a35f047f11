/*
 * fuzz_tlsa.c -- TLSA RDATA parsing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dance.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dance_tlsa t;
	struct dance_error err;
	uint8_t *rd;
	unsigned sum = 0;
	size_t i;
	int rc, want;

	/* Exact-size heap copy so ASan sees any over-read. */
	if ((rd = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(rd, data, size);
	rc = dance_tlsa_parse(rd, size, &t, &err);
	want = size >= 4 && !(rd[2] == 1 && size != 35) &&
		!(rd[2] == 2 && size != 67);
	CHECK((rc == DANCE_OK) == want);
	if (rc == DANCE_OK) {
		CHECK(t.usage == rd[0] && t.selector == rd[1] &&
			t.mtype == rd[2]);
		CHECK(t.len == size - 3 && t.data == rd + 3);
		/* Touch every octet the record claims to own. */
		for (i = 0; i < t.len; i++)
			sum += t.data[i];
		/* Keep the reads: the sum has a known upper bound. */
		CHECK(sum <= 255u * t.len);
	} else {
		CHECK(rc == DANCE_ERR_DNS && err.code == DANCE_ERR_DNS);
		CHECK(memchr(err.reason, '\0', sizeof(err.reason)) != NULL);
	}
	free(rd);
	return 0;
}
