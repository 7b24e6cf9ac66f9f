/* test_challenge.c - MAC'ed stateless challenges: format, key ring, MAC,
 * expiry, host binding, rotation.  The ring keys are known to the test, so it can also
 * forge correctly MAC'ed challenges with bad contents. */
#include "jpki.h"
#include "tap.h"

#include <stdint.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#define RAW 75   /* ver 1 | kid 1 | expiry 8 | host 8 | random 25 | tag 32 */
#define BODY 43
#define HOST "gate.example"
#define HL (sizeof(HOST) - 1)

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
    e = jpki_challenge_check(c, copy, len, t, HOST, HL, id, NULL);
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

    is_int(jpki_challenge_issue(c, NOW, HOST, HL, ch, &exp), JPKI_OK, "issue");
    is_int(strlen(ch), JPKI_CHALLENGE_LEN, "100 characters");
    ok(strspn(ch, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_") == JPKI_CHALLENGE_LEN,
       "base64url alphabet, no padding");
    is_int(exp, NOW + 120, "expires = now + challenge_ttl");
    is_int(jpki_challenge_check(c, ch, strlen(ch), NOW, HOST, HL, id, &exp2),
           JPKI_OK,
           "check");
    is_int(exp2, exp, "check reports the same expiry");
    ok(strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32,
       "id_hex is 32 lower-case hex chars");
    decode(ch, raw);
    is_int(raw[0], 2, "version byte 2");
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
    is_int(jpki_challenge_check(c, ch, strlen(ch), NOW, HOST, HL, id, NULL),
           JPKI_OK, "expires may be NULL");
    is_int(jpki_challenge_issue(c, NOW, HOST, HL, ch, NULL), JPKI_OK,
           "issue with expires NULL");

    {
        /* 200 challenges: all distinct, ids distinct */
        static char ids[200][JPKI_CHALLENGE_ID_HEX + 1];
        static char chs[200][JPKI_CHALLENGE_LEN + 1];
        size_t j, dup = 0;
        for (i = 0; i < 200; i++) {
            jpki_challenge_issue(c, NOW, HOST, HL, chs[i], NULL);
            jpki_challenge_check(c, chs[i], JPKI_CHALLENGE_LEN, NOW, HOST,
                                 HL, ids[i], NULL);
            for (j = 0; j < i; j++)
                if (strcmp(ids[i], ids[j]) == 0 || strcmp(chs[i], chs[j]) == 0)
                    dup++;
        }
        is_int(dup, 0, "200 challenges and their ids are distinct");
    }
    {
        jpki_ctx *u = jpki_ctx_new();
        is_int(jpki_challenge_issue(u, NOW, HOST, HL, ch, NULL),
               JPKI_ERR_INVALID, "issue on an unfinished ctx");
        is_int(jpki_challenge_check(u, ch, strlen(ch), NOW, HOST, HL, id,
                                    NULL),
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

    jpki_challenge_issue(c, NOW, HOST, HL, ch, &exp);
    decode(ch, raw);

    /* length and encoding */
    is_int(chk(c, ch, 99, NOW), JPKI_ERR_CHALLENGE_FORMAT, "99 chars");
    snprintf(t, sizeof(t), "%sA", ch);
    is_int(chk(c, t, 101, NOW), JPKI_ERR_CHALLENGE_FORMAT, "101 chars");
    is_int(chk(c, ch, 0, NOW), JPKI_ERR_CHALLENGE_FORMAT, "empty");
    {
        char id[JPKI_CHALLENGE_ID_HEX + 1];
        is_int(jpki_challenge_check(c, NULL, 100, NOW, HOST, HL, id, NULL),
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
    r2[0] = 3;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "version 3 (tag not redone): FORMAT, checked before the MAC");
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "version 3 with a valid MAC: FORMAT");
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
    ok(all, "a flipped bit in expiry, host hash, random or tag: "
       "CHALLENGE_MAC");
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

    jpki_challenge_issue(a, NOW, HOST, HL, ch, NULL);
    is_int(chk(b, ch, 100, NOW), JPKI_OK,
           "challenge from A (key 1) verifies on B (keys 1, 2)");
    is_int(chk(c, ch, 100, NOW), JPKI_ERR_CHALLENGE_MAC,
           "same key id, other key material: MAC");
    jpki_challenge_issue(b, NOW, HOST, HL, ch, NULL);
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
        jpki_challenge_issue(d1, NOW, HOST, HL, ch, NULL);
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
        jpki_challenge_issue(e, NOW, HOST, HL, ch, &exp);
        is_int(exp, NOW + 30, "challenge_ttl 30");
        is_int(chk(e, ch, 100, NOW + 31), JPKI_ERR_CHALLENGE_EXPIRED,
               "expired after 31 s");
        jpki_ctx_free(e);
    }
}

/* SHA-256("jpki-challenge-host:" | canon)[0..8], computed here. */
static void want_hash(const char *canon, uint8_t out[8])
{
    char buf[400];
    uint8_t md[32];
    unsigned int n = 0;
    snprintf(buf, sizeof(buf), "jpki-challenge-host:%s", canon);
    EVP_Digest(buf, strlen(buf), md, &n, EVP_sha256(), NULL);
    memcpy(out, md, 8);
}

/* jpki_challenge_host_hash(host) == want_hash(canon) */
static void canon_is(const char *host, size_t len, const char *canon,
                     const char *name)
{
    uint8_t got[8], want[8];
    char out[JPKI_HOST_MAX + 1];
    memset(got, 0, sizeof(got));
    want_hash(canon, want);
    is_int(jpki_challenge_host_hash(host, len, got), JPKI_OK, "%s: hashed",
           name);
    ok(memcmp(got, want, 8) == 0, "%s -> \"%s\"", name, canon);
    /* the public form (jpki-login binds its URL's host with it) */
    memset(out, 'x', sizeof(out));
    is_int(jpki_host_canonical(host, len, out), strlen(canon),
           "%s: jpki_host_canonical's length", name);
    is_str(out, canon, "%s: jpki_host_canonical's text", name);
}

/* jpki_challenge_peek: what jpki-login reads before its card signs. */
static void test_peek(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks, NULL);
    char ch[JPKI_CHALLENGE_LEN + 1], t[JPKI_CHALLENGE_LEN + 1];
    uint8_t raw[RAW + 3];
    jpki_challenge_view v;
    time_t exp;

    jpki_challenge_issue(c, NOW, "Gate.Example:443", 16, ch, &exp);
    ok(jpki_challenge_peek(ch, 100, "gate.example", 12, &v) == JPKI_OK
       && v.version == 2 && v.expires == (uint64_t)exp && v.host_ok == 1,
       "peek: version 2, its expiry, issued for gate.example");
    ok(jpki_challenge_peek(ch, 100, "GATE.example.:8443", 18, &v) == JPKI_OK
       && v.host_ok == 1, "peek: the host canonicalised");
    ok(jpki_challenge_peek(ch, 100, "bank.example", 12, &v) == JPKI_OK
       && v.host_ok == 0 && v.version == 2, "peek: another host: host_ok 0");
    ok(jpki_challenge_peek(ch, 100, "", 0, &v) == JPKI_OK && v.host_ok == 0,
       "peek: no host: host_ok 0");
    is_int(jpki_challenge_peek(ch, 99, "gate.example", 12, &v),
           JPKI_ERR_CHALLENGE_FORMAT, "peek: 99 characters: FORMAT");
    is_int(jpki_challenge_peek(NULL, 0, "gate.example", 12, &v),
           JPKI_ERR_CHALLENGE_FORMAT, "peek: none: FORMAT");
    memcpy(t, ch, sizeof(t));
    t[50] = t[50] == '+' ? '/' : '+';
    is_int(jpki_challenge_peek(t, 100, "gate.example", 12, &v),
           JPKI_ERR_CHALLENGE_FORMAT, "peek: '+' (standard alphabet): FORMAT");
    t[50] = '=';
    is_int(jpki_challenge_peek(t, 100, "gate.example", 12, &v),
           JPKI_ERR_CHALLENGE_FORMAT, "peek: '=': FORMAT");
    decode(ch, raw);
    raw[0] = 3;
    encode(raw, t);
    ok(jpki_challenge_peek(t, 100, "gate.example", 12, &v) == JPKI_OK
       && v.version == 3 && v.expires == 0 && v.host_ok == 0,
       "peek: version 3: read, nothing else");
    raw[0] = 1;
    encode(raw, t);
    ok(jpki_challenge_peek(t, 100, "gate.example", 12, &v) == JPKI_OK
       && v.version == 1, "peek: version 1 (older gates): read");
    memset(t, 'A', 100);
    t[100] = '\0';
    ok(jpki_challenge_peek(t, 100, "gate.example", 12, &v) == JPKI_OK
       && v.version == 0, "peek: 100 x 'A': version 0");
    jpki_ctx_free(c);
}

