/*
 * jpkictl - command-line companion of libjpki for operators and for
 * integrators debugging a client: checks a signature, a certificate or a CRL
 * exactly as the login gate does.
 *
 * Exit status: 0 valid, 1 invalid (the verdict line says why), 2 usage or
 * input error (message on stderr); the store commands add 3..5 (jpkictl.h,
 * docs/operations.md).  Nothing printed ever contains a
 * certificate serial number, a key or the site secret: certificates are
 * named by their cert_id.  Options are parsed by hand: exact names only (no
 * abbreviations), every value bounded and checked, no option given twice.
 */
#include "jpkictl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define MAX_CAFILES    16         /* files in one --issuer */

static const char usage_head[] =
"usage: jpkictl COMMAND [OPTIONS]       (jpkictl help COMMAND for one)\n"
"Checks signatures, certificates and CRLs exactly as the JPKI login gate\n"
"does.  Exit status: 0 valid, 1 invalid (the verdict gives the reason word\n"
"the gate logs and returns), 2 usage or input error (message on stderr);\n"
"the store commands (crl sync, crl status, purge, recheck, map) add 3 not\n"
"newer, 4 fetch failed, 5 store failed (see each command).\n"
"Options: --opt VALUE or --opt=VALUE; -h/--help after a command.\n\n";

static const char usage_tail[] =
"jpkictl version | help [COMMAND]\n";

/* ---- small helpers ------------------------------------------------ */

void say(const char *fmt, ...)
{
    va_list ap;
    fputs("jpkictl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *iso8601(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL
        || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, 32, "@%lld", (long long)t);
    return buf;
}

int all_digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

/* YYYY-MM-DDTHH:MM:SSZ or seconds since the epoch; 0 on success. */
static int parse_time(const char *s, time_t *out)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    size_t i, n = strlen(s);
    struct tm tm, want;

    if (all_digits(s, n) && n <= 12) {
        *out = (time_t)strtoll(s, NULL, 10);
        return 0;
    }
    if (n != sizeof(pat) - 1)
        return -1;
    for (i = 0; i < n; i++)
        if (pat[i] == 'd' ? !all_digits(s + i, 1) : s[i] != pat[i])
            return -1;
    memset(&tm, 0, sizeof(tm));
    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
           &tm.tm_hour, &tm.tm_min, &tm.tm_sec);   /* digits checked above */
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    want = tm;
    *out = timegm(&tm);        /* normalises: a changed field = no such date */
    return *out >= 0 && tm.tm_year == want.tm_year && tm.tm_mon == want.tm_mon
           && tm.tm_mday == want.tm_mday && tm.tm_hour == want.tm_hour
           && tm.tm_min == want.tm_min && tm.tm_sec == want.tm_sec ? 0 : -1;
}

int load(const char *what, const char *path, size_t max, uint8_t **buf,
         size_t *len)
{
    jpki_err e = jpki_load_file(path, max, buf, len);

    if (e == JPKI_ERR_TOO_LARGE)
        say("%s file \"%s\" is larger than %zu bytes", what, path, max);
    else if (e != JPKI_OK)
        say("cannot read %s file \"%s\" (missing, unreadable or not a "
            "regular file)", what, path);
    return e == JPKI_OK ? 0 : -1;
}

/* ---- options ------------------------------------------------------ */

