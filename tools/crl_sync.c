/*
 * crl_sync.c - jpkictl crl sync: a CRL loaded into Redis for every gate
 * node (crl status, purge and recheck: crl_check.c).
 *
 * crl sync loads a verified CRL under a new generation of bucketed hashes,
 * then switches the pointer jpki:v1:crlmeta:<list> in one MULTI/EXEC guarded
 * by WATCH, then lets the previous generation expire (--keep-old): a reader
 * sees the old set or the new set, never a mix, and a failed load leaves the
 * old set.  The layout and the reader's procedure: docs/store-schema.md;
 * operations and exit codes: docs/operations.md.
 *
 * Nothing printed or stored names a serial number: entries are cert_ids.
 */
#include "crl_state.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_KEEP_OLD 600
/* A reader may keep a pointer up to the gate's largest crl_pointer_ttl (60
 * s, jpki_policy_ranges_ok in common/ctx.c) and then read the buckets it
 * names during one request (a few seconds of store deadlines): a replaced
 * generation expiring sooner would answer nil, "not revoked". */
#define POINTER_TTL_MAX  60
#define KEEP_OLD_MIN     (POINTER_TTL_MAX + 30)
#define DEFAULT_MAX_SIZE (1ULL << 30)
#define DEFAULT_TIMEOUT  300
/* A delta sync changes at most 1/DELTA_SHARE of the entries, and at most
 * --delta-max (DELTA_MAX): its one transaction blocks the server while it
 * runs (about a second for a million changes); a larger change loads a
 * new generation. */
#define DELTA_SHARE      10
#define DELTA_MAX        250000
#define DELTA_MAX_MAX    10000000

const char usage_crl_sync[] =
"jpkictl crl sync --source URL|FILE --issuer NAME=CAFILE[,...] [--issuer ..]\n"
"                 --secret-file FILE --redis ADDR [--redis-db N]\n"
"                 [--redis-user U] [--redis-password-file F] [--grace SECONDS]\n"
"                 [--keep-old SECONDS] [--arl] [--watch SECONDS]\n"
"                 [--max-size BYTES] [--timeout SECONDS] [--full]\n"
"                 [--delta-max N] [--state-dir DIR]\n"
"  Fetches a CRL, verifies it against the configured issuer it names and\n"
"  loads it into Redis for every gate node, in the list of the CA key that\n"
"  signed it: the gate checks a certificate against the CRL of the key\n"
"  that issued it and fails closed without one, so run it for the CRL of\n"
"  each CA key (as crl= files).  Readers see the old set or the new set,\n"
"  never a mix; a failed load leaves the old set in place.  A CRL that\n"
"  differs from the loaded one by at most 10% of its entries is written\n"
"  as the difference (mode=delta changed=N), a larger change as a new\n"
"  set (mode=full).  Prints one line \"STATUS issuer=NAME ...\" (\"list=\"\n"
"  ends a loaded one); STATUS and exit status:\n"
"    loaded 0 | stale 1 (past nextUpdate + grace; loaded when newer than\n"
"    the store's) | invalid 1 | unchanged, older 3 (stale 1 when the loaded\n"
"    one is stale) | fetch_failed 4 | store_failed 5 (also: busy)\n"
"  --source       a path, file://, http(s)://, or ldap(s)://HOST/DN?\n"
"                 certificateRevocationList;binary (user:password@ in the\n"
"                 URL is never shown or stored, but stays visible in the\n"
"                 process list: give it in JPKI_SOURCE_USERPWD=user:password\n"
"                 or a netrc file named by JPKI_SOURCE_NETRC instead)\n"
"  --issuer, --secret-file  exactly as the gate's configuration: the list\n"
"                 name (issuer and CA key) and the cert_ids depend on them\n"
"  --grace SECONDS  stale after nextUpdate + SECONDS (default 172800: the\n"
"                 end of a J-LIS CRL's 72-hour validity)\n"
"  --keep-old SECONDS  the replaced set stays readable this long (default\n"
"                 600, at least 90: readers may cache the pointer 60 s)\n"
"  --arl          the source is the ARL (CA certificates): kept apart from\n"
"                 the issuer's CRL\n"
"  --watch SECONDS  check again every SECONDS, forever; one time-stamped\n"
"                 line per check; SIGTERM/SIGINT stop it (exit 0)\n"
"  --max-size BYTES  largest answer accepted (default 1073741824)\n"
"  --timeout SECONDS  whole transfer (default 300)\n"
"  --full         always load a new set, never a delta\n"
"  --delta-max N  a delta changes at most N entries (default 250000: its\n"
"                 one transaction blocks Redis while it runs), and at\n"
"                 most 10% of them\n"
"  --state-dir DIR  keep a local state of each list loaded (DIR/LIST.\n"
"                 crlstate, mode 0600: keyed digests of the entries, no\n"
"                 serial; MACed with the secret) and make the next delta\n"
"                 from it: only new and changed entries are parsed and\n"
"                 HMACed, the list is not read back.  A state that does\n"
"                 not verify or describes another load is not used (a\n"
"                 note on stderr): the delta reads the list back\n"
"jpkictl crl status --redis ADDR [...] [--issuer ... [--secret-file FILE]]\n"
"                   [--grace SECONDS]\n"
"  One line per loaded CRL: \"fresh|stale issuer=NAME list=LIST\n"
"  kind=crl crl_number=N this_update= next_update= age=S entries=N\n"
"  loaded_at= source=\" (LIST: 16 hex digits, the list of one CA key of\n"
"  the issuer, .arl appended for an ARL); \"outdated list=TAG\" for a\n"
"  list of an older jpkictl (one per issuer, or named TAG.KEY), which the\n"
"  gate does not read (sync each key's CRL, then purge --revocation\n"
"  removes it); with --issuer, \"missing issuer=NAME list=LIST\n"
"  ca=SUBJECT\" for each CA key without a CRL; with --issuer and\n"
"  --secret-file (the gate's), \"mismatch issuer=NAME list=LIST kind=\n"
"  detail=\" for a CRL loaded with another secret or other\n"
"  CA files (its id_check differs or is missing): the gate treats it as\n"
"  unavailable.  Exit 0 all fresh, 1 stale, missing, outdated or mismatch\n"
"  (or nothing loaded), 5 store failed.\n\n";

/* ---- small helpers ------------------------------------------------ */

static __attribute__((format(printf, 3, 4)))
void addf(char *line, size_t n, const char *fmt, ...)
{
    size_t l = strlen(line);
    va_list ap;

    if (l + 1 >= n)
        return;
    va_start(ap, fmt);
    vsnprintf(line + l, n - l, fmt, ap);
    va_end(ap);
}

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- sync ----------------------------------------------------------- */

