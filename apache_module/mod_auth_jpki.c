/*
 * mod_auth_jpki.c - the JPKI (My Number Card) login gate for Apache httpd.
 *
 *   AuthType JPKI + Require valid-user      the gate (an authn hook)
 *   Require jpki-account ID...              an account allow-list (authz)
 *   JPKIEndpoints On                        <location>/challenge, /login,
 *                                           /logout, /status (a handler)
 *   JPKIHealth On                           JSON for monitoring
 *
 * Same requests, same answers as the nginx module: both drive the core's
 * transaction (common/jpki.h) and send its verdict (status, JSON body,
 * Set-Cookie, Location) as they are.  Here the I/O the transaction asks for
 * (store commands, OCSP) is done with bounded blocking calls
 * (mod_auth_jpki_io.c).  On success r->user (REMOTE_USER) is the account,
 * the environment has JPKI_ACCOUNT and JPKI_CERT_ID, and the request headers
 * carry the account header for mod_proxy upstreams; every client copy of
 * the account header and of any X-JPKI-* header is removed from every
 * request, gated or not.
 */

#include "mod_auth_jpki.h"
#include "gate.h"

#include "mod_auth.h"
#include "ap_provider.h"
#include "util_filter.h"
#include "util_mutex.h"
#include "apr_lib.h"
#include "apr_atomic.h"
#include "ap_mpm.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* the request being served by this thread: core log lines get its
 * context (client address) */
static __thread request_rec  *mjpki_cur_r;

/* The JSON of a refusal the module makes itself (the core's wording). */
const char *
mjpki_json_error(request_rec *r, jpki_err e, apr_size_t *len)
{
    char  *buf = apr_palloc(r->pool, 160);

    *len = jpki_error_json(e, buf, 160);
    return buf;
}


void
mjpki_set_current_request(request_rec *r)
{
    mjpki_cur_r = r;
}


request_rec *
mjpki_current_request(void)
{
    return mjpki_cur_r;
}


mjpki_site *
mjpki_site_of(request_rec *r)
{
    mjpki_srv_conf  *conf;

    conf = ap_get_module_config(r->server->module_config, &auth_jpki_module);

    return conf->site;
}


mjpki_dir_conf *
mjpki_dir_of(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &auth_jpki_module);
}


int
mjpki_is_jpki_auth(request_rec *r)
{
    const char  *type = ap_auth_type(r);

    return type != NULL && strcasecmp(type, JPKI_AUTH_TYPE) == 0;
}


/* ------------------------------------------------------------------ */
/* Gate headers                                                        */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* The gate: AuthType JPKI                                             */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* Endpoints: JPKIEndpoints On                                         */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* Endpoint requests are no files                                      */
/* ------------------------------------------------------------------ */

/* The endpoints and the health answer are made by the module, never read
 * from the disk: their requests skip the walk of the document root's
 * directories (a stat of every directory on the path, .htaccess files),
 * as mod_proxy's requests do.  Whether a request is one is known from the
 * first walk of the <Location> sections, which has run when the name is
 * translated; the map to storage that follows starts again from the
 * server's defaults.  <Directory> sections thus do not apply to the
 * endpoints: their access rules go in their <Location>. */
#define MJPKI_NO_FILE_NOTE  "jpki-no-file"

static int
mjpki_translate_name(request_rec *r)
{
    mjpki_dir_conf  *d = mjpki_dir_of(r);

    if (d != NULL && (d->endpoints == 1 || d->health == 1 || d->admin == 1
                      || d->metrics == 1)) {
        apr_table_setn(r->notes, MJPKI_NO_FILE_NOTE, "1");
    }

    return DECLINED;
}


static int
mjpki_map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, MJPKI_NO_FILE_NOTE) != NULL ? OK
                                                               : DECLINED;
}


/* ------------------------------------------------------------------ */
/* Process hooks                                                       */
/* ------------------------------------------------------------------ */

static int
mjpki_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return ap_mutex_register(pconf, JPKI_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT,
                             0) == APR_SUCCESS ? OK : !OK;
}


static int
mjpki_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                 server_rec *s)
{
    return mjpki_io_post_config(pconf, plog, ptemp, s);
}


static void
mjpki_child_init(apr_pool_t *pchild, server_rec *s)
{
    mjpki_io_child_init(pchild, s);
}


static void
mjpki_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(mjpki_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(mjpki_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(mjpki_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(mjpki_child_init, NULL, NULL, APR_HOOK_MIDDLE);

    ap_hook_post_read_request(mjpki_post_read_request, NULL, NULL,
                              APR_HOOK_REALLY_FIRST);
    ap_hook_header_parser(mjpki_header_parser, NULL, NULL,
                          APR_HOOK_REALLY_FIRST);
    ap_hook_translate_name(mjpki_translate_name, NULL, NULL,
                           APR_HOOK_REALLY_FIRST);
    ap_hook_map_to_storage(mjpki_map_to_storage, NULL, NULL,
                           APR_HOOK_FIRST);
    ap_hook_check_authn(mjpki_authenticate, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(mjpki_note_auth_failure, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_fixups(mjpki_fixups_identity, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(mjpki_fixups_handler, NULL, NULL, APR_HOOK_LAST);
    /* first: a ProxyPass covering the endpoints' location does not win */
    ap_hook_handler(mjpki_endpoint_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(mjpki_health_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(mjpki_admin_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(mjpki_metrics_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_insert_error_filter(mjpki_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_register_output_filter(JPKI_JSON_FILTER, mjpki_json_error_filter, NULL,
                              AP_FTYPE_CONTENT_SET);

    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "jpki-account",
                              AUTHZ_PROVIDER_VERSION, &mjpki_authz_account,
                              AP_AUTH_INTERNAL_PER_CONF);
}


AP_DECLARE_MODULE(auth_jpki) = {
    STANDARD20_MODULE_STUFF,
    mjpki_create_dir_conf,          /* create per-directory config */
    mjpki_merge_dir_conf,           /* merge per-directory config */
    mjpki_create_srv_conf,          /* create per-server config */
    mjpki_merge_srv_conf,           /* merge per-server config */
    mjpki_cmds,                     /* directives */
    mjpki_register_hooks            /* hooks */
};

