/* metrics.c - the gate's counters in the shared area and their Prometheus
 * text (metrics.h). */
#include "internal.h"
#include "shared_area.h"
#include "metrics.h"
#include "gate.h"
#include "txn_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double jpki_metrics_le[JPKI_METRICS_LE_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5
};

/* ---- counting ------------------------------------------------------- */

uint64_t jpki_metrics_clock_us(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

jpki_metrics_area *jpki_metrics_of(const jpki_ctx *ctx)
{
    return ctx != NULL && ctx->shared != NULL ? &ctx->shared->metrics : NULL;
}

void jpki_metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

void jpki_metrics_observe(jpki_metrics_hist *h, uint64_t us)
{
    unsigned i;

    for (i = 0; i < JPKI_METRICS_LE_N; i++)
        if ((double)us <= jpki_metrics_le[i] * 1e6)
            break;
    jpki_metrics_add(&h->count[i], 1);
    jpki_metrics_add(&h->sum_us, us);
}

/* The slot named name: found, or claimed (under the caller's lock); -1
 * when the table is full. */
static int slot_claim(jpki_metrics_area *m, const char *name)
{
    int i, free_at = -1;

    for (i = 0; i < JPKI_METRICS_ISSUERS; i++) {
        if (__atomic_load_n(&m->iss[i].ready, __ATOMIC_ACQUIRE)) {
            if (strcmp(m->iss[i].name, name) == 0)
                return i;
        } else if (free_at < 0) {
            free_at = i;
        }
    }
    if (free_at >= 0) {
        snprintf(m->iss[free_at].name, sizeof(m->iss[free_at].name), "%s",
                 name);
        __atomic_store_n(&m->iss[free_at].ready, 1, __ATOMIC_RELEASE);
    }
    return free_at;
}

void jpki_metrics_attach(jpki_ctx *ctx)
{
    jpki_metrics_area *m = jpki_metrics_of(ctx);
    size_t i;
    int k;

    memset(ctx->metrics_slot, 0, sizeof(ctx->metrics_slot));
    if (m == NULL)
        return;
    if (ctx->shared_lock.lock != NULL)
        ctx->shared_lock.lock(ctx->shared_lock.ud);
    for (i = 0; i < ctx->n_issuers && i < JPKI_MAX_ISSUERS; i++) {
        k = slot_claim(m, ctx->issuers[i]->name);
        ctx->metrics_slot[i] = (int16_t)(k + 1);
    }
    if (ctx->shared_lock.unlock != NULL)
        ctx->shared_lock.unlock(ctx->shared_lock.ud);
}

jpki_metrics_issuer *jpki_metrics_issuer_of(const jpki_ctx *ctx,
                                            const jpki_issuer *is)
{
    jpki_metrics_area *m = jpki_metrics_of(ctx);
    size_t i;

    if (m == NULL || is == NULL)
        return NULL;
    for (i = 0; i < ctx->n_issuers && i < JPKI_MAX_ISSUERS; i++)
        if (ctx->issuers[i] == is)
            return ctx->metrics_slot[i] > 0
                   ? &m->iss[ctx->metrics_slot[i] - 1] : NULL;
    return NULL;
}

int jpki_metrics_class(jpki_err e)
{
    /* the allow-lists' refusals are the adapters' 403 (edge.c) */
    int st = e == JPKI_ERR_ACCOUNT_NOT_ALLOWED
             || e == JPKI_ERR_ISSUER_NOT_ALLOWED ? 403 : txn_status_of(e);

    return e == JPKI_OK ? JPKI_MC_OK : st >= 500 ? JPKI_MC_ERROR
                                                 : JPKI_MC_DENIED;
}

void jpki_metrics_gated(const jpki_ctx *ctx, jpki_err e)
{
    jpki_metrics_area *m = jpki_metrics_of(ctx);

    if (m != NULL && (unsigned)e < JPKI__ERR_COUNT)
        jpki_metrics_add(&m->gated[e], 1);
}

void jpki_metrics_busy(const jpki_ctx *ctx)
{
    jpki_metrics_area *m = ctx != NULL ? jpki_metrics_of(ctx) : NULL;

    if (m != NULL)
        jpki_metrics_add(&m->busy, 1);
}

int jpki_metrics_ocsp_failing(const jpki_metrics_issuer *s, int64_t now)
{
    uint64_t streak = __atomic_load_n(&s->ocsp_streak, __ATOMIC_RELAXED);
    int64_t last = __atomic_load_n(&s->ocsp_last_fail, __ATOMIC_RELAXED);

    return streak >= JPKI_OCSP_FAIL_STREAK && now - last >= 0
           && now - last <= JPKI_OCSP_FAIL_WINDOW;
}

/* ---- the text writer ------------------------------------------------ */

void jpki_prom_init(jpki_prom *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
    w->ok = 1;
}

void jpki_prom_free(jpki_prom *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* n more bytes of room; 0 (and ok 0) past max. */
static int room(jpki_prom *w, size_t n)
{
    size_t cap;
    char *b;

    if (!w->ok)
        return 0;
    if (w->len + n + 1 <= w->cap)
        return 1;
    if (w->len + n + 1 > w->max) {
        w->ok = 0;
        return 0;
    }
    cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n + 1)
        cap *= 2;
    if (cap > w->max)
        cap = w->max;
    b = realloc(w->buf, cap);
    if (b == NULL) {
        w->ok = 0;
        return 0;
    }
    w->buf = b;
    w->cap = cap;
    return 1;
}

static void wput(jpki_prom *w, const char *s, size_t n)
{
    if (room(w, n)) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = '\0';
    }
}