typedef struct {
    const args_t *a;
    jpki_ctx *ctx;
    unsigned grace, keep_old, timeout;
    size_t max_size;
    int arl;
    int full;                 /* --full: never a delta sync */
    unsigned long delta_max;  /* --delta-max */
    const char *state_dir;    /* --state-dir, NULL: none */
    char source[512];         /* redacted */
} sync_cfg;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* One command on the entries e[i..] of one bucket (HSET with their
 * values, or HDEL): queued in p; returns the index after them. */
static size_t put_bucket(pipe_t *p, const char *cmd, const char *lid,
                         long long gen, const jpki_crl_shape *sh,
                         const crl_ent *e, size_t n, size_t i)
{
    char key[JPKI_STORE_KEY_MAX + 1];
    unsigned long b = jpki_crl_bucket(e[i].id, sh);
    int vals = strcmp(cmd, "HSET") == 0;
    size_t j;

    for (j = i + 1; j < n && jpki_crl_bucket(e[j].id, sh) == b; j++)
        ;
    crl_key_bucket_n(key, lid, gen, sh, b);
    pipe_begin(p, 2 + (vals ? 2 : 1) * (j - i));
    pipe_arg_str(p, cmd);
    pipe_arg_str(p, key);
    for (; i < j; i++) {
        uint8_t v[JPKI_CRL_VALUE_LEN];
        size_t fl;
        const uint8_t *f = jpki_crl_field(e[i].id, sh, &fl);

        pipe_arg(p, f, fl);
        if (vals) {
            jpki_crl_value_pack(v, e[i].reason, e[i].at);
            pipe_arg(p, v, sizeof(v));
        }
    }
    return j;
}

/* Writes the buckets of generation gen; 0, -1 on failure. */
static int write_buckets(redisContext *rc, const char *lid, long long gen,
                         const jpki_crl_shape *sh, const ents_t *s,
                         const char *token)
{
    char lock[JPKI_STORE_KEY_MAX + 1], ttl[16];
    long long expect = (long long)s->n;
    double last = mono();
    size_t i, j;
    pipe_t p;
    int rc_ = 0;

    crl_key_lock(lock, lid);
    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    pipe_init(&p, rc);
    for (i = 0; i < s->n && rc_ == 0; i = j) {
        j = put_bucket(&p, "HSET", lid, gen, sh, s->e, s->n, i);
        rc_ = pipe_end(&p);
        if (rc_ == 0 && mono() - last > LOCK_REFRESH_S) {
            pipe_begin(&p, 6);          /* 1 when the lock is still ours */
            pipe_arg_str(&p, "EVAL");
            pipe_arg_str(&p, LOCK_REFRESH_LUA);
            pipe_arg_str(&p, "1");
            pipe_arg_str(&p, lock);
            pipe_arg_str(&p, token);
            pipe_arg_str(&p, ttl);
            rc_ = pipe_end(&p);
            expect++;
            last = mono();
        }
        if (stop_flag) {
            say("interrupted");
            rc_ = -1;
        }
    }
    if (pipe_finish(&p) != 0)
        rc_ = -1;
    if (p.failed)
        say("%s", p.err);
    else if (rc_ == 0 && p.sum != expect) {
        say("redis: %lld fields written, %lld expected (a bucket existed, or "
            "the lock was lost)", p.sum, expect);
        rc_ = -1;
    }
    pipe_free(&p);
    return rc_;
}

/* A delta's commands are sent in batches this small: Redis queues the
 * ones sent while the next are formatted (the 256 KiB of a full load's
 * batch would leave it idle that long). */
#define DELTA_BATCH (16 * 1024)

/* The delta's commands (d, when not NULL), then the pointer's (SET km
 * val, the record's HSET ki f, its HDEL of the loading fields), queued
 * in the transaction MULTI opened, pipelined: one round trip for all,
 * where each command waited for its QUEUED.  Per bucket, in the
 * buckets' order: HDEL before HSET (a bucket never holds more fields
 * than before or after the delta, so one at the limit stays a listpack;
 * and Redis finds the bucket just changed in its cache).  *nq: the
 * delta's commands.  0, -1 (said). */
static int tx_queue(redisContext *rc, const char *lid, const delta_t *d,
                    size_t *nq, const char *km, const char *val,
                    const char *ki, const char *const *f, size_t nf)
{
    static const char *const loading[] = {"loading_gen", "loading_k",
                                          "loading_since"};
    pipe_t p;
    size_t i = 0, j = 0, k;
    int rc_ = 0;

    *nq = 0;
    pipe_init(&p, rc);
    p.batch = DELTA_BATCH;
    while (d != NULL && rc_ == 0 && (i < d->put.n || j < d->del.n)) {
        unsigned long bp = i < d->put.n ? jpki_crl_bucket(d->put.e[i].id,
                                                           &d->sh)
                                        : ULONG_MAX;
        unsigned long bd = j < d->del.n ? jpki_crl_bucket(d->del.e[j].id,
                                                           &d->sh)
                                        : ULONG_MAX;

        if (bd <= bp) {
            j = put_bucket(&p, "HDEL", lid, d->gen, &d->sh, d->del.e,
                           d->del.n, j);
            rc_ = pipe_end(&p);
            (*nq)++;
        }
        if (bp <= bd && rc_ == 0) {
            i = put_bucket(&p, "HSET", lid, d->gen, &d->sh, d->put.e,
                           d->put.n, i);
            rc_ = pipe_end(&p);
            (*nq)++;
        }
    }
    if (rc_ == 0) {
        pipe_begin(&p, 3);
        pipe_arg_str(&p, "SET");
        pipe_arg_str(&p, km);
        pipe_arg_str(&p, val);
        rc_ = pipe_end(&p);
    }
    if (rc_ == 0) {
        pipe_begin(&p, 2 + nf);
        pipe_arg_str(&p, "HSET");
        pipe_arg_str(&p, ki);
        for (k = 0; k < nf; k++)
            pipe_arg_str(&p, f[k]);
        rc_ = pipe_end(&p);
    }
    if (rc_ == 0) {
        pipe_begin(&p, 5);
        pipe_arg_str(&p, "HDEL");
        pipe_arg_str(&p, ki);
        for (k = 0; k < 3; k++)
            pipe_arg_str(&p, loading[k]);
        rc_ = pipe_end(&p);
    }
    if (pipe_finish(&p) != 0 || rc_ != 0) {
        say("%s", p.failed ? p.err : "redis: queueing the transaction "
            "failed");
        rc_ = -1;
    }
    pipe_free(&p);
    return rc_;
}

/* EXEC's answer to a delta's transaction: each command's reply, then
 * the pointer's three.  0; 1 the counts were not the ones expected (the
 * set was not what the delta was made from: said); -1 an error reply
 * (said). */
