/*
 * ngx_http_jpki_txn.c - one transaction of the core (common/txn.c) driven
 * from nginx events: its context, its store batches (the embedded store in
 * place, Redis through ngx_http_jpki_io.c), OCSP, and the verdict turned
 * into nginx's answer.
 */

#include "ngx_http_jpki.h"
#include "edge.h"
#include "redis.h"


/* A login leaves the worker's count of logins being verified. */
static void
ngx_http_jpki_uncount(ngx_http_jpki_ctx_t *ctx)
{
    if (ctx->counted) {
        ngx_http_jpki_site(ctx->r)->logins--;
        ctx->counted = 0;
    }
}


static void
ngx_http_jpki_cleanup(void *data)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ngx_http_jpki_uncount(ctx);

    if (ctx->hold.timer_set) {
        ngx_del_timer(&ctx->hold);
    }

    if (ctx->io) {
        ngx_http_jpki_io_detach(ctx->io);
        ctx->io = NULL;
    }

    jpki_txn_free(ctx->txn);
    ctx->txn = NULL;
}


ngx_http_jpki_ctx_t *
ngx_http_jpki_new_ctx(ngx_http_request_t *r, jpki_op op)
{
    ngx_http_jpki_ctx_t       *ctx;
    ngx_pool_cleanup_t        *cln;
    size_t                     n;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_jpki_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_jpki_cleanup;
    cln->data = ctx;

    ctx->r = r;
    ctx->op = op;

    n = ngx_min(r->connection->addr_text.len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(ctx->peer, r->connection->addr_text.data, n);
    ctx->peer[n] = '\0';

    ctx->uri = ngx_pnalloc(r->pool, r->unparsed_uri.len + 1);
    if (ctx->uri == NULL) {
        return NULL;
    }
    (void) ngx_cpystrn(ctx->uri, r->unparsed_uri.data,
                       r->unparsed_uri.len + 1);

    ngx_http_set_ctx(r, ctx, ngx_http_jpki_module);

    return ctx;
}


/* The i-th value of request header NAME for the core (jpki_edge_request):
 * Cookie from the client's (headers_in.cookies: the list may hold what
 * goes upstream), Host where nginx keeps it (HTTP/2: from :authority), the
 * others from the list. */
static const char *
ngx_http_jpki_header_get(void *ud, const char *name, size_t i, size_t *len)
{
    ngx_http_request_t   *r = ud;
    ngx_table_elt_t      *h, **c;
    ngx_list_part_t      *part;
    ngx_uint_t            k;
    size_t                n = ngx_strlen(name);

    if (ngx_strcasecmp((u_char *) name, (u_char *) "Cookie") == 0) {
        c = r->headers_in.cookies.elts;
        h = i < r->headers_in.cookies.nelts ? c[i] : NULL;

    } else if (ngx_strcasecmp((u_char *) name, (u_char *) "Host") == 0) {
        h = i == 0 ? r->headers_in.host : NULL;

    } else {
        part = &r->headers_in.headers.part;
        k = 0;
        while ((h = ngx_http_jpki_header_next(&part, &k)) != NULL) {
            if (h->key.len == n
                && ngx_strncasecmp(h->key.data, (u_char *) name, n) == 0
                && i-- == 0)
            {
                break;
            }
        }
    }

    if (h == NULL) {
        return NULL;
    }

    *len = h->value.len;
    return (const char *) h->value.data;
}


/* The host of a request without one (HTTP/1.0 without Host), as $host
 * has it: the server's name; when it has none, or a wildcard or regex one,
 * the address the client connected to ("[v6]" in brackets). */
static ngx_int_t
ngx_http_jpki_own_host(ngx_http_request_t *r, ngx_str_t *host)
{
    ngx_http_core_srv_conf_t  *cscf;
    u_char                     buf[NGX_SOCKADDR_STRLEN];
    ngx_str_t                  addr;
    ngx_uint_t                 v6;

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    if (cscf->server_name.len && cscf->server_name.data[0] != '~'
        && ngx_strlchr(cscf->server_name.data,
                       cscf->server_name.data + cscf->server_name.len, '*')
           == NULL)
    {
        *host = cscf->server_name;
        return NGX_OK;
    }

    addr.data = buf;
    addr.len = sizeof(buf);
    if (ngx_connection_local_sockaddr(r->connection, &addr, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    v6 = r->connection->local_sockaddr->sa_family == AF_INET6;
    host->data = ngx_pnalloc(r->pool, addr.len + 2);
    if (host->data == NULL) {
        return NGX_ERROR;
    }
    host->len = ngx_sprintf(host->data, v6 ? "[%V]" : "%V", &addr)
                - host->data;

    return NGX_OK;
}


/* The host nginx found for a request without Host: the request line's,
 * else the server's own. */
static const char *
ngx_http_jpki_host_get(void *ud, size_t *len)
{
    ngx_http_request_t  *r = ud;
    ngx_str_t            own;

    if (r->headers_in.server.len) {
        own = r->headers_in.server;

    } else if (ngx_http_jpki_own_host(r, &own) != NGX_OK) {
        return NULL;
    }

    *len = own.len;
    return (const char *) own.data;
}


ngx_int_t
ngx_http_jpki_start(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t         *r = ctx->r;
    ngx_http_jpki_loc_conf_t   *jlcf;
    ngx_http_jpki_main_conf_t  *jmcf;
    jpki_txn_request            rq;
    jpki_edge_in                in;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    jmcf = ngx_http_jpki_site(r);

    ngx_memzero(&rq, sizeof(rq));
    rq.op = ctx->op;
    rq.now = ngx_time();
    rq.is_post = r->method == NGX_HTTP_POST;
    rq.body = ctx->body;
    rq.body_len = ctx->body_len;
    rq.peer = (char *) ctx->peer;
    rq.uri = (char *) ctx->uri;
    rq.query = (const char *) r->args.data;
    rq.query_len = r->args.len;
    rq.policy = jlcf->policy;
    rq.request_id_fn = ngx_http_jpki_audit_request_id;
    rq.request_id_ud = r;
#if (NGX_SSL)
    rq.https = r->connection->ssl != NULL;
    /* a TLS login: the core reads the handshake's certificate */
    rq.tls = r->connection->ssl ? r->connection->ssl->connection : NULL;
#endif

    /* logouts: read at every request in the node's table */
    if (jpki_site_shm(jmcf->js)) {
        rq.local = jmcf->shm;
    } else {
        rq.local = jmcf->mirror;
        rq.shared_store = 1;
        rq.local_since = jpki_outsync_since(jmcf->outsync,
                                            ngx_http_jpki_now_ms());
        rq.store_failing = jpki_outsync_failing(jmcf->outsync);
    }

    in.header = ngx_http_jpki_header_get;
    in.own_host = ngx_http_jpki_host_get;
    in.ud = r;
    in.subrequest = r != r->main;

    if (jpki_site_txn(jmcf->js, &rq, &in, &ctx->txn) != JPKI_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Resumes the request after an I/O completion. */
static void
ngx_http_jpki_resume(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t  *r = ctx->r;
    ngx_connection_t    *c = r->connection;

    ctx->waiting = 0;
    ngx_http_jpki_drive(ctx);

    if (ctx->waiting) {
        return;
    }

    if (ctx->op == JPKI_OP_CHECK) {
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);
    } else {
        ngx_http_finalize_request(r, ctx->rc);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_jpki_hold_done(ngx_event_t *ev)
{
    ngx_http_jpki_resume(ev->data);
}


static void
ngx_http_jpki_store_done(void *data, jpki_store_result *res, size_t n)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ctx->io = NULL;
    jpki_txn_feed_store(ctx->txn, res, n);
    ngx_http_jpki_resume(ctx);
}


static void
ngx_http_jpki_ocsp_done(void *data, ngx_int_t status, u_char *body,
    size_t len)
{
    ngx_http_jpki_ctx_t  *ctx = data;

    ctx->io = NULL;
    jpki_txn_feed_ocsp(ctx->txn, (int) status, body, len);
    ngx_http_jpki_resume(ctx);
}


static ngx_int_t ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx);


/* The store's batch for the core's run: the embedded store in place, or
 * Redis (its completion resumes the request); Redis unreachable is an
 * error (store_error), not a timeout. */
static int
ngx_http_jpki_run_store(void *ud, const jpki_store_cmd *cmds, size_t n,
    jpki_store_result *res)
{
    ngx_http_jpki_ctx_t        *ctx = ud;
    ngx_http_jpki_main_conf_t  *jmcf = ngx_http_jpki_site(ctx->r);

    if (jpki_site_shm(jmcf->js)) {
        jpki_shm_exec_batch(jmcf->shm, cmds, n, (int64_t) ngx_time() * 1000,
                            res);
        return 1;
    }

    if (ngx_http_jpki_redis_exec(jmcf, ctx->r->connection->log, cmds, n,
                                 ngx_http_jpki_store_done, ctx, &ctx->io)
        == NGX_AGAIN)
    {
        return JPKI_RUN_WAIT;
    }

    jpki_store_results_error(res, n);
    return 1;
}


/* An OCSP query for the core's run: its completion resumes the request. */
static int
ngx_http_jpki_run_ocsp(void *ud, size_t issuer, const char *key,
    const uint8_t *body, size_t len, const uint8_t **resp, size_t *resp_len)
{
    ngx_http_jpki_ctx_t        *ctx = ud;
    ngx_http_jpki_main_conf_t  *jmcf = ngx_http_jpki_site(ctx->r);
    ngx_str_t                   k;

    k.data = (u_char *) key;
    k.len = key ? ngx_strlen(key) : 0;

    return jmcf->ocsp[issuer] != NULL
           && ngx_http_jpki_ocsp_post(jmcf, issuer, ctx->r->connection->log,
                                      &k, body, len, ngx_http_jpki_ocsp_done,
                                      ctx, &ctx->io)
              == NGX_AGAIN
           ? JPKI_RUN_WAIT : 0;
}


/* Runs the transaction until it needs real I/O or is done. */
void
ngx_http_jpki_drive(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t  *r = ctx->r;
    const jpki_verdict  *v;
    jpki_run_io          io = { ngx_http_jpki_run_store,
                                ngx_http_jpki_run_ocsp, ctx };

    if (jpki_site_run(ngx_http_jpki_site(r)->js, ctx->txn, ngx_time(), &io)
        != JPKI_STEP_DONE)
    {
        ctx->waiting = 1;
        return;
    }

    ngx_http_jpki_uncount(ctx);

    /* a throttled login's answer is held a while (a timer costs the worker
     * nothing): a flood on few connections slows down */
    v = jpki_txn_verdict(ctx->txn);
    if (v != NULL && v->delay_ms && !ctx->held && r == r->main) {
        ctx->held = 1;
        ctx->hold.handler = ngx_http_jpki_hold_done;
        ctx->hold.data = ctx;
        ctx->hold.log = r->connection->log;
        ngx_add_timer(&ctx->hold, v->delay_ms);
        ctx->waiting = 1;
        return;
    }

    /* done first: the variables are read while the verdict sends the
     * answer (add_header ... always, $jpki_status) */
    ctx->done = 1;
    ctx->rc = ngx_http_jpki_verdict(ctx);
}


/* The headers the core gives for verdict v (pass: it lets the request
 * through): the session's go with the answer to the request the client
 * made.  nginx never sends a subrequest's headers (auth_request and SSI
 * take its status only): the cookie its check set (resealed: the idle
 * deadline slid, a re-check done; cleared: a dead session) goes with the
 * main request's answer, while that one is still to be sent (not after an
 * SSI page's header). */
static ngx_int_t
ngx_http_jpki_verdict_headers(ngx_http_request_t *r, const jpki_verdict *v,
    ngx_uint_t pass)
{
    ngx_http_request_t  *hr;
    jpki_edge_headers    eh;
    size_t               i;

    hr = (r != r->main && !r->main->header_sent) ? r->main : r;

    jpki_edge_verdict_headers(v, (int) pass, &eh);

    for (i = 0; i < eh.n; i++) {
        if (ngx_http_jpki_add_out_header(eh.session[i] ? hr : r,
                                         eh.h[i].name, eh.h[i].value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* The gate's own answer to verdict v: its status, headers and JSON body
 * (none when body is 0). */
ngx_int_t
ngx_http_jpki_answer(ngx_http_request_t *r, const jpki_verdict *v,
    ngx_uint_t body)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;
    ngx_int_t     rc;
    size_t        len = body && v->body ? v->body_len : 0;

    r->headers_out.status = v->http_status;
    r->headers_out.content_length_n = len;
    if (v->content_type != NULL) {          /* a page, an asset */
        r->headers_out.content_type.data = (u_char *) v->content_type;
        r->headers_out.content_type.len = ngx_strlen(v->content_type);
    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_jpki_verdict_headers(r, v, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, v->body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* A refusal before any transaction (jpki_edge_refusal), answered. */
ngx_int_t
ngx_http_jpki_refuse(ngx_http_request_t *r, jpki_err e)
{
    jpki_verdict  v;
    char          buf[JPKI_EDGE_REFUSAL_MAX];

    return ngx_http_jpki_answer(r, jpki_edge_refusal(&v, e, buf), 1);
}


/* A check that passed, through the location's allow-lists (the core's
 * decision: jpki_locconf_allows): v as it is, or the refusal (403, the
 * same JSON as Apache's), logged, which the variables then read; NULL: no
 * memory. */
static const jpki_verdict *
ngx_http_jpki_allowed(ngx_http_jpki_ctx_t *ctx,
    ngx_http_jpki_loc_conf_t *jlcf, const jpki_verdict *v)
{
    ngx_http_request_t  *r = ctx->r;
    jpki_verdict        *rv;
    jpki_err             e;
    char                 msg[400], *buf;

    e = jpki_locconf_allows(&jlcf->lc, ngx_http_jpki_site(r)->ctx, ctx->txn,
                            msg, sizeof(msg));
    if (e == JPKI_OK) {
        return v;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "jpki: %s", msg);

    rv = ngx_pcalloc(r->pool, sizeof(jpki_verdict));
    buf = ngx_pnalloc(r->pool, JPKI_EDGE_REFUSAL_MAX);
    if (rv == NULL || buf == NULL) {
        return NULL;
    }

    ctx->refused = jpki_edge_refusal(rv, e, buf);
    ctx->account.len = 0;
    ctx->account.data = NULL;

    return ctx->refused;
}


/* Applies the verdict: returns the access-phase code or, for endpoints,
 * what to finalize the request with. */
static ngx_int_t
ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t        *r = ctx->r;
    ngx_http_jpki_loc_conf_t  *jlcf;
    const jpki_verdict        *v;
    ngx_str_t                  account;
    ngx_int_t                  rc;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    v = jpki_txn_verdict(ctx->txn);

    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->audit) {
        ngx_http_jpki_audit(r, v->audit);
    }

    /* the verdict's strings live as long as the transaction, which is
     * freed with the request's pool: the variables and the account
     * header point at them */
    ctx->account.data = (u_char *) v->account;
    ctx->account.len = v->account ? ngx_strlen(v->account) : 0;

    if (jpki_edge_passes(ctx->op, v) && ctx->op == JPKI_OP_CHECK) {
        v = ngx_http_jpki_allowed(ctx, jlcf, v);
        if (v == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (jpki_edge_passes(ctx->op, v)) {
        account = ctx->account;
        if (ngx_http_jpki_verdict_headers(r, v, 1) != NGX_OK
            || ngx_http_jpki_set_account_header(r, jlcf, &account) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        /* the session cookie (a bearer token) stays out of what goes
         * upstream; with auth_request, the main request goes there too */
        if (ngx_http_jpki_upstream_cookies(r, jlcf) != NGX_OK
            || (r != r->main && !r->main->header_sent
                && ngx_http_jpki_upstream_cookies(r->main, jlcf) != NGX_OK))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->pass = 1;
        return NGX_OK;
    }

    /* refusals of the gate and endpoint answers are ours to send; a
     * refused request's body is never read by anyone else: discard it, or
     * on a keepalive connection it would be parsed as the next request */
    if (ctx->op == JPKI_OP_CHECK) {
        if (r != r->main) {
            /* a refused subrequest: its status for the request that made
             * it (auth_request denies, an SSI include shows nothing), no
             * body to be included in a page */
            return ngx_http_jpki_answer(r, v, 0);
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_jpki_answer(r, v, 1);
}
