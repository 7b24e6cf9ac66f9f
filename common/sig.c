/* sig.c - strict signature verification over a challenge.
 *
 * RSASSA-PKCS1-v1_5: the signature is opened with the public key (padding
 * type 1 checked by OpenSSL) and the recovered DigestInfo must equal, byte
 * for byte, the one DER encoding RFC 8017 gives for the hash: no BER, no
 * missing NULL, no trailing data.  The signature must be exactly as long as
 * the modulus.
 * ECDSA: the ECDSA-Sig-Value must be DER (re-encoding it gives the same
 * bytes), then verified over the hash. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/rsa.h>

/* DigestInfo prefixes (RFC 8017 section 9.2, note 1). */
static const uint8_t pfx_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b,
    0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
static const uint8_t pfx_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t pfx_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60,
    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t pfx_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60,
    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

static const EVP_MD *alg_md(jpki_sig_alg alg)
{
    switch (alg) {
    case JPKI_SIG_RSA_PKCS1_SHA256:
    case JPKI_SIG_ECDSA_SHA256:
        return jpki_md(JPKI_MD_SHA256);
    case JPKI_SIG_RSA_PKCS1_SHA384:
    case JPKI_SIG_ECDSA_SHA384:
        return jpki_md(JPKI_MD_SHA384);
    case JPKI_SIG_RSA_PKCS1_SHA512:
        return jpki_md(JPKI_MD_SHA512);
    case JPKI_SIG_RSA_PKCS1_SHA1:
        return jpki_md(JPKI_MD_SHA1);
    default:
        return NULL;
    }
}

static int alg_is_rsa(jpki_sig_alg alg)
{
    return alg <= JPKI_SIG_RSA_PKCS1_SHA1;
}

/* The verification contexts of the keys a thread verified last, set up
 * once (EVP_PKEY_CTX_new and the operation's init cost OpenSSL 3.0 method
 * lookups, about a tenth of a login) and reused: one thread uses its own,
 * one operation at a time.  Keyed by the key's address: a context holds a
 * reference to its key, so no other key can have that address while it
 * is here.  Freed when the thread ends. */
#define VT_N 32
typedef struct {
    EVP_PKEY *k[VT_N];
    EVP_PKEY_CTX *c[VT_N];
    unsigned next;
} vt_table;

static pthread_key_t vt_key;
static pthread_once_t vt_once = PTHREAD_ONCE_INIT;
static int vt_ok;

static void vt_free(void *p)
{
    vt_table *t = p;
    unsigned i;

    for (i = 0; i < VT_N; i++)
        EVP_PKEY_CTX_free(t->c[i]);
    free(t);
}

static void vt_init(void)
{
    vt_ok = pthread_key_create(&vt_key, vt_free) == 0;
}

/* A context of k set up for verify_recover with PKCS#1 padding (rsa) or
 * verify (ECDSA); *owned: the caller frees it (no table here). */
static EVP_PKEY_CTX *verify_ctx(EVP_PKEY *k, int rsa, int *owned)
{
    vt_table *t = NULL;
    EVP_PKEY_CTX *pc;
    unsigned i;

    pthread_once(&vt_once, vt_init);
    if (vt_ok && (t = pthread_getspecific(vt_key)) == NULL
        && (t = calloc(1, sizeof(*t))) != NULL
        && pthread_setspecific(vt_key, t) != 0) {
        free(t);
        t = NULL;
    }
    for (i = 0; t != NULL && i < VT_N; i++)
        if (t->k[i] == k && t->c[i] != NULL) {
            *owned = 0;
            return t->c[i];
        }
    pc = EVP_PKEY_CTX_new(k, NULL);
    if (pc == NULL
        || (rsa ? EVP_PKEY_verify_recover_init(pc) != 1
                  || EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1
                : EVP_PKEY_verify_init(pc) != 1)) {
        EVP_PKEY_CTX_free(pc);
        ERR_clear_error();
        return NULL;
    }
    *owned = t == NULL;
    if (t != NULL) {
        i = t->next++ % VT_N;
        EVP_PKEY_CTX_free(t->c[i]);
        t->k[i] = k;
        t->c[i] = pc;
    }
    return pc;
}

static jpki_err verify_rsa(EVP_PKEY *k, jpki_sig_alg alg, const uint8_t *h,
                           size_t hl, const uint8_t *sig, size_t siglen)
{
    const uint8_t *pfx;
    size_t pl, outlen;
    uint8_t expect[128], out[1024];
    EVP_PKEY_CTX *pc;
    int r, owned = 0;

    switch (alg) {
    case JPKI_SIG_RSA_PKCS1_SHA1: pfx = pfx_sha1; pl = sizeof(pfx_sha1); break;
    case JPKI_SIG_RSA_PKCS1_SHA256:
        pfx = pfx_sha256; pl = sizeof(pfx_sha256); break;
    case JPKI_SIG_RSA_PKCS1_SHA384:
        pfx = pfx_sha384; pl = sizeof(pfx_sha384); break;
    default: pfx = pfx_sha512; pl = sizeof(pfx_sha512); break;
    }
    if (siglen != (size_t)EVP_PKEY_get_size(k) || siglen > sizeof(out))
        return JPKI_ERR_SIG_INVALID;
    memcpy(expect, pfx, pl);
    memcpy(expect + pl, h, hl);
    pc = verify_ctx(k, 1, &owned);
    if (pc == NULL)
        return JPKI_ERR_NOMEM;
    outlen = sizeof(out);
    r = EVP_PKEY_verify_recover(pc, out, &outlen, sig, siglen) == 1;
    if (owned)
        EVP_PKEY_CTX_free(pc);
    ERR_clear_error();
    if (!r || outlen != pl + hl || !jpki_ct_equal(out, expect, pl + hl))
        return JPKI_ERR_SIG_INVALID;
    return JPKI_OK;
}

