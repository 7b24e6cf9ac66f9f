/* txn_internal.h - the transaction's state, shared by the files of the
 * transaction (txn.c, txn_login.c, txn_rev.c, txn_session.c).  Not for
 * adapters. */
#ifndef JPKI_TXN_INTERNAL_H
#define JPKI_TXN_INTERNAL_H

#include "internal.h"
#include "form.h"
#include "crlptr.h"
#include "acct.h"
#include "audit.h"

enum {
    T_INIT = 0, T_LOGIN_READ, T_LOGIN_COMMIT, T_FAIL_PUT, T_OCSP, T_CRL,
    T_REV_PUT, T_SOFT_PUT, T_CHECK_STORE, T_LOGOUT_STORE, T_LOGOUT_LOG,
    T_CRL_META, T_CRL_HGET, T_HEALTH_STORE, T_FLOW_GUARD, T_FLOW_START,
    T_FLOW_SIGNED,
    T_FLOW_NOTE, T_FLOW_READ, T_FLOW_TAKE, T_ADMIN, T_DONE
};

/* Throttle subjects: failed logins per address and per certificate,
 * logins per certificate. */
enum { THR_FA = 0, THR_FC, THR_LC, THR_N };

enum { F_CHALLENGE, F_CERT, F_SIG, F_ALG, F_ACCOUNT, F_RETURN, F_N };

#define MAX_CMDS JPKI_STORE_BATCH_MAX
#define SIG_MAX 2048          /* bytes of a decoded signature */
/* A logout marker outlives every session it may end (30 days at most). */
#define OUT_TTL_S (30u * 86400u)
#define SOFT_TTL_MS (30u * 86400u * 1000u)
#define SOFT_BUCKET_S 86400
#define LAST_TTL_S (40u * 86400u)    /* a binding's last login is kept */

struct jpki_txn {
    const jpki_ctx *ctx;
    const jpki_policy *pol;                /* request's, or the site's */
    jpki_txn_request req;
    int state;
    /* login input */
    char *scratch;
    jpki_form_field f[F_N];
    int form;                              /* body was a form */
    int tls;                               /* TLS_LOGIN: the client
                                              certificate, no challenge */
    uint8_t *tls_der;                      /* ... read from req.tls */
    char *health;                          /* HEALTH: the answer */
    struct txn_hm *hm;                     /* HEALTH, METRICS: the store's
                                              CRLs read (txn_health.c) */
    uint64_t io_t0;                        /* the I/O handed out (us), 0:
                                              not timed (txn_metrics.c) */
    int metered;                           /* its verdict counted */
    char return_to[1025];
    char ch_id[JPKI_CHALLENGE_ID_HEX + 1];
    time_t ch_exp;
    /* certificate and session */
    jpki_cert *cert;
    jpki_session s;
    int have_session;
    int rechecked;
    int outage_pass;        /* the store's markers are read, but its
                               failure passes (store_outage sessions) */
    char account_id[JPKI_ACCOUNT_ID_HEX_LEN + 1];
    /* login: the throttle, and what the first batch read */
    char peer_id[17];
    int ix_thr[THR_N][2];                  /* cur, prev: index in cmds */
    int ix_map, ix_rev, ix_out;
    jpki_store_result got_map, got_rev;
    int64_t out_at;                        /* logout marker of the cert */
    int64_t local_out;                     /* the same in the node's table */
    jpki_err fail_err;
    int fail_ix[2][2];                     /* FA/FC: INCR, GET prev */
    jpki_store_cmd rev_put;                /* a good OCSP answer to cache */
    int rev_put_pending;
    /* revocation */
    unsigned next_source;                  /* in pol->rev_policy */
    jpki_ocsp_state ocsp_st;
    uint8_t *ocsp_req;
    size_t ocsp_req_len;
    const char *rev_source;
    jpki_rev_status rev_status;
    jpki_crl_info crl_meta;                /* CRL read from the store */
    int crl_ptr_cached;                    /* its pointer came from the cache */
    char crl_list[JPKI_CRL_LIST_MAX];      /* the list of the issuing key */
    /* store: the commands are below, n_cmds of them written */
    size_t n_cmds;
    /* the login page and the device flow (txn_page.c, txn_device.c) */
    char *big;                             /* a page, a flow's answer */
    int device;                            /* DEVICE_SIGN: a login into a
                                              flow, no session */
    int key_proved;                        /* the login's key signed */
    int enroll_pending;                    /* no account: refused once its
                                              revocation is checked */
    int flow_pending;                      /* the flow was waiting */
    int ix_flow;
    uint8_t flow_bind[16];                 /* H(the browser's secret) */
    char flow_id[JPKI_CHALLENGE_ID_HEX + 1];
    char flow_ch[JPKI_CHALLENGE_LEN + 1];  /* the flow's challenge */
    char flow_secret[33];                  /* START: the new secret, hex */
    char flow_enroll[123];                 /* POLL: the signer's enrollment
                                              token (JPKI_ENROLL_LEN) */
    jpki_header hdrs[4];                   /* an asset's headers */
    /* a logout marker being written (txn_marker_put) */
    char mk_rec;
    char mk_id[JPKI_ACCOUNT_ID_HEX_LEN + 1];
    /* the admin API (txn_admin.c) */
    int adm_route, adm_step;
    char adm_account[JPKI_ACCOUNT_MAX + 1];
    char adm_cert[JPKI_CERT_ID_HEX_LEN + 1];
    jpki_acct_list adm_acct;               /* an account's certificates */
    size_t adm_at;
    char *adm_out;
    size_t adm_len, adm_cap;
    /* the audit line: the request's id, when the revocation answer was
     * produced (0: unknown) */
    char rid[JPKI_AUDIT_RID_MAX + 1];
    int64_t rev_produced;
    /* verdict */
    jpki_verdict v;
    /* buffers: not zeroed at creation, written before use (a command
     * is written whole by whoever adds it: txn_cmd_add, or a memset) */
    char body[1024];
    jpki_store_cmd cmds[MAX_CMDS];
    char cookie[JPKI_SESSION_MAX + 320];
    char cookie2[448];                     /* the flow's cookie */
    char location[1400];
    char audit[1024];
};

