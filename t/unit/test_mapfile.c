/* test_mapfile.c - the mapping file's parser and writer (common/mapfile.c):
 * a good file, every kind of malformed line with its line number, the
 * limits, duplicates, lookup, and writer -> parser round trips. */
#include "jpki.h"
#include "mapfile.h"
#include "tap.h"

#include <stdint.h>
#include <unistd.h>

#define A "0123456789abcdef0123456789abcdef"
#define B "fedcba9876543210fedcba9876543210"
#define C "00000000000000000000000000000001"

/* Parses an exact-size heap copy of s (ASan sees any read past it). */
static jpki_map *parse_s(const char *s, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    jpki_map *m = NULL;
    jpki_err e;

    memcpy(b, s, len);
    e = jpki_map_parse(b, len, &m);
    free(b);
    return e == JPKI_OK ? m : NULL;
}

static jpki_map *parse(const char *s) { return parse_s(s, strlen(s)); }

static const char *look(const jpki_map *m, const char *id)
{
    static char out[JPKI_ACCOUNT_MAX + 1];
    size_t n = jpki_map_lookup(m, id, out);

    return n == 0 ? NULL : out;
}

static void test_good(void)
{
    char w[1024];
    jpki_map *m = parse("# accounts\n\n" B " bob\r\n" A " alice  \n"
                        "   \n#" C " x\n" C " carol (ext) \xe5\xb1\xb1\xe7\x94\xb0");

    ok(m != NULL, "a good file parses");
    is_int(m->n, 3, "three mappings");
    is_int(m->bad, 0, "no malformed line");
    is_str(look(m, A), "alice", "alice (trailing blanks dropped)");
    is_str(look(m, B), "bob", "bob (CRLF)");
    is_str(look(m, C), "carol (ext) \xe5\xb1\xb1\xe7\x94\xb0",
           "carol: spaces and UTF-8 inside, last line without newline");
    ok(look(m, "0123456789abcdef0123456789abcde0") == NULL, "not mapped");
    ok(look(m, "0123456789ABCDEF0123456789ABCDEF") == NULL, "upper case: not mapped");
    ok(look(m, A "0") == NULL, "33 characters: not mapped");
    ok(look(m, "0123") == NULL, "short: not mapped");
    ok(memcmp(m->e[0].id, m->e[1].id, 16) < 0
       && memcmp(m->e[1].id, m->e[2].id, 16) < 0, "sorted");
    jpki_map_warning(m, "/f", w, sizeof(w));
    is_str(w, "", "no warning");
    jpki_map_free(m);

    m = parse("");
    ok(m != NULL && m->n == 0 && m->bad == 0, "an empty file: no mapping");
    ok(look(m, A) == NULL && look(NULL, A) == NULL, "lookup in an empty or no table");
    jpki_map_free(m);
}

/* One malformed line, at line 2 of a file: (why, first). */
static void bad_line(const char *line, size_t len, jpki_mapline_why why,
                     const char *what)
{
    char buf[512], w[1024], want[600];
    jpki_map *m;
    size_t n = strlen(A " alice\n");

    memcpy(buf, A " alice\n", n);
    memcpy(buf + n, line, len);
    memcpy(buf + n + len, "\n" B " bob\n", 38);
    m = parse_s(buf, n + len + 1 + 32 + 5);
    ok(m != NULL && m->n == 2 && m->bad == 1, "%s: ignored, the others kept", what);
    if (m == NULL)
        return;
    is_int(m->shown[0].line, 2, "%s: line 2", what);
    is_int(m->shown[0].why, why, "%s: why", what);
    jpki_map_warning(m, "/etc/jpki/map", w, sizeof(w));
    snprintf(want, sizeof(want), "mapping file \"/etc/jpki/map\": 1 malformed "
             "line ignored (expected \"<cert_id> <account>\"): line 2: %s",
             jpki_mapline_text(why));
    is_str(w, want, "%s: the warning", what);
    jpki_map_free(m);
}

