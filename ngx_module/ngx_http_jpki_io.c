/*
 * ngx_http_jpki_io.c - the module's non-blocking I/O: Redis rounds over
 * nginx peer connections (a keepalive pool per site in each worker) and
 * OCSP POSTs (one flight per certificate shared by concurrent logins).
 * The connection itself is the core's state machine (common/conn.c:
 * connect, TLS, the bytes written and read until EAGAIN, the Redis round,
 * the HTTP answer, what to log, when to keep and when to retry); this file
 * maps its steps to nginx's events and timers.
 *
 * Every operation is bounded by a deadline, a timer of its own armed when
 * it starts and never pushed back by the I/O (a peer sending a byte now and
 * then cannot hold a request).  Completions are never delivered from inside
 * ngx_http_jpki_redis_exec() or ngx_http_jpki_ocsp_post(): their callers
 * learn that the I/O is under way before it can end.  Failures reach the
 * caller, which feeds them to the core as failures (fail-closed).
 *
 * A site's Redis connections in a worker are at most its keepalive=: a
 * round that finds none idle and that many open waits for one (FIFO,
 * within its own deadline, redis_timeout) instead of opening more, which
 * would be closed again after the round (a connect and a close for each
 * re-check once more requests than keepalive= wait for Redis at once).
 * The rounds waiting when a connection comes free go together, as many
 * as the core's group takes (jpki_redis_group: JPKI_REDIS_ROUND_MAX
 * commands): their commands in one write, their replies in one read, each
 * its own results.  A new round waits too, for the end of the event
 * loop's pass (a posted event): the rounds of the requests one pass reads
 * go together, one write and one read on one connection where each would
 * have taken its own.  Sentinels are asked through the core's discovery
 * (common/discovery.h): this file opens each one's connection and feeds
 * back its answer.
 */

#include "ngx_http_jpki.h"


typedef struct ngx_http_jpki_peer_s    ngx_http_jpki_peer_t;
typedef struct ngx_http_jpki_flight_s  ngx_http_jpki_flight_t;

typedef void (*ngx_http_jpki_peer_end_pt)(ngx_http_jpki_peer_t *p);


struct ngx_http_jpki_io_s {
    void                          *data;        /* NULL once detached */
    ngx_http_jpki_store_done_pt    store_done;
    ngx_http_jpki_ocsp_done_pt     ocsp_done;

    /* Redis */
    jpki_store_cmd                 cmds[JPKI_STORE_BATCH_MAX];
    jpki_store_result              res[JPKI_STORE_BATCH_MAX];
    size_t                         n;
    ngx_uint_t                     retried;
    ngx_http_jpki_main_conf_t     *jmcf;
    ngx_msec_t                     timeout;     /* the round's; 0: the
                                                   site's redis_timeout */
    ngx_uint_t                     waiting;     /* in jmcf->redis_waiting */
    ngx_queue_t                    wq;
    ngx_event_t                    wait;        /* its deadline meanwhile */
    /* the first of rounds that go together: the group (NULL: alone),
     * and the others, in the order they joined */
    jpki_redis_group              *group;
    ngx_http_jpki_io_t            *next_member;

    /* OCSP: the flight's other waiters */
    ngx_http_jpki_io_t            *next_waiter;
};


/* A connection the core drives: a Redis one (pooled between rounds) or an
 * OCSP flight's. */
struct ngx_http_jpki_peer_s {
    ngx_queue_t                    queue;       /* in its site's pool */
    ngx_peer_connection_t          pc;
    jpki_conn                     *conn;
    ngx_http_jpki_peer_end_pt      end;         /* NULL: idle */
    void                          *data;        /* its io, or its flight */
    ngx_http_jpki_main_conf_t     *jmcf;
    ngx_msec_t                     timeout;     /* the exchange's */
    ngx_uint_t                     gen;         /* the primary's (sentinel) */
    ngx_uint_t                     counted;     /* in jmcf->redis_nopen */
    struct sockaddr_storage        sa;          /* its address, copied */
    ngx_str_t                      name;
    u_char                         name_buf[128];
    ngx_uint_t                     timed;       /* the exchange's deadline */
    ngx_event_t                    deadline;
    ngx_log_t                      log;
};


/* The core's record first: the core's table lists it. */
struct ngx_http_jpki_flight_s {
    jpki_flight                    entry;
    ngx_http_jpki_io_t            *waiters;
};


/* The OCSP queries under way in this worker (the idle Redis connections
 * are pooled per site, jmcf->redis_idle: a connection has its site's AUTH
 * and SELECT done, and serves no other). */
