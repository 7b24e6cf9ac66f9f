/* txn_rev.c - the revocation step of a transaction: the policy's sources
 * in order (the cached answer, the CRLs in the store, a CRL file, OCSP),
 * fail closed when none answers. */
#include "txn_internal.h"
#include "crlptr.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

/* ---- revocation --------------------------------------------------- */


void txn_rev_passed(jpki_txn *t)
{
    if (t->req.op == JPKI_OP_LOGIN)
        txn_login_commit(t);
    else
        txn_check_success(t);
}

void txn_rev_decide(jpki_txn *t, jpki_rev_status st)
{
    t->rev_status = st;
    switch (st) {
    case JPKI_REV_GOOD:
        txn_rev_passed(t);
        break;
    case JPKI_REV_REVOKED:
        txn_refuse(t, JPKI_ERR_REVOKED);
        break;
    case JPKI_REV_HOLD:
        txn_refuse(t, JPKI_ERR_ON_HOLD);
        break;
    default:
        txn_refuse(t, JPKI_ERR_REVOCATION_UNKNOWN);
        break;
    }
}

static void crl_store_start(jpki_txn *t);

/* A cached answer's sixth field: when the answer it holds was produced
 * (its thisUpdate; a value written before it has five: 0). */
static int64_t rev_value_produced(const jpki_store_result *r)
{
    int64_t v = 0;
    size_t i, bars = 0;

    for (i = 0; i < r->vallen && bars < 5; i++)
        bars += r->val[i] == '|';
    if (bars < 5)
        return 0;
    for (; i < r->vallen && i < JPKI_STORE_VAL_MAX; i++) {
        if (r->val[i] < '0' || r->val[i] > '9' || v > INT64_MAX / 10 - 10)
            return 0;
        v = v * 10 + (r->val[i] - '0');
    }
    return v;
}

/* Decides from a cached revocation answer; 0 when there is none. */
int txn_rev_cached(jpki_txn *t, const jpki_store_result *r)
{
    jpki_rev_status st;

    if (!txn_rev_parse(r, &st))
        return 0;
    t->rev_source = "cache";
    t->rev_produced = rev_value_produced(r);
    txn_rev_decide(t, st);
    return 1;
}

static void rev_unavailable(jpki_txn *t)
{
    char val[JPKI_STORE_VAL_MAX], id[80], list[JPKI_CRL_LIST_MAX];

    if (!t->pol->fail_open) {
        txn_finish(t, JPKI_ERR_REVOCATION_UNAVAILABLE);
        return;
    }
    jpki_log(t->ctx, JPKI_LOG_WARN, "jpki %s: revocation data unavailable, "
             "passing under fail-open policy (cert_id %s)",
             txn_event_name(t->req.op), t->cert->cert_id);
    t->v.soft_pass = 1;
    t->rev_source = "soft";
    t->n_cmds = 0;
    /* one record per certificate and day (UTC), overwritten by each soft
     * pass of that day so that its ts is the latest: a session passing
     * on every request of an outage does not add a key per request */
    snprintf(id, sizeof(id), "%s:%lld", t->cert->cert_id,
             (long long)(t->req.now - t->req.now % SOFT_BUCKET_S));
    /* the CA key's list name (crlptr.h) too: `jpkictl recheck` looks the
     * certificate up in the CRL of that key */
    if (jpki_issuer_crl_list(t->cert->issuer, t->cert->issuer_key_hash, list,
                             sizeof(list)) < 0)
        list[0] = '\0';
    /* and the request id of its audit line (audit.h: at most 40
     * characters, the record fits JPKI_STORE_VAL_MAX) */
    snprintf(val, sizeof(val), "{\"ts\":%lld,\"cert_id\":\"%s\",\"issuer\":"
             "\"%s\",\"list\":\"%s\",\"event\":\"%s\",\"rid\":\"%s\"}",
             (long long)t->req.now, t->cert->cert_id, t->cert->issuer->tag,
             list, txn_event_name(t->req.op), txn_rid(t));
    txn_cmd_val(txn_cmd_add(t, JPKI_STORE_SET, "soft", id), val, SOFT_TTL_MS);
    t->state = T_SOFT_PUT;
}

