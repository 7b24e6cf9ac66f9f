/* txn_admin.c - the admin API (docs/admin.md), on a location the operator
 * protects: the client address in its list (jpki_admin_allow) and the
 * bearer token of its token file (jpki_admin_token_file).  JSON in and
 * out:
 *   POST <admin>/bind    {"token":T,"account":A}: an enrollment token
 *                        redeemed into A; or {"cert_id":C,"account":A}
 *   POST <admin>/unbind  {"cert_id":C}
 *   GET  <admin>/certs?account=A: A's certificates (cert_id, issuer,
 *                        not_after, bound_at, last_login, revocation)
 *   POST <admin>/logout  {"account":A}: every session of A ended
 * Store (docs/store-schema.md): map:<cert_id> the account, mapi:<cert_id>
 * "<issuer tag>|<not_after>|<bound_at>", acct:<account_id> the account's
 * cert_ids (16 bytes each, at most JPKI_ACCOUNT_CERTS), last:<cert_id> the
 * last login. */
#include "txn_internal.h"
#include "admin.h"
#include "enroll.h"
#include "acct.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_BIND = 1, R_UNBIND, R_CERTS, R_LOGOUT };
enum { A_F_TOKEN, A_F_ACCOUNT, A_F_CERT, A_F_N };

#define CERTS_PER_BATCH (JPKI_STORE_BATCH_MAX / 4)

/* ---- the answer ----------------------------------------------------- */

static void answer(jpki_txn *t, const char *body)
{
    if (body != t->body)
        snprintf(t->body, sizeof(t->body), "%s", body);
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    txn_finish(t, JPKI_OK);
}

/* The audit line of an admin action (never a token). */
static void admin_audit(jpki_txn *t, const char *action, jpki_err e)
{
    jpki_audit_fields f;

    txn_audit_fields(t, &f);
    f.action = action;
    f.result = e == JPKI_OK ? "ok" : "denied";
    f.reason = jpki_reason(e);
    f.account = t->adm_account;
    f.cert_id = t->adm_cert;
    f.revocation = "none";
    f.revocation_age = -1;
    f.soft_pass = 0;
    t->v.audit = jpki_audit_body(t->audit, sizeof(t->audit), &f) > 0
                 ? t->audit : NULL;
}

static void done(jpki_txn *t, jpki_err e, const char *body)
{
    static const char *const names[] = {"", "bind", "unbind", "certs",
                                        "logout"};

    if (e == JPKI_OK && body != NULL)
        answer(t, body);
    else
        txn_finish(t, e);
    admin_audit(t, names[t->adm_route], e);
}

/* ---- the request ---------------------------------------------------- */

static int route_of(const jpki_txn *t)
{
    static const char *const names[] = {"bind", "unbind", "certs", "logout"};
    const char *u = t->req.uri != NULL ? t->req.uri : "";
    size_t end = strcspn(u, "?#"), start;
    int i;

    while (end > 0 && u[end - 1] == '/')
        end--;
    for (start = end; start > 0 && u[start - 1] != '/'; start--)
        ;
    for (i = 0; i < 4; i++)
        if (strlen(names[i]) == end - start
            && memcmp(u + start, names[i], end - start) == 0)
            return i + 1;
    return 0;
}

/* The body's fields (JSON), or the query's (GET). */
static jpki_err admin_fields(jpki_txn *t)
{
    static const struct { const char *n; size_t max; } spec[A_F_N] = {
        {"token", 256}, {"account", JPKI_ACCOUNT_MAX},
        {"cert_id", JPKI_CERT_ID_HEX_LEN}};
    const uint8_t *in = t->req.is_post ? t->req.body
                                       : (const uint8_t *)t->req.query;
    size_t len = t->req.is_post ? t->req.body_len : t->req.query_len;
    jpki_err e;
    int i;

    for (i = 0; i < A_F_N; i++) {
        t->f[i].name = spec[i].n;
        t->f[i].max = spec[i].max;
    }
    if (in == NULL || len == 0)
        return JPKI_OK;
    if (len > JPKI_BODY_MAX)
        return JPKI_ERR_TOO_LARGE;
    t->scratch = malloc(2 * len + 2);
    if (t->scratch == NULL)
        return JPKI_ERR_NOMEM;
    e = t->req.is_post
        ? jpki_form_parse_json(in, len, t->scratch, t->f, A_F_N)
        : jpki_form_parse_urlencoded(in, len, t->scratch, t->f, A_F_N);
    return e == JPKI_OK ? JPKI_OK : JPKI_ERR_BAD_REQUEST;
}

