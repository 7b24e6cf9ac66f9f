/* ctx.c - site configuration: secret, key ring, issuers, policy. */
#include "internal.h"
#include "crlptr.h"
#include "conf.h"
#include "enroll.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>

/* The core's defaults: every default of a setting lives here (the
 * adapters' directives left unset take them, common/conf.c). */
void jpki_policy_defaults(jpki_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->challenge_ttl = 120;
    p->session_lifetime = 28800;
    p->session_idle = 1800;
    p->enroll_ttl = JPKI_ENROLL_TTL;
    p->recheck_interval = 300;
    p->clock_skew = 300;
    p->ocsp_good_max_ttl = 3600;
    p->ocsp_hold_ttl = 300;
    p->ocsp_revoked_ttl = 86400 * 30;
    p->rev_policy.src[0] = JPKI_REV_SRC_OCSP;
    p->rev_policy.n = 1;
    p->chain_cache_size = 4096;
    p->crl_grace = JPKI_CRL_GRACE_VALIDITY;
    p->crl_pointer_ttl = 10;
    p->throttle_window = 60;
    p->throttle_cert = 10;
    p->throttle_addr = 100;
    p->login_limit_cert = 60;
    p->login_concurrency = 16;
    snprintf(p->cookie_name, sizeof(p->cookie_name), "jpki_session");
    snprintf(p->cookie_path, sizeof(p->cookie_path), "/");
    snprintf(p->cookie_samesite, sizeof(p->cookie_samesite), "Lax");
    p->cookie_secure = 1;
    p->cookie_httponly = 1;
    p->login_methods = JPKI_METHOD_TLS | JPKI_METHOD_DEVICE;
}

jpki_ctx *jpki_ctx_new(void)
{
    jpki_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    jpki_policy_defaults(&ctx->policy);
    pthread_mutex_init(&ctx->crl_mu, NULL);
    pthread_mutex_init(&ctx->audit_mu, NULL);
    jpki_libctx_hold();
    return ctx;
}

static void issuer_free(struct jpki_issuer *is)
{
    if (is == NULL)
        return;
    sk_X509_pop_free(is->anchors, X509_free);
    sk_X509_pop_free(is->links, X509_free);
    sk_X509_free(is->all);
    X509_STORE_free(is->store);
    ASN1_OBJECT_free(is->policy);
    free(is->policy_oid);
    free(is->ocsp_url);
    free(is->crl_source);
    free(is);
}

void jpki_ctx_free(jpki_ctx *ctx)
{
    size_t i;
    if (ctx == NULL)
        return;
    for (i = 0; i < ctx->n_issuers; i++)
        issuer_free(ctx->issuers[i]);
    jpki_chain_cache_free(ctx->cache);
    pthread_mutex_destroy(&ctx->crl_mu);
    pthread_mutex_destroy(&ctx->audit_mu);
    OPENSSL_cleanse(ctx, sizeof(*ctx));
    free(ctx);
    jpki_libctx_release();      /* last: what was parsed in it is freed */
}

void jpki_ctx_set_log(jpki_ctx *ctx, jpki_log_fn fn, void *ud)
{
    ctx->log = fn;
    ctx->log_ud = ud;
}

void jpki_ctx_set_replicas(jpki_ctx *ctx, unsigned n, uint32_t wait_ms)
{
    ctx->replicas = n <= 8 ? n : 8;
    ctx->replicas_wait_ms = wait_ms > 0 ? wait_ms : 1;
}

jpki_policy *jpki_ctx_policy(jpki_ctx *ctx)
{
    return ctx->finished ? NULL : &ctx->policy;
}

/* ---- secret and key ring ----------------------------------------- */

jpki_err jpki_ctx_set_secret(jpki_ctx *ctx, const uint8_t *secret,
                             size_t len)
{
    if (ctx->finished || len < JPKI_SECRET_MIN || len > JPKI_SECRET_MAX)
        return JPKI_ERR_INVALID;
    memcpy(ctx->secret, secret, len);
    ctx->secret_len = len;
    return JPKI_OK;
}

