/*
 * mod_auth_jpki_io.c - the files the module watches, and its start:
 *  - CRL indexes and the mapping file: loaded in the parent (the children
 *    share the pages), re-read by each child when a file changes (checked
 *    at most once a second), with the nginx module's rules for CRLs; with
 *    JPKICRLZone, CRLs are parsed once, by one process, into an APR shared
 *    memory segment every child reads (kept across restarts);
 *  - the health endpoint's JSON (CRLs of this process, store reachable;
 *    written by the core, common/gate.c);
 *  - post_config and child_init: the stores' segments, the poller.
 * The store's commands and Redis are in mod_auth_jpki_redis.c, the shared
 * segments in mod_auth_jpki_store.c, OCSP in mod_auth_jpki_ocsp.c.
 */

#include "mod_auth_jpki.h"
#include "gate.h"

#include "ap_mpm.h"
#include "util_mutex.h"
#include "apr_atomic.h"
#include "apr_poll.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"
#include "apr_hash.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

APLOG_USE_MODULE(auth_jpki);



/* ------------------------------------------------------------------ */
/* OCSP                                                                */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* CRL indexes                                                         */
/* ------------------------------------------------------------------ */

static apr_status_t
jpki_crl_cleanup(void *data)
{
    jpki_site       *site = data;
    jpki_issuer_rt  *rt = (jpki_issuer_rt *) site->rt_issuers->elts;
    int              i;

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        jpki_crl_index_free(rt[i].crl);
        rt[i].crl = NULL;
    }

    return APR_SUCCESS;
}


/* ---- The CRL zone (JPKICRLZone) -------------------------------------
 * One APR shared memory segment per site, created in the parent before the
 * children are forked: every process maps it at the same address, so the
 * pointers inside a placed index (jpki_crl_index_place) are valid in all
 * of them.  The segment: a header (the loader's claim, the blocks being
 * filled, one slot per issuer by its position in the site), then the
 * blocks of the placed indexes, found by first fit among the blocks in use
 * (the slots' indexes in force and the blocks being filled).
 *
 * Writers.  Everything in the header changes under the zone's global
 * mutex.  One process at a time parses a changed file (the claim; a loader
 * that died is taken over at once, one silent for a minute too), copies
 * the index into a block it reserved (a fill record: the block is no
 * slot's yet, nobody reads it) and puts it in force by changing the slot.
 * The block of the index replaced is free from that moment: the next load
 * may write another index over it (at another offset: blocks move).
 *
 * Readers (lookups, health, the loader's checks) take no lock: a seqlock
 * per slot.  slot->seq is even while the slot is stable, odd while a
 * writer changes it; every change of the slot (a new index, an index
 * retired, a try recorded) is one section:
 *
 *   writer (mutex held)               reader (no lock)
 *   seq = odd; full barrier           s = seq (acquire); odd: retry
 *   change the slot                   copy the slot's fields and the
 *   seq = even (release)                 header of its index (80 bytes)
 *                                     acquire barrier; seq != s: retry
 *                                     lookup: the entries, in the zone
 *                                     acquire barrier; seq != s: retry
 *
 * A block is written again only after the swap that took it out of its
 * slot, i.e. after a section that changed the seq of the slot: a reader
 * that still reads in it (it read the slot before the swap, and was then
 * descheduled for any time) finds the seq changed at its last check and
 * starts again from the slot; what it read meanwhile is not used.  (The
 * fill makes a full barrier before it writes: its stores come after that
 * swap for every reader.)  A lookup never follows a pointer it read in the
 * zone before that pointer was validated:
 *  - the index's address is checked against the segment before its header
 *    is copied (a torn read cannot make it copy from elsewhere);
 *  - the copy is used only when the seq did not change meanwhile, and when
 *    it is the one published: the block, the placed size (entries count)
 *    and a checksum of the header recorded in the slot by the writer
 *    match;
 *  - the core then works on that copy: its entries pointer and count are
 *    the ones published, inside the block, inside the segment; if the
 *    block is reused during the binary search, the search reads garbage,
 *    never outside the segment, and its verdict is thrown away.
 * A reader retries a few times (a writer's section is a few stores; a seq
 * odd for long is a writer that died in its section: a reader that gets
 * the mutex without waiting ends that section), then fails closed
 * (revocation_unavailable).  Readers never wait for a loader, and a
 * lookup costs two atomic loads, an 80-byte copy and its checksum more
 * than the binary search. */

#define JPKI_CRLZ_MAGIC     ((apr_uint64_t) 0x4a504b4943524c32)  /* JPKICRL2 */
#define JPKI_CRLZ_SLOTS     16              /* JPKI_MAX_ISSUERS of the core */
#define JPKI_CRLZ_FILLS     4               /* blocks being filled */
#define JPKI_CRLZ_TAKEOVER  apr_time_from_sec(60)
#define JPKI_CRLZ_ALIGN     64
#define JPKI_CRLZ_IXHDR_MAX 256             /* a placed index's header */
#define JPKI_CRLZ_TRIES     64              /* of a reader, then it fails */
#define JPKI_CRLZ_YIELDS    8               /* the first tries only yield */
#define JPKI_CRLZ_LIST      "auth_jpki-crlzones"

typedef struct {
    apr_size_t                 off;           /* from the segment's base */
    apr_size_t                 size;          /* 0: none */
    pid_t                      pid;           /* the loader filling it */
} jpki_crlz_fill;

typedef struct {
    apr_uint32_t               seq;           /* even: stable; odd: changing */
    /* the index in force and its block */
    const jpki_crl_index      *cur;           /* NULL: none */
    apr_size_t                 off;           /* of its block */
    apr_size_t                 size;          /* of its block; 0: none */
    apr_size_t                 placed;        /* its placed size */
    apr_uint64_t               sum;           /* checksum of its header */
    apr_time_t                 loaded;        /* when it was put in force */
    char                       tag[17];       /* issuer tag of cur */
    /* the last try to load the issuer's file */
    apr_time_t                 mtime;         /* the file tried last */
    apr_off_t                  fsize;
    apr_ino_t                  inode;
    int                        error;         /* jpki_err of that try */
    char                       tried[17];     /* issuer tag of the try */
} jpki_crlz_slot;

