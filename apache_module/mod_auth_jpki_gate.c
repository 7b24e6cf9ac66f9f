/*
 * mod_auth_jpki_gate.c - the gate in Apache's hooks: the client's copies
 * of the gate's headers taken out, AuthType JPKI (check_user_id), the
 * identity set for the upstream (fixups), Require jpki-account, and the
 * JSON answer for refusals Apache makes itself.
 */

#include "mod_auth_jpki.h"
#include "edge.h"

#include "mod_auth.h"
#include "ap_provider.h"
#include "util_filter.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

APLOG_USE_MODULE(auth_jpki);

#define JPKI_DENIED_NOTE    "jpki-account-denied"
#define JPKI_JSON_NOTE      "jpki-json-error"

typedef struct {
    int                        identity_set;
} mjpki_req;


/* Removes every copy of the gate's headers from the request (quiet: the
 * headers were checked before, those left are the gate's). */
static void
mjpki_strip_headers(request_rec *r, const char *name, int quiet)
{
    const apr_array_header_t  *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t   *e = (const apr_table_entry_t *) arr->elts;
    apr_array_header_t        *gone = NULL;
    jpki_edge_strip            what;
    int                        i;

    for (i = 0; i < arr->nelts; i++) {
        what = e[i].key == NULL ? JPKI_EDGE_KEEP
               : jpki_edge_strip_header(e[i].key, strlen(e[i].key), name,
                                        name ? strlen(name) : 0, 0, 0, quiet);
        if (what == JPKI_EDGE_KEEP) {
            continue;
        }
        if (what == JPKI_EDGE_WARN) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "jpki: client "
                          "sent gate header \"%s\": removed", e[i].key);
        }
        if (gone == NULL) {
            gone = apr_array_make(r->pool, 4, sizeof(const char *));
        }
        APR_ARRAY_PUSH(gone, const char *) = e[i].key;
    }

    for (i = 0; gone != NULL && i < gone->nelts; i++) {
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(gone, i, const char *));
    }
}


/* Before anything else looks at the request (mod_rewrite, mod_setenvif):
 * X-JPKI-* headers never come from a client. */
int
mjpki_post_read_request(request_rec *r)
{
    mjpki_strip_headers(r, NULL, 0);

    return DECLINED;
}


/* Once the location is known: its account header too (an internal
 * redirect starts over from the previous request's headers). */
int
mjpki_header_parser(request_rec *r)
{
    if (r->main != NULL) {
        return DECLINED;
    }

    mjpki_strip_headers(r, jpki_locconf_header(&mjpki_dir_of(r)->lc), r->prev != NULL);

    return DECLINED;
}


/* The identity of a request the gate let through: the account header,
 * and in the environment JPKI_ACCOUNT, JPKI_CERT_ID, JPKI_AUTH_TIME (the
 * login's time, seconds since the epoch) and JPKI_STATUS ("ok"): nginx's
 * $jpki_account, $jpki_cert_id, $jpki_auth_time and $jpki_status. */
static void
mjpki_set_identity(request_rec *r, const char *account, const char *cert_id,
                   const char *auth_time, const char *status)
{
    mjpki_req  *rq;

    apr_table_set(r->headers_in, jpki_locconf_header(&mjpki_dir_of(r)->lc), account);
    apr_table_set(r->subprocess_env, "JPKI_ACCOUNT", account);
    if (cert_id != NULL && cert_id[0]) {
        apr_table_set(r->subprocess_env, "JPKI_CERT_ID", cert_id);
    }
    if (auth_time != NULL && auth_time[0]) {
        apr_table_set(r->subprocess_env, "JPKI_AUTH_TIME", auth_time);
    }
    if (status != NULL && status[0]) {
        apr_table_set(r->subprocess_env, "JPKI_STATUS", status);
    }

    rq = ap_get_module_config(r->request_config, &auth_jpki_module);
    if (rq == NULL) {
        rq = apr_pcalloc(r->pool, sizeof(mjpki_req));
        ap_set_module_config(r->request_config, &auth_jpki_module, rq);
    }
    rq->identity_set = 1;
}


/* A check that passed, through the section's allow-lists (the core's
 * decision: jpki_locconf_allows): v as it is, or the refusal (403, the
 * same JSON as nginx's), logged. */
