/* test_txn.c - the login transaction end to end against the test PKI, with
 * the embedded store as the store and OCSP answers made by `openssl ocsp`. */
#include "jpki.h"
#include "tap.h"

#include <errno.h>
#include "gate.h"
#include "pki.h"
#include "enroll.h"

#include <stdint.h>
#include <unistd.h>
#include <sys/stat.h>

static jpki_ctx *ctx;
static void *shm_mem, *shm_h;
static jpki_shm *shm;
static time_t NOW;
static char tmpdir[256];
static unsigned ocsp_nonce;            /* make_ctx's site policy */

static jpki_ctx *make_ctx(int fail_open, const char *rp, const char *url)
{
    uint8_t secret[32];
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is;
    jpki_policy *p;

    memset(secret, 7, sizeof(secret));
    jpki_ctx_set_secret(c, secret, sizeof(secret));
    is = jpki_ctx_add_issuer(c, "card");
    jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err, sizeof(err));
    jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err, sizeof(err));
    if (url)
        jpki_issuer_set_ocsp_url(is, url);
    p = jpki_ctx_policy(c);
    p->fail_open = (unsigned)fail_open;
    p->ocsp_nonce = ocsp_nonce;
    if (jpki_rev_policy_parse(rp, strlen(rp), &p->rev_policy) != JPKI_OK)
        exit(1);
    p->recheck_interval = 60;
    p->session_idle = 600;
    if (jpki_ctx_finish(c, err, sizeof(err)) != JPKI_OK) {
        printf("# finish: %s\n", err);
        exit(1);
    }
    return c;
}

static int run(const char *cmd)
{
    int r = system(cmd);
    return r == 0;
}

typedef struct {
    const char *ocsp_signer;       /* NULL: responder down */
    const char *crl;               /* NULL: no CRL */
    int ocsp_calls, crl_calls;
} io_env;
/* jpki_txn_ocsp_key at the last OCSP query, and whether it was NULL */
static char ocsp_key[80];
static int ocsp_keyless;

static int store_batches;              /* batches run in the store */
/* what a WAIT answers: the replicas that acknowledged (-1: an error) */
static long long wait_acks = -1;
static jpki_store_cmd last_wait;       /* the last WAIT asked */
static jpki_store_cmd last_cmds[JPKI_STORE_BATCH_MAX];  /* the last one */
static size_t last_n;

static void exec_store(jpki_txn *t)
{
    size_t n, i;
    const jpki_store_cmd *c = jpki_txn_store_cmds(t, &n);
    jpki_store_result r[JPKI_STORE_BATCH_MAX];
    store_batches++;
    last_n = n <= JPKI_STORE_BATCH_MAX ? n : 0;
    memcpy(last_cmds, c, last_n * sizeof(*c));
    for (i = 0; i < n; i++) {
        jpki_shm_exec(shm, &c[i], (int64_t)NOW * 1000, &r[i]);
        if (c[i].op == JPKI_STORE_WAIT) {
            last_wait = c[i];
            last_wait.key[0] = i + 1 == n ? 'L' : 'x';  /* the last? */
            r[i].type = wait_acks >= 0 ? JPKI_STORE_R_INT
                                       : JPKI_STORE_R_ERROR;
            r[i].n = wait_acks;
        }
    }
    jpki_txn_feed_store(t, r, n);
}

static void exec_ocsp(jpki_txn *t, io_env *env)
{
    size_t len;
    const uint8_t *req = jpki_txn_ocsp_body(t, &len);
    char path[512], cmd[2048];
    uint8_t *resp;
    size_t rlen;
    FILE *f;

    env->ocsp_calls++;
    ocsp_keyless = jpki_txn_ocsp_key(t) == NULL;
    snprintf(ocsp_key, sizeof(ocsp_key), "%s",
             ocsp_keyless ? "" : jpki_txn_ocsp_key(t));
    if (env->ocsp_signer == NULL) {
        jpki_txn_feed_ocsp(t, 0, NULL, 0);
        return;
    }
    snprintf(path, sizeof(path), "%s/req.der", tmpdir);
    f = fopen(path, "wb");
    if (f == NULL) {
        char m[600];
        snprintf(m, sizeof(m), "cannot write %s: %s", path, strerror(errno));
        diag(m);
        jpki_txn_feed_ocsp(t, 500, NULL, 0);
        return;
    }
    fwrite(req, 1, len, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "cd %s && openssl ocsp -index ca2-index.txt "
             "-CA ca2.pem -rsigner %s.pem -rkey %s.key -ndays 1 -reqin "
             "%s/req.der -respout %s/resp.der >/dev/null 2>&1", tap_pki_dir(),
             env->ocsp_signer, env->ocsp_signer, tmpdir, tmpdir);
    if (!run(cmd)) {
        jpki_txn_feed_ocsp(t, 500, NULL, 0);
        return;
    }
    snprintf(path, sizeof(path), "%s/resp.der", tmpdir);
    jpki_load_file(path, 1 << 20, &resp, &rlen);
    jpki_txn_feed_ocsp(t, 200, resp, rlen);
    free(resp);
}

static void exec_crl(jpki_txn *t, io_env *env)
{
    uint8_t *der;
    size_t len;
    jpki_crl_index *ix = NULL;
    jpki_rev_info info;
    jpki_err e;

    env->crl_calls++;
    if (env->crl == NULL) {
        jpki_txn_feed_crl(t, JPKI_ERR_REVOCATION_UNAVAILABLE, NULL);
        return;
    }
    jpki_load_file(tap_path(env->crl), 1 << 24, &der, &len);
    e = jpki_crl_index_build(ctx, der, len, NOW, 0, &ix, NULL, 0);
    free(der);
    if (e == JPKI_OK)
        e = jpki_crl_index_lookup(ix, jpki_txn_cert_id(t), NOW, 0, &info);
    jpki_crl_index_free(ix);
    jpki_txn_feed_crl(t, e, e == JPKI_OK ? &info : NULL);
}

/* Runs a transaction to its verdict; returns it (t kept in *tp). */
static const jpki_verdict *drive(jpki_txn_request *rq, io_env *env,
                                 jpki_txn **tp)
{
    jpki_txn *t;
    jpki_step s;
    int guard = 0;

    if (jpki_txn_new(ctx, rq, &t) != JPKI_OK)
        return NULL;
    while ((s = jpki_txn_step(t)) != JPKI_STEP_DONE && guard++ < 10) {
        if (s == JPKI_STEP_STORE) exec_store(t);
        else if (s == JPKI_STEP_OCSP) exec_ocsp(t, env);
        else exec_crl(t, env);
    }
    *tp = t;
    return jpki_txn_verdict(t);
}

static char last_cookie[1024];
static int login_shared;               /* logins on a shared store */
static const jpki_policy *req_policy;   /* per-location policy, or NULL */
/* where the browser says a login comes from (NULL: header absent) */
static const char *req_sfs, *req_origin, *req_host = "gate.example:8443";
static const char *req_peer;            /* NULL: 127.0.0.1 */
/* the node's table of logout markers for gated requests and logouts */
static jpki_shm *req_local;
static int req_shared;
static int64_t req_since;
static const char *req_rid;            /* the adapter's request id */
/* ... or given by a function (nginx): the id, and the calls it had */
static const char *req_rid_fn;
static int rid_fn_calls;

static const char *rid_by_fn(const void *ud, size_t *len)
{
    rid_fn_calls++;
    *len = strlen(ud);
    return ud;
}

static void set_from(jpki_txn_request *rq)
{
    rq->sec_fetch_site = req_sfs;
    rq->sec_fetch_site_len = req_sfs ? strlen(req_sfs) : 0;
    rq->origin = req_origin;
    rq->origin_len = req_origin ? strlen(req_origin) : 0;
    rq->host = req_host;
    rq->host_len = req_host ? strlen(req_host) : 0;
    if (req_peer != NULL)
        rq->peer = req_peer;
    rq->request_id = req_rid;
    rq->request_id_len = req_rid ? strlen(req_rid) : 0;
    if (req_rid_fn != NULL) {
        rq->request_id_fn = rid_by_fn;
        rq->request_id_ud = req_rid_fn;
    }
}

static void set_local(jpki_txn_request *rq)
{
    rq->policy = req_policy;
    rq->local = req_local;
    rq->shared_store = req_shared;
    rq->local_since = req_since;
}

static const jpki_verdict *login(const char *cert, const char *key,
                                 const char *account, io_env *env,
                                 jpki_txn **tp, const char *ch_override)
{
    static char body[16384];
    char ch[JPKI_CHALLENGE_LEN + 1];
    jpki_txn_request rq = {0};
    const jpki_verdict *v;

    jpki_challenge_issue(ctx, NOW, req_host, req_host ? strlen(req_host) : 0,
                         ch, NULL);
    if (ch_override)
        snprintf(ch, sizeof(ch), "%s", ch_override);
    snprintf(body, sizeof(body), "{\"challenge\":\"%s\",\"certificate\":\"%s\","
             "\"signature\":\"%s\"%s%s%s}", ch, tap_file_b64(cert),
             tap_sign_b64(ch, key, "sha256"), account ? ",\"account\":\"" : "",
             account ? account : "", account ? "\"" : "");
    tap_json_login(&rq, NOW, body);
    rq.policy = req_policy;
    rq.shared_store = login_shared;
    set_from(&rq);
    v = drive(&rq, env, tp);
    last_cookie[0] = '\0';
    if (v && v->set_cookie) {
        const char *eq = strchr(v->set_cookie, '='), *sc = strchr(v->set_cookie, ';');
        snprintf(last_cookie, sizeof(last_cookie), "%.*s",
                 (int)(sc - eq - 1), eq + 1);
    }
    return v;
}

/* The cert_id of the PKI certificate file cert ("" when it does not
 * check). */
static const char *cert_id_of(const char *cert)
{
    static char id[JPKI_CERT_ID_HEX_LEN + 1];
    jpki_cert *c = NULL;
    uint8_t *der;
    size_t len;

    id[0] = '\0';
    jpki_load_file(tap_path(cert), 1 << 16, &der, &len);
    if (jpki_cert_check(ctx, der, len, NOW, &c, NULL, 0) != JPKI_OK)
        printf("# %s does not check\n", cert);
    else
        snprintf(id, sizeof(id), "%s", jpki_cert_id_hex(c));
    free(der);
    jpki_cert_free(c);
    return id;
}

/* key (printf format) in table s at NOW: GET (val NULL), the value or ""
 * when absent; SET without TTL (val not NULL). */
static const char *kv(jpki_shm *s, const char *val, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *kv(jpki_shm *s, const char *val, const char *fmt, ...)
{
    static char buf[JPKI_STORE_VAL_MAX + 1];
    jpki_store_cmd cmd = {0};
    jpki_store_result r;
    va_list ap;

    va_start(ap, fmt);
    cmd.keylen = (size_t)vsnprintf(cmd.key, sizeof(cmd.key), fmt, ap);
    va_end(ap);
    cmd.op = val != NULL ? JPKI_STORE_SET : JPKI_STORE_GET;
    if (val != NULL) {
        cmd.vallen = strlen(val);
        memcpy(cmd.val, val, cmd.vallen);
    }
    jpki_shm_exec(s, &cmd, (int64_t)NOW * 1000, &r);
    snprintf(buf, sizeof(buf), "%.*s",
             r.type == JPKI_STORE_R_VALUE ? (int)r.vallen : 0,
             (const char *)r.val);
    return buf;
}

static void map(const char *cert, const char *account)
{
    const char *id = cert_id_of(cert);

    if (id[0] != '\0')
        kv(shm, account, "jpki:v1:map:%s", id);
}

/* rq: a gated request (JSON) with the session cookie at `at`. */
static void check_request(jpki_txn_request *rq, const char *cookie,
                          int64_t at)
{
    memset(rq, 0, sizeof(*rq));
    rq->op = JPKI_OP_CHECK;
    rq->now = at;
    rq->wants_json = 1;
    rq->cookie = cookie;
    rq->cookie_len = strlen(cookie);
    set_local(rq);
    set_from(rq);
}

static const jpki_verdict *check(const char *cookie, int64_t at, io_env *env,
                                 jpki_txn **tp)
{
    jpki_txn_request rq;

    check_request(&rq, cookie, at);
    return drive(&rq, env, tp);
}

/* rq: a logout (JSON) of the session cookie at `at`. */
static void logout_request(jpki_txn_request *rq, const char *cookie,
                           int64_t at)
{
    memset(rq, 0, sizeof(*rq));
    rq->op = JPKI_OP_LOGOUT;
    rq->now = at;
    rq->is_post = 1;
    rq->wants_json = 1;
    rq->cookie = cookie;
    rq->cookie_len = strlen(cookie);
    set_local(rq);
}

#define EXPECT_LOGIN(cert, key, acct, env, st_, rs_, name) do {              \
        jpki_txn *t_ = NULL;                                                 \
        const jpki_verdict *v_ = login(cert, key, acct, env, &t_, NULL);     \
        is_int(v_ ? v_->http_status : -1, st_, "%s: status", name);          \
        is_str(v_ ? v_->reason : NULL, rs_, "%s: reason", name);             \
        jpki_txn_free(t_);                                                   \
    } while (0)

static int tls_json;                    /* the TLS logins' client: JSON */

/* A login by the client certificate of a TLS handshake (cert: the PKI
 * file, NULL: none presented; version: the connection's; body: a form or
 * NULL). */
