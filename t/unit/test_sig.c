/* test_sig.c - strict signature verification.  RSA signatures are made here
 * by raw private-key operations over DigestInfo structures the test builds
 * (correct and subtly wrong ones); ECDSA signatures are re-encoded. */
#include "jpki.h"
#include "tap.h"

#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static const uint8_t MSG[] = "AQEAAAAAZz_challenge_text_the_client_signs";
#define MSGLEN (sizeof(MSG) - 1)

static uint8_t *slurp(const char *name, size_t *len)
{
    uint8_t *b = NULL;
    if (jpki_load_file(tap_path(name), 1 << 20, &b, len) != JPKI_OK) {
        printf("# cannot read %s (run make pki)\n", tap_path(name));
        exit(1);
    }
    return b;
}

static EVP_PKEY *load_key(const char *name)
{
    BIO *bio = BIO_new_file(tap_path(name), "r");
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (k == NULL) {
        printf("# cannot load %s\n", name);
        exit(1);
    }
    return k;
}

/* ---- RSA: raw PKCS#1 v1.5 type 1 over bytes we choose -------------- */

static size_t rsa_sign_raw(EVP_PKEY *k, int padding, const uint8_t *tbs,
                           size_t tbslen, uint8_t *sig)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);
    size_t sl = 1024;
    if (pc == NULL || EVP_PKEY_sign_init(pc) != 1
        || EVP_PKEY_CTX_set_rsa_padding(pc, padding) != 1
        || EVP_PKEY_sign(pc, sig, &sl, tbs, tbslen) != 1)
        sl = 0;
    EVP_PKEY_CTX_free(pc);
    return sl;
}

