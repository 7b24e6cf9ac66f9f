/*
 * ngx_http_jpki_conf.c - the directives, read by the core (common/
 * siteconf.h, conf.h): every site directive through one setter, the
 * location values and throttle, the location configuration's create and
 * merge.  nginx's part is what only nginx does: shared zones, resolving
 * the addresses, its messages with file and line.
 */

#include "ngx_http_jpki.h"
#include "conf.h"
#include "siteconf.h"
#include "page.h"
#include "admin.h"


/* The core's sentence at the directive's line, the way nginx says its own:
 * ""<name>" directive must be ...", ""<name>" directive: invalid ...". */
static char *
ngx_http_jpki_conf_fail(ngx_conf_t *cf, ngx_str_t *name, const char *why)
{
    char  who[80], msg[600];

    ngx_snprintf((u_char *) who, sizeof(who) - 1, "\"%V\" directive%Z",
                 name);
    jpki_conf_message(msg, sizeof(msg), who, why);
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", msg);

    return NGX_CONF_ERROR;
}


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


/* A path of a site directive, from nginx's prefix. */
static const char *
ngx_http_jpki_conf_abs(void *ud, const char *path)
{
    ngx_conf_t  *cf = ud;
    ngx_str_t    s;

    s.len = ngx_strlen(path);
    s.data = ngx_pnalloc(cf->pool, s.len + 1);
    if (s.data == NULL) {
        return NULL;
    }
    (void) ngx_cpystrn(s.data, (u_char *) path, s.len + 1);

    return ngx_conf_full_name(cf->cycle, &s, 1) == NGX_OK
           ? (const char *) s.data : NULL;
}


static void
ngx_http_jpki_conf_warn(void *ud, const char *msg)
{
    ngx_conf_log_error(NGX_LOG_WARN, (ngx_conf_t *) ud, 0, "jpki: %s", msg);
}


static char *ngx_http_jpki_store_conf(ngx_conf_t *cf,
    ngx_http_jpki_main_conf_t *jmcf);
static char *ngx_http_jpki_ocsp_conf(ngx_conf_t *cf,
    ngx_http_jpki_main_conf_t *jmcf);


/* A site directive: the core's (cmd->offset: its jpki_sc_directive, or
 * NGX_HTTP_JPKI_VALUE + its jpki_directive_id), then nginx's part: the
 * zones, the addresses resolved. */
