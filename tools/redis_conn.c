/*
 * redis_conn.c - jpkictl's connection to the site's Redis: --redis (or
 * --redis-sentinel and --redis-master: the primary asked of the sentinels,
 * the core's query and answer, common/sentinel.c, then checked by ROLE),
 * --redis-db, --redis-user, --redis-password-file (or JPKI_REDIS_PASSWORD;
 * the inline --redis-password is refused) checked, then connect, AUTH and
 * SELECT; and the check of a SCAN reply.
 */
#include "jpkictl.h"
#include "conf.h"
#include "conn.h"
#include "discovery.h"

#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#define REDIS_WAIT_MS 3000      /* a connect, a query, a command */

/* the password of --redis-password-file, and of
 * --redis-sentinel-password-file (check_redis_opts) */
static char file_password[JPKI_CONF_PASSWORD_MAX + 1];
static char sentinel_password[JPKI_CONF_PASSWORD_MAX + 1];

void redis_opts_clear(void)
{
    OPENSSL_cleanse(file_password, sizeof(file_password));
    OPENSSL_cleanse(sentinel_password, sizeof(sentinel_password));
}

/* --redis HOST:PORT: the host into host[hostlen] and the port; -1 when
 * malformed.  The port is all digits: strtol would read "6379abc" as
 * 6379. */
static int redis_addr(const char *addr, char *host, size_t hostlen,
                      int *port)
{
    const char *colon = strrchr(addr, ':');
    unsigned long long p;

    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hostlen
        || tool_uint(colon + 1, strlen(colon + 1), 1, 65535, &p) != 0)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (int)p;
    return 0;
}

/* --redis-sentinel and --redis-master read by the core's grammar (the
 * store directive's sentinel= and master=) into sp. */
static int sentinel_spec(const args_t *a, jpki_store_spec *sp, int quiet)
{
    char w0[ARG_MAX_LEN + 16], w1[ARG_MAX_LEN + 16], err[512];
    const char *argv[2] = {w0, w1};

    snprintf(w0, sizeof(w0), "sentinel=%s", a->val[O_REDIS_SENTINEL]);
    snprintf(w1, sizeof(w1), "master=%s", a->val[O_REDIS_MASTER]);
    if (jpki_conf_store(2, argv, sp, err, sizeof(err)) == JPKI_OK)
        return 0;
    if (!quiet)
        say("--redis-sentinel/--redis-master: %s", err);
    return -1;
}

/* --redis-tls-*: the others need --redis-tls-ca, the certificate and its
 * key go together, no TLS over a unix socket; the files load. */
static int check_tls_opts(const args_t *a, int unix_socket)
{
    int tls = a->val[O_REDIS_TLS_CA] != NULL;
    SSL_CTX *ctx;

    if (!tls && (a->val[O_REDIS_TLS_NAME] || a->val[O_REDIS_TLS_CERT]
                 || a->val[O_REDIS_TLS_KEY])) {
        say("--redis-tls-name, --redis-tls-cert and --redis-tls-key need "
            "--redis-tls-ca FILE (the server is always verified)");
        return -1;
    }
    if (!a->val[O_REDIS_TLS_CERT] != !a->val[O_REDIS_TLS_KEY]) {
        say("--redis-tls-cert and --redis-tls-key go together");
        return -1;
    }
    if (tls && unix_socket) {
        say("--redis-tls-ca: TLS over a unix socket is not supported");
        return -1;
    }
    if (!tls)
        return 0;
    ctx = redis_tls_ctx(a);
    SSL_CTX_free(ctx);
    return ctx != NULL ? 0 : -1;
}

/* The connection options, checked before any command runs: a mistyped
 * value is a usage error (exit 2), never another port or database 0; the
 * password file read now. */
