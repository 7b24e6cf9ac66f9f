/*
 * metrics.h - the gate's counters, summed across workers or children in
 * the shared area (shared.h), and their Prometheus text (format 0.0.4).
 *
 * The counters are plain uint64_t updated with relaxed atomic adds: no
 * lock, and a process that dies mid-request loses nothing but its own
 * increment.  A context without a shared area (unit tests, ctx->shared
 * NULL) counts nothing.  The core counts (txn.c's verdicts, allow.c's
 * allow-lists, the store rounds and OCSP answers fed to a transaction,
 * timed by jpki_site_run from the moment it hands the I/O to the adapter);
 * the adapters only route the metrics location to JPKI_OP_METRICS.
 *
 * Per-issuer counters live in slots named by the operator's issuer names
 * (never a serial or a key), claimed once per name under the shared lock
 * when a process attaches its contexts: every site of a server that names
 * an issuer alike adds to the same series.
 */
#ifndef JPKI_METRICS_H
#define JPKI_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "jpki.h"

/* The histograms' upper bounds, seconds (then +Inf): 0.1 ms .. 5 s. */
#define JPKI_METRICS_LE_N 15
#define JPKI_METRICS_BUCKETS (JPKI_METRICS_LE_N + 1)
extern const double jpki_metrics_le[JPKI_METRICS_LE_N];

/* Issuer names a server's sites may have, all sites together. */
#define JPKI_METRICS_ISSUERS 64

/* OCSP health (docs/operations.md): an issuer's responder is failing when
 * its last JPKI_OCSP_FAIL_STREAK answers all failed (no answer, an HTTP
 * error or an answer refused) and the last failure is at most
 * JPKI_OCSP_FAIL_WINDOW seconds old.  One good answer clears it. */
#define JPKI_OCSP_FAIL_STREAK 3
#define JPKI_OCSP_FAIL_WINDOW 600

enum { JPKI_MM_SIGNATURE = 0, JPKI_MM_TLS, JPKI_MM_DEVICE, JPKI_MM_N };
enum { JPKI_MS_SHM = 0, JPKI_MS_REDIS, JPKI_MS_N };
enum { JPKI_MSR_OK = 0, JPKI_MSR_ERROR, JPKI_MSR_TIMEOUT, JPKI_MSR_FULL,
       JPKI_MSR_N };
enum { JPKI_MO_OK = 0, JPKI_MO_HTTP_ERROR, JPKI_MO_NO_ANSWER,
       JPKI_MO_BAD_ANSWER, JPKI_MO_N };
enum { JPKI_MR_CACHE = 0, JPKI_MR_OCSP, JPKI_MR_CRL, JPKI_MR_SOFT,
       JPKI_MR_NONE, JPKI_MR_UNAVAILABLE, JPKI_MR_N };
enum { JPKI_MT_LOGIN = 0, JPKI_MT_DEVICE, JPKI_MT_N };
enum { JPKI_MC_OK = 0, JPKI_MC_DENIED, JPKI_MC_ERROR, JPKI_MC_N };

/* A histogram: counts per bucket (not cumulative: rendered so), the sum
 * in microseconds. */
typedef struct {
    uint64_t count[JPKI_METRICS_BUCKETS];
    uint64_t sum_us;
} jpki_metrics_hist;

typedef struct {
    char name[64];                 /* "" free; written once, then ready */
    uint64_t ready;                /* 1 once name is written */
    uint64_t ocsp[JPKI_MO_N];      /* answers fed, by outcome */
    jpki_metrics_hist ocsp_time;
    uint64_t rev[JPKI_MR_N];       /* revocation decisions, by source */
    /* OCSP health */
    uint64_t ocsp_streak;          /* failures since the last good answer */
    int64_t ocsp_last_ok, ocsp_last_fail;      /* seconds, 0: never */
} jpki_metrics_issuer;

