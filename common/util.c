/* util.c - bounded encoders, file loading, small crypto helpers. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

/* ---- base64 ------------------------------------------------------- */

static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t jpki_b64_decoded_max(size_t inlen)
{
    return inlen / 4 * 3 + 3;
}

size_t jpki_b64_encoded_len(size_t inlen, int url)
{
    if (url)
        return inlen / 3 * 4 + (inlen % 3 ? inlen % 3 + 1 : 0);
    return (inlen + 2) / 3 * 4;
}

void jpki_b64_encode(const uint8_t *in, size_t inlen, char *out, int url)
{
    const char *al = url ? b64url : b64std;
    size_t i = 0, o = 0;

    for (; i + 3 <= inlen; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8
                     | in[i + 2];
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
        out[o++] = al[v & 63];
    }
    if (inlen - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (inlen - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
        if (!url)
            out[o++] = '=';
    }
    out[o] = '\0';
}

/* A character's value 0..63, with the alphabet it belongs to only: bit 6
 * (64) base64url ('-', '_'), bit 7 (128) base64 ('+', '/'), neither for
 * the characters both share; 256 outside both.  A group's four characters
 * are looked up and OR'd once each. */
static const uint16_t b64tab[256] = {
#define X256 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, \
             256, 256, 256, 256
    X256,
    X256,
    256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 256, 190, 256, 126, 256, 191,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 256, 256, 256, 256, 256, 256,
    256, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 256, 256, 256, 256, 127,
    256, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 256, 256, 256, 256, 256,
    X256,
    X256,
    X256,
    X256,
    X256,
    X256,
    X256,
    X256
#undef X256
};

jpki_err jpki_b64_decode(const char *in, size_t inlen, uint8_t *out,
                         size_t *outlen)
{
    const unsigned char *u = (const unsigned char *)in;
    uint32_t acc = 0;
    size_t i = 0, o = 0, n = 0, pad = 0;
    unsigned only = 0;

    /* whole groups of four alphabet characters (no padding) at once; the
     * rest, and any group with something else, one character at a time */
    while (i + 4 <= inlen) {
        unsigned a = b64tab[u[i]], b = b64tab[u[i + 1]],
                 c = b64tab[u[i + 2]], d = b64tab[u[i + 3]];
        unsigned all = a | b | c | d;
        uint32_t v;
        if (all & 256)
            break;
        only |= all;
        v = (uint32_t)(a & 63) << 18 | (uint32_t)(b & 63) << 12
            | (uint32_t)(c & 63) << 6 | (d & 63);
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
        i += 4;
    }
    for (; i < inlen; i++) {
        unsigned v = b64tab[u[i]];
        if (u[i] == '=') {
            pad++;
            continue;
        }
        if (pad)
            return JPKI_ERR_PARSE;           /* data after padding */
        if (v & 256)
            return JPKI_ERR_PARSE;
        only |= v;
        acc = acc << 6 | (v & 63);
        if (++n == 4) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            n = 0;
            acc = 0;
        }
    }
    if ((only & 192) == 192)
        return JPKI_ERR_PARSE;               /* mixed alphabets */
    if (n == 1 || pad > 2 || (pad && (n + pad) != 4))
        return JPKI_ERR_PARSE;
    if (n == 2) {
        if (acc & 0xf)
            return JPKI_ERR_PARSE;           /* non-canonical bits */
        out[o++] = (uint8_t)(acc >> 4);
    } else if (n == 3) {
        if (acc & 0x3)
            return JPKI_ERR_PARSE;
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    *outlen = o;
    return JPKI_OK;
}

/* ---- hex ---------------------------------------------------------- */

void jpki_hex_encode(const uint8_t *in, size_t inlen, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < inlen; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * inlen] = '\0';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

jpki_err jpki_hex_decode(const char *in, size_t inlen, uint8_t *out,
                         size_t outmax, size_t *outlen)
{
    size_t i;
    if (inlen % 2)
        return JPKI_ERR_PARSE;
    if (inlen / 2 > outmax)
        return JPKI_ERR_TOO_LARGE;
    for (i = 0; i < inlen; i += 2) {
        int h = hexval((unsigned char)in[i]), l = hexval((unsigned char)in[i + 1]);
        if (h < 0 || l < 0)
            return JPKI_ERR_PARSE;
        out[i / 2] = (uint8_t)(h << 4 | l);
    }
    *outlen = inlen / 2;
    return JPKI_OK;
}

int jpki_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* ---- files -------------------------------------------------------- */

/* "cannot read <what> \"<path>\": <why>" into errbuf (what NULL: "file"). */
static jpki_err file_fail(jpki_err e, const char *what, const char *path,
                          const char *why, char *errbuf, size_t errlen)
{
    jpki_set_detail(errbuf, errlen, "cannot read %s \"%s\": %s",
                    what ? what : "file", path, why);
    return e;
}

/* The system's reason for errno err (strerror_r: thread-safe). */
static const char *sys_why(int err, char *buf, size_t len)
{
    return strerror_r(err, buf, len);
}

jpki_err jpki_file_check(const char *what, const char *path, char *errbuf,
                         size_t errlen)
{
    struct stat st;
    char why[128];

    if (stat(path, &st) != 0)
        return file_fail(JPKI_ERR_IO, what, path,
                         sys_why(errno, why, sizeof(why)), errbuf, errlen);
    if (!S_ISREG(st.st_mode))
        return file_fail(JPKI_ERR_IO, what, path, "not a regular file",
                         errbuf, errlen);
    return JPKI_OK;
}

#define LARGE_MIN  ((size_t)512 << 10)
#define HUGE_PAGE  ((size_t)2 << 20)

void *jpki_alloc_large(size_t n)
{
    size_t r;
    void *p;

    if (n < LARGE_MIN)
        return malloc(n);
    if (n > SIZE_MAX - HUGE_PAGE)
        return NULL;
    r = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    if ((p = aligned_alloc(HUGE_PAGE, r)) == NULL)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, r, MADV_HUGEPAGE);       /* advice: failing changes nothing */
#endif
    return p;
}

