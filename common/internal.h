/*
 * internal.h - structures shared by the files of common/.  Not for adapters:
 * they include jpki.h only.
 */
#ifndef JPKI_INTERNAL_H
#define JPKI_INTERNAL_H

#include "jpki.h"

#include <pthread.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define JPKI_MAX_KEYS    8
#define JPKI_CRL_PTR_SLOTS (JPKI_MAX_ISSUERS * 4)  /* CRL pointers cached */
#define JPKI_CRL_PTR_LIST  24     /* >= JPKI_CRL_LIST_MAX (crlptr.h) */
#define JPKI_NAME_MAX    63

struct jpki_issuer {
    char name[JPKI_NAME_MAX + 1];
    char tag[17];                 /* hex of SHA-256 over anchor key hashes */
    STACK_OF(X509) *anchors;      /* self-signed: trusted */
    STACK_OF(X509) *links;        /* link certificates: untrusted */
    STACK_OF(X509) *all;          /* anchors + links (key lookup) */
    X509_STORE *store;            /* anchors, built by jpki_ctx_finish */
    char *policy_oid;             /* NULL: none required */
    ASN1_OBJECT *policy;
    char *ocsp_url;
    char *crl_source;
    /* jpki_cert_id_from_serial_text(ctx, is, "1"), made at finish: `crl
     * sync` stores the same value in crlinfo, and a list whose value
     * differs was loaded with another secret or other CA files (no lookup
     * in it can match: "not listed" would read as good) */
    char id_check[JPKI_CERT_ID_HEX_LEN + 1];
    /* the Redis CRL list name (crlptr.h) of each CA key (SHA-1 key hash),
     * made at finish: a lookup does not hash them again */
    struct {
        uint8_t kh[20];
        char list[21];            /* JPKI_CRL_LIST_MAX (crlptr.h) */
    } lists[16];
    size_t n_lists;
    struct jpki_ctx *ctx;
};
/* The CRL list name of issuer is's key kh into out (JPKI_CRL_LIST_MAX):
 * made at finish, or now for a key it did not list; -1: none. */
int jpki_issuer_crl_list(const struct jpki_issuer *is, const uint8_t kh[20],
                         char *out, size_t outlen);

typedef struct {
    unsigned id;
    uint8_t challenge_key[32];    /* HKDF(key, "jpki challenge v1") */
    uint8_t session_key[32];      /* HKDF(key, "jpki session v1") */
} jpki_ring_key;

typedef struct jpki_chain_cache jpki_chain_cache;

/* A slot of the audit-line rate limiter (guard.c). */
#define JPKI_AUDIT_SLOTS 512
typedef struct {
    uint64_t h;                   /* 0: free */
    int64_t window;               /* start of the current minute */
    unsigned lines, suppressed;
    char kind[8];
    char id[68];
} jpki_audit_slot;

struct jpki_ctx {
    struct jpki_issuer *issuers[JPKI_MAX_ISSUERS];
    size_t n_issuers;
    uint8_t secret[JPKI_SECRET_MAX];
    size_t secret_len;
    jpki_ring_key keys[JPKI_MAX_KEYS];
    size_t n_keys;
    size_t current_key;           /* index into keys */
    jpki_policy policy;
    jpki_log_fn log;
    void *log_ud;
    int finished;
    jpki_chain_cache *cache;
    /* CRL pointers read from the store, per list (a CA key of an issuer,
     * crlptr.h), kept crl_pointer_ttl seconds so that a CRL check is one
     * HGET (txn_rev.c) */
    pthread_mutex_t crl_mu;
    struct {
        char list[JPKI_CRL_PTR_LIST];     /* "": a free slot */
        char meta[JPKI_STORE_VAL_MAX + 1];
        int64_t at;
    } crl_ptr[JPKI_CRL_PTR_SLOTS];
    /* SipHash keys of account ids (guard.c), from the secret at finish */
    uint8_t account_key[32];
    /* refusal audit lines written per cert_id and address (guard.c) */
    pthread_mutex_t audit_mu;
    jpki_audit_slot audit[JPKI_AUDIT_SLOTS];
    /* the server's shared area (shared.h; NULL: none) and the adapter's
     * lock across processes over it */
    struct jpki_shared *shared;
    jpki_shm_lock shared_lock;
    /* each issuer's metrics slot + 1 in the shared area (metrics.c), 0:
     * none */
    int16_t metrics_slot[JPKI_MAX_ISSUERS];
    /* store replicas=: WAIT for them after a challenge used or a logout
     * marker written (txn_cmd_wait) */
    unsigned replicas;
    uint32_t replicas_wait_ms;
};

