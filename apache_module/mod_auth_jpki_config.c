/*
 * mod_auth_jpki_config.c - directives and configuration of the Apache JPKI
 * gate: per-server settings (a "site": secret, issuers, store, timeouts,
 * mapping file) and per-directory settings (endpoints, header, session,
 * cookie, revocation and failure policy), UNSET sentinels merged the httpd
 * way.  The site contexts (jpki_ctx) are built in check_config, which also
 * runs for `apachectl configtest`, so that every configuration error is
 * reported there with a sentence.
 */

#include "mod_auth_jpki.h"

#include <openssl/err.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>

APLOG_USE_MODULE(auth_jpki);


/* ------------------------------------------------------------------ */
/* Value parsers                                                       */
/* ------------------------------------------------------------------ */

/* "90", "90s", "5m", "1h30m", "2d", "500ms" -> milliseconds.  Seconds
 * when no unit is given.  NULL on success, else what is wrong. */
static const char *
jpki_parse_time(const char *s, int allow_ms, apr_int64_t *out)
{
    apr_int64_t  total = 0, n, mul;
    const char  *p = s;
    int          any = 0;

    if (s == NULL || *s == '\0') {
        return "is empty";
    }

    while (*p) {
        if (*p < '0' || *p > '9') {
            return "must be a time (e.g. 30s, 5m, 8h, 1d)";
        }
        n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > (apr_int64_t) 86400 * 3650) {
                return "is too large";
            }
        }
        if (p[0] == 'm' && p[1] == 's') {
            if (!allow_ms) {
                return "must be given in seconds, minutes, hours or days";
            }
            mul = 1;
            p += 2;
        } else if (*p == 's' || *p == '\0') {
            mul = 1000;
            p += *p ? 1 : 0;
        } else if (*p == 'm') {
            mul = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            mul = 3600 * 1000;
            p++;
        } else if (*p == 'd') {
            mul = (apr_int64_t) 86400 * 1000;
            p++;
        } else {
            return "must be a time (e.g. 30s, 5m, 8h, 1d)";
        }
        total += n * mul;
        any = 1;
    }

    if (!any) {
        return "must be a time (e.g. 30s, 5m, 8h, 1d)";
    }

    *out = total;
    return NULL;
}


/* "10M", "512k", "1g", "1048576" -> bytes. */
static const char *
jpki_parse_size(const char *s, apr_size_t *out)
{
    char        *end;
    apr_int64_t  n;

    n = apr_strtoi64(s, &end, 10);
    if (end == s || n <= 0) {
        return "must be a size (e.g. 10M)";
    }
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K':
        n *= 1024;
        end++;
        break;
    case 'm': case 'M':
        n *= 1024 * 1024;
        end++;
        break;
    case 'g': case 'G':
        n *= (apr_int64_t) 1024 * 1024 * 1024;
        end++;
        break;
    default:
        return "must be a size (e.g. 10M)";
    }
    if (*end != '\0' || n > (apr_int64_t) 64 * 1024 * 1024 * 1024) {
        return "must be a size (e.g. 10M)";
    }
    *out = (apr_size_t) n;
    return NULL;
}


static int
jpki_is_token(const char *s, size_t max)
{
    size_t  n = 0;

    for (; *s; s++, n++) {
        if (*s <= 0x20 || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s)) {
            return 0;
        }
    }
    return n > 0 && n <= max;
}


/* ------------------------------------------------------------------ */
/* Per-server configuration                                            */
/* ------------------------------------------------------------------ */

static jpki_site *
jpki_site_new(apr_pool_t *p)
{
    jpki_site  *site = apr_pcalloc(p, sizeof(jpki_site));

    site->redis_db = JPKI_UNSET;
    site->redis_keepalive = JPKI_UNSET;
    site->redis_timeout = JPKI_UNSET;
    site->redis_connect_timeout = JPKI_UNSET;
    site->ocsp_timeout = JPKI_UNSET;
    site->crl_grace = JPKI_UNSET;
    site->challenge_ttl = JPKI_UNSET;
    site->clock_skew = JPKI_UNSET;
    site->ocsp_good = JPKI_UNSET;
    site->ocsp_hold = JPKI_UNSET;
    site->ocsp_nonce = JPKI_UNSET;
    site->crl_pointer_ttl = JPKI_UNSET;
    site->ocsp_revoked = JPKI_UNSET;

    return site;
}


void *
mjpki_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    jpki_srv_conf  *conf = apr_pcalloc(p, sizeof(jpki_srv_conf));

    conf->site = jpki_site_new(p);

    return conf;
}


#define JPKI_MERGE_INT(f)  site->f = add->f != JPKI_UNSET ? add->f : base->f
#define JPKI_MERGE_PTR(f)  site->f = add->f != NULL ? add->f : base->f

void *
mjpki_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    jpki_srv_conf  *b = basev, *a = addv;
    jpki_srv_conf  *conf = apr_pcalloc(p, sizeof(jpki_srv_conf));
    jpki_site      *base = b->site, *add = a->site, *site;

    if (!a->own) {
        /* nothing of ours in the virtual host: the same site */
        conf->site = base;
        return conf;
    }

    site = jpki_site_new(p);
    conf->site = site;
    conf->own = 1;

    JPKI_MERGE_PTR(secret_file);
    site->issuers = add->issuers && add->issuers->nelts ? add->issuers
                                                        : base->issuers;
    if (add->store) {
        site->store = add->store;
        site->shm_size = add->shm_size;
        site->shm_zone = add->shm_zone;
        site->redis_addr = add->redis_addr;
        site->redis_host = add->redis_host;
        site->redis_port = add->redis_port;
        site->redis_unix = add->redis_unix;
        site->redis_db = add->redis_db;
        site->redis_user = add->redis_user;
        site->redis_password = add->redis_password;
        site->redis_keepalive = add->redis_keepalive;
        site->redis_tls = add->redis_tls;
        site->redis_tls_ca = add->redis_tls_ca;
        site->redis_tls_name = add->redis_tls_name;
    } else {
        site->store = base->store;
        site->shm_size = base->shm_size;
        site->shm_zone = base->shm_zone;
        site->redis_addr = base->redis_addr;
        site->redis_host = base->redis_host;
        site->redis_port = base->redis_port;
        site->redis_unix = base->redis_unix;
        site->redis_db = base->redis_db;
        site->redis_user = base->redis_user;
        site->redis_password = base->redis_password;
        site->redis_keepalive = base->redis_keepalive;
        site->redis_tls = base->redis_tls;
        site->redis_tls_ca = base->redis_tls_ca;
        site->redis_tls_name = base->redis_tls_name;
    }
    JPKI_MERGE_INT(redis_timeout);
    JPKI_MERGE_INT(redis_connect_timeout);
    JPKI_MERGE_INT(ocsp_timeout);
    JPKI_MERGE_PTR(map_file);
    JPKI_MERGE_INT(crl_grace);
    if (add->crl_zone_set) {
        site->crl_zone_size = add->crl_zone_size;
        site->crl_zone_set = 1;
    } else {
        site->crl_zone_size = base->crl_zone_size;
        site->crl_zone_set = base->crl_zone_set;
    }
    JPKI_MERGE_INT(challenge_ttl);
    JPKI_MERGE_INT(clock_skew);
    JPKI_MERGE_INT(ocsp_good);
    JPKI_MERGE_INT(ocsp_hold);
    JPKI_MERGE_INT(ocsp_nonce);
    JPKI_MERGE_INT(crl_pointer_ttl);
    JPKI_MERGE_INT(ocsp_revoked);

    return conf;
}


