/*
 * siteconf.c - a site's configuration as written (siteconf.h).
 */
#include "siteconf.h"
#include "crlzone.h"
#include "site.h"
#include "redis.h"
#include "internal.h"
#include "page.h"
#include "admin.h"
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

struct jpki_siteconf {
    const jpki_siteconf *base;          /* Apache: the main server's */
    char *secret;
    jpki_conf_issuer *issuers[JPKI_MAX_ISSUERS];
    size_t n_issuers;
    jpki_store_spec *store;
    char *tls_ca;                       /* absolute */
    SSL_CTX *tls;                       /* loaded from it, the site's */
    char *map;
    int crl_zone_set;
    uint64_t crl_zone;
    char crl_zone_name[64];
    jpki_conf_values values;
    char *audit;                        /* jpki_audit_log FILE */
    uint8_t audit_key[32];              /* its key_file='s */
    int audit_key_set;
    char *first, *first_file;
    unsigned first_line;
};

jpki_siteconf *jpki_siteconf_new(void)
{
    jpki_siteconf *sc = calloc(1, sizeof(*sc));

    if (sc != NULL)
        jpki_conf_init(&sc->values);
    return sc;
}

void jpki_siteconf_free(jpki_siteconf *sc)
{
    size_t i;

    if (sc == NULL)
        return;
    free(sc->secret);
    for (i = 0; i < sc->n_issuers; i++) {
        jpki_conf_issuer_free(sc->issuers[i]);
        free(sc->issuers[i]);
    }
    if (sc->store != NULL)
        OPENSSL_cleanse(sc->store, sizeof(*sc->store));
    free(sc->store);
    free(sc->tls_ca);
    SSL_CTX_free(sc->tls);
    free(sc->map);
    free(sc->audit);
    OPENSSL_cleanse(sc->audit_key, sizeof(sc->audit_key));
    free(sc->first);
    free(sc->first_file);
    free(sc);
}

static void note(jpki_siteconf *sc, const jpki_sc_env *env)
{
    if (sc->first != NULL || env == NULL || env->name == NULL)
        return;
    sc->first = strdup(env->name);
    sc->first_file = strdup(env->file != NULL ? env->file : "");
    sc->first_line = env->line;
}

static jpki_err fail(char *err, size_t errlen, const char *msg)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return JPKI_ERR_INVALID;
}

/* FILE made absolute by the adapter, into *out. */
static jpki_err abs_file(const jpki_sc_env *env, const char *arg, char **out,
                         char *err, size_t errlen)
{
    const char *a = env != NULL && env->abs != NULL
                    ? env->abs(env->ud, arg) : arg;

    if (a == NULL) {
        jpki_set_detail(err, errlen, "invalid path \"%.256s\"", arg);
        return JPKI_ERR_INVALID;
    }
    *out = strdup(a);
    return *out != NULL ? JPKI_OK : JPKI_ERR_NOMEM;
}

static jpki_err set_secret(jpki_siteconf *sc, const char *arg,
                           const jpki_sc_env *env, char *err, size_t errlen)
{
    char *path = NULL;
    jpki_err e;

    if (sc->secret != NULL)
        return fail(err, errlen, "is duplicate");
    e = abs_file(env, arg, &path, err, errlen);
    /* read now: a clear error at the directive's line */
    if (e == JPKI_OK)
        e = jpki_site_secret(NULL, path, err, errlen);
    if (e != JPKI_OK) {
        free(path);
        return e;
    }
    sc->secret = path;
    return JPKI_OK;
}

static void env_warn(void *ud, const char *msg)
{
    const jpki_sc_env *env = ud;

    if (env->warn != NULL)
        env->warn(env->ud, msg);
}

static const char *env_abs(void *ud, const char *p)
{
    const jpki_sc_env *env = ud;

    return env->abs != NULL ? env->abs(env->ud, p) : p;
}

