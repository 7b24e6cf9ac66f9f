/* test_siteconf.c - a site's configuration as written (siteconf.c) and the
 * site built from it (site.c: jpki_site_build and a process's files):
 * each site directive's grammar and its refusals, duplicates, the issuers'
 * names and limit, the store's TLS file, the CRL zone's words, what a
 * virtual host takes from the main server, the pieces a site needs, the
 * mapping file and the CRLs watched, the health answer. */
#include "site.h"
#include "gate.h"
#include "siteconf.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int warnings, abs_calls;

static void warn(void *ud, const char *msg)
{
    (void)ud;
    (void)msg;
    warnings++;
}

/* "rel/NAME" is the PKI's NAME, as a server root would make it. */
static const char *absp(void *ud, const char *p)
{
    (void)ud;
    abs_calls++;
    if (strncmp(p, "rel/", 4) == 0)
        return tap_path(p + 4);
    return p[0] == '/' ? p : NULL;
}

static const jpki_sc_env env = {absp, warn, NULL, "jpki_x", "site.conf", 7};

/* "password_file=FILE", FILE a new file of mode mode holding pw. */
static const char *pw_word(const char *pw, mode_t mode)
{
    static char word[8][128];
    static int n;
    char *w = word[n++ & 7];
    char path[64];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/jpki-siteconf-pw-%d-%d", (int)getpid(),
             n);
    f = fopen(path, "w");
    if (f == NULL)
        exit(2);
    fprintf(f, "%s\n", pw);
    fclose(f);
    chmod(path, mode);
    snprintf(w, sizeof(word[0]), "password_file=%s", path);
    return w;
}

/* The files pw_word() wrote, removed. */
static void pw_cleanup(void)
{
    char path[64];
    int i;

    for (i = 1; i <= 8; i++) {
        snprintf(path, sizeof(path), "/tmp/jpki-siteconf-pw-%d-%d",
                 (int)getpid(), i);
        unlink(path);
    }
}

#define SET1(sc, d, a)                                                      \
    jpki_siteconf_set(sc, d, 1, (const char *const[]){a}, &env, err,       \
                      sizeof(err))

static const char *write_file(char *path, size_t len, const char *text,
                              mode_t mode)
{
    int fd;

    snprintf(path, len, "/tmp/jpki-sc-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        printf("# cannot write a temp file\n");
        exit(1);
    }
    close(fd);
    chmod(path, mode);
    return path;
}

static const char secret_text[] = "secret 3031323334353637383961626364656630"
                                  "313233343536373839616263646566\n";

static jpki_err issuer(jpki_siteconf *sc, const char *name, const char *ca,
                       char *err, size_t errlen)
{
    char caw[1100];
    const char *argv[2] = {name, caw};

    snprintf(caw, sizeof(caw), "ca=%s", ca);
    return jpki_siteconf_set(sc, JPKI_SC_ISSUER, 2, argv, &env, err, errlen);
}