typedef struct {
    apr_uint64_t               magic;
    apr_size_t                 size;          /* of the segment */
    apr_size_t                 data;          /* offset of the blocks */
    pid_t                      loader;        /* 0: nobody is loading */
    apr_time_t                 loading_since;
    jpki_crlz_fill             fill[JPKI_CRLZ_FILLS];
    jpki_crlz_slot             slot[JPKI_CRLZ_SLOTS];
} jpki_crlz_hdr;

#define JPKI_CRLZ_DATA  APR_ALIGN(sizeof(jpki_crlz_hdr), JPKI_CRLZ_ALIGN)

/* A reader's consistent copy of a slot (jpki_crlz_read). */
typedef struct {
    apr_uint32_t               seq;           /* the slot's, when copied */
    const jpki_crl_index      *ix;            /* ixhdr; NULL: no CRL of the
                                                 issuer in force */
    apr_time_t                 loaded;
    apr_time_t                 mtime;
    apr_off_t                  fsize;
    apr_ino_t                  inode;
    int                        error;
    int                        tried;         /* the last try was of this
                                                 issuer's file */
    apr_uint64_t               ixhdr[JPKI_CRLZ_IXHDR_MAX / 8];
} jpki_crlz_view;

/* The size of a placed index's header (struct jpki_crl_index, opaque
 * here; its entries follow it in the block): the placed size of an index
 * without entries, which the core computes from a zeroed one (no entries).
 * The same in every process (computed in the parent). */
static apr_size_t jpki_crlz_hl;

static volatile apr_uint32_t jpki_crlz_complained;   /* second of the last
                                                        reader's complaint */


static apr_size_t
jpki_crlz_header_size(void)
{
    static const apr_uint64_t  zero[JPKI_CRLZ_IXHDR_MAX / 8];
    apr_size_t                 n;

    n = jpki_crl_index_placed_size((const jpki_crl_index *) zero);

    return n > 0 && n <= sizeof(zero) && n % 8 == 0 ? n : 0;
}


/* A checksum of a placed index's header (n: a multiple of 8), recorded
 * when it is published, checked by every reader: an FNV-style mix by
 * 64-bit words (ten multiplications for an 80-byte header). */
static apr_uint64_t
jpki_crlz_sum(const void *p, apr_size_t n)
{
    const char    *b = p;
    apr_uint64_t   h = APR_UINT64_C(0xcbf29ce484222325), w;

    for (; n >= 8; n -= 8, b += 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * APR_UINT64_C(0x100000001b3);
        h ^= h >> 29;
    }

    return h;
}


static int
jpki_pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}


/* A writer's section (zone mutex held): the seq odd before the first
 * change is visible, even again after the last. */
static void
jpki_crlz_write_begin(jpki_crlz_slot *sl)
{
    apr_uint32_t  s = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);

    /* odd already: the section of a writer that died (we hold the mutex,
     * nobody else is in one); a new odd value all the same */
    __atomic_store_n(&sl->seq, s + ((s & 1) ? 2 : 1), __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}


static void
jpki_crlz_write_end(jpki_crlz_slot *sl)
{
    __atomic_store_n(&sl->seq, __atomic_load_n(&sl->seq, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELEASE);
}


/* A reader: whether the slot is still as it was at seq s (everything read
 * before is ordered before this check). */
static int
jpki_crlz_unchanged(const jpki_crlz_slot *sl, apr_uint32_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);

    return __atomic_load_n(&sl->seq, __ATOMIC_RELAXED) == s;
}


/* A reader's complaint, at most once a second per process. */
static void
jpki_crlz_complain(jpki_site *site, jpki_issuer_rt *x, const char *what)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());
    apr_uint32_t  last = apr_atomic_read32(&jpki_crlz_complained);

    if (last != now && apr_atomic_cas32(&jpki_crlz_complained, now, last)
                       == last)
    {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s: the CRL of issuer \"%s\" %s: revocation "
                     "unavailable", site->crlz->name, x->spec->name, what);
    }
}


/* Between two tries of a reader: a writer is in its section (a few stores
 * under the mutex: let it run), or changed the slot under the read.  After
 * a few tries, a seq still odd when the mutex is ours (taken without
 * waiting) is the section of a writer that died: ended here. */
static void
jpki_crlz_backoff(jpki_crl_zone *z, jpki_crlz_slot *sl, int tries)
{
    apr_uint32_t  s;

    if (tries < JPKI_CRLZ_YIELDS) {
        apr_thread_yield();
        return;
    }

    if (apr_global_mutex_trylock(z->mutex) == APR_SUCCESS) {
        s = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
        if (s & 1) {
            __atomic_store_n(&sl->seq, s + 1, __ATOMIC_RELEASE);
        }
        apr_global_mutex_unlock(z->mutex);
    }
    apr_sleep(1000);
}


/* The slot of an issuer in the zone. */
static jpki_crlz_slot *
jpki_crlz_slot_of(jpki_site *site, jpki_issuer_rt *x)
{
    jpki_crlz_hdr  *h;
    long            i;

    if (site->crlz == NULL || site->crlz->hdr == NULL) {
        return NULL;
    }
    h = site->crlz->hdr;
    i = x - (jpki_issuer_rt *) site->rt_issuers->elts;

    return i >= 0 && i < JPKI_CRLZ_SLOTS ? &h->slot[i] : NULL;
}


/* A reader's consistent copy of the slot of an issuer, its index's header
 * included (the protocol above).  1: *v filled (v->ix NULL when no CRL of
 * the issuer is in force); 0: no consistent or valid copy could be had
 * (logged; fail closed). */
