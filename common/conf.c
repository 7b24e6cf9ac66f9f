/* conf.c - the directives' grammar: values, the table of simple
 * directives with their defaults, the store's spec.  See conf.h. */
#include "conf.h"
#include "internal.h"
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POL(f) offsetof(jpki_policy, f)
#define SITE   JPKI_CONF_SITE
#define LOC    JPKI_CONF_LOCATION
#define NOF    JPKI_CONF_NO_FIELD
#define DAY    86400LL

/* One entry a directive.  Policy fields take their defaults from
 * jpki_policy_defaults (ctx.c); the others from def/sdef here. */
const jpki_directive jpki_directives[JPKI__D_COUNT] = {
    [JPKI_D_CHALLENGE_TTL] = {"challenge_ttl", SITE, JPKI_CONF_SECS,
        POL(challenge_ttl), 0, 365 * DAY, 0, NULL},
    [JPKI_D_CLOCK_SKEW] = {"clock_skew", SITE, JPKI_CONF_SECS,
        POL(clock_skew), 0, 365 * DAY, 0, NULL},
    [JPKI_D_OCSP_CACHE_GOOD] = {"ocsp_good_max_ttl", SITE, JPKI_CONF_SECS,
        POL(ocsp_good_max_ttl), 0, 365 * DAY, 0, NULL},
    [JPKI_D_OCSP_CACHE_HOLD] = {"ocsp_hold_ttl", SITE, JPKI_CONF_SECS,
        POL(ocsp_hold_ttl), 0, 365 * DAY, 0, NULL},
    [JPKI_D_OCSP_CACHE_REVOKED] = {"ocsp_revoked_ttl", SITE, JPKI_CONF_SECS,
        POL(ocsp_revoked_ttl), 0, 365 * DAY, 0, NULL},
    [JPKI_D_CRL_POINTER_TTL] = {"crl_pointer_ttl", SITE, JPKI_CONF_SECS,
        POL(crl_pointer_ttl), 0, 365 * DAY, 0, NULL},
    [JPKI_D_OCSP_NONCE] = {"ocsp_nonce", SITE, JPKI_CONF_FLAG,
        POL(ocsp_nonce), 0, 1, 0, NULL},
    [JPKI_D_CRL_GRACE] = {"crl_grace", SITE, JPKI_CONF_GRACE,
        POL(crl_grace), 1, 30 * DAY, 0, NULL},
    [JPKI_D_REDIS_TIMEOUT] = {"redis_timeout", SITE, JPKI_CONF_MSEC,
        NOF, 1, 600000, 1000, NULL},
    [JPKI_D_REDIS_CONNECT_TIMEOUT] = {"redis_connect_timeout", SITE,
        JPKI_CONF_MSEC, NOF, 1, 600000, 1000, NULL},
    [JPKI_D_OCSP_TIMEOUT] = {"ocsp_timeout", SITE, JPKI_CONF_MSEC,
        NOF, 1, 600000, 3000, NULL},
    [JPKI_D_SESSION_LIFETIME] = {"session_lifetime", LOC, JPKI_CONF_SECS,
        POL(session_lifetime), 0, 365 * DAY, 0, NULL},
    [JPKI_D_SESSION_IDLE] = {"session_idle", LOC, JPKI_CONF_SECS,
        POL(session_idle), 0, 365 * DAY, 0, NULL},
    [JPKI_D_RECHECK_INTERVAL] = {"recheck_interval", LOC, JPKI_CONF_SECS,
        POL(recheck_interval), 0, 365 * DAY, 0, NULL},
    [JPKI_D_COOKIE_NAME] = {"cookie_name", LOC, JPKI_CONF_TOKEN,
        POL(cookie_name), 1, 63, 0, NULL},
    [JPKI_D_COOKIE_PATH] = {"cookie_path", LOC, JPKI_CONF_PATH,
        POL(cookie_path), 1, 127, 0, NULL},
    [JPKI_D_COOKIE_SAMESITE] = {"cookie_samesite", LOC, JPKI_CONF_SAMESITE,
        POL(cookie_samesite), 0, 7, 0, NULL},
    [JPKI_D_COOKIE_SECURE] = {"cookie_secure", LOC, JPKI_CONF_FLAG,
        POL(cookie_secure), 0, 1, 0, NULL},
    [JPKI_D_REVOCATION] = {"rev_policy", LOC, JPKI_CONF_REVOCATION,
        POL(rev_policy), 0, 0, 0, NULL},
    [JPKI_D_FAILURE] = {"fail_open", LOC, JPKI_CONF_FAILURE,
        POL(fail_open), 0, 1, 0, NULL},
    [JPKI_D_LOGIN_PAGE] = {"login_page", LOC, JPKI_CONF_LOGIN_PAGE,
        POL(login_page), 0, 255, 0, NULL},
    [JPKI_D_TRUSTED_ORIGINS] = {"trusted_origins", LOC, JPKI_CONF_ORIGINS,
        POL(trusted_origins), 0, 511, 0, NULL},
    [JPKI_D_REQUIRE_ACCOUNT] = {"require_account", LOC, JPKI_CONF_FLAG,
        POL(require_account), 0, 1, 0, NULL},
    [JPKI_D_HEADER] = {"header", LOC, JPKI_CONF_TOKEN,
        NOF, 1, 64, 0, "X-JPKI-Account"},
    [JPKI_D_PASS_COOKIE] = {"pass_cookie", LOC, JPKI_CONF_FLAG,
        NOF, 0, 1, 0, NULL},
    [JPKI_D_LOGIN_METHODS] = {"login_methods", LOC, JPKI_CONF_METHODS,
        POL(login_methods), 0, 3, 0, NULL},
    [JPKI_D_ENROLL_PAGE] = {"enroll_page", LOC, JPKI_CONF_LOGIN_PAGE,
        POL(enroll_page), 0, 255, 0, NULL},
    [JPKI_D_ADMIN_ALLOW] = {"admin_allow", LOC, JPKI_CONF_CIDRS,
        POL(admin_allow), 0, 511, 0, NULL},
    [JPKI_D_ENROLL_TTL] = {"enroll_ttl", LOC, JPKI_CONF_SECS,
        POL(enroll_ttl), 5, 3600, 0, NULL},
    [JPKI_D_STORE_OUTAGE] = {"store_outage", LOC, JPKI_CONF_OUTAGE,
        POL(store_outage), 0, 1, 0, NULL},
};

