/*
 * ngx_http_jpki_module.c - the JPKI (My Number Card) login gate for nginx:
 * the module, its directives' table, the sites' configuration (the core's:
 * common/siteconf.h, site.h) and their end, the watched files' timer, the
 * phase handlers registered.  The gate in the phases: ngx_http_jpki_access.c;
 * a transaction driven: ngx_http_jpki_txn.c; I/O: ngx_http_jpki_io.c.
 */

#include "ngx_http_jpki.h"
#include "directives.h"


static void *ngx_http_jpki_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_jpki_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_jpki_init(ngx_conf_t *cf);


/* Directive contexts, and one line for a directive of the core's table
 * (common/conf.h: its grammar, limits and default live there). */
#define NGX_HTTP_JPKI_SITE_CONF  (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF)
#define NGX_HTTP_JPKI_ANY_CONF                                                \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF)

/* the core's simple directives (common/directives.h) */
#define NGX_HTTP_JPKI_SITE_VALUE(id, name, apache, words, help)               \
    { ngx_string(name), NGX_HTTP_JPKI_SITE_CONF|NGX_CONF_TAKE1,               \
      ngx_http_jpki_conf_site, NGX_HTTP_SRV_CONF_OFFSET,                      \
      NGX_HTTP_JPKI_VALUE + id, NULL },
/* the core's site directives (common/siteconf.h) */
#define NGX_HTTP_JPKI_SITE_DIRECTIVE(d, name, apache, words, help)           \
    { ngx_string(name), NGX_HTTP_JPKI_SITE_CONF|NGX_CONF_ ## words,           \
      ngx_http_jpki_conf_site, NGX_HTTP_SRV_CONF_OFFSET, d, NULL },
#define NGX_HTTP_JPKI_LOC_VALUE(id, name, apache, words, help)                \
    { ngx_string(name),                                                       \
      NGX_HTTP_JPKI_ANY_CONF|((words) ? NGX_CONF_TAKE1 : NGX_CONF_1MORE),     \
      ngx_http_jpki_conf_loc, NGX_HTTP_LOC_CONF_OFFSET, id, NULL },


