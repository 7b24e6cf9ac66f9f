/* discovery.h - the connections of a store's Redis for both adapters:
 * the TLS name they check, and a discovery of the primary through Redis
 * Sentinel driven step by step (which sentinel to ask next, its answer
 * taken into the process's record, when to give up, the sentences to log).
 * Sans I/O: the adapter opens each sentinel's connection (conn.h), waits
 * for it its own way, and feeds back what it answered. */
#ifndef JPKI_DISCOVERY_H
#define JPKI_DISCOVERY_H

#include "conf.h"
#include "conn.h"
#include "sentinel.h"

/* TLS on a new connection of the store (tls_ca=: tls not NULL; else
 * nothing to do): the server's certificate must name tls_name= when it is
 * set, else name (the sentinel's host, the primary's address as a
 * sentinel sent it; NULL for redis=, whose tls_name= is its host). */
jpki_err jpki_conn_store_tls(jpki_conn *c, SSL_CTX *tls,
                             const jpki_store_spec *spec, const char *name);

/* Sentinel i's address as written, "HOST:PORT" ("[IPv6]:PORT"), into
 * out[max] (the nginx URL it is resolved from; the sentences' address):
 * its length, 0 when it does not fit. */
size_t jpki_conf_sentinel_where(const jpki_store_spec *spec, unsigned i,
                                char *out, size_t max);

/* A discovery: the sentinels asked in turn (the record's order) until one
 * names the primary.  One at a time in a process (the adapter's rule);
 * the record's reads and writes under the adapter's lock of it. */
typedef struct {
    jpki_sentinel *rec;
    const jpki_store_spec *spec;
    unsigned start, asked;
    int at;                     /* the sentinel asked now, -1 none */
    char where[300];            /* its address (jpki_conf_sentinel_where) */
    char say[512];              /* a sentence to log after "jpki: " */
} jpki_discovery;

typedef enum {
    JPKI_DISCOVERY_NEXT = 0,    /* no answer: ask the next sentinel */
    JPKI_DISCOVERY_KNOWN,       /* a primary is known, the same as before */
    JPKI_DISCOVERY_NEW          /* another primary: the adapter drops its
                                   pooled connections (under the lock) and
                                   logs say at the notice level: "redis
                                   primary of \"M\" is H:P (sentinel W)" */
} jpki_discovery_state;

/* A discovery begins where the last one ended (jpki_sentinel_start). */
void jpki_discovery_begin(jpki_discovery *d, jpki_sentinel *rec,
                          const jpki_store_spec *spec);
/* The sentinel to ask now: its index (d->where its address), or -1 once
 * each was asked: d->say "no sentinel named the redis primary of \"M\""
 * (the error level), and the rounds waiting for it fail. */
int jpki_discovery_next(jpki_discovery *d);
/* The query on c, a new connection to the sentinel of d's last
 * jpki_discovery_next: TLS first when tls (jpki_conn_store_tls with the
 * sentinel's host), the AUTH of sentinel_password_file=, then the
 * query.  An error: no memory. */
jpki_err jpki_discovery_query(const jpki_discovery *d, jpki_conn *c,
                              SSL_CTX *tls);
/* What the sentinel asked now answered: the primary it named
 * (jpki_conn_primary of its connection once ended), or NULL when it named
 * none (it failed, refused, or could not be reached). */
jpki_discovery_state jpki_discovery_fed(jpki_discovery *d,
                                        const jpki_sentinel_addr *a);

/* A connection c of the primary of generation gen says the primary is
 * gone or demoted (jpki_conn_rediscover): forgotten (jpki_sentinel_forget)
 * and 1, say "redis primary W of \"M\" lost: asking the sentinels again"
 * (the warning level; the adapter drops its pooled connections); 0 when
 * it already was. */
int jpki_discovery_lost(jpki_sentinel *rec, unsigned gen, const jpki_conn *c,
                        const char *master, char *say, size_t max);

#endif
