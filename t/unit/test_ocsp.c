/* test_ocsp.c - OCSP requests and response checks.
 *
 * Responses come from the openssl CLI acting as responder over the test
 * PKI's index files, answering the DER request jpki_ocsp_request made (so
 * the request path is exercised too).  Every rejection has a case here. */
#include "internal.h"
#include "pki.h"

#include <unistd.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static time_t now;
static time_t pki_time;       /* when the test PKI was made */
static char tmpdir[64];

/* ---- helpers ------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *len)
{
    uint8_t *buf = NULL;

    if (jpki_load_file(path, 1u << 20, &buf, len) != JPKI_OK) {
        *len = 0;
        return NULL;
    }
    return buf;
}

static int write_all(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    int okw = f != NULL && fwrite(b, 1, n, f) == n;

    if (f != NULL && fclose(f) != 0)
        okw = 0;
    return okw;
}

/* Runs `openssl ocsp` in the PKI directory as a responder for req. */
static uint8_t *respond(const uint8_t *req, size_t reqlen, const char *args,
                        size_t *outlen)
{
    char cmd[4096], path[256], resp[256], log[256];
    uint8_t *out;

    *outlen = 0;
    snprintf(path, sizeof(path), "%s/req.der", tmpdir);
    snprintf(resp, sizeof(resp), "%s/resp.der", tmpdir);
    snprintf(log, sizeof(log), "%s/log", tmpdir);
    unlink(resp);
    if (req == NULL || !write_all(path, req, reqlen))
        return NULL;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && openssl ocsp -reqin '%s' -respout '%s' %s "
             ">'%s' 2>&1", tap_pki_dir(), path, resp, args, log);
    if (system(cmd) != 0) {
        size_t n;
        uint8_t *l = read_all(log, &n);
        printf("# openssl ocsp %s failed: %s\n", args, l ? (char *)l : "");
        free(l);
        return NULL;
    }
    out = read_all(resp, outlen);
    return out;
}

static void tune_ocsp(jpki_policy *p, const void *ud)
{
    const int *v = ud;
    p->ocsp_nonce = (unsigned)v[0];
    p->ocsp_sha256_certid = (unsigned)v[1];
    p->allow_sha1 = (unsigned)v[2];
}

static jpki_ctx *mkctx(int nonce, int sha256, int allow_sha1)
{
    int v[3];
    v[0] = nonce;
    v[1] = sha256;
    v[2] = allow_sha1;
    return tap_pki_ctx(0x33, tune_ocsp, v);
}

static jpki_cert *check_cert(const jpki_ctx *ctx, const char *name)
{
    size_t len;
    uint8_t *buf = read_all(tap_path(name), &len);
    jpki_cert *c = NULL;
    char detail[256] = "";

    if (buf != NULL &&
        jpki_cert_check(ctx, buf, len, now, &c, detail, sizeof(detail))
        != JPKI_OK)
        printf("# cert_check %s: %s\n", name, detail);
    free(buf);
    return c;
}

/* A request for c and the response of `openssl ocsp args` to it. */
typedef struct {
    jpki_ocsp_state st;
    uint8_t *req, *resp;
    size_t reqlen, resplen;
} exchange;

static void xfree(exchange *x)
{
    free(x->req);
    free(x->resp);
    memset(x, 0, sizeof(*x));
}

static int xchg(const jpki_ctx *ctx, const jpki_cert *c, const char *args,
                exchange *x)
{
    memset(x, 0, sizeof(*x));
    if (c == NULL ||
        jpki_ocsp_request(ctx, c, &x->st, &x->req, &x->reqlen) != JPKI_OK)
        return 0;
    x->resp = respond(x->req, x->reqlen, args, &x->resplen);
    return x->resp != NULL;
}

static jpki_err xcheck(const jpki_ctx *ctx, const jpki_cert *c,
                       const exchange *x, time_t t, jpki_rev_info *ri)
{
    jpki_rev_info dummy;

    return jpki_ocsp_check(ctx, c, &x->st, x->resp, x->resplen, t,
                           ri != NULL ? ri : &dummy);
}

/* One response from args checked at now: the error, and *ri. */
static jpki_err one(const jpki_ctx *ctx, const jpki_cert *c, const char *args,
                    time_t t, jpki_rev_info *ri)
{
    exchange x;
    jpki_err e;

    if (!xchg(ctx, c, args, &x)) {
        xfree(&x);
        return JPKI__ERR_COUNT;
    }
    e = xcheck(ctx, c, &x, t, ri);
    xfree(&x);
    return e;
}

