/* page.c - the login page: language, words, refusal sentences, template
 * (see page.h). */
#include "page.h"

#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- language ------------------------------------------------------ */

#define LANG_RANGES_MAX 32

const char *jpki_lang_tag(jpki_lang lang)
{
    return lang == JPKI_LANG_EN ? "en" : "ja";
}

/* The language a range names: 0 ja, 1 en, 2 "*" (the default), -1 none. */
static int range_lang(const char *r, size_t n)
{
    size_t primary = 0;

    while (primary < n && r[primary] != '-')
        primary++;
    if (n == 1 && r[0] == '*')
        return 2;
    if (primary == 2 && strncasecmp(r, "ja", 2) == 0)
        return JPKI_LANG_JA;
    if (primary == 2 && strncasecmp(r, "en", 2) == 0)
        return JPKI_LANG_EN;
    return -1;
}

/* The q of a range's parameters (";q=0.5"), 1000 when absent, -1 when
 * malformed; in thousandths. */
static int range_q(const char *p, size_t n)
{
    size_t i = 0;
    int q = 0, digits = 0;

    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n)
        return 1000;
    if (p[i] != ';')
        return -1;
    i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (n - i < 3 || (p[i] != 'q' && p[i] != 'Q') || p[i + 1] != '=')
        return -1;
    i += 2;
    if (p[i] == '1') {
        q = 1000;
        i++;
        if (i < n && p[i] == '.')
            for (i++; i < n && p[i] == '0' && digits < 3; i++, digits++)
                ;
    } else if (p[i] == '0') {
        i++;
        if (i < n && p[i] == '.') {
            int scale = 100;
            for (i++; i < n && p[i] >= '0' && p[i] <= '9' && digits < 3;
                 i++, digits++, scale /= 10)
                q += (p[i] - '0') * scale;
        }
    } else {
        return -1;
    }
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i == n ? q : -1;
}

jpki_lang jpki_page_lang(const char *accept, size_t len)
{
    size_t i = 0, start, end, tag;
    int best = JPKI_LANG_JA, best_q = 0, ranges = 0, lang, q;

    while (accept != NULL && i < len && ranges < LANG_RANGES_MAX) {
        while (i < len && (accept[i] == ' ' || accept[i] == '\t'
                           || accept[i] == ','))
            i++;
        start = i;
        while (i < len && accept[i] != ',')
            i++;
        end = i;
        if (end == start)
            continue;
        ranges++;
        tag = start;
        while (tag < end && accept[tag] != ';' && accept[tag] != ' '
               && accept[tag] != '\t')
            tag++;
        lang = range_lang(accept + start, tag - start);
        q = range_q(accept + tag, end - tag);
        if (lang < 0 || q <= best_q)
            continue;
        best_q = q;
        best = lang == 2 ? JPKI_LANG_JA : lang;
    }
    return (jpki_lang)best;
}

/* ---- words --------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *text[2];        /* ja, en */
} page_word;

