/* test_cert.c - certificate checks against the test PKI: every file, link
 * certificates, weak algorithms in the path, input forms, malformed input,
 * time, the verified-chain cache, cert_id, and the real J-LIS CA
 * certificates. */
#include "internal.h"     /* jpki_cert_from_ref */
#include "tap.h"

#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

static time_t NOW;
static const uint8_t SECRET_A[32] = "secret-A-secret-A-secret-A-sec-A";
static const uint8_t SECRET_B[32] = "secret-B-secret-B-secret-B-sec-B";

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *b = NULL;
    if (jpki_load_file(path, 1 << 20, &b, len) != JPKI_OK) {
        printf("# cannot read %s (run make pki)\n", path);
        exit(1);
    }
    return b;
}

/* A finished ctx.  anchors/links: NULL-ended file lists of the issuer
 * "card"; phone != 0 adds issuer "phone" (phone-ca.pem). */
typedef struct {
    const char *const *files;
    int phone;
    const uint8_t *secret;
    int cache;            /* chain_cache_size; -1 = default */
    int no_policy;
} ctx_opts;

static jpki_ctx *make_ctx(const ctx_opts *o)
{
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, "card");
    const char *const *f;

    jpki_ctx_set_secret(c, o->secret ? o->secret : SECRET_A, 32);
    for (f = o->files; *f; f++)
        if (jpki_issuer_add_certs_file(is, tap_path(*f), err, sizeof(err))
            != JPKI_OK)
            printf("# %s: %s\n", *f, err);
    if (o->no_policy)
        jpki_issuer_set_policy(is, NULL);
    if (o->phone)
        jpki_issuer_add_certs_file(jpki_ctx_add_issuer(c, "phone"),
                                   tap_path("phone-ca.pem"), err, sizeof(err));
    if (o->cache >= 0)
        jpki_ctx_policy(c)->chain_cache_size = (unsigned)o->cache;
    if (jpki_ctx_finish(c, err, sizeof(err)) != JPKI_OK) {
        printf("# finish: %s\n", err);
        exit(1);
    }
    return c;
}

static const char *const ANCHORS[] = {"ca1.pem", "ca2.pem", NULL};
static const char *const ALL_CAS[] = {"all-cas.pem", NULL};

/* Checks a file of the PKI at t; the cert (or NULL) in *out if out. */
static jpki_err check_at(const jpki_ctx *c, const char *name, time_t t,
                         jpki_cert **out, char *detail, size_t dl)
{
    size_t n;
    uint8_t *b = slurp(tap_path(name), &n);
    jpki_cert *cert = NULL;
    jpki_err e = jpki_cert_check(c, b, n, t, &cert, detail, dl);
    free(b);
    if (out)
        *out = cert;
    else
        jpki_cert_free(cert);
    return e;
}

static jpki_err check(const jpki_ctx *c, const char *name)
{
    return check_at(c, name, NOW, NULL, NULL, 0);
}

/* Checks a buffer given by the test (exact-size copy for ASan). */
static jpki_err check_buf(const jpki_ctx *c, const void *b, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    jpki_cert *cert = (jpki_cert *)1;
    char detail[256] = "";
    jpki_err e;
    memcpy(copy, b, n);
    e = jpki_cert_check(c, copy, n, NOW, &cert, detail, sizeof(detail));
    free(copy);
    if (e != JPKI_OK && (cert != NULL || detail[0] == '\0'))
        e = JPKI_ERR_INTERNAL;       /* must clear *out and explain */
    jpki_cert_free(cert);
    return e;
}

static X509 *load_x509_path(const char *path)
{
    size_t n, dl;
    uint8_t *b = slurp(path, &n), *der;
    const unsigned char *p;
    X509 *x;
    jpki_to_der(b, n, "CERTIFICATE", 1 << 20, &der, &dl);
    p = der;
    x = d2i_X509(NULL, &p, (long)dl);
    free(der);
    free(b);
    return x;
}

static X509 *load_x509(const char *name)
{
    return load_x509_path(tap_path(name));
}

static char *serial_hex(const char *name)
{
    static char out[128];
    X509 *x = load_x509(name);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = BN_bn2hex(bn);
    snprintf(out, sizeof(out), "%s", h);
    OPENSSL_free(h);
    BN_free(bn);
    X509_free(x);
    return out;
}

static time_t x509_time(const ASN1_TIME *t)
{
    struct tm tm;
    ASN1_TIME_to_tm(t, &tm);
    return timegm(&tm);
}

/* ---- every file of the PKI ---------------------------------------- */

static const struct { const char *stem; jpki_err want; } expect[] = {
    {"user1", JPKI_OK}, {"user2", JPKI_OK}, {"user-old", JPKI_OK},
    {"user-ec", JPKI_OK}, {"phone-user", JPKI_OK}, {"phone-user384", JPKI_OK},
    {"user-old-revoked", JPKI_OK},
    {"rev-unspecified", JPKI_OK}, {"rev-keyCompromise", JPKI_OK},
    {"rev-cACompromise", JPKI_OK}, {"rev-affiliationChanged", JPKI_OK},
    {"rev-superseded", JPKI_OK}, {"rev-cessationOfOperation", JPKI_OK},
    {"rev-certificateHold", JPKI_OK},
    {"user-expired", JPKI_ERR_CERT_EXPIRED},
    {"user-notyet", JPKI_ERR_CERT_NOT_YET_VALID},
    {"user-isca", JPKI_ERR_CERT_IS_CA},
    {"user-keyenc", JPKI_ERR_CERT_KEY_USAGE},
    {"user-nopolicy", JPKI_ERR_CERT_POLICY},
    {"user-otherpolicy", JPKI_ERR_CERT_POLICY},
    {"user-rsa1024", JPKI_ERR_CERT_KEY},
    {"user-foreign", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"user-sha1", JPKI_ERR_CERT_SIG_ALG},
    /* issued under CAs all-cas.pem lacks (see test_weak_algorithms) */
    {"user-ca3", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"user-under-rsa1024", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"user-sha1self", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"ca3", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"ca-sha1self", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"link-ca3-with-ca2-sha1", JPKI_ERR_CERT_IS_CA},
    {"link-rsa1024", JPKI_ERR_CERT_IS_CA},
    {"ca1", JPKI_ERR_CERT_IS_CA}, {"ca2", JPKI_ERR_CERT_IS_CA},
    {"link-new-with-old", JPKI_ERR_CERT_IS_CA},
    {"link-old-with-new", JPKI_ERR_CERT_IS_CA},
    {"all-cas", JPKI_ERR_CERT_IS_CA},         /* first PEM block: ca1 */
    {"phone-ca", JPKI_ERR_CERT_IS_CA},
    {"other-ca", JPKI_ERR_CERT_UNKNOWN_ISSUER},
    {"ocsp", JPKI_ERR_CERT_POLICY}, {"ocsp1", JPKI_ERR_CERT_POLICY},
    {"ocsp-noeku", JPKI_ERR_CERT_POLICY}, {"phone-ocsp", JPKI_ERR_CERT_POLICY},
    {"ocsp-foreign", JPKI_ERR_CERT_UNKNOWN_ISSUER},
};

