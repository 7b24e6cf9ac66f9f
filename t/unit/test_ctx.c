/* test_ctx.c - site configuration: secret, key ring, secret file, issuers,
 * policy and cookie validation in jpki_ctx_finish, small parsers. */
#include "jpki.h"
#include "tap.h"

#include <stdint.h>
#include <unistd.h>
#include <sys/stat.h>

static const uint8_t SECRET[32] = "0123456789abcdef0123456789abcdef";

/* A context with a secret and one issuer (ca2), not finished. */
static jpki_ctx *base_ctx(void)
{
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, "card");
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    if (is == NULL
        || jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err,
                                      sizeof(err)) != JPKI_OK) {
        printf("# cannot load ca2.pem (run make pki)\n");
        exit(1);
    }
    return c;
}

static jpki_err finish(jpki_ctx *c, char *err, size_t errlen)
{
    err[0] = '\0';
    return jpki_ctx_finish(c, err, errlen);
}

/* Key id carried by a fresh challenge of a finished ctx (byte 1 of it). */
static int challenge_key_id(const jpki_ctx *c)
{
    char ch[JPKI_CHALLENGE_LEN + 1];
    uint8_t raw[JPKI_CHALLENGE_LEN];
    size_t n;
    if (jpki_challenge_issue(c, time(NULL), "h", 1, ch, NULL) != JPKI_OK
        || jpki_b64_decode(ch, strlen(ch), raw, &n) != JPKI_OK || n < 2)
        return -1;
    return raw[1];
}

static uint8_t key_bytes[32];
static const uint8_t *kb(int v)
{
    memset(key_bytes, v, sizeof(key_bytes));
    return key_bytes;
}

static void test_secret_and_ring(void)
{
    uint8_t s[65];
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    int i;

    memset(s, 's', sizeof(s));
    is_int(jpki_ctx_set_secret(c, s, 31), JPKI_ERR_INVALID, "secret of 31 bytes");
    is_int(jpki_ctx_set_secret(c, s, 65), JPKI_ERR_INVALID, "secret of 65 bytes");
    is_int(jpki_ctx_set_secret(c, s, 0), JPKI_ERR_INVALID, "empty secret");
    is_int(jpki_ctx_set_secret(c, s, 32), JPKI_OK, "secret of 32 bytes");
    is_int(jpki_ctx_set_secret(c, s, 64), JPKI_OK, "secret of 64 bytes");

    is_int(jpki_ctx_add_key(c, 0, kb(1), 32, 0), JPKI_ERR_INVALID, "key id 0");
    is_int(jpki_ctx_add_key(c, 256, kb(1), 32, 0), JPKI_ERR_INVALID,
           "key id 256");
    is_int(jpki_ctx_add_key(c, 1, kb(1), 31, 0), JPKI_ERR_INVALID,
           "key of 31 bytes");
    is_int(jpki_ctx_add_key(c, 1, kb(1), 33, 0), JPKI_ERR_INVALID,
           "key of 33 bytes");
    is_int(jpki_ctx_add_key(c, 1, kb(1), 32, 0), JPKI_OK, "key id 1");
    is_int(jpki_ctx_add_key(c, 255, kb(2), 32, 0), JPKI_OK, "key id 255");
    is_int(jpki_ctx_add_key(c, 1, kb(3), 32, 1), JPKI_ERR_INVALID,
           "duplicate key id");
    for (i = 0; i < 6; i++)
        jpki_ctx_add_key(c, 10 + (unsigned)i, kb(i), 32, 0);
    is_int(jpki_ctx_add_key(c, 100, kb(9), 32, 0), JPKI_ERR_INVALID,
           "ninth key refused");
    jpki_ctx_free(c);

    /* current selection, seen through the key id of issued challenges */
    c = base_ctx();
    jpki_ctx_add_key(c, 5, kb(5), 32, 0);
    jpki_ctx_add_key(c, 7, kb(7), 32, 1);
    jpki_ctx_add_key(c, 9, kb(9), 32, 0);
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "finish with 3 keys");
    is_int(challenge_key_id(c), 7, "the key marked current issues");
    jpki_ctx_free(c);

    c = base_ctx();
    jpki_ctx_add_key(c, 5, kb(5), 32, 0);
    jpki_ctx_add_key(c, 9, kb(9), 32, 0);
    finish(c, err, sizeof(err));
    is_int(challenge_key_id(c), 5, "no key marked current: the first one");
    jpki_ctx_free(c);

    c = base_ctx();
    jpki_ctx_add_key(c, 5, kb(5), 32, 1);
    jpki_ctx_add_key(c, 9, kb(9), 32, 1);
    finish(c, err, sizeof(err));
    is_int(challenge_key_id(c), 9, "API: last key marked current wins");
    jpki_ctx_free(c);

    c = base_ctx();
    finish(c, err, sizeof(err));
    is_int(challenge_key_id(c), 1, "no key: key 1 derived from the secret");
    is_int(jpki_ctx_add_key(c, 2, kb(2), 32, 1), JPKI_ERR_INVALID,
           "add_key after finish refused");
    is_int(jpki_ctx_set_secret(c, SECRET, 32), JPKI_ERR_INVALID,
           "set_secret after finish refused");
    jpki_ctx_free(c);
}

