/* test_sentinel.c - Redis Sentinel in the core (common/sentinel.c, the
 * ROLE check and the rediscovery rules of common/redis.c and conn.c): the
 * sentinel's answer and ROLE's read (bounded, in pieces), the record of
 * the primary (the order the sentinels are asked in, generations,
 * forgetting), and over a socketpair: a sentinel's query, a primary's
 * prelude (the commands held until ROLE says master), a replica found by
 * ROLE or -READONLY, and when a round goes to the primary named next;
 * a discovery driven step by step (common/discovery.c): which sentinel
 * is asked, what its answer does, when it gives up, its sentences. */
#include "conn.h"
#include "discovery.h"
#include "sentinel.h"
#include "tap.h"
#include "peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ANSWER(s) "*2\r\n$" #s

static int answer(const char *s, jpki_sentinel_addr *a, char *why)
{
    return jpki_sentinel_answer(s, strlen(s), a, why, 128);
}

static void test_query(void)
{
    char out[128];
    size_t n = jpki_sentinel_query("gate", out, sizeof(out));
    const char want[] = "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-"
                        "name\r\n$4\r\ngate\r\n";

    is_int((long long)n, (long long)strlen(want), "the query's length");
    ok(n == strlen(want) && memcmp(out, want, n) == 0, "the query in RESP");
    is_int((long long)jpki_sentinel_query("", out, sizeof(out)), 0,
           "no master: no query");
    is_int((long long)jpki_sentinel_query("gate", out, 20), 0,
           "no room: no query");
}

static void test_answer(void)
{
    const char *good = "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n";
    jpki_sentinel_addr a;
    char why[128];
    size_t i;
    int r;

    is_int(answer(good, &a, why), 1, "an answer");
    is_str(a.host, "127.0.0.1", "... its address");
    is_int(a.port, 6380, "... its port");
    for (i = 0, r = 0; i < strlen(good); i++) {
        r = jpki_sentinel_answer(good, i, &a, why, sizeof(why));
        if (r != 0)
            break;
    }
    is_int((long long)i, (long long)strlen(good),
           "every prefix of it: more bytes needed");
    is_int(answer("*2\r\n$3\r\n::1\r\n$5\r\n26379\r\n", &a, why), 1, "IPv6");
    is_str(a.host, "::1", "... its address");
    is_int(answer("*-1\r\n", &a, why), -1, "a nil array: refused");
    is_str(why, "knows no primary named that (master=)", "... says why");
    is_int(answer("$-1\r\n", &a, why), -1, "a nil string: refused");
    is_int(answer("-IDONTKNOW I have not enough information\r\n", &a, why),
           -1, "an error: refused");
    is_str(why, "refused the query: IDONTKNOW I have not enough information",
           "... with its text");
    is_int(answer("-ERR \x01\x7f\r\n", &a, why), -1, "an error with controls");
    is_str(why, "refused the query: ERR ??", "... sanitized");
    is_int(answer("*2\r\n$11\r\nredis.local\r\n$4\r\n6379\r\n", &a, why), -1,
           "a host name: refused");
    ok(strstr(why, "not an IP address") != NULL, "... says why");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", &a, why), -1,
           "port 0: refused");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n", &a, why), -1,
           "port 65536: refused");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n63x9\r\n", &a, why), -1,
           "a port that is not digits: refused");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n", &a, why), -1,
           "a port as an integer: refused");
    is_int(answer("*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n", &a,
                  why), -1, "three elements: refused");
    is_int(answer("+OK\r\n", &a, why), -1, "a status: refused");
    is_str(why, "sent a malformed answer", "... malformed");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n+OK\r\n", &a, why),
           -1, "bytes after the answer: refused");
    is_str(why, "sent more than its answer", "... out of step");
    is_int(answer("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\n\n", &a, why), -1,
           "no CRLF: refused");
    is_int(answer("*2\r\n$99999999999\r\n", &a, why), -1,
           "a huge length: refused at once");
    {
        char big[400];

        memset(big, 'x', sizeof(big));
        memcpy(big, "+", 1);
        is_int(jpki_sentinel_answer(big, sizeof(big), &a, why, sizeof(why)),
               -1, "a line longer than an answer may be: refused");
        memcpy(big, "*2\r\n$200\r\n", 10);
        is_int(jpki_sentinel_answer(big, JPKI_SENTINEL_ANSWER_MAX, &a, why,
                                    sizeof(why)), -1,
               "an answer longer than JPKI_SENTINEL_ANSWER_MAX: refused");
    }
    is_int(answer("*2\r\n$48\r\n111111111111111111111111111111111111111111111"
                  "111\r\n$4\r\n6379\r\n", &a, why), -1,
           "a host longer than an address: refused");
}