static void test_every_file(void)
{
    ctx_opts o = {ALL_CAS, 1, NULL, -1, 0};
    jpki_ctx *c = make_ctx(&o);
    struct dirent **list = NULL, *de;
    int nent = scandir(tap_pki_dir(), &list, NULL, alphasort), k;
    size_t i, seen = 0, others = 0, others_ok = 1;
    char path[1024], stem[256], detail[256];

    if (nent < 0) {
        printf("# no PKI at %s (run make pki)\n", tap_pki_dir());
        exit(1);
    }
    for (k = 0; k < nent; k++) {
        struct stat st;
        const char *dot;
        jpki_err e;
        int found = 0;

        de = list[k];
        snprintf(path, sizeof(path), "%s/%s", tap_pki_dir(), de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(stem, sizeof(stem), "%s", de->d_name);
        dot = strrchr(stem, '.');
        if (dot && (strcmp(dot, ".pem") == 0 || strcmp(dot, ".der") == 0))
            stem[dot - stem] = '\0';
        detail[0] = '\0';
        e = check_at(c, de->d_name, NOW, NULL, detail, sizeof(detail));
        for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
            if (strcmp(expect[i].stem, stem) == 0) {
                found = 1;
                seen++;
                is_int(e, expect[i].want, "%s: %s", de->d_name,
                       jpki_reason(expect[i].want));
                if (e != JPKI_OK) {
                    ok(detail[0] != '\0'
                       && strstr(detail, serial_hex(de->d_name)) == NULL,
                       "%s: detail without serial (%s)", de->d_name, detail);
                }
            }
        if (!found) {            /* keys, CRLs, CA databases ... */
            others++;
            if (e == JPKI_OK) {
                printf("# %s unexpectedly checks\n", de->d_name);
                others_ok = 0;
            }
        }
    }
    for (k = 0; k < nent; k++)
        free(list[k]);
    free(list);
    ok(seen >= 50, "%zu certificate files checked", seen);
    ok(others > 20 && others_ok, "%zu other files (keys, CRLs...) refused",
       others);
    jpki_ctx_free(c);

    /* phone leaves need the phone issuer */
    {
        ctx_opts o2 = {ANCHORS, 0, NULL, -1, 0};
        c = make_ctx(&o2);
        is_int(check(c, "phone-user.pem"), JPKI_ERR_CERT_UNKNOWN_ISSUER,
               "phone-user without the phone issuer");
        is_int(check(c, "user-old.pem"), JPKI_OK, "user-old with ca1+ca2");
        jpki_ctx_free(c);
    }
}

static void test_links_and_policy(void)
{
    static const char *const ca2_link[] = {"ca2.pem", "link-old-with-new.pem",
                                           NULL};
    static const char *const ca1_link[] = {"ca1.pem", "link-new-with-old.pem",
                                           NULL};
    static const char *const ca2_only[] = {"ca2.pem", NULL};
    ctx_opts o = {ca2_link, 0, NULL, -1, 0};
    jpki_ctx *c = make_ctx(&o), *d;
    jpki_cert *a = NULL, *b = NULL;

    is_int(check_at(c, "user-old.pem", NOW, &a, NULL, 0), JPKI_OK,
           "user-old with only ca2 + link-old-with-new");
    is_int(check(c, "user1.pem"), JPKI_OK, "user1 with ca2 + link");
    o.files = ANCHORS;
    d = make_ctx(&o);
    is_int(check_at(d, "user-old.pem", NOW, &b, NULL, 0), JPKI_OK,
           "user-old with ca1 + ca2");
    ok(a && b && strcmp(jpki_cert_id_hex(a), jpki_cert_id_hex(b)) == 0,
       "cert_id does not depend on the path (link or anchor)");
    jpki_cert_free(a);
    jpki_cert_free(b);
    jpki_ctx_free(c);
    jpki_ctx_free(d);

    o.files = ca1_link;
    c = make_ctx(&o);
    is_int(check(c, "user1.pem"), JPKI_OK,
           "user1 with only ca1 + link-new-with-old");
    jpki_ctx_free(c);
    o.files = ca2_only;
    c = make_ctx(&o);
    is_int(check(c, "user-old.pem"), JPKI_ERR_CERT_UNKNOWN_ISSUER,
           "user-old with ca2 alone");
    jpki_ctx_free(c);

    o.files = ANCHORS;
    o.no_policy = 1;
    c = make_ctx(&o);
    is_int(check(c, "user-nopolicy.pem"), JPKI_OK,
           "user-nopolicy ok when the issuer requires no policy");
    is_int(check(c, "user-otherpolicy.pem"), JPKI_OK,
           "user-otherpolicy ok when the issuer requires no policy");
    is_int(check(c, "user-keyenc.pem"), JPKI_ERR_CERT_KEY_USAGE,
           "other checks still apply");
    jpki_ctx_free(c);
    {
        char err[256];
        jpki_issuer *is;
        c = jpki_ctx_new();
        jpki_ctx_set_secret(c, SECRET_A, 32);
        is = jpki_ctx_add_issuer(c, "card");
        jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err, sizeof(err));
        jpki_issuer_set_policy(is, "1.2.392.200149.8.5.1.1.10");
        jpki_ctx_finish(c, err, sizeof(err));
        is_int(check(c, "user-otherpolicy.pem"), JPKI_OK,
               "user-otherpolicy ok with its own policy required");
        is_int(check(c, "user1.pem"), JPKI_ERR_CERT_POLICY,
               "user1 refused under that policy");
        jpki_ctx_free(c);
    }
}

