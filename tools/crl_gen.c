/*
 * crl_gen.c - jpkictl crl sync's work on a list's generations in Redis:
 * commands on every bucket of one, the lock that keeps two syncs of a list
 * apart, the recovery of a load left half done, and the shape (bucket
 * count) of a new set from its entries and the server's listpack limit.
 * The sync itself: crl_sync.c; the layout: crl_store.h.
 */
#include "crl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- whole generations -------------------------------------------- */

/* cmd (UNLINK or EXPIRE with arg) on every possible bucket of a
 * generation (2^bits keys, pipelined); returns the sum of the replies. */
long long crl_gen_op(redisContext *rc, const char *cmd, const char *arg,
                     const char *lid, long long gen,
                     const jpki_crl_shape *sh)
{
    char key[JPKI_STORE_KEY_MAX + 1];
    unsigned long b, nb;
    pipe_t p;
    long long sum;

    if (!jpki_crl_shape_ok(sh))
        return 0;
    nb = 1ul << sh->bits;
    pipe_init(&p, rc);
    for (b = 0; b < nb; b++) {
        crl_key_bucket_n(key, lid, gen, sh, b);
        pipe_begin(&p, arg != NULL ? 3 : 2);
        pipe_arg_str(&p, cmd);
        pipe_arg_str(&p, key);
        if (arg != NULL)
            pipe_arg_str(&p, arg);
        if (pipe_end(&p) != 0)
            break;
    }
    pipe_finish(&p);
    if (p.failed)
        say("%s", p.err);
    sum = p.failed ? -1 : p.sum;
    pipe_free(&p);
    return sum;
}

/* HDEL of up to three fields of the list's info hash. */
int crl_hdel(redisContext *rc, const char *lid, const char *f1,
             const char *f2, const char *f3)
{
    char ki[JPKI_STORE_KEY_MAX + 1];
    const char *v[5] = {"HDEL", ki, f1, f2, f3};

    crl_key_info(ki, lid);
    return cmd_ok(rc, f3 != NULL ? 5 : 4, v, NULL, NULL);
}

/* Leftovers of an earlier run: a load that did not finish (its buckets are
 * removed), a previous generation whose expiry was not set. */
int crl_recover(redisContext *rc, const char *lid, list_state *st,
                unsigned keep_old)
{
    char ttl[24];

    if (st->loading_gen > 0) {
        say("note: removing generation %lld of an unfinished load",
            st->loading_gen);
        if (crl_gen_op(rc, "UNLINK", NULL, lid, st->loading_gen,
                   &st->loading_shape)
            < 0 || crl_hdel(rc, lid, "loading_gen", "loading_k", "loading_since"))
            return -1;
        st->loading_gen = 0;
    }
    if (st->prev_gen > 0 && (!st->have || st->prev_gen != st->m.gen)) {
        snprintf(ttl, sizeof(ttl), "%u", keep_old);
        if (crl_gen_op(rc, "EXPIRE", ttl, lid, st->prev_gen, &st->prev_shape)
            < 0
            || crl_hdel(rc, lid, "prev_gen", "prev_k", NULL))
            return -1;
        st->prev_gen = 0;
    }
    return 0;
}

/* ---- lock ----------------------------------------------------------- */

int crl_lock_take(redisContext *rc, const char *lid, char token[33])
{
    char key[JPKI_STORE_KEY_MAX + 1], ttl[16];
    uint8_t r[16];
    const char *v[6] = {"SET", key, token, "NX", "PX", ttl};
    redisReply *rep = NULL;
    int got;

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    jpki_hex_encode(r, sizeof(r), token);
    crl_key_lock(key, lid);
    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    if (cmd_ok(rc, 6, v, NULL, &rep) != 0)
        return -1;
    got = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return got ? 0 : -2;
}

void crl_lock_release(redisContext *rc, const char *lid,
                      const char *token)
{
    char key[JPKI_STORE_KEY_MAX + 1];
    const char *v[5] = {"EVAL", LOCK_RELEASE_LUA, "1", key, token};

    if (rc == NULL || rc->err)
        return;
    crl_key_lock(key, lid);
    cmd_ok(rc, 5, v, NULL, NULL);
}

/* ---- entries -------------------------------------------------------- */

/* By cert_id (its first JPKI_CRL_KEY_LEN octets: two certificates whose
 * cert_ids share them are one entry, docs/store-schema.md); for one a
 * final revocation sorts before a hold (as the core's index: the final
 * one wins). */
static int ent_cmp(const void *a, const void *b)
{
    const crl_ent *x = a, *y = b;
    int c = memcmp(x->id, y->id, sizeof(x->id));

    if (c != 0)
        return c;
    return (x->reason == JPKI_REASON_CERTIFICATE_HOLD)
           - (y->reason == JPKI_REASON_CERTIFICATE_HOLD);
}

/* The first 32 bits of an entry's key. */
static uint32_t ent_top(const crl_ent *e)
{
    return (uint32_t)e->id[0] << 24 | (uint32_t)e->id[1] << 16
           | (uint32_t)e->id[2] << 8 | e->id[3];
}

