/*
 * login.h - what the parts of jpki-login share: exit codes, bounds, the
 * command line, and the functions of login_http.c (the gate: HTTP, the
 * challenge checked before the card signs, the cookie jar) and
 * login_card.c (the token: PIN, certificate, signature), and of
 * login_device.c (--device: a login page's link read and checked, the
 * signature posted to it).  login_main.c holds the options and the run.
 * The challenge's layout, the host it is bound to, the device code,
 * base64 and the JSON answers are read with libjpki's functions
 * (common/challenge.c, common/form.c, common/util.c): one rule for the
 * gate and its client.
 */
#ifndef JPKI_LOGIN_H
#define JPKI_LOGIN_H

#include "form.h"
#include "jpki.h"
#include "opts.h"
#include "p11.h"
#include "sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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
#define CH_VERSION     2          /* bound to a host (check_challenge) */
#define CH_SKEW        300        /* seconds our clock may be off the gate's */
#define CH_TTL_MAX     3600       /* a gate's longest challenge_ttl (ctx.c) */
#define CH_MARGIN      10         /* seconds left to sign and post, at least */
#define CONNECT_MS     10000L
#define TIMEOUT_DEF    20
#define TIMEOUT_MAX    600

enum {
    O_URL, O_MODULE, O_TOKEN, O_ID, O_LABEL, O_PIN_FILE, O_ACCOUNT,
    O_COOKIE_JAR, O_CACERT, O_ALGORITHM, O_TIMEOUT, O_VERBOSE, O_HELP,
    O_INSECURE_HTTP, O_FINAL_PIN_TRY, O_DEVICE, O__COUNT
};

typedef struct {
    const char *val[O__COUNT];
    int seen[O__COUNT];
} args_t;

/* login_main.c */
extern int verbose;
#define step(...) do { if (verbose) say(__VA_ARGS__); } while (0)
/* S with everything that is not printable ASCII or a well-formed UTF-8
 * character from U+00A0 up replaced by '?' (no terminal control from a
 * server's message), at most OUTLEN - 1 bytes. */
const char *clean(const char *s, char *out, size_t outlen);
/* --id: hex digits, an even number of them. */
int parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len);

/* login_http.c: the gate */
typedef struct {
    CURL *h;
    char cerr[CURL_ERROR_SIZE];
    struct timespec deadline;
    char shown[URL_MAX + 32];          /* the prefix without user info */
    char host_hdr[JPKI_HOST_MAX + 3];  /* --url's host as in Host ([v6]) */
    char host[JPKI_HOST_MAX + 1];      /* ... canonical (jpki_host_canonical) */
    char origin[JPKI_HOST_MAX + 32];   /* scheme://host_hdr[:port] */
} http_t;

/* The URL of option OPT checked (http(s); plain http to this machine only
 * unless insecure), its host made canonical into x->host.  QUERY NULL
 * (--url): a prefix, no query or fragment; else (--device) no user info
 * nor fragment, and a query of at most QCAP - 1 bytes, copied there. */
int check_url(const char *url, const char *opt, int insecure, http_t *x,
              char *query, size_t qcap);
int http_init(http_t *x, const args_t *a);
/* Time spent with the token since SINCE is not the gate's: --timeout
 * bounds the HTTP exchange only. */
void http_resume(http_t *x, const struct timespec *since);
/* GET URL/challenge -> the challenge, checked (check_challenge), and its
 * expiry. */
int get_challenge(http_t *x, const char *base, char *ch, size_t cap,
                  long long *expiry);
/* GET (BODY NULL) or POST BODY as JSON to URL: *status and the answer in
 * OUT; 0 when an HTTP answer came, else EXIT_NET, said. */
int http_do(http_t *x, const char *url, const char *what, const char *body,
            long *status, sink_t *out);
/* The fields of a gate's JSON answer in S (jpki_form_parse_answer), their
 * values in *scratch (free it): 0, -1 when it is not one JSON object. */
int answer_fields(const sink_t *s, jpki_form_field *f, size_t n,
                  char **scratch);
/* A field's text, DEF when absent, shown clean. */
const char *shown_field(const jpki_form_field *f, const char *def,
                        char *out, size_t outlen);
/* CH what a gate issues for x's host, current by NOW's clock (with
 * CH_SKEW): 0 and *expiry; -1 (not a gate's challenge) or -2 (an older
 * gate, another host) and why not in WHY. */
int check_challenge(const char *ch, time_t now, const http_t *x,
                    long long *expiry, char *why, size_t whylen);
/* POST BODY to URL, the gate's JSON answer read into F[0..N): "status"
 * first, "error" and "message" last; *scratch holds their values (free
 * it).  0 when HTTP 200 says {"status":"ok"}; else EXIT_REFUSED
 * ("refused: REASON: MESSAGE" on stderr) or EXIT_NET, said. */
int post_answer(http_t *x, const char *url, const char *what,
                const char *body, jpki_form_field *f, size_t n,
                char **scratch);
/* POST URL/login; the account and expiry of the session. */
int post_login(http_t *x, const char *base, const char *body,
               char *account, size_t acap, long long *expires);
/* The cookie jar: a new file next to PATH (mode 0600), renamed over PATH
 * once signed in (jar_commit); jar_discard removes it (also from a signal
 * handler: async-signal-safe). */
int jar_open(const char *path);
int jar_commit(CURL *h, int fd, const char *path);
void jar_discard(void);

/* login_device.c: --device, the signer of a login page's device flow */
typedef struct {
    char url[URL_MAX + 1];                  /* posted to: without "jpki:" */
    char challenge[CHALLENGE_MAX + 1];
    char code[JPKI_DEVICE_CODE_LEN + 1];
    long long expiry;
} device_t;

/* ARG (https://HOST/P/sign?challenge=C&code=XXXX-XXXX, maybe after
 * "jpki:") read strictly and checked: the challenge as a login's
 * (check_challenge, for the URL's host) and the code its own
 * (jpki_device_code).  0, or -1 said ("--device: ..."). */
int device_url(const char *arg, int insecure, device_t *d, http_t *x);
/* POST BODY to d->url: 0 when the gate says {"status":"ok"} with d's
 * code, EXIT_REFUSED ("refused: REASON: MESSAGE") or EXIT_NET. */
int post_sign(http_t *x, const device_t *d, const char *body);

/* login_card.c: the token */
typedef struct {
    const char *name;
    int ec;                               /* 1 ECDSA, 0 RSA PKCS#1 v1.5 */
    const EVP_MD *(*md)(void);
    const uint8_t *prefix;                /* RSA: DigestInfo prefix */
} alg_t;

typedef struct {
    p11 *p;
    X509 *cert;
    uint8_t *der;
    size_t derlen;
    int final_try;              /* the next wrong PIN locks the token */
} card_t;

const alg_t *alg_by_name(const char *name);
/* JPKI_PIN moved out of the environment (first thing in main). */
void env_pin_take(void);
/* The terminal's settings back when a signal came while the PIN was
 * typed (async-signal-safe). */
void pin_tty_restore(void);
int card_open(const args_t *a, card_t *k);
int card_login(const args_t *a, card_t *k);
/* Key type and default algorithm of the certificate (described with
 * --verbose). */
int cert_inspect(X509 *x, const alg_t **def, int *ec_bytes);
/* Signs CHALLENGE with the token: DER signature into SIG. */
int sign_challenge(p11 *p, X509 *x, const alg_t *alg, int ec_bytes,
                   const char *challenge, uint8_t *sig, size_t *siglen);

#endif /* JPKI_LOGIN_H */
