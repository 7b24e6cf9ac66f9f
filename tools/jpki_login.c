/*
 * jpki-login - signs in at a JPKI login gate (nginx or Apache) with a My
 * Number Card or any PKCS#11 token: GET <url>/challenge, the card signs
 * the 100 characters of the challenge, POST <url>/login (docs/protocol.md,
 * docs/client.md).
 *
 * The card signs whatever it is given, so nothing but a well-formed,
 * current JPKI challenge is given to it, and that is checked before the
 * PIN is asked (check_challenge): a gate, or anyone between it and us,
 * cannot have the card sign other text.  For the same reason plain http
 * is refused to other hosts than this one (--insecure-http to allow it).
 *
 * Exit status: 0 signed in, 1 refused by the gate, 2 usage, 3 token or
 * PIN problem, 4 network or HTTP problem (EXIT_* below).
 *
 * The PIN is never taken from the command line, never printed, and wiped
 * (OPENSSL_cleanse) as soon as C_Login has it; JPKI_PIN is wiped from the
 * environment at start, and the process is not dumpable (no core file, no
 * ptrace by the same user).  The token's last PIN try is used only when
 * the user says so (y on the terminal, or --final-pin-try).  Nothing
 * printed contains the certificate's serial number or subject, the
 * challenge, the signature or the cookie: the session cookie goes to
 * --cookie-jar only (mode 0600).  TLS is always verified (--cacert
 * replaces the system's CAs; there is no option to turn verification
 * off).  Answers are read into bounded buffers (64 KiB) and only the few
 * JSON fields needed are decoded, each bounded.
 * Options are parsed by hand, as in jpkictl: exact names, --opt VALUE or
 * --opt=VALUE, each at most once, every value bounded.
 */
#include "jpki.h"   /* JPKI_VERSION, JPKI_CHALLENGE_LEN: no libjpki link */
#include "opts.h"
#include "p11.h"
#include "sink.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SIGNED_IN 0
#define EXIT_REFUSED   1          /* the gate answered with a JSON error */
#define EXIT_USAGE     2
#define EXIT_TOKEN     3          /* module, token, PIN, certificate, key */
#define EXIT_NET       4          /* unreachable, timeout, TLS, not JSON */

#define DEFAULT_MODULE "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
#define ARG_MAX_LEN    4096
#define URL_MAX        2048
#define ACCOUNT_MAX    256
#define PIN_MAX        255
#define BODY_MAX       (64 * 1024)   /* an answer of the gate */
#define CHALLENGE_MAX  512        /* the JSON field; a challenge has 100 */
#define CH_RAW         75         /* bytes of a challenge (check_challenge) */
#define CH_VERSION     2          /* bound to a host (check_challenge) */
#define CH_HOST_MAX    255        /* a canonical host, at most (canon_host) */
#define CH_HOST_CTX    "jpki-challenge-host:"
#define CH_SKEW        300        /* seconds our clock may be off the gate's */
#define CH_TTL_MAX     3600       /* a gate's longest challenge_ttl (ctx.c) */
#define CH_MARGIN      10         /* seconds left to sign and post, at least */
#define CONNECT_MS     10000L
#define TIMEOUT_DEF    20
#define TIMEOUT_MAX    600

static const char usage_text[] =
"usage: jpki-login --url URL [--module PKCS11.so] [--token LABEL]\n"
"                  [--id HEX | --label LABEL] [--pin-file FILE]\n"
"                  [--account ACCT] [--cookie-jar FILE] [--cacert FILE]\n"
"                  [--algorithm NAME] [--timeout SECONDS] [--verbose]\n"
"                  [--insecure-http] [--final-pin-try]\n"
"Signs in at a JPKI login gate with a My Number Card (or any PKCS#11\n"
"token): GET URL/challenge, the card signs it, POST URL/login.  Prints\n"
"\"account=ACCT expires=UNIXTIME\" when signed in.\n"
"  --url URL         the gate's endpoint prefix, http(s)://host[:port]/path\n"
"                    (e.g. https://www.example.jp/jpki); no query.  http://\n"
"                    only to this machine (127.0.0.0/8, ::1, localhost)\n"
"  --module FILE     the PKCS#11 module; default OpenSC's, which reads\n"
"                    the My Number Card:\n"
"                    " DEFAULT_MODULE "\n"
"  --token LABEL     the token to use; needed when several are present\n"
"  --id HEX          the certificate with this CKA_ID (card: 01, the\n"
"  --label LABEL     user-authentication one), or with this CKA_LABEL;\n"
"                    default: the only certificate with a private key\n"
"  --pin-file FILE   the PIN is the first line of FILE; else the\n"
"                    environment variable JPKI_PIN; else it is asked on\n"
"                    the terminal.  Never on the command line.  Card: the\n"
"                    4-digit user-authentication PIN (3 wrong tries lock it)\n"
"  --final-pin-try   when the token has one PIN try left, use it with\n"
"                    --pin-file or JPKI_PIN (else refused, not tried; on\n"
"                    the terminal the question is asked: y/N)\n"
"  --account ACCT    the account you claim (the gate checks the mapping)\n"
"  --cookie-jar FILE write the session cookie to FILE (Netscape format,\n"
"                    mode 0600, for curl -b FILE); nothing secret is printed\n"
"  --cacert FILE     verify the server with these CA certificates (PEM)\n"
"                    instead of the system's; TLS is always verified\n"
"  --insecure-http   allow http:// to other hosts: anyone on the path can\n"
"                    swap the challenge and keep the card's signature (a\n"
"                    login as you at any gate) and read the session cookie\n"
"  --algorithm NAME  rsa-pkcs1-sha256 (RSA default), rsa-pkcs1-sha384,\n"
"                    rsa-pkcs1-sha512, ecdsa-sha256 (P-256 default),\n"
"                    ecdsa-sha384 (P-384 default)\n"
"  --timeout SECONDS bound on the whole HTTP exchange, both requests\n"
"                    (1..600, default 20; connecting: at most 10)\n"
"  --verbose         the steps on stderr (never the PIN, serial or cookie)\n"
"The challenge is checked before the PIN is asked: 100 base64url characters,\n"
"version 1, expiring at most 300 s ago and at most 3900 s ahead by this\n"
"machine's clock; the card signs nothing else.\n"
"Exit status: 0 signed in; 1 refused by the gate (stderr: \"refused:\n"
"REASON: MESSAGE\"); 2 usage; 3 token or PIN problem (module not loadable,\n"
"no token, PIN refused or locked, last try not confirmed, no certificate or\n"
"key); 4 network or HTTP problem (unreachable, timeout, TLS, an answer that\n"
"is not the gate's JSON, a challenge that is not a JPKI one).\n";

/* ---- messages ----------------------------------------------------- */

static int verbose;

