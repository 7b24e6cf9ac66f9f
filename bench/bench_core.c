/* bench_core.c - logins per second through the core's transaction on one
 * core: JSON parse, challenge check, certificate (chain cache warm or cold),
 * signature, single-use store operation, mapping and cached revocation, in
 * the embedded store.  Challenges are issued and signed before timing.
 * Prints "login_per_s <warm> <cold>". */
#include "jpki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#define N 1000           /* signed bodies */
static int rounds = 6;   /* each body used once a round (argv[1]) */

static char pki[512];
static char *path(const char *f)
{
    static char b[4][600];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 600, "%s/%s", pki, f);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static jpki_ctx *make_ctx(unsigned cache)
{
    uint8_t secret[32] = {1};
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is = jpki_ctx_add_issuer(c, "card");
    jpki_issuer_add_certs_file(is, path("ca1.pem"), err, sizeof(err));
    jpki_issuer_add_certs_file(is, path("ca2.pem"), err, sizeof(err));
    jpki_ctx_set_secret(c, secret, sizeof(secret));
    jpki_ctx_policy(c)->chain_cache_size = cache;
    /* one certificate logs in thousands of times: no login limit (its
     * failure counters are still read at every login) */
    jpki_ctx_policy(c)->login_limit_cert = 0;
    if (jpki_ctx_finish(c, err, sizeof(err)) != JPKI_OK) {
        fprintf(stderr, "bench: %s\n", err);
        exit(2);
    }
    return c;
}

static void put(jpki_shm *s, const char *kind, const char *id, const char *v)
{
    jpki_store_cmd c = {0};
    jpki_store_result r;
    c.op = JPKI_STORE_SET;
    c.keylen = (size_t)snprintf(c.key, sizeof(c.key), "jpki:v1:%s:%s", kind,
                                id);
    c.vallen = strlen(v);
    memcpy(c.val, v, c.vallen);
    jpki_shm_exec(s, &c, (int64_t)time(NULL) * 1000, &r);
}

/* One round: every body once; the challenges' single-use records are
 * dropped before the next round (outside the timing). */
static double round1(jpki_ctx *ctx, char **bodies, jpki_shm *shm, int *fails)
{
    double t0;
    int i;

    jpki_shm_delete_prefix(shm, "jpki:v1:ch:", (int64_t)time(NULL) * 1000);
    t0 = now_s();
    for (i = 0; i < N; i++) {
        jpki_txn_request rq = {0};
        jpki_txn *t;
        jpki_step st;
        rq.op = JPKI_OP_LOGIN;
        rq.now = time(NULL);
        rq.is_post = 1;
        rq.wants_json = 1;
        rq.content_type = "application/json";
        rq.content_type_len = 16;
        rq.host = "127.0.0.1:18600";     /* as the gate would see it */
        rq.host_len = 15;
        rq.body = (const uint8_t *)bodies[i];
        rq.body_len = strlen(bodies[i]);
        jpki_txn_new(ctx, &rq, &t);
        while ((st = jpki_txn_step(t)) == JPKI_STEP_STORE) {
            size_t n;
            const jpki_store_cmd *c = jpki_txn_store_cmds(t, &n);
            jpki_store_result r[JPKI_STORE_BATCH_MAX];
            /* as nginx runs a batch in its zone: under one lock */
            jpki_shm_exec_batch(shm, c, n, (int64_t)rq.now * 1000, r);
            jpki_txn_feed_store(t, r, n);
        }
        if (st != JPKI_STEP_DONE || jpki_txn_verdict(t)->http_status != 200)
            (*fails)++;
        jpki_txn_free(t);
    }
    return N / (now_s() - t0);
}

/* Best round of rounds. */
static double run(jpki_ctx *ctx, char **bodies, jpki_shm *shm, int *fails)
{
    double best = 0, r;
    int k;
    for (k = 0; k < rounds; k++) {
        r = round1(ctx, bodies, shm, fails);
        if (r > best)
            best = r;
    }
    return best;
}

static char **make_bodies(jpki_ctx *ctx, EVP_PKEY *key, const char *cert_b64)
{
    char **b = calloc(N, sizeof(char *));
    int i;
    for (i = 0; i < N; i++) {
        char ch[JPKI_CHALLENGE_LEN + 1], sigb64[1024];
        uint8_t sig[512];
        size_t siglen = sizeof(sig);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        jpki_challenge_issue(ctx, time(NULL), "127.0.0.1", 9, ch, NULL);
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key);
        EVP_DigestSign(md, sig, &siglen, (uint8_t *)ch, strlen(ch));
        EVP_MD_CTX_free(md);
        jpki_b64_encode(sig, siglen, sigb64, 0);
        b[i] = malloc(strlen(cert_b64) + 2048);
        sprintf(b[i], "{\"challenge\":\"%s\",\"certificate\":\"%s\","
                "\"signature\":\"%s\"}", ch, cert_b64, sigb64);
    }
    return b;
}

int main(int argc, char **argv)
{
    const char *d = getenv("JPKI_TEST_PKI");
    uint8_t *der;
    size_t derlen;
    char *cert_b64, err[256];
    FILE *f;
    EVP_PKEY *key;
    jpki_ctx *warm, *cold;
    jpki_cert *c;
    char **bw, **bc;
    size_t shm_size = 8u << 20;
    void *mem = calloc(1, shm_size), *h = calloc(1, jpki_shm_handle_size());
    jpki_shm *shm;
    double w, cl;
    int fails = 0;
    char rev[64];

    if (argc > 1 && (rounds = atoi(argv[1])) < 1)
        rounds = 1;
    snprintf(pki, sizeof(pki), "%s", d && *d ? d : "build/pki");
    jpki_load_file(path("user1.der"), 65536, &der, &derlen);
    cert_b64 = malloc(jpki_b64_encoded_len(derlen, 0) + 1);
    jpki_b64_encode(der, derlen, cert_b64, 0);
    f = fopen(path("user1.key"), "r");
    key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    if (key == NULL) {
        fprintf(stderr, "bench: cannot read user1.key\n");
        return 2;
    }
    warm = make_ctx(4096);
    cold = make_ctx(0);
    jpki_shm_init(mem, shm_size, 0);
    shm = jpki_shm_attach(h, mem, shm_size, NULL);
    if (jpki_cert_check(warm, der, derlen, time(NULL), &c, err, sizeof(err))
        != JPKI_OK) {
        fprintf(stderr, "bench: user1 does not check: %s\n", err);
        return 2;
    }
    put(shm, "map", jpki_cert_id_hex(c), "alice");
    snprintf(rev, sizeof(rev), "good|-1|0|%lld|ocsp", (long long)time(NULL));
    put(shm, "rev", jpki_cert_id_hex(c), rev);
    jpki_cert_free(c);
    bw = make_bodies(warm, key, cert_b64);
    bc = make_bodies(cold, key, cert_b64);
    w = run(warm, bw, shm, &fails);
    cl = getenv("JPKI_BENCH_WARM_ONLY") ? 0 : run(cold, bc, shm, &fails);
    if (fails) {
        fprintf(stderr, "bench: %d logins failed\n", fails);
        return 1;
    }
    printf("login_per_s %.0f %.0f\n", w, cl);
    return 0;
}
