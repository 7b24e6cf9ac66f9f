/*
 * crl_store.c - the Redis layout of loaded CRLs (docs/store-schema.md,
 * section "crl") and a pipelined RESP writer for loading millions of
 * entries with few round trips.
 */
#include "crl_store.h"

#include <limits.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIPE_BATCH (256 * 1024)   /* bytes of commands sent at once */

/* ---- keys ---------------------------------------------------------- */

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

void crl_key_bucket_n(char *out, const char *lid, long long gen,
                      const jpki_crl_shape *sh, unsigned long b)
{
    char name[JPKI_STORE_KEY_MAX + 1 - sizeof(JPKI_STORE_PREFIX "crl:") + 1];

    out[0] = '\0';
    if (jpki_crl_bucket_name(name, sizeof(name), lid, gen, sh, b) >= 0)
        snprintf(out, JPKI_STORE_KEY_MAX + 1, JPKI_STORE_PREFIX "crl:%s",
                 name);
}

void crl_key_bucket(char *out, const char *lid, long long gen,
                    const jpki_crl_shape *sh, const uint8_t *id)
{
    crl_key_bucket_n(out, lid, gen, sh, jpki_crl_bucket(id, sh));
}

/* ---- commands and the state of a list ------------------------------ */

/* A command whose reply is only checked for errors; 0 ok. */
int cmd_ok(redisContext *rc, int argc, const char **argv,
           const size_t *lens, redisReply **keep)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    int ok = r != NULL && r->type != REDIS_REPLY_ERROR;

    if (!ok)
        say("redis: %s failed: %.120s", argv[0],
            r != NULL ? r->str : rc->errstr);
    if (keep != NULL && ok)
        *keep = r;
    else
        freeReplyObject(r);
    return ok ? 0 : -1;
}

int cmd2(redisContext *rc, const char *c, const char *k,
         redisReply **keep)
{
    const char *v[2] = {c, k};
    return cmd_ok(rc, 2, v, NULL, keep);
}

int cmd2x2(redisContext *rc, const char *const c[2], const char *const k[2],
           redisReply *keep[2])
{
    int i, bad = 0;

    keep[0] = keep[1] = NULL;
    for (i = 0; i < 2 && !bad; i++) {
        const char *v[2] = {c[i], k[i]};

        bad = redisAppendCommandArgv(rc, 2, v, NULL) != REDIS_OK;
    }
    for (i = 0; i < 2 && !rc->err; i++) {
        void *r = NULL;

        if (redisGetReply(rc, &r) != REDIS_OK || r == NULL) {
            say("redis: %s failed: %.120s", c[i], rc->errstr);
            bad = 1;                    /* out of step: no more replies */
        } else if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
            say("redis: %s failed: %.120s", c[i], ((redisReply *)r)->str);
            freeReplyObject(r);
            bad = 1;
        } else {
            keep[i] = r;
        }
    }
    if (bad) {
        freeReplyObject(keep[0]);
        freeReplyObject(keep[1]);
        keep[0] = keep[1] = NULL;
        return -1;
    }
    return 0;
}

int list_id(const jpki_issuer *is, const uint8_t key_hash[20], int arl,
            char lid[CRL_LID_MAX])
{
    return jpki_crl_list_name(lid, CRL_LID_MAX, jpki_issuer_tag(is),
                              key_hash, arl) < 0 ? -1 : 0;
}

int stale_at(const jpki_crlptr *m, time_t now, unsigned grace)
{
    return m->next_update != 0
           && (long long)now > m->next_update + (long long)grace;
}


/* A tag of crlinfo: "?" (no tag, but not none) unless it is exactly as
 * long as one, never cut to one. */
static void tag_copy(char dst[JPKI_CRL_TAG_LEN + 1], const redisReply *v)
{
    if (v->len == JPKI_CRL_TAG_LEN)
        snprintf(dst, JPKI_CRL_TAG_LEN + 1, "%.*s", (int)v->len, v->str);
    else
        snprintf(dst, JPKI_CRL_TAG_LEN + 1, "?");
}

