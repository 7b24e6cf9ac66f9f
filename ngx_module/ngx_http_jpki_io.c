/*
 * ngx_http_jpki_io.c - the module's non-blocking I/O: Redis commands over
 * nginx peer connections (RESP from common/, a keepalive pool per site in
 * each worker) and OCSP POSTs (one flight per certificate shared by
 * concurrent logins).
 *
 * Every operation is bounded by a deadline, a timer of its own armed when
 * it starts and never pushed back by the I/O (a peer sending a byte now and
 * then cannot hold a request).  Completions are never delivered from inside
 * ngx_http_jpki_redis_exec() or ngx_http_jpki_ocsp_post(): their callers
 * learn that the I/O is under way before it can end.  Failures reach the
 * caller, which feeds them to the core as failures (fail-closed).
 */

#include "ngx_http_jpki.h"
#include "redis.h"


#define NGX_HTTP_JPKI_IO_REDIS  1
#define NGX_HTTP_JPKI_IO_OCSP   2

#define JPKI_MAX_CMDS           JPKI_STORE_BATCH_MAX

/* how a Redis operation ended */
#define NGX_HTTP_JPKI_REDIS_ERROR    0
#define NGX_HTTP_JPKI_REDIS_OK       1
#define NGX_HTTP_JPKI_REDIS_TIMEOUT  2


typedef struct ngx_http_jpki_redis_conn_s  ngx_http_jpki_redis_conn_t;
typedef struct ngx_http_jpki_flight_s      ngx_http_jpki_flight_t;


struct ngx_http_jpki_io_s {
    ngx_uint_t                     kind;
    void                          *data;        /* NULL once detached */
    ngx_http_jpki_store_done_pt    store_done;
    ngx_http_jpki_ocsp_done_pt     ocsp_done;

    /* Redis */
    ngx_http_jpki_redis_conn_t    *conn;
    jpki_store_cmd                 cmds[JPKI_MAX_CMDS];
    jpki_store_result              res[JPKI_MAX_CMDS];
    size_t                         n;
    ngx_uint_t                     retried;
    ngx_http_jpki_main_conf_t     *jmcf;

    /* OCSP */
    ngx_http_jpki_flight_t        *flight;
    ngx_http_jpki_io_t            *next_waiter;
};


struct ngx_http_jpki_redis_conn_s {
    ngx_queue_t                    queue;
    ngx_peer_connection_t          pc;
    ngx_http_jpki_main_conf_t     *jmcf;
    jpki_redis_round              *round;       /* the replies counted */
    ngx_http_jpki_io_t            *io;
    size_t                         out_sent;
    ngx_uint_t                     reused;      /* taken from the pool */
    ngx_uint_t                     timed;       /* commands' deadline set */
    ngx_event_t                    deadline;
    ngx_log_t                      log;
};


struct ngx_http_jpki_flight_s {
    ngx_queue_t                    queue;
    ngx_http_jpki_issuer_t        *iss;         /* of one site */
    u_char                         key[64];
    size_t                         key_len;
    ngx_peer_connection_t          pc;
    ngx_event_t                    deadline;
    ngx_http_jpki_io_t            *waiters;
    u_char                        *out;
    size_t                         out_len;
    size_t                         out_sent;
    jpki_ocsp_answer               in;
    ngx_msec_t                     timeout;
    ngx_log_t                      log;
};


/* The idle Redis connections are pooled per site (jmcf->redis_idle): a
 * connection has its site's AUTH and SELECT done, and serves no other. */
static ngx_queue_t  ngx_http_jpki_flights;
static ngx_uint_t   ngx_http_jpki_io_inited;


static void ngx_http_jpki_io_init(void)
{
    if (!ngx_http_jpki_io_inited) {
        ngx_queue_init(&ngx_http_jpki_flights);
        ngx_http_jpki_io_inited = 1;
    }
}


void
ngx_http_jpki_io_detach(ngx_http_jpki_io_t *io)
{
    if (io != NULL) {
        io->data = NULL;
    }
}


/* ------------------------------------------------------------------ */
/* Connections                                                         */
/* ------------------------------------------------------------------ */

