/*
 * mod_auth_jpki_io.c - the module's I/O, blocking and bounded:
 *  - the embedded store: the core's table in an APR shared memory segment
 *    with a global mutex, kept in the process pool so that it survives
 *    restarts of the same size;
 *  - Redis: APR sockets (TLS by OpenSSL on the descriptor when asked, the
 *    server verified) speaking RESP (encoded and parsed by the core), a
 *    per-process pool of connections, AUTH/SELECT on new ones, one deadline
 *    per round trip, one retry on a fresh connection when a pooled one
 *    turns out dead (Redis restarted);
 *  - OCSP: HTTP/1.0 POST with one deadline for connect and whole answer;
 *  - CRL indexes and the mapping file: loaded in the parent (the children
 *    share the pages), re-read by each child when a file changes (checked
 *    at most once a second), with the nginx module's rules for CRLs; with
 *    JPKICRLZone, CRLs are parsed once, by one process, into an APR shared
 *    memory segment every child reads (kept across restarts);
 *  - the health endpoint's JSON (CRLs of this process, store reachable).
 * Every failure is reported to the caller, which feeds it to the core as a
 * failure (fail-closed).
 */

#include "mod_auth_jpki.h"

#include "ap_mpm.h"
#include "util_mutex.h"
#include "apr_atomic.h"
#include "apr_poll.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"
#include "apr_hash.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

APLOG_USE_MODULE(auth_jpki);

#define JPKI_MAP_FILE_MAX     (64 * 1024 * 1024)

/* Redis round trip outcomes */
#define JPKI_RUN_OK       0
#define JPKI_RUN_TIMEOUT  1
#define JPKI_RUN_ERROR    2
#define JPKI_RUN_STALE    3    /* connection dead before any reply byte */


struct jpki_redis_conn {
    jpki_redis_conn           *next;
    apr_pool_t                *pool;
    apr_socket_t              *sock;
    SSL                       *ssl;           /* over TLS */
    int                        fd;
    int                        ready;         /* AUTH/SELECT done */
};

typedef struct {
    char                       cert_id[JPKI_CERT_ID_HEX_LEN];
    char                       account[JPKI_ACCOUNT_MAX + 1];
    size_t                     len;
} jpki_map_entry;

struct jpki_map {
    jpki_map_entry            *e;
    size_t                     n;
};


static jpki_srv_conf *
jpki_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &auth_jpki_module);
}


/* A message about the request r; without one (the logout poller, which
 * says itself when the store stops and starts answering), a debug message
 * about the site's server. */
#define JPKI_LOG(site, r, level, rv, ...)                                  \
    do {                                                                   \
        if ((r) != NULL) {                                                 \
            ap_log_rerror(APLOG_MARK, level, rv, r, __VA_ARGS__);          \
        } else {                                                           \
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, (site)->server,      \
                         __VA_ARGS__);                                     \
        }                                                                  \
    } while (0)


/* ------------------------------------------------------------------ */
/* Embedded store                                                      */
/* ------------------------------------------------------------------ */

/* The shared table called name (what: "store zone", "logout mirror"),
 * found again in the process pool at a restart and kept when its size did
 * not change; mutex_id names its mutex (a lock file name). */
static jpki_zone *
jpki_zone_setup(apr_pool_t *ptemp, server_rec *s, const char *name,
                const char *mutex_id, apr_size_t size, const char *what)
{
    apr_pool_t   *pp = s->process->pool;
    jpki_zone    *zone = NULL;
    const char   *key;
    apr_status_t  rv;
    int           gen = ap_state_query(AP_SQ_CONFIG_GEN);

    key = apr_pstrcat(ptemp, "auth_jpki-zone-", name, NULL);
    apr_pool_userdata_get((void **) &zone, key, pp);

    if (zone != NULL && zone->generation == gen && zone->size != size) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: JPKIStore shm "
                     "zone=%s is used with two sizes (give the stores "
                     "different zone= names)", name);
        return NULL;
    }

    if (zone != NULL && zone->size == size && zone->store) {
        zone->generation = gen;
        return zone;
    }

    if (zone == NULL) {
        zone = apr_pcalloc(pp, sizeof(jpki_zone));
        zone->name = apr_pstrdup(pp, name);
        rv = ap_global_mutex_create(&zone->mutex, &zone->lockfile,
                                    JPKI_MUTEX_TYPE, mutex_id, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                         "the mutex of %s %s", what, zone->name);
            return NULL;
        }
        apr_pool_userdata_set(zone, apr_pstrdup(pp, key),
                              apr_pool_cleanup_null, pp);
    } else {
        /* another size: a new table (the children of the previous
         * generation keep their own mapping of the old one) */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "jpki: %s %s "
                     "resized: its entries are lost", what, zone->name);
        if (zone->shm) {
            apr_shm_destroy(zone->shm);
            zone->shm = NULL;
        }
        zone->store = NULL;
    }

    zone->size = size;
    rv = apr_shm_create(&zone->shm, zone->size, NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of %s %s (%" APR_SIZE_T_FMT
                     " bytes)", what, zone->name, zone->size);
        return NULL;
    }

    zone->mem = apr_shm_baseaddr_get(zone->shm);
    zone->memsize = apr_shm_size_get(zone->shm) & ~(apr_size_t) 7;

    if (jpki_shm_init(zone->mem, zone->memsize, 0) != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: %s %s is "
                     "too small", what, zone->name);
        return NULL;
    }

    zone->handle = apr_palloc(pp, jpki_shm_handle_size());
    /* no lock in the handle: a batch of commands runs under the zone's
     * global mutex (see mjpki_store_exec); each child attaches another
     * handle that takes it (jpki_zone_child_init) */
    zone->store = jpki_shm_attach(zone->handle, zone->mem, zone->memsize,
                                  NULL);
    if (zone->store == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: cannot attach to "
                     "%s %s", what, zone->name);
        return NULL;
    }

    zone->generation = gen;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: %s %s: %"
                 APR_SIZE_T_FMT " entries", what, zone->name,
                 jpki_shm_capacity(zone->store));

    return zone;
}


static void
jpki_zone_lock(void *ud)
{
    jpki_zone     *zone = ud;
    apr_status_t   rv;

    rv = apr_global_mutex_lock(zone->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, NULL, "jpki: cannot lock "
                     "the mutex of %s", zone->name);
    }
}


static void
jpki_zone_unlock(void *ud)
{
    jpki_zone  *zone = ud;

    apr_global_mutex_unlock(zone->mutex);
}


/* In a child, once per zone: its mutex, and a handle that takes it (the
 * core reads and writes there itself, outside mjpki_store_exec). */
static void
jpki_zone_child_init(jpki_zone *zone, apr_pool_t *pchild, server_rec *s,
                     const char *what)
{
    jpki_shm_lock  lock;
    apr_status_t   rv;

    if (zone == NULL || zone->child_ready) {
        return;
    }
    zone->child_ready = 1;

    rv = apr_global_mutex_child_init(&zone->mutex, zone->lockfile, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: cannot attach "
                     "the mutex of %s %s", what, zone->name);
        return;
    }

    lock.lock = jpki_zone_lock;
    lock.unlock = jpki_zone_unlock;
    lock.ud = zone;
    zone->locked = jpki_shm_attach(apr_palloc(pchild, jpki_shm_handle_size()),
                                   zone->mem, zone->memsize, &lock);
}


static void
jpki_results_error(jpki_store_result *res, size_t n)
{
    size_t  i;

    memset(res, 0, n * sizeof(jpki_store_result));
    for (i = 0; i < n; i++) {
        res[i].type = JPKI_STORE_R_ERROR;
    }
}


/* ------------------------------------------------------------------ */
/* Sockets with a deadline                                             */
/* ------------------------------------------------------------------ */

static apr_status_t
jpki_set_deadline(apr_socket_t *sock, apr_time_t deadline)
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


static apr_status_t
jpki_send_all(apr_socket_t *sock, const char *buf, apr_size_t len,
              apr_time_t deadline)
{
    apr_size_t    n;
    apr_status_t  rv;

    while (len > 0) {
        rv = jpki_set_deadline(sock, deadline);
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


static apr_status_t
jpki_connect(apr_socket_t **sock, apr_sockaddr_t *sa, apr_time_t deadline,
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

    rv = jpki_set_deadline(*sock, deadline);
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
jpki_redis_close(jpki_redis_conn *c)
{
    if (c->ssl) {
        (void) SSL_shutdown(c->ssl);        /* close_notify, no wait */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->sock) {
        apr_socket_close(c->sock);
    }
    apr_pool_destroy(c->pool);
}


/* ---- TLS: OpenSSL on the socket's descriptor (non-blocking: APR sets
 * O_NONBLOCK on a socket with a timeout), each wait a poll() bounded by the
 * deadline */

static apr_status_t
jpki_wait_fd(int fd, short events, apr_time_t deadline)
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
jpki_tls_want(jpki_redis_conn *c, int ret, apr_time_t deadline)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return jpki_wait_fd(c->fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return jpki_wait_fd(c->fd, POLLOUT, deadline);
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


/* The server certificate must name the host: DNS name or IP address. */
static int
jpki_tls_name_ok(SSL *ssl, const char *name)
{
    X509  *cert;
    int    ok;

    cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) {
        return 0;
    }

    ok = X509_check_ip_asc(cert, name, 0);
    if (ok == -2) {                               /* not an IP address */
        ok = X509_check_host(cert, name, strlen(name), 0, NULL);
    }

    X509_free(cert);

    return ok == 1;
}


/* TLS on a new connection; the server is verified once the handshake is
 * done (chain to tls_ca=, name tls_name=), so a refusal has its reason. */
static apr_status_t
jpki_tls_start(jpki_site *site, request_rec *r, jpki_redis_conn *c,
               apr_time_t deadline)
{
    apr_os_sock_t  fd;
    apr_status_t   rv;
    long           v;
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
    if (strchr(site->redis_tls_name, ':') == NULL
        && strspn(site->redis_tls_name, "0123456789.")
           != strlen(site->redis_tls_name))
    {
        (void) SSL_set_tlsext_host_name(c->ssl, site->redis_tls_name);
    }

    SSL_set_connect_state(c->ssl);

    for ( ;; ) {
        ERR_clear_error();
        ret = SSL_do_handshake(c->ssl);
        if (ret == 1) {
            break;
        }
        rv = jpki_tls_want(c, ret, deadline);
        if (rv != APR_SUCCESS) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis TLS handshake "
                     "failed%s", APR_STATUS_IS_TIMEUP(rv) ? " (timed out)"
                                                          : "");
            return rv;
        }
    }

    v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis server "
                 "certificate refused: %s",
                 X509_verify_cert_error_string(v));
        return APR_EGENERAL;
    }

    if (!jpki_tls_name_ok(c->ssl, site->redis_tls_name)) {
        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis server "
                 "certificate does not name \"%s\"",
                 site->redis_tls_name);
        return APR_EGENERAL;
    }

    return APR_SUCCESS;
}