static int cert_id_ok(const char *c)
{
    size_t i;

    if (c == NULL || strlen(c) != JPKI_CERT_ID_HEX_LEN)
        return 0;
    for (i = 0; c[i]; i++)
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
            return 0;
    return 1;
}

/* The account field: valid, and its store name in t->account_id. */
static jpki_err take_account(jpki_txn *t)
{
    const jpki_form_field *a = &t->f[A_F_ACCOUNT];

    if (a->value == NULL || !jpki_account_valid(a->value, a->len))
        return JPKI_ERR_BAD_REQUEST;
    snprintf(t->adm_account, sizeof(t->adm_account), "%s", a->value);
    return jpki_account_id(t->ctx, a->value, a->len, t->account_id);
}

/* ---- bind ------------------------------------------------------------ */

/* The account's list t->adm_acct with id in it or out of it, as a SET
 * (or a DEL when it is left empty). */
static jpki_err put_list(jpki_txn *t, const uint8_t id[16], int add)
{
    jpki_store_cmd *c;
    size_t n;

    if (add && jpki_acct_list_add(&t->adm_acct, id) != JPKI_OK)
        return JPKI_ERR_ACCOUNT_FULL;
    if (!add)
        jpki_acct_list_del(&t->adm_acct, id);
    n = jpki_acct_list_len(&t->adm_acct);
    c = txn_cmd_add(t, n > 0 ? JPKI_STORE_SET : JPKI_STORE_DEL, "acct",
                    t->account_id);
    if (n > 0) {
        memcpy(c->val, t->adm_acct.id, n);
        c->vallen = n;
    }
    return JPKI_OK;
}

/* The list read (GET acct:) into t->adm_acct; 0 when it is not one. */
static int got_list(jpki_txn *t, const jpki_store_result *r)
{
    if (r->type != JPKI_STORE_R_NIL && r->type != JPKI_STORE_R_VALUE)
        return 0;
    return jpki_acct_list_read(&t->adm_acct, r->type == JPKI_STORE_R_VALUE
                                             ? r->val : NULL, r->vallen);
}

static void bind_begin(jpki_txn *t)
{
    jpki_enroll en;
    jpki_err e;
    char info[JPKI_MAPI_MAX];
    int64_t ttl;

    memset(&en, 0, sizeof(en));
    e = take_account(t);
    info[0] = '\0';
    if (e == JPKI_OK && t->f[A_F_TOKEN].value != NULL) {
        e = jpki_enroll_open(t->ctx, t->f[A_F_TOKEN].value,
                             t->f[A_F_TOKEN].len, t->req.now, &en);
        e = e == JPKI_ERR_CHALLENGE_EXPIRED ? JPKI_ERR_TOKEN_EXPIRED
            : e == JPKI_OK ? JPKI_OK : JPKI_ERR_TOKEN_INVALID;
        if (e == JPKI_OK) {
            snprintf(t->adm_cert, sizeof(t->adm_cert), "%s", en.cert_id);
            if (jpki_mapi_format(info, en.issuer_tag, en.not_after,
                                 t->req.now) == 0)
                e = JPKI_ERR_TOKEN_INVALID;
        }
    } else if (e == JPKI_OK && cert_id_ok(t->f[A_F_CERT].value)) {
        snprintf(t->adm_cert, sizeof(t->adm_cert), "%s",
                 t->f[A_F_CERT].value);
        jpki_mapi_format(info, NULL, 0, t->req.now);
    } else if (e == JPKI_OK) {
        e = JPKI_ERR_BAD_REQUEST;
    }
    if (e != JPKI_OK) {
        done(t, e, NULL);
        return;
    }
    snprintf(t->return_to, sizeof(t->return_to), "%s", info);  /* kept */
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "map", t->adm_cert);
    txn_cmd_add(t, JPKI_STORE_GET, "acct", t->account_id);
    if (t->f[A_F_TOKEN].value != NULL) {
        /* redeemed once: past its expiry nobody could redeem it again */
        ttl = en.expires - t->req.now + 60;
        txn_cmd_val(txn_cmd_add(t, JPKI_STORE_SETNX, "enr", en.id), "1",
                    (uint32_t)(ttl < 1 ? 1 : ttl) * 1000u);
    }
    t->adm_step = 1;
    t->state = T_ADMIN;
}