int
mjpki_site_configured(const jpki_site *site)
{
    return site != NULL
           && (site->secret_file || (site->issuers && site->issuers->nelts)
               || site->store);
}


static jpki_site *
jpki_cmd_site(cmd_parms *cmd)
{
    jpki_srv_conf  *conf;

    conf = ap_get_module_config(cmd->server->module_config,
                                &auth_jpki_module);
    conf->own = 1;

    return conf->site;
}


/* JPKISecretFile FILE */
static const char *
jpki_cmd_secret_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site  *site = jpki_cmd_site(cmd);
    jpki_ctx   *ctx;
    const char *path;
    char        err[256];
    jpki_err    e;

    if (site->secret_file) {
        return "JPKISecretFile: duplicate in this server";
    }

    path = ap_server_root_relative(cmd->pool, arg);
    if (path == NULL) {
        return apr_psprintf(cmd->pool, "JPKISecretFile: invalid path \"%s\"",
                            arg);
    }

    /* read it now: a clear error with the line number */
    ctx = jpki_ctx_new();
    if (ctx == NULL) {
        return "JPKISecretFile: out of memory";
    }
    err[0] = '\0';
    e = jpki_ctx_load_secret_file(ctx, path, err, sizeof(err));
    jpki_ctx_free(ctx);
    if (e != JPKI_OK) {
        return apr_psprintf(cmd->pool, "JPKISecretFile: %s",
                            err[0] ? err : jpki_strerror(e));
    }

    site->secret_file = path;

    return NULL;
}


/* Checks an http:// URL: host[:port][/path]. */
static const char *
jpki_check_ocsp_url(apr_pool_t *p, const char *url, char **host,
                    apr_port_t *port, const char **path)
{
    const char  *hp, *slash;
    char        *hostport, *scope;
    apr_status_t rv;

    if (strncasecmp(url, "http://", 7) != 0 || url[7] == '\0') {
        return "needs an http:// OCSP URL (https responders: put a local "
               "proxy in front)";
    }

    hp = url + 7;
    slash = strchr(hp, '/');
    hostport = slash ? apr_pstrmemdup(p, hp, slash - hp) : apr_pstrdup(p, hp);
    *path = slash ? slash : "/";

    rv = apr_parse_addr_port(host, &scope, port, hostport, p);
    if (rv != APR_SUCCESS || *host == NULL || scope != NULL) {
        return "has an invalid OCSP URL";
    }
    if (*port == 0) {
        *port = 80;
    }

    return NULL;
}


/* JPKIIssuer NAME ca=F1,F2 [ocsp=URL] [crl=FILE] [policy=OID|none] */
static const char *
jpki_cmd_issuer(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    jpki_site         *site = jpki_cmd_site(cmd);
    jpki_issuer_spec  *spec;
    jpki_ctx          *ctx;
    jpki_issuer       *is;
    const char        *err = NULL, *path;
    char              *list, *tok, *last, *host;
    char               buf[256];
    apr_port_t         port;
    int                i;

    if (argc < 2) {
        return "JPKIIssuer: expects NAME ca=FILE[,FILE...] [ocsp=URL] "
               "[crl=FILE] [policy=OID|none]";
    }

    if (site->issuers == NULL) {
        site->issuers = apr_array_make(cmd->pool, 4,
                                       sizeof(jpki_issuer_spec));
    }

    for (i = 0; i < site->issuers->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(site->issuers, i, jpki_issuer_spec).name,
                   argv[0]) == 0)
        {
            return apr_psprintf(cmd->pool, "JPKIIssuer: duplicate issuer "
                                "name \"%s\"", argv[0]);
        }
    }

    spec = apr_array_push(site->issuers);
    memset(spec, 0, sizeof(*spec));
    spec->name = apr_pstrdup(cmd->pool, argv[0]);
    spec->ca = apr_array_make(cmd->pool, 2, sizeof(const char *));

    /* a scratch context validates the files and values now */
    ctx = jpki_ctx_new();
    if (ctx == NULL) {
        return "JPKIIssuer: out of memory";
    }
    is = jpki_ctx_add_issuer(ctx, spec->name);
    if (is == NULL) {
        jpki_ctx_free(ctx);
        return apr_psprintf(cmd->pool, "JPKIIssuer: invalid issuer name "
                            "\"%s\" (empty or too long)", argv[0]);
    }

    for (i = 1; i < argc && err == NULL; i++) {
        if (strncmp(argv[i], "ca=", 3) == 0) {
            list = apr_pstrdup(cmd->temp_pool, argv[i] + 3);
            if (*list == '\0') {
                err = "JPKIIssuer: ca= needs a file name";
                break;
            }
            for (tok = apr_strtok(list, ",", &last); tok;
                 tok = apr_strtok(NULL, ",", &last))
            {
                path = ap_server_root_relative(cmd->pool, tok);
                if (path == NULL) {
                    err = apr_psprintf(cmd->pool, "JPKIIssuer: invalid path "
                                       "\"%s\"", tok);
                    break;
                }
                buf[0] = '\0';
                if (jpki_issuer_add_certs_file(is, path, buf, sizeof(buf))
                    != JPKI_OK)
                {
                    err = apr_psprintf(cmd->pool, "JPKIIssuer %s: %s",
                                       spec->name, buf);
                    break;
                }
                APR_ARRAY_PUSH(spec->ca, const char *) = path;
            }

        } else if (strncmp(argv[i], "ocsp=", 5) == 0) {
            err = jpki_check_ocsp_url(cmd->temp_pool, argv[i] + 5, &host,
                                      &port, &path);
            if (err == NULL
                && jpki_issuer_set_ocsp_url(is, argv[i] + 5) != JPKI_OK)
            {
                err = "has an invalid OCSP URL";
            }
            if (err != NULL) {
                err = apr_psprintf(cmd->pool, "JPKIIssuer %s: %s",
                                   spec->name, err);
            }
            spec->ocsp_url = apr_pstrdup(cmd->pool, argv[i] + 5);

        } else if (strncmp(argv[i], "crl=", 4) == 0) {
            if (argv[i][4] == '\0') {
                err = "JPKIIssuer: crl= needs a file name";
                break;
            }
            spec->crl_file = ap_server_root_relative(cmd->pool, argv[i] + 4);
            if (spec->crl_file == NULL) {
                err = "JPKIIssuer: invalid crl= path";
            }

        } else if (strncmp(argv[i], "policy=", 7) == 0) {
            spec->policy = strcmp(argv[i] + 7, "none") == 0
                           ? "" : apr_pstrdup(cmd->pool, argv[i] + 7);
            if (jpki_issuer_set_policy(is, spec->policy) != JPKI_OK) {
                err = apr_psprintf(cmd->pool, "JPKIIssuer %s: invalid policy "
                                   "OID \"%s\"", spec->name, argv[i] + 7);
            }

        } else {
            err = apr_psprintf(cmd->pool, "JPKIIssuer %s: invalid parameter "
                               "\"%s\" (expected ca=, ocsp=, crl= or "
                               "policy=)", spec->name, argv[i]);
        }
    }

    jpki_ctx_free(ctx);

    if (err == NULL && spec->ca->nelts == 0) {
        err = apr_psprintf(cmd->pool, "JPKIIssuer %s: needs "
                           "ca=FILE[,FILE...]", spec->name);
    }

    return err;
}


