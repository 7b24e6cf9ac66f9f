/*
 * jpkictl.h - what the parts of jpkictl share: exit codes, options, the
 * parsed command line, helpers of jpkictl.c (the dispatch), and the
 * command families defined in the other files: cert_cmds.c (sig-verify,
 * cert-check, crl inspect), map_cmds.c (map, logout), redis_conn.c, and
 * CRL distribution through Redis (crl_sync.c, crl_check.c, crl_store.c,
 * crl_fetch.c).
 */
#ifndef JPKICTL_H
#define JPKICTL_H

#include "jpki.h"
#include "opts.h"

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Exit status.  0..2 for every command; 3..5 for the store commands (crl
 * sync, crl status, recheck, purge; map: 5 only): see docs/operations.md. */
#define EXIT_VALID     0
#define EXIT_INVALID   1          /* also: CRL invalid or stale; revoked */
#define EXIT_USAGE     2
#define EXIT_NOT_NEWER 3          /* crl sync: nothing newer to load */
#define EXIT_FETCH     4          /* crl sync: the source did not answer */
#define EXIT_STORE     5          /* Redis unreachable, refused or busy */
#define SHOW_USAGE     (-1)       /* usage error: print the command's usage */

#define ARG_MAX_LEN    4096       /* any option value */
#define MAX_ISSUER_OPT 16         /* --issuer / --policy options */
#define GRACE_MAX      (10u * 366 * 86400)
#define CERT_FILE_MAX  (1024 * 1024)
#define MAX_FILES      64         /* FILE arguments of one command */

enum {
    O_CERT, O_PUBKEY, O_ALG, O_MSG, O_SIG, O_ALLOW_SHA1, O_ISSUER, O_POLICY,
    O_AT, O_SECRET, O_CRL, O_GRACE, O_HELP, O_ACCOUNT, O_SERIAL, O_CERT_ID,
    O_REDIS, O_REDIS_DB, O_REDIS_USER, O_REDIS_PASSWORD, O_MAP_FILE,
    O_SOURCE, O_WATCH, O_ARL, O_REVOCATION, O_KEEP_OLD, O_MAX_SIZE,
    O_TIMEOUT, O_DRY_RUN, O_FILE, O_KEY_FILE, O_LAST_SEQ, O_REDIS_SENTINEL,
    O_REDIS_MASTER, O_REDIS_PASSWORD_FILE, O_REDIS_TLS_CA, O_REDIS_TLS_NAME,
    O_REDIS_TLS_CERT, O_REDIS_TLS_KEY, O_REDIS_SENTINEL_PASSWORD_FILE,
    O_FULL, O_DELTA_MAX, O_STATE_DIR, O__COUNT
};
#define BIT(o) (1ull << (o))
_Static_assert(O__COUNT <= 64, "options are bits of an unsigned long long");

typedef struct {
    unsigned long long seen;             /* BIT(o) of the options given */
    const char *val[O__COUNT];           /* single-valued options; O_FILE:
                                            the command's FILE argument */
    const char *issuer[MAX_ISSUER_OPT];
    size_t n_issuer;
    const char *policy[MAX_ISSUER_OPT];
    size_t n_policy;
    time_t now;                          /* --at, or the current time */
    const char *files[MAX_FILES];        /* the FILE arguments (audit
                                            verify: several) */
    size_t n_files;
} args_t;

/* jpkictl.c */
const char *iso8601(int64_t t, char buf[32]);
int all_digits(const char *s, size_t n);
int load(const char *what, const char *path, size_t max, uint8_t **buf,
         size_t *len);
/* The unsigned value of option o (def when absent) within [min, max]; -1
 * with a message when it is not a decimal number in range. */
int opt_uint(const args_t *a, int o, unsigned long long min,
             unsigned long long max, unsigned long long def,
             unsigned long long *out);
jpki_ctx *build_ctx(const args_t *a, int secret_note);
/* map_cmds.c: n bytes written to fd (EINTR retried); 0, -1 (errno). */
int write_all(int fd, const uint8_t *d, size_t n);
/* The site secret of --secret-file, else (with a note when note) a random
 * one.  0, -1 with a message. */
