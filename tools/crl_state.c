/*
 * crl_state.c - crl sync's local state of a list (--state-dir): what the
 * last sync loaded, entry by entry, so that the next one parses and
 * HMACs only the entries it does not know and does not read the list
 * back from the store (docs/operations.md, "Delta syncs").
 *
 * Trusted only when its MAC verifies (a key derived from the site
 * secret), it is of this list, and it describes exactly the pointer,
 * CRL and id_check the store holds (read under the sync's lock, and the
 * pointer checked again under WATCH when the delta is written): anything
 * else is a note and the sync of before (the loaded list read back, or a
 * full load).  A state that is wrong can then only cost time, never drop
 * an entry.
 *
 * Matching: a CRL keeps its order from one day to the next, so the next
 * entry is looked for where the last one matched, a few records ahead
 * (removed ones are skipped); an entry not found there is a new one.  If
 * too many are not found (another order), the records are indexed by
 * digest and looked up.  An entry looked for in the wrong place is only
 * parsed and HMACed like a new one: the reconciliation by cert_id
 * (state_delta) sees the same digest removed and added, and changes
 * nothing.
 */
#include "crl_state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC      JPKI_CRLSTATE_REC
#define DLEN     JPKI_CRL_DIGEST_LEN
#define WINDOW   4                /* records looked at from p */
/* Records a pass over all of the state's reads ahead of the one it is
 * at: the mapping's pages are the page cache's, 4 KiB each, where the
 * processor's own prefetch stops.  (The walk's lookups, a few records
 * from the last match, gained nothing from it.) */
#define AHEAD    128

int state_init(crl_state *cs, const char *dir, int arl,
               const jpki_ctx *ctx)
{
    memset(cs, 0, sizeof(*cs));
    cs->dir = dir;
    cs->arl = arl;
    if (dir != NULL && jpki_crlstate_keys_of(ctx, &cs->keys) != JPKI_OK) {
        say("--state-dir: the state's keys cannot be derived");
        return -1;
    }
    return 0;
}

static void *verify_main(void *arg)
{
    crl_state *cs = arg;

    cs->verified = jpki_crlstate_verify(&cs->keys, cs->file, cs->flen,
                                        &cs->h) == 0 ? 1 : -1;
    return NULL;
}

static void verify_wait(crl_state *cs)
{
    if (cs->verifying)
        pthread_join(cs->vth, NULL);
    cs->verifying = 0;
}

static void state_reset(crl_state *cs)
{
    verify_wait(cs);
    cs->verified = 0;
    if (cs->file != NULL)
        munmap(cs->file, cs->flen);
    free(cs->matched);
    free(cs->ht);
    free(cs->out);
    free(cs->nw);
    free(cs->runs);
    cs->runs = NULL;
    cs->nr = cs->rcap = cs->total = 0;
    cs->file = NULL;
    cs->matched = cs->out = NULL;
    cs->ht = NULL;
    cs->nw = NULL;
    cs->have = cs->nomem = 0;
    cs->on = cs->ocap = cs->nn = cs->ncap = cs->p = cs->misses = 0;
    cs->note[0] = '\0';
}

void state_free(crl_state *cs)
{
    state_ahead_end(cs);
    state_reset(cs);
    OPENSSL_cleanse(&cs->keys, sizeof(cs->keys));
}

/* The file of list lid mapped at cs->file; 0, -1 (note says why).
 * Mapped, not read: its pages are the page cache's (a copy would cost
 * as much fresh memory again).  It is replaced by rename, never written
 * in place: a mapping keeps the file it was made of; and only its
 * owner could change it in place, who can read the secret its MAC is
 * made with anyway. */