/* ---- values -------------------------------------------------------- */

static const char TIME_SYNTAX[] = "must be a time (e.g. 30s, 5m, 8h, 1d)";

jpki_err jpki_conf_time(const char *s, int ms_ok, uint64_t *ms, char *err,
                        size_t errlen)
{
    static const struct { char u; uint64_t ms; } units[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000},
        {'w', 7 * 86400000ULL}, {'M', 30 * 86400000ULL},
        {'y', 365 * 86400000ULL}};
    uint64_t total = 0, n, mul;
    size_t i;

    if (s == NULL || *s == '\0') {
        jpki_set_detail(err, errlen, "is empty");
        return JPKI_ERR_INVALID;
    }
    while (*s != '\0') {
        if (*s < '0' || *s > '9') {
            jpki_set_detail(err, errlen, TIME_SYNTAX);
            return JPKI_ERR_INVALID;
        }
        for (n = 0; *s >= '0' && *s <= '9'; s++) {
            n = n * 10 + (uint64_t)(*s - '0');
            if (n > 3650 * 86400000ULL) {
                jpki_set_detail(err, errlen, "is too large");
                return JPKI_ERR_INVALID;
            }
        }
        if (s[0] == 'm' && s[1] == 's') {
            if (!ms_ok) {
                jpki_set_detail(err, errlen, "must be given in seconds, "
                                "minutes, hours or days");
                return JPKI_ERR_INVALID;
            }
            mul = 1;
            s += 2;
        } else if (*s == '\0' || *s == ' ') {
            mul = 1000;
        } else {
            for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (units[i].u == *s)
                    break;
            if (i == sizeof(units) / sizeof(units[0])) {
                jpki_set_detail(err, errlen, TIME_SYNTAX);
                return JPKI_ERR_INVALID;
            }
            mul = units[i].ms;
            s++;
        }
        total += n * mul;
        if (total > 3650 * 86400000ULL) {
            jpki_set_detail(err, errlen, "is too large");
            return JPKI_ERR_INVALID;
        }
        while (*s == ' ')
            s++;
    }
    *ms = total;
    return JPKI_OK;
}

jpki_err jpki_conf_size(const char *s, uint64_t *bytes, char *err,
                        size_t errlen)
{
    uint64_t n = 0;
    const char *p = s;

    while (p != NULL && *p >= '0' && *p <= '9' && n <= (1ULL << 40))
        n = n * 10 + (uint64_t)(*p++ - '0');
    switch (p != NULL ? *p : 'x') {
    case 'k': case 'K': n <<= 10; p++; break;
    case 'm': case 'M': n <<= 20; p++; break;
    case 'g': case 'G': n <<= 30; p++; break;
    default: break;
    }
    if (p == s || p == NULL || *p != '\0' || n == 0 || n > (64ULL << 30)) {
        jpki_set_detail(err, errlen, "must be a size (e.g. 10m)");
        return JPKI_ERR_INVALID;
    }
    *bytes = n;
    return JPKI_OK;
}

jpki_err jpki_conf_flag(const char *s, int *on, char *err, size_t errlen)
{
    if (s == NULL || strcasecmp(s, "on") == 0) {
        *on = 1;
    } else if (strcasecmp(s, "off") == 0) {
        *on = 0;
    } else {
        jpki_set_detail(err, errlen, "must be \"on\" or \"off\"");
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

void jpki_conf_message(char *out, size_t outlen, const char *name,
                       const char *sentence)
{
    static const char *const preds[] = {"must ", "is ", "needs "};
    size_t i;

    for (i = 0; i < sizeof(preds) / sizeof(preds[0]); i++)
        if (strncmp(sentence, preds[i], strlen(preds[i])) == 0) {
            snprintf(out, outlen, "%s %s", name, sentence);
            return;
        }
    snprintf(out, outlen, "%s: %s", name, sentence);
}

/* ---- simple directives ------------------------------------------- */

void jpki_conf_init(jpki_conf_values *v)
{
    size_t i;

    memset(v, 0, sizeof(*v));
    for (i = 0; i < JPKI__D_COUNT; i++)
        v->n[i] = JPKI_CONF_UNSET;
}

static int is_token(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s))
            return 0;
    return 1;
}

