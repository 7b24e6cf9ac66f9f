/*
 * ngx_http_jpki_module.c - the JPKI (My Number Card) login gate for nginx.
 *
 * Directives, the access-phase gate, the endpoints (challenge, login,
 * logout, status), variables.  The JPKI logic is the core's transaction
 * (common/jpki.h); this file drives it from nginx events: the embedded store
 * is executed in place (shared memory, no I/O), Redis and OCSP go through
 * ngx_http_jpki_io.c and resume the request when they answer.
 */

#include "ngx_http_jpki.h"





static void *ngx_http_jpki_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_jpki_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_jpki_init(ngx_conf_t *cf);

static char *ngx_http_jpki_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_map_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);



/* Directive contexts, and one line for a directive of the core's table
 * (common/conf.h: its grammar, limits and default live there). */
#define NGX_HTTP_JPKI_SITE_CONF  (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF)
#define NGX_HTTP_JPKI_ANY_CONF                                                \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF)

#define ngx_http_jpki_site_value(name, id)                                    \
    { ngx_string(name), NGX_HTTP_JPKI_SITE_CONF|NGX_CONF_TAKE1,               \
      ngx_http_jpki_conf_site, NGX_HTTP_SRV_CONF_OFFSET, id, NULL }
#define ngx_http_jpki_loc_value(name, id, args)                               \
    { ngx_string(name), NGX_HTTP_JPKI_ANY_CONF|args,                          \
      ngx_http_jpki_conf_loc, NGX_HTTP_LOC_CONF_OFFSET, id, NULL }


