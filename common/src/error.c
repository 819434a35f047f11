/*
 * error.c -- dance_code names and struct dance_error helpers.
 */
#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>

#include "dance_int.h"

const char *
dance_code_str(enum dance_code code)
{
	switch (code) {
	case DANCE_OK:			return "ok";
	case DANCE_ERR_NAME:		return "bad name";
	case DANCE_ERR_NOT_ALLOWED:	return "not allowed";
	case DANCE_ERR_PROTOCOL:	return "protocol error";
	case DANCE_ERR_CONFIG:		return "configuration error";
	case DANCE_ERR_NOMEM:		return "out of memory";
	case DANCE_ERR_DNS:		return "no secure TLSA";
	case DANCE_ERR_NOMATCH:		return "no TLSA match";
	case DANCE_ERR_TLS:		return "TLS error";
	case DANCE_ERR_OVERLOAD:	return "overload";
	case DANCE_ERR_TIMEOUT:		return "timeout";
	case DANCE_ERR_INTERNAL:	return "internal error";
	}
	/* Not a member of the enum (e.g. a cast from an int). */
	return "unknown error";
}

int
dance_err_set(struct dance_error *err, enum dance_code code,
	const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	err->reason[0] = '\0';
	if (fmt != NULL) {
		/* vsnprintf truncates to the buffer and always terminates. */
		va_start(ap, fmt);
		(void)vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
		va_end(ap);
	}
	return code;
}

void
dance_str_lower(char *s)
{
	/* ASCII only: DNS names here are A-labels, and tolower() would
	 * depend on the locale. */
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

const char *
dance_ssl_err_text(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		(void)snprintf(buf, len, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}