void say(const char *fmt, ...)
{
    va_list ap;

    fputs("jpki-login: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define step(...) do { if (verbose) say(__VA_ARGS__); } while (0)

/* S with everything that is not printable ASCII or a well-formed UTF-8
 * character from U+00A0 up replaced by '?' (no terminal control from a
 * server's message), at most OUTLEN - 1 bytes. */
static const char *clean(const char *s, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;

    while (*p != '\0' && k + 1 < outlen) {
        size_t n = 0, i;
        unsigned cp = 0;

        if (*p >= 0x20 && *p < 0x7f) {
            out[k++] = (char)*p++;
            continue;
        }
        if ((*p & 0xe0) == 0xc0) { n = 2; cp = *p & 0x1f; }
        else if ((*p & 0xf0) == 0xe0) { n = 3; cp = *p & 0x0f; }
        else if ((*p & 0xf8) == 0xf0) { n = 4; cp = *p & 0x07; }
        for (i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                break;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (n == 0 || i < n) {          /* not UTF-8: one byte */
            out[k++] = '?';
            p++;
            continue;
        }
        if (k + n >= outlen || cp < 0xa0 || (n == 3 && cp < 0x800)
            || (n == 4 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff)) {
            out[k++] = '?';             /* C1 control, overlong...: one */
            p += n;
            continue;
        }
        memcpy(out + k, p, n);
        k += n;
        p += n;
    }
    out[k] = '\0';
    return out;
}

/* ---- options ------------------------------------------------------ */

enum {
    O_URL, O_MODULE, O_TOKEN, O_ID, O_LABEL, O_PIN_FILE, O_ACCOUNT,
    O_COOKIE_JAR, O_CACERT, O_ALGORITHM, O_TIMEOUT, O_VERBOSE, O_HELP,
    O_INSECURE_HTTP, O_FINAL_PIN_TRY, O__COUNT
};

static const tool_opt optdefs[O__COUNT] = {
    [O_URL] = {"url", 1, URL_MAX},
    [O_MODULE] = {"module", 1, ARG_MAX_LEN},
    [O_TOKEN] = {"token", 1, P11_LABEL_MAX},
    [O_ID] = {"id", 1, 2 * P11_ID_MAX},
    [O_LABEL] = {"label", 1, P11_LABEL_MAX},
    [O_PIN_FILE] = {"pin-file", 1, ARG_MAX_LEN},
    [O_ACCOUNT] = {"account", 1, ACCOUNT_MAX},
    [O_COOKIE_JAR] = {"cookie-jar", 1, ARG_MAX_LEN},
    [O_CACERT] = {"cacert", 1, ARG_MAX_LEN},
    [O_ALGORITHM] = {"algorithm", 1, 32},
    [O_TIMEOUT] = {"timeout", 1, 3},
    [O_VERBOSE] = {"verbose", 0, 0},
    [O_HELP] = {"help", 0, 0},
    [O_INSECURE_HTTP] = {"insecure-http", 0, 0},
    [O_FINAL_PIN_TRY] = {"final-pin-try", 0, 0},
};

typedef struct {
    const char *val[O__COUNT];
    int seen[O__COUNT];
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    const char *val;
    int i, o;

    for (i = 1; i < argc; i++) {
        o = tool_opt_next(argc, argv, &i, optdefs, O__COUNT, ~0ULL, &val);
        if (o < 0)
            return -1;
        if (a->seen[o]) {
            say("--%s given twice", optdefs[o].name);
            return -1;
        }
        a->seen[o] = 1;
        a->val[o] = val;
    }
    return 0;
}

/* --id: hex digits, an even number of them. */
static int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s), i;

    if (n == 0 || n % 2 != 0 || n / 2 > cap)
        return -1;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    *len = n / 2;
    return 0;
}

/* ---- algorithms --------------------------------------------------- */

/* DER DigestInfo prefixes (RFC 8017, 9.2 note 1). */
static const uint8_t di_sha256[19] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[19] = {
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[19] = {
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
    0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

typedef struct {
    const char *name;
    int ec;                               /* 1 ECDSA, 0 RSA PKCS#1 v1.5 */
    const EVP_MD *(*md)(void);
    const uint8_t *prefix;                /* RSA: DigestInfo prefix */
} alg_t;

static const alg_t algs[] = {
    {"rsa-pkcs1-sha256", 0, EVP_sha256, di_sha256},
    {"rsa-pkcs1-sha384", 0, EVP_sha384, di_sha384},
    {"rsa-pkcs1-sha512", 0, EVP_sha512, di_sha512},
    {"ecdsa-sha256", 1, EVP_sha256, NULL},
    {"ecdsa-sha384", 1, EVP_sha384, NULL},
};

static const alg_t *alg_by_name(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

/* ---- signals: the terminal and the jar's temp file ---------------- */

static volatile sig_atomic_t tty_raw;    /* echo is off on tty_fd */
static int tty_fd = -1;
static struct termios tty_saved;
static char jar_tmp[ARG_MAX_LEN + 16];   /* temp jar to remove, or "" */

static void on_signal(int sig)
{
    if (tty_raw)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    if (jar_tmp[0] != '\0')
        unlink(jar_tmp);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction sa;
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ---- the PIN ------------------------------------------------------ */

/* JPKI_PIN, moved out of the environment at start (env_pin_take). */
static char env_pin[PIN_MAX + 1];
static int env_pin_state;       /* 0 unset or empty, 1 in env_pin, -1 long */

static void env_pin_wipe(void)
{
    OPENSSL_cleanse(env_pin, sizeof(env_pin));
}

/* Before anything else: the characters of JPKI_PIN are overwritten where
 * they are, in the block the kernel shows as /proc/PID/environ (unsetenv
 * only unlinks them from environ[]), so that the PIN cannot be read there
 * while the gate answers; the copy is wiped at exit. */
static void env_pin_take(void)
{
    char *env = getenv("JPKI_PIN");
    size_t n;

    atexit(env_pin_wipe);
    if (env == NULL)
        return;
    n = strlen(env);
    if (n >= sizeof(env_pin)) {
        env_pin_state = -1;
    } else if (n > 0) {
        memcpy(env_pin, env, n + 1);
        env_pin_state = 1;
    }
    OPENSSL_cleanse(env, n);
    unsetenv("JPKI_PIN");
}

/* Whether the PIN is typed by someone now (terminal, PIN pad), who can be
 * asked before the last try, or read from --pin-file or JPKI_PIN. */
static int pin_typed(const args_t *a, p11_login_kind kind)
{
    return kind == P11_LOGIN_PINPAD
           || (a->val[O_PIN_FILE] == NULL && env_pin_state == 0);
}

/* The first line of FILE (without its end of line). */
static int pin_from_file(const char *path, char *pin, size_t cap,
                         size_t *len)
{
    char buf[PIN_MAX + 3];
    struct stat st;
    ssize_t n;
    size_t k = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        say("cannot read the PIN file \"%.200s\" (missing, unreadable or "
            "not a regular file)", path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (st.st_mode & 077)
        say("warning: the PIN file \"%.200s\" can be read by others "
            "(chmod 600 it)", path);
    while (k < sizeof(buf)
           && (n = read(fd, buf + k, sizeof(buf) - k)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        k += (size_t)n;
    }
    close(fd);
    n = 0;
    while ((size_t)n < k && buf[n] != '\n')
        n++;
    if ((size_t)n == k && k == sizeof(buf)) {
        OPENSSL_cleanse(buf, sizeof(buf));
        say("the PIN file's first line is longer than %d characters",
            PIN_MAX);
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if ((size_t)n >= cap || n == 0 || memchr(buf, '\0', (size_t)n) != NULL) {
        OPENSSL_cleanse(buf, sizeof(buf));
        if (n == 0)
            say("the PIN file's first line is empty");
        else if ((size_t)n >= cap)
            say("the PIN file's first line is longer than %d characters",
                PIN_MAX);
        else
            say("the PIN file's first line holds a NUL byte");
        return -1;
    }
    memcpy(pin, buf, (size_t)n);
    pin[n] = '\0';
    *len = (size_t)n;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* A line typed on the terminal fd into buf (cap bytes, NUL-terminated),
 * read byte by byte up to a newline or the end; its length.  *over is set
 * when it did not fit (the rest is read and dropped). */
static size_t tty_line(int fd, char *buf, size_t cap, int *over)
{
    size_t k = 0;
    ssize_t n;
    char c;

    *over = 0;
    for (;;) {
        n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n' || c == '\r')
            break;
        if (k + 1 < cap)
            buf[k++] = c;
        else
            *over = 1;
    }
    c = 0;                              /* a PIN's last byte */
    buf[k] = '\0';
    return k;
}

/* Asked on /dev/tty with echo off. */
static int pin_from_tty(const char *token, char *pin, size_t cap,
                        size_t *len)
{
    struct termios t;
    char prompt[160];
    size_t k;
    int over;

    if ((tty_fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0
        || tcgetattr(tty_fd, &tty_saved) != 0) {
        say("no PIN: give --pin-file FILE or JPKI_PIN, or run on a "
            "terminal");
        if (tty_fd >= 0)
            close(tty_fd);
        tty_fd = -1;
        return -1;
    }
    t = tty_saved;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_lflag |= ICANON;
    /* echo off (and typed-ahead input dropped) before the prompt: what is
     * typed once it shows is the PIN, never echoed */
    tty_raw = 1;
    tcsetattr(tty_fd, TCSAFLUSH, &t);
    snprintf(prompt, sizeof(prompt), "PIN for token \"%.64s\": ", token);
    if (write(tty_fd, prompt, strlen(prompt)) < 0)
        prompt[0] = '\0';               /* nothing to do about it */
    k = tty_line(tty_fd, pin, cap, &over);
    tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    tty_raw = 0;
    if (write(tty_fd, "\n", 1) < 0) {
        /* nothing to do about it */
    }
    close(tty_fd);
    tty_fd = -1;
    if (over || k == 0) {
        OPENSSL_cleanse(pin, cap);
        say(over ? "the PIN is longer than %d characters" : "no PIN entered",
            PIN_MAX);
        return -1;
    }
    *len = k;
    return 0;
}

/* --pin-file, else JPKI_PIN, else the terminal.  PIN has cap bytes. */
static int get_pin(const args_t *a, const char *token, char *pin,
                   size_t cap, size_t *len)
{
    if (a->val[O_PIN_FILE] != NULL)
        return pin_from_file(a->val[O_PIN_FILE], pin, cap, len);
    if (env_pin_state < 0) {
        say("JPKI_PIN is longer than %d characters", PIN_MAX);
        return -1;
    }
    if (env_pin_state > 0) {            /* env_pin fits: PIN_MAX at most */
        *len = strlen(env_pin);
        memcpy(pin, env_pin, *len + 1);
        env_pin_wipe();
        env_pin_state = 0;
        return 0;
    }
    return pin_from_tty(token, pin, cap, len);
}

/* The token has one PIN try left: asked on /dev/tty, y to use it.  Input
 * typed ahead is dropped first: only an answer to this question counts.
 * 1 to go on; 0 (nothing said) for anything else or no terminal. */
static int confirm_final_try(const char *token)
{
    char prompt[400], ans[8];
    int over, fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        say("no terminal to confirm the last PIN try on");
        return 0;
    }
    tcflush(fd, TCIFLUSH);
    snprintf(prompt, sizeof(prompt), "Token \"%.64s\" has ONE PIN try left: "
             "a wrong PIN locks it (a My Number Card is then unlocked only "
             "at the municipal office).\nTry the PIN? [y/N] ", token);
    if (write(fd, prompt, strlen(prompt)) < 0) {
        close(fd);
        return 0;
    }
    (void)tty_line(fd, ans, sizeof(ans), &over);
    close(fd);
    return !over                        /* too long: not a yes */
           && (strcasecmp(ans, "y") == 0 || strcasecmp(ans, "yes") == 0);
}

/* ---- JSON: the few fields of the gate's answers ------------------- */

enum { J_STR, J_INT };

typedef struct {
    const char *name;
    int kind;
    char *str;                  /* J_STR: decoded, NUL-terminated */
    size_t cap;
    long long num;              /* J_INT */
    int seen;
} jfield;

typedef struct {
    const unsigned char *p, *end;
} jcur;

static void j_ws(jcur *c)
{
    while (c->p < c->end
           && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
               || *c->p == '\r'))
        c->p++;
}

static int hex4(const unsigned char *s, unsigned *v)
{
    int i;

    *v = 0;
    for (i = 0; i < 4; i++) {
        unsigned char ch = s[i];
        unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
                   : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                   : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10) : 99;

        if (d == 99)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* A string at c->p, decoded into OUT (CAP bytes with the NUL) when OUT is
 * not NULL.  0, or -1 malformed, or 1 (consumed) when it does not fit or
 * holds a NUL. */
static int j_string(jcur *c, char *out, size_t cap)
{
    size_t k = 0;
    int over = 0;

    if (c->p >= c->end || *c->p != '"')
        return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned ch = *c->p++, cp;
        unsigned char u[4];
        size_t n;

        if (ch == '"') {
            if (out != NULL && !over)
                out[k] = '\0';
            return over;
        }
        if (ch < 0x20)
            return -1;
        if (ch != '\\') {
            u[0] = (unsigned char)ch;
            n = 1;
        } else {
            if (c->p >= c->end)
                return -1;
            switch ((ch = *c->p++)) {
            case '"': case '\\': case '/': cp = ch; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (c->end - c->p < 4 || hex4(c->p, &cp) != 0)
                    return -1;
                c->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return -1;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;

                    if (c->end - c->p < 6 || c->p[0] != '\\'
                        || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0
                        || lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                    c->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default:
                return -1;
            }
            if (cp == 0)
                over = 1;
            if (cp < 0x80) {
                u[0] = (unsigned char)cp; n = 1;
            } else if (cp < 0x800) {
                u[0] = (unsigned char)(0xc0 | cp >> 6);
                u[1] = (unsigned char)(0x80 | (cp & 0x3f)); n = 2;
            } else if (cp < 0x10000) {
                u[0] = (unsigned char)(0xe0 | cp >> 12);
                u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                u[2] = (unsigned char)(0x80 | (cp & 0x3f)); n = 3;
            } else {
                u[0] = (unsigned char)(0xf0 | cp >> 18);
                u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                u[3] = (unsigned char)(0x80 | (cp & 0x3f)); n = 4;
            }
        }
        if (out != NULL && !over) {
            if (k + n >= cap)
                over = 1;
            else {
                memcpy(out + k, u, n);
                k += n;
            }
        }
    }
    return -1;
}

/* A number; *is_int and *v when it is an integer of at most 18 digits. */
static int j_number(jcur *c, int *is_int, long long *v)
{
    const unsigned char *s = c->p;
    int digits = 0, neg = 0;
    long long x = 0;

    *is_int = 1;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return -1;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
        return -1;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (++digits <= 18)
            x = x * 10 + (*c->p - '0');
        c->p++;
    }
    if (digits > 18)
        *is_int = 0;
    if (c->p < c->end && *c->p == '.') {
        *is_int = 0;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return -1;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        *is_int = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return -1;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    *v = neg ? -x : x;
    return c->p > s ? 0 : -1;
}

/* Any value (checked, not kept), nested at most 32 deep. */
static int j_skip(jcur *c, int depth)
{
    static const char *const lits[] = {"true", "false", "null"};
    long long v;
    int is_int;
    size_t i, n;

    j_ws(c);
    if (c->p >= c->end || depth > 32)
        return -1;
    if (*c->p == '"')
        return j_string(c, NULL, 0) < 0 ? -1 : 0;
    if (*c->p == '{' || *c->p == '[') {
        unsigned char close = *c->p == '{' ? '}' : ']';
        int obj = close == '}';

        c->p++;
        j_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj) {
                j_ws(c);
                if (j_string(c, NULL, 0) < 0)
                    return -1;
                j_ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return -1;
            }
            if (j_skip(c, depth + 1) != 0)
                return -1;
            j_ws(c);
            if (c->p >= c->end)
                return -1;
            if (*c->p == close) {
                c->p++;
                return 0;
            }
            if (*c->p++ != ',')
                return -1;
        }
    }
    for (i = 0; i < 3; i++) {
        n = strlen(lits[i]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, lits[i], n) == 0) {
            c->p += n;
            return 0;
        }
    }
    return j_number(c, &is_int, &v);
}

/* The top-level object of BODY: FIELDS found are filled in (a field of
 * the wrong type, too long, or given twice makes the answer malformed);
 * everything else is checked and skipped.  0, or -1 when BODY is not one
 * JSON object. */
static int j_fields(const char *body, size_t len, jfield *fields, size_t nf)
{
    jcur c = {(const unsigned char *)body, (const unsigned char *)body + len};
    char key[32];
    size_t i;

    for (i = 0; i < nf; i++)
        fields[i].seen = 0;
    j_ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return -1;
    j_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
        goto tail;
    }
    for (;;) {
        int r;
        jfield *f = NULL;

        j_ws(&c);
        if ((r = j_string(&c, key, sizeof(key))) < 0)
            return -1;
        for (i = 0; r == 0 && i < nf; i++)
            if (strcmp(fields[i].name, key) == 0)
                f = &fields[i];
        j_ws(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return -1;
        j_ws(&c);
        if (f == NULL) {
            if (j_skip(&c, 1) != 0)
                return -1;
        } else if (f->seen++) {
            return -1;
        } else if (f->kind == J_STR) {
            if (j_string(&c, f->str, f->cap) != 0)
                return -1;
        } else {
            int is_int;

            if (j_number(&c, &is_int, &f->num) != 0 || !is_int)
                return -1;
        }
        j_ws(&c);
        if (c.p >= c.end)
            return -1;
        if (*c.p == '}') {
            c.p++;
            break;
        }
        if (*c.p++ != ',')
            return -1;
    }
tail:
    j_ws(&c);
    return c.p == c.end ? 0 : -1;
}

/* ---- a bounded text buffer (the login body) ----------------------- */

typedef struct {
    char *b;
    size_t len, cap;
    int err;
} sbuf;

static void sb_add(sbuf *s, const char *d, size_t n)
{
    if (s->err)
        return;
    if (n >= s->cap - s->len) {
        s->err = 1;
        return;
    }
    memcpy(s->b + s->len, d, n);
    s->len += n;
    s->b[s->len] = '\0';
}

static void sb_adds(sbuf *s, const char *d) { sb_add(s, d, strlen(d)); }

/* "name":"value" with VALUE escaped, after a comma unless first. */
static void sb_field(sbuf *s, const char *name, const char *v, int first)
{
    char u[8];

    sb_adds(s, first ? "\"" : ",\"");
    sb_adds(s, name);
    sb_adds(s, "\":\"");
    for (; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;

        if (ch == '"' || ch == '\\') {
            u[0] = '\\';
            u[1] = (char)ch;
            sb_add(s, u, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(u, sizeof(u), "\\u%04x", ch);
            sb_add(s, u, 6);
        } else {
            sb_add(s, v, 1);
        }
    }
    sb_adds(s, "\"");
}

/* base64 of D (standard alphabet, no line breaks), malloc'ed. */
static char *b64(const uint8_t *d, size_t n)
{
    char *out;

    if (n > BODY_MAX || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    return out;
}

/* ---- HTTP --------------------------------------------------------- */

typedef struct {
    CURL *h;
    char cerr[CURL_ERROR_SIZE];
    struct timespec deadline;
    char shown[URL_MAX + 32];          /* the prefix without user info */
    char host[CH_HOST_MAX + 1];        /* --url's host, canon_host() */
} http_t;

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(deadline->tv_sec - now.tv_sec) * 1000
           + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* GET (BODY NULL) or POST BODY as JSON to URL; *status and the answer in
 * OUT.  EXIT_SIGNED_IN (0) when an HTTP answer came, else EXIT_NET with
 * a message said. */
static int http_do(http_t *x, const char *url, const char *what,
                   const char *body, long *status, sink_t *out)
{
    struct curl_slist *hdr = NULL, *h2;
    long left = ms_left(&x->deadline);
    CURLcode cc;

    *status = 0;
    if (left <= 0) {
        say("%s: no time left (--timeout)", what);
        return EXIT_NET;
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (hdr != NULL && body != NULL) {
        h2 = curl_slist_append(hdr, "Content-Type: application/json");
        hdr = h2 != NULL ? curl_slist_append(h2, "Expect:") : NULL;
    }
    if (hdr == NULL) {
        say("out of memory");
        return EXIT_NET;
    }
    x->cerr[0] = '\0';
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS,
                     left < CONNECT_MS ? left : CONNECT_MS);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, out);
    if (body != NULL) {
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
    }
    cc = curl_easy_perform(x->h);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, status);
    if (out->over || cc == CURLE_FILESIZE_EXCEEDED) {
        say("%s: the answer is larger than %d bytes", what, BODY_MAX);
        return EXIT_NET;
    }
    switch (cc) {
    case CURLE_OK:
        step("%s: HTTP %ld, %zu bytes", what, *status, out->len);
        return EXIT_SIGNED_IN;
    case CURLE_OPERATION_TIMEDOUT:
        say("%s: timed out (--timeout): %s", what, x->cerr);
        return EXIT_NET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        say("%s: TLS failed, the server was not verified (a private CA? "
            "--cacert FILE): %s", what, x->cerr[0] ? x->cerr
            : curl_easy_strerror(cc));
        return EXIT_NET;
    default:
        say("%s: %s", what, x->cerr[0] ? x->cerr : curl_easy_strerror(cc));
        return EXIT_NET;
    }
}

/* Time spent with the token since SINCE (the PIN typed, the card's
 * answer) is not the gate's: --timeout bounds the HTTP exchange only. */
static void http_resume(http_t *x, const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    x->deadline.tv_sec += now.tv_sec - since->tv_sec;
    x->deadline.tv_nsec += now.tv_nsec - since->tv_nsec;
    while (x->deadline.tv_nsec < 0) {
        x->deadline.tv_nsec += 1000000000L;
        x->deadline.tv_sec--;
    }
    while (x->deadline.tv_nsec >= 1000000000L) {
        x->deadline.tv_nsec -= 1000000000L;
        x->deadline.tv_sec++;
    }
}

/* HOST (as CURLU gives it: IPv6 in brackets) is this machine: localhost,
 * 127.0.0.0/8, ::1 or ::ffff:127.x.  Spelled otherwise (another name, a
 * zone, a trailing dot), it counts as another host. */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    char v6[64];
    size_t n = strlen(host);

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (n < 3 || n - 2 >= sizeof(v6) || host[0] != '[' || host[n - 1] != ']')
        return 0;
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    if (inet_pton(AF_INET6, v6, &a6) != 1)
        return 0;
    return IN6_IS_ADDR_LOOPBACK(&a6)
           || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

/* HOST canonical, as the gate makes it of the Host header it gets
 * (common/challenge.c) to bind a challenge to it: "[v6]" -> "v6"; else a
 * last ":" and 1..5 digits (a port) dropped; ASCII lowercase, one
 * trailing "." dropped.  Empty (and 0 returned) when that is empty,
 * longer than CH_HOST_MAX or holds bytes outside 0x21..0x7e: nothing is
 * signed for such a host.  OUT has CH_HOST_MAX + 1 bytes. */
static size_t canon_host(const char *host, char *out)
{
    const char *s = host, *c;
    size_t n = strlen(host), i, d;

    out[0] = '\0';
    if (host[0] == '[') {
        if ((c = strchr(host + 1, ']')) == NULL)
            return 0;
        s = host + 1;
        n = (size_t)(c - s);
    } else if ((c = strrchr(host, ':')) != NULL) {
        d = strlen(c + 1);
        if (d >= 1 && d <= 5 && strspn(c + 1, "0123456789") == d)
            n = (size_t)(c - host);
    }
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > CH_HOST_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
            out[0] = '\0';
            return 0;
        }
        out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    }
    out[n] = '\0';
    return n;
}

/* The host of URL U as libcurl sends it in Host (a default port left out,
 * which canon_host drops anyway), canonical in OUT (CH_HOST_MAX + 1
 * bytes).  An IDN is asked for in punycode, as libcurl resolves and sends
 * it; an IPv6 literal is bracketed whether this libcurl gives it with
 * brackets or not.  0 when there is none to bind a challenge to. */
static size_t url_host(CURLU *u, char *out)
{
    char *h = NULL, br[CH_HOST_MAX + 3];
    size_t n = 0;
    int got;

    out[0] = '\0';
#ifdef CURLU_PUNYCODE
    got = curl_url_get(u, CURLUPART_HOST, &h, CURLU_PUNYCODE) == CURLUE_OK;
    if (!got)                       /* a libcurl without IDN: as typed */
#endif
        got = curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
    if (!got || h == NULL)
        return 0;
    if (h[0] != '[' && strchr(h, ':') != NULL) {
        if (strlen(h) <= CH_HOST_MAX) {
            snprintf(br, sizeof(br), "[%s]", h);
            n = canon_host(br, out);
        }
    } else {
        n = canon_host(h, out);
    }
    curl_free(h);
    return n;
}

/* The prefix as shown in messages: user info left out.  Plain http to
 * another host is refused unless INSECURE: whoever is on the path could
 * hand the card another gate's challenge and keep the signature, a login
 * as this user at that gate, not only read this session's cookie. */
static int check_url(const char *url, int insecure, http_t *x)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL;
    char *port = NULL, *path = NULL, hshown[2 * 200 + 1];
    int rc = -1;

    if (u == NULL)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        say("--url: not a URL: \"%.200s\"", url);
    } else if (strcasecmp(scheme, "https") != 0
               && strcasecmp(scheme, "http") != 0) {
        say("--url: http:// or https:// only");
    } else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK
               || curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0)
                  == CURLUE_OK) {
        say("--url: the endpoint prefix has no query or fragment (it is "
            "e.g. https://www.example.jp/jpki)");
    } else if (url_host(u, x->host) == 0) {
        say("--url: the host \"%.200s\" is empty, longer than %d characters "
            "or not plain ASCII: no challenge can be bound to it",
            clean(host, hshown, sizeof(hshown)), CH_HOST_MAX);
    } else {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        snprintf(x->shown, sizeof(x->shown), "%s://%s%s%s%s", scheme, host,
                 port ? ":" : "", port ? port : "", path);
        rc = 0;
        if (strcasecmp(scheme, "http") == 0 && !is_loopback(host)) {
            if (!insecure) {
                say("--url: plain http:// to %.200s, another host than this "
                    "one: anyone on the network path could swap the gate's "
                    "challenge for another gate's and keep the card's "
                    "signature (a login as you at that gate), and read the "
                    "session cookie.  Use https://, or --insecure-http to "
                    "accept that", host);
                rc = -1;
            } else {
                say("warning: --insecure-http: plain http to %.200s: anyone "
                    "on the path can swap the challenge and keep the card's "
                    "signature, and read the session cookie", host);
            }
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(frag);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* --verbose: the CA file and directory the TLS backend was given, as it
 * says them when it loads them ("CAfile: F", "CApath: D"; CURLINFO_CAPATH
 * gives the built-in default, not the handle's).  Nothing else of
 * libcurl's talk is shown: headers and lines such as "Added cookie" hold
 * the cookie. */
static int curl_debug(CURL *h, curl_infotype type, char *data, size_t size,
                      void *unused)
{
    char line[400], shown[400];

    (void)h;
    (void)unused;
    if (type != CURLINFO_TEXT)
        return 0;
    while (size > 0 && *data == ' ') {
        data++;
        size--;
    }
    while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    if (size < 7 || size >= sizeof(line)
        || (memcmp(data, "CAfile:", 7) != 0
            && memcmp(data, "CApath:", 7) != 0))
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    say("TLS: %s", clean(line, shown, sizeof(shown)));
    return 0;
}

static int http_init(http_t *x, const args_t *a)
{
    if ((x->h = curl_easy_init()) == NULL) {
        say("libcurl: out of memory");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &x->deadline);
    x->deadline.tv_sec += a->val[O_TIMEOUT] != NULL
                          ? atoi(a->val[O_TIMEOUT]) : TIMEOUT_DEF;
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(x->h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (a->val[O_CACERT] != NULL) {
        curl_easy_setopt(x->h, CURLOPT_CAINFO, a->val[O_CACERT]);
        /* instead of the system's CAs, not with them: libcurl also has a
         * built-in CA directory (Debian's: /etc/ssl/certs), searched too
         * unless cleared */
        curl_easy_setopt(x->h, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(x->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BODY_MAX);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "jpki-login/" JPKI_VERSION);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->cerr);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(x->h, CURLOPT_COOKIEFILE, "");   /* cookie engine */
    if (verbose) {
        curl_easy_setopt(x->h, CURLOPT_DEBUGFUNCTION, curl_debug);
        curl_easy_setopt(x->h, CURLOPT_VERBOSE, 1L);
    }
    return 0;
}

/* ---- the cookie jar ----------------------------------------------- */

/* A new file next to PATH (mode 0600), renamed over PATH once signed in:
 * made first, so that an unwritable place fails before the card is used. */
static int jar_open(const char *path)
{
    int fd;

    snprintf(jar_tmp, sizeof(jar_tmp), "%s.XXXXXX", path);
    if ((fd = mkstemp(jar_tmp)) < 0) {
        jar_tmp[0] = '\0';
        say("--cookie-jar: cannot create a file next to \"%.200s\": %s",
            path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0) {
        close(fd);
        unlink(jar_tmp);
        jar_tmp[0] = '\0';
        say("--cookie-jar: chmod: %s", strerror(errno));
        return -1;
    }
    return fd;
}

static int jar_commit(CURL *h, int fd, const char *path)
{
    static const char head[] =
        "# Netscape HTTP Cookie File\n"
        "# Written by jpki-login: a signed-in session; keep it private.\n\n";
    struct curl_slist *list = NULL, *l;
    FILE *f;
    int n = 0, ok;

    if (curl_easy_getinfo(h, CURLINFO_COOKIELIST, &list) != CURLE_OK
        || list == NULL) {
        say("signed in, but the gate set no cookie (a Secure cookie over "
            "http:// is dropped: use https)");
        return -1;
    }
    if ((f = fdopen(fd, "w")) == NULL) {
        curl_slist_free_all(list);
        close(fd);
        say("--cookie-jar: %s", strerror(errno));
        return -1;
    }
    fputs(head, f);
    for (l = list; l != NULL; l = l->next, n++)
        fprintf(f, "%s\n", l->data);
    curl_slist_free_all(list);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(jar_tmp, path) != 0) {
        say("--cookie-jar: cannot write \"%.200s\": %s", path,
            strerror(errno));
        return -1;
    }
    jar_tmp[0] = '\0';
    step("cookie jar %s: %d cookie%s", path, n, n == 1 ? "" : "s");
    return 0;
}

/* ---- the certificate ---------------------------------------------- */

static void asn1_time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1
        || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outlen, "?");
}

/* Key type and default algorithm of the certificate; its description for
 * --verbose (key, issuer, validity: no serial, no subject). */
static int cert_inspect(X509 *x, const alg_t **def, int *ec_bytes)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    char grp[64] = "", from[32], to[32], issuer[512] = "", shown[512];
    size_t gl = 0;
    int bits;

    if (pk == NULL) {
        say("the certificate on the token has a public key OpenSSL does "
            "not read");
        return -1;
    }
    bits = EVP_PKEY_get_bits(pk);
    *ec_bytes = 0;
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        *def = &algs[0];
        snprintf(grp, sizeof(grp), "RSA %d", bits);
    } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC
               && EVP_PKEY_get_utf8_string_param(pk,
                      OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), &gl)
               && (strcmp(grp, "prime256v1") == 0
                   || strcmp(grp, "secp384r1") == 0)) {
        int p384 = strcmp(grp, "secp384r1") == 0;

        *def = &algs[p384 ? 4 : 3];
        *ec_bytes = p384 ? 48 : 32;
        snprintf(grp, sizeof(grp), "EC %s", p384 ? "P-384" : "P-256");
    } else {
        say("the certificate's key is neither RSA nor EC P-256/P-384: "
            "the gate does not take it");
        return -1;
    }
    if (verbose) {
        BIO *b = BIO_new(BIO_s_mem());

        if (b != NULL) {
            int n;

            X509_NAME_print_ex(b, X509_get_issuer_name(x), 0,
                               XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
            n = BIO_read(b, issuer, sizeof(issuer) - 1);
            issuer[n > 0 ? n : 0] = '\0';
            BIO_free(b);
        }
        asn1_time_text(X509_get0_notBefore(x), from, sizeof(from));
        asn1_time_text(X509_get0_notAfter(x), to, sizeof(to));
        say("certificate: %s key, issuer %s, valid %s .. %s%s", grp,
            clean(issuer, shown, sizeof(shown)), from, to,
            X509_cmp_current_time(X509_get0_notAfter(x)) < 0
            ? " (expired)" : "");
    }
    return 0;
}

