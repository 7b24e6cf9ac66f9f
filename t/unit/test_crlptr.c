/* test_crlptr.c - the Redis layout of loaded CRLs (common/crlptr.c): the
 * pointer's writer and reader (round trips, every malformed pointer
 * refused), bucket names, fields and values, as `jpkictl crl sync` writes
 * them and the gate (txn.c) reads them. */
#include "jpki.h"
#include "crlptr.h"
#include "tap.h"

#include <stdint.h>
#include <openssl/evp.h>

static int parses(const char *s)
{
    jpki_crlptr p;
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);        /* exact size, no NUL: ASan sees */
    int r;

    memcpy(b, s, n);
    r = jpki_crlptr_parse(b, n, &p);
    free(b);
    return r == 0;
}

static int same(const jpki_crlptr *a, const jpki_crlptr *b)
{
    return a->gen == b->gen && a->shape.bits == b->shape.bits
           && a->shape.key_len == b->shape.key_len
           && a->this_update == b->this_update
           && a->next_update == b->next_update
           && a->crl_number == b->crl_number && a->entries == b->entries
           && a->loaded_at == b->loaded_at;
}

#define L2(bits) {(bits), JPKI_CRL_KEY_LEN}
#define L1(k)    {4 * (k), JPKI_CERT_ID_LEN}

static void test_round_trip(void)
{
    static const jpki_crlptr cases[] = {
        {7, L2(13), 1795300498, 1795386958, 1042, 1000000, 1795303722},
        {1, L2(1), 0, 0, -1, 0, 0},
        {INT64_MAX, L2(24), INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX,
         INT64_MAX},
        {7, L1(4), 1795300498, 1795386958, 1042, 1000000, 1795303722},
        {1, L1(1), 0, 0, -1, 0, 0},
        {1, L1(6), 1, 0, 0, 7, 1},
    };
    char out[JPKI_CRLPTR_MAX + 1];
    jpki_crlptr back;
    size_t i;
    int n;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = jpki_crlptr_format(&cases[i], out, sizeof(out));
        ok(n > 0 && (size_t)n == strlen(out), "case %zu: formatted: %s", i, out);
        ok(jpki_crlptr_parse(out, (size_t)n, &back) == 0
           && same(&back, &cases[i]),
           "case %zu: parsed back to the same values", i);
    }
    n = jpki_crlptr_format(&cases[0], out, sizeof(out));
    is_str(out, "7|b13|1795300498|1795386958|1042|1000000|1795303722",
           "the bytes of docs/store-schema.md's example");
    ok(jpki_crlptr_parse("7|b13|1795300498|1795386958|1042|1000000|1795303722",
                         51, &back) == 0 && back.gen == 7
       && back.shape.bits == 13 && back.shape.key_len == 8
       && back.this_update == 1795300498 && back.next_update == 1795386958
       && back.crl_number == 1042 && back.entries == 1000000
       && back.loaded_at == 1795303722, "the example read field by field");
    /* the layout of the jpkictl before: k hex digits, 16-octet cert_ids */
    n = jpki_crlptr_format(&cases[3], out, sizeof(out));
    is_str(out, "7|4|1795300498|1795386958|1042|1000000|1795303722",
           "layout 1: the pointer of an older jpkictl, byte for byte");
    ok(jpki_crlptr_parse(out, (size_t)n, &back) == 0
       && back.shape.bits == 16 && back.shape.key_len == 16,
       "... read as 16 bits of bucket, 16 octets of cert_id");
}

