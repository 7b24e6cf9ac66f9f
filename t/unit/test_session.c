/* test_session.c - sealed session cookies (AES-256-GCM under the key ring),
 * account validation and the Cookie header lookup.  The ring keys are
 * known to the test, so it also seals correctly authenticated cookies with
 * malformed plaintexts. */
#include "jpki.h"
#include "tap.h"

#include <stdint.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#define FIXED 75          /* plaintext bytes besides rev_ref and account */
#define RAW_MAX (1 + 12 + FIXED + 53 + JPKI_ACCOUNT_MAX + 16)

static time_t NOW;
static uint8_t K1[32], K2[32];

typedef struct { unsigned id; const uint8_t *key; int current; } kspec;

static jpki_ctx *make_ctx(const kspec *keys)
{
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_ctx_set_secret(c, K1, 32);
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

static void sample(jpki_session *s)
{
    int i;
    memset(s, 0, sizeof(*s));
    snprintf(s->account, sizeof(s->account), "yamada.taro@example.jp");
    snprintf(s->cert_id, sizeof(s->cert_id), "0123456789abcdef0123456789abcdef");
    snprintf(s->issuer_tag, sizeof(s->issuer_tag), "fedcba9876543210");
    snprintf(s->sid, sizeof(s->sid), "00112233445566778899aabbccddeeff");
    for (i = 0; i < 53; i++)
        s->rev_ref[i] = (uint8_t)(0xf0 ^ (i * 7));
    s->rev_ref_len = 53;
    s->auth_time = (int64_t)NOW - 100;
    s->expires = (int64_t)NOW + 28800;
    s->idle_deadline = (int64_t)NOW + 1800;
    s->rev_checked = (int64_t)NOW - 5;
    s->flags = JPKI_SESSION_F_SOFT_PASS;
}

static int same(const jpki_session *a, const jpki_session *b)
{
    return strcmp(a->account, b->account) == 0
           && strcmp(a->cert_id, b->cert_id) == 0
           && strcmp(a->issuer_tag, b->issuer_tag) == 0
           && strcmp(a->sid, b->sid) == 0 && a->rev_ref_len == b->rev_ref_len
           && memcmp(a->rev_ref, b->rev_ref, a->rev_ref_len) == 0
           && a->auth_time == b->auth_time && a->expires == b->expires
           && a->idle_deadline == b->idle_deadline
           && a->rev_checked == b->rev_checked && a->flags == b->flags;
}

static jpki_err seal(const jpki_ctx *c, const jpki_session *s, char *out)
{
    size_t n = 0;
    jpki_err e = jpki_session_seal(c, s, out, JPKI_SESSION_MAX + 1, &n);
    if (e == JPKI_OK && n != strlen(out))
        return JPKI_ERR_INTERNAL;
    return e;
}

static jpki_err open_at(const jpki_ctx *c, const char *in, size_t len,
                        time_t t, jpki_session *s)
{
    /* an exact-size copy, so ASan sees any read past len */
    char *copy = malloc(len ? len : 1);
    jpki_err e;
    memcpy(copy, in, len);
    e = jpki_session_open(c, copy, len, t, s);
    free(copy);
    return e;
}

static jpki_err open_str(const jpki_ctx *c, const char *in, time_t t)
{
    jpki_session s;
    return open_at(c, in, strlen(in), t, &s);
}

/* raw <-> cookie text */
static size_t unwrap(const char *cookie, uint8_t *raw)
{
    size_t n = 0;
    if (jpki_b64_decode(cookie + 3, strlen(cookie) - 3, raw, &n) != JPKI_OK)
        diag("cookie does not decode");
    return n;
}

static void wrap(const uint8_t *raw, size_t n, char *out)
{
    memcpy(out, "v1.", 3);
    jpki_b64_encode(raw, n, out + 3, 1);
}

/* Seals pt as the library would with ring key `key` under id kid. */
static void forge(const uint8_t key[32], uint8_t kid, const uint8_t *pt,
                  size_t ptlen, char *out)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    OSSL_PARAM p[4];
    uint8_t sk[32], raw[600], aad[16];
    int n = 0;

    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key,
                                             32);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             (void *)"jpki session v1", 15);
    p[3] = OSSL_PARAM_construct_end();
    EVP_KDF_derive(kc, sk, 32, p);
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    raw[0] = kid;
    memset(raw + 1, 0x42, 12);
    memcpy(aad, "jpki-session-v1", 15);
    aad[15] = kid;
    EVP_EncryptInit_ex(cc, EVP_aes_256_gcm(), NULL, sk, raw + 1);
    EVP_EncryptUpdate(cc, NULL, &n, aad, 16);
    EVP_EncryptUpdate(cc, raw + 13, &n, pt, (int)ptlen);
    EVP_EncryptFinal_ex(cc, raw + 13 + n, &n);
    EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_GET_TAG, 16, raw + 13 + ptlen);
    EVP_CIPHER_CTX_free(cc);
    wrap(raw, 13 + ptlen + 16, out);
}

