/* page.h - the login page the gate serves to browsers: its language (from
 * Accept-Language), its words in Japanese and English, the sentence that
 * explains a refusal, and the page itself made from a template the site may
 * replace.  The adapters only send what these give, with jpki_page_headers.
 *
 * The template is HTML with three kinds of marks:
 *   {{name}}        a value of the page, HTML-escaped (lang, return_to,
 *                   tls_url, device_url, assets, error_code, error_text;
 *                   a device flow's code, qr, link, poll_url)
 *   {{t:key}}       a word of the page in its language, HTML-escaped
 *                   (title, intro, ... : jpki_page_words lists them)
 *   {{#name}}...{{/name}}  a part shown only when name is set: error,
 *                   tls (the TLS client-certificate method is on), device
 *                   (the device flow is on), none (no method is on),
 *                   flow (a device flow under way), noflow (none)
 * Anything else between {{ and }} is refused when the template is loaded,
 * with its line.  Parts do not nest within a part of the same name. */
#ifndef JPKI_PAGE_H
#define JPKI_PAGE_H

#include "jpki.h"

typedef enum {
    JPKI_LANG_JA = 0,
    JPKI_LANG_EN = 1
} jpki_lang;

/* The page's language from an Accept-Language header (len bytes; NULL:
 * absent): the supported language of the highest q (ties: the first
 * named; "ja-JP" counts as ja, "*" as the default), Japanese when none is
 * acceptable.  At most 32 ranges are read. */
jpki_lang jpki_page_lang(const char *accept, size_t len);
const char *jpki_lang_tag(jpki_lang lang);          /* "ja", "en" */

/* A word of the page in lang (NULL: no such key). */
const char *jpki_page_word(const char *key, jpki_lang lang);
/* The keys of the words, NULL-terminated (for templates and tests). */
extern const char *const jpki_page_words[];

/* The key of the word that explains a refusal of the reason word the core
 * gives (jpki_strerror): "err_not_enrolled", "err_revoked",
 * "err_on_hold", "err_expired", "err_try_later", "err_too_many",
 * "err_signed_out", "err_cross_origin", "err_flow", "err_tls",
 * "err_issuer", or
 * "err_failed" for every other
 * reason; NULL for NULL or "ok". */
const char *jpki_page_error_key(const char *reason);

/* ---- the template ------------------------------------------------- */

typedef struct jpki_page_tmpl jpki_page_tmpl;

#define JPKI_PAGE_TMPL_MAX  (64 * 1024)

/* Reads a template file (at most JPKI_PAGE_TMPL_MAX bytes); err says why
 * not, with the line of a bad mark ("login page template \"F\" line N:
 * unknown mark {{x}}"). */
jpki_err jpki_page_tmpl_load(const char *path, jpki_page_tmpl **out,
                             char *err, size_t errlen);
/* The same from text in memory (len bytes; name: for messages). */
jpki_err jpki_page_tmpl_parse(const char *text, size_t len, const char *name,
                              jpki_page_tmpl **out, char *err,
                              size_t errlen);
/* The built-in template (never NULL; not to be freed). */
const jpki_page_tmpl *jpki_page_tmpl_default(void);
void jpki_page_tmpl_free(jpki_page_tmpl *t);

typedef struct {
    jpki_lang lang;
    unsigned methods;           /* JPKI_METHOD_* (jpki.h) */
    const char *error;          /* a reason word, or NULL */
    const char *return_to;      /* where to go after the login, or NULL */
    const char *tls_url;        /* the TLS method's login URL */
    const char *device_url;     /* where the device flow starts */
    const char *assets;         /* the URL prefix of page.css, page.js */
    /* a device flow under way (a page without JavaScript): its QR code (a
     * data URL), its jpki: link, its code, and where the page refreshes
     * to; flow_qr NULL: none */
    const char *flow_qr;
    const char *flow_link;
    const char *flow_code;
    const char *poll_url;
} jpki_page_vars;

/* Writes the page (NUL-terminated) into out: its length, or 0 when it
 * does not fit in max bytes. */
size_t jpki_page_render(const jpki_page_tmpl *t, const jpki_page_vars *v,
                        char *out, size_t max);

/* The headers of every page the gate serves: a Content-Security-Policy
 * that allows nothing but the gate's own styles, scripts and requests (no
 * inline script, no third party, no framing), no caching, no referrer, no
 * type sniffing.  NULL-name-terminated. */
extern const jpki_header jpki_page_headers[];

#endif