static apr_status_t
jpki_conn_send(jpki_redis_conn *c, const char *buf, apr_size_t len,
               apr_time_t deadline)
{
    apr_status_t  rv;
    int           n;

    if (c->ssl == NULL) {
        return jpki_send_all(c->sock, buf, len, deadline);
    }

    while (len > 0) {
        ERR_clear_error();
        n = SSL_write(c->ssl, buf, (int) (len > 65536 ? 65536 : len));
        if (n > 0) {
            buf += n;
            len -= n;
            continue;
        }
        rv = jpki_tls_want(c, n, deadline);
        if (rv != APR_SUCCESS) {
            return rv == APR_EOF ? APR_ECONNRESET : rv;
        }
    }

    return APR_SUCCESS;
}


static apr_status_t
jpki_conn_recv(jpki_redis_conn *c, char *buf, apr_size_t *len,
               apr_time_t deadline)
{
    apr_status_t  rv;
    int           n;

    if (c->ssl == NULL) {
        rv = jpki_set_deadline(c->sock, deadline);
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
        rv = jpki_tls_want(c, n, deadline);
        if (rv != APR_SUCCESS) {
            *len = 0;
            return rv;
        }
    }
}


static apr_status_t
jpki_redis_pool_cleanup(void *data)
{
    jpki_site        *site = data;
    jpki_redis_conn  *c, *next;

    for (c = site->redis_idle; c; c = next) {
        next = c->next;
        jpki_redis_close(c);
    }
    site->redis_idle = NULL;
    site->redis_nidle = 0;

    return APR_SUCCESS;
}


static jpki_redis_conn *
jpki_redis_idle_get(jpki_site *site, request_rec *r)
{
    jpki_redis_conn  *c;
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
        jpki_redis_close(c);
    }
}


static void
jpki_redis_idle_put(jpki_site *site, jpki_redis_conn *c)
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
        jpki_redis_close(c);
    }
}


static jpki_redis_conn *
jpki_redis_connect(jpki_site *site, request_rec *r)
{
    jpki_redis_conn  *c;
    apr_pool_t       *pool;
    apr_time_t        deadline;
    apr_status_t      rv;

    /* a pool of its own: the connection outlives the request */
    rv = apr_pool_create_unmanaged_ex(&pool, NULL, NULL);
    if (rv != APR_SUCCESS) {
        return NULL;
    }

    c = apr_pcalloc(pool, sizeof(jpki_redis_conn));
    c->pool = pool;

    deadline = apr_time_now() + site->redis_connect_timeout;

    rv = jpki_connect(&c->sock, site->redis_sa, deadline, pool);
    if (rv != APR_SUCCESS) {
        JPKI_LOG(site, r, APLOG_ERR, rv, "jpki: cannot connect to "
                 "redis %s%s", site->redis_addr,
                 APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        apr_pool_destroy(pool);
        return NULL;
    }

    if (site->redis_ssl != NULL
        && jpki_tls_start(site, r, c, deadline) != APR_SUCCESS)
    {
        jpki_redis_close(c);
        return NULL;
    }

    return c;
}


static char *
jpki_resp_arg(char *p, const char *s)
{
    size_t  n = strlen(s);

    p += sprintf(p, "$%lu\r\n", (unsigned long) n);
    memcpy(p, s, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';

    return p;
}


/* AUTH [user] password and SELECT db, sent in front of the first commands
 * of a new connection. */
static apr_size_t
jpki_redis_prelude(jpki_site *site, char *p, int *count)
{
    char  *start = p, db[16];

    *count = 0;

    if (site->redis_password) {
        p += sprintf(p, "*%d\r\n", site->redis_user ? 3 : 2);
        p = jpki_resp_arg(p, "AUTH");
        if (site->redis_user) {
            p = jpki_resp_arg(p, site->redis_user);
        }
        p = jpki_resp_arg(p, site->redis_password);
        (*count)++;
    }

    if (site->redis_db > 0) {
        apr_snprintf(db, sizeof(db), "%d", site->redis_db);
        p += sprintf(p, "*2\r\n");
        p = jpki_resp_arg(p, "SELECT");
        p = jpki_resp_arg(p, db);
        (*count)++;
    }

    return p - start;
}


/* One round trip on c: the (prelude and) pipelined commands, one reply per
 * command, all within the deadline. */
static int
jpki_redis_run(jpki_site *site, request_rec *r, jpki_redis_conn *c,
               const char *cmdbuf, apr_size_t cmdlen,
               const jpki_store_cmd *cmds, size_t n, jpki_store_result *res)
{
    jpki_resp_reader  *rd;
    jpki_store_cmd     ok_cmd, extra_cmd;
    jpki_store_result  pr;
    apr_time_t         deadline;
    apr_status_t       rv;
    apr_size_t         len, got = 0;
    char              *out, buf[4096];
    int                prelude = 0, rc, next;
    size_t             done = 0;

    deadline = apr_time_now() + site->redis_timeout;

    out = malloc(cmdlen + 1024
                 + (site->redis_user ? strlen(site->redis_user) : 0)
                 + (site->redis_password ? strlen(site->redis_password) : 0));
    if (out == NULL) {
        return JPKI_RUN_ERROR;
    }
    len = 0;
    if (!c->ready) {
        len = jpki_redis_prelude(site, out, &prelude);
    }
    memcpy(out + len, cmdbuf, cmdlen);
    len += cmdlen;

    rv = jpki_conn_send(c, out, len, deadline);
    free(out);
    if (rv != APR_SUCCESS) {
        if (APR_STATUS_IS_TIMEUP(rv)) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis send "
                     "timed out");
            return JPKI_RUN_TIMEOUT;
        }
        return JPKI_RUN_STALE;
    }

    rd = jpki_resp_reader_new();
    if (rd == NULL) {
        return JPKI_RUN_ERROR;
    }

    memset(&ok_cmd, 0, sizeof(ok_cmd));
    ok_cmd.op = JPKI_STORE_SET;
    rc = JPKI_RUN_ERROR;

    for ( ;; ) {
        /* take every complete reply */
        for ( ;; ) {
            if (prelude > 0) {
                next = jpki_resp_reader_next(rd, &ok_cmd, &pr);
                if (next == 1) {
                    if (pr.type != JPKI_STORE_R_INT) {
                        JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: "
                                 "redis AUTH or SELECT refused");
                        goto done;
                    }
                    prelude--;
                    continue;
                }
            } else if (done < n) {
                next = jpki_resp_reader_next(rd, &cmds[done], &res[done]);
                if (next == 1) {
                    done++;
                    continue;
                }
            } else {
                /* all replies in; anything more is out of step */
                extra_cmd = ok_cmd;
                next = jpki_resp_reader_next(rd, &extra_cmd, &pr);
                if (next != 0) {
                    /* the caller closes a connection without a socket */
                    JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis "
                             "sent more replies than asked");
                    apr_socket_close(c->sock);
                    c->sock = NULL;
                }
                c->ready = 1;
                rc = JPKI_RUN_OK;
                goto done;
            }
            if (next < 0) {
                JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis "
                         "protocol error");
                goto done;
            }
            break;
        }

        len = sizeof(buf);
        rv = jpki_conn_recv(c, buf, &len, deadline);

        if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis command "
                     "timed out");
            rc = JPKI_RUN_TIMEOUT;
            goto done;
        }

        if (len == 0 || (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv))) {
            if (got == 0) {
                rc = JPKI_RUN_STALE;
            } else {
                JPKI_LOG(site, r, APLOG_ERR, rv, "jpki: redis "
                         "closed the connection");
            }
            goto done;
        }

        got += len;
        if (jpki_resp_reader_feed(rd, buf, len) != JPKI_OK) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis reply "
                     "too large");
            goto done;
        }
    }

done:
    jpki_resp_reader_free(rd);
    return rc;
}


/* The commands in buf (RESP) on a pooled connection, or a new one. */
static int
jpki_redis_send_cmds(jpki_site *site, request_rec *r, const char *buf,
                     size_t total, const jpki_store_cmd *cmds, size_t n,
                     jpki_store_result *res)
{
    jpki_redis_conn  *c;
    int               rc, pooled, attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        c = attempt == 0 ? jpki_redis_idle_get(site, r) : NULL;
        pooled = c != NULL;
        if (c == NULL) {
            c = jpki_redis_connect(site, r);
            if (c == NULL) {
                jpki_results_error(res, n);
                return 1;
            }
        }

        rc = jpki_redis_run(site, r, c, buf, total, cmds, n, res);

        if (rc == JPKI_RUN_OK) {
            if (c->sock) {
                jpki_redis_idle_put(site, c);
            } else {
                jpki_redis_close(c);
            }
            return 1;
        }

        jpki_redis_close(c);

        if (rc == JPKI_RUN_TIMEOUT) {
            return 0;
        }

        if (rc == JPKI_RUN_STALE && pooled) {
            /* the pooled connection was dead (Redis restarted): nothing
             * reached Redis, one more try on a fresh connection */
            JPKI_LOG(site, r, APLOG_INFO, 0, "jpki: pooled redis "
                     "connection lost, retrying on a new one");
            continue;
        }

        if (rc == JPKI_RUN_STALE) {
            JPKI_LOG(site, r, APLOG_ERR, 0, "jpki: redis closed "
                     "the connection");
        }
        break;
    }

    jpki_results_error(res, n);
    return 1;
}


static int
jpki_redis_exec(jpki_site *site, request_rec *r, const jpki_store_cmd *cmds,
                size_t n, jpki_store_result *res)
{
    char    *resp[JPKI_MAX_CMDS], *buf, *p;
    size_t   len[JPKI_MAX_CMDS], i, total = 0;
    int      done;

    memset(resp, 0, sizeof(resp));

    for (i = 0; i < n; i++) {
        if (jpki_store_cmd_to_resp(&cmds[i], &resp[i], &len[i]) != JPKI_OK) {
            for (i = 0; i < n; i++) {
                free(resp[i]);
            }
            jpki_results_error(res, n);
            return 1;
        }
        total += len[i];
    }

    /* malloc'ed, not from a pool: the poller has no request */
    buf = malloc(total + 1);
    for (p = buf, i = 0; i < n; i++) {
        if (buf != NULL) {
            memcpy(p, resp[i], len[i]);
            p += len[i];
        }
        free(resp[i]);
    }
    if (buf == NULL) {
        jpki_results_error(res, n);
        return 1;
    }

    done = jpki_redis_send_cmds(site, r, buf, total, cmds, n, res);
    free(buf);

    return done;
}


