/*
 * store.c - the store commands in Redis form: validation of a command,
 * its RESP encoding, the conversion of a hiredis reply into a result, and
 * a bounded incremental reply reader over hiredis's redisReader.
 *
 * The key schema is in docs/store-schema.md.  Values are binary-safe; keys
 * are printable ASCII without spaces.
 */
#include "internal.h"
#include "sentinel.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Shared with shm.c (the embedded store validates commands the same way).
 * Candidate for internal.h. */

/* Upper bound of unparsed reply bytes a reader holds: a reply that does not
 * complete within this many bytes is a protocol error.  Real replies are
 * under 256 bytes (values are at most JPKI_STORE_VAL_MAX), INFO memory's
 * about 1.3 KiB. */
#define RESP_PENDING_MAX  (64 * 1024)
/* Idle read buffer kept by hiredis between replies (redisReader.maxbuf). */
#define RESP_IDLE_BUF     (4 * 1024)
/* Longest integer header accepted (":<digits>", "$<digits>"): 18 digits
 * cannot overflow a long long inside hiredis. */
#define RESP_INT_DIGITS   18

/* ------------------------------------------------------------------ */
/* Command validation                                                  */
/* ------------------------------------------------------------------ */

static int key_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f;        /* printable ASCII, no space */
}

static int key_ok(const char *key, size_t len)
{
    size_t plen = sizeof(JPKI_STORE_PREFIX) - 1;
    size_t i;

    if (len <= plen || len > JPKI_STORE_KEY_MAX)
        return 0;
    if (memcmp(key, JPKI_STORE_PREFIX, plen) != 0)
        return 0;
    for (i = plen; i < len; i++)
        if (!key_char_ok((unsigned char)key[i]))
            return 0;
    return 1;
}

jpki_err jpki_store_cmd_check(const jpki_store_cmd *cmd)
{
    if (cmd == NULL)
        return JPKI_ERR_INVALID;
    switch (cmd->op) {
    case JPKI_STORE_GET:
    case JPKI_STORE_SET:
    case JPKI_STORE_SETNX:
    case JPKI_STORE_DEL:
    case JPKI_STORE_INCR:
    case JPKI_STORE_DECR:
        break;
    case JPKI_STORE_PEXPIRE:
        if (cmd->ttl_ms == 0)
            return JPKI_ERR_INVALID;
        break;
    case JPKI_STORE_HGET:
        if (cmd->vallen == 0 || cmd->vallen > 64)
            return JPKI_ERR_INVALID;
        break;
    case JPKI_STORE_INFO_MEMORY:
        return cmd->keylen == 0 && cmd->vallen == 0 ? JPKI_OK
                                                    : JPKI_ERR_INVALID;
    case JPKI_STORE_WAIT:
        return cmd->keylen == 0 && cmd->vallen == 1 && cmd->val[0] >= '1'
               && cmd->val[0] <= '8' && cmd->ttl_ms > 0
               ? JPKI_OK : JPKI_ERR_INVALID;
    default:
        return JPKI_ERR_INVALID;
    }
    if (!key_ok(cmd->key, cmd->keylen))
        return JPKI_ERR_INVALID;
    if (cmd->vallen > JPKI_STORE_VAL_MAX)
        return JPKI_ERR_INVALID;
    return JPKI_OK;
}

/* ------------------------------------------------------------------ */
/* RESP encoding                                                       */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *argv[6];
    size_t argvlen[6];
    int argc;
    char ttl[16];
} resp_args;

static void args_push(resp_args *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->argvlen[a->argc] = len;
    a->argc++;
}

static void args_push_str(resp_args *a, const char *s)
{
    args_push(a, s, strlen(s));
}

