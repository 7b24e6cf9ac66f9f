/* test_edge.c - the request's edge (common/edge.c): the request filled
 * from headers, the answer's headers, the gate's own refusals, upstream
 * cookies, the gate's headers stripped; a site's required pieces
 * (common/conf.c) and an OCSP URL's target (common/conf_issuer.c). */
#include "edge.h"
#include "conf.h"
#include "conf_issuer.h"
#include "tap.h"

/* ---- a request's headers, as a table ------------------------------ */

typedef struct {
    const char *hdr[16][2];
    const char *own;
    int own_asked;
} req;

static const char *get(void *ud, const char *name, size_t i, size_t *len)
{
    req *r = ud;
    size_t k;

    for (k = 0; k < 16 && r->hdr[k][0] != NULL; k++)
        if (strcasecmp(r->hdr[k][0], name) == 0 && i-- == 0) {
            *len = strlen(r->hdr[k][1]);
            return r->hdr[k][1];
        }
    return NULL;
}

static const char *own(void *ud, size_t *len)
{
    req *r = ud;

    r->own_asked++;
    *len = r->own ? strlen(r->own) : 0;
    return r->own;
}

static jpki_policy pol;

static size_t map_none(void *ud, const char *cert_id, char *out)
{
    (void) ud;
    (void) cert_id;
    (void) out;
    return 0;
}

static void fill(jpki_txn_request *rq, jpki_op op, req *r, int sub, int redis)
{
    jpki_edge_in in = { get, r, own, sub, redis };

    memset(rq, 0, sizeof(*rq));
    rq->op = op;
    rq->policy = &pol;
    jpki_edge_request(rq, &in);
}

static int span_is(const char *p, size_t len, const char *want)
{
    return p != NULL && len == strlen(want) && memcmp(p, want, len) == 0;
}

static void test_request(void)
{
    jpki_txn_request rq;
    req r = { { { "Accept", "text/html" },
                { "Content-Type", "application/json" },
                { "Cookie", "a=1; b=2" },
                { "cookie", "x=1; jpki_session=S1; y=2" },
                { "Cookie", "jpki_session=S2" },
                { "Sec-Fetch-Site", "same-origin" },
                { "Origin", "https://a.example" },
                { "Host", "a.example:8443" } }, "own.example", 0 };

    strcpy(pol.cookie_name, "jpki_session");
    fill(&rq, JPKI_OP_CHECK, &r, 0, 0);
    ok(!rq.wants_json, "a browser's Accept: a page");
    ok(span_is(rq.content_type, rq.content_type_len, "application/json"),
       "Content-Type read");
    ok(span_is(rq.cookie, rq.cookie_len, "S1"),
       "the session cookie: the first Cookie header holding it");
    ok(rq.host == NULL && rq.origin == NULL && rq.sec_fetch_site == NULL,
       "a gated request reads no Host, Origin, Sec-Fetch-Site");
    ok(rq.map_source == JPKI_MAP_STORE && !rq.crl_in_store,
       "no mapping callback: the store's map; CRLs not in the store");

    fill(&rq, JPKI_OP_CHECK, &r, 1, 1);
    ok(rq.wants_json, "a subrequest: JSON whatever its Accept");
    ok(rq.crl_in_store, "Redis: CRLs in the store");

    fill(&rq, JPKI_OP_LOGIN, &r, 0, 0);
    ok(span_is(rq.sec_fetch_site, rq.sec_fetch_site_len, "same-origin")
       && span_is(rq.origin, rq.origin_len, "https://a.example"),
       "a login reads Sec-Fetch-Site and Origin");
    ok(span_is(rq.host, rq.host_len, "a.example:8443") && r.own_asked == 0,
       "a login's host: the Host header, the own host not asked");

    fill(&rq, JPKI_OP_CHALLENGE, &r, 0, 0);
    ok(rq.origin == NULL && span_is(rq.host, rq.host_len, "a.example:8443"),
       "a challenge reads Host, not Origin");

    r.hdr[7][1] = "";
    fill(&rq, JPKI_OP_LOGOUT, &r, 0, 0);
    ok(span_is(rq.host, rq.host_len, "own.example") && r.own_asked == 1,
       "an empty Host: the host the server found");
    r.hdr[7][0] = NULL;
    fill(&rq, JPKI_OP_CHALLENGE, &r, 0, 0);
    ok(span_is(rq.host, rq.host_len, "own.example"),
       "no Host: the host the server found");
    r.own = NULL;
    fill(&rq, JPKI_OP_CHALLENGE, &r, 0, 0);
    ok(rq.host == NULL && rq.host_len == 0, "none found: no host");

    memset(&r, 0, sizeof(r));
    fill(&rq, JPKI_OP_CHECK, &r, 0, 0);
    ok(rq.wants_json && rq.cookie == NULL && rq.content_type == NULL,
       "no headers: JSON, no cookie, no Content-Type");
    rq.map_fn = map_none;
    jpki_edge_request(&rq, &(jpki_edge_in) { get, &r, NULL, 0, 0 });
    ok(rq.map_source == JPKI_MAP_CALLBACK, "a mapping callback is used");
}

