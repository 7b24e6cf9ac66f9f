/* test_audit.c - the audit trail (common/audit.c, audit_verify.c): a
 * verdict's line, the MAC chain, a key file, the head read back from a
 * file's tail, the write under the shared area, and each of the
 * verifier's findings. */
#include "jpki.h"
#include "audit.h"
#include "shared.h"
#include "tap.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t key[32], key2[32];

/* ---- the verifier's findings, collected ---- */
static char found[8192];
static int errors, notes;

static void report(void *ud, int error, const char *file, uint64_t line,
                   const char *what)
{
    size_t o = strlen(found);
    (void)ud;
    snprintf(found + o, sizeof(found) - o, "%s %s:%llu: %s\n",
             error ? "E" : "N", file, (unsigned long long)line, what);
    if (error)
        errors++;
    else
        notes++;
}

/* n lines of a chain from head into lines[] (each with its newline). */
static char lines[32][JPKI_AUDIT_LINE_MAX];
static void make_chain(int n, jpki_audit_head *head)
{
    char body[256];
    jpki_audit_head next;
    int i;

    for (i = 0; i < n; i++) {
        snprintf(body, sizeof(body), "{\"ts\":%d,\"event\":\"login\","
                 "\"result\":\"ok\",\"account\":\"user%d\"}", 1000 + i, i);
        if (jpki_audit_line(head, key, body, strlen(body), lines[i],
                            sizeof(lines[i]), &next) == 0)
            abort();
        *head = next;
    }
}

/* Verifies the lines idx[0..n) (-1: a file break) of lines[]; the text of
 * the line may be replaced by alt for the index alt_at. */
static uint64_t verify(const int *idx, int n, int alt_at, const char *alt,
                       int last_no_newline, int64_t last_seq)
{
    jpki_audit_verifier *v = jpki_audit_verifier_new(key, report, NULL);
    jpki_audit_summary sum;
    char name[16];
    int i, file = 1;
    uint64_t e;

    found[0] = '\0';
    errors = notes = 0;
    jpki_audit_verify_file(v, "a.log");
    for (i = 0; i < n; i++) {
        const char *l;
        size_t len;

        if (idx[i] < 0) {
            snprintf(name, sizeof(name), "%c.log", 'a' + file++);
            jpki_audit_verify_file(v, name);
            continue;
        }
        l = i == alt_at ? alt : lines[idx[i]];
        len = strlen(l);
        if (len > 0 && l[len - 1] == '\n')
            len--;
        jpki_audit_verify_line(v, l, len, last_no_newline && i == n - 1);
    }
    e = jpki_audit_verify_end(v, last_seq, &sum);
    jpki_audit_verifier_free(v);
    return e;
}

static void test_body(void)
{
    jpki_audit_fields f;
    char out[1024], small[40];
    size_t n;

    memset(&f, 0, sizeof(f));
    f.ts = 1700000000;
    f.event = "login";
    f.result = "denied";
    f.reason = "cert_revoked";
    f.account = "al\"ice";
    f.cert_id = "0f1e";
    f.issuer = "card";
    f.revocation = "ocsp";
    f.revocation_age = 42;
    f.peer = "127.0.0.1";
    f.request_id = "abc123";
    f.location = "/jpki/login?token=SECRET{x}";
    n = jpki_audit_body(out, sizeof(out), &f);
    ok(n > 0 && n == strlen(out), "a body");
    ok(strncmp(out, "{\"ts\":1700000000,\"event\":\"login\",\"result\":"
               "\"denied\",", 51) == 0, "its first fields as before: %s", out);
    ok(strstr(out, "\"revocation_age\":42") != NULL, "the revocation's age");
    ok(strstr(out, "\"request_id\":\"abc123\"") != NULL, "the request id");
    ok(strstr(out, "\"location\":\"/jpki/login\"") != NULL,
       "the location without its query");
    ok(strstr(out, "SECRET") == NULL, "no query string in it");
    ok(strstr(out, "al\\u0022ice") != NULL, "a quote escaped");
    f.location = "/a b{}\x01\xc3\xa9";
    f.revocation_age = -1;
    f.account = "caf\xc3\xa9";
    f.action = "bind";
    n = jpki_audit_body(out, sizeof(out), &f);
    ok(strstr(out, "\"location\":\"/a%20b%7B%7D%01%C3%A9\"") != NULL,
       "a location's bytes outside printable ASCII percent-encoded: %s", out);
    ok(strstr(out, "\"revocation_age\":null") != NULL, "no age: null");
    ok(strstr(out, "\"account\":\"caf\xc3\xa9\"") != NULL,
       "a UTF-8 account kept");
    ok(strstr(out, "\"event\":\"login\",\"action\":\"bind\"") != NULL,
       "an admin action");
    f.account = "bad\xff";
    n = jpki_audit_body(out, sizeof(out), &f);
    ok(strstr(out, "\"account\":\"bad?\"") != NULL, "invalid UTF-8 replaced");
    ok(jpki_audit_body(small, sizeof(small), &f) == 0 && small[0] == '\0',
       "a body that does not fit: 0");
}

