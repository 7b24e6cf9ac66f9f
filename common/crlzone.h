/*
 * crlzone.h - the CRLs in force of a site: one design for nginx and
 * Apache (see the comment at the top of crlzone.c).
 *
 * The adapter gives the memory (a shared zone mapped by every worker, or
 * nothing: the process's own), a lock (callbacks), whether a process is
 * alive, and the time; it reads the files (stat, threads, timers).  The
 * core lays the zone out, claims and publishes, reclaims, and answers
 * lookups without a lock.
 *
 * Several CRL files per issuer: each CRL covers the CA key that signed it
 * (jpki_crl_info.key_hash).  A certificate is looked up in the CRL of the
 * key that issued it; when no CRL of that key is in force the answer is
 * JPKI_ERR_REVOCATION_UNAVAILABLE (fail closed), never good.
 */
#ifndef JPKI_CRLZONE_H
#define JPKI_CRLZONE_H

#include "jpki.h"
#include "gate.h"

#define JPKI_CRLZONE_SLOTS    64     /* CRLs in force: an issuer's key each */
#define JPKI_CRLZONE_FILES    64     /* CRL files watched */
#define JPKI_CRLZONE_FID_MAX  64     /* bytes of a file version's identity */
#define JPKI_CRLZONE_MIN      (32 * 1024)   /* the smallest zone size */
#define JPKI_CRL_DIR_MAX      32     /* CRL files taken from one directory */

typedef struct jpki_crlzone jpki_crlzone;

typedef struct {
    /* writers (a shared zone: across processes); NULL: none needed */
    void (*lock)(void *ud);
    void (*unlock)(void *ud);
    /* a process's own CRLs read by threads while one of them loads: the
     * readers' side of the lock (NULL: a single-threaded process) */
    void (*rdlock)(void *ud);
    void (*rdunlock)(void *ud);
    /* a shared zone: whether process pid is alive (a loader that died is
     * taken over at once) */
    int (*alive)(void *ud, long pid);
    void *ud;
} jpki_crlzone_ops;

/* ---- a zone ------------------------------------------------------- */

/* The bytes of a shared zone's header (the CRLs get the rest). */
size_t jpki_crlzone_overhead(void);
/* Lays a zone out in mem (size bytes, 64-byte aligned), unless mem holds
 * one of this layout and size already (a reload, a restart: the CRLs in
 * force stay).  1: kept; 0: laid out anew; -1: too small or misaligned. */
int jpki_crlzone_format(void *mem, size_t size);
/* A process's handle on a shared zone (formatted before; every process
 * maps it, at any address).  name: for messages; self: this process. */
jpki_crlzone *jpki_crlzone_attach(void *mem, size_t size, const char *name,
                                  const jpki_crlzone_ops *ops, long self);
/* CRLs in the process's own memory (no zone configured); ops may have
 * all callbacks NULL. */
jpki_crlzone *jpki_crlzone_local(const jpki_crlzone_ops *ops);
/* Frees the handle (and a local zone's CRLs); the claim of a shared zone
 * is released. */
void jpki_crlzone_free(jpki_crlzone *z);
int jpki_crlzone_shared(const jpki_crlzone *z);
/* Releases the CRLs and file records of issuers not in list (a new
 * configuration): their memory is free again. */
void jpki_crlzone_retain(jpki_crlzone *z, const jpki_issuer *const *list,
                         size_t n);
/* Once a second or so: a writer that died in a section is ended, the
 * claim of a loader that died is released (zone lock taken). */
void jpki_crlzone_tick(jpki_crlzone *z);

/* ---- loading ------------------------------------------------------ */

/* A CRL file of an issuer, in the version stat() shows (fid: what tells
 * versions apart: device, inode, size, times; at most FID_MAX bytes). */
typedef struct {
    const jpki_issuer *issuer;
    const char *path;
    const void *fid;
    size_t fidlen;
} jpki_crlzone_file;

/* Whether this process parses the file now: 1 (the zone's claim is then
 * this process's until jpki_crlzone_end), 0 when this version was tried
 * (by any process) or another process loads. */
int jpki_crlzone_begin(jpki_crlzone *z, const jpki_crlzone_file *f,
                       int64_t now);
/* Reads and indexes a CRL file: no zone state touched (a thread may run
 * it).  detail: why not. */
jpki_err jpki_crlzone_build(const jpki_ctx *ctx, const char *path,
                            time_t now, unsigned grace_s,
                            jpki_crl_index **ix, char *detail, size_t dl);
/* The outcome of a load (jpki_crlzone_end): the sentence to log. */
typedef enum {
    JPKI_CRLZONE_LOADED = 0,         /* notice */
    JPKI_CRLZONE_REFUSED,            /* error: the CRL in force stays */
    JPKI_CRLZONE_FAILED              /* error: the zone (room, slots) */
} jpki_crlzone_outcome;
/* Puts the index of f (e: jpki_crlzone_build's result; ix freed) in force
 * when it may replace the CRL of its key in force (jpki_crl_index_
 * replaces), records the try for every process and releases the claim.
 * msg: the sentence to log ("CRL ... loaded: N entries", "... refused:
 * ...", "CRL zone ... too small ..."). */
jpki_crlzone_outcome jpki_crlzone_end(jpki_crlzone *z,
                                      const jpki_crlzone_file *f, jpki_err e,
                                      jpki_crl_index *ix, int64_t now,
                                      char *msg, size_t msglen);
/* The file could not be stat'ed: recorded (its CRL stays in force).  1 the
 * first time (log it), 0 when it was recorded already. */
int jpki_crlzone_unreadable(jpki_crlzone *z, const jpki_issuer *is,
                            const char *path);

/* ---- reading (no lock in a shared zone) ---------------------------- */

/* The status of the certificate issued by key (20 bytes, jpki_txn_
 * issuer_key) with cert_id, in the CRL of that key: JPKI_OK and info
 * (jpki_crl_index_lookup), JPKI_ERR_CRL_STALE, or JPKI_ERR_REVOCATION_
 * UNAVAILABLE when no CRL of the key is in force. */
jpki_err jpki_crlzone_lookup(jpki_crlzone *z, const jpki_issuer *is,
                             const uint8_t *key, const char *cert_id,
                             time_t now, unsigned grace_s,
                             jpki_rev_info *info);
/* The health of one CRL file, added to h (common/gate.h): its CRL in
 * force (when it put one in force), its last load's result.  label: the
 * file's own label in the answer (NULL: the issuer has one file). */
void jpki_crlzone_health(jpki_crlzone *z, const jpki_issuer *is,
                         const char *path, const char *label,
                         jpki_health *h);

/* ---- files and coverage (configuration) -------------------------- */

/* The CRL files of a crl= source: the file itself, or every *.crl and
 * *.pem file of a directory (sorted, at most JPKI_CRL_DIR_MAX).  out[]
 * receives malloc'ed paths.  The count; -1 when the source cannot be
 * read (errno set). */
int jpki_crl_source_files(const char *src, char **out, size_t max);
void jpki_crl_source_files_free(char **out, size_t n);
/* The CA keys of issuer is that none of its CRL files (sources: files or
 * directories) covers: warn(ud, sentence) once per key.  The files are
 * read now (configuration time).  The count of such keys. */
size_t jpki_crl_coverage_check(const jpki_ctx *ctx, const jpki_issuer *is,
                               const char *const *sources, size_t n,
                               void (*warn)(void *ud, const char *msg),
                               void *ud);

#endif
