/*
 * crlgen - writes a large signed CRL (DER) for the CRL figures of make bench.
 *
 *   crlgen CA.pem CA.key ENTRIES CRLNUMBER OUT.crl [REPLACED [TWICE]]
 *
 * The CRL is issued by CA.pem (its subject, its SKI as AKI keyid), signed
 * with CA.key (RSA PKCS#1 v1.5 or ECDSA, SHA-256), thisUpdate now - 1 min,
 * nextUpdate now + 1 day, v2 with cRLNumber and AKI, as J-LIS publishes it.
 * Entries: distinct positive 72-bit serials (first octet 0x01..0x7f, then a
 * bijective 64-bit mix of the entry index, so no two collide), revocation
 * dates spread over the 4 years before 2026-09-21 (fixed: the same entry
 * index is the same entry in every CRL made), a reasonCode extension on 7
 * of 8 entries (reasons 0..6 rotating, 6 = certificateHold), none on the
 * rest.  REPLACED (default 0): that many entries, spread evenly over the
 * list, are replaced by new ones (index i becomes ENTRIES + i): the CRL
 * of the next day, as far as a delta sync is concerned (REPLACED removed,
 * REPLACED added), deterministically.  TWICE (default 0): the entries
 * of index 0 .. TWICE-1 (as without REPLACED) listed a second time at the
 * end, revoked a day later for keyCompromise: one certificate listed
 * twice, as a test's CRL (the delta sync's shared cert_id check).
 *
 * The DER is written by hand into one buffer (OpenSSL would build one
 * X509_REVOKED object per entry); the signature is made with EVP_DigestSign.
 * OpenSSL 3 APIs only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static __attribute__((noreturn)) void die(const char *m)
{
    fprintf(stderr, "crlgen: %s\n", m);
    exit(1);
}

static void put(buf_t *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        if ((b->p = realloc(b->p, cap)) == NULL)
            die("out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

/* tag, DER length, contents */
static void tlv(buf_t *b, uint8_t tag, const uint8_t *d, size_t n)
{
    uint8_t h[6];
    size_t hl = 0;

    h[hl++] = tag;
    if (n < 0x80) {
        h[hl++] = (uint8_t)n;
    } else if (n < 0x100) {
        h[hl++] = 0x81;
        h[hl++] = (uint8_t)n;
    } else if (n < 0x10000) {
        h[hl++] = 0x82;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else if (n < 0x1000000) {
        h[hl++] = 0x83;
        h[hl++] = (uint8_t)(n >> 16);
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 0x84;
        h[hl++] = (uint8_t)(n >> 24);
        h[hl++] = (uint8_t)(n >> 16);
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    }
    put(b, h, hl);
    if (n > 0)
        put(b, d, n);
}

static void wrap(buf_t *out, uint8_t tag, buf_t *in)
{
    tlv(out, tag, in->p, in->n);
    in->n = 0;
}

static void utctime(buf_t *b, time_t t)
{
    char s[16];
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(s, sizeof(s), "%y%m%d%H%M%SZ", &tm);
    tlv(b, 0x17, (const uint8_t *)s, 13);
}

#define REVOKED_BASE ((time_t)1790000000)     /* 2026-09-21 */

static uint64_t mix64(uint64_t x)          /* splitmix64 finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

int main(int argc, char **argv)
{
    static const uint8_t sha256rsa[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86,
        0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
    static const uint8_t ecdsa256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    static const uint8_t oid_reason[] = {0x06, 0x03, 0x55, 0x1d, 0x15};
    static const uint8_t oid_aki[] = {0x06, 0x03, 0x55, 0x1d, 0x23};
    static const uint8_t oid_num[] = {0x06, 0x03, 0x55, 0x1d, 0x14};
    buf_t tbs = {0}, ents = {0}, one = {0}, t = {0}, t2 = {0}, crl = {0};
    const uint8_t *alg;
    size_t alglen, siglen = 0, i;
    unsigned long long n, replaced, twice, step, done = 0;
    long long number;
    uint8_t *name = NULL, *sig = NULL;
    int namelen;
    time_t now = time(NULL);
    const ASN1_OCTET_STRING *ski;
    EVP_PKEY *key;
    EVP_MD_CTX *md;
    X509 *ca;
    FILE *f;

    if (argc < 6 || argc > 8)
        die("usage: crlgen CA.pem CA.key ENTRIES CRLNUMBER OUT.crl "
            "[REPLACED [TWICE]]");
    n = strtoull(argv[3], NULL, 10);
    number = strtoll(argv[4], NULL, 10);
    replaced = argc >= 7 ? strtoull(argv[6], NULL, 10) : 0;
    twice = argc == 8 ? strtoull(argv[7], NULL, 10) : 0;
    if (n > 100000000ULL || number < 0 || number > 0x7fffffff)
        die("ENTRIES at most 100000000, CRLNUMBER 0..2^31-1");
    if (replaced > n || twice > n)
        die("REPLACED and TWICE at most ENTRIES");
    step = replaced > 0 ? n / replaced : 0;
    if ((f = fopen(argv[1], "r")) == NULL
        || (ca = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
        die("cannot read the CA certificate");
    fclose(f);
    if ((f = fopen(argv[2], "r")) == NULL
        || (key = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
        die("cannot read the CA key");
    fclose(f);
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        alg = ecdsa256;
        alglen = sizeof(ecdsa256);
    } else {
        alg = sha256rsa;
        alglen = sizeof(sha256rsa);
    }
    if ((namelen = i2d_X509_NAME(X509_get_subject_name(ca), &name)) <= 0
        || (ski = X509_get0_subject_key_id(ca)) == NULL)
        die("the CA certificate has no subject or no SKI");

    /* revokedCertificates */
    for (i = 0; i < n + twice; i++) {
        uint64_t ix = i < n ? i : i - n;
        uint64_t m;
        int again = i >= n;             /* listed a second time */

        if (!again && step > 0 && i % step == 0 && done < replaced) {
            ix = n + i;                 /* a new entry in place of i */
            done++;
        }
        m = mix64(ix + 1);
        uint8_t serial[9], reason[3] = {0x0a, 0x01, 0};
        int k;

        serial[0] = (uint8_t)(1 + (m >> 56) % 0x7f);
        for (k = 0; k < 8; k++)
            serial[1 + k] = (uint8_t)(mix64(m) >> (56 - 8 * k));
        tlv(&one, 0x02, serial, sizeof(serial));
        utctime(&one, REVOKED_BASE - (time_t)(m % (4ULL * 365 * 86400))
                      + (again ? 86400 : 0));
        if (ix % 8 != 7 || again) {
            reason[2] = (uint8_t)(again ? 1 : ix % 7);
            put(&t2, oid_reason, sizeof(oid_reason));
            tlv(&t2, 0x04, reason, sizeof(reason));
            wrap(&t, 0x30, &t2);
            wrap(&t2, 0x30, &t);
            put(&one, t2.p, t2.n);
            t2.n = 0;
        }
        wrap(&ents, 0x30, &one);
    }

    /* tbsCertList */
    put(&tbs, "\x02\x01\x01", 3);                           /* v2 */
    put(&tbs, alg, alglen);
    put(&tbs, name, (size_t)namelen);
    utctime(&tbs, now - 60);
    utctime(&tbs, now + 86400);
    if (n > 0)
        wrap(&tbs, 0x30, &ents);
    /* crlExtensions: AKI keyid, cRLNumber */
    tlv(&t2, 0x80, ski->data, (size_t)ski->length);
    wrap(&t, 0x30, &t2);                                     /* AKI value */
    put(&t2, oid_aki, sizeof(oid_aki));
    wrap(&t2, 0x04, &t);
    wrap(&one, 0x30, &t2);                                  /* Extension */
    {
        uint8_t num[5];
        size_t nl = 0;
        int s;
        for (s = 24; s >= 0; s -= 8)
            if (nl > 0 || (number >> s) != 0 || s == 0)
                num[nl++] = (uint8_t)(number >> s);
        if (num[0] & 0x80) {
            memmove(num + 1, num, nl++);
            num[0] = 0;
        }
        tlv(&t, 0x02, num, nl);
    }
    put(&t2, oid_num, sizeof(oid_num));
    wrap(&t2, 0x04, &t);
    wrap(&one, 0x30, &t2);
    wrap(&t, 0x30, &one);                                   /* Extensions */
    wrap(&tbs, 0xa0, &t);
    wrap(&t, 0x30, &tbs);                                   /* t: tbs TLV */

    md = EVP_MD_CTX_new();
    if (md == NULL
        || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSign(md, NULL, &siglen, t.p, t.n) != 1
        || (sig = malloc(siglen + 1)) == NULL
        || EVP_DigestSign(md, sig + 1, &siglen, t.p, t.n) != 1)
        die("signing failed");
    sig[0] = 0;                                             /* unused bits */
    put(&crl, t.p, t.n);
    put(&crl, alg, alglen);
    tlv(&crl, 0x03, sig, siglen + 1);
    wrap(&one, 0x30, &crl);

    if ((f = fopen(argv[5], "wb")) == NULL
        || fwrite(one.p, 1, one.n, f) != one.n || fclose(f) != 0)
        die("cannot write the CRL");
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    X509_free(ca);
    OPENSSL_free(name);
    free(sig);
    free(tbs.p);
    free(ents.p);
    free(one.p);
    free(t.p);
    free(t2.p);
    free(crl.p);
    return 0;
}
