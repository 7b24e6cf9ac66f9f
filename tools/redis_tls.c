/*
 * redis_tls.c - TLS for jpkictl's Redis connections.  hiredis 0.14 has no
 * TLS of its own: it talks to one end of a socketpair, and a thread
 * carries the bytes between the other end and the TLS connection to
 * Redis.  The server is verified as the gate verifies it (the core's
 * context, jpki_tls_client_ctx, and jpki_tls_peer_check: the chain to
 * --redis-tls-ca, the name --redis-tls-name or the host), and the client
 * certificate is the core's too (jpki_tls_client_cert).
 */
#include "jpkictl.h"
#include "redis.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

struct tunnel {
    SSL *ssl;
    SSL_CTX *ctx;
    int tcp, end;               /* the TLS socket, the socketpair's end */
    int wake;                   /* readable: end now (redis_tls_end) */
};

/* The tunnels' threads, joined at exit (redis_tls_end, before OpenSSL's
 * own clean-up): a thread still running then would leave its OpenSSL
 * state behind. */
#define MAX_TUNNELS 16
static struct {
    pthread_t th;
    int wake;                   /* main's end of the thread's wake pair */
} tunnels[MAX_TUNNELS];
static size_t n_tunnels;

static void redis_tls_end(void)
{
    size_t i;

    for (i = 0; i < n_tunnels; i++) {
        /* (a thread that ended has closed its end: no SIGPIPE) */
        (void)!send(tunnels[i].wake, "x", 1, MSG_NOSIGNAL);
        pthread_join(tunnels[i].th, NULL);
        close(tunnels[i].wake);
    }
    n_tunnels = 0;
}

