/*
 * jpki.h - the one public header of libjpki, the shared core of the JPKI
 * (My Number Card) login gate for nginx and Apache httpd.
 *
 * libjpki holds all JPKI logic and no web-server code: no server headers,
 * no sockets, no file I/O on the request path (files are read only by the
 * explicit *_load_file() helpers, at configuration time).  Adapters include
 * this header and nothing else from common/.
 *
 * Conventions
 *  - Functions return jpki_err (JPKI_OK == 0) unless said otherwise.
 *  - Every (pointer, length) input is bounded by the length given; no input
 *    needs to be NUL-terminated unless the parameter is a "const char *" with
 *    no length.
 *  - A certificate serial number never leaves the library in clear: outside,
 *    a certificate is named by its cert_id (jpki_cert_id_*).
 *  - Objects are not thread-safe unless said; a configured jpki_ctx is
 *    read-only after jpki_ctx_finish() and may be shared by threads (its
 *    internal verified-chain cache has its own lock).
 */
#ifndef JPKI_H
#define JPKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JPKI_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

typedef enum {
    JPKI_OK = 0,
    /* generic */
    JPKI_ERR_NOMEM,
    JPKI_ERR_INVALID,          /* bad argument or configuration */
    JPKI_ERR_PARSE,            /* malformed input */
    JPKI_ERR_TOO_LARGE,        /* input over a fixed bound */
    JPKI_ERR_INTERNAL,
    /* certificate */
    JPKI_ERR_CERT_PARSE,
    JPKI_ERR_CERT_UNKNOWN_ISSUER,
    JPKI_ERR_CERT_CHAIN,       /* path to an anchor fails (bad signature...) */
    JPKI_ERR_CERT_EXPIRED,
    JPKI_ERR_CERT_NOT_YET_VALID,
    JPKI_ERR_CERT_IS_CA,
    JPKI_ERR_CERT_KEY_USAGE,
    JPKI_ERR_CERT_POLICY,
    JPKI_ERR_CERT_KEY,         /* key type or size not allowed */
    JPKI_ERR_CERT_SIG_ALG,     /* a certificate of the path is signed with a
                                  digest weaker than SHA-256, or its
                                  issuer's key is too weak */
    /* signature */
    JPKI_ERR_SIG_ALG,          /* algorithm unknown, disabled or wrong key */
    JPKI_ERR_SIG_INVALID,
    /* challenge */
    JPKI_ERR_CHALLENGE_FORMAT,
    JPKI_ERR_CHALLENGE_KEY,    /* MAC key id not in the key ring */
    JPKI_ERR_CHALLENGE_MAC,
    JPKI_ERR_CHALLENGE_EXPIRED,
    JPKI_ERR_CHALLENGE_REPLAY,
    JPKI_ERR_CHALLENGE_HOST,   /* issued for another host than the login's */
    JPKI_ERR_BAD_HOST,         /* no valid Host to bind a challenge to */
    /* OCSP */
    JPKI_ERR_OCSP_PARSE,
    JPKI_ERR_OCSP_STATUS,      /* responseStatus other than successful */
    JPKI_ERR_OCSP_SIGNER,      /* not signed by the CA or a delegated signer */
    JPKI_ERR_OCSP_SIGNATURE,
    JPKI_ERR_OCSP_NO_ANSWER,   /* no SingleResponse for our CertID */
    JPKI_ERR_OCSP_NONCE,
    JPKI_ERR_OCSP_STALE,       /* thisUpdate/nextUpdate out of the window */
    /* CRL */
    JPKI_ERR_CRL_PARSE,
    JPKI_ERR_CRL_ISSUER,       /* not from a configured issuer */
    JPKI_ERR_CRL_SIGNATURE,
    JPKI_ERR_CRL_STALE,
    JPKI_ERR_CRL_NOT_YET_VALID,
    /* revocation verdicts */
    JPKI_ERR_REVOKED,
    JPKI_ERR_ON_HOLD,
    JPKI_ERR_REVOCATION_UNKNOWN,     /* responder says "unknown" */
    JPKI_ERR_REVOCATION_UNAVAILABLE, /* no fresh revocation data at all */
    /* session */
    JPKI_ERR_SESSION_FORMAT,
    JPKI_ERR_SESSION_KEY,
    JPKI_ERR_SESSION_MAC,
    JPKI_ERR_SESSION_EXPIRED,
    JPKI_ERR_SESSION_IDLE,
    JPKI_ERR_SESSION_LOGGED_OUT,
    /* mapping, store, I/O */
    JPKI_ERR_NOT_MAPPED,
    JPKI_ERR_ACCOUNT_MISMATCH,
    JPKI_ERR_STORE,
    JPKI_ERR_STORE_FULL,
    JPKI_ERR_IO,
    JPKI_ERR_TIMEOUT,
    /* request */
    JPKI_ERR_BAD_REQUEST,
    JPKI_ERR_METHOD,
    JPKI_ERR_UNAUTHENTICATED,
    JPKI_ERR_NOT_FOUND,          /* no such endpoint */
    JPKI_ERR_ACCOUNT_NOT_ALLOWED, /* signed in, but not on the allow-list */
    JPKI_ERR_CROSS_ORIGIN,       /* a login or logout another site made the
                                    browser send */
    JPKI_ERR_THROTTLED,          /* too many failed logins: 429 */
    JPKI_ERR_BUSY,               /* too many logins being verified: 503 */
    JPKI_ERR_NO_CLIENT_CERT,     /* a TLS login without a client certificate */
    JPKI_ERR_TLS_VERSION,        /* ... over TLS 1.3 (the card signs only
                                    PKCS#1 v1.5, which TLS 1.3 refuses), or
                                    not over TLS */
    JPKI_ERR_FLOW_UNKNOWN,       /* a device flow that is not pending:
                                    never started, expired, signed or taken
                                    already (410) */
    JPKI_ERR_FLOW_MISMATCH,      /* a poll with another browser's secret */
    /* the admin API and enrollment (issue 12) */
    JPKI_ERR_FORBIDDEN,          /* the admin API from outside its list */
    JPKI_ERR_TOKEN_INVALID,      /* an enrollment token forged or malformed */
    JPKI_ERR_TOKEN_EXPIRED,
    JPKI_ERR_TOKEN_USED,
    JPKI_ERR_CERT_BOUND,         /* the certificate has another account */
    JPKI_ERR_ACCOUNT_FULL,       /* an account has JPKI_ACCOUNT_CERTS */
    JPKI_ERR_NOT_BOUND,          /* unbind: no such binding */
    JPKI_ERR_MAP_FILE,           /* the site's mappings are its file */
    JPKI_ERR_ISSUER_NOT_ALLOWED, /* signed in with a certificate of an
                                    issuer the location does not allow */
    JPKI__ERR_COUNT
} jpki_err;

/* Stable snake_case reason used in JSON answers and audit ("cert_expired"). */
const char *jpki_reason(jpki_err e);
/* A short human sentence.  Never contains input data. */
const char *jpki_strerror(jpki_err e);
/* The JSON body of every refusal, {"error":"<reason>","message":"<...>"}:
 * writes it NUL-terminated into buf, returns its length (0 if len is too
 * small).  Adapters use it for the answers they make themselves. */
size_t jpki_error_json(jpki_err e, char *buf, size_t len);

/* Response headers the adapters add, as {name, value} pairs ending with
 * {NULL, NULL}. */
typedef struct {
    const char *name;
    const char *value;
} jpki_header;
/* On every answer the gate makes itself (endpoint answers, refusals,
 * redirects to the login page, health): never cached, never sniffed as
 * anything but the JSON it says it is. */
extern const jpki_header jpki_answer_headers[];
/* On the answer to a request the gate lets through to the upstream with a
 * Set-Cookie (the verdict's set_cookie: a session resealed or refreshed):
 * a shared cache must not keep it (and hand the cookie to others). */
extern const jpki_header jpki_pass_cookie_headers[];

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

typedef enum {
    JPKI_LOG_ERROR = 0, JPKI_LOG_WARN, JPKI_LOG_INFO, JPKI_LOG_DEBUG
} jpki_log_level;

/* Messages never contain secrets, serial numbers, keys or certificates. */
typedef void (*jpki_log_fn)(void *ud, jpki_log_level level, const char *msg);

/* ------------------------------------------------------------------ */
/* Small utilities (bounded, used by adapters and tools)               */
/* ------------------------------------------------------------------ */

