/* txn.c - the sans-I/O transaction: CHALLENGE, LOGIN, CHECK, LOGOUT,
 * STATUS.  The adapter asks jpki_txn_step() what to do next, performs the
 * store commands or the OCSP POST its own way, feeds the results back, and
 * reads the verdict.  Every failure fed back ends fail-closed (or, with the
 * fail_open policy, passes with an audit record when only revocation data
 * is missing). */
#include "txn_internal.h"
#include "gate.h"
#include "crlptr.h"
#include "form.h"
#include "metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

/* ---- verdicts ----------------------------------------------------- */

static int status_of(jpki_err e)
{
    switch (e) {
    case JPKI_OK:
        return 200;
    case JPKI_ERR_TOO_LARGE:
        return 413;
    case JPKI_ERR_NOT_FOUND:
        return 404;
    case JPKI_ERR_METHOD:
        return 405;
    case JPKI_ERR_BAD_REQUEST: case JPKI_ERR_PARSE:
    case JPKI_ERR_CHALLENGE_FORMAT: case JPKI_ERR_CHALLENGE_HOST:
    case JPKI_ERR_BAD_HOST:
    case JPKI_ERR_CERT_PARSE: case JPKI_ERR_SIG_ALG:
    case JPKI_ERR_TLS_VERSION:
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
    case JPKI_ERR_NO_CLIENT_CERT:
        return 401;
    case JPKI_ERR_REVOKED: case JPKI_ERR_ON_HOLD:
    case JPKI_ERR_REVOCATION_UNKNOWN: case JPKI_ERR_NOT_MAPPED:
    case JPKI_ERR_ACCOUNT_MISMATCH: case JPKI_ERR_CROSS_ORIGIN:
    case JPKI_ERR_FLOW_MISMATCH:
        return 403;
    case JPKI_ERR_FLOW_UNKNOWN: case JPKI_ERR_TOKEN_EXPIRED:
        return 410;
    case JPKI_ERR_FORBIDDEN: case JPKI_ERR_TOKEN_INVALID:
        return 403;
    case JPKI_ERR_TOKEN_USED: case JPKI_ERR_CERT_BOUND:
    case JPKI_ERR_ACCOUNT_FULL: case JPKI_ERR_MAP_FILE:
        return 409;
    case JPKI_ERR_NOT_BOUND:
        return 404;
    case JPKI_ERR_THROTTLED:
        return 429;
    case JPKI_ERR_NOMEM: case JPKI_ERR_INTERNAL: case JPKI_ERR_INVALID:
        return 500;
    default:
        return 503;
    }
}

int txn_status_of(jpki_err e)
{
    return status_of(e);
}