/* ---- the answer --------------------------------------------------- */

static int has(const jpki_edge_headers *h, size_t i, const char *name,
               const char *value, int session)
{
    return i < h->n && strcmp(h->h[i].name, name) == 0
           && strcmp(h->h[i].value, value) == 0
           && h->session[i] == session;
}

static void test_answer(void)
{
    jpki_verdict v;
    jpki_edge_headers h;
    char buf[JPKI_EDGE_REFUSAL_MAX];

    memset(&v, 0, sizeof(v));
    v.http_status = 200;
    v.account = "alice";
    ok(jpki_edge_passes(JPKI_OP_CHECK, &v), "a gated request passes on 200");
    ok(!jpki_edge_passes(JPKI_OP_STATUS, &v), "an endpoint's 200 is an answer");
    v.account = NULL;
    ok(!jpki_edge_passes(JPKI_OP_CHECK, &v), "not without an account");
    v.account = "alice";

    jpki_edge_verdict_headers(&v, 1, &h);
    is_int(h.n, 0, "a pass without a cookie: no header");
    v.set_cookie = "s=1";
    jpki_edge_verdict_headers(&v, 1, &h);
    ok(h.n == 2 && has(&h, 0, "Set-Cookie", "s=1", 1)
       && has(&h, 1, "Cache-Control", "private", 1),
       "a resealed pass: Set-Cookie and Cache-Control private, the session's");

    v.http_status = 302;
    v.location = "/login?r=%2F";
    v.retry_after = 7;
    jpki_edge_verdict_headers(&v, 0, &h);
    ok(h.n == 5 && has(&h, 0, "Set-Cookie", "s=1", 1)
       && has(&h, 1, "Location", "/login?r=%2F", 0)
       && has(&h, 2, "Retry-After", "7", 0)
       && has(&h, 3, "Cache-Control", "no-store", 0)
       && has(&h, 4, "X-Content-Type-Options", "nosniff", 0),
       "an answer: Set-Cookie, Location, Retry-After, then the answer's");
    jpki_edge_verdict_headers(NULL, 0, &h);
    ok(h.n == 2 && has(&h, 0, "Cache-Control", "no-store", 0),
       "no verdict: the answer's headers only");

    jpki_edge_refusal(&v, JPKI_ERR_BUSY, buf);
    ok(v.http_status == 503 && v.retry_after == 1
       && strstr(v.body, "\"busy\"") != NULL && v.body_len == strlen(buf),
       "busy: 503, Retry-After 1, its JSON");
    jpki_edge_verdict_headers(&v, 0, &h);
    ok(has(&h, 0, "Retry-After", "1", 0), "... sent as Retry-After: 1");
    is_int(jpki_edge_refusal(&v, JPKI_ERR_NOT_FOUND, buf)->http_status, 404,
           "no endpoint: 404");
    ok(strstr(v.body, "not_found") != NULL && v.retry_after == 0
       && v.set_cookie == NULL, "... not_found, nothing else");
    is_int(jpki_edge_refusal(&v, JPKI_ERR_TOO_LARGE, buf)->http_status, 413,
           "a body too large: 413");
    is_int(jpki_edge_refusal(&v, JPKI_ERR_BAD_REQUEST, buf)->http_status, 400,
           "a body unread: 400");
    is_int(jpki_edge_refusal(&v, JPKI_ERR_METHOD, buf)->http_status, 405,
           "a method not taken: 405");
    ok(strstr(v.body, "method_not_allowed") != NULL, "... method_not_allowed");
    is_str(v.allow, "GET, HEAD", "... Allow: the health answer's methods");
    {
        jpki_edge_headers hh;
        size_t k;
        int allow = 0;
        jpki_edge_verdict_headers(&v, 0, &hh);
        for (k = 0; k < hh.n; k++)
            allow += strcmp(hh.h[k].name, "Allow") == 0
                     && strcmp(hh.h[k].value, "GET, HEAD") == 0;
        is_int(allow, 1, "a 405's verdict gives one Allow header");
        v.allow = NULL;
        jpki_edge_verdict_headers(&v, 0, &hh);
        for (k = 0, allow = 0; k < hh.n; k++)
            allow += strcmp(hh.h[k].name, "Allow") == 0;
        is_int(allow, 0, "no Allow without one in the verdict");
    }
    is_int(jpki_edge_refusal(&v, JPKI_ERR_STORE, buf)->http_status, 500,
           "anything else: 500");
    ok(strstr(v.body, "internal_error") != NULL, "... internal_error");

    jpki_edge_answer(&v, 503, "{}", 2);
    ok(v.http_status == 503 && v.body_len == 2 && v.set_cookie == NULL
       && v.location == NULL && v.retry_after == 0,
       "an answer without a transaction: its status and body only");

    pol.login_concurrency = 2;
    ok(!jpki_edge_login_busy(NULL, JPKI_OP_LOGIN, &pol, 1), "1 of 2: not busy");
    ok(jpki_edge_login_busy(NULL, JPKI_OP_LOGIN, &pol, 2), "2 of 2: busy");
    ok(!jpki_edge_login_busy(NULL, JPKI_OP_CHALLENGE, &pol, 5),
       "only logins are counted");
    pol.login_concurrency = 0;
    ok(!jpki_edge_login_busy(NULL, JPKI_OP_LOGIN, &pol, 1000), "0: no cap");
}

