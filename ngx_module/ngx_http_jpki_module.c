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
static char *ngx_http_jpki_issuer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_map_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_command_t *cmd,
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

    if (!jmcf->has_secret) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: \"jpki_secret_file\" is required (a site "
                           "needs jpki_secret_file, jpki_issuer and "
                           "jpki_store in the same block)");
        return NGX_CONF_ERROR;
    }

    if (jmcf->issuers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: at least one \"jpki_issuer\" is required");
        return NGX_CONF_ERROR;
    }

    if (jmcf->store == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: \"jpki_store\" is required "
                           "(e.g. \"jpki_store shm size=10m;\")");
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    {
        ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
        ngx_uint_t               i, files;

        files = jmcf->map_file.len;
        for (i = 0; i < jmcf->issuers.nelts; i++) {
            files |= iss[i].crl_file.len;
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


static char *
ngx_http_jpki_issuer_ca(ngx_conf_t *cf, jpki_issuer *is, ngx_str_t *list)
{
    u_char     *p, *last, *comma, *z;
    ngx_str_t   file;
    char        err[256];

    p = list->data;
    last = list->data + list->len;

    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        file.data = p;
        file.len = (comma ? comma : last) - p;

        if (file.len == 0) {
            return "has an empty CA file name";
        }

        z = ngx_pnalloc(cf->pool, file.len + 1);
        if (z == NULL) {
            return NGX_CONF_ERROR;
        }
        (void) ngx_cpystrn(z, file.data, file.len + 1);
        file.data = z;
        if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (jpki_issuer_add_certs_file(is, (char *) file.data, err,
                                       sizeof(err))
            != JPKI_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
            return NGX_CONF_ERROR;
        }

        p = comma ? comma + 1 : last;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_issuer_ocsp(ngx_conf_t *cf, ngx_http_jpki_issuer_t *iss,
    ngx_str_t *url)
{
    u_char  *z;

    if (url->len < 8 || ngx_strncmp(url->data, "http://", 7) != 0) {
        return "needs an http:// OCSP URL (https responders: put a local "
               "proxy in front)";
    }

    iss->ocsp_url.url.data = url->data + 7;
    iss->ocsp_url.url.len = url->len - 7;
    iss->ocsp_url.default_port = 80;
    iss->ocsp_url.uri_part = 1;

    if (ngx_parse_url(cf->pool, &iss->ocsp_url) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: OCSP URL \"%V\": %s", url,
                           iss->ocsp_url.err ? iss->ocsp_url.err : "invalid");
        return NGX_CONF_ERROR;
    }

    if (iss->ocsp_url.naddrs == 0) {
        return "has an OCSP URL whose host does not resolve";
    }

    iss->ocsp_host = iss->ocsp_url.host;
    if (iss->ocsp_url.uri.len) {
        iss->ocsp_uri = iss->ocsp_url.uri;
    } else {
        ngx_str_set(&iss->ocsp_uri, "/");
    }

    z = ngx_pnalloc(cf->pool, url->len + 1);
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }
    (void) ngx_cpystrn(z, url->data, url->len + 1);

    if (jpki_issuer_set_ocsp_url(iss->issuer, (char *) z) != JPKI_OK) {
        return "has an invalid OCSP URL";
    }

    return NGX_CONF_OK;
}


/* jpki_issuer NAME ca=FILE[,FILE...] [ocsp=URL] [crl=FILE]
 *             [policy=OID|none]; */
static char *
ngx_http_jpki_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts, v;
    ngx_http_jpki_issuer_t     *iss;
    ngx_uint_t                  i, has_ca = 0;
    u_char                     *name, *z;
    char                       *rv;

    name = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (name == NULL) {
        return NGX_CONF_ERROR;
    }
    (void) ngx_cpystrn(name, value[1].data, value[1].len + 1);

    iss = ngx_array_push(&jmcf->issuers);
    if (iss == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(iss, sizeof(ngx_http_jpki_issuer_t));
    iss->name = value[1];
    iss->issuer = jpki_ctx_add_issuer(jmcf->ctx, (char *) name);

    if (iss->issuer == NULL) {
        return "needs a unique name of 1..63 letters, digits, _ . - "
               "(at most 16 issuers)";
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ca=", 3) == 0) {
            v.data = value[i].data + 3;
            v.len = value[i].len - 3;
            rv = ngx_http_jpki_issuer_ca(cf, iss->issuer, &v);
            if (rv != NGX_CONF_OK) {
                return rv;
            }
            has_ca = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ocsp=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;
            rv = ngx_http_jpki_issuer_ocsp(cf, iss, &v);
            if (rv != NGX_CONF_OK) {
                return rv;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "crl=", 4) == 0) {
            iss->crl_file.data = value[i].data + 4;
            iss->crl_file.len = value[i].len - 4;
            if (ngx_conf_full_name(cf->cycle, &iss->crl_file, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }
            if (jpki_issuer_set_crl_source(iss->issuer,
                                           (char *) iss->crl_file.data)
                != JPKI_OK)
            {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "policy=", 7) == 0) {
            v.len = value[i].len - 7;
            z = ngx_pnalloc(cf->pool, v.len + 1);
            if (z == NULL) {
                return NGX_CONF_ERROR;
            }
            (void) ngx_cpystrn(z, value[i].data + 7, v.len + 1);
            if (jpki_issuer_set_policy(iss->issuer,
                                       ngx_strcmp(z, "none") == 0
                                       ? "" : (char *) z)
                != JPKI_OK)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "jpki: invalid policy OID \"%s\"", z);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: invalid parameter \"%V\" (expected ca=, "
                           "ocsp=, crl= or policy=)", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (!has_ca) {
        return "needs ca=FILE[,FILE...]";
    }

    jmcf->configured = 1;

    return NGX_CONF_OK;
}


/* ---- The CRL zone (jpki_crl_zone) -----------------------------------
 * A slab pool: a header (the loader's claim, one slot per issuer, the
 * retired blocks, one reader entry per nginx process slot), then the
 * blocks of the placed indexes (jpki_crl_index_place).  The zone is mapped
 * at the same address in every worker (forked from the master), so the
 * pointers inside a placed index are valid in all of them.
 *
 * Writers change the header under the pool's mutex.  One worker at a time
 * parses a changed file (the claim), copies the index into a block no slot
 * points to yet, and puts it in force by storing the slot's cur.  The
 * block it replaces is retired: it may still be read, and is freed only
 * once no lookup can be reading it.
 *
 * Readers (lookups, health) take no lock; a worker is single-threaded, so
 * it reads at most one index at a time, and says when (RCU-like):
 *
 *   reader (ngx_http_jpki_crl_read/done)  writer (mutex held)
 *   reader[slot].epoch = epoch (seq-cst)  cur = new (seq-cst)
 *   ix = cur (seq-cst)                    r = epoch++ (seq-cst)
 *   ... lookup in ix ...                  retired += (old block, r)
 *   reader[slot].epoch = 0 (release)      full barrier, then free each
 *                                         retired (b, r) when no reader
 *                                         entry is in [1, r]
 *
 * A reader that began at an epoch > r loaded cur after the swap (it read
 * the incremented epoch first): it cannot have the old block.  A reader
 * entry still 0 when the writer scans it is stored later than the scan
 * (both sides are seq-cst: store, then load), so that reader's load of
 * cur comes after the swap too.  Every other reader keeps the block:
 * its entry is in [1, r] until its lookup ends.  An entry of a process
 * that died in a lookup (its pid, stored with it, is gone: kill(pid, 0))
 * holds nothing; nginx's next process in that slot resets it.
 *
 * Retired blocks are freed at each publish and by every worker's 1 s
 * file timer.  When the retired list is full (a reader that stays in a
 * lookup: a worker stopped, or stalled) or the zone has no room while
 * retired blocks still hold memory, a new index waits in the loader's
 * memory (logged once) and is tried again each second: nothing is freed
 * that a lookup may still read.  Threads (CRL parsing) never read the
 * zone. */



static ngx_int_t
ngx_http_jpki_init_crl_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_jpki_crl_shm_t  *hdr;

    if (data) {
        /* reload: the loaded CRLs stay in force (the slots carry the
         * issuer tag: a changed issuer reloads its file) */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    hdr = ngx_slab_calloc(shpool, sizeof(ngx_http_jpki_crl_shm_t));
    if (hdr == NULL) {
        return NGX_ERROR;
    }

    hdr->epoch = 1;
    shpool->data = hdr;
    shpool->log_nomem = 0;              /* "zone too small" is logged by us */
    shm_zone->data = hdr;

    return NGX_OK;
}


/* jpki_crl_zone NAME:SIZE: CRL files parsed once into shared memory, one
 * copy for every worker (a CRL entry takes 24 bytes there). */
static char *
ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts, name, sz;
    u_char                     *colon;
    ssize_t                     size;

    ngx_http_jpki_site_note(cf, cmd, conf);

    if (jmcf->crl_zone) {
        return "is duplicate";
    }

    colon = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');
    if (colon == NULL) {
        return "expects NAME:SIZE";
    }

    name.data = value[1].data;
    name.len = colon - name.data;
    sz.data = colon + 1;
    sz.len = value[1].data + value[1].len - sz.data;
    size = ngx_parse_size(&sz);

    if (name.len == 0 || size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        return "expects NAME:SIZE with a size of at least 32k";
    }

    /* the header (reader entries of every process slot) comes on top of
     * the size asked for the CRLs */
    size += ngx_align(sizeof(ngx_http_jpki_crl_shm_t), ngx_pagesize)
            + ngx_pagesize;

    jmcf->crl_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_jpki_module);
    if (jmcf->crl_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jmcf->crl_zone->data) {
        return "names a zone already used";
    }

    jmcf->crl_zone->init = ngx_http_jpki_init_crl_zone;

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


/* Whether an issuer's CRL is in the zone (else in the worker's memory). */
ngx_uint_t
ngx_http_jpki_crl_shared(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss)
{
    return jmcf->crl_zone != NULL && iss->crl != &iss->crl_own;
}


/* The CRL of an issuer in force (NULL: none).  The index itself may be
 * read only between ngx_http_jpki_crl_read() and ngx_http_jpki_crl_done(),
 * or with the zone's mutex held. */
static const jpki_crl_index *
ngx_http_jpki_crl_of(ngx_http_jpki_issuer_t *iss)
{
    ngx_http_jpki_crl_slot_t  *sl = iss->crl;
    const jpki_crl_index      *cur;

    if (sl == NULL) {
        return NULL;
    }

    cur = __atomic_load_n(&sl->cur, __ATOMIC_SEQ_CST);

    if (cur == NULL || ngx_strcmp(sl->tag, jpki_issuer_tag(iss->issuer)) != 0)
    {
        return NULL;
    }

    return cur;
}


/* A lookup begins: the index in force (NULL: none), which stays readable
 * until ngx_http_jpki_crl_done() (see "The CRL zone"). */
const jpki_crl_index *
ngx_http_jpki_crl_read(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss)
{
    ngx_http_jpki_crl_shm_t  *hdr;

    if (ngx_http_jpki_crl_shared(jmcf, iss)) {
        hdr = jmcf->crl_zone->data;
        __atomic_store_n(&hdr->reader[ngx_process_slot].epoch,
                         __atomic_load_n(&hdr->epoch, __ATOMIC_SEQ_CST),
                         __ATOMIC_SEQ_CST);
    }

    return ngx_http_jpki_crl_of(iss);
}


void
ngx_http_jpki_crl_done(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_crl_shm_t  *hdr;

    if (jmcf->crl_zone) {
        hdr = jmcf->crl_zone->data;
        __atomic_store_n(&hdr->reader[ngx_process_slot].epoch, 0,
                         __ATOMIC_RELEASE);
    }
}


static void
ngx_http_jpki_crl_lock(ngx_http_jpki_main_conf_t *jmcf)
{
    if (jmcf->crl_zone) {
        ngx_shmtx_lock(&((ngx_slab_pool_t *) jmcf->crl_zone->shm.addr)->mutex);
    }
}


static void
ngx_http_jpki_crl_unlock(ngx_http_jpki_main_conf_t *jmcf)
{
    if (jmcf->crl_zone) {
        ngx_shmtx_unlock(
            &((ngx_slab_pool_t *) jmcf->crl_zone->shm.addr)->mutex);
    }
}


/* Frees the retired blocks that no lookup can still be reading (the zone's
 * mutex held): a block retired at epoch r, once no reader entry is in
 * [1, r] (entries of processes gone do not count). */
void
ngx_http_jpki_crl_reclaim_locked(ngx_slab_pool_t *shpool,
    ngx_http_jpki_crl_shm_t *hdr)
{
    uint64_t    oldest, e;
    ngx_pid_t   pid;
    ngx_uint_t  i, n;

    if (hdr->nretired == 0) {
        return;
    }

    /* the swaps before the scan (see "The CRL zone") */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    oldest = UINT64_MAX;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        e = __atomic_load_n(&hdr->reader[i].epoch, __ATOMIC_SEQ_CST);
        if (e == 0 || e >= oldest) {
            continue;
        }

        pid = __atomic_load_n(&hdr->reader[i].pid, __ATOMIC_SEQ_CST);
        if (pid > 0 && pid != ngx_pid && kill(pid, 0) == -1
            && ngx_errno == NGX_ESRCH)
        {
            continue;                   /* died in a lookup */
        }

        oldest = e;
    }

    for (i = 0, n = 0; i < hdr->nretired; i++) {
        if (hdr->retired[i].epoch < oldest) {
            ngx_slab_free_locked(shpool, hdr->retired[i].block);
        } else {
            hdr->retired[n++] = hdr->retired[i];
        }
    }

    hdr->nretired = n;
}


