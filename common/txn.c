/* txn.c - the sans-I/O transaction: CHALLENGE, LOGIN, CHECK, LOGOUT,
 * STATUS.  The adapter asks jpki_txn_step() what to do next, performs the
 * store commands or the OCSP POST its own way, feeds the results back, and
 * reads the verdict.  Every failure fed back ends fail-closed (or, with the
 * fail_open policy, passes with an audit record when only revocation data
 * is missing). */
#include "internal.h"
#include "crlptr.h"
#include "form.h"

#include <stddef.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_INIT = 0, T_LOGIN_READ, T_LOGIN_COMMIT, T_FAIL_PUT, T_OCSP, T_CRL,
    T_REV_PUT, T_SOFT_PUT, T_CHECK_STORE, T_LOGOUT_STORE, T_LOGOUT_LOG,
    T_CRL_META, T_CRL_HGET, T_DONE
};

/* Throttle subjects: failed logins per address and per certificate,
 * logins per certificate. */
enum { THR_FA = 0, THR_FC, THR_LC, THR_N };

enum { F_CHALLENGE, F_CERT, F_SIG, F_ALG, F_ACCOUNT, F_RETURN, F_N };

#define MAX_CMDS JPKI_STORE_BATCH_MAX
#define SIG_MAX 2048          /* bytes of a decoded signature */
/* A logout marker outlives every session it may end (30 days at most). */
#define OUT_TTL_S (30u * 86400u)
#define SOFT_TTL_MS (30u * 86400u * 1000u)
#define SOFT_BUCKET_S 86400

struct jpki_txn {
    const jpki_ctx *ctx;
    const jpki_policy *pol;                /* request's, or the site's */
    jpki_txn_request req;
    int state;
    /* login input */
    char *scratch;
    jpki_form_field f[F_N];
    int form;                              /* body was a form */
    char return_to[1025];
    char ch_id[JPKI_CHALLENGE_ID_HEX + 1];
    time_t ch_exp;
    /* certificate and session */
    jpki_cert *cert;
    jpki_session s;
    int have_session;
    int rechecked;
    char account_id[JPKI_ACCOUNT_ID_HEX_LEN + 1];
    /* login: the throttle, and what the first batch read */
    char peer_id[17];
    int ix_thr[THR_N][2];                  /* cur, prev: index in cmds */
    int ix_map, ix_rev, ix_out;
    jpki_store_result got_map, got_rev;
    int64_t out_at;                        /* logout marker of the cert */
    int64_t local_out;                     /* the same in the node's table */
    jpki_err fail_err;
    int fail_ix[2][2];                     /* FA/FC: INCR, GET prev */
    jpki_store_cmd rev_put;                /* a good OCSP answer to cache */
    int rev_put_pending;
    /* revocation */
    unsigned next_source;                  /* in pol->rev_policy */
    jpki_ocsp_state ocsp_st;
    uint8_t *ocsp_req;
    size_t ocsp_req_len;
    const char *rev_source;
    jpki_rev_status rev_status;
    jpki_crl_info crl_meta;                /* CRL read from the store */
    int crl_ptr_cached;                    /* its pointer came from the cache */
    /* store */
    jpki_store_cmd cmds[MAX_CMDS];
    size_t n_cmds;
    /* verdict */
    jpki_verdict v;
    /* buffers: not zeroed at creation, written before use */
    char body[1024];
    char cookie[JPKI_SESSION_MAX + 320];
    char location[1400];
    char audit[1024];
};

/* ---- verdicts ----------------------------------------------------- */

static int status_of(jpki_err e)
{
    switch (e) {
    case JPKI_OK:
        return 200;
    case JPKI_ERR_TOO_LARGE:
        return 413;
    case JPKI_ERR_METHOD:
        return 405;
    case JPKI_ERR_BAD_REQUEST: case JPKI_ERR_PARSE:
    case JPKI_ERR_CHALLENGE_FORMAT: case JPKI_ERR_CHALLENGE_HOST:
    case JPKI_ERR_BAD_HOST:
    case JPKI_ERR_CERT_PARSE: case JPKI_ERR_SIG_ALG:
        return 400;
    case JPKI_ERR_CHALLENGE_KEY: case JPKI_ERR_CHALLENGE_MAC:
    case JPKI_ERR_CHALLENGE_EXPIRED: case JPKI_ERR_CHALLENGE_REPLAY:
    case JPKI_ERR_CERT_UNKNOWN_ISSUER: case JPKI_ERR_CERT_CHAIN:
    case JPKI_ERR_CERT_EXPIRED: case JPKI_ERR_CERT_NOT_YET_VALID:
    case JPKI_ERR_CERT_IS_CA: case JPKI_ERR_CERT_KEY_USAGE:
    case JPKI_ERR_CERT_POLICY: case JPKI_ERR_CERT_KEY:
    case JPKI_ERR_CERT_SIG_ALG:
    case JPKI_ERR_SIG_INVALID: case JPKI_ERR_SESSION_FORMAT:
    case JPKI_ERR_SESSION_KEY: case JPKI_ERR_SESSION_MAC:
    case JPKI_ERR_SESSION_EXPIRED: case JPKI_ERR_SESSION_IDLE:
    case JPKI_ERR_SESSION_LOGGED_OUT: case JPKI_ERR_UNAUTHENTICATED:
        return 401;
    case JPKI_ERR_REVOKED: case JPKI_ERR_ON_HOLD:
    case JPKI_ERR_REVOCATION_UNKNOWN: case JPKI_ERR_NOT_MAPPED:
    case JPKI_ERR_ACCOUNT_MISMATCH: case JPKI_ERR_CROSS_ORIGIN:
        return 403;
    case JPKI_ERR_THROTTLED:
        return 429;
    case JPKI_ERR_NOMEM: case JPKI_ERR_INTERNAL: case JPKI_ERR_INVALID:
        return 500;
    default:
        return 503;
    }
}

static const char *event_name(jpki_op op)
{
    static const char *const n[] = {"challenge", "login", "check", "logout",
                                    "status"};
    return (unsigned)op < 5 ? n[op] : "unknown";
}

/* Peer addresses go into JSON: keep only address characters. */
static const char *safe_peer(const char *p)
{
    size_t i;
    if (p == NULL || *p == '\0' || strlen(p) > 64)
        return "-";
    for (i = 0; p[i]; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')
              || (p[i] >= 'A' && p[i] <= 'F') || p[i] == '.' || p[i] == ':'
              || p[i] == '[' || p[i] == ']'))
            return "-";
    return p;
}

static void make_audit(jpki_txn *t, jpki_err e)
{
    const char *acct = t->have_session ? t->s.account : "";
    const char *cid = t->cert ? t->cert->cert_id
                      : t->have_session ? t->s.cert_id : "";
    const char *iss = t->cert ? t->cert->issuer->name : "";
    const char *peer = safe_peer(t->req.peer);
    unsigned suppressed = 0;
    char more[40] = "";

    /* a flood of refused logins must not flood the log: refusals are
     * written at most the throttle's limits a minute per certificate and
     * per address, the others counted into the next line ("suppressed") */
    if (t->req.op == JPKI_OP_LOGIN && e != JPKI_OK
        && !jpki_audit_admit(t->ctx, cid, t->pol->throttle_cert,
                             t->peer_id[0] ? t->peer_id : NULL,
                             t->pol->throttle_addr, t->pol->throttle_window,
                             t->req.now, &suppressed))
        return;
    if (suppressed > 0)
        snprintf(more, sizeof(more), ",\"suppressed\":%u", suppressed);
    snprintf(t->audit, sizeof(t->audit),
             "{\"ts\":%lld,\"event\":\"%s\",\"result\":\"%s\",\"reason\":"
             "\"%s\",\"account\":\"%s\",\"cert_id\":\"%s\",\"issuer\":\"%s\","
             "\"revocation\":\"%s\",\"soft_pass\":%s,\"peer\":\"%s\"%s}",
             (long long)t->req.now, event_name(t->req.op),
             e == JPKI_OK ? "ok" : status_of(e) >= 500 ? "error" : "denied",
             jpki_reason(e), acct, cid, iss,
             t->rev_source ? t->rev_source : "none",
             t->v.soft_pass ? "true" : "false", peer, more);
    t->v.audit = t->audit;
}