jpki_err jpki_load_file_msg(const char *what, const char *path,
                            size_t maxlen, uint8_t **out, size_t *outlen,
                            char *errbuf, size_t errlen)
{
    int fd, err;
    struct stat st;
    uint8_t *buf;
    size_t got = 0;
    char why[128];

    *out = NULL;
    *outlen = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_fail(JPKI_ERR_IO, what, path,
                         sys_why(errno, why, sizeof(why)), errbuf, errlen);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return file_fail(JPKI_ERR_IO, what, path, "not a regular file",
                         errbuf, errlen);
    }
    if ((uint64_t)st.st_size > maxlen) {
        close(fd);
        snprintf(why, sizeof(why), "larger than %zu bytes", maxlen);
        return file_fail(JPKI_ERR_TOO_LARGE, what, path, why, errbuf,
                         errlen);
    }
    buf = jpki_alloc_large((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return file_fail(JPKI_ERR_NOMEM, what, path, "out of memory",
                         errbuf, errlen);
    }
    err = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            err = errno;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        return file_fail(JPKI_ERR_IO, what, path,
                         err ? sys_why(err, why, sizeof(why))
                             : "shorter than its size (changed while read)",
                         errbuf, errlen);
    }
    buf[got] = '\0';
    *out = buf;
    *outlen = got;
    return JPKI_OK;
}

jpki_err jpki_load_file(const char *path, size_t maxlen, uint8_t **out,
                        size_t *outlen)
{
    return jpki_load_file_msg(NULL, path, maxlen, out, outlen, NULL, 0);
}

/* ---- DER / PEM / base64 ------------------------------------------- */

static const uint8_t *memfind(const uint8_t *h, size_t hl, const char *n)
{
    size_t nl = strlen(n);
    if (nl == 0 || hl < nl)
        return NULL;
    return memmem(h, hl, n, nl);
}

/* Base64 body with line breaks (PEM): strips CR/LF/space then decodes.
 * A body without any (a JSON field's) is decoded in place: blanks are not
 * base64, so it decodes alone exactly when stripping would change nothing. */