int
mjpki_store_exec(jpki_site *site, request_rec *r, const jpki_store_cmd *cmds,
                size_t n, jpki_store_result *res)
{
    jpki_zone     *zone = site->zone;
    apr_status_t   rv;
    int64_t        now_ms;
    size_t         i;

    if (n == 0 || n > JPKI_MAX_CMDS) {
        return 0;
    }

    if (site->store == JPKI_STORE_REDIS) {
        return jpki_redis_exec(site, r, cmds, n, res);
    }

    if (zone == NULL || zone->store == NULL) {
        jpki_results_error(res, n);
        return 1;
    }

    rv = apr_global_mutex_lock(zone->mutex);
    if (rv != APR_SUCCESS) {
        JPKI_LOG(site, r, APLOG_ERR, rv, "jpki: cannot lock store "
                 "zone %s", zone->name);
        jpki_results_error(res, n);
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

#define JPKI_MIRROR_SIZE       (1024 * 1024)
#define JPKI_POLLER_PERIOD     apr_time_from_msec(200)
#define JPKI_POLLER_NAP        apr_time_from_msec(50)

static int64_t
jpki_now_ms(void)
{
    return (int64_t) (apr_time_now() / 1000);
}


void
mjpki_local_markers(jpki_site *site, jpki_txn_request *rq)
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
        rq->local_since = jpki_outsync_since(site->outsync, jpki_now_ms());
        apr_thread_mutex_unlock(site->outsync_mutex);
    }
}


/* One poll of the logout log, if one is due: the commands the core asks
 * for run in Redis without the mutex (gated requests read outsync's
 * since meanwhile), until it asks for none. */
static void
jpki_poll_logouts(jpki_site *site, int *failing)
{
    const jpki_store_cmd  *cmds;
    jpki_store_cmd         batch[JPKI_MAX_CMDS];
    jpki_store_result      res[JPKI_MAX_CMDS];
    size_t                 n, i;
    int                    done, failed = 0, polled = 0;

    apr_thread_mutex_lock(site->outsync_mutex);
    cmds = jpki_outsync_cmds(site->outsync, jpki_now_ms(), &n);
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
                                 jpki_now_ms(), &n);
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
jpki_poller_main(apr_thread_t *thd, void *data)
{
    jpki_site   *site = data;
    apr_time_t   next = 0;
    int          failing = 0;

    while (!apr_atomic_read32(&site->poller_stop)) {
        if (apr_time_now() >= next) {
            jpki_poll_logouts(site, &failing);
            next = apr_time_now() + JPKI_POLLER_PERIOD;
        }
        apr_sleep(JPKI_POLLER_NAP);         /* a stop is seen soon */
    }

    /* a return, not apr_thread_exit(): pthread_exit() would unwind these
     * frames without unpoisoning them (an ASan report at thread exit);
     * the thread's pool goes with the child's */
    return NULL;
}


/* Before the child's pool goes (a pre-cleanup: the thread's pool is a
 * subpool of it): the poller stops, then its state is freed. */
static apr_status_t
jpki_poller_cleanup(void *data)
{
    jpki_site     *site = data;
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
static void
jpki_poller_start(jpki_site *site, apr_pool_t *pchild, server_rec *s)
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
    apr_pool_pre_cleanup_register(pchild, site, jpki_poller_cleanup);

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rv = apr_thread_create(&site->poller, NULL, jpki_poller_main, site,
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


/* ------------------------------------------------------------------ */
/* OCSP                                                                */
/* ------------------------------------------------------------------ */



static int
jpki_ocsp_query(jpki_site *site, jpki_issuer_rt *iss, request_rec *r,
                const uint8_t *body, size_t len, const uint8_t **resp,
                size_t *resp_len)
{
    apr_socket_t  *sock;
    apr_time_t     deadline;
    apr_status_t   rv;
    apr_size_t     in_len = 0, in_max, n;
    char          *req, *in;
    const uint8_t *rbody;
    size_t         rblen;
    int            status = 0, parsed = 0, eof;
    size_t         hlen;

    if (iss->ocsp_addr == NULL) {
        return 0;
    }

    deadline = apr_time_now() + site->ocsp_timeout;

    rv = jpki_connect(&sock, iss->ocsp_addr, deadline, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: cannot connect to "
                      "OCSP responder \"%s\"%s", iss->spec->ocsp_url,
                      APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        return 0;
    }

    hlen = strlen(iss->ocsp_path) + strlen(iss->ocsp_host) + 256;
    req = apr_palloc(r->pool, hlen);
    hlen = jpki_ocsp_http_request(iss->ocsp_host, iss->ocsp_path, len,
                                  (char *) req, hlen);

    rv = jpki_send_all(sock, req, hlen, deadline);
    if (rv == APR_SUCCESS) {
        rv = jpki_send_all(sock, (const char *) body, len, deadline);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: OCSP request to "
                      "\"%s\" failed%s", iss->spec->ocsp_url,
                      APR_STATUS_IS_TIMEUP(rv) ? " (timed out)" : "");
        apr_socket_close(sock);
        return 0;
    }

    in_max = JPKI_OCSP_RESP_MAX + JPKI_OCSP_HEADER_MAX;
    in = apr_palloc(r->pool, in_max);

    for ( ;; ) {
        if (in_len == in_max) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: OCSP response "
                          "too large");
            break;
        }

        rv = jpki_set_deadline(sock, deadline);
        n = in_max - in_len;
        if (rv == APR_SUCCESS) {
            rv = apr_socket_recv(sock, in + in_len, &n);
        } else {
            n = 0;
        }

        if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_EAGAIN(rv)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: OCSP responder "
                          "\"%s\" timed out", iss->spec->ocsp_url);
            break;
        }
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "jpki: reading from "
                          "OCSP responder \"%s\" failed", iss->spec->ocsp_url);
            break;
        }

        in_len += n;
        eof = APR_STATUS_IS_EOF(rv) || n == 0;

        parsed = jpki_http_response_parse((const uint8_t *) in, in_len, eof,
                                          &status, &rbody, &rblen);
        if (parsed == 1) {
            *resp = rbody;
            *resp_len = rblen;
            apr_socket_close(sock);
            return status;
        }
        if (parsed < 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: malformed HTTP "
                          "answer from OCSP responder \"%s\"",
                          iss->spec->ocsp_url);
            break;
        }
        if (eof) {
            break;
        }
    }

    apr_socket_close(sock);
    return 0;
}


/* An OCSP query under way in this child, shared by the threads asking for
 * the same certificate meanwhile: the first one queries, the others wait
 * (each up to its own deadline) and take a copy of the answer.  The last
 * one out frees it. */
struct jpki_flight {
    struct jpki_flight  *next;
    char                 key[JPKI_CERT_ID_HEX_LEN + 1];
    int                  done;
    int                  status;
    int                  waiters;
    uint8_t             *resp;          /* malloc'ed */
    size_t               resp_len;
};


int
mjpki_ocsp_post(jpki_site *site, jpki_issuer_rt *iss, request_rec *r,
               const char *key, const uint8_t *body, size_t len,
               const uint8_t **resp, size_t *resp_len)
{
    struct jpki_flight  *f, **pp;
    const uint8_t       *rb = NULL;
    size_t               rl = 0;
    apr_time_t           deadline;
    apr_status_t         rv;
    int                  status;

    if (key == NULL || strlen(key) != JPKI_CERT_ID_HEX_LEN
        || site->flight_mutex == NULL || site->flight_cond == NULL)
    {
        return jpki_ocsp_query(site, iss, r, body, len, resp, resp_len);
    }

    apr_thread_mutex_lock(site->flight_mutex);

    for (f = site->flights; f; f = f->next) {
        if (strcmp(f->key, key) == 0) {
            break;
        }
    }

    if (f != NULL) {
        /* another thread is asking: wait for its answer */
        f->waiters++;
        deadline = apr_time_now() + site->ocsp_timeout;
        rv = APR_SUCCESS;
        while (!f->done && rv != APR_TIMEUP) {
            apr_interval_time_t left = deadline - apr_time_now();
            rv = left > 0 ? apr_thread_cond_timedwait(site->flight_cond,
                                                      site->flight_mutex,
                                                      left)
                          : APR_TIMEUP;
        }
        status = f->done ? f->status : 0;
        if (status && f->resp_len > 0) {
            *resp = apr_pmemdup(r->pool, f->resp, f->resp_len);
            *resp_len = f->resp_len;
        } else if (status) {
            *resp = (const uint8_t *) "";
            *resp_len = 0;
        }
        if (--f->waiters == 0 && f->done) {
            free(f->resp);
            free(f);
        }
        apr_thread_mutex_unlock(site->flight_mutex);
        if (!status) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "jpki: the OCSP query "
                          "this login waited for failed or timed out");
        }
        return status;
    }

    f = calloc(1, sizeof(struct jpki_flight));
    if (f == NULL) {
        apr_thread_mutex_unlock(site->flight_mutex);
        return jpki_ocsp_query(site, iss, r, body, len, resp, resp_len);
    }
    apr_cpystrn(f->key, key, sizeof(f->key));
    f->next = site->flights;
    site->flights = f;
    apr_thread_mutex_unlock(site->flight_mutex);

    status = jpki_ocsp_query(site, iss, r, body, len, &rb, &rl);

    apr_thread_mutex_lock(site->flight_mutex);
    for (pp = &site->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;              /* later logins ask again (or find
                                           the answer cached in the store) */
            break;
        }
    }
    f->done = 1;
    f->status = status;
    if (status && f->waiters > 0 && rl > 0) {
        f->resp = malloc(rl);
        if (f->resp != NULL) {
            memcpy(f->resp, rb, rl);
            f->resp_len = rl;
        } else {
            f->status = 0;
        }
    }
    if (f->waiters > 0) {
        apr_thread_cond_broadcast(site->flight_cond);
    } else {
        free(f->resp);
        free(f);
    }
    apr_thread_mutex_unlock(site->flight_mutex);

    if (status) {
        *resp = rb;
        *resp_len = rl;
    }
    return status;
}


jpki_issuer_rt *
mjpki_issuer_of(jpki_site *site, const jpki_issuer *is)
{
    jpki_issuer_rt  *rt;
    int              i;

    if (site->rt_issuers == NULL) {
        return NULL;
    }
    rt = (jpki_issuer_rt *) site->rt_issuers->elts;
    for (i = 0; i < site->rt_issuers->nelts; i++) {
        if (rt[i].issuer == is) {
            return &rt[i];
        }
    }

    return NULL;
}