int check_redis_opts(const args_t *a)
{
    const char *addr = a->val[O_REDIS];
    unsigned long long db;
    jpki_store_spec sp;
    char host[256], err[600];
    int port, sentinel = a->val[O_REDIS_SENTINEL] != NULL;

    if (a->val[O_REDIS_PASSWORD] != NULL) {
        say("--redis-password is not taken (a command line is readable by "
            "every local user): write the password on the first line of a "
            "file others cannot read and give --redis-password-file FILE, "
            "or set JPKI_REDIS_PASSWORD");
        return -1;
    }
    if (sentinel && addr != a->val[O_REDIS_SENTINEL]) {
        say("--redis and --redis-sentinel do not mix (one server, or the "
            "sentinels that name its primary)");
        return -1;
    }
    if (sentinel != (a->val[O_REDIS_MASTER] != NULL)) {
        say(sentinel ? "--redis-sentinel needs --redis-master NAME (the name "
                       "the sentinels know the primary by)"
                     : "--redis-master goes with --redis-sentinel");
        return -1;
    }
    if (sentinel && sentinel_spec(a, &sp, 0) != 0)
        return -1;
    if (!sentinel && addr != NULL
        && (strncmp(addr, "unix:", 5) == 0
            ? addr[5] == '\0'
            : redis_addr(addr, host, sizeof(host), &port) != 0)) {
        say("--redis: expected HOST:PORT (PORT 1..65535) or unix:PATH, got "
            "\"%.64s\"", addr);
        return -1;
    }
    if (check_tls_opts(a, !sentinel && addr != NULL
                              && strncmp(addr, "unix:", 5) == 0) != 0)
        return -1;
    if (a->val[O_REDIS_PASSWORD_FILE] != NULL
        && jpki_conf_password_file(a->val[O_REDIS_PASSWORD_FILE],
                                   file_password, sizeof(file_password), err,
                                   sizeof(err)) != JPKI_OK) {
        say("--redis-password-file: %s", err);
        return -1;
    }
    if (a->val[O_REDIS_SENTINEL_PASSWORD_FILE] != NULL && !sentinel) {
        say("--redis-sentinel-password-file goes with --redis-sentinel");
        return -1;
    }
    if (a->val[O_REDIS_SENTINEL_PASSWORD_FILE] != NULL
        && jpki_conf_password_file(a->val[O_REDIS_SENTINEL_PASSWORD_FILE],
                                   sentinel_password,
                                   sizeof(sentinel_password), err,
                                   sizeof(err)) != JPKI_OK) {
        say("--redis-sentinel-password-file: %s", err);
        return -1;
    }
    return opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* c's exchange run to its end within REDIS_WAIT_MS. */
static jpki_conn_state conn_run(jpki_conn *c)
{
    long long end = now_ms() + REDIS_WAIT_MS;
    struct pollfd p;
    jpki_conn_state st;

    for (;;) {
        st = jpki_conn_step(c);
        if (st == JPKI_CONN_DONE || st == JPKI_CONN_FAILED)
            return st;
        p.fd = jpki_conn_fd(c);
        p.events = st == JPKI_CONN_WANT_READ ? POLLIN : POLLOUT;
        if (end <= now_ms() || poll(&p, 1, (int)(end - now_ms())) == 0) {
            jpki_conn_timeout(c);
            return JPKI_CONN_FAILED;
        }
    }
}

/* Asks the sentinels in turn for the primary (the core's discovery, as
 * the gates do): its address into host and port; -1 after a message when
 * none named it. */
static int sentinel_primary(const args_t *a, char *host, size_t hostlen,
                            int *port)
{
    struct addrinfo hints, *res = NULL;
    const jpki_sentinel_addr *pa;
    jpki_store_spec sp;
    jpki_discovery d;
    jpki_sentinel *rec;
    SSL_CTX *tls = NULL;
    jpki_conn *c;
    char svc[8];
    int i, found = 0;

    if (sentinel_spec(a, &sp, 0) != 0)
        return -1;
    if (a->val[O_REDIS_TLS_NAME] != NULL)
        snprintf(sp.tls_name, sizeof(sp.tls_name), "%s",
                 a->val[O_REDIS_TLS_NAME]);
    snprintf(sp.sentinel_password, sizeof(sp.sentinel_password), "%s",
             sentinel_password);
    if (a->val[O_REDIS_TLS_CA] != NULL && (tls = redis_tls_ctx(a)) == NULL)
        goto out;
    if ((rec = jpki_sentinel_new(sp.n_sentinels)) == NULL) {
        say("out of memory");
        goto out;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    jpki_discovery_begin(&d, rec, &sp);
    while (!found && (i = jpki_discovery_next(&d)) >= 0) {
        snprintf(svc, sizeof(svc), "%u", sp.sentinels[i].port);
        if (getaddrinfo(sp.sentinels[i].host, svc, &hints, &res) != 0) {
            say("redis sentinel %.300s does not resolve", d.where);
            (void)jpki_discovery_fed(&d, NULL);
            continue;
        }
        c = jpki_conn_open(res->ai_addr, res->ai_addrlen, "redis sentinel",
                           d.where);
        freeaddrinfo(res);
        if (c == NULL || jpki_discovery_query(&d, c, tls) != JPKI_OK) {
            jpki_conn_free(c);
            say("redis sentinel: cannot ask %.300s", d.where);
            break;
        }
        pa = conn_run(c) == JPKI_CONN_DONE ? jpki_conn_primary(c) : NULL;
        if (pa == NULL)
            say("%.400s", jpki_conn_reason(c) != NULL ? jpki_conn_reason(c)
                : "redis sentinel failed");
        if (jpki_discovery_fed(&d, pa) != JPKI_DISCOVERY_NEXT) {
            snprintf(host, hostlen, "%s", pa->host);
            *port = (int)pa->port;
            found = 1;
        }
        jpki_conn_free(c);
    }
    if (!found && d.say[0] != '\0')
        say("redis: %s", d.say);
    jpki_sentinel_free(rec);
out:
    SSL_CTX_free(tls);
    OPENSSL_cleanse(sp.sentinel_password, sizeof(sp.sentinel_password));
    return found ? 0 : -1;
}

/* The server is the primary: ROLE says "master" (one that a sentinel
 * named may have been demoted since). */
static int role_is_master(redisContext *rc, const char *host, int port)
{
    redisReply *r = redisCommand(rc, "ROLE");
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1
             && r->element[0]->type == REDIS_REPLY_STRING
             && strcmp(r->element[0]->str, "master") == 0;

    if (!ok)
        say("redis: %.200s:%d is not the primary (ROLE: %.20s)", host, port,
            r == NULL ? rc->errstr
            : r->type == REDIS_REPLY_ERROR ? "refused, the user needs +role"
            : r->type == REDIS_REPLY_ARRAY && r->elements >= 1
              && r->element[0]->type == REDIS_REPLY_STRING
            ? r->element[0]->str : "?");
    freeReplyObject(r);
    return ok;
}

static redisContext *redis_connect(const args_t *a, int *sentinel,
                                   char *host, size_t hostlen, int *port)
{
    const char *addr = a->val[O_REDIS];
    struct timeval tv = {REDIS_WAIT_MS / 1000, 0};
    redisContext *rc;

    *sentinel = a->val[O_REDIS_SENTINEL] != NULL;
    if (*sentinel && sentinel_primary(a, host, hostlen, port) != 0)
        return NULL;
    if (a->val[O_REDIS_TLS_CA] != NULL
        && (*sentinel || redis_addr(addr, host, hostlen, port) == 0)) {
        rc = redis_tls_connect(a, host, *port);
        if (rc != NULL)
            redisSetTimeout(rc, tv);
        return rc;
    }
    if (*sentinel) {
        rc = redisConnectWithTimeout(host, *port, tv);
    } else if (strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else if (redis_addr(addr, host, hostlen, port) == 0) {
        rc = redisConnectWithTimeout(host, *port, tv);
    } else {
        say("--redis: expected HOST:PORT or unix:PATH");
        return NULL;
    }
    if (rc == NULL || rc->err) {
        if (*sentinel)
            say("redis: cannot connect to the primary %.200s:%d", host,
                *port);
        else
            say("redis: cannot connect to %.200s", addr);
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    return rc;
}

redisContext *redis_open(const args_t *a)
{
    const char *pw;
    unsigned long long db;
    redisContext *rc;
    redisReply *r;
    char host[256] = "";
    int port = 0, sentinel;

    /* both checked by check_redis_opts() before the command ran */
    if (opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db) != 0)
        return NULL;
    rc = redis_connect(a, &sentinel, host, sizeof(host), &port);
    if (rc == NULL)
        return NULL;
    pw = file_password[0] ? file_password : getenv("JPKI_REDIS_PASSWORD");
    if (pw != NULL) {
        r = a->val[O_REDIS_USER]
            ? redisCommand(rc, "AUTH %s %s", a->val[O_REDIS_USER], pw)
            : redisCommand(rc, "AUTH %s", pw);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            if (r == NULL)
                say("redis: AUTH: %.200s", rc->errstr);
            else
                say("redis: authentication refused");
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (sentinel && !role_is_master(rc, host, port)) {
        redisFree(rc);
        return NULL;
    }
    if (a->val[O_REDIS_DB] != NULL) {
        r = redisCommand(rc, "SELECT %llu", db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            say("redis: SELECT %llu: %.200s", db,
                r == NULL ? rc->errstr : "refused");
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* A SCAN reply is [cursor, [key, ...]].  Whatever else answers (another
 * server on that port, a proxy, a future Redis) is refused, not read: a
 * cursor that is not digits would be sent back as is, a key that is not a
 * string has no text. */
int scan_reply_ok(const redisReply *r)
{
    const redisReply *cur, *keys;
    size_t i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return 0;
    cur = r->element[0];
    keys = r->element[1];
    if (cur->type != REDIS_REPLY_STRING || cur->len > 20
        || !all_digits(cur->str, cur->len) || keys->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < keys->elements; i++)
        if (keys->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}


/* The next SCAN batch of keys matching match (cursor: "0" at first, then
 * as left by the last call; "0" again after the last batch): the checked
 * reply (free it), or NULL after a message. */
redisReply *scan_next(redisContext *rc, char cursor[32], const char *match)
{
    redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor,
                                 match);

    if (!scan_reply_ok(r)) {
        say("redis: SCAN failed: %.200s", r == NULL ? rc->errstr
            : r->type == REDIS_REPLY_ERROR ? r->str
            : "the answer is not a SCAN reply");
        freeReplyObject(r);
        return NULL;
    }
    memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
    return r;
}