static jpki_flight  *ngx_http_jpki_flights;


void
ngx_http_jpki_io_detach(ngx_http_jpki_io_t *io)
{
    if (io == NULL) {
        return;
    }

    if (io->waiting && io->next_member == NULL) {
        /* nothing refers to a waiting round but the queue and its timer
         * (one that others went with waits on for them) */
        ngx_queue_remove(&io->wq);
        if (io->wait.timer_set) {
            ngx_del_timer(&io->wait);
        }
        ngx_free(io);
        return;
    }

    io->data = NULL;
}


/* ------------------------------------------------------------------ */
/* Connections driven by the core                                      */
/* ------------------------------------------------------------------ */

static void ngx_http_jpki_peer_handler(ngx_event_t *ev);
static void ngx_http_jpki_peer_timeout(ngx_event_t *ev);


/* A connection to sa (name: its address for nginx's messages; what: the
 * peer in the core's messages, where: its address as configured), handed
 * to the core connected or connecting. */
static ngx_http_jpki_peer_t *
ngx_http_jpki_peer_open(struct sockaddr *sa, socklen_t socklen,
    ngx_str_t *name, const char *what, const char *where, ngx_log_t *log)
{
    ngx_http_jpki_peer_t  *p;
    ngx_connection_t      *c;
    ngx_int_t              rc;

    p = ngx_calloc(sizeof(ngx_http_jpki_peer_t), log);
    if (p == NULL) {
        return NULL;
    }

    p->log = *ngx_cycle->log;
    p->deadline.handler = ngx_http_jpki_peer_timeout;
    p->deadline.data = p;
    p->deadline.log = &p->log;

    if (socklen > (socklen_t) sizeof(p->sa)) {
        ngx_free(p);
        return NULL;
    }
    ngx_memcpy(&p->sa, sa, socklen);
    p->name.data = p->name_buf;
    p->name.len = ngx_min(name->len, sizeof(p->name_buf));
    ngx_memcpy(p->name_buf, name->data, p->name.len);

    p->pc.sockaddr = (struct sockaddr *) &p->sa;
    p->pc.socklen = socklen;
    p->pc.name = &p->name;
    p->pc.get = ngx_event_get_peer;
    p->pc.log = &p->log;
    p->pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&p->pc);
    c = p->pc.connection;

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        goto failed;
    }

    c->data = p;
    c->read->handler = ngx_http_jpki_peer_handler;
    c->write->handler = ngx_http_jpki_peer_handler;
    c->pool = NULL;

    p->conn = jpki_conn_new(c->fd, rc == NGX_AGAIN, what, where);
    if (p->conn != NULL) {
        return p;
    }

failed:

    if (c != NULL) {
        ngx_close_connection(c);
    }

    ngx_free(p);
    return NULL;
}


/* The same to u's first address. */
static ngx_http_jpki_peer_t *
ngx_http_jpki_peer_open_url(ngx_url_t *u, const char *what,
    const char *where, ngx_log_t *log)
{
    return ngx_http_jpki_peer_open(u->addrs[0].sockaddr, u->addrs[0].socklen,
                                   &u->addrs[0].name, what, where, log);
}


static void
ngx_http_jpki_peer_close(ngx_http_jpki_peer_t *p)
{
    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }

    if (p->counted) {
        p->jmcf->redis_nopen--;
    }

    /* its TLS first (close_notify), then the socket */
    jpki_conn_free(p->conn);
    ngx_close_connection(p->pc.connection);
    ngx_free(p);
}


/* The core has something to do on p: begun from the posted write event,
 * never from within the caller.  The deadline is the connection's
 * (connect_timeout: connect and TLS) until the core says it is ready, then
 * the exchange's (timeout); one deadline when connect_timeout is 0.  Each
 * is armed once, never pushed back by I/O. */
static void
ngx_http_jpki_peer_start(ngx_http_jpki_peer_t *p, ngx_msec_t connect_timeout,
    ngx_msec_t timeout, ngx_http_jpki_peer_end_pt end, void *data)
{
    p->end = end;
    p->data = data;
    p->timeout = timeout;
    p->timed = connect_timeout == 0 || jpki_conn_ready(p->conn);

    ngx_add_timer(&p->deadline, p->timed ? timeout : connect_timeout);
    ngx_post_event(p->pc.connection->write, &ngx_posted_events);
}


