/* edge.c - the request's edge, once for both servers (see edge.h): the
 * rules of what a request brings into a transaction and of what its
 * answer carries, which used to be written in each adapter. */
#include "edge.h"
#include "gate.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

/* ---- the request ------------------------------------------------- */

static const char *first(const jpki_edge_in *in, const char *name,
                         size_t *len)
{
    const char *v;

    *len = 0;
    v = in->header(in->ud, name, 0, len);
    if (v == NULL)
        *len = 0;
    return v;
}

void jpki_edge_cookie(const jpki_span *cookies, size_t n, const char *name,
                      const char **val, size_t *vlen)
{
    size_t i;

    *val = NULL;
    *vlen = 0;
    for (i = 0; i < n && name != NULL; i++)
        if (jpki_cookie_find(cookies[i].p, cookies[i].len, name, val, vlen))
            return;
    *val = NULL;
    *vlen = 0;
}

/* The session cookie from every Cookie header, in the order they came
 * (HTTP/2 sends each cookie in its own). */
static void request_cookie(jpki_txn_request *rq, const jpki_edge_in *in)
{
    const char *name = rq->op == JPKI_OP_DEVICE_POLL ? JPKI_FLOW_COOKIE
                       : rq->policy != NULL ? rq->policy->cookie_name : NULL;
    jpki_span c;
    size_t i;

    rq->cookie = NULL;
    rq->cookie_len = 0;
    for (i = 0; name != NULL; i++) {
        c.len = 0;
        c.p = in->header(in->ud, "Cookie", i, &c.len);
        if (c.p == NULL)
            return;
        jpki_edge_cookie(&c, 1, name, &rq->cookie, &rq->cookie_len);
        if (rq->cookie != NULL)
            return;
    }
}

void jpki_edge_request(jpki_txn_request *rq, const jpki_edge_in *in)
{
    const char *v;
    size_t len;

    /* a subrequest is nobody's navigation: no login page redirect */
    v = first(in, "Accept", &len);
    rq->wants_json = in->subrequest || jpki_accept_wants_json(v, len);
    rq->content_type = first(in, "Content-Type", &rq->content_type_len);
    request_cookie(rq, in);
    rq->crl_in_store = in->redis != 0;
    rq->map_source = rq->map_fn != NULL ? JPKI_MAP_CALLBACK : JPKI_MAP_STORE;

    if (rq->op == JPKI_OP_ADMIN || rq->op == JPKI_OP_METRICS)
        /* its bearer token */
        rq->authorization = first(in, "Authorization",
                                  &rq->authorization_len);

    if (rq->op == JPKI_OP_PAGE || rq->op == JPKI_OP_DEVICE_START
        || rq->op == JPKI_OP_DEVICE_POLL)   /* the page's language */
        rq->accept_language = first(in, "Accept-Language",
                                    &rq->accept_language_len);

    if (rq->op == JPKI_OP_LOGIN || rq->op == JPKI_OP_TLS_LOGIN
        || rq->op == JPKI_OP_LOGOUT || rq->op == JPKI_OP_DEVICE_START) {
        /* where the browser says the request comes from */
        rq->sec_fetch_site = first(in, "Sec-Fetch-Site",
                                   &rq->sec_fetch_site_len);
        rq->origin = first(in, "Origin", &rq->origin_len);
    }

    if (rq->op == JPKI_OP_CHALLENGE || rq->op == JPKI_OP_LOGIN
        || rq->op == JPKI_OP_TLS_LOGIN || rq->op == JPKI_OP_LOGOUT
        || rq->op == JPKI_OP_DEVICE_START || rq->op == JPKI_OP_DEVICE_SIGN
        || rq->op == JPKI_OP_DEVICE_POLL) {
        /* the Host a challenge is bound to; absent or empty (HTTP/1.0,
         * HTTP/2 without :authority): the host the server found */
        rq->host = first(in, "Host", &rq->host_len);
        if ((rq->host == NULL || rq->host_len == 0) && in->own_host != NULL) {
            rq->host_len = 0;
            rq->host = in->own_host(in->ud, &rq->host_len);
        }
        if (rq->host == NULL || rq->host_len == 0) {
            rq->host = NULL;
            rq->host_len = 0;
        }
    }
}

/* ---- the answer -------------------------------------------------- */

int jpki_edge_passes(jpki_op op, const jpki_verdict *v)
{
    return op == JPKI_OP_CHECK && v != NULL && v->http_status == 200
           && v->account != NULL;
}

static void add(jpki_edge_headers *out, const char *name, const char *value,
                int session)
{
    if (out->n < JPKI_EDGE_HEADERS_MAX) {
        out->h[out->n].name = name;
        out->h[out->n].value = value;
        out->session[out->n] = (unsigned char) session;
        out->n++;
    }
}

