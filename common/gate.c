/* gate.c - the gate's HTTP rules shared by both adapters (gate.h): the
 * gate's own request headers, JSON or page from Accept, the health answer,
 * the Redis connection prelude. */
#include "gate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int jpki_header_name_eq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int ca = a[i] == '_' ? '-' : lower((unsigned char)a[i]);
        int cb = b[i] == '_' ? '-' : lower((unsigned char)b[i]);
        if (ca != cb || ca == '\0')
            return 0;
    }
    return 1;
}

int jpki_is_gate_header(const char *key, size_t klen, const char *name,
                        size_t nlen)
{
    if (klen >= 7 && jpki_header_name_eq(key, "x-jpki-", 7))
        return 1;
    return name != NULL && nlen > 0 && klen == nlen
           && jpki_header_name_eq(key, name, nlen);
}

/* Case-insensitive search for needle (lower case) in s[0..len). */
static int has_word(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle), i, j;

    for (i = 0; i + n <= len; i++) {
        for (j = 0; j < n && lower((unsigned char)s[i + j]) == needle[j]; j++)
            ;
        if (j == n)
            return 1;
    }
    return 0;
}

int jpki_accept_wants_json(const char *accept, size_t len)
{
    if (accept == NULL || has_word(accept, len, "application/json"))
        return 1;
    return !has_word(accept, len, "text/html");
}

int jpki_endpoint_op(const char *path, size_t len, int is_post, jpki_op *op)
{
    static const struct {
        const char *name;
        size_t len;
        jpki_op op;
    } ends[] = {
        {"challenge", 9, JPKI_OP_CHALLENGE}, {"login", 5, JPKI_OP_LOGIN},
        {"logout", 6, JPKI_OP_LOGOUT}, {"status", 6, JPKI_OP_STATUS},
        {"tls", 3, JPKI_OP_TLS_LOGIN}, {"page.css", 8, JPKI_OP_ASSET},
        {"page.js", 7, JPKI_OP_ASSET}, {"device", 6, JPKI_OP_DEVICE_START},
        {"sign", 4, JPKI_OP_DEVICE_SIGN}, {"poll", 4, JPKI_OP_DEVICE_POLL}};
    size_t end = len, start, i;

    while (end > 0 && path[end - 1] == '/')
        end--;
    for (start = end; start > 0 && path[start - 1] != '/'; start--)
        ;
    for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        if (end - start == ends[i].len
            && memcmp(path + start, ends[i].name, ends[i].len) == 0) {
            *op = ends[i].op == JPKI_OP_LOGIN && !is_post ? JPKI_OP_PAGE
                                                          : ends[i].op;
            return 1;
        }
    return 0;
}

/* ---- health ------------------------------------------------------ */

static void put(char *buf, size_t max, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends to buf; on overflow the text stops at the last whole piece and
 * len is left where it was (the answer is then cut, never overrun). */
static void put(char *buf, size_t max, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= max)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, max - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= max - *len) {
        buf[*len] = '\0';
        return;
    }
    *len += (size_t)n;
}

/* A label as a JSON string's content: what is not printable ASCII, '"'
 * and '\\' are left out (labels are the operator's names and paths). */