static void
ngx_http_jpki_peer_end(ngx_http_jpki_peer_t *p)
{
    ngx_http_jpki_peer_end_pt  end = p->end;

    if (p->deadline.timer_set) {
        ngx_del_timer(&p->deadline);
    }

    p->end = NULL;
    end(p);
}


/* A step of the core: it reads and writes until EAGAIN (events are
 * edge-triggered), then says what to wait for. */
static void
ngx_http_jpki_peer_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c = ev->data;
    ngx_http_jpki_peer_t  *p = c->data;
    jpki_conn_state        st;
    ngx_int_t              rc;

    if (p->end == NULL) {
        return;
    }

    st = jpki_conn_step(p->conn);

    if (!p->timed && jpki_conn_ready(p->conn)) {
        /* connected: the exchange has its own deadline, set once */
        ngx_add_timer(&p->deadline, p->timeout);
        p->timed = 1;
    }

    if (st == JPKI_CONN_WANT_READ) {
        c->read->ready = 0;
        rc = ngx_handle_read_event(c->read, 0);

    } else if (st == JPKI_CONN_WANT_WRITE) {
        c->write->ready = 0;
        rc = ngx_handle_write_event(c->write, 0);

    } else {
        ngx_http_jpki_peer_end(p);
        return;
    }

    if (rc != NGX_OK) {
        jpki_conn_fail(p->conn, "cannot wait for its socket");
        ngx_http_jpki_peer_end(p);
    }
}


static void
ngx_http_jpki_peer_timeout(ngx_event_t *ev)
{
    ngx_http_jpki_peer_t  *p = ev->data;

    if (p->end != NULL) {
        jpki_conn_timeout(p->conn);
        ngx_http_jpki_peer_end(p);
    }
}


/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

static ngx_int_t ngx_http_jpki_redis_send(ngx_http_jpki_io_t *io,
    ngx_log_t *log);
static void ngx_http_jpki_forget_primary(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_peer_t *p);
static void ngx_http_jpki_redis_wake(ngx_http_jpki_main_conf_t *jmcf);


/* An idle connection has nothing to read: EOF or garbage closes it (over
 * TLS, records without data, like session tickets, are fine); so does a
 * graceful shutdown (ngx_close_idle_connections sets c->close). */
static void
ngx_http_jpki_redis_idle_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_jpki_peer_t       *p = c->data;
    ngx_http_jpki_main_conf_t  *jmcf;

    if (ev->write) {
        return;
    }

    if (!c->close) {
        if (jpki_conn_idle(p->conn)) {
            c->read->ready = 0;
            if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
                return;
            }

        } else {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "jpki: " JPKI_CONN_DROP_MSG);
        }
    }

    jmcf = p->jmcf;
    ngx_queue_remove(&p->queue);
    jmcf->redis_nidle--;
    ngx_http_jpki_peer_close(p);
    ngx_http_jpki_redis_wake(jmcf);
}


/* Whether a request still waits for io's round (or a round with it). */
static ngx_uint_t
ngx_http_jpki_redis_wanted(ngx_http_jpki_io_t *io)
{
    for ( ; io; io = io->next_member) {
        if (io->data != NULL) {
            return 1;
        }
    }

    return 0;
}


/* The caller gets the results, NULL for a timeout, or error results for
 * any other failure (refused connection, AUTH refused, protocol error...):
 * the core reports "timeout" and "store_error".  Rounds that went
 * together: each its own part of the results, in order. */
static void
ngx_http_jpki_redis_done(ngx_http_jpki_io_t *io, jpki_conn_state st,
    ngx_uint_t timed_out)
{
    ngx_http_jpki_io_t  *m, *next;
    size_t               k = 0;

    for (m = io; m; m = m->next_member) {
        if (st != JPKI_CONN_DONE) {
            jpki_store_results_error(m->res, m->n);

        } else if (io->group != NULL) {
            (void) jpki_redis_group_part(io->group, k++, m->res);
        }
    }

    jpki_redis_group_free(io->group);
    io->group = NULL;

    /* each request may go on at once (and a request that ends detaches
     * its round): the next member is taken first */
    for (m = io; m; m = next) {
        next = m->next_member;
        if (m->data != NULL) {
            m->store_done(m->data, timed_out ? NULL : m->res, m->n);
        }
        ngx_free(m);
    }
}