static const page_word words[] = {
    {"title", {"マイナンバーカードでログイン",
               "Sign in with your My Number Card"}},
    {"intro", {"このサイトには、マイナンバーカードの利用者証明用電子証明書でログインします。"
               "暗証番号（数字4桁）が必要です。",
               "This site signs you in with the user-authentication "
               "certificate of your My Number Card. You will need its "
               "4-digit PIN."}},
    {"methods", {"ログインの方法", "How to sign in"}},
    {"tls", {"このパソコンのカードリーダーでログイン",
             "Sign in with the card reader of this computer"}},
    {"tls_hint", {"カードをカードリーダーに置いてから押してください。"
                  "ブラウザーが証明書の選択と暗証番号の入力を求めます。",
                  "Place the card on the reader, then press the button. "
                  "Your browser asks you to choose the certificate and to "
                  "enter the PIN."}},
    {"device", {"スマートフォンまたはログイン用アプリでログイン",
                "Sign in with your phone or a signing app"}},
    {"device_hint", {"QRコードをスマートフォンで読み取るか、"
                     "このパソコンのログイン用アプリでリンクを開いてください。"
                     "アプリに表示されるサイトとコードが、この画面と同じことを確かめてください。",
                     "Scan the QR code with your phone, or open the link "
                     "with the signing app of this computer. Check that "
                     "the app shows this site and the code shown here."}},
    {"device_start", {"QRコードを表示", "Show the QR code"}},
    {"tls_start", {"カードリーダーでログイン", "Sign in with the card reader"}},
    {"qr_alt", {"ログイン用のQRコード。スマートフォンのログイン用アプリで読み取ってください。",
                "QR code for signing in: scan it with the signing app of "
                "your phone."}},
    {"code_label", {"確認コード：", "Check code:"}},
    {"open_app", {"このパソコンのログイン用アプリで開く",
                  "Open with the signing app of this computer"}},
    {"err_flow", {"QRコードの有効期限が切れたか、すでに使われています。もう一度表示してください。",
                  "The QR code has expired or was already used. Show a new "
                  "one."}},
    {"err_tls", {"カードの証明書が送られませんでした。カードリーダーとカードを確かめて、もう一度お試しください。",
                 "Your browser did not send the card's certificate. Check "
                 "the reader and the card, and try again."}},
    {"waiting", {"署名を待っています…", "Waiting for the signature…"}},
    {"none", {"このサイトでは、現在ログインの方法が設定されていません。",
              "This site has no way to sign in set up at the moment."}},
    {"error_title", {"ログインできませんでした", "You could not sign in"}},
    {"err_not_enrolled",
     {"このカードはこのサイトのアカウントに登録されていません。",
      "This card is not registered with an account of this site."}},
    {"err_revoked", {"このカードの電子証明書は失効しています。",
                     "The certificate of this card has been revoked."}},
    {"err_on_hold",
     {"このカードの電子証明書は一時停止されています（紛失の届出など）。",
      "The certificate of this card is suspended (for example, the card "
      "was reported lost)."}},
    {"err_expired",
     {"このカードの電子証明書は有効期限が切れています。市区町村の窓口で更新してください。",
      "The certificate of this card has expired. Renew it at your "
      "municipal office."}},
    {"err_try_later",
     {"現在、証明書を確認できません。しばらくしてからもう一度お試しください。",
      "The certificate cannot be checked at the moment. Please try again "
      "later."}},
    {"err_too_many",
     {"試行回数が多すぎます。しばらくしてからもう一度お試しください。",
      "Too many attempts. Please wait a while and try again."}},
    {"err_signed_out",
     {"ログインの有効期限が切れました。もう一度ログインしてください。",
      "Your session has ended. Please sign in again."}},
    {"err_cross_origin",
     {"別のサイトからのログインは受け付けられません。このサイトから操作してください。",
      "A sign-in started from another site is refused. Please use this "
      "site's page."}},
    {"err_failed",
     {"ログインできませんでした。もう一度お試しください。",
      "Signing in failed. Please try again."}},
    {"err_issuer",
     {"この種類の証明書（カードまたはスマートフォン）は、このページでは使えません。",
      "This kind of certificate (card or phone) cannot be used on this "
      "page."}},
    {"err_code", {"理由", "Reason"}},
    {NULL, {NULL, NULL}}
};

const char *const jpki_page_words[] = {
    "title", "intro", "methods", "tls", "tls_hint", "device", "device_hint",
    "device_start", "tls_start", "qr_alt", "code_label", "open_app",
    "err_flow", "err_tls", "waiting", "none", "error_title",
    "err_not_enrolled",
    "err_revoked", "err_on_hold", "err_expired", "err_try_later",
    "err_too_many", "err_signed_out", "err_cross_origin", "err_failed",
    "err_issuer", "err_code", NULL
};

static const page_word *word_of(const char *key, size_t n)
{
    const page_word *w;

    for (w = words; w->key != NULL; w++)
        if (strlen(w->key) == n && memcmp(w->key, key, n) == 0)
            return w;
    return NULL;
}

const char *jpki_page_word(const char *key, jpki_lang lang)
{
    const page_word *w = key != NULL ? word_of(key, strlen(key)) : NULL;

    return w != NULL ? w->text[lang == JPKI_LANG_EN] : NULL;
}

