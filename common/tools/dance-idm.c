/*
 * dance-idm -- identity manager: rolls DANCE client keys and certificates
 * without a moment in which the certificate in use has no TLSA record
 * (RFC 7671 section 8).
 *
 *   dance-idm [-d STATEDIR] status [NAME] [--json]
 *   dance-idm [-d STATEDIR] run [NAME] [--dry-run] [--force] [--wait|--step]
 *   dance-idm [-d STATEDIR] roll NAME       start a key rollover
 *   dance-idm [-d STATEDIR] deploy NAME [--force]   deploy it now
 *   dance-idm [-d STATEDIR] renew NAME      new certificate, same key
 *   dance-idm [-d STATEDIR] rollback NAME   withdraw a never-deployed key
 *   dance-idm [-d STATEDIR] revoke NAME     remove the identity's TLSA
 *
 * An identity is configured in STATEDIR/NAME.conf; its state lives in
 * STATEDIR/NAME.state (rewritten atomically: temp file, fsync, rename),
 * its keys and certificates in STATEDIR/NAME.keys/, and every command
 * holds STATEDIR/NAME.lock (flock) so two runs cannot race.
 *
 * A rollover walks these states; each is written only after its action
 * is done, so a run killed at any point repeats at most the last action,
 * and every action is idempotent (updates carry the expected RRset as a
 * prerequisite; a replay finds the target set and counts as done):
 *
 *   next-key-generated  key (+ certificate) made, nothing in DNS yet
 *   tlsa-published      UPDATE sent (TSIG), SOA serial recorded
 *   visible             every NS address serves the set, signed, with
 *                       serial >= recorded; the validating resolver
 *                       returns it secure          (else: stalled)
 *   propagated          2 x max(old TTL, negative TTL) + delay passed
 *   deployed            deploy hook ran, the probe authenticated
 *   old-retired         old TLSA removed (UPDATE)
 *   steady              removal seen at every NS address
 */
#include "tool_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define PROG "dance-idm"
#define IDM_EXIT_STALLED 3	/* not visible before the deadline */
#define SET_MAX 8		/* TLSA records of one identity */
#define NS_MAX 16		/* authoritative addresses checked */
#define RDATA_MAX 160		/* "3 1 1 <64 hex>" and a bit */
#define IDM_MAX 4096		/* identities in one state directory */

/* ------------------------------------------------------------------ */
/* Configuration (NAME.conf) and state (NAME.state)                    */
/* ------------------------------------------------------------------ */

struct conf {
	char name[DANCE_NAME_MAX + 1];	/* TLSA owner, no final dot */
	char zone[DANCE_NAME_MAX + 1];
	char primary[128];		/* addr[@port]: where UPDATEs go */
	unsigned ns_port;		/* port of discovered NS addresses */
	const char *ns[NS_MAX];		/* explicit "addr[@port]" list */
	size_t n_ns;
	char tsig_alg[32], tsig_name[DANCE_NAME_MAX + 2], tsig_secret[256];
	struct tool_resolver_opts res;
	unsigned long ttl;		/* TTL of our TLSA records */
	unsigned long delay;		/* extra propagation delay, s */
	unsigned long visible_timeout;	/* publish -> stalled, s */
	unsigned long days;		/* certificate lifetime */
	unsigned long renew_before;	/* days before expiry */
	int keep_key;			/* renewals keep the key */
	int standby;			/* keep a next key published */
	int dane_ta;			/* usage dane-ta: the key is a CA's */
	/* Where the validating resolver and the probe look: the name, or
	 * for a wildcard "*.X" the name "dance-idm-probe.X" it covers. */
	char probe_name[DANCE_NAME_MAX + 1];
	const char *ca_hook;		/* issue a cert from IDM_CSR */
	const char *csr_hook;		/* the device's own CSR to IDM_CSR */
	const char *deploy_cert, *deploy_key, *deploy_hook;
	char *buf;			/* the file's text; strings point in */
};

enum st {
	ST_NONE = 0, ST_NEXT_KEY, ST_PUBLISHED, ST_VISIBLE, ST_PROPAGATED,
	ST_DEPLOYED, ST_RETIRED, ST_STEADY, ST_STALLED, ST_REVOKED
};

static const char *const st_names[] = {
	"new", "next-key-generated", "tlsa-published", "visible",
	"propagated", "deployed", "old-retired", "steady", "stalled",
	"revoked"
};

struct state {
	enum st st;
	long long since;
	unsigned cur, next;		/* key ids; 0 none */
	unsigned last_id;
	char set[SET_MAX][RDATA_MAX];	/* TLSA set we put in DNS */
	size_t n_set;
	unsigned long serial;		/* SOA serial after our update */
	long long published_at, visible_at;
	unsigned long wait;		/* 2 x max(TTLs) + delay, s */
	int deploying;			/* deploy of next was attempted */
	/* Pre-published key (standby yes): its record is in the set and
	 * has been visible since standby_at, so a roll to it needs no
	 * wait.  prepub: the roll under way only pre-publishes next. */
	unsigned standby;
	long long standby_at;
	int prepub;
};

struct idm {
	const char *dir;
	struct conf c;
	struct state s;
	char base[PATH_MAX - 64];	/* DIR/NAME (room for suffixes) */
	int lock_fd;
	int dry_run, force, json;
	int quiet;			/* --wait: "not yet" said once */
	const char *action;		/* IDM_ACTION for hooks: new, renew */
	struct dance_resolver *resolver;
};

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* Why a check is not passed yet (once per wait, not every second). */
static void
notyet(struct idm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
notyet(struct idm *m, const char *fmt, ...)
{
	va_list ap;

	if (m->quiet)
		return;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": %s: ", m->c.name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* A DNS name option: checked by the core, lower-cased, no final dot. */
static int
conf_name(const char *what, const char *v, char *out, int wild)
{
	struct dance_error e;
	size_t len = strlen(v);

	if (len > 1 && v[len - 1] == '.')
		len--;
	if (dance_name_check(v, len, wild, out, &e) != DANCE_OK) {
		say("%s '%s': %s", what, v, e.reason);
		return -1;
	}
	return 0;
}

static int
conf_num(const char *k, const char *v, unsigned long max,
	unsigned long *out)
{
	if (tool_parse_uint(v, max, out) != 0) {
		say("%s '%s': want a number 0..%lu", k, v, max);
		return -1;
	}
	return 0;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)n + 1)) ==
	    NULL) {
		fclose(f);
		return NULL;
	}
	buf[fread(buf, 1, (size_t)n, f)] = '\0';
	fclose(f);
	return buf;
}