typedef struct {
    uint64_t logins[JPKI_MM_N][JPKI__ERR_COUNT];
    uint64_t gated[JPKI__ERR_COUNT];
    uint64_t rechecks[JPKI_MC_N];
    uint64_t outage_passes;        /* sessions passed, the store down */
    uint64_t busy;                 /* logins refused busy (the cap) */
    uint64_t throttled[JPKI_MT_N];
    uint64_t store[JPKI_MS_N][JPKI_MSR_N];
    jpki_metrics_hist store_time[JPKI_MS_N];
    jpki_metrics_issuer iss[JPKI_METRICS_ISSUERS];
} jpki_metrics_area;

/* ---- counting (common/ only) ------------------------------------------ */

/* A monotonic clock, microseconds. */
uint64_t jpki_metrics_clock_us(void);
/* The slots of ctx's issuers, claimed by name (under the shared lock);
 * called by jpki_ctx_set_shared.  An issuer left without a slot (more
 * than JPKI_METRICS_ISSUERS names) is not counted per issuer. */
void jpki_metrics_attach(jpki_ctx *ctx);
/* The area of ctx, NULL when none. */
jpki_metrics_area *jpki_metrics_of(const jpki_ctx *ctx);
/* The slot of issuer is (one of ctx's), NULL when none. */
jpki_metrics_issuer *jpki_metrics_issuer_of(const jpki_ctx *ctx,
                                            const jpki_issuer *is);
void jpki_metrics_add(uint64_t *counter, uint64_t n);
void jpki_metrics_observe(jpki_metrics_hist *h, uint64_t us);
/* A gated request's answer after the location's allow-lists (allow.c):
 * JPKI_OK, or their refusal. */
void jpki_metrics_gated(const jpki_ctx *ctx, jpki_err e);
/* A login the adapter refused busy (jpki_edge_login_busy) before any
 * transaction. */
void jpki_metrics_busy(const jpki_ctx *ctx);
/* The result class of a reason: ok, denied (4xx), error (5xx). */
int jpki_metrics_class(jpki_err e);
/* Whether slot s's OCSP responder is failing at now (see above). */
int jpki_metrics_ocsp_failing(const jpki_metrics_issuer *s, int64_t now);

/* ---- the transaction's (txn_metrics.c) -------------------------------- */

/* jpki_site_run hands a store batch or an OCSP query to the adapter now:
 * the answer fed next is timed from here. */
void jpki_txn_io_begin(jpki_txn *t);

/* ---- Prometheus text, format 0.0.4 ------------------------------------ */

/* A bounded writer: it grows its buffer up to max bytes; past that, ok is
 * 0 and the text is cut (the caller answers an error). */
typedef struct {
    char *buf;
    size_t len, cap, max;
    int ok;
} jpki_prom;

void jpki_prom_init(jpki_prom *w, size_t max);
void jpki_prom_free(jpki_prom *w);
/* "# HELP name help" and "# TYPE name type" (help escaped: \\ and \n). */
void jpki_prom_family(jpki_prom *w, const char *name, const char *type,
                      const char *help);
/* One sample: name{labels} value.  labels: NULL-terminated pairs of
 * name, value (NULL: none); values escaped (\\, \", \n). */
void jpki_prom_sample(jpki_prom *w, const char *name,
                      const char *const *labels, double value);
void jpki_prom_sample_u64(jpki_prom *w, const char *name,
                          const char *const *labels, uint64_t value);
/* A histogram's series: name_bucket{labels,le=...} cumulative, with
 * le="+Inf" equal to name_count, and name_sum in seconds. */
void jpki_prom_histogram(jpki_prom *w, const char *name,
                         const char *const *labels,
                         const jpki_metrics_hist *h);

/* The whole text of area m (NULL: the counters are absent) and of the
 * scrape's gauges h (common/gate.h's health collection: its CRLs, store,
 * OCSP).  Returns w->ok. */
struct jpki_health;
int jpki_metrics_render(jpki_prom *w, const jpki_metrics_area *m,
                        const struct jpki_health *h);

#endif /* JPKI_METRICS_H */
