/*
 * mod_auth_jpki_site.c - the sites of the Apache JPKI gate built from the
 * configuration (check_config, which also runs for `apachectl configtest`,
 * so that every configuration error is reported there with a sentence):
 * the core builds each site (common/site.c), Apache resolves its
 * addresses; then each section's merged policy is checked over its
 * server's defaults.
 */

#include "mod_auth_jpki.h"
#include "admin.h"

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
mjpki_site_cleanup(void *data)
{
    mjpki_site  *site = data;

    jpki_site_free(site->js);
    site->js = NULL;
    site->ctx = NULL;

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


/* A sentence about the site of server s at start-up. */
#define MJPKI_SITE_FAIL(rv, s, ptemp, fmt, ...)                              \
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv, NULL,          \
                 "jpki: %s: " fmt, mjpki_server_name(ptemp, s), __VA_ARGS__)


/* The addresses: each issuer's OCSP responder (the core's target of its
 * URL), the Redis server's. */
static int
mjpki_site_addresses(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                     mjpki_site *site)
{
    const jpki_store_spec   *st = jpki_site_store(site->js);
    const jpki_conf_issuer  *cs;
    apr_status_t             rv;
    size_t                   i;

    for (i = 0; i < jpki_site_issuer_count(site->js); i++) {
        cs = jpki_site_issuer_spec(site->js, i);
        if (cs->ocsp == NULL) {
            continue;
        }
        rv = apr_sockaddr_info_get(&site->ocsp_addr[i], cs->ocsp_host,
                                   APR_UNSPEC, (apr_port_t) cs->ocsp_port, 0,
                                   pconf);
        if (rv != APR_SUCCESS) {
            MJPKI_SITE_FAIL(rv, s, ptemp, "JPKIIssuer %s: OCSP host \"%s\" "
                            "does not resolve", cs->name, cs->ocsp_host);
            return !OK;
        }
    }

    if (st->kind != JPKI_STORE_KIND_REDIS) {
        return OK;
    }

    for (i = 0; i < st->n_sentinels; i++) {
        rv = apr_sockaddr_info_get(&site->sentinel_sa[i],
                                   st->sentinels[i].host, APR_UNSPEC,
                                   (apr_port_t) st->sentinels[i].port, 0,
                                   pconf);
        if (rv != APR_SUCCESS) {
            MJPKI_SITE_FAIL(rv, s, ptemp, "sentinel address \"%s\" does not "
                            "resolve", st->sentinels[i].host);
            return !OK;
        }
    }
    if (st->n_sentinels > 0) {
        return OK;
    }

    if (st->unix_path[0]) {
#if APR_HAVE_SOCKADDR_UN
        rv = apr_sockaddr_info_get(&site->redis_sa, st->unix_path, APR_UNIX,
                                   0, 0, pconf);
#else
        rv = APR_ENOTIMPL;
#endif
    } else {
        rv = apr_sockaddr_info_get(&site->redis_sa, st->host, APR_UNSPEC,
                                   (apr_port_t) st->port, 0, pconf);
    }
    if (rv != APR_SUCCESS) {
        MJPKI_SITE_FAIL(rv, s, ptemp, "redis address \"%s\" does not "
                        "resolve", st->addr);
        return !OK;
    }

    return OK;
}


/* The site built by the core (what it lacks, its files, its issuers: a
 * sentence), then its waits and addresses.  (JPKIThrottle at the server
 * level comes with the sections' policies: each request's merges it.) */
static int
mjpki_build_site(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                 mjpki_site *site)
{
    const jpki_site_times  *t;
    char                    err[512];

    site->server = s;

    if (jpki_site_build(site->sc, JPKI_SERVER_APACHE, mjpki_log_cb, site,
                        &site->js, err, sizeof(err))
        != JPKI_OK)
    {
        MJPKI_SITE_FAIL(0, s, ptemp, "%s", err);
        return !OK;
    }
    apr_pool_cleanup_register(pconf, site, mjpki_site_cleanup,
                              apr_pool_cleanup_null);
    site->ctx = jpki_site_ctx(site->js);

    t = jpki_site_times_of(site->js);
    site->redis_timeout = (apr_interval_time_t) t->redis_timeout_ms * 1000;
    site->redis_connect_timeout =
        (apr_interval_time_t) t->redis_connect_timeout_ms * 1000;
    site->ocsp_timeout = (apr_interval_time_t) t->ocsp_timeout_ms * 1000;

    return mjpki_site_addresses(pconf, ptemp, s, site);
}


/* Checks the merged policy of a section (over its server's defaults). */
static int
mjpki_check_section(apr_pool_t *ptemp, server_rec *s, mjpki_site *site,
                   ap_conf_vector_t *sec, int vhost_sites)
{
    int                 fatal;
    mjpki_dir_conf      *base, *d, *m;
    const jpki_policy  *pol;
    char            err[256];

    base = ap_get_module_config(s->lookup_defaults, &auth_jpki_module);
    d = sec ? ap_get_module_config(sec, &auth_jpki_module) : base;

    if (d == NULL || base == NULL
        || !(d->endpoints == 1 || d->health == 1 || d->metrics == 1
             || jpki_locconf_any(&d->lc)))
    {
        return OK;
    }

    m = sec ? mjpki_merge_dir_conf(ptemp, base, d) : base;

    if (!mjpki_site_configured(site)) {
        if (m->endpoints != 1 && m->health != 1 && m->metrics != 1) {
            return OK;
        }
        /* the main server's sections apply to every virtual host: when
         * virtual hosts have sites, the main server may have none */
        fatal = s->is_virtual || !vhost_sites;
        ap_log_error(APLOG_MARK, APLOG_STARTUP | (fatal ? APLOG_EMERG
                                                        : APLOG_WARNING),
                     0, NULL, "jpki: %s in <Location %s> of %s: the server "
                     "has no %s",
                     m->endpoints == 1 ? "JPKIEndpoints"
                     : m->health == 1 ? "JPKIHealth" : "JPKIMetrics",
                     d->where ? d->where : "/",
                     mjpki_server_name(ptemp, s),
                     jpki_conf_site_pieces(JPKI_SERVER_APACHE));
        return fatal ? !OK : OK;
    }

    err[0] = '\0';
    if ((pol = mjpki_dir_policy(ptemp, site, m, err, sizeof(err))) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: settings for \"%s\" (%s): %s",
                     d->where ? d->where : "the server",
                     mjpki_server_name(ptemp, s), err);
        return !OK;
    }

    if (m->metrics == 1
        && jpki_metrics_missing(pol, JPKI_SERVER_APACHE, err, sizeof(err)))
    {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: JPKIMetrics in <Location %s> (%s) %s",
                     d->where ? d->where : "/",
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
    char            msg[1200];

    conf = ap_get_module_config(s->module_config, &auth_jpki_module);
    if (mjpki_site_configured(conf->site) || (!s->is_virtual && vhost_sites)
        || jpki_siteconf_unused(conf->site->sc, JPKI_SERVER_APACHE,
                                s->is_virtual ? JPKI_SITE_UNUSED_ALONE
                                              : JPKI_SITE_UNUSED_TOP,
                                msg, sizeof(msg)) == 0)
    {
        return OK;
    }

    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL, "jpki: %s",
                 msg);

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
        if (conf->site->js != NULL) {
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

    return mjpki_audit_check(ptemp, s);
}

