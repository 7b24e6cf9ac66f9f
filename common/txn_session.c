/* txn_session.c - CHECK and STATUS (a session cookie opened, logout
 * markers read, the periodic re-check) and LOGOUT (the markers written,
 * the logout log). */
#include "txn_internal.h"
#include "crlptr.h"
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- CHECK / STATUS ----------------------------------------------- */

void txn_check_success(jpki_txn *t)
{
    const jpki_policy *p = t->pol;
    int reseal = 0;

    if (t->rechecked && t->rev_status == JPKI_REV_GOOD && !t->v.soft_pass) {
        t->s.rev_checked = t->req.now;
        t->s.flags &= (uint8_t)~JPKI_SESSION_F_SOFT_PASS;
        reseal = 1;
    }
    /* slide the idle deadline, at most once a minute */
    if (p->session_idle && t->s.idle_deadline - (int64_t)p->session_idle
                           + 60 <= t->req.now) {
        t->s.idle_deadline = t->req.now + p->session_idle;
        reseal = 1;
    }
    if (reseal) {
        txn_set_session_cookie(t);
        if (t->state == T_DONE)
            return;
    }
    t->v.account = t->s.account;
    t->v.cert_id = t->s.cert_id;
    t->v.auth_time = t->s.auth_time;
    if (t->req.op == JPKI_OP_STATUS)
        snprintf(t->body, sizeof(t->body), "{\"authenticated\":true,"
                 "\"account\":\"%s\",\"cert_id\":\"%s\",\"auth_time\":%lld,"
                 "\"expires\":%lld,\"idle_deadline\":%lld}", t->s.account,
                 t->s.cert_id, (long long)t->s.auth_time,
                 (long long)t->s.expires, (long long)t->s.idle_deadline);
    else
        t->body[0] = '\0';
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    txn_finish(t, JPKI_OK);
}

static jpki_err open_cookie(jpki_txn *t)
{
    jpki_err e;
    if (t->req.cookie == NULL || t->req.cookie_len == 0)
        return JPKI_ERR_UNAUTHENTICATED;
    e = jpki_session_open(t->ctx, t->req.cookie, t->req.cookie_len,
                          (time_t)t->req.now, &t->s);
    if (e == JPKI_ERR_SESSION_EXPIRED || e == JPKI_ERR_SESSION_IDLE)
        t->have_session = 1;                 /* clear the cookie */
    else if (e == JPKI_OK)
        t->have_session = 1;
    return e;
}

/* The logout markers of a session: its certificate's and its account's.
 * kind: "out" then "outa". */
static void marker_cmds(jpki_txn *t)
{
    txn_cmd_add(t, JPKI_STORE_GET, "out", t->s.cert_id);
    txn_cmd_add(t, JPKI_STORE_GET, "outa", t->account_id);
}

static int logged_out(const jpki_txn *t, const jpki_store_result *r)
{
    int i;

    for (i = 0; i < 2; i++)
        if (txn_marker_time(&r[i]) >= t->s.auth_time)
            return 1;
    return 0;
}

/* Logouts reach gated requests through the node's own table, read at
 * every request without waiting: 1 when the session was logged out. */
static int local_logged_out(jpki_txn *t)
{
    jpki_store_result r[2];

    if (t->req.local == NULL)
        return 0;
    t->n_cmds = 0;
    marker_cmds(t);
    jpki_shm_read_batch(t->req.local, t->cmds, 2, t->req.now * 1000, r);
    t->n_cmds = 0;
    t->local_out = txn_marker_time(&r[0]);
    return logged_out(t, r);
}

/* Whether a session must be checked in the store now because its own
 * re-check is due: the interval passed, or it passed under fail_open. */
static int recheck_own_due(const jpki_txn *t)
{
    return t->req.now - t->s.rev_checked >= (int64_t)t->pol->recheck_interval
           || (t->s.flags & JPKI_SESSION_F_SOFT_PASS);
}

/* Whether the node's mirror cannot vouch for a session's logouts: it
 * holds the logouts of other nodes since local_since, each for
 * JPKI_OUTLOG_TTL, and a session checked before either reads the markers
 * in the store. */
static int mirror_due(const jpki_txn *t)
{
    int64_t since = t->s.rev_checked;

    return t->req.shared_store && t->req.local != NULL
           && (since < t->req.local_since
               || t->req.now - since >= JPKI_OUTLOG_TTL);
}

/* store_outage sessions: a session whose own re-check is not due, sent to
 * the store only for its logout markers (the mirror cannot vouch: the
 * store does not answer, or its log was not read lately), passes when the
 * store fails.  A logout made on another node meanwhile is not seen until
 * the store answers again or the re-check falls due: the interval bounds
 * it.  Logins, logouts and due re-checks still need the store. */
