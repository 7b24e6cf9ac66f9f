/* txn_page.c - the gate's login page (GET <prefix>/login) and its assets,
 * and a browser's failed form login sent back to the page with the reason
 * (docs/protocol.md section 7).  The page's words, template and headers
 * are common/page.c's. */
#include "txn_internal.h"
#include "page.h"
#include "page_assets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MAX (1024 * 1024)        /* a rendered page at most */

/* The endpoints' prefix of the request's path: up to and with its last
 * '/' ("/jpki/" of "/jpki/login?x"); "/" when the path has bytes a header
 * or a URL of the answer may not carry.  Its length. */
size_t txn_prefix(const jpki_txn *t, char *out, size_t max)
{
    const char *u = t->req.uri != NULL ? t->req.uri : "/";
    size_t end = strcspn(u, "?#"), i, last = 0;

    for (i = 0; i < end; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || strchr("/-._~%", c)))
            break;
        if (c == '/')
            last = i + 1;
    }
    if (i < end || u[0] != '/' || last == 0 || last >= max) {
        snprintf(out, max, "/");
        return 1;
    }
    memcpy(out, u, last);
    out[last] = '\0';
    return last;
}

/* Only local paths: "/x", never "//host" or "/\host", printable ASCII. */
int txn_local_path(const char *r)
{
    size_t i;

    if (r == NULL || r[0] != '/' || r[1] == '/' || r[1] == '\\')
        return 0;
    for (i = 0; r[i]; i++)
        if ((unsigned char)r[i] <= 0x20 || (unsigned char)r[i] >= 0x7f
            || r[i] == '\\')
            return 0;
    return i <= 1024;
}

/* The page's query: return_to and error (a reason word); what is not
 * well formed is left out. */
static void page_query(const jpki_txn *t, char *return_to, size_t rmax,
                       char *error, size_t emax)
{
    jpki_form_field f[2] = {{"return_to", 1024, NULL, 0, 0, 0},
                            {"error", 48, NULL, 0, 0, 0}};
    char *scratch;
    size_t i;

    snprintf(return_to, rmax, "/");
    error[0] = '\0';
    if (t->req.query == NULL || t->req.query_len == 0
        || t->req.query_len > 4096
        || (scratch = malloc(2 * t->req.query_len + 2)) == NULL)
        return;
    if (jpki_form_parse_urlencoded((const uint8_t *)t->req.query,
                                   t->req.query_len, scratch, f, 2)
        == JPKI_OK) {
        if (txn_local_path(f[0].value))
            snprintf(return_to, rmax, "%s", f[0].value);
        for (i = 0; f[1].value != NULL && i < f[1].len; i++)
            if (!((f[1].value[i] >= 'a' && f[1].value[i] <= 'z')
                  || f[1].value[i] == '_'))
                break;
        if (f[1].value != NULL && i == f[1].len && i > 0)
            snprintf(error, emax, "%s", f[1].value);
    }
    free(scratch);
}

/* The page into t->big, as the verdict (200 text/html). */
int txn_page_render(jpki_txn *t, const char *error, const char *return_to,
                    const char *flow_qr, const char *flow_link,
                    const char *flow_code, const char *poll_url)
{
    const jpki_page_tmpl *tmpl = t->pol->page_tmpl != NULL
                                 ? t->pol->page_tmpl
                                 : jpki_page_tmpl_default();
    char prefix[300], tls_url[320], device_url[320];
    jpki_page_vars v;
    size_t max, n = 0;

    txn_prefix(t, prefix, sizeof(prefix));
    snprintf(tls_url, sizeof(tls_url), "%stls", prefix);
    snprintf(device_url, sizeof(device_url), "%sdevice", prefix);
    memset(&v, 0, sizeof(v));
    v.lang = jpki_page_lang(t->req.accept_language,
                            t->req.accept_language_len);
    v.methods = t->pol->login_methods;
    v.error = error != NULL && error[0] ? error : NULL;
    v.return_to = return_to;
    v.tls_url = tls_url;
    v.device_url = device_url;
    v.assets = prefix;
    v.flow_qr = flow_qr;
    v.flow_link = flow_link;
    v.flow_code = flow_code;
    v.poll_url = poll_url;
    for (max = 32 * 1024; max <= PAGE_MAX && n == 0; max *= 2) {
        free(t->big);
        t->big = malloc(max);
        if (t->big == NULL)
            return -1;
        n = jpki_page_render(tmpl, &v, t->big, max);
    }
    if (n == 0)
        return -1;
    t->v.err = JPKI_OK;
    t->v.reason = "ok";
    t->v.http_status = 200;
    t->v.body = t->big;
    t->v.body_len = n;
    t->v.content_type = "text/html; charset=utf-8";
    t->v.headers = jpki_page_headers;
    t->state = T_DONE;
    return 0;
}

