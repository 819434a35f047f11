/*
 * escape.c -- client bytes made safe for log lines and attributes.
 *
 * Names that passed dance_name_check() are safe as they are; everything
 * else a client sends (an EAP identity, a rejected ClientName, a SAN
 * string) goes through dance_escape() before a host logs it, so that no
 * client can forge log lines or terminal escapes.
 */
#include <stdio.h>
#include <string.h>

#include "dance_int.h"

/* One octet escaped into one[5]; returns its length. */
static size_t
escape1(unsigned char c, char *one)
{
	if (c == '\\' || c == '"')
		return (size_t)snprintf(one, 5, "\\%c", c);
	if (c >= 0x20 && c < 0x7f)
		return (size_t)snprintf(one, 5, "%c", c);
	return (size_t)snprintf(one, 5, "\\x%02x", c);
}

const char *
dance_escape(const void *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = in;
	size_t i, o = 0, need, total = 0;
	char one[5];

	if (outlen == 0)
		return out;
	for (i = 0; i < len; i++)
		total += escape1(p[i], one);
	for (i = 0; i < len; i++) {
		need = escape1(p[i], one);
		/* cut: keep room for "..." */
		if (total > outlen - 1 && o + need + 3 > outlen - 1) {
			if (o + 3 <= outlen - 1)
				o += (size_t)snprintf(out + o, outlen - o,
					"...");
			break;
		}
		memcpy(out + o, one, need);
		o += need;
	}
	out[o] = '\0';
	return out;
}