/* A shape of crlinfo (jpki_crl_shape_parse: "b14", or the "4" of an
 * older jpkictl); {0, 0} when it does not parse. */
static void shape_of(jpki_crl_shape *sh, const redisReply *v)
{
    if (jpki_crl_shape_parse(v->str, v->len, sh) != 0)
        memset(sh, 0, sizeof(*sh));
}

static void info_field(list_state *st, const redisReply *k,
                       const redisReply *v)
{
    const char *n = k->str;
    long long x = v->len < 20 ? strtoll(v->str, NULL, 10) : 0;

#define COPY(dst) snprintf(dst, sizeof(dst), "%.*s", (int)v->len, v->str)
    if (strcmp(n, "sha256") == 0)
        COPY(st->sha);
    else if (strcmp(n, "id_check") == 0)
        COPY(st->id_check);
    else if (strcmp(n, "issuer") == 0)
        COPY(st->issuer);
    else if (strcmp(n, "issuer_tag") == 0)
        tag_copy(st->issuer_tag, v);
    else if (strcmp(n, "key_tag") == 0)
        tag_copy(st->key_tag, v);
    else if (strcmp(n, "kind") == 0)
        COPY(st->kind);
    else if (strcmp(n, "source") == 0)
        COPY(st->source);
    else if (strcmp(n, "loading_gen") == 0)
        st->loading_gen = x;
    else if (strcmp(n, "loading_k") == 0)
        shape_of(&st->loading_shape, v);
    else if (strcmp(n, "prev_gen") == 0)
        st->prev_gen = x;
    else if (strcmp(n, "prev_k") == 0)
        shape_of(&st->prev_shape, v);
#undef COPY
}

/* GET crlmeta + HGETALL crlinfo.  0, -1 store failure, -2 a pointer that
 * does not parse. */
int read_state(redisContext *rc, const char *lid, list_state *st)
{
    char km[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
    const char *c[2] = {"GET", "HGETALL"}, *k[2] = {km, ki};
    redisReply *rr[2], *r;
    size_t i;

    memset(st, 0, sizeof(*st));
    crl_key_meta(km, lid);
    crl_key_info(ki, lid);
    if (cmd2x2(rc, c, k, rr) != 0)       /* one round trip */
        return -1;
    r = rr[0];
    if (r->type == REDIS_REPLY_STRING) {
        if (r->len > JPKI_CRLPTR_MAX || jpki_crlptr_parse(r->str, r->len, &st->m)) {
            freeReplyObject(r);
            freeReplyObject(rr[1]);
            return -2;
        }
        memcpy(st->raw, r->str, r->len);
        st->have = 1;
    }
    freeReplyObject(r);
    r = rr[1];
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING
            && r->element[i + 1]->type == REDIS_REPLY_STRING)
            info_field(st, r->element[i], r->element[i + 1]);
    freeReplyObject(r);
    return 0;
}


/* ---- what the pointer holds ------------------------------------------ */

/* The core reads a cRLNumber that is negative or over 2^63-1 as none
 * (jpki_crl_info: -1), and such a CRL would then be compared by its
 * thisUpdate alone; RFC 5280 allows 20 octets, but the store's pointer and
 * the gate hold an int64: it is refused.  0 when the CRL has no cRLNumber
 * or one within 0..2^63-1, -1 otherwise.  The walk over tbsCertList skips
 * each element by its length: the entries are not parsed again. */