/* Makes the temporary directory dir (a mkdtemp template) with ext.cnf:
 * the extensions of a CA ([ca]) and of a user-authentication leaf ([e]). */
static void make_dir_ext(char *dir)
{
    char path[PATH_MAX];
    FILE *f;

    if (mkdtemp(dir) == NULL) {
        diag("mkdtemp failed");
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/ext.cnf", dir);
    if ((f = fopen(path, "w")) == NULL) {
        diag("cannot write ext.cnf");
        exit(1);
    }
    fprintf(f, "[ca]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier = hash\n"
            "[e]\nbasicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature\n"
            "certificatePolicies = " JPKI_POLICY_JPKI_AUTH "\n"
            "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n");
    fclose(f);
}

/* Checks the certificate file at path a minute from now (openssl has just
 * issued it: notBefore is now); the detail in detail. */
static jpki_err check_new_file(const jpki_ctx *c, const char *path,
                               char *detail, size_t dl)
{
    size_t n;
    uint8_t *b = slurp(path, &n);
    jpki_cert *x = NULL;
    jpki_err e = jpki_cert_check(c, b, n, time(NULL) + 60, &x, detail, dl);
    jpki_cert_free(x);
    free(b);
    return e;
}

/* Removes a test's temporary directory and what it holds. */
static void remove_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        diag("cannot remove the temp dir");
}

/* Leaves with keys the PKI lacks, issued by ca2 with the openssl CLI:
 * only RSA >= 2048 and EC P-256/P-384 may log in. */
static void test_key_types(void)
{
    static const struct { const char *name, *gen; jpki_err want; } k[] = {
        {"p256", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", JPKI_OK},
        {"p521", "-algorithm EC -pkeyopt ec_paramgen_curve:P-521",
         JPKI_ERR_CERT_KEY},
        {"k256", "-algorithm EC -pkeyopt ec_paramgen_curve:secp256k1",
         JPKI_ERR_CERT_KEY},
        {"ed25519", "-algorithm ED25519", JPKI_ERR_CERT_KEY},
        /* a type the certificate context does not decode at all */
        {"dsa", "-paramfile dsa.par", JPKI_ERR_CERT_KEY},
    };
    ctx_opts o = {ANCHORS, 0, NULL, 0, 0};
    jpki_ctx *c = make_ctx(&o);
    char dir[] = "/tmp/jpki-certk-XXXXXX", cmd[3 * PATH_MAX], path[512];
    char ca[PATH_MAX], cakey[PATH_MAX];
    size_t i;

    if (realpath(tap_path("ca2.pem"), ca) == NULL
        || realpath(tap_path("ca2.key"), cakey) == NULL) {
        diag("realpath failed");
        exit(1);
    }
    make_dir_ext(dir);
    snprintf(cmd, sizeof(cmd), "cd %s && openssl genpkey -genparam -algorithm "
             "DSA -pkeyopt dsa_paramgen_bits:1024 -out dsa.par >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        diag("cannot make DSA parameters");
    for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        size_t n;
        uint8_t *b = NULL;
        jpki_cert *x = NULL;
        char detail[256] = "";
        snprintf(cmd, sizeof(cmd),
                 "cd %s && openssl genpkey %s -out %s.key && "
                 "openssl req -new -key %s.key -subj /CN=%s/C=JP -out %s.csr && "
                 "openssl x509 -req -in %s.csr -CA %s -CAkey %s -days 30 "
                 "-set_serial %zu -extfile ext.cnf -extensions e -out %s.pem",
                 dir, k[i].gen, k[i].name, k[i].name, k[i].name, k[i].name,
                 k[i].name, ca, cakey, 1000 + i, k[i].name);
        strncat(cmd, " >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
        snprintf(path, sizeof(path), "%s/%s.pem", dir, k[i].name);
        if (system(cmd) != 0 || jpki_load_file(path, 1 << 20, &b, &n) != JPKI_OK) {
            printf("ok %d # skip cannot make a %s leaf with openssl\n", ++tap_n,
                   k[i].name);
            continue;
        }
        /* notBefore is when openssl ran: check a minute later */
        is_int(jpki_cert_check(c, b, n, time(NULL) + 60, &x, detail,
                               sizeof(detail)), k[i].want,
               "%s leaf: %s", k[i].name, jpki_reason(k[i].want));
        ok(k[i].want == JPKI_OK || strstr(detail, "key type not allowed"),
           "%s leaf: the detail says why: %s", k[i].name, detail);
        jpki_cert_free(x);
        free(b);
    }
    remove_dir(dir);
    jpki_ctx_free(c);
}

/* The certificate context lives while a site context does (run first,
 * when no other is alive): shared by two, freed with the last. */
static void test_cert_context_life(void)
{
    jpki_ctx *a, *b;
    OSSL_LIB_CTX *lc;

    ok(jpki_libctx() == NULL, "no site context: none");
    a = jpki_ctx_new();
    lc = jpki_libctx();
    b = jpki_ctx_new();
    ok(lc != NULL && jpki_libctx() == lc, "two site contexts: one, shared");
    jpki_ctx_free(a);
    ok(jpki_libctx() == lc, "one left: still there");
    jpki_ctx_free(b);
    ok(jpki_libctx() == NULL, "the last freed: freed with it");
    a = jpki_ctx_new();
    ok(jpki_libctx() != NULL, "a new site context: made again");
    jpki_ctx_free(a);
}

/* A leaf of ca2 signed with SHA-224 (u.csr and ext.cnf in dir), parsed and
 * verified in the certificate context: refused for its digest, by name, as
 * in the default context (not as a certificate no CA key signed). */
static void weak_digest_leaf(const char *dir)
{
    ctx_opts o = {ANCHORS, 0, NULL, 0, 0};
    jpki_ctx *c = make_ctx(&o);
    char cmd[3 * PATH_MAX], ca[PATH_MAX], cakey[PATH_MAX], path[PATH_MAX];
    char detail[256] = "";

    if (realpath(tap_path("ca2.pem"), ca) == NULL
        || realpath(tap_path("ca2.key"), cakey) == NULL) {
        diag("realpath failed");
        exit(1);
    }
    snprintf(cmd, sizeof(cmd), "cd %s && openssl x509 -req -in u.csr -CA %s "
             "-CAkey %s -days 30 -set_serial 8 -sha224 -extfile ext.cnf "
             "-extensions e -out u224.pem >/dev/null 2>&1", dir, ca, cakey);
    if (system(cmd) != 0) {
        printf("ok %d # skip cannot make a SHA-224 leaf\n", ++tap_n);
    } else {
        snprintf(path, sizeof(path), "%s/u224.pem", dir);
        is_int(check_new_file(c, path, detail, sizeof(detail)),
               JPKI_ERR_CERT_SIG_ALG,
               "a leaf signed with SHA-224: refused for it (%s)", detail);
    }
    jpki_ctx_free(c);
}

/* The library context certificates are parsed in (common/libctx.c): made
 * in this default configuration; a CA key of a type it must keep (Ed25519:
 * a CA key of 128 bits of security may sign) still signs a leaf that logs
 * in; DER with a byte after the certificate is refused. */
static void test_cert_context(void)
{
    char dir[] = "/tmp/jpki-certx-XXXXXX", cmd[2 * PATH_MAX], path[PATH_MAX];
    char err[256], detail[256] = "";
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, "ed");
    uint8_t *b, *b2;
    size_t n;
    X509 *y;

    ok(jpki_libctx() != NULL, "the certificate context is made");
    make_dir_ext(dir);
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl genpkey -algorithm ED25519 -out ca.key && "
             "openssl req -x509 -new -key ca.key -subj /CN=EdCA/C=JP -days 30 "
             "-config ext.cnf -extensions ca -out ca.pem && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out u.key && openssl req -new -key u.key -subj /CN=u/C=JP "
             "-config ext.cnf -out u.csr && openssl x509 -req -in u.csr -CA "
             "ca.pem -CAkey ca.key -days 30 -set_serial 7 -extfile ext.cnf "
             "-extensions e -out u.pem >/dev/null 2>&1", dir);
    if (system(cmd) != 0) {
        printf("ok %d # skip cannot make an Ed25519 CA with openssl\n",
               ++tap_n);
    } else {
        weak_digest_leaf(dir);
        snprintf(path, sizeof(path), "%s/ca.pem", dir);
        ok(jpki_ctx_set_secret(c, SECRET_A, 32) == JPKI_OK
           && jpki_issuer_add_certs_file(is, path, err, sizeof(err)) == JPKI_OK
           && jpki_ctx_finish(c, err, sizeof(err)) == JPKI_OK,
           "an Ed25519 CA is an anchor");
        snprintf(path, sizeof(path), "%s/u.pem", dir);
        is_int(check_new_file(c, path, detail, sizeof(detail)), JPKI_OK,
               "a leaf it signed logs in %s", detail);
    }
    remove_dir(dir);
    jpki_ctx_free(c);

    b = slurp(tap_path("user1.der"), &n);
    y = jpki_d2i_x509(b, n);
    ok(y != NULL && X509_get0_pubkey(y) != NULL, "user1 parses, with its key");
    X509_free(y);
    b2 = malloc(n + 1);
    memcpy(b2, b, n);
    b2[n] = 0;
    ok(jpki_d2i_x509(b2, n + 1) == NULL && jpki_d2i_x509(b2, n - 1) == NULL,
       "a byte more or less: refused");
    free(b2);
    free(b);
}

