/*
 * mod_auth_jpki_redis.c - the store's commands run: in the embedded store
 * (the core's table, mod_auth_jpki_store.c) or on Redis, a per-process
 * pool of connections; and each child's logout-log poller thread
 * (common/outsync.c).  A connection is the core's state machine
 * (common/conn.c: connect, TLS with the server verified, what is sent, how
 * the replies are counted, when a connection is kept and when a round is
 * tried again on a fresh connection, what to log): this file waits for its
 * socket with poll() between its steps, within the deadlines.  Every
 * failure is reported to the caller, which feeds it to the core as a
 * failure (fail-closed).
 */

#include "mod_auth_jpki.h"
#include "discovery.h"

#include "apr_atomic.h"
#include "apr_thread_proc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


struct mjpki_redis_conn {
    mjpki_redis_conn          *next;
    jpki_conn                 *conn;
    unsigned                   gen;       /* the primary's (sentinels) */
};


/* ------------------------------------------------------------------ */
/* A connection of the core, driven with deadlines                     */
/* ------------------------------------------------------------------ */

static apr_status_t
mjpki_wait_fd(int fd, short events, apr_time_t deadline)
{
    struct pollfd        pfd;
    apr_interval_time_t  left;
    int                  n;

    for ( ;; ) {
        left = deadline - apr_time_now();
        if (left <= 0) {
            return APR_TIMEUP;
        }
        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, (int) ((left + 999) / 1000));
        if (n > 0) {
            return APR_SUCCESS;
        }
        if (n == 0) {
            return APR_TIMEUP;
        }
        if (errno != EINTR) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
}


int
mjpki_conn_run(jpki_conn *c, apr_interval_time_t connect_timeout,
               apr_interval_time_t timeout)
{
    jpki_conn_state  st;
    apr_status_t     rv;
    apr_time_t       deadline;
    int              timed;

    timed = connect_timeout == 0 || jpki_conn_ready(c);
    deadline = apr_time_now() + (timed ? timeout : connect_timeout);

    for ( ;; ) {
        st = jpki_conn_step(c);
        if (st == JPKI_CONN_DONE || st == JPKI_CONN_FAILED) {
            return st;
        }

        if (!timed && jpki_conn_ready(c)) {
            /* connected: the exchange has its own deadline */
            deadline = apr_time_now() + timeout;
            timed = 1;
        }

        rv = mjpki_wait_fd(jpki_conn_fd(c), st == JPKI_CONN_WANT_READ
                                            ? POLLIN : POLLOUT, deadline);
        if (APR_STATUS_IS_TIMEUP(rv)) {
            jpki_conn_timeout(c);
            return JPKI_CONN_FAILED;
        }
        if (rv != APR_SUCCESS) {
            jpki_conn_fail(c, "cannot wait for its socket");
            return JPKI_CONN_FAILED;
        }
    }
}


/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

/* A change of the primary, said at its level whoever found it (a request,
 * or the logout poller). */
#define MJPKI_PRIMARY_LOG(site, r, level, ...)                             \
    do {                                                                   \
        if ((r) != NULL) {                                                 \
            ap_log_rerror(APLOG_MARK, level, 0, r, __VA_ARGS__);           \
        } else {                                                           \
            ap_log_error(APLOG_MARK, level, 0, (site)->server,             \
                         __VA_ARGS__);                                     \
        }                                                                  \
    } while (0)

static void
mjpki_redis_close(mjpki_redis_conn *c)
{
    jpki_conn_free(c->conn);
    free(c);
}


static void
mjpki_lock(mjpki_site *site)
{
    if (site->redis_mutex) {
        apr_thread_mutex_lock(site->redis_mutex);
    }
}


static void
mjpki_unlock(mjpki_site *site)
{
    if (site->redis_mutex) {
        apr_thread_mutex_unlock(site->redis_mutex);
    }
}


/* Whether c is a connection of the primary the sentinels name now (always
 * without sentinels); under the lock. */
static int
mjpki_redis_current(mjpki_site *site, const mjpki_redis_conn *c)
{
    return site->sentinel == NULL
           || c->gen == jpki_sentinel_gen(site->sentinel);
}