static int state_read(crl_state *cs, size_t *len)
{
    struct stat sb;
    int fd = open(cs->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        snprintf(cs->note, sizeof(cs->note), "%s", errno == ENOENT
                 ? "there is none yet" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)
        || (uint64_t)sb.st_size > JPKI_CRLSTATE_MAX) {
        snprintf(cs->note, sizeof(cs->note), "not a regular file of at "
                 "most %zu bytes", JPKI_CRLSTATE_MAX);
        close(fd);
        return -1;
    }
    *len = (size_t)sb.st_size;
    /* populated: its pages mapped in one call, not a fault each */
    cs->file = *len > 0 ? mmap(NULL, *len, PROT_READ,
                               MAP_PRIVATE | MAP_POPULATE, fd, 0)
                        : MAP_FAILED;
    close(fd);
    if (cs->file == MAP_FAILED) {
        cs->file = NULL;
        snprintf(cs->note, sizeof(cs->note), "cannot be read");
        return -1;
    }
    cs->flen = *len;
    return 0;
}

static int out_reserve(crl_state *cs, size_t n)
{
    uint8_t *o;

    if (n <= cs->ocap)
        return 0;
    if (n > SIZE_MAX / REC || (o = jpki_alloc_large(n * REC)) == NULL) {
        cs->nomem = 1;
        return -1;
    }
    if (cs->on > 0)
        memcpy(o, cs->out, cs->on * REC);
    free(cs->out);
    cs->out = o;
    cs->ocap = n;
    return 0;
}

/* Records to make room for: the CRL's entries, else the hint. */
static size_t out_size(const crl_state *cs, uint64_t entries)
{
    size_t n = entries > 0 && entries < SIZE_MAX / REC ? (size_t)entries
               : cs->hint;

    return n > 4096 ? n : 4096;
}

int state_load(crl_state *cs, const char *lid, uint64_t entries)
{
    size_t len;

    state_reset(cs);
    if (cs->dir == NULL)
        return 0;
    if ((size_t)snprintf(cs->path, sizeof(cs->path), "%s/%s.crlstate",
                         cs->dir, lid) >= sizeof(cs->path)) {
        snprintf(cs->note, sizeof(cs->note), "its path is too long");
        cs->dir = NULL;
        return 0;
    }
    (void)entries;                    /* out: the entries not known */
    if (out_reserve(cs, 4096) != 0 || state_read(cs, &len) != 0)
        return 0;
    if (jpki_crlstate_parse(cs->file, len, &cs->h, &cs->counts, &cs->recs)
        != 0) {
        snprintf(cs->note, sizeof(cs->note), "does not parse (truncated or "
                 "changed)");
        return 0;
    }
    if (strcmp(cs->h.lid, lid) != 0) {
        snprintf(cs->note, sizeof(cs->note), "is of another list");
        return 0;
    }
    if ((cs->matched = jpki_alloc_large(cs->h.n + 1)) == NULL) {
        snprintf(cs->note, sizeof(cs->note), "out of memory");
        return 0;
    }
    memset(cs->matched, 0, cs->h.n + 1);
    /* the MAC is checked by a thread while the walk matches the records
     * (bounded: read, not trusted), and before anything is made of
     * them (state_matches) */
    cs->verified = 0;
    cs->verifying = pthread_create(&cs->vth, NULL, verify_main, cs) == 0;
    if (!cs->verifying)
        verify_main(cs);
    cs->have = 1;
    return 1;
}

int state_begin(void *ud, const jpki_crl_info *info)
{
    crl_state *cs = ud;
    char lid[CRL_LID_MAX];

    return list_id(info->issuer, info->key_hash, cs->arl, lid) == 0
           && state_load(cs, lid, info->entries);
}

void state_full(crl_state *cs, uint64_t entries)
{
    char note[sizeof(cs->note)];

    memcpy(note, cs->note, sizeof(note));
    state_reset(cs);
    memcpy(cs->note, note, sizeof(note));
    out_reserve(cs, out_size(cs, entries));
}

/* ---- digests ahead ------------------------------------------------------ */

/* An entry's encoding is at least 20 octets (SEQUENCE, INTEGER, UTCTime):
 * room for every digest the CRL can hold, taken by the pages written. */
#define ENTRY_MIN 20

