/*
 * crl.c - certificate revocation lists: verification, streaming of the
 * entries, and an in-memory index for O(log n) lookups by cert_id.
 *
 * A J-LIS CRL can hold millions of entries, so the CRL is never turned into
 * an OpenSSL X509_CRL (which builds every entry in memory).  A small DER
 * walker (bounded, no recursion, every length checked against what is left,
 * DER lengths only) splits the CertificateList into its parts; the
 * signature is checked over the exact tbsCertList bytes (digest computed
 * once, then EVP_PKEY_verify with each candidate CA key); the few CRL
 * extensions are decoded by OpenSSL (d2i_X509_EXTENSIONS); the
 * revokedCertificates SEQUENCE is walked entry by entry, and an entry is
 * only reported after its whole encoding was checked.
 *
 * Signature algorithms: RSA PKCS#1 v1.5 or ECDSA with SHA-256/384/512;
 * SHA-1 only with policy.allow_sha1.  Others: JPKI_ERR_CRL_SIGNATURE.
 *
 * Accepted CRLs: complete CRLs only.  Delta CRLs, indirect CRLs (IDP
 * indirectCRL or a certificateIssuer entry extension), CRLs limited to some
 * reasons or to CA / attribute certificates, and any unknown critical
 * extension are rejected (JPKI_ERR_CRL_PARSE): using one as a full CRL would
 * silently miss revocations.
 *
 * Issuer: the CA certificate whose key verifies the signature, looked up by
 * the CRL's AuthorityKeyIdentifier (jpki_find_issuer_by_key); its subject
 * must be the CRL issuer name and its keyUsage (when present) must allow
 * cRLSign, else JPKI_ERR_CRL_ISSUER.  When no key verifies:
 *   JPKI_ERR_CRL_SIGNATURE  a configured CA certificate is the one the CRL
 *                           names (its SKI equals the CRL's AKI keyid, or,
 *                           when the CRL has no AKI keyid, its subject equals
 *                           the CRL issuer): a forged or damaged CRL;
 *   JPKI_ERR_CRL_ISSUER     no configured CA is named: the CRL comes from
 *                           another CA (so ca2-wrongkey.crl, J-LIS DN but
 *                           other-ca's key and AKI, is crl_issuer).
 *
 * Key generations: an entry names (CRL issuer name, serial), and RFC 5280
 * lets a CA sign its CRL with a newer key than the one that issued the
 * certificate.  cert_id is keyed by the issuing key, so every entry is
 * reported (foreach) and indexed once per key of the issuer whose
 * certificate bears the CRL issuer's name: with ca1 and ca2 configured, a
 * ca2-signed CRL also revokes ca1-issued certificates with those serials.
 *
 * Index: 24 bytes per (entry, key): cert_id, revocation date as unsigned
 * 32-bit seconds (clamped to 1970..2106), reason.  When one cert_id is
 * listed twice, a final revocation wins over certificateHold.
 *
 * Serial numbers never leave this file: entries are named by cert_id.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/objects.h>

/* ------------------------------------------------------------------ */
/* DER reader                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} der_t;

#define TAG_BOOLEAN     0x01
#define TAG_INTEGER     0x02
#define TAG_BIT_STRING  0x03
#define TAG_OCTET       0x04
#define TAG_OID         0x06
#define TAG_ENUMERATED  0x0a
#define TAG_UTCTIME     0x17
#define TAG_GENTIME     0x18
#define TAG_SEQUENCE    0x30
#define TAG_CTX0        0xa0

/* Reads one element (low-tag-number form, definite minimal length) from the
 * front of *in.  *val receives the contents, *tlv (may be NULL) the whole
 * element; *in is advanced past it.  0 when malformed or truncated. */
static int der_read(der_t *in, unsigned *tag, der_t *val, der_t *tlv)
{
    const uint8_t *p = in->p;
    size_t n = in->n, len, hl, k, i;

    if (n < 2 || (p[0] & 0x1f) == 0x1f)
        return 0;
    if (p[1] < 0x80) {
        len = p[1];
        hl = 2;
    } else {
        k = p[1] & 0x7f;
        if (k == 0 || k > 4 || n - 2 < k)    /* indefinite or > 4 GiB */
            return 0;
        if (p[2] == 0 || (k == 1 && p[2] < 0x80))
            return 0;                       /* not minimal */
        for (len = 0, i = 0; i < k; i++)
            len = (len << 8) | p[2 + i];
        hl = 2 + k;
    }
    if (len > n - hl)
        return 0;
    *tag = p[0];
    val->p = p + hl;
    val->n = len;
    if (tlv != NULL) {
        tlv->p = p;
        tlv->n = hl + len;
    }
    in->p += hl + len;
    in->n -= hl + len;
    return 1;
}

static int der_expect(der_t *in, unsigned want, der_t *val, der_t *tlv)
{
    unsigned tag;
    der_t save = *in;

    if (der_read(in, &tag, val, tlv) && tag == want)
        return 1;
    *in = save;
    return 0;
}

static int der_peek(const der_t *in)
{
    return in->n > 0 ? in->p[0] : -1;
}

/* ------------------------------------------------------------------ */
/* Times and integers                                                  */
/* ------------------------------------------------------------------ */

static int digits(const uint8_t *s, size_t n, int *out)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : dm[m - 1];
}

/* RFC 5280 Time in DER: UTCTime YYMMDDHHMMSSZ or GeneralizedTime
 * YYYYMMDDHHMMSSZ, to seconds since the epoch.  0 when malformed. */
static int der_time(unsigned tag, der_t v, int64_t *out)
{
    const uint8_t *s = v.p;
    int y, mo, d, h, mi, se, yl = tag == TAG_UTCTIME ? 2 : 4;

    if ((tag != TAG_UTCTIME && tag != TAG_GENTIME) ||
        v.n != (size_t)yl + 11 || s[v.n - 1] != 'Z')
        return 0;
    if (!digits(s, (size_t)yl, &y) || !digits(s + yl, 2, &mo) ||
        !digits(s + yl + 2, 2, &d) || !digits(s + yl + 4, 2, &h) ||
        !digits(s + yl + 6, 2, &mi) || !digits(s + yl + 8, 2, &se))
        return 0;
    if (tag == TAG_UTCTIME)
        y += y >= 50 ? 1900 : 2000;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h > 23 || mi > 59 || se > 59)
        return 0;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 1;
}

static int read_time(der_t *in, int64_t *out)
{
    unsigned tag;
    der_t v;

    return der_read(in, &tag, &v, NULL) && der_time(tag, v, out);
}