/* The 1 s timer: frees the retired blocks no longer read. */
static void
ngx_http_jpki_crl_reclaim(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_jpki_crl_shm_t  *hdr;

    if (jmcf->crl_zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) jmcf->crl_zone->shm.addr;
    hdr = jmcf->crl_zone->data;

    if (__atomic_load_n(&hdr->nretired, __ATOMIC_RELAXED) == 0) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_jpki_crl_reclaim_locked(shpool, hdr);
    ngx_shmtx_unlock(&shpool->mutex);
}


/* Puts a new index in force: NGX_OK; NGX_DECLINED when it may not replace
 * the one in force (*e and detail say why; ix freed); NGX_ERROR when the
 * zone is too small for it (logged; ix freed); NGX_AGAIN when the zone has
 * no room for it yet, the indexes it replaced being still read (ix kept:
 * try again later).  With a zone, ix is copied into it (one copy for all
 * workers) and the index it replaces is retired (see "The CRL zone"). */
static ngx_int_t
ngx_http_jpki_crl_publish(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, jpki_crl_index *ix, jpki_err *e,
    char *detail, size_t dlen, ngx_log_t *log)
{
    ngx_http_jpki_crl_slot_t  *sl = iss->crl;
    ngx_http_jpki_crl_shm_t   *hdr;
    ngx_slab_pool_t           *shpool;
    const jpki_crl_index      *placed, *old;
    uint64_t                   r;
    size_t                     size;
    void                      *mem;

    if (!ngx_http_jpki_crl_shared(jmcf, iss)) {
        /* another issuer's CRL, or an older one: refused */
        *e = jpki_crl_index_replaces(ix, iss->issuer,
                                     ngx_http_jpki_crl_of(iss), detail, dlen);
        if (*e != JPKI_OK) {
            jpki_crl_index_free(ix);
            return NGX_DECLINED;
        }

        jpki_crl_index_free((jpki_crl_index *) sl->cur);
        sl->cur = ix;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) jmcf->crl_zone->shm.addr;
    hdr = jmcf->crl_zone->data;
    size = jpki_crl_index_placed_size(ix);

    /* the index in force is read under the mutex (never freed meanwhile) */
    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_jpki_crl_reclaim_locked(shpool, hdr);

    *e = jpki_crl_index_replaces(ix, iss->issuer, ngx_http_jpki_crl_of(iss),
                                 detail, dlen);
    mem = NULL;
    if (*e == JPKI_OK && hdr->nretired < NGX_HTTP_JPKI_CRL_RETIRED) {
        mem = ngx_slab_alloc_locked(shpool, size);
    }
    r = hdr->nretired;
    ngx_shmtx_unlock(&shpool->mutex);

    if (*e != JPKI_OK) {
        jpki_crl_index_free(ix);
        return NGX_DECLINED;
    }

    if (mem == NULL && r > 0) {
        return NGX_AGAIN;               /* room held by retired blocks */
    }

    /* a block nobody reads yet: filled without the mutex */
    placed = mem ? jpki_crl_index_place(ix, mem, size) : NULL;

    if (placed == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: CRL zone \"%V\" too small "
                      "for %uz bytes", &jmcf->crl_zone->shm.name, size);
        if (mem) {
            ngx_slab_free(shpool, mem);
        }
        jpki_crl_index_free(ix);
        *e = JPKI_ERR_STORE_FULL;
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    /* another loader (one that took the claim over) may have published
     * meanwhile */
    *e = jpki_crl_index_replaces(ix, iss->issuer, ngx_http_jpki_crl_of(iss),
                                 detail, dlen);
    old = sl->cur;

    if (*e != JPKI_OK
        || (old != NULL && hdr->nretired == NGX_HTTP_JPKI_CRL_RETIRED))
    {
        ngx_slab_free_locked(shpool, mem);
        ngx_shmtx_unlock(&shpool->mutex);

        if (*e != JPKI_OK) {
            jpki_crl_index_free(ix);
            return NGX_DECLINED;
        }

        return NGX_AGAIN;
    }

    __atomic_store_n(&sl->cur, placed, __ATOMIC_SEQ_CST);
    r = __atomic_fetch_add(&hdr->epoch, 1, __ATOMIC_SEQ_CST);

    if (old != NULL) {
        hdr->retired[hdr->nretired].block = (void *) old;
        hdr->retired[hdr->nretired].epoch = r;
        hdr->nretired++;
        ngx_http_jpki_crl_reclaim_locked(shpool, hdr);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    jpki_crl_index_free(ix);

    return NGX_OK;
}


/* With a zone, one worker at a time parses a changed file (the others skip
 * it; a loader that died is taken over after a minute).  A loader keeps
 * the claim while it parses another file or has an index waiting for room
 * in the zone. */
ngx_uint_t
ngx_http_jpki_crl_claim(ngx_http_jpki_main_conf_t *jmcf, ngx_uint_t take)
{
    ngx_http_jpki_crl_shm_t  *hdr;
    ngx_http_jpki_issuer_t   *iss = jmcf->issuers.elts;
    ngx_uint_t                i, ok = 1;

    if (jmcf->crl_zone == NULL) {
        return 1;
    }

    hdr = jmcf->crl_zone->data;
    ngx_http_jpki_crl_lock(jmcf);

    if (!take) {
        for (i = 0; i < jmcf->issuers.nelts; i++) {
            if (iss[i].crl_busy) {
                break;                  /* a parse or an index pending */
            }
        }
        if (hdr->loader == ngx_pid && i == jmcf->issuers.nelts) {
            hdr->loader = 0;
        }
    } else if (hdr->loader != 0 && hdr->loader != ngx_pid
               && ngx_time() - hdr->loading_since < 60)
    {
        ok = 0;
    } else {
        hdr->loader = ngx_pid;
        hdr->loading_since = ngx_time();
    }

    ngx_http_jpki_crl_unlock(jmcf);

    return ok;
}


/* Reads and parses a CRL file (no nginx state touched: may run in a
 * thread of the jpki_crl thread pool). */
static jpki_err
ngx_http_jpki_crl_parse(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, time_t now, jpki_crl_index **ix,
    char *detail, size_t dlen)
{
    uint8_t   *der;
    size_t     len;
    jpki_err   e;

    *ix = NULL;
    detail[0] = '\0';
    e = jpki_load_file((char *) iss->crl_file.data, JPKI_CRL_MAX, &der, &len);

    if (e == JPKI_OK) {
        e = jpki_crl_index_build(jmcf->ctx, der, len, now,
                                 (unsigned) jmcf->crl_grace, ix, detail, dlen);
        free(der);
    }

    return e;
}


/* Publishes a parsed CRL (or records why not) in the issuer's slot; an
 * index the zone has no room for yet waits in iss->crl_pending. */
static void
ngx_http_jpki_crl_apply(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, ngx_http_jpki_file_id_t *file, jpki_err e,
    jpki_crl_index *ix, char *detail, size_t dlen, ngx_log_t *log)
{
    ngx_http_jpki_crl_slot_t  *sl = iss->crl;
    ngx_int_t                  rc;
    ngx_uint_t                 waited = 0;
    uint64_t                   n;

    if (ix != NULL && iss->crl_pending == ix) {
        iss->crl_pending = NULL;
        iss->crl_busy = 0;
        jmcf->crl_npending--;
        waited = 1;
    }

    if (e == JPKI_OK) {
        n = jpki_crl_index_info(ix)->entries;

        rc = ngx_http_jpki_crl_publish(jmcf, iss, ix, &e, detail, dlen, log);

        if (rc == NGX_AGAIN) {
            if (!waited) {
                ngx_log_error(NGX_LOG_WARN, log, 0, "jpki: CRL \"%V\" of "
                              "issuer \"%V\" waits: the CRLs it replaces in "
                              "zone \"%V\" are still being read (or hold its "
                              "room); tried again every second",
                              &iss->crl_file, &iss->name,
                              &jmcf->crl_zone->shm.name);
            }
            iss->crl_pending = ix;
            iss->crl_pending_file = *file;
            iss->crl_busy = 1;
            jmcf->crl_npending++;
            return;
        }

        if (rc == NGX_OK) {
            ngx_http_jpki_crl_lock(jmcf);
            (void) ngx_cpystrn(sl->tag,
                               (u_char *) jpki_issuer_tag(iss->issuer),
                               sizeof(sl->tag));
            sl->loaded = ngx_time();
            ngx_http_jpki_crl_unlock(jmcf);
            ngx_log_error(NGX_LOG_NOTICE, log, 0, "jpki: CRL \"%V\" of issuer "
                          "\"%V\" loaded: %uL entries%s", &iss->crl_file,
                          &iss->name, n,
                          jmcf->crl_zone ? " (shared zone)" : "");

        } else if (rc == NGX_DECLINED) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: CRL \"%V\" refused: %s"
                          "%s%s%s", &iss->crl_file, jpki_reason(e),
                          detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
        }

    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: CRL \"%V\" refused: %s"
                      "%s%s%s", &iss->crl_file, jpki_reason(e),
                      detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    }

    ngx_http_jpki_crl_lock(jmcf);
    sl->file = *file;
    sl->error = e;
    ngx_http_jpki_crl_unlock(jmcf);
}