static void test_shapes(void)
{
    static const struct { const char *s; unsigned bits, key_len; } good[] = {
        {"b1", 1, 8}, {"b9", 9, 8}, {"b13", 13, 8}, {"b24", 24, 8},
        {"1", 4, 16}, {"4", 16, 16}, {"6", 24, 16},
    };
    static const char *const bad[] = {
        "", "b", "b0", "b25", "b99", "b013", "b01", "B13", "bb1", "b1b",
        "b-1", "b+1", "13b", " b1", "b1 ", "b100", "0", "7", "9", "10",
        "04", "-1", "x", "b\n",
    };
    static const jpki_crl_shape nots[] = {
        {0, 8}, {25, 8}, {0, 16}, {6, 16}, {28, 16}, {8, 12}, {8, 0},
        {16, 32},
    };
    char out[JPKI_CRL_SHAPE_MAX];
    jpki_crl_shape sh;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(jpki_crl_shape_parse(good[i].s, strlen(good[i].s), &sh) == 0
           && sh.bits == good[i].bits && sh.key_len == good[i].key_len,
           "shape \"%s\": %u bits, %u octets", good[i].s, good[i].bits,
           good[i].key_len);
        ok(jpki_crl_shape_format(&sh, out) == (int)strlen(good[i].s)
           && strcmp(out, good[i].s) == 0, "... and written back");
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(jpki_crl_shape_parse(bad[i], strlen(bad[i]), &sh) == -1,
           "shape \"%.*s\" refused", (int)strcspn(bad[i], "\n"), bad[i]);
    ok(jpki_crl_shape_parse("b13", 2, &sh) == 0 && sh.bits == 1,
       "only the n bytes given are read");
    for (i = 0; i < sizeof(nots) / sizeof(nots[0]); i++) {
        ok(!jpki_crl_shape_ok(&nots[i])
           && jpki_crl_shape_format(&nots[i], out) == -1 && out[0] == '\0',
           "shape {%u bits, %u octets}: not valid, not written",
           nots[i].bits, nots[i].key_len);
    }
}

static void test_format_refuses(void)
{
    jpki_crlptr p = {7, L2(13), 1, 2, 3, 4, 5};
    char out[JPKI_CRLPTR_MAX + 1];

    ok(jpki_crlptr_format(&p, out, 5) == -1, "a buffer too small: -1");
    p.shape.bits = 0;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "bits 0: not written");
    p.shape.bits = 25;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "bits 25: not written");
    p.shape.bits = 13;
    p.shape.key_len = 16;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1,
       "layout 1 with bits not a whole hex digit: not written");
    p.shape.key_len = 12;
    p.shape.bits = 12;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1,
       "12 octets of cert_id: not written");
    p.shape = (jpki_crl_shape)L1(7);
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "k 7: not written");
    p.shape = (jpki_crl_shape)L2(13);
    p.gen = 0;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "gen 0: not written");
    p.gen = 1;
    p.crl_number = -2;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "crl_number -2: not written");
    p.crl_number = 3;
    p.this_update = -5;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "a negative thisUpdate: not written");
    p.this_update = 1;
    p.entries = (uint64_t)INT64_MAX + 1;
    ok(jpki_crlptr_format(&p, out, sizeof(out)) == -1, "entries over int64: not written");
}

