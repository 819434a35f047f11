/*
 * conn.c -- per-connection DANCE state (SSL ex_data) and its
 * accessors; the OpenSSL ex_data indexes of the TLS glue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

struct dance_tls_idx dance_tls_idx = { -1, -1, -1, -1 };
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

/* An SSL_dup() must not share (and later double-free) the state. */
static int
ex_nodup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	int idx, long argl, void *argp)
{
	*from_d = NULL;
	return 1;
}

static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
	long argl, void *argp)
{
	struct conn_priv *c = ptr;

	if (c == NULL)
		return;
	/* An SSL freed mid-lookup: the callback must never run. */
	if (c->pub.lookup != NULL)
		dance_lookup_cancel(c->pub.lookup);
	dance_mx_conn_free(c);
	dance_budget_leave(c->pub.srv, c);
	if (c->pub.answer != NULL)
		dance_answer_unref(c->pub.answer);
	free(c->identity);
	free(c);
}

static void
plain_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
	long argl, void *argp)
{
	free(ptr);
}

/* SSL_dup() of a client SSL keeps its own copy of the name. */
static int
cli_name_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
	int idx, long argl, void *argp)
{
	void *n;

	if (*from_d == NULL)
		return 1;
	/* The size is fixed by tls_client.c (struct cli_name). */
	if ((n = malloc(argl)) == NULL) {
		*from_d = NULL;
		return 0;
	}
	memcpy(n, *from_d, (size_t)argl);
	*from_d = n;
	return 1;
}

/* Size of the client's per-SSL name record, for cli_name_dup. */
extern const size_t dance_cli_name_size;

static void
idx_init(void)
{
	dance_tls_idx.srv = SSL_CTX_get_ex_new_index(0, "dance server",
		NULL, NULL, NULL);
	dance_tls_idx.client = SSL_CTX_get_ex_new_index(0, "dance client",
		NULL, NULL, plain_ex_free);
	dance_tls_idx.conn = SSL_get_ex_new_index(0, "dance conn", NULL,
		ex_nodup, conn_ex_free);
	dance_tls_idx.cli_name = SSL_get_ex_new_index(
		(long)dance_cli_name_size, "dance client name", NULL,
		cli_name_dup, plain_ex_free);
}

int
dance_tls_idx_ready(struct dance_error *err)
{
	(void)pthread_once(&idx_once, idx_init);
	if (dance_tls_idx.srv < 0 || dance_tls_idx.client < 0 ||
	    dance_tls_idx.conn < 0 || dance_tls_idx.cli_name < 0)
		return dance_err_set(err, DANCE_ERR_TLS, "cannot allocate "
			"OpenSSL ex_data indexes");
	return DANCE_OK;
}

struct conn_priv *
dance_conn_priv(SSL *ssl, int create)
{
	struct conn_priv *c;

	if (ssl == NULL || dance_tls_idx_ready(NULL) != DANCE_OK)
		return NULL;
	c = SSL_get_ex_data(ssl, dance_tls_idx.conn);
	if (c != NULL || !create)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->pub.state = DANCE_CONN_NONE;
	c->pub.usage = -1;
	c->ssl = ssl;
	c->code = DANCE_OK;
	if (!SSL_set_ex_data(ssl, dance_tls_idx.conn, c)) {
		free(c);
		return NULL;
	}
	return c;
}

struct dance_tls_server *
dance_tls_server_of(SSL *ssl)
{
	if (ssl == NULL || dance_tls_idx_ready(NULL) != DANCE_OK)
		return NULL;
	/* SNI may have switched the SSL_CTX; its attach holds the srv. */
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), dance_tls_idx.srv);
}

void
dance_conn_set(struct conn_priv *c, enum dance_conn_state st,
	enum dance_code code, enum dance_reason why, const char *reason)
{
	c->pub.state = st;
	c->code = code;
	c->why = why;
	if (reason != c->pub.reason)
		(void)snprintf(c->pub.reason, sizeof(c->pub.reason), "%s",
			reason);
}

void
dance_conn_keep_answer(struct conn_priv *c, struct dance_answer *a)
{
	if (c->pub.answer != NULL)
		dance_answer_unref(c->pub.answer);
	c->pub.answer = a;
}

struct dance_conn *
dance_conn_get(SSL *ssl)
{
	struct conn_priv *c = dance_conn_priv(ssl, 0);

	return c == NULL ? NULL : &c->pub;
}

int
dance_conn_set_identity(SSL *ssl, const char *identity)
{
	struct conn_priv *c;
	char *copy = NULL;

	if (dance_tls_server_of(ssl) == NULL)
		return DANCE_ERR_CONFIG;
	if ((c = dance_conn_priv(ssl, 1)) == NULL)
		return DANCE_ERR_NOMEM;
	if (identity != NULL && (copy = strdup(identity)) == NULL)
		return DANCE_ERR_NOMEM;
	free(c->identity);
	c->identity = copy;
	return DANCE_OK;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */

/* The private part of a public pointer handed out by dance_conn_get(). */
static const struct conn_priv *
priv_of(const struct dance_conn *c)
{
	return (const struct conn_priv *)c;
}

enum dance_conn_state
dance_conn_state(const struct dance_conn *c)
{
	return c == NULL ? DANCE_CONN_NONE : c->state;
}

enum dance_status
dance_conn_status(const struct dance_conn *c)
{
	switch (dance_conn_state(c)) {
	case DANCE_CONN_SUCCESS:
		return DANCE_STATUS_SUCCESS;
	case DANCE_CONN_REJECTED:
	case DANCE_CONN_FAILED:
		return DANCE_STATUS_FAILED;
	case DANCE_CONN_PENDING:
	case DANCE_CONN_ARMED:
	case DANCE_CONN_ANSWERED:
		/* A name, no verdict yet (dance_conn_decide()). */
		return DANCE_STATUS_PENDING;
	case DANCE_CONN_NONE:
		break;
	}
	return DANCE_STATUS_NONE;
}

enum dance_reason
dance_conn_reason_code(const struct dance_conn *c)
{
	if (c == NULL)
		return DANCE_REASON_NO_EXT;
	return priv_of(c)->why;
}

const char *
dance_conn_status_text(const struct dance_conn *c)
{
	return dance_status_text(dance_conn_status(c),
		dance_conn_reason_code(c));
}

const char *
dance_conn_name(const struct dance_conn *c)
{
	return c == NULL ? "" : c->name;
}

const char *
dance_conn_reason(const struct dance_conn *c)
{
	return c == NULL ? "" : c->reason;
}

enum dance_name_source
dance_conn_source(const struct dance_conn *c)
{
	return c == NULL ? DANCE_SRC_NONE : priv_of(c)->source;
}

const char *
dance_conn_entry(const struct dance_conn *c)
{
	return c == NULL ? NULL : priv_of(c)->entry;
}

int
dance_conn_usage(const struct dance_conn *c)
{
	return c == NULL ? -1 : c->usage;
}

int
dance_conn_waiting(const struct dance_conn *c)
{
	return c != NULL && c->lookup != NULL;
}

const struct dance_answer *
dance_conn_answer(const struct dance_conn *c)
{
	return c == NULL ? NULL : c->answer;
}

const char *
dance_conn_tlsa_notes(const struct dance_conn *c)
{
	return c == NULL ? "" : priv_of(c)->notes;
}

void *
dance_conn_host_data(const struct dance_conn *c)
{
	return c == NULL ? NULL : c->host_data;
}

void
dance_conn_set_host_data(struct dance_conn *c, void *data)
{
	if (c != NULL)
		c->host_data = data;
}
