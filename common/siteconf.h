/*
 * siteconf.h - a site's configuration as written, once for both adapters:
 * its directives (the secret file, the issuers, the store, the mapping
 * file, the CRL zone, the core's simple site values) checked where they
 * are written and kept; then the site built from it (site.h:
 * jpki_site_build).
 *
 * The adapter reads its server's syntax, hands the words of a directive
 * here with its part (jpki_sc_env: paths made absolute from its root,
 * warnings said at the directive, where the directive is), and says the
 * sentence it gets back after the directive's name (jpki_conf_message).
 * Duplicates, the issuers' names and their limit, the files loading, each
 * grammar and its limits are decided here, with the same sentences on both
 * servers.
 */
#ifndef JPKI_SITECONF_H
#define JPKI_SITECONF_H

#include "jpki.h"
#include "conf.h"
#include "conf_issuer.h"

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The site directives with words of their own (the simple values go
 * through jpki_siteconf_value). */
typedef enum {
    JPKI_SC_SECRET = 0,     /* FILE */
    JPKI_SC_ISSUER,         /* NAME ca=FILE[,FILE...] ... (conf_issuer.h) */
    JPKI_SC_STORE,          /* shm ... | redis=... (jpki_conf_store) */
    JPKI_SC_MAP,            /* FILE */
    JPKI_SC_CRL_ZONE,       /* off | SIZE | NAME:SIZE (SIZE at least 32k) */
    JPKI_SC_AUDIT_LOG,      /* FILE [key_file=FILE] (audit.h) */
    JPKI__SC_COUNT
} jpki_sc_directive;

/* The adapter's part while a directive is read. */
typedef struct {
    /* the server's absolute path for p (its root, its prefix), in memory
     * that lasts while the call does (copied); NULL: not a path */
    const char *(*abs)(void *ud, const char *p);
    /* a warning said at the directive (a CA key no CRL covers, an old
     * spelling); NULL: none said */
    void (*warn)(void *ud, const char *msg);
    void *ud;
    /* the directive as written, and where: the first site directive of a
     * block is kept for the sentence of one that has no effect */
    const char *name;
    const char *file;
    unsigned line;
} jpki_sc_env;

typedef struct jpki_siteconf jpki_siteconf;

jpki_siteconf *jpki_siteconf_new(void);
/* Frees it and what it holds (the store's password wiped). */
void jpki_siteconf_free(jpki_siteconf *sc);

/* A site directive's words after its name.  JPKI_ERR_INVALID and a
 * sentence for jpki_conf_message ("is duplicate", "needs a unique name
 * ...", "invalid db= (0..15)"...); JPKI_ERR_NOMEM. */
jpki_err jpki_siteconf_set(jpki_siteconf *sc, jpki_sc_directive d, int argc,
                           const char *const *argv, const jpki_sc_env *env,
                           char *err, size_t errlen);
/* A simple site value of the core's table (jpki_conf_set's sentences). */
jpki_err jpki_siteconf_value(jpki_siteconf *sc, jpki_directive_id id,
                             const char *arg, const jpki_sc_env *env,
                             char *err, size_t errlen);

/* 1 when it is a site: a secret file, an issuer or a store is written
 * (inherited ones included). */
int jpki_siteconf_is_site(const jpki_siteconf *sc);
/* The first site directive written in this block, and where; NULL:
 * none. */
const char *jpki_siteconf_first(const jpki_siteconf *sc, const char **file,
                                unsigned *line);

/* Apache's virtual hosts: what sc does not write it takes from base (the
 * main server's, which outlives it); its values merged over base's. */
void jpki_siteconf_inherit(jpki_siteconf *sc, const jpki_siteconf *base);

/* What was written (inherited ones included). */
const char *jpki_siteconf_secret(const jpki_siteconf *sc);
size_t jpki_siteconf_issuers(const jpki_siteconf *sc);
const jpki_conf_issuer *jpki_siteconf_issuer(const jpki_siteconf *sc,
                                             size_t i);
/* NULL: no store written. */
const jpki_store_spec *jpki_siteconf_store(const jpki_siteconf *sc);
/* The absolute tls_ca= of a Redis store with TLS (NULL: none), and the
 * client TLS context loaded from it where the store was written (NULL:
 * no TLS; it lives as long as sc). */