static int
jpki_crlz_read(jpki_site *site, jpki_issuer_rt *x, jpki_crlz_view *v)
{
    jpki_crl_zone         *z = site->crlz;
    jpki_crlz_slot        *sl = jpki_crlz_slot_of(site, x);
    const char            *tag = jpki_issuer_tag(x->issuer);
    const char            *base, *ix;
    const jpki_crl_index  *copy = (const jpki_crl_index *) v->ixhdr;
    apr_size_t             hl = jpki_crlz_hl, end, off, size, placed;
    apr_uint64_t           sum;
    apr_uint32_t           s;
    char                   cur_tag[17], tried[17];
    int                    i, inside;

    if (sl == NULL || hl == 0) {
        return 0;
    }
    base = z->hdr;
    end = apr_shm_size_get(z->shm);

    for (i = 0; i < JPKI_CRLZ_TRIES; i++) {
        if (i > 0) {
            jpki_crlz_backoff(z, sl, i);
        }

        s = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
        if (s & 1) {
            continue;                           /* a writer is in it */
        }

        /* each field read once (atomic loads: never re-read) */
        ix = (const char *) __atomic_load_n(&sl->cur, __ATOMIC_RELAXED);
        off = __atomic_load_n(&sl->off, __ATOMIC_RELAXED);
        size = __atomic_load_n(&sl->size, __ATOMIC_RELAXED);
        placed = __atomic_load_n(&sl->placed, __ATOMIC_RELAXED);
        sum = __atomic_load_n(&sl->sum, __ATOMIC_RELAXED);
        v->loaded = sl->loaded;
        v->mtime = sl->mtime;
        v->fsize = sl->fsize;
        v->inode = sl->inode;
        v->error = sl->error;
        memcpy(cur_tag, sl->tag, sizeof(cur_tag));
        memcpy(tried, sl->tried, sizeof(tried));

        /* the header is copied from within the zone only, whatever the
         * values read */
        inside = ix != NULL && ix >= base + JPKI_CRLZ_DATA
                 && end >= hl && ix <= base + end - hl;
        if (inside) {
            memcpy(v->ixhdr, ix, hl);
        }

        if (!jpki_crlz_unchanged(sl, s)) {
            continue;                           /* changed under the read */
        }

        /* a consistent copy of the slot */
        cur_tag[16] = tried[16] = '\0';
        v->seq = s;
        v->tried = strcmp(tried, tag) == 0;
        v->ix = NULL;

        if (ix == NULL || strcmp(cur_tag, tag) != 0) {
            return 1;                           /* none of this issuer */
        }

        /* the index as its writer published it: in its block, in the
         * segment, its entries too, its header unchanged */
        if (!inside || ix != base + off || off < JPKI_CRLZ_DATA
            || size > end || off > end - size || placed < hl
            || placed > size
            || jpki_crl_index_placed_size(copy) != placed
            || jpki_crlz_sum(v->ixhdr, hl) != sum)
        {
            jpki_crlz_complain(site, x, "is inconsistent in the zone");
            return 0;
        }

        v->ix = copy;
        return 1;
    }

    jpki_crlz_complain(site, x, "kept changing during a read");

    return 0;
}


/* A slot whose issuer is gone (zone mutex held): empty; its block is free
 * (lookups still in it see the seq change). */
static void
jpki_crlz_retire(jpki_crlz_slot *sl)
{
    if (sl->cur == NULL && sl->size == 0 && sl->tried[0] == '\0') {
        return;
    }
    jpki_crlz_write_begin(sl);
    __atomic_store_n(&sl->cur, NULL, __ATOMIC_RELAXED);
    sl->size = 0;
    sl->placed = 0;
    sl->tag[0] = '\0';
    sl->tried[0] = '\0';
    jpki_crlz_write_end(sl);
}


/* The zone of the n-th site having one (in the order of the servers):
 * found again at a restart, kept when its size did not change. */
static int
jpki_crlz_setup(apr_pool_t *ptemp, server_rec *s, jpki_site *site, int n)
{
    apr_pool_t          *pp = s->process->pool;
    apr_array_header_t  *all = NULL;
    jpki_crl_zone       *z = NULL;
    jpki_crlz_hdr       *h;
    const char          *key;
    apr_status_t         rv;
    int                  i, gen = ap_state_query(AP_SQ_CONFIG_GEN);

    jpki_crlz_hl = jpki_crlz_header_size();
    if (jpki_crlz_hl == 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: the core's CRL "
                     "index header is larger than this module expects (%d "
                     "bytes): JPKICRLZone unusable", JPKI_CRLZ_IXHDR_MAX);
        return !OK;
    }

    key = apr_psprintf(ptemp, "auth_jpki-crlzone-%d", n);
    apr_pool_userdata_get((void **) &z, key, pp);

    if (z != NULL && z->shm != NULL && z->size == site->crl_zone_size
        && z->hdr != NULL && ((jpki_crlz_hdr *) z->hdr)->magic
                             == JPKI_CRLZ_MAGIC
        && ((jpki_crlz_hdr *) z->hdr)->data == JPKI_CRLZ_DATA)
    {
        /* a restart: the CRLs loaded stay in force (a slot carries the
         * tag of its issuer: an issuer that changed loads its file); the
         * slots of issuers no longer configured are released */
        h = z->hdr;
        if (apr_global_mutex_lock(z->mutex) == APR_SUCCESS) {
            for (i = site->rt_issuers->nelts; i < JPKI_CRLZ_SLOTS; i++) {
                jpki_crlz_retire(&h->slot[i]);
            }
            apr_global_mutex_unlock(z->mutex);
        }
        z->generation = gen;
        site->crlz = z;
        return OK;
    }

    if (z == NULL) {
        z = apr_pcalloc(pp, sizeof(jpki_crl_zone));
        z->name = apr_psprintf(pp, "crl-%d", n);
        rv = ap_global_mutex_create(&z->mutex, &z->lockfile, JPKI_MUTEX_TYPE,
                                    z->name, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                         "the mutex of CRL zone %s", z->name);
            return !OK;
        }
        apr_pool_userdata_set(z, apr_pstrdup(pp, key), apr_pool_cleanup_null,
                              pp);
        apr_pool_userdata_get((void **) &all, JPKI_CRLZ_LIST, pp);
        if (all == NULL) {
            all = apr_array_make(pp, 4, sizeof(jpki_crl_zone *));
            apr_pool_userdata_set(all, JPKI_CRLZ_LIST, apr_pool_cleanup_null,
                                  pp);
        }
        APR_ARRAY_PUSH(all, jpki_crl_zone *) = z;

    } else if (z->shm != NULL) {
        /* another size (or the layout of another version of the module,
         * loaded by this restart): a new segment (the children of the
         * previous generation keep their own mapping of the old one) */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "jpki: CRL zone %s "
                     "%s: its CRLs are loaded again", z->name,
                     z->size != site->crl_zone_size ? "resized"
                     : "laid out by another version of the module");
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        z->hdr = NULL;
    }

    z->size = site->crl_zone_size;
    rv = apr_shm_create(&z->shm, z->size, NULL, pp);
    if (rv != APR_SUCCESS) {
        z->shm = NULL;
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of CRL zone %s (JPKICRLZone %"
                     APR_SIZE_T_FMT " bytes)", z->name, z->size);
        return !OK;
    }

    h = apr_shm_baseaddr_get(z->shm);
    memset(h, 0, sizeof(jpki_crlz_hdr));
    h->magic = JPKI_CRLZ_MAGIC;
    h->size = apr_shm_size_get(z->shm);
    h->data = JPKI_CRLZ_DATA;

    /* a placed index wants 8-byte alignment (the segment's base has it;
     * block offsets are multiples of JPKI_CRLZ_ALIGN) */
    if ((apr_uintptr_t) h % 8 != 0 || h->data >= h->size) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: CRL zone %s "
                     "unusable (%" APR_SIZE_T_FMT " bytes)", z->name,
                     h->size);
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        return !OK;
    }

    z->hdr = h;
    z->generation = gen;
    site->crlz = z;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s: %"
                 APR_SIZE_T_FMT " bytes for the CRLs", z->name,
                 h->size - h->data);

    return OK;
}


