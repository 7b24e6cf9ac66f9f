/* test_watch.c - common/watch.c: a file's version (device, inode, size,
 * mtime and ctime to the nanosecond); the mapping file watched (read when
 * it changed, a failure logged once for a version and cause, tried again
 * while no table is in force, the table swapped under the lock); a site's
 * CRL files (a directory's files come and go, a record whose parse runs is
 * neither dropped nor reused, "unreadable" once, health, count). */
#include "internal.h"
#include "watch.h"
#include "conf_issuer.h"
#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* got holds want. */
static void like(const char *got, const char *want, const char *name)
{
    if (!ok(got != NULL && strstr(got, want) != NULL, "%s", name))
        printf("#   got: %s\n#   want: ...%s...\n", got ? got : "(null)",
               want);
}

static char dir[256];
static const jpki_ctx *ctx;
static const jpki_issuer *jis;

/* ---- fixtures ----------------------------------------------------- */

/* What was logged since the last take: the sentences (one a line) and
 * how many at each level. */
static char logged[8192];
static int at[4];

static void log_cb(void *ud, jpki_log_level level, const char *msg)
{
    size_t l = strlen(logged);

    (void)ud;
    snprintf(logged + l, sizeof(logged) - l, "%s\n", msg);
    at[(unsigned)level < 4 ? level : 3]++;
}

static void take(void)
{
    logged[0] = '\0';
    memset(at, 0, sizeof(at));
}

static int logs(void)
{
    return at[0] + at[1] + at[2] + at[3];
}

static char *path_of(const char *name)
{
    static char buf[8][512];
    static int i;
    char *b = buf[i++ & 7];

    snprintf(b, sizeof(buf[0]), "%s/%s", dir, name);
    return b;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        printf("# cannot write %s\n", path);
}

/* Writes text into path through a new inode (rename, as editors do). */
static void replace(const char *path, const char *text)
{
    char tmp[600];

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    put(tmp, text);
    if (rename(tmp, path) != 0)
        printf("# cannot rename %s\n", tmp);
}

/* Gives path the times (whole seconds) of an hour ago. */
static void age(const char *path)
{
    struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};

    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        printf("# cannot set the times of %s\n", path);
}

