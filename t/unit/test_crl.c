/* test_crl.c - CRL verification, entry streaming and the index.
 *
 * Uses the test PKI (t/pki/mkpki.sh) and CRLs built here with OpenSSL to
 * reach the cases the CLI cannot make (no AKI, delta, indirect, critical
 * extensions, odd serials, key rollover, many entries).  The DER walker of
 * crl.c is checked against OpenSSL's own parse of the same CRLs. */
#include "internal.h"
#include "pki.h"

#include <stdint.h>
#include <sys/mman.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static time_t now;

/* ---- files and fixtures ------------------------------------------ */

static uint8_t *slurp(const char *name, size_t *len)
{
    uint8_t *buf = NULL;

    if (jpki_load_file(tap_path(name), 64u << 20, &buf, len) != JPKI_OK) {
        printf("# cannot read %s\n", tap_path(name));
        *len = 0;
        return NULL;
    }
    return buf;
}

static X509 *load_x509(const char *name)
{
    FILE *f = fopen(tap_path(name), "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f)
        fclose(f);
    return x;
}

static EVP_PKEY *load_key(const char *name)
{
    FILE *f = fopen(tap_path(name), "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

    if (f)
        fclose(f);
    return k;
}

static void tune_sha1(jpki_policy *p, const void *ud)
{
    p->allow_sha1 = (unsigned)*(const int *)ud;
}

static jpki_ctx *mkctx(int allow_sha1)
{
    return tap_pki_ctx(0x5a, tune_sha1, &allow_sha1);
}

static jpki_cert *check_cert(const jpki_ctx *ctx, const char *name)
{
    size_t len;
    uint8_t *buf = slurp(name, &len);
    jpki_cert *c = NULL;
    char detail[256] = "";

    if (buf != NULL &&
        jpki_cert_check(ctx, buf, len, now, &c, detail, sizeof(detail))
        != JPKI_OK)
        printf("# cert_check %s: %s\n", name, detail);
    free(buf);
    return c;
}

static jpki_err verify_file(const jpki_ctx *ctx, const char *name,
                            time_t t, unsigned grace, jpki_crl_info *info)
{
    size_t len;
    uint8_t *buf = slurp(name, &len);
    char detail[256] = "";
    jpki_err e;

    e = jpki_crl_verify(ctx, buf, len, t, grace, info, detail,
                        sizeof(detail));
    if (e != JPKI_OK)
        printf("# %s: %s (%s)\n", name, jpki_reason(e), detail);
    free(buf);
    return e;
}

static jpki_err verify_buf(const jpki_ctx *ctx, const uint8_t *b, size_t n,
                           jpki_crl_info *info)
{
    jpki_crl_info dummy;

    return jpki_crl_verify(ctx, b, n, now, 0, info ? info : &dummy, NULL, 0);
}

/* ---- an OpenSSL-side oracle: entries as "cert_id reason date" ----- */

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void sl_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(char *));
    }
    l->v[l->n++] = strdup(s);
}

static void sl_free(strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sl_equal(strlist *a, strlist *b)
{
    size_t i;

    if (a->n != b->n) {
        printf("#   %zu entries vs %zu\n", a->n, b->n);
        return 0;
    }
    qsort(a->v, a->n, sizeof(char *), cmpstr);
    qsort(b->v, b->n, sizeof(char *), cmpstr);
    for (i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0) {
            printf("#   '%s' vs '%s'\n", a->v[i], b->v[i]);
            return 0;
        }
    return 1;
}

static int collect_cb(void *ud, const jpki_crl_entry *e)
{
    char s[96];

    snprintf(s, sizeof(s), "%s %d %lld", e->cert_id, e->reason,
             (long long)e->revoked_at);
    sl_add(ud, s);
    return 0;
}

/* The entries made with the key that signed the CRL (e->key 0). */
static int count_other_keys(void *ud, const jpki_crl_entry *e)
{
    *(int *)ud += e->key != 0;
    return 0;
}

static int collect_signer_cb(void *ud, const jpki_crl_entry *e)
{
    return e->key == 0 ? collect_cb(ud, e) : 0;
}

static int64_t t2e(const ASN1_TIME *t)
{
    struct tm tm;

    return ASN1_TIME_to_tm(t, &tm) == 1 ? (int64_t)timegm(&tm) : -1;
}

/* What jpki_crl_foreach should give for der, computed with OpenSSL: every
 * entry once per key hash in keys (the CA generations of the CRL's name). */
static void oracle(const jpki_ctx *ctx, const uint8_t *der, size_t len,
                   X509 **keys, int nkeys, strlist *out)
{
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    STACK_OF(X509_REVOKED) *rs;
    int i, k;

    if (crl == NULL)
        return;
    rs = X509_CRL_get_REVOKED(crl);
    for (i = 0; i < sk_X509_REVOKED_num(rs); i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(rs, i);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r),
                                        NULL);
        ASN1_ENUMERATED *en = X509_REVOKED_get_ext_d2i(r, NID_crl_reason,
                                                       NULL, NULL);
        uint8_t sb[128];
        int sn = BN_num_bytes(bn), reason = -1;

        if (en != NULL)
            reason = (int)ASN1_ENUMERATED_get(en);
        ASN1_ENUMERATED_free(en);
        if (sn <= 64) {
            BN_bn2bin(bn, sb);
            for (k = 0; k < nkeys; k++) {
                uint8_t kh[20];
                char id[33], s[96];

                jpki_key_hash_sha1(keys[k], kh);
                jpki_cert_id_compute(ctx, kh, 20, sb, (size_t)sn, id);
                snprintf(s, sizeof(s), "%s %d %lld", id, reason,
                         (long long)t2e(X509_REVOKED_get0_revocationDate(r)));
                sl_add(out, s);
            }
        }
        BN_free(bn);
    }
    X509_CRL_free(crl);
}

static int foreach_matches_oracle(const jpki_ctx *ctx, const uint8_t *der,
                                  size_t len, X509 **keys, int nkeys,
                                  size_t want_n)
{
    strlist got = {0}, want = {0};
    int ok;

    if (jpki_crl_foreach(ctx, der, len, collect_cb, &got) != JPKI_OK) {
        diag("foreach failed");
        return 0;
    }
    oracle(ctx, der, len, keys, nkeys, &want);
    ok = got.n == want_n && sl_equal(&got, &want);
    if (got.n != want_n)
        printf("#   got %zu entries, want %zu\n", got.n, want_n);
    sl_free(&got);
    sl_free(&want);
    return ok;
}

/* ---- a CRL builder ------------------------------------------------- */

enum {
    F_NO_AKI = 1 << 0, F_DELTA = 1 << 1, F_CRIT_UNKNOWN = 1 << 2,
    F_IDP_INDIRECT = 1 << 3, F_IDP_ONLYCA = 1 << 4, F_IDP_USER = 1 << 5,
    F_BIG_NUMBER = 1 << 6, F_NO_NUMBER = 1 << 7, F_V1 = 1 << 8,
    F_IDP_REASONS = 1 << 9, F_NONCRIT_UNKNOWN = 1 << 10, F_DUP_AKI = 1 << 11,
    F_VERSION3 = 1 << 12, F_DELTA_NONCRIT = 1 << 13
};
enum {
    E_CERT_ISSUER = 1, E_CRIT_UNKNOWN = 2, E_NONCRIT_UNKNOWN = 4,
    E_DUP_REASON = 8, E_PADDED_SERIAL = 16
};

