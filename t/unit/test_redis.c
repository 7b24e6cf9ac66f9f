/* test_redis.c - the clients' rules both adapters share (common/redis.c,
 * common/http.c): a Redis round fed in pieces of every size (every reply
 * in, AUTH or SELECT refused, a reply out of step, a protocol error, a
 * reply too large, the connection closed, when a connection is kept and a
 * round tried again), the TLS peer's name (certificates made here, and a
 * handshake in memory for SNI), and an OCSP responder's answer read. */
#include "gate.h"
#include "redis.h"
#include "pki.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ------------------------------------------------------------------ */
/* Redis rounds                                                        */
/* ------------------------------------------------------------------ */

static jpki_store_cmd cmds[3];
static jpki_store_result res[3];

static void make_cmds(void)
{
    memset(cmds, 0, sizeof(cmds));
    cmds[0].op = JPKI_STORE_GET;
    strcpy(cmds[0].key, JPKI_STORE_PREFIX "s:abc");
    cmds[0].keylen = strlen(cmds[0].key);
    cmds[1].op = JPKI_STORE_SET;
    strcpy(cmds[1].key, JPKI_STORE_PREFIX "s:def");
    cmds[1].keylen = strlen(cmds[1].key);
    memcpy(cmds[1].val, "v", 1);
    cmds[1].vallen = 1;
    cmds[1].ttl_ms = 1000;
    cmds[2].op = JPKI_STORE_INCR;
    strcpy(cmds[2].key, JPKI_STORE_PREFIX "t:ghi");
    cmds[2].keylen = strlen(cmds[2].key);
}

static const jpki_redis_auth auth = {"gate", "secret", 3, 0};

/* The stream fed to a new round (prelude when with_auth) in pieces of
 * piece bytes: the state after the last piece; *early: a piece before the
 * last ended the round. */
static jpki_round_state feed_pieces(jpki_redis_round *r, int with_auth,
                                    const char *stream, size_t piece,
                                    int *early)
{
    size_t len = strlen(stream), off = 0, k;
    jpki_round_state st = JPKI_ROUND_MORE;

    memset(res, 0xAA, sizeof(res));
    *early = 0;
    if (jpki_redis_round_start(r, with_auth ? &auth : NULL, cmds, 3, res)
        != JPKI_OK)
        return JPKI_ROUND_FAILED;
    while (off < len) {
        k = len - off < piece ? len - off : piece;
        if (st != JPKI_ROUND_MORE)
            *early = 1;
        st = jpki_redis_round_feed(r, stream + off, k);
        off += k;
    }
    return st;
}

#define GOOD_REPLIES "$5\r\nhello\r\n+OK\r\n:7\r\n"

static int results_good(void)
{
    return res[0].type == JPKI_STORE_R_VALUE && res[0].vallen == 5
           && memcmp(res[0].val, "hello", 5) == 0
           && res[1].type == JPKI_STORE_R_INT && res[1].n == 1
           && res[2].type == JPKI_STORE_R_INT && res[2].n == 7;
}

/* Every piece size from 1 to the whole stream: the same outcome. */
static void round_every_size(const char *what, int with_auth,
                             const char *stream, jpki_round_state want,
                             int want_keep, const char *want_reason,
                             int want_results)
{
    jpki_redis_round *r = jpki_redis_round_new();
    size_t piece, len = strlen(stream), bad = 0;
    jpki_round_state st;
    const char *why;
    int early;

    for (piece = 1; piece <= len; piece++) {
        st = feed_pieces(r, with_auth, stream, piece, &early);
        why = jpki_redis_round_reason(r);
        if (st != want || jpki_redis_round_keep(r) != want_keep
            || (want_reason == NULL) != (why == NULL)
            || (want_reason != NULL && strcmp(why, want_reason) != 0)
            || (want_results && !results_good())
            || (early && want == JPKI_ROUND_DONE && want_keep)) {
            if (bad++ == 0)
                printf("# %s: piece %zu: state %d keep %d reason %s\n",
                       what, piece, st, jpki_redis_round_keep(r),
                       why ? why : "(none)");
        }
    }
    ok(bad == 0, "%s: the same outcome in pieces of every size (1..%zu)",
       what, len);
    jpki_redis_round_free(r);
}

