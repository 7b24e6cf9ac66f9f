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
#include "siteconf.h"
#include "page.h"

/* a site value: MJPKI_VALUE + its jpki_directive_id */
#define MJPKI_VALUE  JPKI__SC_COUNT

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

static apr_status_t
mjpki_siteconf_cleanup(void *data)
{
    jpki_siteconf_free(data);
    return APR_SUCCESS;
}


static mjpki_site *
mjpki_site_new(apr_pool_t *p, jpki_siteconf *sc)
{
    mjpki_site  *site = apr_pcalloc(p, sizeof(mjpki_site));

    site->sc = sc;
    return site;
}


void *
mjpki_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    mjpki_srv_conf  *conf = apr_pcalloc(p, sizeof(mjpki_srv_conf));
    jpki_siteconf   *sc = jpki_siteconf_new();

    if (sc == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, sc, mjpki_siteconf_cleanup,
                              apr_pool_cleanup_null);
    conf->site = mjpki_site_new(p, sc);

    return conf;
}


/* A virtual host with site directives of its own is a site, which takes
 * what it does not write from the main server's. */
void *
mjpki_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    mjpki_srv_conf  *b = basev, *a = addv;
    mjpki_srv_conf  *conf = apr_pcalloc(p, sizeof(mjpki_srv_conf));

    if (!a->own) {
        /* nothing of ours in the virtual host: the same site */
        conf->site = b->site;
        return conf;
    }

    jpki_siteconf_inherit(a->site->sc, b->site->sc);
    conf->site = mjpki_site_new(p, a->site->sc);
    conf->own = 1;

    return conf;
}


int
mjpki_site_configured(const mjpki_site *site)
{
    return site != NULL && jpki_siteconf_is_site(site->sc);
}


mjpki_site *
mjpki_cmd_site(cmd_parms *cmd)
{
    mjpki_srv_conf  *conf;

    conf = ap_get_module_config(cmd->server->module_config,
                                &auth_jpki_module);
    conf->own = 1;

    return conf->site;
}


static const char *
mjpki_conf_abs(void *ud, const char *path)
{
    return ap_server_root_relative(((cmd_parms *) ud)->pool, path);
}


static void
mjpki_conf_warn(void *ud, const char *msg)
{
    /* Apache reads its configuration twice when it starts: the warning
     * goes with the pass it runs (and with a configuration test), once */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        && ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST)
    {
        return;
    }

    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ((cmd_parms *) ud)->server,
                 "jpki: %s", msg);
}


/* A site directive: the core's (cmd->info: its jpki_sc_directive, or
 * MJPKI_VALUE + its jpki_directive_id; several words of a value joined by
 * blanks); Apache's part, addresses and segments, comes when the site is
 * built (mod_auth_jpki_site.c). */
static const char *
mjpki_cmd_site_directive(cmd_parms *cmd, void *dconf, int argc,
                         char *const argv[])
{
    mjpki_site   *site = mjpki_cmd_site(cmd);
    intptr_t     d = (intptr_t) cmd->info;
    jpki_sc_env  env;
    const char  *arg;
    char         err[512];
    jpki_err     e;
    int          i;

    env.abs = mjpki_conf_abs;
    env.warn = mjpki_conf_warn;
    env.ud = cmd;
    env.name = cmd->cmd->name;
    env.file = cmd->directive->filename;
    env.line = (unsigned) cmd->directive->line_num;

    if (d >= MJPKI_VALUE) {
        if (argc < 1 || (argc > 1 && jpki_directives[d - MJPKI_VALUE].kind
                                     != JPKI_CONF_ORIGINS))
        {
            return apr_psprintf(cmd->pool, "%s takes one value",
                                cmd->cmd->name);
        }
        arg = apr_pstrdup(cmd->pool, argv[0]);
        for (i = 1; i < argc; i++) {
            arg = apr_pstrcat(cmd->pool, arg, " ", argv[i], NULL);
        }
        e = jpki_siteconf_value(site->sc, (jpki_directive_id)
                                (d - MJPKI_VALUE), arg, &env, err,
                                sizeof(err));
    } else {
        e = jpki_siteconf_set(site->sc, (jpki_sc_directive) d, argc,
                              (const char *const *) argv, &env, err,
                              sizeof(err));
    }

    return e == JPKI_OK ? NULL : mjpki_conf_msg(cmd, err);
}


/* cmd->info of a section's value: its jpki_directive_id, and whether it
 * takes several words (directives.h's words 0). */
#define MJPKI_WORDS  0x10000
#define MJPKI_INFO(id, words) \
    ((void *) (intptr_t) ((id) | ((words) ? 0 : MJPKI_WORDS)))

/* A section's value of the core's table (common/conf.h).  Several words
 * (JPKITrustedOrigins, JPKILoginMethods) are joined by blanks. */