static jpki_err set_issuer(jpki_siteconf *sc, int argc,
                           const char *const *argv, const jpki_sc_env *env,
                           char *err, size_t errlen)
{
    static const jpki_sc_env none;
    jpki_conf_issuer *is;
    size_t i;

    is = calloc(1, sizeof(*is));
    if (is == NULL)
        return JPKI_ERR_NOMEM;
    if (env == NULL)
        env = &none;
    if (jpki_conf_issuer_parse(is, argv, (size_t)argc, err, errlen)
        != JPKI_OK) {
        free(is);
        return JPKI_ERR_INVALID;
    }
    /* the name is another issuer's, or the issuer one too many: refused
     * where it is written */
    for (i = 0; i < sc->n_issuers; i++)
        if (strcmp(sc->issuers[i]->name, is->name) == 0)
            break;
    if (i < sc->n_issuers || jpki_site_issuers_full(sc->n_issuers)) {
        jpki_conf_issuer_free(is);
        free(is);
        return fail(err, errlen, JPKI_SITE_ISSUER_NAME);
    }
    /* the files load, and each CA key has a CRL (a warning) */
    if (jpki_conf_issuer_paths(is, env_abs, (void *)env, err, errlen)
            != JPKI_OK
        || jpki_conf_issuer_check(is, env_warn, (void *)env, err, errlen)
               != JPKI_OK) {
        jpki_conf_issuer_free(is);
        free(is);
        return JPKI_ERR_INVALID;
    }
    sc->issuers[sc->n_issuers++] = is;
    return JPKI_OK;
}

/* A password file (from the server's root) read into out: password_file=
 * into sp->password, sentinel_password_file= into sp->sentinel_password. */
static jpki_err store_password(const char *file, char *out, size_t outlen,
                               const jpki_sc_env *env, char *err,
                               size_t errlen)
{
    char *path = NULL;
    jpki_err e = abs_file(env, file, &path, err, errlen);

    if (e == JPKI_OK)
        e = jpki_conf_password_file(path, out, outlen, err, errlen);
    free(path);
    return e;
}

/* tls_cert= and tls_key= (from the server's root) into the context. */
static jpki_err store_client_cert(jpki_siteconf *sc,
                                  const jpki_store_spec *sp,
                                  const jpki_sc_env *env, char *err,
                                  size_t errlen)
{
    char *cert = NULL, *key = NULL;
    jpki_err e = abs_file(env, sp->tls_cert, &cert, err, errlen);

    if (e == JPKI_OK)
        e = abs_file(env, sp->tls_key, &key, err, errlen);
    if (e == JPKI_OK)
        e = jpki_tls_client_cert(sc->tls, cert, key, err, errlen);
    free(cert);
    free(key);
    return e;
}

static jpki_err set_store(jpki_siteconf *sc, int argc,
                          const char *const *argv, const jpki_sc_env *env,
                          char *err, size_t errlen)
{
    jpki_store_spec *sp;
    jpki_err e;

    if (sc->store != NULL)
        return fail(err, errlen, "is duplicate");
    sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return JPKI_ERR_NOMEM;
    e = jpki_conf_store(argc, argv, sp, err, errlen);
    if (e == JPKI_OK && sp->warning[0] && env != NULL && env->warn != NULL)
        env->warn(env->ud, sp->warning);
    /* the password of password_file=, read now (never written in the
     * configuration itself) */
    if (e == JPKI_OK && sp->password_file[0])
        e = store_password(sp->password_file, sp->password,
                           sizeof(sp->password), env, err, errlen);
    if (e == JPKI_OK && sp->sentinel_password_file[0])
        e = store_password(sp->sentinel_password_file, sp->sentinel_password,
                           sizeof(sp->sentinel_password), env, err, errlen);
    /* the CA file of tls_ca= from the server's root, loaded now: the
     * context the site's Redis connections use (with the client
     * certificate of tls_cert= and tls_key=) */
    if (e == JPKI_OK && sp->tls) {
        e = abs_file(env, sp->tls_ca, &sc->tls_ca, err, errlen);
        if (e == JPKI_OK)
            e = jpki_tls_client_ctx(sc->tls_ca, &sc->tls, err, errlen);
        if (e == JPKI_OK && sp->tls_cert[0])
            e = store_client_cert(sc, sp, env, err, errlen);
    }
    if (e != JPKI_OK) {
        SSL_CTX_free(sc->tls);
        sc->tls = NULL;
        OPENSSL_cleanse(sp, sizeof(*sp));
        free(sp);
        free(sc->tls_ca);
        sc->tls_ca = NULL;
        return e;
    }
    sc->store = sp;
    return JPKI_OK;
}

