/*
 * crl_cmds.c - jpkictl crl sync | crl status | purge | recheck: revocation
 * data shared by every gate node through Redis.
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
#include "crl_store.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_GRACE    (48u * 3600)    /* a J-LIS CRL: 72 h validity */
#define DEFAULT_KEEP_OLD 600
/* A reader may keep a pointer up to the gate's largest crl_pointer_ttl (60
 * s, jpki_policy_ranges_ok in common/ctx.c) and then read the buckets it
 * names during one request (a few seconds of store deadlines): a replaced
 * generation expiring sooner would answer nil, "not revoked". */
#define POINTER_TTL_MAX  60
#define KEEP_OLD_MIN     (POINTER_TTL_MAX + 30)
#define DEFAULT_MAX_SIZE (1ULL << 30)
#define DEFAULT_TIMEOUT  300
#define LOCK_TTL_MS      300000
#define LOCK_REFRESH_S   60
#define LISTPACK_ENTRIES 128             /* redis.conf's value */
#define BUCKET_MAX       256             /* fields per bucket at most */
#define ID_CHECK_SERIAL  JPKI_CRL_ID_CHECK_SERIAL
#define SCAN_COUNT       "1000"
#define RECHECK_PAGE     1000            /* soft records looked up at once */

/* The lock is refreshed and released only by the sync holding it: the token
 * is compared and the lock acted on in one step (a GET then a DEL could
 * delete the lock another sync took in between, after ours expired). */
#define LOCK_REFRESH_LUA                                                    \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                        \
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
#define LOCK_RELEASE_LUA                                                    \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                        \
    "return redis.call('del', KEYS[1]) end return 0"

const char usage_crl_sync[] =
"jpkictl crl sync --source URL|FILE --issuer NAME=CAFILE[,...] [--issuer ..]\n"
"                 --secret-file FILE --redis ADDR [--redis-db N]\n"
"                 [--redis-user U] [--redis-password P] [--grace SECONDS]\n"
"                 [--keep-old SECONDS] [--arl] [--watch SECONDS]\n"
"                 [--max-size BYTES] [--timeout SECONDS]\n"
"  Fetches a CRL, verifies it against the configured issuer it names and\n"
"  loads it into Redis for every gate node: readers see the old set or the\n"
"  new set, never a mix; a failed load leaves the old set in place.  Prints\n"
"  one line \"STATUS issuer=NAME ...\"; STATUS and exit status:\n"
"    loaded 0 | stale 1 (past nextUpdate + grace; loaded when newer than\n"
"    the store's) | invalid 1 | unchanged, older 3 (stale 1 when the loaded\n"
"    one is stale) | fetch_failed 4 | store_failed 5 (also: busy)\n"
"  --source       a path, file://, http(s)://, or ldap(s)://HOST/DN?\n"
"                 certificateRevocationList;binary (user:password@ in the\n"
"                 URL is never shown or stored, but stays visible in the\n"
"                 process list: give it in JPKI_SOURCE_USERPWD=user:password\n"
"                 or a netrc file named by JPKI_SOURCE_NETRC instead)\n"
"  --issuer, --secret-file  exactly as the gate's configuration: the list\n"
"                 key (issuer tag) and the cert_ids depend on them\n"
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
"jpkictl crl status --redis ADDR [...] [--issuer ... [--secret-file FILE]]\n"
"                   [--grace SECONDS]\n"
"  One line per loaded CRL: \"fresh|stale issuer=NAME list=TAG kind=crl\n"
"  crl_number=N this_update= next_update= age=S entries=N loaded_at=\n"
"  source=\"; with --issuer, \"missing issuer=NAME\" for one without a CRL;\n"
"  with --issuer and --secret-file (the gate's), \"mismatch issuer=NAME\n"
"  list=TAG kind= detail=\" for a CRL loaded with another secret or other\n"
"  CA files (its id_check differs or is missing): the gate treats it as\n"
"  unavailable.  Exit 0 all fresh, 1 stale, missing or mismatch (or\n"
"  nothing loaded), 5 store failed.\n\n";

const char usage_purge[] =
"jpkictl purge --revocation (--redis ADDR [...] | --map-file FILE)\n"
"  Erases every revocation record from the store: loaded CRLs\n"
"  (jpki:v1:crl*), cached answers (jpki:v1:rev:*) and soft-pass records\n"
"  (jpki:v1:soft:*), and prints how many keys went.  Stop crl sync jobs\n"
"  first.  Exit 0, 5 store failed.  The embedded store (--map-file) is the\n"
"  servers' shared memory, which jpkictl cannot reach: see\n"
"  docs/operations.md.\n\n";

const char usage_recheck[] =
"jpkictl recheck --redis ADDR [...] --issuer NAME=CAFILE[,...] [--issuer ..]\n"
"                --secret-file FILE\n"
"  Re-checks every login accepted while revocation data was unavailable or\n"
"  stale (jpki:v1:soft:* records) against the newest CRL loaded in the\n"
"  store; lists those whose certificate is now revoked:\n"
"    revoked cert_id=HEX issuer=NAME reason=R revoked_at=T auth_time=T\n"
"  (auth_time: the latest soft pass the record stands for)\n"
"  and writes jpki:v1:rev:<cert_id> so that their sessions are refused at\n"
"  the next re-check on every node (a CRL that lists it proves it, however\n"
"  old).  Records that cannot be decided (no CRL for the issuer, not listed\n"
"  in a CRL older than the login, or in one past nextUpdate + --grace,\n"
"  default 172800 s as crl sync) are listed as \"unchecked\".\n"
"  Last line: \"recheck: records=N revoked=N unchecked=N good=N\".\n"
"  Exit 0 none revoked, 1 some revoked, 3 some unchecked (none revoked),\n"
"  2 usage (also: the CRLs were loaded with another secret), 5 store\n"
"  failed.\n\n";

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

/* A command whose reply is only checked for errors; 0 ok. */
static int cmd_ok(redisContext *rc, int argc, const char **argv,
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

static int cmd2(redisContext *rc, const char *c, const char *k,
                redisReply **keep)
{
    const char *v[2] = {c, k};
    return cmd_ok(rc, 2, v, NULL, keep);
}

/* The list id: the issuer tag, ".arl" appended for an ARL. */
static void list_id(const jpki_issuer *is, int arl, char lid[CRL_LID_MAX])
{
    snprintf(lid, CRL_LID_MAX, "%s%s", jpki_issuer_tag(is),
             arl ? ".arl" : "");
}

static int stale_at(const jpki_crlptr *m, time_t now, unsigned grace)
{
    return m->next_update != 0
           && (long long)now > m->next_update + (long long)grace;
}

/* ---- what the store holds for one list ---------------------------- */

typedef struct {
    int have;                 /* a pointer exists */
    char raw[JPKI_CRLPTR_MAX + 1];
    jpki_crlptr m;
    char sha[65];
    char id_check[JPKI_CERT_ID_HEX_LEN + 1];
    char issuer[64];
    char kind[8];
    char source[512];
    long long loading_gen, prev_gen;
    unsigned loading_k, prev_k;
} list_state;

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
    else if (strcmp(n, "kind") == 0)
        COPY(st->kind);
    else if (strcmp(n, "source") == 0)
        COPY(st->source);
    else if (strcmp(n, "loading_gen") == 0)
        st->loading_gen = x;
    else if (strcmp(n, "loading_k") == 0)
        st->loading_k = (unsigned)x;
    else if (strcmp(n, "prev_gen") == 0)
        st->prev_gen = x;
    else if (strcmp(n, "prev_k") == 0)
        st->prev_k = (unsigned)x;
#undef COPY
}

