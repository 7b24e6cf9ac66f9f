/*
 * ocsp.c - OCSP requests and responses (RFC 6960) for a verified end-entity
 * certificate.
 *
 * A response is accepted only when it is signed by the CA that issued the
 * certificate (c->issuer_cert: all J-LIS key generations share one DN, so
 * the CA is identified by its key, never by its name alone) or by a
 * delegated responder certificate included in the response that the same CA
 * key issued, that carries id-kp-OCSPSigning and that is valid at now.
 * Signature algorithms: RSA PKCS#1 v1.5 or ECDSA with SHA-256/384/512,
 * SHA-1 only with policy.allow_sha1 (else JPKI_ERR_OCSP_SIGNATURE).
 *
 * Error codes: JPKI_ERR_OCSP_SIGNER when the ResponderID names neither the
 * issuing CA nor an acceptable delegated responder included in the
 * response; JPKI_ERR_OCSP_SIGNATURE when it names one whose key does not
 * verify the signature (e.g. another CA using the J-LIS DN, named by DN).
 *
 * Time window (clock_skew = policy.clock_skew):
 *   thisUpdate <= now + clock_skew, and
 *   nextUpdate >= now - clock_skew when nextUpdate is present; when it is
 *   absent, thisUpdate >= now - (ocsp_good_max_ttl + clock_skew): an answer
 *   without a nextUpdate is "fresh" for ocsp_good_max_ttl only.
 * Anything outside is JPKI_ERR_OCSP_STALE.
 *
 * A valid response returns JPKI_OK whatever the certificate status: the
 * status (good / revoked / hold / unknown) is in info and the caller
 * decides.  Serial numbers never appear in logs or details.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>

/* ------------------------------------------------------------------ */
/* Request                                                             */
/* ------------------------------------------------------------------ */

static const EVP_MD *certid_md(int sha256)
{
    return sha256 ? EVP_sha256() : EVP_sha1();
}

static jpki_err der_of_request(OCSP_REQUEST *req, uint8_t **der, size_t *len)
{
    int n = i2d_OCSP_REQUEST(req, NULL);
    uint8_t *buf, *p;

    if (n <= 0)
        return JPKI_ERR_INTERNAL;
    buf = malloc((size_t)n);
    if (buf == NULL)
        return JPKI_ERR_NOMEM;
    p = buf;
    if (i2d_OCSP_REQUEST(req, &p) != n) {
        free(buf);
        return JPKI_ERR_INTERNAL;
    }
    *der = buf;
    *len = (size_t)n;
    return JPKI_OK;
}

jpki_err jpki_ocsp_request(const jpki_ctx *ctx, const jpki_cert *c,
                           jpki_ocsp_state *st, uint8_t **der, size_t *len)
{
    OCSP_REQUEST *req = NULL;
    OCSP_CERTID *id = NULL;
    jpki_err e = JPKI_ERR_NOMEM;

    if (der != NULL)
        *der = NULL;
    if (len != NULL)
        *len = 0;
    if (ctx == NULL || c == NULL || c->x509 == NULL ||
        c->issuer_cert == NULL || st == NULL || der == NULL || len == NULL)
        return JPKI_ERR_INVALID;

    memset(st, 0, sizeof(*st));
    st->sha256 = ctx->policy.ocsp_sha256_certid ? 1 : 0;

    req = OCSP_REQUEST_new();
    id = OCSP_cert_to_id(certid_md(st->sha256), c->x509, c->issuer_cert);
    if (req == NULL || id == NULL)
        goto out;
    if (OCSP_request_add0_id(req, id) == NULL)
        goto out;
    id = NULL;                              /* owned by req */

    if (ctx->policy.ocsp_nonce) {
        if (!jpki_random(st->nonce, sizeof(st->nonce))) {
            e = JPKI_ERR_INTERNAL;
            goto out;
        }
        if (!OCSP_request_add1_nonce(req, st->nonce, (int)sizeof(st->nonce)))
            goto out;
        st->has_nonce = 1;
    }
    e = der_of_request(req, der, len);

out:
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    if (e != JPKI_OK) {
        memset(st, 0, sizeof(*st));
        ERR_clear_error();
    }
    return e;
}

/* ------------------------------------------------------------------ */
/* Response: signer                                                    */
/* ------------------------------------------------------------------ */