/* A plaintext: fixed part from the sample, then ref_len, ref, alen, acct. */
static size_t plaintext(uint8_t *pt, size_t rlen_field, size_t rlen,
                        size_t alen_field, const char *acct, size_t alen)
{
    size_t n = 0;
    int i;
    for (i = 0; i < 4; i++) {              /* auth, expires, idle, checked */
        int64_t v = i == 1 ? (int64_t)NOW + 3600 : i == 2 ? 0 : (int64_t)NOW;
        int j;
        for (j = 0; j < 8; j++)
            pt[n++] = (uint8_t)((uint64_t)v >> (56 - 8 * j));
    }
    pt[n++] = 0;                           /* flags */
    memset(pt + n, 0xab, 40);              /* cert_id, issuer_tag, sid */
    n += 40;
    pt[n++] = (uint8_t)rlen_field;
    memset(pt + n, 0x5c, rlen);
    n += rlen;
    pt[n++] = (uint8_t)alen_field;
    memcpy(pt + n, acct, alen);
    return n + alen;
}

static void test_round_trip(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks);
    jpki_session s, o;
    char ck[JPKI_SESSION_MAX + 1], ck2[JPKI_SESSION_MAX + 1];

    sample(&s);
    is_int(seal(c, &s, ck), JPKI_OK, "seal");
    ok(strncmp(ck, "v1.", 3) == 0, "cookie starts with v1.");
    ok(strspn(ck + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789-_") == strlen(ck) - 3,
       "base64url after the prefix (cookie-safe)");
    is_int(open_at(c, ck, strlen(ck), NOW, &o), JPKI_OK, "open");
    ok(same(&s, &o), "every field round trips (rev_ref of 53 bytes, flags)");
    seal(c, &s, ck2);
    ok(strcmp(ck, ck2) != 0, "two seals of the same session differ (IV)");

    s.rev_ref_len = 0;
    s.flags = 0;
    s.idle_deadline = 0;
    s.auth_time = -5;
    s.rev_checked = INT64_MAX;
    s.expires = INT64_MAX;
    snprintf(s.account, sizeof(s.account), "山田 太郎");
    seal(c, &s, ck);
    ok(open_at(c, ck, strlen(ck), NOW, &o) == JPKI_OK && same(&s, &o),
       "no rev_ref, no idle limit, extreme times, UTF-8 account");
    memset(s.account, 'a', JPKI_ACCOUNT_MAX);
    s.account[JPKI_ACCOUNT_MAX] = '\0';
    s.rev_ref_len = 53;
    is_int(seal(c, &s, ck), JPKI_OK, "largest session seals");
    ok(strlen(ck) <= JPKI_SESSION_MAX, "within JPKI_SESSION_MAX (%zu)",
       strlen(ck));
    ok(open_at(c, ck, strlen(ck), NOW, &o) == JPKI_OK && same(&s, &o),
       "largest session opens");

    /* seal refusals */
    sample(&s);
    s.account[0] = '\0';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "empty account not sealed");
    sample(&s);
    s.account[3] = '"';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "account with a quote");
    sample(&s);
    s.cert_id[5] = 'x';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "cert_id not hex");
    sample(&s);
    s.cert_id[31] = '\0';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "cert_id of 31 chars");
    sample(&s);
    s.issuer_tag[15] = '\0';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "issuer_tag of 15 chars");
    sample(&s);
    s.sid[0] = 'g';
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "sid not hex");
    sample(&s);
    s.rev_ref_len = 54;
    is_int(seal(c, &s, ck), JPKI_ERR_INVALID, "rev_ref_len 54");
    sample(&s);
    {
        size_t n;
        is_int(jpki_session_seal(c, &s, ck, 100, &n), JPKI_ERR_TOO_LARGE,
               "output buffer too small");
    }
    {
        jpki_ctx *u = jpki_ctx_new();
        is_int(seal(u, &s, ck), JPKI_ERR_INVALID, "seal on an unfinished ctx");
        seal(c, &s, ck);
        is_int(open_at(u, ck, strlen(ck), NOW, &o), JPKI_ERR_INVALID,
               "open on an unfinished ctx");
        jpki_ctx_free(u);
    }
    jpki_ctx_free(c);
}

