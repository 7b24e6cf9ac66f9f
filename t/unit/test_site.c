/* test_site.c - a site's build, the part that is no server's (site.c):
 * the secret file, the site values into the policy and the adapters'
 * waits, an issuer added and set up from its spec, the limit on issuers,
 * the sentences for a site directive that no site takes. */
#include "site.h"
#include "tap.h"

#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static void test_values(void)
{
    jpki_conf_values v;
    jpki_site_times t;
    jpki_ctx *c = jpki_ctx_new();
    char err[256];

    jpki_conf_init(&v);
    memset(&t, 0xff, sizeof(t));
    jpki_site_values(c, &v, &t);
    is_int((int)t.redis_timeout_ms, 1000, "jpki_redis_timeout default 1s");
    is_int((int)t.redis_connect_timeout_ms, 1000,
           "jpki_redis_connect_timeout default 1s");
    is_int((int)t.ocsp_timeout_ms, 3000, "jpki_ocsp_timeout default 3s");
    is_int((int)jpki_ctx_policy(c)->challenge_ttl, 120,
           "jpki_challenge_ttl not written: the core's default");

    ok(jpki_conf_set(&v, JPKI_D_REDIS_TIMEOUT, "250ms", err, sizeof(err))
       == JPKI_OK, "jpki_redis_timeout 250ms");
    ok(jpki_conf_set(&v, JPKI_D_REDIS_CONNECT_TIMEOUT, "2s", err,
                     sizeof(err)) == JPKI_OK, "jpki_redis_connect_timeout 2s");
    ok(jpki_conf_set(&v, JPKI_D_OCSP_TIMEOUT, "1500ms", err, sizeof(err))
       == JPKI_OK, "jpki_ocsp_timeout 1500ms");
    ok(jpki_conf_set(&v, JPKI_D_CRL_GRACE, "1h", err, sizeof(err))
       == JPKI_OK, "jpki_crl_grace 1h");
    ok(jpki_conf_set(&v, JPKI_D_CHALLENGE_TTL, "60s", err, sizeof(err))
       == JPKI_OK, "jpki_challenge_ttl 60s");
    jpki_site_values(c, &v, &t);
    is_int((int)t.redis_timeout_ms, 250, "jpki_redis_timeout in ms");
    is_int((int)t.redis_connect_timeout_ms, 2000,
           "jpki_redis_connect_timeout in ms");
    is_int((int)t.ocsp_timeout_ms, 1500, "jpki_ocsp_timeout in ms");
    is_int((int)t.crl_grace, 3600, "jpki_crl_grace in seconds");
    is_int((int)jpki_ctx_policy(c)->challenge_ttl, 60,
           "jpki_challenge_ttl into the site's policy");

    /* no context (an nginx block that is no site): the waits only */
    jpki_site_values(NULL, &v, &t);
    is_int((int)t.redis_timeout_ms, 250, "no context: the waits still");
    jpki_ctx_free(c);
}

static jpki_err parse(jpki_conf_issuer *spec, const char *name,
                      const char *ca, char *err, size_t errlen)
{
    char caw[1100];
    const char *argv[2];

    snprintf(caw, sizeof(caw), "ca=%s", ca);
    argv[0] = name;
    argv[1] = caw;
    return jpki_conf_issuer_parse(spec, argv, 2, err, errlen);
}