/* Base64 (standard or URL alphabet, padding optional on input; whitespace
 * rejected).  out must hold jpki_b64_decoded_max(inlen) bytes. */
size_t jpki_b64_decoded_max(size_t inlen);
jpki_err jpki_b64_decode(const char *in, size_t inlen, uint8_t *out,
                         size_t *outlen);
/* Encodes without newlines; url != 0: URL alphabet, no padding.
 * out must hold jpki_b64_encoded_len(inlen) + 1 bytes (NUL-terminated). */
size_t jpki_b64_encoded_len(size_t inlen, int url);
void jpki_b64_encode(const uint8_t *in, size_t inlen, char *out, int url);

void jpki_hex_encode(const uint8_t *in, size_t inlen, char *out);
jpki_err jpki_hex_decode(const char *in, size_t inlen, uint8_t *out,
                         size_t outmax, size_t *outlen);

/* Constant-time comparison of equal-length buffers: 1 equal, 0 not. */
int jpki_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* Reads a whole file (configuration time only), at most maxlen bytes.
 * *out is malloc'ed, NUL-terminated (not counted in *outlen). */
jpki_err jpki_load_file(const char *path, size_t maxlen, uint8_t **out,
                        size_t *outlen);
/* Same, and on failure a sentence for the operator in errbuf (may be
 * NULL): "cannot read <what> \"<path>\": <why>" (what NULL: "file"); why is
 * the system's reason ("No such file or directory", "Permission
 * denied"...), "not a regular file" or "larger than <maxlen> bytes". */
jpki_err jpki_load_file_msg(const char *what, const char *path,
                            size_t maxlen, uint8_t **out, size_t *outlen,
                            char *errbuf, size_t errlen);
/* n bytes for a large buffer (a file of megabytes, a CRL's entries):
 * from 512 KiB on, 2 MiB-aligned and marked for transparent huge pages
 * (madvise), so that first touching it costs a page fault per 2 MiB, not
 * per 4 KiB page (a virtual machine's faults made reading a 40 MB CRL
 * cost more than parsing it, and 128 of them cost more than clearing
 * 2 MiB); free() frees it.  NULL when out of memory.  jpki_load_file
 * reads into one. */
void *jpki_alloc_large(size_t n);
/* Configuration time, for a file read later (a mapping file): JPKI_OK when
 * path names a regular file (stat), else JPKI_ERR_IO and the sentence of
 * jpki_load_file_msg in errbuf. */
jpki_err jpki_file_check(const char *what, const char *path, char *errbuf,
                         size_t errlen);

/* Certificates, CRLs and keys given as DER, PEM or bare base64 (the three
 * forms a client sends) are turned into DER by this helper; *der is
 * malloc'ed.  label is the PEM label expected ("CERTIFICATE", "X509 CRL"). */
#define JPKI_MAX_CERT_LEN  16384
jpki_err jpki_to_der(const uint8_t *in, size_t inlen, const char *label,
                     size_t maxlen, uint8_t **der, size_t *derlen);

/* ------------------------------------------------------------------ */
/* Context: site configuration                                         */
/* ------------------------------------------------------------------ */

typedef struct jpki_ctx jpki_ctx;
typedef struct jpki_issuer jpki_issuer;

#define JPKI_SECRET_MIN 32
#define JPKI_SECRET_MAX 64
#define JPKI_KEY_LEN    32

jpki_ctx *jpki_ctx_new(void);
void jpki_ctx_free(jpki_ctx *ctx);
void jpki_ctx_set_log(jpki_ctx *ctx, jpki_log_fn fn, void *ud);
/* Redis's replicas (store replicas=N, 0 none): a challenge used and a
 * logout marker count only once n replicas acknowledged them within
 * wait_ms (a failover to a replica that missed them would undo them). */
void jpki_ctx_set_replicas(jpki_ctx *ctx, unsigned n, uint32_t wait_ms);

/* The site secret: keys cert_id.  Never rotated (rotating it re-keys every
 * mapping).  32..64 bytes. */
jpki_err jpki_ctx_set_secret(jpki_ctx *ctx, const uint8_t *secret,
                             size_t len);
/* Key ring for challenges and session cookies: id 1..255, 32 bytes each.
 * The key marked current issues new challenges and seals new cookies; the
 * others still verify (rotation without breaking logins in flight).  When no
 * key is added, key id 1 is derived from the site secret. */
jpki_err jpki_ctx_add_key(jpki_ctx *ctx, unsigned id, const uint8_t *key,
                          size_t len, int current);
/* Secret file format (docs/configuration.md):
 *     secret <hex, 64..128 digits>
 *     key <id> <hex, 64 digits> [current]
 * '#' comments and blank lines allowed.  The file must not be readable by
 * group or others (checked, JPKI_ERR_INVALID with a message otherwise). */
jpki_err jpki_ctx_load_secret_file(jpki_ctx *ctx, const char *path,
                                   char *errbuf, size_t errlen);

/* The issuers a context (a site) takes at most. */
#define JPKI_MAX_ISSUERS 16

/* Issuers.  name is the operator's label (logs, audit JSON): 1..63 of
 * A-Z a-z 0-9 _ . - (NULL otherwise, or when taken). */
#define JPKI_POLICY_JPKI_AUTH "1.2.392.200149.8.5.1.3.30"
jpki_issuer *jpki_ctx_add_issuer(jpki_ctx *ctx, const char *name);
/* A PEM bundle or DER certificate: self-signed ones become trust anchors,
 * others (link certificates) untrusted intermediates.  Several calls add
 * key generations. */
jpki_err jpki_issuer_add_certs(jpki_issuer *is, const uint8_t *buf,
                               size_t len, char *errbuf, size_t errlen);
jpki_err jpki_issuer_add_certs_file(jpki_issuer *is, const char *path,
                                    char *errbuf, size_t errlen);
/* NULL or "" = no policy required; default JPKI_POLICY_JPKI_AUTH. */
jpki_err jpki_issuer_set_policy(jpki_issuer *is, const char *oid);
jpki_err jpki_issuer_set_ocsp_url(jpki_issuer *is, const char *url);
jpki_err jpki_issuer_set_crl_source(jpki_issuer *is, const char *src);
const char *jpki_issuer_name(const jpki_issuer *is);
const char *jpki_issuer_ocsp_url(const jpki_issuer *is);
const char *jpki_issuer_crl_source(const jpki_issuer *is);
size_t jpki_ctx_issuer_count(const jpki_ctx *ctx);
const jpki_issuer *jpki_ctx_issuer(const jpki_ctx *ctx, size_t i);
/* Short stable tag of an issuer (hex of its anchors' key hash, 16 chars):
 * the issuer's name in store keys; unaffected by renaming in config. */
const char *jpki_issuer_tag(const jpki_issuer *is);

/* Signature algorithms. */
typedef enum {
    JPKI_SIG_RSA_PKCS1_SHA256 = 0,
    JPKI_SIG_RSA_PKCS1_SHA384,
    JPKI_SIG_RSA_PKCS1_SHA512,
    JPKI_SIG_RSA_PKCS1_SHA1,   /* only when enabled with allow_sha1 */
    JPKI_SIG_ECDSA_SHA256,     /* DER ECDSA-Sig-Value, strict */
    JPKI_SIG_ECDSA_SHA384,
    JPKI__SIG_COUNT
} jpki_sig_alg;
/* "rsa-pkcs1-sha256" ... "ecdsa-sha384"; -1 when unknown. */
int jpki_sig_alg_from_name(const char *name, size_t len);
const char *jpki_sig_alg_name(jpki_sig_alg alg);

/* Policies (defaults in brackets). */
/* Revocation: the sources asked in order, the next one when a source has
 * no answer (OCSP responder down, CRL stale).  A new source is one more
 * value here and one more case in txn.c's rev_next. */
typedef enum {
    JPKI_REV_SRC_OCSP = 0,
    JPKI_REV_SRC_CRL,
    JPKI__REV_SRC_COUNT
} jpki_rev_source;
#define JPKI_REV_SOURCES_MAX JPKI__REV_SRC_COUNT
typedef struct {
    jpki_rev_source src[JPKI_REV_SOURCES_MAX];
    unsigned n;              /* 0: none (only for tests; refused by the
                                adapters' configuration) */
} jpki_rev_policy;
/* "ocsp", "crl", or several joined by commas, each once ("ocsp,crl");
 * "none": n = 0. */
