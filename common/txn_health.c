/* txn_health.c - HEALTH and METRICS: the store probed (Redis), the CRLs
 * `jpkictl crl sync` loaded into Redis read (their pointers and check
 * values), the site's CRL files and embedded store (the request's health
 * callback, jpki_site_health), each issuer's OCSP state from the shared
 * area; then the health JSON (200 ok, 503 degraded: gate.h) or the
 * Prometheus text (metrics.h).  Neither audited nor logged, but a refused
 * metrics request. */
#include "txn_internal.h"
#include "admin.h"
#include "gate.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_TEXT_MAX (1024 * 1024)
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct txn_hm {
    jpki_err store;            /* the Redis probe's */
    unsigned pairs;            /* (issuer, list) to read */
    unsigned next;             /* the first of the batch sent */
    unsigned in_batch;         /* pairs in it */
    int probe;                 /* the probe is its first command */
    int info;                  /* INFO memory its second (metrics) */
    int mem;                   /* used, max read */
    uint64_t used, max;
    struct {
        unsigned lists, loaded;
        int64_t stale_at;      /* the worst loaded one's */
        jpki_crl_info worst;
        int64_t loaded_at;
    } iss[JPKI_MAX_ISSUERS];
    jpki_health h;
};

/* Whether the CRLs of issuer i are read from Redis: a store of Redis, the
 * location's policy has CRLs, the issuer no CRL file. */
static int store_crl(const jpki_txn *t, size_t i)
{
    const jpki_rev_policy *rp = &t->pol->rev_policy;
    unsigned k;
    int crl = 0;

    for (k = 0; k < rp->n; k++)
        crl |= rp->src[k] == JPKI_REV_SRC_CRL;
    return crl && t->req.shared_store && t->req.crl_in_store
           && t->ctx->issuers[i]->crl_source == NULL;
}

/* The pair at index p: its issuer and list. */
static int pair_at(const jpki_txn *t, unsigned p, size_t *i, size_t *k)
{
    for (*i = 0; *i < t->ctx->n_issuers && *i < JPKI_MAX_ISSUERS; (*i)++) {
        if (!store_crl(t, *i))
            continue;
        if (p < t->ctx->issuers[*i]->n_lists) {
            *k = p;
            return 1;
        }
        p -= (unsigned)t->ctx->issuers[*i]->n_lists;
    }
    return 0;
}

/* The next batch: the probe (first), then GET crlmeta and HGET crlinfo
 * id_check of the next lists. */
static void batch(jpki_txn *t)
{
    struct txn_hm *hm = t->hm;
    jpki_store_cmd *c;
    const char *list;
    size_t i, k;

    t->n_cmds = 0;
    hm->probe = hm->next == 0 && hm->in_batch == 0;
    hm->info = 0;
    if (hm->probe) {
        jpki_health_probe(&t->cmds[0], t->req.now);
        t->n_cmds = 1;
        if (t->req.op == JPKI_OP_METRICS) {      /* the fill level */
            memset(&t->cmds[1], 0, sizeof(t->cmds[1]));
            t->cmds[1].op = JPKI_STORE_INFO_MEMORY;
            t->n_cmds = 2;
            hm->info = 1;
        }
    } else {
        hm->next += hm->in_batch;
    }
    hm->in_batch = 0;
    while (hm->next + hm->in_batch < hm->pairs
           && t->n_cmds + 2 <= MAX_CMDS
           && pair_at(t, hm->next + hm->in_batch, &i, &k)) {
        list = t->ctx->issuers[i]->lists[k].list;
        txn_cmd_add(t, JPKI_STORE_GET, "crlmeta", list);
        c = txn_cmd_add(t, JPKI_STORE_HGET, "crlinfo", list);
        c->vallen = sizeof("id_check") - 1;
        memcpy(c->val, "id_check", c->vallen);
        hm->in_batch++;
    }
    t->state = T_HEALTH_STORE;
}

/* A list's pointer and check value read. */
static void list_read(jpki_txn *t, size_t i, const jpki_store_result *r)
{
    struct txn_hm *hm = t->hm;
    const char *want = t->ctx->issuers[i]->id_check;
    jpki_crlptr ptr;
    jpki_crl_info info;
    int64_t stale_at;

    hm->iss[i].lists++;
    if (r[0].type != JPKI_STORE_R_VALUE
        || jpki_crlptr_parse((const char *)r[0].val, r[0].vallen, &ptr) != 0
        || r[1].type != JPKI_STORE_R_VALUE || r[1].vallen != strlen(want)
        || memcmp(r[1].val, want, r[1].vallen) != 0)
        return;                          /* missing, or not usable */
    memset(&info, 0, sizeof(info));
    info.this_update = ptr.this_update;
    info.next_update = ptr.next_update;
    info.crl_number = ptr.crl_number;
    info.entries = ptr.entries;
    stale_at = jpki_crl_stale_after(&info, t->pol->crl_grace,
                                    t->ctx->policy.clock_skew);
    if (hm->iss[i].loaded++ == 0 || stale_at < hm->iss[i].stale_at) {
        hm->iss[i].stale_at = stale_at;
        hm->iss[i].worst = info;
        hm->iss[i].loaded_at = ptr.loaded_at;
    }
}

static jpki_err metrics_access(const jpki_txn *t)
{
    const jpki_policy *p = t->pol;

    if (p->admin_allow[0] == '\0' && !p->admin_token_set)
        return JPKI_ERR_FORBIDDEN;     /* refused at startup already */
    if (p->admin_allow[0] != '\0'
        && !jpki_cidr_allows(p->admin_allow, t->req.peer))
        return JPKI_ERR_FORBIDDEN;
    if (p->admin_token_set
        && !jpki_admin_bearer_ok(t->req.authorization,
                                 t->req.authorization_len,
                                 p->admin_token))
        return JPKI_ERR_UNAUTHENTICATED;
    return JPKI_OK;
}