/* The token's raw r||s as DER ECDSA-Sig-Value into OUT. */
static int ecdsa_der(const uint8_t *rs, size_t n, uint8_t *out,
                     size_t *outlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, (int)(n / 2), NULL);
    BIGNUM *s = BN_bin2bn(rs + n / 2, (int)(n / 2), NULL);
    unsigned char *p = out;
    int len = -1;

    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL;                   /* es owns them */
        len = i2d_ECDSA_SIG(es, NULL);
        if (len > 0 && (size_t)len <= *outlen)
            len = i2d_ECDSA_SIG(es, &p);
        else
            len = -1;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    if (len <= 0)
        return -1;
    *outlen = (size_t)len;
    return 0;
}

/* The signature verified with the certificate's key, as the gate will. */
static int verify_local(X509 *x, const alg_t *alg, const uint8_t *hash,
                        size_t hl, const uint8_t *sig, size_t sl)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, X509_get0_pubkey(x),
                                                 NULL);
    int ok = c != NULL && EVP_PKEY_verify_init(c) == 1
             && (alg->ec
                 || (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1
                     && EVP_PKEY_CTX_set_signature_md(c, alg->md()) == 1))
             && EVP_PKEY_verify(c, sig, sl, hash, hl) == 1;

    EVP_PKEY_CTX_free(c);
    return ok ? 0 : -1;
}