static apr_status_t
jpki_ssl_ctx_cleanup(void *data)
{
    SSL_CTX_free(data);
    return APR_SUCCESS;
}


/* A client TLS context trusting ca (TLS 1.2 and later).  The server's
 * certificate is checked after the handshake (mod_auth_jpki_io.c), as
 * nginx's proxy_ssl_verify does: the result and the name are logged then.
 * With out NULL, only checks that the CA file loads. */
static const char *
jpki_tls_ctx(apr_pool_t *p, const char *ca, SSL_CTX **out)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        return "JPKIStore: cannot create a TLS context";
    }

    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return apr_psprintf(p, "JPKIStore: cannot load tls_ca \"%s\" (PEM "
                            "CA certificates)", ca);
    }

    if (out == NULL) {
        SSL_CTX_free(ctx);
        return NULL;
    }

    apr_pool_cleanup_register(p, ctx, jpki_ssl_ctx_cleanup,
                              apr_pool_cleanup_null);
    *out = ctx;

    return NULL;
}


/* JPKIStore shm [size=10M] [zone=NAME]
 * JPKIStore redis=HOST:PORT|unix:/path [db=N] [user=U] [password=P]
 *           [keepalive=N] [tls=on tls_ca=FILE [tls_name=NAME]] */
static const char *
jpki_cmd_store(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    jpki_site     *site = jpki_cmd_site(cmd);
    const char    *err;
    char          *host, *scope, *end;
    apr_port_t     port;
    apr_int64_t    n;
    int            i;

    if (argc < 1) {
        return "JPKIStore: expects \"shm [size=10M] [zone=NAME]\" or "
               "\"redis=HOST:PORT [db=N] [user=U] [password=P]\"";
    }
    if (site->store) {
        return "JPKIStore: duplicate in this server";
    }

    if (strcmp(argv[0], "shm") == 0) {
        site->shm_size = JPKI_SHM_DEFAULT_SIZE;
        site->shm_zone = "jpki";
        for (i = 1; i < argc; i++) {
            if (strncmp(argv[i], "size=", 5) == 0) {
                err = jpki_parse_size(argv[i] + 5, &site->shm_size);
                if (err != NULL) {
                    return apr_psprintf(cmd->pool, "JPKIStore: size= %s",
                                        err);
                }
                if (site->shm_size < 2 * jpki_shm_min_size()
                    || site->shm_size < 64 * 1024)
                {
                    return apr_psprintf(cmd->pool, "JPKIStore: size= must be "
                                        "at least %" APR_SIZE_T_FMT " bytes",
                                        (apr_size_t) (2 * jpki_shm_min_size()
                                            > 65536 ? 2 * jpki_shm_min_size()
                                                    : 65536));
                }
            } else if (strncmp(argv[i], "zone=", 5) == 0
                       && jpki_is_token(argv[i] + 5, 64))
            {
                site->shm_zone = apr_pstrdup(cmd->pool, argv[i] + 5);
            } else {
                return apr_psprintf(cmd->pool, "JPKIStore: invalid parameter "
                                    "\"%s\" (expected size=N or zone=NAME)",
                                    argv[i]);
            }
        }
        site->store = JPKI_STORE_SHM;
        return NULL;
    }

    if (strncmp(argv[0], "redis=", 6) != 0) {
        return "JPKIStore: expects \"shm [size=10M] [zone=NAME]\" or "
               "\"redis=HOST:PORT [db=N] [user=U] [password=P]\"";
    }

    site->redis_addr = apr_pstrdup(cmd->pool, argv[0] + 6);
    if (strncmp(site->redis_addr, "unix:", 5) == 0) {
        if (site->redis_addr[5] != '/') {
            return "JPKIStore: redis=unix: needs an absolute socket path";
        }
        site->redis_unix = site->redis_addr + 5;
    } else {
        if (apr_parse_addr_port(&host, &scope, &port, site->redis_addr,
                                cmd->pool) != APR_SUCCESS
            || host == NULL || scope != NULL)
        {
            return apr_psprintf(cmd->pool, "JPKIStore: invalid redis address "
                                "\"%s\" (HOST:PORT or unix:/path)",
                                site->redis_addr);
        }
        site->redis_host = host;
        site->redis_port = port ? port : 6379;
    }

    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "db=", 3) == 0) {
            n = apr_strtoi64(argv[i] + 3, &end, 10);
            if (argv[i][3] == '\0' || *end != '\0' || n < 0 || n > 15) {
                return "JPKIStore: invalid db= (0..15)";
            }
            site->redis_db = (int) n;
        } else if (strncmp(argv[i], "user=", 5) == 0 && argv[i][5]) {
            site->redis_user = apr_pstrdup(cmd->pool, argv[i] + 5);
        } else if (strncmp(argv[i], "password=", 9) == 0 && argv[i][9]) {
            site->redis_password = apr_pstrdup(cmd->pool, argv[i] + 9);
        } else if (strncmp(argv[i], "keepalive=", 10) == 0) {
            n = apr_strtoi64(argv[i] + 10, &end, 10);
            if (argv[i][10] == '\0' || *end != '\0' || n < 1 || n > 1024) {
                return "JPKIStore: invalid keepalive= (1..1024)";
            }
            site->redis_keepalive = (int) n;
        } else if (strcmp(argv[i], "tls=on") == 0) {
            site->redis_tls = 1;
        } else if (strncmp(argv[i], "tls_ca=", 7) == 0 && argv[i][7]) {
            site->redis_tls_ca = ap_server_root_relative(cmd->pool,
                                                         argv[i] + 7);
            if (site->redis_tls_ca == NULL) {
                return "JPKIStore: invalid tls_ca= path";
            }
        } else if (strncmp(argv[i], "tls_name=", 9) == 0 && argv[i][9]) {
            site->redis_tls_name = apr_pstrdup(cmd->pool, argv[i] + 9);
        } else {
            return apr_psprintf(cmd->pool, "JPKIStore: invalid parameter "
                                "\"%s\" (expected db=, user=, password=, "
                                "keepalive=, tls=on, tls_ca= or tls_name=)",
                                argv[i]);
        }
    }

    if (site->redis_user && !site->redis_password) {
        return "JPKIStore: user= without password=";
    }

    if (site->redis_tls_ca && !site->redis_tls) {
        return "JPKIStore: tls_ca= without tls=on";
    }

    if (site->redis_tls) {
        if (site->redis_tls_ca == NULL) {
            return "JPKIStore: redis tls=on needs tls_ca=FILE (the server is "
                   "always verified)";
        }
        if (site->redis_tls_name == NULL && site->redis_unix) {
            return "JPKIStore: tls=on over a unix socket needs tls_name=";
        }
        if (site->redis_tls_name == NULL) {
            site->redis_tls_name = site->redis_host;
        }
        err = jpki_tls_ctx(cmd->pool, site->redis_tls_ca, NULL);
        if (err != NULL) {
            return err;
        }
    }

    site->store = JPKI_STORE_REDIS;

    return NULL;
}


