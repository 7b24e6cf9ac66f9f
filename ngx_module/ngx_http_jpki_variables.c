/*
 * ngx_http_jpki_variables.c - $jpki_account, $jpki_cert_id,
 * $jpki_auth_time, $jpki_status and $jpki_set_cookie.
 */

#include "ngx_http_jpki.h"


/* The verdict's value (data: the name's index); the strings live as long
 * as the transaction, freed with the request's pool. */
static ngx_int_t
ngx_http_jpki_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_jpki_ctx_t  *ctx;
    const jpki_verdict   *vd;
    const char           *s;
    u_char               *p;

    /* the request's own check (a gated subrequest's, whatever its
     * verdict), else the one whose account it carries: the nearest
     * request above it whose gate let it through */
    ctx = ngx_http_get_module_ctx(r, ngx_http_jpki_module);
    if (ctx == NULL) {
        ctx = ngx_http_jpki_passed(r->parent);
    }

    vd = ctx == NULL || !ctx->done ? NULL
         : ctx->refused != NULL ? ctx->refused : jpki_txn_verdict(ctx->txn);
    s = NULL;
    v->len = 0;

    switch (vd != NULL ? data : (uintptr_t) -1) {
    case 0:
        s = vd->account;
        break;
    case 1:
        s = vd->cert_id;
        break;
    case 2:
        if (vd->auth_time != 0) {
            p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }
            v->len = ngx_sprintf(p, "%T", (time_t) vd->auth_time) - p;
            s = (const char *) p;
        }
        break;
    case 3:
        s = vd->reason;
        break;
    case 4:
        s = vd->set_cookie;
        break;
    }

    if (s != NULL && v->len == 0) {
        v->len = ngx_strlen(s);
    }

    v->data = (u_char *) s;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = v->len == 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_jpki_add_variables(ngx_conf_t *cf)
{
    static ngx_str_t    names[] = {
        ngx_string("jpki_account"), ngx_string("jpki_cert_id"),
        ngx_string("jpki_auth_time"), ngx_string("jpki_status"),
        ngx_string("jpki_set_cookie")
    };
    ngx_http_variable_t  *var;
    ngx_uint_t            i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        var = ngx_http_add_variable(cf, &names[i], NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }
        var->get_handler = ngx_http_jpki_variable;
        var->data = i;
    }

    return NGX_OK;
}

