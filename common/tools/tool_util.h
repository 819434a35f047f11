/*
 * tool_util.h -- small helpers shared by the dance-* command line tools
 * (tool_util.c, linked into every tool).
 *
 * API (kept stable, dance-client and dance-server use it too):
 *
 *   Certificates
 *     tool_load_certs(file, &stack, err)        every cert of a PEM file
 *     tool_load_cert_chain(cert, chain, &leaf, &chain, err)
 *                                               first cert of cert = leaf,
 *                                               the rest (+ chain file) =
 *                                               chain, leaf copies dropped
 *     tool_load_key(file, &pkey, err)           private key (PEM)
 *     tool_ctx_use_cert(ctx, leaf, chain, key, err)
 *                                               install on an SSL_CTX
 *
 *   Options ("--opt VALUE" and "--opt=VALUE" both accepted)
 *     tool_opt_value(argc, argv, &i, "--opt", &val)
 *                                    1 matched (val set), 0 not this
 *                                    option, -1 value missing
 *     tool_parse_uint(s, max, &v)               decimal or 0x hex
 *     tool_parse_ext_type(s, &type, err)        dance_ext_type_check()
 *     tool_split_hostport(spec, host, hl, port, pl)
 *                                    "HOST:PORT" / "[V6]:PORT"
 *     tool_usage_err(prog, fmt, arg)            message, TOOL_EXIT_USAGE
 *
 *   Resolver options: --ta FILE (repeatable), --unbound-conf FILE,
 *   --forward ADDR (repeatable), --dot, --dot-ca FILE, --trust-ad,
 *   --timeout MS, --ext-type N
 *     tool_resolver_opts_init(&o)
 *     tool_resolver_opt(&o, argc, argv, &i, err)
 *                                    1 consumed (i advanced past any
 *                                    value), 0 not a resolver option,
 *                                    -1 bad value (err says why)
 *     tool_resolver_cfg(&o, mode, &cfg)         fill a dance_resolver_cfg
 *     tool_resolver_new(&o, mode, err)          ... and create it
 *     tool_resolver_usage(FILE *)               option help lines
 *
 *   Output
 *     tool_hex(data, len, buf, buflen)          lower-case hex
 *     tool_tlsa_str(rr, buf, buflen)            "3 1 1 <hex>"
 *
 * Errors are returned as values; the reason goes into struct dance_error
 * and the caller prints it ("prog: reason") and picks the exit code.
 */
#ifndef DANCE_TOOL_UTIL_H
#define DANCE_TOOL_UTIL_H

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dance.h"

/* Repeatable options (--ta, --forward) keep at most this many values. */
#define TOOL_LIST_MAX 16

/* Longest --timeout accepted, ms: a typo should not hang a tool. */
#define TOOL_TIMEOUT_MAX 600000u

/* Exit codes shared by the tools. */
#define TOOL_EXIT_OK 0		/* authenticated / done */
#define TOOL_EXIT_FAIL 1	/* not authenticated */
#define TOOL_EXIT_USAGE 2	/* bad command line or input files */

int
tool_err(struct dance_error *err, enum dance_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "prog: <fmt with arg>" and a pointer to --help on stderr; returns
 * TOOL_EXIT_USAGE for "return tool_usage_err(...)". */
int
tool_usage_err(const char *prog, const char *fmt, const char *arg);

/* ------------------------------------------------------------------ */
/* Certificates and keys                                               */
/* ------------------------------------------------------------------ */

/* Append every certificate of a PEM file to *out (created if NULL).
 * A file without any certificate is an error. */
int
tool_load_certs(const char *file, STACK_OF(X509) **out,
	struct dance_error *err);

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
	X509 **leaf, STACK_OF(X509) **chain, struct dance_error *err);

/* Private key from a PEM file (unencrypted). */
int
tool_load_key(const char *file, EVP_PKEY **key, struct dance_error *err);

/* Install leaf, chain (may be NULL) and key on ctx; checks the key
 * belongs to the leaf.  ctx takes its own references. */
int
tool_ctx_use_cert(SSL_CTX *ctx, X509 *leaf, STACK_OF(X509) *chain,
	EVP_PKEY *key, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* Option parsing                                                      */
/* ------------------------------------------------------------------ */

/*
 * Does argv[*i] name option opt?  Accepts "--opt VALUE" (then *i is
 * advanced to the value) and "--opt=VALUE".  1 matched, 0 other
 * argument, -1 matched but the value is missing.
 */
int
tool_opt_value(int argc, char **argv, int *i, const char *opt,
	const char **val);

/* Unsigned number, decimal or 0x hex, at most max.  0 on success. */
int
tool_parse_uint(const char *s, unsigned long max, unsigned long *v);

/* dane_clientid code point, as the library will accept it
 * (dance_ext_type_check), so a bad one is a usage error at once. */
int
tool_parse_ext_type(const char *s, unsigned *type, struct dance_error *err);

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host and port (NUL-terminated,
 * sizes hostlen and portlen).  0 on success, -1 when the form is wrong,
 * a part is empty or does not fit.  Nothing is resolved here.
 */
int
tool_split_hostport(const char *spec, char *host, size_t hostlen,
	char *port, size_t portlen);

/* ------------------------------------------------------------------ */
/* Resolver options                                                    */
/* ------------------------------------------------------------------ */

struct tool_resolver_opts {
	const char *ta[TOOL_LIST_MAX + 1];	/* NULL-terminated */
	size_t n_ta;
	const char *forward[TOOL_LIST_MAX + 1];	/* NULL-terminated */
	size_t n_forward;
	const char *unbound_conf;
	const char *dot_ca;
	int dot;
	int trust_ad;
	unsigned timeout_ms;	/* 0: library default */
	unsigned ext_type;	/* DANCE_EXT_TYPE_DEFAULT unless given */
};

void
tool_resolver_opts_init(struct tool_resolver_opts *o);

void
tool_resolver_usage(FILE *f);

/* Append val to a NULL-terminated list of at most TOOL_LIST_MAX. */
int
tool_list_add(const char **list, size_t *n, const char *opt,
	const char *val, struct dance_error *err);

/*
 * Consume argv[*i] if it is a resolver option.  1 consumed (*i points
 * at the last argument used), 0 not ours, -1 error (err filled).
 */
int
tool_resolver_opt(struct tool_resolver_opts *o, int argc, char **argv,
	int *i, struct dance_error *err);

/* A resolver configuration from the options (defaults otherwise). */
void
tool_resolver_cfg(const struct tool_resolver_opts *o,
	enum dance_resolver_mode mode, struct dance_resolver_cfg *cfg);

/* Create a resolver from the options; NULL with err filled. */
struct dance_resolver *
tool_resolver_new(const struct tool_resolver_opts *o,
	enum dance_resolver_mode mode, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* Lower-case hex of data into buf (truncated to fit, terminated). */
const char *
tool_hex(const unsigned char *data, size_t len, char *buf, size_t buflen);

/* One TLSA record in presentation form, "3 1 1 <hex>"; long data is
 * cut off with "..." (a full 3 x 0 record can be kilobytes). */
const char *
tool_tlsa_str(const struct dance_tlsa *rr, char *buf, size_t buflen);

#endif /* DANCE_TOOL_UTIL_H */
