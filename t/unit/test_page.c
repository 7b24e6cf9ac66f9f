/* test_page.c - the login page (common/page.c): language, words, refusal
 * sentences, the template's grammar and its rendering. */
#include "page.h"
#include "tap.h"

#include <unistd.h>

#define LANG(s) jpki_page_lang((s), strlen(s))

static void test_lang(void)
{
    is_int(jpki_page_lang(NULL, 0), JPKI_LANG_JA, "no Accept-Language: Japanese");
    is_int(LANG("en"), JPKI_LANG_EN, "en");
    is_int(LANG("en-US,en;q=0.9"), JPKI_LANG_EN, "en-US counts as en");
    is_int(LANG("ja-JP,ja;q=0.9,en;q=0.8"), JPKI_LANG_JA, "ja first");
    is_int(LANG("fr,en;q=0.5,ja;q=0.4"), JPKI_LANG_EN, "the highest q of the supported");
    is_int(LANG("en;q=0.3, ja;q=0.7"), JPKI_LANG_JA, "q decides, not the order");
    is_int(LANG("en;q=0.5,ja;q=0.5"), JPKI_LANG_EN, "a tie: the first named");
    is_int(LANG("fr,de"), JPKI_LANG_JA, "nothing supported: Japanese");
    is_int(LANG("en;q=0"), JPKI_LANG_JA, "q=0 is not acceptable");
    is_int(LANG("*"), JPKI_LANG_JA, "*: the default");
    is_int(LANG("en;q=0.2,*;q=0.9"), JPKI_LANG_JA, "* over en by q");
    is_int(LANG("EN-gb"), JPKI_LANG_EN, "case does not count");
    is_int(LANG("eng,en;q=0.1"), JPKI_LANG_EN, "eng is not en, en is");
    is_int(LANG("en;q=abc"), JPKI_LANG_JA, "a malformed q: the range is skipped");
    is_int(LANG("en;q=1.000"), JPKI_LANG_EN, "q=1.000");
    is_int(LANG("en;q=0.001,ja;q=0.0001"), JPKI_LANG_EN,
           "three decimals at most (ja's fourth digit is malformed)");
    is_int(LANG(",,, ,en"), JPKI_LANG_EN, "empty ranges are skipped");
    {
        char buf[400];
        size_t i, n = 0;
        for (i = 0; i < 32; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "fr,");
        snprintf(buf + n, sizeof(buf) - n, "en");
        is_int(LANG(buf), JPKI_LANG_JA, "only 32 ranges are read (en is the 33rd)");
    }
    is_str(jpki_lang_tag(JPKI_LANG_JA), "ja", "tag ja");
    is_str(jpki_lang_tag(JPKI_LANG_EN), "en", "tag en");
}

static void test_words(void)
{
    const char *const *k;
    int all = 1;

    for (k = jpki_page_words; *k != NULL; k++)
        all &= jpki_page_word(*k, JPKI_LANG_JA) != NULL
               && jpki_page_word(*k, JPKI_LANG_EN) != NULL
               && strcmp(jpki_page_word(*k, JPKI_LANG_JA),
                         jpki_page_word(*k, JPKI_LANG_EN)) != 0;
    ok(all, "every word has a Japanese and an English text, not the same");
    ok(jpki_page_word("nope", JPKI_LANG_EN) == NULL, "an unknown key: NULL");

    is_str(jpki_page_error_key("account_not_mapped"), "err_not_enrolled", "not enrolled");
    is_str(jpki_page_error_key("cert_revoked"), "err_revoked", "revoked");
    is_str(jpki_page_error_key("cert_on_hold"), "err_on_hold", "on hold");
    is_str(jpki_page_error_key("cert_expired"), "err_expired", "card expired");
    is_str(jpki_page_error_key("revocation_unavailable"), "err_try_later", "try again later");
    is_str(jpki_page_error_key("busy"), "err_try_later", "busy: later");
    is_str(jpki_page_error_key("too_many_attempts"), "err_too_many", "too many attempts");
    is_str(jpki_page_error_key("session_idle_timeout"), "err_signed_out", "session ended");
    is_str(jpki_page_error_key("cross_origin"), "err_cross_origin", "cross origin");
    is_str(jpki_page_error_key("signature_invalid"), "err_failed", "others: failed");
    is_str(jpki_page_error_key("<script>"), "err_failed", "an unknown word: failed");
    ok(jpki_page_error_key(NULL) == NULL && jpki_page_error_key("ok") == NULL
       && jpki_page_error_key("") == NULL, "no refusal: no sentence");
}

static jpki_page_tmpl *parse(const char *text, char *err, size_t errlen)
{
    jpki_page_tmpl *t = NULL;

    err[0] = '\0';
    jpki_page_tmpl_parse(text, strlen(text), "t.html", &t, err, errlen);
    return t;
}