/* Does the ResponderID of bs name x (by key hash or by name)? */
static int responder_id_matches(const OCSP_BASICRESP *bs, X509 *x,
                                const uint8_t *key_hash)
{
    const ASN1_OCTET_STRING *keyid = NULL;
    const X509_NAME *name = NULL;
    uint8_t h[20];

    if (!OCSP_resp_get0_id(bs, &keyid, &name))
        return 0;
    if (keyid != NULL) {
        if (key_hash == NULL) {
            if (!jpki_key_hash_sha1(x, h))
                return 0;
            key_hash = h;
        }
        return ASN1_STRING_length(keyid) == 20 &&
               memcmp(ASN1_STRING_get0_data(keyid), key_hash, 20) == 0;
    }
    return name != NULL &&
           X509_NAME_cmp(name, X509_get_subject_name(x)) == 0;
}

/* 1 when the response signature verifies with x's public key. */
static int response_signed_by(const OCSP_BASICRESP *bs, X509 *x)
{
    EVP_PKEY *key = X509_get0_pubkey(x);
    const X509_ALGOR *alg = OCSP_resp_get0_tbs_sigalg(bs);
    const ASN1_OCTET_STRING *sig = OCSP_resp_get0_signature(bs);
    const OCSP_RESPDATA *tbs = OCSP_resp_get0_respdata(bs);

    if (key == NULL || alg == NULL || sig == NULL || tbs == NULL)
        return 0;
    return ASN1_item_verify(ASN1_ITEM_rptr(OCSP_RESPDATA), alg, sig, tbs,
                            key) == 1;
}

static int valid_at(X509 *x, time_t now)
{
    int64_t nb = jpki_asn1_time_to_epoch(X509_get0_notBefore(x));
    int64_t na = jpki_asn1_time_to_epoch(X509_get0_notAfter(x));

    return nb >= 0 && na >= 0 && nb <= (int64_t)now && (int64_t)now <= na;
}

/* A delegated responder: issued by ca (name and AKI/SKI, and the signature
 * verifies with ca's key), id-kp-OCSPSigning, digitalSignature when a
 * keyUsage is present, valid at now. */
static int delegated_ok(X509 *r, X509 *ca, time_t now)
{
    EVP_PKEY *cakey = X509_get0_pubkey(ca);
    uint32_t fl = X509_get_extension_flags(r);

    if (cakey == NULL || (fl & EXFLAG_INVALID) != 0)
        return 0;
    if (X509_check_issued(ca, r) != X509_V_OK)
        return 0;
    if (X509_verify(r, cakey) != 1)
        return 0;
    if ((fl & EXFLAG_XKUSAGE) == 0 ||
        (X509_get_extended_key_usage(r) & XKU_OCSP_SIGN) == 0)
        return 0;
    if ((fl & EXFLAG_KUSAGE) != 0 &&
        (X509_get_key_usage(r) & KU_DIGITAL_SIGNATURE) == 0)
        return 0;
    return valid_at(r, now);
}

/* RSA PKCS#1 v1.5 or ECDSA with SHA-256/384/512, SHA-1 only when allowed
 * (the algorithms crl.c accepts too). */
static int sig_alg_ok(const OCSP_BASICRESP *bs, int allow_sha1)
{
    const X509_ALGOR *alg = OCSP_resp_get0_tbs_sigalg(bs);
    const ASN1_OBJECT *obj;
    int md = NID_undef, pk = NID_undef;

    if (alg == NULL)
        return 0;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    if (!OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md, &pk) ||
        (pk != NID_rsaEncryption && pk != NID_X9_62_id_ecPublicKey))
        return 0;
    return md == NID_sha256 || md == NID_sha384 || md == NID_sha512 ||
           (md == NID_sha1 && allow_sha1);
}

/*
 * Finds who signed bs.  JPKI_OK when the issuing CA or an acceptable
 * delegated responder named by the ResponderID verifies the signature;
 * JPKI_ERR_OCSP_SIGNATURE when an acceptable signer is named but its key
 * does not verify; JPKI_ERR_OCSP_SIGNER when no acceptable signer is named.
 */