/* After a restart: the segments no site uses any more are released (the
 * children of the previous generation keep their own mapping). */
static void
jpki_crlz_sweep(server_rec *s)
{
    apr_array_header_t  *all = NULL;
    jpki_crl_zone       *z;
    int                  i, gen = ap_state_query(AP_SQ_CONFIG_GEN);

    apr_pool_userdata_get((void **) &all, JPKI_CRLZ_LIST, s->process->pool);

    for (i = 0; all && i < all->nelts; i++) {
        z = APR_ARRAY_IDX(all, i, jpki_crl_zone *);
        if (z->shm != NULL && z->generation != gen) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s is "
                         "no longer used: released", z->name);
            apr_shm_destroy(z->shm);
            z->shm = NULL;
            z->hdr = NULL;
        }
    }
}


/* This very file was tried for this issuer (by any process): from the
 * slot (zone mutex held), or from a reader's copy. */
static int
jpki_crlz_tried(const jpki_crlz_slot *sl, const apr_finfo_t *fi,
                const char *tag)
{
    return sl->mtime == fi->mtime && sl->fsize == fi->size
           && sl->inode == fi->inode && strcmp(sl->tried, tag) == 0;
}


static int
jpki_crlz_view_tried(const jpki_crlz_view *v, const apr_finfo_t *fi)
{
    return v->tried && v->mtime == fi->mtime && v->fsize == fi->size
           && v->inode == fi->inode;
}


/* First fit among the blocks in use (the slots' indexes, the blocks being
 * filled); 0 when nothing fits (*avail: the largest free gap).  Zone
 * mutex held. */
static apr_size_t
jpki_crlz_alloc(jpki_crlz_hdr *h, apr_size_t need, apr_size_t *avail)
{
    struct { apr_size_t off, size; } b[JPKI_CRLZ_SLOTS + JPKI_CRLZ_FILLS], t;
    apr_size_t       pos = h->data, found = 0, gap;
    int              i, j, n = 0;

    for (i = 0; i < JPKI_CRLZ_SLOTS; i++) {
        if (h->slot[i].size != 0) {
            b[n].off = h->slot[i].off;
            b[n++].size = h->slot[i].size;
        }
    }
    for (i = 0; i < JPKI_CRLZ_FILLS; i++) {
        if (h->fill[i].size != 0) {
            b[n].off = h->fill[i].off;
            b[n++].size = h->fill[i].size;
        }
    }

    for (i = 1; i < n; i++) {                   /* by offset */
        t = b[i];
        for (j = i; j > 0 && b[j - 1].off > t.off; j--) {
            b[j] = b[j - 1];
        }
        b[j] = t;
    }

    *avail = 0;
    for (i = 0; i <= n; i++) {
        gap = i < n ? (b[i].off > pos ? b[i].off - pos : 0)
                    : (h->size > pos ? h->size - pos : 0);
        if (gap > *avail) {
            *avail = gap;
        }
        if (found == 0 && gap >= need) {
            found = pos;
        }
        if (i < n && b[i].off + b[i].size > pos) {
            pos = b[i].off + b[i].size;
        }
    }

    return found;
}


/* Takes the claim to parse a file into the slot: 0 when another process is
 * loading, or when the file was tried meanwhile. */
static int
jpki_crlz_claim(jpki_site *site, jpki_crlz_slot *sl, const apr_finfo_t *fi,
                const char *tag)
{
    jpki_crl_zone  *z = site->crlz;
    jpki_crlz_hdr  *h = z->hdr;
    apr_time_t      now = apr_time_now();
    pid_t           me = getpid(), was;
    apr_status_t    rv;
    int             ok = 0, alive = 0, i;

    rv = apr_global_mutex_lock(z->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: cannot "
                     "lock CRL zone %s", z->name);
        return 0;
    }

    was = h->loader;
    if (was != 0 && was != me) {
        alive = jpki_pid_alive(was);
    }
    if (alive && now - h->loading_since < JPKI_CRLZ_TAKEOVER) {
        ok = 0;                             /* another process is loading */
    } else if (jpki_crlz_tried(sl, fi, tag)) {
        ok = 0;                             /* done meanwhile */
        was = 0;
    } else {
        /* the blocks left by loaders that died (or by this process) are
         * free; those of a live one taken over stay reserved until it
         * finds out, when it is done copying */
        for (i = 0; i < JPKI_CRLZ_FILLS; i++) {
            if (h->fill[i].size != 0
                && (h->fill[i].pid == me || !jpki_pid_alive(h->fill[i].pid)))
            {
                h->fill[i].size = 0;
                h->fill[i].pid = 0;
            }
        }
        h->loader = me;
        h->loading_since = now;
        ok = 1;
    }

    apr_global_mutex_unlock(z->mutex);

    if (ok && was != 0 && was != me) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, site->server, "jpki: CRL "
                     "zone %s: process %" APR_PID_T_FMT " %s, taken over",
                     z->name, was, alive ? "loading for more than a minute"
                                         : "died while loading");
    }

    return ok;
}


