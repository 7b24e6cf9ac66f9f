/* qr.h - a QR code of a short text (a device flow's login URL) as an SVG
 * image in a data: URL, for the login page (its CSP allows img-src data:).
 * Encoded by libqrencode (error correction level M, 8-bit mode); drawn as
 * one path of its dark modules, a row's run at a time, with the quiet zone
 * of 4 modules the standard asks for. */
#ifndef JPKI_QR_H
#define JPKI_QR_H

#include "jpki.h"

#define JPKI_QR_TEXT_MAX 1024       /* bytes of text encoded at most */

/* "data:image/svg+xml;base64,..." for text (NUL-terminated), malloc'ed
 * (free()), its length in *len; NULL when text is empty or too long, or
 * on a failure of the encoder or of memory. */
char *jpki_qr_data_url(const char *text, size_t *len);

/* The SVG itself (malloc'ed, NUL-terminated): what the data URL holds;
 * *modules: the symbol's width in modules (without the quiet zone). */
char *jpki_qr_svg(const char *text, size_t *len, int *modules);

#endif
