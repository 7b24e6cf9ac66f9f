/* challenge.c - stateless, MAC'ed login challenges, bound to a host.
 *
 * raw = ver(1) = 2 | key_id(1) | expiry(8, big-endian) | host_hash(8)
 *       | random(25) | tag(32)
 * tag = HMAC-SHA256(challenge key of key_id, ver..random)
 * host_hash = SHA-256("jpki-challenge-host:" | canonical host)[0..8]
 * text = base64url(raw), 100 characters.  Any node holding the key ring can
 * check a challenge without a store read; single use is enforced at login
 * by SETNX of ch:<id> in the store, id = hex of the first 16 tag bytes.
 * The host hash lets a client refuse to sign a challenge issued for a host
 * other than the one it talks to, and the gate refuse a login whose Host
 * is not the one the challenge was issued for (relay between sites).
 * No challenge is issued for a request without a valid Host (none, empty,
 * over 255 bytes, bytes outside 0x21..0x7e): bound to the empty host, it
 * would be good under any other invalid Host.  Version 1 challenges (no
 * host) are refused as malformed. */
#include "internal.h"

#include <string.h>

#define CH_VER   2
#define CH_HASH  8
#define CH_RAND  25
#define CH_BODY  (1 + 1 + 8 + CH_HASH + CH_RAND)
#define CH_RAW   (CH_BODY + 32)
#define CH_HOST_MAX JPKI_HOST_MAX

static const jpki_ring_key *ring_key(const jpki_ctx *ctx, unsigned id)
{
    size_t i;
    for (i = 0; i < ctx->n_keys; i++)
        if (ctx->keys[i].id == id)
            return &ctx->keys[i];
    return NULL;
}

/* The canonical host of a Host header value into out (CH_HOST_MAX + 1,
 * NUL-terminated); returns its length, 0 (out empty) when there is none
 * (empty, too long, bad bytes).  jpki-login binds what it signs to the
 * same form of its URL's host. */
size_t jpki_host_canonical(const char *h, size_t n,
                           char out[JPKI_HOST_MAX + 1])
{
    const char *p = h;
    size_t len = n, i, k;

    out[0] = '\0';
    if (h == NULL)
        return 0;
    if (n > 0 && h[0] == '[') {
        const char *e = memchr(h + 1, ']', n - 1);
        if (e == NULL)
            return 0;
        p = h + 1;
        len = (size_t)(e - p);
    } else {
        for (k = n; k > 0 && h[k - 1] != ':'; k--)
            ;
        if (k > 0 && n - k >= 1 && n - k <= 5) {
            for (i = k; i < n && h[i] >= '0' && h[i] <= '9'; i++)
                ;
            if (i == n)
                len = k - 1;
        }
    }
    if (len > 0 && p[len - 1] == '.')
        len--;
    if (len == 0 || len > CH_HOST_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e) {
            out[0] = '\0';
            return 0;
        }
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[len] = '\0';
    return len;
}

jpki_err jpki_challenge_host_hash(const char *host, size_t len,
                                  uint8_t out[8])
{
    static const char label[] = "jpki-challenge-host:";
    char buf[sizeof(label) - 1 + CH_HOST_MAX + 1];     /* with the NUL */
    uint8_t md[32];
    unsigned int mdlen = 0;
    size_t n;

    memcpy(buf, label, sizeof(label) - 1);
    n = jpki_host_canonical(host, len, buf + sizeof(label) - 1);
    if (EVP_Digest(buf, sizeof(label) - 1 + n, md, &mdlen,
                   jpki_md(JPKI_MD_SHA256), NULL) != 1 || mdlen != 32)
        return JPKI_ERR_INTERNAL;
    memcpy(out, md, 8);
    return JPKI_OK;
}

jpki_err jpki_challenge_issue(const jpki_ctx *ctx, time_t now,
                              const char *host, size_t host_len,
                              char out[JPKI_CHALLENGE_LEN + 1],
                              time_t *expires)
{
    const jpki_ring_key *k;
    uint8_t raw[CH_RAW];
    uint64_t exp;
    char canon[CH_HOST_MAX + 1];
    int i;

    if (!ctx->finished)
        return JPKI_ERR_INVALID;
    /* no valid host to bind it to: bound to the empty host, it would be
     * accepted under any other invalid Host */
    if (jpki_host_canonical(host, host_len, canon) == 0)
        return JPKI_ERR_BAD_HOST;
    k = &ctx->keys[ctx->current_key];
    exp = (uint64_t)now + ctx->policy.challenge_ttl;
    raw[0] = CH_VER;
    raw[1] = (uint8_t)k->id;
    for (i = 0; i < 8; i++)
        raw[2 + i] = (uint8_t)(exp >> (56 - 8 * i));
    if (jpki_challenge_host_hash(host, host_len, raw + 10) != JPKI_OK
        || !jpki_random(raw + 10 + CH_HASH, CH_RAND)
        || !jpki_hmac_sha256(k->challenge_key, 32, raw, CH_BODY, NULL, 0,
                             raw + CH_BODY))
        return JPKI_ERR_INTERNAL;
    jpki_b64_encode(raw, CH_RAW, out, 1);
    if (expires != NULL)
        *expires = (time_t)exp;
    return JPKI_OK;
}