static const char *
mjpki_cmd_value(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    intptr_t            info = (intptr_t) cmd->info;
    jpki_directive_id   id = (jpki_directive_id) (info & ~MJPKI_WORDS);
    const char         *arg;
    char                err[256];
    int                 i;

    if (argc < 1 || (argc > 1 && !(info & MJPKI_WORDS))) {
        return apr_psprintf(cmd->pool, "%s takes one value", cmd->cmd->name);
    }

    arg = apr_pstrdup(cmd->pool, argv[0]);
    for (i = 1; i < argc; i++) {
        arg = apr_pstrcat(cmd->pool, arg, " ", argv[i], NULL);
    }

    if (jpki_conf_set(&((mjpki_dir_conf *) dconf)->lc.values, id, arg, err,
                      sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }

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
    d->admin = JPKI_UNSET;
    d->metrics = JPKI_UNSET;
    jpki_locconf_init(&d->lc);

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
    d->admin = add->admin != JPKI_UNSET ? add->admin : base->admin;
    d->metrics = add->metrics != JPKI_UNSET ? add->metrics : base->metrics;
    d->lc = add->lc;
    jpki_locconf_merge(&d->lc, &base->lc);

    return d;
}


const jpki_policy *
mjpki_dir_policy(apr_pool_t *p, const mjpki_site *site, const mjpki_dir_conf *d,
                char *err, size_t errlen)
{
    jpki_policy  *pol;
    char          sentence[400];

    if (site == NULL || site->js == NULL) {
        apr_snprintf(err, errlen, "the server has no %s",
                     jpki_conf_site_pieces(JPKI_SERVER_APACHE));
        return NULL;
    }

    pol = apr_palloc(p, sizeof(jpki_policy));

    if (jpki_locconf_policy(&d->lc, jpki_ctx_get_policy(site->ctx), pol,
                            err, errlen) != JPKI_OK)
    {
        return NULL;
    }

    /* the issuer names against this server's site */
    if (jpki_locconf_resolve(&d->lc, site->ctx, sentence, sizeof(sentence))
        != JPKI_OK)
    {
        jpki_conf_message(err, errlen, "JPKIAllowIssuers", sentence);
        return NULL;
    }

    return pol;
}


/* JPKIAdminTokenFile FILE: the admin API's bearer token, read and checked
 * now (only its hash is kept). */
static const char *
mjpki_cmd_admin_token(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char  *path = ap_server_root_relative(cmd->pool, arg);
    char         err[512];

    if (path == NULL) {
        return apr_psprintf(cmd->pool, "%s: invalid path \"%s\"",
                            cmd->cmd->name, arg);
    }
    if (jpki_locconf_admin_token(&((mjpki_dir_conf *) dconf)->lc, path, err,
                                 sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }

    return NULL;
}


static apr_status_t
mjpki_tmpl_cleanup(void *data)
{
    jpki_page_tmpl_free(data);
    return APR_SUCCESS;
}


/* JPKILoginTemplate FILE: the login page's template, read and checked
 * now (relative to ServerRoot), freed with the configuration. */
static const char *
mjpki_cmd_login_template(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char      *path = ap_server_root_relative(cmd->pool, arg);
    jpki_page_tmpl  *t;
    char             err[512];

    if (path == NULL) {
        return apr_psprintf(cmd->pool, "%s: invalid path \"%s\"",
                            cmd->cmd->name, arg);
    }
    if (jpki_locconf_template(&((mjpki_dir_conf *) dconf)->lc, path, &t, err,
                              sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }
    apr_pool_cleanup_register(cmd->pool, t, mjpki_tmpl_cleanup,
                              apr_pool_cleanup_null);

    return NULL;
}


static apr_status_t
mjpki_allow_cleanup(void *data)
{
    jpki_allow_free(data);
    return APR_SUCCESS;
}


/* JPKIAllowAccounts ID..., JPKIAllowIssuers NAME... (cmd->info set): the
 * section's allow-lists, parsed by the core (common/allow.h), freed with
 * the configuration; the issuer names are checked against the site's
 * issuers with the section's policy (mjpki_dir_policy). */
static const char *
mjpki_cmd_allow(cmd_parms *cmd, void *dconf, const char *args)
{
    apr_array_header_t  *words;
    const char          *w;
    jpki_allow          *a;
    char                 err[512];

    /* the words split here (quotes keep blanks): TAKE_ARGV would drop
     * those after the 64th without a word */
    words = apr_array_make(cmd->temp_pool, 8, sizeof(const char *));
    while (*args != '\0'
           && (w = ap_getword_conf(cmd->temp_pool, &args)) != NULL
           && words->nelts <= JPKI_ALLOW_ACCOUNTS_MAX)
    {
        APR_ARRAY_PUSH(words, const char *) = w;
    }

    if (jpki_locconf_allow(&((mjpki_dir_conf *) dconf)->lc,
                           cmd->info != NULL, words->nelts,
                           (const char *const *) words->elts, &a, err,
                           sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }
    apr_pool_cleanup_register(cmd->pool, a, mjpki_allow_cleanup,
                              apr_pool_cleanup_null);

    return NULL;
}


/* JPKIThrottle off | [window=T] [cert=N] [addr=N] [logins=N]
 * [concurrency=N]: the core's grammar; what a section names is written
 * over what the server names (jpki_locconf_merge). */
static const char *
mjpki_cmd_throttle(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    const char  *args = "";
    char         err[256];
    int          i;

    for (i = 0; i < argc; i++) {
        args = apr_pstrcat(cmd->pool, args, i ? " " : "", argv[i], NULL);
    }

    if (jpki_locconf_throttle(&((mjpki_dir_conf *) dconf)->lc, args, err,
                              sizeof(err))
        != JPKI_OK)
    {
        return mjpki_conf_msg(cmd, err);
    }

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
        return apr_psprintf(cmd->pool, "%s belongs in a <Location>",
                            cmd->cmd->name);
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
    AP_INIT_TAKE_ARGV(name, mjpki_cmd_site_directive,                        \
                      (void *) (intptr_t) (MJPKI_VALUE + (id)), RSRC_CONF,    \
                      help),
/* the core's site directives (common/siteconf.h) */
#define MJPKI_SITE_DIRECTIVE(d, nginx, name, words, help)                    \
    AP_INIT_TAKE_ARGV(name, mjpki_cmd_site_directive, (void *) (intptr_t) (d),\
                      RSRC_CONF, help),
#define MJPKI_DIR_VALUE(id, nginx, name, words, help)                        \
    AP_INIT_TAKE_ARGV(name, mjpki_cmd_value, MJPKI_INFO(id, words),         \
                      MJPKI_DIR_CTX, help),

const command_rec mjpki_cmds[] = {
    /* server */
    JPKI_SITE_OWN_DIRECTIVES(MJPKI_SITE_DIRECTIVE)
    JPKI_SITE_DIRECTIVES(MJPKI_SITE_VALUE)

    /* directory */
    AP_INIT_TAKE_ARGV("JPKIEndpoints", mjpki_cmd_answers,
        MJPKI_DIR_OFF(endpoints), ACCESS_CONF,
        "[On]: this location answers <location>/challenge, /login, /logout "
        "and /status"),
    AP_INIT_TAKE_ARGV("JPKIHealth", mjpki_cmd_answers, MJPKI_DIR_OFF(health),
        ACCESS_CONF,
        "[On]: this location answers JSON for monitoring (CRLs, store)"),
    AP_INIT_TAKE_ARGV("JPKIAdmin", mjpki_cmd_answers, MJPKI_DIR_OFF(admin),
        ACCESS_CONF, "[On]: this location answers the admin API (bind, "
        "unbind, certs, logout; docs/admin.md)"),
    AP_INIT_TAKE1("JPKIAdminTokenFile", mjpki_cmd_admin_token, NULL,
        MJPKI_DIR_CTX, "FILE: the admin API's bearer token (chmod 600)"),
    AP_INIT_TAKE_ARGV("JPKIMetrics", mjpki_cmd_answers, MJPKI_DIR_OFF(metrics),
        ACCESS_CONF, "[On]: this location answers the metrics (Prometheus "
        "text; JPKIAdminAllow and/or JPKIAdminTokenFile protect it)"),
    JPKI_LOCATION_DIRECTIVES(MJPKI_DIR_VALUE)
    AP_INIT_TAKE1("JPKILoginTemplate", mjpki_cmd_login_template, NULL,
        MJPKI_DIR_CTX, "FILE: the template of the gate's login page (HTML "
        "with {{...}} marks; docs/login-page.md) [built in]"),
    AP_INIT_RAW_ARGS("JPKIAllowAccounts", mjpki_cmd_allow, NULL,
        MJPKI_DIR_CTX, "ID...: only these accounts pass the gate here "
        "(at most 64; others 403 account_not_allowed) [any]"),
    AP_INIT_RAW_ARGS("JPKIAllowIssuers", mjpki_cmd_allow, "issuers",
        MJPKI_DIR_CTX, "NAME...: only certificates of these JPKIIssuer "
        "names pass the gate here (others 403 issuer_not_allowed) [any]"),
    AP_INIT_TAKE_ARGV("JPKIThrottle", mjpki_cmd_throttle, NULL, MJPKI_DIR_CTX,
        "off | [window=60s] [cert=10] [addr=100] [logins=60] "
        "[concurrency=16]: failed logins per certificate and per client "
        "address (IPv6 /64), logins per certificate in the window; "
        "concurrency: logins of the site a child verifies at once"),
    { NULL }
};
