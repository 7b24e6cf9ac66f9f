/* txn_device.c - the device flow (docs/protocol.md section 7): a page
 * starts a flow (a challenge, and a secret kept in the browser's cookie),
 * a signer (a phone, jpki-login) signs its challenge with the card and
 * posts the login into the flow, and the page's poll takes the session,
 * only with the browser's secret.
 *
 * Store (docs/store-schema.md): flow:<challenge id> is "p" | bind while
 * the flow waits, "x" | bind | error once a signer's key was refused, "d"
 * | AES-256-GCM(bind, the session's certificate part) once signed, with
 * flowa:<id> the account; bind = SHA-256("jpki-flow-bind:" | secret)[0..16].
 * The sealed part is under a key of the site secret and the flow, so a
 * store dump holds no certificate reference in clear. */
#include "txn_internal.h"
#include "qr.h"
#include "page.h"
#include "enroll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_GRACE 60              /* s a signed flow waits for its poll
                                      past its challenge's expiry */
#define FLOW_SECRET 16
#define FLOW_COOKIE_LEN (JPKI_CHALLENGE_LEN + 1 + 2 * FLOW_SECRET)
#define REF_MAX 53                 /* jpki_session.rev_ref */
#define PT_LEN (16 + 16 + 8 + 1 + REF_MAX + 8 + 8 + 8 + 1)
#define SEALED_LEN (1 + PT_LEN + 16)

static const char flow_aad[] = "jpki-flow-v1";

/* ---- keys and records --------------------------------------------- */

static int flow_key(const jpki_txn *t, uint8_t key[32])
{
    uint8_t k0[32];
    int ok = jpki_hkdf(t->ctx->secret, t->ctx->secret_len,
                       "jpki device flow v1", k0, sizeof(k0))
             && jpki_hmac_sha256(k0, sizeof(k0), (const uint8_t *)t->flow_id,
                                 strlen(t->flow_id), NULL, 0, key);
    OPENSSL_cleanse(k0, sizeof(k0));
    return ok;
}

static int flow_bind(const uint8_t secret[FLOW_SECRET], uint8_t out[16])
{
    static const char label[] = "jpki-flow-bind:";
    uint8_t buf[sizeof(label) - 1 + FLOW_SECRET], md[32];
    unsigned int n = 0;
    int ok;

    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, secret, FLOW_SECRET);
    ok = EVP_Digest(buf, sizeof(buf), md, &n, jpki_md(JPKI_MD_SHA256), NULL)
         == 1 && n == 32;
    memcpy(out, md, 16);
    return ok;
}

