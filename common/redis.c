/* redis.c - a Redis round for both adapters (which own the sockets): the
 * bytes to send (the AUTH/SELECT prelude on a new connection, then the
 * commands pipelined), the replies counted as they are fed (the prelude's
 * must each be OK, then one per command, nothing beyond), and when the
 * connection may be kept or the round tried again; and the TLS peer's
 * name check. */
#include "redis.h"
#include "gate.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* fed to the reader in pieces of at most this much, each piece's replies
 * taken before the next: what the caller read at once may hold many */
#define ROUND_PIECE 4096
#define ROLE_CMD "*1\r\n$4\r\nROLE\r\n"

struct jpki_redis_round {
    jpki_resp_reader *rd;
    const jpki_store_cmd *cmds;
    jpki_store_result *res;
    size_t n;
    size_t got;                 /* command replies read */
    unsigned prelude;           /* AUTH/SELECT replies still due */
    int role_due;               /* ROLE's reply due after them */
    size_t held;                /* out[held..out_len): the commands, sent
                                   once ROLE said "master" (0: none held) */
    int cmds_out;               /* the commands' bytes were handed out */
    int not_primary;            /* ROLE was not "master", or -READONLY */
    char role_why[128];
    size_t received;            /* bytes fed in this round */
    jpki_round_state state;
    int unkept;                 /* out of step, or closed: not kept */
    int clean;                  /* the reader holds nothing: reusable */
    const char *reason;
    char *out;
    size_t out_len, out_max;
    int secret;                 /* out has held a password: wiped */
};

jpki_redis_round *jpki_redis_round_new(void)
{
    jpki_redis_round *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->rd = jpki_resp_reader_new();
    if (r->rd == NULL) {
        free(r);
        return NULL;
    }
    r->clean = 1;
    return r;
}

void jpki_redis_round_free(jpki_redis_round *r)
{
    if (r == NULL)
        return;
    jpki_resp_reader_free(r->rd);
    OPENSSL_clear_free(r->out, r->out_max);
    free(r);
}

/* Room for need more bytes in out (the old buffer wiped: it may hold a
 * password). */
static int out_room(jpki_redis_round *r, size_t need)
{
    size_t want = r->out_len + need;
    char *p;

    if (want <= r->out_max)
        return 1;
    if (want < 2 * r->out_max)
        want = 2 * r->out_max;
    p = malloc(want);
    if (p == NULL)
        return 0;
    if (r->out_len > 0)
        memcpy(p, r->out, r->out_len);
    OPENSSL_clear_free(r->out, r->out_max);
    r->out = p;
    r->out_max = want;
    return 1;
}

/* The prelude (auth not NULL) and the commands in r->out. */
static jpki_err round_encode(jpki_redis_round *r, const jpki_redis_auth *auth,
                             const jpki_store_cmd *cmds, size_t n)
{
    size_t i, len, max;
    char *resp;

    if (r->secret)
        OPENSSL_cleanse(r->out, r->out_max);
    r->secret = auth != NULL && auth->password != NULL;
    r->out_len = 0;
    r->prelude = 0;
    r->role_due = 0;
    r->held = 0;
    if (auth != NULL) {
        max = jpki_redis_prelude_size(auth->user, auth->password);
        if (!out_room(r, max))
            return JPKI_ERR_NOMEM;
        r->out_len = jpki_redis_prelude(auth->user, auth->password, auth->db,
                                        r->out, max, &r->prelude);
        if (auth->role) {
            if (!out_room(r, sizeof(ROLE_CMD) - 1))
                return JPKI_ERR_NOMEM;
            memcpy(r->out + r->out_len, ROLE_CMD, sizeof(ROLE_CMD) - 1);
            r->out_len += sizeof(ROLE_CMD) - 1;
            r->role_due = 1;
            r->held = r->out_len;
        }
    }
    for (i = 0; i < n; i++) {
        if (jpki_store_cmd_to_resp(&cmds[i], &resp, &len) != JPKI_OK)
            return JPKI_ERR_INVALID;
        if (!out_room(r, len)) {
            free(resp);
            return JPKI_ERR_NOMEM;
        }
        memcpy(r->out + r->out_len, resp, len);
        r->out_len += len;
        free(resp);
    }
    return JPKI_OK;
}