/* GET crlmeta + HGETALL crlinfo.  0, -1 store failure, -2 a pointer that
 * does not parse. */
static int read_state(redisContext *rc, const char *lid, list_state *st)
{
    char km[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
    redisReply *r = NULL;
    size_t i;

    memset(st, 0, sizeof(*st));
    crl_key_meta(km, lid);
    crl_key_info(ki, lid);
    if (cmd2(rc, "GET", km, &r) != 0)
        return -1;
    if (r->type == REDIS_REPLY_STRING) {
        if (r->len > JPKI_CRLPTR_MAX || jpki_crlptr_parse(r->str, r->len, &st->m)) {
            freeReplyObject(r);
            return -2;
        }
        memcpy(st->raw, r->str, r->len);
        st->have = 1;
    }
    freeReplyObject(r);
    if (cmd2(rc, "HGETALL", ki, &r) != 0)
        return -1;
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING
            && r->element[i + 1]->type == REDIS_REPLY_STRING)
            info_field(st, r->element[i], r->element[i + 1]);
    freeReplyObject(r);
    return 0;
}

/* ---- whole generations -------------------------------------------- */

/* cmd (UNLINK or EXPIRE with arg) on every possible bucket of a
 * generation (16^k keys, pipelined); returns the sum of the replies. */
