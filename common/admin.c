/* admin.c - who may call the admin API (see admin.h). */
#include "admin.h"
#include "internal.h"
#include "directives.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* An address as 16 bytes (IPv4 mapped into IPv6); 0 when malformed. */
static int addr16(const char *s, size_t n, uint8_t out[16], int *v4)
{
    char buf[INET6_ADDRSTRLEN + 1];
    uint8_t a4[4];

    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, a4, 4);
        *v4 = 1;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, out) != 1)
        return 0;
    *v4 = memcmp(out, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
    return 1;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, full) != 0)
        return 0;
    return rest == 0
           || ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int jpki_cidr_allows(const char *list, const char *peer)
{
    uint8_t p[16], net[16];
    int pv4 = 0, v4 = 0, n = 0, hit = 0;
    const char *s = list, *e, *slash;

    if (list == NULL
        || (peer != NULL && !addr16(peer, strlen(peer), p, &pv4)))
        return 0;
    for (;;) {
        unsigned bits;
        char *end;

        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            break;
        for (e = s; *e && *e != ' ' && *e != '\t'; e++)
            ;
        slash = memchr(s, '/', (size_t)(e - s));
        if (++n > JPKI_CIDRS_MAX
            || !addr16(s, (size_t)((slash ? slash : e) - s), net, &v4))
            return 0;
        bits = 128;
        if (slash != NULL) {
            unsigned long b = strtoul(slash + 1, &end, 10);
            if (end != e || slash + 1 == e || b > (v4 ? 32u : 128u))
                return 0;
            bits = (unsigned)b + (v4 ? 96u : 0u);
        }
        if (peer != NULL && prefix_match(p, net, bits))
            hit = 1;
        s = e;
    }
    return peer == NULL ? n > 0 : hit;
}

jpki_err jpki_admin_token_file(const char *path, uint8_t hash[32], char *err,
                               size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0, n;
    struct stat st;
    unsigned int mdlen = 0;
    jpki_err e;

    if (stat(path, &st) != 0 || jpki_load_file(path, 4096, &buf, &len)
                                != JPKI_OK) {
        jpki_set_detail(err, errlen, "admin token file \"%s\" cannot be "
                        "read", path);
        return JPKI_ERR_INVALID;
    }
    e = JPKI_OK;
    if (st.st_mode & 077) {
        jpki_set_detail(err, errlen, "admin token file \"%s\" is readable "
                        "by others than its owner (chmod 600)", path);
        e = JPKI_ERR_INVALID;
    }
    for (n = 0; e == JPKI_OK && n < len && buf[n] != '\n' && buf[n] != '\r';
         n++)
        if (buf[n] <= 0x20 || buf[n] >= 0x7f)
            break;
    if (e == JPKI_OK && (n < 32 || n > 256
                         || (n < len && buf[n] != '\n' && buf[n] != '\r'))) {
        jpki_set_detail(err, errlen, "admin token file \"%s\": its first "
                        "line must be a token of 32..256 printable "
                        "characters (openssl rand -hex 32)", path);
        e = JPKI_ERR_INVALID;
    }
    if (e == JPKI_OK && (EVP_Digest(buf, n, hash, &mdlen,
                                    jpki_md(JPKI_MD_SHA256), NULL) != 1
                         || mdlen != 32))
        e = JPKI_ERR_INTERNAL;
    OPENSSL_cleanse(buf, len);
    free(buf);
    return e;
}

size_t jpki_admin_missing(const jpki_policy *p, int srv, char *out,
                          size_t max)
{
    int n;

    if (p->admin_token_set && p->admin_allow[0] != '\0')
        return 0;
    n = snprintf(out, max, "needs %s%s%s (the admin API answers only the "
                 "addresses listed, with the token of the file)",
                 p->admin_token_set ? "" : srv == JPKI_SERVER_NGINX
                 ? "jpki_admin_token_file" : "JPKIAdminTokenFile",
                 !p->admin_token_set && !p->admin_allow[0] ? " and " : "",
                 p->admin_allow[0] ? ""
                 : jpki_directive_name((jpki_server)srv, JPKI_D_ADMIN_ALLOW));
    return n > 0 ? (size_t)n : 0;
}

size_t jpki_metrics_missing(const jpki_policy *p, int srv, char *out,
                            size_t max)
{
    int n;

    if (p->admin_token_set || p->admin_allow[0] != '\0')
        return 0;
    n = snprintf(out, max, "needs %s or %s (the metrics answer only the "
                 "addresses listed, or the token of the file)",
                 jpki_directive_name((jpki_server)srv, JPKI_D_ADMIN_ALLOW),
                 srv == JPKI_SERVER_NGINX ? "jpki_admin_token_file"
                                          : "JPKIAdminTokenFile");
    return n > 0 ? (size_t)n : 0;
}

int jpki_admin_bearer_ok(const char *auth, size_t len, const uint8_t hash[32])
{
    uint8_t md[32];
    unsigned int mdlen = 0;

    if (auth == NULL || len < 8 || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    auth += 7;
    len -= 7;
    while (len > 0 && auth[0] == ' ') {
        auth++;
        len--;
    }
    if (len == 0 || len > 256
        || EVP_Digest(auth, len, md, &mdlen, jpki_md(JPKI_MD_SHA256), NULL)
           != 1 || mdlen != 32)
        return 0;
    return jpki_ct_equal(md, hash, 32);
}
