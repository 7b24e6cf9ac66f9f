/*
 * shared.h - the gate's shared area: one per server instance (nginx: the
 * zone "jpki_shared" of the http block; Apache: a segment made once in the
 * parent and kept in the process pool across restarts), mapped by every
 * worker or child and used by all the sites' contexts of a process.  It
 * holds what must be one across processes and sites: the metrics'
 * counters (metrics.h) and the heads of the audit chains (audit.h).  It
 * holds no pointers: each process may map it at its own address.
 */
#ifndef JPKI_SHARED_H
#define JPKI_SHARED_H

#include "jpki.h"

typedef struct jpki_shared jpki_shared;

/* The bytes the area needs. */
size_t jpki_shared_size(void);
/* The area in mem (size bytes, at least jpki_shared_size()), set up once
 * in the parent before the workers start: an area this layout already set
 * up (a reload that keeps the zone) is kept as it is.  NULL: too small. */
jpki_shared *jpki_shared_init(void *mem, size_t size);
/* Every context of a process uses sh, and lock (the adapter's: an nginx
 * shared mutex, an APR global mutex) where it must write under a lock
 * across processes (the audit chain).  sh NULL: none (unit tests). */
void jpki_ctx_set_shared(jpki_ctx *ctx, jpki_shared *sh,
                         const jpki_shm_lock *lock);

#endif /* JPKI_SHARED_H */