static void test_directives(void)
{
    jpki_siteconf *sc = jpki_siteconf_new();
    const char *file, *name;
    char path[64], err[512], nm[16];
    unsigned line;
    int i, all = 1;

    ok(!jpki_siteconf_is_site(sc) && jpki_siteconf_first(sc, &file, &line)
       == NULL, "nothing written: no site, no first directive");
    ok(jpki_siteconf_value(sc, JPKI_D_CHALLENGE_TTL, "60s", &env, err,
                           sizeof(err)) == JPKI_OK
       && !jpki_siteconf_is_site(sc), "a site value alone: no site yet");
    ok(jpki_siteconf_first(sc, &file, &line) != NULL
       && !strcmp(file, "site.conf") && line == 7,
       "the first site directive and where it is written are kept");
    ok(jpki_siteconf_unused(sc, JPKI_SERVER_NGINX, JPKI_SITE_UNUSED_TOP, err,
                            sizeof(err)) > 0
       && strncmp(err, "\"jpki_x\" here has no effect: the http block has no "
                  "site", 52) == 0 && strstr(err, " in site.conf:7") != NULL,
       "the sentence for a site directive no site takes: %s", err);
    {
        jpki_siteconf *none = jpki_siteconf_new();

        ok(jpki_siteconf_unused(none, JPKI_SERVER_APACHE,
                                JPKI_SITE_UNUSED_ALONE, err, sizeof(err))
           == 0, "none written: nothing to refuse");
        jpki_siteconf_free(none);
    }

    /* the secret file: read now, once */
    write_file(path, sizeof(path), secret_text, 0600);
    ok(SET1(sc, JPKI_SC_SECRET, path) == JPKI_OK && jpki_siteconf_is_site(sc)
       && !strcmp(jpki_siteconf_secret(sc), path), "secret file taken");
    ok(SET1(sc, JPKI_SC_SECRET, path) != JPKI_OK
       && !strcmp(err, "is duplicate"), "secret file twice: %s", err);
    unlink(path);
    {
        jpki_siteconf *s2 = jpki_siteconf_new();

        ok(SET1(s2, JPKI_SC_SECRET, path) != JPKI_OK && err[0],
           "a secret file not there: refused where written: %s", err);
        ok(SET1(s2, JPKI_SC_SECRET, "not/absolute") != JPKI_OK
           && strstr(err, "invalid path") != NULL,
           "a path the server cannot make absolute: %s", err);
        jpki_siteconf_free(s2);
    }

    /* issuers: paths from the server's root, names unique, at most 16 */
    abs_calls = 0;
    ok(issuer(sc, "card", "rel/ca2.pem", err, sizeof(err)) == JPKI_OK
       && abs_calls > 0 && jpki_siteconf_issuers(sc) == 1
       && !strcmp(jpki_siteconf_issuer(sc, 0)->ca[0], tap_path("ca2.pem")),
       "an issuer, its CA file made absolute by the server");
    ok(issuer(sc, "card", tap_path("ca1.pem"), err, sizeof(err)) != JPKI_OK
       && !strcmp(err, JPKI_SITE_ISSUER_NAME), "the same name: %s", err);
    ok(issuer(sc, "nofile", "/nonexistent/ca.pem", err, sizeof(err))
       != JPKI_OK && err[0] && jpki_siteconf_issuers(sc) == 1,
       "a CA file that does not load: refused where written: %s", err);
    ok(jpki_siteconf_set(sc, JPKI_SC_ISSUER, 1, (const char *const[]){"x"},
                         &env, err, sizeof(err)) != JPKI_OK && err[0],
       "an issuer without ca=: %s", err);
    for (i = 1; i < 16; i++) {
        snprintf(nm, sizeof(nm), "i%d", i);
        all &= issuer(sc, nm, tap_path("ca2.pem"), err, sizeof(err))
               == JPKI_OK;
    }
    ok(all && jpki_siteconf_issuers(sc) == 16, "16 issuers taken");
    ok(issuer(sc, "seventeen", tap_path("ca2.pem"), err, sizeof(err))
       != JPKI_OK && !strcmp(err, JPKI_SITE_ISSUER_NAME),
       "a 17th issuer: refused where written");

    /* the store: the core's grammar; tls_ca= from the root, tried now */
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 1, (const char *const[]){"disk"},
                         &env, err, sizeof(err)) != JPKI_OK && err[0]
       && jpki_siteconf_store(sc) == NULL, "a store of no kind: %s", err);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 3,
                         (const char *const[]){"redis=127.0.0.1:1",
                                               "tls=on",
                                               "tls_ca=/nonexistent/ca.pem"},
                         &env, err, sizeof(err)) != JPKI_OK
       && strstr(err, "cannot load tls_ca") != NULL
       && jpki_siteconf_store(sc) == NULL,
       "a tls_ca= that does not load: %s", err);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 5,
                         (const char *const[]){"redis=127.0.0.1:1",
                                               "tls=on", "tls_ca=rel/ca2.pem",
                                               pw_word("p", 0600), "db=3"},
                         &env, err, sizeof(err)) == JPKI_OK
       && jpki_siteconf_store(sc)->kind == JPKI_STORE_KIND_REDIS
       && !strcmp(jpki_siteconf_tls_ca(sc), tap_path("ca2.pem"))
       && jpki_siteconf_redis_tls(sc) != NULL,
       "a Redis store with TLS, its context loaded once, here: %s", err);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 1, (const char *const[]){"shm"},
                         &env, err, sizeof(err)) != JPKI_OK
       && !strcmp(err, "is duplicate"), "a second store: %s", err);
    warnings = 0;
    {
        jpki_siteconf *s2 = jpki_siteconf_new();

        ok(jpki_siteconf_set(s2, JPKI_SC_STORE, 2,
                             (const char *const[]){"shm", "zone=z:1m"},
                             &env, err, sizeof(err)) == JPKI_OK
           && warnings == 1, "the old spelling: taken, with a warning");
        jpki_siteconf_free(s2);
    }

    /* the mapping file: there now */
    ok(SET1(sc, JPKI_SC_MAP, "/nonexistent/map") != JPKI_OK
       && strstr(err, "mapping file") != NULL && !jpki_siteconf_map(sc),
       "a mapping file not there: %s", err);
    write_file(path, sizeof(path), "", 0644);
    ok(SET1(sc, JPKI_SC_MAP, path) == JPKI_OK
       && !strcmp(jpki_siteconf_map(sc), path), "a mapping file");
    ok(SET1(sc, JPKI_SC_MAP, path) != JPKI_OK, "a second mapping file");
    unlink(path);

    /* the CRL zone: off, SIZE, NAME:SIZE */
    ok(SET1(sc, JPKI_SC_CRL_ZONE, "crlz:64m") == JPKI_OK
       && jpki_siteconf_crl_zone(sc, &name) == 64 * 1024 * 1024
       && !strcmp(name, "crlz"), "jpki_crl_zone crlz:64m");
    ok(SET1(sc, JPKI_SC_CRL_ZONE, "1m") != JPKI_OK
       && !strcmp(err, "is duplicate"), "a second CRL zone");
    ok(jpki_siteconf_set(sc, JPKI_SC_SECRET, 2,
                         (const char *const[]){"a", "b"}, &env, err,
                         sizeof(err)) != JPKI_OK
       && !strcmp(err, "takes one value"), "two secret files: %s", err);
    jpki_siteconf_free(sc);
}

