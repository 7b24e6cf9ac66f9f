/* test_store.c - store commands: RESP encoding, reply conversion, the
 * incremental reader, and the embedded shared-memory table. */
#include "jpki.h"
#include "tap.h"

#include <pthread.h>

#include <stdint.h>
#include <hiredis/hiredis.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static jpki_store_cmd mk(jpki_store_op op, const char *key, const void *val,
                         size_t vallen, uint32_t ttl_ms)
{
    jpki_store_cmd c;

    memset(&c, 0, sizeof(c));
    c.op = op;
    c.keylen = strlen(key);
    if (c.keylen <= JPKI_STORE_KEY_MAX)
        memcpy(c.key, key, c.keylen);
    if (val != NULL && vallen <= JPKI_STORE_VAL_MAX)
        memcpy(c.val, val, vallen);
    c.vallen = vallen;
    c.ttl_ms = ttl_ms;
    return c;
}

static jpki_store_cmd mks(jpki_store_op op, const char *key, const char *val,
                          uint32_t ttl_ms)
{
    return mk(op, key, val, val ? strlen(val) : 0, ttl_ms);
}

/* RESP of cmd equals want (length wlen). */
static int resp_is(const jpki_store_cmd *c, const char *want, size_t wlen)
{
    char *out = NULL;
    size_t len = 0;
    int eq;

    if (jpki_store_cmd_to_resp(c, &out, &len) != JPKI_OK)
        return 0;
    eq = len == wlen && memcmp(out, want, wlen) == 0;
    if (!eq)
        printf("# got %zu bytes: %.*s\n", len, (int)len, out);
    free(out);
    return eq;
}

static int resp_rejected(const jpki_store_cmd *c)
{
    char *out = (char *)"x";
    size_t len = 7;
    jpki_err e = jpki_store_cmd_to_resp(c, &out, &len);

    return e == JPKI_ERR_INVALID && out == NULL && len == 0;
}