const char *jpki_page_error_key(const char *reason)
{
    static const struct { const char *reason, *key; } map[] = {
        {"account_not_mapped", "err_not_enrolled"},
        {"account_not_allowed", "err_not_enrolled"},
        {"cert_revoked", "err_revoked"},
        {"cert_on_hold", "err_on_hold"},
        {"cert_expired", "err_expired"},
        {"revocation_unavailable", "err_try_later"},
        {"cert_status_unknown", "err_try_later"},
        {"store_error", "err_try_later"},
        {"store_full", "err_try_later"},
        {"timeout", "err_try_later"},
        {"io_error", "err_try_later"},
        {"busy", "err_try_later"},
        {"too_many_attempts", "err_too_many"},
        {"session_expired", "err_signed_out"},
        {"session_idle_timeout", "err_signed_out"},
        {"session_logged_out", "err_signed_out"},
        {"cross_origin", "err_cross_origin"},
        {"issuer_not_allowed", "err_issuer"},
        {"flow_unknown", "err_flow"},
        {"flow_mismatch", "err_flow"},
        {"no_client_cert", "err_tls"},
        {"tls_version", "err_tls"},
        {NULL, NULL}
    };
    size_t i;

    if (reason == NULL || reason[0] == '\0' || strcmp(reason, "ok") == 0)
        return NULL;
    for (i = 0; map[i].reason != NULL; i++)
        if (strcmp(map[i].reason, reason) == 0)
            return map[i].key;
    return "err_failed";
}

/* ---- the template -------------------------------------------------- */

typedef enum { P_TEXT, P_VAR, P_WORD, P_OPEN, P_CLOSE } piece_kind;

typedef enum {
    V_LANG, V_RETURN_TO, V_TLS_URL, V_DEVICE_URL, V_ASSETS, V_ERROR_CODE,
    V_ERROR_TEXT, V_CODE, V_QR, V_LINK, V_POLL_URL, V__COUNT
} var_id;

typedef enum {
    S_ERROR, S_TLS, S_DEVICE, S_NONE, S_FLOW, S_NOFLOW, S__COUNT
} section_id;

static const char *const var_names[V__COUNT] = {
    "lang", "return_to", "tls_url", "device_url", "assets", "error_code",
    "error_text", "code", "qr", "link", "poll_url"
};
static const char *const section_names[S__COUNT] = {
    "error", "tls", "device", "none", "flow", "noflow"
};

typedef struct {
    piece_kind kind;
    int id;                     /* var_id, section_id */
    const char *text;           /* P_TEXT: into the template's copy */
    size_t len;
    const page_word *word;      /* P_WORD */
    size_t end;                 /* P_OPEN: the index of its P_CLOSE */
} piece;

struct jpki_page_tmpl {
    char *text;
    piece *p;
    size_t n;
};

static int name_in(const char *const *names, size_t count, const char *s,
                   size_t n)
{
    size_t i;

    for (i = 0; i < count; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return (int)i;
    return -1;
}

static unsigned line_of(const char *text, const char *at)
{
    unsigned line = 1;

    for (; text < at; text++)
        line += *text == '\n';
    return line;
}

/* One mark, text between {{ and }} (n bytes): the piece, or -1 and err. */
static int mark_piece(const char *m, size_t n, piece *pc)
{
    memset(pc, 0, sizeof(*pc));
    if (n > 2 && memcmp(m, "t:", 2) == 0) {
        pc->kind = P_WORD;
        pc->word = word_of(m + 2, n - 2);
        return pc->word != NULL ? 0 : -1;
    }
    if (n > 1 && (m[0] == '#' || m[0] == '/')) {
        pc->kind = m[0] == '#' ? P_OPEN : P_CLOSE;
        pc->id = name_in(section_names, S__COUNT, m + 1, n - 1);
        return pc->id >= 0 ? 0 : -1;
    }
    pc->kind = P_VAR;
    pc->id = name_in(var_names, V__COUNT, m, n);
    return pc->id >= 0 ? 0 : -1;
}

static void tmpl_fail(char *err, size_t errlen, const char *name,
                      const char *text, const char *at, const char *why,
                      const char *mark, size_t mlen)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "login page template \"%s\" line %u: %s%s%.*s%s",
                 name, line_of(text, at), why, mark ? " {{" : "",
                 mark ? (int)(mlen > 40 ? 40 : mlen) : 0, mark ? mark : "",
                 mark ? "}}" : "");
}