static void bind_fed(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    uint8_t id[16];
    size_t got = 0, i;
    jpki_store_cmd *c;

    for (i = 0; i < n; i++)
        if (txn_failed(&r[i])) {
            done(t, txn_store_err(&r[i]), NULL);
            return;
        }
    if (t->adm_step == 2) {
        snprintf(t->body, sizeof(t->body), "{\"status\":\"bound\","
                 "\"account\":\"%s\",\"cert_id\":\"%s\"}", t->adm_account,
                 t->adm_cert);
        done(t, JPKI_OK, t->body);
        return;
    }
    jpki_hex_decode(t->adm_cert, JPKI_CERT_ID_HEX_LEN, id, 16, &got);
    if (n == 3 && (r[2].type != JPKI_STORE_R_INT || r[2].n != 1)) {
        done(t, JPKI_ERR_TOKEN_USED, NULL);
        return;
    }
    if (r[0].type == JPKI_STORE_R_VALUE
        && (r[0].vallen != strlen(t->adm_account)
            || memcmp(r[0].val, t->adm_account, r[0].vallen) != 0)) {
        done(t, JPKI_ERR_CERT_BOUND, NULL);   /* one account a certificate */
        return;
    }
    if (!got_list(t, &r[1])) {
        done(t, JPKI_ERR_STORE, NULL);
        return;
    }
    t->n_cmds = 0;
    txn_cmd_val(txn_cmd_add(t, JPKI_STORE_SET, "map", t->adm_cert),
                t->adm_account, 0);
    c = txn_cmd_add(t, JPKI_STORE_SET, "mapi", t->adm_cert);
    txn_cmd_val(c, t->return_to, 0);
    if (put_list(t, id, 1) != JPKI_OK) {
        done(t, JPKI_ERR_ACCOUNT_FULL, NULL);
        return;
    }
    t->adm_step = 2;
}

/* ---- unbind ---------------------------------------------------------- */

static void unbind_begin(jpki_txn *t)
{
    if (!cert_id_ok(t->f[A_F_CERT].value)) {
        done(t, JPKI_ERR_BAD_REQUEST, NULL);
        return;
    }
    snprintf(t->adm_cert, sizeof(t->adm_cert), "%s", t->f[A_F_CERT].value);
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "map", t->adm_cert);
    t->adm_step = 1;
    t->state = T_ADMIN;
}