int set_secret(jpki_ctx *ctx, const args_t *a, int note);

/* redis_conn.c: --redis (or --redis-sentinel and --redis-master), --redis-db
 * and --redis-password-file checked before any command runs (a mistyped
 * value is a usage error, never another port or database 0; the inline
 * --redis-password is refused); the connection, authenticated and on its
 * database, to the primary the sentinels name checked by ROLE (NULL with a
 * message); 1 when r is a SCAN reply [cursor, [key, ...]]. */
int check_redis_opts(const args_t *a);
/* After check_redis_opts: the password read from its file or
 * JPKI_REDIS_PASSWORD's, wiped. */
void redis_opts_clear(void);

/* redis_tls.c: with --redis-tls-ca, the TLS context of the options (CA,
 * client certificate; NULL after a message), and a hiredis connection to
 * host:port over TLS, the server verified (NULL after a message). */
SSL_CTX *redis_tls_ctx(const args_t *a);
redisContext *redis_tls_connect(const args_t *a, const char *host, int port);
redisContext *redis_open(const args_t *a);
int scan_reply_ok(const redisReply *r);
redisReply *scan_next(redisContext *rc, char cursor[32], const char *match);

/* cert_cmds.c */
extern const char usage_sig[];
extern const char usage_cert[];
extern const char usage_crl[];
int run_sig_verify(const args_t *a);
int run_cert_check(const args_t *a);
int run_crl_inspect(const args_t *a);

/* map_cmds.c */
extern const char usage_map[];
extern const char usage_logout[];
int run_map_add(const args_t *a);
int run_map_remove(const args_t *a);
int run_map_list(const args_t *a);
int run_logout(const args_t *a);
/* The mapping file rewritten under its lock: build makes the new content
 * from the old (oldlen 0: no file yet); *neu NULL: nothing to change.  0,
 * or -1 after a message ("...; nothing changed"). */
typedef jpki_err (*map_file_fn)(const uint8_t *old, size_t oldlen, void *arg,
                                uint8_t **neu, size_t *neulen);
int map_file_rewrite(const char *path, map_file_fn build, void *arg);
/* One of --redis or --map-file given: 0, or -1 after a message. */
int map_backend(const args_t *a);

/* map_bulk.c */
extern const char usage_map_bulk[];
int run_map_import(const args_t *a);
int run_map_export(const args_t *a);
int run_map_prune(const args_t *a);

/* crl_fetch.c: the bytes of a CRL from a file path, file://, http(s):// or
 * ldap(s):// (the certificateRevocationList;binary value of the LDAP
 * answer, decoded); at most max bytes.  0, or -1 with a sentence in err. */
int crl_fetch(const char *source, size_t max, unsigned timeout_s,
              uint8_t **out, size_t *outlen, char *err, size_t errlen);
/* A local path read by a thread from now on (a national CRL: tens of
 * megabytes, read while the configuration is built), which the next
 * crl_fetch of that path takes; nothing for a URL.  crl_fetch_drop joins
 * it and frees what was not taken. */
void crl_fetch_ahead(const char *source, size_t max);
void crl_fetch_drop(void);
/* The source without user:password@ (what logs and the store may show). */
void source_redact(const char *src, char *out, size_t outlen);
/* Decodes libcurl's LDIF-like text for an LDAP search: the one value of a
 * certificateRevocationList or authorityRevocationList attribute. */
int ldap_answer_decode(const uint8_t *in, size_t len, uint8_t **der,
                       size_t *derlen, char *err, size_t errlen);

/* crl_sync.c, crl_check.c */
extern const char usage_crl_sync[];
extern const char usage_purge[];
extern const char usage_recheck[];
int run_crl_sync(const args_t *a);
int run_crl_status(const args_t *a);
int run_purge(const args_t *a);
int run_recheck(const args_t *a);

/* audit_cmds.c */
extern const char usage_audit[];
int run_audit_verify(const args_t *a);

#endif /* JPKICTL_H */
