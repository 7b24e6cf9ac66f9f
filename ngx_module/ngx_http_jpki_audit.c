/*
 * ngx_http_jpki_audit.c - the audit file (jpki_audit_log, common/audit.h):
 * nginx's part.  The file is one of the cycle's open files
 * (ngx_conf_open_file): opened by the master, inherited by the workers,
 * reopened by `nginx -s reopen` (USR1) in the master and every worker, as
 * access_log is.  The master takes each chain's head (kept across a
 * reload in the zone jpki_shared, else read from the file's last line);
 * a worker writes a verdict's line on its descriptor, a local append
 * under the zone's mutex, the cost of an access_log line.  The chain, the
 * line and its write are the core's (jpki_site_audit_write).
 */

#include "ngx_http_jpki.h"
#include "audit.h"


static ngx_str_t  ngx_http_jpki_request_id = ngx_string("request_id");


/* At the site's end: its audit file among the cycle's open files. */
char *
ngx_http_jpki_audit_open(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    const char  *path = jpki_site_audit_file(jmcf->js);
    ngx_str_t    name;

    if (path == NULL) {
        return NGX_CONF_OK;
    }

    name.len = ngx_strlen(path);
    name.data = ngx_pnalloc(cf->pool, name.len + 1);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(name.data, path, name.len + 1);

    jmcf->audit_file = ngx_conf_open_file(cf->cycle, &name);

    return jmcf->audit_file != NULL ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* Postconfiguration: two sites writing one file under different keys are
 * refused; $request_id's index for the lines. */
ngx_int_t
ngx_http_jpki_audit_conf(ngx_conf_t *cf)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **site;
    const jpki_site            **js;
    ngx_uint_t                   i;
    char                         err[NGX_MAX_PATH + 200];

    sites = ngx_http_conf_get_module_main_conf(cf, ngx_http_jpki_module);
    site = sites->sites.elts;

    js = ngx_palloc(cf->temp_pool,
                    (sites->sites.nelts + 1) * sizeof(jpki_site *));
    if (js == NULL) {
        return NGX_ERROR;
    }
    for (i = 0; i < sites->sites.nelts; i++) {
        js[i] = site[i]->js;
    }

    if (jpki_site_audit_clash(js, sites->sites.nelts, JPKI_SERVER_NGINX, err,
                              sizeof(err))
        != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_ERROR;
    }

    sites->request_id_index = ngx_http_get_variable_index(cf,
                                                &ngx_http_jpki_request_id);
    return sites->request_id_index == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/* In the master (init module: a start, a reload), once the zones and the
 * files are set up: each site's chain kept, or its head read. */
ngx_int_t
ngx_http_jpki_audit_init_module(ngx_cycle_t *cycle)
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **site;
    ngx_uint_t                   i;
    jpki_shm_lock                lock;
    jpki_err                     e;
    char                         msg[NGX_MAX_PATH + 300];

    sites = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_jpki_module);
    if (sites == NULL) {
        return NGX_OK;
    }

    site = sites->sites.elts;

    for (i = 0; i < sites->sites.nelts; i++) {
        if (jpki_site_audit_file(site[i]->js) == NULL) {
            continue;
        }

        if (sites->shared_zone == NULL || sites->shared_zone->data == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "jpki: no shared "
                          "zone for the audit chain");
            return NGX_ERROR;
        }

        lock.lock = ngx_http_jpki_shm_lock;
        lock.unlock = ngx_http_jpki_shm_unlock;
        lock.ud = sites->shared_zone->shm.addr;

        e = jpki_site_audit_recover(site[i]->js, sites->shared_zone->data,
                                    &lock, ngx_time(), msg, sizeof(msg));
        if (e != JPKI_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "jpki: %s", msg);
            return NGX_ERROR;
        }

        if (msg[0] != '\0') {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0, "jpki: %s", msg);
        }
    }

    return NGX_OK;
}


/* The request's $request_id for the core (NULL: none), ud the request:
 * asked only when an audit line or a record needs it ($request_id draws
 * random bytes, a system call in OpenSSL 3.0, each time it is first read
 * in a request). */
const char *
ngx_http_jpki_audit_request_id(const void *ud, size_t *len)
{
    ngx_http_request_t         *r = (ngx_http_request_t *) ud;
    ngx_http_jpki_sites_t      *sites;
    ngx_http_variable_value_t  *v;

    *len = 0;

    sites = ngx_http_get_module_main_conf(r, ngx_http_jpki_module);
    if (sites == NULL || sites->request_id_index == NGX_ERROR) {
        return NULL;
    }

    v = ngx_http_get_indexed_variable(r, sites->request_id_index);
    if (v == NULL || v->not_found || v->len == 0) {
        return NULL;
    }

    *len = v->len;
    return (const char *) v->data;
}


/* A verdict's audit line: in the site's audit file, else (none, or its
 * write failed) in the error log as before. */
void
ngx_http_jpki_audit(ngx_http_request_t *r, const char *audit)
{
    ngx_http_jpki_main_conf_t  *jmcf = ngx_http_jpki_site(r);
    ngx_open_file_t            *file = jmcf->audit_file;
    char                        err[NGX_MAX_PATH + 100];

    if (file != NULL) {
        if (file->fd != NGX_INVALID_FILE
            && jpki_site_audit_write(jmcf->js, audit, file->fd, ngx_time(),
                                     err, sizeof(err))
               == 0)
        {
            return;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno, "jpki: %s",
                      file->fd != NGX_INVALID_FILE ? err
                      : "the audit file is not open");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "jpki audit: %s",
                  audit);
}
