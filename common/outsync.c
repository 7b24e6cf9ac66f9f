/* outsync.c - logouts made on other nodes, copied into this node's table.
 *
 * A logout writes its marker (out:<cert_id>, or outa:<account_id> from
 * `jpkictl logout`) into the store, and, with a shared store (Redis), a
 * record into the logout log: INCR jpki:v1:outseq gives a number n, and
 * jpki:v1:outlog:<n> holds "c|<cert_id>|<time>|<ttl>" (or "a|<account_id>|
 * ...") for JPKI_OUTLOG_TTL seconds.  Each process of each node runs this
 * poller about twice a second: it reads outseq, then the records it has
 * not seen, and writes their markers into the node's table (the mirror),
 * which every gated request reads.  So a logout reaches every node within
 * a second, while a gated request never waits for the store.
 *
 * The mirror is complete for the logouts made since `since` as long as the
 * poller keeps up: a record it could not read (Redis restarted, the log
 * went further than it can read at once, a record expired, the mirror
 * full) starts a new `since`, and a poll older than JPKI_OUTSYNC_STALE_MS
 * makes every session check the store itself (txn.c), until polls succeed
 * again.  Sans-I/O: the adapter runs the commands and feeds the results. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_MAX_BEHIND  1024     /* records read after a gap at most */
#define SYNC_NIL_WAIT_MS 2000     /* a record numbered but not written */

enum { S_IDLE = 0, S_SEQ, S_LOG };

struct jpki_outsync {
    const jpki_ctx *ctx;
    jpki_shm *mirror;
    int state;
    int started;
    long long catchup_to;         /* first poll: the records up to here
                                     that read nil have expired */
    int catchup_first;            /* the next record read is the first */
    long long cursor;             /* last record copied */
    long long seq;                /* outseq as last read */
    int64_t since;                /* complete since (s) */
    int64_t poll_started_ms;
    int64_t synced_ms;            /* start of the last complete poll */
    int64_t nil_since_ms;         /* first nil seen for cursor + 1 */
    int64_t next_ms;
    int failing;                  /* the last poll failed (said once) */
    jpki_store_cmd cmds[JPKI_STORE_BATCH_MAX];
    size_t n_cmds;
};

jpki_outsync *jpki_outsync_new(const jpki_ctx *ctx, jpki_shm *mirror)
{
    jpki_outsync *o;

    if (ctx == NULL || mirror == NULL)
        return NULL;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->ctx = ctx;
    o->mirror = mirror;
    return o;
}

void jpki_outsync_free(jpki_outsync *o)
{
    free(o);
}

static void set_key(jpki_store_cmd *c, jpki_store_op op, const char *fmt,
                    long long n)
{
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = (size_t)snprintf(c->key, sizeof(c->key), fmt,
                                 JPKI_STORE_PREFIX, n);
}

const jpki_store_cmd *jpki_outsync_cmds(jpki_outsync *o, int64_t now_ms,
                                        size_t *n)
{
    *n = 0;
    if (o->state != S_IDLE || now_ms < o->next_ms)
        return NULL;
    o->poll_started_ms = now_ms;
    set_key(&o->cmds[0], JPKI_STORE_GET, "%soutseq", 0);
    o->n_cmds = 1;
    o->state = S_SEQ;
    *n = 1;
    return o->cmds;
}

/* A gap: what happened before now may be missing from the mirror. */
static void restart_at(jpki_outsync *o, long long seq, int64_t now_ms,
                       const char *why)
{
    if (o->started)
        jpki_log(o->ctx, JPKI_LOG_WARN, "jpki: logout log: %s; sessions "
                 "check the store once", why);
    o->started = 1;
    o->cursor = seq;
    o->since = now_ms / 1000 + 1;
    o->nil_since_ms = 0;
}