/* The indexes that waited for room in the zone, tried again (their files
 * as they were when parsed: a newer version is read once they are in). */
static void
ngx_http_jpki_crl_retry(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log)
{
    ngx_http_jpki_issuer_t   *iss = jmcf->issuers.elts;
    ngx_http_jpki_file_id_t   file;
    ngx_uint_t                i;
    char                      detail[256];

    if (jmcf->crl_npending == 0) {
        return;
    }

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].crl_pending == NULL) {
            continue;
        }

        (void) ngx_http_jpki_crl_claim(jmcf, 1);      /* still loading */
        file = iss[i].crl_pending_file;
        detail[0] = '\0';
        ngx_http_jpki_crl_apply(jmcf, &iss[i], &file, JPKI_OK,
                                iss[i].crl_pending, detail, sizeof(detail),
                                log);
    }

    (void) ngx_http_jpki_crl_claim(jmcf, 0);
}


#if (NGX_THREADS)

/* A CRL parsed in a thread of nginx's default pool: a national-size file
 * never stalls the worker (`thread_pool default threads=N;` in the main
 * context sizes the pool; 32 threads when not declared). */
typedef struct {
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_issuer_t     *iss;
    ngx_http_jpki_file_id_t     file;
    time_t                      now;
    jpki_err                    e;
    jpki_crl_index             *ix;
    char                        detail[256];
} ngx_http_jpki_crl_task_t;