jpki_err jpki_rev_policy_parse(const char *s, size_t len, jpki_rev_policy *p);
/* "ocsp", "crl" ("unknown" out of range). */
const char *jpki_rev_source_name(jpki_rev_source s);

typedef struct {
    unsigned challenge_ttl;        /* seconds [120] */
    unsigned session_lifetime;     /* seconds [28800] */
    unsigned session_idle;         /* seconds [1800]; 0 = no idle limit */
    unsigned recheck_interval;     /* seconds [300]; 0 = every request */
    unsigned clock_skew;           /* seconds [300] OCSP/CRL time window */
    unsigned ocsp_good_max_ttl;    /* seconds [3600] */
    unsigned ocsp_hold_ttl;        /* seconds [300] */
    unsigned ocsp_revoked_ttl;     /* seconds [86400*30] */
    unsigned ocsp_sha256_certid;   /* [0]: SHA-1 CertID for compatibility */
    unsigned ocsp_nonce;           /* [0] */
    unsigned allow_sha1;           /* [0] */
    unsigned fail_open;            /* [0]: closed; open = pass + audit */
    jpki_rev_policy rev_policy;    /* [ocsp] */
    unsigned require_account;      /* [0]: account in login is optional */
    unsigned chain_cache_size;     /* entries [4096]; 0 disables */
    unsigned crl_grace;            /* [JPKI_CRL_GRACE_VALIDITY] CRLs read from
                                      the store: stale after nextUpdate +
                                      this (see jpki_crl_stale_after) */
    unsigned crl_pointer_ttl;      /* [10] seconds a process keeps the CRL
                                      pointer read from the store (a check is
                                      then one HGET); 0..60 (crl sync keeps
                                      a replaced generation 600 s) */
    /* failed-login throttle (counters in the store, so they hold across
     * nodes); 0 turns a limit off */
    unsigned throttle_window;      /* seconds [60] of the sliding window */
    unsigned throttle_cert;        /* [10] failed logins per certificate */
    unsigned throttle_addr;        /* [100] failed logins per client address
                                      (IPv6: per /64) */
    unsigned login_limit_cert;     /* [60] logins per certificate (bounds
                                      what one card can hold in the store) */
    unsigned login_concurrency;    /* [16] logins a worker (nginx) or child
                                      (Apache) verifies at once, the site's
                                      value; more are answered 503 busy;
                                      0 = no cap */
    /* session cookie */
    char cookie_name[64];          /* ["jpki_session"] */
    char cookie_path[128];         /* ["/"] */
    char cookie_samesite[8];       /* ["Lax"]: Strict, Lax or None */
    unsigned cookie_secure;        /* [1] */
    unsigned cookie_httponly;      /* [1] */
    /* where browsers are sent when not signed in ("" = answer 401) */
    char login_page[256];          /* [""] */
    /* origins besides the gate's own whose pages may post logins and
     * logouts: "https://a.example https://b.example:8443" (at most 8) */
    char trusted_origins[512];     /* [""] */
    /* the gate's login page (GET <prefix>/login): the methods it offers
     * (JPKI_METHOD_*) [tls device], and its template (NULL: the built-in
     * one; common/page.h) */
    unsigned login_methods;
    const struct jpki_page_tmpl *page_tmpl;
    /* where a login of a card no account has is sent to enroll, with an
     * enrollment token ("" = refused 403 account_not_mapped) */
    char enroll_page[256];
    unsigned enroll_ttl;           /* seconds a token can be redeemed [600] */
    /* the admin API: the client addresses it answers (CIDRs, blank-
     * separated; "" = none) and the SHA-256 of its bearer token (set:
     * admin_token_set) */
    char admin_allow[512];
    uint8_t admin_token[32];
    unsigned admin_token_set;
    /* what a store that does not answer does to a signed-in user's gated
     * request (txn_session.c): JPKI_OUTAGE_CLOSED [default] 503, or
     * JPKI_OUTAGE_SESSIONS: a session whose re-check is not due passes
     * without reading the logout markers in the store */
    unsigned store_outage;
} jpki_policy;
#define JPKI_OUTAGE_CLOSED   0u
#define JPKI_OUTAGE_SESSIONS 1u
#define JPKI_ACCOUNT_CERTS 12      /* certificates an account holds at most */
#define JPKI_METHOD_TLS     1u     /* TLS client certificate (<prefix>/tls) */
#define JPKI_METHOD_DEVICE  2u     /* a phone or desktop signer (QR code) */
jpki_policy *jpki_ctx_policy(jpki_ctx *ctx);       /* mutable until finish */
/* A throttle directive's value as written: what it names (set, a bit
 * per JPKI_THR_*) and the values. */
enum {
    JPKI_THR_WINDOW = 0,        /* window= (seconds) */
    JPKI_THR_CERT,              /* cert=: failed logins per certificate */
    JPKI_THR_ADDR,              /* addr=: failed logins per address */
    JPKI_THR_LOGINS,            /* logins=: logins per certificate */
    JPKI_THR_CONCURRENCY,       /* concurrency=: logins verified at once */
    JPKI__THR_COUNT
};
typedef struct {
    unsigned set;
    unsigned v[JPKI__THR_COUNT];
} jpki_throttle;
/* Parses a throttle value (the grammar below) into t: "off" names every
 * limit (0), not the window.  An empty one is refused. */
jpki_err jpki_throttle_parse(const char *args, jpki_throttle *t,
                             char *errbuf, size_t errlen);
/* What t names, into p. */
void jpki_throttle_apply(const jpki_throttle *t, jpki_policy *p);
/* What child does not name, it takes from parent (an inner level's value
 * written after the outer ones'). */
void jpki_throttle_merge(jpki_throttle *child, const jpki_throttle *parent);
/* The throttle directive's value (nginx jpki_throttle, Apache
 * JPKIThrottle): "off" (no limits), or any of window=<n>[s|m] cert=<n>
 * addr=<n> logins=<n> concurrency=<n>, blank-separated; a limit of 0 is
 * off.  Changes only what it names. */
jpki_err jpki_policy_set_throttle(jpki_policy *p, const char *args,
                                  char *errbuf, size_t errlen);
/* Checks a policy's ranges and cookie settings (jpki_ctx_finish does it for
 * the site's policy; adapters call it for per-location copies). */
jpki_err jpki_policy_check(const jpki_policy *p, char *errbuf, size_t errlen);
/* The site policy (defaults for per-location copies). */
const jpki_policy *jpki_ctx_get_policy(const jpki_ctx *ctx);

/* Validates and freezes the configuration (at least one issuer with an
 * anchor, a secret).  errbuf receives a sentence for the operator. */
jpki_err jpki_ctx_finish(jpki_ctx *ctx, char *errbuf, size_t errlen);

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

#define JPKI_CERT_ID_LEN      16  /* bytes of HMAC-SHA256 kept */
#define JPKI_CERT_ID_HEX_LEN  32

/* A verified end-entity certificate: the library's view of it.  The serial
 * is kept inside; only cert_id is exposed. */
typedef struct jpki_cert jpki_cert;

/* Parses (DER/PEM/base64) and validates der at time now against the
 * configured issuers: path to an anchor (issuer found by key), validity of
 * every certificate of the path, leaf not a CA, digitalSignature when
 * keyUsage is present, the issuer's policy, RSA >= 2048 or EC P-256/P-384;
 * every certificate of the path (not an anchor's self-signature) signed
 * with SHA-256 or stronger by a key of RSA >= 2048 or EC >= P-256, else
 * JPKI_ERR_CERT_SIG_ALG.
 * A verified path is cached by SHA-256 fingerprint (chain_cache_size).
 * On error *out is NULL and the cause is the return value; detail (may be
 * NULL) receives a sentence without serials or keys. */
jpki_err jpki_cert_check(const jpki_ctx *ctx, const uint8_t *in, size_t len,
                         time_t now, jpki_cert **out, char *detail,
                         size_t detaillen);
void jpki_cert_free(jpki_cert *c);
const jpki_issuer *jpki_cert_issuer(const jpki_cert *c);
const char *jpki_cert_id_hex(const jpki_cert *c);   /* 32 hex chars */
time_t jpki_cert_not_after(const jpki_cert *c);
/* 1 when the path came from the fingerprint cache. */
int jpki_cert_cached(const jpki_cert *c);

/* cert_id = HMAC-SHA256(secret, issuer_key_hash || serial) truncated to
 * JPKI_CERT_ID_LEN bytes, as lower-case hex (out: 33 bytes).  issuer_key_hash
 * is SHA-1 of the issuing CA's public key (as in OCSP CertID).  Serial is the
 * big-endian magnitude (no leading zero octets). */
