/* gate.h - the rules of the gate's HTTP face that belong to no one web
 * server: which request headers are the gate's, whether a client wants
 * JSON or a page, the health answer, and the Redis connection prelude.
 * Both adapters call these; neither writes its own. */
#ifndef JPKI_GATE_H
#define JPKI_GATE_H

#include "jpki.h"

/* Header names compare as CGI-style upstreams and nginx's $http_ variables
 * see them: case-insensitively, '_' read as '-'.  n bytes of each; a NUL in
 * either before n bytes is a mismatch. */
int jpki_header_name_eq(const char *a, const char *b, size_t n);

/* Whether a request header (key, klen bytes) is one of the gate's: any
 * X-JPKI-*, or the account header name (nlen bytes; name NULL: none).
 * Every client copy of these is removed before the request goes on. */
int jpki_is_gate_header(const char *key, size_t klen, const char *name,
                        size_t nlen);

/* Whether an answer made by the gate is JSON (API client) rather than a
 * page or a redirect: Accept absent (accept NULL), naming
 * application/json, or not naming text/html.  len bytes of accept. */
int jpki_accept_wants_json(const char *accept, size_t len);

/* The endpoint a request names: the last segment of its path (trailing
 * '/' ignored) is challenge, login (is_post; otherwise the login page),
 * logout, status, tls, page.css or page.js, device, sign or poll.  1 and
 * *op when it is one of them, 0 otherwise (the answer is 404
 * not_found). */
int jpki_endpoint_op(const char *path, size_t len, int is_post, jpki_op *op);

/* ---- health ------------------------------------------------------ */

/* The health answer, {"status":"ok"|"degraded","time":T,"store":{...},
 * "crls":[...],"reasons":[...],"ocsp":[...]}: the site adds what it reads
 * of each CRL file slot and the embedded store's state, the transaction
 * the CRLs loaded into Redis, the Redis probe and each issuer's OCSP
 * state; the answer is 200 when ok, 503 otherwise.  The metrics' gauges
 * (metrics.h) are read from the same collection. */
#define JPKI_HEALTH_AGG_MAX 48      /* (issuer, source) CRL aggregates */
#define JPKI_HEALTH_REASONS_MAX 48
#define JPKI_HEALTH_OCSP_MAX 16

enum { JPKI_HEALTH_FILE = 0, JPKI_HEALTH_REDIS };
/* the reasons of a degraded answer ("reasons":[{"reason":...}]) */
enum { JPKI_HR_STORE_DOWN = 0, JPKI_HR_STORE_FULL, JPKI_HR_CRL_MISSING,
       JPKI_HR_CRL_STALE, JPKI_HR_CRL_LOAD_FAILED, JPKI_HR_OCSP_FAILING,
       JPKI_HR_N };
extern const char *const jpki_health_reason_names[JPKI_HR_N];

typedef struct jpki_health {
    char *buf;              /* the "crls" array's text, NUL-terminated */
    size_t max;
    size_t len;
    unsigned n;
    int ok;                 /* every CRL loaded, fresh, last load good */
    int64_t now;            /* seconds */
    unsigned grace;         /* jpki_crl_stale_after's grace_s */
    int64_t skew;
    int owned;              /* buf is malloc'ed: jpki_health_release */
    /* the store (set by the site, or from the Redis probe) */
    int shm;
    jpki_err store;
    uint64_t shm_count, shm_capacity;
    int store_mem;          /* Redis: used_memory, maxmemory read (metrics) */
    uint64_t store_used, store_max;
    /* the CRLs per issuer and source, for the metrics */
    struct {
        char issuer[64];
        uint8_t source;
        uint8_t bad;        /* one missing, stale or badly loaded */
        unsigned crls, loaded;
        int64_t oldest;     /* this_update of the oldest loaded, 0 none */
    } agg[JPKI_HEALTH_AGG_MAX];
    unsigned n_agg;
    struct {
        uint8_t reason;
        uint8_t source;
        char issuer[64];    /* "": none */
    } reasons[JPKI_HEALTH_REASONS_MAX];
    unsigned n_reasons;
    struct {
        char issuer[64];
        int failing;
        uint64_t streak;
        int64_t last_ok, last_fail;
    } ocsp[JPKI_HEALTH_OCSP_MAX];
    unsigned n_ocsp;
} jpki_health;

/* The methods the health answer takes: another one is refused (405
 * method_not_allowed, jpki_edge_refusal) with this Allow header. */
#define JPKI_HEALTH_ALLOW "GET, HEAD"

/* Each entry takes at most this much of buf. */
#define JPKI_HEALTH_CRL_MAX 512

void jpki_health_init(jpki_health *h, char *buf, size_t max, int64_t now,
                      unsigned grace, int64_t skew);
void jpki_health_release(jpki_health *h);
/* A CRL slot: info NULL when none is loaded; error the last load's result
 * (JPKI_OK when good); loaded_at when the loaded one was read (seconds).
 * issuer is the operator's label, file the slot's own (NULL: the issuer
 * has one slot). */
void jpki_health_add_crl(jpki_health *h, const char *issuer,
                         const char *file, const jpki_crl_info *info,
                         jpki_err error, int64_t loaded_at);

/* The CRLs of issuer in Redis (`jpkictl crl sync`): lists (one per CA
 * key of the issuer), loaded of them usable, worst the loaded one that
 * goes stale first (NULL: none loaded). */
void jpki_health_add_store_crl(jpki_health *h, const char *issuer,
                               const jpki_crl_info *worst, unsigned lists,
                               unsigned loaded, int64_t loaded_at);
/* An issuer's OCSP state (metrics.h's rule: failing degrades). */
void jpki_health_add_ocsp(jpki_health *h, const char *issuer, int failing,
                          uint64_t streak, int64_t last_ok,
                          int64_t last_fail);
/* A reason of a degraded answer (issuer NULL: none), once. */
void jpki_health_reason(jpki_health *h, int reason, int source,
                        const char *issuer);
/* Whether h with the store's state is ok (no reason to degrade). */
int jpki_health_is_ok(const jpki_health *h, jpki_err store);

/* The command that probes the store: a write (SET with a TTL), so that a
 * Redis at maxmemory shows as full. */
void jpki_health_probe(jpki_store_cmd *cmd, int64_t now);
/* The store's state from the probe's result (res NULL or n != 1: no
 * answer): JPKI_OK, JPKI_ERR_STORE_FULL or JPKI_ERR_STORE. */
jpki_err jpki_health_probe_result(const jpki_store_result *res, size_t n);

/* The whole answer into out (NUL-terminated); returns its length, 0 when
 * max is too small.  *ok: the status is "ok". */
size_t jpki_health_json(const jpki_health *h, int shm, jpki_err store,
                        char *out, size_t max, int *ok);
/* A size of out that always holds the answer. */
size_t jpki_health_json_max(const jpki_health *h);

/* ---- Redis ------------------------------------------------------- */

/* AUTH [user] password (when password is not NULL) and SELECT db (when db
 * > 0) in RESP, sent before the first commands of a new connection; *count
 * is the number of replies they will get.  Returns the length written to
 * out, or (size_t)-1 when max is too small (jpki_redis_prelude_size). */
size_t jpki_redis_prelude(const char *user, const char *password,
                          unsigned db, char *out, size_t max,
                          unsigned *count);
size_t jpki_redis_prelude_size(const char *user, const char *password);

#endif