static void unbind_fed(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    uint8_t id[16];
    size_t got = 0, i;

    for (i = 0; i < n; i++)
        if (txn_failed(&r[i])) {
            done(t, txn_store_err(&r[i]), NULL);
            return;
        }
    jpki_hex_decode(t->adm_cert, JPKI_CERT_ID_HEX_LEN, id, 16, &got);
    switch (t->adm_step) {
    case 1:                                 /* the account bound */
        if (r[0].type != JPKI_STORE_R_VALUE
            || r[0].vallen > JPKI_ACCOUNT_MAX) {
            done(t, JPKI_ERR_NOT_BOUND, NULL);
            return;
        }
        memcpy(t->adm_account, r[0].val, r[0].vallen);
        t->adm_account[r[0].vallen] = '\0';
        if (jpki_account_id(t->ctx, t->adm_account, r[0].vallen,
                            t->account_id) != JPKI_OK) {
            done(t, JPKI_ERR_STORE, NULL);
            return;
        }
        t->n_cmds = 0;
        txn_cmd_add(t, JPKI_STORE_DEL, "map", t->adm_cert);
        txn_cmd_add(t, JPKI_STORE_DEL, "mapi", t->adm_cert);
        txn_cmd_add(t, JPKI_STORE_GET, "acct", t->account_id);
        t->adm_step = 2;
        return;
    case 2:                                 /* the account's list */
        if (!got_list(t, &r[2])) {
            done(t, JPKI_ERR_STORE, NULL);
            return;
        }
        t->n_cmds = 0;
        put_list(t, id, 0);
        t->adm_step = 3;
        return;
    default:
        snprintf(t->body, sizeof(t->body), "{\"status\":\"unbound\","
                 "\"account\":\"%s\",\"cert_id\":\"%s\"}", t->adm_account,
                 t->adm_cert);
        done(t, JPKI_OK, t->body);
    }
}

/* ---- certs ------------------------------------------------------------ */

static void out_put(jpki_txn *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_put(jpki_txn *t, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (t->adm_out == NULL)
        return;
    va_start(ap, fmt);
    w = vsnprintf(t->adm_out + t->adm_len, t->adm_cap - t->adm_len, fmt, ap);
    va_end(ap);
    if (w > 0 && (size_t)w < t->adm_cap - t->adm_len)
        t->adm_len += (size_t)w;
}

/* The next certificates' map, mapi, last and rev read. */
static void certs_batch(jpki_txn *t)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1];
    size_t k;

    t->n_cmds = 0;
    for (k = 0; k < CERTS_PER_BATCH && t->adm_at + k < t->adm_acct.n; k++) {
        jpki_hex_encode(t->adm_acct.id[t->adm_at + k], 16, id);
        txn_cmd_add(t, JPKI_STORE_GET, "map", id);
        txn_cmd_add(t, JPKI_STORE_GET, "mapi", id);
        txn_cmd_add(t, JPKI_STORE_GET, "last", id);
        txn_cmd_add(t, JPKI_STORE_GET, "rev", id);
    }
}

/* The issuer's name of a tag ("" when the site has none of that tag). */
static const char *issuer_of_tag(const jpki_txn *t, const char *tag, size_t n)
{
    size_t i;

    for (i = 0; i < jpki_ctx_issuer_count(t->ctx); i++) {
        const jpki_issuer *is = jpki_ctx_issuer(t->ctx, i);
        if (n == 16 && memcmp(jpki_issuer_tag(is), tag, 16) == 0)
            return jpki_issuer_name(is);
    }
    return "";
}

static void certs_one(jpki_txn *t, const uint8_t *raw,
                      const jpki_store_result *r)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1], tag[17] = "";
    const char *rev = "none";
    int64_t not_after = 0, bound = 0;
    long long last;
    jpki_rev_status st;

    jpki_hex_encode(raw, 16, id);
    /* a stale entry (unbound, or bound again elsewhere): left out */
    if (r[0].type != JPKI_STORE_R_VALUE
        || r[0].vallen != strlen(t->adm_account)
        || memcmp(r[0].val, t->adm_account, r[0].vallen) != 0)
        return;
    if (r[1].type != JPKI_STORE_R_VALUE
        || !jpki_mapi_parse(r[1].val, r[1].vallen, tag, &not_after, &bound))
        tag[0] = '\0';
    last = r[2].type == JPKI_STORE_R_VALUE ? txn_count_of(&r[2]) : 0;
    if (txn_rev_parse(&r[3], &st))
        rev = txn_rev_names[st];
    out_put(t, "%s{\"cert_id\":\"%s\",\"issuer\":\"%s\",\"not_after\":%lld,"
            "\"bound_at\":%lld,\"last_login\":%lld,\"revocation\":\"%s\"}",
            t->adm_len > 0 && t->adm_out[t->adm_len - 1] == '}' ? "," : "",
            id, issuer_of_tag(t, tag, strlen(tag)), (long long)not_after,
            (long long)bound, last < 0 ? 0 : last, rev);
}