/* ---- secret file ---------------------------------------------------- */

static char tmp_path[64];

static const char *write_tmp(const char *content, size_t len, mode_t mode)
{
    int fd;
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/jpki-secret-XXXXXX");
    fd = mkstemp(tmp_path);
    if (fd < 0 || write(fd, content, len) != (ssize_t)len) {
        printf("# cannot write a temp file\n");
        exit(1);
    }
    close(fd);
    chmod(tmp_path, mode);
    return tmp_path;
}

#define HEX64 "3031323334353637383961626364656630313233343536373839616263646566"
#define K1 "1111111111111111111111111111111111111111111111111111111111111111"
#define K2 "2222222222222222222222222222222222222222222222222222222222222222"

/* Loads a secret file with content s into a fresh base ctx; returns the
 * error, the message in err. */
static jpki_err load(const char *s, mode_t mode, char *err, size_t errlen)
{
    jpki_ctx *c = jpki_ctx_new();
    const char *p = write_tmp(s, strlen(s), mode);
    jpki_err e;
    err[0] = '\0';
    e = jpki_ctx_load_secret_file(c, p, err, errlen);
    unlink(p);
    jpki_ctx_free(c);
    return e;
}

#define LOAD_FAILS(content, want, needle, name) do {                        \
        char m_[512];                                                       \
        is_int(load(content, 0600, m_, sizeof(m_)), want, "%s", name);      \
        if (!tap_ok(strstr(m_, needle) != NULL, __FILE__, __LINE__,         \
                    "%s: message mentions \"%s\"", name, needle))           \
            printf("#   message: %s\n", m_);                                \
    } while (0)

