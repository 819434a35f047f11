/*
 * dance-check -- would a DANCE server authenticate this client?
 *
 *   dance-check [options] NAME CERT [CHAIN]
 *
 * Runs the server's pipeline step by step and says what happened at
 * each: name syntax, allow-list, DNSSEC-validated TLSA lookup, OpenSSL
 * DANE match, verdict.  The lookup is the bounded blocking call of a
 * threaded resolver (dance_resolve_wait), as threaded hosts use it.
 * Exit: 0 authenticated, 1 not authenticated, 2 usage or file error.
 */
#include "tool_util.h"

#define ALLOW_MAX 64

struct opts {
	struct tool_resolver_opts res;
	const char *allow[ALLOW_MAX];
	size_t n_allow;
	const char *ca_file;
	const char *name;
	const char *cert;
	const char *chain;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: dance-check [options] NAME CERT [CHAIN]\n"
"\n"
"Checks whether a DANCE server would authenticate the client NAME\n"
"presenting the certificate CERT (PEM; more certificates in CERT or in\n"
"CHAIN are sent as its chain).\n"
"\n"
"  --allow ENTRY        allow-list entry (repeatable; name, .subtree,\n"
"                       *.below, ~regex); default: exactly NAME\n"
"  --ca-file FILE       CA certificates for PKIX-TA/PKIX-EE (0, 1)\n"
"  --help               this text\n");
	tool_resolver_usage(f);
	fprintf(f, "\nExit status: 0 authenticated, 1 not, 2 usage error.\n");
}

static const char *
usage_name(int u)
{
	static const char *const n[] = { "PKIX-TA", "PKIX-EE", "DANE-TA",
		"DANE-EE" };

	return u >= 0 && u <= 3 ? n[u] : "?";
}

/* 0 ok, else an exit code. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
	struct dance_error e;
	const char *pos[3];
	const char *v;
	int i, r, npos = 0;

	memset(o, 0, sizeof(*o));
	tool_resolver_opts_init(&o->res);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			exit(TOOL_EXIT_OK);
		}
		if ((r = tool_resolver_opt(&o->res, argc, argv, &i, &e)) != 0) {
			if (r > 0)
				continue;
			fprintf(stderr, "dance-check: %s\n", e.reason);
			return TOOL_EXIT_USAGE;
		}
		if ((r = tool_opt_value(argc, argv, &i, "--allow", &v)) > 0) {
			if (o->n_allow == ALLOW_MAX) {
				fprintf(stderr, "dance-check: too many "
					"--allow entries (max %d)\n",
					ALLOW_MAX);
				return TOOL_EXIT_USAGE;
			}
			o->allow[o->n_allow++] = v;
			continue;
		}
		if (r == 0 && (r = tool_opt_value(argc, argv, &i,
		    "--ca-file", &v)) > 0) {
			o->ca_file = v;
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "dance-check: %s needs a value\n",
				argv[i]);
			return TOOL_EXIT_USAGE;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "dance-check: unknown option %s\n",
				argv[i]);
			return TOOL_EXIT_USAGE;
		}
		if (npos == 3) {
			fprintf(stderr, "dance-check: too many arguments\n");
			return TOOL_EXIT_USAGE;
		}
		pos[npos++] = argv[i];
	}
	if (npos < 2) {
		usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	o->name = pos[0];
	o->cert = pos[1];
	o->chain = npos == 3 ? pos[2] : NULL;
	return 0;
}

/* Allow-list from --allow entries; NULL on a bad entry. */
static struct dance_policy *
make_policy(const struct opts *o)
{
	struct dance_policy *p = dance_policy_new();
	struct dance_error e;
	size_t i;

	if (p == NULL) {
		fprintf(stderr, "dance-check: out of memory\n");
		return NULL;
	}
	for (i = 0; i < o->n_allow; i++) {
		if (dance_policy_add(p, o->allow[i], &e) != DANCE_OK) {
			fprintf(stderr, "dance-check: --allow %s: %s\n",
				o->allow[i], e.reason);
			dance_policy_free(p);
			return NULL;
		}
	}
	return p;
}

