/* session.c - sealed session cookies.
 *
 * cookie = "v1." base64url(key_id(1) | iv(12) | ciphertext | tag(16))
 * AES-256-GCM under the session key of key_id, AAD = "jpki-session-v1" |
 * key_id.  Plaintext (all integers big-endian):
 *   auth_time(8) expires(8) idle_deadline(8) rev_checked(8) flags(1)
 *   cert_id(16) issuer_tag(8) sid(16) ref_len(1) rev_ref account_len(1)
 *   account */
#include "internal.h"

#include <string.h>

#include <openssl/crypto.h>

#define S_PREFIX   "v1."
#define S_HEAD     (8 * 4 + 1 + 16 + 8 + 16)
#define S_FIXED    (S_HEAD + 2)
#define S_REF_MAX  53
#define S_PT_MAX   (S_FIXED + S_REF_MAX + JPKI_ACCOUNT_MAX)
#define S_RAW_MAX  (1 + 12 + S_PT_MAX + 16)
static const char s_aad[] = "jpki-session-v1";

/* Length of the UTF-8 sequence at p (1..4), 0 when invalid or overlong. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    size_t n, i;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) { n = 2; cp = p[0] & 0x1f; }
    else if (p[0] >= 0xe0 && p[0] <= 0xef) { n = 3; cp = p[0] & 0x0f; }
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) { n = 4; cp = p[0] & 0x07; }
    else return 0;
    if (left < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

int jpki_account_valid(const char *a, size_t len)
{
    size_t i, n;
    if (a == NULL || len == 0 || len > JPKI_ACCOUNT_MAX)
        return 0;
    for (i = 0; i < len; i += n) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return 0;
        n = utf8_seq((const unsigned char *)a + i, len - i);
        if (n == 0)
            return 0;
    }
    return 1;
}

void jpki_put64(uint8_t *p, int64_t v)
{
    int i;
    for (i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

int64_t jpki_get64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static int unhex_fixed(const char *hex, uint8_t *out, size_t n)
{
    size_t got = 0;
    return strlen(hex) == 2 * n
           && jpki_hex_decode(hex, 2 * n, out, n, &got) == JPKI_OK
           && got == n;
}

int jpki_gcm(int enc, const uint8_t key[32], const uint8_t iv[12],
             const uint8_t *aad, size_t aadlen, const uint8_t *in,
             size_t inlen, uint8_t *out, uint8_t tag[16])
{
    EVP_CIPHER_CTX *c = jpki_cipher_ctx();
    int n = 0, ok;

    if (c == NULL)
        return 0;
    ok = EVP_CipherInit_ex(c, jpki_aes256gcm(), NULL, key, iv, enc) == 1
         && (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1)
         && EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) == 1
         && EVP_CipherUpdate(c, out, &n, in, (int)inlen) == 1
         && EVP_CipherFinal_ex(c, out + n, &n) == 1
         && (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1);
    if (!ok) {
        EVP_CIPHER_CTX_reset(c);            /* no state kept after a failure */
        ERR_clear_error();
    }
    return ok;
}

/* A session's: its AAD names the key that sealed it. */
static int gcm(int enc, const uint8_t key[32], const uint8_t iv[12],
               uint8_t kid, const uint8_t *in, size_t inlen, uint8_t *out,
               uint8_t tag[16])
{
    uint8_t aad[sizeof(s_aad)];

    memcpy(aad, s_aad, sizeof(s_aad) - 1);
    aad[sizeof(s_aad) - 1] = kid;
    return jpki_gcm(enc, key, iv, aad, sizeof(aad), in, inlen, out, tag);
}