static void test_host(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks, NULL);
    char ch[JPKI_CHALLENGE_LEN + 1], t[JPKI_CHALLENGE_LEN + 1];
    char id[JPKI_CHALLENGE_ID_HEX + 1], big[300];
    uint8_t raw[RAW + 3], r2[RAW + 3], h[8];
    time_t exp;
    int i;

#define CANON(host, canon, name) canon_is(host, strlen(host), canon, name)
    CANON("gate.example", "gate.example", "plain host");
    CANON("gate.example:8443", "gate.example", "port stripped");
    CANON("gate.example:1", "gate.example", "1-digit port stripped");
    CANON("gate.example:123456", "gate.example:123456",
          "6 digits after ':': not a port, kept");
    CANON("gate.example:", "gate.example:", "':' with no digits: kept");
    CANON("gate.example:80a", "gate.example:80a", "non-digit port: kept");
    CANON("a:b:443", "a:b", "only after the last ':'");
    CANON("GATE.Example", "gate.example", "uppercase lowered");
    CANON("gate.example.", "gate.example", "trailing dot removed");
    CANON("gate.example..", "gate.example.", "only one trailing dot removed");
    CANON("GATE.EXAMPLE.:443", "gate.example", "port, case and dot");
    CANON("127.0.0.1:18600", "127.0.0.1", "IPv4 with port");
    CANON("[::1]:8443", "::1", "[v6]:port");
    CANON("[::1]", "::1", "[v6]");
    CANON("[FE80::1]:443", "fe80::1", "[V6]:port lowered");
    CANON("[::1", "", "'[' without ']': empty");
    CANON("[]:443", "", "empty brackets: empty");
    CANON("::1", ":", "bare v6 ending in digits: last ':' part is a port");
    CANON("", "", "empty");
    CANON(".", "", "lone dot: empty");
    CANON(":443", "", "port only: empty");
    CANON("gate example", "", "space: empty");
    CANON("gate\x7f" "example", "", "DEL: empty");
    CANON("g\xc3\xa4te.example", "", "non-ASCII: empty");
    canon_is("gate.example", 4, "gate", "length honoured (no NUL needed)");
    canon_is(NULL, 0, "", "NULL (no Host): empty");
    memset(big, 'a', sizeof(big));
    big[255] = '\0';
    canon_is(big, 255, big, "255 bytes kept");
    {
        char b2[300];
        memcpy(b2, big, 255);
        memcpy(b2 + 255, ".:443", 6);
        canon_is(b2, strlen(b2), big, "255 bytes + '.' + port kept");
        b2[255] = 'a';
        b2[256] = '\0';
        canon_is(b2, 256, "", "256 bytes: empty");
    }