/* Iterate "key value" / "key = value" lines; '#' starts a comment. */
static char *
next_kv(char **cursor, char **key, char **val)
{
	char *line, *nl, *p;

	while (**cursor != '\0') {
		line = *cursor;
		nl = strchr(line, '\n');
		if (nl != NULL) {
			*nl = '\0';
			*cursor = nl + 1;
		} else {
			*cursor = line + strlen(line);
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		line = trim(line);
		if (*line == '\0')
			continue;
		p = line + strcspn(line, " \t=");
		if (*p != '\0')
			*p++ = '\0';
		while (*p == '=' || isspace((unsigned char)*p))
			p++;
		*key = line;
		*val = trim(p);
		return line;
	}
	return NULL;
}

static int
conf_load(struct idm *m, const char *name)
{
	struct conf *c = &m->c;
	struct dance_error e;
	char path[PATH_MAX], *cur, *k, *v, *tsig = NULL;
	unsigned long n;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	tool_resolver_opts_init(&c->res);
	c->ns_port = 53;
	c->ttl = 300;
	c->delay = 0;
	c->visible_timeout = 3600;
	c->days = 90;
	c->renew_before = 30;
	c->keep_key = 1;
	snprintf(c->tsig_alg, sizeof(c->tsig_alg), "hmac-sha256");
	if (snprintf(path, sizeof(path), "%s/%s.conf", m->dir, name) >=
	    (int)sizeof(path) || (c->buf = read_file(path)) == NULL) {
		say("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	cur = c->buf;
	while (rc == 0 && next_kv(&cur, &k, &v) != NULL) {
		e.reason[0] = '\0';
		if (*v == '\0') {
			say("%s: %s needs a value", path, k);
			rc = -1;
		} else if (strcmp(k, "name") == 0)
			rc = conf_name("name", v, c->name, 1);
		else if (strcmp(k, "zone") == 0)
			rc = conf_name("zone", v, c->zone, 0);
		else if (strcmp(k, "primary") == 0)
			snprintf(c->primary, sizeof(c->primary), "%s", v);
		else if (strcmp(k, "ns") == 0) {
			if (c->n_ns == NS_MAX) {
				say("more than %d ns lines", NS_MAX);
				rc = -1;
			} else
				c->ns[c->n_ns++] = v;
		} else if (strcmp(k, "ns-port") == 0) {
			rc = conf_num(k, v, 65535, &n);
			c->ns_port = (unsigned)n;
		} else if (strcmp(k, "tsig") == 0)
			tsig = v;
		else if (strcmp(k, "ta") == 0)
			rc = tool_list_add(c->res.ta, &c->res.n_ta, "ta", v,
				&e) == DANCE_OK ? 0 : -1;
		else if (strcmp(k, "forward") == 0)
			rc = tool_list_add(c->res.forward, &c->res.n_forward,
				"forward", v, &e) == DANCE_OK ? 0 : -1;
		else if (strcmp(k, "unbound-conf") == 0)
			c->res.unbound_conf = v;
		else if (strcmp(k, "trust-ad") == 0)
			c->res.trust_ad = strcmp(v, "yes") == 0;
		else if (strcmp(k, "ttl") == 0)
			rc = conf_num(k, v, 86400, &c->ttl);
		else if (strcmp(k, "propagation-delay") == 0)
			rc = conf_num(k, v, 86400 * 7, &c->delay);
		else if (strcmp(k, "visible-timeout") == 0)
			rc = conf_num(k, v, 86400 * 7, &c->visible_timeout);
		else if (strcmp(k, "days") == 0)
			rc = conf_num(k, v, 3650, &c->days);
		else if (strcmp(k, "renew-before") == 0)
			rc = conf_num(k, v, 3650, &c->renew_before);
		else if (strcmp(k, "key-policy") == 0) {
			if (strcmp(v, "keep") != 0 && strcmp(v, "roll") != 0) {
				say("key-policy '%s': want keep or roll", v);
				rc = -1;
			}
			c->keep_key = strcmp(v, "keep") == 0;
		} else if (strcmp(k, "usage") == 0) {
			if (strcmp(v, "dane-ee") != 0 &&
			    strcmp(v, "dane-ta") != 0) {
				say("usage '%s': want dane-ee or dane-ta", v);
				rc = -1;
			}
			c->dane_ta = strcmp(v, "dane-ta") == 0;
		} else if (strcmp(k, "standby") == 0) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
				say("standby '%s': want yes or no", v);
				rc = -1;
			}
			c->standby = strcmp(v, "yes") == 0;
		} else if (strcmp(k, "csr-hook") == 0)
			c->csr_hook = v;
		else if (strcmp(k, "ca-hook") == 0)
			c->ca_hook = v;
		else if (strcmp(k, "deploy-cert") == 0)
			c->deploy_cert = v;
		else if (strcmp(k, "deploy-key") == 0)
			c->deploy_key = v;
		else if (strcmp(k, "deploy-hook") == 0)
			c->deploy_hook = v;
		else {
			say("%s: unknown setting '%s'", path, k);
			rc = -1;
		}
		if (rc != 0 && e.reason[0] != '\0')
			say("%s: %s", path, e.reason);
	}
	if (rc != 0)
		return -1;
	if (c->name[0] == '\0' && conf_name("name", name, c->name, 1) != 0)
		return -1;
	if (!dance_name_equal(c->name, name)) {
		say("%s: name %s differs from the file name", path, c->name);
		return -1;
	}
	if (c->zone[0] == '\0' || c->primary[0] == '\0' || tsig == NULL) {
		say("%s: zone, primary and tsig are required", path);
		return -1;
	}
	n = strlen(c->zone);
	if (strlen(c->name) <= n + 1 ||
	    !dance_name_equal(c->name + strlen(c->name) - n, c->zone) ||
	    c->name[strlen(c->name) - n - 1] != '.') {
		say("%s: name %s is not below zone %s", path, c->name,
			c->zone);
		return -1;
	}
	/* tsig ALG:KEYNAME:SECRET, as "nsupdate -y" takes it. */
	{
		char *a = tsig, *kn = strchr(a, ':'), *sec;

		if (kn == NULL || (sec = strchr(kn + 1, ':')) == NULL ||
		    sec[1] == '\0') {
			say("%s: tsig wants ALG:KEYNAME:SECRET", path);
			return -1;
		}
		*kn++ = '\0';
		*sec++ = '\0';
		snprintf(c->tsig_alg, sizeof(c->tsig_alg), "%s", a);
		snprintf(c->tsig_name, sizeof(c->tsig_name), "%s", kn);
		snprintf(c->tsig_secret, sizeof(c->tsig_secret), "%s", sec);
	}
	if (c->csr_hook != NULL && (c->ca_hook == NULL || c->dane_ta ||
	    c->deploy_key != NULL)) {
		say("%s: csr-hook (the device keeps its key) needs ca-hook, "
			"and no deploy-key or usage dane-ta", path);
		return -1;
	}
	if (c->dane_ta && c->ca_hook != NULL) {
		say("%s: usage dane-ta makes its own CA; no ca-hook", path);
		return -1;
	}
	if (c->name[0] == '*') {
		if (!c->dane_ta) {
			say("%s: a wildcard name needs usage dane-ta (one key "
				"for many devices would be no identity)", path);
			return -1;
		}
		if (snprintf(c->probe_name, sizeof(c->probe_name),
		    "dance-idm-probe%s", c->name + 1) >=
		    (int)sizeof(c->probe_name)) {
			say("%s: name too long for a probe name", path);
			return -1;
		}
	} else {
		snprintf(c->probe_name, sizeof(c->probe_name), "%s", c->name);
	}
	if (c->res.n_ta == 0 && !c->res.trust_ad) {
		say("%s: give ta FILE (or trust-ad yes with a validating "
			"forward resolver): visibility is checked through "
			"a validating resolver", path);
		return -1;
	}
	return 0;
}

static void
state_init(struct state *s)
{
	memset(s, 0, sizeof(*s));
}

static int
state_load(struct idm *m)
{
	char path[PATH_MAX], *buf, *cur, *k, *v;
	struct state *s = &m->s;
	size_t i;

	state_init(s);
	snprintf(path, sizeof(path), "%s.state", m->base);
	if ((buf = read_file(path)) == NULL) {
		if (errno == ENOENT)
			return 0;
		say("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	cur = buf;
	while (next_kv(&cur, &k, &v) != NULL) {
		if (strcmp(k, "state") == 0) {
			for (i = 0; i < sizeof(st_names) / sizeof(*st_names);
			    i++)
				if (strcmp(v, st_names[i]) == 0)
					s->st = (enum st)i;
		} else if (strcmp(k, "since") == 0)
			s->since = atoll(v);
		else if (strcmp(k, "cur") == 0)
			s->cur = (unsigned)atoi(v);
		else if (strcmp(k, "next") == 0)
			s->next = (unsigned)atoi(v);
		else if (strcmp(k, "last-id") == 0)
			s->last_id = (unsigned)atoi(v);
		else if (strcmp(k, "tlsa") == 0 && s->n_set < SET_MAX)
			snprintf(s->set[s->n_set++], RDATA_MAX, "%s", v);
		else if (strcmp(k, "serial") == 0)
			s->serial = strtoul(v, NULL, 10);
		else if (strcmp(k, "published-at") == 0)
			s->published_at = atoll(v);
		else if (strcmp(k, "visible-at") == 0)
			s->visible_at = atoll(v);
		else if (strcmp(k, "wait") == 0)
			s->wait = strtoul(v, NULL, 10);
		else if (strcmp(k, "deploying") == 0)
			s->deploying = atoi(v);
		else if (strcmp(k, "standby") == 0)
			s->standby = (unsigned)atoi(v);
		else if (strcmp(k, "standby-at") == 0)
			s->standby_at = atoll(v);
		else if (strcmp(k, "prepub") == 0)
			s->prepub = atoi(v);
	}
	free(buf);
	return 0;
}

/* Write path atomically: temp file, fsync, rename, fsync the dir. */
static int
write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	int fd, dfd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)) < 0) {
		say("cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		say("cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		say("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if ((dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY)) >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	return 0;
}

static int
state_save(struct idm *m)
{
	struct state *s = &m->s;
	char path[PATH_MAX], buf[4096];
	size_t i, o;

	if (m->dry_run)
		return 0;
	o = (size_t)snprintf(buf, sizeof(buf),
		"# dance-idm state of %s; written by dance-idm, do not edit\n"
		"state %s\nsince %lld\ncur %u\nnext %u\nlast-id %u\n"
		"serial %lu\npublished-at %lld\nvisible-at %lld\nwait %lu\n"
		"deploying %d\nstandby %u\nstandby-at %lld\nprepub %d\n",
		m->c.name, st_names[s->st], s->since, s->cur, s->next,
		s->last_id, s->serial, s->published_at, s->visible_at, s->wait,
		s->deploying, s->standby, s->standby_at, s->prepub);
	for (i = 0; i < s->n_set && o < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "tlsa %s\n",
			s->set[i]);
	if (o >= sizeof(buf))
		return -1;
	snprintf(path, sizeof(path), "%s.state", m->base);
	return write_atomic(path, buf, o, 0644);
}

static int
set_state(struct idm *m, enum st st)
{
	m->s.st = st;
	m->s.since = (long long)time(NULL);
	return state_save(m);
}

/* ------------------------------------------------------------------ */
/* TLSA sets                                                           */
/* ------------------------------------------------------------------ */

static int
set_has(char set[][RDATA_MAX], size_t n, const char *rd)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(set[i], rd) == 0)
			return 1;
	return 0;
}

static int
set_equal(char a[][RDATA_MAX], size_t na, char b[][RDATA_MAX], size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (!set_has(b, nb, a[i]))
			return 0;
	return 1;
}

static void
set_copy(char dst[][RDATA_MAX], size_t *nd, char src[][RDATA_MAX],
	size_t ns)
{
	memcpy(dst, src, ns * RDATA_MAX);
	*nd = ns;
}

static void
set_add(char set[][RDATA_MAX], size_t *n, const char *rd)
{
	if (!set_has(set, *n, rd) && *n < SET_MAX)
		snprintf(set[(*n)++], RDATA_MAX, "%s", rd);
}

static void
set_del(char set[][RDATA_MAX], size_t *n, const char *rd)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp(set[i], rd) == 0) {
			memmove(set[i], set[i + 1], (*n - i - 1) * RDATA_MAX);
			(*n)--;
			return;
		}
}

/* ------------------------------------------------------------------ */
/* Keys and certificates (NAME.keys/ID.key, ID.crt)                    */
/* ------------------------------------------------------------------ */

static void
key_path(struct idm *m, unsigned id, const char *ext, char *out,
	size_t len)
{
	snprintf(out, len, "%s.keys/%u.%s", m->base, id, ext);
}

static X509 *
load_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x;

	if (b == NULL)
		return NULL;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	return x;
}

/* "3 1 1 <hex>" (DANE-TA: "2 1 1") of key id's certificate: the SPKI
 * digest (tool_tlsa_hex, shared with dance-tlsa).  Selector 1 keeps
 * the record when a certificate is renewed for the same key. */
static int
key_tlsa(struct idm *m, unsigned id, char *out)
{
	char path[PATH_MAX], *hex;
	X509 *x;

	key_path(m, id, "crt", path, sizeof(path));
	if ((x = load_cert(path)) == NULL) {
		say("cannot read certificate %s", path);
		return -1;
	}
	hex = tool_tlsa_hex(x, 1, 1);
	X509_free(x);
	if (hex == NULL) {
		say("cannot compute TLSA data of %s", path);
		return -1;
	}
	snprintf(out, RDATA_MAX, "%d 1 1 %s", m->c.dane_ta ? 2 : 3, hex);
	free(hex);
	return 0;
}

static int
pem_write(const char *path, EVP_PKEY *key, X509 *x, X509_REQ *req)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int ok;

	if (b == NULL)
		return -1;
	ok = key != NULL ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0,
		NULL, NULL) : x != NULL ? PEM_write_bio_X509(b, x) :
		PEM_write_bio_X509_REQ(b, req);
	len = BIO_get_mem_data(b, &data);
	ok = ok && len > 0 && write_atomic(path, data, (size_t)len,
		key != NULL ? 0600 : 0644) == 0;
	BIO_free(b);
	return ok ? 0 : -1;
}

