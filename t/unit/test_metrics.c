/*
 * test_metrics.c -- the metric set (metrics.c): what real handshakes
 * through the DANCE glue count (verdicts, usages, reasons, allow-list
 * and cap refusals, cache requests, parked clients), what the
 * resolver's counters add, the Prometheus text and the log line.
 * Reuses test_match.c's fixtures (certificates, in-memory handshakes,
 * cache-only resolver): its main is renamed, its tests not run here.
 */
#define main test_match_main
#include "test_match.c"
#undef main

#include "metrics_int.h"

static double
mget(const struct dance_metrics *m, const char *name, const char *label)
{
	return dance_metrics_get(m, name, label);
}

static void
test_metrics_memory(void **state)
{
	uint64_t mem[1024];
	struct dance_metrics *m;
	char buf[64];
	size_t need;

	assert_true(dance_metrics_size() <= sizeof(mem));
	assert_null(dance_metrics_init(mem, 8));
	assert_null(dance_metrics_init((char *)mem + 4, sizeof(mem) - 4));
	memset(mem, 0xff, sizeof(mem));
	m = dance_metrics_init(mem, sizeof(mem));
	assert_non_null(m);
	assert_true(mget(m, "dance_verdicts_total", "success") == 0);
	/* snprintf semantics: the length needed, a terminated prefix */
	need = dance_metrics_format_prometheus(
		(const struct dance_metrics *const *)&m, NULL, 1, buf,
		sizeof(buf));
	assert_true(need > sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_int_equal(strncmp(buf, "# HELP dance_verdicts_total ", 28), 0);
}

/* Every family has HELP and TYPE once, before its samples; every
 * sample line is "name{labels} value". */
static void
check_exposition(const char *text, const char *server)
{
	const char *p = text, *nl;
	char fam[128] = "", line[512];
	int helps = 0, types = 0;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true((size_t)(nl - p) < sizeof(line));
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", fam), 1);
			assert_int_equal(strncmp(fam, "dance_", 6), 0);
			helps++;
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(strncmp(line + 7, fam, strlen(fam)),
				0);
			types++;
		} else {
			assert_int_equal(strncmp(line, fam, strlen(fam)), 0);
			assert_non_null(strchr(line, ' '));
			if (server != NULL && strstr(line, "_total{result") ==
			    line + strlen("dance_verdicts"))
				assert_non_null(strstr(line, server));
		}
		p = nl + 1;
	}
	assert_int_equal(helps, types);
	assert_int_equal(helps, 13);
}