/* ---- weak algorithms in the path --------------------------------- */

/* Checks name under the CA files (NULL-ended) twice, the second time
 * through the verified-chain cache: want both times; when refused, the
 * detail names role and alg and no serial. */
static void check_path_rule(const char *const *cas, const char *name,
                            jpki_err want, const char *role, const char *alg)
{
    ctx_opts o = {cas, 0, NULL, -1, 0};
    jpki_ctx *c = make_ctx(&o);
    char detail[256], under[256] = "";
    int i;

    for (i = 0; cas[i]; i++)
        snprintf(under + strlen(under), sizeof(under) - strlen(under),
                 "%s%s", i ? " + " : "", cas[i]);
    for (i = 0; i < 2; i++) {
        jpki_cert *x = NULL;
        detail[0] = '\0';
        is_int(check_at(c, name, NOW, &x, detail, sizeof(detail)), want,
               "%s under %s: %s", name, under,
               i ? "again (cache)" : jpki_reason(want));
        ok(want != JPKI_OK || (x != NULL && !jpki_cert_cached(x) == !i),
           "%s: %s", name, want != JPKI_OK ? "refused, so never cached"
                           : i ? "cached the second time" : "not cached yet");
        jpki_cert_free(x);
    }
    if (want != JPKI_OK)
        ok(strstr(detail, role) != NULL && strstr(detail, alg) != NULL
           && strstr(detail, serial_hex(name)) == NULL,
           "%s: detail names %s and %s, no serial (%s)", name, role, alg,
           detail);
    jpki_ctx_free(c);
}

/* A revocation reference (as sealed in a session) to a certificate issued
 * by the key of the CA file at path ca: what jpki_cert_from_ref makes of
 * it. */
static jpki_err from_ref_under(const jpki_ctx *c, const char *ca)
{
    X509 *x = load_x509_path(ca);
    const ASN1_BIT_STRING *k = X509_get0_pubkey_bitstr(x);
    uint8_t ref[21];
    unsigned int khl = 0;
    jpki_cert *r = NULL;
    jpki_err e;

    EVP_Digest(k->data, (size_t)k->length, ref, &khl, EVP_sha1(), NULL);
    ref[20] = 0x42;                          /* serial 0x42 */
    X509_free(x);
    e = jpki_cert_from_ref(c, ref, sizeof(ref), &r);
    ok((e == JPKI_OK) == (r != NULL), "from_ref %s: *out set on success only",
       ca);
    jpki_cert_free(r);
    return e;
}

/* Any certificate of the path (leaf, link, intermediate) signed with a
 * digest weaker than SHA-256, or a CA key that signs one too weak, is
 * refused with cert_signature_algorithm; an anchor's own self-signature is
 * not checked. */