static const jpki_verdict *tls_login(const char *cert, unsigned version,
                                     const char *body, io_env *env,
                                     jpki_txn **tp)
{
    static uint8_t *der;
    jpki_txn_request rq = {0};
    size_t len = 0;

    free(der);
    der = NULL;
    if (cert != NULL)
        jpki_load_file(tap_path(cert), 1 << 16, &der, &len);
    rq.op = JPKI_OP_TLS_LOGIN;
    rq.now = NOW;
    rq.is_post = 1;
    rq.peer = "127.0.0.1";
    rq.client_cert = der;
    rq.client_cert_len = len;
    rq.tls_version = version;
    rq.wants_json = tls_json;
    if (body != NULL) {
        rq.body = (const uint8_t *)body;
        rq.body_len = strlen(body);
        rq.content_type = "application/x-www-form-urlencoded";
        rq.content_type_len = strlen(rq.content_type);
    }
    rq.policy = req_policy;
    set_from(&rq);
    return drive(&rq, env, tp);
}

/* A TLS login refused or taken, as an API client sees it (JSON: st_,
 * rs_), then as the page's button (a browser: back to the page asked for,
 * or to the login page with the reason; another site's post: refused as
 * it is). */
#define EXPECT_TLS(cert, ver, body, env, st_, rs_, name) do {                \
        jpki_txn *t_ = NULL;                                                 \
        const jpki_verdict *v_;                                              \
        char want_[128];                                                     \
        tls_json = 1;                                                        \
        v_ = tls_login(cert, ver, body, env, &t_);                           \
        is_int(v_ ? v_->http_status : -1, st_, "%s: status", name);          \
        is_str(v_ ? v_->reason : NULL, rs_, "%s: reason", name);             \
        jpki_txn_free(t_);                                                   \
        tls_json = 0;                                                        \
        v_ = tls_login(cert, ver, body, env, &t_);                           \
        snprintf(want_, sizeof(want_), "/login?error=%s&return_to=/", rs_);  \
        if (st_ == 200)                                                      \
            snprintf(want_, sizeof(want_), "/");                             \
        if (st_ == 403 && !strcmp(rs_, "cross_origin"))                      \
            ok(v_ && v_->http_status == 403 && !v_->location,                \
               "%s: the page's button: refused as it is", name);            \
        else                                                                 \
            ok(v_ && v_->http_status == 303 && v_->location                  \
               && !strcmp(v_->location, want_),                              \
               "%s: the page's button: 303 %s", name,                        \
               v_ && v_->location ? v_->location : "-");                     \
        jpki_txn_free(t_);                                                   \
    } while (0)

/* TLS client-certificate logins: the same checks as a signed challenge's
 * (issuer, path, validity, revocation, mapping), the same session. */
static void test_tls_login(io_env *good)
{
    const jpki_verdict *v;
    jpki_txn *t;
    jpki_txn_request rq = {0};

    v = tls_login("user1.pem", 0x0303, NULL, good, &t);
    ok(v && v->http_status == 303 && v->location && !strcmp(v->location, "/")
       && v->set_cookie && strstr(v->set_cookie, "HttpOnly")
       && !strcmp(v->account, "alice"),
       "TLS 1.2, a card's certificate: a session, back to / (a page's form)");
    ok(v && v->audit && strstr(v->audit, "\"result\":\"ok\""),
       "... audited as a login");
    jpki_txn_free(t);
    v = tls_login("user1.pem", 0x0303, "return_to=%2Fapp%2F", good, &t);
    ok(v && v->http_status == 303 && !strcmp(v->location, "/app/"),
       "return_to from the form: %s", v && v->location ? v->location : "-");
    jpki_txn_free(t);
    EXPECT_TLS("user1.pem", 0x0304, NULL, good, 200, "ok",
               "TLS 1.3 with a certificate (a key in software): the "
               "handshake proved it");
    EXPECT_TLS(NULL, 0x0304, NULL, good, 400, "tls_version",
               "TLS 1.3 without a certificate: TLS 1.2 needed");
    EXPECT_TLS(NULL, 0, NULL, good, 400, "tls_version", "not over TLS");
    EXPECT_TLS(NULL, 0x0303, NULL, good, 401, "no_client_cert",
               "TLS 1.2 without a certificate");
    EXPECT_TLS("user-ec.pem", 0x0303, NULL, good, 403, "account_not_mapped",
               "an unmapped certificate");
    EXPECT_TLS("user-keyenc.pem", 0x0303, NULL, good, 401, "cert_key_usage",
               "a certificate whose key may not sign");
    EXPECT_TLS("user-foreign.pem", 0x0303, NULL, good, 401,
               "cert_unknown_issuer", "another CA with the J-LIS name");
    EXPECT_TLS("user-expired.pem", 0x0303, NULL, good, 401, "cert_expired",
               "an expired certificate");
    map("rev-keyCompromise.pem", "revoked");
    EXPECT_TLS("rev-keyCompromise.pem", 0x0303, NULL, good, 403,
               "cert_revoked", "a revoked certificate (OCSP)");
    req_sfs = "cross-site";
    req_origin = "https://evil.example";
    EXPECT_TLS("user1.pem", 0x0303, NULL, good, 403, "cross_origin",
               "a login another site's page made the browser post");
    req_sfs = req_origin = NULL;

    /* a GET: 405, POST allowed */
    rq.op = JPKI_OP_TLS_LOGIN;
    rq.now = NOW;
    rq.peer = "127.0.0.1";
    set_from(&rq);
    v = drive(&rq, good, &t);
    ok(v && v->http_status == 405 && v->allow && strstr(v->allow, "POST"),
       "GET: 405, Allow: POST");
    jpki_txn_free(t);
    {
        jpki_op op;

        ok(jpki_endpoint_op("/jpki/tls", 9, 1, &op) && op == JPKI_OP_TLS_LOGIN,
           "the endpoint <prefix>/tls");
        ok(jpki_tls_version_of("TLSv1.2") == 0x0303
           && jpki_tls_version_of("TLSv1.3") == 0x0304
           && jpki_tls_version_of("SSLv3") == 0
           && jpki_tls_version_of(NULL) == 0, "mod_ssl's SSL_PROTOCOL");
    }
}

/* The health answer as a transaction: the embedded store handed to the
 * writer of the answer, Redis probed first. */
static jpki_shm *health_local;
static char health_buf[1024];

static int fake_health(const void *ud, int64_t now, jpki_shm *local,
                       struct jpki_health *h)
{
    (void)ud;
    health_local = local;
    jpki_health_init(h, health_buf, sizeof(health_buf), now, 0, 300);
    h->shm = local != NULL;
    return 1;
}

static void test_health(io_env *env)
{
    jpki_txn_request rq = {0};
    const jpki_verdict *v;
    jpki_txn *t;

    rq.op = JPKI_OP_HEALTH;
    rq.now = NOW;
    rq.local = shm;
    rq.health = fake_health;
    store_batches = 0;
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 200 && health_local == shm
       && store_batches == 0 && !v->audit
       && strstr(v->body, "\"status\":\"ok\"") != NULL
       && strstr(v->body, "\"reasons\":[]") != NULL,
       "embedded store: its table handed over, no store command, 200, "
       "not audited");
    jpki_txn_free(t);
    rq.shared_store = 1;
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 200 && health_local == NULL
       && store_batches == 1
       && strstr(v->body, "\"store\":{\"type\":\"redis\",\"ok\":true}"),
       "Redis: the probe written first (one batch), then the answer");
    jpki_txn_free(t);
    ok(jpki_txn_new(ctx, &rq, &t) == JPKI_OK
       && jpki_txn_step(t) == JPKI_STEP_STORE, "... a store step");
    jpki_txn_feed_store(t, NULL, 0);
    v = jpki_txn_verdict(t);
    ok(v && v->http_status == 503 && !strcmp(v->reason, "degraded")
       && strstr(v->body, "\"reasons\":[{\"reason\":\"store_down\"}]"),
       "the probe timed out: the store down, 503 degraded: %s",
       v ? v->body : "");
    jpki_txn_free(t);
    rq.health = NULL;
    rq.shared_store = 0;
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 500, "no writer of the answer: 500");
    jpki_txn_free(t);
}

/* The metrics as a transaction: who may ask (the admin API's allow-list
 * and token), the answer's type. */
static void test_metrics_txn(io_env *env)
{
    static const char token[] = "0123456789abcdef0123456789abcdef";
    jpki_txn_request rq = {0};
    const jpki_verdict *v;
    jpki_policy p = *jpki_ctx_get_policy(ctx);
    char auth[80];
    jpki_txn *t;

    rq.op = JPKI_OP_METRICS;
    rq.now = NOW;
    rq.local = shm;
    rq.health = fake_health;
    rq.peer = "192.0.2.7";
    rq.policy = &p;
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 403 && v->err == JPKI_ERR_FORBIDDEN,
       "neither a list nor a token: 403");
    jpki_txn_free(t);
    snprintf(p.admin_allow, sizeof(p.admin_allow), "127.0.0.0/8 ::1");
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 403 && strstr(v->body, "forbidden"),
       "an address outside the list: 403 forbidden");
    jpki_txn_free(t);
    rq.peer = "127.0.0.1";
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 200 && v->content_type
       && !strcmp(v->content_type, "text/plain; version=0.0.4; charset=utf-8")
       && strstr(v->body, "# TYPE jpki_health_ok gauge\njpki_health_ok 1\n"),
       "inside the list, no token file: 200, the text: %s",
       v ? v->body : "");
    jpki_txn_free(t);
    EVP_Digest(token, strlen(token), p.admin_token, NULL, EVP_sha256(),
               NULL);
    p.admin_token_set = 1;
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 401, "a token file, no token: 401");
    jpki_txn_free(t);
    snprintf(auth, sizeof(auth), "Bearer %.31sx", token);
    rq.authorization = auth;
    rq.authorization_len = strlen(auth);
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 401, "a wrong token: 401");
    jpki_txn_free(t);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    rq.authorization_len = strlen(auth);
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 200, "the token: 200");
    jpki_txn_free(t);
    p.admin_allow[0] = '\0';
    rq.peer = "198.51.100.1";
    v = drive(&rq, env, &t);
    ok(v && v->http_status == 200, "a token and no list: any address");
    jpki_txn_free(t);
}

/* ------------------------------------------------------------------ */
/* The guard: what a refused login writes, the throttle, logout markers */
/* read without waiting, a full store, the audit lines of refusals       */
/* ------------------------------------------------------------------ */

static jpki_policy gp;                  /* the policy of these tests */

static const jpki_verdict *logout(const char *cookie, int64_t at,
                                  jpki_txn **tp)
{
    jpki_txn_request rq = {0};

    logout_request(&rq, cookie, at);
    return drive(&rq, NULL, tp);
}

/* A login; its status, its session cookie in out (when out != NULL) and
 * its auth_time in *at (when at != NULL). */
static int login_to(const char *cert, const char *key, io_env *env,
                    char *out, int64_t *at)
{
    jpki_txn *t = NULL;
    const jpki_verdict *v = login(cert, key, NULL, env, &t, NULL);
    int st = v ? v->http_status : -1;

    if (out != NULL)
        snprintf(out, 1024, "%s", last_cookie);
    if (at != NULL)
        *at = v ? v->auth_time : -1;
    jpki_txn_free(t);
    return st;
}

/* The throttle counter of kind ("fa", "fc", "lc") and id in the window of
 * NOW ("" when absent). */
static const char *thr_count(const char *kind, const char *id)
{
    return kv(shm, NULL, "jpki:v1:thr:%s:%s:%lld", kind, id,
              (long long)(NOW / gp.throttle_window));
}

static void thr_clear(void)
{
    jpki_shm_delete_prefix(shm, "jpki:v1:thr:", (int64_t)NOW * 1000);
}

/* A refused login writes its throttle counters (address, certificate) and
 * nothing else: its challenge is used up only by a login that passed
 * everything, no revocation answer is cached. */
static void refusal_writes_counters(const char *cert, const char *key,
                                    const char *reason, io_env *env)
{
    char ch[JPKI_CHALLENGE_LEN + 1], id[JPKI_CHALLENGE_ID_HEX + 1] = "";
    const jpki_verdict *v;
    jpki_txn *t;
    uint64_t before;

    thr_clear();
    before = jpki_shm_count(shm, (int64_t)NOW * 1000);
    jpki_challenge_issue(ctx, NOW, req_host, strlen(req_host), ch, NULL);
    v = login(cert, key, NULL, env, &t, ch);
    is_str(v ? v->reason : NULL, reason, "%s signed with %s: %s", cert, key,
           reason);
    jpki_txn_free(t);
    is_int(jpki_shm_delete_prefix(shm, "jpki:v1:thr:", (int64_t)NOW * 1000),
           2, "... counted against its address and its certificate");
    is_int(jpki_shm_count(shm, (int64_t)NOW * 1000), before,
           "... and nothing else written");
    jpki_challenge_check(ctx, ch, strlen(ch), NOW, req_host, strlen(req_host),
                         id, NULL);
    is_str(kv(shm, NULL, "jpki:v1:ch:%s", id), "",
           "... its challenge not used up");
}

/* The next login of cert answers 429 too_many_attempts with a
 * Retry-After; returns it. */
static unsigned expect_429(const char *cert, const char *key, io_env *env,
                           const char *name)
{
    jpki_txn *t = NULL;
    const jpki_verdict *v = login(cert, key, NULL, env, &t, NULL);
    unsigned ra = v ? v->retry_after : 0;

    is_int(v ? v->http_status : -1, 429, "%s: 429", name);
    is_str(v ? v->reason : NULL, "too_many_attempts", "... too_many_attempts");
    ok(ra >= 1 && ra <= 2 * gp.throttle_window, "... Retry-After %u s", ra);
    jpki_txn_free(t);
    return ra;
}

