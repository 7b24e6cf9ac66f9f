/* pki.h - a finished context over the test PKI for the unit tests: issuer
 * "jpki" (ca1.pem, ca2.pem) and issuer "phone" (phone-ca.pem). */
#ifndef JPKI_TEST_PKI_H
#define JPKI_TEST_PKI_H
#include "jpki.h"
#include "tap.h"

#include <openssl/pem.h>

/* tune, when not NULL, sets the policy before jpki_ctx_finish. */
typedef void (*tap_tune_fn)(jpki_policy *p, const void *ud);

__attribute__((unused))
static jpki_ctx *tap_pki_ctx(uint8_t secret_fill, tap_tune_fn tune,
                             const void *ud)
{
    jpki_ctx *ctx = jpki_ctx_new();
    uint8_t secret[32];
    char err[256];
    jpki_issuer *is, *ph;

    memset(secret, secret_fill, sizeof(secret));
    if (ctx == NULL || jpki_ctx_set_secret(ctx, secret, 32) != JPKI_OK)
        return NULL;
    is = jpki_ctx_add_issuer(ctx, "jpki");
    ph = jpki_ctx_add_issuer(ctx, "phone");
    if (is == NULL || ph == NULL ||
        jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err,
                                   sizeof(err)) != JPKI_OK ||
        jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err,
                                   sizeof(err)) != JPKI_OK ||
        jpki_issuer_add_certs_file(ph, tap_path("phone-ca.pem"), err,
                                   sizeof(err)) != JPKI_OK) {
        jpki_ctx_free(ctx);
        return NULL;
    }
    if (tune != NULL)
        tune(jpki_ctx_policy(ctx), ud);
    if (jpki_ctx_finish(ctx, err, sizeof(err)) != JPKI_OK) {
        printf("# finish: %s\n", err);
        jpki_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}
/* A PEM certificate or private key of the test PKI (NULL: none). */
__attribute__((unused))
static void *tap_pem_read(const char *name, int key)
{
    FILE *f = fopen(tap_path(name), "r");
    void *x = NULL;

    if (f != NULL)
        x = key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
                : (void *)PEM_read_X509(f, NULL, NULL, NULL);
    if (f != NULL)
        fclose(f);
    return x;
}

/* The output of the shell command cmd (at most size - 1 bytes) in out. */
__attribute__((unused))
static char *tap_popen_read(const char *cmd, char *out, size_t size)
{
    FILE *f = popen(cmd, "r");
    size_t n = f != NULL ? fread(out, 1, size - 1, f) : 0;

    if (f != NULL)
        pclose(f);
    out[n] = '\0';
    return out;
}

/* The challenge ch signed with the PKI key file key and digest dgst
 * ("sha256"), base64 (openssl CLI). */
__attribute__((unused))
static char *tap_sign_b64(const char *ch, const char *key, const char *dgst)
{
    static char out[4096];
    char cmd[2048];

    snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | openssl dgst -%s -sign %s"
             " | base64 -w0", ch, dgst, tap_path(key));
    return tap_popen_read(cmd, out, sizeof(out));
}

/* The DER of the PKI certificate name (NAME.pem is read as NAME.der),
 * base64. */
__attribute__((unused))
static char *tap_file_b64(const char *name)
{
    static char out[8192];
    char cmd[1024], der[256], *dot;

    snprintf(der, sizeof(der), "%s", name);
    dot = strstr(der, ".pem");
    if (dot)
        memcpy(dot, ".der", 4);
    snprintf(cmd, sizeof(cmd), "base64 -w0 %s", tap_path(der));
    return tap_popen_read(cmd, out, sizeof(out));
}
/* rq: a JSON login POST of body (a NUL-terminated string) at now, from
 * 127.0.0.1; the rest of rq is left as it is. */
__attribute__((unused))
static void tap_json_login(jpki_txn_request *rq, time_t now, const char *body)
{
    rq->op = JPKI_OP_LOGIN;
    rq->now = now;
    rq->is_post = 1;
    rq->wants_json = 1;
    rq->content_type = "application/json";
    rq->content_type_len = strlen(rq->content_type);
    rq->body = (const uint8_t *)body;
    rq->body_len = strlen(body);
    rq->peer = "127.0.0.1";
}
#endif