static int
add_ext(X509 *x, X509_REQ *req, STACK_OF(X509_EXTENSION) *exts, int nid,
	const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	int ok;

	X509V3_set_ctx(&ctx, x, x, req, NULL, 0);
	if ((ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return 0;
	ok = x != NULL ? X509_add_ext(x, ex, -1) :
		sk_X509_EXTENSION_push(exts, ex) > 0;
	if (x != NULL || !ok)
		X509_EXTENSION_free(ex);
	return ok;
}

/* Run a shell command with IDM_* in the environment; 0 on exit 0. */
static int
run_hook(struct idm *m, const char *what, const char *cmd, unsigned id)
{
	char cert[PATH_MAX], key[PATH_MAX], csr[PATH_MAX];
	pid_t pid;
	int st;

	key_path(m, id, "crt", cert, sizeof(cert));
	key_path(m, id, "key", key, sizeof(key));
	key_path(m, id, "csr", csr, sizeof(csr));
	fflush(NULL);
	if ((pid = fork()) < 0) {
		say("%s: fork: %s", what, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		setenv("IDM_NAME", m->c.name, 1);
		setenv("IDM_CERT", cert, 1);
		setenv("IDM_KEY", key, 1);
		setenv("IDM_CSR", csr, 1);
		setenv("IDM_ACTION", m->action != NULL ? m->action : "deploy",
			1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		say("%s failed (%s %d): %s", what, WIFEXITED(st) ?
			"exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) :
			WTERMSIG(st), cmd);
		return -1;
	}
	return 0;
}

/*
 * A certificate for pub with CN (and, for a leaf, SAN dNSName) name,
 * signed by signer: self-signed when issuer is NULL.  ca: a CA for
 * DANE-TA identities; else a client (leaf) certificate.  NULL on error
 * (OpenSSL's error queue says why).
 */
static X509 *
build_cert(EVP_PKEY *pub, EVP_PKEY *signer, X509 *issuer, const char *name,
	int ca, long days)
{
	char san[DANCE_NAME_MAX + 8];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	X509_NAME *subj;
	X509 *x;
	int ok;

	snprintf(san, sizeof(san), "DNS:%s", name);
	if ((x = X509_new()) == NULL || RAND_bytes(serial, 16) != 1) {
		X509_free(x);
		return NULL;
	}
	serial[0] &= 0x7f;
	subj = X509_get_subject_name(x);
	ok = (bn = BN_bin2bn(serial, 16, NULL)) != NULL &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
	    X509_set_version(x, 2) &&
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
		(const unsigned char *)name, -1, -1, 0) &&
	    X509_set_issuer_name(x, issuer != NULL ?
		X509_get_subject_name(issuer) : subj) &&
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400) &&
	    X509_set_pubkey(x, pub) &&
	    (ca ? add_ext(x, NULL, NULL, NID_basic_constraints,
		"critical,CA:TRUE") &&
	      add_ext(x, NULL, NULL, NID_key_usage,
		"critical,keyCertSign,cRLSign") :
	      add_ext(x, NULL, NULL, NID_subject_alt_name, san) &&
	      add_ext(x, NULL, NULL, NID_basic_constraints,
		"critical,CA:FALSE") &&
	      add_ext(x, NULL, NULL, NID_ext_key_usage, "clientAuth")) &&
	    X509_sign(x, signer, EVP_sha256());
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The public key of key id's CSR (made by the device: csr-hook), its
 * signature checked; NULL with the reason said. */
static EVP_PKEY *
csr_pubkey(struct idm *m, unsigned id)
{
	char path[PATH_MAX];
	X509_REQ *req = NULL;
	EVP_PKEY *k = NULL;
	BIO *b;

	key_path(m, id, "csr", path, sizeof(path));
	if ((b = BIO_new_file(path, "r")) != NULL)
		req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	if (req == NULL || (k = X509_REQ_get_pubkey(req)) == NULL ||
	    X509_REQ_verify(req, k) != 1) {
		say("csr-hook: no valid CSR in %s", path);
		EVP_PKEY_free(k);
		k = NULL;
	}
	X509_REQ_free(req);
	return k;
}

/*
 * Certificate for key id: self-signed DANE-EE (usage 3 ignores names
 * and dates, but the name goes into the SAN for DANE-TA/PKIX peers and
 * for people), a self-signed CA for a DANE-TA identity, or from
 * ca-hook, which turns IDM_CSR into IDM_CERT.
 */
static int
make_cert(struct idm *m, unsigned id, EVP_PKEY *key)
{
	char path[PATH_MAX], san[DANCE_NAME_MAX + 8], eb[160];
	X509 *x = NULL;
	X509_REQ *req = NULL;
	X509_NAME *subj;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	EVP_PKEY *csr_key = NULL;
	int ok = 0;

	snprintf(san, sizeof(san), "DNS:%s", m->c.name);
	if (key == NULL) {	/* the device's CSR, from csr-hook */
		if ((key = csr_pubkey(m, id)) == NULL)
			goto out;
		csr_key = key;
	} else if (m->c.ca_hook != NULL) {
		if ((req = X509_REQ_new()) == NULL ||
		    (exts = sk_X509_EXTENSION_new_null()) == NULL)
			goto out;
		subj = X509_REQ_get_subject_name(req);
		if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
		    (const unsigned char *)m->c.name, -1, -1, 0) ||
		    !add_ext(NULL, req, exts, NID_subject_alt_name, san) ||
		    !X509_REQ_add_extensions(req, exts) ||
		    !X509_REQ_set_pubkey(req, key) ||
		    !X509_REQ_sign(req, key, EVP_sha256()))
			goto out;
		key_path(m, id, "csr", path, sizeof(path));
		if (pem_write(path, NULL, NULL, req) != 0)
			goto out;
	}
	if (m->c.ca_hook != NULL) {
		if (run_hook(m, "ca-hook", m->c.ca_hook, id) != 0)
			goto out;
		key_path(m, id, "crt", path, sizeof(path));
		if ((x = load_cert(path)) == NULL) {
			say("ca-hook made no certificate in %s", path);
			goto out;
		}
		if (EVP_PKEY_eq(X509_get0_pubkey(x), key) != 1) {
			say("ca-hook: %s is not for the key of the CSR", path);
			goto out;
		}
		ok = 1;
		goto out;
	}
	if ((x = build_cert(key, key, NULL, m->c.name, m->c.dane_ta,
	    (long)m->c.days)) == NULL)
		goto out;
	key_path(m, id, "crt", path, sizeof(path));
	ok = pem_write(path, NULL, x, NULL) == 0;
out:
	if (!ok && ERR_peek_error() != 0)
		say("certificate for key %u: %s", id,
			dance_ssl_err_text(eb, sizeof(eb)));
	else if (!ok)
		say("cannot make a certificate for key %u", id);
	X509_free(x);
	X509_REQ_free(req);
	EVP_PKEY_free(csr_key);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ok ? 0 : -1;
}

static EVP_PKEY *
load_key(struct idm *m, unsigned id)
{
	char path[PATH_MAX];
	struct dance_error e;
	EVP_PKEY *k;

	key_path(m, id, "key", path, sizeof(path));
	if (tool_load_key(path, &k, &e) != DANCE_OK) {
		say("%s", e.reason);
		return NULL;
	}
	return k;
}

/* A new key (EC P-256) with its certificate; the id is returned. */
static int
new_key(struct idm *m, unsigned *id)
{
	char path[PATH_MAX], eb[160];
	EVP_PKEY *k;
	int rc;

	snprintf(path, sizeof(path), "%s.keys", m->base);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		say("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	*id = m->s.last_id + 1;
	m->action = "new";
	if (m->c.csr_hook != NULL) {	/* the key stays on the device */
		rc = run_hook(m, "csr-hook", m->c.csr_hook, *id);
		if (rc == 0)
			rc = make_cert(m, *id, NULL);
		if (rc == 0)
			m->s.last_id = *id;
		return rc;
	}
	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		say("key generation: %s", dance_ssl_err_text(eb, sizeof(eb)));
		return -1;
	}
	key_path(m, *id, "key", path, sizeof(path));
	rc = pem_write(path, k, NULL, NULL);
	if (rc != 0)
		say("cannot write %s", path);
	else
		rc = make_cert(m, *id, k);
	EVP_PKEY_free(k);
	if (rc == 0)
		m->s.last_id = *id;
	return rc;
}

/* Seconds until key id's certificate expires (negative: expired). */
static long long
cert_left(struct idm *m, unsigned id)
{
	char path[PATH_MAX];
	X509 *x;
	int days = 0, secs = 0;

	key_path(m, id, "crt", path, sizeof(path));
	if ((x = load_cert(path)) == NULL)
		return 0;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1)
		days = secs = 0;
	X509_free(x);
	return (long long)days * 86400 + secs;
}

/* ------------------------------------------------------------------ */
/* DNS through ldns: queries to one server, RFC 2136 updates           */
/* ------------------------------------------------------------------ */

/* A resolver object aimed at exactly one address ("addr[@port]"). */
static ldns_resolver *
dns_server(const char *spec, unsigned def_port)
{
	char host[128], *at;
	ldns_resolver *r;
	ldns_rdf *a;
	struct timeval tv = { 2, 0 };
	unsigned long port = def_port;

	snprintf(host, sizeof(host), "%s", spec);
	if ((at = strchr(host, '@')) != NULL) {
		*at = '\0';
		if (tool_parse_uint(at + 1, 65535, &port) != 0 || port == 0) {
			say("bad port in '%s'", spec);
			return NULL;
		}
	}
	a = ldns_rdf_new_frm_str(strchr(host, ':') != NULL ?
		LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, host);
	if (a == NULL) {
		say("'%s' is not an IP address", spec);
		return NULL;
	}
	if ((r = ldns_resolver_new()) == NULL ||
	    ldns_resolver_push_nameserver(r, a) != LDNS_STATUS_OK) {
		ldns_rdf_deep_free(a);
		ldns_resolver_deep_free(r);
		return NULL;
	}
	ldns_rdf_deep_free(a);
	ldns_resolver_set_port(r, (uint16_t)port);
	ldns_resolver_set_recursive(r, false);
	ldns_resolver_set_dnssec(r, true);
	ldns_resolver_set_timeout(r, tv);
	ldns_resolver_set_retry(r, 2);
	ldns_resolver_set_fallback(r, true);
	return r;
}

