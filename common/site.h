/*
 * site.h - a site's build, the part that is no server's.  A site is the
 * nginx http block or a server block with its own jpki_secret_file,
 * jpki_issuer and jpki_store, or the Apache main server or a virtual host
 * with its own JPKISecretFile, JPKIIssuer and JPKIStore (their grammar:
 * conf.h, conf_issuer.h; the pieces a site needs: jpki_conf_site_missing).
 * The adapter keeps what its server forces: memory, relative paths, the
 * addresses resolved, TLS contexts, shared memory, where a directive was
 * written.
 */
#ifndef JPKI_SITE_H
#define JPKI_SITE_H

#include "jpki.h"
#include "conf.h"
#include "conf_issuer.h"
#include "siteconf.h"
#include "crlzone.h"
#include "watch.h"
#include "redis.h"
#include "edge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The secret file at path (jpki_secret_file / JPKISecretFile, absolute)
 * read into ctx, or, with ctx NULL, only tried (Apache reads it where the
 * directive is written, and again when the site is built).  err always
 * receives a sentence on an error. */
jpki_err jpki_site_secret(jpki_ctx *ctx, const char *path, char *err,
                          size_t errlen);

/* A site's end: the pieces it needs (jpki_conf_site_missing's sentence,
 * in srv's words), then the context finished (jpki_ctx_finish).  err
 * always receives a sentence on an error. */
jpki_err jpki_site_finish(jpki_server srv, jpki_ctx *ctx, int has_secret,
                          size_t issuers, int has_store, char *err,
                          size_t errlen);

/* What an adapter takes from a site's values (the core's table): its
 * waits and the CRL grace. */
typedef struct {
    uint64_t redis_timeout_ms;          /* jpki_redis_timeout */
    uint64_t redis_connect_timeout_ms;  /* jpki_redis_connect_timeout */
    uint64_t ocsp_timeout_ms;           /* jpki_ocsp_timeout */
    unsigned crl_grace;                 /* jpki_crl_grace: s, 0 auto */
} jpki_site_times;

/* The site values of v into ctx's policy (what v does not set stays the
 * core's default), and the adapter's values into t. */
void jpki_site_values(jpki_ctx *ctx, const jpki_conf_values *v,
                      jpki_site_times *t);

/* The predicate for an issuer the context cannot take: its name is
 * another issuer's, or it would be one too many ("<directive> needs
 * ..."). */
#define JPKI_SITE_ISSUER_NAME                                              \
    "needs a unique name of 1..63 letters, digits, _ . - (at most 16 "     \
    "issuers)"

/* The issuer of spec (paths absolute: jpki_conf_issuer_paths) added to
 * ctx and set up: its CA files, OCSP URL, CRL source, policy.  On an
 * error *is NULL means the name (err: JPKI_SITE_ISSUER_NAME, a predicate
 * for the directive's name); otherwise err is a sentence about the
 * issuer. */
jpki_err jpki_site_issuer(jpki_ctx *ctx, const jpki_conf_issuer *spec,
                          jpki_issuer **is, char *err, size_t errlen);

/* 1 when a site with n issuers already has as many as it can take (the
 * next jpki_issuer / JPKIIssuer is refused where it is written). */
int jpki_site_issuers_full(size_t n);

/* Why a site directive written where no site takes it has no effect (the
 * adapter says "\"<directive>\" here has no effect: <why> in FILE:LINE"
 * and refuses the configuration). */
typedef enum {
    JPKI_SITE_UNUSED_TOP = 0,   /* the nginx http block or Apache main
                                   server has no site, and no block below
                                   takes its values */
    JPKI_SITE_UNUSED_INHERITS,  /* a block that uses the site above it */
    JPKI_SITE_UNUSED_ALONE      /* a block without a site, under a top
                                   without one */
} jpki_site_unused_why;

/* The sentence for why, in srv's words (a constant). */
const char *jpki_site_unused(jpki_server srv, jpki_site_unused_why why);
/* The first site directive written in sc, for a block whose site does
 * not take it: "\"<directive>\" here has no effect: <why> in FILE:LINE"
 * into out; 0 when none is written (nothing to refuse). */
size_t jpki_siteconf_unused(const jpki_siteconf *sc, jpki_server srv,
                            jpki_site_unused_why why, char *out,
                            size_t outlen);


/* ---- a site built from its configuration -------------------------- */

typedef struct jpki_site jpki_site;

/* The site of sc (which outlives it), in srv's words: its context (its
 * sentences to log(log_ud)), the secret read, the site's values in its
 * policy, its issuers set up, the pieces checked and the context
 * finished (the Redis TLS context is the configuration's, loaded where
 * the store is written).  err: a sentence. */
jpki_err jpki_site_build(const jpki_siteconf *sc, jpki_server srv,
                         jpki_log_fn log, void *log_ud, jpki_site **out,
                         char *err, size_t errlen);
void jpki_site_free(jpki_site *s);

jpki_ctx *jpki_site_ctx(const jpki_site *s);
const jpki_siteconf *jpki_site_conf(const jpki_site *s);
const jpki_site_times *jpki_site_times_of(const jpki_site *s);
/* The store: its spec (never NULL once built); shm: 1 for the embedded
 * store, 0 for Redis. */
const jpki_store_spec *jpki_site_store(const jpki_site *s);
int jpki_site_shm(const jpki_site *s);
/* Redis: the TLS context (NULL: no TLS), the AUTH/SELECT prelude. */
SSL_CTX *jpki_site_redis_tls(const jpki_site *s);
const jpki_redis_auth *jpki_site_redis_auth(const jpki_site *s);
/* Its issuers, in the order written: the context's issuer, the spec (the
 * OCSP target, the CRL sources); the index of an issuer (-1: not its). */