#undef CANON

    /* the hash is in the challenge, under the MAC */
    jpki_challenge_issue(c, NOW, "Gate.Example:443", 16, ch, &exp);
    decode(ch, raw);
    want_hash("gate.example", h);
    ok(memcmp(raw + 10, h, 8) == 0, "bytes 10..17 are the host hash");
    is_int(chk(c, ch, 100, NOW), JPKI_OK,
           "issued for Gate.Example:443, checked for gate.example");
    is_int(jpki_challenge_check(c, ch, 100, NOW, "gate.example.:8443", 18, id,
                                NULL),
           JPKI_OK, "checked for gate.example.:8443");
    is_int(jpki_challenge_check(c, ch, 100, NOW, "other.example", 13, id,
                                NULL),
           JPKI_ERR_CHALLENGE_HOST, "checked for other.example: HOST");
    is_int(jpki_challenge_check(c, ch, 100, NOW, "gate.example.evil", 17, id,
                                NULL),
           JPKI_ERR_CHALLENGE_HOST, "checked for gate.example.evil: HOST");
    is_int(jpki_challenge_check(c, ch, 100, NOW, NULL, 0, id, NULL),
           JPKI_ERR_CHALLENGE_HOST, "checked without a Host: HOST");
    is_str(jpki_reason(JPKI_ERR_CHALLENGE_HOST), "challenge_host",
           "reason challenge_host");

    /* order: format, key, MAC, expiry, then host */
    is_int(jpki_challenge_check(c, ch, 100, NOW + 121, "other.example", 13,
                                id, NULL),
           JPKI_ERR_CHALLENGE_EXPIRED, "expired and other host: EXPIRED");
    memcpy(r2, raw, RAW);
    r2[12] ^= 0x01;
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_MAC,
           "host hash changed without the key: MAC");
    want_hash("other.example", r2 + 10);
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_HOST,
           "host hash of other.example with a valid MAC: HOST");
    is_int(jpki_challenge_check(c, t, 100, NOW, "OTHER.example:80", 16, id,
                                NULL),
           JPKI_OK, "... and accepted for other.example");

    /* no or a bad Host: none issued (bound to the empty host, it would
     * be good under any other invalid Host) */
    {
        static const struct { const char *h; size_t n; const char *name; }
            bad[] = {
                {NULL, 0, "no Host"},
                {"", 0, "an empty Host"},
                {":443", 4, "a port alone"},
                {"gate example", 12, "a space"},
                {"g\xc3\xa4te.example", 13, "a byte over 0x7e"},
                {"gate\x01.example", 13, "a control byte"},
                {"[::1", 4, "'[' without ']'"},
            };
        size_t k;

        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            memset(ch, 'x', sizeof(ch) - 1);
            ch[sizeof(ch) - 1] = '\0';
            is_int(jpki_challenge_issue(c, NOW, bad[k].h, bad[k].n, ch, NULL),
                   JPKI_ERR_BAD_HOST, "not issued for %s: BAD_HOST",
                   bad[k].name);
        }
        memset(big, 'a', sizeof(big));        /* 300 bytes, no NUL */
        is_int(jpki_challenge_issue(c, NOW, big, 300, ch, NULL),
               JPKI_ERR_BAD_HOST, "not issued for a 300-byte Host");
        is_int(jpki_challenge_issue(c, NOW, big, 255, ch, NULL), JPKI_OK,
               "... issued for 255 bytes");
        is_str(jpki_reason(JPKI_ERR_BAD_HOST), "bad_host", "reason bad_host");
    }

    /* one bound to the empty host (as issued before) is good under no
     * Host at all */
    memset(r2, 0, sizeof(r2));
    r2[0] = 2;
    r2[1] = 1;
    put_exp(r2, (uint64_t)NOW + 60);
    want_hash("", r2 + 10);
    remac(r2, K1);
    encode(r2, t);
    want_hash("", h);
    ok(memcmp(r2 + 10, h, 8) == 0, "(a challenge bound to the empty host)");
    is_int(jpki_challenge_check(c, t, 100, NOW, NULL, 0, id, NULL),
           JPKI_ERR_CHALLENGE_HOST, "... refused without a Host");
    is_int(jpki_challenge_check(c, t, 100, NOW, big, 300, id, NULL),
           JPKI_ERR_CHALLENGE_HOST, "... refused for a 300-byte Host");
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_HOST,
           "... refused for gate.example");

    /* version 1 (no host), with a valid MAC: refused as malformed */
    memset(r2, 0, sizeof(r2));
    r2[0] = 1;
    r2[1] = 1;
    put_exp(r2, (uint64_t)NOW + 60);
    for (i = 10; i < BODY; i++)
        r2[i] = (uint8_t)(i * 7);
    remac(r2, K1);
    encode(r2, t);
    is_int(chk(c, t, 100, NOW), JPKI_ERR_CHALLENGE_FORMAT,
           "version 1 with a valid MAC: FORMAT");
    jpki_ctx_free(c);
}