#define A ARG_MAX_LEN
static const tool_opt optdefs[O__COUNT] = {
    [O_CERT] = {"cert", 1, A},       [O_PUBKEY] = {"pubkey", 1, A},
    [O_ALG] = {"alg", 1, A},         [O_MSG] = {"msg", 1, A},
    [O_SIG] = {"sig", 1, A},         [O_ALLOW_SHA1] = {"allow-sha1", 0, A},
    [O_ISSUER] = {"issuer", 1, A},   [O_POLICY] = {"policy", 1, A},
    [O_AT] = {"at", 1, A},           [O_SECRET] = {"secret-file", 1, A},
    [O_CRL] = {"crl", 1, A},         [O_GRACE] = {"grace", 1, A},
    [O_HELP] = {"help", 0, A},
    [O_ACCOUNT] = {"account", 1, A}, [O_SERIAL] = {"serial", 1, A},
    [O_CERT_ID] = {"cert-id", 1, A}, [O_REDIS] = {"redis", 1, A},
    [O_REDIS_DB] = {"redis-db", 1, A}, [O_REDIS_USER] = {"redis-user", 1, A},
    [O_REDIS_PASSWORD] = {"redis-password", 1, A},
    [O_MAP_FILE] = {"map-file", 1, A},
    [O_SOURCE] = {"source", 1, A},   [O_WATCH] = {"watch", 1, A},
    [O_ARL] = {"arl", 0, A},         [O_REVOCATION] = {"revocation", 0, A},
    [O_KEEP_OLD] = {"keep-old", 1, A}, [O_MAX_SIZE] = {"max-size", 1, A},
    [O_TIMEOUT] = {"timeout", 1, A}, [O_DRY_RUN] = {"dry-run", 0, A},
    [O_FILE] = {"FILE", 1, A},        /* not an option: the argument */
    [O_KEY_FILE] = {"key-file", 1, A}, [O_LAST_SEQ] = {"last-seq", 1, A},
    [O_REDIS_SENTINEL] = {"redis-sentinel", 1, A},
    [O_REDIS_MASTER] = {"redis-master", 1, A},
    [O_REDIS_PASSWORD_FILE] = {"redis-password-file", 1, A},
    [O_REDIS_TLS_CA] = {"redis-tls-ca", 1, A},
    [O_REDIS_TLS_NAME] = {"redis-tls-name", 1, A},
    [O_REDIS_TLS_CERT] = {"redis-tls-cert", 1, A},
    [O_REDIS_TLS_KEY] = {"redis-tls-key", 1, A},
    [O_REDIS_SENTINEL_PASSWORD_FILE] =
        {"redis-sentinel-password-file", 1, A},
    [O_FULL] = {"full", 0, A},       [O_DELTA_MAX] = {"delta-max", 1, A},
    [O_STATE_DIR] = {"state-dir", 1, A},
};
#undef A

static int store_opt(args_t *a, int o, const char *val)
{
    int multi = o == O_ISSUER || o == O_POLICY;
    const char **list = o == O_ISSUER ? a->issuer : a->policy;
    size_t *n = o == O_ISSUER ? &a->n_issuer : &a->n_policy;

    if (multi && *n >= MAX_ISSUER_OPT) {
        say("--%s: at most %d times", optdefs[o].name, MAX_ISSUER_OPT);
        return -1;
    }
    if (!multi && (a->seen & BIT(o))) {
        say("--%s given twice", optdefs[o].name);
        return -1;
    }
    if (multi)
        list[(*n)++] = val;
    a->seen |= BIT(o);
    a->val[o] = val;
    return 0;
}

/* --redis-password's value, out of argv (parse_args); cleared after the
 * command ran. */
static char redis_password[ARG_MAX_LEN + 1];

/* allowed: BIT() mask of the options the command takes.  The value of
 * --redis-password (refused: check_redis_opts) is overwritten in argv
 * with 'x', as mysql does: /proc/PID/cmdline (ps) is readable by every
 * local user. */
static int parse_args(int argc, char **argv, unsigned long long allowed,
                      size_t max_files, args_t *a)
{
    const char *val;
    int i, o;

    for (i = 0; i < argc; i++) {
        /* the one FILE argument of a command that takes one ("-": the
         * standard input) */
        if ((allowed & BIT(O_FILE)) && strncmp(argv[i], "--", 2) != 0
            && strcmp(argv[i], "-h") != 0) {
            if (a->n_files >= max_files) {
                say("unexpected argument \"%.64s\"", argv[i]);
                return -1;
            }
            if (argv[i][0] == '\0' || strlen(argv[i]) > ARG_MAX_LEN) {
                say("FILE: 1 to %d characters", ARG_MAX_LEN);
                return -1;
            }
            a->seen |= BIT(O_FILE);
            if (a->val[O_FILE] == NULL)
                a->val[O_FILE] = argv[i];
            a->files[a->n_files++] = argv[i];
            continue;
        }
        o = tool_opt_next(argc, argv, &i, optdefs, O__COUNT, allowed, &val);
        if (o == O_REDIS_PASSWORD) {
            snprintf(redis_password, sizeof(redis_password), "%s", val);
            memset((char *)val, 'x', strlen(val));  /* points into argv */
            val = redis_password;
        }
        if (o < 0 || store_opt(a, o, val) != 0)
            return -1;
    }
    return 0;
}

static int require(const args_t *a, unsigned long long mask)
{
    int o;
    for (o = 0; o < O__COUNT; o++)
        if ((mask & BIT(o)) && !(a->seen & BIT(o))) {
            if (o == O_FILE)
                say("a FILE argument is required");
            else
                say("--%s is required", optdefs[o].name);
            return -1;
        }
    return 0;
}

int opt_uint(const args_t *a, int o, unsigned long long min,
             unsigned long long max, unsigned long long def,
             unsigned long long *out)
{
    const char *v = a->val[o];

    *out = def;
    if (v == NULL || tool_uint(v, strlen(v), min, max, out) == 0)
        return 0;
    say("--%s: expected a number, %llu..%llu", optdefs[o].name, min, max);
    return -1;
}