static void test_throttle(io_env *env)
{
    char name[64], cid[JPKI_CERT_ID_HEX_LEN + 1];
    unsigned ra;
    int i;

    /* failed logins per certificate */
    gp.throttle_cert = 3;
    gp.throttle_addr = 0;
    thr_clear();
    snprintf(cid, sizeof(cid), "%s", cert_id_of("user1.pem"));
    for (i = 1; i <= 3; i++) {
        snprintf(name, sizeof(name), "throttle cert=3: bad signature %d", i);
        EXPECT_LOGIN("user1.pem", "user2.key", NULL, env, 401,
                     "signature_invalid", name);
    }
    is_int(expect_429("user1.pem", "user2.key", env, "... the 4th"), 76,
           "... 76 s at a window's start (the count with this try, 4, is "
           "under 3 once the next window weighs this one under 3/4)");
    is_str(thr_count("fc", cid), "4", "... counted (the signature was "
           "checked: a failure over a certificate's limit is still a try)");
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 200, "ok",
                 "a good login of that certificate passes: whoever has a "
                 "card's certificate cannot lock its holder out");
    ra = expect_429("user1.pem", "user2.key", env, "... a bad one after it");
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, env, 200, "ok",
                 "another certificate signs in");
    NOW += ra;
    EXPECT_LOGIN("user1.pem", "user2.key", NULL, env, 401,
                 "signature_invalid", "Retry-After seconds later a bad "
                 "signature of the certificate is a 401 again");

    /* failed logins per address (IPv6: per /64), over several
     * certificates */
    gp.throttle_cert = 0;
    gp.throttle_addr = 3;
    thr_clear();
    req_peer = "2001:db8:7:7::1";
    EXPECT_LOGIN("user1.pem", "user2.key", NULL, env, 401,
                 "signature_invalid", "throttle addr=3: bad signature");
    EXPECT_LOGIN("user-ec.pem", "user-ec.key", NULL, env, 403,
                 "account_not_mapped", "... a certificate not mapped");
    EXPECT_LOGIN("user2.pem", "user1.key", NULL, env, 401,
                 "signature_invalid", "... a third certificate");
    req_peer = "2001:db8:7:7::99";
    expect_429("user2.pem", "user2.key", env,
               "a good login from another address of that /64");
    req_peer = "2001:db8:7:8::1";
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, env, 200, "ok",
                 "another /64 signs in");
    req_peer = "192.0.2.1";
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, env, 200, "ok",
                 "another address signs in");
    req_peer = NULL;
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, env, 200, "ok",
                 "the certificates themselves are not limited");

    /* logins per certificate */
    gp.throttle_cert = 10;
    gp.throttle_addr = 0;
    gp.login_limit_cert = 3;
    thr_clear();
    for (i = 1; i <= 3; i++) {
        snprintf(name, sizeof(name), "logins=3: login %d", i);
        EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 200, "ok", name);
    }
    expect_429("user1.pem", "user1.key", env, "... the 4th");
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, env, 200, "ok",
                 "... another certificate signs in");
    gp.login_limit_cert = 60;

    /* a replayed login (the same challenge) is a failed login */
    {
        char ch[JPKI_CHALLENGE_LEN + 1];
        jpki_txn *t;
        const jpki_verdict *v;

        gp.throttle_addr = 100;
        thr_clear();
        jpki_challenge_issue(ctx, NOW, req_host, strlen(req_host), ch, NULL);
        v = login("user1.pem", "user1.key", NULL, env, &t, ch);
        is_int(v ? v->http_status : -1, 200, "a challenge used once");
        jpki_txn_free(t);
        is_str(thr_count("fc", cid), "", "... no failure counted");
        is_str(thr_count("lc", cid), "1", "... one login counted");
        v = login("user1.pem", "user1.key", NULL, env, &t, ch);
        is_str(v ? v->reason : NULL, "challenge_replayed",
               "the same login body again: challenge_replayed");
        jpki_txn_free(t);
        is_str(thr_count("fc", cid), "1", "... counted against the "
               "certificate");
        is_str(thr_count("lc", cid), "1", "... not as a login (a captured "
               "body cannot spend its certificate's logins)");
        is_int(jpki_shm_delete_prefix(shm, "jpki:v1:thr:fa:",
                                      (int64_t)NOW * 1000), 1,
               "... and against the address");
    }
}

/* Logouts read from the node's table (here the embedded store itself) by
 * every gated request, however long the recheck interval. */
static void test_logout_local(io_env *env)
{
    char a[1024], b[1024], c[1024];
    int64_t base = NOW, auth = 0;
    const jpki_verdict *v;
    jpki_txn *t;
    int batches, i;

    req_local = shm;
    req_shared = 0;
    is_int(login_to("user1.pem", "user1.key", env, a, NULL), 200, "session a");
    is_int(login_to("user1.pem", "user1.key", env, b, NULL), 200,
           "session b of the same certificate");
    batches = store_batches;
    v = check(a, base + 5, env, &t);
    ok(v && v->http_status == 200 && store_batches == batches,
       "a gated request within the recheck interval: no store round trip");
    jpki_txn_free(t);
    v = logout(a, base + 10, &t);
    is_int(v ? v->http_status : -1, 200, "logout of session a");
    jpki_txn_free(t);
    batches = store_batches;
    v = logout(a, base + 10, &t);
    ok(v && v->http_status == 200 && store_batches == batches,
       "its cookie posted to logout again: 200, nothing written (a copied "
       "cookie cannot fill the logout log)");
    jpki_txn_free(t);
    batches = store_batches;
    v = check(a, base + 11, env, &t);
    is_str(v ? v->reason : NULL, "session_logged_out",
           "its next request: session_logged_out");
    is_int(v ? v->http_status : -1, 401, "... 401");
    is_int(store_batches, batches, "... at once (no store round trip, "
           "recheck interval 3600 s)");
    jpki_txn_free(t);
    v = check(b, base + 11, env, &t);
    is_str(v ? v->reason : NULL, "session_logged_out",
           "session b, signed in before the logout: out too");
    jpki_txn_free(t);
    req_local = NULL;
    v = check(b, base + 11, env, &t);
    is_int(v ? v->http_status : -1, 200, "without the node's table the "
           "marker waits for the next re-check");
    jpki_txn_free(t);
    req_local = shm;

    for (i = 0; i < 2; i++) {
        NOW = base + 10 + i;
        is_int(login_to("user1.pem", "user1.key", env, c, &auth), 200,
               "a login %s the logout", i ? "a second after" : "in the "
               "second of");
        is_int(auth, base + 11, "... its session starts after the logout");
        v = check(c, base + 12, env, &t);
        is_int(v ? v->http_status : -1, 200, "... and is not logged out");
        jpki_txn_free(t);
    }
    /* that session logged out in the second of the first logout: its
     * marker takes its (later) auth_time, else it would not end it */
    v = logout(c, base + 10, &t);
    is_int(v ? v->http_status : -1, 200, "a logout of it in the second of "
           "the first logout");
    jpki_txn_free(t);
    v = check(c, base + 12, env, &t);
    is_str(v ? v->reason : NULL, "session_logged_out", "... ends it");
    jpki_txn_free(t);

    /* `jpkictl logout`: every session of an account */
    NOW = base + 20;
    is_int(login_to("user2.pem", "user2.key", env, c, &auth), 200,
           "a session of account bob");
    {
        char aid[JPKI_ACCOUNT_ID_HEX_LEN + 1], at[24];

        jpki_account_id(ctx, "bob", 3, aid);
        snprintf(at, sizeof(at), "%lld", (long long)auth - 1);
        kv(shm, at, "jpki:v1:outa:%s", aid);
        v = check(c, base + 21, env, &t);
        is_int(v ? v->http_status : -1, 200,
               "an account marker before its auth_time: passes");
        jpki_txn_free(t);
        snprintf(at, sizeof(at), "%lld", (long long)auth);
        kv(shm, at, "jpki:v1:outa:%s", aid);
        batches = store_batches;
        v = check(c, base + 21, env, &t);
        ok(v && strcmp(v->reason, "session_logged_out") == 0
           && store_batches == batches,
           "outa:<account_id> at its auth_time: session_logged_out at once");
        jpki_txn_free(t);
        jpki_shm_delete_prefix(shm, "jpki:v1:outa:", (int64_t)NOW * 1000);
    }
    req_local = NULL;
}

/* Whether a gated request with cookie at `at` asks the store (-1: it did
 * not pass). */
static int check_asks_store(const char *cookie, int64_t at, io_env *env)
{
    int batches = store_batches, st;
    jpki_txn *t;
    const jpki_verdict *v = check(cookie, at, env, &t);

    st = v ? v->http_status : -1;
    jpki_txn_free(t);
    return st != 200 ? -1 : store_batches > batches;
}

/* Whether the i-th command of the last batch is a GET of kind:id. */
static int last_get(size_t i, const char *kind, const char *id)
{
    char key[JPKI_STORE_KEY_MAX + 1];

    snprintf(key, sizeof(key), "%s%s:%s", JPKI_STORE_PREFIX, kind, id);
    return i < last_n && last_cmds[i].op == JPKI_STORE_GET
           && last_cmds[i].keylen == strlen(key)
           && memcmp(last_cmds[i].key, key, last_cmds[i].keylen) == 0;
}

/* A re-check that is due, the revocation answer cached by the login: the
 * answer, the logout markers and the mapping read in one batch (pipelined
 * to Redis: one round trip), nothing else asked of the store or of OCSP. */
static void test_recheck_one_batch(io_env *env)
{
    char a[1024], cid[80];
    const jpki_verdict *v;
    jpki_txn *t;
    int batches, ocsp;

    req_local = shm;
    req_shared = 0;
    gp.recheck_interval = 60;
    snprintf(cid, sizeof(cid), "%s", cert_id_of("user1.pem"));
    is_int(login_to("user1.pem", "user1.key", env, a, NULL), 200,
           "one batch: a session (its revocation answer cached)");
    batches = store_batches;
    ocsp = env->ocsp_calls;
    v = check(a, NOW + 61, env, &t);
    is_int(v ? v->http_status : -1, 200, "... re-checked when due: 200");
    is_int(store_batches - batches, 1, "... in one store batch");
    is_int((int)last_n, 4, "... of four commands");
    ok(last_get(0, "rev", cid) && last_get(1, "out", cid)
       && last_n == 4 && last_cmds[2].op == JPKI_STORE_GET
       && strncmp(last_cmds[2].key, JPKI_STORE_PREFIX "outa:",
                  sizeof(JPKI_STORE_PREFIX "outa:") - 1) == 0
       && last_get(3, "map", cid),
       "... GETs of rev:, out:, outa: and map:");
    is_int(env->ocsp_calls, ocsp, "... decided from the cached answer");
    jpki_txn_free(t);
    gp.recheck_interval = 3600;
    req_local = NULL;
}

/* With Redis: the node's mirror, a logout writes it at once and appends
 * to the logout log; sessions the mirror cannot vouch for ask the store. */
static void test_logout_mirror(io_env *env)
{
    size_t size = 1 << 16;
    void *mem = calloc(1, size), *h = calloc(1, jpki_shm_handle_size());
    jpki_shm *mirror;
    jpki_txn_request rq;
    const jpki_store_cmd *c;
    jpki_txn *t;
    char f[1024], g[1024], cid[JPKI_CERT_ID_HEX_LEN + 1], want[128];
    long long seq;
    int64_t tg;
    size_t n;

    jpki_shm_init(mem, size, 0);
    mirror = jpki_shm_attach(h, mem, size, NULL);
    req_local = mirror;
    req_shared = 1;
    req_since = 0;
    snprintf(cid, sizeof(cid), "%s", cert_id_of("user1.pem"));
    is_int(login_to("user1.pem", "user1.key", env, f, NULL), 200,
           "shared store: a session");

    logout_request(&rq, f, NOW + 10);
    jpki_txn_new(ctx, &rq, &t);
    is_int(jpki_txn_step(t), JPKI_STEP_STORE, "logout: a store step");
    c = jpki_txn_store_cmds(t, &n);
    snprintf(want, sizeof(want), "%lld", (long long)NOW + 10);
    ok(n == 2 && c[0].op == JPKI_STORE_SET
       && strncmp(c[0].key, "jpki:v1:out:", 12) == 0
       && strcmp(c[0].key + 12, cid) == 0
       && c[0].vallen == strlen(want)
       && memcmp(c[0].val, want, c[0].vallen) == 0
       && c[1].op == JPKI_STORE_INCR && strcmp(c[1].key, "jpki:v1:outseq") == 0,
       "... SET out:<cert_id> <time>, INCR outseq");
    is_str(kv(mirror, NULL, "jpki:v1:out:%s", cid), want,
           "... the mirror written at once, before the store answers");
    seq = atoll(kv(shm, NULL, "jpki:v1:outseq")) + 1;
    exec_store(t);
    is_int(jpki_txn_step(t), JPKI_STEP_STORE, "... then another store step");
    c = jpki_txn_store_cmds(t, &n);
    snprintf(want, sizeof(want), "c|%s|%lld|%u", cid, (long long)NOW + 10,
             (unsigned)JPKI_OUTLOG_TTL);
    ok(n == 1 && c[0].op == JPKI_STORE_SET
       && strcmp(c[0].key, "jpki:v1:outlog:") > 0
       && atoll(c[0].key + 15) == seq && c[0].vallen == strlen(want)
       && memcmp(c[0].val, want, c[0].vallen) == 0
       && c[0].ttl_ms == JPKI_OUTLOG_TTL * 1000u,
       "... SET outlog:%lld \"%s\" for JPKI_OUTLOG_TTL", seq, want);
    exec_store(t);
    is_int(jpki_txn_step(t), JPKI_STEP_DONE, "... done");
    is_int(jpki_txn_verdict(t)->http_status, 200, "... logged out");
    jpki_txn_free(t);
    is_int(check_asks_store(f, NOW + 11, env), -1,
           "the session is refused on this node");
    NOW += 10 + JPKI_OUTLOG_TTL;
    is_str(kv(mirror, NULL, "jpki:v1:out:%s", cid), "",
           "the mirror keeps the marker JPKI_OUTLOG_TTL");
    NOW -= 10 + JPKI_OUTLOG_TTL;

    /* a session the mirror can vouch for, and ones it cannot */
    tg = NOW;
    is_int(login_to("user2.pem", "user2.key", env, g, NULL), 200,
           "another session (checked at login)");
    req_since = tg;
    is_int(check_asks_store(g, tg + 5, env), 0,
           "checked in the store at local_since: the mirror suffices");
    req_since = tg + 1;
    is_int(check_asks_store(g, tg + 5, env), 1,
           "checked before local_since: asks the store");
    req_since = INT64_MAX;
    is_int(check_asks_store(g, tg + 5, env), 1,
           "no complete poll lately (INT64_MAX): asks the store");
    req_since = 0;
    is_int(check_asks_store(g, tg + JPKI_OUTLOG_TTL - 1, env), 0,
           "checked JPKI_OUTLOG_TTL - 1 s ago: the mirror suffices");
    is_int(check_asks_store(g, tg + JPKI_OUTLOG_TTL, env), 1,
           "checked JPKI_OUTLOG_TTL ago: asks the store");
    req_shared = 0;
    is_int(check_asks_store(g, tg + JPKI_OUTLOG_TTL, env), 0,
           "... not with the embedded store (no mirror)");
    req_local = NULL;
    free(mem);
    free(h);
}

