/* form.h - login body parsing, and the reader of a gate's JSON answers
 * that jpki-login uses (tools/login_http.c). */
#ifndef JPKI_FORM_H
#define JPKI_FORM_H
#include "jpki.h"

enum { JPKI_FORM_STRING = 0, JPKI_FORM_INT };
#define JPKI_JSON_DEPTH 32       /* nesting read by jpki_form_parse_answer */

typedef struct {
    const char *name;
    size_t max;          /* longest value accepted (INT: its text) */
    char *value;         /* NUL-terminated, in scratch; NULL when absent */
    size_t len;
    int kind;            /* JPKI_FORM_STRING; INT: jpki_form_parse_answer */
    long long num;       /* JPKI_FORM_INT: the value */
} jpki_form_field;

/* scratch must hold 2 * len + 2 bytes.  Unknown members are
 * ignored; a known member twice, or not a string, is refused. */
jpki_err jpki_form_parse_json(const uint8_t *body, size_t len, char *scratch,
                              jpki_form_field *f, size_t n);
/* A gate's JSON answer (jpki-login): one object whose members may hold
 * any JSON value, nested at most JPKI_JSON_DEPTH deep (checked, skipped);
 * the fields asked for must be strings (JPKI_FORM_STRING, at most max
 * bytes decoded) or integers (JPKI_FORM_INT: at most 18 digits, no
 * fraction or exponent), each given once.  Strings holding \u0000 are
 * refused (as in login bodies).  scratch as for jpki_form_parse_json. */
jpki_err jpki_form_parse_answer(const uint8_t *body, size_t len,
                                char *scratch, jpki_form_field *f, size_t n);
jpki_err jpki_form_parse_urlencoded(const uint8_t *body, size_t len,
                                    char *scratch, jpki_form_field *f,
                                    size_t n);
#endif
