/*
 * mod_auth_jpki_config.c - the directives of the Apache JPKI gate: their
 * table, the setters, and the per-server ("site") and per-directory
 * configuration, UNSET sentinels merged the httpd way.  The grammar, the
 * limits and the defaults of most directives are the core's
 * (common/conf.h): one generic setter writes them into the site's or the
 * section's jpki_conf_values by the core's table; such a directive is
 * listed in common/directives.h, from which mjpki_cmds below takes it.
 * The sites are built
 * in mod_auth_jpki_site.c.
 */

#include "mod_auth_jpki.h"
#include "directives.h"

#include <string.h>
#include <strings.h>
#include <stdlib.h>

APLOG_USE_MODULE(auth_jpki);


/* The core's sentence for the directive: "JPKIHeader must be ...",
 * "JPKIStore: invalid db= (0..15)". */
static const char *
mjpki_conf_msg(cmd_parms *cmd, const char *sentence)
{
    char  msg[600];

    jpki_conf_message(msg, sizeof(msg), cmd->cmd->name, sentence);

    return apr_pstrdup(cmd->pool, msg);
}


/* ------------------------------------------------------------------ */
/* Per-server configuration                                            */
/* ------------------------------------------------------------------ */

static mjpki_site *
mjpki_site_new(apr_pool_t *p)
{
    mjpki_site  *site = apr_pcalloc(p, sizeof(mjpki_site));

    site->redis_db = JPKI_UNSET;
    site->redis_keepalive = JPKI_UNSET;
    jpki_conf_init(&site->values);

    return site;
}


void *
mjpki_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    mjpki_srv_conf  *conf = apr_pcalloc(p, sizeof(mjpki_srv_conf));

    conf->site = mjpki_site_new(p);

    return conf;
}


/* The store's settings of from (JPKIStore, all or none) into site. */
static void
mjpki_store_copy(mjpki_site *site, const mjpki_site *from)
{
    site->store = from->store;
    site->shm_size = from->shm_size;
    site->shm_zone = from->shm_zone;
    site->redis_addr = from->redis_addr;
    site->redis_host = from->redis_host;
    site->redis_port = from->redis_port;
    site->redis_unix = from->redis_unix;
    site->redis_db = from->redis_db;
    site->redis_user = from->redis_user;
    site->redis_password = from->redis_password;
    site->redis_keepalive = from->redis_keepalive;
    site->redis_tls = from->redis_tls;
    site->redis_tls_ca = from->redis_tls_ca;
    site->redis_tls_name = from->redis_tls_name;
    site->mirror_size = from->mirror_size;
}


void *
mjpki_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    mjpki_srv_conf  *b = basev, *a = addv;
    mjpki_srv_conf  *conf = apr_pcalloc(p, sizeof(mjpki_srv_conf));
    mjpki_site      *base = b->site, *add = a->site, *site;

    if (!a->own) {
        /* nothing of ours in the virtual host: the same site */
        conf->site = base;
        return conf;
    }

    site = mjpki_site_new(p);
    conf->site = site;
    conf->own = 1;
    conf->set_name = a->set_name;
    conf->set_file = a->set_file;
    conf->set_line = a->set_line;

    site->secret_file = add->secret_file ? add->secret_file
                                         : base->secret_file;
    site->issuers = add->issuers && add->issuers->nelts ? add->issuers
                                                        : base->issuers;
    mjpki_store_copy(site, add->store ? add : base);
    site->map_file = add->map_file ? add->map_file : base->map_file;
    if (add->crl_zone_set) {
        site->crl_zone_size = add->crl_zone_size;
        site->crl_zone_set = 1;
    } else {
        site->crl_zone_size = base->crl_zone_size;
        site->crl_zone_set = base->crl_zone_set;
    }
    site->values = add->values;
    jpki_conf_merge(&site->values, &base->values);

    return conf;
}


int
mjpki_site_configured(const mjpki_site *site)
{
    return site != NULL
           && (site->secret_file || (site->issuers && site->issuers->nelts)
               || site->store);
}


mjpki_site *
mjpki_cmd_site(cmd_parms *cmd)
{
    mjpki_srv_conf  *conf;

    conf = ap_get_module_config(cmd->server->module_config,
                                &auth_jpki_module);
    conf->own = 1;
    if (conf->set_name == NULL) {
        conf->set_name = cmd->cmd->name;
        conf->set_file = cmd->directive->filename;
        conf->set_line = cmd->directive->line_num;
    }

    return conf->site;
}


