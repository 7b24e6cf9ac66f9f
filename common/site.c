/*
 * site.c - a site's build, once for both adapters (site.h).
 */
#include "site.h"
#include "internal.h"

#include <stdio.h>

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
