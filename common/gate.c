/* gate.c - the gate's HTTP rules shared by both adapters (gate.h): the
 * gate's own request headers, JSON or page from Accept, the health answer,
 * the Redis connection prelude. */
#include "gate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

const char *const jpki_health_reason_names[JPKI_HR_N] = {
    "store_down", "store_full", "crl_missing", "crl_stale",
    "crl_load_failed", "ocsp_failing"
};

static const char *const source_names[] = {"file", "redis"};

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

void jpki_health_release(jpki_health *h)
{
    if (h->owned)
        free(h->buf);
    h->buf = NULL;
    h->max = h->len = 0;
    h->owned = 0;
}

void jpki_health_reason(jpki_health *h, int reason, int source,
                        const char *issuer)
{
    unsigned i;

    h->ok = 0;
    for (i = 0; i < h->n_reasons; i++)
        if (h->reasons[i].reason == reason && h->reasons[i].source == source
            && strcmp(h->reasons[i].issuer, issuer ? issuer : "") == 0)
            return;
    if (h->n_reasons == JPKI_HEALTH_REASONS_MAX)
        return;
    h->reasons[i].reason = (uint8_t)reason;
    h->reasons[i].source = (uint8_t)source;
    label(h->reasons[i].issuer, sizeof(h->reasons[i].issuer), issuer);
    h->n_reasons++;
}

/* The aggregate of (issuer, source) for the metrics. */
static void aggregate(jpki_health *h, const char *issuer, int source,
                      const jpki_crl_info *info, int bad)
{
    char name[64];
    unsigned i;

    label(name, sizeof(name), issuer);
    for (i = 0; i < h->n_agg; i++)
        if (h->agg[i].source == source && strcmp(h->agg[i].issuer, name) == 0)
            break;
    if (i == h->n_agg) {
        if (h->n_agg == JPKI_HEALTH_AGG_MAX)
            return;
        memset(&h->agg[i], 0, sizeof(h->agg[i]));
        memcpy(h->agg[i].issuer, name, sizeof(name));
        h->agg[i].source = (uint8_t)source;
        h->n_agg++;
    }
    h->agg[i].crls++;
    h->agg[i].bad |= (uint8_t)(bad != 0);
    if (info != NULL) {
        h->agg[i].loaded++;
        if (h->agg[i].oldest == 0 || info->this_update < h->agg[i].oldest)
            h->agg[i].oldest = info->this_update;
    }
}

/* A loaded CRL's fields and its reasons; 1 when fresh. */
static int crl_fields(jpki_health *h, const char *issuer, int source,
                      const jpki_crl_info *info, int64_t loaded_at)
{
    int64_t stale_at = jpki_crl_stale_after(info, h->grace, h->skew);
    int fresh = h->now <= stale_at;

    if (!fresh)
        jpki_health_reason(h, JPKI_HR_CRL_STALE, source, issuer);
    put(h->buf, h->max, &h->len,
        ",\"loaded\":true,\"this_update\":%lld,\"next_update\":%lld,"
        "\"age\":%lld,\"entries\":%llu,\"crl_number\":%lld,\"fresh\":%s,"
        "\"stale_at\":%lld,\"loaded_at\":%lld",
        (long long)info->this_update, (long long)info->next_update,
        (long long)(h->now - info->this_update),
        (unsigned long long)info->entries, (long long)info->crl_number,
        fresh ? "true" : "false",
        stale_at == INT64_MAX ? 0LL : (long long)stale_at,
        (long long)loaded_at);
    return fresh;
}

void jpki_health_add_crl(jpki_health *h, const char *issuer,
                         const char *file, const jpki_crl_info *info,
                         jpki_err error, int64_t loaded_at)
{
    char name[128], fname[256];
    int fresh;

    label(name, sizeof(name), issuer);
    put(h->buf, h->max, &h->len, "%s{\"issuer\":\"%s\"", h->n++ ? "," : "",
        name);
    if (file != NULL) {
        label(fname, sizeof(fname), file);
        put(h->buf, h->max, &h->len, ",\"file\":\"%s\"", fname);
    }
    if (info == NULL) {
        /* none loaded: the file's CRL refused as stale says so */
        jpki_health_reason(h, error == JPKI_ERR_CRL_STALE ? JPKI_HR_CRL_STALE
                              : JPKI_HR_CRL_MISSING, JPKI_HEALTH_FILE, issuer);
        aggregate(h, issuer, JPKI_HEALTH_FILE, NULL, 1);
        put(h->buf, h->max, &h->len, ",\"loaded\":false,\"error\":\"%s\"}",
            jpki_reason(error == JPKI_OK ? JPKI_ERR_REVOCATION_UNAVAILABLE
                                         : error));
        return;
    }
    fresh = crl_fields(h, issuer, JPKI_HEALTH_FILE, info, loaded_at);
    if (error != JPKI_OK)
        jpki_health_reason(h, JPKI_HR_CRL_LOAD_FAILED, JPKI_HEALTH_FILE,
                           issuer);
    aggregate(h, issuer, JPKI_HEALTH_FILE, info, !fresh || error != JPKI_OK);
    put(h->buf, h->max, &h->len, ",\"last_load\":\"%s\"}", jpki_reason(error));
}