static void test_open_errors(void)
{
    kspec ks[] = {{1, K1, 1}, {0, NULL, 0}};
    jpki_ctx *c = make_ctx(ks);
    jpki_session s, o;
    char ck[JPKI_SESSION_MAX + 1], t[1200];
    uint8_t raw[RAW_MAX + 8], r2[RAW_MAX + 8], pt[400];
    size_t n, i, bad, ptl;

    sample(&s);
    seal(c, &s, ck);
    n = unwrap(ck, raw);

    /* every byte after the key id: tag check fails */
    for (i = 1, bad = 0; i < n; i++) {
        memcpy(r2, raw, n);
        r2[i] ^= 0x04;
        wrap(r2, n, t);
        if (open_str(c, t, NOW) != JPKI_ERR_SESSION_MAC)
            bad++;
    }
    ok(bad == 0, "a flipped bit in IV, ciphertext or tag: SESSION_MAC "
       "(%zu bytes tried)", n - 1);
    memcpy(r2, raw, n);
    r2[0] = 7;
    wrap(r2, n, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_KEY, "unknown key id 7");
    memcpy(r2, raw, n);
    r2[0] = 0;
    wrap(r2, n, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_KEY, "key id 0");

    /* format */
    snprintf(t, sizeof(t), "v2.%s", ck + 3);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "prefix v2.");
    snprintf(t, sizeof(t), "V1.%s", ck + 3);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "prefix V1.");
    is_int(open_str(c, ck + 3, NOW), JPKI_ERR_SESSION_FORMAT, "no prefix");
    is_int(open_str(c, "v1.", NOW), JPKI_ERR_SESSION_FORMAT, "prefix only");
    is_int(open_str(c, "", NOW), JPKI_ERR_SESSION_FORMAT, "empty");
    is_int(jpki_session_open(c, NULL, 10, NOW, &o), JPKI_ERR_SESSION_FORMAT,
           "NULL");
    snprintf(t, sizeof(t), "%s", ck);
    t[40] = '.';
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "bad base64 char");
    snprintf(t, sizeof(t), "%s", ck);
    t[40] = '+';
    t[41] = '-';
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "mixed alphabets");
    /* 179 raw bytes: the text ends in a 3-char group, whose padding is "=" */
    is_int(n % 3, 2, "sample cookie ends in a partial group");
    snprintf(t, sizeof(t), "%s==", ck);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "wrong padding");
    snprintf(t, sizeof(t), "%s=", ck);
    is_int(open_str(c, t, NOW), JPKI_OK,
           "right padding tolerated (base64 padding is optional)");
    snprintf(t, sizeof(t), "%s", ck);
    t[strlen(t) - 1] = '\0';
    ok(open_str(c, t, NOW) != JPKI_OK, "last character removed: refused");
    memset(t, 'A', sizeof(t));
    memcpy(t, "v1.AQ", 5);                 /* key id 1, then zeros */
    is_int(open_at(c, t, JPKI_SESSION_MAX + 1, NOW, &o),
           JPKI_ERR_SESSION_FORMAT, "513 chars: too long");
    is_int(open_at(c, t, JPKI_SESSION_MAX, NOW, &o), JPKI_ERR_SESSION_FORMAT,
           "512 chars: longer than any sealed session");
    is_int(open_at(c, t, 3 + 384, NOW, &o), JPKI_ERR_SESSION_FORMAT,
           "384 base64 chars: over the largest session (288 bytes)");
    is_int(open_at(c, t, 3 + 380, NOW, &o), JPKI_ERR_SESSION_MAC,
           "380 base64 chars (285 bytes): length ok, MAC fails");
    is_int(open_at(c, t, 3 + 139, NOW, &o), JPKI_ERR_SESSION_FORMAT,
           "too short: 104 bytes");
    is_int(open_at(c, t, 3 + 140, NOW, &o), JPKI_ERR_SESSION_MAC,
           "105 bytes: length ok, MAC fails");
    wrap(raw, 104, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT,
           "real cookie cut to 104 bytes");

    /* authenticated (forged with the key) but malformed plaintexts */
    ptl = plaintext(pt, 0, 0, 5, "alice", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_at(c, t, strlen(t), NOW, &o), JPKI_OK,
           "(the forger is right: a well-formed plaintext opens)");
    is_str(o.account, "alice", "forged account read back");
    ptl = plaintext(pt, 54, 54, 5, "alice", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "rev_ref_len 54");
    ptl = plaintext(pt, 50, 10, 5, "alice", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT,
           "rev_ref_len beyond the plaintext");
    ptl = plaintext(pt, 0, 0, 6, "alice", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT,
           "account length beyond the plaintext");
    ptl = plaintext(pt, 0, 0, 4, "alice", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT,
           "trailing byte after the account");
    ptl = plaintext(pt, 0, 0, 5, "al\"ce", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "account with a quote");
    ptl = plaintext(pt, 0, 0, 5, "al\nce", 5);
    forge(K1, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT, "account with LF");
    {
        char a[140];
        memset(a, 'a', sizeof(a));
        ptl = plaintext(pt, 0, 0, 129, a, 129);
        forge(K1, 1, pt, ptl, t);
        is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_FORMAT,
               "account of 129 bytes");
        ptl = plaintext(pt, 0, 0, 128, a, 128);
        forge(K1, 1, pt, ptl, t);
        is_int(open_str(c, t, NOW), JPKI_OK, "account of 128 bytes");
    }
    ptl = plaintext(pt, 0, 0, 5, "alice", 5);
    forge(K2, 1, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_MAC,
           "sealed with another key under the same id");
    forge(K1, 2, pt, ptl, t);
    is_int(open_str(c, t, NOW), JPKI_ERR_SESSION_KEY,
           "sealed under an id the ring lacks");

    /* time */
    sample(&s);
    seal(c, &s, ck);
    is_int(open_at(c, ck, strlen(ck), (time_t)s.idle_deadline - 1, &o), JPKI_OK,
           "1 s before the idle deadline");
    is_int(open_at(c, ck, strlen(ck), (time_t)s.idle_deadline, &o),
           JPKI_ERR_SESSION_IDLE, "at the idle deadline: IDLE");
    s.idle_deadline = 0;
    seal(c, &s, ck);
    is_int(open_at(c, ck, strlen(ck), (time_t)s.expires - 1, &o), JPKI_OK,
           "no idle limit: valid until the end");
    is_int(open_at(c, ck, strlen(ck), (time_t)s.expires, &o),
           JPKI_ERR_SESSION_EXPIRED, "at expires: EXPIRED");
    is_int(open_at(c, ck, strlen(ck), (time_t)s.expires + 86400, &o),
           JPKI_ERR_SESSION_EXPIRED, "a day after: EXPIRED");
    s.idle_deadline = s.expires + 10;
    seal(c, &s, ck);
    is_int(open_at(c, ck, strlen(ck), (time_t)s.expires + 20, &o),
           JPKI_ERR_SESSION_EXPIRED, "both passed: EXPIRED first");
    jpki_ctx_free(c);
}

