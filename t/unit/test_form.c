/* test_form.c - the login body parsers (flat JSON object and
 * application/x-www-form-urlencoded), including every truncation of a valid
 * body and a mutation fuzz loop (meant for the ASan build). */
#include "jpki.h"
#include "form.h"
#include "tap.h"

#include <stdint.h>

enum { F_CH, F_SIG, F_ACCT, F_N };

static struct {
    int present;
    char val[256];
    size_t len;
} got[F_N];

/* Parses body[0..len) with fields challenge (max 100), signature (max 16)
 * and account (max 8).  Body and scratch are exact-size heap copies so
 * ASan catches any access past them. */
static jpki_err parse_n(int json, const void *body, size_t len)
{
    jpki_form_field f[F_N] = {{"challenge", 100, NULL, 0, 0, 0},
                              {"signature", 16, NULL, 0, 0, 0},
                              {"account", 8, NULL, 0, 0, 0}};
    uint8_t *b = malloc(len ? len : 1);
    char *scratch = malloc(2 * len + 2);
    jpki_err e;
    int i;

    memcpy(b, body, len);
    e = json ? jpki_form_parse_json(b, len, scratch, f, F_N)
             : jpki_form_parse_urlencoded(b, len, scratch, f, F_N);
    for (i = 0; i < F_N; i++) {
        got[i].present = f[i].value != NULL;
        got[i].len = f[i].len;
        got[i].val[0] = '\0';
        if (f[i].value != NULL && f[i].len < sizeof(got[i].val)) {
            memcpy(got[i].val, f[i].value, f[i].len + 1);
        }
    }
    free(b);
    free(scratch);
    return e;
}

static jpki_err pj(const char *body) { return parse_n(1, body, strlen(body)); }
static jpki_err pu(const char *body) { return parse_n(0, body, strlen(body)); }

#define REFUSED(e) ((e) == JPKI_ERR_BAD_REQUEST)

