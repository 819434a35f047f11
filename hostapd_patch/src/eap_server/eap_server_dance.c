/*
 * hostapd / EAP server: DANE client authentication (DANCE) for EAP-TLS
 * Copyright (c) 2026, DANCE project contributors
 *
 * This software may be distributed under the terms of the BSD license.
 * See README for more details.
 *
 * Glue between the EAP-TLS server method and libdance: configuration,
 * the allow-list, and a libunbound resolver driven by eloop (its fd is a
 * registered read socket, its deadlines an eloop timeout), so a TLSA
 * lookup never blocks the event loop.  While a lookup is in flight the
 * EAP method is pending (METHOD_PENDING_WAIT, as with the EAP-SIM
 * database); the completion callback lets hostapd replay the message.
 */

#include "includes.h"

#include "common.h"
#include "eloop.h"
#include "crypto/tls.h"
#include "dance.h"
#include "eap_i.h"
#include "eap_server_dance.h"


struct eap_dance {
	/* copies: a config reload (SIGHUP) frees hostapd's configuration */
	int require;
	struct dance_policy *policy;
	struct dance_resolver *resolver;
	struct dance_matcher *matcher;
	struct dance_tls_server *srv;
	struct dance_tls_server_cfg srv_cfg;
	int fd;
	void (*complete_cb)(void *ctx, void *session_ctx);
	void *ctx;
	/* the core's metric set (DANCE_STATUS) and the resolver's figures
	 * already added to it */
	struct dance_metrics *metrics;
	struct dance_resolver_stats mlast;
};

struct eap_dance_session {
	struct eap_dance *d;
	void *session_ctx;
	enum { SESS_START, SESS_WAIT, SESS_DONE } state;
	enum eap_dance_result result;
};


/* hostapd's names of the core's name sources, as dance_name_source */
static const char * eap_dance_source_txt(enum dance_name_source src)
{
	switch (src) {
	case DANCE_SRC_EXTENSION:
		return "ext";
	case DANCE_SRC_SAN:
		return "san";
	case DANCE_SRC_IDENTITY:
		return "identity";
	case DANCE_SRC_NONE:
		break;
	}
	return "?";
}


/* Configuration */

static int eap_dance_strv_add(char ***list, const char *val)
{
	size_t n = 0;
	char **l = *list;
	char *dup;

	while (l && l[n])
		n++;
	dup = os_strdup(val);
	if (!dup)
		return -1;
	l = os_realloc_array(l, n + 2, sizeof(char *));
	if (!l) {
		os_free(dup);
		return -1;
	}
	l[n] = dup;
	l[n + 1] = NULL;
	*list = l;
	return 0;
}


static int eap_dance_str_set(char **dst, const char *val)
{
	os_free(*dst);
	*dst = os_strdup(val);
	return *dst ? 0 : -1;
}


static void eap_dance_strv_free(char **list)
{
	size_t i;

	for (i = 0; list && list[i]; i++)
		os_free(list[i]);
	os_free(list);
}


static struct eap_dance_config * eap_dance_config_alloc(void)
{
	struct eap_dance_config *conf;

	conf = os_zalloc(sizeof(*conf));
	if (!conf)
		return NULL;
	conf->require = 1;
	conf->timeout_ms = 3000;
	conf->cache_size = -1;
	conf->ext_type = DANCE_EXT_TYPE_DEFAULT;
	return conf;
}


static int eap_dance_uint(const char *value, unsigned int min,
			  unsigned int max, unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 0);
	if (errno || end == value || *end || value[0] == '-' ||
	    v < min || v > max)
		return -1;
	*out = v;
	return 0;
}