jpki_err jpki_cert_id_compute(const jpki_ctx *ctx,
                              const uint8_t *issuer_key_hash, size_t ikhlen,
                              const uint8_t *serial, size_t seriallen,
                              char out[JPKI_CERT_ID_HEX_LEN + 1]);
/* Same, from a decimal or hex ("0x...") serial typed by an operator. */
jpki_err jpki_cert_id_from_serial_text(const jpki_ctx *ctx,
                                       const jpki_issuer *is,
                                       const char *serial_text,
                                       char out[JPKI_CERT_ID_HEX_LEN + 1]);
/* The serial whose cert_id `jpkictl crl sync` stores as id_check next to
 * a CRL loaded into the store, and the gate compares with its own: equal
 * only with the same site secret and CA files (docs/store-schema.md). */
#define JPKI_CRL_ID_CHECK_SERIAL "1"

/* Signature over msg with the certificate's key (strict; see docs). */
jpki_err jpki_cert_verify_sig(const jpki_ctx *ctx, const jpki_cert *c,
                              jpki_sig_alg alg, const uint8_t *msg,
                              size_t msglen, const uint8_t *sig,
                              size_t siglen);
/* Same with a bare public key (PEM/DER SubjectPublicKeyInfo or a
 * certificate) for jpkictl sig-verify. */
jpki_err jpki_sig_verify_pubkey(const uint8_t *key, size_t keylen,
                                jpki_sig_alg alg, int allow_sha1,
                                const uint8_t *msg, size_t msglen,
                                const uint8_t *sig, size_t siglen);

/* ------------------------------------------------------------------ */
/* Challenges                                                          */
/* ------------------------------------------------------------------ */

/* Text form: base64url(ver = 2 | key_id | expiry(8, BE) | host_hash(8) |
 * random(25) | HMAC-SHA256 tag(32)), 100 chars.  The client signs these
 * ASCII chars.  host_hash binds the challenge to the host it was issued for
 * (jpki_challenge_host_hash), so that a client can refuse to sign, and the
 * gate refuse, a challenge relayed from another site. */
#define JPKI_CHALLENGE_LEN      100
#define JPKI_CHALLENGE_ID_HEX   32   /* store key of a challenge */

/* host, host_len: the raw Host header value of the request (NULL when
 * absent); canonicalized as jpki_challenge_host_hash does.  A host whose
 * canonical form is empty (absent, empty, over 255 bytes, bytes outside
 * 0x21..0x7e) is refused, JPKI_ERR_BAD_HOST (400 bad_host): bound to the
 * empty host, the challenge would be good under any other invalid Host.
 * Adapters pass the host the server found for the request when there is
 * no Host header (HTTP/1.0). */
jpki_err jpki_challenge_issue(const jpki_ctx *ctx, time_t now,
                              const char *host, size_t host_len,
                              char out[JPKI_CHALLENGE_LEN + 1],
                              time_t *expires);
/* Checks format (version 2 only), key id, MAC (constant time), expiry and
 * host (JPKI_ERR_CHALLENGE_HOST when the challenge was issued for another
 * host than host's, or host's canonical form is empty), in that order.
 * id_hex receives the identifier under which single use is recorded;
 * *expires its expiry. */
jpki_err jpki_challenge_check(const jpki_ctx *ctx, const char *ch,
                              size_t len, time_t now,
                              const char *host, size_t host_len,
                              char id_hex[JPKI_CHALLENGE_ID_HEX + 1],
                              time_t *expires);
/* out = SHA-256("jpki-challenge-host:" | canonical host)[0..8].  Canonical
 * host of a Host value: "[v6]..." -> the text between '[' and the first
 * ']'; else "h:port" (1-5 digits after the last ':') -> "h"; else the
 * value; then ASCII-lowercased, one trailing '.' removed.  Empty, longer
 * than 255 or with bytes outside 0x21..0x7e: the empty string.  host may be
 * NULL (absent).  JPKI_ERR_INTERNAL only if the digest fails. */
jpki_err jpki_challenge_host_hash(const char *host, size_t len,
                                  uint8_t out[8]);
/* The canonical form of a Host header value (or of a URL's host, IPv6 in
 * brackets) that challenges are bound to: "[v6]" -> "v6" (what follows
 * ']' ignored); else a last ':' and 1..5 digits (a port) dropped; ASCII
 * lower case; one trailing '.' dropped.  Into out (NUL-terminated); its
 * length, 0 (out empty) when there is none: empty, over JPKI_HOST_MAX
 * bytes, or a byte outside 0x21..0x7e. */
#define JPKI_HOST_MAX 255
size_t jpki_host_canonical(const char *host, size_t len,
                           char out[JPKI_HOST_MAX + 1]);
/* What a client can read of a challenge without the gate's key, to sign
 * nothing else (jpki-login): JPKI_ERR_CHALLENGE_FORMAT unless ch is
 * JPKI_CHALLENGE_LEN characters of base64url (URL alphabet, no padding:
 * what jpki_challenge_issue writes) of the challenge's length; else
 * JPKI_OK and v: its version (the first byte), and, for version 2, its
 * expiry and whether it was issued for host, a Host header value (made
 * canonical here, as the gate does: not canonical again: "::1" is not
 * "[::1]"; host_ok 0 too when host has no canonical form).
 * JPKI_ERR_INTERNAL only if the digest fails. */
typedef struct {
    unsigned version;
    uint64_t expires;
    int host_ok;
} jpki_challenge_view;
jpki_err jpki_challenge_peek(const char *ch, size_t len, const char *host,
                             size_t host_len, jpki_challenge_view *v);

/* The short code of a device flow (docs/protocol.md section 7): what the
 * login page and the signer both show, so that a person sees that the
 * signer holds the flow of the page in front of them.  Public: anyone with
 * the challenge computes it.  The first 40 bits of SHA-256("jpki-device-
 * code:" | ch) as 8 characters of JPKI_DEVICE_CODE_ALPHABET, written
 * "XXXX-XXXX" into out (NUL-terminated).  JPKI_ERR_CHALLENGE_FORMAT unless
 * ch has JPKI_CHALLENGE_LEN characters. */
#define JPKI_DEVICE_CODE_LEN 9
#define JPKI_DEVICE_CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
jpki_err jpki_device_code(const char *ch, size_t len,
                          char out[JPKI_DEVICE_CODE_LEN + 1]);

/* ------------------------------------------------------------------ */
/* Sessions: sealed cookies (AES-256-GCM, key ring)                    */
/* ------------------------------------------------------------------ */

#define JPKI_ACCOUNT_MAX   128   /* bytes; valid UTF-8 (or ASCII), no
                                    control characters, no '"' or '\\' */
#define JPKI_SESSION_MAX   512   /* cookie value length bound */

typedef struct {
    char account[JPKI_ACCOUNT_MAX + 1];
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    char issuer_tag[17];
    char sid[33];            /* random session id, hex (logout marker key) */
    /* Opaque revocation reference (serial and issuer key hash, so that a
     * re-check can ask OCSP).  Only ever sealed, never logged. */
    uint8_t rev_ref[53];
    uint8_t rev_ref_len;
    int64_t auth_time;
    int64_t expires;         /* absolute end of the session */
    int64_t idle_deadline;   /* 0 when no idle limit */
    int64_t rev_checked;     /* last successful revocation check */
    uint8_t flags;           /* JPKI_SESSION_F_* */
} jpki_session;
#define JPKI_SESSION_F_SOFT_PASS 0x01  /* accepted with fail_open */

/* Seals s with the current key; out must hold JPKI_SESSION_MAX + 1. */
jpki_err jpki_session_seal(const jpki_ctx *ctx, const jpki_session *s,
                           char *out, size_t outmax, size_t *outlen);
/* Opens and checks MAC, key id, expiry and idle deadline at now. */
jpki_err jpki_session_open(const jpki_ctx *ctx, const char *in, size_t len,
                           time_t now, jpki_session *s);
/* Checks an account string against the rules above. */
int jpki_account_valid(const char *a, size_t len);
/* The store's name of an account (the key of its logout marker), read on
 * every gated request: K = HKDF-SHA256(site secret, info "jpki account
 * id", 32 bytes); hex(SipHash-2-4(K[0..16], account) big-endian ||
 * SipHash-2-4(K[16..32], account) big-endian), 32 hex chars. */