static void add_list(jpki_edge_headers *out, const jpki_header *h,
                     int session)
{
    for (; h->name != NULL; h++)
        add(out, h->name, h->value, session);
}

void jpki_edge_verdict_headers(const jpki_verdict *v, int pass,
                               jpki_edge_headers *out)
{
    memset(out, 0, sizeof(*out));

    if (v != NULL && v->set_cookie != NULL) {
        add(out, "Set-Cookie", v->set_cookie, 1);
        if (v->set_cookie2 != NULL)
            add(out, "Set-Cookie", v->set_cookie2, 1);
        /* a session sealed again: no shared cache keeps that answer */
        if (pass)
            add_list(out, jpki_pass_cookie_headers, 1);
    }
    if (pass)
        return;

    if (v != NULL && v->location != NULL)
        add(out, "Location", v->location, 0);
    if (v != NULL && v->retry_after > 0) {
        snprintf(out->retry, sizeof(out->retry), "%u", v->retry_after);
        add(out, "Retry-After", out->retry, 0);
    }
    if (v != NULL && v->allow != NULL)
        add(out, "Allow", v->allow, 0);
    /* a page or an asset has its own (the CSP, its cache rule) */
    add_list(out, v != NULL && v->headers != NULL ? v->headers
                                                  : jpki_answer_headers, 0);
}

const jpki_verdict *jpki_edge_refusal(jpki_verdict *v, jpki_err e,
                                      char *buf)
{
    memset(v, 0, sizeof(*v));
    switch (e) {
    case JPKI_ERR_NOT_FOUND:
        v->http_status = 404;
        break;
    case JPKI_ERR_TOO_LARGE:
        v->http_status = 413;
        break;
    case JPKI_ERR_BAD_REQUEST:
        v->http_status = 400;
        break;
    case JPKI_ERR_ACCOUNT_NOT_ALLOWED:  /* a location's allow-lists */
    case JPKI_ERR_ISSUER_NOT_ALLOWED:
        v->http_status = 403;
        break;
    case JPKI_ERR_METHOD:               /* the health answer's */
        v->http_status = 405;
        v->allow = JPKI_HEALTH_ALLOW;
        break;
    case JPKI_ERR_BUSY:
        /* a client may try again at once: another login ends soon */
        v->http_status = 503;
        v->retry_after = 1;
        break;
    default:
        v->http_status = 500;
        e = JPKI_ERR_INTERNAL;
        break;
    }
    v->err = e;
    v->reason = jpki_reason(e);
    v->body_len = jpki_error_json(e, buf, JPKI_EDGE_REFUSAL_MAX);
    v->body = buf;
    return v;
}

const jpki_verdict *jpki_edge_answer(jpki_verdict *v, int status,
                                     const char *body, size_t len)
{
    memset(v, 0, sizeof(*v));
    v->http_status = status;
    v->err = status < 400 ? JPKI_OK : JPKI_ERR_INTERNAL;
    v->reason = jpki_reason(v->err);
    v->body = body;
    v->body_len = body != NULL ? len : 0;
    return v;
}

int jpki_edge_login_busy(const jpki_ctx *ctx, jpki_op op,
                         const jpki_policy *pol, unsigned in_flight)
{
    if (!jpki_op_is_login(op) || pol == NULL || pol->login_concurrency == 0
        || in_flight < pol->login_concurrency)
        return 0;
    jpki_metrics_busy(ctx);
    return 1;
}

/* ---- upstream cookies -------------------------------------------- */

size_t jpki_edge_upstream_cookies(const jpki_span *in, size_t n,
                                  const char *name, int pass, char *buf,
                                  jpki_span *out, int *changed)
{
    size_t i, k = 0, len;

    *changed = 0;
    for (i = 0; i < n; i++) {
        if (pass || jpki_cookie_strip(in[i].p, in[i].len, name, buf, &len)
                    == 0) {
            out[k++] = in[i];            /* none of ours: as it came */
            continue;
        }
        *changed = 1;
        if (len > 0) {
            out[k].p = buf;
            out[k++].len = len;
            buf += len;
        }
    }
    return k;
}

/* ---- the gate's headers in a request ----------------------------- */

jpki_edge_strip jpki_edge_strip_header(const char *key, size_t klen,
                                       const char *name, size_t nlen,
                                       int set, int keep_set, int quiet)
{
    if (!jpki_is_gate_header(key, klen, name, nlen))
        return JPKI_EDGE_KEEP;
    if (set && keep_set)
        return JPKI_EDGE_KEEP;
    return set || quiet ? JPKI_EDGE_DROP : JPKI_EDGE_WARN;
}