jpki_err jpki_redis_round_start(jpki_redis_round *r,
                                const jpki_redis_auth *auth,
                                const jpki_store_cmd *cmds, size_t n,
                                jpki_store_result *res)
{
    jpki_err e;

    if (r == NULL || cmds == NULL || res == NULL || n == 0
        || n > JPKI_REDIS_ROUND_MAX)
        return JPKI_ERR_INVALID;
    if (!r->clean) {
        /* a round that ended otherwise left bytes or a failure behind */
        jpki_resp_reader_free(r->rd);
        r->rd = jpki_resp_reader_new();
        if (r->rd == NULL)
            return JPKI_ERR_NOMEM;
    }
    r->cmds = cmds;
    r->res = res;
    r->n = n;
    r->got = 0;
    r->received = 0;
    r->state = JPKI_ROUND_MORE;
    r->unkept = 0;
    r->clean = 0;
    r->reason = NULL;
    r->not_primary = 0;
    r->cmds_out = 0;
    e = round_encode(r, auth, cmds, n);
    if (e != JPKI_OK)
        r->state = JPKI_ROUND_FAILED;
    return e;
}

const char *jpki_redis_round_out(jpki_redis_round *r, size_t *len)
{
    *len = r->held > 0 ? r->held : r->out_len;
    r->cmds_out = r->held == 0;
    return r->out;
}

const char *jpki_redis_round_more_out(jpki_redis_round *r, size_t *len)
{
    *len = 0;
    if (r->held == 0 || r->role_due || r->state != JPKI_ROUND_MORE)
        return NULL;
    *len = r->out_len - r->held;
    r->held = 0;
    r->cmds_out = 1;
    return r->out + r->out_len - *len;
}

int jpki_redis_round_cmds_out(const jpki_redis_round *r)
{
    return r != NULL && r->cmds_out;
}

static jpki_round_state round_fail(jpki_redis_round *r, const char *reason)
{
    r->state = JPKI_ROUND_FAILED;
    r->reason = reason;
    return r->state;
}

/* ROLE did not say "master": a replica (or a sentinel), or ROLE refused
 * (an ACL without +role). */
static jpki_round_state role_refused(jpki_redis_round *r, const char *role)
{
    if (role[0] == '-') {
        snprintf(r->role_why, sizeof(r->role_why), "ROLE refused (the "
                 "user needs +role): %.60s", role + 1);
    } else {
        r->not_primary = 1;
        snprintf(r->role_why, sizeof(r->role_why), "is not the primary "
                 "(ROLE: %.20s): asking the sentinels again", role);
    }
    return round_fail(r, r->role_why);
}

/* Every complete reply fed so far: the prelude's, then the commands'. */
static jpki_round_state round_take(jpki_redis_round *r)
{
    char role[80];
    jpki_store_cmd ok_cmd;
    jpki_store_result pr;
    int next;

    memset(&ok_cmd, 0, sizeof(ok_cmd));
    ok_cmd.op = JPKI_STORE_SET;               /* "+OK" reads as R_INT */
    for (;;) {
        if (r->prelude > 0) {
            next = jpki_resp_reader_next(r->rd, &ok_cmd, &pr);
            if (next == 1 && pr.type != JPKI_STORE_R_INT)
                return round_fail(r, "AUTH or SELECT refused");
            if (next == 1) {
                r->prelude--;
                continue;
            }
        } else if (r->role_due) {
            next = jpki_resp_reader_role(r->rd, role, sizeof(role));
            if (next == 1 && strcmp(role, "master") != 0)
                return role_refused(r, role);
            if (next == 1) {
                r->role_due = 0;
                /* the commands go now (jpki_redis_round_more_out) */
                if (r->held > 0)
                    return JPKI_ROUND_MORE;
                continue;
            }
        } else if (r->got < r->n) {
            next = jpki_resp_reader_next(r->rd, &r->cmds[r->got],
                                         &r->res[r->got]);
            if (next == 1 && jpki_resp_reader_readonly(r->rd)
                && !r->not_primary) {
                r->not_primary = 1;
                r->unkept = 1;
                r->reason = "is not the primary (-READONLY): asking the "
                            "sentinels again";
            }
            if (next == 1) {
                r->got++;
                continue;
            }
        } else {
            r->state = JPKI_ROUND_DONE;
            if (jpki_resp_reader_pending(r->rd) > 0) {
                r->unkept = 1;
                r->reason = "sent more replies than asked";
            } else {
                r->clean = 1;
            }
            return r->state;
        }
        if (next < 0)
            return round_fail(r, "protocol error");
        return JPKI_ROUND_MORE;
    }
}

