/* qr.c - a QR code as an SVG data URL (see qr.h). */
#include "qr.h"
#include "internal.h"

#include <qrencode.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUIET 4                     /* modules of white around the symbol */

typedef struct {
    char *p;
    size_t len, cap;
    int fail;
} buf;

static void put(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (b->fail)
        return;
    va_start(ap, fmt);
    w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= b->cap - b->len) {
        b->fail = 1;
        return;
    }
    b->len += (size_t)w;
}

char *jpki_qr_svg(const char *text, size_t *len, int *modules)
{
    QRcode *q;
    buf b = {NULL, 0, 0, 0};
    int x, y, run, size;

    *len = 0;
    if (text == NULL || text[0] == '\0' || strlen(text) > JPKI_QR_TEXT_MAX)
        return NULL;
    q = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (q == NULL)
        return NULL;
    size = q->width + 2 * QUIET;
    /* a run's "M%d %dh%dv1H%dz" is at most 24 bytes, and at worst every
     * other module starts one */
    b.cap = 512 + (size_t)q->width * (size_t)q->width * 16;
    b.p = malloc(b.cap);
    if (b.p == NULL) {
        QRcode_free(q);
        return NULL;
    }
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
        "shape-rendering=\"crispEdges\">", size, size);
    put(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
        "<path fill=\"#000\" d=\"", size, size);
    for (y = 0; y < q->width; y++)
        for (x = 0; x < q->width; x += run > 0 ? run : 1) {
            for (run = 0; x + run < q->width
                          && (q->data[y * q->width + x + run] & 1); run++)
                ;
            if (run > 0)
                put(&b, "M%d %dh%dv1H%dz", x + QUIET, y + QUIET, run,
                    x + QUIET);
        }
    put(&b, "\"/></svg>");
    if (modules != NULL)
        *modules = q->width;
    QRcode_free(q);
    if (b.fail) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

char *jpki_qr_data_url(const char *text, size_t *len)
{
    static const char head[] = "data:image/svg+xml;base64,";
    size_t svglen = 0, n;
    char *svg = jpki_qr_svg(text, &svglen, NULL), *out;

    *len = 0;
    if (svg == NULL)
        return NULL;
    n = sizeof(head) - 1 + 4 * ((svglen + 2) / 3);
    out = malloc(n + 1);
    if (out != NULL) {
        memcpy(out, head, sizeof(head) - 1);
        jpki_b64_encode((const uint8_t *)svg, svglen, out + sizeof(head) - 1,
                        0);
        *len = strlen(out);
    }
    free(svg);
    return out;
}