static jpki_err set_time(const jpki_directive *d, const char *arg,
                         long long *out, char *err, size_t errlen)
{
    uint64_t ms;
    int is_ms = d->kind == JPKI_CONF_MSEC;
    long long v, unit = is_ms ? 1 : 1000;

    if (jpki_conf_time(arg, is_ms, &ms, err, errlen) != JPKI_OK)
        return JPKI_ERR_INVALID;
    v = (long long)(ms / (uint64_t)unit);
    if (v < d->min || v > d->max || (is_ms && ms == 0)) {
        if (d->max == 365 * DAY)
            jpki_set_detail(err, errlen, "is too large");
        else
            jpki_set_detail(err, errlen, "must be between %lld%s and "
                            "%lld%s", d->min, is_ms ? "ms" : "s",
                            is_ms ? d->max / 1000 : d->max, "s");
        return JPKI_ERR_INVALID;
    }
    *out = v;
    return JPKI_OK;
}

/* Strings: checks arg; *val is arg or a constant. */
static jpki_err set_string(jpki_conf_values *v, jpki_directive_id id,
                           const char *arg, char *err, size_t errlen)
{
    const jpki_directive *d = &jpki_directives[id];
    const char *val = arg;
    size_t n = strlen(arg);
    static const char *const ss[] = {"Strict", "Lax", "None"};
    size_t i;

    switch (d->kind) {
    case JPKI_CONF_TOKEN:
        if (!is_token(arg, (size_t)d->max)) {
            jpki_set_detail(err, errlen, "must be a %s of 1..%lld "
                            "characters", id == JPKI_D_HEADER ? "header name"
                            : "token", d->max);
            return JPKI_ERR_INVALID;
        }
        break;
    case JPKI_CONF_PATH:
        if (arg[0] != '/' || n > (size_t)d->max || strpbrk(arg, "; \t\r\n")) {
            jpki_set_detail(err, errlen, "must be a path starting with '/' "
                            "(at most %lld characters, no ';' or spaces)",
                            d->max);
            return JPKI_ERR_INVALID;
        }
        break;
    case JPKI_CONF_SAMESITE:
        for (i = 0; i < 3 && strcasecmp(arg, ss[i]) != 0; i++)
            ;
        if (i == 3) {
            jpki_set_detail(err, errlen, "must be Strict, Lax or None");
            return JPKI_ERR_INVALID;
        }
        val = ss[i];
        break;
    case JPKI_CONF_LOGIN_PAGE:
        if (strcasecmp(arg, "none") == 0) {
            val = "";
            break;
        }
        if (arg[0] != '/' && strncasecmp(arg, "http://", 7) != 0
            && strncasecmp(arg, "https://", 8) != 0) {
            jpki_set_detail(err, errlen, "must start with '/' or http(s):// "
                            "(or be \"none\")");
            return JPKI_ERR_INVALID;
        }
        if (n > (size_t)d->max || strpbrk(arg, " \t\r\n\"")) {
            jpki_set_detail(err, errlen, "must be at most %lld characters, "
                            "without spaces or quotes", d->max);
            return JPKI_ERR_INVALID;
        }
        break;
    case JPKI_CONF_CIDRS:
        if (n == 0 || n > (size_t)d->max || !jpki_cidr_allows(arg, NULL)) {
            jpki_set_detail(err, errlen, "must be IPv4 or IPv6 addresses or "
                            "networks (192.0.2.0/24, 2001:db8::/32), at most "
                            "%lld characters in all", d->max);
            return JPKI_ERR_INVALID;
        }
        break;
    default:                                /* JPKI_CONF_ORIGINS */
        if (n == 0 || n > (size_t)d->max) {
            jpki_set_detail(err, errlen, "must be 1..%lld characters in all",
                            d->max);
            return JPKI_ERR_INVALID;
        }
        break;
    }
    v->s[id] = val;
    return JPKI_OK;
}

/* The login page's methods: "none", or "tls" and "device" (each once, any
 * order, blanks between). */
static jpki_err set_methods(const char *arg, long long *out, char *err,
                            size_t errlen)
{
    static const char *const names[] = {"tls", "device"};
    unsigned bits = 0, bit;
    size_t i, n;
    int none = 0;

    while (*arg) {
        while (*arg == ' ' || *arg == '\t')
            arg++;
        for (n = 0; arg[n] && arg[n] != ' ' && arg[n] != '\t'; n++)
            ;
        if (n == 0)
            break;
        for (i = 0; i < 2; i++)
            if (strlen(names[i]) == n && strncasecmp(arg, names[i], n) == 0)
                break;
        bit = i < 2 ? 1u << i : 0;
        if (n == 4 && strncasecmp(arg, "none", 4) == 0 && !none && !bits) {
            none = 1;
        } else if (bit == 0 || (bits & bit) || none) {
            jpki_set_detail(err, errlen, "must be \"none\", or \"tls\" and "
                            "\"device\", each at most once");
            return JPKI_ERR_INVALID;
        }
        bits |= bit;
        arg += n;
    }
    if (bits == 0 && !none) {
        jpki_set_detail(err, errlen, "needs a value");
        return JPKI_ERR_INVALID;
    }
    *out = bits;
    return JPKI_OK;
}

