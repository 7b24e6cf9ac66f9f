/* watch.c - the files a site watches: the mapping file and the issuers'
 * CRL files (watch.h).  One design for both adapters: a version is told
 * apart by device, inode, size, mtime and ctime to the nanosecond; a
 * failure is logged once for a version and cause; CRL file records stay
 * where they are while a parse (maybe a thread) points into them. */
#include "internal.h"
#include "watch.h"
#include "conf_issuer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A file's version                                                    */
/* ------------------------------------------------------------------ */

void jpki_file_id_of(const struct stat *st, jpki_file_id *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->size = (int64_t)st->st_size;
#ifdef __APPLE__
    id->mtime_s = st->st_mtimespec.tv_sec;
    id->mtime_ns = st->st_mtimespec.tv_nsec;
    id->ctime_s = st->st_ctimespec.tv_sec;
    id->ctime_ns = st->st_ctimespec.tv_nsec;
#else
    id->mtime_s = st->st_mtim.tv_sec;
    id->mtime_ns = st->st_mtim.tv_nsec;
    id->ctime_s = st->st_ctim.tv_sec;
    id->ctime_ns = st->st_ctim.tv_nsec;
#endif
}

int jpki_file_id_stat(const char *path, jpki_file_id *id)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -1;
    jpki_file_id_of(&st, id);
    return 0;
}

int jpki_file_id_same(const jpki_file_id *a, const jpki_file_id *b)
{
    return a->ino == b->ino && a->dev == b->dev && a->size == b->size
           && a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns
           && a->ctime_s == b->ctime_s && a->ctime_ns == b->ctime_ns;
}

/* ---- locks and log ------------------------------------------------ */

static void w_rdlock(const jpki_watch_lock *l)
{
    if (l->rdlock != NULL)
        l->rdlock(l->ud);
}

static void w_wrlock(const jpki_watch_lock *l)
{
    if (l->wrlock != NULL)
        l->wrlock(l->ud);
}

static void w_unlock(const jpki_watch_lock *l)
{
    if (l->unlock != NULL)
        l->unlock(l->ud);
}

__attribute__((format(printf, 4, 5)))
static void w_log(jpki_log_fn log, void *ud, jpki_log_level level,
                  const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log(ud, level, msg);
}

/* ------------------------------------------------------------------ */
/* The mapping file                                                    */
/* ------------------------------------------------------------------ */

struct jpki_mapwatch {
    char *path;
    jpki_log_fn log;
    void *log_ud;
    jpki_watch_lock lock;
    jpki_map *map;              /* the table in force (NULL: none) */
    jpki_file_id tried;         /* the version read last ... */
    int has_tried;              /* ... (0: read it at the next check) */
    jpki_file_id failed_id;     /* the failure logged last: its version */
    jpki_err failed;            /* and cause (JPKI_OK: none) */
    int missing;                /* not stat'ed: logged */
    int busy;                   /* a reading under way */
    /* the reading (jpki_mapwatch_read) */
    jpki_file_id rd_file;
    jpki_map *rd_map;
    jpki_err rd_e;
    char rd_why[512];
};

jpki_mapwatch *jpki_mapwatch_new(const char *path, jpki_log_fn log,
                                 void *log_ud, const jpki_watch_lock *lock)
{
    jpki_mapwatch *w = calloc(1, sizeof(*w));

    if (w == NULL || (w->path = strdup(path)) == NULL) {
        free(w);
        return NULL;
    }
    w->log = log;
    w->log_ud = log_ud;
    if (lock != NULL)
        w->lock = *lock;
    return w;
}

void jpki_mapwatch_free(jpki_mapwatch *w)
{
    if (w == NULL)
        return;
    jpki_map_free(w->map);
    jpki_map_free(w->rd_map);
    free(w->path);
    free(w);
}

int jpki_mapwatch_check(jpki_mapwatch *w)
{
    jpki_file_id id;
    char why[128];

    if (w == NULL || w->busy)
        return 0;
    if (jpki_file_id_stat(w->path, &id) != 0) {
        if (!w->missing)
            w_log(w->log, w->log_ud, JPKI_LOG_ERROR, "cannot read mapping "
                  "file \"%s\": %s%s", w->path,
                  strerror_r(errno, why, sizeof(why)),
                  w->map ? "" : " (tried again every second)");
        w->missing = 1;
        w->has_tried = 0;       /* whatever version comes back is read */
        return 0;
    }
    w->missing = 0;
    if (w->has_tried && jpki_file_id_same(&id, &w->tried))
        return 0;
    w->rd_file = id;
    w->rd_map = NULL;
    w->rd_e = JPKI_OK;
    w->rd_why[0] = '\0';
    w->busy = 1;
    return 1;
}