static void test_parse_refuses(void)
{
    static const char *const bad[] = {
        "",                                     /* empty */
        "7|4|1|2|3|4",                          /* 6 fields */
        "7|4|1|2|3|4|5|6",                      /* 8 fields */
        "7|b13|1|2|3|4",
        "7|b13|1|2|3|4|5|6",
        "7|4|1|2|3|4|5|",                       /* a trailing | */
        "|7|4|1|2|3|4|5",                       /* a leading | */
        "7||1|2|3|4|5",                         /* an empty field */
        "7|4|1|2|3|4|",                         /* last field empty */
        "7|0|1|2|3|4|5",                        /* k 0 */
        "7|7|1|2|3|4|5",                        /* k 7 */
        "7|10|1|2|3|4|5",                       /* k 10 */
        "7|b0|1|2|3|4|5",                       /* bits 0 */
        "7|b25|1|2|3|4|5",                      /* bits 25 */
        "7|b013|1|2|3|4|5",                     /* a leading zero */
        "7|B13|1|2|3|4|5",                      /* not the layout's letter */
        "7|b|1|2|3|4|5",
        "7|13b|1|2|3|4|5",
        "7|b13 |1|2|3|4|5",
        "7|b-1|1|2|3|4|5",
        "b13|7|1|2|3|4|5",                      /* fields swapped */
        "0|4|1|2|3|4|5",                        /* gen 0 */
        "0|b13|1|2|3|4|5",
        "-7|4|1|2|3|4|5",                       /* gen negative */
        "07|4|1|2|3|4|5",                       /* a leading zero */
        "7|04|1|2|3|4|5",
        "7|4|01|2|3|4|5",
        "7|4|1|2|03|4|5",
        "7|4|1|2|3|4|05",
        "+7|4|1|2|3|4|5",                       /* a sign */
        "7|4|+1|2|3|4|5",
        " 7|4|1|2|3|4|5",                       /* blanks */
        "7|4|1|2|3|4|5 ",
        "7 |4|1|2|3|4|5",
        "7|4|1|2|3|4|5\n",
        "7|4|1|2|-2|4|5",                       /* crl_number below -1 */
        "7|4|1|2|-0|4|5",                       /* -0 */
        "7|4|1|2|-10|4|5",                      /* -1 followed by a digit */
        "7|4|1|2|-|4|5",
        "7|4|-1|2|3|4|5",                       /* only crl_number negative */
        "7|4|1|-1|3|4|5",
        "7|4|1|2|3|-1|5",
        "7|4|1|2|3|4|-1",
        "7|4|1|2|3|4|9223372036854775808",      /* INT64_MAX + 1 */
        "9223372036854775808|4|1|2|3|4|5",
        "7|4|1|2|3|99999999999999999999|5",     /* 20 digits */
        "7|4|1|2|3|4|00000000000000000001",
        "7|4|0x1|2|3|4|5",                      /* not decimal */
        "7|4|1e3|2|3|4|5",
        "7|4|1.0|2|3|4|5",
        "a|4|1|2|3|4|5",                        /* the gate once took gen as text */
        "7a|4|1|2|3|4|5",
        "7|4|1|2|3|4|5;",
        "7,4,1,2,3,4,5",
    };
    char big[JPKI_CRLPTR_MAX + 2];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(!parses(bad[i]), "refused: \"%.*s\"%s",
           (int)strcspn(bad[i], "\n"), bad[i],
           strchr(bad[i], '\n') ? " and a newline" : "");
    ok(jpki_crlptr_parse("7|4|1\0|2|3|4|5", 14, &(jpki_crlptr){0}) == -1,
       "refused: a NUL inside");
    ok(jpki_crlptr_parse("7|b1\0|1|2|3|4|5", 15, &(jpki_crlptr){0}) == -1,
       "refused: a NUL in the shape");
    /* over 192 bytes: refused even when the fields would parse */
    memset(big, '1', sizeof(big));
    memcpy(big, "7|4|1|2|3|4|", 12);
    ok(jpki_crlptr_parse(big, JPKI_CRLPTR_MAX + 1, &(jpki_crlptr){0}) == -1,
       "refused: 193 bytes");
    ok(parses("1|1|0|0|-1|0|0"), "the smallest pointer is read");
    ok(parses("1|b1|0|0|-1|0|0"), "the smallest pointer of layout 2 is read");
    ok(parses("9223372036854775807|b24|9223372036854775807|9223372036854775807|"
              "9223372036854775807|9223372036854775807|9223372036854775807"),
       "the largest pointer is read");
}