static jpki_err set_word(jpki_conf_values *v, jpki_directive_id id,
                         const char *arg, char *err, size_t errlen)
{
    const jpki_directive *d = &jpki_directives[id];
    long long *out = &v->n[id];
    int on;

    switch (d->kind) {
    case JPKI_CONF_SECS:
    case JPKI_CONF_MSEC:
        return set_time(d, arg, out, err, errlen);
    case JPKI_CONF_FLAG:
        if (jpki_conf_flag(arg, &on, err, errlen) != JPKI_OK)
            return JPKI_ERR_INVALID;
        *out = on;
        return JPKI_OK;
    case JPKI_CONF_FAILURE:
        if (strcasecmp(arg, "closed") != 0 && strcasecmp(arg, "open") != 0) {
            jpki_set_detail(err, errlen, "must be \"closed\" or \"open\"");
            return JPKI_ERR_INVALID;
        }
        *out = strcasecmp(arg, "open") == 0;
        return JPKI_OK;
    case JPKI_CONF_OUTAGE:
        if (strcasecmp(arg, "closed") != 0
            && strcasecmp(arg, "sessions") != 0) {
            jpki_set_detail(err, errlen, "must be \"closed\" or "
                            "\"sessions\"");
            return JPKI_ERR_INVALID;
        }
        *out = strcasecmp(arg, "sessions") == 0 ? JPKI_OUTAGE_SESSIONS
                                                 : JPKI_OUTAGE_CLOSED;
        return JPKI_OK;
    case JPKI_CONF_REVOCATION:
        if (jpki_rev_policy_parse(arg, strlen(arg), &v->rev) != JPKI_OK
            || v->rev.n == 0) {
            jpki_set_detail(err, errlen, "must be ocsp, crl, or both in the "
                            "order they are asked (\"ocsp,crl\", "
                            "\"crl,ocsp\")");
            return JPKI_ERR_INVALID;
        }
        *out = 1;
        return JPKI_OK;
    case JPKI_CONF_METHODS:
        return set_methods(arg, out, err, errlen);
    case JPKI_CONF_GRACE:
        if (strcasecmp(arg, "auto") == 0) {
            *out = JPKI_CRL_GRACE_VALIDITY;
            return JPKI_OK;
        }
        if (set_time(d, arg, out, err, errlen) != JPKI_OK) {
            jpki_set_detail(err, errlen, "must be \"auto\" or a time of "
                            "1s..30d");
            return JPKI_ERR_INVALID;
        }
        return JPKI_OK;
    default:
        return set_string(v, id, arg, err, errlen);
    }
}

static int is_set(const jpki_conf_values *v, jpki_directive_id id)
{
    return v->n[id] != JPKI_CONF_UNSET || v->s[id] != NULL;
}

jpki_err jpki_conf_set(jpki_conf_values *v, jpki_directive_id id,
                       const char *arg, char *err, size_t errlen)
{
    if ((unsigned)id >= JPKI__D_COUNT) {
        jpki_set_detail(err, errlen, "is not a directive of the core");
        return JPKI_ERR_INVALID;
    }
    if (is_set(v, id)) {
        jpki_set_detail(err, errlen, "is duplicate");
        return JPKI_ERR_INVALID;
    }
    if (arg == NULL) {
        jpki_set_detail(err, errlen, "needs a value");
        return JPKI_ERR_INVALID;
    }
    return set_word(v, id, arg, err, errlen);
}

void jpki_conf_merge(jpki_conf_values *child, const jpki_conf_values *parent)
{
    size_t i;

    for (i = 0; i < JPKI__D_COUNT; i++) {
        if (is_set(child, (jpki_directive_id)i))
            continue;
        child->n[i] = parent->n[i];
        child->s[i] = parent->s[i];
        if (i == JPKI_D_REVOCATION)
            child->rev = parent->rev;
    }
}

int jpki_conf_any(const jpki_conf_values *v, int level)
{
    size_t i;

    for (i = 0; i < JPKI__D_COUNT; i++)
        if (jpki_directives[i].level == level
            && is_set(v, (jpki_directive_id)i))
            return 1;
    return 0;
}

void jpki_conf_apply(const jpki_conf_values *v, int level, jpki_policy *p)
{
    const jpki_directive *d;
    char *f;
    size_t i;

    for (i = 0; i < JPKI__D_COUNT; i++) {
        d = &jpki_directives[i];
        if (d->level != level || d->field == NOF
            || !is_set(v, (jpki_directive_id)i))
            continue;
        f = (char *)p + d->field;
        if (d->kind == JPKI_CONF_REVOCATION)
            memcpy(f, &v->rev, sizeof(v->rev));
        else if (v->s[i] != NULL)   /* bounded by the setter: max < size */
            snprintf(f, (size_t)d->max + 1, "%s", v->s[i]);
        else
            *(unsigned *)(void *)f = (unsigned)v->n[i];
    }
}

static const jpki_policy *default_policy(void)
{
    static jpki_policy p;
    static int done;

    if (!done) {                /* configuration time: one thread */
        jpki_policy_defaults(&p);
        done = 1;
    }
    return &p;
}

long long jpki_conf_num(const jpki_conf_values *v, jpki_directive_id id)
{
    const jpki_directive *d = &jpki_directives[id];

    if (v != NULL && v->n[id] != JPKI_CONF_UNSET)
        return v->n[id];
    if (d->field == NOF)
        return d->def;
    return *(const unsigned *)(const void *)((const char *)default_policy()
                                             + d->field);
}

const char *jpki_conf_str(const jpki_conf_values *v, jpki_directive_id id)
{
    const jpki_directive *d = &jpki_directives[id];

    if (v != NULL && v->s[id] != NULL)
        return v->s[id];
    if (d->field == NOF)
        return d->sdef;
    return (const char *)default_policy() + d->field;
}

/* ---- the store ----------------------------------------------------- */