#define SERIAL_MAX 64      /* magnitude octets jpki_cert_id_compute takes */

/* INTEGER contents -> big-endian magnitude without leading zero octets (the
 * form cert.c feeds jpki_cert_id_compute: BN_bn2bin of the value).
 * Returns the magnitude length, -1 when malformed, -2 when over out's
 * SERIAL_MAX octets. */
static int serial_magnitude(der_t v, uint8_t out[SERIAL_MAX + 1])
{
    const uint8_t *c = v.p;
    size_t n = v.n, i;
    int carry;

    if (n == 0)
        return -1;
    if (n > 1 && ((c[0] == 0x00 && c[1] < 0x80) ||
                  (c[0] == 0xff && c[1] >= 0x80)))
        return -1;                              /* not minimal */
    if (c[0] < 0x80) {                          /* positive */
        while (n > 0 && c[0] == 0) {
            c++;
            n--;
        }
        if (n > SERIAL_MAX)
            return -2;
        memcpy(out, c, n);
        return (int)n;
    }
    if (n > SERIAL_MAX + 1)
        return -2;
    for (carry = 1, i = n; i-- > 0;) {           /* two's complement */
        int b = (uint8_t)~c[i] + carry;
        out[i] = (uint8_t)b;
        carry = b >> 8;
    }
    for (i = 0; i < n && out[i] == 0; i++)
        ;
    memmove(out, out + i, n - i);
    return n - i > SERIAL_MAX ? -2 : (int)(n - i);
}

/* ------------------------------------------------------------------ */
/* CertificateList                                                     */
/* ------------------------------------------------------------------ */

typedef struct {
    der_t tbs;            /* tbsCertList element: the signed bytes */
    der_t sigalg;         /* outer AlgorithmIdentifier element */
    der_t sig;            /* signature BIT STRING contents (no pad octet) */
    der_t issuer;         /* Name element */
    int64_t this_update;
    int64_t next_update;  /* 0 when absent */
    int has_revoked;
    der_t revoked;        /* contents of revokedCertificates */
    int has_exts;
    der_t exts;           /* Extensions element inside [0] */
} crl_raw;

/* tbsCertList contents (the outer signature algorithm is known). */
static int parse_tbs(der_t tbs, crl_raw *r)
{
    der_t v, alg, t;

    if (der_peek(&tbs) == TAG_INTEGER) {
        if (!der_expect(&tbs, TAG_INTEGER, &v, NULL) || v.n != 1 ||
            v.p[0] > 1)
            return 0;                               /* v1 (0) or v2 (1) */
    }
    /* inner signature AlgorithmIdentifier == outer (RFC 5280 5.1.1.2) */
    if (!der_expect(&tbs, TAG_SEQUENCE, &v, &alg) ||
        alg.n != r->sigalg.n || memcmp(alg.p, r->sigalg.p, alg.n) != 0)
        return 0;
    if (!der_expect(&tbs, TAG_SEQUENCE, &v, &r->issuer) ||
        !read_time(&tbs, &r->this_update))
        return 0;
    if (der_peek(&tbs) == TAG_UTCTIME || der_peek(&tbs) == TAG_GENTIME) {
        if (!read_time(&tbs, &r->next_update) || r->next_update == 0)
            return 0;
    }
    if (der_peek(&tbs) == TAG_SEQUENCE) {
        if (!der_expect(&tbs, TAG_SEQUENCE, &r->revoked, NULL))
            return 0;
        r->has_revoked = 1;
    }
    if (der_peek(&tbs) == TAG_CTX0) {
        if (!der_expect(&tbs, TAG_CTX0, &v, NULL) ||
            !der_expect(&v, TAG_SEQUENCE, &t, &r->exts) || v.n != 0)
            return 0;
        r->has_exts = 1;
    }
    return tbs.n == 0;
}

/* Splits a DER CertificateList. */
static int parse_outer(const uint8_t *der, size_t len, crl_raw *r)
{
    der_t in = {der, len}, cl, tbs, v, bits;

    memset(r, 0, sizeof(*r));
    if (!der_expect(&in, TAG_SEQUENCE, &cl, NULL) || in.n != 0)
        return 0;                                  /* trailing bytes */
    if (!der_expect(&cl, TAG_SEQUENCE, &tbs, &r->tbs) ||
        !der_expect(&cl, TAG_SEQUENCE, &v, &r->sigalg) ||
        !der_expect(&cl, TAG_BIT_STRING, &bits, NULL) || cl.n != 0)
        return 0;
    if (bits.n < 2 || bits.p[0] != 0)
        return 0;                                  /* unused bits */
    r->sig.p = bits.p + 1;
    r->sig.n = bits.n - 1;

    return parse_tbs(tbs, r);
}

/* ------------------------------------------------------------------ */
/* Signature                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    const crl_raw *raw;
    const EVP_MD *md;
    int pk_nid;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen;
} sig_check;

/* RSA PKCS#1 v1.5 or ECDSA with SHA-2 (SHA-1 only with allow_sha1);
 * parameters absent or NULL.  0 when not allowed. */
static int sig_alg(const crl_raw *r, int allow_sha1, sig_check *sc)
{
    const unsigned char *p = r->sigalg.p;
    X509_ALGOR *a = d2i_X509_ALGOR(NULL, &p, (long)r->sigalg.n);
    const ASN1_OBJECT *obj;
    const void *pval;
    int ptype, md_nid = NID_undef, pk_nid = NID_undef, ok = 0;

    if (a == NULL)
        return 0;
    if (p == r->sigalg.p + r->sigalg.n) {
        X509_ALGOR_get0(&obj, &ptype, &pval, a);
        ok = (ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL) &&
             OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md_nid, &pk_nid);
    }
    X509_ALGOR_free(a);
    if (!ok || (pk_nid != NID_rsaEncryption &&
                pk_nid != NID_X9_62_id_ecPublicKey))
        return 0;
    switch (md_nid) {
    case NID_sha256: sc->md = EVP_sha256(); break;
    case NID_sha384: sc->md = EVP_sha384(); break;
    case NID_sha512: sc->md = EVP_sha512(); break;
    case NID_sha1:   sc->md = allow_sha1 ? EVP_sha1() : NULL; break;
    default:         sc->md = NULL; break;
    }
    sc->pk_nid = pk_nid;
    sc->raw = r;
    return sc->md != NULL;
}

/* jpki_key_try_fn: the tbsCertList digest (computed once) verifies with
 * key. */