/* The pooled connections closed (at the end, or when the primary
 * changed: then under the lock). */
static void
mjpki_redis_drop_idle(mjpki_site *site)
{
    mjpki_redis_conn *c, *next;

    for (c = site->redis_idle; c; c = next) {
        next = c->next;
        mjpki_redis_close(c);
    }
    site->redis_idle = NULL;
    site->redis_nidle = 0;
}


apr_status_t
mjpki_redis_pool_cleanup(void *data)
{
    mjpki_redis_drop_idle(data);
    return APR_SUCCESS;
}


/* A pooled connection still fit to serve (the core's check: nothing to
 * read, no EOF: Redis closed it or restarted), or NULL. */
static mjpki_redis_conn *
mjpki_redis_idle_get(mjpki_site *site, request_rec *r)
{
    mjpki_redis_conn *c;
    unsigned          gen;

    for ( ;; ) {
        if (site->redis_mutex) {
            apr_thread_mutex_lock(site->redis_mutex);
        }
        c = site->redis_idle;
        if (c) {
            site->redis_idle = c->next;
            site->redis_nidle--;
        }
        gen = c != NULL && site->sentinel != NULL
              ? jpki_sentinel_gen(site->sentinel) : 0;
        if (site->redis_mutex) {
            apr_thread_mutex_unlock(site->redis_mutex);
        }
        if (c == NULL) {
            return NULL;
        }
        if (c->gen != gen) {
            mjpki_redis_close(c);         /* an older primary's */
            continue;
        }
        if (jpki_conn_idle(c->conn)) {
            c->next = NULL;
            return c;
        }
        JPKI_LOG(site, r, APLOG_INFO, 0, "jpki: " JPKI_CONN_DROP_MSG);
        mjpki_redis_close(c);
    }
}


static void
mjpki_redis_idle_put(mjpki_site *site, mjpki_redis_conn *c)
{
    int  kept = 0;

    if (site->redis_mutex) {
        apr_thread_mutex_lock(site->redis_mutex);
        if (mjpki_redis_current(site, c)
            && jpki_conn_keep(c->conn, (unsigned) site->redis_nidle,
                              jpki_site_store(site->js)->keepalive))
        {
            c->next = site->redis_idle;
            site->redis_idle = c;
            site->redis_nidle++;
            kept = 1;
        }
        apr_thread_mutex_unlock(site->redis_mutex);
    }

    if (!kept) {
        mjpki_redis_close(c);
    }
}


/* Asks the sentinels in turn (the core's discovery) for the primary, each
 * within the connect and round deadlines: 1 one named it, 0 none did. */
static int
mjpki_sentinel_discover(mjpki_site *site, request_rec *r)
{
    jpki_discovery        d;
    jpki_discovery_state  st;
    jpki_conn            *c;
    const char           *why;
    int                   i;

    mjpki_lock(site);
    jpki_discovery_begin(&d, site->sentinel, jpki_site_store(site->js));
    mjpki_unlock(site);

    while ((i = jpki_discovery_next(&d)) >= 0) {
        c = jpki_conn_open((const struct sockaddr *)
                           &site->sentinel_sa[i]->sa,
                           site->sentinel_sa[i]->salen, "redis sentinel",
                           d.where);
        if (c == NULL
            || jpki_discovery_query(&d, c, jpki_site_redis_tls(site->js))
               != JPKI_OK)
        {
            jpki_conn_free(c);
            return 0;
        }
        (void) mjpki_conn_run(c, site->redis_connect_timeout,
                              site->redis_timeout);

        why = jpki_conn_reason(c);
        if (why != NULL) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: %s", why);
        }

        mjpki_lock(site);
        st = jpki_discovery_fed(&d, jpki_conn_primary(c));
        if (st == JPKI_DISCOVERY_NEW) {
            mjpki_redis_drop_idle(site);
        }
        mjpki_unlock(site);
        jpki_conn_free(c);

        if (st == JPKI_DISCOVERY_NEW) {
            MJPKI_PRIMARY_LOG(site, r, APLOG_NOTICE, "jpki: %s", d.say);
        }
        if (st != JPKI_DISCOVERY_NEXT) {
            return 1;
        }
    }

    JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: %s", d.say);
    return 0;
}