static long long gen_op(redisContext *rc, const char *cmd, const char *arg,
                        const char *lid, long long gen, unsigned k)
{
    char key[JPKI_STORE_KEY_MAX + 1];
    unsigned long b, nb = 1ul << (4 * k);
    pipe_t p;
    long long sum;

    if (k < JPKI_CRL_K_MIN || k > JPKI_CRL_K_MAX)
        return 0;
    pipe_init(&p, rc);
    for (b = 0; b < nb; b++) {
        crl_key_bucket_n(key, lid, gen, k, b);
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

static int hdel(redisContext *rc, const char *lid, const char *f1,
                const char *f2, const char *f3)
{
    char ki[JPKI_STORE_KEY_MAX + 1];
    const char *v[5] = {"HDEL", ki, f1, f2, f3};

    crl_key_info(ki, lid);
    return cmd_ok(rc, f3 != NULL ? 5 : 4, v, NULL, NULL);
}

/* Leftovers of an earlier run: a load that did not finish (its buckets are
 * removed), a previous generation whose expiry was not set. */
static int recover(redisContext *rc, const char *lid, list_state *st,
                   unsigned keep_old)
{
    char ttl[24];

    if (st->loading_gen > 0) {
        say("note: removing generation %lld of an unfinished load",
            st->loading_gen);
        if (gen_op(rc, "UNLINK", NULL, lid, st->loading_gen, st->loading_k)
            < 0 || hdel(rc, lid, "loading_gen", "loading_k", "loading_since"))
            return -1;
        st->loading_gen = 0;
    }
    if (st->prev_gen > 0 && (!st->have || st->prev_gen != st->m.gen)) {
        snprintf(ttl, sizeof(ttl), "%u", keep_old);
        if (gen_op(rc, "EXPIRE", ttl, lid, st->prev_gen, st->prev_k) < 0
            || hdel(rc, lid, "prev_gen", "prev_k", NULL))
            return -1;
        st->prev_gen = 0;
    }
    return 0;
}

/* ---- lock ----------------------------------------------------------- */

static int lock_take(redisContext *rc, const char *lid, char token[33])
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

static void lock_release(redisContext *rc, const char *lid,
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

typedef struct {
    crl_ent *e;
    size_t n, cap;
    int nomem;
} ents_t;

/* 32 lower-case hex digits (as jpki_crl_foreach writes them) to 16 octets,
 * by table: it runs once per entry. */
static int id_decode(const char *h, uint8_t *out)
{
    static int8_t tab[256];
    unsigned bad = 0;
    size_t i;

    if (tab[0] == 0) {
        for (i = 0; i < 256; i++)
            tab[i] = -1;
        for (i = 0; i < 10; i++)
            tab['0' + i] = (int8_t)i;
        for (i = 0; i < 6; i++)
            tab['a' + i] = (int8_t)(10 + i);
    }
    for (i = 0; i < JPKI_CERT_ID_LEN; i++) {
        int hi = tab[(uint8_t)h[2 * i]], lo = tab[(uint8_t)h[2 * i + 1]];

        bad |= (unsigned)(hi | lo) & 0x80u;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return bad ? -1 : 0;
}

static int collect(void *ud, const jpki_crl_entry *ce)
{
    ents_t *s = ud;
    crl_ent *x;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        crl_ent *ne = realloc(s->e, cap * sizeof(crl_ent));

        if (ne == NULL) {
            s->nomem = 1;
            return 1;
        }
        s->e = ne;
        s->cap = cap;
    }
    x = &s->e[s->n];
    if (id_decode(ce->cert_id, x->id) != 0)
        return 1;
    x->at = ce->revoked_at < 0 ? 0 : ce->revoked_at > (int64_t)UINT32_MAX
            ? UINT32_MAX : (uint32_t)ce->revoked_at;
    x->reason = (int8_t)ce->reason;
    s->n++;
    return 0;
}

/* By cert_id; for one cert_id a final revocation sorts before a hold (as
 * the core's index: the final one wins). */
static int ent_cmp(const void *a, const void *b)
{
    const crl_ent *x = a, *y = b;
    int c = memcmp(x->id, y->id, sizeof(x->id));

    if (c != 0)
        return c;
    return (x->reason == JPKI_REASON_CERTIFICATE_HOLD)
           - (y->reason == JPKI_REASON_CERTIFICATE_HOLD);
}

/* Sorts by the first two octets with a counting pass, then each (small)
 * group with qsort; drops duplicates. */
static int sort_unique(ents_t *s)
{
    size_t *cnt, i, k = 0, tot = 0;
    crl_ent *out;

    if (s->n == 0)
        return 0;
    cnt = calloc(65537, sizeof(size_t));
    out = malloc(s->n * sizeof(crl_ent));
    if (cnt == NULL || out == NULL) {
        free(cnt);
        free(out);
        return -1;
    }
    for (i = 0; i < s->n; i++)
        cnt[(size_t)s->e[i].id[0] << 8 | s->e[i].id[1]]++;
    for (i = 0; i < 65536; i++) {
        size_t c = cnt[i];
        cnt[i] = tot;
        tot += c;
    }
    cnt[65536] = tot;
    for (i = 0; i < s->n; i++)
        out[cnt[(size_t)s->e[i].id[0] << 8 | s->e[i].id[1]]++] = s->e[i];
    /* cnt[g] is now the end of group g */
    for (i = 0, tot = 0; i < 65536; i++) {
        if (cnt[i] - tot > 1)
            qsort(out + tot, cnt[i] - tot, sizeof(crl_ent), ent_cmp);
        tot = cnt[i];
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

/* The fewest buckets (smallest k) whose largest holds at most limit
 * fields, so that every bucket keeps Redis's compact listpack encoding. */
static unsigned choose_k(const ents_t *s, unsigned long limit)
{
    unsigned k;
    size_t i, run, max;

    for (k = JPKI_CRL_K_MIN; k < JPKI_CRL_K_MAX; k++) {
        for (i = 1, run = 1, max = s->n > 0; i < s->n; i++) {
            run = jpki_crl_bucket(s->e[i].id, k) == jpki_crl_bucket(s->e[i - 1].id, k)
                  ? run + 1 : 1;
            if (run > max)
                max = run;
        }
        if (max <= limit)
            break;
    }
    return k;
}

/* hash-max-listpack-entries (hash-max-ziplist-entries before Redis 7), or
 * 128 when CONFIG is not allowed; at most BUCKET_MAX even when the server
 * allows more (Redis 7's built-in default is 512): a field written to a
 * listpack is first searched for, so filling buckets of n fields costs
 * n^2/2 comparisons each; 256 keeps a 1,000,000-entry load near its
 * memory optimum without making it slow. */
static unsigned long listpack_limit(redisContext *rc)
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

/* ---- sync ----------------------------------------------------------- */

typedef struct {
    const args_t *a;
    jpki_ctx *ctx;
    unsigned grace, keep_old, timeout;
    size_t max_size;
    int arl;
    char source[512];         /* redacted */
} sync_cfg;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Writes the buckets of generation gen; 0, -1 on failure. */
static int write_buckets(redisContext *rc, const char *lid, long long gen,
                         unsigned k, const ents_t *s, const char *token)
{
    char key[JPKI_STORE_KEY_MAX + 1], lock[JPKI_STORE_KEY_MAX + 1], ttl[16];
    long long expect = (long long)s->n;
    double last = mono();
    size_t i, j;
    pipe_t p;
    int rc_ = 0;

    crl_key_lock(lock, lid);
    snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
    pipe_init(&p, rc);
    for (i = 0; i < s->n && rc_ == 0; i = j) {
        unsigned long b = jpki_crl_bucket(s->e[i].id, k);

        for (j = i + 1; j < s->n && jpki_crl_bucket(s->e[j].id, k) == b; j++)
            ;
        crl_key_bucket_n(key, lid, gen, k, b);
        pipe_begin(&p, 2 + 2 * (j - i));
        pipe_arg(&p, "HSET", 4);
        pipe_arg_str(&p, key);
        for (; i < j; i++) {
            uint8_t v[JPKI_CRL_VALUE_LEN];
            size_t fl;
            const uint8_t *f = jpki_crl_field(s->e[i].id, k, &fl);

            jpki_crl_value_pack(v, s->e[i].reason, s->e[i].at);
            pipe_arg(&p, f, fl);
            pipe_arg(&p, v, sizeof(v));
        }
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

/* The new pointer and record, switched atomically when the pointer is still
 * the one read at the start (WATCH). 0 switched, -1 store failure, -2 the
 * pointer changed meanwhile.  Every failure ends the WATCH, and after MULTI
 * the transaction (DISCARD): otherwise the clean-up commands that follow
 * would only be queued, and the lock would stay taken. */
static int switch_pointer(redisContext *rc, const char *lid,
                          const list_state *st, const jpki_crlptr *m,
                          const char *fields[][2], size_t nf)
{
    char km[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
    char val[JPKI_CRLPTR_MAX + 1];
    const char *argv[64], *undo = "UNWATCH";
    redisReply *r = NULL;
    size_t i, n = 0;
    int same, ret = -1;

    crl_key_meta(km, lid);
    crl_key_info(ki, lid);
    if (jpki_crlptr_format(m, val, sizeof(val)) < 0 || 2 + 2 * nf > 64)
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
    {
        const char *s[3] = {"SET", km, val};
        if (cmd_ok(rc, 3, s, NULL, NULL) != 0)
            goto fail;
    }
    argv[n++] = "HSET";
    argv[n++] = ki;
    for (i = 0; i < nf; i++) {
        argv[n++] = fields[i][0];
        argv[n++] = fields[i][1];
    }
    if (cmd_ok(rc, (int)n, argv, NULL, NULL) != 0)
        goto fail;
    {
        const char *h[5] = {"HDEL", ki, "loading_gen", "loading_k",
                            "loading_since"};
        if (cmd_ok(rc, 5, h, NULL, NULL) != 0)
            goto fail;
    }
    /* EXEC ends the transaction and the WATCH, whatever it answers */
    if (cmd_ok(rc, 1, (const char *[]){"EXEC"}, NULL, &r) != 0)
        return -1;
    same = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    return same ? 0 : -2;
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

/* The core reads a cRLNumber that is negative or over 2^63-1 as none
 * (jpki_crl_info: -1), and such a CRL would then be compared by its
 * thisUpdate alone; RFC 5280 allows 20 octets, but the store's pointer and
 * the gate hold an int64: it is refused.  0 when the CRL has no cRLNumber
 * or one within 0..2^63-1, -1 otherwise.  The walk over tbsCertList skips
 * each element by its length: the entries are not parsed again. */
static int crl_number_fits(const uint8_t *der, size_t len)
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
                    unsigned k, long long loaded_at)
{
    memset(m, 0, sizeof(*m));
    m->gen = gen;
    m->k = k;
    m->this_update = info->this_update;
    m->next_update = info->next_update;
    m->crl_number = info->crl_number;
    m->entries = info->entries;
    m->loaded_at = loaded_at;
}

/* One check: fetch, verify, compare, load.  The result line in line. */
static int sync_once(const sync_cfg *c, char *line, size_t ln)
{
    char detail[512] = "", lid[CRL_LID_MAX], sha[65], err[512] = "";
    char idc[JPKI_CERT_ID_HEX_LEN + 1], token[33] = "";
    char gens[24], ks[8], nums[24], tus[24], nus[24], ents_s[24], stored[24];
    char at[24], prevg[24], prevk[8], mval[JPKI_CRLPTR_MAX + 1];
    uint8_t *buf = NULL, *der = NULL, md[32];
    unsigned int mdlen = 0;
    size_t len = 0, derlen = 0;
    time_t now = time(NULL);
    double t0 = mono();
    redisContext *rc = NULL;
    redisReply *r = NULL;
    ents_t s = {NULL, 0, 0, 0};
    jpki_crl_info info;
    list_state st;
    jpki_crlptr m;
    const char *why, *name;
    long long gen = 0;
    unsigned k = 0;
    int rc_ = EXIT_STORE, stale, e2, loading = 0;
    jpki_err e;

    line[0] = '\0';
    if (crl_fetch(c->a->val[O_SOURCE], c->max_size, c->timeout, &buf, &len,
                  err, sizeof(err)) != 0) {
        addf(line, ln, "fetch_failed source=%s error=\"%s\"", c->source, err);
        return EXIT_FETCH;
    }
    memset(&info, 0, sizeof(info));
    e = jpki_crl_verify(c->ctx, buf, len, now, c->grace, &info, detail,
                        sizeof(detail));
    if (e != JPKI_OK && e != JPKI_ERR_CRL_STALE) {
        addf(line, ln, "invalid source=%s reason=%s detail=\"%s\"",
             c->source, jpki_reason(e), detail[0] ? detail
                                                  : jpki_strerror(e));
        rc_ = EXIT_INVALID;
        goto out;
    }
    stale = e == JPKI_ERR_CRL_STALE;
    name = jpki_issuer_name(info.issuer);
    list_id(info.issuer, c->arl, lid);
    if (jpki_to_der(buf, len, "X509 CRL", JPKI_CRL_MAX, &der, &derlen)
        != JPKI_OK
        || EVP_Digest(der, derlen, md, &mdlen, EVP_sha256(), NULL) != 1
        || jpki_cert_id_from_serial_text(c->ctx, info.issuer,
                                         ID_CHECK_SERIAL, idc) != JPKI_OK) {
        addf(line, ln, "invalid source=%s reason=internal", c->source);
        rc_ = EXIT_INVALID;
        goto out;
    }
    free(buf);
    buf = NULL;
    jpki_hex_encode(md, mdlen, sha);

    /* what the pointer cannot hold is refused before anything is written:
     * a pointer that does not parse back would stop every later sync */
    if (crl_number_fits(der, derlen) != 0) {
        addf(line, ln, "invalid issuer=%s reason=crl_number detail=\""
             "cRLNumber negative or over 9223372036854775807 (2^63-1): the "
             "store holds a 64-bit number\"", name);
        rc_ = EXIT_INVALID;
        goto out;
    }
    meta_of(&m, &info, LLONG_MAX, JPKI_CRL_K_MAX, (long long)now);
    if (jpki_crlptr_format(&m, mval, sizeof(mval)) < 0) {
        addf(line, ln, "invalid issuer=%s reason=unsupported detail=\"a date "
             "or count out of the store pointer's range\"", name);
        describe(line, ln, &info);
        rc_ = EXIT_INVALID;
        goto out;
    }

    if ((rc = redis_open(c->a)) == NULL) {
        addf(line, ln, "store_failed issuer=%s error=\"cannot connect\"",
             name);
        goto out;
    }
    e2 = lock_take(rc, lid, token);
    if (e2 != 0) {
        token[0] = '\0';
        addf(line, ln, "store_failed issuer=%s error=\"%s\"", name, e2 == -2
             ? "busy: another crl sync is loading this list" : "lock");
        goto out;
    }
    e2 = read_state(rc, lid, &st);
    if (e2 == -2) {
        addf(line, ln, "store_failed issuer=%s error=\"the pointer "
             "jpki:v1:crlmeta:%s does not parse\"", name, lid);
        goto out;
    }
    if (e2 != 0 || recover(rc, lid, &st, c->keep_old) != 0) {
        addf(line, ln, "store_failed issuer=%s error=\"reading the loaded "
             "state\"", name);
        goto out;
    }
    /* the gate refuses a list whose id_check is not its own, also one
     * without id_check: such a list is replaced whatever its number, or
     * it would stay unusable until a newer CRL is published */
    if (st.have && strcmp(st.id_check, idc) != 0)
        say("warning: the loaded CRL of %s %s; replacing it", name,
            st.id_check[0] ? "was made with another secret or other CA files"
                           : "has no id_check");
    if (st.have && strcmp(st.id_check, idc) == 0) {
        crl_cmp cmp = compare(&info, sha, &st, &why);

        if (cmp == CMP_CONFLICT) {
            addf(line, ln, "invalid issuer=%s reason=crl_number detail=\"%s\"",
                 name, why);
            describe(line, ln, &info);
            rc_ = EXIT_INVALID;
            goto out;
        }
        if (cmp != CMP_NEWER) {
            int old_stale = stale_at(&st.m, now, c->grace);

            addf(line, ln, "%s issuer=%s", old_stale ? "stale"
                 : cmp == CMP_SAME ? "unchanged" : "older", name);
            describe(line, ln, &info);
            addf(line, ln, " loaded_crl_number=%lld%s",
                 (long long)st.m.crl_number,
                 old_stale ? " detail=\"nothing newer than the loaded CRL, "
                             "which is past nextUpdate + grace\"" : "");
            rc_ = old_stale ? EXIT_INVALID : EXIT_NOT_NEWER;
            goto out;
        }
    }

    /* entries: cert_ids of every key generation, sorted, unique */
    e = jpki_crl_foreach(c->ctx, der, derlen, collect, &s);
    free(der);
    der = NULL;
    if (e != JPKI_OK || sort_unique(&s) != 0) {
        addf(line, ln, "invalid issuer=%s reason=%s", name,
             s.nomem ? "out_of_memory" : jpki_reason(e));
        rc_ = EXIT_INVALID;
        goto out;
    }
    k = choose_k(&s, listpack_limit(rc));

    /* a new generation */
    {
        char kg[JPKI_STORE_KEY_MAX + 1], ki[JPKI_STORE_KEY_MAX + 1];
        char since[24];
        const char *v[8] = {"HSET", ki, "loading_gen", gens, "loading_k", ks,
                            "loading_since", since};

        crl_key_gen(kg, lid);
        crl_key_info(ki, lid);
        if (cmd2(rc, "INCR", kg, &r) != 0 || r->type != REDIS_REPLY_INTEGER) {
            addf(line, ln, "store_failed issuer=%s error=\"INCR\"", name);
            goto out;
        }
        gen = r->integer;
        freeReplyObject(r);
        r = NULL;
        snprintf(gens, sizeof(gens), "%lld", gen);
        snprintf(ks, sizeof(ks), "%u", k);
        snprintf(since, sizeof(since), "%lld", (long long)now);
        if (cmd_ok(rc, 8, v, NULL, NULL) != 0) {
            addf(line, ln, "store_failed issuer=%s error=\"HSET\"", name);
            goto out;
        }
        loading = 1;
    }
    if (write_buckets(rc, lid, gen, k, &s, token) != 0) {
        addf(line, ln, "store_failed issuer=%s error=\"writing the entries\"",
             name);
        goto out;
    }

    /* switch */
    meta_of(&m, &info, gen, k, (long long)time(NULL));
    snprintf(nums, sizeof(nums), "%lld", (long long)info.crl_number);
    snprintf(tus, sizeof(tus), "%lld", (long long)info.this_update);
    snprintf(nus, sizeof(nus), "%lld", (long long)info.next_update);
    snprintf(ents_s, sizeof(ents_s), "%llu",
             (unsigned long long)info.entries);
    snprintf(stored, sizeof(stored), "%zu", s.n);
    snprintf(at, sizeof(at), "%lld", (long long)m.loaded_at);
    snprintf(prevg, sizeof(prevg), "%lld",
             (long long)(st.have ? st.m.gen : 0));
    snprintf(prevk, sizeof(prevk), "%u", st.have ? st.m.k : 0);
    {
        const char *f[][2] = {
            {"issuer", name}, {"kind", c->arl ? "arl" : "crl"},
            {"gen", gens}, {"k", ks}, {"crl_number", nums},
            {"this_update", tus}, {"next_update", nus},
            {"entries", ents_s}, {"stored", stored},
            {"source", c->source}, {"loaded_at", at}, {"sha256", sha},
            {"id_check", idc}, {"prev_gen", prevg}, {"prev_k", prevk},
        };
        size_t nf = sizeof(f) / sizeof(f[0]) - (st.have ? 0 : 2);

        e2 = switch_pointer(rc, lid, &st, &m, f, nf);
    }
    if (e2 != 0) {
        addf(line, ln, "store_failed issuer=%s error=\"%s\"", name, e2 == -2
             ? "the loaded CRL changed meanwhile (purge or another sync)"
             : "switching the pointer");
        goto out;
    }
    loading = 0;

    /* the replaced generation expires once readers are done with it */
    if (st.have) {
        char ttl[24];

        snprintf(ttl, sizeof(ttl), "%u", c->keep_old);
        if (gen_op(rc, "EXPIRE", ttl, lid, st.m.gen, st.m.k) < 0
            || hdel(rc, lid, "prev_gen", "prev_k", NULL) != 0)
            say("warning: the replaced generation %lld was not given its "
                "expiry; the next crl sync does it", (long long)st.m.gen);
    }
    addf(line, ln, "%s issuer=%s", stale ? "stale" : "loaded", name);
    describe(line, ln, &info);
    addf(line, ln, " stored=%zu k=%u gen=%lld seconds=%.2f", s.n, k, gen,
         mono() - t0);
    if (stale)
        addf(line, ln, " detail=\"loaded (newer than the store's) but past "
             "nextUpdate + grace\"");
    rc_ = stale ? EXIT_INVALID : EXIT_VALID;
out:
    if (loading && rc != NULL && !rc->err) {   /* the old set stays */
        if (gen_op(rc, "UNLINK", NULL, lid, gen, k) >= 0)
            hdel(rc, lid, "loading_gen", "loading_k", "loading_since");
    }
    if (token[0])
        lock_release(rc, lid, token);
    redisFree(rc);
    free(s.e);
    free(der);
    free(buf);
    return rc_;
}

int run_crl_sync(const args_t *a)
{
    unsigned long long grace, keep, maxs, tmo, watch;
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
        || opt_uint(a, O_WATCH, 1, 7 * 86400, 0, &watch))
        return SHOW_USAGE;
    memset(&c, 0, sizeof(c));
    c.a = a;
    c.grace = (unsigned)grace;
    c.keep_old = (unsigned)keep;
    c.max_size = (size_t)maxs;
    c.timeout = (unsigned)tmo;
    c.arl = (a->seen & BIT(O_ARL)) != 0;
    source_redact(a->val[O_SOURCE], c.source, sizeof(c.source));
    if (strchr(c.source, '"') != NULL || strchr(c.source, ' ') != NULL) {
        say("--source: no spaces or quotes (percent-encode them)");
        return SHOW_USAGE;
    }
    if ((c.ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if (watch == 0) {
        rc = sync_once(&c, line, sizeof(line));
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

/* ---- SCAN ------------------------------------------------------------- */

/* One page of SCAN: 0 with the next cursor in cursor, -1 with a message.
 * The reply must be an array of the cursor (a string of digits) and an
 * array of key names (strings): anything else, from a proxy or a broken
 * server, is refused, as an integer key would be a NULL name and an
 * integer cursor "(null)", which never ends the scan. */
static int scan_page(redisContext *rc, const char *match,
                     char cursor[32], redisReply **page)
{
    redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT " SCAN_COUNT,
                                 cursor, match), *c, *k;
    size_t i;

    *page = NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        say("redis: SCAN failed: %.120s", r != NULL ? r->str : rc->errstr);
        freeReplyObject(r);
        return -1;
    }
    c = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[0]
                                                          : NULL;
    k = c != NULL ? r->element[1] : NULL;
    for (i = 0; k != NULL && k->type == REDIS_REPLY_ARRAY
                && i < k->elements; i++)
        if (k->element[i]->type != REDIS_REPLY_STRING)
            break;
    if (c == NULL || c->type != REDIS_REPLY_STRING || c->len >= 32
        || !all_digits(c->str, c->len) || k->type != REDIS_REPLY_ARRAY
        || i < k->elements) {
        say("redis: SCAN answered an unexpected reply (not a cursor and an "
            "array of key names)");
        freeReplyObject(r);
        return -1;
    }
    memcpy(cursor, c->str, c->len + 1);
    *page = r;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key matching, sorted, each once: SCAN may return a key more than
 * once. */
static int scan_keys(redisContext *rc, const char *match, char ***keys,
                     size_t *n)
{
    char cursor[32] = "0";
    size_t cap = 0, i, j;

    *keys = NULL;
    *n = 0;
    do {
        redisReply *r;

        if (scan_page(rc, match, cursor, &r) != 0)
            return -1;
        for (i = 0; i < r->element[1]->elements; i++) {
            if (*n == cap) {
                char **nk = realloc(*keys, (cap = cap ? cap * 2 : 64)
                                           * sizeof(char *));
                if (nk == NULL) {
                    freeReplyObject(r);
                    return -1;
                }
                *keys = nk;
            }
            if (((*keys)[*n] = strdup(r->element[1]->element[i]->str))
                == NULL) {
                freeReplyObject(r);
                return -1;
            }
            (*n)++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (*n > 1)
        qsort(*keys, *n, sizeof(char *), str_cmp);
    for (i = 1, j = 0; i < *n; i++) {
        if (strcmp((*keys)[i], (*keys)[j]) == 0)
            free((*keys)[i]);
        else
            (*keys)[++j] = (*keys)[i];
    }
    if (*n > 0)
        *n = j + 1;
    return 0;
}

static void free_keys(char **keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* ---- status ----------------------------------------------------------- */

int run_crl_status(const args_t *a)
{
    unsigned long long grace;
    size_t plen = strlen(JPKI_STORE_PREFIX "crlmeta:"), n = 0, i, j;
    char **keys = NULL, t1[32], t2[32], t3[32];
    jpki_ctx *ctx = NULL;
    redisContext *rc;
    int bad = 0, rc_ = EXIT_STORE;

    if (opt_uint(a, O_GRACE, 0, GRACE_MAX, DEFAULT_GRACE, &grace))
        return SHOW_USAGE;
    if (a->val[O_SECRET] != NULL && a->n_issuer == 0) {
        say("--secret-file needs the gate's --issuer");
        return SHOW_USAGE;
    }
    if (a->n_issuer > 0 && (ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if ((rc = redis_open(a)) == NULL)
        goto out;
    if (scan_keys(rc, JPKI_STORE_PREFIX "crlmeta:*", &keys, &n) != 0)
        goto out;
    for (i = 0; i < n; i++) {
        const char *lid = keys[i] + plen, *name = NULL;
        const jpki_issuer *is = NULL;
        char idc[JPKI_CERT_ID_HEX_LEN + 1];
        list_state st;
        int s;

        if (strlen(keys[i]) <= plen || strlen(lid) >= CRL_LID_MAX)
            continue;
        s = read_state(rc, lid, &st);
        if (s == -1)
            goto out;
        if (s == -2 || !st.have) {
            printf("broken list=%s detail=\"the pointer does not parse\"\n",
                   lid);
            bad = 1;
            continue;
        }
        for (j = 0; ctx != NULL && j < jpki_ctx_issuer_count(ctx); j++)
            if (strncmp(lid, jpki_issuer_tag(jpki_ctx_issuer(ctx, j)), 16)
                == 0) {
                is = jpki_ctx_issuer(ctx, j);
                name = jpki_issuer_name(is);
            }
        /* the gate refuses a list whose id_check is not its own: with the
         * gate's secret file, say so rather than "fresh" */
        if (is != NULL && a->val[O_SECRET] != NULL
            && (jpki_cert_id_from_serial_text(ctx, is, ID_CHECK_SERIAL, idc)
                != JPKI_OK || strcmp(idc, st.id_check) != 0)) {
            printf("mismatch issuer=%s list=%s kind=%s detail=\"%s: loaded "
                   "with another --secret-file or other CA files; the gate "
                   "treats it as unavailable; run crl sync with the gate's "
                   "files\"\n", name, lid, st.kind[0] ? st.kind : "crl",
                   st.id_check[0] ? "id_check differs" : "no id_check");
            bad = 1;
            continue;
        }
        s = stale_at(&st.m, a->now, (unsigned)grace);
        bad |= s;
        printf("%s issuer=%s list=%s kind=%s crl_number=%lld this_update=%s "
               "next_update=%s age=%llds entries=%llu loaded_at=%s "
               "source=%s\n", s ? "stale" : "fresh",
               name ? name : st.issuer[0] ? st.issuer : "?", lid,
               st.kind[0] ? st.kind : "crl", (long long)st.m.crl_number,
               iso8601(st.m.this_update, t1),
               st.m.next_update ? iso8601(st.m.next_update, t2) : "none",
               (long long)a->now - st.m.this_update,
               (unsigned long long)st.m.entries,
               iso8601(st.m.loaded_at, t3), st.source[0] ? st.source : "?");
    }
    for (j = 0; ctx != NULL && j < jpki_ctx_issuer_count(ctx); j++) {
        const jpki_issuer *is = jpki_ctx_issuer(ctx, j);
        char lid[CRL_LID_MAX];
        int found = 0;

        list_id(is, 0, lid);
        for (i = 0; i < n && !found; i++)
            found = strcmp(keys[i] + plen, lid) == 0;
        if (!found) {
            printf("missing issuer=%s list=%s\n", jpki_issuer_name(is), lid);
            bad = 1;
        }
    }
    if (n == 0 && ctx == NULL) {
        printf("missing detail=\"no CRL loaded\"\n");
        bad = 1;
    }
    rc_ = bad ? EXIT_INVALID : EXIT_VALID;
out:
    free_keys(keys, n);
    redisFree(rc);
    jpki_ctx_free(ctx);
    return rc_;
}

/* ---- purge --revocation ------------------------------------------------ */

/* SCAN MATCH pattern + UNLINK of each page; the keys unlinked are added to
 * *total as they go, also when a later page fails.  0, -1 on failure. */
static int unlink_matching(redisContext *rc, const char *match,
                           long long *total)
{
    char cursor[32] = "0";

    do {
        redisReply *r, *u;
        const char **argv;
        size_t *lens, i, nk;

        if (scan_page(rc, match, cursor, &r) != 0)
            return -1;
        nk = r->element[1]->elements;
        if (nk > 0) {
            argv = malloc((nk + 1) * sizeof(char *));
            lens = malloc((nk + 1) * sizeof(size_t));
            if (argv == NULL || lens == NULL) {
                free(argv);
                free(lens);
                freeReplyObject(r);
                return -1;
            }
            argv[0] = "UNLINK";
            lens[0] = 6;
            for (i = 0; i < nk; i++) {
                argv[i + 1] = r->element[1]->element[i]->str;
                lens[i + 1] = r->element[1]->element[i]->len;
            }
            u = redisCommandArgv(rc, (int)nk + 1, argv, lens);
            free(argv);
            free(lens);
            if (u == NULL || u->type != REDIS_REPLY_INTEGER) {
                say("redis: UNLINK failed%s%.120s", u && u->str ? ": " : "",
                    u && u->str ? u->str : "");
                freeReplyObject(u);
                freeReplyObject(r);
                return -1;
            }
            *total += u->integer;       /* a key SCAN repeats counts once */
            freeReplyObject(u);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int run_purge(const args_t *a)
{
    static const char *const pat[3] = {JPKI_STORE_PREFIX "crl*",
                                       JPKI_STORE_PREFIX "rev:*",
                                       JPKI_STORE_PREFIX "soft:*"};
    long long n[3] = {0, 0, 0};
    redisContext *rc;
    int i;

    if (!!a->val[O_REDIS] + !!a->val[O_MAP_FILE] != 1) {
        say("give one of --redis or --map-file");
        return SHOW_USAGE;
    }
    if (a->val[O_MAP_FILE] != NULL) {
        printf("nothing to purge: the mapping file holds no revocation data; "
               "with the embedded store, cached answers and soft-pass records "
               "live in the servers' shared memory (restart the servers to "
               "erase them) and CRLs in the files the modules load (delete "
               "them)\n");
        return EXIT_VALID;
    }
    if ((rc = redis_open(a)) == NULL)
        return EXIT_STORE;
    for (i = 0; i < 3; i++)
        if (unlink_matching(rc, pat[i], &n[i]) != 0) {
            redisFree(rc);
            printf("store_failed purged %lld keys before the failure: "
                   "crl=%lld rev=%lld soft=%lld (run it again)\n",
                   n[0] + n[1] + n[2], n[0], n[1], n[2]);
            return EXIT_STORE;
        }
    redisFree(rc);
    printf("purged %lld keys: crl=%lld rev=%lld soft=%lld\n",
           n[0] + n[1] + n[2], n[0], n[1], n[2]);
    return EXIT_VALID;
}

/* ---- recheck ---------------------------------------------------------- */

typedef struct {
    char tag[17];
    const jpki_issuer *is;
    int state;                /* 0 unknown, 1 loaded, 2 no CRL */
    int stale;                /* loaded, past nextUpdate + --grace */
    jpki_crlptr m;
} rc_list;

typedef struct {
    char key[JPKI_STORE_KEY_MAX + 1];
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    uint8_t id[JPKI_CERT_ID_LEN];
    long long auth_time;
    rc_list *list;
    const char *unchecked;    /* why it could not be decided */
    int older;                /* the CRL predates the latest soft pass */
    int listed;               /* in the CRL: reason (-1 none), date */
    int reason;
    int64_t at;
} soft_rec;

/* jpki:v1:soft:<cert_id>:<day> (the day's first second, UTC; older gates
 * wrote the time of the pass) */
static int parse_soft_key(const char *k, soft_rec *s)
{
    size_t pl = strlen(JPKI_STORE_PREFIX "soft:"), n;
    const char *id = k + pl, *t;

    if (strlen(k) <= pl + JPKI_CERT_ID_HEX_LEN + 1
        || strspn(id, "0123456789abcdef") != JPKI_CERT_ID_HEX_LEN
        || id[JPKI_CERT_ID_HEX_LEN] != ':')
        return -1;
    t = id + JPKI_CERT_ID_HEX_LEN + 1;
    if (!all_digits(t, strlen(t)) || strlen(t) > 12)
        return -1;
    memcpy(s->cert_id, id, JPKI_CERT_ID_HEX_LEN);
    s->cert_id[JPKI_CERT_ID_HEX_LEN] = '\0';
    s->auth_time = strtoll(t, NULL, 10);
    return jpki_hex_decode(id, JPKI_CERT_ID_HEX_LEN, s->id, sizeof(s->id),
                           &n) == JPKI_OK && n == sizeof(s->id) ? 0 : -1;
}

/* The issuer tag of a soft record's JSON ("issuer":"<16 hex>"). */
static int soft_issuer(const char *json, size_t n, char tag[17])
{
    static const char pat[] = "\"issuer\":\"";
    const char *p = memmem(json, n, pat, sizeof(pat) - 1);

    if (p == NULL || (size_t)(json + n - p) < sizeof(pat) - 1 + 17)
        return -1;
    p += sizeof(pat) - 1;
    if (strspn(p, "0123456789abcdef") < 16 || p[16] != '"')
        return -1;
    memcpy(tag, p, 16);
    tag[16] = '\0';
    return 0;
}

/* The latest soft pass a record stands for: its JSON "ts" (the gate keeps
 * one record per certificate and day, rewritten by each pass), never
 * before the key's time. */
static long long soft_latest(const char *json, size_t n, long long key_time)
{
    static const char pat[] = "\"ts\":";
    const char *p = memmem(json, n, pat, sizeof(pat) - 1);
    long long ts = 0;
    size_t i;

    if (p == NULL)
        return key_time;
    p += sizeof(pat) - 1;
    for (i = 0; p + i < json + n && i < 12 && p[i] >= '0' && p[i] <= '9'; i++)
        ts = ts * 10 + (p[i] - '0');
    return i > 0 && ts > key_time ? ts : key_time;
}

/* Reads each configured issuer's pointer and checks that its cert_ids
 * were made with this secret and these CA files.  0, -1 store, -2
 * mismatch. */
static int recheck_lists(redisContext *rc, jpki_ctx *ctx, rc_list *l,
                         size_t nl)
{
    size_t i;

    for (i = 0; i < nl; i++) {
        char idc[JPKI_CERT_ID_HEX_LEN + 1];
        list_state st;
        int s = read_state(rc, l[i].tag, &st);

        if (s == -1)
            return -1;
        l[i].state = s == 0 && st.have ? 1 : 2;
        l[i].m = st.m;
        /* as the gate: a list without its id_check proves nothing either */
        if (l[i].state == 1
            && (st.id_check[0] == '\0'
                || jpki_cert_id_from_serial_text(ctx, l[i].is,
                                                 ID_CHECK_SERIAL, idc)
                   != JPKI_OK
                || strcmp(idc, st.id_check) != 0)) {
            say("the CRL of issuer %s %s: its cert_ids cannot be trusted to "
                "match; give the gate's (and crl sync's) secret file and CA "
                "files, and sync it again", jpki_issuer_name(l[i].is),
                st.id_check[0] ? "was loaded with another --secret-file or "
                "other CA files" : "has no id_check");
            return -2;
        }
    }
    return 0;
}

typedef struct {
    unsigned long long records, revoked, unchecked, good;
} rc_count;

/* One page of soft keys: GET each, look each up, write rev keys. */
static int recheck_page(redisContext *rc, jpki_ctx *ctx, rc_list *l,
                        size_t nl, char **keys, size_t nk, time_t now,
                        rc_count *cnt)
{
    const jpki_policy *pol = jpki_ctx_get_policy(ctx);
    soft_rec *s = calloc(nk ? nk : 1, sizeof(soft_rec));
    char t1[32], t2[32];
    size_t i, j;
    int ret = -1;

    if (s == NULL)
        return -1;
    for (i = 0; i < nk; i++) {
        snprintf(s[i].key, sizeof(s[i].key), "%s", keys[i]);
        if (parse_soft_key(keys[i], &s[i]) != 0)
            s[i].unchecked = "malformed_record";
        else if (redisAppendCommand(rc, "GET %s", keys[i]) != REDIS_OK)
            goto out;
    }
    for (i = 0; i < nk; i++) {                  /* the records' JSON */
        redisReply *r = NULL;
        char tag[17];

        if (s[i].unchecked != NULL)
            continue;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
            goto out;
        if (r->type != REDIS_REPLY_STRING)
            s[i].unchecked = r->type == REDIS_REPLY_NIL ? "expired"
                                                          : "malformed_record";
        else if (soft_issuer(r->str, r->len, tag) != 0)
            s[i].unchecked = "malformed_record";
        else {
            s[i].auth_time = soft_latest(r->str, r->len, s[i].auth_time);
            for (j = 0; j < nl && strcmp(l[j].tag, tag) != 0; j++)
                ;
            s[i].list = j < nl ? &l[j] : NULL;
            if (s[i].list == NULL)
                s[i].unchecked = "issuer_not_configured";
            else if (s[i].list->state != 1)
                s[i].unchecked = "no_crl";
            else
                s[i].older = s[i].list->m.this_update < s[i].auth_time;
        }
        freeReplyObject(r);
    }
    for (i = 0; i < nk; i++) {                  /* the CRL lookups */
        char key[JPKI_STORE_KEY_MAX + 1];
        const char *argv[3] = {"HGET", key, NULL};
        size_t lens[3], fl;

        if (s[i].unchecked != NULL)
            continue;
        crl_key_bucket(key, s[i].list->tag, s[i].list->m.gen,
                       s[i].list->m.k, s[i].id);
        argv[2] = (const char *)jpki_crl_field(s[i].id, s[i].list->m.k, &fl);
        lens[0] = 4;
        lens[1] = strlen(key);
        lens[2] = fl;
        if (redisAppendCommandArgv(rc, 3, argv, lens) != REDIS_OK)
            goto out;
    }
    for (i = 0; i < nk; i++) {                  /* their answers */
        redisReply *r = NULL;

        if (s[i].unchecked != NULL)
            continue;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
            goto out;
        /* listed: revoked now, however old the CRL (the usual case after
         * an outage); not listed proves nothing about a login after the
         * CRL's thisUpdate */
        if (r->type == REDIS_REPLY_STRING
            && jpki_crl_value_unpack((const uint8_t *)r->str, r->len, &s[i].reason, &s[i].at) == 0)
            s[i].listed = 1;
        else if (r->type != REDIS_REPLY_NIL)
            s[i].unchecked = "malformed_crl_entry";
        else if (s[i].older)
            s[i].unchecked = "crl_older_than_login";
        else if (s[i].list->stale)      /* as stale as what the login had */
            s[i].unchecked = "crl_stale";
        freeReplyObject(r);
    }
    for (i = 0; i < nk; i++) {                  /* report, cache */
        char key[JPKI_STORE_KEY_MAX + 1], val[128];
        unsigned long long ttl;
        redisReply *w;
        int hold, reason = s[i].reason, ok;

        if (s[i].unchecked != NULL && strcmp(s[i].unchecked, "expired") == 0)
            continue;
        cnt->records++;
        if (s[i].unchecked != NULL) {
            printf("unchecked cert_id=%s auth_time=%s why=%s\n",
                   s[i].cert_id, iso8601(s[i].auth_time, t1),
                   s[i].unchecked);
            cnt->unchecked++;
            continue;
        }
        if (!s[i].listed) {
            cnt->good++;
            continue;
        }
        hold = reason == JPKI_REASON_CERTIFICATE_HOLD;
        if (reason < 0)
            reason = JPKI_REASON_UNSPECIFIED;
        printf("revoked cert_id=%s issuer=%s reason=%s revoked_at=%s "
               "auth_time=%s\n", s[i].cert_id,
               jpki_issuer_name(s[i].list->is), jpki_reason_name(reason),
               iso8601(s[i].at, t1), iso8601(s[i].auth_time, t2));
        cnt->revoked++;
        ttl = (unsigned long long)(hold ? pol->ocsp_hold_ttl
                                        : pol->ocsp_revoked_ttl) * 1000;
        if (ttl == 0)
            continue;
        if (ttl > 0xffffffffULL)
            ttl = 0xffffffffULL;
        snprintf(key, sizeof(key), JPKI_STORE_PREFIX "rev:%s", s[i].cert_id);
        snprintf(val, sizeof(val), "%s|%d|%lld|%lld|crl",
                 hold ? "hold" : "revoked", reason, (long long)s[i].at,
                 (long long)now);
        w = redisCommand(rc, "SET %s %s PX %llu", key, val, ttl);
        ok = w != NULL && w->type == REDIS_REPLY_STATUS;
        freeReplyObject(w);
        if (!ok) {
            say("redis: writing %s failed", key);
            goto out;
        }
    }
    ret = 0;
out:
    free(s);
    return ret;
}

int run_recheck(const args_t *a)
{
    rc_list l[MAX_ISSUER_OPT];
    rc_count cnt = {0, 0, 0, 0};
    jpki_ctx *ctx;
    redisContext *rc = NULL;
    char **keys = NULL;
    unsigned long long grace;
    size_t nl, nk = 0, i;
    int rc_ = EXIT_STORE, s;

    if (opt_uint(a, O_GRACE, 0, GRACE_MAX, DEFAULT_GRACE, &grace) != 0)
        return SHOW_USAGE;
    if ((ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    memset(l, 0, sizeof(l));
    nl = jpki_ctx_issuer_count(ctx);
    for (i = 0; i < nl && i < MAX_ISSUER_OPT; i++) {
        l[i].is = jpki_ctx_issuer(ctx, i);
        snprintf(l[i].tag, sizeof(l[i].tag), "%s", jpki_issuer_tag(l[i].is));
    }
    if ((rc = redis_open(a)) == NULL)
        goto out;
    s = recheck_lists(rc, ctx, l, nl);
    if (s != 0) {
        rc_ = s == -2 ? EXIT_USAGE : EXIT_STORE;
        goto out;
    }
    for (i = 0; i < nl; i++)
        l[i].stale = l[i].state == 1 && stale_at(&l[i].m, a->now,
                                                 (unsigned)grace);
    /* every record once (SCAN may return a key twice), then by pages */
    if (scan_keys(rc, JPKI_STORE_PREFIX "soft:*", &keys, &nk) != 0)
        goto out;
    for (i = 0; i < nk; i += RECHECK_PAGE) {
        if (recheck_page(rc, ctx, l, nl, keys + i, nk - i < RECHECK_PAGE
                         ? nk - i : RECHECK_PAGE, a->now, &cnt) != 0) {
            say("redis: the re-check failed part way (%s)",
                rc->err ? rc->errstr : "a command failed");
            goto out;
        }
    }
    printf("recheck: records=%llu revoked=%llu unchecked=%llu good=%llu\n",
           cnt.records, cnt.revoked, cnt.unchecked, cnt.good);
    rc_ = cnt.revoked > 0 ? EXIT_INVALID
          : cnt.unchecked > 0 ? EXIT_NOT_NEWER : EXIT_VALID;
out:
    free_keys(keys, nk);
    redisFree(rc);
    jpki_ctx_free(ctx);
    return rc_;
}