static void copy(const char *from, const char *to)
{
    uint8_t *data;
    size_t len;
    FILE *f;

    if (jpki_load_file(from, 1 << 24, &data, &len) != JPKI_OK) {
        printf("# cannot read %s\n", from);
        return;
    }
    f = fopen(to, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        printf("# cannot write %s\n", to);
    free(data);
}

/* A cert_id of 32 hex digits made of one digit. */
static const char *cid(char c)
{
    static char buf[4][33];
    static int i;
    char *b = buf[i++ & 3];

    memset(b, c, 32);
    b[32] = '\0';
    return b;
}

/* Writes the mapping file p: cert_id of c mapped to name, then extra. */
static void put_map(const char *p, char c, const char *name,
                    const char *extra)
{
    char text[256];

    snprintf(text, sizeof(text), "%s %s\n%s", cid(c), name, extra);
    put(p, text);
}

static char *account(jpki_mapwatch *w, char c)
{
    static char out[JPKI_ACCOUNT_MAX + 1];

    out[0] = '\0';
    if (jpki_mapwatch_lookup(w, cid(c), out) == 0)
        return "(none)";
    return out;
}

/* ---- a file's version --------------------------------------------- */

static void t_file_id(void)
{
    jpki_file_id a, b;
    const char *p = path_of("id.txt");
    struct stat st;
    size_t i;

    put(p, "one\n");
    age(p);
    ok(jpki_file_id_stat(p, &a) == 0, "file id: stat");
    ok(stat(p, &st) == 0, "(stat)");
    jpki_file_id_of(&st, &b);
    ok(jpki_file_id_same(&a, &b), "file id: the same version twice");
    is_int(a.ino, st.st_ino, "file id: inode");
    is_int(a.size, 4, "file id: size");
    is_int(sizeof(jpki_file_id), 56, "file id: 56 bytes, no padding");

    /* each field alone makes another version */
    for (i = 0; i < sizeof(jpki_file_id) / 8; i++) {
        b = a;
        ((int64_t *)&b)[i] ^= 1;
        ok(!jpki_file_id_same(&a, &b), "file id: field %zu alone differs", i);
    }

    /* chmod: only the ctime changes (same inode, size, mtime) */
    usleep(20000);
    ok(chmod(p, 0600) == 0, "(chmod)");
    ok(jpki_file_id_stat(p, &b) == 0, "(stat again)");
    ok(b.ino == a.ino && b.size == a.size && b.mtime_s == a.mtime_s
       && b.mtime_ns == a.mtime_ns, "chmod: same inode, size and mtime");
    ok(!jpki_file_id_same(&a, &b), "chmod: another version (ctime)");

    errno = 0;
    is_int(jpki_file_id_stat(path_of("none.txt"), &b), -1,
           "file id: a file that is not there");
    is_int(errno, ENOENT, "... errno says why");
}

/* ---- the mapping file --------------------------------------------- */

static int locks[3];            /* rdlock, wrlock, unlock */
static void l_rd(void *ud) { (void)ud; locks[0]++; }
static void l_wr(void *ud) { (void)ud; locks[1]++; }
static void l_un(void *ud) { (void)ud; locks[2]++; }

static void t_map_changes(void)
{
    jpki_watch_lock lock = {l_rd, l_wr, l_un, NULL};
    const char *p = path_of("a.map");
    char text[256];
    jpki_mapwatch *w;

    put_map(p, 'a', "alice", "");
    age(p);
    w = jpki_mapwatch_new(p, log_cb, NULL, &lock);
    ok(w != NULL, "map: watcher");
    is_str(account(w, 'a'), "(none)", "map: no table before the first load");
    take();
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "alice", "map: loaded");
    is_int(at[JPKI_LOG_INFO], 1, "map: one info sentence");
    like(logged, "mapping file \"", "... naming the file");
    like(logged, "a.map\" loaded, 1 entries", "... and its entries");
    is_int(locks[1], 1, "map: the table swapped under the write lock");
    ok(locks[0] >= 2 && locks[2] == locks[0] + locks[1],
       "map: lookups under the read lock, each lock released");

    take();
    is_int(jpki_mapwatch_check(w), 0, "map: unchanged: not read again");
    is_int(logs(), 0, "... nothing logged");

    /* rewritten in place, same size, its mtime kept (touch -d, cp -p):
     * only its ctime tells */
    put_map(p, 'a', "carol", "");
    age(p);
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "carol",
           "map: rewritten in place, same size and mtime: read again");

    /* replaced (another inode), same size and times */
    snprintf(text, sizeof(text), "%s david\n", cid('a'));
    replace(p, text);
    age(p);
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "david", "map: replaced, same size: read again");

    /* a reading under way: not started again */
    snprintf(text, sizeof(text), "%s erin\n%s frank\n", cid('a'), cid('b'));
    put(p, text);
    is_int(jpki_mapwatch_check(w), 1, "map: changed: to be read");
    is_int(jpki_mapwatch_check(w), 0, "... not twice while it is read");
    jpki_mapwatch_read(w);
    is_str(account(w, 'a'), "david", "... the table in force meanwhile");
    jpki_mapwatch_apply(w);
    is_str(account(w, 'b'), "frank", "... then the new one");
    is_int(jpki_mapwatch_check(w), 0, "... read once");

    /* malformed lines: a warning, the others apply */
    take();
    put_map(p, 'a', "gina", "not a line\n");
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "gina", "map: malformed line: the others apply");
    is_int(at[JPKI_LOG_WARN], 1, "... a warning");
    like(logged, "1 malformed line ignored", "... saying how many");
    like(logged, "loaded, 1 entries", "... then loaded");
    jpki_mapwatch_free(w);

    is_int(jpki_mapwatch_check(NULL), 0, "map: no watcher: nothing to read");
    is_int(jpki_mapwatch_lookup(NULL, cid('a'), text), 0,
           "map: no watcher: no account");
}

/* A failure is logged once for a version and cause; the table in force
 * stays; that version is not read again until it changes. */
