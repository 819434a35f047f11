/*
 * name.c -- ClientName syntax (dance_name_check) and comparison.
 *
 * The draft sends the TLSA owner name in presentation format and asks
 * applications to limit the alphabet so that \DDD escapes are never
 * needed.  We accept exactly: labels of letters, digits, '-' and '_',
 * 1..63 octets, at most 253 octets in total, no trailing dot.  See the
 * comment in dance.h for the full rule set and the reasons.
 */
#include <string.h>

#include "dance_int.h"

#define LABEL_MAX 63

static int
is_ldhu(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_';
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* The '*' at offset i, in the label starting at start: it must be a
 * whole leftmost label with a parent, and wildcards must be allowed. */
static int
check_star(const char *name, size_t len, size_t i, size_t start,
	int allow_wildcard, struct dance_error *err)
{
	if (!allow_wildcard)
		return dance_err_set(err, DANCE_ERR_NAME, "wildcard '*' "
			"(offset %zu) is not allowed in a client name", i);
	if (i != start || (i + 1 < len && name[i + 1] != '.'))
		return dance_err_set(err, DANCE_ERR_NAME, "'*' (offset %zu) "
			"must be a whole label", i);
	if (start != 0)
		return dance_err_set(err, DANCE_ERR_NAME, "wildcard '*' "
			"(offset %zu) is only allowed as the leftmost label", i);
	if (i + 1 == len)
		return dance_err_set(err, DANCE_ERR_NAME, "a wildcard needs "
			"a parent name (e.g. '*.example.com')");
	return DANCE_OK;
}

/* An octet that is not LDH, '_', '.' or an allowed '*'. */
static int
bad_octet(unsigned char c, size_t i, struct dance_error *err)
{
	if (c == '\0')
		return dance_err_set(err, DANCE_ERR_NAME, "NUL octet inside "
			"the name (offset %zu)", i);
	if (c >= 0x80)
		return dance_err_set(err, DANCE_ERR_NAME, "octet 0x%02x at "
			"offset %zu: U-label/non-ASCII; send the A-label (xn--)",
			c, i);
	if (c == '\\')
		return dance_err_set(err, DANCE_ERR_NAME, "presentation "
			"escapes ('\\' at offset %zu) are not allowed in "
			"ClientName", i);
	if (c > 0x20 && c < 0x7f)
		return dance_err_set(err, DANCE_ERR_NAME, "invalid character "
			"'%c' at offset %zu (letters, digits, '-', '_' only)",
			c, i);
	return dance_err_set(err, DANCE_ERR_NAME, "invalid octet 0x%02x at "
		"offset %zu (letters, digits, '-', '_' only)", c, i);
}

/* End of label number lab, [start, end). */
static int
check_label(const char *name, size_t start, size_t end, int lab,
	struct dance_error *err)
{
	if (end == start)
		return dance_err_set(err, DANCE_ERR_NAME, "empty label "
			"(offset %zu)", start);
	if (end - start > LABEL_MAX)
		return dance_err_set(err, DANCE_ERR_NAME, "label %d is %zu "
			"octets long (max %d)", lab, end - start, LABEL_MAX);
	if (name[start] == '-')
		return dance_err_set(err, DANCE_ERR_NAME, "label %d starts "
			"with '-' (not a host name; cannot be a certificate "
			"dNSName)", lab);
	return DANCE_OK;
}

int
dance_name_check(const char *name, size_t len, int allow_wildcard,
	char *out, struct dance_error *err)
{
	size_t i, start = 0;
	int lab = 1, rc;

	if (name == NULL || len == 0)
		return dance_err_set(err, DANCE_ERR_NAME, "empty name");
	if (name[len - 1] == '.')
		return dance_err_set(err, DANCE_ERR_NAME, len == 1 ?
			"the root name '.' is not a client name" :
			"trailing dot not allowed (send the name without the "
			"final '.')");
	if (len > DANCE_NAME_MAX)
		return dance_err_set(err, DANCE_ERR_NAME, "name is %zu octets "
			"long (max %d)", len, DANCE_NAME_MAX);

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if ((rc = check_label(name, start, i, lab, err)) != 0)
				return rc;
			start = i + 1;
			lab++;
		} else if (c == '*') {
			rc = check_star(name, len, i, start, allow_wildcard,
				err);
			if (rc != DANCE_OK)
				return rc;
		} else if (!is_ldhu(c)) {
			return bad_octet(c, i, err);
		}
	}
	if ((rc = check_label(name, start, len, lab, err)) != DANCE_OK)
		return rc;

	if (out != NULL) {
		for (i = 0; i < len; i++)
			out[i] = lower(name[i]);
		out[len] = '\0';
	}
	return DANCE_OK;
}

int
dance_name_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return 0;
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		if (lower(*a) != lower(*b))
			return 0;
	}
	return *a == *b;
}