static void test_crl_zone_words(void)
{
    uint64_t size;
    char name[64], err[256];

    ok(jpki_conf_crl_zone("off", &size, name, sizeof(name), err, sizeof(err))
       == JPKI_OK && size == 0, "off");
    ok(jpki_conf_crl_zone("OFF", &size, name, sizeof(name), err, sizeof(err))
       == JPKI_OK && size == 0, "OFF");
    ok(jpki_conf_crl_zone("64M", &size, name, sizeof(name), err, sizeof(err))
       == JPKI_OK && size == 64ULL << 20 && name[0] == '\0',
       "SIZE alone: no name");
    ok(jpki_conf_crl_zone("32k", &size, name, sizeof(name), err, sizeof(err))
       == JPKI_OK && size == 32768, "32k: the least");
    ok(jpki_conf_crl_zone("31k", &size, name, sizeof(name), err, sizeof(err))
       != JPKI_OK && strstr(err, "at least 32k") != NULL, "31k: %s", err);
    ok(jpki_conf_crl_zone(":1m", &size, name, sizeof(name), err, sizeof(err))
       != JPKI_OK, ":1m: no name");
    ok(jpki_conf_crl_zone("z:", &size, name, sizeof(name), err, sizeof(err))
       != JPKI_OK, "z: no size");
    ok(jpki_conf_crl_zone("z:lots", &size, name, sizeof(name), err,
                          sizeof(err)) != JPKI_OK, "z:lots");
}

