/* sentinel.c - Redis Sentinel: the query, the answers read (a sentinel's,
 * ROLE's), and a process's record of the primary (sentinel.h). */
#include "sentinel.h"
#include "conf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 512       /* a status, error or number line */
#define STR_MAX_BYTES 512        /* a bulk string */
#define ARRAY_MAX 1024           /* elements of an array */
#define DEPTH_MAX 3              /* arrays within arrays */

size_t jpki_sentinel_query(const char *master, char *out, size_t max)
{
    size_t len = master != NULL ? strlen(master) : 0;
    int n;

    if (len == 0 || len > 63)
        return 0;
    n = snprintf(out, max, "*3\r\n$8\r\nSENTINEL\r\n$23\r\n"
                 "get-master-addr-by-name\r\n$%zu\r\n%s\r\n", len, master);
    return n > 0 && (size_t)n < max ? (size_t)n : 0;
}

size_t jpki_sentinel_auth(const char *password, char *out, size_t max)
{
    size_t len = password != NULL ? strlen(password) : 0;
    int n;

    if (len == 0 || len > JPKI_CONF_PASSWORD_MAX)
        return 0;
    n = snprintf(out, max, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n", len,
                 password);
    return n > 0 && (size_t)n < max ? (size_t)n : 0;
}

/* A number line after its type byte: p[1..n) "<digits>\r\n" or "-1\r\n"
 * (neg: -1 taken).  1 complete (*v, *end the offset after it from p), 0
 * more bytes needed, -1 malformed. */
static int number_line(const char *p, size_t n, int neg, long long *v,
                       size_t *end)
{
    size_t i = 1, digits = 0;
    int minus = 0;

    *v = 0;
    if (i < n && p[i] == '-') {
        if (!neg)
            return -1;
        minus = 1;
        i++;
    }
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        if (++digits > 10)
            return -1;
        *v = *v * 10 + (p[i] - '0');
    }
    if (i == n)
        return 0;
    if (digits == 0 || p[i] != '\r' || (minus && *v != 1))
        return -1;
    if (i + 1 == n)
        return 0;
    if (p[i + 1] != '\n')
        return -1;
    if (minus)
        *v = -1;
    *end = i + 2;
    return 1;
}

/* One RESP element at p[0..n): 1 complete (*len its bytes), 0 more bytes
 * needed, -1 malformed or beyond the bounds. */
static int span(const char *p, size_t n, int depth, size_t *len)
{
    long long v, k;
    size_t i, end, sub;
    int rc;

    if (n == 0)
        return 0;
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
        for (i = 1; i < n && i <= LINE_MAX_BYTES; i++) {
            if (p[i] == '\n')
                return -1;
            if (p[i] == '\r') {
                if (i + 1 == n)
                    return 0;
                if (p[i + 1] != '\n')
                    return -1;
                *len = i + 2;
                return 1;
            }
        }
        return i > LINE_MAX_BYTES ? -1 : 0;
    case '$':
        rc = number_line(p, n, 1, &v, &end);
        if (rc <= 0)
            return rc;
        if (v > STR_MAX_BYTES)
            return -1;
        if (v < 0) {
            *len = end;
            return 1;
        }
        if (n < end + (size_t)v + 2)
            return 0;
        if (p[end + (size_t)v] != '\r' || p[end + (size_t)v + 1] != '\n')
            return -1;
        *len = end + (size_t)v + 2;
        return 1;
    case '*':
        if (depth >= DEPTH_MAX)
            return -1;
        rc = number_line(p, n, 1, &v, &end);
        if (rc <= 0)
            return rc;
        if (v > ARRAY_MAX)
            return -1;
        for (k = 0; k < v; k++) {
            rc = span(p + end, n - end, depth + 1, &sub);
            if (rc <= 0)
                return rc;
            end += sub;
        }
        *len = end;
        return 1;
    default:
        return -1;
    }
}

/* A bulk string at p (complete, checked by span): its text and length;
 * NULL for a nil or another type. */