static void test_rotation(void)
{
    kspec ka[] = {{1, K1, 1}, {0, NULL, 0}};
    kspec kb[] = {{1, K1, 0}, {2, K2, 1}, {0, NULL, 0}};
    jpki_ctx *a = make_ctx(ka), *b = make_ctx(kb);
    jpki_session s, o;
    char ck[JPKI_SESSION_MAX + 1];
    uint8_t raw[RAW_MAX + 8];

    sample(&s);
    seal(a, &s, ck);
    ok(open_at(b, ck, strlen(ck), NOW, &o) == JPKI_OK && same(&s, &o),
       "cookie from A (key 1) opens on B (keys 1, 2)");
    seal(b, &s, ck);
    unwrap(ck, raw);
    is_int(raw[0], 2, "B seals with its current key 2");
    is_int(open_str(b, ck, NOW), JPKI_OK, "B opens its own");
    is_int(open_str(a, ck, NOW), JPKI_ERR_SESSION_KEY,
           "cookie from B fails on A with SESSION_KEY");
    jpki_ctx_free(a);
    jpki_ctx_free(b);
}

static void test_account(void)
{
    char a[200];
    const char *bad[] = {"a\x01", "a\x1f", "a\x7f", "a\n", "a\r", "a\t",
                         "a\"b", "a\\b"};
    size_t i;

    ok(jpki_account_valid("alice", 5), "plain ASCII");
    ok(jpki_account_valid("a b@c.d-e_f+g", 13), "spaces and punctuation");
    ok(jpki_account_valid("山田太郎", strlen("山田太郎")), "UTF-8");
    ok(jpki_account_valid("alice\"", 5), "length honoured");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(!jpki_account_valid(bad[i], strlen(bad[i])), "refused: %s",
           bad[i][1] == '"' ? "quote" : bad[i][1] == '\\' ? "backslash"
                                                          : "control char");
    ok(!jpki_account_valid("a\0b", 3), "NUL refused");
    ok(!jpki_account_valid("a\xff", 2), "invalid UTF-8 byte refused");
    ok(!jpki_account_valid("a\xe5\xb1", 3), "truncated UTF-8 refused");
    ok(!jpki_account_valid("a\xc0\xaf", 3), "overlong UTF-8 refused");
    ok(!jpki_account_valid("a\xed\xa0\x80", 4), "UTF-8 surrogate refused");
    ok(jpki_account_valid("\xf0\x9f\x98\x80", 4), "4-byte UTF-8 accepted");
    ok(!jpki_account_valid("", 0), "empty refused");
    ok(!jpki_account_valid(NULL, 3), "NULL refused");
    memset(a, 'x', sizeof(a));
    ok(jpki_account_valid(a, 128), "128 bytes");
    ok(!jpki_account_valid(a, 129), "129 bytes refused");
}

