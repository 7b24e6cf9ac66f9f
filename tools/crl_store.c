/*
 * crl_store.c - the Redis layout of loaded CRLs (docs/store-schema.md,
 * section "crl") and a pipelined RESP writer for loading millions of
 * entries with few round trips.
 */
#include "crl_store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIPE_BATCH (256 * 1024)   /* bytes of commands sent at once */

/* ---- pointer ------------------------------------------------------ */

/* Only what crl_meta_parse() reads back as the same values is written: a
 * pointer the next run (or a gate) cannot read would stop every later sync
 * of the list. */
int crl_meta_format(const crl_meta *m, char *out, size_t outlen)
{
    crl_meta back;
    int n = snprintf(out, outlen, "%lld|%u|%lld|%lld|%lld|%llu|%lld", m->gen,
                     m->k, m->this_update, m->next_update, m->crl_number,
                     m->entries, m->loaded_at);

    if (n <= 0 || (size_t)n >= outlen || n > CRL_META_MAX
        || crl_meta_parse(out, (size_t)n, &back) != 0
        || back.gen != m->gen || back.k != m->k
        || back.this_update != m->this_update
        || back.next_update != m->next_update
        || back.crl_number != m->crl_number || back.entries != m->entries
        || back.loaded_at != m->loaded_at)
        return -1;
    return n;
}

/* One decimal field (optionally negative when neg): at most 19 digits and
 * at most LLONG_MAX, every value of an int64 such as a cRLNumber (the
 * gate's reader, common/txn.c, takes the same with strtoll). */
static int meta_num(const char **p, const char *end, int neg, long long *v)
{
    const char *s = *p;
    int minus = 0;
    size_t d = 0;
    long long x = 0;

    if (neg && s < end && *s == '-') {
        minus = 1;
        s++;
    }
    while (s < end && *s >= '0' && *s <= '9') {
        if (++d > 19 || x > (LLONG_MAX - (*s - '0')) / 10)
            return -1;
        x = x * 10 + (*s++ - '0');
    }
    if (d == 0 || (s < end && *s != '|'))
        return -1;
    *v = minus ? -x : x;
    *p = s < end ? s + 1 : s;
    return 0;
}

int crl_meta_parse(const char *s, size_t n, crl_meta *m)
{
    const char *p = s, *end = s + n;
    long long k, entries;

    if (n == 0 || n > CRL_META_MAX || s[n - 1] == '|')
        return -1;
    if (meta_num(&p, end, 0, &m->gen) || meta_num(&p, end, 0, &k)
        || meta_num(&p, end, 0, &m->this_update)
        || meta_num(&p, end, 0, &m->next_update)
        || meta_num(&p, end, 1, &m->crl_number)
        || meta_num(&p, end, 0, &entries)
        || meta_num(&p, end, 0, &m->loaded_at) || p != end
        || k < CRL_K_MIN || k > CRL_K_MAX || m->crl_number < -1)
        return -1;
    m->k = (unsigned)k;
    m->entries = (unsigned long long)entries;
    return 0;
}

/* ---- keys and values ---------------------------------------------- */

void crl_key_meta(char *out, const char *lid)
{
    snprintf(out, JPKI_STORE_KEY_MAX + 1, JPKI_STORE_PREFIX "crlmeta:%s",
             lid);
}

void crl_key_info(char *out, const char *lid)
{
    snprintf(out, JPKI_STORE_KEY_MAX + 1, JPKI_STORE_PREFIX "crlinfo:%s",
             lid);
}

void crl_key_gen(char *out, const char *lid)
{
    snprintf(out, JPKI_STORE_KEY_MAX + 1, JPKI_STORE_PREFIX "crlgen:%s", lid);
}

void crl_key_lock(char *out, const char *lid)
{
    snprintf(out, JPKI_STORE_KEY_MAX + 1, JPKI_STORE_PREFIX "crllock:%s",
             lid);
}

unsigned long crl_prefix(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k)
{
    uint32_t w = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16
                 | (uint32_t)id[2] << 8 | id[3];

    return (unsigned long)(w >> (32 - 4 * k));
}

void crl_key_bucket_n(char *out, const char *lid, long long gen, unsigned k,
                      unsigned long b)
{
    snprintf(out, JPKI_STORE_KEY_MAX + 1,
             JPKI_STORE_PREFIX "crl:%s:%lld:%0*lx", lid, gen, (int)k, b);
}

void crl_key_bucket(char *out, const char *lid, long long gen, unsigned k,
                    const uint8_t id[JPKI_CERT_ID_LEN])
{
    crl_key_bucket_n(out, lid, gen, k, crl_prefix(id, k));
}

