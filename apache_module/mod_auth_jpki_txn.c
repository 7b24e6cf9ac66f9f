/*
 * mod_auth_jpki_txn.c - one transaction of the core (common/txn.c) run in
 * a request's thread: its request made from Apache's (cookies, headers,
 * peer), the store and OCSP I/O it asks for, and its verdict turned into
 * Apache's answer (held a while when throttled).
 */

#include "mod_auth_jpki.h"
#include "gate.h"

#include "apr_atomic.h"
#include "ap_mpm.h"

#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


static apr_status_t
mjpki_txn_cleanup(void *data)
{
    jpki_txn_free(data);
    return APR_SUCCESS;
}


/* ------------------------------------------------------------------ */
/* The client's Cookie headers                                         */
/* ------------------------------------------------------------------ */

#define JPKI_COOKIES_KEY  "auth_jpki:client-cookies"

/* The Cookie header values the client sent, kept (array of const char *)
 * when a gate took its session cookie out of what goes upstream: in the
 * pool of the main request, which its internal redirects share (with its
 * headers) and the pools of its subrequests descend from.  NULL: none was
 * taken out, the request's headers are the client's. */
static apr_array_header_t *
mjpki_client_cookies(request_rec *r)
{
    void  *a = NULL;

    apr_pool_userdata_get(&a, JPKI_COOKIES_KEY,
                          (r->main ? r->main : r)->pool);

    return a;
}


static int
mjpki_cookie_collect(void *rec, const char *key, const char *value)
{
    if (value != NULL) {
        APR_ARRAY_PUSH((apr_array_header_t *) rec, const char *) = value;
    }

    return 1;
}


/* The client's Cookie header values, in pool p. */
static apr_array_header_t *
mjpki_cookie_values(request_rec *r, apr_pool_t *p)
{
    apr_array_header_t  *a = mjpki_client_cookies(r);

    if (a == NULL) {
        a = apr_array_make(p, 2, sizeof(const char *));
        apr_table_do(mjpki_cookie_collect, a, r->headers_in, "Cookie",
                     (const char *) NULL);
    }

    return a;
}


/* The session cookie name's value in the client's Cookie headers. */
static void
mjpki_cookie_of(request_rec *r, const char *name, const char **val,
               size_t *len)
{
    apr_array_header_t  *a = mjpki_cookie_values(r, r->pool);
    const char          *v;
    int                  i;

    *val = NULL;
    *len = 0;

    for (i = 0; i < a->nelts; i++) {
        v = APR_ARRAY_IDX(a, i, const char *);
        if (jpki_cookie_find(v, strlen(v), name, val, len)) {
            return;
        }
    }
}


/* What goes upstream in Cookie (mod_proxy, CGI...) once the gate lets a
 * request through: the client's headers without the session cookie (a
 * bearer token, for nobody's logs) unless JPKIPassCookie On; one left
 * empty is dropped.  Made again from the client's at every gate (an
 * internal redirect to another gated location, whose JPKIPassCookie
 * counts), which reads its cookie there too. */
void
mjpki_upstream_cookies(request_rec *r, const char *name, int pass)
{
    apr_pool_t          *mp = (r->main ? r->main : r)->pool;
    apr_array_header_t  *a = mjpki_client_cookies(r), *kept;
    const char          *v, *x;
    char                *out;
    size_t               len, xl;
    int                  i, found = 0;

    if (a == NULL) {
        if (pass) {
            return;                     /* the client's, as they came */
        }
        a = mjpki_cookie_values(r, r->pool);
        for (i = 0; i < a->nelts && !found; i++) {
            v = APR_ARRAY_IDX(a, i, const char *);
            found = jpki_cookie_find(v, strlen(v), name, &x, &xl);
        }
        if (!found) {
            return;                     /* none to take out */
        }
        kept = apr_array_make(mp, a->nelts, sizeof(const char *));
        for (i = 0; i < a->nelts; i++) {
            APR_ARRAY_PUSH(kept, const char *) =
                apr_pstrdup(mp, APR_ARRAY_IDX(a, i, const char *));
        }
        apr_pool_userdata_setn(kept, JPKI_COOKIES_KEY, NULL, mp);
        a = kept;
    }

    apr_table_unset(r->headers_in, "Cookie");

    for (i = 0; i < a->nelts; i++) {
        v = APR_ARRAY_IDX(a, i, const char *);
        out = pass ? NULL : apr_palloc(r->pool, strlen(v) + 1);
        if (pass || jpki_cookie_strip(v, strlen(v), name, out, &len) == 0) {
            apr_table_addn(r->headers_in, "Cookie", v);
        } else if (len > 0) {
            out[len] = '\0';
            apr_table_addn(r->headers_in, "Cookie", out);
        }
    }
}