/* Copies a new index into the zone and puts it in force (ix is freed).
 * had: a CRL of the issuer was in force.  JPKI_ERR_STORE_FULL when it does
 * not fit (logged). */
static jpki_err
jpki_crlz_publish(jpki_site *site, jpki_issuer_rt *x, jpki_crlz_slot *sl,
                  jpki_crl_index *ix, const char *tag, int had)
{
    jpki_crl_zone         *z = site->crlz;
    jpki_crlz_hdr         *h = z->hdr;
    jpki_crlz_fill        *f = NULL;
    const jpki_crl_index  *placed;
    apr_size_t             size, need, off = 0, avail = 0;
    apr_uint64_t           sum = 0;
    pid_t                  me = getpid();
    int                    ok, ours, i;

    size = jpki_crl_index_placed_size(ix);
    need = APR_ALIGN(size, JPKI_CRLZ_ALIGN);

    if (apr_global_mutex_lock(z->mutex) != APR_SUCCESS) {
        jpki_crl_index_free(ix);
        return JPKI_ERR_INTERNAL;
    }
    for (i = 0; i < JPKI_CRLZ_FILLS && f == NULL; i++) {
        if (h->fill[i].size == 0) {
            f = &h->fill[i];
        }
    }
    if (f != NULL) {
        off = jpki_crlz_alloc(h, need, &avail);
        if (off) {
            f->off = off;
            f->size = need;
            f->pid = me;
        }
    }
    apr_global_mutex_unlock(z->mutex);

    if (f == NULL) {
        jpki_crl_index_free(ix);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s: %d loaders taken over are still copying: CRL \"%s\" "
                     "not loaded", z->name, JPKI_CRLZ_FILLS,
                     x->spec->crl_file);
        return JPKI_ERR_INTERNAL;
    }

    if (off == 0) {
        jpki_crl_index_free(ix);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s too small: CRL \"%s\" of issuer \"%s\" needs %"
                     APR_SIZE_T_FMT " bytes, %" APR_SIZE_T_FMT " free of %"
                     APR_SIZE_T_FMT " (raise JPKICRLZone: it must hold the "
                     "CRLs in force and a replacement, 24 bytes an entry); "
                     "not loaded%s", z->name, x->spec->crl_file,
                     x->spec->name, size, avail, h->size - h->data,
                     had ? ", the CRL loaded before stays in force"
                         : ", CRL checks of this issuer fail closed");
        return JPKI_ERR_STORE_FULL;
    }

    /* the block may have been an index that lookups still read: each of
     * them read its slot before the swap that freed the block, and sees
     * its seq changed; the barrier orders the copy after that swap */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    placed = jpki_crl_index_place(ix, (char *) h + off, need);
    jpki_crl_index_free(ix);
    if (placed != NULL) {
        sum = jpki_crlz_sum(placed, jpki_crlz_hl);
        if (jpki_crl_index_placed_size(placed) != size) {
            placed = NULL;
        }
    }

    if (apr_global_mutex_lock(z->mutex) != APR_SUCCESS) {
        return JPKI_ERR_INTERNAL;           /* the block is freed at this
                                               process's next claim */
    }
    /* still ours (not taken over by another loader meanwhile) */
    ours = f->pid == me && f->off == off && f->size == need;
    ok = ours && placed != NULL && h->loader == me;
    if (ok) {
        /* one section: the index in force, its block, its check values;
         * the block of the index replaced is free from here */
        jpki_crlz_write_begin(sl);
        __atomic_store_n(&sl->cur, placed, __ATOMIC_RELAXED);
        sl->off = off;
        sl->size = need;
        sl->placed = size;
        sl->sum = sum;
        sl->loaded = apr_time_now();
        apr_cpystrn(sl->tag, tag, sizeof(sl->tag));
        jpki_crlz_write_end(sl);
    }
    if (ours) {
        f->size = 0;
        f->pid = 0;
    }
    apr_global_mutex_unlock(z->mutex);

    return ok ? JPKI_OK : JPKI_ERR_INTERNAL;
}


/* Loads a changed file into the zone, when no other process does (the same
 * rules as without a zone). */