static void repeat(char *buf, char ch, size_t n)
{
    memset(buf, ch, n);
    buf[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* RESP encoding                                                       */
/* ------------------------------------------------------------------ */

#define S(lit) lit, sizeof(lit) - 1

static void test_resp_encoding(void)
{
    jpki_store_cmd c;
    char key[JPKI_STORE_KEY_MAX + 2], want[512];
    uint8_t bin[5] = { 'a', 0, '\r', '\n', 0xff };
    int n;

    c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    ok(resp_is(&c, S("*2\r\n$3\r\nGET\r\n$9\r\njpki:v1:x\r\n")), "GET");
    c = mks(JPKI_STORE_DEL, "jpki:v1:out:ab", NULL, 0);
    ok(resp_is(&c, S("*2\r\n$3\r\nDEL\r\n$14\r\njpki:v1:out:ab\r\n")),
       "DEL");
    c = mks(JPKI_STORE_SET, "jpki:v1:x", "1", 0);
    ok(resp_is(&c, S("*3\r\n$3\r\nSET\r\n$9\r\njpki:v1:x\r\n$1\r\n1\r\n")),
       "SET without TTL has no PX");
    c = mks(JPKI_STORE_SET, "jpki:v1:x", "good|-1", 1500);
    ok(resp_is(&c, S("*5\r\n$3\r\nSET\r\n$9\r\njpki:v1:x\r\n$7\r\n"
                     "good|-1\r\n$2\r\nPX\r\n$4\r\n1500\r\n")),
       "SET with PX");
    c = mks(JPKI_STORE_SETNX, "jpki:v1:ch:0f", "1", 120000);
    ok(resp_is(&c, S("*6\r\n$3\r\nSET\r\n$13\r\njpki:v1:ch:0f\r\n$1\r\n1\r\n"
                     "$2\r\nNX\r\n$2\r\nPX\r\n$6\r\n120000\r\n")),
       "SETNX is SET NX PX");
    c = mks(JPKI_STORE_SETNX, "jpki:v1:x", "1", 0);
    ok(resp_is(&c, S("*4\r\n$3\r\nSET\r\n$9\r\njpki:v1:x\r\n$1\r\n1\r\n"
                     "$2\r\nNX\r\n")),
       "SETNX without TTL has no PX");
    c = mks(JPKI_STORE_HGET, "jpki:v1:crl:t:1:ab", NULL, 0);
    memcpy(c.val, "\x00\r\n\xff", 4);
    c.vallen = 4;
    ok(resp_is(&c, S("*3\r\n$4\r\nHGET\r\n$18\r\njpki:v1:crl:t:1:ab\r\n"
                     "$4\r\n\x00\r\n\xff\r\n")),
       "HGET with a binary field");
    {
        char *out = NULL;
        size_t outlen = 0;
        c.vallen = 0;
        ok(jpki_store_cmd_to_resp(&c, &out, &outlen) == JPKI_ERR_INVALID,
           "HGET without a field is refused");
        free(out);
        c.vallen = 65;
        ok(jpki_store_cmd_to_resp(&c, &out, &outlen) == JPKI_ERR_INVALID,
           "HGET with a field over 64 bytes is refused");
        free(out);
    }
    c = mks(JPKI_STORE_SET, "jpki:v1:x", "v", UINT32_MAX);
    ok(resp_is(&c, S("*5\r\n$3\r\nSET\r\n$9\r\njpki:v1:x\r\n$1\r\nv\r\n"
                     "$2\r\nPX\r\n$10\r\n4294967295\r\n")),
       "largest TTL");
    c = mk(JPKI_STORE_SET, "jpki:v1:bin", bin, sizeof(bin), 0);
    ok(resp_is(&c, S("*3\r\n$3\r\nSET\r\n$11\r\njpki:v1:bin\r\n"
                     "$5\r\na\0\r\n\xff\r\n")),
       "binary-safe value");
    c = mk(JPKI_STORE_SET, "jpki:v1:e", "", 0, 0);
    ok(resp_is(&c, S("*3\r\n$3\r\nSET\r\n$9\r\njpki:v1:e\r\n$0\r\n\r\n")),
       "empty value");

    memcpy(key, JPKI_STORE_PREFIX, 8);
    repeat(key + 8, 'k', JPKI_STORE_KEY_MAX - 8);
    c = mks(JPKI_STORE_GET, key, NULL, 0);
    n = snprintf(want, sizeof(want), "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
                 JPKI_STORE_KEY_MAX, key);
    ok(resp_is(&c, want, (size_t)n), "key of JPKI_STORE_KEY_MAX accepted");
    c = mk(JPKI_STORE_SET, "jpki:v1:x", NULL, 0, 0);
    c.vallen = JPKI_STORE_VAL_MAX;
    memset(c.val, 'v', JPKI_STORE_VAL_MAX);
    {
        char *out = NULL;
        size_t len = 0;
        ok(jpki_store_cmd_to_resp(&c, &out, &len) == JPKI_OK
           && len == 28 + 6 + JPKI_STORE_VAL_MAX + 2,
           "value of JPKI_STORE_VAL_MAX accepted");
        free(out);
    }
}

static void test_resp_rejections(void)
{
    jpki_store_cmd c;
    char key[JPKI_STORE_KEY_MAX + 2];
    char *out = NULL;
    size_t len = 0;

    ok(resp_rejected(NULL), "NULL command");
    c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    ok(jpki_store_cmd_to_resp(&c, NULL, &len) == JPKI_ERR_INVALID,
       "NULL out");
    ok(jpki_store_cmd_to_resp(&c, &out, NULL) == JPKI_ERR_INVALID,
       "NULL outlen");
    c.op = (jpki_store_op)99;
    ok(resp_rejected(&c), "unknown op");
    c = mks(JPKI_STORE_GET, "jpki:v2:x", NULL, 0);
    ok(resp_rejected(&c), "other schema version");
    c = mks(JPKI_STORE_GET, "other:x", NULL, 0);
    ok(resp_rejected(&c), "no prefix");
    c = mks(JPKI_STORE_GET, "jpki:v1", NULL, 0);
    ok(resp_rejected(&c), "shorter than the prefix");
    c = mks(JPKI_STORE_GET, "jpki:v1:", NULL, 0);
    ok(resp_rejected(&c), "prefix alone");
    c = mks(JPKI_STORE_GET, "", NULL, 0);
    ok(resp_rejected(&c), "empty key");
    c = mks(JPKI_STORE_GET, "jpki:v1:a b", NULL, 0);
    ok(resp_rejected(&c), "space in key");
    c = mks(JPKI_STORE_GET, "jpki:v1:a\r\nb", NULL, 0);
    ok(resp_rejected(&c), "CRLF in key");
    c = mks(JPKI_STORE_GET, "jpki:v1:a\tb", NULL, 0);
    ok(resp_rejected(&c), "tab in key");
    c = mks(JPKI_STORE_GET, "jpki:v1:a\x7f", NULL, 0);
    ok(resp_rejected(&c), "DEL char in key");
    c = mks(JPKI_STORE_GET, "jpki:v1:\xc3\xa9", NULL, 0);
    ok(resp_rejected(&c), "non-ASCII byte in key");
    c = mks(JPKI_STORE_GET, "jpki:v1:ab", NULL, 0);
    c.key[9] = '\0';
    ok(resp_rejected(&c), "NUL inside key");
    c = mks(JPKI_STORE_GET, "jpki:v1:ab", NULL, 0);
    c.keylen = JPKI_STORE_KEY_MAX + 1;
    ok(resp_rejected(&c), "keylen over JPKI_STORE_KEY_MAX");
    c.keylen = (size_t)-1;
    ok(resp_rejected(&c), "keylen SIZE_MAX");
    memcpy(key, JPKI_STORE_PREFIX, 8);
    repeat(key + 8, 'k', JPKI_STORE_KEY_MAX + 1 - 8);
    c = mks(JPKI_STORE_GET, key, NULL, 0);
    ok(resp_rejected(&c), "key of JPKI_STORE_KEY_MAX + 1");
    c = mks(JPKI_STORE_SET, "jpki:v1:x", "1", 0);
    c.vallen = JPKI_STORE_VAL_MAX + 1;
    ok(resp_rejected(&c), "value over JPKI_STORE_VAL_MAX");
    c.vallen = (size_t)-1;
    ok(resp_rejected(&c), "vallen SIZE_MAX");
    c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    c.vallen = JPKI_STORE_VAL_MAX + 1;
    ok(resp_rejected(&c), "bad vallen rejected for GET too");
}

/* INFO memory: the command, the two numbers out of the reply's text, and
 * what is not an INFO reply refused. */
static int info_conv(const char *text, uint64_t *used, uint64_t *max)
{
    jpki_store_cmd c;
    jpki_store_result res;
    redisReply r;

    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_INFO_MEMORY;
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)text;
    r.len = strlen(text);
    memset(&res, 0x5a, sizeof(res));
    jpki_store_result_from_redis(&c, &r, &res);
    return jpki_store_info_memory(&res, used, max);
}

static void test_info_memory(void)
{
    static const char want[] = "*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n";
    jpki_store_cmd c;
    jpki_store_result res;
    uint64_t used = 0, max = 1;

    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_INFO_MEMORY;
    ok(resp_is(&c, want, sizeof(want) - 1), "INFO memory: RESP");
    c.keylen = 3;
    memcpy(c.key, "abc", 3);
    ok(resp_rejected(&c), "INFO memory with a key: refused");
    c.keylen = 0;
    c.vallen = 1;
    ok(resp_rejected(&c), "INFO memory with a value: refused");
    ok(info_conv("# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n"
                 "used_memory_rss:9\r\nmaxmemory:16777216\r\n"
                 "maxmemory_human:16.00M\r\n", &used, &max) == 0
       && used == 1048576 && max == 16777216,
       "INFO memory: used_memory and maxmemory, not their _human lines");
    ok(info_conv("maxmemory:0\r\nused_memory:7", &used, &max) == 0
       && used == 7 && max == 0, "any order, no limit, the last line bare");
    ok(info_conv("used_memory:1\r\n", &used, &max) == -1,
       "maxmemory missing: refused");
    ok(info_conv("used_memory:\r\nmaxmemory:1\r\n", &used, &max) == -1,
       "an empty value: refused");
    ok(info_conv("used_memory:12x\r\nmaxmemory:1\r\n", &used, &max) == -1,
       "trailing garbage: refused");
    ok(info_conv("used_memory:12345678901234567890\r\nmaxmemory:1\r\n",
                 &used, &max) == -1, "20 digits: refused");
    ok(info_conv("xused_memory:5\r\nmaxmemory:1\r\n", &used, &max) == -1,
       "a field only at a line's start");
    memset(&res, 0, sizeof(res));
    res.type = JPKI_STORE_R_VALUE;
    memcpy(res.val, "5 -1", 4);
    res.vallen = 4;
    ok(jpki_store_info_memory(&res, &used, &max) == -1,
       "a result not of two numbers: refused");
    res.type = JPKI_STORE_R_ERROR;
    ok(jpki_store_info_memory(&res, &used, &max) == -1,
       "an error result (NOPERM): no numbers");
}

/* WAIT <replicas> <timeout>: no key, 1..8 replicas, a timeout. */
static void test_wait(void)
{
    static const char want[] = "*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$3\r\n250\r\n";
    jpki_store_cmd c;
    jpki_store_result res;
    redisReply r;

    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_WAIT;
    c.val[0] = '2';
    c.vallen = 1;
    c.ttl_ms = 250;
    ok(resp_is(&c, want, sizeof(want) - 1), "WAIT 2 250: RESP");
    c.ttl_ms = 0;
    ok(resp_rejected(&c), "WAIT without a timeout: refused");
    c.ttl_ms = 250;
    c.val[0] = '0';
    ok(resp_rejected(&c), "WAIT 0: refused");
    c.val[0] = '9';
    ok(resp_rejected(&c), "WAIT 9: refused");
    c.val[0] = '2';
    c.keylen = 1;
    c.key[0] = 'k';
    ok(resp_rejected(&c), "WAIT with a key: refused");
    c.keylen = 0;
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_INTEGER;
    r.integer = 1;
    jpki_store_result_from_redis(&c, &r, &res);
    ok(res.type == JPKI_STORE_R_INT && res.n == 1, "WAIT :1 -> INT 1");
    r.integer = -1;
    jpki_store_result_from_redis(&c, &r, &res);
    ok(res.type == JPKI_STORE_R_ERROR, "WAIT :-1 -> ERROR");
    r.type = REDIS_REPLY_STATUS;
    r.str = "OK";
    r.len = 2;
    jpki_store_result_from_redis(&c, &r, &res);
    ok(res.type == JPKI_STORE_R_ERROR, "WAIT +OK -> ERROR");
}

/* ------------------------------------------------------------------ */
/* Reply conversion                                                    */
/* ------------------------------------------------------------------ */

static redisReply reply(int type, const char *str, size_t len, long long n)
{
    redisReply r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.str = (char *)str;
    r.len = len;
    r.integer = n;
    return r;
}

static jpki_store_result conv(jpki_store_op op, const redisReply *r)
{
    jpki_store_cmd c = mks(op, "jpki:v1:x", "1", 0);
    jpki_store_result res;

    memset(&res, 0x5a, sizeof(res));
    jpki_store_result_from_redis(&c, r, &res);
    return res;
}

static int conv_error(jpki_store_op op, const redisReply *r)
{
    jpki_store_result res = conv(op, r);

    return res.type == JPKI_STORE_R_ERROR && res.vallen == 0 && res.n == 0;
}

static int conv_int(jpki_store_op op, const redisReply *r, long long n)
{
    jpki_store_result res = conv(op, r);

    return res.type == JPKI_STORE_R_INT && res.n == n;
}

static void test_conversion(void)
{
    static const jpki_store_op ops[] = {
        JPKI_STORE_GET, JPKI_STORE_SET, JPKI_STORE_SETNX, JPKI_STORE_DEL
    };
    static const char *names[] = { "GET", "SET", "SETNX", "DEL" };
    char big[JPKI_STORE_VAL_MAX + 1];
    redisReply *elems[1];
    redisReply r_ok = reply(REDIS_REPLY_STATUS, "OK", 2, 0);
    redisReply r_nil = reply(REDIS_REPLY_NIL, NULL, 0, 0);
    redisReply r_err = reply(REDIS_REPLY_ERROR, "ERR x", 5, 0);
    redisReply r_str = reply(REDIS_REPLY_STRING, "v\0w", 3, 0);
    redisReply r_one = reply(REDIS_REPLY_INTEGER, NULL, 0, 1);
    redisReply r_zero = reply(REDIS_REPLY_INTEGER, NULL, 0, 0);
    redisReply r_arr = reply(REDIS_REPLY_ARRAY, NULL, 0, 0);
    redisReply r, wrong;
    jpki_store_result res;
    jpki_store_cmd c;
    size_t i;

    elems[0] = &r_one;
    r_arr.elements = 1;
    r_arr.element = elems;

    res = conv(JPKI_STORE_GET, &r_str);
    ok(res.type == JPKI_STORE_R_VALUE && res.vallen == 3
       && memcmp(res.val, "v\0w", 3) == 0, "GET string -> VALUE");
    r = reply(REDIS_REPLY_STRING, "", 0, 0);
    res = conv(JPKI_STORE_GET, &r);
    ok(res.type == JPKI_STORE_R_VALUE && res.vallen == 0,
       "GET empty string -> VALUE of 0 bytes");
    ok(conv(JPKI_STORE_GET, &r_nil).type == JPKI_STORE_R_NIL, "GET nil");
    memset(big, 'b', sizeof(big));
    r = reply(REDIS_REPLY_STRING, big, JPKI_STORE_VAL_MAX, 0);
    res = conv(JPKI_STORE_GET, &r);
    ok(res.type == JPKI_STORE_R_VALUE && res.vallen == JPKI_STORE_VAL_MAX,
       "GET value of JPKI_STORE_VAL_MAX");
    r = reply(REDIS_REPLY_STRING, big, JPKI_STORE_VAL_MAX + 1, 0);
    ok(conv_error(JPKI_STORE_GET, &r), "GET oversized value -> ERROR");
    r = reply(REDIS_REPLY_STRING, NULL, 4, 0);
    ok(conv_error(JPKI_STORE_GET, &r), "GET string without bytes -> ERROR");
    ok(conv_error(JPKI_STORE_GET, &r_ok), "GET status -> ERROR");
    ok(conv_error(JPKI_STORE_GET, &r_one), "GET integer -> ERROR");

    ok(conv_int(JPKI_STORE_SET, &r_ok, 1), "SET +OK -> INT 1");
    ok(conv_error(JPKI_STORE_SET, &r_nil), "SET nil -> ERROR");
    r = reply(REDIS_REPLY_STRING, "OK", 2, 0);
    ok(conv_error(JPKI_STORE_SET, &r), "SET bulk \"OK\" -> ERROR");
    r = reply(REDIS_REPLY_STATUS, "QUEUED", 6, 0);
    ok(conv_error(JPKI_STORE_SET, &r), "SET +QUEUED -> ERROR");
    r = reply(REDIS_REPLY_STATUS, "OKAY", 4, 0);
    ok(conv_error(JPKI_STORE_SET, &r), "SET +OKAY -> ERROR");
    r = reply(REDIS_REPLY_STATUS, "OKAY", 2, 0);
    ok(conv_int(JPKI_STORE_SET, &r, 1), "status compared by length");
    r = reply(REDIS_REPLY_STATUS, "ok", 2, 0);
    ok(conv_error(JPKI_STORE_SET, &r), "SET +ok -> ERROR");
    r = reply(REDIS_REPLY_STATUS, NULL, 2, 0);
    ok(conv_error(JPKI_STORE_SET, &r), "SET status without bytes -> ERROR");
    ok(conv_error(JPKI_STORE_SET, &r_one), "SET integer -> ERROR");

    ok(conv_int(JPKI_STORE_SETNX, &r_ok, 1), "SETNX +OK -> INT 1");
    ok(conv_int(JPKI_STORE_SETNX, &r_nil, 0), "SETNX nil -> INT 0");
    ok(conv_error(JPKI_STORE_SETNX, &r_zero), "SETNX integer -> ERROR");
    ok(conv_error(JPKI_STORE_SETNX, &r_str), "SETNX string -> ERROR");

    ok(conv_int(JPKI_STORE_DEL, &r_one, 1), "DEL :1 -> INT 1");
    ok(conv_int(JPKI_STORE_DEL, &r_zero, 0), "DEL :0 -> INT 0");
    r = reply(REDIS_REPLY_INTEGER, NULL, 0, 2);
    ok(conv_error(JPKI_STORE_DEL, &r), "DEL :2 -> ERROR (one key)");
    r = reply(REDIS_REPLY_INTEGER, NULL, 0, -1);
    ok(conv_error(JPKI_STORE_DEL, &r), "DEL :-1 -> ERROR");
    ok(conv_error(JPKI_STORE_DEL, &r_ok), "DEL status -> ERROR");
    ok(conv_error(JPKI_STORE_DEL, &r_nil), "DEL nil -> ERROR");

    for (i = 0; i < 4; i++) {
        ok(conv_error(ops[i], &r_err), "%s error reply -> ERROR", names[i]);
        ok(conv_error(ops[i], &r_arr), "%s array -> ERROR", names[i]);
        ok(conv_error(ops[i], NULL), "%s NULL reply -> ERROR", names[i]);
        wrong = reply(99, "OK", 2, 1);
        ok(conv_error(ops[i], &wrong), "%s unknown type -> ERROR",
           names[i]);
    }
    r = reply(REDIS_REPLY_ERROR, "OK", 2, 1);
    ok(conv_error(JPKI_STORE_SET, &r), "-OK is an error, not a status");

    memset(&res, 0x5a, sizeof(res));
    jpki_store_result_from_redis(NULL, &r_ok, &res);
    ok(res.type == JPKI_STORE_R_ERROR, "NULL command -> ERROR");
    c = mks(JPKI_STORE_SET, "jpki:v1:x", "1", 0);
    c.op = (jpki_store_op)42;
    memset(&res, 0x5a, sizeof(res));
    jpki_store_result_from_redis(&c, &r_ok, &res);
    ok(res.type == JPKI_STORE_R_ERROR, "unknown op -> ERROR");
    jpki_store_result_from_redis(&c, &r_ok, NULL);
    ok(1, "NULL result pointer ignored");
}

/* ------------------------------------------------------------------ */
/* Incremental reader                                                  */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *bytes;
    size_t len;
    jpki_store_op op;
    jpki_store_rtype type;
    long long n;
    const char *val;
    size_t vallen;
} reader_case;

