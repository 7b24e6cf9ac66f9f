/*
 * mod_auth_jpki_site.c - the sites of the Apache JPKI gate built from the
 * configuration (check_config, which also runs for `apachectl configtest`,
 * so that every configuration error is reported there with a sentence):
 * the site context in named stages (what is required, the context and its
 * policy, the issuers, the store), then each section's merged policy
 * checked over its server's defaults.
 */

#include "mod_auth_jpki.h"

#include <openssl/err.h>
#include <string.h>
#include <strings.h>

APLOG_USE_MODULE(auth_jpki);


void
mjpki_log_cb(void *ud, jpki_log_level level, const char *msg)
{
    static const int  map[] = {
        APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG
    };
    mjpki_site        *site = ud;
    request_rec      *r = mjpki_current_request();
    int               lvl = map[(unsigned) level < 4 ? level : 3];

    if (r != NULL) {
        ap_log_rerror(APLOG_MARK, lvl, 0, r, "%s", msg);
    } else {
        ap_log_error(APLOG_MARK, lvl, 0, site ? site->server : NULL, "%s",
                     msg);
    }
}


static apr_status_t
mjpki_ctx_cleanup(void *data)
{
    jpki_ctx_free(data);
    return APR_SUCCESS;
}


static const char *
mjpki_server_name(apr_pool_t *p, server_rec *s)
{
    if (!s->is_virtual) {
        return "the main server";
    }
    return apr_psprintf(p, "the virtual host of %s:%d", s->defn_name,
                        s->defn_line_number);
}


static apr_status_t
mjpki_ssl_ctx_cleanup(void *data)
{
    SSL_CTX_free(data);
    return APR_SUCCESS;
}


/* A client TLS context trusting ca (TLS 1.2 and later).  The server's
 * certificate is checked after the handshake (mod_auth_jpki_io.c), as
 * nginx's proxy_ssl_verify does: the result and the name are logged then.
 * With out NULL, only checks that the CA file loads. */
const char *
mjpki_tls_ctx(apr_pool_t *p, const char *ca, SSL_CTX **out)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        return "JPKIStore: cannot create a TLS context";
    }

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return apr_psprintf(p, "JPKIStore: cannot load tls_ca \"%s\" (PEM "
                            "CA certificates)", ca);
    }

    if (out == NULL) {
        SSL_CTX_free(ctx);
        return NULL;
    }

    apr_pool_cleanup_register(p, ctx, mjpki_ssl_ctx_cleanup,
                              apr_pool_cleanup_null);
    *out = ctx;

    return NULL;
}



/* A sentence about the site of server s at start-up. */
#define MJPKI_SITE_FAIL(rv, s, ptemp, fmt, ...)                              \
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv, NULL,          \
                 "jpki: %s: " fmt, mjpki_server_name(ptemp, s), __VA_ARGS__)


/* Stage 1: the three pieces a site needs. */
static int
mjpki_site_required(apr_pool_t *ptemp, server_rec *s, mjpki_site *site)
{
    char  why[256];

    if (jpki_conf_site_missing(JPKI_SERVER_APACHE, site->secret_file != NULL,
                               site->issuers ? site->issuers->nelts : 0,
                               site->store != 0, why, sizeof(why)))
    {
        MJPKI_SITE_FAIL(0, s, ptemp, "%s", why);
        return !OK;
    }

    return OK;
}


/* Stage 2: the context, its secret, and the site's policy: the site's
 * values of the core's table (the rest the core's defaults), then
 * JPKIThrottle at the server level of the server that defines the site
 * (each location's policy starts from them). */
static int
mjpki_site_context(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                   mjpki_site *site)
{
    mjpki_dir_conf  *dflt;
    jpki_site_times  t;
    char            err[256];

    site->ctx = jpki_ctx_new();
    if (site->ctx == NULL) {
        return !OK;
    }
    apr_pool_cleanup_register(pconf, site->ctx, mjpki_ctx_cleanup,
                              apr_pool_cleanup_null);
    jpki_ctx_set_log(site->ctx, mjpki_log_cb, site);

    if (jpki_site_secret(site->ctx, site->secret_file, err, sizeof(err))
        != JPKI_OK)
    {
        MJPKI_SITE_FAIL(0, s, ptemp, "JPKISecretFile: %s", err);
        return !OK;
    }

    jpki_site_values(site->ctx, &site->values, &t);
    site->redis_timeout = (apr_interval_time_t) t.redis_timeout_ms * 1000;
    site->redis_connect_timeout =
        (apr_interval_time_t) t.redis_connect_timeout_ms * 1000;
    site->ocsp_timeout = (apr_interval_time_t) t.ocsp_timeout_ms * 1000;
    site->grace = t.crl_grace;

    dflt = ap_get_module_config(s->lookup_defaults, &auth_jpki_module);
    err[0] = '\0';
    if (dflt != NULL
        && jpki_conf_throttle(jpki_ctx_policy(site->ctx), dflt->throttle,
                              err, sizeof(err))
           != JPKI_OK)
    {
        MJPKI_SITE_FAIL(0, s, ptemp, "JPKIThrottle: %s", err);
        return !OK;
    }

    return OK;
}