jpki_round_state jpki_redis_round_feed(jpki_redis_round *r, const char *buf,
                                       size_t len)
{
    size_t piece;

    if (r->state == JPKI_ROUND_FAILED)
        return r->state;
    r->received += len;
    if (r->state == JPKI_ROUND_DONE) {
        if (len > 0) {
            r->unkept = 1;
            r->clean = 0;
            r->reason = "sent more replies than asked";
        }
        return r->state;
    }
    while (len > 0) {
        piece = len < ROUND_PIECE ? len : ROUND_PIECE;
        if (jpki_resp_reader_feed(r->rd, buf, piece) != JPKI_OK)
            return round_fail(r, "reply too large");
        buf += piece;
        len -= piece;
        if (round_take(r) != JPKI_ROUND_MORE) {
            if (r->state == JPKI_ROUND_DONE && len > 0) {
                r->unkept = 1;
                r->clean = 0;
                r->reason = "sent more replies than asked";
            }
            return r->state;
        }
    }
    return r->state;
}

jpki_round_state jpki_redis_round_eof(jpki_redis_round *r)
{
    if (r->state == JPKI_ROUND_DONE) {
        r->unkept = 1;
        return r->state;
    }
    if (r->state == JPKI_ROUND_FAILED)
        return r->state;
    return round_fail(r, "closed the connection");
}

const char *jpki_redis_round_reason(const jpki_redis_round *r)
{
    return r->reason;
}

int jpki_redis_round_not_primary(const jpki_redis_round *r)
{
    return r != NULL && r->not_primary;
}

int jpki_redis_round_keep(const jpki_redis_round *r)
{
    return r->state == JPKI_ROUND_DONE && !r->unkept;
}

int jpki_redis_round_retry(const jpki_redis_round *r, int pooled,
                           unsigned tries)
{
    return pooled && tries == 0 && r->received == 0
           && r->state != JPKI_ROUND_DONE;
}

/* ---- rounds that go together -------------------------------------- */

struct jpki_redis_group {
    size_t n;                   /* commands in all */
    size_t rounds;
    size_t size[JPKI_REDIS_ROUND_MAX];      /* each round's commands */
    jpki_store_cmd cmds[JPKI_REDIS_ROUND_MAX];
    jpki_store_result res[JPKI_REDIS_ROUND_MAX];
};

jpki_redis_group *jpki_redis_group_new(void)
{
    jpki_redis_group *g = malloc(sizeof(*g));

    if (g != NULL) {
        g->n = 0;
        g->rounds = 0;
    }
    return g;
}

void jpki_redis_group_free(jpki_redis_group *g)
{
    free(g);
}

int jpki_redis_group_add(jpki_redis_group *g, const jpki_store_cmd *cmds,
                         size_t n)
{
    if (n == 0 || n > JPKI_STORE_BATCH_MAX || g->n + n > JPKI_REDIS_ROUND_MAX)
        return 0;
    memcpy(g->cmds + g->n, cmds, n * sizeof(*cmds));
    g->size[g->rounds++] = n;
    g->n += n;
    return 1;
}

const jpki_store_cmd *jpki_redis_group_cmds(const jpki_redis_group *g,
                                            size_t *n)
{
    *n = g->n;
    return g->cmds;
}

jpki_store_result *jpki_redis_group_res(jpki_redis_group *g)
{
    return g->res;
}

size_t jpki_redis_group_part(const jpki_redis_group *g, size_t k,
                             jpki_store_result *res)
{
    size_t i, off = 0;

    if (k >= g->rounds)
        return 0;
    for (i = 0; i < k; i++)
        off += g->size[i];
    memcpy(res, g->res + off, g->size[k] * sizeof(*res));
    return g->size[k];
}

void jpki_store_results_error(jpki_store_result *res, size_t n)
{
    size_t i;

    memset(res, 0, n * sizeof(jpki_store_result));
    for (i = 0; i < n; i++)
        res[i].type = JPKI_STORE_R_ERROR;
}

/* ------------------------------------------------------------------ */
/* TLS peer name                                                       */
/* ------------------------------------------------------------------ */