/* One discovery at a time in a child: the threads that find no primary
 * known wait for the one asking the sentinels, then take its answer (a
 * failover would otherwise send every thread of every child to the
 * sentinels at once).  1 a primary is known, 0 not. */
static int
mjpki_discover_once(mjpki_site *site, request_rec *r)
{
    const char  *where;
    socklen_t    len;
    unsigned     gen;
    int          known;

    if (site->discover_mutex == NULL) {
        return mjpki_sentinel_discover(site, r);
    }
    apr_thread_mutex_lock(site->discover_mutex);
    mjpki_lock(site);
    known = jpki_sentinel_primary(site->sentinel, &len, &where, &gen) != NULL;
    mjpki_unlock(site);
    if (!known) {
        known = mjpki_sentinel_discover(site, r);
    }
    apr_thread_mutex_unlock(site->discover_mutex);
    return known;
}


/* A new connection to the primary the sentinels name (asked when none is
 * known), or NULL. */
static mjpki_redis_conn *
mjpki_primary_connect(mjpki_site *site, request_rec *r)
{
    const struct sockaddr    *sa;
    struct sockaddr_storage   copy;
    mjpki_redis_conn         *c;
    const char               *where;
    char                      at[64], host[48];
    socklen_t                 len = 0;
    unsigned                  gen;
    int                       asked = 0;

    for ( ;; ) {
        mjpki_lock(site);
        sa = jpki_sentinel_primary(site->sentinel, &len, &where, &gen);
        if (sa != NULL) {
            memcpy(&copy, sa, len);
            apr_cpystrn(at, where, sizeof(at));
            apr_cpystrn(host, jpki_sentinel_host(site->sentinel),
                        sizeof(host));
        }
        mjpki_unlock(site);
        if (sa != NULL) {
            break;
        }
        if (asked++ || !mjpki_discover_once(site, r)) {
            return NULL;
        }
    }

    c = calloc(1, sizeof(mjpki_redis_conn));
    if (c == NULL) {
        return NULL;
    }
    c->gen = gen;
    c->conn = jpki_conn_open((const struct sockaddr *) &copy, len, "redis",
                             at);
    if (c->conn == NULL
        || jpki_conn_store_tls(c->conn, jpki_site_redis_tls(site->js),
                               jpki_site_store(site->js), host)
           != JPKI_OK)
    {
        mjpki_redis_close(c);
        return NULL;
    }

    return c;
}


/* A new connection (TLS when asked: the server verified by the core). */
static mjpki_redis_conn *
mjpki_redis_connect(mjpki_site *site, request_rec *r)
{
    const jpki_store_spec  *st = jpki_site_store(site->js);
    mjpki_redis_conn       *c;

    if (site->sentinel != NULL) {
        return mjpki_primary_connect(site, r);
    }

    c = calloc(1, sizeof(mjpki_redis_conn));
    if (c == NULL) {
        return NULL;
    }

    c->conn = jpki_conn_open((const struct sockaddr *) &site->redis_sa->sa,
                             site->redis_sa->salen, "redis", st->addr);
    if (c->conn == NULL
        || jpki_conn_store_tls(c->conn, jpki_site_redis_tls(site->js), st,
                               NULL)
           != JPKI_OK)
    {
        mjpki_redis_close(c);
        return NULL;
    }

    return c;
}


/* c's round says the primary is gone or demoted (the core's rule):
 * forgotten once per generation, the pooled connections closed. */
static void
mjpki_forget_primary(mjpki_site *site, request_rec *r, mjpki_redis_conn *c)
{
    char  say[512];
    int   forgotten;

    mjpki_lock(site);
    forgotten = jpki_discovery_lost(site->sentinel, c->gen, c->conn,
                                    jpki_site_store(site->js)->master, say,
                                    sizeof(say));
    if (forgotten) {
        mjpki_redis_drop_idle(site);
    }
    mjpki_unlock(site);

    if (forgotten) {
        MJPKI_PRIMARY_LOG(site, r, APLOG_WARNING, "jpki: %s", say);
    }
}


/* The commands on a pooled connection, or a new one (with the AUTH/SELECT
 * prelude, written by the core; with sentinels, ROLE); 0 on a timeout. */
