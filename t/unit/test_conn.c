/* test_conn.c - the client connection's state machine (common/conn.c)
 * against a peer played by the test: a socketpair (Redis rounds, OCSP
 * answers), sockets of its own (TCP, unix), and a TLS server on the other
 * end of a socketpair with certificates made here (chain, name, SNI); the
 * rules of keeping, retrying and sharing (OCSP flights). */
#include "conn.h"
#include "tap.h"
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static int contains(const char *hay, size_t len, const char *needle)
{
    return memmem(hay, len, needle, strlen(needle)) != NULL;
}

static jpki_store_cmd get_cmd(const char *key)
{
    jpki_store_cmd c;

    memset(&c, 0, sizeof(c));
    c.op = JPKI_STORE_GET;
    c.keylen = (size_t)snprintf(c.key, sizeof(c.key), "%s%s",
                                JPKI_STORE_PREFIX, key);
    return c;
}

/* Steps c until it waits or ends, at most a few times (poll between). */
static jpki_conn_state settle(jpki_conn *c)
{
    struct pollfd p;
    jpki_conn_state st;
    int i;

    for (i = 0; i < 50; i++) {
        st = jpki_conn_step(c);
        if (st == JPKI_CONN_DONE || st == JPKI_CONN_FAILED)
            return st;
        p.fd = jpki_conn_fd(c);
        p.events = st == JPKI_CONN_WANT_READ ? POLLIN : POLLOUT;
        if (poll(&p, 1, 100) == 0)
            return st;
    }
    return st;
}

static void test_redis_rounds(void)
{
    jpki_redis_auth auth = { "jpki", "pw-secret", 2, 0 };
    jpki_store_cmd cmds[2];
    jpki_store_result res[2];
    char buf[8192];
    size_t n;
    jpki_conn *c;

    new_pair();
    cmds[0] = get_cmd("k1");
    cmds[1] = get_cmd("k2");
    c = jpki_conn_new(pair[0], 0, "redis", "127.0.0.1:6379");
    ok(c != NULL, "a connection over a connected socket");
    is_int(jpki_conn_redis(c, &auth, cmds, 2, res), JPKI_OK, "round 1");
    ok(!jpki_conn_ready(c), "not ready before its first step");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "sent: waits for replies");
    ok(jpki_conn_ready(c), "ready: the command's deadline runs");
    n = peer_read(pair[1], buf, sizeof(buf));
    ok(contains(buf, n, "AUTH") && contains(buf, n, "pw-secret")
       && contains(buf, n, "SELECT"), "the prelude on a new connection");
    ok(contains(buf, n, "k1") && contains(buf, n, "k2"), "then the commands");
    PEER_SAYS("+OK\r\n+OK\r\n$3\r\nab");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "a reply in part: waits");
    PEER_SAYS("c\r\n$-1\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "every reply in: done");
    is_int(res[0].type, JPKI_STORE_R_VALUE, "reply 1 a string");
    is_int(res[1].type, JPKI_STORE_R_NIL, "reply 2 nil");
    ok(jpki_conn_reason(c) == NULL, "nothing to log");
    ok(jpki_conn_keep(c, 0, 4), "kept while the pool has room");
    ok(!jpki_conn_keep(c, 4, 4), "not kept in a full pool");
    ok(jpki_conn_idle(c), "idle: nothing to read");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "a step after the end: done");

    /* round 2: a pooled connection: no prelude; twelve replies read in
     * one step (edge-triggered events come once) */
    {
        jpki_store_cmd many[JPKI_STORE_BATCH_MAX];
        jpki_store_result mres[JPKI_STORE_BATCH_MAX];
        char one[300];
        int i, h;

        for (i = 0; i < JPKI_STORE_BATCH_MAX; i++)
            many[i] = get_cmd("k1");
        is_int(jpki_conn_redis(c, &auth, many, JPKI_STORE_BATCH_MAX, mres),
               JPKI_OK, "round 2");
        is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "round 2 sent");
        n = peer_read(pair[1], buf, sizeof(buf));
        ok(!contains(buf, n, "AUTH") && contains(buf, n, "k1"),
           "no prelude on a pooled connection");
        h = snprintf(one, sizeof(one), "$%d\r\n", 190);
        memset(one + h, 'x', 190);
        memcpy(one + h + 190, "\r\n", 2);
        for (i = 0; i < JPKI_STORE_BATCH_MAX; i++)
            peer_write(pair[1], one, (size_t)h + 192);
        is_int(jpki_conn_step(c), JPKI_CONN_DONE, "12 replies in one step");
        is_int((long long)mres[11].vallen, 190, "... the last one whole");
    }

    /* round 3: a reply beyond the round's: results stand, not kept */
    is_int(jpki_conn_redis(c, &auth, cmds, 1, res), JPKI_OK, "round 3");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "round 3 sent");
    (void)peer_read(pair[1], buf, sizeof(buf));
    PEER_SAYS("$-1\r\n+OK\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "out of step: done");
    is_str(jpki_conn_reason(c), "redis sent more replies than asked",
           "... and said why");
    ok(!jpki_conn_keep(c, 0, 4), "... not kept");
    ok(!jpki_conn_idle(c), "... nor idle");
    is_int(jpki_conn_redis(c, &auth, cmds, 1, res), JPKI_OK,
           "(a round on it anyway)");
    jpki_conn_free(c);
    close_pair();
}