/* The digests first, the walk waits for them; then the other job. */
static void *ahead_main(void *arg)
{
    crl_state *cs = arg;

    cs->nahead = jpki_crl_digests(cs->keys.digest, cs->ader, cs->alen,
                                  cs->adig, cs->alens, cs->acap);
    sem_post(&cs->adone);
    return cs->then(cs->then_arg);
}

int state_ahead_start(crl_state *cs, const uint8_t *der, size_t len,
                      void *(*then)(void *), void *arg)
{
    cs->nahead = 0;
    cs->acap = len / ENTRY_MIN + 1;
    if (cs->dir == NULL || len == 0 || der[0] != 0x30
        || cs->acap > SIZE_MAX / DLEN || sem_init(&cs->adone, 0, 0) != 0)
        return 0;
    cs->adig = jpki_alloc_large(cs->acap * DLEN);
    cs->alens = jpki_alloc_large(cs->acap * sizeof(*cs->alens));
    if (cs->adig == NULL || cs->alens == NULL) {
        sem_destroy(&cs->adone);
        state_ahead_end(cs);
        return 0;                     /* the walk makes them */
    }
    cs->ader = der;
    cs->alen = len;
    cs->then = then;
    cs->then_arg = arg;
    cs->ahead_on = cs->ahead_wait
        = pthread_create(&cs->ath, NULL, ahead_main, cs) == 0;
    if (!cs->ahead_on) {
        sem_destroy(&cs->adone);
        state_ahead_end(cs);
    }
    return cs->ahead_on;
}

size_t state_ahead(void *ud, const uint8_t **out, const uint32_t **lens)
{
    crl_state *cs = ud;

    if (cs->ahead_wait)
        while (sem_wait(&cs->adone) != 0)
            ;                         /* EINTR */
    cs->ahead_wait = 0;
    *out = cs->adig;
    *lens = cs->alens;
    return cs->adig != NULL ? cs->nahead : 0;
}

void state_ahead_end(crl_state *cs)
{
    if (cs->ahead_on) {
        pthread_join(cs->ath, NULL);
        sem_destroy(&cs->adone);
    }
    cs->ahead_on = cs->ahead_wait = 0;
    free(cs->adig);
    free(cs->alens);
    cs->adig = NULL;
    cs->alens = NULL;
    cs->nahead = 0;
}

/* ---- matching --------------------------------------------------------- */

static int rec_is(const crl_state *cs, size_t i, const uint8_t *d)
{
    return !cs->matched[i] && memcmp(cs->recs + i * REC, d, DLEN) == 0;
}

static size_t slot_of(const uint8_t *d, size_t mask)
{
    return ((size_t)d[0] | (size_t)d[1] << 8 | (size_t)d[2] << 16
            | (size_t)d[3] << 24) & mask;
}

/* Every record indexed by its digest (digests are keyed: uniform). */
static void ht_build(crl_state *cs)
{
    size_t size = 1024, i, j;

    while (size < 2 * cs->h.n)
        size *= 2;
    if ((cs->ht = jpki_alloc_large(size * sizeof(uint32_t))) == NULL)
        return;                       /* the window alone */
    memset(cs->ht, 0, size * sizeof(uint32_t));
    cs->hmask = size - 1;
    for (i = 0; i < cs->h.n; i++) {
        for (j = slot_of(cs->recs + i * REC, cs->hmask); cs->ht[j] != 0;
             j = (j + 1) & cs->hmask)
            ;
        cs->ht[j] = (uint32_t)(i + 1);
    }
}

static size_t ht_find(const crl_state *cs, const uint8_t *d)
{
    size_t j;

    for (j = slot_of(d, cs->hmask); cs->ht[j] != 0; j = (j + 1) & cs->hmask)
        if (rec_is(cs, cs->ht[j] - 1, d))
            return cs->ht[j] - 1;
    return SIZE_MAX;
}

/* The array a of *cap elements of size sz with room for element n
 * (doubled when full); NULL (nomem set, a left as it is) when out of
 * memory. */