#define JPKI_ACCOUNT_ID_HEX_LEN 32
jpki_err jpki_account_id(const jpki_ctx *ctx, const char *account,
                         size_t len, char out[JPKI_ACCOUNT_ID_HEX_LEN + 1]);
/* Finds cookie name in a Cookie header value; 1 found (*val, *vlen point
 * into hdr), 0 not found. */
int jpki_cookie_find(const char *hdr, size_t len, const char *name,
                     const char **val, size_t *vlen);
/* Removes every cookie name from a Cookie header value (the gate's session
 * cookie from what goes to the upstream: a bearer token in its logs).  The
 * items are split as jpki_cookie_find splits them (at ';', blanks around
 * them ignored), so whatever it could read is removed, a quoted value
 * included; blanks before '=' do not save one.  The other items are copied
 * as they were, each with the separator that followed it: out (len bytes
 * suffice, the result is never longer) holds the rest, *outlen its length
 * (0: nothing left, drop the header).  Returns how many were removed (0:
 * use the header as it is).  O(len), no allocation. */
size_t jpki_cookie_strip(const char *hdr, size_t len, const char *name,
                         char *out, size_t *outlen);

/* ------------------------------------------------------------------ */
/* Revocation: OCSP                                                    */
/* ------------------------------------------------------------------ */

typedef enum {
    JPKI_REV_GOOD = 0,
    JPKI_REV_REVOKED,
    JPKI_REV_HOLD,           /* revoked with reason certificateHold */
    JPKI_REV_UNKNOWN
} jpki_rev_status;

/* CRLReason values (RFC 5280); -1 when absent. */
#define JPKI_REASON_NONE                 -1
#define JPKI_REASON_UNSPECIFIED           0
#define JPKI_REASON_KEY_COMPROMISE        1
#define JPKI_REASON_CA_COMPROMISE         2
#define JPKI_REASON_AFFILIATION_CHANGED   3
#define JPKI_REASON_SUPERSEDED            4
#define JPKI_REASON_CESSATION             5
#define JPKI_REASON_CERTIFICATE_HOLD      6
#define JPKI_REASON_REMOVE_FROM_CRL       8
#define JPKI_REASON_PRIVILEGE_WITHDRAWN   9
#define JPKI_REASON_AA_COMPROMISE        10
const char *jpki_reason_name(int reason);  /* "keyCompromise" ... */

typedef struct {
    jpki_rev_status status;
    int reason;               /* JPKI_REASON_* */
    int64_t revoked_at;       /* 0 when not revoked */
    int64_t this_update;
    int64_t next_update;      /* 0 when absent */
    unsigned cache_ttl;       /* seconds the answer may be cached */
} jpki_rev_info;

#define JPKI_OCSP_RESP_MAX (64 * 1024)
#define JPKI_OCSP_HEADER_MAX (16 * 1024)

/* The HTTP/1.0 POST head for an OCSP request of body_len bytes (the adapter
 * sends it, then the body); returns its length, 0 when max is too small. */
size_t jpki_ocsp_http_request(const char *host, const char *path,
                              size_t body_len, char *out, size_t max);
/* Parses the responder's answer read so far (eof: the peer closed):
 * 1 whole (status, body), 0 more bytes needed, -1 malformed or too large
 * (header over JPKI_OCSP_HEADER_MAX, body over JPKI_OCSP_RESP_MAX or over
 * its Content-Length, truncated at eof). */
int jpki_http_response_parse(const uint8_t *in, size_t len, int eof,
                             int *status, const uint8_t **body,
                             size_t *body_len);
/* The answer as the adapter reads it, into a buffer it gives
 * (JPKI_OCSP_ANSWER_MAX bytes): jpki_ocsp_answer_room() says where to read
 * next (never 0 bytes), jpki_ocsp_answer_read() takes the n bytes read
 * there (eof: the responder closed): 1 whole (status, body), 0 read on, -1
 * failed (reason: "OCSP response too large", "malformed HTTP answer from
 * OCSP responder"). */
#define JPKI_OCSP_ANSWER_MAX (JPKI_OCSP_RESP_MAX + JPKI_OCSP_HEADER_MAX)
typedef struct {
    uint8_t *buf;
    size_t len, max;
    int status;
    const uint8_t *body;      /* in buf */
    size_t body_len;
    const char *reason;
} jpki_ocsp_answer;
void jpki_ocsp_answer_init(jpki_ocsp_answer *a, uint8_t *buf, size_t max);
uint8_t *jpki_ocsp_answer_room(jpki_ocsp_answer *a, size_t *room);
int jpki_ocsp_answer_read(jpki_ocsp_answer *a, size_t n, int eof);

/* DER OCSPRequest for c (CertID hash per policy; nonce when enabled: the
 * nonce is kept in *req_state for the response check).  *der malloc'ed. */
typedef struct { uint8_t nonce[16]; int has_nonce; int sha256; } jpki_ocsp_state;
jpki_err jpki_ocsp_request(const jpki_ctx *ctx, const jpki_cert *c,
                           jpki_ocsp_state *st, uint8_t **der, size_t *len);
/* Verifies a DER OCSPResponse for c at now: signed by the issuing CA key or
 * by a responder certificate issued by it with id-kp-OCSPSigning (and valid
 * at now); thisUpdate <= now + skew; nextUpdate (when present) >= now - skew;
 * the nonce when one was sent.  Fills *info (cache_ttl per policy). */
jpki_err jpki_ocsp_check(const jpki_ctx *ctx, const jpki_cert *c,
                         const jpki_ocsp_state *st, const uint8_t *der,
                         size_t len, time_t now, jpki_rev_info *info);

/* ------------------------------------------------------------------ */
/* Revocation: CRL                                                     */
/* ------------------------------------------------------------------ */

#define JPKI_CRL_MAX ((size_t)1 << 31)
/* grace_s value: stale at the end of the J-LIS CRL validity, thisUpdate +
 * 72 h (J-LIS issues every 24 h with nextUpdate = thisUpdate + 24 h). */
#define JPKI_CRL_GRACE_VALIDITY ((unsigned)-1)
#define JPKI_CRL_VALIDITY       (72 * 3600)

typedef struct {
    const jpki_issuer *issuer;
    int64_t this_update;
    int64_t next_update;      /* 0 when absent */
    int64_t crl_number;       /* -1 when absent */
    uint64_t entries;
    uint8_t key_hash[20];     /* SHA-1 of the key that signed it: the CA
                                 key generation whose certificates the CRL
                                 covers (crlzone.h) */
} jpki_crl_info;

/* Verifies a CRL (DER or PEM) against the configured issuers at now.  When
 * its AKI (or name) designates a configured CA whose key does not verify the
 * signature: JPKI_ERR_CRL_SIGNATURE; when no configured CA is designated:
 * JPKI_ERR_CRL_ISSUER.  Delta, indirect and partial CRLs are refused.
 * In short:
 * signed by a key of one issuer, thisUpdate <= now + skew; stale when
 * now > nextUpdate + grace (grace_s; 0 = nextUpdate + clock_skew). */
jpki_err jpki_crl_verify(const jpki_ctx *ctx, const uint8_t *in, size_t len,
                         time_t now, unsigned grace_s, jpki_crl_info *info,
                         char *detail, size_t detaillen);

/* The time after which a CRL with this info is stale under grace_s (see
 * jpki_crl_verify and JPKI_CRL_GRACE_VALIDITY); INT64_MAX without
 * nextUpdate. */
int64_t jpki_crl_stale_after(const jpki_crl_info *info, unsigned grace_s,
                             int64_t skew);

/* One CRL entry as it leaves the library: cert_id, reason, date, and the
 * key generation cert_id is made with: 0 the key that signed the CRL
 * (jpki_crl_info.key_hash, the key whose certificates it covers:
 * crlzone.h), 1.. the issuer's other keys. */
typedef struct {
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    int reason;
    int64_t revoked_at;
    unsigned key;
} jpki_crl_entry;
typedef int (*jpki_crl_entry_fn)(void *ud, const jpki_crl_entry *e);
/* Streams the entries of a verified CRL (call jpki_crl_verify first) without
 * building them all in memory; fn returning non-zero stops (JPKI_ERR_IO).
 * An entry is reported once per CA key generation of the CRL's issuer (a CA
 * may sign its CRL with a newer key than the one that issued a certificate,
 * and cert_id is keyed by the issuing key). */