static int is_ip_address(const char *name)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

    if (ip == NULL) {
        ERR_clear_error();
        return 0;
    }
    ASN1_OCTET_STRING_free(ip);
    return 1;
}

void jpki_tls_set_server_name(SSL *ssl, const char *name)
{
    if (ssl != NULL && name != NULL && name[0] != '\0'
        && !is_ip_address(name))
        (void)SSL_set_tlsext_host_name(ssl, name);
}

int jpki_x509_names_host(X509 *cert, const char *name)
{
    int ok;

    if (cert == NULL || name == NULL || name[0] == '\0')
        return 0;
    ok = X509_check_ip_asc(cert, name, 0);
    if (ok == -2)                               /* not an IP address */
        ok = X509_check_host(cert, name, strlen(name), 0, NULL);
    ERR_clear_error();
    return ok == 1;
}

int jpki_tls_peer_named(SSL *ssl, const char *name)
{
    X509 *cert;
    int ok;

    if (ssl == NULL)
        return 0;
    cert = SSL_get1_peer_certificate(ssl);
    ok = jpki_x509_names_host(cert, name);
    X509_free(cert);
    return ok;
}

const char *jpki_tls_peer_check(SSL *ssl, const char *name, char *buf,
                                size_t max)
{
    long v = ssl != NULL ? SSL_get_verify_result(ssl)
                         : X509_V_ERR_UNSPECIFIED;

    if (v != X509_V_OK) {
        snprintf(buf, max, "server certificate refused: %s",
                 X509_verify_cert_error_string(v));
        return buf;
    }
    if (!jpki_tls_peer_named(ssl, name)) {
        snprintf(buf, max, "server certificate does not name \"%s\"",
                 name != NULL ? name : "");
        return buf;
    }
    return NULL;
}

jpki_err jpki_tls_client_ctx(const char *ca, SSL_CTX **out, char *err,
                             size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    *out = NULL;
    if (ctx == NULL) {
        ERR_clear_error();
        jpki_set_detail(err, errlen, "cannot create a TLS context");
        return JPKI_ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* checked after the handshake (jpki_tls_peer_check), as nginx's
     * proxy_ssl_verify does: the result and the name are logged then */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        jpki_set_detail(err, errlen, "cannot load tls_ca \"%.512s\" (PEM CA "
                        "certificates)", ca);
        return JPKI_ERR_INVALID;
    }
    *out = ctx;
    return JPKI_OK;
}

/* An encrypted key is refused, never asked for on a terminal. */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
    (void)buf;
    (void)size;
    (void)rw;
    (void)u;
    return 0;
}

jpki_err jpki_tls_client_cert(SSL_CTX *ctx, const char *cert,
                              const char *key, char *err, size_t errlen)
{
    const char *why = NULL, *file = key, *hint = "";
    EVP_PKEY *pk = NULL;
    BIO *b = NULL;

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        why = "cannot load tls_cert";
        file = cert;
        hint = " (PEM certificate, then its chain)";
    } else if ((b = BIO_new_file(key, "r")) == NULL
               || (pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase,
                                                NULL)) == NULL) {
        why = "cannot load tls_key";
        hint = " (PEM key, not encrypted)";
    } else if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pk)
                   != 1
               || SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
        why = "tls_key is not the key of tls_cert:";
    }
    EVP_PKEY_free(pk);
    BIO_free(b);
    ERR_clear_error();
    if (why == NULL)
        return JPKI_OK;
    jpki_set_detail(err, errlen, "%s \"%.512s\"%s", why, file, hint);
    return JPKI_ERR_INVALID;
}

int jpki_tls_hello_hold12(SSL *s, int *al, void *arg)
{
    const unsigned char *v;
    size_t len, i;

    (void)al;
    (void)arg;
    /* without supported_versions the client speaks TLS 1.2 at most */
    if (!SSL_client_hello_get0_ext(s, TLSEXT_TYPE_supported_versions, &v,
                                   &len)
        || len < 3 || v[0] != len - 1)
        return SSL_CLIENT_HELLO_SUCCESS;
    for (i = 1; i + 1 < len; i += 2)
        if (v[i] == 0x03 && v[i + 1] == 0x03) {
            SSL_set_max_proto_version(s, TLS1_2_VERSION);
            break;
        }
    return SSL_CLIENT_HELLO_SUCCESS;
}
