/*
 * conf.h - the grammar of the gate's directives, once for both adapters.
 *
 * An adapter reads its server's configuration syntax (nginx's words,
 * Apache's argv) and hands the words of a directive to these parsers; they
 * check them against one grammar with one set of limits and one set of
 * sentences, and give back a value (jpki_conf_values) or a spec struct
 * (jpki_store_spec).  The adapter then does only its server's work:
 * allocating zones, TLS contexts, resolving names.  docs/configuration.md
 * ("Directive grammar") describes the words.
 *
 * Error sentences never name the directive (each server spells it its own
 * way): they are a predicate ("must be ...", "is duplicate") or a phrase
 * ("invalid db= (0..15)"); jpki_conf_message() joins name and sentence.
 */
#ifndef JPKI_CONF_H
#define JPKI_CONF_H

#include "jpki.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The core's default policy (what jpki_ctx_new starts from). */
void jpki_policy_defaults(jpki_policy *p);

/* ---- values -------------------------------------------------------- */

/* A time: digits with a unit, several in a row ("1h30m", "1h 30m"): ms
 * (only when ms_ok), s, m, h, d, w, M (30 days), y (365 days); bare digits
 * are seconds.  *ms in milliseconds. */
jpki_err jpki_conf_time(const char *s, int ms_ok, uint64_t *ms, char *err,
                        size_t errlen);
/* A size: digits, optionally k, m or g (either case; powers of 1024),
 * 1 byte .. 64 GiB. */
jpki_err jpki_conf_size(const char *s, uint64_t *bytes, char *err,
                        size_t errlen);
/* on or off in any case; s NULL (the directive without an argument) is
 * on. */
jpki_err jpki_conf_flag(const char *s, int *on, char *err, size_t errlen);
/* "<name> <sentence>" for a predicate sentence ("must be ...", "is ...",
 * "needs ..."), else "<name>: <sentence>". */
void jpki_conf_message(char *out, size_t outlen, const char *name,
                       const char *sentence);

/* ---- simple directives (one value each) --------------------------- */

/* Where a directive is written: a site (nginx http/server, Apache server
 * or virtual host) or a location (merged down; Apache directory too). */
#define JPKI_CONF_SITE      1
#define JPKI_CONF_LOCATION  2

typedef enum {
    /* site */
    JPKI_D_CHALLENGE_TTL = 0,
    JPKI_D_CLOCK_SKEW,
    JPKI_D_OCSP_CACHE_GOOD,
    JPKI_D_OCSP_CACHE_HOLD,
    JPKI_D_OCSP_CACHE_REVOKED,
    JPKI_D_CRL_POINTER_TTL,
    JPKI_D_OCSP_NONCE,
    JPKI_D_CRL_GRACE,
    JPKI_D_REDIS_TIMEOUT,          /* ms, the adapter's (no policy field) */
    JPKI_D_REDIS_CONNECT_TIMEOUT,
    JPKI_D_OCSP_TIMEOUT,
    /* location */
    JPKI_D_SESSION_LIFETIME,
    JPKI_D_SESSION_IDLE,
    JPKI_D_RECHECK_INTERVAL,
    JPKI_D_COOKIE_NAME,
    JPKI_D_COOKIE_PATH,
    JPKI_D_COOKIE_SAMESITE,
    JPKI_D_COOKIE_SECURE,
    JPKI_D_REVOCATION,
    JPKI_D_FAILURE,
    JPKI_D_LOGIN_PAGE,
    JPKI_D_TRUSTED_ORIGINS,        /* the words joined by one blank */
    JPKI_D_REQUIRE_ACCOUNT,
    JPKI_D_HEADER,                 /* the adapter's */
    JPKI_D_PASS_COOKIE,            /* the adapter's */
    JPKI_D_LOGIN_METHODS,          /* the words joined by one blank */
    JPKI_D_ENROLL_PAGE,
    JPKI_D_ADMIN_ALLOW,            /* the words joined by one blank */
    JPKI_D_ENROLL_TTL,
    JPKI_D_STORE_OUTAGE,
    JPKI__D_COUNT
} jpki_directive_id;

