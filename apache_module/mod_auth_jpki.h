/*
 * mod_auth_jpki.h - shared declarations of the Apache httpd JPKI gate.
 * The JPKI logic, the sites' configuration and their build are the core's
 * (common/); this module drives its transactions with bounded blocking
 * I/O.  Its files, by concern: docs/hacking.md.
 */
#ifndef MOD_AUTH_JPKI_H
#define MOD_AUTH_JPKI_H

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "apr_strings.h"
#include "apr_shm.h"
#include "apr_global_mutex.h"
#include "apr_thread_mutex.h"
#include "apr_thread_cond.h"
#include "apr_thread_rwlock.h"
#include "apr_network_io.h"
#include "mod_auth.h"

#include <openssl/ssl.h>

#include "jpki.h"
#include "crlzone.h"
#include "conf.h"
#include "site.h"
#include "mapfile.h"
#include "watch.h"
#include "allow.h"
#include "shared.h"
#include "sentinel.h"

#define JPKI_UNSET            (-1)
#define JPKI_MAX_CMDS         JPKI_STORE_BATCH_MAX
#define JPKI_HANDLER          "jpki-endpoints"
#define JPKI_HEALTH_HANDLER   "jpki-health"
#define JPKI_ADMIN_HANDLER    "jpki-admin"
#define JPKI_METRICS_HANDLER  "jpki-metrics"
#define JPKI_AUTH_TYPE        "JPKI"
#define JPKI_MUTEX_TYPE       "jpki-shm"

extern module AP_MODULE_DECLARE_DATA auth_jpki_module;

/* A shared memory table (the embedded store, or the logout mirror of a
 * Redis store); lives in the process pool, so that it survives restarts
 * (graceful or not) of the same size. */
typedef struct {
    const char                *name;
    apr_size_t                 size;
    apr_shm_t                 *shm;
    void                      *mem;
    apr_size_t                 memsize;
    apr_global_mutex_t        *mutex;
    const char                *lockfile;
    jpki_shm                  *store;         /* no lock: used under the
                                                 mutex (mjpki_store_exec) */
    void                      *handle;
    jpki_shm                  *locked;        /* per child: takes the mutex
                                                 itself (the core's reads of
                                                 logout markers, health) */
    int                        generation;    /* last one that used it */
    int                        child_ready;
} mjpki_zone;

/* The CRL zone of a site (JPKICRLZone): an APR shared memory segment
 * created in the parent, laid out by the core (common/crlzone.c), with its
 * global mutex; in the process pool, so that it survives restarts
 * (graceful or not) of the same size (mod_auth_jpki_crl.c). */
typedef struct {
    const char                *name;          /* "crl-N": mutex, messages */
    apr_size_t                 size;
    apr_shm_t                 *shm;
    void                      *hdr;           /* base of the segment */
    apr_global_mutex_t        *mutex;
    const char                *lockfile;
    int                        generation;    /* last one that used it */
    int                        child_ready;
} mjpki_crl_zone;

typedef struct mjpki_redis_conn mjpki_redis_conn;

/* A site: the main server or a virtual host with site directives of its
 * own (it takes those it does not write from the main server).  What it
 * is made of is the core's (sc as written, js built: common/siteconf.h,
 * site.h); here is what Apache makes of it: addresses, segments, mutexes,
 * a child's connections and threads.  A virtual host without any site
 * directive shares its parent's site (one context, one store). */
typedef struct {
    jpki_siteconf             *sc;
    jpki_site                 *js;            /* NULL: not built */
    jpki_ctx                  *ctx;           /* js's */

    /* runtime (per configuration generation) */
    apr_interval_time_t        redis_timeout;
    apr_interval_time_t        redis_connect_timeout;
    apr_interval_time_t        ocsp_timeout;
    server_rec                *server;        /* the first that uses it */
    int                        io_ready;      /* post_config */
    int                        child_ready;   /* child_init */
    apr_sockaddr_t            *ocsp_addr[JPKI_MAX_ISSUERS];  /* by issuer */
    mjpki_zone                 *zone;
    mjpki_crl_zone             *crlz;          /* NULL: CRLs per process */
    jpki_crlzone              *crls;          /* the CRLs (the process's
                                                 handle on the zone) */
    apr_sockaddr_t            *redis_sa;
    /* sentinel=: the sentinels' addresses, and the child's record of the
     * primary they name (under redis_mutex) */
    apr_sockaddr_t            *sentinel_sa[JPKI_CONF_SENTINELS_MAX];
    jpki_sentinel             *sentinel;      /* per child */
    apr_thread_mutex_t        *redis_mutex;   /* per child */
    apr_thread_mutex_t        *discover_mutex; /* one discovery at a time
                                                  in a child (sentinels) */
    mjpki_redis_conn          *redis_idle;
    int                        redis_nidle;
    /* Redis: the node's table of logout markers (an APR segment shared by
     * the sites on the same Redis server and db), filled by a poller
     * thread of each child (common/outsync.c) */
    mjpki_zone                 *mirror;
    jpki_outsync              *outsync;       /* per child */
    apr_thread_mutex_t        *outsync_mutex; /* per child: outsync */
    apr_thread_t              *poller;        /* per child */
    volatile apr_uint32_t      poller_stop;   /* per child: 1 at exit */
    volatile apr_uint32_t      logins;        /* per child: being verified */
    apr_thread_rwlock_t       *watch_lock;    /* per child: the table in
                                                 force, the CRL files' */
    apr_thread_rwlock_t       *crl_lock;      /* per child */
    apr_thread_mutex_t        *files_mutex;   /* per child: one reloader */
    apr_thread_mutex_t        *flight_mutex;  /* per child: OCSP flights */
    apr_thread_cond_t         *flight_cond;
    struct jpki_flight        *flights;       /* OCSP queries under way */
    volatile apr_uint32_t      files_checked; /* second of the last stat */
    apr_file_t                *audit_file;    /* JPKIAuditLog (pconf) */
} mjpki_site;