/* The round on p ended: done, failed or timed out. */
static void
ngx_http_jpki_redis_end(ngx_http_jpki_peer_t *p)
{
    ngx_http_jpki_io_t         *io = p->data;
    ngx_http_jpki_main_conf_t  *jmcf = p->jmcf;
    ngx_connection_t           *c = p->pc.connection;
    jpki_conn_state             st;
    jpki_conn_next              next;
    ngx_uint_t                  timed_out;
    const char                 *why;

    p->data = NULL;
    st = jpki_conn_state_of(p->conn);

    why = jpki_conn_reason(p->conn);
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "jpki: %s", why);
    }

    /* sentinels: the primary gone or demoted (the core's rule) is
     * forgotten, its pooled connections dropped */
    if (jmcf->sentinel != NULL && jpki_conn_rediscover(p->conn)) {
        ngx_http_jpki_forget_primary(jmcf, p);
    }

    /* once more (the core's rules) on the primary the sentinels name now,
     * or on a fresh connection (a pooled one Redis closed meanwhile),
     * while a request waits; never completed from within */
    next = jpki_conn_after(p->conn, jmcf->sentinel != NULL, io->retried);
    if (next != JPKI_CONN_OVER && ngx_http_jpki_redis_wanted(io)) {
        io->retried = 1;
        ngx_http_jpki_peer_close(p);
        if (next == JPKI_CONN_AGAIN) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "jpki: " JPKI_CONN_RETRY_MSG);
        }
        if (ngx_http_jpki_redis_send(io, ngx_cycle->log) != NGX_AGAIN) {
            ngx_http_jpki_redis_done(io, JPKI_CONN_FAILED, 0);
        }
        return;
    }

    timed_out = jpki_conn_timed_out(p->conn);

    /* no keepalive while the worker is exiting: an idle connection left
     * open makes it log "open socket left" alerts */
    if (!ngx_exiting && !ngx_terminate
        && (jmcf->sentinel == NULL
            || p->gen == jpki_sentinel_gen(jmcf->sentinel))
        && jpki_conn_keep(p->conn, jmcf->redis_nidle,
                          jpki_site_store(jmcf->js)->keepalive))
    {
        c->read->handler = ngx_http_jpki_redis_idle_handler;
        c->write->handler = ngx_http_jpki_redis_idle_handler;
        c->idle = 1;
        ngx_queue_insert_head(&jmcf->redis_idle, &p->queue);
        jmcf->redis_nidle++;

    } else {
        ngx_http_jpki_peer_close(p);
    }

    /* the connection (or the room it left) goes to the first round
     * waiting, before this one's request goes on */
    ngx_http_jpki_redis_wake(jmcf);
    ngx_http_jpki_redis_done(io, st, timed_out);
}


/* The first idle connection of the site taken from its pool, or NULL. */
static ngx_http_jpki_peer_t *
ngx_http_jpki_redis_pop(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_queue_t  *q;

    if (ngx_queue_empty(&jmcf->redis_idle)) {
        return NULL;
    }

    q = ngx_queue_head(&jmcf->redis_idle);
    ngx_queue_remove(q);
    jmcf->redis_nidle--;
    return ngx_queue_data(q, ngx_http_jpki_peer_t, queue);
}


/* A pooled connection of the site, or NULL.  Not checked again here: its
 * idle handler closes it as soon as it becomes readable, and one that died
 * unnoticed fails its round, which is then tried once more (the core's
 * retry rule).  With sentinels, one of an older primary is closed. */
static ngx_http_jpki_peer_t *
ngx_http_jpki_redis_pooled(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_peer_t  *p;
    ngx_connection_t      *c;

    while ((p = ngx_http_jpki_redis_pop(jmcf)) != NULL) {
        if (jmcf->sentinel != NULL
            && p->gen != jpki_sentinel_gen(jmcf->sentinel))
        {
            ngx_http_jpki_peer_close(p);
            continue;
        }

        c = p->pc.connection;
        c->idle = 0;
        c->read->handler = ngx_http_jpki_peer_handler;
        c->write->handler = ngx_http_jpki_peer_handler;

        return p;
    }

    return NULL;
}


/* The pooled connections closed (the primary changed). */
static void
ngx_http_jpki_redis_drop_idle(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_peer_t  *p;

    while ((p = ngx_http_jpki_redis_pop(jmcf)) != NULL) {
        ngx_http_jpki_peer_close(p);
    }
}


/* p's round says the primary is gone or demoted: forgotten (once per
 * generation), its pooled connections closed. */
static void
ngx_http_jpki_forget_primary(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_peer_t *p)
{
    char  say[512];

    if (jpki_discovery_lost(jmcf->sentinel, p->gen, p->conn,
                            jpki_site_store(jmcf->js)->master, say,
                            sizeof(say)))
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0, "jpki: %s", say);
        ngx_http_jpki_redis_drop_idle(jmcf);
    }
}