/* Signs CHALLENGE with the token: DER signature into SIG. */
static int sign_challenge(p11 *p, X509 *x, const alg_t *alg, int ec_bytes,
                          const char *challenge, uint8_t *sig,
                          size_t *siglen)
{
    uint8_t in[19 + EVP_MAX_MD_SIZE], raw[P11_SIG_MAX];
    unsigned hl = 0;
    size_t inlen, rawlen = sizeof(raw);
    char err[512];
    p11_rc rc;

    if (EVP_Digest(challenge, strlen(challenge), in + 19, &hl, alg->md(),
                   NULL) != 1) {
        say("cannot hash the challenge");
        return EXIT_TOKEN;
    }
    if (alg->ec) {
        memmove(in, in + 19, hl);      /* CKM_ECDSA takes the hash */
        inlen = hl;
    } else {
        memcpy(in, alg->prefix, 19);    /* CKM_RSA_PKCS: the DigestInfo */
        inlen = 19 + hl;
    }
    rc = p11_sign(p, alg->ec ? P11_MECH_ECDSA : P11_MECH_RSA_PKCS, in, inlen,
                  raw, &rawlen, err, sizeof(err));
    if (rc != P11_OK) {
        say("%s", err);
        return (int)rc;
    }
    if (alg->ec) {
        if (rawlen != 2 * (size_t)ec_bytes
            || ecdsa_der(raw, rawlen, sig, siglen) != 0) {
            say("the token's ECDSA signature has %zu bytes, not r||s of "
                "%d", rawlen, 2 * ec_bytes);
            return EXIT_TOKEN;
        }
    } else {
        if (rawlen > *siglen) {
            say("the token's signature is too long");
            return EXIT_TOKEN;
        }
        memcpy(sig, raw, rawlen);
        *siglen = rawlen;
    }
    if (verify_local(x, alg, alg->ec ? in : in + 19, hl, sig, *siglen)
        != 0) {
        say("the signature does not verify with the certificate %s: the "
            "token's key and certificate do not match", p11_cert_desc(p));
        return EXIT_TOKEN;
    }
    step("signed with %s: %zu bytes", alg->name, *siglen);
    return EXIT_SIGNED_IN;
}