static jpki_err verify_ecdsa(EVP_PKEY *k, const uint8_t *h, size_t hl,
                             const uint8_t *sig, size_t siglen)
{
    const unsigned char *p = sig;
    unsigned char *re = NULL;
    ECDSA_SIG *es;
    EVP_PKEY_CTX *pc;
    int relen, r, owned = 0;

    if (siglen == 0 || siglen > 160)
        return JPKI_ERR_SIG_INVALID;
    es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    if (es == NULL || p != sig + siglen) {
        ECDSA_SIG_free(es);
        ERR_clear_error();
        return JPKI_ERR_SIG_INVALID;
    }
    relen = i2d_ECDSA_SIG(es, &re);
    ECDSA_SIG_free(es);
    if (relen != (int)siglen || memcmp(re, sig, siglen) != 0) {
        OPENSSL_free(re);
        return JPKI_ERR_SIG_INVALID;       /* not DER */
    }
    OPENSSL_free(re);
    pc = verify_ctx(k, 0, &owned);
    if (pc == NULL)
        return JPKI_ERR_NOMEM;
    r = EVP_PKEY_verify(pc, sig, siglen, h, hl) == 1;
    if (owned)
        EVP_PKEY_CTX_free(pc);
    ERR_clear_error();
    return r ? JPKI_OK : JPKI_ERR_SIG_INVALID;
}

static jpki_err verify_key(EVP_PKEY *k, jpki_sig_alg alg, int allow_sha1,
                           const uint8_t *msg, size_t msglen,
                           const uint8_t *sig, size_t siglen)
{
    const EVP_MD *md = alg_md(alg);
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;

    if (md == NULL || (alg == JPKI_SIG_RSA_PKCS1_SHA1 && !allow_sha1))
        return JPKI_ERR_SIG_ALG;
    if (alg_is_rsa(alg) ? !EVP_PKEY_is_a(k, "RSA") : !EVP_PKEY_is_a(k, "EC"))
        return JPKI_ERR_SIG_ALG;
    if (sig == NULL || msg == NULL)
        return JPKI_ERR_SIG_INVALID;
    if (EVP_Digest(msg, msglen, h, &hl, md, NULL) != 1)
        return JPKI_ERR_INTERNAL;
    if (alg_is_rsa(alg))
        return verify_rsa(k, alg, h, hl, sig, siglen);
    return verify_ecdsa(k, h, hl, sig, siglen);
}

jpki_err jpki_cert_verify_sig(const jpki_ctx *ctx, const jpki_cert *c,
                              jpki_sig_alg alg, const uint8_t *msg,
                              size_t msglen, const uint8_t *sig,
                              size_t siglen)
{
    return verify_key(c->pkey, alg, (int)ctx->policy.allow_sha1, msg, msglen,
                      sig, siglen);
}

static EVP_PKEY *load_pubkey(const uint8_t *key, size_t keylen)
{
    uint8_t *der = NULL;
    size_t derlen = 0;
    const unsigned char *p;
    EVP_PKEY *k = NULL;
    X509 *x;

    if (jpki_to_der(key, keylen, "PUBLIC KEY", JPKI_MAX_CERT_LEN, &der,
                    &derlen) == JPKI_OK) {
        p = der;
        k = d2i_PUBKEY(NULL, &p, (long)derlen);
        if (k != NULL && p != der + derlen) {
            EVP_PKEY_free(k);
            k = NULL;
        }
        free(der);
    }
    if (k == NULL && jpki_to_der(key, keylen, "CERTIFICATE",
                                 JPKI_MAX_CERT_LEN, &der, &derlen) == JPKI_OK) {
        p = der;
        x = d2i_X509(NULL, &p, (long)derlen);
        if (x != NULL && p == der + derlen)
            k = X509_get_pubkey(x);
        X509_free(x);
        free(der);
    }
    ERR_clear_error();
    return k;
}

jpki_err jpki_sig_verify_pubkey(const uint8_t *key, size_t keylen,
                                jpki_sig_alg alg, int allow_sha1,
                                const uint8_t *msg, size_t msglen,
                                const uint8_t *sig, size_t siglen)
{
    EVP_PKEY *k = load_pubkey(key, keylen);
    jpki_err e;

    if (k == NULL)
        return JPKI_ERR_PARSE;
    e = verify_key(k, alg, allow_sha1, msg, msglen, sig, siglen);
    EVP_PKEY_free(k);
    return e;
}