static void test_bad(void)
{
    char l[300];

    bad_line("x", 1, JPKI_MAPLINE_CERT_ID, "one character");
    bad_line(A, 32, JPKI_MAPLINE_NO_ACCOUNT, "a cert_id alone");
    bad_line(A "   ", 35, JPKI_MAPLINE_NO_ACCOUNT, "a cert_id and blanks");
    bad_line(A "\talice", 38, JPKI_MAPLINE_CERT_ID, "a tab, not a space");
    bad_line("0123456789ABCDEF0123456789ABCDEF alice", 38,
             JPKI_MAPLINE_CERT_ID, "upper-case hex");
    bad_line("0123456789abcdef0123456789abcdeg alice", 38,
             JPKI_MAPLINE_CERT_ID, "a non-hex digit");
    bad_line("0123456789abcdef0123456789abcde alice", 37,
             JPKI_MAPLINE_CERT_ID, "31 digits");
    bad_line(A "0 alice", 39, JPKI_MAPLINE_CERT_ID, "33 digits");
    bad_line(" " A " alice", 39, JPKI_MAPLINE_CERT_ID, "a leading blank");
    memset(l, 'a', sizeof(l));
    memcpy(l, A " ", 33);
    bad_line(l, 33 + 129, JPKI_MAPLINE_ACCOUNT_LONG, "an account of 129 bytes");
    bad_line(A " a\"b", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a quote");
    bad_line(A " a\\b", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a backslash");
    bad_line(A " a\x01" "b", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a control character");
    bad_line(A " a\x7f" "b", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "DEL");
    bad_line(A " a\0b", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a NUL byte");
    bad_line(A " a\rb", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a CR inside");
    bad_line(A " \xff", 34, JPKI_MAPLINE_ACCOUNT_CHARS, "not UTF-8");
    bad_line(A " \xc0\xaf", 35, JPKI_MAPLINE_ACCOUNT_CHARS, "overlong UTF-8");
    bad_line(A " \xed\xa0\x80", 36, JPKI_MAPLINE_ACCOUNT_CHARS, "a UTF-16 surrogate");
    bad_line(A " \xe5\xb1", 35, JPKI_MAPLINE_ACCOUNT_CHARS, "truncated UTF-8");
}

static void test_limits(void)
{
    char l[400];
    jpki_map *m;
    uint8_t one = 'x', *big;

    /* an account of exactly 128 bytes */
    memset(l, 'a', sizeof(l));
    memcpy(l, A " ", 33);
    m = parse_s(l, 33 + 128);
    ok(m != NULL && m->n == 1 && m->e[0].len == 128, "an account of 128 bytes: kept");
    ok(look(m, A) != NULL && strlen(look(m, A)) == 128, "... and found whole");
    jpki_map_free(m);
    /* 64 MiB: read; one byte more: refused */
    big = malloc(JPKI_MAP_FILE_MAX + 1);
    if (big == NULL) {
        ok(0, "cannot allocate 64 MiB");
        return;
    }
    memset(big, '\n', JPKI_MAP_FILE_MAX + 1);
    memcpy(big, A " alice", 38);
    m = NULL;
    ok(jpki_map_parse(big, JPKI_MAP_FILE_MAX, &m) == JPKI_OK && m->n == 1,
       "a file of exactly 64 MiB is read");
    jpki_map_free(m);
    m = (jpki_map *)&one;
    ok(jpki_map_parse(big, JPKI_MAP_FILE_MAX + 1, &m) == JPKI_ERR_TOO_LARGE
       && m == NULL, "one byte more: JPKI_ERR_TOO_LARGE");
    free(big);
}

static void test_duplicates_and_many(void)
{
    char w[2048], f[2048];
    jpki_map *m;

    m = parse(B " bob\n" A " alice\n" A " mallory\nbad\n" A " eve\n");
    ok(m != NULL && m->n == 2, "a cert_id twice: one mapping");
    is_str(look(m, A), "alice", "... the first line stands");
    is_int(m->bad, 3, "... the later ones and the bad line are malformed");
    jpki_map_warning(m, "m", w, sizeof(w));
    is_str(w, "mapping file \"m\": 3 malformed lines ignored (expected "
           "\"<cert_id> <account>\"): line 3: the cert_id is mapped on line 2 "
           "already; line 4: it does not start with a cert_id (32 lower-case "
           "hex digits) and a space; line 5: the cert_id is mapped on line 2 "
           "already", "... named in line order");
    jpki_map_free(m);

    /* more malformed lines than are shown: the first four, then "..." */
    snprintf(f, sizeof(f), "%s x\n%s\n1\n2\n3\n" A " a\n4\n5\n" A " b\n", C, C);
    m = parse(f);
    ok(m != NULL && m->n == 2 && m->bad == 7, "seven malformed lines counted");
    jpki_map_warning(m, "m", w, sizeof(w));
    ok(strstr(w, "7 malformed lines") && strstr(w, "line 2: no account")
       && strstr(w, "line 3: it does not") && strstr(w, "line 5: it does not")
       && !strstr(w, "line 7:") && !strstr(w, "line 9:")
       && strcmp(w + strlen(w) - 5, "; ...") == 0,
       "... the first four named, then ...: %s", w);
    /* a small buffer: truncated, terminated */
    jpki_map_warning(m, "m", w, 20);
    is_int(strlen(w), 19, "a short buffer: truncated");
    jpki_map_free(m);
}

static void test_many_sorted(void)
{
    enum { N = 5000 };
    char *f = malloc(N * 48), id[33], out[JPKI_ACCOUNT_MAX + 1];
    size_t o = 0, i, found = 0;
    jpki_map *m;

    for (i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "%08zx%024zx", (i * 2654435761u) & 0xffffffffu, i);
        o += (size_t)sprintf(f + o, "%s u%zu\n", id, i);
    }
    m = parse_s(f, o);
    ok(m != NULL && m->n == N, "5000 lines in no order");
    for (i = 0; m && i < N; i++) {
        char want[16];
        snprintf(id, sizeof(id), "%08zx%024zx", (i * 2654435761u) & 0xffffffffu, i);
        snprintf(want, sizeof(want), "u%zu", i);
        found += jpki_map_lookup(m, id, out) > 0 && strcmp(out, want) == 0;
    }
    is_int(found, N, "... each found with its account");
    jpki_map_free(m);
    free(f);
}

/* Edits s; the result as a string (static), NULL on error. */
static const char *edit(const char *s, const char *id, const char *acct,
                        int *found, jpki_err *err)
{
    static char res[4096];
    uint8_t *out = NULL;
    size_t n = 0;
    jpki_err e = jpki_map_edit((const uint8_t *)s, strlen(s), id, acct, &out,
                               &n, found);

    if (err)
        *err = e;
    if (e != JPKI_OK)
        return NULL;
    memcpy(res, out, n);
    res[n] = '\0';
    free(out);
    return res;
}

static void test_writer(void)
{
    const char *r;
    int found = -1;
    jpki_err e;
    jpki_map *m;
    char l[200];

    r = edit("", A, "alice", &found, NULL);
    is_str(r, A " alice\n", "add to an empty file");
    ok(found == 0, "... nothing found");
    r = edit("# comment\n" A " alice\nbad line\n" B " bob", A, "alice2",
             &found, NULL);
    is_str(r, "# comment\nbad line\n" B " bob\n" A " alice2\n",
           "replace: the old line out, comments and malformed lines kept, a "
           "newline added to the last line");
    ok(found == 1, "... found");
    r = edit(A " alice\r\n" A " dup\n" B " bob\n", A, NULL, &found, NULL);
    is_str(r, B " bob\n", "remove: every line of the cert_id");
    ok(found == 1, "... found");
    r = edit(B " bob\n", A, NULL, &found, NULL);
    is_str(r, B " bob\n", "remove what is not there: unchanged");
    ok(found == 0, "... not found");
    r = edit(A "x alice\n" A "\n", A, NULL, &found, NULL);
    is_str(r, A "x alice\n" A "\n", "lines that only start with the cert_id stay");
    ok(found == 0, "... not found");

    ok(edit("", "0123", "a", &found, &e) == NULL && e == JPKI_ERR_INVALID,
       "a short cert_id: refused");
    ok(edit("", "0123456789ABCDEF0123456789ABCDEF", "a", &found, &e) == NULL
       && e == JPKI_ERR_INVALID, "an upper-case cert_id: refused");
    ok(edit("", A, "a\"b", &found, &e) == NULL && e == JPKI_ERR_INVALID,
       "an account with a quote: refused");
    ok(edit("", A, "", &found, &e) == NULL && e == JPKI_ERR_INVALID,
       "an empty account: refused");
    memset(l, 'a', 129);
    l[129] = '\0';
    ok(edit("", A, l, &found, &e) == NULL && e == JPKI_ERR_INVALID,
       "an account of 129 bytes: refused");
    l[128] = '\0';
    ok(edit("", A, l, &found, &e) != NULL, "an account of 128 bytes: written");
    ok(edit("", A, "a\nb", &found, &e) == NULL && e == JPKI_ERR_INVALID,
       "an account with a newline: refused (it would make two lines)");

    /* round trips: what the writer writes, the parser reads back */
    r = edit("# x\n" B " bob\n", A, "\xe5\xb1\xb1 x", &found, NULL);
    m = parse(r);
    ok(m && m->n == 2 && m->bad == 0, "round trip: every line read back");
    is_str(look(m, A), "\xe5\xb1\xb1 x", "... the new account");
    is_str(look(m, B), "bob", "... the old one");
    jpki_map_free(m);
    r = edit(r, A, l, &found, NULL);
    m = parse(r);
    ok(m && m->n == 2 && m->bad == 0 && look(m, A) && strlen(look(m, A)) == 128,
       "round trip: replaced by a 128-byte account");
    jpki_map_free(m);
    r = edit(r, B, NULL, &found, NULL);
    m = parse(r);
    ok(m && m->n == 1 && look(m, B) == NULL, "round trip: removed");
    jpki_map_free(m);
}

static void test_writer_limit(void)
{
    size_t n = JPKI_MAP_FILE_MAX - 20;
    uint8_t *big = malloc(n), *out = NULL;
    size_t outlen;
    int found;

    if (big == NULL)
        return;
    memset(big, '#', n);
    big[n - 1] = '\n';
    ok(jpki_map_edit(big, n, A, "alice", &out, &outlen, &found)
       == JPKI_ERR_TOO_LARGE && out == NULL,
       "a new line past 64 MiB: refused (the gate would not read the file)");
    ok(jpki_map_edit(big, n, A, NULL, &out, &outlen, &found) == JPKI_OK
       && outlen == n, "a removal at 64 MiB - 20: fine");
    free(out);
    free(big);
}

/* Many changes in one rewrite (jpkictl map import). */
static void test_writer_many(void)
{
    jpki_map_change ch[3] = {{B, "bob2"}, {A, NULL}, {C, "carol"}};
    uint8_t *out = NULL;
    size_t n = 0, found = 99;
    const char *old = "# x\n" A " alice\n" B " bob\n" B " bob-dup\nbad\n" C "x\n";
    jpki_map *m;

    ok(jpki_map_edit_many((const uint8_t *)old, strlen(old), ch, 3, &out, &n,
                          &found) == JPKI_OK, "three changes at once");
    ok(out && n == strlen("# x\nbad\n" C "x\n" B " bob2\n" C " carol\n")
       && memcmp(out, "# x\nbad\n" C "x\n" B " bob2\n" C " carol\n", n) == 0,
       "... every line of the three cert_ids out, the new lines at the end in "
       "the order given, the others kept");
    is_int(found, 3, "... three lines left out");
    free(out);
    ok(jpki_map_edit_many((const uint8_t *)"", 0, NULL, 0, &out, &n, &found)
       == JPKI_OK && n == 0 && found == 0, "no change to an empty file: empty");
    free(out);
    ch[1].cert_id = B;
    ok(jpki_map_edit_many((const uint8_t *)old, strlen(old), ch, 3, &out, &n,
                          &found) == JPKI_ERR_INVALID && out == NULL,
       "a cert_id given twice: refused");
    ch[1].cert_id = "0123456789ABCDEF0123456789ABCDEF";
    ok(jpki_map_edit_many((const uint8_t *)old, strlen(old), ch, 3, &out, &n,
                          &found) == JPKI_ERR_INVALID, "an upper-case cert_id: refused");
    ch[1].cert_id = A;
    ch[1].account = "a\"b";
    ok(jpki_map_edit_many((const uint8_t *)old, strlen(old), ch, 3, &out, &n,
                          &found) == JPKI_ERR_INVALID, "an invalid account: refused");

    /* 20000 additions to a file of 20000 other lines: read back whole */
    {
        enum { N = 20000 };
        static char ids[2 * N][33];
        static jpki_map_change many[N];
        char *f = malloc(N * 40 + 1), acct[32];
        size_t i, o = 0, good = 0;

        for (i = 0; i < 2 * N; i++)
            snprintf(ids[i], 33, "%08zx%024zx", (i * 2654435761u) & 0xffffffffu, i);
        for (i = 0; i < N; i++)
            o += (size_t)snprintf(f + o, N * 40 + 1 - o, "%s o%zu\n", ids[i], i);
        for (i = 0; i < N; i++) {
            many[i].cert_id = ids[N + i];
            many[i].account = "new";
        }
        ok(jpki_map_edit_many((uint8_t *)f, o, many, N, &out, &n, &found)
           == JPKI_OK && found == 0, "20000 lines added to 20000 others");
        m = out ? parse_s((const char *)out, n) : NULL;
        ok(m && m->n == 2 * N && m->bad == 0, "... 40000 mappings read back");
        for (i = 0; m && i < 2 * N; i++) {
            char want[16];
            snprintf(want, sizeof(want), i < N ? "o%zu" : "new", i);
            good += jpki_map_lookup(m, ids[i], acct) > 0 && strcmp(acct, want) == 0;
        }
        is_int(good, 2 * N, "... each with its account");
        jpki_map_free(m);
        free(out);
        free(f);
    }
}

static void test_read(void)
{
    char path[] = "/tmp/test_mapfile.XXXXXX", why[512];
    jpki_map *m = NULL;
    int fd = mkstemp(path);

    ok(fd >= 0 && write(fd, A " alice\n", 39) == 39, "a file written");
    close(fd);
    ok(jpki_map_read(path, &m, why, sizeof(why)) == JPKI_OK && m->n == 1,
       "jpki_map_read reads it");
    jpki_map_free(m);
    unlink(path);
    ok(jpki_map_read(path, &m, why, sizeof(why)) == JPKI_ERR_IO && m == NULL,
       "a missing file: JPKI_ERR_IO");
    ok(strstr(why, "mapping file") && strstr(why, path), "... the sentence names it: %s", why);
}

int main(void)
{
    test_good();
    test_bad();
    test_limits();
    test_duplicates_and_many();
    test_many_sorted();
    test_writer();
    test_writer_limit();
    test_writer_many();
    test_read();
    return done_testing();
}