/* JPKISecretFile FILE */
static const char *
mjpki_cmd_secret_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    mjpki_site  *site = mjpki_cmd_site(cmd);
    const char *path;
    char        err[256];

    if (site->secret_file) {
        return "JPKISecretFile: duplicate in this server";
    }

    path = ap_server_root_relative(cmd->pool, arg);
    if (path == NULL) {
        return apr_psprintf(cmd->pool, "JPKISecretFile: invalid path \"%s\"",
                            arg);
    }

    /* read it now: a clear error with the line number */
    if (jpki_site_secret(NULL, path, err, sizeof(err)) != JPKI_OK) {
        return apr_psprintf(cmd->pool, "JPKISecretFile: %s", err);
    }

    site->secret_file = path;

    return NULL;
}


static const char *
mjpki_dup(apr_pool_t *p, const char *s)
{
    return s[0] ? apr_pstrdup(p, s) : NULL;
}


/* JPKIStore: the core's grammar (jpki_conf_store); here the CA file of
 * tls_ca= is taken from the server root and tried. */
static const char *
mjpki_cmd_store(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    mjpki_site        *site = mjpki_cmd_site(cmd);
    jpki_store_spec  *sp;
    const char       *msg = NULL;
    char              err[256];

    if (site->store) {
        return "JPKIStore: duplicate in this server";
    }

    sp = apr_palloc(cmd->temp_pool, sizeof(jpki_store_spec));
    if (jpki_conf_store(argc, (const char *const *) argv, sp, err,
                        sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }

    if (sp->warning[0]) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                     "jpki: %s:%d: JPKIStore: %s", cmd->directive->filename,
                     cmd->directive->line_num, sp->warning);
    }

    if (sp->kind == JPKI_STORE_KIND_SHM) {
        site->store = JPKI_STORE_SHM;
        site->shm_size = (apr_size_t) sp->size;
        site->shm_zone = apr_pstrdup(cmd->pool, sp->zone);
        return NULL;
    }

    site->store = JPKI_STORE_REDIS;
    site->redis_addr = apr_pstrdup(cmd->pool, sp->addr);
    site->redis_host = mjpki_dup(cmd->pool, sp->host);
    site->redis_port = (apr_port_t) sp->port;
    site->redis_unix = mjpki_dup(cmd->pool, sp->unix_path);
    site->redis_db = sp->db;
    site->redis_user = mjpki_dup(cmd->pool, sp->user);
    site->redis_password = mjpki_dup(cmd->pool, sp->password);
    site->redis_keepalive = (int) sp->keepalive;
    site->redis_tls = sp->tls;
    site->mirror_size = (apr_size_t) sp->mirror;
    if (sp->tls) {
        site->redis_tls_name = apr_pstrdup(cmd->pool, sp->tls_name);
        site->redis_tls_ca = ap_server_root_relative(cmd->pool, sp->tls_ca);
        msg = site->redis_tls_ca == NULL
              ? "JPKIStore: invalid tls_ca= path"
              : mjpki_tls_ctx(cmd->pool, site->redis_tls_ca, NULL);
    }
    memset(sp, 0, sizeof(jpki_store_spec));

    return msg;
}


/* Every directive of the core's table (common/conf.h): cmd->info is its
 * jpki_directive_id; the value goes to the site (server level) or to the
 * section by the table's level.  Several words (JPKITrustedOrigins) are
 * joined by blanks. */
static const char *
mjpki_cmd_value(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    jpki_directive_id   id = (jpki_directive_id) (intptr_t) cmd->info;
    jpki_conf_values   *v;
    const char         *arg;
    char                err[256];
    int                 i;

    if (argc < 1
        || (argc > 1 && jpki_directives[id].kind != JPKI_CONF_ORIGINS))
    {
        return apr_psprintf(cmd->pool, "%s takes one value", cmd->cmd->name);
    }

    v = jpki_directives[id].level == JPKI_CONF_SITE
        ? &mjpki_cmd_site(cmd)->values : &((mjpki_dir_conf *) dconf)->values;
    arg = apr_pstrdup(cmd->pool, argv[0]);
    for (i = 1; i < argc; i++) {
        arg = apr_pstrcat(cmd->pool, arg, " ", argv[i], NULL);
    }

    if (jpki_conf_set(v, id, arg, err, sizeof(err)) != JPKI_OK) {
        return mjpki_conf_msg(cmd, err);
    }

    return NULL;
}


static const char *
mjpki_cmd_map_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    mjpki_site  *site = mjpki_cmd_site(cmd);
    char        err[512];

    site->map_file = ap_server_root_relative(cmd->pool, arg);
    if (site->map_file == NULL) {
        return apr_psprintf(cmd->pool, "JPKIMapFile: invalid path \"%s\"",
                            arg);
    }

    /* read by the parent, then again by each child when it changes: one
     * that is not there is refused now, with the system's reason */
    if (jpki_file_check("mapping file", site->map_file, err, sizeof(err))
        != JPKI_OK)
    {
        return apr_psprintf(cmd->pool, "JPKIMapFile: %s", err);
    }

    return NULL;
}


