/*
 * tls_client.c -- client side of the dane_clientid extension: send the
 * ClientName (per SSL_CTX or per connection) when, and only when, the
 * server's CertificateRequest asks for it.
 */
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

/* An encoded ClientName, the client's dane_clientid extension_data. */
struct cli_name {
	size_t len;			/* 0: no name */
	unsigned char enc[1 + 255];
};

/* For the ex_data dup callback (conn.c): one record, copied whole. */
const size_t dance_cli_name_size = sizeof(struct cli_name);

/* Client side, owned by the SSL_CTX (ex_data with a free function). */
struct tls_client {
	unsigned ext_type;
	struct cli_name name;		/* len 0: names come per SSL */
};

/* ------------------------------------------------------------------ */
/* Client side                                                         */
/* ------------------------------------------------------------------ */

static int
cli_add_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char **out, size_t *outlen, X509 *x, size_t chainidx,
	int *al, void *add_arg)
{
	const struct tls_client *cl = add_arg;
	const struct cli_name *n;

	/* OpenSSL calls this for CT only when the server's
	 * CertificateRequest carried the extension; the name goes with
	 * the leaf entry only. */
	if ((context & SSL_EXT_TLS1_3_CERTIFICATE) == 0 || x == NULL ||
	    chainidx != 0)
		return 0;
	/* The connection's own name wins over the context's. */
	if ((n = SSL_get_ex_data(ssl, dance_tls_idx.cli_name)) == NULL)
		n = &cl->name;
	if (n->len == 0)
		return 0;	/* no name for this connection: send nothing */
	*out = n->enc;
	*outlen = n->len;
	return 1;
}

static int
cli_parse_cb(SSL *ssl, unsigned int ext_type, unsigned int context,
	const unsigned char *in, size_t inlen, X509 *x, size_t chainidx,
	int *al, void *parse_arg)
{
	if ((context & SSL_EXT_TLS1_3_CERTIFICATE_REQUEST) == 0) {
		*al = SSL_AD_UNSUPPORTED_EXTENSION;
		return 0;
	}
	/* A zero-length ClientName (draft -13), or the empty
	 * extension_data of older servers (the tls-clientid draft). */
	if (inlen == 0 || (inlen == 1 && in[0] == 0))
		return 1;
	*al = SSL_AD_DECODE_ERROR;
	return 0;
}

/* Check and encode a client name. */
static int
cli_name_make(const char *name, struct cli_name *n, struct dance_error *err)
{
	char lname[DANCE_NAME_MAX + 1];
	int rc;

	if ((rc = dance_name_check(name, strlen(name), 0, lname, err))
	    != DANCE_OK)
		return rc;
	if ((n->len = dance_ext_encode(lname, n->enc, sizeof(n->enc))) == 0)
		return dance_err_set(err, DANCE_ERR_NAME, "cannot encode "
			"name %s", lname);
	return DANCE_OK;
}

int
dance_tls_client_attach(SSL_CTX *ctx, unsigned ext_type, const char *name,
	struct dance_error *err)
{
	struct tls_client *cl;
	char eb[160];
	int rc;

	if ((rc = dance_tls_idx_ready(err)) != DANCE_OK)
		return rc;
	if (ctx == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no SSL_CTX");
	if (ext_type == 0)
		ext_type = DANCE_EXT_TYPE_DEFAULT;
	if ((rc = dance_ext_type_check(ext_type, err)) != DANCE_OK)
		return rc;
	if (SSL_CTX_get_ex_data(ctx, dance_tls_idx.client) != NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX already "
			"has the DANCE client extension");
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	cl->ext_type = ext_type;
	/* No name: every connection brings its own (or sends none). */
	if (name != NULL && (rc = cli_name_make(name, &cl->name, err))
	    != DANCE_OK) {
		free(cl);
		return rc;
	}
	/* ctx owns cl from here (freed with it). */
	if (!SSL_CTX_set_ex_data(ctx, dance_tls_idx.client, cl)) {
		free(cl);
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	}
	if (SSL_CTX_add_custom_ext(ctx, ext_type, DANCE_EXT_CONTEXT, cli_add_cb,
	    NULL, cl, cli_parse_cb, cl) != 1) {
		(void)SSL_CTX_set_ex_data(ctx, dance_tls_idx.client, NULL);
		free(cl);
		return dance_err_set(err, DANCE_ERR_TLS, "cannot register "
			"extension 0x%04X: %s", ext_type,
			dance_ssl_err_text(eb, sizeof(eb)));
	}
	return DANCE_OK;
}

int
dance_tls_client_set_name(SSL *ssl, const char *name,
	struct dance_error *err)
{
	struct cli_name *n, *old;
	int rc;

	if ((rc = dance_tls_idx_ready(err)) != DANCE_OK)
		return rc;
	if (ssl == NULL)
		return dance_err_set(err, DANCE_ERR_INTERNAL, "no SSL");
	n = NULL;
	if (name != NULL) {
		if ((n = malloc(sizeof(*n))) == NULL)
			return dance_err_set(err, DANCE_ERR_NOMEM,
				"out of memory");
		if ((rc = cli_name_make(name, n, err)) != DANCE_OK) {
			free(n);
			return rc;
		}
	}
	/* Without the extension on the context, a name would silently
	 * never be sent. */
	if (SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), dance_tls_idx.client) == NULL) {
		free(n);
		return dance_err_set(err, DANCE_ERR_CONFIG, "SSL_CTX has no "
			"DANCE client extension (dance_tls_client_attach)");
	}
	old = SSL_get_ex_data(ssl, dance_tls_idx.cli_name);
	if (!SSL_set_ex_data(ssl, dance_tls_idx.cli_name, n)) {
		free(n);
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	}
	free(old);
	return DANCE_OK;
}
