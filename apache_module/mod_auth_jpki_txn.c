/*
 * mod_auth_jpki_txn.c - one transaction of the core (common/txn.c) run in
 * a request's thread: its request made from Apache's (cookies, headers,
 * peer), the store and OCSP I/O it asks for, and its verdict turned into
 * Apache's answer (held a while when throttled).
 */

#include "mod_auth_jpki.h"
#include "edge.h"

#include "apr_atomic.h"
#include "ap_mpm.h"
#include "http_ssl.h"

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


/* What goes upstream in Cookie (mod_proxy, CGI...) once the gate lets a
 * request through: the client's headers without the session cookie unless
 * JPKIPassCookie On (the core's decision: jpki_edge_upstream_cookies).
 * Made again from the client's at every gate (an internal redirect to
 * another gated location, whose JPKIPassCookie counts), which reads its
 * cookie there too. */
void
mjpki_upstream_cookies(request_rec *r, const char *name, int pass)
{
    apr_pool_t          *mp = (r->main ? r->main : r)->pool;
    apr_array_header_t  *a, *kept = mjpki_client_cookies(r);
    jpki_span           *in, *out;
    const char          *v;
    char                *buf;
    size_t               n, m, i, len = 1;
    int                  changed;

    a = kept != NULL ? kept : mjpki_cookie_values(r, r->pool);
    n = (size_t) a->nelts;
    in = apr_palloc(r->pool, 2 * (n + 1) * sizeof(jpki_span));
    out = in + n + 1;
    for (i = 0; i < n; i++) {
        v = APR_ARRAY_IDX(a, i, const char *);
        in[i].p = v;
        in[i].len = strlen(v);
        len += in[i].len;
    }
    buf = apr_palloc(r->pool, len);

    m = jpki_edge_upstream_cookies(in, n, name, pass, buf, out, &changed);

    if (kept == NULL) {
        if (!changed) {
            return;                     /* the client's, as they came */
        }
        kept = apr_array_make(mp, (int) n, sizeof(const char *));
        for (i = 0; i < n; i++) {
            APR_ARRAY_PUSH(kept, const char *) = apr_pstrdup(mp, in[i].p);
        }
        apr_pool_userdata_setn(kept, JPKI_COOKIES_KEY, NULL, mp);
    }

    apr_table_unset(r->headers_in, "Cookie");

    for (i = 0; i < m; i++) {
        apr_table_addn(r->headers_in, "Cookie",
                       apr_pstrmemdup(r->pool, out[i].p, out[i].len));
    }
}


/* The request's headers for the core (jpki_edge_request): Cookie the
 * client's (the table may hold what goes upstream). */
typedef struct {
    request_rec               *r;
    apr_array_header_t        *cookies;
} mjpki_headers;


static const char *
mjpki_header_get(void *ud, const char *name, size_t i, size_t *len)
{
    mjpki_headers            *h = ud;
    const apr_array_header_t  *arr = apr_table_elts(h->r->headers_in);
    const apr_table_entry_t   *e = (const apr_table_entry_t *) arr->elts;
    const char                *v = NULL;
    int                        k;

    if (strcasecmp(name, "Cookie") == 0) {
        if (h->cookies == NULL) {
            h->cookies = mjpki_cookie_values(h->r, h->r->pool);
        }
        if (i < (size_t) h->cookies->nelts) {
            v = APR_ARRAY_IDX(h->cookies, i, const char *);
        }
    } else {
        for (k = 0; k < arr->nelts && v == NULL; k++) {
            if (e[k].key != NULL && e[k].val != NULL
                && strcasecmp(e[k].key, name) == 0 && i-- == 0)
            {
                v = e[k].val;
            }
        }
    }

    *len = v != NULL ? strlen(v) : 0;
    return v;
}


/* The host of a request without Host (HTTP/2 without one, HTTP/1.0): the
 * host Apache found for it, else the server's name. */
static const char *
mjpki_host_get(void *ud, size_t *len)
{
    request_rec  *r = ((mjpki_headers *) ud)->r;
    const char   *h = r->hostname;

    if (h == NULL || h[0] == '\0') {
        h = ap_get_server_name(r);
    }

    *len = h != NULL ? strlen(h) : 0;
    return h;
}


static jpki_txn *
mjpki_start(request_rec *r, mjpki_site *site, const jpki_policy *pol,
           jpki_op op, const uint8_t *body, size_t body_len)
{
    jpki_txn_request   rq;
    jpki_txn          *t = NULL;
    mjpki_headers      hs = { r, NULL };
    jpki_edge_in       in;

    memset(&rq, 0, sizeof(rq));
    rq.op = op;
    rq.now = (int64_t) apr_time_sec(apr_time_now());
    rq.is_post = r->method_number == M_POST;
    rq.body = body;
    rq.body_len = body_len;
    rq.peer = r->useragent_ip;
    rq.uri = r->unparsed_uri;
    rq.query = r->args;
    rq.query_len = r->args != NULL ? strlen(r->args) : 0;
    rq.https = strcmp(ap_http_scheme(r), "https") == 0;
    if (op == JPKI_OP_TLS_LOGIN) {
        /* the handshake's certificate and version, as mod_ssl has them */
        rq.client_cert = (const uint8_t *) ap_ssl_var_lookup(r->pool,
                             r->server, r->connection, r, "SSL_CLIENT_CERT");
        rq.tls_version = jpki_tls_version_of(ap_ssl_var_lookup(r->pool,
                             r->server, r->connection, r, "SSL_PROTOCOL"));
    }
    rq.policy = pol;
    rq.request_id_fn = mjpki_audit_request_id;
    rq.request_id_ud = r;
    /* logouts: the node's table, read without waiting */
    mjpki_local_markers(site, &rq);

    mjpki_files_refresh(site);

    in.header = mjpki_header_get;
    in.own_host = mjpki_host_get;
    in.ud = &hs;
    in.subrequest = r->main != NULL;

    if (jpki_site_txn(site->js, &rq, &in, &t) != JPKI_OK || t == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: cannot start a "
                      "transaction");
        return NULL;
    }

    apr_pool_cleanup_register(r->pool, t, mjpki_txn_cleanup,
                              apr_pool_cleanup_null);

    return t;
}