typedef enum {
    JPKI_CONF_SECS = 0,    /* a time in whole seconds, min..max */
    JPKI_CONF_MSEC,        /* a time in milliseconds, min..max */
    JPKI_CONF_FLAG,        /* on | off */
    JPKI_CONF_TOKEN,       /* an HTTP token of 1..max characters */
    JPKI_CONF_PATH,        /* a cookie path: "/...", at most max */
    JPKI_CONF_SAMESITE,    /* Strict | Lax | None (any case) */
    JPKI_CONF_REVOCATION,  /* jpki_rev_policy_parse, not "none" */
    JPKI_CONF_FAILURE,     /* closed | open (any case): fail_open */
    JPKI_CONF_LOGIN_PAGE,  /* none | /... | http(s)://..., at most max */
    JPKI_CONF_ORIGINS,     /* at most max characters (checked with the
                              policy: jpki_policy_check) */
    JPKI_CONF_GRACE,       /* auto | a time of min..max seconds */
    JPKI_CONF_METHODS,     /* none, or tls and device, each once */
    JPKI_CONF_CIDRS,       /* addresses and networks (jpki_cidr_allows) */
    JPKI_CONF_OUTAGE       /* closed | sessions (any case): store_outage */
} jpki_conf_kind;

#define JPKI_CONF_NO_FIELD ((size_t)-1)

typedef struct {
    const char *key;       /* the setting's name in docs and messages */
    int level;             /* JPKI_CONF_SITE or JPKI_CONF_LOCATION */
    jpki_conf_kind kind;
    size_t field;          /* offset in jpki_policy, or JPKI_CONF_NO_FIELD
                              (the adapter reads it: jpki_conf_num/str) */
    long long min, max;    /* numbers: bounds; strings: max length */
    long long def;         /* default of a value without a field */
    const char *sdef;      /* same, strings */
} jpki_directive;

/* The table, indexed by jpki_directive_id. */
extern const jpki_directive jpki_directives[JPKI__D_COUNT];

#define JPKI_CONF_UNSET (-1LL)

/* The values written in one block (a site, a location), before merging.
 * Strings point to the caller's memory (the adapter's configuration
 * pool) or to constants. */
typedef struct {
    long long n[JPKI__D_COUNT];        /* JPKI_CONF_UNSET: not written */
    const char *s[JPKI__D_COUNT];      /* NULL: not written */
    jpki_rev_policy rev;               /* JPKI_D_REVOCATION */
} jpki_conf_values;

void jpki_conf_init(jpki_conf_values *v);
/* Parses the value of directive id (the words joined by one blank for
 * JPKI_CONF_ORIGINS) into v.  JPKI_ERR_INVALID and a sentence: a bad value,
 * or "is duplicate" when v already has one. */
jpki_err jpki_conf_set(jpki_conf_values *v, jpki_directive_id id,
                       const char *arg, char *err, size_t errlen);
/* What child does not set, it takes from parent. */
void jpki_conf_merge(jpki_conf_values *child, const jpki_conf_values *parent);
/* 1 when any directive of level is written in v. */
int jpki_conf_any(const jpki_conf_values *v, int level);
/* Writes the values of v at level with a policy field into p (the others
 * stay as they are: the site's, the core's defaults). */
void jpki_conf_apply(const jpki_conf_values *v, int level, jpki_policy *p);
/* A value, or its default when not written (for a policy field: the
 * core's default policy). */
long long jpki_conf_num(const jpki_conf_values *v, jpki_directive_id id);
const char *jpki_conf_str(const jpki_conf_values *v, jpki_directive_id id);

/* ---- the store (nginx jpki_store, Apache JPKIStore) ----------------- */

typedef enum {
    JPKI_STORE_KIND_NONE = 0,
    JPKI_STORE_KIND_SHM,
    JPKI_STORE_KIND_REDIS
} jpki_store_kind;

#define JPKI_CONF_STORE_SIZE    (10 * 1024 * 1024)   /* shm size= */
#define JPKI_CONF_MIRROR_SIZE   (1024 * 1024)        /* redis mirror= */
#define JPKI_CONF_REDIS_PORT    6379
#define JPKI_CONF_KEEPALIVE     16
#define JPKI_CONF_SENTINEL_PORT 26379
#define JPKI_CONF_SENTINELS_MAX 8              /* sentinel= addresses */
#define JPKI_CONF_PASSWORD_MAX  511            /* password_file='s line */

