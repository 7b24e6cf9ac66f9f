/* test_http.c - the OCSP responder's HTTP answer parser and request head. */
#include "jpki.h"
#include "tap.h"

static int parse(const char *s, size_t len, int eof, int *st, size_t *bl)
{
    const uint8_t *b = NULL;
    return jpki_http_response_parse((const uint8_t *)s, len, eof, st, &b, bl);
}

#define P(s, eof) parse(s, sizeof(s) - 1, eof, &st, &bl)

int main(void)
{
    int st = 0, i;
    size_t bl = 0, n;
    char head[512], *big;
    const char full[] = "HTTP/1.0 200 OK\r\nContent-Type: application/"
                        "ocsp-response\r\nContent-Length: 5\r\n\r\nabcde";

    is_int(P(full, 0), 1, "whole answer with Content-Length");
    is_int(st, 200, "status");
    is_int(bl, 5, "body length");
    for (n = 0; n < sizeof(full) - 1; n++)
        if (parse(full, n, 0, &st, &bl) != 0)
            break;
    is_int(n, sizeof(full) - 1, "every prefix asks for more bytes");
    is_int(parse(full, sizeof(full) - 2, 1, &st, &bl), -1,
           "truncated body at EOF: malformed");
    is_int(P("HTTP/1.1 200 OK\r\n\r\nxyz", 0), 0,
           "no Content-Length: reads until EOF");
    is_int(P("HTTP/1.1 200 OK\r\n\r\nxyz", 1), 1, "... whole at EOF");
    is_int(bl, 3, "... body length");
    is_int(P("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n", 0), 1,
           "an error status is parsed (the core refuses it)");
    is_int(st, 500, "... status 500");
    is_int(P("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nabc", 0), -1,
           "more body than Content-Length");
    is_int(P("HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n", 0), -1,
           "Content-Length not a number");
    is_int(P("HTTP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n", 0), -1,
           "Content-Length over JPKI_OCSP_RESP_MAX");
    is_int(P("HTTP/2.0 200 OK\r\n\r\n", 1), -1, "not HTTP/1.x");
    is_int(P("HTTP/1.0 2x0 OK\r\n\r\n", 1), -1, "status not a number");
    is_int(P("HTTP/1.0 099 OK\r\n\r\n", 1), -1, "status under 100");
    is_int(P("garbage\r\n\r\n", 1), -1, "garbage");
    is_int(P("HTTP/1.0 200 OK\r\n", 1), -1, "EOF inside the header");
    is_int(P("", 1), -1, "empty answer at EOF");
    big = malloc(JPKI_OCSP_HEADER_MAX + 10);
    memset(big, 'a', JPKI_OCSP_HEADER_MAX + 10);
    is_int(parse(big, JPKI_OCSP_HEADER_MAX + 10, 0, &st, &bl), -1,
           "a header over JPKI_OCSP_HEADER_MAX");
    free(big);
    big = malloc(JPKI_OCSP_RESP_MAX + 64);
    i = snprintf(big, 64, "HTTP/1.0 200 OK\r\n\r\n");
    memset(big + i, 'b', JPKI_OCSP_RESP_MAX + 1);
    is_int(parse(big, (size_t)i + JPKI_OCSP_RESP_MAX + 1, 1, &st, &bl), -1,
           "a body over JPKI_OCSP_RESP_MAX without Content-Length");
    free(big);

    n = jpki_ocsp_http_request("ocsp.example:8080", "/ocsp", 77, head,
                               sizeof(head));
    ok(n > 0 && strstr(head, "POST /ocsp HTTP/1.0\r\n") == head,
       "request line");
    ok(strstr(head, "Host: ocsp.example:8080\r\n") != NULL, "Host");
    ok(strstr(head, "Content-Length: 77\r\n") != NULL, "Content-Length");
    ok(strstr(head, "Content-Type: application/ocsp-request\r\n") != NULL,
       "Content-Type");
    is_int(n, strlen(head), "length returned");
    is_int(jpki_ocsp_http_request("h", "/", 1, head, 20), 0,
           "too small a buffer: 0");
    return done_testing();
}
