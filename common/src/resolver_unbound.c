/*
 * resolver_unbound.c -- the libunbound backend: local DNSSEC validation
 * with trust anchors, through full recursion or forwarders.
 *
 * Cancellation: after ub_cancel() libunbound does not call the callback,
 * unless another thread is already inside ub_process() between fetching
 * the answer and calling it.  So cancel is only ever called on the
 * driving thread (cancel_any_thread is 0), the same thread that runs
 * ub_process(); resolver.c parks queries abandoned elsewhere until then.
 * ub_resolve_async() is called with the resolver's lock held;
 * libunbound calls no callback from there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "dance_int.h"
#include "resolver_backend.h"

#define RR_TYPE_TLSA	52
#define RR_CLASS_IN	1
#define RCODE_NOERROR	0
#define RCODE_SERVFAIL	2
#define RCODE_NXDOMAIN	3

/* Map a libunbound result to an outcome.  Order matters: a bogus result
 * usually also carries SERVFAIL, and bogus is the more useful reason. */
static struct dance_answer *
classify(struct dance_query *q, int err, struct ub_result *res)
{
	size_t n;

	if (err != 0 || res == NULL)
		return dance_query_answer(q, DANCE_DNS_ERROR, -1,
			"libunbound: %s", ub_strerror(err));
	if (res->bogus)
		return dance_query_answer(q, DANCE_DNS_BOGUS, -1,
			"DNSSEC validation failed: %s", res->why_bogus != NULL
			? res->why_bogus : "no reason given");
	if (res->rcode == RCODE_SERVFAIL)
		return dance_query_answer(q, DANCE_DNS_SERVFAIL, -1,
			"SERVFAIL (no server gave a usable answer)");
	if (res->rcode != RCODE_NOERROR && res->rcode != RCODE_NXDOMAIN)
		return dance_query_answer(q, DANCE_DNS_SERVFAIL, -1,
			"DNS error, rcode %d", res->rcode);
	if (!res->secure)
		return dance_query_answer(q, DANCE_DNS_INSECURE, -1,
			"answer is not DNSSEC-signed (no chain of trust)%s",
			res->nxdomain ? ", name does not exist" :
			!res->havedata ? ", no TLSA" : "");
	if (res->nxdomain)
		return dance_query_answer(q, DANCE_DNS_NXDOMAIN, res->ttl,
			"name does not exist (secure)");
	if (!res->havedata || res->data == NULL || res->data[0] == NULL)
		return dance_query_answer(q, DANCE_DNS_NODATA, res->ttl,
			"no TLSA records (secure)");
	n = 0;
	while (res->data[n] != NULL)
		n++;
	return dance_query_answer_rrset(q, res->data, res->len, n, res->ttl);
}

/* From ub_process(), on the driving thread, without the lock. */
static void
ub_cb(void *mydata, int err, struct ub_result *res)
{
	struct dance_query *q = mydata;
	struct dance_answer *a;

	a = classify(q, err, res);
	if (res != NULL)
		ub_resolve_free(res);
	dance_resolver_lock(dance_query_resolver(q));
	dance_query_done(q, a);
}

static int
readable(const char *what, const char *file, struct dance_error *err)
{
	FILE *f = fopen(file, "r");

	if (f == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"%s \"%s\": %s", what, file, strerror(errno));
	(void)fclose(f);
	return DANCE_OK;
}

static int
ub_fail(struct dance_error *err, const char *what, const char *val, int ret)
{
	return dance_err_set(err, DANCE_ERR_CONFIG, "%s \"%s\": %s", what,
		val, ub_strerror(ret));
}

/*
 * Forwarder "addr[@port][#tls-auth-name]".  libunbound wants the port
 * whenever an auth name follows, so the default port is made explicit
 * (853 for DNS-over-TLS, else 53).
 */
static int
add_forwarder(struct ub_ctx *ub, const char *fwd, int tls,
	struct dance_error *err)
{
	char buf[512];
	const char *at, *hash, *p;
	unsigned long port;
	int ret;