typedef struct {
    BIGNUM *serial;
    int reason;          /* -1: no reasonCode */
    time_t at;
    int flags;           /* E_* */
} mk_entry;

static X509_EXTENSION *raw_ext(const char *oid, int crit)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
    static const unsigned char null_der[] = {0x05, 0x00};
    X509_EXTENSION *x;

    ASN1_OCTET_STRING_set(v, null_der, 2);
    x = X509_EXTENSION_create_by_OBJ(NULL, o, crit, v);
    ASN1_OBJECT_free(o);
    ASN1_OCTET_STRING_free(v);
    return x;
}

static void add_entry(X509_CRL *crl, const mk_entry *me)
{
    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(me->serial, NULL);
    ASN1_TIME *t = ASN1_TIME_set(NULL, me->at);

    if (me->flags & E_PADDED_SERIAL)             /* 00 01: not minimal */
        ASN1_STRING_set(ai, "\0\1", 2);

    X509_REVOKED_set_serialNumber(r, ai);
    X509_REVOKED_set_revocationDate(r, t);
    if (me->reason >= 0) {
        ASN1_ENUMERATED *en = ASN1_ENUMERATED_new();
        ASN1_ENUMERATED_set(en, me->reason);
        X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, en, 0, 0);
        if (me->flags & E_DUP_REASON)
            X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, en, 0,
                                      X509V3_ADD_APPEND);
        ASN1_ENUMERATED_free(en);
    }
    if (me->flags & E_CERT_ISSUER) {
        GENERAL_NAMES *gens = GENERAL_NAMES_new();
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ASN1_STRING_set(s, "example.org", -1);
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, g);
        X509_REVOKED_add1_ext_i2d(r, NID_certificate_issuer, gens, 1, 0);
        GENERAL_NAMES_free(gens);
    }
    if (me->flags & (E_CRIT_UNKNOWN | E_NONCRIT_UNKNOWN)) {
        X509_EXTENSION *x = raw_ext("1.2.3.4.5",
                                    (me->flags & E_CRIT_UNKNOWN) != 0);
        X509_REVOKED_add_ext(r, x, -1);
        X509_EXTENSION_free(x);
    }
    ASN1_INTEGER_free(ai);
    ASN1_TIME_free(t);
    X509_CRL_add0_revoked(crl, r);
}

static void add_crl_exts(X509_CRL *crl, X509 *aki_ca, int flags)
{
    if (!(flags & F_NO_AKI) && aki_ca != NULL) {
        X509V3_CTX v3;
        X509_EXTENSION *x;
        X509V3_set_ctx(&v3, aki_ca, NULL, NULL, crl, 0);
        x = X509V3_EXT_nconf_nid(NULL, &v3, NID_authority_key_identifier,
                                 "keyid:always");
        X509_CRL_add_ext(crl, x, -1);
        if (flags & F_DUP_AKI)
            X509_CRL_add_ext(crl, x, -1);
        X509_EXTENSION_free(x);
    }
    if (!(flags & F_NO_NUMBER)) {
        BIGNUM *bn = BN_new();
        ASN1_INTEGER *n;
        if (flags & F_BIG_NUMBER)
            BN_lshift(bn, BN_value_one(), 70);
        else
            BN_set_word(bn, 42);
        n = BN_to_ASN1_INTEGER(bn, NULL);
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, n, 0, 0);
        ASN1_INTEGER_free(n);
        BN_free(bn);
    }
    if (flags & (F_DELTA | F_DELTA_NONCRIT)) {
        ASN1_INTEGER *n = ASN1_INTEGER_new();
        ASN1_INTEGER_set(n, 1);
        X509_CRL_add1_ext_i2d(crl, NID_delta_crl, n, (flags & F_DELTA) != 0,
                              0);
        ASN1_INTEGER_free(n);
    }
    if (flags & (F_IDP_INDIRECT | F_IDP_ONLYCA | F_IDP_USER |
                 F_IDP_REASONS)) {
        ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();
        idp->indirectCRL = (flags & F_IDP_INDIRECT) != 0;
        idp->onlyCA = (flags & F_IDP_ONLYCA) != 0;
        idp->onlyuser = (flags & F_IDP_USER) != 0;
        if (flags & F_IDP_REASONS) {
            idp->onlysomereasons = ASN1_BIT_STRING_new();
            ASN1_BIT_STRING_set_bit(idp->onlysomereasons, 1, 1);
        }
        X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, idp, 1,
                              0);
        ISSUING_DIST_POINT_free(idp);
    }
    if (flags & (F_CRIT_UNKNOWN | F_NONCRIT_UNKNOWN)) {
        X509_EXTENSION *x = raw_ext("1.2.3.4.6",
                                    (flags & F_CRIT_UNKNOWN) != 0);
        X509_CRL_add_ext(crl, x, -1);
        X509_EXTENSION_free(x);
    }
}

/* A CRL named name (or aki_ca's subject), signed by key. */
static uint8_t *mk_crl(EVP_PKEY *key, X509 *aki_ca, const X509_NAME *name,
                       time_t last, time_t next, const mk_entry *es, size_t n,
                       int flags, const EVP_MD *md, size_t *len)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t1 = ASN1_TIME_set(NULL, last), *t2 = NULL;
    unsigned char *der = NULL;
    size_t i;
    int l;

    X509_CRL_set_version(crl, (flags & F_V1) ? X509_CRL_VERSION_1
                              : (flags & F_VERSION3) ? 2
                              : X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl, name ? name
                                       : X509_get_subject_name(aki_ca));
    X509_CRL_set1_lastUpdate(crl, t1);
    if (next != 0) {
        t2 = ASN1_TIME_set(NULL, next);
        X509_CRL_set1_nextUpdate(crl, t2);
    }
    for (i = 0; i < n; i++)
        add_entry(crl, &es[i]);
    if (!(flags & F_V1))
        add_crl_exts(crl, aki_ca, flags);
    if (X509_CRL_sign(crl, key, md) <= 0)
        diag("X509_CRL_sign failed");
    l = i2d_X509_CRL(crl, &der);
    *len = l > 0 ? (size_t)l : 0;
    ASN1_TIME_free(t1);
    ASN1_TIME_free(t2);
    X509_CRL_free(crl);
    return der;
}

/* A serial of the given (positive) byte length, or the serial of a cert. */
static BIGNUM *serial_of(const char *certname)
{
    X509 *x = load_x509(certname);
    BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)
                   : BN_new();
    X509_free(x);
    return bn;
}

/* ---- tests --------------------------------------------------------- */

static EVP_PKEY *ca1k, *ca2k, *otherk, *phonek;
static X509 *ca1, *ca2, *other, *phone;