static void test_inherit(void)
{
    jpki_siteconf *base = jpki_siteconf_new(), *vh = jpki_siteconf_new();
    char path[64], err[512];
    const char *name;

    write_file(path, sizeof(path), secret_text, 0600);
    ok(SET1(base, JPKI_SC_SECRET, path) == JPKI_OK
       && issuer(base, "card", tap_path("ca2.pem"), err, sizeof(err))
          == JPKI_OK
       && SET1(base, JPKI_SC_CRL_ZONE, "1m") == JPKI_OK
       && jpki_siteconf_value(base, JPKI_D_CHALLENGE_TTL, "60s", &env, err,
                              sizeof(err)) == JPKI_OK, "the main server's");
    ok(jpki_siteconf_set(vh, JPKI_SC_STORE, 1, (const char *const[]){"shm"},
                         &env, err, sizeof(err)) == JPKI_OK
       && jpki_siteconf_value(vh, JPKI_D_CLOCK_SKEW, "10s", &env, err,
                              sizeof(err)) == JPKI_OK, "a virtual host's");
    jpki_siteconf_inherit(vh, base);
    ok(jpki_siteconf_secret(vh) == jpki_siteconf_secret(base)
       && jpki_siteconf_issuers(vh) == 1
       && jpki_siteconf_store(vh)->kind == JPKI_STORE_KIND_SHM
       && jpki_siteconf_store(base) == NULL
       && jpki_siteconf_crl_zone(vh, &name) == 1024 * 1024,
       "the virtual host takes what it does not write");
    ok(jpki_conf_num(jpki_siteconf_values(vh), JPKI_D_CHALLENGE_TTL) == 60
       && jpki_conf_num(jpki_siteconf_values(vh), JPKI_D_CLOCK_SKEW) == 10,
       "its values over the main server's");
    unlink(path);
    jpki_siteconf_free(vh);
    jpki_siteconf_free(base);
}

static void test_build(void)
{
    jpki_siteconf *sc = jpki_siteconf_new();
    jpki_site *s = NULL;
    jpki_crlzone *z;
    jpki_crlzone_ops ops;
    char secret[64], map[64], err[512], out[256], text[200], *h;
    size_t len;
    int okh;
    jpki_health hc;

    ok(jpki_site_build(sc, JPKI_SERVER_NGINX, NULL, NULL, &s, err,
                       sizeof(err)) != JPKI_OK && s == NULL
       && strstr(err, "\"jpki_secret_file\" is required") != NULL,
       "nothing written: the pieces' sentence: %s", err);
    write_file(secret, sizeof(secret), secret_text, 0600);
    snprintf(text, sizeof(text), "%032d acct-1\n", 7);
    write_file(map, sizeof(map), text, 0644);
    ok(SET1(sc, JPKI_SC_SECRET, secret) == JPKI_OK
       && issuer(sc, "card", tap_path("ca2.pem"), err, sizeof(err))
          == JPKI_OK, "secret and issuer");
    ok(jpki_site_build(sc, JPKI_SERVER_APACHE, NULL, NULL, &s, err,
                       sizeof(err)) != JPKI_OK
       && strstr(err, "\"JPKIStore\" is required") != NULL,
       "no store: in Apache's words: %s", err);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 4,
                         (const char *const[]){"redis=127.0.0.1:1",
                                               "user=gate",
                                               pw_word("pw", 0600), "db=2"},
                         &env, err, sizeof(err)) == JPKI_OK
       && SET1(sc, JPKI_SC_MAP, map) == JPKI_OK
       && jpki_siteconf_value(sc, JPKI_D_REDIS_TIMEOUT, "250ms", &env, err,
                              sizeof(err)) == JPKI_OK, "store, map, a wait");
    ok(jpki_site_build(sc, JPKI_SERVER_NGINX, NULL, NULL, &s, err,
                       sizeof(err)) == JPKI_OK && s != NULL,
       "the site is built: %s", err);
    if (s == NULL)
        return;
    ok(jpki_ctx_issuer_count(jpki_site_ctx(s)) == 1
       && jpki_site_issuer_count(s) == 1
       && jpki_site_issuer_index(s, jpki_site_issuer_at(s, 0)) == 0
       && jpki_site_issuer_index(s, NULL) == -1
       && !strcmp(jpki_site_issuer_spec(s, 0)->name, "card"),
       "its issuer, by index and back");
    ok(!jpki_site_shm(s) && jpki_site_redis_tls(s) == NULL
       && !strcmp(jpki_site_redis_auth(s)->user, "gate")
       && !strcmp(jpki_site_redis_auth(s)->password, "pw")
       && jpki_site_redis_auth(s)->db == 2, "Redis: no TLS, its AUTH/SELECT");
    ok(jpki_site_times_of(s)->redis_timeout_ms == 250, "its waits");
    ok(jpki_site_has_files(s), "a mapping file: files to watch");

    /* a process's files: the mapping read, the CRLs (none: fail closed) */
    memset(&ops, 0, sizeof(ops));
    z = jpki_crlzone_local(&ops);
    ok(z != NULL && jpki_site_watch(s, z, NULL, NULL, NULL, 1000) == 0
       && jpki_site_crls(s) == z && jpki_site_mapwatch(s) != NULL,
       "the files watched and read");
    snprintf(text, sizeof(text), "%032d", 7);
    ok(jpki_site_map_fn(s) != NULL
       && jpki_site_map_fn(s)(s, text, out) > 0 && !strcmp(out, "acct-1"),
       "the mapping answers through the site");
    ok(jpki_site_health(s, 1000, NULL, &hc), "health: collected");
    h = malloc(jpki_health_json_max(&hc));
    len = h != NULL ? jpki_health_json(&hc, hc.shm, JPKI_ERR_STORE, h,
                                       jpki_health_json_max(&hc), &okh) : 0;
    ok(h != NULL && len == strlen(h) && !okh
       && strstr(h, "\"store\"") != NULL
       && strstr(h, "{\"reason\":\"store_down\"}") != NULL,
       "health: the store down: %s", h);
    free(h);
    jpki_health_release(&hc);
    jpki_site_unwatch(s);
    ok(jpki_site_mapwatch(s) == NULL, "unwatched");
    jpki_site_free(s);
    jpki_crlzone_free(z);
    unlink(secret);
    unlink(map);
    jpki_siteconf_free(sc);
}