const uint8_t *crl_field(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k,
                         size_t *len)
{
    *len = JPKI_CERT_ID_LEN - k / 2;
    return id + k / 2;
}

void crl_value_pack(uint8_t out[CRL_VALUE_LEN], int reason, uint32_t at)
{
    out[0] = reason < 0 || reason > 10 ? CRL_REASON_NONE : (uint8_t)reason;
    out[1] = (uint8_t)(at >> 24);
    out[2] = (uint8_t)(at >> 16);
    out[3] = (uint8_t)(at >> 8);
    out[4] = (uint8_t)at;
}

int crl_value_unpack(const char *v, size_t n, int *reason, int64_t *at)
{
    const uint8_t *u = (const uint8_t *)v;

    if (n != CRL_VALUE_LEN || (u[0] > 10 && u[0] != CRL_REASON_NONE))
        return -1;
    *reason = u[0] == CRL_REASON_NONE ? -1 : u[0];
    *at = (int64_t)((uint32_t)u[1] << 24 | (uint32_t)u[2] << 16
                    | (uint32_t)u[3] << 8 | u[4]);
    return 0;
}

/* ---- pipelined writer --------------------------------------------- */

void pipe_init(pipe_t *p, redisContext *rc)
{
    memset(p, 0, sizeof(*p));
    p->rc = rc;
}

void pipe_free(pipe_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}

static void pipe_fail(pipe_t *p, const char *fmt, const char *detail)
{
    if (!p->failed)
        snprintf(p->err, sizeof(p->err), fmt, detail);
    p->failed = 1;
}

static void pipe_put(pipe_t *p, const void *d, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : PIPE_BATCH + 4096;
        char *nb;

        while (cap < p->len + n)
            cap *= 2;
        if ((nb = realloc(p->buf, cap)) == NULL) {
            pipe_fail(p, "%s", "out of memory");
            return;
        }
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, d, n);
    p->len += n;
}

static void pipe_head(pipe_t *p, char c, size_t n)
{
    char h[32], *e = h + sizeof(h), *q = e;

    *--q = '\n';
    *--q = '\r';
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    *--q = c;
    pipe_put(p, q, (size_t)(e - q));
}

void pipe_begin(pipe_t *p, size_t argc)
{
    pipe_head(p, '*', argc);
}

void pipe_arg(pipe_t *p, const void *d, size_t n)
{
    pipe_head(p, '$', n);
    pipe_put(p, d, n);
    pipe_put(p, "\r\n", 2);
}

void pipe_arg_str(pipe_t *p, const char *s)
{
    pipe_arg(p, s, strlen(s));
}

/* Reads n replies. */
static int pipe_read(pipe_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        redisReply *r = NULL;

        if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || r == NULL) {
            pipe_fail(p, "redis: %s", p->rc->err ? p->rc->errstr
                                                  : "no reply");
            return -1;              /* the stream is out of step: stop */
        }
        if (r->type == REDIS_REPLY_ERROR)
            pipe_fail(p, "redis: %.120s", r->str);
        else if (r->type == REDIS_REPLY_INTEGER)
            p->sum += r->integer;
        freeReplyObject(r);
    }
    return 0;
}

static int pipe_send(pipe_t *p)
{
    size_t prev = p->inflight;
    int done = 0;

    if (p->failed)
        return -1;
    if (p->n > 0) {
        if (redisAppendFormattedCommand(p->rc, p->buf, p->len) != REDIS_OK) {
            pipe_fail(p, "%s", "redis: cannot queue commands");
            return -1;
        }
        p->sent += p->n;
        p->inflight = p->n;
        p->n = 0;
        p->len = 0;
        do {                        /* blocking socket: writes it all */
            if (redisBufferWrite(p->rc, &done) != REDIS_OK) {
                pipe_fail(p, "redis: %s", p->rc->errstr);
                return -1;
            }
        } while (!done);
    } else {
        p->inflight = 0;
    }
    /* the batch just sent is processed while the replies of the batch
     * before it are read: one batch stays in flight. */
    if (pipe_read(p, prev) != 0)
        return -1;
    return p->failed ? -1 : 0;
}

int pipe_end(pipe_t *p)
{
    if (p->failed)
        return -1;
    p->n++;
    return p->len >= PIPE_BATCH ? pipe_send(p) : 0;
}

int pipe_finish(pipe_t *p)
{
    size_t n;

    if (!p->failed)
        pipe_send(p);               /* the rest; replies of the batch before */
    /* the replies still due, also after an error reply, so that the
     * connection stays in step for the commands that follow */
    n = p->inflight;
    p->inflight = 0;
    if (p->rc->err == 0)
        pipe_read(p, n);
    p->n = 0;
    p->len = 0;
    return p->failed ? -1 : 0;
}