static const char *bulk(const char *p, size_t n, size_t *slen, size_t *used)
{
    long long v;
    size_t end;

    if (n == 0 || p[0] != '$' || number_line(p, n, 1, &v, &end) != 1
        || v < 0)
        return NULL;
    *slen = (size_t)v;
    *used = end + (size_t)v + 2;
    return p + end;
}

/* Printable ASCII of s[len] into out[max] (an answer in a log line). */
static void sanitize(char *out, size_t max, const char *s, size_t len)
{
    size_t i, o = 0;

    if (max == 0)
        return;
    for (i = 0; i < len && o + 1 < max; i++)
        out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[o] = '\0';
}

static int refuse(char *why, size_t whylen, const char *what)
{
    if (whylen > 0)
        snprintf(why, whylen, "%s", what);
    return -1;
}

int jpki_sentinel_auth_answer(const char *buf, size_t len, size_t *used,
                              char *why, size_t whylen)
{
    const char *nl = memchr(buf, '\n', len < 512 ? len : 512);
    size_t line;
    char text[96];

    if (nl == NULL)
        return len < 512 ? 0 : refuse(why, whylen, "sent a malformed answer");
    line = (size_t)(nl - buf) + 1;
    if (line < 3 || buf[line - 2] != '\r')
        return refuse(why, whylen, "sent a malformed answer");
    if (line == 5 && memcmp(buf, "+OK\r\n", 5) == 0) {
        *used = line;
        return 1;
    }
    if (buf[0] != '-')
        return refuse(why, whylen, "sent a malformed answer");
    sanitize(text, sizeof(text), buf + 1, line - 3);
    if (whylen > 0)
        snprintf(why, whylen, "refused the password: %s", text);
    return -1;
}

static int ip_family(const char *host)
{
    unsigned char b[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, b) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, host, b) == 1)
        return AF_INET6;
    return 0;
}

int jpki_sentinel_answer(const char *buf, size_t len, jpki_sentinel_addr *a,
                         char *why, size_t whylen)
{
    const char *h, *pt;
    size_t all, hl, pl, used, off;
    char text[96];
    unsigned port = 0;
    int rc = span(buf, len, 0, &all);

    if (rc == 0 && len < JPKI_SENTINEL_ANSWER_MAX)
        return 0;
    if (rc <= 0)
        return refuse(why, whylen, "sent a malformed answer");
    if (all != len)
        return refuse(why, whylen, "sent more than its answer");
    if (buf[0] == '-') {
        sanitize(text, sizeof(text), buf + 1, all - 3);
        if (whylen > 0)
            snprintf(why, whylen, "refused the query: %s", text);
        return -1;
    }
    if ((buf[0] == '*' || buf[0] == '$') && buf[1] == '-')
        return refuse(why, whylen, "knows no primary named that (master=)");
    if (len < 4 || memcmp(buf, "*2\r\n", 4) != 0)
        return refuse(why, whylen, "sent a malformed answer");
    off = 4;
    h = bulk(buf + off, len - off, &hl, &used);
    if (h == NULL)
        return refuse(why, whylen, "sent a malformed answer");
    off += used;
    pt = bulk(buf + off, len - off, &pl, &used);
    if (pt == NULL || pl == 0 || pl > 5)
        return refuse(why, whylen, "sent a malformed answer");
    for (; pl > 0; pt++, pl--) {
        if (*pt < '0' || *pt > '9')
            return refuse(why, whylen, "sent a malformed answer");
        port = port * 10 + (unsigned)(*pt - '0');
    }
    if (port == 0 || port > 65535)
        return refuse(why, whylen, "sent a malformed answer");
    if (hl == 0 || hl >= sizeof(a->host))
        return refuse(why, whylen, "named a host that is not an IP address");
    memcpy(a->host, h, hl);
    a->host[hl] = '\0';
    if (memchr(a->host, '\0', hl) != NULL || !ip_family(a->host))
        return refuse(why, whylen, "named a host that is not an IP address "
                      "(sentinel resolve-hostnames is not taken)");
    a->port = port;
    return 1;
}

