/* test_metrics.c - the metrics (common/metrics.c): Prometheus text 0.0.4
 * (HELP and TYPE lines, label values escaped, histograms cumulative with
 * le="+Inf" equal to _count, _sum in seconds), the writer's bound, the
 * counters in a shared area, the OCSP failing rule, the rendered
 * gauges. */
#include "jpki.h"
#include "metrics.h"
#include "shared.h"
#include "gate.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has(const jpki_prom *w, const char *s)
{
    return w->buf != NULL && strstr(w->buf, s) != NULL;
}

static void test_text(void)
{
    const char *l[] = {"issuer", "a\"b\\c\nd", "source", "file", NULL};
    jpki_prom w;

    jpki_prom_init(&w, 4096);
    jpki_prom_family(&w, "jpki_x_total", "counter", "Help with \\ and\nnew");
    jpki_prom_sample_u64(&w, "jpki_x_total", l, 7);
    jpki_prom_sample(&w, "jpki_y", NULL, 0.5);
    ok(w.ok, "written");
    is_str(w.buf, "# HELP jpki_x_total Help with \\\\ and\\nnew\n"
                  "# TYPE jpki_x_total counter\n"
                  "jpki_x_total{issuer=\"a\\\"b\\\\c\\nd\",source=\"file\"} 7\n"
                  "jpki_y 0.5\n",
           "HELP escaped (\\\\, \\n), label values escaped (\\\", \\\\, \\n), "
           "no braces without labels");
    jpki_prom_free(&w);

    jpki_prom_init(&w, 64);
    jpki_prom_family(&w, "jpki_x_total", "counter", "a help longer than the "
                     "bound of this writer, which stops");
    ok(!w.ok && (w.buf == NULL || strlen(w.buf) < 64),
       "past its bound: not ok, nothing written past it");
    jpki_prom_free(&w);
}

static void test_histogram(void)
{
    const char *l[] = {"store", "redis", NULL};
    jpki_metrics_hist h;
    jpki_prom w;
    char line[128];

    memset(&h, 0, sizeof(h));
    jpki_metrics_observe(&h, 50);          /* 0.05 ms: the first bucket */
    jpki_metrics_observe(&h, 100);         /* 0.1 ms: still (le is <=) */
    jpki_metrics_observe(&h, 3000);        /* 3 ms: le 0.005 */
    jpki_metrics_observe(&h, 9000000);     /* 9 s: +Inf only */
    ok(h.count[0] == 2 && h.count[5] == 1 && h.count[JPKI_METRICS_LE_N] == 1,
       "each observation in its own bucket");
    jpki_prom_init(&w, 1 << 16);
    jpki_prom_histogram(&w, "jpki_t_seconds", l, &h);
    ok(w.ok, "written");
    ok(has(&w, "jpki_t_seconds_bucket{store=\"redis\",le=\"0.0001\"} 2\n"),
       "le 0.0001: 2");
    ok(has(&w, "jpki_t_seconds_bucket{store=\"redis\",le=\"0.0025\"} 2\n")
       && has(&w, "jpki_t_seconds_bucket{store=\"redis\",le=\"0.005\"} 3\n")
       && has(&w, "jpki_t_seconds_bucket{store=\"redis\",le=\"5\"} 3\n"),
       "cumulative: later buckets hold the earlier ones");
    ok(has(&w, "jpki_t_seconds_bucket{store=\"redis\",le=\"+Inf\"} 4\n"),
       "le=\"+Inf\": every observation");
    ok(has(&w, "jpki_t_seconds_count{store=\"redis\"} 4\n"),
       "_count == the +Inf bucket");
    snprintf(line, sizeof(line), "jpki_t_seconds_sum{store=\"redis\"} %.6f\n",
             (50 + 100 + 3000 + 9000000) / 1e6);
    ok(has(&w, line), "_sum in seconds: %s", line);
    jpki_prom_free(&w);
}