static void args_build(const jpki_store_cmd *cmd, resp_args *a)
{
    int n;

    a->argc = 0;
    switch (cmd->op) {
    case JPKI_STORE_GET:
        args_push_str(a, "GET");
        args_push(a, cmd->key, cmd->keylen);
        return;
    case JPKI_STORE_DEL:
        args_push_str(a, "DEL");
        args_push(a, cmd->key, cmd->keylen);
        return;
    case JPKI_STORE_INCR:
    case JPKI_STORE_DECR:
        args_push_str(a, cmd->op == JPKI_STORE_INCR ? "INCR" : "DECR");
        args_push(a, cmd->key, cmd->keylen);
        return;
    case JPKI_STORE_PEXPIRE:
        args_push_str(a, "PEXPIRE");
        args_push(a, cmd->key, cmd->keylen);
        n = snprintf(a->ttl, sizeof(a->ttl), "%lu",
                     (unsigned long)cmd->ttl_ms);
        args_push(a, a->ttl, (size_t)n);
        return;
    case JPKI_STORE_HGET:
        args_push_str(a, "HGET");
        args_push(a, cmd->key, cmd->keylen);
        args_push(a, (const char *)cmd->val, cmd->vallen);
        return;
    case JPKI_STORE_SET:
    case JPKI_STORE_SETNX:
        args_push_str(a, "SET");
        args_push(a, cmd->key, cmd->keylen);
        args_push(a, (const char *)cmd->val, cmd->vallen);
        if (cmd->op == JPKI_STORE_SETNX)
            args_push_str(a, "NX");
        if (cmd->ttl_ms > 0) {
            n = snprintf(a->ttl, sizeof(a->ttl), "%lu",
                         (unsigned long)cmd->ttl_ms);
            args_push_str(a, "PX");
            args_push(a, a->ttl, (size_t)n);
        }
        return;
    case JPKI_STORE_INFO_MEMORY:
        args_push_str(a, "INFO");
        args_push_str(a, "memory");
        return;
    case JPKI_STORE_WAIT:
        args_push_str(a, "WAIT");
        args_push(a, (const char *)cmd->val, cmd->vallen);
        n = snprintf(a->ttl, sizeof(a->ttl), "%lu",
                     (unsigned long)cmd->ttl_ms);
        args_push(a, a->ttl, (size_t)n);
        return;
    }
}

jpki_err jpki_store_cmd_to_resp(const jpki_store_cmd *cmd, char **out,
                                size_t *outlen)
{
    resp_args a;
    char *buf = NULL;
    int n;
    jpki_err e;

    if (out == NULL || outlen == NULL)
        return JPKI_ERR_INVALID;
    *out = NULL;
    *outlen = 0;
    e = jpki_store_cmd_check(cmd);
    if (e != JPKI_OK)
        return e;
    args_build(cmd, &a);
    n = redisFormatCommandArgv(&buf, a.argc, a.argv, a.argvlen);
    if (n < 0 || buf == NULL)
        return JPKI_ERR_NOMEM;
    *out = buf;
    *outlen = (size_t)n;
    return JPKI_OK;
}

/* ------------------------------------------------------------------ */
/* Reply conversion                                                    */
/* ------------------------------------------------------------------ */

static void res_error(jpki_store_result *res)
{
    memset(res, 0, sizeof(*res));
    res->type = JPKI_STORE_R_ERROR;
}

static void res_int(jpki_store_result *res, long long n)
{
    res->type = JPKI_STORE_R_INT;
    res->n = n;
}

static int reply_is_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_STATUS && r->str != NULL
           && r->len == 2 && memcmp(r->str, "OK", 2) == 0;
}

static void from_get(const redisReply *r, jpki_store_result *res)
{
    if (r->type == REDIS_REPLY_NIL) {
        res->type = JPKI_STORE_R_NIL;
        return;
    }
    if (r->type != REDIS_REPLY_STRING || r->len > JPKI_STORE_VAL_MAX)
        return;
    if (r->len > 0 && r->str == NULL)
        return;
    if (r->len > 0)
        memcpy(res->val, r->str, r->len);
    res->vallen = r->len;
    res->type = JPKI_STORE_R_VALUE;
}