static void
ngx_http_jpki_crl_thread(void *data, ngx_log_t *log)
{
    ngx_http_jpki_crl_task_t  *ct = data;

    ct->e = ngx_http_jpki_crl_parse(ct->jmcf, ct->iss, ct->now, &ct->ix,
                                    ct->detail, sizeof(ct->detail));
}


static void
ngx_http_jpki_crl_thread_done(ngx_event_t *ev)
{
    ngx_http_jpki_crl_task_t  *ct = ev->data;

    ct->iss->crl_busy = 0;
    ngx_http_jpki_crl_apply(ct->jmcf, ct->iss, &ct->file, ct->e, ct->ix,
                            ct->detail, sizeof(ct->detail), ev->log);
    (void) ngx_http_jpki_crl_claim(ct->jmcf, 0);
}


static ngx_int_t
ngx_http_jpki_crl_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, ngx_http_jpki_file_id_t *file,
    ngx_log_t *log)
{
    ngx_thread_task_t         *task;
    ngx_http_jpki_crl_task_t  *ct;

    if (jmcf->threads == NULL) {
        return NGX_DECLINED;
    }

    if (iss->crl_task == NULL) {
        iss->crl_task = ngx_thread_task_alloc(ngx_cycle->pool,
                                              sizeof(ngx_http_jpki_crl_task_t));
        if (iss->crl_task == NULL) {
            return NGX_DECLINED;
        }
    }

    task = iss->crl_task;
    ct = task->ctx;
    ct->jmcf = jmcf;
    ct->iss = iss;
    ct->file = *file;
    ct->now = ngx_time();
    task->handler = ngx_http_jpki_crl_thread;
    task->event.handler = ngx_http_jpki_crl_thread_done;
    task->event.data = ct;
    task->event.log = log;

    if (ngx_thread_task_post(jmcf->threads, task) != NGX_OK) {
        return NGX_DECLINED;
    }

    iss->crl_busy = 1;

    return NGX_OK;
}