static void test_json(void)
{
    static const char *bad[][2] = {
        {"", "empty body"},
        {"   ", "only spaces"},
        {"[]", "array at the top"},
        {"\"x\"", "string at the top"},
        {"{", "lone {"},
        {"{\"challenge\":\"a\"", "no closing brace"},
        {"{\"challenge\" \"a\"}", "missing colon"},
        {"{\"challenge\":\"a\" \"account\":\"b\"}", "missing comma"},
        {"{\"challenge\":\"a\",}", "trailing comma"},
        {"{,\"challenge\":\"a\"}", "leading comma"},
        {"{challenge:\"a\"}", "unquoted key"},
        {"{\"challenge\":\"a}", "unterminated string"},
        {"{\"challenge\":'a'}", "single quotes"},
        {"{\"challenge\":\"a\"}x", "trailing garbage"},
        {"{\"challenge\":\"a\"}{}", "second object"},
        {"{\"challenge\":\"a\"},", "trailing comma after the object"},
        {"{\"challenge\":\"a\\x\"}", "unknown escape \\x"},
        {"{\"challenge\":\"a\\u00zz\"}", "bad \\u hex"},
        {"{\"challenge\":\"a\\u00e\"}", "short \\u"},
        {"{\"challenge\":\"a\\", "backslash at the end"},
        {"{\"challenge\":\"\\u0000\"}", "\\u0000"},
        {"{\"challenge\":\"\\ud83d\"}", "lone high surrogate"},
        {"{\"challenge\":\"\\ud83dx\"}", "high surrogate then a char"},
        {"{\"challenge\":\"\\ud83d\\u0041\"}", "high surrogate then not low"},
        {"{\"challenge\":\"\\ud83d\\ud83d\"}", "two high surrogates"},
        {"{\"challenge\":\"\\ude00\"}", "lone low surrogate"},
        {"{\"challenge\":\"\\ud83d\\n\"}", "high surrogate then \\n"},
        {"{\"challenge\":\"\\ud83d00de00\"}", "high surrogate then 6 chars"},
        {"{\"challenge\":\"a\x01\"}", "raw 0x01 in a string"},
        {"{\"challenge\":\"a\nb\"}", "raw LF in a string"},
        {"{\"challenge\":\"a\x1f\"}", "raw 0x1f in a string"},
        {"{\"chall\x01\":\"a\"}", "control char in a key"},
        {"{\"challenge\":\"a\",\"challenge\":\"b\"}", "duplicate known field"},
        {"{\"challenge\":\"a\",\"\\u0063hallenge\":\"b\"}",
         "duplicate known field, escaped name"},
        {"{\"x\":{}}", "nested object"},
        {"{\"x\":[]}", "nested array"},
        {"{\"x\":[1,2]}", "array of numbers"},
        {"{\"x\":{\"a\":\"b\"},\"challenge\":\"c\"}", "nested object first"},
        {"{\"challenge\":1}", "known field number"},
        {"{\"challenge\":null}", "known field null"},
        {"{\"challenge\":true}", "known field true"},
        {"{\"challenge\":{}}", "known field object"},
        {"{\"challenge\":[\"a\"]}", "known field array"},
        {"{\"x\":tru}", "bad literal tru"},
        {"{\"x\":nul}", "bad literal nul"},
        {"{\"x\":nullx}", "bad literal nullx"},
        {"{\"x\":abc}", "bare word"},
        {"{\"x\":+1}", "number with +"},
        {"{\"x\":.5}", "number starting with ."},
        {"{\"x\":}", "missing value"},
        {"{\"x\"}", "missing colon and value"},
        {"{\"x\":\"a\":\"b\"}", "two colons"},
    };
    size_t i;

    is_int(pj("{\"challenge\":\"abc\",\"signature\":\"xyz\"}"), JPKI_OK,
           "valid object");
    ok(got[F_CH].present && !strcmp(got[F_CH].val, "abc") && got[F_CH].len == 3,
       "challenge value and length");
    ok(got[F_SIG].present && !strcmp(got[F_SIG].val, "xyz"), "signature value");
    ok(!got[F_ACCT].present, "absent field is NULL");
    is_int(pj(" \r\n\t{ \"challenge\" : \"a\" , \"account\":\"b\" }\n "),
           JPKI_OK, "whitespace everywhere");
    ok(!strcmp(got[F_CH].val, "a") && !strcmp(got[F_ACCT].val, "b"),
       "values with whitespace");
    is_int(pj("{}"), JPKI_OK, "empty object");
    ok(!got[F_CH].present && !got[F_SIG].present, "no fields");
    is_int(pj("{\"challenge\":\"\"}"), JPKI_OK, "empty string value");
    ok(got[F_CH].present && got[F_CH].len == 0, "present with length 0");

    /* escapes */
    is_int(pj("{\"challenge\":\"q\\\"b\\\\s\\/c\\b\\f\\n\\r\\t.\"}"), JPKI_OK,
           "simple escapes");
    is_str(got[F_CH].val, "q\"b\\s/c\b\f\n\r\t.", "simple escapes decoded");
    is_int(pj("{\"challenge\":\"caf\\u00e9 \\u00E9\\u0041\\u20ac\"}"), JPKI_OK,
           "\\u escapes");
    is_str(got[F_CH].val, "caf\xc3\xa9 \xc3\xa9" "A\xe2\x82\xac",
           "\\u00e9 -> UTF-8 C3 A9, \\u20ac -> E2 82 AC");
    is_int(pj("{\"challenge\":\"\\ud83d\\ude00!\"}"), JPKI_OK,
           "surrogate pair");
    is_str(got[F_CH].val, "\xf0\x9f\x98\x80!", "surrogate pair -> F0 9F 98 80");
    is_int(pj("{\"challenge\":\"\\uDBFF\\uDFFF\"}"), JPKI_OK, "U+10FFFF");
    is_str(got[F_CH].val, "\xf4\x8f\xbf\xbf", "U+10FFFF -> F4 8F BF BF");
    is_int(pj("{\"challenge\":\"\xe5\xb1\xb1\xe7\x94\xb0\x7f\"}"), JPKI_OK,
           "raw UTF-8 and DEL pass");

    /* unknown members */
    is_int(pj("{\"x\":\"s\",\"n\":-1.5e+3,\"t\":true,\"f\":false,\"z\":null,"
              "\"i\":42,\"challenge\":\"c\",\"x\":\"dup unknown ok\"}"),
           JPKI_OK, "unknown string/number/true/false/null ignored");
    ok(!strcmp(got[F_CH].val, "c") && !got[F_SIG].present,
       "known field read among unknown ones");
    is_int(pj("{\"Challenge\":\"c\"}"), JPKI_OK, "names are case sensitive");
    ok(!got[F_CH].present, "... Challenge is unknown");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jpki_err e = pj(bad[i][0]);
        ok(REFUSED(e), "refused: %s (%s)", bad[i][1], jpki_reason(e));
    }

    /* bounds: in decoded bytes */
    is_int(pj("{\"account\":\"12345678\"}"), JPKI_OK, "account of 8 (max)");
    is_int(pj("{\"account\":\"123456789\"}"), JPKI_ERR_TOO_LARGE,
           "account of 9: TOO_LARGE");
    is_int(pj("{\"account\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}"), JPKI_OK,
           "4 x \\u00e9 = 8 bytes");
    is_int(pj("{\"account\":\"\\u00e9\\u00e9\\u00e9\\u00e9x\"}"),
           JPKI_ERR_TOO_LARGE, "9 decoded bytes: TOO_LARGE");
    is_int(pj("{\"account\":\"\\u0041\\u0041\\u0041\\u0041\\u0041\\u0041"
              "\\u0041\\u0041\"}"), JPKI_OK,
           "8 escapes of one byte each fit");
    is_int(pj("{\"x\":\"a very long unknown value beyond every max ...........\""
              "}"), JPKI_OK, "unknown fields have no bound");
}