static const jpki_verdict *
mjpki_allowed(request_rec *r, mjpki_site *site, const jpki_txn *t,
              const jpki_verdict *v)
{
    jpki_verdict  *rv;
    jpki_err       e;
    char           msg[400];

    e = jpki_locconf_allows(&mjpki_dir_of(r)->lc, site->ctx, t, msg,
                            sizeof(msg));
    if (e == JPKI_OK) {
        return v;
    }

    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "jpki: %s", msg);

    rv = apr_pcalloc(r->pool, sizeof(jpki_verdict));

    return jpki_edge_refusal(rv, e, apr_palloc(r->pool,
                                               JPKI_EDGE_REFUSAL_MAX));
}


int
mjpki_authenticate(request_rec *r)
{
    mjpki_site           *site;
    const jpki_policy   *pol;
    const jpki_verdict  *v;
    jpki_txn            *t;

    if (!mjpki_is_jpki_auth(r)) {
        return DECLINED;
    }

    if (mjpki_dir_of(r)->endpoints == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "jpki: the "
                      "JPKIEndpoints location %s requires a user: nobody can "
                      "sign in there (add \"Require all granted\")", r->uri);
    }

    site = mjpki_site_of(r);
    pol = mjpki_request_policy(r, site, "AuthType JPKI");
    if (pol == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    v = mjpki_transact_txn(r, site, pol, JPKI_OP_CHECK, NULL, 0, &t);
    if (v == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    if (jpki_edge_passes(JPKI_OP_CHECK, v)) {
        v = mjpki_allowed(r, site, t, v);
    }

    /* the verdict's reason, for logs (%{JPKI_STATUS}e) as $jpki_status */
    apr_table_set(r->subprocess_env, "JPKI_STATUS", v->reason);

    if (jpki_edge_passes(JPKI_OP_CHECK, v)) {
        r->user = apr_pstrdup(r->pool, v->account);
        r->ap_auth_type = JPKI_AUTH_TYPE;
        mjpki_verdict_headers(r, v, 1);
        mjpki_set_identity(r, r->user, v->cert_id,
                           v->auth_time != 0
                           ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                          (apr_int64_t) v->auth_time)
                           : NULL, v->reason);
        mjpki_upstream_cookies(r, pol->cookie_name,
                              jpki_locconf_pass_cookie(&mjpki_dir_of(r)->lc));
        return OK;
    }

    if (r->main != NULL) {
        /* a subrequest answers with its status only */
        return v->http_status >= 400 ? v->http_status : HTTP_UNAUTHORIZED;
    }

    /* our answer (401 JSON, or 302 to the login page for browsers): the
     * refused request's body is discarded by the core afterwards */
    mjpki_send_verdict(r, v);

    return DONE;
}


int
mjpki_note_auth_failure(request_rec *r, const char *auth_type)
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
int
mjpki_fixups_identity(request_rec *r)
{
    mjpki_req     *rq;
    request_rec  *p;

    if (r->user == NULL && ap_auth_type(r) == NULL) {
        for (p = r->prev; p != NULL; p = p->prev) {
            rq = ap_get_module_config(p->request_config, &auth_jpki_module);
            if (rq != NULL && rq->identity_set) {
                const char  *a = apr_table_get(p->subprocess_env,
                                               "JPKI_ACCOUNT");

                if (a != NULL) {
                    mjpki_set_identity(r, a,
                        apr_table_get(p->subprocess_env, "JPKI_CERT_ID"),
                        apr_table_get(p->subprocess_env, "JPKI_AUTH_TIME"),
                        apr_table_get(p->subprocess_env, "JPKI_STATUS"));
                }
                break;
            }
        }
        return DECLINED;
    }

    if (r->user == NULL || !mjpki_is_jpki_auth(r)) {
        return DECLINED;
    }

    rq = ap_get_module_config(r->request_config, &auth_jpki_module);
    if (rq == NULL || !rq->identity_set) {
        mjpki_set_identity(r, r->user,
                          apr_table_get(r->subprocess_env, "JPKI_CERT_ID"),
                          apr_table_get(r->subprocess_env, "JPKI_AUTH_TIME"),
                          apr_table_get(r->subprocess_env, "JPKI_STATUS"));
    }

    return DECLINED;
}


int
mjpki_fixups_handler(request_rec *r)
{
    mjpki_dir_conf  *d = mjpki_dir_of(r);

    if (d->endpoints == 1) {
        r->handler = JPKI_HANDLER;
    } else if (d->health == 1) {
        r->handler = JPKI_HEALTH_HANDLER;
    } else if (d->admin == 1) {
        r->handler = JPKI_ADMIN_HANDLER;
    } else if (d->metrics == 1) {
        r->handler = JPKI_METRICS_HANDLER;
    }

    return DECLINED;
}