	if (fwd[0] == '\0' || strlen(fwd) >= sizeof(buf) - 8)
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"bad forwarder \"%s\": empty or too long", fwd);
	hash = strchr(fwd, '#');
	at = strchr(fwd, '@');
	if (hash != NULL && hash[1] == '\0')
		return dance_err_set(err, DANCE_ERR_CONFIG,
			"bad forwarder \"%s\": empty TLS auth name", fwd);
	if (at != NULL && (hash == NULL || at < hash)) {
		port = 0;
		for (p = at + 1; *p != '\0' && *p != '#'; p++) {
			if (*p < '0' || *p > '9' || port > 65535)
				break;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (p == at + 1 || (*p != '\0' && *p != '#') || port == 0
			|| port > 65535)
			return dance_err_set(err, DANCE_ERR_CONFIG,
				"bad forwarder \"%s\": bad port", fwd);
		(void)snprintf(buf, sizeof(buf), "%s", fwd);
	} else if (hash != NULL) {
		(void)snprintf(buf, sizeof(buf), "%.*s@%d%s",
			(int)(hash - fwd), fwd, tls ? 853 : 53, hash);
	} else {
		(void)snprintf(buf, sizeof(buf), "%s", fwd);
	}
	if ((ret = ub_ctx_set_fwd(ub, buf)) != 0)
		return ub_fail(err, "bad forwarder", fwd, ret);
	return DANCE_OK;
}

/*
 * Bring a libunbound option to at most (raise == 0) or at least
 * (raise == 1) val, leaving a value from unbound_conf that is already
 * on the right side of it alone.
 */
static int
clamp_option(struct ub_ctx *ub, const char *opt, uint32_t val, int raise,
	struct dance_error *err)
{
	char name[64], buf[16], *cur = NULL;
	int ret;

	(void)snprintf(name, sizeof(name), "%s", opt);
	name[strlen(name) - 1] = '\0';	/* get_option wants no colon */
	if (ub_ctx_get_option(ub, name, &cur) == 0 && cur != NULL) {
		unsigned long c = strtoul(cur, NULL, 10);

		free(cur);
		if (raise ? c >= val : c < val)
			return DANCE_OK;
	}
	(void)snprintf(buf, sizeof(buf), "%u", (unsigned)val);
	if ((ret = ub_ctx_set_option(ub, opt, buf)) != 0)
		return ub_fail(err, "libunbound option", opt, ret);
	return DANCE_OK;
}

/*
 * Our cache bounds also bound libunbound's, so a max_ttl expiry really
 * re-fetches.  Its query capacity must match max_pending: libunbound's
 * default of 16 outgoing sockets lets a few lookups hanging on a dead
 * server queue every other name behind them (the slowloris case).
 * Sockets are opened per query, so the higher limit costs nothing idle.
 */
static int
ub_limits(struct ub_ctx *ub, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	uint32_t cap = cfg->max_pending + 64;

	if (clamp_option(ub, "cache-max-ttl:", cfg->max_ttl, 0, err) != 0
		|| clamp_option(ub, "cache-max-negative-ttl:", cfg->neg_ttl, 0,
		err) != 0
		|| clamp_option(ub, "outgoing-range:", cap, 1, err) != 0
		|| clamp_option(ub, "num-queries-per-thread:", cap, 1, err) != 0)
		return DANCE_ERR_CONFIG;
	return DANCE_OK;
}

/*
 * libunbound sets up its TLS context only when a worker starts, and a
 * libunbound built without OpenSSL (Debian's uses nettle) cannot do
 * DNS-over-TLS at all: every lookup would fail.  A synchronous lookup of
 * a local-only name starts a worker without any network traffic.
 */
static int
tls_probe(struct ub_ctx *ub, struct dance_error *err)
{
	static const char probe[] = "dance-tls-probe.invalid.";
	struct ub_result *res = NULL;
	int ret;

	if ((ret = ub_ctx_zone_add(ub, probe, "static")) != 0)
		return ub_fail(err, "local zone", probe, ret);
	ret = ub_resolve(ub, probe, 1, RR_CLASS_IN, &res);
	if (res != NULL)
		ub_resolve_free(res);
	if (ret != 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "forward_tls: "
			"libunbound cannot set up DNS-over-TLS (%s): it is "
			"built without OpenSSL (as Debian's is), or "
			"tls_ca_file is unusable", ub_strerror(ret));
	return DANCE_OK;
}