/* The stages one file of the transaction calls in another (hidden: not
 * exported from a module that links libjpki). */
#pragma GCC visibility push(hidden)

/* "good", "revoked", "hold", "unknown": a cached answer's value */
extern const char *const txn_rev_names[4];

/* txn.c */
const char *txn_event_name(jpki_op op);
int txn_status_of(jpki_err e);
/* The audit line's fields common to every line (ts, request id, peer,
 * location, revocation): the caller sets the rest. */
void txn_audit_fields(jpki_txn *t, jpki_audit_fields *f);
const char *txn_rid(jpki_txn *t);
void txn_cookie_header(jpki_txn *t, const char *value, long max_age);
void txn_finish(jpki_txn *t, jpki_err e);
void txn_unauthenticated(jpki_txn *t, jpki_err e);
/* s (at most 1024 bytes) percent-encoded into buf from offset o (all but
 * letters, digits and / - _ . ~), NUL-terminated; the new offset. */
size_t txn_url_encode(char *buf, size_t size, size_t o, const char *s);
jpki_store_cmd *txn_cmd_add(jpki_txn *t, jpki_store_op op, const char *kind,
                           const char *id);
void txn_cmd_val(jpki_store_cmd *c, const char *v, uint32_t ttl_ms);
/* With store replicas=N, WAIT N added to the batch (its last command,
 * after the writes it covers: one connection carries a batch): 1 added,
 * 0 none asked.  txn_waited: whether the batch's last result says the
 * replicas acknowledged (logs why not); 1 without replicas=, 0 when the
 * batch lacks its WAIT. */
int txn_cmd_wait(jpki_txn *t);
int txn_waited(jpki_txn *t, const jpki_store_result *r, const char *what);
int txn_rev_parse(const jpki_store_result *r, jpki_rev_status *st);
void txn_challenge(jpki_txn *t);

/* txn_rev.c */
void txn_rev_passed(jpki_txn *t);
void txn_rev_decide(jpki_txn *t, jpki_rev_status st);
int txn_rev_cached(jpki_txn *t, const jpki_store_result *r);
void txn_rev_start(jpki_txn *t);
void txn_rev_next(jpki_txn *t);
void txn_rev_answer(jpki_txn *t, const jpki_rev_info *info,
                    const char *source);
