/*
 * crlstate.c - the local state of a list `jpkictl crl sync` loaded
 * (crlstate.h): its keys, its header, its MAC; read back bounded and
 * checked before anything in it is used.
 */
#include "crlstate.h"
#include "internal.h"

#include <limits.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char MAGIC[12] = "JPKICRLSTATE";
#define VERSION 1u

/* header fields: offset, width */
#define H_LID    16
#define H_PTR    (H_LID + 24)
#define H_SHA    (H_PTR + 200)
#define H_IDC    (H_SHA + 64)
#define H_N      (H_IDC + 32)
#define H_STORED (H_N + 8)
#define H_NB     (H_STORED + 8)
#define H_NONCE  (H_NB + 4)

jpki_err jpki_crlstate_keys_of(const jpki_ctx *ctx, jpki_crlstate_keys *k)
{
    if (ctx == NULL || ctx->secret_len == 0
        || !jpki_hkdf(ctx->secret, ctx->secret_len,
                      "jpki crl state digest v1", k->digest,
                      sizeof(k->digest))
        || !jpki_hkdf(ctx->secret, ctx->secret_len, "jpki crl state mac v1",
                      k->mac, sizeof(k->mac)))
        return JPKI_ERR_INTERNAL;
    return JPKI_OK;
}

size_t jpki_crlstate_size(uint64_t n, uint32_t nb)
{
    uint64_t max = JPKI_CRLSTATE_MAX;

    if (nb > (1u << JPKI_CRL_BITS_MAX)
        || n > (max - JPKI_CRLSTATE_HDR - JPKI_CRLSTATE_MAC - 4ull * nb)
               / JPKI_CRLSTATE_REC)
        return 0;
    return JPKI_CRLSTATE_HDR + 4 * (size_t)nb + (size_t)n * JPKI_CRLSTATE_REC
           + JPKI_CRLSTATE_MAC;
}