static int delta_replies(const redisReply *r, const delta_t *d, size_t nq)
{
    long long sum = 0, want = (long long)(d->put_new + d->del.n);
    size_t i;

    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];

        if (e->type == REDIS_REPLY_ERROR) {
            say("redis: a command of the delta failed: %.120s (the pointer "
                "%s; run crl sync --full)", e->str,
                i < nq ? "was switched all the same" : "was not switched");
            return -1;
        }
        if (i < nq && e->type == REDIS_REPLY_INTEGER)
            sum += e->integer;
    }
    if (sum != want) {
        say("warning: the delta changed %lld fields, %lld expected: the "
            "loaded generation changed while crl sync read it; run crl sync "
            "--full", sum, want);
        return 1;
    }
    return 0;
}

/* The new pointer and record, switched atomically when the pointer is still
 * the one read at the start (WATCH), with the changes of a delta sync (d,
 * when not NULL) in the same transaction. 0 switched, -1 store failure, -2
 * the pointer changed meanwhile, 1 switched but a delta's counts were
 * not the ones expected.  Every failure ends the WATCH, and after
 * MULTI the transaction (DISCARD): otherwise the clean-up commands that
 * follow would only be queued, and the lock would stay taken. */
static int switch_pointer(redisContext *rc, const char *lid,
                          const list_state *st, const jpki_crlptr *m,
                          const char *fields[][2], size_t nf,
                          const delta_t *d)
{
    char km[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
    char val[JPKI_CRLPTR_MAX + 1];
    const char *argv[64], *undo = "UNWATCH";
    redisReply *r = NULL;
    size_t i, n = 0, nq = 0;
    int same, ret = -1;

    crl_key_meta(km, lid);
    crl_key_info(ki, lid);
    if (jpki_crlptr_format(m, val, sizeof(val)) < 0 || 2 * nf > 64)
        return -1;
    {
        const char *w[3] = {"WATCH", km, ki};
        if (cmd_ok(rc, 3, w, NULL, NULL) != 0)
            return -1;
    }
    if (cmd2(rc, "GET", km, &r) != 0)
        goto fail;
    same = st->have ? r->type == REDIS_REPLY_STRING
                      && strlen(st->raw) == r->len
                      && memcmp(st->raw, r->str, r->len) == 0
                    : r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    if (!same) {
        ret = -2;
        goto fail;
    }
    if (cmd_ok(rc, 1, (const char *[]){"MULTI"}, NULL, NULL) != 0)
        goto fail;
    undo = "DISCARD";
    for (i = 0; i < nf; i++) {
        argv[n++] = fields[i][0];
        argv[n++] = fields[i][1];
    }
    if (tx_queue(rc, lid, d, &nq, km, val, ki, argv, n) != 0)
        goto fail;
    /* EXEC ends the transaction and the WATCH, whatever it answers */
    if (cmd_ok(rc, 1, (const char *[]){"EXEC"}, NULL, &r) != 0)
        return -1;
    same = r->type == REDIS_REPLY_ARRAY;
    ret = !same ? -2 : d != NULL ? delta_replies(r, d, nq) : 0;
    freeReplyObject(r);
    return ret;
fail:
    if (!rc->err) {
        r = redisCommand(rc, undo);
        freeReplyObject(r);
    }
    return ret;
}

typedef enum { CMP_NEWER, CMP_SAME, CMP_OLDER, CMP_CONFLICT } crl_cmp;

static crl_cmp compare(const jpki_crl_info *in, const char *sha,
                       const list_state *st, const char **why)
{
    const jpki_crlptr *m = &st->m;

    *why = "";
    if (in->crl_number >= 0 && m->crl_number >= 0) {
        if (in->crl_number < m->crl_number)
            return CMP_OLDER;
        if (in->crl_number == m->crl_number) {
            if (strcmp(sha, st->sha) == 0)
                return CMP_SAME;
            *why = "same crlNumber as the loaded CRL, other content";
            return CMP_CONFLICT;
        }
        if (in->this_update < m->this_update) {
            *why = "higher crlNumber but older thisUpdate than the loaded "
                   "CRL";
            return CMP_CONFLICT;
        }
        return CMP_NEWER;
    }
    if (in->this_update < m->this_update)
        return CMP_OLDER;
    if (in->this_update == m->this_update)
        return strcmp(sha, st->sha) == 0 ? CMP_SAME : CMP_OLDER;
    return CMP_NEWER;
}

static void describe(char *line, size_t n, const jpki_crl_info *in)
{
    char t1[32], t2[32];

    addf(line, n, " crl_number=%lld this_update=%s next_update=%s "
         "entries=%llu", (long long)in->crl_number,
         iso8601(in->this_update, t1),
         in->next_update ? iso8601(in->next_update, t2) : "none",
         (unsigned long long)in->entries);
}

/* The metadata a loaded CRL gets: its own fields, the generation and
 * bucket count it is (or would be) stored under, and when. */
static void meta_of(jpki_crlptr *m, const jpki_crl_info *info, long long gen,
                    const jpki_crl_shape *sh, long long loaded_at)
{
    memset(m, 0, sizeof(*m));
    m->gen = gen;
    m->shape = *sh;
    m->this_update = info->this_update;
    m->next_update = info->next_update;
    m->crl_number = info->crl_number;
    m->entries = info->entries;
    m->loaded_at = loaded_at;
}

/* SHA-256 of a buffer (the CRL's, in crlinfo's sha256). */
typedef struct {
    const uint8_t *p;
    size_t n;
    uint8_t md[32];
    int ok;
} digest_job;

/* One run of sync_once: what its stages share. */
typedef struct {
    const sync_cfg *c;
    char *line;                       /* the result line */
    size_t ln;
    char lid[CRL_LID_MAX], sha[65], idc[JPKI_CERT_ID_HEX_LEN + 1];
    char token[33];                   /* the lock's, when taken */
    uint8_t *buf, *der;
    size_t len, derlen;
    time_t now;
    double t0;
    redisContext *rc;
    ents_t s;
    jpki_crl_info info;
    list_state st;
    const char *name;                 /* the issuer's */
    long long gen;                    /* the generation written */
    jpki_crl_shape sh;
    unsigned long limit;              /* fields a bucket holds at most */
    int may_delta;                    /* the loaded set can be changed in
                                         place (delta sync) */
    long long changed;                /* entries the delta changes; -1:
                                         not computed */
    /* the loaded generation, read by a thread of its own while the new
     * entries are hashed and sorted (a delta sync) */
    pthread_t reader;
    int reading;                      /* the thread runs (join it) */
    int old_rc;                       /* read_gen's */
    const char *old_why;
    ents_t old;
    int stale;                        /* the CRL is past nextUpdate + grace */
    int loading;                      /* a generation is being written */
    crl_state cs;                     /* --state-dir: the local state */
    int fast;                         /* the delta comes from it alone */
    uint64_t stored;                  /* distinct cert_ids of the new set */
    uint8_t *counts;                  /* a fast delta's entries per bucket */
    /* the CRL's SHA-256 (sha), made by a thread from the fetch on and
     * waited for where it is needed (sha_wait): a delta needs it only
     * for the new record, after the walk and the changes */
    digest_job dj;
    pthread_t dth;
    int dj_by;                        /* 0 none, 1 dth, 2 the state's */
    int dj_made;                      /* a thread made it (joined) */
} sync_run;

#define GO_ON (-1)                    /* a stage's "go on": not an exit code */

/* jpki_crl_verify, and with a local state of the CRL's list, the walk
 * matching its entries against it (the entries it does not know parsed
 * and HMACed).  A state that fails it (out of memory) is left out. */
static jpki_err verify_scan(sync_run *r, char *detail, size_t dl)
{
    const sync_cfg *c = r->c;
    jpki_crl_scan_fns f = {r->cs.keys.digest, state_begin, state_known,
                           state_entry, &r->cs, state_ahead};
    jpki_err e;

    r->cs.hint = r->len / 16;
    e = jpki_crl_verify_scan(c->ctx, r->buf, r->len, r->now, c->grace,
                             &r->info, detail, dl,
                             c->state_dir != NULL ? &f : NULL);
    if (e == JPKI_ERR_IO && r->cs.nomem) {
        snprintf(r->cs.note, sizeof(r->cs.note), "out of memory");
        state_full(&r->cs, 0);
        e = jpki_crl_verify(c->ctx, r->buf, r->len, r->now, c->grace,
                            &r->info, detail, dl);
    }
    return e;
}

static void *digest_main(void *arg)
{
    digest_job *j = arg;
    unsigned int l = 0;

    j->ok = EVP_Digest(j->p, j->n, j->md, &l, EVP_sha256(), NULL) == 1
            && l == sizeof(j->md);
    return NULL;
}

/* The digest thread joined (once; the CRL's buffer may be freed then). */
static void sha_join(sync_run *r)
{
    if (r->dj_by == 2)
        state_ahead_end(&r->cs);
    else if (r->dj_by == 1)
        pthread_join(r->dth, NULL);
    r->dj_made |= r->dj_by != 0;
    r->dj_by = 0;
}

/* r->sha: the thread's digest, or made now (a PEM CRL, no thread).
 * 0, -1. */
static int sha_wait(sync_run *r)
{
    if (r->sha[0] != '\0')
        return 0;
    sha_join(r);
    if (!r->dj_made) {                  /* no thread made it: made here */
        if (r->der == NULL)
            return -1;
        r->dj.p = r->der;
        r->dj.n = r->derlen;
        digest_main(&r->dj);
    }
    if (!r->dj.ok)
        return -1;
    jpki_hex_encode(r->dj.md, sizeof(r->dj.md), r->sha);
    return 0;
}

/* Fetch and verify the CRL; what the pointer cannot hold is refused before
 * anything is written: a pointer that does not parse back would stop
 * every later sync. */
static int sync_verify(sync_run *r)
{
    const sync_cfg *c = r->c;
    char detail[512] = "", err[512] = "", mval[JPKI_CRLPTR_MAX + 1];
    digest_job *dj = &r->dj;
    jpki_crlptr m;
    jpki_err e;

    if (crl_fetch(c->a->val[O_SOURCE], c->max_size, c->timeout, &r->buf,
                  &r->len, err, sizeof(err)) != 0) {
        addf(r->line, r->ln, "fetch_failed source=%s error=\"%s\"", c->source,
             err);
        return EXIT_FETCH;
    }
    /* a DER CRL's digest, by a thread of its own from now on (a national
     * CRL: tens of megabytes, as many as the walk reads), waited for
     * where it is needed (sha_wait); with --state-dir, by the thread
     * that first makes the entries' digests while the signature is
     * checked (the walk waits for those, not for this one; two threads
     * beside the signature's digest would share two cores three ways) */
    dj->p = r->len > 0 && r->buf[0] == 0x30 ? r->buf : NULL;
    dj->n = r->len;
    if (dj->p != NULL
        && state_ahead_start(&r->cs, r->buf, r->len, digest_main, dj))
        r->dj_by = 2;
    else if (dj->p != NULL
             && pthread_create(&r->dth, NULL, digest_main, dj) == 0)
        r->dj_by = 1;
    e = verify_scan(r, detail, sizeof(detail));
    if (e != JPKI_OK && e != JPKI_ERR_CRL_STALE) {
        addf(r->line, r->ln, "invalid source=%s reason=%s detail=\"%s\"",
             c->source, jpki_reason(e), detail[0] ? detail
                                                  : jpki_strerror(e));
        return EXIT_INVALID;
    }
    r->stale = e == JPKI_ERR_CRL_STALE;
    r->name = jpki_issuer_name(r->info.issuer);
    if (r->len > 0 && r->buf[0] == 0x30) {      /* DER: taken as it is */
        r->der = r->buf;
        r->derlen = r->len;
        r->buf = NULL;
    }
    if (list_id(r->info.issuer, r->info.key_hash, c->arl, r->lid) != 0
        || (r->der == NULL
            && jpki_to_der(r->buf, r->len, "X509 CRL", JPKI_CRL_MAX, &r->der,
                           &r->derlen) != JPKI_OK)
        || jpki_cert_id_from_serial_text(c->ctx, r->info.issuer,
                                         JPKI_CRL_ID_CHECK_SERIAL, r->idc) != JPKI_OK) {
        addf(r->line, r->ln, "invalid source=%s reason=internal", c->source);
        return EXIT_INVALID;
    }
    free(r->buf);
    r->buf = NULL;
    if (crl_number_fits(r->der, r->derlen) != 0) {
        addf(r->line, r->ln, "invalid issuer=%s reason=crl_number detail=\""
             "cRLNumber negative or over 9223372036854775807 (2^63-1): the "
             "store holds a 64-bit number\"", r->name);
        return EXIT_INVALID;
    }
    {
        const jpki_crl_shape widest = {JPKI_CRL_BITS_MAX, JPKI_CRL_KEY_LEN};

        meta_of(&m, &r->info, LLONG_MAX, &widest, (long long)r->now);
    }
    if (jpki_crlptr_format(&m, mval, sizeof(mval)) < 0) {
        addf(r->line, r->ln, "invalid issuer=%s reason=unsupported detail=\""
             "a date or count out of the store pointer's range\"", r->name);
        describe(r->line, r->ln, &r->info);
        return EXIT_INVALID;
    }
    return GO_ON;
}

/* A store loaded by jpkictl before lists per CA key holds one list per
 * issuer, "<issuer tag>[.arl]", and one loaded by jpkictl 06b82fb lists
 * named "<issuer tag>.<key tag>[.arl]"; gates of this version read
 * neither (they fail closed for the keys without a list of their own):
 * say so, once per run; the old list stays for older gates until purged. */
static void old_layout_note(sync_run *r)
{
    char km[2][JPKI_STORE_KEY_MAX + 1], key[JPKI_CRL_TAG_LEN + 1];
    const char *get[2] = {"GET", "GET"}, *k[2] = {km[0], km[1]};
    redisReply *rep[2];
    int per_key;

    if (jpki_crl_key_tag(r->info.key_hash, key) != 0)
        return;
    for (per_key = 0; per_key < 2; per_key++)
        snprintf(km[per_key], sizeof(km[0]), JPKI_STORE_PREFIX
                 "crlmeta:%s%s%s%s", jpki_issuer_tag(r->info.issuer),
                 per_key ? "." : "", per_key ? key : "",
                 r->c->arl ? ".arl" : "");
    if (cmd2x2(r->rc, get, k, rep) != 0)    /* both in one round trip */
        return;
    for (per_key = 0; per_key < 2; per_key++) {
        if (rep[per_key]->type == REDIS_REPLY_STRING)
            say("note: the store holds a CRL of issuer %s in the layout of "
                "an older jpkictl (%s: %s), which the gate no longer reads: "
                "it now reads the list of the CA key that issued each "
                "certificate, under its list tag, and fails closed "
                "(revocation_unavailable) for a key without one.  Run crl "
                "sync with the CRL of each CA key; `jpkictl purge "
                "--revocation` then removes the old list", r->name,
                km[per_key], per_key
                ? "a list per key named <issuer tag>.<key tag>"
                : "one list per issuer");
        freeReplyObject(rep[per_key]);
    }
}

/* Connect, lock the list, read what is loaded (and clear an earlier
 * run's leftovers): go on only when the CRL is newer than the loaded one,
 * or the loaded one is not usable by the gate. */
static int sync_against_store(sync_run *r)
{
    const sync_cfg *c = r->c;
    const char *why;
    crl_cmp cmp;
    int e2, old_stale;

    if ((r->rc = redis_open(c->a)) == NULL) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"cannot "
             "connect\"", r->name);
        return EXIT_STORE;
    }
    e2 = crl_lock_take(r->rc, r->lid, r->token);
    if (e2 != 0) {
        r->token[0] = '\0';
        addf(r->line, r->ln, "store_failed issuer=%s error=\"%s\"", r->name,
             e2 == -2 ? "busy: another crl sync is loading this list"
                      : "lock");
        return EXIT_STORE;
    }
    old_layout_note(r);
    e2 = read_state(r->rc, r->lid, &r->st);
    if (e2 == -2) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"the pointer "
             "jpki:v1:crlmeta:%s does not parse\"", r->name, r->lid);
        return EXIT_STORE;
    }
    if (e2 != 0 || crl_recover(r->rc, r->lid, &r->st, c->keep_old) != 0) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"reading the "
             "loaded state\"", r->name);
        return EXIT_STORE;
    }
    /* the gate refuses a list whose id_check is not its own, also one
     * without id_check: such a list is replaced whatever its number, or
     * it would stay unusable until a newer CRL is published */
    if (r->st.have && strcmp(r->st.id_check, r->idc) != 0)
        say("warning: the loaded CRL of %s %s; replacing it", r->name,
            r->st.id_check[0]
            ? "was made with another secret or other CA files"
            : "has no id_check");
    if (!r->st.have || strcmp(r->st.id_check, r->idc) != 0)
        return GO_ON;
    /* the CRL's digest tells the same CRL from another of the same
     * number or date: waited for only then */
    if ((r->info.crl_number == r->st.m.crl_number
         || r->info.this_update == r->st.m.this_update)
        && sha_wait(r) != 0) {
        addf(r->line, r->ln, "invalid source=%s reason=internal", c->source);
        return EXIT_INVALID;
    }
    cmp = compare(&r->info, r->sha, &r->st, &why);
    if (r->st.m.shape.key_len != JPKI_CRL_KEY_LEN && cmp != CMP_CONFLICT) {
        /* the layout of an older jpkictl (the gate still reads it):
         * replaced, even by the same CRL */
        say("note: the loaded CRL of %s is in the layout of an older "
            "jpkictl (16-octet fields); loading it in the current one",
            r->name);
        return GO_ON;
    }
    r->may_delta = cmp == CMP_NEWER && !c->full;
    if (cmp == CMP_CONFLICT) {
        addf(r->line, r->ln, "invalid issuer=%s reason=crl_number "
             "detail=\"%s\"", r->name, why);
        describe(r->line, r->ln, &r->info);
        return EXIT_INVALID;
    }
    if (cmp == CMP_NEWER)
        return GO_ON;
    old_stale = stale_at(&r->st.m, r->now, c->grace);
    addf(r->line, r->ln, "%s issuer=%s", old_stale ? "stale"
         : cmp == CMP_SAME ? "unchanged" : "older", r->name);
    describe(r->line, r->ln, &r->info);
    addf(r->line, r->ln, " loaded_crl_number=%lld%s",
         (long long)r->st.m.crl_number,
         old_stale ? " detail=\"nothing newer than the loaded CRL, "
                     "which is past nextUpdate + grace\"" : "");
    return old_stale ? EXIT_INVALID : EXIT_NOT_NEWER;
}