/* A new connection over a new pair with a round sent (read by the peer);
 * pooled: its first round answered, the second sent. */
static jpki_conn *sent_round(const jpki_redis_auth *auth, jpki_store_cmd *cmd,
                             jpki_store_result *res, int pooled)
{
    char buf[4096];
    jpki_conn *c;

    new_pair();
    c = jpki_conn_new(pair[0], 0, "redis", "r:1");
    jpki_conn_redis(c, auth, cmd, 1, res);
    jpki_conn_step(c);
    (void)peer_read(pair[1], buf, sizeof(buf));
    if (pooled) {
        PEER_SAYS("+OK\r\n$-1\r\n");
        is_int(jpki_conn_step(c), JPKI_CONN_DONE, "round 1 done");
        ok(jpki_conn_idle(c), "idle");
        is_int(jpki_conn_redis(c, auth, cmd, 1, res), JPKI_OK, "round 2");
    }
    return c;
}

static void peer_gone(void)
{
    close(pair[1]);
    pair[1] = -1;
}

static void test_redis_failures(void)
{
    jpki_redis_auth auth = { NULL, "pw", 0, 0 };
    jpki_store_cmd cmd = get_cmd("k");
    jpki_store_result res;
    jpki_conn *c;

    /* a pooled connection Redis closed: one retry on a fresh one */
    c = sent_round(&auth, &cmd, &res, 1);
    is_int(jpki_conn_redis(c, &auth, &cmd, 1, &res), JPKI_ERR_INVALID,
           "no round while one is under way");
    jpki_conn_step(c);
    peer_gone();
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "closed: failed");
    is_str(jpki_conn_reason(c), "redis closed the connection", "... why");
    ok(jpki_conn_retry(c, 0), "a pooled connection dead: retried");
    ok(!jpki_conn_retry(c, 1), "... once");
    is_int(jpki_conn_after(c, 0, 0), JPKI_CONN_AGAIN, "... on a new "
           "connection");
    is_int(jpki_conn_after(c, 1, 0), JPKI_CONN_AGAIN, "... the same with "
           "sentinels (nothing says the primary is gone)");
    is_int(jpki_conn_after(c, 0, 1), JPKI_CONN_OVER, "... once: then over");
    ok(!jpki_conn_timed_out(c), "not a timeout");
    jpki_conn_free(c);
    close_pair();

    /* the send refused on a pooled connection: retried too */
    c = sent_round(&auth, &cmd, &res, 1);
    peer_gone();
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "send to a closed peer");
    ok(strncmp(jpki_conn_reason(c), "redis send failed: ", 19) == 0,
       "... 'redis send failed: <why>'");
    ok(jpki_conn_retry(c, 0), "... retried");
    jpki_conn_free(c);
    close_pair();

    /* an idle connection the peer closed: dropped from the pool */
    c = sent_round(&auth, &cmd, &res, 0);
    PEER_SAYS("+OK\r\n$-1\r\n");
    jpki_conn_step(c);
    peer_gone();
    ok(!jpki_conn_idle(c), "EOF: no longer idle");
    jpki_conn_free(c);
    close_pair();

    /* a new connection: never retried; a refused AUTH fails */
    c = sent_round(&auth, &cmd, &res, 0);
    PEER_SAYS("-WRONGPASS nope\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "AUTH refused: failed");
    is_str(jpki_conn_reason(c), "redis AUTH or SELECT refused", "... why");
    ok(!jpki_conn_retry(c, 0), "... not retried");
    is_int(jpki_conn_after(c, 0, 0), JPKI_CONN_OVER, "... over");
    ok(!jpki_conn_keep(c, 0, 4), "... not kept");
    jpki_conn_free(c);
    close_pair();

    c = sent_round(&auth, &cmd, &res, 0);
    peer_gone();
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "a new connection closed");
    ok(!jpki_conn_retry(c, 0), "... not retried (not pooled)");
    jpki_conn_free(c);
    close_pair();

    /* a garbage reply: protocol error */
    c = sent_round(NULL, &cmd, &res, 0);
    PEER_SAYS("?what\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "garbage: failed");
    is_str(jpki_conn_reason(c), "redis protocol error", "... why");
    jpki_conn_free(c);
    close_pair();

    /* the deadlines' sentences, by stage */
    new_pair();
    c = jpki_conn_new(pair[0], 1, "redis", "r:1");
    jpki_conn_redis(c, &auth, &cmd, 1, &res);
    jpki_conn_timeout(c);
    is_str(jpki_conn_reason(c), "cannot connect to redis r:1 (timed out)",
           "timeout while connecting");
    ok(jpki_conn_timed_out(c) && !jpki_conn_retry(c, 0),
       "... a timeout, never retried");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "... failed");
    jpki_conn_free(c);
    c = jpki_conn_new(pair[0], 1, "redis", "r:1");
    jpki_conn_redis(c, &auth, &cmd, 1, &res);
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ,
           "connecting, and connected: sent");
    jpki_conn_timeout(c);
    is_str(jpki_conn_reason(c), "redis command timed out",
           "timeout waiting for replies");
    jpki_conn_free(c);
    c = jpki_conn_new(pair[0], 0, "redis", "r:1");
    jpki_conn_fail(c, "cannot arm an event");
    is_str(jpki_conn_reason(c), "redis: cannot arm an event",
           "the adapter's own failure");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "... failed");
    jpki_conn_free(c);
    close_pair();
}