static const reader_case stream[] = {
    { S("$5\r\nhe\0lo\r\n"), JPKI_STORE_GET, JPKI_STORE_R_VALUE, 0,
      "he\0lo", 5 },
    { S("$-1\r\n"), JPKI_STORE_GET, JPKI_STORE_R_NIL, 0, NULL, 0 },
    { S(":1\r\n"), JPKI_STORE_DEL, JPKI_STORE_R_INT, 1, NULL, 0 },
    { S("+OK\r\n"), JPKI_STORE_SETNX, JPKI_STORE_R_INT, 1, NULL, 0 },
    { S("$-1\r\n"), JPKI_STORE_SETNX, JPKI_STORE_R_INT, 0, NULL, 0 },
    { S("-ERR wrong\r\n"), JPKI_STORE_GET, JPKI_STORE_R_ERROR, 0, NULL, 0 },
    { S(":0\r\n"), JPKI_STORE_DEL, JPKI_STORE_R_INT, 0, NULL, 0 },
    { S("+OK\r\n"), JPKI_STORE_SET, JPKI_STORE_R_INT, 1, NULL, 0 },
    { S("$0\r\n\r\n"), JPKI_STORE_GET, JPKI_STORE_R_VALUE, 0, "", 0 },
    { S(":1\r\n"), JPKI_STORE_GET, JPKI_STORE_R_ERROR, 0, NULL, 0 },
    { S("$3\r\n1\r\n\r\n"), JPKI_STORE_GET, JPKI_STORE_R_VALUE, 0,
      "1\r\n", 3 },
};
#define NSTREAM (sizeof(stream) / sizeof(stream[0]))

static int result_matches(const jpki_store_result *res, const reader_case *rc)
{
    if (res->type != rc->type)
        return 0;
    if (rc->type == JPKI_STORE_R_INT && res->n != rc->n)
        return 0;
    if (rc->type == JPKI_STORE_R_VALUE
        && (res->vallen != rc->vallen
            || memcmp(res->val, rc->val, rc->vallen) != 0))
        return 0;
    return 1;
}