static void wstr(jpki_prom *w, const char *s)
{
    wput(w, s, strlen(s));
}

static void wfmt(jpki_prom *w, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        w->ok = 0;
        return;
    }
    wput(w, tmp, (size_t)n);
}

/* s escaped: '\\' and '\n' always, '"' in label values. */
static void wesc(jpki_prom *w, const char *s, int quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            wput(w, "\\\\", 2);
        else if (*s == '\n')
            wput(w, "\\n", 2);
        else if (*s == '"' && quote)
            wput(w, "\\\"", 2);
        else
            wput(w, s, 1);
    }
}

void jpki_prom_family(jpki_prom *w, const char *name, const char *type,
                      const char *help)
{
    wstr(w, "# HELP ");
    wstr(w, name);
    wstr(w, " ");
    wesc(w, help, 0);
    wstr(w, "\n# TYPE ");
    wstr(w, name);
    wstr(w, " ");
    wstr(w, type);
    wstr(w, "\n");
}

/* name{labels[,le="..."]} */
static void series(jpki_prom *w, const char *name, const char *suffix,
                   const char *const *labels, const char *le)
{
    int n = 0;

    wstr(w, name);
    wstr(w, suffix);
    if ((labels == NULL || labels[0] == NULL) && le == NULL)
        return;
    wstr(w, "{");
    for (; labels != NULL && labels[0] != NULL; labels += 2) {
        wstr(w, n++ ? "," : "");
        wstr(w, labels[0]);
        wstr(w, "=\"");
        wesc(w, labels[1] != NULL ? labels[1] : "", 1);
        wstr(w, "\"");
    }
    if (le != NULL) {
        wstr(w, n ? ",le=\"" : "le=\"");
        wstr(w, le);
        wstr(w, "\"");
    }
    wstr(w, "}");
}

void jpki_prom_sample(jpki_prom *w, const char *name,
                      const char *const *labels, double value)
{
    series(w, name, "", labels, NULL);
    wfmt(w, " %.17g\n", value);
}

void jpki_prom_sample_u64(jpki_prom *w, const char *name,
                          const char *const *labels, uint64_t value)
{
    series(w, name, "", labels, NULL);
    wfmt(w, " %llu\n", (unsigned long long)value);
}