static void test_secret_file(void)
{
    const char *good =
        "# site secret\n"
        "\n"
        "secret " HEX64 "\n"
        "   # indented comment\n"
        "key 1 " K1 "\r\n"
        "key 2\t" K2 " current\n";
    char err[512], id1[JPKI_CERT_ID_HEX_LEN + 1], id2[JPKI_CERT_ID_HEX_LEN + 1];
    char ch[JPKI_CHALLENGE_LEN + 1], idh[JPKI_CHALLENGE_ID_HEX + 1];
    const uint8_t kh[20] = {1, 2, 3}, serial[] = {0x12, 0x34};
    jpki_ctx *c = jpki_ctx_new(), *ref = base_ctx();
    const char *p;
    time_t now = time(NULL);

    /* the file ctx gets its secret and keys from the file only */
    jpki_issuer_add_certs_file(jpki_ctx_add_issuer(c, "card"),
                               tap_path("ca2.pem"), err, sizeof(err));
    p = write_tmp(good, strlen(good), 0600);
    is_int(jpki_ctx_load_secret_file(c, p, err, sizeof(err)), JPKI_OK,
           "good secret file loads");
    unlink(p);
    /* same secret as SECRET: same cert_id as a ctx given it by the API */
    jpki_cert_id_compute(c, kh, 20, serial, 2, id1);
    jpki_cert_id_compute(ref, kh, 20, serial, 2, id2);
    is_str(id1, id2, "secret from the file is the one written");
    /* K1, K2 are the bytes 0x11.. and 0x22..: a ctx given them by the API
     * verifies what the file ctx issues with key 2 */
    jpki_ctx_add_key(ref, 1, kb(0x11), 32, 0);
    jpki_ctx_add_key(ref, 2, kb(0x22), 32, 1);
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "file ctx finishes");
    is_int(finish(ref, err, sizeof(err)), JPKI_OK, "reference ctx finishes");
    is_int(challenge_key_id(c), 2, "key 2 (marked current) issues");
    jpki_challenge_issue(c, now, "h", 1, ch, NULL);
    is_int(jpki_challenge_check(ref, ch, strlen(ch), now, "h", 1, idh, NULL),
           JPKI_OK,
           "key 2 material from the file is the one written");
    jpki_ctx_free(c);
    jpki_ctx_free(ref);

    {
        char m[512];
        is_int(load(good, 0644, m, sizeof(m)), JPKI_ERR_INVALID, "mode 0644");
        ok(strstr(m, "chmod 600") != NULL, "message says chmod 600");
        is_int(load(good, 0640, m, sizeof(m)), JPKI_ERR_INVALID, "mode 0640");
        is_int(load(good, 0604, m, sizeof(m)), JPKI_ERR_INVALID, "mode 0604");
        is_int(load(good, 0601, m, sizeof(m)), JPKI_ERR_INVALID, "mode 0601");
        is_int(load(good, 0400, m, sizeof(m)), JPKI_OK, "mode 0400 ok");
    }
    LOAD_FAILS("# nothing\nkey 1 " K1 "\n", JPKI_ERR_INVALID, "no \"secret\"",
               "missing secret line");
    LOAD_FAILS("", JPKI_ERR_INVALID, "no \"secret\"", "empty file");
    LOAD_FAILS("secret " HEX64 "\nsecret zz" HEX64 "\n", JPKI_ERR_INVALID,
               "line 2", "bad hex in secret");
    LOAD_FAILS("secret 0" HEX64 "\n", JPKI_ERR_INVALID, "line 1",
               "odd number of hex digits");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " K1 "g\n", JPKI_ERR_INVALID, "line 2",
               "bad hex in key");
    LOAD_FAILS("secret 00112233\n", JPKI_ERR_INVALID, "64 to 128",
               "secret too short");
    LOAD_FAILS("secret " HEX64 HEX64 "00\n", JPKI_ERR_INVALID, "64 to 128",
               "secret too long");
    LOAD_FAILS("secret\n", JPKI_ERR_INVALID, "line 1", "secret without value");
    LOAD_FAILS("secret " HEX64 " extra\n", JPKI_ERR_INVALID, "line 1",
               "secret with an extra word");
    LOAD_FAILS("secret " HEX64 "\nsalt 00\n", JPKI_ERR_INVALID,
               "unknown keyword", "unknown keyword");
    LOAD_FAILS("Secret " HEX64 "\n", JPKI_ERR_INVALID, "unknown keyword",
               "keywords are case sensitive");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " K1 " current\nkey 2 " K2
               " current\n", JPKI_ERR_INVALID, "only one key",
               "two current keys");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " K1 " currently\n", JPKI_ERR_INVALID,
               "line 2", "bad flag");
    LOAD_FAILS("secret " HEX64 "\nkey x " K1 "\n", JPKI_ERR_INVALID, "line 2",
               "key id not a number");
    LOAD_FAILS("secret " HEX64 "\nkey 1x " K1 "\n", JPKI_ERR_INVALID, "line 2",
               "key id with trailing letters");
    LOAD_FAILS("secret " HEX64 "\nkey 0 " K1 "\n", JPKI_ERR_INVALID, "1..255",
               "key id 0");
    LOAD_FAILS("secret " HEX64 "\nkey 256 " K1 "\n", JPKI_ERR_INVALID,
               "1..255", "key id 256");
    LOAD_FAILS("secret " HEX64 "\nkey -1 " K1 "\n", JPKI_ERR_INVALID,
               "1..255", "key id -1");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " K1 "\nkey 1 " K2 "\n",
               JPKI_ERR_INVALID, "unique", "duplicate key id");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " HEX64 HEX64 "\n", JPKI_ERR_INVALID,
               "line 2", "key of 64 bytes");
    LOAD_FAILS("secret " HEX64 "\nkey 1 0011\n", JPKI_ERR_INVALID,
               "64 hex digits", "key of 2 bytes");
    LOAD_FAILS("secret " HEX64 "\nkey 1\n", JPKI_ERR_INVALID, "line 2",
               "key without value");
    LOAD_FAILS("secret " HEX64 "\nkey 1 " K1 " current x\n", JPKI_ERR_INVALID,
               "line 2", "key with an extra word");
    {
        static const char bin[] = "secret " HEX64 "\n\0key 1 " K1 "\n";
        char m[512];
        jpki_ctx *b = jpki_ctx_new();
        p = write_tmp(bin, sizeof(bin) - 1, 0600);
        is_int(jpki_ctx_load_secret_file(b, p, m, sizeof(m)), JPKI_ERR_PARSE,
               "binary content (NUL byte) refused");
        ok(strstr(m, "binary") != NULL, "message says binary");
        unlink(p);
        is_int(jpki_ctx_load_secret_file(b, p, m, sizeof(m)), JPKI_ERR_IO,
               "missing file");
        ok(strstr(m, p) != NULL, "message names the file");
        ok(strstr(m, "cannot read secret file") != NULL
           && strstr(m, ": No such file or directory") != NULL,
           "... and gives the system's reason (%s)", m);
        ok(jpki_ctx_load_secret_file(b, "/tmp", m, sizeof(m)) != JPKI_OK,
           "a directory is refused");
        jpki_ctx_free(b);
    }
}

/* ---- issuers -------------------------------------------------------- */

static time_t NOW;

static jpki_err check_file(const jpki_ctx *c, const char *name)
{
    uint8_t *b;
    size_t n;
    jpki_cert *cert = NULL;
    jpki_err e;
    if (jpki_load_file(tap_path(name), 1 << 20, &b, &n) != JPKI_OK)
        return JPKI_ERR_IO;
    e = jpki_cert_check(c, b, n, NOW, &cert, NULL, 0);
    jpki_cert_free(cert);
    free(b);
    return e;
}

/* A finished ctx with one issuer made of the given files (NULL ended). */
static jpki_ctx *ctx_files(const char *name, const char *const *files,
                           char *err, size_t errlen, jpki_err *fe)
{
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, name);
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    for (; *files; files++)
        if (jpki_issuer_add_certs_file(is, tap_path(*files), err, errlen)
            != JPKI_OK)
            printf("# cannot add %s: %s\n", *files, err);
    *fe = finish(c, err, errlen);
    return c;
}