static int outage_may_pass(const jpki_txn *t)
{
    return t->pol->store_outage == JPKI_OUTAGE_SESSIONS
           && t->req.op == JPKI_OP_CHECK && !recheck_own_due(t);
}

int txn_check_outage(jpki_txn *t, const jpki_store_result *res, size_t n)
{
    size_t i;
    int failed = res == NULL || n != t->n_cmds;

    for (i = 0; !failed && i < n; i++)
        failed = txn_failed(&res[i]);
    if (!t->outage_pass || !failed)
        return 0;
    t->rechecked = 0;                   /* its rev_checked stays */
    t->v.store_outage = 1;
    txn_check_success(t);
    return 1;
}

void txn_check_begin(jpki_txn *t)
{
    jpki_err e = open_cookie(t);

    if (e != JPKI_OK) {
        txn_unauthenticated(t, e);
        return;
    }
    /* the cookie carries the lifetime of the location that signed in; a
     * location may ask for less (an admin area): there an older session
     * signs in again, and the cookie stays for the other locations */
    if (t->req.now - t->s.auth_time >= (int64_t)t->pol->session_lifetime) {
        t->have_session = 0;
        txn_unauthenticated(t, JPKI_ERR_SESSION_EXPIRED);
        return;
    }
    if (jpki_account_id(t->ctx, t->s.account, strlen(t->s.account),
                        t->account_id) != JPKI_OK) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (local_logged_out(t)) {
        txn_unauthenticated(t, JPKI_ERR_SESSION_LOGGED_OUT);
        return;
    }
    if (!recheck_own_due(t) && !mirror_due(t)) {
        txn_check_success(t);
        return;
    }
    t->outage_pass = outage_may_pass(t);
    if (t->outage_pass && t->req.store_failing) {
        /* the store is known not to answer (the logout log's poller
         * failed): no wait for it */
        t->v.store_outage = 1;
        txn_check_success(t);
        return;
    }
    t->rechecked = 1;
    t->n_cmds = 0;
    txn_cmd_add(t, JPKI_STORE_GET, "rev", t->s.cert_id);
    marker_cmds(t);
    if (t->req.map_source == JPKI_MAP_STORE)
        txn_cmd_add(t, JPKI_STORE_GET, "map", t->s.cert_id);
    t->state = T_CHECK_STORE;
}

void txn_check_stored(jpki_txn *t, const jpki_store_result *r)
{
    char acct[JPKI_ACCOUNT_MAX + 1];
    size_t i, n;
    jpki_err e;

    for (i = 0; i < t->n_cmds; i++)
        if (txn_failed(&r[i])) {
            txn_finish(t, txn_store_err(&r[i]));
            return;
        }
    if (logged_out(t, &r[1])) {
        txn_unauthenticated(t, JPKI_ERR_SESSION_LOGGED_OUT);
        return;
    }
    /* the mapping may have been removed or changed since login */
    if (t->req.map_source == JPKI_MAP_STORE) {
        n = r[3].type == JPKI_STORE_R_VALUE ? r[3].vallen : 0;
        if (n > JPKI_ACCOUNT_MAX)
            n = 0;
        memcpy(acct, r[3].val, n);
    } else {
        n = t->req.map_fn ? t->req.map_fn(t->req.map_ud, t->s.cert_id, acct)
            : 0;
    }
    if (n == 0 || n != strlen(t->s.account) || memcmp(acct, t->s.account, n)) {
        txn_finish(t, JPKI_ERR_NOT_MAPPED);
        return;
    }
    if (txn_rev_cached(t, &r[0]))
        return;
    e = jpki_cert_from_ref(t->ctx, t->s.rev_ref, t->s.rev_ref_len, &t->cert);
    if (e != JPKI_OK) {
        txn_finish(t, e);
        return;
    }
    txn_rev_start(t);
}

/* ---- LOGOUT ------------------------------------------------------- */

static void logout_done(jpki_txn *t);

/* The marker written: a logout's answer, or the admin API's. */
static void marker_done(jpki_txn *t)
{
    if (t->req.op == JPKI_OP_ADMIN)
        txn_admin_marked(t);
    else
        logout_done(t);
}