static const jpki_store_cmd *next_batch(jpki_outsync *o, int64_t now_ms,
                                        size_t *n)
{
    long long k;

    *n = 0;
    if (o->cursor >= o->seq) {
        o->synced_ms = o->poll_started_ms;
        o->state = S_IDLE;
        o->next_ms = now_ms + JPKI_OUTSYNC_PERIOD_MS;
        return NULL;
    }
    o->n_cmds = 0;
    for (k = o->cursor + 1; k <= o->seq && o->n_cmds < JPKI_STORE_BATCH_MAX;
         k++)
        set_key(&o->cmds[o->n_cmds++], JPKI_STORE_GET, "%soutlog:%lld", k);
    o->state = S_LOG;
    *n = o->n_cmds;
    return o->cmds;
}

/* "c|<32 hex>|<time>|<ttl s>" or "a|..." -> a marker in the mirror. */
static int copy_record(jpki_outsync *o, const jpki_store_result *r,
                       int64_t now_ms)
{
    char buf[JPKI_STORE_VAL_MAX + 1], *f[4], *p, *end;
    long long at, ttl;
    jpki_store_cmd c;
    jpki_store_result res;
    size_t i;

    if (r->vallen >= sizeof(buf))
        return 0;
    memcpy(buf, r->val, r->vallen);
    buf[r->vallen] = '\0';
    for (i = 0, p = buf; i < 4; i++) {
        f[i] = p;
        p = strchr(p, '|');
        if (p == NULL)
            break;
        *p++ = '\0';
    }
    if (i != 3 || (strcmp(f[0], "c") != 0 && strcmp(f[0], "a") != 0)
        || strlen(f[1]) != 32 || strspn(f[1], "0123456789abcdef") != 32)
        return 0;
    at = strtoll(f[2], &end, 10);
    if (*end != '\0' || at <= 0)
        return 0;
    ttl = strtoll(f[3], &end, 10);
    if (*end != '\0' || ttl <= 0)
        return 0;
    if (ttl > JPKI_OUTLOG_TTL)
        ttl = JPKI_OUTLOG_TTL;
    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_SET;
    c.keylen = (size_t)snprintf(c.key, sizeof(c.key), "%s%s:%s",
                                JPKI_STORE_PREFIX,
                                f[0][0] == 'c' ? "out" : "outa", f[1]);
    c.vallen = strlen(f[2]);
    memcpy(c.val, f[2], c.vallen);
    c.ttl_ms = (uint32_t)ttl * 1000u;
    jpki_shm_exec(o->mirror, &c, now_ms, &res);
    if (res.type != JPKI_STORE_R_INT) {
        jpki_log(o->ctx, JPKI_LOG_ERROR, "jpki: the logout mirror is full "
                 "(give it more room); sessions check the store instead");
        return -1;
    }
    return 1;
}

static int parse_seq(const jpki_store_result *r, long long *seq)
{
    char buf[24], *end;

    if (r->type == JPKI_STORE_R_NIL) {
        *seq = 0;
        return 1;
    }
    if (r->type != JPKI_STORE_R_VALUE || r->vallen == 0
        || r->vallen >= sizeof(buf))
        return 0;
    memcpy(buf, r->val, r->vallen);
    buf[r->vallen] = '\0';
    *seq = strtoll(buf, &end, 10);
    return *end == '\0' && *seq >= 0;
}

static void fed_seq(jpki_outsync *o, const jpki_store_result *r,
                    int64_t now_ms)
{
    long long seq;

    if (!parse_seq(r, &seq)) {
        jpki_log(o->ctx, JPKI_LOG_ERROR, "jpki: logout log counter in the "
                 "store is unreadable");
        o->state = S_IDLE;
        o->next_ms = now_ms + JPKI_OUTSYNC_PERIOD_MS;
        return;
    }
    if (!o->started) {
        /* the first poll reads the log back (it keeps JPKI_OUTLOG_TTL s):
         * complete, the mirror vouches for the sessions checked in that
         * time, and a restart does not send them all to the store */
        restart_at(o, seq > SYNC_MAX_BEHIND ? seq - SYNC_MAX_BEHIND : 0,
                   now_ms, "");
        o->catchup_to = seq > 16 ? seq - 16 : 0;
        o->catchup_first = 1;
        if (o->cursor == 0)                 /* the whole log is there */
            o->since = now_ms / 1000 - JPKI_OUTLOG_TTL + 5;
    } else if (seq < o->cursor)
        restart_at(o, seq, now_ms, "the counter went back (store emptied "
                   "or restarted)");
    else if (seq - o->cursor > SYNC_MAX_BEHIND)
        restart_at(o, seq, now_ms, "too many logouts to read at once");
    o->seq = seq;
}