static void certs_begin(jpki_txn *t)
{
    jpki_err e = take_account(t);

    if (e != JPKI_OK) {
        done(t, e, NULL);
        return;
    }
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "acct", t->account_id);
    t->adm_step = 1;
    t->state = T_ADMIN;
}

static void certs_fed(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (txn_failed(&r[i])) {
            done(t, txn_store_err(&r[i]), NULL);
            return;
        }
    if (t->adm_step == 1) {
        if (!got_list(t, &r[0])) {
            done(t, JPKI_ERR_STORE, NULL);
            return;
        }
        t->adm_cap = 512 + t->adm_acct.n * 256;
        t->adm_out = t->big = malloc(t->adm_cap);
        if (t->big == NULL) {
            done(t, JPKI_ERR_NOMEM, NULL);
            return;
        }
        t->adm_len = 0;
        out_put(t, "{\"account\":\"%s\",\"certs\":[", t->adm_account);
        t->adm_at = 0;
    } else {
        for (i = 0; i * 4 < n; i++)
            certs_one(t, t->adm_acct.id[t->adm_at + i], r + 4 * i);
        t->adm_at += n / 4;
    }
    if (t->adm_at < t->adm_acct.n) {
        certs_batch(t);
        t->adm_step = 2;
        return;
    }
    out_put(t, "]}");
    t->v.body = t->big;
    t->v.body_len = t->adm_len;
    txn_finish(t, JPKI_OK);
    admin_audit(t, "certs", JPKI_OK);
}

/* ---- logout ------------------------------------------------------------ */

void txn_admin_marked(jpki_txn *t)
{
    snprintf(t->body, sizeof(t->body), "{\"status\":\"logged_out\","
             "\"account\":\"%s\"}", t->adm_account);
    done(t, JPKI_OK, t->body);
}

static void logout_begin(jpki_txn *t)
{
    jpki_err e = take_account(t);

    if (e != JPKI_OK) {
        done(t, e, NULL);
        return;
    }
    /* the account's sessions signed in until now end, on every node */
    txn_marker_put(t, "outa", t->account_id, t->req.now);
}

/* ---- the API ----------------------------------------------------------- */

void txn_admin(jpki_txn *t)
{
    static const int post[] = {0, 1, 1, 0, 1};
    jpki_err e = JPKI_OK;

    if (!jpki_peer_id(t->ctx, t->req.peer, t->peer_id))
        t->peer_id[0] = '\0';
    t->adm_route = route_of(t);
    /* who may ask, before anything is read */
    if (!jpki_cidr_allows(t->pol->admin_allow, t->req.peer))
        e = JPKI_ERR_FORBIDDEN;
    else if (!t->pol->admin_token_set
             || !jpki_admin_bearer_ok(t->req.authorization,
                                      t->req.authorization_len,
                                      t->pol->admin_token))
        e = JPKI_ERR_UNAUTHENTICATED;
    else if (t->adm_route == 0)
        e = JPKI_ERR_NOT_FOUND;
    else if (t->req.is_post != post[t->adm_route])
        e = JPKI_ERR_METHOD;
    else if ((t->adm_route == R_BIND || t->adm_route == R_UNBIND)
             && t->req.map_source == JPKI_MAP_CALLBACK)
        e = JPKI_ERR_MAP_FILE;
    if (e == JPKI_OK)
        e = admin_fields(t);
    if (e != JPKI_OK) {
        done(t, e, NULL);
        if (e == JPKI_ERR_METHOD)
            t->v.allow = post[t->adm_route] ? "POST" : "GET, HEAD";
        return;
    }
    switch (t->adm_route) {
    case R_BIND: bind_begin(t); break;
    case R_UNBIND: unbind_begin(t); break;
    case R_CERTS: certs_begin(t); break;
    default: logout_begin(t); break;
    }
}

