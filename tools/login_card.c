/*
 * login_card.c - jpki-login's side of the token (PKCS#11, tools/p11.c):
 * the PIN (--pin-file, JPKI_PIN or the terminal; never printed, wiped
 * once C_Login has it; the last try only when the user says so), the
 * certificate, and the signature of the challenge, checked with the
 * certificate's key before it is sent.
 */
#include "login.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

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

static const alg_t algs[] = {
    {"rsa-pkcs1-sha256", 0, EVP_sha256, di_sha256},
    {"rsa-pkcs1-sha384", 0, EVP_sha384, di_sha384},
    {"rsa-pkcs1-sha512", 0, EVP_sha512, di_sha512},
    {"ecdsa-sha256", 1, EVP_sha256, NULL},
    {"ecdsa-sha384", 1, EVP_sha384, NULL},
};

const alg_t *alg_by_name(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

/* ---- the PIN ------------------------------------------------------ */

static volatile sig_atomic_t tty_raw;    /* echo is off on tty_fd */
static int tty_fd = -1;
static struct termios tty_saved;

void pin_tty_restore(void)
{
    if (tty_raw)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
}

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
void env_pin_take(void)
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
int cert_inspect(X509 *x, const alg_t **def, int *ec_bytes)
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
int sign_challenge(p11 *p, X509 *x, const alg_t *alg, int ec_bytes,
                   const char *challenge, uint8_t *sig, size_t *siglen)
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

/* The module and the token, and the PIN's state: all that can be known
 * before the gate is asked.  The PIN is asked later (card_login), once the
 * challenge is known to be one. */
int card_open(const args_t *a, card_t *k)
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
int card_login(const args_t *a, card_t *k)
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

