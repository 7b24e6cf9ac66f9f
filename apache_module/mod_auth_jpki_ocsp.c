/*
 * mod_auth_jpki_ocsp.c - OCSP queries: an HTTP/1.0 POST on a connection of
 * the core (common/conn.c: the request, the answer's framing and bounds,
 * what to log) with one deadline for the connection and the whole answer;
 * the threads of a child asking for the same certificate share one query
 * (the core's flight table).
 */

#include "mod_auth_jpki.h"
#include "conn.h"

#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


static int
mjpki_ocsp_query(mjpki_site *site, int issuer, request_rec *r,
                 const uint8_t *body, size_t len, const uint8_t **resp,
                 size_t *resp_len)
{
    const jpki_conf_issuer  *cs = jpki_site_issuer_spec(site->js, issuer);
    apr_sockaddr_t          *sa = site->ocsp_addr[issuer];
    jpki_conn               *c;
    const jpki_ocsp_answer  *a;
    const char              *why;
    int                      status = 0;

    if (sa == NULL) {
        return 0;
    }

    c = jpki_conn_open((const struct sockaddr *) &sa->sa, sa->salen,
                       "OCSP responder", cs->ocsp);
    if (c == NULL) {
        return 0;
    }

    if (jpki_conn_ocsp(c, cs->ocsp_host_header, cs->ocsp_path, body, len)
            == JPKI_OK
        && mjpki_conn_run(c, 0, site->ocsp_timeout) == JPKI_CONN_DONE)
    {
        a = jpki_conn_answer(c);
        status = a->status;
        *resp = a->body_len > 0 ? apr_pmemdup(r->pool, a->body, a->body_len)
                                : (const uint8_t *) "";
        *resp_len = a->body_len;
    }

    why = jpki_conn_reason(c);
    if (why != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: %s", why);
    }

    jpki_conn_free(c);
    return status;
}


/* An OCSP query under way in this child is shared by the threads asking
 * for the same certificate meanwhile: the first one queries, the others
 * wait (each up to its own deadline) and take a copy of the answer (the
 * core's flight keeps it).  The last one out frees it. */
int
mjpki_ocsp_post(mjpki_site *site, int issuer, request_rec *r,
               const char *key, const uint8_t *body, size_t len,
               const uint8_t **resp, size_t *resp_len)
{
    jpki_flight         *f;
    const uint8_t       *rb = NULL;
    size_t               rl = 0;
    apr_time_t           deadline;
    apr_status_t         rv;
    size_t               klen;
    int                  status;

    klen = key != NULL ? strlen(key) : 0;

    if (!jpki_flight_shared(key, klen)
        || site->flight_mutex == NULL || site->flight_cond == NULL)
    {
        return mjpki_ocsp_query(site, issuer, r, body, len, resp, resp_len);
    }

    apr_thread_mutex_lock(site->flight_mutex);

    f = jpki_flight_find(site->flights, site->ocsp_addr[issuer], key, klen);

    if (f != NULL) {
        /* another thread is asking: wait for its answer */
        f->waiters++;
        deadline = apr_time_now() + site->ocsp_timeout;
        rv = APR_SUCCESS;
        while (!f->done && rv != APR_TIMEUP) {
            apr_interval_time_t left = deadline - apr_time_now();
            rv = left > 0 ? apr_thread_cond_timedwait(site->flight_cond,
                                                      site->flight_mutex,
                                                      left)
                          : APR_TIMEUP;
        }
        status = f->done ? f->status : 0;
        if (status) {
            *resp = apr_pmemdup(r->pool, f->body ? f->body : (uint8_t *) "",
                                f->body_len);
            *resp_len = f->body_len;
        }
        if (jpki_flight_leave(f)) {
            free(f);
        }
        apr_thread_mutex_unlock(site->flight_mutex);
        if (!status) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: the OCSP query "
                          "this login waited for failed or timed out");
        }
        return status;
    }

    f = calloc(1, sizeof(jpki_flight));
    if (f == NULL) {
        apr_thread_mutex_unlock(site->flight_mutex);
        return mjpki_ocsp_query(site, issuer, r, body, len, resp, resp_len);
    }
    jpki_flight_start(&site->flights, f, site->ocsp_addr[issuer], key, klen);
    apr_thread_mutex_unlock(site->flight_mutex);

    status = mjpki_ocsp_query(site, issuer, r, body, len, &rb, &rl);

    apr_thread_mutex_lock(site->flight_mutex);
    /* later logins ask again (or find the answer cached in the store) */
    if (jpki_flight_done(&site->flights, f, status, rb, rl)) {
        free(f);
    } else {
        apr_thread_cond_broadcast(site->flight_cond);
    }
    apr_thread_mutex_unlock(site->flight_mutex);

    if (status) {
        *resp = rb;
        *resp_len = rl;
    }
    return status;
}