static void test_rid(void)
{
    char r[JPKI_AUDIT_RID_MAX + 1];

    ok(jpki_audit_rid_ok("0123abcdef", 10), "hex id");
    ok(jpki_audit_rid_ok("ZXq@Wn8AAQEAAH-rTkoAAAAA", 24), "a UNIQUE_ID");
    ok(jpki_audit_rid_ok("a+/=_.:", 7), "a log id's characters");
    ok(!jpki_audit_rid_ok("a\"b", 3), "a quote: refused");
    ok(!jpki_audit_rid_ok("a b", 3), "a blank: refused");
    ok(!jpki_audit_rid_ok("", 0), "empty: refused");
    ok(!jpki_audit_rid_ok("0123456789012345678901234567890123456789x", 41),
       "41 characters: refused");
    ok(jpki_audit_rid_make(r) && strlen(r) == 32
       && strspn(r, "0123456789abcdef") == 32, "a made id: 32 hex");
}

static void test_line(void)
{
    jpki_audit_head head = {0, {0}}, next;
    jpki_audit_parsed p;
    char out[JPKI_AUDIT_LINE_MAX], ed[JPKI_AUDIT_LINE_MAX];
    const char *body = "{\"ts\":1,\"event\":\"login\"}";
    size_t n;
    char *x;

    n = jpki_audit_line(&head, key, body, strlen(body), out, sizeof(out),
                        &next);
    ok(n > 0 && out[n - 1] == '\n' && strlen(out) == n, "a line");
    ok(strncmp(out, "{\"seq\":1,\"prev\":\"0000000000000000000000000000000000"
               "000000000000000000000000000000\",\"ts\":1,", 90) == 0,
       "seq 1, prev zeros, then the body's fields: %s", out);
    ok(strstr(out, ",\"mac\":\"") == out + n - 1 - 74, "the MAC last");
    ok(next.seq == 1, "the head moves to seq 1");
    ok(jpki_audit_parse(out, n - 1, key, &p) == 0 && p.mac_ok
       && p.chain_start && p.seq == 1 && memcmp(p.mac, next.mac, 32) == 0,
       "parsed back: its MAC verifies, a chain start");
    ok(jpki_audit_parse(out, n - 1, key2, &p) == 0 && !p.mac_ok,
       "under another key: no");
    memcpy(ed, out, n + 1);
    x = strstr(ed, "login");
    x[0] = 'L';
    ok(jpki_audit_parse(ed, n - 1, key, &p) == 0 && !p.mac_ok,
       "a field edited: no");
    memcpy(ed, out, n + 1);
    x = strstr(ed, "\"mac\":\"") + 7;
    x[0] = x[0] == 'a' ? 'b' : 'a';
    ok(jpki_audit_parse(ed, n - 1, key, &p) == 0 && !p.mac_ok,
       "the MAC edited: no");
    ok(jpki_audit_parse("{\"seq\":1}", 9, key, &p) == -1, "not a line");
    ok(jpki_audit_parse(out, n - 5, key, &p) == -1, "a line cut: not a line");
    head = next;
    n = jpki_audit_line(&head, key, body, strlen(body), out, sizeof(out),
                        &next);
    ok(jpki_audit_parse(out, n - 1, key, &p) == 0 && p.mac_ok && p.seq == 2
       && !p.chain_start && memcmp(p.prev, head.mac, 32) == 0,
       "the second line links to the first");
    ok(jpki_audit_line(&head, key, "{}", 2, out, sizeof(out), &next) == 0,
       "an empty object: refused");
    ok(jpki_audit_line(&head, key, "{\"a\":\n1}", 8, out, sizeof(out),
                       &next) == 0, "a body with a newline: refused");
    ok(jpki_audit_line(&head, key, body, strlen(body), out, 100, &next) == 0,
       "a line that does not fit: refused");
}

