/*
 * ngx_http_jpki_txn.c - one transaction of the core (common/txn.c) driven
 * from nginx events: its context, its store batches (the embedded store in
 * place, Redis through ngx_http_jpki_io.c), OCSP, and the verdict turned
 * into nginx's answer.
 */

#include "ngx_http_jpki.h"
#include "gate.h"
#include "redis.h"


static void
ngx_http_jpki_str_of(ngx_str_t *dst, const char *s)
{
    dst->data = (u_char *) s;
    dst->len = s ? ngx_strlen(s) : 0;
}


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
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_str_t                  name;
    size_t                     n;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);

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
    name.data = (u_char *) jlcf->policy->cookie_name;
    name.len = ngx_strlen(name.data);
    ngx_http_jpki_find_cookie(r, &name, &ctx->cookie);

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


/* The first request header NAME (NULL: absent). */
static ngx_table_elt_t *
ngx_http_jpki_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len = ngx_strlen(name);
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;

    part = &r->headers_in.headers.part;
    i = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == len
            && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0)
        {
            return h;
        }
    }

    return NULL;
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


ngx_int_t
ngx_http_jpki_start(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t         *r = ctx->r;
    ngx_http_jpki_loc_conf_t   *jlcf;
    ngx_http_jpki_main_conf_t  *jmcf;
    jpki_txn_request            rq;
    ngx_str_t                  *ct, own;
    ngx_table_elt_t            *h;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    jmcf = ngx_http_jpki_site(r);

    ngx_memzero(&rq, sizeof(rq));
    rq.op = ctx->op;
    rq.now = ngx_time();
    rq.is_post = r->method == NGX_HTTP_POST;
    /* a subrequest is nobody's navigation: no login page redirect */
    rq.wants_json = r != r->main || ngx_http_jpki_wants_json(r);
    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;
    rq.content_type = ct ? (char *) ct->data : NULL;
    rq.content_type_len = ct ? ct->len : 0;
    rq.body = ctx->body;
    rq.body_len = ctx->body_len;
    rq.cookie = ctx->cookie.len ? (char *) ctx->cookie.data : NULL;
    rq.cookie_len = ctx->cookie.len;
    rq.peer = (char *) ctx->peer;
    rq.uri = (char *) ctx->uri;
    rq.policy = jlcf->policy;
    rq.crl_in_store = jmcf->store == NGX_HTTP_JPKI_STORE_REDIS;

    if (ctx->op == JPKI_OP_LOGIN || ctx->op == JPKI_OP_LOGOUT) {
        /* where the browser says the request comes from */
        h = ngx_http_jpki_header_in(r, "Sec-Fetch-Site");
        if (h) {
            rq.sec_fetch_site = (char *) h->value.data;
            rq.sec_fetch_site_len = h->value.len;
        }
        h = ngx_http_jpki_header_in(r, "Origin");
        if (h) {
            rq.origin = (char *) h->value.data;
            rq.origin_len = h->value.len;
        }
    }

    if (ctx->op == JPKI_OP_CHALLENGE || ctx->op == JPKI_OP_LOGIN
        || ctx->op == JPKI_OP_LOGOUT)
    {
        /* the Host a challenge is bound to (HTTP/2: from :authority);
         * absent (HTTP/1.0): the host nginx found for the request */
        h = r->headers_in.host;
        if (h && h->value.len) {
            rq.host = (char *) h->value.data;
            rq.host_len = h->value.len;

        } else if (r->headers_in.server.len) {
            rq.host = (char *) r->headers_in.server.data;
            rq.host_len = r->headers_in.server.len;

        } else if (ngx_http_jpki_own_host(r, &own) == NGX_OK) {
            rq.host = (char *) own.data;
            rq.host_len = own.len;
        }
    }

    if (jmcf->map_file.len) {
        rq.map_source = JPKI_MAP_CALLBACK;
        rq.map_fn = ngx_http_jpki_map_lookup;
        rq.map_ud = jmcf;
    } else {
        rq.map_source = JPKI_MAP_STORE;
    }

    /* logouts: read at every request in the node's table */
    if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
        rq.local = jmcf->shm;
    } else {
        rq.local = jmcf->mirror;
        rq.shared_store = 1;
        rq.local_since = jpki_outsync_since(jmcf->outsync,
                                            ngx_http_jpki_now_ms());
    }

    if (jpki_txn_new(jmcf->ctx, &rq, &ctx->txn) != JPKI_OK) {
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


static ngx_http_jpki_issuer_t *
ngx_http_jpki_issuer_of(ngx_http_jpki_main_conf_t *jmcf, const jpki_issuer *is)
{
    ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
    ngx_uint_t               i;

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].issuer == is) {
            return &iss[i];
        }
    }

    return NULL;
}