static ngx_command_t  ngx_http_jpki_commands[] = {

    { ngx_string("jpki_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_secret_file,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_2MORE,
      ngx_http_jpki_issuer,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_store"),
      NGX_HTTP_JPKI_SITE_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_store,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_crl_zone"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_crl_zone,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_map_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_map_file,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, map_file),
      NULL },

    ngx_http_jpki_site_value("jpki_redis_timeout", JPKI_D_REDIS_TIMEOUT),
    ngx_http_jpki_site_value("jpki_redis_connect_timeout",
                             JPKI_D_REDIS_CONNECT_TIMEOUT),
    ngx_http_jpki_site_value("jpki_ocsp_timeout", JPKI_D_OCSP_TIMEOUT),
    ngx_http_jpki_site_value("jpki_crl_grace", JPKI_D_CRL_GRACE),
    ngx_http_jpki_site_value("jpki_challenge_ttl", JPKI_D_CHALLENGE_TTL),
    ngx_http_jpki_site_value("jpki_clock_skew", JPKI_D_CLOCK_SKEW),
    ngx_http_jpki_site_value("jpki_ocsp_cache_good", JPKI_D_OCSP_CACHE_GOOD),
    ngx_http_jpki_site_value("jpki_ocsp_cache_hold", JPKI_D_OCSP_CACHE_HOLD),
    ngx_http_jpki_site_value("jpki_ocsp_cache_revoked",
                             JPKI_D_OCSP_CACHE_REVOKED),
    ngx_http_jpki_site_value("jpki_crl_pointer_ttl", JPKI_D_CRL_POINTER_TTL),
    ngx_http_jpki_site_value("jpki_ocsp_nonce", JPKI_D_OCSP_NONCE),

    { ngx_string("jpki"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, enable),
      NULL },

    { ngx_string("jpki_endpoints"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_jpki_endpoints,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_jpki_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    ngx_http_jpki_loc_value("jpki_header", JPKI_D_HEADER, NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_session_lifetime", JPKI_D_SESSION_LIFETIME,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_session_idle", JPKI_D_SESSION_IDLE,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_recheck_interval", JPKI_D_RECHECK_INTERVAL,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_cookie_name", JPKI_D_COOKIE_NAME,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_cookie_path", JPKI_D_COOKIE_PATH,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_cookie_samesite", JPKI_D_COOKIE_SAMESITE,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_cookie_secure", JPKI_D_COOKIE_SECURE,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_revocation", JPKI_D_REVOCATION,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_failure", JPKI_D_FAILURE, NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_login_page", JPKI_D_LOGIN_PAGE,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_pass_cookie", JPKI_D_PASS_COOKIE,
                            NGX_CONF_TAKE1),
    ngx_http_jpki_loc_value("jpki_trusted_origins", JPKI_D_TRUSTED_ORIGINS,
                            NGX_CONF_1MORE),
    ngx_http_jpki_loc_value("jpki_require_account", JPKI_D_REQUIRE_ACCOUNT,
                            NGX_CONF_TAKE1),

    { ngx_string("jpki_throttle"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_throttle,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_jpki_module_ctx = {
    ngx_http_jpki_add_variables,           /* preconfiguration */
    ngx_http_jpki_init,                    /* postconfiguration */

    ngx_http_jpki_create_main_conf,        /* create main configuration */
    ngx_http_jpki_init_main_conf,          /* init main configuration */

    ngx_http_jpki_create_srv_conf,         /* create server configuration */
    ngx_http_jpki_merge_srv_conf,          /* merge server configuration */

    ngx_http_jpki_create_loc_conf,         /* create location configuration */
    ngx_http_jpki_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_jpki_module = {
    NGX_MODULE_V1,
    &ngx_http_jpki_module_ctx,             /* module context */
    ngx_http_jpki_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_jpki_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_jpki_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ------------------------------------------------------------------ */
/* Logging bridge                                                      */
/* ------------------------------------------------------------------ */

static void
ngx_http_jpki_log(void *ud, jpki_log_level level, const char *msg)
{
    static const ngx_uint_t  map[] = {
        NGX_LOG_ERR, NGX_LOG_WARN, NGX_LOG_INFO, NGX_LOG_DEBUG
    };

    ngx_log_error(map[(unsigned) level < 4 ? level : 3], ngx_cycle->log, 0,
                  "%s", msg);
}


/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static void
ngx_http_jpki_cleanup_ctx(void *data)
{
    jpki_ctx_free(data);
}


/* The server configuration as allocated: the site, then where its first
 * site directive was written.  Whether a block is a site is known only at
 * its end (jpki_secret_file may come last), so a site directive in a block
 * that is none, and would silently do nothing, is refused at merge time,
 * naming the place it was written. */
typedef struct {
    ngx_http_jpki_main_conf_t  site;          /* first: conf points here */
    ngx_str_t                 *set_name;      /* NULL: no site directive */
    ngx_str_t                  set_file;
    ngx_uint_t                 set_line;
} ngx_http_jpki_srv_conf_t;


void
ngx_http_jpki_site_note(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_srv_conf_t  *jscf = conf;

    if (jscf->set_name == NULL) {
        jscf->set_name = &cmd->name;
        jscf->set_file = cf->conf_file->file.name;
        jscf->set_line = cf->conf_file->line;
    }
}


/* "what" says why the directive noted in conf has no effect. */
static char *
ngx_http_jpki_site_unused(ngx_conf_t *cf, void *conf, const char *what)
{
    ngx_http_jpki_srv_conf_t  *jscf = conf;

    if (jscf->set_name == NULL) {
        return NGX_CONF_OK;
    }

    /* the merge runs after the whole file is read: cf->conf_file no longer
     * points at the directive, so the place is given here */
    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "jpki: \"%V\" here has no effect: %s in %V:%ui",
                  jscf->set_name, what, &jscf->set_file, jscf->set_line);

    return NGX_CONF_ERROR;
}


/* jpki_map_file FILE: read by the workers (and again when it changes);
 * one that is not there is refused now, with the system's reason. */
static char *
ngx_http_jpki_map_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    char                       *rv, err[512];

    ngx_http_jpki_site_note(cf, cmd, conf);

    rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (jpki_file_check("mapping file", (char *) jmcf->map_file.data, err,
                        sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* The sites: the http block's and those of server blocks with their own
 * jpki_secret_file/jpki_issuer/jpki_store (each a whole site).  Workers
 * set up every site at start. */
static void *
ngx_http_jpki_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_sites_t  *sites;

    sites = ngx_pcalloc(cf->pool, sizeof(ngx_http_jpki_sites_t));
    if (sites == NULL
        || ngx_array_init(&sites->sites, cf->pool, 4, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    return sites;
}


static ngx_int_t
ngx_http_jpki_site_register(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *site)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **p;

    sites = ngx_http_conf_get_module_main_conf(cf, ngx_http_jpki_module);
    p = ngx_array_push(&sites->sites);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p = site;

    return NGX_OK;
}


static char *ngx_http_jpki_site_finish(ngx_conf_t *cf,
    ngx_http_jpki_main_conf_t *jmcf);


/* The http block's site (its server-level configuration). */
static char *
ngx_http_jpki_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_jpki_main_conf_t  *site;
    char                       *rv;

    site = ngx_http_conf_get_module_srv_conf(cf, ngx_http_jpki_module);

    /* a server's site takes nothing from the http block: without a site
     * there, a site directive there does nothing */
    if (!site->configured
        && ngx_http_jpki_site_unused(cf, site, "the http block has no site "
               "(jpki_secret_file, jpki_issuer and jpki_store), and a "
               "server's site takes nothing from it; set it in each server "
               "that has them")
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_jpki_site_finish(cf, site);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (site->configured && ngx_http_jpki_site_register(cf, site) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* A server block with jpki_secret_file, jpki_issuer or jpki_store is a site
 * of its own (it must be complete); otherwise it uses the http block's, and
 * any other site directive in it is refused: it would have no effect. */
static char *
ngx_http_jpki_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_jpki_main_conf_t  *prev = parent;
    ngx_http_jpki_main_conf_t  *conf = child;
    char                       *rv;

    if (!conf->configured) {
        conf->site = prev->site;
        return ngx_http_jpki_site_unused(cf, conf, prev->configured
                   ? "this server inherits the site of the http block; set "
                     "it there, or give this server its own "
                     "jpki_secret_file, jpki_issuer and jpki_store"
                   : "this server has no site, nor has the http block; give "
                     "this server its own jpki_secret_file, jpki_issuer and "
                     "jpki_store");
    }

    rv = ngx_http_jpki_site_finish(cf, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (ngx_http_jpki_site_register(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_jpki_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_srv_conf_t   *jscf;
    ngx_pool_cleanup_t         *cln;

    jscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_jpki_srv_conf_t));
    if (jscf == NULL) {
        return NULL;
    }

    jmcf = &jscf->site;

    jmcf->ctx = jpki_ctx_new();
    if (jmcf->ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        jpki_ctx_free(jmcf->ctx);
        return NULL;
    }

    cln->handler = ngx_http_jpki_cleanup_ctx;
    cln->data = jmcf->ctx;

    jpki_ctx_set_log(jmcf->ctx, ngx_http_jpki_log, NULL);

    if (ngx_array_init(&jmcf->issuers, cf->pool, 4,
                       sizeof(ngx_http_jpki_issuer_t))
        != NGX_OK)
    {
        return NULL;
    }

    jpki_conf_init(&jmcf->values);
    jmcf->site = jmcf;

    return jmcf;
}


static char *
ngx_http_jpki_site_finish(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    char                        err[256];

    /* the site's values, or the core's defaults (common/conf.c) */
    ngx_http_jpki_conf_site_apply(jmcf);

    if (!jmcf->configured) {
        return NGX_CONF_OK;
    }

    if (jpki_conf_site_missing(JPKI_SERVER_NGINX, (int) jmcf->has_secret,
                               jmcf->issuers.nelts, jmcf->store != 0, err,
                               sizeof(err)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    {
        ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
        ngx_uint_t               i, files;

        files = jmcf->map_file.len;
        for (i = 0; i < jmcf->issuers.nelts; i++) {
            files |= iss[i].crl_sources != NULL;
        }

        if (files) {
            /* CRL and mapping files are read in nginx's default thread
             * pool, off the event loop */
            jmcf->threads = ngx_thread_pool_add(cf, NULL);
            if (jmcf->threads == NULL) {
                return NGX_CONF_ERROR;
            }
        }
    }
#endif

    if (jpki_ctx_finish(jmcf->ctx, err, sizeof(err)) != JPKI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts;
    char                        err[256];

    if (jmcf->has_secret) {
        return "is duplicate";
    }

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (jpki_ctx_load_secret_file(jmcf->ctx, (char *) value[1].data, err,
                                  sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    jmcf->has_secret = 1;
    jmcf->configured = 1;

    return NGX_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Per-worker state: store handle, CRLs, mapping file                  */
/* ------------------------------------------------------------------ */

void
ngx_http_jpki_shm_lock(void *ud)
{
    ngx_shmtx_lock(&((ngx_slab_pool_t *) ud)->mutex);
}


void
ngx_http_jpki_shm_unlock(void *ud)
{
    ngx_shmtx_unlock(&((ngx_slab_pool_t *) ud)->mutex);
}


/* The identity of a watched file's version (see ngx_http_jpki_file_id_t). */
void
ngx_http_jpki_file_id(ngx_file_info_t *fi, ngx_http_jpki_file_id_t *id)
{
    ngx_memzero(id, sizeof(ngx_http_jpki_file_id_t));

    id->dev = fi->st_dev;
    id->ino = fi->st_ino;
    id->size = fi->st_size;
#if (NGX_DARWIN)
    id->sec = fi->st_mtimespec.tv_sec;
    id->nsec = fi->st_mtimespec.tv_nsec;
    id->csec = fi->st_ctimespec.tv_sec;
    id->cnsec = fi->st_ctimespec.tv_nsec;
#else
    id->sec = fi->st_mtim.tv_sec;
    id->nsec = fi->st_mtim.tv_nsec;
    id->csec = fi->st_ctim.tv_sec;
    id->cnsec = fi->st_ctim.tv_nsec;
#endif
}


static ngx_uint_t
ngx_http_jpki_file_same(ngx_http_jpki_file_id_t *a, ngx_http_jpki_file_id_t *b)
{
    return a->ino == b->ino && a->dev == b->dev && a->size == b->size
           && a->sec == b->sec && a->nsec == b->nsec
           && a->csec == b->csec && a->cnsec == b->cnsec;
}


/* A reading of the mapping file: its result is applied in the worker. */
typedef struct {
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_file_id_t     file;
    jpki_map                   *map;          /* NULL: not read */
    jpki_err                    e;
    char                        why[512];     /* when not read */
} ngx_http_jpki_map_task_t;


/* Reads and parses the mapping file (common/mapfile.c; no nginx state
 * touched: may run in a thread of the default pool). */
static void
ngx_http_jpki_map_read(ngx_http_jpki_map_task_t *mt, ngx_log_t *log)
{
    mt->e = jpki_map_read((char *) mt->jmcf->map_file.data, &mt->map,
                          mt->why, sizeof(mt->why));
}


/* Puts a reading in force (or logs why not: the table in force stays).
 * The version read is not read again until the file changes; one that
 * could not be read while no table is in force (at worker start) is tried
 * again every second: its failure may be transient.  A failure is logged
 * once for a version and cause. */
static void
ngx_http_jpki_map_apply(ngx_http_jpki_map_task_t *mt, ngx_log_t *log)
{
    ngx_http_jpki_main_conf_t  *jmcf = mt->jmcf;
    jpki_map                   *old;
    char                        warn[1024];

    if (mt->map == NULL) {
        if (jmcf->map_failed != (ngx_int_t) mt->e
            || !ngx_http_jpki_file_same(&mt->file, &jmcf->map_failed_id))
        {
            ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: %s%s", mt->why,
                          jmcf->map ? "" : " (tried again every second)");
            jmcf->map_failed = mt->e;
            jmcf->map_failed_id = mt->file;
        }

        if (jmcf->map != NULL) {
            jmcf->map_file_id = mt->file;
        }

        return;
    }

    jmcf->map_file_id = mt->file;
    jmcf->map_failed = JPKI_OK;

    if (mt->map->bad) {
        jpki_map_warning(mt->map, (char *) jmcf->map_file.data, warn,
                         sizeof(warn));
        ngx_log_error(NGX_LOG_WARN, log, 0, "jpki: %s", warn);
    }

    old = jmcf->map;
    jmcf->map = mt->map;
    mt->map = NULL;

    jpki_map_free(old);

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "jpki: mapping file \"%V\" "
                  "loaded, %uz entries", &jmcf->map_file,
                  ((jpki_map *) jmcf->map)->n);
}


#if (NGX_THREADS)

static void
ngx_http_jpki_map_thread(void *data, ngx_log_t *log)
{
    ngx_http_jpki_map_read(data, log);
}


static void
ngx_http_jpki_map_thread_done(ngx_event_t *ev)
{
    ngx_http_jpki_map_task_t  *mt = ev->data;

    ngx_http_jpki_map_apply(mt, ev->log);
    mt->jmcf->map_busy = 0;
}


/* Hands the reading to a thread of nginx's default pool: a large file
 * never stalls the worker.  NGX_DECLINED: read it here. */
static ngx_int_t
ngx_http_jpki_map_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_file_id_t *file, ngx_log_t *log)
{
    ngx_http_jpki_map_task_t  *mt;

    mt = ngx_http_jpki_task(jmcf, &jmcf->map_task,
                            sizeof(ngx_http_jpki_map_task_t),
                            ngx_http_jpki_map_thread,
                            ngx_http_jpki_map_thread_done, log);
    if (mt == NULL) {
        return NGX_DECLINED;
    }

    mt->jmcf = jmcf;
    mt->file = *file;

    if (ngx_thread_task_post(jmcf->threads, jmcf->map_task) != NGX_OK) {
        return NGX_DECLINED;
    }

    jmcf->map_busy = 1;

    return NGX_OK;
}

#endif


/* Loads the mapping file when it changed (another inode, size, mtime or
 * ctime to the nanosecond) since the version read last: in a thread once
 * the worker runs (in_thread), in place when it starts (its first requests
 * need the table). */
void
ngx_http_jpki_map_load(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log,
    ngx_uint_t in_thread)
{
    ngx_file_info_t           fi;
    ngx_http_jpki_file_id_t   file;
    ngx_http_jpki_map_task_t  mt;

    if (jmcf->map_busy) {
        return;                         /* a reading under way */
    }

    if (ngx_file_info(jmcf->map_file.data, &fi) == NGX_FILE_ERROR) {
        if (!jmcf->map_missing) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "jpki: cannot read "
                          "mapping file \"%V\"", &jmcf->map_file);
            jmcf->map_missing = 1;
        }
        ngx_memzero(&jmcf->map_file_id, sizeof(ngx_http_jpki_file_id_t));
        return;
    }

    jmcf->map_missing = 0;
    ngx_http_jpki_file_id(&fi, &file);

    if (ngx_http_jpki_file_same(&file, &jmcf->map_file_id)) {
        return;
    }

#if (NGX_THREADS)
    if (in_thread && ngx_http_jpki_map_post(jmcf, &file, log) == NGX_OK) {
        return;
    }
#endif

    mt.jmcf = jmcf;
    mt.file = file;
    ngx_http_jpki_map_read(&mt, log);
    ngx_http_jpki_map_apply(&mt, log);
}


/* Once a second: the mapping file and the CRL files, when they changed;
 * the zone's retired blocks no longer read, the indexes waiting for room. */
void
ngx_http_jpki_files_timer(ngx_event_t *ev)
{
    ngx_http_jpki_main_conf_t  *jmcf = ev->data;

    if (jmcf->map_file.len) {
        ngx_http_jpki_map_load(jmcf, ev->log, 1);
    }

    ngx_http_jpki_load_crls(jmcf, ev->log);

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


size_t
ngx_http_jpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    ngx_http_jpki_main_conf_t  *jmcf = ud;

    return jpki_map_lookup(jmcf->map, cert_id, out);
}




/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */


/* ---- the gate ---------------------------------------------------- */


/* ---- endpoints (content handler) --------------------------------- */


/* ---- variables --------------------------------------------------- */


static ngx_int_t
ngx_http_jpki_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_jpki_preaccess_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_jpki_access_handler;

    return NGX_OK;
}

