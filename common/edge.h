/* edge.h - the request's edge, once for both servers: what a request
 * carries into the core (jpki_txn_request from its headers), the headers
 * of the answer to a verdict, the Cookie headers that go upstream, the
 * gate's own refusals.  An adapter only reads and writes its server's
 * header lists. */
#ifndef JPKI_EDGE_H
#define JPKI_EDGE_H

#include "jpki.h"

/* A piece of someone else's memory: len bytes at p (not NUL-terminated). */
typedef struct {
    const char *p;
    size_t len;
} jpki_span;

/* ---- the request ------------------------------------------------- */

/* The adapter's request headers: the i-th value (i from 0, in the order
 * they came) of header name (any case), NULL after the last; *len its
 * length. */
typedef const char *(*jpki_edge_header_fn)(void *ud, const char *name,
                                           size_t i, size_t *len);

typedef struct {
    jpki_edge_header_fn header;
    void *ud;
    /* The host the server found for a request without a Host (HTTP/1.0,
     * HTTP/2 without :authority): NULL, or one returning NULL, for none.
     * Asked only when an operation binds the host. */
    const char *(*own_host)(void *ud, size_t *len);
    int subrequest;          /* nobody's navigation: answers in JSON */
    int redis;               /* the store is Redis (CRLs read from it) */
} jpki_edge_in;

/* Fills what rq takes from the request's headers, for rq->op and
 * rq->policy (the session cookie's name): wants_json (Accept, and every
 * subrequest), content_type, cookie (the first Cookie header holding the
 * session cookie), sec_fetch_site and origin (login, logout), host
 * (challenge, login, logout: Host, when absent or empty the own host);
 * crl_in_store; map_source (the callback when rq->map_fn is set).  The
 * adapter sets the rest: now, is_post, body, peer, uri, the local table. */
void jpki_edge_request(jpki_txn_request *rq, const jpki_edge_in *in);

/* The session cookie's value in the Cookie header values cookies[n]
 * (*val NULL, *vlen 0: none). */
void jpki_edge_cookie(const jpki_span *cookies, size_t n, const char *name,
                      const char **val, size_t *vlen);

/* ---- the answer -------------------------------------------------- */

/* Whether a verdict lets a gated request go on to the upstream. */
int jpki_edge_passes(jpki_op op, const jpki_verdict *v);

#define JPKI_EDGE_HEADERS_MAX 12

/* The headers of an answer, in order.  session[i]: the session's header
 * (Set-Cookie, and the cache rule that goes with it): added to the answer
 * of the request the client made (nginx: the main request's, Apache:
 * err_headers_out, kept on an error page), never replacing one; the
 * others belong to the gate's own answer and replace any of that name. */
typedef struct {
    jpki_header h[JPKI_EDGE_HEADERS_MAX];
    unsigned char session[JPKI_EDGE_HEADERS_MAX];
    size_t n;
    char retry[24];          /* Retry-After's value */
} jpki_edge_headers;

/* The headers for verdict v.  pass (jpki_edge_passes): the session's
 * cookie, and with it jpki_pass_cookie_headers (no shared cache keeps a
 * resealed session); otherwise the gate answers: Set-Cookie, Location,
 * Retry-After, then jpki_answer_headers.  v NULL: an answer of the gate
 * without a verdict (health): jpki_answer_headers only. */
void jpki_edge_verdict_headers(const jpki_verdict *v, int pass,
                               jpki_edge_headers *out);

/* A refusal the adapter makes before any transaction (no endpoint there,
 * a body too large or unreadable, too many logins verified at once, a
 * method the health answer does not take) or after one (a signed-in
 * account or issuer a location's allow-list refuses, 403: allow.h): the
 * verdict v (http_status, reason, body in buf, retry_after), sent like a
 * transaction's.  buf: JPKI_EDGE_REFUSAL_MAX bytes. */
#define JPKI_EDGE_REFUSAL_MAX 160
const jpki_verdict *jpki_edge_refusal(jpki_verdict *v, jpki_err e,
                                      char *buf);

/* An answer of the gate that no transaction gave (health): a verdict of
 * status with the JSON body (len bytes), nothing else. */
const jpki_verdict *jpki_edge_answer(jpki_verdict *v, int status,
                                     const char *body, size_t len);

/* Whether a login is refused as busy: in_flight logins being verified by
 * this worker or child, against the policy's login_concurrency (0: no
 * cap); a refusal is counted in ctx's metrics (ctx may be NULL). */
int jpki_edge_login_busy(const jpki_ctx *ctx, jpki_op op,
                         const jpki_policy *pol, unsigned in_flight);

/* ---- upstream cookies -------------------------------------------- */

/* The Cookie header values that go upstream once the gate lets a request
 * through, from the client's values in[n]: without the session cookie
 * name (a bearer token, for nobody's logs) unless pass; a header left
 * empty is dropped.  out[n] (at most n used) points into in or into buf
 * (the sum of the in lengths suffices).  Returns how many out holds;
 * *changed: they differ from in (a session cookie was taken out). */
size_t jpki_edge_upstream_cookies(const jpki_span *in, size_t n,
                                  const char *name, int pass, char *buf,
                                  jpki_span *out, int *changed);

/* ---- the gate's headers in a request ----------------------------- */

typedef enum {
    JPKI_EDGE_KEEP = 0,      /* not the gate's, or the one a gate set */
    JPKI_EDGE_DROP,          /* the gate's, set before: removed quietly */
    JPKI_EDGE_WARN           /* a client's copy: removed, with a warning */
} jpki_edge_strip;

/* What a gate does with request header key (klen bytes) when it removes
 * the gate's headers (jpki_is_gate_header; name: the account header):
 * set: a gate of this request set it (kept when keep_set); quiet: no
 * warning (the headers were checked before). */
jpki_edge_strip jpki_edge_strip_header(const char *key, size_t klen,
                                       const char *name, size_t nlen,
                                       int set, int keep_set, int quiet);

#endif
