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

int jpki_crlptr_parse(const char *s, size_t n, jpki_crlptr *p)
{
    const char *q = s, *end = s + n;
    int64_t k, entries;

    if (s == NULL || n == 0 || n > JPKI_CRLPTR_MAX || s[n - 1] == '|')
        return -1;
    if (ptr_num(&q, end, 0, &p->gen) || ptr_num(&q, end, 0, &k)
        || ptr_num(&q, end, 0, &p->this_update)
        || ptr_num(&q, end, 0, &p->next_update)
        || ptr_num(&q, end, 1, &p->crl_number)
        || ptr_num(&q, end, 0, &entries)
        || ptr_num(&q, end, 0, &p->loaded_at) || q != end
        || p->gen < 1 || k < JPKI_CRL_K_MIN || k > JPKI_CRL_K_MAX)
        return -1;
    p->k = (unsigned)k;
    p->entries = (uint64_t)entries;
    return 0;
}

int jpki_crlptr_format(const jpki_crlptr *p, char *out, size_t outlen)
{
    jpki_crlptr back;
    int n = snprintf(out, outlen, "%lld|%u|%lld|%lld|%lld|%llu|%lld",
                     (long long)p->gen, p->k, (long long)p->this_update,
                     (long long)p->next_update, (long long)p->crl_number,
                     (unsigned long long)p->entries,
                     (long long)p->loaded_at);

    if (n <= 0 || (size_t)n >= outlen
        || jpki_crlptr_parse(out, (size_t)n, &back) != 0
        || back.gen != p->gen || back.k != p->k
        || back.this_update != p->this_update
        || back.next_update != p->next_update
        || back.crl_number != p->crl_number || back.entries != p->entries
        || back.loaded_at != p->loaded_at)
        return -1;
    return n;
}

unsigned long jpki_crl_bucket(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k)
{
    uint32_t w = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16
                 | (uint32_t)id[2] << 8 | id[3];

    if (k < JPKI_CRL_K_MIN || k > JPKI_CRL_K_MAX)
        return 0;
    return (unsigned long)(w >> (32 - 4 * k));
}

int jpki_crl_bucket_name(char *out, size_t outlen, const char *list,
                         int64_t gen, unsigned k, unsigned long bucket)
{
    int n;

    if (k < JPKI_CRL_K_MIN || k > JPKI_CRL_K_MAX || gen < 1
        || bucket >> (4 * k) != 0 || list == NULL
        || strlen(list) >= JPKI_CRL_LIST_MAX)
        return -1;
    n = snprintf(out, outlen, "%s:%lld:%0*lx", list, (long long)gen, (int)k,
                 bucket);
    return n > 0 && (size_t)n < outlen ? n : -1;
}

const uint8_t *jpki_crl_field(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k,
                              size_t *len)
{
    *len = JPKI_CERT_ID_LEN - k / 2;
    return id + k / 2;
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