static void
jpki_crlz_load(jpki_site *site, jpki_issuer_rt *x, const apr_finfo_t *fi)
{
    jpki_crlz_slot        *sl = jpki_crlz_slot_of(site, x);
    jpki_crl_zone         *z = site->crlz;
    const char            *tag = jpki_issuer_tag(x->issuer);
    jpki_crl_index        *ix = NULL;
    jpki_crlz_view         v;
    apr_uint64_t           n = 0;
    uint8_t               *der;
    size_t                 len;
    jpki_err               e;
    char                   detail[256];

    if (sl == NULL || (jpki_crlz_read(site, x, &v)
                       && jpki_crlz_view_tried(&v, fi))
        || !jpki_crlz_claim(site, sl, fi, tag))
    {
        return;
    }

    /* the claim is ours: nobody else changes the slot's index now.  (A
     * slot that cannot be read, logged, is loaded over as if empty: a new
     * CRL is the way out.) */
    if (!jpki_crlz_read(site, x, &v)) {
        v.ix = NULL;
    }

    e = jpki_load_file(x->spec->crl_file, JPKI_CRL_MAX, &der, &len);
    if (e != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: "
                     "cannot read CRL \"%s\": %s", x->spec->crl_file,
                     jpki_strerror(e));
    } else {
        detail[0] = '\0';
        e = jpki_crl_index_build(site->ctx, der, len, time(NULL),
                                 site->grace, &ix, detail, sizeof(detail));
        free(der);

        if (e == JPKI_OK) {
            /* another issuer's CRL, or an older one: refused */
            e = jpki_crl_index_replaces(ix, x->issuer, v.ix, detail,
                                        sizeof(detail));
        }

        if (e != JPKI_OK) {
            jpki_crl_index_free(ix);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL "
                         "\"%s\" refused: %s%s%s%s", x->spec->crl_file,
                         jpki_reason(e), detail[0] ? " (" : "", detail,
                         detail[0] ? ")" : "");
        } else {
            n = jpki_crl_index_info(ix)->entries;
            e = jpki_crlz_publish(site, x, sl, ix, tag, v.ix != NULL);
            if (e == JPKI_OK) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, site->server,
                             "jpki: CRL \"%s\" of issuer \"%s\" loaded: %"
                             APR_UINT64_T_FMT " entries (shared zone)",
                             x->spec->crl_file, x->spec->name, n);
            }
        }
    }

    /* the try, for every process; the claim released */
    if (apr_global_mutex_lock(z->mutex) == APR_SUCCESS) {
        if (((jpki_crlz_hdr *) z->hdr)->loader == getpid()) {
            jpki_crlz_write_begin(sl);
            sl->mtime = fi->mtime;
            sl->fsize = fi->size;
            sl->inode = fi->inode;
            sl->error = e;
            apr_cpystrn(sl->tried, tag, sizeof(sl->tried));
            jpki_crlz_write_end(sl);
            ((jpki_crlz_hdr *) z->hdr)->loader = 0;
        }
        apr_global_mutex_unlock(z->mutex);
    }
}


/* A file that cannot be stat'ed: recorded for every process (logged
 * once), so that it is loaded again when it is back. */
static void
jpki_crlz_unreadable(jpki_site *site, jpki_issuer_rt *x, apr_status_t rv)
{
    jpki_crlz_slot  *sl = jpki_crlz_slot_of(site, x);
    const char      *tag = jpki_issuer_tag(x->issuer);
    jpki_crlz_view   v;
    int              first = 0;

    if (sl == NULL || (jpki_crlz_read(site, x, &v) && v.tried
                       && v.error == JPKI_ERR_IO))
    {
        return;
    }

    if (apr_global_mutex_lock(site->crlz->mutex) == APR_SUCCESS) {
        if (sl->error != JPKI_ERR_IO || strcmp(sl->tried, tag) != 0) {
            first = 1;
            jpki_crlz_write_begin(sl);
            sl->error = JPKI_ERR_IO;
            sl->mtime = 0;
            sl->fsize = -1;
            sl->inode = 0;
            apr_cpystrn(sl->tried, tag, sizeof(sl->tried));
            jpki_crlz_write_end(sl);
        }
        apr_global_mutex_unlock(site->crlz->mutex);
    }

    if (first) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: CRL "
                     "\"%s\" unreadable", x->spec->crl_file);
    }
}


/* A lookup in the zone, without a lock (the protocol above): the verdict
 * of an index that was in force from the start of the lookup to its end,
 * or revocation_unavailable. */
static jpki_err
jpki_crlz_lookup(jpki_site *site, jpki_issuer_rt *x, const char *cert_id,
                 jpki_rev_info *info)
{
    jpki_crlz_slot  *sl = jpki_crlz_slot_of(site, x);
    jpki_crlz_view   v;
    jpki_err         e;
    int              i;

    for (i = 0; i < JPKI_CRLZ_TRIES; i++) {
        if (sl == NULL || !jpki_crlz_read(site, x, &v)) {
            break;
        }
        if (v.ix == NULL) {
            return JPKI_ERR_REVOCATION_UNAVAILABLE;
        }
        /* the entries are read in the zone through the copy's pointer */
        e = jpki_crl_index_lookup(v.ix, cert_id, time(NULL), site->grace,
                                  info);
        if (jpki_crlz_unchanged(sl, v.seq)) {
            return e;
        }
        /* swapped during the search: its block may have been reused */
    }

    if (sl != NULL && i == JPKI_CRLZ_TRIES) {
        jpki_crlz_complain(site, x, "kept changing during lookups");
    }
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;

    return JPKI_ERR_REVOCATION_UNAVAILABLE;
}


/* Loads the issuers' CRL files that changed since they were loaded (all of
 * them the first time).  A file that does not verify, is stale or older
 * leaves the index loaded before in place (which then goes stale itself:
 * checks that need it fail closed).  The same rules as the nginx module.
 * With a CRL zone, one process parses a changed file for all. */
static void
jpki_crls_load(jpki_site *site, apr_pool_t *tmp)
{
    jpki_issuer_rt  *rt = (jpki_issuer_rt *) site->rt_issuers->elts, *x;
    jpki_crl_index  *ix, *old;
    apr_finfo_t      fi;
    apr_status_t     rv;
    uint8_t         *der;
    size_t           len;
    jpki_err         e;
    char             detail[256];
    int              i;

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        x = &rt[i];
        if (x->spec->crl_file == NULL) {
            continue;
        }

        rv = apr_stat(&fi, x->spec->crl_file, APR_FINFO_MTIME | APR_FINFO_SIZE
                                              | APR_FINFO_INODE, tmp);

        if (site->crlz) {
            if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
                jpki_crlz_unreadable(site, x, rv);
            } else {
                jpki_crlz_load(site, x, &fi);
            }
            continue;
        }

        if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
            if (x->crl_error != JPKI_ERR_IO) {
                ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: "
                             "CRL \"%s\" unreadable", x->spec->crl_file);
            }
            x->crl_error = JPKI_ERR_IO;
            continue;
        }

        if (fi.mtime == x->crl_mtime && fi.size == x->crl_size
            && fi.inode == x->crl_inode)
        {
            continue;
        }

        x->crl_mtime = fi.mtime;
        x->crl_size = fi.size;
        x->crl_inode = fi.inode;

        e = jpki_load_file(x->spec->crl_file, JPKI_CRL_MAX, &der, &len);
        if (e != JPKI_OK) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: "
                         "cannot read CRL \"%s\": %s", x->spec->crl_file,
                         jpki_strerror(e));
            x->crl_error = e;
            continue;
        }

        detail[0] = '\0';
        ix = NULL;
        e = jpki_crl_index_build(site->ctx, der, len, time(NULL), site->grace,
                                 &ix, detail, sizeof(detail));
        free(der);

        if (e == JPKI_OK) {
            /* another issuer's CRL, or an older one: refused */
            e = jpki_crl_index_replaces(ix, x->issuer, x->crl, detail,
                                        sizeof(detail));
        }

        x->crl_error = e;

        if (e != JPKI_OK) {
            jpki_crl_index_free(ix);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL "
                         "\"%s\" refused: %s%s%s%s", x->spec->crl_file,
                         jpki_reason(e), detail[0] ? " (" : "", detail,
                         detail[0] ? ")" : "");
            continue;
        }

        if (site->crl_lock) {
            apr_thread_rwlock_wrlock(site->crl_lock);
        }
        old = x->crl;
        x->crl = ix;
        x->crl_loaded = apr_time_now();
        if (site->crl_lock) {
            apr_thread_rwlock_unlock(site->crl_lock);
        }
        jpki_crl_index_free(old);

        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, site->server, "jpki: CRL "
                     "\"%s\" of issuer \"%s\" loaded: %" APR_UINT64_T_FMT
                     " entries", x->spec->crl_file, x->spec->name,
                     (apr_uint64_t) jpki_crl_index_info(ix)->entries);
    }
}