static void test_truncations(void)
{
    static const char *bodies[] = {
        "{\"challenge\":\"ab\\u00e9\\ud83d\\ude00\",\"signature\":\"s\\n\","
        "\"n\":-12.5e3,\"t\":true,\"f\":false,\"z\":null,\"account\":\"x\"}",
        "  {  \"account\" : \"\\\"\\\\\" , \"x\" : 1 }  ",
    };
    size_t b, i, len, bad = 0, crashfree = 0;

    for (b = 0; b < 2; b++) {
        len = strlen(bodies[b]);
        is_int(parse_n(1, bodies[b], len), JPKI_OK, "full body %zu parses", b);
        for (i = 0; i < len; i++) {
            jpki_err e = parse_n(1, bodies[b], i);
            crashfree++;
            /* the 2nd body ends in spaces: a prefix ending after '}' is ok */
            if (e == JPKI_OK && strchr(bodies[b] + i, '}') != NULL)
                bad++;
        }
    }
    ok(bad == 0, "every strict prefix of a valid body is refused (%zu tried)",
       crashfree);
}

static void test_urlencoded(void)
{
    static const char *bad[][2] = {
        {"challenge", "missing ="},
        {"challenge=a&signature", "second pair without ="},
        {"a=1&&b=2", "empty pair"},
        {"&challenge=a", "leading &"},
        {"challenge=%", "lone %"},
        {"challenge=%4", "% with one digit"},
        {"challenge=%4g", "% with a bad digit"},
        {"challenge=%g4", "% with a bad first digit"},
        {"challenge=a%", "% at the end"},
        {"challenge=%00", "%00"},
        {"chall%00enge=a", "%00 in a name"},
        {"challenge=a&challenge=b", "duplicate known field"},
        {"challenge=a&chall%65nge=b", "duplicate known field, encoded name"},
        {"x=%zz&challenge=a", "bad % in an unknown field"},
    };
    size_t i;

    is_int(pu("challenge=abc&signature=x+y%2Bz%2fw"), JPKI_OK, "valid body");
    is_str(got[F_CH].val, "abc", "challenge");
    is_str(got[F_SIG].val, "x y+z/w", "+ is space, %%2B and %%2f decoded");
    ok(!got[F_ACCT].present, "absent field NULL");
    is_int(pu("account=%E5%B1%B1%e7%94%b0"), JPKI_OK, "UTF-8 percent-encoded");
    is_str(got[F_ACCT].val, "\xe5\xb1\xb1\xe7\x94\xb0", "decoded bytes");
    is_int(pu("chall%65nge=a"), JPKI_OK, "encoded name");
    is_str(got[F_CH].val, "a", "encoded name matches");
    is_int(pu(""), JPKI_OK, "empty body");
    ok(!got[F_CH].present, "no fields");
    is_int(pu("challenge="), JPKI_OK, "empty value");
    ok(got[F_CH].present && got[F_CH].len == 0, "present, length 0");
    is_int(pu("x=1&=2&challenge=c&y="), JPKI_OK, "unknown and empty names");
    is_str(got[F_CH].val, "c", "challenge among them");
    is_int(pu("challenge=a=b"), JPKI_OK, "= inside a value");
    is_str(got[F_CH].val, "a=b", "value keeps the second =");
    is_int(pu("challenge=a&"), JPKI_OK, "trailing &");
    is_int(pu("account=12345678"), JPKI_OK, "account of 8 (max)");
    is_int(pu("account=123456789"), JPKI_ERR_TOO_LARGE, "account of 9");
    is_int(pu("account=%41%41%41%41%41%41%41%41"), JPKI_OK,
           "8 escaped bytes fit");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jpki_err e = pu(bad[i][0]);
        ok(REFUSED(e), "refused: %s (%s)", bad[i][1], jpki_reason(e));
    }
    {
        static const char nul[] = "challenge=a\0b";
        jpki_err e = parse_n(0, nul, sizeof(nul) - 1);
        ok(REFUSED(e), "raw NUL byte in a value refused, like %%00 (%s)",
           jpki_reason(e));
        static const char jnul[] = "{\"challenge\":\"a\0b\"}";
        e = parse_n(1, jnul, sizeof(jnul) - 1);
        ok(REFUSED(e), "raw NUL byte in a JSON string refused");
    }
}

