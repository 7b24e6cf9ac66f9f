/*
 * mod_auth_jpki_ocsp.c - OCSP queries: HTTP/1.0 POST (the request and the
 * answer's framing are the core's, common/http.c) with one deadline for
 * the connection and the whole answer.
 */

#include "mod_auth_jpki.h"

#include "apr_poll.h"

#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


static int
mjpki_ocsp_query(mjpki_site *site, mjpki_issuer_rt *iss, request_rec *r,
                 const uint8_t *body, size_t len, const uint8_t **resp,
                 size_t *resp_len)
{
    apr_socket_t      *sock;
    apr_time_t         deadline;
    apr_status_t       rv;
    apr_size_t         n;
    char              *req, *p;
    jpki_ocsp_answer   in;
    int                got;
    size_t             hlen;

    if (iss->ocsp_addr == NULL) {
        return 0;
    }

    deadline = apr_time_now() + site->ocsp_timeout;

    rv = mjpki_connect(&sock, iss->ocsp_addr, deadline, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: cannot connect to "
                      "OCSP responder \"%s\"%s", iss->spec->ocsp_url,
                      APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        return 0;
    }

    hlen = strlen(iss->ocsp_path) + strlen(iss->ocsp_host) + 256;
    req = apr_palloc(r->pool, hlen);
    hlen = jpki_ocsp_http_request(iss->ocsp_host, iss->ocsp_path, len,
                                  (char *) req, hlen);

    rv = mjpki_send_all(sock, req, hlen, deadline);
    if (rv == APR_SUCCESS) {
        rv = mjpki_send_all(sock, (const char *) body, len, deadline);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: OCSP request to "
                      "\"%s\" failed%s", iss->spec->ocsp_url,
                      APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        apr_socket_close(sock);
        return 0;
    }

    /* the answer's framing and bounds are the core's */
    jpki_ocsp_answer_init(&in, apr_palloc(r->pool, JPKI_OCSP_ANSWER_MAX),
                          JPKI_OCSP_ANSWER_MAX);

    do {
        p = (char *) jpki_ocsp_answer_room(&in, &n);
        rv = mjpki_set_deadline(sock, deadline);
        if (rv == APR_SUCCESS) {
            rv = apr_socket_recv(sock, p, &n);
        } else {
            n = 0;
        }

        if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: OCSP responder "
                          "\"%s\" timed out", iss->spec->ocsp_url);
            break;
        }
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: reading from "
                          "OCSP responder \"%s\" failed", iss->spec->ocsp_url);
            break;
        }

        got = jpki_ocsp_answer_read(&in, n, APR_STATUS_IS_EOF(rv) || n == 0);
        if (got == 1) {
            *resp = in.body;
            *resp_len = in.body_len;
            apr_socket_close(sock);
            return in.status;
        }
        if (got < 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: %s \"%s\"",
                          in.reason, iss->spec->ocsp_url);
        }
    } while (got == 0);

    apr_socket_close(sock);
    return 0;
}


/* An OCSP query under way in this child, shared by the threads asking for
 * the same certificate meanwhile: the first one queries, the others wait
 * (each up to its own deadline) and take a copy of the answer.  The last
 * one out frees it. */
struct mjpki_flight {
    struct mjpki_flight *next;
    char                 key[JPKI_CERT_ID_HEX_LEN + 1];
    int                  done;
    int                  status;
    int                  waiters;
    uint8_t             *resp;          /* malloc'ed */
    size_t               resp_len;
};


int
mjpki_ocsp_post(mjpki_site *site, mjpki_issuer_rt *iss, request_rec *r,
               const char *key, const uint8_t *body, size_t len,
               const uint8_t **resp, size_t *resp_len)
{
    struct mjpki_flight *f, **pp;
    const uint8_t       *rb = NULL;
    size_t               rl = 0;
    apr_time_t           deadline;
    apr_status_t         rv;
    int                  status;

    if (key == NULL || strlen(key) != JPKI_CERT_ID_HEX_LEN
        || site->flight_mutex == NULL || site->flight_cond == NULL)
    {
        return mjpki_ocsp_query(site, iss, r, body, len, resp, resp_len);
    }

    apr_thread_mutex_lock(site->flight_mutex);

    for (f = site->flights; f; f = f->next) {
        if (strcmp(f->key, key) == 0) {
            break;
        }
    }

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
        if (status && f->resp_len > 0) {
            *resp = apr_pmemdup(r->pool, f->resp, f->resp_len);
            *resp_len = f->resp_len;
        } else if (status) {
            *resp = (const uint8_t *) "";
            *resp_len = 0;
        }
        if (--f->waiters == 0 && f->done) {
            free(f->resp);
            free(f);
        }
        apr_thread_mutex_unlock(site->flight_mutex);
        if (!status) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: the OCSP query "
                          "this login waited for failed or timed out");
        }
        return status;
    }

    f = calloc(1, sizeof(struct mjpki_flight));
    if (f == NULL) {
        apr_thread_mutex_unlock(site->flight_mutex);
        return mjpki_ocsp_query(site, iss, r, body, len, resp, resp_len);
    }
    apr_cpystrn(f->key, key, sizeof(f->key));
    f->next = site->flights;
    site->flights = f;
    apr_thread_mutex_unlock(site->flight_mutex);

    status = mjpki_ocsp_query(site, iss, r, body, len, &rb, &rl);

    apr_thread_mutex_lock(site->flight_mutex);
    for (pp = &site->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;              /* later logins ask again (or find
                                           the answer cached in the store) */
            break;
        }
    }
    f->done = 1;
    f->status = status;
    if (status && f->waiters > 0 && rl > 0) {
        f->resp = malloc(rl);
        if (f->resp != NULL) {
            memcpy(f->resp, rb, rl);
            f->resp_len = rl;
        } else {
            f->status = 0;
        }
    }
    if (f->waiters > 0) {
        apr_thread_cond_broadcast(site->flight_cond);
    } else {
        free(f->resp);
        free(f);
    }
    apr_thread_mutex_unlock(site->flight_mutex);

    if (status) {
        *resp = rb;
        *resp_len = rl;
    }
    return status;
}


mjpki_issuer_rt *
mjpki_issuer_of(mjpki_site *site, const jpki_issuer *is)
{
    mjpki_issuer_rt  *rt;
    int              i;

    if (site->rt_issuers == NULL) {
        return NULL;
    }
    rt = (mjpki_issuer_rt *) site->rt_issuers->elts;
    for (i = 0; i < site->rt_issuers->nelts; i++) {
        if (rt[i].issuer == is) {
            return &rt[i];
        }
    }

    return NULL;
}