static void test_weak_algorithms(void)
{
    static const char *const ca2_sha1link[] = {
        "ca2.pem", "link-ca3-with-ca2-sha1.pem", NULL};
    static const char *const ca2_weaklink[] = {
        "ca2.pem", "link-rsa1024.pem", NULL};
    static const char *const ca3[] = {"ca3.pem", NULL};
    static const char *const sha1self[] = {"ca-sha1self.pem", NULL};
    static const char *const ca2_with_links[] = {
        "ca2.pem", "link-ca3-with-ca2-sha1.pem", "link-rsa1024.pem", NULL};
    ctx_opts o = {ca2_with_links, 0, NULL, -1, 0};
    jpki_ctx *c;

    check_path_rule(ANCHORS, "user-sha1.pem", JPKI_ERR_CERT_SIG_ALG,
                    "leaf", "sha1WithRSAEncryption");
    check_path_rule(ANCHORS, "user-sha1.der", JPKI_ERR_CERT_SIG_ALG,
                    "leaf", "sha1WithRSAEncryption");
    check_path_rule(ca2_sha1link, "user-ca3.pem", JPKI_ERR_CERT_SIG_ALG,
                    "link or intermediate", "sha1WithRSAEncryption");
    check_path_rule(ca2_weaklink, "user-under-rsa1024.pem",
                    JPKI_ERR_CERT_SIG_ALG, "link or intermediate",
                    "RSA, 1024 bits");
    /* the same leaves through strong paths */
    check_path_rule(ca3, "user-ca3.pem", JPKI_OK, NULL, NULL);
    check_path_rule(sha1self, "user-sha1self.pem", JPKI_OK, NULL, NULL);
    check_path_rule(ca2_sha1link, "user1.pem", JPKI_OK, NULL, NULL);

    /* a session's revocation re-check: the issuing CA key must be strong */
    c = make_ctx(&o);
    is_int(from_ref_under(c, tap_path("link-rsa1024.pem")),
           JPKI_ERR_CERT_SIG_ALG,
           "session under the RSA 1024 CA key: cert_signature_algorithm");
    is_int(from_ref_under(c, tap_path("ca2.pem")), JPKI_OK,
           "session under ca2's key: accepted");
    jpki_ctx_free(c);
}

/* ---- input forms and malformed input ------------------------------ */

static void test_inputs(void)
{
    ctx_opts o = {ANCHORS, 0, NULL, 0, 0};
    jpki_ctx *c = make_ctx(&o);
    size_t derlen, pemlen, i, bad = 0;
    uint8_t *der = slurp(tap_path("user1.der"), &derlen);
    uint8_t *pem = slurp(tap_path("user1.pem"), &pemlen), *buf;
    char *b64 = malloc(jpki_b64_encoded_len(derlen, 0) + 1);
    jpki_cert *x = NULL;
    char id[3][JPKI_CERT_ID_HEX_LEN + 1];

    jpki_b64_encode(der, derlen, b64, 0);
    ok(jpki_cert_check(c, der, derlen, NOW, &x, NULL, 0) == JPKI_OK, "DER");
    snprintf(id[0], sizeof(id[0]), "%s", x ? jpki_cert_id_hex(x) : "");
    jpki_cert_free(x);
    ok(jpki_cert_check(c, pem, pemlen, NOW, &x, NULL, 0) == JPKI_OK, "PEM");
    snprintf(id[1], sizeof(id[1]), "%s", x ? jpki_cert_id_hex(x) : "");
    jpki_cert_free(x);
    ok(jpki_cert_check(c, (uint8_t *)b64, strlen(b64), NOW, &x, NULL, 0)
       == JPKI_OK, "bare base64");
    snprintf(id[2], sizeof(id[2]), "%s", x ? jpki_cert_id_hex(x) : "");
    jpki_cert_free(x);
    ok(strcmp(id[0], id[1]) == 0 && strcmp(id[0], id[2]) == 0,
       "same cert_id from the three forms");

    is_int(check_buf(c, "garbage!", 8), JPKI_ERR_CERT_PARSE, "garbage");
    is_int(check_buf(c, "", 0), JPKI_ERR_CERT_PARSE, "empty");
    is_int(check_buf(c, "\x30", 1), JPKI_ERR_CERT_PARSE, "lone 0x30");
    is_int(check_buf(c, "\x30\x00", 2), JPKI_ERR_CERT_PARSE, "empty SEQUENCE");
    for (i = 1; i < derlen; i++)         /* every truncation */
        if (check_buf(c, der, i) != JPKI_ERR_CERT_PARSE)
            bad++;
    ok(bad == 0, "every truncated DER (1..%zu bytes) is CERT_PARSE", derlen - 1);
    buf = malloc(derlen + 1);
    memcpy(buf, der, derlen);
    buf[derlen] = 0;
    is_int(check_buf(c, buf, derlen + 1), JPKI_ERR_CERT_PARSE,
           "DER with a trailing byte");
    free(buf);
    is_int(check_buf(c, b64, strlen(b64) - 4), JPKI_ERR_CERT_PARSE,
           "base64 missing its last group");
    {
        /* a flipped bit in the signature: no CA key verifies it */
        uint8_t *t = malloc(derlen);
        memcpy(t, der, derlen);
        t[derlen - 5] ^= 1;
        is_int(check_buf(c, t, derlen), JPKI_ERR_CERT_UNKNOWN_ISSUER,
               "tampered signature: no issuer key verifies it");
        free(t);
    }
    {
        /* the same in certificates that fail other checks too: no
         * configured key signed them, whatever else is wrong (the issuer
         * is taken from the one key the AKI names, its signature checked
         * in the path; a refusal checks it first) */
        static const char *const other[] = {
            "user-nopolicy.pem", "user-expired.pem", "user-keyenc.pem",
            "user-isca.pem", "user-sha1.pem"};
        size_t k;
        for (k = 0; k < sizeof(other) / sizeof(other[0]); k++) {
            X509 *y = load_x509(other[k]);
            uint8_t *t = NULL;
            int n = y != NULL ? i2d_X509(y, &t) : -1;
            ok(n > 5, "%s loads", other[k]);
            if (n <= 5)
                continue;
            t[n - 5] ^= 1;
            is_int(check_buf(c, t, (size_t)n), JPKI_ERR_CERT_UNKNOWN_ISSUER,
                   "%s with a tampered signature: no issuer key verifies it",
                   other[k]);
            t[n - 5] ^= 1;
            ok(check_buf(c, t, (size_t)n) != JPKI_ERR_CERT_UNKNOWN_ISSUER,
               "%s as issued: refused for what is wrong with it",
               other[k]);
            OPENSSL_free(t);
            X509_free(y);
        }
    }
    {
        size_t big = JPKI_MAX_CERT_LEN + 1;
        uint8_t *t = calloc(1, big * 3);
        t[0] = 0x30;
        is_int(check_buf(c, t, big), JPKI_ERR_TOO_LARGE, "DER over 16 KiB");
        memset(t, 'A', big * 3);
        is_int(check_buf(c, t, big * 3), JPKI_ERR_TOO_LARGE,
               "base64 of 48 KiB");
        memcpy(t, "MII", 3);
        is_int(check_buf(c, t, JPKI_MAX_CERT_LEN * 2), JPKI_ERR_TOO_LARGE,
               "base64 decoding over 16 KiB");
        free(t);
    }
    {
        const char *crl = "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n";
        is_int(check_buf(c, crl, strlen(crl)), JPKI_ERR_CERT_PARSE,
               "PEM of another label");
    }
    {
        jpki_ctx *u = jpki_ctx_new();
        x = (jpki_cert *)1;
        is_int(jpki_cert_check(u, der, derlen, NOW, &x, NULL, 0),
               JPKI_ERR_INVALID, "ctx not finished");
        ok(x == NULL, "out cleared");
        jpki_ctx_free(u);
    }
    free(b64);
    free(der);
    free(pem);
    jpki_ctx_free(c);
}