void jpki_prom_histogram(jpki_prom *w, const char *name,
                         const char *const *labels,
                         const jpki_metrics_hist *h)
{
    uint64_t c[JPKI_METRICS_BUCKETS], sum, total = 0;
    char le[32];
    unsigned i;

    /* read once: the buckets, +Inf and _count agree within a scrape */
    for (i = 0; i < JPKI_METRICS_BUCKETS; i++)
        c[i] = __atomic_load_n(&h->count[i], __ATOMIC_RELAXED);
    sum = __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED);
    for (i = 0; i < JPKI_METRICS_BUCKETS; i++) {
        total += c[i];
        if (i < JPKI_METRICS_LE_N)
            snprintf(le, sizeof(le), "%g", jpki_metrics_le[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        series(w, name, "_bucket", labels, le);
        wfmt(w, " %llu\n", (unsigned long long)total);
    }
    series(w, name, "_sum", labels, NULL);
    wfmt(w, " %.6f\n", (double)sum / 1e6);
    series(w, name, "_count", labels, NULL);
    wfmt(w, " %llu\n", (unsigned long long)total);
}

/* ---- the metrics' text ---------------------------------------------- */

static const char *const class_names[JPKI_MC_N] = {"ok", "denied", "error"};
static const char *const method_names[JPKI_MM_N] = {"signature", "tls",
                                                    "device"};
static const char *const store_names[JPKI_MS_N] = {"shm", "redis"};
static const char *const store_results[JPKI_MSR_N] = {"ok", "error",
                                                      "timeout", "full"};
static const char *const ocsp_outcomes[JPKI_MO_N] = {"ok", "http_error",
                                                     "no_answer",
                                                     "bad_answer"};
static const char *const rev_names[JPKI_MR_N] = {"cache", "ocsp", "crl",
                                                 "soft", "none",
                                                 "unavailable"};
static const char *const throttle_names[JPKI_MT_N] = {"login", "device"};
static const char *const crl_sources[] = {"file", "redis"};

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A counter by reason: every reason that moved, and ok always. */
static void by_reason(jpki_prom *w, const char *name, const char *lname,
                      const char *lvalue, const uint64_t *c)
{
    const char *l[7];
    unsigned e, n;

    for (e = 0; e < JPKI__ERR_COUNT; e++) {
        uint64_t v = ld(&c[e]);
        if (v == 0 && e != JPKI_OK)
            continue;
        n = 0;
        if (lname != NULL) {
            l[n++] = lname;
            l[n++] = lvalue;
        }
        l[n++] = "result";
        l[n++] = class_names[jpki_metrics_class((jpki_err)e)];
        l[n++] = "reason";
        l[n++] = jpki_reason((jpki_err)e);
        l[n] = NULL;
        jpki_prom_sample_u64(w, name, l, v);
    }
}

static void render_requests(jpki_prom *w, const jpki_metrics_area *m)
{
    const char *l[3] = {NULL, NULL, NULL};
    unsigned i;

    jpki_prom_family(w, "jpki_logins_total", "counter", "Logins answered, "
                     "by method, result (ok, denied, error) and reason.");
    for (i = 0; i < JPKI_MM_N; i++)
        by_reason(w, "jpki_logins_total", "method", method_names[i],
                  m->logins[i]);
    jpki_prom_family(w, "jpki_gated_requests_total", "counter", "Gated "
                     "requests answered (after the location's allow-lists), "
                     "by result and reason.");
    by_reason(w, "jpki_gated_requests_total", NULL, NULL, m->gated);
    jpki_prom_family(w, "jpki_session_rechecks_total", "counter",
                     "Sessions whose revocation and mapping were checked "
                     "again, by result.");
    for (i = 0; i < JPKI_MC_N; i++) {
        l[0] = "result";
        l[1] = class_names[i];
        jpki_prom_sample_u64(w, "jpki_session_rechecks_total", l,
                             ld(&m->rechecks[i]));
    }
    jpki_prom_family(w, "jpki_store_outage_passes_total", "counter",
                     "Gated requests passed on their sealed session alone "
                     "while the store did not answer (jpki_store_outage "
                     "sessions): logouts made elsewhere unseen.");
    jpki_prom_sample_u64(w, "jpki_store_outage_passes_total", NULL,
                         ld(&m->outage_passes));
    jpki_prom_family(w, "jpki_login_busy_total", "counter", "Logins "
                     "refused 503 busy: the process verified as many as "
                     "its cap (concurrency=) allows.");
    jpki_prom_sample_u64(w, "jpki_login_busy_total", NULL, ld(&m->busy));
    jpki_prom_family(w, "jpki_throttled_total", "counter", "Requests "
                     "refused by the throttle (429), by endpoint.");
    for (i = 0; i < JPKI_MT_N; i++) {
        l[0] = "endpoint";
        l[1] = throttle_names[i];
        jpki_prom_sample_u64(w, "jpki_throttled_total", l,
                             ld(&m->throttled[i]));
    }
}

static void render_store(jpki_prom *w, const jpki_metrics_area *m)
{
    const char *l[5] = {NULL, NULL, NULL, NULL, NULL};
    unsigned k, r;

    jpki_prom_family(w, "jpki_store_rounds_total", "counter", "Store "
                     "rounds (a Redis pipeline, an embedded store batch), "
                     "by store and result.");
    for (k = 0; k < JPKI_MS_N; k++)
        for (r = 0; r < JPKI_MSR_N; r++) {
            l[0] = "store";
            l[1] = store_names[k];
            l[2] = "result";
            l[3] = store_results[r];
            jpki_prom_sample_u64(w, "jpki_store_rounds_total", l,
                                 ld(&m->store[k][r]));
        }
    l[2] = NULL;
    jpki_prom_family(w, "jpki_store_round_duration_seconds", "histogram",
                     "Time of a store round, as the request waited for it.");
    for (k = 0; k < JPKI_MS_N; k++) {
        l[0] = "store";
        l[1] = store_names[k];
        jpki_prom_histogram(w, "jpki_store_round_duration_seconds", l,
                            &m->store_time[k]);
    }
}

static void render_issuers(jpki_prom *w, const jpki_metrics_area *m)
{
    const char *l[5] = {NULL, NULL, NULL, NULL, NULL};
    const jpki_metrics_issuer *s;
    unsigned i, k;

    jpki_prom_family(w, "jpki_ocsp_queries_total", "counter", "OCSP answers "
                     "awaited by transactions, by issuer and outcome.");
    for (i = 0; i < JPKI_METRICS_ISSUERS; i++) {
        s = &m->iss[i];
        if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
            continue;
        for (k = 0; k < JPKI_MO_N; k++) {
            l[0] = "issuer";
            l[1] = s->name;
            l[2] = "outcome";
            l[3] = ocsp_outcomes[k];
            jpki_prom_sample_u64(w, "jpki_ocsp_queries_total", l,
                                 ld(&s->ocsp[k]));
        }
    }
    jpki_prom_family(w, "jpki_ocsp_query_duration_seconds", "histogram",
                     "Time of an OCSP query, by issuer.");
    l[2] = NULL;
    for (i = 0; i < JPKI_METRICS_ISSUERS; i++) {
        s = &m->iss[i];
        if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
            continue;
        l[1] = s->name;
        jpki_prom_histogram(w, "jpki_ocsp_query_duration_seconds", l,
                            &s->ocsp_time);
    }
    jpki_prom_family(w, "jpki_revocation_checks_total", "counter",
                     "Revocation decisions, by issuer and source (cache: "
                     "a cached OCSP answer).");
    for (i = 0; i < JPKI_METRICS_ISSUERS; i++) {
        s = &m->iss[i];
        if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
            continue;
        for (k = 0; k < JPKI_MR_N; k++) {
            l[1] = s->name;
            l[2] = "source";
            l[3] = rev_names[k];
            jpki_prom_sample_u64(w, "jpki_revocation_checks_total", l,
                                 ld(&s->rev[k]));
        }
    }
}

/* The scrape's gauges: the answering site's CRLs, store and OCSP. */
/* One gauge family of one sample. */
static void gauge_u64(jpki_prom *w, const char *name, const char *help,
                      const char *const *labels, uint64_t v)
{
    jpki_prom_family(w, name, "gauge", help);
    jpki_prom_sample_u64(w, name, labels, v);
}

static void render_gauges(jpki_prom *w, const jpki_health *h)
{
    const char *l[5] = {NULL, NULL, NULL, NULL, NULL};
    unsigned i;

    jpki_prom_family(w, "jpki_crl_age_seconds", "gauge", "Age of the oldest "
                     "loaded CRL of an issuer (now - thisUpdate), by "
                     "source.");
    for (i = 0; i < h->n_agg; i++) {
        if (h->agg[i].loaded == 0)
            continue;
        l[0] = "issuer";
        l[1] = h->agg[i].issuer;
        l[2] = "source";
        l[3] = crl_sources[h->agg[i].source];
        jpki_prom_sample(w, "jpki_crl_age_seconds", l,
                         (double)(h->now - h->agg[i].oldest));
    }
    jpki_prom_family(w, "jpki_crl_ok", "gauge", "1 when every CRL of an "
                     "issuer is loaded, fresh and its last load good.");
    for (i = 0; i < h->n_agg; i++) {
        l[0] = "issuer";
        l[1] = h->agg[i].issuer;
        l[2] = "source";
        l[3] = crl_sources[h->agg[i].source];
        jpki_prom_sample(w, "jpki_crl_ok", l, h->agg[i].bad ? 0 : 1);
    }
    jpki_prom_family(w, "jpki_ocsp_failing", "gauge", "1 while an issuer's "
                     "OCSP responder is failing (the health rule).");
    l[2] = NULL;
    for (i = 0; i < h->n_ocsp; i++) {
        l[0] = "issuer";
        l[1] = h->ocsp[i].issuer;
        jpki_prom_sample(w, "jpki_ocsp_failing", l, h->ocsp[i].failing);
    }
    l[0] = "store";
    l[1] = h->shm ? "shm" : "redis";
    jpki_prom_family(w, "jpki_store_up", "gauge", "1 when the store "
                     "answered the scrape's probe and has room.");
    jpki_prom_sample(w, "jpki_store_up", l, h->store == JPKI_OK);
    if (h->shm) {
        gauge_u64(w, "jpki_store_entries", "Live entries of the embedded "
                  "store.", l, h->shm_count);
        gauge_u64(w, "jpki_store_capacity", "Entries the embedded store "
                  "holds at most.", l, h->shm_capacity);
    } else if (h->store_mem) {
        gauge_u64(w, "jpki_store_used_bytes", "Redis's used_memory (INFO "
                  "memory).", l, h->store_used);
        gauge_u64(w, "jpki_store_max_bytes", "Redis's maxmemory (0: no "
                  "limit).", l, h->store_max);
    }
    jpki_prom_family(w, "jpki_health_ok", "gauge", "1 when the health "
                     "answer is ok (200), 0 when degraded (503).");
    jpki_prom_sample(w, "jpki_health_ok", NULL,
                     jpki_health_is_ok(h, h->store));
}

int jpki_metrics_render(jpki_prom *w, const jpki_metrics_area *m,
                        const jpki_health *h)
{
    if (m != NULL) {
        render_requests(w, m);
        render_store(w, m);
        render_issuers(w, m);
    }
    if (h != NULL)
        render_gauges(w, h);
    return w->ok;
}
