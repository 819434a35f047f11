/*
 * policy.c -- the ClientName allow-list (dance_policy).
 *
 * Exact names and subtree suffixes live in one open-addressing hash set
 * keyed by the lower-cased name; each key carries flags saying which
 * entry forms were added for it.  A check probes the set once per label
 * of the client name (the name itself, then each parent), so its cost
 * depends on the name, not on the size of the list.
 *
 * The hash is FNV-1a over the octets taken from the END of the name
 * towards its start.  A parent name is a suffix of its child, so while
 * walking from the last label to the first, the hash of each longer
 * suffix extends the previous one: hashing all suffixes costs one pass.
 *
 * Each key is stored as "*.key", so the three entry forms of a key are
 * ready-made strings inside one allocation ("*.key", ".key", "key"):
 * dance_policy_match() hands out pointers to them, stable for the life
 * of the policy (a table resize moves slots, not the strings).
 *
 * Regular expressions are compiled (and JIT-compiled when available)
 * once at add time.  The client chooses its name before any
 * authentication, inside the handshake, so a regex's cost is bounded:
 * a match limit and a depth limit sized for a 253-octet name stop a
 * backtracking pattern within microseconds (PCRE2's default allows 10
 * million steps, 18 ms for one 82-octet name), and patterns that could
 * never do what their author meant are refused: not anchored at both
 * ends, or with an upper-case letter (names are lower-cased first).  The compiled code is only read by pcre2_match(), so
 * a filled policy can be shared by threads; the match data, which
 * pcre2_match() writes, is allocated per check.
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "dance_int.h"

#define F_EXACT		0x1u	/* "name": the name itself */
#define F_SUBTREE	0x2u	/* ".name": the name and all below */
#define F_BELOW		0x4u	/* "*.name": strictly below the name */

#define HSET_MIN	16

/* A sane pattern needs a few steps per octet of a <= 253-octet name. */
#define REGEX_MATCH_LIMIT	20000
#define REGEX_DEPTH_LIMIT	1000
#define SHOW_MAX	80	/* entry octets quoted in reasons */

struct hslot {
	char *buf;		/* "*." followed by key (one allocation) */
	char *key;		/* buf + 2: lower-cased; NULL = free */
	size_t len;
	uint32_t hash;
	unsigned flags;
};

struct hset {
	struct hslot *slot;
	size_t cap;		/* power of two, or 0 */
	size_t used;
};

struct regex {
	char *entry;		/* "~pattern", as added */
	pcre2_code *code;
};

struct dance_policy {
	struct hset names;
	struct regex *re;
	size_t nre, re_cap;
	pcre2_match_context *mctx;	/* the limits; read-only in matches */
	size_t count;		/* distinct entries added */
};

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* One step of FNV-1a (32 bit) on a lower-cased octet. */
static uint32_t
fnv_step(uint32_t h, char c)
{
	return (h ^ (unsigned char)lower(c)) * 16777619u;
}

#define FNV_INIT 2166136261u

/* Hash of s[0..len), consumed from the end (see the file comment). */
static uint32_t
name_hash(const char *s, size_t len)
{
	uint32_t h = FNV_INIT;

	while (len > 0)
		h = fnv_step(h, s[--len]);
	return h;
}

static int
key_eq(const struct hslot *sl, const char *s, size_t len, uint32_t h)
{
	size_t i;

	if (sl->hash != h || sl->len != len)
		return 0;
	for (i = 0; i < len; i++) {
		if (sl->key[i] != lower(s[i]))
			return 0;
	}
	return 1;
}

/* The slot holding s, or the free slot where it would go. */
static struct hslot *
hset_slot(const struct hset *hs, const char *s, size_t len, uint32_t h)
{
	size_t mask = hs->cap - 1, i = h & mask;

	/* Linear probing; the load factor stays <= 1/2, so a free slot
	 * always exists and probe runs stay short. */
	while (hs->slot[i].key != NULL && !key_eq(&hs->slot[i], s, len, h))
		i = (i + 1) & mask;
	return &hs->slot[i];
}