/* A new connection to the primary the sentinels named, or NULL (none is
 * known: *ask). */
static ngx_http_jpki_peer_t *
ngx_http_jpki_primary_open(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log,
    ngx_uint_t *ask)
{
    const struct sockaddr  *sa;
    ngx_http_jpki_peer_t   *p;
    const char             *where;
    socklen_t               len;
    unsigned                gen;
    ngx_str_t               name;

    sa = jpki_sentinel_primary(jmcf->sentinel, &len, &where, &gen);
    if (sa == NULL) {
        *ask = 1;
        return NULL;
    }

    name.data = (u_char *) where;
    name.len = ngx_strlen(where);
    p = ngx_http_jpki_peer_open((struct sockaddr *) sa, len, &name, "redis",
                                where, log);
    if (p == NULL) {
        return NULL;
    }

    p->gen = gen;
    p->jmcf = jmcf;
    p->counted = 1;
    jmcf->redis_nopen++;

    /* the certificate names the address (no SNI), or tls_name= */
    if (jpki_conn_store_tls(p->conn, jpki_site_redis_tls(jmcf->js),
                            jpki_site_store(jmcf->js),
                            jpki_sentinel_host(jmcf->sentinel))
        != JPKI_OK)
    {
        ngx_http_jpki_peer_close(p);
        return NULL;
    }

    return p;
}


static ngx_int_t ngx_http_jpki_sentinel_ask(ngx_http_jpki_io_t *io,
    ngx_log_t *log);


/* A waiting round's deadline passed: a timeout, as a round's. */
static void
ngx_http_jpki_redis_wait_over(ngx_http_jpki_io_t *io)
{
    ngx_queue_remove(&io->wq);
    io->waiting = 0;
    if (io->wait.timer_set) {
        ngx_del_timer(&io->wait);
    }
    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "jpki: no redis "
                  "connection of the site's %ui came free in time "
                  "(keepalive=)",
                  (ngx_uint_t) jpki_site_store(io->jmcf->js)->keepalive);
    ngx_http_jpki_redis_done(io, JPKI_CONN_FAILED, 1);
}


static void
ngx_http_jpki_redis_wait_timeout(ngx_event_t *ev)
{
    ngx_http_jpki_redis_wait_over(ev->data);
}


/* io waits for one of the site's connections, within redis_timeout. */
static ngx_int_t
ngx_http_jpki_redis_wait(ngx_http_jpki_io_t *io, ngx_log_t *log)
{
    io->wait.handler = ngx_http_jpki_redis_wait_timeout;
    io->wait.data = io;
    io->wait.log = ngx_cycle->log;
    ngx_add_timer(&io->wait, io->jmcf->redis_timeout);
    io->waiting = 1;
    ngx_queue_insert_tail(&io->jmcf->redis_waiting, &io->wq);

    return NGX_AGAIN;
}


/* The rounds waiting behind io join it, as many as the core's group
 * takes: one write, one read for them all (the round keeps io's deadline,
 * the earliest).  Without memory, io goes alone. */
static void
ngx_http_jpki_redis_group(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_io_t *io)
{
    ngx_http_jpki_io_t  *w, **last = &io->next_member;
    ngx_queue_t         *q;

    if (io->group != NULL || ngx_queue_empty(&jmcf->redis_waiting)) {
        return;                 /* a group already (waiting again: a retry) */
    }

    io->group = jpki_redis_group_new();
    if (io->group == NULL) {
        return;
    }

    (void) jpki_redis_group_add(io->group, io->cmds, io->n);

    while (!ngx_queue_empty(&jmcf->redis_waiting)) {
        q = ngx_queue_head(&jmcf->redis_waiting);
        w = ngx_queue_data(q, ngx_http_jpki_io_t, wq);
        if (!jpki_redis_group_add(io->group, w->cmds, w->n)) {
            break;
        }
        ngx_queue_remove(q);
        w->waiting = 0;
        ngx_del_timer(&w->wait);
        *last = w;
        last = &w->next_member;
    }
}


/* The rounds waiting, in order, while a connection is idle or one more
 * may be opened; each gets what is left of its deadline, and takes the
 * rounds waiting behind it along. */