static int find(const char *hdr, const char *name, char *out)
{
    const char *v = NULL;
    size_t vl = 0;
    /* exact-size copy: no NUL after the header */
    char *copy = malloc(strlen(hdr) + 1);
    int r;
    memcpy(copy, hdr, strlen(hdr));
    r = jpki_cookie_find(copy, strlen(hdr), name, &v, &vl);
    out[0] = '\0';
    if (r == 1)
        snprintf(out, 256, "%.*s", (int)vl, v);
    free(copy);
    return r;
}

static void test_cookie_find(void)
{
    char v[256];
    const char *val;
    size_t vl;

    ok(find("jpki_session=abc", "jpki_session", v) && !strcmp(v, "abc"),
       "single cookie");
    ok(find("a=1; jpki_session=abc; b=2", "jpki_session", v)
       && !strcmp(v, "abc"), "among several");
    ok(find("a=1;jpki_session=abc;b=2", "jpki_session", v)
       && !strcmp(v, "abc"), "without spaces");
    ok(find("  a=1 ;\t jpki_session=abc \t; b=2", "jpki_session", v)
       && !strcmp(v, "abc"), "spaces and tabs around");
    ok(find("a=1; jpki_session=\"abc\"", "jpki_session", v)
       && !strcmp(v, "abc"), "quoted value");
    ok(find("jpki_session=\"", "jpki_session", v) && !strcmp(v, "\""),
       "a lone quote is kept");
    ok(find("jpki_session2=x; jpki_session=y", "jpki_session", v)
       && !strcmp(v, "y"), "name that extends ours does not match");
    ok(find("jpki_session=y; jpki_session2=x", "jpki_session", v)
       && !strcmp(v, "y"), "... in either order");
    ok(!find("jpki_session2=x", "jpki_session", v),
       "only a longer name: absent");
    ok(!find("xjpki_session=x", "jpki_session", v), "name with a prefix");
    ok(!find("jpki_sessio=x", "jpki_session", v), "shorter name");
    ok(find("jpki_session=a; jpki_session=b", "jpki_session", v)
       && !strcmp(v, "a"), "first of duplicates");
    ok(find("jpki_session=", "jpki_session", v) && !strcmp(v, ""),
       "empty value found");
    ok(!find("jpki_session", "jpki_session", v), "name without =");
    ok(!find("a=1; b=2", "jpki_session", v), "absent");
    ok(!find("", "jpki_session", v), "empty header");
    ok(!find(";;; ;", "jpki_session", v), "only separators");
    ok(find("a=jpki_session=1; jpki_session=2", "jpki_session", v)
       && !strcmp(v, "2"), "name inside another cookie's value ignored");
    ok(jpki_cookie_find("jpki_session=abcdef", 15, "jpki_session", &val, &vl)
       == 1 && vl == 2 && memcmp(val, "ab", 2) == 0, "header length honoured");
}

