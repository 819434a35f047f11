/*
 * fuzz_answer.c -- dance_answer_deserialize, the nginx shared cache's
 * format (read back from memory every worker can write).  Whatever it
 * accepts must serialize back to the same octets (the name lower-cased).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dance.h"
#include "dance_int.h"	/* the answer internals */

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* Offset of the name in the format: magic, version, status, from_cache,
 * ttl, then the name's length octet. */
#define NAME_LEN_AT 11

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dance_answer *a;
	uint8_t *in, *out;
	size_t i, n, sz;
	unsigned sum = 0;

	/* Exact-size heap copy so ASan sees any over-read. */
	if ((in = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(in, data, size);
	a = dance_answer_deserialize(in, size);
	if (a == NULL) {
		free(in);
		return 0;
	}
	CHECK(a->status <= DANCE_DNS_ERROR);
	CHECK(memchr(a->name, '\0', sizeof(a->name)) != NULL);
	CHECK(memchr(a->why, '\0', sizeof(a->why)) != NULL);
	CHECK((a->status == DANCE_DNS_SECURE) == (a->n > 0));
	for (i = 0; i < a->n; i++) {
		for (n = 0; n < a->rr[i].len; n++)
			sum += a->rr[i].data[n];
	}
	CHECK(sum <= 255u * size);
	/* Round trip: the same octets, but for the name's case. */
	sz = dance_answer_serialize_size(a);
	CHECK(sz == size);
	CHECK((out = malloc(sz)) != NULL);
	CHECK(dance_answer_serialize(a, out, sz) == sz);
	for (i = NAME_LEN_AT + 1; i < NAME_LEN_AT + 1u + in[NAME_LEN_AT]; i++) {
		if (in[i] >= 'A' && in[i] <= 'Z')
			in[i] = (uint8_t)(in[i] - 'A' + 'a');
	}
	CHECK(memcmp(in, out, sz) == 0);
	free(out);
	dance_answer_unref(a);
	free(in);
	return 0;
}
