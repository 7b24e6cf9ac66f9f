/*
 * watch.h - the files a site watches, one design for nginx and Apache: the
 * mapping file (mapfile.h) and the issuers' CRL files (crlzone.h).
 *
 * The core tells a file's versions apart, decides when a file is read,
 * reads it (a thread may run the reading), puts a reading in force, and
 * says what to log and at which level.  The adapter only says when to
 * look (nginx: a worker's 1 s timer; Apache: at most once a second from
 * requests, one thread of a child), where a reading runs (nginx: its
 * default thread pool), and gives its locks and its log.
 *
 * Levels given to the log callback: JPKI_LOG_ERROR (a file that cannot be
 * read or is refused), JPKI_LOG_WARN (malformed lines ignored),
 * JPKI_LOG_INFO (a file put in force: both adapters write it at their
 * notice level, which an error log shows by default).  Sentences have no
 * "jpki: " prefix.
 */
#ifndef JPKI_WATCH_H
#define JPKI_WATCH_H

#include "jpki.h"
#include "crlzone.h"
#include "mapfile.h"

#include <sys/stat.h>

/* ---- a file's version ------------------------------------------- */

/* What tells a watched file's versions apart: a replaced file (another
 * device or inode), one rewritten in place (size, mtime to the
 * nanosecond), one whose mode or owner changed (ctime: a file that could
 * not be read, fixed with chmod or chown, keeps its mtime).  Whole seconds
 * are not enough: a file written twice within a second, or read half
 * written in the second it was completed, would look unchanged; nor is
 * mtime alone (`touch -d`, `cp -p`, rsync keep or set it).  56 bytes, no
 * padding (kept in the CRL zone as a file's identity). */
typedef struct {
    uint64_t dev;
    uint64_t ino;
    int64_t size;
    int64_t mtime_s;
    int64_t mtime_ns;
    int64_t ctime_s;
    int64_t ctime_ns;
} jpki_file_id;

void jpki_file_id_of(const struct stat *st, jpki_file_id *id);
/* stat(2) of path: 0, or -1 (errno set). */
int jpki_file_id_stat(const char *path, jpki_file_id *id);
/* 1 when a and b are the same version. */
int jpki_file_id_same(const jpki_file_id *a, const jpki_file_id *b);

/* The adapter's lock over what readers share with the thread that
 * reloads (Apache: a child's threads; nginx: none, all NULL): the table
 * in force, the CRL file records.  Held only to swap or edit, never
 * while a file is read. */
typedef struct {
    void (*rdlock)(void *ud);
    void (*wrlock)(void *ud);
    void (*unlock)(void *ud);
    void *ud;
} jpki_watch_lock;

/* ---- the mapping file -------------------------------------------- */

/* A mapping file watched: the table in force, the version tried last,
 * the failure logged last. */
typedef struct jpki_mapwatch jpki_mapwatch;

/* lock: NULL, or the lock of the table in force (copied). */
jpki_mapwatch *jpki_mapwatch_new(const char *path, jpki_log_fn log,
                                 void *log_ud, const jpki_watch_lock *lock);
/* The watcher and its table (no reading may be under way). */
void jpki_mapwatch_free(jpki_mapwatch *w);
/* Whether the file must be read now: 1 when its version is not the one
 * tried last, or when it could not be read and no table is in force (tried
 * again at each check: the failure may be transient); the watcher is then
 * busy until jpki_mapwatch_apply.  0: unchanged, a reading under way, or
 * the file cannot be stat'ed (logged once until it is back). */
int jpki_mapwatch_check(jpki_mapwatch *w);
/* The reading (jpki_map_read): it touches only the reading's part of the
 * watcher, so a thread may run it while the table in force is used. */
void jpki_mapwatch_read(jpki_mapwatch *w);
/* Puts the reading in force, under the lock (the old table is freed once
 * the lock is released), or keeps the table in force.  Logged: a failure
 * once for a version and cause ("... (tried again every second)" when no
 * table is in force), the malformed lines, "mapping file ... loaded, N
 * entries". */
void jpki_mapwatch_apply(jpki_mapwatch *w);
/* check, read, apply, here. */
void jpki_mapwatch_load(jpki_mapwatch *w);
/* The account of cert_id in the table in force (under the lock's read
 * side): jpki_map_lookup.  0 when none (or w is NULL). */
size_t jpki_mapwatch_lookup(jpki_mapwatch *w, const char *cert_id,
                            char *out);

/* ---- the CRL files of a site ------------------------------------- */

/* The CRL files of a site's issuers (their crl= files, and the *.crl and
 * *.pem files of their crl= directories, listed again at each pass): one
 * record per file, at a fixed address for the watcher's life, so that a
 * parse under way (a thread) can point into it.  A record whose parse is
 * under way is neither dropped nor reused: its file, gone from a
 * directory, is let go when the parse ends. */
typedef struct jpki_crlwatch jpki_crlwatch;
typedef struct jpki_crlfile jpki_crlfile;

/* ctx: the site's (issuers, verification); grace_s: the site's CRL grace
 * (jpki_crlzone_build); lock: NULL or the records' lock (copied). */
jpki_crlwatch *jpki_crlwatch_new(const jpki_ctx *ctx, unsigned grace_s,
                                 jpki_log_fn log, void *log_ud,
                                 const jpki_watch_lock *lock);
/* An issuer and its crl= sources (before the first pass; sources are
 * copied; at most JPKI_ISSUER_CRL_MAX).  -1: out of memory or too many. */
int jpki_crlwatch_issuer(jpki_crlwatch *w, const jpki_issuer *is,
                         const char *const *sources, size_t n);
/* Frees the records (no parse may be running: nginx's thread pool has
 * ended at a worker's exit; a parse done but not ended is freed). */
void jpki_crlwatch_free(jpki_crlwatch *w);

/* Takes the parse of f to another thread: 0 when taken (the adapter runs
 * jpki_crlfile_build there, then jpki_crlfile_end back in the thread that
 * runs the passes), -1 to have it run here. */
typedef int (*jpki_crlwatch_start_fn)(void *ud, jpki_crlfile *f);

/* A pass (once a second or so): the zone's tick, the sources listed
 * again, each file stat'ed and, when this version was not tried (by any
 * process, jpki_crlzone_begin) and no parse of it is under way, parsed:
 * through start (NULL: here).  A file that cannot be stat'ed is logged
 * once (its CRL stays in force). */
void jpki_crlwatch_pass(jpki_crlwatch *w, jpki_crlzone *z, int64_t now,
                        jpki_crlwatch_start_fn start, void *ud);
/* The parse of f (jpki_crlzone_build): no state but f's job touched. */
void jpki_crlfile_build(jpki_crlfile *f);
/* The end of f's parse: jpki_crlzone_end, its sentence logged (INFO when
 * loaded, ERROR otherwise); f is free for the next version. */
void jpki_crlfile_end(jpki_crlfile *f, int64_t now);
const char *jpki_crlfile_path(const jpki_crlfile *f);
/* A pointer of the adapter's, kept with the record for the watcher's
 * life (nginx: the file's thread task, allocated once). */
void **jpki_crlfile_data(jpki_crlfile *f);

/* The files watched now (the health answer's size). */
size_t jpki_crlwatch_count(jpki_crlwatch *w);
/* Every file watched in the health answer (jpki_crlzone_health), with
 * its own label (its base name) when its issuer has several. */
void jpki_crlwatch_health(jpki_crlwatch *w, jpki_crlzone *z,
                          jpki_health *h);

#endif