static void cookie_header(jpki_txn *t, const char *value, long max_age)
{
    const jpki_policy *p = t->pol;
    snprintf(t->cookie, sizeof(t->cookie),
             "%s=%s; Path=%s; Max-Age=%ld%s%s; SameSite=%s", p->cookie_name,
             value, p->cookie_path, max_age, p->cookie_secure ? "; Secure" : "",
             p->cookie_httponly ? "; HttpOnly" : "", p->cookie_samesite);
    t->v.set_cookie = t->cookie;
}

static void finish(jpki_txn *t, jpki_err e)
{
    t->v.err = e;
    t->v.reason = jpki_reason(e);
    t->v.http_status = status_of(e);
    if (e != JPKI_OK) {
        t->v.body = t->body;
        t->v.body_len = jpki_error_json(e, t->body, sizeof(t->body));
        t->v.account = NULL;
        if (t->have_session)             /* a dead session: clear it */
            cookie_header(t, "", 0);
    }
    if (t->req.op == JPKI_OP_LOGIN || t->req.op == JPKI_OP_LOGOUT
        || t->v.soft_pass || (e != JPKI_OK && t->rechecked))
        make_audit(t, e);
    /* a login refusal left out of the audit is left out of the log too */
    if (e != JPKI_OK && (t->req.op != JPKI_OP_LOGIN || t->v.audit != NULL))
        jpki_log(t->ctx, status_of(e) >= 500 ? JPKI_LOG_ERROR : JPKI_LOG_INFO,
                 "jpki %s refused: %s (cert_id %s)", event_name(t->req.op),
                 jpki_reason(e), t->cert ? t->cert->cert_id
                 : t->have_session ? t->s.cert_id : "-");
    t->state = T_DONE;
}

/* Not signed in: API clients get 401 JSON, browsers the login page. */
static void unauthenticated(jpki_txn *t, jpki_err e)
{
    const char *lp = t->pol->login_page;
    finish(t, e);
    if (t->req.op == JPKI_OP_CHECK && !t->req.wants_json && lp[0] != '\0'
        && t->v.http_status == 401) {
        size_t i, o;
        const char *u = t->req.uri ? t->req.uri : "/";
        o = (size_t)snprintf(t->location, sizeof(t->location), "%s%creturn_to=",
                             lp, strchr(lp, '?') ? '&' : '?');
        for (i = 0; i < 1024 && u[i] && o + 4 < sizeof(t->location); i++) {
            unsigned char c = (unsigned char)u[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || strchr("/-_.~", c))
                t->location[o++] = (char)c;
            else
                o += (size_t)snprintf(t->location + o, 4, "%%%02X", c);
        }
        t->location[o] = '\0';
        t->v.location = t->location;
        t->v.http_status = 302;
    }
}

/* ---- store commands ----------------------------------------------- */

static jpki_store_cmd *cmd_add(jpki_txn *t, jpki_store_op op, const char *kind,
                               const char *id)
{
    jpki_store_cmd *c = &t->cmds[t->n_cmds++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = (size_t)snprintf(c->key, sizeof(c->key), "%s%s:%s",
                                 JPKI_STORE_PREFIX, kind, id);
    return c;
}

static void cmd_val(jpki_store_cmd *c, const char *v, uint32_t ttl_ms)
{
    size_t n = strlen(v);
    if (n > sizeof(c->val))
        n = sizeof(c->val);
    memcpy(c->val, v, n);
    c->vallen = n;
    c->ttl_ms = ttl_ms;
}

/* rev value: status|reason|revoked_at|checked_at|source */
static const char *const rev_names[] = {"good", "revoked", "hold", "unknown"};

static int rev_parse(const jpki_store_result *r, jpki_rev_status *st)
{
    char buf[JPKI_STORE_VAL_MAX + 1];
    char *bar;
    int i;

    if (r->type != JPKI_STORE_R_VALUE || r->vallen >= sizeof(buf))
        return 0;
    memcpy(buf, r->val, r->vallen);
    buf[r->vallen] = '\0';
    bar = strchr(buf, '|');
    if (bar == NULL)
        return 0;
    *bar = '\0';
    for (i = 0; i < 4; i++)
        if (strcmp(buf, rev_names[i]) == 0) {
            *st = (jpki_rev_status)i;
            return 1;
        }
    return 0;
}

/* ---- revocation --------------------------------------------------- */

static void login_commit(jpki_txn *t);
static void login_success(jpki_txn *t);
static void check_success(jpki_txn *t);
static void refuse(jpki_txn *t, jpki_err e);

static void rev_passed(jpki_txn *t)
{
    if (t->req.op == JPKI_OP_LOGIN)
        login_commit(t);
    else
        check_success(t);
}

static void rev_decide(jpki_txn *t, jpki_rev_status st)
{
    t->rev_status = st;
    switch (st) {
    case JPKI_REV_GOOD:
        rev_passed(t);
        break;
    case JPKI_REV_REVOKED:
        refuse(t, JPKI_ERR_REVOKED);
        break;
    case JPKI_REV_HOLD:
        refuse(t, JPKI_ERR_ON_HOLD);
        break;
    default:
        refuse(t, JPKI_ERR_REVOCATION_UNKNOWN);
        break;
    }
}

static void rev_next(jpki_txn *t);
static void crl_store_start(jpki_txn *t);

/* Decides from a cached revocation answer; 0 when there is none. */
static int rev_cached(jpki_txn *t, const jpki_store_result *r)
{
    jpki_rev_status st;

    if (!rev_parse(r, &st))
        return 0;
    t->rev_source = "cache";
    rev_decide(t, st);
    return 1;
}

static void rev_unavailable(jpki_txn *t)
{
    char val[JPKI_STORE_VAL_MAX], id[80];

    if (!t->pol->fail_open) {
        finish(t, JPKI_ERR_REVOCATION_UNAVAILABLE);
        return;
    }
    jpki_log(t->ctx, JPKI_LOG_WARN, "jpki %s: revocation data unavailable, "
             "passing under fail-open policy (cert_id %s)",
             event_name(t->req.op), t->cert->cert_id);
    t->v.soft_pass = 1;
    t->rev_source = "soft";
    t->n_cmds = 0;
    /* one record per certificate and day (UTC), overwritten by each soft
     * pass of that day so that its ts is the latest: a session passing
     * on every request of an outage does not add a key per request */
    snprintf(id, sizeof(id), "%s:%lld", t->cert->cert_id,
             (long long)(t->req.now - t->req.now % SOFT_BUCKET_S));
    snprintf(val, sizeof(val), "{\"ts\":%lld,\"cert_id\":\"%s\",\"issuer\":"
             "\"%s\",\"event\":\"%s\"}", (long long)t->req.now,
             t->cert->cert_id, t->cert->issuer->tag, event_name(t->req.op));
    cmd_val(cmd_add(t, JPKI_STORE_SET, "soft", id), val, SOFT_TTL_MS);
    t->state = T_SOFT_PUT;
}

static void rev_start(jpki_txn *t)
{
    t->next_source = 0;
    if (t->pol->rev_policy.n == 0) {
        t->rev_source = "none";
        rev_decide(t, JPKI_REV_GOOD);
        return;
    }
    rev_next(t);
}

/* The policy's next source that can be asked: the store's CRL, a CRL file
 * (T_CRL), or the issuer's OCSP responder. */
static void rev_next(jpki_txn *t)
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

static void rev_answer(jpki_txn *t, const jpki_rev_info *info,
                       const char *source);

/* ---- CRLs loaded into the store by `jpkictl crl sync` (schema v1, see
 * docs/store-schema.md "Reading"): the pointer, then one HGET. ------- */

static size_t issuer_index(const jpki_txn *t)
{
    size_t i;
    for (i = 0; i < t->ctx->n_issuers; i++)
        if (t->ctx->issuers[i] == t->cert->issuer)
            break;
    return i;
}

static void crl_meta_fed(jpki_txn *t, const jpki_store_result *r);

static void crl_store_start(jpki_txn *t)
{
    jpki_ctx *ctx = (jpki_ctx *)t->ctx;        /* the pointer cache only */
    jpki_store_result r;
    jpki_store_cmd *c;
    size_t i = issuer_index(t);
    int hit = 0;

    memset(&r, 0, sizeof(r));
    if (t->ctx->policy.crl_pointer_ttl > 0 && i < JPKI_MAX_ISSUERS) {
        pthread_mutex_lock(&ctx->crl_mu);
        if (ctx->crl_ptr[i].meta[0] != '\0'
            && t->req.now >= ctx->crl_ptr[i].at
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
        crl_meta_fed(t, &r);
        return;
    }
    /* the pointer and the list's check value in one round trip: a pointer
     * is used (and cached) only once its list is known to be keyed with
     * this secret and these CA files */
    t->n_cmds = 0;
    cmd_add(t, JPKI_STORE_GET, "crlmeta", t->cert->issuer->tag);
    c = cmd_add(t, JPKI_STORE_HGET, "crlinfo", t->cert->issuer->tag);
    c->vallen = sizeof("id_check") - 1;
    memcpy(c->val, "id_check", c->vallen);
    t->state = T_CRL_META;
}

static void crl_ptr_remember(jpki_txn *t, const jpki_store_result *r)
{
    jpki_ctx *ctx = (jpki_ctx *)t->ctx;
    size_t i = issuer_index(t);

    if (t->crl_ptr_cached || t->ctx->policy.crl_pointer_ttl == 0
        || i >= JPKI_MAX_ISSUERS || r->vallen > JPKI_STORE_VAL_MAX)
        return;
    pthread_mutex_lock(&ctx->crl_mu);
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

static void crl_meta_fed(jpki_txn *t, const jpki_store_result *r)
{
    char id[JPKI_STORE_KEY_MAX + 1];
    const uint8_t *field;
    uint8_t raw[JPKI_CERT_ID_LEN];
    size_t n = 0;
    jpki_crlptr ptr;
    jpki_store_cmd *c;

    if (r[0].type == JPKI_STORE_R_NIL) {
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: no CRL of issuer \"%s\" in the "
                 "store (jpkictl crl sync)", t->cert->issuer->name);
        rev_next(t);
        return;
    }
    if (!t->crl_ptr_cached && !crl_id_check_ok(t, &r[1])) {
        rev_next(t);                    /* the next method, or unavailable */
        return;
    }
    if (!crl_meta_parse(&r[0], &ptr, &t->crl_meta)) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL pointer of issuer \"%s\" "
                 "in the store is unreadable", t->cert->issuer->name);
        rev_next(t);
        return;
    }
    if (t->req.now > jpki_crl_stale_after(&t->crl_meta, t->pol->crl_grace,
                                          t->ctx->policy.clock_skew)) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL of issuer \"%s\" in the "
                 "store is stale (nextUpdate passed)", t->cert->issuer->name);
        rev_next(t);
        return;
    }
    if (jpki_hex_decode(t->cert->cert_id, JPKI_CERT_ID_HEX_LEN, raw,
                        sizeof(raw), &n) != JPKI_OK
        || jpki_crl_bucket_name(id, sizeof(id), t->cert->issuer->tag,
                                ptr.gen, ptr.k,
                                jpki_crl_bucket(raw, ptr.k)) < 0) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    crl_ptr_remember(t, &r[0]);
    t->n_cmds = 0;
    c = cmd_add(t, JPKI_STORE_HGET, "crl", id);
    field = jpki_crl_field(raw, ptr.k, &c->vallen);
    memcpy(c->val, field, c->vallen);
    t->state = T_CRL_HGET;
}