/* JPKIRedisTimeout, JPKIRedisConnectTimeout, JPKIOCSPTimeout: a time with
 * millisecond resolution (1s, 500ms). */
static const char *
jpki_cmd_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site    *site = jpki_cmd_site(cmd);
    apr_int64_t   ms;
    const char   *err;
    int           off = (int) (long) cmd->info;

    err = jpki_parse_time(arg, 1, &ms);
    if (err == NULL && (ms < 1 || ms > 600 * 1000)) {
        err = "must be between 1ms and 10m";
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s %s", cmd->cmd->name, err);
    }

    *(apr_interval_time_t *) ((char *) site + off) = ms * 1000;

    return NULL;
}


/* JPKIOCSPNonce On|Off: site policy. */
static const char *
jpki_cmd_ocsp_nonce(cmd_parms *cmd, void *dconf, int on)
{
    jpki_cmd_site(cmd)->ocsp_nonce = on ? 1 : 0;

    return NULL;
}


/* JPKIChallengeTTL, JPKIClockSkew, JPKIOCSPCache*: site policy, seconds. */
static const char *
jpki_cmd_site_secs(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site    *site = jpki_cmd_site(cmd);
    apr_int64_t   ms;
    const char   *err;
    int           off = (int) (long) cmd->info;

    err = jpki_parse_time(arg, 0, &ms);
    if (err == NULL && ms > (apr_int64_t) 86400 * 365 * 1000) {
        err = "is too large";
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s %s", cmd->cmd->name, err);
    }

    *(int *) ((char *) site + off) = (int) (ms / 1000);

    return NULL;
}


static const char *
jpki_cmd_map_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site  *site = jpki_cmd_site(cmd);
    char        err[512];

    site->map_file = ap_server_root_relative(cmd->pool, arg);
    if (site->map_file == NULL) {
        return apr_psprintf(cmd->pool, "JPKIMapFile: invalid path \"%s\"",
                            arg);
    }

    /* read by the parent, then again by each child when it changes: one
     * that is not there is refused now, with the system's reason */
    if (jpki_file_check("mapping file", site->map_file, err, sizeof(err))
        != JPKI_OK)
    {
        return apr_psprintf(cmd->pool, "JPKIMapFile: %s", err);
    }

    return NULL;
}


/* JPKICRLGrace auto|TIME: a CRL is stale after nextUpdate + TIME; auto is
 * the end of the J-LIS validity (thisUpdate + 72 h). */
static const char *
jpki_cmd_crl_grace(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site    *site = jpki_cmd_site(cmd);
    apr_int64_t   ms;

    if (strcasecmp(arg, "auto") == 0) {
        site->crl_grace = JPKI_UNSET;
        return NULL;
    }

    if (jpki_parse_time(arg, 0, &ms) != NULL || ms < 1000
        || ms > (apr_int64_t) 30 * 86400 * 1000)
    {
        return "JPKICRLGrace must be \"auto\" or a time of 1s..30d";
    }

    site->crl_grace = (int) (ms / 1000);

    return NULL;
}


/* JPKICRLZone SIZE|off: the CRL files of the site parsed once, by one
 * process, into shared memory that every child reads (24 bytes a CRL
 * entry; a replacement is placed beside the CRL in force). */
static const char *
jpki_cmd_crl_zone(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_site   *site = jpki_cmd_site(cmd);
    apr_size_t   size;

    if (site->crl_zone_set) {
        return "JPKICRLZone: duplicate in this server";
    }

    if (strcasecmp(arg, "off") == 0) {
        size = 0;
    } else if (jpki_parse_size(arg, &size) != NULL
               || size < JPKI_CRLZ_MIN_SIZE)
    {
        return apr_psprintf(cmd->pool, "JPKICRLZone must be \"off\" or a "
                            "size of at least %dk (e.g. 64M)",
                            JPKI_CRLZ_MIN_SIZE / 1024);
    }

    site->crl_zone_size = size;
    site->crl_zone_set = 1;

    return NULL;
}


/* ------------------------------------------------------------------ */
/* Per-directory configuration                                         */
/* ------------------------------------------------------------------ */

void *
mjpki_create_dir_conf(apr_pool_t *p, char *dir)
{
    jpki_dir_conf  *d = apr_pcalloc(p, sizeof(jpki_dir_conf));

    d->where = dir ? apr_pstrdup(p, dir) : NULL;
    d->endpoints = JPKI_UNSET;
    d->health = JPKI_UNSET;
    d->lifetime = JPKI_UNSET;
    d->idle = JPKI_UNSET;
    d->recheck = JPKI_UNSET;
    d->cookie_secure = JPKI_UNSET;
    d->pass_cookie = JPKI_UNSET;
    d->rev_policy = JPKI_UNSET;
    d->fail_open = JPKI_UNSET;
    d->require_account = JPKI_UNSET;

    return d;
}


#define JPKI_DMERGE_INT(f)  d->f = add->f != JPKI_UNSET ? add->f : base->f
#define JPKI_DMERGE_PTR(f)  d->f = add->f != NULL ? add->f : base->f

void *
mjpki_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    jpki_dir_conf  *base = basev, *add = addv;
    jpki_dir_conf  *d = apr_palloc(p, sizeof(jpki_dir_conf));

    d->where = add->where ? add->where : base->where;
    JPKI_DMERGE_INT(endpoints);
    JPKI_DMERGE_INT(health);
    JPKI_DMERGE_PTR(header);
    JPKI_DMERGE_INT(lifetime);
    JPKI_DMERGE_INT(idle);
    JPKI_DMERGE_INT(recheck);
    JPKI_DMERGE_PTR(cookie_name);
    JPKI_DMERGE_PTR(cookie_path);
    JPKI_DMERGE_PTR(cookie_samesite);
    JPKI_DMERGE_INT(cookie_secure);
    JPKI_DMERGE_INT(pass_cookie);
    JPKI_DMERGE_INT(rev_policy);
    JPKI_DMERGE_INT(fail_open);
    JPKI_DMERGE_PTR(login_page);
    JPKI_DMERGE_PTR(trusted_origins);
    JPKI_DMERGE_INT(require_account);
    /* each value changes only what it names: the server's, then the
     * section's, as if given in that order */
    if (base->throttle && add->throttle) {
        d->throttle = apr_array_append(p, base->throttle, add->throttle);
    } else {
        JPKI_DMERGE_PTR(throttle);
    }

    return d;
}


static int
jpki_dir_has_settings(const jpki_dir_conf *d)
{
    return d->endpoints == 1 || d->health == 1 || d->header
           || d->lifetime != JPKI_UNSET
           || d->idle != JPKI_UNSET || d->recheck != JPKI_UNSET
           || d->cookie_name || d->cookie_path || d->cookie_samesite
           || d->cookie_secure != JPKI_UNSET || d->pass_cookie != JPKI_UNSET
           || d->rev_policy != JPKI_UNSET
           || d->fail_open != JPKI_UNSET || d->login_page
           || d->trusted_origins || d->require_account != JPKI_UNSET
           || d->throttle;
}


const char *
mjpki_dir_header(const jpki_dir_conf *d)
{
    return d->header ? d->header : JPKI_DEFAULT_HEADER;
}


static int
jpki_copy(char *dst, size_t max, const char *src)
{
    size_t  n = strlen(src);

    if (n >= max) {
        return 0;
    }
    memcpy(dst, src, n + 1);

    return 1;
}