#endif


/* The identity of a watched file's version (see ngx_http_jpki_file_id_t). */
static void
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


/* Loads the issuers' CRL files that changed since they were tried (all of
 * them at start): another inode, size, mtime or ctime (to the nanosecond)
 * than the version tried last.  A file that does not verify, is stale or
 * older than the loaded one leaves the loaded index in place (which then
 * goes stale itself: checks that need it fail closed); it is tried again
 * once it changes (a file read half-written is, when its writer completes
 * it; one that could not be read, when fixed with chmod). */
void
ngx_http_jpki_load_crls(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log)
{
    ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
    ngx_uint_t               i, tried;
    ngx_err_t                err;
    ngx_file_info_t          fi;
    ngx_http_jpki_file_id_t  file;
    jpki_crl_index          *ix;
    jpki_err                 e;
    char                     detail[256];

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].crl_file.len == 0) {
            continue;
        }

        /* the slot's file and error are read and written under the
         * zone's mutex: the identity (7 words) of another worker's update
         * read half done would match neither version, and the file would
         * be parsed again */

        if (ngx_file_info(iss[i].crl_file.data, &fi) == NGX_FILE_ERROR) {
            err = ngx_errno;

            ngx_http_jpki_crl_lock(jmcf);
            tried = iss[i].crl->error == JPKI_ERR_IO;
            iss[i].crl->error = JPKI_ERR_IO;
            ngx_memzero(&iss[i].crl->file, sizeof(ngx_http_jpki_file_id_t));
            ngx_http_jpki_crl_unlock(jmcf);

            if (!tried) {
                ngx_log_error(NGX_LOG_ERR, log, err, "jpki: CRL \"%V\" "
                              "unreadable", &iss[i].crl_file);
            }

            continue;
        }

        ngx_http_jpki_file_id(&fi, &file);

        /* this very file was tried (by this worker or, with a zone, by any):
         * loaded for this issuer, or refused */
        ngx_http_jpki_crl_lock(jmcf);
        tried = ngx_http_jpki_file_same(&file, &iss[i].crl->file)
                && (iss[i].crl->error != JPKI_OK
                    || ngx_http_jpki_crl_of(&iss[i]) != NULL);
        ngx_http_jpki_crl_unlock(jmcf);

        if (tried) {
            continue;
        }

        if (iss[i].crl_busy || !ngx_http_jpki_crl_claim(jmcf, 1)) {
            continue;                   /* under way here or elsewhere */
        }