static jpki_err b64_lines(const uint8_t *in, size_t inlen, size_t maxlen,
                          uint8_t **der, size_t *derlen)
{
    char *clean;
    size_t i, n = 0;
    uint8_t *out;
    jpki_err e;

    if (inlen / 4 * 3 > maxlen + 3 + inlen / 64 * 3)
        return JPKI_ERR_TOO_LARGE;
    out = malloc(jpki_b64_decoded_max(inlen));
    if (out == NULL)
        return JPKI_ERR_NOMEM;
    e = jpki_b64_decode((const char *)in, inlen, out, derlen);
    if (e != JPKI_OK) {
        clean = malloc(inlen + 1);
        if (clean == NULL) {
            free(out);
            return JPKI_ERR_NOMEM;
        }
        for (i = 0; i < inlen; i++) {
            if (in[i] == '\r' || in[i] == '\n' || in[i] == ' '
                || in[i] == '\t')
                continue;
            clean[n++] = (char)in[i];
        }
        e = jpki_b64_decode(clean, n, out, derlen);
        free(clean);
    }
    if (e == JPKI_OK && *derlen > maxlen)
        e = JPKI_ERR_TOO_LARGE;
    if (e == JPKI_OK && *derlen == 0)
        e = JPKI_ERR_PARSE;
    if (e != JPKI_OK) {
        free(out);
        return e;
    }
    *der = out;
    return JPKI_OK;
}

jpki_err jpki_to_der(const uint8_t *in, size_t inlen, const char *label,
                     size_t maxlen, uint8_t **der, size_t *derlen)
{
    char begin[64], end[64];
    const uint8_t *b, *e;

    *der = NULL;
    *derlen = 0;
    if (in == NULL || inlen == 0)
        return JPKI_ERR_PARSE;
    if (in[0] == 0x30) {                    /* DER SEQUENCE */
        if (inlen > maxlen)
            return JPKI_ERR_TOO_LARGE;
        *der = malloc(inlen);
        if (*der == NULL)
            return JPKI_ERR_NOMEM;
        memcpy(*der, in, inlen);
        *derlen = inlen;
        return JPKI_OK;
    }
    if (inlen > maxlen * 2 + 4096)          /* even as base64 with lines */
        return JPKI_ERR_TOO_LARGE;
    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(end, sizeof(end), "-----END %s-----", label);
    b = memfind(in, inlen, begin);
    if (b != NULL) {
        b += strlen(begin);
        e = memfind(b, inlen - (size_t)(b - in), end);
        if (e == NULL)
            return JPKI_ERR_PARSE;
        return b64_lines(b, (size_t)(e - b), maxlen, der, derlen);
    }
    if (memfind(in, inlen, "-----BEGIN") != NULL)
        return JPKI_ERR_PARSE;              /* PEM of another kind */
    return b64_lines(in, inlen, maxlen, der, derlen);
}

/* ---- logging ------------------------------------------------------ */

void jpki_log(const jpki_ctx *ctx, jpki_log_level lvl, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (ctx == NULL || ctx->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_ud, lvl, buf);
}

void jpki_set_detail(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (buf == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- time, hashes, KDF -------------------------------------------- */

/* Algorithms fetched once per process: an implicit fetch (EVP_sha256())
 * takes locks and property lookups on every call in OpenSSL 3. */
static EVP_MD *md_tab[4];
static EVP_MAC *hmac_alg;
static EVP_MAC_CTX *hmac_tpl;
static EVP_CIPHER *gcm_alg;
static pthread_key_t cipher_key;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

/* HMAC-SHA256 keyed with zeros: each MAC starts from a copy of it and sets
 * its own key, so that the digest is not looked up by name every time. */
static EVP_MAC_CTX *hmac_template(void)
{
    static const uint8_t zero[32];
    OSSL_PARAM params[2];
    EVP_MAC_CTX *mc;

    if (hmac_alg == NULL || (mc = EVP_MAC_CTX_new(hmac_alg)) == NULL)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(mc, zero, sizeof(zero), params) != 1) {
        EVP_MAC_CTX_free(mc);
        return NULL;
    }
    return mc;
}

static void fetch_algs(void)
{
    static const char *const names[4] = {"SHA1", "SHA256", "SHA384",
                                         "SHA512"};
    int i;
    for (i = 0; i < 4; i++)
        md_tab[i] = EVP_MD_fetch(NULL, names[i], NULL);
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    hmac_tpl = hmac_template();
    gcm_alg = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    (void)pthread_key_create(&cipher_key, (void (*)(void *))EVP_CIPHER_CTX_free);
}

const EVP_CIPHER *jpki_aes256gcm(void)
{
    pthread_once(&fetch_once, fetch_algs);
    return gcm_alg;
}

/* One cipher context per thread, reused (re-keyed) for every cookie. */
EVP_CIPHER_CTX *jpki_cipher_ctx(void)
{
    EVP_CIPHER_CTX *c;

    pthread_once(&fetch_once, fetch_algs);
    c = pthread_getspecific(cipher_key);
    if (c == NULL) {
        c = EVP_CIPHER_CTX_new();
        if (c != NULL && pthread_setspecific(cipher_key, c) != 0) {
            EVP_CIPHER_CTX_free(c);
            c = NULL;
        }
    }
    return c;
}

const EVP_MD *jpki_md(jpki_md_id id)
{
    pthread_once(&fetch_once, fetch_algs);
    return (unsigned)id < 4 ? md_tab[id] : NULL;
}

int64_t jpki_asn1_time_to_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    return (int64_t)timegm(&tm);
}