static int try_key(void *ud, EVP_PKEY *key)
{
    sig_check *sc = ud;
    EVP_PKEY_CTX *pc;
    int ok;

    if (EVP_PKEY_get_base_id(key) != sc->pk_nid)
        return 0;
    pc = EVP_PKEY_CTX_new(key, NULL);
    ok = pc != NULL && EVP_PKEY_verify_init(pc) == 1 &&
         EVP_PKEY_CTX_set_signature_md(pc, sc->md) == 1 &&
         EVP_PKEY_verify(pc, sc->raw->sig.p, sc->raw->sig.n, sc->digest,
                         sc->dlen) == 1;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

/* ------------------------------------------------------------------ */
/* CRL extensions                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    AUTHORITY_KEYID *akid;
    int64_t number;         /* -1 when absent or over int64 */
} crl_exts;

/* X509V3_get_d2i of one extension: 0 when it is absent or decodes once,
 * -1 when it is duplicated or does not decode. */
static int ext_get(const STACK_OF(X509_EXTENSION) *exts, int nid, void **out)
{
    int crit = -1;

    *out = X509V3_get_d2i(exts, nid, &crit, NULL);
    return *out == NULL && crit != -1 ? -1 : 0;
}

static const char *idp_refusal(const STACK_OF(X509_EXTENSION) *exts)
{
    ISSUING_DIST_POINT *idp;
    const char *why = NULL;

    if (ext_get(exts, NID_issuing_distribution_point, (void **)&idp) < 0)
        return "issuingDistributionPoint does not decode";
    if (idp == NULL)
        return NULL;
    if (idp->indirectCRL)
        why = "indirect CRLs are not supported";
    else if (idp->onlysomereasons != NULL)
        why = "CRLs limited to some reasons are not supported";
    else if (idp->onlyCA || idp->onlyattr)
        why = "the CRL does not cover end-entity certificates";
    ISSUING_DIST_POINT_free(idp);
    return why;
}

static const char *check_ext_list(const STACK_OF(X509_EXTENSION) *exts)
{
    int i;

    for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *x = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(x));

        if (nid == NID_delta_crl)
            return "delta CRLs are not supported";
        if (nid != NID_authority_key_identifier && nid != NID_crl_number &&
            nid != NID_issuing_distribution_point &&
            X509_EXTENSION_get_critical(x))
            return "the CRL has an unknown critical extension";
    }
    return idp_refusal(exts);
}

static jpki_err parse_exts(const crl_raw *r, crl_exts *x, char *detail,
                           size_t dl)
{
    STACK_OF(X509_EXTENSION) *exts;
    const unsigned char *p = r->exts.p;
    ASN1_INTEGER *num = NULL;
    const char *why;
    int64_t v;

    x->akid = NULL;
    x->number = -1;
    if (!r->has_exts)
        return JPKI_OK;
    exts = d2i_X509_EXTENSIONS(NULL, &p, (long)r->exts.n);
    if (exts == NULL || p != r->exts.p + r->exts.n) {
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        jpki_set_detail(detail, dl, "CRL extensions do not parse");
        return JPKI_ERR_CRL_PARSE;
    }
    why = check_ext_list(exts);
    if (why == NULL &&
        (ext_get(exts, NID_authority_key_identifier, (void **)&x->akid) < 0
         || ext_get(exts, NID_crl_number, (void **)&num) < 0))
        why = "authorityKeyIdentifier or cRLNumber does not decode";
    if (why == NULL && num != NULL && ASN1_INTEGER_get_int64(&v, num) == 1
        && v >= 0)
        x->number = v;
    ASN1_INTEGER_free(num);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (why != NULL) {
        AUTHORITY_KEYID_free(x->akid);
        x->akid = NULL;
        jpki_set_detail(detail, dl, "%s", why);
        return JPKI_ERR_CRL_PARSE;
    }
    return JPKI_OK;
}

/* ------------------------------------------------------------------ */
/* Issuer                                                              */
/* ------------------------------------------------------------------ */

/* Is a configured CA certificate the one the CRL names?  By AKI keyid when
 * the CRL has one, else by subject name. */
static int ca_named(const jpki_ctx *ctx, const ASN1_OCTET_STRING *aki,
                    const X509_NAME *name)
{
    size_t i;
    int j;

    for (i = 0; i < ctx->n_issuers; i++) {
        const struct jpki_issuer *is = ctx->issuers[i];

        for (j = 0; j < sk_X509_num(is->all); j++) {
            X509 *ca = sk_X509_value(is->all, j);
            const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);

            if (aki != NULL && ski != NULL &&
                ASN1_OCTET_STRING_cmp(ski, aki) == 0)
                return 1;
            if (aki == NULL &&
                X509_NAME_cmp(X509_get_subject_name(ca), name) == 0)
                return 1;
        }
    }
    return 0;
}

typedef struct {
    const uint8_t *der;   /* the caller's DER, or own */
    uint8_t *own;         /* the DER decoded from PEM or base64 */
    size_t len;
    crl_raw raw;
    const struct jpki_issuer *is;
    /* SHA-1 key hashes of every key generation of the issuer that bears the
     * CRL issuer's name: entries are (issuer name, serial), and a CA may
     * sign its CRL with a newer key than the certificates' (RFC 5280). */
    uint8_t (*keys)[20];
    size_t n_keys;
    jpki_crl_info info;
} crl_doc;

static void doc_free(crl_doc *d)
{
    free(d->own);
    free(d->keys);
    memset(d, 0, sizeof(*d));
}

static int add_key(crl_doc *d, X509 *ca)
{
    uint8_t h[20];
    size_t i;

    if (!jpki_key_hash_sha1(ca, h))
        return 0;
    for (i = 0; i < d->n_keys; i++)
        if (memcmp(d->keys[i], h, 20) == 0)
            return 1;
    memcpy(d->keys[d->n_keys++], h, 20);
    return 1;
}

/* The signing CA's key first, then the other generations. */
static jpki_err collect_keys(crl_doc *d, X509 *signer, const X509_NAME *name)
{
    int j, n = sk_X509_num(d->is->all);

    d->keys = calloc((size_t)n + 1, 20);
    if (d->keys == NULL)
        return JPKI_ERR_NOMEM;
    if (!add_key(d, signer))
        return JPKI_ERR_INTERNAL;
    for (j = 0; j < n; j++) {
        X509 *ca = sk_X509_value(d->is->all, j);

        if (X509_NAME_cmp(X509_get_subject_name(ca), name) == 0 &&
            !add_key(d, ca))
            return JPKI_ERR_INTERNAL;
    }
    return JPKI_OK;
}