static ngx_int_t
ngx_http_jpki_connect(ngx_peer_connection_t *pc, ngx_url_t *u, ngx_log_t *log,
    void *data, ngx_event_handler_pt rh, ngx_event_handler_pt wh)
{
    ngx_int_t  rc;

    ngx_memzero(pc, sizeof(ngx_peer_connection_t));
    pc->sockaddr = u->addrs[0].sockaddr;
    pc->socklen = u->addrs[0].socklen;
    pc->name = &u->addrs[0].name;
    pc->get = ngx_event_get_peer;
    pc->log = log;
    pc->log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc->connection) {
            ngx_close_connection(pc->connection);
            pc->connection = NULL;
        }
        return NGX_ERROR;
    }

    pc->connection->data = data;
    pc->connection->read->handler = rh;
    pc->connection->write->handler = wh;
    pc->connection->pool = NULL;

    return rc;                                /* NGX_OK or NGX_AGAIN */
}


static ngx_int_t
ngx_http_jpki_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, c->log, err, "jpki: connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Sends what is left of out; NGX_OK when all is sent. */
static ngx_int_t
ngx_http_jpki_send(ngx_connection_t *c, u_char *out, size_t len, size_t *sent)
{
    ssize_t  n;

    while (*sent < len) {
        n = c->send(c, out + *sent, len - *sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }
            return NGX_AGAIN;
        }

        if (n <= 0) {
            return NGX_ERROR;
        }

        *sent += n;
    }

    return NGX_OK;
}


/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

static void ngx_http_jpki_redis_read_handler(ngx_event_t *ev);
static void ngx_http_jpki_redis_write_handler(ngx_event_t *ev);
static void ngx_http_jpki_redis_idle_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_jpki_redis_send(ngx_http_jpki_io_t *io,
    ngx_log_t *log);


static void
ngx_http_jpki_redis_close(ngx_http_jpki_redis_conn_t *rc)
{
    ngx_pool_t  *pool;

    if (rc->deadline.timer_set) {
        ngx_del_timer(&rc->deadline);
    }

    if (rc->pc.connection) {
#if (NGX_SSL)
        if (rc->pc.connection->ssl) {
            rc->pc.connection->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(rc->pc.connection);
        }
#endif
        pool = rc->pc.connection->pool;
        ngx_close_connection(rc->pc.connection);
        if (pool) {
            ngx_destroy_pool(pool);
        }
        rc->pc.connection = NULL;
    }

    jpki_redis_round_free(rc->round);
    ngx_free(rc);
}


/* Ends the current operation; anything but NGX_HTTP_JPKI_REDIS_OK closes
 * the connection.  The caller gets the results, NULL for a timeout, or
 * error results for any other failure (refused connection, AUTH refused,
 * protocol error...): the core reports "timeout" and "store_error". */