static void test_issuers(void)
{
    char err[512], name[80];
    jpki_ctx *c = jpki_ctx_new(), *a, *b;
    jpki_issuer *is;
    jpki_err fe;
    uint8_t *buf;
    size_t n;
    int i;

    ok(jpki_ctx_add_issuer(c, "card") != NULL, "issuer added");
    ok(jpki_ctx_add_issuer(c, "card") == NULL, "duplicate name refused");
    ok(jpki_ctx_add_issuer(c, "") == NULL, "empty name refused");
    ok(jpki_ctx_add_issuer(c, NULL) == NULL, "NULL name refused");
    ok(jpki_ctx_add_issuer(c, "a\"b") == NULL, "a quote in a name refused");
    ok(jpki_ctx_add_issuer(c, "a b") == NULL, "a space in a name refused");
    ok(jpki_ctx_add_issuer(c, "phone-2023.v1_x") != NULL,
       "letters, digits, _ . - accepted");
    memset(name, 'n', 64);
    name[64] = '\0';
    ok(jpki_ctx_add_issuer(c, name) == NULL, "name of 64 chars refused");
    name[63] = '\0';
    ok(jpki_ctx_add_issuer(c, name) != NULL, "name of 63 chars");
    for (i = 2; i < 16; i++) {
        snprintf(name, sizeof(name), "i%d", i);
        jpki_ctx_add_issuer(c, name);
    }
    is_int(jpki_ctx_issuer_count(c), 16, "16 issuers");
    ok(jpki_ctx_add_issuer(c, "seventeenth") == NULL, "17th issuer refused");
    is_str(jpki_issuer_name(jpki_ctx_issuer(c, 0)), "card", "issuer 0 name");
    ok(jpki_ctx_issuer(c, 16) == NULL, "issuer index out of range");
    jpki_ctx_free(c);

    /* what a certificate file adds */
    c = jpki_ctx_new();
    is = jpki_ctx_add_issuer(c, "card");
    err[0] = '\0';
    is_int(jpki_issuer_add_certs_file(is, tap_path("user1.pem"), err,
                                      sizeof(err)),
           JPKI_ERR_INVALID, "user certificate as issuer refused");
    ok(strstr(err, "not a CA") != NULL, "message: not a CA certificate");
    is_int(jpki_issuer_add_certs(is, (const uint8_t *)"junk", 4, err,
                                 sizeof(err)),
           JPKI_ERR_CERT_PARSE, "garbage refused");
    ok(strstr(err, "no PEM certificate") != NULL, "message: no PEM");
    is_int(jpki_issuer_add_certs(is, (const uint8_t *)"", 0, err, sizeof(err)),
           JPKI_ERR_CERT_PARSE, "empty buffer refused");
    is_int(jpki_issuer_add_certs_file(is, tap_path("no-such.pem"), err,
                                      sizeof(err)),
           JPKI_ERR_IO, "missing file");
    ok(strstr(err, "issuer \"card\": cannot read CA file") != NULL
       && strstr(err, tap_path("no-such.pem")) != NULL
       && strstr(err, ": No such file or directory") != NULL,
       "message: the issuer, the path and the system's reason (%s)", err);
    /* DER: whole, truncated, with a trailing byte */
    jpki_load_file(tap_path("ca2.pem"), 1 << 20, &buf, &n);
    {
        uint8_t *der;
        size_t dl;
        jpki_to_der(buf, n, "CERTIFICATE", 1 << 20, &der, &dl);
        der = realloc(der, dl + 1);
        der[dl] = 0;
        is_int(jpki_issuer_add_certs(is, der, dl - 1, err, sizeof(err)),
               JPKI_ERR_CERT_PARSE, "truncated DER refused");
        ok(strstr(err, "DER") != NULL, "message: DER");
        is_int(jpki_issuer_add_certs(is, der, dl + 1, err, sizeof(err)),
               JPKI_ERR_CERT_PARSE, "DER with a trailing byte refused");
        is_int(jpki_issuer_add_certs(is, der, dl, err, sizeof(err)), JPKI_OK,
               "DER CA certificate");
        free(der);
    }
    free(buf);
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "finish with a DER anchor");
    is_int(jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err,
                                      sizeof(err)),
           JPKI_ERR_INVALID, "add_certs after finish refused");
    is_int(jpki_issuer_set_policy(is, NULL), JPKI_ERR_INVALID,
           "set_policy after finish refused");
    is_int(jpki_issuer_set_ocsp_url(is, "http://x/"), JPKI_ERR_INVALID,
           "set_ocsp_url after finish refused");
    is_int(jpki_issuer_set_crl_source(is, "x"), JPKI_ERR_INVALID,
           "set_crl_source after finish refused");
    ok(jpki_ctx_add_issuer(c, "late") == NULL, "add_issuer after finish refused");
    is_int(strlen(jpki_issuer_tag(is)), 16, "tag of 16 chars");
    ok(strspn(jpki_issuer_tag(is), "0123456789abcdef") == 16, "tag is hex");
    is_int(check_file(c, "user1.pem"), JPKI_OK, "user1 checks");
    jpki_ctx_free(c);

    /* the bundle: ca1 ca2 anchors, two links */
    {
        const char *bundle[] = {"all-cas.pem", NULL};
        const char *anchors[] = {"ca1.pem", "ca2.pem", NULL};
        const char *ca2_only[] = {"ca2.pem", NULL};
        const char *ca2_link[] = {"ca2.pem", "link-old-with-new.pem", NULL};
        const char *ca1_link[] = {"ca1.pem", "link-new-with-old.pem", NULL};
        const char *link_only[] = {"link-old-with-new.pem", NULL};

        a = ctx_files("card", bundle, err, sizeof(err), &fe);
        is_int(fe, JPKI_OK, "all-cas.pem bundle finishes");
        b = ctx_files("card", anchors, err, sizeof(err), &fe);
        is_str(jpki_issuer_tag(jpki_ctx_issuer(a, 0)),
               jpki_issuer_tag(jpki_ctx_issuer(b, 0)),
               "bundle: exactly ca1 and ca2 are anchors (same tag as ca1+ca2)");
        is_int(check_file(a, "user1.pem"), JPKI_OK, "bundle: user1 (ca2)");
        is_int(check_file(a, "user-old.pem"), JPKI_OK, "bundle: user-old (ca1)");
        jpki_ctx_free(a);
        jpki_ctx_free(b);

        a = ctx_files("card", ca2_only, err, sizeof(err), &fe);
        is_int(check_file(a, "user-old.pem"), JPKI_ERR_CERT_UNKNOWN_ISSUER,
               "ca2 alone: user-old unknown");
        b = ctx_files("card", ca2_link, err, sizeof(err), &fe);
        is_int(check_file(b, "user-old.pem"), JPKI_OK,
               "ca2 + link-old-with-new: user-old checks through the link");
        is_str(jpki_issuer_tag(jpki_ctx_issuer(a, 0)),
               jpki_issuer_tag(jpki_ctx_issuer(b, 0)),
               "the link is not an anchor (tag unchanged)");
        jpki_ctx_free(a);
        jpki_ctx_free(b);
        a = ctx_files("card", ca1_link, err, sizeof(err), &fe);
        is_int(check_file(a, "user1.pem"), JPKI_OK,
               "ca1 + link-new-with-old: user1 checks through the link");
        jpki_ctx_free(a);

        a = ctx_files("card", link_only, err, sizeof(err), &fe);
        is_int(fe, JPKI_ERR_INVALID, "issuer with only a link cert: finish fails");
        ok(strstr(err, "no self-signed trust anchor") != NULL
           && strstr(err, "card") != NULL, "message names issuer and cause");
        ok(jpki_ctx_policy(a) != NULL, "failed finish leaves ctx configurable");
        jpki_ctx_free(a);
    }

    /* finish failing on a second issuer, fixed, finished again */
    c = jpki_ctx_new();
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    is = jpki_ctx_add_issuer(c, "a");
    jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err, sizeof(err));
    is = jpki_ctx_add_issuer(c, "b");
    jpki_issuer_add_certs_file(is, tap_path("link-old-with-new.pem"), err,
                               sizeof(err));
    is_int(finish(c, err, sizeof(err)), JPKI_ERR_INVALID,
           "second issuer without anchor");
    ok(strstr(err, "\"b\"") != NULL, "message names issuer b");
    jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err, sizeof(err));
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "finish after the fix");
    is_int(check_file(c, "user-old.pem"), JPKI_OK, "user-old checks (issuer b)");
    jpki_ctx_free(c);

    /* finish without secret / without issuer */
    c = jpki_ctx_new();
    jpki_issuer_add_certs_file(jpki_ctx_add_issuer(c, "card"),
                               tap_path("ca2.pem"), err, sizeof(err));
    is_int(finish(c, err, sizeof(err)), JPKI_ERR_INVALID, "finish without secret");
    ok(strstr(err, "secret") != NULL, "message: secret");
    jpki_ctx_free(c);
    c = jpki_ctx_new();
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    is_int(finish(c, err, sizeof(err)), JPKI_ERR_INVALID, "finish without issuer");
    ok(strstr(err, "no issuer") != NULL, "message: no issuer");
    jpki_ctx_free(c);
    c = jpki_ctx_new();
    jpki_ctx_set_secret(c, SECRET, sizeof(SECRET));
    jpki_ctx_add_issuer(c, "empty");
    is_int(finish(c, err, sizeof(err)), JPKI_ERR_INVALID,
           "finish with an issuer without certificates");
    ok(strstr(err, "no self-signed trust anchor") != NULL, "message: anchor");
    jpki_ctx_free(c);
    c = jpki_ctx_new();
    is_int(jpki_ctx_finish(c, NULL, 0), JPKI_ERR_INVALID,
           "finish failure with a NULL errbuf");
    jpki_ctx_free(c);

    /* issuer settings */
    c = jpki_ctx_new();
    is = jpki_ctx_add_issuer(c, "card");
    is_int(jpki_issuer_set_policy(is, "not an oid"), JPKI_ERR_INVALID,
           "policy: not an OID");
    is_int(jpki_issuer_set_policy(is, "commonName"), JPKI_ERR_INVALID,
           "policy: names refused, numeric only");
    is_int(jpki_issuer_set_policy(is, "1.2.3.4"), JPKI_OK, "policy 1.2.3.4");
    is_int(jpki_issuer_set_policy(is, ""), JPKI_OK, "policy \"\" (none)");
    is_int(jpki_issuer_set_ocsp_url(is, "ftp://x/"), JPKI_ERR_INVALID,
           "OCSP URL must be http(s)");
    is_int(jpki_issuer_set_ocsp_url(is, "https://ocsp.example/"), JPKI_OK,
           "OCSP URL https");
    is_str(jpki_issuer_ocsp_url(is), "https://ocsp.example/", "OCSP URL kept");
    is_int(jpki_issuer_set_ocsp_url(is, NULL), JPKI_OK, "OCSP URL cleared");
    ok(jpki_issuer_ocsp_url(is) == NULL, "OCSP URL is NULL");
    is_int(jpki_issuer_set_crl_source(is, "/var/lib/jpki/ca.crl"), JPKI_OK,
           "CRL source");
    is_str(jpki_issuer_crl_source(is), "/var/lib/jpki/ca.crl", "CRL source kept");
    {
        char *longurl = malloc(2100);
        memset(longurl, 'a', 2099);
        memcpy(longurl, "http://", 7);
        longurl[2099] = '\0';
        is_int(jpki_issuer_set_ocsp_url(is, longurl), JPKI_ERR_INVALID,
               "OCSP URL over 2048 chars");
        free(longurl);
    }
    jpki_ctx_free(c);
}

