/*
 * mod_auth_jpki_redis.c - the store's commands run: in the embedded store
 * (the core's table, mod_auth_jpki_store.c) or on Redis through APR sockets
 * (TLS by OpenSSL on the descriptor when asked, the server verified),
 * a per-process pool of connections, one deadline per round trip; what is
 * sent, how the replies are counted, when a connection is kept and when a
 * round is tried again on a fresh connection (a pooled one dead: Redis
 * restarted) are the core's (common/redis.c); and each child's logout-log
 * poller thread (common/outsync.c).  Every failure is reported to the caller, which
 * feeds it to the core as a failure (fail-closed).
 */

#include "mod_auth_jpki.h"
#include "redis.h"

#include "apr_atomic.h"
#include "apr_poll.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"

#include <openssl/err.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);

/* Redis round trip outcomes */
#define MJPKI_RUN_OK       0
#define MJPKI_RUN_TIMEOUT  1
#define MJPKI_RUN_ERROR    2
#define MJPKI_RUN_CLOSED   3    /* the connection failed (not a timeout) */


struct mjpki_redis_conn {
    mjpki_redis_conn          *next;
    apr_pool_t                *pool;
    apr_socket_t              *sock;
    SSL                       *ssl;           /* over TLS */
    int                        fd;
    jpki_redis_round          *round;         /* the core's: the replies */
};


/* ------------------------------------------------------------------ */
/* Sockets with a deadline                                             */
/* ------------------------------------------------------------------ */

apr_status_t
mjpki_set_deadline(apr_socket_t *sock, apr_time_t deadline)
{
    apr_interval_time_t  left = deadline - apr_time_now();

    if (left <= 0) {
        return APR_TIMEUP;
    }
    if (left < 1000) {
        left = 1000;
    }

    return apr_socket_timeout_set(sock, left);
}


apr_status_t
mjpki_send_all(apr_socket_t *sock, const char *buf, apr_size_t len,
              apr_time_t deadline)
{
    apr_size_t    n;
    apr_status_t  rv;

    while (len > 0) {
        rv = mjpki_set_deadline(sock, deadline);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        n = len;
        rv = apr_socket_send(sock, buf, &n);
        if (rv != APR_SUCCESS && n == 0) {
            return rv;
        }
        buf += n;
        len -= n;
    }

    return APR_SUCCESS;
}


apr_status_t
mjpki_connect(apr_socket_t **sock, apr_sockaddr_t *sa, apr_time_t deadline,
             apr_pool_t *pool)
{
    apr_status_t  rv;

    rv = apr_socket_create(sock, sa->family, SOCK_STREAM,
#if APR_HAVE_SOCKADDR_UN
                           sa->family == APR_UNIX ? 0 :
#endif
                           APR_PROTO_TCP, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }

#if APR_HAVE_SOCKADDR_UN
    if (sa->family != APR_UNIX)
#endif
    {
        apr_socket_opt_set(*sock, APR_TCP_NODELAY, 1);
    }

    rv = mjpki_set_deadline(*sock, deadline);
    if (rv == APR_SUCCESS) {
        rv = apr_socket_connect(*sock, sa);
    }
    if (rv != APR_SUCCESS) {
        apr_socket_close(*sock);
        *sock = NULL;
    }

    return rv;
}


/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

static void
mjpki_redis_close(mjpki_redis_conn *c)
{
    if (c->ssl) {
        (void) SSL_shutdown(c->ssl);        /* close_notify, no wait */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->sock) {
        apr_socket_close(c->sock);
    }
    jpki_redis_round_free(c->round);
    apr_pool_destroy(c->pool);
}


/* ---- TLS: OpenSSL on the socket's descriptor (non-blocking: APR sets
 * O_NONBLOCK on a socket with a timeout), each wait a poll() bounded by the
 * deadline */

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


/* After SSL_get_error: wait for what OpenSSL wants, or fail. */
static apr_status_t
mjpki_tls_want(mjpki_redis_conn *c, int ret, apr_time_t deadline)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return mjpki_wait_fd(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return mjpki_wait_fd(c->fd, POLLOUT, deadline);
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return APR_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return ret == 0 ? APR_EOF : APR_ECONNRESET;
    default:
        ERR_clear_error();
        return APR_EGENERAL;
    }
}