jpki_err
mjpki_apply_throttle(jpki_policy *p, const apr_array_header_t *t, char *err,
                     size_t errlen)
{
    jpki_err  e;
    int       i;

    for (i = 0; t != NULL && i < t->nelts; i++) {
        e = jpki_policy_set_throttle(p, APR_ARRAY_IDX(t, i, const char *),
                                     err, errlen);
        if (e != JPKI_OK) {
            return e;
        }
    }

    return JPKI_OK;
}


const jpki_policy *
mjpki_dir_policy(apr_pool_t *p, const jpki_site *site, const jpki_dir_conf *d,
                char *err, size_t errlen)
{
    jpki_policy  *pol;

    if (site == NULL || site->ctx == NULL) {
        apr_cpystrn(err, "the server has no JPKISecretFile, JPKIIssuer and "
                    "JPKIStore", errlen);
        return NULL;
    }

    pol = apr_palloc(p, sizeof(jpki_policy));
    *pol = *jpki_ctx_get_policy(site->ctx);

    if (d->lifetime != JPKI_UNSET) {
        pol->session_lifetime = (unsigned) d->lifetime;
    }
    if (d->idle != JPKI_UNSET) {
        pol->session_idle = (unsigned) d->idle;
    }
    if (d->recheck != JPKI_UNSET) {
        pol->recheck_interval = (unsigned) d->recheck;
    }
    if (d->cookie_secure != JPKI_UNSET) {
        pol->cookie_secure = (unsigned) d->cookie_secure;
    }
    pol->cookie_httponly = 1;
    if (d->rev_policy != JPKI_UNSET) {
        pol->rev_policy = (jpki_rev_policy) d->rev_policy;
    }
    if (d->fail_open != JPKI_UNSET) {
        pol->fail_open = (unsigned) d->fail_open;
    }
    if (d->require_account != JPKI_UNSET) {
        pol->require_account = (unsigned) d->require_account;
    }

    if ((d->cookie_name
         && !jpki_copy(pol->cookie_name, sizeof(pol->cookie_name),
                       d->cookie_name))
        || (d->cookie_path
            && !jpki_copy(pol->cookie_path, sizeof(pol->cookie_path),
                          d->cookie_path))
        || (d->cookie_samesite
            && !jpki_copy(pol->cookie_samesite, sizeof(pol->cookie_samesite),
                          d->cookie_samesite))
        || (d->login_page
            && !jpki_copy(pol->login_page, sizeof(pol->login_page),
                          d->login_page))
        || (d->trusted_origins
            && !jpki_copy(pol->trusted_origins, sizeof(pol->trusted_origins),
                          d->trusted_origins)))
    {
        apr_cpystrn(err, "cookie name, cookie path, login page or trusted "
                    "origins too long", errlen);
        return NULL;
    }

    if (mjpki_apply_throttle(pol, d->throttle, err, errlen) != JPKI_OK
        || jpki_policy_check(pol, err, errlen) != JPKI_OK)
    {
        return NULL;
    }

    return pol;
}


/* JPKISessionLifetime, JPKISessionIdle, JPKIRecheckInterval: seconds. */
static const char *
jpki_cmd_dir_secs(cmd_parms *cmd, void *dconf, const char *arg)
{
    apr_int64_t   ms;
    const char   *err;
    int           off = (int) (long) cmd->info;

    err = jpki_parse_time(arg, 0, &ms);
    if (err == NULL && ms > (apr_int64_t) 86400 * 365 * 1000) {
        err = "is too large";
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s %s", cmd->cmd->name, err);
    }

    *(int *) ((char *) dconf + off) = (int) (ms / 1000);

    return NULL;
}


static const char *
jpki_cmd_header(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (!jpki_is_token(arg, 64)) {
        return "JPKIHeader must be a header name of 1..64 characters";
    }
    d->header = apr_pstrdup(cmd->pool, arg);

    return NULL;
}


static const char *
jpki_cmd_cookie_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (!jpki_is_token(arg, 63)) {
        return "JPKICookieName must be a token of 1..63 characters";
    }
    d->cookie_name = apr_pstrdup(cmd->pool, arg);

    return NULL;
}


static const char *
jpki_cmd_cookie_path(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (arg[0] != '/' || strlen(arg) > 127 || strpbrk(arg, "; \t\r\n")) {
        return "JPKICookiePath must be a path starting with '/' (at most 127 "
               "characters, no ';' or spaces)";
    }
    d->cookie_path = apr_pstrdup(cmd->pool, arg);

    return NULL;
}


static const char *
jpki_cmd_samesite(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (strcmp(arg, "Strict") != 0 && strcmp(arg, "Lax") != 0
        && strcmp(arg, "None") != 0)
    {
        return "JPKICookieSameSite must be Strict, Lax or None";
    }
    d->cookie_samesite = apr_pstrdup(cmd->pool, arg);

    return NULL;
}


static const char *
jpki_cmd_revocation(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf    *d = dconf;
    jpki_rev_policy   p;

    if (jpki_rev_policy_parse(arg, strlen(arg), &p) != JPKI_OK
        || p == JPKI_REV_NONE)
    {
        return "JPKIRevocation must be ocsp, crl, \"ocsp,crl\" or "
               "\"crl,ocsp\"";
    }
    d->rev_policy = (int) p;

    return NULL;
}


static const char *
jpki_cmd_failure(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (strcasecmp(arg, "closed") == 0) {
        d->fail_open = 0;
    } else if (strcasecmp(arg, "open") == 0) {
        d->fail_open = 1;
    } else {
        return "JPKIFailure must be \"closed\" or \"open\"";
    }

    return NULL;
}


/* JPKITrustedOrigins https://login.example ...: the origins (besides the
 * gate's own) whose pages may post logins and logouts (checked with the
 * policy at start-up). */
static const char *
jpki_cmd_trusted_origins(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    d->trusted_origins = d->trusted_origins
        ? apr_pstrcat(cmd->pool, d->trusted_origins, " ", arg, NULL)
        : apr_pstrdup(cmd->pool, arg);

    return NULL;
}


/* JPKIThrottle off | [window=T] [cert=N] [addr=N] [logins=N]
 * [concurrency=N]: the grammar is the core's (jpki_policy_set_throttle),
 * checked here over the defaults; the values are applied to the section's
 * policy in order, after the server's (each changes only what it names). */
