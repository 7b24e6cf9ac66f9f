/*
 * ngx_http_jpki_access.c - the gate in nginx's phases: the preaccess and
 * access handlers, the client's copies of the gate's headers taken out, the
 * account header and the upstream's Cookie set.  What the gate decides is
 * the core's (common/); this file reads and writes nginx's request.
 */

#include "ngx_http_jpki.h"
#include "gate.h"
#include "edge.h"


/* The next header of a list walk started with part = &list.part, i = 0;
 * NULL at its end. */
ngx_table_elt_t *
ngx_http_jpki_header_next(ngx_list_part_t **part, ngx_uint_t *i)
{
    while (*i >= (*part)->nelts) {
        if ((*part)->next == NULL) {
            return NULL;
        }
        *part = (*part)->next;
        *i = 0;
    }

    return &((ngx_table_elt_t *) (*part)->elts)[(*i)++];
}


/* The account headers the gate set are known by their value: each value
 * is registered as a no-op cleanup of the request's pool, which internal
 * redirects keep (they clear the module's context) and subrequests share.
 * A client's header can never match. */
static void
ngx_http_jpki_own_header(void *data)
{
    (void) data;
}


static ngx_uint_t
ngx_http_jpki_is_own_header(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_pool_cleanup_t  *c;

    for (c = r->pool->cleanup; c != NULL; c = c->next) {
        if (c->handler == ngx_http_jpki_own_header
            && c->data == h->value.data)
        {
            return 1;
        }
    }

    return 0;
}


/* The request's header list becomes list (a copy: its last part is moved
 * when it is the first). */
static ngx_int_t
ngx_http_jpki_headers_in(ngx_http_request_t *r, ngx_list_t *list)
{
    r->headers_in.headers = *list;
    if (list->last == &list->part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    return NGX_OK;
}


/* What the gate does with request header h (jpki_edge_strip_header): the
 * account header NAME and any X-JPKI-* go, but not the one the gate set
 * (its value is keep, the very string), nor, with keep_own, one a gate of
 * this request set before an internal redirect; with quiet, no warning. */
static jpki_edge_strip
ngx_http_jpki_strip_of(ngx_http_request_t *r, ngx_table_elt_t *h,
    ngx_str_t *name, ngx_str_t *keep, ngx_uint_t keep_own, ngx_uint_t quiet)
{
    /* whether a gate set it is asked of the gate's headers only: the walk
     * of the pool's cleanups is not for every header */
    if ((keep != NULL && keep->data != NULL && h->value.data == keep->data)
        || !jpki_is_gate_header((const char *) h->key.data, h->key.len,
                                (const char *) name->data, name->len))
    {
        return JPKI_EDGE_KEEP;
    }

    return jpki_edge_strip_header((const char *) h->key.data, h->key.len,
                                  (const char *) name->data, name->len,
                                  (int) ngx_http_jpki_is_own_header(r, h),
                                  (int) keep_own, (int) quiet);
}


/* Removes every client copy of the gate's headers (the account header and
 * any X-JPKI-*, in any spelling), rebuilding the list: nginx's list has no
 * removal.  A subrequest's list is a copy of its parent's, sharing its
 * parts: rebuilt, it is the subrequest's own.  With own, it is rebuilt in
 * any case (what the subrequest's gate adds then goes to its list, not to
 * its parent's), and the gate's headers of the parent are left out too;
 * otherwise the header a gate above it set (keep) stays. */
static ngx_int_t
ngx_http_jpki_strip_headers(ngx_http_request_t *r, ngx_str_t *name,
    ngx_uint_t own, ngx_str_t *keep, ngx_uint_t keep_own)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;
    ngx_list_t        list;
    ngx_uint_t        i, found = own;
    jpki_edge_strip   what;

    if (own) {
        keep = NULL;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    while (!found && (h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        found = ngx_http_jpki_strip_of(r, h, name, keep, keep_own, own)
                != JPKI_EDGE_KEEP;
    }

    if (!found) {
        return NGX_OK;
    }

    if (ngx_list_init(&list, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        what = ngx_http_jpki_strip_of(r, h, name, keep, keep_own, own);
        if (what == JPKI_EDGE_WARN) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "jpki: client sent gate header \"%V\": "
                          "removed", &h->key);
        }
        if (what != JPKI_EDGE_KEEP) {
            continue;
        }
        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *h;
    }

    return ngx_http_jpki_headers_in(r, &list);
}


ngx_int_t
ngx_http_jpki_set_account_header(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf, ngx_str_t *account)
{
    ngx_table_elt_t     *h;
    ngx_pool_cleanup_t  *cln;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = jlcf->header;
    h->value = *account;
    h->lowcase_key = ngx_pnalloc(r->pool, h->key.len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }
    ngx_strlow(h->lowcase_key, h->key.data, h->key.len);
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }
    cln->handler = ngx_http_jpki_own_header;
    cln->data = h->value.data;

    return NGX_OK;
}