jpki_err
mjpki_crl_lookup(jpki_site *site, jpki_issuer_rt *rt, const char *cert_id,
                 jpki_rev_info *info)
{
    jpki_err  e;

    if (site->crlz) {
        return jpki_crlz_lookup(site, rt, cert_id, info);   /* no lock */
    }

    if (site->crl_lock) {
        apr_thread_rwlock_rdlock(site->crl_lock);
    }

    e = rt->crl ? jpki_crl_index_lookup(rt->crl, cert_id, time(NULL),
                                        site->grace, info)
                : JPKI_ERR_REVOCATION_UNAVAILABLE;

    if (site->crl_lock) {
        apr_thread_rwlock_unlock(site->crl_lock);
    }

    return e;
}


/* ------------------------------------------------------------------ */
/* Health (JSON for monitoring)                                        */
/* ------------------------------------------------------------------ */

const char *
mjpki_health_json(jpki_site *site, request_rec *r, int *ok)
{
    jpki_issuer_rt       *rt = (jpki_issuer_rt *) site->rt_issuers->elts;
    const jpki_crl_index *ix;
    jpki_crlz_view        v;
    jpki_err              error;
    apr_time_t            loaded;
    jpki_store_cmd        cmd;
    jpki_store_result     res;
    jpki_health           h;
    apr_int64_t           now = apr_time_sec(apr_time_now());
    jpki_err              store_err;
    char                 *crls, *out;
    apr_size_t            max;
    int                   i;

    max = JPKI_HEALTH_CRL_MAX * (site->rt_issuers->nelts + 1);
    crls = apr_palloc(r->pool, max);
    jpki_health_init(&h, crls, max, now, site->grace,
                     jpki_ctx_get_policy(site->ctx)->clock_skew);

    if (site->crl_lock) {
        apr_thread_rwlock_rdlock(site->crl_lock);
    }

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        if (rt[i].spec->crl_file == NULL) {
            continue;
        }

        if (site->crlz) {
            /* a consistent copy of the slot, without a lock (ix: the
             * copy of its index's header, all that is read of it here) */
            if (jpki_crlz_read(site, &rt[i], &v)) {
                ix = v.ix;
                error = v.tried ? (jpki_err) v.error
                        : ix ? JPKI_OK : JPKI_ERR_REVOCATION_UNAVAILABLE;
                loaded = ix ? v.loaded : 0;
            } else {
                ix = NULL;
                error = JPKI_ERR_REVOCATION_UNAVAILABLE;
                loaded = 0;
            }
        } else {
            ix = rt[i].crl;
            error = rt[i].crl_error;
            loaded = rt[i].crl_loaded;
        }

        jpki_health_add_crl(&h, rt[i].spec->name, NULL,
                            ix ? jpki_crl_index_info(ix) : NULL, error,
                            (int64_t) apr_time_sec(loaded));
    }

    if (site->crl_lock) {
        apr_thread_rwlock_unlock(site->crl_lock);
    }

    /* the store: full (no room for a new key; Redis answering a write
     * -OOM at maxmemory), or not answering */
    store_err = JPKI_OK;
    if (site->store == JPKI_STORE_SHM) {
        if (site->zone == NULL || site->zone->locked == NULL) {
            store_err = JPKI_ERR_STORE;
        } else if (jpki_shm_is_full(site->zone->locked,
                                    (int64_t) (apr_time_now() / 1000)))
        {
            store_err = JPKI_ERR_STORE_FULL;
        }
    } else {
        jpki_health_probe(&cmd, now);
        store_err = mjpki_store_exec(site, r, &cmd, 1, &res)
                    ? jpki_health_probe_result(&res, 1) : JPKI_ERR_STORE;
    }

    max = h.len + 256;
    out = apr_palloc(r->pool, max);
    if (jpki_health_json(&h, site->store == JPKI_STORE_SHM, store_err, out,
                         max, ok) == 0)
    {
        *ok = 0;
        return "{\"status\":\"degraded\"}";
    }

    return out;
}


/* ------------------------------------------------------------------ */
/* Mapping file                                                        */
/* ------------------------------------------------------------------ */

/* Loads the file when it changed since the last load (mtime, size or
 * inode: a rename-replaced file within the same second counts). */
