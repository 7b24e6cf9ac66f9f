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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        jpki_err e = jpki_load_file(source, max, out, outlen);

        if (e == JPKI_OK)
            return 0;
        snprintf(err, errlen, e == JPKI_ERR_TOO_LARGE
                 ? "%.200s is larger than %zu bytes"
                 : "cannot read %.200s (missing, unreadable or not a regular "
                   "file)", source, max);
        return -1;
    }
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
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
    if ((h = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "libcurl: out of memory");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, source);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "file,http,https,ldap,ldaps");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "jpkictl/" JPKI_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (userpwd != NULL && userpwd[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
    } else if (netrc != NULL && netrc[0] != '\0') {
        curl_easy_setopt(h, CURLOPT_NETRC_FILE, netrc);
        curl_easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_REQUIRED);
    }
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (s.over || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, errlen, "%.200s: larger than %zu bytes (--max-size)",
                 shown, max);
    } else if (cc == CURLE_HTTP_RETURNED_ERROR) {
        snprintf(err, errlen, "%.200s: HTTP status %ld", shown, status);
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "%.200s: %s", shown,
                 cerr[0] ? cerr : curl_easy_strerror(cc));
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