static void
ngx_http_jpki_redis_finish(ngx_http_jpki_redis_conn_t *rc, ngx_uint_t how)
{
    ngx_http_jpki_io_t  *io;
    ngx_connection_t    *c;
    ngx_uint_t           ok;

    io = rc->io;
    rc->io = NULL;
    c = rc->pc.connection;
    ok = (how == NGX_HTTP_JPKI_REDIS_OK);

    if (rc->deadline.timer_set) {
        ngx_del_timer(&rc->deadline);
    }

    /* A pooled connection Redis closed meanwhile (a restart): try once
     * more on a fresh connection before reporting a failure (the core's
     * rule: nothing came back on it). */
    if (how == NGX_HTTP_JPKI_REDIS_ERROR && io->data != NULL
        && jpki_redis_round_retry(rc->round, (int) rc->reused,
                                  (unsigned) io->retried))
    {
        io->retried = 1;
        ngx_http_jpki_redis_close(rc);
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "jpki: redis connection lost, retrying once");
        /* (the new connection's completion is never delivered from
         * within: this io is freed here, or by that completion) */
        if (ngx_http_jpki_redis_send(io, ngx_cycle->log) == NGX_AGAIN) {
            return;
        }
        jpki_store_results_error(io->res, io->n);
        io->store_done(io->data, io->res, io->n);
        ngx_free(io);
        return;
    }

    /* no keepalive while the worker is exiting: an idle connection left
     * open makes it log "open socket left" alerts */
    if (ok && c && !ngx_exiting && !ngx_terminate
        && jpki_redis_round_keep(rc->round)
        && rc->jmcf->redis_nidle < rc->jmcf->redis_keepalive)
    {
        c->read->handler = ngx_http_jpki_redis_idle_handler;
        c->write->handler = ngx_http_jpki_redis_idle_handler;
        c->idle = 1;
        c->log->handler = NULL;
        ngx_queue_insert_head(&rc->jmcf->redis_idle, &rc->queue);
        rc->jmcf->redis_nidle++;

    } else {
        ngx_http_jpki_redis_close(rc);
    }

    if (io->data != NULL) {
        if (how == NGX_HTTP_JPKI_REDIS_ERROR) {
            jpki_store_results_error(io->res, io->n);
        }
        io->store_done(io->data,
                       how == NGX_HTTP_JPKI_REDIS_TIMEOUT ? NULL : io->res,
                       io->n);
    }

    ngx_free(io);
}


static void
ngx_http_jpki_redis_idle_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_jpki_redis_conn_t  *rc;
    u_char                       buf[1];
    ssize_t                      n;

    c = ev->data;
    rc = c->data;

    if (ev->write) {
        return;
    }

    /* graceful shutdown (ngx_close_idle_connections) sets c->close */
    if (c->close) {
        goto close;
    }

    /* an idle connection has nothing to read: EOF or garbage closes it
     * (over TLS, records without data, like session tickets, are fine) */
#if (NGX_SSL)
    if (c->ssl) {
        n = c->recv(c, buf, 1);
    } else
#endif
    {
        n = recv(c->fd, buf, 1, MSG_PEEK);
        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            n = NGX_AGAIN;
        }
    }
    if (n == NGX_AGAIN) {
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            goto close;
        }
        return;
    }

close:
    ngx_queue_remove(&rc->queue);
    rc->jmcf->redis_nidle--;
    ngx_http_jpki_redis_close(rc);
}


/* The deadline of the operation under way: the connection's (connect and
 * TLS handshake, jpki_redis_connect_timeout), then the commands'
 * (jpki_redis_timeout); each armed once, never pushed back by I/O. */
static void
ngx_http_jpki_redis_timeout(ngx_event_t *ev)
{
    ngx_http_jpki_redis_conn_t  *rc = ev->data;

    if (rc->io == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, &rc->log, NGX_ETIMEDOUT,
                  "jpki: redis %s timed out",
                  rc->timed ? "command" : "connect");
    ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_TIMEOUT);
}


#if (NGX_SSL)

static void ngx_http_jpki_redis_start(ngx_http_jpki_redis_conn_t *rc);


static void
ngx_http_jpki_redis_handshaked(ngx_connection_t *c)
{
    ngx_http_jpki_redis_conn_t  *rc = c->data;
    const char                  *why;
    char                         buf[512];

    if (!c->ssl->handshaked) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "jpki: redis TLS handshake failed");
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
        return;
    }

    /* the server certificate must chain to tls_ca= and name the host:
     * DNS name or IP address */
    why = jpki_tls_peer_check(c->ssl->connection,
                              (const char *) rc->jmcf->redis_tls_name.data,
                              buf, sizeof(buf));
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "jpki: redis %s", why);
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
        return;
    }

    c->read->handler = ngx_http_jpki_redis_read_handler;
    c->write->handler = ngx_http_jpki_redis_write_handler;

    ngx_http_jpki_redis_start(rc);
}