/* ---- time and cache ---------------------------------------------- */

static void test_time_and_cache(void)
{
    ctx_opts o = {ANCHORS, 0, NULL, 0, 0};
    jpki_ctx *nc = make_ctx(&o), *c;
    X509 *x = load_x509("user1.pem");
    time_t nb = x509_time(X509_get0_notBefore(x)),
           na = x509_time(X509_get0_notAfter(x));
    jpki_cert *a = NULL, *b = NULL;
    jpki_err e_nb, e_na;
    X509_free(x);

    /* no cache */
    is_int(check_at(nc, "user1.pem", NOW - 2 * 86400, NULL, NULL, 0),
           JPKI_ERR_CERT_NOT_YET_VALID, "before notBefore");
    is_int(check_at(nc, "user1.pem", nb - 1, NULL, NULL, 0),
           JPKI_ERR_CERT_NOT_YET_VALID, "1 s before notBefore");
    e_nb = check_at(nc, "user1.pem", nb, NULL, NULL, 0);
    is_int(e_nb, JPKI_OK, "at notBefore");
    is_int(check_at(nc, "user1.pem", na - 1, NULL, NULL, 0), JPKI_OK,
           "1 s before notAfter");
    e_na = check_at(nc, "user1.pem", na, NULL, NULL, 0);
    ok(e_na == JPKI_OK || e_na == JPKI_ERR_CERT_EXPIRED, "at notAfter: %s",
       jpki_reason(e_na));
    is_int(check_at(nc, "user1.pem", na + 1, NULL, NULL, 0),
           JPKI_ERR_CERT_EXPIRED, "after notAfter");
    is_int(check_at(nc, "user1.pem", NOW + 10 * 366 * 86400, NULL, NULL, 0),
           JPKI_ERR_CERT_EXPIRED, "10 years on (CA expired too)");
    is_int(check_at(nc, "user-expired.pem", NOW - 30 * 86400, NULL, NULL, 0),
           JPKI_OK, "user-expired at a time it was valid");
    is_int(check_at(nc, "user-notyet.pem", NOW + 3 * 86400, NULL, NULL, 0),
           JPKI_OK, "user-notyet once valid");
    check_at(nc, "user1.pem", NOW, &a, NULL, 0);
    check_at(nc, "user1.pem", NOW, &b, NULL, 0);
    ok(a && b && !jpki_cert_cached(a) && !jpki_cert_cached(b),
       "chain_cache_size=0: never cached");
    ok(a && jpki_cert_not_after(a) == na, "not_after is the leaf's notAfter "
       "(earliest along the path)");
    ok(a && jpki_cert_issuer(a) == jpki_ctx_issuer(nc, 0), "issuer of the cert");
    jpki_cert_free(a);
    jpki_cert_free(b);

    /* default cache */
    o.cache = -1;
    c = make_ctx(&o);
    check_at(c, "user1.pem", NOW, &a, NULL, 0);
    check_at(c, "user1.pem", NOW, &b, NULL, 0);
    ok(a && !jpki_cert_cached(a), "first check not cached");
    ok(b && jpki_cert_cached(b), "second check cached");
    ok(a && b && strcmp(jpki_cert_id_hex(a), jpki_cert_id_hex(b)) == 0,
       "cached check gives the same cert_id");
    ok(a && b && jpki_cert_not_after(a) == jpki_cert_not_after(b)
       && jpki_cert_issuer(a) == jpki_cert_issuer(b),
       "cached check gives the same not_after and issuer");
    jpki_cert_free(a);
    jpki_cert_free(b);
    is_int(check_at(c, "user1.pem", NOW + 10 * 366 * 86400, &a, NULL, 0),
           JPKI_ERR_CERT_EXPIRED, "cached entry not used 10 years on");
    is_int(check_at(c, "user1.pem", na + 1, &a, NULL, 0),
           JPKI_ERR_CERT_EXPIRED, "cached entry not used after notAfter");
    is_int(check_at(c, "user1.pem", nb - 1, &a, NULL, 0),
           JPKI_ERR_CERT_NOT_YET_VALID, "cached entry not used before notBefore");
    is_int(check_at(c, "user1.pem", na, NULL, NULL, 0), e_na,
           "cached entry at notAfter agrees with a fresh check");
    is_int(check_at(c, "user1.pem", nb, NULL, NULL, 0), e_nb,
           "cached entry at notBefore agrees with a fresh check");
    check_at(c, "user1.pem", NOW, &a, NULL, 0);
    ok(a && jpki_cert_cached(a), "entry still cached for now");
    jpki_cert_free(a);
    is_int(check(c, "user-keyenc.pem"), JPKI_ERR_CERT_KEY_USAGE,
           "failed checks ...");
    is_int(check(c, "user-keyenc.pem"), JPKI_ERR_CERT_KEY_USAGE,
           "... are not cached");
    jpki_ctx_free(c);

    /* one slot: every certificate collides; the fingerprint decides */
    o.cache = 1;
    c = make_ctx(&o);
    check_at(c, "user1.pem", NOW, &a, NULL, 0);
    check_at(c, "user2.pem", NOW, &b, NULL, 0);
    ok(b && !jpki_cert_cached(b), "another cert in the same slot: not a hit");
    ok(a && b && strcmp(jpki_cert_id_hex(a), jpki_cert_id_hex(b)) != 0,
       "and its own cert_id");
    jpki_cert_free(a);
    jpki_cert_free(b);
    check_at(c, "user1.pem", NOW, &a, NULL, 0);
    ok(a && !jpki_cert_cached(a), "user1 was evicted by user2");
    jpki_cert_free(a);
    check_at(c, "user1.pem", NOW, &a, NULL, 0);
    ok(a && jpki_cert_cached(a), "user1 cached again");
    jpki_cert_free(a);
    {
        /* the cached path must not leak across input forms either */
        size_t n;
        uint8_t *der = slurp(tap_path("user1.der"), &n);
        ok(jpki_cert_check(c, der, n, NOW, &a, NULL, 0) == JPKI_OK
           && jpki_cert_cached(a), "DER of a cert checked as PEM: cache hit");
        jpki_cert_free(a);
        free(der);
    }
    jpki_ctx_free(c);
    jpki_ctx_free(nc);
}