int eap_dance_config_set(struct eap_dance_config **confp, const char *name,
			 const char *value, int line)
{
	struct eap_dance_config *conf = *confp;
	unsigned int v;
	int ret = 0;

	if (!conf) {
		conf = eap_dance_config_alloc();
		if (!conf)
			return -1;
		*confp = conf;
	}

	if (os_strcmp(name, "dance") == 0) {
		ret = eap_dance_uint(value, 0, 1, &v);
		conf->enabled = v;
	} else if (os_strcmp(name, "dance_require") == 0) {
		ret = eap_dance_uint(value, 0, 1, &v);
		conf->require = v;
	} else if (os_strcmp(name, "dance_allow") == 0) {
		ret = eap_dance_strv_add(&conf->allow, value);
	} else if (os_strcmp(name, "dance_allow_file") == 0) {
		ret = eap_dance_str_set(&conf->allow_file, value);
	} else if (os_strcmp(name, "dance_name_source") == 0) {
		struct dance_name_sources src;
		struct dance_error err;

		/* the core's parser, again in eap_dance_init() */
		if (dance_name_sources_parse(value, &src, &err) != DANCE_OK) {
			wpa_printf(MSG_ERROR, "Line %d: dance_name_source: %s",
				   line, err.reason);
			return -1;
		}
		ret = eap_dance_str_set(&conf->name_sources, value);
	} else if (os_strcmp(name, "dance_trust_anchor_file") == 0) {
		ret = eap_dance_strv_add(&conf->trust_anchor, value);
	} else if (os_strcmp(name, "dance_trust_ad") == 0) {
		ret = eap_dance_uint(value, 0, 1, &v);
		conf->trust_ad = v;
	} else if (os_strcmp(name, "dance_forwarder") == 0) {
		ret = eap_dance_strv_add(&conf->forwarder, value);
	} else if (os_strcmp(name, "dance_forward_tls") == 0) {
		ret = eap_dance_uint(value, 0, 1, &v);
		conf->forward_tls = v;
	} else if (os_strcmp(name, "dance_tls_ca_file") == 0) {
		ret = eap_dance_str_set(&conf->tls_ca_file, value);
	} else if (os_strcmp(name, "dance_unbound_conf") == 0) {
		ret = eap_dance_str_set(&conf->unbound_conf, value);
	} else if (os_strcmp(name, "dance_ca_file") == 0) {
		ret = eap_dance_str_set(&conf->ca_file, value);
	} else if (os_strcmp(name, "dance_timeout") == 0) {
		ret = eap_dance_uint(value, 1, 600000, &conf->timeout_ms);
	} else if (os_strcmp(name, "dance_max_pending") == 0) {
		ret = eap_dance_uint(value, 1, 1000000, &conf->max_pending);
	} else if (os_strcmp(name, "dance_cache_size") == 0) {
		ret = eap_dance_uint(value, 0, 10000000, &v);
		conf->cache_size = v;
	} else if (os_strcmp(name, "dance_ext_type") == 0) {
		struct dance_error err;

		/* the core's rule, as in every host: any type OpenSSL does
		 * not handle itself */
		ret = eap_dance_uint(value, 0, 0xffffffffU, &conf->ext_type);
		if (!ret &&
		    dance_ext_type_check(conf->ext_type, &err) != DANCE_OK) {
			wpa_printf(MSG_ERROR, "Line %d: dance_ext_type '%s': %s",
				   line, value, err.reason);
			return -1;
		}
	} else {
		wpa_printf(MSG_ERROR, "Line %d: unknown DANCE option '%s'",
			   line, name);
		return -1;
	}
	if (ret)
		wpa_printf(MSG_ERROR, "Line %d: invalid %s '%s'",
			   line, name, value);
	return ret;
}


int eap_dance_config_check(const struct eap_dance_config *conf)
{
	if (!conf || !conf->enabled)
		return 0;
	if (!conf->allow && !conf->allow_file) {
		wpa_printf(MSG_ERROR,
			   "dance=1 needs dance_allow or dance_allow_file (an empty allow-list admits nobody)");
		return -1;
	}
	if (!conf->trust_anchor && !conf->trust_ad) {
		wpa_printf(MSG_ERROR,
			   "dance=1 needs dance_trust_anchor_file or dance_trust_ad=1");
		return -1;
	}
	return 0;
}