/* A CHECK of cookie at `at` while the store fails (timeout: no results;
 * else error results; failing: the poller says so): its status (-1: not
 * done), the store steps it asked for, whether it passed without the
 * store. */
static int check_store_down(const char *cookie, int64_t at, int timeout,
                            int failing, int *asked, int *outage)
{
    jpki_store_result r[JPKI_STORE_BATCH_MAX];
    jpki_txn_request rq;
    jpki_txn *t = NULL;
    jpki_step s;
    size_t n;
    int st;

    check_request(&rq, cookie, at);
    rq.store_failing = failing;
    if (jpki_txn_new(ctx, &rq, &t) != JPKI_OK)
        return -1;
    *asked = 0;
    while ((s = jpki_txn_step(t)) == JPKI_STEP_STORE && *asked < 4) {
        (*asked)++;
        (void)jpki_txn_store_cmds(t, &n);
        memset(r, 0, sizeof(r));                /* JPKI_STORE_R_ERROR */
        jpki_txn_feed_store(t, timeout ? NULL : r, n);
    }
    st = s == JPKI_STEP_DONE ? jpki_txn_verdict(t)->http_status : -1;
    *outage = s == JPKI_STEP_DONE && jpki_txn_verdict(t)->store_outage;
    jpki_txn_free(t);
    return st;
}

/* jpki_store_outage (txn_session.c): with Redis down, a session whose
 * re-check is not due passes without its markers (sessions), or not
 * (closed); a due re-check, and a session the node knows logged out, do
 * not pass. */
static void test_store_outage(io_env *env)
{
    size_t size = 1 << 16;
    void *mem = calloc(1, size), *h = calloc(1, jpki_shm_handle_size());
    static jpki_policy pol;
    const jpki_policy *saved = req_policy;
    char f[1024], cid[JPKI_CERT_ID_HEX_LEN + 1], at_s[24];
    int64_t at;
    int asked, outage;

    jpki_shm_init(mem, size, 0);
    req_local = jpki_shm_attach(h, mem, size, NULL);
    req_shared = 1;
    req_since = 0;
    pol = saved != NULL ? *saved : *jpki_ctx_policy(ctx);
    pol.recheck_interval = 300;
    req_policy = &pol;
    is_int(login_to("user1.pem", "user1.key", env, f, &at), 200, "a session");
    /* the mirror cannot vouch: the poller has not read the log lately */
    req_since = INT64_MAX;

    pol.store_outage = JPKI_OUTAGE_CLOSED;
    is_int(check_store_down(f, at + 10, 0, 0, &asked, &outage), 503,
           "closed: Redis down: 503");
    is_int(asked, 1, "... after asking the store");
    is_int(check_store_down(f, at + 10, 1, 1, &asked, &outage), 503,
           "closed: timed out, the poller failing: 503");

    pol.store_outage = JPKI_OUTAGE_SESSIONS;
    is_int(check_store_down(f, at + 10, 0, 0, &asked, &outage), 200,
           "sessions: Redis down, the re-check not due: passes");
    ok(asked == 1 && outage, "... the store was asked; the verdict says it "
       "passed without it");
    is_int(check_store_down(f, at + 10, 1, 0, &asked, &outage), 200,
           "sessions: the store timed out: passes");
    is_int(check_store_down(f, at + 10, 0, 1, &asked, &outage), 200,
           "sessions: the poller says the store fails: passes");
    ok(asked == 0 && outage, "... without waiting for the store");
    is_int(check_store_down(f, at + 300, 0, 0, &asked, &outage), 503,
           "sessions: the re-check due: 503");
    is_int(check_store_down(f, at + 300, 0, 1, &asked, &outage), 503,
           "sessions: the re-check due, the poller failing: 503");
    ok(asked == 1, "... it asked the store all the same");
    is_int(check_asks_store(f, at + 20, env), 1,
           "sessions: Redis up: the markers are read in the store");
    req_since = 0;
    is_int(check_store_down(f, at + 20, 0, 1, &asked, &outage), 200,
           "the mirror vouches: passes as always");
    ok(asked == 0 && !outage, "... not an outage's pass");

    /* a logout this node knows of (its mirror): refused all the same */
    req_since = INT64_MAX;
    snprintf(cid, sizeof(cid), "%s", cert_id_of("user1.pem"));
    snprintf(at_s, sizeof(at_s), "%lld", (long long)at + 30);
    kv(req_local, at_s, "jpki:v1:out:%s", cid);
    is_int(check_store_down(f, at + 40, 0, 1, &asked, &outage), 401,
           "sessions: a logout in the node's mirror: refused");
    req_policy = saved;
    req_local = NULL;
    req_shared = 0;
    req_since = 0;
    free(mem);
    free(h);
}

/* The embedded store nearly full: soft writes (counters, caches) stop at
 * 3/4, so a login still gets its challenge in; full, it is 503. */
static void test_store_full(io_env *env)
{
    size_t size = jpki_shm_min_size(), i;
    void *mem = calloc(1, size), *h = calloc(1, jpki_shm_handle_size());
    jpki_shm *saved = shm;

    jpki_shm_init(mem, size, 0);
    shm = jpki_shm_attach(h, mem, size, NULL);
    map("user1.pem", "alice");
    for (i = 1; i < jpki_shm_capacity(shm) * 3 / 4; i++)
        kv(shm, "x", "jpki:v1:fill:%zu", i);
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 200, "ok",
                 "the store 3/4 full: a login gets its challenge in");
    is_int(jpki_shm_count(shm, (int64_t)NOW * 1000),
           jpki_shm_capacity(shm) * 3 / 4 + 1,
           "... only its challenge written (counters, cache kept out)");
    EXPECT_LOGIN("user1.pem", "user2.key", NULL, env, 401,
                 "signature_invalid", "... a refused login answered, "
                 "uncounted");
    for (; !jpki_shm_is_full(shm, (int64_t)NOW * 1000); i++)
        kv(shm, "x", "jpki:v1:fill:%zu", i);
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 503, "store_full",
                 "the store full: the challenge cannot be used up");
    shm = saved;
    free(mem);
    free(h);
}

/* store replicas=N: a login's challenge and a logout's marker count once
 * N replicas acknowledged them (WAIT, the batch's last command); fewer, or
 * WAIT failing: 503 store_error. */
static void test_replicas(io_env *env)
{
    char f[1024];
    jpki_txn_request rq;
    jpki_txn *t;

    req_shared = login_shared = 1;
    req_local = NULL;
    req_since = 0;
    jpki_ctx_set_replicas(ctx, 2, 250);
    memset(&last_wait, 0, sizeof(last_wait));
    wait_acks = 2;
    is_int(login_to("user1.pem", "user1.key", env, f, NULL), 200,
           "replicas=2, both acknowledge: a login");
    ok(last_wait.op == JPKI_STORE_WAIT && last_wait.key[0] == 'L'
       && last_wait.vallen == 1 && last_wait.val[0] == '2'
       && last_wait.ttl_ms == 250,
       "... WAIT 2 250, the last command of the commit");
    wait_acks = 1;
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 503, "store_error",
                 "one of two acknowledges: refused");
    wait_acks = -1;
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, env, 503, "store_error",
                 "WAIT fails: refused");
    wait_acks = 0;
    memset(&last_wait, 0, sizeof(last_wait));
    logout_request(&rq, f, NOW + 1);
    jpki_txn_new(ctx, &rq, &t);
    while (jpki_txn_step(t) == JPKI_STEP_STORE)
        exec_store(t);
    ok(last_wait.op == JPKI_STORE_WAIT && last_wait.key[0] == 'L'
       && jpki_txn_verdict(t)->http_status == 503,
       "a logout's marker: WAIT after it, none acknowledge: 503");
    jpki_txn_free(t);
    wait_acks = 2;
    logout_request(&rq, f, NOW + 1);
    jpki_txn_new(ctx, &rq, &t);
    while (jpki_txn_step(t) == JPKI_STEP_STORE)
        exec_store(t);
    is_int(jpki_txn_verdict(t)->http_status, 200,
           "... both acknowledge: logged out");
    jpki_txn_free(t);
    jpki_ctx_set_replicas(ctx, 0, 0);
    memset(&last_wait, 0, sizeof(last_wait));
    is_int(login_to("user1.pem", "user1.key", env, f, NULL), 200,
           "no replicas=: a login");
    ok(last_wait.op != JPKI_STORE_WAIT, "... and no WAIT");
    req_shared = login_shared = 0;
}

static int log_refused;

static void count_refusals(void *ud, jpki_log_level l, const char *msg)
{
    log_refused += strstr(msg, "jpki login refused") != NULL;
}

/* Refusals beyond the throttle's limit (at least 10) a window have no
 * audit line, nor a log line; the next one says how many. */
static void test_audit_limit(io_env *env)
{
    const jpki_verdict *v;
    jpki_txn *t;
    int i, lines = 0;

    NOW += 3600;                        /* windows of their own */
    gp.throttle_cert = 10;
    gp.throttle_addr = 0;
    thr_clear();
    jpki_ctx_set_log(ctx, count_refusals, NULL);
    for (i = 0; i < 10; i++) {
        v = login("user1.pem", "user2.key", NULL, env, &t, NULL);
        lines += v && v->http_status == 401 && v->audit != NULL
                 && strstr(v->audit, "\"reason\":\"signature_invalid\"")
                 && !strstr(v->audit, "suppressed");
        jpki_txn_free(t);
    }
    is_int(lines, 10, "10 refused logins of a certificate: 10 audit lines");
    is_int(log_refused, 10, "... and 10 log lines");
    for (i = 0; i < 2; i++) {
        v = login("user1.pem", "user2.key", NULL, env, &t, NULL);
        ok(v && v->http_status == 429 && v->audit == NULL,
           "refusal %d: no audit line", 11 + i);
        jpki_txn_free(t);
    }
    is_int(log_refused, 10, "... nor a log line");
    NOW += 2 * gp.throttle_window;
    v = login("user1.pem", "user2.key", NULL, env, &t, NULL);
    ok(v && v->audit && strstr(v->audit, ",\"suppressed\":2}"),
       "the next window: the line says 2 were left out (%s)",
       v && v->audit ? v->audit : "none");
    jpki_txn_free(t);
    v = login("user1.pem", "user2.key", NULL, env, &t, NULL);
    ok(v && v->audit && !strstr(v->audit, "suppressed"),
       "... the one after it no more");
    jpki_txn_free(t);
    jpki_ctx_set_log(ctx, NULL, NULL);
}

static void test_guard(io_env *env)
{
    time_t base = NOW;

    NOW = NOW - NOW % 60 + 60;          /* at the start of a window */
    jpki_shm_delete_prefix(shm, "jpki:v1:", (int64_t)NOW * 1000);
    map("user1.pem", "alice");
    map("user2.pem", "bob");
    map("rev-keyCompromise.pem", "x");
    gp = *jpki_ctx_get_policy(ctx);
    gp.recheck_interval = 3600;
    gp.session_idle = 0;
    req_policy = &gp;
    refusal_writes_counters("user-ec.pem", "user-ec.key", "account_not_mapped",
                            env);
    refusal_writes_counters("user1.pem", "user2.key", "signature_invalid",
                            env);
    refusal_writes_counters("rev-keyCompromise.pem", "rev-keyCompromise.key",
                            "cert_revoked", env);
    test_throttle(env);
    test_logout_local(env);
    test_recheck_one_batch(env);
    test_logout_mirror(env);
    test_store_outage(env);
    test_store_full(env);
    test_replicas(env);
    test_audit_limit(env);
    req_policy = NULL;
    NOW = base;
}

/* ---- the login page and the device flow ---------------------------- */

static const jpki_verdict *page_req(jpki_op op, const char *uri, int post,
                                    const char *lang, jpki_txn **tp)
{
    jpki_txn_request rq = {0};
    const char *q = strchr(uri, '?');

    rq.op = op;
    rq.now = NOW;
    rq.is_post = post;
    rq.uri = uri;
    rq.query = q ? q + 1 : NULL;
    rq.query_len = q ? strlen(q + 1) : 0;
    rq.accept_language = lang;
    rq.accept_language_len = lang ? strlen(lang) : 0;
    rq.policy = req_policy;
    set_from(&rq);
    return drive(&rq, NULL, tp);
}

static const char *header_of(const jpki_verdict *v, const char *name)
{
    const jpki_header *h;

    for (h = v && v->headers ? v->headers : NULL; h && h->name; h++)
        if (!strcmp(h->name, name))
            return h->value;
    return NULL;
}