#define CA2_DB "-index ca2-index.txt -CA ca2.pem -ndays 1 "
#define BY_OCSP CA2_DB "-rsigner ocsp.pem -rkey ocsp.key"
#define BY_CA2 CA2_DB "-rsigner ca2.pem -rkey ca2.key"

/* ---- responses built here (forged responder certificates) ---------- */

static X509 *pem_x509(const char *name)
{
    FILE *f = fopen(tap_path(name), "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f)
        fclose(f);
    return x;
}

static EVP_PKEY *pem_key(const char *name)
{
    FILE *f = fopen(tap_path(name), "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

    if (f)
        fclose(f);
    return k;
}

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *val)
{
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, v3, nid, val);

    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A responder certificate for key, naming aki_from as its issuer (name and
 * AKI) and signed by signkey. */
static X509 *mk_responder(EVP_PKEY *key, X509 *aki_from, EVP_PKEY *signkey,
                          const char *ku, const char *eku)
{
    X509 *x = X509_new();
    X509V3_CTX v3;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_set_issuer_name(x, X509_get_subject_name(aki_from));
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"Built responder", -1,
                               -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, aki_from, x, NULL, NULL, 0);
    add_ext(x, &v3, NID_key_usage, ku);
    if (eku != NULL)
        add_ext(x, &v3, NID_ext_key_usage, eku);
    add_ext(x, &v3, NID_subject_key_identifier, "hash");
    add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
    X509_sign(x, signkey, EVP_sha256());
    return x;
}

/* A "good" response for c, signed by rkey with rcert included. */
static uint8_t *mk_response(const jpki_cert *c, X509 *rcert, EVP_PKEY *rkey,
                            size_t *len)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *cid = OCSP_cert_to_id(EVP_sha1(), c->x509, c->issuer_cert);
    ASN1_TIME *tu = X509_gmtime_adj(NULL, 0);
    ASN1_TIME *nu = X509_gmtime_adj(NULL, 3600);
    OCSP_RESPONSE *r;
    unsigned char *d = NULL;
    uint8_t *out;
    int n;

    OCSP_basic_add1_status(bs, cid, V_OCSP_CERTSTATUS_GOOD, 0, NULL, tu, nu);
    if (OCSP_basic_sign(bs, rcert, rkey, EVP_sha256(), NULL, 0) != 1)
        diag("OCSP_basic_sign failed");
    r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    n = i2d_OCSP_RESPONSE(r, &d);
    *len = n > 0 ? (size_t)n : 0;
    out = malloc(*len);
    memcpy(out, d, *len);
    OPENSSL_free(d);
    OCSP_RESPONSE_free(r);
    OCSP_BASICRESP_free(bs);
    OCSP_CERTID_free(cid);
    ASN1_TIME_free(tu);
    ASN1_TIME_free(nu);
    return out;
}

static void t_built(const jpki_ctx *ctx, const jpki_cert *u1)
{
    X509 *ca2 = pem_x509("ca2.pem"), *other = pem_x509("other-ca.pem");
    EVP_PKEY *ca2k = pem_key("ca2.key"), *otherk = pem_key("other-ca.key");
    EVP_PKEY *rk = pem_key("ocsp.key");
    static const struct {
        int aki_other, sign_other;
        const char *eku, *ku;
        jpki_err want;
        const char *what;
    } cases[] = {
        {0, 0, "OCSPSigning", "critical,digitalSignature", JPKI_OK,
         "built responder issued by ca2: ok"},
        {0, 0, "clientAuth,OCSPSigning", "digitalSignature", JPKI_OK,
         "EKU with OCSPSigning among others: ok"},
        {0, 1, "OCSPSigning", "critical,digitalSignature",
         JPKI_ERR_OCSP_SIGNER,
         "names ca2 (DN, AKI) but signed by other-ca: ocsp_signer"},
        {1, 0, "OCSPSigning", "critical,digitalSignature",
         JPKI_ERR_OCSP_SIGNER,
         "signed by ca2 but AKI of other-ca: ocsp_signer"},
        {0, 0, "OCSPSigning", "critical,keyEncipherment",
         JPKI_ERR_OCSP_SIGNER,
         "keyUsage without digitalSignature: ocsp_signer"},
        {0, 0, NULL, "critical,digitalSignature", JPKI_ERR_OCSP_SIGNER,
         "no extendedKeyUsage: ocsp_signer"},
        {0, 0, "clientAuth,serverAuth", "critical,digitalSignature",
         JPKI_ERR_OCSP_SIGNER, "EKU without OCSPSigning: ocsp_signer"},
    };
    size_t i;

    if (!ok(ca2 && other && ca2k && otherk && rk, "keys for built responses"))
        return;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509 *rc = mk_responder(rk, cases[i].aki_other ? other : ca2,
                                cases[i].sign_other ? otherk : ca2k,
                                cases[i].ku, cases[i].eku);
        size_t n;
        uint8_t *d = mk_response(u1, rc, rk, &n);
        jpki_rev_info ri;

        is_int(jpki_ocsp_check(ctx, u1, NULL, d, n, now, &ri), cases[i].want,
               "%s", cases[i].what);
        free(d);
        X509_free(rc);
    }
    X509_free(ca2);
    X509_free(other);
    EVP_PKEY_free(ca2k);
    EVP_PKEY_free(otherk);
    EVP_PKEY_free(rk);
}