/* ---- the token, up to the certificate ----------------------------- */

typedef struct {
    p11 *p;
    X509 *cert;
    uint8_t *der;
    size_t derlen;
    int final_try;              /* the next wrong PIN locks the token */
} card_t;

/* The module and the token, and the PIN's state: all that can be known
 * before the gate is asked.  The PIN is asked later (card_login), once the
 * challenge is known to be one. */
static int card_open(const args_t *a, card_t *k)
{
    const char *module = a->val[O_MODULE] ? a->val[O_MODULE] : DEFAULT_MODULE;
    char err[1024];
    const char *warn;
    p11_login_kind kind;
    p11_rc rc;

    if ((rc = p11_load(module, &k->p, err, sizeof(err))) != P11_OK
        || (rc = p11_open_token(k->p, a->val[O_TOKEN], err, sizeof(err)))
           != P11_OK) {
        say("%s", err);
        return (int)rc;
    }
    step("module %s, token \"%s\" (%s)", module, p11_token_label(k->p),
         p11_token_model(k->p));
    if ((kind = p11_login_kind_of(k->p)) == P11_LOGIN_NONE)
        return EXIT_SIGNED_IN;
    if ((rc = p11_pin_state(k->p, &k->final_try, &warn, err, sizeof(err)))
        != P11_OK) {
        say("%s", err);
        return (int)rc;
    }
    /* the last try of a PIN read from a file or JPKI_PIN: that PIN may be
     * the wrong one that used the other tries, and nobody is there to be
     * asked (a My Number Card's is then unlocked only at the office) */
    if (k->final_try && !pin_typed(a, kind) && !a->seen[O_FINAL_PIN_TRY]) {
        say("token \"%s\" has one PIN try left: a wrong PIN locks it (a My "
            "Number Card is then unlocked only at the municipal office).  Not "
            "tried: check the PIN, then run again with --final-pin-try",
            p11_token_label(k->p));
        return EXIT_TOKEN;
    }
    if (warn != NULL)
        say("warning: %s", warn);
    return EXIT_SIGNED_IN;
}

