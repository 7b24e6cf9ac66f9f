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


#define NGX_HTTP_JPKI_UNSET_REV  ((ngx_uint_t) -1)

typedef struct {
    ngx_flag_t                 enable;
    ngx_flag_t                 endpoints;
    ngx_str_t                  header;
    ngx_int_t                  lifetime;
    ngx_int_t                  idle;
    ngx_int_t                  recheck;
    ngx_str_t                  cookie_name;
    ngx_str_t                  cookie_path;
    ngx_str_t                  cookie_samesite;
    ngx_flag_t                 cookie_secure;
    ngx_flag_t                 pass_cookie;   /* jpki_pass_cookie */
    ngx_uint_t                 rev_policy;
    ngx_flag_t                 fail_open;
    ngx_str_t                  login_page;
    ngx_str_t                  trusted_origins;  /* space-separated */
    ngx_flag_t                 require_account;
    ngx_str_t                  throttle;      /* jpki_throttle's value */
    ngx_uint_t                 health;        /* jpki_health here */
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
    ngx_str_t                  cookie;
    ngx_str_t                  account;
    ngx_str_t                  cert_id;
    ngx_str_t                  status;
    ngx_str_t                  set_cookie;
    time_t                     auth_time;
    u_char                     peer[NGX_SOCKADDR_STRLEN + 1];
    u_char                    *uri;
} ngx_http_jpki_ctx_t;


typedef struct {
    u_char                     cert_id[JPKI_CERT_ID_HEX_LEN];
    u_char                     account[JPKI_ACCOUNT_MAX + 1];
    size_t                     account_len;
} ngx_http_jpki_map_entry_t;

typedef struct {
    ngx_http_jpki_map_entry_t *e;
    ngx_uint_t                 n;
} ngx_http_jpki_map_t;