/* ---- cert_id ------------------------------------------------------ */

static int is_lower_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static char *cert_id_of(const jpki_ctx *c, const char *name)
{
    static char out[4][JPKI_CERT_ID_HEX_LEN + 1];
    static int i;
    char *o = out[i++ & 3];
    jpki_cert *x = NULL;
    o[0] = '\0';
    if (check_at(c, name, NOW, &x, NULL, 0) == JPKI_OK)
        snprintf(o, JPKI_CERT_ID_HEX_LEN + 1, "%s", jpki_cert_id_hex(x));
    jpki_cert_free(x);
    return o;
}

static void test_cert_id(void)
{
    ctx_opts oa = {ANCHORS, 0, SECRET_A, -1, 0};
    ctx_opts ob = {ANCHORS, 0, SECRET_B, -1, 0};
    jpki_ctx *a1 = make_ctx(&oa), *a2 = make_ctx(&oa), *b = make_ctx(&ob);
    char *id = cert_id_of(a1, "user1.pem"), want[JPKI_CERT_ID_HEX_LEN + 1];
    char out[JPKI_CERT_ID_HEX_LEN + 1], cmd[1024], line[256], dec[512];
    X509 *ca2 = load_x509("ca2.pem"), *u1 = load_x509("user1.pem");
    const ASN1_BIT_STRING *k = X509_get0_pubkey_bitstr(ca2);
    uint8_t kh[20], ser[64], mac[32], msg[84];
    unsigned int khl = 0, macl = 0;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(u1), NULL);
    int sl = BN_bn2bin(bn, ser);
    const jpki_issuer *is = jpki_ctx_issuer(a1, 0);
    FILE *f;

    ok(is_lower_hex(id, 32), "cert_id is 32 lower-case hex chars (%s)", id);
    is_str(cert_id_of(a2, "user1.pem"), id, "same secret, same cert_id");
    ok(strcmp(cert_id_of(b, "user1.pem"), id) != 0,
       "another secret, another cert_id");
    ok(strcmp(cert_id_of(a1, "user2.pem"), id) != 0,
       "another cert, another cert_id");

    /* the definition: HMAC-SHA256(secret, SHA-1(CA key) || serial)[0..16] */
    EVP_Digest(k->data, (size_t)k->length, kh, &khl, EVP_sha1(), NULL);
    memcpy(msg, kh, 20);
    memcpy(msg + 20, ser, (size_t)sl);
    HMAC(EVP_sha256(), SECRET_A, 32, msg, 20 + (size_t)sl, mac, &macl);
    {
        size_t i;
        for (i = 0; i < 16; i++)
            sprintf(want + 2 * i, "%02x", mac[i]);
    }
    is_str(id, want, "cert_id = HMAC-SHA256(secret, keyhash || serial), 16 bytes");
    ok(jpki_cert_id_compute(a1, kh, 20, ser, (size_t)sl, out) == JPKI_OK
       && strcmp(out, id) == 0, "jpki_cert_id_compute agrees");
    {
        uint8_t z[65] = {0};
        memcpy(z + 2, ser, (size_t)sl);
        ok(jpki_cert_id_compute(a1, kh, 20, z, (size_t)sl + 2, out) == JPKI_OK
           && strcmp(out, id) == 0, "leading zero octets ignored");
        is_int(jpki_cert_id_compute(a1, kh, 19, ser, (size_t)sl, out),
               JPKI_ERR_INVALID, "key hash of 19 bytes refused");
        memset(z, 0xff, sizeof(z));
        is_int(jpki_cert_id_compute(a1, kh, 20, z, 65, out), JPKI_ERR_INVALID,
               "serial of 65 bytes refused");
        ok(jpki_cert_id_compute(a1, kh, 20, z, 64, out) == JPKI_OK,
           "serial of 64 bytes");
    }
    {
        jpki_ctx *nos = jpki_ctx_new();
        is_int(jpki_cert_id_compute(nos, kh, 20, ser, (size_t)sl, out),
               JPKI_ERR_INVALID, "no secret: refused");
        jpki_ctx_free(nos);
    }

    /* from the serial as an operator reads it */
    snprintf(cmd, sizeof(cmd), "openssl x509 -serial -noout -in %s",
             tap_path("user1.pem"));
    f = popen(cmd, "r");
    line[0] = '\0';
    if (f == NULL || fgets(line, sizeof(line), f) == NULL)
        diag("openssl x509 -serial failed");
    if (f)
        pclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    ok(strncmp(line, "serial=", 7) == 0, "openssl printed %s", line);
    {
        char hx[600], *d;
        BIGNUM *b2 = NULL;
        snprintf(hx, sizeof(hx), "0x%s", line + 7);
        is_int(jpki_cert_id_from_serial_text(a1, is, hx, out), JPKI_OK,
               "hex serial accepted");
        is_str(out, id, "cert_id from 0x-hex serial (last anchor ca2)");
        hx[1] = 'X';
        jpki_cert_id_from_serial_text(a1, is, hx, out);
        is_str(out, id, "0X prefix");
        for (d = hx + 2; *d; d++)
            *d = (char)(*d >= 'A' && *d <= 'F' ? *d + 32 : *d);
        hx[1] = 'x';
        jpki_cert_id_from_serial_text(a1, is, hx, out);
        is_str(out, id, "lower-case hex");
        BN_hex2bn(&b2, line + 7);
        d = BN_bn2dec(b2);
        snprintf(dec, sizeof(dec), "%s", d);
        OPENSSL_free(d);
        BN_free(b2);
        is_int(jpki_cert_id_from_serial_text(a1, is, dec, out), JPKI_OK,
               "decimal serial accepted");
        is_str(out, id, "cert_id from decimal serial");
        snprintf(hx, sizeof(hx), "000%s", dec);
        jpki_cert_id_from_serial_text(a1, is, hx, out);
        is_str(out, id, "leading zeros in decimal");
    }
    {
        /* ca2 first, ca1 last: the serial text is taken as ca1's */
        static const char *const rev[] = {"ca2.pem", "ca1.pem", NULL};
        ctx_opts orv = {rev, 0, SECRET_A, -1, 0};
        jpki_ctx *r = make_ctx(&orv);
        jpki_cert_id_from_serial_text(r, jpki_ctx_issuer(r, 0), dec, out);
        ok(strcmp(out, id) != 0, "with ca1 as the last anchor: another id");
        jpki_ctx_free(r);
    }
    {
        static const char *const badtxt[] = {"", "0x", "0X", "12a", "0xZZ",
            " 123", "123 ", "1 2", "-5", "0x-5", "+5", "1.5", "1e9", "0x0x1",
            "\xef\xbc\x91"};
        char longtxt[200];
        size_t i;
        for (i = 0; i < sizeof(badtxt) / sizeof(badtxt[0]); i++) {
            jpki_err e = jpki_cert_id_from_serial_text(a1, is, badtxt[i], out);
            ok(e == JPKI_ERR_PARSE || e == JPKI_ERR_INVALID,
               "serial text \"%s\" refused (%s)", badtxt[i], jpki_reason(e));
        }
        ok(jpki_cert_id_from_serial_text(a1, is, NULL, out) != JPKI_OK,
           "NULL refused");
        memset(longtxt, '9', 161);
        longtxt[161] = '\0';
        is_int(jpki_cert_id_from_serial_text(a1, is, longtxt, out),
               JPKI_ERR_INVALID, "161 digits refused");
        longtxt[160] = '\0';
        is_int(jpki_cert_id_from_serial_text(a1, is, longtxt, out),
               JPKI_ERR_PARSE, "160 decimal digits: over 64 bytes");
        longtxt[0] = '0';
        longtxt[1] = 'x';
        memset(longtxt + 2, 'f', 130);
        longtxt[132] = '\0';
        is_int(jpki_cert_id_from_serial_text(a1, is, longtxt, out),
               JPKI_ERR_PARSE, "65 bytes of hex refused");
        longtxt[130] = '\0';
        is_int(jpki_cert_id_from_serial_text(a1, is, longtxt, out), JPKI_OK,
               "64 bytes of hex");
    }
    {
        jpki_ctx *u = jpki_ctx_new();
        jpki_issuer *e = jpki_ctx_add_issuer(u, "empty");
        jpki_ctx_set_secret(u, SECRET_A, 32);
        is_int(jpki_cert_id_from_serial_text(u, e, "5", out), JPKI_ERR_INVALID,
               "issuer without anchor refused");
        jpki_ctx_free(u);
    }
    BN_free(bn);
    X509_free(ca2);
    X509_free(u1);
    jpki_ctx_free(a1);
    jpki_ctx_free(a2);
    jpki_ctx_free(b);
}