typedef struct {
    jpki_store_kind kind;
    /* shm */
    char zone[64];             /* ["jpki"] */
    uint64_t size;             /* [10m], at least jpki_conf_zone_min() */
    /* redis */
    char addr[256];            /* after redis=, as written (names the
                                  logout mirror) */
    char host[256];            /* "" for a unix socket; no brackets */
    unsigned port;             /* [6379] */
    char unix_path[108];       /* absolute (sun_path); "" for TCP */
    int db;                    /* [0] 0..15 */
    char user[128];            /* "" none */
    char password_file[1024];  /* as written ("" none; the adapter's
                                  siteconf reads it into password) */
    char password[JPKI_CONF_PASSWORD_MAX + 1]; /* "" none */
    unsigned keepalive;        /* [16] 1..1024 */
    int tls;                   /* [0] */
    char tls_ca[1024];         /* as written (the adapter resolves it) */
    char tls_name[256];        /* [the host]; with sentinel=: "" checks
                                  each server by the address it is
                                  reached at */
    char tls_cert[1024];       /* client certificate (PEM chain), as
                                  written, "" none */
    char tls_key[1024];        /* its key, as written */
    uint64_t mirror;           /* [1m], at least jpki_conf_zone_min() */
    /* sentinel=HOST:PORT,... master=NAME: the primary is asked of the
     * sentinels (n_sentinels 0: redis=, one server) */
    unsigned n_sentinels;
    struct {
        char host[256];        /* no brackets */
        unsigned port;         /* [26379] */
    } sentinels[JPKI_CONF_SENTINELS_MAX];
    char master[64];           /* master= */
    char sentinel_password_file[1024];  /* sentinel_password_file=, as
                                  written ("" none: sentinels asked
                                  without AUTH) */
    char sentinel_password[JPKI_CONF_PASSWORD_MAX + 1];  /* its line */
    unsigned replicas;         /* replicas= [0] 0..8: a used challenge and
                                  a logout marker acknowledged by as many
                                  replicas (WAIT) before they count */
    /* an old spelling was used: a sentence for a warning ("" none) */
    char warning[160];
} jpki_store_spec;

/* The least size= and mirror= (64k, or more if the table needs it). */
uint64_t jpki_conf_zone_min(void);
/* argv[0..argc-1]: the directive's words after its name:
 *   shm [zone=NAME] [size=SIZE]
 *   redis=HOST[:PORT]|[V6]:PORT|unix:/PATH [db=N] [user=U]
 *         [password_file=FILE] [keepalive=N] [tls=on|off] [tls_ca=FILE]
 *         [tls_name=NAME] [tls_cert=FILE tls_key=FILE] [mirror=SIZE]
 *         [replicas=N] [sentinel_password_file=FILE] (with sentinel=)
 *   sentinel=HOST[:PORT][,HOST[:PORT]...] master=NAME [the same options]
 * password= (inline) is refused: password_file= names a file read by
 * jpki_conf_password_file (siteconf.c). 
 * The old nginx spelling "zone=NAME:SIZE" is taken, with a warning. */
jpki_err jpki_conf_store(int argc, const char *const *argv,
                         jpki_store_spec *spec, char *err, size_t errlen);

/* The password of password_file= (path absolute): the file's first line
 * (a trailing "\n" or "\r\n" stripped) into out[outlen], 1..
 * JPKI_CONF_PASSWORD_MAX bytes, no NUL; the file must be a regular file
 * that others cannot read (mode o-rwx).  err: why not (never the
 * password). */
jpki_err jpki_conf_password_file(const char *path, char *out, size_t outlen,
                                 char *err, size_t errlen);

/* ---- a site's required pieces, in each server's spelling --------- */

/* Which server's words a sentence uses. */
typedef enum {
    JPKI_SERVER_NGINX = 0,
    JPKI_SERVER_APACHE
} jpki_server;

/* The directives a site is made of: a secret file, one issuer or more,
 * a store (nginx: in one block; Apache: in one server or virtual host). */
typedef enum {
    JPKI_SITE_SECRET = 0,
    JPKI_SITE_ISSUER,
    JPKI_SITE_STORE,
    JPKI__SITE_COUNT
} jpki_site_piece;

/* A piece's directive as server srv spells it ("jpki_secret_file",
 * "JPKISecretFile"...). */
const char *jpki_conf_site_directive(jpki_server srv, jpki_site_piece p);
/* "A, B and C": the three pieces in srv's spelling (a constant). */
const char *jpki_conf_site_pieces(jpki_server srv);
/* The sentence for a site that lacks a piece (the first missing: the
 * secret file, then the issuers, then the store), "\"X\" is required (a
 * site needs A, B and C in the same ...)", into out; 0 when the site has
 * them all, else the sentence's length. */
size_t jpki_conf_site_missing(jpki_server srv, int has_secret,
                              size_t issuers, int has_store, char *out,
                              size_t outlen);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_CONF_H */