static void test_buckets(void)
{
    const uint8_t id[JPKI_CERT_ID_LEN] = {0xab, 0xcd, 0xef, 0x12, 0x34, 0x56,
                                          0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01,
                                          0x02, 0x03, 0x04, 0x05};
    const jpki_crl_shape k1 = L1(1), k3 = L1(3), k4 = L1(4), k6 = L1(6);
    const jpki_crl_shape b1 = L2(1), b13 = L2(13);
    const jpki_crl_shape b24 = L2(24), bad = {13, 16};
    char name[64];
    const uint8_t *f;
    size_t len;
    unsigned k;

    is_int(jpki_crl_bucket(id, &k1), 0xa, "bucket k=1");
    is_int(jpki_crl_bucket(id, &k4), 0xabcd, "bucket k=4");
    is_int(jpki_crl_bucket(id, &k6), 0xabcdef, "bucket k=6");
    is_int(jpki_crl_bucket(id, &b1), 1, "bucket bits=1");
    is_int(jpki_crl_bucket(id, &b13), 0xabcd >> 3, "bucket bits=13");
    is_int(jpki_crl_bucket(id, &b24), 0xabcdef, "bucket bits=24");
    is_int(jpki_crl_bucket(id, &bad), 0, "no bucket for a shape not valid");
    ok(jpki_crl_bucket_name(name, sizeof(name), "0123456789abcdef", 7, &k4,
                            jpki_crl_bucket(id, &k4)) == 23, "bucket name");
    is_str(name, "0123456789abcdef:7:abcd", "... <list>:<gen>:<bucket>");
    jpki_crl_bucket_name(name, sizeof(name), "0123456789abcdef.arl", 12, &k3,
                         0x5);
    is_str(name, "0123456789abcdef.arl:12:005", "... zero-padded to k digits");
    jpki_crl_bucket_name(name, sizeof(name), "0123456789abcdef", 7, &b13,
                         jpki_crl_bucket(id, &b13));
    is_str(name, "0123456789abcdef:7:1579",
           "bits=13: the bucket number in 4 hex digits");
    jpki_crl_bucket_name(name, sizeof(name), "l", 7, &b1, 1);
    is_str(name, "l:7:1", "bits=1: one digit");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 7, &b13, 0x2000) == -1,
       "a bucket over 13 bits: refused");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 7, &b13, 0x1fff) > 0,
       "... 0x1fff is the last one");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 7, &(jpki_crl_shape)L1(2),
                            0x100) == -1,
       "a bucket wider than k digits: refused");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 7,
                            &(jpki_crl_shape)L1(7), 1) == -1, "k 7: refused");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 7, &bad, 1) == -1,
       "a shape not valid: refused");
    ok(jpki_crl_bucket_name(name, sizeof(name), "l", 0, &k1, 1) == -1, "gen 0: refused");
    ok(jpki_crl_bucket_name(name, 8, "list", 7, &k4, 1) == -1, "no room: refused");
    ok(jpki_crl_bucket_name(name, sizeof(name), "0123456789abcdef.arl0", 7,
                            &k4, 1) == -1, "a list name over 20 bytes: refused");
    {
        /* the longest list, generation and bucket fit a store key */
        char big[JPKI_STORE_KEY_MAX + 64];
        int n = jpki_crl_bucket_name(big, sizeof(big),
                                     "0123456789abcdef.arl",
                                     INT64_MAX, &b24, 0xffffff);

        ok(n > 0 && sizeof("jpki:v1:crl:") - 1 + (size_t)n
                    <= JPKI_STORE_KEY_MAX,
           "the longest bucket key fits JPKI_STORE_KEY_MAX (%d + 12)", n);
    }
    for (k = 1; k <= 6; k++) {
        const jpki_crl_shape sh = L1(k);
        char hex[33], want[8];

        f = jpki_crl_field(id, &sh, &len);
        ok(f == id + k / 2 && len == 16 - k / 2, "field k=%u: octets %u..15", k, k / 2);
        jpki_hex_encode(id, 16, hex);
        snprintf(want, sizeof(want), "%0*lx", (int)k, jpki_crl_bucket(id, &sh));
        ok(strncmp(hex, want, k) == 0, "k=%u: the bucket is the hex cert_id's first digits", k);
    }
    for (k = 1; k <= 24; k++) {
        const jpki_crl_shape sh = L2(k);
        uint64_t key = 0, back;
        size_t j;

        f = jpki_crl_field(id, &sh, &len);
        ok(f == id + k / 8 && len == 8 - k / 8,
           "field bits=%u: octets %u..7 (the first 8 octets, 64 bits, name "
           "an entry)", k, k / 8);
        /* the bucket's bits and the field's octets give the 64 bits back */
        for (j = 0; j < 8; j++)
            key = key << 8 | id[j];
        back = (uint64_t)jpki_crl_bucket(id, &sh) << (64 - k);
        for (j = 0; j < len; j++)
            back |= (uint64_t)f[j] << (8 * (len - 1 - j));
        ok(back == key, "bits=%u: bucket and field hold the first 64 bits",
           k);
    }
    ok(jpki_crl_field(id, &bad, &len) == NULL && len == 0,
       "no field for a shape not valid");
}