jpki_err jpki_ctx_add_key(jpki_ctx *ctx, unsigned id, const uint8_t *key,
                          size_t len, int current)
{
    jpki_ring_key *k;
    size_t i;

    if (ctx->finished || id < 1 || id > 255 || len != JPKI_KEY_LEN
        || ctx->n_keys >= JPKI_MAX_KEYS)
        return JPKI_ERR_INVALID;
    for (i = 0; i < ctx->n_keys; i++)
        if (ctx->keys[i].id == id)
            return JPKI_ERR_INVALID;
    k = &ctx->keys[ctx->n_keys];
    k->id = id;
    if (!jpki_hkdf(key, len, "jpki challenge v1", k->challenge_key, 32)
        || !jpki_hkdf(key, len, "jpki session v1", k->session_key, 32))
        return JPKI_ERR_INTERNAL;
    if (current || ctx->n_keys == 0)
        ctx->current_key = ctx->n_keys;
    ctx->n_keys++;
    return JPKI_OK;
}

static char *next_word(char **p)
{
    char *s = *p, *w;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return NULL;
    w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

static jpki_err secret_line(jpki_ctx *ctx, char *line, int *explicit_current,
                            char *errbuf, size_t errlen, int lineno)
{
    char *p = line, *w = next_word(&p), *hex, *id, *flag;
    uint8_t buf[JPKI_SECRET_MAX];
    size_t n;
    jpki_err e;

    if (w == NULL || w[0] == '#')
        return JPKI_OK;
    if (strcmp(w, "secret") == 0) {
        hex = next_word(&p);
        if (hex == NULL || next_word(&p) != NULL
            || jpki_hex_decode(hex, strlen(hex), buf, sizeof(buf), &n)
               != JPKI_OK
            || jpki_ctx_set_secret(ctx, buf, n) != JPKI_OK) {
            jpki_set_detail(errbuf, errlen, "line %d: \"secret\" needs 64 to "
                            "128 hex digits", lineno);
            OPENSSL_cleanse(buf, sizeof(buf));
            return JPKI_ERR_INVALID;
        }
    } else if (strcmp(w, "key") == 0) {
        long v;
        char *end;
        id = next_word(&p);
        hex = next_word(&p);
        flag = next_word(&p);
        v = id ? strtol(id, &end, 10) : 0;
        if (id == NULL || *end != '\0' || hex == NULL
            || (flag != NULL && strcmp(flag, "current") != 0)
            || next_word(&p) != NULL
            || jpki_hex_decode(hex, strlen(hex), buf, sizeof(buf), &n)
               != JPKI_OK
            || n != JPKI_KEY_LEN) {
            jpki_set_detail(errbuf, errlen, "line %d: expected \"key <id> "
                            "<64 hex digits> [current]\"", lineno);
            OPENSSL_cleanse(buf, sizeof(buf));
            return JPKI_ERR_INVALID;
        }
        if (flag != NULL && (*explicit_current)++) {
            jpki_set_detail(errbuf, errlen, "line %d: only one key may be "
                            "current", lineno);
            return JPKI_ERR_INVALID;
        }
        e = jpki_ctx_add_key(ctx, (unsigned)v, buf, n, flag != NULL);
        OPENSSL_cleanse(buf, sizeof(buf));
        if (e != JPKI_OK) {
            jpki_set_detail(errbuf, errlen, "line %d: key id must be 1..255, "
                            "unique, at most %d keys", lineno, JPKI_MAX_KEYS);
            return e;
        }
    } else {
        jpki_set_detail(errbuf, errlen, "line %d: unknown keyword (expected "
                        "\"secret\" or \"key\")", lineno);
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

jpki_err jpki_ctx_load_secret_file(jpki_ctx *ctx, const char *path,
                                   char *errbuf, size_t errlen)
{
    struct stat st;
    uint8_t *data;
    size_t len;
    char *line, *save = NULL;
    int lineno = 0, cur = 0;
    jpki_err e;

    e = jpki_file_check("secret file", path, errbuf, errlen);
    if (e != JPKI_OK)
        return e;
    if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        jpki_set_detail(errbuf, errlen, "secret file \"%s\" must not be "
                        "accessible by group or others (chmod 600)", path);
        return JPKI_ERR_INVALID;
    }
    e = jpki_load_file_msg("secret file", path, 64 * 1024, &data, &len,
                           errbuf, errlen);
    if (e != JPKI_OK)
        return e;
    if (memchr(data, '\0', len) != NULL) {
        e = JPKI_ERR_PARSE;
        jpki_set_detail(errbuf, errlen, "secret file \"%s\" is binary", path);
    }
    for (line = strtok_r((char *)data, "\r\n", &save);
         e == JPKI_OK && line != NULL; line = strtok_r(NULL, "\r\n", &save))
        e = secret_line(ctx, line, &cur, errbuf, errlen, ++lineno);
    OPENSSL_cleanse(data, len);
    free(data);
    if (e == JPKI_OK && ctx->secret_len == 0) {
        jpki_set_detail(errbuf, errlen, "secret file \"%s\" has no \"secret\""
                        " line", path);
        e = JPKI_ERR_INVALID;
    }
    return e;
}

/* ---- issuers ------------------------------------------------------ */

jpki_issuer *jpki_ctx_add_issuer(jpki_ctx *ctx, const char *name)
{
    struct jpki_issuer *is;
    size_t i;

    if (ctx->finished || ctx->n_issuers >= JPKI_MAX_ISSUERS || name == NULL
        || *name == '\0' || strlen(name) > JPKI_NAME_MAX
        || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_.-") != strlen(name))
        return NULL;                    /* names go into logs and JSON */
    for (i = 0; i < ctx->n_issuers; i++)
        if (strcmp(ctx->issuers[i]->name, name) == 0)
            return NULL;
    is = calloc(1, sizeof(*is));
    if (is == NULL)
        return NULL;
    snprintf(is->name, sizeof(is->name), "%s", name);
    is->anchors = sk_X509_new_null();
    is->links = sk_X509_new_null();
    is->all = sk_X509_new_null();
    is->ctx = ctx;
    if (is->anchors == NULL || is->links == NULL || is->all == NULL
        || jpki_issuer_set_policy(is, JPKI_POLICY_JPKI_AUTH) != JPKI_OK) {
        issuer_free(is);
        return NULL;
    }
    ctx->issuers[ctx->n_issuers++] = is;
    return is;
}

static int is_self_signed(X509 *x)
{
    EVP_PKEY *k = X509_get0_pubkey(x);
    return k != NULL && X509_check_issued(x, x) == X509_V_OK
           && X509_verify(x, k) == 1;
}

static jpki_err add_one_cert(struct jpki_issuer *is, X509 *x, char *errbuf,
                             size_t errlen, int n)
{
    STACK_OF(X509) *dst;

    if (X509_check_ca(x) < 1) {
        jpki_set_detail(errbuf, errlen, "issuer \"%s\": certificate #%d is "
                        "not a CA certificate", is->name, n);
        return JPKI_ERR_INVALID;
    }
    dst = is_self_signed(x) ? is->anchors : is->links;
    if (!sk_X509_push(dst, x))
        return JPKI_ERR_NOMEM;
    X509_up_ref(x);
    if (!sk_X509_push(is->all, x))
        return JPKI_ERR_NOMEM;
    return JPKI_OK;
}

jpki_err jpki_issuer_add_certs(jpki_issuer *is, const uint8_t *buf,
                               size_t len, char *errbuf, size_t errlen)
{
    BIO *bio;
    X509 *x;
    int n = 0;
    jpki_err e = JPKI_OK;

    if (is->ctx->finished || len > 16 * 1024 * 1024 || len > INT_MAX)
        return JPKI_ERR_INVALID;
    if (len > 0 && buf[0] == 0x30) {
        x = jpki_d2i_x509(buf, len);
        if (x == NULL) {
            jpki_set_detail(errbuf, errlen, "issuer \"%s\": DER certificate "
                            "does not parse", is->name);
            return JPKI_ERR_CERT_PARSE;
        }
        e = add_one_cert(is, x, errbuf, errlen, 1);
        X509_free(x);
        return e;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL)
        return JPKI_ERR_NOMEM;
    while (e == JPKI_OK && (x = X509_new_ex(jpki_libctx(), NULL)) != NULL) {
        if (PEM_read_bio_X509(bio, &x, NULL, NULL) == NULL) {
            X509_free(x);
            break;
        }
        e = add_one_cert(is, x, errbuf, errlen, ++n);
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (e == JPKI_OK && n == 0) {
        jpki_set_detail(errbuf, errlen, "issuer \"%s\": no PEM certificate "
                        "found", is->name);
        e = JPKI_ERR_CERT_PARSE;
    }
    return e;
}

jpki_err jpki_issuer_add_certs_file(jpki_issuer *is, const char *path,
                                    char *errbuf, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    char why[256];
    jpki_err e = jpki_load_file_msg("CA file", path, 16 * 1024 * 1024, &buf,
                                    &len, why, sizeof(why));

    if (e != JPKI_OK) {
        jpki_set_detail(errbuf, errlen, "issuer \"%s\": %s", is->name, why);
        return e;
    }
    e = jpki_issuer_add_certs(is, buf, len, errbuf, errlen);
    free(buf);
    return e;
}

static jpki_err set_str(char **dst, const char *s)
{
    char *c = NULL;
    if (s != NULL && *s != '\0') {
        if (strlen(s) > 2048)
            return JPKI_ERR_INVALID;
        c = strdup(s);
        if (c == NULL)
            return JPKI_ERR_NOMEM;
    }
    free(*dst);
    *dst = c;
    return JPKI_OK;
}

jpki_err jpki_issuer_set_policy(jpki_issuer *is, const char *oid)
{
    ASN1_OBJECT *o = NULL;
    if (is->ctx->finished)
        return JPKI_ERR_INVALID;
    if (oid != NULL && *oid != '\0') {
        o = OBJ_txt2obj(oid, 1);             /* numeric form only */
        if (o == NULL) {
            ERR_clear_error();
            return JPKI_ERR_INVALID;
        }
    }
    if (set_str(&is->policy_oid, oid) != JPKI_OK) {
        ASN1_OBJECT_free(o);
        return JPKI_ERR_NOMEM;
    }
    ASN1_OBJECT_free(is->policy);
    is->policy = o;
    return JPKI_OK;
}

jpki_err jpki_issuer_set_ocsp_url(jpki_issuer *is, const char *url)
{
    if (is->ctx->finished)
        return JPKI_ERR_INVALID;
    if (url != NULL && *url != '\0' && strncmp(url, "http://", 7) != 0
        && strncmp(url, "https://", 8) != 0)
        return JPKI_ERR_INVALID;
    return set_str(&is->ocsp_url, url);
}

jpki_err jpki_issuer_set_crl_source(jpki_issuer *is, const char *src)
{
    if (is->ctx->finished)
        return JPKI_ERR_INVALID;
    return set_str(&is->crl_source, src);
}

const char *jpki_issuer_name(const jpki_issuer *is) { return is->name; }
const char *jpki_issuer_ocsp_url(const jpki_issuer *is) { return is->ocsp_url; }
const char *jpki_issuer_crl_source(const jpki_issuer *is)
{
    return is->crl_source;
}
const char *jpki_issuer_tag(const jpki_issuer *is) { return is->tag; }
size_t jpki_ctx_issuer_count(const jpki_ctx *ctx) { return ctx->n_issuers; }
const jpki_issuer *jpki_ctx_issuer(const jpki_ctx *ctx, size_t i)
{
    return i < ctx->n_issuers ? ctx->issuers[i] : NULL;
}

/* Tag: SHA-256 over the SHA-1 key hashes of the anchors, 8 bytes hex. */
static jpki_err issuer_finish(struct jpki_issuer *is, char *errbuf,
                              size_t errlen)
{
    EVP_MD_CTX *md;
    uint8_t kh[20], d[32];
    unsigned int dl = 0;
    int i, ok = 1;

    if (sk_X509_num(is->anchors) == 0) {
        jpki_set_detail(errbuf, errlen, "issuer \"%s\" has no self-signed "
                        "trust anchor", is->name);
        return JPKI_ERR_INVALID;
    }
    X509_STORE_free(is->store);         /* from an earlier failed finish */
    is->store = X509_STORE_new();
    md = EVP_MD_CTX_new();
    if (is->store == NULL || md == NULL
        || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return JPKI_ERR_NOMEM;
    }
    for (i = 0; i < sk_X509_num(is->anchors); i++) {
        X509 *a = sk_X509_value(is->anchors, i);
        if (X509_STORE_add_cert(is->store, a) != 1
            || !jpki_key_hash_sha1(a, kh)
            || EVP_DigestUpdate(md, kh, sizeof(kh)) != 1)
            ok = 0;
    }
    if (!ok || EVP_DigestFinal_ex(md, d, &dl) != 1) {
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        jpki_set_detail(errbuf, errlen, "issuer \"%s\": cannot load anchors",
                        is->name);
        return JPKI_ERR_INVALID;
    }
    EVP_MD_CTX_free(md);
    jpki_hex_encode(d, 8, is->tag);
    return JPKI_OK;
}

static int token_ok(const char *s, const char *extra)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr(extra, *s) != NULL))
            return 0;
    return 1;
}

/* Cookie name prefixes browsers enforce (a cookie breaking them is
 * dropped silently): __Secure- needs Secure, __Host- also Path=/. */
static int cookie_prefix_ok(const jpki_policy *p)
{
    if (strncmp(p->cookie_name, "__Host-", 7) == 0)
        return p->cookie_secure && strcmp(p->cookie_path, "/") == 0;
    if (strncmp(p->cookie_name, "__Secure-", 9) == 0)
        return p->cookie_secure;
    return 1;
}

static int cookie_conf_ok(const jpki_policy *p)
{
    const char *lp = p->login_page;
    return token_ok(p->cookie_name, "_-.") && cookie_prefix_ok(p)
           && p->cookie_path[0] == '/' && token_ok(p->cookie_path, "/_-.~")
           && (strcmp(p->cookie_samesite, "Strict") == 0
               || strcmp(p->cookie_samesite, "Lax") == 0
               || (strcmp(p->cookie_samesite, "None") == 0
                   && p->cookie_secure))
           && (lp[0] == '\0' || ((lp[0] == '/' || strncmp(lp, "http://", 7) == 0
                                  || strncmp(lp, "https://", 8) == 0)
                                 && token_ok(lp, "/_-.~:%?=&")));
}

/* "http(s)://host[:port]" separated by spaces, at most 8, no path. */
static int origins_ok(const char *p)
{
    int n = 0;

    while (*p != '\0') {
        const char *h, *e;
        size_t k;

        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (strncmp(p, "https://", 8) == 0)
            k = 8;
        else if (strncmp(p, "http://", 7) == 0)
            k = 7;
        else
            return 0;
        for (h = e = p + k; *e != '\0' && *e != ' ' && *e != ':'; e++)
            if (!isalnum((unsigned char)*e) && *e != '.' && *e != '-')
                return 0;
        if (e == h)
            return 0;
        if (*e == ':') {
            const char *d = ++e;
            for (; *e >= '0' && *e <= '9'; e++)
                ;
            if (e == d || e - d > 5)
                return 0;
        }
        if (*e != '\0' && *e != ' ')
            return 0;
        if (++n > 8)
            return 0;
        p = e;
    }
    return 1;
}

static int rev_policy_ok(const jpki_rev_policy *r)
{
    unsigned i, j;

    if (r->n > JPKI_REV_SOURCES_MAX)
        return 0;
    for (i = 0; i < r->n; i++) {
        if ((unsigned)r->src[i] >= JPKI__REV_SRC_COUNT)
            return 0;
        for (j = 0; j < i; j++)
            if (r->src[j] == r->src[i])
                return 0;
    }
    return 1;
}

/* The numeric ranges: cheap enough for every request (jpki_txn_new). */
int jpki_policy_ranges_ok(const jpki_policy *p)
{
    return !(p->challenge_ttl < 10 || p->challenge_ttl > 3600
             || p->session_lifetime < 10 || p->session_lifetime > 86400 * 30
             || p->session_idle > p->session_lifetime
             || p->crl_pointer_ttl > 60 || !rev_policy_ok(&p->rev_policy)
             || p->throttle_window < 1 || p->throttle_window > 3600
             || p->throttle_cert > 1000000 || p->throttle_addr > 1000000
             || p->login_limit_cert > 1000000
             || p->enroll_ttl < 5 || p->enroll_ttl > 3600);
}

jpki_err jpki_policy_check(const jpki_policy *p, char *errbuf, size_t errlen)
{
    if (!jpki_policy_ranges_ok(p)) {
        jpki_set_detail(errbuf, errlen, "policy out of range (challenge ttl "
                        "10..3600 s, session lifetime 10 s..30 days, idle "
                        "timeout not above the lifetime, CRL pointer cache "
                        "at most 60 s, throttle window 1..3600 s, enrollment "
                        "tokens 5..3600 s, throttle "
                        "limits at most 1000000)");
        return JPKI_ERR_INVALID;
    }
    if (!cookie_conf_ok(p)) {
        jpki_set_detail(errbuf, errlen, "cookie name must be a token (a "
                        "__Secure- name needs Secure, a __Host- name Secure "
                        "and path /), path must start with '/', SameSite "
                        "Strict, Lax or None (None needs Secure), login page "
                        "must start with '/' or http(s)://");
        return JPKI_ERR_INVALID;
    }
    if (!origins_ok(p->trusted_origins)) {
        jpki_set_detail(errbuf, errlen, "trusted origins must be at most 8 "
                        "of http(s)://host[:port], without a path");
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

const jpki_policy *jpki_ctx_get_policy(const jpki_ctx *ctx)
{
    return &ctx->policy;
}

/* The CRL list name of each CA key of is (anchors and links). */
static void issuer_lists(struct jpki_issuer *is)
{
    int j;

    is->n_lists = 0;
    for (j = 0; j < sk_X509_num(is->all)
                && is->n_lists < sizeof(is->lists) / sizeof(is->lists[0]);
         j++) {
        if (jpki_key_hash_sha1(sk_X509_value(is->all, j),
                               is->lists[is->n_lists].kh)
            && jpki_crl_list_name(is->lists[is->n_lists].list,
                                  sizeof(is->lists[0].list), is->tag,
                                  is->lists[is->n_lists].kh, 0) >= 0)
            is->n_lists++;
    }
    ERR_clear_error();
}

int jpki_issuer_crl_list(const struct jpki_issuer *is, const uint8_t kh[20],
                         char *out, size_t outlen)
{
    size_t i;

    for (i = 0; i < is->n_lists; i++)
        if (memcmp(is->lists[i].kh, kh, 20) == 0) {
            if (strlen(is->lists[i].list) >= outlen)
                return -1;
            memcpy(out, is->lists[i].list, strlen(is->lists[i].list) + 1);
            return 0;
        }
    return jpki_crl_list_name(out, outlen, is->tag, kh, 0) < 0 ? -1 : 0;
}

jpki_err jpki_ctx_finish(jpki_ctx *ctx, char *errbuf, size_t errlen)
{
    size_t i;
    jpki_err e;

    if (ctx->finished)
        return JPKI_OK;
    if (ctx->secret_len == 0) {
        jpki_set_detail(errbuf, errlen, "no site secret configured");
        return JPKI_ERR_INVALID;
    }
    if (ctx->n_issuers == 0) {
        jpki_set_detail(errbuf, errlen, "no issuer configured");
        return JPKI_ERR_INVALID;
    }
    e = jpki_policy_check(&ctx->policy, errbuf, errlen);
    if (e != JPKI_OK)
        return e;
    for (i = 0; i < ctx->n_issuers; i++) {
        e = issuer_finish(ctx->issuers[i], errbuf, errlen);
        if (e != JPKI_OK)
            return e;
        issuer_lists(ctx->issuers[i]);
        /* the check value of CRLs loaded into the store (txn.c) */
        e = jpki_cert_id_from_serial_text(ctx, ctx->issuers[i],
                                          JPKI_CRL_ID_CHECK_SERIAL,
                                          ctx->issuers[i]->id_check);
        if (e != JPKI_OK) {
            jpki_set_detail(errbuf, errlen, "issuer \"%s\": cannot compute "
                            "the CRL check value", ctx->issuers[i]->name);
            return e;
        }
    }
    if (!jpki_account_key(ctx, ctx->account_key))
        return JPKI_ERR_INTERNAL;
    if (ctx->n_keys == 0) {
        uint8_t k[32];
        if (!jpki_hkdf(ctx->secret, ctx->secret_len, "jpki ring key 1", k,
                       sizeof(k))
            || jpki_ctx_add_key(ctx, 1, k, sizeof(k), 1) != JPKI_OK)
            return JPKI_ERR_INTERNAL;
        OPENSSL_cleanse(k, sizeof(k));
    }
    if (ctx->policy.chain_cache_size > 0) {
        ctx->cache = jpki_chain_cache_new(ctx->policy.chain_cache_size);
        if (ctx->cache == NULL)
            return JPKI_ERR_NOMEM;
    }
    ctx->finished = 1;
    return JPKI_OK;
}

/* ---- issuer lookup by key ---------------------------------------- */

static int ski_matches(X509 *ca, const ASN1_OCTET_STRING *aki)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    return aki == NULL || ski == NULL || ASN1_OCTET_STRING_cmp(ski, aki) == 0;
}

const struct jpki_issuer *jpki_find_issuer_by_key(const jpki_ctx *ctx,
        const ASN1_OCTET_STRING *aki, jpki_key_try_fn fn, void *ud,
        X509 **ca_out)
{
    const struct jpki_issuer *found = NULL;
    X509 *first = NULL;
    size_t i;
    int j;

    if (fn == NULL && aki == NULL)
        return NULL;
    for (i = 0; i < ctx->n_issuers; i++) {
        const struct jpki_issuer *is = ctx->issuers[i];
        for (j = 0; j < sk_X509_num(is->all); j++) {
            X509 *ca = sk_X509_value(is->all, j);
            EVP_PKEY *k = X509_get0_pubkey(ca);
            if (k == NULL || !ski_matches(ca, aki))
                continue;
            if (fn != NULL ? fn(ud, k) : found == NULL) {
                found = is;
                first = ca;
                if (fn != NULL)
                    goto done;
            } else if (fn == NULL
                       && (is != found
                           || EVP_PKEY_eq(k, X509_get0_pubkey(first)) != 1)) {
                found = NULL;           /* keys to choose between */
                goto done;
            }
        }
    }
done:
    ERR_clear_error();
    if (found != NULL && ca_out != NULL)
        *ca_out = first;
    return found;
}

/* ---- names -------------------------------------------------------- */

static const char *const sig_names[JPKI__SIG_COUNT] = {
    "rsa-pkcs1-sha256", "rsa-pkcs1-sha384", "rsa-pkcs1-sha512",
    "rsa-pkcs1-sha1", "ecdsa-sha256", "ecdsa-sha384"};

int jpki_sig_alg_from_name(const char *name, size_t len)
{
    int i;
    for (i = 0; i < JPKI__SIG_COUNT; i++)
        if (strlen(sig_names[i]) == len && memcmp(sig_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *jpki_sig_alg_name(jpki_sig_alg alg)
{
    return (unsigned)alg < JPKI__SIG_COUNT ? sig_names[alg] : "unknown";
}

static const char *const rev_names[JPKI__REV_SRC_COUNT] = {"ocsp", "crl"};

const char *jpki_rev_source_name(jpki_rev_source src)
{
    return (unsigned)src < JPKI__REV_SRC_COUNT ? rev_names[src] : "unknown";
}

jpki_err jpki_rev_policy_parse(const char *s, size_t len, jpki_rev_policy *p)
{
    jpki_rev_policy r;
    const char *e = s + len, *w, *c;
    unsigned i;

    memset(&r, 0, sizeof(r));
    if (len == 4 && memcmp(s, "none", 4) == 0) {
        *p = r;
        return JPKI_OK;
    }
    for (w = s; w <= e; w = c + 1) {
        c = memchr(w, ',', (size_t)(e - w));
        if (c == NULL)
            c = e;
        for (i = 0; i < JPKI__REV_SRC_COUNT; i++)
            if (strlen(rev_names[i]) == (size_t)(c - w)
                && memcmp(rev_names[i], w, (size_t)(c - w)) == 0)
                break;
        if (i == JPKI__REV_SRC_COUNT || r.n == JPKI_REV_SOURCES_MAX)
            return JPKI_ERR_INVALID;
        r.src[r.n++] = (jpki_rev_source)i;
        if (!rev_policy_ok(&r))
            return JPKI_ERR_INVALID;           /* a source twice */
    }
    *p = r;
    return JPKI_OK;
}
