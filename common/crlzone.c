/*
 * crlzone.c - the CRLs in force of a site, for nginx and Apache alike.
 *
 * Layout.  A zone is a header, then the room for the CRLs' entries:
 *
 *   header: magic, size, offset of the room, the loader's claim (pid and
 *           since when), the blocks being filled, FILES file records,
 *           SLOTS slots
 *   room:   blocks, one per CRL in force (its entries: 24 bytes each,
 *           sorted by cert_id), at 64-byte aligned offsets
 *
 * A slot is the CRL in force for one CA key of one issuer: the issuer's
 * identity (its tag, over its anchors, and its CRL check value, over the
 * secret: a zone kept across a reload never answers for another secret or
 * other CAs), the key (SHA-1 of the key that signed the CRL), the CRL's
 * dates, number and lookup TTLs, and its block (offset, size, entries).
 * Nothing in the zone is a pointer: every process may map it anywhere.
 * A file record is one CRL file (by a hash of issuer and path): the
 * version tried last (what stat() tells apart), the result, the key of
 * the CRL it put in force, and which process parses it now.
 *
 * The adapter gives the memory (nginx: a block of a shared zone; Apache:
 * an APR shared memory segment; or none: the process's own, a "local"
 * zone), the lock (callbacks: a mutex across processes), whether a
 * process is alive, and the time.  It stats and reads the files (nginx in
 * a thread, on a timer; Apache in requests, at most once a second).
 *
 * Writers hold the lock for every change of the header, and change a slot
 * or a file record in one section of its seqlock (seq odd while it
 * changes, even again after).  One process at a time parses a changed
 * file (the claim; one that died is taken over at once, one silent for a
 * minute too).  Publishing a CRL:
 *   1. (lock) the CRL may replace the one of its key in force (not another
 *      issuer's, not older); a block is reserved: first fit among the
 *      blocks of the slots and of the fills; (unlock)
 *   2. the entries are copied into it, without the lock (a full barrier
 *      first: see below);
 *   3. (lock) one section of the slot: the new block, dates, number; the
 *      block of the CRL replaced is free from here; (unlock)
 *
 * Readers take no lock.  A lookup copies the slots (each under its seq:
 * seq even, the copy, then an acquire barrier and seq unchanged), finds
 * the slot of the issuer and key, searches the entries in its block (in
 * the zone, bounds checked against the zone whatever was read), then
 * checks the seq again: unchanged, the answer is the one of a CRL in force
 * during the whole search; changed (the block was freed by a swap and
 * maybe written again), the answer is thrown away and the lookup starts
 * again.  A block is written again only after the section that freed it
 * (the fill's full barrier orders its writes after it), so a reader that
 * read any of the new bytes sees the seq changed.  Memory is reclaimed at
 * once (nothing waits for readers, readers never wait for a loader); a
 * reader retries a few times while a writer is in a section (a few
 * stores), then fails closed.  A section left odd by a writer that died
 * is ended by jpki_crlzone_tick (the lock held: nobody else is in one).
 *
 * A local zone (no shared memory configured): the same header in the
 * process's memory, each CRL an index of its own (no copy); writers take
 * the lock callbacks, readers the read-lock ones (Apache's threads; nginx
 * workers have none).
 *
 * Several CRLs per issuer: a CRL covers the key that signed it, and its
 * index holds its entries under that key's cert_ids only.  A certificate
 * is looked up in the slot of the key that issued it; with no CRL of that
 * key in force the answer is revocation unavailable, never good.
 */
#include "internal.h"
#include "crlzone.h"
#include "gate.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ZMAGIC     UINT64_C(0x4a504b49435a4e31)      /* "JPKICZN1" */
#define ZALIGN     64
#define ZFILLS     4
#define ZTAKEOVER  60
#define ZTRIES     64
#define ZYIELDS    8
#define WHO_LEN    (16 + JPKI_CERT_ID_HEX_LEN)

typedef struct {
    uint32_t seq;                 /* even: stable; odd: changing */
    uint32_t used;                /* a CRL in force */
    char who[WHO_LEN + 1];        /* issuer tag + CRL check value */
    uint8_t key[20];              /* the CA key it covers */
    uint64_t off, size;           /* its block (shared zone) */
    uint64_t n;                   /* entries in the block */
    int64_t this_update, next_update, crl_number;
    uint64_t entries;             /* of the CRL */
    uint32_t skew, good_ttl, hold_ttl, revoked_ttl;
    int64_t loaded;               /* when put in force */
} zslot;

typedef struct {
    uint32_t seq;
    uint32_t used;
    uint64_t id;                  /* hash of issuer and path */
    uint64_t who;                 /* hash of the issuer */
    uint8_t fid[JPKI_CRLZONE_FID_MAX];
    uint32_t fidlen;              /* 0: not tried (or unreadable) */
    int32_t error;                /* jpki_err of the last try */
    int32_t has_key;              /* its CRL was put in force: */
    uint8_t key[20];              /* ... for this key */
    int64_t busy;                 /* the process parsing it; 0: none */
} zfile;