static void test_round_outcomes(void)
{
    round_every_size("all replies in", 1, "+OK\r\n+OK\r\n" GOOD_REPLIES,
                     JPKI_ROUND_DONE, 1, NULL, 1);
    round_every_size("pooled connection: no prelude", 0, GOOD_REPLIES,
                     JPKI_ROUND_DONE, 1, NULL, 1);
    round_every_size("AUTH refused", 1,
                     "-WRONGPASS invalid username-password pair\r\n"
                     "+OK\r\n" GOOD_REPLIES,
                     JPKI_ROUND_FAILED, 0, "AUTH or SELECT refused", 0);
    round_every_size("SELECT refused", 1,
                     "+OK\r\n-ERR DB index is out of range\r\n" GOOD_REPLIES,
                     JPKI_ROUND_FAILED, 0, "AUTH or SELECT refused", 0);
    round_every_size("a reply beyond the round's", 1,
                     "+OK\r\n+OK\r\n" GOOD_REPLIES "+OK\r\n",
                     JPKI_ROUND_DONE, 0, "sent more replies than asked", 1);
    round_every_size("part of a reply beyond the round's", 0,
                     GOOD_REPLIES ":1", JPKI_ROUND_DONE, 0,
                     "sent more replies than asked", 1);
    round_every_size("a protocol error (an array)", 1,
                     "+OK\r\n+OK\r\n*1\r\n$1\r\nx\r\n+OK\r\n:7\r\n",
                     JPKI_ROUND_FAILED, 0, "protocol error", 0);
    round_every_size("a protocol error (garbage)", 0,
                     "$5\r\nhello\r\n!oops\r\n:7\r\n",
                     JPKI_ROUND_FAILED, 0, "protocol error", 0);
    round_every_size("a prelude reply that is no reply", 1,
                     "?\r\n+OK\r\n" GOOD_REPLIES,
                     JPKI_ROUND_FAILED, 0, "protocol error", 0);
}

static void test_round_errors_stand(void)
{
    jpki_redis_round *r = jpki_redis_round_new();
    const char *s = "-ERR wrong\r\n-OOM command not allowed\r\n:3\r\n";

    jpki_redis_round_start(r, NULL, cmds, 3, res);
    is_int(jpki_redis_round_feed(r, s, strlen(s)), JPKI_ROUND_DONE,
           "server errors to commands: the round is done");
    ok(res[0].type == JPKI_STORE_R_ERROR && res[1].type == JPKI_STORE_R_FULL
       && res[2].type == JPKI_STORE_R_INT,
       "... the core's results say so (error, full): the core decides");
    ok(jpki_redis_round_keep(r), "... and the connection may be kept");
    jpki_redis_round_free(r);
}

static void test_round_too_large(void)
{
    jpki_redis_round *r = jpki_redis_round_new();
    char piece[1000];
    jpki_round_state st = JPKI_ROUND_MORE;
    size_t fed = 0;

    memset(piece, 'x', sizeof(piece));
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    st = jpki_redis_round_feed(r, "+", 1);
    while (st == JPKI_ROUND_MORE && fed < 200000) {
        st = jpki_redis_round_feed(r, piece, sizeof(piece));
        fed += sizeof(piece);
    }
    is_int(st, JPKI_ROUND_FAILED, "a status line without end: failed");
    is_str(jpki_redis_round_reason(r), "reply too large", "... too large");
    ok(fed > 60000 && fed < 70000, "... once 64 KiB are held (%zu fed)", fed);
    ok(!jpki_redis_round_keep(r), "... the connection is not kept");
    is_int(jpki_redis_round_feed(r, "+OK\r\n", 5), JPKI_ROUND_FAILED,
           "... and stays failed");

    /* a bulk length over the reader's bound: refused at its header */
    jpki_redis_round_start(r, NULL, cmds, 1, res);
    is_int(jpki_redis_round_feed(r, "$70000\r\n", 8), JPKI_ROUND_FAILED,
           "a value of 70000 bytes announced: failed");
    is_str(jpki_redis_round_reason(r), "protocol error", "... protocol error");

    /* many replies read at once are not "too large": fed in pieces */
    {
        jpki_store_cmd many[JPKI_STORE_BATCH_MAX];
        jpki_store_result mres[JPKI_STORE_BATCH_MAX];
        size_t n = JPKI_STORE_BATCH_MAX, one = 6000, len = 0, k;
        char *big = malloc(n * (one + 16));

        for (k = 0; k < n; k++) {
            many[k] = cmds[0];
            len += (size_t)sprintf(big + len, "$%zu\r\n", one);
            memset(big + len, 'v', one);
            memcpy(big + len + one, "\r\n", 2);
            len += one + 2;
        }
        jpki_redis_round_start(r, NULL, many, n, mres);
        is_int(jpki_redis_round_feed(r, big, len), JPKI_ROUND_DONE,
               "%zu replies of %zu bytes read at once (%zu bytes): done", n,
               one, len);
        ok(mres[0].type == JPKI_STORE_R_ERROR
           && mres[n - 1].type == JPKI_STORE_R_ERROR,
           "... values over JPKI_STORE_VAL_MAX: errors, by the core's rule");
        free(big);
    }
    jpki_redis_round_free(r);
}