/* ---- fuzz ----------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static size_t mutate(uint8_t *b, size_t len, size_t cap)
{
    static const char special[] = "{}[]\":,\\u0dD8eE+-.%=& \n\x01\x7f\xc3\xff"
                                  "ntfl";
    int k, nm = 1 + (int)(rnd() % 4);
    for (k = 0; k < nm; k++) {
        uint8_t c = rnd() % 3 ? (uint8_t)special[rnd() % (sizeof(special) - 1)]
                              : (uint8_t)rnd();
        size_t p = len ? rnd() % len : 0, q;
        switch (rnd() % 6) {
        case 0:                                     /* replace */
            if (len)
                b[p] = c;
            break;
        case 1:                                     /* insert */
            if (len < cap) {
                memmove(b + p + 1, b + p, len - p);
                b[p] = c;
                len++;
            }
            break;
        case 2:                                     /* delete */
            if (len) {
                memmove(b + p, b + p + 1, len - p - 1);
                len--;
            }
            break;
        case 3:                                     /* truncate */
            len = p;
            break;
        case 4:                                     /* duplicate a run */
            q = rnd() % 16;
            if (p + q <= len && len + q <= cap) {
                memmove(b + p + q, b + p, len - p);
                len += q;
            }
            break;
        default:                                    /* swap */
            if (len) {
                uint8_t t;
                q = rnd() % len;
                t = b[p];
                b[p] = b[q];
                b[q] = t;
            }
        }
    }
    return len;
}

static void test_fuzz(void)
{
    static const char *seeds[] = {
        "{\"challenge\":\"AQEAAAAAZz9\\u00e9\\ud83d\\ude00\",\"signature\":"
        "\"c2ln\",\"account\":\"taro\",\"n\":1e5,\"t\":true,\"z\":null}",
        "challenge=AQEAAAAAZz9&signature=c2ln%2B%2F&account=ta+ro&x=%E5%B1%B1",
    };
    uint8_t buf[512];
    size_t it, len, accepted[2] = {0, 0}, bad_inv = 0, runs = 0;
    int s, json;

    for (s = 0; s < 2; s++)
        for (it = 0; it < 4000; it++) {
            len = strlen(seeds[s]);
            memcpy(buf, seeds[s], len);
            len = mutate(buf, len, sizeof(buf));
            for (json = 0; json < 2; json++) {   /* both parsers, both seeds */
                jpki_err e = parse_n(json, buf, len);
                int f;
                runs++;
                if (e == JPKI_OK) {
                    accepted[json]++;
                    for (f = 0; f < F_N; f++)
                        if (got[f].present
                            && (strlen(got[f].val) != got[f].len
                                || got[f].len > (f == F_CH ? 100
                                                 : f == F_SIG ? 16 : 8)))
                            bad_inv++;
                } else if (e != JPKI_ERR_BAD_REQUEST
                           && e != JPKI_ERR_TOO_LARGE) {
                    bad_inv++;
                }
            }
        }
    ok(1, "%zu parses of mutated bodies without a crash", runs);
    ok(bad_inv == 0, "accepted values are NUL-free and within bounds; errors "
       "are BAD_REQUEST or TOO_LARGE (%zu violations)", bad_inv);
    ok(accepted[0] > 100 && accepted[1] > 100,
       "the fuzz reaches the accepting paths (json %zu, form %zu)",
       accepted[1], accepted[0]);
}

/* jpki_form_parse_answer (a gate's answers, as jpki-login reads them):
 * fields "status" (string, at most 8), "expires" (integer); exact-size
 * heap copies for ASan.  The status's text in *st, the number in *num. */