static void from_set(const redisReply *r, int nx, jpki_store_result *res)
{
    if (reply_is_ok(r))
        res_int(res, 1);
    else if (nx && r->type == REDIS_REPLY_NIL)
        res_int(res, 0);
}

static void from_del(const redisReply *r, jpki_store_result *res)
{
    /* DEL of one key (and PEXPIRE) answers 0 or 1; anything else is not
     * our reply. */
    if (r->type == REDIS_REPLY_INTEGER
        && (r->integer == 0 || r->integer == 1))
        res_int(res, r->integer);
}

static void from_incr(const redisReply *r, int decr, jpki_store_result *res)
{
    if (r->type == REDIS_REPLY_INTEGER && (decr || r->integer >= 1))
        res_int(res, r->integer);
}

/* The value of field name ("used_memory") in an INFO reply's text: lines
 * "name:value\r\n"; the value 1..19 decimal digits.  0, -1 absent or not
 * a number. */
static int info_field(const char *s, size_t len, const char *name,
                      uint64_t *out)
{
    size_t nl = strlen(name), i = 0, d;
    uint64_t v;

    while (i < len) {
        if (len - i > nl && memcmp(s + i, name, nl) == 0 && s[i + nl] == ':') {
            v = 0;
            for (d = 0, i += nl + 1; i < len && s[i] >= '0' && s[i] <= '9';
                 i++, d++) {
                if (d == 19)
                    return -1;
                v = v * 10 + (uint64_t)(s[i] - '0');
            }
            if (d == 0 || (i < len && s[i] != '\r' && s[i] != '\n'))
                return -1;
            *out = v;
            return 0;
        }
        while (i < len && s[i] != '\n')      /* the next line */
            i++;
        i++;
    }
    return -1;
}

static void from_info_memory(const redisReply *r, jpki_store_result *res)
{
    uint64_t used, max;
    int n;

    if (r->type != REDIS_REPLY_STRING || r->str == NULL
        || info_field(r->str, r->len, "used_memory", &used) != 0
        || info_field(r->str, r->len, "maxmemory", &max) != 0)
        return;
    n = snprintf((char *)res->val, sizeof(res->val), "%llu %llu",
                 (unsigned long long)used, (unsigned long long)max);
    if (n <= 0 || (size_t)n >= sizeof(res->val))
        return;
    res->vallen = (size_t)n;
    res->type = JPKI_STORE_R_VALUE;
}

int jpki_store_info_memory(const jpki_store_result *res, uint64_t *used,
                           uint64_t *max)
{
    char buf[48];
    unsigned long long u, m;
    int end = 0;

    if (res == NULL || res->type != JPKI_STORE_R_VALUE || res->vallen == 0
        || res->vallen >= sizeof(buf))
        return -1;
    memcpy(buf, res->val, res->vallen);
    buf[res->vallen] = '\0';
    if (strspn(buf, "0123456789 ") != res->vallen
        || sscanf(buf, "%llu %llu%n", &u, &m, &end) != 2
        || (size_t)end != res->vallen)
        return -1;
    *used = u;
    *max = m;
    return 0;
}

/* Redis refuses writes at maxmemory (policy noeviction, or nothing left to
 * evict) with "-OOM command not allowed when used memory > 'maxmemory'". */
static int reply_is_oom(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str != NULL && r->len >= 4
           && memcmp(r->str, "OOM ", 4) == 0;
}