static void *room(crl_state *cs, void *a, size_t *cap, size_t n, size_t sz)
{
    size_t c = *cap ? *cap * 2 : 256;
    void *x;

    if (n < *cap)
        return a;
    if (c > SIZE_MAX / sz || (x = realloc(a, c * sz)) == NULL) {
        cs->nomem = 1;
        return NULL;
    }
    *cap = c;
    return x;
}

/* Record i of the state (old) or of out, next in the new CRL's order. */
static int run_add(crl_state *cs, size_t i, int old)
{
    struct st_run *x = cs->nr > 0 ? &cs->runs[cs->nr - 1] : NULL;

    if (x == NULL || x->old != old || x->start + x->n != i) {
        if ((x = room(cs, cs->runs, &cs->rcap, cs->nr, sizeof(*x))) == NULL)
            return -1;
        cs->runs = x;
        x = &cs->runs[cs->nr++];
        x->start = i;
        x->n = 0;
        x->old = old;
    }
    x->n++;
    cs->total++;
    return 0;
}

int state_record(crl_state *cs, const uint8_t *digest, const uint8_t *id)
{
    uint8_t *r;

    if (cs->on == cs->ocap && out_reserve(cs, cs->ocap * 2) != 0)
        return -1;
    r = cs->out + cs->on++ * REC;
    memcpy(r, digest, DLEN);
    memcpy(r + DLEN, id, JPKI_CRL_KEY_LEN);
    return run_add(cs, cs->on - 1, 0);
}

int state_known(void *ud, const uint8_t *d)
{
    crl_state *cs = ud;
    struct st_run *x;
    size_t i, end;

    if (!cs->have)
        return 0;
    end = cs->h.n - cs->p > WINDOW ? cs->p + WINDOW : cs->h.n;
    for (i = cs->p; i < end && !rec_is(cs, i, d); i++)
        ;
    if (i == end) {
        if (cs->ht == NULL && ++cs->misses > cs->h.n / 64 + 64)
            ht_build(cs);
        if (cs->ht == NULL || (i = ht_find(cs, d)) == SIZE_MAX)
            return 0;
    }
    /* most records extend the run of the one before (run_add's first
     * case, here without its call: once an entry) */
    x = cs->nr > 0 ? &cs->runs[cs->nr - 1] : NULL;
    if (x != NULL && x->old && x->start + x->n == i) {
        x->n++;
        cs->total++;
    } else if (run_add(cs, i, 1) != 0) {
        return -1;
    }
    cs->matched[i] = 1;
    cs->p = i + 1;
    return 1;
}

int state_entry(void *ud, const jpki_crl_scan_entry *e)
{
    crl_state *cs = ud;
    st_new *x;

    if (state_record(cs, e->digest, e->cert_id) != 0
        || (x = room(cs, cs->nw, &cs->ncap, cs->nn, sizeof(*x))) == NULL)
        return -1;
    cs->nw = x;
    x = &cs->nw[cs->nn++];
    x->rec = cs->on - 1;
    x->at = ent_at(e->revoked_at);
    x->reason = (int8_t)e->reason;
    return 0;
}

int state_matches(crl_state *cs, const list_state *st)
{
    const char *why = NULL;

    if (!cs->have)
        return 0;
    verify_wait(cs);
    if (cs->verified != 1)
        why = "does not verify (truncated, changed, or written with "
              "another site secret)";
    else if (!st->have)
        why = "the store holds no list";
    else if (strcmp(cs->h.ptr, st->raw) != 0)
        why = "it describes another load of the list (another generation, "
              "CRL or time) than the store's pointer";
    else if (strcmp(cs->h.sha, st->sha) != 0
             || strcmp(cs->h.id_check, st->id_check) != 0)
        why = "it describes another CRL or id_check than the store's";
    else if (st->m.shape.key_len != JPKI_CRL_KEY_LEN
             || !jpki_crl_shape_ok(&st->m.shape)
             || cs->h.nb != 1u << st->m.shape.bits)
        why = "it describes another layout than the store's";
    if (why != NULL) {
        snprintf(cs->note, sizeof(cs->note), "%s", why);
        return 0;
    }
    return 1;
}