const char *jpki_siteconf_tls_ca(const jpki_siteconf *sc);
SSL_CTX *jpki_siteconf_redis_tls(const jpki_siteconf *sc);
const char *jpki_siteconf_map(const jpki_siteconf *sc);
/* The CRL zone's size (0: none or off) and name ("": the adapter's). */
uint64_t jpki_siteconf_crl_zone(const jpki_siteconf *sc, const char **name);
const jpki_conf_values *jpki_siteconf_values(const jpki_siteconf *sc);
/* The audit file (absolute; NULL: none, the lines go to the error log)
 * and *key the key of its key_file= (NULL: the site secret's). */
const char *jpki_siteconf_audit(const jpki_siteconf *sc,
                                const uint8_t **key);

/* The CRL zone's words: off (size 0), SIZE or NAME:SIZE; name into
 * name[namelen] ("" when not given). */
jpki_err jpki_conf_crl_zone(const char *arg, uint64_t *size, char *name,
                            size_t namelen, char *err, size_t errlen);

/* ---- a location's configuration ----------------------------------- */

/* What a location (nginx http, server, location; Apache server,
 * <Location>, <Directory>) writes of the core's: its values and its
 * throttle, merged down the levels. */
typedef struct {
    jpki_conf_values values;
    jpki_throttle throttle;
    int throttle_here;          /* written at this level */
    const struct jpki_page_tmpl *tmpl; /* the login page's template (NULL:
                                          the built-in one) */
    int tmpl_here;
    uint8_t admin_token[32];    /* SHA-256 of the admin API's token */
    int admin_token_set;
    /* the allow-lists (allow.h; NULL: no rule), the adapter's to free */
    const struct jpki_allow *accounts;
    const struct jpki_allow *issuers;
    int accounts_here, issuers_here;
} jpki_locconf;

void jpki_locconf_init(jpki_locconf *lc);
/* The throttle directive's words (jpki_throttle_parse): "is duplicate" at
 * the same level, or the parser's sentence (a phrase). */
jpki_err jpki_locconf_throttle(jpki_locconf *lc, const char *args, char *err,
                               size_t errlen);
/* The login page's template file (jpki_login_template FILE, absolute):
 * read and checked now ("is duplicate" at the same level, or the
 * template's sentence with its line).  *loaded: the template, which the
 * adapter frees with jpki_page_tmpl_free when its configuration goes. */
jpki_err jpki_locconf_template(jpki_locconf *lc, const char *path,
                               struct jpki_page_tmpl **loaded, char *err,
                               size_t errlen);
/* The admin API's token file (jpki_admin_token_file FILE, absolute): read
 * and checked now ("is duplicate", or the file's sentence). */
jpki_err jpki_locconf_admin_token(jpki_locconf *lc, const char *path,
                                  char *err, size_t errlen);
/* An allow-list (jpki_allow_accounts ID..., jpki_allow_issuers NAME...):
 * the words parsed (jpki_allow_parse), "is duplicate" at the same level.
 * *loaded: the list, which the adapter frees with jpki_allow_free when
 * its configuration goes. */
jpki_err jpki_locconf_allow(jpki_locconf *lc, int issuers, int argc,
                            const char *const *argv,
                            struct jpki_allow **loaded, char *err,
                            size_t errlen);
/* The location's issuer names against its site's issuers, when its
 * configuration is checked (jpki_allow_resolve): an unknown name is
 * refused with its sentence. */
jpki_err jpki_locconf_resolve(const jpki_locconf *lc, const jpki_ctx *ctx,
                              char *err, size_t errlen);
/* Whether the location lets the gated request of transaction t (its
 * verdict passed) through: jpki_allow_check with the verdict's account
 * and the session's issuer.  JPKI_OK, or the refusal's error
 * (jpki_edge_refusal: 403) with the log sentence in msg. */
jpki_err jpki_locconf_allows(const jpki_locconf *lc, const jpki_ctx *ctx,
                             const jpki_txn *t, char *msg, size_t msglen);
/* What child does not write it takes from parent. */
void jpki_locconf_merge(jpki_locconf *child, const jpki_locconf *parent);
/* 1 when it writes anything. */
int jpki_locconf_any(const jpki_locconf *lc);
/* What the adapter does with a location's request: the account header's
 * name (jpki_header), whether the session cookie goes upstream
 * (jpki_pass_cookie). */
const char *jpki_locconf_header(const jpki_locconf *lc);
int jpki_locconf_pass_cookie(const jpki_locconf *lc);
/* The location's policy: the site's, then its values and throttle (the
 * session cookie always HttpOnly), checked (jpki_policy_check). */
jpki_err jpki_locconf_policy(const jpki_locconf *lc, const jpki_policy *site,
                             jpki_policy *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_SITECONF_H */