static unsigned ttl_to(int64_t until, int64_t now, unsigned max)
{
    if (until <= now)
        return 0;
    return until - now > (int64_t)max ? max : (unsigned)(until - now);
}

static void crl_hget_fed(jpki_txn *t, const jpki_store_result *r)
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
        rev_next(t);
        return;
    }
    rev_answer(t, &info, "crl");
}

static void rev_answer(jpki_txn *t, const jpki_rev_info *info,
                       const char *source)
{
    char val[JPKI_STORE_VAL_MAX];
    jpki_store_cmd *c;

    t->rev_source = source;
    t->rev_status = info->status;
    if (info->cache_ttl == 0 || strcmp(source, "ocsp") != 0) {
        rev_decide(t, info->status);
        return;
    }
    if (t->req.op == JPKI_OP_LOGIN && info->status != JPKI_REV_GOOD) {
        rev_decide(t, info->status);      /* a refused login writes nothing */
        return;
    }
    t->n_cmds = 0;
    snprintf(val, sizeof(val), "%s|%d|%lld|%lld|%s",
             rev_names[info->status], info->reason,
             (long long)info->revoked_at, (long long)t->req.now, source);
    c = cmd_add(t, JPKI_STORE_SET, "rev", t->cert->cert_id);
    cmd_val(c, val, info->cache_ttl > 86400u * 40 ? 86400u * 40 * 1000
            : info->cache_ttl * 1000u);
    c->soft = 1;
    if (t->req.op == JPKI_OP_LOGIN) {
        t->rev_put = *c;                  /* written with the commit */
        t->rev_put_pending = 1;
        t->n_cmds = 0;
        rev_decide(t, info->status);
        return;
    }
    t->state = T_REV_PUT;
}

/* ---- LOGIN -------------------------------------------------------- */

static int content_type_is(const jpki_txn *t, const char *want)
{
    size_t wl = strlen(want);
    return t->req.content_type != NULL && t->req.content_type_len >= wl
           && strncasecmp(t->req.content_type, want, wl) == 0
           && (t->req.content_type_len == wl
               || t->req.content_type[wl] == ';'
               || t->req.content_type[wl] == ' ');
}

static jpki_err login_parse(jpki_txn *t)
{
    static const struct { const char *n; size_t max; } spec[F_N] = {
        {"challenge", 256}, {"certificate", 3 * JPKI_MAX_CERT_LEN},
        {"signature", 2048}, {"algorithm", 32},
        {"account", JPKI_ACCOUNT_MAX}, {"return_to", 1024}};
    jpki_err e;
    int i;

    if (!t->req.is_post)
        return JPKI_ERR_METHOD;
    if (t->req.body_len > JPKI_BODY_MAX)
        return JPKI_ERR_TOO_LARGE;
    for (i = 0; i < F_N; i++) {
        t->f[i].name = spec[i].n;
        t->f[i].max = spec[i].max;
    }
    t->scratch = malloc(2 * t->req.body_len + 2);
    if (t->scratch == NULL)
        return JPKI_ERR_NOMEM;
    if (content_type_is(t, "application/json")) {
        e = jpki_form_parse_json(t->req.body, t->req.body_len, t->scratch,
                                 t->f, F_N);
    } else if (content_type_is(t, "application/x-www-form-urlencoded")) {
        t->form = 1;
        e = jpki_form_parse_urlencoded(t->req.body, t->req.body_len,
                                       t->scratch, t->f, F_N);
    } else {
        e = JPKI_ERR_BAD_REQUEST;
    }
    if (e == JPKI_ERR_TOO_LARGE)
        e = JPKI_ERR_BAD_REQUEST;
    if (e == JPKI_OK && (t->f[F_CHALLENGE].value == NULL
                         || t->f[F_CERT].value == NULL
                         || t->f[F_SIG].value == NULL))
        e = JPKI_ERR_BAD_REQUEST;
    if (e == JPKI_OK && t->f[F_ACCOUNT].value != NULL
        && !jpki_account_valid(t->f[F_ACCOUNT].value, t->f[F_ACCOUNT].len))
        e = JPKI_ERR_BAD_REQUEST;
    if (e == JPKI_OK && t->pol->require_account
        && t->f[F_ACCOUNT].value == NULL)
        e = JPKI_ERR_BAD_REQUEST;
    return e;
}

