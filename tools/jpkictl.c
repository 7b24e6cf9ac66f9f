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
#define KEY_FILE_MAX   (1024 * 1024)
#define MSG_FILE_MAX   (64 * 1024 * 1024)
#define SIG_FILE_MAX   (64 * 1024)
#define CERT_FILE_MAX  (1024 * 1024)

static const char usage_head[] =
"usage: jpkictl COMMAND [OPTIONS]       (jpkictl help COMMAND for one)\n"
"Checks signatures, certificates and CRLs exactly as the JPKI login gate\n"
"does.  Exit status: 0 valid, 1 invalid (the verdict gives the reason word\n"
"the gate logs and returns), 2 usage or input error (message on stderr);\n"
"the store commands (crl sync, crl status, purge, recheck, map) add 3 not\n"
"newer, 4 fetch failed, 5 store failed (see each command).\n"
"Options: --opt VALUE or --opt=VALUE; -h/--help after a command.\n\n";

static const char usage_sig[] =
"jpkictl sig-verify (--cert FILE | --pubkey FILE) --alg ALG --msg FILE\n"
"                   --sig FILE [--allow-sha1]\n"
"  Verifies a signature strictly; prints \"signature valid\" (exit 0) or\n"
"  \"signature invalid: REASON\" (exit 1; REASON signature_invalid or\n"
"  signature_algorithm).\n"
"  --cert FILE    the signer's certificate (PEM, DER or base64); no path\n"
"                 check is made (see cert-check)\n"
"  --pubkey FILE  or its public key (PEM \"PUBLIC KEY\" or DER\n"
"                 SubjectPublicKeyInfo: openssl x509 -pubkey -noout);\n"
"                 either option accepts either form\n"
"  --alg ALG      rsa-pkcs1-sha256 | rsa-pkcs1-sha384 | rsa-pkcs1-sha512 |\n"
"                 rsa-pkcs1-sha1 | ecdsa-sha256 | ecdsa-sha384; an ALG that\n"
"                 does not fit the key type gives signature_algorithm\n"
"  --msg FILE     the exact bytes signed (a login signs the 100 ASCII\n"
"                 characters of the challenge: no newline, no quotes)\n"
"  --sig FILE     raw binary, or base64 (standard or URL alphabet, line\n"
"                 breaks allowed); hex is not accepted\n"
"  --allow-sha1   accept rsa-pkcs1-sha1 (to examine old signatures; the\n"
"                 gate always refuses SHA-1).  Without it: exit 1, reason\n"
"                 signature_algorithm, as at the gate.\n"
"  Strict: an RSA signature is exactly as long as the modulus and its\n"
"  DigestInfo byte for byte the DER of RFC 8017 (no BER, no missing NULL\n"
"  parameter, no trailing bytes).  An ECDSA signature is a DER\n"
"  ECDSA-Sig-Value (as openssl dgst -sign writes); raw r||s (WebCrypto,\n"
"  PKCS#11 CKM_ECDSA) must be converted to DER by the client.\n\n";

static const char usage_cert[] =
"jpkictl cert-check --cert FILE --issuer NAME=CAFILE[,CAFILE...]\n"
"                   [--issuer ...] [--policy NAME=OID|none] [--at TIME]\n"
"                   [--secret-file FILE]\n"
"  Validates a login certificate (PEM, DER or base64) as the gate does:\n"
"  path to a trust anchor, validity, not a CA, digitalSignature, the\n"
"  issuer's policy, RSA >= 2048 bits or EC P-256/P-384; every certificate\n"
"  of the path (leaf, link, intermediate; not an anchor's self-signature)\n"
"  signed with SHA-256 or stronger by a CA key of RSA >= 2048 bits or EC\n"
"  >= P-256.  Prints\n"
"    OK issuer=NAME cert_id=HEX not_after=TIME   (exit 0; not_after: the\n"
"                                                 earliest of the path)\n"
"    FAIL REASON: DETAIL                         (exit 1)\n"
"  REASON: cert_malformed cert_unknown_issuer cert_chain_invalid\n"
"  cert_expired cert_not_yet_valid cert_is_ca cert_key_usage cert_policy\n"
"  cert_key_not_allowed cert_signature_algorithm\n"
"  --issuer NAME=CAFILE,...  one issuer, as in the gate's configuration:\n"
"                 self-signed CA certificates become trust anchors, others\n"
"                 (link certificates) intermediates; PEM bundles allowed.\n"
"                 NAME: 1..63 of A-Z a-z 0-9 _ - . (no ',' in CAFILE)\n"
"  --policy NAME=OID|none  policy issuer NAME requires (default\n"
"                 1.2.392.200149.8.5.1.3.30, JPKI user authentication)\n"
"  --at TIME      check at TIME, not now: YYYY-MM-DDTHH:MM:SSZ (UTC) or\n"
"                 seconds since the epoch\n"
"  --secret-file FILE  the site secret file (mode 600): cert_id is then the\n"
"                 one the gate uses.  Without it a random secret is used\n"
"                 and cert_id changes on every run.\n"
"\n";