/* JPKICRLZone SIZE|off: the CRL files of the site parsed once, by one
 * process, into shared memory that every child reads (24 bytes a CRL
 * entry; a replacement is placed beside the CRL in force). */
static const char *
mjpki_cmd_crl_zone(cmd_parms *cmd, void *dconf, const char *arg)
{
    mjpki_site   *site = mjpki_cmd_site(cmd);
    uint64_t     size;
    char         err[128];

    if (site->crl_zone_set) {
        return "JPKICRLZone: duplicate in this server";
    }

    if (strcasecmp(arg, "off") == 0) {
        size = 0;
    } else if (jpki_conf_size(arg, &size, err, sizeof(err)) != JPKI_OK
               || size < JPKI_CRLZ_MIN_SIZE)
    {
        return apr_psprintf(cmd->pool, "JPKICRLZone must be \"off\" or a "
                            "size of at least %dk (e.g. 64M)",
                            JPKI_CRLZ_MIN_SIZE / 1024);
    }

    site->crl_zone_size = (apr_size_t) size;
    site->crl_zone_set = 1;

    return NULL;
}



/* ------------------------------------------------------------------ */
/* Per-directory configuration                                         */
/* ------------------------------------------------------------------ */

void *
mjpki_create_dir_conf(apr_pool_t *p, char *dir)
{
    mjpki_dir_conf  *d = apr_pcalloc(p, sizeof(mjpki_dir_conf));

    d->where = dir ? apr_pstrdup(p, dir) : NULL;
    d->endpoints = JPKI_UNSET;
    d->health = JPKI_UNSET;
    jpki_conf_init(&d->values);

    return d;
}


void *
mjpki_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    mjpki_dir_conf  *base = basev, *add = addv;
    mjpki_dir_conf  *d = apr_palloc(p, sizeof(mjpki_dir_conf));

    d->where = add->where ? add->where : base->where;
    d->endpoints = add->endpoints != JPKI_UNSET ? add->endpoints
                                                : base->endpoints;
    d->health = add->health != JPKI_UNSET ? add->health : base->health;
    d->values = add->values;
    jpki_conf_merge(&d->values, &base->values);
    /* each value changes only what it names: the server's, then the
     * section's, as if given in that order */
    if (base->throttle && add->throttle) {
        d->throttle = apr_pstrcat(p, base->throttle, "\n", add->throttle,
                                  NULL);
    } else {
        d->throttle = add->throttle ? add->throttle : base->throttle;
    }

    return d;
}


int
mjpki_dir_has_settings(const mjpki_dir_conf *d)
{
    return d->endpoints == 1 || d->health == 1 || d->throttle
           || jpki_conf_any(&d->values, JPKI_CONF_LOCATION);
}


const char *
mjpki_dir_header(const mjpki_dir_conf *d)
{
    return jpki_conf_str(&d->values, JPKI_D_HEADER);
}


int
mjpki_dir_pass_cookie(const mjpki_dir_conf *d)
{
    return jpki_conf_num(&d->values, JPKI_D_PASS_COOKIE) == 1;
}



const jpki_policy *
mjpki_dir_policy(apr_pool_t *p, const mjpki_site *site, const mjpki_dir_conf *d,
                char *err, size_t errlen)
{
    jpki_policy  *pol;

    if (site == NULL || site->ctx == NULL) {
        apr_snprintf(err, errlen, "the server has no %s",
                     jpki_conf_site_pieces(JPKI_SERVER_APACHE));
        return NULL;
    }

    pol = apr_palloc(p, sizeof(jpki_policy));
    *pol = *jpki_ctx_get_policy(site->ctx);
    jpki_conf_apply(&d->values, JPKI_CONF_LOCATION, pol);
    pol->cookie_httponly = 1;

    if (jpki_conf_throttle(pol, d->throttle, err, errlen) != JPKI_OK
        || jpki_policy_check(pol, err, errlen) != JPKI_OK)
    {
        return NULL;
    }

    return pol;
}


/* JPKIThrottle off | [window=T] [cert=N] [addr=N] [logins=N]
 * [concurrency=N]: the grammar is the core's (jpki_policy_set_throttle),
 * checked here over the defaults; the values are applied to the section's
 * policy in order, after the server's (each changes only what it names). */
static const char *
mjpki_cmd_throttle(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    mjpki_dir_conf  *d = dconf;
    jpki_policy     pol;
    const char     *args, *msg;
    char            err[256];
    int             i;

    if (argc == 0) {
        return "JPKIThrottle: expects off, or window=, cert=, addr=, "
               "logins=, concurrency=";
    }
    /* each directive once in a section, as on nginx (a second line used
     * to be appended to the first) */
    if (d->throttle != NULL) {
        return "JPKIThrottle is duplicate (write its words on one line)";
    }

    args = argv[0];
    for (i = 1; i < argc; i++) {
        args = apr_pstrcat(cmd->pool, args, " ", argv[i], NULL);
    }

    jpki_policy_defaults(&pol);
    err[0] = '\0';
    if (jpki_policy_set_throttle(&pol, args, err, sizeof(err)) != JPKI_OK) {
        msg = strncmp(err, "throttle: ", 10) == 0 ? err + 10 : err;
        return apr_psprintf(cmd->pool, "JPKIThrottle: %s", msg);
    }

    d->throttle = apr_pstrdup(cmd->pool, args);

    return NULL;
}