static jpki_err find_issuer(const jpki_ctx *ctx, crl_doc *d,
                            const crl_exts *x, sig_check *sc,
                            const X509_NAME *name, char *detail, size_t dl)
{
    const ASN1_OCTET_STRING *aki = x->akid != NULL ? x->akid->keyid : NULL;
    X509 *ca = NULL;

    if (EVP_Digest(d->raw.tbs.p, d->raw.tbs.n, sc->digest, &sc->dlen,
                   sc->md, NULL) != 1)
        return JPKI_ERR_INTERNAL;
    d->is = jpki_find_issuer_by_key(ctx, aki, try_key, sc, &ca);
    if (d->is == NULL) {
        if (ca_named(ctx, aki, name)) {
            jpki_set_detail(detail, dl, "CRL signature does not verify with "
                            "the key of the CA it names");
            return JPKI_ERR_CRL_SIGNATURE;
        }
        jpki_set_detail(detail, dl, "CRL is not from a configured issuer");
        return JPKI_ERR_CRL_ISSUER;
    }
    if (X509_NAME_cmp(X509_get_subject_name(ca), name) != 0) {
        jpki_set_detail(detail, dl, "CRL issuer name differs from the name "
                        "of the CA whose key signed it");
        return JPKI_ERR_CRL_ISSUER;
    }
    if ((X509_get_extension_flags(ca) & EXFLAG_KUSAGE) != 0 &&
        (X509_get_key_usage(ca) & KU_CRL_SIGN) == 0) {
        jpki_set_detail(detail, dl, "the CA certificate does not allow "
                        "CRL signing");
        return JPKI_ERR_CRL_ISSUER;
    }
    return collect_keys(d, ca, name);
}

/* ------------------------------------------------------------------ */
/* Opening a CRL: DER, structure, extensions, issuer and signature     */
/* ------------------------------------------------------------------ */

static jpki_err open_checked(const jpki_ctx *ctx, crl_doc *d, char *detail,
                             size_t dl)
{
    const unsigned char *p = d->raw.issuer.p;
    X509_NAME *name = NULL;
    crl_exts x = {NULL, -1};
    sig_check sc;
    jpki_err e;

    memset(&sc, 0, sizeof(sc));
    e = parse_exts(&d->raw, &x, detail, dl);
    if (e != JPKI_OK)
        return e;
    name = d2i_X509_NAME(NULL, &p, (long)d->raw.issuer.n);
    if (name == NULL || p != d->raw.issuer.p + d->raw.issuer.n) {
        jpki_set_detail(detail, dl, "CRL issuer name does not parse");
        e = JPKI_ERR_CRL_PARSE;
    } else if (!sig_alg(&d->raw, (int)ctx->policy.allow_sha1, &sc)) {
        jpki_set_detail(detail, dl, "CRL signature algorithm not allowed");
        e = JPKI_ERR_CRL_SIGNATURE;
    } else {
        e = find_issuer(ctx, d, &x, &sc, name, detail, dl);
    }
    X509_NAME_free(name);
    AUTHORITY_KEYID_free(x.akid);
    d->info.crl_number = x.number;
    return e;
}

static jpki_err crl_open(const jpki_ctx *ctx, const uint8_t *in, size_t len,
                         crl_doc *d, char *detail, size_t dl)
{
    jpki_err e;

    memset(d, 0, sizeof(*d));
    if (ctx == NULL || (in == NULL && len != 0))
        return JPKI_ERR_INVALID;
    /* DER is read where it is (a national CRL is tens of megabytes:
     * a copy costs more than walking its entries); PEM or base64 is
     * decoded into a buffer of the document's own */
    if (len > 0 && in[0] == 0x30 && len <= JPKI_CRL_MAX) {
        d->der = in;
        d->len = len;
        e = JPKI_OK;
    } else {
        e = len > JPKI_CRL_MAX && in[0] == 0x30 ? JPKI_ERR_TOO_LARGE
            : jpki_to_der(in, len, "X509 CRL", JPKI_CRL_MAX, &d->own,
                          &d->len);
        d->der = d->own;
    }
    if (e != JPKI_OK) {
        jpki_set_detail(detail, dl, "CRL is not DER or PEM");
        return e == JPKI_ERR_NOMEM || e == JPKI_ERR_TOO_LARGE ? e
               : JPKI_ERR_CRL_PARSE;
    }
    if (!parse_outer(d->der, d->len, &d->raw)) {
        jpki_set_detail(detail, dl, "CRL DER does not parse");
        return JPKI_ERR_CRL_PARSE;
    }
    e = open_checked(ctx, d, detail, dl);
    ERR_clear_error();
    if (e != JPKI_OK)
        return e;
    d->info.issuer = d->is;
    memcpy(d->info.key_hash, d->keys[0], sizeof(d->info.key_hash));
    d->info.this_update = d->raw.this_update;
    d->info.next_update = d->raw.next_update;
    return JPKI_OK;
}

/* The time after which a CRL is stale: nextUpdate + grace; grace 0 is the
 * clock skew; JPKI_CRL_GRACE_VALIDITY is the end of the J-LIS validity
 * (thisUpdate + 72 h), but never before nextUpdate + skew.  A CRL without
 * nextUpdate is never stale (INT64_MAX). */
int64_t jpki_crl_stale_after(const jpki_crl_info *info, unsigned grace_s,
                             int64_t skew)
{
    int64_t end;

    if (info->next_update == 0)
        return INT64_MAX;
    if (grace_s == JPKI_CRL_GRACE_VALIDITY) {
        end = info->this_update + JPKI_CRL_VALIDITY;
        return end > info->next_update + skew ? end
               : info->next_update + skew;
    }
    return info->next_update + (grace_s != 0 ? (int64_t)grace_s : skew);
}