/* Checks that the parts open and close in order: each P_OPEN gets the
 * index of its P_CLOSE. */
static int match_sections(jpki_page_tmpl *t, const char *name, char *err,
                          size_t errlen)
{
    size_t stack[16], depth = 0, i;

    for (i = 0; i < t->n; i++) {
        piece *pc = &t->p[i];
        if (pc->kind == P_OPEN) {
            size_t k;
            for (k = 0; k < depth; k++)
                if (t->p[stack[k]].id == pc->id)
                    break;
            if (depth == 16 || k < depth) {
                tmpl_fail(err, errlen, name, t->text, pc->text,
                          depth == 16 ? "parts nested too deep at"
                                      : "a part within itself:",
                          section_names[pc->id], strlen(section_names[pc->id]) + 0);
                return -1;
            }
            stack[depth++] = i;
        } else if (pc->kind == P_CLOSE) {
            if (depth == 0 || t->p[stack[depth - 1]].id != pc->id) {
                tmpl_fail(err, errlen, name, t->text, pc->text,
                          "a part closed that is not open:", NULL, 0);
                return -1;
            }
            t->p[stack[--depth]].end = i;
        }
    }
    if (depth > 0) {
        piece *open = &t->p[stack[depth - 1]];
        tmpl_fail(err, errlen, name, t->text, open->text,
                  "a part not closed:", NULL, 0);
        return -1;
    }
    return 0;
}

jpki_err jpki_page_tmpl_parse(const char *text, size_t len, const char *name,
                              jpki_page_tmpl **out, char *err, size_t errlen)
{
    jpki_page_tmpl *t;
    const char *p, *end, *open, *close;
    size_t cap;

    *out = NULL;
    if (len > JPKI_PAGE_TMPL_MAX) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "login page template \"%s\": larger than "
                     "%d bytes", name, JPKI_PAGE_TMPL_MAX);
        return JPKI_ERR_TOO_LARGE;
    }
    if (memchr(text, '\0', len) != NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "login page template \"%s\": a NUL byte",
                     name);
        return JPKI_ERR_INVALID;
    }
    t = calloc(1, sizeof(*t));
    cap = 2 * len / 4 + 4;          /* a mark takes at least 4 bytes */
    if (t == NULL || (t->text = malloc(len + 1)) == NULL
        || (t->p = calloc(cap, sizeof(piece))) == NULL) {
        jpki_page_tmpl_free(t);
        return JPKI_ERR_NOMEM;
    }
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    p = t->text;
    end = t->text + len;
    while (p < end) {
        open = strstr(p, "{{");
        if (open == NULL)
            open = end;
        if (open > p) {
            t->p[t->n].kind = P_TEXT;
            t->p[t->n].text = p;
            t->p[t->n++].len = (size_t)(open - p);
        }
        if (open == end)
            break;
        close = strstr(open + 2, "}}");
        if (close == NULL) {
            tmpl_fail(err, errlen, name, t->text, open, "{{ without }}",
                      NULL, 0);
            jpki_page_tmpl_free(t);
            return JPKI_ERR_INVALID;
        }
        if (mark_piece(open + 2, (size_t)(close - open - 2), &t->p[t->n])
            != 0) {
            tmpl_fail(err, errlen, name, t->text, open, "unknown mark",
                      open + 2, (size_t)(close - open - 2));
            jpki_page_tmpl_free(t);
            return JPKI_ERR_INVALID;
        }
        t->p[t->n].text = open;
        t->n++;
        p = close + 2;
    }
    if (match_sections(t, name, err, errlen) != 0) {
        jpki_page_tmpl_free(t);
        return JPKI_ERR_INVALID;
    }
    *out = t;
    return JPKI_OK;
}

