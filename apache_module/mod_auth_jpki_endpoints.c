/*
 * mod_auth_jpki_endpoints.c - the endpoints (JPKIEndpoints On: challenge,
 * login, logout, status; the body read, then a transaction) and health
 * (JPKIHealth On; the core writes the JSON).
 */

#include "mod_auth_jpki.h"
#include "gate.h"
#include "edge.h"
#include "admin.h"

#include "apr_atomic.h"

#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


/* Reads a login body of at most JPKI_BODY_MAX bytes: OK, or the HTTP
 * status of the failure (413 when too large). */
static int
mjpki_read_body(request_rec *r, const uint8_t **out, size_t *outlen)
{
    apr_bucket_brigade  *bb;
    apr_bucket          *b;
    apr_status_t         rv;
    const char          *cl, *data;
    char                *end, *buf;
    apr_off_t            clen;
    apr_size_t           dlen;
    size_t               len = 0;
    int                  eos = 0;

    cl = apr_table_get(r->headers_in, "Content-Length");
    if (cl != NULL && apr_strtoff(&clen, cl, &end, 10) == APR_SUCCESS
        && *end == '\0' && clen > JPKI_BODY_MAX)
    {
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    buf = apr_palloc(r->pool, JPKI_BODY_MAX);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    while (!eos) {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            /* AP_FILTER_ERROR: the core's filter already answered (413 for
             * LimitRequestBody, 400...): made JSON by our error filter */
            apr_brigade_destroy(bb);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }

        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b))
        {
            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &dlen, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                apr_brigade_destroy(bb);
                return HTTP_BAD_REQUEST;
            }
            if (dlen > JPKI_BODY_MAX - len) {
                apr_brigade_destroy(bb);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + len, data, dlen);
            len += dlen;
        }

        apr_brigade_cleanup(bb);
    }

    apr_brigade_destroy(bb);

    *out = (const uint8_t *) buf;
    *outlen = len;

    return OK;
}


static int
mjpki_run_endpoint(request_rec *r, mjpki_site *site, const jpki_policy *pol,
                  jpki_op op, const uint8_t *body, size_t len)
{
    const jpki_verdict  *v = mjpki_transact(r, site, pol, op, body, len);

    return v != NULL ? mjpki_send_verdict(r, v) : HTTP_INTERNAL_SERVER_ERROR;
}


int
mjpki_endpoint_handler(request_rec *r)
{
    mjpki_site           *site;
    const jpki_policy   *pol;
    const uint8_t       *body = NULL;
    const char          *u;
    size_t               len = 0;
    jpki_op              op;
    int                  rc, login;

    if (r->handler == NULL || strcmp(r->handler, JPKI_HANDLER) != 0) {
        return DECLINED;
    }

    u = r->uri ? r->uri : "";
    if (!jpki_endpoint_op(u, strlen(u), r->method_number == M_POST, &op)) {
        return mjpki_refuse(r, JPKI_ERR_NOT_FOUND);
    }

    site = mjpki_site_of(r);
    pol = mjpki_request_policy(r, site, "JPKIEndpoints");
    if (pol == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    login = jpki_op_is_login(op);
    if (jpki_op_has_body(op) && r->method_number == M_POST) {
        rc = mjpki_read_body(r, &body, &len);
        if (rc == AP_FILTER_ERROR) {
            return rc;
        }
        if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return mjpki_refuse(r, JPKI_ERR_TOO_LARGE);
        }
        if (rc != OK) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "jpki: login body "
                          "not read (status %d)", rc);
            return mjpki_refuse(r, JPKI_ERR_BAD_REQUEST);
        }
    }

    if (!login) {
        return mjpki_run_endpoint(r, site, pol, op, body, len);
    }

    /* the logins of the site this child verifies at once, against the
     * cap of the location (JPKIThrottle concurrency=, the site's value
     * unless the location has its own) */
    if (jpki_edge_login_busy(site->ctx, op, pol,
                             apr_atomic_inc32(&site->logins))) {
        apr_atomic_dec32(&site->logins);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "jpki: login refused: "
                      "%u logins being verified in this child (JPKIThrottle "
                      "concurrency=)", pol->login_concurrency);
        return mjpki_refuse(r, JPKI_ERR_BUSY);
    }
    rc = mjpki_run_endpoint(r, site, pol, op, body, len);
    apr_atomic_dec32(&site->logins);
    mjpki_hold(r);                     /* not counted as a login meanwhile */

    return rc;
}


/* ------------------------------------------------------------------ */
/* The admin API: JPKIAdmin On                                         */
/* ------------------------------------------------------------------ */

/* Who may ask and what: the core's (the client address, the bearer
 * token, the route).  A location without its token file or its list is
 * refused by the core, and said in the log. */
int
mjpki_admin_handler(request_rec *r)
{
    mjpki_site          *site;
    const jpki_policy  *pol;
    const uint8_t       *body = NULL;
    size_t               len = 0;
    char                 why[256];
    int                  rc;

    if (r->handler == NULL || strcmp(r->handler, JPKI_ADMIN_HANDLER) != 0) {
        return DECLINED;
    }

    site = mjpki_site_of(r);
    pol = mjpki_request_policy(r, site, "JPKIAdmin");
    if (pol == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (jpki_admin_missing(pol, JPKI_SERVER_APACHE, why, sizeof(why))) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: JPKIAdmin at %s "
                      "%s", r->uri, why);
    }

    if (r->method_number == M_POST) {
        rc = mjpki_read_body(r, &body, &len);
        if (rc == AP_FILTER_ERROR) {
            return rc;
        }
        if (rc != OK) {
            return mjpki_refuse(r, rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                   ? JPKI_ERR_TOO_LARGE : JPKI_ERR_BAD_REQUEST);
        }
    }

    return mjpki_run_endpoint(r, site, pol, JPKI_OP_ADMIN, body, len);
}


/* A GET answered by a transaction of op (health, metrics), for the
 * requests of handler (directive: its name for messages). */
static int
mjpki_get_op(request_rec *r, const char *handler, const char *directive,
             jpki_op op)
{
    mjpki_site          *site;
    const jpki_policy  *pol;

    if (r->handler == NULL || strcmp(r->handler, handler) != 0) {
        return DECLINED;
    }

    if (r->method_number != M_GET) {
        return mjpki_refuse(r, JPKI_ERR_METHOD);
    }

    site = mjpki_site_of(r);
    pol = mjpki_request_policy(r, site, directive);

    return pol != NULL ? mjpki_run_endpoint(r, site, pol, op, NULL, 0)
                       : HTTP_INTERNAL_SERVER_ERROR;
}


/* ------------------------------------------------------------------ */
/* Metrics: JPKIMetrics On                                             */
/* ------------------------------------------------------------------ */

/* The counters of every child and the site's gauges, as Prometheus text
 * (a transaction of the core; who may ask: the allow-list and the token
 * of the admin API, refused at startup when it has neither). */
int
mjpki_metrics_handler(request_rec *r)
{
    return mjpki_get_op(r, JPKI_METRICS_HANDLER, "JPKIMetrics",
                        JPKI_OP_METRICS);
}


/* ------------------------------------------------------------------ */
/* Health: JPKIHealth On                                               */
/* ------------------------------------------------------------------ */

/* JSON for monitoring (a transaction of the core: every CRL of this
 * process, whether the store answers): 200 when all is well, 503
 * otherwise. */
int
mjpki_health_handler(request_rec *r)
{
    return mjpki_get_op(r, JPKI_HEALTH_HANDLER, "JPKIHealth",
                        JPKI_OP_HEALTH);
}