static void test_grammar(void)
{
    char err[256];
    jpki_page_tmpl *t;

    t = parse("<p>{{t:title}} {{lang}}{{#error}}{{error_text}}{{/error}}</p>", err, sizeof(err));
    ok(t != NULL, "a good template loads");
    jpki_page_tmpl_free(t);
    ok(parse("a\nb {{nope}}", err, sizeof(err)) == NULL, "an unknown value: refused");
    is_str(err, "login page template \"t.html\" line 2: unknown mark {{nope}}",
           "... with its line and the mark");
    ok(parse("{{t:nope}}", err, sizeof(err)) == NULL, "an unknown word: refused");
    ok(parse("{{#nope}}{{/nope}}", err, sizeof(err)) == NULL, "an unknown part: refused");
    ok(parse("x {{lang", err, sizeof(err)) == NULL, "{{ without }}: refused");
    ok(strstr(err, "{{ without }}") != NULL, "... says so");
    ok(parse("{{#tls}}x", err, sizeof(err)) == NULL, "a part not closed: refused");
    ok(strstr(err, "not closed") != NULL, "... says so");
    ok(parse("x{{/tls}}", err, sizeof(err)) == NULL, "a part closed, never opened: refused");
    ok(parse("{{#tls}}{{#device}}{{/tls}}{{/device}}", err, sizeof(err)) == NULL,
       "parts crossing: refused");
    ok(parse("{{#tls}}{{#tls}}{{/tls}}{{/tls}}", err, sizeof(err)) == NULL,
       "a part within itself: refused");
    t = parse("{{#tls}}{{#device}}both{{/device}}{{/tls}}", err, sizeof(err));
    ok(t != NULL, "nested different parts load");
    jpki_page_tmpl_free(t);
    {
        jpki_page_tmpl *u = NULL;
        jpki_err e = jpki_page_tmpl_parse("a\0b", 3, "t", &u, err, sizeof(err));
        ok(e != JPKI_OK && u == NULL, "a NUL byte: refused");
    }
    {
        size_t n = JPKI_PAGE_TMPL_MAX + 1;
        char *big = malloc(n + 1);
        jpki_page_tmpl *u = NULL;
        memset(big, 'a', n);
        big[n] = '\0';
        ok(jpki_page_tmpl_parse(big, n, "big", &u, err, sizeof(err)) == JPKI_ERR_TOO_LARGE,
           "a template over 64 KiB: refused");
        free(big);
    }
    {
        char path[] = "/tmp/jpki-page-XXXXXX";
        int fd = mkstemp(path);
        jpki_page_tmpl *u = NULL;
        const char *text = "<b>{{t:title}}</b>";
        ok(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text),
           "a template file");
        close(fd);
        ok(jpki_page_tmpl_load(path, &u, err, sizeof(err)) == JPKI_OK && u != NULL,
           "loads from a file");
        jpki_page_tmpl_free(u);
        unlink(path);
        ok(jpki_page_tmpl_load(path, &u, err, sizeof(err)) != JPKI_OK
           && strstr(err, "cannot be read") != NULL, "a missing file: refused, said");
    }
}

static void test_render(void)
{
    const jpki_page_tmpl *d = jpki_page_tmpl_default();
    jpki_page_vars v;
    char out[16384], err[256];
    jpki_page_tmpl *t;
    size_t n;

    ok(d != NULL && d == jpki_page_tmpl_default(), "the built-in template, once");
    memset(&v, 0, sizeof(v));
    v.lang = JPKI_LANG_EN;
    v.methods = JPKI_METHOD_TLS;
    v.tls_url = "/jpki/tls-login?return_to=%2Fapp%2F&x=1";
    v.assets = "/jpki/";
    v.return_to = "/app/\"><script>";
    n = jpki_page_render(d, &v, out, sizeof(out));
    ok(n > 0 && strlen(out) == n, "the built-in page renders");
    ok(strstr(out, "<html lang=\"en\">") != NULL, "lang=en");
    ok(strstr(out, "Sign in with the card reader of this computer") != NULL, "the TLS method");
    ok(strstr(out, "action=\"/jpki/tls-login?return_to=%2Fapp%2F&amp;x=1\"") != NULL,
       "its URL, escaped");
    ok(strstr(out, "m-device") == NULL, "no device method when it is off");
    ok(strstr(out, "role=\"alert\"") == NULL, "no error part without an error");
    ok(strstr(out, "<script>") == NULL, "no inline script, a value cannot make one");
    ok(strstr(out, "src=\"/jpki/page.js\"") != NULL, "the gate's own script");

    v.lang = JPKI_LANG_JA;
    v.methods = JPKI_METHOD_TLS | JPKI_METHOD_DEVICE;
    v.device_url = "/jpki/device";
    v.return_to = "/app/\"><script>";
    v.error = "cert_revoked";
    n = jpki_page_render(d, &v, out, sizeof(out));
    ok(n > 0, "renders with an error and both methods");
    ok(strstr(out, "<html lang=\"ja\">") != NULL, "lang=ja");
    ok(strstr(out, "失効しています") != NULL, "the refusal in Japanese");
    ok(strstr(out, "<code>cert_revoked</code>") != NULL, "its reason word");
    ok(strstr(out, "role=\"alert\"") != NULL, "announced to screen readers");
    ok(strstr(out, "value=\"/app/&quot;&gt;&lt;script&gt;\"") != NULL,
       "return_to escaped in an attribute");
    ok(strstr(out, "aria-live=\"polite\"") != NULL, "the waiting status is live");

    v.methods = 0;
    v.error = NULL;
    n = jpki_page_render(d, &v, out, sizeof(out));
    ok(n > 0 && strstr(out, jpki_page_word("none", JPKI_LANG_JA)) != NULL,
       "no method: says so");

    t = parse("{{#error}}E{{/error}}[{{error_code}}]", err, sizeof(err));
    v.error = "not-a-word\"<";
    n = jpki_page_render(t, &v, out, sizeof(out));
    is_str(out, "E[not-a-word&quot;&lt;]", "an unknown reason: shown escaped, sentence failed");
    ok(jpki_page_render(t, &v, out, 5) == 0, "does not fit: 0");
    jpki_page_tmpl_free(t);

    ok(strstr(jpki_page_headers[0].value, "script-src 'self'") != NULL
       && strstr(jpki_page_headers[0].value, "unsafe") == NULL
       && strstr(jpki_page_headers[0].value, "frame-ancestors 'none'") != NULL,
       "CSP: own scripts only, nothing unsafe, no framing");
}

int main(void)
{
    test_lang();
    test_words();
    test_grammar();
    test_render();
    return done_testing();
}