static ldns_pkt *
dns_query(ldns_resolver *r, const char *name, ldns_rr_type t,
	const char *spec)
{
	ldns_rdf *d = ldns_dname_new_frm_str(name);
	ldns_pkt *p = NULL;
	ldns_status s;

	if (d == NULL)
		return NULL;
	s = ldns_resolver_query_status(&p, r, d, t, LDNS_RR_CLASS_IN, 0);
	ldns_rdf_deep_free(d);
	if (s != LDNS_STATUS_OK || p == NULL) {
		say("query %s to %s: %s", name, spec,
			ldns_get_errorstr_by_id(s));
		ldns_pkt_free(p);
		return NULL;
	}
	return p;
}

/* TLSA rdata of rr as "U S M hex", checked by the core's parser. */
static int
rr_tlsa_str(const ldns_rr *rr, char *out)
{
	unsigned char wire[RDATA_MAX];
	struct dance_tlsa t;
	struct dance_error e;
	size_t i, len = 0, n;

	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		n = ldns_rdf_size(ldns_rr_rdf(rr, i));
		if (len + n > sizeof(wire))
			return -1;
		memcpy(wire + len, ldns_rdf_data(ldns_rr_rdf(rr, i)), n);
		len += n;
	}
	/* Longer data (a full certificate, "3 0 0") would be cut off
	 * by tool_tlsa_str: not a record dance-idm can manage. */
	if (dance_tlsa_parse(wire, len, &t, &e) != DANCE_OK ||
	    t.len * 2 + 16 > RDATA_MAX)
		return -1;
	tool_tlsa_str(&t, out, RDATA_MAX);
	return 0;
}

/*
 * What one server says about NAME TLSA: the set (records we cannot
 * represent are counted as "other"), whether an RRSIG covers it, its
 * TTL.  -1 on a failed query or an answer that is not authoritative.
 */
struct view {
	char set[SET_MAX][RDATA_MAX];
	size_t n;
	int signed_;
	uint32_t ttl;
	unsigned long serial;
	uint32_t neg_ttl;	/* min(SOA TTL, SOA MINIMUM), RFC 2308 */
};

/* Was the RRset this RRSIG covers expanded from a wildcard?  Its
 * Labels field counts fewer labels than the owner has, the "*" of a
 * wildcard owner not counted (RFC 4034 3.1.3). */
static int
from_wildcard(const ldns_rr *sig)
{
	ldns_rdf *owner = ldns_rr_owner(sig), *lab = ldns_rr_rrsig_labels(sig);
	unsigned n = ldns_dname_label_count(owner);

	if (lab == NULL)
		return 0;
	if (ldns_dname_is_wildcard(owner))
		n--;
	return ldns_rdf2native_int8(lab) < n;
}

static int
view_tlsa(ldns_resolver *r, const char *spec, const char *name,
	struct view *v)
{
	ldns_pkt *p;
	ldns_rr *rr;
	size_t i;
	char rd[RDATA_MAX];
	int synthesized = 0;

	memset(v, 0, sizeof(*v));
	if ((p = dns_query(r, name, LDNS_RR_TYPE_TLSA, spec)) == NULL)
		return -1;
	if (!ldns_pkt_aa(p) || (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR &&
	    ldns_pkt_get_rcode(p) != LDNS_RCODE_NXDOMAIN)) {
		say("%s: not an authoritative answer for %s (rcode %d)",
			spec, name, (int)ldns_pkt_get_rcode(p));
		ldns_pkt_free(p);
		return -1;
	}
	for (i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); i++) {
		rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_TLSA) {
			v->ttl = ldns_rr_ttl(rr);
			if (rr_tlsa_str(rr, rd) != 0)
				snprintf(rd, sizeof(rd), "other %zu", i);
			set_add(v->set, &v->n, rd);
		} else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG &&
		    ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(rr)) ==
		    LDNS_RR_TYPE_TLSA) {
			v->signed_ = 1;
			synthesized |= from_wildcard(rr);
		}
	}
	ldns_pkt_free(p);
	/* Records a wildcard made for this name are not the name's own
	 * (a *._device identity covers the names that have none). */
	if (synthesized)
		v->n = 0;
	return 0;
}

static int
view_soa(ldns_resolver *r, const char *spec, const char *zone,
	struct view *v)
{
	ldns_pkt *p;
	ldns_rr *rr;
	size_t i;
	uint32_t min;

	if ((p = dns_query(r, zone, LDNS_RR_TYPE_SOA, spec)) == NULL)
		return -1;
	for (i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); i++) {
		rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
		    ldns_rr_rd_count(rr) < 7)
			continue;
		v->serial = ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
		min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
		v->neg_ttl = min < ldns_rr_ttl(rr) ? min : ldns_rr_ttl(rr);
		ldns_pkt_free(p);
		return 0;
	}
	say("%s: no SOA for %s (is it authoritative for the zone?)", spec,
		zone);
	ldns_pkt_free(p);
	return -1;
}

/* RFC 1982: a >= b in serial number arithmetic. */
static int
serial_ge(unsigned long a, unsigned long b)
{
	return (uint32_t)(a - b) < 0x80000000u;
}

static ldns_rr *
tlsa_rr(struct idm *m, const char *rd, uint32_t ttl, ldns_rr_class cl)
{
	char line[RDATA_MAX + DANCE_NAME_MAX + 32];
	ldns_rr *rr = NULL;

	snprintf(line, sizeof(line), "%s. %u IN TLSA %s", m->c.name, ttl, rd);
	if (ldns_rr_new_frm_str(&rr, line, 0, NULL, NULL) != LDNS_STATUS_OK)
		return NULL;
	ldns_rr_set_class(rr, cl);
	return rr;
}

/* The update as an nsupdate script (--dry-run), secret left out. */
static void
print_nsupdate(struct idm *m, char from[][RDATA_MAX], size_t nf,
	char to[][RDATA_MAX], size_t nt)
{
	char host[128], *at;
	size_t i;

	snprintf(host, sizeof(host), "%s", m->c.primary);
	if ((at = strchr(host, '@')) != NULL)
		*at = ' ';
	printf("server %s\nzone %s.\nkey %s:%s <secret from %s/%s.conf>\n",
		host, m->c.zone, m->c.tsig_alg, m->c.tsig_name, m->dir,
		m->c.name);
	for (i = 0; i < nf; i++)
		printf("prereq yxrrset %s. IN TLSA %s\n", m->c.name, from[i]);
	for (i = 0; i < nf; i++)
		if (!set_has(to, nt, from[i]))
			printf("update delete %s. IN TLSA %s\n", m->c.name,
				from[i]);
	for (i = 0; i < nt; i++)
		if (!set_has(from, nf, to[i]))
			printf("update add %s. %lu IN TLSA %s\n", m->c.name,
				m->c.ttl, to[i]);
	printf("send\n");
}

static const char *
rcode_str(int rc)
{
	ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, rc);

	return t != NULL ? t->name : "unknown rcode";
}

static const char *
tsig_error_str(ldns_pkt *p)
{
	ldns_rr *t = p != NULL ? ldns_pkt_tsig(p) : NULL;

	if (t == NULL || ldns_rr_rd_count(t) < 6)
		return NULL;
	switch (ldns_rdf2native_int16(ldns_rr_rdf(t, 5))) {
	case 16: return "BADSIG (the secret is wrong)";
	case 17: return "BADKEY (the server does not know this key name, "
		"or refuses this update for it)";
	case 18: return "BADTIME (clocks differ by more than 300 s)";
	default: return NULL;
	}
}

/*
 * Change NAME's TLSA set at the primary from `from` to `to` with one
 * UPDATE: prerequisite "RRset exists, value dependent" = from (nothing
 * when from is empty), delete from - to, add to - from.  If the
 * prerequisite fails and the primary already holds `to`, this was a
 * replay of an update that got through (a run killed before it saved
 * its state): done.  Any other outcome is an error with the reason and
 * leaves the state alone.  On success the primary's SOA serial and
 * TTLs go to *v.
 */