static void t_files(const jpki_ctx *ctx)
{
    jpki_crl_info info, info2;
    const jpki_issuer *jis = jpki_ctx_issuer(ctx, 0);
    const jpki_issuer *phis = jpki_ctx_issuer(ctx, 1);
    size_t len;
    uint8_t *der = slurp("ca2.crl", &len);
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);

    is_int(verify_file(ctx, "ca2.crl", now, 0, &info), JPKI_OK,
           "ca2.crl (DER) verifies");
    ok(info.issuer == jis, "ca2.crl: issuer is the J-LIS issuer");
    is_int(info.crl_number, 2, "ca2.crl: crlNumber 2");
    is_int(info.entries, 7, "ca2.crl: 7 entries");
    ok(crl != NULL, "OpenSSL parses ca2.crl");
    is_int(info.this_update, t2e(X509_CRL_get0_lastUpdate(crl)),
           "ca2.crl: thisUpdate as OpenSSL reads it");
    is_int(info.next_update, t2e(X509_CRL_get0_nextUpdate(crl)),
           "ca2.crl: nextUpdate as OpenSSL reads it");
    X509_CRL_free(crl);
    free(der);

    is_int(verify_file(ctx, "ca2.crl.pem", now, 0, &info2), JPKI_OK,
           "ca2.crl.pem (PEM) verifies");
    ok(memcmp(&info, &info2, sizeof(info)) == 0, "PEM and DER: same info");

    is_int(verify_file(ctx, "ca1.crl", now, 0, &info), JPKI_OK,
           "ca1.crl verifies (older key generation)");
    ok(info.issuer == jis, "ca1.crl: same issuer");
    is_int(info.crl_number, 1, "ca1.crl: crlNumber 1");
    is_int(info.entries, 1, "ca1.crl: 1 entry");

    is_int(verify_file(ctx, "ca2-empty.crl", now, 0, &info), JPKI_OK,
           "ca2-empty.crl verifies");
    is_int(info.entries, 0, "ca2-empty.crl: no entries");
    is_int(info.crl_number, 4, "ca2-empty.crl: crlNumber 4");

    is_int(verify_file(ctx, "ca2-released.crl", now, 0, &info), JPKI_OK,
           "ca2-released.crl verifies");
    is_int(info.entries, 6, "ca2-released.crl: 6 entries");
    is_int(info.crl_number, 3, "ca2-released.crl: crlNumber 3");

    is_int(verify_file(ctx, "phone-ca.crl", now, 0, &info), JPKI_OK,
           "phone-ca.crl (ECDSA) verifies");
    ok(info.issuer == phis, "phone-ca.crl: the phone issuer");

    is_int(verify_file(ctx, "ca2-wrongkey.crl", now, 0, &info),
           JPKI_ERR_CRL_ISSUER,
           "ca2-wrongkey.crl (J-LIS DN, other-ca key and AKI): crl_issuer");
}

static void t_times(const jpki_ctx *ctx)
{
    jpki_crl_info info, ref;
    time_t next;

    is_int(verify_file(ctx, "ca2-stale.crl", now, 0, &info),
           JPKI_ERR_CRL_STALE, "ca2-stale.crl: stale");
    is_int(info.crl_number, 1, "stale CRL: info still filled (number)");
    is_int(info.entries, 7, "stale CRL: info still filled (entries)");
    is_int(verify_file(ctx, "ca2-stale.crl", now, 5 * 86400, &info),
           JPKI_OK, "ca2-stale.crl with 5 days of grace: ok");
    is_int(verify_file(ctx, "ca2-stale.crl", now, 3 * 86400, &info),
           JPKI_ERR_CRL_STALE, "ca2-stale.crl with 3 days of grace: stale");

    verify_file(ctx, "ca2.crl", now, 0, &ref);
    next = (time_t)ref.next_update;
    is_int(verify_file(ctx, "ca2.crl", next + 299, 0, &info), JPKI_OK,
           "nextUpdate + 299 s, grace 0 (= clock_skew 300): ok");
    is_int(verify_file(ctx, "ca2.crl", next + 301, 0, &info),
           JPKI_ERR_CRL_STALE, "nextUpdate + 301 s, grace 0: stale");
    is_int(verify_file(ctx, "ca2.crl", next + 1000, 1200, &info), JPKI_OK,
           "nextUpdate + 1000 s, grace 1200: ok");
    is_int(verify_file(ctx, "ca2.crl", next + 1201, 1200, &info),
           JPKI_ERR_CRL_STALE, "nextUpdate + 1201 s, grace 1200: stale");

    is_int(verify_file(ctx, "ca2-future.crl", now, 0, &info),
           JPKI_ERR_CRL_NOT_YET_VALID, "ca2-future.crl: not yet valid");
    is_int(verify_file(ctx, "ca2-future.crl", (time_t)info.this_update - 299,
                       0, &info), JPKI_OK,
           "thisUpdate - 299 s (within clock_skew): ok");
    is_int(verify_file(ctx, "ca2-future.crl", (time_t)info.this_update - 301,
                       0, &info), JPKI_ERR_CRL_NOT_YET_VALID,
           "thisUpdate - 301 s: not yet valid");
}

static void t_malformed(const jpki_ctx *ctx)
{
    size_t len, i;
    uint8_t *der = slurp("ca2.crl", &len), *b;
    static const uint8_t junk[] = "this is not a CRL at all";
    int all_parse = 1;
    size_t ulen;
    uint8_t *user = slurp("user1.der", &ulen);
    void *big;

    b = malloc(len + 1);
    for (i = 1; i < len; i++) {
        jpki_err e;
        memcpy(b, der, i);
        e = verify_buf(ctx, b, i, NULL);
        if (e != JPKI_ERR_CRL_PARSE) {
            printf("#   truncated to %zu: %s\n", i, jpki_reason(e));
            all_parse = 0;
        }
    }
    ok(all_parse, "every truncation of ca2.crl: crl_malformed");
    memcpy(b, der, len);
    b[len] = 0;
    is_int(verify_buf(ctx, b, len + 1, NULL), JPKI_ERR_CRL_PARSE,
           "trailing byte: crl_malformed");
    is_int(verify_buf(ctx, junk, sizeof(junk) - 1, NULL), JPKI_ERR_CRL_PARSE,
           "garbage text: crl_malformed");
    is_int(verify_buf(ctx, der, 0, NULL), JPKI_ERR_CRL_PARSE,
           "empty input: crl_malformed");
    is_int(verify_buf(ctx, user, ulen, NULL), JPKI_ERR_CRL_PARSE,
           "a certificate is not a CRL");

    /* a byte of the signature flipped; a byte of the entries flipped */
    memcpy(b, der, len);
    b[len - 5] ^= 0x01;
    is_int(verify_buf(ctx, b, len, NULL), JPKI_ERR_CRL_SIGNATURE,
           "flipped signature bit: crl_signature");
    memcpy(b, der, len);
    b[len / 3] ^= 0x01;
    {
        jpki_err e = verify_buf(ctx, b, len, NULL);
        ok(e == JPKI_ERR_CRL_SIGNATURE || e == JPKI_ERR_CRL_PARSE,
           "flipped tbs bit: rejected (%s)", jpki_reason(e));
    }
    /* a long-form length where the short form fits (not DER) */
    {
        uint8_t nd[4096];
        size_t nl = 0;
        ok(len + 1 < sizeof(nd) && der[1] == 0x82, "ca2.crl: 2-octet length");
        /* 30 82 hi lo -> 30 83 00 hi lo */
        nd[nl++] = 0x30;
        nd[nl++] = 0x83;
        nd[nl++] = 0x00;
        memcpy(nd + nl, der + 2, len - 2);
        nl += len - 2;
        is_int(verify_buf(ctx, nd, nl, NULL), JPKI_ERR_CRL_PARSE,
               "non-minimal length: crl_malformed");
    }
    free(b);
    free(der);
    free(user);

    /* over JPKI_CRL_MAX: refused before reading (lazily mapped pages) */
    big = mmap(NULL, JPKI_CRL_MAX + 1, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big != MAP_FAILED) {
        ((uint8_t *)big)[0] = 0x30;
        is_int(verify_buf(ctx, big, JPKI_CRL_MAX + 1, NULL),
               JPKI_ERR_TOO_LARGE, "over JPKI_CRL_MAX: too_large");
        munmap(big, JPKI_CRL_MAX + 1);
    } else {
        ok(1, "# SKIP cannot map %zu bytes", JPKI_CRL_MAX + 1);
    }
}

