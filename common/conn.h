/* conn.h - a client connection of the gate (to Redis, to an OCSP
 * responder) as a state machine that both adapters drive: connecting, TLS
 * (SNI, the handshake, the peer's chain and name), the request's bytes
 * written and the answer read into a Redis round (redis.h) or the HTTP
 * answer's parser (http.c), each step ending in WANT_READ, WANT_WRITE, DONE
 * or FAILED with the sentence to log.  It never blocks and never waits: it
 * reads and writes until the socket says EAGAIN (as edge-triggered events
 * need), and the adapter waits (nginx: events and timers; Apache: poll()
 * with a deadline) and calls jpki_conn_step() again.  The rules of keeping
 * a connection, of trying a round again and of sharing an OCSP query are
 * here too; the pools, their locks and the sockets' events are the
 * adapters'. */
#ifndef JPKI_CONN_H
#define JPKI_CONN_H

#include "redis.h"
#include "sentinel.h"

#include <sys/socket.h>

typedef enum {
    JPKI_CONN_FAILED = -1,      /* jpki_conn_reason() says why */
    JPKI_CONN_DONE = 0,         /* the exchange is over: results stand */
    JPKI_CONN_WANT_READ = 1,    /* step again once the socket is readable */
    JPKI_CONN_WANT_WRITE = 2    /* ... writable */
} jpki_conn_state;

typedef struct jpki_conn jpki_conn;

/* A connection over fd, connected or (connecting) with a connect() under
 * way; the adapter keeps fd and closes it after jpki_conn_free().  what
 * names the peer in sentences ("redis", "OCSP responder"), where its
 * address as configured.  NULL: no memory. */
jpki_conn *jpki_conn_new(int fd, int connecting, const char *what,
                         const char *where);
/* The same on a socket of its own (non-blocking, closed by
 * jpki_conn_free()), connecting to sa: a failure to connect is a FAILED
 * first step with its reason.  NULL: no memory. */
jpki_conn *jpki_conn_open(const struct sockaddr *sa, socklen_t len,
                          const char *what, const char *where);
/* TLS on the connection, before its first step: SNI for a DNS name, the
 * handshake, then the server's chain to ctx's CAs and name checked
 * (jpki_tls_peer_check: a refusal has its reason). */
jpki_err jpki_conn_tls(jpki_conn *c, SSL_CTX *ctx, const char *name);
int jpki_conn_fd(const jpki_conn *c);
/* Its address as given to jpki_conn_new or jpki_conn_open. */
const char *jpki_conn_where(const jpki_conn *c);
SSL *jpki_conn_ssl(const jpki_conn *c);

/* A Redis round on it (after the last one ended DONE): auth is sent before
 * the commands on the connection's first round only.  res and cmds live
 * until the round ends.  An error (the commands cannot be encoded) leaves
 * the connection FAILED. */
jpki_err jpki_conn_redis(jpki_conn *c, const jpki_redis_auth *auth,
                         const jpki_store_cmd *cmds, size_t n,
                         jpki_store_result *res);
/* An OCSP POST (HTTP/1.0, the connection's one exchange): host and path
 * as configured, body the DER request (copied). */
jpki_err jpki_conn_ocsp(jpki_conn *c, const char *host, const char *path,
                        const uint8_t *body, size_t len);
/* Once DONE: the responder's answer (status, body). */
const jpki_ocsp_answer *jpki_conn_answer(const jpki_conn *c);
/* A sentinel's query (the connection's one exchange): SENTINEL
 * get-master-addr-by-name master.  A refusal (no such master, an error, a
 * host that is no IP address, a malformed answer) FAILS with its
 * sentence. */
jpki_err jpki_conn_sentinel(jpki_conn *c, const char *master,
                            const char *password);
/* Once DONE: the primary the sentinel named. */
const jpki_sentinel_addr *jpki_conn_primary(const jpki_conn *c);

/* Goes as far as the socket lets it. */
jpki_conn_state jpki_conn_step(jpki_conn *c);
jpki_conn_state jpki_conn_state_of(const jpki_conn *c);
/* 1 once connected (TLS included): from then on the exchange's own
 * deadline runs (a Redis round's timeout after the connect timeout). */
int jpki_conn_ready(const jpki_conn *c);
/* The adapter's deadline passed: FAILED, with a sentence saying in which
 * stage ("cannot connect to redis ... (timed out)", "redis TLS handshake
 * timed out", "redis command timed out", "OCSP responder timed out
 * (<url>)"). */
void jpki_conn_timeout(jpki_conn *c);
/* The adapter's own failure (an event that cannot be armed). */
void jpki_conn_fail(jpki_conn *c, const char *why);
int jpki_conn_timed_out(const jpki_conn *c);
/* The sentence to log after "jpki: " at the error level: why the
 * connection FAILED, or why a DONE one may not be kept; NULL: nothing to
 * say. */