void jpki_store_result_from_redis(const jpki_store_cmd *cmd,
                                  const void *redis_reply,
                                  jpki_store_result *res)
{
    const redisReply *r = redis_reply;

    if (res == NULL)
        return;
    res_error(res);
    if (cmd == NULL || r == NULL)
        return;
    if (reply_is_oom(r)) {
        res->type = JPKI_STORE_R_FULL;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR)
        return;
    switch (cmd->op) {
    case JPKI_STORE_GET:
    case JPKI_STORE_HGET:
        from_get(r, res);
        break;
    case JPKI_STORE_SET:
        from_set(r, 0, res);
        break;
    case JPKI_STORE_SETNX:
        from_set(r, 1, res);
        break;
    case JPKI_STORE_DEL:
    case JPKI_STORE_PEXPIRE:
        from_del(r, res);
        break;
    case JPKI_STORE_INCR:
    case JPKI_STORE_DECR:
        from_incr(r, cmd->op == JPKI_STORE_DECR, res);
        break;
    case JPKI_STORE_INFO_MEMORY:
        from_info_memory(r, res);
        break;
    case JPKI_STORE_WAIT:
        if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0)
            res_int(res, r->integer);
        break;
    }
}

/* ------------------------------------------------------------------ */
/* Incremental reply reader                                            */
/* ------------------------------------------------------------------ */

struct jpki_resp_reader {
    redisReader *rd;
    size_t scanned;     /* line search position, from rd->pos */
    int failed;
    int readonly;       /* a reply was -READONLY (a replica) */
};

jpki_resp_reader *jpki_resp_reader_new(void)
{
    jpki_resp_reader *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->rd = redisReaderCreate();
    if (r->rd == NULL) {
        free(r);
        return NULL;
    }
    r->rd->maxbuf = RESP_IDLE_BUF;
    return r;
}

void jpki_resp_reader_free(jpki_resp_reader *r)
{
    if (r == NULL)
        return;
    redisReaderFree(r->rd);
    free(r);
}

static size_t pending(const jpki_resp_reader *r)
{
    return r->rd->len - r->rd->pos;
}

size_t jpki_resp_reader_pending(const jpki_resp_reader *r)
{
    return r == NULL ? 0 : pending(r);
}

jpki_err jpki_resp_reader_feed(jpki_resp_reader *r, const char *buf,
                               size_t len)
{
    if (r == NULL || (buf == NULL && len > 0))
        return JPKI_ERR_INVALID;
    if (r->failed)
        return JPKI_ERR_PARSE;
    if (len == 0)
        return JPKI_OK;
    if (len > RESP_PENDING_MAX || pending(r) > RESP_PENDING_MAX - len) {
        r->failed = 1;
        return JPKI_ERR_TOO_LARGE;
    }
    if (redisReaderFeed(r->rd, buf, len) != REDIS_OK) {
        r->failed = 1;
        return JPKI_ERR_NOMEM;
    }
    return JPKI_OK;
}

/* "\r\n" at p[i]: 1 there, 0 more bytes needed, -1 something else. */
static int check_crlf(const char *p, size_t n, size_t i)
{
    if (i + 1 >= n)
        return 0;
    return p[i] == '\r' && p[i + 1] == '\n' ? 1 : -1;
}

/* An integer header "<digits>\r\n" (or "-1\r\n" only, when neg_one) of at
 * most maxdigits digits and at most max.  Returns 1 valid and complete
 * (*v the value, *end the offset after "\r\n"), 0 valid so far, -1
 * invalid. */
static int check_number(const char *p, size_t n, int neg_one,
                        size_t maxdigits, long long max, long long *v,
                        size_t *end)
{
    size_t i = 0, digits = 0;
    int rc;

    *v = 0;
    if (n > 0 && p[0] == '-') {
        if (neg_one) {
            if (n >= 2 && p[1] != '1')
                return -1;
            if (n >= 3 && p[2] != '\r')
                return -1;
            *v = -1;
            *end = 4;
            return n >= 3 ? check_crlf(p, n, 2) : 0;
        }
        i = 1;
    }
    for (; i < n && p[i] != '\r'; i++) {
        if (p[i] < '0' || p[i] > '9' || ++digits > maxdigits)
            return -1;
        *v = *v * 10 + (p[i] - '0');
        if (*v > max)
            return -1;
    }
    if (i == n)
        return 0;
    if (digits == 0)
        return -1;
    rc = check_crlf(p, n, i);
    *end = i + 2;
    return rc;
}

