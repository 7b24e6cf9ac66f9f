/* form.c - bounded parsers for login bodies (flat JSON object or
 * application/x-www-form-urlencoded) and the Cookie header. */
#include "internal.h"
#include "form.h"

#include <string.h>

static int field_index(const jpki_form_field *f, size_t n, const char *k,
                       size_t kl)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (strlen(f[i].name) == kl && memcmp(f[i].name, k, kl) == 0)
            return (int)i;
    return -1;
}

static jpki_err field_set(jpki_form_field *f, char *buf, size_t len)
{
    if (f->value != NULL)
        return JPKI_ERR_BAD_REQUEST;        /* duplicate field */
    if (len > f->max)
        return JPKI_ERR_TOO_LARGE;
    f->value = buf;
    f->len = len;
    return JPKI_OK;
}

/* ---- JSON: one object of string members; other value types skipped
 * only when they are scalars (numbers, true, false, null). ---------- */

typedef struct {
    const uint8_t *p, *end;
    char *out;                  /* scratch, as large as the body */
} jcur;

static void ws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
                             || *c->p == '\r'))
        c->p++;
}

static int hex4(const uint8_t *p, unsigned *v)
{
    int i;
    *v = 0;
    for (i = 0; i < 4; i++) {
        uint8_t ch = p[i];
        *v <<= 4;
        if (ch >= '0' && ch <= '9') *v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') *v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') *v |= ch - 'A' + 10;
        else return 0;
    }
    return 1;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* The characters that end a run inside a JSON string: controls, '"' and
 * the backslash. */
static const uint8_t jspecial[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, ['\\'] = 1
};

/* Parses a string at c->p (on the opening quote) into c->out. */
static jpki_err jstring(jcur *c, char **s, size_t *len)
{
    char *o = c->out;
    unsigned cp, lo;

    if (c->p >= c->end || *c->p != '"')
        return JPKI_ERR_BAD_REQUEST;
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        uint8_t ch;
        const uint8_t *run = c->p;
        /* a run of plain characters copied at once */
        while (c->p < c->end && !jspecial[*c->p])
            c->p++;
        if (c->p > run) {
            memcpy(o, run, (size_t)(c->p - run));
            o += c->p - run;
            continue;
        }
        ch = *c->p++;
        if (ch < 0x20)
            return JPKI_ERR_BAD_REQUEST;
        if (ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        if (c->p >= c->end)
            return JPKI_ERR_BAD_REQUEST;
        ch = *c->p++;
        switch (ch) {
        case '"': case '\\': case '/': *o++ = (char)ch; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (c->end - c->p < 4 || !hex4(c->p, &cp) || cp == 0)
                return JPKI_ERR_BAD_REQUEST;
            c->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return JPKI_ERR_BAD_REQUEST;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u'
                    || !hex4(c->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return JPKI_ERR_BAD_REQUEST;
                c->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            o += utf8_put(o, cp);    /* never longer than the escape */
            break;
        default:
            return JPKI_ERR_BAD_REQUEST;
        }
    }
    if (c->p >= c->end)
        return JPKI_ERR_BAD_REQUEST;
    c->p++;
    *s = c->out;
    *len = (size_t)(o - c->out);
    *o++ = '\0';
    c->out = o;
    return JPKI_OK;
}

static jpki_err jscalar(jcur *c)
{
    const uint8_t *st = c->p;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '-'
                             || *c->p == '+' || *c->p == '.' || *c->p == 'e'
                             || *c->p == 'E' || (*c->p >= 'a' && *c->p <= 'z')))
        c->p++;
    if (c->p == st)
        return JPKI_ERR_BAD_REQUEST;         /* objects, arrays: refused */
    if (!(c->p - st == 4 && memcmp(st, "true", 4) == 0)
        && !(c->p - st == 5 && memcmp(st, "false", 5) == 0)
        && !(c->p - st == 4 && memcmp(st, "null", 4) == 0)
        && !((*st >= '0' && *st <= '9') || *st == '-'))
        return JPKI_ERR_BAD_REQUEST;
    return JPKI_OK;
}

/* A JSON number (RFC 8259 grammar); *is_int when it has no fraction or
 * exponent and at most 18 digits, its value in *v. */