/* The user logged in (the PIN asked now), then the certificate. */
static int card_login(const args_t *a, card_t *k)
{
    char err[1024], pin[PIN_MAX + 1];
    uint8_t id[P11_ID_MAX];
    size_t idlen = 0, pinlen = 0, lo, hi;
    const unsigned char *dp;
    p11_login_kind kind = p11_login_kind_of(k->p);
    p11_rc rc;

    if (a->val[O_ID] != NULL)
        parse_hex(a->val[O_ID], id, sizeof(id), &idlen);   /* checked */
    if (kind != P11_LOGIN_NONE && k->final_try && !a->seen[O_FINAL_PIN_TRY]
        && !confirm_final_try(p11_token_label(k->p))) {
        say("the last PIN try of token \"%s\" was not confirmed: not tried",
            p11_token_label(k->p));
        return EXIT_TOKEN;
    }
    switch (kind) {
    case P11_LOGIN_NONE:
        step("the token needs no login");
        break;
    case P11_LOGIN_PINPAD:
        say("enter the PIN on the reader's PIN pad");
        if ((rc = p11_login(k->p, NULL, 0, err, sizeof(err))) != P11_OK) {
            say("%s", err);
            return (int)rc;
        }
        break;
    case P11_LOGIN_PIN:
        if (get_pin(a, p11_token_label(k->p), pin, sizeof(pin), &pinlen)
            != 0) {
            OPENSSL_cleanse(pin, sizeof(pin));
            return EXIT_USAGE;
        }
        p11_pin_len(k->p, &lo, &hi);
        if (hi > 0 && (pinlen < lo || pinlen > hi)) {
            OPENSSL_cleanse(pin, sizeof(pin));
            say("the PIN is too %s for token \"%s\" (%zu..%zu characters): "
                "not tried, no try used", pinlen < lo ? "short" : "long",
                p11_token_label(k->p), lo, hi);
            return EXIT_TOKEN;
        }
        rc = p11_login(k->p, pin, pinlen, err, sizeof(err));
        OPENSSL_cleanse(pin, sizeof(pin));
        if (rc != P11_OK) {
            say("%s", err);
            return (int)rc;
        }
        step("logged in to the token");
        break;
    }
    rc = p11_find_cert(k->p, id, idlen, a->val[O_LABEL], &k->der, &k->derlen,
                       err, sizeof(err));
    if (rc != P11_OK) {
        say("%s", err);
        return (int)rc;
    }
    dp = k->der;
    k->cert = d2i_X509(NULL, &dp, (long)k->derlen);
    if (k->cert == NULL || dp != k->der + k->derlen) {
        say("certificate %s on the token is not one DER X.509 certificate",
            p11_cert_desc(k->p));
        return EXIT_TOKEN;
    }
    step("certificate %s", p11_cert_desc(k->p));
    return EXIT_SIGNED_IN;
}

