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
#include "crlzone.h"
#include "conf.h"
#include "site.h"
#include "mapfile.h"
#include "watch.h"
#include "allow.h"
#include "shared.h"
#include "discovery.h"


typedef struct ngx_http_jpki_io_s  ngx_http_jpki_io_t;


/* A site: the nginx http block or a server block with its own
 * jpki_secret_file, jpki_issuer and jpki_store.  The module's server
 * configuration; `site` is the one in force (its own when it is a site,
 * else the http block's).  What it is made of is the core's (sc as
 * written, js built: common/siteconf.h, site.h); here is what nginx makes
 * of it: addresses, zones, the worker's connections, timers, threads. */
typedef struct ngx_http_jpki_main_conf_s  ngx_http_jpki_main_conf_t;

struct ngx_http_jpki_main_conf_s {
    ngx_http_jpki_main_conf_t *site;
    jpki_siteconf             *sc;
    jpki_site                 *js;            /* NULL: not a site */
    jpki_ctx                  *ctx;           /* js's */
    ngx_url_t                 *ocsp[JPKI_MAX_ISSUERS];  /* by issuer */
    ngx_flag_t                 tls_hold12;    /* jpki_tls_hold12 (this
                                                 server's, not the site's) */

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
    /* sentinel=: the sentinels' addresses (resolved at configuration),
     * and this worker's record of the primary they name */
    ngx_url_t                 *sentinels;
    ngx_uint_t                 nsentinels;
    jpki_sentinel             *sentinel;      /* per worker */
    ngx_uint_t                 sentinel_asking;  /* a discovery under way */
    jpki_discovery             discovery;        /* ... its state */
    ngx_http_jpki_io_t        *sentinel_waiters; /* rounds waiting for it */
    ngx_msec_t                 redis_connect_timeout;
    ngx_msec_t                 redis_timeout;
    ngx_msec_t                 ocsp_timeout;
    ngx_queue_t                redis_idle;    /* per worker: this site's */
    ngx_uint_t                 redis_nidle;   /* pooled connections */
    ngx_uint_t                 redis_nopen;   /* open: pooled and busy */
    ngx_queue_t                redis_waiting; /* rounds waiting for one */
    ngx_event_t                redis_flush;   /* posted: the rounds of this
                                                 pass of the event loop go */

    ngx_shm_zone_t            *crl_zone;      /* jpki_crl_zone */
    size_t                     crl_zone_bytes;  /* the core's zone in it */
#if (NGX_THREADS)
    ngx_thread_pool_t         *threads;       /* "default": files read */
    ngx_thread_task_t         *map_task;
#endif
    ngx_event_t                map_timer;
    ngx_open_file_t           *audit_file;    /* jpki_audit_log; NULL */
};


typedef struct {
    ngx_array_t                sites;         /* ngx_http_jpki_main_conf_t * */
    ngx_shm_zone_t            *shared_zone;   /* "jpki_shared" (shared.h) */
    ngx_int_t                  request_id_index;  /* $request_id */
} ngx_http_jpki_sites_t;


#define ngx_http_jpki_site(r)                                                 \
    (((ngx_http_jpki_main_conf_t *)                                           \
      ngx_http_get_module_srv_conf(r, ngx_http_jpki_module))->site)


/* A location's configuration. */
typedef struct {
    ngx_flag_t                 enable;
    ngx_flag_t                 endpoints;
    ngx_flag_t                 health;        /* jpki_health here */
    ngx_flag_t                 admin;         /* jpki_admin here */
    ngx_flag_t                 metrics;       /* jpki_metrics here */
    jpki_locconf               lc;            /* the core's: values,
                                                 throttle */
    /* merged: */
    ngx_str_t                  header;        /* jpki_header */
    ngx_flag_t                 pass_cookie;   /* jpki_pass_cookie */
    jpki_policy               *policy;
} ngx_http_jpki_loc_conf_t;


typedef struct {
    ngx_http_request_t        *r;
    jpki_txn                  *txn;
    ngx_http_jpki_io_t        *io;
    jpki_op                    op;
    ngx_uint_t                 done;
    ngx_uint_t                 waiting;      /* I/O under way */
    ngx_int_t                  rc;           /* access phase result */
    ngx_uint_t                 pass;         /* the gate let it through */
    ngx_uint_t                 counted;      /* a login in jmcf->logins */
    ngx_uint_t                 held;         /* the answer was held */
    ngx_event_t                hold;         /* verdict's delay_ms */
    u_char                    *body;
    size_t                     body_len;
    ngx_str_t                  account;       /* the verdict's */
    const jpki_verdict        *refused;       /* a passed check the
                                                 location's allow-lists
                                                 refused: the answer */
    u_char                     peer[NGX_SOCKADDR_STRLEN + 1];
    u_char                    *uri;
} ngx_http_jpki_ctx_t;


/* Store I/O completion: res holds n results (all JPKI_STORE_R_ERROR when
 * the I/O failed), or res is NULL on a timeout. */
typedef void (*ngx_http_jpki_store_done_pt)(void *data,
    jpki_store_result *res, size_t n);
