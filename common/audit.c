/*
 * audit.c - the audit trail (audit.h): a verdict's line, the MAC chain,
 * the chains' heads in the shared area, a cold start's head read from a
 * file's tail, the write of a line, and the verifier of jpkictl audit
 * verify.
 */
#include "audit.h"
#include "internal.h"
#include "shared_area.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MAC_HEX   64
#define PREFIX_SEQ "{\"seq\":"
#define MAC_FIELD ",\"mac\":\""
/* ,"mac":"<64 hex>"} */
#define MAC_TAIL  (sizeof(MAC_FIELD) - 1 + MAC_HEX + 2)
#define LOCATION_MAX 256
#define TAIL_READ (64 * 1024)

static const uint8_t zeros[32];

/* ---- request ids ---------------------------------------------------- */

int jpki_audit_rid_ok(const char *s, size_t n)
{
    size_t i;

    if (s == NULL || n == 0 || n > JPKI_AUDIT_RID_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || (c != '\0'
                                            && strchr("@._:+/=-", c))))
            return 0;
    }
    return 1;
}

int jpki_audit_rid_make(char out[JPKI_AUDIT_RID_MAX + 1])
{
    uint8_t r[16];

    if (!jpki_random(r, sizeof(r))) {
        out[0] = '\0';
        return 0;
    }
    jpki_hex_encode(r, sizeof(r), out);
    return 1;
}

/* ---- a verdict's fields --------------------------------------------- */

typedef struct {
    char *p;
    size_t o, max;
    int over;
} outbuf;

static void put(outbuf *b, const char *s, size_t n)
{
    if (b->over || b->o + n >= b->max) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->o, s, n);
    b->o += n;
    b->p[b->o] = '\0';
}

static void puts_(outbuf *b, const char *s) { put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3)))
static void putf(outbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        b->over = 1;
    else
        put(b, tmp, (size_t)n);
}

/* A JSON string's contents: '"', '\\', braces and control characters
 * escaped; location: bytes outside printable ASCII percent-encoded, at
 * most LOCATION_MAX bytes, cut at '?'; otherwise bytes over 0x7f kept
 * when s is a valid account (UTF-8), else '?'. */
static void put_str(outbuf *b, const char *s, int location)
{
    size_t i, n;
    int utf8;
    char e[8];

    put(b, "\"", 1);
    if (s == NULL)
        s = "";
    n = location ? strcspn(s, "?#") : strlen(s);
    if (location && n > LOCATION_MAX)
        n = LOCATION_MAX;
    if (!location && n > 1024)
        n = 1024;
    utf8 = !location && jpki_account_valid(s, n);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (location && (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\'
                         || c == '{' || c == '}')) {
            snprintf(e, sizeof(e), "%%%02X", c);
            puts_(b, e);
        } else if (c == '"' || c == '\\' || c == '{' || c == '}' || c < 0x20
                   || c == 0x7f) {
            snprintf(e, sizeof(e), "\\u%04x", c);
            puts_(b, e);
        } else if (c >= 0x80) {
            put(b, utf8 ? (const char *)&s[i] : "?", 1);
        } else {
            put(b, (const char *)&s[i], 1);
        }
    }
    put(b, "\"", 1);
}

static void field(outbuf *b, const char *name, const char *v, int location)
{
    putf(b, ",\"%s\":", name);
    put_str(b, v, location);
}

