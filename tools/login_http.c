/*
 * login_http.c - jpki-login's side of the gate: the URL checked (plain
 * http to other hosts refused), GET <url>/challenge and the challenge
 * checked before the card signs it, POST <url>/login, the cookie jar.
 * Answers are read into bounded buffers (64 KiB) and only the few JSON
 * fields needed are decoded, each bounded (jpki_form_parse_answer).  TLS
 * is always verified.
 */
#include "login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- HTTP --------------------------------------------------------- */

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(deadline->tv_sec - now.tv_sec) * 1000
           + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* (login.h) */
int http_do(http_t *x, const char *url, const char *what,
            const char *body, long *status, sink_t *out)
{
    struct curl_slist *hdr = NULL, *h2;
    long left = ms_left(&x->deadline);
    CURLcode cc;

    *status = 0;
    if (left <= 0) {
        say("%s: no time left (--timeout)", what);
        return EXIT_NET;
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (hdr != NULL && body != NULL) {
        h2 = curl_slist_append(hdr, "Content-Type: application/json");
        hdr = h2 != NULL ? curl_slist_append(h2, "Expect:") : NULL;
    }
    if (hdr == NULL) {
        say("out of memory");
        return EXIT_NET;
    }
    x->cerr[0] = '\0';
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS,
                     left < CONNECT_MS ? left : CONNECT_MS);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, out);
    if (body != NULL) {
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
    }
    cc = curl_easy_perform(x->h);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, status);
    if (out->over || cc == CURLE_FILESIZE_EXCEEDED) {
        say("%s: the answer is larger than %d bytes", what, BODY_MAX);
        return EXIT_NET;
    }
    switch (cc) {
    case CURLE_OK:
        step("%s: HTTP %ld, %zu bytes", what, *status, out->len);
        return EXIT_SIGNED_IN;
    case CURLE_OPERATION_TIMEDOUT:
        say("%s: timed out (--timeout): %s", what, x->cerr);
        return EXIT_NET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        say("%s: TLS failed, the server was not verified (a private CA? "
            "--cacert FILE): %s", what, x->cerr[0] ? x->cerr
            : curl_easy_strerror(cc));
        return EXIT_NET;
    default:
        say("%s: %s", what, x->cerr[0] ? x->cerr : curl_easy_strerror(cc));
        return EXIT_NET;
    }
}

/* Time spent with the token since SINCE (the PIN typed, the card's
 * answer) is not the gate's. */
void http_resume(http_t *x, const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    x->deadline.tv_sec += now.tv_sec - since->tv_sec;
    x->deadline.tv_nsec += now.tv_nsec - since->tv_nsec;
    while (x->deadline.tv_nsec < 0) {
        x->deadline.tv_nsec += 1000000000L;
        x->deadline.tv_sec--;
    }
    while (x->deadline.tv_nsec >= 1000000000L) {
        x->deadline.tv_nsec -= 1000000000L;
        x->deadline.tv_sec++;
    }
}

/* HOST (as CURLU gives it: IPv6 in brackets) is this machine: localhost,
 * 127.0.0.0/8, ::1 or ::ffff:127.x.  Spelled otherwise (another name, a
 * zone, a trailing dot), it counts as another host. */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    char v6[64];
    size_t n = strlen(host);

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (n < 3 || n - 2 >= sizeof(v6) || host[0] != '[' || host[n - 1] != ']')
        return 0;
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    if (inet_pton(AF_INET6, v6, &a6) != 1)
        return 0;
    return IN6_IS_ADDR_LOOPBACK(&a6)
           || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

/* The host of URL U as libcurl sends it in Host (a default port left out,
 * which the canonical form drops anyway), canonical as the gate makes the
 * Host header it gets to bind a challenge to it (jpki_host_canonical,
 * common/challenge.c) in OUT (JPKI_HOST_MAX + 1 bytes).  An IDN is asked for in punycode, as libcurl resolves and sends
 * it; an IPv6 literal is bracketed whether this libcurl gives it with
 * brackets or not.  0 when there is none to bind a challenge to. */
