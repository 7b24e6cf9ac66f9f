/* discovery.c - a store's Redis connections: their TLS name, and the
 * primary discovered through the sentinels step by step (discovery.h). */
#include "discovery.h"

#include <stdio.h>
#include <string.h>

jpki_err jpki_conn_store_tls(jpki_conn *c, SSL_CTX *tls,
                             const jpki_store_spec *spec, const char *name)
{
    if (tls == NULL)
        return JPKI_OK;
    return jpki_conn_tls(c, tls, spec->tls_name[0] ? spec->tls_name : name);
}

size_t jpki_conf_sentinel_where(const jpki_store_spec *spec, unsigned i,
                                char *out, size_t max)
{
    const char *host = spec->sentinels[i].host;
    int n;

    n = snprintf(out, max, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
                 spec->sentinels[i].port);
    return n > 0 && (size_t)n < max ? (size_t)n : 0;
}

void jpki_discovery_begin(jpki_discovery *d, jpki_sentinel *rec,
                          const jpki_store_spec *spec)
{
    d->rec = rec;
    d->spec = spec;
    d->start = jpki_sentinel_start(rec);
    d->asked = 0;
    d->at = -1;
    d->where[0] = '\0';
    d->say[0] = '\0';
}

int jpki_discovery_next(jpki_discovery *d)
{
    d->at = jpki_sentinel_pick(d->rec, d->start, d->asked);
    if (d->at < 0) {
        snprintf(d->say, sizeof(d->say), "no sentinel named the redis "
                 "primary of \"%s\"", d->spec->master);
        return -1;
    }
    d->asked++;
    (void)jpki_conf_sentinel_where(d->spec, (unsigned)d->at, d->where,
                                   sizeof(d->where));
    return d->at;
}

jpki_err jpki_discovery_query(const jpki_discovery *d, jpki_conn *c,
                              SSL_CTX *tls)
{
    jpki_err rc;

    if (d->at < 0)
        return JPKI_ERR_INVALID;
    rc = jpki_conn_store_tls(c, tls, d->spec, d->spec->sentinels[d->at].host);
    if (rc != JPKI_OK)
        return rc;
    return jpki_conn_sentinel(c, d->spec->master,
                              d->spec->sentinel_password);
}

jpki_discovery_state jpki_discovery_fed(jpki_discovery *d,
                                        const jpki_sentinel_addr *a)
{
    if (d->at < 0)
        return JPKI_DISCOVERY_NEXT;
    if (a == NULL) {
        jpki_sentinel_skip(d->rec, (unsigned)d->at);
        return JPKI_DISCOVERY_NEXT;
    }
    if (jpki_sentinel_learn(d->rec, (unsigned)d->at, a) != 1)
        return JPKI_DISCOVERY_KNOWN;
    snprintf(d->say, sizeof(d->say), "redis primary of \"%s\" is %s:%u "
             "(sentinel %s)", d->spec->master, a->host, a->port, d->where);
    return JPKI_DISCOVERY_NEW;
}

int jpki_discovery_lost(jpki_sentinel *rec, unsigned gen, const jpki_conn *c,
                        const char *master, char *say, size_t max)
{
    if (!jpki_sentinel_forget(rec, gen))
        return 0;
    snprintf(say, max, "redis primary %s of \"%s\" lost: asking the "
             "sentinels again", jpki_conn_where(c), master);
    return 1;
}
