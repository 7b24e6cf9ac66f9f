/*
 * ngx_http_jpki_conf.c - the directives whose grammar is the core's
 * (common/conf.h): the store, the simple site and location values, the
 * throttle, and the location configuration's create and merge.  nginx's
 * part is what only nginx does: shared zones, TLS contexts, resolving the
 * Redis address, the "is duplicate"-style messages with file and line.
 */

#include "ngx_http_jpki.h"
#include "conf.h"


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


/* The directive's words after its name, NUL-terminated by nginx. */
static const char **
ngx_http_jpki_conf_argv(ngx_conf_t *cf, ngx_uint_t *argc)
{
    ngx_str_t    *value = cf->args->elts;
    const char  **argv;
    ngx_uint_t    i;

    *argc = cf->args->nelts - 1;
    argv = ngx_palloc(cf->pool, (*argc + 1) * sizeof(char *));
    if (argv == NULL) {
        return NULL;
    }

    for (i = 0; i < *argc; i++) {
        argv[i] = (const char *) value[i + 1].data;
    }
    argv[*argc] = NULL;

    return argv;
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


/* A value of the core's table (cmd->offset: its jpki_directive_id) into
 * values; several words are joined by blanks (jpki_trusted_origins). */
static char *
ngx_http_jpki_conf_value(ngx_conf_t *cf, ngx_command_t *cmd,
    jpki_conf_values *values)
{
    ngx_str_t  arg;
    char       err[256];

    if (ngx_http_jpki_join_args(cf, &arg) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (jpki_conf_set(values, (jpki_directive_id) cmd->offset,
                      (char *) arg.data, err, sizeof(err))
        != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_jpki_conf_site(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;

    ngx_http_jpki_site_note(cf, cmd, conf);

    return ngx_http_jpki_conf_value(cf, cmd, &jmcf->values);
}


char *
ngx_http_jpki_conf_loc(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    return ngx_http_jpki_conf_value(cf, cmd, &jlcf->values);
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


static ngx_int_t
ngx_http_jpki_conf_str(ngx_conf_t *cf, ngx_str_t *dst, const char *src)
{
    dst->len = ngx_strlen(src);
    if (dst->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(cf->pool, dst->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, dst->len + 1);

    return NGX_OK;
}


static ngx_shm_zone_t *
ngx_http_jpki_conf_zone(ngx_conf_t *cf, const char *name, size_t size)
{
    ngx_str_t        s;
    ngx_shm_zone_t  *zone;

    if (ngx_http_jpki_conf_str(cf, &s, name) != NGX_OK) {
        return NULL;
    }

    zone = ngx_shared_memory_add(cf, &s, size, &ngx_http_jpki_module);
    if (zone != NULL) {
        zone->init = ngx_http_jpki_init_zone;
    }

    return zone;
}


#if (NGX_SSL)

/* TLS to Redis: the server certificate must chain to tls_ca= and name
 * tls_name= (checked by the core's grammar: both are there). */
static ngx_int_t
ngx_http_jpki_redis_tls_conf(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_spec *spec)
{
    ngx_str_t            ca;
    ngx_pool_cleanup_t  *cln;

    if (ngx_http_jpki_conf_str(cf, &jmcf->redis_tls_name, spec->tls_name)
           != NGX_OK
        || ngx_http_jpki_conf_str(cf, &ca, spec->tls_ca) != NGX_OK)
    {
        return NGX_ERROR;
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

    if (ngx_conf_full_name(cf->cycle, &ca, 1) != NGX_OK
        || ngx_ssl_trusted_certificate(cf, jmcf->redis_ssl, &ca, 4) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* as proxy_ssl_verify does: the handshake completes and the result of
     * the verification is checked after it (ngx_http_jpki_io.c) */
    return NGX_OK;
}

#endif


/* Redis: the address resolved, the credentials, TLS, and the node's table
 * of logouts (one per Redis server and db, shared by the sites on it: a
 * marker is keyed by a cert_id of one secret). */
static char *
ngx_http_jpki_store_redis(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_spec *spec)
{
    u_char  name[300];

    if (ngx_http_jpki_conf_str(cf, &jmcf->redis.url, spec->addr) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
    jmcf->redis.default_port = JPKI_CONF_REDIS_PORT;

    if (ngx_parse_url(cf->pool, &jmcf->redis) != NGX_OK
        || jmcf->redis.naddrs == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: redis address "
                           "\"%V\": %s", &jmcf->redis.url,
                           jmcf->redis.err ? jmcf->redis.err
                                           : "does not resolve");
        return NGX_CONF_ERROR;
    }

    jmcf->redis_db = spec->db;
    jmcf->redis_keepalive = spec->keepalive;
    if (ngx_http_jpki_conf_str(cf, &jmcf->redis_user, spec->user) != NGX_OK
        || ngx_http_jpki_conf_str(cf, &jmcf->redis_password, spec->password)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (spec->tls) {
#if (NGX_SSL)
        if (ngx_http_jpki_redis_tls_conf(cf, jmcf, spec) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
#else
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: redis tls=on needs "
                           "nginx built with SSL");
        return NGX_CONF_ERROR;
#endif
    }

    ngx_snprintf(name, sizeof(name) - 1, "jpki_logouts:%s:%d%Z", spec->addr,
                 spec->db);
    jmcf->mirror_zone = ngx_http_jpki_conf_zone(cf, (char *) name,
                                                spec->mirror);
    if (jmcf->mirror_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    jmcf->store = NGX_HTTP_JPKI_STORE_REDIS;

    return NGX_CONF_OK;
}


/* jpki_store shm [zone=NAME] [size=SIZE];
 * jpki_store redis=HOST:PORT|unix:/PATH [db=N] [user=U] [password=P]
 *            [keepalive=N] [tls=on tls_ca=FILE [tls_name=NAME]]
 *            [mirror=SIZE];  (the core's grammar: jpki_conf_store) */
char *
ngx_http_jpki_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    jpki_store_spec            *spec;
    const char                **argv;
    ngx_uint_t                  argc;
    char                        err[256], *rv;

    if (jmcf->store) {
        return "is duplicate";
    }

    spec = ngx_palloc(cf->temp_pool, sizeof(jpki_store_spec));
    argv = ngx_http_jpki_conf_argv(cf, &argc);
    if (spec == NULL || argv == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jpki_conf_store((int) argc, argv, spec, err, sizeof(err)) != JPKI_OK)
    {
        return ngx_http_jpki_conf_fail(cf, &cmd->name, err);
    }

    if (spec->warning[0]) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "jpki: \"%V\": %s",
                           &cmd->name, spec->warning);
    }

    if (spec->kind == JPKI_STORE_KIND_SHM) {
        jmcf->shm_zone = ngx_http_jpki_conf_zone(cf, spec->zone, spec->size);
        if (jmcf->shm_zone == NULL) {
            return NGX_CONF_ERROR;
        }
        jmcf->store = NGX_HTTP_JPKI_STORE_SHM;
        rv = NGX_CONF_OK;

    } else {
        rv = ngx_http_jpki_store_redis(cf, jmcf, spec);
    }

    ngx_explicit_memzero(spec, sizeof(jpki_store_spec));
    if (rv == NGX_CONF_OK) {
        jmcf->configured = 1;
    }

    return rv;
}


/* ---- location ----------------------------------------------------- */

/* jpki_throttle off | [window=T] [cert=N] [addr=N] [logins=N]
 *               [concurrency=N]: the grammar is the core's. */
char *
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

    jpki_policy_defaults(&check);
    if (jpki_policy_set_throttle(&check, (char *) jlcf->throttle.data, err,
                                 sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
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
    jpki_conf_init(&jlcf->values);

    return jlcf;
}


/* The location's policy: the site's, with the location's values (merged
 * down from http and server) written over it. */
static char *
ngx_http_jpki_loc_policy(ngx_conf_t *cf, ngx_http_jpki_loc_conf_t *conf,
    ngx_http_jpki_main_conf_t *jmcf)
{
    jpki_policy  *p;
    char          err[256];

    p = ngx_palloc(cf->pool, sizeof(jpki_policy));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *p = *jpki_ctx_get_policy(jmcf->ctx);
    jpki_conf_apply(&conf->values, JPKI_CONF_LOCATION, p);
    p->cookie_httponly = 1;

    /* the values were checked where they were written
     * (ngx_http_jpki_throttle): the levels' lines, outermost first */
    (void) jpki_conf_throttle(p, (char *) conf->throttle.data, err,
                              sizeof(err));

    if (jpki_policy_check(p, err, sizeof(err)) != JPKI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    conf->policy = p;

    return NGX_CONF_OK;
}


/* A location's jpki_throttle comes after the ones of the levels above it
 * (the server's, the http block's): their lines, then its own. */
static ngx_int_t
ngx_http_jpki_merge_throttle(ngx_conf_t *cf, ngx_http_jpki_loc_conf_t *conf,
    ngx_http_jpki_loc_conf_t *prev)
{
    u_char  *p;

    if (conf->throttle.data == NULL || prev->throttle.len == 0) {
        ngx_conf_merge_str_value(conf->throttle, prev->throttle, "");
        return NGX_OK;
    }

    p = ngx_pnalloc(cf->pool, prev->throttle.len + conf->throttle.len + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->throttle.len = ngx_sprintf(p, "%V\n%V%Z", &prev->throttle,
                                     &conf->throttle) - p - 1;
    conf->throttle.data = p;

    return NGX_OK;
}


char *
ngx_http_jpki_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_jpki_loc_conf_t   *prev = parent;
    ngx_http_jpki_loc_conf_t   *conf = child;
    ngx_http_jpki_main_conf_t  *jmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->endpoints, prev->endpoints, 0);
    ngx_conf_init_value(conf->health, 0);     /* where it is written */
    if (ngx_http_jpki_merge_throttle(cf, conf, prev) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
    jpki_conf_merge(&conf->values, &prev->values);

    conf->header.data = (u_char *) jpki_conf_str(&conf->values,
                                                 JPKI_D_HEADER);
    conf->header.len = ngx_strlen(conf->header.data);
    conf->pass_cookie = (ngx_flag_t) jpki_conf_num(&conf->values,
                                                   JPKI_D_PASS_COOKIE);

    jmcf = ((ngx_http_jpki_main_conf_t *)
            ngx_http_conf_get_module_srv_conf(cf, ngx_http_jpki_module))->site;

    if (conf->health && !jmcf->configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: \"jpki_health\" needs "
                           "%s for this server or at http level",
                           jpki_conf_site_pieces(JPKI_SERVER_NGINX));
        return NGX_CONF_ERROR;
    }

    if (!conf->enable && !conf->endpoints) {
        return NGX_CONF_OK;
    }

    if (!jmcf->configured) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: the gate needs %s "
                           "for this server or at http level",
                           jpki_conf_site_pieces(JPKI_SERVER_NGINX));
        return NGX_CONF_ERROR;
    }

    return ngx_http_jpki_loc_policy(cf, conf, jmcf);
}