static const char *
jpki_cmd_throttle(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    jpki_dir_conf  *d = dconf;
    jpki_ctx       *ctx;
    jpki_policy     pol;
    const char     *args, *msg;
    char            err[256];
    int             i;

    if (argc == 0) {
        return "JPKIThrottle: expects off, or window=, cert=, addr=, "
               "logins=, concurrency=";
    }

    args = argv[0];
    for (i = 1; i < argc; i++) {
        args = apr_pstrcat(cmd->pool, args, " ", argv[i], NULL);
    }

    ctx = jpki_ctx_new();
    if (ctx == NULL) {
        return "JPKIThrottle: out of memory";
    }
    pol = *jpki_ctx_get_policy(ctx);
    jpki_ctx_free(ctx);

    err[0] = '\0';
    if (jpki_policy_set_throttle(&pol, args, err, sizeof(err)) != JPKI_OK) {
        msg = strncmp(err, "throttle: ", 10) == 0 ? err + 10 : err;
        return apr_psprintf(cmd->pool, "JPKIThrottle: %s", msg);
    }

    if (d->throttle == NULL) {
        d->throttle = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(d->throttle, const char *) = apr_pstrdup(cmd->pool, args);

    return NULL;
}


static const char *
jpki_cmd_login_page(cmd_parms *cmd, void *dconf, const char *arg)
{
    jpki_dir_conf  *d = dconf;

    if (arg[0] != '\0' && strcasecmp(arg, "none") != 0 && arg[0] != '/'
        && strncasecmp(arg, "http://", 7) != 0
        && strncasecmp(arg, "https://", 8) != 0)
    {
        return "JPKILoginPage must start with '/' or http(s):// (or be "
               "\"none\")";
    }
    if (strlen(arg) > 255 || strpbrk(arg, " \t\r\n\"")) {
        return "JPKILoginPage: at most 255 characters, no spaces or quotes";
    }
    d->login_page = strcasecmp(arg, "none") == 0 ? ""
                                                 : apr_pstrdup(cmd->pool, arg);

    return NULL;
}


static const char *
jpki_cmd_endpoints(cmd_parms *cmd, void *dconf, int on)
{
    jpki_dir_conf  *d = dconf;

    if (cmd->path == NULL) {
        return "JPKIEndpoints belongs in a <Location> (the endpoints are "
               "<location>/challenge, /login, /logout and /status)";
    }
    d->endpoints = on;

    return NULL;
}


static const char *
jpki_cmd_health(cmd_parms *cmd, void *dconf, int on)
{
    jpki_dir_conf  *d = dconf;

    if (cmd->path == NULL) {
        return "JPKIHealth belongs in a <Location>";
    }
    d->health = on;

    return NULL;
}


/* ------------------------------------------------------------------ */
/* Building the sites (check_config: also for `apachectl configtest`)  */
/* ------------------------------------------------------------------ */

void
mjpki_log_cb(void *ud, jpki_log_level level, const char *msg)
{
    static const int  map[] = {
        APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG
    };
    jpki_site        *site = ud;
    request_rec      *r = mjpki_current_request();
    int               lvl = map[(unsigned) level < 4 ? level : 3];

    if (r != NULL) {
        ap_log_rerror(APLOG_MARK, lvl, 0, r, "%s", msg);
    } else {
        ap_log_error(APLOG_MARK, lvl, 0, site ? site->server : NULL, "%s",
                     msg);
    }
}


static apr_status_t
jpki_ctx_cleanup(void *data)
{
    jpki_ctx_free(data);
    return APR_SUCCESS;
}


static const char *
jpki_server_name(apr_pool_t *p, server_rec *s)
{
    if (!s->is_virtual) {
        return "the main server";
    }
    return apr_psprintf(p, "the virtual host of %s:%d", s->defn_name,
                        s->defn_line_number);
}


static int
jpki_build_site(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                jpki_site *site)
{
    jpki_policy        *pol;
    jpki_dir_conf      *dflt;
    jpki_issuer_spec   *spec;
    jpki_issuer_rt     *rt;
    jpki_issuer        *is;
    const char         *missing = NULL, *path;
    char                err[256], *host;
    apr_port_t          port;
    apr_status_t        rv;
    int                 i, j;

    site->server = s;

    if (site->secret_file == NULL) {
        missing = "JPKISecretFile";
    } else if (site->issuers == NULL || site->issuers->nelts == 0) {
        missing = "JPKIIssuer";
    } else if (!site->store) {
        missing = "JPKIStore (e.g. \"JPKIStore shm size=10M\")";
    }
    if (missing != NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s: %s is required (the gate "
                     "needs JPKISecretFile, JPKIIssuer and JPKIStore)",
                     jpki_server_name(ptemp, s), missing);
        return !OK;
    }

    site->ctx = jpki_ctx_new();
    if (site->ctx == NULL) {
        return !OK;
    }
    apr_pool_cleanup_register(pconf, site->ctx, jpki_ctx_cleanup,
                              apr_pool_cleanup_null);
    jpki_ctx_set_log(site->ctx, mjpki_log_cb, site);

    err[0] = '\0';
    if (jpki_ctx_load_secret_file(site->ctx, site->secret_file, err,
                                  sizeof(err)) != JPKI_OK)
    {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s: JPKISecretFile: %s",
                     jpki_server_name(ptemp, s), err);
        return !OK;
    }

    pol = jpki_ctx_policy(site->ctx);
    if (site->challenge_ttl != JPKI_UNSET) {
        pol->challenge_ttl = (unsigned) site->challenge_ttl;
    }
    if (site->clock_skew != JPKI_UNSET) {
        pol->clock_skew = (unsigned) site->clock_skew;
    }
    if (site->ocsp_good != JPKI_UNSET) {
        pol->ocsp_good_max_ttl = (unsigned) site->ocsp_good;
    }
    if (site->crl_pointer_ttl != JPKI_UNSET) {
        pol->crl_pointer_ttl = (unsigned) site->crl_pointer_ttl;
    }
    if (site->ocsp_hold != JPKI_UNSET) {
        pol->ocsp_hold_ttl = (unsigned) site->ocsp_hold;
    }
    if (site->ocsp_nonce != JPKI_UNSET) {
        pol->ocsp_nonce = (unsigned) site->ocsp_nonce;
    }
    if (site->ocsp_revoked != JPKI_UNSET) {
        pol->ocsp_revoked_ttl = (unsigned) site->ocsp_revoked;
    }

    /* JPKIThrottle at the server level of the server that defines the
     * site: the site's values (each location's policy starts from them) */
    dflt = ap_get_module_config(s->lookup_defaults, &auth_jpki_module);
    err[0] = '\0';
    if (dflt != NULL
        && mjpki_apply_throttle(pol, dflt->throttle, err, sizeof(err))
           != JPKI_OK)
    {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s: JPKIThrottle: %s",
                     jpki_server_name(ptemp, s), err);
        return !OK;
    }

    site->rt_issuers = apr_array_make(pconf, site->issuers->nelts,
                                      sizeof(jpki_issuer_rt));

    for (i = 0; i < site->issuers->nelts; i++) {
        spec = &APR_ARRAY_IDX(site->issuers, i, jpki_issuer_spec);
        rt = apr_array_push(site->rt_issuers);
        memset(rt, 0, sizeof(*rt));
        rt->spec = spec;

        is = jpki_ctx_add_issuer(site->ctx, spec->name);
        if (is == NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         "jpki: %s: JPKIIssuer %s: duplicate "
                         "name or too many issuers",
                         jpki_server_name(ptemp, s), spec->name);
            return !OK;
        }
        rt->issuer = is;

        for (j = 0; j < spec->ca->nelts; j++) {
            path = APR_ARRAY_IDX(spec->ca, j, const char *);
            err[0] = '\0';
            if (jpki_issuer_add_certs_file(is, path, err, sizeof(err))
                != JPKI_OK)
            {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                             "jpki: %s: JPKIIssuer %s: %s",
                             jpki_server_name(ptemp, s), spec->name, err);
                return !OK;
            }
        }

        if (spec->policy != NULL
            && jpki_issuer_set_policy(is, spec->policy) != JPKI_OK)
        {
            return !OK;
        }

        if (spec->crl_file != NULL
            && jpki_issuer_set_crl_source(is, spec->crl_file) != JPKI_OK)
        {
            return !OK;
        }

        if (spec->ocsp_url != NULL) {
            if (jpki_check_ocsp_url(pconf, spec->ocsp_url, &host, &port,
                                    &rt->ocsp_path) != NULL
                || jpki_issuer_set_ocsp_url(is, spec->ocsp_url) != JPKI_OK)
            {
                return !OK;
            }
            rv = apr_sockaddr_info_get(&rt->ocsp_addr, host, APR_UNSPEC,
                                       port, 0, pconf);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv,
                             NULL, "jpki: %s: JPKIIssuer %s: "
                             "OCSP host \"%s\" does not resolve",
                             jpki_server_name(ptemp, s), spec->name, host);
                return !OK;
            }
            rt->ocsp_host = port == 80 ? host
                                       : apr_psprintf(pconf, "%s:%u",
                                             strchr(host, ':')
                                             ? apr_psprintf(pconf, "[%s]",
                                                            host)
                                             : host, port);
        }
    }

    /* CRLs read from the store go stale under the same grace as files */
    jpki_ctx_policy(site->ctx)->crl_grace =
        site->crl_grace == JPKI_UNSET ? JPKI_CRL_GRACE_VALIDITY
                                      : (unsigned) site->crl_grace;

    err[0] = '\0';
    if (jpki_ctx_finish(site->ctx, err, sizeof(err)) != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: %s: %s", jpki_server_name(ptemp, s),
                     err);
        return !OK;
    }

    /* defaults */
    if (site->redis_timeout == JPKI_UNSET) {
        site->redis_timeout = apr_time_from_sec(1);
    }
    if (site->redis_connect_timeout == JPKI_UNSET) {
        site->redis_connect_timeout = apr_time_from_sec(1);
    }
    if (site->ocsp_timeout == JPKI_UNSET) {
        site->ocsp_timeout = apr_time_from_sec(3);
    }
    if (site->redis_db == JPKI_UNSET) {
        site->redis_db = 0;
    }
    if (site->redis_keepalive == JPKI_UNSET) {
        site->redis_keepalive = 16;
    }

    site->grace = site->crl_grace == JPKI_UNSET ? JPKI_CRL_GRACE_VALIDITY
                                                : (unsigned) site->crl_grace;

    if (site->store == JPKI_STORE_REDIS && site->redis_tls) {
        missing = jpki_tls_ctx(pconf, site->redis_tls_ca, &site->redis_ssl);
        if (missing != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                         "jpki: %s: %s", jpki_server_name(ptemp, s), missing);
            return !OK;
        }
    }

    if (site->store == JPKI_STORE_REDIS) {
        if (site->redis_unix) {
#if APR_HAVE_SOCKADDR_UN
            rv = apr_sockaddr_info_get(&site->redis_sa, site->redis_unix,
                                       APR_UNIX, 0, 0, pconf);
#else
            rv = APR_ENOTIMPL;
#endif
        } else {
            rv = apr_sockaddr_info_get(&site->redis_sa, site->redis_host,
                                       APR_UNSPEC, site->redis_port, 0,
                                       pconf);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, rv, NULL,
                         "jpki: %s: redis address \"%s\" does "
                         "not resolve", jpki_server_name(ptemp, s),
                         site->redis_addr);
            return !OK;
        }
    }

    site->built = 1;

    return OK;
}