/* ---- context ------------------------------------------------------ */

static int name_ok(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || strchr("_-.", s[i]) != NULL))
            return 0;
    return n > 0 && n <= 63;
}

/* "NAME=VALUE": NAME copied to nb, VALUE returned (NULL when malformed). */
static const char *split_named(const char *opt, const char *s, char nb[64])
{
    const char *eq = strchr(s, '=');

    if (eq == NULL || !name_ok(s, (size_t)(eq - s)) || eq[1] == '\0') {
        say("--%s: expected NAME=%s, NAME 1..63 of A-Z a-z 0-9 _ - . "
            "(got \"%.64s\")", opt,
            strcmp(opt, "issuer") == 0 ? "CAFILE[,CAFILE...]" : "OID|none",
            s);
        return NULL;
    }
    memcpy(nb, s, (size_t)(eq - s));
    nb[eq - s] = '\0';
    return eq + 1;
}

static int add_issuer(jpki_ctx *ctx, const char *spec)
{
    char name[64], files[ARG_MAX_LEN + 1], err[512] = "", *f, *save = NULL;
    const char *list = split_named("issuer", spec, name);
    jpki_issuer *is;
    int n = 0;

    if (list == NULL)
        return -1;
    if ((is = jpki_ctx_add_issuer(ctx, name)) == NULL) {
        say("--issuer: \"%s\" given twice (or over 16 issuers)", name);
        return -1;
    }
    snprintf(files, sizeof(files), "%s", list);
    for (f = strtok_r(files, ",", &save); f != NULL;
         f = strtok_r(NULL, ",", &save)) {
        if (++n > MAX_CAFILES) {
            say("--issuer %s: at most %d files", name, MAX_CAFILES);
            return -1;
        }
        if (jpki_issuer_add_certs_file(is, f, err, sizeof(err)) != JPKI_OK) {
            say("%s", err);
            return -1;
        }
    }
    if (n == 0)
        say("--issuer %s: no CA file given", name);
    return n > 0 ? 0 : -1;
}

static int set_policy(jpki_ctx *ctx, const char *spec, unsigned *done)
{
    const char *oid;
    char name[64];
    size_t i;

    if ((oid = split_named("policy", spec, name)) == NULL)
        return -1;
    for (i = 0; i < jpki_ctx_issuer_count(ctx); i++) {
        jpki_issuer *is = (jpki_issuer *)jpki_ctx_issuer(ctx, i);
        if (strcmp(jpki_issuer_name(is), name) != 0)
            continue;
        if (*done & (1u << i)) {
            say("--policy %s given twice", name);
            return -1;
        }
        *done |= 1u << i;
        if (jpki_issuer_set_policy(is, strcmp(oid, "none") == 0 ? NULL : oid)
            == JPKI_OK)
            return 0;
        say("--policy %s: \"%.64s\" is not a dotted OID or none", name, oid);
        return -1;
    }
    say("--policy %s: no --issuer of that name", name);
    return -1;
}

int set_secret(jpki_ctx *ctx, const args_t *a, int note)
{
    char err[512] = "";
    uint8_t s[JPKI_SECRET_MIN];
    int ok;

    if (a->val[O_SECRET] != NULL) {
        if (jpki_ctx_load_secret_file(ctx, a->val[O_SECRET], err, sizeof(err))
            == JPKI_OK)
            return 0;
        say("%s", err);
        return -1;
    }
    ok = getrandom(s, sizeof(s), 0) == (ssize_t)sizeof(s)
         && jpki_ctx_set_secret(ctx, s, sizeof(s)) == JPKI_OK;
    memset(s, 0, sizeof(s));
    if (!ok)
        say("cannot make a temporary secret");
    else if (note)
        say("note: no --secret-file: cert_id is made with a random secret; "
            "it differs from the gate's and changes on every run");
    return ok ? 0 : -1;
}

/* A finished context from --issuer, --policy and --secret-file. */
jpki_ctx *build_ctx(const args_t *a, int secret_note)
{
    jpki_ctx *ctx = jpki_ctx_new();
    char err[512] = "";
    unsigned done = 0;
    size_t i;

    if (ctx == NULL) {
        say("out of memory");
        return NULL;
    }
    /* one run checks one certificate at most: the gate's cache of
     * verified paths (thousands of entries, each cleared at exit) is of
     * no use here */
    jpki_ctx_policy(ctx)->chain_cache_size = 0;
    if (set_secret(ctx, a, secret_note) != 0)
        goto fail;
    for (i = 0; i < a->n_issuer; i++)
        if (add_issuer(ctx, a->issuer[i]) != 0)
            goto fail;
    for (i = 0; i < a->n_policy; i++)
        if (set_policy(ctx, a->policy[i], &done) != 0)
            goto fail;
    if (jpki_ctx_finish(ctx, err, sizeof(err)) == JPKI_OK)
        return ctx;
    say("configuration: %s", err[0] ? err : "invalid");
fail:
    jpki_ctx_free(ctx);
    return NULL;
}