/* Only local paths: "/x", never "//host" or "/\host". */
static void set_return_to(jpki_txn *t)
{
    const char *r = t->f[F_RETURN].value;
    size_t i;

    snprintf(t->return_to, sizeof(t->return_to), "/");
    if (r == NULL || r[0] != '/' || r[1] == '/' || r[1] == '\\')
        return;
    for (i = 0; r[i]; i++)
        if ((unsigned char)r[i] <= 0x20 || (unsigned char)r[i] >= 0x7f
            || r[i] == '\\')
            return;
    snprintf(t->return_to, sizeof(t->return_to), "%s", r);
}

/* The cheap checks: the challenge (MAC, expiry, host) and the certificate
 * (its path is cached by fingerprint). */
static jpki_err login_precheck(jpki_txn *t)
{
    jpki_err e;
    char detail[200];

    e = jpki_challenge_check(t->ctx, t->f[F_CHALLENGE].value,
                             t->f[F_CHALLENGE].len, (time_t)t->req.now,
                             t->req.host, t->req.host_len, t->ch_id,
                             &t->ch_exp);
    if (e != JPKI_OK)
        return e;
    if (jpki_b64_decoded_max(t->f[F_SIG].len) > SIG_MAX)
        return JPKI_ERR_BAD_REQUEST;
    detail[0] = '\0';
    e = jpki_cert_check(t->ctx, (const uint8_t *)t->f[F_CERT].value,
                        t->f[F_CERT].len, (time_t)t->req.now, &t->cert,
                        detail, sizeof(detail));
    if (e != JPKI_OK)
        jpki_log(t->ctx, JPKI_LOG_INFO, "jpki login: certificate refused: %s",
                 detail[0] ? detail : jpki_strerror(e));
    return e;
}

/* The signature over the challenge: after the throttle said yes. */
static jpki_err login_verify(jpki_txn *t)
{
    uint8_t sig[SIG_MAX];
    size_t siglen = 0;
    int alg;

    if (jpki_b64_decoded_max(t->f[F_SIG].len) > sizeof(sig)
        || jpki_b64_decode(t->f[F_SIG].value, t->f[F_SIG].len, sig, &siglen)
           != JPKI_OK)
        return JPKI_ERR_BAD_REQUEST;
    if (t->f[F_ALG].value != NULL) {
        alg = jpki_sig_alg_from_name(t->f[F_ALG].value, t->f[F_ALG].len);
        if (alg < 0)
            return JPKI_ERR_SIG_ALG;
    } else if (EVP_PKEY_is_a(t->cert->pkey, "EC")) {
        alg = EVP_PKEY_get_bits(t->cert->pkey) > 256 ? JPKI_SIG_ECDSA_SHA384
              : JPKI_SIG_ECDSA_SHA256;
    } else {
        alg = JPKI_SIG_RSA_PKCS1_SHA256;
    }
    return jpki_cert_verify_sig(t->ctx, t->cert, (jpki_sig_alg)alg,
                                (const uint8_t *)t->f[F_CHALLENGE].value,
                                t->f[F_CHALLENGE].len, sig, siglen);
}

/* The host[:port] of an origin ("https://h:p"); 0 when it is not one. */
static int origin_host(const char *o, size_t n, const char **h, size_t *hn)
{
    size_t k;

    if (n > 8 && strncmp(o, "https://", 8) == 0)
        k = 8;
    else if (n > 7 && strncmp(o, "http://", 7) == 0)
        k = 7;
    else
        return 0;
    *h = o + k;
    *hn = n - k;
    return memchr(*h, '/', *hn) == NULL;
}

static int origin_trusted(const jpki_txn *t)
{
    const char *p = t->pol->trusted_origins, *e;

    if (t->req.origin == NULL)
        return 0;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        for (e = p; *e != '\0' && *e != ' '; e++)
            ;
        if (e > p && (size_t)(e - p) == t->req.origin_len
            && strncasecmp(p, t->req.origin, t->req.origin_len) == 0)
            return 1;
        p = e;
    }
    return 0;
}

static int header_is(const char *v, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(v, want, n) == 0;
}

/* Logins and logouts come from the site's own pages: a browser says where
 * a request comes from (Sec-Fetch-Site; older ones only Origin), and a page
 * of another site must not sign its visitor in (login CSRF) or out.
 * Clients that send neither header are not browsers: not concerned. */
static jpki_err origin_check(const jpki_txn *t)
{
    const jpki_txn_request *r = &t->req;
    const char *h;
    size_t hn;

    if (r->sec_fetch_site != NULL) {
        if (header_is(r->sec_fetch_site, r->sec_fetch_site_len, "same-origin")
            || header_is(r->sec_fetch_site, r->sec_fetch_site_len, "none"))
            return JPKI_OK;
    } else if (r->origin == NULL) {
        return JPKI_OK;
    } else if (origin_host(r->origin, r->origin_len, &h, &hn)
               && r->host != NULL && hn == r->host_len
               && strncasecmp(h, r->host, hn) == 0) {
        return JPKI_OK;
    }
    return origin_trusted(t) ? JPKI_OK : JPKI_ERR_CROSS_ORIGIN;
}

/* ---- the login throttle (guard.c) --------------------------------- */

static unsigned thr_limit(const jpki_txn *t, int k)
{
    return k == THR_FA ? t->pol->throttle_addr
           : k == THR_FC ? t->pol->throttle_cert : t->pol->login_limit_cert;
}

/* The id a subject is counted under; NULL: not counted. */
static const char *thr_id(const jpki_txn *t, int k)
{
    if (thr_limit(t, k) == 0)
        return NULL;
    if (k == THR_FA)
        return t->peer_id[0] ? t->peer_id : NULL;
    return t->cert ? t->cert->cert_id : NULL;
}

static int thr_cmd(jpki_txn *t, jpki_store_op op, int k, int64_t w)
{
    static const char *const kind[THR_N] = {"fa", "fc", "lc"};
    jpki_store_cmd *c = &t->cmds[t->n_cmds];

    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = jpki_throttle_key(c->key, sizeof(c->key), kind[k],
                                  thr_id(t, k), w);
    c->soft = 1;                  /* counters never crowd out challenges */
    if (op == JPKI_STORE_PEXPIRE)
        c->ttl_ms = (2 * t->pol->throttle_window + 1) * 1000u;
    return (int)t->n_cmds++;
}

static int64_t thr_window(const jpki_txn *t)
{
    return t->req.now / t->pol->throttle_window;
}

/* A counter's value: nil is 0; -1 when it is not a count. */
static long long count_of(const jpki_store_result *r)
{
    char buf[24], *end;
    long long v;

    if (r->type == JPKI_STORE_R_NIL)
        return 0;
    if (r->type == JPKI_STORE_R_INT)
        return r->n;
    if (r->type != JPKI_STORE_R_VALUE || r->vallen == 0
        || r->vallen >= sizeof(buf))
        return -1;
    memcpy(buf, r->val, r->vallen);
    buf[r->vallen] = '\0';
    v = strtoll(buf, &end, 10);
    return *end == '\0' && v >= 0 ? v : -1;
}