/* Checks the merged policy of a section (over its server's defaults). */
static int
jpki_check_section(apr_pool_t *ptemp, server_rec *s, jpki_site *site,
                   ap_conf_vector_t *sec, int vhost_sites)
{
    int             fatal;
    jpki_dir_conf  *base, *d, *m;
    char            err[256];

    base = ap_get_module_config(s->lookup_defaults, &auth_jpki_module);
    d = sec ? ap_get_module_config(sec, &auth_jpki_module) : base;

    if (d == NULL || base == NULL || !jpki_dir_has_settings(d)) {
        return OK;
    }

    m = sec ? mjpki_merge_dir_conf(ptemp, base, d) : base;

    if (!mjpki_site_configured(site)) {
        if (m->endpoints != 1 && m->health != 1) {
            return OK;
        }
        /* the main server's sections apply to every virtual host: when
         * virtual hosts have sites, the main server may have none */
        fatal = s->is_virtual || !vhost_sites;
        ap_log_error(APLOG_MARK, APLOG_STARTUP | (fatal ? APLOG_EMERG
                                                        : APLOG_WARNING),
                     0, NULL, "jpki: %s in <Location %s> of %s: the server "
                     "has no JPKISecretFile, JPKIIssuer and JPKIStore",
                     m->endpoints == 1 ? "JPKIEndpoints" : "JPKIHealth",
                     d->where ? d->where : "/",
                     jpki_server_name(ptemp, s));
        return fatal ? !OK : OK;
    }

    err[0] = '\0';
    if (mjpki_dir_policy(ptemp, site, m, err, sizeof(err)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "jpki: settings for \"%s\" (%s): %s",
                     d->where ? d->where : "the server",
                     jpki_server_name(ptemp, s), err);
        return !OK;
    }

    return OK;
}


int
mjpki_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                  server_rec *s)
{
    server_rec          *sv;
    jpki_srv_conf       *conf;
    core_server_config  *core;
    apr_array_header_t  *secs[2];
    int                  i, k, vhost_sites = 0;

    for (sv = s; sv; sv = sv->next) {
        conf = ap_get_module_config(sv->module_config, &auth_jpki_module);
        if (!mjpki_site_configured(conf->site)) {
            continue;
        }
        vhost_sites |= sv->is_virtual;
        if (conf->site->built) {
            continue;
        }
        if (jpki_build_site(pconf, ptemp, sv, conf->site) != OK) {
            return !OK;
        }
    }

    for (sv = s; sv; sv = sv->next) {
        conf = ap_get_module_config(sv->module_config, &auth_jpki_module);
        if (jpki_check_section(ptemp, sv, conf->site, NULL, vhost_sites)
            != OK)
        {
            return !OK;
        }
        core = ap_get_core_module_config(sv->module_config);
        secs[0] = core->sec_url;
        secs[1] = core->sec_dir;
        for (k = 0; k < 2; k++) {
            for (i = 0; secs[k] && i < secs[k]->nelts; i++) {
                if (jpki_check_section(ptemp, sv, conf->site,
                        APR_ARRAY_IDX(secs[k], i, ap_conf_vector_t *),
                        vhost_sites)
                    != OK)
                {
                    return !OK;
                }
            }
        }
    }

    return OK;
}


/* ------------------------------------------------------------------ */
/* Directives                                                          */
/* ------------------------------------------------------------------ */

#define JPKI_SITE_OFF(f)  (void *) APR_OFFSETOF(jpki_site, f)
#define JPKI_DIR_OFF(f)   (void *) APR_OFFSETOF(jpki_dir_conf, f)
#define JPKI_DIR_CTX      (RSRC_CONF | ACCESS_CONF)

