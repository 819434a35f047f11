/*
 * dance.h -- DANE client authentication (DANCE) validation core.
 *
 * This is the one public header of libdance.  Every host wrapper (nginx,
 * FreeRADIUS, hostapd, the CLI tools) uses only what is declared here.
 *
 * The pipeline a server runs for each TLS client is:
 *
 *   name source (dane_clientid extension, SAN dNSName, host identity)
 *     -> dance_name_check()          syntax: presentation format, A-labels
 *     -> dance_policy_match()        allow-list, BEFORE any DNS query
 *     -> per-entry waiting budget    (dance_tls_server_cfg max_waiting*)
 *     -> dance_resolver_lookup()     DNSSEC-validated TLSA, cached, coalesced
 *     -> dance_match() / in-handshake OpenSSL DANE
 *     -> authenticated identity (the DNS name) and the TLSA usage matched
 *
 * A TLS host runs all of it through one call, dance_conn_decide() (see
 * "Decision" below), and only does its own I/O with the outcome: one
 * status (SUCCESS, PENDING, NONE, FAILED) with one stable reason word,
 * printed the same way by every host (dance_status_text()).
 *
 * Conventions:
 *   - Functions that can fail return DANCE_OK (0) or a dance_code, and fill
 *     an optional struct dance_error with a human-readable reason.
 *   - No global state: everything lives in explicit contexts (policy,
 *     resolver, matcher, tls server).  The only process-wide items are the
 *     OpenSSL ex_data indexes, allocated once (OpenSSL's own design).
 *   - Names are stored lower-cased, without trailing dot.
 *
 * Thread safety: dance_policy_check() and dance_policy_match() only read
 * the policy (regex match data is allocated per call), so a filled policy
 * may be shared by threads; dance_policy_add() must not run concurrently
 * with checks.
 * A dance_resolver in DANCE_RESOLVER_EVENT mode must be driven from one
 * thread; in DANCE_RESOLVER_THREADED mode, all functions
 * are thread-safe and dance_resolve_wait() may be called from any thread.
 * With a threaded resolver, one dance_tls_server serves connections on
 * many threads: dance_conn_decide() for different SSLs may run at the
 * same time (the waiting budget has its own lock); one SSL is used by
 * one thread at a time, as OpenSSL requires.
 */
#ifndef DANCE_H
#define DANCE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "libdance needs OpenSSL 3.0 or later (SSL_get0_peer_certificate, DANE)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define DANCE_VERSION "0.1.0"

/*
 * The dane_clientid code point is not assigned by IANA yet.  One default
 * for the whole suite, from the private-use range 0xFF00-0xFFFF; it must
 * never be 0xFF01 (renegotiation_info, handled inside OpenSSL).
 */
#define DANCE_EXT_TYPE_DEFAULT 0xFF44

/* Longest presentation-format name without trailing dot (RFC 1035). */
#define DANCE_NAME_MAX 253

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

enum dance_code {
	DANCE_OK = 0,
	DANCE_ERR_NAME,		/* name syntax invalid */
	DANCE_ERR_NOT_ALLOWED,	/* name not in the allow-list */
	DANCE_ERR_PROTOCOL,	/* e.g. zero-length ClientName */
	DANCE_ERR_CONFIG,	/* bad configuration value */
	DANCE_ERR_NOMEM,
	DANCE_ERR_DNS,		/* lookup did not yield a secure TLSA set */
	DANCE_ERR_NOMATCH,	/* TLSA set did not match the certificate */
	DANCE_ERR_TLS,		/* OpenSSL failure */
	DANCE_ERR_OVERLOAD,	/* cap on pending lookups reached */
	DANCE_ERR_TIMEOUT,
	DANCE_ERR_INTERNAL
};

struct dance_error {
	enum dance_code code;
	char reason[256];
};

/* Static name of a code, e.g. "not allowed". */
const char *dance_code_str(enum dance_code code);

/* The last OpenSSL error of this thread as text into buf ("unknown
 * OpenSSL error" when there is none); clears the error queue.  Returns
 * buf, for hosts' messages. */
const char *dance_ssl_err_text(char *buf, size_t len);

/*
 * Client bytes (an EAP identity, a rejected ClientName ...) for a log
 * line or an attribute: printable ASCII stays, backslash and double
 * quote get a backslash, every other octet becomes \xHH.  Writes at
 * most outlen - 1 characters and a NUL, ending in "..." when in did not
 * fit (never in the middle of an escape).  Returns out.  Names that
 * passed dance_name_check() need no escaping.
 */
const char *dance_escape(const void *in, size_t len, char *out,
	size_t outlen);

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

/*
 * Check a ClientName of len octets (not NUL-terminated necessarily):
 * presentation format, no trailing dot, labels of letters, digits,
 * hyphen and underscore, 1..63 octets each, total <= 253, A-labels only
 * (no octet >= 0x80; "xn--" labels are accepted as they are).
 * Underscore labels are fine (_service.client.example,
 * device._device.org.example: the draft's owner name formats).
 * Rejected with a reason: empty name or label, trailing dot, NUL, any
 * octet >= 0x80 (a U-label: send the A-label), presentation escapes
 * ("\." or "\065": the draft limits the alphabet so none are needed),
 * other characters, and a label that starts with '-' (never a host
 * name, could not be a certificate dNSName, and looks like an option on
 * command lines; a hyphen elsewhere, also last, is accepted).  A label
 * may be exactly "*" only when allow_wildcard is set (allow-list
 * entries, never client names), and only as the leftmost label of a
 * longer name ("*.example.com").  On success and when out is not NULL,
 * writes the lower-cased name, NUL-terminated (out needs
 * DANCE_NAME_MAX + 1 bytes); nothing is written on failure.
 * Returns DANCE_OK or DANCE_ERR_NAME.
 */
int dance_name_check(const char *name, size_t len, int allow_wildcard,
	char *out, struct dance_error *err);

/* Case-insensitive comparison of two names; 1 when equal. */
int dance_name_equal(const char *a, const char *b);

/* ------------------------------------------------------------------ */
/* Allow-list policy                                                   */
/* ------------------------------------------------------------------ */