/* The Retry-After of a subject over its limit (cur, prev counted), else 0. */
static unsigned thr_over(const jpki_txn *t, int k, long long cur,
                         long long prev)
{
    if (cur < 0 || prev < 0)
        return 0;
    return jpki_throttle_over((uint64_t)cur, (uint64_t)prev, t->req.now,
                              t->pol->throttle_window, thr_limit(t, k));
}

#define THROTTLED_DELAY_MS 1000

static void throttled(jpki_txn *t, unsigned retry_after)
{
    finish(t, JPKI_ERR_THROTTLED);
    t->v.retry_after = retry_after;
    t->v.delay_ms = THROTTLED_DELAY_MS;
}

/* A refused login: counted against its address and certificate (what a
 * refused login writes: nothing else), then answered; a login refused
 * while over a limit is answered 429. */
static void login_failed(jpki_txn *t, jpki_err e)
{
    int64_t w = thr_window(t);
    int k;

    t->fail_err = e;
    t->n_cmds = 0;
    t->rev_put_pending = 0;
    for (k = THR_FA; k <= THR_FC; k++) {
        t->fail_ix[k][0] = -1;
        if (thr_id(t, k) == NULL)
            continue;
        t->fail_ix[k][0] = thr_cmd(t, JPKI_STORE_INCR, k, w);
        thr_cmd(t, JPKI_STORE_PEXPIRE, k, w);
        t->fail_ix[k][1] = thr_cmd(t, JPKI_STORE_GET, k, w - 1);
    }
    /* a replay was counted as a login by the commit that found the
     * challenge used: it is not one (a captured body must not spend its
     * certificate's logins) */
    if (e == JPKI_ERR_CHALLENGE_REPLAY && thr_id(t, THR_LC) != NULL) {
        thr_cmd(t, JPKI_STORE_DECR, THR_LC, w);
        thr_cmd(t, JPKI_STORE_PEXPIRE, THR_LC, w);
    }
    if (t->n_cmds == 0) {
        finish(t, e);
        return;
    }
    t->state = T_FAIL_PUT;
}

static void fail_put_fed(jpki_txn *t, const jpki_store_result *r)
{
    unsigned ra, retry = 0;
    long long cur, prev;
    int k;

    for (k = THR_FA; k <= THR_FC; k++) {
        if (t->fail_ix[k][0] < 0)
            continue;
        if (r == NULL || r[t->fail_ix[k][0]].type != JPKI_STORE_R_INT) {
            jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: a failed login could not "
                     "be counted (store %s)", r != NULL
                     && r[t->fail_ix[k][0]].type == JPKI_STORE_R_FULL
                     ? "full" : "error");
            continue;
        }
        /* over the limit before this one: this one is a throttled try,
         * told when the count with it falls under the limit */
        cur = r[t->fail_ix[k][0]].n;
        prev = count_of(&r[t->fail_ix[k][1]]);
        if (thr_over(t, k, cur - 1, prev) == 0)
            continue;
        ra = thr_over(t, k, cur, prev);
        if (ra > retry)
            retry = ra;
    }
    if (retry > 0)
        throttled(t, retry);
    else
        finish(t, t->fail_err);
}

/* A refusal: counted when it is a login's. */
static void refuse(jpki_txn *t, jpki_err e)
{
    if (t->req.op == JPKI_OP_LOGIN)
        login_failed(t, e);
    else
        finish(t, e);
}

static void login_begin(jpki_txn *t)
{
    int64_t w;
    jpki_err e = origin_check(t);
    int k;

    if (e == JPKI_OK)
        e = login_parse(t);
    if (e != JPKI_OK) {
        finish(t, e);                 /* malformed: nothing to count */
        return;
    }
    set_return_to(t);
    if (!jpki_peer_id(t->ctx, t->req.peer, t->peer_id))
        t->peer_id[0] = '\0';
    e = login_precheck(t);
    if (e != JPKI_OK) {
        login_failed(t, e);
        return;
    }
    /* one round trip before the signature is verified: the throttle
     * counters, the mapping, a cached revocation answer and the logout
     * marker of the certificate */
    w = thr_window(t);
    t->n_cmds = 0;
    for (k = 0; k < THR_N; k++) {
        t->ix_thr[k][0] = t->ix_thr[k][1] = -1;
        if (thr_id(t, k) == NULL)
            continue;
        t->ix_thr[k][0] = thr_cmd(t, JPKI_STORE_GET, k, w);
        t->ix_thr[k][1] = thr_cmd(t, JPKI_STORE_GET, k, w - 1);
    }
    t->ix_rev = (int)t->n_cmds;
    cmd_add(t, JPKI_STORE_GET, "rev", t->cert->cert_id);
    t->ix_out = (int)t->n_cmds;
    cmd_add(t, JPKI_STORE_GET, "out", t->cert->cert_id);
    t->ix_map = -1;
    if (t->req.map_source == JPKI_MAP_STORE) {
        t->ix_map = (int)t->n_cmds;
        cmd_add(t, JPKI_STORE_GET, "map", t->cert->cert_id);
    }
    t->state = T_LOGIN_READ;
}

/* The time of a logout marker; 0 when there is none (or unreadable). */
static int64_t marker_time(const jpki_store_result *r)
{
    long long v = count_of(r);
    return r->type == JPKI_STORE_R_VALUE && v > 0 ? (int64_t)v : 0;
}

/* The account bound to the certificate, checked against a claimed one. */
static jpki_err login_account(jpki_txn *t, const jpki_store_result *map)
{
    char acct[JPKI_ACCOUNT_MAX + 1];
    size_t n = 0;
    const char *claimed = t->f[F_ACCOUNT].value;

    if (t->req.map_source == JPKI_MAP_STORE) {
        if (map->type == JPKI_STORE_R_NIL)
            return JPKI_ERR_NOT_MAPPED;
        if (map->type != JPKI_STORE_R_VALUE)
            return JPKI_ERR_STORE;
        n = map->vallen;
        if (n > JPKI_ACCOUNT_MAX)
            return JPKI_ERR_STORE;
        memcpy(acct, map->val, n);
    } else if (t->req.map_fn != NULL) {
        n = t->req.map_fn(t->req.map_ud, t->cert->cert_id, acct);
        if (n == 0)
            return JPKI_ERR_NOT_MAPPED;
        if (n > JPKI_ACCOUNT_MAX)
            return JPKI_ERR_INTERNAL;
    } else {
        return JPKI_ERR_NOT_MAPPED;
    }
    acct[n] = '\0';
    if (!jpki_account_valid(acct, n))
        return JPKI_ERR_STORE;
    if (claimed != NULL && (strlen(claimed) != n || memcmp(claimed, acct, n)))
        return JPKI_ERR_ACCOUNT_MISMATCH;
    memcpy(t->s.account, acct, n + 1);
    return JPKI_OK;
}

static jpki_err store_err(const jpki_store_result *r)
{
    return r->type == JPKI_STORE_R_FULL ? JPKI_ERR_STORE_FULL
                                        : JPKI_ERR_STORE;
}

static int failed(const jpki_store_result *r)
{
    return r->type == JPKI_STORE_R_ERROR || r->type == JPKI_STORE_R_FULL;
}