static ngx_int_t ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx);


/* Runs the transaction until it needs real I/O or is done. */
void
ngx_http_jpki_drive(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t         *r = ctx->r;
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_http_jpki_issuer_t     *iss;
    const jpki_store_cmd       *cmds;
    const jpki_verdict         *v;
    jpki_store_result           res[JPKI_STORE_BATCH_MAX];
    jpki_rev_info               info;
    jpki_step                   step;
    jpki_err                    e;
    ngx_str_t                   key;
    const uint8_t              *body;
    size_t                      n, blen;
    int64_t                     now_ms;

    jmcf = ngx_http_jpki_site(r);

    for ( ;; ) {
        step = jpki_txn_step(ctx->txn);

        switch (step) {

        case JPKI_STEP_STORE:
            cmds = jpki_txn_store_cmds(ctx->txn, &n);

            if (jmcf->store == NGX_HTTP_JPKI_STORE_SHM) {
                if (n > JPKI_STORE_BATCH_MAX) {
                    jpki_txn_feed_store(ctx->txn, NULL, 0);
                    continue;
                }
                now_ms = (int64_t) ngx_time() * 1000;
                jpki_shm_exec_batch(jmcf->shm, cmds, n, now_ms, res);
                jpki_txn_feed_store(ctx->txn, res, n);
                continue;
            }

            if (ngx_http_jpki_redis_exec(jmcf, r->connection->log, cmds, n,
                                         ngx_http_jpki_store_done, ctx,
                                         &ctx->io)
                == NGX_AGAIN)
            {
                ctx->waiting = 1;
                return;
            }
            /* Redis unreachable: an error (store_error), not a timeout */
            if (n > JPKI_STORE_BATCH_MAX) {
                jpki_txn_feed_store(ctx->txn, NULL, 0);
                continue;
            }
            jpki_store_results_error(res, n);
            jpki_txn_feed_store(ctx->txn, res, n);
            continue;

        case JPKI_STEP_OCSP:
            iss = ngx_http_jpki_issuer_of(jmcf, jpki_txn_issuer(ctx->txn));
            body = jpki_txn_ocsp_body(ctx->txn, &blen);
            /* concurrent logins of a certificate share one query (not
             * with nonces: each query is then its own) */
            key.data = (u_char *) jpki_txn_ocsp_key(ctx->txn);
            key.len = key.data ? ngx_strlen(key.data) : 0;

            if (iss != NULL && iss->ocsp_url.naddrs > 0
                && ngx_http_jpki_ocsp_post(jmcf, iss, r->connection->log,
                                           &key, body, blen,
                                           ngx_http_jpki_ocsp_done, ctx,
                                           &ctx->io)
                   == NGX_AGAIN)
            {
                ctx->waiting = 1;
                return;
            }
            jpki_txn_feed_ocsp(ctx->txn, 0, NULL, 0);
            continue;

        case JPKI_STEP_CRL:
            /* the CRL of the key that issued the certificate */
            e = ngx_http_jpki_crl_lookup(jmcf, ctx->txn, &info);
            jpki_txn_feed_crl(ctx->txn, e, e == JPKI_OK ? &info : NULL);
            continue;

        default:
            ngx_http_jpki_uncount(ctx);

            /* a throttled login's answer is held a while (a timer costs the
             * worker nothing): a flood on few connections slows down */
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

            /* done first: the variables are read while the verdict sends
             * the answer (add_header ... always, $jpki_status) */
            ctx->done = 1;
            ctx->rc = ngx_http_jpki_verdict(ctx);
            return;
        }
    }
}


