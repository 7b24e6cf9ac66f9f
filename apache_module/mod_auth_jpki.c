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

#define JPKI_DENIED_NOTE    "jpki-account-denied"
#define JPKI_JSON_NOTE      "jpki-json-error"
#define JPKI_JSON_FILTER    "JPKI_JSON_ERROR"

/* the request being served by this thread: core log lines get its
 * context (client address) */
static __thread request_rec  *jpki_cur_r;

typedef struct {
    int                        identity_set;
} jpki_req;

/* The JSON of a refusal the module makes itself (the core's wording). */
static const char *
jpki_json_error(request_rec *r, jpki_err e, apr_size_t *len)
{
    char  *buf = apr_palloc(r->pool, 160);

    *len = jpki_error_json(e, buf, 160);
    return buf;
}


request_rec *
mjpki_current_request(void)
{
    return jpki_cur_r;
}


static jpki_site *
jpki_site_of(request_rec *r)
{
    jpki_srv_conf  *conf;

    conf = ap_get_module_config(r->server->module_config, &auth_jpki_module);

    return conf->site;
}


static jpki_dir_conf *
jpki_dir_of(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &auth_jpki_module);
}


static int
jpki_is_jpki_auth(request_rec *r)
{
    const char  *type = ap_auth_type(r);

    return type != NULL && strcasecmp(type, JPKI_AUTH_TYPE) == 0;
}


/* ------------------------------------------------------------------ */
/* Gate headers                                                        */
/* ------------------------------------------------------------------ */

/* Header names compare case-insensitively, '_' as '-' (CGI and many
 * frameworks fold them together). */
static int
jpki_hdr_eq(const char *a, const char *b, size_t n)
{
    size_t  i;
    int     ca, cb;

    for (i = 0; i < n; i++) {
        ca = a[i] == '_' ? '-' : apr_tolower(a[i]);
        cb = b[i] == '_' ? '-' : apr_tolower(b[i]);
        if (ca != cb || ca == '\0') {
            return 0;
        }
    }

    return 1;
}


static int
jpki_is_gate_header(const char *key, const char *name)
{
    size_t  len = strlen(key);

    if (len >= 7 && jpki_hdr_eq(key, "x-jpki-", 7)) {
        return 1;
    }

    return name != NULL && len == strlen(name) && jpki_hdr_eq(key, name, len);
}


/* Removes every copy of the gate's headers from the request. */
static void
jpki_strip_headers(request_rec *r, const char *name, int warn)
{
    const apr_array_header_t  *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t   *e = (const apr_table_entry_t *) arr->elts;
    apr_array_header_t        *gone = NULL;
    int                        i;

    for (i = 0; i < arr->nelts; i++) {
        if (e[i].key == NULL || !jpki_is_gate_header(e[i].key, name)) {
            continue;
        }
        if (gone == NULL) {
            gone = apr_array_make(r->pool, 4, sizeof(const char *));
        }
        APR_ARRAY_PUSH(gone, const char *) = e[i].key;
    }

    if (gone == NULL) {
        return;
    }

    for (i = 0; i < gone->nelts; i++) {
        if (warn) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "jpki: client "
                          "sent gate header \"%s\": removed",
                          APR_ARRAY_IDX(gone, i, const char *));
        }
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(gone, i, const char *));
    }
}


/* Before anything else looks at the request (mod_rewrite, mod_setenvif):
 * X-JPKI-* headers never come from a client. */
static int
jpki_post_read_request(request_rec *r)
{
    jpki_strip_headers(r, NULL, 1);

    return DECLINED;
}


/* Once the location is known: its account header too (an internal
 * redirect starts over from the previous request's headers). */
static int
jpki_header_parser(request_rec *r)
{
    if (r->main != NULL) {
        return DECLINED;
    }

    jpki_strip_headers(r, mjpki_dir_header(jpki_dir_of(r)), r->prev == NULL);

    return DECLINED;
}