jpki_err jpki_session_seal(const jpki_ctx *ctx, const jpki_session *s,
                           char *out, size_t outmax, size_t *outlen)
{
    uint8_t pt[S_PT_MAX], raw[S_RAW_MAX], *p = pt;
    const jpki_ring_key *k;
    size_t alen = strlen(s->account), ptlen, rawlen;

    if (!ctx->finished || !jpki_account_valid(s->account, alen))
        return JPKI_ERR_INVALID;
    k = &ctx->keys[ctx->current_key];
    jpki_put64(p, s->auth_time); p += 8;
    jpki_put64(p, s->expires); p += 8;
    jpki_put64(p, s->idle_deadline); p += 8;
    jpki_put64(p, s->rev_checked); p += 8;
    *p++ = s->flags;
    if (!unhex_fixed(s->cert_id, p, 16) || !unhex_fixed(s->issuer_tag, p + 16, 8)
        || !unhex_fixed(s->sid, p + 24, 16))
        return JPKI_ERR_INVALID;
    p += 40;
    if (s->rev_ref_len > S_REF_MAX)
        return JPKI_ERR_INVALID;
    *p++ = s->rev_ref_len;
    memcpy(p, s->rev_ref, s->rev_ref_len);
    p += s->rev_ref_len;
    *p++ = (uint8_t)alen;
    memcpy(p, s->account, alen);
    ptlen = S_FIXED + s->rev_ref_len + alen;
    raw[0] = (uint8_t)k->id;
    if (!jpki_random(raw + 1, 12)
        || !gcm(1, k->session_key, raw + 1, raw[0], pt, ptlen, raw + 13,
                raw + 13 + ptlen))
        return JPKI_ERR_INTERNAL;
    rawlen = 13 + ptlen + 16;
    if (strlen(S_PREFIX) + jpki_b64_encoded_len(rawlen, 1) + 1 > outmax)
        return JPKI_ERR_TOO_LARGE;
    memcpy(out, S_PREFIX, strlen(S_PREFIX));
    jpki_b64_encode(raw, rawlen, out + strlen(S_PREFIX), 1);
    *outlen = strlen(out);
    OPENSSL_cleanse(pt, sizeof(pt));
    return JPKI_OK;
}

static jpki_err unseal(const jpki_ctx *ctx, const char *in, size_t len,
                       uint8_t *pt, size_t *ptlen)
{
    uint8_t raw[S_RAW_MAX + 3];
    const jpki_ring_key *k = NULL;
    size_t rawlen = 0, i, pl = strlen(S_PREFIX);

    if (in == NULL || len <= pl || len > JPKI_SESSION_MAX
        || memcmp(in, S_PREFIX, pl) != 0
        || jpki_b64_encoded_len(S_RAW_MAX, 1) < len - pl
        || jpki_b64_decode(in + pl, len - pl, raw, &rawlen) != JPKI_OK
        || rawlen < 13 + S_FIXED + 1 + 16 || rawlen > S_RAW_MAX)
        return JPKI_ERR_SESSION_FORMAT;
    for (i = 0; i < ctx->n_keys; i++)
        if (ctx->keys[i].id == raw[0])
            k = &ctx->keys[i];
    if (k == NULL)
        return JPKI_ERR_SESSION_KEY;
    *ptlen = rawlen - 13 - 16;
    if (!gcm(0, k->session_key, raw + 1, raw[0], raw + 13, *ptlen, pt,
             raw + rawlen - 16))
        return JPKI_ERR_SESSION_MAC;
    return JPKI_OK;
}

/* Per-thread cache of opened cookies: a gated request with a cookie seen
 * before skips base64 and AES-GCM.  A cookie's contents never change, so an
 * entry is valid for as long as its exact bytes are presented to the same
 * context; expiry and idle deadline are still checked on every request. */
#define S_CACHE_N 256
typedef struct {
    const jpki_ctx *ctx;
    size_t len;
    char cookie[JPKI_SESSION_MAX];
    jpki_session s;
} s_cache_entry;

static pthread_key_t s_cache_key;
static pthread_once_t s_cache_once = PTHREAD_ONCE_INIT;

static void s_cache_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, S_CACHE_N * sizeof(s_cache_entry));
        free(p);
    }
}

static void s_cache_init(void)
{
    (void)pthread_key_create(&s_cache_key, s_cache_free);
}