/* ---- request ------------------------------------------------------- */

static void t_request(const jpki_ctx *ctx, const jpki_ctx *ctx_nonce,
                      const jpki_ctx *ctx_sha256, const jpki_cert *u1)
{
    jpki_ocsp_state st, st2;
    uint8_t *der = NULL, *der2 = NULL, kh[20];
    size_t len = 0, len2 = 0;
    const unsigned char *p;
    OCSP_REQUEST *req;
    ASN1_OBJECT *md = NULL;
    ASN1_OCTET_STRING *ikh = NULL;
    ASN1_INTEGER *sn = NULL;
    X509 *ca2;
    FILE *f;

    is_int(jpki_ocsp_request(ctx, u1, &st, &der, &len), JPKI_OK,
           "request for user1");
    ok(!st.has_nonce && !st.sha256, "default: no nonce, SHA-1 CertID");
    p = der;
    req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    ok(req != NULL && p == der + len, "request DER parses exactly");
    is_int(OCSP_request_onereq_count(req), 1, "one CertID");
    OCSP_id_get0_info(NULL, &md, &ikh, &sn,
                      OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0)));
    is_int(OBJ_obj2nid(md), NID_sha1, "CertID hash SHA-1");
    ok(ASN1_INTEGER_cmp(sn, X509_get0_serialNumber(u1->x509)) == 0,
       "CertID serial is user1's");
    f = fopen(tap_path("ca2.pem"), "r");
    ca2 = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    jpki_key_hash_sha1(ca2, kh);
    ok(ikh != NULL && ASN1_STRING_length(ikh) == 20 &&
       memcmp(ASN1_STRING_get0_data(ikh), kh, 20) == 0,
       "CertID issuerKeyHash is ca2's key");
    is_int(OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1), -1,
           "no nonce extension by default");
    OCSP_REQUEST_free(req);
    X509_free(ca2);
    free(der);

    is_int(jpki_ocsp_request(ctx_sha256, u1, &st, &der, &len), JPKI_OK,
           "request with SHA-256 CertID");
    ok(st.sha256, "state records SHA-256");
    p = der;
    req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    OCSP_id_get0_info(NULL, &md, NULL, NULL,
                      OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, 0)));
    is_int(OBJ_obj2nid(md), NID_sha256, "CertID hash SHA-256");
    OCSP_REQUEST_free(req);
    free(der);

    is_int(jpki_ocsp_request(ctx_nonce, u1, &st, &der, &len), JPKI_OK,
           "request with nonce");
    jpki_ocsp_request(ctx_nonce, u1, &st2, &der2, &len2);
    ok(st.has_nonce && st2.has_nonce, "state records the nonce");
    ok(memcmp(st.nonce, st2.nonce, 16) != 0, "nonces differ");
    p = der;
    req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    ok(OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) >= 0,
       "nonce extension present");
    OCSP_REQUEST_free(req);
    free(der);
    free(der2);

    der = (uint8_t *)"x";
    is_int(jpki_ocsp_request(ctx, NULL, &st, &der, &len), JPKI_ERR_INVALID,
           "no certificate: invalid");
    ok(der == NULL && len == 0, "outputs cleared on error");
}

/* ---- statuses ------------------------------------------------------ */