void txn_rev_start(jpki_txn *t)
{
    t->next_source = 0;
    if (t->pol->rev_policy.n == 0) {
        t->rev_source = "none";
        txn_rev_decide(t, JPKI_REV_GOOD);
        return;
    }
    txn_rev_next(t);
}

/* The policy's next source that can be asked: the store's CRL, a CRL file
 * (T_CRL), or the issuer's OCSP responder. */
void txn_rev_next(jpki_txn *t)
{
    const jpki_rev_policy *rp = &t->pol->rev_policy;
    jpki_err e;

    while (t->next_source < rp->n) {
        switch (rp->src[t->next_source++]) {
        case JPKI_REV_SRC_CRL:
            if (t->req.crl_in_store && t->cert->issuer->crl_source == NULL)
                crl_store_start(t);
            else
                t->state = T_CRL;
            return;
        case JPKI_REV_SRC_OCSP:
        default:
            break;
        }
        if (t->cert->issuer->ocsp_url == NULL) {
            jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: issuer \"%s\" has no OCSP "
                     "URL", t->cert->issuer->name);
            continue;
        }
        free(t->ocsp_req);
        t->ocsp_req = NULL;
        e = jpki_ocsp_request(t->ctx, t->cert, &t->ocsp_st, &t->ocsp_req,
                              &t->ocsp_req_len);
        if (e == JPKI_OK) {
            t->state = T_OCSP;
            return;
        }
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: cannot build OCSP request: "
                 "%s", jpki_reason(e));
    }
    rev_unavailable(t);
}


/* ---- CRLs loaded into the store by `jpkictl crl sync` (schema v1, see
 * docs/store-schema.md "Reading"): the pointer of the list of the CA key
 * that issued the certificate, then one HGET. ------------------------- */

_Static_assert(JPKI_CRL_PTR_LIST >= JPKI_CRL_LIST_MAX,
               "the pointer cache holds a list name");

/* The cached pointer of list (crl_pointer_ttl), or -1. */
static int crl_ptr_slot(const jpki_ctx *ctx, const char *list)
{
    int i;

    for (i = 0; i < JPKI_CRL_PTR_SLOTS; i++)
        if (strcmp(ctx->crl_ptr[i].list, list) == 0)
            return i;
    return -1;
}

static void crl_store_start(jpki_txn *t)
{
    jpki_ctx *ctx = (jpki_ctx *)t->ctx;        /* the pointer cache only */
    jpki_store_result r;
    jpki_store_cmd *c;
    int i, hit = 0;

    if (jpki_issuer_crl_list(t->cert->issuer, t->cert->issuer_key_hash,
                             t->crl_list, sizeof(t->crl_list)) < 0) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    memset(&r, 0, sizeof(r));
    if (t->ctx->policy.crl_pointer_ttl > 0) {
        pthread_mutex_lock(&ctx->crl_mu);
        i = crl_ptr_slot(ctx, t->crl_list);
        if (i >= 0 && t->req.now >= ctx->crl_ptr[i].at
            && t->req.now - ctx->crl_ptr[i].at
               < (int64_t)t->ctx->policy.crl_pointer_ttl) {
            r.type = JPKI_STORE_R_VALUE;
            r.vallen = strlen(ctx->crl_ptr[i].meta);
            memcpy(r.val, ctx->crl_ptr[i].meta, r.vallen);
            hit = 1;
        }
        pthread_mutex_unlock(&ctx->crl_mu);
    }
    if (hit) {
        t->crl_ptr_cached = 1;
        txn_crl_meta_fed(t, &r);
        return;
    }
    /* the pointer and the list's check value in one round trip: a pointer
     * is used (and cached) only once its list is known to be keyed with
     * this secret and these CA files */
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "crlmeta", t->crl_list);
    c = txn_cmd_add(t, JPKI_STORE_HGET, "crlinfo", t->crl_list);
    c->vallen = sizeof("id_check") - 1;
    memcpy(c->val, "id_check", c->vallen);
    t->state = T_CRL_META;
}

/* The pointer kept for the list: in its slot, else in a free one, else in
 * the oldest (a site has few issuers and keys: the cache holds them). */