uint64_t jpki_conf_zone_min(void)
{
    uint64_t m = 2 * (uint64_t)jpki_shm_min_size();

    return m > 64 * 1024 ? m : 64 * 1024;
}

static jpki_err copy_word(char *dst, size_t size, const char *src,
                          const char *what, char *err, size_t errlen)
{
    size_t n = strlen(src);

    if (n == 0 || n >= size) {
        jpki_set_detail(err, errlen, "%s needs a value of 1..%zu characters",
                        what, size - 1);
        return JPKI_ERR_INVALID;
    }
    memcpy(dst, src, n + 1);
    return JPKI_OK;
}

static jpki_err zone_size(const char *s, uint64_t *out, const char *what,
                          char *err, size_t errlen)
{
    if (jpki_conf_size(s, out, err, errlen) != JPKI_OK)
        return JPKI_ERR_INVALID;
    if (*out < jpki_conf_zone_min()) {
        jpki_set_detail(err, errlen, "%s must be at least %lluk", what,
                        (unsigned long long)(jpki_conf_zone_min() / 1024));
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

static int zone_name_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 63)
        return 0;
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

/* shm [zone=NAME] [size=SIZE]; zone=NAME:SIZE is the old nginx spelling. */
static jpki_err store_shm(int argc, const char *const *argv,
                          jpki_store_spec *sp, char *err, size_t errlen)
{
    int i, zone = 0, size = 0;
    const char *a, *colon;
    char why[128];

    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strncmp(a, "zone=", 5) == 0 && !zone++) {
            colon = strchr(a + 5, ':');
            if (!zone_name_ok(a + 5, colon ? (size_t)(colon - a - 5)
                                           : strlen(a + 5))) {
                jpki_set_detail(err, errlen, "zone= must be a name of 1..63 "
                                "of A-Z a-z 0-9 _ . -");
                return JPKI_ERR_INVALID;
            }
            snprintf(sp->zone, sizeof(sp->zone), "%.*s",
                     (int)(colon ? colon - a - 5 : 63), a + 5);
            if (colon != NULL) {
                if (size++ || zone_size(colon + 1, &sp->size, "size", why,
                                        sizeof(why)) != JPKI_OK) {
                    jpki_set_detail(err, errlen, "zone=NAME:SIZE: %s",
                                    size > 1 ? "size given twice" : why);
                    return JPKI_ERR_INVALID;
                }
                snprintf(sp->warning, sizeof(sp->warning), "\"zone=NAME:SIZE"
                         "\" is deprecated: write \"zone=%s size=%s\"",
                         sp->zone, colon + 1);
            }
        } else if (strncmp(a, "size=", 5) == 0 && !size++) {
            if (zone_size(a + 5, &sp->size, "size=", why, sizeof(why))
                != JPKI_OK) {
                jpki_set_detail(err, errlen, "size= %s", why);
                return JPKI_ERR_INVALID;
            }
        } else {
            jpki_set_detail(err, errlen, "invalid parameter \"%.40s\" "
                            "(shm takes zone=NAME and size=SIZE, once each)",
                            a);
            return JPKI_ERR_INVALID;
        }
    }
    return JPKI_OK;
}

/* HOST[:PORT] or [V6]:PORT (port [defport]) into host[256] and *port;
 * -1 when malformed. */
static int host_port(const char *a, size_t len, unsigned defport,
                     char host[256], unsigned *port)
{
    char buf[256], *pe;
    const char *h = buf, *end, *pp = NULL;
    unsigned long p = defport;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, a, len);
    buf[len] = '\0';
    if (*buf == '[') {
        h = buf + 1;
        end = strchr(h, ']');
        if (end != NULL && end[1] == ':')
            pp = end + 2;
        else if (end != NULL && end[1] != '\0')
            end = NULL;
    } else {
        end = strchr(buf, ':');
        if (end != NULL && strchr(end + 1, ':') != NULL)
            end = NULL;                 /* a bare IPv6 address: brackets */
        else if (end != NULL)
            pp = end + 1;
        else
            end = buf + len;
    }
    if (pp != NULL) {
        p = (*pp >= '0' && *pp <= '9') ? strtoul(pp, &pe, 10) : 0;
        if (p == 0 || p > 65535 || *pe != '\0')
            end = NULL;
    }
    if (end == NULL || end == h
        || strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-_:%") < (size_t)(end - h))
        return -1;
    snprintf(host, 256, "%.*s", (int)(end - h), h);
    *port = (unsigned)p;
    return 0;
}