typedef struct {
    uint64_t off, size;           /* size 0: none */
    int64_t pid;
} zfill;

typedef struct {
    uint64_t magic, size, data;
    int64_t loader, loading_since;
    zfill fill[ZFILLS];
    zfile file[JPKI_CRLZONE_FILES];
    zslot slot[JPKI_CRLZONE_SLOTS];
} zhdr;

#define ZDATA (((sizeof(zhdr)) + ZALIGN - 1) / ZALIGN * ZALIGN)

struct jpki_crlzone {
    zhdr *h;
    size_t size;
    int shared;
    jpki_crlzone_ops ops;
    long self;
    unsigned loading;             /* files this process parses now */
    char name[64];
    jpki_crl_index *ix[JPKI_CRLZONE_SLOTS];    /* a local zone's CRLs */
};

/* ------------------------------------------------------------------ */
/* Locks and sections                                                  */
/* ------------------------------------------------------------------ */

static void zlock(jpki_crlzone *z)
{
    if (z->ops.lock != NULL)
        z->ops.lock(z->ops.ud);
}

static void zunlock(jpki_crlzone *z)
{
    if (z->ops.unlock != NULL)
        z->ops.unlock(z->ops.ud);
}

static void rdlock(jpki_crlzone *z)
{
    if (!z->shared && z->ops.rdlock != NULL)
        z->ops.rdlock(z->ops.ud);
}

static void rdunlock(jpki_crlzone *z)
{
    if (!z->shared && z->ops.rdunlock != NULL)
        z->ops.rdunlock(z->ops.ud);
}

static int alive(jpki_crlzone *z, int64_t pid)
{
    if (pid == 0 || pid == z->self)
        return pid != 0;
    return z->ops.alive == NULL || z->ops.alive(z->ops.ud, (long)pid);
}

/* A writer's section (lock held): seq odd before the first change is
 * visible, even again after the last. */