static void test_tail(void)
{
    jpki_audit_head head = {0, {0}}, h;
    char buf[4 * JPKI_AUDIT_LINE_MAX];
    int partial;

    make_chain(3, &head);
    snprintf(buf, sizeof(buf), "%s%s%s", lines[0], lines[1], lines[2]);
    ok(jpki_audit_tail_head(buf, strlen(buf), 1, key, &h, &partial)
       == JPKI_AUDIT_TAIL_LINKED && h.seq == 3 && !partial
       && memcmp(h.mac, head.mac, 32) == 0, "the head from the last line");
    ok(jpki_audit_tail_head(buf + 5, strlen(buf) - 5, 0, key, &h, &partial)
       == JPKI_AUDIT_TAIL_LINKED && h.seq == 3,
       "... from a tail that starts mid-line");
    ok(jpki_audit_tail_head("", 0, 1, key, &h, &partial)
       == JPKI_AUDIT_TAIL_EMPTY && h.seq == 0, "an empty file: a chain start");
    ok(jpki_audit_tail_head(buf, strlen(buf), 1, key2, &h, &partial)
       == JPKI_AUDIT_TAIL_UNVERIFIED && h.seq == 0,
       "another key: a chain start, unverified");
    strcat(buf, "{\"seq\":4,\"pre");
    ok(jpki_audit_tail_head(buf, strlen(buf), 1, key, &h, &partial)
       == JPKI_AUDIT_TAIL_LINKED && h.seq == 3 && partial,
       "a partial last line: left out, said");
    ok(jpki_audit_tail_head(lines[2] + 3, strlen(lines[2]) - 3, 0, key, &h,
                            &partial) == JPKI_AUDIT_TAIL_UNVERIFIED,
       "a tail holding no whole line: unverified");
}

static void test_key_file(const char *dir)
{
    char p[512], err[512];
    uint8_t k[32], k2[32];
    FILE *f;

    snprintf(p, sizeof(p), "%s/key", dir);
    ok(jpki_audit_key_file(p, k, err, sizeof(err)) != JPKI_OK
       && strstr(err, "No such file") != NULL, "a missing key file: %s", err);
    f = fopen(p, "w");
    fputs("short\n", f);
    fclose(f);
    chmod(p, 0600);
    ok(jpki_audit_key_file(p, k, err, sizeof(err)) != JPKI_OK
       && strstr(err, "too short") != NULL, "a short key file: %s", err);
    f = fopen(p, "w");
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    chmod(p, 0644);
    ok(jpki_audit_key_file(p, k, err, sizeof(err)) != JPKI_OK
       && strstr(err, "by others") != NULL, "a world-readable one: %s", err);
    chmod(p, 0640);
    ok(jpki_audit_key_file(p, k, err, sizeof(err)) == JPKI_OK, "a good one");
    ok(jpki_audit_key((const uint8_t *)"0123456789abcdef0123456789abcdef", 32,
                      k2) && memcmp(k, k2, 32) == 0,
       "its key: HKDF of its bytes, the newline left out");
    ok(jpki_audit_key_file("key", k, err, sizeof(err)) != JPKI_OK
       && strstr(err, "absolute") != NULL, "a relative path: refused");
}

static void lock_fn(void *ud) { (*(int *)ud)++; }
static void unlock_fn(void *ud) { (*(int *)ud)--; }

static char *slurp(const char *path, size_t *len)
{
    static char buf[64 * 1024];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

    if (fd >= 0)
        close(fd);
    *len = n > 0 ? (size_t)n : 0;
    buf[*len] = '\0';
    return buf;
}