/* A listening socket on 127.0.0.1 (its address in sa), or a free port
 * (closed: connections refused). */
static int listener(struct sockaddr_in *sa, int keep)
{
    socklen_t len = sizeof(*sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof(*sa)) != 0
        || listen(fd, 4) != 0 || getsockname(fd, (struct sockaddr *)sa,
                                             &len) != 0)
        exit(4);
    if (!keep) {
        close(fd);
        return -1;
    }
    return fd;
}

static void round_over(jpki_conn *c, int srv, const char *what)
{
    jpki_store_cmd cmd = get_cmd("k");
    jpki_store_result res;
    char buf[4096];
    int peer;

    is_int(jpki_conn_redis(c, NULL, &cmd, 1, &res), JPKI_OK, "%s: round",
           what);
    (void)settle(c);
    peer = accept(srv, NULL, NULL);
    ok(peer >= 0, "%s: connected", what);
    is_int(settle(c), JPKI_CONN_WANT_READ, "%s: sent", what);
    ok(read(peer, buf, sizeof(buf)) > 0, "%s: the peer has the command",
       what);
    peer_write(peer, "$2\r\nok\r\n", 8);
    is_int(settle(c), JPKI_CONN_DONE, "%s: done", what);
    is_int(res.type, JPKI_STORE_R_VALUE, "%s: the reply", what);
    close(peer);
}