int jpki_role_answer(const char *buf, size_t len, size_t *used, char *role,
                     size_t rolelen)
{
    const char *s;
    size_t all, sl, u;
    int rc = span(buf, len, 0, &all);

    if (rc <= 0)
        return rc;
    *used = all;
    if (rolelen == 0)
        return 1;
    role[0] = '\0';
    if (buf[0] == '-') {
        role[0] = '-';
        sanitize(role + 1, rolelen - 1, buf + 1, all - 3);
        return 1;
    }
    /* "*N\r\n" then the first element, a bulk string */
    if (buf[0] != '*' || buf[1] == '-' || buf[1] == '0')
        return 1;
    s = memchr(buf, '\n', all);
    if (s == NULL)
        return 1;
    s++;
    s = bulk(s, all - (size_t)(s - buf), &sl, &u);
    if (s != NULL)
        sanitize(role, rolelen, s, sl);
    return 1;
}

/* ---- a process's record of the primary ---------------------------- */

struct jpki_sentinel {
    unsigned n;
    unsigned first;             /* asked first: the last that answered */
    unsigned gen;
    int known;
    struct sockaddr_storage sa;
    socklen_t salen;
    char host[48];
    unsigned port;
    char where[64];
};

jpki_sentinel *jpki_sentinel_new(unsigned n)
{
    jpki_sentinel *s;

    if (n == 0 || n > JPKI_CONF_SENTINELS_MAX)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->n = n;
        s->gen = 1;
    }
    return s;
}

void jpki_sentinel_free(jpki_sentinel *s)
{
    free(s);
}

const struct sockaddr *jpki_sentinel_primary(const jpki_sentinel *s,
                                             socklen_t *len,
                                             const char **where,
                                             unsigned *gen)
{
    *gen = s->gen;
    if (!s->known)
        return NULL;
    *len = s->salen;
    *where = s->where;
    return (const struct sockaddr *)&s->sa;
}

const char *jpki_sentinel_host(const jpki_sentinel *s)
{
    return s->known ? s->host : "";
}

unsigned jpki_sentinel_gen(const jpki_sentinel *s)
{
    return s->gen;
}

unsigned jpki_sentinel_start(const jpki_sentinel *s)
{
    return s->first;
}

int jpki_sentinel_pick(const jpki_sentinel *s, unsigned start, unsigned k)
{
    return k < s->n ? (int)((start + k) % s->n) : -1;
}

int jpki_sentinel_learn(jpki_sentinel *s, unsigned i,
                        const jpki_sentinel_addr *a)
{
    struct sockaddr_storage sa;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;
    socklen_t salen;
    int fam = ip_family(a->host);

    if (fam == 0 || a->port == 0 || a->port > 65535 || i >= s->n)
        return -1;
    memset(&sa, 0, sizeof(sa));
    if (fam == AF_INET) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)a->port);
        (void)inet_pton(AF_INET, a->host, &v4->sin_addr);
        salen = sizeof(*v4);
    } else {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)a->port);
        (void)inet_pton(AF_INET6, a->host, &v6->sin6_addr);
        salen = sizeof(*v6);
    }
    s->first = i;
    if (s->known && salen == s->salen && memcmp(&sa, &s->sa, salen) == 0)
        return 0;
    if (s->known)
        s->gen++;                   /* another primary: the old ones' go */
    s->known = 1;
    s->sa = sa;
    s->salen = salen;
    snprintf(s->host, sizeof(s->host), "%s", a->host);
    s->port = a->port;
    snprintf(s->where, sizeof(s->where), fam == AF_INET6 ? "[%s]:%u"
             : "%s:%u", a->host, a->port);
    return 1;
}

void jpki_sentinel_skip(jpki_sentinel *s, unsigned i)
{
    if (i == s->first)
        s->first = (i + 1) % s->n;
}

int jpki_sentinel_forget(jpki_sentinel *s, unsigned gen)
{
    if (gen != s->gen || !s->known)
        return 0;
    s->known = 0;
    s->gen++;
    return 1;
}