/* DigestInfo prefixes, as RFC 8017 gives them. */
static const uint8_t OID_SHA1[] = {0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t OID_SHA256[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                     0x03, 0x04, 0x02, 0x01};
static const uint8_t OID_SHA384[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                     0x03, 0x04, 0x02, 0x02};
static const uint8_t OID_SHA512[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                     0x03, 0x04, 0x02, 0x03};

enum { DI_GOOD, DI_NO_NULL, DI_LONG_OUTER, DI_LONG_ALGID, DI_LONG_OCTETS,
       DI_TRAILING, DI_TRAILING_IN_LEN, DI_SHORT_HASH };

/* Builds a DigestInfo { AlgorithmIdentifier { oid, NULL }, OCTET STRING h }
 * with one deliberate deviation. */
static size_t digest_info(int variant, const uint8_t *oid, size_t oidlen,
                          const uint8_t *h, size_t hl, uint8_t *out)
{
    uint8_t alg[32], oct[80];
    size_t al = 0, ol = 0, n = 0, body;

    /* AlgorithmIdentifier */
    alg[al++] = 0x30;
    if (variant == DI_LONG_ALGID)
        alg[al++] = 0x81;
    alg[al++] = (uint8_t)(oidlen + (variant == DI_NO_NULL ? 0 : 2));
    memcpy(alg + al, oid, oidlen);
    al += oidlen;
    if (variant != DI_NO_NULL) {
        alg[al++] = 0x05;
        alg[al++] = 0x00;
    }
    /* digest */
    if (variant == DI_SHORT_HASH)
        hl--;
    oct[ol++] = 0x04;
    if (variant == DI_LONG_OCTETS)
        oct[ol++] = 0x81;
    oct[ol++] = (uint8_t)hl;
    memcpy(oct + ol, h, hl);
    ol += hl;
    if (variant == DI_TRAILING_IN_LEN)
        oct[ol++] = 0x00;                 /* inside the SEQUENCE */
    body = al + ol;
    out[n++] = 0x30;
    if (variant == DI_LONG_OUTER)
        out[n++] = 0x81;
    out[n++] = (uint8_t)body;
    memcpy(out + n, alg, al);
    n += al;
    memcpy(out + n, oct, ol);
    n += ol;
    if (variant == DI_TRAILING)
        out[n++] = 0x00;                  /* after the SEQUENCE */
    return n;
}

static size_t hash(const EVP_MD *md, const uint8_t *m, size_t ml, uint8_t *h)
{
    unsigned int n = 0;
    EVP_Digest(m, ml, h, &n, md, NULL);
    return n;
}

static uint8_t *user1_pem, *ec_pem, *ec384_pem;
static size_t user1_len, ec_len, ec384_len;

static jpki_err vrsa(jpki_sig_alg alg, int sha1, const uint8_t *sig,
                     size_t siglen)
{
    return jpki_sig_verify_pubkey(user1_pem, user1_len, alg, sha1, MSG, MSGLEN,
                                  sig, siglen);
}

/* Signs DigestInfo(variant, md) of m with the RSA key; verifies as alg. */
static jpki_err rsa_case(EVP_PKEY *k, int variant, const EVP_MD *md,
                         const uint8_t *oid, size_t oidlen, const uint8_t *m,
                         size_t ml, jpki_sig_alg alg, int sha1)
{
    uint8_t h[64], di[128], sig[1024];
    size_t hl = hash(md, m, ml, h);
    size_t dl = digest_info(variant, oid, oidlen, h, hl, di);
    size_t sl = rsa_sign_raw(k, RSA_PKCS1_PADDING, di, dl, sig);
    if (sl == 0)
        return JPKI_ERR_INTERNAL;
    return vrsa(alg, sha1, sig, sl);
}

static void test_rsa(void)
{
    EVP_PKEY *k = load_key("user1.key");
    static const uint8_t other[] = "another message";
    uint8_t h[64], di[128], sig[1024], em[256];
    size_t sl, dl, hl;
    int i, found = 0;

#define RSA_CASE(var, md, oid, m, ml, alg) \
    rsa_case(k, var, md, oid, sizeof(oid), m, ml, alg, 0)
    is_int(RSA_CASE(DI_GOOD, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_OK,
           "sha256 DigestInfo accepted");
    is_int(RSA_CASE(DI_GOOD, EVP_sha384(), OID_SHA384, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA384), JPKI_OK,
           "sha384 DigestInfo accepted");
    is_int(RSA_CASE(DI_GOOD, EVP_sha512(), OID_SHA512, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA512), JPKI_OK,
           "sha512 DigestInfo accepted");
    is_int(RSA_CASE(DI_NO_NULL, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "DigestInfo without NULL parameters refused");
    is_int(RSA_CASE(DI_LONG_OUTER, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "BER long-form length of the SEQUENCE refused");
    is_int(RSA_CASE(DI_LONG_ALGID, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "BER long-form length of the AlgorithmIdentifier refused");
    is_int(RSA_CASE(DI_LONG_OCTETS, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "BER long-form length of the digest refused");
    is_int(RSA_CASE(DI_TRAILING, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "trailing byte after the DigestInfo refused");
    is_int(RSA_CASE(DI_TRAILING_IN_LEN, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "garbage after the hash inside the SEQUENCE refused");
    is_int(RSA_CASE(DI_SHORT_HASH, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "hash one byte short refused");
    is_int(RSA_CASE(DI_GOOD, EVP_sha256(), OID_SHA256, other,
                    sizeof(other) - 1, JPKI_SIG_RSA_PKCS1_SHA256),
           JPKI_ERR_SIG_INVALID, "hash of another message refused");
    is_int(RSA_CASE(DI_GOOD, EVP_sha384(), OID_SHA384, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA256), JPKI_ERR_SIG_INVALID,
           "sha384 DigestInfo verified as sha256 refused");
    is_int(RSA_CASE(DI_GOOD, EVP_sha256(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA512), JPKI_ERR_SIG_INVALID,
           "sha256 DigestInfo verified as sha512 refused");
    is_int(RSA_CASE(DI_GOOD, EVP_sha384(), OID_SHA256, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA384), JPKI_ERR_SIG_INVALID,
           "sha384 hash under the sha256 OID refused");
    is_int(RSA_CASE(DI_GOOD, EVP_sha1(), OID_SHA1, MSG, MSGLEN,
                    JPKI_SIG_RSA_PKCS1_SHA1), JPKI_ERR_SIG_ALG,
           "sha1 refused without allow_sha1");
    is_int(rsa_case(k, DI_GOOD, EVP_sha1(), OID_SHA1, sizeof(OID_SHA1), MSG,
                    MSGLEN, JPKI_SIG_RSA_PKCS1_SHA1, 1), JPKI_OK,
           "sha1 accepted with allow_sha1");
    is_int(rsa_case(k, DI_NO_NULL, EVP_sha1(), OID_SHA1, sizeof(OID_SHA1), MSG,
                    MSGLEN, JPKI_SIG_RSA_PKCS1_SHA1, 1), JPKI_ERR_SIG_INVALID,
           "sha1 DigestInfo without NULL refused even with allow_sha1");

    /* the bare hash (no DigestInfo) */
    hl = hash(EVP_sha256(), MSG, MSGLEN, h);
    sl = rsa_sign_raw(k, RSA_PKCS1_PADDING, h, hl, sig);
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl), JPKI_ERR_SIG_INVALID,
           "bare hash without DigestInfo refused");

    /* right DigestInfo, block type 2 instead of 1 */
    dl = digest_info(DI_GOOD, OID_SHA256, sizeof(OID_SHA256), h, hl, di);
    memset(em, 0xff, sizeof(em));
    em[0] = 0x00;
    em[1] = 0x02;
    em[sizeof(em) - dl - 1] = 0x00;
    memcpy(em + sizeof(em) - dl, di, dl);
    sl = rsa_sign_raw(k, RSA_NO_PADDING, em, sizeof(em), sig);
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl), JPKI_ERR_SIG_INVALID,
           "block type 2 refused");
    em[1] = 0x01;
    sl = rsa_sign_raw(k, RSA_NO_PADDING, em, sizeof(em), sig);
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl), JPKI_OK,
           "the same block as type 1 accepted (the raw encoder is right)");

    /* a standard signer's output */
    {
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        sl = sizeof(sig);
        EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, k);
        EVP_DigestSign(mc, sig, &sl, MSG, MSGLEN);
        EVP_MD_CTX_free(mc);
        is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl), JPKI_OK,
               "EVP_DigestSign RSA-SHA256 signature accepted");
        sig[sl / 2] ^= 0x40;
        is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl),
               JPKI_ERR_SIG_INVALID, "flipped bit refused");
    }

    /* a signature whose first byte is 0: stripped, it is one byte short */
    for (i = 0; i < 5000 && !found; i++) {
        uint8_t m[64];
        int ml = snprintf((char *)m, sizeof(m), "message %d", i);
        hl = hash(EVP_sha256(), m, (size_t)ml, h);
        dl = digest_info(DI_GOOD, OID_SHA256, sizeof(OID_SHA256), h, hl, di);
        sl = rsa_sign_raw(k, RSA_PKCS1_PADDING, di, dl, sig);
        if (sl == 256 && sig[0] == 0) {
            found = 1;
            is_int(jpki_sig_verify_pubkey(user1_pem, user1_len,
                       JPKI_SIG_RSA_PKCS1_SHA256, 0, m, (size_t)ml, sig, sl),
                   JPKI_OK, "signature with a leading zero byte accepted");
            is_int(jpki_sig_verify_pubkey(user1_pem, user1_len,
                       JPKI_SIG_RSA_PKCS1_SHA256, 0, m, (size_t)ml, sig + 1,
                       sl - 1),
                   JPKI_ERR_SIG_INVALID,
                   "same signature with the zero stripped refused");
        }
    }
    ok(found, "a signature with a leading zero found after %d tries", i);
    /* a signature with a zero byte prepended: one byte too long */
    dl = digest_info(DI_GOOD, OID_SHA256, sizeof(OID_SHA256),
                     h, hash(EVP_sha256(), MSG, MSGLEN, h), di);
    sl = rsa_sign_raw(k, RSA_PKCS1_PADDING, di, dl, sig + 1);
    sig[0] = 0;
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig, sl + 1),
           JPKI_ERR_SIG_INVALID, "zero byte prepended refused");
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig + 1, sl), JPKI_OK,
           "(without it: accepted)");

    /* sizes and NULLs */
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, sig + 1, 0),
           JPKI_ERR_SIG_INVALID, "empty RSA signature");
    is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, NULL, 0), JPKI_ERR_SIG_INVALID,
           "NULL RSA signature");
    {
        uint8_t *big = calloc(1, 100000);
        big[0] = 1;
        is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, big, 100000),
               JPKI_ERR_SIG_INVALID, "huge RSA signature");
        is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, big, 512),
               JPKI_ERR_SIG_INVALID, "RSA signature of 512 bytes");
        memset(big, 0xff, 256);
        is_int(vrsa(JPKI_SIG_RSA_PKCS1_SHA256, 0, big, 256),
               JPKI_ERR_SIG_INVALID, "RSA signature >= modulus");
        free(big);
    }
    is_int(jpki_sig_verify_pubkey(user1_pem, user1_len,
                                  JPKI_SIG_RSA_PKCS1_SHA256, 0, NULL, 5,
                                  sig + 1, sl),
           JPKI_ERR_SIG_INVALID, "NULL message");
    is_int(vrsa(JPKI__SIG_COUNT, 1, sig + 1, sl), JPKI_ERR_SIG_ALG,
           "algorithm out of range");
    is_int(vrsa((jpki_sig_alg)-1, 1, sig + 1, sl), JPKI_ERR_SIG_ALG,
           "negative algorithm");
    EVP_PKEY_free(k);