void jpki_health_add_store_crl(jpki_health *h, const char *issuer,
                               const jpki_crl_info *worst, unsigned lists,
                               unsigned loaded, int64_t loaded_at)
{
    char name[128];
    int fresh;

    label(name, sizeof(name), issuer);
    put(h->buf, h->max, &h->len, "%s{\"issuer\":\"%s\",\"source\":\"redis\","
        "\"lists\":%u,\"lists_loaded\":%u", h->n++ ? "," : "", name, lists,
        loaded);
    if (worst == NULL) {
        jpki_health_reason(h, JPKI_HR_CRL_MISSING, JPKI_HEALTH_REDIS, issuer);
        aggregate(h, issuer, JPKI_HEALTH_REDIS, NULL, 1);
        put(h->buf, h->max, &h->len, ",\"loaded\":false,\"error\":\"%s\"}",
            jpki_reason(JPKI_ERR_REVOCATION_UNAVAILABLE));
        return;
    }
    fresh = crl_fields(h, issuer, JPKI_HEALTH_REDIS, worst, loaded_at);
    aggregate(h, issuer, JPKI_HEALTH_REDIS, worst, !fresh);
    put(h->buf, h->max, &h->len, "}");
}

void jpki_health_add_ocsp(jpki_health *h, const char *issuer, int failing,
                          uint64_t streak, int64_t last_ok,
                          int64_t last_fail)
{
    unsigned i = h->n_ocsp;

    if (failing)
        jpki_health_reason(h, JPKI_HR_OCSP_FAILING, JPKI_HEALTH_FILE, issuer);
    if (i == JPKI_HEALTH_OCSP_MAX)
        return;
    label(h->ocsp[i].issuer, sizeof(h->ocsp[i].issuer), issuer);
    h->ocsp[i].failing = failing;
    h->ocsp[i].streak = streak;
    h->ocsp[i].last_ok = last_ok;
    h->ocsp[i].last_fail = last_fail;
    h->n_ocsp++;
}

int jpki_health_is_ok(const jpki_health *h, jpki_err store)
{
    return store == JPKI_OK && h->ok;
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

/* The "reasons" array: the store's first, then those collected. */
static void reasons_json(const jpki_health *h, jpki_err store, char *out,
                         size_t max)
{
    size_t len = 0;
    unsigned i, n = 0;

    out[0] = '\0';
    if (store != JPKI_OK)
        put(out, max, &len, "%s{\"reason\":\"%s\"}", n++ ? "," : "",
            jpki_health_reason_names[store == JPKI_ERR_STORE_FULL
                                     ? JPKI_HR_STORE_FULL
                                     : JPKI_HR_STORE_DOWN]);
    for (i = 0; i < h->n_reasons; i++) {
        put(out, max, &len, "%s{\"reason\":\"%s\"", n++ ? "," : "",
            jpki_health_reason_names[h->reasons[i].reason]);
        if (h->reasons[i].issuer[0] != '\0')
            put(out, max, &len, ",\"issuer\":\"%s\"", h->reasons[i].issuer);
        if (h->reasons[i].reason >= JPKI_HR_CRL_MISSING
            && h->reasons[i].reason <= JPKI_HR_CRL_LOAD_FAILED)
            put(out, max, &len, ",\"source\":\"%s\"",
                source_names[h->reasons[i].source]);
        put(out, max, &len, "}");
    }
}

static void ocsp_json(const jpki_health *h, char *out, size_t max)
{
    size_t len = 0;
    unsigned i;

    out[0] = '\0';
    for (i = 0; i < h->n_ocsp; i++)
        put(out, max, &len, "%s{\"issuer\":\"%s\",\"failing\":%s,"
            "\"consecutive_failures\":%llu,\"last_success\":%lld,"
            "\"last_failure\":%lld}", i ? "," : "", h->ocsp[i].issuer,
            h->ocsp[i].failing ? "true" : "false",
            (unsigned long long)h->ocsp[i].streak,
            (long long)h->ocsp[i].last_ok, (long long)h->ocsp[i].last_fail);
}

size_t jpki_health_json(const jpki_health *h, int shm, jpki_err store,
                        char *out, size_t max, int *ok)
{
    char reasons[JPKI_HEALTH_REASONS_MAX * 112 + 64];
    char ocsp[JPKI_HEALTH_OCSP_MAX * 176];
    int n;

    if (store != JPKI_OK && store != JPKI_ERR_STORE_FULL)
        store = JPKI_ERR_STORE;
    *ok = jpki_health_is_ok(h, store);
    reasons_json(h, store, reasons, sizeof(reasons));
    ocsp_json(h, ocsp, sizeof(ocsp));
    n = snprintf(out, max,
                 "{\"status\":\"%s\",\"time\":%lld,\"store\":{\"type\":\"%s\","
                 "\"ok\":%s%s%s%s},\"crls\":[%s],\"reasons\":[%s],"
                 "\"ocsp\":[%s]}",
                 *ok ? "ok" : "degraded", (long long)h->now,
                 shm ? "shm" : "redis", store == JPKI_OK ? "true" : "false",
                 store == JPKI_OK ? "" : ",\"error\":\"",
                 store == JPKI_OK ? "" : jpki_reason(store),
                 store == JPKI_OK ? "" : "\"", h->len ? h->buf : "", reasons,
                 ocsp);
    if (n < 0 || (size_t)n >= max)
        return 0;
    return (size_t)n;
}

/* The answer's size at most: jpki_health_json's out. */
size_t jpki_health_json_max(const jpki_health *h)
{
    return h->len + JPKI_HEALTH_REASONS_MAX * 112 + JPKI_HEALTH_OCSP_MAX * 176
           + 512;
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