static void crl_ptr_remember(jpki_txn *t, const jpki_store_result *r)
{
    jpki_ctx *ctx = (jpki_ctx *)t->ctx;
    int i, j;

    if (t->crl_ptr_cached || t->ctx->policy.crl_pointer_ttl == 0
        || r->vallen > JPKI_STORE_VAL_MAX)
        return;
    pthread_mutex_lock(&ctx->crl_mu);
    if ((i = crl_ptr_slot(ctx, t->crl_list)) < 0
        && (i = crl_ptr_slot(ctx, "")) < 0)
        for (i = 0, j = 1; j < JPKI_CRL_PTR_SLOTS; j++)
            if (ctx->crl_ptr[j].at < ctx->crl_ptr[i].at)
                i = j;
    snprintf(ctx->crl_ptr[i].list, sizeof(ctx->crl_ptr[i].list), "%s",
             t->crl_list);
    memcpy(ctx->crl_ptr[i].meta, r->val, r->vallen);
    ctx->crl_ptr[i].meta[r->vallen] = '\0';
    ctx->crl_ptr[i].at = t->req.now;
    pthread_mutex_unlock(&ctx->crl_mu);
}

/* The pointer (crlptr.c: the reader `jpkictl crl sync` checks its own
 * writing with) into ptr and the CRL's dates into info. */
static int crl_meta_parse(const jpki_store_result *r, jpki_crlptr *ptr,
                          jpki_crl_info *info)
{
    if (r->type != JPKI_STORE_R_VALUE
        || jpki_crlptr_parse((const char *)r->val, r->vallen, ptr) != 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->this_update = ptr->this_update;
    info->next_update = ptr->next_update;
    info->crl_number = ptr->crl_number;
    info->entries = ptr->entries;
    return 1;
}

/* The list's id_check (HGET crlinfo) against the issuer's, computed at
 * jpki_ctx_finish: cert_ids are HMACs under the site secret, so a list
 * loaded with another secret is found (its tag depends on the CA files
 * only) but never matches, and every revoked certificate would pass as
 * "not listed".  Not a secret: a plain, length-checked compare. */
static int crl_id_check_ok(jpki_txn *t, const jpki_store_result *r)
{
    const char *want = t->cert->issuer->id_check;

    if (r->type == JPKI_STORE_R_VALUE && r->vallen == strlen(want)
        && memcmp(r->val, want, r->vallen) == 0)
        return 1;
    /* never the values themselves: they are cert_ids */
    jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL of issuer \"%s\" in the "
             "store is not usable: its id_check %s, so it was loaded with "
             "another site secret or other CA files; treating revocation "
             "data as unavailable.  Re-run `jpkictl crl sync` with the "
             "gate's --secret-file and --issuer files",
             t->cert->issuer->name,
             r->type == JPKI_STORE_R_NIL ? "is missing" : "does not match");
    return 0;
}

void txn_crl_meta_fed(jpki_txn *t, const jpki_store_result *r)
{
    char id[JPKI_STORE_KEY_MAX + 1];
    const uint8_t *field;
    uint8_t raw[JPKI_CERT_ID_LEN];
    size_t n = 0;
    jpki_crlptr ptr;
    jpki_store_cmd *c;

    if (r[0].type == JPKI_STORE_R_NIL) {
        /* the list of another key of the issuer does not cover it (the CRL
         * zone's rule); nor does the one list per issuer of a store loaded
         * by jpkictl before lists per key */
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: no CRL of issuer \"%s\" for "
                 "the CA key that issued the certificate in the store (list "
                 "%s): run `jpkictl crl sync` with that key's CRL (a store "
                 "loaded by an older jpkictl, one list per issuer, needs a "
                 "new sync)", t->cert->issuer->name, t->crl_list);
        txn_rev_next(t);
        return;
    }
    if (!t->crl_ptr_cached && !crl_id_check_ok(t, &r[1])) {
        txn_rev_next(t);                    /* the next method, or unavailable */
        return;
    }
    if (!crl_meta_parse(&r[0], &ptr, &t->crl_meta)) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL pointer of issuer \"%s\" "
                 "in the store is unreadable", t->cert->issuer->name);
        txn_rev_next(t);
        return;
    }
    if (t->req.now > jpki_crl_stale_after(&t->crl_meta, t->pol->crl_grace,
                                          t->ctx->policy.clock_skew)) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL of issuer \"%s\" in the "
                 "store is stale (nextUpdate passed)", t->cert->issuer->name);
        txn_rev_next(t);
        return;
    }
    if (jpki_hex_decode(t->cert->cert_id, JPKI_CERT_ID_HEX_LEN, raw,
                        sizeof(raw), &n) != JPKI_OK
        || jpki_crl_bucket_name(id, sizeof(id), t->crl_list, ptr.gen,
                                &ptr.shape,
                                jpki_crl_bucket(raw, &ptr.shape)) < 0) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    crl_ptr_remember(t, &r[0]);
    t->n_cmds = 0;
    c = txn_cmd_add(t, JPKI_STORE_HGET, "crl", id);
    field = jpki_crl_field(raw, &ptr.shape, &c->vallen);
    memcpy(c->val, field, c->vallen);
    t->state = T_CRL_HGET;
}