static jpki_err check_time(const jpki_ctx *ctx, const jpki_crl_info *info,
                           time_t now, unsigned grace_s, char *detail,
                           size_t dl)
{
    int64_t skew = ctx->policy.clock_skew;

    if (info->this_update > (int64_t)now + skew) {
        jpki_set_detail(detail, dl, "CRL thisUpdate is in the future");
        return JPKI_ERR_CRL_NOT_YET_VALID;
    }
    if ((int64_t)now > jpki_crl_stale_after(info, grace_s, skew)) {
        jpki_set_detail(detail, dl, "CRL is past its nextUpdate");
        return JPKI_ERR_CRL_STALE;
    }
    return JPKI_OK;
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */
/* ------------------------------------------------------------------ */

static const uint8_t OID_REASON[] = {0x55, 0x1d, 0x15};     /* 2.5.29.21 */
static const uint8_t OID_CERT_ISSUER[] = {0x55, 0x1d, 0x1d}; /* 2.5.29.29 */

static int oid_is(der_t oid, const uint8_t *want, size_t n)
{
    return oid.n == n && memcmp(oid.p, want, n) == 0;
}

/* CRLReason ::= ENUMERATED, 0..10 except 7. */
static int parse_reason(der_t v, int *reason)
{
    der_t en;

    if (!der_expect(&v, TAG_ENUMERATED, &en, NULL) || v.n != 0 ||
        en.n != 1 || en.p[0] > 10 || en.p[0] == 7)
        return 0;
    *reason = en.p[0];
    return 1;
}

/* crlEntryExtensions contents. */
static int entry_exts(der_t list, int *reason)
{
    der_t ext, oid, v;
    int crit, seen = 0;

    while (list.n > 0) {
        if (!der_expect(&list, TAG_SEQUENCE, &ext, NULL) ||
            !der_expect(&ext, TAG_OID, &oid, NULL))
            return 0;
        crit = 0;
        if (der_peek(&ext) == TAG_BOOLEAN) {
            if (!der_expect(&ext, TAG_BOOLEAN, &v, NULL) || v.n != 1)
                return 0;
            crit = v.p[0] != 0;
        }
        if (!der_expect(&ext, TAG_OCTET, &v, NULL) || ext.n != 0)
            return 0;
        if (oid_is(oid, OID_REASON, sizeof(OID_REASON))) {
            if (seen++ || !parse_reason(v, reason))
                return 0;
        } else if (oid_is(oid, OID_CERT_ISSUER, sizeof(OID_CERT_ISSUER))) {
            return 0;                   /* indirect CRL entry */
        } else if (crit) {
            return 0;                   /* unknown critical extension */
        }
    }
    return 1;
}

/* Called for each entry whose serial fits: magnitude, reason (-1 when
 * absent), revocation date. */
typedef jpki_err (*raw_entry_fn)(void *ud, const uint8_t *serial, size_t n,
                                 int reason, int64_t at);
/* Called first with each entry's whole encoding (a scan): 1 skips the
 * entry (known to the caller by the digest of that encoding, an entry
 * fully checked by an earlier scan), 0 reads it, -1 stops. */
typedef int (*raw_pre_fn)(void *ud, const uint8_t *tlv, size_t n);

/* Called, when not NULL, before each entry is framed: > 0 skips the
 * next entry, that many octets long, unread (the caller framed it
 * before, and knows it: the scan's digests made ahead); 0 reads it, pre
 * first; -1 stops. */
typedef long (*raw_fast_fn)(void *ud);

/* Walks revokedCertificates; every entry is checked (but those pre or
 * fast skips), *count receives the number of entries (also those whose
 * serial is too long to name a certificate this library accepts: those
 * are not passed to fn). */
static jpki_err walk_entries(const crl_raw *r, raw_fast_fn fast,
                             raw_pre_fn pre, raw_entry_fn fn, void *ud,
                             uint64_t *count)
{
    der_t list = r->revoked, ent, v, exts, tlv;
    uint8_t mag[SERIAL_MAX + 1];
    jpki_err e = JPKI_OK;
    long k;

    *count = 0;
    while (r->has_revoked && list.n > 0 && e == JPKI_OK) {
        int reason = JPKI_REASON_NONE, m = -1, skip = 0;
        int64_t at;

        if (fast != NULL && (k = fast(ud)) != 0) {
            if (k < 0 || (size_t)k > list.n) {
                e = k < 0 ? JPKI_ERR_IO : JPKI_ERR_CRL_PARSE;
            } else {
                list.p += k;
                list.n -= (size_t)k;
                (*count)++;
            }
        } else if (!der_expect(&list, TAG_SEQUENCE, &ent, &tlv))
            e = JPKI_ERR_CRL_PARSE;
        else if (pre != NULL && (skip = pre(ud, tlv.p, tlv.n)) < 0)
            e = JPKI_ERR_IO;
        else if (skip)
            (*count)++;
        else if (!der_expect(&ent, TAG_INTEGER, &v, NULL) ||
                 (m = serial_magnitude(v, mag)) == -1 ||
                 !read_time(&ent, &at))
            e = JPKI_ERR_CRL_PARSE;
        else if (ent.n > 0 &&
                 (!der_expect(&ent, TAG_SEQUENCE, &exts, NULL) ||
                  ent.n != 0 || !entry_exts(exts, &reason)))
            e = JPKI_ERR_CRL_PARSE;
        else {
            (*count)++;
            if (m >= 0 && fn != NULL)
                e = fn(ud, mag, (size_t)m, reason, at);
        }
    }
    OPENSSL_cleanse(mag, sizeof(mag));
    return e;
}

/* ------------------------------------------------------------------ */
/* cert_id of many entries                                             */
/* ------------------------------------------------------------------ */

/* cert_id = HMAC-SHA256(secret, issuer_key_hash || serial) truncated, as
 * jpki_cert_id_compute defines it, but with the HMAC key schedule and the
 * issuer key hash absorbed once per key instead of once per entry (a CRL
 * can hold millions).  ids_init checks the result against
 * jpki_cert_id_compute, so the two cannot drift apart silently. */
typedef struct {
    EVP_MD_CTX **inner;   /* SHA-256 after (K ^ ipad) || issuer_key_hash */
    EVP_MD_CTX **outer;   /* SHA-256 after (K ^ opad) */
    EVP_MD_CTX *tmp;
    size_t n;
} id_set;

#define HMAC_BLOCK 64

static void ids_free(id_set *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        EVP_MD_CTX_free(s->inner != NULL ? s->inner[i] : NULL);
        EVP_MD_CTX_free(s->outer != NULL ? s->outer[i] : NULL);
    }
    free(s->inner);
    free(s->outer);
    EVP_MD_CTX_free(s->tmp);
    memset(s, 0, sizeof(*s));
}

static int pad_key(EVP_MD_CTX *m, const jpki_ctx *ctx, uint8_t x)
{
    uint8_t pad[HMAC_BLOCK];
    size_t i;
    int ok;

    memset(pad, x, sizeof(pad));
    for (i = 0; i < ctx->secret_len; i++)
        pad[i] ^= ctx->secret[i];
    ok = EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(m, pad, sizeof(pad)) == 1;
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok;
}