static void
jpki_set_identity(request_rec *r, const char *account, const char *cert_id)
{
    jpki_req  *rq;

    apr_table_set(r->headers_in, mjpki_dir_header(jpki_dir_of(r)), account);
    apr_table_set(r->subprocess_env, "JPKI_ACCOUNT", account);
    if (cert_id != NULL && cert_id[0]) {
        apr_table_set(r->subprocess_env, "JPKI_CERT_ID", cert_id);
    }

    rq = ap_get_module_config(r->request_config, &auth_jpki_module);
    if (rq == NULL) {
        rq = apr_pcalloc(r->pool, sizeof(jpki_req));
        ap_set_module_config(r->request_config, &auth_jpki_module, rq);
    }
    rq->identity_set = 1;
}


/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

static apr_status_t
jpki_txn_cleanup(void *data)
{
    jpki_txn_free(data);
    return APR_SUCCESS;
}


/* Accept prefers JSON (API client) unless it asks for HTML. */
static int
jpki_wants_json(request_rec *r)
{
    const char  *a = apr_table_get(r->headers_in, "Accept");

    if (a == NULL || ap_strcasestr(a, "application/json") != NULL) {
        return 1;
    }

    return ap_strcasestr(a, "text/html") == NULL;
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
jpki_client_cookies(request_rec *r)
{
    void  *a = NULL;

    apr_pool_userdata_get(&a, JPKI_COOKIES_KEY,
                          (r->main ? r->main : r)->pool);

    return a;
}


static int
jpki_cookie_collect(void *rec, const char *key, const char *value)
{
    if (value != NULL) {
        APR_ARRAY_PUSH((apr_array_header_t *) rec, const char *) = value;
    }

    return 1;
}


/* The client's Cookie header values, in pool p. */
static apr_array_header_t *
jpki_cookie_values(request_rec *r, apr_pool_t *p)
{
    apr_array_header_t  *a = jpki_client_cookies(r);

    if (a == NULL) {
        a = apr_array_make(p, 2, sizeof(const char *));
        apr_table_do(jpki_cookie_collect, a, r->headers_in, "Cookie",
                     (const char *) NULL);
    }

    return a;
}


/* The session cookie name's value in the client's Cookie headers. */
static void
jpki_cookie_of(request_rec *r, const char *name, const char **val,
               size_t *len)
{
    apr_array_header_t  *a = jpki_cookie_values(r, r->pool);
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
static void
jpki_upstream_cookies(request_rec *r, const char *name, int pass)
{
    apr_pool_t          *mp = (r->main ? r->main : r)->pool;
    apr_array_header_t  *a = jpki_client_cookies(r), *kept;
    const char          *v, *x;
    char                *out;
    size_t               len, xl;
    int                  i, found = 0;

    if (a == NULL) {
        if (pass) {
            return;                     /* the client's, as they came */
        }
        a = jpki_cookie_values(r, r->pool);
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


static jpki_txn *
jpki_start(request_rec *r, jpki_site *site, const jpki_policy *pol,
           jpki_op op, const uint8_t *body, size_t body_len)
{
    jpki_txn_request   rq;
    jpki_txn          *t = NULL;
    const char        *ct;

    memset(&rq, 0, sizeof(rq));
    rq.op = op;
    rq.now = (int64_t) apr_time_sec(apr_time_now());
    rq.is_post = r->method_number == M_POST;
    rq.wants_json = jpki_wants_json(r);
    ct = apr_table_get(r->headers_in, "Content-Type");
    rq.content_type = ct;
    rq.content_type_len = ct ? strlen(ct) : 0;
    rq.body = body;
    rq.body_len = body_len;

    jpki_cookie_of(r, pol->cookie_name, &rq.cookie, &rq.cookie_len);

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

    apr_pool_cleanup_register(r->pool, t, jpki_txn_cleanup,
                              apr_pool_cleanup_null);

    return t;
}


/* Runs the transaction to its verdict, doing the I/O it asks for. */
static const jpki_verdict *
jpki_run(request_rec *r, jpki_site *site, jpki_txn *t)
{
    const jpki_store_cmd  *cmds;
    const jpki_verdict    *v;
    jpki_store_result      res[JPKI_MAX_CMDS];
    jpki_issuer_rt        *rt;
    jpki_rev_info          info;
    const uint8_t         *body, *resp = NULL;
    size_t                 n, blen, rlen = 0;
    jpki_step              step;
    jpki_err               e;
    int                    status, done = 0;

    jpki_cur_r = r;

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
                     ? mjpki_ocsp_post(site, rt, r,
                           jpki_ctx_get_policy(site->ctx)->ocsp_nonce
                           ? NULL : jpki_txn_cert_id(t),
                           body, blen, &resp, &rlen)
                     : 0;
            jpki_txn_feed_ocsp(t, status, status ? resp : NULL,
                               status ? rlen : 0);
            break;

        case JPKI_STEP_CRL:
            rt = mjpki_issuer_of(site, jpki_txn_issuer(t));
            e = rt ? mjpki_crl_lookup(site, rt, jpki_txn_cert_id(t), &info)
                   : JPKI_ERR_REVOCATION_UNAVAILABLE;
            jpki_txn_feed_crl(t, e, e == JPKI_OK ? &info : NULL);
            break;

        case JPKI_STEP_DONE:
            done = 1;
            break;

        default:
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: transaction "
                          "step %d unknown to this module", (int) step);
            jpki_cur_r = NULL;
            return NULL;
        }
    }

    jpki_cur_r = NULL;

    v = jpki_txn_verdict(t);

    if (v != NULL && v->audit != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "jpki audit: %s",
                      v->audit);
    }

    return v;
}