static int role(const char *s, char *out, size_t *used)
{
    return jpki_role_answer(s, strlen(s), used, out, 64);
}

static void test_role(void)
{
    const char *master = "*3\r\n$6\r\nmaster\r\n:3129659\r\n*2\r\n*3\r\n"
                         "$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n"
                         "*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9002\r\n$7\r\n"
                         "3129543\r\n";
    char r[64];
    size_t used = 0, i;
    int rc = 0;

    is_int(role(master, r, &used), 1, "ROLE of a primary with replicas");
    is_str(r, "master", "... master");
    is_int((long long)used, (long long)strlen(master), "... all of it");
    for (i = 0; i < strlen(master); i++) {
        rc = jpki_role_answer(master, i, &used, r, sizeof(r));
        if (rc != 0)
            break;
    }
    is_int((long long)i, (long long)strlen(master),
           "every prefix of it: more bytes needed");
    is_int(role("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\n"
                "connected\r\n:3167038\r\n", r, &used), 1, "ROLE of a replica");
    is_str(r, "slave", "... slave");
    is_int(role("*2\r\n$8\r\nsentinel\r\n*1\r\n$4\r\ngate\r\n", r, &used), 1,
           "ROLE of a sentinel");
    is_str(r, "sentinel", "... sentinel");
    is_int(role("-NOPERM this user has no permissions to run the 'role' "
                "command\r\n", r, &used), 1, "ROLE refused");
    ok(strncmp(r, "-NOPERM", 7) == 0, "... the error, marked");
    is_int(role(":1\r\n", r, &used), 1, "an integer");
    is_str(r, "", "... no role");
    is_int(role("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", r, &used), -1,
           "arrays four deep: refused");
    is_int(role("*1025\r\n", r, &used), -1, "1025 elements: refused");
    is_int(role("*1\r\n$513\r\n", r, &used), -1, "a 513-byte string: refused");
    is_int(role("?\r\n", r, &used), -1, "an unknown type: refused");
}