static int
dns_update(struct idm *m, char from[][RDATA_MAX], size_t nf,
	char to[][RDATA_MAX], size_t nt, struct view *v)
{
	ldns_resolver *r;
	ldns_rr_list *pre = NULL, *up = NULL;
	ldns_pkt *q = NULL, *a = NULL;
	ldns_rr *rr;
	ldns_status s;
	char alg[48];
	const char *te;
	size_t i;
	int rc = -1, rcode;
	struct view cur;

	if (m->dry_run) {
		print_nsupdate(m, from, nf, to, nt);
		return 1;
	}
	if ((r = dns_server(m->c.primary, 53)) == NULL)
		return -1;
	snprintf(alg, sizeof(alg), "%s.", m->c.tsig_alg);
	ldns_resolver_set_tsig_keyname(r, m->c.tsig_name);
	ldns_resolver_set_tsig_algorithm(r, alg);
	ldns_resolver_set_tsig_keydata(r, m->c.tsig_secret);
	pre = ldns_rr_list_new();
	up = ldns_rr_list_new();
	for (i = 0; i < nf; i++) {
		if ((rr = tlsa_rr(m, from[i], 0, LDNS_RR_CLASS_IN)) == NULL)
			goto out;
		ldns_rr_list_push_rr(pre, rr);
		if (!set_has(to, nt, from[i])) {
			if ((rr = tlsa_rr(m, from[i], 0,
			    LDNS_RR_CLASS_NONE)) == NULL)
				goto out;
			ldns_rr_list_push_rr(up, rr);
		}
	}
	for (i = 0; i < nt; i++)
		if (!set_has(from, nf, to[i])) {
			if ((rr = tlsa_rr(m, to[i], (uint32_t)m->c.ttl,
			    LDNS_RR_CLASS_IN)) == NULL)
				goto out;
			ldns_rr_list_push_rr(up, rr);
		}
	q = ldns_update_pkt_new(ldns_dname_new_frm_str(m->c.zone),
		LDNS_RR_CLASS_IN, pre, up, NULL);
	if (q == NULL) {
		say("cannot build the update");
		goto out;
	}
	ldns_pkt_set_random_id(q);
	if ((s = ldns_update_pkt_tsig_add(q, r)) != LDNS_STATUS_OK) {
		say("TSIG signing with key %s (%s): %s", m->c.tsig_name,
			m->c.tsig_alg, ldns_get_errorstr_by_id(s));
		goto out;
	}
	/* ldns_send, not ldns_resolver_send_pkt: that one drops a reply
	 * whose TSIG does not verify, and with it the server's reason
	 * (NOTAUTH + BADSIG/BADKEY).  Such a reply is only reported,
	 * never taken as success. */
	ldns_resolver_set_usevc(r, true);
	s = ldns_send(&a, r, q);
	rcode = a != NULL ? (int)ldns_pkt_get_rcode(a) : -1;
	te = tsig_error_str(a);
	if (a == NULL) {
		say("update of %s TLSA at %s: %s", m->c.name, m->c.primary,
			ldns_get_errorstr_by_id(s));
		goto out;
	}
	if (te != NULL || rcode == LDNS_RCODE_NOTAUTH) {
		say("update of %s TLSA refused by %s: %s, TSIG %s; check the "
			"tsig setting (key %s) against the server's key and "
			"update ACL", m->c.name, m->c.primary,
			rcode_str(rcode), te != NULL ? te : "error",
			m->c.tsig_name);
		goto out;
	}
	if (s != LDNS_STATUS_OK) {
		say("update of %s TLSA at %s: reply not trusted: %s",
			m->c.name, m->c.primary, ldns_get_errorstr_by_id(s));
		goto out;
	}
	if (rcode == LDNS_RCODE_NXRRSET || rcode == LDNS_RCODE_YXRRSET) {
		/* A replay, or someone else changed the set. */
		if (view_tlsa(r, m->c.primary, m->c.name, &cur) == 0 &&
		    set_equal(cur.set, cur.n, to, nt)) {
			say("update of %s TLSA: already applied at %s",
				m->c.name, m->c.primary);
		} else {
			say("update of %s TLSA refused by %s: %s: the set in "
				"the zone is not the one dance-idm published "
				"(changed by someone else?); see "
				"'dance-idm status %s'", m->c.name,
				m->c.primary, rcode_str(rcode), m->c.name);
			goto out;
		}
	} else if (rcode != LDNS_RCODE_NOERROR) {
		say("update of %s TLSA refused by %s: %s%s", m->c.name,
			m->c.primary, rcode_str(rcode),
			rcode == LDNS_RCODE_REFUSED ? " (the server's update "
			"policy does not allow it for this key and name)" : "");
		goto out;
	}
	/* The serial the zone got with our change, and the TTLs. */
	rc = view_soa(r, m->c.primary, m->c.zone, v);
out:
	ldns_pkt_free(q);
	ldns_pkt_free(a);
	ldns_rr_list_deep_free(pre);
	ldns_rr_list_deep_free(up);
	ldns_resolver_deep_free(r);
	return rc;
}

/* Authoritative addresses: "ns" lines, else every NS of the zone as
 * the primary serves it, with its A/AAAA (from the primary, else the
 * system's resolver), at ns-port. */
static size_t
ns_addrs(struct idm *m, char out[][128])
{
	ldns_resolver *r;
	ldns_pkt *p, *pa;
	ldns_rr *rr;
	char *ns;
	size_t i, j, n = 0;
	int t;

	if (m->c.n_ns > 0) {
		for (i = 0; i < m->c.n_ns; i++)
			snprintf(out[n++], 128, "%s", m->c.ns[i]);
		return n;
	}
	if ((r = dns_server(m->c.primary, 53)) == NULL)
		return 0;
	if ((p = dns_query(r, m->c.zone, LDNS_RR_TYPE_NS, m->c.primary)) ==
	    NULL) {
		ldns_resolver_deep_free(r);
		return 0;
	}
	for (i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(p)); i++) {
		rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS)
			continue;
		ns = ldns_rdf2str(ldns_rr_rdf(rr, 0));
		if (ns == NULL)
			continue;
		for (t = 0; t < 2; t++) {
			ldns_rr_type ty = t == 0 ? LDNS_RR_TYPE_A :
				LDNS_RR_TYPE_AAAA;
			size_t before = n;

			pa = dns_query(r, ns, ty, m->c.primary);
			for (j = 0; pa != NULL && j < ldns_rr_list_rr_count(
			    ldns_pkt_answer(pa)) && n < NS_MAX; j++) {
				ldns_rr *ar = ldns_rr_list_rr(
					ldns_pkt_answer(pa), j);
				char *ip;

				if (ldns_rr_get_type(ar) != ty)
					continue;
				ip = ldns_rdf2str(ldns_rr_rdf(ar, 0));
				if (ip != NULL)
					snprintf(out[n++], 128, t == 0 ?
						"%s@%u" : "%s@%u", ip,
						m->c.ns_port);
				free(ip);
			}
			ldns_pkt_free(pa);
			if (t == 1 && n == before && before == 0) {
				struct addrinfo hints, *ai, *a;
				char ip[64];

				memset(&hints, 0, sizeof(hints));
				hints.ai_socktype = SOCK_DGRAM;
				if (getaddrinfo(ns, NULL, &hints, &ai) != 0)
					break;
				for (a = ai; a != NULL && n < NS_MAX;
				    a = a->ai_next)
					if (getnameinfo(a->ai_addr,
					    a->ai_addrlen, ip, sizeof(ip),
					    NULL, 0, NI_NUMERICHOST) == 0)
						snprintf(out[n++], 128,
							"%s@%u", ip,
							m->c.ns_port);
				freeaddrinfo(ai);
			}
		}
		free(ns);
	}
	ldns_pkt_free(p);
	ldns_resolver_deep_free(r);
	if (n == 0)
		say("no address for any NS of %s", m->c.zone);
	return n;
}

/* The validating resolver (the core's), created once per run. */
static struct dance_resolver *
resolver(struct idm *m)
{
	struct dance_resolver_cfg cfg;
	struct dance_error e;

	if (m->resolver != NULL)
		return m->resolver;
	tool_resolver_cfg(&m->c.res, DANCE_RESOLVER_THREADED, &cfg);
	cfg.cache_size = 0;	/* every check asks again */
	if ((m->resolver = dance_resolver_new(&cfg, &e)) == NULL)
		say("validating resolver: %s", e.reason);
	return m->resolver;
}

/*
 * Is the set s->set served by every authoritative address, signed, at
 * serial >= s->serial, and (check_resolver) returned secure by the
 * validating resolver?  1 yes, 0 not yet (why printed), -1 error.
 */
static int
visible(struct idm *m, int check_resolver)
{
	char addrs[NS_MAX][128];
	size_t i, n, k;
	struct view v;
	ldns_resolver *r;
	struct dance_answer *a;
	char rd[RDATA_MAX], got[SET_MAX][RDATA_MAX];
	int ok = 1;

	if ((n = ns_addrs(m, addrs)) == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if ((r = dns_server(addrs[i], m->c.ns_port)) == NULL)
			return -1;
		if (view_soa(r, addrs[i], m->c.zone, &v) != 0) {
			ok = 0;
		} else if (!serial_ge(v.serial, m->s.serial)) {
			notyet(m, "not yet at %s: serial %lu < %lu", addrs[i],
				v.serial, m->s.serial);
			ok = 0;
		} else if (view_tlsa(r, addrs[i], m->c.name, &v) != 0) {
			ok = 0;
		} else if (!set_equal(v.set, v.n, m->s.set, m->s.n_set)) {
			notyet(m, "not yet at %s: %zu TLSA records served, want "
				"%zu", addrs[i], v.n, m->s.n_set);
			ok = 0;
		} else if (v.n > 0 && !v.signed_) {
			notyet(m, "not yet at %s: TLSA set not signed", addrs[i]);
			ok = 0;
		}
		ldns_resolver_deep_free(r);
	}
	if (!ok || !check_resolver)
		return ok;
	if (resolver(m) == NULL)
		return -1;
	a = dance_resolve_wait(m->resolver, m->c.probe_name);
	if (a == NULL)
		return -1;
	for (k = 0; k < dance_answer_count(a) && k < SET_MAX; k++)
		snprintf(got[k], RDATA_MAX, "%s",
			tool_tlsa_str(dance_answer_record(a, k), rd,
			sizeof(rd)));
	if (m->s.n_set > 0 && dance_answer_status(a) != DANCE_DNS_SECURE) {
		notyet(m, "not yet through the validating resolver: %s%s%s",
			dance_dns_status_str(dance_answer_status(a)),
			dance_answer_why(a)[0] ? ": " : "", dance_answer_why(a));
		ok = 0;
	} else if (!set_equal(got,
	    dance_answer_status(a) == DANCE_DNS_SECURE ? k : 0,
	    m->s.set, m->s.n_set)) {
		notyet(m, "not yet through the validating resolver: %zu records, "
			"want %zu", dance_answer_status(a) == DANCE_DNS_SECURE ?
			dance_answer_count(a) : 0,
			m->s.n_set);
		ok = 0;
	}
	dance_answer_unref(a);
	return ok;
}

/*
 * DANE-TA: the probe is a device of the new CA.  *x (the CA) becomes a
 * fresh leaf for the probe name, issued by it; *chain holds the CA, as
 * a device sends it.
 */
static int
probe_leaf(struct idm *m, unsigned id, X509 **x, STACK_OF(X509) **chain)
{
	EVP_PKEY *ca_key, *k = NULL;
	X509 *leaf = NULL;
	char eb[160];

	if ((ca_key = load_key(m, id)) == NULL)
		return -1;
	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (leaf = build_cert(k, ca_key, *x, m->c.probe_name, 0, 1)) ==
	    NULL || (*chain = sk_X509_new_null()) == NULL ||
	    !sk_X509_push(*chain, *x)) {
		say("probe: cannot issue a test certificate: %s",
			dance_ssl_err_text(eb, sizeof(eb)));
		X509_free(leaf);
		sk_X509_free(*chain);
		*chain = NULL;
		EVP_PKEY_free(k);
		EVP_PKEY_free(ca_key);
		return -1;
	}
	*x = leaf;
	EVP_PKEY_free(k);
	EVP_PKEY_free(ca_key);
	return 0;
}

/* The probe: would a DANCE server authenticate key id's certificate?
 * The core's lookup and match, as dance-check does it. */