/* TLS on a new connection; the server is verified once the handshake is
 * done (chain to tls_ca=, name tls_name=), so a refusal has its reason. */
static apr_status_t
mjpki_tls_start(mjpki_site *site, request_rec *r, mjpki_redis_conn *c,
                apr_time_t deadline)
{
    apr_os_sock_t  fd;
    apr_status_t   rv;
    const char    *why;
    char           buf[512];
    int            ret;

    if (apr_os_sock_get(&fd, c->sock) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    c->fd = fd;

    c->ssl = SSL_new(site->redis_ssl);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
        ERR_clear_error();
        return APR_ENOMEM;
    }

    /* SNI for a DNS name, not for an IP address */
    jpki_tls_set_server_name(c->ssl, site->redis_tls_name);

    SSL_set_connect_state(c->ssl);

    for ( ;; ) {
        ERR_clear_error();
        ret = SSL_do_handshake(c->ssl);
        if (ret == 1) {
            break;
        }
        rv = mjpki_tls_want(c, ret, deadline);
        if (rv != APR_SUCCESS) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis TLS handshake "
                     "failed%s", APR_STATUS_IS_TIMEUP(rv) ? " (timed out)"
                                                          : "");
            return rv;
        }
    }

    /* the server certificate must chain to tls_ca= and name the host:
     * DNS name or IP address */
    why = jpki_tls_peer_check(c->ssl, site->redis_tls_name, buf, sizeof(buf));
    if (why != NULL) {
        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis %s", why);
        return APR_EGENERAL;
    }

    return APR_SUCCESS;
}


static apr_status_t
mjpki_conn_send(mjpki_redis_conn *c, const char *buf, apr_size_t len,
                apr_time_t deadline)
{
    apr_status_t  rv;
    int           n;

    if (c->ssl == NULL) {
        return mjpki_send_all(c->sock, buf, len, deadline);
    }

    while (len > 0) {
        ERR_clear_error();
        n = SSL_write(c->ssl, buf, (int) (len > 65536 ? 65536 : len));
        if (n > 0) {
            buf += n;
            len -= n;
            continue;
        }
        rv = mjpki_tls_want(c, n, deadline);
        if (rv != APR_SUCCESS) {
            return rv == APR_EOF ? APR_ECONNRESET : rv;
        }
    }

    return APR_SUCCESS;
}


static apr_status_t
mjpki_conn_recv(mjpki_redis_conn *c, char *buf, apr_size_t *len,
                apr_time_t deadline)
{
    apr_status_t  rv;
    int           n;

    if (c->ssl == NULL) {
        rv = mjpki_set_deadline(c->sock, deadline);
        if (rv != APR_SUCCESS) {
            *len = 0;
            return rv;
        }
        return apr_socket_recv(c->sock, buf, len);
    }

    for ( ;; ) {
        ERR_clear_error();
        n = SSL_read(c->ssl, buf, (int) *len);
        if (n > 0) {
            *len = n;
            return APR_SUCCESS;
        }
        rv = mjpki_tls_want(c, n, deadline);
        if (rv != APR_SUCCESS) {
            *len = 0;
            return rv;
        }
    }
}


apr_status_t
mjpki_redis_pool_cleanup(void *data)
{
    mjpki_site        *site = data;
    mjpki_redis_conn *c, *next;

    for (c = site->redis_idle; c; c = next) {
        next = c->next;
        mjpki_redis_close(c);
    }
    site->redis_idle = NULL;
    site->redis_nidle = 0;

    return APR_SUCCESS;
}


static mjpki_redis_conn *
mjpki_redis_idle_get(mjpki_site *site, request_rec *r)
{
    mjpki_redis_conn *c;
    int               eof;

    for ( ;; ) {
        if (site->redis_mutex) {
            apr_thread_mutex_lock(site->redis_mutex);
        }
        c = site->redis_idle;
        if (c) {
            site->redis_idle = c->next;
            site->redis_nidle--;
        }
        if (site->redis_mutex) {
            apr_thread_mutex_unlock(site->redis_mutex);
        }
        if (c == NULL) {
            return NULL;
        }
        /* an idle connection has nothing to read: EOF (Redis closed it or
         * restarted) drops it at once */
        eof = 0;
        if (apr_socket_atreadeof(c->sock, &eof) == APR_SUCCESS && !eof) {
            c->next = NULL;
            return c;
        }
        JPKI_LOG(site, r, APLOG_INFO, 0, "jpki: pooled redis "
                 "connection closed by the server: dropped");
        mjpki_redis_close(c);
    }
}