/* ------------------------------------------------------------------ */
/* CRL indexes                                                         */
/* ------------------------------------------------------------------ */

static apr_status_t
jpki_crl_cleanup(void *data)
{
    jpki_site       *site = data;
    jpki_issuer_rt  *rt = (jpki_issuer_rt *) site->rt_issuers->elts;
    int              i;

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        jpki_crl_index_free(rt[i].crl);
        rt[i].crl = NULL;
    }

    return APR_SUCCESS;
}


/* ---- The CRL zone (JPKICRLZone) -------------------------------------
 * One APR shared memory segment per site, created in the parent before the
 * children are forked: every process maps it at the same address, so the
 * pointers inside a placed index (jpki_crl_index_place) are valid in all
 * of them.  The segment: a header (the loader's claim, the blocks being
 * filled, one slot per issuer by its position in the site), then the
 * blocks of the placed indexes, found by first fit among the blocks in use
 * (the slots' indexes in force and the blocks being filled).
 *
 * Writers.  Everything in the header changes under the zone's global
 * mutex.  One process at a time parses a changed file (the claim; a loader
 * that died is taken over at once, one silent for a minute too), copies
 * the index into a block it reserved (a fill record: the block is no
 * slot's yet, nobody reads it) and puts it in force by changing the slot.
 * The block of the index replaced is free from that moment: the next load
 * may write another index over it (at another offset: blocks move).
 *
 * Readers (lookups, health, the loader's checks) take no lock: a seqlock
 * per slot.  slot->seq is even while the slot is stable, odd while a
 * writer changes it; every change of the slot (a new index, an index
 * retired, a try recorded) is one section:
 *
 *   writer (mutex held)               reader (no lock)
 *   seq = odd; full barrier           s = seq (acquire); odd: retry
 *   change the slot                   copy the slot's fields and the
 *   seq = even (release)                 header of its index (80 bytes)
 *                                     acquire barrier; seq != s: retry
 *                                     lookup: the entries, in the zone
 *                                     acquire barrier; seq != s: retry
 *
 * A block is written again only after the swap that took it out of its
 * slot, i.e. after a section that changed the seq of the slot: a reader
 * that still reads in it (it read the slot before the swap, and was then
 * descheduled for any time) finds the seq changed at its last check and
 * starts again from the slot; what it read meanwhile is not used.  (The
 * fill makes a full barrier before it writes: its stores come after that
 * swap for every reader.)  A lookup never follows a pointer it read in the
 * zone before that pointer was validated:
 *  - the index's address is checked against the segment before its header
 *    is copied (a torn read cannot make it copy from elsewhere);
 *  - the copy is used only when the seq did not change meanwhile, and when
 *    it is the one published: the block, the placed size (entries count)
 *    and a checksum of the header recorded in the slot by the writer
 *    match;
 *  - the core then works on that copy: its entries pointer and count are
 *    the ones published, inside the block, inside the segment; if the
 *    block is reused during the binary search, the search reads garbage,
 *    never outside the segment, and its verdict is thrown away.
 * A reader retries a few times (a writer's section is a few stores; a seq
 * odd for long is a writer that died in its section: a reader that gets
 * the mutex without waiting ends that section), then fails closed
 * (revocation_unavailable).  Readers never wait for a loader, and a
 * lookup costs two atomic loads, an 80-byte copy and its checksum more
 * than the binary search. */

#define JPKI_CRLZ_MAGIC     ((apr_uint64_t) 0x4a504b4943524c32)  /* JPKICRL2 */
#define JPKI_CRLZ_SLOTS     16              /* JPKI_MAX_ISSUERS of the core */
#define JPKI_CRLZ_FILLS     4               /* blocks being filled */
#define JPKI_CRLZ_TAKEOVER  apr_time_from_sec(60)
#define JPKI_CRLZ_ALIGN     64
#define JPKI_CRLZ_IXHDR_MAX 256             /* a placed index's header */
#define JPKI_CRLZ_TRIES     64              /* of a reader, then it fails */
#define JPKI_CRLZ_YIELDS    8               /* the first tries only yield */
#define JPKI_CRLZ_LIST      "auth_jpki-crlzones"

typedef struct {
    apr_size_t                 off;           /* from the segment's base */
    apr_size_t                 size;          /* 0: none */
    pid_t                      pid;           /* the loader filling it */
} jpki_crlz_fill;

typedef struct {
    apr_uint32_t               seq;           /* even: stable; odd: changing */
    /* the index in force and its block */
    const jpki_crl_index      *cur;           /* NULL: none */
    apr_size_t                 off;           /* of its block */
    apr_size_t                 size;          /* of its block; 0: none */
    apr_size_t                 placed;        /* its placed size */
    apr_uint64_t               sum;           /* checksum of its header */
    apr_time_t                 loaded;        /* when it was put in force */
    char                       tag[17];       /* issuer tag of cur */
    /* the last try to load the issuer's file */
    apr_time_t                 mtime;         /* the file tried last */
    apr_off_t                  fsize;
    apr_ino_t                  inode;
    int                        error;         /* jpki_err of that try */
    char                       tried[17];     /* issuer tag of the try */
} jpki_crlz_slot;

typedef struct {
    apr_uint64_t               magic;
    apr_size_t                 size;          /* of the segment */
    apr_size_t                 data;          /* offset of the blocks */
    pid_t                      loader;        /* 0: nobody is loading */
    apr_time_t                 loading_since;
    jpki_crlz_fill             fill[JPKI_CRLZ_FILLS];
    jpki_crlz_slot             slot[JPKI_CRLZ_SLOTS];
} jpki_crlz_hdr;

#define JPKI_CRLZ_DATA  APR_ALIGN(sizeof(jpki_crlz_hdr), JPKI_CRLZ_ALIGN)

/* A reader's consistent copy of a slot (jpki_crlz_read). */
typedef struct {
    apr_uint32_t               seq;           /* the slot's, when copied */
    const jpki_crl_index      *ix;            /* ixhdr; NULL: no CRL of the
                                                 issuer in force */
    apr_time_t                 loaded;
    apr_time_t                 mtime;
    apr_off_t                  fsize;
    apr_ino_t                  inode;
    int                        error;
    int                        tried;         /* the last try was of this
                                                 issuer's file */
    apr_uint64_t               ixhdr[JPKI_CRLZ_IXHDR_MAX / 8];
} jpki_crlz_view;

/* The size of a placed index's header (struct jpki_crl_index, opaque
 * here; its entries follow it in the block): the placed size of an index
 * without entries, which the core computes from a zeroed one (no entries).
 * The same in every process (computed in the parent). */
static apr_size_t jpki_crlz_hl;

static volatile apr_uint32_t jpki_crlz_complained;   /* second of the last
                                                        reader's complaint */


static apr_size_t
jpki_crlz_header_size(void)
{
    static const apr_uint64_t  zero[JPKI_CRLZ_IXHDR_MAX / 8];
    apr_size_t                 n;

    n = jpki_crl_index_placed_size((const jpki_crl_index *) zero);

    return n > 0 && n <= sizeof(zero) && n % 8 == 0 ? n : 0;
}


/* A checksum of a placed index's header (n: a multiple of 8), recorded
 * when it is published, checked by every reader: an FNV-style mix by
 * 64-bit words (ten multiplications for an 80-byte header). */
static apr_uint64_t
jpki_crlz_sum(const void *p, apr_size_t n)
{
    const char    *b = p;
    apr_uint64_t   h = APR_UINT64_C(0xcbf29ce484222325), w;

    for (; n >= 8; n -= 8, b += 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * APR_UINT64_C(0x100000001b3);
        h ^= h >> 29;
    }

    return h;
}


static int
jpki_pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}


/* A writer's section (zone mutex held): the seq odd before the first
 * change is visible, even again after the last. */
static void
jpki_crlz_write_begin(jpki_crlz_slot *sl)
{
    apr_uint32_t  s = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);

    /* odd already: the section of a writer that died (we hold the mutex,
     * nobody else is in one); a new odd value all the same */
    __atomic_store_n(&sl->seq, s + ((s & 1) ? 2 : 1), __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}


static void
jpki_crlz_write_end(jpki_crlz_slot *sl)
{
    __atomic_store_n(&sl->seq, __atomic_load_n(&sl->seq, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELEASE);
}


/* A reader: whether the slot is still as it was at seq s (everything read
 * before is ordered before this check). */
static int
jpki_crlz_unchanged(const jpki_crlz_slot *sl, apr_uint32_t s)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);

    return __atomic_load_n(&sl->seq, __ATOMIC_RELAXED) == s;
}


/* A reader's complaint, at most once a second per process. */
static void
jpki_crlz_complain(jpki_site *site, jpki_issuer_rt *x, const char *what)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());
    apr_uint32_t  last = apr_atomic_read32(&jpki_crlz_complained);

    if (last != now && apr_atomic_cas32(&jpki_crlz_complained, now, last)
                       == last)
    {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s: the CRL of issuer \"%s\" %s: revocation "
                     "unavailable", site->crlz->name, x->spec->name, what);
    }
}


/* Between two tries of a reader: a writer is in its section (a few stores
 * under the mutex: let it run), or changed the slot under the read.  After
 * a few tries, a seq still odd when the mutex is ours (taken without
 * waiting) is the section of a writer that died: ended here. */
static void
jpki_crlz_backoff(jpki_crl_zone *z, jpki_crlz_slot *sl, int tries)
{
    apr_uint32_t  s;

    if (tries < JPKI_CRLZ_YIELDS) {
        apr_thread_yield();
        return;
    }

    if (apr_global_mutex_trylock(z->mutex) == APR_SUCCESS) {
        s = __atomic_load_n(&sl->seq, __ATOMIC_RELAXED);
        if (s & 1) {
            __atomic_store_n(&sl->seq, s + 1, __ATOMIC_RELEASE);
        }
        apr_global_mutex_unlock(z->mutex);
    }
    apr_sleep(1000);
}


/* The slot of an issuer in the zone. */
static jpki_crlz_slot *
jpki_crlz_slot_of(jpki_site *site, jpki_issuer_rt *x)
{
    jpki_crlz_hdr  *h;
    long            i;

    if (site->crlz == NULL || site->crlz->hdr == NULL) {
        return NULL;
    }
    h = site->crlz->hdr;
    i = x - (jpki_issuer_rt *) site->rt_issuers->elts;

    return i >= 0 && i < JPKI_CRLZ_SLOTS ? &h->slot[i] : NULL;
}


/* A reader's consistent copy of the slot of an issuer, its index's header
 * included (the protocol above).  1: *v filled (v->ix NULL when no CRL of
 * the issuer is in force); 0: no consistent or valid copy could be had
 * (logged; fail closed). */