static void test_round_eof_retry_keep(void)
{
    jpki_redis_round *r = jpki_redis_round_new();

    jpki_redis_round_start(r, NULL, cmds, 3, res);
    ok(jpki_redis_round_retry(r, 1, 0),
       "a pooled connection failing before any byte: tried again");
    ok(!jpki_redis_round_retry(r, 0, 0), "... not a new connection");
    ok(!jpki_redis_round_retry(r, 1, 1), "... not a second time");
    is_int(jpki_redis_round_eof(r), JPKI_ROUND_FAILED,
           "closed before any reply: failed");
    is_str(jpki_redis_round_reason(r), "closed the connection",
           "... closed the connection");
    ok(jpki_redis_round_retry(r, 1, 0), "... on a pooled one: tried again");

    jpki_redis_round_start(r, NULL, cmds, 3, res);
    ok(jpki_redis_round_reason(r) == NULL, "a new round: no reason left");
    jpki_redis_round_feed(r, "$5\r\nhel", 8);
    is_int(jpki_redis_round_eof(r), JPKI_ROUND_FAILED,
           "closed within a reply: failed");
    ok(!jpki_redis_round_retry(r, 1, 0),
       "... not tried again: something came back");

    jpki_redis_round_start(r, NULL, cmds, 3, res);
    jpki_redis_round_feed(r, "$5\r\nhello\r\n+OK\r\n", 16);
    ok(!jpki_redis_round_retry(r, 1, 0),
       "two replies of three, then a failure: not tried again");
    ok(!jpki_redis_round_keep(r), "a round not done: not kept");

    /* the round after a failed one starts clean: no bytes left over */
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    is_int(jpki_redis_round_feed(r, GOOD_REPLIES, strlen(GOOD_REPLIES)),
           JPKI_ROUND_DONE, "a round after a failed one: done");
    ok(results_good() && jpki_redis_round_keep(r), "... its own results");
    is_int(jpki_redis_round_eof(r), JPKI_ROUND_DONE,
           "closed after the last reply: still done");
    ok(!jpki_redis_round_keep(r), "... but not kept");

    /* out of step, then a new round: the extra bytes are gone */
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    jpki_redis_round_feed(r, GOOD_REPLIES "$5\r\nstale\r\n",
                          strlen(GOOD_REPLIES) + 11);
    ok(!jpki_redis_round_keep(r), "out of step: not kept");
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    jpki_redis_round_feed(r, GOOD_REPLIES, strlen(GOOD_REPLIES));
    ok(results_good() && jpki_redis_round_keep(r),
       "... the next round does not read the stale reply");

    /* bytes after a round done in an earlier feed */
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    jpki_redis_round_feed(r, GOOD_REPLIES, strlen(GOOD_REPLIES));
    is_int(jpki_redis_round_feed(r, "+", 1), JPKI_ROUND_DONE,
           "a byte after the round: still done");
    is_str(jpki_redis_round_reason(r), "sent more replies than asked",
           "... out of step");
    ok(!jpki_redis_round_keep(r), "... not kept");
    jpki_redis_round_free(r);
}