static void test_record(void)
{
    jpki_sentinel *s = jpki_sentinel_new(3);
    jpki_sentinel_addr a = { "10.0.0.5", 6379 }, b = { "::1", 6380 };
    jpki_sentinel_addr bad = { "redis.local", 6379 };
    const struct sockaddr *sa;
    const struct sockaddr_in *v4;
    const char *where = NULL;
    socklen_t len = 0;
    unsigned gen, g1;

    ok(jpki_sentinel_new(0) == NULL && jpki_sentinel_new(9) == NULL,
       "1..8 sentinels");
    ok(s != NULL, "a record of 3 sentinels");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) == NULL,
       "no primary at first: ask");
    is_int(jpki_sentinel_start(s), 0, "a discovery starts with the first");
    is_int(jpki_sentinel_pick(s, 0, 0), 0, "the first asked first");
    is_int(jpki_sentinel_pick(s, 0, 2), 2, "then the others in order");
    is_int(jpki_sentinel_pick(s, 0, 3), -1, "each asked once");
    jpki_sentinel_skip(s, 0);
    is_int(jpki_sentinel_pick(s, 0, 1), 1, "the first did not answer: a "
           "discovery under way goes on with the second");
    is_int(jpki_sentinel_pick(s, 0, 2), 2, "... then the third");
    jpki_sentinel_skip(s, 1);
    is_int(jpki_sentinel_start(s), 2, "the next discovery starts after the "
           "ones that did not answer");
    is_int(jpki_sentinel_pick(s, 2, 1), 0, "... the first after it");
    jpki_sentinel_skip(s, 0);
    is_int(jpki_sentinel_start(s), 2, "skipping another than the start: "
           "the start stays");
    is_int(jpki_sentinel_learn(s, 2, &bad), -1, "a host name: not learnt");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) == NULL, "... none known");
    g1 = jpki_sentinel_gen(s);
    is_int(jpki_sentinel_learn(s, 2, &a), 1, "a primary learnt");
    sa = jpki_sentinel_primary(s, &len, &where, &gen);
    v4 = (const struct sockaddr_in *)(const void *)sa;
    ok(sa != NULL && sa->sa_family == AF_INET && len == sizeof(*v4)
       && ntohs(v4->sin_port) == 6379
       && v4->sin_addr.s_addr == inet_addr("10.0.0.5"), "... its address");
    is_str(where, "10.0.0.5:6379", "... for messages");
    is_str(jpki_sentinel_host(s), "10.0.0.5", "... its host");
    is_int(gen, g1, "the first primary: the same generation");
    is_int(jpki_sentinel_start(s), 2, "the one that answered asked first");
    is_int(jpki_sentinel_learn(s, 0, &a), 0, "the same again: nothing new");
    is_int(jpki_sentinel_gen(s), g1, "... same generation");
    is_int(jpki_sentinel_forget(s, g1 + 7), 0, "another generation's news: "
           "ignored");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) != NULL, "... still known");
    is_int(jpki_sentinel_forget(s, g1), 1, "the primary lost: forgotten");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) == NULL, "... ask again");
    ok(gen != g1, "... a new generation: its pooled connections go");
    is_int(jpki_sentinel_forget(s, g1), 0, "forgotten once");
    is_str(jpki_sentinel_host(s), "", "no host known");
    is_int(jpki_sentinel_learn(s, 1, &b), 1, "another primary (IPv6)");
    sa = jpki_sentinel_primary(s, &len, &where, &gen);
    ok(sa != NULL && sa->sa_family == AF_INET6, "... IPv6");
    is_str(where, "[::1]:6380", "... bracketed for messages");
    g1 = gen;
    is_int(jpki_sentinel_learn(s, 0, &a), 1, "a sentinel names another one");
    is_int(jpki_sentinel_gen(s), g1 + 1, "... a new generation");
    jpki_sentinel_free(s);
}

/* ---- over a socketpair ------------------------------------------- */

static jpki_store_cmd set_cmd(void)
{
    jpki_store_cmd c;

    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_SET;
    c.keylen = (size_t)snprintf(c.key, sizeof(c.key), "%sch:x",
                                JPKI_STORE_PREFIX);
    c.vallen = 1;
    c.val[0] = '1';
    c.ttl_ms = 1000;
    return c;
}

static void test_sentinel_conn(void)
{
    jpki_conn *c;
    char buf[512];

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "10.0.0.1:26379");
    is_int(jpki_conn_sentinel(c, "gate", NULL), JPKI_OK, "a sentinel's query");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "sent: waits");
    peer_read(pair[1], buf, sizeof(buf));
    ok(strstr(buf, "get-master-addr-by-name") && strstr(buf, "gate"),
       "the query");
    PEER_SAYS("*2\r\n$8\r\n10.0.0.");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "a part: waits");
    ok(jpki_conn_primary(c) == NULL, "... nothing named yet");
    PEER_SAYS("9\r\n$4\r\n6390\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "the answer: done");
    ok(jpki_conn_primary(c) != NULL
       && strcmp(jpki_conn_primary(c)->host, "10.0.0.9") == 0
       && jpki_conn_primary(c)->port == 6390, "... the primary named");
    ok(!jpki_conn_keep(c, 0, 4), "a sentinel's connection is not pooled");
    ok(!jpki_conn_rediscover(c), "... nor a primary's");
    jpki_conn_free(c);
    close_pair();

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "10.0.0.1:26379");
    jpki_conn_sentinel(c, "nope", NULL);
    jpki_conn_step(c);
    peer_read(pair[1], buf, sizeof(buf));
    PEER_SAYS("*-1\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "an unknown master: failed");
    is_str(jpki_conn_reason(c), "redis sentinel 10.0.0.1:26379 knows no "
           "primary named that (master=)", "... says why");
    jpki_conn_free(c);
    close_pair();

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "s:1");
    jpki_conn_sentinel(c, "gate", NULL);
    jpki_conn_step(c);
    peer_read(pair[1], buf, sizeof(buf));
    close(pair[1]);
    pair[1] = -1;
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "closed before answering");
    ok(strstr(jpki_conn_reason(c), "closed the connection") != NULL,
       "... says so");
    jpki_conn_free(c);
    close_pair();

    /* sentinel_password_file=: AUTH first, its +OK, then the answer */
    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "s:1");
    is_int(jpki_conn_sentinel(c, "gate", "spw"), JPKI_OK, "with a password");
    jpki_conn_step(c);
    peer_read(pair[1], buf, sizeof(buf));
    ok(strncmp(buf, "*2\r\n$4\r\nAUTH\r\n$3\r\nspw\r\n*3\r\n", 27) == 0
       && strstr(buf, "get-master-addr-by-name") != NULL,
       "AUTH, then the query, in one write");
    PEER_SAYS("+O");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "a part of +OK: waits");
    PEER_SAYS("K\r\n*2\r\n$8\r\n10.0.0.9\r\n$4\r\n6390\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "+OK and the answer: done");
    ok(jpki_conn_primary(c) != NULL && jpki_conn_primary(c)->port == 6390,
       "... the primary named");
    jpki_conn_free(c);
    close_pair();

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "s:1");
    jpki_conn_sentinel(c, "gate", "bad");
    jpki_conn_step(c);
    peer_read(pair[1], buf, sizeof(buf));
    PEER_SAYS("-WRONGPASS invalid username-password pair\r\n"
              "-NOAUTH Authentication required.\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "a wrong password: failed");
    is_str(jpki_conn_reason(c), "redis sentinel s:1 refused the password: "
           "WRONGPASS invalid username-password pair "
           "(sentinel_password_file=)", "... says why, not the password");
    jpki_conn_free(c);
    close_pair();
}