/* OCSP completion: status 0 on failure or timeout. */
typedef void (*ngx_http_jpki_ocsp_done_pt)(void *data, ngx_int_t status,
    u_char *body, size_t len);


void ngx_http_jpki_redis_flush(ngx_event_t *ev);
ngx_int_t ngx_http_jpki_redis_exec(ngx_http_jpki_main_conf_t *jmcf,
    ngx_log_t *log, const jpki_store_cmd *cmds, size_t n,
    ngx_http_jpki_store_done_pt done, void *data, ngx_http_jpki_io_t **io);

ngx_int_t ngx_http_jpki_ocsp_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_uint_t issuer, ngx_log_t *log, ngx_str_t *key,
    const u_char *body, size_t len, ngx_http_jpki_ocsp_done_pt done,
    void *data, ngx_http_jpki_io_t **io);

/* The request went away: the I/O goes on (or is closed) but will not call
 * back. */
void ngx_http_jpki_io_detach(ngx_http_jpki_io_t *io);


/* Functions of one file of this module used by another. */
ngx_table_elt_t *ngx_http_jpki_header_next(ngx_list_part_t **part, ngx_uint_t *i);
ngx_int_t ngx_http_jpki_set_account_header(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf, ngx_str_t *account);
ngx_int_t ngx_http_jpki_upstream_cookies(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf);
ngx_int_t ngx_http_jpki_add_out_header(ngx_http_request_t *r, const char *name,
    const char *value);
ngx_http_jpki_ctx_t *ngx_http_jpki_passed(ngx_http_request_t *r);
ngx_int_t ngx_http_jpki_gate(ngx_http_request_t *r);
ngx_int_t ngx_http_jpki_preaccess_handler(ngx_http_request_t *r);
char *ngx_http_jpki_endpoints(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
/* ngx_http_jpki_conf.c: the directives of the core's grammar */
#define NGX_HTTP_JPKI_VALUE  JPKI__SC_COUNT   /* + a jpki_directive_id */
char *ngx_http_jpki_conf_site(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_conf_loc(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_conf_flag(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_flag_t *flag);
char *ngx_http_jpki_throttle(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_login_template(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void *ngx_http_jpki_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_jpki_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
char *ngx_http_jpki_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_jpki_admin_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_jpki_shm_lock(void *ud);
void ngx_http_jpki_shm_unlock(void *ud);
/* ngx_http_jpki_crl.c: the CRL zone, a worker's CRLs */
char *ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf);
ngx_int_t ngx_http_jpki_crl_init(ngx_cycle_t *cycle,
    ngx_http_jpki_main_conf_t *jmcf);
void ngx_http_jpki_crl_exit(ngx_http_jpki_main_conf_t *jmcf);
void ngx_http_jpki_load_crls(ngx_http_jpki_main_conf_t *jmcf);
#if (NGX_THREADS)
void *ngx_http_jpki_task(ngx_http_jpki_main_conf_t *jmcf,
    ngx_thread_task_t **task, size_t size,
    void (*handler)(void *data, ngx_log_t *log), ngx_event_handler_pt done,
    ngx_log_t *log);
#endif
/* The core's sentences; ud NGX_HTTP_JPKI_WATCH_LOG: the watched files'
 * (common/watch.h). */
void ngx_http_jpki_log(void *ud, jpki_log_level level, const char *msg);
#define NGX_HTTP_JPKI_WATCH_LOG  ((void *) "jpki: ")
void ngx_http_jpki_files_timer(ngx_event_t *ev);
ngx_int_t ngx_http_jpki_init_process(ngx_cycle_t *cycle);
int64_t ngx_http_jpki_now_ms(void);
void ngx_http_jpki_exit_process(ngx_cycle_t *cycle);
ngx_http_jpki_ctx_t *ngx_http_jpki_new_ctx(ngx_http_request_t *r, jpki_op op);
ngx_int_t ngx_http_jpki_start(ngx_http_jpki_ctx_t *ctx);
void ngx_http_jpki_drive(ngx_http_jpki_ctx_t *ctx);
ngx_int_t ngx_http_jpki_answer(ngx_http_request_t *r, const jpki_verdict *v,
    ngx_uint_t body);
ngx_int_t ngx_http_jpki_refuse(ngx_http_request_t *r, jpki_err e);
ngx_int_t ngx_http_jpki_add_variables(ngx_conf_t *cf);
/* ngx_http_jpki_audit.c: the audit file (jpki_audit_log) */
char *ngx_http_jpki_audit_open(ngx_conf_t *cf,
    ngx_http_jpki_main_conf_t *jmcf);
ngx_int_t ngx_http_jpki_audit_conf(ngx_conf_t *cf);
ngx_int_t ngx_http_jpki_audit_init_module(ngx_cycle_t *cycle);
const char *ngx_http_jpki_audit_request_id(const void *ud, size_t *len);
void ngx_http_jpki_audit(ngx_http_request_t *r, const char *audit);

extern ngx_module_t  ngx_http_jpki_module;

#endif /* NGX_HTTP_JPKI_H */