/* ---- upstream cookies, the gate's headers ------------------------- */

static void test_upstream(void)
{
    jpki_span in[3] = { { "a=1; jpki_session=S; b=2", 24 },
                        { "c=3", 3 },
                        { "jpki_session=T", 14 } }, out[3];
    char buf[64];
    size_t n;
    int changed;

    n = jpki_edge_upstream_cookies(in, 3, "jpki_session", 1, buf, out,
                                   &changed);
    ok(n == 3 && !changed && out[0].p == in[0].p && out[2].p == in[2].p,
       "pass_cookie: the client's, as they came");
    n = jpki_edge_upstream_cookies(in, 3, "jpki_session", 0, buf, out,
                                   &changed);
    ok(n == 2 && changed, "the session cookie out: one header left empty, "
       "dropped");
    ok(span_is(out[0].p, out[0].len, "a=1; b=2"), "... the rest kept");
    ok(out[1].p == in[1].p && out[1].len == 3,
       "... a header without it, as it came");
    n = jpki_edge_upstream_cookies(in + 1, 1, "jpki_session", 0, buf, out,
                                   &changed);
    ok(n == 1 && !changed, "none to take out: unchanged");

    is_int(jpki_edge_strip_header("Accept", 6, "X-User", 6, 0, 0, 0),
           JPKI_EDGE_KEEP, "not the gate's: kept");
    is_int(jpki_edge_strip_header("x_user", 6, "X-User", 6, 0, 0, 0),
           JPKI_EDGE_WARN, "a client's account header: removed, warned");
    is_int(jpki_edge_strip_header("X-JPKI-Cert-Id", 14, NULL, 0, 0, 0, 1),
           JPKI_EDGE_DROP, "quiet: removed without a warning");
    is_int(jpki_edge_strip_header("X-User", 6, "X-User", 6, 1, 0, 0),
           JPKI_EDGE_DROP, "one a gate set: removed quietly");
    is_int(jpki_edge_strip_header("X-User", 6, "X-User", 6, 1, 1, 0),
           JPKI_EDGE_KEEP, "... or kept where asked");
}

/* ---- a site's pieces, an OCSP URL --------------------------------- */

