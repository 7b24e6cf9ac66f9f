/*
 * shm.c - the embedded store: a fixed-capacity hash table laid out in
 * memory the adapter provides (an nginx shared zone, an APR shared segment).
 *
 * Layout (docs/store-schema.md, "Embedded store"):
 *
 *     [ header, SHM_HDR_SIZE bytes ][ meta 0 ] ... [ meta n-1 ]
 *                                   [ body 0 ] ... [ body n-1 ]
 *
 * A slot is its meta (hash and expiry, 16 bytes) and its body (key and
 * value): probes, sweeps and expiry checks read the dense meta array only,
 * and a body is read when its hash matches.  A zone of megabytes is
 * touched at random places: each distinct page costs a TLB miss, and the
 * meta array is 20 times smaller than the slots were.
 *
 * The region holds no pointers: processes map it at different addresses,
 * and everything is found by index from the start of the region.  The
 * handle (struct jpki_shm) is per process and lives in caller storage.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so probe sequences do not decay under churn).  Keys hash with
 * SipHash-2-4 under a random key drawn when the region is formatted.
 * Expired entries count as absent; they are removed when a probe meets
 * them, a few at a time by a sweep cursor, and all at once when the table
 * is full and something may have expired.  At most 3/4 of the slots are
 * occupied, so a probe always ends at an empty slot.
 */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

/* store.c */

#define SHM_MAGIC      UINT64_C(0x524f54534b504a31)  /* "1JPKSTOR" LE */
#define SHM_VERSION    2u
#define SHM_MIN_SLOTS  64u
#define SHM_SWEEP_STEP 4u        /* slots looked at by each exec */
#define SHM_NEVER      INT64_MAX /* expiry of an entry without TTL */

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t slot_size;
    uint64_t size;              /* bytes of the region */
    uint64_t hdr_size;
    uint64_t slots;             /* number of slots */
    uint64_t max_live;          /* occupied slots allowed (3/4) */
    uint8_t hash_key[16];       /* SipHash key, random at format */
    /* Mutable, under the adapter's lock. */
    uint64_t occupied;          /* LIVE slots, expired or not */
    int64_t earliest;           /* lower bound of LIVE expiries */
    uint64_t cursor;            /* incremental sweep position */
    uint64_t reclaimed;         /* counter: expired entries removed */
    uint64_t refused;           /* counter: inserts refused when full */
    /* Odd while a locked section may be changing the table: readers of
     * jpki_shm_read_batch() read without the lock and try again when it
     * moved (a seqlock).  Zero in tables formatted before it existed. */
    uint64_t seq;
} shm_hdr;

typedef struct {
    uint64_t hash;              /* the key's hash | 1: live; 0: empty */
    int64_t expires;            /* ms since the epoch; SHM_NEVER */
} shm_meta;

typedef struct {
    uint8_t keylen;
    uint8_t vallen;
    char key[JPKI_STORE_KEY_MAX];
    uint8_t val[JPKI_STORE_VAL_MAX];
    uint8_t pad[6];
} shm_body;

_Static_assert(JPKI_STORE_KEY_MAX <= UINT8_MAX, "keylen fits a byte");
_Static_assert(JPKI_STORE_VAL_MAX <= UINT8_MAX, "vallen fits a byte");
_Static_assert(sizeof(shm_body) % 8 == 0, "bodies stay aligned");

#define SHM_HDR_SIZE  ((sizeof(shm_hdr) + 63) & ~(size_t)63)
#define SLOT_BYTES    (sizeof(shm_meta) + sizeof(shm_body))

struct jpki_shm {
    shm_hdr *hdr;
    shm_meta *meta;
    shm_body *body;
    uint64_t n;                 /* slots, checked at attach */
    uint64_t max_live;
    jpki_shm_lock lock;
};

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

static uint64_t slots_for(size_t size)
{
    return (uint64_t)((size - SHM_HDR_SIZE) / SLOT_BYTES);
}

static uint64_t max_live_for(uint64_t slots)
{
    return slots - slots / 4;
}

size_t jpki_shm_min_size(void)
{
    return SHM_HDR_SIZE + SHM_MIN_SLOTS * SLOT_BYTES;
}