static void t_status(const jpki_ctx *ctx, const jpki_cert *u1)
{
    static const char *reasons[] = {
        "unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
        "superseded", "cessationOfOperation"};
    jpki_rev_info ri;
    exchange x;
    size_t i;

    /* One response checked at two times: a second `openssl ocsp` run
     * could fall in the next second and move nextUpdate with it. */
    ok(xchg(ctx, u1, BY_OCSP, &x), "user1: response from openssl ocsp");
    is_int(xcheck(ctx, u1, &x, now, &ri), JPKI_OK,
           "user1, delegated responder: ok");
    is_int(ri.status, JPKI_REV_GOOD, "user1: good");
    is_int(ri.reason, JPKI_REASON_NONE, "good: no reason");
    is_int(ri.revoked_at, 0, "good: revoked_at 0");
    ok(ri.this_update >= now - 60 && ri.this_update <= now + 60,
       "thisUpdate about now");
    ok(ri.next_update >= now + 86400 - 60 && ri.next_update <= now + 86460,
       "nextUpdate about now + 1 day");
    is_int(ri.cache_ttl, 3600, "good: cache_ttl capped at ocsp_good_max_ttl");
    is_int(xcheck(ctx, u1, &x, (time_t)ri.next_update - 100, &ri), JPKI_OK,
           "100 s before nextUpdate: ok");
    is_int(ri.cache_ttl, 100, "good: cache_ttl = nextUpdate - now");
    xfree(&x);

    is_int(one(ctx, u1, BY_CA2, now, &ri), JPKI_OK,
           "user1, signed by the issuing CA itself: ok");
    is_int(ri.status, JPKI_REV_GOOD, "user1 (CA-signed): good");
    is_int(one(ctx, u1, BY_CA2 " -resp_key_id", now, &ri), JPKI_OK,
           "CA-signed, responder id by key: ok");
    is_int(one(ctx, u1, BY_CA2 " -resp_no_certs", now, &ri), JPKI_OK,
           "CA-signed without certificates: ok");
    is_int(one(ctx, u1, BY_OCSP " -resp_key_id", now, &ri), JPKI_OK,
           "delegated, responder id by key: ok");
    is_int(one(ctx, u1, BY_OCSP " -rmd sha384", now, &ri), JPKI_OK,
           "delegated, sha384WithRSA: ok");
    is_int(one(ctx, u1, BY_OCSP " -rmd sha1", now, &ri),
           JPKI_ERR_OCSP_SIGNATURE,
           "sha1WithRSA without allow_sha1: ocsp_signature");
    is_int(one(ctx, u1, BY_OCSP " -rmd sha224", now, &ri),
           JPKI_ERR_OCSP_SIGNATURE, "sha224WithRSA: ocsp_signature");

    for (i = 0; i < 6; i++) {
        char name[64];
        jpki_cert *c;

        snprintf(name, sizeof(name), "rev-%s.pem", reasons[i]);
        c = check_cert(ctx, name);
        is_int(one(ctx, c, BY_OCSP, now, &ri), JPKI_OK, "%s: ok", name);
        ok(ri.status == JPKI_REV_REVOKED && ri.reason == (int)i,
           "%s: revoked, reason %zu (got %d/%d)", name, i, (int)ri.status,
           ri.reason);
        jpki_cert_free(c);
    }
    ok(ri.revoked_at > pki_time - 11 * 86400 &&
       ri.revoked_at < pki_time - 9 * 86400,
       "revoked_at about 10 days before the PKI was made");
    is_int(ri.cache_ttl, 86400 * 30, "revoked: cache_ttl ocsp_revoked_ttl");
    {
        jpki_cert *h = check_cert(ctx, "rev-certificateHold.pem");
        is_int(one(ctx, h, BY_OCSP, now, &ri), JPKI_OK, "hold: ok");
        is_int(ri.status, JPKI_REV_HOLD, "hold: status hold");
        is_int(ri.reason, JPKI_REASON_CERTIFICATE_HOLD, "hold: reason 6");
        is_int(ri.cache_ttl, 300, "hold: cache_ttl ocsp_hold_ttl");
        jpki_cert_free(h);
    }
    is_int(one(ctx, u1, "-index ca1-index.txt -CA ca2.pem -ndays 1 "
                        "-rsigner ocsp.pem -rkey ocsp.key", now, &ri),
           JPKI_OK, "responder without user1 in its index: ok");
    is_int(ri.status, JPKI_REV_UNKNOWN, "not in the index: unknown");
    is_int(ri.cache_ttl, 0, "unknown: cache_ttl 0");
    {
        jpki_cert *uo = check_cert(ctx, "user-old.pem");
        jpki_cert *uor = check_cert(ctx, "user-old-revoked.pem");
        const char *ca1db = "-index ca1-index.txt -CA ca1.pem -ndays 1 "
                            "-rsigner ocsp1.pem -rkey ocsp1.key";
        is_int(one(ctx, uo, ca1db, now, &ri), JPKI_OK,
               "user-old (ca1), ca1's responder: ok");
        is_int(ri.status, JPKI_REV_GOOD, "user-old: good");
        is_int(one(ctx, uor, ca1db, now, &ri), JPKI_OK,
               "user-old-revoked, ca1's responder: ok");
        ok(ri.status == JPKI_REV_REVOKED &&
           ri.reason == JPKI_REASON_KEY_COMPROMISE,
           "user-old-revoked: revoked keyCompromise");
        is_int(one(ctx, uo, "-index ca1-index.txt -CA ca1.pem -ndays 1 "
                            "-rsigner ocsp.pem -rkey ocsp.key", now, &ri),
               JPKI_ERR_OCSP_SIGNER,
               "user-old answered by ca2's responder: ocsp_signer");
        jpki_cert_free(uo);
        jpki_cert_free(uor);
    }
    {
        jpki_cert *pu = check_cert(ctx, "phone-user.pem");
        is_int(one(ctx, pu, "-index phone-index.txt -CA phone-ca.pem "
                            "-ndays 1 -rsigner phone-ocsp.pem "
                            "-rkey phone-ocsp.key", now, &ri), JPKI_OK,
               "phone user, EC responder: ok");
        is_int(ri.status, JPKI_REV_GOOD, "phone user: good");
        jpki_cert_free(pu);
    }
}