void jpki_mapwatch_read(jpki_mapwatch *w)
{
    w->rd_e = jpki_map_read(w->path, &w->rd_map, w->rd_why,
                            sizeof(w->rd_why));
}

/* A reading that failed: the table in force stays (and that version is
 * not read again until it changes); without one, it is read again at the
 * next check.  Logged once for a version and cause. */
static void map_failed(jpki_mapwatch *w)
{
    if (w->failed != w->rd_e || !jpki_file_id_same(&w->rd_file,
                                                    &w->failed_id)) {
        w_log(w->log, w->log_ud, JPKI_LOG_ERROR, "%s%s", w->rd_why,
              w->map ? "" : " (tried again every second)");
        w->failed = w->rd_e;
        w->failed_id = w->rd_file;
    }
    if (w->map != NULL) {
        w->tried = w->rd_file;
        w->has_tried = 1;
    }
}

void jpki_mapwatch_apply(jpki_mapwatch *w)
{
    jpki_map *old;
    char warn[1024];

    w->busy = 0;
    if (w->rd_map == NULL) {
        if (w->rd_e == JPKI_OK) {
            w->rd_e = JPKI_ERR_INTERNAL;
            snprintf(w->rd_why, sizeof(w->rd_why), "mapping file \"%s\": "
                     "not read", w->path);
        }
        map_failed(w);
        return;
    }
    w->tried = w->rd_file;
    w->has_tried = 1;
    w->failed = JPKI_OK;
    if (w->rd_map->bad) {
        jpki_map_warning(w->rd_map, w->path, warn, sizeof(warn));
        w_log(w->log, w->log_ud, JPKI_LOG_WARN, "%s", warn);
    }

    w_wrlock(&w->lock);
    old = w->map;
    w->map = w->rd_map;
    w_unlock(&w->lock);
    w->rd_map = NULL;
    jpki_map_free(old);

    w_log(w->log, w->log_ud, JPKI_LOG_INFO, "mapping file \"%s\" loaded, "
          "%zu entries", w->path, w->map->n);
}

void jpki_mapwatch_load(jpki_mapwatch *w)
{
    if (jpki_mapwatch_check(w)) {
        jpki_mapwatch_read(w);
        jpki_mapwatch_apply(w);
    }
}

size_t jpki_mapwatch_lookup(jpki_mapwatch *w, const char *cert_id,
                            char *out)
{
    size_t n;

    if (w == NULL)
        return 0;
    w_rdlock(&w->lock);
    n = jpki_map_lookup(w->map, cert_id, out);
    w_unlock(&w->lock);
    return n;
}

/* ------------------------------------------------------------------ */
/* The CRL files of a site                                             */
/* ------------------------------------------------------------------ */

struct jpki_crlfile {
    const jpki_crlwatch *w;
    const jpki_issuer *issuer;
    char *path;                 /* NULL: a free record */
    int seen;                   /* in the last listing */
    int gone;                   /* not listed any more, its parse runs */
    int busy;                   /* a parse under way */
    void *data;                 /* the adapter's */
    /* the parse (jpki_crlfile_build, jpki_crlfile_end) */
    jpki_crlzone *z;
    jpki_file_id fid;
    int64_t now;
    jpki_err e;
    jpki_crl_index *ix;
    char detail[256];
};

typedef struct {
    const jpki_issuer *is;
    char *src[JPKI_ISSUER_CRL_MAX];
    size_t nsrc;
    jpki_crlfile *file;         /* cap records, never moved */
    size_t cap;
} watch_issuer;

struct jpki_crlwatch {
    const jpki_ctx *ctx;
    unsigned grace;
    jpki_log_fn log;
    void *log_ud;
    jpki_watch_lock lock;
    watch_issuer *iss;
    size_t n;
};

jpki_crlwatch *jpki_crlwatch_new(const jpki_ctx *ctx, unsigned grace_s,
                                 jpki_log_fn log, void *log_ud,
                                 const jpki_watch_lock *lock)
{
    jpki_crlwatch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->ctx = ctx;
    w->grace = grace_s;
    w->log = log;
    w->log_ud = log_ud;
    if (lock != NULL)
        w->lock = *lock;
    return w;
}