static void t_foreach(const jpki_ctx *ctx)
{
    size_t len;
    uint8_t *der = slurp("ca2.crl", &len);
    X509 *jlis[2] = {ca2, ca1};
    strlist got = {0};
    size_t i;
    static const char *reasons[] = {
        "unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
        "superseded", "cessationOfOperation", "certificateHold"};
    static const int codes[] = {0, 1, 2, 3, 4, 5, 6};

    ok(foreach_matches_oracle(ctx, der, len, jlis, 2, 14),
       "ca2.crl: foreach = OpenSSL's entries, once per J-LIS key (14)");
    {
        /* key 0 marks the signing key's cert_ids: what `jpkictl crl sync`
         * stores in the list of that key (crlptr.h) */
        strlist sig = {0}, want = {0}, sig1 = {0}, want1 = {0};
        size_t l1;
        uint8_t *d1 = slurp("ca1.crl", &l1);
        X509 *k1[1] = {ca1};

        jpki_crl_foreach(ctx, der, len, collect_signer_cb, &sig);
        oracle(ctx, der, len, jlis, 1, &want);
        ok(sig.n == 7 && sl_equal(&sig, &want),
           "ca2.crl: the entries of key 0 are ca2's cert_ids (7)");
        if (d1 != NULL) {
            jpki_crl_foreach(ctx, d1, l1, collect_signer_cb, &sig1);
            oracle(ctx, d1, l1, k1, 1, &want1);
        }
        ok(d1 != NULL && sig1.n > 0 && sl_equal(&sig1, &want1),
           "ca1.crl: the entries of key 0 are ca1's cert_ids");
        {
            /* only the signing key's, each once, key 0 */
            strlist only = {0};
            int calls = 0;

            is_int(jpki_crl_foreach_signer(ctx, der, len, collect_cb, &only),
                   JPKI_OK, "foreach_signer: ok");
            ok(only.n == 7 && sl_equal(&only, &want),
               "ca2.crl: foreach_signer gives key 0's 7 entries, no other "
               "key's (foreach: 14)");
            jpki_crl_foreach_signer(ctx, der, len, count_other_keys, &calls);
            is_int(calls, 0, "... none marked with another key");
            sl_free(&only);
        }
        free(d1);
        sl_free(&sig);
        sl_free(&want);
        sl_free(&sig1);
        sl_free(&want1);
    }

    jpki_crl_foreach(ctx, der, len, collect_cb, &got);
    for (i = 0; i < 7; i++) {
        char name[64], want[96];
        jpki_cert *c;
        size_t j;
        int found = 0;

        snprintf(name, sizeof(name), "rev-%s.pem", reasons[i]);
        c = check_cert(ctx, name);
        if (c == NULL) {
            ok(0, "%s checks", name);
            continue;
        }
        snprintf(want, sizeof(want), "%s %d ", jpki_cert_id_hex(c),
                 codes[i]);
        for (j = 0; j < got.n; j++)
            if (strncmp(got.v[j], want, strlen(want)) == 0)
                found = 1;
        ok(found, "foreach: %s has its cert_id and reason %d", name,
           codes[i]);
        jpki_cert_free(c);
    }
    sl_free(&got);
    free(der);
}

static int stop_after_one(void *ud, const jpki_crl_entry *e)
{
    (void)e;
    ++*(int *)ud;
    return 1;
}

static void t_foreach_misc(const jpki_ctx *ctx)
{
    size_t len;
    uint8_t *der = slurp("ca2.crl", &len), *pem;
    size_t plen;
    int calls = 0;
    strlist got = {0};

    is_int(jpki_crl_foreach(ctx, der, len, stop_after_one, &calls),
           JPKI_ERR_IO, "foreach: callback non-zero stops with io error");
    is_int(calls, 1, "foreach: stopped after the first entry");
    der[len - 5] ^= 1;
    is_int(jpki_crl_foreach(ctx, der, len, collect_cb, &got),
           JPKI_ERR_CRL_SIGNATURE, "foreach: signature checked again");
    is_int(got.n, 0, "foreach: nothing emitted from a forged CRL");
    free(der);
    pem = slurp("ca2.crl.pem", &plen);
    is_int(jpki_crl_foreach(ctx, pem, plen, collect_cb, &got), JPKI_OK,
           "foreach accepts PEM too");
    is_int(got.n, 14, "foreach PEM: 14 entries");
    sl_free(&got);
    free(pem);
    der = slurp("ca2-empty.crl", &len);
    is_int(jpki_crl_foreach(ctx, der, len, collect_cb, &got), JPKI_OK,
           "foreach on an empty CRL");
    is_int(got.n, 0, "empty CRL: no entries");
    free(der);
    der = slurp("phone-ca.crl", &len);
    is_int(jpki_crl_foreach(ctx, der, len, collect_cb, &got), JPKI_OK,
           "foreach on the phone CRL");
    free(der);
    sl_free(&got);
}

static void lookup_is(const jpki_crl_index *ix, const jpki_cert *c,
                      jpki_rev_status st, int reason, const char *what)
{
    jpki_rev_info ri;
    jpki_err e = jpki_crl_index_lookup(ix, jpki_cert_id_hex(c), now, 0, &ri);

    if (!tap_ok(e == JPKI_OK && ri.status == st && ri.reason == reason,
                __FILE__, __LINE__, "%s", what))
        printf("#   err %s status %d reason %d\n", jpki_reason(e),
               (int)ri.status, ri.reason);
}

static jpki_crl_index *build(const jpki_ctx *ctx, const char *name,
                             time_t t, jpki_err *err)
{
    size_t len;
    uint8_t *buf = slurp(name, &len);
    jpki_crl_index *ix = NULL;

    *err = jpki_crl_index_build(ctx, buf, len, t, 0, &ix, NULL, 0);
    free(buf);
    return ix;
}