/* ---- signers ------------------------------------------------------- */

static void t_signers(const jpki_ctx *ctx, const jpki_cert *u1)
{
    jpki_err e;

    is_int(one(ctx, u1, CA2_DB "-rsigner ocsp-noeku.pem -rkey ocsp-noeku.key",
               now, NULL), JPKI_ERR_OCSP_SIGNER,
           "responder without id-kp-OCSPSigning: ocsp_signer");
    is_int(one(ctx, u1, CA2_DB "-rsigner ocsp-foreign.pem "
                        "-rkey ocsp-foreign.key", now, NULL),
           JPKI_ERR_OCSP_SIGNER,
           "responder issued by an unrelated CA with the J-LIS DN: "
           "ocsp_signer");
    is_int(one(ctx, u1, CA2_DB "-rsigner ocsp1.pem -rkey ocsp1.key", now,
               NULL), JPKI_ERR_OCSP_SIGNER,
           "responder of the other key generation (ca1): ocsp_signer");
    e = one(ctx, u1, CA2_DB "-rsigner other-ca.pem -rkey other-ca.key", now,
            NULL);
    ok(e == JPKI_ERR_OCSP_SIGNATURE,
       "signed by other-ca, named by the shared DN: ocsp_signature (%s)",
       jpki_reason(e));
    is_int(one(ctx, u1, CA2_DB "-rsigner other-ca.pem -rkey other-ca.key "
                        "-resp_key_id", now, NULL), JPKI_ERR_OCSP_SIGNER,
           "signed by other-ca, named by its key: ocsp_signer");
    is_int(one(ctx, u1, CA2_DB "-rsigner ca1.pem -rkey ca1.key", now, NULL),
           JPKI_ERR_OCSP_SIGNATURE,
           "signed by ca1 (same DN, not user1's issuer): ocsp_signature");
    is_int(one(ctx, u1, CA2_DB "-rsigner ca1.pem -rkey ca1.key -resp_key_id",
               now, NULL), JPKI_ERR_OCSP_SIGNER,
           "signed by ca1, named by key: ocsp_signer");
    is_int(one(ctx, u1, BY_OCSP " -resp_no_certs", now, NULL),
           JPKI_ERR_OCSP_SIGNER,
           "delegated responder certificate not in the response: "
           "ocsp_signer");
    /* a delegated response whose signature is damaged */
    {
        exchange x;
        if (xchg(ctx, u1, BY_OCSP, &x)) {
            const unsigned char *p = x.resp;
            OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)x.resplen);
            OCSP_BASICRESP *bs = r ? OCSP_response_get1_basic(r) : NULL;
            ASN1_OCTET_STRING *sig =
                bs ? (ASN1_OCTET_STRING *)OCSP_resp_get0_signature(bs) : NULL;
            OCSP_RESPONSE *r2;
            unsigned char *d = NULL;
            int n;

            if (sig != NULL && ASN1_STRING_length(sig) > 0)
                ((unsigned char *)ASN1_STRING_get0_data(sig))[10] ^= 0x40;
            r2 = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
            n = i2d_OCSP_RESPONSE(r2, &d);
            is_int(jpki_ocsp_check(ctx, u1, &x.st, d, (size_t)n, now,
                                   &(jpki_rev_info){0}),
                   JPKI_ERR_OCSP_SIGNATURE,
                   "delegated responder, damaged signature: ocsp_signature");
            OPENSSL_free(d);
            OCSP_RESPONSE_free(r2);
            OCSP_BASICRESP_free(bs);
            OCSP_RESPONSE_free(r);
        } else {
            ok(0, "exchange");
        }
        xfree(&x);
    }
    /* responder validity: ocsp.pem is valid from 1 day ago for 5 years */
    is_int(one(ctx, u1, BY_OCSP, now - 2 * 86400, NULL),
           JPKI_ERR_OCSP_SIGNER,
           "delegated responder not yet valid at now: ocsp_signer");
    is_int(one(ctx, u1, BY_CA2, now - 2 * 86400, NULL), JPKI_ERR_OCSP_STALE,
           "(same time, CA-signed: stale, not signer)");
    is_int(one(ctx, u1, BY_OCSP, now + 6 * 365 * 86400, NULL),
           JPKI_ERR_OCSP_SIGNER,
           "delegated responder expired at now: ocsp_signer");
    is_int(one(ctx, u1, BY_CA2, now + 6 * 365 * 86400, NULL),
           JPKI_ERR_OCSP_STALE, "(same time, CA-signed: stale, not signer)");
}

