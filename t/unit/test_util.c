/* test_util.c - base64, hex, constant-time compare, DER/PEM/base64 input,
 * file loading and the error tables. */
#include "jpki.h"
#include "internal.h"
#include "tap.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>

/* Decodes a NUL-terminated base64 string; the output buffer is exactly
 * jpki_b64_decoded_max() bytes (malloc'ed, so ASan sees any overrun). */
static jpki_err dec(const char *in, uint8_t *out, size_t outcap,
                    size_t *outlen)
{
    size_t n = strlen(in), max = jpki_b64_decoded_max(n);
    uint8_t *buf = malloc(max ? max : 1);
    jpki_err e;

    *outlen = 0;
    e = jpki_b64_decode(in, n, buf, outlen);
    if (e == JPKI_OK && *outlen <= outcap)
        memcpy(out, buf, *outlen);
    free(buf);
    return e;
}

static int dec_is(const char *in, const char *want)
{
    uint8_t out[256];
    size_t n;
    return dec(in, out, sizeof(out), &n) == JPKI_OK && n == strlen(want)
           && memcmp(out, want, n) == 0;
}

static jpki_err dec_err(const char *in)
{
    uint8_t out[256];
    size_t n;
    return dec(in, out, sizeof(out), &n);
}

static char *enc(const char *in, int url)
{
    static char out[256];
    jpki_b64_encode((const uint8_t *)in, strlen(in), out, url);
    return out;
}