/* base64's '+', '/', '=' percent-encoded (a form's value). */
static const char *form_escape(const char *b64)
{
    static char out[3][12288];
    static int k;
    char *o = out[k = (k + 1) % 3];
    size_t n = 0;

    for (; *b64 && n + 4 < sizeof(out[0]); b64++)
        n += (size_t)(strchr("+/=", *b64)
                      ? snprintf(o + n, 4, "%%%02X", (unsigned char)*b64)
                      : snprintf(o + n, 2, "%c", *b64));
    return o;
}

static void test_page_txn(io_env *good)
{
    const jpki_verdict *v;
    jpki_txn *t;
    jpki_policy none;
    char form[16384], ch[JPKI_CHALLENGE_LEN + 1];
    jpki_txn_request rq = {0};

    v = page_req(JPKI_OP_PAGE, "/jpki/login?return_to=%2Fapp%2F&error="
                 "cert_revoked", 0, "en-US,en;q=0.8", &t);
    ok(v && v->http_status == 200 && v->content_type
       && !strcmp(v->content_type, "text/html; charset=utf-8"),
       "GET <prefix>/login: the page, HTML");
    ok(v && v->body && strstr(v->body, "<html lang=\"en\">")
       && strstr(v->body, "The certificate of this card has been revoked"),
       "in English, with the refusal's sentence");
    ok(v && strstr(v->body, "action=\"/jpki/tls\"")
       && strstr(v->body, "action=\"/jpki/device\"")
       && strstr(v->body, "value=\"/app/\"")
       && strstr(v->body, "href=\"/jpki/page.css\""),
       "the methods' URLs and return_to under the endpoints' prefix");
    ok(header_of(v, "Content-Security-Policy")
       && strstr(header_of(v, "Content-Security-Policy"), "script-src 'self'")
       && header_of(v, "X-Frame-Options"), "the page's CSP and headers");
    jpki_txn_free(t);
    v = page_req(JPKI_OP_PAGE, "/jpki/login?return_to=%2F%2Fevil.example&"
                 "error=x%3Cscript", 0, NULL, &t);
    ok(v && strstr(v->body, "<html lang=\"ja\">")
       && strstr(v->body, "マイナンバーカードでログイン"),
       "no Accept-Language: Japanese");
    ok(v && !strstr(v->body, "evil.example") && strstr(v->body, "value=\"/\"")
       && !strstr(v->body, "role=\"alert\""),
       "another site's return_to and a malformed error are left out");
    jpki_txn_free(t);
    v = page_req(JPKI_OP_PAGE, "/jpki/login", 1, NULL, &t);
    ok(v && v->http_status == 405, "POST to the page's path without a "
       "login: 405");
    jpki_txn_free(t);
    none = gp;
    none.login_methods = 0;
    req_policy = &none;
    v = page_req(JPKI_OP_PAGE, "/jpki/login", 0, "en", &t);
    ok(v && strstr(v->body, "no way to sign in") && !strstr(v->body, "m-tls"),
       "no method turned on: the page says so");
    jpki_txn_free(t);
    none.login_methods = JPKI_METHOD_DEVICE;
    v = page_req(JPKI_OP_PAGE, "/jpki/login", 0, "en", &t);
    ok(v && !strstr(v->body, "m-tls") && strstr(v->body, "m-device"),
       "only the methods turned on");
    jpki_txn_free(t);
    req_policy = NULL;

    v = page_req(JPKI_OP_ASSET, "/jpki/page.js?v=1", 0, NULL, &t);
    ok(v && v->http_status == 200 && v->body_len > 100
       && !strcmp(v->content_type, "text/javascript; charset=utf-8")
       && header_of(v, "ETag") && header_of(v, "ETag")[0] == '"',
       "page.js, with its ETag");
    jpki_txn_free(t);
    v = page_req(JPKI_OP_ASSET, "/jpki/page.css", 0, NULL, &t);
    ok(v && v->http_status == 200 && !strncmp(v->content_type, "text/css", 8),
       "page.css");
    jpki_txn_free(t);
    v = page_req(JPKI_OP_ASSET, "/jpki/other.js", 0, NULL, &t);
    ok(v && v->http_status == 404, "another name: 404");
    jpki_txn_free(t);

    /* a browser's form login refused: back to the page, with the reason */
    jpki_challenge_issue(ctx, NOW, req_host, strlen(req_host), ch, NULL);
    {
        char cert[8192], sig[1024];
        snprintf(cert, sizeof(cert), "%s", tap_file_b64("user-ec.pem"));
        snprintf(sig, sizeof(sig), "%s", tap_sign_b64(ch, "user-ec.key",
                                                      "sha256"));
        snprintf(form, sizeof(form), "challenge=%s&certificate=%s&"
                 "signature=%s&return_to=%%2Fapp%%2F", ch,
                 form_escape(cert), form_escape(sig));
    }
    tap_json_login(&rq, NOW, form);
    rq.wants_json = 0;
    rq.content_type = "application/x-www-form-urlencoded";
    rq.content_type_len = strlen(rq.content_type);
    rq.uri = "/jpki/login";
    set_from(&rq);
    v = drive(&rq, good, &t);
    ok(v && v->http_status == 303 && v->location
       && !strcmp(v->location, "/jpki/login?error=account_not_mapped&"
                  "return_to=/app/"),
       "a form login refused: 303 to the page (%s)",
       v && v->location ? v->location : "-");
    jpki_txn_free(t);
}

/* The device flow: a browser's start, a signer's login, the poll. */
static char flow_cookie[256];

static const jpki_verdict *flow_start(int json, jpki_txn **tp, char *ch)
{
    jpki_txn_request rq = {0};
    const jpki_verdict *v;
    const char *p;

    rq.op = JPKI_OP_DEVICE_START;
    rq.now = NOW;
    rq.is_post = 1;
    rq.wants_json = json;
    rq.https = 1;
    rq.uri = "/jpki/device";
    rq.body = (const uint8_t *)"return_to=%2Fapp%2F";
    rq.body_len = strlen((const char *)rq.body);
    rq.content_type = "application/x-www-form-urlencoded";
    rq.content_type_len = strlen(rq.content_type);
    rq.peer = "127.0.0.1";
    rq.policy = req_policy;
    set_from(&rq);
    v = drive(&rq, NULL, tp);
    flow_cookie[0] = ch[0] = '\0';
    if (v && v->set_cookie && !strncmp(v->set_cookie, "jpki_flow=", 10))
        snprintf(flow_cookie, sizeof(flow_cookie), "%.*s",
                 (int)strcspn(v->set_cookie + 10, ";"), v->set_cookie + 10);
    p = strchr(flow_cookie, '.');
    if (p != NULL)
        snprintf(ch, JPKI_CHALLENGE_LEN + 1, "%.*s", (int)(p - flow_cookie),
                 flow_cookie);
    return v;
}

static const jpki_verdict *flow_sign(const char *ch, const char *signed_ch,
                                     const char *cert, const char *key,
                                     io_env *env, jpki_txn **tp)
{
    static char body[16384];
    jpki_txn_request rq = {0};

    snprintf(body, sizeof(body), "{\"challenge\":\"%s\",\"certificate\":\"%s\","
             "\"signature\":\"%s\"}", ch, tap_file_b64(cert),
             tap_sign_b64(signed_ch, key, "sha256"));
    tap_json_login(&rq, NOW, body);
    rq.op = JPKI_OP_DEVICE_SIGN;
    rq.uri = "/jpki/sign";
    set_from(&rq);
    rq.sec_fetch_site = rq.origin = NULL;      /* a phone: no browser */
    return drive(&rq, env, tp);
}

static const jpki_verdict *flow_poll(const char *cookie, int json,
                                     jpki_txn **tp)
{
    jpki_txn_request rq = {0};

    rq.op = JPKI_OP_DEVICE_POLL;
    rq.now = NOW;
    rq.wants_json = json;
    rq.uri = "/jpki/poll?return_to=%2Fapp%2F";
    rq.query = "return_to=%2Fapp%2F";
    rq.query_len = strlen(rq.query);
    rq.cookie = cookie;
    rq.cookie_len = cookie ? strlen(cookie) : 0;
    set_from(&rq);
    return drive(&rq, NULL, tp);
}

#define FLOW_EXPECT(v_, st_, rs_, name) do {                                \
        is_int((v_) ? (v_)->http_status : -1, st_, "%s: status", name);      \
        is_str((v_) ? (v_)->reason : NULL, rs_, "%s: reason", name);         \
    } while (0)

static void test_device_flow(io_env *good)
{
    const jpki_verdict *v;
    jpki_txn *t;
    char ch[JPKI_CHALLENGE_LEN + 1], ch2[JPKI_CHALLENGE_LEN + 1];
    char code[JPKI_DEVICE_CODE_LEN + 1], want[512], other[256];
    char cookie[256], session[1024];

    v = flow_start(1, &t, ch);
    jpki_device_code(ch, strlen(ch), code);
    snprintf(want, sizeof(want), "\"url\":\"https://gate.example:8443/jpki/"
             "sign?challenge=%s&code=%s\"", ch, code);
    ok(v && v->http_status == 200 && strlen(ch) == JPKI_CHALLENGE_LEN
       && strstr(v->body, want) && strstr(v->body, "\"link\":\"jpki:https:")
       && strstr(v->body, "\"qr\":\"data:image/svg+xml;base64,")
       && strstr(v->body, "\"poll\":\"/jpki/poll?return_to=/app/\""),
       "a flow started: its URL (origin, challenge, code), link, QR code");
    ok(v && v->set_cookie && strstr(v->set_cookie, "HttpOnly")
       && strstr(v->set_cookie, "SameSite=Strict")
       && strstr(v->set_cookie, "Path=/jpki/")
       && strlen(flow_cookie) == JPKI_CHALLENGE_LEN + 33,
       "bound to the browser by a cookie of its own");
    jpki_txn_free(t);
    snprintf(cookie, sizeof(cookie), "%s", flow_cookie);
    /* another browser: the flow's challenge (it saw the QR code), its own
     * secret */
    snprintf(other, sizeof(other), "%s.%032d", ch, 7);

    v = flow_poll(cookie, 1, &t);
    ok(v && v->http_status == 200 && strstr(v->body, "\"status\":\"pending\""),
       "before the signer: pending");
    jpki_txn_free(t);
    v = flow_poll(other, 1, &t);
    FLOW_EXPECT(v, 403, "flow_mismatch", "another browser's poll, pending");
    jpki_txn_free(t);
    v = flow_poll(NULL, 1, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "a poll without the cookie");
    jpki_txn_free(t);

    /* a signature that proves no key leaves the flow waiting */
    v = flow_sign(ch, ch, "user1.pem", "user2.key", good, &t);
    FLOW_EXPECT(v, 401, "signature_invalid", "a forged signer");
    jpki_txn_free(t);
    jpki_challenge_issue(ctx, NOW, req_host, strlen(req_host), ch2, NULL);
    v = flow_sign(ch, ch2, "user1.pem", "user1.key", good, &t);
    FLOW_EXPECT(v, 401, "signature_invalid",
                "a signature over another challenge, into this flow");
    jpki_txn_free(t);
    v = flow_sign(ch2, ch2, "user1.pem", "user1.key", good, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "a login of no flow: refused");
    jpki_txn_free(t);
    v = flow_poll(cookie, 1, &t);
    ok(v && strstr(v->body, "\"status\":\"pending\""), "still pending");
    jpki_txn_free(t);

    v = flow_sign(ch, ch, "user1.pem", "user1.key", good, &t);
    snprintf(want, sizeof(want), "{\"status\":\"ok\",\"code\":\"%s\"}", code);
    ok(v && v->http_status == 200 && !strcmp(v->body, want)
       && v->set_cookie == NULL && v->audit
       && strstr(v->audit, "\"event\":\"login\""),
       "the signer: ok with the code, no session, audited as a login");
    jpki_txn_free(t);
    v = flow_sign(ch, ch, "user1.pem", "user1.key", good, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "a second signer into a signed flow");
    jpki_txn_free(t);
    v = flow_poll(other, 1, &t);
    FLOW_EXPECT(v, 403, "flow_mismatch", "another browser's poll, signed");
    jpki_txn_free(t);

    v = flow_poll(cookie, 1, &t);
    ok(v && v->http_status == 200 && strstr(v->body, "\"account\":\"alice\"")
       && v->set_cookie && !strncmp(v->set_cookie, "jpki_session=", 13)
       && v->set_cookie2 && strstr(v->set_cookie2, "jpki_flow=;")
       && strstr(v->set_cookie2, "Max-Age=0"),
       "the browser's poll: the session, the flow's cookie cleared");
    snprintf(session, sizeof(session), "%.*s",
             v && v->set_cookie ? (int)strcspn(v->set_cookie + 13, ";") : 0,
             v && v->set_cookie ? v->set_cookie + 13 : "");
    jpki_txn_free(t);
    v = check(session, NOW, good, &t);
    ok(v && v->http_status == 200 && v->account
       && !strcmp(v->account, "alice"), "the session opens the gate");
    jpki_txn_free(t);
    v = flow_poll(cookie, 1, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "the flow taken: a second poll");
    ok(v && v->set_cookie && strstr(v->set_cookie, "jpki_flow=;"),
       "... clears the flow's cookie");
    jpki_txn_free(t);

    /* a signer refused once its key signed: the browser is told why */
    v = flow_start(1, &t, ch);
    jpki_txn_free(t);
    snprintf(cookie, sizeof(cookie), "%s", flow_cookie);
    v = flow_sign(ch, ch, "user-ec.pem", "user-ec.key", good, &t);
    FLOW_EXPECT(v, 403, "account_not_mapped", "an unmapped card's signer");
    jpki_txn_free(t);
    v = flow_poll(cookie, 1, &t);
    FLOW_EXPECT(v, 403, "account_not_mapped", "the browser's poll says why");
    jpki_txn_free(t);
    v = flow_poll(cookie, 1, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "said once");
    jpki_txn_free(t);

    /* expired */
    v = flow_start(1, &t, ch);
    jpki_txn_free(t);
    snprintf(cookie, sizeof(cookie), "%s", flow_cookie);
    NOW += 200;
    v = flow_sign(ch, ch, "user1.pem", "user1.key", good, &t);
    FLOW_EXPECT(v, 401, "challenge_expired", "a signer after the expiry");
    jpki_txn_free(t);
    v = flow_poll(cookie, 1, &t);
    FLOW_EXPECT(v, 410, "flow_unknown", "an expired flow's poll");
    jpki_txn_free(t);
    NOW -= 200;

    /* the store holds no certificate part in clear */
    v = flow_start(1, &t, ch);
    jpki_txn_free(t);
    snprintf(cookie, sizeof(cookie), "%s", flow_cookie);
    v = flow_sign(ch, ch, "user1.pem", "user1.key", good, &t);
    {
        char id[JPKI_CHALLENGE_ID_HEX + 1];
        jpki_store_cmd c = {0};
        jpki_store_result r;
        uint8_t raw[16];
        size_t got = 0;

        jpki_challenge_check(ctx, ch, strlen(ch), NOW, req_host,
                             strlen(req_host), id, NULL);
        c.op = JPKI_STORE_GET;
        c.keylen = (size_t)snprintf(c.key, sizeof(c.key),
                                    "jpki:v1:flow:%s", id);
        jpki_shm_exec(shm, &c, (int64_t)NOW * 1000, &r);
        jpki_hex_decode(jpki_txn_cert_id(t), 32, raw, 16, &got);
        ok(r.type == JPKI_STORE_R_VALUE && r.vallen == 136 && r.val[0] == 'd'
           && got == 16 && memmem(r.val, r.vallen, raw, 16) == NULL
           && memmem(r.val, r.vallen, jpki_txn_cert_id(t), 32) == NULL,
           "the signed flow's record: sealed (no cert_id, no reference)");
    }
    jpki_txn_free(t);

    /* without JavaScript: the page with the QR code, refreshed to the
     * poll, then back to the page asked for */
    v = flow_start(0, &t, ch);
    ok(v && v->http_status == 200 && v->content_type
       && strstr(v->body, "<img class=\"qr\" src=\"data:image/svg+xml;base64,")
       && strstr(v->body, "http-equiv=\"refresh\"")
       && strstr(v->body, "/jpki/poll?return_to=/app/") && v->set_cookie,
       "a browser without JavaScript: the page shows the QR code");
    jpki_txn_free(t);
    snprintf(cookie, sizeof(cookie), "%s", flow_cookie);
    v = flow_poll(cookie, 0, &t);
    ok(v && v->http_status == 200 && strstr(v->body, "class=\"qr\""),
       "... and again while it waits");
    jpki_txn_free(t);
    v = flow_sign(ch, ch, "user1.pem", "user1.key", good, &t);
    jpki_txn_free(t);
    v = flow_poll(cookie, 0, &t);
    ok(v && v->http_status == 303 && !strcmp(v->location, "/app/")
       && v->set_cookie, "... then 303 to the page asked for, signed in");
    jpki_txn_free(t);
    v = flow_poll(cookie, 0, &t);
    ok(v && v->http_status == 303 && v->location
       && !strcmp(v->location, "/jpki/login?error=flow_unknown&return_to="
                  "/app/"), "a used flow: back to the page, with why");
    jpki_txn_free(t);

    /* flows started from one address: at most the throttle's addr= a
     * window, then 429 (each writes a record) */
    {
        jpki_policy few = gp;
        int k, refused = 0, first = -1;

        few.throttle_addr = 3;
        few.throttle_window = 3600;
        req_policy = &few;
        req_peer = "192.0.2.77";
        for (k = 0; k < 5; k++) {
            v = flow_start(1, &t, ch);
            if (v && v->http_status == 429 && !strcmp(v->reason,
                                                      "too_many_attempts")) {
                refused++;
                if (first < 0)
                    first = k;
            }
            jpki_txn_free(t);
        }
        ok(refused == 2 && first == 3, "a 4th flow from one address in the "
           "window: 429 (%d refused from the %d-th)", refused, first + 1);
        req_peer = "192.0.2.78";
        v = flow_start(1, &t, ch);
        ok(v && v->http_status == 200, "another address: started");
        jpki_txn_free(t);
        req_peer = NULL;
        req_policy = NULL;
    }

    /* another site's page cannot start a flow in this browser */
    req_sfs = "cross-site";
    req_origin = "https://evil.example";
    v = flow_start(1, &t, ch);
    FLOW_EXPECT(v, 403, "cross_origin", "a start from another site");
    jpki_txn_free(t);
    req_sfs = req_origin = NULL;
}