void eap_dance_config_free(struct eap_dance_config *conf)
{
	if (!conf)
		return;
	eap_dance_strv_free(conf->allow);
	os_free(conf->allow_file);
	os_free(conf->name_sources);
	eap_dance_strv_free(conf->trust_anchor);
	eap_dance_strv_free(conf->forwarder);
	os_free(conf->tls_ca_file);
	os_free(conf->unbound_conf);
	os_free(conf->ca_file);
	os_free(conf);
}


/* Event loop */

static void eap_dance_timeout(void *eloop_ctx, void *user_ctx);

/* Keep one eloop timeout at the resolver's next deadline. */
static void eap_dance_schedule(struct eap_dance *d)
{
	int ms;

	eloop_cancel_timeout(eap_dance_timeout, d, NULL);
	ms = dance_resolver_next_timeout(d->resolver);
	if (ms >= 0)
		eloop_register_timeout(ms / 1000, (ms % 1000) * 1000,
				       eap_dance_timeout, d, NULL);
}


static void eap_dance_run(struct eap_dance *d)
{
	dance_resolver_process(d->resolver);
	eap_dance_schedule(d);
}


static void eap_dance_receive(int sock, void *eloop_ctx, void *sock_ctx)
{
	eap_dance_run(eloop_ctx);
}


static void eap_dance_timeout(void *eloop_ctx, void *user_ctx)
{
	eap_dance_run(eloop_ctx);
}


/* The dane_clientid lookup of a connection finished. */
static void eap_dance_conn_answer(SSL *ssl, struct dance_conn *c, void *arg)
{
	struct eap_dance *d = arg;
	struct eap_dance_session *sess = dance_conn_host_data(c);

	if (sess && sess->state == SESS_WAIT)
		d->complete_cb(d->ctx, sess->session_ctx);
}


/*
 * Did fgets() stop inside a line?  Then the rest of that line is read
 * and dropped; a line of exactly len - 1 octets is not too long.
 */
static int eap_dance_line_too_long(FILE *f, const char *buf, size_t len)
{
	int c;

	if (os_strlen(buf) < len - 1 || buf[len - 2] == '\n')
		return 0;
	c = fgetc(f);
	if (c == EOF || c == '\n')
		return 0;
	while (c != EOF && c != '\n')
		c = fgetc(f);
	return 1;
}