size_t jpki_shm_handle_size(void)
{
    return sizeof(struct jpki_shm);
}

static int region_ok(const void *mem, size_t size)
{
    return mem != NULL && ((uintptr_t)mem & 7) == 0
           && size >= jpki_shm_min_size();
}

static int header_ok(const shm_hdr *h, size_t size)
{
    uint64_t n = slots_for(size);

    return h->magic == SHM_MAGIC && h->version == SHM_VERSION
           && h->slot_size == SLOT_BYTES && h->size == size
           && h->hdr_size == SHM_HDR_SIZE && h->slots == n
           && h->max_live == max_live_for(n) && h->occupied <= n;
}

jpki_err jpki_shm_init(void *mem, size_t size, int attach)
{
    shm_hdr *h = mem;
    uint64_t n;

    if (!region_ok(mem, size))
        return JPKI_ERR_INVALID;
    if (attach)
        return header_ok(h, size) ? JPKI_OK : JPKI_ERR_INVALID;
    n = slots_for(size);
    memset(mem, 0, SHM_HDR_SIZE + n * SLOT_BYTES);
    if (RAND_bytes(h->hash_key, sizeof(h->hash_key)) != 1)
        return JPKI_ERR_INTERNAL;
    h->version = SHM_VERSION;
    h->slot_size = SLOT_BYTES;
    h->size = size;
    h->hdr_size = SHM_HDR_SIZE;
    h->slots = n;
    h->max_live = max_live_for(n);
    h->occupied = 0;
    h->earliest = SHM_NEVER;
    h->magic = SHM_MAGIC;
    return JPKI_OK;
}

jpki_shm *jpki_shm_attach(void *handle_mem, void *mem, size_t size,
                          const jpki_shm_lock *lock)
{
    struct jpki_shm *s = handle_mem;

    if (s == NULL || ((uintptr_t)s % _Alignof(struct jpki_shm)) != 0)
        return NULL;
    if (!region_ok(mem, size) || !header_ok(mem, size))
        return NULL;
    memset(s, 0, sizeof(*s));
    s->hdr = mem;
    s->n = s->hdr->slots;
    s->meta = (shm_meta *)((char *)mem + SHM_HDR_SIZE);
    s->body = (shm_body *)(s->meta + s->n);
    s->max_live = s->hdr->max_live;
    if (lock != NULL)
        s->lock = *lock;
    return s;
}

size_t jpki_shm_capacity(const jpki_shm *s)
{
    return s != NULL ? (size_t)s->max_live : 0;
}

/* Every locked section may change slots (a lookup reclaims what expired):
 * seq is odd for its duration (see jpki_shm_read_batch). */
