/* enroll.h - the enrollment token (issue 12): what a login of a card that
 * no account has yet carries to the site's enrollment page, and what the
 * site redeems through the admin API to bind the card to an account.
 *
 * Text: "e1." base64url(version 1 | cert_id (16) | issuer tag (8) |
 * not_after (8, BE) | expiry (8, BE) | id (16) | HMAC-SHA256 (32) under
 * HKDF(site secret, "jpki enroll v1") of what precedes), 122 characters.
 * id is the login's challenge id (random for a TLS login): a token is
 * redeemed once (the store's enr:<id>, SETNX).  It holds no serial and no
 * key: cert_id is the keyed hash (docs/store-schema.md). */
#ifndef JPKI_ENROLL_H
#define JPKI_ENROLL_H

#include "jpki.h"

#define JPKI_ENROLL_LEN 122
#define JPKI_ENROLL_TTL 600   /* s a token can be redeemed, by default */

typedef struct {
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    char issuer_tag[17];
    int64_t not_after;                   /* the certificate's */
    int64_t expires;                     /* the token's */
    char id[33];                         /* single use: enr:<id> */
} jpki_enroll;

/* A token for e (its expires set by the caller) into out. */
jpki_err jpki_enroll_make(const jpki_ctx *ctx, const jpki_enroll *e,
                          char out[JPKI_ENROLL_LEN + 1]);
/* The token's contents: JPKI_ERR_PARSE (not a token), JPKI_ERR_CHALLENGE_MAC
 * (forged or of another site), JPKI_ERR_CHALLENGE_EXPIRED (at now). */
jpki_err jpki_enroll_open(const jpki_ctx *ctx, const char *tok, size_t len,
                          int64_t now, jpki_enroll *e);

#endif
