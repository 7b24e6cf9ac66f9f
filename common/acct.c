/* acct.c - the layouts of the store's account records: acct: lists,
 * mapi: values, the status word of rev: values (acct.h). */
#include "acct.h"

#include <stdio.h>
#include <string.h>

int jpki_acct_list_read(jpki_acct_list *l, const uint8_t *val, size_t len)
{
    l->n = 0;
    if (val == NULL)
        return 1;
    if (len % JPKI_CERT_ID_LEN != 0 || len > JPKI_ACCT_LIST_MAX)
        return 0;
    memcpy(l->id, val, len);
    l->n = len / JPKI_CERT_ID_LEN;
    return 1;
}

int jpki_acct_list_has(const jpki_acct_list *l, const uint8_t *id)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if (memcmp(l->id[i], id, JPKI_CERT_ID_LEN) == 0)
            return 1;
    return 0;
}

jpki_err jpki_acct_list_add(jpki_acct_list *l, const uint8_t *id)
{
    if (jpki_acct_list_has(l, id))
        return JPKI_OK;
    if (l->n >= JPKI_ACCOUNT_CERTS)
        return JPKI_ERR_ACCOUNT_FULL;
    memcpy(l->id[l->n++], id, JPKI_CERT_ID_LEN);
    return JPKI_OK;
}

int jpki_acct_list_del(jpki_acct_list *l, const uint8_t *id)
{
    size_t i, k = 0;

    for (i = 0; i < l->n; i++)
        if (memcmp(l->id[i], id, JPKI_CERT_ID_LEN) != 0) {
            if (k != i)
                memcpy(l->id[k], l->id[i], JPKI_CERT_ID_LEN);
            k++;
        }
    if (k == l->n)
        return 0;
    l->n = k;
    return 1;
}

size_t jpki_acct_list_len(const jpki_acct_list *l)
{
    return l->n * JPKI_CERT_ID_LEN;
}

static int lower_hex(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

size_t jpki_mapi_format(char out[JPKI_MAPI_MAX], const char *tag,
                        int64_t not_after, int64_t bound_at)
{
    size_t tl = tag != NULL ? strlen(tag) : 0;
    int w;

    out[0] = '\0';
    if ((tl != 0 && (tl != 16 || !lower_hex(tag, tl))) || not_after < 0
        || bound_at < 0)
        return 0;
    w = snprintf(out, JPKI_MAPI_MAX, "%s|%lld|%lld", tl ? tag : "",
                 (long long)not_after, (long long)bound_at);
    return w > 0 && w < JPKI_MAPI_MAX ? (size_t)w : 0;
}

/* s[0..n) as 1..19 digits into *v. */
static int digits(const uint8_t *s, size_t n, int64_t *v)
{
    size_t i;
    uint64_t x = 0;

    if (n == 0 || n > 19)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    if (x > (uint64_t)INT64_MAX)
        return 0;
    *v = (int64_t)x;
    return 1;
}

int jpki_mapi_parse(const uint8_t *val, size_t len, char tag[17],
                    int64_t *not_after, int64_t *bound_at)
{
    const uint8_t *b1, *b2;
    size_t tl;

    tag[0] = '\0';
    *not_after = *bound_at = 0;
    if (val == NULL || (b1 = memchr(val, '|', len)) == NULL
        || (b2 = memchr(b1 + 1, '|', len - (size_t)(b1 + 1 - val))) == NULL)
        return 0;
    tl = (size_t)(b1 - val);
    if ((tl != 0 && (tl != 16 || !lower_hex((const char *)val, tl)))
        || !digits(b1 + 1, (size_t)(b2 - b1 - 1), not_after)
        || !digits(b2 + 1, len - (size_t)(b2 + 1 - val), bound_at)) {
        *not_after = *bound_at = 0;
        return 0;
    }
    memcpy(tag, val, tl);
    tag[tl] = '\0';
    return 1;
}

int jpki_rev_value_final(const uint8_t *val, size_t len)
{
    static const char w[] = "revoked|";

    /* as the gate reads it: at most a store value (txn_rev_parse) */
    return val != NULL && len >= sizeof(w) - 1 && len <= JPKI_STORE_VAL_MAX
           && memcmp(val, w, sizeof(w) - 1) == 0;
}
