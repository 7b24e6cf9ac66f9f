/* libctx.c - the OpenSSL library context certificates are parsed and
 * checked in.
 *
 * OpenSSL 3.0 decodes a certificate's public key through a decoder chain
 * it builds anew for every certificate, by walking every decoder and key
 * manager its providers offer (OSSL_DECODER_CTX_new_for_pkey).  With the
 * default provider's full list that walk costs about 75 us: three
 * quarters of a first login's certificate parse, more than four RSA
 * verifications (OpenSSL 3.2 and later cache the chain; 3.0 does not).
 *
 * So certificates are parsed in a library context of our own whose only
 * provider, "jpki-x509", offers the part of the default provider a
 * certificate check uses: the RSA, RSA-PSS, EC, Ed25519 and Ed448 key
 * managers, their SubjectPublicKeyInfo decoders and signatures, and every
 * digest and random generator (cheap to offer: only decoders and key
 * managers are walked per parse).  Its algorithms ARE the
 * default provider's: the same tables, called with the default
 * provider's own context (the technique of OpenSSL's test/filterprov.c),
 * so no algorithm is reimplemented or changed, only hidden.  A key of
 * another type decodes to nothing and is refused as it was before
 * (cert.c: check_key).
 *
 * The context lives while a site context (jpki_ctx) does: the first
 * jpki_ctx_new makes it, the last jpki_ctx_free frees it, so nothing of it
 * outlives a module that a server unloads (Apache unloads its modules at
 * every graceful restart: a context kept for the process would be left
 * behind at each one).  Everything parsed in it belongs to a jpki_ctx and
 * is freed first.  When the default provider is not the one the process
 * uses (a FIPS-only configuration), or the context cannot be made, or no
 * jpki_ctx is alive, jpki_libctx() is NULL and certificates are parsed in
 * the default context: slower, never different.
 */
#include "internal.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/provider.h>

#define KEPT_MAX 32

static const int kept_ops[] = {OSSL_OP_DIGEST, OSSL_OP_RAND,
                               OSSL_OP_KEYMGMT, OSSL_OP_SIGNATURE,
                               OSSL_OP_DECODER};
#define N_OPS (sizeof(kept_ops) / sizeof(kept_ops[0]))

static OSSL_ALGORITHM kept[N_OPS][KEPT_MAX + 1];
static OSSL_PROVIDER *deflt;      /* the default context's, once kept[]
                                     is filled from it */
static OSSL_LIB_CTX *libctx;      /* written under mu, read atomically */
static OSSL_PROVIDER *ours;       /* loaded in libctx */
static unsigned holders;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* Whether "A:B:C" (an algorithm's names) holds one of want[]. */
static int names_hold(const char *names, const char *const *want)
{
    for (; *want != NULL; want++) {
        size_t l = strlen(*want);
        const char *p = names;
        while (p != NULL && *p != '\0') {
            const char *e = strchr(p, ':');
            size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
            if (n == l && strncasecmp(p, *want, l) == 0)
                return 1;
            p = e != NULL ? e + 1 : NULL;
        }
    }
    return 0;
}

static int keep(int op, const OSSL_ALGORITHM *a)
{
    static const char *const keys[] = {"RSA", "RSA-PSS", "EC", "ED25519",
                                       "ED448", NULL};
    static const char *const sigs[] = {"RSA", "ECDSA", "ED25519", "ED448",
                                       NULL};
    switch (op) {
    case OSSL_OP_KEYMGMT:
        return names_hold(a->algorithm_names, keys);
    case OSSL_OP_SIGNATURE:
        return names_hold(a->algorithm_names, sigs);
    case OSSL_OP_DECODER:
        return names_hold(a->algorithm_names, keys)
               && a->property_definition != NULL
               && strstr(a->property_definition,
                         "structure=SubjectPublicKeyInfo") != NULL;
    default:
        return 1;   /* OSSL_OP_DIGEST, OSSL_OP_RAND: all of them */
    }
}

static const OSSL_ALGORITHM *x509_query(void *provctx, int op, int *no_cache)
{
    size_t i;
    (void)provctx;
    *no_cache = 0;
    for (i = 0; i < N_OPS; i++)
        if (kept_ops[i] == op)
            return kept[i];
    return NULL;
}

static const OSSL_DISPATCH x509_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))x509_query},
    {0, NULL}};

static int x509_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(deflt);
    *out = x509_dispatch;
    return *provctx != NULL;
}

/* The tables, filled before the provider is loaded: the default
 * provider's tables are static, so the kept entries stay valid. */
static int fill(void)
{
    size_t i, k;
    for (i = 0; i < N_OPS; i++) {
        int nc = 0;
        const OSSL_ALGORITHM *a = OSSL_PROVIDER_query_operation(
            deflt, kept_ops[i], &nc);
        if (a == NULL || nc)
            return 0;
        for (k = 0; a->algorithm_names != NULL; a++)
            if (keep(kept_ops[i], a)) {
                if (k == KEPT_MAX)
                    return 0;
                kept[i][k++] = *a;
            }
        memset(&kept[i][k], 0, sizeof(kept[i][k]));
    }
    return 1;
}

static OSSL_LIB_CTX *make_libctx(void)
{
    OSSL_LIB_CTX *lc;

    if (deflt == NULL) {
        if (!OSSL_PROVIDER_available(NULL, "default")
            || (deflt = OSSL_PROVIDER_load(NULL, "default")) == NULL)
            return NULL;
        if (!fill()) {
            OSSL_PROVIDER_unload(deflt);
            deflt = NULL;
            return NULL;
        }
    }
    if ((lc = OSSL_LIB_CTX_new()) == NULL)
        return NULL;
    if (OSSL_PROVIDER_add_builtin(lc, "jpki-x509", x509_init) != 1
        || (ours = OSSL_PROVIDER_load(lc, "jpki-x509")) == NULL) {
        OSSL_LIB_CTX_free(lc);
        ERR_clear_error();
        return NULL;
    }
    return lc;
}

void jpki_libctx_hold(void)
{
    pthread_mutex_lock(&mu);
    if (holders++ == 0)
        __atomic_store_n(&libctx, make_libctx(), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&mu);
}

void jpki_libctx_release(void)
{
    pthread_mutex_lock(&mu);
    if (holders > 0 && --holders == 0) {
        OSSL_LIB_CTX *lc = libctx;
        __atomic_store_n(&libctx, NULL, __ATOMIC_RELEASE);
        if (ours != NULL)       /* not when the context was not made */
            OSSL_PROVIDER_unload(ours);
        ours = NULL;
        OSSL_LIB_CTX_free(lc);
    }
    pthread_mutex_unlock(&mu);
}

OSSL_LIB_CTX *jpki_libctx(void)
{
    return __atomic_load_n(&libctx, __ATOMIC_ACQUIRE);
}

X509 *jpki_d2i_x509(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x;

    if (len > LONG_MAX || (x = X509_new_ex(jpki_libctx(), NULL)) == NULL)
        return NULL;
    if (d2i_X509(&x, &p, (long)len) == NULL || p != der + len) {
        X509_free(x);
        return NULL;
    }
    return x;
}
