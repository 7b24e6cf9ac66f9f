/*
 * ngx_http_jpki.h - shared declarations of the nginx JPKI gate module.
 * JPKI logic lives in common/ (jpki.h); this module only drives it.
 */
#ifndef NGX_HTTP_JPKI_H
#define NGX_HTTP_JPKI_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "jpki.h"


#define NGX_HTTP_JPKI_STORE_SHM    1
#define NGX_HTTP_JPKI_STORE_REDIS  2


typedef struct ngx_http_jpki_io_s  ngx_http_jpki_io_t;


/* What tells a watched file's versions apart: a replaced file (a new
 * inode), one rewritten in place (size, mtime to the nanosecond), one whose
 * mode or owner changed (ctime: a file that could not be read, fixed with
 * chmod or chown, keeps its mtime).  Whole seconds are not enough: a file
 * written twice within a second, or read half-written in the second it was
 * completed, would look unchanged. */
typedef struct {
    dev_t                      dev;
    ino_t                      ino;
    off_t                      size;
    time_t                     sec;
    long                       nsec;
    time_t                     csec;
    long                       cnsec;
} ngx_http_jpki_file_id_t;


/* The CRL of an issuer: in the shared zone of jpki_crl_zone (one copy for
 * every worker, loaded by one of them), or in the worker's own memory.  In
 * the zone, cur is read without a lock: see "The CRL zone" in
 * ngx_http_jpki_module.c; the other fields are written under the zone's
 * mutex, and file (more than a word: a read of it half updated would not
 * match either version) is read under it too. */
typedef struct {
    const jpki_crl_index      *cur;           /* NULL: none loaded */
    ngx_http_jpki_file_id_t    file;          /* the file tried last */
    time_t                     loaded;        /* when cur was loaded */
    ngx_int_t                  error;         /* jpki_err of the last try */
    u_char                     tag[17];       /* issuer tag of cur */
} ngx_http_jpki_crl_slot_t;


typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  crl_file;
    ngx_url_t                  ocsp_url;
    ngx_str_t                  ocsp_host;     /* Host header */
    ngx_str_t                  ocsp_uri;
    jpki_issuer               *issuer;
    ngx_http_jpki_crl_slot_t  *crl;           /* zone or crl_own */
    ngx_http_jpki_crl_slot_t   crl_own;       /* without jpki_crl_zone */
    ngx_uint_t                 crl_busy;      /* parsing, or pending */
    jpki_crl_index            *crl_pending;   /* parsed, waiting for room
                                                 in the zone (this worker) */
    ngx_http_jpki_file_id_t    crl_pending_file;
#if (NGX_THREADS)
    ngx_thread_task_t         *crl_task;
#endif
} ngx_http_jpki_issuer_t;


/* A site: its JPKI context, issuers, store and files.  The module's server
 * configuration; `site` is the one in force (its own when it has site
 * directives, else the http block's). */
typedef struct ngx_http_jpki_main_conf_s  ngx_http_jpki_main_conf_t;

struct ngx_http_jpki_main_conf_s {
    ngx_http_jpki_main_conf_t *site;
    jpki_ctx                  *ctx;
    ngx_flag_t                 configured;
    ngx_flag_t                 has_secret;
    ngx_array_t                issuers;       /* ngx_http_jpki_issuer_t */

    ngx_uint_t                 store;
    ngx_shm_zone_t            *shm_zone;
    jpki_shm                  *shm;           /* per worker handle */
    void                      *shm_handle;

    /* Redis: the node's table of logout markers (all workers), filled by
     * each worker's poller of the logout log (common/outsync.c) */
    ngx_shm_zone_t            *mirror_zone;
    jpki_shm                  *mirror;        /* per worker handle */
    void                      *mirror_handle;
    jpki_outsync              *outsync;       /* per worker */
    ngx_event_t                outsync_timer;
    ngx_http_jpki_io_t        *outsync_io;
    ngx_uint_t                 logins;        /* being verified, this worker */

    ngx_url_t                  redis;
    ngx_str_t                  redis_user;
    ngx_str_t                  redis_password;
    ngx_int_t                  redis_db;
    ngx_msec_t                 redis_connect_timeout;
    ngx_msec_t                 redis_timeout;
    ngx_uint_t                 redis_keepalive;
    ngx_queue_t                redis_idle;    /* per worker: this site's */
    ngx_uint_t                 redis_nidle;   /* pooled connections */
#if (NGX_SSL)
    ngx_ssl_t                 *redis_ssl;     /* TLS with verification */
    ngx_str_t                  redis_tls_name;
#endif

    ngx_msec_t                 ocsp_timeout;
    ngx_uint_t                 crl_grace;     /* JPKI_CRL_GRACE_VALIDITY */
    ngx_shm_zone_t            *crl_zone;      /* jpki_crl_zone */
    ngx_uint_t                 crl_npending;  /* issuers with crl_pending */
#if (NGX_THREADS)
    ngx_thread_pool_t         *threads;       /* "default": files read */
    ngx_thread_task_t         *map_task;
#endif

    ngx_str_t                  map_file;
    ngx_http_jpki_file_id_t    map_file_id;   /* the file tried last */
    ngx_uint_t                 map_busy;      /* read in a thread */
    ngx_uint_t                 map_missing;   /* logged as unreadable */
    ngx_http_jpki_file_id_t    map_failed_id; /* the last failure logged: */
    ngx_int_t                  map_failed;    /* its jpki_err (0: none) */
    ngx_event_t                map_timer;
    void                      *map;           /* per worker table */
};


typedef struct {
    ngx_array_t                sites;         /* ngx_http_jpki_main_conf_t * */
} ngx_http_jpki_sites_t;


#define ngx_http_jpki_site(r)                                                 \
    (((ngx_http_jpki_main_conf_t *)                                           \
      ngx_http_get_module_srv_conf(r, ngx_http_jpki_module))->site)



/* Store I/O completion: res holds n results (all JPKI_STORE_R_ERROR when
 * the I/O failed), or res is NULL on a timeout. */
typedef void (*ngx_http_jpki_store_done_pt)(void *data,
    jpki_store_result *res, size_t n);
/* OCSP completion: status 0 on failure or timeout. */
typedef void (*ngx_http_jpki_ocsp_done_pt)(void *data, ngx_int_t status,
    u_char *body, size_t len);


ngx_int_t ngx_http_jpki_redis_exec(ngx_http_jpki_main_conf_t *jmcf,
    ngx_log_t *log, const jpki_store_cmd *cmds, size_t n,
    ngx_http_jpki_store_done_pt done, void *data, ngx_http_jpki_io_t **io);

ngx_int_t ngx_http_jpki_ocsp_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, ngx_log_t *log, ngx_str_t *key,
    const u_char *body, size_t len, ngx_http_jpki_ocsp_done_pt done,
    void *data, ngx_http_jpki_io_t **io);

/* The request went away: the I/O goes on (or is closed) but will not call
 * back. */
void ngx_http_jpki_io_detach(ngx_http_jpki_io_t *io);


extern ngx_module_t  ngx_http_jpki_module;

#endif /* NGX_HTTP_JPKI_H */