static void test_round_out(void)
{
    jpki_redis_round *r = jpki_redis_round_new();
    char pre[512], want[4096], *resp;
    unsigned count;
    size_t plen, len, wl, i;
    const char *out;

    plen = jpki_redis_prelude(auth.user, auth.password, auth.db, pre,
                              sizeof(pre), &count);
    memcpy(want, pre, plen);
    wl = plen;
    for (i = 0; i < 3; i++) {
        jpki_store_cmd_to_resp(&cmds[i], &resp, &len);
        memcpy(want + wl, resp, len);
        wl += len;
        free(resp);
    }
    is_int(jpki_redis_round_start(r, &auth, cmds, 3, res), JPKI_OK,
           "a round on a new connection starts");
    out = jpki_redis_round_out(r, &len);
    ok(count == 2 && len == wl && memcmp(out, want, wl) == 0,
       "... its bytes: AUTH, SELECT, then the commands");
    jpki_redis_round_start(r, NULL, cmds, 3, res);
    out = jpki_redis_round_out(r, &len);
    ok(len == wl - plen && memcmp(out, want + plen, len) == 0,
       "on a pooled connection: the commands only");
    {
        jpki_redis_auth none = {NULL, NULL, 0, 0};

        jpki_redis_round_start(r, &none, cmds, 3, res);
        out = jpki_redis_round_out(r, &len);
        ok(len == wl - plen, "no password, db 0: no prelude");
        is_int(jpki_redis_round_feed(r, GOOD_REPLIES, strlen(GOOD_REPLIES)),
               JPKI_ROUND_DONE, "... and no prelude reply is due");
    }
    ok(jpki_redis_round_start(r, NULL, cmds, 0, res) != JPKI_OK,
       "no command: refused");
    ok(jpki_redis_round_start(r, NULL, cmds, JPKI_REDIS_ROUND_MAX + 1, res)
       != JPKI_OK, "more than a round carries: refused");
    jpki_redis_round_free(r);

    {
        jpki_store_result e[2];

        memset(e, 0x55, sizeof(e));
        jpki_store_results_error(e, 2);
        ok(e[0].type == JPKI_STORE_R_ERROR && e[1].type == JPKI_STORE_R_ERROR
           && e[1].vallen == 0, "a failed batch: every result an error");
    }
}

/* ------------------------------------------------------------------ */
/* TLS peer name                                                       */
/* ------------------------------------------------------------------ */

static EVP_PKEY *key;

/* A self-signed certificate: subject CN cn, subjectAltName san (NULL:
 * none). */