/* The signed flow's record: the session's certificate part sealed. */
static int seal_record(const jpki_txn *t, uint8_t out[SEALED_LEN])
{
    uint8_t pt[PT_LEN], key[32], iv[12] = {0}, *p = pt;
    size_t got = 0, got2 = 0;
    int ok;

    memset(pt, 0, sizeof(pt));
    memcpy(p, t->flow_bind, 16);
    p += 16;
    if (jpki_hex_decode(t->s.cert_id, 32, p, 16, &got) != JPKI_OK
        || jpki_hex_decode(t->s.issuer_tag, 16, p + 16, 8, &got2) != JPKI_OK
        || got != 16 || got2 != 8 || t->s.rev_ref_len > REF_MAX)
        return 0;
    p += 24;
    *p++ = t->s.rev_ref_len;
    memcpy(p, t->s.rev_ref, t->s.rev_ref_len);
    p += REF_MAX;
    jpki_put64(p, t->s.auth_time);
    jpki_put64(p + 8, t->s.expires);
    jpki_put64(p + 16, t->s.rev_checked);
    p[24] = t->s.flags;
    out[0] = 'd';
    /* a key of its own for each flow, used once: the IV may be fixed */
    ok = flow_key(t, key)
         && jpki_gcm(1, key, iv, (const uint8_t *)flow_aad,
                     sizeof(flow_aad) - 1, pt, PT_LEN, out + 1,
                     out + 1 + PT_LEN);
    OPENSSL_cleanse(pt, sizeof(pt));
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

/* The record opened into t->s: 1, 0 when it does not open, -1 when it is
 * another browser's. */
static int open_record(jpki_txn *t, const uint8_t *v, size_t len)
{
    uint8_t pt[PT_LEN], key[32], iv[12] = {0}, tag[16];
    const uint8_t *p = pt;
    int ok;

    if (len != SEALED_LEN || v[0] != 'd')
        return 0;
    memcpy(tag, v + 1 + PT_LEN, 16);
    ok = flow_key(t, key)
         && jpki_gcm(0, key, iv, (const uint8_t *)flow_aad,
                     sizeof(flow_aad) - 1, v + 1, PT_LEN, pt, tag);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return 0;
    if (!jpki_ct_equal(p, t->flow_bind, 16)) {
        OPENSSL_cleanse(pt, sizeof(pt));
        return -1;
    }
    p += 16;
    jpki_hex_encode(p, 16, t->s.cert_id);
    jpki_hex_encode(p + 16, 8, t->s.issuer_tag);
    p += 24;
    t->s.rev_ref_len = *p > REF_MAX ? REF_MAX : *p;
    memcpy(t->s.rev_ref, p + 1, t->s.rev_ref_len);
    p += 1 + REF_MAX;
    t->s.auth_time = jpki_get64(p);
    t->s.expires = jpki_get64(p + 8);
    t->s.rev_checked = jpki_get64(p + 16);
    t->s.flags = p[24];
    OPENSSL_cleanse(pt, sizeof(pt));
    return 1;
}

/* The TTL of a flow's record from now (ms). */
static uint32_t flow_ttl(const jpki_txn *t, int grace)
{
    int64_t s = (int64_t)t->ch_exp - t->req.now + (grace ? FLOW_GRACE : 0);
    return (uint32_t)(s < 1 ? 1000 : s * 1000);
}

/* The flow's cookie: set (value) or cleared (NULL). */
static void flow_cookie(jpki_txn *t, char *out, size_t max, const char *value,
                        long max_age)
{
    char prefix[300];

    txn_prefix(t, prefix, sizeof(prefix));
    snprintf(out, max, "%s=%s; Path=%s; Max-Age=%ld%s; HttpOnly; "
             "SameSite=Strict", JPKI_FLOW_COOKIE, value ? value : "", prefix,
             value ? max_age : 0, t->pol->cookie_secure ? "; Secure" : "");
}

/* The origin the signer is sent to: the request's scheme and Host (only
 * a host name or address and a port; 0 otherwise). */
static int flow_origin(const jpki_txn *t, char *out, size_t max)
{
    size_t i;

    if (t->req.host == NULL || t->req.host_len == 0 || t->req.host_len > 255)
        return 0;
    for (i = 0; i < t->req.host_len; i++) {
        char c = t->req.host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || strchr(".-:[]", c)))
            return 0;
    }
    snprintf(out, max, "%s://%.*s", t->req.https ? "https" : "http",
             (int)t->req.host_len, t->req.host);
    return 1;
}

/* A page's return_to from a body or a query (urlencoded): t->return_to,
 * "/" when absent or not a local path. */
static void flow_return_to(jpki_txn *t, const char *s, size_t len)
{
    jpki_form_field f[1] = {{"return_to", 1024, NULL, 0, 0, 0}};
    char *scratch;

    snprintf(t->return_to, sizeof(t->return_to), "/");
    if (s == NULL || len == 0 || len > 4096
        || (scratch = malloc(2 * len + 2)) == NULL)
        return;
    if (jpki_form_parse_urlencoded((const uint8_t *)s, len, scratch, f, 1)
        == JPKI_OK && txn_local_path(f[0].value))
        snprintf(t->return_to, sizeof(t->return_to), "%s", f[0].value);
    free(scratch);
}

/* ---- START: the page asks for a flow ----------------------------- */

/* A command on the counter of flows started from the request's address
 * in the throttle's window (at - 0) or the one before (-1). */
static void start_count(jpki_txn *t, jpki_store_op op, int64_t at)
{
    jpki_store_cmd *c = &t->cmds[t->n_cmds++];
    int64_t w = t->req.now / t->pol->throttle_window + at;

    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = jpki_throttle_key(c->key, sizeof(c->key), "ds", t->peer_id,
                                  w);
    c->soft = 1;
    if (op == JPKI_STORE_PEXPIRE)
        c->ttl_ms = (2 * t->pol->throttle_window + 1) * 1000u;
}