static void test_site(void)
{
    char s[256];

    is_int(jpki_conf_site_missing(JPKI_SERVER_NGINX, 1, 1, 1, s, sizeof(s)),
           0, "a whole site: nothing said");
    ok(jpki_conf_site_missing(JPKI_SERVER_NGINX, 0, 0, 0, s, sizeof(s)) > 0,
       "no secret: a sentence");
    is_str(s, "\"jpki_secret_file\" is required (a site needs "
           "jpki_secret_file, jpki_issuer and jpki_store in the same block)",
           "... nginx's");
    jpki_conf_site_missing(JPKI_SERVER_APACHE, 1, 0, 1, s, sizeof(s));
    is_str(s, "at least one \"JPKIIssuer\" is required (a site needs "
           "JPKISecretFile, JPKIIssuer and JPKIStore in the same server or "
           "virtual host)", "no issuer: Apache's");
    jpki_conf_site_missing(JPKI_SERVER_NGINX, 1, 2, 0, s, sizeof(s));
    ok(strstr(s, "\"jpki_store\" is required") == s
       && strstr(s, "e.g. \"jpki_store shm size=10m;\"") != NULL,
       "no store: nginx's, with an example");
    is_str(jpki_conf_site_directive(JPKI_SERVER_APACHE, JPKI_SITE_STORE),
           "JPKIStore", "a piece's spelling");
    is_str(jpki_conf_site_pieces(JPKI_SERVER_NGINX),
           "jpki_secret_file, jpki_issuer and jpki_store", "the three");
}

static int target(const char *url, const char *host, unsigned port,
                  const char *hh, const char *path)
{
    jpki_conf_issuer spec;
    char word[300], err[256];
    const char *argv[3] = { "card", "ca=/x.pem", word };
    int good;

    snprintf(word, sizeof(word), "ocsp=%s", url);
    if (jpki_conf_issuer_parse(&spec, argv, 3, err, sizeof(err)) != JPKI_OK)
        return host == NULL && strstr(err, "has an invalid OCSP URL") != NULL;
    good = host != NULL && strcmp(spec.ocsp_host, host) == 0
           && spec.ocsp_port == port
           && strcmp(spec.ocsp_host_header, hh) == 0
           && strcmp(spec.ocsp_path, path) == 0;
    jpki_conf_issuer_free(&spec);
    return good;
}

static void test_ocsp(void)
{
    ok(target("http://127.0.0.1:8080/ocsp", "127.0.0.1", 8080,
              "127.0.0.1:8080", "/ocsp"),
       "a port: in the Host header");
    ok(target("http://ocsp.example", "ocsp.example", 80, "ocsp.example", "/"),
       "no port: 80, the host alone, path /");
    ok(target("http://ocsp.example:80/a", "ocsp.example", 80, "ocsp.example",
              "/a"), "port 80 written: the host alone");
    ok(target("http://[::1]:8080/", "::1", 8080, "[::1]:8080", "/"),
       "IPv6 and a port: brackets in the Host header only");
    ok(target("http://[2001:db8::1]", "2001:db8::1", 80, "[2001:db8::1]", "/"),
       "IPv6 without a port");
    ok(target("http://[fe80::1%25eth0]:80/", NULL, 0, NULL, NULL),
       "a zone is refused");
    ok(target("http://[::1/", NULL, 0, NULL, NULL), "no ']': refused");
    ok(target("http://[::1]x/", NULL, 0, NULL, NULL), "junk after ']'");
    ok(target("http://[]:80/", NULL, 0, NULL, NULL), "empty brackets");
    ok(target("http://[a.b]/", NULL, 0, NULL, NULL), "no ':' in brackets");
    ok(target("http://h:0/", NULL, 0, NULL, NULL), "port 0 refused");
    ok(target("http://h:65536/", NULL, 0, NULL, NULL), "port 65536 refused");
    ok(target("http://h:65535/", "h", 65535, "h:65535", "/"),
       "port 65535 taken");
    ok(target("http://h:/", NULL, 0, NULL, NULL), "an empty port refused");
    ok(target("http://h:8x/", NULL, 0, NULL, NULL), "a port not a number");
    ok(target("http://h:000080/", NULL, 0, NULL, NULL), "six digits refused");
    ok(target("http://a:1:2/", NULL, 0, NULL, NULL), "two ':' refused");
    ok(target("http://:80/", NULL, 0, NULL, NULL), "no host refused");
    ok(target("http://h%41/", NULL, 0, NULL, NULL), "'%%' in a name refused");
}

int main(void)
{
    test_request();
    test_answer();
    test_upstream();
    test_site();
    test_ocsp();
    return done_testing();
}