static X509 *make_cert(const char *cn, const char *san)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509_EXTENSION *ext;
    X509V3_CTX v3;

    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    if (san != NULL) {
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void test_name_check(void)
{
    X509 *both = make_cert("redis.test",
                           "IP:127.0.0.1,IP:::1,DNS:redis.test");
    X509 *cn = make_cert("cn.test", NULL);
    X509 *wild = make_cert("x", "DNS:*.example.test");
    X509 *user = tap_pem_read("user1.pem", 0);

    ok(jpki_x509_names_host(both, "redis.test"), "a DNS name in the SAN");
    ok(jpki_x509_names_host(both, "REDIS.test"), "... in any case");
    ok(jpki_x509_names_host(both, "127.0.0.1"), "an IPv4 address in the SAN");
    ok(jpki_x509_names_host(both, "::1"), "an IPv6 address in the SAN");
    ok(!jpki_x509_names_host(both, "elsewhere.test"), "another DNS name: no");
    ok(!jpki_x509_names_host(both, "127.0.0.2"), "another address: no");
    ok(!jpki_x509_names_host(both, "test"), "a suffix: no");
    ok(!jpki_x509_names_host(both, ""), "an empty name: no");
    ok(!jpki_x509_names_host(both, NULL), "no name: no");
    ok(!jpki_x509_names_host(NULL, "redis.test"), "no certificate: no");
    ok(jpki_x509_names_host(cn, "cn.test"),
       "no SAN: the subject's CN names the host");
    ok(!jpki_x509_names_host(cn, "127.0.0.1"),
       "... but an address is never read from the CN");
    ok(!jpki_x509_names_host(both, "localhost"),
       "a SAN without the name: the CN is not read");
    ok(jpki_x509_names_host(wild, "a.example.test"), "a wildcard");
    ok(!jpki_x509_names_host(wild, "a.b.example.test"),
       "... one label only");
    ok(user != NULL && !jpki_x509_names_host(user, "127.0.0.1")
       && !jpki_x509_names_host(user, "redis.test"),
       "a card's certificate of the test PKI names no host");
    X509_free(both);
    X509_free(cn);
    X509_free(wild);
    X509_free(user);
}

static char sni_seen[256];

static int on_servername(SSL *s, int *al, void *arg)
{
    const char *n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

    snprintf(sni_seen, sizeof(sni_seen), "%s", n ? n : "(none)");
    return SSL_TLSEXT_ERR_OK;
}

static char why_seen[512];

/* A handshake in memory with a server whose certificate is cert (trusted
 * by the client when trust); name is the client's: what
 * jpki_tls_peer_named says after it (-1: no handshake), and
 * jpki_tls_peer_check's reason in why_seen ("" when none). */
static int handshake_named(X509 *cert, const char *name, int trust)
{
    const char *why;

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *srv, *cli;
    BIO *b1, *b2;
    int i, cr = 0, sr = 0, named = -1;

    SSL_CTX_use_certificate(sctx, cert);
    SSL_CTX_use_PrivateKey(sctx, key);
    SSL_CTX_set_tlsext_servername_callback(sctx, on_servername);
    if (trust)
        X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), cert);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);  /* the result kept */
    srv = SSL_new(sctx);
    cli = SSL_new(cctx);
    BIO_new_bio_pair(&b1, 0, &b2, 0);
    SSL_set_bio(srv, b1, b1);
    SSL_set_bio(cli, b2, b2);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    strcpy(sni_seen, "(none)");
    jpki_tls_set_server_name(cli, name);
    for (i = 0; i < 50 && (cr != 1 || sr != 1); i++) {
        if (cr != 1)
            cr = SSL_do_handshake(cli);
        if (sr != 1)
            sr = SSL_do_handshake(srv);
    }
    why_seen[0] = '\0';
    if (cr == 1 && sr == 1) {
        char buf[512];

        named = jpki_tls_peer_named(cli, name);
        why = jpki_tls_peer_check(cli, name, buf, sizeof(buf));
        snprintf(why_seen, sizeof(why_seen), "%s", why ? why : "");
    }
    ERR_clear_error();
    SSL_free(cli);
    SSL_free(srv);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    return named;
}

static void test_tls_handshake(void)
{
    X509 *cert = make_cert("redis.test", "IP:127.0.0.1,DNS:redis.test");

    char buf[128];

    is_int(handshake_named(cert, "redis.test", 1), 1,
           "TLS: the server's certificate names redis.test");
    is_str(sni_seen, "redis.test", "... which the client sent as SNI");
    is_str(why_seen, "", "... the peer check passes");
    is_int(handshake_named(cert, "127.0.0.1", 1), 1,
           "TLS: it names 127.0.0.1");
    is_str(sni_seen, "(none)", "... and no SNI for an address");
    is_str(why_seen, "", "... the peer check passes");
    is_int(handshake_named(cert, "::1", 1), 0, "TLS: it does not name ::1");
    is_str(sni_seen, "(none)", "... no SNI for an IPv6 address either");
    is_int(handshake_named(cert, "elsewhere.test", 1), 0,
           "TLS: it does not name elsewhere.test");
    is_str(why_seen, "server certificate does not name \"elsewhere.test\"",
           "... the peer check says so");
    handshake_named(cert, "redis.test", 0);
    is_str(why_seen, "server certificate refused: self-signed certificate",
           "TLS: a certificate the client does not trust: refused, why");
    ok(!jpki_tls_peer_named(NULL, "redis.test"), "no connection: no");
    ok(jpki_tls_peer_check(NULL, "redis.test", buf, sizeof(buf)) != NULL,
       "no connection: the peer check fails");
    X509_free(cert);
}