jpki_err jpki_conf_crl_zone(const char *arg, uint64_t *size, char *name,
                            size_t namelen, char *err, size_t errlen)
{
    const char *colon = strrchr(arg, ':'), *sz = arg;
    char e2[128];

    if (namelen > 0)
        name[0] = '\0';
    *size = 0;
    if (strcasecmp(arg, "off") == 0)
        return JPKI_OK;
    if (colon != NULL) {
        if (colon == arg || (size_t)(colon - arg) >= namelen)
            goto bad;
        memcpy(name, arg, (size_t)(colon - arg));
        name[colon - arg] = '\0';
        sz = colon + 1;
    }
    if (jpki_conf_size(sz, size, e2, sizeof(e2)) == JPKI_OK
        && *size >= JPKI_CRLZONE_MIN)
        return JPKI_OK;
bad:
    *size = 0;
    jpki_set_detail(err, errlen, "must be off, SIZE or NAME:SIZE (NAME of "
                    "1..%zu characters, SIZE at least %uk, e.g. 64m)",
                    namelen > 0 ? namelen - 1 : 0,
                    (unsigned)(JPKI_CRLZONE_MIN / 1024));
    return JPKI_ERR_INVALID;
}

/* jpki_audit_log FILE [key_file=FILE]: both absolute; the file opened for
 * appending now (made when missing, 0640), the key file read. */
static jpki_err set_audit(jpki_siteconf *sc, int argc,
                          const char *const *argv, char *err, size_t errlen)
{
    static const char kf[] = "key_file=";
    struct stat st;
    int fd;

    if (sc->audit != NULL)
        return fail(err, errlen, "is duplicate");
    if (argc > 2 || (argc == 2 && strncmp(argv[1], kf, sizeof(kf) - 1) != 0)) {
        jpki_set_detail(err, errlen, "takes FILE [key_file=FILE], not "
                        "\"%.64s\"", argv[argc - 1]);
        return JPKI_ERR_INVALID;
    }
    if (argv[0][0] != '/') {
        jpki_set_detail(err, errlen, "needs an absolute path, not \"%.256s\"",
                        argv[0]);
        return JPKI_ERR_INVALID;
    }
    fd = open(argv[0], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK,
              0640);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        jpki_set_detail(err, errlen, "audit file \"%.256s\" cannot be "
                        "opened for writing: %s", argv[0],
                        fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return JPKI_ERR_INVALID;
    }
    close(fd);
    if (argc == 2) {
        if (jpki_audit_key_file(argv[1] + sizeof(kf) - 1, sc->audit_key, err,
                                errlen) != JPKI_OK)
            return JPKI_ERR_INVALID;
        sc->audit_key_set = 1;
    }
    sc->audit = strdup(argv[0]);
    return sc->audit != NULL ? JPKI_OK : JPKI_ERR_NOMEM;
}

