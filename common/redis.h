/* redis.h - the rules of the gate's clients that belong to no one web
 * server: a Redis round (the request's bytes, the replies counted and
 * checked as they come, when a connection may be kept or a round tried
 * again) and the TLS peer's name.  conn.h drives a round on a connection
 * (the bytes written and read, TLS); the adapters own the events,
 * deadlines and pools. */
#ifndef JPKI_REDIS_H
#define JPKI_REDIS_H

#include "jpki.h"

#include <openssl/ssl.h>

/* ---- a Redis round ------------------------------------------------ */

/* What a connection needs before its first commands: AUTH [user] password
 * (password not NULL) and SELECT db (db > 0). */
typedef struct {
    const char *user;           /* NULL: none */
    const char *password;       /* NULL: no AUTH */
    unsigned db;
    int role;                   /* 1 (a primary named by sentinels): ROLE
                                   after them, whose answer must be
                                   "master" */
} jpki_redis_auth;

typedef enum {
    JPKI_ROUND_FAILED = -1,     /* jpki_redis_round_reason() says why; the
                                   connection is dropped */
    JPKI_ROUND_MORE = 0,        /* replies still due: read on */
    JPKI_ROUND_DONE = 1         /* every reply in: the results stand */
} jpki_round_state;

#define JPKI_REDIS_ROUND_MAX (4 * JPKI_STORE_BATCH_MAX)

/* One per connection (or per round): it may serve round after round while
 * jpki_redis_round_keep() says so. */
typedef struct jpki_redis_round jpki_redis_round;

jpki_redis_round *jpki_redis_round_new(void);
void jpki_redis_round_free(jpki_redis_round *r);

/* Starts a round: on a new connection (auth not NULL) its AUTH/SELECT
 * replies are due first, each of which must be OK ("AUTH or SELECT
 * refused"), then with auth->role ROLE's, which must say "master" ("is
 * not the primary (ROLE: slave)", "ROLE refused: <error>"); then one reply
 * per command, written to res[i] (res and cmds
 * must live until the round ends).  1 <= n <= JPKI_REDIS_ROUND_MAX: a
 * transaction's batch (JPKI_STORE_BATCH_MAX at most), or the batches of
 * several rounds an adapter sends together on one connection.  JPKI_OK,
 * or an error when the commands cannot be encoded. */
jpki_err jpki_redis_round_start(jpki_redis_round *r,
                                const jpki_redis_auth *auth,
                                const jpki_store_cmd *cmds, size_t n,
                                jpki_store_result *res);
/* The bytes to send: the prelude (on a new connection) and the commands,
 * pipelined; with auth->role the prelude alone, the commands held until
 * ROLE said "master". */
const char *jpki_redis_round_out(jpki_redis_round *r, size_t *len);
/* The commands held, once ROLE said "master" (then MORE is fed back):
 * the bytes to send now; NULL when nothing is to be sent (once). */
const char *jpki_redis_round_more_out(jpki_redis_round *r, size_t *len);
/* 1 once the commands' bytes were handed out to be sent. */
int jpki_redis_round_cmds_out(const jpki_redis_round *r);

/* len bytes read from the connection (any piece size).  A reply beyond
 * the round's is out of step: the round is DONE (the results stand) but
 * the connection is not kept, and the reason says so. */
jpki_round_state jpki_redis_round_feed(jpki_redis_round *r, const char *buf,
                                       size_t len);
/* The connection ended (EOF, a read error) before more bytes came. */
jpki_round_state jpki_redis_round_eof(jpki_redis_round *r);
/* Why the round failed, or why its connection may not be kept: "AUTH or
 * SELECT refused", "protocol error", "reply too large", "closed the
 * connection", "sent more replies than asked"; NULL when nothing is
 * wrong.  The adapter logs "jpki: redis <reason>". */
const char *jpki_redis_round_reason(const jpki_redis_round *r);

/* 1 when the server is not (or no longer) the primary: ROLE did not say
 * "master", or a command was answered -READONLY (a replica). */
int jpki_redis_round_not_primary(const jpki_redis_round *r);

/* Whether the connection may go back to the pool: the round is DONE,
 * nothing came beyond its replies, no -READONLY, and the peer did not
 * close. */