static int
probe(struct idm *m, unsigned id)
{
	char path[PATH_MAX];
	struct dance_matcher *mt;
	struct dance_match_result res;
	struct dance_answer *a;
	struct dance_error e;
	STACK_OF(X509) *chain = NULL;
	X509 *x;
	int rc;

	key_path(m, id, "crt", path, sizeof(path));
	if (resolver(m) == NULL || (x = load_cert(path)) == NULL)
		return -1;
	if (m->c.dane_ta && probe_leaf(m, id, &x, &chain) != 0) {
		X509_free(x);
		return -1;
	}
	if ((mt = dance_matcher_new(NULL, &e)) == NULL) {
		say("probe: %s", e.reason);
		X509_free(x);
		sk_X509_pop_free(chain, X509_free);
		return -1;
	}
	a = dance_resolve_wait(m->resolver, m->c.probe_name);
	rc = a != NULL ? dance_match(mt, a, x, chain, &res) : DANCE_ERR_DNS;
	if (rc != DANCE_OK || !res.ok)
		say("probe: %s with key %u is NOT authenticated: %s",
			m->c.probe_name, id, a == NULL ? "no answer" :
			dance_answer_status(a) != DANCE_DNS_SECURE ?
			dance_dns_status_str(dance_answer_status(a)) :
			res.reason);
	if (a != NULL)
		dance_answer_unref(a);
	dance_matcher_free(mt);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	return rc == DANCE_OK && res.ok ? 0 : -1;
}