static int sync_switch(sync_run *r, const delta_t *d);

static void *read_ahead_main(void *arg)
{
    sync_run *r = arg;

    r->old_rc = read_gen(r->rc, r->lid, r->st.m.gen, &r->st.m.shape,
                         &r->old, &r->old_why);
    return NULL;
}

/* A delta sync needs the loaded entries: a thread reads them (the
 * connection is its own until read_wait) while the CRL's entries are
 * hashed and sorted.  Without a thread, they are read in read_wait. */
static void read_ahead(sync_run *r)
{
    r->old_rc = 0;
    r->old_why = "";
    if (r->may_delta && pthread_create(&r->reader, NULL, read_ahead_main, r)
                        == 0)
        r->reading = 1;
}

/* Once, after read_ahead. */
static void read_wait(sync_run *r)
{
    if (r->reading) {
        pthread_join(r->reader, NULL);
        r->reading = 0;
    } else if (r->may_delta) {
        read_ahead_main(r);             /* no thread: read it now */
    }
}

/* One entry of the key that signed the CRL (and its record in the new
 * local state). */
static int collect(void *ud, const jpki_crl_scan_entry *e)
{
    sync_run *r = ud;
    crl_ent *x = ents_add(&r->s);

    if (x == NULL)
        return 1;
    memcpy(x->id, e->cert_id, sizeof(x->id));
    x->at = ent_at(e->revoked_at);
    x->reason = (int8_t)e->reason;
    return e->digest != NULL
           && state_record(&r->cs, e->digest, e->cert_id) != 0;
}