/* JPKIEndpoints [On|Off], JPKIHealth [On|Off] (the core's flag grammar; no
 * argument is On): what the <Location> answers. */
static const char *
mjpki_cmd_answers(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    mjpki_dir_conf  *d = dconf;
    int            *flag, on;
    char            err[128];

    if (argc > 1) {
        return apr_psprintf(cmd->pool, "%s takes On, Off or nothing",
                            cmd->cmd->name);
    }

    flag = (int *) ((char *) d + (intptr_t) cmd->info);
    if (cmd->path == NULL) {
        return flag == &d->endpoints
               ? "JPKIEndpoints belongs in a <Location> (the endpoints are "
                 "<location>/challenge, /login, /logout and /status)"
               : "JPKIHealth belongs in a <Location>";
    }

    if (jpki_conf_flag(argc ? argv[0] : NULL, &on, err, sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }
    *flag = on;

    return NULL;
}


/* ------------------------------------------------------------------ */
/* Directives                                                          */
/* ------------------------------------------------------------------ */

#define MJPKI_DIR_OFF(f)  (void *) APR_OFFSETOF(mjpki_dir_conf, f)
#define MJPKI_DIR_CTX     (RSRC_CONF | ACCESS_CONF)
/* the core's simple directives (common/directives.h) */
#define MJPKI_SITE_VALUE(id, nginx, name, words, help)                       \
    AP_INIT_TAKE_ARGV(name, mjpki_cmd_value, (void *) (intptr_t) (id),      \
                      RSRC_CONF, help),
#define MJPKI_DIR_VALUE(id, nginx, name, words, help)                        \
    AP_INIT_TAKE_ARGV(name, mjpki_cmd_value, (void *) (intptr_t) (id),      \
                      MJPKI_DIR_CTX, help),

const command_rec mjpki_cmds[] = {
    /* server */
    AP_INIT_TAKE1("JPKISecretFile", mjpki_cmd_secret_file, NULL, RSRC_CONF,
        "the site secret file (secret <hex>, key <id> <hex> [current])"),
    AP_INIT_TAKE_ARGV("JPKIIssuer", mjpki_cmd_issuer, NULL, RSRC_CONF,
        "NAME ca=FILE[,FILE...] [ocsp=http://...] [crl=FILE] "
        "[policy=OID|none]"),
    AP_INIT_TAKE_ARGV("JPKIStore", mjpki_cmd_store, NULL, RSRC_CONF,
        "shm [zone=NAME] [size=10M] | redis=HOST:PORT|unix:/path [db=N] "
        "[user=U] [password=P] [keepalive=N] [tls=on tls_ca=FILE "
        "[tls_name=NAME]] [mirror=1M]"),
    AP_INIT_TAKE1("JPKIMapFile", mjpki_cmd_map_file, NULL, RSRC_CONF,
        "mappings \"<cert_id> <account>\" (re-read when it changes)"),
    AP_INIT_TAKE1("JPKICRLZone", mjpki_cmd_crl_zone, NULL, RSRC_CONF,
        "SIZE (e.g. 64M) | off: CRL files parsed once, by one process, into "
        "shared memory every child answers from [off]"),
    JPKI_SITE_DIRECTIVES(MJPKI_SITE_VALUE)

    /* directory */
    AP_INIT_TAKE_ARGV("JPKIEndpoints", mjpki_cmd_answers,
        MJPKI_DIR_OFF(endpoints), ACCESS_CONF,
        "[On]: this location answers <location>/challenge, /login, /logout "
        "and /status"),
    AP_INIT_TAKE_ARGV("JPKIHealth", mjpki_cmd_answers, MJPKI_DIR_OFF(health),
        ACCESS_CONF,
        "[On]: this location answers JSON for monitoring (CRLs, store)"),
    JPKI_LOCATION_DIRECTIVES(MJPKI_DIR_VALUE)
    AP_INIT_TAKE_ARGV("JPKIThrottle", mjpki_cmd_throttle, NULL, MJPKI_DIR_CTX,
        "off | [window=60s] [cert=10] [addr=100] [logins=60] "
        "[concurrency=16]: failed logins per certificate and per client "
        "address (IPv6 /64), logins per certificate in the window; "
        "concurrency: logins of the site a child verifies at once"),
    { NULL }
};