static void t_map_failures(void)
{
    const char *p = path_of("b.map");
    jpki_mapwatch *w;

    put_map(p, 'a', "alice", "");
    w = jpki_mapwatch_new(p, log_cb, NULL, NULL);
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "alice", "map failures: a table in force");

    /* a version that cannot be read (a directory) */
    take();
    ok(unlink(p) == 0 && mkdir(p, 0755) == 0, "(the file becomes a directory)");
    jpki_mapwatch_load(w);
    is_int(at[JPKI_LOG_ERROR], 1, "map: a version that cannot be read: logged");
    like(logged, "cannot read mapping file", "... saying so");
    like(logged, "not a regular file\n", "... and why (a table in force: "
         "not tried again every second)");
    is_str(account(w, 'a'), "alice", "... the table in force stays");
    is_int(jpki_mapwatch_check(w), 0, "... that version is not read again");
    jpki_mapwatch_load(w);
    is_int(logs(), 1, "... nor logged again");

    /* another version failing the same way: logged again */
    take();
    ok(rmdir(p) == 0 && mkdir(p, 0755) == 0, "(another directory)");
    jpki_mapwatch_load(w);
    is_int(at[JPKI_LOG_ERROR], 1, "map: another version that cannot be "
           "read: logged again");

    /* gone: once, until it is back */
    take();
    ok(rmdir(p) == 0, "(gone)");
    jpki_mapwatch_load(w);
    jpki_mapwatch_load(w);
    is_int(at[JPKI_LOG_ERROR], 1, "map: gone: logged once");
    like(logged, "b.map\": No such file or directory\n", "... with the "
         "system's reason");
    is_str(account(w, 'a'), "alice", "... the table in force stays");
    take();
    put_map(p, 'a', "bob", "");
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "bob", "map: back: read");
    is_int(at[JPKI_LOG_ERROR], 0, "... no error");
    jpki_mapwatch_free(w);
}

/* No table in force (a worker's start): a version that cannot be read is
 * tried again at each check (its failure may be transient), logged once
 * for a version and cause. */
static void t_map_no_table(void)
{
    const char *p = path_of("c.map");
    jpki_mapwatch *w;
    int i, tries = 0;

    ok(mkdir(p, 0755) == 0, "(a directory)");
    w = jpki_mapwatch_new(p, log_cb, NULL, NULL);
    take();
    for (i = 0; i < 3; i++) {
        if (jpki_mapwatch_check(w)) {
            tries++;
            jpki_mapwatch_read(w);
            jpki_mapwatch_apply(w);
        }
    }
    is_int(tries, 3, "no table: the version that failed is tried at each "
           "check");
    is_int(at[JPKI_LOG_ERROR], 1, "... logged once");
    like(logged, "not a regular file (tried again every second)\n",
         "... saying it is tried again");

    take();
    ok(rmdir(p) == 0 && mkdir(p, 0755) == 0, "(another directory)");
    jpki_mapwatch_load(w);
    jpki_mapwatch_load(w);
    is_int(at[JPKI_LOG_ERROR], 1, "no table: another version: logged again, "
           "once");

    /* too large: another cause (a sparse file over the limit) */
    take();
    ok(rmdir(p) == 0, "(removed)");
    {
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        ok(fd >= 0 && ftruncate(fd, (off_t)JPKI_MAP_FILE_MAX + 1) == 0,
           "(a file over the limit)");
        if (fd >= 0)
            close(fd);
    }
    jpki_mapwatch_load(w);
    jpki_mapwatch_load(w);
    is_int(at[JPKI_LOG_ERROR], 1, "no table: another cause: logged, once");
    like(logged, "larger than", "... saying why");

    take();
    ok(unlink(p) == 0, "(gone)");
    jpki_mapwatch_load(w);
    like(logged, "No such file or directory (tried again every second)",
         "no table: gone: said to be tried again");
    put_map(p, 'a', "alice", "");
    jpki_mapwatch_load(w);
    is_str(account(w, 'a'), "alice", "no table: fixed: read");
    jpki_mapwatch_free(w);
}

/* ---- the CRL files of a site -------------------------------------- */

typedef struct {
    jpki_crlfile *f[8];
    int n;
} jobs;

/* Keeps the parse "in a thread" (runs it later). */
static int start_later(void *ud, jpki_crlfile *f)
{
    jobs *j = ud;

    if (j->n >= 8)
        return -1;
    j->f[j->n++] = f;
    return 0;
}

static int start_here(void *ud, jpki_crlfile *f)
{
    (*(int *)ud)++;
    return -1;
}

static char *health_of(jpki_crlwatch *w, jpki_crlzone *z)
{
    static char buf[8192];
    jpki_health h;

    jpki_health_init(&h, buf, sizeof(buf), time(NULL), 0, 300);
    jpki_crlwatch_health(w, z, &h);
    return buf;
}

static int count_of(const char *s, const char *what)
{
    int n = 0;

    while ((s = strstr(s, what)) != NULL) {
        n++;
        s += strlen(what);
    }
    return n;
}

