/*
 * hostapd / EAP server: DANE client authentication (DANCE) for EAP-TLS
 * Copyright (c) 2026, DANCE project contributors
 *
 * This software may be distributed under the terms of the BSD license.
 * See README for more details.
 */

#ifndef EAP_SERVER_DANCE_H
#define EAP_SERVER_DANCE_H

struct tls_connection;

/**
 * struct eap_dance_config - DANCE settings of a BSS (dance_* keys)
 */
struct eap_dance_config {
	int enabled;
	int require;		/* 1: every EAP-TLS client needs DANE */
	char **allow;		/* allow-list entries, NULL-terminated */
	char *allow_file;
	/* where client names come from, in order ("ext,san,identity");
	 * NULL: dane_clientid only */
	char *name_sources;
	char **trust_anchor;	/* trust anchor files, NULL-terminated */
	int trust_ad;
	char **forwarder;	/* NULL-terminated */
	int forward_tls;
	char *tls_ca_file;
	char *unbound_conf;
	char *ca_file;		/* CAs for PKIX-TA/EE (usages 0, 1) */
	unsigned int timeout_ms;
	unsigned int max_pending;
	int cache_size;		/* -1: library default */
	unsigned int ext_type;
};

/**
 * eap_dance_config_set - Parse one dance* configuration line
 * @conf: Pointer to the configuration pointer (allocated on first use)
 * Returns: 0 on success, -1 on invalid value
 */
int eap_dance_config_set(struct eap_dance_config **conf, const char *name,
			 const char *value, int line);
int eap_dance_config_check(const struct eap_dance_config *conf);
void eap_dance_config_free(struct eap_dance_config *conf);

/**
 * eap_dance_init - Set up allow-list, resolver and matcher for a BSS
 * @conf: DANCE configuration (only read during the call)
 * @ca_cert: server ca_cert, the PKIX store when dance_ca_file is not set
 * @tls_ctx: server TLS context from tls_init(); gets the extension
 * @complete_cb: called with session_ctx when a pending lookup finished
 * Returns: context for eap_config::dance_priv or %NULL on failure
 */
void * eap_dance_init(const struct eap_dance_config *conf,
		      const char *ca_cert, void *tls_ctx,
		      void (*complete_cb)(void *ctx, void *session_ctx),
		      void *ctx);
void eap_dance_deinit(void *priv);

enum eap_dance_result {
	EAP_DANCE_SUCCESS,	/* authenticated (or PKIX where allowed) */
	EAP_DANCE_PENDING,	/* TLSA lookup in flight */
	EAP_DANCE_FAILURE,	/* not authenticated, logged */
};

struct eap_dance_session;

struct eap_dance_session * eap_dance_session_new(void *priv,
						 void *session_ctx);
void eap_dance_session_free(struct eap_dance_session *sess);

/**
 * eap_dance_check - DANCE decision for an established EAP-TLS connection
 * @sess: Per-session state from eap_dance_session_new()
 * @tls_ctx: TLS context, @conn: the established server connection
 * @identity: EAP identity (may be %NULL)
 * Returns: result; call again with the same arguments after
 * EAP_DANCE_PENDING once the completion callback ran
 */
enum eap_dance_result eap_dance_check(struct eap_dance_session *sess,
				      void *tls_ctx,
				      struct tls_connection *conn,
				      const u8 *identity, size_t identity_len);

/* Log why DANCE refused a dane_clientid that made the handshake fail */
void eap_dance_handshake_failed(struct eap_dance_session *sess,
				void *tls_ctx, struct tls_connection *conn);

/**
 * eap_dance_status - DANCE metrics for DANCE_STATUS, key=value lines
 * @priv: Context from eap_dance_init() or %NULL (DANCE off)
 * Returns: length written to @buf, -1 when it does not fit
 */
int eap_dance_status(void *priv, char *buf, size_t buflen);

#endif /* EAP_SERVER_DANCE_H */