/* ---- the delta ---------------------------------------------------------- */

/* A cert_id the walk touched: a new entry it did not know, or a record
 * no entry matched. */
typedef struct {
    uint64_t key;             /* id's octets as a number: memcmp's order */
    const uint8_t *id, *dg;
    size_t ord;               /* in the CRL's or the state's order */
    uint32_t at;
    int8_t reason;
    uint8_t is_new;
} touch;

/* a before b: by cert_id, the state's records first, then in order */
static int touch_before(const touch *a, const touch *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    if (a->is_new != b->is_new)
        return a->is_new < b->is_new;     /* the state's first */
    return a->ord < b->ord;
}

/* t[0..n) sorted, by merges into tmp (n) and back: qsort's own buffer
 * (hundreds of kilobytes for a delta) was fresh pages, a fault each. */
static void touch_sort(touch *t, touch *tmp, size_t n)
{
    touch *from = t, *to = tmp, *x;
    size_t w, i;

    for (w = 1; w < n; w *= 2) {
        for (i = 0; i < n; i += 2 * w) {
            size_t a = i, am = i + w < n ? i + w : n, b = am, k = i;
            size_t bm = i + 2 * w < n ? i + 2 * w : n;

            while (a < am && b < bm)
                to[k++] = touch_before(&from[b], &from[a]) ? from[b++]
                                                            : from[a++];
            while (a < am)
                to[k++] = from[a++];
            while (b < bm)
                to[k++] = from[b++];
        }
        x = from;
        from = to;
        to = x;
    }
    if (from != t)
        memcpy(t, from, n * sizeof(*t));
}

/* The cert_id's stored octets as one number, in memcmp's order (the
 * touched ones are sorted by it, and looked up by it: key_in): they fit
 * in 64 bits. */
_Static_assert(JPKI_CRL_KEY_LEN <= 8, "id_key: a stored cert_id in 64 bits");

static uint64_t id_key(const uint8_t *id)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < JPKI_CRL_KEY_LEN; i++)
        v = v << 8 | id[i];
    return v;
}