jpki_txn *
mjpki_start(request_rec *r, mjpki_site *site, const jpki_policy *pol,
           jpki_op op, const uint8_t *body, size_t body_len)
{
    jpki_txn_request   rq;
    jpki_txn          *t = NULL;
    const char        *ct, *accept;

    memset(&rq, 0, sizeof(rq));
    rq.op = op;
    rq.now = (int64_t) apr_time_sec(apr_time_now());
    rq.is_post = r->method_number == M_POST;
    accept = apr_table_get(r->headers_in, "Accept");
    rq.wants_json = jpki_accept_wants_json(accept,
                                           accept ? strlen(accept) : 0);
    ct = apr_table_get(r->headers_in, "Content-Type");
    rq.content_type = ct;
    rq.content_type_len = ct ? strlen(ct) : 0;
    rq.body = body;
    rq.body_len = body_len;

    mjpki_cookie_of(r, pol->cookie_name, &rq.cookie, &rq.cookie_len);

    rq.peer = r->useragent_ip;
    rq.uri = r->unparsed_uri;
    rq.policy = pol;
    rq.crl_in_store = site->store == JPKI_STORE_REDIS;
    /* logouts: the node's table, read without waiting */
    mjpki_local_markers(site, &rq);

    if (op == JPKI_OP_LOGIN || op == JPKI_OP_LOGOUT) {
        /* where the browser says the request comes from */
        rq.sec_fetch_site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
        rq.sec_fetch_site_len = rq.sec_fetch_site
                                ? strlen(rq.sec_fetch_site) : 0;
        rq.origin = apr_table_get(r->headers_in, "Origin");
        rq.origin_len = rq.origin ? strlen(rq.origin) : 0;
    }
    if (op == JPKI_OP_CHALLENGE || op == JPKI_OP_LOGIN
        || op == JPKI_OP_LOGOUT) {
        /* the Host a challenge is bound to; absent (HTTP/2 without one,
         * HTTP/1.0): the host Apache found for the request, else the
         * server's name */
        rq.host = apr_table_get(r->headers_in, "Host");
        if (rq.host == NULL || rq.host[0] == '\0')
            rq.host = r->hostname;
        if (rq.host == NULL || rq.host[0] == '\0')
            rq.host = ap_get_server_name(r);
        rq.host_len = rq.host ? strlen(rq.host) : 0;
    }

    mjpki_files_refresh(site);

    if (site->map_file) {
        rq.map_source = JPKI_MAP_CALLBACK;
        rq.map_fn = mjpki_map_lookup;
        rq.map_ud = site;
    } else {
        rq.map_source = JPKI_MAP_STORE;
    }

    if (jpki_txn_new(site->ctx, &rq, &t) != JPKI_OK || t == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: cannot start a "
                      "transaction");
        return NULL;
    }

    apr_pool_cleanup_register(r->pool, t, mjpki_txn_cleanup,
                              apr_pool_cleanup_null);

    return t;
}