jpki_err jpki_siteconf_set(jpki_siteconf *sc, jpki_sc_directive d, int argc,
                           const char *const *argv, const jpki_sc_env *env,
                           char *err, size_t errlen)
{
    jpki_err e;

    if (errlen > 0)
        err[0] = '\0';
    if (argc < 1 || (argc > 1 && d != JPKI_SC_ISSUER && d != JPKI_SC_STORE
                      && d != JPKI_SC_AUDIT_LOG))
        return fail(err, errlen, "takes one value");
    switch (d) {
    case JPKI_SC_SECRET:
        e = set_secret(sc, argv[0], env, err, errlen);
        break;
    case JPKI_SC_ISSUER:
        e = set_issuer(sc, argc, argv, env, err, errlen);
        break;
    case JPKI_SC_STORE:
        e = set_store(sc, argc, argv, env, err, errlen);
        break;
    case JPKI_SC_MAP:
        if (sc->map != NULL)
            return fail(err, errlen, "is duplicate");
        e = abs_file(env, argv[0], &sc->map, err, errlen);
        /* read later, and again when it changes: one that is not there is
         * refused now, with the system's reason */
        if (e == JPKI_OK
            && (e = jpki_file_check("mapping file", sc->map, err, errlen))
                   != JPKI_OK) {
            free(sc->map);
            sc->map = NULL;
        }
        break;
    case JPKI_SC_CRL_ZONE:
        if (sc->crl_zone_set)
            return fail(err, errlen, "is duplicate");
        e = jpki_conf_crl_zone(argv[0], &sc->crl_zone, sc->crl_zone_name,
                               sizeof(sc->crl_zone_name), err, errlen);
        sc->crl_zone_set = e == JPKI_OK;
        break;
    case JPKI_SC_AUDIT_LOG:
        e = set_audit(sc, argc, argv, err, errlen);
        break;
    default:
        return fail(err, errlen, "is unknown");
    }
    if (e == JPKI_OK)
        note(sc, env);
    else if (e == JPKI_ERR_NOMEM && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", jpki_strerror(e));
    return e;
}

jpki_err jpki_siteconf_value(jpki_siteconf *sc, jpki_directive_id id,
                             const char *arg, const jpki_sc_env *env,
                             char *err, size_t errlen)
{
    jpki_err e = jpki_conf_set(&sc->values, id, arg, err, errlen);

    if (e == JPKI_OK)
        note(sc, env);
    return e;
}

/* ---- what was written ----------------------------------------------- */

/* The block that wrote a piece: sc, or its base. */
#define FROM(sc, test) ((test) || (sc)->base == NULL ? (sc) : (sc)->base)

int jpki_siteconf_is_site(const jpki_siteconf *sc)
{
    return jpki_siteconf_secret(sc) != NULL || jpki_siteconf_issuers(sc) > 0
           || jpki_siteconf_store(sc) != NULL;
}

const char *jpki_siteconf_first(const jpki_siteconf *sc, const char **file,
                                unsigned *line)
{
    *file = sc->first_file;
    *line = sc->first_line;
    return sc->first;
}

void jpki_siteconf_inherit(jpki_siteconf *sc, const jpki_siteconf *base)
{
    sc->base = base;
    jpki_conf_merge(&sc->values, &base->values);
}

const char *jpki_siteconf_secret(const jpki_siteconf *sc)
{
    return FROM(sc, sc->secret != NULL)->secret;
}

size_t jpki_siteconf_issuers(const jpki_siteconf *sc)
{
    return FROM(sc, sc->n_issuers > 0)->n_issuers;
}

const jpki_conf_issuer *jpki_siteconf_issuer(const jpki_siteconf *sc,
                                             size_t i)
{
    sc = FROM(sc, sc->n_issuers > 0);
    return i < sc->n_issuers ? sc->issuers[i] : NULL;
}

const jpki_store_spec *jpki_siteconf_store(const jpki_siteconf *sc)
{
    return FROM(sc, sc->store != NULL)->store;
}

const char *jpki_siteconf_tls_ca(const jpki_siteconf *sc)
{
    return FROM(sc, sc->store != NULL)->tls_ca;
}

SSL_CTX *jpki_siteconf_redis_tls(const jpki_siteconf *sc)
{
    return FROM(sc, sc->store != NULL)->tls;
}

const char *jpki_siteconf_map(const jpki_siteconf *sc)
{
    return FROM(sc, sc->map != NULL)->map;
}

uint64_t jpki_siteconf_crl_zone(const jpki_siteconf *sc, const char **name)
{
    sc = FROM(sc, sc->crl_zone_set);
    *name = sc->crl_zone_name;
    return sc->crl_zone;
}

const jpki_conf_values *jpki_siteconf_values(const jpki_siteconf *sc)
{
    return &sc->values;
}

const char *jpki_siteconf_audit(const jpki_siteconf *sc,
                                const uint8_t **key)
{
    sc = FROM(sc, sc->audit != NULL);
    *key = sc->audit_key_set ? sc->audit_key : NULL;
    return sc->audit;
}

/* ---- a location's configuration ----------------------------------- */

void jpki_locconf_init(jpki_locconf *lc)
{
    memset(lc, 0, sizeof(*lc));
    jpki_conf_init(&lc->values);
}

jpki_err jpki_locconf_throttle(jpki_locconf *lc, const char *args, char *err,
                               size_t errlen)
{
    jpki_throttle t;

    if (lc->throttle_here)
        return fail(err, errlen, "is duplicate");
    if (jpki_throttle_parse(args, &t, err, errlen) != JPKI_OK) {
        /* the directive names itself */
        if (strncmp(err, "throttle: ", 10) == 0)
            memmove(err, err + 10, strlen(err + 10) + 1);
        return JPKI_ERR_INVALID;
    }
    lc->throttle = t;
    lc->throttle_here = 1;
    return JPKI_OK;
}

jpki_err jpki_locconf_template(jpki_locconf *lc, const char *path,
                               struct jpki_page_tmpl **loaded, char *err,
                               size_t errlen)
{
    *loaded = NULL;
    if (lc->tmpl_here)
        return fail(err, errlen, "is duplicate");
    if (jpki_page_tmpl_load(path, loaded, err, errlen) != JPKI_OK)
        return JPKI_ERR_INVALID;
    lc->tmpl = *loaded;
    lc->tmpl_here = 1;
    return JPKI_OK;
}

jpki_err jpki_locconf_admin_token(jpki_locconf *lc, const char *path,
                                  char *err, size_t errlen)
{
    if (lc->admin_token_set)
        return fail(err, errlen, "is duplicate");
    if (jpki_admin_token_file(path, lc->admin_token, err, errlen) != JPKI_OK)
        return JPKI_ERR_INVALID;
    lc->admin_token_set = 1;
    return JPKI_OK;
}

void jpki_locconf_merge(jpki_locconf *child, const jpki_locconf *parent)
{
    if (!child->admin_token_set && parent->admin_token_set) {
        memcpy(child->admin_token, parent->admin_token, 32);
        child->admin_token_set = 1;
    }
    jpki_conf_merge(&child->values, &parent->values);
    jpki_throttle_merge(&child->throttle, &parent->throttle);
    if (child->tmpl == NULL)
        child->tmpl = parent->tmpl;
    if (child->accounts == NULL)
        child->accounts = parent->accounts;
    if (child->issuers == NULL)
        child->issuers = parent->issuers;
}

int jpki_locconf_any(const jpki_locconf *lc)
{
    return lc->throttle.set != 0 || lc->tmpl != NULL || lc->admin_token_set
           || lc->accounts != NULL || lc->issuers != NULL
           || jpki_conf_any(&lc->values, JPKI_CONF_LOCATION);
}

const char *jpki_locconf_header(const jpki_locconf *lc)
{
    return jpki_conf_str(&lc->values, JPKI_D_HEADER);
}

int jpki_locconf_pass_cookie(const jpki_locconf *lc)
{
    return jpki_conf_num(&lc->values, JPKI_D_PASS_COOKIE) == 1;
}

jpki_err jpki_locconf_policy(const jpki_locconf *lc, const jpki_policy *site,
                             jpki_policy *out, char *err, size_t errlen)
{
    *out = *site;
    jpki_conf_apply(&lc->values, JPKI_CONF_LOCATION, out);
    out->cookie_httponly = 1;
    jpki_throttle_apply(&lc->throttle, out);
    out->page_tmpl = lc->tmpl;
    memcpy(out->admin_token, lc->admin_token, 32);
    out->admin_token_set = (unsigned)lc->admin_token_set;
    return jpki_policy_check(out, err, errlen);
}