/* The entries: the cert_ids of the key that signed the CRL, sorted,
 * unique; with --state-dir, each one's record of the new state. */
static int sync_collect(sync_run *r)
{
    const sync_cfg *c = r->c;
    jpki_crl_scan_fns f = {c->state_dir != NULL ? r->cs.keys.digest : NULL,
                           NULL, NULL, collect, r, NULL};
    jpki_err e;
    int bad;

    read_ahead(r);
    if (r->info.entries > 0 && r->info.entries < SIZE_MAX / sizeof(crl_ent)
        && (r->s.e = jpki_alloc_large((size_t)r->info.entries
                                      * sizeof(crl_ent))) != NULL)
        r->s.cap = (size_t)r->info.entries;     /* no growing copies */
    if (c->state_dir != NULL)
        state_full(&r->cs, r->info.entries);
    e = jpki_crl_verify_scan(c->ctx, r->der, r->derlen, r->now, c->grace,
                             NULL, NULL, 0, &f);
    if (e == JPKI_ERR_CRL_STALE)
        e = JPKI_OK;                    /* as verified: loaded all the same */
    if (sha_wait(r) != 0)               /* before its buffer goes */
        e = JPKI_ERR_INTERNAL;
    free(r->der);
    r->der = NULL;
    bad = e != JPKI_OK || r->cs.nomem || crl_sort_unique(&r->s) != 0;
    r->stored = r->s.n;
    read_wait(r);                       /* the connection is ours again */
    if (bad) {
        addf(r->line, r->ln, "invalid issuer=%s reason=%s", r->name,
             r->s.nomem || r->cs.nomem ? "out_of_memory" : jpki_reason(e));
        return EXIT_INVALID;
    }
    r->limit = crl_listpack_limit(r->rc);
    return GO_ON;
}