/* The slot holding s, or NULL. */
static const struct hslot *
hset_find(const struct hset *hs, const char *s, size_t len, uint32_t h)
{
	const struct hslot *sl;

	if (hs->cap == 0)
		return NULL;
	sl = hset_slot(hs, s, len, h);
	return sl->key != NULL ? sl : NULL;
}

static int
hset_grow(struct hset *hs)
{
	struct hset n;
	size_t i;

	n.cap = hs->cap == 0 ? HSET_MIN : hs->cap * 2;
	n.used = hs->used;
	if ((n.slot = calloc(n.cap, sizeof(*n.slot))) == NULL)
		return -1;
	for (i = 0; i < hs->cap; i++) {
		struct hslot *o = &hs->slot[i];

		if (o->key != NULL)
			*hset_slot(&n, o->key, o->len, o->hash) = *o;
	}
	free(hs->slot);
	*hs = n;
	return 0;
}

/* Set flag on name (lower-cased); 1 when newly set, 0 when it already
 * was, -1 on memory failure. */
static int
hset_add(struct hset *hs, const char *name, unsigned flag)
{
	size_t len = strlen(name);
	uint32_t h = name_hash(name, len);
	struct hslot *sl;

	if ((hs->used + 1) * 2 > hs->cap && hset_grow(hs) != 0)
		return -1;
	sl = hset_slot(hs, name, len, h);
	if (sl->key == NULL) {
		if ((sl->buf = malloc(len + 3)) == NULL)
			return -1;
		sl->buf[0] = '*';
		sl->buf[1] = '.';
		memcpy(sl->buf + 2, name, len + 1);
		sl->key = sl->buf + 2;
		sl->len = len;
		sl->hash = h;
		sl->flags = 0;
		hs->used++;
	}
	if (sl->flags & flag)
		return 0;
	sl->flags |= flag;
	return 1;
}

static void
hset_clear(struct hset *hs)
{
	size_t i;

	for (i = 0; i < hs->cap; i++)
		free(hs->slot[i].buf);
	free(hs->slot);
	hs->slot = NULL;
	hs->cap = hs->used = 0;
}

/* Printable, bounded copy of untrusted text for a reason string. */
static const char *
show(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < size && i < SHOW_MAX; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && i >= 3) {
		buf[i - 3] = buf[i - 2] = buf[i - 1] = '.';
	}
	buf[i] = '\0';
	return buf;
}

struct dance_policy *
dance_policy_new(void)
{
	return calloc(1, sizeof(struct dance_policy));
}

void
dance_policy_free(struct dance_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	hset_clear(&p->names);
	for (i = 0; i < p->nre; i++) {
		pcre2_code_free(p->re[i].code);
		free(p->re[i].entry);
	}
	free(p->re);
	pcre2_match_context_free(p->mctx);
	free(p);
}

/* Is c escaped, i.e. preceded by an odd number of backslashes? */
static int
escaped(const char *pat, size_t at)
{
	size_t n = 0;

	while (at > n && pat[at - n - 1] == '\\')
		n++;
	return n % 2;
}

/* Anchored at both ends as written: PCRE2 knows whether every branch
 * starts with ^ (or \A); the end is read from the text: an unescaped
 * '$', or \z / \Z. */
static int
regex_anchored(const pcre2_code *code, const char *pat)
{
	size_t n = strlen(pat);
	uint32_t opts;

	if (pcre2_pattern_info(code, PCRE2_INFO_ALLOPTIONS, &opts) != 0 ||
	    (opts & PCRE2_ANCHORED) == 0)
		return 0;
	if (pat[n - 1] == '$' && !escaped(pat, n - 1))
		return 1;
	return n >= 2 && (pat[n - 1] == 'z' || pat[n - 1] == 'Z') &&
		pat[n - 2] == '\\' && !escaped(pat, n - 2);
}