static jpki_err jnumber(jcur *c, int *is_int, long long *v)
{
    const uint8_t *d;
    int neg = 0;

    *is_int = 1;
    *v = 0;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return JPKI_ERR_BAD_REQUEST;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
        return JPKI_ERR_BAD_REQUEST;             /* a leading zero */
    for (d = c->p; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++)
        if (c->p - d < 18)
            *v = *v * 10 + (*c->p - '0');
    if (c->p - d > 18)
        *is_int = 0;
    if (c->p < c->end && *c->p == '.') {
        *is_int = 0;
        if (++c->p >= c->end || *c->p < '0' || *c->p > '9')
            return JPKI_ERR_BAD_REQUEST;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        *is_int = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return JPKI_ERR_BAD_REQUEST;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (neg)
        *v = -*v;
    return JPKI_OK;
}

/* Any JSON value, checked and skipped (its strings decoded in scratch,
 * which is given back), nested at most JPKI_JSON_DEPTH deep. */
static jpki_err jskip(jcur *c, int depth)
{
    static const char *const lits[] = {"true", "false", "null"};
    char *mark = c->out, *s;
    size_t l, i;
    long long v;
    jpki_err e;
    int is_int;
    uint8_t close;

    ws(c);
    if (c->p >= c->end || depth > JPKI_JSON_DEPTH)
        return JPKI_ERR_BAD_REQUEST;
    if (*c->p == '"') {
        e = jstring(c, &s, &l);
        c->out = mark;
        return e;
    }
    if (*c->p == '{' || *c->p == '[') {
        close = *c->p++ == '{' ? '}' : ']';
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return JPKI_OK;
        }
        for (;;) {
            if (close == '}') {
                ws(c);
                if ((e = jstring(c, &s, &l)) != JPKI_OK)
                    return e;
                c->out = mark;
                ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return JPKI_ERR_BAD_REQUEST;
            }
            if ((e = jskip(c, depth + 1)) != JPKI_OK)
                return e;
            ws(c);
            if (c->p >= c->end)
                return JPKI_ERR_BAD_REQUEST;
            if (*c->p == close) {
                c->p++;
                return JPKI_OK;
            }
            if (*c->p++ != ',')
                return JPKI_ERR_BAD_REQUEST;
        }
    }
    for (i = 0; i < 3; i++) {
        l = strlen(lits[i]);
        if ((size_t)(c->end - c->p) >= l && memcmp(c->p, lits[i], l) == 0) {
            c->p += l;
            return JPKI_OK;
        }
    }
    return jnumber(c, &is_int, &v);
}

/* An integer field: its text kept in scratch, its value in f->num. */
static jpki_err jint(jcur *c, jpki_form_field *f)
{
    const uint8_t *st = c->p;
    size_t n;
    jpki_err e;
    int is_int;

    if ((e = jnumber(c, &is_int, &f->num)) != JPKI_OK || !is_int)
        return JPKI_ERR_BAD_REQUEST;
    n = (size_t)(c->p - st);
    if ((e = field_set(f, c->out, n)) != JPKI_OK)
        return e;
    memcpy(c->out, st, n);
    c->out[n] = '\0';
    c->out += n + 1;
    return JPKI_OK;
}

/* One member's value: a field's (of its kind), or skipped: scalars only
 * in a login body, any value in an answer. */
static jpki_err jmember(jcur *c, jpki_form_field *f, int answer)
{
    char *mark = c->out, *v;
    size_t vl;
    jpki_err e;

    if (c->p < c->end && *c->p == '"' && (f == NULL
                                          || f->kind == JPKI_FORM_STRING)) {
        if ((e = jstring(c, &v, &vl)) != JPKI_OK)
            return e;
        if (f != NULL)
            return field_set(f, v, vl);
        if (answer)
            c->out = mark;
        return JPKI_OK;
    }
    if (f != NULL) {                /* known field, not of its kind */
        if (answer && f->kind == JPKI_FORM_INT)
            return jint(c, f);
        return JPKI_ERR_BAD_REQUEST;
    }
    return answer ? jskip(c, 1) : jscalar(c);
}