static int
jpki_crlz_read(jpki_site *site, jpki_issuer_rt *x, jpki_crlz_view *v)
{
    jpki_crl_zone         *z = site->crlz;
    jpki_crlz_slot        *sl = jpki_crlz_slot_of(site, x);
    const char            *tag = jpki_issuer_tag(x->issuer);
    const char            *base, *ix;
    const jpki_crl_index  *copy = (const jpki_crl_index *) v->ixhdr;
    apr_size_t             hl = jpki_crlz_hl, end, off, size, placed;
    apr_uint64_t           sum;
    apr_uint32_t           s;
    char                   cur_tag[17], tried[17];
    int                    i, inside;

    if (sl == NULL || hl == 0) {
        return 0;
    }
    base = z->hdr;
    end = apr_shm_size_get(z->shm);

    for (i = 0; i < JPKI_CRLZ_TRIES; i++) {
        if (i > 0) {
            jpki_crlz_backoff(z, sl, i);
        }

        s = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
        if (s & 1) {
            continue;                           /* a writer is in it */
        }

        /* each field read once (atomic loads: never re-read) */
        ix = (const char *) __atomic_load_n(&sl->cur, __ATOMIC_RELAXED);
        off = __atomic_load_n(&sl->off, __ATOMIC_RELAXED);
        size = __atomic_load_n(&sl->size, __ATOMIC_RELAXED);
        placed = __atomic_load_n(&sl->placed, __ATOMIC_RELAXED);
        sum = __atomic_load_n(&sl->sum, __ATOMIC_RELAXED);
        v->loaded = sl->loaded;
        v->mtime = sl->mtime;
        v->fsize = sl->fsize;
        v->inode = sl->inode;
        v->error = sl->error;
        memcpy(cur_tag, sl->tag, sizeof(cur_tag));
        memcpy(tried, sl->tried, sizeof(tried));

        /* the header is copied from within the zone only, whatever the
         * values read */
        inside = ix != NULL && ix >= base + JPKI_CRLZ_DATA
                 && end >= hl && ix <= base + end - hl;
        if (inside) {
            memcpy(v->ixhdr, ix, hl);
        }

        if (!jpki_crlz_unchanged(sl, s)) {
            continue;                           /* changed under the read */
        }

        /* a consistent copy of the slot */
        cur_tag[16] = tried[16] = '\0';
        v->seq = s;
        v->tried = strcmp(tried, tag) == 0;
        v->ix = NULL;

        if (ix == NULL || strcmp(cur_tag, tag) != 0) {
            return 1;                           /* none of this issuer */
        }

        /* the index as its writer published it: in its block, in the
         * segment, its entries too, its header unchanged */
        if (!inside || ix != base + off || off < JPKI_CRLZ_DATA
            || size > end || off > end - size || placed < hl
            || placed > size
            || jpki_crl_index_placed_size(copy) != placed
            || jpki_crlz_sum(v->ixhdr, hl) != sum)
        {
            jpki_crlz_complain(site, x, "is inconsistent in the zone");
            return 0;
        }

        v->ix = copy;
        return 1;
    }

    jpki_crlz_complain(site, x, "kept changing during a read");

    return 0;
}


/* A slot whose issuer is gone (zone mutex held): empty; its block is free
 * (lookups still in it see the seq change). */
static void
jpki_crlz_retire(jpki_crlz_slot *sl)
{
    if (sl->cur == NULL && sl->size == 0 && sl->tried[0] == '\0') {
        return;
    }
    jpki_crlz_write_begin(sl);
    __atomic_store_n(&sl->cur, NULL, __ATOMIC_RELAXED);
    sl->size = 0;
    sl->placed = 0;
    sl->tag[0] = '\0';
    sl->tried[0] = '\0';
    jpki_crlz_write_end(sl);
}


/* The zone of the n-th site having one (in the order of the servers):
 * found again at a restart, kept when its size did not change. */
static int
jpki_crlz_setup(apr_pool_t *ptemp, server_rec *s, jpki_site *site, int n)
{
    apr_pool_t          *pp = s->process->pool;
    apr_array_header_t  *all = NULL;
    jpki_crl_zone       *z = NULL;
    jpki_crlz_hdr       *h;
    const char          *key;
    apr_status_t         rv;
    int                  i, gen = ap_state_query(AP_SQ_CONFIG_GEN);

    jpki_crlz_hl = jpki_crlz_header_size();
    if (jpki_crlz_hl == 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: the core's CRL "
                     "index header is larger than this module expects (%d "
                     "bytes): JPKICRLZone unusable", JPKI_CRLZ_IXHDR_MAX);
        return !OK;
    }

    key = apr_psprintf(ptemp, "auth_jpki-crlzone-%d", n);
    apr_pool_userdata_get((void **) &z, key, pp);

    if (z != NULL && z->shm != NULL && z->size == site->crl_zone_size
        && z->hdr != NULL && ((jpki_crlz_hdr *) z->hdr)->magic
                             == JPKI_CRLZ_MAGIC
        && ((jpki_crlz_hdr *) z->hdr)->data == JPKI_CRLZ_DATA)
    {
        /* a restart: the CRLs loaded stay in force (a slot carries the
         * tag of its issuer: an issuer that changed loads its file); the
         * slots of issuers no longer configured are released */
        h = z->hdr;
        if (apr_global_mutex_lock(z->mutex) == APR_SUCCESS) {
            for (i = site->rt_issuers->nelts; i < JPKI_CRLZ_SLOTS; i++) {
                jpki_crlz_retire(&h->slot[i]);
            }
            apr_global_mutex_unlock(z->mutex);
        }
        z->generation = gen;
        site->crlz = z;
        return OK;
    }

    if (z == NULL) {
        z = apr_pcalloc(pp, sizeof(jpki_crl_zone));
        z->name = apr_psprintf(pp, "crl-%d", n);
        rv = ap_global_mutex_create(&z->mutex, &z->lockfile, JPKI_MUTEX_TYPE,
                                    z->name, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                         "the mutex of CRL zone %s", z->name);
            return !OK;
        }
        apr_pool_userdata_set(z, apr_pstrdup(pp, key), apr_pool_cleanup_null,
                              pp);
        apr_pool_userdata_get((void **) &all, JPKI_CRLZ_LIST, pp);
        if (all == NULL) {
            all = apr_array_make(pp, 4, sizeof(jpki_crl_zone *));
            apr_pool_userdata_set(all, JPKI_CRLZ_LIST, apr_pool_cleanup_null,
                                  pp);
        }
        APR_ARRAY_PUSH(all, jpki_crl_zone *) = z;

    } else if (z->shm != NULL) {
        /* another size (or the layout of another version of the module,
         * loaded by this restart): a new segment (the children of the
         * previous generation keep their own mapping of the old one) */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "jpki: CRL zone %s "
                     "%s: its CRLs are loaded again", z->name,
                     z->size != site->crl_zone_size ? "resized"
                     : "laid out by another version of the module");
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        z->hdr = NULL;
    }

    z->size = site->crl_zone_size;
    rv = apr_shm_create(&z->shm, z->size, NULL, pp);
    if (rv != APR_SUCCESS) {
        z->shm = NULL;
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of CRL zone %s (JPKICRLZone %"
                     APR_SIZE_T_FMT " bytes)", z->name, z->size);
        return !OK;
    }

    h = apr_shm_baseaddr_get(z->shm);
    memset(h, 0, sizeof(jpki_crlz_hdr));
    h->magic = JPKI_CRLZ_MAGIC;
    h->size = apr_shm_size_get(z->shm);
    h->data = JPKI_CRLZ_DATA;

    /* a placed index wants 8-byte alignment (the segment's base has it;
     * block offsets are multiples of JPKI_CRLZ_ALIGN) */
    if ((apr_uintptr_t) h % 8 != 0 || h->data >= h->size) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: CRL zone %s "
                     "unusable (%" APR_SIZE_T_FMT " bytes)", z->name,
                     h->size);
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        return !OK;
    }

    z->hdr = h;
    z->generation = gen;
    site->crlz = z;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s: %"
                 APR_SIZE_T_FMT " bytes for the CRLs", z->name,
                 h->size - h->data);

    return OK;
}


/* After a restart: the segments no site uses any more are released (the
 * children of the previous generation keep their own mapping). */
static void
jpki_crlz_sweep(server_rec *s)
{
    apr_array_header_t  *all = NULL;
    jpki_crl_zone       *z;
    int                  i, gen = ap_state_query(AP_SQ_CONFIG_GEN);

    apr_pool_userdata_get((void **) &all, JPKI_CRLZ_LIST, s->process->pool);

    for (i = 0; all && i < all->nelts; i++) {
        z = APR_ARRAY_IDX(all, i, jpki_crl_zone *);
        if (z->shm != NULL && z->generation != gen) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s is "
                         "no longer used: released", z->name);
            apr_shm_destroy(z->shm);
            z->shm = NULL;
            z->hdr = NULL;
        }
    }
}


/* This very file was tried for this issuer (by any process): from the
 * slot (zone mutex held), or from a reader's copy. */
static int
jpki_crlz_tried(const jpki_crlz_slot *sl, const apr_finfo_t *fi,
                const char *tag)
{
    return sl->mtime == fi->mtime && sl->fsize == fi->size
           && sl->inode == fi->inode && strcmp(sl->tried, tag) == 0;
}


static int
jpki_crlz_view_tried(const jpki_crlz_view *v, const apr_finfo_t *fi)
{
    return v->tried && v->mtime == fi->mtime && v->fsize == fi->size
           && v->inode == fi->inode;
}


/* First fit among the blocks in use (the slots' indexes, the blocks being
 * filled); 0 when nothing fits (*avail: the largest free gap).  Zone
 * mutex held. */
static apr_size_t
jpki_crlz_alloc(jpki_crlz_hdr *h, apr_size_t need, apr_size_t *avail)
{
    struct { apr_size_t off, size; } b[JPKI_CRLZ_SLOTS + JPKI_CRLZ_FILLS], t;
    apr_size_t       pos = h->data, found = 0, gap;
    int              i, j, n = 0;

    for (i = 0; i < JPKI_CRLZ_SLOTS; i++) {
        if (h->slot[i].size != 0) {
            b[n].off = h->slot[i].off;
            b[n++].size = h->slot[i].size;
        }
    }
    for (i = 0; i < JPKI_CRLZ_FILLS; i++) {
        if (h->fill[i].size != 0) {
            b[n].off = h->fill[i].off;
            b[n++].size = h->fill[i].size;
        }
    }

    for (i = 1; i < n; i++) {                   /* by offset */
        t = b[i];
        for (j = i; j > 0 && b[j - 1].off > t.off; j--) {
            b[j] = b[j - 1];
        }
        b[j] = t;
    }

    *avail = 0;
    for (i = 0; i <= n; i++) {
        gap = i < n ? (b[i].off > pos ? b[i].off - pos : 0)
                    : (h->size > pos ? h->size - pos : 0);
        if (gap > *avail) {
            *avail = gap;
        }
        if (found == 0 && gap >= need) {
            found = pos;
        }
        if (i < n && b[i].off + b[i].size > pos) {
            pos = b[i].off + b[i].size;
        }
    }

    return found;
}