static void login_read(jpki_txn *t, const jpki_store_result *r)
{
    unsigned ra, retry = 0;
    size_t i;
    jpki_err e;
    int k;

    for (i = 0; i < t->n_cmds; i++)
        if (failed(&r[i])) {
            finish(t, store_err(&r[i]));
            return;
        }
    /* over the address's limit, or the certificate's logins: refused
     * before anything is verified.  Over the certificate's failures: the
     * signature is still verified (it costs little next to the request),
     * and a good one passes, so that someone who has a card's certificate
     * cannot lock its holder out; a bad one is answered 429. */
    for (k = 0; k < THR_N; k++) {
        if (t->ix_thr[k][0] < 0 || k == THR_FC)
            continue;
        ra = thr_over(t, k, count_of(&r[t->ix_thr[k][0]]),
                      count_of(&r[t->ix_thr[k][1]]));
        if (ra > retry)
            retry = ra;
    }
    if (retry > 0) {
        throttled(t, retry);          /* nothing verified, nothing written */
        return;
    }
    t->got_rev = r[t->ix_rev];
    t->out_at = marker_time(&r[t->ix_out]);
    if (t->ix_map >= 0)
        t->got_map = r[t->ix_map];
    e = login_verify(t);
    if (e == JPKI_OK)
        e = login_account(t, t->ix_map >= 0 ? &t->got_map : NULL);
    if (e != JPKI_OK) {
        login_failed(t, e);
        return;
    }
    if (!rev_cached(t, &t->got_rev))
        rev_start(t);
}

/* Everything checked: the challenge is used up (single use is decided
 * here, so a refused login never writes it), the login counted, a fresh
 * OCSP answer cached. */
static void login_commit(jpki_txn *t)
{
    int64_t ttl = (int64_t)t->ch_exp - t->req.now + t->pol->clock_skew;
    int64_t w = thr_window(t);

    t->n_cmds = 0;
    cmd_val(cmd_add(t, JPKI_STORE_SETNX, "ch", t->ch_id), "1",
            (uint32_t)(ttl < 1 ? 1000 : ttl * 1000));
    if (thr_id(t, THR_LC) != NULL) {
        thr_cmd(t, JPKI_STORE_INCR, THR_LC, w);
        thr_cmd(t, JPKI_STORE_PEXPIRE, THR_LC, w);
    }
    if (t->rev_put_pending)
        t->cmds[t->n_cmds++] = t->rev_put;
    t->state = T_LOGIN_COMMIT;
}

static void login_committed(jpki_txn *t, const jpki_store_result *r)
{
    if (r[0].type != JPKI_STORE_R_INT) {
        finish(t, store_err(&r[0]));
        return;
    }
    if (r[0].n != 1) {
        login_failed(t, JPKI_ERR_CHALLENGE_REPLAY);
        return;
    }
    login_success(t);
}

static void set_session_cookie(jpki_txn *t)
{
    char val[JPKI_SESSION_MAX + 1];
    size_t n;
    jpki_err e = jpki_session_seal(t->ctx, &t->s, val, sizeof(val), &n);
    if (e != JPKI_OK) {
        finish(t, e);
        return;
    }
    cookie_header(t, val, (long)(t->s.expires - t->req.now));
}

static void login_success(jpki_txn *t)
{
    const jpki_policy *p = t->pol;
    uint8_t sid[16];
    size_t rl = 0;

    t->have_session = 1;
    /* the certificate's logout marker ends the sessions signed in until
     * its time: a login in that same second starts a second later */
    t->s.auth_time = t->out_at >= t->req.now ? t->out_at + 1 : t->req.now;
    t->s.expires = t->req.now + p->session_lifetime;
    if (t->s.expires > (int64_t)t->cert->not_after)
        t->s.expires = (int64_t)t->cert->not_after;
    t->s.idle_deadline = p->session_idle ? t->req.now + p->session_idle : 0;
    t->s.rev_checked = t->req.now;
    t->s.flags = t->v.soft_pass ? JPKI_SESSION_F_SOFT_PASS : 0;
    memcpy(t->s.cert_id, t->cert->cert_id, sizeof(t->s.cert_id));
    memcpy(t->s.issuer_tag, t->cert->issuer->tag, sizeof(t->s.issuer_tag));
    if (!jpki_random(sid, sizeof(sid))
        || jpki_cert_ref(t->cert, t->s.rev_ref, sizeof(t->s.rev_ref), &rl)
           != JPKI_OK) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    t->s.rev_ref_len = (uint8_t)rl;
    jpki_hex_encode(sid, sizeof(sid), t->s.sid);
    set_session_cookie(t);
    if (t->state == T_DONE)
        return;
    t->v.account = t->s.account;
    t->v.cert_id = t->s.cert_id;
    t->v.auth_time = t->s.auth_time;
    snprintf(t->body, sizeof(t->body), "{\"status\":\"ok\",\"account\":\"%s\","
             "\"expires\":%lld}", t->s.account, (long long)t->s.expires);
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    finish(t, JPKI_OK);
    if (t->form && !t->req.wants_json) {
        snprintf(t->location, sizeof(t->location), "%s", t->return_to);
        t->v.location = t->location;
        t->v.http_status = 303;
    }
}

/* ---- CHECK / STATUS ----------------------------------------------- */

static void check_success(jpki_txn *t)
{
    const jpki_policy *p = t->pol;
    int reseal = 0;

    if (t->rechecked && t->rev_status == JPKI_REV_GOOD && !t->v.soft_pass) {
        t->s.rev_checked = t->req.now;
        t->s.flags &= (uint8_t)~JPKI_SESSION_F_SOFT_PASS;
        reseal = 1;
    }
    /* slide the idle deadline, at most once a minute */
    if (p->session_idle && t->s.idle_deadline - (int64_t)p->session_idle
                           + 60 <= t->req.now) {
        t->s.idle_deadline = t->req.now + p->session_idle;
        reseal = 1;
    }
    if (reseal) {
        set_session_cookie(t);
        if (t->state == T_DONE)
            return;
    }
    t->v.account = t->s.account;
    t->v.cert_id = t->s.cert_id;
    t->v.auth_time = t->s.auth_time;
    if (t->req.op == JPKI_OP_STATUS)
        snprintf(t->body, sizeof(t->body), "{\"authenticated\":true,"
                 "\"account\":\"%s\",\"cert_id\":\"%s\",\"auth_time\":%lld,"
                 "\"expires\":%lld,\"idle_deadline\":%lld}", t->s.account,
                 t->s.cert_id, (long long)t->s.auth_time,
                 (long long)t->s.expires, (long long)t->s.idle_deadline);
    else
        t->body[0] = '\0';
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    finish(t, JPKI_OK);
}

static jpki_err open_cookie(jpki_txn *t)
{
    jpki_err e;
    if (t->req.cookie == NULL || t->req.cookie_len == 0)
        return JPKI_ERR_UNAUTHENTICATED;
    e = jpki_session_open(t->ctx, t->req.cookie, t->req.cookie_len,
                          (time_t)t->req.now, &t->s);
    if (e == JPKI_ERR_SESSION_EXPIRED || e == JPKI_ERR_SESSION_IDLE)
        t->have_session = 1;                 /* clear the cookie */
    else if (e == JPKI_OK)
        t->have_session = 1;
    return e;
}

/* The logout markers of a session: its certificate's and its account's.
 * kind: "out" then "outa". */
static void marker_cmds(jpki_txn *t)
{
    cmd_add(t, JPKI_STORE_GET, "out", t->s.cert_id);
    cmd_add(t, JPKI_STORE_GET, "outa", t->account_id);
}

static int logged_out(const jpki_txn *t, const jpki_store_result *r)
{
    int i;

    for (i = 0; i < 2; i++)
        if (marker_time(&r[i]) >= t->s.auth_time)
            return 1;
    return 0;
}

/* Logouts reach gated requests through the node's own table, read at
 * every request without waiting: 1 when the session was logged out. */
static int local_logged_out(jpki_txn *t)
{
    jpki_store_result r[2];

    if (t->req.local == NULL || getenv("JPKI_NOLOCAL"))
        return 0;
    t->n_cmds = 0;
    marker_cmds(t);
    jpki_shm_read_batch(t->req.local, t->cmds, 2, t->req.now * 1000, r);
    t->n_cmds = 0;
    t->local_out = marker_time(&r[0]);
    return logged_out(t, r);
}

