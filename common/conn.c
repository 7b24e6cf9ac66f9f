/* conn.c - a client connection of the gate driven step by step (conn.h):
 * connect, TLS, the request written, the answer read into the Redis round
 * or the OCSP answer, until the socket says EAGAIN; the sentences the
 * adapters log; the rules of keeping, retrying and sharing.  Sockets are
 * non-blocking: no call here ever waits. */
#include "conn.h"
#include "sentinel.h"
#include "conf.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

/* the stages of a connection */
enum { ST_CONNECT, ST_TLS, ST_SEND, ST_RECV, ST_END };
/* what it carries */
enum { K_NONE, K_REDIS, K_HTTP, K_SENTINEL };
/* (a step's stage went through: on to the next) */
#define GO_ON 3
/* conn_read()'s waits */
#define RD_WANT_READ (-2)
#define RD_WANT_WRITE (-3)

struct jpki_conn {
    int fd;
    int own_fd;
    int connecting;             /* connect() under way */
    int stage;
    int kind;
    jpki_conn_state state;
    int io_error;               /* the socket failed (not the protocol) */
    int timed_out;
    int unusable;               /* not to be kept */
    unsigned rounds;            /* Redis rounds started on it */
    SSL *ssl;
    char *tls_name;
    char *what, *where;
    jpki_redis_round *round;
    const char *out;
    size_t out_len, sent;
    char *req;                  /* the OCSP request, the sentinel query */
    jpki_ocsp_answer answer;
    char *sbuf;                 /* a sentinel's answer, as read */
    size_t slen;
    int sauth;                  /* its AUTH's +OK still to come */
    size_t reqlen;              /* bytes of req (cleansed at the end) */
    jpki_sentinel_addr primary; /* ... the primary it named */
    int has_reason;
    char reason[512];
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s != NULL ? s : "") + 1;
    char *d = malloc(n);

    if (d != NULL)
        memcpy(d, s != NULL ? s : "", n);
    return d;
}

jpki_conn *jpki_conn_new(int fd, int connecting, const char *what,
                         const char *where)
{
    jpki_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->connecting = connecting;
    c->stage = ST_CONNECT;
    c->state = JPKI_CONN_WANT_WRITE;
    c->what = dup_str(what);
    c->where = dup_str(where);
    if (c->what == NULL || c->where == NULL) {
        jpki_conn_free(c);
        return NULL;
    }
    return c;
}

static void say(jpki_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(jpki_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    c->has_reason = 1;
}

static jpki_conn_state conn_failed(jpki_conn *c, int io)
{
    c->state = JPKI_CONN_FAILED;
    c->io_error |= io;
    c->unusable = 1;
    ERR_clear_error();
    return c->state;
}

static jpki_conn_state connect_failed(jpki_conn *c, int err)
{
    char buf[128];

    say(c, "cannot connect to %s %s: %s", c->what, c->where,
        strerror_r(err, buf, sizeof(buf)));
    return conn_failed(c, 1);
}

jpki_conn *jpki_conn_open(const struct sockaddr *sa, socklen_t len,
                          const char *what, const char *where)
{
    jpki_conn *c;
    int fd, one = 1;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c = jpki_conn_new(fd, 1, what, where);
    if (c == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    c->own_fd = 1;
    if (fd < 0) {
        connect_failed(c, errno);
        return c;
    }
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, sa, len) == 0)
        c->connecting = 0;
    else if (errno != EINPROGRESS && errno != EINTR)
        connect_failed(c, errno);
    return c;
}

/* The chain is checked after the handshake (its result, with its reason,
 * read by jpki_tls_peer_check), whatever the context's own callback: the
 * handshake does not stop at a refused certificate. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    (void)x;
    return ok;
}

jpki_err jpki_conn_tls(jpki_conn *c, SSL_CTX *ctx, const char *name)
{
    if (c->ssl != NULL || ctx == NULL)
        return JPKI_ERR_INVALID;
    if (c->state == JPKI_CONN_FAILED)
        return JPKI_OK;                 /* its first step says why */
    c->tls_name = dup_str(name);
    c->ssl = SSL_new(ctx);
    if (c->tls_name == NULL || c->ssl == NULL
        || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        return JPKI_ERR_NOMEM;
    }
    SSL_set_verify(c->ssl, SSL_VERIFY_NONE, verify_cb);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                         | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    jpki_tls_set_server_name(c->ssl, c->tls_name);
    SSL_set_connect_state(c->ssl);
    return JPKI_OK;
}