/* Takes the claim to parse a file into the slot: 0 when another process is
 * loading, or when the file was tried meanwhile. */
static int
jpki_crlz_claim(jpki_site *site, jpki_crlz_slot *sl, const apr_finfo_t *fi,
                const char *tag)
{
    jpki_crl_zone  *z = site->crlz;
    jpki_crlz_hdr  *h = z->hdr;
    apr_time_t      now = apr_time_now();
    pid_t           me = getpid(), was;
    apr_status_t    rv;
    int             ok = 0, alive = 0, i;

    rv = apr_global_mutex_lock(z->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: cannot "
                     "lock CRL zone %s", z->name);
        return 0;
    }

    was = h->loader;
    if (was != 0 && was != me) {
        alive = jpki_pid_alive(was);
    }
    if (alive && now - h->loading_since < JPKI_CRLZ_TAKEOVER) {
        ok = 0;                             /* another process is loading */
    } else if (jpki_crlz_tried(sl, fi, tag)) {
        ok = 0;                             /* done meanwhile */
        was = 0;
    } else {
        /* the blocks left by loaders that died (or by this process) are
         * free; those of a live one taken over stay reserved until it
         * finds out, when it is done copying */
        for (i = 0; i < JPKI_CRLZ_FILLS; i++) {
            if (h->fill[i].size != 0
                && (h->fill[i].pid == me || !jpki_pid_alive(h->fill[i].pid)))
            {
                h->fill[i].size = 0;
                h->fill[i].pid = 0;
            }
        }
        h->loader = me;
        h->loading_since = now;
        ok = 1;
    }

    apr_global_mutex_unlock(z->mutex);

    if (ok && was != 0 && was != me) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, site->server, "jpki: CRL "
                     "zone %s: process %" APR_PID_T_FMT " %s, taken over",
                     z->name, was, alive ? "loading for more than a minute"
                                         : "died while loading");
    }

    return ok;
}


/* Copies a new index into the zone and puts it in force (ix is freed).
 * had: a CRL of the issuer was in force.  JPKI_ERR_STORE_FULL when it does
 * not fit (logged). */
static jpki_err
jpki_crlz_publish(jpki_site *site, jpki_issuer_rt *x, jpki_crlz_slot *sl,
                  jpki_crl_index *ix, const char *tag, int had)
{
    jpki_crl_zone         *z = site->crlz;
    jpki_crlz_hdr         *h = z->hdr;
    jpki_crlz_fill        *f = NULL;
    const jpki_crl_index  *placed;
    apr_size_t             size, need, off = 0, avail = 0;
    apr_uint64_t           sum = 0;
    pid_t                  me = getpid();
    int                    ok, ours, i;

    size = jpki_crl_index_placed_size(ix);
    need = APR_ALIGN(size, JPKI_CRLZ_ALIGN);

    if (apr_global_mutex_lock(z->mutex) != APR_SUCCESS) {
        jpki_crl_index_free(ix);
        return JPKI_ERR_INTERNAL;
    }
    for (i = 0; i < JPKI_CRLZ_FILLS && f == NULL; i++) {
        if (h->fill[i].size == 0) {
            f = &h->fill[i];
        }
    }
    if (f != NULL) {
        off = jpki_crlz_alloc(h, need, &avail);
        if (off) {
            f->off = off;
            f->size = need;
            f->pid = me;
        }
    }
    apr_global_mutex_unlock(z->mutex);

    if (f == NULL) {
        jpki_crl_index_free(ix);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s: %d loaders taken over are still copying: CRL \"%s\" "
                     "not loaded", z->name, JPKI_CRLZ_FILLS,
                     x->spec->crl_file);
        return JPKI_ERR_INTERNAL;
    }

    if (off == 0) {
        jpki_crl_index_free(ix);
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL zone "
                     "%s too small: CRL \"%s\" of issuer \"%s\" needs %"
                     APR_SIZE_T_FMT " bytes, %" APR_SIZE_T_FMT " free of %"
                     APR_SIZE_T_FMT " (raise JPKICRLZone: it must hold the "
                     "CRLs in force and a replacement, 24 bytes an entry); "
                     "not loaded%s", z->name, x->spec->crl_file,
                     x->spec->name, size, avail, h->size - h->data,
                     had ? ", the CRL loaded before stays in force"
                         : ", CRL checks of this issuer fail closed");
        return JPKI_ERR_STORE_FULL;
    }

    /* the block may have been an index that lookups still read: each of
     * them read its slot before the swap that freed the block, and sees
     * its seq changed; the barrier orders the copy after that swap */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    placed = jpki_crl_index_place(ix, (char *) h + off, need);
    jpki_crl_index_free(ix);
    if (placed != NULL) {
        sum = jpki_crlz_sum(placed, jpki_crlz_hl);
        if (jpki_crl_index_placed_size(placed) != size) {
            placed = NULL;
        }
    }

    if (apr_global_mutex_lock(z->mutex) != APR_SUCCESS) {
        return JPKI_ERR_INTERNAL;           /* the block is freed at this
                                               process's next claim */
    }
    /* still ours (not taken over by another loader meanwhile) */
    ours = f->pid == me && f->off == off && f->size == need;
    ok = ours && placed != NULL && h->loader == me;
    if (ok) {
        /* one section: the index in force, its block, its check values;
         * the block of the index replaced is free from here */
        jpki_crlz_write_begin(sl);
        __atomic_store_n(&sl->cur, placed, __ATOMIC_RELAXED);
        sl->off = off;
        sl->size = need;
        sl->placed = size;
        sl->sum = sum;
        sl->loaded = apr_time_now();
        apr_cpystrn(sl->tag, tag, sizeof(sl->tag));
        jpki_crlz_write_end(sl);
    }
    if (ours) {
        f->size = 0;
        f->pid = 0;
    }
    apr_global_mutex_unlock(z->mutex);

    return ok ? JPKI_OK : JPKI_ERR_INTERNAL;
}


/* Loads a changed file into the zone, when no other process does (the same
 * rules as without a zone). */
static void
jpki_crlz_load(jpki_site *site, jpki_issuer_rt *x, const apr_finfo_t *fi)
{
    jpki_crlz_slot        *sl = jpki_crlz_slot_of(site, x);
    jpki_crl_zone         *z = site->crlz;
    const char            *tag = jpki_issuer_tag(x->issuer);
    jpki_crl_index        *ix = NULL;
    jpki_crlz_view         v;
    apr_uint64_t           n = 0;
    uint8_t               *der;
    size_t                 len;
    jpki_err               e;
    char                   detail[256];

    if (sl == NULL || (jpki_crlz_read(site, x, &v)
                       && jpki_crlz_view_tried(&v, fi))
        || !jpki_crlz_claim(site, sl, fi, tag))
    {
        return;
    }

    /* the claim is ours: nobody else changes the slot's index now.  (A
     * slot that cannot be read, logged, is loaded over as if empty: a new
     * CRL is the way out.) */
    if (!jpki_crlz_read(site, x, &v)) {
        v.ix = NULL;
    }

    e = jpki_load_file(x->spec->crl_file, JPKI_CRL_MAX, &der, &len);
    if (e != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: "
                     "cannot read CRL \"%s\": %s", x->spec->crl_file,
                     jpki_strerror(e));
    } else {
        detail[0] = '\0';
        e = jpki_crl_index_build(site->ctx, der, len, time(NULL),
                                 site->grace, &ix, detail, sizeof(detail));
        free(der);

        if (e == JPKI_OK) {
            /* another issuer's CRL, or an older one: refused */
            e = jpki_crl_index_replaces(ix, x->issuer, v.ix, detail,
                                        sizeof(detail));
        }

        if (e != JPKI_OK) {
            jpki_crl_index_free(ix);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL "
                         "\"%s\" refused: %s%s%s%s", x->spec->crl_file,
                         jpki_reason(e), detail[0] ? " (" : "", detail,
                         detail[0] ? ")" : "");
        } else {
            n = jpki_crl_index_info(ix)->entries;
            e = jpki_crlz_publish(site, x, sl, ix, tag, v.ix != NULL);
            if (e == JPKI_OK) {
                ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, site->server,
                             "jpki: CRL \"%s\" of issuer \"%s\" loaded: %"
                             APR_UINT64_T_FMT " entries (shared zone)",
                             x->spec->crl_file, x->spec->name, n);
            }
        }
    }

    /* the try, for every process; the claim released */
    if (apr_global_mutex_lock(z->mutex) == APR_SUCCESS) {
        if (((jpki_crlz_hdr *) z->hdr)->loader == getpid()) {
            jpki_crlz_write_begin(sl);
            sl->mtime = fi->mtime;
            sl->fsize = fi->size;
            sl->inode = fi->inode;
            sl->error = e;
            apr_cpystrn(sl->tried, tag, sizeof(sl->tried));
            jpki_crlz_write_end(sl);
            ((jpki_crlz_hdr *) z->hdr)->loader = 0;
        }
        apr_global_mutex_unlock(z->mutex);
    }
}


/* A file that cannot be stat'ed: recorded for every process (logged
 * once), so that it is loaded again when it is back. */
static void
jpki_crlz_unreadable(jpki_site *site, jpki_issuer_rt *x, apr_status_t rv)
{
    jpki_crlz_slot  *sl = jpki_crlz_slot_of(site, x);
    const char      *tag = jpki_issuer_tag(x->issuer);
    jpki_crlz_view   v;
    int              first = 0;

    if (sl == NULL || (jpki_crlz_read(site, x, &v) && v.tried
                       && v.error == JPKI_ERR_IO))
    {
        return;
    }

    if (apr_global_mutex_lock(site->crlz->mutex) == APR_SUCCESS) {
        if (sl->error != JPKI_ERR_IO || strcmp(sl->tried, tag) != 0) {
            first = 1;
            jpki_crlz_write_begin(sl);
            sl->error = JPKI_ERR_IO;
            sl->mtime = 0;
            sl->fsize = -1;
            sl->inode = 0;
            apr_cpystrn(sl->tried, tag, sizeof(sl->tried));
            jpki_crlz_write_end(sl);
        }
        apr_global_mutex_unlock(site->crlz->mutex);
    }

    if (first) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: CRL "
                     "\"%s\" unreadable", x->spec->crl_file);
    }
}