/* Copy a file atomically (temp, fsync, rename) to dst. */
static int
copy_atomic(const char *src, const char *dst, mode_t mode)
{
	char *data;
	size_t len;
	int rc;
	FILE *f = fopen(src, "r");
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		say("cannot read %s: %s", src, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	if ((data = malloc((size_t)n + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	len = fread(data, 1, (size_t)n, f);
	fclose(f);
	rc = write_atomic(dst, data, len, mode);
	free(data);
	return rc;
}

/* key and cert into one file, atomically (mode 0600: it has the key). */
static int
copy_pair(const char *key, const char *cert, const char *dst)
{
	char *a = read_file(key), *b = read_file(cert), *both = NULL;
	size_t la, lb;
	int rc = -1;

	if (a == NULL || b == NULL)
		say("cannot read %s or %s: %s", key, cert, strerror(errno));
	else if ((both = malloc((la = strlen(a)) + (lb = strlen(b)) + 1)) !=
	    NULL) {
		memcpy(both, a, la);
		memcpy(both + la, b, lb + 1);
		rc = write_atomic(dst, both, la + lb, 0600);
	}
	free(a);
	free(b);
	free(both);
	return rc;
}

/* Put key id in service: copy its files, run the deploy hook, probe. */
static int
deploy(struct idm *m, unsigned id)
{
	char cert[PATH_MAX], key[PATH_MAX];

	key_path(m, id, "crt", cert, sizeof(cert));
	key_path(m, id, "key", key, sizeof(key));
	/* One file for both (deploy-cert = deploy-key): a reader never
	 * sees the new certificate with the old key. */
	if (m->c.deploy_cert != NULL && m->c.deploy_key != NULL &&
	    strcmp(m->c.deploy_cert, m->c.deploy_key) == 0) {
		if (copy_pair(key, cert, m->c.deploy_cert) != 0)
			return -1;
		return m->c.deploy_hook != NULL && run_hook(m, "deploy-hook",
			m->c.deploy_hook, id) != 0 ? -1 : probe(m, id);
	}
	if (m->c.deploy_cert != NULL &&
	    copy_atomic(cert, m->c.deploy_cert, 0644) != 0)
		return -1;
	if (m->c.deploy_key != NULL &&
	    copy_atomic(key, m->c.deploy_key, 0600) != 0)
		return -1;
	if (m->c.deploy_hook != NULL &&
	    run_hook(m, "deploy-hook", m->c.deploy_hook, id) != 0)
		return -1;
	return probe(m, id);
}

/* ------------------------------------------------------------------ */
/* The state machine                                                   */
/* ------------------------------------------------------------------ */

static void
fmt_time(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The set at the primary becomes ours to keep (not to remove). */
static int
adopt(struct idm *m)
{
	ldns_resolver *r;
	struct view v;
	size_t i;
	int rc;

	if (m->s.cur != 0 || (r = dns_server(m->c.primary, 53)) == NULL)
		return m->s.cur != 0 ? 0 : -1;
	rc = view_tlsa(r, m->c.primary, m->c.name, &v);
	ldns_resolver_deep_free(r);
	if (rc != 0)
		return -1;
	for (i = 0; i < v.n; i++) {
		if (strncmp(v.set[i], "other", 5) == 0) {
			say("%s has a TLSA record dance-idm cannot read; "
				"remove it first", m->c.name);
			return -1;
		}
		printf("%s: keeping %s (was there before)\n", m->c.name,
			v.set[i]);
	}
	set_copy(m->s.set, &m->s.n_set, v.set, v.n);
	return 0;
}

/*
 * Add (add = 1) or remove key id's record with one UPDATE and record
 * the new set and serial; *v gets the primary's SOA view.  0 done (or
 * nothing to change: *changed 0), 1 dry run, -1 error.
 */
static int
change_set(struct idm *m, unsigned id, int add, struct view *v,
	char *rd, int *changed)
{
	struct state *s = &m->s;
	char to[SET_MAX][RDATA_MAX];
	size_t nt;
	int r;

	*changed = 0;
	if (key_tlsa(m, id, rd) != 0)
		return -1;
	set_copy(to, &nt, s->set, s->n_set);
	if (add)
		set_add(to, &nt, rd);
	else
		set_del(to, &nt, rd);
	if (set_equal(to, nt, s->set, s->n_set))
		return 0;
	if ((r = dns_update(m, s->set, s->n_set, to, nt, v)) != 0)
		return r;
	*changed = 1;
	s->serial = v->serial;
	set_copy(s->set, &s->n_set, to, nt);
	return 0;
}

/* TTL of the name's TLSA set at the primary now (0: none), -1 error. */
static long
current_ttl(struct idm *m)
{
	ldns_resolver *r;
	struct view v;
	int rc;

	if (m->dry_run)
		return 0;
	if ((r = dns_server(m->c.primary, 53)) == NULL)
		return -1;
	rc = view_tlsa(r, m->c.primary, m->c.name, &v);
	ldns_resolver_deep_free(r);
	return rc != 0 ? -1 : v.n > 0 ? (long)v.ttl : 0;
}

/* Publish the TLSA of key next beside what is there. */
static int
step_publish(struct idm *m)
{
	struct state *s = &m->s;
	char rd[RDATA_MAX];
	struct view v;
	unsigned long w;
	long old_ttl;
	int r, changed;

	/* A new identity: records already at the name (published by hand
	 * before dance-idm took over) stay, and are part of the set. */
	if (s->n_set == 0 && adopt(m) != 0)
		return -1;
	/* Caches hold the set as it is now for its own TTL, which may be
	 * longer than the one we publish with. */
	if ((old_ttl = current_ttl(m)) < 0)
		return -1;
	if ((r = change_set(m, s->next, 1, &v, rd, &changed)) != 0)
		return r;
	if (!changed) {
		say("%s: the record of key %u is already in the set",
			m->c.name, s->next);
		return -1;
	}
	/* Caches may hold the old set (or a negative answer) for the
	 * larger of its TTL and the SOA's negative TTL. */
	w = v.neg_ttl > m->c.ttl ? v.neg_ttl : m->c.ttl;
	if ((unsigned long)old_ttl > w)
		w = (unsigned long)old_ttl;
	s->wait = 2 * w + m->c.delay;
	s->published_at = (long long)time(NULL);
	printf("%s: published %s (serial %lu)\n", m->c.name, rd, v.serial);
	return set_state(m, ST_PUBLISHED);
}

static int
step_retire(struct idm *m, unsigned old)
{
	char rd[RDATA_MAX];
	struct view v;
	int r, changed = 0;

	if (old != 0 && (r = change_set(m, old, 0, &v, rd, &changed)) != 0)
		return r;
	if (changed)
		printf("%s: retired %s (serial %lu)\n", m->c.name, rd,
			v.serial);
	return set_state(m, ST_RETIRED);
}

/* Start a rollover: a new key, not yet anywhere; or, with a standby
 * key, that key, published long ago (prepub: make a standby key). */
static int
start_roll(struct idm *m, int prepub)
{
	struct state *s = &m->s;
	unsigned id;

	if (!prepub && s->standby != 0) {
		if (m->dry_run) {
			printf("%s: would roll to the standby key %u\n",
				m->c.name, s->standby);
			return 1;
		}
		s->next = s->standby;
		s->visible_at = s->published_at = s->standby_at;
		s->standby = 0;
		s->standby_at = 0;
		s->deploying = 0;
		s->prepub = 0;
		printf("%s: rolling to the standby key %u (published and "
			"visible since before)\n", m->c.name, s->next);
		return set_state(m, ST_VISIBLE);
	}
	if (m->dry_run) {
		printf("%s: would generate a new key and publish its TLSA\n",
			m->c.name);
		return 1;
	}
	if (new_key(m, &id) != 0)
		return -1;
	m->s.next = id;
	m->s.deploying = 0;
	m->s.prepub = prepub;
	m->s.published_at = m->s.visible_at = 0;
	printf("%s: generated %skey %u\n", m->c.name,
		prepub ? "standby " : "", id);
	return set_state(m, ST_NEXT_KEY);
}

/* Renewal that keeps the key: a new certificate, same SPKI, so the
 * 3 1 1 records stay as they are and nothing changes in DNS. */
static int
renew(struct idm *m)
{
	EVP_PKEY *k;
	int rc;

	if (m->dry_run) {
		printf("%s: would renew the certificate of key %u (same key: "
			"no DNS change)\n", m->c.name, m->s.cur);
		return 1;
	}
	m->action = "renew";
	if (m->c.csr_hook != NULL) {
		/* A renewal keeps the key: the device's new CSR must be for
		 * the key of the certificate in use. */
		char path[PATH_MAX];
		X509 *x;

		key_path(m, m->s.cur, "crt", path, sizeof(path));
		if ((x = load_cert(path)) == NULL ||
		    run_hook(m, "csr-hook", m->c.csr_hook, m->s.cur) != 0 ||
		    (k = csr_pubkey(m, m->s.cur)) == NULL) {
			X509_free(x);
			return -1;
		}
		rc = EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1 ? 0 : -1;
		X509_free(x);
		EVP_PKEY_free(k);
		if (rc != 0) {
			say("%s: the device's CSR is for a new key: that is a "
				"rollover ('dance-idm roll'), not a renewal",
				m->c.name);
			return -1;
		}
		rc = make_cert(m, m->s.cur, NULL);
	} else {
		if ((k = load_key(m, m->s.cur)) == NULL)
			return -1;
		rc = make_cert(m, m->s.cur, k);
		EVP_PKEY_free(k);
	}
	if (rc == 0)
		rc = deploy(m, m->s.cur);
	if (rc == 0)
		printf("%s: renewed the certificate of key %u\n", m->c.name,
			m->s.cur);
	return rc;
}

/*
 * One step forward from the current state.  1: a step was taken (call
 * again), 0: nothing to do now, IDM_EXIT_STALLED, or -1 on error.
 */
static int
step(struct idm *m)
{
	struct state *s = &m->s;
	long long now = (long long)time(NULL), due;
	char t[PATH_MAX];
	unsigned old;
	int r;

	switch (s->st) {
	case ST_NONE:
	case ST_REVOKED:
		if (s->st == ST_REVOKED)
			return 0;
		return start_roll(m, 0) < 0 ? -1 : !m->dry_run;
	case ST_STEADY:
		if (m->c.standby && s->standby == 0)
			return start_roll(m, 1) < 0 ? -1 : !m->dry_run;
		if (cert_left(m, s->cur) > (long long)m->c.renew_before * 86400)
			return 0;
		if (m->c.keep_key)
			return renew(m) < 0 ? -1 : 0;
		return start_roll(m, 0) < 0 ? -1 : !m->dry_run;
	case ST_NEXT_KEY:
		r = step_publish(m);
		return r < 0 ? -1 : !m->dry_run;
	case ST_PUBLISHED:
	case ST_STALLED:
		if ((r = visible(m, 1)) < 0)
			return -1;
		if (r == 0) {
			if (m->force)
				goto forced;
			if (now < s->published_at + (long long)m->c.visible_timeout)
				return 0;
			if (s->st != ST_STALLED && !m->dry_run &&
			    set_state(m, ST_STALLED) != 0)
				return -1;
			say("ALERT: %s: the new TLSA record is not visible at "
				"every authoritative server %llu s after "
				"publication; nothing was deployed, the old "
				"key stays in use ('dance-idm rollback %s' "
				"withdraws the new record)", m->c.name,
				(unsigned long long)(now - s->published_at),
				m->c.name);
			return IDM_EXIT_STALLED;
		}
		if (m->dry_run)
			return 0;
		s->visible_at = now;
		printf("%s: visible at every authoritative server and "
			"secure through the validating resolver\n", m->c.name);
		return set_state(m, ST_VISIBLE) == 0 ? 1 : -1;
	case ST_VISIBLE:
		if (s->prepub) {
			if (m->dry_run)
				return 0;
			s->standby = s->next;
			s->standby_at = s->visible_at;
			s->next = 0;
			s->prepub = 0;
			printf("%s: standby key %u published\n", m->c.name,
				s->standby);
			return set_state(m, ST_STEADY) == 0 ? 1 : -1;
		}
		due = s->visible_at + (long long)s->wait;
		if (now < due) {
			if (m->force)
				goto forced;
			fmt_time(due, t, sizeof(t));
			if (!m->quiet)
				printf("%s: waiting for caches until %s\n",
					m->c.name, t);
			return 0;
		}
		if (m->dry_run)
			return 0;
		return set_state(m, ST_PROPAGATED) == 0 ? 1 : -1;
	forced:
		say("WARNING: --force: deploying key %u before its TLSA "
			"record has propagated; servers and resolvers that "
			"cached the old set (up to %lu s) will refuse the new "
			"certificate until it expires", s->next, s->wait);
		/* FALLTHROUGH */
	case ST_PROPAGATED:
		if (m->dry_run) {
			printf("%s: would deploy key %u\n", m->c.name, s->next);
			return 0;
		}
		/* Recorded first: once a deploy was tried, the new key may
		 * be in use and a rollback must not remove its record. */
		s->deploying = 1;
		if (state_save(m) != 0 || deploy(m, s->next) != 0)
			return -1;
		printf("%s: deployed key %u\n", m->c.name, s->next);
		return set_state(m, ST_DEPLOYED) == 0 ? 1 : -1;
	case ST_DEPLOYED:
		r = step_retire(m, s->cur);
		return r < 0 ? -1 : !m->dry_run;
	case ST_RETIRED:
		if ((r = visible(m, 0)) <= 0)
			return r;
		old = s->cur;
		s->cur = s->next;
		s->next = 0;
		s->deploying = 0;
		printf("%s: steady with key %u\n", m->c.name, s->cur);
		if (set_state(m, ST_STEADY) != 0)
			return -1;
		/* No record vouches for the old key any more: its private
		 * half goes (the certificate stays, for the record). */
		if (old != 0 && old != s->cur) {
			key_path(m, old, "key", t, sizeof(t));
			(void)unlink(t);
		}
		return 1;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static int
open_identity(struct idm *m, const char *name, int lock)
{
	char path[PATH_MAX], checked[DANCE_NAME_MAX + 1];

	/* The name becomes file names: only a DNS name will do. */
	if (conf_name("identity", name, checked, 1) != 0)
		return -1;
	if (strcmp(checked, name) != 0) {
		say("identity '%s': write it in lower case, without a final "
			"dot", name);
		return -1;
	}
	if (conf_load(m, name) != 0)
		return -1;
	if (strlen(m->dir) + strlen(m->c.name) + 2 > sizeof(m->base)) {
		say("state directory path too long: %s", m->dir);
		return -1;
	}
	if (snprintf(m->base, sizeof(m->base), "%s/%s", m->dir, m->c.name) <
	    0)
		return -1;
	m->lock_fd = -1;
	if (lock) {
		snprintf(path, sizeof(path), "%s.lock", m->base);
		if ((m->lock_fd = open(path, O_RDWR | O_CREAT, 0600)) < 0) {
			say("cannot open %s: %s", path, strerror(errno));
			return -1;
		}
		if (flock(m->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			say("%s is busy: another dance-idm holds %s",
				m->c.name, path);
			return -1;
		}
	}
	return state_load(m);
}

static void
close_identity(struct idm *m)
{
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
	if (m->resolver != NULL)
		dance_resolver_free(m->resolver);
	m->resolver = NULL;
	free(m->c.buf);
	m->c.buf = NULL;
}

/* Next action and its earliest time, for status. */
static const char *
next_action(struct idm *m, long long *when)
{
	struct state *s = &m->s;

	*when = (long long)time(NULL);
	switch (s->st) {
	case ST_NONE: return "generate the first key";
	case ST_NEXT_KEY: return "publish its TLSA record (UPDATE)";
	case ST_PUBLISHED: return "check visibility at every NS";
	case ST_STALLED: return "check visibility again, or rollback";
	case ST_VISIBLE:
		*when = s->visible_at + (long long)s->wait;
		return "wait for caches (propagated)";
	case ST_PROPAGATED: return "deploy the new key and probe";
	case ST_DEPLOYED: return "remove the old TLSA record (UPDATE)";
	case ST_RETIRED: return "check the removal at every NS";
	case ST_STEADY:
		if (m->c.standby && s->standby == 0)
			return "pre-publish a standby key";
		*when += cert_left(m, s->cur) -
			(long long)m->c.renew_before * 86400;
		return m->c.keep_key ? "renew the certificate (same key)" :
			"roll to a new key";
	case ST_REVOKED: return "none (revoked)";
	}
	return "?";
}

static const char *
allowed(enum st st, int deploying)
{
	switch (st) {
	case ST_NONE: return "run";
	case ST_STEADY: return "run roll renew revoke";
	case ST_NEXT_KEY: case ST_PUBLISHED: case ST_STALLED:
	case ST_VISIBLE:
		return deploying ? "run revoke" :
			"run rollback revoke deploy--force";
	case ST_PROPAGATED:
		return deploying ? "run revoke" :
			"run deploy rollback revoke";
	case ST_DEPLOYED: case ST_RETIRED: return "run revoke";
	case ST_REVOKED: return "roll";
	}
	return "";
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
	putchar('"');
}

static void
status_one(struct idm *m)
{
	struct state *s = &m->s;
	long long when;
	const char *act = next_action(m, &when);
	char since[32], at[32], exp[32];
	size_t i;

	fmt_time(s->since, since, sizeof(since));
	fmt_time(when, at, sizeof(at));
	fmt_time(s->cur ? (long long)time(NULL) + cert_left(m, s->cur) : 0,
		exp, sizeof(exp));
	if (m->json) {
		printf("{\"name\":");
		json_str(m->c.name);
		printf(",\"zone\":");
		json_str(m->c.zone);
		printf(",\"state\":\"%s\",\"since\":%s%s%s,"
			"\"next_action\":", st_names[s->st],
			s->since ? "\"" : "", s->since ? since : "null",
			s->since ? "\"" : "");
		json_str(act);
		printf(",\"next_at\":\"%s\",\"allowed\":\"%s\","
			"\"current_key\":%u,\"next_key\":%u,\"standby_key\":%u,"
			"\"cert_expires\":\"%s\",\"serial\":%lu,"
			"\"deployed_new\":%s,\"tlsa\":[", at,
			allowed(s->st, s->deploying), s->cur, s->next,
			s->standby, exp, s->serial,
			s->deploying ? "true" : "false");
		for (i = 0; i < s->n_set; i++) {
			if (i)
				putchar(',');
			json_str(s->set[i]);
		}
		printf("]}\n");
		return;
	}
	printf("%s (zone %s)\n  state      %s since %s\n"
		"  next       %s, at %s\n  allowed    %s\n"
		"  keys       current %u, next %u, standby %u; certificate "
		"expires %s\n", m->c.name, m->c.zone, st_names[s->st], since,
		act, at, allowed(s->st, s->deploying), s->cur, s->next,
		s->standby, exp);
	for (i = 0; i < s->n_set; i++)
		printf("  tlsa       %s. %lu IN TLSA %s\n", m->c.name,
			m->c.ttl, s->set[i]);
}

static int
cmd_run(struct idm *m, int wait)
{
	int r;

	if (wait < 0) {		/* --step: one action, then stop */
		r = step(m);
		return r < 0 ? TOOL_EXIT_FAIL : r == 1 ? TOOL_EXIT_OK : r;
	}
	for (;;) {
		while ((r = step(m)) == 1)
			m->quiet = 0;
		if (r != 0 || !wait || m->s.st == ST_STEADY ||
		    m->s.st == ST_REVOKED)
			return r < 0 ? TOOL_EXIT_FAIL : r;
		m->quiet = 1;
		sleep(1);
	}
}

/* Deploy the new key now: only once it has propagated, or with
 * --force (then step() says what may break). */
static int
cmd_deploy(struct idm *m)
{
	struct state *s = &m->s;
	long long due = s->visible_at + (long long)s->wait;
	char t[32];
	int r;

	if (s->st != ST_NEXT_KEY && s->st != ST_PUBLISHED &&
	    s->st != ST_STALLED && s->st != ST_VISIBLE &&
	    s->st != ST_PROPAGATED) {
		say("%s is in state %s: no new key to deploy", m->c.name,
			st_names[s->st]);
		return TOOL_EXIT_FAIL;
	}
	if (s->st == ST_NEXT_KEY) {
		say("%s: key %u has no TLSA record yet: 'dance-idm run' "
			"publishes it", m->c.name, s->next);
		return TOOL_EXIT_FAIL;
	}
	if (s->st != ST_PROPAGATED && !m->force &&
	    (s->st != ST_VISIBLE || (long long)time(NULL) < due)) {
		fmt_time(due, t, sizeof(t));
		say("refused: the TLSA record of key %u has not propagated "
			"(state %s%s%s); servers that cached the old set would "
			"refuse the new certificate. Wait, or --force",
			s->next, st_names[s->st], s->st == ST_VISIBLE ?
			", caches expire at " : "",
			s->st == ST_VISIBLE ? t : "");
		return TOOL_EXIT_FAIL;
	}
	while ((r = step(m)) == 1 && s->st != ST_DEPLOYED)
		;
	return r < 0 ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
}

static int
cmd_roll(struct idm *m)
{
	if (m->s.st != ST_STEADY && m->s.st != ST_REVOKED &&
	    m->s.st != ST_NONE) {
		say("%s is in state %s: a rollover is already under way",
			m->c.name, st_names[m->s.st]);
		return TOOL_EXIT_FAIL;
	}
	if (m->s.st == ST_REVOKED)
		m->s.cur = 0;
	return start_roll(m, 0) < 0 ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
}

static int
cmd_rollback(struct idm *m)
{
	struct state *s = &m->s;
	char rd[RDATA_MAX], path[PATH_MAX];
	struct view v;
	int r, changed;

	if (s->deploying || s->st == ST_DEPLOYED || s->st == ST_RETIRED) {
		say("%s: key %u may already be in use (a deploy was "
			"started): its TLSA record stays; finish with "
			"'dance-idm run'", m->c.name, s->next);
		return TOOL_EXIT_FAIL;
	}
	if ((s->st < ST_NEXT_KEY || s->st > ST_PROPAGATED) &&
	    s->st != ST_STALLED) {
		say("%s is in state %s: nothing to roll back", m->c.name,
			st_names[s->st]);
		return TOOL_EXIT_FAIL;
	}
	if ((r = change_set(m, s->next, 0, &v, rd, &changed)) != 0)
		return r < 0 ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
	printf("%s: rolled back key %u\n", m->c.name, s->next);
	key_path(m, s->next, "key", path, sizeof(path));
	(void)unlink(path);	/* never used, never to be */
	s->next = 0;
	s->prepub = 0;
	return set_state(m, s->cur ? ST_STEADY : ST_NONE) == 0 ?
		TOOL_EXIT_OK : TOOL_EXIT_FAIL;
}

static int
cmd_revoke(struct idm *m)
{
	struct state *s = &m->s;
	char none[1][RDATA_MAX], t[32];
	struct view v;
	unsigned long w;
	int r;

	if (s->n_set > 0) {
		if ((r = dns_update(m, s->set, s->n_set, none, 0, &v)) != 0)
			return r < 0 ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
		s->serial = v.serial;
		s->n_set = 0;
	}
	s->next = 0;
	s->deploying = 0;
	s->standby = 0;
	s->prepub = 0;
	if (set_state(m, ST_REVOKED) != 0)
		return TOOL_EXIT_FAIL;
	/* A validating resolver may keep the set for its TTL, and a
	 * server's DANCE cache a copy for what remained of it: 2 x TTL. */
	w = 2 * m->c.ttl + m->c.delay;
	fmt_time((long long)time(NULL) + (long long)w, t, sizeof(t));
	printf("%s: revoked; effective by %s (TTL %lu s at the resolvers "
		"+ up to %lu s in servers' caches + delay %lu s)\n",
		m->c.name, t, m->c.ttl, m->c.ttl, m->c.delay);
	return TOOL_EXIT_OK;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: dance-idm [-d STATEDIR] COMMAND [NAME] [options]\n"
"\n"
"Keeps DANCE identities (TLSA owner name, keys, certificates) and rolls\n"
"them so that the certificate in use always matches a published TLSA\n"
"record (RFC 7671 section 8).  Each identity is configured in\n"
"STATEDIR/NAME.conf (see README.md, \"Managing identities\").\n"
"\n"
"Commands:\n"
"  status [NAME] [--json]   state, since when, next action and when\n"
"  run [NAME]               do whatever is due (cron); exit 0 when done\n"
"                           or waiting, 3 when stalled, 1 on error\n"
"      --dry-run            print the nsupdate script instead\n"
"      --force              deploy before propagation (says what breaks)\n"
"      --wait               keep going until steady (or stalled)\n"
"      --step               one action only (to walk through a roll)\n"
"  roll NAME                start a key rollover (then run)\n"
"  deploy NAME [--force]    deploy the new key now; refused before its\n"
"                           record has propagated, unless --force\n"
"  renew NAME               new certificate for the same key, deploy\n"
"  rollback NAME            withdraw a new key that was never deployed\n"
"  revoke NAME              remove every TLSA record of NAME\n"
"\n"
"  -d, --state-dir DIR      state directory (default /var/lib/dance-idm)\n");
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Identity names of the state dir: every NAME.conf. */
static int
each_identity(const char *dir, char names[][DANCE_NAME_MAX + 1],
	size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, l;

	if (d == NULL) {
		say("cannot open %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		l = strlen(e->d_name);
		if (l > 5 && l - 5 <= DANCE_NAME_MAX &&
		    strcmp(e->d_name + l - 5, ".conf") == 0) {
			if (n == max) {
				say("%s: more than %zu identities; the rest "
					"is left out", dir, max);
				break;
			}
			memcpy(names[n], e->d_name, l - 5);
			names[n++][l - 5] = '\0';
		}
	}
	closedir(d);
	/* The same order every time (status output, cron logs). */
	qsort(names, n, sizeof(*names), cmp_name);
	return (int)n;
}

int
main(int argc, char **argv)
{
	static char names[IDM_MAX][DANCE_NAME_MAX + 1];
	struct idm m;
	const char *cmd = NULL, *name = NULL, *v;
	int i, n, r, rc = TOOL_EXIT_OK, wait = 0;

	memset(&m, 0, sizeof(m));
	m.dir = "/var/lib/dance-idm";
	/* Progress and alerts in order, also in a cron mail or a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return TOOL_EXIT_OK;
		}
		if ((r = tool_opt_value(argc, argv, &i, "--state-dir",
		    &v)) != 0 || (r = tool_opt_value(argc, argv, &i, "-d",
		    &v)) != 0) {
			if (r < 0)
				return tool_usage_err(PROG, "%s needs a value",
					"--state-dir");
			m.dir = v;
		} else if (strcmp(argv[i], "--json") == 0)
			m.json = 1;
		else if (strcmp(argv[i], "--dry-run") == 0)
			m.dry_run = 1;
		else if (strcmp(argv[i], "--force") == 0)
			m.force = 1;
		else if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (strcmp(argv[i], "--step") == 0)
			wait = -1;
		else if (argv[i][0] == '-')
			return tool_usage_err(PROG, "unknown option %s",
				argv[i]);
		else if (cmd == NULL)
			cmd = argv[i];
		else if (name == NULL)
			name = argv[i];
		else
			return tool_usage_err(PROG, "unexpected argument %s",
				argv[i]);
	}
	if (cmd == NULL) {
		usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	if (strcmp(cmd, "status") != 0 && strcmp(cmd, "run") != 0 &&
	    strcmp(cmd, "roll") != 0 && strcmp(cmd, "renew") != 0 &&
	    strcmp(cmd, "rollback") != 0 && strcmp(cmd, "revoke") != 0 &&
	    strcmp(cmd, "deploy") != 0)
		return tool_usage_err(PROG, "unknown command %s", cmd);
	if (name == NULL && strcmp(cmd, "status") != 0 &&
	    strcmp(cmd, "run") != 0)
		return tool_usage_err(PROG, "%s needs an identity NAME", cmd);
	if (name != NULL) {
		snprintf(names[0], sizeof(names[0]), "%s", name);
		n = 1;
	} else if ((n = each_identity(m.dir, names, IDM_MAX)) < 0)
		return TOOL_EXIT_FAIL;
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < n; i++) {
		int lock = strcmp(cmd, "status") != 0;

		if (open_identity(&m, names[i], lock) != 0) {
			close_identity(&m);
			rc = TOOL_EXIT_FAIL;
			continue;
		}
		if (strcmp(cmd, "status") == 0) {
			status_one(&m);
			r = TOOL_EXIT_OK;
		} else if (strcmp(cmd, "run") == 0)
			r = cmd_run(&m, wait);
		else if (strcmp(cmd, "roll") == 0)
			r = cmd_roll(&m);
		else if (strcmp(cmd, "renew") == 0)
			r = m.s.st == ST_STEADY ? (renew(&m) < 0 ?
				TOOL_EXIT_FAIL : TOOL_EXIT_OK) :
				(say("%s: renew needs state steady (now %s)",
				m.c.name, st_names[m.s.st]), TOOL_EXIT_FAIL);
		else if (strcmp(cmd, "rollback") == 0)
			r = cmd_rollback(&m);
		else if (strcmp(cmd, "deploy") == 0)
			r = cmd_deploy(&m);
		else
			r = cmd_revoke(&m);
		close_identity(&m);
		if (r != TOOL_EXIT_OK && rc != TOOL_EXIT_FAIL)
			rc = r;
	}
	return rc;
}