int jpki_key_hash_sha1(X509 *x, uint8_t out[20])
{
    const ASN1_BIT_STRING *k = X509_get0_pubkey_bitstr(x);
    unsigned int n = 0;
    if (k == NULL)
        return 0;
    return EVP_Digest(k->data, (size_t)k->length, out, &n,
                      jpki_md(JPKI_MD_SHA1), NULL)
           == 1 && n == 20;
}

int jpki_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *a,
                     size_t alen, const uint8_t *b, size_t blen,
                     uint8_t out[32])
{
    EVP_MAC_CTX *mc;
    size_t n = 0;
    int ok = 0;

    pthread_once(&fetch_once, fetch_algs);
    if (hmac_tpl == NULL)
        return 0;
    mc = EVP_MAC_CTX_dup(hmac_tpl);
    if (mc != NULL && EVP_MAC_init(mc, key, keylen, NULL) == 1
        && EVP_MAC_update(mc, a, alen) == 1
        && (blen == 0 || EVP_MAC_update(mc, b, blen) == 1)
        && EVP_MAC_final(mc, out, &n, 32) == 1 && n == 32)
        ok = 1;
    EVP_MAC_CTX_free(mc);
    return ok;
}

int jpki_hkdf(const uint8_t *key, size_t keylen, const char *info,
              uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kc;
    OSSL_PARAM p[4];
    int ok;

    if (kdf == NULL)
        return 0;
    kc = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (kc == NULL)
        return 0;
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             (void *)key, keylen);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             (void *)info, strlen(info));
    p[3] = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(kc, out, outlen, p) == 1;
    EVP_KDF_CTX_free(kc);
    return ok;
}

/* Random bytes, drawn from RAND_bytes a page at a time per thread: a
 * login takes two or three small draws, and each RAND_bytes call costs
 * OpenSSL 3.0 a system call (its fork check) and locks, about 3 us here,
 * a tenth of a login.  The page is mapped with MADV_WIPEONFORK: a child
 * process (nginx forks its workers after the configuration) finds it
 * zeroed, its count 0, and draws its own; bytes handed out are wiped.
 * Without MADV_WIPEONFORK (an old kernel), each draw is a RAND_bytes call
 * as before.  Freed when the thread ends. */
#define RND_PAGE 4096
#define RND_SMALL 64                    /* larger draws: RAND_bytes */
typedef struct {
    uint64_t avail;                     /* unread bytes, at the end (0
                                           in a child: wiped) */
    uint8_t bytes[RND_PAGE - 8];
} rnd_page;

static __thread rnd_page *rnd_tls;
static __thread int rnd_none;           /* no page here: RAND_bytes */
static pthread_key_t rnd_key;
static pthread_once_t rnd_once = PTHREAD_ONCE_INIT;
static int rnd_key_ok;

static void rnd_free(void *p)
{
    OPENSSL_cleanse(p, RND_PAGE);
    munmap(p, RND_PAGE);
}

static void rnd_init(void)
{
    rnd_key_ok = pthread_key_create(&rnd_key, rnd_free) == 0;
}