static void test_values(void)
{
    uint8_t v[JPKI_CRL_VALUE_LEN];
    int reason, r;
    int64_t at;

    jpki_crl_value_pack(v, 1, 0x01020304u);
    ok(memcmp(v, "\x01\x01\x02\x03\x04", 5) == 0, "keyCompromise packed");
    ok(jpki_crl_value_unpack(v, 5, &reason, &at) == 0 && reason == 1
       && at == 0x01020304, "... and unpacked");
    jpki_crl_value_pack(v, -1, 0xffffffffu);
    ok(v[0] == 0xff && jpki_crl_value_unpack(v, 5, &reason, &at) == 0
       && reason == -1 && at == 0xffffffffLL, "no reason: 0xff, read as -1");
    jpki_crl_value_pack(v, 7, 1);
    ok(v[0] == 0xff, "reason 7 (no CRLReason) packed as none");
    jpki_crl_value_pack(v, 11, 1);
    ok(v[0] == 0xff, "reason 11 packed as none");
    for (r = 0; r <= 10; r++) {
        v[0] = (uint8_t)r;
        ok((jpki_crl_value_unpack(v, 5, &reason, &at) == 0) == (r != 7),
           "reason octet %d %s", r, r == 7 ? "refused" : "read");
    }
    for (r = 11; r < 255; r += 61) {
        v[0] = (uint8_t)r;
        ok(jpki_crl_value_unpack(v, 5, &reason, &at) == -1, "reason octet %d refused", r);
    }
    v[0] = 6;
    ok(jpki_crl_value_unpack(v, 4, &reason, &at) == -1, "4 octets refused");
    ok(jpki_crl_value_unpack((const uint8_t *)"\x06\0\0\0\0\0", 6, &reason, &at) == -1,
       "6 octets refused");
}

/* The first 8 octets of SHA-256 over three parts, in hex: the tags as
 * crlptr.h defines them, computed here apart from crlptr.c. */
static void sha_tag(const char *label, const void *a, size_t al,
                    const void *b, size_t bl, char out[17])
{
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, label, strlen(label));
    EVP_DigestUpdate(md, a, al);
    EVP_DigestUpdate(md, b, bl);
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    jpki_hex_encode(d, 8, out);
}

/* List names: one per CA key of an issuer, one tag of the issuer tag and
 * the key, no longer than the one list per issuer before. */