/* Whether a session must be checked in the store now. */
static int recheck_due(const jpki_txn *t)
{
    int64_t since = t->s.rev_checked;

    if (t->req.now - since >= (int64_t)t->pol->recheck_interval
        || (t->s.flags & JPKI_SESSION_F_SOFT_PASS))
        return 1;
    /* a mirror holds the logouts of other nodes since local_since, each
     * for JPKI_OUTLOG_TTL: a session checked before either reads the
     * markers in the store */
    return t->req.shared_store && t->req.local != NULL
           && (since < t->req.local_since
               || t->req.now - since >= JPKI_OUTLOG_TTL);
}

static void check_begin(jpki_txn *t)
{
    jpki_err e = open_cookie(t);

    if (e != JPKI_OK) {
        unauthenticated(t, e);
        return;
    }
    /* the cookie carries the lifetime of the location that signed in; a
     * location may ask for less (an admin area): there an older session
     * signs in again, and the cookie stays for the other locations */
    if (t->req.now - t->s.auth_time >= (int64_t)t->pol->session_lifetime) {
        t->have_session = 0;
        unauthenticated(t, JPKI_ERR_SESSION_EXPIRED);
        return;
    }
    if (jpki_account_id(t->ctx, t->s.account, strlen(t->s.account),
                        t->account_id) != JPKI_OK) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (local_logged_out(t)) {
        unauthenticated(t, JPKI_ERR_SESSION_LOGGED_OUT);
        return;
    }
    if (!recheck_due(t)) {
        check_success(t);
        return;
    }
    t->rechecked = 1;
    t->n_cmds = 0;
    cmd_add(t, JPKI_STORE_GET, "rev", t->s.cert_id);
    marker_cmds(t);
    if (t->req.map_source == JPKI_MAP_STORE)
        cmd_add(t, JPKI_STORE_GET, "map", t->s.cert_id);
    t->state = T_CHECK_STORE;
}

static void check_stored(jpki_txn *t, const jpki_store_result *r)
{
    char acct[JPKI_ACCOUNT_MAX + 1];
    size_t i, n;
    jpki_err e;

    for (i = 0; i < t->n_cmds; i++)
        if (failed(&r[i])) {
            finish(t, store_err(&r[i]));
            return;
        }
    if (logged_out(t, &r[1])) {
        unauthenticated(t, JPKI_ERR_SESSION_LOGGED_OUT);
        return;
    }
    /* the mapping may have been removed or changed since login */
    if (t->req.map_source == JPKI_MAP_STORE) {
        n = r[3].type == JPKI_STORE_R_VALUE ? r[3].vallen : 0;
        if (n > JPKI_ACCOUNT_MAX)
            n = 0;
        memcpy(acct, r[3].val, n);
    } else {
        n = t->req.map_fn ? t->req.map_fn(t->req.map_ud, t->s.cert_id, acct)
            : 0;
    }
    if (n == 0 || n != strlen(t->s.account) || memcmp(acct, t->s.account, n)) {
        finish(t, JPKI_ERR_NOT_MAPPED);
        return;
    }
    if (rev_cached(t, &r[0]))
        return;
    e = jpki_cert_from_ref(t->ctx, t->s.rev_ref, t->s.rev_ref_len, &t->cert);
    if (e != JPKI_OK) {
        finish(t, e);
        return;
    }
    rev_start(t);
}

/* ---- LOGOUT ------------------------------------------------------- */

static void logout_done(jpki_txn *t);

static void logout_begin(jpki_txn *t)
{
    jpki_store_cmd *c, mirrored;
    jpki_store_result lr;
    int64_t mark;
    char at[24];

    if (!t->req.is_post) {
        finish(t, JPKI_ERR_METHOD);
        return;
    }
    if (origin_check(t) != JPKI_OK) {
        finish(t, JPKI_ERR_CROSS_ORIGIN);
        return;
    }
    if (open_cookie(t) != JPKI_OK) {
        t->have_session = 0;
        snprintf(t->body, sizeof(t->body), "{\"status\":\"logged_out\"}");
        t->v.body = t->body;
        t->v.body_len = strlen(t->body);
        cookie_header(t, "", 0);
        finish(t, JPKI_OK);
        return;
    }
    /* a session already logged out (a copied cookie posting logouts over
     * and over): nothing written */
    if (jpki_account_id(t->ctx, t->s.account, strlen(t->s.account),
                        t->account_id) != JPKI_OK) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (local_logged_out(t)) {
        logout_done(t);
        return;
    }
    /* every session of this certificate signed in until now ends: one
     * marker per certificate, however many sessions it had; its time is
     * the session's own when that is later (a login in the second of an
     * earlier logout starts a second later), and never below the marker
     * there is (the node's table knows it) */
    mark = t->s.auth_time > t->req.now ? t->s.auth_time : t->req.now;
    if (t->local_out > mark)
        mark = t->local_out;
    snprintf(at, sizeof(at), "%lld", (long long)mark);
    t->n_cmds = 0;
    c = cmd_add(t, JPKI_STORE_SET, "out", t->s.cert_id);
    cmd_val(c, at, (OUT_TTL_S + t->ctx->policy.clock_skew) * 1000u);
    if (t->req.shared_store) {
        /* this node knows at once (its mirror), the others through the
         * logout log within a second (outsync.c) */
        if (t->req.local != NULL) {
            mirrored = *c;
            mirrored.ttl_ms = JPKI_OUTLOG_TTL * 1000u;
            jpki_shm_exec(t->req.local, &mirrored, t->req.now * 1000, &lr);
            if (lr.type != JPKI_STORE_R_INT)
                jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: the logout mirror "
                         "is full (give it more room)");
        }
        t->n_cmds++;
        memset(&t->cmds[1], 0, sizeof(t->cmds[1]));
        t->cmds[1].op = JPKI_STORE_INCR;
        t->cmds[1].keylen = (size_t)snprintf(t->cmds[1].key,
                                             sizeof(t->cmds[1].key),
                                             "%soutseq", JPKI_STORE_PREFIX);
    }
    t->state = T_LOGOUT_STORE;
}

static void logout_done(jpki_txn *t);

static void logout_stored(jpki_txn *t, const jpki_store_result *r)
{
    char rec[JPKI_STORE_VAL_MAX];
    char id[24];

    if (failed(&r[0])) {
        finish(t, store_err(&r[0]));
        return;
    }
    if (!t->req.shared_store) {
        logout_done(t);
        return;
    }
    if (r[1].type != JPKI_STORE_R_INT) {
        finish(t, store_err(&r[1]));
        return;
    }
    snprintf(id, sizeof(id), "%lld", r[1].n);
    snprintf(rec, sizeof(rec), "c|%s|%.*s|%u", t->s.cert_id,
             (int)t->cmds[0].vallen, (const char *)t->cmds[0].val,
             (unsigned)JPKI_OUTLOG_TTL);
    t->n_cmds = 0;
    cmd_val(cmd_add(t, JPKI_STORE_SET, "outlog", id), rec,
            JPKI_OUTLOG_TTL * 1000u);
    t->state = T_LOGOUT_LOG;
}

static void logout_logged(jpki_txn *t, const jpki_store_result *r)
{
    if (failed(&r[0])) {
        finish(t, store_err(&r[0]));
        return;
    }
    logout_done(t);
}

static void logout_done(jpki_txn *t)
{
    snprintf(t->body, sizeof(t->body), "{\"status\":\"logged_out\"}");
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    t->v.account = t->s.account;
    finish(t, JPKI_OK);
    cookie_header(t, "", 0);
    if (!t->req.wants_json) {
        snprintf(t->location, sizeof(t->location), "%s",
                 t->pol->login_page[0] ? t->pol->login_page
                 : "/");
        t->v.location = t->location;
        t->v.http_status = 303;
    }
}

