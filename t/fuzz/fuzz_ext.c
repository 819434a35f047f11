/*
 * fuzz_ext.c -- dane_clientid extension_data parsing and encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dance.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void
parse(const uint8_t *data, size_t size)
{
	char name[DANCE_NAME_MAX + 1], again[DANCE_NAME_MAX + 1];
	unsigned char wire[DANCE_NAME_MAX + 2];
	struct dance_error err;
	size_t i, n;
	int rc;

	/* Exact-size heap copy so ASan sees any over-read. */
	uint8_t *in = malloc(size ? size : 1);

	if (in == NULL)
		return;
	memcpy(in, data, size);
	rc = dance_ext_parse(in, size, name, &err);
	if (size == 0 || in[0] == 0 || (size_t)in[0] + 1 != size) {
		CHECK(rc == DANCE_ERR_PROTOCOL);
	} else if (rc != DANCE_OK) {
		CHECK(rc == DANCE_ERR_NAME && err.code == DANCE_ERR_NAME);
	} else {
		n = strlen(name);
		CHECK(n == size - 1 && n <= DANCE_NAME_MAX);
		for (i = 0; i < n; i++)
			CHECK(name[i] == in[1 + i] || (in[1 + i] >= 'A' &&
				in[1 + i] <= 'Z' && name[i] == in[1 + i] + 32));
		CHECK(dance_ext_encode(name, wire, sizeof(wire)) == size);
		CHECK(dance_ext_parse(wire, size, again, NULL) == DANCE_OK);
		CHECK(strcmp(name, again) == 0);
	}
	free(in);
}

static void
encode(const uint8_t *data, size_t size)
{
	unsigned char out[300];
	char *str;
	size_t outlen, n, len;

	if (size < 1)
		return;
	/* First octet picks the output size, the rest is the name. */
	outlen = data[0] + 30 < (int)sizeof(out) ? data[0] + 30u : sizeof(out);
	if ((str = malloc(size)) == NULL)
		return;
	memcpy(str, data + 1, size - 1);
	str[size - 1] = '\0';
	len = strlen(str);
	n = dance_ext_encode(str, out, outlen);
	if (len == 0 || len > 255 || len + 1 > outlen) {
		CHECK(n == 0);
	} else {
		CHECK(n == len + 1 && out[0] == len);
		CHECK(memcmp(out + 1, str, len) == 0);
	}
	free(str);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse(data, size);
	encode(data, size);
	return 0;
}