int jpki_conn_fd(const jpki_conn *c)
{
    return c->fd;
}

const char *jpki_conn_where(const jpki_conn *c)
{
    return c->where;
}

SSL *jpki_conn_ssl(const jpki_conn *c)
{
    return c->ssl;
}

/* A new exchange's bytes: from the start of the request. */
static void exchange_start(jpki_conn *c, const char *out, size_t len)
{
    c->out = out;
    c->out_len = len;
    c->sent = 0;
    c->io_error = 0;
    c->timed_out = 0;
    if (c->state == JPKI_CONN_FAILED)
        return;                         /* (its connect failed: the first
                                           step says why) */
    c->has_reason = 0;
    if (c->stage == ST_END)
        c->stage = ST_SEND;
    c->state = JPKI_CONN_WANT_WRITE;
}

jpki_err jpki_conn_redis(jpki_conn *c, const jpki_redis_auth *auth,
                         const jpki_store_cmd *cmds, size_t n,
                         jpki_store_result *res)
{
    const char *out;
    size_t len;
    jpki_err e;

    if (c->kind == K_HTTP || (c->rounds > 0 && c->state != JPKI_CONN_DONE))
        return JPKI_ERR_INVALID;
    if (c->round == NULL)
        c->round = jpki_redis_round_new();
    if (c->round == NULL)
        return JPKI_ERR_NOMEM;
    e = jpki_redis_round_start(c->round, c->rounds == 0 ? auth : NULL, cmds,
                               n, res);
    if (e != JPKI_OK) {
        say(c, "%s: the commands cannot be sent", c->what);
        conn_failed(c, 0);
        return e;
    }
    c->kind = K_REDIS;
    c->rounds++;
    out = jpki_redis_round_out(c->round, &len);
    exchange_start(c, out, len);
    return JPKI_OK;
}

jpki_err jpki_conn_ocsp(jpki_conn *c, const char *host, const char *path,
                        const uint8_t *body, size_t len)
{
    size_t head, max;
    uint8_t *buf;

    if (c->kind != K_NONE)
        return JPKI_ERR_INVALID;
    max = strlen(host) + strlen(path) + 256;
    c->req = malloc(max + len);
    buf = malloc(JPKI_OCSP_ANSWER_MAX);
    if (c->req == NULL || buf == NULL) {
        free(buf);
        return JPKI_ERR_NOMEM;
    }
    jpki_ocsp_answer_init(&c->answer, buf, JPKI_OCSP_ANSWER_MAX);
    head = jpki_ocsp_http_request(host, path, len, c->req, max);
    if (head == 0)
        return JPKI_ERR_INVALID;
    memcpy(c->req + head, body, len);
    c->kind = K_HTTP;
    exchange_start(c, c->req, head + len);
    return JPKI_OK;
}

#define SENTINEL_REQ_MAX (128 + JPKI_CONF_PASSWORD_MAX + 32)

jpki_err jpki_conn_sentinel(jpki_conn *c, const char *master,
                            const char *password)
{
    size_t len = 0, q;

    if (c->kind != K_NONE)
        return JPKI_ERR_INVALID;
    c->req = malloc(SENTINEL_REQ_MAX);
    c->sbuf = malloc(JPKI_SENTINEL_ANSWER_MAX);
    if (c->req == NULL || c->sbuf == NULL)
        return JPKI_ERR_NOMEM;
    c->reqlen = SENTINEL_REQ_MAX;
    if (password != NULL && password[0] != '\0') {
        len = jpki_sentinel_auth(password, c->req, SENTINEL_REQ_MAX);
        if (len == 0)
            return JPKI_ERR_INVALID;
        c->sauth = 1;
    }
    q = jpki_sentinel_query(master, c->req + len, SENTINEL_REQ_MAX - len);
    if (q == 0)
        return JPKI_ERR_INVALID;
    c->kind = K_SENTINEL;
    exchange_start(c, c->req, len + q);
    return JPKI_OK;
}

const jpki_sentinel_addr *jpki_conn_primary(const jpki_conn *c)
{
    return c->kind == K_SENTINEL && c->state == JPKI_CONN_DONE ? &c->primary
                                                               : NULL;
}