/* Which CRL may replace the one in an issuer's slot. */
static void t_replaces(const jpki_ctx *ctx)
{
    const jpki_issuer *card = jpki_ctx_issuer(ctx, 0);
    const jpki_issuer *ph = jpki_ctx_issuer(ctx, 1);
    jpki_err e1, e2, e3, e4;
    jpki_crl_index *c2 = build(ctx, "ca2.crl", now, &e1);
    jpki_crl_index *c3 = build(ctx, "ca2-released.crl", now, &e2);
    jpki_crl_index *pc = build(ctx, "phone-ca.crl", now, &e3);
    jpki_crl_index *c2b = build(ctx, "ca2.crl", now + 5, &e4);
    char d[128];

    if (!ok(e1 == JPKI_OK && e2 == JPKI_OK && e3 == JPKI_OK && e4 == JPKI_OK,
            "replaces: four indexes build"))
        goto out;
    is_int(jpki_crl_index_replaces(c2, card, NULL, d, sizeof(d)), JPKI_OK,
           "first CRL of the card slot: ok");
    is_int(jpki_crl_index_replaces(c3, card, c2, d, sizeof(d)), JPKI_OK,
           "CRL 3 over CRL 2: ok");
    is_int(jpki_crl_index_replaces(c2b, card, c2, d, sizeof(d)), JPKI_OK,
           "the same CRL again: ok (unchanged)");
    is_int(jpki_crl_index_replaces(c2, card, c3, d, sizeof(d)),
           JPKI_ERR_CRL_STALE, "CRL 2 over CRL 3: crl_stale");
    is_str(d, "older than the CRL loaded", "... detail: older");
    is_int(jpki_crl_index_replaces(pc, card, NULL, d, sizeof(d)),
           JPKI_ERR_CRL_ISSUER, "the phone CA's CRL in the card slot: refused");
    is_str(d, "a CRL of issuer \"phone\", not of \"jpki\"",
           "... detail names both issuers");
    is_int(jpki_crl_index_replaces(pc, card, c2, d, sizeof(d)),
           JPKI_ERR_CRL_ISSUER, "... also over a loaded CRL");
    is_int(jpki_crl_index_replaces(pc, ph, NULL, d, sizeof(d)), JPKI_OK,
           "the phone CA's CRL in its own slot: ok");
    is_int(jpki_crl_index_replaces(NULL, card, c2, d, sizeof(d)),
           JPKI_ERR_INVALID, "no index: invalid");
out:
    jpki_crl_index_free(c2);
    jpki_crl_index_free(c3);
    jpki_crl_index_free(pc);
    jpki_crl_index_free(c2b);
}

static void t_index(const jpki_ctx *ctx)
{
    static const char *reasons[] = {
        "unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
        "superseded", "cessationOfOperation"};
    jpki_cert *u1 = check_cert(ctx, "user1.pem");
    jpki_cert *uo = check_cert(ctx, "user-old.pem");
    jpki_cert *uor = check_cert(ctx, "user-old-revoked.pem");
    jpki_cert *hold = check_cert(ctx, "rev-certificateHold.pem");
    jpki_cert *kc = check_cert(ctx, "rev-keyCompromise.pem");
    jpki_crl_index *ix, *rel, *ix1;
    const jpki_crl_info *ii;
    jpki_rev_info ri;
    jpki_err e;
    size_t i;

    ok(u1 && uo && uor && hold && kc, "test certificates check");
    if (!(u1 && uo && uor && hold && kc))
        return;
    ix = build(ctx, "ca2.crl", now, &e);
    is_int(e, JPKI_OK, "index of ca2.crl builds");
    ii = jpki_crl_index_info(ix);
    ok(ii != NULL && ii->entries == 7 && ii->crl_number == 2,
       "index info: 7 entries, crlNumber 2");
    lookup_is(ix, u1, JPKI_REV_GOOD, JPKI_REASON_NONE, "user1: good");
    lookup_is(ix, uo, JPKI_REV_GOOD, JPKI_REASON_NONE,
              "user-old (ca1) is not in ca2.crl: good");
    lookup_is(ix, hold, JPKI_REV_HOLD, JPKI_REASON_CERTIFICATE_HOLD,
              "rev-certificateHold: hold");
    for (i = 0; i < 6; i++) {
        char name[64];
        jpki_cert *c;
        snprintf(name, sizeof(name), "rev-%s.pem", reasons[i]);
        c = check_cert(ctx, name);
        if (c != NULL)
            lookup_is(ix, c, JPKI_REV_REVOKED, (int)i, name);
        else
            ok(0, "%s checks", name);
        jpki_cert_free(c);
    }
    jpki_crl_index_lookup(ix, jpki_cert_id_hex(kc), now, 0, &ri);
    ok(ri.revoked_at > now - 11 * 86400 && ri.revoked_at < now - 9 * 86400,
       "revoked_at about 10 days ago");
    is_int(ri.cache_ttl, 86400 * 30, "revoked: cache_ttl ocsp_revoked_ttl");
    is_int(ri.this_update, ii->this_update, "lookup: this_update");
    jpki_crl_index_lookup(ix, jpki_cert_id_hex(hold), now, 0, &ri);
    is_int(ri.cache_ttl, 300, "hold: cache_ttl ocsp_hold_ttl");
    jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1), now, 0, &ri);
    is_int(ri.cache_ttl, 3600, "good: cache_ttl capped at ocsp_good_max_ttl");
    jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1),
                          (time_t)ii->next_update - 100, 0, &ri);
    is_int(ri.cache_ttl, 100, "good: cache_ttl up to nextUpdate");

    is_int(jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1),
                                 (time_t)ii->next_update + 301, 0, &ri),
           JPKI_ERR_CRL_STALE, "lookup past nextUpdate + skew: stale");
    ok(ri.status != JPKI_REV_GOOD, "stale lookup is not good");
    is_int(jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1),
                                 (time_t)ii->next_update + 301, 3600, &ri),
           JPKI_OK, "same time with an hour of grace: ok");
    is_int(jpki_crl_index_lookup(ix, "0123", now, 0, &ri), JPKI_ERR_INVALID,
           "short cert_id: invalid");
    is_int(jpki_crl_index_lookup(ix, "zz23456789abcdef0123456789abcdef",
                                 now, 0, &ri), JPKI_ERR_INVALID,
           "non-hex cert_id: invalid");
    is_int(jpki_crl_index_lookup(ix, "0123456789abcdef0123456789abcdef0",
                                 now, 0, &ri), JPKI_ERR_INVALID,
           "long cert_id: invalid");
    {
        char up[33];
        snprintf(up, sizeof(up), "%s", jpki_cert_id_hex(kc));
        for (i = 0; i < 32; i++)
            if (up[i] >= 'a' && up[i] <= 'f')
                up[i] = (char)(up[i] - 'a' + 'A');
        jpki_crl_index_lookup(ix, up, now, 0, &ri);
        is_int(ri.status, JPKI_REV_REVOKED, "upper-case cert_id found too");
    }

    rel = build(ctx, "ca2-released.crl", now, &e);
    is_int(e, JPKI_OK, "index of ca2-released.crl builds");
    lookup_is(rel, hold, JPKI_REV_GOOD, JPKI_REASON_NONE,
              "released hold: good");
    lookup_is(rel, kc, JPKI_REV_REVOKED, JPKI_REASON_KEY_COMPROMISE,
              "released CRL: keyCompromise still revoked");

    ix1 = build(ctx, "ca1.crl", now, &e);
    is_int(e, JPKI_OK, "index of ca1.crl builds");
    lookup_is(ix1, uor, JPKI_REV_REVOKED, JPKI_REASON_KEY_COMPROMISE,
              "user-old-revoked in ca1.crl: revoked");
    lookup_is(ix1, uo, JPKI_REV_GOOD, JPKI_REASON_NONE, "user-old: good");

    ok(build(ctx, "ca2-stale.crl", now, &e) == NULL &&
       e == JPKI_ERR_CRL_STALE, "index of a stale CRL: stale, no index");
    ok(build(ctx, "ca2-future.crl", now, &e) == NULL &&
       e == JPKI_ERR_CRL_NOT_YET_VALID, "index of a future CRL: refused");
    ok(build(ctx, "ca2-wrongkey.crl", now, &e) == NULL &&
       e == JPKI_ERR_CRL_ISSUER, "index of ca2-wrongkey.crl: refused");

    jpki_crl_index_free(ix);
    jpki_crl_index_free(rel);
    jpki_crl_index_free(ix1);
    jpki_crl_index_free(NULL);
    jpki_cert_free(u1);
    jpki_cert_free(uo);
    jpki_cert_free(uor);
    jpki_cert_free(hold);
    jpki_cert_free(kc);
}