/* Starts TLS on a new connection; NGX_OK when already done. */
static ngx_int_t
ngx_http_jpki_redis_tls(ngx_http_jpki_redis_conn_t *rc)
{
    ngx_connection_t  *c = rc->pc.connection;
    ngx_int_t          r;

    if (rc->jmcf->redis_ssl == NULL || c->ssl != NULL) {
        return NGX_OK;
    }

    /* the TLS state lives in a pool of the connection's own */
    c->pool = ngx_create_pool(2048, c->log);
    if (c->pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_ssl_create_connection(rc->jmcf->redis_ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    jpki_tls_set_server_name(c->ssl->connection,
                             (const char *) rc->jmcf->redis_tls_name.data);

    /* (the handshake is bounded by the connection's deadline) */
    r = ngx_ssl_handshake(c);

    if (r == NGX_AGAIN) {
        c->ssl->handler = ngx_http_jpki_redis_handshaked;
        return NGX_AGAIN;
    }

    ngx_http_jpki_redis_handshaked(c);
    return NGX_DONE;
}

#endif


static void
ngx_http_jpki_redis_start(ngx_http_jpki_redis_conn_t *rc)
{
    ngx_connection_t  *c = rc->pc.connection;
    ngx_int_t          r;
    const char        *out;
    size_t             len;

#if (NGX_SSL)
    r = ngx_http_jpki_redis_tls(rc);
    if (r == NGX_ERROR) {
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
        return;
    }
    if (r != NGX_OK) {
        return;                    /* the handshake handler goes on */
    }
#endif

    if (!rc->timed) {
        /* connected: the commands have their own deadline, set once */
        ngx_add_timer(&rc->deadline, rc->jmcf->redis_timeout);
        rc->timed = 1;
    }

    out = jpki_redis_round_out(rc->round, &len);
    r = ngx_http_jpki_send(c, (u_char *) out, len, &rc->out_sent);

    if (r == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "jpki: redis send failed");
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
        return;
    }

    if (r == NGX_AGAIN) {
        return;                    /* the write handler goes on */
    }

    if (c->read->ready) {
        ngx_http_jpki_redis_read_handler(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
    }
}


static void
ngx_http_jpki_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_jpki_redis_conn_t  *rc = c->data;

    if (rc->io == NULL) {
        return;
    }

    if (!rc->reused && rc->out_sent == 0
        && ngx_http_jpki_test_connect(c) != NGX_OK)
    {
        ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
        return;
    }

    ngx_http_jpki_redis_start(rc);
}


/* Reads replies and feeds them to the round (the core counts them): done
 * when every reply is in, or when the round fails. */
static void
ngx_http_jpki_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_jpki_redis_conn_t  *rc = c->data;
    u_char                       buf[4096];
    ssize_t                      n;
    jpki_round_state             st;
    const char                  *why;

    if (rc->io == NULL) {
        return;
    }

    do {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(ev, 0) != NGX_OK) {
                ngx_http_jpki_redis_finish(rc, NGX_HTTP_JPKI_REDIS_ERROR);
            }
            return;
        }

        st = n > 0 ? jpki_redis_round_feed(rc->round, (char *) buf, n)
                   : jpki_redis_round_eof(rc->round);
    } while (st == JPKI_ROUND_MORE);

    why = jpki_redis_round_reason(rc->round);
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "jpki: redis %s", why);
    }

    ngx_http_jpki_redis_finish(rc, st == JPKI_ROUND_DONE
                                   ? NGX_HTTP_JPKI_REDIS_OK
                                   : NGX_HTTP_JPKI_REDIS_ERROR);
}


