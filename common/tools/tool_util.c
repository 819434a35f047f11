/*
 * tool_util.c -- small helpers shared by the dance-* command line
 * tools; the API is described in tool_util.h.
 */
#include "tool_util.h"

/* Like the library's dance_err_set (which is internal). */
int
tool_err(struct dance_error *err, enum dance_code code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	(void)vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return code;
}

/* "prog: <fmt with arg>" and a pointer to --help on stderr; returns
 * TOOL_EXIT_USAGE for "return tool_usage_err(...)". */
int
tool_usage_err(const char *prog, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(try %s --help)\n", prog);
	return TOOL_EXIT_USAGE;
}

/* Append every certificate of a PEM file to *out (created if NULL).
 * A file without any certificate is an error. */
int
tool_load_certs(const char *file, STACK_OF(X509) **out,
	struct dance_error *err)
{
	BIO *b;
	X509 *x;
	int n = 0;
	char eb[160];

	if ((b = BIO_new_file(file, "r")) == NULL)
		return tool_err(err, DANCE_ERR_CONFIG, "cannot read %s: %s",
			file, strerror(errno));
	if (*out == NULL && (*out = sk_X509_new_null()) == NULL) {
		BIO_free(b);
		return tool_err(err, DANCE_ERR_NOMEM, "out of memory");
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(*out, x)) {
			X509_free(x);
			BIO_free(b);
			return tool_err(err, DANCE_ERR_NOMEM, "out of memory");
		}
		n++;
	}
	BIO_free(b);
	/* Reading stops with "no start line" at EOF; anything else after
	 * at least one cert is a damaged file. */
	if (n == 0)
		return tool_err(err, DANCE_ERR_CONFIG,
			"%s: no PEM certificate found (%s)", file,
			dance_ssl_err_text(eb, sizeof(eb)));
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE &&
	    ERR_peek_last_error() != 0)
		return tool_err(err, DANCE_ERR_CONFIG, "%s: %s", file,
			dance_ssl_err_text(eb, sizeof(eb)));
	ERR_clear_error();
	return DANCE_OK;
}

/*
 * Leaf and chain: the first certificate of cert_file is the leaf, its
 * other certificates and those of chain_file (may be NULL) form the
 * chain, in order.  Copies of the leaf are dropped, so "leaf + issuer"
 * bundles can be given as the chain too.  *chain is never NULL on
 * success (maybe empty).  Free with X509_free and
 * sk_X509_pop_free(chain, X509_free).
 */
int
tool_load_cert_chain(const char *cert_file, const char *chain_file,
	X509 **leaf, STACK_OF(X509) **chain, struct dance_error *err)
{
	STACK_OF(X509) *all = NULL;
	STACK_OF(X509) *rest;
	X509 *x;
	int rc;

	*leaf = NULL;
	*chain = NULL;
	if ((rc = tool_load_certs(cert_file, &all, err)) != DANCE_OK)
		goto fail;
	if (chain_file != NULL &&
	    (rc = tool_load_certs(chain_file, &all, err)) != DANCE_OK)
		goto fail;
	if ((rest = sk_X509_new_null()) == NULL) {
		rc = tool_err(err, DANCE_ERR_NOMEM, "out of memory");
		goto fail;
	}
	*leaf = sk_X509_shift(all);
	while ((x = sk_X509_shift(all)) != NULL) {
		if (X509_cmp(x, *leaf) == 0 || !sk_X509_push(rest, x))
			X509_free(x);
	}
	sk_X509_free(all);
	*chain = rest;
	return DANCE_OK;
fail:
	sk_X509_pop_free(all, X509_free);
	return rc;
}

/* Private key from a PEM file (unencrypted). */
int
tool_load_key(const char *file, EVP_PKEY **key, struct dance_error *err)
{
	BIO *b;
	char eb[160];

	*key = NULL;
	if ((b = BIO_new_file(file, "r")) == NULL)
		return tool_err(err, DANCE_ERR_CONFIG, "cannot read %s: %s",
			file, strerror(errno));
	*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (*key == NULL)
		return tool_err(err, DANCE_ERR_CONFIG,
			"%s: no usable PEM private key (%s)", file,
			dance_ssl_err_text(eb, sizeof(eb)));
	return DANCE_OK;
}

/* Install leaf, chain (may be NULL) and key on ctx; checks the key
 * belongs to the leaf.  ctx takes its own references. */
