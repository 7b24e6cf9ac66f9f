/*
 * map_cmds.c - jpkictl's commands about accounts: map add | remove | list
 * (a cert_id bound to an account, in the gate's mapping file or in Redis)
 * and logout (every session of an account ended).  The mapping file is
 * written by the core's writer and read by its parser (common/mapfile.c),
 * as the gate reads it.
 */
#include "jpkictl.h"
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

const char usage_map[] =
"jpkictl map add (--cert FILE | --serial N) --issuer NAME=CAFILE[,...]\n"
"                --account ID --secret-file FILE (--redis ADDR | --map-file F)\n"
"jpkictl map remove (--cert FILE | --serial N | --cert-id HEX) ...\n"
"jpkictl map list (--redis ADDR | --map-file FILE)\n"
"  Binds a user-authentication certificate to an account, by cert_id (the\n"
"  keyed hash of issuer key and serial; the serial itself is never stored).\n"
"  --cert FILE    the certificate (checked against --issuer first)\n"
"  --serial N     its serial (decimal or 0x-hex) as read off the card; the\n"
"                 issuer's last CA file must be the generation that issued it;\n"
"                 --serial - reads it from standard input (a command line is\n"
"                 visible to other local users)\n"
"  --secret-file  the gate's site secret file (cert_id depends on it)\n"
"  --redis ADDR   HOST:PORT or unix:PATH; --redis-db N, --redis-user U\n"
"  --redis-sentinel HOST:PORT,... --redis-master NAME  instead of --redis:\n"
"                 the primary the sentinels name (checked by ROLE)\n"
"                 (--redis-sentinel-password-file F: sentinels with\n"
"                 requirepass)\n"
"  --redis-password-file F  the password on F's first line (F not readable\n"
"                 by others), or env JPKI_REDIS_PASSWORD; --redis-password\n"
"                 is refused (a command line is readable by every user)\n"
"  --redis-tls-ca F  TLS, the server verified against the CA file F (its\n"
"                 name: --redis-tls-name N, else the host); a client\n"
"                 certificate: --redis-tls-cert F --redis-tls-key F\n"
"  --map-file F   the gate's mapping file (one machine, embedded store):\n"
"                 replaced whole, keeping its mode, owner and group (a new\n"
"                 file: mode 0640, chgrp it to the gate's group); F.lock\n"
"                 serialises runs.  Nothing changes when F cannot be read.\n"
"  Exit: 0 done; 1 not mapped (remove) or certificate refused (FAIL line);\n"
"  2 usage or mapping file error; 5 Redis failed.\n\n";

const char usage_logout[] =
"jpkictl logout --account ID --secret-file FILE --redis ADDR\n"
"  Ends every session of the account on every node of the site, those signed\n"
"  in until now: writes the account's logout marker (outa:<account_id>, a\n"
"  keyed hash of the account) and a record in the logout log, which every\n"
"  node's gate reads twice a second (docs/store-schema.md \"out\").  Logins\n"
"  after it are not concerned.  Needs the Redis store: the embedded store\n"
"  lives inside one gate.\n"
"  --secret-file  the gate's site secret file (account_id depends on it)\n"
"  --redis ADDR   HOST:PORT or unix:PATH (or --redis-sentinel HOST:PORT,...\n"
"                 --redis-master NAME); --redis-db N, --redis-user U,\n"
"                 --redis-password-file F (or env JPKI_REDIS_PASSWORD)\n"
"  Exit: 0 done; 2 usage; 5 Redis failed.\n\n";

/* ---- map add | remove | list -------------------------------------- */