static void
test_metrics_decisions(void **state)
{
	struct fx *f = *state;
	struct dance_metrics *m = dance_metrics_new();
	struct dance_resolver_stats last;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	char line[512], *text;
	size_t len;
	const char *srvname = "a.example";

	assert_non_null(m);
	memset(&last, 0, sizeof(last));
	world_init(&w, f, 1, 1, NULL);
	dance_tls_server_set_metrics(w.srv, m);
	world_cache(&w, N_EE, DANCE_DNS_SECURE, 3, 1, 1, f->ee);
	world_cache(&w, "nx.clients.test", DANCE_DNS_NXDOMAIN, 0, 0, 0, NULL);

	/* success, usage 3, a cache hit */
	cctx = client_ctx(f->ee, f->k_ee, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok);
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_SUCCESS);
	/* asking again counts nothing more */
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_SUCCESS);
	assert_string_equal(dance_conn_log_line(dance_conn_get(h.s),
		"192.0.2.1", line, sizeof(line)), "dance: client=192.0.2.1 "
		"name=ee.clients.test outcome=success usage=3 lookup_ms=0 "
		"cached=yes");
	hs_free(&h);
	SSL_CTX_free(cctx);

	/* wrong key, required: refused, nomatch */
	cctx = client_ctx(f->other, f->k_other, NULL, N_EE, 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	hs_free(&h);
	SSL_CTX_free(cctx);

	/* outside the allow-list: refused, no lookup */
	cctx = client_ctx(f->ee, f->k_ee, NULL, "ee.elsewhere.test", 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	assert_string_equal(dance_conn_log_line(dance_conn_get(h.s), NULL,
		line, sizeof(line)), "dance: client=- name=ee.elsewhere.test "
		"outcome=refused reason=not-allowed lookup_ms=0 cached=-");
	hs_free(&h);
	SSL_CTX_free(cctx);

	/* a cached NXDOMAIN: negative hit, refused nxdomain */
	cctx = client_ctx(f->ee, f->k_ee, NULL, "nx.clients.test", 0);
	handshake(cctx, w.sctx, &h);
	assert_false(h.s_ok);
	hs_free(&h);
	SSL_CTX_free(cctx);

	assert_true(mget(m, "dance_verdicts_total", "success") == 1);
	assert_true(mget(m, "dance_verdicts_total", "refused") == 3);
	assert_true(mget(m, "dance_verdicts_total", "unauthenticated") == 0);
	assert_true(mget(m, "dance_successes_total", "3") == 1);
	assert_true(mget(m, "dance_successes_total", NULL) == 1);
	assert_true(mget(m, "dance_failures_total", "nomatch") == 1);
	assert_true(mget(m, "dance_failures_total", "not-allowed") == 1);
	assert_true(mget(m, "dance_failures_total", "nxdomain") == 1);
	assert_true(mget(m, "dance_allowlist_refusals_total", NULL) == 1);
	assert_true(mget(m, "dance_cache_requests_total", "hit") == 2);
	assert_true(mget(m, "dance_cache_requests_total", "negative_hit")
		== 1);
	assert_true(mget(m, "dance_cache_requests_total", "miss") == 0);
	/* "ok" is no failure reason */
	assert_true(mget(m, "dance_failures_total", "ok") == 0);

	/* the resolver's side: its cache, up, no queries */
	dance_metrics_resolver_sync(m, w.res, &last);
	assert_true(mget(m, "dance_up", NULL) == 1);
	assert_true(mget(m, "dance_cache_entries", NULL) == 2);
	assert_true(mget(m, "dance_queries_total", NULL) == 0);
	/* the histogram ends at the timeout (500 ms), then +Inf */
	assert_true(mget(m, "dance_response_time_seconds_bucket", "0.5")
		== 0);
	assert_true(mget(m, "dance_response_time_seconds_bucket", "1") == 0);

	len = dance_metrics_format_prometheus(
		(const struct dance_metrics *const *)&m, &srvname, 1, NULL, 0);
	text = malloc(len + 1);
	assert_non_null(text);
	assert_int_equal(dance_metrics_format_prometheus(
		(const struct dance_metrics *const *)&m, &srvname, 1, text,
		len + 1), len);
	check_exposition(text, "server=\"a.example\"");
	assert_non_null(strstr(text, "dance_verdicts_total{server=\"a.example\","
		"result=\"refused\"} 3\n"));
	assert_non_null(strstr(text, "dance_failures_total{server=\"a.example\","
		"reason=\"nxdomain\"} 1\n"));
	assert_non_null(strstr(text, "dance_response_time_seconds_bucket{"
		"le=\"0.5\"} 0\ndance_response_time_seconds_bucket{le=\"+Inf\"}"
		" 0\n"));
	assert_null(strstr(text, "reason=\"ok\""));
	free(text);

	/* the resolver goes: its gauges go, counters stay */
	dance_metrics_resolver_sync(m, NULL, &last);
	assert_true(mget(m, "dance_up", NULL) == 0);
	assert_true(mget(m, "dance_cache_entries", NULL) == 0);
	assert_true(mget(m, "dance_verdicts_total", "refused") == 3);
	world_free(&w);
	dance_metrics_free(m);
}

/* A lookup that waits: a miss, a parked client while it waits, a query
 * by outcome with its duration, an unauthenticated verdict. */
static void
test_metrics_lookup(void **state)
{
	struct fx *f = *state;
	struct dance_metrics *m = dance_metrics_new();
	struct dance_resolver_stats last;
	struct world w;
	struct hs h;
	SSL_CTX *cctx;
	char line[512];

	assert_non_null(m);
	memset(&last, 0, sizeof(last));
	world_sources(&w, f, 0, "127.0.0.1@9", "extension san");
	dance_tls_server_set_metrics(w.srv, m);
	cctx = client_ctx(f->ee, f->k_ee, NULL, NULL, 1);
	handshake(cctx, w.sctx, &h);
	assert_true(h.s_ok);
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_PENDING);
	assert_true(mget(m, "dance_parked_clients", NULL) == 1);
	assert_true(mget(m, "dance_cache_requests_total", "miss") == 1);
	assert_true(mget(m, "dance_verdicts_total", NULL) == 0);
	dance_metrics_resolver_sync(m, w.res, &last);
	assert_true(mget(m, "dance_request_list_current", NULL) == 1);
	world_wait_answers(&w, 1);
	assert_true(mget(m, "dance_parked_clients", NULL) == 0);
	assert_int_equal(dance_conn_decide(h.s, NULL), DANCE_STATUS_FAILED);
	assert_true(mget(m, "dance_verdicts_total", "unauthenticated") == 1);
	assert_non_null(strstr(dance_conn_log_line(dance_conn_get(h.s),
		"::1", line, sizeof(line)), "outcome=unauthenticated reason="));
	assert_non_null(strstr(line, " cached=no"));
	dance_metrics_resolver_sync(m, w.res, &last);
	assert_true(mget(m, "dance_request_list_current", NULL) == 0);
	assert_true(mget(m, "dance_queries_total", NULL) == 1);
	assert_true(mget(m, "dance_response_time_seconds_count", NULL) == 1);
	assert_true(mget(m, "dance_response_time_seconds_bucket", "+Inf")
		== 1);
	/* a host that refuses every FAILED client says so */
	dance_tls_server_set_refuse_failed(w.srv, 1);
	assert_string_equal(dance_conn_outcome(dance_conn_get(h.s)),
		"refused");
	hs_free(&h);
	SSL_CTX_free(cctx);
	world_free(&w);
	dance_metrics_free(m);
}

/* The bucket of a duration: at most its bound. */
static void
test_metrics_buckets(void **state)
{
	struct dance_resolver_stats st;

	memset(&st, 0, sizeof(st));
	dance_stats_note_answer(&st, DANCE_DNS_SECURE, 0);
	dance_stats_note_answer(&st, DANCE_DNS_SECURE, 1);
	dance_stats_note_answer(&st, DANCE_DNS_TIMEOUT, 2);
	dance_stats_note_answer(&st, DANCE_DNS_TIMEOUT, 3);
	dance_stats_note_answer(&st, DANCE_DNS_BOGUS, 100000);
	assert_int_equal(st.duration[0], 2);
	assert_int_equal(st.duration[1], 1);
	assert_int_equal(st.duration[2], 1);
	assert_int_equal(st.duration[DANCE_LOOKUP_BUCKETS], 1);
	assert_int_equal(st.outcomes[DANCE_DNS_TIMEOUT], 2);
	assert_int_equal(st.duration_ms, 100006);
	assert_int_equal(dance_metrics_bucket_ms(0), 1);
	assert_int_equal(dance_metrics_bucket_ms(DANCE_LOOKUP_BUCKETS), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_memory),
		cmocka_unit_test(test_metrics_buckets),
		cmocka_unit_test(test_metrics_decisions),
		cmocka_unit_test(test_metrics_lookup),
	};

	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
