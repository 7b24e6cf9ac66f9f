/* cert.c - end-entity certificate validation and the verified-chain cache. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- verified-chain cache ---------------------------------------- */

/* Direct-mapped by fingerprint: a repeat login of the same certificate skips
 * path building and the CA signature checks.  Entries carry the window in
 * which the path was valid; outside it the cache is not used. */
typedef struct {
    uint8_t fp[32];
    int used;
    X509 *leaf;
    X509 *issuer_cert;
    const struct jpki_issuer *issuer;
    uint8_t issuer_key_hash[20];
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    int64_t valid_from, valid_to;
} cache_entry;

struct jpki_chain_cache {
    pthread_mutex_t mu;
    size_t n;
    cache_entry e[];
};

jpki_chain_cache *jpki_chain_cache_new(size_t n)
{
    jpki_chain_cache *c;
    if (n > (1u << 20))
        n = 1u << 20;
    c = calloc(1, sizeof(*c) + n * sizeof(cache_entry));
    if (c == NULL)
        return NULL;
    c->n = n;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_clear(cache_entry *e)
{
    X509_free(e->leaf);
    X509_free(e->issuer_cert);
    memset(e, 0, sizeof(*e));
}

void jpki_chain_cache_free(jpki_chain_cache *c)
{
    size_t i;
    if (c == NULL)
        return;
    for (i = 0; i < c->n; i++)
        entry_clear(&c->e[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t slot_of(const jpki_chain_cache *c, const uint8_t fp[32])
{
    uint64_t v;
    memcpy(&v, fp, sizeof(v));
    return (size_t)(v % c->n);
}

static int cache_get(jpki_chain_cache *c, const uint8_t fp[32], time_t now,
                     struct jpki_cert *out)
{
    cache_entry *e;
    int hit = 0;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    e = &c->e[slot_of(c, fp)];
    if (e->used && memcmp(e->fp, fp, 32) == 0 && now >= e->valid_from
        && now < e->valid_to) {   /* X509_verify_cert: expired at notAfter */
        X509_up_ref(e->leaf);
        X509_up_ref(e->issuer_cert);
        out->x509 = e->leaf;
        out->issuer_cert = e->issuer_cert;
        out->issuer = e->issuer;
        memcpy(out->issuer_key_hash, e->issuer_key_hash, 20);
        memcpy(out->cert_id, e->cert_id, sizeof(out->cert_id));
        out->not_after = (time_t)e->valid_to;
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void cache_put(jpki_chain_cache *c, const uint8_t fp[32],
                      const struct jpki_cert *v, int64_t from, int64_t to)
{
    cache_entry *e;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    e = &c->e[slot_of(c, fp)];
    entry_clear(e);
    memcpy(e->fp, fp, 32);
    X509_up_ref(v->x509);
    X509_up_ref(v->issuer_cert);
    e->leaf = v->x509;
    e->issuer_cert = v->issuer_cert;
    e->issuer = v->issuer;
    memcpy(e->issuer_key_hash, v->issuer_key_hash, 20);
    memcpy(e->cert_id, v->cert_id, sizeof(e->cert_id));
    e->valid_from = from;
    e->valid_to = to;
    e->used = 1;
    pthread_mutex_unlock(&c->mu);
}

/* ---- leaf checks -------------------------------------------------- */

static jpki_err check_key(EVP_PKEY *k, char *detail, size_t dl)
{
    char group[64];
    size_t gl = 0;
    int bits;

    if (k == NULL)          /* a type libctx.c does not decode */
        goto refused;
    bits = EVP_PKEY_get_bits(k);
    if (EVP_PKEY_is_a(k, "RSA")) {
        if (bits < 2048 || bits > 8192) {
            jpki_set_detail(detail, dl, "RSA key of %d bits (2048..8192 "
                            "allowed)", bits);
            return JPKI_ERR_CERT_KEY;
        }
        return JPKI_OK;
    }
    if (EVP_PKEY_is_a(k, "EC")
        && EVP_PKEY_get_group_name(k, group, sizeof(group), &gl) == 1
        && (strcmp(group, "prime256v1") == 0
            || strcmp(group, "secp384r1") == 0))
        return JPKI_OK;
refused:
    jpki_set_detail(detail, dl, "key type not allowed (RSA >= 2048 bits, EC "
                    "P-256 or P-384)");
    return JPKI_ERR_CERT_KEY;
}

static int has_policy(X509 *x, const ASN1_OBJECT *want)
{
    CERTIFICATEPOLICIES *cp;
    int i, crit = 0, found = 0;

    cp = X509_get_ext_d2i(x, NID_certificate_policies, &crit, NULL);
    if (cp == NULL)
        return 0;
    for (i = 0; i < sk_POLICYINFO_num(cp); i++)
        if (OBJ_cmp(sk_POLICYINFO_value(cp, i)->policyid, want) == 0)
            found = 1;
    CERTIFICATEPOLICIES_free(cp);
    return found;
}

static jpki_err check_leaf(const struct jpki_issuer *is, X509 *x,
                           char *detail, size_t dl)
{
    uint32_t fl = X509_get_extension_flags(x);   /* also caches extensions */

    if (fl & EXFLAG_INVALID) {
        jpki_set_detail(detail, dl, "certificate extensions are malformed");
        return JPKI_ERR_CERT_PARSE;
    }
    if (X509_check_ca(x) != 0 || (fl & EXFLAG_CA)) {   /* cA TRUE, any KU */
        jpki_set_detail(detail, dl, "a CA certificate cannot log in");
        return JPKI_ERR_CERT_IS_CA;
    }
    if ((fl & EXFLAG_KUSAGE)
        && !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE)) {
        jpki_set_detail(detail, dl, "keyUsage lacks digitalSignature");
        return JPKI_ERR_CERT_KEY_USAGE;
    }
    if (is->policy != NULL && !has_policy(x, is->policy)) {
        jpki_set_detail(detail, dl, "certificate lacks policy %s (issuer "
                        "\"%s\")", is->policy_oid, is->name);
        return JPKI_ERR_CERT_POLICY;
    }
    return check_key(X509_get0_pubkey(x), detail, dl);
}

/* ---- path --------------------------------------------------------- */

static int try_verify_cert(void *ud, EVP_PKEY *key)
{
    return X509_verify((X509 *)ud, key) == 1;
}

static jpki_err map_verify_error(int err, int depth, char *detail, size_t dl)
{
    jpki_set_detail(detail, dl, "path check failed at depth %d: %s", depth,
                    X509_verify_cert_error_string(err));
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return JPKI_ERR_CERT_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return JPKI_ERR_CERT_NOT_YET_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        return JPKI_ERR_CERT_UNKNOWN_ISSUER;
    default:
        return JPKI_ERR_CERT_CHAIN;
    }
}

/* ---- algorithm strength of the path ------------------------------ */

/* A key that signs a certificate of the path (a CA key, the anchor's too):
 * RSA of at least 2048 bits, EC of at least 256 (P-256 and up), any other
 * type at least 128 bits of security (Ed25519, Ed448). */
static int signing_key_strong(EVP_PKEY *k)
{
    if (k == NULL)
        return 0;
    if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS"))
        return EVP_PKEY_get_bits(k) >= 2048;
    if (EVP_PKEY_is_a(k, "EC"))
        return EVP_PKEY_get_bits(k) >= 256;
    return EVP_PKEY_get_security_bits(k) >= 128;
}

/* "the leaf certificate", "the link or intermediate certificate at depth
 * N", "the trust anchor": which certificate of a path of n a detail names. */
static const char *path_role(int depth, int n, char *buf, size_t len)
{
    if (depth == 0)
        return "the leaf certificate";
    if (depth == n - 1)
        return "the trust anchor";
    snprintf(buf, len, "the link or intermediate certificate at depth %d",
             depth);
    return buf;
}

/* Every certificate of a verified chain (leaf first, anchor last) is signed
 * with a digest of at least 128 bits of security (SHA-256 or stronger,
 * per X509_get_signature_info: SHA-1 counts 63, SHA-224 112) and every key
 * that signs one is strong.  The anchor's own self-signature is not
 * checked: anchors are trusted by configuration. */
static jpki_err check_path_algs(STACK_OF(X509) *chain, char *detail,
                                size_t dl)
{
    int i, n = sk_X509_num(chain);
    char role[64];

    for (i = 0; i < n; i++) {
        X509 *y = sk_X509_value(chain, i);
        int secbits = -1, anchor_self = i == n - 1 && X509_self_signed(y, 0);
        uint32_t flags = 0;
        EVP_PKEY *k = X509_get0_pubkey(y);

        if (!anchor_self
            && (X509_get_signature_info(y, NULL, NULL, &secbits, &flags) != 1
                || !(flags & X509_SIG_INFO_VALID) || secbits < 128)) {
            int nid = X509_get_signature_nid(y);
            jpki_set_detail(detail, dl, "%s is signed with %s (digests "
                            "weaker than SHA-256 are refused)",
                            path_role(i, n, role, sizeof(role)),
                            nid != NID_undef ? OBJ_nid2ln(nid)
                                             : "an unknown algorithm");
            return JPKI_ERR_CERT_SIG_ALG;
        }
        if (i > 0 && !signing_key_strong(k)) {
            jpki_set_detail(detail, dl, "%s has a key too weak to sign "
                            "certificates (%s, %d bits; CA keys: RSA >= 2048 "
                            "bits, EC >= P-256)",
                            path_role(i, n, role, sizeof(role)),
                            k != NULL ? EVP_PKEY_get0_type_name(k) : "missing",
                            k != NULL ? EVP_PKEY_get_bits(k) : 0);
            return JPKI_ERR_CERT_SIG_ALG;
        }
    }
    return JPKI_OK;
}

/* Builds and checks the path; fills issuer_cert and the validity window. */
static jpki_err verify_path(const struct jpki_issuer *is, X509 *x, time_t now,
                            struct jpki_cert *c, int64_t *from, int64_t *to,
                            char *detail, size_t dl)
{
    X509_STORE_CTX *sc = X509_STORE_CTX_new_ex(jpki_libctx(), NULL);
    STACK_OF(X509) *chain;
    jpki_err e = JPKI_OK;
    int i;

    if (sc == NULL || X509_STORE_CTX_init(sc, is->store, x, is->links) != 1) {
        X509_STORE_CTX_free(sc);
        return JPKI_ERR_NOMEM;
    }
    X509_STORE_CTX_set_time(sc, 0, now);
    if (X509_verify_cert(sc) != 1) {
        e = map_verify_error(X509_STORE_CTX_get_error(sc),
                             X509_STORE_CTX_get_error_depth(sc), detail, dl);
        X509_STORE_CTX_free(sc);
        ERR_clear_error();
        return e;
    }
    chain = X509_STORE_CTX_get0_chain(sc);
    if (sk_X509_num(chain) < 2) {
        X509_STORE_CTX_free(sc);
        return JPKI_ERR_CERT_CHAIN;
    }
    e = check_path_algs(chain, detail, dl);   /* before anything is cached */
    if (e != JPKI_OK) {
        X509_STORE_CTX_free(sc);
        ERR_clear_error();
        return e;
    }
    c->issuer_cert = sk_X509_value(chain, 1);
    X509_up_ref(c->issuer_cert);
    *from = INT64_MIN;
    *to = INT64_MAX;
    for (i = 0; i < sk_X509_num(chain); i++) {
        X509 *y = sk_X509_value(chain, i);
        int64_t nb = jpki_asn1_time_to_epoch(X509_get0_notBefore(y));
        int64_t na = jpki_asn1_time_to_epoch(X509_get0_notAfter(y));
        if (nb > *from) *from = nb;
        if (na < *to) *to = na;
    }
    X509_STORE_CTX_free(sc);
    return e;
}

static jpki_err compute_id(const jpki_ctx *ctx, struct jpki_cert *c)
{
    const ASN1_INTEGER *sn = X509_get0_serialNumber(c->x509);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    uint8_t buf[64];
    int n;
    jpki_err e;

    if (bn == NULL)
        return JPKI_ERR_CERT_PARSE;
    n = BN_num_bytes(bn);
    if (n > (int)sizeof(buf)) {
        BN_clear_free(bn);   /* held a serial */
        return JPKI_ERR_CERT_PARSE;
    }
    BN_bn2bin(bn, buf);
    BN_clear_free(bn);   /* held a serial */
    if (!jpki_key_hash_sha1(c->issuer_cert, c->issuer_key_hash))
        return JPKI_ERR_INTERNAL;
    e = jpki_cert_id_compute(ctx, c->issuer_key_hash, 20, buf, (size_t)n,
                             c->cert_id);
    OPENSSL_cleanse(buf, sizeof(buf));
    return e;
}

/* The issuer is found by the key that signed x.  When the AKI allows one
 * configured key only, the path check verifies that signature (every
 * signature of the path is), so a login does not verify it twice; any
 * refusal then verifies it first, so that a certificate no configured key
 * signed is refused as such (UNKNOWN_ISSUER) whatever else is wrong with
 * it, as when the key is found by trying each. */
static jpki_err check_parsed(const jpki_ctx *ctx, X509 *x, time_t now,
                             struct jpki_cert *c, int64_t *from, int64_t *to,
                             char *detail, size_t dl)
{
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    const struct jpki_issuer *is;
    X509 *ca = NULL;
    int tried = 0;
    jpki_err e;

    is = jpki_find_issuer_by_key(ctx, aki, NULL, NULL, &ca);
    if (is == NULL) {
        is = jpki_find_issuer_by_key(ctx, aki, try_verify_cert, x, &ca);
        tried = 1;
    }
    if (is != NULL) {
        c->issuer = is;
        e = check_leaf(is, x, detail, dl);
        if (e == JPKI_OK)
            e = verify_path(is, x, now, c, from, to, detail, dl);
        if (e == JPKI_OK || tried
            || try_verify_cert(x, X509_get0_pubkey(ca))) {
            ERR_clear_error();
            return e == JPKI_OK ? compute_id(ctx, c) : e;
        }
        ERR_clear_error();
    }
    jpki_set_detail(detail, dl, "no configured CA key signed this "
                    "certificate");
    return JPKI_ERR_CERT_UNKNOWN_ISSUER;
}

jpki_err jpki_cert_check(const jpki_ctx *ctx, const uint8_t *in, size_t len,
                         time_t now, jpki_cert **out, char *detail,
                         size_t detaillen)
{
    struct jpki_cert *c;
    uint8_t *der = NULL, fp[32];
    size_t derlen = 0;
    unsigned int fplen = 0;
    int64_t from, to;
    jpki_err e;

    *out = NULL;
    if (!ctx->finished)
        return JPKI_ERR_INVALID;
    e = jpki_to_der(in, len, "CERTIFICATE", JPKI_MAX_CERT_LEN, &der, &derlen);
    if (e != JPKI_OK) {
        jpki_set_detail(detail, detaillen, "certificate is not DER, PEM or "
                        "base64 of at most %d bytes", JPKI_MAX_CERT_LEN);
        return e == JPKI_ERR_NOMEM || e == JPKI_ERR_TOO_LARGE ? e
               : JPKI_ERR_CERT_PARSE;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL
        || EVP_Digest(der, derlen, fp, &fplen, jpki_md(JPKI_MD_SHA256),
                      NULL) != 1) {
        free(der);
        free(c);
        return JPKI_ERR_NOMEM;
    }
    if (cache_get(ctx->cache, fp, now, c)) {
        free(der);
        c->cached = 1;
        goto done;
    }
    c->x509 = jpki_d2i_x509(der, derlen);
    if (c->x509 == NULL) {
        free(der);
        jpki_cert_free(c);
        ERR_clear_error();
        jpki_set_detail(detail, detaillen, "certificate DER does not parse");
        return JPKI_ERR_CERT_PARSE;
    }
    free(der);
    e = check_parsed(ctx, c->x509, now, c, &from, &to, detail, detaillen);
    if (e != JPKI_OK) {
        jpki_cert_free(c);
        ERR_clear_error();
        return e;
    }
    c->not_after = (time_t)to;
    cache_put(ctx->cache, fp, c, from, to);
done:
    c->pkey = X509_get_pubkey(c->x509);
    if (c->pkey == NULL) {
        jpki_cert_free(c);
        return JPKI_ERR_CERT_PARSE;
    }
    *out = c;
    return JPKI_OK;
}

void jpki_cert_free(jpki_cert *c)
{
    if (c == NULL)
        return;
    X509_free(c->x509);
    X509_free(c->issuer_cert);
    EVP_PKEY_free(c->pkey);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

const jpki_issuer *jpki_cert_issuer(const jpki_cert *c) { return c->issuer; }
const char *jpki_cert_id_hex(const jpki_cert *c) { return c->cert_id; }
time_t jpki_cert_not_after(const jpki_cert *c) { return c->not_after; }
int jpki_cert_cached(const jpki_cert *c) { return c->cached; }

/* ---- cert_id ------------------------------------------------------ */

jpki_err jpki_cert_id_compute(const jpki_ctx *ctx,
                              const uint8_t *issuer_key_hash, size_t ikhlen,
                              const uint8_t *serial, size_t seriallen,
                              char out[JPKI_CERT_ID_HEX_LEN + 1])
{
    uint8_t mac[32];

    while (seriallen > 0 && serial[0] == 0) {   /* canonical magnitude */
        serial++;
        seriallen--;
    }
    if (ctx->secret_len == 0 || ikhlen != 20 || seriallen > 64)
        return JPKI_ERR_INVALID;
    if (!jpki_hmac_sha256(ctx->secret, ctx->secret_len, issuer_key_hash,
                          ikhlen, serial, seriallen, mac))
        return JPKI_ERR_INTERNAL;
    jpki_hex_encode(mac, JPKI_CERT_ID_LEN, out);
    OPENSSL_cleanse(mac, sizeof(mac));
    return JPKI_OK;
}

/* For operators: a serial typed in decimal or 0x-hex, of a certificate
 * issued by the issuer's last anchor (the newest CA generation listed):
 * the cert_id depends on the issuing key, so a certificate of an older
 * generation needs that CA listed last (or the certificate itself). */
jpki_err jpki_cert_id_from_serial_text(const jpki_ctx *ctx,
                                       const jpki_issuer *is,
                                       const char *serial_text,
                                       char out[JPKI_CERT_ID_HEX_LEN + 1])
{
    BIGNUM *bn = NULL;
    uint8_t buf[64], kh[20];
    int n, ok;
    X509 *ca;
    jpki_err e;

    if (serial_text == NULL || strlen(serial_text) == 0
        || strlen(serial_text) > 160 || sk_X509_num(is->anchors) == 0)
        return JPKI_ERR_INVALID;
    if (strncmp(serial_text, "0x", 2) == 0 || strncmp(serial_text, "0X", 2) == 0)
        ok = BN_hex2bn(&bn, serial_text + 2) == (int)strlen(serial_text + 2);
    else
        ok = BN_dec2bn(&bn, serial_text) == (int)strlen(serial_text);
    if (!ok || bn == NULL || BN_is_negative(bn)
        || BN_num_bytes(bn) > (int)sizeof(buf)) {
        BN_clear_free(bn);   /* held a serial */
        return JPKI_ERR_PARSE;
    }
    n = BN_bn2bin(bn, buf);
    BN_clear_free(bn);   /* held a serial */
    ca = sk_X509_value(is->anchors, sk_X509_num(is->anchors) - 1);
    if (!jpki_key_hash_sha1(ca, kh))
        return JPKI_ERR_INTERNAL;
    e = jpki_cert_id_compute(ctx, kh, sizeof(kh), buf, (size_t)n, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    return e;
}

/* ---- revocation reference (sealed in sessions) -------------------- */

/* ref = issuer key hash (20) | serial magnitude (1..33). */
jpki_err jpki_cert_ref(const jpki_cert *c, uint8_t *ref, size_t max,
                       size_t *len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c->x509), NULL);
    int n;

    if (bn == NULL)
        return JPKI_ERR_INTERNAL;
    n = BN_num_bytes(bn);
    if (n < 1 || (size_t)n + 20 > max) {
        BN_clear_free(bn);   /* held a serial */
        return JPKI_ERR_TOO_LARGE;
    }
    memcpy(ref, c->issuer_key_hash, 20);
    BN_bn2bin(bn, ref + 20);
    BN_clear_free(bn);   /* held a serial */
    *len = 20 + (size_t)n;
    return JPKI_OK;
}

/* A certificate stand-in made from a reference: enough for OCSP (issuer
 * name, serial, issuing CA) and for cert_id; its signature is not valid.
 * JPKI_ERR_CERT_SIG_ALG when the issuing CA's key is too weak to sign
 * (as in check_path_algs). */
jpki_err jpki_cert_from_ref(const jpki_ctx *ctx, const uint8_t *ref,
                            size_t len, jpki_cert **out)
{
    struct jpki_cert *c;
    ASN1_INTEGER *sn = NULL;
    BIGNUM *bn = NULL;
    uint8_t kh[20];
    size_t i;
    int j, ok = 0;

    *out = NULL;
    if (len < 21 || len > 53)
        return JPKI_ERR_SESSION_FORMAT;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return JPKI_ERR_NOMEM;
    for (i = 0; i < ctx->n_issuers && c->issuer_cert == NULL; i++)
        for (j = 0; j < sk_X509_num(ctx->issuers[i]->all); j++) {
            X509 *ca = sk_X509_value(ctx->issuers[i]->all, j);
            if (jpki_key_hash_sha1(ca, kh) && memcmp(kh, ref, 20) == 0) {
                c->issuer_cert = ca;
                c->issuer = ctx->issuers[i];
                X509_up_ref(ca);
                break;
            }
        }
    if (c->issuer_cert == NULL) {
        free(c);
        return JPKI_ERR_CERT_UNKNOWN_ISSUER;
    }
    /* the one part of the path rule a reference can show: a session made
     * under a CA key now too weak is refused at its next re-check */
    if (!signing_key_strong(X509_get0_pubkey(c->issuer_cert))) {
        jpki_cert_free(c);
        return JPKI_ERR_CERT_SIG_ALG;
    }
    memcpy(c->issuer_key_hash, ref, 20);
    c->x509 = X509_new();
    bn = BN_bin2bn(ref + 20, (int)(len - 20), NULL);
    if (c->x509 != NULL && bn != NULL && (sn = BN_to_ASN1_INTEGER(bn, NULL))
        && X509_set_serialNumber(c->x509, sn) == 1
        && X509_set_issuer_name(c->x509,
                                X509_get_subject_name(c->issuer_cert)) == 1
        && jpki_cert_id_compute(ctx, kh, 20, ref + 20, len - 20, c->cert_id)
           == JPKI_OK)
        ok = 1;
    ASN1_INTEGER_free(sn);
    BN_clear_free(bn);   /* held a serial */
    if (!ok) {
        jpki_cert_free(c);
        return JPKI_ERR_INTERNAL;
    }
    *out = c;
    return JPKI_OK;
}