const jpki_ocsp_answer *jpki_conn_answer(const jpki_conn *c)
{
    return c->kind == K_HTTP && c->state == JPKI_CONN_DONE ? &c->answer
                                                           : NULL;
}

/* What OpenSSL says of the last failure (or of the socket's). */
static const char *tls_error(char *buf, size_t max)
{
    unsigned long e = ERR_peek_last_error();
    int err = errno;

    if (e != 0) {
        ERR_error_string_n(e, buf, max);
        return buf;
    }
    return err != 0 ? strerror_r(err, buf, max) : "closed the connection";
}

static jpki_conn_state stage_connect(jpki_conn *c)
{
    struct pollfd p;
    socklen_t len = sizeof(int);
    int err = 0, n;

    if (c->connecting) {
        /* (a step before the socket said it is writable) */
        p.fd = c->fd;
        p.events = POLLOUT;
        p.revents = 0;
        n = poll(&p, 1, 0);
        if (n == 0 || (n < 0 && errno == EINTR))
            return JPKI_CONN_WANT_WRITE;
        if (n < 0)
            return connect_failed(c, errno);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        if (err != 0)
            return connect_failed(c, err);
        c->connecting = 0;
    }
    c->stage = c->ssl != NULL ? ST_TLS : ST_SEND;
    return GO_ON;
}

static jpki_conn_state stage_tls(jpki_conn *c)
{
    char buf[256];
    const char *why;
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            return JPKI_CONN_WANT_READ;
        case SSL_ERROR_WANT_WRITE:
            return JPKI_CONN_WANT_WRITE;
        default:
            say(c, "%s TLS handshake failed: %s", c->what,
                tls_error(buf, sizeof(buf)));
            return conn_failed(c, 1);
        }
    }
    /* the server certificate must chain to the CAs and name the host:
     * DNS name or IP address */
    why = jpki_tls_peer_check(c->ssl, c->tls_name, buf, sizeof(buf));
    if (why != NULL) {
        say(c, "%s %s", c->what, why);
        return conn_failed(c, 0);
    }
    c->stage = ST_SEND;
    return GO_ON;
}

/* Reads into buf: > 0 bytes, 0 EOF, -1 failed (errno, or OpenSSL's
 * queue), RD_WANT_* for a wait. */