static jpki_err find_signer(const jpki_ctx *ctx, const jpki_cert *c,
                            OCSP_BASICRESP *bs, time_t now)
{
    const STACK_OF(X509) *certs = OCSP_resp_get0_certs(bs);
    jpki_err e = JPKI_ERR_OCSP_SIGNER;
    int i, n;

    if (!sig_alg_ok(bs, (int)ctx->policy.allow_sha1))
        return JPKI_ERR_OCSP_SIGNATURE;

    if (responder_id_matches(bs, c->issuer_cert, c->issuer_key_hash)) {
        if (response_signed_by(bs, c->issuer_cert))
            return JPKI_OK;
        e = JPKI_ERR_OCSP_SIGNATURE;
    }
    n = certs != NULL ? sk_X509_num(certs) : 0;
    for (i = 0; i < n; i++) {
        X509 *r = sk_X509_value(certs, i);

        if (r == NULL || X509_cmp(r, c->issuer_cert) == 0)
            continue;
        if (!responder_id_matches(bs, r, NULL))
            continue;
        if (!delegated_ok(r, c->issuer_cert, now))
            continue;
        if (response_signed_by(bs, r))
            return JPKI_OK;
        e = JPKI_ERR_OCSP_SIGNATURE;
    }
    return e;
}

/* ------------------------------------------------------------------ */
/* Response: our SingleResponse, nonce, times                          */
/* ------------------------------------------------------------------ */

typedef struct {
    int status, reason;
    ASN1_GENERALIZEDTIME *rev, *this_upd, *next_upd;
} single_answer;

static int find_answer(const jpki_cert *c, OCSP_BASICRESP *bs, int sha256,
                       single_answer *a)
{
    OCSP_CERTID *id = OCSP_cert_to_id(certid_md(sha256), c->x509,
                                      c->issuer_cert);
    int found;

    if (id == NULL)
        return -1;
    found = OCSP_resp_find_status(bs, id, &a->status, &a->reason, &a->rev,
                                  &a->this_upd, &a->next_upd);
    OCSP_CERTID_free(id);
    return found == 1;
}

static jpki_err check_nonce(const jpki_ocsp_state *st, OCSP_BASICRESP *bs)
{
    OCSP_REQUEST *req;
    int r;

    if (st == NULL || !st->has_nonce)
        return JPKI_OK;
    req = OCSP_REQUEST_new();
    if (req == NULL)
        return JPKI_ERR_NOMEM;
    if (!OCSP_request_add1_nonce(req, (unsigned char *)st->nonce,
                                 (int)sizeof(st->nonce))) {
        OCSP_REQUEST_free(req);
        return JPKI_ERR_NOMEM;
    }
    r = OCSP_check_nonce(req, bs);       /* 1: present in both, equal */
    OCSP_REQUEST_free(req);
    return r == 1 ? JPKI_OK : JPKI_ERR_OCSP_NONCE;
}

static jpki_err check_times(const jpki_policy *p, const single_answer *a,
                            time_t now, jpki_rev_info *info)
{
    int64_t t = (int64_t)now, skew = p->clock_skew;

    info->this_update = jpki_asn1_time_to_epoch(a->this_upd);
    if (a->this_upd == NULL || info->this_update < 0)
        return JPKI_ERR_OCSP_PARSE;
    if (a->next_upd != NULL) {
        info->next_update = jpki_asn1_time_to_epoch(a->next_upd);
        if (info->next_update < 0)
            return JPKI_ERR_OCSP_PARSE;
    }
    if (info->this_update > t + skew)
        return JPKI_ERR_OCSP_STALE;                /* from the future */
    if (a->next_upd != NULL) {
        if (info->next_update < t - skew)
            return JPKI_ERR_OCSP_STALE;
    } else if (info->this_update < t - skew - (int64_t)p->ocsp_good_max_ttl) {
        return JPKI_ERR_OCSP_STALE;
    }
    return JPKI_OK;
}

static unsigned clamp_ttl(int64_t v, unsigned max)
{
    if (v <= 0)
        return 0;
    return v >= (int64_t)max ? max : (unsigned)v;
}