/*
 * Entries (same meaning as nginx's server_name):
 *   "dev1.example.com"   exactly that name;
 *   ".example.com"       example.com itself and every name below it;
 *   "*.example.com"      every name below example.com, at any depth,
 *                        but NOT example.com itself;
 *   "~regex"             PCRE2 regular expression, matched against the
 *                        whole lower-cased name: written anchored at
 *                        both ends and in lower case, e.g.
 *                        "~^dev[0-9]+\.example\.com$" (others are
 *                        DANCE_ERR_CONFIG: "~dev" would allow
 *                        dev.attacker.example; "~^Dev$" never matches).
 * Exact and subtree lookups are hash lookups, one per label of the
 * client name: cost does not depend on the size of the list.  Regular
 * expressions are tried in order after that.
 * Name entries must pass dance_name_check(); "*.name" is the only
 * wildcard form ("a.*.b", ".*.b", "*" are rejected).  A regex is
 * compiled once by dance_policy_add(); a bad one is DANCE_ERR_CONFIG
 * with PCRE2's message and offset.  Adding an entry twice is harmless.
 * Matching a regex is bounded (match limit 20000, depth limit 1000: a
 * client chooses its name before any authentication); a pattern that
 * hits the limit does not allow the name, and the reason says so.
 */
struct dance_policy;

struct dance_policy *dance_policy_new(void);
void dance_policy_free(struct dance_policy *p);
int dance_policy_add(struct dance_policy *p, const char *entry,
	struct dance_error *err);
/* Number of distinct entries added (a duplicate counts once). */
size_t dance_policy_count(const struct dance_policy *p);
/*
 * name: a checked, lower-cased name.  DANCE_OK when allowed, else
 * DANCE_ERR_NOT_ALLOWED with a reason.  An empty policy allows nothing.
 * The name is checked again (cheap): one that fails dance_name_check(),
 * e.g. a literal "*" label, is never allowed.
 */
int dance_policy_check(const struct dance_policy *p, const char *name,
	struct dance_error *err);
/*
 * dance_policy_check(), and on DANCE_OK *entry (if entry is not NULL)
 * points to the entry that allowed the name, e.g. for a per-entry
 * budget; on failure *entry is NULL.  The text is the entry as added,
 * normalised: names lower-cased, in their form "dev1.example.com",
 * ".example.com" or "*.example.com"; a regex as written ("~^dev[0-9]+$",
 * not lower-cased: case is meaningful in a pattern).  It stays valid,
 * unchanged, while the policy lives, and one entry always yields the
 * same pointer (equal pointers mean the same entry).
 * When several entries allow a name, the one reported is, in order:
 *   1. the exact entry "name";
 *   2. the closest subtree entry: the one for the longest suffix of the
 *      name (".name" itself, else the nearest parent); for one parent,
 *      "*.parent" before ".parent";
 *   3. the first regex, in the order added.
 * Cost as for dance_policy_check(): one hash probe per label, then the
 * regexes only if no name entry matched.
 */