#undef RSA_CASE
}

/* ---- ECDSA ---------------------------------------------------------- */

static size_t ec_sign(EVP_PKEY *k, const EVP_MD *md, uint8_t *sig)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    size_t sl = 200;
    if (EVP_DigestSignInit(mc, NULL, md, NULL, k) != 1
        || EVP_DigestSign(mc, sig, &sl, MSG, MSGLEN) != 1)
        sl = 0;
    EVP_MD_CTX_free(mc);
    return sl;
}

/* DER INTEGER of a big-endian magnitude; extra_zero: one more 00 octet
 * than DER allows. */
static size_t der_int(const uint8_t *mag, size_t ml, int extra_zero,
                      uint8_t *out)
{
    size_t n = 0;
    while (ml > 1 && mag[0] == 0) {
        mag++;
        ml--;
    }
    out[n++] = 0x02;
    out[n++] = (uint8_t)(ml + (mag[0] & 0x80 ? 1 : 0) + (extra_zero ? 1 : 0));
    if (extra_zero)
        out[n++] = 0x00;
    if (mag[0] & 0x80)
        out[n++] = 0x00;
    memcpy(out + n, mag, ml);
    return n + ml;
}

/* Re-encodes an ECDSA signature: r with an extra zero, and/or a long-form
 * SEQUENCE length. */
