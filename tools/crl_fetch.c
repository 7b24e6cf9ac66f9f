/*
 * crl_fetch.c - the bytes of a CRL from where J-LIS or an operator publishes
 * it: a local path, file://, http(s):// or ldap(s):// (libcurl).
 *
 * Bounded: at most max bytes are kept (the transfer is aborted past that),
 * connect timeout 10 s, whole transfer timeout_s.  Redirects: HTTP(S) only,
 * at most 3.  HTTP status >= 400 fails.
 *
 * Credentials: user:password@ in the URL works, but the command line is
 * readable by every local user (ps, /proc/PID/cmdline) for the whole life
 * of --watch: JPKI_SOURCE_USERPWD ("user:password", as it is: not
 * percent-encoded) or a netrc file named by JPKI_SOURCE_NETRC are taken
 * instead (HTTP Basic, LDAP simple bind), and replace the URL's; a URL
 * carrying a password is warned about once.
 *
 * LDAP: the URL names the entry and the attribute, e.g.
 *   ldap://dir.example/cn=CRL1,o=JPKI,c=JP?certificateRevocationList;binary
 * libcurl answers with an LDIF-like text, one line per value:
 *   DN: cn=CRL1,o=JPKI,c=JP\n
 *   \tcertificateRevocationList;binary:: <base64 on one line>\n
 *   \n
 * (OpenLDAP-based libcurl, as Debian's, writes "attr:: base64" for values
 * that are binary or whose name ends in ";binary"; the native LDAP backend
 * writes "attr: base64" for ";binary" names).  ldap_answer_decode() takes
 * the one value of certificateRevocationList or authorityRevocationList
 * (any ";binary" suffix, any case) and decodes it; none or several values
 * is an error.
 */
#include "jpkictl.h"
#include "sink.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libcurl, loaded the first time a URL is fetched: linked, it made every
 * jpkictl run map some thirty libraries (its TLS, LDAP, Kerberos, IDN,
 * ...) at start, about 11 ms of a run on a virtual machine, where most
 * runs read a local file or never fetch anything. */
#define LIBCURL "libcurl.so.4"
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
} cu;

/* 0; -1 with why in err. */
static int curl_load(char *err, size_t errlen)
{
    /* each symbol into its pointer (the dlsym manual's idiom: an object
     * pointer stored into a function pointer's place) */
    const struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"curl_global_init", (void **)&cu.global_init},
        {"curl_easy_init", (void **)&cu.easy_init},
        {"curl_easy_setopt", (void **)&cu.easy_setopt},
        {"curl_easy_perform", (void **)&cu.easy_perform},
        {"curl_easy_getinfo", (void **)&cu.easy_getinfo},
        {"curl_easy_cleanup", (void **)&cu.easy_cleanup},
        {"curl_easy_strerror", (void **)&cu.easy_strerror},
    };
    void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    size_t i, n = sizeof(syms) / sizeof(syms[0]);

    for (i = 0; lib != NULL && i < n; i++)
        if ((*syms[i].fn = dlsym(lib, syms[i].name)) == NULL)
            break;
    if (lib == NULL || i < n) {
        snprintf(err, errlen, "%s cannot be loaded (install libcurl4, or libcurl4t64 from Debian 13 on): %s",
                 LIBCURL, dlerror());
        if (lib != NULL)
            dlclose(lib);
        return -1;
    }
    return 0;
}

void source_redact(const char *src, char *out, size_t outlen)
{
    const char *scheme = strstr(src, "://"), *at, *slash;

    if (scheme == NULL) {
        snprintf(out, outlen, "%s", src);
        return;
    }
    slash = strchr(scheme + 3, '/');
    at = strchr(scheme + 3, '@');
    if (at != NULL && (slash == NULL || at < slash))
        snprintf(out, outlen, "%.*s%s", (int)(scheme + 3 - src), src, at + 1);
    else
        snprintf(out, outlen, "%s", src);
}

/* A URL whose user part holds a password: scheme://user:password@host. */
static int has_password(const char *src)
{
    const char *scheme = strstr(src, "://"), *at, *slash, *colon;

    if (scheme == NULL)
        return 0;
    slash = strchr(scheme + 3, '/');
    at = strchr(scheme + 3, '@');
    colon = strchr(scheme + 3, ':');
    return at != NULL && (slash == NULL || at < slash) && colon != NULL
           && colon < at;
}

static int is_crl_attr(const char *a, size_t n)
{
    static const char *const names[] = {"certificateRevocationList",
                                        "authorityRevocationList"};
    size_t i, l;

    for (i = 0; i < 2; i++) {
        l = strlen(names[i]);
        if (n >= l && strncasecmp(a, names[i], l) == 0
            && (n == l || (n == l + 7 && strncasecmp(a + l, ";binary", 7)
                                         == 0)))
            return 1;
    }
    return 0;
}

