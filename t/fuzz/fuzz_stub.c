/*
 * fuzz_stub.c -- the trust_ad transport's DNS answer parser.  The ID is
 * taken from the input, so the question check is the first hurdle.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stub.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char qw[] = "\4dev1\7example";
	struct dance_stub_result res;
	uint8_t *pkt;
	uint16_t id;
	unsigned sum = 0;
	int rc;

	if ((pkt = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(pkt, data, size);
	id = size >= 2 ? (uint16_t)(pkt[0] << 8 | pkt[1]) : 0;
	rc = dance_stub_parse(pkt, size, id, qw, sizeof(qw), &res);
	CHECK(rc == DANCE_STUB_OK || rc == DANCE_STUB_MISMATCH
		|| rc == DANCE_STUB_MALFORMED);
	if (rc == DANCE_STUB_OK) {
		CHECK(size >= 12 + sizeof(qw) + 4);
		for (size_t i = 0; i < res.n; i++) {
			/* Every rdata lies inside the packet. */
			CHECK(res.len[i] >= 0);
			CHECK((const uint8_t *)res.data[i] >= pkt);
			CHECK((const uint8_t *)res.data[i] + res.len[i]
				<= pkt + size);
			for (int j = 0; j < res.len[i]; j++)
				sum += (unsigned char)res.data[i][j];
		}
		CHECK(strlen(res.ede_text) < sizeof(res.ede_text));
	}
	(void)sum;
	dance_stub_result_clear(&res);
	free(pkt);
	return 0;
}