static void shm_lock(jpki_shm *s)
{
    if (s->lock.lock != NULL)
        s->lock.lock(s->lock.ud);
    __atomic_store_n(&s->hdr->seq, s->hdr->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void shm_unlock(jpki_shm *s)
{
    __atomic_store_n(&s->hdr->seq, s->hdr->seq + 1, __ATOMIC_RELEASE);
    if (s->lock.unlock != NULL)
        s->lock.unlock(s->lock.ud);
}

/* ------------------------------------------------------------------ */
/* Table primitives (caller holds the lock)                            */
/* ------------------------------------------------------------------ */

/* Never 0, which marks an empty slot. */
static uint64_t key_hash(const jpki_shm *s, const char *key, size_t len)
{
    return jpki_siphash24(s->hdr->hash_key, (const uint8_t *)key, len) | 1;
}

static int live(const shm_meta *m)
{
    return m->hash != 0;
}

static uint64_t next_idx(const jpki_shm *s, uint64_t i)
{
    return i + 1 == s->n ? 0 : i + 1;
}

static int expired(const shm_meta *m, int64_t now_ms)
{
    return now_ms >= m->expires;
}

static int64_t expiry_of(int64_t now_ms, uint32_t ttl_ms)
{
    if (ttl_ms == 0 || now_ms > INT64_MAX - (int64_t)ttl_ms)
        return SHM_NEVER;
    return now_ms + (int64_t)ttl_ms;
}

/* A body's bytes are read up to its lengths only: a copy or a clear
 * touches those (the cache lines a body spans cost a miss each). */
static size_t body_kl(const shm_body *b)
{
    return b->keylen <= JPKI_STORE_KEY_MAX ? b->keylen : JPKI_STORE_KEY_MAX;
}

static size_t body_vl(const shm_body *b)
{
    return b->vallen <= JPKI_STORE_VAL_MAX ? b->vallen : JPKI_STORE_VAL_MAX;
}

static void body_clear(shm_body *b)
{
    memset(b->key, 0, body_kl(b));
    memset(b->val, 0, body_vl(b));
    b->keylen = 0;
    b->vallen = 0;
}

static void body_copy(shm_body *to, const shm_body *from)
{
    body_clear(to);
    to->keylen = (uint8_t)body_kl(from);
    to->vallen = (uint8_t)body_vl(from);
    memcpy(to->key, from->key, to->keylen);
    memcpy(to->val, from->val, to->vallen);
}

/* 1 when home position k lies cyclically in (i, j]: the entry at j may
 * not move back to i. */
static int stays(uint64_t i, uint64_t j, uint64_t k)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

/* Removes slot i by shifting the rest of its cluster back.  Entries only
 * move into positions at or after i (cyclically).  A cluster ends at an
 * empty slot, which always exists (max_live < n); the step bound only
 * guards against a corrupted region. */
static void delete_at(jpki_shm *s, uint64_t i)
{
    uint64_t j = i, k, steps;

    for (steps = 1; steps < s->n; steps++) {
        j = next_idx(s, j);
        if (!live(&s->meta[j]))
            break;
        k = s->meta[j].hash % s->n;
        if (stays(i, j, k))
            continue;
        s->meta[i] = s->meta[j];
        body_copy(&s->body[i], &s->body[j]);
        i = j;
    }
    memset(&s->meta[i], 0, sizeof(shm_meta));
    body_clear(&s->body[i]);
    s->hdr->occupied--;
}

static void reclaim_at(jpki_shm *s, uint64_t i)
{
    delete_at(s, i);
    s->hdr->reclaimed++;
}

static int key_eq(const jpki_shm *s, uint64_t i, uint64_t hash,
                  const char *key, size_t len)
{
    return s->meta[i].hash == hash && s->body[i].keylen == len
           && memcmp(s->body[i].key, key, len) == 0;
}

/* Looks a key up; expired entries met on the way are removed.  Returns 1
 * and *pos of the entry, or 0 and *pos of the empty slot ending the probe
 * (s->n if the probe saw the whole table, impossible under max_live). */
static int find(jpki_shm *s, const char *key, size_t len, uint64_t hash,
                int64_t now_ms, uint64_t *pos)
{
    uint64_t i = hash % s->n, probes = 0;
    shm_meta *m;

    while (probes < s->n) {
        m = &s->meta[i];
        if (!live(m)) {
            *pos = i;
            return 0;
        }
        if (expired(m, now_ms)) {
            reclaim_at(s, i);       /* look at slot i again */
            continue;
        }
        if (key_eq(s, i, hash, key, len)) {
            *pos = i;
            return 1;
        }
        i = next_idx(s, i);
        probes++;
    }
    *pos = s->n;
    return 0;
}

/* Removes every entry for which fn() says so, and the expired ones; the
 * return value counts the live entries fn() removed.  Refreshes the
 * earliest-expiry bound. */
typedef int (*slot_pred)(const shm_body *b, const void *ud);

static uint64_t scan_delete(jpki_shm *s, int64_t now_ms, slot_pred fn,
                            const void *ud)
{
    uint64_t i = 0, count = 0;
    int64_t earliest = SHM_NEVER;
    shm_meta *m;

    while (i < s->n) {
        m = &s->meta[i];
        if (!live(m)) {
            i++;
        } else if (expired(m, now_ms)) {
            reclaim_at(s, i);
        } else if (fn != NULL && fn(&s->body[i], ud)) {
            delete_at(s, i);
            count++;
        } else {
            if (m->expires < earliest)
                earliest = m->expires;
            i++;
        }
    }
    s->hdr->earliest = earliest;
    return count;
}

/* A few slots of sweep per operation keep expired entries from piling up
 * between full sweeps. */
static void sweep_step(jpki_shm *s, int64_t now_ms)
{
    uint64_t i = s->hdr->cursor % s->n;
    unsigned looked;

    for (looked = 0; looked < SHM_SWEEP_STEP; looked++) {
        if (live(&s->meta[i]) && expired(&s->meta[i], now_ms))
            reclaim_at(s, i);
        else
            i = next_idx(s, i);
    }
    s->hdr->cursor = i;
}

static void slot_write(jpki_shm *s, uint64_t i, const jpki_store_cmd *cmd,
                       uint64_t hash, int64_t expires)
{
    shm_meta *m = &s->meta[i];
    shm_body *b = &s->body[i];

    if (!live(m))
        s->hdr->occupied++;
    m->hash = hash;
    m->expires = expires;
    if (b->vallen > cmd->vallen && b->vallen <= JPKI_STORE_VAL_MAX)
        memset(b->val + cmd->vallen, 0, b->vallen - cmd->vallen);
    b->keylen = (uint8_t)cmd->keylen;
    memcpy(b->key, cmd->key, cmd->keylen);
    b->vallen = (uint8_t)cmd->vallen;
    if (cmd->vallen > 0)
        memcpy(b->val, cmd->val, cmd->vallen);
    if (expires < s->hdr->earliest)
        s->hdr->earliest = expires;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static void res_int(jpki_store_result *res, long long n)
{
    res->type = JPKI_STORE_R_INT;
    res->n = n;
}

static void op_get(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                   int64_t now_ms, jpki_store_result *res)
{
    uint64_t i;
    const shm_body *e;

    if (!find(s, cmd->key, cmd->keylen, hash, now_ms, &i)) {
        res->type = JPKI_STORE_R_NIL;
        return;
    }
    e = &s->body[i];
    if (e->vallen > JPKI_STORE_VAL_MAX)
        return;                                 /* corrupt: R_ERROR */
    memcpy(res->val, e->val, e->vallen);
    res->vallen = e->vallen;
    res->type = JPKI_STORE_R_VALUE;
}

/* The entries a new key may fill the table up to: soft commands (throttle
 * counters, caches) stop at 3/4 of it, so that the last quarter stays for
 * the challenges and logouts that logins and sessions need. */
static uint64_t room_limit(const jpki_shm *s, const jpki_store_cmd *cmd)
{
    return cmd->soft ? s->max_live - s->max_live / 4 : s->max_live;
}

/* Room for one more entry: sweeps the whole table when it is full and an
 * entry may have expired (the earliest bound says so): expired entries are
 * always reclaimed before anything is refused. */
static int make_room(jpki_shm *s, const jpki_store_cmd *cmd, int64_t now_ms)
{
    uint64_t limit = room_limit(s, cmd);

    if (s->hdr->occupied < limit)
        return 1;
    if (now_ms >= s->hdr->earliest)
        scan_delete(s, now_ms, NULL, NULL);
    return s->hdr->occupied < limit;
}

static void res_full(jpki_shm *s, jpki_store_result *res)
{
    s->hdr->refused++;
    res->type = JPKI_STORE_R_FULL;
}

/* A new entry for cmd at the empty slot ending its probe; 0 when full. */
static int insert_new(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                      int64_t now_ms, int64_t expires, uint64_t *pos,
                      jpki_store_result *res)
{
    if (!make_room(s, cmd, now_ms)) {
        res_full(s, res);
        return 0;
    }
    /* A sweep moves entries: find the empty slot again. */
    if (find(s, cmd->key, cmd->keylen, hash, now_ms, pos) || *pos >= s->n)
        return 0;
    slot_write(s, *pos, cmd, hash, expires);
    return 1;
}

static void op_set(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                   int64_t now_ms, jpki_store_result *res)
{
    int nx = cmd->op == JPKI_STORE_SETNX;
    int64_t expires = expiry_of(now_ms, cmd->ttl_ms);
    uint64_t i;

    if (find(s, cmd->key, cmd->keylen, hash, now_ms, &i)) {
        if (!nx)
            slot_write(s, i, cmd, hash, expires);
        res_int(res, nx ? 0 : 1);
        return;
    }
    if (insert_new(s, cmd, hash, now_ms, expires, &i, res))
        res_int(res, 1);
}

/* INCR, DECR: the value is the counter in decimal, as Redis keeps it; an
 * absent key starts at 0 and never expires until PEXPIRE gives it a TTL. */
static void op_incr(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                    int64_t now_ms, jpki_store_result *res)
{
    jpki_store_cmd c = *cmd;
    long long v = 0, d = cmd->op == JPKI_STORE_DECR ? -1 : 1;
    shm_body *e;
    uint64_t i;
    size_t k = 0;
    int neg = 0;

    if (find(s, cmd->key, cmd->keylen, hash, now_ms, &i)) {
        e = &s->body[i];
        if (e->vallen > 0 && e->val[0] == '-') {
            neg = 1;
            k = 1;
        }
        if (e->vallen <= k || e->vallen > 18)
            return;                             /* not a counter: R_ERROR */
        for (; k < e->vallen; k++) {
            if (e->val[k] < '0' || e->val[k] > '9')
                return;
            v = v * 10 + (e->val[k] - '0');
        }
        v = (neg ? -v : v) + d;
        e->vallen = (uint8_t)snprintf((char *)e->val, JPKI_STORE_VAL_MAX,
                                      "%lld", v);
        res_int(res, v);
        return;
    }
    c.vallen = (size_t)snprintf((char *)c.val, sizeof(c.val), "%lld", d);
    if (insert_new(s, &c, hash, now_ms, SHM_NEVER, &i, res))
        res_int(res, d);
}

static void op_pexpire(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                       int64_t now_ms, jpki_store_result *res)
{
    shm_meta *e;
    uint64_t i;

    if (!find(s, cmd->key, cmd->keylen, hash, now_ms, &i)) {
        res_int(res, 0);
        return;
    }
    e = &s->meta[i];
    e->expires = expiry_of(now_ms, cmd->ttl_ms);
    if (e->expires < s->hdr->earliest)
        s->hdr->earliest = e->expires;
    res_int(res, 1);
}

static void op_del(jpki_shm *s, const jpki_store_cmd *cmd, uint64_t hash,
                   int64_t now_ms, jpki_store_result *res)
{
    uint64_t i;

    if (!find(s, cmd->key, cmd->keylen, hash, now_ms, &i)) {
        res_int(res, 0);
        return;
    }
    delete_at(s, i);
    res_int(res, 1);
}

static void exec_locked(jpki_shm *s, const jpki_store_cmd *cmd,
                        int64_t now_ms, jpki_store_result *res);

void jpki_shm_exec(jpki_shm *s, const jpki_store_cmd *cmd, int64_t now_ms,
                   jpki_store_result *res)
{
    jpki_shm_exec_batch(s, cmd, 1, now_ms, res);
}

void jpki_shm_exec_batch(jpki_shm *s, const jpki_store_cmd *cmds, size_t n,
                         int64_t now_ms, jpki_store_result *res)
{
    size_t i;

    if (res == NULL || cmds == NULL)
        return;
    if (s == NULL) {
        for (i = 0; i < n; i++) {
            memset(&res[i], 0, sizeof(res[i]));
            res[i].type = JPKI_STORE_R_ERROR;
        }
        return;
    }
    shm_lock(s);
    sweep_step(s, now_ms);
    for (i = 0; i < n; i++)
        exec_locked(s, &cmds[i], now_ms, &res[i]);
    shm_unlock(s);
}

static void exec_locked(jpki_shm *s, const jpki_store_cmd *cmd,
                        int64_t now_ms, jpki_store_result *res)
{
    uint64_t hash;

    memset(res, 0, sizeof(*res));
    res->type = JPKI_STORE_R_ERROR;
    if (jpki_store_cmd_check(cmd) != JPKI_OK)
        return;
    hash = key_hash(s, cmd->key, cmd->keylen);
    switch (cmd->op) {
    case JPKI_STORE_GET:
        op_get(s, cmd, hash, now_ms, res);
        break;
    case JPKI_STORE_SET:
    case JPKI_STORE_SETNX:
        op_set(s, cmd, hash, now_ms, res);
        break;
    case JPKI_STORE_DEL:
        op_del(s, cmd, hash, now_ms, res);
        break;
    case JPKI_STORE_INCR:
    case JPKI_STORE_DECR:
        op_incr(s, cmd, hash, now_ms, res);
        break;
    case JPKI_STORE_PEXPIRE:
        op_pexpire(s, cmd, hash, now_ms, res);
        break;
    default:
        break;          /* HGET: no hashes here (CRLs live in Redis) */
    }
}

typedef struct {
    const char *prefix;
    size_t len;
} prefix_arg;

static int has_prefix(const shm_body *e, const void *ud)
{
    const prefix_arg *p = ud;

    return e->keylen >= p->len && memcmp(e->key, p->prefix, p->len) == 0;
}

uint64_t jpki_shm_delete_prefix(jpki_shm *s, const char *prefix,
                                int64_t now_ms)
{
    prefix_arg p;
    uint64_t n;

    if (s == NULL || prefix == NULL)
        return 0;
    p.prefix = prefix;
    p.len = strnlen(prefix, JPKI_STORE_KEY_MAX + 1);
    if (p.len > JPKI_STORE_KEY_MAX)
        return 0;
    shm_lock(s);
    n = scan_delete(s, now_ms, has_prefix, &p);
    shm_unlock(s);
    return n;
}

uint64_t jpki_shm_count(jpki_shm *s, int64_t now_ms)
{
    uint64_t n;

    if (s == NULL)
        return 0;
    shm_lock(s);
    scan_delete(s, now_ms, NULL, NULL);
    n = s->hdr->occupied;
    shm_unlock(s);
    return n;
}

int jpki_shm_is_full(jpki_shm *s, int64_t now_ms)
{
    int full;

    if (s == NULL)
        return 0;
    shm_lock(s);
    if (s->hdr->occupied >= s->max_live && now_ms >= s->hdr->earliest)
        scan_delete(s, now_ms, NULL, NULL);
    full = s->hdr->occupied >= s->max_live;
    shm_unlock(s);
    return full;
}

/* ------------------------------------------------------------------ */
/* Reads without the lock                                              */
/* ------------------------------------------------------------------ */

/* GET of one key by probing without the lock: expired entries are passed
 * over, not reclaimed; everything read is copied and judged only after
 * the caller has seen seq unchanged.  Bounded whatever the slots hold. */
static void get_unlocked(const jpki_shm *s, const jpki_store_cmd *cmd,
                         int64_t now_ms, jpki_store_result *res)
{
    uint64_t hash = key_hash(s, cmd->key, cmd->keylen);
    uint64_t i = hash % s->n, probes;
    const shm_meta *m;
    const shm_body *e;
    uint8_t vl;

    res->type = JPKI_STORE_R_NIL;
    for (probes = 0; probes < s->n; probes++, i = next_idx(s, i)) {
        m = &s->meta[i];
        if (!live(m))
            return;
        e = &s->body[i];
        if (expired(m, now_ms) || m->hash != hash || e->keylen != cmd->keylen
            || memcmp(e->key, cmd->key, cmd->keylen) != 0)
            continue;
        vl = e->vallen;
        if (vl > JPKI_STORE_VAL_MAX) {
            res->type = JPKI_STORE_R_ERROR;
            return;
        }
        memcpy(res->val, e->val, vl);
        res->vallen = vl;
        res->type = JPKI_STORE_R_VALUE;
        return;
    }
}

void jpki_shm_read_batch(jpki_shm *s, const jpki_store_cmd *cmds, size_t n,
                         int64_t now_ms, jpki_store_result *res)
{
    uint64_t s1, s2;
    size_t i;
    int tries;

    if (res == NULL || cmds == NULL)
        return;
    for (i = 0; i < n; i++)
        if (s == NULL || cmds[i].op != JPKI_STORE_GET
            || jpki_store_cmd_check(&cmds[i]) != JPKI_OK) {
            jpki_shm_exec_batch(s, cmds, n, now_ms, res);
            return;
        }
    for (tries = 0; tries < 8; tries++) {
        s1 = __atomic_load_n(&s->hdr->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        for (i = 0; i < n; i++) {
            memset(&res[i], 0, sizeof(res[i]));
            get_unlocked(s, &cmds[i], now_ms, &res[i]);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&s->hdr->seq, __ATOMIC_RELAXED);
        if (s1 == s2)
            return;
    }
    jpki_shm_exec_batch(s, cmds, n, now_ms, res);   /* busy: take the lock */
}