static ngx_command_t  ngx_http_jpki_commands[] = {

    JPKI_SITE_OWN_DIRECTIVES(NGX_HTTP_JPKI_SITE_DIRECTIVE)
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

    { ngx_string("jpki_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_jpki_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_admin_token_file"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_admin_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_jpki_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    JPKI_LOCATION_DIRECTIVES(NGX_HTTP_JPKI_LOC_VALUE)

    { ngx_string("jpki_tls_hold12"),
      NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, tls_hold12),
      NULL },

    { ngx_string("jpki_throttle"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_throttle,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_allow_accounts"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_allow,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_allow_issuers"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_allow,
      NGX_HTTP_LOC_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("jpki_login_template"),
      NGX_HTTP_JPKI_ANY_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_login_template,
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
    ngx_http_jpki_audit_init_module,       /* init module */
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
ngx_http_jpki_cleanup_siteconf(void *data)
{
    jpki_siteconf_free(data);
}


static void
ngx_http_jpki_cleanup_site(void *data)
{
    jpki_site_free(data);
}


/* A site directive in a block that is no site would do nothing: refused
 * (why), naming where the first one is written.  Whether a block is a
 * site is known only at its end (jpki_secret_file may come last), and the
 * merge runs after the whole file is read: the place is the one the core
 * kept. */
static char *
ngx_http_jpki_site_unused(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    jpki_site_unused_why why)
{
    char  msg[NGX_MAX_PATH + 600];

    if (jpki_siteconf_unused(jmcf->sc, JPKI_SERVER_NGINX, why, msg,
                             sizeof(msg)) == 0)
    {
        return NGX_CONF_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "jpki: %s", msg);

    return NGX_CONF_ERROR;
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


/* A site's end: built by the core (what it lacks, its files, its issuers:
 * a sentence), then registered for the workers; its files read in nginx's
 * default thread pool, off the event loop. */
static char *
ngx_http_jpki_site_finish(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **p;
    ngx_pool_cleanup_t          *cln;
    const jpki_site_times       *t;
    char                         err[512];

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jpki_site_build(jmcf->sc, JPKI_SERVER_NGINX, ngx_http_jpki_log, NULL,
                        &jmcf->js, err, sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_jpki_cleanup_site;
    cln->data = jmcf->js;
    jmcf->ctx = jpki_site_ctx(jmcf->js);

    if (ngx_http_jpki_audit_open(cf, jmcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    t = jpki_site_times_of(jmcf->js);
    jmcf->redis_timeout = (ngx_msec_t) t->redis_timeout_ms;
    jmcf->redis_connect_timeout = (ngx_msec_t) t->redis_connect_timeout_ms;
    jmcf->ocsp_timeout = (ngx_msec_t) t->ocsp_timeout_ms;

#if (NGX_THREADS)
    if (jpki_site_has_files(jmcf->js)) {
        jmcf->threads = ngx_thread_pool_add(cf, NULL);
        if (jmcf->threads == NULL) {
            return NGX_CONF_ERROR;
        }
    }
#endif

    sites = ngx_http_conf_get_module_main_conf(cf, ngx_http_jpki_module);
    p = ngx_array_push(&sites->sites);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }
    *p = jmcf;

    return NGX_CONF_OK;
}


/* The http block's site (its server-level configuration): a server's site
 * takes nothing from it, so without a site there a site directive there
 * does nothing. */
static char *
ngx_http_jpki_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_jpki_main_conf_t  *site;

    site = ngx_http_conf_get_module_srv_conf(cf, ngx_http_jpki_module);

    if (!jpki_siteconf_is_site(site->sc)) {
        return ngx_http_jpki_site_unused(cf, site, JPKI_SITE_UNUSED_TOP);
    }

    return ngx_http_jpki_site_finish(cf, site);
}


/* A server block with jpki_secret_file, jpki_issuer or jpki_store is a site
 * of its own (it must be complete); otherwise it uses the http block's, and
 * any other site directive in it is refused: it would have no effect. */
static char *
ngx_http_jpki_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_jpki_main_conf_t  *prev = parent;
    ngx_http_jpki_main_conf_t  *conf = child;

    if (!jpki_siteconf_is_site(conf->sc)) {
        conf->site = prev->site;
        return ngx_http_jpki_site_unused(cf, conf, prev->js != NULL
                                         ? JPKI_SITE_UNUSED_INHERITS
                                         : JPKI_SITE_UNUSED_ALONE);
    }

    return ngx_http_jpki_site_finish(cf, conf);
}


static void *
ngx_http_jpki_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_pool_cleanup_t         *cln;

    jmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_jpki_main_conf_t));
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (jmcf == NULL || cln == NULL) {
        return NULL;
    }

    jmcf->sc = jpki_siteconf_new();
    if (jmcf->sc == NULL) {
        return NULL;
    }
    jmcf->tls_hold12 = NGX_CONF_UNSET;

    cln->handler = ngx_http_jpki_cleanup_siteconf;
    cln->data = jmcf->sc;
    jmcf->site = jmcf;

    return jmcf;
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

    *mw = jpki_site_mapwatch(jmcf->js);

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
    jpki_mapwatch              *mw = jpki_site_mapwatch(jmcf->js);

    if (jpki_mapwatch_check(mw)
#if (NGX_THREADS)
        && ngx_http_jpki_map_post(jmcf, ev->log) != NGX_OK
#endif
       )
    {
        jpki_mapwatch_read(mw);
        jpki_mapwatch_apply(mw);
    }

    ngx_http_jpki_load_crls(jmcf);

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


/* jpki_tls_hold12 on: the server's handshakes held to TLS 1.2 when the
 * client offers it, for the logins by a card's certificate (the core's
 * client-hello callback on the server's TLS context). */
static ngx_int_t
ngx_http_jpki_tls_hold12(ngx_conf_t *cf, ngx_http_core_main_conf_t *cmcf)
{
#if (NGX_HTTP_SSL)
    ngx_http_core_srv_conf_t  **cscfp = cmcf->servers.elts;
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_ssl_srv_conf_t    *sscf;
    ngx_uint_t                  i;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        jmcf = cscfp[i]->ctx->srv_conf[ngx_http_jpki_module.ctx_index];
        sscf = cscfp[i]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];
        if (jmcf->tls_hold12 != 1) {
            continue;
        }
        if (sscf == NULL || sscf->ssl.ctx == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_tls_hold12\" "
                               "needs a server with ssl_certificate");
            return NGX_ERROR;
        }
        SSL_CTX_set_client_hello_cb(sscf->ssl.ctx, jpki_tls_hello_hold12, NULL);
    }
#endif
    return NGX_OK;
}


/* The shared area (common/shared.h) in the zone's slab: set up once, kept
 * across a reload that keeps the zone. */
static ngx_int_t
ngx_http_jpki_init_shared(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;
    void             *mem;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    mem = ngx_slab_alloc(shpool, jpki_shared_size());
    if (mem == NULL || jpki_shared_init(mem, jpki_shared_size()) == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "jpki: the shared zone \"jpki_shared\" is too small");
        return NGX_ERROR;
    }

    shpool->data = mem;
    shm_zone->data = mem;

    return NGX_OK;
}


/* One zone for all the sites of the http block: metrics and audit chain. */
static ngx_int_t
ngx_http_jpki_shared_zone(ngx_conf_t *cf)
{
    ngx_http_jpki_sites_t  *sites;
    ngx_str_t               name = ngx_string("jpki_shared");
    size_t                  size;

    sites = ngx_http_conf_get_module_main_conf(cf, ngx_http_jpki_module);
    if (sites->sites.nelts == 0) {
        return NGX_OK;
    }

    /* the area, the slab's pages and header on top */
    size = ngx_align(jpki_shared_size(), ngx_pagesize) + 8 * ngx_pagesize;
    sites->shared_zone = ngx_shared_memory_add(cf, &name, size,
                                               &ngx_http_jpki_module);
    if (sites->shared_zone == NULL) {
        return NGX_ERROR;
    }
    sites->shared_zone->init = ngx_http_jpki_init_shared;

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (ngx_http_jpki_shared_zone(cf) != NGX_OK
        || ngx_http_jpki_audit_conf(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    if (ngx_http_jpki_tls_hold12(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_jpki_preaccess_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_jpki_gate;

    return NGX_OK;
}