static void test_base64(void)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba",
                                  "foobar"};
    static const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                "Zm9vYmE=", "Zm9vYmFy"};
    static const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE",
                                "Zm9vYmFy"};
    const char *bad_chars[] = {"Zm9v Zg==", "Zm9v\nZg==", "Zm9v*Zg==",
                               "Zm9v.Zg==", "Zm\x80v", "Zm9v\tYmFy"};
    uint8_t buf[64], out[64], *o2;
    char txt[64];
    size_t i, n, len;
    int url_mode, all_ok;

    for (i = 0; i < 7; i++) {
        is_str(enc(plain[i], 0), std[i], "b64 std encode \"%s\"", plain[i]);
        is_str(enc(plain[i], 1), url[i], "b64 url encode \"%s\"", plain[i]);
        is_int(jpki_b64_encoded_len(strlen(plain[i]), 0), strlen(std[i]),
               "b64 std encoded_len(%zu)", strlen(plain[i]));
        is_int(jpki_b64_encoded_len(strlen(plain[i]), 1), strlen(url[i]),
               "b64 url encoded_len(%zu)", strlen(plain[i]));
        ok(dec_is(std[i], plain[i]), "b64 decode padded \"%s\"", std[i]);
        ok(dec_is(url[i], plain[i]), "b64 decode unpadded \"%s\"", url[i]);
    }
    is_int(jpki_b64_decoded_max(0), 3, "decoded_max(0)");
    is_int(jpki_b64_decoded_max(100), 78, "decoded_max(100)");

    /* both alphabets: 0xfb 0xff -> "+/" or "-_" */
    buf[0] = 0xfb; buf[1] = 0xef; buf[2] = 0xff;
    jpki_b64_encode(buf, 3, txt, 0);
    is_str(txt, "++//", "std alphabet uses + and /");
    jpki_b64_encode(buf, 3, txt, 1);
    is_str(txt, "--__", "url alphabet uses - and _");
    ok(dec_is("++//", "\xfb\xef\xff"), "decode std alphabet");
    ok(dec_is("--__", "\xfb\xef\xff"), "decode url alphabet");

    /* lengths 0..10 round trip, both alphabets, bytes that use 62 and 63 */
    all_ok = 1;
    for (url_mode = 0; url_mode < 2; url_mode++)
        for (len = 0; len <= 10; len++) {
            for (i = 0; i < len; i++)
                buf[i] = (uint8_t)(0xf8 + i * 37 + len * 11 + url_mode);
            jpki_b64_encode(buf, len, txt, url_mode);
            if (strlen(txt) != jpki_b64_encoded_len(len, url_mode))
                all_ok = 0;
            o2 = malloc(jpki_b64_decoded_max(strlen(txt)));
            if (jpki_b64_decode(txt, strlen(txt), o2, &n) != JPKI_OK
                || n != len || memcmp(o2, buf, len) != 0)
                all_ok = 0;
            free(o2);
            /* the padded form decodes too; the unpadded std form as well */
            if (url_mode) {
                char padded[80];
                snprintf(padded, sizeof(padded), "%s%s", txt,
                         len % 3 == 1 ? "==" : len % 3 == 2 ? "=" : "");
                if (dec(padded, out, sizeof(out), &n) != JPKI_OK || n != len
                    || memcmp(out, buf, len) != 0)
                    all_ok = 0;
            }
        }
    ok(all_ok, "lengths 0..10 round trip (std and url, padded and not)");

    /* non-canonical trailing bits (Zg== is canonical for "f", Zm8= for "fo") */
    is_int(dec_err("Zh=="), JPKI_ERR_PARSE, "non-canonical bits, 1 byte, padded");
    is_int(dec_err("Zh"), JPKI_ERR_PARSE, "non-canonical bits, 1 byte");
    is_int(dec_err("Zm9="), JPKI_ERR_PARSE, "non-canonical bits, 2 bytes, padded");
    is_int(dec_err("Zm9"), JPKI_ERR_PARSE, "non-canonical bits, 2 bytes");

    /* mixed alphabets */
    is_int(dec_err("ab+_"), JPKI_ERR_PARSE, "mixed alphabets + and _");
    is_int(dec_err("ab-/"), JPKI_ERR_PARSE, "mixed alphabets - and /");
    is_int(dec_err("++++----"), JPKI_ERR_PARSE, "mixed alphabets, two groups");
    is_int(dec_err("abc+ab_"), JPKI_ERR_PARSE,
           "mixed alphabets, one in a whole group, one in the tail");
    is_int(dec_err("ab_cab+"), JPKI_ERR_PARSE,
           "mixed alphabets, url in a whole group, std in the tail");
    is_int(dec_err("ab++"), JPKI_OK, "std alone is fine");
    is_int(dec_err("ab__"), JPKI_OK, "url alone is fine");

    /* bad characters */
    for (i = 0; i < sizeof(bad_chars) / sizeof(bad_chars[0]); i++)
        is_int(dec_err(bad_chars[i]), JPKI_ERR_PARSE, "bad character #%zu", i);
    {
        uint8_t o[8];
        is_int(jpki_b64_decode("Zm\0v", 4, o, &n), JPKI_ERR_PARSE,
               "NUL inside refused");
    }

    /* padding and lengths */
    is_int(dec_err("Zg==Zg=="), JPKI_ERR_PARSE, "data after padding");
    is_int(dec_err("Zg=a"), JPKI_ERR_PARSE, "data between pad chars");
    is_int(dec_err("Zm=8"), JPKI_ERR_PARSE, "pad inside the last group");
    is_int(dec_err("Zg="), JPKI_ERR_PARSE, "incomplete padding");
    is_int(dec_err("Zm8=="), JPKI_ERR_PARSE, "too much padding for 2 bytes");
    is_int(dec_err("Zm9v="), JPKI_ERR_PARSE, "padding after a full group");
    is_int(dec_err("Zm9v===="), JPKI_ERR_PARSE, "4 pad characters");
    is_int(dec_err("="), JPKI_ERR_PARSE, "lone pad");
    is_int(dec_err("Z"), JPKI_ERR_PARSE, "1 char");
    is_int(dec_err("Zm9vY"), JPKI_ERR_PARSE, "5 chars (dangling 6 bits)");
    is_int(dec_err("Z==="), JPKI_ERR_PARSE, "Z===");
    ok(dec_is("", ""), "empty decodes to nothing");
}

/* RFC 4231 test cases 2 and 6 (a key longer than the block), the data in
 * one part or two: the MAC starts from a copy of a keyed template. */
static void test_hmac(void)
{
    static const char want2[] =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    static const char want6[] =
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
    uint8_t key6[131], mac[32];
    char hex[65];
    int i;

    ok(jpki_hmac_sha256((const uint8_t *)"Jefe", 4,
                        (const uint8_t *)"what do ya want ", 16,
                        (const uint8_t *)"for nothing?", 12, mac),
       "HMAC-SHA256 in two parts");
    jpki_hex_encode(mac, 32, hex);
    is_str(hex, want2, "RFC 4231 case 2");
    memset(key6, 0xaa, sizeof(key6));
    for (i = 0; i < 2; i++) {
        ok(jpki_hmac_sha256(key6, sizeof(key6), (const uint8_t *)
                            "Test Using Larger Than Block-Size Key - Hash "
                            "Key First", 54, NULL, 0, mac),
           "HMAC-SHA256, a 131-byte key (%d)", i);
        jpki_hex_encode(mac, 32, hex);
        is_str(hex, want6, "RFC 4231 case 6 (%d)", i);
    }
}