size_t jpki_site_issuer_count(const jpki_site *s);
jpki_issuer *jpki_site_issuer_at(const jpki_site *s, size_t i);
const jpki_conf_issuer *jpki_site_issuer_spec(const jpki_site *s, size_t i);
int jpki_site_issuer_index(const jpki_site *s, const jpki_issuer *is);
/* 1 when it has files to watch (a mapping file, CRL files). */
int jpki_site_has_files(const jpki_site *s);

/* ---- a process's files and CRLs ----------------------------------- */

/* In each process that answers (after fork): the CRLs in force z (a
 * zone's handle or the process's own; the site keeps it, the issuers it
 * no longer has released), the CRL files of its issuers and its mapping
 * file watched (log, lock: common/watch.h), both read a first time at now
 * (now < 0: not now).  -1: no memory. */
int jpki_site_watch(jpki_site *s, jpki_crlzone *z, jpki_log_fn log,
                    void *log_ud, const jpki_watch_lock *lock, int64_t now);
/* The CRLs in force now z (a process's new handle on the same zone). */
void jpki_site_set_crls(jpki_site *s, jpki_crlzone *z);
/* The watchers freed (not z). */
void jpki_site_unwatch(jpki_site *s);
jpki_crlzone *jpki_site_crls(const jpki_site *s);
jpki_crlwatch *jpki_site_crlwatch(const jpki_site *s);
jpki_mapwatch *jpki_site_mapwatch(const jpki_site *s);
/* A request's mapping (jpki_txn_request.map_fn, ud the site); NULL when
 * the site has no mapping file. */
jpki_map_fn jpki_site_map_fn(const jpki_site *s);
/* The certificate of t in the CRL of the key that issued it (the core's
 * verdict: fail closed without one). */
jpki_err jpki_site_crl_lookup(const jpki_site *s, jpki_txn *t, int64_t now,
                              jpki_rev_info *info);
/* The site's part of the health answer and the metrics' gauges at now,
 * into h (jpki_health_init'ed here, its buffer malloc'ed: release it with
 * jpki_health_release): every CRL file, and the embedded store's state
 * (shm: the process's, NULL when it has none).  0: no memory. */
int jpki_site_health(const jpki_site *s, int64_t now, jpki_shm *shm,
                     struct jpki_health *h);

/* ---- the audit trail (audit.h) ------------------------------------ */

/* The site's audit file (jpki_audit_log, absolute; NULL: none, its lines
 * go to the error log). */
const char *jpki_site_audit_file(const jpki_site *s);
/* The sites of a server (n of them, a site may come twice): two that write
 * one audit file under different keys (secrets, key files) would make a
 * chain no key verifies: refused with a sentence in srv's words. */
jpki_err jpki_site_audit_clash(const jpki_site *const *sites, size_t n,
                               jpki_server srv, char *err, size_t errlen);
struct jpki_shared;
/* In the parent, once the shared area is set up (a start, a reload, a
 * graceful restart): its chain kept, or its head read from the file's
 * last line (jpki_audit_recover; msg: a sentence to log, or ""). */
jpki_err jpki_site_audit_recover(const jpki_site *s, struct jpki_shared *sh,
                                 const jpki_shm_lock *lock, int64_t now,
                                 char *msg, size_t msglen);
/* In a worker or child: the verdict's audit fields (jpki_verdict.audit)
 * chained and written to fd, the file opened on the site's audit path
 * (jpki_audit_append, under the context's shared lock).  0, or -1 with a
 * sentence: the adapter then logs the fields in the error log. */
int jpki_site_audit_write(const jpki_site *s, const char *audit, int fd,
                          int64_t now, char *err, size_t errlen);

/* ---- a transaction run ------------------------------------------ */

/* A transaction of site s for a request: what rq takes from the site (its
 * mapping file) and from the request's headers (jpki_edge_request with
 * in: whether the store is Redis is the site's); the adapter has written
 * rq's op, now, is_post, body, peer, uri, policy and local table. */
jpki_err jpki_site_txn(const jpki_site *s, jpki_txn_request *rq,
                       jpki_edge_in *in, jpki_txn **t);

/* The adapter's I/O for jpki_site_run.  JPKI_RUN_WAIT: under way; the
 * adapter feeds the result later (jpki_txn_feed_store, _ocsp) and runs
 * the transaction again. */
#define JPKI_RUN_WAIT  (-1)
typedef struct {
    /* the batch cmds[n]: 1 done (res filled, a failure as error results),
     * 0 timed out, or JPKI_RUN_WAIT */
    int (*store)(void *ud, const jpki_store_cmd *cmds, size_t n,
                 jpki_store_result *res);
    /* a POST to the OCSP responder of the site's issuer i (key: the
     * flight's, NULL: its own): the HTTP status (0: failed) and the answer
     * in resp, or JPKI_RUN_WAIT */
    int (*ocsp)(void *ud, size_t issuer, const char *key,
                const uint8_t *body, size_t len, const uint8_t **resp,
                size_t *resp_len);
    void *ud;
} jpki_run_io;

/* Runs t, a transaction of site s, at now: the CRLs answered from the
 * site's, the store and OCSP by io.  JPKI_STEP_DONE (jpki_txn_verdict),
 * or the step whose I/O is under way. */
jpki_step jpki_site_run(const jpki_site *s, jpki_txn *t, int64_t now,
                        const jpki_run_io *io);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_SITE_H */