static void
print_answer(const struct dance_answer *a)
{
	char buf[200];
	size_t i;

	printf("dns: %s", dance_dns_status_str(dance_answer_status(a)));
	if (dance_answer_why(a)[0] != '\0')
		printf(" (%s)", dance_answer_why(a));
	printf(", ttl %u, %zu record%s%s\n", (unsigned)dance_answer_ttl(a),
		dance_answer_count(a), dance_answer_count(a) == 1 ? "" : "s",
		dance_answer_from_cache(a) ? ", from cache" : "");
	for (i = 0; i < dance_answer_count(a); i++)
		printf("  %s. IN TLSA %s\n", dance_answer_name(a),
			tool_tlsa_str(dance_answer_record(a, i), buf,
			sizeof(buf)));
}

struct check {
	struct opts o;
	X509 *leaf;
	STACK_OF(X509) *chain;
	struct dance_matcher *m;
	struct dance_resolver *r;
	struct dance_policy *p;
	char name[DANCE_NAME_MAX + 1];
};

static int
not_authenticated(enum dance_code code, const char *reason)
{
	printf("verdict: NOT authenticated: %s: %s\n", dance_code_str(code),
		reason);
	return TOOL_EXIT_FAIL;
}

/* The server's pipeline, step by step; exit code. */
static int
run_check(struct check *c)
{
	struct dance_match_result res;
	struct dance_answer *a;
	struct dance_error e;
	int rc;

	printf("certificate: %s, %d more in the chain\n", c->o.cert,
		sk_X509_num(c->chain));
	if (dance_name_check(c->o.name, strlen(c->o.name), 0, c->name, &e)
	    != DANCE_OK) {
		printf("name: invalid: %s\n", e.reason);
		return not_authenticated(e.code, e.reason);
	}
	printf("name: %s, syntax ok\n", c->name);
	if (c->o.n_allow == 0) {
		printf("allow-list: no --allow given, allowing exactly %s\n",
			c->name);
		if (dance_policy_add(c->p, c->name, &e) != DANCE_OK)
			return not_authenticated(e.code, e.reason);
	} else {
		printf("allow-list: %zu entr%s\n", c->o.n_allow,
			c->o.n_allow == 1 ? "y" : "ies");
	}
	if (dance_policy_check(c->p, c->name, &e) != DANCE_OK) {
		printf("allowed: no: %s\n", e.reason);
		printf("dns: not queried (refused before any lookup)\n");
		return not_authenticated(e.code, e.reason);
	}
	printf("allowed: yes\n");
	a = dance_resolve_wait(c->r, c->name);
	print_answer(a);
	rc = dance_match(c->m, a, c->leaf, c->chain, &res);
	dance_answer_unref(a);
	if (rc == DANCE_ERR_DNS) {
		printf("match: not tried, no secure TLSA set\n");
		return not_authenticated((enum dance_code)rc, res.reason);
	}
	if (rc != DANCE_OK) {
		printf("match: failed: %s\n", res.reason);
		return not_authenticated((enum dance_code)rc, res.reason);
	}
	printf("match: ok, TLSA usage %d (%s), depth %d\n", res.usage,
		usage_name(res.usage), res.depth);
	printf("verdict: AUTHENTICATED as %s (%s)\n", c->name,
		usage_name(res.usage));
	return TOOL_EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct check c;
	struct dance_error e;
	int rc;

	memset(&c, 0, sizeof(c));
	if ((rc = parse_args(argc, argv, &c.o)) != 0)
		return rc;
	/* Everything that can be a usage error before any step runs. */
	rc = TOOL_EXIT_USAGE;
	if (tool_load_cert_chain(c.o.cert, c.o.chain, &c.leaf, &c.chain, &e)
	    != DANCE_OK)
		fprintf(stderr, "dance-check: %s\n", e.reason);
	else if ((c.m = dance_matcher_new(c.o.ca_file, &e)) == NULL)
		fprintf(stderr, "dance-check: %s\n", e.reason);
	else if ((c.p = make_policy(&c.o)) == NULL)
		;	/* reported */
	else if ((c.r = tool_resolver_new(&c.o.res, DANCE_RESOLVER_THREADED,
	    &e)) == NULL)
		fprintf(stderr, "dance-check: resolver: %s\n", e.reason);
	else
		rc = run_check(&c);
	dance_resolver_free(c.r);
	dance_policy_free(c.p);
	dance_matcher_free(c.m);
	X509_free(c.leaf);
	sk_X509_pop_free(c.chain, X509_free);
	return rc;
}