/* AUTH's command and the sentinel's first reply. */
static void test_auth(void)
{
    char out[64], why[128];
    size_t used = 0;

    is_int((long long)jpki_sentinel_auth("pw", out, sizeof(out)), 22,
           "AUTH pw: 22 bytes");
    ok(memcmp(out, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", 22) == 0,
       "... in RESP");
    is_int((long long)jpki_sentinel_auth("", out, sizeof(out)), 0,
           "an empty password: none");
    is_int((long long)jpki_sentinel_auth("pw", out, 10), 0, "no room: none");
    is_int(jpki_sentinel_auth_answer("+OK\r\n*2", 8, &used, why, 128), 1,
           "+OK");
    is_int((long long)used, 5, "... its bytes");
    is_int(jpki_sentinel_auth_answer("+O", 2, &used, why, 128), 0,
           "a part: more");
    is_int(jpki_sentinel_auth_answer("+OKAY\r\n", 7, &used, why, 128), -1,
           "+OKAY: malformed");
    is_int(jpki_sentinel_auth_answer("-ERR x\x01y\r\n", 10, &used, why, 128),
           -1, "an error");
    is_str(why, "refused the password: ERR x?y", "... sanitized");
    is_int(jpki_sentinel_auth_answer("+OK\n", 4, &used, why, 128), -1,
           "LF alone: malformed");
}

/* A new connection to a "primary" with ROLE in its prelude, its round
 * sent as far as the prelude. */
static jpki_conn *primary_round(jpki_store_cmd *cmd, jpki_store_result *res,
                                char *buf, size_t max)
{
    jpki_redis_auth auth = { NULL, "pw", 0, 1 };
    jpki_conn *c;

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis", "10.0.0.9:6390");
    jpki_conn_redis(c, &auth, cmd, 1, res);
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "the prelude sent");
    peer_read(pair[1], buf, max);
    return c;
}