static int eap_dance_load_allow_file(struct eap_dance *d, const char *fname)
{
	FILE *f;
	char buf[512], *pos, *end;
	int line = 0, ret = 0;
	struct dance_error err;

	f = fopen(fname, "r");
	if (!f) {
		wpa_printf(MSG_ERROR,
			   "DANCE: cannot open dance_allow_file '%s'", fname);
		return -1;
	}
	while (fgets(buf, sizeof(buf), f)) {
		line++;
		if (eap_dance_line_too_long(f, buf, sizeof(buf))) {
			/* never parse the tail as an entry of its own */
			wpa_printf(MSG_ERROR,
				   "DANCE: %s:%d: line longer than %d octets",
				   fname, line, (int) sizeof(buf) - 1);
			ret = -1;
			continue;
		}
		pos = buf;
		while (*pos == ' ' || *pos == '\t')
			pos++;
		end = pos + os_strlen(pos);
		while (end > pos && (end[-1] == '\n' || end[-1] == '\r' ||
				     end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*pos == '\0' || *pos == '#')
			continue;
		if (dance_policy_add(d->policy, pos, &err) != DANCE_OK) {
			wpa_printf(MSG_ERROR, "DANCE: %s:%d: %s",
				   fname, line, err.reason);
			ret = -1;
		}
	}
	fclose(f);
	return ret;
}


static int eap_dance_policy_init(struct eap_dance *d,
				 const struct eap_dance_config *conf)
{
	struct dance_error err;
	size_t i;

	d->policy = dance_policy_new();
	if (!d->policy)
		return -1;
	for (i = 0; conf->allow && conf->allow[i]; i++) {
		if (dance_policy_add(d->policy, conf->allow[i], &err) !=
		    DANCE_OK) {
			wpa_printf(MSG_ERROR, "DANCE: dance_allow '%s': %s",
				   conf->allow[i], err.reason);
			return -1;
		}
	}
	if (conf->allow_file &&
	    eap_dance_load_allow_file(d, conf->allow_file) < 0)
		return -1;
	if (dance_policy_count(d->policy) == 0)
		wpa_printf(MSG_WARNING,
			   "DANCE: empty allow-list - no client can authenticate");
	return 0;
}


static int eap_dance_resolver_init(struct eap_dance *d,
				   const struct eap_dance_config *conf)
{
	struct dance_resolver_cfg cfg;
	struct dance_error err;

	dance_resolver_cfg_init(&cfg);
	cfg.mode = DANCE_RESOLVER_EVENT;
	cfg.trust_anchor_files = (const char *const *) conf->trust_anchor;
	cfg.trust_ad = conf->trust_ad;
	cfg.forwarders = (const char *const *) conf->forwarder;
	cfg.forward_tls = conf->forward_tls;
	cfg.tls_ca_file = conf->tls_ca_file;
	cfg.unbound_conf = conf->unbound_conf;
	cfg.timeout_ms = conf->timeout_ms;
	if (conf->max_pending)
		cfg.max_pending = conf->max_pending;
	if (conf->cache_size >= 0)
		cfg.cache_size = conf->cache_size;

	d->resolver = dance_resolver_new(&cfg, &err);
	if (!d->resolver) {
		wpa_printf(MSG_ERROR, "DANCE: resolver: %s", err.reason);
		return -1;
	}
	d->fd = dance_resolver_fd(d->resolver);
	if (d->fd < 0 ||
	    eloop_register_read_sock(d->fd, eap_dance_receive, d, NULL)) {
		wpa_printf(MSG_ERROR, "DANCE: cannot watch the resolver fd");
		d->fd = -1;
		return -1;
	}
	return 0;
}


/* No legacy name source (san, identity): n == 0 means the extension */
static int eap_dance_extension_only(const struct dance_name_sources *src)
{
	unsigned int i;

	for (i = 0; i < src->n; i++) {
		if (src->src[i] != DANCE_SRC_EXTENSION)
			return 0;
	}
	return 1;
}


void * eap_dance_init(const struct eap_dance_config *conf,
		      const char *ca_cert, void *tls_ctx,
		      void (*complete_cb)(void *ctx, void *session_ctx),
		      void *ctx)
{
	struct eap_dance *d;
	struct dance_error err;

	d = os_zalloc(sizeof(*d));
	if (!d)
		return NULL;
	d->require = conf->require;
	d->fd = -1;
	d->complete_cb = complete_cb;
	d->ctx = ctx;

	if (eap_dance_policy_init(d, conf) < 0 ||
	    eap_dance_resolver_init(d, conf) < 0)
		goto fail;

	/* PKIX-TA/EE: the same CAs as OpenSSL's in-handshake DANE check */
	d->matcher = dance_matcher_new(conf->ca_file ? conf->ca_file : ca_cert,
				       &err);
	if (!d->matcher) {
		wpa_printf(MSG_ERROR, "DANCE: matcher: %s", err.reason);
		goto fail;
	}

	d->srv_cfg.ext_type = conf->ext_type;
	d->srv_cfg.policy = d->policy;
	d->srv_cfg.resolver = d->resolver;
	d->srv_cfg.matcher = d->matcher;
	if (conf->name_sources &&
	    dance_name_sources_parse(conf->name_sources, &d->srv_cfg.sources,
				     &err) != DANCE_OK) {
		wpa_printf(MSG_ERROR, "DANCE: dance_name_source: %s",
			   err.reason);
		goto fail;
	}
	/* The EAP method decides and logs; the handshake completes ... */
	d->srv_cfg.required = 0;
	/* ... except for the draft's MUSTs when DANCE is required and only
	 * dane_clientid can name the client: no TLS below 1.3, no client
	 * without a certificate or without the extension. */
	d->srv_cfg.refuse_no_ext = conf->require &&
		eap_dance_extension_only(&d->srv_cfg.sources);
	/* Query only after the handshake proved possession of the key. */
	d->srv_cfg.lookup_in_handshake = 0;
	d->srv_cfg.on_answer = eap_dance_conn_answer;
	d->srv_cfg.on_answer_arg = d;
	d->srv = dance_tls_server_new(&d->srv_cfg, &err);
	if (!d->srv) {
		wpa_printf(MSG_ERROR, "DANCE: TLS server glue: %s", err.reason);
		goto fail;
	}
	d->metrics = dance_metrics_new();
	if (!d->metrics)
		goto fail;
	dance_tls_server_set_metrics(d->srv, d->metrics);
	/* a DANCE client that fails is rejected (eap_dance_fail()) */
	dance_tls_server_set_refuse_failed(d->srv, 1);
	if (tls_global_set_dance(tls_ctx, d->srv) < 0)
		goto fail;

	wpa_printf(MSG_DEBUG,
		   "DANCE: enabled for EAP-TLS (%zu allow-list entries, extension 0x%04x, timeout %u ms)",
		   dance_policy_count(d->policy), conf->ext_type,
		   conf->timeout_ms);
	return d;

fail:
	eap_dance_deinit(d);
	return NULL;
}


void eap_dance_deinit(void *priv)
{
	struct eap_dance *d = priv;

	if (!d)
		return;
	eloop_cancel_timeout(eap_dance_timeout, d, NULL);
	if (d->fd >= 0)
		eloop_unregister_read_sock(d->fd);
	dance_tls_server_free(d->srv);
	dance_metrics_free(d->metrics);
	dance_matcher_free(d->matcher);
	dance_resolver_free(d->resolver);
	dance_policy_free(d->policy);
	os_free(d);
}


/* Sessions */

struct eap_dance_session * eap_dance_session_new(void *priv,
						 void *session_ctx)
{
	struct eap_dance_session *sess;

	if (!priv)
		return NULL;
	sess = os_zalloc(sizeof(*sess));
	if (!sess)
		return NULL;
	sess->d = priv;
	sess->session_ctx = session_ctx;
	sess->state = SESS_START;
	return sess;
}


void eap_dance_session_free(struct eap_dance_session *sess)
{
	if (!sess)
		return;
	os_free(sess);
}


static enum eap_dance_result eap_dance_done(struct eap_dance_session *sess,
					    enum eap_dance_result result)
{
	sess->state = SESS_DONE;
	sess->result = result;
	return result;
}


/* One log line per decision: the name, where it came from, the outcome */
static enum eap_dance_result eap_dance_fail(struct eap_dance_session *sess,
					    const struct dance_conn *c,
					    const char *why)
{
	const char *name = dance_conn_name(c);

	if (name[0])
		wpa_printf(MSG_INFO, "DANCE: client '%s' (%s) rejected: %s (%s)",
			   name, eap_dance_source_txt(dance_conn_source(c)),
			   dance_reason_str(dance_conn_reason_code(c)), why);
	else
		wpa_printf(MSG_INFO,
			   "DANCE: client without a name rejected: %s", why);
	return eap_dance_done(sess, EAP_DANCE_FAILURE);
}


/* The core's line of a decision (the same fields in every host); the
 * client is the station's (or RADIUS peer's) MAC address. */
static void eap_dance_log_decision(struct eap_dance_session *sess,
				   const struct dance_conn *c)
{
	const struct eap_sm *sm = sess->session_ctx;
	char addr[20], line[600];

	os_snprintf(addr, sizeof(addr), MACSTR, MAC2STR(sm->peer_addr));
	wpa_printf(MSG_INFO, "DANCE: %s",
		   dance_conn_log_line(c, addr, line, sizeof(line)));
}


/*
 * The decision is the core's (dance_conn_decide(): name sources,
 * allow-list before any query, lookup, match); hostapd only maps it onto
 * the EAP method and the dance_require=0 PKIX fallback.
 */
static enum eap_dance_result eap_dance_decide(struct eap_dance_session *sess,
					      void *tls_ctx,
					      struct tls_connection *conn,
					      const char *identity)
{
	struct dance_conn *c = NULL;
	const char *tlsa;
	enum dance_status st;

	st = tls_connection_dance_decide(tls_ctx, conn, identity, &c);
	if (st != DANCE_STATUS_PENDING)
		eap_dance_log_decision(sess, c);
	switch (st) {
	case DANCE_STATUS_PENDING:
		dance_conn_set_host_data(c, sess);
		if (sess->state != SESS_WAIT)
			wpa_printf(MSG_DEBUG,
				   "DANCE: TLSA lookup for '%s' pending",
				   dance_conn_name(c));
		sess->state = SESS_WAIT;
		return EAP_DANCE_PENDING;
	case DANCE_STATUS_SUCCESS:
		wpa_printf(MSG_INFO,
			   "DANCE: client '%s' (%s) authenticated by TLSA usage %d",
			   dance_conn_name(c),
			   eap_dance_source_txt(dance_conn_source(c)),
			   dance_conn_usage(c));
		return eap_dance_done(sess, EAP_DANCE_SUCCESS);
	case DANCE_STATUS_FAILED:
		tlsa = dance_conn_tlsa_notes(c);
		if (tlsa[0])
			wpa_printf(MSG_INFO, "DANCE: unusable TLSA records: %s",
				   tlsa);
		return eap_dance_fail(sess, c, dance_conn_reason(c));
	case DANCE_STATUS_NONE:
		break;
	}

	/* no DNS name from any configured source: not a DANCE client */
	if (!sess->d->require && tls_connection_dance_pkix_ok(tls_ctx, conn)) {
		wpa_printf(MSG_DEBUG,
			   "DANCE: no client name - PKIX-validated certificate accepted (dance_require=0)");
		return eap_dance_done(sess, EAP_DANCE_SUCCESS);
	}
	return eap_dance_fail(sess, NULL, sess->d->require ?
			      "no DNS name from the configured name sources" :
			      "no DNS name and the certificate chain is not trusted");
}


void eap_dance_handshake_failed(struct eap_dance_session *sess,
				void *tls_ctx, struct tls_connection *conn)
{
	struct dance_conn *c = tls_connection_dance_conn(tls_ctx, conn);

	if (sess->state != SESS_START ||
	    dance_conn_state(c) != DANCE_CONN_REJECTED)
		return;
	eap_dance_log_decision(sess, c);
	eap_dance_fail(sess, c, dance_conn_reason(c));
}


enum eap_dance_result eap_dance_check(struct eap_dance_session *sess,
				      void *tls_ctx,
				      struct tls_connection *conn,
				      const u8 *identity, size_t identity_len)
{
	char id[DANCE_NAME_MAX + 1];
	const char *cand = NULL;
	enum eap_dance_result res;

	switch (sess->state) {
	case SESS_START:
		/*
		 * The EAP identity is only a candidate name (the core checks
		 * it like any other); one with a NUL or longer than any DNS
		 * name cannot be one.
		 */
		if (identity && identity_len && identity_len < sizeof(id) &&
		    !memchr(identity, '\0', identity_len)) {
			os_memcpy(id, identity, identity_len);
			id[identity_len] = '\0';
			cand = id;
		}
		/* fall through */
	case SESS_WAIT:
		res = eap_dance_decide(sess, tls_ctx, conn, cand);
		eap_dance_schedule(sess->d);
		return res;
	case SESS_DONE:
		break;
	}
	return sess->result;
}


/*
 * DANCE_STATUS (hostapd_cli dance_status): the core's metric set as
 * key=value lines, as STATUS does (the same names as in nginx's
 * dance_status and FreeRADIUS's %{dance:stats}, without "dance_").
 */
int eap_dance_status(void *priv, char *buf, size_t buflen)
{
	struct eap_dance *d = priv;
	size_t len;
	char *pos;
	int ret;

	if (!d) {
		ret = os_snprintf(buf, buflen, "dance=disabled\n");
		return os_snprintf_error(buflen, ret) ? -1 : ret;
	}
	dance_metrics_resolver_sync(d->metrics, d->resolver, &d->mlast);
	len = dance_metrics_format_line(d->metrics, buf, buflen);
	if (len + 2 > buflen)
		return -1;
	for (pos = buf; *pos; pos++) {
		if (*pos == ' ')
			*pos = '\n';
	}
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}