static s_cache_entry *s_cache_slot(const char *in, size_t len)
{
    s_cache_entry *tab;
    uint32_t h = 2166136261u;
    size_t i;

    pthread_once(&s_cache_once, s_cache_init);
    tab = pthread_getspecific(s_cache_key);
    if (tab == NULL) {
        tab = calloc(S_CACHE_N, sizeof(s_cache_entry));
        if (tab == NULL || pthread_setspecific(s_cache_key, tab) != 0) {
            free(tab);
            return NULL;
        }
    }
    /* the last characters encode the GCM tag: random, a good index */
    for (i = len > 8 ? len - 8 : 0; i < len; i++)
        h = (h ^ (uint8_t)in[i]) * 16777619u;
    return &tab[h % S_CACHE_N];
}

static jpki_err session_times(const jpki_session *s, time_t now)
{
    if ((int64_t)now >= s->expires)
        return JPKI_ERR_SESSION_EXPIRED;
    if (s->idle_deadline != 0 && (int64_t)now >= s->idle_deadline)
        return JPKI_ERR_SESSION_IDLE;
    return JPKI_OK;
}

static jpki_err session_open_full(const jpki_ctx *ctx, const char *in,
                                  size_t len, time_t now, jpki_session *s);

jpki_err jpki_session_open(const jpki_ctx *ctx, const char *in, size_t len,
                           time_t now, jpki_session *s)
{
    s_cache_entry *e;
    jpki_err err;

    if (in == NULL || len == 0 || len > JPKI_SESSION_MAX || !ctx->finished)
        return session_open_full(ctx, in, len, now, s);
    e = s_cache_slot(in, len);
    /* the cached cookie is a secret (someone's session): compared in
     * constant time */
    if (e != NULL && e->ctx == ctx && e->len == len
        && CRYPTO_memcmp(e->cookie, in, len) == 0) {
        *s = e->s;
        return session_times(s, now);
    }
    err = session_open_full(ctx, in, len, now, s);
    if (e != NULL && (err == JPKI_OK || err == JPKI_ERR_SESSION_IDLE
                      || err == JPKI_ERR_SESSION_EXPIRED)) {
        e->ctx = ctx;
        e->len = len;
        memcpy(e->cookie, in, len);
        e->s = *s;
    }
    return err;
}

static jpki_err session_open_full(const jpki_ctx *ctx, const char *in,
                                  size_t len, time_t now, jpki_session *s)
{
    uint8_t pt[S_RAW_MAX];
    size_t ptlen = 0, alen, rlen;
    const uint8_t *p = pt, *acct;
    jpki_err e;

    memset(s, 0, sizeof(*s));
    if (!ctx->finished)
        return JPKI_ERR_INVALID;
    e = unseal(ctx, in, len, pt, &ptlen);
    if (e != JPKI_OK)
        return e;
    rlen = pt[S_HEAD];
    if (ptlen < S_FIXED + rlen || rlen > S_REF_MAX) {
        OPENSSL_cleanse(pt, sizeof(pt));
        return JPKI_ERR_SESSION_FORMAT;
    }
    alen = pt[S_HEAD + 1 + rlen];
    acct = pt + S_FIXED + rlen;
    if (ptlen != S_FIXED + rlen + alen || alen > JPKI_ACCOUNT_MAX
        || !jpki_account_valid((const char *)acct, alen)) {
        OPENSSL_cleanse(pt, sizeof(pt));
        return JPKI_ERR_SESSION_FORMAT;
    }
    s->auth_time = jpki_get64(p); p += 8;
    s->expires = jpki_get64(p); p += 8;
    s->idle_deadline = jpki_get64(p); p += 8;
    s->rev_checked = jpki_get64(p); p += 8;
    s->flags = *p++;
    jpki_hex_encode(p, 16, s->cert_id);
    jpki_hex_encode(p + 16, 8, s->issuer_tag);
    jpki_hex_encode(p + 24, 16, s->sid);
    s->rev_ref_len = (uint8_t)rlen;
    memcpy(s->rev_ref, pt + S_HEAD + 1, rlen);
    memcpy(s->account, acct, alen);
    s->account[alen] = '\0';
    OPENSSL_cleanse(pt, sizeof(pt));
    return session_times(s, now);
}