static size_t ec_reencode(const uint8_t *sig, size_t sl, int r_extra,
                          int long_seq, uint8_t *out)
{
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
    const BIGNUM *r, *s;
    uint8_t rb[80], sb[80], body[200];
    size_t bl = 0, n = 0;
    int rl, sl2;

    ECDSA_SIG_get0(es, &r, &s);
    rl = BN_bn2bin(r, rb);
    sl2 = BN_bn2bin(s, sb);
    bl += der_int(rb, (size_t)rl, r_extra, body + bl);
    bl += der_int(sb, (size_t)sl2, 0, body + bl);
    ECDSA_SIG_free(es);
    out[n++] = 0x30;
    if (long_seq)
        out[n++] = 0x81;
    out[n++] = (uint8_t)bl;
    memcpy(out + n, body, bl);
    return n + bl;
}

static size_t ec_raw(const uint8_t *sig, size_t sl, size_t half, uint8_t *out)
{
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, out, (int)half);
    BN_bn2binpad(s, out + half, (int)half);
    ECDSA_SIG_free(es);
    return 2 * half;
}

static jpki_err vec(jpki_sig_alg alg, const uint8_t *sig, size_t sl)
{
    return jpki_sig_verify_pubkey(ec_pem, ec_len, alg, 0, MSG, MSGLEN, sig,
                                  sl);
}