int ldap_answer_decode(const uint8_t *in, size_t len, uint8_t **der,
                       size_t *derlen, char *err, size_t errlen)
{
    const char *p = (const char *)in, *end = p + len;
    const char *val = NULL;
    size_t vlen = 0, nvals = 0;

    *der = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end, *colon;
        size_t an;

        if (p < le && *p == '\t'
            && (colon = memchr(p + 1, ':', (size_t)(le - p - 1))) != NULL) {
            an = (size_t)(colon - p - 1);
            if (is_crl_attr(p + 1, an)) {
                const char *v = colon + 1;
                int b64 = v < le && *v == ':';

                v += b64;
                if (v < le && *v == ' ')
                    v++;
                if (!b64 && !(an > 7 && strncasecmp(colon - 7, ";binary", 7)
                                        == 0)) {
                    snprintf(err, errlen, "the LDAP answer holds the CRL as "
                             "text, not base64");
                    return -1;
                }
                nvals++;
                val = v;
                vlen = (size_t)(le - v);
                if (vlen > 0 && v[vlen - 1] == '\r')
                    vlen--;
            }
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (nvals != 1) {
        snprintf(err, errlen, nvals == 0
                 ? "the LDAP answer has no certificateRevocationList or "
                   "authorityRevocationList value (wrong DN or attribute?)"
                 : "the LDAP answer has %zu CRL values; name one entry and "
                   "one attribute", nvals);
        return -1;
    }
    if ((*der = malloc(jpki_b64_decoded_max(vlen) + 1)) == NULL
        || vlen == 0
        || jpki_b64_decode(val, vlen, *der, derlen) != JPKI_OK) {
        free(*der);
        *der = NULL;
        snprintf(err, errlen, "the CRL value of the LDAP answer is not "
                 "base64");
        return -1;
    }
    return 0;
}

/* crl_fetch_ahead's read (jpkictl runs one sync at a time) */
static struct {
    pthread_t th;
    int on;
    const char *path;
    size_t max, len;
    uint8_t *buf;
    jpki_err e;
} pre;

static void *pre_main(void *arg)
{
    (void)arg;
    pre.e = jpki_load_file(pre.path, pre.max, &pre.buf, &pre.len);
    return NULL;
}

void crl_fetch_ahead(const char *source, size_t max)
{
    if (pre.on || strstr(source, "://") != NULL)
        return;
    pre.path = source;
    pre.max = max;
    pre.buf = NULL;
    pre.on = pthread_create(&pre.th, NULL, pre_main, NULL) == 0;
}

void crl_fetch_drop(void)
{
    if (pre.on)
        pthread_join(pre.th, NULL);
    pre.on = 0;
    free(pre.buf);
    pre.buf = NULL;
}

int crl_fetch(const char *source, size_t max, unsigned timeout_s,
              uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    static int curl_ready, warned;
    const char *userpwd = getenv("JPKI_SOURCE_USERPWD");
    const char *netrc = getenv("JPKI_SOURCE_NETRC");
    char cerr[CURL_ERROR_SIZE] = "", shown[512];
    sink_t s = {NULL, 0, 0, max, 0};
    long status = 0;
    CURLcode cc;
    CURL *h;
    int ldap;

    *out = NULL;
    if (strstr(source, "://") == NULL) {           /* a local path */
        jpki_err e;

        if (pre.on && strcmp(pre.path, source) == 0 && pre.max == max) {
            pthread_join(pre.th, NULL);           /* read ahead: taken */
            pre.on = 0;
            e = pre.e;
            *out = pre.buf;
            *outlen = pre.len;
            pre.buf = NULL;
        } else {
            e = jpki_load_file(source, max, out, outlen);
        }

        if (e == JPKI_OK)
            return 0;
        snprintf(err, errlen, e == JPKI_ERR_TOO_LARGE
                 ? "%.200s is larger than %zu bytes"
                 : "cannot read %.200s (missing, unreadable or not a regular "
                   "file)", source, max);
        return -1;
    }
    if (!curl_ready) {
        if (curl_load(err, errlen) != 0)
            return -1;
        if (cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl does not initialise");
            return -1;
        }
        curl_ready = 1;
    }
    source_redact(source, shown, sizeof(shown));
    if (!warned && has_password(source)) {
        say("warning: --source carries a password, which every local user "
            "can read in the process list; give it in JPKI_SOURCE_USERPWD "
            "or a netrc file (JPKI_SOURCE_NETRC) instead");
        warned = 1;
    }
    ldap = strncasecmp(source, "ldap", 4) == 0;
    if ((h = cu.easy_init()) == NULL) {
        snprintf(err, errlen, "libcurl: out of memory");
        return -1;
    }
    cu.easy_setopt(h, CURLOPT_URL, source);
    cu.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "file,http,https,ldap,ldaps");
    cu.easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    cu.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    cu.easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    cu.easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    cu.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cu.easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    cu.easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
    cu.easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    cu.easy_setopt(h, CURLOPT_USERAGENT, "jpkictl/" JPKI_VERSION);
    cu.easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    cu.easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    cu.easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (userpwd != NULL && userpwd[0] != '\0') {
        cu.easy_setopt(h, CURLOPT_USERPWD, userpwd);
    } else if (netrc != NULL && netrc[0] != '\0') {
        cu.easy_setopt(h, CURLOPT_NETRC_FILE, netrc);
        cu.easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_REQUIRED);
    }
    cc = cu.easy_perform(h);
    cu.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    cu.easy_cleanup(h);
    if (s.over || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, errlen, "%.200s: larger than %zu bytes (--max-size)",
                 shown, max);
    } else if (cc == CURLE_HTTP_RETURNED_ERROR) {
        snprintf(err, errlen, "%.200s: HTTP status %ld", shown, status);
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "%.200s: %s", shown,
                 cerr[0] ? cerr : cu.easy_strerror(cc));
    } else if (s.len == 0) {
        snprintf(err, errlen, "%.200s: empty answer", shown);
    } else if (ldap) {
        uint8_t *der;
        size_t dl;
        char e2[256];

        if (ldap_answer_decode(s.buf, s.len, &der, &dl, e2, sizeof(e2))
            == 0) {
            free(s.buf);
            *out = der;
            *outlen = dl;
            return 0;
        }
        snprintf(err, errlen, "%.200s: %s", shown, e2);
    } else {
        s.buf[s.len] = '\0';
        *out = s.buf;
        *outlen = s.len;
        return 0;
    }
    free(s.buf);
    return -1;
}
