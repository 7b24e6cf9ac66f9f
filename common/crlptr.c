/* crlptr.c - the Redis layout of loaded CRLs (crlptr.h,
 * docs/store-schema.md "crl"): written by `jpkictl crl sync`, read by the
 * gate's transaction (txn.c) and by jpkictl's other commands. */
#include "internal.h"
#include "crlptr.h"

#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define KEY_TAG_LABEL  "jpki crl key"
#define LIST_TAG_LABEL "jpki crl list"

static int hex16(const char *s)
{
    return strspn(s, "0123456789abcdef") >= JPKI_CRL_TAG_LEN;
}

static int is_tag(const char *s)
{
    return s != NULL && strlen(s) == JPKI_CRL_TAG_LEN && hex16(s);
}

/* The first 8 octets of SHA-256 over label, a and b, in hex, into out
 * (JPKI_CRL_TAG_LEN + 1).  0, -1. */
static int tag_of(const char *label, const void *a, size_t alen,
                  const void *b, size_t blen, char *out)
{
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    ok = md != NULL && EVP_DigestInit_ex(md, jpki_md(JPKI_MD_SHA256), NULL)
         && EVP_DigestUpdate(md, label, strlen(label))
         && EVP_DigestUpdate(md, a, alen) && EVP_DigestUpdate(md, b, blen)
         && EVP_DigestFinal_ex(md, d, &dl) && dl == sizeof(d);
    EVP_MD_CTX_free(md);
    if (!ok) {
        ERR_clear_error();
        return -1;
    }
    jpki_hex_encode(d, JPKI_CRL_TAG_LEN / 2, out);
    return 0;
}

int jpki_crl_key_tag(const uint8_t key_hash[20],
                     char out[JPKI_CRL_TAG_LEN + 1])
{
    out[0] = '\0';
    return key_hash != NULL
           ? tag_of(KEY_TAG_LABEL, key_hash, 20, "", 0, out) : -1;
}

int jpki_crl_list_of(char *out, size_t outlen, const char *issuer_tag,
                     const char *key_tag, int arl)
{
    char list[JPKI_CRL_TAG_LEN + 1];
    int n;

    if (!is_tag(issuer_tag) || !is_tag(key_tag)
        || tag_of(LIST_TAG_LABEL, issuer_tag, JPKI_CRL_TAG_LEN, key_tag,
                  JPKI_CRL_TAG_LEN, list) != 0)
        return -1;
    n = snprintf(out, outlen, "%s%s", list, arl ? ".arl" : "");
    return n > 0 && (size_t)n < outlen ? n : -1;
}

int jpki_crl_list_name(char *out, size_t outlen, const char *issuer_tag,
                       const uint8_t key_hash[20], int arl)
{
    char key[JPKI_CRL_TAG_LEN + 1];

    if (jpki_crl_key_tag(key_hash, key) != 0)
        return -1;
    return jpki_crl_list_of(out, outlen, issuer_tag, key, arl);
}

int jpki_crl_list_parse(const char *name, int *arl)
{
    size_t n = name != NULL ? strlen(name) : 0;

    *arl = n >= 4 && strcmp(name + n - 4, ".arl") == 0;
    if (*arl)
        n -= 4;
    if (n == JPKI_CRL_TAG_LEN && hex16(name))
        return 1;
    if (n == 2 * JPKI_CRL_TAG_LEN + 1 && hex16(name)
        && name[JPKI_CRL_TAG_LEN] == '.' && hex16(name + JPKI_CRL_TAG_LEN + 1))
        return 0;
    *arl = 0;
    return -1;
}

