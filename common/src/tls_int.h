/*
 * tls_int.h -- internals shared by the TLS glue: the server half
 * (tls_server.c), the connection state and decision (conn.c,
 * decide.c) and the client half (tls_client.c).
 * Not installed; hosts use dance.h only.
 */
#ifndef DANCE_TLS_INT_H
#define DANCE_TLS_INT_H

#include <pthread.h>

#include "dance_int.h"
#include "metrics_int.h"

/* The connection state behind the accessors of dance.h (the "pub" part
 * of struct conn_priv). */
struct dance_conn {
	enum dance_conn_state state;
	char name[DANCE_NAME_MAX + 1];
	char reason[256];
	int usage;		/* matched usage, -1 */
	struct dance_answer *answer;	/* when answered */
	struct dance_lookup *lookup;	/* when pending */
	struct dance_tls_server *srv;
	void *host_data;	/* free for the host */
};

/* dane_clientid is defined for CR and CT of TLS 1.3 only. */
#define DANCE_EXT_CONTEXT (SSL_EXT_TLS1_3_CERTIFICATE_REQUEST | \
	SSL_EXT_TLS1_3_CERTIFICATE | SSL_EXT_TLS_IMPLEMENTATION_ONLY | \
	SSL_EXT_TLS1_3_ONLY)

/* Clients of one allow-list entry waiting for DNS. */
struct budget_slot {
	const char *entry;	/* dance_policy_match()'s pointer */
	unsigned waiting;	/* 0: slot free */
};

struct dance_tls_server {
	struct dance_tls_server_cfg cfg;
	struct dance_matcher *own_matcher;	/* when cfg.matcher is NULL */
	int threaded;				/* resolver in threaded mode */
	int use_ext;				/* "extension" is a source */
	/* Waiting budget (cfg max_waiting*); threads of a threaded host
	 * share it, hence the lock. */
	pthread_mutex_t budget_mu;
	unsigned waiting;
	struct budget_slot *slots;
	size_t nslots;
	struct dance_metrics *metrics;		/* NULL: not counted */
	int refuse_failed;			/* host refuses FAILED */
};

/* Per-connection state; the public part comes first so that
 * dance_conn_get() can hand out &pub. */
struct conn_priv {
	struct dance_conn pub;
	SSL *ssl;
	enum dance_code code;		/* verdict code for REJECTED/FAILED */
	enum dance_reason why;		/* reason word of the state */
	enum dance_name_source source;
	const char *entry;		/* allow-list entry of the name */
	int holds_budget;		/* counted in srv's waiting budget */
	int starting;			/* inside dance_resolver_lookup() */
	int sources_tried;		/* legacy sources judged (NONE) */
	char *identity;			/* dance_conn_set_identity() */
	char notes[256];		/* unusable TLSA records */
	struct dance_conn_mx mx;	/* metrics, log line */
};

/* OpenSSL ex_data indexes, the only process-wide state. */
struct dance_tls_idx {
	int srv;	/* SSL_CTX -> struct dance_tls_server */
	int client;	/* SSL_CTX -> client side (tls_client.c) */
	int conn;	/* SSL -> struct conn_priv */
	int cli_name;	/* SSL -> client's own name (tls_client.c) */
};
extern struct dance_tls_idx dance_tls_idx;

/* Allocate the indexes once; DANCE_ERR_TLS when OpenSSL cannot. */
int dance_tls_idx_ready(struct dance_error *err);

/* conn.c */
struct conn_priv *dance_conn_priv(SSL *ssl, int create);
void dance_conn_set(struct conn_priv *c, enum dance_conn_state st,
	enum dance_code code, enum dance_reason why, const char *reason);
/* Keep answer a (the caller's reference is transferred). */
void dance_conn_keep_answer(struct conn_priv *c, struct dance_answer *a);
/* The server an SSL's current SSL_CTX was attached to, or NULL. */
struct dance_tls_server *dance_tls_server_of(SSL *ssl);
/* No dane_clientid where refuse_no_ext forbids that: REJECTED, reason
 * no-ext (TLS 1.3) or protocol (an older version). */
void dance_conn_reject_no_ext(struct conn_priv *c, SSL *ssl);

/* decide.c */
/* The name passed the allow-list in the handshake: cache, then DNS
 * (parse callback).  Returns the callback's result. */
int dance_decide_in_handshake(struct dance_tls_server *srv,
	struct conn_priv *c, int *al);
/* The glue ends the handshake itself: tell the host.  Returns 0. */
int dance_conn_refuse(struct dance_tls_server *srv, struct conn_priv *c,
	int *al);
/* Give back c's place in the waiting budget, if it holds one. */
int dance_budget_enter(struct dance_tls_server *srv, struct conn_priv *c,
	char *why, size_t whylen);
void dance_budget_leave(struct dance_tls_server *srv, struct conn_priv *c);
/* The reason word for a dance_code / a lookup outcome. */
enum dance_reason dance_reason_of_code(enum dance_code code);
enum dance_reason dance_reason_of_dns(enum dance_dns_status st);

#endif /* DANCE_TLS_INT_H */