void txn_page(jpki_txn *t)
{
    char return_to[1025], error[49];

    if (t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    page_query(t, return_to, sizeof(return_to), error, sizeof(error));
    if (txn_page_render(t, error, return_to, NULL, NULL, NULL, NULL) != 0)
        txn_finish(t, JPKI_ERR_NOMEM);
}

/* The assets: they change only with the gate, and their ETag says
 * which. */

void txn_asset(jpki_txn *t)
{
    const char *u = t->req.uri != NULL ? t->req.uri : "";
    size_t end = strcspn(u, "?#"), start = end, len = 0;
    const char *body, *type = NULL;

    if (t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    while (start > 0 && u[start - 1] != '/')
        start--;
    body = jpki_page_asset(u + start, end - start, &len, &type);
    if (body == NULL) {
        txn_finish(t, JPKI_ERR_NOT_FOUND);
        return;
    }
    t->v.err = JPKI_OK;
    t->v.reason = "ok";
    t->v.http_status = 200;
    t->v.body = body;
    t->v.body_len = len;
    t->v.content_type = type;
    t->hdrs[0].name = "Cache-Control";
    t->hdrs[0].value = "public, max-age=3600";
    t->hdrs[1].name = "X-Content-Type-Options";
    t->hdrs[1].value = "nosniff";
    t->hdrs[2].name = "ETag";
    t->hdrs[2].value = jpki_page_asset_etag(u + start, end - start);
    t->hdrs[3].name = NULL;
    t->v.headers = t->hdrs;
    t->state = T_DONE;
}

/* A browser's form login refused: back to the login page (the location's
 * jpki_login_page, or the gate's own) with the reason, so that the person
 * reads what happened rather than JSON.  A login another site's page
 * posted (cross_origin) is answered as it is: it is nobody's mistake. */
void txn_page_redirect(jpki_txn *t, jpki_err e)
{
    const char *lp = t->pol->login_page, *r = t->return_to;
    char prefix[300];
    size_t o;

    if (e == JPKI_OK || e == JPKI_ERR_CROSS_ORIGIN || t->req.wants_json
        || t->device || t->v.location != NULL
        || !((t->req.op == JPKI_OP_LOGIN && t->form)
             || t->req.op == JPKI_OP_DEVICE_START
             || t->req.op == JPKI_OP_DEVICE_POLL))
        return;
    if (lp[0] == '\0') {
        txn_prefix(t, prefix, sizeof(prefix));
        o = (size_t)snprintf(t->location, sizeof(t->location),
                             "%slogin?error=%s", prefix, jpki_reason(e));
    } else {
        o = (size_t)snprintf(t->location, sizeof(t->location),
                             "%s%cerror=%s", lp, strchr(lp, '?') ? '&' : '?',
                             jpki_reason(e));
    }
    if (o >= sizeof(t->location) - 16)
        return;
    if (!txn_local_path(r))
        r = "/";
    o += (size_t)snprintf(t->location + o, sizeof(t->location) - o,
                          "&return_to=");
    txn_url_encode(t->location, sizeof(t->location), o, r);
    t->v.location = t->location;
    t->v.http_status = 303;
}