/* Whether the Cookie headers of the list are want[n], the very strings
 * (none was taken out, or they were at an earlier gate): then kept. */
static ngx_uint_t
ngx_http_jpki_cookies_are(ngx_http_request_t *r, jpki_span *want,
    size_t n)
{
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;
    size_t            k;

    part = &r->headers_in.headers.part;
    i = 0;
    k = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == 6
            && ngx_strncasecmp(h->key.data, (u_char *) "Cookie", 6) == 0)
        {
            if (k == n || (u_char *) want[k].p != h->value.data
                || want[k].len != h->value.len)
            {
                return 0;
            }
            k++;
        }
    }

    return k == n;
}


/* Cookie headers of values want[n] (the key of the client's first) pushed
 * to list. */
static ngx_int_t
ngx_http_jpki_push_cookies(ngx_list_t *list, ngx_table_elt_t *first,
    jpki_span *want, size_t n)
{
    ngx_table_elt_t  *nh;
    size_t            k;

    for (k = 0; k < n; k++) {
        nh = ngx_list_push(list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *first;
        nh->value.data = (u_char *) want[k].p;
        nh->value.len = want[k].len;
    }

    return NGX_OK;
}


/* The Cookie headers nginx sends upstream (the list headers_in.headers)
 * are the client's (headers_in.cookies, which the gate and $cookie_...
 * read, stay as they came), without the session cookie unless
 * jpki_pass_cookie is on (the core's decision: jpki_edge_upstream_cookies).
 * Made again from the client's at every gate (an internal redirect to
 * another gated location, whose jpki_pass_cookie counts); the list is
 * rebuilt with them where the first Cookie header was. */
ngx_int_t
ngx_http_jpki_upstream_cookies(ngx_http_request_t *r,
    ngx_http_jpki_loc_conf_t *jlcf)
{
    ngx_table_elt_t  **c = r->headers_in.cookies.elts, *h, *nh;
    ngx_list_part_t   *part;
    ngx_list_t         list;
    jpki_span         *in, *want;
    ngx_uint_t         i, n = r->headers_in.cookies.nelts, put;
    size_t             m, len;
    u_char            *buf;
    int                changed;

    if (n == 0) {
        return NGX_OK;
    }

    in = ngx_palloc(r->pool, 2 * n * sizeof(jpki_span));
    if (in == NULL) {
        return NGX_ERROR;
    }
    want = in + n;

    len = 1;
    for (i = 0; i < n; i++) {
        in[i].p = (const char *) c[i]->value.data;
        in[i].len = c[i]->value.len;
        len += c[i]->value.len;
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    m = jpki_edge_upstream_cookies(in, n, jlcf->policy->cookie_name,
                                   (int) jlcf->pass_cookie, (char *) buf,
                                   want, &changed);

    if (ngx_http_jpki_cookies_are(r, want, m)) {
        return NGX_OK;
    }

    if (ngx_list_init(&list, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    i = 0;
    put = 0;
    while ((h = ngx_http_jpki_header_next(&part, &i)) != NULL) {
        if (h->key.len == 6
            && ngx_strncasecmp(h->key.data, (u_char *) "Cookie", 6) == 0)
        {
            if (put++ == 0
                && ngx_http_jpki_push_cookies(&list, c[0], want, m) != NGX_OK)
            {
                return NGX_ERROR;
            }
            continue;
        }
        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }
        *nh = *h;
    }

    /* none in the list: appended */
    if (put == 0
        && ngx_http_jpki_push_cookies(&list, c[0], want, m) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_jpki_headers_in(r, &list);
}


ngx_int_t
ngx_http_jpki_add_out_header(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;
    size_t            len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    len = ngx_strlen(value);
    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(h->value.data, value, len);
    h->value.len = len;

    return NGX_OK;
}


/* The check a request carries the account of: its own gate's when it let
 * it through, else the nearest ancestor's that did (a subrequest's header
 * list is a copy of its parent's, with the header that gate set); NULL:
 * none. */
ngx_http_jpki_ctx_t *
ngx_http_jpki_passed(ngx_http_request_t *r)
{
    ngx_http_jpki_ctx_t  *ctx;

    for ( /* void */ ; r != NULL; r = r->parent) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

        if (ctx != NULL && ctx->pass) {
            return ctx;
        }
    }

    return NULL;
}


/* The location runs the gate (not the endpoints' location). */
static ngx_uint_t
ngx_http_jpki_gated(ngx_http_jpki_loc_conf_t *jlcf)
{
    return jlcf->enable && !jlcf->endpoints && jlcf->policy != NULL;
}


/* Checks the request's session; a refusal is answered here (NGX_DONE).
 * NGX_OK: it passes, with the account header set; NGX_AGAIN: the check
 * waits on I/O and resumes the phases when it ends; NGX_DECLINED: no gate
 * here.  The access handler: the gate of main requests (nginx runs no
 * access handler for subrequests: ngx_http_jpki_preaccess_handler). */
ngx_int_t
ngx_http_jpki_gate(ngx_http_request_t *r)
{
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_http_jpki_ctx_t       *ctx;
    ngx_int_t                  rc;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);

    if (ctx != NULL) {
        if (ctx->op != JPKI_OP_CHECK || !ctx->done) {
            return ctx->op == JPKI_OP_CHECK ? NGX_AGAIN : NGX_DECLINED;
        }
        rc = ctx->rc;
        if (!ctx->pass) {
            /* the response was sent by the verdict (rc: what sending it
             * returned, NGX_OK included) or rc is an error status */
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }
        return NGX_OK;
    }

    if (!ngx_http_jpki_gated(jlcf)) {
        return NGX_DECLINED;
    }

    /* a subrequest gets a header list of its own, without the gate's
     * headers of its parent: the account it passes with is its own */
    if (r != r->main
        && ngx_http_jpki_strip_headers(r, &jlcf->header, 1, NULL, 0)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_jpki_new_ctx(r, JPKI_OP_CHECK);
    if (ctx == NULL || ngx_http_jpki_start(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_jpki_drive(ctx);

    if (ctx->waiting) {
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_AGAIN;
    }

    if (!ctx->pass) {
        ngx_http_finalize_request(r, ctx->rc);
        return NGX_DONE;
    }

    return NGX_OK;
}


/* The preaccess phase runs for every request, subrequests included, and
 * before any access module could grant access first (satisfy any): client
 * copies of the gate's headers are removed here, so that they never reach
 * an upstream.  A subrequest (SSI include, auth_request...) into a gated
 * location is gated here: the access phase is skipped for it
 * (ngx_http_core_access_phase), and it would otherwise pass unchecked. */
ngx_int_t
ngx_http_jpki_preaccess_handler(ngx_http_request_t *r)
{
    ngx_http_jpki_loc_conf_t  *jlcf;
    ngx_http_jpki_ctx_t       *pctx;
    ngx_str_t                 *keep;
    ngx_int_t                  rc;

    if (r != r->main) {
        rc = ngx_http_jpki_gate(r);

        if (rc != NGX_DECLINED) {
            /* passed: the other preaccess handlers still run (NGX_OK
             * would skip them) */
            return rc == NGX_OK ? NGX_DECLINED : rc;
        }
    }

    /* a subrequest outside the gate keeps the account header the gate of
     * the nearest request above it that passed one set (the main
     * request's, or a gated subrequest's: an include in an include), not
     * client copies (one made before its main request got here, in the
     * rewrite phase, has them) */
    pctx = r != r->main ? ngx_http_jpki_passed(r->parent) : NULL;
    keep = pctx != NULL ? &pctx->account : NULL;

    jlcf = ngx_http_get_module_loc_conf(r, ngx_http_jpki_module);

    /* after an internal redirect (try_files, error_page) the header the
     * gate set stays in a location without the gate; a gated location's
     * gate sets it again */
    if (ngx_http_jpki_strip_headers(r, &jlcf->header, 0, keep,
                                    !ngx_http_jpki_gated(jlcf))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}