static void test_open(void)
{
    struct sockaddr_in sa;
    struct sockaddr_un un;
    char where[64];
    jpki_store_cmd cmd = get_cmd("k");
    jpki_store_result res;
    jpki_conn *c;
    int srv;

    listener(&sa, 0);
    snprintf(where, sizeof(where), "127.0.0.1:%d", ntohs(sa.sin_port));
    c = jpki_conn_open((struct sockaddr *)&sa, sizeof(sa), "redis", where);
    jpki_conn_redis(c, NULL, &cmd, 1, &res);
    is_int(settle(c), JPKI_CONN_FAILED, "connection refused: failed");
    ok(strstr(jpki_conn_reason(c), "cannot connect to redis 127.0.0.1:")
       != NULL && strstr(jpki_conn_reason(c), ": Connection refused"),
       "... 'cannot connect to redis <addr>: Connection refused'");
    ok(!jpki_conn_retry(c, 0), "... not retried");
    jpki_conn_free(c);

    /* a unix socket that is not there: refused at once, said at the
     * first step (TLS and the round set up all the same) */
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof(un.sun_path), "/nonexistent/redis.sock");
    c = jpki_conn_open((struct sockaddr *)&un, sizeof(un), "redis",
                       "unix:/nonexistent/redis.sock");
    {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        is_int(jpki_conn_tls(c, ctx, "redis.test"), JPKI_OK,
               "no socket: TLS set up all the same");
        SSL_CTX_free(ctx);
    }
    is_int(jpki_conn_redis(c, NULL, &cmd, 1, &res), JPKI_OK,
           "... and the round");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "... failed at once");
    is_str(jpki_conn_reason(c), "cannot connect to redis "
           "unix:/nonexistent/redis.sock: No such file or directory",
           "... saying why");
    jpki_conn_free(c);

    srv = listener(&sa, 1);
    c = jpki_conn_open((struct sockaddr *)&sa, sizeof(sa), "redis", where);
    round_over(c, srv, "TCP");
    jpki_conn_free(c);
    close(srv);

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof(un.sun_path), "/tmp/test_conn.%d",
             (int)getpid());
    unlink(un.sun_path);
    srv = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(srv, (struct sockaddr *)&un, sizeof(un)) != 0
        || listen(srv, 4) != 0)
        exit(5);
    c = jpki_conn_open((struct sockaddr *)&un, sizeof(un), "redis", "unix");
    round_over(c, srv, "unix socket");
    jpki_conn_free(c);
    close(srv);
    unlink(un.sun_path);
}

static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };

/* An OCSP POST sent over a new pair. */
static jpki_conn *sent_post(void)
{
    jpki_conn *c;

    new_pair();
    c = jpki_conn_new(pair[0], 0, "OCSP responder", "http://ocsp.test/o");
    jpki_conn_ocsp(c, "ocsp.test", "/o", der, sizeof(der));
    jpki_conn_step(c);
    return c;
}