/* A lookup in the zone, without a lock (the protocol above): the verdict
 * of an index that was in force from the start of the lookup to its end,
 * or revocation_unavailable. */
static jpki_err
jpki_crlz_lookup(jpki_site *site, jpki_issuer_rt *x, const char *cert_id,
                 jpki_rev_info *info)
{
    jpki_crlz_slot  *sl = jpki_crlz_slot_of(site, x);
    jpki_crlz_view   v;
    jpki_err         e;
    int              i;

    for (i = 0; i < JPKI_CRLZ_TRIES; i++) {
        if (sl == NULL || !jpki_crlz_read(site, x, &v)) {
            break;
        }
        if (v.ix == NULL) {
            return JPKI_ERR_REVOCATION_UNAVAILABLE;
        }
        /* the entries are read in the zone through the copy's pointer */
        e = jpki_crl_index_lookup(v.ix, cert_id, time(NULL), site->grace,
                                  info);
        if (jpki_crlz_unchanged(sl, v.seq)) {
            return e;
        }
        /* swapped during the search: its block may have been reused */
    }

    if (sl != NULL && i == JPKI_CRLZ_TRIES) {
        jpki_crlz_complain(site, x, "kept changing during lookups");
    }
    memset(info, 0, sizeof(*info));
    info->status = JPKI_REV_UNKNOWN;

    return JPKI_ERR_REVOCATION_UNAVAILABLE;
}


/* Loads the issuers' CRL files that changed since they were loaded (all of
 * them the first time).  A file that does not verify, is stale or older
 * leaves the index loaded before in place (which then goes stale itself:
 * checks that need it fail closed).  The same rules as the nginx module.
 * With a CRL zone, one process parses a changed file for all. */
static void
jpki_crls_load(jpki_site *site, apr_pool_t *tmp)
{
    jpki_issuer_rt  *rt = (jpki_issuer_rt *) site->rt_issuers->elts, *x;
    jpki_crl_index  *ix, *old;
    apr_finfo_t      fi;
    apr_status_t     rv;
    uint8_t         *der;
    size_t           len;
    jpki_err         e;
    char             detail[256];
    int              i;

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        x = &rt[i];
        if (x->spec->crl_file == NULL) {
            continue;
        }

        rv = apr_stat(&fi, x->spec->crl_file, APR_FINFO_MTIME | APR_FINFO_SIZE
                                              | APR_FINFO_INODE, tmp);

        if (site->crlz) {
            if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
                jpki_crlz_unreadable(site, x, rv);
            } else {
                jpki_crlz_load(site, x, &fi);
            }
            continue;
        }

        if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
            if (x->crl_error != JPKI_ERR_IO) {
                ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: "
                             "CRL \"%s\" unreadable", x->spec->crl_file);
            }
            x->crl_error = JPKI_ERR_IO;
            continue;
        }

        if (fi.mtime == x->crl_mtime && fi.size == x->crl_size
            && fi.inode == x->crl_inode)
        {
            continue;
        }

        x->crl_mtime = fi.mtime;
        x->crl_size = fi.size;
        x->crl_inode = fi.inode;

        e = jpki_load_file(x->spec->crl_file, JPKI_CRL_MAX, &der, &len);
        if (e != JPKI_OK) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: "
                         "cannot read CRL \"%s\": %s", x->spec->crl_file,
                         jpki_strerror(e));
            x->crl_error = e;
            continue;
        }

        detail[0] = '\0';
        ix = NULL;
        e = jpki_crl_index_build(site->ctx, der, len, time(NULL), site->grace,
                                 &ix, detail, sizeof(detail));
        free(der);

        if (e == JPKI_OK) {
            /* another issuer's CRL, or an older one: refused */
            e = jpki_crl_index_replaces(ix, x->issuer, x->crl, detail,
                                        sizeof(detail));
        }

        x->crl_error = e;

        if (e != JPKI_OK) {
            jpki_crl_index_free(ix);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: CRL "
                         "\"%s\" refused: %s%s%s%s", x->spec->crl_file,
                         jpki_reason(e), detail[0] ? " (" : "", detail,
                         detail[0] ? ")" : "");
            continue;
        }

        if (site->crl_lock) {
            apr_thread_rwlock_wrlock(site->crl_lock);
        }
        old = x->crl;
        x->crl = ix;
        x->crl_loaded = apr_time_now();
        if (site->crl_lock) {
            apr_thread_rwlock_unlock(site->crl_lock);
        }
        jpki_crl_index_free(old);

        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, site->server, "jpki: CRL "
                     "\"%s\" of issuer \"%s\" loaded: %" APR_UINT64_T_FMT
                     " entries", x->spec->crl_file, x->spec->name,
                     (apr_uint64_t) jpki_crl_index_info(ix)->entries);
    }
}


jpki_err
mjpki_crl_lookup(jpki_site *site, jpki_issuer_rt *rt, const char *cert_id,
                 jpki_rev_info *info)
{
    jpki_err  e;

    if (site->crlz) {
        return jpki_crlz_lookup(site, rt, cert_id, info);   /* no lock */
    }

    if (site->crl_lock) {
        apr_thread_rwlock_rdlock(site->crl_lock);
    }

    e = rt->crl ? jpki_crl_index_lookup(rt->crl, cert_id, time(NULL),
                                        site->grace, info)
                : JPKI_ERR_REVOCATION_UNAVAILABLE;

    if (site->crl_lock) {
        apr_thread_rwlock_unlock(site->crl_lock);
    }

    return e;
}


/* ------------------------------------------------------------------ */
/* Health (JSON for monitoring)                                        */
/* ------------------------------------------------------------------ */

const char *
mjpki_health_json(jpki_site *site, request_rec *r, int *ok)
{
    jpki_issuer_rt       *rt = (jpki_issuer_rt *) site->rt_issuers->elts;
    const jpki_crl_info  *ci;
    const jpki_crl_index *ix;
    jpki_crlz_view        v;
    jpki_err              error;
    apr_time_t            loaded;
    jpki_store_cmd        cmd;
    jpki_store_result     res;
    apr_int64_t           now = apr_time_sec(apr_time_now()), stale_at;
    const char           *crls = "", *one;
    jpki_err              store_err;
    int                   i, n = 0, crls_ok = 1, fresh;

    if (site->crl_lock) {
        apr_thread_rwlock_rdlock(site->crl_lock);
    }

    for (i = 0; i < site->rt_issuers->nelts; i++) {
        if (rt[i].spec->crl_file == NULL) {
            continue;
        }

        if (site->crlz) {
            /* a consistent copy of the slot, without a lock (ix: the
             * copy of its index's header, all that is read of it here) */
            if (jpki_crlz_read(site, &rt[i], &v)) {
                ix = v.ix;
                error = v.tried ? (jpki_err) v.error
                        : ix ? JPKI_OK : JPKI_ERR_REVOCATION_UNAVAILABLE;
                loaded = ix ? v.loaded : 0;
            } else {
                ix = NULL;
                error = JPKI_ERR_REVOCATION_UNAVAILABLE;
                loaded = 0;
            }
        } else {
            ix = rt[i].crl;
            error = rt[i].crl_error;
            loaded = rt[i].crl_loaded;
        }

        if (ix == NULL) {
            crls_ok = 0;
            one = apr_psprintf(r->pool, "{\"issuer\":\"%s\",\"loaded\":"
                               "false,\"error\":\"%s\"}", rt[i].spec->name,
                               jpki_reason(error));
        } else {
            ci = jpki_crl_index_info(ix);
            stale_at = jpki_crl_stale_after(ci, site->grace,
                           jpki_ctx_get_policy(site->ctx)->clock_skew);
            fresh = now <= stale_at;
            if (!fresh || error != JPKI_OK) {
                crls_ok = 0;
            }
            one = apr_psprintf(r->pool, "{\"issuer\":\"%s\",\"loaded\":"
                               "true,\"this_update\":%" APR_INT64_T_FMT
                               ",\"next_update\":%" APR_INT64_T_FMT
                               ",\"age\":%" APR_INT64_T_FMT ",\"entries\":%"
                               APR_UINT64_T_FMT ",\"crl_number\":%"
                               APR_INT64_T_FMT ",\"fresh\":%s,\"stale_at\":%"
                               APR_INT64_T_FMT ",\"loaded_at\":%"
                               APR_INT64_T_FMT ",\"last_load\":\"%s\"}",
                               rt[i].spec->name,
                               (apr_int64_t) ci->this_update,
                               (apr_int64_t) ci->next_update,
                               now - (apr_int64_t) ci->this_update,
                               (apr_uint64_t) ci->entries,
                               (apr_int64_t) ci->crl_number,
                               fresh ? "true" : "false",
                               stale_at == INT64_MAX ? (apr_int64_t) 0
                                                     : (apr_int64_t) stale_at,
                               (apr_int64_t) apr_time_sec(loaded),
                               jpki_reason(error));
        }
        crls = apr_pstrcat(r->pool, crls, n++ ? "," : "", one, NULL);
    }

    if (site->crl_lock) {
        apr_thread_rwlock_unlock(site->crl_lock);
    }

    /* the store: full (no room for a new key; Redis answering a write
     * -OOM at maxmemory), or not answering */
    store_err = JPKI_OK;
    if (site->store == JPKI_STORE_SHM) {
        if (site->zone == NULL || site->zone->locked == NULL) {
            store_err = JPKI_ERR_STORE;
        } else if (jpki_shm_is_full(site->zone->locked,
                                    (int64_t) (apr_time_now() / 1000)))
        {
            store_err = JPKI_ERR_STORE_FULL;
        }
    } else {
        /* a write, so that maxmemory shows */
        memset(&cmd, 0, sizeof(cmd));
        cmd.op = JPKI_STORE_SET;
        cmd.keylen = (size_t) apr_snprintf(cmd.key, sizeof(cmd.key), "%shealth",
                                           JPKI_STORE_PREFIX);
        cmd.vallen = (size_t) apr_snprintf((char *) cmd.val, sizeof(cmd.val),
                                           "%" APR_INT64_T_FMT, now);
        cmd.ttl_ms = 60 * 1000;
        if (!mjpki_store_exec(site, r, &cmd, 1, &res)) {
            store_err = JPKI_ERR_TIMEOUT;
        } else if (res.type == JPKI_STORE_R_FULL) {
            store_err = JPKI_ERR_STORE_FULL;
        } else if (res.type != JPKI_STORE_R_INT) {
            store_err = JPKI_ERR_STORE;
        }
    }

    *ok = store_err == JPKI_OK && crls_ok;

    return apr_psprintf(r->pool, "{\"status\":\"%s\",\"time\":%"
                        APR_INT64_T_FMT ",\"store\":{\"type\":\"%s\","
                        "\"ok\":%s%s%s%s},\"crls\":[%s]}",
                        *ok ? "ok" : "degraded", now,
                        site->store == JPKI_STORE_SHM ? "shm" : "redis",
                        store_err == JPKI_OK ? "true" : "false",
                        store_err == JPKI_OK ? "" : ",\"error\":\"",
                        store_err == JPKI_OK ? "" : jpki_reason(store_err),
                        store_err == JPKI_OK ? "" : "\"", crls);
}