static jpki_err json_object(const uint8_t *body, size_t len, char *scratch,
                            jpki_form_field *f, size_t n, int answer)
{
    jcur c = {body, body + len, scratch};
    char *k;
    size_t kl;
    jpki_err e;
    int first = 1, i;

    ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return JPKI_ERR_BAD_REQUEST;
    for (;;) {
        ws(&c);
        if (c.p < c.end && *c.p == '}' && first) {
            c.p++;
            break;
        }
        if ((e = jstring(&c, &k, &kl)) != JPKI_OK)
            return e;
        ws(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return JPKI_ERR_BAD_REQUEST;
        ws(&c);
        i = field_index(f, n, k, kl);
        e = jmember(&c, i >= 0 ? &f[i] : NULL, answer);
        if (e != JPKI_OK)
            return e == JPKI_ERR_TOO_LARGE ? e : JPKI_ERR_BAD_REQUEST;
        first = 0;
        ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        return JPKI_ERR_BAD_REQUEST;
    }
    ws(&c);
    return c.p == c.end ? JPKI_OK : JPKI_ERR_BAD_REQUEST;
}

jpki_err jpki_form_parse_json(const uint8_t *body, size_t len, char *scratch,
                              jpki_form_field *f, size_t n)
{
    return json_object(body, len, scratch, f, n, 0);
}

jpki_err jpki_form_parse_answer(const uint8_t *body, size_t len,
                                char *scratch, jpki_form_field *f, size_t n)
{
    return json_object(body, len, scratch, f, n, 1);
}

/* ---- application/x-www-form-urlencoded ---------------------------- */

static int unhex1(uint8_t ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static jpki_err url_decode(const uint8_t *s, size_t len, char *o,
                           size_t *olen)
{
    size_t i, n = 0;
    for (i = 0; i < len; i++) {
        if (s[i] == '+') {
            o[n++] = ' ';
        } else if (s[i] == '%') {
            int h, l;
            if (i + 2 >= len || (h = unhex1(s[i + 1])) < 0
                || (l = unhex1(s[i + 2])) < 0 || (h == 0 && l == 0))
                return JPKI_ERR_BAD_REQUEST;
            o[n++] = (char)(h << 4 | l);
            i += 2;
        } else if (s[i] == '\0') {
            return JPKI_ERR_BAD_REQUEST;    /* raw NUL, as %00 above */
        } else {
            o[n++] = (char)s[i];
        }
    }
    o[n] = '\0';
    *olen = n;
    return JPKI_OK;
}

jpki_err jpki_form_parse_urlencoded(const uint8_t *body, size_t len,
                                    char *scratch, jpki_form_field *f,
                                    size_t n)
{
    const uint8_t *p = body, *end = body + len;
    char *o = scratch;
    jpki_err e;

    while (p < end) {
        const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
        const uint8_t *pe = amp ? amp : end, *eq;
        char *k, *v;
        size_t kl, vl;
        int i;

        eq = memchr(p, '=', (size_t)(pe - p));
        if (eq == NULL)
            return JPKI_ERR_BAD_REQUEST;
        k = o;
        if ((e = url_decode(p, (size_t)(eq - p), k, &kl)) != JPKI_OK)
            return e;
        o += kl + 1;
        v = o;
        if ((e = url_decode(eq + 1, (size_t)(pe - eq - 1), v, &vl)) != JPKI_OK)
            return e;
        o += vl + 1;
        i = field_index(f, n, k, kl);
        if (i >= 0 && (e = field_set(&f[i], v, vl)) != JPKI_OK)
            return e;
        p = amp ? amp + 1 : end;
    }
    return JPKI_OK;
}

/* ---- Cookie header ------------------------------------------------ */

/* The next item of a Cookie header from i: [*s, *e), without the blanks
 * and ';' around it (a quoted value is not special: browsers send none
 * with ';' inside); returns the index after it.  *s == len: none left. */
static size_t cookie_item(const char *hdr, size_t len, size_t i, size_t *s,
                          size_t *e)
{
    while (i < len && (hdr[i] == ' ' || hdr[i] == ';' || hdr[i] == '\t'))
        i++;
    *s = i;
    while (i < len && hdr[i] != ';')
        i++;
    *e = i;
    while (*e > *s && (hdr[*e - 1] == ' ' || hdr[*e - 1] == '\t'))
        (*e)--;
    return i;
}

int jpki_cookie_find(const char *hdr, size_t len, const char *name,
                     const char **val, size_t *vlen)
{
    size_t nl = strlen(name), i = 0, s, e;

    while ((i = cookie_item(hdr, len, i, &s, &e)), s < len) {
        if (e - s > nl && hdr[s + nl] == '=' && memcmp(hdr + s, name, nl) == 0) {
            *val = hdr + s + nl + 1;
            *vlen = e - s - nl - 1;
            if (*vlen >= 2 && (*val)[0] == '"' && (*val)[*vlen - 1] == '"') {
                (*val)++;
                *vlen -= 2;
            }
            return 1;
        }
    }
    return 0;
}

size_t jpki_cookie_strip(const char *hdr, size_t len, const char *name,
                         char *out, size_t *outlen)
{
    size_t nl = strlen(name), i = 0, o = 0, removed = 0, s, e, k;
    size_t sep = 0, sep_end = 0;        /* after the last item kept */
    int kept = 0, open_sep = 0;

    while ((i = cookie_item(hdr, len, i, &s, &e)), s < len) {
        if (open_sep) {                 /* the separator ends here */
            sep_end = s;
            open_sep = 0;
        }
        /* the name: before '=', blanks before '=' ignored */
        for (k = s; k < e && hdr[k] != '='; k++)
            ;
        if (k < e) {
            while (k > s && (hdr[k - 1] == ' ' || hdr[k - 1] == '\t'))
                k--;
            if (nl > 0 && k - s == nl && memcmp(hdr + s, name, nl) == 0) {
                removed++;
                continue;
            }
        }
        if (kept) {
            memcpy(out + o, hdr + sep, sep_end - sep);
            o += sep_end - sep;
        }
        memcpy(out + o, hdr + s, e - s);
        o += e - s;
        kept = 1;
        sep = e;
        open_sep = 1;
    }
    *outlen = o;
    return removed;
}