static ssize_t conn_read(jpki_conn *c, void *buf, size_t max)
{
    ssize_t n;
    int r;

    if (max > INT_MAX)
        max = INT_MAX;
    if (c->ssl == NULL) {
        do
            n = recv(c->fd, buf, max, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return RD_WANT_READ;
        return n;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_read(c->ssl, buf, (int)max);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return RD_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return RD_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return -1;
    }
}

/* A write failed over TLS: the server's alert, if one came (a client
 * certificate refused after the handshake, TLS 1.3), says more than the
 * reset that followed it. */
static void tls_alert(jpki_conn *c)
{
    char b[64], buf[256];

    ERR_clear_error();
    errno = 0;
    if (SSL_read(c->ssl, b, sizeof(b)) <= 0 && ERR_peek_last_error() != 0)
        say(c, "%s TLS connection failed: %s", c->what,
            tls_error(buf, sizeof(buf)));
}

static jpki_conn_state stage_send(jpki_conn *c)
{
    char buf[256];
    size_t left;
    ssize_t n;
    int r;

    while (c->sent < c->out_len) {
        left = c->out_len - c->sent;
        if (c->ssl == NULL) {
            n = send(c->fd, c->out + c->sent, left, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return JPKI_CONN_WANT_WRITE;
            if (n <= 0) {
                say(c, "%s send failed: %s", c->what,
                    strerror_r(n < 0 ? errno : EPIPE, buf, sizeof(buf)));
                return conn_failed(c, 1);
            }
        } else {
            ERR_clear_error();
            errno = 0;
            n = SSL_write(c->ssl, c->out + c->sent,
                          (int)(left > INT_MAX ? INT_MAX : left));
            if (n <= 0) {
                r = SSL_get_error(c->ssl, (int)n);
                if (r == SSL_ERROR_WANT_WRITE)
                    return JPKI_CONN_WANT_WRITE;
                if (r == SSL_ERROR_WANT_READ)
                    return JPKI_CONN_WANT_READ;
                say(c, "%s send failed: %s", c->what,
                    tls_error(buf, sizeof(buf)));
                tls_alert(c);
                return conn_failed(c, 1);
            }
        }
        c->sent += (size_t)n;
    }
    c->stage = ST_RECV;
    return GO_ON;
}

/* The round's end: its results stand (DONE), or why it failed. */
static jpki_conn_state redis_end(jpki_conn *c, jpki_round_state st)
{
    const char *why = jpki_redis_round_reason(c->round);
    char extra[64];
    ssize_t n;

    if (st == JPKI_ROUND_DONE && c->ssl != NULL && SSL_has_pending(c->ssl)) {
        /* bytes read beyond the replies (a record without data, like a
         * session ticket, is no reply): out of step */
        n = conn_read(c, extra, sizeof(extra));
        if (n > 0)
            (void)jpki_redis_round_feed(c->round, extra, (size_t)n);
        why = jpki_redis_round_reason(c->round);
    }
    if (why != NULL)
        say(c, "%s %s", c->what, why);
    if (st != JPKI_ROUND_DONE)
        return conn_failed(c, 0);
    if (!jpki_redis_round_keep(c->round))
        c->unusable = 1;
    c->stage = ST_END;
    return JPKI_CONN_DONE;
}

static jpki_conn_state stage_recv_redis(jpki_conn *c)
{
    char buf[4096], tlsbuf[256];
    jpki_round_state st;
    const char *more;
    size_t len;
    ssize_t n;

    do {
        n = conn_read(c, buf, sizeof(buf));
        if (n == RD_WANT_READ || n == RD_WANT_WRITE)
            return n == RD_WANT_READ ? JPKI_CONN_WANT_READ
                                     : JPKI_CONN_WANT_WRITE;
        if (n > 0) {
            st = jpki_redis_round_feed(c->round, buf, (size_t)n);
        } else {
            /* EOF or a reset: nothing more will come; over TLS, the
             * server's alert says why (a client certificate refused) */
            c->io_error = 1;
            st = jpki_redis_round_eof(c->round);
            if (n < 0 && c->ssl != NULL && ERR_peek_last_error() != 0) {
                say(c, "%s TLS connection failed: %s", c->what,
                    tls_error(tlsbuf, sizeof(tlsbuf)));
                return conn_failed(c, 1);
            }
        }
        /* ROLE said "master": the commands held go now */
        more = st == JPKI_ROUND_MORE
               ? jpki_redis_round_more_out(c->round, &len) : NULL;
        if (more != NULL) {
            c->out = more;
            c->out_len = len;
            c->sent = 0;
            c->stage = ST_SEND;
            return GO_ON;
        }
    } while (st == JPKI_ROUND_MORE);
    return redis_end(c, st);
}

static jpki_conn_state stage_recv_http(jpki_conn *c)
{
    char buf[256];
    uint8_t *p;
    size_t room;
    ssize_t n;
    int r;

    for (;;) {
        p = jpki_ocsp_answer_room(&c->answer, &room);
        errno = 0;
        n = conn_read(c, p, room);
        if (n == RD_WANT_READ || n == RD_WANT_WRITE)
            return n == RD_WANT_READ ? JPKI_CONN_WANT_READ
                                     : JPKI_CONN_WANT_WRITE;
        if (n < 0) {
            say(c, "reading from %s %s failed: %s", c->what, c->where,
                c->ssl != NULL ? tls_error(buf, sizeof(buf))
                               : strerror_r(errno, buf, sizeof(buf)));
            return conn_failed(c, 1);
        }
        r = jpki_ocsp_answer_read(&c->answer, (size_t)n, n == 0);
        if (r < 0) {
            say(c, "%s (%s)", c->answer.reason, c->where);
            return conn_failed(c, 0);
        }
        if (r == 1) {
            c->stage = ST_END;
            c->unusable = 1;                  /* Connection: close */
            return JPKI_CONN_DONE;
        }
    }
}

/* A sentinel's answer, read until it is whole (at most
 * JPKI_SENTINEL_ANSWER_MAX bytes). */
static jpki_conn_state stage_recv_sentinel(jpki_conn *c)
{
    char why[128], buf[128];
    ssize_t n;
    int r;

    for (;;) {
        errno = 0;
        n = conn_read(c, c->sbuf + c->slen,
                      JPKI_SENTINEL_ANSWER_MAX - c->slen);
        if (n == RD_WANT_READ || n == RD_WANT_WRITE)
            return n == RD_WANT_READ ? JPKI_CONN_WANT_READ
                                     : JPKI_CONN_WANT_WRITE;
        if (n <= 0) {
            say(c, "%s %s: %s", c->what, c->where, n == 0
                ? "closed the connection before its answer"
                : c->ssl != NULL ? tls_error(buf, sizeof(buf))
                : strerror_r(errno, buf, sizeof(buf)));
            return conn_failed(c, 1);
        }
        c->slen += (size_t)n;
        if (c->sauth) {                       /* AUTH's +OK first */
            size_t used = 0;

            r = jpki_sentinel_auth_answer(c->sbuf, c->slen, &used, why,
                                          sizeof(why));
            if (r < 0) {
                say(c, "%s %s %s (sentinel_password_file=)", c->what,
                    c->where, why);
                return conn_failed(c, 0);
            }
            if (r == 0)
                continue;
            memmove(c->sbuf, c->sbuf + used, c->slen - used);
            c->slen -= used;
            c->sauth = 0;
            if (c->slen == 0)
                continue;
        }
        r = jpki_sentinel_answer(c->sbuf, c->slen, &c->primary, why,
                                 sizeof(why));
        if (r < 0) {
            say(c, "%s %s %s", c->what, c->where, why);
            return conn_failed(c, 0);
        }
        if (r == 1) {
            c->stage = ST_END;
            c->unusable = 1;                  /* one query a connection */
            return JPKI_CONN_DONE;
        }
    }
}

jpki_conn_state jpki_conn_step(jpki_conn *c)
{
    jpki_conn_state st;

    if (c->state == JPKI_CONN_FAILED || c->state == JPKI_CONN_DONE)
        return c->state;
    for (;;) {
        switch (c->stage) {
        case ST_CONNECT:
            st = stage_connect(c);
            break;
        case ST_TLS:
            st = stage_tls(c);
            break;
        case ST_SEND:
            st = c->kind == K_NONE ? JPKI_CONN_WANT_WRITE : stage_send(c);
            break;
        case ST_RECV:
            st = c->kind == K_REDIS ? stage_recv_redis(c)
                 : c->kind == K_SENTINEL ? stage_recv_sentinel(c)
                 : stage_recv_http(c);
            break;
        default:
            st = c->state;
            break;
        }
        if ((int)st != GO_ON) {
            c->state = st;
            return st;
        }
    }
}

jpki_conn_state jpki_conn_state_of(const jpki_conn *c)
{
    return c->state;
}

int jpki_conn_ready(const jpki_conn *c)
{
    return c->stage >= ST_SEND;
}

void jpki_conn_timeout(jpki_conn *c)
{
    if (c->state == JPKI_CONN_FAILED || c->state == JPKI_CONN_DONE)
        return;
    if (c->stage == ST_CONNECT)
        say(c, "cannot connect to %s %s (timed out)", c->what, c->where);
    else if (c->stage == ST_TLS)
        say(c, "%s TLS handshake timed out", c->what);
    else if (c->kind == K_REDIS)
        say(c, "%s command timed out", c->what);
    else
        say(c, "%s timed out (%s)", c->what, c->where);
    c->timed_out = 1;
    conn_failed(c, 0);
}

void jpki_conn_fail(jpki_conn *c, const char *why)
{
    say(c, "%s: %s", c->what, why);
    conn_failed(c, 0);
}

int jpki_conn_timed_out(const jpki_conn *c)
{
    return c->timed_out;
}

const char *jpki_conn_reason(const jpki_conn *c)
{
    return c->has_reason ? c->reason : NULL;
}

int jpki_conn_keep(const jpki_conn *c, unsigned idle, unsigned max)
{
    return c->kind == K_REDIS && c->state == JPKI_CONN_DONE && !c->unusable
           && jpki_redis_round_keep(c->round) && idle < max;
}

int jpki_conn_retry(const jpki_conn *c, unsigned tries)
{
    return c->kind == K_REDIS && c->state == JPKI_CONN_FAILED
           && c->io_error && !c->timed_out
           && jpki_redis_round_retry(c->round, c->rounds > 1, tries);
}

int jpki_conn_rediscover(const jpki_conn *c)
{
    if (c->kind != K_REDIS)
        return 0;
    if (c->round != NULL && jpki_redis_round_not_primary(c->round))
        return 1;
    return c->state == JPKI_CONN_FAILED && (c->io_error || c->timed_out);
}

int jpki_conn_retry_primary(const jpki_conn *c, unsigned tries)
{
    if (tries != 0 || c->kind != K_REDIS || c->timed_out)
        return 0;
    if (jpki_redis_round_not_primary(c->round))
        return 1;
    return c->state == JPKI_CONN_FAILED && c->io_error
           && !jpki_redis_round_cmds_out(c->round);
}

jpki_conn_next jpki_conn_after(const jpki_conn *c, int sentinels,
                               unsigned tries)
{
    if (sentinels && jpki_conn_rediscover(c)
        && jpki_conn_retry_primary(c, tries))
        return JPKI_CONN_AGAIN_PRIMARY;
    if (jpki_conn_retry(c, tries))
        return JPKI_CONN_AGAIN;
    return JPKI_CONN_OVER;
}

int jpki_conn_idle(jpki_conn *c)
{
    char b;
    ssize_t n;

    if (c->state != JPKI_CONN_DONE || c->unusable)
        return 0;
    if (c->ssl != NULL) {
        /* records without data (session tickets) are read here */
        n = conn_read(c, &b, 1);
        ERR_clear_error();
    } else {
        do
            n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            n = RD_WANT_READ;
    }
    if (n != RD_WANT_READ)
        c->unusable = 1;
    return !c->unusable;
}

void jpki_conn_free(jpki_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl))
            (void)SSL_shutdown(c->ssl);       /* close_notify, no wait */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    if (c->own_fd && c->fd >= 0)
        close(c->fd);
    jpki_redis_round_free(c->round);
    free(c->answer.buf);
    if (c->req != NULL && c->reqlen > 0)
        OPENSSL_cleanse(c->req, c->reqlen);   /* a sentinel's password */
    free(c->req);
    free(c->sbuf);
    free(c->tls_name);
    free(c->what);
    free(c->where);
    free(c);
}

