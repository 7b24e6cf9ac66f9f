/* txn_login.c - LOGIN: the body read, the cheap checks, the throttle, the
 * first store batch, the signature, the account, revocation, and the
 * commit that uses the challenge up. */
#include "txn_internal.h"
#include "crlptr.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    if (t->tls && t->req.body_len == 0 && !t->pol->require_account) {
        t->form = !t->req.wants_json;  /* a page's button: no fields */
        return JPKI_OK;
    }
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
    if (e == JPKI_OK && !t->tls && (t->f[F_CHALLENGE].value == NULL
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

/* Only local paths (txn_local_path). */
static void set_return_to(jpki_txn *t)
{
    const char *r = t->f[F_RETURN].value;

    snprintf(t->return_to, sizeof(t->return_to), "%s",
             txn_local_path(r) ? r : "/");
}

/* A TLS login's certificate: the handshake's; none over TLS 1.3 (or
 * without TLS) is the protocol's fault, not the user's. */
static jpki_err tls_login_cert(const jpki_txn *t)
{
    if (t->req.client_cert != NULL && t->req.client_cert_len > 0)
        return JPKI_OK;
    return t->req.tls_version == 0 || t->req.tls_version >= 0x0304
           ? JPKI_ERR_TLS_VERSION : JPKI_ERR_NO_CLIENT_CERT;
}

/* The cheap checks: the challenge (MAC, expiry, host) and the certificate
 * (its path is cached by fingerprint); a TLS login's: the handshake's. */
static jpki_err login_precheck(jpki_txn *t)
{
    jpki_err e;
    char detail[200];

    if (t->tls) {
        detail[0] = '\0';
        e = jpki_cert_check(t->ctx, t->req.client_cert,
                            t->req.client_cert_len, (time_t)t->req.now,
                            &t->cert, detail, sizeof(detail));
        if (e != JPKI_OK)
            jpki_log(t->ctx, JPKI_LOG_INFO, "jpki login: client certificate "
                     "refused: %s", detail[0] ? detail : jpki_strerror(e));
        return e;
    }
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

/* The signature over the challenge: after the throttle said yes (a TLS
 * login's key signed the handshake). */
static jpki_err login_verify(jpki_txn *t)
{
    uint8_t sig[SIG_MAX];
    size_t siglen = 0;
    int alg;

    if (t->tls)
        return JPKI_OK;
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
jpki_err txn_origin_check(const jpki_txn *t)
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
long long txn_count_of(const jpki_store_result *r)
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

void txn_throttled(jpki_txn *t, unsigned retry_after)
{
    txn_finish(t, JPKI_ERR_THROTTLED);
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
        txn_finish(t, e);
        return;
    }
    t->state = T_FAIL_PUT;
}

void txn_fail_put_fed(jpki_txn *t, const jpki_store_result *r)
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
        prev = txn_count_of(&r[t->fail_ix[k][1]]);
        if (thr_over(t, k, cur - 1, prev) == 0)
            continue;
        ra = thr_over(t, k, cur, prev);
        if (ra > retry)
            retry = ra;
    }
    if (retry > 0)
        txn_throttled(t, retry);
    else
        txn_finish(t, t->fail_err);
}

/* A refusal: counted when it is a login's. */
void txn_refuse(jpki_txn *t, jpki_err e)
{
    if (t->req.op == JPKI_OP_LOGIN)
        login_failed(t, e);
    else
        txn_finish(t, e);
}

void txn_login_begin(jpki_txn *t)
{
    int64_t w;
    jpki_err e = txn_origin_check(t);
    int k;

    if (e == JPKI_OK)
        e = login_parse(t);
    if (e == JPKI_OK && t->tls)
        e = tls_login_cert(t);
    if (e != JPKI_OK) {
        txn_finish(t, e);                 /* malformed: nothing to count */
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
    txn_cmd_add(t, JPKI_STORE_GET, "rev", t->cert->cert_id);
    t->ix_out = (int)t->n_cmds;
    txn_cmd_add(t, JPKI_STORE_GET, "out", t->cert->cert_id);
    t->ix_map = -1;
    if (t->req.map_source == JPKI_MAP_STORE) {
        t->ix_map = (int)t->n_cmds;
        txn_cmd_add(t, JPKI_STORE_GET, "map", t->cert->cert_id);
    }
    if (t->device)
        txn_device_read_cmd(t);          /* the flow waits for it */
    t->state = T_LOGIN_READ;
}

/* The time of a logout marker; 0 when there is none (or unreadable). */
int64_t txn_marker_time(const jpki_store_result *r)
{
    long long v = txn_count_of(r);
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

jpki_err txn_store_err(const jpki_store_result *r)
{
    return r->type == JPKI_STORE_R_FULL ? JPKI_ERR_STORE_FULL
                                        : JPKI_ERR_STORE;
}

int txn_failed(const jpki_store_result *r)
{
    return r->type == JPKI_STORE_R_ERROR || r->type == JPKI_STORE_R_FULL;
}

void txn_login_read(jpki_txn *t, const jpki_store_result *r)
{
    unsigned ra, retry = 0;
    size_t i;
    jpki_err e;
    int k;

    for (i = 0; i < t->n_cmds; i++)
        if (txn_failed(&r[i])) {
            txn_finish(t, txn_store_err(&r[i]));
            return;
        }
    if (t->device && (e = txn_device_read(t, r)) != JPKI_OK) {
        txn_finish(t, e);                 /* no flow waits for it */
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
        ra = thr_over(t, k, txn_count_of(&r[t->ix_thr[k][0]]),
                      txn_count_of(&r[t->ix_thr[k][1]]));
        if (ra > retry)
            retry = ra;
    }
    if (retry > 0) {
        txn_throttled(t, retry);          /* nothing verified, nothing written */
        return;
    }
    t->got_rev = r[t->ix_rev];
    t->out_at = txn_marker_time(&r[t->ix_out]);
    if (t->ix_map >= 0)
        t->got_map = r[t->ix_map];
    e = login_verify(t);
    t->key_proved = e == JPKI_OK;
    if (e == JPKI_OK)
        e = login_account(t, t->ix_map >= 0 ? &t->got_map : NULL);
    /* a card no account has, where it can enroll: its revocation is
     * checked first (no token for a revoked card) */
    if (e == JPKI_ERR_NOT_MAPPED && t->pol->enroll_page[0] != '\0') {
        t->enroll_pending = 1;
        e = JPKI_OK;
    }
    if (e != JPKI_OK) {
        login_failed(t, e);
        return;
    }
    if (!txn_rev_cached(t, &t->got_rev))
        txn_rev_start(t);
}

/* Everything checked: the challenge is used up (single use is decided
 * here, so a refused login never writes it), the login counted, a fresh
 * OCSP answer cached. */
void txn_login_commit(jpki_txn *t)
{
    int64_t ttl = (int64_t)t->ch_exp - t->req.now + t->pol->clock_skew;
    int64_t w = thr_window(t);

    if (t->enroll_pending) {             /* not revoked: it may enroll */
        login_failed(t, JPKI_ERR_NOT_MAPPED);
        return;
    }
    t->n_cmds = 0;
    if (!t->tls)
        txn_cmd_val(txn_cmd_add(t, JPKI_STORE_SETNX, "ch", t->ch_id), "1",
                    (uint32_t)(ttl < 1 ? 1000 : ttl * 1000));
    if (thr_id(t, THR_LC) != NULL) {
        thr_cmd(t, JPKI_STORE_INCR, THR_LC, w);
        thr_cmd(t, JPKI_STORE_PEXPIRE, THR_LC, w);
    }
    if (t->rev_put_pending)
        t->cmds[t->n_cmds++] = t->rev_put;
    if (t->req.map_source == JPKI_MAP_STORE) {
        /* the binding's last login (the admin API lists it) */
        char at[24];
        jpki_store_cmd *c = txn_cmd_add(t, JPKI_STORE_SET, "last",
                                        t->cert->cert_id);
        snprintf(at, sizeof(at), "%lld", (long long)t->req.now);
        txn_cmd_val(c, at, LAST_TTL_S * 1000u);
        c->soft = 1;
    }
    if (!t->tls)
        txn_cmd_wait(t);                 /* the challenge's use kept */
    t->state = T_LOGIN_COMMIT;
    if (t->n_cmds == 0)
        txn_login_success(t);            /* nothing to write */
}

void txn_login_committed(jpki_txn *t, const jpki_store_result *r)
{
    if (t->tls) {
        txn_login_success(t);            /* no challenge to use up */
        return;
    }
    if (r[0].type != JPKI_STORE_R_INT) {
        txn_finish(t, txn_store_err(&r[0]));
        return;
    }
    if (r[0].n != 1) {
        login_failed(t, JPKI_ERR_CHALLENGE_REPLAY);
        return;
    }
    if (!txn_waited(t, r, "the challenge's use")) {
        txn_finish(t, JPKI_ERR_STORE);
        return;
    }
    txn_login_success(t);
}

void txn_set_session_cookie(jpki_txn *t)
{
    char val[JPKI_SESSION_MAX + 1];
    size_t n;
    jpki_err e = jpki_session_seal(t->ctx, &t->s, val, sizeof(val), &n);
    if (e != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    txn_cookie_header(t, val, (long)(t->s.expires - t->req.now));
}

void txn_login_success(jpki_txn *t)
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
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    t->s.rev_ref_len = (uint8_t)rl;
    jpki_hex_encode(sid, sizeof(sid), t->s.sid);
    if (t->device) {
        txn_device_signed(t);            /* the session is the flow's */
        return;
    }
    txn_session_issued(t, t->form);
}

/* The session t->s sealed into its cookie, and the verdict of a login:
 * the account, and for a browser's form (back) 303 to return_to. */
void txn_session_issued(jpki_txn *t, int back)
{
    txn_set_session_cookie(t);
    if (t->state == T_DONE)
        return;
    t->v.account = t->s.account;
    t->v.cert_id = t->s.cert_id;
    t->v.auth_time = t->s.auth_time;
    snprintf(t->body, sizeof(t->body), "{\"status\":\"ok\",\"account\":\"%s\","
             "\"expires\":%lld}", t->s.account, (long long)t->s.expires);
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    txn_finish(t, JPKI_OK);
    if (back && !t->req.wants_json) {
        snprintf(t->location, sizeof(t->location), "%s", t->return_to);
        t->v.location = t->location;
        t->v.http_status = 303;
    }
}