static void label(char *out, size_t max, const char *s)
{
    size_t n = 0;

    for (; s != NULL && *s != '\0' && n + 1 < max; s++)
        if (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
            out[n++] = *s;
    out[n] = '\0';
}

void jpki_health_init(jpki_health *h, char *buf, size_t max, int64_t now,
                      unsigned grace, int64_t skew)
{
    memset(h, 0, sizeof(*h));
    h->buf = buf;
    h->max = max;
    h->ok = 1;
    h->now = now;
    h->grace = grace;
    h->skew = skew;
    if (max > 0)
        buf[0] = '\0';
}

void jpki_health_add_crl(jpki_health *h, const char *issuer,
                         const char *file, const jpki_crl_info *info,
                         jpki_err error, int64_t loaded_at)
{
    char name[128], fname[256];
    int64_t stale_at;
    int fresh;

    label(name, sizeof(name), issuer);
    put(h->buf, h->max, &h->len, "%s{\"issuer\":\"%s\"", h->n++ ? "," : "",
        name);
    if (file != NULL) {
        label(fname, sizeof(fname), file);
        put(h->buf, h->max, &h->len, ",\"file\":\"%s\"", fname);
    }
    if (info == NULL) {
        h->ok = 0;
        put(h->buf, h->max, &h->len, ",\"loaded\":false,\"error\":\"%s\"}",
            jpki_reason(error == JPKI_OK ? JPKI_ERR_REVOCATION_UNAVAILABLE
                                         : error));
        return;
    }
    stale_at = jpki_crl_stale_after(info, h->grace, h->skew);
    fresh = h->now <= stale_at;
    if (!fresh || error != JPKI_OK)
        h->ok = 0;
    put(h->buf, h->max, &h->len,
        ",\"loaded\":true,\"this_update\":%lld,\"next_update\":%lld,"
        "\"age\":%lld,\"entries\":%llu,\"crl_number\":%lld,\"fresh\":%s,"
        "\"stale_at\":%lld,\"loaded_at\":%lld,\"last_load\":\"%s\"}",
        (long long)info->this_update, (long long)info->next_update,
        (long long)(h->now - info->this_update),
        (unsigned long long)info->entries, (long long)info->crl_number,
        fresh ? "true" : "false",
        stale_at == INT64_MAX ? 0LL : (long long)stale_at,
        (long long)loaded_at, jpki_reason(error));
}

void jpki_health_probe(jpki_store_cmd *cmd, int64_t now)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->op = JPKI_STORE_SET;
    cmd->keylen = (size_t)snprintf(cmd->key, sizeof(cmd->key), "%shealth",
                                   JPKI_STORE_PREFIX);
    cmd->vallen = (size_t)snprintf((char *)cmd->val, sizeof(cmd->val), "%lld",
                                   (long long)now);
    cmd->ttl_ms = 60 * 1000;
}

jpki_err jpki_health_probe_result(const jpki_store_result *res, size_t n)
{
    if (res == NULL || n != 1)
        return JPKI_ERR_STORE;
    if (res->type == JPKI_STORE_R_FULL)
        return JPKI_ERR_STORE_FULL;
    return res->type == JPKI_STORE_R_INT ? JPKI_OK : JPKI_ERR_STORE;
}

size_t jpki_health_json(const jpki_health *h, int shm, jpki_err store,
                        char *out, size_t max, int *ok)
{
    int n;

    if (store != JPKI_OK && store != JPKI_ERR_STORE_FULL)
        store = JPKI_ERR_STORE;
    *ok = store == JPKI_OK && h->ok;
    n = snprintf(out, max,
                 "{\"status\":\"%s\",\"time\":%lld,\"store\":{\"type\":\"%s\","
                 "\"ok\":%s%s%s%s},\"crls\":[%s]}",
                 *ok ? "ok" : "degraded", (long long)h->now,
                 shm ? "shm" : "redis", store == JPKI_OK ? "true" : "false",
                 store == JPKI_OK ? "" : ",\"error\":\"",
                 store == JPKI_OK ? "" : jpki_reason(store),
                 store == JPKI_OK ? "" : "\"", h->len ? h->buf : "");
    if (n < 0 || (size_t)n >= max)
        return 0;
    return (size_t)n;
}

/* ---- Redis ------------------------------------------------------- */

static size_t resp_arg(char *p, const char *s)
{
    size_t n = strlen(s);
    int h = sprintf(p, "$%zu\r\n", n);

    memcpy(p + h, s, n);
    memcpy(p + h + n, "\r\n", 2);
    return (size_t)h + n + 2;
}

size_t jpki_redis_prelude_size(const char *user, const char *password)
{
    /* "*3\r\n", "$4\r\nAUTH\r\n", two "$<20 digits>\r\n...\r\n", then
     * "*2\r\n$6\r\nSELECT\r\n$<10 digits>\r\n" */
    return 4 + 10 + (user ? strlen(user) + 24 : 0)
           + (password ? strlen(password) + 24 : 0) + 4 + 12 + 16 + 1;
}

size_t jpki_redis_prelude(const char *user, const char *password,
                          unsigned db, char *out, size_t max,
                          unsigned *count)
{
    char *p = out, num[16];

    *count = 0;
    if (max < jpki_redis_prelude_size(user, password))
        return (size_t)-1;
    if (password != NULL) {
        p += sprintf(p, "*%d\r\n", user ? 3 : 2);
        p += resp_arg(p, "AUTH");
        if (user != NULL)
            p += resp_arg(p, user);
        p += resp_arg(p, password);
        (*count)++;
    }
    if (db > 0) {
        snprintf(num, sizeof(num), "%u", db);
        p += sprintf(p, "*2\r\n");
        p += resp_arg(p, "SELECT");
        p += resp_arg(p, num);
        (*count)++;
    }
    *p = '\0';
    return (size_t)(p - out);
}