/* ------------------------------------------------------------------ */
/* OCSP answers                                                        */
/* ------------------------------------------------------------------ */

/* The answer fed in pieces of piece bytes (then the responder's close,
 * when eof): the last state; *early: the answer was whole before the last
 * byte. */
static int answer_pieces(jpki_ocsp_answer *a, uint8_t *buf, size_t max,
                         const char *text, size_t piece, int eof, int *early)
{
    size_t len = strlen(text), off = 0, k, room;
    int st = 0;
    uint8_t *p;

    jpki_ocsp_answer_init(a, buf, max);
    while (off < len && st == 0) {
        p = jpki_ocsp_answer_room(a, &room);
        if (room == 0)
            return -2;
        k = len - off < piece ? len - off : piece;
        k = k < room ? k : room;
        memcpy(p, text + off, k);
        off += k;
        st = jpki_ocsp_answer_read(a, k, 0);
    }
    *early = off < len && st == 1;
    if (st == 0 && eof)
        st = jpki_ocsp_answer_read(a, 0, 1);
    return st;
}

static void answer_every_size(const char *what, const char *text, size_t max,
                              int eof, int want, int want_status,
                              const char *want_body, const char *want_reason)
{
    uint8_t *buf = malloc(max);
    jpki_ocsp_answer a;
    size_t piece, len = strlen(text), bad = 0;
    int st, early;

    for (piece = 1; piece <= len; piece++) {
        st = answer_pieces(&a, buf, max, text, piece, eof, &early);
        if (st != want || early
            || (want == 1 && (a.status != want_status
                              || a.body_len != strlen(want_body)
                              || memcmp(a.body, want_body, a.body_len) != 0))
            || (want < 0 && (a.reason == NULL
                             || strcmp(a.reason, want_reason) != 0))) {
            if (bad++ == 0)
                printf("# %s: piece %zu: state %d reason %s\n", what, piece,
                       st, a.reason ? a.reason : "(none)");
        }
    }
    ok(bad == 0, "OCSP: %s, in pieces of every size", what);
    free(buf);
}

static void test_ocsp_answer(void)
{
    answer_every_size("a whole answer with Content-Length",
                      "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nDER!",
                      JPKI_OCSP_ANSWER_MAX, 0, 1, 200, "DER!", NULL);
    answer_every_size("an answer ended by the responder closing",
                      "HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody",
                      JPKI_OCSP_ANSWER_MAX, 1, 1, 200, "body", NULL);
    answer_every_size("an HTTP error",
                      "HTTP/1.0 500 Oops\r\nContent-Length: 0\r\n\r\n",
                      JPKI_OCSP_ANSWER_MAX, 0, 1, 500, "", NULL);
    answer_every_size("no HTTP", "SSH-2.0-OpenSSH\r\n\r\n",
                      JPKI_OCSP_ANSWER_MAX, 0, -1, 0, NULL,
                      "malformed HTTP answer from OCSP responder");
    answer_every_size("cut short of its Content-Length",
                      "HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nDER!",
                      JPKI_OCSP_ANSWER_MAX, 1, -1, 0, NULL,
                      "malformed HTTP answer from OCSP responder");
    answer_every_size("more than the buffer holds",
                      "HTTP/1.0 200 OK\r\nContent-Length: 90\r\n\r\n"
                      "0123456789012345678901234567890123456789",
                      60, 0, -1, 0, NULL, "OCSP response too large");
    {
        uint8_t *buf = malloc(JPKI_OCSP_ANSWER_MAX);
        jpki_ocsp_answer a;
        size_t room, fed = 0;
        uint8_t *p;
        int st = 0;

        jpki_ocsp_answer_init(&a, buf, JPKI_OCSP_ANSWER_MAX);
        while (st == 0 && fed < 2 * JPKI_OCSP_ANSWER_MAX) {
            p = jpki_ocsp_answer_room(&a, &room);
            room = room > 1000 ? 1000 : room;
            memset(p, 'h', room);
            fed += room;
            st = jpki_ocsp_answer_read(&a, room, 0);
        }
        ok(st < 0 && fed <= JPKI_OCSP_HEADER_MAX + 1000,
           "OCSP: headers without end: refused within the header bound");
        free(buf);
    }
}