/* Whether the sorted t[0..nt) holds key k. */
static int key_in(const touch *t, size_t nt, uint64_t k)
{
    size_t lo = 0, hi = nt;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (t[mid].key < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nt && t[lo].key == k;
}

static size_t id_bit(const uint8_t *id)
{
    return ((size_t)id[4] << 12 | (size_t)id[5] << 4 | id[6] >> 4)
           & 0xfffff;
}

/* The touched cert_ids, sorted: the new entries not known, then the
 * records not matched. */
static touch *touched(const crl_state *cs, size_t *nt)
{
    size_t n = cs->nn, i, k = 0;
    touch *t;

    for (i = 0; i < cs->h.n; i++)
        n += !cs->matched[i];
    if ((t = jpki_alloc_large((2 * n + 1) * sizeof(*t))) == NULL)
        return NULL;                  /* and the sort's room */
    for (i = 0; i < cs->nn; i++, k++) {
        const uint8_t *r = cs->out + cs->nw[i].rec * REC;

        t[k] = (touch){id_key(r + DLEN), r + DLEN, r, cs->nw[i].rec,
                       cs->nw[i].at, cs->nw[i].reason, 1};
    }
    for (i = 0; i < cs->h.n; i++)
        if (!cs->matched[i]) {
            const uint8_t *r = cs->recs + i * REC;

            t[k++] = (touch){id_key(r + DLEN), r + DLEN, r, i, 0, 0, 0};
        }
    touch_sort(t, t + n, n);
    *nt = n;
    return t;
}

/* Whether an entry the walk knew (unchanged) shares its cert_id octets
 * with a touched one: its value is then not known without parsing it
 * (two certificates whose cert_ids share those octets are one entry). */
static int shared_id(const crl_state *cs, const touch *t, size_t nt)
{
    uint8_t *bits = calloc(1, (0xfffff + 1) / 8);
    size_t i;
    int hit = 0;

    if (bits == NULL)
        return 1;
    for (i = 0; i < nt; i++)
        bits[id_bit(t[i].id) / 8] |= (uint8_t)(1u << (id_bit(t[i].id) % 8));
    /* the known entries: the records they matched */
    for (i = 0; i < cs->h.n && !hit; i++) {
        const uint8_t *id = cs->recs + i * REC + DLEN;

        if (i + AHEAD < cs->h.n)           /* within the mapping */
            __builtin_prefetch(id + AHEAD * REC);
        hit = cs->matched[i]
              && (bits[id_bit(id) / 8] >> (id_bit(id) % 8) & 1)
              && key_in(t, nt, id_key(id));
    }
    free(bits);
    return hit;
}

/* One touched cert_id, t[i..j) (the state's records first): what the
 * list changes for it.  0, 1 inconsistent (a bucket count below 0), -1
 * out of memory. */
static int touch_apply(const touch *t, size_t i, size_t j,
                       const jpki_crl_shape *sh, delta_t *d,
                       uint64_t *stored, uint8_t *counts)
{
    size_t k = i, m;
    unsigned long b = jpki_crl_bucket(t[i].id, sh);
    uint32_t c = jpki_crlstate_count(counts, (uint32_t)b);
    crl_ent *x;

    while (k < j && !t[k].is_new)
        k++;
    if (j - k == 1 && k - i == 1 && memcmp(t[i].dg, t[k].dg, DLEN) == 0)
        return 0;                     /* the same entry, elsewhere */
    if (k == j) {                     /* removed */
        if (c == 0)
            return 1;
        if ((x = ents_add(&d->del)) == NULL)
            return -1;
        memcpy(x->id, t[i].id, JPKI_CRL_KEY_LEN);
        jpki_crlstate_count_set(counts, (uint32_t)b, c - 1);
        (*stored)--;
        return 0;
    }
    /* the first final revocation wins over a hold, as in a full sync */
    for (m = k; m < j && t[m].reason == JPKI_REASON_CERTIFICATE_HOLD; m++)
        ;
    if (m == j)
        m = k;
    if ((x = ents_add(&d->put)) == NULL)
        return -1;
    memcpy(x->id, t[m].id, JPKI_CRL_KEY_LEN);
    x->at = t[m].at;
    x->reason = t[m].reason;
    if (k == i) {                     /* added */
        d->put_new++;
        jpki_crlstate_count_set(counts, (uint32_t)b, c + 1);
        (*stored)++;
    }
    return 0;
}

int state_delta(crl_state *cs, delta_t *d, uint64_t *stored,
                uint8_t **counts, uint32_t *bmax)
{
    jpki_crl_shape sh = {0, JPKI_CRL_KEY_LEN};
    size_t nt = 0, i, j;
    touch *t;
    int rc = 0;

    while ((1u << sh.bits) < cs->h.nb)
        sh.bits++;
    *stored = cs->h.stored;
    *counts = NULL;
    if (cs->nomem || (t = touched(cs, &nt)) == NULL)
        return -1;
    if (shared_id(cs, t, nt)) {
        snprintf(cs->note, sizeof(cs->note), "an unchanged entry shares "
                 "its stored cert_id octets with a changed one");
        free(t);
        return 1;
    }
    if ((*counts = malloc(4 * (size_t)cs->h.nb)) == NULL) {
        free(t);
        return -1;
    }
    memcpy(*counts, cs->counts, 4 * (size_t)cs->h.nb);
    for (i = 0; i < nt && rc == 0; i = j) {
        for (j = i + 1; j < nt && memcmp(t[j].id, t[i].id,
                                          JPKI_CRL_KEY_LEN) == 0; j++)
            ;
        rc = touch_apply(t, i, j, &sh, d, stored, *counts);
    }
    free(t);
    if (rc == 1)
        snprintf(cs->note, sizeof(cs->note), "its bucket counts are not "
                 "its entries'");
    for (*bmax = 0, i = 0; i < cs->h.nb; i++)
        if (jpki_crlstate_count(*counts, (uint32_t)i) > *bmax)
            *bmax = jpki_crlstate_count(*counts, (uint32_t)i);
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* iov into fd whole (writev may write part of it); 0, -1. */
static int writev_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
            w -= (ssize_t)iov->iov_len;
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* The records, run by run (a run of the state's is written from its
 * mapping), into fd and the MAC: a delta's thousands of runs in a few
 * writev calls.  0, -1. */
static int write_runs(const crl_state *cs, int fd, EVP_CIPHER_CTX *mc)
{
    struct iovec iov[512];
    size_t i;
    int k = 0;

    for (i = 0; i < cs->nr; i++) {
        const struct st_run *x = &cs->runs[i];
        const uint8_t *p = (x->old ? cs->recs : cs->out) + x->start * REC;

        if (jpki_crlstate_mac_add(mc, p, x->n * REC) != 0)
            return -1;
        iov[k].iov_base = (void *)p;
        iov[k++].iov_len = x->n * REC;
        if (k == 512 || i + 1 == cs->nr) {
            if (writev_all(fd, iov, k) != 0)
                return -1;
            k = 0;
        }
    }
    return 0;
}

int state_write(crl_state *cs, jpki_crlstate_hdr *h, const uint8_t *counts)
{
    uint8_t mac[JPKI_CRLSTATE_MAC], *head;
    EVP_CIPHER_CTX *mc = NULL;
    size_t hl;
    int fd = -1, bad;

    cs->tmp[0] = '\0';
    if (cs->dir == NULL)
        return 0;
    h->n = cs->total;
    hl = JPKI_CRLSTATE_HDR + 4 * (size_t)h->nb;
    head = jpki_crlstate_size(h->n, h->nb) != 0 ? malloc(hl) : NULL;
    if (head == NULL || jpki_crlstate_head(h, head) != 0) {
        free(head);
        say("warning: the local state of the list was not written (too "
            "large)");
        return -1;
    }
    memcpy(head + JPKI_CRLSTATE_HDR, counts, hl - JPKI_CRLSTATE_HDR);
    snprintf(cs->tmp, sizeof(cs->tmp), "%s.XXXXXX", cs->path);
    bad = (mc = jpki_crlstate_mac_begin(&cs->keys, head, hl)) == NULL
          || (fd = mkstemp(cs->tmp)) < 0 || fchmod(fd, 0600) != 0
          || write_all(fd, head, hl) != 0 || write_runs(cs, fd, mc) != 0;
    bad |= jpki_crlstate_mac_end(mc, mac) != 0
           || (fd >= 0 && write_all(fd, mac, sizeof(mac)) != 0);
    if (fd >= 0)
        bad |= close(fd) != 0;
    free(head);
    if (bad) {
        say("warning: the local state %s was not written: %s; the next "
            "sync reads the loaded list back", cs->path, strerror(errno));
        if (fd >= 0)
            unlink(cs->tmp);
        cs->tmp[0] = '\0';
        return -1;
    }
    return 0;
}

void state_commit(crl_state *cs, int how)
{
    if (cs->dir == NULL)
        return;
    if (how == 1 && cs->tmp[0] != '\0' && rename(cs->tmp, cs->path) != 0) {
        say("warning: the local state %s was not written: %s; the next "
            "sync reads the loaded list back", cs->path, strerror(errno));
        how = -1;
    } else if (how == 1) {
        cs->tmp[0] = '\0';
        return;
    }
    if (cs->tmp[0] != '\0')
        unlink(cs->tmp);
    cs->tmp[0] = '\0';
    if (how != 0)
        state_drop(cs);   /* what it holds no longer describes the list */
}

void state_drop(crl_state *cs)
{
    if (cs->dir != NULL && unlink(cs->path) != 0 && errno != ENOENT)
        say("warning: the outdated local state %s could not be removed: %s",
            cs->path, strerror(errno));
}