/* The headers of every answer the gate makes itself. */
static void
jpki_answer_headers_set(request_rec *r)
{
    const jpki_header  *h;

    for (h = jpki_answer_headers; h->name != NULL; h++) {
        apr_table_setn(r->headers_out, h->name, h->value);
    }
}


static int
jpki_send_json(request_rec *r, int status, const char *body, size_t len)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    jpki_answer_headers_set(r);
    ap_set_content_length(r, (apr_off_t) len);

    if (len > 0 && !r->header_only) {
        ap_rwrite(body, (int) len, r);
    }

    return OK;
}


static int
jpki_send_verdict(request_rec *r, const jpki_verdict *v)
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

    return jpki_send_json(r, v->http_status, v->body ? v->body : "",
                          v->body ? v->body_len : 0);
}


/* Threads of this child holding a throttled answer (jpki_hold). */
static volatile apr_uint32_t jpki_holding;

/* The core asks a throttled answer to be held a while (the verdict's
 * delay_ms): a flood then slows itself down instead of taking the CPU from
 * gated requests.  A held answer holds a thread (a sleeping one: no CPU),
 * so holds leave the child max(8, 1/8) of its threads for everything else;
 * a throttled answer that cannot be held closes its connection (the client
 * must connect again).  A child of fewer than 16 threads (prefork) holds
 * none.  Called after the answer is written and before the handler returns
 * (the answer leaves then). */
static void
jpki_hold(request_rec *r)
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
    if (apr_atomic_inc32(&jpki_holding) < limit) {
        apr_sleep(apr_time_from_msec(atoi(ms)));
    } else {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    apr_atomic_dec32(&jpki_holding);
}


static const jpki_policy *
jpki_request_policy(request_rec *r, jpki_site *site, const char *what)
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
    pol = mjpki_dir_policy(r->pool, site, jpki_dir_of(r), err, sizeof(err));
    if (pol == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: settings for %s: "
                      "%s", r->uri, err);
    }

    return pol;
}