const char *txn_event_name(jpki_op op)
{
    static const char *const n[] = {"challenge", "login", "check", "logout",
                                    "status", "login", "health", "page",
                                    "asset", "device", "login", "poll",
                                    "admin", "metrics"};
    return (unsigned)op < sizeof(n) / sizeof(n[0]) ? n[op] : "unknown";
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

/* The request id, settled when first needed: the adapter's (given, or
 * asked of its function), or one of the core's. */
const char *txn_rid(jpki_txn *t)
{
    const char *id = NULL;
    size_t len = 0;

    if (t->rid[0] != '\0')
        return t->rid;
    if (t->req.request_id != NULL) {
        id = t->req.request_id;
        len = t->req.request_id_len;
    } else if (t->req.request_id_fn != NULL) {
        id = t->req.request_id_fn(t->req.request_id_ud, &len);
    }
    if (id != NULL && jpki_audit_rid_ok(id, len)) {
        memcpy(t->rid, id, len);
        t->rid[len] = '\0';
    } else {
        jpki_audit_rid_make(t->rid);
    }
    return t->rid;
}

void txn_audit_fields(jpki_txn *t, jpki_audit_fields *f)
{
    memset(f, 0, sizeof(*f));
    f->ts = t->req.now;
    f->event = txn_event_name(t->req.op);
    f->peer = safe_peer(t->req.peer);
    f->request_id = txn_rid(t);
    f->location = t->req.uri != NULL ? t->req.uri : "";
    f->revocation = t->rev_source ? t->rev_source : "none";
    f->revocation_age = t->rev_produced > 0 && t->req.now >= t->rev_produced
                        ? t->req.now - t->rev_produced : -1;
    f->soft_pass = t->v.soft_pass;
}

static void make_audit(jpki_txn *t, jpki_err e)
{
    jpki_audit_fields f;
    unsigned suppressed = 0;

    txn_audit_fields(t, &f);
    f.account = t->have_session ? t->s.account : "";
    f.cert_id = t->cert ? t->cert->cert_id
                : t->have_session ? t->s.cert_id : "";
    f.issuer = t->cert ? t->cert->issuer->name : "";
    /* a flood of refused logins must not flood the log: refusals are
     * written at most the throttle's limits a minute per certificate and
     * per address, the others counted into the next line ("suppressed") */
    if (t->req.op == JPKI_OP_LOGIN && e != JPKI_OK
        && !jpki_audit_admit(t->ctx, f.cert_id, t->pol->throttle_cert,
                             t->peer_id[0] ? t->peer_id : NULL,
                             t->pol->throttle_addr, t->pol->throttle_window,
                             t->req.now, &suppressed))
        return;
    f.suppressed = suppressed;
    f.result = e == JPKI_OK ? "ok" : status_of(e) >= 500 ? "error" : "denied";
    f.reason = jpki_reason(e);
    if (jpki_audit_body(t->audit, sizeof(t->audit), &f) > 0)
        t->v.audit = t->audit;
}

void txn_cookie_header(jpki_txn *t, const char *value, long max_age)
{
    const jpki_policy *p = t->pol;
    snprintf(t->cookie, sizeof(t->cookie),
             "%s=%s; Path=%s; Max-Age=%ld%s%s; SameSite=%s", p->cookie_name,
             value, p->cookie_path, max_age, p->cookie_secure ? "; Secure" : "",
             p->cookie_httponly ? "; HttpOnly" : "", p->cookie_samesite);
    t->v.set_cookie = t->cookie;
}

void txn_finish(jpki_txn *t, jpki_err e)
{
    t->v.err = e;
    t->v.reason = jpki_reason(e);
    t->v.http_status = status_of(e);
    if (e == JPKI_ERR_METHOD)                /* login, logout: POST only */
        t->v.allow = t->req.op == JPKI_OP_LOGIN || t->req.op == JPKI_OP_LOGOUT
                     || t->req.op == JPKI_OP_DEVICE_START ? "POST"
                                                          : "GET, HEAD";
    if (e != JPKI_OK) {
        t->v.body = t->body;
        t->v.body_len = jpki_error_json(e, t->body, sizeof(t->body));
        t->v.account = NULL;
        if (t->have_session)             /* a dead session: clear it */
            txn_cookie_header(t, "", 0);
        txn_device_ended(t);             /* a flow's cookie: cleared */
    }
    if (t->req.op == JPKI_OP_LOGIN || t->req.op == JPKI_OP_LOGOUT
        || t->v.soft_pass || (e != JPKI_OK && t->rechecked))
        make_audit(t, e);
    /* a login refusal left out of the audit is left out of the log too */
    txn_enroll_offer(t, e);
    txn_page_redirect(t, e);
    if (e != JPKI_OK && (t->req.op != JPKI_OP_LOGIN || t->v.audit != NULL))
        jpki_log(t->ctx, status_of(e) >= 500 ? JPKI_LOG_ERROR : JPKI_LOG_INFO,
                 "jpki %s refused: %s (cert_id %s)", txn_event_name(t->req.op),
                 jpki_reason(e), t->cert ? t->cert->cert_id
                 : t->have_session ? t->s.cert_id : "-");
    txn_metrics_finish(t, e);
    t->state = T_DONE;
}

size_t txn_url_encode(char *buf, size_t size, size_t o, const char *s)
{
    size_t i;

    for (i = 0; i < 1024 && s[i] && o + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || strchr("/-_.~", c))
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, 4, "%%%02X", c);
    }
    buf[o] = '\0';
    return o;
}