/* Stage 3, for one issuer: its OCSP responder (the core's target of the
 * URL), resolved now. */
static int
mjpki_site_ocsp(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                mjpki_issuer_rt *rt)
{
    const jpki_conf_issuer  *cs = rt->spec->cs;
    apr_status_t            rv;

    rv = apr_sockaddr_info_get(&rt->ocsp_addr, cs->ocsp_host, APR_UNSPEC,
                               (apr_port_t) cs->ocsp_port, 0, pconf);
    if (rv != APR_SUCCESS) {
        MJPKI_SITE_FAIL(rv, s, ptemp, "JPKIIssuer %s: OCSP host \"%s\" does "
                        "not resolve", cs->name, cs->ocsp_host);
        return !OK;
    }
    rt->ocsp_host = cs->ocsp_host_header;
    rt->ocsp_path = cs->ocsp_path;

    return OK;
}


/* Stage 3: the issuers, as JPKIIssuer wrote them (the core's setup:
 * jpki_site_issuer). */
static int
mjpki_site_issuers(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                   mjpki_site *site)
{
    mjpki_issuer_spec  *spec;
    mjpki_issuer_rt    *rt;
    char               err[256];
    int                i;

    site->rt_issuers = apr_array_make(pconf, site->issuers->nelts,
                                      sizeof(mjpki_issuer_rt));

    for (i = 0; i < site->issuers->nelts; i++) {
        spec = &APR_ARRAY_IDX(site->issuers, i, mjpki_issuer_spec);
        rt = apr_array_push(site->rt_issuers);
        memset(rt, 0, sizeof(*rt));
        rt->spec = spec;

        err[0] = '\0';
        if (jpki_site_issuer(site->ctx, spec->cs, &rt->issuer, err,
                             sizeof(err))
            != JPKI_OK)
        {
            MJPKI_SITE_FAIL(0, s, ptemp, "JPKIIssuer %s%s%s", spec->name,
                            rt->issuer ? ": " : " ", err);
            return !OK;
        }

        if (spec->ocsp_url != NULL
            && mjpki_site_ocsp(pconf, ptemp, s, rt) != OK)
        {
            return !OK;
        }
    }

    return OK;
}


/* Stage 4: the store's server work: the TLS context, the address. */
static int
mjpki_site_store(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                 mjpki_site *site)
{
    const char    *msg;
    apr_status_t   rv;

    if (site->store != JPKI_STORE_REDIS) {
        return OK;
    }

    if (site->redis_tls) {
        msg = mjpki_tls_ctx(pconf, site->redis_tls_ca, &site->redis_ssl);
        if (msg != NULL) {
            MJPKI_SITE_FAIL(0, s, ptemp, "%s", msg);
            return !OK;
        }
    }

    if (site->redis_unix) {
#if APR_HAVE_SOCKADDR_UN
        rv = apr_sockaddr_info_get(&site->redis_sa, site->redis_unix,
                                   APR_UNIX, 0, 0, pconf);
#else
        rv = APR_ENOTIMPL;
#endif
    } else {
        rv = apr_sockaddr_info_get(&site->redis_sa, site->redis_host,
                                   APR_UNSPEC, site->redis_port, 0, pconf);
    }
    if (rv != APR_SUCCESS) {
        MJPKI_SITE_FAIL(rv, s, ptemp, "redis address \"%s\" does not "
                        "resolve", site->redis_addr);
        return !OK;
    }

    return OK;
}


static int
mjpki_build_site(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                 mjpki_site *site)
{
    char  err[256];

    site->server = s;

    if (mjpki_site_required(ptemp, s, site) != OK
        || mjpki_site_context(pconf, ptemp, s, site) != OK
        || mjpki_site_issuers(pconf, ptemp, s, site) != OK)
    {
        return !OK;
    }

    if (jpki_site_finish(JPKI_SERVER_APACHE, site->ctx,
                         site->secret_file != NULL,
                         (size_t) site->issuers->nelts, site->store != 0,
                         err, sizeof(err))
        != JPKI_OK)
    {
        MJPKI_SITE_FAIL(0, s, ptemp, "%s", err);
        return !OK;
    }

    if (mjpki_site_store(pconf, ptemp, s, site) != OK) {
        return !OK;
    }

    site->built = 1;

    return OK;
}