/* ---- policy and cookie validation ------------------------------------ */

static jpki_err finish_with(void (*edit)(jpki_policy *), char *err,
                            size_t errlen)
{
    jpki_ctx *c = base_ctx();
    jpki_err e;
    edit(jpki_ctx_policy(c));
    e = finish(c, err, errlen);
    jpki_ctx_free(c);
    return e;
}

#define POLICY_CASE(body, want, name) do {                                  \
        char e_[512];                                                       \
        jpki_err r_ = finish_with(body, e_, sizeof(e_));                    \
        is_int(r_, want, "%s", name);                                       \
        if (want != JPKI_OK)                                                \
            ok(e_[0] != '\0', "%s: message given", name);                  \
    } while (0)

static void p_default(jpki_policy *p) { (void)p; }
static void p_ttl_low(jpki_policy *p) { p->challenge_ttl = 9; }
static void p_ttl_10(jpki_policy *p) { p->challenge_ttl = 10; }
static void p_ttl_high(jpki_policy *p) { p->challenge_ttl = 3601; }
static void p_life_low(jpki_policy *p)
{
    p->session_lifetime = 9;
    p->session_idle = 0;            /* only the lifetime is out of range */
}
static void p_life_high(jpki_policy *p) { p->session_lifetime = 86400 * 30 + 1; }
static void p_life_max(jpki_policy *p) { p->session_lifetime = 86400 * 30; }
static void p_idle_high(jpki_policy *p)
{
    p->session_lifetime = 3600;
    p->session_idle = 3601;
}
static void p_idle_eq(jpki_policy *p)
{
    p->session_lifetime = 3600;
    p->session_idle = 3600;
}
static void p_rev_bad(jpki_policy *p) { p->rev_policy.src[0] = (jpki_rev_source)5; }
static void p_rev_many(jpki_policy *p) { p->rev_policy.n = JPKI_REV_SOURCES_MAX + 1; }
static void p_rev_twice(jpki_policy *p)
{
    p->rev_policy.n = 2;
    p->rev_policy.src[0] = p->rev_policy.src[1] = JPKI_REV_SRC_CRL;
}
static void p_name_space(jpki_policy *p) { strcpy(p->cookie_name, "a b"); }
static void p_name_semi(jpki_policy *p) { strcpy(p->cookie_name, "a;b"); }
static void p_name_eq(jpki_policy *p) { strcpy(p->cookie_name, "a=b"); }
static void p_name_empty(jpki_policy *p) { p->cookie_name[0] = '\0'; }
static void p_name_ok(jpki_policy *p) { strcpy(p->cookie_name, "__Host-jpki.s_1"); }
static void p_path_rel(jpki_policy *p) { strcpy(p->cookie_path, "app"); }
static void p_path_semi(jpki_policy *p) { strcpy(p->cookie_path, "/a;b"); }
static void p_path_ok(jpki_policy *p) { strcpy(p->cookie_path, "/app/~x/"); }
static void p_ss_none_insecure(jpki_policy *p)
{
    strcpy(p->cookie_samesite, "None");
    p->cookie_secure = 0;
}
static void p_ss_none_secure(jpki_policy *p) { strcpy(p->cookie_samesite, "None"); }
static void p_ss_lower(jpki_policy *p) { strcpy(p->cookie_samesite, "lax"); }
static void p_ss_strict(jpki_policy *p) { strcpy(p->cookie_samesite, "Strict"); }
static void p_ss_bad(jpki_policy *p) { strcpy(p->cookie_samesite, "Loose"); }
static void p_lp_js(jpki_policy *p) { strcpy(p->login_page, "javascript:alert(1)"); }
static void p_lp_rel(jpki_policy *p) { strcpy(p->login_page, "login.html"); }
static void p_lp_crlf(jpki_policy *p) { strcpy(p->login_page, "/login\r\nX: y"); }
static void p_lp_quote(jpki_policy *p) { strcpy(p->login_page, "/login\""); }
static void p_lp_space(jpki_policy *p) { strcpy(p->login_page, "/log in"); }
static void p_lp_path(jpki_policy *p) { strcpy(p->login_page, "/login?next=%2F&a=b"); }
static void p_lp_https(jpki_policy *p) { strcpy(p->login_page, "https://idp.example:8443/login"); }