static rnd_page *rnd_page_get(void)
{
    void *p;

    if (rnd_tls != NULL || rnd_none)
        return rnd_tls;
    pthread_once(&rnd_once, rnd_init);
    p = mmap(NULL, RND_PAGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        rnd_none = 1;
        return NULL;
    }
    if (!rnd_key_ok || madvise(p, RND_PAGE, MADV_WIPEONFORK) != 0
        || pthread_setspecific(rnd_key, p) != 0) {
        munmap(p, RND_PAGE);
        rnd_none = 1;
        return NULL;
    }
    rnd_tls = p;
    return rnd_tls;
}

int jpki_random(uint8_t *buf, size_t len)
{
    rnd_page *r;
    uint8_t *from;

    if (len > RND_SMALL || (r = rnd_page_get()) == NULL)
        return RAND_bytes(buf, (int)len) == 1;
    if (r->avail < len || r->avail > sizeof(r->bytes)) {
        r->avail = 0;
        if (RAND_bytes(r->bytes, (int)sizeof(r->bytes)) != 1)
            return 0;
        r->avail = sizeof(r->bytes);
    }
    from = r->bytes + sizeof(r->bytes) - r->avail;
    memcpy(buf, from, len);
    OPENSSL_cleanse(from, len);
    r->avail -= len;
    return 1;
}

/* ------------------------------------------------------------------ */
/* SipHash-2-4                                                         */
/* ------------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);       \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                          \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                          \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);       \
    } while (0)

/* Written out so that compilers make it one load (a loop stays a loop:
 * it cost SipHash most of its time). */
static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16
           | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32
           | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48
           | (uint64_t)p[7] << 56;
}

/* SipHash-2-4 of in up to its first output: the compression, then the
 * finalization's xor (0xff; 0xee and 0xee into v1 at the start for the
 * 128-bit output) and 4 rounds.  v receives v0..v3. */