/* The difference of the loaded set (old) and the new one (both sorted):
 * into d.  0, -1 out of memory. */
static int diff_sets(const ents_t *old, const ents_t *cur, delta_t *d)
{
    size_t i = 0, j = 0;

    while (i < old->n || j < cur->n) {
        int c = i == old->n ? 1 : j == cur->n ? -1
                : memcmp(old->e[i].id, cur->e[j].id, JPKI_CRL_KEY_LEN);
        crl_ent *x;

        if (c < 0) {                            /* removed */
            if ((x = ents_add(&d->del)) == NULL)
                return -1;
            *x = old->e[i++];
        } else if (c > 0 || old->e[i].at != cur->e[j].at
                   || old->e[i].reason != cur->e[j].reason) {
            if ((x = ents_add(&d->put)) == NULL)
                return -1;
            *x = cur->e[j];
            d->put_new += c > 0;
            if (c == 0)
                i++;
            j++;
        } else {
            i++;
            j++;
        }
    }
    return 0;
}

static void delta_free(delta_t *d)
{
    free(d->put.e);
    free(d->del.e);
    memset(d, 0, sizeof(*d));
}

/* A delta sync: when the loaded set is this jpkictl's layout and the new
 * CRL differs from it by at most 1 / DELTA_SHARE of its entries (and
 * --delta-max), and no bucket would hold more than the limit, the
 * entries added, changed and removed are written in the
 * same MULTI/EXEC as the new pointer, into the loaded generation: readers
 * see the old set and pointer or the new ones.  GO_ON (a full sync
 * instead), or the exit code. */
static int sync_delta(sync_run *r)
{
    const jpki_crl_shape *sh = &r->st.m.shape;
    ents_t *old = &r->old;
    delta_t d;
    size_t most;
    int e2;

    r->changed = -1;
    if (!r->may_delta)
        return GO_ON;
    memset(&d, 0, sizeof(d));
    e2 = r->old_rc;                     /* read_ahead's, joined */
    if (e2 == -1) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"reading the "
             "loaded entries\"", r->name);
        return EXIT_STORE;
    }
    if (e2 == -2 || diff_sets(old, &r->s, &d) != 0) {
        say("note: no delta sync: the loaded generation %lld: %s; loading "
            "a new one", (long long)r->st.m.gen, e2 == -2 ? r->old_why
                                                   : "out of memory");
        delta_free(&d);
        return GO_ON;
    }
    most = old->n > r->s.n ? old->n : r->s.n;
    free(old->e);
    memset(old, 0, sizeof(*old));
    r->changed = (long long)(d.put.n + d.del.n);
    if ((size_t)r->changed > most / DELTA_SHARE
        || (unsigned long long)r->changed > r->c->delta_max
        || crl_bucket_max(&r->s, sh) > r->limit) {
        delta_free(&d);
        return GO_ON;           /* a large change: a new generation */
    }
    d.gen = r->st.m.gen;
    d.sh = *sh;
    r->gen = d.gen;
    r->sh = *sh;
    e2 = sync_switch(r, &d);
    delta_free(&d);
    return e2;
}

/* A delta sync from the local state alone: when it is the state of the
 * list the store holds (its pointer, CRL and id_check), the walk told
 * which entries are new (parsed and HMACed) and which records no entry
 * matched; the changes are made from them, without reading the list
 * back.  GO_ON when it cannot (a note says why; a large change: a full
 * sync, else the read-back delta), or the exit code. */
static int sync_fast(sync_run *r)
{
    uint64_t most;
    uint32_t bmax;
    delta_t d;
    int e2;

    if (r->c->state_dir == NULL || !r->may_delta)
        return GO_ON;
    if (!state_matches(&r->cs, &r->st)) {
        say("note: the local state of list %s is not used: %s; reading the "
            "loaded entries back", r->lid, r->cs.note);
        return GO_ON;
    }
    memset(&d, 0, sizeof(d));
    e2 = state_delta(&r->cs, &d, &r->stored, &r->counts, &bmax);
    if (e2 != 0) {
        say("note: the local state of list %s is not used: %s; reading the "
            "loaded entries back", r->lid, e2 < 0 ? "out of memory"
                                                   : r->cs.note);
        delta_free(&d);
        return GO_ON;
    }
    r->limit = crl_listpack_limit(r->rc);
    most = r->cs.h.stored > r->stored ? r->cs.h.stored : r->stored;
    r->changed = (long long)(d.put.n + d.del.n);
    if ((uint64_t)r->changed > most / DELTA_SHARE
        || (unsigned long long)r->changed > r->c->delta_max
        || bmax > r->limit) {
        delta_free(&d);
        r->may_delta = 0;             /* a large change: a new generation */
        return GO_ON;
    }
    d.gen = r->gen = r->st.m.gen;
    d.sh = r->sh = r->st.m.shape;
    r->fast = 1;
    e2 = sync_switch(r, &d);
    delta_free(&d);
    return e2;
}