jpki_err jpki_challenge_check(const jpki_ctx *ctx, const char *ch,
                              size_t len, time_t now,
                              const char *host, size_t host_len,
                              char id_hex[JPKI_CHALLENGE_ID_HEX + 1],
                              time_t *expires)
{
    uint8_t raw[CH_RAW + 3], tag[32], hh[CH_HASH];
    char canon[CH_HOST_MAX + 1];
    const jpki_ring_key *k;
    size_t rawlen = 0;
    uint64_t exp = 0;
    int i;

    if (!ctx->finished)
        return JPKI_ERR_INVALID;
    if (ch == NULL || len != JPKI_CHALLENGE_LEN
        || jpki_b64_decode(ch, len, raw, &rawlen) != JPKI_OK
        || rawlen != CH_RAW || raw[0] != CH_VER)
        return JPKI_ERR_CHALLENGE_FORMAT;
    k = ring_key(ctx, raw[1]);
    if (k == NULL)
        return JPKI_ERR_CHALLENGE_KEY;
    if (!jpki_hmac_sha256(k->challenge_key, 32, raw, CH_BODY, NULL, 0, tag))
        return JPKI_ERR_INTERNAL;
    if (!jpki_ct_equal(tag, raw + CH_BODY, 32))
        return JPKI_ERR_CHALLENGE_MAC;
    for (i = 0; i < 8; i++)
        exp = exp << 8 | raw[2 + i];
    if (exp > (uint64_t)INT64_MAX || (int64_t)exp < (int64_t)now)
        return JPKI_ERR_CHALLENGE_EXPIRED;
    /* none is issued for the empty host (one issued before that was
     * refused is not accepted either) */
    if (jpki_host_canonical(host, host_len, canon) == 0)
        return JPKI_ERR_CHALLENGE_HOST;
    if (jpki_challenge_host_hash(host, host_len, hh) != JPKI_OK)
        return JPKI_ERR_INTERNAL;
    if (!jpki_ct_equal(hh, raw + 10, CH_HASH))
        return JPKI_ERR_CHALLENGE_HOST;
    jpki_hex_encode(raw + CH_BODY, 16, id_hex);
    if (expires != NULL)
        *expires = (time_t)exp;
    return JPKI_OK;
}

/* What jpki-login checks before its card signs: the gate's text and
 * layout, read here where they are written. */
jpki_err jpki_challenge_peek(const char *ch, size_t len, const char *host,
                             size_t host_len, jpki_challenge_view *v)
{
    uint8_t raw[CH_RAW + 3], hh[CH_HASH];
    char canon[CH_HOST_MAX + 1];
    size_t rawlen = 0, i;

    memset(v, 0, sizeof(*v));
    if (ch == NULL || len != JPKI_CHALLENGE_LEN)
        return JPKI_ERR_CHALLENGE_FORMAT;
    for (i = 0; i < len; i++)                   /* what _issue writes */
        if (!((ch[i] >= 'A' && ch[i] <= 'Z') || (ch[i] >= 'a' && ch[i] <= 'z')
              || (ch[i] >= '0' && ch[i] <= '9') || ch[i] == '-'
              || ch[i] == '_'))
            return JPKI_ERR_CHALLENGE_FORMAT;
    if (jpki_b64_decode(ch, len, raw, &rawlen) != JPKI_OK || rawlen != CH_RAW)
        return JPKI_ERR_CHALLENGE_FORMAT;
    v->version = raw[0];
    if (raw[0] != CH_VER)
        return JPKI_OK;
    for (i = 0; i < 8; i++)
        v->expires = v->expires << 8 | raw[2 + i];
    if (jpki_host_canonical(host, host_len, canon) == 0)
        return JPKI_OK;                         /* host_ok stays 0 */
    if (jpki_challenge_host_hash(host, host_len, hh) != JPKI_OK)
        return JPKI_ERR_INTERNAL;
    v->host_ok = jpki_ct_equal(hh, raw + 10, CH_HASH);
    return JPKI_OK;
}

jpki_err jpki_device_code(const char *ch, size_t len,
                          char out[JPKI_DEVICE_CODE_LEN + 1])
{
    static const char tag[] = "jpki-device-code:";
    static const char alphabet[] = JPKI_DEVICE_CODE_ALPHABET;
    uint8_t md[32];
    uint64_t bits = 0;
    EVP_MD_CTX *c;
    int i, ok;

    out[0] = '\0';
    if (ch == NULL || len != JPKI_CHALLENGE_LEN)
        return JPKI_ERR_CHALLENGE_FORMAT;
    c = EVP_MD_CTX_new();
    ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(c, tag, sizeof(tag) - 1) == 1
         && EVP_DigestUpdate(c, ch, len) == 1
         && EVP_DigestFinal_ex(c, md, NULL) == 1;
    EVP_MD_CTX_free(c);
    if (!ok)
        return JPKI_ERR_INTERNAL;
    for (i = 0; i < 5; i++)
        bits = bits << 8 | md[i];
    for (i = 0; i < 8; i++)              /* 5 bits a character, first first */
        out[i + (i >= 4)] = alphabet[(bits >> (35 - 5 * i)) & 31];
    out[4] = '-';
    out[JPKI_DEVICE_CODE_LEN] = '\0';
    return JPKI_OK;
}
