/*
 * crl_state.h - crl sync's local state of a list (--state-dir;
 * common/crlstate.h is its file): read and checked, matched against the
 * entries of a new CRL as they are walked, turned into the changes of a
 * delta sync, written again after each sync.
 */
#ifndef JPKICTL_CRL_STATE_H
#define JPKICTL_CRL_STATE_H

#include "crl_store.h"
#include "crlstate.h"

#include <limits.h>
#include <pthread.h>
#include <semaphore.h>

/* A new CRL's entry the state did not know: its record in out, its
 * value. */
typedef struct {
    size_t rec;
    uint32_t at;
    int8_t reason;
} st_new;

typedef struct {
    const char *dir;                  /* --state-dir, NULL: none */
    int arl;                          /* the lists of ARLs (--arl) */
    size_t hint;                      /* entries expected at most (sizes
                                         out when their count is unknown) */
    jpki_crlstate_keys keys;
    char path[PATH_MAX];
    /* the state read (have: it verified and is of this list) */
    int have;
    jpki_crlstate_hdr h;
    uint8_t *file;                    /* mapped */
    size_t flen;
    pthread_t vth;                    /* checks its MAC */
    int verifying, verified;          /* verified: 1 yes, -1 no, 0 not yet */
    const uint8_t *counts, *recs;
    uint8_t *matched;                 /* h.n flags */
    size_t p;                         /* where the next entry is expected */
    size_t misses;                    /* entries not found near p */
    uint32_t *ht;                     /* record + 1 by digest, built when
                                         the order is not the state's */
    size_t hmask;
    /* the new CRL's records in its order: runs of the state's records
     * (old) or of new ones (out: the records of the entries the walk
     * did not know, their values in nw) */
    struct st_run {
        size_t start, n;
        int old;
    } *runs;
    size_t nr, rcap, total;
    uint8_t *out;
    size_t on, ocap;
    st_new *nw;
    size_t nn, ncap;
    /* the digests of the CRL's entries, made by a thread of their own
     * while the signature is checked (state_ahead_start) */
    pthread_t ath;
    int ahead_on;                     /* the thread runs (join it) */
    int ahead_wait;                   /* its digests not waited for yet */
    sem_t adone;                      /* posted once they are made */
    void *(*then)(void *);            /* its next job, then_arg its */
    void *then_arg;
    const uint8_t *ader;
    size_t alen, nahead, acap;
    uint8_t *adig;                    /* their digests */
    uint32_t *alens;                  /* their entries' lengths */
    char tmp[PATH_MAX + 16];          /* the state being written */
    int nomem;
    char note[200];                   /* why no state was used */
} crl_state;

/* Before anything: the keys (0, -1 said). */
int state_init(crl_state *cs, const char *dir, int arl,
               const jpki_ctx *ctx);
void state_free(crl_state *cs);
/* The state of list lid read and checked: 1 usable (have), 0 not (why in
 * note, or "" when there is none, the first sync); out sized for
 * entries. */
int state_load(crl_state *cs, const char *lid, uint64_t entries);
/* jpki_crl_scan_fns callbacks (ud: the crl_state): begin loads the
 * state of the CRL's list (state_load); known matches a digest against
 * it; entry records an entry it did not know. */
int state_begin(void *ud, const jpki_crl_info *info);
int state_known(void *ud, const uint8_t *digest);
int state_entry(void *ud, const jpki_crl_scan_entry *e);
/* The digests of a DER CRL's entries (jpki_crl_digests) made by a thread
 * from now on, which then runs then(arg): 1; 0 (nothing started) when
 * there is no --state-dir or no thread.  ahead, the scan's callback,
 * waits for the digests; state_ahead_end for the thread, and frees them
 * (after the scan, on every path). */
int state_ahead_start(crl_state *cs, const uint8_t *der, size_t len,
                      void *(*then)(void *), void *arg);
size_t state_ahead(void *ud, const uint8_t **out, const uint32_t **lens);
void state_ahead_end(crl_state *cs);
/* Whether the state is the one of the loaded list: its pointer value,
 * CRL, id_check and layout.  1 yes; 0 no (note says why). */
int state_matches(crl_state *cs, const list_state *st);
/* The changes from the loaded list to the new CRL, from the walk's
 * matches alone: into d (sorted), *stored the new count, counts the new
 * entries per bucket (h.nb, allocated), *bmax the fullest bucket.  0;
 * 1 not possible (note says why: a full or read-back sync); -1 out of
 * memory. */
int state_delta(crl_state *cs, delta_t *d, uint64_t *stored,
                uint8_t **counts, uint32_t *bmax);
/* Before a full walk: nothing matched, out emptied (and sized). */
void state_full(crl_state *cs, uint64_t entries);
/* Appends the record of one entry to out (a full walk): 0, -1. */
int state_record(crl_state *cs, const uint8_t *digest, const uint8_t *id);
/* Writes the records as the state of the list about to be loaded (h:
 * what it describes; counts: h->nb) into a temporary file, mode 0600.
 * 0; -1 (said). */
int state_write(crl_state *cs, jpki_crlstate_hdr *h, const uint8_t *counts);
/* After the switch: how 1 (switched, the state written describes it)
 * renames it into place; 0 (not switched) removes it, the old state
 * still right; -1 (switched, but no state describes the list) removes
 * both. */
void state_commit(crl_state *cs, int how);
/* Removes the list's state (it no longer describes the store). */
void state_drop(crl_state *cs);

#endif /* JPKICTL_CRL_STATE_H */
