/* test_challenge.c - MAC'ed stateless challenges: format, key ring, MAC,
 * expiry, rotation.  The ring keys are known to the test, so it can also
 * forge correctly MAC'ed challenges with bad contents. */
#include "jpki.h"
#include "tap.h"

#include <stdint.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#define RAW 75          /* ver 1 | kid 1 | expiry 8 | random 33 | tag 32 */
#define BODY 43

static time_t NOW;
static uint8_t K1[32], K2[32], K1_OTHER[32];

/* keys: NULL-ended list of {id, key, current}. */
typedef struct { unsigned id; const uint8_t *key; int current; } kspec;

static jpki_ctx *make_ctx(const kspec *keys, const uint8_t *secret)
{
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_ctx_set_secret(c, secret ? secret : K1, 32);
    jpki_issuer_add_certs_file(jpki_ctx_add_issuer(c, "card"),
                               tap_path("ca2.pem"), err, sizeof(err));
    for (; keys && keys->key; keys++)
        jpki_ctx_add_key(c, keys->id, keys->key, 32, keys->current);
    if (jpki_ctx_finish(c, err, sizeof(err)) != JPKI_OK) {
        printf("# finish: %s (run make pki)\n", err);
        exit(1);
    }
    return c;
}

static void decode(const char *ch, uint8_t raw[RAW + 3])
{
    size_t n = 0;
    if (jpki_b64_decode(ch, strlen(ch), raw, &n) != JPKI_OK || n != RAW)
        diag("challenge does not decode to 75 bytes");
}

static void encode(const uint8_t raw[RAW], char out[JPKI_CHALLENGE_LEN + 1])
{
    jpki_b64_encode(raw, RAW, out, 1);
}

/* The challenge MAC key the library derives from a ring key. */
static void challenge_key(const uint8_t key[32], uint8_t out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[4];
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key,
                                             32);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             (void *)"jpki challenge v1", 17);
    p[3] = OSSL_PARAM_construct_end();
    EVP_KDF_derive(kc, out, 32, p);
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
}

/* Re-MACs raw with ring key `key` (as the library would). */
static void remac(uint8_t raw[RAW], const uint8_t key[32])
{
    uint8_t ck[32];
    unsigned int n = 0;
    challenge_key(key, ck);
    HMAC(EVP_sha256(), ck, 32, raw, BODY, raw + BODY, &n);
}

static void put_exp(uint8_t raw[RAW], uint64_t exp)
{
    int i;
    for (i = 0; i < 8; i++)
        raw[2 + i] = (uint8_t)(exp >> (56 - 8 * i));
}

static jpki_err chk(const jpki_ctx *c, const char *ch, size_t len, time_t t)
{
    char id[JPKI_CHALLENGE_ID_HEX + 1];
    /* an exact-size copy, so ASan sees any read past len */
    char *copy = malloc(len ? len : 1);
    jpki_err e;
    memcpy(copy, ch, len);
    e = jpki_challenge_check(c, copy, len, t, id, NULL);
    free(copy);
    return e;
}

static void test_issue_check(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks, NULL);
    char ch[JPKI_CHALLENGE_LEN + 1], id[JPKI_CHALLENGE_ID_HEX + 1], hx[33];
    uint8_t raw[RAW + 3];
    time_t exp = 0, exp2 = 0;
    size_t i;

    is_int(jpki_challenge_issue(c, NOW, ch, &exp), JPKI_OK, "issue");
    is_int(strlen(ch), JPKI_CHALLENGE_LEN, "100 characters");
    ok(strspn(ch, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_") == JPKI_CHALLENGE_LEN,
       "base64url alphabet, no padding");
    is_int(exp, NOW + 120, "expires = now + challenge_ttl");
    is_int(jpki_challenge_check(c, ch, strlen(ch), NOW, id, &exp2), JPKI_OK,
           "check");
    is_int(exp2, exp, "check reports the same expiry");
    ok(strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32,
       "id_hex is 32 lower-case hex chars");
    decode(ch, raw);
    is_int(raw[0], 1, "version byte 1");
    is_int(raw[1], 1, "key id 1");
    jpki_hex_encode(raw + BODY, 16, hx);
    is_str(id, hx, "id_hex is the first 16 tag bytes");
    {
        uint8_t ck[32], tag[32];
        unsigned int n = 0;
        challenge_key(K1, ck);
        HMAC(EVP_sha256(), ck, 32, raw, BODY, tag, &n);
        ok(memcmp(tag, raw + BODY, 32) == 0,
           "tag = HMAC-SHA256(HKDF(key, \"jpki challenge v1\"), body)");
    }
    is_int(jpki_challenge_check(c, ch, strlen(ch), NOW, id, NULL), JPKI_OK,
           "expires may be NULL");
    is_int(jpki_challenge_issue(c, NOW, ch, NULL), JPKI_OK,
           "issue with expires NULL");

    {
        /* 200 challenges: all distinct, ids distinct */
        static char ids[200][JPKI_CHALLENGE_ID_HEX + 1];
        static char chs[200][JPKI_CHALLENGE_LEN + 1];
        size_t j, dup = 0;
        for (i = 0; i < 200; i++) {
            jpki_challenge_issue(c, NOW, chs[i], NULL);
            jpki_challenge_check(c, chs[i], JPKI_CHALLENGE_LEN, NOW, ids[i],
                                 NULL);
            for (j = 0; j < i; j++)
                if (strcmp(ids[i], ids[j]) == 0 || strcmp(chs[i], chs[j]) == 0)
                    dup++;
        }
        is_int(dup, 0, "200 challenges and their ids are distinct");
    }
    {
        jpki_ctx *u = jpki_ctx_new();
        is_int(jpki_challenge_issue(u, NOW, ch, NULL), JPKI_ERR_INVALID,
               "issue on an unfinished ctx");
        is_int(jpki_challenge_check(u, ch, strlen(ch), NOW, id, NULL),
               JPKI_ERR_INVALID, "check on an unfinished ctx");
        jpki_ctx_free(u);
    }
    jpki_ctx_free(c);
}