/* ---- broken responses ---------------------------------------------- */

static void t_broken(const jpki_ctx *ctx, const jpki_cert *u1)
{
    exchange x;
    jpki_ocsp_state st;
    uint8_t *b;
    size_t i;
    int all = 1;
    static const uint8_t junk[] = "HTTP/1.1 500 Internal Server Error";

    if (!ok(xchg(ctx, u1, BY_CA2 " -resp_no_certs", &x), "CA-signed response"))
        return;
    st = x.st;
    b = malloc(x.resplen + 1);
    for (i = 0; i < x.resplen; i++) {
        jpki_rev_info ri;
        jpki_err e = jpki_ocsp_check(ctx, u1, &st, x.resp, i, now, &ri);
        if (e != JPKI_ERR_OCSP_PARSE) {
            printf("#   truncated to %zu: %s\n", i, jpki_reason(e));
            all = 0;
        }
    }
    ok(all, "every truncation: ocsp_malformed");
    memcpy(b, x.resp, x.resplen);
    b[x.resplen] = 0;
    is_int(jpki_ocsp_check(ctx, u1, &st, b, x.resplen + 1, now,
                           &(jpki_rev_info){0}), JPKI_ERR_OCSP_PARSE,
           "trailing byte: ocsp_malformed");
    is_int(jpki_ocsp_check(ctx, u1, &st, junk, sizeof(junk) - 1, now,
                           &(jpki_rev_info){0}), JPKI_ERR_OCSP_PARSE,
           "garbage: ocsp_malformed");
    /* the signature is the last element when no certificates follow */
    memcpy(b, x.resp, x.resplen);
    b[x.resplen - 1] ^= 0x01;
    is_int(jpki_ocsp_check(ctx, u1, &st, b, x.resplen, now,
                           &(jpki_rev_info){0}), JPKI_ERR_OCSP_SIGNATURE,
           "flipped signature bit: ocsp_signature");
    /* a byte inside tbsResponseData: the producedAt/thisUpdate digits */
    {
        size_t k;
        int done = 0;
        for (k = 0; k + 15 < x.resplen && !done; k++)
            if (x.resp[k] == 0x18 && x.resp[k + 1] == 15) {   /* GenTime */
                memcpy(b, x.resp, x.resplen);
                b[k + 2 + 13] = b[k + 2 + 13] == '0' ? '1' : '0';
                done = 1;
            }
        ok(done, "found a GeneralizedTime");
        is_int(jpki_ocsp_check(ctx, u1, &st, b, x.resplen, now,
                               &(jpki_rev_info){0}),
               JPKI_ERR_OCSP_SIGNATURE, "altered time: ocsp_signature");
    }
    free(b);
    xfree(&x);

    /* over the bound: refused before parsing */
    b = calloc(1, JPKI_OCSP_RESP_MAX + 1);
    b[0] = 0x30;
    is_int(jpki_ocsp_check(ctx, u1, &st, b, JPKI_OCSP_RESP_MAX + 1, now,
                           &(jpki_rev_info){0}), JPKI_ERR_TOO_LARGE,
           "over JPKI_OCSP_RESP_MAX: too_large");
    is_int(jpki_ocsp_check(ctx, u1, &st, b, 0, now, &(jpki_rev_info){0}),
           JPKI_ERR_OCSP_PARSE, "empty: ocsp_malformed");
    free(b);

    /* non-successful responseStatus */
    {
        static const int codes[] = {OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
                                    OCSP_RESPONSE_STATUS_INTERNALERROR,
                                    OCSP_RESPONSE_STATUS_TRYLATER,
                                    OCSP_RESPONSE_STATUS_UNAUTHORIZED};
        for (i = 0; i < 4; i++) {
            OCSP_RESPONSE *r = OCSP_response_create(codes[i], NULL);
            unsigned char *d = NULL;
            int n = i2d_OCSP_RESPONSE(r, &d);
            is_int(jpki_ocsp_check(ctx, u1, &st, d, (size_t)n, now,
                                   &(jpki_rev_info){0}),
                   JPKI_ERR_OCSP_STATUS, "responseStatus %d: ocsp_status",
                   codes[i]);
            OPENSSL_free(d);
            OCSP_RESPONSE_free(r);
        }
    }
    /* successful, but responseBytes is not a BasicOCSPResponse */
    {
        static const uint8_t notbasic[] = {
            0x30, 0x18, 0x0a, 0x01, 0x00, 0xa0, 0x13, 0x30, 0x11,
            0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01,
            0x04, 0x04, 0x30, 0x02, 0x05, 0x00};
        is_int(jpki_ocsp_check(ctx, u1, &st, notbasic, sizeof(notbasic), now,
                               &(jpki_rev_info){0}), JPKI_ERR_OCSP_PARSE,
               "responseBytes not a BasicOCSPResponse: ocsp_malformed");
    }
}