static size_t url_host(CURLU *u, http_t *x)
{
    char *h = NULL;
    size_t n = 0;
    int got;

    x->host[0] = x->host_hdr[0] = '\0';
#ifdef CURLU_PUNYCODE
    got = curl_url_get(u, CURLUPART_HOST, &h, CURLU_PUNYCODE) == CURLUE_OK;
    if (!got)                       /* a libcurl without IDN: as typed */
#endif
        got = curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
    if (!got || h == NULL)
        return 0;
    if (strlen(h) <= JPKI_HOST_MAX) {
        snprintf(x->host_hdr, sizeof(x->host_hdr),
                 h[0] != '[' && strchr(h, ':') != NULL ? "[%s]" : "%s", h);
        n = jpki_host_canonical(x->host_hdr, strlen(x->host_hdr), x->host);
    }
    curl_free(h);
    if (n == 0)
        x->host_hdr[0] = '\0';
    return n;
}

/* The prefix as shown in messages: user info left out.  Plain http to
 * another host is refused unless INSECURE: whoever is on the path could
 * hand the card another gate's challenge and keep the signature, a login
 * as this user at that gate, not only read this session's cookie.  A
 * --device URL (QUERY not NULL) is never printed whole: its query holds
 * the challenge; user info in it (https://bank.example@evil.example/)
 * could only mislead. */