static void sip24(const uint8_t k[16], const uint8_t *in, size_t len,
                  int wide, uint64_t v[4])
{
    uint64_t k0 = le64(k), k1 = le64(k + 8);
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1 ^ (wide ? 0xee : 0);
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    size_t i, left = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    while (left > 0) {
        left--;
        b |= (uint64_t)in[i + left] << (8 * left);
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= wide ? 0xee : 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    v[0] = v0;
    v[1] = v1;
    v[2] = v2;
    v[3] = v3;
}

uint64_t jpki_siphash24(const uint8_t k[16], const uint8_t *in,
                          size_t len)
{
    uint64_t v[4];

    sip24(k, in, len, 0, v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static void put_le64(uint8_t *p, uint64_t x)
{
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)(x >> 8);
    p[2] = (uint8_t)(x >> 16);
    p[3] = (uint8_t)(x >> 24);
    p[4] = (uint8_t)(x >> 32);
    p[5] = (uint8_t)(x >> 40);
    p[6] = (uint8_t)(x >> 48);
    p[7] = (uint8_t)(x >> 56);
}

/* SipHash-2-4 with the reference's 128-bit output (outlen 16): the first
 * half as the 64-bit one's (with 0xee), then 0xdd into v1 and 4 rounds
 * more for the second; little-endian, as the reference writes it. */
void jpki_siphash24_128(const uint8_t k[16], const uint8_t *in, size_t len,
                        uint8_t out[16])
{
    uint64_t v[4], v0, v1, v2, v3;

    sip24(k, in, len, 1, v);
    v0 = v[0];
    v1 = v[1] ^ 0xdd;
    v2 = v[2];
    v3 = v[3];
    put_le64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    put_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SIP_X8 1

#define VROUND do {                                                     \
        v0 = _mm512_add_epi64(v0, v1); v1 = _mm512_rol_epi64(v1, 13);  \
        v1 = _mm512_xor_si512(v1, v0); v0 = _mm512_rol_epi64(v0, 32);  \
        v2 = _mm512_add_epi64(v2, v3); v3 = _mm512_rol_epi64(v3, 16);  \
        v3 = _mm512_xor_si512(v3, v2);                                  \
        v0 = _mm512_add_epi64(v0, v3); v3 = _mm512_rol_epi64(v3, 21);  \
        v3 = _mm512_xor_si512(v3, v0);                                  \
        v2 = _mm512_add_epi64(v2, v1); v1 = _mm512_rol_epi64(v1, 17);  \
        v1 = _mm512_xor_si512(v1, v2); v2 = _mm512_rol_epi64(v2, 32);  \
    } while (0)

/* Eight messages, lane l the message l (sip24's steps, lane-wise): the
 * message words are laid out word by word across the lanes; a lane whose
 * message has ended keeps its state (masked) while longer ones go on.
 * Messages of up to 8 * 31 octets (an entry is about 40); longer ones
 * are left to the caller (0 returned). */
#define SIP_X8_WORDS 32
__attribute__((target("avx512f")))
static int sip24_128_x8(const uint8_t k[16], const uint8_t *const *in,
                        const size_t *len, uint8_t *out)
{
    uint64_t w[SIP_X8_WORDS][JPKI_SIP_LANES];
    uint64_t k0 = le64(k), k1 = le64(k + 8);
    __m512i v0, v1, v2, v3, m, x0, x1, x2, x3, h[2];
    size_t l, i, words = 0;
    uint8_t nw[JPKI_SIP_LANES];

    for (l = 0; l < JPKI_SIP_LANES; l++) {
        size_t full = len[l] / 8, left = len[l] & 7;
        uint64_t b = (uint64_t)len[l] << 56;

        if (full >= SIP_X8_WORDS)
            return 0;
        for (i = 0; i < full; i++)
            w[i][l] = le64(in[l] + 8 * i);
        while (left > 0) {
            left--;
            b |= (uint64_t)in[l][8 * full + left] << (8 * left);
        }
        w[full][l] = b;               /* the last word: the tail, length */
        nw[l] = (uint8_t)(full + 1);
        if (full + 1 > words)
            words = full + 1;
    }
    v0 = _mm512_set1_epi64((long long)(UINT64_C(0x736f6d6570736575) ^ k0));
    v1 = _mm512_set1_epi64((long long)(UINT64_C(0x646f72616e646f6d) ^ k1
                                       ^ 0xee));
    v2 = _mm512_set1_epi64((long long)(UINT64_C(0x6c7967656e657261) ^ k0));
    v3 = _mm512_set1_epi64((long long)(UINT64_C(0x7465646279746573) ^ k1));
    for (i = 0; i < words; i++) {
        __mmask8 on = 0;

        for (l = 0; l < JPKI_SIP_LANES; l++)
            on |= (__mmask8)((i < nw[l]) << l);
        m = _mm512_loadu_si512((const void *)w[i]);
        x0 = v0;
        x1 = v1;
        x2 = v2;
        x3 = v3;
        v3 = _mm512_xor_si512(v3, m);
        VROUND;
        VROUND;
        v0 = _mm512_xor_si512(v0, m);
        v0 = _mm512_mask_mov_epi64(x0, on, v0);
        v1 = _mm512_mask_mov_epi64(x1, on, v1);
        v2 = _mm512_mask_mov_epi64(x2, on, v2);
        v3 = _mm512_mask_mov_epi64(x3, on, v3);
    }
    /* the two halves of the output, as jpki_siphash24_128 makes them */
    v2 = _mm512_xor_si512(v2, _mm512_set1_epi64(0xee));
    for (i = 0; i < 2; i++) {
        VROUND;
        VROUND;
        VROUND;
        VROUND;
        h[i] = _mm512_xor_si512(_mm512_xor_si512(v0, v1),
                                _mm512_xor_si512(v2, v3));
        v1 = _mm512_xor_si512(v1, _mm512_set1_epi64(0xdd));
    }
    /* lane l's two halves side by side (x86 is little-endian, as the
     * reference writes them): out is lane 0 | lane 1 | ... */
    _mm512_storeu_si512((void *)out, _mm512_permutex2var_epi64(
        h[0], _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), h[1]));
    _mm512_storeu_si512((void *)(out + 64), _mm512_permutex2var_epi64(
        h[0], _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4), h[1]));
    return 1;
}
#endif

void jpki_siphash24_128_n(const uint8_t k[16], const uint8_t *const *in,
                          const size_t *len, size_t n, uint8_t *out)
{
    size_t i = 0;

#ifdef SIP_X8
    if (__builtin_cpu_supports("avx512f"))
        for (; i + JPKI_SIP_LANES <= n
               && sip24_128_x8(k, in + i, len + i, out + 16 * i);
             i += JPKI_SIP_LANES)
            ;
#endif
    for (; i < n; i++)
        jpki_siphash24_128(k, in[i], len[i], out + 16 * i);
}