static void test_issuers(void)
{
    jpki_ctx *c = jpki_ctx_new();
    jpki_conf_issuer spec;
    jpki_issuer *is;
    char err[256], name[16];
    int i, all = 1;

    ok(parse(&spec, "card", tap_path("ca2.pem"), err, sizeof(err))
       == JPKI_OK, "jpki_issuer card ca=ca2.pem parses");
    err[0] = '\0';
    ok(jpki_site_issuer(c, &spec, &is, err, sizeof(err)) == JPKI_OK
       && is != NULL, "the issuer is added and set up");
    is_int((int)jpki_ctx_issuer_count(c), 1, "one issuer in the context");

    /* the same name again: refused, with the name's predicate */
    err[0] = '\0';
    ok(jpki_site_issuer(c, &spec, &is, err, sizeof(err)) != JPKI_OK
       && is == NULL, "jpki_issuer card twice: refused, no issuer");
    is_str(err, JPKI_SITE_ISSUER_NAME, "the sentence names the rule");
    jpki_conf_issuer_free(&spec);

    /* a CA file that is no certificate: the issuer is there, the
     * sentence is the file's */
    ok(parse(&spec, "bad", tap_path("ca2.pem"), err, sizeof(err))
       == JPKI_OK, "jpki_issuer bad parses");
    free(spec.ca[0]);
    spec.ca[0] = strdup("/nonexistent/jpki-site-test.pem");
    err[0] = '\0';
    ok(jpki_site_issuer(c, &spec, &is, err, sizeof(err)) != JPKI_OK
       && is != NULL && err[0] != '\0'
       && strcmp(err, JPKI_SITE_ISSUER_NAME) != 0,
       "a CA file that does not load: its own sentence");
    jpki_conf_issuer_free(&spec);

    /* up to the limit, then refused */
    for (i = (int)jpki_ctx_issuer_count(c); i < 16; i++) {
        snprintf(name, sizeof(name), "i%d", i);
        all &= !jpki_site_issuers_full(jpki_ctx_issuer_count(c));
        all &= parse(&spec, name, tap_path("ca2.pem"), err, sizeof(err))
               == JPKI_OK
               && jpki_site_issuer(c, &spec, &is, err, sizeof(err))
                  == JPKI_OK;
        jpki_conf_issuer_free(&spec);
    }
    ok(all, "16 issuers are taken, and the site is not full before");
    ok(jpki_site_issuers_full(16), "16 issuers: full");
    ok(!jpki_site_issuers_full(15), "15 issuers: not full");
    ok(parse(&spec, "seventeen", tap_path("ca2.pem"), err, sizeof(err))
       == JPKI_OK
       && jpki_site_issuer(c, &spec, &is, err, sizeof(err)) != JPKI_OK
       && is == NULL, "a 17th issuer: refused");
    is_str(err, JPKI_SITE_ISSUER_NAME, "the 17th: the same sentence");
    jpki_conf_issuer_free(&spec);
    jpki_ctx_free(c);
}

/* A secret file of mode with one secret line, at a fresh temp path. */
static const char *secret_file(char *path, size_t len, mode_t mode)
{
    static const char line[] = "secret 303132333435363738396162636465663031"
                               "3233343536373839616263646566\n";
    int fd;

    snprintf(path, len, "/tmp/jpki-site-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, line, sizeof(line) - 1)
                  != (ssize_t)(sizeof(line) - 1)) {
        printf("# cannot write a temp file\n");
        exit(1);
    }
    close(fd);
    chmod(path, mode);
    return path;
}

static void test_secret(void)
{
    jpki_ctx *c = jpki_ctx_new();
    char path[64], err[256];

    secret_file(path, sizeof(path), 0600);
    ok(jpki_site_secret(NULL, path, err, sizeof(err)) == JPKI_OK,
       "jpki_secret_file tried without a context");
    ok(jpki_site_secret(c, path, err, sizeof(err)) == JPKI_OK,
       "jpki_secret_file read into the site's context");
    chmod(path, 0644);
    err[0] = 'x';
    ok(jpki_site_secret(NULL, path, err, sizeof(err)) != JPKI_OK
       && err[0] != '\0' && err[0] != 'x',
       "a secret file others may read: refused, with a sentence: %s", err);
    unlink(path);
    err[0] = '\0';
    ok(jpki_site_secret(c, path, err, sizeof(err)) != JPKI_OK
       && err[0] != '\0', "a secret file not there: a sentence: %s", err);
    jpki_ctx_free(c);
}