int jpki_crlwatch_issuer(jpki_crlwatch *w, const jpki_issuer *is,
                         const char *const *sources, size_t n)
{
    watch_issuer *x, *more;
    size_t i;

    if (n == 0)
        return 0;
    if (n > JPKI_ISSUER_CRL_MAX)
        return -1;
    more = realloc(w->iss, (w->n + 1) * sizeof(*more));
    if (more == NULL)
        return -1;
    w->iss = more;
    x = &w->iss[w->n];
    memset(x, 0, sizeof(*x));
    x->is = is;
    /* a directory's files, and room for as many whose parse still runs
     * once they left it */
    x->cap = (n + 1) * JPKI_CRL_DIR_MAX;
    x->file = calloc(x->cap, sizeof(jpki_crlfile));
    for (i = 0; x->file != NULL && i < n; i++) {
        if ((x->src[i] = strdup(sources[i])) == NULL)
            break;
        x->nsrc++;
    }
    if (x->file == NULL || x->nsrc < n) {
        for (i = 0; i < x->nsrc; i++)
            free(x->src[i]);
        free(x->file);
        return -1;
    }
    for (i = 0; i < x->cap; i++) {
        x->file[i].w = w;
        x->file[i].issuer = is;
    }
    w->n++;
    return 0;
}

void jpki_crlwatch_free(jpki_crlwatch *w)
{
    size_t i, k;

    if (w == NULL)
        return;
    for (i = 0; i < w->n; i++) {
        for (k = 0; k < w->iss[i].cap; k++) {
            free(w->iss[i].file[k].path);
            jpki_crl_index_free(w->iss[i].file[k].ix);
        }
        for (k = 0; k < w->iss[i].nsrc; k++)
            free(w->iss[i].src[k]);
        free(w->iss[i].file);
    }
    free(w->iss);
    free(w);
}

/* The record of path (kept), or a free one (NULL: no room); called with
 * the records' lock held.  A record whose parse runs keeps its path until
 * the parse ends (scan, jpki_crlfile_end): it is never free. */
static jpki_crlfile *file_of(watch_issuer *x, const char *path)
{
    jpki_crlfile *spare = NULL;
    size_t k;

    for (k = 0; k < x->cap; k++) {
        if (x->file[k].path != NULL && strcmp(x->file[k].path, path) == 0)
            return &x->file[k];
        if (x->file[k].path == NULL && spare == NULL)
            spare = &x->file[k];
    }
    if (spare == NULL || (spare->path = strdup(path)) == NULL)
        return NULL;
    return spare;
}

/* The files of x's sources now (a directory's may change; a source that
 * cannot be listed is watched as a file: it may come).  The count. */
static size_t list_sources(const watch_issuer *x, char **paths, size_t max)
{
    size_t i, n = 0;
    int k;

    for (i = 0; i < x->nsrc && n < max; i++) {
        k = jpki_crl_source_files(x->src[i], paths + n,
                                  max - n < JPKI_CRL_DIR_MAX
                                  ? max - n : JPKI_CRL_DIR_MAX);
        if (k < 0) {
            paths[n] = strdup(x->src[i]);
            k = paths[n] != NULL;
        }
        n += (size_t)k;
    }
    return n;
}

/* The records follow the listing: a file listed has one (kept from the
 * last pass), a file no longer listed loses its own, unless its parse
 * runs (then it is let go when the parse ends).  Their CRLs stay in
 * force. */
static void scan(jpki_crlwatch *w, watch_issuer *x)
{
    char *paths[JPKI_ISSUER_CRL_MAX * JPKI_CRL_DIR_MAX];
    jpki_crlfile *f;
    size_t n, k;

    n = list_sources(x, paths, x->nsrc * JPKI_CRL_DIR_MAX);
    w_wrlock(&w->lock);
    for (k = 0; k < x->cap; k++)
        x->file[k].seen = 0;
    for (k = 0; k < n; k++) {
        f = file_of(x, paths[k]);
        if (f != NULL) {
            f->seen = 1;
            f->gone = 0;
        }
    }
    for (k = 0; k < x->cap; k++) {
        f = &x->file[k];
        if (f->path == NULL || f->seen)
            continue;
        if (f->busy) {
            f->gone = 1;
        } else {
            free(f->path);
            f->path = NULL;
        }
    }
    w_unlock(&w->lock);
    jpki_crl_source_files_free(paths, n);
}