int dance_policy_match(const struct dance_policy *p, const char *name,
	const char **entry, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* dane_clientid extension wire format                                 */
/* ------------------------------------------------------------------ */

/*
 * Client side: encode "opaque ClientName<1..2^8-1>" (one length octet,
 * then the name).  Returns the number of octets written, 0 if it does
 * not fit or the name is empty / longer than 255.
 */
size_t dance_ext_encode(const char *name, unsigned char *out, size_t outlen);

/*
 * Server side: parse the extension_data from a client's Certificate
 * entry.  Validates the length prefix and the name syntax.  A zero-length
 * ClientName (or empty extension_data) is DANCE_ERR_PROTOCOL, and so is a
 * length octet that differs from the number of octets after it.  A bad
 * name is DANCE_ERR_NAME (dance_name_check, no wildcard).  name (may be
 * NULL) receives the lower-cased name (DANCE_NAME_MAX + 1 bytes).
 */
int dance_ext_parse(const unsigned char *in, size_t inlen, char *name,
	struct dance_error *err);

/*
 * Can type carry dane_clientid?  The one code-point rule of the suite:
 * every host checks its configured value with this (and words its
 * message around err's reason), so a type that works in one host works
 * in all.  DANCE_OK for a 16-bit type that OpenSSL does not handle
 * itself (SSL_CTX_add_custom_ext would refuse it), e.g. 0x1234 or
 * 0xFF44; DANCE_ERR_CONFIG for > 0xFFFF, 0xFF01 (renegotiation_info)
 * and the other built-in types.  0 (server_name) is refused too: map
 * "0 is the default" before calling.  The TLS glue checks again.
 */
int dance_ext_type_check(unsigned type, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* TLSA records                                                        */
/* ------------------------------------------------------------------ */

struct dance_tlsa {
	uint8_t usage;		/* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	uint8_t selector;	/* 0 Cert, 1 SPKI */
	uint8_t mtype;		/* 0 Full, 1 SHA2-256, 2 SHA2-512 */
	size_t len;
	unsigned char *data;
};

/*
 * Parse one TLSA RDATA (RFC 6698 2.1).  tlsa->data points into rdata
 * (not copied).  Rejects (DANCE_ERR_DNS) rdata shorter than 4 octets and
 * digests whose length is wrong for mtype 1 (32) and 2 (64).  Other
 * usage, selector and mtype values are accepted: per RFC 7671 (digest
 * agility) an unknown parameter makes that record unusable, not the
 * RRset, and SSL_dane_tlsa_add() skips such records.
 */
int dance_tlsa_parse(const unsigned char *rdata, size_t len,
	struct dance_tlsa *tlsa, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* Lookup outcome                                                      */
/* ------------------------------------------------------------------ */

enum dance_dns_status {
	DANCE_DNS_SECURE = 0,	/* secure, non-empty TLSA set */
	DANCE_DNS_NODATA,	/* secure: name exists, no TLSA */
	DANCE_DNS_NXDOMAIN,	/* secure: name does not exist */
	DANCE_DNS_INSECURE,	/* answer not signed (no chain of trust) */
	DANCE_DNS_BOGUS,	/* DNSSEC validation failed (why_bogus) */
	DANCE_DNS_SERVFAIL,
	DANCE_DNS_TIMEOUT,
	DANCE_DNS_OVERLOAD,	/* pending-lookup cap reached, no query */
	DANCE_DNS_ERROR		/* local failure (resolver, memory) */
};

const char *dance_dns_status_str(enum dance_dns_status s);

/*
 * An immutable, reference-counted lookup answer, read with the
 * accessors below.  Only status DANCE_DNS_SECURE with records can
 * authenticate.  A validated TLSA RRset in which no record parses is
 * reported as DANCE_DNS_NODATA ("no usable TLSA records"); a SECURE
 * answer whose set had some malformed records says so in why.
 */
struct dance_answer;

void dance_answer_ref(struct dance_answer *a);
void dance_answer_unref(struct dance_answer *a);

/* Accessors; a must not be NULL. */
enum dance_dns_status dance_answer_status(const struct dance_answer *a);
const char *dance_answer_name(const struct dance_answer *a);
/* Reason for a non-secure outcome, "" when none. */
const char *dance_answer_why(const struct dance_answer *a);
uint32_t dance_answer_ttl(const struct dance_answer *a);
size_t dance_answer_count(const struct dance_answer *a);
/* Record i (< count), NULL when out of range. */
const struct dance_tlsa *dance_answer_record(const struct dance_answer *a,
	size_t i);
/* 1: served from the resolver cache, 0: fresh from a query. */
int dance_answer_from_cache(const struct dance_answer *a);
/* The seconds an answer may still be kept, for a host that stored it
 * (a second cache tier hands it back with the time left).  Only on an
 * answer nobody else holds yet, e.g. fresh from
 * dance_answer_deserialize(): answers are immutable once shared. */
void dance_answer_set_ttl(struct dance_answer *a, uint32_t ttl);

/*
 * A new answer with one reference; rr (n records) and their data are
 * copied, name is lower-cased, why may be NULL.  NULL when out of memory.
 * For hosts and tests that get TLSA records elsewhere.
 */
struct dance_answer *dance_answer_new(enum dance_dns_status status,
	const char *name, const struct dance_tlsa *rr, size_t n,
	uint32_t ttl, const char *why);

/*
 * Flat serialisation, for hosts that keep answers in shared memory
 * (nginx shared cache).  _size gives the buffer size needed (0 if a
 * cannot be serialised).  _serialize returns the octets written, 0 when
 * buflen is too small.  _deserialize returns a new answer (one
 * reference), or NULL for truncated, trailing or malformed input.
 */
size_t dance_answer_serialize_size(const struct dance_answer *a);
size_t dance_answer_serialize(const struct dance_answer *a,
	unsigned char *buf, size_t buflen);
struct dance_answer *dance_answer_deserialize(const unsigned char *buf,
	size_t len);

/* ------------------------------------------------------------------ */
/* Resolver                                                            */
/* ------------------------------------------------------------------ */

/*
 * Second cache tier, optional: a cache shared beyond one resolver, such
 * as nginx's shared memory zone that every worker sees.  The resolver
 * asks get() on a miss of its own cache when no query for the name is
 * in flight here, before starting one (and before the max_pending cap):
 * a hit is kept in the resolver's cache for the rest of its TTL and
 * handed out as a cache hit (from_cache 1, counted in tier_hits).
 * After a query, every answer the resolver caches (ttl > 0, not ERROR
 * or OVERLOAD) goes to put(); answers from get() and from
 * dance_resolver_cache_put() do not.
 *
 * get(arg, name): name is checked and lower-cased.  Return a new
 * reference (e.g. from dance_answer_deserialize) for exactly that name,
 * with ttl set to the seconds it may still be used, or NULL.
 * put(arg, a): a is valid during the call only; keep it ttl seconds at
 * most.  Both run with the resolver's lock held, on the caller's or the
 * driving thread: they must not call back into the resolver, and should
 * not block.  Answers in the tier must come from resolvers with the
 * same trust configuration (dance_resolver_cfg_digest()) and their
 * expiry must not follow the wall clock (a clock stepped back would
 * keep a revoked TLSA set alive).
 */
struct dance_cache_tier {
	struct dance_answer *(*get)(void *arg, const char *name);
	void (*put)(void *arg, const struct dance_answer *a);
	void *arg;
};

enum dance_resolver_mode {
	/* Host event loop: poll dance_resolver_fd(), call
	 * dance_resolver_process(); never blocks. */
	DANCE_RESOLVER_EVENT = 0,
	/* Threaded hosts: an internal thread drives libunbound (or the
	 * trust_ad transport), callers block in dance_resolve_wait() for
	 * at most the timeout. */
	DANCE_RESOLVER_THREADED
};

struct dance_resolver_cfg {
	enum dance_resolver_mode mode;
	/* Local validation: trust anchor file(s) (DS or DNSKEY, zone-file
	 * format), NULL-terminated.  Required unless trust_ad is set. */
	const char *const *trust_anchor_files;
	/*
	 * Without trust anchors: trust the AD bit of the forwarders, which
	 * must be validating resolvers.  The path to them must be trusted
	 * too (loopback, or a network you control): anyone on it can forge
	 * AD.  Queries then go straight to the forwarders (UDP with EDNS0
	 * DO, tried in order within the timeout, TCP when truncated), not
	 * through libunbound (which drops the forwarder's AD bit).
	 * forwarders are required ("addr[@port]", IPv4 or IPv6, no
	 * "#tls-auth-name"); forward_tls, tls_ca_file and unbound_conf do
	 * not apply (forward_tls and unbound_conf are DANCE_ERR_CONFIG).
	 * Outcomes: AD and TLSA data -> SECURE; AD and no data -> NODATA /
	 * NXDOMAIN; no AD -> INSECURE; a resolver answers SERVFAIL for
	 * bogus data, so bogus is reported as SERVFAIL (with the Extended
	 * DNS Error in why when the resolver sends one).  Each in-flight
	 * query holds one socket: keep max_pending below the descriptor
	 * limit.
	 * With trust anchors given, trust_ad is ignored: validation is
	 * local (local validation wins), and works through forwarders too.
	 */
	int trust_ad;
	/* Forwarders "addr[@port][#tls-auth-name]", NULL-terminated; none
	 * means full recursion (or stubs from unbound_conf); required by
	 * trust_ad without anchors.  The port defaults to 853 with
	 * forward_tls, else 53. */
	const char *const *forwarders;
	/* DNS-over-TLS to forwarders.  Needs a libunbound built with
	 * OpenSSL (Debian's uses nettle: DANCE_ERR_CONFIG, checked at
	 * creation).  Whether "#tls-auth-name" is checked depends on that
	 * build too (libunbound logs when it ignores the name). */
	int forward_tls;
	const char *tls_ca_file;	/* CA bundle for DoT */
	/* Extra libunbound configuration file (stub-zone, local-zone ...). */
	const char *unbound_conf;
	unsigned timeout_ms;	/* per lookup, default 3000 */
	unsigned max_pending;	/* distinct in-flight queries, default 1000 */
	unsigned cache_size;	/* entries, 0 disables, default 10000 */
	uint32_t min_ttl;	/* positive answers, default 0 */
	uint32_t max_ttl;	/* positive answers, default 3600; also caps
				 * libunbound's own cache */
	uint32_t neg_ttl;	/* upper bound for negative, default 60;
				 * insecure answers get exactly this */
	uint32_t fail_ttl;	/* SERVFAIL/bogus/timeout, default 5; 0 = none */
	struct dance_cache_tier tier;	/* second tier; none by default */
};

/* Fills in the defaults above. */
void dance_resolver_cfg_init(struct dance_resolver_cfg *cfg);

/*
 * SHA-256 over what decides which answers a resolver trusts: the trust
 * anchor files (names and CONTENT), trust_ad, forwarders, forward_tls,
 * tls_ca_file and unbound_conf (names and content; not files these
 * include) and the TTL caps.  A host keeping answers beyond one resolver
 * (struct dance_cache_tier) stores it with them and drops them when it
 * changes, e.g. at a reload that removes an anchor.  DANCE_ERR_CONFIG
 * when a file cannot be read.
 */
#define DANCE_DIGEST_LEN 32
int dance_resolver_cfg_digest(const struct dance_resolver_cfg *cfg,
	unsigned char out[DANCE_DIGEST_LEN], struct dance_error *err);

struct dance_resolver;
struct dance_lookup;

/* Called exactly once per lookup unless cancelled.  The answer is valid
 * during the call; take a reference to keep it. */
typedef void (*dance_lookup_cb)(void *arg, struct dance_answer *a);

/* Configuration errors (no trust anchor, bad forwarder, unreadable file,
 * anything libunbound rejects) are DANCE_ERR_CONFIG with the value. */
struct dance_resolver *dance_resolver_new(const struct dance_resolver_cfg *cfg,
	struct dance_error *err);
/* Cancels every pending lookup WITHOUT calling its callback.  Not from
 * inside a callback, and not while other threads still use r. */
void dance_resolver_free(struct dance_resolver *r);
/* The mode r was created with (the TLS glue blocks only in threaded
 * mode). */
enum dance_resolver_mode dance_resolver_get_mode(
	const struct dance_resolver *r);

/* Event mode: file descriptor to watch for reading (-1 in threaded
 * mode). */
int dance_resolver_fd(struct dance_resolver *r);
/* Event mode: deliver answers and expire timeouts; never blocks. */
void dance_resolver_process(struct dance_resolver *r);
/* Event mode: ms until the next timeout deadline, -1 if none pending. */
int dance_resolver_next_timeout(struct dance_resolver *r);

/*
 * Start a lookup for the TLSA RRset at exactly name (checked,
 * lower-cased).  A cache hit or an immediate failure (over capacity)
 * calls cb before returning and returns NULL with *done set to 1.
 * Otherwise returns a handle (identical in-flight names share one
 * query).  In threaded mode a later cb runs on the resolver thread (an
 * immediate one on the caller's).  cb may call back into the resolver
 * (lookup, cancel; not dance_resolve_wait in threaded mode).
 */
struct dance_lookup *dance_resolver_lookup(struct dance_resolver *r,
	const char *name, dance_lookup_cb cb, void *arg, int *done);
/* Cancel before the callback ran; cb will not be called.  The query
 * itself is cancelled when its last waiter leaves.  Threaded mode: a
 * cancel racing with delivery can come too late (cb already started on
 * the resolver thread); callers must serialise cancel with their cb. */
void dance_lookup_cancel(struct dance_lookup *l);

/* Cache peek without any query (the resolver's cache, then the second
 * tier): referenced answer or NULL. */
struct dance_answer *dance_resolver_cached(struct dance_resolver *r,
	const char *name);
/* Store an answer obtained elsewhere into this resolver's own cache (not
 * into the second tier: hosts with a shared cache use cfg.tier). */
void dance_resolver_cache_put(struct dance_resolver *r,
	struct dance_answer *a);

/*
 * Threaded mode: blocking lookup bounded by the configured timeout.
 * Returns a referenced answer (never NULL; status says what happened).
 * In event mode it drives the resolver itself until the answer is in
 * (other lookups' callbacks may run meanwhile), for simple tools.
 */
struct dance_answer *dance_resolve_wait(struct dance_resolver *r,
	const char *name);

/* Duration buckets of the lookup histogram (dance_metrics_bucket_ms()). */
#define DANCE_LOOKUP_BUCKETS 14

struct dance_resolver_stats {
	unsigned long lookups;		/* dance_resolver_lookup/wait calls */
	unsigned long cache_hits;	/* the resolver's own cache */
	unsigned long tier_hits;	/* the second tier (cfg.tier) */
	unsigned long queries;		/* distinct queries started
					 * (libunbound or trust_ad) */
	unsigned long coalesced;	/* joined an in-flight query */
	unsigned long timeouts;
	unsigned long overload;
	unsigned pending;		/* in-flight queries now */
	/* For the metrics (dance_metrics_resolver_sync()): queries by
	 * outcome (index: enum dance_dns_status) and by duration (index
	 * i: at most the i-th bound of dance_metrics_bucket_ms(), the
	 * last one longer), the cache, the timeout. */
	unsigned long outcomes[DANCE_DNS_ERROR + 1];
	unsigned long duration[DANCE_LOOKUP_BUCKETS + 1];
	unsigned long duration_ms;	/* sum over the queries */
	unsigned long cache_entries;	/* now */
	unsigned long cache_evictions;
	unsigned timeout_ms;
};
void dance_resolver_stats(struct dance_resolver *r,
	struct dance_resolver_stats *st);

/* ------------------------------------------------------------------ */
/* Matching through OpenSSL's DANE implementation                      */
/* ------------------------------------------------------------------ */

struct dance_match_result {
	int ok;			/* 1 authenticated */
	int usage;		/* usage of the TLSA record that matched, -1 */
	int depth;		/* chain depth of the match, -1 */
	char reason[256];	/* why not, when !ok */
	/* TLSA records OpenSSL could not use, with their reasons, e.g.
	 * "3 1 9: dane tlsa bad matching type"; "" when none.  RFC 7671
	 * skips them; hosts log them. */
	char skipped[256];
};

/*
 * A matcher owns a DANE-enabled SSL_CTX used for scratch SSL objects,
 * and an X509_STORE for PKIX usages 0/1 (may be empty: then PKIX-TA/EE
 * never match).  ca_file may be NULL.
 */
struct dance_matcher;
struct dance_matcher *dance_matcher_new(const char *ca_file,
	struct dance_error *err);
void dance_matcher_free(struct dance_matcher *m);

/*
 * Post-handshake: does leaf (with chain, which may include or exclude
 * the leaf) authenticate as name under the secure answer a?
 * DANE-EE ignores names and dates; DANE-TA and PKIX need name as a SAN
 * dNSName.  Returns DANCE_OK or DANCE_ERR_NOMATCH / DANCE_ERR_DNS.
 */
int dance_match(struct dance_matcher *m, const struct dance_answer *a,
	X509 *leaf, STACK_OF(X509) *chain, struct dance_match_result *res);

/*
 * In-handshake: arm OpenSSL's DANE verifier on a live server SSL (call
 * before chain verification, i.e. from the Certificate extension parse
 * callback).  The SSL_CTX must have had SSL_CTX_dane_enable().
 */
int dance_ssl_arm(SSL *ssl, const struct dance_answer *a,
	struct dance_error *err);

/* First SAN dNSName of cert allowed by policy (legacy clients), or the
 * first SAN dNSName if policy is NULL.  DANCE_OK and out filled.  Only
 * the first DANCE_SAN_MAX dNSNames are examined: the client chooses
 * them, before any authentication, and each costs an allow-list check
 * (a certificate may carry thousands). */
#define DANCE_SAN_MAX 32
int dance_cert_san_name(X509 *cert, const struct dance_policy *policy,
	char *out, struct dance_error *err);

/* ------------------------------------------------------------------ */
/* Decision outcome: status, reason, name source                       */
/* ------------------------------------------------------------------ */

/*
 * The outcome of the DANCE decision for one client, the same in every
 * host.  Hosts print it with dance_status_text() ($dance_status in
 * nginx, DANCE-Status in dance-server; FreeRADIUS maps it onto its
 * DANCE-Status values).
 */
enum dance_status {
	DANCE_STATUS_NONE = 0,	/* not a DANCE client: no usable name from
				 * any configured source (reason says why) */
	DANCE_STATUS_PENDING,	/* lookup in flight (event mode): decide
				 * again after the on_answer hook */
	DANCE_STATUS_SUCCESS,	/* authenticated: name and usage are set */
	DANCE_STATUS_FAILED	/* a DANCE client, not authenticated */
};

/*
 * Why: one stable word per reason (dance_reason_str()), for logs,
 * variables and tests.  The free-text detail is dance_conn_reason().
 */
enum dance_reason {
	DANCE_REASON_OK = 0,		/* "ok": SUCCESS, PENDING */
	DANCE_REASON_NO_EXT,		/* "no-ext": no dane_clientid */
	DANCE_REASON_NO_CERT,		/* "no-cert": no client certificate */
	DANCE_REASON_NO_NAME,		/* "no-name": no source gave a name */
	DANCE_REASON_BAD_NAME,		/* "bad-name": name syntax */
	DANCE_REASON_PROTOCOL,		/* "protocol": e.g. empty ClientName */
	DANCE_REASON_NOT_ALLOWED,	/* "not-allowed": allow-list */
	DANCE_REASON_NXDOMAIN,		/* "nxdomain" */
	DANCE_REASON_NODATA,		/* "nodata": also no usable TLSA */
	DANCE_REASON_INSECURE,		/* "insecure": not DNSSEC-signed */
	DANCE_REASON_BOGUS,		/* "bogus": validation failed */
	DANCE_REASON_SERVFAIL,		/* "servfail" */
	DANCE_REASON_TIMEOUT,		/* "timeout" */
	DANCE_REASON_OVERLOAD,		/* "overload": a waiting cap */
	DANCE_REASON_DNS_ERROR,		/* "dns-error": local resolver failure */
	DANCE_REASON_NOMATCH,		/* "nomatch": TLSA did not match */
	DANCE_REASON_INTERNAL		/* "internal": memory, OpenSSL, misuse */
};
#define DANCE_REASON_MAX DANCE_REASON_INTERNAL

/* The reason word, e.g. "nxdomain" ("unknown" outside the enum). */
const char *dance_reason_str(enum dance_reason r);

/*
 * The one text of a status: "SUCCESS", "PENDING", "NONE" or
 * "FAILED:<reason word>" (e.g. "FAILED:nxdomain").  Static storage.
 * NONE carries no reason in its text (its reason is for logs).
 */
const char *dance_status_text(enum dance_status st, enum dance_reason r);

/* Where a client's name came from. */
enum dance_name_source {
	DANCE_SRC_NONE = 0,
	DANCE_SRC_EXTENSION,	/* dane_clientid (TLS 1.3) */
	DANCE_SRC_SAN,		/* first SAN dNSName the allow-list admits */
	DANCE_SRC_IDENTITY	/* host identity: EAP identity, User-Name */
};
#define DANCE_SRC_MAX 3

/* "extension", "san", "identity" ("none" for DANCE_SRC_NONE). */
const char *dance_name_source_str(enum dance_name_source src);

/* An ordered list of name sources. */
struct dance_name_sources {
	unsigned n;
	enum dance_name_source src[DANCE_SRC_MAX];
};

/*
 * Parse a host's configuration string: "extension" (or "ext"), "san",
 * "identity", case-insensitive, separated by commas and/or blanks, each
 * at most once, at least one
 * (e.g. "extension,san,identity" or "extension san").  The order is the
 * order the legacy sources (san, identity) are tried; a client that
 * sent dane_clientid always uses it when "extension" is listed (it
 * asked for DANCE).  DANCE_ERR_CONFIG with the offending word.
 */
int dance_name_sources_parse(const char *spec, struct dance_name_sources *out,
	struct dance_error *err);

/* ------------------------------------------------------------------ */
/* TLS server and client glue                                          */
/* ------------------------------------------------------------------ */

/* Per-connection DANCE state, kept in the SSL's ex_data. */
enum dance_conn_state {
	DANCE_CONN_NONE = 0,	/* no name (yet): no dane_clientid */
	DANCE_CONN_REJECTED,	/* name bad / not allowed */
	DANCE_CONN_ARMED,	/* cache hit: OpenSSL verified in handshake */
	DANCE_CONN_PENDING,	/* name accepted, lookup not done */
	DANCE_CONN_ANSWERED,	/* lookup done, the match decides */
	DANCE_CONN_SUCCESS,	/* authenticated */
	DANCE_CONN_FAILED	/* not authenticated, reason set */
};

/* Per-connection DANCE state, kept in the SSL's ex_data; read with
 * the accessors (dance_conn_state() ...). */
struct dance_conn;

/* Host hook: lookup for this connection finished (state ANSWERED).
 * Called only when the answer arrives after the call that started the
 * lookup returned (from dance_resolver_process()); an answer available
 * at once is visible when that call returns. */
typedef void (*dance_conn_cb)(SSL *ssl, struct dance_conn *c, void *arg);

struct dance_tls_server_cfg {
	unsigned ext_type;		/* DANCE_EXT_TYPE_DEFAULT (also if 0) */
	const struct dance_policy *policy;	/* required */
	struct dance_resolver *resolver;	/* event or threaded */
	struct dance_matcher *matcher;		/* post-handshake matching;
						 * NULL: internal, no CA store */
	/*
	 * Where client names come from (dance_name_sources_parse()).
	 * n == 0: the extension only.  Without "extension" the server
	 * does not ask for dane_clientid at all.  "san" and "identity"
	 * are legacy sources for clients that did not send the
	 * extension (TLS 1.2 EAP-TLS, old clients): dance_conn_decide()
	 * takes the first SAN dNSName the allow-list admits, or the
	 * identity given with dance_conn_set_identity().
	 */
	struct dance_name_sources sources;
	/* 1: a failed DANE match aborts the handshake (handshake_failure);
	 * 0: the connection continues unauthenticated, reason recorded. */
	int required;
	/* Start the lookup from the handshake on a cache miss (event
	 * mode).  0: dance_conn_decide() starts it.
	 * In threaded mode the parse callback instead blocks in
	 * dance_resolve_wait() (bounded by the timeout) and arms the
	 * in-handshake verifier, so the verdict is in the handshake. */
	int lookup_in_handshake;
	/* 1: never end the handshake from the extension callback for a
	 * bad or disallowed name (state REJECTED is only recorded); the
	 * host refuses after dance_conn_decide() says FAILED, e.g. from
	 * its verify callback, where it has its own context to log with
	 * (FreeRADIUS).  0: handshake_failure at once (on_refuse). */
	int defer_refuse;
	/*
	 * Caps on clients waiting for DNS (a lookup that is not a cache
	 * hit), 0 = no cap.  max_waiting: all clients of this server;
	 * max_waiting_per_entry: clients whose name one allow-list entry
	 * admitted (dance_policy_match()), so the names of one entry
	 * whose DNS servers do not answer hold at most that many waiters
	 * (threads in threaded mode, parked connections in event mode),
	 * and every other entry keeps its own.  Over a cap: FAILED,
	 * reason overload, no query.
	 */
	unsigned max_waiting;
	unsigned max_waiting_per_entry;
	dance_conn_cb on_answer;
	void *on_answer_arg;	/* passed to on_answer and on_refuse */
	/* Optional: the glue itself ends the handshake with
	 * handshake_failure (bad or disallowed name, failed in-handshake
	 * match, failed lookup when required, no dane_clientid under
	 * refuse_no_ext).  dance_conn_name() and dance_conn_reason() say
	 * why; the host logs it (OpenSSL's own error says only "bad
	 * extension" or "certificate verify failed"). */
	dance_conn_cb on_refuse;
	/* 1: DANCE is required and the extension is the only name
	 * source: the draft's MUSTs are kept in the handshake.  A TLS 1.3
	 * client that sends a certificate without dane_clientid fails with
	 * handshake_failure (state REJECTED, reason no-ext, on_refuse
	 * called); no version below TLS 1.3 is negotiated (the SSL_CTX's
	 * minimum version, and a TLS 1.2 client that still gets there
	 * through SNI fails with handshake_failure, reason protocol); a
	 * client that sends no certificate fails (OpenSSL's alert:
	 * handshake_failure in TLS 1.2, certificate_required in TLS 1.3).
	 * dance_conn_decide() gives the same refusal (FAILED, reason
	 * no-ext or protocol) to hosts judging in a verify path of their
	 * own.  Set it when DANCE is required and no legacy name source
	 * (san/identity) is configured.  0: such clients stay in state
	 * NONE, for the host to judge. */
	int refuse_no_ext;
};

struct dance_tls_server;

/* Create the server glue; the cfg pointers must outlive it, and it
 * must outlive the SSL_CTXs and SSLs it is attached to.  Checks the
 * extension type (dance_ext_type_check()) and the name sources. */
struct dance_tls_server *dance_tls_server_new(
	const struct dance_tls_server_cfg *cfg, struct dance_error *err);
void dance_tls_server_free(struct dance_tls_server *s);

/*
 * Attach to an SSL_CTX: registers the dane_clientid extension (when
 * "extension" is a name source; empty in CertificateRequest, parsed on
 * the leaf Certificate entry), enables DANE on the ctx, requests a
 * client certificate and installs dance_tls_verify_cb (unless
 * keep_verify_cb, for hosts that call dance_tls_verify_step() from
 * their own callback).  May be called for many SSL_CTXs (e.g. one per
 * nginx server block).  Also turns off session tickets and the session
 * cache: a resumed session carries no client Certificate, so no
 * dane_clientid.  In-handshake (ARMED) PKIX-TA/PKIX-EE records chain
 * to the SSL_CTX's verify store, the post-handshake match to the
 * matcher's CA store: give both the same CAs when PKIX usages matter.
 * The extension exists in TLS 1.3 only; TLS 1.2 clients stay in state
 * NONE (refusing them is host policy); TLS 1.3 clients without it too,
 * unless cfg refuse_no_ext.
 */
int dance_tls_server_attach(struct dance_tls_server *s, SSL_CTX *ctx,
	int keep_verify_cb, struct dance_error *err);

/* The verify callback installed by dance_tls_server_attach(). */
int dance_tls_verify_cb(int ok, X509_STORE_CTX *xs);
/* For hosts with their own verify callback: returns DANCE's opinion of
 * ok (call it first, use its result). */
int dance_tls_verify_step(int ok, X509_STORE_CTX *xs);

/* ------------------------------------------------------------------ */
/* Decision                                                            */
/* ------------------------------------------------------------------ */

/*
 * The legacy "identity" name source for this connection: the EAP
 * identity, the RADIUS User-Name, ...  Copied; NULL clears it.  Call
 * before dance_conn_decide().  The identity is only a candidate: it
 * must pass dance_name_check() and the allow-list like any name.
 * Returns DANCE_OK, DANCE_ERR_NOMEM, or DANCE_ERR_CONFIG when the
 * SSL's SSL_CTX has no DANCE server attached.
 */
int dance_conn_set_identity(SSL *ssl, const char *identity);

/*
 * The decision for a server connection, in one call:
 *   - a client that sent dane_clientid (source "extension"): its name,
 *     judged in the handshake already (allow-list, cache, arming);
 *   - otherwise the legacy sources in their configured order: the
 *     first SAN dNSName of the leaf the allow-list admits ("san"), the
 *     identity ("identity", dance_conn_set_identity()) if it passes
 *     the name check and the allow-list;
 *   - then the per-entry waiting budget, the lookup (cache, else event
 *     mode: started, returns PENDING, on_answer fires later; threaded
 *     mode: bounded blocking wait), and the match.
 * xs: NULL after the handshake (leaf and chain from the SSL); inside a
 * verify or cert_verify callback, the X509_STORE_CTX being verified
 * (its leaf and untrusted chain are matched; the peer certificate is
 * not set on the SSL yet there).
 * Returns SUCCESS (dance_conn_name(), dance_conn_usage()), PENDING
 * (call again after on_answer), NONE (no name from any source: not a
 * DANCE client; reason no-ext, no-cert, no-name or not-allowed when
 * every legacy name was outside the allow-list) or FAILED (a DANCE
 * client that is not authenticated, with reason).  Idempotent: once
 * SUCCESS, NONE or FAILED, later calls return the same.  The state
 * and reason are read with dance_conn_get() and the accessors.
 * Not thread-safe for one SSL (OpenSSL's own rule).
 */
enum dance_status dance_conn_decide(SSL *ssl, X509_STORE_CTX *xs);

/* Connection state, or NULL when the SSL never saw DANCE. */
struct dance_conn *dance_conn_get(SSL *ssl);

/* Accessors; c may be NULL (then: NONE, "", -1 ...). */
enum dance_conn_state dance_conn_state(const struct dance_conn *c);
/* Status and reason as dance_conn_decide() last left them (no work
 * done: PENDING is only returned while a lookup is in flight). */
enum dance_status dance_conn_status(const struct dance_conn *c);
enum dance_reason dance_conn_reason_code(const struct dance_conn *c);
/* dance_status_text() of the above. */
const char *dance_conn_status_text(const struct dance_conn *c);
/* The client name (checked, lower-cased), "" when none. */
const char *dance_conn_name(const struct dance_conn *c);
/* Free-text detail of the reason, "" when none. */
const char *dance_conn_reason(const struct dance_conn *c);
/* Where the name came from (DANCE_SRC_NONE: no name). */
enum dance_name_source dance_conn_source(const struct dance_conn *c);
/* The allow-list entry that admitted the name (dance_policy_match()),
 * NULL when none. */
const char *dance_conn_entry(const struct dance_conn *c);
/* TLSA usage that matched, -1. */
int dance_conn_usage(const struct dance_conn *c);
/* 1 while a lookup for this connection is in flight. */
int dance_conn_waiting(const struct dance_conn *c);
/* The lookup answer kept by the connection (borrowed), or NULL. */
const struct dance_answer *dance_conn_answer(const struct dance_conn *c);
/* TLSA records of the answer that OpenSSL could not use, each with
 * its reason (e.g. "3 1 9: dane tlsa bad matching type"); "" when
 * all were usable.  For hosts' logs (RFC 7671 skips them silently). */
const char *dance_conn_tlsa_notes(const struct dance_conn *c);
void *dance_conn_host_data(const struct dance_conn *c);
void dance_conn_set_host_data(struct dance_conn *c, void *data);

/*
 * Older interface: no host uses it any more (the core's own tests still
 * do, for the extension path); new code calls dance_conn_decide().  dance_conn_resolve(): start (or join) the
 * lookup for a PENDING connection.  dance_conn_verdict(): the verdict
 * after the handshake for a dane_clientid client as a dance_code
 * (DANCE_ERR_PROTOCOL for NONE, DANCE_ERR_DNS "lookup pending" while
 * pending); legacy sources are not tried.
 */
int dance_conn_resolve(SSL *ssl, struct dance_error *err);
int dance_conn_verdict(SSL *ssl, struct dance_conn **out);

/*
 * Client side: send name in dane_clientid when (and only when) the server
 * asks for it.  name must pass dance_name_check().  ext_type 0 is
 * DANCE_EXT_TYPE_DEFAULT.  Once per SSL_CTX (again: DANCE_ERR_CONFIG),
 * before SSL_new(): OpenSSL copies the extension into each SSL it
 * creates.  name may be NULL: the extension is registered and the names
 * come per connection from dance_tls_client_set_name(), for hosts with
 * one SSL_CTX and a name per connection (wpa_supplicant networks).
 */
int dance_tls_client_attach(SSL_CTX *ctx, unsigned ext_type,
	const char *name, struct dance_error *err);

/*
 * Client side, per connection: the ClientName this SSL sends, instead of
 * the name given to dance_tls_client_attach() for its SSL_CTX (if any).
 * Call before the handshake.  name must pass dance_name_check()
 * (DANCE_ERR_NAME; the previous setting is kept); it is copied.  NULL
 * removes this SSL's own name (the SSL_CTX's applies again).  The SSL's
 * SSL_CTX must have had dance_tls_client_attach(), else
 * DANCE_ERR_CONFIG.  A connection with neither name sends no
 * dane_clientid, even when the server asks for it.
 */
int dance_tls_client_set_name(SSL *ssl, const char *name,
	struct dance_error *err);

/* ------------------------------------------------------------------ */
/* Metrics                                                             */
/* ------------------------------------------------------------------ */

/*
 * One set of counters for every host, defined once here and exported
 * the way each host's operators expect (Prometheus text from nginx's
 * dance_status and dance-server --metrics, an xlat in FreeRADIUS,
 * DANCE_STATUS on hostapd's control interface).  Client names are never
 * metrics (unbounded, personal data): they go to the log line
 * (dance_conn_log_line()).
 *
 * A struct dance_metrics is flat, fixed-size memory without pointers,
 * so a host may place it in shared memory (nginx: one per server in
 * the shared zone, every worker adding to it).  Updates are relaxed
 * atomic adds: cheap enough to leave on, safe across threads and
 * processes.  Counters only grow; gauges (in flight, parked, cache
 * entries, resolver up) go both ways.
 *
 * Fed by:
 *   - the decision (dance_tls_server_set_metrics()): verdicts by
 *     result, successes by usage, failures by reason, allow-list
 *     refusals, cache requests (hit, negative hit, miss), clients
 *     parked waiting for DNS, refusals at the waiting caps;
 *   - the resolver's own counters (struct dance_resolver_stats), added
 *     by dance_metrics_resolver_sync(): queries by outcome, lookups in
 *     flight, coalesced requests, refusals at max_pending, cache
 *     entries and evictions, the lookup-duration histogram.
 */
struct dance_metrics;

/* Bytes a struct dance_metrics needs, for hosts placing it. */
size_t dance_metrics_size(void);
/* Zeroed metrics in mem (len >= dance_metrics_size(), aligned for
 * uint64_t), or NULL when it does not fit.  Nothing to free. */
struct dance_metrics *dance_metrics_init(void *mem, size_t len);
/* Or allocated: NULL when out of memory. */
struct dance_metrics *dance_metrics_new(void);
void dance_metrics_free(struct dance_metrics *m);

/* Count the decisions of s's connections into m (NULL: none); m must
 * outlive s.  Set before the first handshake. */
void dance_tls_server_set_metrics(struct dance_tls_server *s,
	struct dance_metrics *m);

/* For the outcome word only (metrics, log line): the host refuses every
 * FAILED client even though cfg.required is 0, because it judges in its
 * own path (hostapd's EAP method).  Default 0. */
void dance_tls_server_set_refuse_failed(struct dance_tls_server *s, int on);

/*
 * Add what r counted since *last into m and keep the new figures in
 * *last (start from a zeroed one; one per resolver and m).  r NULL:
 * the resolver is gone (a worker exits): its gauges are taken back.
 * Hosts call it before exporting (and nginx workers every second, as
 * each has its own resolver).  Not for the same *last on two threads.
 */
void dance_metrics_resolver_sync(struct dance_metrics *m,
	struct dance_resolver *r, struct dance_resolver_stats *last);

/* dst += src, every counter and gauge (e.g. per-server sets summed). */
void dance_metrics_add(struct dance_metrics *dst,
	const struct dance_metrics *src);

/* Upper bound in ms of duration bucket i (< DANCE_LOOKUP_BUCKETS). */
unsigned dance_metrics_bucket_ms(unsigned i);

/*
 * One exported value.  Every exporter walks the same list, in the same
 * order: for (i = 0; dance_metrics_sample(m, i, &s); i++).
 */
struct dance_metric_sample {
	const char *family;	/* "dance_verdicts_total" */
	const char *name;	/* the sample's name: family, or the
				 * histogram's "..._bucket", "_sum", "_count" */
	const char *help;
	const char *type;	/* "counter", "gauge", "histogram" */
	const char *label;	/* "result", "usage", "reason", "outcome",
				 * "cap", "le", or NULL */
	const char *label_value;
	double value;
	int first;		/* first sample of its family */
	int per_server;		/* a decision figure (one per server);
				 * 0: the process's resolver */
};
/* Sample i into *s; 0 past the last one. */
int dance_metrics_sample(const struct dance_metrics *m, size_t i,
	struct dance_metric_sample *s);

/*
 * The Prometheus text exposition format (version 0.0.4) of n metric
 * sets into buf: "# HELP" and "# TYPE" once per family, the decision
 * figures of set i with label server="<server[i]>" when server is not
 * NULL (several servers), the resolver figures summed over the sets.
 * Returns the length the whole text needs (without NUL), like
 * snprintf: a result >= len means buf was too small (it is always
 * NUL-terminated when len > 0).
 */
size_t dance_metrics_format_prometheus(const struct dance_metrics *const *m,
	const char *const *server, size_t n, char *buf, size_t len);

/* A short "key=value ..." summary of m on one line (FreeRADIUS's
 * radius.log, hostapd's DANCE_STATUS): the same figures, same names
 * without "dance_" and "_total".  Returns as snprintf. */
size_t dance_metrics_format_line(const struct dance_metrics *m, char *buf,
	size_t len);

/* One value by sample name and label value (label_value NULL: the
 * family's only or summed samples), e.g. ("dance_verdicts_total",
 * "success"); 0 when unknown.  For hosts' per-counter lookups. */
double dance_metrics_get(const struct dance_metrics *m, const char *name,
	const char *label_value);

/* The outcome word of a connection: "success", "refused" (FAILED, and
 * the glue ended the handshake, or cfg required, defer_refuse or
 * dance_tls_server_set_refuse_failed(): the host refuses it),
 * "unauthenticated" (FAILED, optional), "none", or "pending".  c may
 * be NULL ("none"). */
const char *dance_conn_outcome(const struct dance_conn *c);

/*
 * The log line of one decision, the same fields in the same order in
 * every host, space-separated key=value:
 *   dance: client=<addr> name=<name> outcome=<outcome> usage=<0-3>
 *          lookup_ms=<ms> cached=<yes|no|->
 * with "reason=<word>" instead of "usage=" when not authenticated;
 * name escaped (dance_escape()), "-" when there is none; cached "-"
 * when no lookup was made (refused before DNS).  client may be NULL
 * ("-").  Returns buf.
 */
const char *dance_conn_log_line(const struct dance_conn *c,
	const char *client, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* DANCE_H */