jpki_err jpki_crl_foreach(const jpki_ctx *ctx, const uint8_t *der,
                          size_t len, jpki_crl_entry_fn fn, void *ud);
/* The same for the key that signed the CRL only (every entry once, key
 * 0): the cert_ids its list holds (crlptr.h); one HMAC an entry, however
 * many key generations the issuer has. */
jpki_err jpki_crl_foreach_signer(const jpki_ctx *ctx, const uint8_t *der,
                                 size_t len, jpki_crl_entry_fn fn, void *ud);

/* A scan (jpkictl crl sync): jpki_crl_verify and, in the same walk, the
 * entries of the signing key, each with the keyed digest of its whole
 * encoding (SipHash-2-4-128 under key: serial, date and extensions, so
 * one digest is one entry exactly as it was listed).  begin (NULL: yes)
 * is told the CRL's issuer and key once the signature verifies, before
 * the walk, and answers whether to scan (0: a plain jpki_crl_verify).
 * known (NULL: none) is asked each entry's digest: 1 when the caller
 * holds an entry of that digest from an earlier scan under the same key
 * (that entry, fully checked then, is only counted now: not parsed, no
 * HMAC), 0 to read it (checked, cert_id made) and hand it to entry, -1
 * to stop.  key NULL: no digests (digest NULL in entry, known not
 * asked).  entry or fn NULL: jpki_crl_verify. */
#define JPKI_CRL_DIGEST_LEN 16
typedef struct {
    const uint8_t *digest;                /* JPKI_CRL_DIGEST_LEN, or NULL */
    uint8_t cert_id[JPKI_CERT_ID_LEN];    /* binary */
    int reason;
    int64_t revoked_at;
} jpki_crl_scan_entry;
typedef struct {
    const uint8_t *key;                   /* 16 octets, or NULL */
    int (*begin)(void *ud, const jpki_crl_info *info);
    int (*known)(void *ud, const uint8_t *digest);
    int (*entry)(void *ud, const jpki_crl_scan_entry *e);
    void *ud;
    /* NULL, or the digests made ahead (jpki_crl_digests, by a thread of
     * the caller's while the signature is checked): asked once, before
     * the walk, how many of the first entries' digests *out holds, in
     * the CRL's order, and *lens their entries' lengths (an entry known
     * is then skipped unread; NULL: each one read); the walk makes the
     * others. */
    size_t (*ahead)(void *ud, const uint8_t **out, const uint32_t **lens);
} jpki_crl_scan_fns;
jpki_err jpki_crl_verify_scan(const jpki_ctx *ctx, const uint8_t *in,
                              size_t len, time_t now, unsigned grace_s,
                              jpki_crl_info *info, char *detail,
                              size_t detaillen, const jpki_crl_scan_fns *f);
/* The digests a scan under key makes of the first entries of a DER CRL
 * (nothing else checked: the scan still reads and checks every entry it
 * does not know), at most max of them into out (JPKI_CRL_DIGEST_LEN
 * octets each) and their encodings' lengths into lens (NULL: not
 * wanted): how many; fewer than the CRL lists when an entry is
 * malformed, 0 when the CRL does not parse. */
size_t jpki_crl_digests(const uint8_t key[16], const uint8_t *der,
                        size_t len, uint8_t *out, uint32_t *lens,
                        size_t max);

/* An in-memory index of one CRL for O(log n) lookups by cert_id: its
 * entries under the key that signed it (info.key_hash), the one key
 * generation the CRL covers (a certificate of another key is looked up in
 * that key's CRL: crlzone.h). */
typedef struct jpki_crl_index jpki_crl_index;
jpki_err jpki_crl_index_build(const jpki_ctx *ctx, const uint8_t *in,
                              size_t len, time_t now, unsigned grace_s,
                              jpki_crl_index **out, char *detail,
                              size_t detaillen);
void jpki_crl_index_free(jpki_crl_index *ix);
/* (An index shared by workers is copied into a zone by crlzone.h.) */
const jpki_crl_info *jpki_crl_index_info(const jpki_crl_index *ix);
/* Whether ix, just built for the CRL slot of issuer want, may replace cur
 * (NULL: nothing loaded): JPKI_ERR_CRL_ISSUER when ix is another configured
 * issuer's CRL (every lookup would answer good), JPKI_ERR_CRL_STALE when it
 * is older than cur (lower CRL number; without numbers, earlier thisUpdate):
 * a replayed old file cannot un-revoke anyone.  detail says which. */
jpki_err jpki_crl_index_replaces(const jpki_crl_index *ix,
                                 const jpki_issuer *want,
                                 const jpki_crl_index *cur, char *detail,
                                 size_t detaillen);
/* JPKI_OK and info->status GOOD / REVOKED / HOLD (an entry without a reason
 * code is revoked, reason unspecified); JPKI_ERR_CRL_STALE when the CRL is
 * stale at now. */
jpki_err jpki_crl_index_lookup(const jpki_crl_index *ix, const char *cert_id,
                               time_t now, unsigned grace_s,
                               jpki_rev_info *info);

/* ------------------------------------------------------------------ */
/* Store: abstract operations, Redis encoding, embedded table          */
/* ------------------------------------------------------------------ */

/* Key schema: docs/store-schema.md.  Every key starts "jpki:v1:". */
#define JPKI_STORE_PREFIX "jpki:v1:"
#define JPKI_STORE_KEY_MAX 96
#define JPKI_STORE_VAL_MAX 192

typedef enum {
    JPKI_STORE_GET = 0,      /* value or nil */
    JPKI_STORE_SET,          /* set with TTL */
    JPKI_STORE_SETNX,        /* set with TTL if absent: 1 set, 0 existed */
    JPKI_STORE_DEL,          /* 1 deleted, 0 absent */
    JPKI_STORE_HGET,         /* field in val: value or nil; Redis only (CRLs
                                loaded by `jpkictl crl sync`); the embedded
                                store answers R_ERROR */
    JPKI_STORE_INCR,         /* counter + 1: the new value (R_INT); an absent
                                key starts at 0 without TTL */
    JPKI_STORE_PEXPIRE,      /* sets the TTL (ttl_ms > 0): 1, 0 absent */
    JPKI_STORE_DECR,         /* counter - 1: the new value (R_INT); an absent
                                key starts at 0 without TTL */
    JPKI_STORE_INFO_MEMORY,  /* no key: Redis's INFO memory, as R_VALUE
                                "<used_memory> <maxmemory>" (decimal;
                                maxmemory 0: no limit); Redis only, the
                                embedded store answers R_ERROR (metrics) */
    JPKI_STORE_WAIT          /* no key: WAIT <val> <ttl_ms>, the writes
                                before it on its connection acknowledged
                                by val (decimal, 1..8) replicas within
                                ttl_ms: R_INT the replicas that did;
                                Redis only (store replicas=) */
} jpki_store_op;

typedef struct {
    jpki_store_op op;
    char key[JPKI_STORE_KEY_MAX + 1];
    size_t keylen;
    uint8_t val[JPKI_STORE_VAL_MAX];   /* value (SET), field (HGET) */
    size_t vallen;
    uint32_t ttl_ms;         /* SET/SETNX; 0 = no expiry */
    uint8_t soft;            /* a new key of this command may not take the
                                embedded store's last quarter (reserved for
                                challenges and logouts): throttle counters
                                and caches cannot crowd those out */
} jpki_store_cmd;
/* The most commands a transaction asks for in one batch. */
#define JPKI_STORE_BATCH_MAX 12

typedef enum {
    JPKI_STORE_R_ERROR = 0,  /* I/O error, timeout, server error */
    JPKI_STORE_R_NIL,        /* GET: absent */
    JPKI_STORE_R_VALUE,      /* GET: value in val */
    JPKI_STORE_R_INT,        /* SET: 1; SETNX/DEL/PEXPIRE: 1 or 0; INCR */
    JPKI_STORE_R_FULL        /* a write refused for lack of room (the
                                embedded store full, Redis -OOM at
                                maxmemory): reported as store_full */
} jpki_store_rtype;

typedef struct {
    jpki_store_rtype type;
    uint8_t val[JPKI_STORE_VAL_MAX];
    size_t vallen;
    long long n;
} jpki_store_result;

/* Redis: the command in RESP (malloc'ed, free with free()), and a reply
 * (hiredis redisReply *, passed as void * to keep hiredis out of this
 * header) turned into a result; a malformed reply becomes R_ERROR. */