static const char usage_crl[] =
"jpkictl crl inspect --crl FILE --issuer NAME=CAFILE[,CAFILE...]\n"
"                    [--issuer ...] [--at TIME] [--grace SECONDS]\n"
"  Verifies a CRL (DER or PEM) as the gate does.  Prints issuer,\n"
"  thisUpdate, nextUpdate (UTC), crlNumber, entries and \"signature: ok\"\n"
"  when the signature verified, else only \"signature: REASON: DETAIL\";\n"
"  then \"fresh: yes|stale|not_yet_valid|unknown\".  Exit 0 when valid\n"
"  and fresh, 1 otherwise.\n"
"  --grace SECONDS  stale after nextUpdate + SECONDS (0 or absent: the\n"
"                 clock skew, 300 s)\n"
"  --issuer, --at  as for cert-check\n\n";

static const char usage_logout[] =
"jpkictl logout --account ID --secret-file FILE --redis ADDR\n"
"  Ends every session of the account on every node of the site, those signed\n"
"  in until now: writes the account's logout marker (outa:<account_id>, a\n"
"  keyed hash of the account) and a record in the logout log, which every\n"
"  node's gate reads twice a second (docs/store-schema.md \"out\").  Logins\n"
"  after it are not concerned.  Needs the Redis store: the embedded store\n"
"  lives inside one gate.\n"
"  --secret-file  the gate's site secret file (account_id depends on it)\n"
"  --redis ADDR   HOST:PORT or unix:PATH; --redis-db N, --redis-user U,\n"
"                 --redis-password P (prefer env JPKI_REDIS_PASSWORD)\n"
"  Exit: 0 done; 2 usage; 5 Redis failed.\n\n";

static const char usage_map[] =
"jpkictl map add (--cert FILE | --serial N) --issuer NAME=CAFILE[,...]\n"
"                --account ID --secret-file FILE (--redis ADDR | --map-file F)\n"
"jpkictl map remove (--cert FILE | --serial N | --cert-id HEX) ...\n"
"jpkictl map list (--redis ADDR | --map-file FILE)\n"
"  Binds a user-authentication certificate to an account, by cert_id (the\n"
"  keyed hash of issuer key and serial; the serial itself is never stored).\n"
"  --cert FILE    the certificate (checked against --issuer first)\n"
"  --serial N     its serial (decimal or 0x-hex) as read off the card; the\n"
"                 issuer's last CA file must be the generation that issued it;\n"
"                 --serial - reads it from standard input (a command line is\n"
"                 visible to other local users)\n"
"  --secret-file  the gate's site secret file (cert_id depends on it)\n"
"  --redis ADDR   HOST:PORT or unix:PATH; --redis-db N, --redis-user U\n"
"  --redis-password P  prefer env JPKI_REDIS_PASSWORD: P is blanked in the\n"
"                 process list once read, but shows there until then\n"
"  --map-file F   the gate's mapping file (one machine, embedded store):\n"
"                 replaced whole, keeping its mode, owner and group (a new\n"
"                 file: mode 0640, chgrp it to the gate's group); F.lock\n"
"                 serialises runs.  Nothing changes when F cannot be read.\n"
"  Exit: 0 done; 1 not mapped (remove) or certificate refused (FAIL line);\n"
"  2 usage or mapping file error; 5 Redis failed.\n\n";

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
    [O_TIMEOUT] = {"timeout", 1, A},
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
 * --redis-password is copied and its characters in argv overwritten with
 * 'x', as mysql does: /proc/PID/cmdline (ps) is readable by every local
 * user.  It shows the password from exec until then, hence the advice to
 * use JPKI_REDIS_PASSWORD. */
