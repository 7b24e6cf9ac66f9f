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
#include "directives.h"





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

/* the core's simple directives (common/directives.h) */
#define NGX_HTTP_JPKI_SITE_VALUE(id, name, apache, words, help)               \
    { ngx_string(name), NGX_HTTP_JPKI_SITE_CONF|NGX_CONF_TAKE1,               \
      ngx_http_jpki_conf_site, NGX_HTTP_SRV_CONF_OFFSET, id, NULL },
#define NGX_HTTP_JPKI_LOC_VALUE(id, name, apache, words, help)                \
    { ngx_string(name),                                                       \
      NGX_HTTP_JPKI_ANY_CONF|((words) ? NGX_CONF_TAKE1 : NGX_CONF_1MORE),     \
      ngx_http_jpki_conf_loc, NGX_HTTP_LOC_CONF_OFFSET, id, NULL },


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

    JPKI_SITE_DIRECTIVES(NGX_HTTP_JPKI_SITE_VALUE)

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

    JPKI_LOCATION_DIRECTIVES(NGX_HTTP_JPKI_LOC_VALUE)

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

/* The core's sentences: the context's (ud NULL: they name themselves), and
 * the watched files' (ud NGX_HTTP_JPKI_WATCH_LOG, the prefix they take:
 * a file put in force at notice, seen at the default level). */
void
ngx_http_jpki_log(void *ud, jpki_log_level level, const char *msg)
{
    static const ngx_uint_t  map[2][4] = {
        { NGX_LOG_ERR, NGX_LOG_WARN, NGX_LOG_INFO, NGX_LOG_DEBUG },
        { NGX_LOG_ERR, NGX_LOG_WARN, NGX_LOG_NOTICE, NGX_LOG_DEBUG }
    };

    ngx_log_error(map[ud != NULL][(unsigned) level < 4 ? level : 3],
                  ngx_cycle->log, 0, "%s%s", ud ? (char *) ud : "", msg);
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
        && ngx_http_jpki_site_unused(cf, site,
               jpki_site_unused(JPKI_SERVER_NGINX, JPKI_SITE_UNUSED_TOP))
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
        return ngx_http_jpki_site_unused(cf, conf,
                   jpki_site_unused(JPKI_SERVER_NGINX, prev->configured
                                    ? JPKI_SITE_UNUSED_INHERITS
                                    : JPKI_SITE_UNUSED_ALONE));
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
    jpki_site_times             t;
    char                        err[256];

    /* the site's values, or the core's defaults (common/conf.c) */
    jpki_site_values(jmcf->ctx, &jmcf->values, &t);
    jmcf->redis_timeout = (ngx_msec_t) t.redis_timeout_ms;
    jmcf->redis_connect_timeout = (ngx_msec_t) t.redis_connect_timeout_ms;
    jmcf->ocsp_timeout = (ngx_msec_t) t.ocsp_timeout_ms;
    jmcf->crl_grace = t.crl_grace;

    if (!jmcf->configured) {
        return NGX_CONF_OK;
    }

    if (jpki_site_finish(JPKI_SERVER_NGINX, jmcf->ctx, (int) jmcf->has_secret,
                         jmcf->issuers.nelts, jmcf->store != 0, err,
                         sizeof(err))
        != JPKI_OK)
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

    if (jpki_site_secret(jmcf->ctx, (char *) value[1].data, err,
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


#if (NGX_THREADS)

static void
ngx_http_jpki_map_thread(void *data, ngx_log_t *log)
{
    jpki_mapwatch_read(*(jpki_mapwatch **) data);
}


static void
ngx_http_jpki_map_thread_done(ngx_event_t *ev)
{
    jpki_mapwatch_apply(*(jpki_mapwatch **) ev->data);
}


/* Hands the reading of the mapping file to a thread of nginx's default
 * pool: a large file never stalls the worker.  NGX_DECLINED: read it
 * here. */
static ngx_int_t
ngx_http_jpki_map_post(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log)
{
    jpki_mapwatch  **mw;

    mw = ngx_http_jpki_task(jmcf, &jmcf->map_task, sizeof(jpki_mapwatch *),
                            ngx_http_jpki_map_thread,
                            ngx_http_jpki_map_thread_done, log);
    if (mw == NULL) {
        return NGX_DECLINED;
    }

    *mw = jmcf->mapw;

    return ngx_thread_task_post(jmcf->threads, jmcf->map_task) == NGX_OK
           ? NGX_OK : NGX_DECLINED;
}

#endif


/* Once a second: the mapping file and the CRL files, read when they
 * changed (common/watch.c decides, reads and logs); the zone's retired
 * blocks no longer read, the indexes waiting for room. */
void
ngx_http_jpki_files_timer(ngx_event_t *ev)
{
    ngx_http_jpki_main_conf_t  *jmcf = ev->data;

    if (jpki_mapwatch_check(jmcf->mapw)
#if (NGX_THREADS)
        && ngx_http_jpki_map_post(jmcf, ev->log) != NGX_OK
#endif
       )
    {
        jpki_mapwatch_read(jmcf->mapw);
        jpki_mapwatch_apply(jmcf->mapw);
    }

    ngx_http_jpki_load_crls(jmcf);

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


size_t
ngx_http_jpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    ngx_http_jpki_main_conf_t  *jmcf = ud;

    return jpki_mapwatch_lookup(jmcf->mapw, cert_id, out);
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