/* Rounds that go together: their commands in one write, in order, as
 * many as a round carries; each gets its own part of the replies. */
static void test_group(void)
{
    jpki_redis_group *g = jpki_redis_group_new();
    jpki_redis_round *r = jpki_redis_round_new();
    jpki_store_cmd batch[JPKI_STORE_BATCH_MAX];
    jpki_store_result part[JPKI_STORE_BATCH_MAX];
    const jpki_store_cmd *all;
    char replies[64];
    size_t n, k, joined = 0;
    int good;

    ok(g != NULL && r != NULL, "a group of rounds");
    ok(jpki_redis_group_add(g, cmds, 1) && jpki_redis_group_add(g, cmds + 1, 2),
       "a round of 1 command, then one of 2, join");
    all = jpki_redis_group_cmds(g, &n);
    ok(n == 3 && all[0].op == JPKI_STORE_GET && all[1].op == JPKI_STORE_SET
       && all[2].op == JPKI_STORE_INCR, "... their commands in one write, "
       "in order");
    good = jpki_redis_round_start(r, NULL, all, n, jpki_redis_group_res(g))
           == JPKI_OK;
    strcpy(replies, GOOD_REPLIES);
    good = good && jpki_redis_round_feed(r, replies, strlen(replies))
                   == JPKI_ROUND_DONE;
    ok(good, "... one round on one connection");
    memset(part, 0, sizeof(part));
    ok(jpki_redis_group_part(g, 0, part) == 1
       && part[0].type == JPKI_STORE_R_VALUE && part[0].vallen == 5
       && memcmp(part[0].val, "hello", 5) == 0,
       "the first round gets the first reply");
    memset(part, 0, sizeof(part));
    ok(jpki_redis_group_part(g, 1, part) == 2
       && part[0].type == JPKI_STORE_R_INT && part[0].n == 1
       && part[1].type == JPKI_STORE_R_INT && part[1].n == 7,
       "the second its two");
    ok(jpki_redis_group_part(g, 2, part) == 0, "no third round");
    jpki_redis_round_free(r);
    jpki_redis_group_free(g);

    /* as many as a round carries */
    g = jpki_redis_group_new();
    for (k = 0; k < JPKI_STORE_BATCH_MAX; k++)
        batch[k] = cmds[k % 3];
    while (jpki_redis_group_add(g, batch, JPKI_STORE_BATCH_MAX))
        joined++;
    ok(joined == JPKI_REDIS_ROUND_MAX / JPKI_STORE_BATCH_MAX,
       "full batches join until the round is full (%zu)", joined);
    (void)jpki_redis_group_cmds(g, &n);
    ok(n == JPKI_REDIS_ROUND_MAX, "... JPKI_REDIS_ROUND_MAX commands");
    ok(!jpki_redis_group_add(g, batch, 1), "... not even one more");
    jpki_redis_group_free(g);

    g = jpki_redis_group_new();
    ok(!jpki_redis_group_add(g, batch, 0)
       && !jpki_redis_group_add(g, batch, JPKI_STORE_BATCH_MAX + 1),
       "no round of 0 commands, nor of more than a batch");
    (void)jpki_redis_group_cmds(g, &n);
    ok(n == 0, "... nothing joined");
    jpki_redis_group_free(g);
}

int main(void)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

    EVP_PKEY_keygen_init(kc);
    EVP_PKEY_CTX_set_group_name(kc, "P-256");
    EVP_PKEY_generate(kc, &key);
    EVP_PKEY_CTX_free(kc);

    make_cmds();
    test_round_outcomes();
    test_round_errors_stand();
    test_round_too_large();
    test_round_eof_retry_keep();
    test_round_out();
    test_group();
    test_name_check();
    test_tls_handshake();
    test_ocsp_answer();
    EVP_PKEY_free(key);
    return done_testing();
}