/* ------------------------------------------------------------------ */
/* OCSP flights                                                        */
/* ------------------------------------------------------------------ */

int jpki_flight_shared(const char *key, size_t len)
{
    size_t i;

    if (key == NULL || len != JPKI_CERT_ID_HEX_LEN)
        return 0;
    for (i = 0; i < len; i++)
        if (!((key[i] >= '0' && key[i] <= '9')
              || (key[i] >= 'a' && key[i] <= 'f')))
            return 0;
    return 1;
}

jpki_flight *jpki_flight_find(jpki_flight *list, const void *scope,
                              const char *key, size_t len)
{
    jpki_flight *f;

    if (!jpki_flight_shared(key, len))
        return NULL;
    for (f = list; f != NULL; f = f->next)
        if (f->scope == scope && memcmp(f->key, key, len) == 0)
            return f;
    return NULL;
}

void jpki_flight_start(jpki_flight **list, jpki_flight *f, const void *scope,
                       const char *key, size_t len)
{
    f->next = NULL;
    f->scope = scope;
    f->key[0] = '\0';
    if (!jpki_flight_shared(key, len))
        return;                                 /* a query of its own */
    memcpy(f->key, key, len);
    f->key[len] = '\0';
    f->next = *list;
    *list = f;
}

void jpki_flight_land(jpki_flight **list, jpki_flight *f)
{
    jpki_flight **pp;

    for (pp = list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->next = NULL;
}

int jpki_flight_done(jpki_flight **list, jpki_flight *f, int status,
                     const uint8_t *body, size_t len)
{
    jpki_flight_land(list, f);
    f->done = 1;
    f->status = status;
    if (status && f->waiters > 0 && len > 0) {
        f->body = malloc(len);
        if (f->body != NULL) {
            memcpy(f->body, body, len);
            f->body_len = len;
        } else {
            f->status = 0;
        }
    }
    return f->waiters == 0;
}

int jpki_flight_leave(jpki_flight *f)
{
    if (--f->waiters > 0 || !f->done)
        return 0;
    free(f->body);
    f->body = NULL;
    return 1;
}