/* CRLs built here: issuer identification and refusals. */
static void t_built(const jpki_ctx *ctx, const jpki_ctx *ctx_sha1)
{
    mk_entry e1 = {NULL, 1, 0, 0};
    jpki_crl_info info;
    X509_NAME *alien = X509_NAME_new();
    uint8_t *d;
    size_t n;

    e1.serial = BN_new();
    BN_set_word(e1.serial, 12345);
    e1.at = now - 3600;
    X509_NAME_add_entry_by_txt(alien, "CN", MBSTRING_ASC,
                               (const unsigned char *)"Someone Else", -1, -1,
                               0);

#define BUILT(key, aki, name, flags, md, want, msg) do {                   \
        d = mk_crl(key, aki, name, now - 60, now + 86400, &e1, 1, flags,   \
                   md, &n);                                                \
        is_int(verify_buf(ctx, d, n, &info), want, msg);                   \
        OPENSSL_free(d);                                                   \
    } while (0)

    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_OK,
          "built CRL signed by ca2: ok");
    BUILT(ca2k, ca2, NULL, F_NO_AKI, EVP_sha256(), JPKI_OK,
          "no AKI, signed by ca2: ok (found by trying the keys)");
    BUILT(otherk, other, NULL, F_NO_AKI, EVP_sha256(),
          JPKI_ERR_CRL_SIGNATURE,
          "no AKI, J-LIS name, other-ca key: crl_signature");
    BUILT(otherk, other, alien, F_NO_AKI, EVP_sha256(), JPKI_ERR_CRL_ISSUER,
          "no AKI, unknown name: crl_issuer");
    BUILT(otherk, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_SIGNATURE,
          "AKI of ca2 but other-ca's signature: crl_signature");
    BUILT(otherk, other, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_ISSUER,
          "AKI of other-ca: crl_issuer");
    BUILT(ca2k, ca2, alien, 0, EVP_sha256(), JPKI_ERR_CRL_ISSUER,
          "ca2's key and AKI but another issuer name: crl_issuer");
    BUILT(ca2k, ca2, NULL, F_DELTA, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "delta CRL: refused");
    BUILT(ca2k, ca2, NULL, F_DELTA_NONCRIT, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "delta CRL indicator marked non-critical: refused all the same");
    BUILT(ca2k, ca2, NULL, F_CRIT_UNKNOWN, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "unknown critical CRL extension: refused");
    BUILT(ca2k, ca2, NULL, F_NONCRIT_UNKNOWN, EVP_sha256(), JPKI_OK,
          "unknown non-critical CRL extension: ok");
    BUILT(ca2k, ca2, NULL, F_IDP_INDIRECT, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "indirect CRL: refused");
    BUILT(ca2k, ca2, NULL, F_IDP_ONLYCA, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "CA-only CRL: refused");
    BUILT(ca2k, ca2, NULL, F_IDP_REASONS, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "CRL for some reasons only: refused");
    BUILT(ca2k, ca2, NULL, F_IDP_USER, EVP_sha256(), JPKI_OK,
          "onlyContainsUserCerts CRL: ok");
    BUILT(ca2k, ca2, NULL, F_V1, EVP_sha256(), JPKI_OK, "v1 CRL: ok");
    is_int(info.crl_number, -1, "v1 CRL: no crlNumber (-1)");
    BUILT(ca2k, ca2, NULL, F_BIG_NUMBER, EVP_sha256(), JPKI_OK,
          "crlNumber 2^70: ok");
    is_int(info.crl_number, -1, "crlNumber over int64: -1");
    BUILT(ca2k, ca2, NULL, 0, EVP_sha384(), JPKI_OK, "sha384WithRSA: ok");
    BUILT(ca2k, ca2, NULL, 0, EVP_sha1(), JPKI_ERR_CRL_SIGNATURE,
          "sha1WithRSA without allow_sha1: crl_signature");
    d = mk_crl(ca2k, ca2, NULL, now - 60, now + 86400, &e1, 1, 0, EVP_sha1(),
               &n);
    is_int(verify_buf(ctx_sha1, d, n, &info), JPKI_OK,
           "sha1WithRSA with allow_sha1: ok");
    OPENSSL_free(d);
    BUILT(ca2k, ca2, NULL, 0, EVP_sha224(), JPKI_ERR_CRL_SIGNATURE,
          "sha224WithRSA: crl_signature (algorithm not allowed)");
    BUILT(ca2k, ca2, NULL, F_VERSION3, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "version 3 CRL: crl_malformed");
    BUILT(ca2k, ca2, NULL, F_DUP_AKI, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "authorityKeyIdentifier twice: crl_malformed");
    BUILT(phonek, phone, NULL, 0, EVP_sha256(), JPKI_OK,
          "ECDSA CRL of the phone CA: ok");
    BUILT(phonek, phone, NULL, 0, EVP_sha384(), JPKI_OK,
          "ecdsa-with-SHA384: ok");

    e1.flags = E_CERT_ISSUER;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "entry with certificateIssuer: refused");
    e1.flags = E_CRIT_UNKNOWN;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "entry with an unknown critical extension: refused");
    e1.flags = E_DUP_REASON;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "entry with reasonCode twice: refused");
    e1.flags = E_PADDED_SERIAL;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "entry serial 00 01 (not minimal DER): refused");
    e1.flags = 0;
    e1.reason = 7;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "reasonCode 7 (unused value): refused");
    e1.reason = 11;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_ERR_CRL_PARSE,
          "reasonCode 11: refused");
    e1.reason = 10;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_OK,
          "reasonCode 10 (aACompromise): ok");
    e1.reason = 1;
    e1.flags = E_NONCRIT_UNKNOWN;
    BUILT(ca2k, ca2, NULL, 0, EVP_sha256(), JPKI_OK,
          "entry with an unknown non-critical extension: ok");
    e1.flags = 0;

    /* no nextUpdate */
    d = mk_crl(ca2k, ca2, NULL, now - 60, 0, &e1, 1, 0, EVP_sha256(), &n);
    is_int(verify_buf(ctx, d, n, &info), JPKI_OK, "no nextUpdate: ok");
    is_int(info.next_update, 0, "no nextUpdate: next_update 0");
    OPENSSL_free(d);
#undef BUILT
    BN_free(e1.serial);
    X509_NAME_free(alien);
}

/* Outer signature algorithm or signature BIT STRING altered. */
static void t_patched(const jpki_ctx *ctx)
{
    static const uint8_t alg[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48,
                                  0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                                  0x00};
    size_t len, i, at = 0;
    uint8_t *der = slurp("ca2.crl", &len);

    for (i = 0; der != NULL && i + sizeof(alg) <= len; i++)
        if (memcmp(der + i, alg, sizeof(alg)) == 0)
            at = i;                              /* the last: outer one */
    if (!ok(at > 0 && der[at + 15] == 0x03, "outer sha256WithRSA found"))
        return;
    der[at + 12] = 0x0c;                          /* sha384WithRSA */
    is_int(verify_buf(ctx, der, len, NULL), JPKI_ERR_CRL_PARSE,
           "outer algorithm differs from the signed one: crl_malformed");
    der[at + 12] = 0x0b;
    is_int(verify_buf(ctx, der, len, NULL), JPKI_OK, "(restored: ok)");
    der[at + 15 + 4] = 0x01;                      /* unused bits */
    is_int(verify_buf(ctx, der, len, NULL), JPKI_ERR_CRL_PARSE,
           "signature BIT STRING with unused bits: crl_malformed");
    free(der);
}