#if (NGX_THREADS)
        if (ngx_http_jpki_crl_post(jmcf, &iss[i], &file, log) == NGX_OK) {
            continue;                   /* done in a thread; claim kept */
        }
#endif

        e = ngx_http_jpki_crl_parse(jmcf, &iss[i], ngx_time(), &ix, detail,
                                    sizeof(detail));
        ngx_http_jpki_crl_apply(jmcf, &iss[i], &file, e, ix, detail,
                                sizeof(detail), log);
        (void) ngx_http_jpki_crl_claim(jmcf, 0);
    }
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
    ngx_thread_task_t         *task;
    ngx_http_jpki_map_task_t  *mt;

    if (jmcf->threads == NULL) {
        return NGX_DECLINED;
    }

    if (jmcf->map_task == NULL) {
        jmcf->map_task = ngx_thread_task_alloc(ngx_cycle->pool,
                                              sizeof(ngx_http_jpki_map_task_t));
        if (jmcf->map_task == NULL) {
            return NGX_DECLINED;
        }
    }

    task = jmcf->map_task;
    mt = task->ctx;
    mt->jmcf = jmcf;
    mt->file = *file;
    task->handler = ngx_http_jpki_map_thread;
    task->event.handler = ngx_http_jpki_map_thread_done;
    task->event.data = mt;
    task->event.log = log;

    if (ngx_thread_task_post(jmcf->threads, task) != NGX_OK) {
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

    ngx_http_jpki_crl_reclaim(jmcf);
    ngx_http_jpki_crl_retry(jmcf, ev->log);
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

