/* mapfile.c - the mapping file: "<cert_id> <account>" lines (mapfile.h).
 * One parser for both adapters and jpkictl, one writer for jpkictl. */
#include "internal.h"
#include "mapfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_LEN  JPKI_CERT_ID_HEX_LEN

int jpki_map_cert_id_valid(const char *s, size_t n)
{
    size_t i;

    if (s == NULL || n != ID_LEN)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

const char *jpki_mapline_text(jpki_mapline_why why)
{
    switch (why) {
    case JPKI_MAPLINE_OK:
        return "ok";
    case JPKI_MAPLINE_CERT_ID:
        return "it does not start with a cert_id (32 lower-case hex digits) "
               "and a space";
    case JPKI_MAPLINE_NO_ACCOUNT:
        return "no account after the cert_id";
    case JPKI_MAPLINE_ACCOUNT_LONG:
        return "the account is longer than 128 bytes";
    case JPKI_MAPLINE_ACCOUNT_CHARS:
        return "the account holds a control character, '\"' or '\\', or is "
               "not UTF-8";
    case JPKI_MAPLINE_DUPLICATE:
        return "the cert_id is mapped on an earlier line";
    }
    return "?";
}

/* One line (without its newline and trailing blanks), not a comment. */
static jpki_mapline_why line_check(const char *l, size_t n)
{
    if (n < ID_LEN + 1 || !jpki_map_cert_id_valid(l, ID_LEN)
        || l[ID_LEN] != ' ')
        return n == ID_LEN && jpki_map_cert_id_valid(l, ID_LEN)
               ? JPKI_MAPLINE_NO_ACCOUNT : JPKI_MAPLINE_CERT_ID;
    n -= ID_LEN + 1;
    if (n == 0)
        return JPKI_MAPLINE_NO_ACCOUNT;
    if (n > JPKI_ACCOUNT_MAX)
        return JPKI_MAPLINE_ACCOUNT_LONG;
    if (!jpki_account_valid(l + ID_LEN + 1, n))
        return JPKI_MAPLINE_ACCOUNT_CHARS;
    return JPKI_MAPLINE_OK;
}

/* Counts a malformed line; the first JPKI_MAP_BAD_SHOWN by line number are
 * kept (duplicates are found after the others, out of line order). */
static void bad_add(jpki_map *m, uint32_t line, uint32_t first,
                    jpki_mapline_why why)
{
    size_t k = m->bad < JPKI_MAP_BAD_SHOWN ? m->bad : JPKI_MAP_BAD_SHOWN, i;

    m->bad++;
    if (k == JPKI_MAP_BAD_SHOWN && line > m->shown[k - 1].line)
        return;
    if (k == JPKI_MAP_BAD_SHOWN)
        k--;                                    /* the last one drops out */
    for (i = k; i > 0 && m->shown[i - 1].line > line; i--)
        m->shown[i] = m->shown[i - 1];
    m->shown[i].line = line;
    m->shown[i].first = first;
    m->shown[i].why = why;
}

static int entry_cmp(const void *a, const void *b)
{
    const jpki_map_entry *x = a, *y = b;
    int c = memcmp(x->id, y->id, JPKI_CERT_ID_LEN);

    if (c != 0)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* The end of the line starting at p (its '\n', or end), and the length
 * without trailing '\r' and ' '. */
static const uint8_t *line_end(const uint8_t *p, const uint8_t *end,
                               size_t *n)
{
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *e = nl ? nl : end;

    while (e > p && (e[-1] == '\r' || e[-1] == ' '))
        e--;
    *n = (size_t)(e - p);
    return nl ? nl : end;
}

jpki_err jpki_map_parse(const uint8_t *data, size_t len, jpki_map **out)
{
    const uint8_t *p = data, *end = data + len, *eol;
    jpki_map *m;
    jpki_mapline_why why;
    uint32_t line = 0, off = 0;
    size_t n, i, k, idn;

    *out = NULL;
    if (len > JPKI_MAP_FILE_MAX)
        return JPKI_ERR_TOO_LARGE;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return JPKI_ERR_NOMEM;
    /* a mapping line has at least ID_LEN + 3 bytes with its newline */
    m->e = malloc((len / (ID_LEN + 3) + 1) * sizeof(jpki_map_entry));
    m->accounts = malloc(len + 1);      /* each account and its NUL */
    if (m->e == NULL || m->accounts == NULL) {
        jpki_map_free(m);
        return JPKI_ERR_NOMEM;
    }
    for (; p < end; p = eol + 1) {
        eol = line_end(p, end, &n);
        line++;
        if (n == 0 || p[0] == '#')
            continue;
        if ((why = line_check((const char *)p, n)) != JPKI_MAPLINE_OK) {
            bad_add(m, line, 0, why);
            continue;
        }
        (void)jpki_hex_decode((const char *)p, ID_LEN, m->e[m->n].id,
                              JPKI_CERT_ID_LEN, &idn);  /* checked: hex */
        n -= ID_LEN + 1;
        memcpy(m->accounts + off, p + ID_LEN + 1, n);
        m->accounts[off + n] = '\0';
        m->e[m->n].off = off;
        m->e[m->n].len = (uint8_t)n;
        m->e[m->n].line = line;
        off += (uint32_t)n + 1;
        m->n++;
    }
    qsort(m->e, m->n, sizeof(jpki_map_entry), entry_cmp);
    /* each cert_id once: the first line stands */
    for (i = 0, k = 0; i < m->n; i++) {
        if (k > 0 && memcmp(m->e[k - 1].id, m->e[i].id,
                            JPKI_CERT_ID_LEN) == 0) {
            bad_add(m, m->e[i].line, m->e[k - 1].line,
                    JPKI_MAPLINE_DUPLICATE);
            continue;
        }
        if (k != i)
            m->e[k] = m->e[i];
        k++;
    }
    m->n = k;
    *out = m;
    return JPKI_OK;
}

jpki_err jpki_map_read(const char *path, jpki_map **out, char *why,
                       size_t whylen)
{
    uint8_t *data;
    size_t len;
    jpki_err e;

    *out = NULL;
    e = jpki_load_file_msg("mapping file", path, JPKI_MAP_FILE_MAX, &data,
                           &len, why, whylen);
    if (e != JPKI_OK)
        return e;
    e = jpki_map_parse(data, len, out);
    free(data);
    if (e != JPKI_OK)
        snprintf(why, whylen, "mapping file \"%s\": %s", path,
                 jpki_strerror(e));
    return e;
}

void jpki_map_free(jpki_map *m)
{
    if (m != NULL) {
        free(m->e);
        free(m->accounts);
        free(m);
    }
}

size_t jpki_map_lookup(const jpki_map *m, const char *cert_id, char *out)
{
    uint8_t id[JPKI_CERT_ID_LEN];
    size_t lo = 0, hi, mid, n;
    int c;

    out[0] = '\0';
    if (m == NULL || cert_id == NULL
        || !jpki_map_cert_id_valid(cert_id, strnlen(cert_id, ID_LEN + 1))
        || jpki_hex_decode(cert_id, ID_LEN, id, sizeof(id), &n) != JPKI_OK)
        return 0;
    hi = m->n;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = memcmp(m->e[mid].id, id, JPKI_CERT_ID_LEN);
        if (c == 0) {
            memcpy(out, m->accounts + m->e[mid].off,
                   (size_t)m->e[mid].len + 1);
            return m->e[mid].len;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

void jpki_map_warning(const jpki_map *m, const char *path, char *out,
                      size_t outlen)
{
    size_t i, o, shown;
    int r;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (m == NULL || m->bad == 0)
        return;
    r = snprintf(out, outlen, "mapping file \"%s\": %zu malformed line%s "
                 "ignored (expected \"<cert_id> <account>\")", path, m->bad,
                 m->bad == 1 ? "" : "s");
    shown = m->bad < JPKI_MAP_BAD_SHOWN ? m->bad : JPKI_MAP_BAD_SHOWN;
    for (i = 0; r >= 0 && (o = strlen(out)) + 1 < outlen && i < shown; i++) {
        if (m->shown[i].why == JPKI_MAPLINE_DUPLICATE)
            r = snprintf(out + o, outlen - o, "%s line %u: the cert_id is "
                         "mapped on line %u already", i ? ";" : ":",
                         (unsigned)m->shown[i].line,
                         (unsigned)m->shown[i].first);
        else
            r = snprintf(out + o, outlen - o, "%s line %u: %s", i ? ";" : ":",
                         (unsigned)m->shown[i].line,
                         jpki_mapline_text(m->shown[i].why));
    }
    if (r >= 0 && shown < m->bad && (o = strlen(out)) + 1 < outlen)
        snprintf(out + o, outlen - o, "; ...");
}

/* ---- the writer ----------------------------------------------------- */

static int change_cmp(const void *a, const void *b)
{
    return memcmp(((const jpki_map_change *)a)->cert_id,
                  ((const jpki_map_change *)b)->cert_id, ID_LEN);
}

/* 1 when the line p[0..n) starts with "<one of the sorted ids> ". */
static int line_of(const uint8_t *p, size_t n, const jpki_map_change *sorted,
                   size_t k)
{
    size_t lo = 0, hi = k, mid;
    int c;

    if (n <= ID_LEN || p[ID_LEN] != ' ')
        return 0;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = memcmp(sorted[mid].cert_id, p, ID_LEN);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

jpki_err jpki_map_edit_many(const uint8_t *old, size_t oldlen,
                            const jpki_map_change *ch, size_t n,
                            uint8_t **out, size_t *outlen, size_t *found)
{
    const uint8_t *p = old, *end = old + oldlen, *eol;
    jpki_map_change *sorted = NULL;
    size_t cap = oldlen + 1, add = 0, o = 0, len, i, alen;
    uint8_t *b;

    *out = NULL;
    *outlen = 0;
    *found = 0;
    if (oldlen > JPKI_MAP_FILE_MAX)
        return JPKI_ERR_TOO_LARGE;
    for (i = 0; i < n; i++) {
        if (ch[i].cert_id == NULL
            || !jpki_map_cert_id_valid(ch[i].cert_id, strlen(ch[i].cert_id)))
            return JPKI_ERR_INVALID;
        if (ch[i].account == NULL)
            continue;
        alen = strlen(ch[i].account);
        if (!jpki_account_valid(ch[i].account, alen))
            return JPKI_ERR_INVALID;
        add += ID_LEN + 1 + alen + 1;
        if (add > JPKI_MAP_FILE_MAX)
            return JPKI_ERR_TOO_LARGE;
    }
    if (n > 0 && (sorted = malloc(n * sizeof(*sorted))) == NULL)
        return JPKI_ERR_NOMEM;
    if (n > 0)
        memcpy(sorted, ch, n * sizeof(*sorted));
    if (n > 1)
        qsort(sorted, n, sizeof(*sorted), change_cmp);
    for (i = 1; i < n; i++)
        if (memcmp(sorted[i - 1].cert_id, sorted[i].cert_id, ID_LEN) == 0) {
            free(sorted);
            return JPKI_ERR_INVALID;
        }
    if ((b = malloc(cap)) == NULL) {
        free(sorted);
        return JPKI_ERR_NOMEM;
    }
    for (; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        len = (size_t)((eol ? eol : end) - p);
        if (line_of(p, len, sorted, n)) {
            (*found)++;
        } else {
            memcpy(b + o, p, len);
            o += len;
            b[o++] = '\n';          /* a last line without one gets one */
        }
        if (eol == NULL)
            break;
    }
    free(sorted);
    if (o + add > JPKI_MAP_FILE_MAX) {
        free(b);                    /* the gate would not read it */
        return JPKI_ERR_TOO_LARGE;
    }
    if (add > 0) {
        uint8_t *nb = realloc(b, o + add);
        if (nb == NULL) {
            free(b);
            return JPKI_ERR_NOMEM;
        }
        b = nb;
    }
    for (i = 0; i < n; i++) {
        if (ch[i].account == NULL)
            continue;
        alen = strlen(ch[i].account);
        memcpy(b + o, ch[i].cert_id, ID_LEN);
        o += ID_LEN;
        b[o++] = ' ';
        memcpy(b + o, ch[i].account, alen);
        o += alen;
        b[o++] = '\n';
    }
    *out = b;
    *outlen = o;
    return JPKI_OK;
}

jpki_err jpki_map_edit(const uint8_t *old, size_t oldlen, const char *cert_id,
                       const char *account, uint8_t **out, size_t *outlen,
                       int *found)
{
    jpki_map_change c;
    size_t n = 0;
    jpki_err e;

    c.cert_id = cert_id;
    c.account = account;
    e = jpki_map_edit_many(old, oldlen, &c, 1, out, outlen, &n);
    *found = n > 0;
    return e;
}
