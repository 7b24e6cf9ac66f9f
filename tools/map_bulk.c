/*
 * map_bulk.c - jpkictl's commands on many bindings at once:
 *   map import FILE   a CSV of (issuer, serial, account) from an existing
 *                     system, the serials hashed to cert_ids on the way in;
 *   map export        the bindings as CSV, by cert_id (never a serial);
 *   map prune         the bindings of expired or finally revoked
 *                     certificates removed (--dry-run: listed only).
 * In Redis a binding is what the admin API's bind writes (txn_admin.c,
 * layouts in common/acct.h): map:<cert_id> the account, mapi:<cert_id>
 * "<issuer tag>|<not_after>|<bound_at>", and the cert_id in the account's
 * list acct:<account_id>; the same rules hold: one account a certificate,
 * at most JPKI_ACCOUNT_CERTS certificates an account.  In a mapping file
 * a binding is its line (common/mapfile.c's writer, one rewrite).
 *
 * A serial is only ever in the line being read (cleansed after use): it
 * goes to no message (a bad row is named by its line number), no file,
 * no key or value.
 */
#include "jpkictl.h"
#include "acct.h"
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

const char usage_map_bulk[] =
"jpkictl map import FILE --issuer NAME=CAFILE[,...] --secret-file FILE\n"
"                (--redis ADDR | --map-file F) [--dry-run]\n"
"jpkictl map export (--redis ADDR | --map-file F) [--issuer NAME=CAFILE...]\n"
"jpkictl map prune --secret-file FILE --redis ADDR [--dry-run] [--at TIME]\n"
"  import: binds the certificates of a CSV file (\"-\": standard input) of\n"
"  rows \"issuer,serial,account\" (a header line \"issuer,serial,account\"\n"
"  may come first; fields may be quoted \"...\"; at most 1024 bytes a line):\n"
"  issuer is the NAME of an --issuer whose last CA file issued the\n"
"  certificate, serial is decimal or 0x-hex.  Serials are hashed to cert_ids\n"
"  and written nowhere; a bad row is reported by its line number.  As the\n"
"  admin API's bind (docs/admin.md): a certificate bound to another account,\n"
"  or an account that would hold more than 12 certificates, is skipped\n"
"  (reported by line); one already bound to the same account is left as it\n"
"  is.  Redis: map:, mapi: (issuer, not_after 0: unknown, bound now) and the\n"
"  account's acct: list, pipelined.  Mapping file: one rewrite, as map add.\n"
"  --dry-run: everything checked against the store, nothing written.\n"
"  export: CSV \"cert_id,issuer,account,not_after,bound_at\" on standard\n"
"  output, by cert_id; issuer: the --issuer NAME of the stored tag, else the\n"
"  tag (a mapping file has neither issuer nor times: empty and 0).\n"
"  prune: removes the bindings (map:, mapi:, the acct: entry) of the\n"
"  certificates whose not_after has passed (at --at, default now; 0 =\n"
"  unknown: kept) or whose cached revocation answer (rev:) says revoked\n"
"  (certificateHold is not final: kept); --dry-run lists them only.  One\n"
"  line each: \"[would remove|removed] cert_id=C why=expired|revoked\n"
"  account=A\".  Redis only: a mapping file holds neither.\n"
"  Exit: 0 done; 1 rows refused or skipped (the others imported); 2 usage,\n"
"  unreadable FILE or mapping file error; 5 Redis failed.\n\n";

#define CSV_LINE_MAX   1024       /* bytes of a line, without its newline */
#define CSV_ROWS_MAX   10000000u  /* rows a file */
#define ISSUER_NAME_MAX 63        /* as --issuer NAME */
#define SERIAL_TEXT_MAX 160       /* as jpki_cert_id_from_serial_text */
#define PIPE_CHUNK     1024       /* Redis commands in flight at most */
#define BAD_SHOWN      100        /* bad rows reported one by one */
#define ID_HEX         JPKI_CERT_ID_HEX_LEN

/* ---- Redis pipeline ------------------------------------------------- */

/* Commands appended (redisAppendCommand), their replies read back in
 * order, PIPE_CHUNK at most in flight; each reply goes to take() with the
 * tag given with its command.  A connection failure ends the run; a reply
 * take() refuses is counted and the stream is read on. */
typedef struct {
    redisContext *rc;
    size_t n;
    uint32_t tag[PIPE_CHUNK];
    int (*take)(void *arg, uint32_t tag, const redisReply *r);
    void *arg;
    int broken;                   /* connection lost: stop */
    size_t refused;               /* replies take() refused */
} pipe_t;

static int pipe_flush(pipe_t *p)
{
    redisReply *r;
    size_t i;

    for (i = 0; i < p->n && !p->broken; i++) {
        if (redisGetReply(p->rc, (void **)&r) != REDIS_OK || r == NULL) {
            say("redis: %.200s", p->rc->errstr[0] ? p->rc->errstr
                : "no reply");
            p->broken = 1;
            break;
        }
        if (p->take(p->arg, p->tag[i], r) != 0)
            p->refused++;
        freeReplyObject(r);
    }
    p->n = 0;
    return p->broken ? -1 : 0;
}

/* (hiredis's format: %b takes a pointer and a length; no printf check) */
static int pipe_add(pipe_t *p, uint32_t tag, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (p->broken)
        return -1;
    va_start(ap, fmt);
    rc = redisvAppendCommand(p->rc, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        say("redis: cannot queue a command");
        p->broken = 1;
        return -1;
    }
    p->tag[p->n++] = tag;
    return p->n == PIPE_CHUNK ? pipe_flush(p) : 0;
}