/* ---- the exchange ------------------------------------------------- */

static int b64url_digit(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52 : c == '-' ? 62
         : c == '_' ? 63 : -1;
}

/* CH is what the card is about to sign: the card signs any text it is
 * given, so a gate, or whoever is on its path, could have it sign other
 * text (an order to a service that takes the same card's signatures) or a
 * challenge kept for later.  Only what the gate issues passes
 * (common/challenge.c): JPKI_CHALLENGE_LEN base64url characters, CH_RAW
 * bytes = ver(1) = 2 | key_id(1) | expiry(8, big-endian, Unix time) |
 * host_hash(8) | random(25) | tag(32), current by our clock within
 * CH_SKEW: expired at most CH_SKEW ago (our clock may be ahead), expiring
 * at most CH_TTL_MAX + CH_SKEW ahead; and issued for HOST (canon_host of
 * --url's host, the Host header libcurl sends): host_hash = the first 8
 * bytes of SHA-256(CH_HOST_CTX | host), made by the gate of the Host
 * header it got.  A site that passes on another site's challenge (its
 * own page asks the card for a login at the bank) is caught here: the
 * challenge is the bank's host's.  The tag is the gate's MAC, not ours to
 * check.  0 and *expiry; -1 and why not in WHY (not a challenge of a
 * gate), -2 and WHY a whole message (an older gate, another host). */
static int check_challenge(const char *ch, time_t now, const char *host,
                           long long *expiry, char *why, size_t whylen)
{
    uint8_t raw[CH_RAW], md[32];
    uint64_t exp = 0;
    size_t n = strlen(ch), i, j = 0, hl = strlen(host);
    EVP_MD_CTX *c;
    unsigned int mdlen = 0;
    int ok;

    for (i = 0; i < n; i++)
        if (b64url_digit(ch[i]) < 0) {
            snprintf(why, whylen, "the challenge is not base64url text");
            return -1;
        }
    if (n != JPKI_CHALLENGE_LEN) {
        snprintf(why, whylen, "the challenge has %zu characters, not %d", n,
                 JPKI_CHALLENGE_LEN);
        return -1;
    }
    for (i = 0; i < n; i += 4) {        /* 25 groups of 4: 75 bytes */
        uint32_t v = (uint32_t)b64url_digit(ch[i]) << 18
                     | (uint32_t)b64url_digit(ch[i + 1]) << 12
                     | (uint32_t)b64url_digit(ch[i + 2]) << 6
                     | (uint32_t)b64url_digit(ch[i + 3]);

        raw[j++] = (uint8_t)(v >> 16);
        raw[j++] = (uint8_t)(v >> 8);
        raw[j++] = (uint8_t)v;
    }
    if (raw[0] == 1) {
        snprintf(why, whylen, "the gate is older than this client: it issues "
                 "challenges of version 1, not bound to a host, which a site "
                 "could pass on from another; upgrade the gate");
        return -2;
    }
    if (raw[0] != CH_VERSION) {
        snprintf(why, whylen, "the challenge is of version %u, not %d",
                 raw[0], CH_VERSION);
        return -1;
    }
    for (i = 0; i < 8; i++)
        exp = exp << 8 | raw[2 + i];
    if (exp > (uint64_t)now + CH_TTL_MAX + CH_SKEW) {
        snprintf(why, whylen, "the challenge expires in %llu s, later than a "
                 "gate's ever do (%d s, and %d s of clock skew)",
                 (unsigned long long)(exp - (uint64_t)now), CH_TTL_MAX,
                 CH_SKEW);
        return -1;
    }
    if (exp + CH_SKEW < (uint64_t)now) {
        snprintf(why, whylen, "the challenge expired %llu s ago by this "
                 "machine's clock (%d s of clock skew allowed)",
                 (unsigned long long)((uint64_t)now - exp), CH_SKEW);
        return -1;
    }
    if (hl == 0 || hl > CH_HOST_MAX) {  /* check_url refuses it already */
        snprintf(why, whylen, "no host to bind the challenge to");
        return -2;
    }
    c = EVP_MD_CTX_new();
    ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(c, CH_HOST_CTX, strlen(CH_HOST_CTX)) == 1
         && EVP_DigestUpdate(c, host, hl) == 1
         && EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == sizeof(md);
    EVP_MD_CTX_free(c);
    if (!ok) {
        snprintf(why, whylen, "SHA-256 failed: the challenge's host is not "
                 "checked");
        return -2;
    }
    if (CRYPTO_memcmp(md, raw + 10, 8) != 0) {
        snprintf(why, whylen, "the challenge was issued for another host "
                 "than %s (a site passing on another site's challenge?)",
                 host);
        return -2;
    }
    *expiry = (long long)exp;
    return 0;
}

/* GET URL/challenge -> the challenge, checked (check_challenge), and its
 * expiry. */
static int get_challenge(http_t *x, const char *base, char *ch, size_t cap,
                         long long *expiry)
{
    char url[URL_MAX + 16], what[URL_MAX + 64], err[64], msg[512];
    char shown[512], shown2[64];
    jfield f[3] = {{"challenge", J_STR, ch, cap, 0, 0},
                   {"error", J_STR, err, sizeof(err), 0, 0},
                   {"message", J_STR, msg, sizeof(msg), 0, 0}};
    sink_t s = {NULL, 0, 0, BODY_MAX, 0};
    long status;
    char why[512];
    int rc, cc;

    snprintf(url, sizeof(url), "%s/challenge", base);
    snprintf(what, sizeof(what), "GET %s/challenge", x->shown);
    if ((rc = http_do(x, url, what, NULL, &status, &s)) != 0) {
        free(s.buf);
        return rc;
    }
    rc = EXIT_NET;
    if (s.buf == NULL || j_fields((const char *)s.buf, s.len, f, 3) != 0) {
        say("%s: HTTP %ld, the answer is not the gate's JSON (is --url the "
            "gate's endpoint prefix?)", what, status);
    } else if (status != 200) {
        say("%s: HTTP %ld: %s: %s", what, status,
            f[1].seen ? clean(err, shown2, sizeof(shown2)) : "?",
            f[2].seen ? clean(msg, shown, sizeof(shown)) : "");
    } else if (!f[0].seen || ch[0] == '\0') {
        say("%s: the answer holds no challenge", what);
    } else if ((cc = check_challenge(ch, time(NULL), x->host, expiry, why,
                                     sizeof(why))) == -2) {
        say("%s: not signed: %s", what, why);
    } else if (cc != 0) {
        say("%s: not signed: %s (the card signs nothing but a JPKI login "
            "challenge)", what, why);
    } else {
        rc = EXIT_SIGNED_IN;
    }
    free(s.buf);
    return rc;
}

/* POST URL/login; prints the result. */
static int post_login(http_t *x, const char *base, const char *body,
                      char *account, size_t acap, long long *expires)
{
    char url[URL_MAX + 16], what[URL_MAX + 64], status_s[16], err[64];
    char msg[512], shown[512], shown2[64];
    jfield f[5] = {{"status", J_STR, status_s, sizeof(status_s), 0, 0},
                   {"account", J_STR, account, acap, 0, 0},
                   {"expires", J_INT, NULL, 0, 0, 0},
                   {"error", J_STR, err, sizeof(err), 0, 0},
                   {"message", J_STR, msg, sizeof(msg), 0, 0}};
    sink_t s = {NULL, 0, 0, BODY_MAX, 0};
    long status;
    int rc;

    snprintf(url, sizeof(url), "%s/login", base);
    snprintf(what, sizeof(what), "POST %s/login", x->shown);
    if ((rc = http_do(x, url, what, body, &status, &s)) != 0) {
        free(s.buf);
        return rc;
    }
    rc = EXIT_NET;
    if (s.buf == NULL || j_fields((const char *)s.buf, s.len, f, 5) != 0) {
        say("%s: HTTP %ld, the answer is not the gate's JSON", what, status);
    } else if (status != 200 && f[3].seen) {
        fprintf(stderr, "refused: %s: %s\n", clean(err, shown2,
                sizeof(shown2)), f[4].seen ? clean(msg, shown, sizeof(shown))
                : "(no message)");
        rc = EXIT_REFUSED;
    } else if (status != 200) {
        say("%s: HTTP %ld without a reason", what, status);
    } else if (!f[0].seen || strcmp(status_s, "ok") != 0 || !f[1].seen
               || !f[2].seen) {
        say("%s: HTTP 200 but not the gate's {\"status\":\"ok\",...}", what);
    } else {
        *expires = f[2].num;
        rc = EXIT_SIGNED_IN;
    }
    free(s.buf);
    return rc;
}