/* Not signed in: API clients get 401 JSON, browsers the login page. */
void txn_unauthenticated(jpki_txn *t, jpki_err e)
{
    const char *lp = t->pol->login_page;
    txn_finish(t, e);
    if (t->req.op == JPKI_OP_CHECK && !t->req.wants_json && lp[0] != '\0'
        && t->v.http_status == 401) {
        size_t o;
        const char *u = t->req.uri ? t->req.uri : "/";
        o = (size_t)snprintf(t->location, sizeof(t->location), "%s%creturn_to=",
                             lp, strchr(lp, '?') ? '&' : '?');
        txn_url_encode(t->location, sizeof(t->location), o, u);
        t->v.location = t->location;
        t->v.http_status = 302;
    }
}

/* ---- store commands ----------------------------------------------- */

jpki_store_cmd *txn_cmd_add(jpki_txn *t, jpki_store_op op, const char *kind,
                               const char *id)
{
    jpki_store_cmd *c = &t->cmds[t->n_cmds++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = (size_t)snprintf(c->key, sizeof(c->key), "%s%s:%s",
                                 JPKI_STORE_PREFIX, kind, id);
    return c;
}

void txn_cmd_val(jpki_store_cmd *c, const char *v, uint32_t ttl_ms)
{
    size_t n = strlen(v);
    if (n > sizeof(c->val))
        n = sizeof(c->val);
    memcpy(c->val, v, n);
    c->vallen = n;
    c->ttl_ms = ttl_ms;
}

int txn_cmd_wait(jpki_txn *t)
{
    jpki_store_cmd *c;

    if (t->ctx->replicas == 0 || !t->req.shared_store
        || t->n_cmds >= MAX_CMDS)
        return 0;
    c = &t->cmds[t->n_cmds++];
    memset(c, 0, sizeof(*c));
    c->op = JPKI_STORE_WAIT;
    c->val[0] = (uint8_t)('0' + t->ctx->replicas);
    c->vallen = 1;
    c->ttl_ms = t->ctx->replicas_wait_ms;
    return 1;
}

int txn_waited(jpki_txn *t, const jpki_store_result *r, const char *what)
{
    const jpki_store_result *w;

    if (t->ctx->replicas == 0 || !t->req.shared_store)
        return 1;
    if (t->n_cmds == 0 || t->cmds[t->n_cmds - 1].op != JPKI_STORE_WAIT) {
        /* asked for, but the batch had no room for it: fail closed */
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: %s: no WAIT for the "
                 "replicas in its round (store replicas=)", what);
        return 0;
    }
    w = &r[t->n_cmds - 1];
    if (w->type == JPKI_STORE_R_INT && w->n >= (long long)t->ctx->replicas)
        return 1;
    if (w->type == JPKI_STORE_R_INT)
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: %s reached %lld of the %u "
                 "replicas within %u ms (store replicas=): refused, a "
                 "failover could undo it", what, w->n, t->ctx->replicas,
                 (unsigned)t->ctx->replicas_wait_ms);
    else
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: %s: WAIT for the replicas "
                 "failed (store replicas=)", what);
    return 0;
}

/* rev value: status|reason|revoked_at|checked_at|source */
const char *const txn_rev_names[] = {"good", "revoked", "hold", "unknown"};

int txn_rev_parse(const jpki_store_result *r, jpki_rev_status *st)
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
        if (strcmp(buf, txn_rev_names[i]) == 0) {
            *st = (jpki_rev_status)i;
            return 1;
        }
    return 0;
}

/* ---- CHALLENGE ---------------------------------------------------- */