size_t jpki_audit_body(char *out, size_t max, const jpki_audit_fields *f)
{
    outbuf b = {out, 0, max, max == 0};

    if (max > 0)
        out[0] = '\0';
    putf(&b, "{\"ts\":%lld,\"event\":", (long long)f->ts);
    put_str(&b, f->event, 0);
    if (f->action != NULL)
        field(&b, "action", f->action, 0);
    field(&b, "result", f->result, 0);
    field(&b, "reason", f->reason, 0);
    field(&b, "account", f->account, 0);
    field(&b, "cert_id", f->cert_id, 0);
    field(&b, "issuer", f->issuer, 0);
    field(&b, "revocation", f->revocation != NULL ? f->revocation : "none", 0);
    if (f->revocation_age >= 0)
        putf(&b, ",\"revocation_age\":%lld", (long long)f->revocation_age);
    else
        puts_(&b, ",\"revocation_age\":null");
    putf(&b, ",\"soft_pass\":%s", f->soft_pass ? "true" : "false");
    field(&b, "peer", f->peer != NULL && f->peer[0] ? f->peer : "-", 0);
    field(&b, "request_id", f->request_id, 0);
    field(&b, "location", f->location, 1);
    if (f->suppressed > 0)
        putf(&b, ",\"suppressed\":%u", f->suppressed);
    puts_(&b, "}");
    if (b.over) {
        if (max > 0)
            out[0] = '\0';
        return 0;
    }
    return b.o;
}

/* ---- keys ----------------------------------------------------------- */

int jpki_audit_key(const uint8_t *material, size_t len, uint8_t key[32])
{
    return len > 0 && jpki_hkdf(material, len, JPKI_AUDIT_KEY_LABEL, key, 32);
}

int jpki_audit_key_of_ctx(const jpki_ctx *ctx, uint8_t key[32])
{
    return jpki_audit_key(ctx->secret, ctx->secret_len, key);
}

jpki_err jpki_audit_key_file(const char *path, uint8_t key[32], char *err,
                             size_t errlen)
{
    struct stat st;
    uint8_t *data = NULL;
    size_t len = 0;
    jpki_err e;

    if (path == NULL || path[0] != '/') {
        jpki_set_detail(err, errlen, "key file \"%s\" needs an absolute path",
                        path ? path : "");
        return JPKI_ERR_INVALID;
    }
    e = jpki_file_check("audit key file", path, err, errlen);
    if (e != JPKI_OK)
        return e;
    if (stat(path, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
        jpki_set_detail(err, errlen, "audit key file \"%s\" must not be "
                        "readable or writable by others (chmod 600 or 640)",
                        path);
        return JPKI_ERR_INVALID;
    }
    e = jpki_load_file_msg("audit key file", path, 4096, &data, &len, err,
                           errlen);
    if (e != JPKI_OK)
        return e;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'
                       || data[len - 1] == ' ' || data[len - 1] == '\t'))
        len--;
    if (len < JPKI_AUDIT_KEY_MIN) {
        jpki_set_detail(err, errlen, "audit key file \"%s\" is too short: "
                        "%zu bytes, at least %d (e.g. head -c 32 /dev/urandom "
                        "| base64)", path, len, JPKI_AUDIT_KEY_MIN);
        e = JPKI_ERR_INVALID;
    } else if (!jpki_audit_key(data, len, key)) {
        jpki_set_detail(err, errlen, "audit key file \"%s\": no HKDF", path);
        e = JPKI_ERR_INTERNAL;
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return e;
}

/* ---- the chained line ----------------------------------------------- */

size_t jpki_audit_line(const jpki_audit_head *head, const uint8_t key[32],
                       const char *body, size_t body_len, char *out,
                       size_t max, jpki_audit_head *next)
{
    char prev[MAC_HEX + 1], mac_hex[MAC_HEX + 1];
    uint8_t mac[32];
    int n;
    size_t o;

    /* an object with at least one field, on one line */
    if (body == NULL || body_len < 3 || body[0] != '{'
        || body[body_len - 1] != '}' || memchr(body, '\n', body_len) != NULL
        || memchr(body, '\r', body_len) != NULL
        || memchr(body, '\0', body_len) != NULL)
        return 0;
    jpki_hex_encode(head->seq == 0 ? zeros : head->mac, 32, prev);
    n = snprintf(out, max, PREFIX_SEQ "%llu,\"prev\":\"%s\",",
                 (unsigned long long)(head->seq + 1), prev);
    if (n < 0 || (size_t)n + (body_len - 2) + MAC_TAIL + 2 > max)
        return 0;
    o = (size_t)n;
    memcpy(out + o, body + 1, body_len - 2);
    o += body_len - 2;
    if (!jpki_hmac_sha256(key, 32, (const uint8_t *)out, o, NULL, 0, mac))
        return 0;
    jpki_hex_encode(mac, 32, mac_hex);
    memcpy(out + o, MAC_FIELD, sizeof(MAC_FIELD) - 1);
    o += sizeof(MAC_FIELD) - 1;
    memcpy(out + o, mac_hex, MAC_HEX);
    o += MAC_HEX;
    memcpy(out + o, "\"}\n", 4);
    o += 3;
    next->seq = head->seq + 1;
    memcpy(next->mac, mac, 32);
    return o;
}