/* Feeds the stream in pieces of chunk bytes; counts replies that come out
 * early, late or wrong. */
static int run_stream(size_t chunk)
{
    jpki_resp_reader *r = jpki_resp_reader_new();
    char all[256];
    size_t total = 0, i, off, end = 0, got = 0;
    int bad = 0, rc;
    jpki_store_cmd c;
    jpki_store_result res;

    for (i = 0; i < NSTREAM; i++) {
        memcpy(all + total, stream[i].bytes, stream[i].len);
        total += stream[i].len;
    }
    for (off = 0; off < total; off += chunk) {
        size_t n = total - off < chunk ? total - off : chunk;
        if (jpki_resp_reader_feed(r, all + off, n) != JPKI_OK)
            bad++;
        for (;;) {
            if (got == NSTREAM)
                break;
            c = mks(stream[got].op, "jpki:v1:x", "1", 0);
            rc = jpki_resp_reader_next(r, &c, &res);
            if (rc == 0)
                break;
            if (rc < 0) {
                bad++;
                break;
            }
            end += stream[got].len;
            /* A reply is out once its last byte is fed: not before, and
             * not later than the feed that completes it. */
            if (end > off + n || end <= off
                || (chunk == 1 && end != off + n))
                bad++;
            if (!result_matches(&res, &stream[got]))
                bad++;
            got++;
        }
    }
    c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    if (got != NSTREAM || jpki_resp_reader_next(r, &c, &res) != 0)
        bad++;
    jpki_resp_reader_free(r);
    return bad;
}

/* Feeds bytes in one go and returns what next() says. */
static int reader_verdict(const char *bytes, size_t len)
{
    jpki_resp_reader *r = jpki_resp_reader_new();
    jpki_store_cmd c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    jpki_store_result res;
    int rc;

    if (jpki_resp_reader_feed(r, bytes, len) != JPKI_OK)
        rc = -2;
    else
        rc = jpki_resp_reader_next(r, &c, &res);
    jpki_resp_reader_free(r);
    return rc;
}

static void test_reader_garbage(void)
{
    static const struct { const char *b; size_t len; const char *what; }
    bad[] = {
        { S("hello\r\n"), "unknown type byte" },
        { S("*1\r\n:1\r\n"), "array" },
        { S("*-1\r\n"), "null array" },
        { S("*0\r\n"), "empty array" },
        { S("$abc\r\n"), "bulk length not a number" },
        { S("$\r\n"), "bulk length empty" },
        { S("$-2\r\n"), "bulk length -2" },
        { S("$-10\r\n"), "bulk length -10" },
        { S("$70000\r\n"), "bulk length over the bound" },
        { S("$123456\r\n"), "bulk length with 6 digits" },
        { S("$5\rX"), "CR without LF after bulk length" },
        { S("$5\n"), "LF without CR" },
        { S(":\r\n"), "integer empty" },
        { S(":-\r\n"), "integer sign only" },
        { S(":12a\r\n"), "integer with a letter" },
        { S(":1234567890123456789\r\n"), "integer of 19 digits" },
        { S(":99999999999999999999999\r\n"), "integer overflow" },
        { S("$3\r\nabcd\r\n"), "bulk longer than its length" },
        { S("\r\n"), "empty line" },
        { S("\0\0\0"), "NUL bytes" },
    };
    static const struct { const char *b; size_t len; const char *what; }
    partial[] = {
        { S("$"), "type byte only" },
        { S("$-"), "minus only" },
        { S("$-1"), "-1 without CRLF" },
        { S("$-1\r"), "-1 without LF" },
        { S("$12"), "bulk length in progress" },
        { S("$3\r\nab"), "bulk body in progress" },
        { S(":-12"), "negative integer in progress" },
        { S("+OK"), "status without CRLF" },
        { S("-ERR"), "error without CRLF" },
    };
    jpki_resp_reader *r;
    jpki_store_cmd c = mks(JPKI_STORE_GET, "jpki:v1:x", NULL, 0);
    jpki_store_result res;
    char *big;
    size_t i;
    int rc;
    jpki_err e = JPKI_OK;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(reader_verdict(bad[i].b, bad[i].len), -1,
               "garbage: %s -> -1", bad[i].what);
    for (i = 0; i < sizeof(partial) / sizeof(partial[0]); i++)
        is_int(reader_verdict(partial[i].b, partial[i].len), 0,
               "incomplete: %s -> 0", partial[i].what);
    is_int(reader_verdict(S(":-42\r\n")), 1, "negative integer parsed");
    is_int(reader_verdict(S(":123456789012345678\r\n")), 1,
           "integer of 18 digits parsed");

    /* After an error the reader stays failed. */
    r = jpki_resp_reader_new();
    jpki_resp_reader_feed(r, S("?\r\n"));
    is_int(jpki_resp_reader_next(r, &c, &res), -1, "error reported");
    is_int(jpki_resp_reader_next(r, &c, &res), -1, "and again");
    ok(jpki_resp_reader_feed(r, S("+OK\r\n")) != JPKI_OK,
       "feed refused after an error");
    is_int(jpki_resp_reader_next(r, &c, &res), -1, "still failed");
    jpki_resp_reader_free(r);

    /* An error in the middle of a pipelined stream: good replies first. */
    r = jpki_resp_reader_new();
    jpki_resp_reader_feed(r, S("$-1\r\n!junk\r\n"));
    is_int(jpki_resp_reader_next(r, &c, &res), 1, "reply before junk");
    ok(res.type == JPKI_STORE_R_NIL, "  is nil");
    is_int(jpki_resp_reader_next(r, &c, &res), -1, "then junk -> -1");
    jpki_resp_reader_free(r);

    /* Argument checks. */
    r = jpki_resp_reader_new();
    ok(jpki_resp_reader_feed(r, NULL, 3) == JPKI_ERR_INVALID,
       "feed NULL with length");
    ok(jpki_resp_reader_feed(r, NULL, 0) == JPKI_OK, "feed nothing");
    ok(jpki_resp_reader_feed(NULL, "x", 1) == JPKI_ERR_INVALID,
       "feed NULL reader");
    is_int(jpki_resp_reader_next(r, &c, NULL), -1, "next NULL result");
    is_int(jpki_resp_reader_next(NULL, &c, &res), -1, "next NULL reader");
    is_int(jpki_resp_reader_next(r, &c, &res), 0, "empty reader -> 0");
    jpki_resp_reader_free(r);
    jpki_resp_reader_free(NULL);
    ok(1, "free(NULL)");

    /* Bounds: a value over JPKI_STORE_VAL_MAX is an R_ERROR reply and the
     * stream goes on; a reply that does not fit 64 KiB is refused. */
    big = malloc(70000);
    r = jpki_resp_reader_new();
    rc = sprintf(big, "$60000\r\n");
    memset(big + rc, 'x', 60000);
    memcpy(big + rc + 60000, "\r\n+OK\r\n", 7);
    for (i = 0; i < (size_t)rc + 60007 && e == JPKI_OK; i += 1000) {
        size_t n = (size_t)rc + 60007 - i;
        e = jpki_resp_reader_feed(r, big + i, n < 1000 ? n : 1000);
    }
    ok(e == JPKI_OK, "60000-byte bulk accepted in pieces");
    is_int(jpki_resp_reader_next(r, &c, &res), 1, "big bulk is a reply");
    ok(res.type == JPKI_STORE_R_ERROR, "  over JPKI_STORE_VAL_MAX: ERROR");
    c.op = JPKI_STORE_SET;
    is_int(jpki_resp_reader_next(r, &c, &res), 1, "next reply still read");
    ok(res.type == JPKI_STORE_R_INT && res.n == 1, "  +OK -> 1");
    jpki_resp_reader_free(r);

    r = jpki_resp_reader_new();
    big[0] = '+';
    memset(big + 1, 's', 69999);
    e = JPKI_OK;
    for (i = 0; i < 70000 && e == JPKI_OK; i += 1000)
        e = jpki_resp_reader_feed(r, big + i, 1000);
    ok(e == JPKI_ERR_TOO_LARGE, "status line without end over 64 KiB");
    is_int(jpki_resp_reader_next(r, &c, &res), -1, "  -> -1");
    jpki_resp_reader_free(r);

    r = jpki_resp_reader_new();
    ok(jpki_resp_reader_feed(r, big, 65537) == JPKI_ERR_TOO_LARGE,
       "single feed over 64 KiB refused");
    jpki_resp_reader_free(r);
    free(big);
}

