/*
 * mod_auth_jpki_audit.c - the audit file (JPKIAuditLog, common/audit.h):
 * Apache's part.  The parent opens the file in post_config (in pconf: a
 * graceful or plain restart closes it and opens it again, so that a
 * rotated file is reopened as Apache's own logs are) and takes its
 * chain's head (kept across restarts in the shared area, else read from
 * the file's last line); children inherit the descriptor and write a
 * verdict's line there under the shared area's mutex.  The chain, the
 * line and its write are the core's (jpki_site_audit_write).
 */

#include "mod_auth_jpki.h"

APLOG_USE_MODULE(auth_jpki);


/* check_config: two sites writing one file under different keys would
 * make a chain no key verifies. */
int
mjpki_audit_check(apr_pool_t *ptemp, server_rec *s)
{
    apr_array_header_t  *a = apr_array_make(ptemp, 8, sizeof(jpki_site *));
    server_rec          *sv;
    mjpki_site          *site;
    char                 err[1200];
    int                  i;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (site->js == NULL) {
            continue;
        }
        for (i = 0; i < a->nelts; i++) {
            if (APR_ARRAY_IDX(a, i, jpki_site *) == site->js) {
                break;
            }
        }
        if (i == a->nelts) {
            APR_ARRAY_PUSH(a, jpki_site *) = site->js;
        }
    }

    if (jpki_site_audit_clash((const jpki_site *const *) a->elts,
                              (size_t) a->nelts, JPKI_SERVER_APACHE, err,
                              sizeof(err))
        != JPKI_OK)
    {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s", err);
        return !OK;
    }

    return OK;
}


/* post_config, in the parent: the site's audit file opened for the
 * children, its chain's head. */
int
mjpki_audit_post_config(apr_pool_t *pconf, server_rec *s, mjpki_site *site)
{
    const char     *path = jpki_site_audit_file(site->js);
    jpki_shared    *area;
    jpki_shm_lock   lock;
    apr_status_t    rv;
    jpki_err        e;
    char            msg[1200];

    if (path == NULL) {
        return OK;
    }

    rv = apr_file_open(&site->audit_file, path,
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD,
                       pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv, NULL,
                     "jpki: JPKIAuditLog: cannot open \"%s\"", path);
        return !OK;
    }

    if (mjpki_shared_area(s, &area, &lock) != OK) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: no shared area for the audit chain");
        return !OK;
    }

    e = jpki_site_audit_recover(site->js, area, &lock,
                                (int64_t) apr_time_sec(apr_time_now()), msg,
                                sizeof(msg));
    if (e != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s", msg);
        return !OK;
    }
    if (msg[0] != '\0') {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "jpki: %s", msg);
    }

    return OK;
}


/* The request's id for the core, ud the request, asked when an audit
 * line or a record needs it: mod_unique_id's UNIQUE_ID, else the
 * request's log id (made now when the error log has not asked for one,
 * so that %L of a later error line is the same). */
const char *
mjpki_audit_request_id(const void *ud, size_t *len)
{
    request_rec  *r = (request_rec *) ud;
    request_rec  *m = r->main != NULL ? r->main : r;
    const char   *u = apr_table_get(m->subprocess_env, "UNIQUE_ID");

    if (u == NULL) {
        if (m->log_id == NULL) {
            ap_run_generate_log_id(m->connection, m, &m->log_id);
        }
        u = m->log_id;
    }

    *len = u != NULL ? strlen(u) : 0;
    return u;
}


/* A verdict's audit line: in the site's audit file, else (none, or its
 * write failed) in the error log as before. */
void
mjpki_audit(request_rec *r, mjpki_site *site, const char *audit)
{
    apr_os_file_t  fd;
    char           err[1200] = "the audit file is not open";

    if (site->audit_file != NULL) {
        if (apr_os_file_get(&fd, site->audit_file) == APR_SUCCESS
            && jpki_site_audit_write(site->js, audit, fd,
                                     (int64_t) apr_time_sec(apr_time_now()),
                                     err, sizeof(err))
               == 0)
        {
            return;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, APR_FROM_OS_ERROR(errno), r,
                      "jpki: %s", err);
    }

    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "jpki audit: %s", audit);
}
