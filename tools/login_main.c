/*
 * jpki-login - signs in at a JPKI login gate (nginx or Apache) with a My
 * Number Card or any PKCS#11 token: GET <url>/challenge, the card signs
 * the 100 characters of the challenge, POST <url>/login (docs/protocol.md,
 * docs/client.md).  With --device URL it is the signer of a login page's
 * device flow instead: the challenge and its code come in the page's link
 * (login_device.c), the signature is posted there, and the browser that
 * showed the page is signed in.
 *
 * The card signs whatever it is given, so nothing but a well-formed,
 * current JPKI challenge is given to it, and that is checked before the
 * PIN is asked (check_challenge, login_http.c): a gate, or anyone between
 * it and us,
 * cannot have the card sign other text.  For the same reason plain http
 * is refused to other hosts than this one (--insecure-http to allow it).
 *
 * Exit status: 0 signed in, 1 refused by the gate, 2 usage, 3 token or
 * PIN problem, 4 network or HTTP problem (EXIT_*, login.h).
 *
 * This file: the options and the run; login_http.c: the gate;
 * login_card.c: the token; login_device.c: a page's link (--device).
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
#include "login.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage_text[] =
"usage: jpki-login --url URL [--module PKCS11.so] [--token LABEL]\n"
"                  [--id HEX | --label LABEL] [--pin-file FILE]\n"
"                  [--account ACCT] [--cookie-jar FILE] [--cacert FILE]\n"
"                  [--algorithm NAME] [--timeout SECONDS] [--verbose]\n"
"                  [--insecure-http] [--final-pin-try]\n"
"       jpki-login --device LINK [the options above but --url, --account\n"
"                  and --cookie-jar]\n"
"Signs in at a JPKI login gate with a My Number Card (or any PKCS#11\n"
"token): GET URL/challenge, the card signs it, POST URL/login.  Prints\n"
"\"account=ACCT expires=UNIXTIME\" when signed in.\n"
"  --url URL         the gate's endpoint prefix, http(s)://host[:port]/path\n"
"                    (e.g. https://www.example.jp/jpki); no query.  http://\n"
"                    only to this machine (127.0.0.0/8, ::1, localhost)\n"
"  --device LINK     sign a login page's link instead (the page signs in):\n"
"                    https://host[:port]/P/sign?challenge=C&code=XXXX-XXXX\n"
"                    or jpki:https://...; the site and the code are shown\n"
"                    before the PIN is asked.  Prints \"signed in: go back\n"
"                    to the page\"\n"
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
"REASON: MESSAGE\"); 2 usage (with --device: a link that is not a login\n"
"page's, its challenge or code not right); 3 token or PIN problem (module\n"
"not loadable, no token, PIN refused or locked, last try not confirmed, no\n"
"certificate or key); 4 network or HTTP problem (unreachable, timeout,\n"
"TLS, an answer that is not the gate's JSON, a challenge that is not a\n"
"JPKI one).\n";

/* ---- messages ----------------------------------------------------- */

int verbose;