/* ---- commands ----------------------------------------------------- */

static const struct command {
    const char *name, *sub;              /* sub: second word, or NULL */
    const char *usage;
    unsigned long long allowed, required;
    int (*run)(const args_t *a);
} commands[] = {
    {"sig-verify", NULL, usage_sig,
     BIT(O_CERT) | BIT(O_PUBKEY) | BIT(O_ALG) | BIT(O_MSG) | BIT(O_SIG)
     | BIT(O_ALLOW_SHA1), BIT(O_ALG) | BIT(O_MSG) | BIT(O_SIG),
     run_sig_verify},
    {"cert-check", NULL, usage_cert,
     BIT(O_CERT) | BIT(O_ISSUER) | BIT(O_POLICY) | BIT(O_AT) | BIT(O_SECRET),
     BIT(O_CERT) | BIT(O_ISSUER), run_cert_check},
    {"crl", "inspect", usage_crl,
     BIT(O_CRL) | BIT(O_ISSUER) | BIT(O_AT) | BIT(O_GRACE),
     BIT(O_CRL) | BIT(O_ISSUER), run_crl_inspect},
#define REDIS_OPTS (BIT(O_REDIS) | BIT(O_REDIS_DB) | BIT(O_REDIS_USER) \
                    | BIT(O_REDIS_PASSWORD) | BIT(O_REDIS_SENTINEL)       \
                    | BIT(O_REDIS_MASTER) | BIT(O_REDIS_PASSWORD_FILE)    \
                    | BIT(O_REDIS_TLS_CA) | BIT(O_REDIS_TLS_NAME)         \
                    | BIT(O_REDIS_TLS_CERT) | BIT(O_REDIS_TLS_KEY)        \
                    | BIT(O_REDIS_SENTINEL_PASSWORD_FILE))
#define MAP_BACKEND (REDIS_OPTS | BIT(O_MAP_FILE))
    {"crl", "sync", usage_crl_sync,
     BIT(O_SOURCE) | BIT(O_ISSUER) | BIT(O_POLICY) | BIT(O_SECRET)
     | BIT(O_GRACE) | BIT(O_WATCH) | BIT(O_ARL) | BIT(O_KEEP_OLD)
     | BIT(O_MAX_SIZE) | BIT(O_TIMEOUT) | BIT(O_FULL)
     | BIT(O_DELTA_MAX) | BIT(O_STATE_DIR) | REDIS_OPTS,
     BIT(O_SOURCE) | BIT(O_ISSUER) | BIT(O_SECRET) | BIT(O_REDIS),
     run_crl_sync},
    {"crl", "status", usage_crl_sync,
     BIT(O_ISSUER) | BIT(O_SECRET) | BIT(O_GRACE) | BIT(O_AT) | REDIS_OPTS,
     BIT(O_REDIS), run_crl_status},
    {"map", "add", usage_map,
     BIT(O_CERT) | BIT(O_SERIAL) | BIT(O_ISSUER) | BIT(O_SECRET)
     | BIT(O_ACCOUNT) | BIT(O_AT) | MAP_BACKEND, BIT(O_ACCOUNT), run_map_add},
    {"map", "remove", usage_map,
     BIT(O_CERT) | BIT(O_SERIAL) | BIT(O_CERT_ID) | BIT(O_ISSUER)
     | BIT(O_SECRET) | BIT(O_AT) | MAP_BACKEND, 0, run_map_remove},
    {"map", "list", usage_map, MAP_BACKEND, 0, run_map_list},
    {"map", "import", usage_map_bulk,
     BIT(O_FILE) | BIT(O_ISSUER) | BIT(O_SECRET) | BIT(O_DRY_RUN)
     | MAP_BACKEND, BIT(O_FILE) | BIT(O_ISSUER) | BIT(O_SECRET),
     run_map_import},
    {"map", "export", usage_map_bulk, BIT(O_ISSUER) | MAP_BACKEND, 0,
     run_map_export},
    {"map", "prune", usage_map_bulk,
     BIT(O_SECRET) | BIT(O_DRY_RUN) | BIT(O_AT) | MAP_BACKEND,
     BIT(O_SECRET), run_map_prune},
    {"logout", NULL, usage_logout,
     BIT(O_ACCOUNT) | BIT(O_SECRET) | REDIS_OPTS,
     BIT(O_ACCOUNT) | BIT(O_SECRET) | BIT(O_REDIS), run_logout},
    {"purge", NULL, usage_purge, BIT(O_REVOCATION) | MAP_BACKEND,
     BIT(O_REVOCATION), run_purge},
    {"recheck", NULL, usage_recheck,
     BIT(O_ISSUER) | BIT(O_POLICY) | BIT(O_SECRET) | BIT(O_GRACE) | BIT(O_AT)
     | REDIS_OPTS, BIT(O_ISSUER) | BIT(O_SECRET) | BIT(O_REDIS), run_recheck},
    {"audit", "verify", usage_audit,
     BIT(O_FILE) | BIT(O_SECRET) | BIT(O_KEY_FILE) | BIT(O_LAST_SEQ),
     BIT(O_FILE), run_audit_verify},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int parse_at(args_t *a)
{
    if (a->val[O_AT] == NULL || parse_time(a->val[O_AT], &a->now) == 0)
        return 0;
    say("--at: expected YYYY-MM-DDTHH:MM:SSZ (UTC) or seconds since the "
        "epoch, got \"%.64s\"", a->val[O_AT]);
    return -1;
}