jpki_err jpki_store_cmd_to_resp(const jpki_store_cmd *cmd, char **out,
                                size_t *outlen);
void jpki_store_result_from_redis(const jpki_store_cmd *cmd,
                                  const void *redis_reply,
                                  jpki_store_result *res);
/* The two numbers of an INFO_MEMORY result: 0, or -1 when res is not one. */
int jpki_store_info_memory(const jpki_store_result *res, uint64_t *used,
                           uint64_t *max);
/* Incremental RESP reply parser (wraps hiredis's redisReader). */
typedef struct jpki_resp_reader jpki_resp_reader;
jpki_resp_reader *jpki_resp_reader_new(void);
void jpki_resp_reader_free(jpki_resp_reader *r);
jpki_err jpki_resp_reader_feed(jpki_resp_reader *r, const char *buf,
                               size_t len);
/* 1 and *res filled when a whole reply is available, 0 when more bytes are
 * needed, -1 on a protocol error (the reader then stays failed: drop the
 * connection).  Call it until it returns 0 before feeding more bytes: at most
 * 64 KiB may be buffered unread. */
int jpki_resp_reader_next(jpki_resp_reader *r, const jpki_store_cmd *cmd,
                          jpki_store_result *res);

/* Embedded store: a fixed-capacity hash table in memory the adapter
 * provides (nginx shared zone, APR shared memory).  The adapter supplies a
 * lock; the table holds no pointers, so it may be mapped at different
 * addresses in different processes. */
typedef struct {
    void (*lock)(void *ud);
    void (*unlock)(void *ud);
    void *ud;
} jpki_shm_lock;
typedef struct jpki_shm jpki_shm;
size_t jpki_shm_min_size(void);
/* Formats mem (size bytes, 8-byte aligned) as an empty table, or attaches to
 * one already formatted there (same size) when attach != 0.  A new key in a
 * full table (expired entries reclaimed first) answers R_FULL: the last
 * quarter of the table is kept from soft commands. */
jpki_err jpki_shm_init(void *mem, size_t size, int attach);
/* A handle over mem; no allocation: the handle is placed in h (opaque
 * storage of jpki_shm_handle_size() bytes). */
size_t jpki_shm_handle_size(void);
jpki_shm *jpki_shm_attach(void *handle_mem, void *mem, size_t size,
                          const jpki_shm_lock *lock);
void jpki_shm_exec(jpki_shm *s, const jpki_store_cmd *cmd, int64_t now_ms,
                   jpki_store_result *res);
/* n commands under one lock. */
void jpki_shm_exec_batch(jpki_shm *s, const jpki_store_cmd *cmds, size_t n,
                         int64_t now_ms, jpki_store_result *res);
/* n GETs without taking the lock (a seqlock: read, then tried again when a
 * locked section ran meanwhile; after a few tries, under the lock).  What
 * every gated request reads (the logout markers): no lock, no syscall.
 * Other commands: as jpki_shm_exec_batch. */
void jpki_shm_read_batch(jpki_shm *s, const jpki_store_cmd *cmds, size_t n,
                         int64_t now_ms, jpki_store_result *res);
/* 1 when the table has no room left for a new key (expired entries
 * reclaimed first): what health reports as store_full. */
int jpki_shm_is_full(jpki_shm *s, int64_t now_ms);
/* Deletes every live key starting with prefix; returns the count. */
uint64_t jpki_shm_delete_prefix(jpki_shm *s, const char *prefix,
                                int64_t now_ms);
uint64_t jpki_shm_count(jpki_shm *s, int64_t now_ms);
size_t jpki_shm_capacity(const jpki_shm *s);

/* ------------------------------------------------------------------ */
/* Logouts across nodes (outsync.c)                                    */
/* ------------------------------------------------------------------ */

/* A logout writes a marker: out:<cert_id> (every session of that
 * certificate signed in until then ends) or outa:<account_id> (`jpkictl
 * logout`: every session of the account).  Gated requests read the markers
 * in the node's own table (jpki_txn_request.local): the embedded store
 * itself, or, with Redis, a mirror that this poller fills from the logout
 * log (docs/store-schema.md "out").  One poller per process: the adapter
 * calls jpki_outsync_cmds() on a timer (or in a thread), runs the
 * commands in the shared store and feeds the results, which may ask for
 * more commands, until none are asked. */
#define JPKI_OUTSYNC_PERIOD_MS 500   /* a poll at most this often */
#define JPKI_OUTSYNC_STALE_MS  3000  /* no complete poll for this long: every
                                        session checks the store itself */
#define JPKI_OUTLOG_TTL        600   /* s a logout log record lives; also the
                                        most a mirrored marker lives (a
                                        session checks the store at least
                                        this often with a mirror) */
typedef struct jpki_outsync jpki_outsync;
jpki_outsync *jpki_outsync_new(const jpki_ctx *ctx, jpki_shm *mirror);
void jpki_outsync_free(jpki_outsync *o);
/* The commands of a poll due at now_ms (NULL, *n = 0: none due). */
const jpki_store_cmd *jpki_outsync_cmds(jpki_outsync *o, int64_t now_ms,
                                        size_t *n);
/* Their results (NULL: the store failed); returns the next commands of the
 * same poll, or NULL when it is over. */
const jpki_store_cmd *jpki_outsync_feed(jpki_outsync *o,
                                        const jpki_store_result *res,
                                        size_t n, int64_t now_ms,
                                        size_t *next_n);
/* 1 while the poller's last poll failed (the store does not answer):
 * jpki_txn_request.store_failing. */
int jpki_outsync_failing(const jpki_outsync *o);
/* The value of jpki_txn_request.local_since for a request at now_ms. */
int64_t jpki_outsync_since(const jpki_outsync *o, int64_t now_ms);

/* ------------------------------------------------------------------ */
/* Transactions: the sans-I/O login state machine                      */
/* ------------------------------------------------------------------ */

typedef enum {
    JPKI_OP_CHALLENGE = 0,   /* GET  <prefix>/challenge */
    JPKI_OP_LOGIN,           /* POST <prefix>/login */
    JPKI_OP_CHECK,           /* any gated request */
    JPKI_OP_LOGOUT,          /* POST <prefix>/logout */
    JPKI_OP_STATUS,          /* GET  <prefix>/status */
    JPKI_OP_TLS_LOGIN,       /* POST <prefix>/tls: a login by the client
                                certificate of the TLS handshake (the
                                verdict is a login's) */
    JPKI_OP_HEALTH,          /* GET a location's health answer: the store
                                probed, the answer req.health writes */
    JPKI_OP_PAGE,            /* GET  <prefix>/login: the login page */
    JPKI_OP_ASSET,           /* GET  <prefix>/page.css, page.js */
    JPKI_OP_DEVICE_START,    /* POST <prefix>/device: a device flow started
                                by the page (docs/protocol.md section 7) */
    JPKI_OP_DEVICE_SIGN,     /* POST <prefix>/sign: the signer's login into
                                a flow (a login's checks, no session) */
    JPKI_OP_DEVICE_POLL,     /* GET  <prefix>/poll: the page's session once
                                the flow is signed */
    JPKI_OP_ADMIN,           /* the admin API (<admin>/bind, unbind, certs,
                                logout): docs/admin.md */
    JPKI_OP_METRICS          /* GET a location's metrics (Prometheus text,
                                docs/operations.md): who may ask is the
                                admin API's allow-list and token */
} jpki_op;

typedef enum {
    JPKI_STEP_DONE = 0,      /* verdict ready */
    JPKI_STEP_STORE,         /* run jpki_txn_store_cmds(), feed results */
    JPKI_STEP_OCSP,          /* POST jpki_txn_ocsp(), feed the answer */
    JPKI_STEP_CRL            /* look the cert up in a CRL, feed the info */
} jpki_step;

typedef struct jpki_txn jpki_txn;

/* Where the account mapping comes from. */
typedef enum {
    JPKI_MAP_STORE = 0,      /* store key map:<cert_id> */
    JPKI_MAP_CALLBACK        /* adapter's mapping file via map_fn */
} jpki_map_source;
/* Looks up an account for cert_id (no I/O: an in-memory table). Returns the
 * account length, 0 when not mapped; out holds JPKI_ACCOUNT_MAX + 1. */
typedef size_t (*jpki_map_fn)(void *ud, const char *cert_id, char *out);

struct jpki_health;