static void test_area(void)
{
    size_t n = jpki_shared_size();
    void *mem = calloc(1, n);
    jpki_shared *sh = jpki_shared_init(mem, n);
    jpki_ctx *a = jpki_ctx_new();
    jpki_metrics_issuer *s;
    jpki_health h;
    jpki_prom w;
    char buf[1024];

    ok(sh != NULL && a != NULL, "an area, a context");
    ok(jpki_metrics_of(a) == NULL, "no area: nothing counted");
    jpki_ctx_set_shared(a, sh, NULL);
    ok(jpki_metrics_of(a) != NULL, "attached");

    jpki_metrics_gated(a, JPKI_OK);
    jpki_metrics_gated(a, JPKI_OK);
    jpki_metrics_gated(a, JPKI_ERR_ACCOUNT_NOT_ALLOWED);
    jpki_metrics_gated(NULL, JPKI_OK);
    ok(jpki_metrics_of(a)->gated[JPKI_OK] == 2
       && jpki_metrics_of(a)->gated[JPKI_ERR_ACCOUNT_NOT_ALLOWED] == 1,
       "gated requests counted by reason; no context: none");
    ok(jpki_metrics_class(JPKI_OK) == JPKI_MC_OK
       && jpki_metrics_class(JPKI_ERR_REVOKED) == JPKI_MC_DENIED
       && jpki_metrics_class(JPKI_ERR_STORE) == JPKI_MC_ERROR,
       "result classes: ok, denied (4xx), error (5xx)");

    /* the OCSP rule */
    s = &jpki_metrics_of(a)->iss[0];
    memset(s, 0, sizeof(*s));
    s->ocsp_streak = JPKI_OCSP_FAIL_STREAK - 1;
    s->ocsp_last_fail = 1000;
    ok(!jpki_metrics_ocsp_failing(s, 1000), "one failure short: not failing");
    s->ocsp_streak = JPKI_OCSP_FAIL_STREAK;
    ok(jpki_metrics_ocsp_failing(s, 1000 + JPKI_OCSP_FAIL_WINDOW),
       "the streak within the window: failing");
    ok(!jpki_metrics_ocsp_failing(s, 1001 + JPKI_OCSP_FAIL_WINDOW),
       "the last failure too old: no more");
    memset(s, 0, sizeof(*s));

    /* the text of the area and of the gauges */
    jpki_health_init(&h, buf, sizeof(buf), 100000, 0, 0);
    h.shm = 1;
    h.shm_count = 3;
    h.shm_capacity = 1000;
    jpki_health_add_crl(&h, "card", NULL, NULL, JPKI_OK, 0);
    jpki_health_add_ocsp(&h, "card", 1, 3, 0, 99990);
    jpki_prom_init(&w, 1 << 20);
    ok(jpki_metrics_render(&w, jpki_metrics_of(a), &h), "rendered");
    ok(has(&w, "# TYPE jpki_logins_total counter\n")
       && has(&w, "jpki_logins_total{method=\"signature\",result=\"ok\","
                  "reason=\"ok\"} 0\n"),
       "logins: a counter, ok always present");
    ok(has(&w, "jpki_gated_requests_total{result=\"ok\",reason=\"ok\"} 2\n")
       && has(&w, "jpki_gated_requests_total{result=\"denied\","
                  "reason=\"account_not_allowed\"} 1\n"),
       "gated: by result and reason");
    ok(!has(&w, "reason=\"cert_revoked\""), "reasons that never moved: absent");
    ok(has(&w, "jpki_crl_ok{issuer=\"card\",source=\"file\"} 0\n")
       && !has(&w, "jpki_crl_age_seconds{"),
       "a CRL not loaded: not ok, no age");
    ok(has(&w, "jpki_ocsp_failing{issuer=\"card\"} 1\n"), "OCSP failing");
    ok(has(&w, "jpki_store_entries{store=\"shm\"} 3\n")
       && has(&w, "jpki_store_capacity{store=\"shm\"} 1000\n"),
       "the embedded store's fill");
    ok(has(&w, "jpki_health_ok 0\n"), "health not ok");
    jpki_prom_free(&w);

    jpki_ctx_free(a);
    free(mem);
}

int main(void)
{
    test_text();
    test_histogram();
    test_area();
    return done_testing();
}
