/* http.c - the HTTP/1.x answer of an OCSP responder, parsed for both
 * adapters (which own the sockets): status line, end of the headers,
 * Content-Length; bounded by JPKI_OCSP_HEADER_MAX and JPKI_OCSP_RESP_MAX. */
#include "jpki.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t jpki_ocsp_http_request(const char *host, const char *path,
                              size_t body_len, char *out, size_t max)
{
    int n = snprintf(out, max, "POST %s HTTP/1.0\r\nHost: %s\r\n"
                     "Content-Type: application/ocsp-request\r\n"
                     "Accept: application/ocsp-response\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     path, host, body_len);
    return n < 0 || (size_t)n >= max ? 0 : (size_t)n;
}

int jpki_http_response_parse(const uint8_t *in, size_t len, int eof,
                             int *status, const uint8_t **body,
                             size_t *body_len)
{
    const uint8_t *hend = NULL, *p, *cl = NULL;
    size_t clen = 0;
    int st = 0, i;

    for (p = in; p + 3 < in + len; p++)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            hend = p;
            break;
        }
    if (hend == NULL)
        return eof || len >= JPKI_OCSP_HEADER_MAX ? -1 : 0;
    if (hend - in >= JPKI_OCSP_HEADER_MAX || hend - in < 12
        || memcmp(in, "HTTP/1.", 7) != 0 || (in[7] != '0' && in[7] != '1')
        || in[8] != ' ')
        return -1;
    for (i = 9; i < 12; i++) {
        if (in[i] < '0' || in[i] > '9')
            return -1;
        st = st * 10 + (in[i] - '0');
    }
    if (st < 100)
        return -1;
    *status = st;
    *body = hend + 4;
    *body_len = (size_t)(in + len - *body);
    for (p = in; p + 16 <= hend; p++)
        if (*p == '\n' && strncasecmp((const char *)p + 1, "content-length:",
                                      15) == 0) {
            cl = p + 16;
            break;
        }
    if (cl != NULL) {
        while (cl < hend && (*cl == ' ' || *cl == '\t'))
            cl++;
        if (cl == hend || *cl < '0' || *cl > '9')
            return -1;
        while (cl < hend && *cl >= '0' && *cl <= '9'
               && clen <= JPKI_OCSP_RESP_MAX)
            clen = clen * 10 + (size_t)(*cl++ - '0');
        if (clen > JPKI_OCSP_RESP_MAX || *body_len > clen)
            return -1;
        if (*body_len == clen)
            return 1;
        return eof ? -1 : 0;
    }
    if (*body_len > JPKI_OCSP_RESP_MAX)
        return -1;
    return eof ? 1 : 0;
}

void jpki_ocsp_answer_init(jpki_ocsp_answer *a, uint8_t *buf, size_t max)
{
    memset(a, 0, sizeof(*a));
    a->buf = buf;
    a->max = max;
}

uint8_t *jpki_ocsp_answer_room(jpki_ocsp_answer *a, size_t *room)
{
    *room = a->max - a->len;
    return a->buf + a->len;
}

int jpki_ocsp_answer_read(jpki_ocsp_answer *a, size_t n, int eof)
{
    int r;

    if (n > a->max - a->len) {
        a->reason = "OCSP response too large";
        return -1;
    }
    a->len += n;
    r = jpki_http_response_parse(a->buf, a->len, eof, &a->status, &a->body,
                                 &a->body_len);
    if (r < 0) {
        a->reason = "malformed HTTP answer from OCSP responder";
        return -1;
    }
    if (r == 0 && a->len == a->max) {
        /* (no room left for the rest) */
        a->reason = "OCSP response too large";
        return -1;
    }
    return r;
}