/* The store's CRLs and the issuers' OCSP states into h. */
static void collect(jpki_txn *t, jpki_health *h)
{
    struct txn_hm *hm = t->hm;
    const jpki_issuer *is;
    jpki_metrics_issuer *s;
    size_t i;

    for (i = 0; i < t->ctx->n_issuers && i < JPKI_MAX_ISSUERS; i++) {
        is = t->ctx->issuers[i];
        if (hm->store == JPKI_OK && store_crl(t, i))
            jpki_health_add_store_crl(h, is->name, hm->iss[i].loaded
                                      ? &hm->iss[i].worst : NULL,
                                      (unsigned)is->n_lists,
                                      hm->iss[i].loaded,
                                      hm->iss[i].loaded_at);
        s = is->ocsp_url != NULL ? jpki_metrics_issuer_of(t->ctx, is) : NULL;
        if (s != NULL)
            jpki_health_add_ocsp(h, is->name,
                                 jpki_metrics_ocsp_failing(s, t->req.now),
                                 __atomic_load_n(&s->ocsp_streak,
                                                 __ATOMIC_RELAXED),
                                 __atomic_load_n(&s->ocsp_last_ok,
                                                 __ATOMIC_RELAXED),
                                 __atomic_load_n(&s->ocsp_last_fail,
                                                 __ATOMIC_RELAXED));
    }
}

static void answer_health(jpki_txn *t, jpki_health *h)
{
    size_t max = jpki_health_json_max(h), len;
    int ok = 0;

    t->health = malloc(max);
    len = t->health != NULL
          ? jpki_health_json(h, h->shm, h->store, t->health, max, &ok) : 0;
    if (len == 0) {
        txn_finish(t, JPKI_ERR_NOMEM);
        return;
    }
    t->v.err = JPKI_OK;
    t->v.reason = ok ? "ok" : "degraded";
    t->v.http_status = ok ? 200 : 503;
    t->v.body = t->health;
    t->v.body_len = len;
    t->state = T_DONE;
}

static void answer_metrics(jpki_txn *t, jpki_health *h)
{
    jpki_prom w;

    jpki_prom_init(&w, METRICS_TEXT_MAX);
    if (!jpki_metrics_render(&w, jpki_metrics_of(t->ctx), h)
        || w.buf == NULL) {
        jpki_prom_free(&w);
        txn_finish(t, JPKI_ERR_NOMEM);
        return;
    }
    t->big = w.buf;
    t->v.err = JPKI_OK;
    t->v.reason = "ok";
    t->v.http_status = 200;
    t->v.body = t->big;
    t->v.body_len = w.len;
    t->v.content_type = METRICS_TYPE;
    t->state = T_DONE;
}

static void answer(jpki_txn *t)
{
    jpki_health *h = &t->hm->h;

    if (t->req.health == NULL
        || !t->req.health(t->req.health_ud, t->req.now,
                          t->req.shared_store ? NULL : t->req.local, h)) {
        txn_finish(t, JPKI_ERR_NOMEM);
        return;
    }
    if (t->req.shared_store) {
        h->shm = 0;
        h->store = t->hm->store;
        h->store_mem = t->hm->mem;
        h->store_used = t->hm->used;
        h->store_max = t->hm->max;
    }
    collect(t, h);
    if (t->req.op == JPKI_OP_METRICS)
        answer_metrics(t, h);
    else
        answer_health(t, h);
    jpki_health_release(h);
}

void txn_health(jpki_txn *t)
{
    unsigned p = 0;
    size_t i;
    jpki_err e;

    if (t->req.op == JPKI_OP_METRICS
        && (e = metrics_access(t)) != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    t->hm = calloc(1, sizeof(*t->hm));
    if (t->hm == NULL) {
        txn_finish(t, JPKI_ERR_NOMEM);
        return;
    }
    for (i = 0; i < t->ctx->n_issuers && i < JPKI_MAX_ISSUERS; i++)
        if (store_crl(t, i))
            p += (unsigned)t->ctx->issuers[i]->n_lists;
    t->hm->pairs = p;
    if (t->req.shared_store) {
        batch(t);
        return;
    }
    answer(t);
}

void txn_health_fed(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    struct txn_hm *hm = t->hm;
    unsigned j, first = hm->probe ? 1u + (unsigned)hm->info : 0;
    size_t i, k;

    if (r == NULL || n != t->n_cmds) {
        if (hm->probe || hm->store == JPKI_OK)
            hm->store = r == NULL ? JPKI_ERR_TIMEOUT : JPKI_ERR_STORE;
        answer(t);
        return;
    }
    if (hm->probe) {
        hm->store = jpki_health_probe_result(r, 1);
        if (hm->store != JPKI_OK) {
            answer(t);                   /* the store's CRLs unknown */
            return;
        }
        /* refused (no +info in the gate's ACL): no fill level */
        hm->mem = hm->info
                  && jpki_store_info_memory(&r[1], &hm->used, &hm->max) == 0;
    }
    for (j = 0; j < hm->in_batch; j++)
        if (pair_at(t, hm->next + j, &i, &k))
            list_read(t, i, &r[first + 2 * j]);
    if (hm->next + hm->in_batch < hm->pairs) {
        batch(t);
        return;
    }
    answer(t);
}