/* A configured CA certificate whose keyUsage lacks cRLSign. */
static void t_no_crlsign(void)
{
    jpki_ctx *c3 = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c3, "nocrlsign");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem, err[256];
    long pemlen;
    uint8_t secret[32], *d;
    size_t n;
    mk_entry e = {NULL, 1, 0, 0};
    static const struct { int nid; const char *v; } exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign"},
        {NID_subject_key_identifier, "hash"}};
    size_t i;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"No CRL Sign CA", -1,
                               -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 365);
    X509_set_pubkey(x, otherk);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    for (i = 0; i < 3; i++) {
        ext = X509V3_EXT_nconf_nid(NULL, &v3, exts[i].nid, exts[i].v);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, otherk, EVP_sha256());
    PEM_write_bio_X509(bio, x);
    pemlen = BIO_get_mem_data(bio, &pem);
    memset(secret, 1, sizeof(secret));
    jpki_ctx_set_secret(c3, secret, sizeof(secret));
    ok(jpki_issuer_add_certs(is, (const uint8_t *)pem, (size_t)pemlen, err,
                             sizeof(err)) == JPKI_OK &&
       jpki_ctx_finish(c3, err, sizeof(err)) == JPKI_OK,
       "context with a CA lacking cRLSign");
    e.serial = BN_new();
    BN_set_word(e.serial, 99);
    e.at = now - 100;
    d = mk_crl(otherk, x, NULL, now - 60, now + 86400, &e, 1, 0, EVP_sha256(),
               &n);
    is_int(verify_buf(c3, d, n, NULL), JPKI_ERR_CRL_ISSUER,
           "CRL signed by a CA whose keyUsage lacks cRLSign: crl_issuer");
    OPENSSL_free(d);
    BN_free(e.serial);
    BIO_free(bio);
    X509_free(x);
    jpki_ctx_free(c3);
}

/* Key rollover: a CRL signed with ca2's key that lists a certificate
 * issued under ca1's key (same CA name).  A CRL covers the key that
 * signed it: its index holds its entries under ca2's cert_ids only (the
 * ca1-issued certificate is looked up in ca1's CRL: crlzone.c). */
static void t_rollover(const jpki_ctx *ctx)
{
    mk_entry e = {NULL, 1, 0, 0};
    jpki_cert *uor = check_cert(ctx, "user-old-revoked.pem");
    jpki_cert *u1 = check_cert(ctx, "user1.pem");
    jpki_crl_index *ix = NULL;
    jpki_rev_info ri;
    uint8_t *d;
    size_t n;

    e.serial = serial_of("user-old-revoked.pem");
    e.at = now - 86400;
    d = mk_crl(ca2k, ca2, NULL, now - 60, now + 86400, &e, 1, 0,
               EVP_sha256(), &n);
    is_int(jpki_crl_index_build(ctx, d, n, now, 0, &ix, NULL, 0), JPKI_OK,
           "rollover CRL builds");
    ok(uor != NULL && jpki_crl_index_lookup(ix, jpki_cert_id_hex(uor), now,
                                            0, &ri) == JPKI_OK &&
       ri.status == JPKI_REV_GOOD,
       "ca1-issued cert listed in a CRL signed by ca2's key: not under "
       "ca1's key in its index (the CRL covers ca2's key)");
    ok(uor != NULL && ix != NULL &&
       memcmp(jpki_crl_index_info(ix)->key_hash, uor->issuer_key_hash, 20)
       != 0, "... its key_hash is not the key that issued the certificate");
    ok(u1 != NULL && jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1), now,
                                           0, &ri) == JPKI_OK &&
       ri.status == JPKI_REV_GOOD, "rollover CRL: user1 good");
    jpki_crl_index_free(ix);
    OPENSSL_free(d);
    BN_free(e.serial);
    jpki_cert_free(uor);
    jpki_cert_free(u1);
}

/* The DER walker against OpenSSL on odd serials, dates on both sides of
 * 2050 (UTCTime / GeneralizedTime), missing reasons and many entries. */