static int
ub_setup(struct ub_ctx *ub, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	const char *const *p;
	int ret;

	/* Answers come back through a pipe from libunbound's thread. */
	if ((ret = ub_ctx_async(ub, 1)) != 0)
		return ub_fail(err, "ub_ctx_async", "1", ret);
	if (cfg->unbound_conf != NULL) {
		if (readable("unbound_conf", cfg->unbound_conf, err) != 0)
			return DANCE_ERR_CONFIG;
		if ((ret = ub_ctx_config(ub, cfg->unbound_conf)) != 0)
			return ub_fail(err, "unbound_conf", cfg->unbound_conf,
				ret);
	}
	for (p = cfg->trust_anchor_files; p != NULL && *p != NULL; p++) {
		if (readable("trust anchor file", *p, err) != 0)
			return DANCE_ERR_CONFIG;
		if ((ret = ub_ctx_add_ta_file(ub, *p)) != 0)
			return ub_fail(err, "trust anchor file", *p, ret);
	}
	for (p = cfg->forwarders; p != NULL && *p != NULL; p++) {
		if (add_forwarder(ub, *p, cfg->forward_tls, err) != 0)
			return DANCE_ERR_CONFIG;
	}
	if (cfg->forward_tls) {
		if ((ret = ub_ctx_set_tls(ub, 1)) != 0)
			return ub_fail(err, "forward_tls", "1", ret);
		if (cfg->tls_ca_file != NULL) {
			if (readable("tls_ca_file", cfg->tls_ca_file, err) != 0)
				return DANCE_ERR_CONFIG;
			if ((ret = ub_ctx_set_option(ub, "tls-cert-bundle:",
				cfg->tls_ca_file)) != 0)
				return ub_fail(err, "tls_ca_file",
					cfg->tls_ca_file, ret);
		}
	}
	if (ub_limits(ub, cfg, err) != DANCE_OK)
		return DANCE_ERR_CONFIG;
	/* libunbound reads trust anchors and the rest only when it is
	 * finalised; removing a zone that does not exist forces that now,
	 * so a bad file fails here rather than at the first lookup. */
	if ((ret = ub_ctx_zone_remove(ub, "dance-finalize.invalid.")) != 0)
		return dance_err_set(err, DANCE_ERR_CONFIG, "libunbound "
			"rejected the configuration (trust anchor file \"%s\"%s, "
			"unbound_conf \"%s\"; details on stderr): %s",
			cfg->trust_anchor_files[0],
			cfg->trust_anchor_files[1] != NULL ? " ..." : "",
			cfg->unbound_conf != NULL ? cfg->unbound_conf : "",
			ub_strerror(ret));
	if (cfg->forward_tls)
		return tls_probe(ub, err);
	return DANCE_OK;
}

/* ------------------------------------------------------------------ */
/* The operations                                                      */
/* ------------------------------------------------------------------ */

static int
ubb_selects(const struct dance_resolver_cfg *cfg)
{
	/* Local validation wins: trust_ad is ignored with anchors. */
	return cfg->trust_anchor_files != NULL
		&& cfg->trust_anchor_files[0] != NULL;
}

static void
ubb_free(void *be)
{
	/* No callback runs after this, so resolver.c may free the
	 * queries (the callback arguments). */
	if (be != NULL)
		ub_ctx_delete(be);
}

static void *
ubb_create(struct dance_resolver *r, const struct dance_resolver_cfg *cfg,
	struct dance_error *err)
{
	struct ub_ctx *ub;

	(void)r;
	if ((ub = ub_ctx_create()) == NULL) {
		dance_err_set(err, DANCE_ERR_NOMEM, "ub_ctx_create failed");
		return NULL;
	}
	if (ub_setup(ub, cfg, err) != DANCE_OK) {
		ub_ctx_delete(ub);
		return NULL;
	}
	return ub;
}

static int
ubb_fd(void *be)
{
	return ub_fd(be);
}

static int
ubb_submit(void *be, struct dance_query *q, struct dance_answer **now)
{
	const char *name = dance_query_name(q);
	int ret;

	ret = ub_resolve_async(be, name, RR_TYPE_TLSA, RR_CLASS_IN, q, ub_cb,
		&dance_query_slot(q)->id);
	if (ret != 0) {
		*now = dance_query_answer(q, DANCE_DNS_ERROR, -1,
			"ub_resolve_async(%s): %s", name, ub_strerror(ret));
		return -1;
	}
	return 0;
}

static void
ubb_cancel(void *be, struct dance_query *q)
{
	(void)ub_cancel(be, dance_query_slot(q)->id);
}

static void
ubb_process(void *be)
{
	/* Reads the answers that are ready and calls ub_cb for each.  A
	 * pipe error leaves the queries to their deadline. */
	(void)ub_process(be);
}

const struct dance_backend_ops dance_backend_unbound = {
	.name = "libunbound",
	.selects = ubb_selects,
	.create = ubb_create,
	.free = ubb_free,
	.fd = ubb_fd,
	.submit = ubb_submit,
	.cancel = ubb_cancel,
	.cancel_any_thread = 0,
	.drop = NULL,
	.process = ubb_process,
};