/* Sorts by the first g bits with a counting pass (g: about 4 entries a
 * group, cert_ids being uniform), then each group by insertion (a
 * handful of entries: no call per comparison); drops duplicates. */
int crl_sort_unique(ents_t *s)
{
    size_t *cnt, i, j, k = 0, tot = 0, ng;
    unsigned g = 8;
    crl_ent *out;

    if (s->n == 0)
        return 0;
    while (g < 24 && ((size_t)4 << g) < s->n)
        g++;
    ng = (size_t)1 << g;
    cnt = calloc(ng + 1, sizeof(size_t));
    out = jpki_alloc_large(s->n * sizeof(crl_ent));
    if (cnt == NULL || out == NULL) {
        free(cnt);
        free(out);
        return -1;
    }
    for (i = 0; i < s->n; i++)
        cnt[ent_top(&s->e[i]) >> (32 - g)]++;
    for (i = 0; i < ng; i++) {
        size_t c = cnt[i];
        cnt[i] = tot;
        tot += c;
    }
    cnt[ng] = tot;
    for (i = 0; i < s->n; i++)
        out[cnt[ent_top(&s->e[i]) >> (32 - g)]++] = s->e[i];
    /* cnt[x] is now the end of group x */
    for (i = 0, tot = 0; i < ng; tot = cnt[i++])
        for (j = tot + 1; j < cnt[i]; j++) {
            crl_ent x = out[j];
            size_t m = j;

            for (; m > tot && ent_cmp(&out[m - 1], &x) > 0; m--)
                out[m] = out[m - 1];
            out[m] = x;
        }
    free(cnt);
    free(s->e);
    s->e = out;
    s->cap = s->n;
    for (i = 1; i < s->n; i++)
        if (memcmp(s->e[i].id, s->e[k].id, sizeof(s->e[k].id)) != 0)
            s->e[++k] = s->e[i];
    s->n = k + 1;
    return 0;
}

/* The largest bucket of the entries (sorted) under sh. */
size_t crl_bucket_max(const ents_t *s, const jpki_crl_shape *sh)
{
    size_t i, run, max = s->n > 0;

    for (i = 1, run = 1; i < s->n; i++) {
        run = jpki_crl_bucket(s->e[i].id, sh)
              == jpki_crl_bucket(s->e[i - 1].id, sh) ? run + 1 : 1;
        if (run > max)
            max = run;
    }
    return max;
}

/* The fewest buckets (smallest bits) whose mean holds at most limit / 2
 * fields and whose largest (checked on the entries) at most limit, so
 * that every bucket keeps Redis's compact listpack encoding.  The mean
 * bound keeps what a field costs the same at every size: Redis searches
 * a listpack for each field written to it, and the gate's HGET searches
 * it too, so a bucket of n fields costs n^2/2 to fill and n/2 a lookup.
 * The fullest buckets under the limit alone would be 10,000,000 entries
 * in 2^17 buckets of 76 fields (18.4 bytes an entry) where 2^18 of 38
 * (19.9 bytes) load with 18% less of Redis's time; 1,000,000 entries
 * take 2^14 buckets of 61 fields either way. */
jpki_crl_shape crl_choose_shape(const ents_t *s, unsigned long limit)
{
    jpki_crl_shape sh = {JPKI_CRL_BITS_MIN, JPKI_CRL_KEY_LEN};

    while (sh.bits < JPKI_CRL_BITS_MAX
           && (s->n >> sh.bits) > limit / 2)
        sh.bits++;
    while (sh.bits < JPKI_CRL_BITS_MAX && crl_bucket_max(s, &sh) > limit)
        sh.bits++;
    return sh;
}

/* hash-max-listpack-entries (hash-max-ziplist-entries before Redis 7), or
 * 128 when CONFIG is not allowed; at most BUCKET_MAX even when the server
 * allows more (Redis 7's built-in default is 512): a field written to a
 * listpack is first searched for and then appended (a reallocation), so
 * filling buckets of n fields costs n^2/2 comparisons and copies each.
 * With 8-octet keys the buckets' own overhead is small: at 1,000,000
 * entries a limit of 256 (8,192 buckets) saved 1 byte an entry over 128
 * (16,384 buckets: 19.7 bytes) but cost Redis 40% more time (0.68 s
 * against 0.48 s of its CPU). */
unsigned long crl_listpack_limit(redisContext *rc)
{
    static const char *const names[] = {"hash-max-listpack-entries",
                                        "hash-max-ziplist-entries"};
    unsigned long v = LISTPACK_ENTRIES;
    size_t i;

    for (i = 0; i < 2; i++) {
        redisReply *r = redisCommand(rc, "CONFIG GET %s", names[i]);
        int got = r != NULL && r->type == REDIS_REPLY_ARRAY
                  && r->elements == 2
                  && r->element[1]->type == REDIS_REPLY_STRING;

        if (got)
            v = strtoul(r->element[1]->str, NULL, 10);
        freeReplyObject(r);
        if (got)
            break;
        if (rc->err)
            break;
    }
    return v < 4 ? 4 : v > BUCKET_MAX ? BUCKET_MAX : v;
}