static void test_reader(void)
{
    is_int(run_stream(1), 0, "reader: byte by byte");
    is_int(run_stream(2), 0, "reader: 2-byte pieces");
    is_int(run_stream(3), 0, "reader: 3-byte pieces");
    is_int(run_stream(7), 0, "reader: 7-byte pieces");
    is_int(run_stream(4096), 0, "reader: whole pipelined stream at once");
    test_reader_garbage();
}

/* ------------------------------------------------------------------ */
/* Embedded store                                                      */
/* ------------------------------------------------------------------ */

static int n_lock, n_unlock, lock_depth, lock_misuse;

static void t_lock(void *ud)
{
    n_lock++;
    if (lock_depth++ != 0 || ud != &n_lock)
        lock_misuse++;
}

static void t_unlock(void *ud)
{
    n_unlock++;
    if (--lock_depth != 0 || ud != &n_lock)
        lock_misuse++;
}

static const jpki_shm_lock test_lock = { t_lock, t_unlock, &n_lock };

typedef struct {
    void *mem;
    size_t size;
    void *hmem;
    jpki_shm *s;
} table;

static int table_new(table *t, size_t size)
{
    t->size = size;
    t->mem = malloc(size);
    t->hmem = malloc(jpki_shm_handle_size());
    if (jpki_shm_init(t->mem, size, 0) != JPKI_OK)
        return 0;
    t->s = jpki_shm_attach(t->hmem, t->mem, size, &test_lock);
    return t->s != NULL;
}

static void table_free(table *t)
{
    free(t->mem);
    free(t->hmem);
}

static jpki_store_result ex(jpki_shm *s, jpki_store_op op, const char *key,
                            const char *val, uint32_t ttl, int64_t now)
{
    jpki_store_cmd c = mks(op, key, val, ttl);
    jpki_store_result res;

    memset(&res, 0x5a, sizeof(res));
    jpki_shm_exec(s, &c, now, &res);
    return res;
}

static int is_val(jpki_store_result r, const char *v)
{
    return r.type == JPKI_STORE_R_VALUE && r.vallen == strlen(v)
           && memcmp(r.val, v, r.vallen) == 0;
}

static int is_n(jpki_store_result r, long long n)
{
    return r.type == JPKI_STORE_R_INT && r.n == n;
}

static void test_shm_setup(void)
{
    size_t min = jpki_shm_min_size();
    char *mem = calloc(1, min * 2 + 16);
    char *copy;
    void *h = malloc(jpki_shm_handle_size());
    jpki_shm *s;

    ok(min > 64 * (JPKI_STORE_KEY_MAX + JPKI_STORE_VAL_MAX),
       "min size holds 64 slots");
    ok(jpki_shm_handle_size() > 0, "handle size");
    ok(jpki_shm_init(NULL, min, 0) == JPKI_ERR_INVALID, "init NULL");
    ok(jpki_shm_init(mem, min - 1, 0) == JPKI_ERR_INVALID,
       "init size too small");
    ok(jpki_shm_init(mem, 0, 0) == JPKI_ERR_INVALID, "init size 0");
    ok(jpki_shm_init(mem + 1, min, 0) == JPKI_ERR_INVALID,
       "init misaligned memory");
    ok(jpki_shm_init(mem, min, 1) == JPKI_ERR_INVALID,
       "attach-init to unformatted memory");
    ok(jpki_shm_attach(h, mem, min, NULL) == NULL,
       "attach to unformatted memory fails");

    ok(jpki_shm_init(mem, min, 0) == JPKI_OK, "format min size");
    ok(jpki_shm_init(mem, min, 1) == JPKI_OK, "attach-init same size");
    ok(jpki_shm_init(mem, min + 4096, 1) == JPKI_ERR_INVALID,
       "attach-init with another size");
    ok(jpki_shm_attach(h, mem, min + 4096, NULL) == NULL,
       "attach with another size fails");
    ok(jpki_shm_attach(h, mem, min - 8, NULL) == NULL,
       "attach with a size too small fails");
    ok(jpki_shm_attach(NULL, mem, min, NULL) == NULL,
       "attach without handle storage fails");
    ok(jpki_shm_attach((char *)h + 1, mem, min, NULL) == NULL,
       "attach to misaligned handle storage fails");
    s = jpki_shm_attach(h, mem, min, NULL);
    ok(s == h, "handle placed in caller storage");
    is_int(jpki_shm_capacity(s), 48, "capacity of min size: 3/4 of 64");
    is_int(jpki_shm_capacity(NULL), 0, "capacity of NULL");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:k", "v", 0, 1), 1),
       "no lock given: works");
    ok(jpki_shm_init(mem, min, 1) == JPKI_OK, "re-attach-init");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:k", NULL, 0, 1), "v"),
       "  keeps the data");

    copy = malloc(min);
    memcpy(copy, mem, min);
    copy[0] ^= 1;
    ok(jpki_shm_attach(h, copy, min, NULL) == NULL, "bad magic refused");
    ok(jpki_shm_init(copy, min, 1) == JPKI_ERR_INVALID,
       "  by attach-init too");
    free(copy);

    ok(jpki_shm_init(mem, min, 0) == JPKI_OK, "re-format");
    s = jpki_shm_attach(h, mem, min, NULL);
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:k", NULL, 0, 1).type
       == JPKI_STORE_R_NIL, "  empties the table");

    ok(jpki_shm_init(mem, min * 2, 0) == JPKI_OK, "format twice min");
    s = jpki_shm_attach(h, mem, min * 2, NULL);
    ok(jpki_shm_capacity(s) >= 96, "  capacity grows with size");
    free(mem);
    free(h);
}