void txn_challenge(jpki_txn *t)
{
    char ch[JPKI_CHALLENGE_LEN + 1];
    time_t exp;
    jpki_err e;

    if (t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    /* bound to the Host it is fetched from (relay between sites) */
    e = jpki_challenge_issue(t->ctx, (time_t)t->req.now, t->req.host,
                             t->req.host_len, ch, &exp);
    if (e != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    snprintf(t->body, sizeof(t->body), "{\"challenge\":\"%s\",\"expires\":"
             "%lld,\"algorithms\":[\"rsa-pkcs1-sha256\",\"rsa-pkcs1-sha384\","
             "\"rsa-pkcs1-sha512\",%s\"ecdsa-sha256\",\"ecdsa-sha384\"]}", ch,
             (long long)exp, t->pol->allow_sha1 ? "\"rsa-pkcs1-sha1\","
             : "");
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    txn_finish(t, JPKI_OK);
}

/* ---- public API --------------------------------------------------- */

int jpki_op_is_login(jpki_op op)
{
    return op == JPKI_OP_LOGIN || op == JPKI_OP_TLS_LOGIN
           || op == JPKI_OP_DEVICE_SIGN;
}

int jpki_op_has_body(jpki_op op)
{
    return jpki_op_is_login(op) || op == JPKI_OP_DEVICE_START
           || op == JPKI_OP_ADMIN;
}

unsigned jpki_tls_version_of(const char *name)
{
    if (name != NULL && strcmp(name, "TLSv1.2") == 0)
        return 0x0303;
    if (name != NULL && strcmp(name, "TLSv1.3") == 0)
        return 0x0304;
    return 0;
}

/* The client certificate (DER, the transaction's copy) and the protocol
 * version of the connection ssl. */
static jpki_err tls_client(jpki_txn *t, SSL *ssl)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    unsigned char *p;
    int n;

    t->req.tls_version = (unsigned)SSL_version(ssl);
    t->req.client_cert = NULL;
    t->req.client_cert_len = 0;
    if (x == NULL || (n = i2d_X509(x, NULL)) <= 0)
        return JPKI_OK;
    t->tls_der = malloc((size_t)n);
    if (t->tls_der == NULL)
        return JPKI_ERR_NOMEM;
    p = t->tls_der;
    i2d_X509(x, &p);
    t->req.client_cert = t->tls_der;
    t->req.client_cert_len = (size_t)n;
    return JPKI_OK;
}

/* ---- reuse -----------------------------------------------------------
 * A transaction (12 KB) ends with its request.  Given back to malloc every
 * time, transactions took the heap's top over glibc's trim threshold again
 * and again, so that the next requests grew it back page by page (brk, a
 * page fault a page): a tenth of an nginx worker's time on gated requests.
 * The process keeps up to TXN_KEEP ended ones for the next requests, under
 * a lock (Apache's threads share them).  Under ASan a kept one is poisoned
 * until it is taken again, so that a use after jpki_txn_free() is still
 * reported. */
#define TXN_KEEP 64

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define TXN_POISON(t) ASAN_POISON_MEMORY_REGION( \
        (char *)(t) + sizeof(struct txn_kept_link), \
        sizeof(jpki_txn) - sizeof(struct txn_kept_link))
#define TXN_UNPOISON(t) ASAN_UNPOISON_MEMORY_REGION((t), sizeof(jpki_txn))
#else
#define TXN_POISON(t) ((void)0)
#define TXN_UNPOISON(t) ((void)0)
#endif

/* A kept transaction's first bytes: the next one kept. */
struct txn_kept_link {
    jpki_txn *next;
};

static pthread_mutex_t txn_keep_lock = PTHREAD_MUTEX_INITIALIZER;
static jpki_txn *txn_kept;
static unsigned txn_nkept;

static jpki_txn *txn_take(void)
{
    jpki_txn *t = NULL;

    pthread_mutex_lock(&txn_keep_lock);
    if (txn_kept != NULL) {
        t = txn_kept;
        txn_kept = ((struct txn_kept_link *)(void *)t)->next;
        txn_nkept--;
    }
    pthread_mutex_unlock(&txn_keep_lock);
    if (t != NULL) {
        TXN_UNPOISON(t);
        return t;
    }
    return malloc(sizeof(*t));
}

static void txn_give_back(jpki_txn *t)
{
    pthread_mutex_lock(&txn_keep_lock);
    if (txn_nkept < TXN_KEEP) {
        ((struct txn_kept_link *)(void *)t)->next = txn_kept;
        TXN_POISON(t);
        txn_kept = t;
        txn_nkept++;
        t = NULL;
    }
    pthread_mutex_unlock(&txn_keep_lock);
    free(t);
}

jpki_err jpki_txn_new(const jpki_ctx *ctx, const jpki_txn_request *req,
                      jpki_txn **out)
{
    jpki_txn *t;
    *out = NULL;
    if (!ctx->finished || req == NULL
        || (unsigned)req->op > JPKI_OP_METRICS)
        return JPKI_ERR_INVALID;
    if (req->policy != NULL && !jpki_policy_ranges_ok(req->policy))
        return JPKI_ERR_INVALID;
    t = txn_take();
    if (t == NULL)
        return JPKI_ERR_NOMEM;
    memset(t, 0, offsetof(struct jpki_txn, body));
    t->ctx = ctx;
    t->pol = req->policy ? req->policy : &ctx->policy;
    t->req = *req;
    if (req->op == JPKI_OP_TLS_LOGIN) {
        /* a login, its key proved by the TLS handshake */
        t->tls = 1;
        t->req.op = JPKI_OP_LOGIN;
        if (req->tls != NULL && tls_client(t, (SSL *)req->tls) != JPKI_OK) {
            txn_give_back(t);
            return JPKI_ERR_NOMEM;
        }
        if (t->req.client_cert != NULL && t->req.client_cert_len == 0)
            t->req.client_cert_len = strlen((const char *)t->req.client_cert);
    }
    if (req->op == JPKI_OP_DEVICE_SIGN) {
        /* a login's checks; the session goes to the flow's browser */
        t->device = 1;
        t->req.op = JPKI_OP_LOGIN;
    }
    /* the request id: when a line or a record needs it (txn_rid) */
    t->rid[0] = '\0';
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
    free(t->tls_der);
    free(t->health);
    free(t->hm);
    free(t->big);
    if (t->scratch != NULL) {
        OPENSSL_cleanse(t->scratch, 2 * t->req.body_len + 2);
        free(t->scratch);
    }
    OPENSSL_cleanse(&t->s, sizeof(t->s));      /* the opened session */
    txn_give_back(t);
}

jpki_step jpki_txn_step(jpki_txn *t)
{
    if (t->state == T_INIT) {
        switch (t->req.op) {
        case JPKI_OP_CHALLENGE: txn_challenge(t); break;
        case JPKI_OP_LOGIN: txn_login_begin(t); break;
        case JPKI_OP_LOGOUT: txn_logout_begin(t); break;
        case JPKI_OP_HEALTH: case JPKI_OP_METRICS: txn_health(t); break;
        case JPKI_OP_PAGE: txn_page(t); break;
        case JPKI_OP_ASSET: txn_asset(t); break;
        case JPKI_OP_DEVICE_START: txn_device_start(t); break;
        case JPKI_OP_DEVICE_POLL: txn_device_poll(t); break;
        case JPKI_OP_ADMIN: txn_admin(t); break;
        default: txn_check_begin(t); break;
        }
    }
    switch (t->state) {
    case T_LOGIN_READ: case T_LOGIN_COMMIT: case T_FAIL_PUT:
    case T_REV_PUT: case T_SOFT_PUT: case T_CHECK_STORE:
    case T_LOGOUT_STORE: case T_LOGOUT_LOG: case T_CRL_META:
    case T_CRL_HGET: case T_HEALTH_STORE: case T_FLOW_GUARD: case T_FLOW_START:
    case T_FLOW_SIGNED: case T_FLOW_NOTE: case T_FLOW_READ: case T_FLOW_TAKE:
    case T_ADMIN:
        return JPKI_STEP_STORE;
    case T_DONE:
        /* a signer's refusal, once its key signed, told to the flow's
         * browser */
        return txn_device_note(t) ? JPKI_STEP_STORE : JPKI_STEP_DONE;
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

    txn_metrics_store(t, res, n);
    if (st == T_HEALTH_STORE) {
        txn_health_fed(t, res, n);
        return;
    }
    if (st == T_ADMIN) {
        txn_admin_fed(t, res, n);
        return;
    }
    if ((st == T_CRL_META || st == T_CRL_HGET)
        && (res == NULL || n != t->n_cmds
            || res[0].type == JPKI_STORE_R_ERROR
            || (n > 1 && res[1].type == JPKI_STORE_R_ERROR))) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: CRL lookup in the store "
                 "failed");
        txn_rev_next(t);                    /* the next method, or unavailable */
        return;
    }
    if (st == T_CHECK_STORE && txn_check_outage(t, res, n))
        return;
    if (res == NULL || n != t->n_cmds) {
        if (st == T_REV_PUT || st == T_SOFT_PUT || st == T_FAIL_PUT
            || st == T_FLOW_NOTE) {
            res = NULL;                  /* a failed cache write is not fatal */
        } else {
            txn_finish(t, res == NULL ? JPKI_ERR_TIMEOUT : JPKI_ERR_STORE);
            return;
        }
    }
    switch (st) {
    case T_LOGIN_READ: txn_login_read(t, res); break;
    case T_LOGIN_COMMIT: txn_login_committed(t, res); break;
    case T_FAIL_PUT: txn_fail_put_fed(t, res); break;
    case T_CHECK_STORE: txn_check_stored(t, res); break;
    case T_LOGOUT_STORE: txn_logout_stored(t, res); break;
    case T_LOGOUT_LOG: txn_logout_logged(t, res); break;
    case T_CRL_META: txn_crl_meta_fed(t, res); break;
    case T_CRL_HGET: txn_crl_hget_fed(t, res); break;
    case T_FLOW_GUARD: txn_device_guarded(t, res); break;
    case T_FLOW_START: txn_device_started(t, res); break;
    case T_FLOW_SIGNED: txn_device_signed_fed(t, res); break;
    case T_FLOW_NOTE: t->state = T_DONE; break;
    case T_FLOW_READ: txn_device_poll_read(t, res); break;
    case T_FLOW_TAKE: txn_device_poll_taken(t, res); break;
    case T_REV_PUT:
        if (res == NULL || txn_failed(&res[0]))
            jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: revocation cache write "
                     "failed");
        txn_rev_decide(t, t->rev_status);
        break;
    case T_SOFT_PUT:
        if (res == NULL || txn_failed(&res[0]))
            jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: soft-pass record could "
                     "not be stored (cert_id %s)", t->cert->cert_id);
        t->rev_status = JPKI_REV_GOOD;
        txn_rev_passed(t);
        break;
    default:
        txn_finish(t, JPKI_ERR_INTERNAL);
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
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (http_status != 200 || body == NULL) {
        txn_metrics_ocsp(t, http_status ? JPKI_MO_HTTP_ERROR
                                        : JPKI_MO_NO_ANSWER);
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: OCSP responder for \"%s\" "
                 "failed (%s)", t->cert->issuer->name,
                 http_status ? "HTTP error" : "no answer or timeout");
        txn_rev_next(t);
        return;
    }
    e = jpki_ocsp_check(t->ctx, t->cert, &t->ocsp_st, body, len,
                        (time_t)t->req.now, &info);
    txn_metrics_ocsp(t, e == JPKI_OK ? JPKI_MO_OK : JPKI_MO_BAD_ANSWER);
    if (e != JPKI_OK) {
        jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: OCSP response for \"%s\" "
                 "refused: %s", t->cert->issuer->name, jpki_reason(e));
        txn_rev_next(t);
        return;
    }
    txn_rev_answer(t, &info, "ocsp");
}

const char *jpki_txn_cert_id(const jpki_txn *t)
{
    return t->cert ? t->cert->cert_id : NULL;
}

const char *jpki_txn_ocsp_key(const jpki_txn *t)
{
    /* with a nonce, each query is its own */
    if (t->cert == NULL || jpki_ctx_get_policy(t->ctx)->ocsp_nonce)
        return NULL;
    return t->cert->cert_id;
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
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (e != JPKI_OK || info == NULL) {
        jpki_log(t->ctx, JPKI_LOG_WARN, "jpki: CRL of \"%s\" unusable: %s",
                 t->cert->issuer->name, jpki_reason(e));
        txn_rev_next(t);
        return;
    }
    txn_rev_answer(t, info, "crl");
}

const jpki_verdict *jpki_txn_verdict(const jpki_txn *t)
{
    return t->state == T_DONE ? &t->v : NULL;
}