/* A location's values and throttle over the levels, its policy. */
static void test_locconf(void)
{
    jpki_locconf outer, inner;
    jpki_policy site, p;
    char err[256];

    jpki_policy_defaults(&site);
    jpki_locconf_init(&outer);
    jpki_locconf_init(&inner);
    ok(!jpki_locconf_any(&outer), "nothing written");
    ok(jpki_locconf_throttle(&outer, "logins=1 window=30", err, sizeof(err))
       == JPKI_OK && jpki_locconf_any(&outer), "outer: logins=1 window=30");
    ok(jpki_locconf_throttle(&outer, "cert=3", err, sizeof(err)) != JPKI_OK
       && !strcmp(err, "is duplicate"), "a second one at the same level");
    ok(jpki_locconf_throttle(&inner, "cert=3", err, sizeof(err)) == JPKI_OK,
       "inner: cert=3");
    jpki_locconf_merge(&inner, &outer);
    ok(jpki_locconf_policy(&inner, &site, &p, err, sizeof(err)) == JPKI_OK
       && p.login_limit_cert == 1 && p.throttle_window == 30
       && p.throttle_cert == 3 && p.throttle_addr == site.throttle_addr,
       "each level changes what it names, the others stay");
    jpki_locconf_init(&outer);
    jpki_locconf_init(&inner);
    ok(jpki_locconf_throttle(&outer, "window=90 cert=4", err, sizeof(err))
       == JPKI_OK && jpki_locconf_throttle(&inner, "off", err, sizeof(err))
       == JPKI_OK, "outer window=90 cert=4, inner off");
    jpki_locconf_merge(&inner, &outer);
    ok(jpki_locconf_policy(&inner, &site, &p, err, sizeof(err)) == JPKI_OK
       && p.throttle_window == 90 && p.throttle_cert == 0
       && p.login_limit_cert == 0 && p.login_concurrency == 0,
       "off inside: every limit off, the window kept");
    jpki_locconf_init(&inner);
    ok(jpki_locconf_throttle(&inner, " ", err, sizeof(err)) != JPKI_OK
       && strncmp(err, "expects off", 11) == 0, "empty: %s", err);
    ok(jpki_locconf_throttle(&inner, "cert=2 bogus=1", err, sizeof(err))
       != JPKI_OK && strncmp(err, "unknown setting", 15) == 0,
       "a bad word: the sentence, the directive names itself: %s", err);
    ok(jpki_locconf_throttle(&inner, "window=0", err, sizeof(err)) != JPKI_OK
       && strstr(err, "window must be") != NULL, "window=0: %s", err);

    /* values: the location's over the site's; the cookie always HttpOnly */
    jpki_locconf_init(&inner);
    jpki_locconf_init(&outer);
    ok(jpki_conf_set(&outer.values, JPKI_D_SESSION_LIFETIME, "1h", err,
                     sizeof(err)) == JPKI_OK
       && jpki_conf_set(&inner.values, JPKI_D_SESSION_IDLE, "2h", err,
                        sizeof(err)) == JPKI_OK, "lifetime 1h, idle 2h");
    jpki_locconf_merge(&inner, &outer);
    site.cookie_httponly = 0;
    ok(jpki_locconf_policy(&inner, &site, &p, err, sizeof(err)) != JPKI_OK
       && strstr(err, "idle timeout not above the lifetime") != NULL,
       "the merged policy is checked: %s", err);
    jpki_locconf_init(&inner);
    ok(jpki_locconf_policy(&inner, &site, &p, err, sizeof(err)) == JPKI_OK
       && p.cookie_httponly == 1, "HttpOnly always");
}