static void t_crl_dir(void)
{
    const char *d = path_of("crls");
    const char *src[1] = {d};
    jpki_crlzone *z = jpki_crlzone_local(&(jpki_crlzone_ops){0});
    jpki_crlwatch *w;
    int here = 0;
    char *hj;

    ok(mkdir(d, 0755) == 0, "(a crl= directory)");
    copy(tap_path("ca1.crl"), path_of("crls/ca1.crl"));
    w = jpki_crlwatch_new(ctx, 0, log_cb, NULL, NULL);
    is_int(jpki_crlwatch_issuer(w, jis, src, 1), 0, "crl: an issuer");

    take();
    jpki_crlwatch_pass(w, z, time(NULL), start_here, &here);
    is_int(here, 1, "crl: a file parsed (the adapter declined the thread)");
    is_int(at[JPKI_LOG_INFO], 1, "crl: loaded: an info sentence");
    like(logged, "ca1.crl\" of issuer \"jpki\" loaded", "... the core's");
    is_int(jpki_crlwatch_count(w), 1, "crl: one file");
    hj = health_of(w, z);
    is_int(count_of(hj, "\"issuer\""), 1, "crl health: one file");
    ok(strstr(hj, "\"file\"") == NULL, "... no label of its own (its "
       "issuer has one file)");

    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(logs(), 0, "crl: unchanged: nothing parsed, nothing logged");

    /* the directory gains a file */
    copy(tap_path("ca2.crl"), path_of("crls/ca2.crl"));
    put(path_of("crls/notes.txt"), "not a CRL name\n");
    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(at[JPKI_LOG_INFO], 1, "crl dir: a file added: loaded");
    like(logged, "ca2.crl\"", "... that one");
    is_int(jpki_crlwatch_count(w), 2, "crl dir: two files (not *.txt)");
    hj = health_of(w, z);
    is_int(count_of(hj, "\"issuer\""), 2, "crl health: two files");
    like(hj, "\"file\":\"ca1.crl\"", "... each with its own label");
    like(hj, "\"file\":\"ca2.crl\"", "... both");

    /* ... and loses one */
    ok(unlink(path_of("crls/ca1.crl")) == 0, "(a file removed)");
    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(jpki_crlwatch_count(w), 1, "crl dir: a file removed: not "
           "watched");
    is_int(logs(), 0, "... nothing logged (its CRL stays in force)");
    hj = health_of(w, z);
    ok(strstr(hj, "ca1.crl") == NULL, "crl health: the file gone is not "
       "listed");

    /* touched: its ctime changes: parsed again (a CRL not newer than the
     * one in force is refused, which leaves that one) */
    usleep(20000);
    ok(chmod(path_of("crls/ca2.crl"), 0600) == 0, "(chmod)");
    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(logs(), 1, "crl: its ctime changed: parsed again");

    jpki_crlwatch_free(w);
    jpki_crlzone_free(z);
}

/* A record whose parse runs (in a thread) stays: not dropped when its
 * file leaves the directory, not reused for another file, not parsed
 * twice; let go when the parse ends. */
static void t_crl_in_flight(void)
{
    const char *d = path_of("flight");
    const char *src[1] = {d};
    jpki_crlzone *z = jpki_crlzone_local(&(jpki_crlzone_ops){0});
    jpki_crlwatch *w;
    jpki_crlfile *f;
    jobs j;
    char keep[512];

    memset(&j, 0, sizeof(j));
    ok(mkdir(d, 0755) == 0, "(a crl= directory)");
    copy(tap_path("ca1.crl"), path_of("flight/a.crl"));
    w = jpki_crlwatch_new(ctx, 0, log_cb, NULL, NULL);
    jpki_crlwatch_issuer(w, jis, src, 1);

    take();
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 1, "in flight: the parse taken by the adapter");
    is_int(logs(), 0, "... nothing logged yet");
    f = j.f[0];
    snprintf(keep, sizeof(keep), "%s", jpki_crlfile_path(f));
    like(keep, "flight/a.crl", "... of the file");
    *jpki_crlfile_data(f) = &j;
    jpki_crlfile_build(f);              /* the thread parsed it; its done
                                         * handler has not run yet */

    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 1, "in flight: not parsed twice");

    /* the file leaves the directory, another one comes */
    ok(unlink(path_of("flight/a.crl")) == 0, "(a.crl removed)");
    copy(tap_path("ca2.crl"), path_of("flight/b.crl"));
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 2, "in flight: the new file parsed");
    ok(j.f[1] != f, "... in another record");
    is_str(jpki_crlfile_path(f), keep, "in flight: the record of the file "
           "gone keeps its path");
    ok(*jpki_crlfile_data(f) == &j, "... and the adapter's pointer");
    is_int(jpki_crlwatch_count(w), 1, "... not counted as watched");

    /* the parses end (as a thread's done handler would) */
    take();
    jpki_crlfile_end(f, time(NULL));
    is_int(at[JPKI_LOG_INFO], 1, "in flight: ended: its sentence");
    ok(jpki_crlfile_path(f) == NULL, "... then the record is let go");
    ok(*jpki_crlfile_data(f) == &j, "... the adapter's pointer kept for "
       "the next file");
    jpki_crlfile_build(j.f[1]);
    jpki_crlfile_end(j.f[1], time(NULL));

    /* a record let go is reused */
    copy(tap_path("ca1.crl"), path_of("flight/c.crl"));
    j.n = 0;
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 1, "reuse: the new file parsed");
    ok(j.f[0] == f, "... in the record let go");
    jpki_crlfile_build(j.f[0]);
    jpki_crlfile_end(j.f[0], time(NULL));
    is_int(jpki_crlwatch_count(w), 2, "reuse: two files watched");

    /* a parse in flight whose file comes back keeps its record */
    j.n = 0;
    copy(tap_path("ca1.crl"), path_of("flight/d.crl"));
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 1, "back: parse under way");
    f = j.f[0];
    ok(unlink(path_of("flight/d.crl")) == 0, "(d.crl removed)");
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    copy(tap_path("ca1.crl"), path_of("flight/d.crl"));
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    is_int(j.n, 1, "back: not parsed twice");
    jpki_crlfile_build(f);
    jpki_crlfile_end(f, time(NULL));
    like(jpki_crlfile_path(f), "flight/d.crl", "back: its record kept");
    is_int(jpki_crlwatch_count(w), 3, "back: three files watched");

    /* a parse done but never ended is freed with the watcher (ASan) */
    j.n = 0;
    copy(tap_path("ca2.crl"), path_of("flight/e.crl"));
    jpki_crlwatch_pass(w, z, time(NULL), start_later, &j);
    if (j.n == 1)
        jpki_crlfile_build(j.f[0]);
    jpki_crlwatch_free(w);
    jpki_crlzone_free(z);
}