char *
ngx_http_jpki_conf_site(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts, arg;
    const char                 *argv[64];
    ngx_uint_t                  i;
    jpki_sc_env                 env;
    jpki_err                    e;
    char                        err[512];

    env.abs = ngx_http_jpki_conf_abs;
    env.warn = ngx_http_jpki_conf_warn;
    env.ud = cf;
    env.name = (const char *) cmd->name.data;
    env.file = (const char *) cf->conf_file->file.name.data;
    env.line = (unsigned) cf->conf_file->line;

    if (cmd->offset >= NGX_HTTP_JPKI_VALUE) {
        if (ngx_http_jpki_join_args(cf, &arg) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
        e = jpki_siteconf_value(jmcf->sc, (jpki_directive_id)
                                (cmd->offset - NGX_HTTP_JPKI_VALUE),
                                (char *) arg.data, &env, err, sizeof(err));
    } else {
        /* the words after the name, NUL-terminated by nginx */
        if (cf->args->nelts > 64) {
            return "has more than 63 parameters";
        }
        for (i = 1; i < cf->args->nelts; i++) {
            argv[i - 1] = (const char *) value[i].data;
        }
        e = jpki_siteconf_set(jmcf->sc, (jpki_sc_directive) cmd->offset,
                              (int) i - 1, argv, &env, err, sizeof(err));
    }

    if (e != JPKI_OK) {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    switch (cmd->offset) {
    case JPKI_SC_STORE:
        return ngx_http_jpki_store_conf(cf, jmcf);
    case JPKI_SC_ISSUER:
        return ngx_http_jpki_ocsp_conf(cf, jmcf);
    case JPKI_SC_CRL_ZONE:
        return ngx_http_jpki_crl_zone(cf, jmcf);
    default:
        return NGX_CONF_OK;
    }
}


/* A location value of the core's table (cmd->offset: its
 * jpki_directive_id); several words are joined by blanks
 * (jpki_trusted_origins). */
char *
ngx_http_jpki_conf_loc(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                  arg;
    char                       err[256];

    if (ngx_http_jpki_join_args(cf, &arg) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (jpki_conf_set(&jlcf->lc.values, (jpki_directive_id) cmd->offset,
                      (char *) arg.data, err, sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    return NGX_CONF_OK;
}


/* ---- jpki_store --------------------------------------------------- */

ngx_int_t
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


static ngx_shm_zone_t *
ngx_http_jpki_conf_zone(ngx_conf_t *cf, const char *name, size_t size)
{
    ngx_str_t        s;
    ngx_shm_zone_t  *zone;

    s.len = ngx_strlen(name);
    s.data = ngx_pnalloc(cf->pool, s.len + 1);
    if (s.data == NULL) {
        return NULL;
    }
    (void) ngx_cpystrn(s.data, (u_char *) name, s.len + 1);

    zone = ngx_shared_memory_add(cf, &s, size, &ngx_http_jpki_module);
    if (zone != NULL) {
        zone->init = ngx_http_jpki_init_zone;
    }

    return zone;
}


/* The sentinels' addresses (sentinel=), resolved now: the primary's is
 * an IP address they send (common/sentinel.c), no name to resolve. */
static ngx_int_t
ngx_http_jpki_sentinels_conf(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_spec *spec)
{
    ngx_url_t   *u;
    ngx_uint_t   i;
    char         buf[300];

    jmcf->sentinels = ngx_pcalloc(cf->pool,
                                  spec->n_sentinels * sizeof(ngx_url_t));
    if (jmcf->sentinels == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < spec->n_sentinels; i++) {
        u = &jmcf->sentinels[i];
        u->url.len = jpki_conf_sentinel_where(spec, i, buf, sizeof(buf));
        u->url.data = ngx_pnalloc(cf->pool, u->url.len);
        if (u->url.data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(u->url.data, buf, u->url.len);
        u->default_port = JPKI_CONF_SENTINEL_PORT;

        if (ngx_parse_url(cf->pool, u) != NGX_OK || u->naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: sentinel "
                               "address \"%V\": %s", &u->url,
                               u->err ? u->err : "does not resolve");
            return NGX_ERROR;
        }
    }

    jmcf->nsentinels = spec->n_sentinels;
    return NGX_OK;
}


/* The store's zones: the embedded store's, or Redis's address resolved
 * and the node's table of logouts (one per Redis server and db, shared by
 * the sites on it: a marker is keyed by a cert_id of one secret). */
static char *
ngx_http_jpki_store_conf(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    const jpki_store_spec  *spec = jpki_siteconf_store(jmcf->sc);
    u_char                  name[300];

    if (spec->kind == JPKI_STORE_KIND_SHM) {
        jmcf->shm_zone = ngx_http_jpki_conf_zone(cf, spec->zone, spec->size);
        return jmcf->shm_zone != NULL ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

#if !(NGX_SSL)
    if (spec->tls) {
        return "has tls=on, which needs nginx built with SSL";
    }
#endif

    if (spec->n_sentinels > 0) {
        if (ngx_http_jpki_sentinels_conf(cf, jmcf, spec) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
        goto mirror;
    }

    jmcf->redis.url.len = ngx_strlen(spec->addr);
    jmcf->redis.url.data = (u_char *) spec->addr;
    jmcf->redis.url.data = ngx_pstrdup(cf->pool, &jmcf->redis.url);
    jmcf->redis.default_port = JPKI_CONF_REDIS_PORT;

    if (jmcf->redis.url.data == NULL
        || ngx_parse_url(cf->pool, &jmcf->redis) != NGX_OK
        || jmcf->redis.naddrs == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: redis address "
                           "\"%s\": %s", spec->addr,
                           jmcf->redis.err ? jmcf->redis.err
                                           : "does not resolve");
        return NGX_CONF_ERROR;
    }

mirror:

    ngx_snprintf(name, sizeof(name) - 1, "jpki_logouts:%s:%d%Z", spec->addr,
                 spec->db);
    jmcf->mirror_zone = ngx_http_jpki_conf_zone(cf, (char *) name,
                                                spec->mirror);

    return jmcf->mirror_zone != NULL ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* The OCSP responder of the issuer just written, resolved now (its host,
 * port, path and Host header are the core's: jpki_conf_issuer_parse). */
static char *
ngx_http_jpki_ocsp_conf(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    const jpki_conf_issuer  *spec;
    ngx_url_t               *u;
    ngx_uint_t               i;

    i = jpki_siteconf_issuers(jmcf->sc) - 1;
    spec = jpki_siteconf_issuer(jmcf->sc, i);
    if (spec->ocsp == NULL) {
        return NGX_CONF_OK;
    }

    u = ngx_pcalloc(cf->pool, sizeof(ngx_url_t));
    if (u == NULL) {
        return NGX_CONF_ERROR;
    }
    u->url.len = ngx_strlen(spec->ocsp_host_header);
    u->url.data = ngx_pstrdup(cf->pool, &(ngx_str_t) { u->url.len,
                                    (u_char *) spec->ocsp_host_header });
    u->default_port = (in_port_t) spec->ocsp_port;

    if (u->url.data == NULL || ngx_parse_url(cf->pool, u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: OCSP URL \"%s\": %s", spec->ocsp,
                           u->err ? u->err : "invalid");
        return NGX_CONF_ERROR;
    }

    if (u->naddrs == 0) {
        return "has an OCSP URL whose host does not resolve";
    }

    jmcf->ocsp[i] = u;

    return NGX_CONF_OK;
}


/* ---- location ----------------------------------------------------- */

static void
ngx_http_jpki_tmpl_cleanup(void *data)
{
    jpki_page_tmpl_free(data);
}


/* jpki_admin_token_file FILE: the admin API's bearer token, read and
 * checked now (only its hash is kept). */
char *
ngx_http_jpki_admin_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                 *value, path;
    char                       err[512];

    value = cf->args->elts;
    path = value[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (jpki_locconf_admin_token(&jlcf->lc, (char *) path.data, err,
                                 sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    return NGX_CONF_OK;
}


/* jpki_login_template FILE: the login page's template, read and checked
 * now (relative to the configuration's prefix), freed with the
 * configuration. */
char *
ngx_http_jpki_login_template(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                 *value, path;
    ngx_pool_cleanup_t        *cln;
    jpki_page_tmpl            *t;
    char                       err[512];

    value = cf->args->elts;
    path = value[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jpki_locconf_template(&jlcf->lc, (char *) path.data, &t, err,
                              sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    cln->handler = ngx_http_jpki_tmpl_cleanup;
    cln->data = t;

    return NGX_CONF_OK;
}


static void
ngx_http_jpki_allow_cleanup(void *data)
{
    jpki_allow_free(data);
}


/* jpki_allow_accounts ID...; jpki_allow_issuers NAME... (cmd->offset 1):
 * the location's allow-lists, parsed by the core (common/allow.h), freed
 * with the configuration.  The issuer names are checked against the
 * site's issuers when the location is merged. */
char *
ngx_http_jpki_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                 *value = cf->args->elts;
    ngx_pool_cleanup_t        *cln;
    jpki_allow                *a;
    const char               **argv;
    ngx_uint_t                 i;
    char                       err[512];

    argv = ngx_palloc(cf->temp_pool,
                      cf->args->nelts * sizeof(const char *));
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (argv == NULL || cln == NULL) {
        return NGX_CONF_ERROR;
    }

    /* nginx's words are NUL-terminated; one with a NUL in it is cut
     * short there and refused by the core as another word */
    for (i = 1; i < cf->args->nelts; i++) {
        argv[i - 1] = (const char *) value[i].data;
    }

    if (jpki_locconf_allow(&jlcf->lc, (int) cmd->offset,
                           (int) cf->args->nelts - 1, argv, &a, err,
                           sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    cln->handler = ngx_http_jpki_allow_cleanup;
    cln->data = a;

    return NGX_CONF_OK;
}


/* jpki_throttle off | [window=T] [cert=N] [addr=N] [logins=N]
 *               [concurrency=N]: the grammar is the core's. */
char *
ngx_http_jpki_throttle(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;
    ngx_str_t                  arg;
    char                       err[256];

    if (ngx_http_jpki_join_args(cf, &arg) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (jpki_locconf_throttle(&jlcf->lc, (char *) arg.data, err, sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    return NGX_CONF_OK;
}


/* jpki_endpoints [on|off], jpki_health [on|off]: *flag, whether the
 * location answers (the core's flag grammar; no argument is on). */
char *
ngx_http_jpki_conf_flag(ngx_conf_t *cf, ngx_command_t *cmd, ngx_flag_t *flag)
{
    ngx_str_t  *value = cf->args->elts;
    char        err[128];
    int         on;

    if (*flag != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (jpki_conf_flag(cf->args->nelts > 1 ? (char *) value[1].data : NULL,
                       &on, err, sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    *flag = on;

    return NGX_CONF_OK;
}


void *
ngx_http_jpki_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_loc_conf_t  *jlcf;

    jlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_jpki_loc_conf_t));
    if (jlcf == NULL) {
        return NULL;
    }

    jlcf->enable = NGX_CONF_UNSET;
    jlcf->endpoints = NGX_CONF_UNSET;
    jlcf->health = NGX_CONF_UNSET;
    jlcf->admin = NGX_CONF_UNSET;
    jlcf->metrics = NGX_CONF_UNSET;
    jpki_locconf_init(&jlcf->lc);

    return jlcf;
}


static ngx_str_t  ngx_http_jpki_allow_issuers_name =
    ngx_string("jpki_allow_issuers");


/* The location's policy: the site's, with the location's values and
 * throttle (merged down from http and server) written over it. */
static char *
ngx_http_jpki_loc_policy(ngx_conf_t *cf, ngx_http_jpki_loc_conf_t *conf,
    ngx_http_jpki_main_conf_t *jmcf)
{
    char  err[256];

    conf->policy = ngx_palloc(cf->pool, sizeof(jpki_policy));
    if (conf->policy == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jpki_locconf_policy(&conf->lc, jpki_ctx_get_policy(jmcf->ctx),
                            conf->policy, err, sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    /* the issuer names against this server's site */
    if (jpki_locconf_resolve(&conf->lc, jmcf->ctx, err, sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &ngx_http_jpki_allow_issuers_name,
                                       err);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_jpki_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_jpki_loc_conf_t   *prev = parent;
    ngx_http_jpki_loc_conf_t   *conf = child;
    ngx_http_jpki_main_conf_t  *jmcf;
    char                        err[256];

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->endpoints, prev->endpoints, 0);
    ngx_conf_init_value(conf->health, 0);     /* where it is written */
    ngx_conf_init_value(conf->admin, 0);
    ngx_conf_init_value(conf->metrics, 0);
    jpki_locconf_merge(&conf->lc, &prev->lc);

    conf->header.data = (u_char *) jpki_locconf_header(&conf->lc);
    conf->header.len = ngx_strlen(conf->header.data);
    conf->pass_cookie = jpki_locconf_pass_cookie(&conf->lc);

    jmcf = ((ngx_http_jpki_main_conf_t *)
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_jpki_module))->site;

    if (conf->health && jmcf->js == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_health\" needs "
                           "%s for this server or at http level",
                           jpki_conf_site_pieces(JPKI_SERVER_NGINX));
        return NGX_CONF_ERROR;
    }

    if (!conf->enable && !conf->endpoints && !conf->admin && !conf->metrics
        && !conf->health)
    {
        return NGX_CONF_OK;
    }

    if (jmcf->js == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: the gate needs %s "
                           "for this server or at http level",
                           jpki_conf_site_pieces(JPKI_SERVER_NGINX));
        return NGX_CONF_ERROR;
    }

    if (ngx_http_jpki_loc_policy(cf, conf, jmcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->admin
        && jpki_admin_missing(conf->policy, JPKI_SERVER_NGINX, err,
                              sizeof(err)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_admin\" %s",
                           err);
        return NGX_CONF_ERROR;
    }

    if (conf->metrics
        && jpki_metrics_missing(conf->policy, JPKI_SERVER_NGINX, err,
                                sizeof(err)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_metrics\" %s",
                           err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