int crl_number_fits(const uint8_t *der, size_t len)
{
    const unsigned char *p = der, *end = der + len;
    STACK_OF(X509_EXTENSION) *exts;
    ASN1_INTEGER *num;
    int64_t v;
    long l;
    int tag, cls, crit = -1, ok;

    /* CertificateList, then tbsCertList: SEQUENCEs */
    if (len > LONG_MAX
        || ASN1_get_object(&p, &l, &tag, &cls, (long)(end - p))
           != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE
        || ASN1_get_object(&p, &l, &tag, &cls, (long)(end - p))
           != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE)
        return -1;
    for (end = p + l; p < end; p += l) {
        if (ASN1_get_object(&p, &l, &tag, &cls, (long)(end - p)) & 0x80)
            return -1;
        if (cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0)
            continue;
        /* crlExtensions [0] EXPLICIT Extensions */
        if ((exts = d2i_X509_EXTENSIONS(NULL, &p, l)) == NULL)
            return -1;
        num = X509V3_get_d2i(exts, NID_crl_number, &crit, NULL);
        ok = num != NULL ? ASN1_INTEGER_get_int64(&v, num) == 1 && v >= 0
                         : crit == -1;
        ASN1_INTEGER_free(num);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        return ok ? 0 : -1;
    }
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
    return p->len >= (p->batch ? p->batch : PIPE_BATCH) ? pipe_send(p) : 0;
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


/* ---- a generation read back ------------------------------------------ */

#define READ_BATCH 256            /* buckets asked for at once */

crl_ent *ents_add(ents_t *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        crl_ent *ne = cap > SIZE_MAX / sizeof(crl_ent) ? NULL
                      : realloc(s->e, cap * sizeof(crl_ent));

        if (ne == NULL) {
            s->nomem = 1;
            return NULL;
        }
        s->e = ne;
        s->cap = cap;
    }
    return &s->e[s->n++];
}

