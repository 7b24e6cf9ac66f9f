/* txn_metrics.c - what a transaction counts in the shared area
 * (metrics.h): its verdict, its store rounds and OCSP answers, timed from
 * the moment jpki_site_run handed them to the adapter. */
#include "txn_internal.h"
#include "metrics.h"

#include <string.h>

void jpki_txn_io_begin(jpki_txn *t)
{
    t->io_t0 = jpki_metrics_clock_us();
    if (t->io_t0 == 0)
        t->io_t0 = 1;
}

/* The time since the I/O was handed out, and no more timing until the
 * next; 0 when untimed. */
static uint64_t io_elapsed(jpki_txn *t, int *timed)
{
    uint64_t now, t0 = t->io_t0;

    t->io_t0 = 0;
    *timed = t0 != 0;
    if (t0 == 0)
        return 0;
    now = jpki_metrics_clock_us();
    return now > t0 ? now - t0 : 0;
}

void txn_metrics_store(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    jpki_metrics_area *m = jpki_metrics_of(t->ctx);
    int kind = t->req.shared_store ? JPKI_MS_REDIS : JPKI_MS_SHM;
    int res = JPKI_MSR_OK, timed;
    uint64_t us = io_elapsed(t, &timed);
    size_t i;

    if (m == NULL)
        return;
    if (r == NULL)
        res = JPKI_MSR_TIMEOUT;
    else if (n != t->n_cmds)
        res = JPKI_MSR_ERROR;
    else
        for (i = 0; i < n && res == JPKI_MSR_OK; i++)
            if (r[i].type == JPKI_STORE_R_ERROR)
                res = JPKI_MSR_ERROR;
            else if (r[i].type == JPKI_STORE_R_FULL)
                res = JPKI_MSR_FULL;
    jpki_metrics_add(&m->store[kind][res], 1);
    if (timed)
        jpki_metrics_observe(&m->store_time[kind], us);
}

void txn_metrics_ocsp(jpki_txn *t, int outcome)
{
    jpki_metrics_issuer *s;
    int timed;
    uint64_t us = io_elapsed(t, &timed);

    s = t->cert != NULL ? jpki_metrics_issuer_of(t->ctx, t->cert->issuer)
                        : NULL;
    if (s == NULL)
        return;
    jpki_metrics_add(&s->ocsp[outcome], 1);
    if (timed)
        jpki_metrics_observe(&s->ocsp_time, us);
    if (outcome == JPKI_MO_OK) {
        __atomic_store_n(&s->ocsp_streak, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->ocsp_last_ok, t->req.now, __ATOMIC_RELAXED);
    } else {
        jpki_metrics_add(&s->ocsp_streak, 1);
        __atomic_store_n(&s->ocsp_last_fail, t->req.now, __ATOMIC_RELAXED);
    }
}

/* The revocation decision's source, -1 when none was reached. */
static int rev_source(const jpki_txn *t, jpki_err e)
{
    static const char *const names[] = {"cache", "ocsp", "crl", "soft",
                                        "none"};
    int i;

    if (t->cert == NULL)
        return -1;
    if (t->rev_source == NULL)
        return e == JPKI_ERR_REVOCATION_UNAVAILABLE ? JPKI_MR_UNAVAILABLE
                                                    : -1;
    for (i = 0; i < JPKI_MR_UNAVAILABLE; i++)
        if (strcmp(t->rev_source, names[i]) == 0)
            return i;
    return -1;
}

void txn_metrics_finish(jpki_txn *t, jpki_err e)
{
    jpki_metrics_area *m = jpki_metrics_of(t->ctx);
    jpki_metrics_issuer *s;
    int method, src;

    if (m == NULL || t->metered || (unsigned)e >= JPKI__ERR_COUNT)
        return;
    t->metered = 1;
    switch (t->req.op) {
    case JPKI_OP_LOGIN:
        method = t->tls ? JPKI_MM_TLS : t->device ? JPKI_MM_DEVICE
                                                  : JPKI_MM_SIGNATURE;
        jpki_metrics_add(&m->logins[method][e], 1);
        break;
    case JPKI_OP_CHECK:
        /* a pass is counted after the location's allow-lists (allow.c) */
        if (e != JPKI_OK)
            jpki_metrics_add(&m->gated[e], 1);
        if (t->rechecked)
            jpki_metrics_add(&m->rechecks[jpki_metrics_class(e)], 1);
        if (e == JPKI_OK && t->v.store_outage)
            jpki_metrics_add(&m->outage_passes, 1);
        break;
    default:
        break;
    }
    if (e == JPKI_ERR_THROTTLED)
        jpki_metrics_add(&m->throttled[t->req.op == JPKI_OP_DEVICE_START
                                       ? JPKI_MT_DEVICE : JPKI_MT_LOGIN], 1);
    src = rev_source(t, e);
    s = src >= 0 ? jpki_metrics_issuer_of(t->ctx, t->cert->issuer) : NULL;
    if (s != NULL)
        jpki_metrics_add(&s->rev[src], 1);
}