void txn_logout_begin(jpki_txn *t)
{
    int64_t mark;

    if (!t->req.is_post) {
        txn_finish(t, JPKI_ERR_METHOD);
        return;
    }
    if (txn_origin_check(t) != JPKI_OK) {
        txn_finish(t, JPKI_ERR_CROSS_ORIGIN);
        return;
    }
    if (open_cookie(t) != JPKI_OK) {
        t->have_session = 0;
        snprintf(t->body, sizeof(t->body), "{\"status\":\"logged_out\"}");
        t->v.body = t->body;
        t->v.body_len = strlen(t->body);
        txn_cookie_header(t, "", 0);
        txn_finish(t, JPKI_OK);
        return;
    }
    /* a session already logged out (a copied cookie posting logouts over
     * and over): nothing written */
    if (jpki_account_id(t->ctx, t->s.account, strlen(t->s.account),
                        t->account_id) != JPKI_OK) {
        txn_finish(t, JPKI_ERR_INTERNAL);
        return;
    }
    if (local_logged_out(t)) {
        logout_done(t);
        return;
    }
    /* every session of this certificate signed in until now ends: one
     * marker per certificate, however many sessions it had; its time is
     * the session's own when that is later (a login in the second of an
     * earlier logout starts a second later), and never below the marker
     * there is (the node's table knows it) */
    mark = t->s.auth_time > t->req.now ? t->s.auth_time : t->req.now;
    if (t->local_out > mark)
        mark = t->local_out;
    txn_marker_put(t, "out", t->s.cert_id, mark);
}

/* The logout marker kind:id ("out": a certificate's, "outa": an
 * account's) at mark: in the store, and with Redis in this node's mirror
 * at once and, through the logout log, in the others' within a second
 * (outsync.c). */
void txn_marker_put(jpki_txn *t, const char *kind, const char *id,
                    int64_t mark)
{
    jpki_store_cmd *c, mirrored;
    jpki_store_result lr;
    char at[24];

    t->mk_rec = strcmp(kind, "outa") == 0 ? 'a' : 'c';
    snprintf(t->mk_id, sizeof(t->mk_id), "%s", id);
    snprintf(at, sizeof(at), "%lld", (long long)mark);
    t->n_cmds = 0;
    c = txn_cmd_add(t, JPKI_STORE_SET, kind, id);
    txn_cmd_val(c, at, (OUT_TTL_S + t->ctx->policy.clock_skew) * 1000u);
    if (t->req.shared_store) {
        /* this node knows at once (its mirror), the others through the
         * logout log within a second (outsync.c) */
        if (t->req.local != NULL) {
            mirrored = *c;
            mirrored.ttl_ms = JPKI_OUTLOG_TTL * 1000u;
            jpki_shm_exec(t->req.local, &mirrored, t->req.now * 1000, &lr);
            if (lr.type != JPKI_STORE_R_INT)
                jpki_log(t->ctx, JPKI_LOG_ERROR, "jpki: the logout mirror "
                         "is full (give it more room)");
        }
        t->n_cmds++;
        memset(&t->cmds[1], 0, sizeof(t->cmds[1]));
        t->cmds[1].op = JPKI_STORE_INCR;
        t->cmds[1].keylen = (size_t)snprintf(t->cmds[1].key,
                                             sizeof(t->cmds[1].key),
                                             "%soutseq", JPKI_STORE_PREFIX);
        txn_cmd_wait(t);                 /* the marker kept */
    }
    t->state = T_LOGOUT_STORE;
}

void txn_logout_stored(jpki_txn *t, const jpki_store_result *r)
{
    char rec[JPKI_STORE_VAL_MAX];
    char id[24];

    if (txn_failed(&r[0])) {
        txn_finish(t, txn_store_err(&r[0]));
        return;
    }
    if (!t->req.shared_store) {
        marker_done(t);
        return;
    }
    if (r[1].type != JPKI_STORE_R_INT) {
        txn_finish(t, txn_store_err(&r[1]));
        return;
    }
    if (!txn_waited(t, r, "the logout marker")) {
        txn_finish(t, JPKI_ERR_STORE);
        return;
    }
    snprintf(id, sizeof(id), "%lld", r[1].n);
    snprintf(rec, sizeof(rec), "%c|%s|%.*s|%u", t->mk_rec, t->mk_id,
             (int)t->cmds[0].vallen, (const char *)t->cmds[0].val,
             (unsigned)JPKI_OUTLOG_TTL);
    t->n_cmds = 0;
    txn_cmd_val(txn_cmd_add(t, JPKI_STORE_SET, "outlog", id), rec,
            JPKI_OUTLOG_TTL * 1000u);
    t->state = T_LOGOUT_LOG;
}

void txn_logout_logged(jpki_txn *t, const jpki_store_result *r)
{
    if (txn_failed(&r[0])) {
        txn_finish(t, txn_store_err(&r[0]));
        return;
    }
    marker_done(t);
}

static void logout_done(jpki_txn *t)
{
    snprintf(t->body, sizeof(t->body), "{\"status\":\"logged_out\"}");
    t->v.body = t->body;
    t->v.body_len = strlen(t->body);
    t->v.account = t->s.account;
    txn_finish(t, JPKI_OK);
    txn_cookie_header(t, "", 0);
    if (!t->req.wants_json) {
        snprintf(t->location, sizeof(t->location), "%s",
                 t->pol->login_page[0] ? t->pol->login_page
                 : "/");
        t->v.location = t->location;
        t->v.http_status = 303;
    }
}
