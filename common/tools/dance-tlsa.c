/*
 * dance-tlsa -- print the TLSA records that publish a certificate.
 *
 *   dance-tlsa [--name NAME] CERT [USAGE SELECTOR MTYPE]
 *
 * Output is zone-file form, one record a line:
 *   sensor7._device.example.com. IN TLSA 3 1 1 <hex>
 * Without a usage triple the usual set is printed: 3 1 1 and 3 1 2,
 * plus 2 0 1 when CERT is a CA certificate (for DANE-TA).
 */
#include "tool_util.h"

#include <openssl/x509v3.h>

static void
usage(FILE *f)
{
	fprintf(f,
"usage: dance-tlsa [--name NAME] CERT [USAGE SELECTOR MTYPE]\n"
"\n"
"Prints TLSA records for the first certificate in the PEM file CERT.\n"
"  USAGE     0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE\n"
"  SELECTOR  0 full certificate, 1 SubjectPublicKeyInfo\n"
"  MTYPE     0 full data, 1 SHA2-256, 2 SHA2-512\n"
"Without them: 3 1 1 and 3 1 2, and 2 0 1 for a CA certificate.\n"
"\n"
"  --name NAME  owner name (default: the first SAN dNSName, else NAME)\n"
"  --help       this text\n");
}

static int
print_rr(const char *owner, X509 *x, int u, int s, int m)
{
	char *hex = tool_tlsa_hex(x, s, m);

	if (hex == NULL) {
		fprintf(stderr, "dance-tlsa: cannot compute TLSA %d %d %d\n",
			u, s, m);
		return -1;
	}
	printf("%s. IN TLSA %d %d %d %s\n", owner, u, s, m, hex);
	free(hex);
	return 0;
}

/* One of the three TLSA numbers: value 0..max. */
static int
parse_field(const char *what, const char *s, unsigned long max, int *out)
{
	unsigned long v;

	if (tool_parse_uint(s, 255, &v) != 0 || v > max) {
		fprintf(stderr, "dance-tlsa: %s '%s': want 0..%lu\n", what, s,
			max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* --name: a DNS name, wildcard owners allowed, trailing dot optional. */
static int
owner_name(const char *arg, char *owner)
{
	struct dance_error e;
	size_t len = strlen(arg);

	if (len > 1 && arg[len - 1] == '.')
		len--;
	if (dance_name_check(arg, len, 1, owner, &e) != DANCE_OK) {
		fprintf(stderr, "dance-tlsa: --name %s: %s\n", arg, e.reason);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	char owner[DANCE_NAME_MAX + 1];
	const char *pos[4];
	const char *val;
	struct dance_error e;
	STACK_OF(X509) *certs = NULL;
	X509 *x;
	int i, r, npos = 0, have_name = 0, u, s, m, rc = TOOL_EXIT_OK;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return TOOL_EXIT_OK;
		}
		r = tool_opt_value(argc, argv, &i, "--name", &val);
		if (r < 0) {
			fprintf(stderr, "dance-tlsa: --name needs a value\n");
			return TOOL_EXIT_USAGE;
		}
		if (r > 0) {
			if (owner_name(val, owner) != 0)
				return TOOL_EXIT_USAGE;
			have_name = 1;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "dance-tlsa: unknown option %s\n",
				argv[i]);
			usage(stderr);
			return TOOL_EXIT_USAGE;
		}
		if (npos == 4) {
			fprintf(stderr, "dance-tlsa: too many arguments\n");
			return TOOL_EXIT_USAGE;
		}
		pos[npos++] = argv[i];
	}
	if (npos != 1 && npos != 4) {
		usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	if (npos == 4 && (parse_field("usage", pos[1], 3, &u) != 0 ||
	    parse_field("selector", pos[2], 1, &s) != 0 ||
	    parse_field("matching type", pos[3], 2, &m) != 0))
		return TOOL_EXIT_USAGE;
	if (tool_load_certs(pos[0], &certs, &e) != DANCE_OK) {
		fprintf(stderr, "dance-tlsa: %s\n", e.reason);
		sk_X509_pop_free(certs, X509_free);
		return TOOL_EXIT_FAIL;
	}
	x = sk_X509_value(certs, 0);
	if (!have_name && dance_cert_san_name(x, NULL, owner, NULL) !=
	    DANCE_OK)
		snprintf(owner, sizeof(owner), "NAME");
	if (npos == 4) {
		if (print_rr(owner, x, u, s, m) != 0)
			rc = TOOL_EXIT_FAIL;
	} else if (print_rr(owner, x, 3, 1, 1) != 0 ||
	    print_rr(owner, x, 3, 1, 2) != 0 ||
	    (X509_check_ca(x) > 0 && print_rr(owner, x, 2, 0, 1) != 0)) {
		rc = TOOL_EXIT_FAIL;
	}
	sk_X509_pop_free(certs, X509_free);
	return rc;
}