void txn_admin_fed(jpki_txn *t, const jpki_store_result *r, size_t n)
{
    if (r == NULL || n != t->n_cmds) {
        done(t, r == NULL ? JPKI_ERR_TIMEOUT : JPKI_ERR_STORE, NULL);
        return;
    }
    switch (t->adm_route) {
    case R_BIND: bind_fed(t, r, n); break;
    case R_UNBIND: unbind_fed(t, r, n); break;
    default: certs_fed(t, r, n); break;
    }
}

/* ---- enrollment: a login of a card no account has ---------------------- */

/* Refused account_not_mapped once the key signed, at a location with an
 * enrollment page: the browser goes there with a token (303), an API
 * client is told where (the 403's "enroll").  The token names the
 * certificate by cert_id only. */
/* The enrollment token of t's certificate (its id: the login's challenge
 * id, or random for a TLS login); 0 when none could be made. */
int txn_enroll_token(jpki_txn *t, char *tok)
{
    jpki_enroll en;
    uint8_t rnd[16];

    if (t->cert == NULL || !t->key_proved)
        return 0;
    memset(&en, 0, sizeof(en));
    snprintf(en.cert_id, sizeof(en.cert_id), "%s", t->cert->cert_id);
    snprintf(en.issuer_tag, sizeof(en.issuer_tag), "%s",
             t->cert->issuer->tag);
    en.not_after = (int64_t)t->cert->not_after;
    en.expires = t->req.now + t->pol->enroll_ttl;
    if (t->tls) {
        if (!jpki_random(rnd, sizeof(rnd)))
            return 0;
        jpki_hex_encode(rnd, sizeof(rnd), en.id);
    } else {
        snprintf(en.id, sizeof(en.id), "%s", t->ch_id);
    }
    return jpki_enroll_make(t->ctx, &en, tok) == JPKI_OK;
}

/* The refusal e sends its client to the enrollment page with tok: a
 * browser (back: it is a page's) by 303, an API client by the 403's
 * "enroll". */
void txn_enroll_answer(jpki_txn *t, jpki_err e, const char *tok, int back)
{
    const char *ep = t->pol->enroll_page;
    size_t o;

    o = (size_t)snprintf(t->location, sizeof(t->location), "%s%cjpki_enroll="
                         "%s", ep, strchr(ep, '?') ? '&' : '?', tok);
    if (o >= sizeof(t->location))
        return;
    if (back && !t->req.wants_json) {
        t->v.location = t->location;
        t->v.http_status = 303;
        return;
    }
    snprintf(t->body, sizeof(t->body), "{\"error\":\"%s\",\"message\":\"%s\","
             "\"enroll\":\"%.600s\"}", jpki_reason(e), jpki_strerror(e),
             t->location);
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
}

/* Refused account_not_mapped once the key signed (and the certificate is
 * not revoked), at a location with an enrollment page: the client is
 * sent there with a token.  A device flow's signer is not: its browser's
 * poll is (txn_device.c). */
void txn_enroll_offer(jpki_txn *t, jpki_err e)
{
    char tok[JPKI_ENROLL_LEN + 1];

    if (e != JPKI_ERR_NOT_MAPPED || t->pol->enroll_page[0] == '\0'
        || t->device || t->req.op != JPKI_OP_LOGIN
        || !txn_enroll_token(t, tok))
        return;
    txn_enroll_answer(t, e, tok, t->form);
}