static void test_shm_ops(void)
{
    table t;
    jpki_shm *s;
    jpki_store_cmd c;
    jpki_store_result r;
    uint8_t bin[JPKI_STORE_VAL_MAX];
    int locks;
    size_t i;

    ok(table_new(&t, jpki_shm_min_size() * 4), "table");
    s = t.s;
    n_lock = n_unlock = 0;

    ok(ex(s, JPKI_STORE_GET, "jpki:v1:a", NULL, 0, 1000).type
       == JPKI_STORE_R_NIL, "GET absent -> NIL");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:a", "one", 0, 1000), 1),
       "SET -> 1");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:a", NULL, 0, 1000), "one"),
       "GET -> value");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:a", "two", 0, 1000), 1),
       "SET over existing -> 1");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:a", NULL, 0, 1000), "two"),
       "  value replaced");
    ok(is_n(ex(s, JPKI_STORE_SETNX, "jpki:v1:a", "three", 0, 1000), 0),
       "SETNX existing -> 0");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:a", NULL, 0, 1000), "two"),
       "  value kept");
    ok(is_n(ex(s, JPKI_STORE_SETNX, "jpki:v1:b", "1", 0, 1000), 1),
       "SETNX absent -> 1");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:b", NULL, 0, 1000), "1"),
       "  stored");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:aa", NULL, 0, 1000).type
       == JPKI_STORE_R_NIL, "longer key with same start is another key");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:", NULL, 0, 1000).type
       == JPKI_STORE_R_ERROR, "invalid key -> ERROR");
    ok(is_n(ex(s, JPKI_STORE_DEL, "jpki:v1:a", NULL, 0, 1000), 1),
       "DEL existing -> 1");
    ok(is_n(ex(s, JPKI_STORE_DEL, "jpki:v1:a", NULL, 0, 1000), 0),
       "DEL again -> 0");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:a", NULL, 0, 1000).type
       == JPKI_STORE_R_NIL, "  gone");

    /* TTL: alive while now < set time + ttl. */
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:t", "x", 500, 1000), 1),
       "SET with TTL");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:t", NULL, 0, 1499), "x"),
       "  alive 1 ms before expiry");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:t", NULL, 0, 1500).type
       == JPKI_STORE_R_NIL, "  absent at expiry");
    ok(is_n(ex(s, JPKI_STORE_SETNX, "jpki:v1:u", "x", 500, 1000), 1),
       "SETNX with TTL");
    ok(is_n(ex(s, JPKI_STORE_SETNX, "jpki:v1:u", "y", 500, 1499), 0),
       "  single use while alive");
    ok(is_n(ex(s, JPKI_STORE_SETNX, "jpki:v1:u", "z", 500, 1500), 1),
       "  SETNX succeeds once expired");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:u", NULL, 0, 1999), "z"),
       "  new value with new TTL");
    ok(is_n(ex(s, JPKI_STORE_DEL, "jpki:v1:u", NULL, 0, 2000), 0),
       "DEL of expired -> 0");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:p", "x", 100, 1000), 1)
       && is_n(ex(s, JPKI_STORE_SET, "jpki:v1:p", "y", 0, 1050), 1)
       && is_val(ex(s, JPKI_STORE_GET, "jpki:v1:p", NULL, 0, 999999999),
                 "y"), "SET without TTL clears the TTL");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:q", "x", UINT32_MAX,
               INT64_MAX - 5), 1)
       && is_val(ex(s, JPKI_STORE_GET, "jpki:v1:q", NULL, 0,
                    INT64_MAX - 1), "x"), "expiry saturates");

    memset(bin, 0, sizeof(bin));
    bin[0] = 0xff;
    bin[JPKI_STORE_VAL_MAX - 1] = '\n';
    c = mk(JPKI_STORE_SET, "jpki:v1:bin", bin, sizeof(bin), 0);
    jpki_shm_exec(s, &c, 2000, &r);
    c = mks(JPKI_STORE_GET, "jpki:v1:bin", NULL, 0);
    jpki_shm_exec(s, &c, 2000, &r);
    ok(r.type == JPKI_STORE_R_VALUE && r.vallen == sizeof(bin)
       && memcmp(r.val, bin, sizeof(bin)) == 0,
       "binary value of JPKI_STORE_VAL_MAX bytes");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:empty", "", 0, 2000), 1)
       && is_val(ex(s, JPKI_STORE_GET, "jpki:v1:empty", NULL, 0, 2000), ""),
       "empty value");
    {
        char key[JPKI_STORE_KEY_MAX + 1];
        memcpy(key, JPKI_STORE_PREFIX, 8);
        repeat(key + 8, 'z', JPKI_STORE_KEY_MAX - 8);
        ok(is_n(ex(s, JPKI_STORE_SET, key, "long", 0, 2000), 1)
           && is_val(ex(s, JPKI_STORE_GET, key, NULL, 0, 2000), "long"),
           "key of JPKI_STORE_KEY_MAX bytes");
    }

    /* Rejections. */
    c = mks(JPKI_STORE_SET, "jpki:v1:big", "x", 0);
    c.vallen = JPKI_STORE_VAL_MAX + 1;
    jpki_shm_exec(s, &c, 2000, &r);
    ok(r.type == JPKI_STORE_R_ERROR, "oversized value -> ERROR");
    c = mks(JPKI_STORE_SET, "jpki:v1:a b", "x", 0);
    jpki_shm_exec(s, &c, 2000, &r);
    ok(r.type == JPKI_STORE_R_ERROR, "bad key -> ERROR");
    c.op = (jpki_store_op)7;
    jpki_shm_exec(s, &c, 2000, &r);
    ok(r.type == JPKI_STORE_R_ERROR, "bad op -> ERROR");
    jpki_shm_exec(s, NULL, 2000, &r);
    ok(r.type == JPKI_STORE_R_ERROR, "NULL command -> ERROR");
    c = mks(JPKI_STORE_GET, "jpki:v1:a", NULL, 0);
    jpki_shm_exec(NULL, &c, 2000, &r);
    ok(r.type == JPKI_STORE_R_ERROR, "NULL table -> ERROR");
    jpki_shm_exec(s, &c, 2000, NULL);
    ok(1, "NULL result ignored");

    locks = n_lock;
    ok(locks > 0 && n_lock == n_unlock && lock_misuse == 0,
       "lock taken and released around each operation (%d)", locks);

    /* count and delete_prefix. */
    ok(jpki_shm_init(t.mem, t.size, 0) == JPKI_OK, "reformat");
    for (i = 0; i < 10; i++) {
        char k[40];
        snprintf(k, sizeof(k), "jpki:v1:rev:%02zu", i);
        ex(s, JPKI_STORE_SET, k, "good", 0, 0);
        snprintf(k, sizeof(k), "jpki:v1:ch:%02zu", i);
        ex(s, JPKI_STORE_SET, k, "1", i < 4 ? 100 : 0, 0);
    }
    ex(s, JPKI_STORE_SET, "jpki:v1:rev:old", "good", 10, 0);
    ex(s, JPKI_STORE_SET, "jpki:v2:rev", "x", 0, 0);    /* refused */
    is_int(jpki_shm_count(s, 0), 21, "count of live entries");
    is_int(jpki_shm_count(s, 10), 20, "count skips expired");
    is_int(jpki_shm_count(s, 100), 16, "count after more expire");
    locks = n_lock;
    is_int(jpki_shm_delete_prefix(s, "jpki:v1:rev:", 100), 10,
           "delete_prefix counts live deleted entries");
    ok(n_lock == locks + 1 && n_unlock == n_lock,
       "delete_prefix takes the lock once");
    is_int(jpki_shm_count(s, 100), 6, "  the others stay");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:rev:03", NULL, 0, 100).type
       == JPKI_STORE_R_NIL, "  deleted key absent");
    ok(is_val(ex(s, JPKI_STORE_GET, "jpki:v1:ch:07", NULL, 0, 100), "1"),
       "  other key present");
    is_int(jpki_shm_delete_prefix(s, "jpki:v1:rev:", 100), 0,
           "delete_prefix again -> 0");
    is_int(jpki_shm_delete_prefix(s, "jpki:v1:ch:07", 100), 1,
           "delete_prefix of a whole key");
    is_int(jpki_shm_delete_prefix(s, NULL, 100), 0, "NULL prefix -> 0");
    is_int(jpki_shm_delete_prefix(NULL, "jpki:", 100), 0, "NULL table");
    is_int(jpki_shm_count(NULL, 0), 0, "count of NULL table");
    {
        char longp[JPKI_STORE_KEY_MAX + 2];
        repeat(longp, 'j', JPKI_STORE_KEY_MAX + 1);
        is_int(jpki_shm_delete_prefix(s, longp, 100), 0,
               "prefix longer than any key -> 0");
    }
    is_int(jpki_shm_delete_prefix(s, "", 100), 5, "empty prefix: all");
    is_int(jpki_shm_count(s, 100), 0, "  table empty");
    ok(n_lock == n_unlock && lock_misuse == 0, "locks balanced");
    table_free(&t);
}

static void key_of(char *k, size_t kmax, const char *tag, unsigned i)
{
    snprintf(k, kmax, "jpki:v1:%s:%u", tag, i);
}