/* Checks the merged policy of a section (over its server's defaults). */
static int
mjpki_check_section(apr_pool_t *ptemp, server_rec *s, mjpki_site *site,
                   ap_conf_vector_t *sec, int vhost_sites)
{
    int             fatal;
    mjpki_dir_conf  *base, *d, *m;
    char            err[256];

    base = ap_get_module_config(s->lookup_defaults, &auth_jpki_module);
    d = sec ? ap_get_module_config(sec, &auth_jpki_module) : base;

    if (d == NULL || base == NULL || !mjpki_dir_has_settings(d)) {
        return OK;
    }

    m = sec ? mjpki_merge_dir_conf(ptemp, base, d) : base;

    if (!mjpki_site_configured(site)) {
        if (m->endpoints != 1 && m->health != 1) {
            return OK;
        }
        /* the main server's sections apply to every virtual host: when
         * virtual hosts have sites, the main server may have none */
        fatal = s->is_virtual || !vhost_sites;
        ap_log_error(APLOG_MARK, APLOG_STARTUP | (fatal ? APLOG_EMERG
                                                        : APLOG_WARNING),
                     0, NULL, "jpki: %s in <Location %s> of %s: the server "
                     "has no %s",
                     m->endpoints == 1 ? "JPKIEndpoints" : "JPKIHealth",
                     d->where ? d->where : "/",
                     mjpki_server_name(ptemp, s),
                     jpki_conf_site_pieces(JPKI_SERVER_APACHE));
        return fatal ? !OK : OK;
    }

    err[0] = '\0';
    if (mjpki_dir_policy(ptemp, site, m, err, sizeof(err)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: settings for \"%s\" (%s): %s",
                     d->where ? d->where : "the server",
                     mjpki_server_name(ptemp, s), err);
        return !OK;
    }

    return OK;
}


/* A site directive of a server whose site is none does nothing (as on
 * nginx, refused): a virtual host's, when the main server has no site
 * either; the main server's, when no virtual host has a site that takes
 * it. */
static int
mjpki_check_unused(server_rec *s, int vhost_sites)
{
    mjpki_srv_conf  *conf;

    conf = ap_get_module_config(s->module_config, &auth_jpki_module);
    if (conf->set_name == NULL || mjpki_site_configured(conf->site)
        || (!s->is_virtual && vhost_sites))
    {
        return OK;
    }

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                 "jpki: \"%s\" here has no effect: %s in %s:%d",
                 conf->set_name,
                 jpki_site_unused(JPKI_SERVER_APACHE, s->is_virtual
                                  ? JPKI_SITE_UNUSED_ALONE
                                  : JPKI_SITE_UNUSED_TOP),
                 conf->set_file, conf->set_line);

    return !OK;
}


int
mjpki_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                  server_rec *s)
{
    server_rec          *sv;
    mjpki_srv_conf       *conf;
    core_server_config  *core;
    apr_array_header_t  *secs[2];
    int                  i, k, vhost_sites = 0;

    for (sv = s; sv; sv = sv->next) {
        conf = ap_get_module_config(sv->module_config, &auth_jpki_module);
        if (!mjpki_site_configured(conf->site)) {
            continue;
        }
        vhost_sites |= sv->is_virtual;
        if (conf->site->built) {
            continue;
        }
        if (mjpki_build_site(pconf, ptemp, sv, conf->site) != OK) {
            return !OK;
        }
    }

    for (sv = s; sv; sv = sv->next) {
        conf = ap_get_module_config(sv->module_config, &auth_jpki_module);
        if (mjpki_check_unused(sv, vhost_sites) != OK
            || mjpki_check_section(ptemp, sv, conf->site, NULL, vhost_sites)
            != OK)
        {
            return !OK;
        }
        core = ap_get_core_module_config(sv->module_config);
        secs[0] = core->sec_url;
        secs[1] = core->sec_dir;
        for (k = 0; k < 2; k++) {
            for (i = 0; secs[k] && i < secs[k]->nelts; i++) {
                if (mjpki_check_section(ptemp, sv, conf->site,
                        APR_ARRAY_IDX(secs[k], i, ap_conf_vector_t *),
                        vhost_sites)
                    != OK)
                {
                    return !OK;
                }
            }
        }
    }

    return OK;
}