static ngx_http_jpki_redis_conn_t *
ngx_http_jpki_redis_get(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log,
    ngx_int_t *rc_connect)
{
    ngx_queue_t                 *q;
    ngx_http_jpki_redis_conn_t  *rc;

    /* only a connection of this site: another site's has another
     * server, database or user */
    if (!ngx_queue_empty(&jmcf->redis_idle)) {
        q = ngx_queue_head(&jmcf->redis_idle);
        ngx_queue_remove(q);
        jmcf->redis_nidle--;
        rc = ngx_queue_data(q, ngx_http_jpki_redis_conn_t, queue);
        rc->reused = 1;
        rc->pc.connection->idle = 0;
        rc->pc.connection->read->handler = ngx_http_jpki_redis_read_handler;
        rc->pc.connection->write->handler = ngx_http_jpki_redis_write_handler;
        *rc_connect = NGX_OK;
        return rc;
    }

    rc = ngx_calloc(sizeof(ngx_http_jpki_redis_conn_t), log);
    if (rc == NULL) {
        return NULL;
    }

    rc->jmcf = jmcf;
    rc->log = *ngx_cycle->log;
    rc->deadline.handler = ngx_http_jpki_redis_timeout;
    rc->deadline.data = rc;
    rc->deadline.log = &rc->log;
    rc->round = jpki_redis_round_new();

    if (rc->round == NULL) {
        ngx_free(rc);
        return NULL;
    }

    *rc_connect = ngx_http_jpki_connect(&rc->pc, &jmcf->redis, &rc->log, rc,
                                        ngx_http_jpki_redis_read_handler,
                                        ngx_http_jpki_redis_write_handler);
    if (*rc_connect == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: cannot connect to redis");
        jpki_redis_round_free(rc->round);
        ngx_free(rc);
        return NULL;
    }

    return rc;
}


/* Sends io's commands on a pooled or new connection (a new one's with the
 * AUTH/SELECT prelude, written by the core). */