static void test_shm_full(void)
{
    table t;
    jpki_shm *s;
    size_t cap, i;
    int bad = 0;
    char k[64];

    ok(table_new(&t, jpki_shm_min_size()), "small table");
    s = t.s;
    cap = jpki_shm_capacity(s);
    for (i = 0; i < cap; i++) {
        key_of(k, sizeof(k), "f", (unsigned)i);
        if (!is_n(ex(s, JPKI_STORE_SET, k, "v", 0, 0), 1))
            bad++;
    }
    is_int(bad, 0, "fill to capacity (%zu)", cap);
    is_int(jpki_shm_count(s, 0), cap, "  count == capacity");
    ok(ex(s, JPKI_STORE_SET, "jpki:v1:new", "v", 0, 0).type
       == JPKI_STORE_R_FULL, "SET of a new key when full -> FULL");
    ok(ex(s, JPKI_STORE_SETNX, "jpki:v1:new", "v", 100, 0).type
       == JPKI_STORE_R_FULL, "SETNX of a new key when full -> FULL");
    ok(ex(s, JPKI_STORE_GET, "jpki:v1:new", NULL, 0, 0).type
       == JPKI_STORE_R_NIL, "  nothing stored");
    key_of(k, sizeof(k), "f", 3);
    ok(is_n(ex(s, JPKI_STORE_SET, k, "w", 0, 0), 1),
       "SET over an existing key when full works");
    ok(is_n(ex(s, JPKI_STORE_SETNX, k, "w", 0, 0), 0),
       "SETNX of an existing key when full -> 0");
    ok(is_n(ex(s, JPKI_STORE_DEL, k, NULL, 0, 0), 1), "DEL one");
    ok(is_n(ex(s, JPKI_STORE_SET, "jpki:v1:new", "v", 0, 0), 1),
       "  then a new key fits");
    ok(ex(s, JPKI_STORE_SET, "jpki:v1:new2", "v", 0, 0).type
       == JPKI_STORE_R_FULL, "  and the table is full again");
    for (i = 0, bad = 0; i < cap; i++) {
        key_of(k, sizeof(k), "f", (unsigned)i);
        if (i != 3 && !is_val(ex(s, JPKI_STORE_GET, k, NULL, 0, 0), "v"))
            bad++;
    }
    is_int(bad, 0, "every entry still readable when full");

    /* Expired entries make room. */
    ok(jpki_shm_init(t.mem, t.size, 0) == JPKI_OK, "reformat");
    for (i = 0, bad = 0; i < cap; i++) {
        key_of(k, sizeof(k), "e", (unsigned)i);
        if (!is_n(ex(s, JPKI_STORE_SET, k, "v", i % 2 ? 0 : 1000, 0), 1))
            bad++;
    }
    is_int(bad, 0, "fill: half with TTL 1000, half without");
    ok(ex(s, JPKI_STORE_SET, "jpki:v1:n0", "v", 0, 999).type
       == JPKI_STORE_R_FULL, "full before expiry");
    for (i = 0, bad = 0; i < cap / 2; i++) {
        key_of(k, sizeof(k), "n", (unsigned)i);
        if (!is_n(ex(s, JPKI_STORE_SETNX, k, "v", 0, 1000), 1))
            bad++;
    }
    is_int(bad, 0, "expired slots reused: %zu new keys fit", cap / 2);
    ok(ex(s, JPKI_STORE_SET, "jpki:v1:more", "v", 0, 1000).type
       == JPKI_STORE_R_FULL, "  then full again");
    is_int(jpki_shm_count(s, 1000), cap, "  count == capacity");
    for (i = 0, bad = 0; i < cap; i++) {
        key_of(k, sizeof(k), "e", (unsigned)i);
        if (i % 2 && !is_val(ex(s, JPKI_STORE_GET, k, NULL, 0, 1000), "v"))
            bad++;
        if (!(i % 2) && ex(s, JPKI_STORE_GET, k, NULL, 0, 1000).type
            != JPKI_STORE_R_NIL)
            bad++;
    }
    is_int(bad, 0, "  entries without TTL kept, expired ones gone");
    table_free(&t);
}

static void test_shm_copy(void)
{
    table t;
    void *copy, *h2;
    jpki_shm *s2;
    char k[64];
    unsigned i;
    int bad = 0;

    ok(table_new(&t, jpki_shm_min_size() * 3), "table for copy");
    for (i = 0; i < 100; i++) {
        key_of(k, sizeof(k), "c", i);
        ex(t.s, JPKI_STORE_SET, k, k + 8, i % 3 ? 0 : 5000, 0);
    }
    copy = malloc(t.size);
    memcpy(copy, t.mem, t.size);
    h2 = malloc(jpki_shm_handle_size());
    ok(jpki_shm_init(copy, t.size, 1) == JPKI_OK,
       "attach-init at another address");
    s2 = jpki_shm_attach(h2, copy, t.size, &test_lock);
    ok(s2 != NULL && copy != t.mem, "attach at another address");
    for (i = 0; i < 100; i++) {
        key_of(k, sizeof(k), "c", i);
        if (!is_val(ex(s2, JPKI_STORE_GET, k, NULL, 0, 10), k + 8))
            bad++;
    }
    is_int(bad, 0, "every entry visible in the copy");
    is_int(jpki_shm_count(s2, 4999), 100, "count in the copy");
    is_int(jpki_shm_count(s2, 5000), 66, "TTLs kept in the copy");
    ok(is_n(ex(s2, JPKI_STORE_DEL, "jpki:v1:c:1", NULL, 0, 5000), 1)
       && is_val(ex(t.s, JPKI_STORE_GET, "jpki:v1:c:1", NULL, 0, 5000),
                 "c:1"), "the copy is independent");
    free(copy);
    free(h2);
    table_free(&t);
}

/* ------------------------------------------------------------------ */
/* Random operations against a reference model                        */
/* ------------------------------------------------------------------ */

typedef struct {
    int present;
    int64_t expires;                /* INT64_MAX: none */
    char val[16];
} model_ent;

static uint64_t rng_state;
static unsigned model_refused;      /* SET/SETNX refused: table full */

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int model_live(const model_ent *m, int64_t now)
{
    return m->present && now < m->expires;
}

static size_t model_count(const model_ent *m, size_t n, int64_t now)
{
    size_t i, c = 0;

    for (i = 0; i < n; i++)
        c += model_live(&m[i], now);
    return c;
}

/* One random operation; returns 1 when shm and model agree. */
static int model_step(jpki_shm *s, model_ent *m, size_t nkeys, size_t cap,
                      int64_t now)
{
    unsigned ki = (unsigned)(rnd() % nkeys), op = (unsigned)(rnd() % 10);
    unsigned kind = (unsigned)(rnd() % 3);   /* none, short, long TTL */
    uint32_t ttl = kind == 0 ? 0
                   : (uint32_t)(1 + rnd() % (kind == 1 ? 500 : 30000));
    model_ent *e = &m[ki];
    char k[64], v[16];
    jpki_store_result r;
    int live = model_live(e, now), room;

    key_of(k, sizeof(k), ki % 2 ? "odd" : "even", ki);
    snprintf(v, sizeof(v), "%08x", (unsigned)rnd());
    room = live || model_count(m, nkeys, now) < cap;
    if (op < 3) {                                   /* GET */
        r = ex(s, JPKI_STORE_GET, k, NULL, 0, now);
        return live ? is_val(r, e->val) : r.type == JPKI_STORE_R_NIL;
    }
    if (op < 8) {                                   /* SET, SETNX */
        int nx = op >= 6;
        r = ex(s, nx ? JPKI_STORE_SETNX : JPKI_STORE_SET, k, v, ttl, now);
        if (nx && live)
            return is_n(r, 0);
        if (!room) {
            model_refused++;
            return r.type == JPKI_STORE_R_FULL;
        }
        e->present = 1;
        e->expires = ttl ? now + ttl : INT64_MAX;
        memcpy(e->val, v, sizeof(v));
        return is_n(r, 1);
    }
    r = ex(s, JPKI_STORE_DEL, k, NULL, 0, now);     /* DEL */
    e->present = 0;
    return is_n(r, live);
}

static void model_prefix(jpki_shm *s, model_ent *m, size_t nkeys,
                         int64_t now, size_t *bad)
{
    size_t i, want = 0;
    int odd = (int)(rnd() % 2);

    for (i = 0; i < nkeys; i++) {
        if ((int)(i % 2) != odd)
            continue;
        want += model_live(&m[i], now);
        m[i].present = 0;
    }
    if (jpki_shm_delete_prefix(s, odd ? "jpki:v1:odd:" : "jpki:v1:even:",
                               now) != want)
        (*bad)++;
}

static void run_model(size_t size, size_t nkeys, unsigned ops,
                      uint64_t seed, int expect_full)
{
    table t;
    model_ent *m = calloc(nkeys, sizeof(*m));
    size_t cap, bad = 0, badcount = 0, i;
    int64_t now = 1700000000000LL;
    unsigned n;

    rng_state = seed;
    model_refused = 0;
    ok(table_new(&t, size), "model table of %zu bytes", size);
    cap = jpki_shm_capacity(t.s);
    n_lock = n_unlock = 0;
    for (n = 0; n < ops; n++) {
        now += (int64_t)(rnd() % 20);
        if (!model_step(t.s, m, nkeys, cap, now))
            bad++;
        if (n % 97 == 0
            && jpki_shm_count(t.s, now) != model_count(m, nkeys, now))
            badcount++;
        if (n % 2503 == 2502)
            model_prefix(t.s, m, nkeys, now, &bad);
    }
    is_int(bad, 0, "%u random ops over %zu keys, capacity %zu: "
           "same answers as the model", ops, nkeys, cap);
    is_int(badcount, 0, "  counts agree");
    ok(expect_full ? model_refused > 0 : model_refused == 0,
       "  inserts refused when full: %u", model_refused);
    for (i = 0, bad = 0; i < nkeys; i++) {
        char k[64];
        jpki_store_result r;
        key_of(k, sizeof(k), i % 2 ? "odd" : "even", (unsigned)i);
        r = ex(t.s, JPKI_STORE_GET, k, NULL, 0, now);
        if (model_live(&m[i], now) ? !is_val(r, m[i].val)
                                   : r.type != JPKI_STORE_R_NIL)
            bad++;
    }
    is_int(bad, 0, "  final contents agree");
    ok(n_lock == n_unlock && n_lock >= (int)ops && lock_misuse == 0,
       "  lock calls counted: %d lock, %d unlock", n_lock, n_unlock);
    free(m);
    table_free(&t);
}