/* ------------------------------------------------------------------ */
/* Require jpki-account ID...                                          */
/* ------------------------------------------------------------------ */

static authz_status
mjpki_account_check(request_rec *r, const char *require_args,
                   const void *parsed)
{
    char  msg[400];

    (void) require_args;

    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }

    /* the same decision and sentence as JPKIAllowAccounts and nginx's
     * jpki_allow_accounts (common/allow.h) */
    if (mjpki_is_jpki_auth(r)
        && jpki_allow_check(parsed, NULL, NULL, r->user, NULL, msg,
                            sizeof(msg)) == JPKI_OK)
    {
        return AUTHZ_GRANTED;
    }

    if (mjpki_is_jpki_auth(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, "jpki: %s", msg);
    }
    apr_table_setn(r->notes, JPKI_DENIED_NOTE, "1");
    apr_table_set(r->subprocess_env, "JPKI_STATUS",
                  jpki_reason(JPKI_ERR_ACCOUNT_NOT_ALLOWED));

    return AUTHZ_DENIED;
}


static apr_status_t
mjpki_account_cleanup(void *data)
{
    jpki_allow_free(data);
    return APR_SUCCESS;
}


/* Require jpki-account ID...: the words as Apache splits them (quotes
 * keep blanks), parsed by the core: the grammar and bounds of
 * JPKIAllowAccounts. */
static const char *
mjpki_account_parse(cmd_parms *cmd, const char *require_line,
                   const void **parsed)
{
    apr_array_header_t  *words;
    const char          *t = require_line, *w;
    jpki_allow          *a;
    char                 err[512], msg[600];

    words = apr_array_make(cmd->temp_pool, 8, sizeof(const char *));
    while (words->nelts <= JPKI_ALLOW_ACCOUNTS_MAX
           && (w = ap_getword_conf(cmd->temp_pool, &t)) != NULL && w[0])
    {
        APR_ARRAY_PUSH(words, const char *) = w;
    }

    if (jpki_allow_parse(JPKI_ALLOW_ACCOUNTS, words->nelts,
                         (const char *const *) words->elts, &a, err,
                         sizeof(err))
        != JPKI_OK)
    {
        jpki_conf_message(msg, sizeof(msg), "Require jpki-account", err);
        return apr_pstrdup(cmd->pool, msg);
    }

    apr_pool_cleanup_register(cmd->pool, a, mjpki_account_cleanup,
                              apr_pool_cleanup_null);
    *parsed = a;

    return NULL;
}


const authz_provider  mjpki_authz_account = {
    &mjpki_account_check,
    &mjpki_account_parse
};


/* Error pages Apache makes itself become JSON, like every other answer of
 * the gate: a refusal by Require jpki-account (the status stays the one
 * mod_authz_core chose: 401, or 403 with AuthzSendForbiddenOnFailure On),
 * and in the endpoints' locations the 413 and 400 of the core's request
 * body filter (LimitRequestBody, malformed chunks). */
void
mjpki_insert_error_filter(request_rec *r)
{
    const char  *body = NULL;
    apr_size_t   bl;

    if (apr_table_get(r->notes, JPKI_DENIED_NOTE) != NULL
        && (r->status == HTTP_UNAUTHORIZED || r->status == HTTP_FORBIDDEN))
    {
        body = mjpki_json_error(r, JPKI_ERR_ACCOUNT_NOT_ALLOWED, &bl);

    } else if (r->handler != NULL && strcmp(r->handler, JPKI_HANDLER) == 0) {
        if (r->status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
            body = mjpki_json_error(r, JPKI_ERR_TOO_LARGE, &bl);
        } else if (r->status == HTTP_BAD_REQUEST) {
            body = mjpki_json_error(r, JPKI_ERR_BAD_REQUEST, &bl);
        }
    }

    if (body != NULL) {
        ap_add_output_filter(JPKI_JSON_FILTER, (void *) body, r,
                             r->connection);
    }
}


apr_status_t
mjpki_json_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec  *r = f->r;
    const char   *body = f->ctx;
    apr_bucket   *b, *eos = NULL;

    if (!apr_table_get(r->notes, JPKI_JSON_NOTE)) {
        apr_table_setn(r->notes, JPKI_JSON_NOTE, "1");
        ap_set_content_type(r, "application/json");
        apr_table_unset(r->headers_out, "Content-Length");
        mjpki_verdict_headers(r, NULL, 0);
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