/* ---- the real J-LIS CA certificates ------------------------------- */

#define REAL_TESTS 11

static void test_real_cas(void)
{
    const char *dir = getenv("JPKI_REAL_CA_DIR");
    char p15[1024], p23[1024], err[256], detail[256];
    struct stat st;
    jpki_ctx *c;
    jpki_issuer *is;
    jpki_cert *x = NULL;
    uint8_t *b;
    size_t n;
    int i;

    if (dir == NULL || *dir == '\0')
        dir = "/work/shared/data/jpki-ca";
    snprintf(p15, sizeof(p15), "%s/auth_ca_2015.pem", dir);
    snprintf(p23, sizeof(p23), "%s/auth_ca_2023.pem", dir);
    if (stat(dir, &st) != 0 || stat(p15, &st) != 0 || stat(p23, &st) != 0) {
        for (i = 0; i < REAL_TESTS; i++)
            printf("ok %d # skip no J-LIS CA certificates in %s\n", ++tap_n,
                   dir);
        return;
    }
    c = jpki_ctx_new();
    jpki_ctx_set_secret(c, SECRET_A, 32);
    is = jpki_ctx_add_issuer(c, "jpki-auth");
    is_int(jpki_issuer_add_certs_file(is, p15, err, sizeof(err)), JPKI_OK,
           "J-LIS auth CA 2015 loads");
    is_int(jpki_issuer_add_certs_file(is, p23, err, sizeof(err)), JPKI_OK,
           "J-LIS auth CA 2023 loads");
    is_int(jpki_ctx_finish(c, err, sizeof(err)), JPKI_OK,
           "finish with the real anchors");
    ok(is_lower_hex(jpki_issuer_tag(is), 16), "issuer tag %s",
       jpki_issuer_tag(is));
    b = slurp(p23, &n);
    is_int(jpki_cert_check(c, b, n, NOW, &x, detail, sizeof(detail)),
           JPKI_ERR_CERT_IS_CA, "the 2023 CA cannot log in");
    free(b);
    b = slurp(p15, &n);
    is_int(jpki_cert_check(c, b, n, NOW, &x, detail, sizeof(detail)),
           JPKI_ERR_CERT_IS_CA, "the 2015 CA cannot log in");
    free(b);
    is_int(check(c, "user1.pem"), JPKI_ERR_CERT_UNKNOWN_ISSUER,
           "a test user is not issued by J-LIS");
    /* their keys are strong enough to sign (RSA 2048): sessions under
     * them pass the re-check's key rule */
    is_int(from_ref_under(c, p15), JPKI_OK, "the 2015 CA key may sign");
    is_int(from_ref_under(c, p23), JPKI_OK, "the 2023 CA key may sign");
    jpki_ctx_free(c);
}

int main(void)
{
    NOW = time(NULL);
    test_cert_context_life();
    test_every_file();
    test_links_and_policy();
    test_weak_algorithms();
    test_key_types();
    test_cert_context();
    test_inputs();
    test_time_and_cache();
    test_cert_id();
    test_real_cas();
    return done_testing();
}