static void
ngx_http_jpki_redis_wake(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_io_t  *io;
    ngx_queue_t         *q;
    ngx_msec_int_t       left;
    ngx_uint_t           max = jpki_site_store(jmcf->js)->keepalive;

    while (!ngx_queue_empty(&jmcf->redis_waiting)
           && (jmcf->redis_nidle > 0 || jmcf->redis_nopen < max))
    {
        q = ngx_queue_head(&jmcf->redis_waiting);
        io = ngx_queue_data(q, ngx_http_jpki_io_t, wq);

        left = (ngx_msec_int_t) (io->wait.timer.key - ngx_current_msec);
        if (left <= 0) {
            ngx_http_jpki_redis_wait_over(io);     /* its timer is due */
            continue;
        }

        ngx_queue_remove(q);
        io->waiting = 0;
        io->timeout = (ngx_msec_t) left;
        ngx_del_timer(&io->wait);
        ngx_http_jpki_redis_group(jmcf, io);

        if (ngx_http_jpki_redis_send(io, ngx_cycle->log) != NGX_AGAIN) {
            ngx_http_jpki_redis_done(io, JPKI_CONN_FAILED, 0);
        }
    }
}


/* Sends io's commands on a pooled or new connection (a new one's with the
 * AUTH/SELECT prelude, written by the core; with sentinels, ROLE, and the
 * sentinels asked first when no primary is known). */
static ngx_int_t
ngx_http_jpki_redis_send(ngx_http_jpki_io_t *io, ngx_log_t *log)
{
    ngx_http_jpki_main_conf_t  *jmcf = io->jmcf;
    const jpki_store_cmd       *cmds = io->cmds;
    jpki_store_result          *res = io->res;
    ngx_http_jpki_peer_t       *p;
    ngx_uint_t                  ask = 0;
    size_t                      n = io->n;

    p = ngx_http_jpki_redis_pooled(jmcf);

    if (p == NULL
        && jmcf->redis_nopen >= jpki_site_store(jmcf->js)->keepalive)
    {
        return ngx_http_jpki_redis_wait(io, log);
    }

    if (p == NULL && jmcf->sentinel != NULL) {
        p = ngx_http_jpki_primary_open(jmcf, log, &ask);
        if (ask && jmcf->sentinel_asking) {
            /* one discovery at a time in a worker: this round waits for
             * the one under way */
            io->next_waiter = jmcf->sentinel_waiters;
            jmcf->sentinel_waiters = io;
            return NGX_AGAIN;
        }
        if (ask) {
            jpki_discovery_begin(&jmcf->discovery, jmcf->sentinel,
                                 jpki_site_store(jmcf->js));
            if (ngx_http_jpki_sentinel_ask(io, log) != NGX_AGAIN) {
                return NGX_ERROR;
            }
            jmcf->sentinel_asking = 1;
            return NGX_AGAIN;
        }
        if (p == NULL) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: cannot connect to "
                          "the redis primary");
            return NGX_ERROR;
        }

    } else if (p == NULL) {
        p = ngx_http_jpki_peer_open_url(&jmcf->redis, "redis",
                                        jpki_site_store(jmcf->js)->addr, log);
        if (p == NULL) {
            ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: cannot connect to redis");
            return NGX_ERROR;
        }

        p->jmcf = jmcf;
        p->counted = 1;
        jmcf->redis_nopen++;

        if (jpki_conn_store_tls(p->conn, jpki_site_redis_tls(jmcf->js),
                                jpki_site_store(jmcf->js), NULL)
            != JPKI_OK)
        {
            ngx_http_jpki_peer_close(p);
            return NGX_ERROR;
        }
    }

    if (io->group != NULL) {
        cmds = jpki_redis_group_cmds(io->group, &n);
        res = jpki_redis_group_res(io->group);
    }

    if (jpki_conn_redis(p->conn, jpki_site_redis_auth(jmcf->js), cmds, n,
                        res)
        != JPKI_OK)
    {
        ngx_http_jpki_peer_close(p);
        return NGX_ERROR;
    }

    ngx_http_jpki_peer_start(p, jmcf->redis_connect_timeout,
                             io->timeout ? io->timeout : jmcf->redis_timeout,
                             ngx_http_jpki_redis_end, io);

    return NGX_AGAIN;
}


/* ------------------------------------------------------------------ */
/* Sentinels                                                           */
/* ------------------------------------------------------------------ */

static void ngx_http_jpki_sentinel_end(ngx_http_jpki_peer_t *p);


/* Asks the next sentinel (the core's discovery) for the primary: a round
 * like Redis's, within the same deadlines.  NGX_ERROR once each was
 * asked. */