/* ---- enrollment and the admin API ------------------------------------ */

static const char ADMIN_TOKEN[] = "0123456789abcdef0123456789abcdef-admin";

static const jpki_verdict *admin(const char *method_path, const char *json,
                                 const char *bearer, const char *peer,
                                 jpki_txn **tp)
{
    static char auth[300];
    jpki_txn_request rq = {0};
    const char *path = strchr(method_path, ' ') + 1, *q = strchr(path, '?');

    rq.op = JPKI_OP_ADMIN;
    rq.now = NOW;
    rq.is_post = strncmp(method_path, "POST", 4) == 0;
    rq.wants_json = 1;
    rq.uri = path;
    rq.query = q ? q + 1 : NULL;
    rq.query_len = q ? strlen(q + 1) : 0;
    rq.body = (const uint8_t *)json;
    rq.body_len = json ? strlen(json) : 0;
    rq.content_type = "application/json";
    rq.content_type_len = 16;
    rq.peer = peer ? peer : "127.0.0.1";
    snprintf(auth, sizeof(auth), "Bearer %s", bearer ? bearer : "");
    rq.authorization = bearer ? auth : NULL;
    rq.authorization_len = bearer ? strlen(auth) : 0;
    set_local(&rq);
    return drive(&rq, NULL, tp);
}

#define ADMIN_EXPECT(v_, st_, rs_, name) do {                               \
        is_int((v_) ? (v_)->http_status : -1, st_, "%s: status", name);      \
        is_str((v_) ? (v_)->reason : NULL, rs_, "%s: reason", name);         \
    } while (0)

/* The enrollment token out of a refused login's answer ("" none). */
static const char *enroll_token_of(const jpki_verdict *v)
{
    static char tok[JPKI_ENROLL_LEN + 1];
    const char *p = v && v->body ? strstr(v->body, "jpki_enroll=") : NULL;

    snprintf(tok, sizeof(tok), "%.*s", p ? JPKI_ENROLL_LEN : 0,
             p ? p + 12 : "");
    return tok;
}