int check_url(const char *url, const char *opt, int insecure, http_t *x,
              char *query, size_t qcap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *q = NULL, *frag = NULL, *user = NULL;
    char *port = NULL, *path = NULL, hshown[2 * 200 + 1], ushown[2 * 200 + 1];
    int rc = -1;

    if (u == NULL)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        say("%s: not a URL: \"%.200s\"", opt, query != NULL ? "..."
            : clean(url, ushown, sizeof(ushown)));
    } else if (strcasecmp(scheme, "https") != 0
               && strcasecmp(scheme, "http") != 0) {
        say("%s: http:// or https:// only", opt);
    } else if (query == NULL
               && (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK
                   || curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0)
                      == CURLUE_OK)) {
        say("%s: the endpoint prefix has no query or fragment (it is "
            "e.g. https://www.example.jp/jpki)", opt);
    } else if (query != NULL
               && (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK
                   || curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0)
                      == CURLUE_OK)) {
        say("%s: a login page's link has no user name or fragment", opt);
    } else if (query != NULL
               && (curl_url_get(u, CURLUPART_QUERY, &q, 0) != CURLUE_OK
                   || strlen(q) >= qcap)) {
        say("%s: the link has no query (?challenge=...&code=...), or one "
            "over %zu bytes", opt, qcap - 1);
    } else if (url_host(u, x) == 0) {
        say("%s: the host \"%.200s\" is empty, longer than %d characters "
            "or not plain ASCII: no challenge can be bound to it", opt,
            clean(host, hshown, sizeof(hshown)), JPKI_HOST_MAX);
    } else {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        snprintf(x->shown, sizeof(x->shown), "%s://%s%s%s%s", scheme, host,
                 port ? ":" : "", port ? port : "", path);
        snprintf(x->origin, sizeof(x->origin), "%s://%s%s%s", scheme,
                 x->host_hdr, port ? ":" : "", port ? port : "");
        if (query != NULL)
            memcpy(query, q, strlen(q) + 1);
        rc = 0;
        if (strcasecmp(scheme, "http") == 0 && !is_loopback(host)) {
            if (!insecure) {
                say("%s: plain http:// to %.200s, another host than this "
                    "one: anyone on the network path could swap the gate's "
                    "challenge for another gate's and keep the card's "
                    "signature (a login as you at that gate)%s.  Use "
                    "https://, or --insecure-http to accept that", opt, host,
                    query == NULL ? ", and read the session cookie" : "");
                rc = -1;
            } else {
                say("warning: --insecure-http: plain http to %.200s: anyone "
                    "on the path can swap the challenge and keep the card's "
                    "signature, and read the session cookie", host);
            }
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(q);
    curl_free(frag);
    curl_free(user);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* --verbose: the CA file and directory the TLS backend was given, as it
 * says them when it loads them ("CAfile: F", "CApath: D"; CURLINFO_CAPATH
 * gives the built-in default, not the handle's).  Nothing else of
 * libcurl's talk is shown: headers and lines such as "Added cookie" hold
 * the cookie. */
static int curl_debug(CURL *h, curl_infotype type, char *data, size_t size,
                      void *unused)
{
    char line[400], shown[400];

    (void)h;
    (void)unused;
    if (type != CURLINFO_TEXT)
        return 0;
    while (size > 0 && *data == ' ') {
        data++;
        size--;
    }
    while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    if (size < 7 || size >= sizeof(line)
        || (memcmp(data, "CAfile:", 7) != 0
            && memcmp(data, "CApath:", 7) != 0))
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    say("TLS: %s", clean(line, shown, sizeof(shown)));
    return 0;
}

int http_init(http_t *x, const args_t *a)
{
    if ((x->h = curl_easy_init()) == NULL) {
        say("libcurl: out of memory");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &x->deadline);
    x->deadline.tv_sec += a->val[O_TIMEOUT] != NULL
                          ? atoi(a->val[O_TIMEOUT]) : TIMEOUT_DEF;
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(x->h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (a->val[O_CACERT] != NULL) {
        curl_easy_setopt(x->h, CURLOPT_CAINFO, a->val[O_CACERT]);
        /* instead of the system's CAs, not with them: libcurl also has a
         * built-in CA directory (Debian's: /etc/ssl/certs), searched too
         * unless cleared */
        curl_easy_setopt(x->h, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(x->h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BODY_MAX);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "jpki-login/" JPKI_VERSION);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->cerr);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(x->h, CURLOPT_COOKIEFILE, "");   /* cookie engine */
    if (verbose) {
        curl_easy_setopt(x->h, CURLOPT_DEBUGFUNCTION, curl_debug);
        curl_easy_setopt(x->h, CURLOPT_VERBOSE, 1L);
    }
    return 0;
}

/* ---- the cookie jar ----------------------------------------------- */

static char jar_tmp[ARG_MAX_LEN + 16];   /* temp jar to remove, or "" */

void jar_discard(void)
{
    if (jar_tmp[0] != '\0') {
        unlink(jar_tmp);
        jar_tmp[0] = '\0';
    }
}

/* A new file next to PATH (mode 0600), renamed over PATH once signed in:
 * made first, so that an unwritable place fails before the card is used. */
int jar_open(const char *path)
{
    int fd;

    snprintf(jar_tmp, sizeof(jar_tmp), "%s.XXXXXX", path);
    if ((fd = mkstemp(jar_tmp)) < 0) {
        jar_tmp[0] = '\0';
        say("--cookie-jar: cannot create a file next to \"%.200s\": %s",
            path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0600) != 0) {
        close(fd);
        unlink(jar_tmp);
        jar_tmp[0] = '\0';
        say("--cookie-jar: chmod: %s", strerror(errno));
        return -1;
    }
    return fd;
}

int jar_commit(CURL *h, int fd, const char *path)
{
    static const char head[] =
        "# Netscape HTTP Cookie File\n"
        "# Written by jpki-login: a signed-in session; keep it private.\n\n";
    struct curl_slist *list = NULL, *l;
    FILE *f;
    int n = 0, ok;

    if (curl_easy_getinfo(h, CURLINFO_COOKIELIST, &list) != CURLE_OK
        || list == NULL) {
        say("signed in, but the gate set no cookie (a Secure cookie over "
            "http:// is dropped: use https)");
        return -1;
    }
    if ((f = fdopen(fd, "w")) == NULL) {
        curl_slist_free_all(list);
        close(fd);
        say("--cookie-jar: %s", strerror(errno));
        return -1;
    }
    fputs(head, f);
    for (l = list; l != NULL; l = l->next, n++)
        fprintf(f, "%s\n", l->data);
    curl_slist_free_all(list);
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(jar_tmp, path) != 0) {
        say("--cookie-jar: cannot write \"%.200s\": %s", path,
            strerror(errno));
        return -1;
    }
    jar_tmp[0] = '\0';
    step("cookie jar %s: %d cookie%s", path, n, n == 1 ? "" : "s");
    return 0;
}

/* ---- the exchange ------------------------------------------------- */

/* CH is what the card is about to sign: the card signs any text it is
 * given, so a gate, or whoever is on its path, could have it sign other
 * text (an order to a service that takes the same card's signatures) or a
 * challenge kept for later.  Only what the gate issues passes, read with
 * the gate's own code (jpki_challenge_peek, common/challenge.c):
 * JPKI_CHALLENGE_LEN base64url characters of version 2, current by our
 * clock within CH_SKEW: expired at most CH_SKEW ago (our clock may be
 * ahead), expiring at most CH_TTL_MAX + CH_SKEW ahead; and issued for
 * --url's host as libcurl sends it in Host (x->host_hdr; the gate hashes
 * the Host header it got the same way; x->host is its canonical form, as
 * shown).  A site that passes
 * on another site's challenge (its own page asks the card for a login at
 * the bank) is caught here: the challenge is the bank's host's.  The tag
 * is the gate's MAC, not ours to check.  0 and *expiry; -1 and why not in
 * WHY (not a challenge of a gate), -2 and WHY a whole message (an older
 * gate, another host). */
int check_challenge(const char *ch, time_t now, const http_t *x,
                    long long *expiry, char *why, size_t whylen)
{
    size_t n = strlen(ch);
    jpki_challenge_view v;
    uint64_t exp;
    jpki_err e;

    e = jpki_challenge_peek(ch, n, x->host_hdr, strlen(x->host_hdr), &v);
    if (e == JPKI_ERR_CHALLENGE_FORMAT) {
        if (n != JPKI_CHALLENGE_LEN)
            snprintf(why, whylen, "the challenge has %zu characters, not %d",
                     n, JPKI_CHALLENGE_LEN);
        else
            snprintf(why, whylen, "the challenge is not base64url text");
        return -1;
    }
    if (e != JPKI_OK) {
        snprintf(why, whylen, "SHA-256 failed: the challenge's host is not "
                 "checked");
        return -2;
    }
    if (v.version == 1) {
        snprintf(why, whylen, "the gate is older than this client: it issues "
                 "challenges of version 1, not bound to a host, which a site "
                 "could pass on from another; upgrade the gate");
        return -2;
    }
    if (v.version != CH_VERSION) {
        snprintf(why, whylen, "the challenge is of version %u, not %d",
                 v.version, CH_VERSION);
        return -1;
    }
    exp = v.expires;
    if (exp > (uint64_t)now + CH_TTL_MAX + CH_SKEW) {
        snprintf(why, whylen, "the challenge expires in %llu s, later than a "
                 "gate's ever do (%d s, and %d s of clock skew)",
                 (unsigned long long)(exp - (uint64_t)now), CH_TTL_MAX,
                 CH_SKEW);
        return -1;
    }
    if (exp + CH_SKEW < (uint64_t)now) {
        snprintf(why, whylen, "the challenge expired %llu s ago by this "
                 "machine's clock (%d s of clock skew allowed)",
                 (unsigned long long)((uint64_t)now - exp), CH_SKEW);
        return -1;
    }
    if (x->host[0] == '\0') {          /* check_url refuses it already */
        snprintf(why, whylen, "no host to bind the challenge to");
        return -2;
    }
    if (!v.host_ok) {
        snprintf(why, whylen, "the challenge was issued for another host "
                 "than %s (a site passing on another site's challenge?)",
                 x->host);
        return -2;
    }
    *expiry = (long long)exp;
    return 0;
}

/* The fields of a gate's JSON answer (jpki_form_parse_answer: nested
 * values skipped, a field of the wrong type, too long or given twice
 * makes the answer malformed); *scratch holds their values (free it).
 * 0, -1 when it is not one JSON object. */
int answer_fields(const sink_t *s, jpki_form_field *f, size_t n,
                  char **scratch)
{
    *scratch = NULL;
    if (s->buf == NULL || (*scratch = malloc(2 * s->len + 2)) == NULL)
        return -1;
    return jpki_form_parse_answer(s->buf, s->len, *scratch, f, n) == JPKI_OK
           ? 0 : -1;
}

/* A field's text, "?" (or DEF) when absent, shown clean. */
const char *shown_field(const jpki_form_field *f, const char *def,
                        char *out, size_t outlen)
{
    return f->value != NULL ? clean(f->value, out, outlen) : def;
}

int get_challenge(http_t *x, const char *base, char *ch, size_t cap,
                  long long *expiry)
{
    char url[URL_MAX + 16], what[URL_MAX + 64], shown[512], shown2[64];
    jpki_form_field f[3] = {
        {"challenge", CHALLENGE_MAX, NULL, 0, JPKI_FORM_STRING, 0},
        {"error", 63, NULL, 0, JPKI_FORM_STRING, 0},
        {"message", 511, NULL, 0, JPKI_FORM_STRING, 0}};
    sink_t s = {NULL, 0, 0, BODY_MAX, 0};
    char *scratch = NULL, why[512];
    long status;
    int rc, cc;

    snprintf(url, sizeof(url), "%s/challenge", base);
    snprintf(what, sizeof(what), "GET %s/challenge", x->shown);
    if ((rc = http_do(x, url, what, NULL, &status, &s)) != 0) {
        free(s.buf);
        return rc;
    }
    rc = EXIT_NET;
    ch[0] = '\0';
    if (answer_fields(&s, f, 3, &scratch) != 0) {
        say("%s: HTTP %ld, the answer is not the gate's JSON (is --url the "
            "gate's endpoint prefix?)", what, status);
    } else if (status != 200) {
        say("%s: HTTP %ld: %s: %s", what, status,
            shown_field(&f[1], "?", shown2, sizeof(shown2)),
            shown_field(&f[2], "", shown, sizeof(shown)));
    } else if (f[0].value == NULL || f[0].len == 0 || f[0].len >= cap) {
        say("%s: the answer holds no challenge", what);
    } else {
        memcpy(ch, f[0].value, f[0].len + 1);
        cc = check_challenge(ch, time(NULL), x, expiry, why,
                             sizeof(why));
        if (cc == -2)
            say("%s: not signed: %s", what, why);
        else if (cc != 0)
            say("%s: not signed: %s (the card signs nothing but a JPKI "
                "login challenge)", what, why);
        else
            rc = EXIT_SIGNED_IN;
    }
    free(scratch);
    free(s.buf);
    return rc;
}

/* (login.h) */
int post_answer(http_t *x, const char *url, const char *what,
                const char *body, jpki_form_field *f, size_t n,
                char **scratch)
{
    char shown[512], shown2[64];
    sink_t s = {NULL, 0, 0, BODY_MAX, 0};
    long status;
    int rc;

    *scratch = NULL;
    if ((rc = http_do(x, url, what, body, &status, &s)) != 0) {
        free(s.buf);
        return rc;
    }
    rc = EXIT_NET;
    if (answer_fields(&s, f, n, scratch) != 0) {
        say("%s: HTTP %ld, the answer is not the gate's JSON", what, status);
    } else if (status != 200 && f[n - 2].value != NULL) {
        fprintf(stderr, "refused: %s: %s\n",
                clean(f[n - 2].value, shown2, sizeof(shown2)),
                shown_field(&f[n - 1], "(no message)", shown, sizeof(shown)));
        rc = EXIT_REFUSED;
    } else if (status != 200) {
        say("%s: HTTP %ld without a reason", what, status);
    } else if (f[0].value == NULL || strcmp(f[0].value, "ok") != 0) {
        say("%s: HTTP 200 but not the gate's {\"status\":\"ok\",...}", what);
    } else {
        rc = EXIT_SIGNED_IN;
    }
    free(s.buf);
    return rc;
}

int post_login(http_t *x, const char *base, const char *body,
               char *account, size_t acap, long long *expires)
{
    char url[URL_MAX + 16], what[URL_MAX + 64];
    jpki_form_field f[5] = {
        {"status", 15, NULL, 0, JPKI_FORM_STRING, 0},
        {"account", acap - 1, NULL, 0, JPKI_FORM_STRING, 0},
        {"expires", 20, NULL, 0, JPKI_FORM_INT, 0},
        {"error", 63, NULL, 0, JPKI_FORM_STRING, 0},
        {"message", 511, NULL, 0, JPKI_FORM_STRING, 0}};
    char *scratch = NULL;
    int rc;

    snprintf(url, sizeof(url), "%s/login", base);
    snprintf(what, sizeof(what), "POST %s/login", x->shown);
    rc = post_answer(x, url, what, body, f, 5, &scratch);
    if (rc == 0 && (f[1].value == NULL || f[2].value == NULL)) {
        say("%s: HTTP 200 but not the gate's {\"status\":\"ok\",...}", what);
        rc = EXIT_NET;
    } else if (rc == 0) {
        memcpy(account, f[1].value, f[1].len + 1);
        *expires = f[2].num;
    }
    free(scratch);
    return rc;
}