/* A reply to SET: +OK; to DEL: an integer. */
static int set_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
}

/* Says once what a refused reply was (never a value). */
static void refused_say(const char *what, const redisReply *r, int *said)
{
    if (*said)
        return;
    *said = 1;
    say("redis: %s refused: %.200s", what,
        r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
}

/* ---- accounts -------------------------------------------------------- */

/* *v (an array of cap elements of sz bytes, n used) with room for one
 * more: 0, -1 out of memory. */
static int grow(void *pv, size_t *cap, size_t n, size_t sz)
{
    void **v = pv, *nv;
    size_t nc = *cap ? *cap * 2 : 1024;

    if (n < *cap)
        return 0;
    if ((nv = realloc(*v, nc * sz)) == NULL)
        return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

typedef struct {
    char *name;                   /* as in the file, NUL-terminated */
    size_t len;
    char id[JPKI_ACCOUNT_ID_HEX_LEN + 1];     /* acct:<id> (Redis) */
    jpki_acct_list list;          /* Redis: acct: as read, then as written */
    unsigned count;               /* mapping file: its certificates */
    int dirty;                    /* list changed: written back */
    int bad;                      /* acct: is not a list */
} acct_t;

/* The distinct accounts, and an open-addressing table of them by name. */
typedef struct {
    acct_t *v;
    size_t n, cap;
    uint32_t *slot;               /* index + 1, 0: empty */
    size_t nslot;
} accts_t;

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int accts_grow(accts_t *t)
{
    size_t ns = t->nslot ? t->nslot * 2 : 1024, i, j;
    uint32_t *s = calloc(ns, sizeof(*s));

    if (s == NULL)
        return -1;
    for (i = 0; i < t->n; i++) {
        j = name_hash(t->v[i].name, t->v[i].len) & (ns - 1);
        while (s[j] != 0)
            j = (j + 1) & (ns - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(t->slot);
    t->slot = s;
    t->nslot = ns;
    return 0;
}

/* The index of account name (n bytes); add: made when absent.  -1: absent
 * (or out of memory when add). */
static long accts_find(accts_t *t, const char *name, size_t n, int add)
{
    size_t j;

    if (t->nslot > 0) {
        j = name_hash(name, n) & (t->nslot - 1);
        for (; t->slot[j] != 0; j = (j + 1) & (t->nslot - 1)) {
            const acct_t *x = &t->v[t->slot[j] - 1];
            if (x->len == n && memcmp(x->name, name, n) == 0)
                return (long)t->slot[j] - 1;
        }
    }
    if (!add)
        return -1;
    if ((t->n + 1) * 2 > t->nslot && accts_grow(t) != 0)
        return -1;
    if (grow(&t->v, &t->cap, t->n, sizeof(*t->v)) != 0)
        return -1;
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    if ((t->v[t->n].name = malloc(n + 1)) == NULL)
        return -1;
    memcpy(t->v[t->n].name, name, n);
    t->v[t->n].name[n] = '\0';
    t->v[t->n].len = n;
    j = name_hash(name, n) & (t->nslot - 1);
    while (t->slot[j] != 0)
        j = (j + 1) & (t->nslot - 1);
    t->slot[j] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

static void accts_free(accts_t *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    free(t->slot);
}

/* ---- the CSV ----------------------------------------------------------- */

/* What became of a row. */
enum {
    R_NEW,                        /* to be bound */
    R_ALREADY,                    /* bound to this account already */
    R_ELSEWHERE,                  /* bound to another account: skipped */
    R_FULL,                       /* the account is full: skipped */
    R_DUP_OTHER                   /* an earlier row binds it elsewhere */
};
/* What the store holds for a row's certificate. */
enum { S_NONE, S_SAME, S_OTHER };

typedef struct {
    uint8_t id[JPKI_CERT_ID_LEN];
    uint32_t line;
    uint32_t acct;                /* index in accts_t */
    uint32_t first;               /* the row that stands for this cert_id */
    uint8_t issuer;               /* index of its --issuer */
    uint8_t store;                /* S_* */
    uint8_t state;                /* R_* */
} row_t;

typedef struct {
    const args_t *a;
    jpki_ctx *ctx;
    row_t *rows;
    size_t n, cap;
    uint32_t *by_id;              /* row indices sorted by cert_id */
    accts_t accts;
    size_t bad, lines;
    size_t count[5];              /* rows of each R_* */
    int dry;
} import_t;

/* A bad row: its line number and why, never its content. */
__attribute__((format(printf, 3, 4)))
static void bad_row(import_t *im, size_t line, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    if (++im->bad > BAD_SHOWN) {
        if (im->bad == BAD_SHOWN + 1)
            say("... more bad rows (the count follows)");
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    say("line %zu: %s", line, why);
}

/* One field of a CSV line at *p (end: the line's end) into out (max
 * bytes, NUL-terminated): plain (blanks around it dropped) or "quoted"
 * ("" inside is one "); *p moves past its comma.  0, -1 malformed
 * quotes, -2 longer than max. */
static int csv_field(const char **p, const char *end, char *out, size_t max,
                     size_t *outlen)
{
    const char *s = *p;
    size_t o = 0;

    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s < end && *s == '"') {
        for (s++;; s++) {
            if (s == end)
                return -1;                      /* not closed */
            if (*s == '"') {
                if (s + 1 < end && s[1] == '"') {
                    s++;
                } else {
                    s++;
                    break;
                }
            }
            if (o == max)
                return -2;
            out[o++] = *s;
        }
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        if (s < end && *s != ',')
            return -1;                          /* text after the quote */
    } else {
        const char *e = memchr(s, ',', (size_t)(end - s));
        const char *t = e ? e : end;

        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (memchr(s, '"', (size_t)(t - s)) != NULL)
            return -1;                          /* a quote inside */
        if ((size_t)(t - s) > max)
            return -2;
        memcpy(out, s, (size_t)(t - s));
        o = (size_t)(t - s);
        s = e ? e : end;
    }
    out[o] = '\0';
    *outlen = o;
    *p = s < end ? s + 1 : end + 1;             /* past the comma */
    return 0;
}

static int import_add_row(import_t *im, const row_t *r)
{
    if (grow(&im->rows, &im->cap, im->n, sizeof(*r)) != 0)
        return -1;
    im->rows[im->n++] = *r;
    return 0;
}

/* One line (n bytes, no newline, no '\r' at its end): a row, or the
 * header, or an empty line.  0, -1 out of memory. */
static int import_line(import_t *im, const char *l, size_t n, size_t line)
{
    char f[3][SERIAL_TEXT_MAX + JPKI_ACCOUNT_MAX + 2];
    static const char *const names[3] = {"issuer", "serial", "account"};
    static const size_t max[3] = {ISSUER_NAME_MAX, SERIAL_TEXT_MAX,
                                  JPKI_ACCOUNT_MAX};
    const char *p = l, *end = l + n;
    char hex[ID_HEX + 1];
    size_t len[3], i, got;
    const jpki_issuer *is = NULL;
    row_t r;
    long k;
    int rc = 0, e;

    if (n == 0)
        return 0;
    if (memchr(l, '\0', n) != NULL) {
        bad_row(im, line, "the line holds a NUL byte");
        return 0;
    }
    for (i = 0; i < 3; i++) {
        if (p > end) {
            bad_row(im, line, "expected 3 fields: issuer,serial,account");
            goto out;
        }
        e = csv_field(&p, end, f[i], max[i], &len[i]);
        if (e == -1) {
            bad_row(im, line, "field %zu (%s): malformed quotes", i + 1,
                    names[i]);
            goto out;
        }
        if (e == -2) {
            bad_row(im, line, "field %zu (%s): longer than %zu bytes", i + 1,
                    names[i], max[i]);
            goto out;
        }
    }
    if (p <= end) {
        bad_row(im, line, "expected 3 fields: issuer,serial,account");
        goto out;
    }
    if (line == 1 && strcasecmp(f[0], "issuer") == 0
        && strcasecmp(f[1], "serial") == 0
        && strcasecmp(f[2], "account") == 0)
        goto out;                                /* the header */
    for (i = 0; i < jpki_ctx_issuer_count(im->ctx); i++)
        if (strcmp(jpki_issuer_name(jpki_ctx_issuer(im->ctx, i)), f[0]) == 0)
            is = jpki_ctx_issuer(im->ctx, i);
    if (is == NULL) {
        bad_row(im, line, "unknown issuer (not the NAME of an --issuer)");
        goto out;
    }
    if (!jpki_account_valid(f[2], len[2])) {
        bad_row(im, line, "the account is empty, or holds a control "
                "character, '\"' or '\\', or is not UTF-8");
        goto out;
    }
    if (jpki_cert_id_from_serial_text(im->ctx, is, f[1], hex) != JPKI_OK) {
        bad_row(im, line, "the serial is not a decimal or 0x-hex number");
        goto out;
    }
    if (im->n >= CSV_ROWS_MAX) {
        bad_row(im, line, "more than %u rows: split the file", CSV_ROWS_MAX);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    jpki_hex_decode(hex, ID_HEX, r.id, sizeof(r.id), &got);
    r.line = (uint32_t)line;
    for (i = 0; i < jpki_ctx_issuer_count(im->ctx); i++)
        if (jpki_ctx_issuer(im->ctx, i) == is)
            r.issuer = (uint8_t)i;
    k = accts_find(&im->accts, f[2], len[2], 1);
    if (k < 0 || import_add_row(im, &r) != 0) {
        rc = -1;
        goto out;
    }
    im->rows[im->n - 1].acct = (uint32_t)k;
out:
    OPENSSL_cleanse(f, sizeof(f));
    return rc;
}

/* Reads the CSV file (or standard input: "-") line by line, each line at
 * most CSV_LINE_MAX bytes; the buffer is cleansed once read.  0, -1 after
 * a message. */
static int import_read(import_t *im, const char *path)
{
    static char buf[64 * 1024 + CSV_LINE_MAX];
    size_t have = 0, line = 0, start, n;
    int fd, eof = 0, skipping = 0, rc = 0;
    ssize_t r;
    char *nl;

    fd = strcmp(path, "-") == 0 ? 0
         : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        say("cannot read \"%.200s\": %s", path, strerror(errno));
        return -1;
    }
    if (fd > 0)
        (void)fcntl(fd, F_SETFL, 0);            /* back to blocking */
    while (rc == 0 && (!eof || have > 0)) {
        if (!eof && have < sizeof(buf)) {
            r = read(fd, buf + have, sizeof(buf) - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                say("cannot read \"%.200s\": %s", path, strerror(errno));
                rc = -1;
                break;
            }
            if (r == 0)
                eof = 1;
            have += (size_t)r;
        }
        start = 0;
        while (rc == 0) {
            nl = memchr(buf + start, '\n', have - start);
            if (nl == NULL && !(eof && have > start))
                break;
            n = (nl ? (size_t)(nl - buf) : have) - start;
            if (skipping) {
                skipping = nl == NULL;          /* the rest of a long line */
            } else {
                line++;
                if (line == 1 && n >= 3
                    && memcmp(buf + start, "\xef\xbb\xbf", 3) == 0) {
                    start += 3;                 /* a UTF-8 byte order mark */
                    n -= 3;
                }
                while (n > 0 && buf[start + n - 1] == '\r')
                    n--;
                if (n > CSV_LINE_MAX)
                    bad_row(im, line, "the line is longer than %d bytes",
                            CSV_LINE_MAX);
                else if (import_line(im, buf + start, n, line) != 0) {
                    say("out of memory");
                    rc = -1;
                }
            }
            start = nl ? (size_t)(nl - buf) + 1 : have;
        }
        /* a line with no end in sight: over the limit, its rest skipped */
        if (start == 0 && have == sizeof(buf) && !skipping) {
            line++;
            bad_row(im, line, "the line is longer than %d bytes",
                    CSV_LINE_MAX);
            skipping = 1;
            start = have;
        } else if (start == 0 && have == sizeof(buf)) {
            start = have;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        OPENSSL_cleanse(buf + have, sizeof(buf) - have);
        if (eof && have == 0)
            break;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (fd > 0)
        close(fd);
    im->lines = line;
    return rc;
}

/* ---- the decisions ----------------------------------------------------- */

static import_t *sort_im;
static int by_id_cmp(const void *x, const void *y)
{
    const row_t *a = &sort_im->rows[*(const uint32_t *)x];
    const row_t *b = &sort_im->rows[*(const uint32_t *)y];
    int c = memcmp(a->id, b->id, JPKI_CERT_ID_LEN);

    return c != 0 ? c : (a->line > b->line) - (a->line < b->line);
}

/* Rows by cert_id; each row's first: the earliest row of its cert_id. */
static int import_index(import_t *im)
{
    size_t i;

    if ((im->by_id = malloc((im->n ? im->n : 1) * sizeof(uint32_t))) == NULL)
        return -1;
    for (i = 0; i < im->n; i++)
        im->by_id[i] = (uint32_t)i;
    sort_im = im;
    qsort(im->by_id, im->n, sizeof(uint32_t), by_id_cmp);
    for (i = 0; i < im->n; i++) {
        row_t *r = &im->rows[im->by_id[i]];
        const row_t *prev = i ? &im->rows[im->by_id[i - 1]] : NULL;

        r->first = prev && memcmp(prev->id, r->id, JPKI_CERT_ID_LEN) == 0
                   ? prev->first : im->by_id[i];
    }
    return 0;
}

/* The rows in line order against what the store holds (rows[].store of
 * each first row, the accounts' lists or counts); the skipped ones
 * reported. */
static void import_decide(import_t *im, int redis)
{
    size_t i;

    for (i = 0; i < im->n; i++) {
        row_t *r = &im->rows[i];
        const row_t *f = &im->rows[r->first];
        acct_t *ac = &im->accts.v[r->acct];

        if (r->first != i && f->acct != r->acct) {  /* a cert_id again */
            r->state = R_DUP_OTHER;
            bad_row(im, r->line, "the certificate of line %u, for another "
                    "account: skipped (one account a certificate)",
                    (unsigned)f->line);
        } else if (r->first != i) {
            r->state = f->state == R_NEW ? R_ALREADY : f->state;
            if (r->state != R_ALREADY)
                bad_row(im, r->line, "the certificate of line %u again: "
                        "skipped as that line", (unsigned)f->line);
        } else if (r->store == S_OTHER) {
            r->state = R_ELSEWHERE;
            bad_row(im, r->line, "the certificate is bound to another "
                    "account: skipped");
        } else if (r->store == S_SAME) {
            r->state = R_ALREADY;
        } else if (redis ? ac->bad
                           || jpki_acct_list_add(&ac->list, r->id) != JPKI_OK
                         : ac->count >= JPKI_ACCOUNT_CERTS) {
            r->state = R_FULL;
            bad_row(im, r->line, ac->bad ? "the account's list in the store "
                    "is malformed: skipped" : "the account has %d "
                    "certificates: skipped", JPKI_ACCOUNT_CERTS);
        } else {
            r->state = R_NEW;
            ac->count++;
            ac->dirty = 1;
        }
        im->count[r->state]++;
    }
}

/* ---- into Redis --------------------------------------------------------- */

enum { T_MAP, T_ACCT, T_WRITE };
#define TAG(i, k) ((uint32_t)(i) * 4u + (k))

static int import_take(void *arg, uint32_t tag, const redisReply *r)
{
    import_t *im = arg;
    size_t i = tag / 4;
    static int said;

    switch (tag % 4) {
    case T_MAP: {                         /* GET map:<cert_id> */
        row_t *row = &im->rows[i];
        const acct_t *ac = &im->accts.v[row->acct];

        if (r->type == REDIS_REPLY_NIL) {
            row->store = S_NONE;
            return 0;
        }
        if (r->type != REDIS_REPLY_STRING) {
            refused_say("GET", r, &said);
            return -1;
        }
        row->store = r->len == ac->len && memcmp(r->str, ac->name, r->len) == 0
                     ? S_SAME : S_OTHER;
        return 0;
    }
    case T_ACCT: {                        /* GET acct:<account_id> */
        acct_t *ac = &im->accts.v[i];

        if (r->type == REDIS_REPLY_NIL)
            return 0;
        if (r->type != REDIS_REPLY_STRING) {
            refused_say("GET", r, &said);
            return -1;
        }
        if (!jpki_acct_list_read(&ac->list, (const uint8_t *)r->str, r->len))
            ac->bad = 1;
        return 0;
    }
    default:                              /* SET */
        if (set_ok(r))
            return 0;
        refused_say("SET", r, &said);
        return -1;
    }
}

static int import_redis(import_t *im)
{
    char key[80], mapi[JPKI_MAPI_MAX], id[ID_HEX + 1];
    redisContext *rc;
    pipe_t p;
    size_t i, written = 0;

    if ((rc = redis_open(im->a)) == NULL)
        return EXIT_STORE;
    memset(&p, 0, sizeof(p));
    p.rc = rc;
    p.take = import_take;
    p.arg = im;
    /* what the store holds: each certificate's account, each account's
     * list */
    for (i = 0; i < im->n; i++) {
        if (im->rows[i].first != i)
            continue;
        jpki_hex_encode(im->rows[i].id, JPKI_CERT_ID_LEN, id);
        pipe_add(&p, TAG(i, T_MAP), "GET " JPKI_STORE_PREFIX "map:%s", id);
    }
    for (i = 0; i < im->accts.n; i++) {
        acct_t *ac = &im->accts.v[i];
        if (jpki_account_id(im->ctx, ac->name, ac->len, ac->id) != JPKI_OK) {
            say("internal error: account_id");
            p.broken = 1;
            break;
        }
        pipe_add(&p, TAG(i, T_ACCT), "GET " JPKI_STORE_PREFIX "acct:%s",
                 ac->id);
    }
    pipe_flush(&p);
    if (p.broken || p.refused) {
        redisFree(rc);
        say("nothing written");
        return EXIT_STORE;
    }
    import_decide(im, 1);
    if (im->dry) {
        redisFree(rc);
        return EXIT_VALID;
    }
    /* the bindings, then the accounts' lists (as the admin API's bind) */
    for (i = 0; i < im->n; i++) {
        const row_t *r = &im->rows[i];
        const acct_t *ac = &im->accts.v[r->acct];

        if (r->state != R_NEW)
            continue;
        jpki_hex_encode(r->id, JPKI_CERT_ID_LEN, id);
        jpki_mapi_format(mapi, jpki_issuer_tag(jpki_ctx_issuer(im->ctx,
                                                               r->issuer)),
                         0, (int64_t)im->a->now);
        snprintf(key, sizeof(key), JPKI_STORE_PREFIX "map:%s", id);
        pipe_add(&p, TAG(i, T_WRITE), "SET %s %b", key, ac->name, ac->len);
        snprintf(key, sizeof(key), JPKI_STORE_PREFIX "mapi:%s", id);
        pipe_add(&p, TAG(i, T_WRITE), "SET %s %s", key, mapi);
        written++;
    }
    for (i = 0; i < im->accts.n; i++) {
        const acct_t *ac = &im->accts.v[i];
        if (!ac->dirty)
            continue;
        snprintf(key, sizeof(key), JPKI_STORE_PREFIX "acct:%s", ac->id);
        pipe_add(&p, TAG(i, T_WRITE), "SET %s %b", key,
                 (const char *)ac->list.id, jpki_acct_list_len(&ac->list));
    }
    pipe_flush(&p);
    redisFree(rc);
    if (p.broken || p.refused) {
        say("the import stopped part way: run it again (rows already bound "
            "are left as they are)");
        return EXIT_STORE;
    }
    return EXIT_VALID;
}

/* ---- into a mapping file --------------------------------------------- */

static jpki_err import_file_build(const uint8_t *old, size_t oldlen,
                                  void *arg, uint8_t **neu, size_t *neulen)
{
    import_t *im = arg;
    jpki_map *m = NULL;
    jpki_map_change *ch = NULL;
    char (*hex)[ID_HEX + 1] = NULL, acc[JPKI_ACCOUNT_MAX + 1];
    size_t i, k = 0, found, len;
    long x;
    jpki_err e;

    *neu = NULL;
    if ((e = jpki_map_parse(old, oldlen, &m)) != JPKI_OK)
        return e;
    /* the accounts' certificates in the file */
    for (i = 0; i < m->n; i++) {
        x = accts_find(&im->accts, m->accounts + m->e[i].off, m->e[i].len,
                       0);
        if (x >= 0)
            im->accts.v[x].count++;
    }
    for (i = 0; i < im->n; i++) {
        row_t *r = &im->rows[i];
        char id[ID_HEX + 1];

        if (r->first != i)
            continue;
        jpki_hex_encode(r->id, JPKI_CERT_ID_LEN, id);
        len = jpki_map_lookup(m, id, acc);
        r->store = len == 0 ? S_NONE
                   : len == im->accts.v[r->acct].len
                     && memcmp(acc, im->accts.v[r->acct].name, len) == 0
                   ? S_SAME : S_OTHER;
    }
    jpki_map_free(m);
    import_decide(im, 0);
    if (im->dry || im->count[R_NEW] == 0)
        return JPKI_OK;                          /* nothing to change */
    ch = malloc(im->count[R_NEW] * sizeof(*ch));
    hex = malloc(im->count[R_NEW] * sizeof(*hex));
    if (ch == NULL || hex == NULL) {
        free(ch);
        free(hex);
        return JPKI_ERR_NOMEM;
    }
    for (i = 0; i < im->n; i++) {
        if (im->rows[i].state != R_NEW)
            continue;
        jpki_hex_encode(im->rows[i].id, JPKI_CERT_ID_LEN, hex[k]);
        ch[k].cert_id = hex[k];
        ch[k].account = im->accts.v[im->rows[i].acct].name;
        k++;
    }
    e = jpki_map_edit_many(old, oldlen, ch, k, neu, neulen, &found);
    free(ch);
    free(hex);
    return e;
}

/* ---- import ------------------------------------------------------------- */

int run_map_import(const args_t *a)
{
    import_t im;
    int rc;

    if (map_backend(a) != 0)
        return EXIT_USAGE;
    memset(&im, 0, sizeof(im));
    im.a = a;
    im.dry = (a->seen & BIT(O_DRY_RUN)) != 0;
    if ((im.ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    rc = import_read(&im, a->val[O_FILE]) != 0 ? EXIT_USAGE : EXIT_VALID;
    if (rc == EXIT_VALID && import_index(&im) != 0) {
        say("out of memory");
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_VALID)
        rc = a->val[O_MAP_FILE] != NULL
             ? (map_file_rewrite(a->val[O_MAP_FILE], import_file_build, &im)
                != 0 ? EXIT_USAGE : EXIT_VALID)
             : import_redis(&im);
    if (rc == EXIT_VALID) {
        size_t skipped = im.count[R_ELSEWHERE] + im.count[R_FULL]
                         + im.count[R_DUP_OTHER];
        size_t malformed = im.bad - skipped;

        printf("%s: %zu rows, %zu %sbound, %zu already bound, %zu skipped "
               "(%zu bound to another account, %zu account full), %zu "
               "malformed\n", im.dry ? "import (dry run, nothing written)"
               : "imported", im.n + malformed, im.count[R_NEW],
               im.dry ? "to be " : "", im.count[R_ALREADY], skipped,
               im.count[R_ELSEWHERE] + im.count[R_DUP_OTHER],
               im.count[R_FULL], malformed);
        if (im.bad > 0)
            rc = EXIT_INVALID;
    }
    jpki_ctx_free(im.ctx);
    accts_free(&im.accts);
    free(im.rows);
    free(im.by_id);
    return rc;
}

/* ---- export and prune: the bindings of the store ---------------------- */

typedef struct {
    char id[ID_HEX + 1];
    char *account;
    char tag[17];
    int64_t not_after, bound_at;
    int revoked;                  /* rev: says revoked (prune) */
    const char *why;              /* prune: expired, revoked */
} binding_t;

typedef struct {
    binding_t *v;
    size_t n, cap;
} bindings_t;

static binding_t *bindings_add(bindings_t *b)
{
    if (grow(&b->v, &b->cap, b->n, sizeof(*b->v)) != 0)
        return NULL;
    memset(&b->v[b->n], 0, sizeof(b->v[0]));
    return &b->v[b->n++];
}

static void bindings_free(bindings_t *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        free(b->v[i].account);
    free(b->v);
}

static int binding_cmp(const void *x, const void *y)
{
    return strcmp(((const binding_t *)x)->id, ((const binding_t *)y)->id);
}

/* Every map: key of the store, with its account, its mapi: and (rev) its
 * rev: value read: pipelined, one SCAN batch at a time.  A key whose
 * account is no valid account, a value the gate would not read, is left
 * out (counted in *odd).  EXIT_VALID or EXIT_STORE. */
static int bindings_read(redisContext *rc, int rev, bindings_t *b,
                         size_t *odd)
{
    static const char pfx[] = JPKI_STORE_PREFIX "map:";
    char cursor[32] = "0", k2[80], k3[80];
    redisReply *r = NULL, *g[3];
    size_t i, j, k, per = rev ? 3 : 2;
    const redisReply *key;

    *odd = 0;
    do {
        if ((r = scan_next(rc, cursor, JPKI_STORE_PREFIX "map:*")) == NULL)
            goto fail;
        for (i = 0; i < r->element[1]->elements; i++) {
            key = r->element[1]->element[i];
            const char *id = key->str + sizeof(pfx) - 1;
            if (key->len != sizeof(pfx) - 1 + ID_HEX
                || !jpki_map_cert_id_valid(id, ID_HEX))
                continue;                       /* not a cert_id's */
            snprintf(k2, sizeof(k2), JPKI_STORE_PREFIX "mapi:%.*s", ID_HEX,
                     id);
            snprintf(k3, sizeof(k3), JPKI_STORE_PREFIX "rev:%.*s", ID_HEX,
                     id);
            if (redisAppendCommand(rc, "GET %b", key->str, key->len)
                != REDIS_OK
                || redisAppendCommand(rc, "GET %s", k2) != REDIS_OK
                || (rev && redisAppendCommand(rc, "GET %s", k3)
                           != REDIS_OK)) {
                say("redis: cannot queue a command");
                goto fail;
            }
        }
        for (i = 0; i < r->element[1]->elements; i++) {
            binding_t *e;
            key = r->element[1]->element[i];
            const char *id = key->str + sizeof(pfx) - 1;
            int good = 1;

            if (key->len != sizeof(pfx) - 1 + ID_HEX
                || !jpki_map_cert_id_valid(id, ID_HEX))
                continue;
            memset(g, 0, sizeof(g));
            for (j = 0; j < per; j++) {
                if (redisGetReply(rc, (void **)&g[j]) != REDIS_OK
                    || g[j] == NULL) {
                    say("redis: %.200s", rc->errstr);
                    for (k = 0; k < j; k++)
                        freeReplyObject(g[k]);
                    goto fail;
                }
                if (g[j]->type != REDIS_REPLY_STRING
                    && g[j]->type != REDIS_REPLY_NIL) {
                    say("redis: GET refused: %.200s", g[j]->type
                        == REDIS_REPLY_ERROR ? g[j]->str : "an unexpected "
                        "reply");
                    for (k = 0; k <= j; k++)
                        freeReplyObject(g[k]);
                    goto fail;
                }
            }
            /* nil: unbound since the SCAN */
            if (g[0]->type == REDIS_REPLY_STRING
                && (g[0]->len > JPKI_ACCOUNT_MAX
                    || !jpki_account_valid(g[0]->str, g[0]->len))) {
                (*odd)++;
                good = 0;
            }
            if (g[0]->type == REDIS_REPLY_STRING && good) {
                if ((e = bindings_add(b)) == NULL
                    || (e->account = strndup(g[0]->str, g[0]->len))
                       == NULL) {
                    say("out of memory");
                    for (k = 0; k < per; k++)
                        freeReplyObject(g[k]);
                    goto fail;
                }
                memcpy(e->id, id, ID_HEX);
                e->id[ID_HEX] = '\0';
                if (g[1]->type == REDIS_REPLY_STRING
                    && !jpki_mapi_parse((const uint8_t *)g[1]->str,
                                        g[1]->len, e->tag, &e->not_after,
                                        &e->bound_at))
                    (*odd)++;                   /* kept, times unknown */
                e->revoked = rev && g[2]->type == REDIS_REPLY_STRING
                             && jpki_rev_value_final(
                                 (const uint8_t *)g[2]->str, g[2]->len);
            }
            for (k = 0; k < per; k++)
                freeReplyObject(g[k]);
        }
        freeReplyObject(r);
        r = NULL;
    } while (strcmp(cursor, "0") != 0);
    qsort(b->v, b->n, sizeof(b->v[0]), binding_cmp);
    return EXIT_VALID;
fail:
    freeReplyObject(r);
    return EXIT_STORE;
}

/* ---- export ----------------------------------------------------------- */

/* An account as a CSV field: quoted when it holds a comma or starts or
 * ends with a blank (it never holds a quote). */
static void csv_account(const char *s)
{
    size_t n = strlen(s);
    int q = strchr(s, ',') != NULL || s[0] == ' ' || s[0] == '\t'
            || s[n - 1] == ' ' || s[n - 1] == '\t';

    printf(q ? "\"%s\"" : "%s", s);
}

int run_map_export(const args_t *a)
{
    jpki_ctx *ctx = NULL;
    bindings_t b;
    redisContext *rc;
    size_t i, j, odd = 0;
    int ret = EXIT_VALID;

    if (map_backend(a) != 0)
        return EXIT_USAGE;
    memset(&b, 0, sizeof(b));
    if (a->n_issuer > 0 && (ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if (a->val[O_MAP_FILE] != NULL) {
        char why[512];
        jpki_map *m = NULL;

        if (jpki_map_read(a->val[O_MAP_FILE], &m, why, sizeof(why))
            != JPKI_OK) {
            say("%s", why);
            jpki_ctx_free(ctx);
            return EXIT_USAGE;
        }
        printf("cert_id,issuer,account,not_after,bound_at\n");
        for (i = 0; i < m->n; i++) {
            char id[ID_HEX + 1];
            jpki_hex_encode(m->e[i].id, JPKI_CERT_ID_LEN, id);
            printf("%s,,", id);
            csv_account(m->accounts + m->e[i].off);
            printf(",0,0\n");
        }
        odd = m->bad;
        jpki_map_free(m);
    } else {
        if ((rc = redis_open(a)) == NULL) {
            jpki_ctx_free(ctx);
            return EXIT_STORE;
        }
        ret = bindings_read(rc, 0, &b, &odd);
        redisFree(rc);
        if (ret == EXIT_VALID)
            printf("cert_id,issuer,account,not_after,bound_at\n");
        for (i = 0; ret == EXIT_VALID && i < b.n; i++) {
            const char *iss = b.v[i].tag;
            for (j = 0; ctx != NULL && j < jpki_ctx_issuer_count(ctx); j++)
                if (strcmp(jpki_issuer_tag(jpki_ctx_issuer(ctx, j)),
                           b.v[i].tag) == 0)
                    iss = jpki_issuer_name(jpki_ctx_issuer(ctx, j));
            printf("%s,%s,", b.v[i].id, iss);
            csv_account(b.v[i].account);
            printf(",%lld,%lld\n", (long long)b.v[i].not_after,
                   (long long)b.v[i].bound_at);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        say("cannot write the export: %s", strerror(errno));
        ret = EXIT_USAGE;
    }
    if (odd > 0 && ret == EXIT_VALID)
        say("warning: %zu malformed %s left out or read without times",
            odd, a->val[O_MAP_FILE] ? "lines" : "bindings");
    bindings_free(&b);
    jpki_ctx_free(ctx);
    return ret;
}

/* ---- prune ------------------------------------------------------------ */

/* DEL: an integer; SET (tag 1): +OK. */
static int prune_take(void *arg, uint32_t tag, const redisReply *r)
{
    static int said;

    if (tag == 1 ? set_ok(r) : r->type == REDIS_REPLY_INTEGER)
        return 0;
    refused_say(tag == 1 ? "SET" : "DEL", r, &said);
    return -1;
}

int run_map_prune(const args_t *a)
{
    int dry = (a->seen & BIT(O_DRY_RUN)) != 0, said = 0, ret;
    size_t i, n = 0, expired = 0, revoked = 0, odd = 0, bad = 0;
    redisReply *r;
    redisContext *rc;
    jpki_ctx *ctx;
    bindings_t b;
    accts_t accts;
    long k;

    if (a->val[O_MAP_FILE] != NULL || a->val[O_REDIS] == NULL) {
        say("prune needs --redis: a mapping file holds no expiry and no "
            "revocation (remove its lines with map remove)");
        return EXIT_USAGE;
    }
    /* the secret only: account_id (as jpkictl logout) */
    if ((ctx = jpki_ctx_new()) == NULL || set_secret(ctx, a, 0) != 0) {
        jpki_ctx_free(ctx);
        return EXIT_USAGE;
    }
    if ((rc = redis_open(a)) == NULL) {
        jpki_ctx_free(ctx);
        return EXIT_STORE;
    }
    memset(&b, 0, sizeof(b));
    memset(&accts, 0, sizeof(accts));
    ret = bindings_read(rc, 1, &b, &odd);
    /* the doomed ones, and their accounts */
    for (i = 0; ret == EXIT_VALID && i < b.n; i++) {
        binding_t *e = &b.v[i];

        e->why = e->revoked ? "revoked"
                 : e->not_after != 0 && e->not_after < (int64_t)a->now
                 ? "expired" : NULL;
        if (e->why == NULL)
            continue;
        n++;
        *(e->revoked ? &revoked : &expired) += 1;
        if (dry) {
            printf("would remove cert_id=%s why=%s account=%s\n", e->id,
                   e->why, e->account);
            continue;
        }
        k = accts_find(&accts, e->account, strlen(e->account), 1);
        if (k < 0) {
            say("out of memory");
            ret = EXIT_STORE;
            break;
        }
        if (accts.v[k].id[0] == '\0'
            && jpki_account_id(ctx, e->account, strlen(e->account),
                               accts.v[k].id) != JPKI_OK) {
            say("internal error: account_id");
            ret = EXIT_STORE;
            break;
        }
    }
    if (ret == EXIT_VALID && !dry && n > 0) {
        /* the accounts' lists */
        for (i = 0; i < accts.n; i++)
            if (redisAppendCommand(rc, "GET " JPKI_STORE_PREFIX "acct:%s",
                                   accts.v[i].id) != REDIS_OK) {
                say("redis: cannot queue a command");
                ret = EXIT_STORE;
                break;
            }
        for (i = 0; i < accts.n && ret == EXIT_VALID; i++) {
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
                say("redis: %.200s", rc->errstr);
                ret = EXIT_STORE;
                break;
            }
            if (r->type == REDIS_REPLY_STRING
                ? !jpki_acct_list_read(&accts.v[i].list,
                                       (const uint8_t *)r->str, r->len)
                : r->type != REDIS_REPLY_NIL) {
                refused_say("GET", r, &said);
                accts.v[i].bad = 1;             /* left as it is */
                bad++;
            }
            freeReplyObject(r);
        }
        for (i = 0; ret == EXIT_VALID && i < b.n; i++) {
            acct_t *ac;
            uint8_t raw[JPKI_CERT_ID_LEN];
            size_t got;

            if (b.v[i].why == NULL)
                continue;
            ac = &accts.v[accts_find(&accts, b.v[i].account,
                                     strlen(b.v[i].account), 0)];
            jpki_hex_decode(b.v[i].id, ID_HEX, raw, sizeof(raw), &got);
            if (!ac->bad && jpki_acct_list_del(&ac->list, raw))
                ac->dirty = 1;
        }
    }
    if (ret == EXIT_VALID && !dry && n > 0) {
        pipe_t p;
        char key[80];

        memset(&p, 0, sizeof(p));
        p.rc = rc;
        p.take = prune_take;
        for (i = 0; i < b.n; i++) {
            if (b.v[i].why == NULL)
                continue;
            snprintf(key, sizeof(key), JPKI_STORE_PREFIX "map:%s", b.v[i].id);
            pipe_add(&p, 0, "DEL %s", key);
            snprintf(key, sizeof(key), JPKI_STORE_PREFIX "mapi:%s",
                     b.v[i].id);
            pipe_add(&p, 0, "DEL %s", key);
        }
        for (i = 0; i < accts.n; i++) {
            const acct_t *ac = &accts.v[i];
            if (!ac->dirty)
                continue;
            snprintf(key, sizeof(key), JPKI_STORE_PREFIX "acct:%s", ac->id);
            if (ac->list.n > 0)
                pipe_add(&p, 1, "SET %s %b", key, (const char *)ac->list.id,
                         jpki_acct_list_len(&ac->list));
            else
                pipe_add(&p, 0, "DEL %s", key);
        }
        pipe_flush(&p);
        if (p.broken || p.refused)
            ret = EXIT_STORE;
        for (i = 0; ret == EXIT_VALID && i < b.n; i++)
            if (b.v[i].why != NULL)
                printf("removed cert_id=%s why=%s account=%s\n", b.v[i].id,
                       b.v[i].why, b.v[i].account);
    }
    redisFree(rc);
    if (ret == EXIT_VALID)
        printf("%s: %zu bindings, %zu %s (%zu expired, %zu revoked)\n",
               dry ? "prune (dry run, nothing removed)" : "pruned", b.n, n,
               dry ? "to remove" : "removed", expired, revoked);
    else if (!dry)
        say("the prune stopped part way: run it again");
    if (odd > 0)
        say("warning: %zu malformed bindings (an account or a mapi value "
            "the gate would not read) left as they are", odd);
    if (bad > 0)
        say("warning: %zu accounts' lists are malformed: left as they are",
            bad);
    bindings_free(&b);
    accts_free(&accts);
    jpki_ctx_free(ctx);
    return ret;
}