static void test_ocsp(void)
{
    const jpki_ocsp_answer *a;
    char buf[4096];
    size_t n;
    jpki_store_cmd cmd = get_cmd("k");
    jpki_store_result res;
    jpki_conn *c;

    new_pair();
    c = jpki_conn_new(pair[0], 0, "OCSP responder", "http://ocsp.test/o");
    is_int(jpki_conn_ocsp(c, "ocsp.test", "/o", der, sizeof(der)), JPKI_OK,
           "an OCSP POST");
    is_int(jpki_conn_redis(c, NULL, &cmd, 1, &res), JPKI_ERR_INVALID,
           "... no Redis round on it");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "sent: waits");
    n = peer_read(pair[1], buf, sizeof(buf));
    ok(strncmp(buf, "POST /o HTTP/1.0\r\nHost: ocsp.test\r\n", 35) == 0,
       "the request's head");
    ok(n > sizeof(der) && memcmp(buf + n - sizeof(der), der, sizeof(der))
       == 0, "then the body");
    ok(jpki_conn_answer(c) == NULL, "no answer yet");
    PEER_SAYS("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nab");
    is_int(jpki_conn_step(c), JPKI_CONN_WANT_READ, "part of the body: waits");
    PEER_SAYS("c");
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "whole: done");
    a = jpki_conn_answer(c);
    ok(a != NULL && a->status == 200 && a->body_len == 3
       && memcmp(a->body, "abc", 3) == 0, "status and body");
    ok(!jpki_conn_keep(c, 0, 4), "never kept");
    jpki_conn_free(c);
    close_pair();

    /* 20000 bytes read in one step (edge-triggered events come once) */
    c = sent_post();
    {
        static char big[20100];
        int h = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n"
                         "Content-Length: 20000\r\n\r\n");

        memset(big + h, 'x', 20000);
        peer_write(pair[1], big, (size_t)h + 20000);
    }
    is_int(jpki_conn_step(c), JPKI_CONN_DONE, "a big answer in one step");
    ok(jpki_conn_answer(c)->body_len == 20000, "... whole");
    jpki_conn_free(c);
    close_pair();

    c = sent_post();
    PEER_SAYS("SMTP ready\r\n\r\n");
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "not HTTP: failed");
    is_str(jpki_conn_reason(c), "malformed HTTP answer from OCSP responder "
           "(http://ocsp.test/o)", "... why, and from where");
    jpki_conn_free(c);
    close_pair();

    c = sent_post();
    PEER_SAYS("HTTP/1.0 200 OK\r\nContent-Length: 30\r\n\r\nab");
    peer_gone();
    is_int(jpki_conn_step(c), JPKI_CONN_FAILED, "cut short: failed");
    jpki_conn_free(c);
    close_pair();

    c = sent_post();
    jpki_conn_timeout(c);
    is_str(jpki_conn_reason(c), "OCSP responder timed out "
           "(http://ocsp.test/o)",
           "the responder's silence");
    jpki_conn_free(c);
    close_pair();
}

/* ---- TLS: a CA and a server certificate made here ------------------ */

static EVP_PKEY *ca_key, *srv_key, *other_key;
static X509 *ca_cert, *srv_cert, *other_cert;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *ikey, const char *san)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, san ? NID_subject_alt_name
                                             : NID_basic_constraints,
                              san ? san : "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, ikey, EVP_sha256());
    return x;
}

static void make_pki(void)
{
    ca_key = EVP_EC_gen("P-256");
    srv_key = EVP_EC_gen("P-256");
    other_key = EVP_EC_gen("P-256");
    ca_cert = make_cert("test CA", ca_key, NULL, ca_key, NULL);
    other_cert = make_cert("other CA", other_key, NULL, other_key, NULL);
    srv_cert = make_cert("redis.test", srv_key, ca_cert, ca_key,
                         "DNS:redis.test,IP:127.0.0.1");
}