/* ------------------------------------------------------------------ */
/* The gate: AuthType JPKI                                             */
/* ------------------------------------------------------------------ */

static int
jpki_authenticate(request_rec *r)
{
    jpki_site           *site;
    const jpki_policy   *pol;
    const jpki_verdict  *v;
    const jpki_header   *h;
    jpki_txn            *t;

    if (!jpki_is_jpki_auth(r)) {
        return DECLINED;
    }

    if (jpki_dir_of(r)->endpoints == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "jpki: the "
                      "JPKIEndpoints location %s requires a user: nobody can "
                      "sign in there (add \"Require all granted\")", r->uri);
    }

    site = jpki_site_of(r);
    pol = jpki_request_policy(r, site, "AuthType JPKI");
    if (pol == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    t = jpki_start(r, site, pol, JPKI_OP_CHECK, NULL, 0);
    if (t == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    v = jpki_run(r, site, t);
    if (v == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->http_status == HTTP_OK && v->account != NULL) {
        r->user = apr_pstrdup(r->pool, v->account);
        r->ap_auth_type = JPKI_AUTH_TYPE;
        if (v->set_cookie) {
            apr_table_add(r->err_headers_out, "Set-Cookie", v->set_cookie);
            /* a session sealed again: no shared cache keeps the answer */
            for (h = jpki_pass_cookie_headers; h->name != NULL; h++) {
                apr_table_add(r->err_headers_out, h->name, h->value);
            }
        }
        jpki_set_identity(r, r->user, v->cert_id);
        jpki_upstream_cookies(r, pol->cookie_name,
                              jpki_dir_of(r)->pass_cookie == 1);
        return OK;
    }

    if (r->main != NULL) {
        /* a subrequest answers with its status only */
        return v->http_status >= 400 ? v->http_status : HTTP_UNAUTHORIZED;
    }

    /* our answer (401 JSON, or 302 to the login page for browsers): the
     * refused request's body is discarded by the core afterwards */
    jpki_send_verdict(r, v);

    return DONE;
}


static int
jpki_note_auth_failure(request_rec *r, const char *auth_type)
{
    /* no challenge header: the login is the protocol of docs/protocol.md */
    return strcasecmp(auth_type, JPKI_AUTH_TYPE) == 0 ? OK : DECLINED;
}


/* Identity for requests whose authentication was copied by the core from
 * the previous or main request (same configuration); and for an internal
 * redirect (ErrorDocument, mod_rewrite) out of a gated location into one
 * without authentication: the account header and JPKI_* of the nearest
 * earlier request the gate passed (REMOTE_USER stays empty there: the
 * location has no authentication of its own).  Then the endpoints'
 * handler. */
static int
jpki_fixups_identity(request_rec *r)
{
    jpki_req     *rq;
    request_rec  *p;

    if (r->user == NULL && ap_auth_type(r) == NULL) {
        for (p = r->prev; p != NULL; p = p->prev) {
            rq = ap_get_module_config(p->request_config, &auth_jpki_module);
            if (rq != NULL && rq->identity_set) {
                const char  *a = apr_table_get(p->subprocess_env,
                                               "JPKI_ACCOUNT");

                if (a != NULL) {
                    jpki_set_identity(r, a, apr_table_get(p->subprocess_env,
                                                          "JPKI_CERT_ID"));
                }
                break;
            }
        }
        return DECLINED;
    }

    if (r->user == NULL || !jpki_is_jpki_auth(r)) {
        return DECLINED;
    }

    rq = ap_get_module_config(r->request_config, &auth_jpki_module);
    if (rq == NULL || !rq->identity_set) {
        jpki_set_identity(r, r->user,
                          apr_table_get(r->subprocess_env, "JPKI_CERT_ID"));
    }

    return DECLINED;
}


static int
jpki_fixups_handler(request_rec *r)
{
    jpki_dir_conf  *d = jpki_dir_of(r);

    if (d->endpoints == 1) {
        r->handler = JPKI_HANDLER;
    } else if (d->health == 1) {
        r->handler = JPKI_HEALTH_HANDLER;
    }

    return DECLINED;
}


/* ------------------------------------------------------------------ */
/* Require jpki-account ID...                                          */
/* ------------------------------------------------------------------ */

static authz_status
jpki_account_check(request_rec *r, const char *require_args,
                   const void *parsed)
{
    const char  *t, *w;

    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }

    if (jpki_is_jpki_auth(r)) {
        t = require_args;
        while ((w = ap_getword_conf(r->pool, &t)) != NULL && w[0]) {
            if (strcmp(w, r->user) == 0) {
                return AUTHZ_GRANTED;
            }
        }
    }

    apr_table_setn(r->notes, JPKI_DENIED_NOTE, "1");

    return AUTHZ_DENIED;
}