static int id_compute(const id_set *s, size_t k, const uint8_t *serial,
                      size_t n, uint8_t out[JPKI_CERT_ID_LEN])
{
    uint8_t ih[32], mac[32];
    unsigned int l1 = 0, l2 = 0;
    int ok;

    ok = EVP_MD_CTX_copy_ex(s->tmp, s->inner[k]) == 1 &&
         (n == 0 || EVP_DigestUpdate(s->tmp, serial, n) == 1) &&
         EVP_DigestFinal_ex(s->tmp, ih, &l1) == 1 && l1 == 32 &&
         EVP_MD_CTX_copy_ex(s->tmp, s->outer[k]) == 1 &&
         EVP_DigestUpdate(s->tmp, ih, sizeof(ih)) == 1 &&
         EVP_DigestFinal_ex(s->tmp, mac, &l2) == 1 && l2 == 32;
    if (ok)
        memcpy(out, mac, JPKI_CERT_ID_LEN);
    OPENSSL_cleanse(ih, sizeof(ih));
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* Prepares one hasher per key of d, and checks each one. */
static jpki_err ids_init(const jpki_ctx *ctx, const crl_doc *d, id_set *s)
{
    static const uint8_t probe[] = {0x01, 0x23};
    char want[JPKI_CERT_ID_HEX_LEN + 1], got[JPKI_CERT_ID_HEX_LEN + 1];
    uint8_t id[JPKI_CERT_ID_LEN];
    size_t k;

    memset(s, 0, sizeof(*s));
    if (ctx->secret_len == 0 || ctx->secret_len > HMAC_BLOCK)
        return JPKI_ERR_INVALID;
    s->inner = calloc(d->n_keys, sizeof(EVP_MD_CTX *));
    s->outer = calloc(d->n_keys, sizeof(EVP_MD_CTX *));
    s->tmp = EVP_MD_CTX_new();
    if (s->inner == NULL || s->outer == NULL || s->tmp == NULL) {
        ids_free(s);
        return JPKI_ERR_NOMEM;
    }
    s->n = d->n_keys;
    for (k = 0; k < d->n_keys; k++) {
        s->inner[k] = EVP_MD_CTX_new();
        s->outer[k] = EVP_MD_CTX_new();
        if (s->inner[k] == NULL || s->outer[k] == NULL ||
            !pad_key(s->inner[k], ctx, 0x36) ||
            EVP_DigestUpdate(s->inner[k], d->keys[k], 20) != 1 ||
            !pad_key(s->outer[k], ctx, 0x5c) ||
            !id_compute(s, k, probe, sizeof(probe), id) ||
            jpki_cert_id_compute(ctx, d->keys[k], 20, probe, sizeof(probe),
                                 want) != JPKI_OK)
            break;
        jpki_hex_encode(id, sizeof(id), got);
        if (strcmp(got, want) != 0)
            break;
    }
    if (k < d->n_keys) {
        ids_free(s);
        return JPKI_ERR_INTERNAL;
    }
    return JPKI_OK;
}

/* ------------------------------------------------------------------ */
/* Public: verify, foreach                                             */
/* ------------------------------------------------------------------ */

/* A scan's walk: each entry's digest, then the caller's answer; the
 * entries it does not know read, their cert_id made under the signing
 * key. */
typedef struct {
    const jpki_crl_scan_fns *f;
    id_set ids;
    const uint8_t *ahead;             /* digests made ahead (f->ahead) */
    const uint32_t *alen;             /* and their entries' lengths */
    size_t nahead, i;                 /* how many; the entry walked */
    int asked;                        /* known asked already (scan_fast) */
    const uint8_t *digest;            /* the entry's: ahead's, or own */
    uint8_t own[JPKI_CRL_DIGEST_LEN];
} scan_state;

/* An entry whose digest was made ahead: known ones skipped unread (the
 * thread that made the digest framed it in the same buffer, as the walk
 * does), the others read (scan_pre, not asking again). */
static long scan_fast(void *ud)
{
    scan_state *ss = ud;
    int k;

    if (ss->i >= ss->nahead)
        return 0;
    ss->digest = ss->ahead + ss->i * JPKI_CRL_DIGEST_LEN;
    k = ss->f->known != NULL ? ss->f->known(ss->f->ud, ss->digest) : 0;
    if (k <= 0) {
        ss->asked = 1;
        return k;
    }
    return (long)ss->alen[ss->i++];
}

static int scan_pre(void *ud, const uint8_t *tlv, size_t n)
{
    scan_state *ss = ud;

    if (ss->asked) {                  /* scan_fast asked: unknown */
        ss->asked = 0;
        ss->i++;
        return 0;
    }
    if (ss->i < ss->nahead) {
        ss->digest = ss->ahead + ss->i * JPKI_CRL_DIGEST_LEN;
    } else {
        jpki_siphash24_128(ss->f->key, tlv, n, ss->own);
        ss->digest = ss->own;
    }
    ss->i++;
    return ss->f->known != NULL ? ss->f->known(ss->f->ud, ss->digest) : 0;
}

static jpki_err scan_entry(void *ud, const uint8_t *serial, size_t n,
                           int reason, int64_t at)
{
    scan_state *ss = ud;
    jpki_crl_scan_entry se;

    if (!id_compute(&ss->ids, 0, serial, n, se.cert_id))
        return JPKI_ERR_INTERNAL;
    se.digest = ss->f->key != NULL ? ss->digest : NULL;
    se.reason = reason;
    se.revoked_at = at;
    return ss->f->entry(ss->f->ud, &se) != 0 ? JPKI_ERR_IO : JPKI_OK;
}

jpki_err jpki_crl_verify_scan(const jpki_ctx *ctx, const uint8_t *in,
                              size_t len, time_t now, unsigned grace_s,
                              jpki_crl_info *info, char *detail,
                              size_t detaillen, const jpki_crl_scan_fns *f)
{
    scan_state ss;
    crl_doc d;
    jpki_err e;
    int scan;

    memset(&ss, 0, sizeof(ss));
    ss.f = f;
    if (info != NULL)
        memset(info, 0, sizeof(*info));
    e = crl_open(ctx, in, len, &d, detail, detaillen);
    scan = e == JPKI_OK && f != NULL && f->entry != NULL
           && (f->begin == NULL || f->begin(f->ud, &d.info) > 0);
    if (scan) {
        d.n_keys = 1;                   /* keys[0]: the signing key */
        e = ids_init(ctx, &d, &ss.ids);
        if (f->key != NULL && f->ahead != NULL)
            ss.nahead = f->ahead(f->ud, &ss.ahead, &ss.alen);
    }
    if (e == JPKI_OK) {
        e = walk_entries(&d.raw,
                         ss.nahead > 0 && ss.alen != NULL ? scan_fast : NULL,
                         scan && f->key != NULL ? scan_pre : NULL,
                         scan ? scan_entry : NULL, &ss, &d.info.entries);
        if (e == JPKI_ERR_CRL_PARSE)
            jpki_set_detail(detail, detaillen, "a CRL entry is malformed");
    }
    ids_free(&ss.ids);
    if (e == JPKI_OK)
        e = check_time(ctx, &d.info, now, grace_s, detail, detaillen);
    if (info != NULL && (e == JPKI_OK || e == JPKI_ERR_CRL_STALE ||
                         e == JPKI_ERR_CRL_NOT_YET_VALID))
        *info = d.info;
    if (e != JPKI_OK)
        jpki_log(ctx, JPKI_LOG_DEBUG, "crl: rejected: %s", jpki_reason(e));
    doc_free(&d);
    ERR_clear_error();
    return e;
}

size_t jpki_crl_digests(const uint8_t key[16], const uint8_t *der,
                        size_t len, uint8_t *out, uint32_t *lens, size_t max)
{
    crl_raw r;
    der_t list, ent, tlv;
    size_t k = 0;

    if (der == NULL || len == 0 || der[0] != 0x30 || len > JPKI_CRL_MAX
        || !parse_outer(der, len, &r) || !r.has_revoked)
        return 0;
    list = r.revoked;
    /* the walk's framing (walk_entries), its digest (scan_pre), a batch
     * of entries at a time */
    for (;;) {
        const uint8_t *p[JPKI_SIP_LANES];
        size_t n[JPKI_SIP_LANES], b = 0;

        while (b < JPKI_SIP_LANES && k + b < max && list.n > 0
               && der_expect(&list, TAG_SEQUENCE, &ent, &tlv)
               && tlv.n <= UINT32_MAX) {
            if (lens != NULL)
                lens[k + b] = (uint32_t)tlv.n;
            p[b] = tlv.p;
            n[b++] = tlv.n;
        }
        jpki_siphash24_128_n(key, p, n, b, out + k * JPKI_CRL_DIGEST_LEN);
        k += b;
        if (b < JPKI_SIP_LANES)
            return k;
    }
}

jpki_err jpki_crl_verify(const jpki_ctx *ctx, const uint8_t *in, size_t len,
                         time_t now, unsigned grace_s, jpki_crl_info *info,
                         char *detail, size_t detaillen)
{
    return jpki_crl_verify_scan(ctx, in, len, now, grace_s, info, detail,
                                detaillen, NULL);
}

typedef struct {
    id_set ids;
    jpki_crl_entry_fn fn;
    void *ud;
} foreach_state;

/* Each entry once per key generation (see crl_doc.keys). */
static jpki_err emit_entry(void *ud, const uint8_t *serial, size_t n,
                           int reason, int64_t at)
{
    foreach_state *fs = ud;
    uint8_t id[JPKI_CERT_ID_LEN];
    jpki_crl_entry ce;
    size_t k;

    ce.reason = reason;
    ce.revoked_at = at;
    for (k = 0; k < fs->ids.n; k++) {
        if (!id_compute(&fs->ids, k, serial, n, id))
            return JPKI_ERR_INTERNAL;
        jpki_hex_encode(id, sizeof(id), ce.cert_id);
        ce.key = (unsigned)k;           /* 0: the signing key (keys[0]) */
        if (fs->fn(fs->ud, &ce) != 0)
            return JPKI_ERR_IO;
    }
    return JPKI_OK;
}

static jpki_err crl_foreach(const jpki_ctx *ctx, const uint8_t *der,
                            size_t len, int signer_only,
                            jpki_crl_entry_fn fn, void *ud)
{
    foreach_state fs;
    uint64_t count;
    crl_doc d;
    jpki_err e;

    if (fn == NULL)
        return JPKI_ERR_INVALID;
    memset(&fs, 0, sizeof(fs));
    fs.fn = fn;
    fs.ud = ud;
    e = crl_open(ctx, der, len, &d, NULL, 0);
    if (e == JPKI_OK && signer_only)
        d.n_keys = 1;                   /* keys[0]: the signing key */
    if (e == JPKI_OK)
        e = ids_init(ctx, &d, &fs.ids);
    if (e == JPKI_OK)
        e = walk_entries(&d.raw, NULL, NULL, emit_entry, &fs, &count);
    ids_free(&fs.ids);
    doc_free(&d);
    ERR_clear_error();
    return e;
}

jpki_err jpki_crl_foreach(const jpki_ctx *ctx, const uint8_t *der,
                          size_t len, jpki_crl_entry_fn fn, void *ud)
{
    return crl_foreach(ctx, der, len, 0, fn, ud);
}

jpki_err jpki_crl_foreach_signer(const jpki_ctx *ctx, const uint8_t *der,
                                 size_t len, jpki_crl_entry_fn fn, void *ud)
{
    return crl_foreach(ctx, der, len, 1, fn, ud);
}

/* ------------------------------------------------------------------ */
/* Index                                                               */
/* ------------------------------------------------------------------ */

/* ix_entry and struct jpki_crl_index: internal.h (crlzone.c places the
 * entries in a zone). */

typedef struct {
    id_set ids;
    jpki_crl_index *ix;
} collect_state;

static jpki_err ix_grow(jpki_crl_index *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 1024;
    ix_entry *ne;

    if (cap > SIZE_MAX / sizeof(ix_entry))
        return JPKI_ERR_NOMEM;
    ne = realloc(ix->e, cap * sizeof(ix_entry));
    if (ne == NULL)
        return JPKI_ERR_NOMEM;
    ix->e = ne;
    ix->cap = cap;
    return JPKI_OK;
}

static jpki_err collect_entry(void *ud, const uint8_t *serial, size_t n,
                              int reason, int64_t at)
{
    collect_state *cs = ud;
    jpki_crl_index *ix = cs->ix;
    size_t k;
    jpki_err e;

    for (k = 0; k < cs->ids.n; k++) {
        ix_entry *x;

        if (ix->n == ix->cap && (e = ix_grow(ix)) != JPKI_OK)
            return e;
        x = &ix->e[ix->n];
        if (!id_compute(&cs->ids, k, serial, n, x->id))
            return JPKI_ERR_INTERNAL;
        x->at = at < 0 ? 0 : at > (int64_t)UINT32_MAX ? UINT32_MAX
                                                      : (uint32_t)at;
        x->reason = (int8_t)reason;
        ix->n++;
    }
    return JPKI_OK;
}

/* By cert_id; for one cert_id a final revocation sorts before a hold. */
static int ix_cmp(const void *a, const void *b)
{
    const ix_entry *x = a, *y = b;
    int c = memcmp(x->id, y->id, sizeof(x->id));

    if (c != 0)
        return c;
    return (x->reason == JPKI_REASON_CERTIFICATE_HOLD) -
           (y->reason == JPKI_REASON_CERTIFICATE_HOLD);
}

static void ix_sort_unique(jpki_crl_index *ix)
{
    size_t i, k = 0;

    if (ix->n == 0)
        return;
    qsort(ix->e, ix->n, sizeof(ix_entry), ix_cmp);
    for (i = 1; i < ix->n; i++)
        if (memcmp(ix->e[i].id, ix->e[k].id, sizeof(ix->e[k].id)) != 0)
            ix->e[++k] = ix->e[i];
    ix->n = k + 1;
}

jpki_err jpki_crl_index_build(const jpki_ctx *ctx, const uint8_t *in,
                              size_t len, time_t now, unsigned grace_s,
                              jpki_crl_index **out, char *detail,
                              size_t detaillen)
{
    jpki_crl_index *ix = NULL;
    collect_state cs;
    crl_doc d;
    jpki_err e;

    if (out == NULL)
        return JPKI_ERR_INVALID;
    *out = NULL;
    e = crl_open(ctx, in, len, &d, detail, detaillen);
    if (e == JPKI_OK)
        e = check_time(ctx, &d.info, now, grace_s, detail, detaillen);
    if (e == JPKI_OK && (ix = calloc(1, sizeof(*ix))) == NULL)
        e = JPKI_ERR_NOMEM;
    memset(&cs, 0, sizeof(cs));
    /* the index covers the key that signed the CRL, only: a certificate
     * is looked up in the CRL of the key that issued it (crlzone.c) */
    if (e == JPKI_OK) {
        d.n_keys = 1;
        e = ids_init(ctx, &d, &cs.ids);
    }
    if (e == JPKI_OK) {
        cs.ix = ix;
        e = walk_entries(&d.raw, NULL, NULL, collect_entry, &cs,
                         &d.info.entries);
        if (e == JPKI_ERR_CRL_PARSE)
            jpki_set_detail(detail, detaillen, "a CRL entry is malformed");
    }
    ids_free(&cs.ids);
    if (e == JPKI_OK) {
        ix_sort_unique(ix);
        ix->info = d.info;
        ix->skew = ctx->policy.clock_skew;
        ix->good_ttl = ctx->policy.ocsp_good_max_ttl;
        ix->hold_ttl = ctx->policy.ocsp_hold_ttl;
        ix->revoked_ttl = ctx->policy.ocsp_revoked_ttl;
        *out = ix;
        ix = NULL;
    }
    jpki_crl_index_free(ix);
    doc_free(&d);
    ERR_clear_error();
    return e;
}

void jpki_crl_index_free(jpki_crl_index *ix)
{
    if (ix == NULL)
        return;
    free(ix->e);
    free(ix);
}

const jpki_crl_info *jpki_crl_index_info(const jpki_crl_index *ix)
{
    return ix != NULL ? &ix->info : NULL;
}

jpki_err jpki_crl_index_replaces(const jpki_crl_index *ix,
                                 const jpki_issuer *want,
                                 const jpki_crl_index *cur, char *detail,
                                 size_t dl)
{
    const jpki_crl_info *n, *c;

    if (ix == NULL)
        return JPKI_ERR_INVALID;
    n = &ix->info;
    if (want != NULL && n->issuer != want) {
        jpki_set_detail(detail, dl, "a CRL of issuer \"%s\", not of \"%s\"",
                        jpki_issuer_name(n->issuer), jpki_issuer_name(want));
        return JPKI_ERR_CRL_ISSUER;
    }
    if (cur == NULL)
        return JPKI_OK;
    c = &cur->info;
    if (n->crl_number >= 0 && c->crl_number >= 0
            && n->crl_number != c->crl_number
        ? n->crl_number < c->crl_number
        : n->this_update < c->this_update) {
        jpki_set_detail(detail, dl, "older than the CRL loaded");
        return JPKI_ERR_CRL_STALE;
    }
    return JPKI_OK;
}

static const ix_entry *ix_find(const jpki_crl_index *ix,
                               const uint8_t id[JPKI_CERT_ID_LEN])
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(ix->e[mid].id, id, JPKI_CERT_ID_LEN);

        if (c == 0)
            return &ix->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static unsigned ttl_until(int64_t until, time_t now, unsigned max)
{
    int64_t v = until - (int64_t)now;

    if (v <= 0)
        return 0;
    return v >= (int64_t)max ? max : (unsigned)v;
}

jpki_err jpki_crl_index_lookup(const jpki_crl_index *ix, const char *cert_id,
                               time_t now, unsigned grace_s,
                               jpki_rev_info *info)
{
    uint8_t id[JPKI_CERT_ID_LEN];
    const ix_entry *x;
    size_t n;

    if (info == NULL)
        return JPKI_ERR_INVALID;
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;
    info->reason = JPKI_REASON_NONE;
    if (ix == NULL || cert_id == NULL ||
        strnlen(cert_id, JPKI_CERT_ID_HEX_LEN + 1) != JPKI_CERT_ID_HEX_LEN ||
        jpki_hex_decode(cert_id, JPKI_CERT_ID_HEX_LEN, id, sizeof(id), &n)
        != JPKI_OK)
        return JPKI_ERR_INVALID;
    info->this_update = ix->info.this_update;
    info->next_update = ix->info.next_update;
    if ((int64_t)now > jpki_crl_stale_after(&ix->info, grace_s, ix->skew))
        return JPKI_ERR_CRL_STALE;

    x = ix_find(ix, id);
    if (x == NULL) {
        info->status = JPKI_REV_GOOD;
        info->cache_ttl = ix->info.next_update != 0
            ? ttl_until(ix->info.next_update, now, ix->good_ttl) : 0;
        return JPKI_OK;
    }
    info->revoked_at = x->at;
    if (x->reason == JPKI_REASON_CERTIFICATE_HOLD) {
        info->status = JPKI_REV_HOLD;
        info->reason = JPKI_REASON_CERTIFICATE_HOLD;
        info->cache_ttl = ix->hold_ttl;
    } else {
        info->status = JPKI_REV_REVOKED;
        info->reason = x->reason >= 0 ? x->reason : JPKI_REASON_UNSPECIFIED;
        info->cache_ttl = ix->revoked_ttl;
    }
    return JPKI_OK;
}