/* The I/O of the core's run, in the request's thread. */
typedef struct {
    request_rec               *r;
    mjpki_site                *site;
} mjpki_run_ud;


static int
mjpki_run_store(void *ud, const jpki_store_cmd *cmds, size_t n,
                jpki_store_result *res)
{
    mjpki_run_ud  *u = ud;

    return mjpki_store_exec(u->site, u->r, cmds, n, res);
}


static int
mjpki_run_ocsp(void *ud, size_t issuer, const char *key, const uint8_t *body,
               size_t len, const uint8_t **resp, size_t *resp_len)
{
    mjpki_run_ud  *u = ud;

    return mjpki_ocsp_post(u->site, (int) issuer, u->r, key, body, len, resp,
                           resp_len);
}


/* Runs the transaction to its verdict, doing the I/O it asks for. */
static const jpki_verdict *
mjpki_run(request_rec *r, mjpki_site *site, jpki_txn *t)
{
    mjpki_run_ud        u = { r, site };
    jpki_run_io         io = { mjpki_run_store, mjpki_run_ocsp, &u };
    const jpki_verdict  *v;

    mjpki_set_current_request(r);
    (void) jpki_site_run(site->js, t, apr_time_sec(apr_time_now()), &io);
    mjpki_set_current_request(NULL);

    v = jpki_txn_verdict(t);
    if (v != NULL && v->audit != NULL) {
        mjpki_audit(r, site, v->audit);
    }

    return v;
}


/* A transaction of op for the request, run to its verdict (NULL: none,
 * logged). */
const jpki_verdict *
mjpki_transact(request_rec *r, mjpki_site *site, const jpki_policy *pol,
               jpki_op op, const uint8_t *body, size_t body_len)
{
    return mjpki_transact_txn(r, site, pol, op, body, body_len, NULL);
}


/* The same; *out: the transaction (it lives as long as the request), for
 * what the verdict does not say (its session's issuer). */
const jpki_verdict *
mjpki_transact_txn(request_rec *r, mjpki_site *site, const jpki_policy *pol,
                   jpki_op op, const uint8_t *body, size_t body_len,
                   jpki_txn **out)
{
    jpki_txn  *t = mjpki_start(r, site, pol, op, body, body_len);

    if (out != NULL) {
        *out = t;
    }

    return t != NULL ? mjpki_run(r, site, t) : NULL;
}


/* The headers the core gives for verdict v (v NULL: an answer without
 * one; pass: the request goes on): the session's added to err_headers_out
 * (kept on an error page), the others set in headers_out. */
void
mjpki_verdict_headers(request_rec *r, const jpki_verdict *v, int pass)
{
    jpki_edge_headers  eh;
    size_t             i;

    jpki_edge_verdict_headers(v, pass, &eh);

    for (i = 0; i < eh.n; i++) {
        if (eh.session[i]) {
            apr_table_add(r->err_headers_out, eh.h[i].name, eh.h[i].value);
        } else {
            apr_table_set(r->headers_out, eh.h[i].name, eh.h[i].value);
        }
    }
}


/* The gate's own answer to verdict v: status, headers, JSON body. */
int
mjpki_send_verdict(request_rec *r, const jpki_verdict *v)
{
    size_t  len = v->body != NULL ? v->body_len : 0;

    if (v->delay_ms > 0) {
        apr_table_setn(r->notes, "jpki-hold",
                       apr_psprintf(r->pool, "%u", v->delay_ms));
    }

    r->status = v->http_status;
    ap_set_content_type(r, v->content_type != NULL ? v->content_type
                                                   : "application/json");
    mjpki_verdict_headers(r, v, 0);
    ap_set_content_length(r, (apr_off_t) len);

    if (len > 0 && !r->header_only) {
        ap_rwrite(v->body, (int) len, r);
    }

    return OK;
}


int
mjpki_send_json(request_rec *r, int status, const char *body, size_t len)
{
    jpki_verdict  v;

    return mjpki_send_verdict(r, jpki_edge_answer(&v, status, body, len));
}


/* A refusal before any transaction (jpki_edge_refusal), answered. */
int
mjpki_refuse(request_rec *r, jpki_err e)
{
    jpki_verdict  v;

    return mjpki_send_verdict(r, jpki_edge_refusal(&v, e,
                                  apr_palloc(r->pool, JPKI_EDGE_REFUSAL_MAX)));
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

    if (site->js == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: %s used in a "
                      "server without %s", what,
                      jpki_conf_site_pieces(JPKI_SERVER_APACHE));
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