static void test_list_names(void)
{
    static const char tag[] = "0123456789abcdef";
    static const char tag2[] = "fedcba9876543210";
    uint8_t k1[20], k2[20];
    char a[JPKI_CRL_LIST_MAX], b[JPKI_CRL_LIST_MAX], c[JPKI_CRL_LIST_MAX];
    char key[17], want_key[17], want[17], hex[41], big[64];
    int arl = -1;

    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x11, sizeof(k2));
    k2[19] = 0x12;
    is_int(JPKI_CRL_LIST_MAX, 21, "a list name: at most 20 characters, as "
           "\"<issuer tag>.arl\" of one list per issuer");
    is_int(jpki_crl_key_tag(k1, key), 0, "key tag");
    sha_tag("jpki crl key", k1, 20, "", 0, want_key);
    is_str(key, want_key, "... SHA-256 over \"jpki crl key\" and the key hash");
    ok(jpki_crl_key_tag(NULL, key) == -1, "... no key: -1");
    is_int(jpki_crl_list_name(a, sizeof(a), tag, k1, 0), 16,
           "list name: one tag of 16 hex digits, as an issuer tag");
    sha_tag("jpki crl list", tag, 16, want_key, 16, want);
    is_str(a, want, "... SHA-256 over \"jpki crl list\", issuer tag and key tag");
    ok(strcmp(a, tag) != 0 && strstr(a, want_key) == NULL,
       "... neither the issuer tag nor the key tag");
    jpki_crl_list_name(b, sizeof(b), tag, k2, 0);
    ok(strcmp(a, b) != 0, "another key, another list");
    jpki_crl_list_name(b, sizeof(b), tag2, k1, 0);
    ok(strcmp(a, b) != 0, "the same key of another issuer, another list");
    is_int(jpki_crl_list_name(c, sizeof(c), tag, k1, 1), 20, "an ARL: .arl");
    ok(strncmp(a, c, 16) == 0 && strcmp(c + 16, ".arl") == 0,
       "... after the same name");
    jpki_hex_encode(k1, 20, hex);
    ok(strstr(a, hex + 0) == NULL && strstr(a, "1111111111") == NULL,
       "the key hash is not in the name in clear");
    jpki_crl_list_name(b, sizeof(b), tag, k1, 0);
    ok(strcmp(a, b) == 0, "the same key: the same name (writer and reader)");
    is_int(jpki_crl_list_of(b, sizeof(b), tag, want_key, 0), 16,
           "from the key tag (a list's record)");
    is_str(b, a, "... the same name");
    ok(jpki_crl_list_of(b, sizeof(b), tag, "0123456789abcdeF", 0) == -1
       && jpki_crl_list_of(b, sizeof(b), tag, "0123456789abcde", 0) == -1
       && jpki_crl_list_of(b, sizeof(b), tag, "0123456789abcdef0", 0) == -1
       && jpki_crl_list_of(b, sizeof(b), tag, NULL, 0) == -1,
       "... a key tag not 16 lower-case hex digits: -1");
    ok(jpki_crl_list_name(b, 16, tag, k1, 0) == -1, "no room: -1");
    ok(jpki_crl_list_name(b, 20, tag, k1, 1) == -1, "no room for .arl: -1");
    ok(jpki_crl_list_name(b, sizeof(b), "0123456789ABCDEF", k1, 0) == -1,
       "an issuer tag not in lower-case hex: -1");
    ok(jpki_crl_list_name(b, sizeof(b), "0123456789abcde", k1, 0) == -1,
       "an issuer tag of 15 digits: -1");
    ok(jpki_crl_list_name(big, sizeof(big), "0123456789abcdef0", k1, 0)
       == -1, "an issuer tag of 17 digits: -1");
    ok(jpki_crl_list_name(b, sizeof(b), tag, NULL, 0) == -1, "no key: -1");

    ok(jpki_crl_list_parse(a, &arl) == 1 && arl == 0, "parsed: a list");
    ok(jpki_crl_list_parse(c, &arl) == 1 && arl == 1, "parsed: an ARL's");
    ok(jpki_crl_list_parse("0123456789abcdef.0123456789abcdef", &arl) == 0
       && arl == 0, "the \"<issuer tag>.<key tag>\" of jpkictl 06b82fb: 0");
    ok(jpki_crl_list_parse("0123456789abcdef.0123456789abcdef.arl", &arl)
       == 0 && arl == 1, "... and its ARL");
    {
        static const char *const bad[] = {
            "", ".arl", "0123456789abcde", "0123456789abcdeF",
            "0123456789abcdef.", "0123456789abcdef0", "0123456789abcdef.ar",
            "0123456789abcdef.arx", "0123456789abcdef.arl.arl",
            "0123456789abcdef.0123456789abcde",
            "0123456789abcdef:0123456789abcdef",
            "0123456789abcdef.0123456789abcdeg",
            "0123456789abcdef.0123456789abcdef.arx",
            "0123456789abcdef.0123456789abcdef.arl.arl",
            "0123456789abcdef.0123456789abcdef0",
        };
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            arl = 7;
            ok(jpki_crl_list_parse(bad[i], &arl) == -1 && arl == 0,
               "not a list name: \"%s\"", bad[i]);
        }
    }
}

/* The keys of an issuer: ca1 and ca2 (the J-LIS generations) and a link
 * certificate, which adds no key. */
static void test_issuer_keys(void)
{
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, "card");
    jpki_crl_key k[JPKI_CRL_KEYS_MAX];
    uint8_t secret[32];
    char err[256];
    size_t n;

    memset(secret, 7, sizeof(secret));
    jpki_ctx_set_secret(c, secret, sizeof(secret));
    jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err, sizeof(err));
    jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err, sizeof(err));
    jpki_issuer_add_certs_file(is, tap_path("link-new-with-old.pem"), err,
                               sizeof(err));
    ok(jpki_ctx_finish(c, err, sizeof(err)) == JPKI_OK, "ctx: %s", err);
    n = jpki_crl_issuer_keys(is, k, JPKI_CRL_KEYS_MAX);
    is_int(n, 2, "two keys (the link certificate adds none)");
    ok(n == 2 && memcmp(k[0].hash, k[1].hash, 20) != 0
       && strstr(k[0].subject, "JPKI") != NULL, "distinct, with a subject");
    is_int(jpki_crl_issuer_keys(is, k, 1), 1, "at most max");
    is_int(jpki_crl_issuer_keys(NULL, k, 4), 0, "no issuer: none");
    jpki_ctx_free(c);
}

int main(void)
{
    test_list_names();
    test_issuer_keys();
    test_round_trip();
    test_shapes();
    test_format_refuses();
    test_parse_refuses();
    test_buckets();
    test_values();
    return done_testing();
}