static void test_policy(void)
{
    char err[512];
    jpki_ctx *c;
    jpki_policy *p;

    POLICY_CASE(p_default, JPKI_OK, "defaults finish");
    POLICY_CASE(p_ttl_low, JPKI_ERR_INVALID, "challenge ttl 9");
    POLICY_CASE(p_ttl_10, JPKI_OK, "challenge ttl 10");
    POLICY_CASE(p_ttl_high, JPKI_ERR_INVALID, "challenge ttl 3601");
    POLICY_CASE(p_life_low, JPKI_ERR_INVALID, "session lifetime 9");
    POLICY_CASE(p_life_high, JPKI_ERR_INVALID, "session lifetime 30 days + 1 s");
    POLICY_CASE(p_life_max, JPKI_OK, "session lifetime 30 days");
    POLICY_CASE(p_idle_high, JPKI_ERR_INVALID, "idle timeout above lifetime");
    POLICY_CASE(p_idle_eq, JPKI_OK, "idle timeout equal to lifetime");
    POLICY_CASE(p_rev_bad, JPKI_ERR_INVALID, "rev_policy source out of range");
    POLICY_CASE(p_rev_many, JPKI_ERR_INVALID, "rev_policy: too many sources");
    POLICY_CASE(p_rev_twice, JPKI_ERR_INVALID, "rev_policy: a source twice");
    POLICY_CASE(p_name_space, JPKI_ERR_INVALID, "cookie name with a space");
    POLICY_CASE(p_name_semi, JPKI_ERR_INVALID, "cookie name with ;");
    POLICY_CASE(p_name_eq, JPKI_ERR_INVALID, "cookie name with =");
    POLICY_CASE(p_name_empty, JPKI_ERR_INVALID, "empty cookie name");
    POLICY_CASE(p_name_ok, JPKI_OK, "cookie name __Host-jpki.s_1");
    POLICY_CASE(p_path_rel, JPKI_ERR_INVALID, "cookie path not starting with /");
    POLICY_CASE(p_path_semi, JPKI_ERR_INVALID, "cookie path with ;");
    POLICY_CASE(p_path_ok, JPKI_OK, "cookie path /app/~x/");
    POLICY_CASE(p_ss_none_insecure, JPKI_ERR_INVALID,
                "SameSite=None without Secure");
    POLICY_CASE(p_ss_none_secure, JPKI_OK, "SameSite=None with Secure");
    POLICY_CASE(p_ss_strict, JPKI_OK, "SameSite=Strict");
    POLICY_CASE(p_ss_lower, JPKI_ERR_INVALID, "SameSite=lax (case)");
    POLICY_CASE(p_ss_bad, JPKI_ERR_INVALID, "SameSite=Loose");
    POLICY_CASE(p_lp_js, JPKI_ERR_INVALID, "login page javascript:");
    POLICY_CASE(p_lp_rel, JPKI_ERR_INVALID, "login page relative");
    POLICY_CASE(p_lp_crlf, JPKI_ERR_INVALID, "login page with CR LF");
    POLICY_CASE(p_lp_quote, JPKI_ERR_INVALID, "login page with a quote");
    POLICY_CASE(p_lp_space, JPKI_ERR_INVALID, "login page with a space");
    POLICY_CASE(p_lp_path, JPKI_OK, "login page /login?next=%%2F&a=b");
    POLICY_CASE(p_lp_https, JPKI_OK, "login page https://...");

    c = base_ctx();
    p = jpki_ctx_policy(c);
    ok(p != NULL, "policy pointer before finish");
    is_int(p->challenge_ttl, 120, "default challenge ttl");
    ok(p->rev_policy.n == 1 && p->rev_policy.src[0] == JPKI_REV_SRC_OCSP,
       "default rev policy: ocsp");
    is_str(p->cookie_name, "jpki_session", "default cookie name");
    is_int(p->chain_cache_size, 4096, "default chain cache size");
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "finish");
    ok(jpki_ctx_policy(c) == NULL, "policy pointer NULL after finish");
    ok(jpki_ctx_get_policy(c) != NULL
       && jpki_ctx_get_policy(c)->challenge_ttl == 120,
       "read-only site policy after finish");
    {
        /* a per-location copy is checked by the same rules */
        jpki_policy loc = *jpki_ctx_get_policy(c);
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_OK,
               "copy of the site policy checks");
        strcpy(loc.cookie_samesite, "None");
        loc.cookie_secure = 0;
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_ERR_INVALID,
               "copy with SameSite=None and no Secure refused");
        ok(strstr(err, "None needs Secure") != NULL, "message explains");
        /* cookie name prefixes: what browsers would drop silently */
        loc = *jpki_ctx_get_policy(c);
        strcpy(loc.cookie_name, "__Host-jpki");
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_OK,
               "__Host- cookie, Secure, path /: accepted");
        strcpy(loc.cookie_path, "/app");
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_ERR_INVALID,
               "__Host- cookie with path /app refused");
        ok(strstr(err, "__Host- name Secure and path /") != NULL,
           "message explains");
        strcpy(loc.cookie_path, "/");
        loc.cookie_secure = 0;
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_ERR_INVALID,
               "__Host- cookie without Secure refused");
        strcpy(loc.cookie_name, "__Secure-jpki");
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_ERR_INVALID,
               "__Secure- cookie without Secure refused");
        loc.cookie_secure = 1;
        strcpy(loc.cookie_path, "/app");
        is_int(jpki_policy_check(&loc, err, sizeof(err)), JPKI_OK,
               "__Secure- cookie, Secure, any path: accepted");
    }
    is_int(finish(c, err, sizeof(err)), JPKI_OK, "second finish is a no-op");
    jpki_ctx_free(c);
}