static int run_command(const struct command *c, int argc, char **argv)
{
    int rc = SHOW_USAGE, skip = c->sub != NULL;
    args_t a;

    memset(&a, 0, sizeof(a));
    a.now = time(NULL);
    if (skip && (argc < 1 || strcmp(argv[0], c->sub) != 0)) {
        say("%s: expected \"%s %s\"", c->name, c->name, c->sub);
    } else if (parse_args(argc - skip, argv + skip, c->allowed | BIT(O_HELP),
                          c->run == run_audit_verify ? MAX_FILES : 1,
                          &a) == 0) {
        if (a.seen & BIT(O_HELP)) {
            fputs(c->usage, stdout);
            return EXIT_VALID;
        }
        /* --redis-sentinel stands for --redis (the store to use), which
         * it excludes (check_redis_opts) */
        if ((a.seen & BIT(O_REDIS_SENTINEL)) && !(a.seen & BIT(O_REDIS))) {
            a.val[O_REDIS] = a.val[O_REDIS_SENTINEL];
            a.seen |= BIT(O_REDIS);
        }
        if (check_redis_opts(&a) == 0 && require(&a, c->required) == 0
            && parse_at(&a) == 0)
            rc = c->run(&a);
    }
    OPENSSL_cleanse(redis_password, sizeof(redis_password));
    redis_opts_clear();
    if (rc == SHOW_USAGE) {
        fputs(c->usage, stderr);
        rc = EXIT_USAGE;
    }
    return rc;
}

/* The command named by argv[0] (and argv[1] when it has a second word). */
static const struct command *find_command(int argc, char **argv)
{
    const struct command *first = NULL;
    size_t i;
    for (i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, argv[0]) != 0)
            continue;
        if (first == NULL)
            first = &commands[i];
        if (commands[i].sub == NULL
            || (argc > 1 && strcmp(commands[i].sub, argv[1]) == 0))
            return &commands[i];
    }
    return first;
}

static void usage(FILE *f)
{
    size_t i;
    fputs(usage_head, f);
    for (i = 0; i < N_COMMANDS; i++)
        if (i == 0 || commands[i].usage != commands[i - 1].usage)
            fputs(commands[i].usage, f);
    fputs(usage_tail, f);
}

int main(int argc, char **argv)
{
    const struct command *c;

    /* hiredis 0.14 writes with write(): a connection Redis (or a proxy)
     * closed would kill the process with SIGPIPE (exit 141, no message,
     * crl sync's result line unprinted).  Ignored, the write fails with
     * EPIPE and the command reports the store failure. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0) {
        if (argc == 2)
            usage(stdout);
        else if ((c = find_command(argc - 2, argv + 2)) != NULL)
            fputs(c->usage, stdout);
        else {
            say("no command \"%.64s\"", argv[2]);
            return EXIT_USAGE;
        }
        return EXIT_VALID;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("jpkictl %s\n", JPKI_VERSION);
        return EXIT_VALID;
    }
    if ((c = find_command(argc - 1, argv + 1)) != NULL)
        return run_command(c, argc - 2, argv + 2);
    say("unknown command \"%.64s\" (jpkictl help lists them)", argv[1]);
    return EXIT_USAGE;
}