/* ------------------------------------------------------------------ */
/* Mapping file                                                        */
/* ------------------------------------------------------------------ */

static void
jpki_map_free(jpki_map *m)
{
    if (m) {
        free(m->e);
        free(m);
    }
}


static int
jpki_map_cmp(const void *a, const void *b)
{
    return memcmp(((const jpki_map_entry *) a)->cert_id,
                  ((const jpki_map_entry *) b)->cert_id,
                  JPKI_CERT_ID_HEX_LEN);
}


/* "<cert_id> <account>" lines, '#' comments. */
static jpki_map *
jpki_map_read(const char *path, server_rec *s, char *why, size_t whylen)
{
    jpki_map        *m;
    jpki_map_entry  *e;
    uint8_t         *data;
    size_t           len, n = 0, alen, bad = 0;
    char            *line, *save, *sp, *acct;

    if (jpki_load_file_msg("mapping file", path, JPKI_MAP_FILE_MAX, &data,
                           &len, why, whylen)
        != JPKI_OK)
    {
        return NULL;
    }

    m = calloc(1, sizeof(jpki_map));
    e = malloc((len / (JPKI_CERT_ID_HEX_LEN + 2) + 1)
               * sizeof(jpki_map_entry));
    if (m == NULL || e == NULL) {
        free(m);
        free(e);
        free(data);
        apr_snprintf(why, whylen, "mapping file \"%s\": out of memory",
                     path);
        return NULL;
    }

    for (line = strtok_r((char *) data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
    {
        sp = line + strlen(line);
        while (sp > line && (sp[-1] == '\r' || sp[-1] == ' ')) {
            *--sp = '\0';
        }
        if (*line == '#' || *line == '\0') {
            continue;
        }
        acct = line + JPKI_CERT_ID_HEX_LEN + 1;
        alen = strlen(line) > JPKI_CERT_ID_HEX_LEN + 1 ? strlen(acct) : 0;
        if (alen == 0 || alen > JPKI_ACCOUNT_MAX
            || line[JPKI_CERT_ID_HEX_LEN] != ' '
            || strspn(line, "0123456789abcdef") != JPKI_CERT_ID_HEX_LEN
            || !jpki_account_valid(acct, alen))
        {
            bad++;
            continue;
        }
        memcpy(e[n].cert_id, line, JPKI_CERT_ID_HEX_LEN);
        memcpy(e[n].account, acct, alen);
        e[n].account[alen] = '\0';
        e[n].len = alen;
        n++;
    }

    free(data);

    if (bad) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "jpki: mapping file "
                     "\"%s\": %" APR_SIZE_T_FMT " malformed lines ignored "
                     "(expected \"<cert_id> <account>\")", path, bad);
    }

    qsort(e, n, sizeof(jpki_map_entry), jpki_map_cmp);
    m->e = e;
    m->n = n;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: mapping file \"%s\" "
                 "loaded, %" APR_SIZE_T_FMT " entries", path, n);

    return m;
}


/* Loads the file when it changed since the last load (mtime, size or
 * inode: a rename-replaced file within the same second counts). */
static void
jpki_map_load(jpki_site *site, apr_pool_t *tmp)
{
    apr_finfo_t   fi;
    apr_status_t  rv;
    jpki_map     *m, *old;
    char          why[512];

    rv = apr_stat(&fi, site->map_file, APR_FINFO_MTIME | APR_FINFO_SIZE
                                       | APR_FINFO_INODE, tmp);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: "
                         "cannot read mapping file \"%s\"", site->map_file);
            site->map_failed = 1;
        }
        return;
    }

    if (site->map != NULL && fi.mtime == site->map_mtime
        && fi.size == site->map_size && fi.inode == site->map_inode)
    {
        return;
    }

    m = jpki_map_read(site->map_file, site->server, why, sizeof(why));
    if (m == NULL) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: %s",
                         why);
            site->map_failed = 1;
        }
        return;
    }

    site->map_failed = 0;
    site->map_mtime = fi.mtime;
    site->map_size = fi.size;
    site->map_inode = fi.inode;

    if (site->map_lock) {
        apr_thread_rwlock_wrlock(site->map_lock);
    }
    old = site->map;
    site->map = m;
    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    jpki_map_free(old);
}


void
mjpki_files_refresh(jpki_site *site)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());
    apr_pool_t   *tmp;

    if (apr_atomic_read32(&site->files_checked) == now
        || site->files_mutex == NULL)
    {
        return;
    }

    /* one thread checks; the others go on with the tables they have */
    if (apr_thread_mutex_trylock(site->files_mutex) != APR_SUCCESS) {
        return;
    }

    if (apr_atomic_read32(&site->files_checked) != now) {
        apr_atomic_set32(&site->files_checked, now);
        if (apr_pool_create_unmanaged_ex(&tmp, NULL, NULL) == APR_SUCCESS) {
            if (site->map_file) {
                jpki_map_load(site, tmp);
            }
            jpki_crls_load(site, tmp);
            apr_pool_destroy(tmp);
        }
    }

    apr_thread_mutex_unlock(site->files_mutex);
}


size_t
mjpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    jpki_site  *site = ud;
    jpki_map   *m;
    size_t      lo, hi, mid, len = 0;
    int         c;

    if (cert_id == NULL || strlen(cert_id) != JPKI_CERT_ID_HEX_LEN) {
        return 0;
    }

    if (site->map_lock) {
        apr_thread_rwlock_rdlock(site->map_lock);
    }

    m = site->map;
    lo = 0;
    hi = m ? m->n : 0;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = memcmp(m->e[mid].cert_id, cert_id, JPKI_CERT_ID_HEX_LEN);
        if (c == 0) {
            memcpy(out, m->e[mid].account, m->e[mid].len);
            out[m->e[mid].len] = '\0';
            len = m->e[mid].len;
            break;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }

    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    return len;
}


static apr_status_t
jpki_map_cleanup(void *data)
{
    jpki_site  *site = data;

    jpki_map_free(site->map);
    site->map = NULL;

    return APR_SUCCESS;
}


/* ------------------------------------------------------------------ */
/* Process setup                                                       */
/* ------------------------------------------------------------------ */

int
mjpki_io_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    server_rec  *sv;
    jpki_site   *site;
    const char  *name, *mutex_id;
    apr_ssize_t  klen;
    int          preflight, ncrlz = 0;

    preflight = ap_state_query(AP_SQ_MAIN_STATE)
                == AP_SQ_MS_CREATE_PRE_CONFIG;

    for (sv = s; sv; sv = sv->next) {
        site = jpki_srv(sv)->site;
        if (!site->built || site->io_ready) {
            continue;
        }
        site->io_ready = 1;

        if (site->store == JPKI_STORE_SHM) {
            site->zone = jpki_zone_setup(ptemp, sv, site->shm_zone,
                                         site->shm_zone, site->shm_size,
                                         "store zone");
            if (site->zone == NULL) {
                return !OK;
            }
        }

        if (site->store == JPKI_STORE_REDIS) {
            /* one per Redis server and db: the sites on it share it (a
             * marker is keyed by a cert_id of one site secret) */
            name = apr_psprintf(ptemp, "logouts:%s/%d", site->redis_addr,
                                site->redis_db);
            klen = APR_HASH_KEY_STRING;
            mutex_id = apr_psprintf(ptemp, "logouts-%08x",
                                    apr_hashfunc_default(name, &klen));
            site->mirror = jpki_zone_setup(ptemp, sv, name, mutex_id,
                                           JPKI_MIRROR_SIZE, "logout mirror");
            if (site->mirror == NULL) {
                return !OK;
            }
        }

        if (site->crl_zone_size > 0
            && jpki_crlz_setup(ptemp, sv, site, ncrlz++) != OK)
        {
            return !OK;
        }

        if (preflight) {
            /* the real start follows: load the files then, once */
            continue;
        }

        /* once in the parent: the children share these pages until a
         * file changes (with a CRL zone: into the zone, unless the files
         * are there already, loaded before a restart) */
        jpki_crls_load(site, ptemp);
        apr_pool_cleanup_register(pconf, site, jpki_crl_cleanup,
                                  apr_pool_cleanup_null);

        if (site->map_file) {
            jpki_map_load(site, ptemp);
            apr_pool_cleanup_register(pconf, site, jpki_map_cleanup,
                                      apr_pool_cleanup_null);
        }
        apr_atomic_set32(&site->files_checked,
                         (apr_uint32_t) apr_time_sec(apr_time_now()));
    }

    if (!preflight) {
        jpki_crlz_sweep(s);
    }

    return OK;
}


void
mjpki_io_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec    *sv;
    jpki_site     *site;
    apr_status_t   rv;

    for (sv = s; sv; sv = sv->next) {
        site = jpki_srv(sv)->site;
        if (!site->built || site->child_ready) {
            continue;
        }
        site->child_ready = 1;

        jpki_zone_child_init(site->zone, pchild, sv, "store zone");
        jpki_zone_child_init(site->mirror, pchild, sv, "logout mirror");

        if (site->crlz && !site->crlz->child_ready) {
            site->crlz->child_ready = 1;
            rv = apr_global_mutex_child_init(&site->crlz->mutex,
                                             site->crlz->lockfile, pchild);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, sv, "jpki: cannot "
                             "attach the mutex of CRL zone %s",
                             site->crlz->name);
            }
        }

        apr_thread_mutex_create(&site->redis_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->files_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->flight_mutex,
                                APR_THREAD_MUTEX_DEFAULT, pchild);
        apr_thread_cond_create(&site->flight_cond, pchild);
        apr_thread_rwlock_create(&site->map_lock, pchild);
        apr_thread_rwlock_create(&site->crl_lock, pchild);

        /* idle Redis connections are closed when the child exits */
        apr_pool_cleanup_register(pchild, site, jpki_redis_pool_cleanup,
                                  apr_pool_cleanup_null);

        jpki_poller_start(site, pchild, sv);
    }
}