static const char *
jpki_account_parse(cmd_parms *cmd, const char *require_line,
                   const void **parsed)
{
    const char  *t = require_line, *w;
    int          n = 0;

    while ((w = ap_getword_conf(cmd->temp_pool, &t)) != NULL && w[0]) {
        if (!jpki_account_valid(w, strlen(w))) {
            return apr_psprintf(cmd->pool, "Require jpki-account: invalid "
                                "account \"%s\"", w);
        }
        n++;
    }

    if (n == 0) {
        return "Require jpki-account needs at least one account";
    }

    *parsed = NULL;

    return NULL;
}


static const authz_provider  jpki_authz_account = {
    &jpki_account_check,
    &jpki_account_parse
};


/* Error pages Apache makes itself become JSON, like every other answer of
 * the gate: a refusal by Require jpki-account (the status stays the one
 * mod_authz_core chose: 401, or 403 with AuthzSendForbiddenOnFailure On),
 * and in the endpoints' locations the 413 and 400 of the core's request
 * body filter (LimitRequestBody, malformed chunks). */
static void
jpki_insert_error_filter(request_rec *r)
{
    const char  *body = NULL;
    apr_size_t   bl;

    if (apr_table_get(r->notes, JPKI_DENIED_NOTE) != NULL
        && (r->status == HTTP_UNAUTHORIZED || r->status == HTTP_FORBIDDEN))
    {
        body = jpki_json_error(r, JPKI_ERR_ACCOUNT_NOT_ALLOWED, &bl);

    } else if (r->handler != NULL && strcmp(r->handler, JPKI_HANDLER) == 0) {
        if (r->status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            body = jpki_json_error(r, JPKI_ERR_TOO_LARGE, &bl);
        } else if (r->status == HTTP_BAD_REQUEST) {
            body = jpki_json_error(r, JPKI_ERR_BAD_REQUEST, &bl);
        }
    }

    if (body != NULL) {
        ap_add_output_filter(JPKI_JSON_FILTER, (void *) body, r,
                             r->connection);
    }
}


static apr_status_t
jpki_json_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec  *r = f->r;
    const char   *body = f->ctx;
    apr_bucket   *b, *eos = NULL;

    if (!apr_table_get(r->notes, JPKI_JSON_NOTE)) {
        apr_table_setn(r->notes, JPKI_JSON_NOTE, "1");
        ap_set_content_type(r, "application/json");
        apr_table_unset(r->headers_out, "Content-Length");
        jpki_answer_headers_set(r);
    }

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b))
    {
        if (APR_BUCKET_IS_EOS(b)) {
            eos = b;
            break;
        }
    }

    /* the HTML error page is dropped */
    while ((b = APR_BRIGADE_FIRST(bb)) != APR_BRIGADE_SENTINEL(bb)
           && b != eos)
    {
        apr_bucket_delete(b);
    }

    if (eos == NULL) {
        return APR_SUCCESS;
    }

    APR_BUCKET_INSERT_BEFORE(eos,
        apr_bucket_immortal_create(body, strlen(body), f->c->bucket_alloc));
    ap_remove_output_filter(f);

    return ap_pass_brigade(f->next, bb);
}