static void test_enroll_admin(io_env *good)
{
    jpki_policy pol = gp;
    const jpki_verdict *v;
    jpki_txn *t;
    jpki_enroll en;
    char tok[JPKI_ENROLL_LEN + 1], forged[JPKI_ENROLL_LEN + 1];
    char json[512], cookie[1024], ec_id[JPKI_CERT_ID_HEX_LEN + 1];
    unsigned int mdlen = 0;

    snprintf(pol.enroll_page, sizeof(pol.enroll_page), "/enroll");
    snprintf(pol.admin_allow, sizeof(pol.admin_allow), "127.0.0.0/8 ::1");
    EVP_Digest(ADMIN_TOKEN, strlen(ADMIN_TOKEN), pol.admin_token, &mdlen,
               EVP_sha256(), NULL);
    pol.admin_token_set = 1;
    req_policy = &pol;
    snprintf(ec_id, sizeof(ec_id), "%s", cert_id_of("user-ec.pem"));

    /* a card no account has: the login says where to enroll */
    v = login("user-ec.pem", "user-ec.key", NULL, good, &t, NULL);
    ok(v && v->http_status == 403 && !strcmp(v->reason, "account_not_mapped")
       && strstr(v->body, "\"enroll\":\"/enroll?jpki_enroll=e1."),
       "an unmapped card: 403 with the enrollment page and its token");
    snprintf(tok, sizeof(tok), "%s", enroll_token_of(v));
    ok(strlen(tok) == JPKI_ENROLL_LEN
       && jpki_enroll_open(ctx, tok, strlen(tok), NOW, &en) == JPKI_OK
       && !strcmp(en.cert_id, ec_id) && en.expires == NOW + JPKI_ENROLL_TTL,
       "the token names the certificate by cert_id, for 10 minutes");
    ok(v && !strstr(v->body, "serial"), "... and no serial");
    jpki_txn_free(t);
    v = login("user-ec.pem", "user2.key", NULL, good, &t, NULL);
    ok(v && v->http_status == 401 && !strstr(v->body, "jpki_enroll"),
       "no token for a login whose signature fails");
    jpki_txn_free(t);
    {
        jpki_store_cmd del = {0};
        jpki_store_result dr;

        del.op = JPKI_STORE_DEL;
        del.keylen = (size_t)snprintf(del.key, sizeof(del.key),
                                      "jpki:v1:map:%s",
                                      cert_id_of("rev-cACompromise.pem"));
        jpki_shm_exec(shm, &del, (int64_t)NOW * 1000, &dr);
    }
    v = login("rev-cACompromise.pem", "rev-cACompromise.key", NULL, good, &t,
              NULL);
    ok(v && v->http_status == 403 && !strcmp(v->reason, "cert_revoked")
       && !strstr(v->body, "jpki_enroll"),
       "a revoked card no account has: cert_revoked, no token (its "
       "revocation is checked before it may enroll)");
    jpki_txn_free(t);

    /* who may call the API */
    snprintf(json, sizeof(json), "{\"token\":\"%s\",\"account\":\"carol\"}",
             tok);
    v = admin("POST /admin/bind", json, NULL, NULL, &t);
    ADMIN_EXPECT(v, 401, "unauthenticated", "bind without the token");
    jpki_txn_free(t);
    v = admin("POST /admin/bind", json, "0123456789abcdef0123456789abcdef-x",
              NULL, &t);
    ADMIN_EXPECT(v, 401, "unauthenticated", "bind with a wrong token");
    jpki_txn_free(t);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, "192.0.2.1", &t);
    ADMIN_EXPECT(v, 403, "forbidden", "bind from outside the allow-list");
    jpki_txn_free(t);
    v = admin("GET /admin/bind", NULL, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 405, "method_not_allowed", "bind with GET");
    jpki_txn_free(t);

    /* tokens: forged, expired, redeemed, replayed */
    snprintf(forged, sizeof(forged), "%s", tok);
    forged[40] = forged[40] == 'A' ? 'B' : 'A';
    snprintf(json, sizeof(json), "{\"token\":\"%s\",\"account\":\"carol\"}",
             forged);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 403, "enroll_token_invalid", "a forged token");
    jpki_txn_free(t);
    NOW += JPKI_ENROLL_TTL + 1;
    snprintf(json, sizeof(json), "{\"token\":\"%s\",\"account\":\"carol\"}",
             tok);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 410, "enroll_token_expired", "an expired token");
    jpki_txn_free(t);
    NOW -= JPKI_ENROLL_TTL + 1;
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ok(v && v->http_status == 200 && strstr(v->body, "\"status\":\"bound\"")
       && v->audit && strstr(v->audit, "\"action\":\"bind\"")
       && !strstr(v->audit, tok),
       "the token redeemed: bound, audited (without the token)");

    jpki_txn_free(t);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 409, "enroll_token_used", "the token again");
    jpki_txn_free(t);
    EXPECT_LOGIN("user-ec.pem", "user-ec.key", "carol", good, 200, "ok",
                 "the card now signs in as carol");

    /* one account a certificate; several certificates an account */
    snprintf(json, sizeof(json), "{\"cert_id\":\"%s\",\"account\":\"dave\"}",
             ec_id);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 409, "cert_bound_elsewhere",
                 "the same certificate for a second account");
    jpki_txn_free(t);
    map("user1.pem", "alice");
    snprintf(json, sizeof(json), "{\"cert_id\":\"%s\",\"account\":\"carol\"}",
             cert_id_of("user1.pem"));
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ok(v && v->http_status == 409, "a certificate of another account "
       "(alice, the mapping of jpkictl) is not taken over");

    jpki_txn_free(t);
    snprintf(json, sizeof(json), "{\"cert_id\":\"%032d\",\"account\":\"carol\"}",
             42);
    v = admin("POST /admin/bind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 200, "ok", "a second certificate (by cert_id) for carol");
    jpki_txn_free(t);
    v = admin("GET /admin/certs?account=carol", NULL, ADMIN_TOKEN, NULL, &t);
    ok(v && v->http_status == 200 && strstr(v->body, ec_id)
       && strstr(v->body, "\"issuer\":\"card\"")
       && strstr(v->body, "\"revocation\":\"good\"")
       && strstr(v->body, "\"cert_id\":\"00000000000000000000000000000042\""),
       "the account's two certificates, with issuer and revocation");
    {
        char want[64];
        snprintf(want, sizeof(want), "\"last_login\":%lld", (long long)NOW);
        ok(v && strstr(v->body, want), "... and the last login");
    }
    jpki_txn_free(t);

    /* log out every session of the account (the gated requests read the
     * markers in the node's table: the embedded store) */
    req_local = shm;
    v = login("user-ec.pem", "user-ec.key", NULL, good, &t, NULL);
    snprintf(cookie, sizeof(cookie), "%s", last_cookie);
    jpki_txn_free(t);
    NOW += 2;
    v = check(cookie, NOW, good, &t);
    ok(v && v->http_status == 200, "carol's session opens the gate");
    jpki_txn_free(t);
    v = admin("POST /admin/logout", "{\"account\":\"carol\"}", ADMIN_TOKEN,
              NULL, &t);
    ADMIN_EXPECT(v, 200, "ok", "the account logged out");
    jpki_txn_free(t);
    v = check(cookie, NOW, good, &t);
    ok(v && v->http_status == 401, "... its session is refused (%s)",
       v ? v->reason : "-");
    jpki_txn_free(t);
    NOW -= 2;
    req_local = NULL;

    /* unbind */
    snprintf(json, sizeof(json), "{\"cert_id\":\"%s\"}", ec_id);
    v = admin("POST /admin/unbind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 200, "ok", "unbind");
    jpki_txn_free(t);
    v = admin("POST /admin/unbind", json, ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 404, "not_bound", "unbind again");
    jpki_txn_free(t);
    v = admin("GET /admin/certs?account=carol", NULL, ADMIN_TOKEN, NULL, &t);
    ok(v && v->body && !strstr(v->body, ec_id)
       && strstr(v->body, "00000000000000000000000000000042"),
       "the list without it");
    jpki_txn_free(t);
    v = login("user-ec.pem", "user-ec.key", NULL, good, &t, NULL);
    ok(v && v->http_status == 403, "the card no longer signs in");
    jpki_txn_free(t);
    v = admin("POST /admin/nothing", "{}", ADMIN_TOKEN, NULL, &t);
    ADMIN_EXPECT(v, 404, "not_found", "an unknown route");
    jpki_txn_free(t);
    req_policy = NULL;
}

int main(void)
{
    io_env good = {"ocsp", NULL, 0, 0};
    io_env down = {NULL, NULL, 0, 0};
    io_env bad_signer = {"ocsp-noeku", NULL, 0, 0};
    io_env crl_only = {NULL, "ca2.crl", 0, 0};
    io_env stale_crl = {NULL, "ca2-stale.crl", 0, 0};
    const char *revs[] = {"rev-unspecified", "rev-keyCompromise",
        "rev-cACompromise", "rev-affiliationChanged", "rev-superseded",
        "rev-cessationOfOperation"};
    const jpki_verdict *v;
    jpki_txn *t;
    char cookie[1024], replay_ch[JPKI_CHALLENGE_LEN + 1];
    size_t i;

    NOW = time(NULL);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/jpki-txn-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    shm_mem = calloc(1, 1 << 20);
    shm_h = calloc(1, jpki_shm_handle_size());
    jpki_shm_init(shm_mem, 1 << 20, 0);
    shm = jpki_shm_attach(shm_h, shm_mem, 1 << 20, NULL);
    ok(shm != NULL, "embedded store attached");

    ctx = make_ctx(0, "ocsp", "http://127.0.0.1:1/");
    map("user1.pem", "alice");
    map("user-old.pem", "olduser");

    /* success: the account comes back and a cookie is set */
    v = login("user1.pem", "user1.key", NULL, &good, &t, NULL);
    is_int(v->http_status, 200, "login ok");
    is_str(v->account, "alice", "account from the store mapping");
    ok(v->set_cookie && strstr(v->set_cookie, "HttpOnly")
       && strstr(v->set_cookie, "Secure"), "cookie is Secure and HttpOnly");
    ok(v->audit && strstr(v->audit, "\"result\":\"ok\""), "audit record");
    ok(v->audit && !strstr(v->audit, "serial"), "audit has no serial");
    is_int(good.ocsp_calls, 1, "one OCSP query");
    ok(!ocsp_keyless && strcmp(ocsp_key, jpki_txn_cert_id(t)) == 0,
       "its key (concurrent logins share the query) is the cert_id");
    snprintf(cookie, sizeof(cookie), "%s", last_cookie);
    {
        /* an ended transaction's memory serves the next one (txn.c keeps
         * them): nothing of the login is carried into it */
        jpki_txn *ended = t, *next = NULL;
        jpki_txn_free(t);
        v = check("", NOW, &good, &next);
        ok(next == ended, "the next transaction reuses the ended one");
        ok(v != NULL && v->http_status == 401 && v->account == NULL
           && v->set_cookie == NULL && jpki_txn_cert_id(next) == NULL,
           "... and starts clean: 401, no account, cookie or certificate");
        jpki_txn_free(next);
    }

    /* second login: revocation answer comes from the store cache */
    EXPECT_LOGIN("user1.pem", "user1.key", "alice", &good, 200, "ok",
                 "repeat login with matching account");
    is_int(good.ocsp_calls, 1, "second login used the cached OCSP answer");
    EXPECT_LOGIN("user1.pem", "user1.key", "mallory", &good, 403,
                 "account_mismatch", "claimed account differs");
    EXPECT_LOGIN("user1.pem", "user2.key", NULL, &good, 401,
                 "signature_invalid", "signature by another key");
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, &good, 403,
                 "account_not_mapped", "certificate not mapped");
    EXPECT_LOGIN("user-expired.pem", "user-expired.key", NULL, &good, 401,
                 "cert_expired", "expired certificate");
    EXPECT_LOGIN("user-notyet.pem", "user-notyet.key", NULL, &good, 401,
                 "cert_not_yet_valid", "not yet valid certificate");
    EXPECT_LOGIN("user-foreign.pem", "user-foreign.key", NULL, &good, 401,
                 "cert_unknown_issuer", "unknown CA with the J-LIS name");
    EXPECT_LOGIN("user-old.pem", "user-old.key", NULL, &down, 503,
                 "revocation_unavailable", "responder down: fail closed");
    for (i = 0; i < 6; i++) {
        char name[96];
        snprintf(name, sizeof(name), "%s via OCSP", revs[i]);
        map(strcat(strcpy(name, revs[i]), ".pem"), "x");
        snprintf(name, sizeof(name), "%s.key", revs[i]);
        {
            char pem[96], label[96];
            snprintf(pem, sizeof(pem), "%s.pem", revs[i]);
            snprintf(label, sizeof(label), "%s via OCSP", revs[i]);
            EXPECT_LOGIN(pem, name, NULL, &good, 403, "cert_revoked", label);
        }
    }
    map("rev-certificateHold.pem", "held");
    EXPECT_LOGIN("rev-certificateHold.pem", "rev-certificateHold.key", NULL,
                 &good, 403, "cert_on_hold", "hold via OCSP");
    map("user2.pem", "bob");
    EXPECT_LOGIN("user2.pem", "user2.key", NULL, &bad_signer, 503,
                 "revocation_unavailable", "OCSP signer without EKU refused");

    /* replay: the same signed challenge twice */
    {
        jpki_challenge_issue(ctx, NOW, req_host, strlen(req_host), replay_ch,
                             NULL);
        v = login("user1.pem", "user1.key", NULL, &good, &t, replay_ch);
        is_int(v->http_status, 200, "first use of a challenge");
        jpki_txn_free(t);
        v = login("user1.pem", "user1.key", NULL, &good, &t, replay_ch);
        is_str(v->reason, "challenge_replayed", "replayed challenge refused");
        jpki_txn_free(t);
        replay_ch[10] ^= 1;
        v = login("user1.pem", "user1.key", NULL, &good, &t, replay_ch);
        ok(v->http_status == 400 || v->http_status == 401,
           "tampered challenge refused (%d %s)", v->http_status, v->reason);
        jpki_txn_free(t);
    }

    /* the challenge op binds the challenge to its Host; a login to another
     * Host is refused (relay between sites) */
    {
        static const struct { const char *issue, *login; int status;
                              const char *reason; } hc[] = {
            {"other.example", "gate.example:8443", 400, "challenge_host"},
            {"gate.example:8443", "other.example", 400, "challenge_host"},
            {"gate.example", "GATE.EXAMPLE.:8443", 200, "ok"},
            {"gate.example:8443", "gate.example:8443", 200, "ok"},
        };
        jpki_txn_request rq = {0};
        char hch[JPKI_CHALLENGE_LEN + 1];
        const char *saved = req_host, *p;
        size_t k;

        map("user1.pem", "alice");
        for (k = 0; k < sizeof(hc) / sizeof(hc[0]); k++) {
            memset(&rq, 0, sizeof(rq));
            rq.op = JPKI_OP_CHALLENGE;
            rq.now = NOW;
            rq.wants_json = 1;
            req_host = hc[k].issue;
            set_from(&rq);
            v = drive(&rq, &good, &t);
            p = v && v->body ? strstr(v->body, "\"challenge\":\"") : NULL;
            ok(v && v->http_status == 200 && p != NULL,
               "challenge op for Host %s", hc[k].issue ? hc[k].issue : "-");
            snprintf(hch, sizeof(hch), "%s", p ? p + 13 : "");
            jpki_txn_free(t);
            req_host = hc[k].login;
            v = login("user1.pem", "user1.key", NULL, &good, &t, hch);
            is_int(v ? v->http_status : -1, hc[k].status,
                   "issued for %s, login to %s: status",
                   hc[k].issue ? hc[k].issue : "-", hc[k].login);
            is_str(v ? v->reason : NULL, hc[k].reason, "... reason");
            jpki_txn_free(t);
        }
        /* none for a request without a valid Host: 400 bad_host */
        {
            static char big[301];
            const char *bad[] = {NULL, "", big, "gate example"};

            memset(big, 'a', 300);
            for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                memset(&rq, 0, sizeof(rq));
                rq.op = JPKI_OP_CHALLENGE;
                rq.now = NOW;
                rq.wants_json = 1;
                req_host = bad[k];
                set_from(&rq);
                v = drive(&rq, &good, &t);
                is_int(v ? v->http_status : -1, 400,
                       "challenge op for Host %s: 400",
                       bad[k] == NULL ? "(none)" : bad[k] == big
                       ? "of 300 bytes" : bad[k]);
                is_str(v ? v->reason : NULL, "bad_host", "... bad_host");
                ok(v && v->body && strstr(v->body, "\"error\":\"bad_host\"")
                   && strstr(v->body, "\"challenge\"") == NULL,
                   "... the refusal's JSON, no challenge");
                jpki_txn_free(t);
            }
        }
        req_host = saved;
    }

    /* gated request with the session cookie */
    v = check(cookie, NOW + 5, &good, &t);
    is_int(v->http_status, 200, "gated request passes");
    is_str(v->account, "alice", "gated request carries the account");
    jpki_txn_free(t);
    {
        char bad[1024];
        snprintf(bad, sizeof(bad), "%s", cookie);
        bad[strlen(bad) - 3] ^= 1;
        v = check(bad, NOW + 5, &good, &t);
        is_int(v->http_status, 401, "tampered cookie refused");
        jpki_txn_free(t);
    }
    {
        /* a location with a shorter session lifetime (an admin area):
         * sessions older than it sign in again there; the cookie stays */
        jpki_policy loc = *jpki_ctx_get_policy(ctx);
        jpki_txn_request rq = {0};

        loc.session_lifetime = 300;
        loc.session_idle = 0;
        rq.op = JPKI_OP_CHECK;
        rq.wants_json = 1;
        rq.cookie = cookie;
        rq.cookie_len = strlen(cookie);
        rq.policy = &loc;
        rq.now = NOW + 299;
        v = drive(&rq, &good, &t);
        is_int(v->http_status, 200, "location lifetime 300 s: at 299 s passes");
        jpki_txn_free(t);
        rq.now = NOW + 300;
        v = drive(&rq, &good, &t);
        is_int(v->http_status, 401, "location lifetime 300 s: at 300 s 401");
        is_str(v->reason, "session_expired", "... session_expired");
        ok(v->set_cookie == NULL, "... the cookie is not cleared (other "
           "locations keep the session)");
        jpki_txn_free(t);
        v = check(cookie, NOW + 300, &good, &t);
        is_int(v->http_status, 200, "the site's lifetime (8 h): still valid");
        jpki_txn_free(t);
    }
    v = check(cookie, NOW + 28800 + 5, &good, &t);
    is_str(v->reason, "session_expired", "expired session refused");
    jpki_txn_free(t);
    v = check(cookie, NOW + 700, &good, &t);
    is_str(v->reason, "session_idle_timeout", "idle session refused");
    jpki_txn_free(t);

    /* revocation re-check after the interval goes through OCSP again when
     * the cache entry has expired: drop the cached entry first */
    {
        uint64_t n = jpki_shm_delete_prefix(shm, "jpki:v1:rev:", NOW * 1000);
        int before = good.ocsp_calls;
        ok(n >= 1, "cache entries dropped (%llu)", (unsigned long long)n);
        v = check(cookie, NOW + 120, &good, &t);
        is_int(v->http_status, 200, "re-check passes");
        is_int(good.ocsp_calls, before + 1, "re-check asked OCSP");
        ok(v->set_cookie != NULL, "re-check re-seals the cookie");
        jpki_txn_free(t);
        jpki_shm_delete_prefix(shm, "jpki:v1:rev:", NOW * 1000);
        v = check(cookie, NOW + 120, &down, &t);
        is_int(v->http_status, 503, "re-check with responder down fails "
               "closed");
        jpki_txn_free(t);
    }

    /* where a login comes from: the site's own pages, or not a browser */
    {
        static const struct {
            const char *sfs, *origin, *trusted;
            int status;
            const char *name;
        } o[] = {
            {"same-origin", NULL, "", 200, "Sec-Fetch-Site same-origin"},
            {"none", NULL, "", 200, "Sec-Fetch-Site none (typed, bookmark)"},
            {"SAME-ORIGIN", "https://gate.example:8443", "", 200,
             "header values compare without case"},
            {"cross-site", "https://evil.example", "", 403,
             "Sec-Fetch-Site cross-site"},
            {"same-site", "https://other.gate.example", "", 403,
             "Sec-Fetch-Site same-site (a sibling host)"},
            {"cross-site", "https://gate.example:8443", "", 403,
             "cross-site even with our Origin (Sec-Fetch-Site wins)"},
            {"same-origin-x", NULL, "", 403, "an unknown Sec-Fetch-Site"},
            {NULL, "https://gate.example:8443", "", 200,
             "no Sec-Fetch-Site, Origin of the gate"},
            {NULL, "https://GATE.example:8443", "", 200,
             "Origin host without case"},
            {NULL, "https://evil.example", "", 403, "no Sec-Fetch-Site, "
             "Origin of another site"},
            {NULL, "https://gate.example", "", 403, "Origin on another port"},
            {NULL, "null", "", 403, "Origin null (sandboxed page)"},
            {NULL, "https://gate.example:8443/x", "", 403,
             "Origin with a path"},
            {NULL, NULL, "", 200, "neither header (an API client)"},
            {"cross-site", "https://login.example", "https://a.example "
             "https://login.example", 200, "a trusted origin"},
            {"cross-site", "https://login.example:444", "https://a.example "
             "https://login.example", 403, "trusted origins match whole"},
            {NULL, "https://a.example", "https://a.example", 200,
             "a trusted origin without Sec-Fetch-Site"},
        };
        jpki_policy loc = *jpki_ctx_get_policy(ctx);
        char err[256];
        size_t k;

        for (k = 0; k < sizeof(o) / sizeof(o[0]); k++) {
            snprintf(loc.trusted_origins, sizeof(loc.trusted_origins), "%s",
                     o[k].trusted);
            ok(jpki_policy_check(&loc, err, sizeof(err)) == JPKI_OK,
               "%s: the policy checks", o[k].name);
            req_policy = &loc;
            req_sfs = o[k].sfs;
            req_origin = o[k].origin;
            EXPECT_LOGIN("user1.pem", "user1.key", NULL, &good, o[k].status,
                         o[k].status == 200 ? "ok" : "cross_origin",
                         o[k].name);
        }
        req_policy = NULL;
        req_sfs = req_origin = NULL;

        static const char *const bad[] = {
            "evil.example", "https://", "https://a.example/", "ftp://a.example",
            "https://a.example:123456", "https://a_b.example",
            "http://1 http://2 http://3 http://4 http://5 http://6 http://7 "
            "http://8 http://9"};
        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            snprintf(loc.trusted_origins, sizeof(loc.trusted_origins), "%s",
                     bad[k]);
            ok(jpki_policy_check(&loc, err, sizeof(err)) == JPKI_ERR_INVALID
               && strstr(err, "trusted origins") != NULL,
               "trusted origins \"%s\" refused", bad[k]);
        }
    }

    /* logout: only from the site's own pages too */
    {
        jpki_txn_request rq;
        logout_request(&rq, cookie, NOW + 10);
        rq.sec_fetch_site = "cross-site";
        rq.sec_fetch_site_len = strlen(rq.sec_fetch_site);
        v = drive(&rq, &good, &t);
        is_int(v->http_status, 403, "cross-site logout refused");
        is_str(v->reason, "cross_origin", "... cross_origin");
        ok(v->set_cookie == NULL, "... the cookie is not cleared");
        jpki_txn_free(t);
        v = check(cookie, NOW + 120, &good, &t);
        is_int(v->http_status, 200, "... and the session lives on");
        jpki_txn_free(t);
        rq.sec_fetch_site = "same-origin";
        rq.sec_fetch_site_len = strlen(rq.sec_fetch_site);
        v = drive(&rq, &good, &t);
        is_int(v->http_status, 200, "logout");
        ok(v->set_cookie && strstr(v->set_cookie, "Max-Age=0"),
           "logout clears the cookie");
        jpki_txn_free(t);
        v = check(cookie, NOW + 120, &good, &t);
        is_str(v->reason, "session_logged_out",
               "logged-out cookie refused at the next re-check");
        jpki_txn_free(t);
    }

    /* a per-location policy overrides the site's failure policy */
    {
        jpki_policy loc = *jpki_ctx_get_policy(ctx);
        jpki_txn_request rq = {0};
        loc.fail_open = 1;
        req_policy = &loc;
        map("user-old.pem", "olduser");
        jpki_shm_delete_prefix(shm, "jpki:v1:rev:", NOW * 1000);
        EXPECT_LOGIN("user-old.pem", "user-old.key", NULL, &down, 200, "ok",
                     "location policy fail-open passes with responder down");
        req_policy = NULL;
        EXPECT_LOGIN("user-old.pem", "user-old.key", NULL, &down, 503,
                     "revocation_unavailable", "site policy still closed");
        loc.session_lifetime = 9;
        rq.op = JPKI_OP_CHALLENGE;
        rq.policy = &loc;
        ok(jpki_txn_new(ctx, &rq, &t) == JPKI_ERR_INVALID,
           "an out-of-range location policy is refused");
    }

    /* CRL policy, stale CRL, fail open */
    jpki_ctx_free(ctx);
    ctx = make_ctx(0, "crl", NULL);
    map("user1.pem", "alice");
    map("rev-keyCompromise.pem", "x");
    map("rev-certificateHold.pem", "x");
    v = login("user1.pem", "user1.key", NULL, &crl_only, &t, NULL);
    is_int(v ? v->http_status : -1, 200, "login with CRL");
    ok(v && v->audit && strstr(v->audit, "\"revocation\":\"crl\","
                                         "\"revocation_age\":")
       && strstr(v->audit, "\"revocation_age\":null") == NULL,
       "... its audit line: the CRL's age");
    jpki_txn_free(t);
    EXPECT_LOGIN("rev-keyCompromise.pem", "rev-keyCompromise.key", NULL,
                 &crl_only, 403, "cert_revoked", "revoked via CRL");
    EXPECT_LOGIN("rev-certificateHold.pem", "rev-certificateHold.key", NULL,
                 &crl_only, 403, "cert_on_hold", "hold via CRL");
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, &stale_crl, 503,
                 "revocation_unavailable", "stale CRL fails closed");
    jpki_ctx_free(ctx);
    ctx = make_ctx(1, "crl", NULL);
    map("user1.pem", "alice");
    req_rid = "ZXq@Wn8AAQEAAH-rTkoAAAAA";          /* a UNIQUE_ID */
    v = login("user1.pem", "user1.key", NULL, &stale_crl, &t, NULL);
    req_rid = NULL;
    is_int(v->http_status, 200, "stale CRL with fail-open passes");
    ok(v->soft_pass && v->audit && strstr(v->audit, "\"soft_pass\":true"),
       "soft pass is audited");
    ok(v->audit && strstr(v->audit, "\"request_id\":\"ZXq@Wn8AAQEAAH-rTkoAAAAA\"")
       && strstr(v->audit, "\"revocation\":\"soft\",\"revocation_age\":null"),
       "... with the adapter's request id, no revocation age");
    {
        char k[128];
        snprintf(k, sizeof(k), "jpki:v1:soft:%s:%lld", v->cert_id,
                 (long long)(NOW - NOW % 86400));
        ok(strstr(kv(shm, NULL, "%s", k), "\"rid\":\"ZXq@Wn8AAQEAAH-rTkoAAAAA\"}")
           != NULL, "the soft-pass record names it: %s",
           kv(shm, NULL, "%s", k));
    }
    jpki_txn_free(t);
    /* the id by a function, asked only when a line or a record needs it
     * (nginx's $request_id draws random bytes when read) */
    req_rid_fn = "Yfn@id.1";
    rid_fn_calls = 0;
    v = login("user1.pem", "user1.key", NULL, &stale_crl, &t, NULL);
    ok(v && v->audit && strstr(v->audit, "\"request_id\":\"Yfn@id.1\"")
       && rid_fn_calls == 1, "the id asked of the adapter's function once");
    jpki_txn_free(t);
    v = login("user1.pem", "user1.key", NULL, &crl_only, &t, NULL);
    {
        char ck[1024];
        jpki_txn *t2;

        snprintf(ck, sizeof(ck), "%s", last_cookie);
        jpki_txn_free(t);
        rid_fn_calls = 0;
        v = check(ck, NOW + 1, &crl_only, &t2);
        ok(v && v->http_status == 200 && v->audit == NULL
           && rid_fn_calls == 0, "a gated pass: no line, the id never asked");
        jpki_txn_free(t2);
    }
    req_rid_fn = NULL;
    req_rid = "bad id\"";
    v = login("user1.pem", "user1.key", NULL, &stale_crl, &t, NULL);
    req_rid = NULL;
    {
        const char *r = v && v->audit ? strstr(v->audit, "\"request_id\":\"")
                                      : NULL;
        ok(r != NULL && strspn(r + 14, "0123456789abcdef") == 32
           && r[46] == '"', "a malformed request id: one the core makes");
    }
    jpki_txn_free(t);
    {
        /* the session is re-checked at every request while it is flagged;
         * each re-check passing under fail-open again rewrites the day's
         * record instead of adding one (a key per request filled the
         * store in an outage) */
        jpki_store_cmd g = {0};
        jpki_store_result r;
        char soft_cookie[1024], want[64], id[JPKI_CERT_ID_HEX_LEN + 1] = "";
        char rid[80] = "";
        int64_t at = NOW, passes = 0, days = 1;

        snprintf(soft_cookie, sizeof(soft_cookie), "%s", last_cookie);
        for (i = 1; i <= 5; i++) {
            at = NOW + 20 * (int64_t)i;
            days += at / 86400 != (at - 20) / 86400;
            v = check(soft_cookie, at, &stale_crl, &t);
            if (v && (v->http_status != 200 || !v->soft_pass))
                printf("# re-check %d: %d %s\n", (int)i, v->http_status,
                       v->reason ? v->reason : "");
            passes += v != NULL && v->http_status == 200 && v->soft_pass;
            if (v && v->cert_id)
                snprintf(id, sizeof(id), "%s", v->cert_id);
            if (v && v->audit && strstr(v->audit, "\"request_id\":\""))
                snprintf(rid, sizeof(rid), "\"rid\":\"%.32s\"",
                         strstr(v->audit, "\"request_id\":\"") + 14);
            if (v && v->set_cookie) {
                const char *eq = strchr(v->set_cookie, '=');
                const char *sc = strchr(v->set_cookie, ';');
                snprintf(soft_cookie, sizeof(soft_cookie), "%.*s",
                         (int)(sc - eq - 1), eq + 1);
            }
            jpki_txn_free(t);
        }
        is_int(passes, 5, "five re-checks of the soft session pass (soft)");
        g.op = JPKI_STORE_GET;
        g.keylen = (size_t)snprintf(g.key, sizeof(g.key),
                                    "jpki:v1:soft:%s:%lld", id,
                                    (long long)(at - at % 86400));
        jpki_shm_exec(shm, &g, at * 1000, &r);
        snprintf(want, sizeof(want), "{\"ts\":%lld,", (long long)at);
        ok(r.type == JPKI_STORE_R_VALUE && r.vallen > strlen(want)
           && memcmp(r.val, want, strlen(want)) == 0
           && memmem(r.val, r.vallen, "\"event\":\"check\"", 15) != NULL,
           "the day's record holds the latest re-check");
        ok(rid[0] && memmem(r.val, r.vallen, rid, strlen(rid)) != NULL,
           "... and its audit line's request id (%s)", rid);
        g.key[g.keylen - 10] = '\0';                 /* soft:<cert_id>: */
        is_int((int64_t)jpki_shm_delete_prefix(shm, g.key, at * 1000),
               days, "one soft record per certificate and day");
    }
    jpki_ctx_free(ctx);

    /* OCSP then CRL */
    ctx = make_ctx(0, "ocsp,crl", "http://127.0.0.1:1/");
    map("user1.pem", "alice");
    {
        io_env fb = {NULL, "ca2.crl", 0, 0};
        EXPECT_LOGIN("user1.pem", "user1.key", NULL, &fb, 200, "ok",
                     "OCSP down, CRL fallback");
        is_int(fb.crl_calls, 1, "fallback used the CRL");
    }
    jpki_ctx_free(ctx);

    /* CRL then OCSP: the sources in the policy's order */
    ctx = make_ctx(0, "crl,ocsp", "http://127.0.0.1:1/");
    map("user1.pem", "alice");
    {
        io_env cf = {NULL, "ca2.crl", 0, 0};
        EXPECT_LOGIN("user1.pem", "user1.key", NULL, &cf, 200, "ok",
                     "crl,ocsp: the CRL answers");
        ok(cf.crl_calls == 1 && cf.ocsp_calls == 0,
           "crl,ocsp: the CRL first, OCSP not asked");
    }
    {
        io_env nocrl = {NULL, NULL, 0, 0};
        EXPECT_LOGIN("user1.pem", "user1.key", NULL, &nocrl, 503,
                     "revocation_unavailable",
                     "crl,ocsp: no CRL, OCSP down: unavailable");
        ok(nocrl.crl_calls == 1 && nocrl.ocsp_calls == 1,
           "crl,ocsp: no CRL, then OCSP asked");
    }
    jpki_ctx_free(ctx);

    /* with OCSP nonces, every query is its own: no key to share it by */
    ocsp_nonce = 1;
    ctx = make_ctx(0, "ocsp", "http://127.0.0.1:1/");
    ocsp_nonce = 0;
    {
        io_env nonce = {"ocsp", NULL, 0, 0};
        EXPECT_LOGIN("user2.pem", "user2.key", NULL, &nonce, 200, "ok",
                     "a login with an OCSP nonce");
        ok(nonce.ocsp_calls == 1 && ocsp_keyless,
           "with nonces the query has no key (it is not shared)");
    }
    jpki_ctx_free(ctx);

    /* the guard: throttle, logout markers, a full store, audit lines */
    ctx = make_ctx(0, "ocsp", "http://127.0.0.1:1/");
    test_guard(&good);
    jpki_ctx_free(ctx);

    ctx = make_ctx(0, "ocsp", "http://127.0.0.1:1/");
    map("user1.pem", "alice");
    test_tls_login(&good);
    test_health(&good);
    test_metrics_txn(&good);
    test_page_txn(&good);
    test_device_flow(&good);
    test_enroll_admin(&good);
    jpki_ctx_free(ctx);

    {   /* this run's directory only: the sanitized build runs beside */
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            diag("could not remove this run's directory");
    }
    free(shm_mem);
    free(shm_h);
    return done_testing();
}