/* A crl= file that cannot be stat'ed: logged once, watched all the same
 * (it may come); several sources of one issuer. */
static void t_crl_unreadable(void)
{
    const char *src[2] = {path_of("x/none.crl"), path_of("ca1-here.crl")};
    jpki_crlzone *z = jpki_crlzone_local(&(jpki_crlzone_ops){0});
    jpki_crlwatch *w = jpki_crlwatch_new(ctx, 0, log_cb, NULL, NULL);
    const char *many[JPKI_ISSUER_CRL_MAX + 1];
    size_t i;

    copy(tap_path("ca1.crl"), path_of("ca1-here.crl"));
    is_int(jpki_crlwatch_issuer(w, jis, src, 2), 0, "unreadable: an issuer "
           "with two sources");
    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(at[JPKI_LOG_ERROR], 1, "unreadable: logged");
    like(logged, "CRL \"", "... the CRL");
    like(logged, "none.crl\" unreadable: No such file or directory",
         "... the system's reason");
    is_int(at[JPKI_LOG_INFO], 1, "... the other source loaded");
    take();
    jpki_crlwatch_pass(w, z, time(NULL), NULL, NULL);
    is_int(logs(), 0, "unreadable: once");
    is_int(jpki_crlwatch_count(w), 2, "unreadable: still watched");
    like(health_of(w, z), "\"file\":\"none.crl\"", "unreadable: in the "
         "health answer");

    for (i = 0; i <= JPKI_ISSUER_CRL_MAX; i++)
        many[i] = src[0];
    is_int(jpki_crlwatch_issuer(w, jis, many, JPKI_ISSUER_CRL_MAX + 1), -1,
           "too many sources: refused");
    jpki_crlwatch_free(w);
    jpki_crlzone_free(z);

    /* nothing to watch, no watcher */
    jpki_crlwatch_pass(NULL, NULL, 0, NULL, NULL);
    is_int(jpki_crlwatch_count(NULL), 0, "no watcher: no files");
}

int main(void)
{
    jpki_ctx *c;
    char cmd[600];

    snprintf(dir, sizeof(dir), "/tmp/test_watch.XXXXXX");
    if (!ok(mkdtemp(dir) != NULL, "a directory"))
        return done_testing();
    c = tap_pki_ctx(0x42, NULL, NULL);
    if (!ok(c != NULL, "context"))
        return done_testing();
    ctx = c;
    jis = jpki_ctx_issuer(ctx, 0);
    t_file_id();
    t_map_changes();
    t_map_failures();
    t_map_no_table();
    t_crl_dir();
    t_crl_in_flight();
    t_crl_unreadable();
    jpki_ctx_free(c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("cannot remove the test directory");
    return done_testing();
}