jpki_err jpki_page_tmpl_load(const char *path, jpki_page_tmpl **out,
                             char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    jpki_err e;

    *out = NULL;
    e = jpki_load_file(path, JPKI_PAGE_TMPL_MAX, &buf, &len);
    if (e != JPKI_OK) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "login page template \"%s\": %s", path,
                     e == JPKI_ERR_TOO_LARGE ? "larger than 64 KiB"
                                             : "cannot be read");
        return e;
    }
    e = jpki_page_tmpl_parse((const char *)buf, len, path, out, err, errlen);
    free(buf);
    return e;
}

void jpki_page_tmpl_free(jpki_page_tmpl *t)
{
    if (t == NULL)
        return;
    free(t->text);
    free(t->p);
    free(t);
}

/* The built-in page: the methods the site turned on, the refusal's
 * sentence, the device flow's place (page.js fills it); works without
 * JavaScript for the TLS method. */
static const char default_text[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"{{lang}}\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>{{t:title}}</title>\n"
    "{{#flow}}<meta http-equiv=\"refresh\" content=\"3;url={{poll_url}}\">\n"
    "{{/flow}}"
    "<link rel=\"stylesheet\" href=\"{{assets}}page.css\">\n"
    "<script src=\"{{assets}}page.js\" defer></script>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "<h1>{{t:title}}</h1>\n"
    "{{#error}}<div class=\"error\" role=\"alert\">\n"
    "<h2>{{t:error_title}}</h2>\n"
    "<p>{{error_text}}</p>\n"
    "<p class=\"code\">{{t:err_code}}: <code>{{error_code}}</code></p>\n"
    "</div>\n{{/error}}"
    "<p>{{t:intro}}</p>\n"
    "<section aria-labelledby=\"methods\">\n"
    "<h2 id=\"methods\">{{t:methods}}</h2>\n"
    "{{#tls}}<div class=\"method\">\n"
    "<h3 id=\"m-tls\">{{t:tls}}</h3>\n"
    "<p id=\"m-tls-hint\">{{t:tls_hint}}</p>\n"
    "<form method=\"post\" action=\"{{tls_url}}\">\n"
    "<input type=\"hidden\" name=\"return_to\" value=\"{{return_to}}\">\n"
    "<button type=\"submit\" aria-describedby=\"m-tls-hint\">{{t:tls_start}}"
    "</button>\n"
    "</form>\n"
    "</div>\n{{/tls}}"
    "{{#device}}<div class=\"method\" id=\"device\" "
    "data-start=\"{{device_url}}\" data-return=\"{{return_to}}\" "
    "data-qr-alt=\"{{t:qr_alt}}\" data-code-label=\"{{t:code_label}}\" "
    "data-link-text=\"{{t:open_app}}\" data-expired=\"{{t:err_flow}}\">\n"
    "<h3 id=\"m-device\">{{t:device}}</h3>\n"
    "<p id=\"m-device-hint\">{{t:device_hint}}</p>\n"
    "{{#noflow}}<form method=\"post\" action=\"{{device_url}}\">\n"
    "<input type=\"hidden\" name=\"return_to\" value=\"{{return_to}}\">\n"
    "<button type=\"submit\" aria-describedby=\"m-device-hint\">"
    "{{t:device_start}}</button>\n"
    "</form>\n{{/noflow}}"
    "{{#flow}}<div class=\"flow\">\n"
    "<img class=\"qr\" src=\"{{qr}}\" width=\"240\" height=\"240\" "
    "alt=\"{{t:qr_alt}}\">\n"
    "<p>{{t:code_label}} <strong class=\"code\">{{code}}</strong></p>\n"
    "<p><a href=\"{{link}}\">{{t:open_app}}</a></p>\n"
    "<p>{{t:waiting}}</p>\n"
    "</div>\n{{/flow}}"
    "<p class=\"status\" role=\"status\" aria-live=\"polite\" "
    "data-waiting=\"{{t:waiting}}\"></p>\n"
    "</div>\n{{/device}}"
    "{{#none}}<p>{{t:none}}</p>\n{{/none}}"
    "</section>\n"
    "</main>\n"
    "</body>\n"
    "</html>\n";

static jpki_page_tmpl *default_tmpl;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_parse(void)
{
    /* the built-in text is the project's: it always parses (a unit test
     * says so), and lives as long as the process */
    if (jpki_page_tmpl_parse(default_text, sizeof(default_text) - 1,
                             "built-in", &default_tmpl, NULL, 0) != JPKI_OK)
        abort();
}

const jpki_page_tmpl *jpki_page_tmpl_default(void)
{
    pthread_once(&default_once, default_parse);
    return default_tmpl;
}

/* ---- rendering ----------------------------------------------------- */

typedef struct {
    char *out;
    size_t max, len;
    int full;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    if (s->full || n >= s->max - s->len) {
        s->full = 1;
        return;
    }
    memcpy(s->out + s->len, p, n);
    s->len += n;
}

static void put_escaped(sink *s, const char *p)
{
    for (; p != NULL && *p; p++) {
        switch (*p) {
        case '&': put(s, "&amp;", 5); break;
        case '<': put(s, "&lt;", 4); break;
        case '>': put(s, "&gt;", 4); break;
        case '"': put(s, "&quot;", 6); break;
        case '\'': put(s, "&#39;", 5); break;
        default: put(s, p, 1);
        }
    }
}

static const char *var_value(const jpki_page_vars *v, int id)
{
    const char *key;

    switch ((var_id)id) {
    case V_LANG: return jpki_lang_tag(v->lang);
    case V_RETURN_TO: return v->return_to;
    case V_TLS_URL: return v->tls_url;
    case V_DEVICE_URL: return v->device_url;
    case V_ASSETS: return v->assets;
    case V_ERROR_CODE: return jpki_page_error_key(v->error) ? v->error : NULL;
    case V_ERROR_TEXT:
        key = jpki_page_error_key(v->error);
        return key != NULL ? jpki_page_word(key, v->lang) : NULL;
    case V_CODE: return v->flow_code;
    case V_QR: return v->flow_qr;
    case V_LINK: return v->flow_link;
    case V_POLL_URL: return v->poll_url;
    default: return NULL;
    }
}

static int section_on(const jpki_page_vars *v, int id)
{
    switch ((section_id)id) {
    case S_ERROR: return jpki_page_error_key(v->error) != NULL;
    case S_TLS: return (v->methods & JPKI_METHOD_TLS) != 0;
    case S_DEVICE: return (v->methods & JPKI_METHOD_DEVICE) != 0;
    case S_NONE: return (v->methods & (JPKI_METHOD_TLS | JPKI_METHOD_DEVICE)) == 0;
    case S_FLOW: return v->flow_qr != NULL;
    case S_NOFLOW: return v->flow_qr == NULL;
    default: return 0;
    }
}

size_t jpki_page_render(const jpki_page_tmpl *t, const jpki_page_vars *v,
                        char *out, size_t max)
{
    sink s = {out, max, 0, 0};
    size_t i;

    if (t == NULL || v == NULL || out == NULL || max == 0)
        return 0;
    for (i = 0; i < t->n && !s.full; i++) {
        const piece *pc = &t->p[i];
        switch (pc->kind) {
        case P_TEXT: put(&s, pc->text, pc->len); break;
        case P_VAR: put_escaped(&s, var_value(v, pc->id)); break;
        case P_WORD: put_escaped(&s, pc->word->text[v->lang == JPKI_LANG_EN]);
            break;
        case P_OPEN:
            if (!section_on(v, pc->id))
                i = pc->end;        /* past the part */
            break;
        case P_CLOSE: break;
        }
    }
    if (s.full)
        return 0;
    out[s.len] = '\0';
    return s.len;
}

const jpki_header jpki_page_headers[] = {
    {"Content-Security-Policy",
     "default-src 'none'; style-src 'self'; script-src 'self'; "
     "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
     "frame-ancestors 'none'; base-uri 'none'"},
    {"Cache-Control", "no-store"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {NULL, NULL}
};