/* ---- CHALLENGE ---------------------------------------------------- */

static void challenge(jpki_txn *t)
{
    char ch[JPKI_CHALLENGE_LEN + 1];
    time_t exp;
    jpki_err e;

    if (t->req.is_post) {
        finish(t, JPKI_ERR_METHOD);
        return;
    }
    /* bound to the Host it is fetched from (relay between sites) */
    e = jpki_challenge_issue(t->ctx, (time_t)t->req.now, t->req.host,
                             t->req.host_len, ch, &exp);
    if (e != JPKI_OK) {
        finish(t, e);
        return;
    }
    snprintf(t->body, sizeof(t->body), "{\"challenge\":\"%s\",\"expires\":"
             "%lld,\"algorithms\":[\"rsa-pkcs1-sha256\",\"rsa-pkcs1-sha384\","
             "\"rsa-pkcs1-sha512\",%s\"ecdsa-sha256\",\"ecdsa-sha384\"]}", ch,
             (long long)exp, t->pol->allow_sha1 ? "\"rsa-pkcs1-sha1\","
             : "");
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    finish(t, JPKI_OK);
}

/* ---- public API --------------------------------------------------- */

jpki_err jpki_txn_new(const jpki_ctx *ctx, const jpki_txn_request *req,
                      jpki_txn **out)
{
    jpki_txn *t;
    *out = NULL;
    if (!ctx->finished || req == NULL || (unsigned)req->op > JPKI_OP_STATUS)
        return JPKI_ERR_INVALID;
    t = malloc(sizeof(*t));
    if (t == NULL)
        return JPKI_ERR_NOMEM;
    memset(t, 0, offsetof(struct jpki_txn, body));
    if (req->policy != NULL && !jpki_policy_ranges_ok(req->policy)) {
        free(t);
        return JPKI_ERR_INVALID;
    }
    t->ctx = ctx;
    t->pol = req->policy ? req->policy : &ctx->policy;
    t->req = *req;
    t->state = T_INIT;
    *out = t;
    return JPKI_OK;
}

void jpki_txn_free(jpki_txn *t)
{
    if (t == NULL)
        return;
    jpki_cert_free(t->cert);
    free(t->ocsp_req);
    if (t->scratch != NULL) {
        OPENSSL_cleanse(t->scratch, 2 * t->req.body_len + 2);
        free(t->scratch);
    }
    OPENSSL_cleanse(&t->s, sizeof(t->s));      /* the opened session */
    free(t);
}

jpki_step jpki_txn_step(jpki_txn *t)
{
    if (t->state == T_INIT) {
        switch (t->req.op) {
        case JPKI_OP_CHALLENGE: challenge(t); break;
        case JPKI_OP_LOGIN: login_begin(t); break;
        case JPKI_OP_LOGOUT: logout_begin(t); break;
        default: check_begin(t); break;
        }
    }
    switch (t->state) {
    case T_LOGIN_READ: case T_LOGIN_COMMIT: case T_FAIL_PUT:
    case T_REV_PUT: case T_SOFT_PUT: case T_CHECK_STORE:
    case T_LOGOUT_STORE: case T_LOGOUT_LOG: case T_CRL_META:
    case T_CRL_HGET:
        return JPKI_STEP_STORE;
    case T_OCSP:
        return JPKI_STEP_OCSP;
    case T_CRL:
        return JPKI_STEP_CRL;
    default:
        return JPKI_STEP_DONE;
    }
}

const jpki_store_cmd *jpki_txn_store_cmds(const jpki_txn *t, size_t *n)
{
    *n = t->n_cmds;
    return t->n_cmds ? t->cmds : NULL;
}

void jpki_txn_feed_store(jpki_txn *t, const jpki_store_result *res, size_t n)
{
    int st = t->state;

    if ((st == T_CRL_META || st == T_CRL_HGET)
        && (res == NULL || n != t->n_cmds
            || res[0].type == JPKI_STORE_R_ERROR
            || (n > 1 && res[1].type == JPKI_STORE_R_ERROR))) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL lookup in the store "
                 "failed");
        rev_next(t);                    /* the next method, or unavailable */
        return;
    }
    if (res == NULL || n != t->n_cmds) {
        if (st == T_REV_PUT || st == T_SOFT_PUT || st == T_FAIL_PUT) {
            res = NULL;                  /* a failed cache write is not fatal */
        } else {
            finish(t, res == NULL ? JPKI_ERR_TIMEOUT : JPKI_ERR_STORE);
            return;
        }
    }
    switch (st) {
    case T_LOGIN_READ: login_read(t, res); break;
    case T_LOGIN_COMMIT: login_committed(t, res); break;
    case T_FAIL_PUT: fail_put_fed(t, res); break;
    case T_CHECK_STORE: check_stored(t, res); break;
    case T_LOGOUT_STORE: logout_stored(t, res); break;
    case T_LOGOUT_LOG: logout_logged(t, res); break;
    case T_CRL_META: crl_meta_fed(t, res); break;
    case T_CRL_HGET: crl_hget_fed(t, res); break;
    case T_REV_PUT:
        if (res == NULL || failed(&res[0]))
            jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: revocation cache write "
                     "failed");
        rev_decide(t, t->rev_status);
        break;
    case T_SOFT_PUT:
        if (res == NULL || failed(&res[0]))
            jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: soft-pass record could "
                     "not be stored (cert_id %s)", t->cert->cert_id);
        t->rev_status = JPKI_REV_GOOD;
        rev_passed(t);
        break;
    default:
        finish(t, JPKI_ERR_INTERNAL);
    }
}

const char *jpki_txn_ocsp_url(const jpki_txn *t)
{
    return t->state == T_OCSP ? t->cert->issuer->ocsp_url : NULL;
}

const uint8_t *jpki_txn_ocsp_body(const jpki_txn *t, size_t *len)
{
    *len = t->state == T_OCSP ? t->ocsp_req_len : 0;
    return t->state == T_OCSP ? t->ocsp_req : NULL;
}

void jpki_txn_feed_ocsp(jpki_txn *t, int http_status, const uint8_t *body,
                        size_t len)
{
    jpki_rev_info info;
    jpki_err e;

    if (t->state != T_OCSP) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (http_status != 200 || body == NULL) {
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: OCSP responder for \"%s\" "
                 "failed (%s)", t->cert->issuer->name,
                 http_status ? "HTTP error" : "no answer or timeout");
        rev_next(t);
        return;
    }
    e = jpki_ocsp_check(t->ctx, t->cert, &t->ocsp_st, body, len,
                        (time_t)t->req.now, &info);
    if (e != JPKI_OK) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: OCSP response for \"%s\" "
                 "refused: %s", t->cert->issuer->name, jpki_reason(e));
        rev_next(t);
        return;
    }
    rev_answer(t, &info, "ocsp");
}

const char *jpki_txn_cert_id(const jpki_txn *t)
{
    return t->cert ? t->cert->cert_id : NULL;
}

const jpki_issuer *jpki_txn_issuer(const jpki_txn *t)
{
    return t->cert ? t->cert->issuer : NULL;
}

const uint8_t *jpki_txn_issuer_key(const jpki_txn *t)
{
    return t->cert ? t->cert->issuer_key_hash : NULL;
}

void jpki_txn_feed_crl(jpki_txn *t, jpki_err e, const jpki_rev_info *info)
{
    if (t->state != T_CRL) {
        finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (e != JPKI_OK || info == NULL) {
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: CRL of \"%s\" unusable: %s",
                 t->cert->issuer->name, jpki_reason(e));
        rev_next(t);
        return;
    }
    rev_answer(t, info, "crl");
}

const jpki_verdict *jpki_txn_verdict(const jpki_txn *t)
{
    return t->state == T_DONE ? &t->v : NULL;
}