static unsigned ttl_to(int64_t until, int64_t now, unsigned max)
{
    if (until <= now)
        return 0;
    return until - now > (int64_t)max ? max : (unsigned)(until - now);
}

void txn_crl_hget_fed(jpki_txn *t, const jpki_store_result *r)
{
    jpki_rev_info info;
    const jpki_policy *sp = &t->ctx->policy;
    int64_t at;
    int reason;

    memset(&info, 0, sizeof(info));
    info.this_update = t->crl_meta.this_update;
    info.next_update = t->crl_meta.next_update;
    info.reason = JPKI_REASON_NONE;
    if (r[0].type == JPKI_STORE_R_NIL) {
        info.status = JPKI_REV_GOOD;
        info.cache_ttl = t->crl_meta.next_update
            ? ttl_to(t->crl_meta.next_update, t->req.now,
                     sp->ocsp_good_max_ttl) : 0;
    } else if (r[0].type == JPKI_STORE_R_VALUE
               && jpki_crl_value_unpack(r[0].val, r[0].vallen, &reason,
                                        &at) == 0) {
        info.reason = reason < 0 ? JPKI_REASON_UNSPECIFIED : reason;
        info.status = info.reason == JPKI_REASON_CERTIFICATE_HOLD
                      ? JPKI_REV_HOLD : JPKI_REV_REVOKED;
        info.revoked_at = at;
        info.cache_ttl = info.status == JPKI_REV_HOLD ? sp->ocsp_hold_ttl
                         : sp->ocsp_revoked_ttl;
    } else {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL entry of issuer \"%s\" in "
                 "the store is unreadable", t->cert->issuer->name);
        txn_rev_next(t);
        return;
    }
    txn_rev_answer(t, &info, "crl");
}

void txn_rev_answer(jpki_txn *t, const jpki_rev_info *info,
                       const char *source)
{
    char val[JPKI_STORE_VAL_MAX];
    jpki_store_cmd *c;

    t->rev_source = source;
    t->rev_status = info->status;
    t->rev_produced = info->this_update;
    if (info->cache_ttl == 0 || strcmp(source, "ocsp") != 0) {
        txn_rev_decide(t, info->status);
        return;
    }
    if (t->req.op == JPKI_OP_LOGIN && info->status != JPKI_REV_GOOD) {
        txn_rev_decide(t, info->status);      /* a refused login writes nothing */
        return;
    }
    t->n_cmds = 0;
    snprintf(val, sizeof(val), "%s|%d|%lld|%lld|%s|%lld",
             txn_rev_names[info->status], info->reason,
             (long long)info->revoked_at, (long long)t->req.now, source,
             (long long)info->this_update);
    c = txn_cmd_add(t, JPKI_STORE_SET, "rev", t->cert->cert_id);
    txn_cmd_val(c, val, info->cache_ttl > 86400u * 40 ? 86400u * 40 * 1000
            : info->cache_ttl * 1000u);
    c->soft = 1;
    if (t->req.op == JPKI_OP_LOGIN) {
        t->rev_put = *c;                  /* written with the commit */
        t->rev_put_pending = 1;
        t->n_cmds = 0;
        txn_rev_decide(t, info->status);
        return;
    }
    t->state = T_REV_PUT;
}
