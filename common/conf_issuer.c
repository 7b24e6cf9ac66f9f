/*
 * conf_issuer.c - the issuer directive's words (see conf_issuer.h), for
 * both servers.
 */
#include "internal.h"
#include "conf_issuer.h"
#include "crlzone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
                   "0123456789_.-"
#define WORD_MAX 4096                   /* a path or URL */

void jpki_conf_issuer_free(jpki_conf_issuer *spec)
{
    size_t i;

    for (i = 0; i < spec->n_ca; i++)
        free(spec->ca[i]);
    for (i = 0; i < spec->n_crl; i++)
        free(spec->crl[i]);
    free(spec->ocsp);
    free(spec->ocsp_hostport);
    free(spec->ocsp_path);
    free(spec->ocsp_host);
    free(spec->ocsp_host_header);
    free(spec->policy);
    memset(spec, 0, sizeof(*spec));
}

static char *dup_n(const char *s, size_t n)
{
    char *c = malloc(n + 1);

    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* ca=FILE[,FILE...] */
static const char *parse_ca(jpki_conf_issuer *spec, const char *list)
{
    const char *p = list, *comma;

    do {
        comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        if (n == 0)
            return "has an empty CA file name";
        if (spec->n_ca == JPKI_ISSUER_CA_MAX)
            return "has more than 8 CA files";
        if ((spec->ca[spec->n_ca] = dup_n(p, n)) == NULL)
            return "out of memory";
        spec->n_ca++;
        p = comma ? comma + 1 : NULL;
    } while (p != NULL);
    return NULL;
}

/* HOST[:PORT] of an OCSP URL (n bytes at hp): the host to resolve, the
 * port and the Host header the responder is sent.  0: not valid. */
static int ocsp_target(jpki_conf_issuer *spec, const char *hp, size_t n)
{
    const char *end = hp + n, *h = hp, *he, *colon;
    unsigned long port = 80;
    int v6 = *hp == '[';
    char buf[300];

    if (v6) {
        h = hp + 1;
        he = memchr(h, ']', n - 1);
        if (he == NULL || he == h
            || strspn(h, "0123456789abcdefABCDEF:.") != (size_t)(he - h)
            || memchr(h, ':', (size_t)(he - h)) == NULL)
            return 0;                   /* a zone (%) is not taken */
        colon = he + 1 < end ? he + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return 0;
    } else {
        colon = memchr(hp, ':', n);
        he = colon != NULL ? colon : end;
        if (he == h || strspn(h, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
                       != (size_t)(he - h))
            return 0;
    }
    if ((size_t)(he - h) > 253)
        return 0;
    if (colon != NULL) {
        const char *d = colon + 1;

        if (d == end || (size_t)(end - d) > 5
            || strspn(d, "0123456789") < (size_t)(end - d))
            return 0;
        for (port = 0; d < end; d++)
            port = port * 10 + (unsigned long)(*d - '0');
        if (port == 0 || port > 65535)
            return 0;
    }
    spec->ocsp_port = (unsigned) port;
    spec->ocsp_host = dup_n(h, (size_t)(he - h));
    if (port == 80)
        snprintf(buf, sizeof(buf), v6 ? "[%.*s]" : "%.*s", (int)(he - h), h);
    else
        snprintf(buf, sizeof(buf), v6 ? "[%.*s]:%lu" : "%.*s:%lu",
                 (int)(he - h), h, port);
    spec->ocsp_host_header = strdup(buf);
    return 1;
}

/* ocsp=http://HOST[:PORT][/PATH] */
static const char *parse_ocsp(jpki_conf_issuer *spec, const char *url)
{
    const char *hp = url + 7, *slash;
    size_t n;

    if (spec->ocsp != NULL)
        return "has ocsp= twice";
    if (strncasecmp(url, "http://", 7) != 0 || *hp == '\0' || *hp == '/')
        return "needs an http:// OCSP URL (https responders: put a local "
               "proxy in front)";
    if (strpbrk(url, " \t\r\n\"") != NULL || strchr(hp, '@') != NULL)
        return "has an invalid OCSP URL";
    slash = strchr(hp, '/');
    n = slash ? (size_t)(slash - hp) : strlen(hp);
    if (!ocsp_target(spec, hp, n))
        return "has an invalid OCSP URL";
    spec->ocsp = strdup(url);
    spec->ocsp_hostport = dup_n(hp, n);
    spec->ocsp_path = strdup(slash ? slash : "/");
    if (spec->ocsp == NULL || spec->ocsp_hostport == NULL
        || spec->ocsp_path == NULL || spec->ocsp_host == NULL
        || spec->ocsp_host_header == NULL)
        return "out of memory";
    return NULL;
}

static const char *parse_policy(jpki_conf_issuer *spec, const char *oid,
                                char *err, size_t errlen)
{
    ASN1_OBJECT *o;

    if (spec->policy != NULL)
        return "has policy= twice";
    if (strcmp(oid, "none") == 0)
        oid = "";
    if (*oid != '\0') {
        o = OBJ_txt2obj(oid, 1);              /* numeric form only */
        ERR_clear_error();
        if (o == NULL) {
            jpki_set_detail(err, errlen, "issuer \"%s\": invalid policy OID "
                            "\"%s\"", spec->name, oid);
            return "";
        }
        ASN1_OBJECT_free(o);
    }
    spec->policy = strdup(oid);
    return spec->policy == NULL ? "out of memory" : NULL;
}

static const char *parse_word(jpki_conf_issuer *spec, const char *w,
                              char *err, size_t errlen)
{
    if (strlen(w) > WORD_MAX)
        return "has a parameter over 4096 characters";
    if (strncmp(w, "ca=", 3) == 0)
        return parse_ca(spec, w + 3);
    if (strncmp(w, "ocsp=", 5) == 0)
        return parse_ocsp(spec, w + 5);
    if (strncmp(w, "crl=", 4) == 0) {
        if (w[4] == '\0')
            return "has crl= without a file or directory name";
        if (spec->n_crl == JPKI_ISSUER_CRL_MAX)
            return "has more than 8 crl= sources";
        if ((spec->crl[spec->n_crl] = strdup(w + 4)) == NULL)
            return "out of memory";
        spec->n_crl++;
        return NULL;
    }
    if (strncmp(w, "policy=", 7) == 0)
        return parse_policy(spec, w + 7, err, errlen);
    jpki_set_detail(err, errlen, "issuer \"%s\": invalid parameter \"%.64s\" "
                    "(expected ca=, ocsp=, crl= or policy=)", spec->name, w);
    return "";
}

jpki_err jpki_conf_issuer_parse(jpki_conf_issuer *spec,
                                const char *const *argv, size_t argc,
                                char *err, size_t errlen)
{
    const char *why = NULL;
    size_t i, n;

    memset(spec, 0, sizeof(*spec));
    n = argc > 0 ? strlen(argv[0]) : 0;
    if (n == 0 || n >= sizeof(spec->name)
        || strspn(argv[0], NAME_CHARS) != n) {
        jpki_set_detail(err, errlen, "needs a name of 1..63 letters, digits,"
                        " _ . - (then ca=FILE[,FILE...] [ocsp=URL] "
                        "[crl=FILE|DIR]... [policy=OID|none])");
        return JPKI_ERR_INVALID;
    }
    memcpy(spec->name, argv[0], n + 1);
    for (i = 1; i < argc && why == NULL; i++)
        why = parse_word(spec, argv[i], err, errlen);
    if (why == NULL && spec->n_ca == 0)
        why = "needs ca=FILE[,FILE...]";
    if (why == NULL)
        return JPKI_OK;
    if (*why != '\0')
        jpki_set_detail(err, errlen, "issuer \"%s\": %s", spec->name, why);
    jpki_conf_issuer_free(spec);
    return JPKI_ERR_INVALID;
}

static jpki_err abs_path(char **p, const char *(*abs)(void *, const char *),
                         void *ud, const char *name, char *err, size_t el)
{
    const char *a = abs(ud, *p);
    char *c = a != NULL ? strdup(a) : NULL;

    if (c == NULL) {
        jpki_set_detail(err, el, "issuer \"%s\": invalid path \"%.256s\"",
                        name, *p);
        return JPKI_ERR_INVALID;
    }
    free(*p);
    *p = c;
    return JPKI_OK;
}

jpki_err jpki_conf_issuer_paths(jpki_conf_issuer *spec,
                                const char *(*abs)(void *ud, const char *p),
                                void *ud, char *err, size_t errlen)
{
    size_t i;
    jpki_err e = JPKI_OK;

    for (i = 0; i < spec->n_ca && e == JPKI_OK; i++)
        e = abs_path(&spec->ca[i], abs, ud, spec->name, err, errlen);
    for (i = 0; i < spec->n_crl && e == JPKI_OK; i++)
        e = abs_path(&spec->crl[i], abs, ud, spec->name, err, errlen);
    return e;
}

jpki_err jpki_conf_issuer_apply(const jpki_conf_issuer *spec,
                                jpki_issuer *is, char *err, size_t errlen)
{
    size_t i;
    jpki_err e;

    for (i = 0; i < spec->n_ca; i++) {
        e = jpki_issuer_add_certs_file(is, spec->ca[i], err, errlen);
        if (e != JPKI_OK)
            return e;
    }
    if (spec->ocsp != NULL
        && jpki_issuer_set_ocsp_url(is, spec->ocsp) != JPKI_OK) {
        jpki_set_detail(err, errlen, "issuer \"%s\": has an invalid OCSP URL",
                        spec->name);
        return JPKI_ERR_INVALID;
    }
    /* the first source says that the issuer's CRLs are files (the core
     * reads the others from the store) */
    if (spec->n_crl > 0
        && jpki_issuer_set_crl_source(is, spec->crl[0]) != JPKI_OK) {
        jpki_set_detail(err, errlen, "issuer \"%s\": crl= path too long",
                        spec->name);
        return JPKI_ERR_INVALID;
    }
    if (spec->policy != NULL
        && jpki_issuer_set_policy(is, spec->policy) != JPKI_OK) {
        jpki_set_detail(err, errlen, "issuer \"%s\": invalid policy OID "
                        "\"%s\"", spec->name, spec->policy);
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

jpki_err jpki_conf_issuer_check(const jpki_conf_issuer *spec,
                                void (*warn)(void *ud, const char *msg),
                                void *ud, char *err, size_t errlen)
{
    static const uint8_t secret[32] = {1};
    jpki_ctx *ctx = jpki_ctx_new();
    jpki_issuer *is;
    jpki_err e = JPKI_ERR_NOMEM;

    /* a scratch context: the spec alone, whatever else is configured */
    if (ctx != NULL && jpki_ctx_set_secret(ctx, secret, sizeof(secret))
                       == JPKI_OK
        && (is = jpki_ctx_add_issuer(ctx, spec->name)) != NULL) {
        jpki_ctx_policy(ctx)->allow_sha1 = 1;
        e = jpki_conf_issuer_apply(spec, is, err, errlen);
        if (e == JPKI_OK && spec->n_crl > 0)
            (void)jpki_crl_coverage_check(ctx, is,
                                          (const char *const *)spec->crl,
                                          spec->n_crl, warn, ud);
    }
    jpki_ctx_free(ctx);
    return e;
}
