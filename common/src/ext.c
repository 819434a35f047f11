/*
 * ext.c -- dane_clientid extension_data: "opaque ClientName<0..2^8-1>".
 *
 * A server sends it empty in CertificateRequest; a client sends one
 * length octet and the name in its Certificate message.  The OpenSSL
 * callbacks that carry these octets live elsewhere (tls glue).
 */
#include <string.h>

#include "dance_int.h"

#define CLIENTNAME_MAX 255

size_t
dance_ext_encode(const char *name, unsigned char *out, size_t outlen)
{
	size_t len;

	if (name == NULL || out == NULL)
		return 0;
	len = strlen(name);
	if (len == 0 || len > CLIENTNAME_MAX || outlen < len + 1)
		return 0;
	out[0] = (unsigned char)len;
	memcpy(out + 1, name, len);
	return len + 1;
}

int
dance_ext_parse(const unsigned char *in, size_t inlen, char *name,
	struct dance_error *err)
{
	if (in == NULL || inlen == 0)
		return dance_err_set(err, DANCE_ERR_PROTOCOL, "zero-length "
			"ClientName (empty extension_data, no length octet)");
	if (in[0] == 0)
		return dance_err_set(err, DANCE_ERR_PROTOCOL, "zero-length "
			"ClientName");
	/* Exactly one vector and nothing after it: trailing octets would
	 * be data that nobody checked. */
	if ((size_t)in[0] != inlen - 1)
		return dance_err_set(err, DANCE_ERR_PROTOCOL, "ClientName "
			"length octet says %u octets but %zu follow",
			(unsigned)in[0], inlen - 1);
	return dance_name_check((const char *)in + 1, inlen - 1, 0, name,
		err);
}

/* OpenSSL refuses custom extensions of the types it handles itself. */
int
dance_ext_type_check(unsigned type, struct dance_error *err)
{
	if (type > 0xFFFF)
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"%u does not fit 16 bits", type);
	if (type == 0xFF01)
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"0xFF01 is renegotiation_info, handled inside OpenSSL");
	if (SSL_extension_supported(type))
		return dance_err_set(err, DANCE_ERR_CONFIG, "extension type "
			"0x%04X is handled inside OpenSSL", type);
	return DANCE_OK;
}