static ngx_int_t
ngx_http_jpki_redis_send(ngx_http_jpki_io_t *io, ngx_log_t *log)
{
    ngx_http_jpki_main_conf_t   *jmcf = io->jmcf;
    ngx_http_jpki_redis_conn_t  *rc;
    ngx_int_t                    connect;
    jpki_redis_auth              auth;

    rc = ngx_http_jpki_redis_get(jmcf, log, &connect);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    /* (the configuration's strings end with a NUL; NULL when empty) */
    auth.user = (const char *) jmcf->redis_user.data;
    auth.password = (const char *) jmcf->redis_password.data;
    auth.db = jmcf->redis_db > 0 ? (unsigned) jmcf->redis_db : 0;

    if (jpki_redis_round_start(rc->round, rc->reused ? NULL : &auth,
                               io->cmds, io->n, io->res)
        != JPKI_OK)
    {
        ngx_http_jpki_redis_close(rc);
        return NGX_ERROR;
    }

    rc->out_sent = 0;
    rc->io = io;
    io->conn = rc;

    /* the deadline: a pooled connection's is the commands', a new one's
     * first the connection's (ngx_http_jpki_redis_start sets the
     * commands' once connected) */
    rc->timed = rc->reused;
    ngx_add_timer(&rc->deadline, rc->reused ? jmcf->redis_timeout
                                            : jmcf->redis_connect_timeout);

    if (connect == NGX_OK) {
        /* connected already (a pooled connection, a unix socket): sent
         * from the posted write event, never from within the caller */
        ngx_post_event(rc->pc.connection->write, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_jpki_redis_exec(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log,
    const jpki_store_cmd *cmds, size_t n, ngx_http_jpki_store_done_pt done,
    void *data, ngx_http_jpki_io_t **iop)
{
    ngx_http_jpki_io_t  *io;

    ngx_http_jpki_io_init();

    if (n == 0 || n > JPKI_MAX_CMDS) {
        return NGX_ERROR;
    }

    io = ngx_calloc(sizeof(ngx_http_jpki_io_t), log);
    if (io == NULL) {
        return NGX_ERROR;
    }

    io->kind = NGX_HTTP_JPKI_IO_REDIS;
    io->data = data;
    io->store_done = done;
    io->jmcf = jmcf;
    io->n = n;
    ngx_memcpy(io->cmds, cmds, n * sizeof(jpki_store_cmd));
    *iop = io;

    if (ngx_http_jpki_redis_send(io, log) != NGX_AGAIN) {
        *iop = NULL;
        ngx_free(io);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* ------------------------------------------------------------------ */
/* OCSP                                                                */
/* ------------------------------------------------------------------ */

static void ngx_http_jpki_ocsp_read_handler(ngx_event_t *ev);
static void ngx_http_jpki_ocsp_write_handler(ngx_event_t *ev);
static void ngx_http_jpki_ocsp_noop(ngx_event_t *ev);


static void
ngx_http_jpki_flight_end(ngx_http_jpki_flight_t *f, ngx_int_t status,
    u_char *body, size_t len)
{
    ngx_http_jpki_io_t  *w, *next;

    if (f->deadline.timer_set) {
        ngx_del_timer(&f->deadline);
    }

    if (f->pc.connection) {
        ngx_close_connection(f->pc.connection);
        f->pc.connection = NULL;
    }

    ngx_queue_remove(&f->queue);

    for (w = f->waiters; w; w = next) {
        next = w->next_waiter;
        if (w->data != NULL) {
            w->ocsp_done(w->data, status, body, len);
        }
        ngx_free(w);
    }

    ngx_free(f->out);
    ngx_free(f->in.buf);
    ngx_free(f);
}


/* jpki_ocsp_timeout bounds the whole exchange (connect, request, answer):
 * armed once when the flight starts, never pushed back by what the
 * responder sends. */
static void
ngx_http_jpki_ocsp_timeout(ngx_event_t *ev)
{
    ngx_http_jpki_flight_t  *f = ev->data;

    ngx_log_error(NGX_LOG_ERR, &f->log, NGX_ETIMEDOUT,
                  "jpki: OCSP responder timed out");
    ngx_http_jpki_flight_end(f, 0, NULL, 0);
}


/* The responder's answer, read into the core's jpki_ocsp_answer (its
 * framing, its bounds) until whole. */
static void
ngx_http_jpki_ocsp_read_handler(ngx_event_t *ev)
{
    ngx_connection_t        *c = ev->data;
    ngx_http_jpki_flight_t  *f = c->data;
    ssize_t                  n;
    size_t                   room;
    u_char                  *p;
    int                      rc;

    for ( ;; ) {
        p = jpki_ocsp_answer_room(&f->in, &room);
        n = c->recv(c, p, room);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(ev, 0) != NGX_OK) {
                ngx_http_jpki_flight_end(f, 0, NULL, 0);
            }
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_jpki_flight_end(f, 0, NULL, 0);
            return;
        }

        rc = jpki_ocsp_answer_read(&f->in, (size_t) n, n == 0);

        if (rc == 1) {
            ngx_http_jpki_flight_end(f, f->in.status,
                                     (u_char *) f->in.body, f->in.body_len);
            return;
        }

        if (rc < 0) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0, "jpki: %s", f->in.reason);
            ngx_http_jpki_flight_end(f, 0, NULL, 0);
            return;
        }
    }
}


static void
ngx_http_jpki_ocsp_write_handler(ngx_event_t *ev)
{
    ngx_connection_t        *c = ev->data;
    ngx_http_jpki_flight_t  *f = c->data;
    ngx_int_t                rc;

    if (f->out_sent == 0 && ngx_http_jpki_test_connect(c) != NGX_OK) {
        ngx_http_jpki_flight_end(f, 0, NULL, 0);
        return;
    }

    rc = ngx_http_jpki_send(c, f->out, f->out_len, &f->out_sent);

    if (rc == NGX_ERROR) {
        ngx_http_jpki_flight_end(f, 0, NULL, 0);
        return;
    }

    if (rc == NGX_AGAIN) {
        return;
    }

    /* all sent: later write events (with every read event, edge-triggered)
     * have nothing to do; the answer is read under the same deadline */
    c->write->handler = ngx_http_jpki_ocsp_noop;

    if (c->read->ready) {
        ngx_http_jpki_ocsp_read_handler(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_jpki_flight_end(f, 0, NULL, 0);
    }
}


static void
ngx_http_jpki_ocsp_noop(ngx_event_t *ev)
{
}


ngx_int_t
ngx_http_jpki_ocsp_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_issuer_t *iss, ngx_log_t *log, ngx_str_t *key,
    const u_char *body, size_t len, ngx_http_jpki_ocsp_done_pt done,
    void *data, ngx_http_jpki_io_t **iop)
{
    ngx_queue_t             *q;
    ngx_http_jpki_flight_t  *f;
    ngx_http_jpki_io_t      *io;
    ngx_int_t                rc;
    u_char                  *hp;
    size_t                   head;

    ngx_http_jpki_io_init();

    io = ngx_calloc(sizeof(ngx_http_jpki_io_t), log);
    if (io == NULL) {
        return NGX_ERROR;
    }

    io->kind = NGX_HTTP_JPKI_IO_OCSP;
    io->data = data;
    io->ocsp_done = done;

    /* join a flight for the same certificate already under way */
    if (key != NULL && key->len > 0 && key->len <= 64) {
        for (q = ngx_queue_head(&ngx_http_jpki_flights);
             q != ngx_queue_sentinel(&ngx_http_jpki_flights);
             q = ngx_queue_next(q))
        {
            f = ngx_queue_data(q, ngx_http_jpki_flight_t, queue);
            if (f->iss == iss
                && f->key_len == key->len
                && ngx_memcmp(f->key, key->data, key->len) == 0)
            {
                io->flight = f;
                io->next_waiter = f->waiters;
                f->waiters = io;
                *iop = io;
                return NGX_AGAIN;
            }
        }
    }

    f = ngx_calloc(sizeof(ngx_http_jpki_flight_t), log);
    if (f == NULL) {
        ngx_free(io);
        return NGX_ERROR;
    }

    if (key != NULL && key->len > 0 && key->len <= 64) {
        ngx_memcpy(f->key, key->data, key->len);
        f->key_len = key->len;
    }

    f->iss = iss;
    f->log = *ngx_cycle->log;
    f->timeout = jmcf->ocsp_timeout;
    f->deadline.handler = ngx_http_jpki_ocsp_timeout;
    f->deadline.data = f;
    f->deadline.log = &f->log;
    jpki_ocsp_answer_init(&f->in, ngx_alloc(JPKI_OCSP_ANSWER_MAX, log),
                          JPKI_OCSP_ANSWER_MAX);
    head = iss->ocsp_host.len + iss->ocsp_uri.len + 256;
    f->out = ngx_alloc(head + len, log);
    /* the request's head is the core's: host and path as C strings */
    hp = ngx_alloc(iss->ocsp_host.len + iss->ocsp_uri.len + 2, log);

    if (f->in.buf != NULL && f->out != NULL && hp != NULL) {
        *ngx_cpymem(hp, iss->ocsp_host.data, iss->ocsp_host.len) = '\0';
        *ngx_cpymem(hp + iss->ocsp_host.len + 1, iss->ocsp_uri.data,
                    iss->ocsp_uri.len) = '\0';
        head = jpki_ocsp_http_request((char *) hp,
                                      (char *) hp + iss->ocsp_host.len + 1,
                                      len, (char *) f->out, head);
    } else {
        head = 0;
    }

    ngx_free(hp);

    if (head == 0) {
        ngx_free(f->in.buf);
        ngx_free(f->out);
        ngx_free(f);
        ngx_free(io);
        return NGX_ERROR;
    }

    f->out_len = ngx_cpymem(f->out + head, body, len) - f->out;

    io->flight = f;
    f->waiters = io;
    ngx_queue_insert_tail(&ngx_http_jpki_flights, &f->queue);
    *iop = io;

    rc = ngx_http_jpki_connect(&f->pc, &iss->ocsp_url, &f->log, f,
                               ngx_http_jpki_ocsp_read_handler,
                               ngx_http_jpki_ocsp_write_handler);
    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "jpki: cannot connect to OCSP responder \"%V\"",
                      &iss->ocsp_url.url);
        ngx_queue_remove(&f->queue);
        ngx_free(f->in.buf);
        ngx_free(f->out);
        ngx_free(f);
        ngx_free(io);
        *iop = NULL;
        return NGX_ERROR;
    }

    ngx_add_timer(&f->deadline, f->timeout);

    if (rc == NGX_OK) {
        /* connected already: the request is sent from the posted write
         * event, never from within the caller (a failure would complete
         * the flight before the caller knows it waits) */
        ngx_post_event(f->pc.connection->write, &ngx_posted_events);
    }

    return NGX_AGAIN;
}