void say(const char *fmt, ...)
{
    va_list ap;

    fputs("jpki-login: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* (login.h) */
const char *clean(const char *s, char *out, size_t outlen)
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
    [O_DEVICE] = {"device", 1, URL_MAX + 5},     /* "jpki:" URL */
};

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

int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
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

/* ---- signals: the terminal and the jar's temp file ---------------- */

static void on_signal(int sig)
{
    pin_tty_restore();
    jar_discard();
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

/* base64 of D (standard alphabet, no line breaks: jpki_b64_encode),
 * malloc'ed. */
static char *b64(const uint8_t *d, size_t n)
{
    char *out;

    if (n > BODY_MAX || (out = malloc(jpki_b64_encoded_len(n, 0) + 1)) == NULL)
        return NULL;
    jpki_b64_encode(d, n, out, 0);
    return out;
}

/* ---- main --------------------------------------------------------- */

static int check_args(const args_t *a, const alg_t **alg)
{
    uint8_t id[P11_ID_MAX];
    size_t idlen;
    const char *t = a->val[O_TIMEOUT];

    if (a->val[O_URL] != NULL && a->val[O_DEVICE] != NULL) {
        say("--url and --device: give one of them (--url signs in here, "
            "--device signs a login page's link)");
        return -1;
    }
    if (a->val[O_URL] == NULL && a->val[O_DEVICE] == NULL) {
        say("--url is required (or --device LINK: sign a login page's "
            "link)");
        return -1;
    }
    if (a->val[O_DEVICE] != NULL && a->val[O_COOKIE_JAR] != NULL) {
        say("--cookie-jar: not with --device: the browser that shows the "
            "page gets the session, not this client");
        return -1;
    }
    if (a->val[O_DEVICE] != NULL && a->val[O_ACCOUNT] != NULL) {
        say("--account: not with --device: the page's login takes the "
            "certificate's account");
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

/* One run: what main's stages share. */
typedef struct {
    args_t a;
    const alg_t *alg;                   /* --algorithm, then the one used */
    card_t k;
    http_t x;
    device_t dev;                       /* --device: the page's link */
    char base[URL_MAX + 1], challenge[CHALLENGE_MAX + 1];
    uint8_t sig[P11_SIG_MAX];
    size_t siglen;
    long long ch_expiry;
    int jar_fd, curl_up;
} run_t;

#define GO_ON (-1)                      /* a stage's "go on": no exit code */

/* The options checked, the URL and the cookie jar's new file. */
static int setup(run_t *r, int argc, char **argv)
{
    size_t n;

    if (parse_args(argc, argv, &r->a) != 0) {
        say("jpki-login --help shows the options");
        return EXIT_USAGE;
    }
    if (r->a.seen[O_HELP]) {
        fputs(usage_text, stdout);
        return EXIT_SIGNED_IN;
    }
    verbose = r->a.seen[O_VERBOSE];
    if (check_args(&r->a, &r->alg) != 0)
        return EXIT_USAGE;
    if (r->a.val[O_DEVICE] != NULL) {
        if (device_url(r->a.val[O_DEVICE], r->a.seen[O_INSECURE_HTTP],
                       &r->dev, &r->x) != 0)
            return EXIT_USAGE;
        memcpy(r->challenge, r->dev.challenge, sizeof(r->challenge));
        r->ch_expiry = r->dev.expiry;
        say("Sign in to %s with code %s (check that your browser shows "
            "this site and this code)", r->x.origin, r->dev.code);
        catch_signals();
        return GO_ON;
    }
    if (check_url(r->a.val[O_URL], "--url", r->a.seen[O_INSECURE_HTTP],
                  &r->x, NULL, 0) != 0)
        return EXIT_USAGE;
    snprintf(r->base, sizeof(r->base), "%s", r->a.val[O_URL]);
    n = strlen(r->base);
    while (n > 0 && r->base[n - 1] == '/')
        r->base[--n] = '\0';
    n = strlen(r->x.shown);
    while (n > 0 && r->x.shown[n - 1] == '/')
        r->x.shown[--n] = '\0';
    catch_signals();
    if (r->a.val[O_COOKIE_JAR] != NULL
        && (r->jar_fd = jar_open(r->a.val[O_COOKIE_JAR])) < 0)
        return EXIT_USAGE;
    return GO_ON;
}

/* The token first (no PIN yet), then the challenge, checked, and only
 * then the PIN: a gate that sends anything else never has a PIN asked
 * for it, nor a try used.  Then the signature. */
static int card_sign(run_t *r)
{
    const alg_t *def = NULL;
    struct timespec t0;
    char why[512];
    int rc, ec_bytes = 0;

    if ((rc = card_open(&r->a, &r->k)) != 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say("libcurl does not initialise");
        return EXIT_NET;
    }
    r->curl_up = 1;
    if (http_init(&r->x, &r->a) != 0)
        return EXIT_NET;
    if (r->a.val[O_DEVICE] == NULL
        && (rc = get_challenge(&r->x, r->base, r->challenge,
                               sizeof(r->challenge), &r->ch_expiry)) != 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = card_login(&r->a, &r->k);
    http_resume(&r->x, &t0);
    if (rc != 0)
        return rc;
    if (cert_inspect(r->k.cert, &def, &ec_bytes) != 0)
        return EXIT_TOKEN;
    if (r->alg == NULL) {
        r->alg = def;
    } else if (r->alg->ec != def->ec) {
        say("--algorithm %s does not fit the certificate's %s key",
            r->alg->name, def->ec ? "EC" : "RSA");
        return EXIT_USAGE;
    }
    /* a slow PIN entry may have outlived the challenge (120 s by default):
     * a new one, checked the same way; once, whatever our clock says of it
     * (ours may be ahead of the gate's).  A page's challenge cannot be
     * renewed here: checked again, the page's flow may still take it. */
    if (r->a.val[O_DEVICE] != NULL) {
        if (check_challenge(r->challenge, time(NULL), &r->x, &r->ch_expiry,
                            why, sizeof(why)) != 0) {
            say("--device: not signed: %s: start again from the page", why);
            return EXIT_USAGE;
        }
    } else if ((long long)time(NULL) + CH_MARGIN >= r->ch_expiry) {
        step("the challenge has expired, or nearly, by this machine's clock: "
             "a new one");
        if ((rc = get_challenge(&r->x, r->base, r->challenge,
                                sizeof(r->challenge), &r->ch_expiry)) != 0)
            return rc;
    }
    r->siglen = sizeof(r->sig);
    if ((rc = sign_challenge(r->k.p, r->k.cert, r->alg, ec_bytes,
                             r->challenge, r->sig, &r->siglen)) != 0)
        return rc;
    p11_close(r->k.p);                  /* done with the card */
    r->k.p = NULL;
    return GO_ON;
}

/* POST the login; the cookie jar written, the account printed.  With
 * --device, the signature posted to the page's link. */
static int send_login(run_t *r)
{
    char account[ACCOUNT_MAX + 1], shown[ACCOUNT_MAX * 2 + 1];
    char *cert_b64 = NULL, *sig_b64 = NULL;
    sbuf body = {NULL, 0, BODY_MAX, 0};
    long long expires = 0;
    int rc = EXIT_NET, fd;

    if ((body.b = malloc(body.cap)) == NULL
        || (cert_b64 = b64(r->k.der, r->k.derlen)) == NULL
        || (sig_b64 = b64(r->sig, r->siglen)) == NULL) {
        say("out of memory");
        goto done;
    }
    sb_adds(&body, "{");
    sb_field(&body, "challenge", r->challenge, 1);
    sb_field(&body, "certificate", cert_b64, 0);
    sb_field(&body, "signature", sig_b64, 0);
    sb_field(&body, "algorithm", r->alg->name, 0);
    if (r->a.val[O_ACCOUNT] != NULL)
        sb_field(&body, "account", r->a.val[O_ACCOUNT], 0);
    sb_adds(&body, "}");
    if (body.err) {
        say("the login request would be larger than %d bytes", BODY_MAX);
        goto done;
    }
    if (r->a.val[O_DEVICE] != NULL) {
        if ((rc = post_sign(&r->x, &r->dev, body.b)) == 0) {
            puts("signed in: go back to the page");
            if (fflush(stdout) != 0)
                rc = EXIT_NET;
        }
        goto done;
    }
    if ((rc = post_login(&r->x, r->base, body.b, account, sizeof(account),
                         &expires)) != 0)
        goto done;
    if (r->jar_fd >= 0) {
        fd = r->jar_fd;
        r->jar_fd = -1;                 /* jar_commit closes it */
        if (jar_commit(r->x.h, fd, r->a.val[O_COOKIE_JAR]) != 0) {
            rc = EXIT_NET;
            goto done;
        }
    }
    printf("account=%s expires=%lld\n", clean(account, shown, sizeof(shown)),
           expires);
    if (fflush(stdout) != 0)
        rc = EXIT_NET;
done:
    free(cert_b64);
    free(sig_b64);
    free(body.b);
    return rc;
}

int main(int argc, char **argv)
{
    static run_t r;
    int rc;

    /* first of all: no core file and no ptrace by the same user can read
     * the PIN in memory (this also leaves /proc/PID/environ to root) */
    prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
    env_pin_take();
    r.jar_fd = -1;
    if ((rc = setup(&r, argc, argv)) == GO_ON
        && (rc = card_sign(&r)) == GO_ON)
        rc = send_login(&r);
    if (r.jar_fd >= 0)
        close(r.jar_fd);
    jar_discard();
    p11_close(r.k.p);
    X509_free(r.k.cert);
    free(r.k.der);
    if (r.x.h != NULL)
        curl_easy_cleanup(r.x.h);
    if (r.curl_up)
        curl_global_cleanup();
    OPENSSL_cleanse(r.sig, sizeof(r.sig));
    return rc;
}