size_t jpki_crl_issuer_keys(const jpki_issuer *is, jpki_crl_key *keys,
                            size_t max)
{
    size_t n = 0, k;
    uint8_t h[20];
    int j;

    for (j = 0; is != NULL && j < sk_X509_num(is->all) && n < max; j++) {
        X509 *ca = sk_X509_value(is->all, j);

        if (!jpki_key_hash_sha1(ca, h))
            continue;
        for (k = 0; k < n && memcmp(keys[k].hash, h, 20) != 0; k++)
            ;
        if (k < n)
            continue;                   /* a link certificate's key */
        memcpy(keys[n].hash, h, 20);
        X509_NAME_oneline(X509_get_subject_name(ca), keys[n].subject,
                          sizeof(keys[n].subject));
        for (k = 0; keys[n].subject[k] != '\0'; k++)
            if (keys[n].subject[k] == '"')      /* quoted in messages */
                keys[n].subject[k] = '\'';
        n++;
    }
    return n;
}

/* One decimal field ending at '|' or at end: at most 19 digits, within
 * INT64_MAX, no leading zero; "-1" too when neg. */
static int ptr_num(const char **p, const char *end, int neg, int64_t *v)
{
    const char *s = *p, *d0;
    int64_t x = 0;

    if (neg && end - s >= 2 && s[0] == '-' && s[1] == '1'
        && (end - s == 2 || s[2] == '|')) {
        *v = -1;
        *p = end - s == 2 ? end : s + 3;
        return 0;
    }
    for (d0 = s; s < end && *s >= '0' && *s <= '9'; s++) {
        if (s - d0 >= 19 || x > (INT64_MAX - (*s - '0')) / 10)
            return -1;
        x = x * 10 + (*s - '0');
    }
    if (s == d0 || (s - d0 > 1 && *d0 == '0') || (s < end && *s != '|'))
        return -1;
    *v = x;
    *p = s < end ? s + 1 : s;
    return 0;
}

int jpki_crl_shape_ok(const jpki_crl_shape *sh)
{
    if (sh->key_len == JPKI_CRL_KEY_LEN)
        return sh->bits >= JPKI_CRL_BITS_MIN && sh->bits <= JPKI_CRL_BITS_MAX;
    return sh->key_len == JPKI_CERT_ID_LEN && sh->bits % 4 == 0
           && sh->bits >= 4 * JPKI_CRL_K_MIN && sh->bits <= 4 * JPKI_CRL_K_MAX;
}

int jpki_crl_shape_format(const jpki_crl_shape *sh,
                          char out[JPKI_CRL_SHAPE_MAX])
{
    out[0] = '\0';
    if (!jpki_crl_shape_ok(sh))
        return -1;
    if (sh->key_len == JPKI_CERT_ID_LEN)
        return snprintf(out, JPKI_CRL_SHAPE_MAX, "%u", sh->bits / 4);
    return snprintf(out, JPKI_CRL_SHAPE_MAX, "b%u", sh->bits);
}