ngx_int_t
ngx_http_jpki_send_json(ngx_http_request_t *r, ngx_uint_t status,
    const char *body, size_t len)
{
    ngx_buf_t          *b;
    ngx_chain_t         out;
    ngx_int_t           rc;
    const jpki_header  *h;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    for (h = jpki_answer_headers; h->name != NULL; h++) {
        if (ngx_http_jpki_add_out_header(r, h->name, h->value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
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


/* Applies the verdict: returns the access-phase code or, for endpoints,
 * what to finalize the request with. */
static ngx_int_t
ngx_http_jpki_verdict(ngx_http_jpki_ctx_t *ctx)
{
    ngx_http_request_t        *r = ctx->r;
    ngx_http_request_t        *hr;
    ngx_http_jpki_loc_conf_t  *jlcf;
    const jpki_verdict        *v;
    const jpki_header         *h;
    ngx_str_t                  account;
    ngx_int_t                  rc;
    u_char                     retry[NGX_INT_T_LEN + 1];

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    v = jpki_txn_verdict(ctx->txn);

    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->audit) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "jpki audit: %s", v->audit);
    }

    /* the verdict's strings live as long as the transaction, which is
     * freed with the request's pool: the variables may point at them */
    ngx_http_jpki_str_of(&ctx->status, v->reason);
    ngx_http_jpki_str_of(&ctx->account, v->account);
    ngx_http_jpki_str_of(&ctx->cert_id, v->cert_id);
    ngx_http_jpki_str_of(&ctx->set_cookie, v->set_cookie);

    ctx->auth_time = (time_t) v->auth_time;

    /* nginx never sends a subrequest's headers (auth_request and SSI take
     * its status only): the cookie its check set (resealed: the idle
     * deadline slid, a re-check done; cleared: a dead session) goes with
     * the main request's answer, while that one is still to be sent (not
     * after an SSI page's header) */
    hr = (r != r->main && !r->main->header_sent) ? r->main : r;

    if (v->set_cookie
        && ngx_http_jpki_add_out_header(hr, "Set-Cookie", v->set_cookie)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->location
        && ngx_http_jpki_add_out_header(r, "Location", v->location)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v->retry_after) {
        ngx_sprintf(retry, "%ui%Z", (ngx_uint_t) v->retry_after);
        if (ngx_http_jpki_add_out_header(r, "Retry-After", (char *) retry)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->op == JPKI_OP_CHECK && v->http_status == 200) {
        account = ctx->account;
        if (ngx_http_jpki_set_account_header(r, jlcf, &account) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        /* the session cookie (a bearer token) stays out of what goes
         * upstream; with auth_request, the main request goes there too */
        if (ngx_http_jpki_upstream_cookies(r, jlcf) != NGX_OK
            || (hr != r && ngx_http_jpki_upstream_cookies(hr, jlcf) != NGX_OK))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        /* a session sealed again: no shared cache keeps that answer */
        for (h = v->set_cookie ? jpki_pass_cookie_headers : NULL;
             h != NULL && h->name != NULL; h++)
        {
            if (ngx_http_jpki_add_out_header(hr, h->name, h->value)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
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
            return ngx_http_jpki_send_json(r, v->http_status, NULL, 0);
        }

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_jpki_send_json(r, v->http_status, v->body, v->body_len);
}

