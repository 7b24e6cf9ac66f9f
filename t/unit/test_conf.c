/* test_conf.c - conf.c: the directives' grammar shared by both adapters:
 * times, sizes, flags, the table of simple directives (every kind, its
 * limits and sentences, duplicates, merging, applying to a policy, the
 * defaults), and the store's spec (shm and redis, every refusal). */
#include "conf.h"
#include "directives.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];

#define REFUSED(call, want, name) do {                                       \
        err[0] = '\0';                                                       \
        is_int((call), JPKI_ERR_INVALID, "%s: refused", name);               \
        ok(strstr(err, want) != NULL, "%s: says \"%s\" (%s)", name, want,    \
           err);                                                             \
    } while (0)

static void test_time(void)
{
    static const struct { const char *s; int ms_ok; uint64_t ms; } good[] = {
        {"90", 0, 90000}, {"90s", 0, 90000}, {"5m", 0, 300000},
        {"1h30m", 0, 5400000}, {"1h 30m", 0, 5400000}, {"2d", 0, 172800000},
        {"1w", 0, 604800000}, {"1M", 0, 2592000000ULL},
        {"1y", 0, 31536000000ULL}, {"500ms", 1, 500}, {"1s500ms", 1, 1500},
        {"0", 0, 0}};
    uint64_t ms;
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 7;
        ok(jpki_conf_time(good[i].s, good[i].ms_ok, &ms, err, sizeof(err))
           == JPKI_OK && ms == good[i].ms, "time \"%s\"", good[i].s);
    }
    REFUSED(jpki_conf_time("", 0, &ms, err, sizeof(err)), "is empty",
            "time empty");
    REFUSED(jpki_conf_time(NULL, 0, &ms, err, sizeof(err)), "is empty",
            "time NULL");
    REFUSED(jpki_conf_time("8x", 0, &ms, err, sizeof(err)), "must be a time",
            "time 8x");
    REFUSED(jpki_conf_time("s", 0, &ms, err, sizeof(err)), "must be a time",
            "time without digits");
    REFUSED(jpki_conf_time("-5", 0, &ms, err, sizeof(err)), "must be a time",
            "negative time");
    REFUSED(jpki_conf_time("500ms", 0, &ms, err, sizeof(err)),
            "must be given in seconds", "ms where not allowed");
    REFUSED(jpki_conf_time("99999999999999", 0, &ms, err, sizeof(err)),
            "is too large", "huge number");
    REFUSED(jpki_conf_time("3000y", 0, &ms, err, sizeof(err)),
            "is too large", "3000 years");
}

static void test_size_flag_message(void)
{
    uint64_t b;
    int on = 7;

    ok(jpki_conf_size("1048576", &b, err, sizeof(err)) == JPKI_OK
       && b == 1048576, "size in bytes");
    ok(jpki_conf_size("512k", &b, err, sizeof(err)) == JPKI_OK
       && b == 512 * 1024, "size 512k");
    ok(jpki_conf_size("10M", &b, err, sizeof(err)) == JPKI_OK
       && b == 10 * 1024 * 1024, "size 10M");
    ok(jpki_conf_size("1g", &b, err, sizeof(err)) == JPKI_OK
       && b == 1024ULL * 1024 * 1024, "size 1g");
    REFUSED(jpki_conf_size("12x", &b, err, sizeof(err)), "must be a size",
            "size 12x");
    REFUSED(jpki_conf_size("", &b, err, sizeof(err)), "must be a size",
            "size empty");
    REFUSED(jpki_conf_size("m", &b, err, sizeof(err)), "must be a size",
            "size without digits");
    REFUSED(jpki_conf_size("0", &b, err, sizeof(err)), "must be a size",
            "size 0");
    REFUSED(jpki_conf_size("65g", &b, err, sizeof(err)), "must be a size",
            "size over 64g");
    REFUSED(jpki_conf_size("10mb", &b, err, sizeof(err)), "must be a size",
            "size with a trailing letter");

    ok(jpki_conf_flag(NULL, &on, err, sizeof(err)) == JPKI_OK && on == 1,
       "flag without an argument is on");
    ok(jpki_conf_flag("On", &on, err, sizeof(err)) == JPKI_OK && on == 1,
       "flag On");
    ok(jpki_conf_flag("OFF", &on, err, sizeof(err)) == JPKI_OK && on == 0,
       "flag OFF");
    REFUSED(jpki_conf_flag("yes", &on, err, sizeof(err)),
            "must be \"on\" or \"off\"", "flag yes");

    jpki_conf_message(err, sizeof(err), "JPKIHeader", "must be a header");
    is_str(err, "JPKIHeader must be a header", "message: a predicate");
    jpki_conf_message(err, sizeof(err), "JPKIStore", "invalid db= (0..15)");
    is_str(err, "JPKIStore: invalid db= (0..15)", "message: a phrase");
}