static jpki_err pa(const char *body, char st[16], long long *num, int *seen)
{
    size_t len = strlen(body);
    jpki_form_field f[2] = {{"status", 8, NULL, 0, JPKI_FORM_STRING, 0},
                            {"expires", 20, NULL, 0, JPKI_FORM_INT, 0}};
    uint8_t *b = malloc(len ? len : 1);
    char *scratch = malloc(2 * len + 2);
    jpki_err e;

    memcpy(b, body, len);
    e = jpki_form_parse_answer(b, len, scratch, f, 2);
    st[0] = '\0';
    if (f[0].value != NULL)
        snprintf(st, 16, "%s", f[0].value);
    *num = f[1].num;
    *seen = (f[0].value != NULL) | (f[1].value != NULL) << 1;
    free(b);
    free(scratch);
    return e;
}

static void test_answer(void)
{
    static const char *bad[][2] = {
        {"", "empty"},
        {"[]", "an array at the top"},
        {"{\"status\":\"ok\"} x", "bytes after the object"},
        {"{\"status\":\"ok\",\"status\":\"ok\"}", "a field twice"},
        {"{\"status\":\"123456789\"}", "a string field over its max"},
        {"{\"status\":1}", "a string field given a number"},
        {"{\"expires\":\"1\"}", "an integer field given a string"},
        {"{\"expires\":1.5}", "an integer field given a fraction"},
        {"{\"expires\":1e3}", "an integer field given an exponent"},
        {"{\"expires\":1234567890123456789}", "an integer of 19 digits"},
        {"{\"expires\":01}", "a leading zero"},
        {"{\"expires\":-}", "a lone minus"},
        {"{\"expires\":true}", "an integer field given true"},
        {"{\"expires\":1,\"expires\":1}", "an integer field twice"},
        {"{\"x\":[1,2}", "an unclosed array"},
        {"{\"x\":{\"a\" 1}}", "no colon in a nested object"},
        {"{\"x\":{1:2}}", "a nested key that is no string"},
        {"{\"x\":[1,]}", "a trailing comma"},
        {"{\"x\":1.}", "a number ending in '.'"},
        {"{\"x\":1e}", "an exponent without digits"},
        {"{\"x\":12abc}", "letters after a number"},
        {"{\"x\":nul}", "a truncated literal"},
        {"{\"x\":\"a\\u0000b\"}", "\\u0000 in a skipped string"},
        {"{\"x\":\"\\ud800\"}", "a lone surrogate"},
    };
    char st[16], deep[200];
    long long num;
    int seen, i;
    size_t k;

    is_int(pa("{\"expires\":1795340406,\"x\":{\"a\":[{\"b\":\"\\ud83d\\ude00\"},"
              "-2.5e3,true,false,null,\"\\\\\\\"\"]},\"status\":\"ok\"}",
              st, &num, &seen), JPKI_OK, "nested values skipped");
    ok(strcmp(st, "ok") == 0 && num == 1795340406 && seen == 3,
       "... the string and the integer read");
    is_int(pa("{\"expires\":-123456789012345678}", st, &num, &seen), JPKI_OK,
           "a negative integer of 18 digits");
    ok(num == -123456789012345678LL && seen == 2, "... its value");
    is_int(pa(" { } ", st, &num, &seen), JPKI_OK, "an empty object");
    ok(seen == 0, "... nothing seen");
    is_int(pa("{\"expires\":0}", st, &num, &seen), JPKI_OK, "zero");
    is_int(pa("{\"status\":\"12345678\"}", st, &num, &seen), JPKI_OK,
           "a string of exactly max bytes");
    for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        ok(pa(bad[k][0], st, &num, &seen) != JPKI_OK, "refused: %s", bad[k][1]);
    is_int(pa("{\"status\":\"123456789\"}", st, &num, &seen),
           JPKI_ERR_TOO_LARGE, "over max: TOO_LARGE");
    /* nesting: 32 levels read, 33 refused */
    for (i = 0; i < 2; i++) {
        int depth = 32 + i, d;
        size_t o = (size_t)sprintf(deep, "{\"x\":");

        for (d = 1; d < depth; d++)
            deep[o++] = '[';
        deep[o++] = '1';
        for (d = 1; d < depth; d++)
            deep[o++] = ']';
        deep[o++] = '}';
        deep[o] = '\0';
        ok((pa(deep, st, &num, &seen) == JPKI_OK) == (i == 0),
           "a value nested %d deep: %s", depth, i == 0 ? "read" : "refused");
    }
    /* a login body refuses what an answer skips */
    is_int(pj("{\"challenge\":\"a\",\"x\":[1]}"), JPKI_ERR_BAD_REQUEST,
           "a login body still refuses nested values");
}

int main(void)
{
    test_json();
    test_answer();
    test_truncations();
    test_urlencoded();
    test_fuzz();
    return done_testing();
}
