/* test_redis_roundtrip.c - the store commands against a real redis-server:
 * RESP from jpki_store_cmd_to_resp() written to a socket, answers read back
 * through jpki_resp_reader in small pieces.  Needs JPKI_TEST_REDIS=host:port
 * (t/store-redis.t starts a server and sets it); skips everything without. */
#include "jpki.h"
#include "tap.h"

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define MAXCMDS 64

static int sock = -1;
static redisContext *side;          /* independent checks (PTTL, TYPE) */
static char ns[48];                 /* key namespace of this run */

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints, *ai = NULL, *p;
    struct timeval tv = { 5, 0 };
    int fd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    for (p = ai; p != NULL; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int write_all(const char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(sock, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sends cmds pipelined (in one write) and reads the n answers, receiving
 * at most chunk bytes at a time.  Returns the number of results read. */
static size_t run(const jpki_store_cmd *cmds, size_t n, size_t chunk,
                  jpki_store_result *res)
{
    char *all = NULL, *one, buf[4096];
    size_t total = 0, len, got = 0, i;
    jpki_resp_reader *r;
    ssize_t k;
    int rc = 0;

    for (i = 0; i < n; i++) {
        if (jpki_store_cmd_to_resp(&cmds[i], &one, &len) != JPKI_OK)
            goto out;
        all = realloc(all, total + len);
        memcpy(all + total, one, len);
        total += len;
        free(one);
    }
    if (write_all(all, total) != 0)
        goto out;
    r = jpki_resp_reader_new();
    if (chunk > sizeof(buf))
        chunk = sizeof(buf);
    while (got < n) {
        k = read(sock, buf, chunk);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0 || jpki_resp_reader_feed(r, buf, (size_t)k) != JPKI_OK)
            break;
        while (got < n && (rc = jpki_resp_reader_next(r, &cmds[got],
                                                      &res[got])) == 1)
            got++;
        if (rc < 0)
            break;
    }
    jpki_resp_reader_free(r);
out:
    free(all);
    return got;
}

static jpki_store_cmd mk(jpki_store_op op, const char *name, const void *val,
                         size_t vallen, uint32_t ttl)
{
    jpki_store_cmd c;
    int n;

    memset(&c, 0, sizeof(c));
    c.op = op;
    n = snprintf(c.key, sizeof(c.key), "%s%s", ns, name);
    c.keylen = n > 0 && (size_t)n < sizeof(c.key) ? (size_t)n : 0;
    if (val != NULL && vallen <= sizeof(c.val))
        memcpy(c.val, val, vallen);
    c.vallen = vallen;
    c.ttl_ms = ttl;
    return c;
}

static jpki_store_cmd mks(jpki_store_op op, const char *name,
                          const char *val, uint32_t ttl)
{
    return mk(op, name, val, val ? strlen(val) : 0, ttl);
}

/* One command, one answer. */
static jpki_store_result one(jpki_store_cmd c)
{
    jpki_store_result res;

    memset(&res, 0, sizeof(res));
    if (run(&c, 1, 3, &res) != 1)
        res.type = JPKI_STORE_R_ERROR;
    return res;
}

static int is_val(jpki_store_result r, const void *v, size_t len)
{
    return r.type == JPKI_STORE_R_VALUE && r.vallen == len
           && memcmp(r.val, v, len) == 0;
}

static int is_n(jpki_store_result r, long long n)
{
    return r.type == JPKI_STORE_R_INT && r.n == n;
}

static long long side_int(const char *fmt, const char *key)
{
    redisReply *rep = redisCommand(side, fmt, key);
    long long v = -1000;

    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static void side_cmd(const char *fmt, const char *key, const char *arg)
{
    freeReplyObject(redisCommand(side, fmt, key, arg));
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void test_basic(void)
{
    jpki_store_cmd c;
    uint8_t bin[JPKI_STORE_VAL_MAX];
    size_t i;

    ok(one(mks(JPKI_STORE_GET, "a", NULL, 0)).type == JPKI_STORE_R_NIL,
       "GET absent -> NIL");
    ok(is_n(one(mks(JPKI_STORE_SET, "a", "hello", 0)), 1), "SET -> 1");
    ok(is_val(one(mks(JPKI_STORE_GET, "a", NULL, 0)), "hello", 5),
       "GET -> value");
    c = mks(JPKI_STORE_SET, "a", "x", 0);
    is_int(side_int("PTTL %s", c.key), -1, "SET without TTL: no expiry");
    ok(is_n(one(mks(JPKI_STORE_SETNX, "a", "other", 1000)), 0),
       "SETNX existing -> 0");
    ok(is_val(one(mks(JPKI_STORE_GET, "a", NULL, 0)), "hello", 5),
       "  value kept");
    ok(is_n(one(mks(JPKI_STORE_SETNX, "b", "1", 60000)), 1),
       "SETNX absent -> 1");
    c = mks(JPKI_STORE_GET, "b", NULL, 0);
    {
        long long pttl = side_int("PTTL %s", c.key);
        ok(pttl > 50000 && pttl <= 60000, "  PX set (PTTL %lld)", pttl);
    }
    ok(is_n(one(mks(JPKI_STORE_SET, "b", "2", 0)), 1)
       && side_int("PTTL %s", c.key) == -1,
       "SET without TTL clears an earlier TTL");
    ok(is_n(one(mks(JPKI_STORE_DEL, "a", NULL, 0)), 1), "DEL -> 1");
    ok(is_n(one(mks(JPKI_STORE_DEL, "a", NULL, 0)), 0), "DEL again -> 0");
    ok(one(mks(JPKI_STORE_GET, "a", NULL, 0)).type == JPKI_STORE_R_NIL,
       "  gone");

    for (i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 37 + 1);
    bin[0] = 0;
    bin[1] = '\r';
    bin[2] = '\n';
    bin[3] = 0xff;
    ok(is_n(one(mk(JPKI_STORE_SET, "bin", bin, sizeof(bin), 0)), 1)
       && is_val(one(mk(JPKI_STORE_GET, "bin", NULL, 0, 0)), bin,
                 sizeof(bin)),
       "binary value of JPKI_STORE_VAL_MAX bytes round-trips");
    ok(is_n(one(mk(JPKI_STORE_SET, "empty", "", 0, 0)), 1)
       && is_val(one(mk(JPKI_STORE_GET, "empty", NULL, 0, 0)), "", 0),
       "empty value round-trips");
    {
        char name[JPKI_STORE_KEY_MAX + 1];
        size_t left = JPKI_STORE_KEY_MAX - strlen(ns);
        memset(name, 'k', left);
        name[left] = '\0';
        c = mks(JPKI_STORE_SET, name, "long", 0);
        ok(c.keylen == JPKI_STORE_KEY_MAX && is_n(one(c), 1)
           && is_val(one(mks(JPKI_STORE_GET, name, NULL, 0)), "long", 4),
           "key of JPKI_STORE_KEY_MAX bytes");
    }
}

static void test_ttl(void)
{
    /* a second to spare: the round trips before the TTL check run under
     * ASan, beside other tests */
    ok(is_n(one(mks(JPKI_STORE_SET, "t", "x", 1000)), 1), "SET PX 1000");
    ok(is_n(one(mks(JPKI_STORE_SETNX, "u", "y", 1000)), 1), "SETNX PX 1000");
    ok(is_val(one(mks(JPKI_STORE_GET, "t", NULL, 0)), "x", 1),
       "  present at once");
    ok(is_n(one(mks(JPKI_STORE_SETNX, "u", "z", 150)), 0),
       "  single use while alive");
    sleep_ms(1300);
    ok(one(mks(JPKI_STORE_GET, "t", NULL, 0)).type == JPKI_STORE_R_NIL,
       "SET: absent after the TTL");
    ok(is_n(one(mks(JPKI_STORE_SETNX, "u", "z", 150)), 1),
       "SETNX: usable again after the TTL");
}

static void test_pipeline(void)
{
    static const size_t chunks[] = { 1, 2, 5, 4096 };
    jpki_store_cmd cmds[MAXCMDS];
    jpki_store_result res[MAXCMDS];
    size_t n, i, c, bad;
    char name[32], val[32];

    for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        n = 0;
        for (i = 0; i < 12; i++) {
            snprintf(name, sizeof(name), "p%zu:%zu", c, i);
            snprintf(val, sizeof(val), "v%zu", i * 7919);
            cmds[n++] = mks(JPKI_STORE_SETNX, name, val, 30000);
            cmds[n++] = mks(JPKI_STORE_SETNX, name, "again", 30000);
            cmds[n++] = mks(JPKI_STORE_GET, name, NULL, 0);
            if (i % 3 == 0) {
                cmds[n++] = mks(JPKI_STORE_DEL, name, NULL, 0);
                cmds[n++] = mks(JPKI_STORE_GET, name, NULL, 0);
            }
        }
        memset(res, 0, sizeof(res));
        is_int(run(cmds, n, chunks[c], res), n,
               "pipeline of %zu commands, read %zu bytes at a time",
               n, chunks[c]);
        for (i = 0, bad = 0; i < n; i++) {
            const jpki_store_cmd *cm = &cmds[i];
            if (cm->op == JPKI_STORE_SETNX)
                bad += !is_n(res[i], memcmp(cm->val, "again", 5) != 0);
            else if (cm->op == JPKI_STORE_DEL)
                bad += !is_n(res[i], 1);
            else if (i > 0 && cmds[i - 1].op == JPKI_STORE_DEL)
                bad += res[i].type != JPKI_STORE_R_NIL;
            else
                bad += !is_val(res[i], cmds[i - 2].val, cmds[i - 2].vallen);
        }
        is_int(bad, 0, "  every answer in order and right");
    }
}

static void test_foreign_data(void)
{
    jpki_store_cmd cmds[3];
    jpki_store_result res[3];
    char big[JPKI_STORE_VAL_MAX + 2];

    /* A value written by someone else, over our bound. */
    memset(big, 'B', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cmds[0] = mks(JPKI_STORE_GET, "big", NULL, 0);
    side_cmd("SET %s %s", cmds[0].key, big);
    cmds[1] = mks(JPKI_STORE_SET, "after", "ok", 0);
    cmds[2] = mks(JPKI_STORE_GET, "after", NULL, 0);
    is_int(run(cmds, 3, 7, res), 3, "pipeline after an oversized value");
    ok(res[0].type == JPKI_STORE_R_ERROR, "  oversized value -> ERROR");
    ok(is_n(res[1], 1) && is_val(res[2], "ok", 2),
       "  the stream stays in step");

    /* A key of the wrong type: Redis answers -WRONGTYPE. */
    cmds[0] = mks(JPKI_STORE_GET, "list", NULL, 0);
    side_cmd("RPUSH %s %s", cmds[0].key, "x");
    cmds[1] = mks(JPKI_STORE_SETNX, "list", "1", 1000);
    cmds[2] = mks(JPKI_STORE_DEL, "list", NULL, 0);
    is_int(run(cmds, 3, 4096, res), 3, "commands on a list key");
    ok(res[0].type == JPKI_STORE_R_ERROR, "  GET -WRONGTYPE -> ERROR");
    ok(is_n(res[1], 0), "  SETNX on an existing key of another type -> 0");
    ok(is_n(res[2], 1), "  DEL removes it");
}

static void test_hiredis_replies(void)
{
    jpki_store_cmd c = mks(JPKI_STORE_SETNX, "h", "1", 5000);
    jpki_store_result res;
    redisReply *rep = NULL;
    char *resp;
    size_t len;
    int i;

    /* The same RESP through hiredis's own context: replies it builds are
     * converted by jpki_store_result_from_redis(). */
    for (i = 0; i < 2; i++) {
        if (jpki_store_cmd_to_resp(&c, &resp, &len) != JPKI_OK)
            break;
        redisAppendFormattedCommand(side, resp, len);
        free(resp);
        rep = NULL;
        redisGetReply(side, (void **)&rep);
        jpki_store_result_from_redis(&c, rep, &res);
        freeReplyObject(rep);
        ok(is_n(res, i == 0 ? 1 : 0), "hiredis context: SETNX, try %d -> %d",
           i + 1, i == 0 ? 1 : 0);
    }
    c = mks(JPKI_STORE_GET, "h", NULL, 0);
    jpki_store_cmd_to_resp(&c, &resp, &len);
    redisAppendFormattedCommand(side, resp, len);
    free(resp);
    rep = NULL;
    redisGetReply(side, (void **)&rep);
    jpki_store_result_from_redis(&c, rep, &res);
    freeReplyObject(rep);
    ok(is_val(res, "1", 1), "hiredis context: GET -> value");
}

int main(void)
{
    const char *env = getenv("JPKI_TEST_REDIS");
    char host[256], *colon;

    (void)tap_path;
    (void)diag;
    if (env == NULL || *env == '\0') {
        printf("1..0 # SKIP no JPKI_TEST_REDIS\n");
        return 0;
    }
    snprintf(host, sizeof(host), "%s", env);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        printf("Bail out! JPKI_TEST_REDIS is host:port\n");
        return 1;
    }
    *colon = '\0';
    sock = connect_to(host, colon + 1);
    side = redisConnect(host, atoi(colon + 1));
    if (sock < 0 || side == NULL || side->err) {
        printf("Bail out! cannot connect to redis at %s\n", env);
        return 1;
    }
    snprintf(ns, sizeof(ns), "%stest:%ld:", JPKI_STORE_PREFIX,
             (long)getpid());

    test_basic();
    test_ttl();
    test_pipeline();
    test_foreign_data();
    test_hiredis_replies();

    redisFree(side);
    close(sock);
    return done_testing();
}