#define SET(v, id, arg) jpki_conf_set(v, id, arg, err, sizeof(err))

static void test_directives(void)
{
    jpki_conf_values v, parent;
    jpki_policy p, d;
    size_t i;

    for (i = 0; i < JPKI__D_COUNT; i++)
        ok(jpki_directives[i].key != NULL
           && (jpki_directives[i].level == JPKI_CONF_SITE
               || jpki_directives[i].level == JPKI_CONF_LOCATION),
           "directive %zu has a key and a level", i);
    /* each one listed once in directives.h, at its level, with a name on
     * each server: the adapters' tables are made from those lists */
    for (i = 0; i < JPKI__D_COUNT; i++) {
        const char *n = jpki_directive_name(JPKI_SERVER_NGINX, i);
        const char *a = jpki_directive_name(JPKI_SERVER_APACHE, i);
        size_t k;
        int dup = 0;

        for (k = 0; n && a && k < JPKI__D_COUNT; k++) {
            const char *n2 = jpki_directive_name(JPKI_SERVER_NGINX, k);
            const char *a2 = jpki_directive_name(JPKI_SERVER_APACHE, k);

            dup |= k != i && n2 && a2
                   && (!strcmp(n, n2) || !strcasecmp(a, a2));
        }
        ok(n && a && !strncmp(n, "jpki_", 5) && !strncmp(a, "JPKI", 4)
           && !dup, "directive %zu: %s / %s, listed at its level", i,
           n ? n : "(none)", a ? a : "(none)");
    }

    jpki_conf_init(&v);
    ok(!jpki_conf_any(&v, JPKI_CONF_SITE) && !jpki_conf_any(&v,
       JPKI_CONF_LOCATION), "nothing written");
    /* defaults: the core's policy, or the table's */
    jpki_policy_defaults(&d);
    is_int(jpki_conf_num(&v, JPKI_D_SESSION_LIFETIME), 28800,
           "default lifetime from the core");
    is_int(jpki_conf_num(&v, JPKI_D_SESSION_IDLE), 1800, "default idle");
    is_int(jpki_conf_num(NULL, JPKI_D_RECHECK_INTERVAL), 300,
           "default recheck");
    is_int(jpki_conf_num(&v, JPKI_D_REDIS_TIMEOUT), 1000,
           "default redis timeout (ms)");
    is_int(jpki_conf_num(&v, JPKI_D_OCSP_TIMEOUT), 3000,
           "default OCSP timeout (ms)");
    is_int(jpki_conf_num(&v, JPKI_D_PASS_COOKIE), 0, "default pass_cookie");
    is_str(jpki_conf_str(&v, JPKI_D_COOKIE_NAME), "jpki_session",
           "default cookie name from the core");
    is_str(jpki_conf_str(&v, JPKI_D_HEADER), "X-JPKI-Account",
           "default header");
    is_int(jpki_conf_num(&v, JPKI_D_CRL_GRACE), JPKI_CRL_GRACE_VALIDITY,
           "default CRL grace: auto");

    /* every kind: good values */
    is_int(SET(&v, JPKI_D_SESSION_LIFETIME, "1h"), JPKI_OK, "lifetime 1h");
    is_int(SET(&v, JPKI_D_SESSION_IDLE, "0"), JPKI_OK, "idle 0");
    is_int(SET(&v, JPKI_D_REDIS_TIMEOUT, "250ms"), JPKI_OK, "timeout 250ms");
    is_int(SET(&v, JPKI_D_COOKIE_NAME, "__Secure-s"), JPKI_OK, "cookie name");
    is_int(SET(&v, JPKI_D_COOKIE_PATH, "/app"), JPKI_OK, "cookie path");
    is_int(SET(&v, JPKI_D_COOKIE_SAMESITE, "strict"), JPKI_OK, "SameSite");
    is_str(v.s[JPKI_D_COOKIE_SAMESITE], "Strict", "SameSite: canonical case");
    is_int(SET(&v, JPKI_D_COOKIE_SECURE, "on"), JPKI_OK, "secure on");
    is_int(SET(&v, JPKI_D_REVOCATION, "crl,ocsp"), JPKI_OK, "revocation");
    is_int(SET(&v, JPKI_D_FAILURE, "Open"), JPKI_OK, "failure Open");
    is_int(SET(&v, JPKI_D_LOGIN_PAGE, "none"), JPKI_OK, "login page none");
    is_str(v.s[JPKI_D_LOGIN_PAGE], "", "login page none is empty");
    is_int(SET(&v, JPKI_D_TRUSTED_ORIGINS, "https://a.example"), JPKI_OK,
           "trusted origins");
    is_int(SET(&v, JPKI_D_CRL_GRACE, "auto"), JPKI_OK, "CRL grace auto");
    is_int(SET(&v, JPKI_D_CHALLENGE_TTL, "5m"), JPKI_OK, "challenge ttl");
    is_int(SET(&v, JPKI_D_HEADER, "X-Account"), JPKI_OK, "header");
    ok(jpki_conf_any(&v, JPKI_CONF_SITE) && jpki_conf_any(&v,
       JPKI_CONF_LOCATION), "written at both levels");
    REFUSED(SET(&v, JPKI_D_SESSION_LIFETIME, "2h"), "is duplicate",
            "a second lifetime");
    REFUSED(SET(&v, JPKI_D_COOKIE_NAME, "x"), "is duplicate",
            "a second cookie name");
    is_int(jpki_conf_num(&v, JPKI_D_SESSION_LIFETIME), 3600,
           "the first value stays");

    /* apply: only the level asked, only the fields written */
    jpki_policy_defaults(&p);
    jpki_conf_apply(&v, JPKI_CONF_LOCATION, &p);
    is_int(p.session_lifetime, 3600, "applied: lifetime");
    is_int(p.session_idle, 0, "applied: idle");
    is_str(p.cookie_name, "__Secure-s", "applied: cookie name");
    is_str(p.cookie_path, "/app", "applied: cookie path");
    is_str(p.cookie_samesite, "Strict", "applied: SameSite");
    ok(p.rev_policy.n == 2 && p.rev_policy.src[0] == JPKI_REV_SRC_CRL
       && p.rev_policy.src[1] == JPKI_REV_SRC_OCSP, "applied: crl,ocsp");
    is_int(p.fail_open, 1, "applied: fail open");
    is_str(p.login_page, "", "applied: login page");
    is_str(p.trusted_origins, "https://a.example", "applied: origins");
    is_int(p.challenge_ttl, d.challenge_ttl, "site value not applied at the "
           "location level");
    is_int(p.recheck_interval, d.recheck_interval, "unwritten: default");
    jpki_conf_apply(&v, JPKI_CONF_SITE, &p);
    is_int(p.challenge_ttl, 300, "applied at the site level");
    is_int(p.crl_grace, JPKI_CRL_GRACE_VALIDITY, "applied: grace auto");
    is_int(jpki_policy_check(&p, err, sizeof(err)), JPKI_OK,
           "applied policy checks");

    /* merge: the child's own values win, the rest from the parent */
    jpki_conf_init(&parent);
    (void)SET(&parent, JPKI_D_SESSION_LIFETIME, "2h");
    (void)SET(&parent, JPKI_D_RECHECK_INTERVAL, "1m");
    (void)SET(&parent, JPKI_D_REVOCATION, "crl");
    (void)SET(&parent, JPKI_D_PASS_COOKIE, "on");
    jpki_conf_merge(&v, &parent);
    is_int(jpki_conf_num(&v, JPKI_D_SESSION_LIFETIME), 3600, "merge: own");
    is_int(jpki_conf_num(&v, JPKI_D_RECHECK_INTERVAL), 60, "merge: parent");
    is_int(jpki_conf_num(&v, JPKI_D_PASS_COOKIE), 1, "merge: adapter value");
    ok(v.rev.n == 2, "merge: own revocation kept");
    jpki_conf_init(&v);
    jpki_conf_merge(&v, &parent);
    ok(v.rev.n == 1 && v.rev.src[0] == JPKI_REV_SRC_CRL,
       "merge: revocation from the parent");
}