void txn_crl_meta_fed(jpki_txn *t, const jpki_store_result *r);
void txn_crl_hget_fed(jpki_txn *t, const jpki_store_result *r);

/* txn_login.c */
jpki_err txn_origin_check(const jpki_txn *t);
void txn_fail_put_fed(jpki_txn *t, const jpki_store_result *r);
void txn_refuse(jpki_txn *t, jpki_err e);
long long txn_count_of(const jpki_store_result *r);
void txn_throttled(jpki_txn *t, unsigned retry_after);
void txn_login_begin(jpki_txn *t);
int64_t txn_marker_time(const jpki_store_result *r);
jpki_err txn_store_err(const jpki_store_result *r);
int txn_failed(const jpki_store_result *r);
void txn_login_read(jpki_txn *t, const jpki_store_result *r);
void txn_login_commit(jpki_txn *t);
void txn_login_committed(jpki_txn *t, const jpki_store_result *r);
void txn_set_session_cookie(jpki_txn *t);
void txn_session_issued(jpki_txn *t, int back);
void txn_login_success(jpki_txn *t);

/* txn_page.c */
size_t txn_prefix(const jpki_txn *t, char *out, size_t max);
int txn_local_path(const char *r);
void txn_page(jpki_txn *t);
void txn_asset(jpki_txn *t);
int txn_page_render(jpki_txn *t, const char *error, const char *return_to,
                    const char *flow_url, const char *flow_qr,
                    const char *flow_code, const char *poll_url);
void txn_page_redirect(jpki_txn *t, jpki_err e);

/* txn_device.c */
void txn_device_start(jpki_txn *t);
void txn_device_guarded(jpki_txn *t, const jpki_store_result *r);
void txn_device_started(jpki_txn *t, const jpki_store_result *r);
void txn_device_read_cmd(jpki_txn *t);
jpki_err txn_device_read(jpki_txn *t, const jpki_store_result *r);
void txn_device_signed(jpki_txn *t);
void txn_device_signed_fed(jpki_txn *t, const jpki_store_result *r);
int txn_device_note(jpki_txn *t);
void txn_device_poll(jpki_txn *t);
void txn_device_poll_read(jpki_txn *t, const jpki_store_result *r);
void txn_device_poll_taken(jpki_txn *t, const jpki_store_result *r);
void txn_device_ended(jpki_txn *t);

/* txn_session.c */
void txn_check_success(jpki_txn *t);
void txn_check_begin(jpki_txn *t);
void txn_check_stored(jpki_txn *t, const jpki_store_result *r);
/* The store failed (res NULL: timed out) under a session's read of its
 * markers: 1 when the location's store_outage lets it pass (done). */
int txn_check_outage(jpki_txn *t, const jpki_store_result *res, size_t n);
void txn_logout_begin(jpki_txn *t);
void txn_logout_stored(jpki_txn *t, const jpki_store_result *r);
void txn_logout_logged(jpki_txn *t, const jpki_store_result *r);
void txn_marker_put(jpki_txn *t, const char *kind, const char *id,
                    int64_t mark);

/* txn_admin.c */
void txn_admin(jpki_txn *t);
void txn_admin_fed(jpki_txn *t, const jpki_store_result *r, size_t n);
void txn_admin_marked(jpki_txn *t);
void txn_enroll_offer(jpki_txn *t, jpki_err e);
int txn_enroll_token(jpki_txn *t, char *tok);
void txn_enroll_answer(jpki_txn *t, jpki_err e, const char *tok, int back);
/* txn_health.c: HEALTH and METRICS */
void txn_health(jpki_txn *t);
void txn_health_fed(jpki_txn *t, const jpki_store_result *r, size_t n);

/* txn_metrics.c: what a transaction counts (metrics.h) */
void txn_metrics_finish(jpki_txn *t, jpki_err e);
void txn_metrics_store(jpki_txn *t, const jpki_store_result *r, size_t n);
void txn_metrics_ocsp(jpki_txn *t, int outcome);
#pragma GCC visibility pop

#endif