static void test_errors(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks, NULL);
    char ch[JPKI_CHALLENGE_LEN + 1], t[JPKI_CHALLENGE_LEN + 8];
    uint8_t raw[RAW + 3], r2[RAW + 3];
    time_t exp;
    int i, all;

    jpki_challenge_issue(c, NOW, ch, &exp);
    decode(ch, raw);

    /* length and encoding */
    is_int(chk(c, ch, 99, NOW), JPKI_ERR_CHALLENGE_FORMAT, "99 chars");
    snprintf(t, sizeof(t), "%sA", ch);
    is_int(chk(c, t, 101, NOW), JPKI_ERR_CHALLENGE_FORMAT, "101 chars");
    is_int(chk(c, ch, 0, NOW), JPKI_ERR_CHALLENGE_FORMAT, "empty");
    {
        char id[JPKI_CHALLENGE_ID_HEX + 1];
        is_int(jpki_challenge_check(c, NULL, 100, NOW, id, NULL),
               JPKI_ERR_CHALLENGE_FORMAT, "NULL");
    }
    memcpy(t, ch, sizeof(ch));
    t[50] = '*';
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT, "bad base64 char");
    memcpy(t, ch, sizeof(ch));
    t[50] = ' ';
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT, "space inside");
    jpki_b64_encode(raw, 73, t, 1);          /* 98 chars */
    strcat(t, "==");
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "100 chars with padding: 73 bytes");
    {
        /* long valid base64: must not be decoded into the 78-byte buffer */
        uint8_t big[3000];
        char *txt = malloc(4001);
        memset(big, 0x41, sizeof(big));
        memcpy(big, raw, RAW);
        jpki_b64_encode(big, 150, txt, 1);
        is_int(chk(c, txt, 200, NOW), JPKI_ERR_CHALLENGE_FORMAT,
               "200 chars of base64");
        jpki_b64_encode(big, 3000, txt, 1);
        is_int(chk(c, txt, 4000, NOW), JPKI_ERR_CHALLENGE_FORMAT,
               "4000 chars of base64");
        free(txt);
    }
    memcpy(t, ch, sizeof(ch));
    t[10] = '+';
    t[11] = '_';
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT, "mixed alphabets");

    /* version byte: flipped (no re-MAC) and forged with a valid MAC */
    memcpy(r2, raw, RAW);
    r2[0] = 2;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "version 2 (tag not redone): FORMAT, checked before the MAC");
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "version 2 with a valid MAC: FORMAT");
    memcpy(r2, raw, RAW);
    r2[0] = 0;
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT, "version 0: FORMAT");
    memcpy(r2, raw, RAW);
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_OK, "(the forger is right: re-MAC'ed "
           "original accepted)");

    /* key id */
    memcpy(r2, raw, RAW);
    r2[1] = 9;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_KEY, "unknown key id 9");
    r2[1] = 0;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_KEY, "key id 0");

    /* MAC over every body byte, and the tag itself */
    all = 1;
    for (i = 2; i < RAW; i++) {
        memcpy(r2, raw, RAW);
        r2[i] ^= 0x01;
        encode(r2, t);
        if (chk(c, t, 100, NOW) != JPKI_ERR_CHALLENGE_MAC) {
            printf("# byte %d flipped not caught by the MAC\n", i);
            all = 0;
        }
    }
    ok(all, "a flipped bit in expiry, random or tag: CHALLENGE_MAC");
    memcpy(r2, raw, RAW);
    r2[20] ^= 0x80;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_MAC, "tampered random");
    memcpy(r2, raw, RAW);
    put_exp(r2, (uint64_t)NOW + 100000);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_MAC,
           "expiry pushed back without the key");

    /* expiry */
    is_int(chk(c, ch, 100, exp), JPKI_OK, "valid at its expiry second");
    is_int(chk(c, ch, 100, NOW + 120 + 1), JPKI_ERR_CHALLENGE_EXPIRED,
           "expired at now + ttl + 1");
    is_int(chk(c, ch, 100, NOW + 86400), JPKI_ERR_CHALLENGE_EXPIRED,
           "expired a day later");
    is_int(chk(c, ch, 100, NOW - 1000), JPKI_OK,
           "a challenge checked before it was issued (clock skew) passes");
    memcpy(r2, raw, RAW);
    put_exp(r2, UINT64_MAX);
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_EXPIRED,
           "expiry over INT64_MAX (valid MAC) refused");
    memcpy(r2, raw, RAW);
    put_exp(r2, (uint64_t)NOW - 1);
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_EXPIRED,
           "expiry in the past (valid MAC)");
    jpki_ctx_free(c);
}