typedef struct {
    jpki_op op;
    int64_t now;             /* seconds since the epoch */
    int is_post;
    int wants_json;          /* Accept prefers JSON (API client) */
    const char *content_type; size_t content_type_len;
    const uint8_t *body;     size_t body_len;   /* LOGIN */
    const char *cookie;      size_t cookie_len; /* session cookie value */
    const char *peer;        /* client address for the audit record */
    const char *uri;         /* request URI (CHECK: where to come back) */
    /* LOGIN, LOGOUT: where the browser says the request comes from (the
     * request headers, NULL when absent): a login or logout a page of
     * another origin made the browser send is refused (cross_origin),
     * unless that origin is in the policy's trusted_origins.  Requests
     * with neither header (API clients) are not concerned. */
    const char *sec_fetch_site; size_t sec_fetch_site_len;
    const char *origin;      size_t origin_len;
    /* CHALLENGE, LOGIN, LOGOUT: the raw Host header value (the adapter
     * falls back to the host it knows when there is none, HTTP/2): the
     * challenge is bound to it, and a login to another host is refused
     * (challenge_host). */
    const char *host;        size_t host_len;
    int crl_in_store;        /* CRLs of issuers without a local CRL file are
                                read from the store (Redis: crl sync) */
    const jpki_policy *policy; /* per-location policy, checked with
                                  jpki_policy_check at configuration (only
                                  its ranges are checked again here); NULL:
                                  the site's.
                                  Session, cookie, revocation and failure
                                  settings come from it; OCSP cache TTLs,
                                  clock skew, challenge TTL and SHA-1 from
                                  the site's. */
    jpki_map_source map_source;
    jpki_map_fn map_fn;
    void *map_ud;
    /* The node's table of logout markers, read by every gated request
     * without waiting (NULL: none, the markers are read at re-checks only).
     * shared_store == 0: the embedded store itself (the store commands run
     * there too); 1: the store is Redis and local is this node's mirror,
     * filled by a jpki_outsync poller: a logout also writes it and appends
     * to the logout log, and a session whose last check in the store is
     * older than local_since (jpki_outsync_since) or JPKI_OUTLOG_TTL checks
     * the store. */
    jpki_shm *local;
    int shared_store;
    int64_t local_since;
    /* the shared store is known not to answer (jpki_outsync_failing):
     * with store_outage sessions, a session whose re-check is not due
     * passes at once instead of waiting for the store to fail */
    int store_failing;
    /* TLS_LOGIN: the certificate the client presented in the TLS handshake
     * (DER or PEM; NULL: none; a length of 0: a NUL-terminated PEM), and
     * the connection's protocol version
     * (0x0303 TLS 1.2, 0x0304 TLS 1.3; 0: not TLS).  The handshake proved
     * the key: no challenge, no signature. */
    const uint8_t *client_cert; size_t client_cert_len;
    unsigned tls_version;
    /* or the connection itself (nginx): the certificate and the version
     * are read from it */
    const struct ssl_st *tls;
    /* PAGE, DEVICE_*: the query string (after '?', NULL: none), the
     * Accept-Language header, and whether the request came over TLS (the
     * origin a device flow's URL names: https or http) */
    const char *query;       size_t query_len;
    /* ADMIN: the Authorization header (a bearer token) */
    const char *authorization; size_t authorization_len;
    const char *accept_language; size_t accept_language_len;
    int https;
    /* HEALTH, METRICS: the site's part of the answer (jpki_site_health:
     * its CRL files, the embedded store local's state (NULL with Redis)),
     * into a collection of gate.h; 0: no memory */
    int (*health)(const void *ud, int64_t now, jpki_shm *local,
                  struct jpki_health *h);
    const void *health_ud;
    /* the request's id (nginx $request_id, Apache UNIQUE_ID or log id) for
     * its audit line and soft-pass record: 1..40 of A-Z a-z 0-9 @ . _ : +
     * / = - (audit.h); NULL or another: one the core makes */
    const char *request_id; size_t request_id_len;
    /* or, instead, a function the core calls only when a line or a record
     * needs the id (nginx's $request_id draws random bytes each time it is
     * read: most gated requests need none): the id, *len its length;
     * NULL: none */
    const char *(*request_id_fn)(const void *ud, size_t *len);
    const void *request_id_ud;
} jpki_txn_request;
/* 1 for the logins (LOGIN, TLS_LOGIN, DEVICE_SIGN): counted among the
 * logins being verified. */
int jpki_op_is_login(jpki_op op);
/* 1 for the operations whose POST has a body to read (the logins, and
 * DEVICE_START's return_to). */
int jpki_op_has_body(jpki_op op);
/* The cookie of the browser that started a device flow (Path: the
 * endpoints' location; HttpOnly, SameSite=Strict). */
#define JPKI_FLOW_COOKIE "jpki_flow"
/* The protocol version of mod_ssl's SSL_PROTOCOL ("TLSv1.2": 0x0303;
 * "TLSv1.3": 0x0304; NULL or another: 0). */
unsigned jpki_tls_version_of(const char *name);

#define JPKI_BODY_MAX (64 * 1024)

jpki_err jpki_txn_new(const jpki_ctx *ctx, const jpki_txn_request *req,
                      jpki_txn **out);
void jpki_txn_free(jpki_txn *t);
jpki_step jpki_txn_step(jpki_txn *t);

/* STORE: a batch of commands, to run in order (Redis: pipelined). */
const jpki_store_cmd *jpki_txn_store_cmds(const jpki_txn *t, size_t *n);
/* res[n]; any R_ERROR (or a timeout: pass NULL) ends fail-closed. */
void jpki_txn_feed_store(jpki_txn *t, const jpki_store_result *res,
                         size_t n);

/* OCSP: URL and DER body to POST (Content-Type application/ocsp-request). */
const char *jpki_txn_ocsp_url(const jpki_txn *t);
const uint8_t *jpki_txn_ocsp_body(const jpki_txn *t, size_t *len);
/* http_status 0 = I/O failure or timeout. */
void jpki_txn_feed_ocsp(jpki_txn *t, int http_status, const uint8_t *body,
                        size_t len);

/* CRL: the cert_id and issuer to look up; feed JPKI_OK + info, or the
 * error (JPKI_ERR_CRL_STALE, JPKI_ERR_REVOCATION_UNAVAILABLE). */
const char *jpki_txn_cert_id(const jpki_txn *t);
/* The key under which concurrent OCSP queries of one certificate are one
 * query (the cert_id), or NULL when each is its own (nonces). */
const char *jpki_txn_ocsp_key(const jpki_txn *t);
const jpki_issuer *jpki_txn_issuer(const jpki_txn *t);
/* The SHA-1 hash of the key that issued the certificate (20 bytes; NULL
 * before it is checked): the CRL that covers it is that key's. */
const uint8_t *jpki_txn_issuer_key(const jpki_txn *t);
void jpki_txn_feed_crl(jpki_txn *t, jpki_err e, const jpki_rev_info *info);

typedef struct {
    int http_status;          /* 200, 303, 400, 401, 403, 503 ... */
    jpki_err err;             /* JPKI_OK on success */
    const char *reason;       /* jpki_reason(err) or "ok" */
    const char *body;         /* JSON, NUL-terminated */
    size_t body_len;
    const char *set_cookie;   /* whole Set-Cookie header value, or NULL */
    const char *location;     /* Location for 302/303, or NULL */
    const char *account;      /* when authenticated */
    const char *cert_id;
    int64_t auth_time;
    int soft_pass;            /* passed under fail_open: audited */
    int store_outage;         /* a gated request passed without its store
                                 read: the store did not answer
                                 (store_outage sessions) */
    unsigned retry_after;     /* seconds, for a Retry-After header (429,
                                 503 busy); 0: none */
    unsigned delay_ms;        /* hold the answer this long when holding it
                                 costs nothing (nginx: a timer): a throttled
                                 client's flood then slows itself down */
    const char *audit;        /* one JSON line for the audit log */
    const char *allow;        /* a 405: the methods taken, for an Allow
                                 header (RFC 9110); NULL otherwise */
    const char *content_type; /* the body's type: NULL for JSON */
    const jpki_header *headers; /* more headers of the gate's answer
                                 (pages: jpki_page_headers), NULL-name-
                                 terminated; NULL: none */
    const char *set_cookie2;  /* a second Set-Cookie (the device flow's
                                 cookie cleared with the session set), or
                                 NULL */
} jpki_verdict;
const jpki_verdict *jpki_txn_verdict(const jpki_txn *t);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_H */