/* jpki_audit_log FILE [key_file=FILE]: its words, its files; the sites'
 * keys of one file compared. */
static void test_audit(void)
{
    jpki_siteconf *sc = jpki_siteconf_new(), *sc2 = jpki_siteconf_new();
    jpki_site *s[3] = {NULL, NULL, NULL};
    const uint8_t *key = (const uint8_t *)"x";
    char dir[] = "/tmp/jpki-sc-audit-XXXXXX", log[128], kf[128], sec[64],
         sec2[64], arg[160], err[512];
    const char *argv[2];

    if (mkdtemp(dir) == NULL)
        return;
    snprintf(log, sizeof(log), "%s/audit.log", dir);
    ok(SET1(sc, JPKI_SC_AUDIT_LOG, "audit.log") != JPKI_OK
       && strstr(err, "needs an absolute path") != NULL,
       "audit: a relative path: %s", err);
    snprintf(arg, sizeof(arg), "%s/none/audit.log", dir);
    ok(SET1(sc, JPKI_SC_AUDIT_LOG, arg) != JPKI_OK
       && strstr(err, "cannot be opened for writing") != NULL,
       "audit: no such directory: %s", err);
    ok(SET1(sc, JPKI_SC_AUDIT_LOG, dir) != JPKI_OK
       && strstr(err, "cannot be opened for writing") != NULL,
       "audit: a directory: %s", err);
    argv[0] = log;
    argv[1] = "key=/x";
    ok(jpki_siteconf_set(sc, JPKI_SC_AUDIT_LOG, 2, argv, &env, err,
                         sizeof(err)) != JPKI_OK
       && strstr(err, "takes FILE [key_file=FILE]") != NULL,
       "audit: another word: %s", err);
    snprintf(kf, sizeof(kf), "%s/k", dir);
    write_file(kf, sizeof(kf), "0123456789abcdef0123456789abcdef\n", 0640);
    snprintf(arg, sizeof(arg), "key_file=%s", kf);
    argv[1] = arg;
    ok(jpki_siteconf_audit(sc, &key) == NULL, "audit: none yet");
    ok(jpki_siteconf_set(sc, JPKI_SC_AUDIT_LOG, 2, argv, &env, err,
                         sizeof(err)) == JPKI_OK
       && !strcmp(jpki_siteconf_audit(sc, &key), log) && key != NULL
       && access(log, W_OK) == 0, "audit: a file and its key file, made");
    ok(SET1(sc, JPKI_SC_AUDIT_LOG, log) != JPKI_OK
       && !strcmp(err, "is duplicate"), "audit: a second one");
    ok(SET1(sc2, JPKI_SC_AUDIT_LOG, log) == JPKI_OK
       && jpki_siteconf_audit(sc2, &key) != NULL && key == NULL,
       "audit: without a key file: the secret's key");

    /* two sites on one file: the same key file, or refused */
    write_file(sec, sizeof(sec), secret_text, 0600);
    write_file(sec2, sizeof(sec2), "secret 4031323334353637383961626364656630"
               "313233343536373839616263646566\n", 0600);
    ok(SET1(sc, JPKI_SC_SECRET, sec) == JPKI_OK
       && SET1(sc2, JPKI_SC_SECRET, sec2) == JPKI_OK
       && SET1(sc, JPKI_SC_STORE, "shm") == JPKI_OK
       && SET1(sc2, JPKI_SC_STORE, "shm") == JPKI_OK
       && issuer(sc, "card", tap_path("ca2.pem"), err, sizeof(err)) == JPKI_OK
       && issuer(sc2, "card", tap_path("ca2.pem"), err, sizeof(err))
          == JPKI_OK, "two sites");
    ok(jpki_site_build(sc, JPKI_SERVER_NGINX, NULL, NULL, &s[0], err,
                       sizeof(err)) == JPKI_OK
       && jpki_site_build(sc2, JPKI_SERVER_NGINX, NULL, NULL, &s[1], err,
                          sizeof(err)) == JPKI_OK
       && !strcmp(jpki_site_audit_file(s[0]), log), "... built");
    if (s[0] != NULL && s[1] != NULL) {
        s[2] = s[0];
        ok(jpki_site_audit_clash((const jpki_site *const *)s, 3,
                                 JPKI_SERVER_APACHE, err, sizeof(err))
           != JPKI_OK && strstr(err, "JPKIAuditLog \"") != NULL
           && strstr(err, "with different keys") != NULL,
           "one file, two keys: refused: %s", err);
        const jpki_site *twice[2] = {s[0], s[0]};
        ok(jpki_site_audit_clash(twice, 2, JPKI_SERVER_NGINX, err,
                                 sizeof(err)) == JPKI_OK,
           "one site twice: no clash");
    }
    jpki_site_free(s[0]);
    jpki_site_free(s[1]);
    jpki_siteconf_free(sc);
    jpki_siteconf_free(sc2);
    unlink(log);
    unlink(kf);
    unlink(sec);
    unlink(sec2);
    rmdir(dir);
}