static void test_append(const char *dir)
{
    size_t sz = jpki_shared_size(), len;
    void *m1 = calloc(1, sz), *m2 = calloc(1, sz);
    jpki_shared *sh = jpki_shared_init(m1, sz), *sh2;
    int depth = 0, fd, fd2, i;
    jpki_shm_lock lock = {lock_fn, unlock_fn, &depth};
    jpki_audit_head h;
    char p[512], old[520], msg[512], err[256], *text;
    int partial;
    const char *body = "{\"ts\":5,\"event\":\"logout\"}";

    snprintf(p, sizeof(p), "%s/audit.log", dir);
    snprintf(old, sizeof(old), "%s.1", p);
    ok(jpki_audit_recover(sh, &lock, p, key, 10, msg, sizeof(msg)) == JPKI_OK
       && msg[0] == '\0' && depth == 0, "no file yet: a chain set up");
    fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0640);
    for (i = 0; i < 3; i++)
        ok(jpki_audit_append(sh, &lock, p, key, fd, body, 11, err,
                             sizeof(err)) == 0 && depth == 0,
           "line %d written under the lock", i + 1);
    text = slurp(p, &len);
    ok(jpki_audit_tail_head(text, len, 1, key, &h, &partial)
       == JPKI_AUDIT_TAIL_LINKED && h.seq == 3, "three lines, chained");
    ok(strncmp(text, "{\"seq\":1,\"prev\":\"0000", 21) == 0,
       "the first a chain start");

    /* a cold start: a new area takes the head from the file */
    sh2 = jpki_shared_init(m2, sz);
    ok(jpki_audit_recover(sh2, &lock, p, key, 20, msg, sizeof(msg))
       == JPKI_OK && msg[0] == '\0', "a cold start: the head recovered");
    ok(jpki_audit_append(sh2, &lock, p, key, fd, body, 21, err,
                         sizeof(err)) == 0, "... a line after it");
    text = slurp(p, &len);
    ok(jpki_audit_tail_head(text, len, 1, key, &h, &partial)
       == JPKI_AUDIT_TAIL_LINKED && h.seq == 4, "... seq 4, linked");
    /* a reload: the area's chain is kept, the file not read */
    ok(jpki_audit_recover(sh, &lock, p, key2, 30, msg, sizeof(msg))
       == JPKI_OK && msg[0] == '\0', "a reload keeps the area's chain");

    /* rotation: renamed, this process not reopened; the next line goes to
     * the new file and links to the old file's last */
    rename(p, old);
    fd2 = open(p, O_WRONLY | O_APPEND | O_CREAT, 0640);
    close(fd2);
    ok(jpki_audit_append(sh2, &lock, p, key, fd, body, 31, err,
                         sizeof(err)) == 0, "a line after a rotation");
    text = slurp(p, &len);
    ok(strncmp(text, "{\"seq\":5,", 9) == 0,
       "... in the new file (the stale descriptor not used): seq 5");
    ok(verify(NULL, 0, -1, NULL, 0, -1) > 0, "(verify of nothing: an error)");
    close(fd);

    /* a partial last line: the next line starts on a new one */
    fd = open(p, O_WRONLY | O_APPEND);
    (void)!write(fd, "{\"seq\":6,\"pr", 12);
    sh2 = jpki_shared_init(memset(m2, 0, sz), sz);
    ok(jpki_audit_recover(sh2, &lock, p, key, 40, msg, sizeof(msg))
       == JPKI_OK && strstr(msg, "part of a line") != NULL,
       "a partial last line: said (%s)", msg);
    ok(jpki_audit_append(sh2, &lock, p, key, fd, body, 41, err,
                         sizeof(err)) == 0, "a line after it");
    text = slurp(p, &len);
    ok(strstr(text, "\"pr\n{\"seq\":6,") != NULL,
       "... on a new line, seq 6 linked to seq 5");
    close(fd);

    /* a file whose last line another key made: a chain starts */
    sh2 = jpki_shared_init(memset(m2, 0, sz), sz);
    ok(jpki_audit_recover(sh2, &lock, old, key2, 50, msg, sizeof(msg))
       == JPKI_OK && strstr(msg, "does not verify") != NULL,
       "another key: a new chain, said");
    ok(jpki_audit_append(sh, &lock, p, key, -1, body, 51, err,
                         sizeof(err)) == -1 && err[0] != '\0',
       "no descriptor: refused (%s)", err);
    free(m1);
    free(m2);
}