struct jpki_cert {
    X509 *x509;
    EVP_PKEY *pkey;               /* leaf public key (owned reference) */
    const struct jpki_issuer *issuer;
    X509 *issuer_cert;            /* the CA certificate that signed the leaf */
    uint8_t issuer_key_hash[20];  /* SHA-1 of issuer_cert's public key */
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    time_t not_after;             /* earliest notAfter along the path */
    int cached;
};

/* A CRL index (crl.c): its entries sorted by cert_id, 24 bytes each;
 * crlzone.c copies them into a zone and looks them up there. */
typedef struct {
    uint8_t id[JPKI_CERT_ID_LEN];
    uint32_t at;               /* revocation date, seconds (to 2106) */
    int8_t reason;
} ix_entry;

struct jpki_crl_index {
    jpki_crl_info info;
    ix_entry *e;
    size_t n, cap;
    unsigned skew, good_ttl, hold_ttl, revoked_ttl;
};

/* Logging (printf-like; never pass serials, keys or secrets). */
void jpki_log(const jpki_ctx *ctx, jpki_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes a sentence into errbuf when errbuf != NULL. */
void jpki_set_detail(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ASN1_TIME -> seconds since the epoch; -1 on error. */
int64_t jpki_asn1_time_to_epoch(const ASN1_TIME *t);
/* SHA-1 of the subjectPublicKey BIT STRING contents of x (OCSP key hash). */
int jpki_key_hash_sha1(X509 *x, uint8_t out[20]);
/* Issuer of ctx whose CA certificates hold a key that verifies a structure:
 * the CA certificates with SKI == aki (all when aki is NULL; those without
 * an SKI too), each key tried with fn.  Used by CRL and cert path code.
 * fn NULL: the one key the AKI allows, not tried (it is the key that signed
 * the structure if any did): NULL when there is no AKI, no such key, or
 * more than one to choose between (two keys, or one key of two issuers). */
typedef int (*jpki_key_try_fn)(void *ud, EVP_PKEY *key);
const struct jpki_issuer *jpki_find_issuer_by_key(const jpki_ctx *ctx,
        const ASN1_OCTET_STRING *aki, jpki_key_try_fn fn, void *ud,
        X509 **ca_out);
/* Digests fetched once per process (util.c). */
typedef enum { JPKI_MD_SHA1 = 0, JPKI_MD_SHA256, JPKI_MD_SHA384,
               JPKI_MD_SHA512 } jpki_md_id;
const EVP_MD *jpki_md(jpki_md_id id);

/* libctx.c: the library context certificates are parsed and checked in
 * (NULL: the default one), held by each jpki_ctx from its _new to its
 * _free; a certificate parsed in it from exactly len bytes of DER, or
 * NULL. */
void jpki_libctx_hold(void);
void jpki_libctx_release(void);
OSSL_LIB_CTX *jpki_libctx(void);
X509 *jpki_d2i_x509(const uint8_t *der, size_t len);
const EVP_CIPHER *jpki_aes256gcm(void);
EVP_CIPHER_CTX *jpki_cipher_ctx(void);     /* per thread, reused */
/* HKDF-SHA256 (RFC 5869) with empty salt. */
int jpki_hkdf(const uint8_t *key, size_t keylen, const char *info,
              uint8_t *out, size_t outlen);
int jpki_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *a,
                     size_t alen, const uint8_t *b, size_t blen,
                     uint8_t out[32]);
int jpki_random(uint8_t *buf, size_t len);
/* 8 bytes big-endian (session.c). */
void jpki_put64(uint8_t *p, int64_t v);
int64_t jpki_get64(const uint8_t *p);
/* AES-256-GCM of in (inlen bytes) into out under key and iv with aad:
 * enc 1 writes tag, enc 0 checks it.  1 on success (session.c). */
int jpki_gcm(int enc, const uint8_t key[32], const uint8_t iv[12],
             const uint8_t *aad, size_t aadlen, const uint8_t *in,
             size_t inlen, uint8_t *out, uint8_t tag[16]);
/* SipHash-2-4 of in under the 16-byte key k (util.c). */
uint64_t jpki_siphash24(const uint8_t k[16], const uint8_t *in, size_t len);
/* SipHash-2-4-128 (the reference's 16-octet output) of in (util.c). */
void jpki_siphash24_128(const uint8_t k[16], const uint8_t *in, size_t len,
                        uint8_t out[16]);
/* The same of n messages at once (a CRL's entries: crl.c), out n * 16
 * octets: with AVX-512 eight at a time, one message a lane (SipHash's
 * rounds are a chain of dependent steps a core runs one at a time);
 * otherwise one after the other.  The same digests either way. */
#define JPKI_SIP_LANES 8
void jpki_siphash24_128_n(const uint8_t k[16], const uint8_t *const *in,
                          const size_t *len, size_t n, uint8_t *out);

/* Verified-chain cache (cert.c). */
jpki_chain_cache *jpki_chain_cache_new(size_t n);
void jpki_chain_cache_free(jpki_chain_cache *c);



/* The numeric ranges of jpki_policy_check (ctx.c), checked per request;
 * the string settings are checked once, at configuration. */
int jpki_policy_ranges_ok(const jpki_policy *p);

/* guard.c: the keys of account ids, derived from the site secret. */
int jpki_account_key(const jpki_ctx *ctx, uint8_t key[32]);
/* guard.c: the throttle's name of a client address (16 hex chars); 0
 * when peer is not an address. */
int jpki_peer_id(const jpki_ctx *ctx, const char *peer, char out[17]);
/* The key of a throttle counter; 0 when it does not fit. */
size_t jpki_throttle_key(char *out, size_t max, const char *kind,
                         const char *id, int64_t window_no);
/* 0 when the sliding count of cur (window now / win) and prev (the window
 * before) is under limit, else the seconds until it is (Retry-After). */
unsigned jpki_throttle_over(uint64_t cur, uint64_t prev, int64_t now,
                            unsigned win, unsigned limit);
/* Whether a refusal's audit line for cert_id and peer (either may be NULL)
 * is written (1) or left out and counted (0): at most a limit per window
 * of seconds and key (at least 10; a limit of 0: that key is not limited);
 * *suppressed: the lines left out before this one, to be reported in it. */
int jpki_audit_admit(const jpki_ctx *ctx, const char *cert_id,
                     unsigned cert_limit, const char *peer,
                     unsigned peer_limit, unsigned window, int64_t now,
                     unsigned *suppressed);

/* Validates a store command: key prefix, characters, lengths (store.c). */
jpki_err jpki_store_cmd_check(const jpki_store_cmd *cmd);
/* The bytes a RESP reader holds that no reply has taken yet (store.c):
 * after a round's last reply, anything is out of step. */
size_t jpki_resp_reader_pending(const jpki_resp_reader *r);
/* 1 once a reply was -READONLY (the server is a replica). */
int jpki_resp_reader_readonly(const jpki_resp_reader *r);
/* The next reply as ROLE's answer (sentinel.h: jpki_role_answer, an array
 * taken here): 1 role filled ("master"...; "-<error>"), 0 more bytes
 * needed, -1 malformed (the reader failed). */
int jpki_resp_reader_role(jpki_resp_reader *r, char *role, size_t rolelen);

/* Revocation reference of a checked certificate, and back (cert.c). */
jpki_err jpki_cert_ref(const jpki_cert *c, uint8_t *ref, size_t max,
                       size_t *len);
jpki_err jpki_cert_from_ref(const jpki_ctx *ctx, const uint8_t *ref,
                            size_t len, jpki_cert **out);
#endif