static void
jpki_map_load(jpki_site *site, apr_pool_t *tmp)
{
    apr_finfo_t   fi;
    apr_status_t  rv;
    jpki_map     *m, *old;
    char          why[1024];

    rv = apr_stat(&fi, site->map_file, APR_FINFO_MTIME | APR_FINFO_SIZE
                                       | APR_FINFO_INODE, tmp);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: "
                         "cannot read mapping file \"%s\"", site->map_file);
            site->map_failed = 1;
        }
        return;
    }

    if (site->map != NULL && fi.mtime == site->map_mtime
        && fi.size == site->map_size && fi.inode == site->map_inode)
    {
        return;
    }

    /* common/mapfile.c: the parser nginx and jpkictl use */
    if (jpki_map_read(site->map_file, &m, why, sizeof(why)) != JPKI_OK) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: %s",
                         why);
            site->map_failed = 1;
        }
        return;
    }
    if (m->bad) {
        jpki_map_warning(m, site->map_file, why, sizeof(why));
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, site->server, "jpki: %s",
                     why);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, site->server, "jpki: mapping file "
                 "\"%s\" loaded, %" APR_SIZE_T_FMT " entries", site->map_file,
                 m->n);

    site->map_failed = 0;
    site->map_mtime = fi.mtime;
    site->map_size = fi.size;
    site->map_inode = fi.inode;

    if (site->map_lock) {
        apr_thread_rwlock_wrlock(site->map_lock);
    }
    old = site->map;
    site->map = m;
    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    jpki_map_free(old);
}


void
mjpki_files_refresh(jpki_site *site)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());
    apr_pool_t   *tmp;

    if (apr_atomic_read32(&site->files_checked) == now
        || site->files_mutex == NULL)
    {
        return;
    }

    /* one thread checks; the others go on with the tables they have */
    if (apr_thread_mutex_trylock(site->files_mutex) != APR_SUCCESS) {
        return;
    }

    if (apr_atomic_read32(&site->files_checked) != now) {
        apr_atomic_set32(&site->files_checked, now);
        if (apr_pool_create_unmanaged_ex(&tmp, NULL, NULL) == APR_SUCCESS) {
            if (site->map_file) {
                jpki_map_load(site, tmp);
            }
            jpki_crls_load(site, tmp);
            apr_pool_destroy(tmp);
        }
    }

    apr_thread_mutex_unlock(site->files_mutex);
}


size_t
mjpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    jpki_site  *site = ud;
    size_t      len;

    if (site->map_lock) {
        apr_thread_rwlock_rdlock(site->map_lock);
    }
    len = jpki_map_lookup(site->map, cert_id, out);
    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    return len;
}


static apr_status_t
jpki_map_cleanup(void *data)
{
    jpki_site  *site = data;

    jpki_map_free(site->map);
    site->map = NULL;

    return APR_SUCCESS;
}


/* ------------------------------------------------------------------ */
/* Process setup                                                       */
/* ------------------------------------------------------------------ */

int
mjpki_io_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    server_rec  *sv;
    jpki_site   *site;
    const char  *name, *mutex_id;
    apr_ssize_t  klen;
    int          preflight, ncrlz = 0;

    preflight = ap_state_query(AP_SQ_MAIN_STATE)
                == AP_SQ_MS_CREATE_PRE_CONFIG;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (!site->built || site->io_ready) {
            continue;
        }
        site->io_ready = 1;

        if (site->store == JPKI_STORE_SHM) {
            site->zone = mjpki_zone_setup(ptemp, sv, site->shm_zone,
                                         site->shm_zone, site->shm_size,
                                         "store zone");
            if (site->zone == NULL) {
                return !OK;
            }
        }

        if (site->store == JPKI_STORE_REDIS) {
            /* one per Redis server and db: the sites on it share it (a
             * marker is keyed by a cert_id of one site secret) */
            name = apr_psprintf(ptemp, "logouts:%s/%d", site->redis_addr,
                                site->redis_db);
            klen = APR_HASH_KEY_STRING;
            mutex_id = apr_psprintf(ptemp, "logouts-%08x",
                                    apr_hashfunc_default(name, &klen));
            site->mirror = mjpki_zone_setup(ptemp, sv, name, mutex_id,
                                           site->mirror_size, "logout mirror");
            if (site->mirror == NULL) {
                return !OK;
            }
        }

        if (site->crl_zone_size > 0
            && jpki_crlz_setup(ptemp, sv, site, ncrlz++) != OK)
        {
            return !OK;
        }

        if (preflight) {
            /* the real start follows: load the files then, once */
            continue;
        }

        /* once in the parent: the children share these pages until a
         * file changes (with a CRL zone: into the zone, unless the files
         * are there already, loaded before a restart) */
        jpki_crls_load(site, ptemp);
        apr_pool_cleanup_register(pconf, site, jpki_crl_cleanup,
                                  apr_pool_cleanup_null);

        if (site->map_file) {
            jpki_map_load(site, ptemp);
            apr_pool_cleanup_register(pconf, site, jpki_map_cleanup,
                                      apr_pool_cleanup_null);
        }
        apr_atomic_set32(&site->files_checked,
                         (apr_uint32_t) apr_time_sec(apr_time_now()));
    }

    if (!preflight) {
        jpki_crlz_sweep(s);
    }

    return OK;
}


void
mjpki_io_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec    *sv;
    jpki_site     *site;
    apr_status_t   rv;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (!site->built || site->child_ready) {
            continue;
        }
        site->child_ready = 1;

        mjpki_zone_child_init(site->zone, pchild, sv, "store zone");
        mjpki_zone_child_init(site->mirror, pchild, sv, "logout mirror");

        if (site->crlz && !site->crlz->child_ready) {
            site->crlz->child_ready = 1;
            rv = apr_global_mutex_child_init(&site->crlz->mutex,
                                             site->crlz->lockfile, pchild);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, sv, "jpki: cannot "
                             "attach the mutex of CRL zone %s",
                             site->crlz->name);
            }
        }

        apr_thread_mutex_create(&site->redis_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->files_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->flight_mutex,
                                APR_THREAD_MUTEX_DEFAULT, pchild);
        apr_thread_cond_create(&site->flight_cond, pchild);
        apr_thread_rwlock_create(&site->map_lock, pchild);
        apr_thread_rwlock_create(&site->crl_lock, pchild);

        /* idle Redis connections are closed when the child exits */
        apr_pool_cleanup_register(pchild, site, mjpki_redis_pool_cleanup,
                                  apr_pool_cleanup_null);

        mjpki_poller_start(site, pchild, sv);
    }
}