static ngx_int_t
ngx_http_jpki_sentinel_ask(ngx_http_jpki_io_t *io, ngx_log_t *log)
{
    ngx_http_jpki_main_conf_t  *jmcf = io->jmcf;
    jpki_discovery             *d = &jmcf->discovery;
    ngx_http_jpki_peer_t       *p;
    ngx_int_t                   i;

    while ((i = jpki_discovery_next(d)) >= 0) {
        p = ngx_http_jpki_peer_open_url(&jmcf->sentinels[i],
                                        "redis sentinel", d->where, log);
        if (p == NULL) {
            (void) jpki_discovery_fed(d, NULL);
            continue;
        }

        p->jmcf = jmcf;

        if (jpki_discovery_query(d, p->conn, jpki_site_redis_tls(jmcf->js))
            != JPKI_OK)
        {
            ngx_http_jpki_peer_close(p);
            return NGX_ERROR;
        }

        ngx_http_jpki_peer_start(p, jmcf->redis_connect_timeout,
                                 jmcf->redis_timeout,
                                 ngx_http_jpki_sentinel_end, io);
        return NGX_AGAIN;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0, "jpki: %s", d->say);
    return NGX_ERROR;
}


/* The discovery is over (learnt: a primary is known): io's round, and
 * the rounds that waited for it, go to the primary, or fail. */
static void
ngx_http_jpki_sentinel_over(ngx_http_jpki_main_conf_t *jmcf,
    ngx_http_jpki_io_t *io, ngx_uint_t learnt)
{
    ngx_http_jpki_io_t  *w, *next;

    w = jmcf->sentinel_waiters;
    jmcf->sentinel_waiters = NULL;
    jmcf->sentinel_asking = 0;
    io->next_waiter = w;

    for (w = io; w; w = next) {
        next = w->next_waiter;
        w->next_waiter = NULL;

        if (!ngx_http_jpki_redis_wanted(w)) {
            ngx_http_jpki_redis_done(w, JPKI_CONN_FAILED, 0);  /* freed */

        } else if (!learnt
                   || ngx_http_jpki_redis_send(w, ngx_cycle->log) != NGX_AGAIN)
        {
            ngx_http_jpki_redis_done(w, JPKI_CONN_FAILED, 0);
        }
    }
}


/* A sentinel answered, or failed: the primary learnt and the rounds sent
 * there, or the next sentinel asked (even when io's request has gone:
 * others may wait for the answer). */
static void
ngx_http_jpki_sentinel_end(ngx_http_jpki_peer_t *p)
{
    ngx_http_jpki_io_t         *io = p->data;
    ngx_http_jpki_main_conf_t  *jmcf = p->jmcf;
    jpki_discovery_state        st;
    const char                 *why;

    p->data = NULL;

    why = jpki_conn_reason(p->conn);
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, &p->log, 0, "jpki: %s", why);
    }

    st = jpki_discovery_fed(&jmcf->discovery, jpki_conn_primary(p->conn));
    if (st == JPKI_DISCOVERY_NEW) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0, "jpki: %s",
                      jmcf->discovery.say);
        ngx_http_jpki_redis_drop_idle(jmcf);
    }

    ngx_http_jpki_peer_close(p);

    if (st == JPKI_DISCOVERY_NEXT
        && (ngx_http_jpki_redis_wanted(io) || jmcf->sentinel_waiters != NULL)
        && ngx_http_jpki_sentinel_ask(io, ngx_cycle->log) == NGX_AGAIN)
    {
        return;                             /* the next sentinel */
    }

    ngx_http_jpki_sentinel_over(jmcf, io, st != JPKI_DISCOVERY_NEXT);
}


ngx_int_t
ngx_http_jpki_redis_exec(ngx_http_jpki_main_conf_t *jmcf, ngx_log_t *log,
    const jpki_store_cmd *cmds, size_t n, ngx_http_jpki_store_done_pt done,
    void *data, ngx_http_jpki_io_t **iop)
{
    ngx_http_jpki_io_t  *io;

    if (n == 0 || n > JPKI_STORE_BATCH_MAX) {
        return NGX_ERROR;
    }

    io = ngx_calloc(sizeof(ngx_http_jpki_io_t), log);
    if (io == NULL) {
        return NGX_ERROR;
    }

    io->data = data;
    io->store_done = done;
    io->jmcf = jmcf;
    io->n = n;
    ngx_memcpy(io->cmds, cmds, n * sizeof(jpki_store_cmd));
    *iop = io;

    /* sent with the other rounds of this pass of the event loop, within
     * the same deadline as a round waiting for a connection */
    (void) ngx_http_jpki_redis_wait(io, log);
    if (!jmcf->redis_flush.posted) {
        ngx_post_event(&jmcf->redis_flush, &ngx_posted_events);
    }

    return NGX_AGAIN;
}