void txn_device_start(jpki_txn *t)
{
    uint8_t secret[FLOW_SECRET];
    time_t exp = 0;
    jpki_err e;

    if (!t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    /* another site's page cannot start one in this browser */
    e = txn_origin_check(t);
    if (e == JPKI_OK)
        e = jpki_challenge_issue(t->ctx, (time_t)t->req.now, t->req.host,
                                 t->req.host_len, t->flow_ch, &exp);
    if (e == JPKI_OK)
        e = jpki_challenge_check(t->ctx, t->flow_ch, JPKI_CHALLENGE_LEN,
                                 (time_t)t->req.now, t->req.host,
                                 t->req.host_len, t->flow_id, NULL);
    if (e == JPKI_OK && (!jpki_random(secret, sizeof(secret))
                         || !flow_bind(secret, t->flow_bind)))
        e = JPKI_ERR_INTERNAL;
    if (e != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    jpki_hex_encode(secret, sizeof(secret), t->flow_secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (t->req.content_type != NULL && t->req.content_type_len >= 33
        && strncmp(t->req.content_type, "application/x-www-form-urlencoded",
                   33) == 0)
        flow_return_to(t, (const char *)t->req.body, t->req.body_len);
    else
        snprintf(t->return_to, sizeof(t->return_to), "/");
    t->ch_exp = exp;
    /* flows started from an address are counted (each writes a record):
     * over the throttle's limit of an address, 429 */
    t->n_cmds = 0;
    if (t->pol->throttle_addr > 0 && jpki_peer_id(t->ctx, t->req.peer,
                                                  t->peer_id)) {
        start_count(t, JPKI_STORE_GET, 0);
        start_count(t, JPKI_STORE_GET, -1);
        t->state = T_FLOW_GUARD;
        return;
    }
    t->peer_id[0] = '\0';
    txn_device_guarded(t, NULL);
}

void txn_device_guarded(jpki_txn *t, const jpki_store_result *r)
{
    jpki_store_cmd *c;
    unsigned retry;

    if (r != NULL && (txn_failed(&r[0]) || txn_failed(&r[1]))) {
        txn_finish(t, txn_store_err(txn_failed(&r[0]) ? &r[0] : &r[1]));
        return;
    }
    retry = r == NULL || txn_count_of(&r[0]) < 0 || txn_count_of(&r[1]) < 0
            ? 0 : jpki_throttle_over((uint64_t)txn_count_of(&r[0]),
                                     (uint64_t)txn_count_of(&r[1]),
                                     t->req.now, t->pol->throttle_window,
                                     t->pol->throttle_addr);
    if (retry > 0) {
        txn_throttled(t, retry);
        return;
    }
    t->n_cmds = 0;
    if (t->peer_id[0]) {
        start_count(t, JPKI_STORE_INCR, 0);
        start_count(t, JPKI_STORE_PEXPIRE, 0);
    }
    c = txn_cmd_add(t, JPKI_STORE_SET, "flow", t->flow_id);
    c->val[0] = 'p';
    memcpy(c->val + 1, t->flow_bind, 16);
    c->vallen = 17;
    c->ttl_ms = flow_ttl(t, 0);
    c->soft = 1;               /* flows cannot crowd out logins' keys */
    t->state = T_FLOW_START;
}

/* The flow's answer: JSON for the page's script, or the page itself with
 * the QR code (a browser without JavaScript; it refreshes to the poll). */
void txn_device_started(jpki_txn *t, const jpki_store_result *r)
{
    char prefix[300], origin[300], url[800], link[820], poll[1400];
    char code[JPKI_DEVICE_CODE_LEN + 1], cookie[FLOW_COOKIE_LEN + 1];
    char *qr = NULL;
    size_t qrlen = 0, max, o;
    jpki_err e = JPKI_OK;

    r += t->n_cmds - 1;                  /* the flow's SET */
    if (r[0].type != JPKI_STORE_R_INT)
        e = txn_store_err(&r[0]);
    else if (!flow_origin(t, origin, sizeof(origin)))
        e = JPKI_ERR_BAD_HOST;
    else if (jpki_device_code(t->flow_ch, JPKI_CHALLENGE_LEN, code)
             != JPKI_OK)
        e = JPKI_ERR_INTERNAL;
    if (e == JPKI_OK) {
        txn_prefix(t, prefix, sizeof(prefix));
        snprintf(url, sizeof(url), "%s%ssign?challenge=%s&code=%s", origin,
                 prefix, t->flow_ch, code);
        snprintf(link, sizeof(link), "jpki:%s", url);
        qr = jpki_qr_data_url(url, &qrlen);
        if (qr == NULL)
            e = JPKI_ERR_NOMEM;
    }
    if (e != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    snprintf(cookie, sizeof(cookie), "%s.%s", t->flow_ch, t->flow_secret);
    flow_cookie(t, t->cookie, sizeof(t->cookie), cookie,
                (long)(t->ch_exp - t->req.now));
    o = (size_t)snprintf(poll, sizeof(poll), "%spoll?return_to=", prefix);
    txn_url_encode(poll, sizeof(poll), o, t->return_to);
    if (!t->req.wants_json) {
        if (txn_page_render(t, NULL, t->return_to, qr, link, code, poll) != 0)
            txn_finish(t, JPKI_ERR_NOMEM);
        else
            t->v.set_cookie = t->cookie;
        free(qr);
        return;
    }
    max = qrlen + 2048;
    t->big = malloc(max);
    if (t->big == NULL) {
        free(qr);
        txn_finish(t, JPKI_ERR_NOMEM);
        return;
    }
    t->v.body_len = (size_t)snprintf(t->big, max, "{\"status\":\"pending\","
        "\"code\":\"%s\",\"url\":\"%s\",\"link\":\"%s\",\"qr\":\"%s\","
        "\"expires\":%lld,\"poll\":\"%s\"}", code, url, link, qr,
        (long long)t->ch_exp, poll);
    free(qr);
    t->v.body = t->big;
    t->v.set_cookie = t->cookie;
    t->v.err = JPKI_OK;
    t->v.reason = "ok";
    t->v.http_status = 200;
    t->state = T_DONE;
}

/* ---- SIGN: a login's checks, into the flow ------------------------ */

/* The flow read with the login's first batch. */
void txn_device_read_cmd(jpki_txn *t)
{
    snprintf(t->flow_id, sizeof(t->flow_id), "%s", t->ch_id);
    t->ix_flow = (int)t->n_cmds;
    txn_cmd_add(t, JPKI_STORE_GET, "flow", t->flow_id);
}

/* Only into a flow that waits: its browser's bind kept. */
jpki_err txn_device_read(jpki_txn *t, const jpki_store_result *r)
{
    const jpki_store_result *f = &r[t->ix_flow];

    if (f->type != JPKI_STORE_R_VALUE || f->vallen != 17 || f->val[0] != 'p')
        return JPKI_ERR_FLOW_UNKNOWN;
    memcpy(t->flow_bind, f->val + 1, 16);
    t->flow_pending = 1;
    return JPKI_OK;
}

/* Signed: the session's parts into the flow, for its browser's poll. */
void txn_device_signed(jpki_txn *t)
{
    jpki_store_cmd *c;
    size_t alen = strlen(t->s.account);

    t->n_cmds = 0;
    c = txn_cmd_add(t, JPKI_STORE_SET, "flow", t->flow_id);
    if (!seal_record(t, c->val)) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    c->vallen = SEALED_LEN;
    c->ttl_ms = flow_ttl(t, 1);
    c = txn_cmd_add(t, JPKI_STORE_SET, "flowa", t->flow_id);
    memcpy(c->val, t->s.account, alen);
    c->vallen = alen;
    c->ttl_ms = flow_ttl(t, 1);
    t->state = T_FLOW_SIGNED;
}

void txn_device_signed_fed(jpki_txn *t, const jpki_store_result *r)
{
    char code[JPKI_DEVICE_CODE_LEN + 1];

    if (r[0].type != JPKI_STORE_R_INT || r[1].type != JPKI_STORE_R_INT) {
        txn_finish(t, txn_store_err(r[0].type != JPKI_STORE_R_INT ? &r[0]
                                                                  : &r[1]));
        return;
    }
    t->flow_pending = 0;
    if (jpki_device_code(t->f[F_CHALLENGE].value, t->f[F_CHALLENGE].len,
                         code) != JPKI_OK)
        code[0] = '\0';
    snprintf(t->body, sizeof(t->body), "{\"status\":\"ok\",\"code\":\"%s\"}",
             code);
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    t->v.account = t->s.account;
    t->v.cert_id = t->s.cert_id;
    t->v.auth_time = t->s.auth_time;
    txn_finish(t, JPKI_OK);
}

/* A signer refused once its key signed (not mapped, revoked...): the
 * browser's poll says why.  A post that proved no key (a forged one, by
 * whoever saw the QR code) leaves the flow as it was.  1: a store write
 * to run before the verdict. */
int txn_device_note(jpki_txn *t)
{
    jpki_store_cmd *c;

    if (!t->device || !t->flow_pending || !t->key_proved
        || t->v.err == JPKI_OK)
        return 0;
    t->flow_pending = 0;
    t->n_cmds = 0;
    c = txn_cmd_add(t, JPKI_STORE_SET, "flow", t->flow_id);
    c->val[0] = 'x';
    memcpy(c->val + 1, t->flow_bind, 16);
    c->val[17] = (uint8_t)t->v.err;
    c->vallen = 18;
    /* a card no account has, where it may enroll: the browser goes on to
     * the enrollment page with the token */
    if (t->v.err == JPKI_ERR_NOT_MAPPED && t->pol->enroll_page[0] != '\0'
        && txn_enroll_token(t, (char *)c->val + 18))
        c->vallen = 18 + JPKI_ENROLL_LEN;
    c->ttl_ms = flow_ttl(t, 1);
    t->state = T_FLOW_NOTE;
    return 1;
}

/* ---- POLL: the page's wait ---------------------------------------- */

/* A poll that ends the flow (refused, expired, another browser's): its
 * cookie cleared. */
void txn_device_ended(jpki_txn *t)
{
    if (t->req.op != JPKI_OP_DEVICE_POLL)
        return;
    flow_cookie(t, t->cookie2, sizeof(t->cookie2), NULL, 0);
    t->v.set_cookie = t->cookie2;
}

void txn_device_poll(jpki_txn *t)
{
    uint8_t secret[FLOW_SECRET];
    jpki_challenge_view view;
    size_t got = 0;

    if (t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    flow_return_to(t, t->req.query, t->req.query_len);
    /* the flow's challenge, checked but for its expiry (the records'
     * TTL bounds the flow), and the browser's secret */
    if (t->req.cookie == NULL || t->req.cookie_len != FLOW_COOKIE_LEN
        || t->req.cookie[JPKI_CHALLENGE_LEN] != '.'
        || jpki_hex_decode(t->req.cookie + JPKI_CHALLENGE_LEN + 1,
                           2 * FLOW_SECRET, secret, sizeof(secret), &got)
           != JPKI_OK || got != FLOW_SECRET
        || jpki_challenge_check(t->ctx, t->req.cookie, JPKI_CHALLENGE_LEN, 0,
                                t->req.host, t->req.host_len, t->flow_id,
                                NULL) != JPKI_OK
        || jpki_challenge_peek(t->req.cookie, JPKI_CHALLENGE_LEN, NULL, 0,
                               &view) != JPKI_OK
        || !flow_bind(secret, t->flow_bind)) {
        OPENSSL_cleanse(secret, sizeof(secret));
        txn_finish(t, JPKI_ERR_FLOW_UNKNOWN);
        return;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    memcpy(t->flow_ch, t->req.cookie, JPKI_CHALLENGE_LEN);
    t->flow_ch[JPKI_CHALLENGE_LEN] = '\0';
    t->ch_exp = (time_t)view.expires;
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "flow", t->flow_id);
    txn_cmd_add(t, JPKI_STORE_GET, "flowa", t->flow_id);
    t->state = T_FLOW_READ;
}

/* Still waiting: JSON, or the page again (it refreshes). */
static void poll_pending(jpki_txn *t)
{
    char prefix[300], origin[300], url[800], link[820], poll[1400];
    char code[JPKI_DEVICE_CODE_LEN + 1];
    char *qr;
    size_t qrlen = 0, o;

    if (t->req.wants_json) {
        snprintf(t->body, sizeof(t->body), "{\"status\":\"pending\","
                 "\"expires\":%lld}", (long long)t->ch_exp);
        t->v.body = t->body;
        t->v.body_len = strlen(t->body);
        t->v.err = JPKI_OK;
        t->v.reason = "ok";
        t->v.http_status = 200;
        t->state = T_DONE;
        return;
    }
    if (!flow_origin(t, origin, sizeof(origin))
        || jpki_device_code(t->flow_ch, JPKI_CHALLENGE_LEN, code) != JPKI_OK) {
        txn_finish(t, JPKI_ERR_BAD_HOST);
        return;
    }
    txn_prefix(t, prefix, sizeof(prefix));
    snprintf(url, sizeof(url), "%s%ssign?challenge=%s&code=%s", origin,
             prefix, t->flow_ch, code);
    snprintf(link, sizeof(link), "jpki:%s", url);
    o = (size_t)snprintf(poll, sizeof(poll), "%spoll?return_to=", prefix);
    txn_url_encode(poll, sizeof(poll), o, t->return_to);
    qr = jpki_qr_data_url(url, &qrlen);
    if (qr == NULL
        || txn_page_render(t, NULL, t->return_to, qr, link, code, poll) != 0)
        txn_finish(t, JPKI_ERR_NOMEM);
    free(qr);
}

void txn_device_poll_read(jpki_txn *t, const jpki_store_result *r)
{
    const jpki_store_result *f = &r[0], *a = &r[1];
    int opened;

    if (txn_failed(f) || txn_failed(a)) {
        txn_finish(t, txn_store_err(txn_failed(f) ? f : a));
        return;
    }
    if (f->type != JPKI_STORE_R_VALUE || f->vallen < 17) {
        txn_finish(t, JPKI_ERR_FLOW_UNKNOWN);
        return;
    }
    if (f->val[0] == 'p' || f->val[0] == 'x') {
        if (!jpki_ct_equal(f->val + 1, t->flow_bind, 16)) {
            txn_finish(t, JPKI_ERR_FLOW_MISMATCH);
            return;
        }
        if (f->val[0] == 'p') {
            poll_pending(t);
            return;
        }
        /* the signer's refusal, told once */
        t->fail_err = f->vallen >= 18 && f->val[17] > 0
                      && f->val[17] < JPKI__ERR_COUNT
                      ? (jpki_err)f->val[17] : JPKI_ERR_FLOW_UNKNOWN;
        if (f->vallen == 18 + JPKI_ENROLL_LEN) {
            memcpy(t->flow_enroll, f->val + 18, JPKI_ENROLL_LEN);
            t->flow_enroll[JPKI_ENROLL_LEN] = '\0';
        }
    } else {
        opened = open_record(t, f->val, f->vallen);
        if (opened <= 0) {
            txn_finish(t, opened < 0 ? JPKI_ERR_FLOW_MISMATCH
                                     : JPKI_ERR_FLOW_UNKNOWN);
            return;
        }
        if (a->type != JPKI_STORE_R_VALUE || a->vallen > JPKI_ACCOUNT_MAX
            || !jpki_account_valid((const char *)a->val, a->vallen)) {
            txn_finish(t, JPKI_ERR_FLOW_UNKNOWN);
            return;
        }
        memcpy(t->s.account, a->val, a->vallen);
        t->s.account[a->vallen] = '\0';
        t->fail_err = JPKI_OK;
    }
    /* taken once: the first poll that deletes it */
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_DEL, "flow", t->flow_id);
    txn_cmd_add(t, JPKI_STORE_DEL, "flowa", t->flow_id);
    t->state = T_FLOW_TAKE;
}

void txn_device_poll_taken(jpki_txn *t, const jpki_store_result *r)
{
    const jpki_policy *p = t->pol;
    uint8_t sid[16];

    if (r[0].type != JPKI_STORE_R_INT) {
        txn_finish(t, txn_store_err(&r[0]));
        return;
    }
    if (r[0].n != 1 || t->fail_err != JPKI_OK) {
        txn_finish(t, r[0].n != 1 ? JPKI_ERR_FLOW_UNKNOWN : t->fail_err);
        if (r[0].n == 1 && t->flow_enroll[0] != '\0'
            && t->pol->enroll_page[0] != '\0')
            txn_enroll_answer(t, t->fail_err, t->flow_enroll, 1);
        return;
    }
    if (!jpki_random(sid, sizeof(sid))) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    jpki_hex_encode(sid, sizeof(sid), t->s.sid);
    t->s.idle_deadline = p->session_idle ? t->req.now + p->session_idle : 0;
    t->have_session = 1;
    txn_session_issued(t, 1);
    if (t->v.err != JPKI_OK)
        return;
    flow_cookie(t, t->cookie2, sizeof(t->cookie2), NULL, 0);
    t->v.set_cookie2 = t->cookie2;
    if (t->req.wants_json) {            /* where the page goes next */
        size_t o = (size_t)snprintf(t->body, sizeof(t->body),
                                    "{\"status\":\"ok\",\"account\":\"%s\","
                                    "\"expires\":%lld,\"return_to\":\"",
                                    t->s.account, (long long)t->s.expires);
        const char *q;

        /* a local path (txn_local_path: no control character, no '\\'):
         * only '"' (and '<', for any page it is shown in) escaped */
        for (q = t->return_to; *q && o + 16 < sizeof(t->body); q++)
            o += (size_t)(*q == '"' || *q == '<'
                          ? snprintf(t->body + o, 7, "\\u%04x", *q)
                          : snprintf(t->body + o, 2, "%c", *q));
        if (*q == '\0') {
            snprintf(t->body + o, sizeof(t->body) - o, "\"}");
            t->v.body_len = strlen(t->body);
        }
    }
}