static void test_role_prelude(void)
{
    jpki_store_cmd cmd = set_cmd();
    jpki_store_result res;
    char buf[1024];
    jpki_conn *c;

    c = primary_round(&cmd, &res, buf, sizeof(buf));
    ok(strstr(buf, "AUTH") && strstr(buf, "ROLE"), "AUTH, then ROLE");
    ok(strstr(buf, "ch:x") == NULL, "the command held until ROLE answers");
    PEER_SAYS("+OK\r\n*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "master: the command "
           "sent, its reply awaited");
    peer_read(pair[1], buf, sizeof(buf));
    ok(strstr(buf, "ch:x") != NULL && strstr(buf, "ROLE") == NULL,
       "... the command alone");
    PEER_SAYS("+OK\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "done");
    is_int(res.type, JPKI_STORE_R_INT, "the SET's reply");
    ok(jpki_conn_keep(c, 0, 4) && !jpki_conn_rediscover(c),
       "kept; the primary stands");
    /* a later round on it (pooled): the primary was demoted meanwhile */
    is_int(jpki_conn_redis(c, NULL, &cmd, 1, &res), JPKI_OK, "round 2");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "sent at once (pooled)");
    peer_read(pair[1], buf, sizeof(buf));
    ok(strstr(buf, "ROLE") == NULL, "no prelude on a pooled connection");
    PEER_SAYS("-READONLY You can't write against a read only replica.\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "-READONLY: the round ends");
    is_int(res.type, JPKI_STORE_R_ERROR, "... its result an error");
    ok(strstr(jpki_conn_reason(c), "is not the primary (-READONLY)") != NULL,
       "... says so");
    ok(!jpki_conn_keep(c, 0, 4), "... not kept");
    ok(jpki_conn_rediscover(c), "... ask the sentinels again");
    ok(jpki_conn_retry_primary(c, 0), "... the round to the new primary "
       "(the replica wrote nothing)");
    ok(!jpki_conn_retry_primary(c, 1), "... once");
    is_int(jpki_conn_after(c, 1, 0), JPKI_CONN_AGAIN_PRIMARY, "... what "
           "follows: once more on the primary named next");
    is_int(jpki_conn_after(c, 1, 1), JPKI_CONN_OVER, "... then over");
    is_int(jpki_conn_after(c, 0, 0), JPKI_CONN_OVER, "... without "
           "sentinels: over");
    jpki_conn_free(c);
    close_pair();

    /* a replica named (a stale answer): nothing but ROLE reaches it */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    PEER_SAYS("+OK\r\n*5\r\n$5\r\nslave\r\n$8\r\n10.0.0.8\r\n:6379\r\n"
              "$9\r\nconnected\r\n:5\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "ROLE slave: failed");
    is_str(jpki_conn_reason(c), "redis is not the primary (ROLE: slave): "
           "asking the sentinels again", "... says why");
    ok(jpki_conn_rediscover(c) && jpki_conn_retry_primary(c, 0),
       "... ask again, the round to the primary named next");
    jpki_conn_free(c);
    close_pair();

    /* ROLE refused (an ACL without +role): no rediscovery, no retry */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    PEER_SAYS("+OK\r\n-NOPERM this user has no permissions to run the "
              "'role' command\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "ROLE refused: failed");
    ok(strstr(jpki_conn_reason(c), "ROLE refused (the user needs +role)")
       != NULL, "... says what the user needs");
    ok(!jpki_conn_rediscover(c) && !jpki_conn_retry_primary(c, 0),
       "... a configuration mistake: no rediscovery");
    jpki_conn_free(c);
    close_pair();

    /* the primary gone before ROLE answered: ask again, retry */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    close(pair[1]);
    pair[1] = -1;
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "closed before ROLE");
    ok(jpki_conn_rediscover(c) && jpki_conn_retry_primary(c, 0),
       "... ask again; the command never left: retried");
    jpki_conn_free(c);
    close_pair();

    /* gone after the command was sent: ask again, no retry */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    PEER_SAYS("+OK\r\n*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "the command sent");
    peer_read(pair[1], buf, sizeof(buf));
    close(pair[1]);
    pair[1] = -1;
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "closed before its reply");
    ok(jpki_conn_rediscover(c), "... ask again");
    ok(!jpki_conn_retry_primary(c, 0), "... not retried (it may have run)");
    is_int(jpki_conn_after(c, 1, 0), JPKI_CONN_OVER, "... over (a new "
           "connection: no retry of a pooled one either)");
    jpki_conn_free(c);
    close_pair();

    /* a timeout: ask again, its time spent */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    jpki_conn_timeout(c);
    ok(jpki_conn_rediscover(c) && !jpki_conn_retry_primary(c, 0),
       "a timeout: ask again, not retried");
    is_int(jpki_conn_after(c, 1, 0), JPKI_CONN_OVER, "... over");
    jpki_conn_free(c);
    close_pair();

    /* AUTH refused: a configuration mistake, the primary stands */
    c = primary_round(&cmd, &res, buf, sizeof(buf));
    PEER_SAYS("-WRONGPASS invalid username-password pair\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "AUTH refused");
    ok(!jpki_conn_rediscover(c), "... no rediscovery");
    jpki_conn_free(c);
    close_pair();
}

static void test_refused_connect(void)
{
    struct sockaddr_in sa;
    jpki_store_cmd cmd = set_cmd();
    jpki_store_result res;
    jpki_redis_auth auth = { NULL, NULL, 0, 1 };
    jpki_conn *c;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* a port nobody listens on: bound, then closed */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    c = jpki_conn_open((struct sockaddr *)&sa, sizeof(sa), "redis", "x");
    jpki_conn_redis(c, &auth, &cmd, 1, &res);
    while (jpki_conn_step(c) == JPKI_CONN_WANT_WRITE)
        usleep(1000);
    is_int(jpki_conn_state_of(c), JPKI_CONN_FAILED, "a refused connection");
    ok(jpki_conn_rediscover(c) && jpki_conn_retry_primary(c, 0),
       "... ask the sentinels again, the round to the primary named next");
    jpki_conn_free(c);
}

static void spec_sentinels(jpki_store_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->n_sentinels = 3;
    strcpy(spec->sentinels[0].host, "10.0.0.1");
    spec->sentinels[0].port = 26379;
    strcpy(spec->sentinels[1].host, "::1");
    spec->sentinels[1].port = 26380;
    strcpy(spec->sentinels[2].host, "sentinel.test");
    spec->sentinels[2].port = 26381;
    strcpy(spec->master, "gate");
}

static void test_discovery(void)
{
    jpki_sentinel *s = jpki_sentinel_new(3);
    jpki_sentinel_addr a = { "10.0.0.5", 6379 }, b = { "10.0.0.6", 6379 };
    jpki_store_spec spec;
    jpki_discovery d;
    jpki_conn *c;
    const char *where;
    socklen_t len;
    unsigned gen;
    char buf[512], say[512];

    spec_sentinels(&spec);
    ok(jpki_conf_sentinel_where(&spec, 1, buf, sizeof(buf)) == 11
       && strcmp(buf, "[::1]:26380") == 0, "a sentinel's address: IPv6 "
       "bracketed");
    ok(jpki_conf_sentinel_where(&spec, 2, buf, 8) == 0, "... 0 when it does "
       "not fit");

    jpki_discovery_begin(&d, s, &spec);
    is_int(jpki_discovery_next(&d), 0, "a discovery asks the first sentinel");
    is_str(d.where, "10.0.0.1:26379", "... at its address");
    is_int(jpki_discovery_fed(&d, NULL), JPKI_DISCOVERY_NEXT,
           "it named none: ask the next");
    is_int(jpki_discovery_next(&d), 1, "... the second");
    is_str(d.where, "[::1]:26380", "... bracketed");
    is_int(jpki_discovery_fed(&d, &a), JPKI_DISCOVERY_NEW, "it names the "
           "primary: a new one");
    is_str(d.say, "redis primary of \"gate\" is 10.0.0.5:6379 (sentinel "
           "[::1]:26380)", "... said");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) != NULL
       && strcmp(where, "10.0.0.5:6379") == 0, "... and known");

    jpki_discovery_begin(&d, s, &spec);
    is_int(jpki_discovery_next(&d), 1, "the next discovery asks the one that "
           "answered first");
    is_int(jpki_discovery_fed(&d, &a), JPKI_DISCOVERY_KNOWN, "the same "
           "primary: known, nothing to say");

    jpki_discovery_begin(&d, s, &spec);
    is_int(jpki_discovery_next(&d), 1, "a discovery where none answers");
    is_int(jpki_discovery_fed(&d, NULL), JPKI_DISCOVERY_NEXT, "... next");
    is_int(jpki_discovery_next(&d), 2, "... the third");
    is_str(d.where, "sentinel.test:26381", "... by its name as written");
    is_int(jpki_discovery_fed(&d, NULL), JPKI_DISCOVERY_NEXT, "... next");
    is_int(jpki_discovery_next(&d), 0, "... the first");
    is_int(jpki_discovery_fed(&d, NULL), JPKI_DISCOVERY_NEXT, "... next");
    is_int(jpki_discovery_next(&d), -1, "... each asked once: given up");
    is_str(d.say, "no sentinel named the redis primary of \"gate\"",
           "... said");
    is_int(jpki_sentinel_start(s), 1, "each one skipped in turn: the next "
           "discovery starts round again");

    /* the primary lost */
    c = jpki_conn_new(-1, 0, "redis", where);
    ok(jpki_discovery_lost(s, gen, c, "gate", say, sizeof(say)) == 1,
       "a primary's connection lost it: forgotten");
    is_str(say, "redis primary 10.0.0.5:6379 of \"gate\" lost: asking the "
           "sentinels again", "... said");
    ok(jpki_sentinel_primary(s, &len, &where, &gen) == NULL, "... none known");
    ok(jpki_discovery_lost(s, gen - 1, c, "gate", say, sizeof(say)) == 0,
       "... once");
    jpki_conn_free(c);

    jpki_discovery_begin(&d, s, &spec);
    is_int(jpki_discovery_next(&d), 1, "asked again");
    is_int(jpki_discovery_fed(&d, &b), JPKI_DISCOVERY_NEW, "... another "
           "primary named");
    jpki_sentinel_free(s);

    /* the query on the sentinel's connection, with its password */
    s = jpki_sentinel_new(3);
    strcpy(spec.sentinel_password, "spw");
    jpki_discovery_begin(&d, s, &spec);
    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis sentinel", "10.0.0.1:26379");
    ok(jpki_discovery_query(&d, c, NULL) != JPKI_OK, "no query before a "
       "sentinel is picked");
    (void)jpki_discovery_next(&d);
    is_int(jpki_discovery_query(&d, c, NULL), JPKI_OK, "the query");
    jpki_conn_step(c);
    peer_read(pair[1], buf, sizeof(buf));
    ok(strncmp(buf, "*2\r\n$4\r\nAUTH\r\n$3\r\nspw\r\n", 21) == 0
       && strstr(buf, "get-master-addr-by-name") != NULL
       && strstr(buf, "gate") != NULL, "... AUTH, then the master asked for");
    PEER_SAYS("+OK\r\n*2\r\n$8\r\n10.0.0.9\r\n$4\r\n6390\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "... answered");
    is_int(jpki_discovery_fed(&d, jpki_conn_primary(c)), JPKI_DISCOVERY_NEW,
           "... its answer fed: the primary learnt");
    is_str(d.say, "redis primary of \"gate\" is 10.0.0.9:6390 (sentinel "
           "10.0.0.1:26379)", "... said");
    jpki_conn_free(c);
    close_pair();
    jpki_sentinel_free(s);
}

/* The name a store's connection checks: tls_name= when set, else the one
 * given (SNI for a DNS name). */
static void test_store_tls(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    jpki_store_spec spec;
    jpki_conn *c;
    const char *sni;

    spec_sentinels(&spec);
    c = jpki_conn_new(-1, 0, "redis", "x");
    is_int(jpki_conn_store_tls(c, NULL, &spec, "a.test"), JPKI_OK,
           "no tls_ca=: no TLS");
    ok(jpki_conn_ssl(c) == NULL, "... none set up");
    is_int(jpki_conn_store_tls(c, ctx, &spec, "a.test"), JPKI_OK, "TLS");
    sni = SSL_get_servername(jpki_conn_ssl(c), TLSEXT_NAMETYPE_host_name);
    is_str(sni ? sni : "", "a.test", "... the name given, without tls_name=");
    jpki_conn_free(c);

    strcpy(spec.tls_name, "redis.test");
    c = jpki_conn_new(-1, 0, "redis", "x");
    is_int(jpki_conn_store_tls(c, ctx, &spec, "a.test"), JPKI_OK, "TLS");
    sni = SSL_get_servername(jpki_conn_ssl(c), TLSEXT_NAMETYPE_host_name);
    is_str(sni ? sni : "", "redis.test", "... tls_name= when set");
    jpki_conn_free(c);
    SSL_CTX_free(ctx);
}

int main(void)
{
    test_query();
    test_auth();
    test_answer();
    test_role();
    test_record();
    test_sentinel_conn();
    test_discovery();
    test_store_tls();
    test_role_prelude();
    test_refused_connect();
    return done_testing();
}