static SSL_CTX *client_ctx(X509 *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    /* a context that would stop the handshake: the core decides after */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static char sni[64];

static int sni_cb(SSL *s, int *al, void *arg)
{
    const char *n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

    snprintf(sni, sizeof(sni), "%s", n ? n : "(none)");
    return SSL_TLSEXT_ERR_OK;
}

/* The client's steps and the server's, in turn, until the client waits
 * with nothing in flight or ends. */
static jpki_conn_state tls_drive(jpki_conn *c, SSL *srv)
{
    jpki_conn_state st = JPKI_CONN_WANT_WRITE;
    int i;

    for (i = 0; i < 40; i++) {
        st = jpki_conn_step(c);
        if (st == JPKI_CONN_DONE || st == JPKI_CONN_FAILED)
            break;
        if (!SSL_is_init_finished(srv))
            (void)SSL_do_handshake(srv);
        else if (jpki_conn_ready(c))
            break;
    }
    ERR_clear_error();
    return st;
}

static void tls_case(const char *what, X509 *ca, const char *name,
                     const char *want_reason, const char *want_sni)
{
    jpki_store_cmd cmd = get_cmd("k");
    jpki_store_result res;
    SSL_CTX *cctx = client_ctx(ca), *sctx = SSL_CTX_new(TLS_server_method());
    SSL *srv;
    jpki_conn *c;
    char buf[256];
    int n;

    SSL_CTX_use_certificate(sctx, srv_cert);
    SSL_CTX_use_PrivateKey(sctx, srv_key);
    SSL_CTX_set_tlsext_servername_callback(sctx, sni_cb);
    new_pair();
    srv = SSL_new(sctx);
    SSL_set_fd(srv, pair[1]);
    SSL_set_accept_state(srv);
    strcpy(sni, "(none)");

    c = jpki_conn_new(pair[0], 0, "redis", "tls:1");
    is_int(jpki_conn_tls(c, cctx, name), JPKI_OK, "%s: TLS set", what);
    ok(jpki_conn_ssl(c) != NULL, "%s: its SSL", what);
    jpki_conn_redis(c, NULL, &cmd, 1, &res);
    if (want_reason != NULL) {
        is_int(tls_drive(c, srv), JPKI_CONN_FAILED, "%s: refused", what);
        ok(jpki_conn_reason(c) != NULL
           && strstr(jpki_conn_reason(c), want_reason) != NULL,
           "%s: '%s'", what, want_reason);
        ok(!jpki_conn_retry(c, 0), "%s: not retried", what);
    } else {
        is_int(tls_drive(c, srv), JPKI_CONN_WANT_READ, "%s: sent", what);
        n = SSL_read(srv, buf, sizeof(buf));
        ok(n > 0 && contains(buf, (size_t)n, "GET"),
           "%s: the server reads the command", what);
        SSL_write(srv, "$1\r\nv\r\n", 7);
        is_int(jpki_conn_step(c), JPKI_CONN_DONE, "%s: the reply", what);
        is_int(res.type, JPKI_STORE_R_VALUE, "%s: a string", what);
        ok(jpki_conn_keep(c, 0, 1) && jpki_conn_idle(c), "%s: kept", what);
        SSL_write(srv, "x", 1);
        ok(!jpki_conn_idle(c), "%s: idle no more after a stray byte", what);
    }
    ok(strcmp(sni, want_sni) == 0, "%s: SNI %s", what, sni);
    jpki_conn_free(c);
    SSL_free(srv);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    close_pair();
}

/* A handshake between a client of versions min..max and a server held to
 * TLS 1.2 by jpki_tls_hello_hold12: the version it ends with (0: none). */
static int hold12_version(int min, int max)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *srv, *cli;
    int i, v = 0, cdone = 0, sdone = 0;

    SSL_CTX_use_certificate(sctx, srv_cert);
    SSL_CTX_use_PrivateKey(sctx, srv_key);
    SSL_CTX_set_client_hello_cb(sctx, jpki_tls_hello_hold12, NULL);
    SSL_CTX_set_min_proto_version(cctx, min);
    SSL_CTX_set_max_proto_version(cctx, max);
    new_pair();
    srv = SSL_new(sctx);
    cli = SSL_new(cctx);
    SSL_set_fd(srv, pair[1]);
    SSL_set_fd(cli, pair[0]);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    for (i = 0; i < 40 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(cli) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(srv) == 1;
    }
    if (cdone && sdone)
        v = SSL_version(srv);
    ERR_clear_error();
    SSL_free(srv);
    SSL_free(cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    close_pair();
    return v;
}

static void test_tls(void)
{
    make_pki();
    is_int(hold12_version(TLS1_2_VERSION, TLS1_3_VERSION), TLS1_2_VERSION,
           "a client of TLS 1.2 and 1.3: held to 1.2 (a card can sign)");
    is_int(hold12_version(TLS1_3_VERSION, TLS1_3_VERSION), TLS1_3_VERSION,
           "a client of TLS 1.3 only: 1.3 goes on (told why at its login)");
    is_int(hold12_version(TLS1_2_VERSION, TLS1_2_VERSION), TLS1_2_VERSION,
           "a client of TLS 1.2 only: 1.2");
    tls_case("the right server", ca_cert, "redis.test", NULL, "redis.test");
    tls_case("by IP address", ca_cert, "127.0.0.1", NULL, "(none)");
    tls_case("another name", ca_cert, "elsewhere.test",
             "redis server certificate does not name \"elsewhere.test\"",
             "elsewhere.test");
    tls_case("another CA", other_cert, "redis.test",
             "redis server certificate refused: ", "redis.test");

    {
        jpki_conn *c;

        new_pair();
        c = jpki_conn_new(pair[0], 0, "redis", "tls:1");
        jpki_conn_tls(c, client_ctx(ca_cert), "redis.test");
        SSL_CTX_free(SSL_get_SSL_CTX(jpki_conn_ssl(c)));
        close(pair[1]);
        pair[1] = -1;
        {
            jpki_store_cmd cmd = get_cmd("k");
            jpki_store_result res;

            jpki_conn_redis(c, NULL, &cmd, 1, &res);
        }
        is_int(jpki_conn_step(c), JPKI_CONN_FAILED,
               "a server gone during the handshake");
        ok(strncmp(jpki_conn_reason(c), "redis TLS handshake failed: ", 28)
           == 0, "... 'redis TLS handshake failed: <why>'");
        jpki_conn_free(c);
        close_pair();
    }
    X509_free(ca_cert);
    X509_free(srv_cert);
    X509_free(other_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(other_key);
}

static void test_flights(void)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    jpki_flight *list = NULL, a, b, d;
    int s1, s2;

    ok(jpki_flight_shared(id, 32), "a cert_id is shared");
    ok(!jpki_flight_shared(NULL, 0), "no key (nonces): not shared");
    ok(!jpki_flight_shared(id, 31), "a key of another length: not");
    ok(!jpki_flight_shared("0123456789ABCDEF0123456789ABCDEF", 32),
       "not a cert_id: not");
    jpki_flight_start(&list, &a, &s1, id, 32);
    ok(jpki_flight_find(list, &s1, id, 32) == &a, "found while under way");
    ok(jpki_flight_find(list, &s2, id, 32) == NULL,
       "not for another responder");
    jpki_flight_start(&list, &d, &s1, NULL, 0);
    ok(list == &a, "a query of its own is not listed");
    jpki_flight_start(&list, &b, &s2, id, 32);
    ok(jpki_flight_find(list, &s2, id, 32) == &b, "two responders, two");
    jpki_flight_land(&list, &a);
    ok(jpki_flight_find(list, &s1, id, 32) == NULL, "landed: gone");
    ok(jpki_flight_find(list, &s2, id, 32) == &b, "... the other stays");
    jpki_flight_land(&list, &b);
    jpki_flight_land(&list, &d);
    ok(list == NULL, "all landed");

    /* threads waiting (Apache): the answer kept for them, the last out
     * frees it */
    memset(&a, 0, sizeof(a));
    jpki_flight_start(&list, &a, &s1, id, 32);
    a.waiters = 2;
    ok(!jpki_flight_done(&list, &a, 200, (const uint8_t *)"resp", 4)
       && list == NULL && a.done && a.status == 200 && a.body_len == 4
       && memcmp(a.body, "resp", 4) == 0,
       "done with two waiters: landed, the answer kept for them");
    ok(!jpki_flight_leave(&a) && a.body != NULL, "the first waiter leaves");
    ok(jpki_flight_leave(&a) && a.body == NULL,
       "the last one: the answer freed, the flight the adapter's to free");
    memset(&a, 0, sizeof(a));
    jpki_flight_start(&list, &a, &s1, id, 32);
    ok(jpki_flight_done(&list, &a, 0, NULL, 0) && a.body == NULL,
       "failed, nobody waiting: the adapter frees it at once");
    memset(&a, 0, sizeof(a));
    jpki_flight_start(&list, &a, &s1, id, 32);
    a.waiters = 1;
    ok(!jpki_flight_leave(&a), "a waiter that gives up before the answer: "
       "the flight stays for its query");
    ok(jpki_flight_done(&list, &a, 200, (const uint8_t *)"x", 1)
       && a.body == NULL, "... then done, nobody waiting: nothing kept");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);         /* as in both servers */
    test_redis_rounds();
    test_redis_failures();
    test_open();
    test_ocsp();
    test_tls();
    test_flights();
    return done_testing();
}
