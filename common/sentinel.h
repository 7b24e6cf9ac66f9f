/* sentinel.h - Redis Sentinel, once for nginx, Apache and jpkictl: the
 * query that asks a sentinel for the primary of a master name, its answer
 * read (bounded, an IP address and a port), the ROLE answer that a
 * connection's prelude checks (only a primary is written to), and a
 * process's record of the primary: its address, its generation (pooled
 * connections of an older one are dropped), which sentinel to ask next,
 * and when to forget it (conn.h: jpki_conn_rediscover).  Sans I/O: the
 * adapters open the sockets (conn.h drives them) and feed the answers. */
#ifndef JPKI_SENTINEL_H
#define JPKI_SENTINEL_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest answer of a sentinel taken (two short bulk strings). */
#define JPKI_SENTINEL_ANSWER_MAX 256

/* "SENTINEL get-master-addr-by-name <master>" in RESP into out[max]: its
 * length, 0 when max is too small or master is empty or too long. */
size_t jpki_sentinel_query(const char *master, char *out, size_t max);
/* AUTH password before it (sentinel_password_file=: a sentinel with
 * requirepass): the command into out[max]; 0 when it does not fit or the
 * password is empty.  The sentinel's first reply, at buf[len]: 1 "+OK"
 * (*used its bytes), 0 more bytes needed, -1 refused, why "refused the
 * password: <its error, sanitized>" or "sent a malformed answer". */
size_t jpki_sentinel_auth(const char *password, char *out, size_t max);
int jpki_sentinel_auth_answer(const char *buf, size_t len, size_t *used,
                              char *why, size_t whylen);

/* The primary a sentinel named. */
typedef struct {
    char host[48];              /* an IPv4 or IPv6 address, as sent */
    unsigned port;              /* 1..65535 */
} jpki_sentinel_addr;

/* The sentinel's answer buf[len] (all bytes read so far): 1 complete, *a
 * filled; 0 more bytes needed; -1 refused, why (a phrase after
 * "sentinel <where> "): "knows no primary named that", "refused the query:
 * <its error, sanitized>", "named a host that is not an IP address",
 * "sent a malformed answer".  Anything after a complete answer is out of
 * step: -1. */
int jpki_sentinel_answer(const char *buf, size_t len, jpki_sentinel_addr *a,
                         char *why, size_t whylen);

/* ROLE's answer at buf[len]: 1 complete (*used its bytes; role the first
 * element's text: "master", "slave", "sentinel"; "" for an error reply,
 * whose text is then in role after "-"), 0 more bytes needed, -1
 * malformed (depth at most 3, arrays of at most 1024 elements, strings of
 * at most 512 bytes). */
int jpki_role_answer(const char *buf, size_t len, size_t *used, char *role,
                     size_t rolelen);

/* ---- a process's record of the primary ---------------------------- */

typedef struct jpki_sentinel jpki_sentinel;

/* A record for n sentinels (1..JPKI_CONF_SENTINELS_MAX).  NULL: no
 * memory. */
jpki_sentinel *jpki_sentinel_new(unsigned n);
void jpki_sentinel_free(jpki_sentinel *s);

/* The primary known (NULL: none, ask the sentinels), its address's length
 * and "IP:PORT" for messages; its generation in *gen. */
const struct sockaddr *jpki_sentinel_primary(const jpki_sentinel *s,
                                             socklen_t *len,
                                             const char **where,
                                             unsigned *gen);
/* The primary's IP address, as the sentinel sent it ("" none). */
const char *jpki_sentinel_host(const jpki_sentinel *s);
/* The current generation: a connection opened under another one is no
 * longer the primary's (the adapter drops it). */
unsigned jpki_sentinel_gen(const jpki_sentinel *s);
/* Where a discovery starts: the sentinel that answered last (skipping
 * those that failed since); the discovery keeps it while it runs. */
unsigned jpki_sentinel_start(const jpki_sentinel *s);
/* The sentinel to ask at the k-th try (k from 0) of a discovery that
 * started at start: start, then the next ones in the order written; -1
 * once every one has been asked. */
int jpki_sentinel_pick(const jpki_sentinel *s, unsigned start, unsigned k);
/* Sentinel i named a: 1 when it is another primary than the one known (a
 * new generation), 0 the same, -1 a is no IP address (the record is
 * unchanged). */
int jpki_sentinel_learn(jpki_sentinel *s, unsigned i,
                        const jpki_sentinel_addr *a);
/* Sentinel i did not answer: the next discovery starts after it. */
void jpki_sentinel_skip(jpki_sentinel *s, unsigned i);
/* A connection of generation gen found the primary gone or demoted
 * (jpki_conn_rediscover): the primary is forgotten and the generation
 * moves on.  1 when forgotten now, 0 when it already was (an older
 * generation's news). */
int jpki_sentinel_forget(jpki_sentinel *s, unsigned gen);

#endif