static int parse_args(int argc, char **argv, unsigned allowed, args_t *a)
{
    const char *val;
    int i, o;

    for (i = 0; i < argc; i++) {
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

static int require(const args_t *a, unsigned mask)
{
    int o;
    for (o = 0; o < O__COUNT; o++)
        if ((mask & BIT(o)) && !(a->seen & BIT(o))) {
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

static int set_secret(jpki_ctx *ctx, const args_t *a, int note)
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

/* ---- sig-verify --------------------------------------------------- */

/* 2: base64 character (either alphabet, or '='), 1: whitespace, 0: other */
static int b64_class(uint8_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || (c != 0 && strchr("+/-_=", c)))
        return 2;
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Base64 when the file holds only base64 characters and whitespace (a raw
 * signature of only those bytes is vanishingly unlikely), raw otherwise.
 * buf is compacted in place; *out is buf itself when raw. */
static int decode_sig(uint8_t *buf, size_t len, uint8_t **out,
                      size_t *outlen, int *was_b64)
{
    size_t i, n = 0;

    for (i = 0; i < len && b64_class(buf[i]) != 0; i++)
        ;
    *was_b64 = i == len;
    *out = buf;
    *outlen = len;
    if (!*was_b64)
        return 0;
    for (i = 0; i < len; i++)
        if (b64_class(buf[i]) == 2)
            buf[n++] = buf[i];
    *out = malloc(jpki_b64_decoded_max(n) + 1);
    if (*out != NULL && n > 0
        && jpki_b64_decode((const char *)buf, n, *out, outlen) == JPKI_OK
        && *outlen > 0)
        return 0;
    free(*out);
    *out = NULL;
    say("the signature file looks like base64 but does not decode");
    return -1;
}

static void sig_hint(jpki_err e, jpki_sig_alg alg, int allow_sha1)
{
    if (e == JPKI_ERR_SIG_ALG && alg == JPKI_SIG_RSA_PKCS1_SHA1 && !allow_sha1)
        say("hint: rsa-pkcs1-sha1 is refused, as the gate refuses it; "
            "--allow-sha1 accepts it here, to examine old signatures");
    else if (e == JPKI_ERR_SIG_ALG)
        say("hint: %s does not fit the key: RSA keys take rsa-pkcs1-*, EC "
            "keys ecdsa-*", jpki_sig_alg_name(alg));
    else
        say("hint: other key or message, hash other than ALG's, length not "
            "the modulus', DigestInfo not DER, or raw r||s ECDSA");
}

static int verify_files(const args_t *a, const char *keypath,
                        jpki_sig_alg alg)
{
    uint8_t *key = NULL, *msg = NULL, *raw = NULL, *sig = NULL;
    size_t keylen, msglen, rawlen, siglen;
    int rc = EXIT_USAGE, b64 = 0, sha1 = (a->seen & BIT(O_ALLOW_SHA1)) != 0;
    jpki_err e;

    if (load("key", keypath, KEY_FILE_MAX, &key, &keylen) != 0
        || load("message", a->val[O_MSG], MSG_FILE_MAX, &msg, &msglen) != 0
        || load("signature", a->val[O_SIG], SIG_FILE_MAX, &raw, &rawlen) != 0)
        goto out;
    if (rawlen == 0) {
        say("the signature file is empty");
        goto out;
    }
    if (decode_sig(raw, rawlen, &sig, &siglen, &b64) != 0)
        goto out;
    e = jpki_sig_verify_pubkey(key, keylen, alg, sha1, msg, msglen, sig,
                               siglen);
    if (e == JPKI_OK) {
        printf("signature valid\n");
        rc = EXIT_VALID;
    } else if (e == JPKI_ERR_SIG_ALG || e == JPKI_ERR_SIG_INVALID) {
        printf("signature invalid: %s\n", jpki_reason(e));
        say("%s (%s, signature of %zu bytes read as %s)", jpki_strerror(e),
            jpki_sig_alg_name(alg), siglen, b64 ? "base64" : "raw binary");
        sig_hint(e, alg, sha1);
        rc = EXIT_INVALID;
    } else if (e == JPKI_ERR_PARSE) {
        say("\"%s\" holds no usable public key or certificate (PEM \"PUBLIC "
            "KEY\" or \"CERTIFICATE\", DER or base64)", keypath);
    } else {
        say("verification failed: %s", jpki_strerror(e));
    }
out:
    if (sig != raw)
        free(sig);
    free(raw);
    free(msg);
    free(key);
    return rc;
}

static int run_sig_verify(const args_t *a)
{
    int alg;

    if (!(a->seen & BIT(O_CERT)) == !(a->seen & BIT(O_PUBKEY))) {
        say("give exactly one of --cert and --pubkey");
        return SHOW_USAGE;
    }
    alg = jpki_sig_alg_from_name(a->val[O_ALG], strlen(a->val[O_ALG]));
    if (alg < 0) {
        say("unknown --alg \"%.64s\"", a->val[O_ALG]);
        return SHOW_USAGE;
    }
    return verify_files(a, a->val[O_CERT] ? a->val[O_CERT] : a->val[O_PUBKEY],
                        (jpki_sig_alg)alg);
}

/* ---- cert-check --------------------------------------------------- */

static int run_cert_check(const args_t *a)
{
    char detail[512] = "", t[32];
    jpki_ctx *ctx = NULL;
    jpki_cert *c = NULL;
    uint8_t *buf = NULL;
    size_t len;
    jpki_err e;
    int rc = EXIT_USAGE;

    if (load("certificate", a->val[O_CERT], CERT_FILE_MAX, &buf, &len) != 0
        || (ctx = build_ctx(a, 1)) == NULL)
        goto out;
    e = jpki_cert_check(ctx, buf, len, a->now, &c, detail, sizeof(detail));
    if (e == JPKI_OK) {
        printf("OK issuer=%s cert_id=%s not_after=%s\n",
               jpki_issuer_name(jpki_cert_issuer(c)), jpki_cert_id_hex(c),
               iso8601((int64_t)jpki_cert_not_after(c), t));
        rc = EXIT_VALID;
    } else {
        printf("FAIL %s: %s\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
        rc = EXIT_INVALID;
    }
out:
    jpki_cert_free(c);
    jpki_ctx_free(ctx);
    free(buf);
    return rc;
}

/* ---- crl inspect -------------------------------------------------- */

static void print_crl(jpki_err e, const jpki_crl_info *info,
                      const char *detail)
{
    char t[32];

    if (e != JPKI_OK && e != JPKI_ERR_CRL_STALE
        && e != JPKI_ERR_CRL_NOT_YET_VALID) {     /* nothing else is known */
        printf("signature: %s: %s\nfresh: unknown\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
        return;
    }
    printf("issuer: %s\n",
           info->issuer != NULL ? jpki_issuer_name(info->issuer) : "?");
    printf("thisUpdate: %s\n", iso8601(info->this_update, t));
    printf("nextUpdate: %s\n",
           info->next_update != 0 ? iso8601(info->next_update, t) : "none");
    if (info->crl_number >= 0)
        printf("crlNumber: %lld\n", (long long)info->crl_number);
    else
        printf("crlNumber: none\n");
    printf("entries: %llu\nsignature: ok\n",
           (unsigned long long)info->entries);
    printf("fresh: %s\n", e == JPKI_OK ? "yes"
           : e == JPKI_ERR_CRL_STALE ? "stale" : "not_yet_valid");
    if (e != JPKI_OK)
        say("%s", detail[0] ? detail : jpki_strerror(e));
}

static int run_crl_inspect(const args_t *a)
{
    const char *g = a->val[O_GRACE];
    char detail[512] = "";
    jpki_crl_info info;
    jpki_ctx *ctx = NULL;
    uint8_t *buf = NULL;
    size_t len;
    jpki_err e;
    int rc = EXIT_USAGE;

    if (g != NULL && (!all_digits(g, strlen(g)) || strlen(g) > 10
                      || strtoull(g, NULL, 10) > GRACE_MAX)) {
        say("--grace: expected seconds, 0..%u", GRACE_MAX);
        return SHOW_USAGE;
    }
    if (load("CRL", a->val[O_CRL], JPKI_CRL_MAX, &buf, &len) != 0
        || (ctx = build_ctx(a, 0)) == NULL)
        goto out;
    memset(&info, 0, sizeof(info));
    e = jpki_crl_verify(ctx, buf, len, a->now,
                        g != NULL ? (unsigned)strtoul(g, NULL, 10) : 0, &info,
                        detail, sizeof(detail));
    print_crl(e, &info, detail);
    rc = e == JPKI_OK ? EXIT_VALID : EXIT_INVALID;
out:
    jpki_ctx_free(ctx);
    free(buf);
    return rc;
}

/* ---- map add | remove | list -------------------------------------- */

/* --redis HOST:PORT: the host into host[hostlen] and the port; -1 when
 * malformed.  The port is all digits: strtol would read "6379abc" as
 * 6379. */
static int redis_addr(const char *addr, char *host, size_t hostlen,
                      int *port)
{
    const char *colon = strrchr(addr, ':');
    unsigned long long p;

    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hostlen
        || tool_uint(colon + 1, strlen(colon + 1), 1, 65535, &p) != 0)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (int)p;
    return 0;
}

/* --redis and --redis-db, checked before any command runs: a mistyped
 * value is a usage error (exit 2), never another port or database 0. */
static int check_redis_opts(const args_t *a)
{
    const char *addr = a->val[O_REDIS];
    unsigned long long db;
    char host[256];
    int port;

    if (addr != NULL
        && (strncmp(addr, "unix:", 5) == 0
            ? addr[5] == '\0'
            : redis_addr(addr, host, sizeof(host), &port) != 0)) {
        say("--redis: expected HOST:PORT (PORT 1..65535) or unix:PATH, got "
            "\"%.64s\"", addr);
        return -1;
    }
    return opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db);
}

redisContext *redis_open(const args_t *a)
{
    const char *addr = a->val[O_REDIS], *pw;
    struct timeval tv = {3, 0};
    unsigned long long db;
    redisContext *rc;
    redisReply *r;
    char host[256];
    int port;

    /* both checked by check_redis_opts() before the command ran */
    if (opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db) != 0)
        return NULL;
    if (strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else if (redis_addr(addr, host, sizeof(host), &port) == 0) {
        rc = redisConnectWithTimeout(host, port, tv);
    } else {
        say("--redis: expected HOST:PORT or unix:PATH");
        return NULL;
    }
    if (rc == NULL || rc->err) {
        say("redis: cannot connect to %.200s", addr);
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    pw = a->val[O_REDIS_PASSWORD] ? a->val[O_REDIS_PASSWORD]
         : getenv("JPKI_REDIS_PASSWORD");
    if (pw != NULL) {
        r = a->val[O_REDIS_USER]
            ? redisCommand(rc, "AUTH %s %s", a->val[O_REDIS_USER], pw)
            : redisCommand(rc, "AUTH %s", pw);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            if (r == NULL)
                say("redis: AUTH: %.200s", rc->errstr);
            else
                say("redis: authentication refused");
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (a->val[O_REDIS_DB] != NULL) {
        r = redisCommand(rc, "SELECT %llu", db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            say("redis: SELECT %llu: %.200s", db,
                r == NULL ? rc->errstr : "refused");
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* The cert_id named by --cert, --serial or --cert-id. */
static int map_cert_id(const args_t *a, char id[JPKI_CERT_ID_HEX_LEN + 1])
{
    char detail[512] = "";
    jpki_ctx *ctx;
    jpki_cert *c = NULL;
    uint8_t *buf = NULL;
    size_t len, n = 0;
    jpki_err e;
    int given = !!a->val[O_CERT] + !!a->val[O_SERIAL] + !!a->val[O_CERT_ID];

    if (given != 1) {
        say("give one of --cert, --serial%s", a->val[O_ACCOUNT] ? ""
            : " or --cert-id");
        return EXIT_USAGE;
    }
    if (a->val[O_CERT_ID] != NULL) {
        n = strlen(a->val[O_CERT_ID]);
        if (n != JPKI_CERT_ID_HEX_LEN
            || strspn(a->val[O_CERT_ID], "0123456789abcdef") != n) {
            say("--cert-id: expected %d lower-case hex digits",
                JPKI_CERT_ID_HEX_LEN);
            return EXIT_USAGE;
        }
        memcpy(id, a->val[O_CERT_ID], n + 1);
        return EXIT_VALID;
    }
    if (a->n_issuer == 0 || a->val[O_SECRET] == NULL) {
        say("--issuer and --secret-file are needed to compute the cert_id");
        return EXIT_USAGE;
    }
    if ((ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if (a->val[O_SERIAL] != NULL) {
        char line[200];
        const char *sn = a->val[O_SERIAL];

        /* "-": one line on standard input, out of the process list */
        if (strcmp(sn, "-") == 0) {
            sn = fgets(line, sizeof(line), stdin);
            if (sn != NULL)
                line[strcspn(line, "\r\n")] = '\0';
        }
        e = sn != NULL ? jpki_cert_id_from_serial_text(
                             ctx, jpki_ctx_issuer(ctx, 0), sn, id)
                       : JPKI_ERR_INVALID;
        OPENSSL_cleanse(line, sizeof(line));
        jpki_ctx_free(ctx);
        if (e != JPKI_OK)
            say("--serial: expected a decimal or 0x-hex number");
        return e == JPKI_OK ? EXIT_VALID : EXIT_USAGE;
    }
    if (load("certificate", a->val[O_CERT], CERT_FILE_MAX, &buf, &len) != 0) {
        jpki_ctx_free(ctx);
        return EXIT_USAGE;
    }
    e = jpki_cert_check(ctx, buf, len, a->now, &c, detail, sizeof(detail));
    free(buf);
    if (e == JPKI_OK)
        memcpy(id, jpki_cert_id_hex(c), JPKI_CERT_ID_HEX_LEN + 1);
    else
        printf("FAIL %s: %s\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
    jpki_cert_free(c);
    jpki_ctx_free(ctx);
    return e == JPKI_OK ? EXIT_VALID : EXIT_INVALID;
}

static int map_backend(const args_t *a)
{
    if (!!a->val[O_REDIS] + !!a->val[O_MAP_FILE] != 1) {
        say("give one of --redis or --map-file");
        return -1;
    }
    return 0;
}

#define MAP_FILE_MODE  0640       /* a new mapping file; see map_file_update */

/* Best effort: makes a rename in path's directory durable.  The rename is
 * done and seen whatever happens here. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[ARG_MAX_LEN + 1];
    int fd;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s",
                 slash == path ? 1 : (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Rewrites the mapping file without cert_id's line, then (add) appends the
 * new line.  The gate may read the file at any moment, and it holds every
 * mapping of the site, so:
 * - the new content goes to a new temporary file beside it, made by
 *   mkstemp (a fixed name could be a symlink planted by whoever can write
 *   the directory), synced, then renamed over the file: the gate reads the
 *   old file or the new one, never half of one, even after a crash;
 * - any error reading the old file stops the run before anything is
 *   replaced: a file read in part would lose the other mappings;
 * - the new file gets the old one's mode, owner and group (typically
 *   0640 root:<the gate's group>; only root can give another owner); a new
 *   one is MAP_FILE_MODE, as mappings say who may log in as whom;
 * - runs are serialised by an flock on "F.lock": two runs at once would
 *   each write the old content plus their own line, and one change would
 *   be lost.  The lock file stays: removing it would let a third run lock
 *   another inode. */
static int map_file_update(const char *path, const char *id,
                           const char *account, int *found)
{
    char tmp[ARG_MAX_LEN + 16], lockpath[ARG_MAX_LEN + 16], *line = NULL;
    int lock = -1, fd = -1, tfd = -1, made = 0, nl = 1, rc = -1, err;
    mode_t mode = MAP_FILE_MODE;
    struct stat st, tst;
    FILE *in = NULL, *out = NULL;
    size_t cap = 0;
    ssize_t n;

    *found = 0;
    snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    lock = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        say("cannot lock %.200s: %s", lockpath, strerror(errno));
        goto out;
    }

    /* O_NONBLOCK: a FIFO at path must not hang the run (refused below) */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        say("cannot read %.200s: %s; nothing changed", path, strerror(errno));
        goto out;
    }
    if (fd >= 0) {
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            say("%.200s is not a regular file; nothing changed", path);
            goto out;
        }
        if ((in = fdopen(fd, "r")) == NULL) {
            say("cannot read %.200s: %s; nothing changed", path,
                strerror(errno));
            goto out;
        }
        fd = -1;                                /* in owns it */
        mode = st.st_mode & 0777;
    }

    if ((tfd = mkstemp(tmp)) < 0) {
        say("cannot create a temporary file beside %.200s: %s; nothing "
            "changed", path, strerror(errno));
        goto out;
    }
    made = 1;
    if (in != NULL
        && (fstat(tfd, &tst) != 0
            || ((tst.st_uid != st.st_uid || tst.st_gid != st.st_gid)
                && fchown(tfd, st.st_uid, st.st_gid) != 0))) {
        say("cannot give the new %.200s the owner and group of the old one "
            "(%u:%u): %s; nothing changed (run as root or as its owner)",
            path, (unsigned)st.st_uid, (unsigned)st.st_gid, strerror(errno));
        goto out;
    }
    /* after fchown, which may clear mode bits */
    if (fchmod(tfd, mode) != 0 || (out = fdopen(tfd, "w")) == NULL) {
        say("cannot write %.200s: %s; nothing changed", tmp, strerror(errno));
        goto out;
    }
    tfd = -1;                                   /* out owns it */

    while (in != NULL && (n = getline(&line, &cap, in)) > 0) {
        if ((size_t)n > JPKI_CERT_ID_HEX_LEN
            && strncmp(line, id, JPKI_CERT_ID_HEX_LEN) == 0
            && line[JPKI_CERT_ID_HEX_LEN] == ' ') {
            *found = 1;
            continue;
        }
        fwrite(line, 1, (size_t)n, out);
        nl = line[n - 1] == '\n';
    }
    if (in != NULL && ferror(in)) {
        say("cannot read %.200s: %s; nothing changed", path, strerror(errno));
        goto out;
    }
    if (!nl)                        /* a last line without its newline */
        fputc('\n', out);
    if (account != NULL)
        fprintf(out, "%s %s\n", id, account);
    err = fflush(out) != 0 || fsync(fileno(out)) != 0;
    if (fclose(out) != 0 || err) {
        out = NULL;
        say("cannot write %.200s: %s; nothing changed", tmp, strerror(errno));
        goto out;
    }
    out = NULL;
    if (rename(tmp, path) != 0) {
        say("cannot replace %.200s: %s; nothing changed", path,
            strerror(errno));
        goto out;
    }
    made = 0;
    sync_dir(path);
    rc = 0;
out:
    if (out != NULL)
        fclose(out);
    if (tfd >= 0)
        close(tfd);
    if (made)
        unlink(tmp);
    if (in != NULL)
        fclose(in);
    if (fd >= 0)
        close(fd);
    if (lock >= 0)
        close(lock);                            /* releases the flock */
    free(line);
    return rc;
}

static int redis_map_cmd(const args_t *a, const char *id, const char *account,
                         long long *n)
{
    redisContext *rc = redis_open(a);
    redisReply *r;
    char key[80];

    if (rc == NULL)
        return -1;
    snprintf(key, sizeof(key), JPKI_STORE_PREFIX "map:%s", id);
    r = account ? redisCommand(rc, "SET %s %s", key, account)
        : redisCommand(rc, "DEL %s", key);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        say("redis: %s failed: %.200s", account ? "SET" : "DEL",
            r != NULL ? r->str : rc->errstr);
        freeReplyObject(r);
        redisFree(rc);
        return -1;
    }
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 1;
    freeReplyObject(r);
    redisFree(rc);
    return 0;
}

/* ---- logout ------------------------------------------------------- */

static int run_logout(const args_t *a)
{
    char id[JPKI_ACCOUNT_ID_HEX_LEN + 1], rec[128];
    const char *acct = a->val[O_ACCOUNT];
    jpki_ctx *ctx = jpki_ctx_new();
    redisContext *rc = NULL;
    redisReply *r = NULL;
    long long n = -1;
    int ok = 0;

    if (ctx == NULL || set_secret(ctx, a, 0) != 0
        || jpki_account_id(ctx, acct, strlen(acct), id) != JPKI_OK) {
        if (ctx != NULL && a->val[O_SECRET] != NULL)
            say("--account: 1..%d bytes, no control characters, '\"' or "
                "'\\'", JPKI_ACCOUNT_MAX);
        jpki_ctx_free(ctx);
        return EXIT_USAGE;
    }
    jpki_ctx_free(ctx);
    rc = redis_open(a);
    if (rc == NULL)
        return EXIT_STORE;
    /* the marker, then the record the other nodes read (outsync.c) */
    r = redisCommand(rc, "SET " JPKI_STORE_PREFIX "outa:%s %lld PX %llu", id,
                     (long long)a->now,
                     (unsigned long long)(30ull * 86400 + 300) * 1000);
    if (r != NULL && r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        r = redisCommand(rc, "INCR " JPKI_STORE_PREFIX "outseq");
        if (r != NULL && r->type == REDIS_REPLY_INTEGER)
            n = r->integer;
    }
    if (n > 0) {
        freeReplyObject(r);
        snprintf(rec, sizeof(rec), "a|%s|%lld|%u", id, (long long)a->now,
                 (unsigned)JPKI_OUTLOG_TTL);
        r = redisCommand(rc, "SET " JPKI_STORE_PREFIX "outlog:%lld %s PX %u",
                         n, rec, (unsigned)JPKI_OUTLOG_TTL * 1000u);
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    }
    if (!ok)
        say("redis: logout failed: %.200s", r != NULL && r->str != NULL
            ? r->str : rc->errstr);
    freeReplyObject(r);
    redisFree(rc);
    if (!ok)
        return EXIT_STORE;
    printf("logged out account=%s at=%lld\n", acct, (long long)a->now);
    return EXIT_VALID;
}

static int run_map_add(const args_t *a)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1];
    const char *acct = a->val[O_ACCOUNT];
    long long n = 0;
    int rc, found;

    if (!jpki_account_valid(acct, strlen(acct))) {
        say("--account: 1..%d bytes, no control characters, '\"' or '\\'",
            JPKI_ACCOUNT_MAX);
        return EXIT_USAGE;
    }
    if (map_backend(a) != 0)
        return EXIT_USAGE;
    if ((rc = map_cert_id(a, id)) != EXIT_VALID)
        return rc;
    if (a->val[O_MAP_FILE] != NULL) {
        if (map_file_update(a->val[O_MAP_FILE], id, acct, &found) != 0)
            return EXIT_USAGE;
    } else if (redis_map_cmd(a, id, acct, &n) != 0) {
        return EXIT_STORE;
    }
    printf("mapped cert_id=%s account=%s\n", id, acct);
    return EXIT_VALID;
}

static int run_map_remove(const args_t *a)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1];
    long long n = 0;
    int rc, found = 0;

    if (map_backend(a) != 0)
        return EXIT_USAGE;
    if ((rc = map_cert_id(a, id)) != EXIT_VALID)
        return rc;
    if (a->val[O_MAP_FILE] != NULL) {
        if (map_file_update(a->val[O_MAP_FILE], id, NULL, &found) != 0)
            return EXIT_USAGE;
    } else if (redis_map_cmd(a, id, NULL, &n) != 0) {
        return EXIT_STORE;
    }
    found = found || n > 0;
    printf("%s cert_id=%s\n", found ? "removed" : "not mapped", id);
    return found ? EXIT_VALID : EXIT_INVALID;
}

/* A SCAN reply is [cursor, [key, ...]].  Whatever else answers (another
 * server on that port, a proxy, a future Redis) is refused, not read: a
 * cursor that is not digits would be sent back as is, a key that is not a
 * string has no text. */
static int scan_reply_ok(const redisReply *r)
{
    const redisReply *cur, *keys;
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return 0;
    cur = r->element[0];
    keys = r->element[1];
    if (cur->type != REDIS_REPLY_STRING || cur->len > 20
        || !all_digits(cur->str, cur->len) || keys->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < keys->elements; i++)
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

static int run_map_list(const args_t *a)
{
    redisContext *rc;
    redisReply *r, *g, *k;
    char cursor[32] = "0";
    size_t i, plen = strlen(JPKI_STORE_PREFIX "map:");
    uint8_t *buf;
    size_t len;

    if (map_backend(a) != 0)
        return EXIT_USAGE;
    if (a->val[O_MAP_FILE] != NULL) {
        if (load("mapping file", a->val[O_MAP_FILE], 64 << 20, &buf, &len))
            return EXIT_USAGE;
        fwrite(buf, 1, len, stdout);
        free(buf);
        return EXIT_VALID;
    }
    if ((rc = redis_open(a)) == NULL)
        return EXIT_STORE;
    do {
        r = redisCommand(rc, "SCAN %s MATCH " JPKI_STORE_PREFIX "map:* "
                         "COUNT 1000", cursor);
        if (!scan_reply_ok(r)) {
            say("redis: SCAN failed: %.200s", r == NULL ? rc->errstr
                : r->type == REDIS_REPLY_ERROR ? r->str
                : "the answer is not a SCAN reply");
            goto fail;
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
        for (i = 0; i < r->element[1]->elements; i++) {
            k = r->element[1]->element[i];
            g = redisCommand(rc, "GET %b", k->str, k->len);
            /* a lost connection or a refused GET would otherwise end the
             * list early with exit 0; nil: deleted since the SCAN */
            if (g == NULL || g->type == REDIS_REPLY_ERROR) {
                say("redis: GET failed: %.200s", g != NULL ? g->str
                    : rc->errstr);
                freeReplyObject(g);
                goto fail;
            }
            if (g->type == REDIS_REPLY_STRING && k->len > plen)
                printf("%s %.*s\n", k->str + plen, (int)g->len, g->str);
            freeReplyObject(g);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    return EXIT_VALID;
fail:
    freeReplyObject(r);
    redisFree(rc);
    return EXIT_STORE;
}

/* ---- commands ----------------------------------------------------- */

static const struct command {
    const char *name, *sub;              /* sub: second word, or NULL */
    const char *usage;
    unsigned allowed, required;
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
                    | BIT(O_REDIS_PASSWORD))
#define MAP_BACKEND (REDIS_OPTS | BIT(O_MAP_FILE))
    {"crl", "sync", usage_crl_sync,
     BIT(O_SOURCE) | BIT(O_ISSUER) | BIT(O_POLICY) | BIT(O_SECRET)
     | BIT(O_GRACE) | BIT(O_WATCH) | BIT(O_ARL) | BIT(O_KEEP_OLD)
     | BIT(O_MAX_SIZE) | BIT(O_TIMEOUT) | REDIS_OPTS,
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
    {"logout", NULL, usage_logout,
     BIT(O_ACCOUNT) | BIT(O_SECRET) | REDIS_OPTS,
     BIT(O_ACCOUNT) | BIT(O_SECRET) | BIT(O_REDIS), run_logout},
    {"purge", NULL, usage_purge, BIT(O_REVOCATION) | MAP_BACKEND,
     BIT(O_REVOCATION), run_purge},
    {"recheck", NULL, usage_recheck,
     BIT(O_ISSUER) | BIT(O_POLICY) | BIT(O_SECRET) | BIT(O_GRACE) | BIT(O_AT)
     | REDIS_OPTS, BIT(O_ISSUER) | BIT(O_SECRET) | BIT(O_REDIS), run_recheck},
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
                          &a) == 0) {
        if (a.seen & BIT(O_HELP)) {
            fputs(c->usage, stdout);
            return EXIT_VALID;
        }
        if (require(&a, c->required) == 0 && parse_at(&a) == 0
            && check_redis_opts(&a) == 0)
            rc = c->run(&a);
    }
    OPENSSL_cleanse(redis_password, sizeof(redis_password));
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