static void test_hex(void)
{
    const uint8_t b[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    char h[16];
    uint8_t out[8];
    size_t n = 99;

    jpki_hex_encode(b, sizeof(b), h);
    is_str(h, "0001abcdefff", "hex encode, lower case");
    jpki_hex_encode(b, 0, h);
    is_str(h, "", "hex encode empty");
    ok(jpki_hex_decode("0001ABcdEFff", 12, out, sizeof(out), &n) == JPKI_OK
       && n == 6 && memcmp(out, b, 6) == 0, "hex decode mixed case");
    ok(jpki_hex_decode("", 0, out, sizeof(out), &n) == JPKI_OK && n == 0,
       "hex decode empty");
    is_int(jpki_hex_decode("abcd", 3, out, sizeof(out), &n), JPKI_ERR_PARSE,
           "odd length");
    is_int(jpki_hex_decode("0g", 2, out, sizeof(out), &n), JPKI_ERR_PARSE,
           "bad low digit");
    is_int(jpki_hex_decode("g0", 2, out, sizeof(out), &n), JPKI_ERR_PARSE,
           "bad high digit");
    is_int(jpki_hex_decode("0 ", 2, out, sizeof(out), &n), JPKI_ERR_PARSE,
           "space");
    is_int(jpki_hex_decode("0\0", 2, out, sizeof(out), &n), JPKI_ERR_PARSE,
           "NUL");
    is_int(jpki_hex_decode("00112233", 8, out, 3, &n), JPKI_ERR_TOO_LARGE,
           "too large for the output");
    ok(jpki_hex_decode("001122", 6, out, 3, &n) == JPKI_OK && n == 3,
       "exactly fits");
}

static void test_ct_equal(void)
{
    const uint8_t a[] = "abcdefgh", b[] = "abcdefgh", c[] = "xbcdefgh",
                  d[] = "abcdefgx";
    ok(jpki_ct_equal(a, b, 8) == 1, "ct_equal equal");
    ok(jpki_ct_equal(a, c, 8) == 0, "ct_equal differs at first byte");
    ok(jpki_ct_equal(a, d, 8) == 0, "ct_equal differs at last byte");
    ok(jpki_ct_equal(a, d, 7) == 1, "ct_equal only looks at n bytes");
    ok(jpki_ct_equal(a, c, 0) == 1, "ct_equal of nothing");
}

static uint8_t *slurp(const char *name, size_t *len)
{
    uint8_t *b = NULL;
    if (jpki_load_file(tap_path(name), 1 << 20, &b, len) != JPKI_OK) {
        printf("# cannot read %s (run make pki)\n", tap_path(name));
        exit(1);
    }
    return b;
}

static jpki_err to_der(const void *in, size_t len, size_t max, uint8_t **der,
                       size_t *dl)
{
    /* an exact-size copy, so ASan sees any read past len */
    uint8_t *copy = malloc(len);             /* glibc: malloc(0) != NULL */
    jpki_err e;
    memcpy(copy, in, len);
    e = jpki_to_der(copy, len, "CERTIFICATE", max, der, dl);
    free(copy);
    return e;
}

static void test_to_der(void)
{
    size_t derlen, pemlen, dl, i, n;
    uint8_t *der = slurp("user1.der", &derlen), *pem = slurp("user1.pem", &pemlen);
    uint8_t *out = NULL, *big;
    char *b64, *lines, *crlf, *s;
    jpki_err e;

    e = to_der(der, derlen, JPKI_MAX_CERT_LEN, &out, &dl);
    ok(e == JPKI_OK && dl == derlen && memcmp(out, der, dl) == 0,
       "DER passes through unchanged");
    free(out);
    is_int(to_der(der, derlen, derlen - 1, &out, &dl), JPKI_ERR_TOO_LARGE,
           "DER over maxlen");
    ok(out == NULL && dl == 0, "outputs cleared on error");

    e = to_der(pem, pemlen, JPKI_MAX_CERT_LEN, &out, &dl);
    ok(e == JPKI_OK && dl == derlen && memcmp(out, der, dl) == 0,
       "PEM with label decoded");
    free(out);

    /* PEM with CRLF and leading text */
    crlf = malloc(pemlen * 2 + 64);
    n = (size_t)sprintf(crlf, "Certificate:\r\n  some text\r\n");
    for (i = 0; i < pemlen; i++) {
        if (pem[i] == '\n')
            crlf[n++] = '\r';
        crlf[n++] = (char)pem[i];
    }
    e = to_der(crlf, n, JPKI_MAX_CERT_LEN, &out, &dl);
    ok(e == JPKI_OK && dl == derlen && memcmp(out, der, dl) == 0,
       "PEM with CRLF and text before it");
    free(out);
    free(crlf);

    /* PEM of another label */
    s = malloc(pemlen + 1);
    memcpy(s, pem, pemlen);
    s[pemlen] = '\0';
    {
        char *other = malloc(pemlen + 64), *p;
        strcpy(other, s);
        while ((p = strstr(other, "CERTIFICATE")) != NULL)
            memcpy(p, "PUBLICXKEYZ", 11);
        is_int(to_der(other, strlen(other), JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "PEM of another label refused");
        ok(out == NULL, "no output");
        free(other);
        /* stripped of spaces, this one is valid base64url as a whole */
        other = (char *)"-----BEGIN AB-----\nAAAA\n-----END AB-----\n";
        is_int(to_der(other, strlen(other), JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "PEM of another label that decodes as base64");
    }

    /* truncated PEM (no END line) */
    {
        char *end = strstr(s, "-----END");
        is_int(to_der(s, (size_t)(end - s), JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "PEM without END refused");
        is_int(to_der(s, (size_t)(end - s) + 10, JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "PEM with a cut END line refused");
    }

    /* PEM followed by a lot of junk: the whole input is bounded */
    {
        size_t jl = JPKI_MAX_CERT_LEN * 2 + 4096 + 1;
        char *junk = malloc(jl);
        memset(junk, '#', jl);
        memcpy(junk, s, pemlen);
        is_int(to_der(junk, jl, JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_TOO_LARGE, "PEM inside an oversized input refused");
        e = to_der(junk, jl - 2, JPKI_MAX_CERT_LEN, &out, &dl);
        ok(e == JPKI_OK && dl == derlen, "same PEM with junk under the bound");
        free(out);
        free(junk);
    }

    /* empty PEM body */
    {
        const char *empty = "-----BEGIN CERTIFICATE-----\n"
                            "-----END CERTIFICATE-----\n";
        is_int(to_der(empty, strlen(empty), JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "empty PEM body refused");
        is_int(to_der(" \r\n\t", 4, JPKI_MAX_CERT_LEN, &out, &dl),
               JPKI_ERR_PARSE, "whitespace only refused");
    }
    free(s);

    /* bare base64, one line and with line breaks */
    b64 = malloc(jpki_b64_encoded_len(derlen, 0) + 1);
    jpki_b64_encode(der, derlen, b64, 0);
    e = to_der(b64, strlen(b64), JPKI_MAX_CERT_LEN, &out, &dl);
    ok(e == JPKI_OK && dl == derlen && memcmp(out, der, dl) == 0,
       "bare base64");
    free(out);
    lines = malloc(strlen(b64) * 2 + 1);
    for (i = 0, n = 0; b64[i]; i++) {
        lines[n++] = b64[i];
        if (i % 64 == 63)
            lines[n++] = '\n';
    }
    lines[n] = '\0';
    e = to_der(lines, n, JPKI_MAX_CERT_LEN, &out, &dl);
    ok(e == JPKI_OK && dl == derlen && memcmp(out, der, dl) == 0,
       "base64 with line breaks");
    free(out);
    free(lines);
    {
        /* base64url form of the same DER (what some clients send) */
        char *u = malloc(jpki_b64_encoded_len(derlen, 1) + 1);
        jpki_b64_encode(der, derlen, u, 1);
        e = to_der(u, strlen(u), JPKI_MAX_CERT_LEN, &out, &dl);
        ok(e == JPKI_OK && dl == derlen, "base64url");
        free(out);
        free(u);
    }
    /* decodes to more than maxlen: bound checked after decoding */
    is_int(to_der(b64, strlen(b64), derlen - 1, &out, &dl), JPKI_ERR_TOO_LARGE,
           "base64 decoding over maxlen");
    {
        uint8_t raw[104];
        char t[160];
        memset(raw, 0x41, sizeof(raw));
        jpki_b64_encode(raw, sizeof(raw), t, 0);
        is_int(to_der(t, strlen(t), 100, &out, &dl), JPKI_ERR_TOO_LARGE,
               "104 bytes as base64 with maxlen 100");
        e = to_der(t, strlen(t), 104, &out, &dl);
        ok(e == JPKI_OK && dl == 104, "104 bytes with maxlen 104");
        free(out);
    }
    free(b64);

    /* garbage and too large */
    is_int(to_der("hello world!", 12, JPKI_MAX_CERT_LEN, &out, &dl),
           JPKI_ERR_PARSE, "garbage refused");
    is_int(to_der("\x01\x02\x03", 3, JPKI_MAX_CERT_LEN, &out, &dl),
           JPKI_ERR_PARSE, "binary that is not DER refused");
    is_int(jpki_to_der(NULL, 5, "CERTIFICATE", 100, &out, &dl), JPKI_ERR_PARSE,
           "NULL input");
    is_int(to_der("", 0, JPKI_MAX_CERT_LEN, &out, &dl), JPKI_ERR_PARSE,
           "empty input");
    big = malloc(JPKI_MAX_CERT_LEN * 3);
    memset(big, 'A', JPKI_MAX_CERT_LEN * 3);
    is_int(to_der(big, JPKI_MAX_CERT_LEN * 3, JPKI_MAX_CERT_LEN, &out, &dl),
           JPKI_ERR_TOO_LARGE, "huge base64 refused");
    is_int(to_der(big, JPKI_MAX_CERT_LEN * 2, JPKI_MAX_CERT_LEN, &out, &dl),
           JPKI_ERR_TOO_LARGE, "base64 of 1.5 x maxlen refused");
    free(big);
    free(der);
    free(pem);
}

static void test_load_file(void)
{
    char path[] = "/tmp/jpki-util-XXXXXX", dir[] = "/tmp/jpki-utild-XXXXXX";
    uint8_t *b = (uint8_t *)"x";
    size_t n = 7;
    int fd = mkstemp(path);

    if (write(fd, "hello\0world", 11) != 11)
        diag("short write");
    close(fd);
    ok(jpki_load_file(path, 100, &b, &n) == JPKI_OK && n == 11
       && memcmp(b, "hello\0world", 11) == 0 && b[11] == '\0',
       "file read whole and NUL-terminated");
    free(b);
    ok(jpki_load_file(path, 11, &b, &n) == JPKI_OK && n == 11,
       "exactly maxlen");
    free(b);
    is_int(jpki_load_file(path, 10, &b, &n), JPKI_ERR_TOO_LARGE, "too large");
    ok(b == NULL && n == 0, "outputs cleared");
    unlink(path);
    is_int(jpki_load_file(path, 100, &b, &n), JPKI_ERR_IO, "missing file");
    ok(mkdtemp(dir) != NULL, "temp dir");
    is_int(jpki_load_file(dir, 1 << 20, &b, &n), JPKI_ERR_IO, "directory");
    is_int(jpki_load_file("/dev/null", 1 << 20, &b, &n), JPKI_ERR_IO,
           "/dev/null: not a regular file");
    rmdir(dir);
    strcpy(path, "/tmp/jpki-util-XXXXXX");
    fd = mkstemp(path);
    close(fd);
    ok(jpki_load_file(path, 100, &b, &n) == JPKI_OK && n == 0 && b[0] == '\0',
       "empty file");
    free(b);
    unlink(path);
}

/* The operator's sentence of a file that cannot be read: the path and the
 * system's reason, not "I/O error". */
static void test_load_file_msg(void)
{
    char path[] = "/tmp/jpki-util-XXXXXX", dir[] = "/tmp/jpki-utild-XXXXXX";
    char m[512], want[600], file[64];
    uint8_t *b = NULL;
    size_t n = 0;
    int fd = mkstemp(path);

    if (write(fd, "hello", 5) != 5)
        diag("short write");
    close(fd);
    m[0] = '\0';
    ok(jpki_load_file_msg("CA file", path, 100, &b, &n, m, sizeof(m))
       == JPKI_OK && n == 5 && memcmp(b, "hello", 5) == 0 && m[0] == '\0',
       "load_file_msg reads; errbuf untouched");
    free(b);
    is_int(jpki_load_file_msg("CA file", path, 4, &b, &n, m, sizeof(m)),
           JPKI_ERR_TOO_LARGE, "too large");
    snprintf(want, sizeof(want), "cannot read CA file \"%s\": larger than 4 "
             "bytes", path);
    is_str(m, want, "... the sentence");
    ok(b == NULL && n == 0, "... outputs cleared");
    is_int(jpki_file_check("mapping file", path, m, sizeof(m)), JPKI_OK,
           "file_check: a regular file");
    unlink(path);

    is_int(jpki_load_file_msg("secret file", path, 100, &b, &n, m,
                              sizeof(m)), JPKI_ERR_IO, "missing file");
    snprintf(want, sizeof(want), "cannot read secret file \"%s\": No such "
             "file or directory", path);
    is_str(m, want, "... the path and the system's reason");
    is_int(jpki_file_check("mapping file", path, m, sizeof(m)), JPKI_ERR_IO,
           "file_check: missing file");
    snprintf(want, sizeof(want), "cannot read mapping file \"%s\": No such "
             "file or directory", path);
    is_str(m, want, "... the same sentence");
    is_int(jpki_load_file_msg(NULL, path, 100, &b, &n, m, sizeof(m)),
           JPKI_ERR_IO, "what NULL");
    ok(strncmp(m, "cannot read file \"", 18) == 0, "... says \"file\" (%s)",
       m);
    is_int(jpki_load_file_msg(NULL, path, 100, &b, &n, NULL, 0), JPKI_ERR_IO,
           "errbuf NULL");
    is_int(jpki_load_file_msg(NULL, path, 100, &b, &n, m, 12), JPKI_ERR_IO,
           "a short errbuf");
    is_int(strlen(m), 11, "... truncated, NUL-terminated");

    ok(mkdtemp(dir) != NULL, "temp dir");
    is_int(jpki_load_file_msg("CA file", dir, 100, &b, &n, m, sizeof(m)),
           JPKI_ERR_IO, "directory");
    ok(strstr(m, dir) != NULL && strstr(m, "not a regular file") != NULL,
       "... not a regular file (%s)", m);
    is_int(jpki_file_check("mapping file", dir, m, sizeof(m)), JPKI_ERR_IO,
           "file_check: directory");
    ok(strstr(m, "not a regular file") != NULL, "... not a regular file");
    snprintf(file, sizeof(file), "%s/f", dir);
    fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    if (geteuid() != 0) {
        chmod(dir, 0);
        is_int(jpki_file_check("mapping file", file, m, sizeof(m)),
               JPKI_ERR_IO, "file_check: a directory that cannot be searched");
        ok(strstr(m, "Permission denied") != NULL, "... Permission denied");
        chmod(dir, 0700);
        chmod(file, 0);
        is_int(jpki_load_file_msg("CA file", file, 100, &b, &n, m, sizeof(m)),
               JPKI_ERR_IO, "a file that cannot be read");
        ok(strstr(m, "Permission denied") != NULL, "... Permission denied");
    }
    unlink(file);
    rmdir(dir);
}

/* value of header name in a {NULL, NULL}-terminated list, NULL absent */
static const char *hdr_of(const jpki_header *h, const char *name)
{
    for (; h->name != NULL; h++)
        if (strcmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

static void test_headers(void)
{
    is_str(hdr_of(jpki_answer_headers, "Cache-Control"), "no-store",
           "the gate's answers: Cache-Control: no-store");
    is_str(hdr_of(jpki_answer_headers, "X-Content-Type-Options"), "nosniff",
           "... X-Content-Type-Options: nosniff");
    is_str(hdr_of(jpki_pass_cookie_headers, "Cache-Control"), "private",
           "a request let through with a Set-Cookie: Cache-Control: private");
}

static void test_errors(void)
{
    int i, j, all = 1, distinct = 1, shape = 1;
    for (i = 0; i < JPKI__ERR_COUNT; i++) {
        const char *r = jpki_reason((jpki_err)i), *m = jpki_strerror((jpki_err)i);
        if (r == NULL || m == NULL || *m == '\0'
            || strcmp(r, "unknown_error") == 0 || strcmp(m, "unknown error") == 0) {
            printf("# code %d has no reason or message\n", i);
            all = 0;
            continue;
        }
        if (strspn(r, "abcdefghijklmnopqrstuvwxyz_") != strlen(r) || !*r)
            shape = 0;
        for (j = 0; j < i; j++)
            if (strcmp(r, jpki_reason((jpki_err)j)) == 0) {
                printf("# codes %d and %d share reason %s\n", j, i, r);
                distinct = 0;
            }
    }
    ok(all, "every code 0..%d has a reason and a message", JPKI__ERR_COUNT - 1);
    ok(distinct, "reasons are distinct");
    ok(shape, "reasons are snake_case");
    is_str(jpki_reason(JPKI_OK), "ok", "reason of JPKI_OK");
    is_str(jpki_reason(JPKI_ERR_CERT_EXPIRED), "cert_expired",
           "reason of CERT_EXPIRED");
    is_str(jpki_reason(JPKI__ERR_COUNT), "unknown_error", "reason out of range");
    is_str(jpki_reason((jpki_err)-1), "unknown_error", "reason negative");
    is_str(jpki_strerror(JPKI__ERR_COUNT), "unknown error",
           "message out of range");
    is_str(jpki_strerror((jpki_err)1000), "unknown error", "message 1000");
    is_str(jpki_reason_name(JPKI_REASON_KEY_COMPROMISE), "keyCompromise",
           "CRL reason name");
    is_str(jpki_reason_name(7), "none", "CRL reason 7 unused");
    is_str(jpki_reason_name(-1), "none", "CRL reason none");
    is_str(jpki_reason_name(11), "none", "CRL reason out of range");
}

/* jpki_random: draws differ, large ones too; a forked child does not hand
 * out the bytes its parent will (the buffered page is wiped on fork);
 * threads draw their own. */
static void *draw_thread(void *arg)
{
    jpki_random(arg, 16);
    return NULL;
}

static void test_random(void)
{
    static const uint8_t zero[16];
    uint8_t a[16], b[16], big[300], child[16], mine[16], th[16];
    int fds[2], st = 0, i, same = 0;
    pthread_t tid;
    pid_t pid;

    ok(jpki_random(a, sizeof(a)) && jpki_random(b, sizeof(b))
       && memcmp(a, b, 16) != 0 && memcmp(a, zero, 16) != 0,
       "two draws differ");
    ok(jpki_random(big, sizeof(big)) && memcmp(big, big + 150, 16) != 0,
       "a large draw (RAND_bytes itself)");
    for (i = 0; i < 600; i++) {          /* across page refills */
        jpki_random(a, 13);
        same += memcmp(a, b, 13) == 0;
        memcpy(b, a, 13);
    }
    ok(same == 0, "600 draws of 13 bytes across refills: none repeats");
    ok(pipe(fds) == 0, "pipe");
    jpki_random(a, 16);                  /* the page is in use */
    pid = fork();
    if (pid == 0) {
        jpki_random(child, sizeof(child));
        _exit(write(fds[1], child, sizeof(child)) == (ssize_t)sizeof(child)
              ? 0 : 1);
    }
    jpki_random(mine, sizeof(mine));
    ok(pid > 0 && read(fds[0], child, sizeof(child)) == (ssize_t)sizeof(child)
       && waitpid(pid, &st, 0) == pid && st == 0,
       "a forked child draws");
    ok(memcmp(child, mine, sizeof(mine)) != 0,
       "... not the bytes its parent draws next (the page wiped on fork)");
    close(fds[0]);
    close(fds[1]);
    jpki_random(mine, sizeof(mine));
    ok(pthread_create(&tid, NULL, draw_thread, th) == 0
       && pthread_join(tid, NULL) == 0 && memcmp(th, zero, 16) != 0
       && memcmp(th, mine, 16) != 0, "a thread draws its own");
}

int main(void)
{
    test_random();
    test_hmac();
    test_base64();
    test_hex();
    test_ct_equal();
    test_to_der();
    test_load_file();
    test_load_file_msg();
    test_headers();
    test_errors();
    return done_testing();
}