/* The device flow's short code: SHA-256 of the challenge in 8 characters
 * of the alphabet (the vector computed with Python's hashlib). */
static void test_device_code(void)
{
    char ch[JPKI_CHALLENGE_LEN + 1], code[JPKI_DEVICE_CODE_LEN + 1];

    memset(ch, 'A', 50);
    memset(ch + 50, 'b', 49);
    ch[99] = '_';
    ch[100] = '\0';
    is_int(jpki_device_code(ch, 100, code), JPKI_OK, "device code: ok");
    is_str(code, "ZMFE-5P62", "device code: the known vector");
    ch[0] = 'B';
    is_int(jpki_device_code(ch, 100, code), JPKI_OK, "device code: ok");
    ok(strcmp(code, "ZMFE-5P62") != 0 && strlen(code) == 9 && code[4] == '-',
       "device code: another challenge, another code, XXXX-XXXX");
    is_int(jpki_device_code(ch, 99, code), JPKI_ERR_CHALLENGE_FORMAT,
           "device code: 99 characters refused");
    is_int(code[0], 0, "device code: out emptied on an error");
    is_int(jpki_device_code(NULL, 100, code), JPKI_ERR_CHALLENGE_FORMAT,
           "device code: no challenge refused");
}

int main(void)
{
    NOW = time(NULL);
    memset(K1, 0x11, 32);
    memset(K2, 0x22, 32);
    memset(K1_OTHER, 0x33, 32);
    test_issue_check();
    test_errors();
    test_host();
    test_peek();
    test_rotation();
    test_device_code();
    return done_testing();
}