static void test_ecdsa(void)
{
    EVP_PKEY *k = load_key("user-ec.key"), *k384 = load_key("phone-user384.key");
    uint8_t sig[200], re[220];
    size_t sl = ec_sign(k, EVP_sha256(), sig), rl;

    is_int(vec(JPKI_SIG_ECDSA_SHA256, sig, sl), JPKI_OK,
           "ECDSA P-256 SHA-256 DER accepted");
    is_int(vec(JPKI_SIG_ECDSA_SHA384, sig, sl), JPKI_ERR_SIG_INVALID,
           "same signature as ECDSA SHA-384 refused");
    rl = ec_reencode(sig, sl, 0, 0, re);
    ok(rl == sl && memcmp(re, sig, sl) == 0, "re-encoder gives DER back");
    rl = ec_reencode(sig, sl, 1, 0, re);
    is_int(vec(JPKI_SIG_ECDSA_SHA256, re, rl), JPKI_ERR_SIG_INVALID,
           "r with a superfluous leading 00 (BER) refused");
    rl = ec_reencode(sig, sl, 0, 1, re);
    is_int(vec(JPKI_SIG_ECDSA_SHA256, re, rl), JPKI_ERR_SIG_INVALID,
           "long-form SEQUENCE length (BER) refused");
    rl = ec_raw(sig, sl, 32, re);
    is_int(vec(JPKI_SIG_ECDSA_SHA256, re, rl), JPKI_ERR_SIG_INVALID,
           "raw r||s refused");
    memcpy(re, sig, sl);
    re[sl] = 0;
    is_int(vec(JPKI_SIG_ECDSA_SHA256, re, sl + 1), JPKI_ERR_SIG_INVALID,
           "trailing byte refused");
    is_int(vec(JPKI_SIG_ECDSA_SHA256, sig, sl - 1), JPKI_ERR_SIG_INVALID,
           "truncated signature refused");
    memcpy(re, sig, sl);
    re[sl - 1] ^= 1;
    is_int(vec(JPKI_SIG_ECDSA_SHA256, re, sl), JPKI_ERR_SIG_INVALID,
           "tampered s refused");
    is_int(vec(JPKI_SIG_ECDSA_SHA256, sig, 0), JPKI_ERR_SIG_INVALID,
           "empty ECDSA signature");
    is_int(vec(JPKI_SIG_ECDSA_SHA256, NULL, 0), JPKI_ERR_SIG_INVALID,
           "NULL ECDSA signature");
    {
        uint8_t *big = calloc(1, 100000);
        memcpy(big, sig, sl);
        is_int(vec(JPKI_SIG_ECDSA_SHA256, big, 100000), JPKI_ERR_SIG_INVALID,
               "huge ECDSA signature");
        is_int(vec(JPKI_SIG_ECDSA_SHA256, big, 161), JPKI_ERR_SIG_INVALID,
               "ECDSA signature of 161 bytes");
        free(big);
    }

    /* P-384 */
    sl = ec_sign(k384, EVP_sha384(), sig);
    is_int(jpki_sig_verify_pubkey(ec384_pem, ec384_len, JPKI_SIG_ECDSA_SHA384,
                                  0, MSG, MSGLEN, sig, sl),
           JPKI_OK, "ECDSA P-384 SHA-384 accepted");
    rl = ec_raw(sig, sl, 48, re);
    is_int(jpki_sig_verify_pubkey(ec384_pem, ec384_len, JPKI_SIG_ECDSA_SHA384,
                                  0, MSG, MSGLEN, re, rl),
           JPKI_ERR_SIG_INVALID, "P-384 raw r||s refused");
    EVP_PKEY_free(k);
    EVP_PKEY_free(k384);
}

/* ---- key types and key forms --------------------------------------- */