/* jpki_cookie_strip over an exact-size copy into an exact-size buffer
 * (ASan sees any access past len): what is left, NUL-terminated, in out
 * (256); returns how many were removed. */
static size_t strip(const char *hdr, const char *name, char *out)
{
    size_t len = strlen(hdr), ol = 12345, n;
    char *copy = malloc(len ? len : 1), *o = malloc(len ? len : 1);

    memcpy(copy, hdr, len);
    n = jpki_cookie_strip(copy, len, name, o, &ol);
    snprintf(out, 256, "%.*s", (int)(ol <= len ? ol : 0), o);
    if (ol > len)
        snprintf(out, 256, "(outlen %zu over %zu)", ol, len);
    free(copy);
    free(o);
    return n;
}

#define STRIP(hdr, want_n, want, name) do {                                 \
        char o_[256];                                                       \
        size_t n_ = strip(hdr, "jpki_session", o_);                         \
        if (!tap_ok(n_ == (want_n) && strcmp(o_, want) == 0, __FILE__,      \
                    __LINE__, "strip: %s", name))                           \
            printf("#   got %zu removed, \"%s\"; want %d, \"%s\"\n", n_,    \
                   o_, (int)(want_n), want);                                \
    } while (0)

static void test_cookie_strip(void)
{
    static const char *const parts[] = {
        "jpki_session=v1.abc", "jpki_session=\"v1.q\"", "jpki_session = x",
        "a=1", "b=\"x y\"", "jpki_session2=k", "xjpki_session=k",
        "jpki_session", "c=jpki_session=v", ";", "; ", " ", "\t", "=v",
    };
    char hdr[512], out[256], again[256], buf[600];
    const char *v;
    size_t vl, i, j, bad = 0, ol;
    unsigned seed = 7;

    STRIP("jpki_session=abc", 1, "", "the only cookie: nothing left");
    STRIP("a=1; jpki_session=abc; b=2", 1, "a=1; b=2", "in the middle");
    STRIP("jpki_session=abc; b=2", 1, "b=2", "first");
    STRIP("a=1; jpki_session=abc", 1, "a=1", "last");
    STRIP("a=1;jpki_session=abc;b=2", 1, "a=1;b=2", "without spaces");
    STRIP("  a=1 ;\t jpki_session=abc \t;  b=2  ", 1, "a=1 ;\t b=2",
          "blanks: the separators of the items kept stay as they were");
    STRIP("a=1; jpki_session=x; jpki_session=y; b=2; jpki_session=z", 3,
          "a=1; b=2", "every occurrence");
    STRIP("jpki_session=\"v1.abc\"; theme=dark", 1, "theme=dark",
          "quoted value");
    STRIP("jpki_session =x; jpki_session\t= y; a=1", 2, "a=1",
          "blanks before '='");
    STRIP("jpki_session=a=b; c=d", 1, "c=d", "'=' in the value");
    STRIP("a=\"x;jpki_session=tok\"; b=2", 1, "a=\"x;b=2",
          "what the gate would read inside another quoted value: removed");
    STRIP("jpki_session2=x; xjpki_session=y; jpki_sessio=z; c=jpki_session=v",
          0, "jpki_session2=x; xjpki_session=y; jpki_sessio=z; "
          "c=jpki_session=v", "other names, and ours in a value: kept");
    STRIP("jpki_session; a=1", 0, "jpki_session; a=1",
          "our name without '=' (not a cookie of ours): kept");
    STRIP("", 0, "", "empty header");
    STRIP(";;; ;", 0, "", "only separators");
    STRIP("a=1;;  ;jpki_session=x;; b=2;;", 1, "a=1;;  ;b=2",
          "empty items");
    {
        char o[256];
        ok(strip("__Host-s=abc; jpki_session=k", "__Host-s", o) == 1
           && strcmp(o, "jpki_session=k") == 0, "another cookie name");
        ok(strip("jpki_session=x; a=1", "", o) == 0
           && strcmp(o, "jpki_session=x; a=1") == 0, "an empty name: none");
    }
    ol = 99;
    is_int(jpki_cookie_strip("jpki_session=abcdef; z=1", 16, "jpki_session",
                             out, &ol), 1, "header length honoured");
    is_int(ol, 0, "... nothing left");

    /* random headers: never longer, nothing the gate could read left,
     * stripping again changes nothing, the other items in order */
    for (i = 0; i < 20000; i++) {
        size_t k = 1 + rand_r(&seed) % 12;
        hdr[0] = '\0';
        for (j = 0; j < k; j++) {
            const char *p = parts[rand_r(&seed) % (sizeof(parts)
                                                   / sizeof(parts[0]))];
            strcat(hdr, p);
            if (j + 1 < k && rand_r(&seed) % 3)
                strcat(hdr, rand_r(&seed) % 2 ? "; " : ";");
        }
        (void)strip(hdr, "jpki_session", out);
        if (strlen(out) > strlen(hdr) || strncmp(out, "(outlen", 7) == 0
            || jpki_cookie_find(out, strlen(out), "jpki_session", &v, &vl)
            || strip(out, "jpki_session", again) != 0
            || strcmp(again, out) != 0) {
            if (bad++ < 3)
                printf("# \"%s\" -> \"%s\"\n", hdr, out);
        }
        /* a header without ours comes out the same (blanks and ';' at
         * its ends aside) */
        if (!jpki_cookie_find(hdr, strlen(hdr), "jpki_session", &v, &vl)
            && strip(hdr, "jpki_session", out) == 0) {
            size_t a = strspn(hdr, " ;\t"), b = strlen(hdr);
            while (b > a && strchr(" ;\t", hdr[b - 1]))
                b--;
            snprintf(buf, sizeof(buf), "%.*s", (int)(b - a), hdr + a);
            if (strcmp(buf, out) != 0 && bad++ < 3)
                printf("# kept \"%s\" -> \"%s\"\n", hdr, out);
        }
    }
    is_int(bad, 0, "20000 random headers: never longer, no session cookie "
           "left, idempotent, the rest unchanged");
}

int main(void)
{
    NOW = time(NULL);
    memset(K1, 0x11, 32);
    memset(K2, 0x22, 32);
    test_round_trip();
    test_open_errors();
    test_rotation();
    test_account();
    test_cookie_find();
    test_cookie_strip();
    return done_testing();
}
