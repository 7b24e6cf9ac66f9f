/* form.h - login body parsing (internal to common/). */
#ifndef JPKI_FORM_H
#define JPKI_FORM_H
#include "jpki.h"

typedef struct {
    const char *name;
    size_t max;          /* longest value accepted */
    char *value;         /* NUL-terminated, in scratch; NULL when absent */
    size_t len;
} jpki_form_field;

/* scratch must hold 2 * len + 2 bytes.  Unknown members are
 * ignored; a known member twice, or not a string, is refused. */
jpki_err jpki_form_parse_json(const uint8_t *body, size_t len, char *scratch,
                              jpki_form_field *f, size_t n);
jpki_err jpki_form_parse_urlencoded(const uint8_t *body, size_t len,
                                    char *scratch, jpki_form_field *f,
                                    size_t n);
#endif