uint32_t ent_at(int64_t t)
{
    return t < 0 ? 0 : t > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static int id_only_cmp(const void *a, const void *b)
{
    return memcmp(((const crl_ent *)a)->id, ((const crl_ent *)b)->id,
                  JPKI_CRL_KEY_LEN);
}

/* The replies of HGETALL are read straight into the set: the reader of
 * the connection builds no reply objects (a million entries would be two
 * million of them) but calls these, which check each field and value as
 * it comes (hiredis's custom reply object functions).  One read at a
 * time (rg_state); every object is the address of rg_obj. */
typedef struct {
    const jpki_crl_shape *sh;
    ents_t *out;
    unsigned long bucket;     /* of the reply being read */
    size_t n0;                /* its first entry in out */
    crl_ent *pending;         /* its field read, the value next */
    const char *why;          /* the first thing wrong, or NULL */
    int error_reply;          /* an error reply (its text in err) */
    char err[128];
} rg_state;

static rg_state *rg;
static char rg_obj;

static void rg_bad(const char *why)
{
    if (rg->why == NULL)
        rg->why = why;
}

static void *rg_string(const redisReadTask *t, char *str, size_t len)
{
    size_t pre = rg->sh->bits / 8, flen = JPKI_CRL_KEY_LEN - pre, j;
    int reason;
    int64_t at;

    if (t->type == REDIS_REPLY_ERROR && t->parent == NULL) {
        rg->error_reply = 1;
        snprintf(rg->err, sizeof(rg->err), "%.*s", (int)(len < 120 ? len : 120),
                 str);
    } else if (t->parent == NULL || t->type != REDIS_REPLY_STRING) {
        rg_bad("a bucket is not a hash");
    } else if (t->idx % 2 == 0) {                       /* a field */
        crl_ent *x;

        if (len != flen) {
            rg_bad("a field or value of another length or content");
        } else if ((x = ents_add(rg->out)) == NULL) {
            rg_bad("out of memory");
        } else {
            /* the octets the bucket number holds, then the field's */
            for (j = 0; j < pre; j++)
                x->id[j] = (uint8_t)(rg->bucket >> (rg->sh->bits - 8 * (j + 1)));
            memcpy(x->id + pre, str, flen);
            if (jpki_crl_bucket(x->id, rg->sh) != rg->bucket)
                rg_bad("an entry in the wrong bucket");
            rg->pending = x;
        }
        if (rg->why != NULL)
            rg->pending = NULL;
    } else if (rg->pending != NULL) {                   /* its value */
        if (jpki_crl_value_unpack((const uint8_t *)str, len, &reason, &at)
            != 0) {
            rg_bad("a field or value of another length or content");
        } else {
            rg->pending->at = (uint32_t)at;
            rg->pending->reason = (int8_t)reason;
        }
        rg->pending = NULL;
    }
    return &rg_obj;
}

#if HIREDIS_MAJOR >= 1
static void *rg_array(const redisReadTask *t, size_t elements)
#else
static void *rg_array(const redisReadTask *t, int elements)
#endif
{
    if (t->parent != NULL || elements % 2 != 0)
        rg_bad("a bucket is not a hash");
    return &rg_obj;
}

static void *rg_integer(const redisReadTask *t, long long v)
{
    (void)t;
    (void)v;
    rg_bad("a bucket is not a hash");
    return &rg_obj;
}

static void *rg_nil(const redisReadTask *t)
{
    (void)t;
    rg_bad("a bucket is not a hash");
    return &rg_obj;
}

static void rg_free(void *o)
{
    (void)o;                  /* nothing was allocated */
}

int read_gen(redisContext *rc, const char *lid, long long gen,
             const jpki_crl_shape *sh, ents_t *out, const char **why)
{
    /* by name: hiredis 1 adds members (double, bool: left NULL, which
     * it takes as "no object"; no such reply comes to HGETALL anyway) */
    static redisReplyObjectFunctions fns = {
        .createString = rg_string, .createArray = rg_array,
        .createInteger = rg_integer, .createNil = rg_nil,
        .freeObject = rg_free,
    };
    redisReplyObjectFunctions *saved = rc->reader->fn;
    char key[JPKI_STORE_KEY_MAX + 1];
    unsigned long b, nb, got;
    rg_state st;
    int rc_ = 0;

    *why = "";
    out->n = 0;
    if (sh->key_len != JPKI_CRL_KEY_LEN || !jpki_crl_shape_ok(sh)) {
        *why = "the layout of an older jpkictl";
        return -2;
    }
    memset(&st, 0, sizeof(st));
    st.sh = sh;
    st.out = out;
    rg = &st;
    rc->reader->fn = &fns;
    nb = 1ul << sh->bits;
    for (b = 0; b < nb && rc_ == 0; b = got) {
        unsigned long end = nb - b > READ_BATCH ? b + READ_BATCH : nb, i;

        for (i = b; i < end; i++) {         /* i: the commands queued */
            const char *argv[2] = {"HGETALL", key};

            crl_key_bucket_n(key, lid, gen, sh, i);
            if (redisAppendCommandArgv(rc, 2, argv, NULL) != REDIS_OK) {
                say("redis: cannot queue commands");
                rc_ = -1;
                break;
            }
        }
        for (got = b; got < i; got++) {
            void *r = NULL;

            st.bucket = got;
            st.n0 = out->n;
            if (redisGetReply(rc, &r) != REDIS_OK || r == NULL) {
                say("redis: %s", rc->err ? rc->errstr : "no reply");
                rc_ = -1;
                break;                  /* out of step: the caller stops */
            }
            if (st.error_reply) {       /* a key of another type, ACL */
                say("redis: HGETALL failed: %s", st.err);
                rg_bad("a bucket could not be read");
                st.error_reply = 0;
            }
            if (out->n - st.n0 > 1)     /* a hash's order is its own */
                qsort(out->e + st.n0, out->n - st.n0, sizeof(crl_ent),
                      id_only_cmp);
        }
        if (got < i)
            break;
    }
    /* the reader goes back to reply objects unless a reply was cut off
     * (then it may still hold one of ours, which only rg_free may free:
     * the connection is dropped by the caller, as after any I/O error) */
    if (rc->err == 0)
        rc->reader->fn = saved;
    rg = NULL;
    if (rc_ == 0 && st.why != NULL) {
        *why = st.why;
        rc_ = -2;
    }
    return rc_;
}