int jpki_crl_shape_parse(const char *s, size_t n, jpki_crl_shape *sh)
{
    unsigned v = 0;
    size_t i, d0 = n > 0 && s[0] == 'b';

    if (n <= d0 || n - d0 > 2 || (n - d0 == 2 && s[d0] == '0'))
        return -1;
    for (i = d0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    sh->key_len = d0 ? JPKI_CRL_KEY_LEN : JPKI_CERT_ID_LEN;
    sh->bits = d0 ? v : 4 * v;
    return d0 || v <= JPKI_CRL_K_MAX ? (jpki_crl_shape_ok(sh) ? 0 : -1) : -1;
}

int jpki_crlptr_parse(const char *s, size_t n, jpki_crlptr *p)
{
    const char *q = s, *end = s + n, *bar;
    int64_t entries;

    if (s == NULL || n == 0 || n > JPKI_CRLPTR_MAX || s[n - 1] == '|')
        return -1;
    if (ptr_num(&q, end, 0, &p->gen)
        || (bar = memchr(q, '|', (size_t)(end - q))) == NULL
        || jpki_crl_shape_parse(q, (size_t)(bar - q), &p->shape) != 0)
        return -1;
    q = bar + 1;
    if (ptr_num(&q, end, 0, &p->this_update)
        || ptr_num(&q, end, 0, &p->next_update)
        || ptr_num(&q, end, 1, &p->crl_number)
        || ptr_num(&q, end, 0, &entries)
        || ptr_num(&q, end, 0, &p->loaded_at) || q != end || p->gen < 1)
        return -1;
    p->entries = (uint64_t)entries;
    return 0;
}

int jpki_crlptr_format(const jpki_crlptr *p, char *out, size_t outlen)
{
    char shape[JPKI_CRL_SHAPE_MAX];
    jpki_crlptr back;
    int n;

    if (jpki_crl_shape_format(&p->shape, shape) < 0)
        return -1;
    n = snprintf(out, outlen, "%lld|%s|%lld|%lld|%lld|%llu|%lld",
                 (long long)p->gen, shape, (long long)p->this_update,
                 (long long)p->next_update, (long long)p->crl_number,
                 (unsigned long long)p->entries, (long long)p->loaded_at);
    if (n <= 0 || (size_t)n >= outlen
        || jpki_crlptr_parse(out, (size_t)n, &back) != 0
        || back.gen != p->gen || back.shape.bits != p->shape.bits
        || back.shape.key_len != p->shape.key_len
        || back.this_update != p->this_update
        || back.next_update != p->next_update
        || back.crl_number != p->crl_number || back.entries != p->entries
        || back.loaded_at != p->loaded_at)
        return -1;
    return n;
}

unsigned long jpki_crl_bucket(const uint8_t *id, const jpki_crl_shape *sh)
{
    uint32_t w = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16
                 | (uint32_t)id[2] << 8 | id[3];

    if (!jpki_crl_shape_ok(sh))
        return 0;
    return (unsigned long)(w >> (32 - sh->bits));
}

int jpki_crl_bucket_name(char *out, size_t outlen, const char *list,
                         int64_t gen, const jpki_crl_shape *sh,
                         unsigned long bucket)
{
    int n;

    if (!jpki_crl_shape_ok(sh) || gen < 1 || bucket >> sh->bits != 0
        || list == NULL || strlen(list) >= JPKI_CRL_LIST_MAX)
        return -1;
    n = snprintf(out, outlen, "%s:%lld:%0*lx", list, (long long)gen,
                 (int)((sh->bits + 3) / 4), bucket);
    return n > 0 && (size_t)n < outlen ? n : -1;
}

const uint8_t *jpki_crl_field(const uint8_t *id, const jpki_crl_shape *sh,
                              size_t *len)
{
    if (!jpki_crl_shape_ok(sh)) {
        *len = 0;
        return NULL;
    }
    *len = sh->key_len - sh->bits / 8;
    return id + sh->bits / 8;
}

static int reason_ok(int r)
{
    return r >= 0 && r <= 10 && r != 7;     /* CRLReason; 7 is unused */
}

void jpki_crl_value_pack(uint8_t out[JPKI_CRL_VALUE_LEN], int reason,
                         uint32_t at)
{
    out[0] = reason_ok(reason) ? (uint8_t)reason : JPKI_CRL_REASON_NONE;
    out[1] = (uint8_t)(at >> 24);
    out[2] = (uint8_t)(at >> 16);
    out[3] = (uint8_t)(at >> 8);
    out[4] = (uint8_t)at;
}

int jpki_crl_value_unpack(const uint8_t *v, size_t n, int *reason,
                          int64_t *at)
{
    if (n != JPKI_CRL_VALUE_LEN
        || (!reason_ok(v[0]) && v[0] != JPKI_CRL_REASON_NONE))
        return -1;
    *reason = v[0] == JPKI_CRL_REASON_NONE ? -1 : v[0];
    *at = (int64_t)((uint32_t)v[1] << 24 | (uint32_t)v[2] << 16
                    | (uint32_t)v[3] << 8 | v[4]);
    return 0;
}
