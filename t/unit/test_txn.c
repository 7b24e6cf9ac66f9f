/* test_txn.c - the login transaction end to end against the test PKI, with
 * the embedded store as the store and OCSP answers made by `openssl ocsp`. */
#include "jpki.h"
#include "tap.h"
#include "pki.h"

#include <stdint.h>
#include <unistd.h>
#include <sys/stat.h>

static jpki_ctx *ctx;
static void *shm_mem, *shm_h;
static jpki_shm *shm;
static time_t NOW;
static char tmpdir[256];

static jpki_ctx *make_ctx(int fail_open, jpki_rev_policy rp, const char *url)
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
    p->rev_policy = rp;
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

static void exec_store(jpki_txn *t)
{
    size_t n, i;
    const jpki_store_cmd *c = jpki_txn_store_cmds(t, &n);
    jpki_store_result r[JPKI_STORE_BATCH_MAX];
    for (i = 0; i < n; i++)
        jpki_shm_exec(shm, &c[i], (int64_t)NOW * 1000, &r[i]);
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
    if (env->ocsp_signer == NULL) {
        jpki_txn_feed_ocsp(t, 0, NULL, 0);
        return;
    }
    snprintf(path, sizeof(path), "%s/req.der", tmpdir);
    f = fopen(path, "wb");
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
static const jpki_policy *req_policy;   /* per-location policy, or NULL */
/* where the browser says a login comes from (NULL: header absent) */
static const char *req_sfs, *req_origin, *req_host = "gate.example:8443";

static void set_from(jpki_txn_request *rq)
{
    rq->sec_fetch_site = req_sfs;
    rq->sec_fetch_site_len = req_sfs ? strlen(req_sfs) : 0;
    rq->origin = req_origin;
    rq->origin_len = req_origin ? strlen(req_origin) : 0;
    rq->host = req_host;
    rq->host_len = req_host ? strlen(req_host) : 0;
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

static void map(const char *cert, const char *account)
{
    jpki_cert *c = NULL;
    uint8_t *der;
    size_t len;
    jpki_store_cmd cmd = {0};
    jpki_store_result r;

    jpki_load_file(tap_path(cert), 1 << 16, &der, &len);
    if (jpki_cert_check(ctx, der, len, NOW, &c, NULL, 0) != JPKI_OK) {
        printf("# map: %s does not check\n", cert);
        free(der);
        return;
    }
    free(der);
    cmd.op = JPKI_STORE_SET;
    cmd.keylen = (size_t)snprintf(cmd.key, sizeof(cmd.key), "jpki:v1:map:%s",
                                  jpki_cert_id_hex(c));
    cmd.vallen = strlen(account);
    memcpy(cmd.val, account, cmd.vallen);
    jpki_shm_exec(shm, &cmd, (int64_t)NOW * 1000, &r);
    jpki_cert_free(c);
}

static const jpki_verdict *check(const char *cookie, int64_t at, io_env *env,
                                 jpki_txn **tp)
{
    jpki_txn_request rq = {0};
    rq.op = JPKI_OP_CHECK;
    rq.now = at;
    rq.wants_json = 1;
    rq.cookie = cookie;
    rq.cookie_len = strlen(cookie);
    return drive(&rq, env, tp);
}

#define EXPECT_LOGIN(cert, key, acct, env, st_, rs_, name) do {              \
        jpki_txn *t_ = NULL;                                                 \
        const jpki_verdict *v_ = login(cert, key, acct, env, &t_, NULL);     \
        is_int(v_ ? v_->http_status : -1, st_, "%s: status", name);          \
        is_str(v_ ? v_->reason : NULL, rs_, "%s: reason", name);             \
        jpki_txn_free(t_);                                                   \
    } while (0)

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

    ctx = make_ctx(0, JPKI_REV_OCSP, "http://127.0.0.1:1/");
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
    snprintf(cookie, sizeof(cookie), "%s", last_cookie);
    jpki_txn_free(t);

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
        jpki_txn_request rq = {0};
        rq.op = JPKI_OP_LOGOUT;
        rq.now = NOW + 10;
        rq.is_post = 1;
        rq.wants_json = 1;
        rq.cookie = cookie;
        rq.cookie_len = strlen(cookie);
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
    ctx = make_ctx(0, JPKI_REV_CRL, NULL);
    map("user1.pem", "alice");
    map("rev-keyCompromise.pem", "x");
    map("rev-certificateHold.pem", "x");
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, &crl_only, 200, "ok",
                 "login with CRL");
    EXPECT_LOGIN("rev-keyCompromise.pem", "rev-keyCompromise.key", NULL,
                 &crl_only, 403, "cert_revoked", "revoked via CRL");
    EXPECT_LOGIN("rev-certificateHold.pem", "rev-certificateHold.key", NULL,
                 &crl_only, 403, "cert_on_hold", "hold via CRL");
    EXPECT_LOGIN("user1.pem", "user1.key", NULL, &stale_crl, 503,
                 "revocation_unavailable", "stale CRL fails closed");
    jpki_ctx_free(ctx);
    ctx = make_ctx(1, JPKI_REV_CRL, NULL);
    map("user1.pem", "alice");
    v = login("user1.pem", "user1.key", NULL, &stale_crl, &t, NULL);
    is_int(v->http_status, 200, "stale CRL with fail-open passes");
    ok(v->soft_pass && v->audit && strstr(v->audit, "\"soft_pass\":true"),
       "soft pass is audited");
    jpki_txn_free(t);
    {
        /* the session is re-checked at every request while it is flagged;
         * each re-check passing under fail-open again rewrites the day's
         * record instead of adding one (a key per request filled the
         * store in an outage) */
        jpki_store_cmd g = {0};
        jpki_store_result r;
        char soft_cookie[1024], want[64], id[JPKI_CERT_ID_HEX_LEN + 1] = "";
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
        g.key[g.keylen - 10] = '\0';                 /* soft:<cert_id>: */
        is_int((int64_t)jpki_shm_delete_prefix(shm, g.key, at * 1000),
               days, "one soft record per certificate and day");
    }
    jpki_ctx_free(ctx);

    /* OCSP then CRL */
    ctx = make_ctx(0, JPKI_REV_OCSP_CRL, "http://127.0.0.1:1/");
    map("user1.pem", "alice");
    {
        io_env fb = {NULL, "ca2.crl", 0, 0};
        EXPECT_LOGIN("user1.pem", "user1.key", NULL, &fb, 200, "ok",
                     "OCSP down, CRL fallback");
        is_int(fb.crl_calls, 1, "fallback used the CRL");
    }
    jpki_ctx_free(ctx);

    system("rm -rf /tmp/jpki-txn-*");
    free(shm_mem);
    free(shm_h);
    return done_testing();
}