/* Index of the first of stop at or after i, or of the last octet. */
static size_t
skip_to(const char *pat, size_t i, const char *stop)
{
	size_t n = i + strcspn(pat + i, stop);

	return pat[n] != '\0' ? n : n - 1;
}

/*
 * Offset of an upper-case letter that the pattern would match as a
 * literal (it can never match: names are lower-cased), or -1.  Escapes
 * (\A \D \S \W \p{Lu} \x{41} \k<Name> ...), group names ((?<Name>,
 * (?P<Name>, (?'Name', (?&Name), (?P=Name)), callouts and verbs
 * ((*UTF)) are not literals.  Caseless patterns ((?i) at the start) are
 * fine.
 */
static long
regex_upper(const pcre2_code *code, const char *pat)
{
	uint32_t opts;
	size_t i;
	int in_q = 0;

	if (pcre2_pattern_info(code, PCRE2_INFO_ALLOPTIONS, &opts) == 0 &&
	    (opts & PCRE2_CASELESS) != 0)
		return -1;
	/* (?i) at the start: newer PCRE2s no longer report it as an
	 * option of the whole pattern */
	if (pat[0] == '(' && pat[1] == '?' && (i = strspn(pat + 2,
	    "imnsxJU")) > 0 && pat[2 + i] == ')' && memchr(pat + 2, 'i', i))
		return -1;
	for (i = 0; pat[i] != '\0'; i++) {
		char c = pat[i], d = pat[i + 1];

		if (in_q) {		/* \Q...\E: all literal */
			if (c == '\\' && d == 'E')
				in_q = 0, i++;
			else if (c >= 'A' && c <= 'Z')
				return (long)i;
		} else if (c == '\\') {
			if (d == '\0')
				break;
			i++;
			if (d == 'Q')
				in_q = 1;
			else if (strchr("pPxkgNo", d) != NULL && pat[i + 1] != '\0'
			    && strchr("{<'", pat[i + 1]) != NULL)
				i = skip_to(pat, i + 2, pat[i + 1] == '{' ? "}" :
					pat[i + 1] == '<' ? ">" : "'");
		} else if (c == '(' && d == '*') {
			i = skip_to(pat, i, ")");
		} else if (c == '(' && d == '?' && pat[i + 2] != '\0' &&
		    strchr("<P'&C", pat[i + 2]) != NULL &&
		    !(pat[i + 2] == '<' && (pat[i + 3] == '=' ||
		    pat[i + 3] == '!'))) {
			i = skip_to(pat, i + 3, pat[i + 2] == '\'' ? "'" : ">)");
		} else if (c >= 'A' && c <= 'Z') {
			return (long)i;
		}
	}
	return -1;
}