int jpki_redis_round_keep(const jpki_redis_round *r);
/* Whether a round whose connection failed (closed, reset, a send refused;
 * not a timeout) may be tried once more on a new connection: the
 * connection came from the pool (pooled), this was the first try (tries
 * 0), and not one byte came back (Redis restarted while it was idle:
 * nothing was answered). */
int jpki_redis_round_retry(const jpki_redis_round *r, int pooled,
                           unsigned tries);

/* Rounds that go together on one connection (nginx: the rounds waiting
 * when a connection comes free): their commands in one write, in the
 * order they joined, as many as one round carries (JPKI_REDIS_ROUND_MAX
 * commands), and each its own part of the results once it ends. */
typedef struct jpki_redis_group jpki_redis_group;

/* An empty group.  NULL: no memory. */
jpki_redis_group *jpki_redis_group_new(void);
void jpki_redis_group_free(jpki_redis_group *g);
/* A round of n commands (1..JPKI_STORE_BATCH_MAX) joins, after the
 * others: 1 joined (its commands copied), 0 they do not fit (nor may a
 * round waiting behind it go first: the adapter stops there). */
int jpki_redis_group_add(jpki_redis_group *g, const jpki_store_cmd *cmds,
                         size_t n);
/* All the commands (*n of them), and the results they are read into
 * (jpki_conn_redis's cmds and res; a failure: jpki_store_results_error
 * over the same *n). */
const jpki_store_cmd *jpki_redis_group_cmds(const jpki_redis_group *g,
                                            size_t *n);
jpki_store_result *jpki_redis_group_res(jpki_redis_group *g);
/* The k-th round's results (k from 0, the order they joined) into
 * res[]: how many (0: no such round). */
size_t jpki_redis_group_part(const jpki_redis_group *g, size_t k,
                             jpki_store_result *res);

/* n results of a failed batch: every one JPKI_STORE_R_ERROR. */
void jpki_store_results_error(jpki_store_result *res, size_t n);

/* ---- TLS ---------------------------------------------------------- */

/* Before the handshake: the server name (SNI) for a DNS name; none for an
 * IP address (RFC 6066). */
void jpki_tls_set_server_name(SSL *ssl, const char *name);
/* After it: the server is the one asked for when its certificate chained
 * to the configured CAs (the handshake's verify result) and names name.
 * NULL when it is; else why, written in buf (max bytes): "server
 * certificate refused: <OpenSSL's reason>" or "server certificate does not
 * name \"<name>\"".  The adapter logs "jpki: redis <why>". */
const char *jpki_tls_peer_check(SSL *ssl, const char *name, char *buf,
                                size_t max);
/* Whether the peer's certificate names name, an IP address (iPAddress
 * entries) or a DNS name (dNSName entries, the subject's CN when it has
 * none).  1 yes, 0 no (no certificate, NULL or empty name). */
int jpki_tls_peer_named(SSL *ssl, const char *name);
/* A client TLS context (TLS 1.2 and later) trusting the PEM CA file ca
 * (absolute): the server's chain and name are checked after the handshake
 * (jpki_tls_peer_check).  err: why not (the file does not load). */
jpki_err jpki_tls_client_ctx(const char *ca, SSL_CTX **out, char *err,
                             size_t errlen);
/* A server's client-hello callback (SSL_CTX_set_client_hello_cb) for the
 * logins by a card's certificate: a client that offers TLS 1.2 is held to
 * it (the card signs only PKCS#1 v1.5, which TLS 1.3's CertificateVerify
 * refuses); one that offers only TLS 1.3 goes on, and its login is told
 * why (tls_version). */
/* The client certificate (PEM file cert, its chain after it) and its key
 * (PEM file key, not encrypted) that ctx presents to servers that ask
 * for one; both absolute.  err: why not (a file does not load, the key
 * is not the certificate's). */
jpki_err jpki_tls_client_cert(SSL_CTX *ctx, const char *cert,
                              const char *key, char *err, size_t errlen);
int jpki_tls_hello_hold12(SSL *s, int *al, void *arg);
int jpki_x509_names_host(X509 *cert, const char *name);

#endif