/* HOST[:PORT], [V6]:PORT or unix:/PATH into sp. */
static jpki_err redis_addr(const char *a, jpki_store_spec *sp, char *err,
                           size_t errlen)
{
    if (copy_word(sp->addr, sizeof(sp->addr), a, "redis=", err, errlen)
        != JPKI_OK)
        return JPKI_ERR_INVALID;
    if (strncmp(a, "unix:", 5) == 0) {
        if (a[5] != '/' || strlen(a + 5) > 107) {     /* sun_path */
            jpki_set_detail(err, errlen, "redis=unix: needs an absolute "
                            "socket path (at most 107 characters)");
            return JPKI_ERR_INVALID;
        }
        snprintf(sp->unix_path, sizeof(sp->unix_path), "%s", a + 5);
        return JPKI_OK;
    }
    if (host_port(a, strlen(a), JPKI_CONF_REDIS_PORT, sp->host, &sp->port)
        != 0) {
        jpki_set_detail(err, errlen, "invalid redis address \"%.64s\" "
                        "(HOST:PORT, [IPv6]:PORT or unix:/path)", a);
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

/* sentinel=HOST[:PORT][,HOST[:PORT]...] into sp (at most
 * JPKI_CONF_SENTINELS_MAX, port [26379]). */
static jpki_err sentinel_addrs(const char *a, jpki_store_spec *sp, char *err,
                               size_t errlen)
{
    const char *p = a, *comma;
    size_t len;

    if (*a == '\0') {
        jpki_set_detail(err, errlen, "sentinel= needs HOST:PORT[,HOST:PORT"
                        "...]");
        return JPKI_ERR_INVALID;
    }
    for (;;) {
        comma = strchr(p, ',');
        len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (sp->n_sentinels == JPKI_CONF_SENTINELS_MAX) {
            jpki_set_detail(err, errlen, "sentinel= takes at most %d "
                            "addresses", JPKI_CONF_SENTINELS_MAX);
            return JPKI_ERR_INVALID;
        }
        if (strncmp(p, "unix:", 5) == 0
            || host_port(p, len, JPKI_CONF_SENTINEL_PORT,
                         sp->sentinels[sp->n_sentinels].host,
                         &sp->sentinels[sp->n_sentinels].port) != 0) {
            jpki_set_detail(err, errlen, "invalid sentinel address "
                            "\"%.*s\" (HOST:PORT or [IPv6]:PORT, separated "
                            "by commas)", (int)(len > 64 ? 64 : len), p);
            return JPKI_ERR_INVALID;
        }
        sp->n_sentinels++;
        if (comma == NULL)
            return JPKI_OK;
        p = comma + 1;
    }
}

static jpki_err redis_number(const char *s, long lo, long hi, long *out,
                             const char *what, char *err, size_t errlen)
{
    char *end;
    long n = (*s >= '0' && *s <= '9') ? strtol(s, &end, 10) : -1;

    if (n < lo || n > hi || *end != '\0') {
        jpki_set_detail(err, errlen, "invalid %s (%ld..%ld)", what, lo, hi);
        return JPKI_ERR_INVALID;
    }
    *out = n;
    return JPKI_OK;
}

/* The Redis options, in the order of redis_option()'s switch. */
static const char *const redis_keys[] = {"db=", "user=", "password_file=",
    "keepalive=", "tls=", "tls_ca=", "tls_name=", "mirror=", "tls_cert=",
    "tls_key=", "master=", "replicas=", "sentinel_password_file="};
#define REDIS_KEYS (sizeof(redis_keys) / sizeof(redis_keys[0]))

/* The refusals of words that are not options of redis= / sentinel=. */
static jpki_err redis_word_refused(const char *a, char *err, size_t errlen)
{
    if (strncmp(a, "password=", 9) == 0) {
        jpki_set_detail(err, errlen, "password= is not taken (a password "
                        "written in the configuration): write it in a file "
                        "that others cannot read, on its first line, and "
                        "name it with password_file=FILE");
        return JPKI_ERR_INVALID;
    }
    if (strncmp(a, "redis=", 6) == 0 || strncmp(a, "sentinel=", 9) == 0) {
        jpki_set_detail(err, errlen, "redis= and sentinel= do not mix (one "
                        "server, or the sentinels that name its primary), "
                        "and each is written once");
        return JPKI_ERR_INVALID;
    }
    jpki_set_detail(err, errlen, "invalid parameter \"%.40s\" (redis= and "
                    "sentinel= take db=, user=, password_file=, keepalive=, "
                    "tls=, tls_ca=, tls_name=, tls_cert=, tls_key=, mirror=, "
                    "replicas= and, with sentinel=, master= and "
                    "sentinel_password_file=, once each)", a);
    return JPKI_ERR_INVALID;
}

/* One option of redis=: key=value into sp. */
static jpki_err redis_option(const char *a, jpki_store_spec *sp,
                             unsigned *seen, char *err, size_t errlen)
{
    const char *v;
    char why[128];
    long n;
    size_t k;
    int on;

    for (k = 0; k < REDIS_KEYS
                && strncmp(a, redis_keys[k], strlen(redis_keys[k])) != 0;
         k++)
        ;
    if (k == REDIS_KEYS || (*seen & (1u << k)))
        return redis_word_refused(a, err, errlen);
    *seen |= 1u << k;
    v = a + strlen(redis_keys[k]);
    switch (k) {
    case 0:
        if (redis_number(v, 0, 15, &n, "db=", err, errlen) != JPKI_OK)
            return JPKI_ERR_INVALID;
        sp->db = (int)n;
        return JPKI_OK;
    case 1:
        return copy_word(sp->user, sizeof(sp->user), v, "user=", err, errlen);
    case 2:
        return copy_word(sp->password_file, sizeof(sp->password_file), v,
                         "password_file=", err, errlen);
    case 3:
        if (redis_number(v, 1, 1024, &n, "keepalive=", err, errlen)
            != JPKI_OK)
            return JPKI_ERR_INVALID;
        sp->keepalive = (unsigned)n;
        return JPKI_OK;
    case 4:
        if (jpki_conf_flag(v, &on, why, sizeof(why)) != JPKI_OK) {
            jpki_set_detail(err, errlen, "tls= must be \"on\" or \"off\"");
            return JPKI_ERR_INVALID;
        }
        sp->tls = on;
        return JPKI_OK;
    case 5:
        return copy_word(sp->tls_ca, sizeof(sp->tls_ca), v, "tls_ca=", err,
                         errlen);
    case 6:
        return copy_word(sp->tls_name, sizeof(sp->tls_name), v, "tls_name=",
                         err, errlen);
    case 7:
        if (zone_size(v, &sp->mirror, "mirror=", why, sizeof(why))
            != JPKI_OK) {
            jpki_set_detail(err, errlen, "mirror= %s", why);
            return JPKI_ERR_INVALID;
        }
        return JPKI_OK;
    case 8:
        return copy_word(sp->tls_cert, sizeof(sp->tls_cert), v, "tls_cert=",
                         err, errlen);
    case 9:
        return copy_word(sp->tls_key, sizeof(sp->tls_key), v, "tls_key=",
                         err, errlen);
    case 11:
        if (redis_number(v, 1, 8, &n, "replicas=", err, errlen) != JPKI_OK)
            return JPKI_ERR_INVALID;
        sp->replicas = (unsigned)n;
        return JPKI_OK;
    case 12:
        return copy_word(sp->sentinel_password_file,
                         sizeof(sp->sentinel_password_file), v,
                         "sentinel_password_file=", err, errlen);
    default:
        if (!zone_name_ok(v, strlen(v))) {
            jpki_set_detail(err, errlen, "master= needs the name the "
                            "sentinels know the primary by (1..63 of A-Z a-z "
                            "0-9 _ . -)");
            return JPKI_ERR_INVALID;
        }
        snprintf(sp->master, sizeof(sp->master), "%s", v);
        return JPKI_OK;
    }
}

/* What the options need of each other. */
static jpki_err redis_coherent(jpki_store_spec *sp, char *err, size_t errlen)
{
    const char *why = NULL;

    if (sp->user[0] && !sp->password_file[0])
        why = "user= without password_file=";
    else if (sp->n_sentinels > 0 && !sp->master[0])
        why = "sentinel= needs master=NAME (the name the sentinels know the "
              "primary by)";
    else if (sp->n_sentinels == 0 && sp->master[0])
        why = "master= goes with sentinel=";
    else if (sp->n_sentinels == 0 && sp->sentinel_password_file[0])
        why = "sentinel_password_file= goes with sentinel=";
    else if (sp->tls_ca[0] && !sp->tls)
        why = "tls_ca= without tls=on";
    else if (sp->tls && !sp->tls_ca[0])
        why = "redis tls=on needs tls_ca=FILE (the server is always "
              "verified)";
    else if ((sp->tls_cert[0] || sp->tls_key[0]) && !sp->tls)
        why = "tls_cert= and tls_key= need tls=on";
    else if (!sp->tls_cert[0] != !sp->tls_key[0])
        why = "tls_cert= and tls_key= go together (the client certificate "
              "and its key)";
    else if (sp->tls && sp->unix_path[0] && !sp->tls_name[0])
        why = "tls=on over a unix socket needs tls_name=";
    if (why != NULL) {
        jpki_set_detail(err, errlen, "%s", why);
        return JPKI_ERR_INVALID;
    }
    if (sp->tls && !sp->tls_name[0] && sp->n_sentinels == 0)
        snprintf(sp->tls_name, sizeof(sp->tls_name), "%s", sp->host);
    if (sp->n_sentinels > 0)
        snprintf(sp->addr, sizeof(sp->addr), "sentinel:%s", sp->master);
    return JPKI_OK;
}

static jpki_err store_redis(int argc, const char *const *argv,
                            jpki_store_spec *sp, char *err, size_t errlen)
{
    unsigned seen = 0;
    int i;

    if ((argv[0][0] == 'r' ? redis_addr(argv[0] + 6, sp, err, errlen)
                           : sentinel_addrs(argv[0] + 9, sp, err, errlen))
        != JPKI_OK)
        return JPKI_ERR_INVALID;
    for (i = 1; i < argc; i++)
        if (redis_option(argv[i], sp, &seen, err, errlen) != JPKI_OK)
            return JPKI_ERR_INVALID;
    return redis_coherent(sp, err, errlen);
}

jpki_err jpki_conf_store(int argc, const char *const *argv,
                         jpki_store_spec *spec, char *err, size_t errlen)
{
    jpki_store_spec sp;
    jpki_err e;

    memset(&sp, 0, sizeof(sp));
    snprintf(sp.zone, sizeof(sp.zone), "jpki");
    sp.size = JPKI_CONF_STORE_SIZE;
    sp.port = JPKI_CONF_REDIS_PORT;
    sp.keepalive = JPKI_CONF_KEEPALIVE;
    sp.mirror = JPKI_CONF_MIRROR_SIZE;
    if (argc >= 1 && strcmp(argv[0], "shm") == 0) {
        sp.kind = JPKI_STORE_KIND_SHM;
        e = store_shm(argc, argv, &sp, err, errlen);
    } else if (argc >= 1 && (strncmp(argv[0], "redis=", 6) == 0
                             || strncmp(argv[0], "sentinel=", 9) == 0)) {
        sp.kind = JPKI_STORE_KIND_REDIS;
        e = store_redis(argc, argv, &sp, err, errlen);
    } else {
        jpki_set_detail(err, errlen, "expects \"shm [zone=NAME] [size=SIZE]"
                        "\", \"redis=HOST:PORT|unix:/PATH [OPTIONS]\" or "
                        "\"sentinel=HOST:PORT[,HOST:PORT...] master=NAME "
                        "[OPTIONS]\" (OPTIONS: db=N user=U "
                        "password_file=FILE keepalive=N tls=on tls_ca=FILE "
                        "tls_name=NAME tls_cert=FILE tls_key=FILE "
                        "mirror=SIZE replicas=N sentinel_password_file=FILE)");
        return JPKI_ERR_INVALID;
    }
    if (e == JPKI_OK)
        *spec = sp;
    OPENSSL_cleanse(&sp, sizeof(sp));
    return e;
}

/* ---- a password file ------------------------------------------------ */

jpki_err jpki_conf_password_file(const char *path, char *out, size_t outlen,
                                 char *err, size_t errlen)
{
    char buf[JPKI_CONF_PASSWORD_MAX + 3], sys[128], *nl;
    const char *why = NULL;
    struct stat st;
    size_t len = 0, line;
    ssize_t n;
    int fd;

    if (outlen > 0)
        out[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        jpki_set_detail(err, errlen, "password_file \"%.512s\" cannot be "
                        "read: %s", path, strerror_r(errno, sys, sizeof(sys)));
        return JPKI_ERR_INVALID;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "is not a regular file";
    else if (st.st_mode & (S_IROTH | S_IWOTH))
        why = "may be read or written by others: chmod o-rw (owner and group "
              "only)";
    while (why == NULL && len < sizeof(buf)) {
        n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            why = "cannot be read";
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (memchr(buf, '\n', len) != NULL)
            break;
    }
    close(fd);
    if (why == NULL) {
        nl = memchr(buf, '\n', len);
        line = nl != NULL ? (size_t)(nl - buf) : len;
        if (line > 0 && buf[line - 1] == '\r')
            line--;
        if (line == 0)
            why = "has no password on its first line";
        else if (line > JPKI_CONF_PASSWORD_MAX || line >= outlen)
            why = "has a first line longer than 511 bytes";
        else if (memchr(buf, '\0', line) != NULL)
            why = "has a NUL byte in its first line";
        else {
            memcpy(out, buf, line);
            out[line] = '\0';
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (why != NULL) {
        jpki_set_detail(err, errlen, "password_file \"%.512s\" %s", path,
                        why);
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

/* ---- the throttle's values over the levels ----------------------- */

/* ---- a site's required pieces ------------------------------------ */

static const struct {
    const char *name[JPKI__SITE_COUNT];
    const char *pieces;        /* the three, as a list */
    const char *scope;         /* where they go together */
    const char *store_example;
} site_words[] = {
    [JPKI_SERVER_NGINX] = {
        {"jpki_secret_file", "jpki_issuer", "jpki_store"},
        "jpki_secret_file, jpki_issuer and jpki_store",
        "the same block", "jpki_store shm size=10m;"},
    [JPKI_SERVER_APACHE] = {
        {"JPKISecretFile", "JPKIIssuer", "JPKIStore"},
        "JPKISecretFile, JPKIIssuer and JPKIStore",
        "the same server or virtual host", "JPKIStore shm size=10M"},
};

const char *jpki_conf_site_directive(jpki_server srv, jpki_site_piece p)
{
    return site_words[srv == JPKI_SERVER_APACHE].name[p < JPKI__SITE_COUNT
                                                      ? p : 0];
}

const char *jpki_conf_site_pieces(jpki_server srv)
{
    return site_words[srv == JPKI_SERVER_APACHE].pieces;
}

size_t jpki_conf_site_missing(jpki_server srv, int has_secret,
                              size_t issuers, int has_store, char *out,
                              size_t outlen)
{
    int a = srv == JPKI_SERVER_APACHE, n;
    const char *lead, *name, *eg = "";

    if (!has_secret) {
        lead = "";
        name = site_words[a].name[JPKI_SITE_SECRET];
    } else if (issuers == 0) {
        lead = "at least one ";
        name = site_words[a].name[JPKI_SITE_ISSUER];
    } else if (!has_store) {
        lead = "";
        name = site_words[a].name[JPKI_SITE_STORE];
        eg = site_words[a].store_example;
    } else {
        return 0;
    }
    n = snprintf(out, outlen, "%s\"%s\" is required (a site needs %s in "
                 "%s%s%s%s)", lead, name, site_words[a].pieces,
                 site_words[a].scope, *eg ? "; e.g. \"" : "", eg,
                 *eg ? "\"" : "");
    return n > 0 ? (size_t) n : 0;
}

/* ---- the simple directives' names (directives.h) ------------------ */

#include "directives.h"

typedef struct {
    int id, level;
    const char *name[2];
} directive_name;

#define NAME_SITE(id, n, a, w, h) {id, JPKI_CONF_SITE, {n, a}},
#define NAME_LOC(id, n, a, w, h) {id, JPKI_CONF_LOCATION, {n, a}},
static const directive_name directive_names[] = {
    JPKI_SITE_DIRECTIVES(NAME_SITE)
    JPKI_LOCATION_DIRECTIVES(NAME_LOC)
};

const char *jpki_directive_name(jpki_server srv, jpki_directive_id id)
{
    size_t i;

    for (i = 0; i < sizeof(directive_names) / sizeof(directive_names[0]);
         i++)
        if (directive_names[i].id == (int)id
            && directive_names[i].level == jpki_directives[id].level)
            return directive_names[i].name[srv == JPKI_SERVER_APACHE];
    return NULL;
}