typedef struct {
    mjpki_site                 *site;
    int                        own;           /* a directive was given here */
} mjpki_srv_conf;

typedef struct {
    const char                *where;         /* section, for messages */
    int                        endpoints;
    int                        health;
    int                        admin;
    int                        metrics;
    jpki_locconf               lc;            /* the core's: values,
                                                 throttle */
} mjpki_dir_conf;

/* mod_auth_jpki_config.c */
extern const command_rec mjpki_cmds[];
void *mjpki_create_srv_conf(apr_pool_t *p, server_rec *s);
void *mjpki_merge_srv_conf(apr_pool_t *p, void *base, void *add);
void *mjpki_create_dir_conf(apr_pool_t *p, char *dir);
void *mjpki_merge_dir_conf(apr_pool_t *p, void *base, void *add);
int mjpki_site_configured(const mjpki_site *site);
int mjpki_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                      server_rec *s);
/* The per-location policy; NULL (and a sentence in err) when the merged
 * settings are inconsistent. */
const jpki_policy *mjpki_dir_policy(apr_pool_t *p, const mjpki_site *site,
                                   const mjpki_dir_conf *d, char *err,
                                   size_t errlen);

/* mod_auth_jpki_site.c: the sites built (check_config, also for
 * `apachectl configtest`) */
void mjpki_log_cb(void *ud, jpki_log_level level, const char *msg);

/* mod_auth_jpki_io.c */
int mjpki_io_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                        apr_pool_t *ptemp, server_rec *s);
void mjpki_io_child_init(apr_pool_t *pchild, server_rec *s);
/* Runs n store commands; returns 1 done (res filled, errors included),
 * 0 timeout (res untouched).  r may be NULL (no request: the logout
 * poller); messages then go to the site's server. */
int mjpki_store_exec(mjpki_site *site, request_rec *r,
                    const jpki_store_cmd *cmds, size_t n,
                    jpki_store_result *res);
/* The node's table of logout markers for a request at rq->now: the
 * embedded store, or the Redis store's mirror (rq->local, shared_store,
 * local_since). */
void mjpki_local_markers(mjpki_site *site, jpki_txn_request *rq);
/* POSTs an OCSP request; returns the HTTP status, 0 on failure/timeout.
 * key (the certificate's cert_id, or NULL): the threads of a child asking
 * for the same key at the same time share one query (the first one's). */
int mjpki_ocsp_post(mjpki_site *site, int issuer, request_rec *r,
                   const char *key, const uint8_t *body, size_t len,
                   const uint8_t **resp, size_t *resp_len);
/* At most once a second: the mapping file and the CRL files, reloaded
 * when they changed. */
void mjpki_files_refresh(mjpki_site *site);
/* mod_auth_jpki_crl.c: the CRLs */
/* mod_auth_jpki_config.c: the site a server directive sets */
mjpki_site *mjpki_cmd_site(cmd_parms *cmd);
int mjpki_crl_post_config(apr_pool_t *pconf, apr_pool_t *ptemp,
                          server_rec *s, mjpki_site *site, int *n,
                          int preflight);
void mjpki_crl_post_config_done(server_rec *s);
void mjpki_crl_child_init(apr_pool_t *pchild, server_rec *s,
                          mjpki_site *site);
/* A child's rwlock for the core's callbacks (ud: the lock's address). */
void mjpki_rwlock_rd(void *ud);
void mjpki_rwlock_wr(void *ud);
void mjpki_rwlock_un(void *ud);

/* mod_auth_jpki.c */
request_rec *mjpki_current_request(void);
/* The request this thread serves (NULL: none), for the core's log lines. */
void mjpki_set_current_request(request_rec *r);