static int
add_regex(struct dance_policy *p, const char *entry, struct dance_error *err)
{
	const char *pat = entry + 1;
	char show_buf[SHOW_MAX + 1];
	PCRE2_UCHAR msg[128];
	PCRE2_SIZE off;
	pcre2_code *code;
	struct regex *re;
	size_t i;
	int ec;

	if (*pat == '\0')
		return dance_err_set(err, DANCE_ERR_CONFIG, "allow-list entry "
			"'~': empty regular expression");
	for (i = 0; i < p->nre; i++) {
		if (strcmp(p->re[i].entry, entry) == 0)
			return DANCE_OK;	/* duplicate: idempotent */
	}
	/* ENDANCHORED: even "^a|^b$" must match the whole name. */
	code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
		PCRE2_ENDANCHORED, &ec, &off, NULL);
	if (code == NULL) {
		if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "unknown PCRE2 error");
		return dance_err_set(err, DANCE_ERR_CONFIG, "allow-list entry "
			"'%s': bad regular expression: %s at offset %zu",
			show(entry, show_buf, sizeof(show_buf)), (char *)msg,
			(size_t)off);
	}
	if (!regex_anchored(code, pat)) {
		pcre2_code_free(code);
		return dance_err_set(err, DANCE_ERR_CONFIG, "allow-list entry "
			"'%s': the regular expression must be anchored at both "
			"ends (^...$): it is matched against the whole name",
			show(entry, show_buf, sizeof(show_buf)));
	}
	if ((ec = (int)regex_upper(code, pat)) >= 0) {
		pcre2_code_free(code);
		return dance_err_set(err, DANCE_ERR_CONFIG, "allow-list entry "
			"'%s': upper-case '%c' at offset %d can never match: "
			"names are lower-cased before matching (write it in "
			"lower case, or start with (?i))",
			show(entry, show_buf, sizeof(show_buf)), pat[ec], ec);
	}
	if (p->mctx == NULL) {
		if ((p->mctx = pcre2_match_context_create(NULL)) == NULL)
			goto nomem;
		(void)pcre2_set_match_limit(p->mctx, REGEX_MATCH_LIMIT);
		(void)pcre2_set_depth_limit(p->mctx, REGEX_DEPTH_LIMIT);
	}
	/* JIT is only an optimisation; the interpreter is the fallback. */
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);

	if (p->nre == p->re_cap) {
		size_t ncap = p->re_cap == 0 ? 4 : p->re_cap * 2;

		if ((re = realloc(p->re, ncap * sizeof(*re))) == NULL)
			goto nomem;
		p->re = re;
		p->re_cap = ncap;
	}
	re = &p->re[p->nre];
	if ((re->entry = strdup(entry)) == NULL)
		goto nomem;
	re->code = code;
	p->nre++;
	p->count++;
	return DANCE_OK;
nomem:
	pcre2_code_free(code);
	return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
}

/*
 * Split a name entry into the name to store and its flag.  The whole
 * entry goes through dance_name_check() with allow_wildcard, which
 * accepts '*' only as the leftmost label with a parent and explains any
 * other '*'; so "*.name" is the only wildcard form that gets through.
 */
static int
parse_name_entry(const char *entry, char *key, unsigned *flag,
	struct dance_error *err)
{
	const char *name = entry;
	size_t skip = 0;
	int rc;

	if (entry[0] == '.') {
		if (entry[1] == '*')
			return dance_err_set(err, DANCE_ERR_NAME, "'.*' is not "
				"an entry form: use '*.name' (strictly below "
				"name) or '.name' (name and below)");
		*flag = F_SUBTREE;
		name = entry + 1;
	} else if (entry[0] == '*' && entry[1] == '.') {
		*flag = F_BELOW;
		skip = 2;
	} else {
		*flag = F_EXACT;
	}
	rc = dance_name_check(name, strlen(name), 1, key, err);
	if (rc == DANCE_OK && skip > 0)
		memmove(key, key + skip, strlen(key + skip) + 1);
	return rc;
}

int
dance_policy_add(struct dance_policy *p, const char *entry,
	struct dance_error *err)
{
	char key[DANCE_NAME_MAX + 1], show_buf[SHOW_MAX + 1];
	struct dance_error nerr;
	unsigned flag = F_EXACT;
	int rc;

	if (p == NULL || entry == NULL)
		return dance_err_set(err, DANCE_ERR_CONFIG, "no policy or "
			"entry");
	if (entry[0] == '\0')
		return dance_err_set(err, DANCE_ERR_CONFIG, "empty allow-list "
			"entry");
	if (entry[0] == '~')
		return add_regex(p, entry, err);

	if (parse_name_entry(entry, key, &flag, &nerr) != DANCE_OK)
		return dance_err_set(err, DANCE_ERR_CONFIG, "allow-list entry "
			"'%s': %s", show(entry, show_buf, sizeof(show_buf)),
			nerr.reason);
	if ((rc = hset_add(&p->names, key, flag)) < 0)
		return dance_err_set(err, DANCE_ERR_NOMEM, "out of memory");
	p->count += (size_t)rc;
	return DANCE_OK;
}

size_t
dance_policy_count(const struct dance_policy *p)
{
	return p == NULL ? 0 : p->count;
}