static int
mjpki_redis_exec(mjpki_site *site, request_rec *r, const jpki_store_cmd *cmds,
                 size_t n, jpki_store_result *res)
{
    mjpki_redis_conn *c;
    jpki_conn_next    next;
    const char       *why;
    unsigned          tries;
    int               st, timed_out;

    for (tries = 0; tries < 2; tries++) {
        c = tries == 0 ? mjpki_redis_idle_get(site, r) : NULL;
        if (c == NULL) {
            c = mjpki_redis_connect(site, r);
        }
        if (c == NULL
            || jpki_conn_redis(c->conn, jpki_site_redis_auth(site->js), cmds,
                               n, res)
               != JPKI_OK)
        {
            break;
        }

        st = mjpki_conn_run(c->conn, site->redis_connect_timeout,
                            site->redis_timeout);

        /* a failure, or a reply out of step (the results stand, the
         * connection goes) */
        why = jpki_conn_reason(c->conn);
        if (why != NULL) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: %s", why);
        }

        if (site->sentinel != NULL && jpki_conn_rediscover(c->conn)) {
            mjpki_forget_primary(site, r, c);
        }

        /* once more (the core's rules): on the primary the sentinels name
         * now (none of its commands reached a primary), or on a fresh
         * connection (the pooled one was dead: Redis restarted) */
        next = jpki_conn_after(c->conn, site->sentinel != NULL, tries);
        if (next != JPKI_CONN_OVER) {
            mjpki_redis_close(c);
            if (next == JPKI_CONN_AGAIN) {
                JPKI_LOG(site, r, APLOG_INFO, 0, "jpki: "
                         JPKI_CONN_RETRY_MSG);
            }
            continue;
        }

        if (st == JPKI_CONN_DONE) {
            mjpki_redis_idle_put(site, c);
            return 1;
        }

        timed_out = jpki_conn_timed_out(c->conn);
        mjpki_redis_close(c);
        if (timed_out) {
            return 0;
        }
        c = NULL;
        break;
    }

    if (c != NULL) {
        mjpki_redis_close(c);
    }

    jpki_store_results_error(res, n);
    return 1;
}


int
mjpki_store_exec(mjpki_site *site, request_rec *r, const jpki_store_cmd *cmds,
                size_t n, jpki_store_result *res)
{
    mjpki_zone     *zone = site->zone;
    apr_status_t   rv;

    if (n == 0 || n > JPKI_MAX_CMDS) {
        return 0;
    }

    if (!jpki_site_shm(site->js)) {
        return mjpki_redis_exec(site, r, cmds, n, res);
    }

    if (zone == NULL || zone->store == NULL) {
        jpki_store_results_error(res, n);
        return 1;
    }

    rv = apr_global_mutex_lock(zone->mutex);
    if (rv != APR_SUCCESS) {
        JPKI_LOG(site, r, APLOG_ERR, rv, "jpki: cannot lock store "
                 "zone %s", zone->name);
        jpki_store_results_error(res, n);
        return 1;
    }

    /* the batch in one locked section, as on nginx (one sweep step of
     * the table, not one per command) */
    jpki_shm_exec_batch(zone->store, cmds, n,
                        (int64_t) (apr_time_now() / 1000), res);

    apr_global_mutex_unlock(zone->mutex);

    return 1;
}


/* ------------------------------------------------------------------ */
/* Logout markers: the node's table                                    */
/* ------------------------------------------------------------------ */

#define MJPKI_POLLER_PERIOD     apr_time_from_msec(200)
#define MJPKI_POLLER_NAP        apr_time_from_msec(50)

static int64_t
mjpki_now_ms(void)
{
    return (int64_t) (apr_time_now() / 1000);
}


void
mjpki_local_markers(mjpki_site *site, jpki_txn_request *rq)
{
    if (jpki_site_shm(site->js)) {
        /* the embedded store is the node's table */
        rq->local = site->zone ? site->zone->locked : NULL;
        rq->shared_store = 0;
        return;
    }

    rq->local = site->mirror ? site->mirror->locked : NULL;
    rq->shared_store = 1;
    rq->local_since = INT64_MAX;          /* no poller: the store's markers */
    if (rq->local != NULL && site->outsync != NULL) {
        apr_thread_mutex_lock(site->outsync_mutex);
        rq->local_since = jpki_outsync_since(site->outsync, mjpki_now_ms());
        rq->store_failing = jpki_outsync_failing(site->outsync);
        apr_thread_mutex_unlock(site->outsync_mutex);
    }
}


