/*
 * site.c - a site's build, once for both adapters (site.h).
 */
#include "site.h"
#include "internal.h"

#include <stdio.h>

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