/*
 * The entry text of the closest hash entry allowing name, or NULL.
 * Probes each whole suffix once, from the top-level label down: a proper
 * parent matches "*.parent" and ".parent"; the name itself matches
 * "name" and ".name".  A later (longer) suffix is closer, so it replaces
 * an earlier match; at the name itself an exact entry wins.  With both
 * "*.parent" and ".parent" listed, the narrower "*.parent" is reported.
 */
static const char *
hash_match(const struct hset *hs, const char *name, size_t len)
{
	const struct hslot *sl;
	const char *best = NULL;
	uint32_t h = FNV_INIT;
	size_t i = len;

	if (hs->used == 0)
		return NULL;
	while (i > 0) {
		h = fnv_step(h, name[--i]);
		if (i > 0 && name[i - 1] != '.')
			continue;
		/* name[i..len) is a whole suffix: a parent or the name. */
		if ((sl = hset_find(hs, name + i, len - i, h)) == NULL)
			continue;
		if (i > 0) {
			if (sl->flags & F_BELOW)
				best = sl->buf;
			else if (sl->flags & F_SUBTREE)
				best = sl->buf + 1;
		} else if (sl->flags & F_EXACT) {
			return sl->key;
		} else if (sl->flags & F_SUBTREE) {
			return sl->buf + 1;
		}
	}
	return best;
}

/* The entry of the first regex that matches, or NULL; errors other than
 * "no match" count as no match (fail closed) and are reported in *why. */
static const char *
regex_match(const struct dance_policy *p, const char *name, size_t len,
	const char **why)
{
	char low[DANCE_NAME_MAX + 1];
	pcre2_match_data *md;
	const char *found = NULL;
	size_t i;
	int rc;

	for (i = 0; i < len; i++)
		low[i] = lower(name[i]);
	low[len] = '\0';
	/* One ovector pair: only "did it match" matters.  Per call, so
	 * concurrent checks never share writable state. */
	if ((md = pcre2_match_data_create(1, NULL)) == NULL) {
		*why = " (out of memory for regex matching)";
		return NULL;
	}
	for (i = 0; i < p->nre && found == NULL; i++) {
		rc = pcre2_match(p->re[i].code, (PCRE2_SPTR)low, len, 0, 0,
			md, p->mctx);
		if (rc >= 0)
			found = p->re[i].entry;
		else if (rc == PCRE2_ERROR_MATCHLIMIT ||
		    rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
			*why = " (a regex hit its match limit)";
		else if (rc != PCRE2_ERROR_NOMATCH)
			*why = " (a regex failed to run)";
	}
	pcre2_match_data_free(md);
	return found;
}

int
dance_policy_match(const struct dance_policy *p, const char *name,
	const char **entry, struct dance_error *err)
{
	struct dance_error nerr;
	const char *why = "", *found = NULL;
	size_t len;

	if (entry != NULL)
		*entry = NULL;
	if (p == NULL || name == NULL)
		return dance_err_set(err, DANCE_ERR_NOT_ALLOWED, "no policy "
			"or no name");
	/* Cheap (linear in the name) and makes the check safe for
	 * unchecked input: a literal "*" label can never match. */
	len = strnlen(name, DANCE_NAME_MAX + 1);
	if (dance_name_check(name, len, 0, NULL, &nerr) != DANCE_OK)
		return dance_err_set(err, DANCE_ERR_NOT_ALLOWED, "invalid "
			"name: %s", nerr.reason);
	found = hash_match(&p->names, name, len);
	if (found == NULL && p->nre > 0)
		found = regex_match(p, name, len, &why);
	if (found == NULL)
		return dance_err_set(err, DANCE_ERR_NOT_ALLOWED, "name '%s' "
			"is not in the allow-list%s%s", name, p->count == 0 ?
			" (the allow-list is empty)" : "", why);
	if (entry != NULL)
		*entry = found;
	return DANCE_OK;
}

int
dance_policy_check(const struct dance_policy *p, const char *name,
	struct dance_error *err)
{
	return dance_policy_match(p, name, NULL, err);
}