static void test_names(void)
{
    static const struct { const char *s; unsigned n; jpki_rev_source a, b; }
    rp[] = {
        {"none", 0, 0, 0}, {"ocsp", 1, JPKI_REV_SRC_OCSP, 0},
        {"crl", 1, JPKI_REV_SRC_CRL, 0},
        {"ocsp,crl", 2, JPKI_REV_SRC_OCSP, JPKI_REV_SRC_CRL},
        {"crl,ocsp", 2, JPKI_REV_SRC_CRL, JPKI_REV_SRC_OCSP}};
    static const char *bad[] = {"", "OCSP", "ocsp ", " ocsp", "ocsp,",
                                "ocsp, crl", "ocsp,crl,ocsp", "crl,", "oc",
                                "crl,crl", ",crl", "none,ocsp", "ocsp,,crl"};
    jpki_rev_policy p;
    size_t i;
    int a, all = 1;

    for (i = 0; i < sizeof(rp) / sizeof(rp[0]); i++) {
        memset(&p, 0x55, sizeof(p));
        ok(jpki_rev_policy_parse(rp[i].s, strlen(rp[i].s), &p) == JPKI_OK
           && p.n == rp[i].n && (p.n < 1 || p.src[0] == rp[i].a)
           && (p.n < 2 || p.src[1] == rp[i].b), "rev policy \"%s\"", rp[i].s);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jpki_rev_policy before;
        memset(&p, 0x55, sizeof(p));
        before = p;
        ok(jpki_rev_policy_parse(bad[i], strlen(bad[i]), &p)
           == JPKI_ERR_INVALID && memcmp(&p, &before, sizeof(p)) == 0,
           "rev policy \"%s\" refused, policy unchanged", bad[i]);
    }
    ok(jpki_rev_policy_parse("crlXYZ", 3, &p) == JPKI_OK && p.n == 1
       && p.src[0] == JPKI_REV_SRC_CRL, "rev policy parse honours len");
    is_str(jpki_rev_source_name(JPKI_REV_SRC_OCSP), "ocsp", "source name ocsp");
    is_str(jpki_rev_source_name(JPKI_REV_SRC_CRL), "crl", "source name crl");
    is_str(jpki_rev_source_name((jpki_rev_source)9), "unknown",
           "source name out of range");

    for (a = 0; a < JPKI__SIG_COUNT; a++) {
        const char *n = jpki_sig_alg_name((jpki_sig_alg)a);
        if (n == NULL || strcmp(n, "unknown") == 0
            || jpki_sig_alg_from_name(n, strlen(n)) != a)
            all = 0;
    }
    ok(all, "every signature algorithm name round trips");
    is_str(jpki_sig_alg_name(JPKI_SIG_RSA_PKCS1_SHA256), "rsa-pkcs1-sha256",
           "name of RSA SHA-256");
    is_str(jpki_sig_alg_name(JPKI_SIG_ECDSA_SHA384), "ecdsa-sha384",
           "name of ECDSA SHA-384");
    is_int(jpki_sig_alg_from_name("ecdsa-sha256", 12), JPKI_SIG_ECDSA_SHA256,
           "from_name ecdsa-sha256");
    is_int(jpki_sig_alg_from_name("ecdsa-sha25", 11), -1, "prefix unknown");
    is_int(jpki_sig_alg_from_name("ecdsa-sha2566", 13), -1, "longer unknown");
    is_int(jpki_sig_alg_from_name("RSA-PKCS1-SHA256", 16), -1, "case matters");
    is_int(jpki_sig_alg_from_name("", 0), -1, "empty unknown");
    is_str(jpki_sig_alg_name(JPKI__SIG_COUNT), "unknown", "name out of range");
    is_str(jpki_sig_alg_name((jpki_sig_alg)-1), "unknown", "name negative");
}

int main(void)
{
    NOW = time(NULL);
    test_secret_and_ring();
    test_secret_file();
    test_issuers();
    test_policy();
    test_names();
    return done_testing();
}