/* A bulk string "$<len>\r\n<len bytes>\r\n" (or "$-1\r\n"): length within
 * bounds, and the body followed by "\r\n" (hiredis skips those two bytes
 * without looking at them). */
static int check_bulk(const char *p, size_t n)
{
    long long len;
    size_t end = 0, body_end;
    int rc;

    rc = check_number(p, n, 1, 5, RESP_PENDING_MAX, &len, &end);
    if (rc <= 0 || len < 0)
        return rc;
    body_end = end + (size_t)len;
    if (n < body_end + 2)
        return 0;
    return check_crlf(p, n, body_end);
}

/* A status or error line: complete at its first "\r\n".  The search goes
 * on from where the last one stopped, so a long line fed in small pieces
 * costs linear time. */
static int check_line(jpki_resp_reader *r, const char *p, size_t n)
{
    size_t i = r->scanned > 1 ? r->scanned : 1;

    for (; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return 1;
    r->scanned = i;
    return 0;
}

/* Checks the next reply before hiredis sees it, and hands it over only
 * when it is complete, so hiredis never holds a partial reply and the
 * next reply always starts at the reader's position.  Accepted: the four
 * reply types our commands produce, integers that cannot overflow, bulk
 * lengths within bounds.  Arrays are refused: no store command answers
 * with one, so an array means a desynchronised stream.  Returns 1 a whole
 * reply is buffered, 0 more bytes needed, -1 a protocol error. */
static int check_reply(jpki_resp_reader *r)
{
    const char *p = r->rd->buf + r->rd->pos;
    size_t n = pending(r), end;
    long long v;

    if (n == 0)
        return 0;
    switch (p[0]) {
    case '+':
    case '-':
        return check_line(r, p, n);
    case ':':
        return check_number(p + 1, n - 1, 0, RESP_INT_DIGITS, LLONG_MAX,
                            &v, &end);
    case '$':
        return check_bulk(p + 1, n - 1);
    default:
        return -1;
    }
}

int jpki_resp_reader_next(jpki_resp_reader *r, const jpki_store_cmd *cmd,
                          jpki_store_result *res)
{
    void *reply = NULL;
    int h;

    if (r == NULL || res == NULL || r->failed)
        return -1;
    h = check_reply(r);
    if (h == 0)
        return 0;
    if (h < 0 || redisReaderGetReply(r->rd, &reply) != REDIS_OK
        || reply == NULL) {
        r->failed = 1;
        return -1;
    }
    r->scanned = 0;
    if (((redisReply *)reply)->type == REDIS_REPLY_ERROR
        && ((redisReply *)reply)->len >= 8
        && memcmp(((redisReply *)reply)->str, "READONLY", 8) == 0)
        r->readonly = 1;
    jpki_store_result_from_redis(cmd, reply, res);
    freeReplyObject(reply);
    return 1;
}

int jpki_resp_reader_readonly(const jpki_resp_reader *r)
{
    return r != NULL && r->readonly;
}

int jpki_resp_reader_role(jpki_resp_reader *r, char *role, size_t rolelen)
{
    void *reply = NULL;
    size_t used;
    int rc;

    if (r == NULL || r->failed)
        return -1;
    rc = jpki_role_answer(r->rd->buf + r->rd->pos, pending(r), &used, role,
                          rolelen);
    if (rc == 0)
        return 0;
    if (rc < 0 || redisReaderGetReply(r->rd, &reply) != REDIS_OK
        || reply == NULL) {
        freeReplyObject(reply);
        r->failed = 1;
        return -1;
    }
    freeReplyObject(reply);
    r->scanned = 0;
    return 1;
}