static void test_verifier(void)
{
    jpki_audit_head head = {0, {0}};
    int all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    int del[9] = {0, 1, 2, 3, 5, 6, 7, 8, 9};
    int del3[7] = {0, 1, 2, 6, 7, 8, 9};
    int swap[10] = {0, 1, 2, 4, 3, 5, 6, 7, 8, 9};
    int two[11] = {0, 1, 2, 3, 4, -1, 5, 6, 7, 8, 9};
    int gapf[8] = {0, 1, 2, -1, 6, 7, 8, 9};
    int rev[11] = {5, 6, 7, 8, 9, -1, 0, 1, 2, 3, 4};
    int ins[11] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9};
    int ins2[11] = {0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9};
    char forged[JPKI_AUDIT_LINE_MAX], *x;
    jpki_audit_head h2;

    make_chain(10, &head);
    ok(verify(all, 10, -1, NULL, 0, -1) == 0 && notes == 1
       && strstr(found, "a.log:1: chain start"),
       "a whole chain verifies; its start said:\n%s", found);
    ok(verify(all, 10, -1, NULL, 0, 10) == 0, "... with its recorded head");
    ok(verify(all, 10, -1, NULL, 0, 12) == 1
       && strstr(found, "tail truncated") && strstr(found, "11..12"),
       "a recorded head past the end: tail truncated:\n%s", found);

    /* edited */
    strcpy(forged, lines[4]);
    x = strstr(forged, "user4");
    x[4] = '9';
    ok(verify(all, 10, 4, forged, 0, -1) == 1
       && strstr(found, "E a.log:5: mac mismatch (edited)"),
       "an edited field:\n%s", found);

    /* removed */
    ok(verify(del, 9, -1, NULL, 0, -1) == 1
       && strstr(found, "a.log:5: seq gap: line 5 removed"),
       "a line removed:\n%s", found);
    ok(verify(del3, 7, -1, NULL, 0, -1) == 1
       && strstr(found, "seq gap: lines 4..6 removed"),
       "three lines removed:\n%s", found);

    /* swapped */
    ok(verify(swap, 10, -1, NULL, 0, -1) == 1
       && strstr(found, "a.log:5: out of order: seq 4 after seq 5")
       && !strstr(found, "gap"), "two lines swapped:\n%s", found);

    /* inserted: a forged line where the chain expects seq 6 */
    strcpy(forged, lines[5]);
    x = strstr(forged, "user5");
    x[4] = '7';
    ok(verify(ins2, 11, 5, forged, 0, -1) == 1
       && strstr(found, "a.log:6: inserted/foreign line"),
       "a forged line inserted before the one it copies:\n%s", found);
    ok(verify(ins, 11, 10, "some text", 0, -1) == 1
       && strstr(found, "a.log:11: inserted/foreign line (not an audit line)"),
       "a foreign line:\n%s", found);
    /* a duplicate of a genuine line */
    ok(verify(ins, 11, -1, NULL, 0, -1) == 1
       && strstr(found, "out of order: seq 10 after seq 10"),
       "a genuine line copied again:\n%s", found);

    /* truncated mid-line */
    strcpy(forged, lines[9]);
    forged[40] = '\0';
    ok(verify(all, 10, 9, forged, 1, -1) == 1
       && strstr(found, "a.log:10: truncated last line"),
       "truncated mid-line:\n%s", found);
    ok(verify(all, 10, -1, NULL, 1, -1) == 1
       && strstr(found, "truncated last line (its newline removed)"),
       "only its newline cut:\n%s", found);

    /* rotation: two files, in order */
    ok(verify(two, 11, -1, NULL, 0, -1) == 0 && notes == 1,
       "two files in order verify:\n%s", found);
    ok(verify(two + 6, 5, -1, NULL, 0, -1) == 0
       && strstr(found, "continues from a line before these files (first "
                        "seq 6)"), "the second alone: said, no error:\n%s",
       found);
    ok(verify(gapf, 8, -1, NULL, 0, -1) == 1
       && strstr(found, "b.log:1: chain break between files: a.log ends at "
                        "seq 3, this file begins at seq 7"),
       "a file missing between two:\n%s", found);
    ok(verify(rev, 11, -1, NULL, 0, -1) == 1
       && strstr(found, "E b.log:1: chain restart"),
       "files in the wrong order:\n%s", found);

    /* a chain start in the middle: a note */
    h2.seq = 0;
    memset(h2.mac, 0, 32);
    make_chain(3, &h2);
    {
        int mid[6] = {0, 1, 2, -1, 0, 1};
        ok(verify(mid, 6, -1, NULL, 0, -1) == 1
           && strstr(found, "b.log:1: chain restart"),
           "a new chain after a cold start without a head: said:\n%s",
           found);
    }
    /* under the wrong key: every line */
    {
        uint8_t save[32];
        memcpy(save, key, 32);
        memcpy(key, key2, 32);
        ok(verify(all, 10, -1, NULL, 0, -1) >= 10, "another key: no line "
           "verifies");
        memcpy(key, save, 32);
    }
}

int main(void)
{
    char dir[] = "/tmp/jpki-audit-XXXXXX";

    jpki_audit_key((const uint8_t *)"0123456789abcdef0123456789abcdef", 32,
                   key);
    jpki_audit_key((const uint8_t *)"another secret, another key......", 32,
                   key2);
    if (mkdtemp(dir) == NULL)
        return 1;
    test_body();
    test_rid();
    test_line();
    test_tail();
    test_key_file(dir);
    test_append(dir);
    test_verifier();
    {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)!system(cmd);
    }
    return done_testing();
}
