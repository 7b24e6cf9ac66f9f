/*
 * redis_conn.c - jpkictl's connection to the site's Redis: --redis,
 * --redis-db, --redis-user, --redis-password (or JPKI_REDIS_PASSWORD)
 * checked, then connect, AUTH and SELECT; and the check of a SCAN reply.
 */
#include "jpkictl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* --redis and --redis-db, checked before any command runs: a mistyped
 * value is a usage error (exit 2), never another port or database 0. */
int check_redis_opts(const args_t *a)
{
    const char *addr = a->val[O_REDIS];
    unsigned long long db;
    char host[256];
    int port;

    if (addr != NULL
        && (strncmp(addr, "unix:", 5) == 0
            ? addr[5] == '\0'
            : redis_addr(addr, host, sizeof(host), &port) != 0)) {
        say("--redis: expected HOST:PORT (PORT 1..65535) or unix:PATH, got "
            "\"%.64s\"", addr);
        return -1;
    }
    return opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db);
}

redisContext *redis_open(const args_t *a)
{
    const char *addr = a->val[O_REDIS], *pw;
    struct timeval tv = {3, 0};
    unsigned long long db;
    redisContext *rc;
    redisReply *r;
    char host[256];
    int port;

    /* both checked by check_redis_opts() before the command ran */
    if (opt_uint(a, O_REDIS_DB, 0, INT_MAX, 0, &db) != 0)
        return NULL;
    if (strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else if (redis_addr(addr, host, sizeof(host), &port) == 0) {
        rc = redisConnectWithTimeout(host, port, tv);
    } else {
        say("--redis: expected HOST:PORT or unix:PATH");
        return NULL;
    }
    if (rc == NULL || rc->err) {
        say("redis: cannot connect to %.200s", addr);
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    pw = a->val[O_REDIS_PASSWORD] ? a->val[O_REDIS_PASSWORD]
         : getenv("JPKI_REDIS_PASSWORD");
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
