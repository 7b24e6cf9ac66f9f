/* enroll.c - enrollment tokens (see enroll.h). */
#include "enroll.h"
#include "internal.h"

#include <string.h>

#define E_BODY (1 + 16 + 8 + 8 + 8 + 16)
#define E_RAW  (E_BODY + 32)

static int enroll_key(const jpki_ctx *ctx, uint8_t key[32])
{
    return jpki_hkdf(ctx->secret, ctx->secret_len, "jpki enroll v1", key, 32);
}

jpki_err jpki_enroll_make(const jpki_ctx *ctx, const jpki_enroll *e,
                          char out[JPKI_ENROLL_LEN + 1])
{
    uint8_t raw[E_RAW], key[32];
    size_t got = 0, got2 = 0, got3 = 0;
    int ok;

    raw[0] = 1;
    if (jpki_hex_decode(e->cert_id, strlen(e->cert_id), raw + 1, 16, &got)
        != JPKI_OK || got != 16
        || jpki_hex_decode(e->issuer_tag, strlen(e->issuer_tag), raw + 17, 8,
                           &got2) != JPKI_OK || got2 != 8
        || jpki_hex_decode(e->id, strlen(e->id), raw + 41, 16, &got3)
           != JPKI_OK || got3 != 16)
        return JPKI_ERR_INVALID;
    jpki_put64(raw + 25, e->not_after);
    jpki_put64(raw + 33, e->expires);
    ok = enroll_key(ctx, key)
         && jpki_hmac_sha256(key, 32, raw, E_BODY, NULL, 0, raw + E_BODY);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return JPKI_ERR_INTERNAL;
    memcpy(out, "e1.", 3);
    jpki_b64_encode(raw, E_RAW, out + 3, 1);
    return JPKI_OK;
}

jpki_err jpki_enroll_open(const jpki_ctx *ctx, const char *tok, size_t len,
                          int64_t now, jpki_enroll *e)
{
    uint8_t raw[E_RAW + 3], key[32], mac[32];
    size_t rawlen = 0;
    int ok;

    memset(e, 0, sizeof(*e));
    if (tok == NULL || len != JPKI_ENROLL_LEN || memcmp(tok, "e1.", 3) != 0
        || jpki_b64_decode(tok + 3, len - 3, raw, &rawlen) != JPKI_OK
        || rawlen != E_RAW || raw[0] != 1)
        return JPKI_ERR_PARSE;
    ok = enroll_key(ctx, key)
         && jpki_hmac_sha256(key, 32, raw, E_BODY, NULL, 0, mac);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return JPKI_ERR_INTERNAL;
    if (!jpki_ct_equal(mac, raw + E_BODY, 32))
        return JPKI_ERR_CHALLENGE_MAC;
    jpki_hex_encode(raw + 1, 16, e->cert_id);
    jpki_hex_encode(raw + 17, 8, e->issuer_tag);
    e->not_after = jpki_get64(raw + 25);
    e->expires = jpki_get64(raw + 33);
    jpki_hex_encode(raw + 41, 16, e->id);
    if (e->expires < now)
        return JPKI_ERR_CHALLENGE_EXPIRED;
    return JPKI_OK;
}