/* ---- main --------------------------------------------------------- */

static int check_args(const args_t *a, const alg_t **alg)
{
    uint8_t id[P11_ID_MAX];
    size_t idlen;
    const char *t = a->val[O_TIMEOUT];

    if (a->val[O_URL] == NULL) {
        say("--url is required");
        return -1;
    }
    if (a->val[O_ID] != NULL && a->val[O_LABEL] != NULL) {
        say("--id and --label: give one of them");
        return -1;
    }
    if (a->val[O_ID] != NULL
        && parse_hex(a->val[O_ID], id, sizeof(id), &idlen) != 0) {
        say("--id: hex digits, two per byte (e.g. 01), at most %d bytes",
            P11_ID_MAX);
        return -1;
    }
    if (t != NULL && (strspn(t, "0123456789") != strlen(t) || atoi(t) < 1
                      || atoi(t) > TIMEOUT_MAX)) {
        say("--timeout: seconds, 1..%d", TIMEOUT_MAX);
        return -1;
    }
    *alg = NULL;
    if (a->val[O_ALGORITHM] != NULL
        && (*alg = alg_by_name(a->val[O_ALGORITHM])) == NULL) {
        say("--algorithm: rsa-pkcs1-sha256, rsa-pkcs1-sha384, "
            "rsa-pkcs1-sha512, ecdsa-sha256 or ecdsa-sha384");
        return -1;
    }
    if (a->val[O_CACERT] != NULL && access(a->val[O_CACERT], R_OK) != 0) {
        say("--cacert: cannot read \"%.200s\"", a->val[O_CACERT]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    args_t a;
    const alg_t *alg = NULL, *def = NULL;
    card_t k = {NULL, NULL, NULL, 0, 0};
    http_t x;
    char base[URL_MAX + 1], challenge[CHALLENGE_MAX + 1];
    char account[ACCOUNT_MAX + 1], shown[ACCOUNT_MAX * 2 + 1];
    uint8_t sig[P11_SIG_MAX];
    size_t siglen = sizeof(sig), n;
    char *cert_b64 = NULL, *sig_b64 = NULL;
    long long expires = 0;
    sbuf body = {NULL, 0, 0, 0};
    struct timespec t0;
    long long ch_expiry = 0;
    int rc = EXIT_USAGE, jar_fd = -1, ec_bytes = 0, curl_up = 0;

    /* first of all: no core file and no ptrace by the same user can read
     * the PIN in memory (this also leaves /proc/PID/environ to root) */
    prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
    env_pin_take();
    memset(&a, 0, sizeof(a));
    memset(&x, 0, sizeof(x));
    if (parse_args(argc, argv, &a) != 0) {
        say("jpki-login --help shows the options");
        return EXIT_USAGE;
    }
    if (a.seen[O_HELP]) {
        fputs(usage_text, stdout);
        return EXIT_SIGNED_IN;
    }
    verbose = a.seen[O_VERBOSE];
    if (check_args(&a, &alg) != 0
        || check_url(a.val[O_URL], a.seen[O_INSECURE_HTTP], &x) != 0)
        return EXIT_USAGE;
    snprintf(base, sizeof(base), "%s", a.val[O_URL]);
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    n = strlen(x.shown);
    while (n > 0 && x.shown[n - 1] == '/')
        x.shown[--n] = '\0';
    catch_signals();
    if (a.val[O_COOKIE_JAR] != NULL
        && (jar_fd = jar_open(a.val[O_COOKIE_JAR])) < 0)
        return EXIT_USAGE;

    /* the token first (no PIN yet), then the challenge, checked, and only
     * then the PIN: a gate that sends anything else never has a PIN asked
     * for it, nor a try used */
    if ((rc = card_open(&a, &k)) != 0)
        goto done;
    rc = EXIT_NET;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say("libcurl does not initialise");
        goto done;
    }
    curl_up = 1;
    if (http_init(&x, &a) != 0
        || (rc = get_challenge(&x, base, challenge, sizeof(challenge),
                               &ch_expiry)) != 0)
        goto done;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = card_login(&a, &k);
    http_resume(&x, &t0);
    if (rc != 0)
        goto done;
    if (cert_inspect(k.cert, &def, &ec_bytes) != 0) {
        rc = EXIT_TOKEN;
        goto done;
    }
    if (alg == NULL) {
        alg = def;
    } else if (alg->ec != def->ec) {
        say("--algorithm %s does not fit the certificate's %s key",
            alg->name, def->ec ? "EC" : "RSA");
        rc = EXIT_USAGE;
        goto done;
    }
    /* a slow PIN entry may have outlived the challenge (120 s by default):
     * a new one, checked the same way; once, whatever our clock says of it
     * (ours may be ahead of the gate's) */
    if ((long long)time(NULL) + CH_MARGIN >= ch_expiry) {
        step("the challenge has expired, or nearly, by this machine's clock: "
             "a new one");
        if ((rc = get_challenge(&x, base, challenge, sizeof(challenge),
                                &ch_expiry)) != 0)
            goto done;
    }
    if ((rc = sign_challenge(k.p, k.cert, alg, ec_bytes, challenge, sig,
                             &siglen)) != 0)
        goto done;
    p11_close(k.p);                     /* done with the card */
    k.p = NULL;

    rc = EXIT_NET;
    body.cap = BODY_MAX;
    if ((body.b = malloc(body.cap)) == NULL
        || (cert_b64 = b64(k.der, k.derlen)) == NULL
        || (sig_b64 = b64(sig, siglen)) == NULL) {
        say("out of memory");
        goto done;
    }
    sb_adds(&body, "{");
    sb_field(&body, "challenge", challenge, 1);
    sb_field(&body, "certificate", cert_b64, 0);
    sb_field(&body, "signature", sig_b64, 0);
    sb_field(&body, "algorithm", alg->name, 0);
    if (a.val[O_ACCOUNT] != NULL)
        sb_field(&body, "account", a.val[O_ACCOUNT], 0);
    sb_adds(&body, "}");
    if (body.err) {
        say("the login request would be larger than %d bytes", BODY_MAX);
        goto done;
    }
    if ((rc = post_login(&x, base, body.b, account, sizeof(account),
                         &expires)) != 0)
        goto done;
    if (jar_fd >= 0) {
        int fd = jar_fd;

        jar_fd = -1;                    /* jar_commit closes it */
        if (jar_commit(x.h, fd, a.val[O_COOKIE_JAR]) != 0) {
            rc = EXIT_NET;
            goto done;
        }
    }
    printf("account=%s expires=%lld\n", clean(account, shown, sizeof(shown)),
           expires);
    if (fflush(stdout) != 0)
        rc = EXIT_NET;
done:
    if (jar_fd >= 0)
        close(jar_fd);
    if (jar_tmp[0] != '\0') {
        unlink(jar_tmp);
        jar_tmp[0] = '\0';
    }
    p11_close(k.p);
    X509_free(k.cert);
    free(k.der);
    free(cert_b64);
    free(sig_b64);
    free(body.b);
    if (x.h != NULL)
        curl_easy_cleanup(x.h);
    if (curl_up)
        curl_global_cleanup();
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}
