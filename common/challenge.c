/* challenge.c - stateless, MAC'ed login challenges.
 *
 * raw = ver(1) | key_id(1) | expiry(8, big-endian) | random(33) | tag(32)
 * tag = HMAC-SHA256(challenge key of key_id, ver..random)
 * text = base64url(raw), 100 characters.  Any node holding the key ring can
 * check a challenge without a store read; single use is enforced at login
 * by SETNX of ch:<id> in the store, id = hex of the first 16 tag bytes. */
#include "internal.h"

#include <string.h>

#define CH_VER   1
#define CH_RAND  33
#define CH_BODY  (1 + 1 + 8 + CH_RAND)
#define CH_RAW   (CH_BODY + 32)

static const jpki_ring_key *ring_key(const jpki_ctx *ctx, unsigned id)
{
    size_t i;
    for (i = 0; i < ctx->n_keys; i++)
        if (ctx->keys[i].id == id)
            return &ctx->keys[i];
    return NULL;
}

jpki_err jpki_challenge_issue(const jpki_ctx *ctx, time_t now,
                              char out[JPKI_CHALLENGE_LEN + 1],
                              time_t *expires)
{
    const jpki_ring_key *k;
    uint8_t raw[CH_RAW];
    uint64_t exp;
    int i;

    if (!ctx->finished)
        return JPKI_ERR_INVALID;
    k = &ctx->keys[ctx->current_key];
    exp = (uint64_t)now + ctx->policy.challenge_ttl;
    raw[0] = CH_VER;
    raw[1] = (uint8_t)k->id;
    for (i = 0; i < 8; i++)
        raw[2 + i] = (uint8_t)(exp >> (56 - 8 * i));
    if (!jpki_random(raw + 10, CH_RAND)
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
                              char id_hex[JPKI_CHALLENGE_ID_HEX + 1],
                              time_t *expires)
{
    uint8_t raw[CH_RAW + 3], tag[32];
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
    jpki_hex_encode(raw + CH_BODY, 16, id_hex);
    if (expires != NULL)
        *expires = (time_t)exp;
    return JPKI_OK;
}