/* The cert_id named by --cert, --serial or --cert-id. */
static int map_cert_id(const args_t *a, char id[JPKI_CERT_ID_HEX_LEN + 1])
{
    char detail[512] = "";
    jpki_ctx *ctx;
    jpki_cert *c = NULL;
    uint8_t *buf = NULL;
    size_t len, n = 0;
    jpki_err e;
    int given = !!a->val[O_CERT] + !!a->val[O_SERIAL] + !!a->val[O_CERT_ID];

    if (given != 1) {
        say("give one of --cert, --serial%s", a->val[O_ACCOUNT] ? ""
            : " or --cert-id");
        return EXIT_USAGE;
    }
    if (a->val[O_CERT_ID] != NULL) {
        n = strlen(a->val[O_CERT_ID]);
        if (!jpki_map_cert_id_valid(a->val[O_CERT_ID], n)) {
            say("--cert-id: expected %d lower-case hex digits",
                JPKI_CERT_ID_HEX_LEN);
            return EXIT_USAGE;
        }
        memcpy(id, a->val[O_CERT_ID], n + 1);
        return EXIT_VALID;
    }
    if (a->n_issuer == 0 || a->val[O_SECRET] == NULL) {
        say("--issuer and --secret-file are needed to compute the cert_id");
        return EXIT_USAGE;
    }
    if ((ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if (a->val[O_SERIAL] != NULL) {
        char line[200];
        const char *sn = a->val[O_SERIAL];

        /* "-": one line on standard input, out of the process list */
        if (strcmp(sn, "-") == 0) {
            sn = fgets(line, sizeof(line), stdin);
            if (sn != NULL)
                line[strcspn(line, "\r\n")] = '\0';
        }
        e = sn != NULL ? jpki_cert_id_from_serial_text(
                             ctx, jpki_ctx_issuer(ctx, 0), sn, id)
                       : JPKI_ERR_INVALID;
        OPENSSL_cleanse(line, sizeof(line));
        jpki_ctx_free(ctx);
        if (e != JPKI_OK)
            say("--serial: expected a decimal or 0x-hex number");
        return e == JPKI_OK ? EXIT_VALID : EXIT_USAGE;
    }
    if (load("certificate", a->val[O_CERT], CERT_FILE_MAX, &buf, &len) != 0) {
        jpki_ctx_free(ctx);
        return EXIT_USAGE;
    }
    e = jpki_cert_check(ctx, buf, len, a->now, &c, detail, sizeof(detail));
    free(buf);
    if (e == JPKI_OK)
        memcpy(id, jpki_cert_id_hex(c), JPKI_CERT_ID_HEX_LEN + 1);
    else
        printf("FAIL %s: %s\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
    jpki_cert_free(c);
    jpki_ctx_free(ctx);
    return e == JPKI_OK ? EXIT_VALID : EXIT_INVALID;
}

int map_backend(const args_t *a)
{
    if (!!a->val[O_REDIS] + !!a->val[O_MAP_FILE] != 1) {
        say("give one of --redis or --map-file");
        return -1;
    }
    return 0;
}

#define MAP_FILE_MODE  0640       /* a new mapping file; see map_file_update */

/* Best effort: makes a rename in path's directory durable.  The rename is
 * done and seen whatever happens here. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[ARG_MAX_LEN + 1];
    int fd;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s",
                 slash == path ? 1 : (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* The whole of fd (a regular file) into *buf, at most JPKI_MAP_FILE_MAX
 * bytes: what the gate reads.  0, -1 with errno (EFBIG: larger). */
static int read_all(int fd, uint8_t **buf, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    uint8_t *b = malloc(cap), *nb;
    ssize_t r;

    for (;;) {
        if (b == NULL)
            return errno = ENOMEM, -1;
        if (n == cap) {
            if (cap > JPKI_MAP_FILE_MAX) {
                free(b);
                return errno = EFBIG, -1;
            }
            cap *= 2;
            if ((nb = realloc(b, cap)) == NULL)
                free(b);
            b = nb;
            continue;
        }
        r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > JPKI_MAP_FILE_MAX) {
        free(b);
        return errno = EFBIG, -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

int write_all(int fd, const uint8_t *d, size_t n)
{
    ssize_t r;

    while (n > 0) {
        r = write(fd, d, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Rewrites the mapping file with the content build makes of the old one
 * (map_file_fn, jpkictl.h).  The gate may read the file at any moment,
 * and it holds every mapping of the site, so:
 * - the new content goes to a new temporary file beside it, made by
 *   mkstemp (a fixed name could be a symlink planted by whoever can write
 *   the directory), synced, then renamed over the file: the gate reads the
 *   old file or the new one, never half of one, even after a crash;
 * - any error reading the old file stops the run before anything is
 *   replaced: a file read in part would lose the other mappings;
 * - the new file gets the old one's mode, owner and group (typically
 *   0640 root:<the gate's group>; only root can give another owner); a new
 *   one is MAP_FILE_MODE, as mappings say who may log in as whom;
 * - runs are serialised by an flock on "F.lock": two runs at once would
 *   each write the old content plus their own line, and one change would
 *   be lost.  The lock file stays: removing it would let a third run lock
 *   another inode.  build runs under the lock, so that what it decides
 *   from the old content still holds when the new one replaces it. */
int map_file_rewrite(const char *path, map_file_fn build, void *arg)
{
    char tmp[ARG_MAX_LEN + 16], lockpath[ARG_MAX_LEN + 16];
    int lock = -1, fd = -1, tfd = -1, made = 0, have = 0, rc = -1, err;
    mode_t mode = MAP_FILE_MODE;
    struct stat st, tst;
    uint8_t *old = NULL, *neu = NULL;
    size_t oldlen = 0, neulen = 0;
    jpki_err e;

    snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    lock = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        say("cannot lock %.200s: %s", lockpath, strerror(errno));
        goto out;
    }

    /* O_NONBLOCK: a FIFO at path must not hang the run (refused below) */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        say("cannot read %.200s: %s; nothing changed", path, strerror(errno));
        goto out;
    }
    if (fd >= 0) {
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            say("%.200s is not a regular file; nothing changed", path);
            goto out;
        }
        if (read_all(fd, &old, &oldlen) != 0) {
            say("cannot read %.200s: %s; nothing changed", path,
                errno == EFBIG ? "larger than the gate reads (64 MiB)"
                : strerror(errno));
            goto out;
        }
        mode = st.st_mode & 0777;
        have = 1;
    }
    e = build(old, oldlen, arg, &neu, &neulen);
    if (e != JPKI_OK) {
        say("%.200s: %s; nothing changed", path, e == JPKI_ERR_TOO_LARGE
            ? "the new file would be larger than the gate reads (64 MiB)"
            : jpki_strerror(e));
        goto out;
    }
    if (neu == NULL) {                   /* nothing to change */
        rc = 0;
        goto out;
    }

    if ((tfd = mkstemp(tmp)) < 0) {
        say("cannot create a temporary file beside %.200s: %s; nothing "
            "changed", path, strerror(errno));
        goto out;
    }
    made = 1;
    if (have
        && (fstat(tfd, &tst) != 0
            || ((tst.st_uid != st.st_uid || tst.st_gid != st.st_gid)
                && fchown(tfd, st.st_uid, st.st_gid) != 0))) {
        say("cannot give the new %.200s the owner and group of the old one "
            "(%u:%u): %s; nothing changed (run as root or as its owner)",
            path, (unsigned)st.st_uid, (unsigned)st.st_gid, strerror(errno));
        goto out;
    }
    /* after fchown, which may clear mode bits */
    err = fchmod(tfd, mode) != 0 || write_all(tfd, neu, neulen) != 0
          || fsync(tfd) != 0;
    if (close(tfd) != 0 || err) {
        tfd = -1;
        say("cannot write %.200s: %s; nothing changed", tmp, strerror(errno));
        goto out;
    }
    tfd = -1;
    if (rename(tmp, path) != 0) {
        say("cannot replace %.200s: %s; nothing changed", path,
            strerror(errno));
        goto out;
    }
    made = 0;
    sync_dir(path);
    rc = 0;
out:
    if (tfd >= 0)
        close(tfd);
    if (made)
        unlink(tmp);
    if (fd >= 0)
        close(fd);
    if (lock >= 0)
        close(lock);                            /* releases the flock */
    free(old);
    free(neu);
    return rc;
}

/* map add | remove: the core's writer (jpki_map_edit, common/mapfile.c),
 * the one whose lines the gate's parser reads: every line of the cert_id
 * out, then (add) the new line at the end. */
struct one_edit {
    const char *id, *account;
    int found;
};

static jpki_err one_edit_build(const uint8_t *old, size_t oldlen, void *arg,
                               uint8_t **neu, size_t *neulen)
{
    struct one_edit *o = arg;

    return jpki_map_edit(old, oldlen, o->id, o->account, neu, neulen,
                         &o->found);
}

static int map_file_update(const char *path, const char *id,
                           const char *account, int *found)
{
    struct one_edit o = {id, account, 0};
    int rc = map_file_rewrite(path, one_edit_build, &o);

    *found = o.found;
    return rc;
}

static int redis_map_cmd(const args_t *a, const char *id, const char *account,
                         long long *n)
{
    redisContext *rc = redis_open(a);
    redisReply *r;
    char key[80];

    if (rc == NULL)
        return -1;
    snprintf(key, sizeof(key), JPKI_STORE_PREFIX "map:%s", id);
    r = account ? redisCommand(rc, "SET %s %s", key, account)
        : redisCommand(rc, "DEL %s", key);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        say("redis: %s failed: %.200s", account ? "SET" : "DEL",
            r != NULL ? r->str : rc->errstr);
        freeReplyObject(r);
        redisFree(rc);
        return -1;
    }
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 1;
    freeReplyObject(r);
    redisFree(rc);
    return 0;
}

/* ---- logout ------------------------------------------------------- */

int run_logout(const args_t *a)
{
    char id[JPKI_ACCOUNT_ID_HEX_LEN + 1], rec[128];
    const char *acct = a->val[O_ACCOUNT];
    jpki_ctx *ctx = jpki_ctx_new();
    redisContext *rc = NULL;
    redisReply *r = NULL;
    long long n = -1;
    int ok = 0;

    if (ctx == NULL || set_secret(ctx, a, 0) != 0
        || jpki_account_id(ctx, acct, strlen(acct), id) != JPKI_OK) {
        if (ctx != NULL && a->val[O_SECRET] != NULL)
            say("--account: 1..%d bytes, no control characters, '\"' or "
                "'\\'", JPKI_ACCOUNT_MAX);
        jpki_ctx_free(ctx);
        return EXIT_USAGE;
    }
    jpki_ctx_free(ctx);
    rc = redis_open(a);
    if (rc == NULL)
        return EXIT_STORE;
    /* the marker, then the record the other nodes read (outsync.c) */
    r = redisCommand(rc, "SET " JPKI_STORE_PREFIX "outa:%s %lld PX %llu", id,
                     (long long)a->now,
                     (unsigned long long)(30ull * 86400 + 300) * 1000);
    if (r != NULL && r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        r = redisCommand(rc, "INCR " JPKI_STORE_PREFIX "outseq");
        if (r != NULL && r->type == REDIS_REPLY_INTEGER)
            n = r->integer;
    }
    if (n > 0) {
        freeReplyObject(r);
        snprintf(rec, sizeof(rec), "a|%s|%lld|%u", id, (long long)a->now,
                 (unsigned)JPKI_OUTLOG_TTL);
        r = redisCommand(rc, "SET " JPKI_STORE_PREFIX "outlog:%lld %s PX %u",
                         n, rec, (unsigned)JPKI_OUTLOG_TTL * 1000u);
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    }
    if (!ok)
        say("redis: logout failed: %.200s", r != NULL && r->str != NULL
            ? r->str : rc->errstr);
    freeReplyObject(r);
    redisFree(rc);
    if (!ok)
        return EXIT_STORE;
    printf("logged out account=%s at=%lld\n", acct, (long long)a->now);
    return EXIT_VALID;
}

/* The cert_id named, then its mapping written (account) or removed
 * (NULL) where the gate reads it; *found: it was there.  An exit code. */
static int map_apply(const args_t *a, char id[JPKI_CERT_ID_HEX_LEN + 1],
                     const char *account, int *found)
{
    long long n = 0;
    int rc;

    *found = 0;
    if (map_backend(a) != 0)
        return EXIT_USAGE;
    if ((rc = map_cert_id(a, id)) != EXIT_VALID)
        return rc;
    if (a->val[O_MAP_FILE] != NULL)
        return map_file_update(a->val[O_MAP_FILE], id, account, found) != 0
               ? EXIT_USAGE : EXIT_VALID;
    if (redis_map_cmd(a, id, account, &n) != 0)
        return EXIT_STORE;
    *found = n > 0;
    return EXIT_VALID;
}

int run_map_add(const args_t *a)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1];
    const char *acct = a->val[O_ACCOUNT];
    int rc, found;

    if (!jpki_account_valid(acct, strlen(acct))) {
        say("--account: 1..%d bytes, no control characters, '\"' or '\\'",
            JPKI_ACCOUNT_MAX);
        return EXIT_USAGE;
    }
    if ((rc = map_apply(a, id, acct, &found)) != EXIT_VALID)
        return rc;
    printf("mapped cert_id=%s account=%s\n", id, acct);
    return EXIT_VALID;
}

int run_map_remove(const args_t *a)
{
    char id[JPKI_CERT_ID_HEX_LEN + 1];
    int rc, found;

    if ((rc = map_apply(a, id, NULL, &found)) != EXIT_VALID)
        return rc;
    printf("%s cert_id=%s\n", found ? "removed" : "not mapped", id);
    return found ? EXIT_VALID : EXIT_INVALID;
}

/* The file as it is, and on stderr what the gate says of its malformed
 * lines (the core's parser: the lines it ignores). */
static int map_file_list(const char *path)
{
    char warn[1024];
    jpki_map *m = NULL;
    uint8_t *buf;
    size_t len;

    if (load("mapping file", path, JPKI_MAP_FILE_MAX, &buf, &len))
        return EXIT_USAGE;
    fwrite(buf, 1, len, stdout);
    if (jpki_map_parse(buf, len, &m) == JPKI_OK) {
        jpki_map_warning(m, path, warn, sizeof(warn));
        if (warn[0] != '\0') {
            fflush(stdout);
            say("warning: %s", warn);
        }
    }
    jpki_map_free(m);
    free(buf);
    return EXIT_VALID;
}

int run_map_list(const args_t *a)
{
    redisContext *rc;
    redisReply *r, *g, *k;
    char cursor[32] = "0";
    size_t i, plen = strlen(JPKI_STORE_PREFIX "map:");

    if (map_backend(a) != 0)
        return EXIT_USAGE;
    if (a->val[O_MAP_FILE] != NULL)
        return map_file_list(a->val[O_MAP_FILE]);
    if ((rc = redis_open(a)) == NULL)
        return EXIT_STORE;
    do {
        if ((r = scan_next(rc, cursor, JPKI_STORE_PREFIX "map:*")) == NULL)
            goto fail;
        for (i = 0; i < r->element[1]->elements; i++) {
            k = r->element[1]->element[i];
            g = redisCommand(rc, "GET %b", k->str, k->len);
            /* a lost connection or a refused GET would otherwise end the
             * list early with exit 0; nil: deleted since the SCAN */
            if (g == NULL || g->type == REDIS_REPLY_ERROR) {
                say("redis: GET failed: %.200s", g != NULL ? g->str
                    : rc->errstr);
                freeReplyObject(g);
                goto fail;
            }
            if (g->type == REDIS_REPLY_STRING && k->len > plen)
                printf("%s %.*s\n", k->str + plen, (int)g->len, g->str);
            freeReplyObject(g);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    return EXIT_VALID;
fail:
    freeReplyObject(r);
    redisFree(rc);
    return EXIT_STORE;
}