/* The store's files read where it is written: the password of
 * password_file=, the client certificate of tls_cert= and tls_key=; a
 * primary named by sentinels checks ROLE. */
static void test_store_files(void)
{
    char err[512];
    jpki_siteconf *sc = jpki_siteconf_new();
    const char *words[4];

    words[0] = "redis=127.0.0.1:1";
    words[1] = pw_word("world", 0644);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 2, words, &env, err, sizeof(err))
       != JPKI_OK && strstr(err, "may be read or written by others") != NULL
       && strstr(err, "world") == NULL && jpki_siteconf_store(sc) == NULL,
       "a password file others may read: refused: %s", err);
    words[1] = pw_word("", 0600);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 2, words, &env, err, sizeof(err))
       != JPKI_OK && strstr(err, "has no password on its first line"),
       "an empty password file: refused: %s", err);
    words[1] = "password_file=rel/nothing-here";
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 2, words, &env, err, sizeof(err))
       != JPKI_OK && strstr(err, "nothing-here\" cannot be read"),
       "a missing password file, from the root: refused: %s", err);
    words[0] = "sentinel=127.0.0.1:1,127.0.0.1:2";
    words[1] = "master=gate";
    words[2] = pw_word("s3cret", 0640);
    ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 3, words, &env, err, sizeof(err))
       == JPKI_OK && !strcmp(jpki_siteconf_store(sc)->password, "s3cret")
       && jpki_siteconf_store(sc)->n_sentinels == 2,
       "sentinels, the password read from its file: %s", err);
    jpki_siteconf_free(sc);

    sc = jpki_siteconf_new();
    words[0] = "redis=127.0.0.1:1";
    words[1] = "tls=on";
    words[2] = "tls_ca=rel/ca2.pem";
    words[3] = "tls_cert=rel/ca1.pem";
    {
        const char *w5[5] = {words[0], words[1], words[2], words[3],
                             "tls_key=rel/ca2.key"};

        ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 5, w5, &env, err, sizeof(err))
           != JPKI_OK && strstr(err, "tls_key is not the key of tls_cert")
           && jpki_siteconf_redis_tls(sc) == NULL,
           "another certificate's key: refused: %s", err);
        w5[4] = "tls_key=rel/ca1.key";
        ok(jpki_siteconf_set(sc, JPKI_SC_STORE, 5, w5, &env, err, sizeof(err))
           == JPKI_OK && jpki_siteconf_redis_tls(sc) != NULL
           && SSL_CTX_get0_certificate(jpki_siteconf_redis_tls(sc)) != NULL,
           "a client certificate and its key, in the context: %s", err);
    }
    jpki_siteconf_free(sc);
    pw_cleanup();
}

int main(void)
{
    test_audit();
    test_locconf();
    test_directives();
    test_crl_zone_words();
    test_inherit();
    test_build();
    test_store_files();
    pw_cleanup();
    return done_testing();
}
