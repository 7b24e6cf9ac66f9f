/*
 * ngx_http_jpki_endpoints.c - the endpoints (challenge, login, tls,
 * logout, status: the request body read, then a transaction) and the
 * health answer (a transaction too: common/site.c writes it).
 */

#include "ngx_http_jpki.h"
#include "gate.h"
#include "edge.h"


static void
ngx_http_jpki_body_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_ctx_t        *ctx;
    ngx_http_jpki_loc_conf_t   *jlcf;
    ngx_http_jpki_main_conf_t  *jmcf;
    ngx_chain_t                *cl;
    size_t                      len;
    u_char                     *p;

    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

    len = 0;
    if (r->request_body && !r->request_body->temp_file) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (r->request_body && r->request_body->temp_file) {
        ctx->body = NULL;
        ctx->body_len = JPKI_BODY_MAX + 1;        /* too large */

    } else if (len > 0) {
        ctx->body = ngx_pnalloc(r->pool, len);
        if (ctx->body == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        p = ctx->body;
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            /* a chunked body ends with an empty buffer (pos NULL) */
            if (cl->buf->last > cl->buf->pos) {
                p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
            }
        }
        ctx->body_len = len;
    }

    /* a cap on the logins a worker verifies at once (the location's
     * jpki_throttle concurrency=): a flood cannot take the worker from the
     * gated requests */
    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    jmcf = ngx_http_jpki_site(r);
    if (jpki_edge_login_busy(jmcf->ctx, ctx->op, jlcf->policy,
                             (unsigned) jmcf->logins))
    {
        ngx_http_finalize_request(r, ngx_http_jpki_refuse(r, JPKI_ERR_BUSY));
        return;
    }

    if (ngx_http_jpki_start(ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (jpki_op_is_login(ctx->op)) {
        jmcf->logins++;
        ctx->counted = 1;
    }

    ngx_http_jpki_drive(ctx);

    if (!ctx->waiting) {
        ngx_http_finalize_request(r, ctx->rc);
    }
}


/* A transaction without a body (the client's discarded), run: finalized
 * by the body handler. */
static ngx_int_t
ngx_http_jpki_run_bodiless(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;
    ngx_http_jpki_body_handler(r);

    return NGX_DONE;
}


/* A transaction of op, its body read first when it takes one. */
static ngx_int_t
ngx_http_jpki_run_op(ngx_http_request_t *r, jpki_op op)
{
    ngx_http_jpki_ctx_t       *ctx;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_int_t                  rc;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx = ngx_http_jpki_new_ctx(r, op);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!jpki_op_has_body(op) || r->method != NGX_HTTP_POST) {
        return ngx_http_jpki_run_bodiless(r);
    }

    if (r->headers_in.content_length_n > JPKI_BODY_MAX
        || r->headers_in.content_length_n
           > (off_t) clcf->client_body_buffer_size)
    {
        ngx_http_discard_request_body(r);
        return ngx_http_jpki_refuse(r, JPKI_ERR_TOO_LARGE);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_jpki_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_jpki_endpoint_handler(ngx_http_request_t *r)
{
    jpki_op  op;

    if (!jpki_endpoint_op((const char *) r->uri.data, r->uri.len,
                          r->method == NGX_HTTP_POST, &op)) {
        ngx_http_discard_request_body(r);
        return ngx_http_jpki_refuse(r, JPKI_ERR_NOT_FOUND);
    }

    return ngx_http_jpki_run_op(r, op);
}


/* The admin API (jpki_admin): who may ask and what, the core's. */
static ngx_int_t
ngx_http_jpki_admin_handler(ngx_http_request_t *r)
{
    return ngx_http_jpki_run_op(r, JPKI_OP_ADMIN);
}


/* A location's answer (jpki_endpoints, jpki_health): the core's flag, and
 * handler as the location's content handler when on. */
static char *
ngx_http_jpki_answers(ngx_conf_t *cf, ngx_command_t *cmd, ngx_flag_t *flag,
    ngx_http_handler_pt handler)
{
    ngx_http_core_loc_conf_t  *clcf;
    char                      *rv;

    rv = ngx_http_jpki_conf_flag(cf, cmd, flag);
    if (rv == NGX_CONF_OK && *flag) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->handler = handler;
    }

    return rv;
}


char *
ngx_http_jpki_endpoints(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    return ngx_http_jpki_answers(cf, cmd, &jlcf->endpoints,
                                 ngx_http_jpki_endpoint_handler);
}


/* ---- health (JSON for monitoring): a transaction of the core ------- */

/* A GET (or HEAD) answered by a transaction of op (health, metrics). */
static ngx_int_t
ngx_http_jpki_get_op(ngx_http_request_t *r, jpki_op op)
{
    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        ngx_http_discard_request_body(r);
        return ngx_http_jpki_refuse(r, JPKI_ERR_METHOD);
    }

    if (ngx_http_jpki_new_ctx(r, op) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_jpki_run_bodiless(r);
}


static ngx_int_t
ngx_http_jpki_health_handler(ngx_http_request_t *r)
{
    return ngx_http_jpki_get_op(r, JPKI_OP_HEALTH);
}


/* ---- metrics (Prometheus text): a transaction of the core --------- */

static ngx_int_t
ngx_http_jpki_metrics_handler(ngx_http_request_t *r)
{
    return ngx_http_jpki_get_op(r, JPKI_OP_METRICS);
}


char *
ngx_http_jpki_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    return ngx_http_jpki_answers(cf, cmd, &jlcf->metrics,
                                 ngx_http_jpki_metrics_handler);
}


char *
ngx_http_jpki_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    return ngx_http_jpki_answers(cf, cmd, &jlcf->admin,
                                 ngx_http_jpki_admin_handler);
}


char *
ngx_http_jpki_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_loc_conf_t  *jlcf = conf;

    return ngx_http_jpki_answers(cf, cmd, &jlcf->health,
                                 ngx_http_jpki_health_handler);
}

