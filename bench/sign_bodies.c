/* sign_bodies.c - login bodies for the server benchmarks: issues N
 * challenges with the site's key ring (the secret file the server uses) and
 * signs each with the test user's key, one JSON body per line.
 * usage: sign_bodies SECRET_FILE CA_FILE KEY_FILE CERT_DER N */
#include "jpki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

int main(int argc, char **argv)
{
    char err[256], ch[JPKI_CHALLENGE_LEN + 1], *cert64, sig64[1024];
    uint8_t *der, sig[512];
    size_t derlen, siglen;
    jpki_ctx *ctx;
    EVP_PKEY *key;
    FILE *f;
    long i, n;

    if (argc != 6 || (n = strtol(argv[5], NULL, 10)) < 1) {
        fprintf(stderr, "usage: sign_bodies SECRET CA KEY CERT_DER N\n");
        return 2;
    }
    ctx = jpki_ctx_new();
    if (jpki_ctx_load_secret_file(ctx, argv[1], err, sizeof(err)) != JPKI_OK
        || jpki_issuer_add_certs_file(jpki_ctx_add_issuer(ctx, "x"), argv[2],
                                      err, sizeof(err)) != JPKI_OK
        || jpki_ctx_finish(ctx, err, sizeof(err)) != JPKI_OK) {
        fprintf(stderr, "sign_bodies: %s\n", err);
        return 2;
    }
    f = fopen(argv[3], "r");
    key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (key == NULL || jpki_load_file(argv[4], 65536, &der, &derlen)) {
        fprintf(stderr, "sign_bodies: cannot read key or certificate\n");
        return 2;
    }
    cert64 = malloc(jpki_b64_encoded_len(derlen, 0) + 1);
    jpki_b64_encode(der, derlen, cert64, 0);
    for (i = 0; i < n; i++) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        /* the gate is reached as 127.0.0.1:PORT (wrk's Host) */
        jpki_challenge_issue(ctx, time(NULL), "127.0.0.1", 9, ch, NULL);
        siglen = sizeof(sig);
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1
            || EVP_DigestSign(md, sig, &siglen, (uint8_t *)ch, strlen(ch))
               != 1)
            return 1;
        EVP_MD_CTX_free(md);
        jpki_b64_encode(sig, siglen, sig64, 0);
        printf("{\"challenge\":\"%s\",\"certificate\":\"%s\",\"signature\":"
               "\"%s\"}\n", ch, cert64, sig64);
    }
    return 0;
}
