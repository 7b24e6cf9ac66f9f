/*
 * site.c - a site's build, once for both adapters (site.h).
 */
#include "site.h"
#include "internal.h"

#include "gate.h"
#include "metrics.h"
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

jpki_err jpki_site_secret(jpki_ctx *ctx, const char *path, char *err,
                          size_t errlen)
{
    jpki_ctx *c = ctx != NULL ? ctx : jpki_ctx_new();
    jpki_err e;

    if (errlen > 0)
        err[0] = '\0';
    e = c != NULL ? jpki_ctx_load_secret_file(c, path, err, errlen)
                  : JPKI_ERR_NOMEM;
    if (e != JPKI_OK && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", jpki_strerror(e));
    if (ctx == NULL)
        jpki_ctx_free(c);
    return e;
}

jpki_err jpki_site_finish(jpki_server srv, jpki_ctx *ctx, int has_secret,
                          size_t issuers, int has_store, char *err,
                          size_t errlen)
{
    jpki_err e;

    if (jpki_conf_site_missing(srv, has_secret, issuers, has_store, err,
                               errlen))
        return JPKI_ERR_INVALID;
    if (errlen > 0)
        err[0] = '\0';
    e = jpki_ctx_finish(ctx, err, errlen);
    if (e != JPKI_OK && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", jpki_strerror(e));
    return e;
}

void jpki_site_values(jpki_ctx *ctx, const jpki_conf_values *v,
                      jpki_site_times *t)
{
    jpki_policy *p = ctx != NULL ? jpki_ctx_policy(ctx) : NULL;

    if (p != NULL)
        jpki_conf_apply(v, JPKI_CONF_SITE, p);
    t->redis_timeout_ms = (uint64_t)jpki_conf_num(v, JPKI_D_REDIS_TIMEOUT);
    t->redis_connect_timeout_ms =
        (uint64_t)jpki_conf_num(v, JPKI_D_REDIS_CONNECT_TIMEOUT);
    t->ocsp_timeout_ms = (uint64_t)jpki_conf_num(v, JPKI_D_OCSP_TIMEOUT);
    t->crl_grace = (unsigned)jpki_conf_num(v, JPKI_D_CRL_GRACE);
}

jpki_err jpki_site_issuer(jpki_ctx *ctx, const jpki_conf_issuer *spec,
                          jpki_issuer **is, char *err, size_t errlen)
{
    *is = jpki_ctx_add_issuer(ctx, spec->name);
    if (*is == NULL) {
        if (errlen > 0)
            snprintf(err, errlen, "%s", JPKI_SITE_ISSUER_NAME);
        return JPKI_ERR_INVALID;
    }
    return jpki_conf_issuer_apply(spec, *is, err, errlen);
}

int jpki_site_issuers_full(size_t n)
{
    return n >= JPKI_MAX_ISSUERS;
}

const char *jpki_site_unused(jpki_server srv, jpki_site_unused_why why)
{
    static const char *const s[2][3] = {
        {"the http block has no site (jpki_secret_file, jpki_issuer and "
         "jpki_store), and a server's site takes nothing from it; set it in "
         "each server that has them",
         "this server inherits the site of the http block; set it there, or "
         "give this server its own jpki_secret_file, jpki_issuer and "
         "jpki_store",
         "this server has no site, nor has the http block; give this server "
         "its own jpki_secret_file, jpki_issuer and jpki_store"},
        /* a virtual host takes what it does not set from the main server */
        {"the main server has no site (JPKISecretFile, JPKIIssuer and "
         "JPKIStore), nor has any virtual host to take it from there",
         "this virtual host inherits the site of the main server; set it "
         "there, or give this virtual host its own JPKISecretFile, "
         "JPKIIssuer and JPKIStore",
         "this virtual host has no site, nor has the main server; give this "
         "virtual host its own JPKISecretFile, JPKIIssuer and JPKIStore"}};

    return s[srv == JPKI_SERVER_APACHE][(unsigned)why <= 2 ? why : 2];
}

size_t jpki_siteconf_unused(const jpki_siteconf *sc, jpki_server srv,
                            jpki_site_unused_why why, char *out,
                            size_t outlen)
{
    const char *file, *name;
    unsigned line;
    int n;

    name = jpki_siteconf_first(sc, &file, &line);
    if (name == NULL)
        return 0;
    n = snprintf(out, outlen, "\"%s\" here has no effect: %s in %s:%u",
                 name, jpki_site_unused(srv, why), file, line);
    return n > 0 ? (size_t)n : 1;
}

/* ---- a site built from its configuration -------------------------- */

struct jpki_site {
    const jpki_siteconf *conf;
    jpki_ctx *ctx;
    jpki_site_times times;
    jpki_issuer *issuers[JPKI_MAX_ISSUERS];
    size_t n_issuers;
    jpki_redis_auth auth;
    const char *audit;                  /* the audit file (sc's) */
    uint8_t audit_key[32];
    /* per process */
    jpki_crlzone *crls;
    jpki_crlwatch *crlw;
    jpki_mapwatch *mapw;
};

/* The issuers written, set up in the context. */
static jpki_err build_issuers(jpki_site *s, char *err, size_t errlen)
{
    const jpki_conf_issuer *spec;
    char why[400];
    size_t i;

    for (i = 0; i < jpki_siteconf_issuers(s->conf); i++) {
        spec = jpki_siteconf_issuer(s->conf, i);
        why[0] = '\0';
        if (jpki_site_issuer(s->ctx, spec, &s->issuers[i], why, sizeof(why))
            != JPKI_OK) {
            jpki_set_detail(err, errlen, "issuer %s%s%s", spec->name,
                            s->issuers[i] != NULL ? ": " : " ", why);
            return JPKI_ERR_INVALID;
        }
        s->n_issuers = i + 1;
    }
    return JPKI_OK;
}

/* The audit file's key: its key file's, else the site secret's. */
static jpki_err site_audit(jpki_site *s, char *err, size_t errlen)
{
    const uint8_t *key = NULL;

    s->audit = jpki_siteconf_audit(s->conf, &key);
    if (s->audit == NULL)
        return JPKI_OK;
    if (key != NULL)
        memcpy(s->audit_key, key, 32);
    else if (!jpki_audit_key_of_ctx(s->ctx, s->audit_key)) {
        jpki_set_detail(err, errlen, "the audit key cannot be derived");
        return JPKI_ERR_INTERNAL;
    }
    return JPKI_OK;
}

jpki_err jpki_site_build(const jpki_siteconf *sc, jpki_server srv,
                         jpki_log_fn log, void *log_ud, jpki_site **out,
                         char *err, size_t errlen)
{
    const jpki_store_spec *st = jpki_siteconf_store(sc);
    const char *secret = jpki_siteconf_secret(sc);
    jpki_site *s;
    jpki_err e = JPKI_ERR_NOMEM;

    *out = NULL;
    if (errlen > 0)
        err[0] = '\0';
    if (jpki_conf_site_missing(srv, secret != NULL,
                               jpki_siteconf_issuers(sc), st != NULL, err,
                               errlen))
        return JPKI_ERR_INVALID;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->ctx = jpki_ctx_new()) == NULL)
        goto failed;
    s->conf = sc;
    jpki_ctx_set_log(s->ctx, log, log_ud);
    e = jpki_site_secret(s->ctx, secret, err, errlen);
    if (e != JPKI_OK)
        goto failed;
    jpki_site_values(s->ctx, jpki_siteconf_values(sc), &s->times);
    e = build_issuers(s, err, errlen);
    if (e == JPKI_OK)
        e = jpki_site_finish(srv, s->ctx, 1, s->n_issuers, 1, err, errlen);
    if (e != JPKI_OK)
        goto failed;
    s->auth.user = st->user[0] ? st->user : NULL;
    s->auth.password = st->password[0] ? st->password : NULL;
    s->auth.db = st->db > 0 ? (unsigned)st->db : 0;
    s->auth.role = st->n_sentinels > 0;
    /* WAIT answers within half the store's deadline: the round ends in
     * time with the replicas that acknowledged */
    if (st->kind == JPKI_STORE_KIND_REDIS)
        jpki_ctx_set_replicas(s->ctx, st->replicas,
                              (uint32_t)(s->times.redis_timeout_ms / 2));
    e = site_audit(s, err, errlen);
    if (e != JPKI_OK)
        goto failed;
    *out = s;
    return JPKI_OK;

failed:
    if (e == JPKI_ERR_NOMEM && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", jpki_strerror(e));
    jpki_site_free(s);
    return e;
}

void jpki_site_free(jpki_site *s)
{
    if (s == NULL)
        return;
    jpki_site_unwatch(s);
    jpki_ctx_free(s->ctx);
    OPENSSL_cleanse(s->audit_key, sizeof(s->audit_key));
    free(s);
}

jpki_ctx *jpki_site_ctx(const jpki_site *s) { return s->ctx; }
const jpki_siteconf *jpki_site_conf(const jpki_site *s) { return s->conf; }

const jpki_site_times *jpki_site_times_of(const jpki_site *s)
{
    return &s->times;
}

const jpki_store_spec *jpki_site_store(const jpki_site *s)
{
    return jpki_siteconf_store(s->conf);
}

int jpki_site_shm(const jpki_site *s)
{
    return jpki_site_store(s)->kind == JPKI_STORE_KIND_SHM;
}

SSL_CTX *jpki_site_redis_tls(const jpki_site *s)
{
    return jpki_siteconf_redis_tls(s->conf);
}

const jpki_redis_auth *jpki_site_redis_auth(const jpki_site *s)
{
    return &s->auth;
}

size_t jpki_site_issuer_count(const jpki_site *s) { return s->n_issuers; }

jpki_issuer *jpki_site_issuer_at(const jpki_site *s, size_t i)
{
    return i < s->n_issuers ? s->issuers[i] : NULL;
}

const jpki_conf_issuer *jpki_site_issuer_spec(const jpki_site *s, size_t i)
{
    return jpki_siteconf_issuer(s->conf, i);
}

int jpki_site_issuer_index(const jpki_site *s, const jpki_issuer *is)
{
    size_t i;

    for (i = 0; is != NULL && i < s->n_issuers; i++)
        if (s->issuers[i] == is)
            return (int)i;
    return -1;
}

int jpki_site_has_files(const jpki_site *s)
{
    size_t i;
    int files = jpki_siteconf_map(s->conf) != NULL;

    for (i = 0; i < s->n_issuers; i++)
        files |= jpki_site_issuer_spec(s, i)->n_crl > 0;
    return files;
}

/* ---- a process's files and CRLs ----------------------------------- */

int jpki_site_watch(jpki_site *s, jpki_crlzone *z, jpki_log_fn log,
                    void *log_ud, const jpki_watch_lock *lock, int64_t now)
{
    const jpki_conf_issuer *spec;
    const char *map = jpki_siteconf_map(s->conf);
    size_t i;

    jpki_site_unwatch(s);
    s->crls = z;
    /* a new configuration: the CRLs of issuers gone are released */
    jpki_crlzone_retain(z, (const jpki_issuer *const *)s->issuers,
                        s->n_issuers);
    s->crlw = jpki_crlwatch_new(s->ctx, s->times.crl_grace, log, log_ud,
                                lock);
    for (i = 0; s->crlw != NULL && i < s->n_issuers; i++) {
        spec = jpki_site_issuer_spec(s, i);
        if (spec->n_crl > 0
            && jpki_crlwatch_issuer(s->crlw, s->issuers[i],
                                    (const char *const *)spec->crl,
                                    spec->n_crl) != 0)
            return -1;
    }
    if (s->crlw == NULL)
        return -1;
    if (map != NULL) {
        s->mapw = jpki_mapwatch_new(map, log, log_ud, lock);
        if (s->mapw == NULL)
            return -1;
    }
    if (now >= 0) {
        jpki_crlwatch_pass(s->crlw, z, now, NULL, NULL);
        jpki_mapwatch_load(s->mapw);
    }
    return 0;
}

void jpki_site_unwatch(jpki_site *s)
{
    jpki_crlwatch_free(s->crlw);
    s->crlw = NULL;
    jpki_mapwatch_free(s->mapw);
    s->mapw = NULL;
}

jpki_crlzone *jpki_site_crls(const jpki_site *s) { return s->crls; }
void jpki_site_set_crls(jpki_site *s, jpki_crlzone *z) { s->crls = z; }
jpki_crlwatch *jpki_site_crlwatch(const jpki_site *s) { return s->crlw; }
jpki_mapwatch *jpki_site_mapwatch(const jpki_site *s) { return s->mapw; }

static size_t site_map_lookup(void *ud, const char *cert_id, char *out)
{
    return jpki_mapwatch_lookup(((jpki_site *)ud)->mapw, cert_id, out);
}

jpki_map_fn jpki_site_map_fn(const jpki_site *s)
{
    return jpki_siteconf_map(s->conf) != NULL ? site_map_lookup : NULL;
}

jpki_err jpki_site_crl_lookup(const jpki_site *s, jpki_txn *t, int64_t now,
                              jpki_rev_info *info)
{
    return jpki_crlzone_lookup(s->crls, jpki_txn_issuer(t),
                               jpki_txn_issuer_key(t), jpki_txn_cert_id(t),
                               (time_t)now, s->times.crl_grace, info);
}

int jpki_site_health(const jpki_site *s, int64_t now, jpki_shm *shm,
                     jpki_health *h)
{
    size_t max = JPKI_HEALTH_CRL_MAX
                 * (jpki_crlwatch_count(s->crlw) + JPKI_MAX_ISSUERS + 1);
    char *crls = malloc(max);

    if (crls == NULL)
        return 0;
    jpki_health_init(h, crls, max, now, s->times.crl_grace,
                     jpki_ctx_get_policy(s->ctx)->clock_skew);
    h->owned = 1;
    h->shm = jpki_site_shm(s);
    /* the embedded store full: no room for a new key */
    if (h->shm) {
        h->store = shm == NULL ? JPKI_ERR_STORE
                   : jpki_shm_is_full(shm, now * 1000) ? JPKI_ERR_STORE_FULL
                   : JPKI_OK;
        h->shm_count = jpki_shm_count(shm, now * 1000);
        h->shm_capacity = jpki_shm_capacity(shm);
    }
    jpki_crlwatch_health(s->crlw, s->crls, h);
    return 1;
}

/* ---- the audit trail ---------------------------------------------- */

const char *jpki_site_audit_file(const jpki_site *s)
{
    return s->audit;
}

jpki_err jpki_site_audit_clash(const jpki_site *const *sites, size_t n,
                               jpki_server srv, char *err, size_t errlen)
{
    size_t i, j;

    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (sites[i]->audit != NULL && sites[j]->audit != NULL
                && strcmp(sites[i]->audit, sites[j]->audit) == 0
                && CRYPTO_memcmp(sites[i]->audit_key, sites[j]->audit_key,
                                 32) != 0) {
                jpki_set_detail(err, errlen, "%s \"%s\" is written by two "
                                "sites with different keys (their secrets or "
                                "key files): give them the same key_file=, "
                                "or an audit file each",
                                srv == JPKI_SERVER_APACHE ? "JPKIAuditLog"
                                                          : "jpki_audit_log",
                                sites[i]->audit);
                return JPKI_ERR_INVALID;
            }
    return JPKI_OK;
}

jpki_err jpki_site_audit_recover(const jpki_site *s, struct jpki_shared *sh,
                                 const jpki_shm_lock *lock, int64_t now,
                                 char *msg, size_t msglen)
{
    if (msglen > 0)
        msg[0] = '\0';
    if (s->audit == NULL)
        return JPKI_OK;
    return jpki_audit_recover(sh, lock, s->audit, s->audit_key, now, msg,
                              msglen);
}

int jpki_site_audit_write(const jpki_site *s, const char *audit, int fd,
                          int64_t now, char *err, size_t errlen)
{
    if (s->audit == NULL) {
        jpki_set_detail(err, errlen, "no audit file");
        return -1;
    }
    return jpki_audit_append(s->ctx->shared, &s->ctx->shared_lock, s->audit,
                             s->audit_key, fd, audit, now, err, errlen);
}

/* ---- a transaction run ------------------------------------------ */

static int site_health(const void *ud, int64_t now, jpki_shm *local,
                       jpki_health *h)
{
    return jpki_site_health(ud, now, local, h);
}

jpki_err jpki_site_txn(const jpki_site *s, jpki_txn_request *rq,
                       jpki_edge_in *in, jpki_txn **t)
{
    rq->map_fn = jpki_site_map_fn(s);
    rq->map_ud = (void *)s;
    rq->health = site_health;
    rq->health_ud = s;
    in->redis = !jpki_site_shm(s);
    jpki_edge_request(rq, in);
    return jpki_txn_new(s->ctx, rq, t);
}

jpki_step jpki_site_run(const jpki_site *s, jpki_txn *t, int64_t now,
                        const jpki_run_io *io)
{
    jpki_store_result res[JPKI_STORE_BATCH_MAX];
    const jpki_store_cmd *cmds;
    const uint8_t *body, *resp;
    jpki_rev_info info;
    size_t n, len, rlen;
    jpki_step step;
    jpki_err e;
    int rc, i;

    for (;;) {
        switch (step = jpki_txn_step(t)) {
        case JPKI_STEP_STORE:
            cmds = jpki_txn_store_cmds(t, &n);
            jpki_txn_io_begin(t);
            rc = n > 0 && n <= JPKI_STORE_BATCH_MAX
                 ? io->store(io->ud, cmds, n, res) : 0;
            if (rc == JPKI_RUN_WAIT)
                return step;
            jpki_txn_feed_store(t, rc ? res : NULL, rc ? n : 0);
            break;
        case JPKI_STEP_OCSP:
            /* concurrent logins of a certificate share one query (not
             * with nonces: each query is then its own) */
            i = jpki_site_issuer_index(s, jpki_txn_issuer(t));
            body = jpki_txn_ocsp_body(t, &len);
            resp = NULL;
            rlen = 0;
            jpki_txn_io_begin(t);
            rc = i >= 0 && body != NULL
                 ? io->ocsp(io->ud, (size_t)i, jpki_txn_ocsp_key(t), body,
                            len, &resp, &rlen)
                 : 0;
            if (rc == JPKI_RUN_WAIT)
                return step;
            jpki_txn_feed_ocsp(t, rc, rc ? resp : NULL, rc ? rlen : 0);
            break;
        case JPKI_STEP_CRL:
            /* the CRL of the key that issued the certificate */
            e = jpki_site_crl_lookup(s, t, now, &info);
            jpki_txn_feed_crl(t, e, e == JPKI_OK ? &info : NULL);
            break;
        default:
            return step;
        }
    }
}