static void fill_status(const jpki_policy *p, const single_answer *a,
                        time_t now, jpki_rev_info *info)
{
    int64_t until;

    switch (a->status) {
    case V_OCSP_CERTSTATUS_GOOD:
        info->status = JPKI_REV_GOOD;
        until = info->next_update != 0 ? info->next_update
                : info->this_update + (int64_t)p->ocsp_good_max_ttl;
        info->cache_ttl = clamp_ttl(until - (int64_t)now,
                                    p->ocsp_good_max_ttl);
        break;
    case V_OCSP_CERTSTATUS_REVOKED:
        info->reason = a->reason >= 0 ? a->reason : JPKI_REASON_NONE;
        info->revoked_at = a->rev != NULL ? jpki_asn1_time_to_epoch(a->rev)
                                          : 0;
        if (info->revoked_at < 0)
            info->revoked_at = 0;
        if (a->reason == OCSP_REVOKED_STATUS_CERTIFICATEHOLD) {
            info->status = JPKI_REV_HOLD;
            info->cache_ttl = p->ocsp_hold_ttl;
        } else {
            info->status = JPKI_REV_REVOKED;
            info->cache_ttl = p->ocsp_revoked_ttl;
        }
        break;
    default:
        info->status = JPKI_REV_UNKNOWN;
        info->cache_ttl = 0;
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Response: entry point                                               */
/* ------------------------------------------------------------------ */

static jpki_err parse_response(const uint8_t *der, size_t len,
                               OCSP_BASICRESP **bs_out)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *resp;
    OCSP_BASICRESP *bs;

    resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (resp == NULL)
        return JPKI_ERR_OCSP_PARSE;
    if (p != der + len) {
        OCSP_RESPONSE_free(resp);
        return JPKI_ERR_OCSP_PARSE;           /* trailing bytes */
    }
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        OCSP_RESPONSE_free(resp);
        return JPKI_ERR_OCSP_STATUS;
    }
    bs = OCSP_response_get1_basic(resp);
    OCSP_RESPONSE_free(resp);
    if (bs == NULL)
        return JPKI_ERR_OCSP_PARSE;
    *bs_out = bs;
    return JPKI_OK;
}

static jpki_err check_basic(const jpki_ctx *ctx, const jpki_cert *c,
                            const jpki_ocsp_state *st, OCSP_BASICRESP *bs,
                            time_t now, jpki_rev_info *info)
{
    single_answer a;
    int sha256 = st != NULL ? st->sha256 : (int)ctx->policy.ocsp_sha256_certid;
    int found;
    jpki_err e;

    e = find_signer(ctx, c, bs, now);
    if (e != JPKI_OK)
        return e;

    memset(&a, 0, sizeof(a));
    found = find_answer(c, bs, sha256 != 0, &a);
    if (found == 0)                  /* responder used the other hash */
        found = find_answer(c, bs, sha256 == 0, &a);
    if (found < 0)
        return JPKI_ERR_INTERNAL;
    if (found == 0)
        return JPKI_ERR_OCSP_NO_ANSWER;

    e = check_nonce(st, bs);
    if (e != JPKI_OK)
        return e;
    e = check_times(&ctx->policy, &a, now, info);
    if (e != JPKI_OK)
        return e;
    fill_status(&ctx->policy, &a, now, info);
    return JPKI_OK;
}

jpki_err jpki_ocsp_check(const jpki_ctx *ctx, const jpki_cert *c,
                         const jpki_ocsp_state *st, const uint8_t *der,
                         size_t len, time_t now, jpki_rev_info *info)
{
    OCSP_BASICRESP *bs = NULL;
    jpki_err e;

    if (info == NULL)
        return JPKI_ERR_INVALID;
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;
    info->reason = JPKI_REASON_NONE;
    if (ctx == NULL || c == NULL || c->x509 == NULL ||
        c->issuer_cert == NULL || (der == NULL && len != 0))
        return JPKI_ERR_INVALID;
    if (len > JPKI_OCSP_RESP_MAX)
        return JPKI_ERR_TOO_LARGE;
    if (len == 0)
        return JPKI_ERR_OCSP_PARSE;

    e = parse_response(der, len, &bs);
    if (e == JPKI_OK)
        e = check_basic(ctx, c, st, bs, now, info);
    OCSP_BASICRESP_free(bs);
    if (e != JPKI_OK) {
        ERR_clear_error();
        info->status = JPKI_REV_UNKNOWN;
        info->reason = JPKI_REASON_NONE;
        info->revoked_at = 0;
        info->cache_ttl = 0;
        jpki_log(ctx, JPKI_LOG_DEBUG, "ocsp: response rejected: %s",
                 jpki_reason(e));
    }
    return e;
}
