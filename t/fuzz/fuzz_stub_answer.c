/*
 * fuzz_stub_answer.c -- the trust_ad transport's DNS answer parser past
 * the question check: the header's flags and counts come from the
 * input, the question is the real one the transport asked
 * (dev1._device.example.com TLSA IN, as dance_stub_query() writes it),
 * and the input's rest is the answer, authority and additional
 * sections.  fuzz_stub spends most inputs on the question match.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stub.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

#define HDR_FROM_INPUT 10	/* flags and the four counts... */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char qw[256];
	static size_t qwlen;
	unsigned char query[12 + 256 + 4 + 11];
	struct dance_stub_result res;
	uint8_t *pkt;
	size_t qlen, plen;
	int rc;

	if (qwlen == 0)
		qwlen = dance_stub_name_wire("dev1._device.example.com", qw);
	if (size < HDR_FROM_INPUT)
		return 0;
	/* id 0x1234, then flags and counts from the input (QDCOUNT
	 * included: the parser must cope with 0 or many questions), then
	 * the real question, then the rest of the input */
	qlen = dance_stub_query(qw, qwlen, 0x1234, query);
	CHECK(qlen >= 12 + qwlen + 4);
	plen = 12 + qwlen + 4 + (size - HDR_FROM_INPUT);
	if ((pkt = malloc(plen)) == NULL)
		return 0;
	pkt[0] = 0x12;
	pkt[1] = 0x34;
	memcpy(pkt + 2, data, HDR_FROM_INPUT);
	memcpy(pkt + 12, query + 12, qwlen + 4);
	memcpy(pkt + 12 + qwlen + 4, data + HDR_FROM_INPUT,
		size - HDR_FROM_INPUT);
	rc = dance_stub_parse(pkt, plen, 0x1234, qw, qwlen, &res);
	CHECK(rc == DANCE_STUB_OK || rc == DANCE_STUB_MISMATCH
		|| rc == DANCE_STUB_MALFORMED);
	if (rc == DANCE_STUB_OK) {
		for (size_t i = 0; i < res.n; i++) {
			/* Every rdata lies inside the packet. */
			CHECK(res.len[i] >= 0);
			CHECK((const uint8_t *)res.data[i] >= pkt);
			CHECK((const uint8_t *)res.data[i] + res.len[i]
				<= pkt + plen);
		}
		CHECK(strlen(res.ede_text) < sizeof(res.ede_text));
	}
	dance_stub_result_clear(&res);
	free(pkt);
	return 0;
}