const char *jpki_conn_reason(const jpki_conn *c);

/* Whether a DONE connection goes back to a pool holding idle connections
 * out of max (redis.h's keep rule, and the pool's limit). */
int jpki_conn_keep(const jpki_conn *c, unsigned idle, unsigned max);
/* Whether a FAILED round may be tried once more on a new connection (the
 * connection came from a pool and died unanswered: redis.h's retry rule;
 * never after a timeout).  The adapter logs the reason as always, then
 * JPKI_CONN_RETRY_MSG at the info level. */
int jpki_conn_retry(const jpki_conn *c, unsigned tries);
#define JPKI_CONN_RETRY_MSG \
    "pooled redis connection lost, retrying on a new one"
/* Whether a Redis connection to a primary named by sentinels says that
 * the primary is gone or demoted, so that the process forgets it
 * (jpki_sentinel_forget) and asks the sentinels again: it FAILED on the
 * socket (refused, reset, closed) or timed out, or the server is not the
 * primary (ROLE, -READONLY: then even a DONE round). */
int jpki_conn_rediscover(const jpki_conn *c);
/* Whether that round may be tried once more on the primary the sentinels
 * name then (tries 0): none of its commands reached a primary (the
 * connection failed before ROLE said "master", or a replica refused them
 * -READONLY), and it did not time out (its time is spent). */
int jpki_conn_retry_primary(const jpki_conn *c, unsigned tries);
/* What follows a Redis round that ended on c (DONE or FAILED) at its
 * tries-th try (0 or 1), these rules in their order; sentinels: the
 * primary is named by sentinels (the adapter has already forgotten it if
 * jpki_conn_rediscover said so).  A round whose request has gone is not
 * tried again (the adapter's to know). */
typedef enum {
    JPKI_CONN_OVER = 0,         /* its results stand (DONE: the connection
                                   kept or not, jpki_conn_keep), or its
                                   failure or timeout */
    JPKI_CONN_AGAIN,            /* once more on a new connection: the
                                   adapter logs JPKI_CONN_RETRY_MSG at the
                                   info level (jpki_conn_retry) */
    JPKI_CONN_AGAIN_PRIMARY     /* once more on the primary the sentinels
                                   name now (jpki_conn_retry_primary) */
} jpki_conn_next;
jpki_conn_next jpki_conn_after(const jpki_conn *c, int sentinels,
                               unsigned tries);
/* Whether an idle (pooled) connection may still serve: nothing to read
 * and no EOF (Redis sends nothing unasked); checked when one is taken from
 * a pool and when an idle one becomes readable.  When not, the adapter
 * drops it and logs JPKI_CONN_DROP_MSG at the info level. */
int jpki_conn_idle(jpki_conn *c);
#define JPKI_CONN_DROP_MSG \
    "pooled redis connection closed by the server: dropped"

/* TLS closed (close_notify, no wait), the socket if it is its own. */
void jpki_conn_free(jpki_conn *c);

/* ---- OCSP flights ------------------------------------------------- */

/* Concurrent logins of one certificate share one OCSP query: a flight,
 * listed while it is under way (the adapter embeds this record in its
 * own, holds its lock and its waiters).  Shared only when keyed by a
 * cert_id (jpki_txn_ocsp_key: none with nonces) and for the same
 * responder (scope: the site's issuer). */
typedef struct jpki_flight jpki_flight;
struct jpki_flight {
    jpki_flight *next;
    const void *scope;
    char key[JPKI_CERT_ID_HEX_LEN + 1];
    /* adapters whose logins wait in threads (Apache): its answer kept */
    int done, status, waiters;
    uint8_t *body;
    size_t body_len;
};

int jpki_flight_shared(const char *key, size_t len);
/* The flight of (scope, key) under way, or NULL. */
jpki_flight *jpki_flight_find(jpki_flight *list, const void *scope,
                              const char *key, size_t len);
/* f starts: listed when its key may be shared. */
void jpki_flight_start(jpki_flight **list, jpki_flight *f, const void *scope,
                       const char *key, size_t len);
/* f's answer is in: later logins ask again (or find it in the store). */
void jpki_flight_land(jpki_flight **list, jpki_flight *f);
/* For waiters that wait in threads (the adapter counts them in waiters,
 * under its lock): f lands with its answer (status 0: failed), the body
 * kept for them (no memory: status 0).  1 when nobody waits: the adapter
 * frees f. */
int jpki_flight_done(jpki_flight **list, jpki_flight *f, int status,
                     const uint8_t *body, size_t len);
/* A waiter leaves f (having copied its answer): 1 when it was the last of
 * a flight done (the body freed here; the adapter frees f). */
int jpki_flight_leave(jpki_flight *f);

#endif