#define JPKI_JSON_FILTER    "JPKI_JSON_ERROR"

/* A message about the request r; without one (the logout poller, which
 * says itself when the store stops and starts answering), a debug message
 * about the site's server. */
#define JPKI_LOG(site, r, level, rv, ...)                                  \
    do {                                                                   \
        if ((r) != NULL) {                                                 \
            ap_log_rerror(APLOG_MARK, level, rv, r, __VA_ARGS__);          \
        } else {                                                           \
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, (site)->server,      \
                         __VA_ARGS__);                                     \
        }                                                                  \
    } while (0)


/* Functions of one file of this module used by another. */
/* mod_auth_jpki_redis.c: a connection of the core (common/conn.c) driven
 * to its end (OCSP uses it too), poll() between its steps: connect_timeout
 * until connected (0: none), then timeout; its jpki_conn_state.  The
 * connection pool, the logout poller. */
struct jpki_conn;
int mjpki_conn_run(struct jpki_conn *c, apr_interval_time_t connect_timeout,
                   apr_interval_time_t timeout);
apr_status_t mjpki_redis_pool_cleanup(void *data);
void mjpki_poller_start(mjpki_site *site, apr_pool_t *pchild, server_rec *s);

/* mod_auth_jpki_store.c: the embedded store's shared segments */
mjpki_srv_conf *mjpki_srv(server_rec *s);
mjpki_zone *mjpki_zone_setup(apr_pool_t *ptemp, server_rec *s,
                            const char *name, const char *mutex_id,
                            apr_size_t size, const char *what);
void mjpki_zone_child_init(mjpki_zone *zone, apr_pool_t *pchild,
                           server_rec *s, const char *what);
/* The shared area (common/shared.h): made once in the parent, kept in the
 * process pool across restarts; in a child, every site's context uses it. */
int mjpki_shared_setup(apr_pool_t *ptemp, server_rec *s);
void mjpki_shared_child_init(apr_pool_t *pchild, server_rec *s);
/* The area and its lock (the parent's use: the audit chains' heads). */
int mjpki_shared_area(server_rec *s, jpki_shared **area,
                      jpki_shm_lock *lock);

/* mod_auth_jpki_audit.c: the audit file (JPKIAuditLog) */
int mjpki_audit_check(apr_pool_t *ptemp, server_rec *s);
int mjpki_audit_post_config(apr_pool_t *pconf, server_rec *s,
                            mjpki_site *site);
const char *mjpki_audit_request_id(const void *ud, size_t *len);
void mjpki_audit(request_rec *r, mjpki_site *site, const char *audit);


/* mod_auth_jpki.c: the site and directory of a request */
const char *mjpki_json_error(request_rec *r, jpki_err e, apr_size_t *len);
mjpki_site *mjpki_site_of(request_rec *r);
mjpki_dir_conf *mjpki_dir_of(request_rec *r);
int mjpki_is_jpki_auth(request_rec *r);

/* mod_auth_jpki_gate.c: the hooks of the gate */
int mjpki_post_read_request(request_rec *r);
int mjpki_header_parser(request_rec *r);
int mjpki_authenticate(request_rec *r);
int mjpki_note_auth_failure(request_rec *r, const char *auth_type);
int mjpki_fixups_identity(request_rec *r);
int mjpki_fixups_handler(request_rec *r);
void mjpki_insert_error_filter(request_rec *r);
apr_status_t mjpki_json_error_filter(ap_filter_t *f, apr_bucket_brigade *bb);
extern const authz_provider mjpki_authz_account;

/* mod_auth_jpki_endpoints.c */
int mjpki_endpoint_handler(request_rec *r);
int mjpki_health_handler(request_rec *r);
int mjpki_admin_handler(request_rec *r);
int mjpki_metrics_handler(request_rec *r);

/* mod_auth_jpki_txn.c: a transaction run, its verdict answered */
void mjpki_upstream_cookies(request_rec *r, const char *name, int pass);
const jpki_verdict *mjpki_transact(request_rec *r, mjpki_site *site,
                                   const jpki_policy *pol, jpki_op op,
                                   const uint8_t *body, size_t body_len);
const jpki_verdict *mjpki_transact_txn(request_rec *r, mjpki_site *site,
    const jpki_policy *pol, jpki_op op, const uint8_t *body, size_t body_len,
    jpki_txn **out);
void mjpki_verdict_headers(request_rec *r, const jpki_verdict *v, int pass);
int mjpki_send_json(request_rec *r, int status, const char *body,
                    size_t len);
int mjpki_send_verdict(request_rec *r, const jpki_verdict *v);
int mjpki_refuse(request_rec *r, jpki_err e);
void mjpki_hold(request_rec *r);
const jpki_policy *mjpki_request_policy(request_rec *r, mjpki_site *site,
                                        const char *what);

#endif /* MOD_AUTH_JPKI_H */