static ngx_int_t ngx_http_jpki_add_variables(ngx_conf_t *cf);
static void *ngx_http_jpki_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_jpki_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void *ngx_http_jpki_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_jpki_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_jpki_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_jpki_init_process(ngx_cycle_t *cycle);
static void ngx_http_jpki_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_jpki_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_issuer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_endpoints(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_revocation(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_failure(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_trusted_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_jpki_throttle(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_samesite(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_site_msec(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_map_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_site_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_site_flag(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_crl_grace(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

static void ngx_http_jpki_drive(ngx_http_jpki_ctx_t *ctx);


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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_store,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_msec,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("jpki_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_msec,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, redis_connect_timeout),
      NULL },

    { ngx_string("jpki_ocsp_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_msec,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, ocsp_timeout),
      NULL },

    { ngx_string("jpki_crl_grace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_crl_grace,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_crl_zone"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_crl_zone,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_jpki_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_map_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_map_file,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_http_jpki_main_conf_t, map_file),
      NULL },

    { ngx_string("jpki_challenge_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, challenge_ttl),
      NULL },

    { ngx_string("jpki_clock_skew"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, clock_skew),
      NULL },

    { ngx_string("jpki_ocsp_cache_good"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, ocsp_good_max_ttl),
      NULL },

    { ngx_string("jpki_crl_pointer_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, crl_pointer_ttl),
      NULL },

    { ngx_string("jpki_ocsp_cache_hold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, ocsp_hold_ttl),
      NULL },

    { ngx_string("jpki_ocsp_nonce"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_http_jpki_site_flag,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, ocsp_nonce),
      NULL },

    { ngx_string("jpki_ocsp_cache_revoked"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_site_policy,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(jpki_policy, ocsp_revoked_ttl),
      NULL },

    { ngx_string("jpki"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, enable),
      NULL },

    { ngx_string("jpki_endpoints"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_jpki_endpoints,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, header),
      NULL },

    { ngx_string("jpki_session_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, lifetime),
      NULL },

    { ngx_string("jpki_session_idle"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, idle),
      NULL },

    { ngx_string("jpki_recheck_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, recheck),
      NULL },

    { ngx_string("jpki_cookie_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, cookie_name),
      NULL },

    { ngx_string("jpki_cookie_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, cookie_path),
      NULL },

    { ngx_string("jpki_cookie_samesite"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_samesite,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, cookie_samesite),
      NULL },

    { ngx_string("jpki_cookie_secure"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, cookie_secure),
      NULL },

    { ngx_string("jpki_revocation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_revocation,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_failure"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_jpki_failure,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_login_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, login_page),
      NULL },

    { ngx_string("jpki_pass_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, pass_cookie),
      NULL },

    { ngx_string("jpki_trusted_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_jpki_trusted_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("jpki_require_account"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_jpki_loc_conf_t, require_account),
      NULL },

    { ngx_string("jpki_throttle"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
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


static void
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


static char *
ngx_http_jpki_site_msec(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_site_note(cf, cmd, conf);

    return ngx_conf_set_msec_slot(cf, cmd, conf);
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

    jmcf->redis_db = NGX_CONF_UNSET;
    jmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    jmcf->redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    jmcf->ocsp_timeout = NGX_CONF_UNSET_MSEC;
    jmcf->crl_grace = NGX_CONF_UNSET_UINT;
    jmcf->site = jmcf;

    return jmcf;
}


static char *
ngx_http_jpki_site_finish(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    char                        err[256];

    ngx_conf_init_msec_value(jmcf->redis_timeout, 1000);
    ngx_conf_init_msec_value(jmcf->redis_connect_timeout, 1000);
    ngx_conf_init_msec_value(jmcf->ocsp_timeout, 3000);
    ngx_conf_init_value(jmcf->redis_db, 0);
    ngx_conf_init_uint_value(jmcf->crl_grace, JPKI_CRL_GRACE_VALIDITY);

    if (jmcf->redis_keepalive == 0) {
        jmcf->redis_keepalive = 16;
    }

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
                           "(e.g. \"jpki_store shm zone=jpki:10m;\")");
        return NGX_CONF_ERROR;
    }

    /* CRLs read from the store go stale under the same grace as files */
    jpki_ctx_policy(jmcf->ctx)->crl_grace = (unsigned) jmcf->crl_grace;

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


static ngx_int_t
ngx_http_jpki_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;
    void             *mem;
    size_t            size;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        shm_zone->data = data;             /* reload: keep the table */
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    size = shm_zone->shm.size - shm_zone->shm.size / 8;
    size &= ~(size_t) 7;

    mem = ngx_slab_alloc(shpool, size);
    if (mem == NULL || jpki_shm_init(mem, size, 0) != JPKI_OK) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "jpki: zone \"%V\" is too small", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    /* the size is kept in front of the table */
    shpool->data = mem;
    shm_zone->data = mem;
    shpool->log_nomem = 0;

    return NGX_OK;
}


#if (NGX_SSL)

/* TLS to Redis: the server certificate must chain to tls_ca= (required) and
 * name tls_name= (default: the host of redis=). */
static ngx_int_t
ngx_http_jpki_redis_tls_conf(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    ngx_str_t *ca)
{
    ngx_pool_cleanup_t  *cln;

    if (ca->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: redis tls=on needs "
                           "tls_ca=FILE (the server is always verified)");
        return NGX_ERROR;
    }

    if (jmcf->redis_tls_name.len == 0) {
        jmcf->redis_tls_name = jmcf->redis.host;
    }

    jmcf->redis_ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (jmcf->redis_ssl == NULL) {
        return NGX_ERROR;
    }

    jmcf->redis_ssl->log = cf->log;

    if (ngx_ssl_create(jmcf->redis_ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3,
                       NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(jmcf->redis_ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = jmcf->redis_ssl;

    if (ngx_conf_full_name(cf->cycle, ca, 1) != NGX_OK
        || ngx_ssl_trusted_certificate(cf, jmcf->redis_ssl, ca, 4) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* as proxy_ssl_verify does: the handshake completes and the result of
     * the verification is checked after it (ngx_http_jpki_io.c) */
    return NGX_OK;
}

#endif


/* jpki_store shm zone=NAME:SIZE;
 * jpki_store redis=HOST:PORT|unix:PATH [db=N] [user=U] [password=P]
 *            [keepalive=N] [tls=on tls_ca=FILE [tls_name=NAME]]
 *            [mirror=SIZE]; */
static char *
ngx_http_jpki_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts, name, s;
    ngx_uint_t                  i;
    ssize_t                     size, mirror = 1024 * 1024;
    u_char                     *colon, mirror_name[300];
    ngx_int_t                   n;
#if (NGX_SSL)
    ngx_uint_t                  tls = 0;
    ngx_str_t                   tls_ca = ngx_null_string;
#endif

    if (jmcf->store) {
        return "is duplicate";
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "shm", 3) == 0) {
        if (cf->args->nelts != 3
            || ngx_strncmp(value[2].data, "zone=", 5) != 0)
        {
            return "expects \"shm zone=NAME:SIZE\"";
        }

        name.data = value[2].data + 5;
        colon = ngx_strlchr(name.data, value[2].data + value[2].len, ':');
        if (colon == NULL) {
            return "expects \"shm zone=NAME:SIZE\"";
        }
        name.len = colon - name.data;
        s.data = colon + 1;
        s.len = value[2].data + value[2].len - s.data;
        size = ngx_parse_size(&s);

        if (name.len == 0 || size == NGX_ERROR
            || size < (ssize_t) (8 * ngx_pagesize)
            || (size_t) size < 2 * jpki_shm_min_size())
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "jpki: invalid shm zone \"%V\" (size at "
                               "least %uz)", &value[2],
                               ngx_max(8 * ngx_pagesize,
                                       2 * jpki_shm_min_size()));
            return NGX_CONF_ERROR;
        }

        jmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                               &ngx_http_jpki_module);
        if (jmcf->shm_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        jmcf->shm_zone->init = ngx_http_jpki_init_zone;
        jmcf->store = NGX_HTTP_JPKI_STORE_SHM;
        jmcf->configured = 1;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[1].data, "redis=", 6) != 0) {
        return "expects \"shm zone=NAME:SIZE\" or \"redis=HOST:PORT\"";
    }

    jmcf->redis.url.data = value[1].data + 6;
    jmcf->redis.url.len = value[1].len - 6;
    jmcf->redis.default_port = 6379;

    if (ngx_parse_url(cf->pool, &jmcf->redis) != NGX_OK
        || jmcf->redis.naddrs == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: redis address "
                           "\"%V\": %s", &jmcf->redis.url,
                           jmcf->redis.err ? jmcf->redis.err
                                           : "does not resolve");
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 15) {
                return "has an invalid db= (0..15)";
            }
            jmcf->redis_db = n;

        } else if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            jmcf->redis_user.data = value[i].data + 5;
            jmcf->redis_user.len = value[i].len - 5;

        } else if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            jmcf->redis_password.data = value[i].data + 9;
            jmcf->redis_password.len = value[i].len - 9;

#if (NGX_SSL)
        } else if (ngx_strcmp(value[i].data, "tls=on") == 0) {
            tls = 1;

        } else if (ngx_strncmp(value[i].data, "tls_ca=", 7) == 0) {
            tls_ca.data = value[i].data + 7;
            tls_ca.len = value[i].len - 7;

        } else if (ngx_strncmp(value[i].data, "tls_name=", 9) == 0) {
            jmcf->redis_tls_name.data = value[i].data + 9;
            jmcf->redis_tls_name.len = value[i].len - 9;
#endif

        } else if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                return "has an invalid keepalive= (1..1024)";
            }
            jmcf->redis_keepalive = n;

        } else if (ngx_strncmp(value[i].data, "mirror=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;
            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)
                || (size_t) size < 2 * jpki_shm_min_size())
            {
                return "has an invalid mirror= (a size, at least 32k)";
            }
            mirror = size;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "jpki: invalid parameter \"%V\" (expected "
                               "db=, user=, password=, keepalive=, tls=on, "
                               "tls_ca=, tls_name= or mirror=)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (jmcf->redis_user.len && jmcf->redis_password.len == 0) {
        return "has user= without password=";
    }

#if (NGX_SSL)
    if (tls_ca.len && !tls) {
        return "has tls_ca= without tls=on";
    }

    if (tls && ngx_http_jpki_redis_tls_conf(cf, jmcf, &tls_ca) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
#endif

    /* the node's table of logouts: one per Redis server and db, shared by
     * the sites on it (a marker is keyed by a cert_id of one secret) */
    name.len = ngx_snprintf(mirror_name, sizeof(mirror_name),
                            "jpki_logouts:%V:%i", &jmcf->redis.url,
                            jmcf->redis_db) - mirror_name;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(name.data, mirror_name, name.len);
    jmcf->mirror_zone = ngx_shared_memory_add(cf, &name, mirror,
                                              &ngx_http_jpki_module);
    if (jmcf->mirror_zone == NULL) {
        return NGX_CONF_ERROR;
    }
    jmcf->mirror_zone->init = ngx_http_jpki_init_zone;

    jmcf->store = NGX_HTTP_JPKI_STORE_REDIS;
    jmcf->configured = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_site_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts;
    jpki_policy                *p;
    time_t                      t;

    ngx_http_jpki_site_note(cf, cmd, conf);

    p = jpki_ctx_policy(jmcf->ctx);
    t = ngx_parse_time(&value[1], 1);

    if (p == NULL || t == (time_t) NGX_ERROR || t > 86400 * 365) {
        return "invalid value";
    }

    *(unsigned *) ((char *) p + cmd->offset) = (unsigned) t;

    return NGX_CONF_OK;
}


/* A site policy switch: on or off. */
static char *
ngx_http_jpki_site_flag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts;
    jpki_policy                *p;
    unsigned                    on;

    ngx_http_jpki_site_note(cf, cmd, conf);

    p = jpki_ctx_policy(jmcf->ctx);
    if (p == NULL) {
        return "is too late (the site is already complete)";
    }

    if (ngx_strcasecmp(value[1].data, (u_char *) "on") == 0) {
        on = 1;
    } else if (ngx_strcasecmp(value[1].data, (u_char *) "off") == 0) {
        on = 0;
    } else {
        return "must be \"on\" or \"off\"";
    }

    *(unsigned *) ((char *) p + cmd->offset) = on;

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

#define NGX_HTTP_JPKI_CRL_SLOTS    16        /* JPKI_MAX_ISSUERS of the core */
#define NGX_HTTP_JPKI_CRL_RETIRED  (4 * NGX_HTTP_JPKI_CRL_SLOTS)

typedef struct {
    void                      *block;
    uint64_t                   epoch;         /* the epoch it was retired at */
} ngx_http_jpki_crl_retired_t;

/* One per nginx process slot (ngx_process_slot), a cache line each: the
 * workers write theirs at every lookup. */
typedef struct {
    uint64_t                   epoch;         /* 0: not reading */
    ngx_pid_t                  pid;
    u_char                     pad[NGX_CPU_CACHE_LINE - sizeof(uint64_t)
                                   - sizeof(ngx_pid_t)];
} ngx_http_jpki_crl_reader_t;

typedef struct {
    ngx_pid_t                    loader;      /* a worker parsing a file */
    time_t                       loading_since;
    uint64_t                     epoch;       /* 1 + the publishes so far */
    ngx_uint_t                   nretired;
    ngx_http_jpki_crl_retired_t  retired[NGX_HTTP_JPKI_CRL_RETIRED];
    ngx_http_jpki_crl_slot_t     slot[NGX_HTTP_JPKI_CRL_SLOTS];
    ngx_http_jpki_crl_reader_t   reader[NGX_MAX_PROCESSES];
} ngx_http_jpki_crl_shm_t;


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


/* jpki_crl_grace auto|TIME: a CRL is stale after nextUpdate + TIME; auto is
 * the end of the J-LIS validity (thisUpdate + 72 h). */
static char *
ngx_http_jpki_crl_grace(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts;
    time_t                      t;

    ngx_http_jpki_site_note(cf, cmd, conf);

    if (jmcf->crl_grace != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ngx_strcmp(value[1].data, "auto") == 0) {
        jmcf->crl_grace = JPKI_CRL_GRACE_VALIDITY;
        return NGX_CONF_OK;
    }

    t = ngx_parse_time(&value[1], 1);
    if (t == (time_t) NGX_ERROR || t < 1 || t > 30 * 86400) {
        return "must be \"auto\" or a time of 1s..30d";
    }

    jmcf->crl_grace = (ngx_uint_t) t;

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_revocation(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                 *value = cf->args->elts;
    jpki_rev_policy            p;

    if (jlcf->rev_policy != NGX_HTTP_JPKI_UNSET_REV) {
        return "is duplicate";
    }

    if (jpki_rev_policy_parse((char *) value[1].data, value[1].len, &p)
        != JPKI_OK || p == JPKI_REV_NONE)
    {
        return "must be ocsp, crl, \"ocsp,crl\" or \"crl,ocsp\"";
    }

    jlcf->rev_policy = p;

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_failure(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                 *value = cf->args->elts;

    if (jlcf->fail_open != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        jlcf->fail_open = 0;

    } else if (ngx_strcmp(value[1].data, "open") == 0) {
        jlcf->fail_open = 1;

    } else {
        return "must be \"closed\" or \"open\"";
    }

    return NGX_CONF_OK;
}


/* jpki_trusted_origins https://login.example ...: the origins (besides
 * the gate's own) whose pages may post logins and logouts; kept as one
 * space-separated string (checked with the policy). */
/* The directive's arguments joined by blanks into out, NUL-terminated. */
static char *
ngx_http_jpki_join_args(ngx_conf_t *cf, ngx_str_t *out)
{
    ngx_str_t   *value = cf->args->elts;
    ngx_uint_t   i;
    size_t       len = 0;
    u_char      *p;

    for (i = 1; i < cf->args->nelts; i++) {
        len += value[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    out->data = p;
    for (i = 1; i < cf->args->nelts; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = (i + 1 < cf->args->nelts) ? ' ' : '\0';
    }
    out->len = len - 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_trusted_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    if (jlcf->trusted_origins.data != NULL) {
        return "is duplicate";
    }

    return ngx_http_jpki_join_args(cf, &jlcf->trusted_origins);
}


static char *
ngx_http_jpki_samesite(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "Strict") != 0
        && ngx_strcmp(value[1].data, "Lax") != 0
        && ngx_strcmp(value[1].data, "None") != 0)
    {
        return "must be Strict, Lax or None";
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


/* jpki_throttle off | [window=T] [cert=N] [addr=N] [logins=N]
 *               [concurrency=N]: the grammar is the core's. */
static char *
ngx_http_jpki_throttle(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    jpki_policy                check;
    char                       err[256];

    if (jlcf->throttle.data) {
        return "is duplicate";
    }

    if (ngx_http_jpki_join_args(cf, &jlcf->throttle) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&check, sizeof(check));
    check.throttle_window = 60;
    if (jpki_policy_set_throttle(&check, (char *) jlcf->throttle.data, err,
                                 sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_jpki_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_loc_conf_t  *jlcf;

    jlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_jpki_loc_conf_t));
    if (jlcf == NULL) {
        return NULL;
    }

    jlcf->enable = NGX_CONF_UNSET;
    jlcf->endpoints = NGX_CONF_UNSET;
    jlcf->lifetime = NGX_CONF_UNSET;
    jlcf->idle = NGX_CONF_UNSET;
    jlcf->recheck = NGX_CONF_UNSET;
    jlcf->cookie_secure = NGX_CONF_UNSET;
    jlcf->pass_cookie = NGX_CONF_UNSET;
    jlcf->rev_policy = NGX_HTTP_JPKI_UNSET_REV;
    jlcf->fail_open = NGX_CONF_UNSET;
    jlcf->require_account = NGX_CONF_UNSET;

    return jlcf;
}


static char *
ngx_http_jpki_copy_str(char *dst, size_t max, ngx_str_t *s, const char *what)
{
    if (s->len >= max) {
        return (char *) what;
    }

    ngx_memcpy(dst, s->data, s->len);
    dst[s->len] = '\0';

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_jpki_loc_conf_t   *prev = parent;
    ngx_http_jpki_loc_conf_t   *conf = child;
    ngx_http_jpki_main_conf_t  *jmcf;
    jpki_policy                *p;
    char                       *rv, err[256];

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->endpoints, prev->endpoints, 0);
    ngx_conf_merge_str_value(conf->header, prev->header, "X-JPKI-Account");
    ngx_conf_merge_sec_value(conf->lifetime, prev->lifetime, 28800);
    ngx_conf_merge_sec_value(conf->idle, prev->idle, 1800);
    ngx_conf_merge_sec_value(conf->recheck, prev->recheck, 300);
    ngx_conf_merge_str_value(conf->cookie_name, prev->cookie_name,
                             "jpki_session");
    ngx_conf_merge_str_value(conf->cookie_path, prev->cookie_path, "/");
    ngx_conf_merge_str_value(conf->cookie_samesite, prev->cookie_samesite,
                             "Lax");
    ngx_conf_merge_value(conf->cookie_secure, prev->cookie_secure, 1);
    ngx_conf_merge_value(conf->pass_cookie, prev->pass_cookie, 0);
    ngx_conf_merge_uint_value(conf->rev_policy, prev->rev_policy,
                              JPKI_REV_OCSP);
    ngx_conf_merge_value(conf->fail_open, prev->fail_open, 0);
    ngx_conf_merge_str_value(conf->login_page, prev->login_page, "");
    ngx_conf_merge_str_value(conf->trusted_origins, prev->trusted_origins,
                             "");
    ngx_conf_merge_value(conf->require_account, prev->require_account, 0);
    ngx_conf_merge_str_value(conf->throttle, prev->throttle, "");

    if (conf->header.len == 0 || conf->header.len > 64) {
        return "jpki_header must be a header name of 1..64 characters";
    }

    jmcf = ((ngx_http_jpki_main_conf_t *)
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_jpki_module))->site;

    if (conf->health && !jmcf->configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_health\" needs "
                           "jpki_secret_file, jpki_issuer and jpki_store for "
                           "this server or at http level");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable && !conf->endpoints) {
        return NGX_CONF_OK;
    }

    if (!jmcf->configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: the gate needs "
                           "\"jpki_secret_file\", \"jpki_issuer\" and "
                           "\"jpki_store\" at http level");
        return NGX_CONF_ERROR;
    }

    p = ngx_palloc(cf->pool, sizeof(jpki_policy));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *p = *jpki_ctx_get_policy(jmcf->ctx);
    p->session_lifetime = (unsigned) conf->lifetime;
    p->session_idle = (unsigned) conf->idle;
    p->recheck_interval = (unsigned) conf->recheck;
    p->cookie_secure = (unsigned) conf->cookie_secure;
    p->cookie_httponly = 1;
    p->rev_policy = (jpki_rev_policy) conf->rev_policy;
    p->fail_open = (unsigned) conf->fail_open;
    p->require_account = (unsigned) conf->require_account;

    rv = ngx_http_jpki_copy_str(p->cookie_name, sizeof(p->cookie_name),
                                &conf->cookie_name, "cookie name too long");
    if (rv == NGX_CONF_OK) {
        rv = ngx_http_jpki_copy_str(p->cookie_path, sizeof(p->cookie_path),
                                    &conf->cookie_path, "cookie path too long");
    }
    if (rv == NGX_CONF_OK) {
        rv = ngx_http_jpki_copy_str(p->cookie_samesite,
                                    sizeof(p->cookie_samesite),
                                    &conf->cookie_samesite, "bad SameSite");
    }
    if (rv == NGX_CONF_OK) {
        rv = ngx_http_jpki_copy_str(p->login_page, sizeof(p->login_page),
                                    &conf->login_page, "login page too long");
    }
    if (rv == NGX_CONF_OK) {
        rv = ngx_http_jpki_copy_str(p->trusted_origins,
                                    sizeof(p->trusted_origins),
                                    &conf->trusted_origins,
                                    "jpki_trusted_origins too long");
    }
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (conf->throttle.len) {
        /* the value was checked where it was written (ngx_http_jpki_throttle) */
        (void) jpki_policy_set_throttle(p, (char *) conf->throttle.data, err,
                                        sizeof(err));
    }

    if (jpki_policy_check(p, err, sizeof(err)) != JPKI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    conf->policy = p;

    return NGX_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Per-worker state: store handle, CRLs, mapping file                  */
/* ------------------------------------------------------------------ */

static void
ngx_http_jpki_shm_lock(void *ud)
{
    ngx_shmtx_lock(&((ngx_slab_pool_t *) ud)->mutex);
}


static void
ngx_http_jpki_shm_unlock(void *ud)
{
    ngx_shmtx_unlock(&((ngx_slab_pool_t *) ud)->mutex);
}


/* Whether an issuer's CRL is in the zone (else in the worker's memory). */
static ngx_uint_t
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
static const jpki_crl_index *
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


static void
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
static void
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
static ngx_uint_t
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
static void
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


static int
ngx_http_jpki_map_cmp(const void *a, const void *b)
{
    return ngx_memcmp(((ngx_http_jpki_map_entry_t *) a)->cert_id,
                      ((ngx_http_jpki_map_entry_t *) b)->cert_id,
                      JPKI_CERT_ID_HEX_LEN);
}


/* A reading of the mapping file: its result is applied in the worker. */
typedef struct {
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_file_id_t     file;
    ngx_http_jpki_map_t        *map;          /* NULL: not read */
    jpki_err                    e;
    ngx_uint_t                  bad;          /* malformed lines */
    char                        why[512];     /* when not read */
} ngx_http_jpki_map_task_t;


/* Reads and parses the mapping file: "<cert_id> <account>" lines, '#'
 * comments (no nginx state touched: may run in a thread of the default
 * pool). */
static void
ngx_http_jpki_map_read(ngx_http_jpki_map_task_t *mt, ngx_log_t *log)
{
    ngx_http_jpki_main_conf_t  *jmcf = mt->jmcf;
    ngx_http_jpki_map_t        *m;
    ngx_http_jpki_map_entry_t  *e;
    uint8_t                    *data;
    size_t                      len, n, alen;
    char                       *line, *save, *sp, *acct;

    mt->map = NULL;
    mt->bad = 0;

    mt->e = jpki_load_file_msg("mapping file", (char *) jmcf->map_file.data,
                               64 * 1024 * 1024, &data, &len, mt->why,
                               sizeof(mt->why));
    if (mt->e != JPKI_OK) {
        return;
    }

    m = ngx_calloc(sizeof(ngx_http_jpki_map_t), log);
    e = ngx_alloc((len / (JPKI_CERT_ID_HEX_LEN + 2) + 1)
                  * sizeof(ngx_http_jpki_map_entry_t), log);
    if (m == NULL || e == NULL) {
        ngx_free(m);
        ngx_free(e);
        free(data);
        mt->e = JPKI_ERR_NOMEM;
        ngx_snprintf((u_char *) mt->why, sizeof(mt->why), "mapping file "
                     "\"%V\": out of memory%Z", &jmcf->map_file);
        return;
    }

    n = 0;
    for (line = strtok_r((char *) data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
    {
        sp = line + strlen(line);
        while (sp > line && (sp[-1] == '\r' || sp[-1] == ' ')) {
            *--sp = '\0';
        }
        if (*line == '#' || *line == '\0') {
            continue;
        }
        acct = line + JPKI_CERT_ID_HEX_LEN + 1;
        alen = strlen(line) > JPKI_CERT_ID_HEX_LEN + 1
               ? strlen(acct) : 0;
        if (alen == 0 || line[JPKI_CERT_ID_HEX_LEN] != ' '
            || strspn(line, "0123456789abcdef") != JPKI_CERT_ID_HEX_LEN
            || !jpki_account_valid(acct, alen))
        {
            mt->bad++;
            continue;
        }
        ngx_memcpy(e[n].cert_id, line, JPKI_CERT_ID_HEX_LEN);
        ngx_memcpy(e[n].account, acct, alen);
        e[n].account_len = alen;
        n++;
    }

    free(data);

    ngx_qsort(e, n, sizeof(ngx_http_jpki_map_entry_t), ngx_http_jpki_map_cmp);
    m->e = e;
    m->n = n;
    mt->map = m;
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
    ngx_http_jpki_map_t        *old;

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

    if (mt->bad) {
        ngx_log_error(NGX_LOG_WARN, log, 0, "jpki: mapping file \"%V\": %ui "
                      "malformed lines ignored (expected \"<cert_id> "
                      "<account>\")", &jmcf->map_file, mt->bad);
    }

    old = jmcf->map;
    jmcf->map = mt->map;
    mt->map = NULL;

    if (old) {
        ngx_free(old->e);
        ngx_free(old);
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0, "jpki: mapping file \"%V\" "
                  "loaded, %ui entries", &jmcf->map_file,
                  ((ngx_http_jpki_map_t *) jmcf->map)->n);
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
static void
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
static void
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


static size_t
ngx_http_jpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    ngx_http_jpki_main_conf_t  *jmcf = ud;
    ngx_http_jpki_map_t        *m = jmcf->map;
    ngx_int_t                   lo, hi, mid, c;

    if (m == NULL) {
        return 0;
    }

    lo = 0;
    hi = (ngx_int_t) m->n - 1;

    while (lo <= hi) {
        mid = (lo + hi) / 2;
        c = ngx_memcmp(m->e[mid].cert_id, cert_id, JPKI_CERT_ID_HEX_LEN);
        if (c == 0) {
            ngx_memcpy(out, m->e[mid].account, m->e[mid].account_len);
            out[m->e[mid].account_len] = '\0';
            return m->e[mid].account_len;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }

    return 0;
}


static ngx_int_t ngx_http_jpki_init_site(ngx_cycle_t *cycle,
    ngx_http_jpki_main_conf_t *jmcf);
static void ngx_http_jpki_exit_site(ngx_http_jpki_main_conf_t *jmcf);


static ngx_int_t
ngx_http_jpki_init_process(ngx_cycle_t *cycle)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **site;
    ngx_uint_t                   i;

    sites = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_jpki_module);
    if (sites == NULL) {
        return NGX_OK;
    }

    site = sites->sites.elts;
    for (i = 0; i < sites->sites.nelts; i++) {
        if (ngx_http_jpki_init_site(cycle, site[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static int64_t
ngx_http_jpki_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + (int64_t) tp->msec;
}


/* This worker's handle over a table zone (the store, the logout mirror). */
static jpki_shm *
ngx_http_jpki_attach(ngx_cycle_t *cycle, ngx_shm_zone_t *zone,
    void **handle)
{
    ngx_slab_pool_t  *shpool;
    jpki_shm_lock     lock;
    jpki_shm         *s;
    size_t            size;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    size = zone->shm.size - zone->shm.size / 8;
    size &= ~(size_t) 7;
    lock.lock = ngx_http_jpki_shm_lock;
    lock.unlock = ngx_http_jpki_shm_unlock;
    lock.ud = shpool;
    *handle = ngx_alloc(jpki_shm_handle_size(), cycle->log);
    if (*handle == NULL) {
        return NULL;
    }
    s = jpki_shm_attach(*handle, zone->data, size, &lock);
    if (s == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "jpki: cannot attach to the shared zone \"%V\"",
                      &zone->shm.name);
    }
    return s;
}


/* The logout log poller (common/outsync.c): one per worker and site, on a
 * timer; its commands go to Redis like a request's, never blocking. */
static void ngx_http_jpki_outsync_run(ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_cmd *cmds, size_t n);

static void
ngx_http_jpki_outsync_done(void *data, jpki_store_result *res, size_t n)
{
    ngx_http_jpki_main_conf_t  *jmcf = data;
    const jpki_store_cmd       *cmds;
    size_t                      next;

    jmcf->outsync_io = NULL;
    cmds = jpki_outsync_feed(jmcf->outsync, res, n,
                             ngx_http_jpki_now_ms(), &next);
    if (cmds != NULL) {
        ngx_http_jpki_outsync_run(jmcf, cmds, next);
    }
}


static void
ngx_http_jpki_outsync_run(ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_cmd *cmds, size_t n)
{
    size_t  next;

    if (ngx_http_jpki_redis_exec(jmcf, jmcf->outsync_timer.log, cmds, n,
                                 ngx_http_jpki_outsync_done, jmcf,
                                 &jmcf->outsync_io)
        != NGX_AGAIN)
    {
        (void) jpki_outsync_feed(jmcf->outsync, NULL, 0,
                                 ngx_http_jpki_now_ms(), &next);
    }
}


static void
ngx_http_jpki_outsync_timer(ngx_event_t *ev)
{
    ngx_http_jpki_main_conf_t  *jmcf = ev->data;
    const jpki_store_cmd       *cmds;
    size_t                      n;

    if (jmcf->outsync_io == NULL) {
        cmds = jpki_outsync_cmds(jmcf->outsync,
                                 ngx_http_jpki_now_ms(), &n);
        if (cmds != NULL) {
            ngx_http_jpki_outsync_run(jmcf, cmds, n);
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, JPKI_OUTSYNC_PERIOD_MS / 2);
    }
}


static ngx_int_t
ngx_http_jpki_init_site(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_issuer_t     *iss;
    ngx_http_jpki_crl_shm_t    *crl;
    ngx_uint_t                  i;

    if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
        jmcf->shm = ngx_http_jpki_attach(cycle, jmcf->shm_zone,
                                         &jmcf->shm_handle);
        if (jmcf->shm == NULL) {
            return NGX_ERROR;
        }
    }

    if (jmcf->mirror_zone) {
        jmcf->mirror = ngx_http_jpki_attach(cycle, jmcf->mirror_zone,
                                            &jmcf->mirror_handle);
        jmcf->outsync = jmcf->mirror
                        ? jpki_outsync_new(jmcf->ctx, jmcf->mirror) : NULL;
        if (jmcf->outsync == NULL) {
            return NGX_ERROR;
        }
        jmcf->outsync_timer.handler = ngx_http_jpki_outsync_timer;
        jmcf->outsync_timer.data = jmcf;
        jmcf->outsync_timer.log = cycle->log;
        jmcf->outsync_timer.cancelable = 1;
        ngx_add_timer(&jmcf->outsync_timer, 1);
    }

    /* this site's idle Redis connections (ngx_http_jpki_io.c) */
    ngx_queue_init(&jmcf->redis_idle);
    jmcf->redis_nidle = 0;

    iss = jmcf->issuers.elts;
    for (i = 0; i < jmcf->issuers.nelts; i++) {
        iss[i].crl = jmcf->crl_zone && i < NGX_HTTP_JPKI_CRL_SLOTS
                     ? &((ngx_http_jpki_crl_shm_t *) jmcf->crl_zone->data)
                           ->slot[i]
                     : &iss[i].crl_own;
    }

    if (jmcf->crl_zone) {
        /* this process's reader entry (a process that had the slot before
         * may have died in a lookup): the pid first, see
         * ngx_http_jpki_crl_reclaim_locked() */
        crl = jmcf->crl_zone->data;
        __atomic_store_n(&crl->reader[ngx_process_slot].pid, ngx_pid,
                         __ATOMIC_SEQ_CST);
        __atomic_store_n(&crl->reader[ngx_process_slot].epoch, 0,
                         __ATOMIC_SEQ_CST);
    }

    ngx_http_jpki_load_crls(jmcf, cycle->log);

    if (jmcf->map_file.len) {
        ngx_http_jpki_map_load(jmcf, cycle->log, 0);
    }

    jmcf->map_timer.handler = ngx_http_jpki_files_timer;
    jmcf->map_timer.data = jmcf;
    jmcf->map_timer.log = cycle->log;
    jmcf->map_timer.cancelable = 1;
    ngx_add_timer(&jmcf->map_timer, 1000);

    return NGX_OK;
}


static void
ngx_http_jpki_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **site;
    ngx_uint_t                   i;

    sites = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_jpki_module);
    if (sites == NULL) {
        return;
    }

    site = sites->sites.elts;
    for (i = 0; i < sites->sites.nelts; i++) {
        ngx_http_jpki_exit_site(site[i]);
    }
}


static void
ngx_http_jpki_exit_site(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_issuer_t     *iss;
    ngx_http_jpki_map_t        *m;
    ngx_uint_t                  i;

    iss = jmcf->issuers.elts;
    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].crl_pending != NULL) {
            jpki_crl_index_free(iss[i].crl_pending);
            iss[i].crl_pending = NULL;
            iss[i].crl_busy = 0;
            jmcf->crl_npending--;
        }

        if (iss[i].crl != NULL && !ngx_http_jpki_crl_shared(jmcf, &iss[i])) {
            jpki_crl_index_free((jpki_crl_index *) iss[i].crl->cur);
            iss[i].crl->cur = NULL;
        }
    }

    /* a claim kept for an index that waited: another worker loads it */
    (void) ngx_http_jpki_crl_claim(jmcf, 0);

    m = jmcf->map;
    if (m) {
        ngx_free(m->e);
        ngx_free(m);
        jmcf->map = NULL;
    }

    ngx_free(jmcf->shm_handle);

    if (jmcf->outsync_io) {
        ngx_http_jpki_io_detach(jmcf->outsync_io);
        jmcf->outsync_io = NULL;
    }
    jpki_outsync_free(jmcf->outsync);
    jmcf->outsync = NULL;
    ngx_free(jmcf->mirror_handle);
}


/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* The next header of a list walk started with part = &list.part, i = 0;
 * NULL at its end. */
static ngx_table_elt_t *
ngx_http_jpki_header_next(ngx_list_part_t **part, ngx_uint_t *i)
{
    while (*i >= (*part)->nelts) {
        if ((*part)->next == NULL) {
            return NULL;
        }
        *part = (*part)->next;
        *i = 0;
    }

    return &((ngx_table_elt_t *) (*part)->elts)[(*i)++];
}


/* Header names compared as nginx's $http_ variables and CGI-style
 * upstreams (HTTP_X_JPKI_ACCOUNT) see them: case-insensitively, with '_'
 * and '-' alike (underscores_in_headers on lets "X_JPKI_Account" in). */
static ngx_uint_t
ngx_http_jpki_name_eq(u_char *a, u_char *b, size_t len)
{
    u_char  ca, cb;

    while (len--) {
        ca = ngx_tolower(*a);
        cb = ngx_tolower(*b);
        a++;
        b++;

        if (ca == '_') {
            ca = '-';
        }

        if (cb == '_') {
            cb = '-';
        }

        if (ca != cb) {
            return 0;
        }
    }

    return 1;
}


/* The account headers the gate set are known by their value: each value
 * is registered as a no-op cleanup of the request's pool, which internal
 * redirects keep (they clear the module's context) and subrequests share.
 * A client's header can never match. */
static void
ngx_http_jpki_own_header(void *data)
{
    (void) data;
}


static ngx_uint_t
ngx_http_jpki_is_own_header(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_pool_cleanup_t  *c;

    for (c = r->pool->cleanup; c != NULL; c = c->next) {
        if (c->handler == ngx_http_jpki_own_header
            && c->data == h->value.data)
        {
            return 1;
        }
    }

    return 0;
}


/* One of the gate's headers (the account header NAME, any X-JPKI-*), but
 * not the one the gate set (its value is keep, the very string), nor, with
 * keep_own, one a gate of this request set before an internal redirect. */
static ngx_uint_t
ngx_http_jpki_is_gate_header(ngx_http_request_t *r, ngx_table_elt_t *h,
    ngx_str_t *name, ngx_str_t *keep, ngx_uint_t keep_own)
{
    if (keep != NULL && keep->data != NULL && h->value.data == keep->data) {
        return 0;
    }

    if (!((h->key.len == name->len
           && ngx_http_jpki_name_eq(h->key.data, name->data, name->len))
          || (h->key.len >= 7
              && ngx_http_jpki_name_eq(h->key.data, (u_char *) "X-JPKI-", 7))))
    {
        return 0;
    }

    return !(keep_own && ngx_http_jpki_is_own_header(r, h));
}


/* Removes every client copy of the gate's headers (the account header and
 * any X-JPKI-*, in any spelling), rebuilding the list: nginx's list has no
 * removal.  A subrequest's list is a copy of its parent's, sharing its
 * parts: rebuilt, it is the subrequest's own.  With own, it is rebuilt in
 * any case (what the subrequest's gate adds then goes to its list, not to
 * its parent's), and the gate's headers of the parent are left out too;
 * otherwise the header a gate above it set (keep) stays. */
static ngx_int_t
ngx_http_jpki_strip_headers(ngx_http_request_t *r, ngx_str_t *name,
    ngx_uint_t own, ngx_str_t *keep, ngx_uint_t keep_own)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;
    ngx_list_t        list;
    ngx_uint_t        i, found = own;

    if (own) {
        keep = NULL;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    while (!found && (h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (ngx_http_jpki_is_gate_header(r, h, name, keep, keep_own)) {
            found = 1;
        }
    }

    if (!found) {
        return NGX_OK;
    }

    if (ngx_list_init(&list, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (ngx_http_jpki_is_gate_header(r, h, name, keep, keep_own)) {
            if (!own && !ngx_http_jpki_is_own_header(r, h)) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "jpki: client sent gate header \"%V\": "
                              "removed", &h->key);
            }
            continue;
        }
        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *h;
    }

    r->headers_in.headers = list;
    if (list.last == &list.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_set_account_header(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf, ngx_str_t *account)
{
    ngx_table_elt_t     *h;
    ngx_pool_cleanup_t  *cln;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = jlcf->header;
    h->value = *account;
    h->lowcase_key = ngx_pnalloc(r->pool, h->key.len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }
    ngx_strlow(h->lowcase_key, h->key.data, h->key.len);
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }
    cln->handler = ngx_http_jpki_own_header;
    cln->data = h->value.data;

    return NGX_OK;
}


/* The Cookie headers nginx sends upstream (the list headers_in.headers)
 * are the client's (headers_in.cookies, which the gate and $cookie_...
 * read, stay as they came), without the session cookie unless
 * jpki_pass_cookie is on: each stripped by the core's rule, one left empty
 * dropped.  Made again from the client's at every gate (an internal
 * redirect to another gated location, whose jpki_pass_cookie counts). */
static ngx_int_t
ngx_http_jpki_upstream_cookies(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf)
{
    ngx_table_elt_t  **c = r->headers_in.cookies.elts, *h, *nh;
    ngx_list_part_t   *part;
    ngx_list_t         list;
    ngx_str_t         *want;
    ngx_uint_t         i, j, n = r->headers_in.cookies.nelts, k, same;
    size_t             len;

    if (n == 0) {
        return NGX_OK;
    }

    want = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    if (want == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        want[i] = c[i]->value;
        if (jlcf->pass_cookie) {
            continue;
        }
        want[i].data = ngx_pnalloc(r->pool, c[i]->value.len + 1);
        if (want[i].data == NULL) {
            return NGX_ERROR;
        }
        if (jpki_cookie_strip((char *) c[i]->value.data, c[i]->value.len,
                              jlcf->policy->cookie_name,
                              (char *) want[i].data, &len)
            == 0)
        {
            want[i] = c[i]->value;           /* none of ours: as it came */
        } else {
            want[i].len = len;
            want[i].data[len] = '\0';
        }
    }

    /* the list holds these already (no session cookie in the request): as
     * it is */
    part = &r->headers_in.headers.part;
    i = 0;
    same = 1;
    k = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == 6
            && ngx_strncasecmp(h->key.data, (u_char *) "Cookie", 6) == 0)
        {
            while (k < n && want[k].len == 0) {
                k++;
            }
            if (k == n || h->value.data != want[k].data
                || h->value.len != want[k].len)
            {
                same = 0;
            }
            k++;
        }
    }
    while (k < n && want[k].len == 0) {
        k++;
    }
    if (same && k >= n) {
        return NGX_OK;
    }

    /* rebuilt: the wanted Cookie headers where the first one was */
    if (ngx_list_init(&list, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    k = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == 6
            && ngx_strncasecmp(h->key.data, (u_char *) "Cookie", 6) == 0)
        {
            for ( /* void */ ; k < n; k++) {
                if (want[k].len == 0) {
                    continue;
                }
                nh = ngx_list_push(&list);
                if (nh == NULL) {
                    return NGX_ERROR;
                }
                *nh = *c[k];
                nh->value = want[k];
            }
            continue;
        }
        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *h;
    }

    for (j = k; j < n; j++) {          /* none in the list: appended */
        if (want[j].len == 0) {
            continue;
        }
        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *c[j];
        nh->value = want[j];
    }

    r->headers_in.headers = list;
    if (list.last == &list.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_add_out_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;
    size_t            len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    len = ngx_strlen(value);
    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(h->value.data, value, len);
    h->value.len = len;

    return NGX_OK;
}


static int
ngx_http_jpki_wants_json(ngx_http_request_t *r)
{
    ngx_str_t  *a;

    if (r->headers_in.accept == NULL) {
        return 1;
    }

    a = &r->headers_in.accept->value;

    if (ngx_strlcasestrn(a->data, a->data + a->len,
                         (u_char *) "application/json", 16 - 1) != NULL)
    {
        return 1;
    }

    return ngx_strlcasestrn(a->data, a->data + a->len,
                            (u_char *) "text/html", 9 - 1) == NULL;
}


static void
ngx_http_jpki_find_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *val)
{
    ngx_table_elt_t **h;
    ngx_uint_t        i;
    const char       *v;
    size_t            vl;
    u_char            n[65];

    val->len = 0;
    val->data = NULL;

    if (name->len > 64) {
        return;
    }
    ngx_memcpy(n, name->data, name->len);
    n[name->len] = '\0';

    h = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        if (jpki_cookie_find((char *) h[i]->value.data, h[i]->value.len,
                             (char *) n, &v, &vl))
        {
            val->data = (u_char *) v;
            val->len = vl;
            return;
        }
    }
}


static void
ngx_http_jpki_str_of(ngx_str_t *dst, const char *s)
{
    dst->data = (u_char *) s;
    dst->len = s ? ngx_strlen(s) : 0;
}


/* A login leaves the worker's count of logins being verified. */
static void
ngx_http_jpki_uncount(ngx_http_jpki_ctx_t *ctx)
{
    if (ctx->counted) {
        ngx_http_jpki_site(ctx->r)->logins--;
        ctx->counted = 0;
    }
}


static void
ngx_http_jpki_cleanup(void *data)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ngx_http_jpki_uncount(ctx);

    if (ctx->hold.timer_set) {
        ngx_del_timer(&ctx->hold);
    }

    if (ctx->io) {
        ngx_http_jpki_io_detach(ctx->io);
        ctx->io = NULL;
    }

    jpki_txn_free(ctx->txn);
    ctx->txn = NULL;
}


static ngx_http_jpki_ctx_t *
ngx_http_jpki_new_ctx(ngx_http_request_t *r, jpki_op op)
{
    ngx_http_jpki_ctx_t       *ctx;
    ngx_pool_cleanup_t        *cln;
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_str_t                  name;
    size_t                     n;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_jpki_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_jpki_cleanup;
    cln->data = ctx;

    ctx->r = r;
    ctx->op = op;
    name.data = (u_char *) jlcf->policy->cookie_name;
    name.len = ngx_strlen(name.data);
    ngx_http_jpki_find_cookie(r, &name, &ctx->cookie);

    n = ngx_min(r->connection->addr_text.len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(ctx->peer, r->connection->addr_text.data, n);
    ctx->peer[n] = '\0';

    ctx->uri = ngx_pnalloc(r->pool, r->unparsed_uri.len + 1);
    if (ctx->uri == NULL) {
        return NULL;
    }
    (void) ngx_cpystrn(ctx->uri, r->unparsed_uri.data,
                       r->unparsed_uri.len + 1);

    ngx_http_set_ctx(r, ctx, ngx_http_jpki_module);

    return ctx;
}


/* The first request header NAME (NULL: absent). */
static ngx_table_elt_t *
ngx_http_jpki_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len = ngx_strlen(name);
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;

    part = &r->headers_in.headers.part;
    i = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == len
            && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0)
        {
            return h;
        }
    }

    return NULL;
}


/* The host of a request without one (HTTP/1.0 without Host), as $host
 * has it: the server's name; when it has none, or a wildcard or regex one,
 * the address the client connected to ("[v6]" in brackets). */
static ngx_int_t
ngx_http_jpki_own_host(ngx_http_request_t *r, ngx_str_t *host)
{
    ngx_http_core_srv_conf_t  *cscf;
    u_char                     buf[NGX_SOCKADDR_STRLEN];
    ngx_str_t                  addr;
    ngx_uint_t                 v6;

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    if (cscf->server_name.len && cscf->server_name.data[0] != '~'
        && ngx_strlchr(cscf->server_name.data,
                       cscf->server_name.data + cscf->server_name.len, '*')
           == NULL)
    {
        *host = cscf->server_name;
        return NGX_OK;
    }

    addr.data = buf;
    addr.len = sizeof(buf);
    if (ngx_connection_local_sockaddr(r->connection, &addr, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    v6 = r->connection->local_sockaddr->sa_family == AF_INET6;
    host->data = ngx_pnalloc(r->pool, addr.len + 2);
    if (host->data == NULL) {
        return NGX_ERROR;
    }
    host->len = ngx_sprintf(host->data, v6 ? "[%V]" : "%V", &addr)
                - host->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_start(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t         *r = ctx->r;
    ngx_http_jpki_loc_conf_t   *jlcf;
    ngx_http_jpki_main_conf_t  *jmcf;
    jpki_txn_request            rq;
    ngx_str_t                  *ct, own;
    ngx_table_elt_t            *h;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    jmcf = ngx_http_jpki_site(r);

    ngx_memzero(&rq, sizeof(rq));
    rq.op = ctx->op;
    rq.now = ngx_time();
    rq.is_post = r->method == NGX_HTTP_POST;
    /* a subrequest is nobody's navigation: no login page redirect */
    rq.wants_json = r != r->main || ngx_http_jpki_wants_json(r);
    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;
    rq.content_type = ct ? (char *) ct->data : NULL;
    rq.content_type_len = ct ? ct->len : 0;
    rq.body = ctx->body;
    rq.body_len = ctx->body_len;
    rq.cookie = ctx->cookie.len ? (char *) ctx->cookie.data : NULL;
    rq.cookie_len = ctx->cookie.len;
    rq.peer = (char *) ctx->peer;
    rq.uri = (char *) ctx->uri;
    rq.policy = jlcf->policy;
    rq.crl_in_store = jmcf->store == NGX_HTTP_JPKI_STORE_REDIS;

    if (ctx->op == JPKI_OP_LOGIN || ctx->op == JPKI_OP_LOGOUT) {
        /* where the browser says the request comes from */
        h = ngx_http_jpki_header_in(r, "Sec-Fetch-Site");
        if (h) {
            rq.sec_fetch_site = (char *) h->value.data;
            rq.sec_fetch_site_len = h->value.len;
        }
        h = ngx_http_jpki_header_in(r, "Origin");
        if (h) {
            rq.origin = (char *) h->value.data;
            rq.origin_len = h->value.len;
        }
    }

    if (ctx->op == JPKI_OP_CHALLENGE || ctx->op == JPKI_OP_LOGIN
        || ctx->op == JPKI_OP_LOGOUT)
    {
        /* the Host a challenge is bound to (HTTP/2: from :authority);
         * absent (HTTP/1.0): the host nginx found for the request */
        h = r->headers_in.host;
        if (h && h->value.len) {
            rq.host = (char *) h->value.data;
            rq.host_len = h->value.len;

        } else if (r->headers_in.server.len) {
            rq.host = (char *) r->headers_in.server.data;
            rq.host_len = r->headers_in.server.len;

        } else if (ngx_http_jpki_own_host(r, &own) == NGX_OK) {
            rq.host = (char *) own.data;
            rq.host_len = own.len;
        }
    }

    if (jmcf->map_file.len) {
        rq.map_source = JPKI_MAP_CALLBACK;
        rq.map_fn = ngx_http_jpki_map_lookup;
        rq.map_ud = jmcf;
    } else {
        rq.map_source = JPKI_MAP_STORE;
    }

    /* logouts: read at every request in the node's table */
    if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
        rq.local = jmcf->shm;
    } else {
        rq.local = jmcf->mirror;
        rq.shared_store = 1;
        rq.local_since = jpki_outsync_since(jmcf->outsync,
                                            ngx_http_jpki_now_ms());
    }

    if (jpki_txn_new(jmcf->ctx, &rq, &ctx->txn) != JPKI_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Resumes the request after an I/O completion. */
static void
ngx_http_jpki_resume(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t  *r = ctx->r;
    ngx_connection_t    *c = r->connection;

    ctx->waiting = 0;
    ngx_http_jpki_drive(ctx);

    if (ctx->waiting) {
        return;
    }

    if (ctx->op == JPKI_OP_CHECK) {
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);
    } else {
        ngx_http_finalize_request(r, ctx->rc);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_jpki_hold_done(ngx_event_t *ev)
{
    ngx_http_jpki_resume(ev->data);
}


static void
ngx_http_jpki_store_done(void *data, jpki_store_result *res, size_t n)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ctx->io = NULL;
    jpki_txn_feed_store(ctx->txn, res, n);
    ngx_http_jpki_resume(ctx);
}


static void
ngx_http_jpki_ocsp_done(void *data, ngx_int_t status, u_char *body,
    size_t len)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ctx->io = NULL;
    jpki_txn_feed_ocsp(ctx->txn, (int) status, body, len);
    ngx_http_jpki_resume(ctx);
}


static ngx_http_jpki_issuer_t *
ngx_http_jpki_issuer_of(ngx_http_jpki_main_conf_t *jmcf, const jpki_issuer *is)
{
    ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
    ngx_uint_t               i;

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].issuer == is) {
            return &iss[i];
        }
    }

    return NULL;
}


static ngx_int_t ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx);


/* Runs the transaction until it needs real I/O or is done. */
static void
ngx_http_jpki_drive(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t         *r = ctx->r;
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_issuer_t     *iss;
    const jpki_crl_index       *ix;
    const jpki_store_cmd       *cmds;
    const jpki_verdict         *v;
    jpki_store_result           res[JPKI_STORE_BATCH_MAX];
    jpki_rev_info               info;
    jpki_step                   step;
    jpki_err                    e;
    ngx_str_t                   key;
    const uint8_t              *body;
    size_t                      n, i, blen;
    int64_t                     now_ms;

    jmcf = ngx_http_jpki_site(r);

    for ( ;; ) {
        step = jpki_txn_step(ctx->txn);

        switch (step) {

        case JPKI_STEP_STORE:
            cmds = jpki_txn_store_cmds(ctx->txn, &n);

            if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
                if (n > JPKI_STORE_BATCH_MAX) {
                    jpki_txn_feed_store(ctx->txn, NULL, 0);
                    continue;
                }
                now_ms = (int64_t) ngx_time() * 1000;
                jpki_shm_exec_batch(jmcf->shm, cmds, n, now_ms, res);
                jpki_txn_feed_store(ctx->txn, res, n);
                continue;
            }

            if (ngx_http_jpki_redis_exec(jmcf, r->connection->log, cmds, n,
                                         ngx_http_jpki_store_done, ctx,
                                         &ctx->io)
                == NGX_AGAIN)
            {
                ctx->waiting = 1;
                return;
            }
            /* Redis unreachable: an error (store_error), not a timeout */
            if (n > JPKI_STORE_BATCH_MAX) {
                jpki_txn_feed_store(ctx->txn, NULL, 0);
                continue;
            }
            ngx_memzero(res, n * sizeof(jpki_store_result));
            for (i = 0; i < n; i++) {
                res[i].type = JPKI_STORE_R_ERROR;
            }
            jpki_txn_feed_store(ctx->txn, res, n);
            continue;

        case JPKI_STEP_OCSP:
            iss = ngx_http_jpki_issuer_of(jmcf, jpki_txn_issuer(ctx->txn));
            body = jpki_txn_ocsp_body(ctx->txn, &blen);
            /* concurrent logins of a certificate share one query (not
             * with nonces: each query is then its own) */
            key.data = (u_char *) jpki_txn_cert_id(ctx->txn);
            key.len = key.data && !jpki_ctx_get_policy(jmcf->ctx)->ocsp_nonce
                      ? ngx_strlen(key.data) : 0;

            if (iss != NULL && iss->ocsp_url.naddrs > 0
                && ngx_http_jpki_ocsp_post(jmcf, iss, r->connection->log,
                                           &key, body, blen,
                                           ngx_http_jpki_ocsp_done, ctx,
                                           &ctx->io)
                   == NGX_AGAIN)
            {
                ctx->waiting = 1;
                return;
            }
            jpki_txn_feed_ocsp(ctx->txn, 0, NULL, 0);
            continue;

        case JPKI_STEP_CRL:
            iss = ngx_http_jpki_issuer_of(jmcf, jpki_txn_issuer(ctx->txn));
            e = JPKI_ERR_REVOCATION_UNAVAILABLE;
            if (iss != NULL) {
                ix = ngx_http_jpki_crl_read(jmcf, iss);
                if (ix != NULL) {
                    e = jpki_crl_index_lookup(ix, jpki_txn_cert_id(ctx->txn),
                                              ngx_time(),
                                              (unsigned) jmcf->crl_grace,
                                              &info);
                }
                ngx_http_jpki_crl_done(jmcf);
            }
            jpki_txn_feed_crl(ctx->txn, e, e == JPKI_OK ? &info : NULL);
            continue;

        default:
            ngx_http_jpki_uncount(ctx);

            /* a throttled login's answer is held a while (a timer costs the
             * worker nothing): a flood on few connections slows down */
            v = jpki_txn_verdict(ctx->txn);
            if (v != NULL && v->delay_ms && !ctx->held && r == r->main) {
                ctx->held = 1;
                ctx->hold.handler = ngx_http_jpki_hold_done;
                ctx->hold.data = ctx;
                ctx->hold.log = r->connection->log;
                ngx_add_timer(&ctx->hold, v->delay_ms);
                ctx->waiting = 1;
                return;
            }

            /* done first: the variables are read while the verdict sends
             * the answer (add_header ... always, $jpki_status) */
            ctx->done = 1;
            ctx->rc = ngx_http_jpki_verdict(ctx);
            return;
        }
    }
}


static ngx_int_t
ngx_http_jpki_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *body, size_t len)
{
    ngx_buf_t          *b;
    ngx_chain_t         out;
    ngx_int_t           rc;
    const jpki_header  *h;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    for (h = jpki_answer_headers; h->name != NULL; h++) {
        if (ngx_http_jpki_add_out_header(r, h->name, h->value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* Applies the verdict: returns the access-phase code or, for endpoints,
 * what to finalize the request with. */
static ngx_int_t
ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t        *r = ctx->r;
    ngx_http_request_t        *hr;
    ngx_http_jpki_loc_conf_t  *jlcf;
    const jpki_verdict        *v;
    const jpki_header         *h;
    ngx_str_t                  account;
    ngx_int_t                  rc;
    u_char                     retry[NGX_INT_T_LEN + 1];

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    v = jpki_txn_verdict(ctx->txn);

    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->audit) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "jpki audit: %s", v->audit);
    }

    /* the verdict's strings live as long as the transaction, which is
     * freed with the request's pool: the variables may point at them */
    ngx_http_jpki_str_of(&ctx->status, v->reason);
    ngx_http_jpki_str_of(&ctx->account, v->account);
    ngx_http_jpki_str_of(&ctx->cert_id, v->cert_id);
    ngx_http_jpki_str_of(&ctx->set_cookie, v->set_cookie);

    ctx->auth_time = (time_t) v->auth_time;

    /* nginx never sends a subrequest's headers (auth_request and SSI take
     * its status only): the cookie its check set (resealed: the idle
     * deadline slid, a re-check done; cleared: a dead session) goes with
     * the main request's answer, while that one is still to be sent (not
     * after an SSI page's header) */
    hr = (r != r->main && !r->main->header_sent) ? r->main : r;

    if (v->set_cookie
        && ngx_http_jpki_add_out_header(hr, "Set-Cookie", v->set_cookie)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->location
        && ngx_http_jpki_add_out_header(r, "Location", v->location)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->retry_after) {
        ngx_sprintf(retry, "%ui%Z", (ngx_uint_t) v->retry_after);
        if (ngx_http_jpki_add_out_header(r, "Retry-After", (char *) retry)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->op == JPKI_OP_CHECK && v->http_status == 200) {
        account = ctx->account;
        if (ngx_http_jpki_set_account_header(r, jlcf, &account) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        /* the session cookie (a bearer token) stays out of what goes
         * upstream; with auth_request, the main request goes there too */
        if (ngx_http_jpki_upstream_cookies(r, jlcf) != NGX_OK
            || (hr != r && ngx_http_jpki_upstream_cookies(hr, jlcf) != NGX_OK))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        /* a session sealed again: no shared cache keeps that answer */
        for (h = v->set_cookie ? jpki_pass_cookie_headers : NULL;
             h != NULL && h->name != NULL; h++)
        {
            if (ngx_http_jpki_add_out_header(hr, h->name, h->value)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        ctx->pass = 1;
        return NGX_OK;
    }

    /* refusals of the gate and endpoint answers are ours to send; a
     * refused request's body is never read by anyone else: discard it, or
     * on a keepalive connection it would be parsed as the next request */
    if (ctx->op == JPKI_OP_CHECK) {
        if (r != r->main) {
            /* a refused subrequest: its status for the request that made
             * it (auth_request denies, an SSI include shows nothing), no
             * body to be included in a page */
            return ngx_http_jpki_send_json(r, v->http_status, NULL, 0);
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_jpki_send_json(r, v->http_status, v->body, v->body_len);
}


/* ---- the gate ---------------------------------------------------- */

/* The check a request carries the account of: its own gate's when it let
 * it through, else the nearest ancestor's that did (a subrequest's header
 * list is a copy of its parent's, with the header that gate set); NULL:
 * none. */
static ngx_http_jpki_ctx_t *
ngx_http_jpki_passed(ngx_http_request_t *r)
{
    ngx_http_jpki_ctx_t  *ctx;

    for ( /* void */ ; r != NULL; r = r->parent) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

        if (ctx != NULL && ctx->pass) {
            return ctx;
        }
    }

    return NULL;
}


/* The location runs the gate (not the endpoints' location). */
static ngx_uint_t
ngx_http_jpki_gated(ngx_http_jpki_loc_conf_t *jlcf)
{
    return jlcf->enable && !jlcf->endpoints && jlcf->policy != NULL;
}


/* Checks the request's session; a refusal is answered here (NGX_DONE).
 * NGX_OK: it passes, with the account header set; NGX_AGAIN: the check
 * waits on I/O and resumes the phases when it ends; NGX_DECLINED: no gate
 * here. */
static ngx_int_t
ngx_http_jpki_gate(ngx_http_request_t *r)
{
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_http_jpki_ctx_t       *ctx;
    ngx_int_t                  rc;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

    if (ctx != NULL) {
        if (ctx->op != JPKI_OP_CHECK || !ctx->done) {
            return ctx->op == JPKI_OP_CHECK ? NGX_AGAIN : NGX_DECLINED;
        }
        rc = ctx->rc;
        if (!ctx->pass) {
            /* the response was sent by the verdict (rc: what sending it
             * returned, NGX_OK included) or rc is an error status */
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }
        return NGX_OK;
    }

    if (!ngx_http_jpki_gated(jlcf)) {
        return NGX_DECLINED;
    }

    /* a subrequest gets a header list of its own, without the gate's
     * headers of its parent: the account it passes with is its own */
    if (r != r->main
        && ngx_http_jpki_strip_headers(r, &jlcf->header, 1, NULL, 0)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_jpki_new_ctx(r, JPKI_OP_CHECK);
    if (ctx == NULL || ngx_http_jpki_start(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_jpki_drive(ctx);

    if (ctx->waiting) {
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_AGAIN;
    }

    if (!ctx->pass) {
        ngx_http_finalize_request(r, ctx->rc);
        return NGX_DONE;
    }

    return NGX_OK;
}


/* The access phase: the gate of main requests (nginx runs no access
 * handler for subrequests). */
static ngx_int_t
ngx_http_jpki_access_handler(ngx_http_request_t *r)
{
    return ngx_http_jpki_gate(r);
}


/* The preaccess phase runs for every request, subrequests included, and
 * before any access module could grant access first (satisfy any): client
 * copies of the gate's headers are removed here, so that they never reach
 * an upstream.  A subrequest (SSI include, auth_request...) into a gated
 * location is gated here: the access phase is skipped for it
 * (ngx_http_core_access_phase), and it would otherwise pass unchecked. */
static ngx_int_t
ngx_http_jpki_preaccess_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_http_jpki_ctx_t       *pctx;
    ngx_str_t                 *keep;
    ngx_int_t                  rc;

    if (r != r->main) {
        rc = ngx_http_jpki_gate(r);

        if (rc != NGX_DECLINED) {
            /* passed: the other preaccess handlers still run (NGX_OK
             * would skip them) */
            return rc == NGX_OK ? NGX_DECLINED : rc;
        }
    }

    /* a subrequest outside the gate keeps the account header the gate of
     * the nearest request above it that passed one set (the main
     * request's, or a gated subrequest's: an include in an include), not
     * client copies (one made before its main request got here, in the
     * rewrite phase, has them) */
    pctx = r != r->main ? ngx_http_jpki_passed(r->parent) : NULL;
    keep = pctx != NULL ? &pctx->account : NULL;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);

    /* after an internal redirect (try_files, error_page) the header the
     * gate set stays in a location without the gate; a gated location's
     * gate sets it again */
    if (ngx_http_jpki_strip_headers(r, &jlcf->header, 0, keep,
                                    !ngx_http_jpki_gated(jlcf))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* ---- endpoints (content handler) --------------------------------- */

static void
ngx_http_jpki_body_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_ctx_t        *ctx;
    ngx_http_jpki_loc_conf_t   *jlcf;
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_chain_t                *cl;
    size_t                      len, jl;
    u_char                     *p;
    char                        json[128];

    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

    len = 0;
    if (r->request_body && !r->request_body->temp_file) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (r->request_body && r->request_body->temp_file) {
        ctx->body = NULL;
        ctx->body_len = JPKI_BODY_MAX + 1;        /* too large */

    } else if (len > 0) {
        ctx->body = ngx_pnalloc(r->pool, len);
        if (ctx->body == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        p = ctx->body;
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            /* a chunked body ends with an empty buffer (pos NULL) */
            if (cl->buf->last > cl->buf->pos) {
                p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
            }
        }
        ctx->body_len = len;
    }

    /* a cap on the logins a worker verifies at once (the location's
     * jpki_throttle concurrency=): a flood cannot take the worker from the
     * gated requests */
    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    jmcf = ngx_http_jpki_site(r);
    if (ctx->op == JPKI_OP_LOGIN && jlcf->policy->login_concurrency
        && jmcf->logins >= jlcf->policy->login_concurrency)
    {
        jl = jpki_error_json(JPKI_ERR_BUSY, json, sizeof(json));
        if (ngx_http_jpki_add_out_header(r, "Retry-After", "1") != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        ngx_http_finalize_request(r,
            ngx_http_jpki_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE, json,
                                    jl));
        return;
    }

    if (ngx_http_jpki_start(ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->op == JPKI_OP_LOGIN) {
        jmcf->logins++;
        ctx->counted = 1;
    }

    ngx_http_jpki_drive(ctx);

    if (!ctx->waiting) {
        ngx_http_finalize_request(r, ctx->rc);
    }
}


static ngx_int_t
ngx_http_jpki_endpoint_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_ctx_t       *ctx;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_str_t                  tail;
    jpki_op                    op;
    ngx_int_t                  rc;
    char                       json[128];
    size_t                     jl;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* the endpoint is the last path segment under the location */
    tail = r->uri;
    while (tail.len && tail.data[tail.len - 1] == '/') {
        tail.len--;
    }
    while (tail.len && tail.data[0] != '/') {
        tail.data++;
        tail.len--;
    }
    {
        u_char  *slash = tail.data + tail.len;
        while (slash > tail.data && slash[-1] != '/') {
            slash--;
        }
        tail.len -= slash - tail.data;
        tail.data = slash;
    }

    if (tail.len == 9 && ngx_strncmp(tail.data, "challenge", 9) == 0) {
        op = JPKI_OP_CHALLENGE;
    } else if (tail.len == 5 && ngx_strncmp(tail.data, "login", 5) == 0) {
        op = JPKI_OP_LOGIN;
    } else if (tail.len == 6 && ngx_strncmp(tail.data, "logout", 6) == 0) {
        op = JPKI_OP_LOGOUT;
    } else if (tail.len == 6 && ngx_strncmp(tail.data, "status", 6) == 0) {
        op = JPKI_OP_STATUS;
    } else {
        ngx_http_discard_request_body(r);
        jl = jpki_error_json(JPKI_ERR_NOT_FOUND, json, sizeof(json));
        return ngx_http_jpki_send_json(r, NGX_HTTP_NOT_FOUND, json, jl);
    }

    ctx = ngx_http_jpki_new_ctx(r, op);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (op != JPKI_OP_LOGIN || r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
        r->main->count++;                 /* finalized by the body handler */
        ngx_http_jpki_body_handler(r);
        return NGX_DONE;
    }

    if (r->headers_in.content_length_n > JPKI_BODY_MAX
        || r->headers_in.content_length_n
           > (off_t) clcf->client_body_buffer_size)
    {
        ngx_http_discard_request_body(r);
        jl = jpki_error_json(JPKI_ERR_TOO_LARGE, json, sizeof(json));
        return ngx_http_jpki_send_json(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       json, jl);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_jpki_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static char *
ngx_http_jpki_endpoints(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_http_core_loc_conf_t  *clcf;

    if (jlcf->endpoints != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    jlcf->endpoints = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_jpki_endpoint_handler;

    return NGX_CONF_OK;
}


/* ---- health (JSON for monitoring) -------------------------------- */

typedef struct {
    ngx_http_request_t        *r;
    ngx_http_jpki_io_t        *io;
    u_char                    *crls;          /* JSON array text */
    size_t                     crls_len;
    ngx_uint_t                 crls_ok;
} ngx_http_jpki_health_ctx_t;


static size_t
ngx_http_jpki_health_crls(ngx_http_request_t *r, u_char *buf, size_t max,
    ngx_uint_t *all_ok)
{
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_issuer_t     *iss;
    const jpki_crl_index       *ix;
    const jpki_crl_info        *ci;
    jpki_crl_info               info;
    ngx_uint_t                  i, fresh;
    u_char                     *p = buf, *last = buf + max;
    time_t                      now = ngx_time();
    int64_t                     stale_at;

    jmcf = ngx_http_jpki_site(r);
    iss = jmcf->issuers.elts;
    *all_ok = 1;

    p = ngx_slprintf(p, last, "[");

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].crl_file.len == 0) {
            continue;
        }

        p = ngx_slprintf(p, last, "%s{\"issuer\":\"%V\"", p[-1] == '[' ? ""
                                                                  : ",",
                         &iss[i].name);

        ix = ngx_http_jpki_crl_read(jmcf, &iss[i]);
        if (ix != NULL) {
            info = *jpki_crl_index_info(ix);
        }
        ngx_http_jpki_crl_done(jmcf);

        if (ix == NULL) {
            *all_ok = 0;
            p = ngx_slprintf(p, last, ",\"loaded\":false,\"error\":\"%s\"}",
                             jpki_reason(iss[i].crl->error));
            continue;
        }

        ci = &info;
        stale_at = jpki_crl_stale_after(ci, (unsigned) jmcf->crl_grace,
                                        jpki_ctx_get_policy(jmcf->ctx)
                                            ->clock_skew);
        fresh = (int64_t) now <= stale_at;
        if (!fresh || iss[i].crl->error != JPKI_OK) {
            *all_ok = 0;
        }

        p = ngx_slprintf(p, last, ",\"loaded\":true,\"this_update\":%L,"
                         "\"next_update\":%L,\"age\":%L,\"entries\":%uL,"
                         "\"crl_number\":%L,\"fresh\":%s,\"stale_at\":%L,"
                         "\"loaded_at\":%T,\"last_load\":\"%s\"}",
                         (int64_t) ci->this_update, (int64_t) ci->next_update,
                         (int64_t) now - ci->this_update,
                         (uint64_t) ci->entries, (int64_t) ci->crl_number,
                         fresh ? "true" : "false",
                         stale_at == INT64_MAX ? (int64_t) 0 : stale_at,
                         iss[i].crl->loaded, jpki_reason(iss[i].crl->error));
    }

    p = ngx_slprintf(p, last, "]");

    return p - buf;
}


static void
ngx_http_jpki_health_send(ngx_http_jpki_health_ctx_t *hc,
    jpki_store_rtype store)
{
    ngx_http_request_t         *r = hc->r;
    ngx_http_jpki_main_conf_t  *jmcf;
    u_char                     *body, *p;
    size_t                      len;
    ngx_uint_t                  ok, store_ok;

    jmcf = ngx_http_jpki_site(r);
    store_ok = store != JPKI_STORE_R_ERROR && store != JPKI_STORE_R_FULL;
    ok = store_ok && hc->crls_ok;
    len = hc->crls_len + 256;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_slprintf(body, body + len, "{\"status\":\"%s\",\"time\":%T,"
                     "\"store\":{\"type\":\"%s\",\"ok\":%s%s},"
                     "\"crls\":%*s}",
                     ok ? "ok" : "degraded", ngx_time(),
                     jmcf->store == NGX_HTTP_JPKI_STORE_SHM ? "shm" : "redis",
                     store_ok ? "true" : "false",
                     store == JPKI_STORE_R_FULL ? ",\"error\":\"store_full\""
                     : store_ok ? "" : ",\"error\":\"store_error\"",
                     hc->crls_len, hc->crls);

    ngx_http_finalize_request(r, ngx_http_jpki_send_json(r,
                              ok ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE,
                              (char *) body, p - body));
}


static void
ngx_http_jpki_health_store_done(void *data, jpki_store_result *res, size_t n)
{
    ngx_http_jpki_health_ctx_t  *hc = data;
    ngx_connection_t            *c = hc->r->connection;

    hc->io = NULL;
    ngx_http_jpki_health_send(hc, res != NULL && n == 1 ? res[0].type
                                  : JPKI_STORE_R_ERROR);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_jpki_health_cleanup(void *data)
{
    ngx_http_jpki_health_ctx_t  *hc = data;

    if (hc->io) {
        ngx_http_jpki_io_detach(hc->io);
        hc->io = NULL;
    }
}


static ngx_int_t
ngx_http_jpki_health_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_main_conf_t   *jmcf;
    ngx_http_jpki_health_ctx_t  *hc;
    ngx_pool_cleanup_t          *cln;
    jpki_store_cmd               cmd;
    ngx_int_t                    rc;
    size_t                       max;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    jmcf = ngx_http_jpki_site(r);

    hc = ngx_pcalloc(r->pool, sizeof(ngx_http_jpki_health_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    max = 512 * (jmcf->issuers.nelts + 1);
    if (hc == NULL || cln == NULL
        || (hc->crls = ngx_pnalloc(r->pool, max)) == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_jpki_health_cleanup;
    cln->data = hc;
    hc->r = r;
    hc->crls_len = ngx_http_jpki_health_crls(r, hc->crls, max, &hc->crls_ok);

    r->main->count++;

    if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
        ngx_http_jpki_health_send(hc, jmcf->shm == NULL ? JPKI_STORE_R_ERROR
                                  : jpki_shm_is_full(jmcf->shm,
                                                     ngx_http_jpki_now_ms())
                                  ? JPKI_STORE_R_FULL : JPKI_STORE_R_INT);
        return NGX_DONE;
    }

    /* a write: Redis at maxmemory refuses it (store_full) */
    ngx_memzero(&cmd, sizeof(cmd));
    cmd.op = JPKI_STORE_SET;
    cmd.keylen = ngx_sprintf((u_char *) cmd.key, "%shealth",
                             JPKI_STORE_PREFIX) - (u_char *) cmd.key;
    cmd.val[0] = '1';
    cmd.vallen = 1;
    cmd.ttl_ms = 10000;

    if (ngx_http_jpki_redis_exec(jmcf, r->connection->log, &cmd, 1,
                                 ngx_http_jpki_health_store_done, hc, &hc->io)
        != NGX_AGAIN)
    {
        ngx_http_jpki_health_send(hc, JPKI_STORE_R_ERROR);
    }

    return NGX_DONE;
}


static char *
ngx_http_jpki_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t   *jlcf = conf;
    ngx_http_core_loc_conf_t   *clcf;

    jlcf->health = 1;
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_jpki_health_handler;

    return NGX_CONF_OK;
}


/* ---- variables --------------------------------------------------- */

static ngx_int_t
ngx_http_jpki_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_jpki_ctx_t  *ctx;
    ngx_str_t            *s = NULL;
    u_char               *p;

    /* the request's own check (a gated subrequest's, whatever its
     * verdict), else the one whose account it carries: the nearest
     * request above it whose gate let it through */
    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);
    if (ctx == NULL) {
        ctx = ngx_http_jpki_passed(r->parent);
    }

    if (ctx == NULL || !ctx->done) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {
    case 0:
        s = &ctx->account;
        break;
    case 1:
        s = &ctx->cert_id;
        break;
    case 2:
        if (ctx->auth_time == 0) {
            v->not_found = 1;
            return NGX_OK;
        }
        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }
        v->len = ngx_sprintf(p, "%T", ctx->auth_time) - p;
        v->data = p;
        v->valid = 1;
        v->no_cacheable = 0;
        v->not_found = 0;
        return NGX_OK;
    case 4:
        s = &ctx->set_cookie;
        break;
    default:
        s = &ctx->status;
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_add_variables(ngx_conf_t *cf)
{
    static ngx_str_t    names[] = {
        ngx_string("jpki_account"), ngx_string("jpki_cert_id"),
        ngx_string("jpki_auth_time"), ngx_string("jpki_status"),
        ngx_string("jpki_set_cookie")
    };
    ngx_http_variable_t  *var;
    ngx_uint_t            i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        var = ngx_http_add_variable(cf, &names[i], NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }
        var->get_handler = ngx_http_jpki_variable;
        var->data = i;
    }

    return NGX_OK;
}


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