/* jpki_shm_read_batch: GETs without the lock, right while another thread
 * writes, moves and deletes entries (a seqlock); what it returns is
 * always a value some writer stored for that key, or nil. */
static pthread_mutex_t rmu = PTHREAD_MUTEX_INITIALIZER;
static void r_lock(void *ud) { (void)ud; pthread_mutex_lock(&rmu); }
static void r_unlock(void *ud) { (void)ud; pthread_mutex_unlock(&rmu); }
static const jpki_shm_lock real_lock = { r_lock, r_unlock, NULL };
static volatile int r_stop;

static void *r_writer(void *arg)
{
    jpki_shm *s = arg;
    jpki_store_cmd c;
    jpki_store_result r;
    char k[32], v[64];
    unsigned i = 0;

    while (!r_stop) {
        i++;
        snprintf(k, sizeof(k), "jpki:v1:r:%u", i % 97);
        snprintf(v, sizeof(v), "value-of-%u-%u", i % 97, i);
        c = mks(i % 5 == 0 ? JPKI_STORE_DEL : JPKI_STORE_SET, k, v,
                i % 3 ? 0 : 1);
        jpki_shm_exec(s, &c, (int64_t)i, &r);
    }
    return NULL;
}

static void test_shm_read_unlocked(void)
{
    void *mem = malloc(jpki_shm_min_size() * 4);
    void *hm = malloc(jpki_shm_handle_size());
    jpki_shm *s;
    jpki_store_cmd c[2];
    jpki_store_result r[2];
    pthread_t th;
    char want[32];
    unsigned i, bad = 0, vals = 0, n;
    int j;

    jpki_shm_init(mem, jpki_shm_min_size() * 4, 0);
    s = jpki_shm_attach(hm, mem, jpki_shm_min_size() * 4, &real_lock);
    c[0] = mks(JPKI_STORE_SET, "jpki:v1:a", "1", 0);
    jpki_shm_exec(s, &c[0], 0, &r[0]);
    c[0] = mks(JPKI_STORE_GET, "jpki:v1:a", NULL, 0);
    c[1] = mks(JPKI_STORE_GET, "jpki:v1:b", NULL, 0);
    jpki_shm_read_batch(s, c, 2, 0, r);
    ok(is_val(r[0], "1") && r[1].type == JPKI_STORE_R_NIL,
       "read without the lock: a value and a nil");
    c[1] = mks(JPKI_STORE_SET, "jpki:v1:b", "2", 0);
    jpki_shm_read_batch(s, c, 2, 0, r);
    ok(is_val(r[0], "1") && is_n(r[1], 1),
       "a batch with a write: run under the lock");
    c[0] = mks(JPKI_STORE_SET, "jpki:v1:e", "x", 5);
    jpki_shm_exec(s, &c[0], 0, &r[0]);
    c[0] = mks(JPKI_STORE_GET, "jpki:v1:e", NULL, 0);
    jpki_shm_read_batch(s, c, 1, 10, r);
    ok(r[0].type == JPKI_STORE_R_NIL, "an expired entry reads as nil");

    r_stop = 0;
    pthread_create(&th, NULL, r_writer, s);
    for (i = 0; i < 200000; i++) {
        n = i % 97;
        snprintf(want, sizeof(want), "jpki:v1:r:%u", n);
        c[0] = mks(JPKI_STORE_GET, want, NULL, 0);
        jpki_shm_read_batch(s, c, 1, 0, r);
        if (r[0].type == JPKI_STORE_R_VALUE) {
            char buf[JPKI_STORE_VAL_MAX + 1], pre[32];
            vals++;
            memcpy(buf, r[0].val, r[0].vallen);
            buf[r[0].vallen] = '\0';
            j = snprintf(pre, sizeof(pre), "value-of-%u-", n);
            if (strncmp(buf, pre, (size_t)j) != 0)
                bad++;
        } else if (r[0].type != JPKI_STORE_R_NIL) {
            bad++;
        }
    }
    r_stop = 1;
    pthread_join(th, NULL);
    is_int(bad, 0, "200000 reads without the lock while a thread writes: "
           "every answer one a writer stored for the key (%u values)", vals);
    free(mem);
    free(hm);
}

/* DECR: the counter less one, also below zero; an absent key starts at 0;
 * in RESP "DECR key". */
static void test_shm_decr(void)
{
    table t;
    jpki_store_cmd c = mks(JPKI_STORE_DECR, "jpki:v1:d", NULL, 0);
    char *resp = NULL;
    size_t len = 0;

    ok(table_new(&t, jpki_shm_min_size()), "table for DECR");
    ok(is_n(ex(t.s, JPKI_STORE_DECR, "jpki:v1:d", NULL, 0, 0), -1),
       "DECR of an absent key: -1");
    ok(is_n(ex(t.s, JPKI_STORE_INCR, "jpki:v1:d", NULL, 0, 0), 0),
       "INCR of -1: 0");
    ok(is_n(ex(t.s, JPKI_STORE_INCR, "jpki:v1:d", NULL, 0, 0), 1)
       && is_n(ex(t.s, JPKI_STORE_INCR, "jpki:v1:d", NULL, 0, 0), 2)
       && is_n(ex(t.s, JPKI_STORE_DECR, "jpki:v1:d", NULL, 0, 0), 1),
       "INCR, INCR, DECR: 1");
    ok(is_val(ex(t.s, JPKI_STORE_GET, "jpki:v1:d", NULL, 0, 0), "1"),
       "kept in decimal");
    ok(is_n(ex(t.s, JPKI_STORE_SET, "jpki:v1:s", "x", 0, 0), 1)
       && ex(t.s, JPKI_STORE_DECR, "jpki:v1:s", NULL, 0, 0).type
          == JPKI_STORE_R_ERROR, "DECR of a string: ERROR");
    ok(jpki_store_cmd_to_resp(&c, &resp, &len) == JPKI_OK && resp != NULL
       && len == strlen("*2\r\n$4\r\nDECR\r\n$9\r\njpki:v1:d\r\n")
       && memcmp(resp, "*2\r\n$4\r\nDECR\r\n$9\r\njpki:v1:d\r\n", len) == 0,
       "RESP: DECR key");
    free(resp);
    table_free(&t);
}

int main(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    const char *env = getenv("JPKI_TEST_SEED");

    char msg[64];

    (void)tap_path;                 /* no test PKI needed here */
    if (env != NULL && *env)
        seed = strtoull(env, NULL, 0);
    if (seed == 0)
        seed = 1;
    snprintf(msg, sizeof(msg), "seed %llu (JPKI_TEST_SEED)",
             (unsigned long long)seed);
    diag(msg);

    test_resp_encoding();
    test_resp_rejections();
    test_conversion();
    test_info_memory();
    test_wait();
    test_reader();
    test_shm_setup();
    test_shm_ops();
    test_shm_full();
    test_shm_copy();
    test_shm_read_unlocked();
    test_shm_decr();
    /* Small table, more keys than room: full and expiry paths. */
    run_model(jpki_shm_min_size(), 80, 6000, seed, 1);
    /* Larger table, long clusters at high load. */
    run_model(jpki_shm_min_size() * 8, 1500, 30000, seed + 2, 1);
    /* Few keys, little pressure. */
    run_model(jpki_shm_min_size() * 2, 20, 3000, seed + 4, 0);
    return done_testing();
}