/* The entries written under a new generation, recorded as loading until
 * the switch. */
static int sync_write(sync_run *r)
{
    char kg[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
    char gens[24], shs[JPKI_CRL_SHAPE_MAX], since[24];
    const char *v[8] = {"HSET", ki, "loading_gen", gens, "loading_k", shs,
                        "loading_since", since};
    redisReply *rep = NULL;

    r->sh = crl_choose_shape(&r->s, r->limit);
    crl_key_gen(kg, r->lid);
    crl_key_info(ki, r->lid);
    if (cmd2(r->rc, "INCR", kg, &rep) != 0
        || rep->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        addf(r->line, r->ln, "store_failed issuer=%s error=\"INCR\"",
             r->name);
        return EXIT_STORE;
    }
    r->gen = rep->integer;
    freeReplyObject(rep);
    snprintf(gens, sizeof(gens), "%lld", r->gen);
    jpki_crl_shape_format(&r->sh, shs);
    snprintf(since, sizeof(since), "%lld", (long long)r->now);
    if (cmd_ok(r->rc, 8, v, NULL, NULL) != 0) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"HSET\"",
             r->name);
        return EXIT_STORE;
    }
    r->loading = 1;
    if (write_buckets(r->rc, r->lid, r->gen, &r->sh, &r->s, r->token) != 0) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"writing the "
             "entries\"", r->name);
        return EXIT_STORE;
    }
    return GO_ON;
}

/* With --state-dir, the local state of the list about to be switched
 * to m (the records of the walk, the entries per bucket), written by a
 * thread of its own while the switch runs; save_end renames it into
 * place once the switch is done. */
typedef struct {
    sync_run *r;
    jpki_crlstate_hdr h;
    pthread_t th;
    int threaded, rc;
} save_job;

static void *save_main(void *arg)
{
    save_job *j = arg;
    sync_run *r = j->r;
    uint8_t *counts = r->counts;
    size_t i;

    if (!r->fast && (counts = calloc(j->h.nb, 4)) != NULL)
        for (i = 0; i < r->s.n; i++) {
            uint32_t b = (uint32_t)jpki_crl_bucket(r->s.e[i].id, &r->sh);

            jpki_crlstate_count_set(counts, b,
                                    jpki_crlstate_count(counts, b) + 1);
        }
    j->rc = counts != NULL ? state_write(&r->cs, &j->h, counts) : -1;
    if (!r->fast)
        free(counts);
    return NULL;
}

static void save_start(sync_run *r, const jpki_crlptr *m, save_job *j)
{
    memset(j, 0, sizeof(*j));
    j->r = r;
    j->rc = -1;
    if (r->c->state_dir == NULL)
        return;
    j->h.nb = 1u << r->sh.bits;
    j->h.stored = r->stored;
    snprintf(j->h.lid, sizeof(j->h.lid), "%s", r->lid);
    snprintf(j->h.sha, sizeof(j->h.sha), "%s", r->sha);
    snprintf(j->h.id_check, sizeof(j->h.id_check), "%s", r->idc);
    if (jpki_crlptr_format(m, j->h.ptr, sizeof(j->h.ptr)) < 0)
        return;
    j->threaded = pthread_create(&j->th, NULL, save_main, j) == 0;
    if (!j->threaded)
        save_main(j);
}

/* switched: switch_pointer's answer (0 switched as the state says, 1
 * switched but the set was not the one the delta was made from, < 0 not
 * switched: the old state still describes the list). */
static void save_end(sync_run *r, save_job *j, int switched)
{
    if (r->c->state_dir == NULL)
        return;
    if (j->threaded)
        pthread_join(j->th, NULL);
    state_commit(&r->cs, switched < 0 ? 0 : switched == 0 && j->rc == 0
                                             ? 1 : -1);
}

/* The pointer switched to the new generation (with crl sync's record),
 * then the replaced generation set to expire once readers are done with
 * it; or, for a delta sync (d), the loaded generation changed with the
 * pointer.  The result line. */
static int sync_switch(sync_run *r, const delta_t *d)
{
    const sync_cfg *c = r->c;
    char gens[24], shs[JPKI_CRL_SHAPE_MAX], nums[24], tus[24], nus[24];
    char ents_s[24], stored[24], at[24], prevg[24];
    char prevs[JPKI_CRL_SHAPE_MAX] = "", ttl[24], ktag[JPKI_CRL_TAG_LEN + 1];
    int replaced = r->st.have && d == NULL;
    save_job job;
    jpki_crlptr m;
    int e2;

    if (sha_wait(r) != 0) {
        addf(r->line, r->ln, "invalid issuer=%s reason=internal", r->name);
        return EXIT_INVALID;
    }
    meta_of(&m, &r->info, r->gen, &r->sh, (long long)time(NULL));
    snprintf(gens, sizeof(gens), "%lld", r->gen);
    jpki_crl_shape_format(&r->sh, shs);
    snprintf(nums, sizeof(nums), "%lld", (long long)r->info.crl_number);
    snprintf(tus, sizeof(tus), "%lld", (long long)r->info.this_update);
    snprintf(nus, sizeof(nus), "%lld", (long long)r->info.next_update);
    snprintf(ents_s, sizeof(ents_s), "%llu",
             (unsigned long long)r->info.entries);
    snprintf(stored, sizeof(stored), "%llu", (unsigned long long)r->stored);
    snprintf(at, sizeof(at), "%lld", (long long)m.loaded_at);
    snprintf(prevg, sizeof(prevg), "%lld",
             (long long)(replaced ? r->st.m.gen : 0));
    if (replaced)
        jpki_crl_shape_format(&r->st.m.shape, prevs);
    if (jpki_crl_key_tag(r->info.key_hash, ktag) != 0) {
        addf(r->line, r->ln, "invalid issuer=%s reason=internal", r->name);
        return EXIT_INVALID;
    }
    {
        /* the issuer and key the list is of (its name is one tag made of
         * them, crlptr.h): crl status and recheck check the name against
         * them, and tell this layout from one list per issuer by them */
        const char *f[][2] = {
            {"issuer", r->name}, {"kind", c->arl ? "arl" : "crl"},
            {"issuer_tag", jpki_issuer_tag(r->info.issuer)},
            {"key_tag", ktag},
            {"gen", gens}, {"k", shs}, {"crl_number", nums},
            {"this_update", tus}, {"next_update", nus},
            {"entries", ents_s}, {"stored", stored},
            {"source", c->source}, {"loaded_at", at}, {"sha256", r->sha},
            {"id_check", r->idc}, {"prev_gen", prevg}, {"prev_k", prevs},
        };
        size_t nf = sizeof(f) / sizeof(f[0]) - (replaced ? 0 : 2);

        save_start(r, &m, &job);
        e2 = switch_pointer(r->rc, r->lid, &r->st, &m, f, nf, d);
        save_end(r, &job, e2);
    }
    if (e2 < 0) {
        addf(r->line, r->ln, "store_failed issuer=%s error=\"%s\"", r->name,
             e2 == -2 ? "the loaded CRL changed meanwhile (purge or another "
                        "sync)" : "switching the pointer");
        return EXIT_STORE;
    }
    r->loading = 0;

    if (replaced) {
        snprintf(ttl, sizeof(ttl), "%u", c->keep_old);
        if (crl_gen_op(r->rc, "EXPIRE", ttl, r->lid, r->st.m.gen,
                   &r->st.m.shape) < 0
            || crl_hdel(r->rc, r->lid, "prev_gen", "prev_k", NULL) != 0)
            say("warning: the replaced generation %lld was not given its "
                "expiry; the next crl sync does it", (long long)r->st.m.gen);
    }
    addf(r->line, r->ln, "%s issuer=%s", r->stale ? "stale" : "loaded",
         r->name);
    describe(r->line, r->ln, &r->info);
    addf(r->line, r->ln, " stored=%llu bits=%u gen=%lld mode=%s",
         (unsigned long long)r->stored, r->sh.bits, r->gen,
         d != NULL ? "delta" : "full");
    if (r->changed >= 0)
        addf(r->line, r->ln, " changed=%lld", r->changed);
    addf(r->line, r->ln, " seconds=%.2f list=%s", mono() - r->t0, r->lid);
    if (r->stale)
        addf(r->line, r->ln, " detail=\"loaded (newer than the store's) but "
             "past nextUpdate + grace\"");
    return r->stale ? EXIT_INVALID : EXIT_VALID;
}