static void test_keys(void)
{
    EVP_PKEY *rk = load_key("user1.key"), *ek = load_key("user-ec.key");
    uint8_t rsig[512], esig[200], *spki = NULL, *buf;
    size_t rsl, esl, dl;
    int spl;
    char *pem;
    BIO *bio;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();

    rsl = sizeof(rsig);
    EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, rk);
    EVP_DigestSign(mc, rsig, &rsl, MSG, MSGLEN);
    EVP_MD_CTX_free(mc);
    esl = ec_sign(ek, EVP_sha256(), esig);

    is_int(jpki_sig_verify_pubkey(ec_pem, ec_len, JPKI_SIG_RSA_PKCS1_SHA256,
                                  0, MSG, MSGLEN, rsig, rsl),
           JPKI_ERR_SIG_ALG, "RSA algorithm with an EC key");
    is_int(jpki_sig_verify_pubkey(user1_pem, user1_len, JPKI_SIG_ECDSA_SHA256,
                                  0, MSG, MSGLEN, esig, esl),
           JPKI_ERR_SIG_ALG, "ECDSA algorithm with an RSA key");

    /* key forms: certificate PEM/DER, SPKI PEM/DER/base64 */
    spl = i2d_PUBKEY(rk, &spki);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rk);
    dl = (size_t)BIO_get_mem_data(bio, &pem);
    is_int(jpki_sig_verify_pubkey((uint8_t *)pem, dl, JPKI_SIG_RSA_PKCS1_SHA256,
                                  0, MSG, MSGLEN, rsig, rsl),
           JPKI_OK, "SPKI PEM key");
    is_int(jpki_sig_verify_pubkey(spki, (size_t)spl, JPKI_SIG_RSA_PKCS1_SHA256,
                                  0, MSG, MSGLEN, rsig, rsl),
           JPKI_OK, "SPKI DER key");
    {
        char *b64 = malloc(jpki_b64_encoded_len((size_t)spl, 0) + 1);
        jpki_b64_encode(spki, (size_t)spl, b64, 0);
        is_int(jpki_sig_verify_pubkey((uint8_t *)b64, strlen(b64),
                                      JPKI_SIG_RSA_PKCS1_SHA256, 0, MSG,
                                      MSGLEN, rsig, rsl),
               JPKI_OK, "SPKI base64 key");
        free(b64);
    }
    buf = malloc((size_t)spl + 1);
    memcpy(buf, spki, (size_t)spl);
    buf[spl] = 0;
    is_int(jpki_sig_verify_pubkey(buf, (size_t)spl + 1,
                                  JPKI_SIG_RSA_PKCS1_SHA256, 0, MSG, MSGLEN,
                                  rsig, rsl),
           JPKI_ERR_PARSE, "SPKI DER with a trailing byte refused");
    is_int(jpki_sig_verify_pubkey(buf, (size_t)spl - 1,
                                  JPKI_SIG_RSA_PKCS1_SHA256, 0, MSG, MSGLEN,
                                  rsig, rsl),
           JPKI_ERR_PARSE, "truncated SPKI DER refused");
    free(buf);
    BIO_free(bio);
    OPENSSL_free(spki);
    {
        size_t n;
        uint8_t *der = slurp("user1.der", &n);
        is_int(jpki_sig_verify_pubkey(der, n, JPKI_SIG_RSA_PKCS1_SHA256, 0,
                                      MSG, MSGLEN, rsig, rsl),
               JPKI_OK, "certificate DER as key");
        der = realloc(der, n + 1);
        der[n] = 0;
        is_int(jpki_sig_verify_pubkey(der, n + 1, JPKI_SIG_RSA_PKCS1_SHA256, 0,
                                      MSG, MSGLEN, rsig, rsl),
               JPKI_ERR_PARSE, "certificate DER with a trailing byte refused");
        free(der);
        der = slurp("user1.key", &n);
        is_int(jpki_sig_verify_pubkey(der, n, JPKI_SIG_RSA_PKCS1_SHA256, 0,
                                      MSG, MSGLEN, rsig, rsl),
               JPKI_ERR_PARSE, "private key PEM refused as a public key");
        free(der);
    }
    is_int(jpki_sig_verify_pubkey((const uint8_t *)"junk", 4,
                                  JPKI_SIG_RSA_PKCS1_SHA256, 0, MSG, MSGLEN,
                                  rsig, rsl),
           JPKI_ERR_PARSE, "garbage key");
    is_int(jpki_sig_verify_pubkey((const uint8_t *)"", 0,
                                  JPKI_SIG_RSA_PKCS1_SHA256, 0, MSG, MSGLEN,
                                  rsig, rsl),
           JPKI_ERR_PARSE, "empty key");

    /* through a checked certificate and the ctx's allow_sha1 */
    {
        char err[256];
        jpki_ctx *c[2];
        jpki_cert *u = NULL, *uc = NULL, *e = NULL;
        size_t n;
        uint8_t *der, h[20], di[64], s1[512];
        size_t s1l;
        int i;

        for (i = 0; i < 2; i++) {
            c[i] = jpki_ctx_new();
            jpki_ctx_set_secret(c[i], (const uint8_t *)
                                "0123456789abcdef0123456789abcdef", 32);
            jpki_issuer_add_certs_file(jpki_ctx_add_issuer(c[i], "card"),
                                       tap_path("ca2.pem"), err, sizeof(err));
            jpki_ctx_policy(c[i])->allow_sha1 = (unsigned)i;
            jpki_ctx_finish(c[i], err, sizeof(err));
        }
        der = slurp("user1.der", &n);
        jpki_cert_check(c[0], der, n, time(NULL), &u, NULL, 0);
        jpki_cert_check(c[0], der, n, time(NULL), &uc, NULL, 0);
        free(der);
        der = slurp("user-ec.der", &n);
        jpki_cert_check(c[0], der, n, time(NULL), &e, NULL, 0);
        free(der);
        ok(u && uc && e && jpki_cert_cached(uc), "user1 (twice) and user-ec checked");
        if (u && uc && e) {
            is_int(jpki_cert_verify_sig(c[0], u, JPKI_SIG_RSA_PKCS1_SHA256,
                                        MSG, MSGLEN, rsig, rsl),
                   JPKI_OK, "cert_verify_sig RSA");
            is_int(jpki_cert_verify_sig(c[0], uc, JPKI_SIG_RSA_PKCS1_SHA256,
                                        MSG, MSGLEN, rsig, rsl),
                   JPKI_OK, "cert_verify_sig with a cached cert");
            is_int(jpki_cert_verify_sig(c[0], u, JPKI_SIG_RSA_PKCS1_SHA256,
                                        MSG, MSGLEN - 1, rsig, rsl),
                   JPKI_ERR_SIG_INVALID, "cert_verify_sig other message");
            is_int(jpki_cert_verify_sig(c[0], e, JPKI_SIG_ECDSA_SHA256, MSG,
                                        MSGLEN, esig, esl),
                   JPKI_OK, "cert_verify_sig ECDSA");
            is_int(jpki_cert_verify_sig(c[0], e, JPKI_SIG_RSA_PKCS1_SHA256,
                                        MSG, MSGLEN, rsig, rsl),
                   JPKI_ERR_SIG_ALG, "cert_verify_sig RSA alg on EC cert");
            is_int(jpki_cert_verify_sig(c[0], u, JPKI_SIG_ECDSA_SHA256, MSG,
                                        MSGLEN, esig, esl),
                   JPKI_ERR_SIG_ALG, "cert_verify_sig ECDSA alg on RSA cert");
            hash(EVP_sha1(), MSG, MSGLEN, h);
            n = digest_info(DI_GOOD, OID_SHA1, sizeof(OID_SHA1), h, 20, di);
            s1l = rsa_sign_raw(rk, RSA_PKCS1_PADDING, di, n, s1);
            is_int(jpki_cert_verify_sig(c[0], u, JPKI_SIG_RSA_PKCS1_SHA1, MSG,
                                        MSGLEN, s1, s1l),
                   JPKI_ERR_SIG_ALG, "sha1 refused by policy (allow_sha1 0)");
            is_int(jpki_cert_verify_sig(c[1], u, JPKI_SIG_RSA_PKCS1_SHA1, MSG,
                                        MSGLEN, s1, s1l),
                   JPKI_OK, "sha1 accepted with allow_sha1 1");
        }
        jpki_cert_free(u);
        jpki_cert_free(uc);
        jpki_cert_free(e);
        jpki_ctx_free(c[0]);
        jpki_ctx_free(c[1]);
    }
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ek);
}

int main(void)
{
    user1_pem = slurp("user1.pem", &user1_len);
    ec_pem = slurp("user-ec.pem", &ec_len);
    ec384_pem = slurp("phone-user384.pem", &ec384_len);
    test_rsa();
    test_ecdsa();
    test_keys();
    free(user1_pem);
    free(ec_pem);
    free(ec384_pem);
    return done_testing();
}