/* ------------------------------------------------------------------ */
/* Endpoints: JPKIEndpoints On                                         */
/* ------------------------------------------------------------------ */

/* Reads a login body of at most JPKI_BODY_MAX bytes: OK, or the HTTP
 * status of the failure (413 when too large). */
static int
jpki_read_body(request_rec *r, const uint8_t **out, size_t *outlen)
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
jpki_run_endpoint(request_rec *r, jpki_site *site, const jpki_policy *pol,
                  jpki_op op, const uint8_t *body, size_t len)
{
    const jpki_verdict  *v;
    jpki_txn            *t;

    t = jpki_start(r, site, pol, op, body, len);
    if (t == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    v = jpki_run(r, site, t);
    if (v == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    return jpki_send_verdict(r, v);
}


static int
jpki_endpoint_handler(request_rec *r)
{
    jpki_site           *site;
    const jpki_policy   *pol;
    const uint8_t       *body = NULL;
    const char          *u, *end, *seg, *msg;
    size_t               len = 0, sl;
    apr_size_t           ml;
    apr_uint32_t         cap;
    jpki_op              op;
    int                  rc;

    if (r->handler == NULL || strcmp(r->handler, JPKI_HANDLER) != 0) {
        return DECLINED;
    }

    /* the endpoint is the last path segment */
    u = r->uri ? r->uri : "";
    end = u + strlen(u);
    while (end > u && end[-1] == '/') {
        end--;
    }
    seg = end;
    while (seg > u && seg[-1] != '/') {
        seg--;
    }
    sl = end - seg;

    if (sl == 9 && strncmp(seg, "challenge", 9) == 0) {
        op = JPKI_OP_CHALLENGE;
    } else if (sl == 5 && strncmp(seg, "login", 5) == 0) {
        op = JPKI_OP_LOGIN;
    } else if (sl == 6 && strncmp(seg, "logout", 6) == 0) {
        op = JPKI_OP_LOGOUT;
    } else if (sl == 6 && strncmp(seg, "status", 6) == 0) {
        op = JPKI_OP_STATUS;
    } else {
        msg = jpki_json_error(r, JPKI_ERR_NOT_FOUND, &ml);
        return jpki_send_json(r, HTTP_NOT_FOUND, msg, ml);
    }

    site = jpki_site_of(r);
    pol = jpki_request_policy(r, site, "JPKIEndpoints");
    if (pol == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    if (op == JPKI_OP_LOGIN && r->method_number == M_POST) {
        rc = jpki_read_body(r, &body, &len);
        if (rc == AP_FILTER_ERROR) {
            return rc;
        }
        if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            msg = jpki_json_error(r, JPKI_ERR_TOO_LARGE, &ml);
            return jpki_send_json(r, rc, msg, ml);
        }
        if (rc != OK) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "jpki: login body "
                          "not read (status %d)", rc);
            msg = jpki_json_error(r, JPKI_ERR_BAD_REQUEST, &ml);
            return jpki_send_json(r, HTTP_BAD_REQUEST, msg, ml);
        }
    }

    if (op != JPKI_OP_LOGIN) {
        return jpki_run_endpoint(r, site, pol, op, NULL, 0);
    }

    /* the logins of the site this child verifies at once, against the
     * cap of the location (JPKIThrottle concurrency=, the site's value
     * unless the location has its own) */
    cap = pol->login_concurrency;
    if (apr_atomic_inc32(&site->logins) >= cap && cap > 0) {
        apr_atomic_dec32(&site->logins);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "jpki: login refused: "
                      "%u logins being verified in this child (JPKIThrottle "
                      "concurrency=)", cap);
        apr_table_setn(r->headers_out, "Retry-After", "1");
        msg = jpki_json_error(r, JPKI_ERR_BUSY, &ml);
        return jpki_send_json(r, HTTP_SERVICE_UNAVAILABLE, msg, ml);
    }
    rc = jpki_run_endpoint(r, site, pol, op, body, len);
    apr_atomic_dec32(&site->logins);
    jpki_hold(r);                     /* not counted as a login meanwhile */

    return rc;
}