/* The TLS context of the options: CA, and the client certificate. */
SSL_CTX *redis_tls_ctx(const args_t *a)
{
    char err[600];
    SSL_CTX *ctx = NULL;

    if (jpki_tls_client_ctx(a->val[O_REDIS_TLS_CA], &ctx, err, sizeof(err))
            != JPKI_OK
        || (a->val[O_REDIS_TLS_CERT] != NULL
            && jpki_tls_client_cert(ctx, a->val[O_REDIS_TLS_CERT],
                                    a->val[O_REDIS_TLS_KEY], err,
                                    sizeof(err)) != JPKI_OK)) {
        say("--redis-tls: %s", err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void tunnel_free(struct tunnel *t)
{
    if (t->ssl != NULL) {
        (void)SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    SSL_CTX_free(t->ctx);
    if (t->tcp >= 0)
        close(t->tcp);
    if (t->end >= 0)
        close(t->end);
    if (t->wake >= 0)
        close(t->wake);
    free(t);
}

/* Waits (3 s at most) for what an SSL call on t's socket wants: 0, or -1
 * when it failed for good. */
static int tls_wait(struct tunnel *t, int r)
{
    struct pollfd p;

    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        p.events = POLLIN;
        break;
    case SSL_ERROR_WANT_WRITE:
        p.events = POLLOUT;
        break;
    default:
        return -1;
    }
    p.fd = t->tcp;
    p.revents = 0;
    return poll(&p, 1, 3000) > 0 ? 0 : -1;
}

/* hiredis's bytes (n of buf) over TLS: 0, -1 failed. */
static int tls_send(struct tunnel *t, const char *buf, int n)
{
    int r;

    while ((r = SSL_write(t->ssl, buf, n)) <= 0)
        if (tls_wait(t, r) != 0)
            return -1;
    return 0;
}

/* What TLS has for hiredis now: 0 (all of it read), -1 the connection
 * ended. */
static int tls_recv(struct tunnel *t)
{
    char buf[16384];
    int r;

    for (;;) {
        r = SSL_read(t->ssl, buf, sizeof(buf));
        if (r > 0) {
            if (write(t->end, buf, (size_t)r) != r)
                return -1;
            continue;
        }
        if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ)
            return 0;                   /* (a record without data too) */
        if (tls_wait(t, r) != 0)
            return -1;
    }
}

/* The thread: hiredis's bytes out over TLS, Redis's back, until either
 * side ends. */
static void *tunnel_run(void *arg)
{
    struct tunnel *t = arg;
    struct pollfd p[3];
    char buf[16384];
    ssize_t n;

    for (;;) {
        p[0].fd = t->end;
        p[0].events = POLLIN;
        p[1].fd = t->tcp;
        p[1].events = POLLIN;
        p[2].fd = t->wake;
        p[2].events = POLLIN;
        p[0].revents = p[1].revents = p[2].revents = 0;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[2].revents)
            break;
        if (p[0].revents) {
            n = read(t->end, buf, sizeof(buf));
            if (n <= 0 || tls_send(t, buf, (int)n) != 0)
                break;
        }
        if (p[1].revents && tls_recv(t) != 0)
            break;
    }
    ERR_clear_error();
    tunnel_free(t);
    OPENSSL_thread_stop();
    return NULL;
}

/* A TCP connection to host:port within the timeout; -1 after a message. */
static int tcp_connect(const char *host, int port)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct timeval tv = {3, 0};
    char svc[8];
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(svc, sizeof(svc), "%d", port);
    if (getaddrinfo(host, svc, &hints, &res) != 0) {
        say("redis: %.200s does not resolve", host);
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        say("redis: cannot connect to %.200s:%d", host, port);
    return fd;
}

redisContext *redis_tls_connect(const args_t *a, const char *host, int port)
{
    struct tunnel *t = calloc(1, sizeof(*t));
    const char *name = a->val[O_REDIS_TLS_NAME] != NULL
                       ? a->val[O_REDIS_TLS_NAME] : host;
    char why[300], e[256];
    pthread_t th;
    int sp[2] = {-1, -1}, wp[2] = {-1, -1};
    redisContext *rc;

    if (t == NULL)
        return NULL;
    t->tcp = t->end = t->wake = -1;
    if (n_tunnels == MAX_TUNNELS) {
        say("redis: more than %d TLS connections", MAX_TUNNELS);
        free(t);
        return NULL;
    }
    if ((t->ctx = redis_tls_ctx(a)) == NULL
        || (t->tcp = tcp_connect(host, port)) < 0)
        goto failed;
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, t->tcp) != 1)
        goto failed;
    jpki_tls_set_server_name(t->ssl, name);
    if (SSL_connect(t->ssl) != 1) {
        ERR_error_string_n(ERR_peek_last_error(), e, sizeof(e));
        say("redis TLS handshake failed: %s", e);
        goto failed;
    }
    if (jpki_tls_peer_check(t->ssl, name, why, sizeof(why)) != NULL) {
        say("redis %s", why);
        goto failed;
    }
    /* from now on the thread waits in poll(), never in a read */
    if (fcntl(t->tcp, F_SETFL, fcntl(t->tcp, F_GETFL) | O_NONBLOCK) != 0
        || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, wp) != 0
        || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
        goto failed;
    t->end = sp[1];
    t->wake = wp[0];
    rc = redisConnectFd(sp[0]);
    if (rc == NULL || rc->err) {
        redisFree(rc);
        goto failed;
    }
    if (pthread_create(&th, NULL, tunnel_run, t) != 0) {
        redisFree(rc);
        sp[0] = -1;
        goto failed;
    }
    if (n_tunnels == 0)
        atexit(redis_tls_end);        /* after OpenSSL's: runs before it */
    tunnels[n_tunnels].th = th;
    tunnels[n_tunnels].wake = wp[1];
    n_tunnels++;
    return rc;
failed:
    ERR_clear_error();
    if (sp[0] >= 0 && t->end < 0)
        close(sp[0]);
    if (wp[1] >= 0)
        close(wp[1]);
    if (wp[0] >= 0 && t->wake < 0)
        close(wp[0]);
    tunnel_free(t);
    return NULL;
}