/* One poll of the logout log, if one is due: the commands the core asks
 * for run in Redis without the mutex (gated requests read outsync's
 * since meanwhile), until it asks for none.  (The core says when Redis
 * stops and starts answering.) */
static void
mjpki_poll_logouts(mjpki_site *site)
{
    const jpki_store_cmd  *cmds;
    jpki_store_cmd         batch[JPKI_MAX_CMDS];
    jpki_store_result      res[JPKI_MAX_CMDS];
    size_t                 n;
    int                    done;

    apr_thread_mutex_lock(site->outsync_mutex);
    cmds = jpki_outsync_cmds(site->outsync, mjpki_now_ms(), &n);
    while (cmds != NULL && n > 0 && n <= JPKI_MAX_CMDS
           && !apr_atomic_read32(&site->poller_stop))
    {
        memcpy(batch, cmds, n * sizeof(jpki_store_cmd));
        apr_thread_mutex_unlock(site->outsync_mutex);
        done = mjpki_store_exec(site, NULL, batch, n, res);
        apr_thread_mutex_lock(site->outsync_mutex);
        cmds = jpki_outsync_feed(site->outsync, done ? res : NULL, n,
                                 mjpki_now_ms(), &n);
    }
    apr_thread_mutex_unlock(site->outsync_mutex);
}


static void *APR_THREAD_FUNC
mjpki_poller_main(apr_thread_t *thd, void *data)
{
    mjpki_site   *site = data;
    apr_time_t   next = 0;

    while (!apr_atomic_read32(&site->poller_stop)) {
        if (apr_time_now() >= next) {
            mjpki_poll_logouts(site);
            next = apr_time_now() + MJPKI_POLLER_PERIOD;
        }
        apr_sleep(MJPKI_POLLER_NAP);         /* a stop is seen soon */
    }

    /* a return, not apr_thread_exit(): pthread_exit() would unwind these
     * frames without unpoisoning them (an ASan report at thread exit);
     * the thread's pool goes with the child's */
    return NULL;
}


/* Before the child's pool goes (a pre-cleanup: the thread's pool is a
 * subpool of it): the poller stops, then its state is freed. */
static apr_status_t
mjpki_poller_cleanup(void *data)
{
    mjpki_site     *site = data;
    apr_status_t   rv;

    apr_atomic_set32(&site->poller_stop, 1);
    if (site->poller != NULL) {
        apr_thread_join(&rv, site->poller);
        site->poller = NULL;
    }
    jpki_outsync_free(site->outsync);
    site->outsync = NULL;

    return APR_SUCCESS;
}


/* In a child: the poller of a Redis site's logout log, a thread that
 * receives no signals (the MPM's handlers run in its own threads). */
void
mjpki_poller_start(mjpki_site *site, apr_pool_t *pchild, server_rec *s)
{
    sigset_t      all, old;
    apr_status_t  rv;

    if (site->mirror == NULL || site->mirror->locked == NULL) {
        return;
    }

    rv = apr_thread_mutex_create(&site->outsync_mutex,
                                 APR_THREAD_MUTEX_DEFAULT, pchild);
    site->outsync = rv == APR_SUCCESS
                    ? jpki_outsync_new(site->ctx, site->mirror->locked)
                    : NULL;
    if (site->outsync == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: no poller of the "
                     "logout log: sessions read logouts in redis");
        return;
    }

    apr_atomic_set32(&site->poller_stop, 0);
    apr_pool_pre_cleanup_register(pchild, site, mjpki_poller_cleanup);

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rv = apr_thread_create(&site->poller, NULL, mjpki_poller_main, site,
                           pchild);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rv != APR_SUCCESS) {
        site->poller = NULL;
        jpki_outsync_free(site->outsync);
        site->outsync = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: cannot start the "
                     "poller of the logout log: sessions read logouts in "
                     "redis");
    }
}