static void test_finish(void)
{
    jpki_ctx *c = jpki_ctx_new();
    jpki_conf_issuer spec;
    jpki_issuer *is;
    char path[64], err[256];

    ok(jpki_site_finish(JPKI_SERVER_NGINX, c, 0, 1, 1, err, sizeof(err))
       != JPKI_OK && strstr(err, "\"jpki_secret_file\" is required") != NULL,
       "no jpki_secret_file: the pieces' sentence: %s", err);
    ok(jpki_site_finish(JPKI_SERVER_APACHE, c, 1, 0, 1, err, sizeof(err))
       != JPKI_OK && strstr(err, "\"JPKIIssuer\" is required") != NULL,
       "no JPKIIssuer: in Apache's words: %s", err);
    ok(jpki_site_finish(JPKI_SERVER_NGINX, c, 1, 1, 0, err, sizeof(err))
       != JPKI_OK && strstr(err, "\"jpki_store\" is required") != NULL,
       "no jpki_store: %s", err);
    /* the pieces said to be there, but the context has no issuer */
    err[0] = '\0';
    ok(jpki_site_finish(JPKI_SERVER_NGINX, c, 1, 1, 1, err, sizeof(err))
       != JPKI_OK && err[0] != '\0',
       "a context that cannot finish: its sentence: %s", err);
    jpki_ctx_free(c);

    c = jpki_ctx_new();
    secret_file(path, sizeof(path), 0600);
    ok(jpki_site_secret(c, path, err, sizeof(err)) == JPKI_OK
       && parse(&spec, "card", tap_path("ca2.pem"), err, sizeof(err))
          == JPKI_OK
       && jpki_site_issuer(c, &spec, &is, err, sizeof(err)) == JPKI_OK,
       "a site: secret file and issuer");
    unlink(path);
    jpki_conf_issuer_free(&spec);
    ok(jpki_site_finish(JPKI_SERVER_APACHE, c, 1, 1, 1, err, sizeof(err))
       == JPKI_OK, "the site finishes");
    jpki_ctx_free(c);
}

static void test_unused(void)
{
    const char *s;

    s = jpki_site_unused(JPKI_SERVER_NGINX, JPKI_SITE_UNUSED_TOP);
    ok(strstr(s, "the http block has no site (jpki_secret_file, jpki_issuer "
                 "and jpki_store)") != NULL, "nginx, http block: %s", s);
    s = jpki_site_unused(JPKI_SERVER_NGINX, JPKI_SITE_UNUSED_INHERITS);
    ok(strstr(s, "this server inherits the site of the http block") == s,
       "nginx, inheriting server: %s", s);
    s = jpki_site_unused(JPKI_SERVER_NGINX, JPKI_SITE_UNUSED_ALONE);
    ok(strstr(s, "this server has no site, nor has the http block; give "
                 "this server its own jpki_secret_file") == s,
       "nginx, server alone: %s", s);
    s = jpki_site_unused(JPKI_SERVER_APACHE, JPKI_SITE_UNUSED_TOP);
    ok(strstr(s, "the main server has no site (JPKISecretFile, JPKIIssuer "
                 "and JPKIStore)") == s, "Apache, main server: %s", s);
    s = jpki_site_unused(JPKI_SERVER_APACHE, JPKI_SITE_UNUSED_ALONE);
    ok(strstr(s, "this virtual host has no site, nor has the main server; "
                 "give this virtual host its own JPKISecretFile") == s,
       "Apache, virtual host alone: %s", s);
    ok(strstr(jpki_site_unused(JPKI_SERVER_APACHE, JPKI_SITE_UNUSED_INHERITS),
              "jpki_") == NULL, "Apache's sentences never in nginx's words");
}

int main(void)
{
    test_values();
    test_issuers();
    test_unused();
    test_secret();
    test_finish();
    return done_testing();
}