/* Runs the transaction to its verdict, doing the I/O it asks for. */
const jpki_verdict *
mjpki_run(request_rec *r, mjpki_site *site, jpki_txn *t)
{
    const jpki_store_cmd  *cmds;
    const jpki_verdict    *v;
    jpki_store_result      res[JPKI_MAX_CMDS];
    mjpki_issuer_rt        *rt;
    jpki_rev_info          info;
    const uint8_t         *body, *resp = NULL;
    size_t                 n, blen, rlen = 0;
    jpki_step              step;
    jpki_err               e;
    int                    status, done = 0;

    mjpki_set_current_request(r);

    while (!done) {
        step = jpki_txn_step(t);
        switch (step) {

        case JPKI_STEP_STORE:
            cmds = jpki_txn_store_cmds(t, &n);
            if (n == 0 || n > JPKI_MAX_CMDS
                || !mjpki_store_exec(site, r, cmds, n, res))
            {
                jpki_txn_feed_store(t, NULL, 0);       /* timeout */
            } else {
                jpki_txn_feed_store(t, res, n);
            }
            break;

        case JPKI_STEP_OCSP:
            rt = mjpki_issuer_of(site, jpki_txn_issuer(t));
            body = jpki_txn_ocsp_body(t, &blen);
            /* concurrent logins of a certificate share one query (not
             * with nonces: each query is then its own) */
            status = rt && body
                     ? mjpki_ocsp_post(site, rt, r, jpki_txn_ocsp_key(t),
                                       body, blen, &resp, &rlen)
                     : 0;
            jpki_txn_feed_ocsp(t, status, status ? resp : NULL,
                               status ? rlen : 0);
            break;

        case JPKI_STEP_CRL:
            /* the CRL of the key that issued the certificate */
            e = mjpki_crl_lookup(site, t, &info);
            jpki_txn_feed_crl(t, e, e == JPKI_OK ? &info : NULL);
            break;

        case JPKI_STEP_DONE:
            done = 1;
            break;

        default:
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: transaction "
                          "step %d unknown to this module", (int) step);
            mjpki_set_current_request(NULL);
            return NULL;
        }
    }

    mjpki_set_current_request(NULL);

    v = jpki_txn_verdict(t);

    if (v != NULL && v->audit != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "jpki audit: %s",
                      v->audit);
    }

    return v;
}


/* The headers of every answer the gate makes itself. */
void
mjpki_answer_headers_set(request_rec *r)
{
    const jpki_header  *h;

    for (h = jpki_answer_headers; h->name != NULL; h++) {
        apr_table_setn(r->headers_out, h->name, h->value);
    }
}


int
mjpki_send_json(request_rec *r, int status, const char *body, size_t len)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    mjpki_answer_headers_set(r);
    ap_set_content_length(r, (apr_off_t) len);

    if (len > 0 && !r->header_only) {
        ap_rwrite(body, (int) len, r);
    }

    return OK;
}


int
mjpki_send_verdict(request_rec *r, const jpki_verdict *v)
{
    if (v->set_cookie) {
        apr_table_add(r->err_headers_out, "Set-Cookie", v->set_cookie);
    }
    if (v->location) {
        apr_table_set(r->headers_out, "Location", v->location);
    }
    if (v->retry_after > 0) {
        apr_table_setn(r->headers_out, "Retry-After",
                       apr_psprintf(r->pool, "%u", v->retry_after));
    }
    if (v->delay_ms > 0) {
        apr_table_setn(r->notes, "jpki-hold",
                       apr_psprintf(r->pool, "%u", v->delay_ms));
    }

    return mjpki_send_json(r, v->http_status, v->body ? v->body : "",
                          v->body ? v->body_len : 0);
}


/* Threads of this child holding a throttled answer (mjpki_hold). */
static volatile apr_uint32_t mjpki_holding;

/* The core asks a throttled answer to be held a while (the verdict's
 * delay_ms): a flood then slows itself down instead of taking the CPU from
 * gated requests.  A held answer holds a thread (a sleeping one: no CPU),
 * so holds leave the child max(8, 1/8) of its threads for everything else;
 * a throttled answer that cannot be held closes its connection (the client
 * must connect again).  A child of fewer than 16 threads (prefork) holds
 * none.  Called after the answer is written and before the handler returns
 * (the answer leaves then). */
void
mjpki_hold(request_rec *r)
{
    const char  *ms = apr_table_get(r->notes, "jpki-hold");
    int          threads = 1;
    apr_uint32_t limit = 0;

    if (ms == NULL) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) == APR_SUCCESS
        && threads >= 16)
    {
        limit = (apr_uint32_t) (threads - (threads / 8 > 8 ? threads / 8 : 8));
    }
    if (apr_atomic_inc32(&mjpki_holding) < limit) {
        apr_sleep(apr_time_from_msec(atoi(ms)));
    } else {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    apr_atomic_dec32(&mjpki_holding);
}


const jpki_policy *
mjpki_request_policy(request_rec *r, mjpki_site *site, const char *what)
{
    const jpki_policy  *pol;
    char                err[256];

    if (!site->built) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: %s used in a "
                      "server without JPKISecretFile, JPKIIssuer and "
                      "JPKIStore", what);
        return NULL;
    }

    err[0] = '\0';
    pol = mjpki_dir_policy(r->pool, site, mjpki_dir_of(r), err, sizeof(err));
    if (pol == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: settings for %s: "
                      "%s", r->uri, err);
    }

    return pol;
}