/* One check: fetch and verify, compare with the store, change the loaded
 * set in place (a small change) or write a new generation, switch.  The
 * result line in line.  A load that did not switch is removed: the old
 * set stays. */
static int sync_once(const sync_cfg *c, char *line, size_t ln)
{
    sync_run r;
    int rc;

    memset(&r, 0, sizeof(r));
    if (state_init(&r.cs, c->state_dir, c->arl, c->ctx) != 0)
        return EXIT_USAGE;
    r.c = c;
    r.line = line;
    r.ln = ln;
    r.now = time(NULL);
    r.t0 = mono();
    line[0] = '\0';
    if ((rc = sync_verify(&r)) == GO_ON
        && (rc = sync_against_store(&r)) == GO_ON
        && (rc = sync_fast(&r)) == GO_ON
        && (rc = sync_collect(&r)) == GO_ON
        && (rc = sync_delta(&r)) == GO_ON
        && (rc = sync_write(&r)) == GO_ON)
        rc = sync_switch(&r, NULL);
    if (r.loading && r.rc != NULL && !r.rc->err) {
        if (crl_gen_op(r.rc, "UNLINK", NULL, r.lid, r.gen, &r.sh) >= 0)
            crl_hdel(r.rc, r.lid, "loading_gen", "loading_k", "loading_since");
    }
    if (r.token[0])
        crl_lock_release(r.rc, r.lid, r.token);
    redisFree(r.rc);
    sha_join(&r);                       /* before the CRL's buffer goes */
    free(r.old.e);
    free(r.s.e);
    free(r.counts);
    state_free(&r.cs);
    free(r.der);
    free(r.buf);
    return rc;
}

int run_crl_sync(const args_t *a)
{
    unsigned long long grace, keep, maxs, tmo, watch, dmax;
    char line[2048], t[32];
    struct sigaction sa;
    sync_cfg c;
    int rc;

    if (opt_uint(a, O_GRACE, 0, GRACE_MAX, DEFAULT_GRACE, &grace)
        || opt_uint(a, O_KEEP_OLD, KEEP_OLD_MIN, 7 * 86400, DEFAULT_KEEP_OLD,
                    &keep)
        || opt_uint(a, O_MAX_SIZE, 1024, JPKI_CRL_MAX, DEFAULT_MAX_SIZE,
                    &maxs)
        || opt_uint(a, O_TIMEOUT, 1, 3600, DEFAULT_TIMEOUT, &tmo)
        || opt_uint(a, O_WATCH, 1, 7 * 86400, 0, &watch)
        || opt_uint(a, O_DELTA_MAX, 0, DELTA_MAX_MAX, DELTA_MAX, &dmax))
        return SHOW_USAGE;
    memset(&c, 0, sizeof(c));
    c.a = a;
    c.grace = (unsigned)grace;
    c.keep_old = (unsigned)keep;
    c.max_size = (size_t)maxs;
    c.timeout = (unsigned)tmo;
    c.arl = (a->seen & BIT(O_ARL)) != 0;
    c.full = (a->seen & BIT(O_FULL)) != 0;
    c.delta_max = (unsigned long)dmax;
    c.state_dir = a->val[O_STATE_DIR];
    source_redact(a->val[O_SOURCE], c.source, sizeof(c.source));
    if (strchr(c.source, '"') != NULL || strchr(c.source, ' ') != NULL) {
        say("--source: no spaces or quotes (percent-encode them)");
        return SHOW_USAGE;
    }
    /* the first check's CRL read while the CA files are parsed */
    crl_fetch_ahead(a->val[O_SOURCE], c.max_size);
    if ((c.ctx = build_ctx(a, 0)) == NULL) {
        crl_fetch_drop();
        return EXIT_USAGE;
    }
    if (watch == 0) {
        rc = sync_once(&c, line, sizeof(line));
        crl_fetch_drop();
        printf("%s\n", line);
        jpki_ctx_free(c.ctx);
        return rc;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stop_flag) {
        struct timespec ts = {(time_t)watch, 0};

        rc = sync_once(&c, line, sizeof(line));
        crl_fetch_drop();
        printf("%s %s exit=%d\n", iso8601(time(NULL), t), line, rc);
        /* SIGPIPE is ignored (jpkictl.c): a reader of the lines that went
         * away ends the watch here, as the signal did */
        if (fflush(stdout) != 0 || ferror(stdout)) {
            say("cannot write the status line: %s; stopping",
                strerror(errno));
            jpki_ctx_free(c.ctx);
            return EXIT_USAGE;
        }
        while (!stop_flag && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    jpki_ctx_free(c.ctx);
    return EXIT_VALID;
}