static void write_begin(uint32_t *seq)
{
    uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED);

    __atomic_store_n(seq, s + ((s & 1) ? 2 : 1), __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void write_end(uint32_t *seq)
{
    __atomic_store_n(seq, __atomic_load_n(seq, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELEASE);
}

/* A reader: whether what it read since it saw s is consistent. */
static int read_ok(const uint32_t *seq, uint32_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(seq, __ATOMIC_RELAXED) == s;
}

/* A consistent copy of a slot or file record (n bytes at p, seq first):
 * 1, or 0 when a writer is in it or changed it meanwhile. */
static int read_copy(const void *p, void *out, size_t n)
{
    const uint32_t *seq = p;
    uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);

    if (s & 1)
        return 0;
    memcpy(out, p, n);
    *(uint32_t *)out = s;
    return read_ok(seq, s);
}

static void pause_try(int i)
{
    if (i >= ZYIELDS)
        sched_yield();
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static void who_of(const jpki_issuer *is, char out[WHO_LEN + 1])
{
    snprintf(out, WHO_LEN + 1, "%.16s%.32s", is->tag, is->id_check);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(0x100000001b3);
    return (h ^ 0xff) * UINT64_C(0x100000001b3);
}

static uint64_t who_hash(const jpki_issuer *is)
{
    char who[WHO_LEN + 1];

    who_of(is, who);
    return fnv(UINT64_C(0xcbf29ce484222325), who);
}

static uint64_t file_hash(const jpki_issuer *is, const char *path)
{
    return fnv(who_hash(is), path) | 1;              /* 0: none */
}

/* ------------------------------------------------------------------ */
/* Zones                                                               */
/* ------------------------------------------------------------------ */

size_t jpki_crlzone_overhead(void)
{
    return ZDATA;
}

int jpki_crlzone_format(void *mem, size_t size)
{
    zhdr *h = mem;

    if (mem == NULL || (uintptr_t)mem % 8 != 0 || size < ZDATA + ZALIGN)
        return -1;
    if (h->magic == ZMAGIC && h->size == size && h->data == ZDATA)
        return 1;
    memset(h, 0, sizeof(*h));
    h->size = size;
    h->data = ZDATA;
    __atomic_store_n(&h->magic, ZMAGIC, __ATOMIC_RELEASE);
    return 0;
}

static jpki_crlzone *zone_new(const jpki_crlzone_ops *ops, const char *name)
{
    jpki_crlzone *z = calloc(1, sizeof(*z));

    if (z == NULL)
        return NULL;
    if (ops != NULL)
        z->ops = *ops;
    snprintf(z->name, sizeof(z->name), "%s", name ? name : "");
    return z;
}

jpki_crlzone *jpki_crlzone_attach(void *mem, size_t size, const char *name,
                                  const jpki_crlzone_ops *ops, long self)
{
    zhdr *h = mem;
    jpki_crlzone *z;

    if (mem == NULL || h->magic != ZMAGIC || h->size != size
        || h->data != ZDATA || self <= 0)
        return NULL;
    z = zone_new(ops, name);
    if (z == NULL)
        return NULL;
    z->h = h;
    z->size = size;
    z->shared = 1;
    z->self = self;
    return z;
}

jpki_crlzone *jpki_crlzone_local(const jpki_crlzone_ops *ops)
{
    jpki_crlzone *z = zone_new(ops, "local");

    if (z == NULL)
        return NULL;
    z->h = calloc(1, sizeof(zhdr));
    if (z->h == NULL) {
        free(z);
        return NULL;
    }
    z->h->magic = ZMAGIC;
    z->self = 1;
    return z;
}

void jpki_crlzone_free(jpki_crlzone *z)
{
    size_t i;

    if (z == NULL)
        return;
    if (z->shared) {
        zlock(z);
        if (z->h->loader == z->self)
            z->h->loader = 0;
        for (i = 0; i < ZFILLS; i++)
            if (z->h->fill[i].pid == z->self)
                z->h->fill[i].size = 0;
        zunlock(z);
    } else {
        for (i = 0; i < JPKI_CRLZONE_SLOTS; i++)
            jpki_crl_index_free(z->ix[i]);
        free(z->h);
    }
    free(z);
}

int jpki_crlzone_shared(const jpki_crlzone *z)
{
    return z != NULL && z->shared;
}

/* A slot emptied (lock held): its block is free. */
static void slot_clear(jpki_crlzone *z, size_t i)
{
    zslot *sl = &z->h->slot[i];

    write_begin(&sl->seq);
    sl->used = 0;
    sl->size = 0;
    sl->n = 0;
    write_end(&sl->seq);
    if (!z->shared) {
        jpki_crl_index_free(z->ix[i]);
        z->ix[i] = NULL;
    }
}

void jpki_crlzone_retain(jpki_crlzone *z, const jpki_issuer *const *list,
                         size_t n)
{
    char who[WHO_LEN + 1];
    size_t i, k;

    if (z == NULL)
        return;
    zlock(z);
    for (i = 0; i < JPKI_CRLZONE_SLOTS; i++) {
        zslot *sl = &z->h->slot[i];

        for (k = 0; k < n; k++) {
            who_of(list[k], who);
            if (strcmp(who, sl->who) == 0)
                break;
        }
        if (sl->used && k == n)
            slot_clear(z, i);
    }
    for (i = 0; i < JPKI_CRLZONE_FILES; i++) {
        zfile *f = &z->h->file[i];

        for (k = 0; k < n && f->who != who_hash(list[k]); k++)
            ;
        if (f->used && k == n) {
            write_begin(&f->seq);
            f->used = 0;
            write_end(&f->seq);
        }
    }
    zunlock(z);
}

void jpki_crlzone_tick(jpki_crlzone *z)
{
    zhdr *h;
    size_t i;

    if (z == NULL || !z->shared)
        return;
    h = z->h;
    zlock(z);
    /* the lock is ours: a section still odd is a dead writer's */
    for (i = 0; i < JPKI_CRLZONE_SLOTS; i++)
        if (__atomic_load_n(&h->slot[i].seq, __ATOMIC_RELAXED) & 1)
            write_end(&h->slot[i].seq);
    for (i = 0; i < JPKI_CRLZONE_FILES; i++) {
        zfile *f = &h->file[i];

        if (__atomic_load_n(&f->seq, __ATOMIC_RELAXED) & 1)
            write_end(&f->seq);
        if (f->used && f->busy != 0 && !alive(z, f->busy)) {
            write_begin(&f->seq);
            f->busy = 0;
            write_end(&f->seq);
        }
    }
    for (i = 0; i < ZFILLS; i++)
        if (h->fill[i].size != 0 && !alive(z, h->fill[i].pid))
            h->fill[i].size = 0;
    if (h->loader != 0 && !alive(z, h->loader))
        h->loader = 0;
    zunlock(z);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

/* The record of a file (lock held); created when create. */
static zfile *file_rec(jpki_crlzone *z, uint64_t id, uint64_t who,
                       int create)
{
    zfile *free_rec = NULL;
    size_t i;

    for (i = 0; i < JPKI_CRLZONE_FILES; i++) {
        zfile *f = &z->h->file[i];

        if (f->used && f->id == id)
            return f;
        if (!f->used && free_rec == NULL)
            free_rec = f;
    }
    if (!create || free_rec == NULL)
        return NULL;
    write_begin(&free_rec->seq);
    free_rec->used = 1;
    free_rec->id = id;
    free_rec->who = who;
    free_rec->fidlen = 0;
    free_rec->error = JPKI_ERR_REVOCATION_UNAVAILABLE;
    free_rec->has_key = 0;
    free_rec->busy = 0;
    write_end(&free_rec->seq);
    return free_rec;
}

static int same_version(const zfile *r, const jpki_crlzone_file *f)
{
    return r->fidlen != 0 && r->fidlen == f->fidlen
           && memcmp(r->fid, f->fid, f->fidlen) == 0;
}

/* The claim of a shared zone (lock held): 1 when it is (now) ours. */
static int claim(jpki_crlzone *z, int64_t now)
{
    zhdr *h = z->h;
    size_t i;

    if (!z->shared)
        return 1;
    if (h->loader != 0 && h->loader != z->self && alive(z, h->loader)
        && now - h->loading_since < ZTAKEOVER)
        return 0;
    if (h->loader != z->self || z->loading == 0) {
        /* the blocks of loaders that died (or ours, idle) are free; a
         * live one taken over keeps its blocks until it is done copying */
        for (i = 0; i < ZFILLS; i++)
            if (h->fill[i].size != 0 && (h->fill[i].pid == z->self
                                         || !alive(z, h->fill[i].pid)))
                h->fill[i].size = 0;
        h->loading_since = now;
    }
    h->loader = z->self;
    return 1;
}

int jpki_crlzone_begin(jpki_crlzone *z, const jpki_crlzone_file *f,
                       int64_t now)
{
    zfile *r;
    int ok = 0;

    if (z == NULL || f == NULL || f->fidlen == 0
        || f->fidlen > JPKI_CRLZONE_FID_MAX)
        return 0;
    zlock(z);
    r = file_rec(z, file_hash(f->issuer, f->path), who_hash(f->issuer), 1);
    if (r != NULL && !same_version(r, f)
        && !(r->busy != 0 && alive(z, r->busy)) && claim(z, now)) {
        write_begin(&r->seq);
        r->busy = z->self;
        write_end(&r->seq);
        z->loading++;
        ok = 1;
    }
    zunlock(z);
    return ok;
}

jpki_err jpki_crlzone_build(const jpki_ctx *ctx, const char *path,
                            time_t now, unsigned grace_s,
                            jpki_crl_index **ix, char *detail, size_t dl)
{
    uint8_t *der;
    size_t len;
    jpki_err e;

    *ix = NULL;
    if (detail != NULL && dl > 0)
        detail[0] = '\0';
    e = jpki_load_file(path, JPKI_CRL_MAX, &der, &len);
    if (e != JPKI_OK) {
        jpki_set_detail(detail, dl, "cannot read the file");
        return e;
    }
    e = jpki_crl_index_build(ctx, der, len, now, grace_s, ix, detail, dl);
    free(der);
    return e;
}

/* The slot of (who, key) (lock held), or a free one when create; -1. */
static int slot_find(jpki_crlzone *z, const char *who, const uint8_t *key,
                     int create)
{
    int i, free_slot = -1;

    for (i = 0; i < JPKI_CRLZONE_SLOTS; i++) {
        zslot *sl = &z->h->slot[i];

        if (sl->used && strcmp(sl->who, who) == 0
            && memcmp(sl->key, key, 20) == 0)
            return i;
        if (!sl->used && free_slot < 0)
            free_slot = i;
    }
    return create ? free_slot : -1;
}

/* The index of slot sl's CRL, for jpki_crl_index_replaces and lookups:
 * its header from the slot, its entries at e. */
static void slot_index(const zslot *sl, const jpki_issuer *is,
                       const void *e, struct jpki_crl_index *out)
{
    memset(out, 0, sizeof(*out));
    out->info.issuer = is;
    memcpy(out->info.key_hash, sl->key, 20);
    out->info.this_update = sl->this_update;
    out->info.next_update = sl->next_update;
    out->info.crl_number = sl->crl_number;
    out->info.entries = sl->entries;
    out->e = (ix_entry *)e;
    out->n = out->cap = (size_t)sl->n;
    out->skew = sl->skew;
    out->good_ttl = sl->good_ttl;
    out->hold_ttl = sl->hold_ttl;
    out->revoked_ttl = sl->revoked_ttl;
}

/* Slot fields of a new index (inside the writer's section). */
static void slot_fill(zslot *sl, const char *who, const jpki_crl_index *ix,
                      int64_t now)
{
    sl->used = 1;
    memcpy(sl->who, who, sizeof(sl->who));
    memcpy(sl->key, ix->info.key_hash, 20);
    sl->n = ix->n;
    sl->this_update = ix->info.this_update;
    sl->next_update = ix->info.next_update;
    sl->crl_number = ix->info.crl_number;
    sl->entries = ix->info.entries;
    sl->skew = ix->skew;
    sl->good_ttl = ix->good_ttl;
    sl->hold_ttl = ix->hold_ttl;
    sl->revoked_ttl = ix->revoked_ttl;
    sl->loaded = now;
}

/* First fit among the blocks in use (lock held); 0 when nothing fits
 * (*avail: the largest gap). */
static uint64_t block_alloc(const zhdr *h, uint64_t need, uint64_t *avail)
{
    struct { uint64_t off, size; } b[JPKI_CRLZONE_SLOTS + ZFILLS], t;
    uint64_t pos = h->data, found = 0, gap;
    int i, j, n = 0;

    for (i = 0; i < JPKI_CRLZONE_SLOTS; i++)
        if (h->slot[i].used && h->slot[i].size != 0) {
            b[n].off = h->slot[i].off;
            b[n++].size = h->slot[i].size;
        }
    for (i = 0; i < ZFILLS; i++)
        if (h->fill[i].size != 0) {
            b[n].off = h->fill[i].off;
            b[n++].size = h->fill[i].size;
        }
    for (i = 1; i < n; i++) {                   /* by offset */
        t = b[i];
        for (j = i; j > 0 && b[j - 1].off > t.off; j--)
            b[j] = b[j - 1];
        b[j] = t;
    }
    *avail = 0;
    for (i = 0; i <= n; i++) {
        gap = i < n ? (b[i].off > pos ? b[i].off - pos : 0)
                    : (h->size > pos ? h->size - pos : 0);
        if (gap > *avail)
            *avail = gap;
        if (found == 0 && gap >= need)
            found = pos;
        if (i < n && b[i].off + b[i].size > pos)
            pos = b[i].off + b[i].size;
    }
    return found;
}

typedef struct {
    const jpki_crlzone_file *f;
    char who[WHO_LEN + 1];
    int had;                      /* a CRL of the key was in force */
    int retry;                    /* taken over: not a try of the file */
    char *msg;
    size_t msglen;
} pub_state;

/* The CRL of ix may replace the one of its key in force (lock held). */
static jpki_err may_replace(jpki_crlzone *z, pub_state *ps,
                            const jpki_crl_index *ix, char *detail, size_t dl)
{
    struct jpki_crl_index cur;
    int i = slot_find(z, ps->who, ix->info.key_hash, 0);

    ps->had = i >= 0;
    if (i < 0)
        return jpki_crl_index_replaces(ix, ps->f->issuer, NULL, detail, dl);
    slot_index(&z->h->slot[i], ps->f->issuer, NULL, &cur);
    return jpki_crl_index_replaces(ix, ps->f->issuer, &cur, detail, dl);
}

static jpki_crlzone_outcome publish_local(jpki_crlzone *z, pub_state *ps,
                                          jpki_crl_index *ix, int64_t now,
                                          jpki_err *e, char *detail,
                                          size_t dl)
{
    jpki_crl_index *old = NULL;
    int i;

    zlock(z);
    *e = may_replace(z, ps, ix, detail, dl);
    i = *e == JPKI_OK ? slot_find(z, ps->who, ix->info.key_hash, 1) : -1;
    if (i >= 0) {
        old = z->ix[i];
        z->ix[i] = ix;
        write_begin(&z->h->slot[i].seq);
        slot_fill(&z->h->slot[i], ps->who, ix, now);
        write_end(&z->h->slot[i].seq);
    }
    zunlock(z);
    jpki_crl_index_free(old);
    if (*e != JPKI_OK) {
        jpki_crl_index_free(ix);
        return JPKI_CRLZONE_REFUSED;
    }
    if (i < 0) {
        jpki_crl_index_free(ix);
        *e = JPKI_ERR_STORE_FULL;
        jpki_set_detail(ps->msg, ps->msglen, "CRL \"%s\" of issuer \"%s\" "
                        "not loaded: %d CRLs are in force already",
                        ps->f->path, ps->f->issuer->name, JPKI_CRLZONE_SLOTS);
        return JPKI_CRLZONE_FAILED;
    }
    return JPKI_CRLZONE_LOADED;
}

static jpki_crlzone_outcome too_small(jpki_crlzone *z, pub_state *ps,
                                      uint64_t need, uint64_t avail)
{
    jpki_set_detail(ps->msg, ps->msglen, "CRL zone \"%s\" too small: CRL "
                    "\"%s\" of issuer \"%s\" needs %llu bytes, %llu free of "
                    "%llu (raise the zone's size: it must hold the CRLs in "
                    "force and a replacement, 24 bytes an entry); not loaded"
                    ", %s", z->name, ps->f->path, ps->f->issuer->name,
                    (unsigned long long)need, (unsigned long long)avail,
                    (unsigned long long)(z->h->size - z->h->data),
                    ps->had ? "the CRL loaded before stays in force"
                            : "CRL checks of its key fail closed");
    return JPKI_CRLZONE_FAILED;
}

/* Steps 1 to 3 of "Publishing a CRL" (see the top of this file). */
static jpki_crlzone_outcome publish_shared(jpki_crlzone *z, pub_state *ps,
                                           jpki_crl_index *ix, int64_t now,
                                           jpki_err *e, char *detail,
                                           size_t dl)
{
    zhdr *h = z->h;
    zfill *fl = NULL;
    uint64_t bytes = (uint64_t)ix->n * sizeof(ix_entry), off = 0, avail = 0;
    uint64_t need = (bytes + ZALIGN - 1) / ZALIGN * ZALIGN;
    int i, slot = -1, ok;

    need = need ? need : ZALIGN;
    zlock(z);
    *e = may_replace(z, ps, ix, detail, dl);
    for (i = 0; i < ZFILLS && fl == NULL && *e == JPKI_OK; i++)
        if (h->fill[i].size == 0)
            fl = &h->fill[i];
    if (fl != NULL && (off = block_alloc(h, need, &avail)) != 0) {
        fl->off = off;
        fl->size = need;
        fl->pid = z->self;
    }
    zunlock(z);
    if (*e != JPKI_OK)
        return JPKI_CRLZONE_REFUSED;
    *e = JPKI_ERR_STORE_FULL;
    if (off == 0 && fl != NULL)
        return too_small(z, ps, need, avail);
    if (off == 0) {
        jpki_set_detail(ps->msg, ps->msglen, "CRL zone \"%s\": loaders "
                        "taken over are still copying: CRL \"%s\" not loaded",
                        z->name, ps->f->path);
        return JPKI_CRLZONE_FAILED;
    }

    /* the block may have been a CRL that lookups still read: the barrier
     * orders these writes after the section that freed it */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (bytes > 0)
        memcpy((char *)h + off, ix->e, (size_t)bytes);

    zlock(z);
    ok = fl->pid == z->self && fl->off == off && fl->size == need
         && h->loader == z->self;
    if (ok && (*e = may_replace(z, ps, ix, detail, dl)) == JPKI_OK)
        slot = slot_find(z, ps->who, ix->info.key_hash, 1);
    if (slot >= 0) {
        zslot *sl = &h->slot[slot];

        write_begin(&sl->seq);
        slot_fill(sl, ps->who, ix, now);
        sl->off = off;
        sl->size = need;
        write_end(&sl->seq);
    }
    if (fl->pid == z->self && fl->off == off)
        fl->size = 0;
    zunlock(z);
    if (slot >= 0)
        return JPKI_CRLZONE_LOADED;
    if (ok && *e != JPKI_OK)
        return JPKI_CRLZONE_REFUSED;
    *e = ok ? JPKI_ERR_STORE_FULL : JPKI_ERR_INTERNAL;
    ps->retry = !ok;
    jpki_set_detail(ps->msg, ps->msglen, ok ? "CRL zone \"%s\": CRL \"%s\" "
                    "not loaded: %d CRLs are in force already"
                    : "CRL zone \"%s\": CRL \"%s\" not loaded: another process"
                    " took the loading over", z->name, ps->f->path,
                    JPKI_CRLZONE_SLOTS);
    return JPKI_CRLZONE_FAILED;
}

/* The try, for every process; the claim released when nothing else of
 * this process is being loaded. */
static void record_try(jpki_crlzone *z, const jpki_crlzone_file *f,
                       jpki_err e, const uint8_t *key, int retry)
{
    zfile *r;

    zlock(z);
    r = file_rec(z, file_hash(f->issuer, f->path), who_hash(f->issuer), 1);
    if (r != NULL) {
        write_begin(&r->seq);
        memcpy(r->fid, f->fid, f->fidlen);
        /* a load taken over by another process (this one silent for a
         * minute): that version is not tried yet, the other loads it */
        r->fidlen = retry ? 0 : (uint32_t)f->fidlen;
        r->error = e;
        if (key != NULL) {
            r->has_key = 1;
            memcpy(r->key, key, 20);
        }
        if (r->busy == z->self)
            r->busy = 0;
        write_end(&r->seq);
    }
    if (z->loading > 0)
        z->loading--;
    if (z->shared && z->loading == 0 && z->h->loader == z->self)
        z->h->loader = 0;
    zunlock(z);
}

jpki_crlzone_outcome jpki_crlzone_end(jpki_crlzone *z,
                                      const jpki_crlzone_file *f, jpki_err e,
                                      jpki_crl_index *ix, int64_t now,
                                      char *msg, size_t msglen)
{
    jpki_crlzone_outcome o = JPKI_CRLZONE_REFUSED;
    uint8_t key[20];
    uint64_t n = 0;
    char detail[256] = "";
    pub_state ps;

    memset(&ps, 0, sizeof(ps));
    ps.f = f;
    ps.msg = msg;
    ps.msglen = msglen;
    who_of(f->issuer, ps.who);
    if (e == JPKI_OK && ix != NULL) {
        n = ix->info.entries;
        memcpy(key, ix->info.key_hash, 20);
        o = z->shared ? publish_shared(z, &ps, ix, now, &e, detail,
                                       sizeof(detail))
                      : publish_local(z, &ps, ix, now, &e, detail,
                                      sizeof(detail));
        if (z->shared)
            jpki_crl_index_free(ix);
    } else {
        jpki_crl_index_free(ix);
        if (e == JPKI_OK)
            e = JPKI_ERR_INTERNAL;
    }
    record_try(z, f, e, o == JPKI_CRLZONE_LOADED ? key : NULL, ps.retry);
    if (o == JPKI_CRLZONE_LOADED)
        jpki_set_detail(msg, msglen, "CRL \"%s\" of issuer \"%s\" loaded: "
                        "%llu entries%s", f->path, f->issuer->name,
                        (unsigned long long)n,
                        z->shared ? " (shared zone)" : "");
    else if (o == JPKI_CRLZONE_REFUSED)
        jpki_set_detail(msg, msglen, "CRL \"%s\" refused: %s%s%s%s", f->path,
                        jpki_reason(e), detail[0] ? " (" : "", detail,
                        detail[0] ? ")" : "");
    return o;
}

int jpki_crlzone_unreadable(jpki_crlzone *z, const jpki_issuer *is,
                            const char *path)
{
    zfile *r;
    int first = 0;

    if (z == NULL)
        return 0;
    zlock(z);
    r = file_rec(z, file_hash(is, path), who_hash(is), 1);
    if (r != NULL && !(r->error == JPKI_ERR_IO && r->fidlen == 0)) {
        write_begin(&r->seq);
        r->error = JPKI_ERR_IO;
        r->fidlen = 0;                  /* any version is tried when back */
        write_end(&r->seq);
        first = 1;
    }
    zunlock(z);
    return first;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* A consistent copy of the slot of (who, key): its index, or -1 when
 * there is none; -2 when a writer was in a slot (try again). */
static int slot_read(jpki_crlzone *z, const char *who, const uint8_t *key,
                     zslot *out)
{
    int i, busy = 0;

    for (i = 0; i < JPKI_CRLZONE_SLOTS; i++) {
        if (!read_copy(&z->h->slot[i], out, sizeof(*out))) {
            busy = 1;
            continue;
        }
        if (out->used && memcmp(out->who, who, WHO_LEN) == 0
            && memcmp(out->key, key, 20) == 0)
            return i;
    }
    return busy ? -2 : -1;
}

/* The entries of a copied slot, inside the zone whatever was read. */
static const void *slot_entries(jpki_crlzone *z, const zslot *c)
{
    uint64_t bytes = c->n * sizeof(ix_entry);

    if (c->n > z->size / sizeof(ix_entry) || c->off < z->h->data
        || c->off > z->size || bytes > c->size || c->size > z->size - c->off)
        return NULL;
    return (const char *)z->h + c->off;
}

static jpki_err lookup_local(jpki_crlzone *z, const char *who,
                             const jpki_issuer *is, const uint8_t *key,
                             const char *cert_id, time_t now,
                             unsigned grace_s, jpki_rev_info *info)
{
    struct jpki_crl_index ix;
    jpki_err e = JPKI_ERR_REVOCATION_UNAVAILABLE;
    zslot c;
    int i;

    rdlock(z);
    i = slot_read(z, who, key, &c);
    if (i >= 0 && z->ix[i] != NULL) {
        slot_index(&c, is, z->ix[i]->e, &ix);
        e = jpki_crl_index_lookup(&ix, cert_id, now, grace_s, info);
    }
    rdunlock(z);
    return e;
}

jpki_err jpki_crlzone_lookup(jpki_crlzone *z, const jpki_issuer *is,
                             const uint8_t *key, const char *cert_id,
                             time_t now, unsigned grace_s,
                             jpki_rev_info *info)
{
    struct jpki_crl_index ix;
    char who[WHO_LEN + 1];
    const void *ents;
    jpki_err e;
    zslot c;
    int s, t;

    if (info == NULL)
        return JPKI_ERR_INVALID;
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;
    if (z == NULL || is == NULL || key == NULL || cert_id == NULL)
        return JPKI_ERR_REVOCATION_UNAVAILABLE;
    who_of(is, who);
    if (!z->shared)
        return lookup_local(z, who, is, key, cert_id, now, grace_s, info);
    for (t = 0; t < ZTRIES; t++) {
        pause_try(t);
        s = slot_read(z, who, key, &c);
        if (s == -2)
            continue;                   /* a writer in a section */
        if (s == -1)
            return JPKI_ERR_REVOCATION_UNAVAILABLE;
        ents = slot_entries(z, &c);
        if (ents == NULL) {
            if (read_ok(&z->h->slot[s].seq, c.seq))
                break;                  /* inconsistent: fail closed */
            continue;
        }
        slot_index(&c, is, ents, &ix);
        e = jpki_crl_index_lookup(&ix, cert_id, now, grace_s, info);
        if (read_ok(&z->h->slot[s].seq, c.seq))
            return e;
        /* swapped during the search: its block may have been reused */
    }
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;
    jpki_log(is->ctx, JPKI_LOG_ERROR, "jpki: CRL zone \"%s\": the CRL of "
             "issuer \"%s\" kept changing during a lookup: revocation "
             "unavailable", z->name, is->name);
    return JPKI_ERR_REVOCATION_UNAVAILABLE;
}

/* A consistent copy of a file record and of the slot of its CRL: 1 when
 * the file has a CRL in force (*sl filled), 0 when not, -1 when there is
 * no record. */
static int status_read(jpki_crlzone *z, const jpki_issuer *is,
                       const char *path, zfile *fr, zslot *sl)
{
    uint64_t id = file_hash(is, path);
    char who[WHO_LEN + 1];
    int i, t, s, busy;

    who_of(is, who);
    for (t = 0; t < ZTRIES; t++) {
        pause_try(t);
        for (i = 0, busy = 0; i < JPKI_CRLZONE_FILES; i++) {
            if (!read_copy(&z->h->file[i], fr, sizeof(*fr)))
                busy = 1;
            else if (fr->used && fr->id == id)
                break;
        }
        if (i == JPKI_CRLZONE_FILES) {
            if (busy)
                continue;
            return -1;
        }
        if (!fr->has_key)
            return 0;
        s = slot_read(z, who, fr->key, sl);
        if (s != -2)
            return s >= 0;
    }
    return -1;
}

void jpki_crlzone_health(jpki_crlzone *z, const jpki_issuer *is,
                         const char *path, const char *label,
                         jpki_health *h)
{
    struct jpki_crl_index ix;
    zfile fr;
    zslot sl;
    int r = -1;

    if (z != NULL) {
        rdlock(z);
        r = status_read(z, is, path, &fr, &sl);
        rdunlock(z);
    }
    if (r <= 0) {
        jpki_health_add_crl(h, is->name, label, NULL, r < 0
                            ? JPKI_ERR_REVOCATION_UNAVAILABLE
                            : (jpki_err)fr.error, 0);
        return;
    }
    slot_index(&sl, is, NULL, &ix);
    jpki_health_add_crl(h, is->name, label, &ix.info, (jpki_err)fr.error,
                        sl.loaded);
}

/* ------------------------------------------------------------------ */
/* Files and coverage                                                  */
/* ------------------------------------------------------------------ */

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int crl_name(const char *n)
{
    size_t l = strlen(n);

    return n[0] != '.' && l > 4 && (strcmp(n + l - 4, ".crl") == 0
                                    || strcmp(n + l - 4, ".pem") == 0);
}

int jpki_crl_source_files(const char *src, char **out, size_t max)
{
    struct stat st;
    struct dirent *de;
    DIR *d;
    size_t n = 0;

    if (stat(src, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        if (max == 0 || (out[0] = strdup(src)) == NULL)
            return -1;
        return 1;
    }
    d = opendir(src);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL && n < max) {
        size_t l = strlen(src) + strlen(de->d_name) + 2;

        if (!crl_name(de->d_name) || (out[n] = malloc(l)) == NULL)
            continue;
        snprintf(out[n], l, "%s%s%s", src,
                 src[strlen(src) - 1] == '/' ? "" : "/", de->d_name);
        if (stat(out[n], &st) != 0 || !S_ISREG(st.st_mode)) {
            free(out[n]);
            continue;
        }
        n++;
    }
    closedir(d);
    qsort(out, n, sizeof(char *), path_cmp);
    return (int)n;
}

void jpki_crl_source_files_free(char **out, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(out[i]);
}

/* The keys the files of one source cover (appended to keys[*nk]). */
static void source_keys(const jpki_ctx *ctx, const jpki_issuer *is,
                        const char *src, uint8_t (*keys)[20], size_t *nk,
                        size_t max)
{
    char *files[JPKI_CRL_DIR_MAX];
    jpki_crl_info info;
    uint8_t *der;
    size_t len;
    int n, i;
    jpki_err e;

    n = jpki_crl_source_files(src, files, JPKI_CRL_DIR_MAX);
    for (i = 0; i < n; i++) {
        if (jpki_load_file(files[i], JPKI_CRL_MAX, &der, &len) != JPKI_OK)
            continue;
        e = jpki_crl_verify(ctx, der, len, time(NULL),
                            JPKI_CRL_GRACE_VALIDITY, &info, NULL, 0);
        free(der);
        if ((e == JPKI_OK || e == JPKI_ERR_CRL_STALE
             || e == JPKI_ERR_CRL_NOT_YET_VALID) && info.issuer == is
            && *nk < max)
            memcpy(keys[(*nk)++], info.key_hash, 20);
    }
    if (n > 0)
        jpki_crl_source_files_free(files, (size_t)n);
}

size_t jpki_crl_coverage_check(const jpki_ctx *ctx, const jpki_issuer *is,
                               const char *const *sources, size_t n,
                               void (*warn)(void *ud, const char *msg),
                               void *ud)
{
    uint8_t keys[64][20], seen[64][20], h[20];
    size_t nk = 0, ns = 0, i, k, gaps = 0;
    char subj[256], msg[512], hex[41];
    int j;

    for (i = 0; i < n; i++)
        source_keys(ctx, is, sources[i], keys, &nk, 64);
    for (j = 0; j < sk_X509_num(is->all) && ns < 64; j++) {
        X509 *ca = sk_X509_value(is->all, j);

        if (!jpki_key_hash_sha1(ca, h))
            continue;
        for (k = 0; k < ns && memcmp(seen[k], h, 20) != 0; k++)
            ;
        if (k < ns)
            continue;                   /* a link certificate's key */
        memcpy(seen[ns++], h, 20);
        for (k = 0; k < nk && memcmp(keys[k], h, 20) != 0; k++)
            ;
        if (k < nk)
            continue;
        gaps++;
        X509_NAME_oneline(X509_get_subject_name(ca), subj, sizeof(subj));
        jpki_hex_encode(h, 8, hex);
        jpki_set_detail(msg, sizeof(msg), "issuer \"%s\": no CRL file covers"
                        " the CA key %s (%s): the CRL checks of the "
                        "certificates it issued will fail closed", is->name,
                        hex, subj);
        if (warn != NULL)
            warn(ud, msg);
    }
    return gaps;
}