static void t_walker(const jpki_ctx *ctx)
{
    enum { N = 5000 };
    mk_entry *es = calloc(N, sizeof(*es));
    X509 *jlis[2] = {ca2, ca1};
    jpki_crl_info info;
    jpki_crl_index *ix = NULL;
    uint8_t *d;
    size_t n, i;
    uint64_t seed = 12345;
    int lookups_ok = 1;

    for (i = 0; i < N; i++) {
        int bytes;
        es[i].serial = BN_new();
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        bytes = 4 + (int)((seed >> 33) % 21);          /* 4 .. 24 */
        BN_rand(es[i].serial, bytes * 8, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        es[i].reason = (int)((seed >> 33) % 12) - 1;     /* -1 .. 10 */
        if (es[i].reason == 7)
            es[i].reason = -1;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        /* 1950 .. 2105 */
        es[i].at = (time_t)(-631152000LL +
                            (int64_t)((seed >> 11) % 4900000000ull));
    }
    BN_zero(es[0].serial);                               /* serial 0 */
    BN_set_word(es[1].serial, 0x81);                     /* 00 81 */
    BN_set_word(es[2].serial, 0x7f);
    BN_set_negative(es[3].serial, 1);                    /* negative */
    BN_set_word(es[4].serial, 0xff);
    BN_set_negative(es[4].serial, 1);
    BN_set_word(es[5].serial, 0x80);
    BN_set_negative(es[5].serial, 1);                    /* -128: 80 */
    BN_set_word(es[6].serial, 0x100);
    BN_set_negative(es[6].serial, 1);                    /* ff 00 */
    BN_rand(es[7].serial, 65 * 8, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY);
    BN_rand(es[8].serial, 64 * 8, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY);
    es[9].at = 2524608000;                               /* 2050-01-01 */
    es[10].at = 2524607999;
    es[11].at = -631152000;                              /* 1950-01-01 */

    d = mk_crl(ca2k, ca2, NULL, now - 60, now + 86400, es, N, 0,
               EVP_sha256(), &n);
    is_int(verify_buf(ctx, d, n, &info), JPKI_OK, "%d-entry CRL verifies",
           N);
    is_int(info.entries, N, "entries counted (also the 65-octet serial)");
    ok(foreach_matches_oracle(ctx, d, n, jlis, 2, 2 * (N - 1)),
       "walker = OpenSSL on %d entries (serial 0, negatives, 64-octet, "
       "GeneralizedTime, no reason)", N);
    is_int(jpki_crl_index_build(ctx, d, n, now, 0, &ix, NULL, 0), JPKI_OK,
           "index of %d entries builds", N);
    for (i = 0; i < N; i++) {
        uint8_t sb[128], kh[20];
        char id[33];
        int sn = BN_num_bytes(es[i].serial);
        jpki_rev_info ri;
        int want_reason = es[i].reason < 0 ? JPKI_REASON_UNSPECIFIED
                                           : es[i].reason;

        if (sn > 64)
            continue;
        BN_bn2bin(es[i].serial, sb);
        /* under the signing key (ca2's) only: the key the CRL covers */
        jpki_key_hash_sha1(ca2, kh);
        jpki_cert_id_compute(ctx, kh, 20, sb, (size_t)sn, id);
        if (jpki_crl_index_lookup(ix, id, now, 0, &ri) != JPKI_OK ||
            (want_reason == 6 ? ri.status != JPKI_REV_HOLD
                              : ri.status != JPKI_REV_REVOKED) ||
            (ri.reason != want_reason) ||
            ri.revoked_at != (es[i].at < 0 ? 0 : es[i].at)) {
            if (lookups_ok)
                printf("#   entry %zu: status %d reason %d at %lld\n", i,
                       (int)ri.status, ri.reason, (long long)ri.revoked_at);
            lookups_ok = 0;
        }
    }
    ok(lookups_ok, "every entry found in the index with its reason and date");
    jpki_crl_index_free(ix);
    OPENSSL_free(d);
    for (i = 0; i < N; i++)
        BN_free(es[i].serial);
    free(es);
}

/* Hold and final revocation of one certificate in the same CRL: the final
 * one wins in the index. */
static void t_duplicates(const jpki_ctx *ctx)
{
    mk_entry es[2] = {{NULL, 6, 0, 0}, {NULL, 1, 0, 0}};
    jpki_cert *u1 = check_cert(ctx, "user1.pem");
    jpki_crl_index *ix = NULL;
    jpki_rev_info ri;
    uint8_t *d;
    size_t n;

    es[0].serial = serial_of("user1.pem");
    es[1].serial = serial_of("user1.pem");
    es[0].at = es[1].at = now - 100;
    d = mk_crl(ca2k, ca2, NULL, now - 60, now + 86400, es, 2, 0,
               EVP_sha256(), &n);
    jpki_crl_index_build(ctx, d, n, now, 0, &ix, NULL, 0);
    ok(u1 && ix && jpki_crl_index_lookup(ix, jpki_cert_id_hex(u1), now, 0,
                                         &ri) == JPKI_OK &&
       ri.status == JPKI_REV_REVOKED && ri.reason == 1,
       "listed on hold and keyCompromise: revoked keyCompromise");
    jpki_crl_index_free(ix);
    OPENSSL_free(d);
    BN_free(es[0].serial);
    BN_free(es[1].serial);
    jpki_cert_free(u1);
}

/* The test PKI's "now": ca2.crl was issued a minute before the script
 * ended, so the tests do not depend on when the PKI was built. */
/* JPKI_CRL_GRACE_VALIDITY: stale only after thisUpdate + 72 h. */
static void t_validity_grace(jpki_ctx *ctx)
{
    size_t len;
    uint8_t *der = slurp("ca2.crl", &len), *stale;
    size_t slen;
    jpki_crl_info info, sinfo;
    jpki_crl_index *ix = NULL;
    jpki_rev_info ri;
    int64_t tu;

    stale = slurp("ca2-stale.crl", &slen);
    is_int(jpki_crl_verify(ctx, der, len, now, 0, &info, NULL, 0), JPKI_OK,
           "validity grace: ca2.crl verifies");
    tu = info.this_update;
    is_int(jpki_crl_verify(ctx, der, len, (time_t)(tu + 2 * 86400), 0, &info,
                           NULL, 0), JPKI_ERR_CRL_STALE,
           "two days on, past nextUpdate: stale with the skew as grace");
    is_int(jpki_crl_verify(ctx, der, len, (time_t)(tu + 2 * 86400),
                           JPKI_CRL_GRACE_VALIDITY, &info, NULL, 0), JPKI_OK,
           "... but within the 72-hour validity: fresh");
    is_int(jpki_crl_verify(ctx, der, len, (time_t)(tu + 72 * 3600 + 1),
                           JPKI_CRL_GRACE_VALIDITY, &info, NULL, 0),
           JPKI_ERR_CRL_STALE, "past thisUpdate + 72 h: stale");
    is_int(jpki_crl_verify(ctx, stale, slen, now, JPKI_CRL_GRACE_VALIDITY,
                           &sinfo, NULL, 0), JPKI_ERR_CRL_STALE,
           "ca2-stale.crl (5 days old) is stale under the validity grace");
    is_int(jpki_crl_index_build(ctx, der, len, now, JPKI_CRL_GRACE_VALIDITY,
                                &ix, NULL, 0), JPKI_OK, "index built");
    is_int(jpki_crl_index_lookup(ix, "00000000000000000000000000000000",
                                 (time_t)(tu + 2 * 86400),
                                 JPKI_CRL_GRACE_VALIDITY, &ri),
           JPKI_OK, "lookup two days on within the validity");
    is_int(jpki_crl_index_lookup(ix, "00000000000000000000000000000000",
                                 (time_t)(tu + 73 * 3600),
                                 JPKI_CRL_GRACE_VALIDITY, &ri),
           JPKI_ERR_CRL_STALE, "lookup after 73 h: stale");
    ok(jpki_crl_stale_after(&info, JPKI_CRL_GRACE_VALIDITY, 300)
       == tu + 72 * 3600, "stale_after = thisUpdate + 72 h");
    jpki_crl_index_free(ix);
    free(der);
    free(stale);
}

static time_t pki_now(void)
{
    size_t len;
    uint8_t *der = slurp("ca2.crl", &len);
    const unsigned char *p = der;
    X509_CRL *crl = der ? d2i_X509_CRL(NULL, &p, (long)len) : NULL;
    time_t t = crl ? (time_t)t2e(X509_CRL_get0_lastUpdate(crl)) + 60
                   : time(NULL);

    X509_CRL_free(crl);
    free(der);
    return t;
}

int main(void)
{
    jpki_ctx *ctx, *ctx_sha1;

    now = pki_now();
    ctx = mkctx(0);
    ctx_sha1 = mkctx(1);
    ca1 = load_x509("ca1.pem");
    ca2 = load_x509("ca2.pem");
    other = load_x509("other-ca.pem");
    phone = load_x509("phone-ca.pem");
    ca1k = load_key("ca1.key");
    ca2k = load_key("ca2.key");
    otherk = load_key("other-ca.key");
    phonek = load_key("phone-ca.key");
    if (!ok(ctx && ctx_sha1 && ca1 && ca2 && other && phone && ca1k &&
            ca2k && otherk && phonek, "test PKI loads (%s)", tap_pki_dir()))
        return done_testing();

    t_files(ctx);
    t_times(ctx);
    t_malformed(ctx);
    t_foreach(ctx);
    t_foreach_misc(ctx);
    t_index(ctx);
    t_replaces(ctx);
    t_built(ctx, ctx_sha1);
    t_patched(ctx);
    t_no_crlsign();
    t_rollover(ctx);
    t_walker(ctx);
    t_duplicates(ctx);
    t_validity_grace(ctx);

    X509_free(ca1);
    X509_free(ca2);
    X509_free(other);
    X509_free(phone);
    EVP_PKEY_free(ca1k);
    EVP_PKEY_free(ca2k);
    EVP_PKEY_free(otherk);
    EVP_PKEY_free(phonek);
    jpki_ctx_free(ctx);
    jpki_ctx_free(ctx_sha1);
    return done_testing();
}