static void
mjpki_redis_idle_put(mjpki_site *site, mjpki_redis_conn *c)
{
    int  kept = 0;

    if (site->redis_mutex) {
        apr_thread_mutex_lock(site->redis_mutex);
        if (site->redis_nidle < site->redis_keepalive) {
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


static mjpki_redis_conn *
mjpki_redis_connect(mjpki_site *site, request_rec *r)
{
    mjpki_redis_conn *c;
    apr_pool_t       *pool;
    apr_time_t        deadline;
    apr_status_t      rv;

    /* a pool of its own: the connection outlives the request */
    rv = apr_pool_create_unmanaged_ex(&pool, NULL, NULL);
    if (rv != APR_SUCCESS) {
        return NULL;
    }

    c = apr_pcalloc(pool, sizeof(mjpki_redis_conn));
    c->pool = pool;
    c->round = jpki_redis_round_new();
    if (c->round == NULL) {
        apr_pool_destroy(pool);
        return NULL;
    }

    deadline = apr_time_now() + site->redis_connect_timeout;

    rv = mjpki_connect(&c->sock, site->redis_sa, deadline, pool);
    if (rv != APR_SUCCESS) {
        JPKI_LOG(site, r, APLOG_ERR, rv, "jpki: cannot connect to "
                 "redis %s%s", site->redis_addr,
                 APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        mjpki_redis_close(c);
        return NULL;
    }

    if (site->redis_ssl != NULL
        && mjpki_tls_start(site, r, c, deadline) != APR_SUCCESS)
    {
        mjpki_redis_close(c);
        return NULL;
    }

    return c;
}


/* One round trip on c: the (prelude and) pipelined commands, then the
 * replies read and fed to the round until it is done, all within one
 * deadline. */
static int
mjpki_redis_run(mjpki_site *site, request_rec *r, mjpki_redis_conn *c,
                int pooled, const jpki_store_cmd *cmds, size_t n,
                jpki_store_result *res)
{
    jpki_redis_auth    auth;
    jpki_round_state   st;
    apr_time_t         deadline;
    apr_status_t       rv;
    apr_size_t         len;
    const char        *out, *why;
    char               buf[4096];

    auth.user = site->redis_user;
    auth.password = site->redis_password;
    auth.db = site->redis_db > 0 ? (unsigned) site->redis_db : 0;

    if (jpki_redis_round_start(c->round, pooled ? NULL : &auth, cmds, n, res)
        != JPKI_OK)
    {
        return MJPKI_RUN_ERROR;
    }

    deadline = apr_time_now() + site->redis_timeout;
    out = jpki_redis_round_out(c->round, &len);
    rv = mjpki_conn_send(c, out, len, deadline);
    if (APR_STATUS_IS_TIMEUP(rv)) {
        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis send timed out");
        return MJPKI_RUN_TIMEOUT;
    }
    if (rv != APR_SUCCESS) {
        return MJPKI_RUN_CLOSED;
    }

    do {
        len = sizeof(buf);
        rv = mjpki_conn_recv(c, buf, &len, deadline);

        if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis command "
                     "timed out");
            return MJPKI_RUN_TIMEOUT;
        }
        if (len == 0 || (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv))) {
            (void) jpki_redis_round_eof(c->round);
            return MJPKI_RUN_CLOSED;
        }

        st = jpki_redis_round_feed(c->round, buf, len);
    } while (st == JPKI_ROUND_MORE);

    /* a failure, or a reply out of step (the results stand, the
     * connection goes) */
    why = jpki_redis_round_reason(c->round);
    if (why != NULL) {
        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis %s", why);
    }

    return st == JPKI_ROUND_DONE ? MJPKI_RUN_OK : MJPKI_RUN_ERROR;
}


/* The commands on a pooled connection, or a new one; 0 on a timeout. */
static int
mjpki_redis_exec(mjpki_site *site, request_rec *r, const jpki_store_cmd *cmds,
                 size_t n, jpki_store_result *res)
{
    mjpki_redis_conn *c;
    int               rc, pooled;
    unsigned          tries;

    for (tries = 0; tries < 2; tries++) {
        c = tries == 0 ? mjpki_redis_idle_get(site, r) : NULL;
        pooled = c != NULL;
        if (c == NULL) {
            c = mjpki_redis_connect(site, r);
            if (c == NULL) {
                break;
            }
        }

        rc = mjpki_redis_run(site, r, c, pooled, cmds, n, res);

        if (rc == MJPKI_RUN_OK) {
            if (jpki_redis_round_keep(c->round)) {
                mjpki_redis_idle_put(site, c);
            } else {
                mjpki_redis_close(c);
            }
            return 1;
        }

        if (rc == MJPKI_RUN_CLOSED
            && jpki_redis_round_retry(c->round, pooled, tries))
        {
            /* the pooled connection was dead (Redis restarted): nothing
             * came back, one more try on a fresh connection */
            mjpki_redis_close(c);
            JPKI_LOG(site, r, APLOG_INFO, 0, "jpki: pooled redis "
                     "connection lost, retrying on a new one");
            continue;
        }

        mjpki_redis_close(c);

        if (rc == MJPKI_RUN_TIMEOUT) {
            return 0;
        }
        if (rc == MJPKI_RUN_CLOSED) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis closed "
                     "the connection");
        }
        break;
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
    int64_t        now_ms;
    size_t         i;

    if (n == 0 || n > JPKI_MAX_CMDS) {
        return 0;
    }

    if (site->store == JPKI_STORE_REDIS) {
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

    now_ms = (int64_t) (apr_time_now() / 1000);
    for (i = 0; i < n; i++) {
        jpki_shm_exec(zone->store, &cmds[i], now_ms, &res[i]);
    }

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
    if (site->store != JPKI_STORE_REDIS) {
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
        apr_thread_mutex_unlock(site->outsync_mutex);
    }
}


/* One poll of the logout log, if one is due: the commands the core asks
 * for run in Redis without the mutex (gated requests read outsync's
 * since meanwhile), until it asks for none. */
static void
mjpki_poll_logouts(mjpki_site *site, int *failing)
{
    const jpki_store_cmd  *cmds;
    jpki_store_cmd         batch[JPKI_MAX_CMDS];
    jpki_store_result      res[JPKI_MAX_CMDS];
    size_t                 n, i;
    int                    done, failed = 0, polled = 0;

    apr_thread_mutex_lock(site->outsync_mutex);
    cmds = jpki_outsync_cmds(site->outsync, mjpki_now_ms(), &n);
    while (cmds != NULL && n > 0 && n <= JPKI_MAX_CMDS
           && !apr_atomic_read32(&site->poller_stop))
    {
        memcpy(batch, cmds, n * sizeof(jpki_store_cmd));
        apr_thread_mutex_unlock(site->outsync_mutex);
        done = mjpki_store_exec(site, NULL, batch, n, res);
        for (i = 0; i < n && done && !failed; i++) {
            failed = res[i].type == JPKI_STORE_R_ERROR
                     || res[i].type == JPKI_STORE_R_FULL;
        }
        failed |= !done;
        polled = 1;
        apr_thread_mutex_lock(site->outsync_mutex);
        cmds = jpki_outsync_feed(site->outsync, done ? res : NULL, n,
                                 mjpki_now_ms(), &n);
    }
    apr_thread_mutex_unlock(site->outsync_mutex);

    /* once per outage, not at every poll */
    if (polled && failed != *failing) {
        *failing = failed;
        if (failed) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, site->server, "jpki: "
                         "logout log: redis %s does not answer: sessions are "
                         "checked in redis until it does (LogLevel "
                         "auth_jpki:debug says why)", site->redis_addr);
        } else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, site->server, "jpki: "
                         "logout log: redis %s answers again",
                         site->redis_addr);
        }
    }
}


static void *APR_THREAD_FUNC
mjpki_poller_main(apr_thread_t *thd, void *data)
{
    mjpki_site   *site = data;
    apr_time_t   next = 0;
    int          failing = 0;

    while (!apr_atomic_read32(&site->poller_stop)) {
        if (apr_time_now() >= next) {
            mjpki_poll_logouts(site, &failing);
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