/* ---- matching, nonce, times ---------------------------------------- */

static void t_match(const jpki_ctx *ctx, const jpki_ctx *ctx_sha256,
                    const jpki_cert *u1)
{
    jpki_cert *u2 = check_cert(ctx, "user2.pem");
    exchange x;
    jpki_rev_info ri;

    if (xchg(ctx, u2, BY_OCSP, &x)) {
        is_int(xcheck(ctx, u2, &x, now, &ri), JPKI_OK, "user2's answer: ok");
        is_int(xcheck(ctx, u1, &x, now, &ri), JPKI_ERR_OCSP_NO_ANSWER,
               "user2's answer checked for user1: ocsp_no_answer");
    } else {
        ok(0, "user2 exchange");
    }
    xfree(&x);

    if (xchg(ctx_sha256, u1, BY_OCSP, &x)) {
        is_int(xcheck(ctx_sha256, u1, &x, now, &ri), JPKI_OK,
               "SHA-256 CertID request and answer: ok");
        is_int(ri.status, JPKI_REV_GOOD, "SHA-256 CertID: good");
        x.st.sha256 = 0;
        is_int(xcheck(ctx, u1, &x, now, &ri), JPKI_OK,
               "answer in SHA-256 while SHA-1 was expected: found too");
    } else {
        ok(0, "sha256 exchange");
    }
    xfree(&x);
    if (xchg(ctx, u1, BY_OCSP, &x)) {
        x.st.sha256 = 1;
        is_int(xcheck(ctx_sha256, u1, &x, now, &ri), JPKI_OK,
               "answer in SHA-1 while SHA-256 was expected: found too");
        is_int(jpki_ocsp_check(ctx, u1, NULL, x.resp, x.resplen, now, &ri),
               JPKI_OK, "no state: policy hash, no nonce: ok");
    } else {
        ok(0, "sha1 exchange");
    }
    xfree(&x);
    jpki_cert_free(u2);
}

static void t_nonce(const jpki_ctx *ctx, const jpki_ctx *ctx_nonce,
                    const jpki_cert *u1)
{
    exchange a, b, plain;
    jpki_rev_info ri;

    if (!ok(xchg(ctx_nonce, u1, BY_OCSP, &a) &&
            xchg(ctx_nonce, u1, BY_OCSP, &b) &&
            xchg(ctx, u1, BY_OCSP, &plain), "nonce exchanges"))
        goto out;
    is_int(xcheck(ctx_nonce, u1, &a, now, &ri), JPKI_OK,
           "nonce echoed: ok");
    is_int(jpki_ocsp_check(ctx_nonce, u1, &b.st, a.resp, a.resplen, now,
                           &ri), JPKI_ERR_OCSP_NONCE,
           "another request's nonce: ocsp_nonce");
    is_int(jpki_ocsp_check(ctx_nonce, u1, &a.st, plain.resp, plain.resplen,
                           now, &ri), JPKI_ERR_OCSP_NONCE,
           "nonce sent, none in the answer: ocsp_nonce");
    is_int(jpki_ocsp_check(ctx, u1, &plain.st, a.resp, a.resplen, now, &ri),
           JPKI_OK, "no nonce sent, one in the answer: ok");
out:
    xfree(&a);
    xfree(&b);
    xfree(&plain);
}