static void test_rotation(void)
{
    kspec ka[] = {{1, K1, 1}, {0, NULL, 0}};
    kspec kb[] = {{1, K1, 0}, {2, K2, 1}, {0, NULL, 0}};
    kspec kc[] = {{1, K1_OTHER, 1}, {0, NULL, 0}};
    jpki_ctx *a = make_ctx(ka, NULL), *b = make_ctx(kb, NULL),
             *c = make_ctx(kc, NULL);
    char ch[JPKI_CHALLENGE_LEN + 1];
    uint8_t raw[RAW + 3];

    jpki_challenge_issue(a, NOW, ch, NULL);
    is_int(chk(b, ch, 100, NOW), JPKI_OK,
           "challenge from A (key 1) verifies on B (keys 1, 2)");
    is_int(chk(c, ch, 100, NOW), JPKI_ERR_CHALLENGE_MAC,
           "same key id, other key material: MAC");
    jpki_challenge_issue(b, NOW, ch, NULL);
    decode(ch, raw);
    is_int(raw[1], 2, "B issues with its current key 2");
    is_int(chk(b, ch, 100, NOW), JPKI_OK, "B verifies its own");
    is_int(chk(a, ch, 100, NOW), JPKI_ERR_CHALLENGE_KEY,
           "challenge from B fails on A with CHALLENGE_KEY");
    jpki_ctx_free(a);
    jpki_ctx_free(b);
    jpki_ctx_free(c);

    /* no explicit ring: key 1 derived from the secret */
    {
        uint8_t s2[32];
        jpki_ctx *d1, *d2, *d3;
        memset(s2, 0x5a, sizeof(s2));
        d1 = make_ctx(NULL, K2);
        d2 = make_ctx(NULL, K2);
        d3 = make_ctx(NULL, s2);
        jpki_challenge_issue(d1, NOW, ch, NULL);
        is_int(chk(d2, ch, 100, NOW), JPKI_OK,
               "derived key: same secret verifies");
        is_int(chk(d3, ch, 100, NOW), JPKI_ERR_CHALLENGE_MAC,
               "derived key: other secret refuses");
        jpki_ctx_free(d1);
        jpki_ctx_free(d2);
        jpki_ctx_free(d3);
    }
    {
        /* challenge_ttl is honoured */
        kspec k1[] = {{1, K1, 1}, {0, NULL, 0}};
        char err[256];
        jpki_ctx *e = jpki_ctx_new();
        time_t exp;
        jpki_ctx_set_secret(e, K1, 32);
        jpki_issuer_add_certs_file(jpki_ctx_add_issuer(e, "card"),
                                   tap_path("ca2.pem"), err, sizeof(err));
        jpki_ctx_add_key(e, k1[0].id, k1[0].key, 32, 1);
        jpki_ctx_policy(e)->challenge_ttl = 30;
        jpki_ctx_finish(e, err, sizeof(err));
        jpki_challenge_issue(e, NOW, ch, &exp);
        is_int(exp, NOW + 30, "challenge_ttl 30");
        is_int(chk(e, ch, 100, NOW + 31), JPKI_ERR_CHALLENGE_EXPIRED,
               "expired after 31 s");
        jpki_ctx_free(e);
    }
}

int main(void)
{
    NOW = time(NULL);
    memset(K1, 0x11, 32);
    memset(K2, 0x22, 32);
    memset(K1_OTHER, 0x33, 32);
    test_issue_check();
    test_errors();
    test_rotation();
    return done_testing();
}