int
tool_ctx_use_cert(SSL_CTX *ctx, X509 *leaf, STACK_OF(X509) *chain,
	EVP_PKEY *key, struct dance_error *err)
{
	char eb[160];

	if (SSL_CTX_use_certificate(ctx, leaf) != 1)
		return tool_err(err, DANCE_ERR_TLS, "certificate: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	if (key != NULL && SSL_CTX_use_PrivateKey(ctx, key) != 1)
		return tool_err(err, DANCE_ERR_TLS,
			"private key does not fit the certificate: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	if (chain != NULL && sk_X509_num(chain) > 0 &&
	    SSL_CTX_set1_chain(ctx, chain) != 1)
		return tool_err(err, DANCE_ERR_TLS, "chain: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
	return DANCE_OK;
}

/*
 * Does argv[*i] name option opt?  Accepts "--opt VALUE" (then *i is
 * advanced to the value) and "--opt=VALUE".  1 matched, 0 other
 * argument, -1 matched but the value is missing.
 */
int
tool_opt_value(int argc, char **argv, int *i, const char *opt,
	const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(opt);

	if (strncmp(a, opt, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	(*i)++;
	*val = argv[*i];
	return 1;
}

/* Unsigned number, decimal or 0x hex, at most max.  0 on success. */
int
tool_parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;
	int base = 10;

	if (s == NULL || *s == '\0')
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	/* strtoul would accept a sign and leading blanks. */
	if (!(base == 16 ? isxdigit((unsigned char)*s) :
	    isdigit((unsigned char)*s)))
		return -1;
	errno = 0;
	*v = strtoul(s, &end, base);
	if (errno != 0 || *end != '\0' || *v > max)
		return -1;
	return 0;
}

/* dane_clientid code point, as the library will accept it
 * (dance_ext_type_check), so a bad one is a usage error at once. */
int
tool_parse_ext_type(const char *s, unsigned *type, struct dance_error *err)
{
	struct dance_error e;
	unsigned long v;

	if (tool_parse_uint(s, 0xFFFFFFFFul, &v) != 0)
		return tool_err(err, DANCE_ERR_CONFIG,
			"--ext-type '%s': not a number (decimal or 0x hex)",
			s);
	if (dance_ext_type_check((unsigned)v, &e) != DANCE_OK)
		return tool_err(err, e.code, "--ext-type %s: %s; use "
			"another value (default 0x%04X)", s, e.reason,
			DANCE_EXT_TYPE_DEFAULT);
	*type = (unsigned)v;
	return DANCE_OK;
}

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host and port (NUL-terminated,
 * sizes hostlen and portlen).  0 on success, -1 when the form is wrong,
 * a part is empty or does not fit.  Nothing is resolved here.
 */
int
tool_split_hostport(const char *spec, char *host, size_t hostlen,
	char *port, size_t portlen)
{
	const char *colon, *hs = spec;
	size_t hl;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		hs = spec + 1;
		hl = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= hostlen || colon[1] == '\0' ||
	    strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	(void)snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

void
tool_resolver_opts_init(struct tool_resolver_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ext_type = DANCE_EXT_TYPE_DEFAULT;
}

void
tool_resolver_usage(FILE *f)
{
	fprintf(f,
"DNS options:\n"
"  --ta FILE            trust anchor (DS or DNSKEY, zone-file format);\n"
"                       repeatable; required unless --trust-ad\n"
"  --unbound-conf FILE  extra libunbound configuration (stub zones ...)\n"
"  --forward ADDR       forwarder addr[@port][#tls-name]; repeatable\n"
"  --dot                DNS-over-TLS to the forwarders\n"
"  --dot-ca FILE        CA bundle for --dot\n"
"  --trust-ad           trust the forwarders' AD bit (trusted path only)\n"
"  --timeout MS         per-lookup timeout in ms (default 3000)\n"
"  --ext-type N         dane_clientid code point, decimal or 0x hex\n"
"                       (default 0x%04X)\n", DANCE_EXT_TYPE_DEFAULT);
}

/* Append val to a NULL-terminated list of at most TOOL_LIST_MAX. */
int
tool_list_add(const char **list, size_t *n, const char *opt,
	const char *val, struct dance_error *err)
{
	if (*n >= TOOL_LIST_MAX)
		return tool_err(err, DANCE_ERR_CONFIG,
			"%s given more than %d times", opt, TOOL_LIST_MAX);
	if (*val == '\0')
		return tool_err(err, DANCE_ERR_CONFIG, "%s: empty value",
			opt);
	list[(*n)++] = val;
	list[*n] = NULL;
	return DANCE_OK;
}

/*
 * Consume argv[*i] if it is a resolver option.  1 consumed (*i points
 * at the last argument used), 0 not ours, -1 error (err filled).
 */
int
tool_resolver_opt(struct tool_resolver_opts *o, int argc, char **argv,
	int *i, struct dance_error *err)
{
	static const char *const with_val[] = { "--ta", "--unbound-conf",
		"--forward", "--dot-ca", "--timeout", "--ext-type", NULL };
	const char *a = argv[*i];
	const char *v = NULL;
	unsigned long n;
	size_t k;
	int r;

	if (strcmp(a, "--dot") == 0) {
		o->dot = 1;
		return 1;
	}
	if (strcmp(a, "--trust-ad") == 0) {
		o->trust_ad = 1;
		return 1;
	}
	for (k = 0; with_val[k] != NULL; k++) {
		r = tool_opt_value(argc, argv, i, with_val[k], &v);
		if (r < 0) {
			tool_err(err, DANCE_ERR_CONFIG, "%s needs a value",
				with_val[k]);
			return -1;
		}
		if (r > 0)
			break;
	}
	if (with_val[k] == NULL)
		return 0;
	switch (k) {
	case 0:
		r = tool_list_add(o->ta, &o->n_ta, "--ta", v, err);
		break;
	case 1:
		o->unbound_conf = v;
		r = DANCE_OK;
		break;
	case 2:
		r = tool_list_add(o->forward, &o->n_forward, "--forward", v,
			err);
		break;
	case 3:
		o->dot_ca = v;
		r = DANCE_OK;
		break;
	case 4:
		if (tool_parse_uint(v, TOOL_TIMEOUT_MAX, &n) != 0 || n == 0)
			r = tool_err(err, DANCE_ERR_CONFIG,
				"--timeout '%s': want milliseconds, 1..%u",
				v, TOOL_TIMEOUT_MAX);
		else {
			o->timeout_ms = (unsigned)n;
			r = DANCE_OK;
		}
		break;
	default:
		r = tool_parse_ext_type(v, &o->ext_type, err);
		break;
	}
	return r == DANCE_OK ? 1 : -1;
}

/* A resolver configuration from the options (defaults otherwise). */
void
tool_resolver_cfg(const struct tool_resolver_opts *o,
	enum dance_resolver_mode mode, struct dance_resolver_cfg *cfg)
{
	dance_resolver_cfg_init(cfg);
	cfg->mode = mode;
	cfg->trust_anchor_files = o->n_ta > 0 ? o->ta : NULL;
	cfg->trust_ad = o->trust_ad;
	cfg->forwarders = o->n_forward > 0 ? o->forward : NULL;
	cfg->forward_tls = o->dot;
	cfg->tls_ca_file = o->dot_ca;
	cfg->unbound_conf = o->unbound_conf;
	if (o->timeout_ms != 0)
		cfg->timeout_ms = o->timeout_ms;
}

/* Create a resolver from the options; NULL with err filled. */
struct dance_resolver *
tool_resolver_new(const struct tool_resolver_opts *o,
	enum dance_resolver_mode mode, struct dance_error *err)
{
	struct dance_resolver_cfg cfg;

	if (o->n_ta == 0 && !o->trust_ad) {
		tool_err(err, DANCE_ERR_CONFIG, "no DNSSEC trust: give --ta "
			"FILE (or --trust-ad with a validating forwarder)");
		return NULL;
	}
	if (o->dot && o->n_forward == 0) {
		tool_err(err, DANCE_ERR_CONFIG, "--dot needs --forward");
		return NULL;
	}
	tool_resolver_cfg(o, mode, &cfg);
	return dance_resolver_new(&cfg, err);
}

/* Lower-case hex of data into buf (truncated to fit, terminated). */
const char *
tool_hex(const unsigned char *data, size_t len, char *buf, size_t buflen)
{
	static const char hx[] = "0123456789abcdef";
	size_t i, o = 0;

	if (buflen == 0)
		return buf;
	for (i = 0; i < len && o + 2 < buflen; i++) {
		buf[o++] = hx[data[i] >> 4];
		buf[o++] = hx[data[i] & 0xf];
	}
	buf[o] = '\0';
	return buf;
}

/* One TLSA record in presentation form, "3 1 1 <hex>"; long data is
 * cut off with "..." (a full 3 x 0 record can be kilobytes). */
const char *
tool_tlsa_str(const struct dance_tlsa *rr, char *buf, size_t buflen)
{
	int n;

	n = snprintf(buf, buflen, "%u %u %u ", rr->usage, rr->selector,
		rr->mtype);
	if (n < 0 || (size_t)n >= buflen)
		return buf;
	tool_hex(rr->data, rr->len, buf + n, buflen - (size_t)n);
	if (rr->len * 2 > buflen - (size_t)n - 1 && buflen > 4)
		memcpy(buf + buflen - 4, "...", 4);
	return buf;
}