static void be_put(uint8_t *p, uint64_t v, int n)
{
    while (n-- > 0) {
        p[n] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

uint32_t jpki_crlstate_count(const uint8_t *counts, uint32_t b)
{
    return (uint32_t)be_get(counts + 4 * (size_t)b, 4);
}

void jpki_crlstate_count_set(uint8_t *counts, uint32_t b, uint32_t v)
{
    be_put(counts + 4 * (size_t)b, v, 4);
}

/* A string into its NUL-padded field; -1 when it fills it. */
static int str_put(uint8_t *field, size_t width, const char *s)
{
    size_t l = strlen(s);

    if (l >= width)
        return -1;
    memset(field, 0, width);
    memcpy(field, s, l);
    return 0;
}

/* A NUL-padded field into out (outlen > the field's length): -1 when it
 * has no NUL, or is longer than out holds. */
static int str_get(char *out, size_t outlen, const uint8_t *field,
                   size_t width)
{
    const uint8_t *z = memchr(field, 0, width);

    if (z == NULL || (size_t)(z - field) >= outlen)
        return -1;
    memcpy(out, field, (size_t)(z - field) + 1);
    return 0;
}

int jpki_crlstate_head(const jpki_crlstate_hdr *h, uint8_t *out)
{
    memset(out, 0, JPKI_CRLSTATE_HDR);
    memcpy(out, MAGIC, sizeof(MAGIC));
    be_put(out + 12, VERSION, 4);
    /* sha and id_check fill their fields exactly (hex digits) */
    if (str_put(out + H_LID, H_PTR - H_LID, h->lid) != 0
        || str_put(out + H_PTR, H_SHA - H_PTR, h->ptr) != 0
        || strlen(h->sha) != H_IDC - H_SHA
        || strlen(h->id_check) != H_N - H_IDC)
        return -1;
    memcpy(out + H_SHA, h->sha, H_IDC - H_SHA);
    memcpy(out + H_IDC, h->id_check, H_N - H_IDC);
    be_put(out + H_N, h->n, 8);
    be_put(out + H_STORED, h->stored, 8);
    be_put(out + H_NB, h->nb, 4);
    /* the MAC's nonce: a key's GMAC nonces must never repeat */
    return RAND_bytes(out + H_NONCE, JPKI_CRLSTATE_NONCE) == 1 ? 0 : -1;
}

/* GMAC: AES-256-GCM over additional data only, in pieces an int holds. */
static int gmac_add(EVP_CIPHER_CTX *c, const uint8_t *p, size_t n)
{
    int l;

    while (n > 0) {
        size_t part = n > (size_t)INT_MAX / 2 ? (size_t)INT_MAX / 2 : n;

        if (EVP_EncryptUpdate(c, NULL, &l, p, (int)part) != 1)
            return 0;
        p += part;
        n -= part;
    }
    return 1;
}

EVP_CIPHER_CTX *jpki_crlstate_mac_begin(const jpki_crlstate_keys *k,
                                        const uint8_t *head, size_t headlen)
{
    EVP_CIPHER_CTX *c;

    if (headlen < JPKI_CRLSTATE_HDR || (c = EVP_CIPHER_CTX_new()) == NULL)
        return NULL;
    if (EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), k->mac, head + H_NONCE,
                            NULL) != 1 || !gmac_add(c, head, headlen)) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

int jpki_crlstate_mac_add(EVP_CIPHER_CTX *c, const uint8_t *p, size_t n)
{
    return c != NULL && gmac_add(c, p, n) ? 0 : -1;
}

int jpki_crlstate_mac_end(EVP_CIPHER_CTX *c, uint8_t mac[JPKI_CRLSTATE_MAC])
{
    uint8_t none[16];
    int l, ok;

    ok = c != NULL && EVP_EncryptFinal_ex(c, none, &l) == 1
         && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, JPKI_CRLSTATE_MAC,
                                mac) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

int jpki_crlstate_mac(const jpki_crlstate_keys *k, const uint8_t *head,
                      size_t headlen, const uint8_t *recs, size_t recslen,
                      uint8_t mac[JPKI_CRLSTATE_MAC])
{
    EVP_CIPHER_CTX *c = jpki_crlstate_mac_begin(k, head, headlen);

    if (jpki_crlstate_mac_add(c, recs, recslen) != 0) {
        EVP_CIPHER_CTX_free(c);
        return -1;
    }
    return jpki_crlstate_mac_end(c, mac);
}

int jpki_crlstate_parse(const uint8_t *buf, size_t len,
                        jpki_crlstate_hdr *h, const uint8_t **counts,
                        const uint8_t **recs)
{
    memset(h, 0, sizeof(*h));
    if (len < JPKI_CRLSTATE_HDR + JPKI_CRLSTATE_MAC
        || memcmp(buf, MAGIC, sizeof(MAGIC)) != 0
        || be_get(buf + 12, 4) != VERSION)
        return -1;
    h->n = be_get(buf + H_N, 8);
    h->stored = be_get(buf + H_STORED, 8);
    h->nb = (uint32_t)be_get(buf + H_NB, 4);
    if (jpki_crlstate_size(h->n, h->nb) != len || h->stored > h->n
        || str_get(h->lid, sizeof(h->lid), buf + H_LID, H_PTR - H_LID) != 0
        || str_get(h->ptr, sizeof(h->ptr), buf + H_PTR, H_SHA - H_PTR) != 0)
        return -1;
    memcpy(h->sha, buf + H_SHA, H_IDC - H_SHA);     /* NUL: memset */
    memcpy(h->id_check, buf + H_IDC, H_N - H_IDC);
    *counts = buf + JPKI_CRLSTATE_HDR;
    *recs = *counts + 4 * (size_t)h->nb;
    return 0;
}

int jpki_crlstate_verify(const jpki_crlstate_keys *k, const uint8_t *buf,
                         size_t len, const jpki_crlstate_hdr *h)
{
    uint8_t mac[JPKI_CRLSTATE_MAC];
    size_t headlen = JPKI_CRLSTATE_HDR + 4 * (size_t)h->nb;

    return jpki_crlstate_size(h->n, h->nb) == len
           && jpki_crlstate_mac(k, buf, headlen, buf + headlen,
                                (size_t)h->n * JPKI_CRLSTATE_REC, mac) == 0
           && CRYPTO_memcmp(mac, buf + len - JPKI_CRLSTATE_MAC, sizeof(mac))
              == 0 ? 0 : -1;
}

int jpki_crlstate_open(const jpki_crlstate_keys *k, const uint8_t *buf,
                       size_t len, jpki_crlstate_hdr *h,
                       const uint8_t **counts, const uint8_t **recs,
                       const char **why)
{
    *why = "does not parse";
    if (jpki_crlstate_parse(buf, len, h, counts, recs) != 0)
        return -1;
    *why = "does not verify";
    if (jpki_crlstate_verify(k, buf, len, h) != 0)
        return -1;
    *why = "";
    return 0;
}