/* The end of a pass of the event loop: the rounds waiting go, together,
 * on the connections there is room for (the others wait for one to come
 * free). */
void
ngx_http_jpki_redis_flush(ngx_event_t *ev)
{
    ngx_http_jpki_redis_wake(ev->data);
}


/* ------------------------------------------------------------------ */
/* OCSP                                                                */
/* ------------------------------------------------------------------ */

/* The flight's answer (or failure) goes to every login waiting for it;
 * jpki_ocsp_timeout bounded the whole exchange. */
static void
ngx_http_jpki_flight_end(ngx_http_jpki_peer_t *p)
{
    ngx_http_jpki_flight_t  *f = p->data;
    ngx_http_jpki_io_t      *w, *next;
    const jpki_ocsp_answer  *a;
    const char              *why;

    why = jpki_conn_reason(p->conn);
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, &p->log, 0, "jpki: %s", why);
    }

    /* later logins ask again (or find the answer cached in the store) */
    jpki_flight_land(&ngx_http_jpki_flights, &f->entry);

    a = jpki_conn_answer(p->conn);

    for (w = f->waiters; w; w = next) {
        next = w->next_waiter;
        if (w->data != NULL) {
            w->ocsp_done(w->data, a ? a->status : 0,
                         a ? (u_char *) a->body : NULL, a ? a->body_len : 0);
        }
        ngx_free(w);
    }

    ngx_http_jpki_peer_close(p);
    ngx_free(f);
}


/* A new flight's connection with the request: the head is the core's
 * (the issuer's Host header and path, as its spec has them). */
static ngx_http_jpki_peer_t *
ngx_http_jpki_ocsp_open(ngx_http_jpki_main_conf_t *jmcf, ngx_uint_t issuer,
    ngx_log_t *log, const u_char *body, size_t len)
{
    const jpki_conf_issuer  *spec = jpki_site_issuer_spec(jmcf->js, issuer);
    ngx_http_jpki_peer_t    *p;

    p = ngx_http_jpki_peer_open_url(jmcf->ocsp[issuer], "OCSP responder",
                                    spec->ocsp, log);
    if (p == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "jpki: cannot connect to OCSP responder \"%s\"",
                      spec->ocsp);
        return NULL;
    }

    if (jpki_conn_ocsp(p->conn, spec->ocsp_host_header, spec->ocsp_path,
                       body, len)
        != JPKI_OK)
    {
        ngx_http_jpki_peer_close(p);
        return NULL;
    }

    return p;
}


ngx_int_t
ngx_http_jpki_ocsp_post(ngx_http_jpki_main_conf_t *jmcf,
    ngx_uint_t issuer, ngx_log_t *log, ngx_str_t *key,
    const u_char *body, size_t len, ngx_http_jpki_ocsp_done_pt done,
    void *data, ngx_http_jpki_io_t **iop)
{
    ngx_http_jpki_flight_t  *f;
    ngx_http_jpki_peer_t    *p;
    ngx_http_jpki_io_t      *io;
    const char              *k;
    size_t                   klen;

    io = ngx_calloc(sizeof(ngx_http_jpki_io_t), log);
    if (io == NULL) {
        return NGX_ERROR;
    }

    io->data = data;
    io->ocsp_done = done;

    /* join a flight for the same certificate already under way */
    k = key != NULL ? (const char *) key->data : NULL;
    klen = key != NULL ? key->len : 0;
    f = (ngx_http_jpki_flight_t *)
        jpki_flight_find(ngx_http_jpki_flights, jmcf->ocsp[issuer], k, klen);

    if (f != NULL) {
        io->next_waiter = f->waiters;
        f->waiters = io;
        *iop = io;
        return NGX_AGAIN;
    }

    f = ngx_calloc(sizeof(ngx_http_jpki_flight_t), log);
    p = f != NULL ? ngx_http_jpki_ocsp_open(jmcf, issuer, log, body, len)
                  : NULL;

    if (p == NULL) {
        ngx_free(f);
        ngx_free(io);
        return NGX_ERROR;
    }

    f->waiters = io;
    jpki_flight_start(&ngx_http_jpki_flights, &f->entry, jmcf->ocsp[issuer], k,
                      klen);
    *iop = io;

    ngx_http_jpki_peer_start(p, 0, jmcf->ocsp_timeout,
                             ngx_http_jpki_flight_end, f);

    return NGX_AGAIN;
}