static void fed_log(jpki_outsync *o, const jpki_store_result *r, size_t n,
                    int64_t now_ms)
{
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        if (o->catchup_first && r[i].type != JPKI_STORE_R_ERROR) {
            /* the first record of the first poll: nil, it expired and so
             * did every older one; else older ones may live: the mirror
             * vouches for nothing before now */
            o->catchup_first = 0;
            if (o->cursor > 0 && r[i].type == JPKI_STORE_R_NIL)
                o->since = now_ms / 1000 - JPKI_OUTLOG_TTL + 5;
        }
        if (r[i].type == JPKI_STORE_R_NIL && o->cursor + 1 <= o->catchup_to) {
            o->cursor++;                    /* expired (first poll) */
            continue;
        }
        if (r[i].type == JPKI_STORE_R_NIL) {
            /* numbered by INCR, not written yet (wait a little); or
             * expired, or its writer died in between: a gap, every record
             * up to the counter is given up at once */
            if (o->nil_since_ms == 0)
                o->nil_since_ms = now_ms;
            if (now_ms - o->nil_since_ms < SYNC_NIL_WAIT_MS)
                break;
            restart_at(o, o->seq, now_ms, "a record is missing");
            return;
        }
        rc = r[i].type == JPKI_STORE_R_VALUE ? copy_record(o, &r[i], now_ms)
             : 0;
        if (rc < 0) {
            restart_at(o, o->seq, now_ms, "mirror full");
            return;
        }
        if (rc == 0)
            jpki_log(o->ctx, JPKI_LOG_ERROR, "jpki: logout log record %lld "
                     "is unreadable; skipped", o->cursor + 1);
        o->cursor++;
        o->nil_since_ms = 0;
    }
}

const jpki_store_cmd *jpki_outsync_feed(jpki_outsync *o,
                                        const jpki_store_result *res,
                                        size_t n, int64_t now_ms,
                                        size_t *next_n)
{
    size_t i;

    *next_n = 0;
    if (o->state == S_IDLE)
        return NULL;
    for (i = 0; res != NULL && i < n; i++)
        if (res[i].type == JPKI_STORE_R_ERROR
            || res[i].type == JPKI_STORE_R_FULL)
            res = NULL;
    if (res == NULL || n != o->n_cmds) {
        /* the store did not answer: try again at the next period; the
         * mirror goes stale after JPKI_OUTSYNC_STALE_MS (said once an
         * outage) */
        if (!o->failing)
            jpki_log(o->ctx, JPKI_LOG_WARN, "jpki: logout log: the store "
                     "does not answer: sessions are checked in the store "
                     "until it does");
        o->failing = 1;
        o->state = S_IDLE;
        o->next_ms = now_ms + JPKI_OUTSYNC_PERIOD_MS;
        return NULL;
    }
    if (o->failing)
        jpki_log(o->ctx, JPKI_LOG_WARN, "jpki: logout log: the store answers "
                 "again");
    o->failing = 0;
    if (o->state == S_SEQ)
        fed_seq(o, res, now_ms);
    else
        fed_log(o, res, n, now_ms);
    if (o->state == S_IDLE)
        return NULL;
    if (o->state == S_LOG && o->nil_since_ms != 0 && o->cursor < o->seq) {
        /* wait for the record being written: the next poll reads it */
        o->state = S_IDLE;
        o->next_ms = now_ms + JPKI_OUTSYNC_PERIOD_MS;
        return NULL;
    }
    return next_batch(o, now_ms, next_n);
}

int64_t jpki_outsync_since(const jpki_outsync *o, int64_t now_ms)
{
    if (o == NULL || !o->started || o->synced_ms == 0
        || now_ms - o->synced_ms > JPKI_OUTSYNC_STALE_MS)
        return INT64_MAX;                  /* every session checks the store */
    return o->since;
}

int jpki_outsync_failing(const jpki_outsync *o)
{
    return o != NULL && o->failing;
}