static int hex32(const char *s, uint8_t out[32])
{
    size_t n, i;

    for (i = 0; i < MAC_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return jpki_hex_decode(s, MAC_HEX, out, 32, &n) == JPKI_OK && n == 32;
}

int jpki_audit_parse(const char *line, size_t len, const uint8_t key[32],
                     jpki_audit_parsed *p)
{
    static const char pv[] = ",\"prev\":\"";
    const size_t pl = sizeof(PREFIX_SEQ) - 1;
    uint8_t mac[32];
    size_t i, o, body_end;
    uint64_t seq = 0;

    memset(p, 0, sizeof(*p));
    if (len < pl + 1 + sizeof(pv) - 1 + MAC_HEX + 3 + MAC_TAIL
        || len > JPKI_AUDIT_LINE_MAX || memcmp(line, PREFIX_SEQ, pl) != 0)
        return -1;
    /* seq: 1..20 digits, no leading zero */
    for (i = pl; i < len && i - pl < 20 && line[i] >= '0' && line[i] <= '9';
         i++) {
        if (seq > (UINT64_MAX - 9) / 10)
            return -1;
        seq = seq * 10 + (uint64_t)(line[i] - '0');
    }
    if (i == pl || (line[pl] == '0') || seq == 0)
        return -1;
    o = i;
    if (len - o < sizeof(pv) - 1 + MAC_HEX + 3 + MAC_TAIL
        || memcmp(line + o, pv, sizeof(pv) - 1) != 0
        || !hex32(line + o + sizeof(pv) - 1, p->prev))
        return -1;
    o += sizeof(pv) - 1 + MAC_HEX;
    /* "," then the verdict's fields, then the MAC last */
    if (line[o] != '"' || line[o + 1] != ',' || line[o + 2] != '"')
        return -1;
    body_end = len - MAC_TAIL;
    if (body_end <= o + 2
        || memcmp(line + body_end, MAC_FIELD, sizeof(MAC_FIELD) - 1) != 0
        || line[len - 2] != '"' || line[len - 1] != '}'
        || !hex32(line + body_end + sizeof(MAC_FIELD) - 1, p->mac))
        return -1;
    if (memchr(line, '\0', len) != NULL)
        return -1;
    p->seq = seq;
    p->chain_start = seq == 1 && CRYPTO_memcmp(p->prev, zeros, 32) == 0;
    p->mac_ok = jpki_hmac_sha256(key, 32, (const uint8_t *)line, body_end,
                                 NULL, 0, mac)
                && CRYPTO_memcmp(mac, p->mac, 32) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

jpki_audit_tail jpki_audit_tail_head(const char *tail, size_t len, int whole,
                                     const uint8_t key[32],
                                     jpki_audit_head *head, int *partial)
{
    jpki_audit_parsed p;
    size_t end, start;

    memset(head, 0, sizeof(*head));
    *partial = len > 0 && tail[len - 1] != '\n';
    end = len;
    while (end > 0 && tail[end - 1] != '\n')   /* a partial line left out */
        end--;
    if (end == 0)
        return JPKI_AUDIT_TAIL_EMPTY;
    end--;                                     /* the newline */
    start = end;
    while (start > 0 && tail[start - 1] != '\n')
        start--;
    if (start == 0 && !whole)                  /* its start not read */
        return JPKI_AUDIT_TAIL_UNVERIFIED;
    if (jpki_audit_parse(tail + start, end - start, key, &p) != 0
        || !p.mac_ok)
        return JPKI_AUDIT_TAIL_UNVERIFIED;
    head->seq = p.seq;
    memcpy(head->mac, p.mac, 32);
    return JPKI_AUDIT_TAIL_LINKED;
}

/* ---- the chains in the shared area ---------------------------------- */

uint64_t jpki_audit_file_hash(const char *path)
{
    uint8_t d[32];
    unsigned int n = 0;
    uint64_t h = 0;
    int i;

    if (EVP_Digest(path, strlen(path), d, &n, jpki_md(JPKI_MD_SHA256), NULL)
        != 1)
        memset(d, 0, sizeof(d));
    for (i = 0; i < 8; i++)
        h = h << 8 | d[i];
    return h != 0 ? h : 1;
}

static void lock_(const jpki_shm_lock *l)
{
    if (l != NULL && l->lock != NULL)
        l->lock(l->ud);
}

static void unlock_(const jpki_shm_lock *l)
{
    if (l != NULL && l->unlock != NULL)
        l->unlock(l->ud);
}

static jpki_audit_chain *chain_find(jpki_audit_area *a, uint64_t h)
{
    int i;

    for (i = 0; i < JPKI_AUDIT_CHAINS; i++)
        if (a->chain[i].file == h)
            return &a->chain[i];
    return NULL;
}

/* A free slot, else the one used longest ago; set to a chain start. */
static jpki_audit_chain *chain_take(jpki_audit_area *a, uint64_t h,
                                    int64_t now)
{
    jpki_audit_chain *c = &a->chain[0];
    int i;

    for (i = 0; i < JPKI_AUDIT_CHAINS; i++) {
        if (a->chain[i].file == 0) {
            c = &a->chain[i];
            break;
        }
        if (a->chain[i].used < c->used)
            c = &a->chain[i];
    }
    memset(c, 0, sizeof(*c));
    c->file = h;
    c->used = now;
    return c;
}

/* The last bytes of the file at path (at most TAIL_READ): 0, 1 when there
 * is no file, -1 with a sentence. */
static int read_tail(const char *path, char **buf, size_t *len, int *whole,
                     char *msg, size_t msglen)
{
    struct stat st;
    off_t from;
    size_t got = 0, want;
    ssize_t r;
    int fd;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        jpki_set_detail(msg, msglen, "audit file \"%s\" cannot be read: %s",
                        path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    from = st.st_size > TAIL_READ ? st.st_size - TAIL_READ : 0;
    want = (size_t)(st.st_size - from);
    *whole = from == 0;
    *buf = malloc(want + 1);
    if (*buf == NULL) {
        close(fd);
        jpki_set_detail(msg, msglen, "out of memory");
        return -1;
    }
    while (got < want) {
        r = pread(fd, *buf + got, want - got, from + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return 0;
}

jpki_err jpki_audit_recover(struct jpki_shared *sh, const jpki_shm_lock *lock,
                            const char *path, const uint8_t key[32],
                            int64_t now, char *msg, size_t msglen)
{
    uint64_t h = jpki_audit_file_hash(path);
    jpki_audit_chain *c;
    jpki_audit_head head;
    jpki_audit_tail st = JPKI_AUDIT_TAIL_EMPTY;
    char *buf = NULL;
    size_t len = 0;
    int whole = 1, partial = 0, r;

    if (msglen > 0)
        msg[0] = '\0';
    if (sh == NULL) {
        jpki_set_detail(msg, msglen, "no shared area for the audit chain");
        return JPKI_ERR_INVALID;
    }
    lock_(lock);
    c = chain_find(&sh->audit, h);
    if (c != NULL) {                        /* a reload: the chain goes on */
        c->used = now;
        unlock_(lock);
        return JPKI_OK;
    }
    r = read_tail(path, &buf, &len, &whole, msg, msglen);
    if (r < 0) {
        unlock_(lock);
        return JPKI_ERR_IO;
    }
    memset(&head, 0, sizeof(head));
    if (r == 0)
        st = jpki_audit_tail_head(buf, len, whole, key, &head, &partial);
    free(buf);
    c = chain_take(&sh->audit, h, now);
    c->seq = head.seq;
    memcpy(c->mac, head.mac, 32);
    c->flags = partial ? JPKI_AUDIT_F_NEWLINE : 0;
    unlock_(lock);
    if (st == JPKI_AUDIT_TAIL_UNVERIFIED)
        jpki_set_detail(msg, msglen, "audit file \"%s\": its last line does "
                        "not verify under this key (another key, or edited): "
                        "a new chain starts (prev 0...0); run jpkictl audit "
                        "verify on it", path);
    else if (partial)
        jpki_set_detail(msg, msglen, "audit file \"%s\" ends in a part of a "
                        "line (a crash or a truncation): the chain goes on on "
                        "a new line", path);
    return JPKI_OK;
}

/* fd, or path opened anew when the file there is no longer fd's (a
 * rotation this process has not reopened yet): *own set when opened. */
static int write_fd(int fd, const char *path, int *own)
{
    struct stat a, b;
    int nfd;

    *own = 0;
    if (path == NULL || fstat(fd, &a) != 0 || stat(path, &b) != 0
        || (a.st_dev == b.st_dev && a.st_ino == b.st_ino))
        return fd;
    nfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
    if (nfd < 0)
        return fd;
    *own = 1;
    return nfd;
}

int jpki_audit_append(struct jpki_shared *sh, const jpki_shm_lock *lock,
                      const char *path, const uint8_t key[32], int fd,
                      const char *body, int64_t now, char *err,
                      size_t errlen)
{
    char buf[JPKI_AUDIT_LINE_MAX + 1];
    uint64_t h = jpki_audit_file_hash(path);
    jpki_audit_chain *c;
    jpki_audit_head head, next;
    struct stat st;
    size_t len, o = 0;
    ssize_t w = 0;
    int wfd, own, saved;

    if (errlen > 0)
        err[0] = '\0';
    if (sh == NULL || fd < 0 || body == NULL) {
        jpki_set_detail(err, errlen, "audit file \"%s\" is not open", path);
        errno = EBADF;
        return -1;
    }
    lock_(lock);
    c = chain_find(&sh->audit, h);
    if (c == NULL)                          /* the parent set none up */
        c = chain_take(&sh->audit, h, now);
    head.seq = c->seq;
    memcpy(head.mac, c->mac, 32);
    wfd = write_fd(fd, path, &own);
    if ((c->flags & JPKI_AUDIT_F_NEWLINE) && fstat(wfd, &st) == 0
        && st.st_size > 0)
        buf[o++] = '\n';
    len = jpki_audit_line(&head, key, body, strlen(body), buf + o,
                          sizeof(buf) - o, &next);
    if (len == 0) {
        if (own)
            close(wfd);
        unlock_(lock);
        jpki_set_detail(err, errlen, "an audit line too long or malformed");
        errno = EINVAL;
        return -1;
    }
    len += o;
    do
        w = write(wfd, buf, len);
    while (w < 0 && errno == EINTR);
    saved = errno;
    if (w == (ssize_t)len) {
        c->seq = next.seq;
        memcpy(c->mac, next.mac, 32);
        c->flags &= ~JPKI_AUDIT_F_NEWLINE;
    } else if (w > 0) {
        c->flags |= JPKI_AUDIT_F_NEWLINE;  /* a part written */
    }
    c->used = now;
    if (own)
        close(wfd);
    unlock_(lock);
    OPENSSL_cleanse(&next, sizeof(next));
    if (w == (ssize_t)len)
        return 0;
    jpki_set_detail(err, errlen, "audit file \"%s\": write failed (%s)", path,
                    w < 0 ? strerror(saved) : "short write");
    errno = w < 0 ? saved : ENOSPC;
    return -1;
}