/* One file: stat'ed; parsed when this version was not tried. */
static void file_pass(jpki_crlwatch *w, jpki_crlfile *f, jpki_crlzone *z,
                      int64_t now, jpki_crlwatch_start_fn start, void *ud)
{
    jpki_crlzone_file zf = {f->issuer, f->path, &f->fid, sizeof(f->fid)};
    char why[128];
    int err;

    if (jpki_file_id_stat(f->path, &f->fid) != 0) {
        err = errno;                    /* (the zone's lock may change it) */
        if (jpki_crlzone_unreadable(z, f->issuer, f->path))
            w_log(w->log, w->log_ud, JPKI_LOG_ERROR, "CRL \"%s\" "
                  "unreadable: %s", f->path,
                  strerror_r(err, why, sizeof(why)));
        return;
    }
    if (!jpki_crlzone_begin(z, &zf, now))
        return;                         /* tried, or under way elsewhere */
    f->busy = 1;
    f->z = z;
    f->now = now;
    f->e = JPKI_OK;
    f->ix = NULL;
    f->detail[0] = '\0';
    if (start != NULL && start(ud, f) == 0)
        return;                         /* parsed in another thread */
    jpki_crlfile_build(f);
    jpki_crlfile_end(f, now);
}

void jpki_crlwatch_pass(jpki_crlwatch *w, jpki_crlzone *z, int64_t now,
                        jpki_crlwatch_start_fn start, void *ud)
{
    watch_issuer *x;
    size_t i, k;

    if (w == NULL || z == NULL)
        return;
    jpki_crlzone_tick(z);
    for (i = 0; i < w->n; i++) {
        x = &w->iss[i];
        scan(w, x);
        for (k = 0; k < x->cap; k++)
            if (x->file[k].path != NULL && !x->file[k].busy)
                file_pass(w, &x->file[k], z, now, start, ud);
    }
}

void jpki_crlfile_build(jpki_crlfile *f)
{
    f->e = jpki_crlzone_build(f->w->ctx, f->path, (time_t)f->now,
                              f->w->grace, &f->ix, f->detail,
                              sizeof(f->detail));
}

void jpki_crlfile_end(jpki_crlfile *f, int64_t now)
{
    const jpki_crlwatch *w = f->w;
    jpki_crlzone_file zf = {f->issuer, f->path, &f->fid, sizeof(f->fid)};
    jpki_crlzone_outcome o;
    char msg[1024];

    o = jpki_crlzone_end(f->z, &zf, f->e, f->ix, now, msg, sizeof(msg));
    f->ix = NULL;                       /* the zone's now, or freed */
    w_log(w->log, w->log_ud, o == JPKI_CRLZONE_LOADED ? JPKI_LOG_INFO
                                                      : JPKI_LOG_ERROR,
          "%s", msg);
    if (f->gone) {
        w_wrlock(&w->lock);
        free(f->path);
        f->path = NULL;
        f->gone = 0;
        w_unlock(&w->lock);
    }
    f->busy = 0;
}

const char *jpki_crlfile_path(const jpki_crlfile *f)
{
    return f->path;
}

void **jpki_crlfile_data(jpki_crlfile *f)
{
    return &f->data;
}

/* The files of x listed now (under the records' lock). */
static size_t listed(const watch_issuer *x)
{
    size_t k, n = 0;

    for (k = 0; k < x->cap; k++)
        n += x->file[k].path != NULL && !x->file[k].gone;
    return n;
}

size_t jpki_crlwatch_count(jpki_crlwatch *w)
{
    size_t i, n = 0;

    if (w == NULL)
        return 0;
    w_rdlock(&w->lock);
    for (i = 0; i < w->n; i++)
        n += listed(&w->iss[i]);
    w_unlock(&w->lock);
    return n;
}

void jpki_crlwatch_health(jpki_crlwatch *w, jpki_crlzone *z, jpki_health *h)
{
    const watch_issuer *x;
    const jpki_crlfile *f;
    const char *base;
    size_t i, k, n;

    if (w == NULL)
        return;
    w_rdlock(&w->lock);
    for (i = 0; i < w->n; i++) {
        x = &w->iss[i];
        n = listed(x);
        for (k = 0; k < x->cap; k++) {
            f = &x->file[k];
            if (f->path == NULL || f->gone)
                continue;
            base = strrchr(f->path, '/');
            jpki_crlzone_health(z, x->is, f->path,
                                n > 1 ? (base ? base + 1 : f->path) : NULL,
                                h);
        }
    }
    w_unlock(&w->lock);
}