const command_rec mjpki_cmds[] = {
    /* server */
    AP_INIT_TAKE1("JPKISecretFile", jpki_cmd_secret_file, NULL, RSRC_CONF,
        "the site secret file (secret <hex>, key <id> <hex> [current])"),
    AP_INIT_TAKE_ARGV("JPKIIssuer", jpki_cmd_issuer, NULL, RSRC_CONF,
        "NAME ca=FILE[,FILE...] [ocsp=http://...] [crl=FILE] "
        "[policy=OID|none]"),
    AP_INIT_TAKE_ARGV("JPKIStore", jpki_cmd_store, NULL, RSRC_CONF,
        "shm [size=10M] [zone=NAME] | redis=HOST:PORT|unix:/path [db=N] "
        "[user=U] [password=P] [keepalive=N] [tls=on tls_ca=FILE "
        "[tls_name=NAME]]"),
    AP_INIT_TAKE1("JPKIRedisTimeout", jpki_cmd_timeout,
        JPKI_SITE_OFF(redis_timeout), RSRC_CONF,
        "bound of one Redis round trip [1s]"),
    AP_INIT_TAKE1("JPKIRedisConnectTimeout", jpki_cmd_timeout,
        JPKI_SITE_OFF(redis_connect_timeout), RSRC_CONF,
        "bound of a Redis connect [1s]"),
    AP_INIT_TAKE1("JPKIOCSPTimeout", jpki_cmd_timeout,
        JPKI_SITE_OFF(ocsp_timeout), RSRC_CONF,
        "bound of an OCSP exchange, connect and whole answer [3s]"),
    AP_INIT_TAKE1("JPKIMapFile", jpki_cmd_map_file, NULL, RSRC_CONF,
        "mappings \"<cert_id> <account>\" (re-read when it changes)"),
    AP_INIT_TAKE1("JPKICRLGrace", jpki_cmd_crl_grace, NULL, RSRC_CONF,
        "a CRL is stale after nextUpdate + this; auto: thisUpdate + 72 h "
        "[auto]"),
    AP_INIT_TAKE1("JPKICRLZone", jpki_cmd_crl_zone, NULL, RSRC_CONF,
        "SIZE (e.g. 64M) | off: CRL files parsed once, by one process, into "
        "shared memory every child answers from [off]"),
    AP_INIT_TAKE1("JPKIChallengeTTL", jpki_cmd_site_secs,
        JPKI_SITE_OFF(challenge_ttl), RSRC_CONF, "challenge validity [120s]"),
    AP_INIT_TAKE1("JPKIClockSkew", jpki_cmd_site_secs,
        JPKI_SITE_OFF(clock_skew), RSRC_CONF,
        "tolerance for OCSP/CRL times [300s]"),
    AP_INIT_TAKE1("JPKIOCSPCacheGood", jpki_cmd_site_secs,
        JPKI_SITE_OFF(ocsp_good), RSRC_CONF,
        "cache of a \"good\" answer at most [1h]"),
    AP_INIT_TAKE1("JPKIOCSPCacheHold", jpki_cmd_site_secs,
        JPKI_SITE_OFF(ocsp_hold), RSRC_CONF,
        "cache of a certificateHold answer [5m]"),
    AP_INIT_TAKE1("JPKICRLPointerTTL", jpki_cmd_site_secs,
        JPKI_SITE_OFF(crl_pointer_ttl), RSRC_CONF,
        "how long a process keeps the pointer of a CRL in Redis [10s]"),
    AP_INIT_TAKE1("JPKIOCSPCacheRevoked", jpki_cmd_site_secs,
        JPKI_SITE_OFF(ocsp_revoked), RSRC_CONF,
        "cache of a final revocation [30d]"),

    /* directory */
    AP_INIT_FLAG("JPKIOCSPNonce", jpki_cmd_ocsp_nonce, NULL, RSRC_CONF,
        "On: OCSP requests carry a nonce the answer must echo (a responder "
        "that ignores nonces then fails every query) [Off]"),
    AP_INIT_FLAG("JPKIEndpoints", jpki_cmd_endpoints, NULL, ACCESS_CONF,
        "On: this location answers <location>/challenge, /login, /logout "
        "and /status"),
    AP_INIT_FLAG("JPKIHealth", jpki_cmd_health, NULL, ACCESS_CONF,
        "On: this location answers JSON for monitoring (CRLs, store)"),
    AP_INIT_TAKE1("JPKIHeader", jpki_cmd_header, NULL, JPKI_DIR_CTX,
        "request header carrying the account upstream [X-JPKI-Account]"),
    AP_INIT_TAKE1("JPKISessionLifetime", jpki_cmd_dir_secs,
        JPKI_DIR_OFF(lifetime), JPKI_DIR_CTX, "session lifetime [8h]"),
    AP_INIT_TAKE1("JPKISessionIdle", jpki_cmd_dir_secs,
        JPKI_DIR_OFF(idle), JPKI_DIR_CTX, "idle timeout, 0 for none [30m]"),
    AP_INIT_TAKE1("JPKIRecheckInterval", jpki_cmd_dir_secs,
        JPKI_DIR_OFF(recheck), JPKI_DIR_CTX,
        "revocation re-check of sessions, 0 for every request [5m]"),
    AP_INIT_TAKE1("JPKICookieName", jpki_cmd_cookie_name, NULL, JPKI_DIR_CTX,
        "session cookie name [jpki_session]"),
    AP_INIT_TAKE1("JPKICookiePath", jpki_cmd_cookie_path, NULL, JPKI_DIR_CTX,
        "session cookie path [/]"),
    AP_INIT_TAKE1("JPKICookieSameSite", jpki_cmd_samesite, NULL,
        JPKI_DIR_CTX, "Strict, Lax or None [Lax]"),
    AP_INIT_FLAG("JPKICookieSecure", ap_set_flag_slot,
        JPKI_DIR_OFF(cookie_secure), JPKI_DIR_CTX,
        "Secure attribute of the session cookie [On]"),
    AP_INIT_FLAG("JPKIPassCookie", ap_set_flag_slot,
        JPKI_DIR_OFF(pass_cookie), JPKI_DIR_CTX,
        "the session cookie goes on to the upstream in Cookie [Off]"),
    AP_INIT_TAKE1("JPKIRevocation", jpki_cmd_revocation, NULL, JPKI_DIR_CTX,
        "ocsp, crl, ocsp,crl or crl,ocsp [ocsp]"),
    AP_INIT_TAKE1("JPKIFailure", jpki_cmd_failure, NULL, JPKI_DIR_CTX,
        "closed or open: what to do without revocation data [closed]"),
    AP_INIT_TAKE1("JPKILoginPage", jpki_cmd_login_page, NULL, JPKI_DIR_CTX,
        "where browsers go when not signed in [none: 401]"),
    AP_INIT_ITERATE("JPKITrustedOrigins", jpki_cmd_trusted_origins, NULL,
        JPKI_DIR_CTX, "origins (https://host[:port]) besides the gate's own "
        "whose pages may post logins and logouts [none]"),
    AP_INIT_FLAG("JPKIRequireAccount", ap_set_flag_slot,
        JPKI_DIR_OFF(require_account), JPKI_DIR_CTX,
        "the login must name the account [Off]"),
    AP_INIT_TAKE_ARGV("JPKIThrottle", jpki_cmd_throttle, NULL, JPKI_DIR_CTX,
        "off | [window=60s] [cert=10] [addr=100] [logins=60] "
        "[concurrency=16]: failed logins per certificate and per client "
        "address (IPv6 /64), logins per certificate in the window; "
        "concurrency: logins of the site a child verifies at once"),
    { NULL }
};