/* ------------------------------------------------------------------ */
/* Health: JPKIHealth On                                               */
/* ------------------------------------------------------------------ */

/* JSON for monitoring: every CRL of this process (loaded, dates, age,
 * entries, CRL number, fresh, last load result) and whether the store
 * answers; 200 when all is well, 503 otherwise. */
static int
jpki_health_handler(request_rec *r)
{
    static const char  na[] =
        "{\"error\":\"method_not_allowed\",\"message\":\"GET or HEAD "
        "only\"}";
    jpki_site         *site;
    const char        *body;
    int                ok = 0;

    if (r->handler == NULL || strcmp(r->handler, JPKI_HEALTH_HANDLER) != 0) {
        return DECLINED;
    }

    if (r->method_number != M_GET) {
        apr_table_setn(r->headers_out, "Allow", "GET, HEAD");
        return jpki_send_json(r, HTTP_METHOD_NOT_ALLOWED, na, sizeof(na) - 1);
    }

    site = jpki_site_of(r);
    if (!site->built) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: JPKIHealth used in "
                      "a server without JPKISecretFile, JPKIIssuer and "
                      "JPKIStore");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    mjpki_files_refresh(site);

    jpki_cur_r = r;
    body = mjpki_health_json(site, r, &ok);
    jpki_cur_r = NULL;

    return jpki_send_json(r, ok ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE, body,
                          strlen(body));
}


/* ------------------------------------------------------------------ */
/* Process hooks                                                       */
/* ------------------------------------------------------------------ */

static int
jpki_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return ap_mutex_register(pconf, JPKI_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT,
                             0) == APR_SUCCESS ? OK : !OK;
}


static int
jpki_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                 server_rec *s)
{
    return mjpki_io_post_config(pconf, plog, ptemp, s);
}


static void
jpki_child_init(apr_pool_t *pchild, server_rec *s)
{
    mjpki_io_child_init(pchild, s);
}


static void
jpki_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(jpki_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(mjpki_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(jpki_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(jpki_child_init, NULL, NULL, APR_HOOK_MIDDLE);

    ap_hook_post_read_request(jpki_post_read_request, NULL, NULL,
                              APR_HOOK_REALLY_FIRST);
    ap_hook_header_parser(jpki_header_parser, NULL, NULL,
                          APR_HOOK_REALLY_FIRST);
    ap_hook_check_authn(jpki_authenticate, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(jpki_note_auth_failure, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_fixups(jpki_fixups_identity, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(jpki_fixups_handler, NULL, NULL, APR_HOOK_LAST);
    /* first: a ProxyPass covering the endpoints' location does not win */
    ap_hook_handler(jpki_endpoint_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(jpki_health_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_insert_error_filter(jpki_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_register_output_filter(JPKI_JSON_FILTER, jpki_json_error_filter, NULL,
                              AP_FTYPE_CONTENT_SET);

    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "jpki-account",
                              AUTHZ_PROVIDER_VERSION, &jpki_authz_account,
                              AP_AUTH_INTERNAL_PER_CONF);
}


AP_DECLARE_MODULE(auth_jpki) = {
    STANDARD20_MODULE_STUFF,
    mjpki_create_dir_conf,          /* create per-directory config */
    mjpki_merge_dir_conf,           /* merge per-directory config */
    mjpki_create_srv_conf,          /* create per-server config */
    mjpki_merge_srv_conf,           /* merge per-server config */
    mjpki_cmds,                     /* directives */
    jpki_register_hooks            /* hooks */
};