static void t_times(const jpki_ctx *ctx, const jpki_cert *u1)
{
    exchange x;
    jpki_rev_info ri;
    int64_t tu, nu;

    if (!ok(xchg(ctx, u1, BY_OCSP, &x), "exchange for times"))
        return;
    xcheck(ctx, u1, &x, now, &ri);
    tu = ri.this_update;
    nu = ri.next_update;
    is_int(xcheck(ctx, u1, &x, (time_t)nu + 299, &ri), JPKI_OK,
           "nextUpdate + 299 s (clock_skew 300): ok");
    is_int(ri.cache_ttl, 0, "past nextUpdate: cache_ttl 0");
    is_int(xcheck(ctx, u1, &x, (time_t)nu + 301, &ri), JPKI_ERR_OCSP_STALE,
           "nextUpdate + 301 s: ocsp_stale");
    is_int(xcheck(ctx, u1, &x, (time_t)tu - 299, &ri), JPKI_OK,
           "thisUpdate - 299 s: ok");
    is_int(xcheck(ctx, u1, &x, (time_t)tu - 301, &ri), JPKI_ERR_OCSP_STALE,
           "thisUpdate - 301 s (answer from the future): ocsp_stale");
    ok(ri.status != JPKI_REV_GOOD && ri.cache_ttl == 0,
       "rejected: status not good, cache_ttl 0");
    xfree(&x);

    /* no nextUpdate: fresh for ocsp_good_max_ttl (+ clock_skew) */
    if (!ok(xchg(ctx, u1, "-index ca2-index.txt -CA ca2.pem "
                          "-rsigner ocsp.pem -rkey ocsp.key", &x),
            "exchange without nextUpdate"))
        return;
    is_int(xcheck(ctx, u1, &x, now, &ri), JPKI_OK, "no nextUpdate: ok");
    is_int(ri.next_update, 0, "next_update 0");
    tu = ri.this_update;
    is_int(xcheck(ctx, u1, &x, (time_t)tu + 1000, &ri), JPKI_OK,
           "1000 s later: ok");
    is_int(ri.cache_ttl, 2600, "cache_ttl = thisUpdate + good_max_ttl - now");
    is_int(xcheck(ctx, u1, &x, (time_t)tu + 3600 + 299, &ri), JPKI_OK,
           "thisUpdate + max ttl + 299 s: ok");
    is_int(xcheck(ctx, u1, &x, (time_t)tu + 3600 + 301, &ri),
           JPKI_ERR_OCSP_STALE, "thisUpdate + max ttl + 301 s: ocsp_stale");
    xfree(&x);
}

/* ca2.crl's thisUpdate is one minute before the PKI script ended. */
static time_t pki_made(void)
{
    size_t len;
    uint8_t *der = read_all(tap_path("ca2.crl"), &len);
    const unsigned char *p = der;
    X509_CRL *crl = der ? d2i_X509_CRL(NULL, &p, (long)len) : NULL;
    struct tm tm;
    time_t t = time(NULL);

    if (crl != NULL && ASN1_TIME_to_tm(X509_CRL_get0_lastUpdate(crl), &tm))
        t = timegm(&tm) + 60;
    X509_CRL_free(crl);
    free(der);
    return t;
}

int main(void)
{
    jpki_ctx *ctx, *ctx_nonce, *ctx_sha256, *ctx_sha1;
    jpki_cert *u1;

    now = time(NULL);
    pki_time = pki_made();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/jpki-ocsp-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    ctx = mkctx(0, 0, 0);
    ctx_nonce = mkctx(1, 0, 0);
    ctx_sha256 = mkctx(0, 1, 0);
    ctx_sha1 = mkctx(0, 0, 1);
    u1 = ctx ? check_cert(ctx, "user1.pem") : NULL;
    if (!ok(ctx && ctx_nonce && ctx_sha256 && ctx_sha1 && u1,
            "test PKI loads (%s)",
            tap_pki_dir()))
        return done_testing();

    t_request(ctx, ctx_nonce, ctx_sha256, u1);
    t_status(ctx, u1);
    {
        jpki_cert *c1 = check_cert(ctx_sha1, "user1.pem");
        is_int(one(ctx_sha1, c1, BY_OCSP " -rmd sha1", now, NULL), JPKI_OK,
               "sha1WithRSA with allow_sha1: ok");
        jpki_cert_free(c1);
    }
    t_signers(ctx, u1);
    t_built(ctx, u1);
    t_broken(ctx, u1);
    t_match(ctx, ctx_sha256, u1);
    t_nonce(ctx, ctx_nonce, u1);
    t_times(ctx, u1);

    jpki_cert_free(u1);
    jpki_ctx_free(ctx);
    jpki_ctx_free(ctx_nonce);
    jpki_ctx_free(ctx_sha256);
    jpki_ctx_free(ctx_sha1);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            diag("could not remove the temporary directory");
    }
    return done_testing();
}