static void test_directive_errors(void)
{
    jpki_conf_values v;
    char long_s[600];

    jpki_conf_init(&v);
    memset(long_s, 'a', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    REFUSED(SET(&v, (jpki_directive_id)JPKI__D_COUNT, "1"),
            "not a directive", "unknown id");
    REFUSED(SET(&v, JPKI_D_SESSION_LIFETIME, NULL), "needs a value",
            "no value");
    REFUSED(SET(&v, JPKI_D_SESSION_LIFETIME, "8x"), "must be a time",
            "bad time");
    REFUSED(SET(&v, JPKI_D_SESSION_LIFETIME, "400d"), "is too large",
            "time over a year");
    REFUSED(SET(&v, JPKI_D_SESSION_IDLE, "5ms"), "must be given in seconds",
            "ms for seconds");
    REFUSED(SET(&v, JPKI_D_REDIS_TIMEOUT, "0"), "must be between 1ms and "
            "600s", "timeout 0");
    REFUSED(SET(&v, JPKI_D_OCSP_TIMEOUT, "11m"), "must be between",
            "timeout over 10 minutes");
    REFUSED(SET(&v, JPKI_D_OCSP_NONCE, "maybe"), "must be \"on\" or \"off\"",
            "flag maybe");
    REFUSED(SET(&v, JPKI_D_HEADER, "X Account"), "must be a header name of "
            "1..64", "header with a space");
    REFUSED(SET(&v, JPKI_D_HEADER, long_s), "header name", "header too long");
    REFUSED(SET(&v, JPKI_D_COOKIE_NAME, "a;b"), "must be a token of 1..63",
            "cookie name with ;");
    REFUSED(SET(&v, JPKI_D_COOKIE_NAME, ""), "must be a token",
            "empty cookie name");
    REFUSED(SET(&v, JPKI_D_COOKIE_PATH, "app"), "starting with '/'",
            "relative cookie path");
    REFUSED(SET(&v, JPKI_D_COOKIE_PATH, "/a;b"), "no ';' or spaces",
            "cookie path with ;");
    REFUSED(SET(&v, JPKI_D_COOKIE_SAMESITE, "Loose"),
            "must be Strict, Lax or None", "SameSite Loose");
    REFUSED(SET(&v, JPKI_D_REVOCATION, "none"), "must be ocsp, crl",
            "revocation none");
    REFUSED(SET(&v, JPKI_D_REVOCATION, "ocsp,ocsp"), "must be ocsp, crl",
            "revocation ocsp twice");
    REFUSED(SET(&v, JPKI_D_REVOCATION, "OCSP"), "must be ocsp, crl",
            "revocation upper case");
    REFUSED(SET(&v, JPKI_D_FAILURE, "maybe"), "must be \"closed\" or "
            "\"open\"", "failure maybe");
    REFUSED(SET(&v, JPKI_D_LOGIN_PAGE, "login.html"),
            "must start with '/' or http(s)://", "relative login page");
    REFUSED(SET(&v, JPKI_D_LOGIN_PAGE, "/log in"), "without spaces",
            "login page with a space");
    REFUSED(SET(&v, JPKI_D_TRUSTED_ORIGINS, long_s), "must be 1..511",
            "origins too long");
    REFUSED(SET(&v, JPKI_D_TRUSTED_ORIGINS, ""), "must be 1..511",
            "origins empty");
    REFUSED(SET(&v, JPKI_D_CRL_GRACE, "0"), "must be \"auto\" or a time of "
            "1s..30d", "CRL grace 0");
    REFUSED(SET(&v, JPKI_D_CRL_GRACE, "31d"), "must be \"auto\"",
            "CRL grace 31d");
    REFUSED(SET(&v, JPKI_D_CRL_GRACE, "soon"), "must be \"auto\"",
            "CRL grace soon");
    ok(!jpki_conf_any(&v, JPKI_CONF_SITE) && !jpki_conf_any(&v,
       JPKI_CONF_LOCATION), "a refused value writes nothing");
}

static jpki_err store(const char *line, jpki_store_spec *sp)
{
    char buf[1024], *argv[16], *save = NULL, *w;
    int argc = 0;

    snprintf(buf, sizeof(buf), "%s", line);
    for (w = strtok_r(buf, " ", &save); w != NULL && argc < 16;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    err[0] = '\0';
    return jpki_conf_store(argc, (const char *const *)argv, sp, err,
                           sizeof(err));
}

#define STORE_BAD(line, want) do {                                           \
        is_int(store(line, &sp), JPKI_ERR_INVALID, "store \"%s\": refused",  \
               line);                                                        \
        ok(strstr(err, want) != NULL, "store \"%s\": says \"%s\" (%s)",      \
           line, want, err);                                                 \
        is_int(sp.kind, JPKI_STORE_KIND_NONE, "store \"%s\": spec "          \
               "untouched", line);                                           \
    } while (0)

static void test_store_sentinel(void);
static void test_store_tls_cert(void);

static void test_store(void)
{
    jpki_store_spec sp;
    char min[32];

    memset(&sp, 0, sizeof(sp));
    is_int(store("shm", &sp), JPKI_OK, "shm alone");
    ok(sp.kind == JPKI_STORE_KIND_SHM && strcmp(sp.zone, "jpki") == 0
       && sp.size == JPKI_CONF_STORE_SIZE && sp.warning[0] == '\0',
       "shm defaults: zone jpki, 10m");
    is_int(store("shm zone=a_b.c-1 size=1m", &sp), JPKI_OK, "shm zone size");
    ok(strcmp(sp.zone, "a_b.c-1") == 0 && sp.size == 1024 * 1024,
       "shm zone and size read");
    is_int(store("shm size=2m zone=z", &sp), JPKI_OK, "either order");
    is_int(store("shm zone=old:1m", &sp), JPKI_OK, "the old nginx spelling");
    ok(strcmp(sp.zone, "old") == 0 && sp.size == 1024 * 1024
       && strstr(sp.warning, "deprecated") != NULL
       && strstr(sp.warning, "zone=old size=1m") != NULL,
       "old spelling: read, with a warning naming the new one");
    ok(jpki_conf_zone_min() >= 64 * 1024
       && jpki_conf_zone_min() >= 2 * jpki_shm_min_size(),
       "the least zone size");

    memset(&sp, 0, sizeof(sp));
    STORE_BAD("", "expects \"shm");
    STORE_BAD("memcached=1", "expects \"shm");
    STORE_BAD("shm size=12x", "size= must be a size");
    snprintf(min, sizeof(min), "at least %lluk",
             (unsigned long long)(jpki_conf_zone_min() / 1024));
    STORE_BAD("shm size=1k", min);
    STORE_BAD("shm zone=a:1k", min);
    STORE_BAD("shm zone=a:1m size=1m", "invalid parameter \"size=1m\"");
    STORE_BAD("shm zone=a:1m:2", "zone=NAME:SIZE");
    STORE_BAD("shm zone=", "zone= must be a name");
    STORE_BAD("shm zone=a/b", "zone= must be a name");
    STORE_BAD("shm zone=a zone=b", "invalid parameter \"zone=b\"");
    STORE_BAD("shm db=1", "invalid parameter \"db=1\"");

    is_int(store("redis=127.0.0.1:6380 db=2 user=u password_file=/p "
                 "keepalive=8 mirror=2m", &sp), JPKI_OK, "redis with options");
    ok(sp.kind == JPKI_STORE_KIND_REDIS && strcmp(sp.host, "127.0.0.1") == 0
       && sp.port == 6380 && sp.db == 2 && strcmp(sp.user, "u") == 0
       && strcmp(sp.password_file, "/p") == 0 && sp.password[0] == '\0'
       && sp.keepalive == 8
       && sp.mirror == 2 * 1024 * 1024 && !sp.tls
       && strcmp(sp.addr, "127.0.0.1:6380") == 0, "redis options read");
    is_int(store("redis=cache.example", &sp), JPKI_OK, "redis host only");
    ok(sp.port == 6379 && sp.db == 0 && sp.keepalive == 16
       && sp.mirror == 1024 * 1024, "redis defaults");
    is_int(store("redis=[::1]:7000", &sp), JPKI_OK, "redis IPv6");
    ok(strcmp(sp.host, "::1") == 0 && sp.port == 7000, "IPv6 host, port");
    is_int(store("redis=unix:/run/redis.sock", &sp), JPKI_OK, "redis unix");
    ok(strcmp(sp.unix_path, "/run/redis.sock") == 0 && sp.host[0] == '\0',
       "unix path read");
    is_int(store("redis=r.example:6379 tls=on tls_ca=/ca.pem", &sp), JPKI_OK,
           "redis TLS");
    ok(sp.tls && strcmp(sp.tls_name, "r.example") == 0
       && strcmp(sp.tls_ca, "/ca.pem") == 0, "tls_name defaults to the host");
    is_int(store("redis=unix:/s tls=on tls_ca=/ca.pem tls_name=r", &sp),
           JPKI_OK, "TLS over a unix socket with a name");
    is_int(store("redis=h tls=off", &sp), JPKI_OK, "tls=off");

    memset(&sp, 0, sizeof(sp));
    STORE_BAD("redis=", "redis= needs a value");
    STORE_BAD("redis=unix:run/s", "absolute socket path");
    STORE_BAD("redis=::1", "invalid redis address");
    STORE_BAD("redis=[::1", "invalid redis address");
    STORE_BAD("redis=[::1]x", "invalid redis address");
    STORE_BAD("redis=h:0", "invalid redis address");
    STORE_BAD("redis=h:70000", "invalid redis address");
    STORE_BAD("redis=h:x", "invalid redis address");
    STORE_BAD("redis=:6379", "invalid redis address");
    STORE_BAD("redis=h/x:1", "invalid redis address");
    STORE_BAD("redis=h db=99", "invalid db= (0..15)");
    STORE_BAD("redis=h db=", "invalid db=");
    STORE_BAD("redis=h db=1x", "invalid db=");
    STORE_BAD("redis=h keepalive=0", "invalid keepalive= (1..1024)");
    STORE_BAD("redis=h keepalive=2000", "invalid keepalive=");
    STORE_BAD("redis=h user=", "user= needs a value");
    STORE_BAD("redis=h password=", "password= is not taken");
    STORE_BAD("redis=h password=p", "name it with password_file=FILE");
    STORE_BAD("redis=h password_file=", "password_file= needs a value");
    STORE_BAD("redis=h user=u", "user= without password_file=");
    STORE_BAD("redis=h tls=maybe", "tls= must be \"on\" or \"off\"");
    STORE_BAD("redis=h tls=on", "tls=on needs tls_ca=FILE");
    STORE_BAD("redis=h tls_ca=/ca.pem", "tls_ca= without tls=on");
    STORE_BAD("redis=h tls_ca=", "tls_ca= needs a value");
    STORE_BAD("redis=unix:/s tls=on tls_ca=/ca.pem",
              "unix socket needs tls_name=");
    STORE_BAD("redis=h tls_name=", "tls_name= needs a value");
    STORE_BAD("redis=h mirror=1k", "mirror= must be at least");
    STORE_BAD("redis=h mirror=big", "mirror= must be a size");
    STORE_BAD("redis=h db=1 db=2", "invalid parameter \"db=2\"");
    STORE_BAD("redis=h oscp=1", "invalid parameter \"oscp=1\"");
    {
        char line[900], big[400];

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        snprintf(line, sizeof(line), "redis=%s", big);
        STORE_BAD(line, "redis= needs a value of 1..255 characters");
        snprintf(line, sizeof(line), "redis=unix:/%.107s", big);
        STORE_BAD(line, "socket path (at most 107 characters)");
        snprintf(line, sizeof(line), "redis=unix:/%.106s", big);
        is_int(store(line, &sp), JPKI_OK, "a socket path of 107 characters");
        memset(&sp, 0, sizeof(sp));
        snprintf(line, sizeof(line), "redis=h user=%s password_file=/p",
                 big);
        STORE_BAD(line, "user= needs a value of 1..127 characters");
        snprintf(line, sizeof(line), "redis=h tls=on tls_ca=/c tls_name=%s",
                 big);
        STORE_BAD(line, "tls_name= needs a value of 1..255 characters");
        snprintf(line, sizeof(line), "shm zone=%.64s", big);
        STORE_BAD(line, "zone= must be a name of 1..63");
    }
    test_store_sentinel();
    test_store_tls_cert();
}

static void test_store_sentinel(void)
{
    jpki_store_spec sp;

    is_int(store("sentinel=10.0.0.1,10.0.0.2:26380,[::1]:7000 master=gate "
                 "db=3 password_file=/pw", &sp), JPKI_OK, "sentinels");
    ok(sp.kind == JPKI_STORE_KIND_REDIS && sp.n_sentinels == 3
       && strcmp(sp.sentinels[0].host, "10.0.0.1") == 0
       && sp.sentinels[0].port == 26379
       && strcmp(sp.sentinels[1].host, "10.0.0.2") == 0
       && sp.sentinels[1].port == 26380
       && strcmp(sp.sentinels[2].host, "::1") == 0
       && sp.sentinels[2].port == 7000 && strcmp(sp.master, "gate") == 0
       && sp.db == 3 && strcmp(sp.addr, "sentinel:gate") == 0,
       "sentinels read, the default port 26379, addr names the master");
    is_int(store("sentinel=s.example master=m tls=on tls_ca=/ca", &sp),
           JPKI_OK, "sentinels over TLS");
    ok(sp.tls_name[0] == '\0', "no default tls_name: each server by the "
       "address it is reached at");
    is_int(store("sentinel=a,b,c,d,e,f,g,h master=m", &sp), JPKI_OK,
           "8 sentinels");
    memset(&sp, 0, sizeof(sp));
    STORE_BAD("sentinel=a,b,c,d,e,f,g,h,i master=m", "at most 8 addresses");
    STORE_BAD("sentinel=", "sentinel= needs HOST:PORT");
    STORE_BAD("sentinel=a,,b master=m", "invalid sentinel address \"\"");
    STORE_BAD("sentinel=a:0 master=m", "invalid sentinel address \"a:0\"");
    STORE_BAD("sentinel=unix:/s master=m", "invalid sentinel address");
    STORE_BAD("sentinel=a", "sentinel= needs master=NAME");
    STORE_BAD("sentinel=a master=", "master= needs the name");
    STORE_BAD("sentinel=a master=x/y", "master= needs the name");
    STORE_BAD("redis=h master=m", "master= goes with sentinel=");
    STORE_BAD("redis=h sentinel=a master=m", "do not mix");
    STORE_BAD("sentinel=a master=m redis=h", "do not mix");
    STORE_BAD("sentinel=a master=m sentinel=b", "do not mix");
    STORE_BAD("sentinel=a master=m master=n", "invalid parameter "
              "\"master=n\"");
    /* replicas=: 1..8, with redis= or sentinel= */
    is_int(store("sentinel=a master=m replicas=1", &sp), JPKI_OK,
           "replicas=1");
    is_int((int)sp.replicas, 1, "... read");
    is_int(store("redis=h replicas=8", &sp), JPKI_OK, "replicas=8 with redis=");
    is_int((int)sp.replicas, 8, "... read");
    is_int(store("redis=h", &sp), JPKI_OK, "no replicas=");
    is_int((int)sp.replicas, 0, "... 0: none waited for");
    memset(&sp, 0, sizeof(sp));
    STORE_BAD("redis=h replicas=0", "invalid replicas=");
    STORE_BAD("redis=h replicas=9", "invalid replicas=");
    STORE_BAD("redis=h replicas=x", "invalid replicas=");
    STORE_BAD("redis=h replicas=1 replicas=2", "invalid parameter "
              "\"replicas=2\"");
    STORE_BAD("shm replicas=1", "shm takes zone=NAME and size=SIZE");
    /* sentinel_password_file=: with sentinel= only */
    is_int(store("sentinel=a master=m sentinel_password_file=/s.pw", &sp),
           JPKI_OK, "sentinel_password_file=");
    is_str(sp.sentinel_password_file, "/s.pw", "... read");
    memset(&sp, 0, sizeof(sp));
    STORE_BAD("redis=h sentinel_password_file=/s.pw",
              "sentinel_password_file= goes with sentinel=");
    STORE_BAD("sentinel=a master=m sentinel_password_file=",
              "sentinel_password_file= needs a value");
}

static void test_store_tls_cert(void)
{
    jpki_store_spec sp;

    is_int(store("redis=h tls=on tls_ca=/ca tls_cert=/c tls_key=/k", &sp),
           JPKI_OK, "a client certificate");
    ok(strcmp(sp.tls_cert, "/c") == 0 && strcmp(sp.tls_key, "/k") == 0,
       "tls_cert= and tls_key= read");
    memset(&sp, 0, sizeof(sp));
    STORE_BAD("redis=h tls=on tls_ca=/ca tls_cert=/c", "go together");
    STORE_BAD("redis=h tls=on tls_ca=/ca tls_key=/k", "go together");
    STORE_BAD("redis=h tls_cert=/c tls_key=/k", "need tls=on");
    STORE_BAD("redis=h tls=on tls_ca=/ca tls_cert= tls_key=/k",
              "tls_cert= needs a value");
}

/* password_file=: the first line, the file's mode, its bounds. */
static void test_password_file(void)
{
    char dir[] = "/tmp/jpki-pw-XXXXXX", path[128], pw[600];
    char big[700];
    FILE *f;

    ok(mkdtemp(dir) != NULL, "a directory for password files");
    snprintf(path, sizeof(path), "%s/pw", dir);
#define PWFILE(content, mode) do {                                          \
        f = fopen(path, "w");                                               \
        fputs(content, f);                                                  \
        fclose(f);                                                          \
        chmod(path, mode);                                                  \
    } while (0)
    PWFILE("s3cret\nsecond line\n", 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_OK, "a password file");
    is_str(pw, "s3cret", "its first line, the newline stripped");
    PWFILE("with blanks \r\n", 0640);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_OK, "group-readable, CRLF");
    is_str(pw, "with blanks ", "CRLF stripped, blanks kept");
    PWFILE("no-newline", 0400);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_OK, "no newline at the end");
    is_str(pw, "no-newline", "the whole file");
    PWFILE("s3cret\n", 0604);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "readable by others: refused");
    ok(strstr(err, "may be read or written by others") != NULL
       && strstr(err, "s3cret") == NULL, "... says so, not the password");
    PWFILE("s3cret\n", 0602);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "writable by others: refused");
    PWFILE("\nsecond\n", 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "an empty first line: refused");
    ok(strstr(err, "has no password on its first line") != NULL, "... says so");
    f = fopen(path, "w");
    fwrite("ab\0cd\n", 1, 6, f);
    fclose(f);
    chmod(path, 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "a NUL byte in the first line: refused");
    ok(strstr(err, "has a NUL byte") != NULL, "... says so");
    PWFILE("", 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "an empty file: refused");
    memset(big, 'x', 511);
    big[511] = '\n';
    big[512] = '\0';
    PWFILE(big, 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_OK, "511 bytes");
    is_int((long long)strlen(pw), 511, "... all of them");
    memset(big, 'x', 512);
    big[512] = '\n';
    big[513] = '\0';
    PWFILE(big, 0600);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "512 bytes: refused");
    ok(strstr(err, "longer than 511 bytes") != NULL, "... says so");
    is_int(jpki_conf_password_file(path, pw, 8, err, sizeof(err)),
           JPKI_ERR_INVALID, "longer than the room given: refused");
    unlink(path);
    is_int(jpki_conf_password_file(path, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "a missing file");
    ok(strstr(err, "cannot be read: No such file") != NULL, "... says why");
    is_int(jpki_conf_password_file(dir, pw, sizeof(pw), err, sizeof(err)),
           JPKI_ERR_INVALID, "a directory: refused");
    rmdir(dir);
#undef PWFILE
}

static void test_store_outage(void)
{
    jpki_conf_values v;
    jpki_policy p;

    jpki_conf_init(&v);
    jpki_policy_defaults(&p);
    is_int((long long)p.store_outage, JPKI_OUTAGE_CLOSED,
           "store_outage: closed by default");
    is_int(jpki_conf_set(&v, JPKI_D_STORE_OUTAGE, "Sessions", err,
                         sizeof(err)), JPKI_OK, "store_outage sessions");
    jpki_conf_apply(&v, JPKI_CONF_LOCATION, &p);
    is_int((long long)p.store_outage, JPKI_OUTAGE_SESSIONS, "... applied");
    jpki_conf_init(&v);
    is_int(jpki_conf_set(&v, JPKI_D_STORE_OUTAGE, "open", err, sizeof(err)),
           JPKI_ERR_INVALID, "store_outage open: refused");
    is_str(err, "must be \"closed\" or \"sessions\"", "... says the words");
}

int main(void)
{
    test_password_file();
    test_store_outage();
    test_time();
    test_size_flag_message();
    test_directives();
    test_directive_errors();
    test_store();
    return done_testing();
}
