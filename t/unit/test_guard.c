/* test_guard.c - guard.c: the failed-login throttle's sliding estimate, the
 * store names of client addresses and accounts, the audit-line limiter and
 * the throttle directive; outsync.c: the logout-log poller, run against an
 * embedded table playing the shared store (Redis) and a second one as the
 * node's mirror. */
#include "internal.h"
#include "tap.h"

#include <stdint.h>
#include <openssl/hmac.h>

static jpki_ctx *ctx_with_secret(uint8_t fill)
{
    uint8_t secret[32];
    jpki_ctx *c = jpki_ctx_new();

    memset(secret, fill, sizeof(secret));
    if (c == NULL || jpki_ctx_set_secret(c, secret, sizeof(secret)) != JPKI_OK)
        exit(1);
    return c;
}

/* ------------------------------------------------------------------ */
/* jpki_throttle_over                                                  */
/* ------------------------------------------------------------------ */

/* What the throttle computes at time `at` when the counts were cur and prev
 * at `now` and nothing more was counted: the windows move on. */
static unsigned over_later(uint64_t cur, uint64_t prev, int64_t now,
                           int64_t at, unsigned win, unsigned limit)
{
    int64_t moved = at / win - now / win;

    if (moved == 1) {
        prev = cur;
        cur = 0;
    } else if (moved > 1) {
        prev = cur = 0;
    }
    return jpki_throttle_over(cur, prev, at, win, limit);
}

static void test_throttle_over(void)
{
    static const unsigned wins[] = {1, 7, 60, 3600};
    static const unsigned limits[] = {1, 3, 10};
    static const int64_t offs[] = {0, 1, 2, 29, 30, 59};
    static const struct {
        uint64_t cur, prev;
        int64_t now;
        unsigned want;
        const char *why;
    } ex[] = {
        {10, 0, 600, 61, "61 s (the next window weighs this one fully at "
         "its start)"},
        {11, 0, 600, 66, "until 11 * (60 - 6)/60 < 10"},
        {1000, 0, 600, 120, "two windows (the count is gone then)"},
        {1000, 0, 630, 90, "until the window after the next"},
        {5, 5, 600, 1, "5 + 5 = 10 over; 5 + 5 * 59/60 a second later"},
        {5, 5, 659, 0, "5 + 5/60: under"},
        {5, 10, 630, 1, "5 + 10/2 = 10 over; 5 + 10 * 29/60 a second later"},
        {5, 9, 630, 0, "5 + 9/2: under"},
        {0, 10, 600, 1, "0 + 10 over; 10 * 59/60 a second later"},
        {0, 20, 630, 1, "0 + 20/2 over; 20 * 29/60 a second later"},
        {0, 40, 600, 46, "until 40 * (60 - 46)/60 < 10"},
    };
    unsigned bad_range = 0, bad_after = 0, bad_before = 0, over = 0, ra;
    size_t wi, li, oi, i;
    uint64_t cur, prev;
    int64_t now;

    /* under the limit: nothing to wait for */
    is_int(jpki_throttle_over(0, 0, 600, 60, 10), 0, "no count: 0");
    is_int(jpki_throttle_over(9, 0, 600, 60, 10), 0, "9 of 10: 0");
    is_int(jpki_throttle_over(10, 0, 600, 60, 0), 0, "limit 0 is off");
    is_int(jpki_throttle_over(1000000, 1000000, 600, 60, 0), 0,
           "limit 0 is off, whatever the counts");
    is_int(jpki_throttle_over(10, 0, 600, 0, 10), 0, "window 0: off");
    /* at and over it: until the estimate falls under it; the previous
     * window weighted by what the sliding window still covers of it */
    for (i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
        is_int(jpki_throttle_over(ex[i].cur, ex[i].prev, ex[i].now, 60, 10),
               ex[i].want, "%llu + %llu before, at %lld, limit 10 a minute: "
               "%s", (unsigned long long)ex[i].cur,
               (unsigned long long)ex[i].prev, (long long)ex[i].now,
               ex[i].why);

    /* over a grid: Retry-After in 1..2*window, the estimate at now + retry
     * under the limit, at now + retry - 1 not */
    for (wi = 0; wi < sizeof(wins) / sizeof(wins[0]); wi++)
        for (li = 0; li < sizeof(limits) / sizeof(limits[0]); li++)
            for (oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++)
                for (cur = 0; cur <= 25; cur++)
                    for (prev = 0; prev <= 25; prev += 5) {
                        unsigned w = wins[wi], l = limits[li];

                        now = 1700000000 / w * w + offs[oi] % w;
                        ra = jpki_throttle_over(cur, prev, now, w, l);
                        if (ra == 0)
                            continue;
                        over++;
                        if (ra < 1 || ra > 2 * w)
                            bad_range++;
                        if (over_later(cur, prev, now, now + ra, w, l) != 0)
                            bad_after++;
                        if (ra > 1 && over_later(cur, prev, now,
                                                 now + ra - 1, w, l) == 0)
                            bad_before++;
                    }
    ok(over > 1000, "grid: %u cases over the limit", over);
    is_int(bad_range, 0, "grid: Retry-After always in 1..2*window");
    is_int(bad_after, 0, "grid: under the limit at now + Retry-After");
    is_int(bad_before, 0, "grid: still over at now + Retry-After - 1");
}

/* ------------------------------------------------------------------ */
/* jpki_peer_id, jpki_account_id                                       */
/* ------------------------------------------------------------------ */

static int is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

/* The peer id of a, or "" when refused. */
static const char *pid(const jpki_ctx *c, const char *a)
{
    static char out[4][17];
    static int i;
    char *o = out[i++ & 3];

    memset(o, 0, 17);
    if (!jpki_peer_id(c, a, o))
        o[0] = '\0';
    return o;
}

static void test_peer_id(void)
{
    static const char *const bad[] = {
        "", "garbage", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80",
        "[1.2.3.4", "::1]", "[]", "[[::1]]", "2001:db8::1::2", "fe80::1%eth0",
        "0123456789012345678901234567890123456789012345678901234567890123"
    };
    jpki_ctx *c = ctx_with_secret(1), *c2 = ctx_with_secret(2);
    char v4[17];
    size_t i;

    snprintf(v4, sizeof(v4), "%s", pid(c, "1.2.3.4"));
    ok(is_hex(v4, 16), "IPv4: 16 hex chars (%s)", v4);
    is_str(pid(c, "1.2.3.4"), v4, "same IPv4, same id");
    ok(strcmp(pid(c, "1.2.3.5"), v4) != 0, "another IPv4, another id");
    is_str(pid(c, "::ffff:1.2.3.4"), v4, "::ffff:1.2.3.4 is 1.2.3.4");
    is_str(pid(c, "[::ffff:1.2.3.4]"), v4, "[::ffff:1.2.3.4] is 1.2.3.4");
    ok(is_hex(pid(c, "2001:db8:1:2::1"), 16), "IPv6: 16 hex chars");
    is_str(pid(c, "2001:db8:1:2::1"),
           pid(c, "2001:db8:1:2:ffff:ffff:ffff:fffe"),
           "two addresses in one /64: one id");
    is_str(pid(c, "2001:DB8:1:2::1"), pid(c, "2001:db8:1:2:0:0:0:7"),
           "... whatever their spelling");
    ok(strcmp(pid(c, "2001:db8:1:2::1"), pid(c, "2001:db8:1:3::1")) != 0,
       "another /64: another id");
    ok(strcmp(pid(c, "2001:db8:1:2::1"), pid(c, "2001:db8:1:2::")) == 0
       && strcmp(pid(c, "2001:db8:1:2::"), pid(c, "2001:db8:1::")) != 0,
       "the /64 is the first 64 bits exactly");
    ok(pid(c, "[::1]")[0] != '\0', "\"[::1]\" accepted");
    is_str(pid(c, "[::1]"), pid(c, "::1"), "\"[::1]\" is ::1");
    ok(strcmp(pid(c, "::1"), pid(c, "0.0.0.1")) != 0,
       "::1 is not 0.0.0.1 (IPv4 and IPv6 ids kept apart)");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_str(pid(c, bad[i]), "", "\"%.20s\" refused", bad[i]);
    is_str(pid(c, NULL), "", "NULL refused");
    ok(strcmp(pid(c2, "1.2.3.4"), v4) != 0
       && strcmp(pid(c2, "2001:db8:1:2::1"), pid(c, "2001:db8:1:2::1")) != 0,
       "ids depend on the site secret");
    jpki_ctx_free(c);
    jpki_ctx_free(c2);
}

static void test_account_id(void)
{
    static const char *const bad[] = {"", "a\"b", "a\\b", "a\nb", "a\x7f",
                                      "\xff\xfe"};
    jpki_ctx *c = ctx_with_secret(1), *c2 = ctx_with_secret(2);
    jpki_ctx *none = jpki_ctx_new();
    char a[JPKI_ACCOUNT_ID_HEX_LEN + 1], b[JPKI_ACCOUNT_ID_HEX_LEN + 1];
    char want[JPKI_ACCOUNT_ID_HEX_LEN + 1], longest[JPKI_ACCOUNT_MAX + 2];
    uint8_t secret[32], msg[64], mac[32];
    unsigned maclen = 0;
    size_t i;

    ok(jpki_account_id(c, "alice", 5, a) == JPKI_OK && is_hex(a, 32),
       "account id: 32 hex chars");
    ok(jpki_account_id(c, "alice", 5, b) == JPKI_OK && strcmp(a, b) == 0,
       "deterministic");
    /* SipHash-2-4 itself: the reference vector (key 00..0f, message
     * 00..0e -> a129ca6149be45e5) */
    for (i = 0; i < 16; i++)
        secret[i] = (uint8_t)i;
    for (i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    ok(jpki_siphash24(secret, msg, 15) == UINT64_C(0xa129ca6149be45e5),
       "SipHash-2-4 reference vector");
    /* K = HKDF(secret, "jpki account id"); hex(SipHash(K[0..16]) ||
     * SipHash(K[16..32])), big-endian */
    memset(secret, 1, sizeof(secret));
    ok(jpki_hkdf(secret, sizeof(secret), "jpki account id", mac, 32),
       "the account key");
    for (i = 0; i < 2; i++) {
        uint64_t v = jpki_siphash24(mac + 16 * i, (const uint8_t *)"alice", 5);
        for (maclen = 0; maclen < 8; maclen++)
            msg[8 * i + maclen] = (uint8_t)(v >> (56 - 8 * maclen));
    }
    jpki_hex_encode(msg, 16, want);
    is_str(a, want, "the documented SipHash of the account");
    ok(jpki_account_id(c, "alicf", 5, b) == JPKI_OK && strcmp(a, b) != 0,
       "another account, another id");
    ok(jpki_account_id(c, "alice-x", 5, b) == JPKI_OK && strcmp(a, b) == 0,
       "only len bytes count");
    ok(jpki_account_id(c2, "alice", 5, b) == JPKI_OK && strcmp(a, b) != 0,
       "another secret, another id");
    ok(jpki_account_id(c, "山田", strlen("山田"), b) == JPKI_OK
       && is_hex(b, 32), "UTF-8 account");
    memset(longest, 'x', sizeof(longest));
    longest[JPKI_ACCOUNT_MAX + 1] = '\0';
    ok(jpki_account_id(c, longest, JPKI_ACCOUNT_MAX, b) == JPKI_OK,
       "an account of JPKI_ACCOUNT_MAX bytes");
    is_int(jpki_account_id(c, longest, JPKI_ACCOUNT_MAX + 1, b),
           JPKI_ERR_INVALID, "one byte more refused");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(jpki_account_id(c, bad[i], strlen(bad[i]), b),
               JPKI_ERR_INVALID, "invalid account %zu refused", i);
    is_int(jpki_account_id(c, NULL, 0, b), JPKI_ERR_INVALID, "NULL refused");
    is_int(jpki_account_id(NULL, "alice", 5, b), JPKI_ERR_INVALID,
           "no context refused");
    is_int(jpki_account_id(none, "alice", 5, b), JPKI_ERR_INVALID,
           "a context without a secret refused");
    jpki_ctx_free(c);
    jpki_ctx_free(c2);
    jpki_ctx_free(none);
}

/* ------------------------------------------------------------------ */
/* jpki_policy_set_throttle                                            */
/* ------------------------------------------------------------------ */

static void test_set_throttle(void)
{
    static const char *const bad[] = {
        "bogus=1", "certs=5", "cert", "cert=", "cert=x", "cert=-1", "cert=+5",
        "cert=5x", "cert=5s", "window=2h", "window=2mm", "window=m",
        "window=0", "window=0m", "window=3601", "window=61m",
        "cert=1000001", "addr=99999999999999999999", "logins=1000001",
        "concurrency=1000001", "cert=5 bogus=1", "cert=5 window=0",
        "off cert=5", "Cert=5", "cert=5,addr=7"
    };
    jpki_ctx *c = ctx_with_secret(1);
    jpki_policy p = *jpki_ctx_get_policy(c), q;
    char err[256];
    size_t i;

    q = p;
    ok(jpki_policy_set_throttle(&q, "off", err, sizeof(err)) == JPKI_OK
       && q.throttle_cert == 0 && q.throttle_addr == 0
       && q.login_limit_cert == 0 && q.throttle_window == 60,
       "off: no failed-login or login limits");
    q = p;
    ok(jpki_policy_set_throttle(&q, " \toff", err, sizeof(err)) == JPKI_OK
       && q.throttle_cert == 0, "off after blanks");
    q = p;
    ok(jpki_policy_set_throttle(&q, "window=2m cert=5 addr=7 logins=9 "
                                "concurrency=3", err, sizeof(err)) == JPKI_OK
       && q.throttle_window == 120 && q.throttle_cert == 5
       && q.throttle_addr == 7 && q.login_limit_cert == 9
       && q.login_concurrency == 3, "window=2m cert=5 addr=7 logins=9 "
       "concurrency=3");
    q = p;
    ok(jpki_policy_set_throttle(&q, "  cert=0\t\taddr=1000000  ", err,
                                sizeof(err)) == JPKI_OK
       && q.throttle_cert == 0 && q.throttle_addr == 1000000
       && q.throttle_window == 60 && q.login_limit_cert == 60
       && q.login_concurrency == 16,
       "blanks and tabs; changes only what it names");
    q = p;
    ok(jpki_policy_set_throttle(&q, "window=45s", err, sizeof(err)) == JPKI_OK
       && q.throttle_window == 45, "window=45s");
    ok(jpki_policy_set_throttle(&q, "window=3600", err, sizeof(err))
       == JPKI_OK && q.throttle_window == 3600, "window=3600 (the most)");
    ok(jpki_policy_set_throttle(&q, "window=60m", err, sizeof(err))
       == JPKI_OK && q.throttle_window == 3600, "window=60m");
    ok(jpki_policy_set_throttle(&q, "window=1", err, sizeof(err))
       == JPKI_OK && q.throttle_window == 1, "window=1 (the least)");
    ok(jpki_policy_set_throttle(&q, "cert=1000000", err, sizeof(err))
       == JPKI_OK && q.throttle_cert == 1000000, "cert=1000000 (the most)");
    ok(jpki_policy_check(&q, err, sizeof(err)) == JPKI_OK,
       "the result passes jpki_policy_check");

    /* errors: a sentence, and the policy as it was */
    p.throttle_cert = 4;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q = p;
        err[0] = '\0';
        is_int(jpki_policy_set_throttle(&q, bad[i], err, sizeof(err)),
               JPKI_ERR_INVALID, "\"%s\" refused", bad[i]);
        ok(strncmp(err, "throttle: ", 10) == 0, "... with a sentence (%s)",
           err);
        ok(memcmp(&q, &p, sizeof(p)) == 0, "... the policy unchanged");
    }
    q = p;
    ok(jpki_policy_set_throttle(&q, "bogus", NULL, 0) == JPKI_ERR_INVALID,
       "no errbuf: refused all the same");
    jpki_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* jpki_audit_admit                                                    */
/* ------------------------------------------------------------------ */

/* n refusals at `at`: how many were admitted; *last_sup: the suppressed
 * count the last one reported. */
static unsigned admit_n(const jpki_ctx *c, const char *cert, unsigned cl,
                        const char *peer, unsigned pl, int64_t at,
                        unsigned n, unsigned *last_sup)
{
    unsigned i, admitted = 0, sup = 0;

    for (i = 0; i < n; i++)
        admitted += (unsigned)jpki_audit_admit(c, cert, cl, peer, pl, 60,
                                                at, &sup);
    if (last_sup != NULL)
        *last_sup = sup;
    return admitted;
}

static void test_audit_admit(void)
{
    static const char cid[] = "0123456789abcdef0123456789abcdef";
    jpki_ctx *c = ctx_with_secret(1);
    int64_t t0 = 1700000000;
    unsigned sup = 99, i, n;
    char other[40];

    /* per certificate: the throttle's limit, at least 10 a window */
    is_int(admit_n(c, cid, 3, NULL, 0, t0, 10, &sup), 10,
           "cert limit 3: 10 lines a window all the same");
    is_int(sup, 0, "... nothing suppressed so far");
    is_int(admit_n(c, cid, 3, NULL, 0, t0, 5, &sup), 0,
           "the 11th to 15th are left out");
    is_int(sup, 0, "... a line left out reports nothing");
    is_int(admit_n(c, cid, 3, NULL, 0, t0 + 59, 1, &sup), 0,
           "still left out at the window's last second");
    is_int(admit_n(c, cid, 3, NULL, 0, t0 + 60, 1, &sup), 1,
           "a new window admits");
    is_int(sup, 6, "... and reports the 6 left out");
    is_int(admit_n(c, cid, 3, NULL, 0, t0 + 60, 1, &sup), 1,
           "the next line is admitted");
    is_int(sup, 0, "... and reports them no more");

    is_int(admit_n(c, "aaaa", 25, NULL, 0, t0, 30, &sup), 25,
           "cert limit 25: 25 lines a window");
    is_int(admit_n(c, "aaaa", 25, NULL, 0, t0 + 60, 1, &sup), 1,
           "... the next window");
    is_int(sup, 5, "... reports 5");

    /* per address, over several certificates */
    for (i = 0, n = 0; i < 14; i++) {
        snprintf(other, sizeof(other), "%032x", i + 1);
        n += admit_n(c, other, 0, "192.0.2.7", 12, t0, 1, &sup);
    }
    is_int(n, 12, "peer limit 12: 12 of 14 lines, whatever the certificate");
    is_int(admit_n(c, NULL, 0, "192.0.2.8", 12, t0, 1, &sup), 1,
           "another address is admitted");
    is_int(admit_n(c, "", 0, "192.0.2.7", 12, t0 + 60, 1, &sup), 1,
           "the next window admits the address (no certificate)");
    is_int(sup, 2, "... and reports the 2 left out");

    /* both keys: the first one over its limit leaves the line out */
    is_int(admit_n(c, "bbbb", 10, "192.0.2.9", 100, t0, 11, &sup), 10,
           "certificate over, address under: left out");
    is_int(admit_n(c, "cccc", 10, "192.0.2.9", 100, t0, 1, &sup), 1,
           "another certificate from that address is admitted");

    /* a limit of 0: that key is not limited */
    is_int(admit_n(c, cid, 0, NULL, 0, t0 + 600, 1000, NULL), 1000,
           "limits 0: every line admitted");
    is_int(admit_n(c, "dddd", 0, "192.0.2.10", 10, t0, 1000, NULL), 10,
           "cert limit 0, peer limit 10: the address only");
    is_int(admit_n(c, "eeee", 10, "192.0.2.11", 0, t0, 1000, NULL), 10,
           "peer limit 0, cert limit 10: the certificate only");
    is_int(admit_n(c, NULL, 10, NULL, 10, t0, 100, NULL), 100,
           "neither key: admitted");
    jpki_ctx_free(c);
}

/* ------------------------------------------------------------------ */
/* outsync: the logout log, copied into a mirror                       */
/* ------------------------------------------------------------------ */

typedef struct {
    void *mem, *h;
    jpki_shm *s;
} shm_tab;

static jpki_shm *tab_open(shm_tab *t, size_t size)
{
    t->mem = calloc(1, size);
    t->h = calloc(1, jpki_shm_handle_size());
    if (t->mem == NULL || t->h == NULL
        || jpki_shm_init(t->mem, size, 0) != JPKI_OK)
        exit(1);
    t->s = jpki_shm_attach(t->h, t->mem, size, NULL);
    return t->s;
}

static void tab_close(shm_tab *t)
{
    free(t->mem);
    free(t->h);
}

/* One command on s: its result; a SET without TTL when ttl_ms is 0. */
static jpki_store_result op(jpki_shm *s, jpki_store_op o, int64_t now_ms,
                            uint32_t ttl_ms, const char *val,
                            const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static jpki_store_result op(jpki_shm *s, jpki_store_op o, int64_t now_ms,
                            uint32_t ttl_ms, const char *val,
                            const char *fmt, ...)
{
    jpki_store_cmd c;
    jpki_store_result r;
    va_list ap;

    memset(&c, 0, sizeof(c));
    c.op = o;
    va_start(ap, fmt);
    c.keylen = (size_t)vsnprintf(c.key, sizeof(c.key), fmt, ap);
    va_end(ap);
    if (val != NULL) {
        c.vallen = strlen(val);
        memcpy(c.val, val, c.vallen);
    }
    c.ttl_ms = ttl_ms;
    jpki_shm_exec(s, &c, now_ms, &r);
    return r;
}

/* The value of jpki:v1:<kind>:<id> in the mirror ("" when absent). */
static const char *marker(jpki_shm *m, const char *kind, const char *id,
                          int64_t now_ms)
{
    static char buf[JPKI_STORE_VAL_MAX + 1];
    jpki_store_result r = op(m, JPKI_STORE_GET, now_ms, 0, NULL,
                             "jpki:v1:%s:%s", kind, id);

    buf[0] = '\0';
    if (r.type == JPKI_STORE_R_VALUE)
        snprintf(buf, sizeof(buf), "%.*s", (int)r.vallen, (const char *)r.val);
    return buf;
}

/* The record a logout appends, as txn.c writes it: INCR outseq, then SET
 * outlog:<n>; rec NULL: numbered only (its writer not there yet).  The
 * record's number. */
static long long log_append(jpki_shm *st, int64_t now_ms, const char *rec)
{
    jpki_store_result r = op(st, JPKI_STORE_INCR, now_ms, 0, NULL,
                             "jpki:v1:outseq");

    if (r.type != JPKI_STORE_R_INT)
        return -1;
    if (rec != NULL)
        op(st, JPKI_STORE_SET, now_ms, JPKI_OUTLOG_TTL * 1000u, rec,
           "jpki:v1:outlog:%lld", r.n);
    return r.n;
}

/* A logout of certificate (kind 'c') or account ('a') id at `at` s. */
static long long log_logout(jpki_shm *st, int64_t now_ms, char kind,
                            const char *id, int64_t at)
{
    char rec[JPKI_STORE_VAL_MAX];

    snprintf(rec, sizeof(rec), "%c|%s|%lld|%u", kind, id, (long long)at,
             (unsigned)JPKI_OUTLOG_TTL);
    return log_append(st, now_ms, rec);
}

/* One poll: the commands run in the store and fed back until none are
 * asked; the number of batches (0: no poll due).  fail_log: the reads of
 * records fail (R_ERROR). */
static int poll_ex(jpki_outsync *o, jpki_shm *st, int64_t now_ms,
                   int fail_log)
{
    jpki_store_result r[JPKI_STORE_BATCH_MAX];
    const jpki_store_cmd *c;
    size_t n, i;
    int batches = 0;

    c = jpki_outsync_cmds(o, now_ms, &n);
    while (c != NULL && n > 0 && batches < 10000) {
        jpki_shm_exec_batch(st, c, n, now_ms, r);
        for (i = 0; i < n && fail_log; i++)
            if (strstr(c[i].key, ":outlog:") != NULL)
                r[i].type = JPKI_STORE_R_ERROR;
        c = jpki_outsync_feed(o, r, n, now_ms, &n);
        batches++;
    }
    return batches;
}

static int poll_at(jpki_outsync *o, jpki_shm *st, int64_t now_ms)
{
    return poll_ex(o, st, now_ms, 0);
}

static const char *hexid(unsigned i)
{
    static char buf[4][JPKI_CERT_ID_HEX_LEN + 1];
    static int k;
    char *b = buf[k++ & 3];

    snprintf(b, JPKI_CERT_ID_HEX_LEN + 1, "%016x%016x", 0xabcdu, i);
    return b;
}

#define T0 INT64_C(1700000000000)            /* ms */

/* The context's sentences about the logout log. */
static int outsync_down, outsync_up;

static void outsync_log(void *ud, jpki_log_level level, const char *msg)
{
    (void)ud;
    outsync_down += level == JPKI_LOG_WARN
                    && strstr(msg, "logout log: the store does not answer");
    outsync_up += strstr(msg, "logout log: the store answers again") != NULL;
}

static void test_outsync_basics(jpki_ctx *c)
{
    shm_tab st, mi;
    jpki_shm *store = tab_open(&st, 1 << 20), *mirror = tab_open(&mi, 1 << 20);
    jpki_outsync *o = jpki_outsync_new(c, mirror);
    jpki_store_result r[1];
    const jpki_store_cmd *cmd;
    int64_t now = T0, since0, synced;
    char want[32];
    size_t n;
    unsigned i;

    ok(o != NULL, "outsync: a poller");
    jpki_ctx_set_log(c, outsync_log, NULL);
    ok(jpki_outsync_new(c, NULL) == NULL && jpki_outsync_new(NULL, mirror)
       == NULL, "... none without a context or a mirror");
    is_int(jpki_outsync_since(NULL, now) == INT64_MAX, 1,
           "since of no poller: INT64_MAX");
    ok(jpki_outsync_since(o, now) == INT64_MAX,
       "since before the first poll: INT64_MAX");

    /* a poll the store fails: not complete */
    cmd = jpki_outsync_cmds(o, now, &n);
    ok(cmd != NULL && n == 1 && cmd[0].op == JPKI_STORE_GET
       && strcmp(cmd[0].key, "jpki:v1:outseq") == 0,
       "a poll starts with GET outseq");
    ok(jpki_outsync_cmds(o, now, &n) == NULL && n == 0,
       "no second poll while one runs");
    ok(jpki_outsync_feed(o, NULL, 1, now, &n) == NULL && n == 0,
       "the store failed: the poll ends");
    ok(jpki_outsync_since(o, now) == INT64_MAX,
       "... since still INT64_MAX (nothing complete)");
    ok(jpki_outsync_cmds(o, now + JPKI_OUTSYNC_PERIOD_MS - 1, &n) == NULL,
       "the next poll waits for the period");
    cmd = jpki_outsync_cmds(o, now + JPKI_OUTSYNC_PERIOD_MS, &n);
    memset(r, 0, sizeof(r));
    r[0].type = JPKI_STORE_R_ERROR;
    ok(cmd != NULL && jpki_outsync_feed(o, r, n, now, &n) == NULL
       && jpki_outsync_since(o, now) == INT64_MAX,
       "a store error: since still INT64_MAX");
    ok(outsync_down == 1 && outsync_up == 0,
       "the outage said once, at its first failed poll");

    /* the first complete poll: the whole log read (there is none yet),
     * the mirror vouches for the time records live (less 5 s) */
    now += 1000;
    is_int(poll_at(o, store, now), 1, "first poll: one batch (no log yet)");
    ok(outsync_down == 1 && outsync_up == 1, "... the store answers again: "
       "said once");
    jpki_ctx_set_log(c, NULL, NULL);
    since0 = jpki_outsync_since(o, now);
    is_int(since0, now / 1000 - JPKI_OUTLOG_TTL + 5,
           "since: JPKI_OUTLOG_TTL - 5 s before the first poll");
    synced = now;

    /* a logout on another node reaches the mirror at the next poll */
    now += 300;
    log_logout(store, now, 'c', hexid(1), now / 1000);
    is_int(poll_at(o, store, now), 0, "no poll before the period");
    is_str(marker(mirror, "out", hexid(1), now), "", "... no marker yet");
    now = synced + JPKI_OUTSYNC_PERIOD_MS;
    is_int(poll_at(o, store, now), 2, "the next poll: outseq, the record");
    synced = now;
    snprintf(want, sizeof(want), "%lld", (long long)(now - 200) / 1000);
    is_str(marker(mirror, "out", hexid(1), now), want,
           "out:<cert_id> in the mirror, the logout's time");
    is_str(marker(mirror, "out", hexid(1), now + JPKI_OUTLOG_TTL * 1000 - 1),
           want, "... kept JPKI_OUTLOG_TTL");
    is_str(marker(mirror, "out", hexid(1), now + JPKI_OUTLOG_TTL * 1000), "",
           "... not longer");
    is_int(jpki_outsync_since(o, now), since0, "since stays");

    /* a record the store fails to read is read at the next poll */
    now += 1000;
    log_logout(store, now, 'c', hexid(3), now / 1000);
    is_int(poll_ex(o, store, now, 1), 2, "reading a record fails");
    is_str(marker(mirror, "out", hexid(3), now), "", "... no marker");
    now += JPKI_OUTSYNC_PERIOD_MS;
    poll_at(o, store, now);
    ok(marker(mirror, "out", hexid(3), now)[0] != '\0'
       && jpki_outsync_since(o, now) == since0,
       "... read at the next poll (not skipped)");
    synced = now;

    /* stale: no complete poll for JPKI_OUTSYNC_STALE_MS */
    is_int(jpki_outsync_since(o, synced + JPKI_OUTSYNC_STALE_MS), since0,
           "since at JPKI_OUTSYNC_STALE_MS after the last poll");
    ok(jpki_outsync_since(o, synced + JPKI_OUTSYNC_STALE_MS + 1) == INT64_MAX,
       "INT64_MAX a millisecond later");

    /* account logouts; a record's ttl is capped at JPKI_OUTLOG_TTL */
    now += 1000;
    log_logout(store, now, 'a', hexid(2), 1700000005);
    log_append(store, now, "c|" "0000000000000000000000000000abcd"
               "|1700000006|86400");
    is_int(poll_at(o, store, now), 2, "account logout polled");
    is_str(marker(mirror, "outa", hexid(2), now), "1700000005",
           "a|<id> gives outa:<id>");
    is_str(marker(mirror, "out", hexid(2), now), "", "... not out:<id>");
    is_str(marker(mirror, "out", "0000000000000000000000000000abcd",
                  now + JPKI_OUTLOG_TTL * 1000 - 1), "1700000006",
           "a record's ttl of a day...");
    is_str(marker(mirror, "out", "0000000000000000000000000000abcd",
                  now + JPKI_OUTLOG_TTL * 1000), "",
           "... is capped at JPKI_OUTLOG_TTL in the mirror");

    /* many logouts between two polls: read in batches */
    now += 1000;
    for (i = 100; i < 130; i++)
        log_logout(store, now, 'c', hexid(i), 1700000010);
    is_int(poll_at(o, store, now), 4, "30 records: outseq, then 12+12+6");
    for (i = 100, n = 0; i < 130; i++)
        n += strcmp(marker(mirror, "out", hexid(i), now), "1700000010") == 0;
    is_int(n, 30, "... all 30 in the mirror");
    is_int(jpki_outsync_since(o, now), since0, "since stays");

    /* malformed records are skipped, the ones after them read */
    {
        static const char *const junk[] = {
            "x|0000000000000000000000000000dead|1700000011|600",
            "c|000000000000000000000000000dead|1700000011|600",
            "c|0000000000000000000000000000DEAD|1700000011|600",
            "c|0000000000000000000000000000dead|0|600",
            "c|0000000000000000000000000000dead|-5|600",
            "c|0000000000000000000000000000dead|17x|600",
            "c|0000000000000000000000000000dead||600",
            "c|0000000000000000000000000000dead|1700000011|0",
            "c|0000000000000000000000000000dead|1700000011|-1",
            "c|0000000000000000000000000000dead|1700000011",
            "c|0000000000000000000000000000dead|1700000011|600|x",
            "c|0000000000000000000000000000dead",
            "", "c", "cc|0000000000000000000000000000dead|1700000011|600",
        };
        uint64_t before;

        now += 1000;
        for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
            log_append(store, now, junk[i]);
        log_logout(store, now, 'c', hexid(200), 1700000012);
        before = jpki_shm_count(mirror, now);
        ok(poll_at(o, store, now) >= 2, "malformed records polled");
        is_str(marker(mirror, "out", hexid(200), now), "1700000012",
               "the record after them is in the mirror");
        is_int(jpki_shm_count(mirror, now) - before, 1,
               "... and nothing of the %zu malformed ones",
               sizeof(junk) / sizeof(junk[0]));
        is_int(jpki_outsync_since(o, now), since0, "since stays");
    }

    /* the counter goes back (the store emptied, restarted): logouts may
     * have been lost, since moves forward */
    now += 1000;
    jpki_shm_delete_prefix(store, "jpki:v1:", now);
    log_logout(store, now, 'c', hexid(300), now / 1000);
    ok(poll_at(o, store, now) >= 1, "polled after the store was emptied");
    is_int(jpki_outsync_since(o, now), now / 1000 + 1,
           "the counter went back: since moves to the next second");
    since0 = jpki_outsync_since(o, now);
    now += 1000;
    log_logout(store, now, 'c', hexid(301), now / 1000);
    poll_at(o, store, now);
    ok(marker(mirror, "out", hexid(301), now)[0] != '\0'
       && jpki_outsync_since(o, now) == since0,
       "... and the logouts after it are copied again");

    /* far behind: more than 1024 records */
    now += 1000;
    {
        jpki_store_result seq = op(store, JPKI_STORE_GET, now, 0, NULL,
                                   "jpki:v1:outseq");
        long long s = strtoll((const char *)seq.val, NULL, 10);
        char v[24];

        for (i = 0; i < 1024; i++)
            log_logout(store, now, 'c', hexid(1000 + i), 1700000020);
        ok(poll_at(o, store, now) > 80, "1024 records behind: all read");
        ok(strcmp(marker(mirror, "out", hexid(1000), now), "1700000020") == 0
           && strcmp(marker(mirror, "out", hexid(2023), now), "1700000020")
              == 0, "... the first and the last in the mirror");
        is_int(jpki_outsync_since(o, now), since0, "... since stays");
        now += 1000;
        snprintf(v, sizeof(v), "%lld", s + 1024 + 1025);
        op(store, JPKI_STORE_SET, now, 0, v, "jpki:v1:outseq");
        is_int(poll_at(o, store, now), 1,
               "1025 records behind: not read (outseq only)");
        is_int(jpki_outsync_since(o, now), now / 1000 + 1,
               "... since moves to the next second");
    }
    jpki_outsync_free(o);
    jpki_outsync_free(NULL);
    tab_close(&st);
    tab_close(&mi);
}

/* A record numbered (INCR) but not written yet is waited for; after a
 * while it is given up. */
static void test_outsync_nil(jpki_ctx *c)
{
    shm_tab st, mi;
    jpki_shm *store = tab_open(&st, 1 << 18), *mirror = tab_open(&mi, 1 << 18);
    jpki_outsync *o = jpki_outsync_new(c, mirror);
    int64_t now = T0, since0, t;
    long long k;
    char rec[80];

    poll_at(o, store, now);
    since0 = jpki_outsync_since(o, now);

    /* the writer is slow: the record is read once written */
    now += 1000;
    k = log_append(store, now, NULL);
    is_int(poll_at(o, store, now), 2, "a numbered record not written yet");
    now += JPKI_OUTSYNC_PERIOD_MS;
    poll_at(o, store, now);
    snprintf(rec, sizeof(rec), "c|%s|%lld|600", hexid(1), (long long)now / 1000);
    op(store, JPKI_STORE_SET, now, 600000, rec, "jpki:v1:outlog:%lld", k);
    now += JPKI_OUTSYNC_PERIOD_MS;
    poll_at(o, store, now);
    ok(marker(mirror, "out", hexid(1), now)[0] != '\0',
       "... waited for, not skipped: copied once written (1 s later)");
    is_int(jpki_outsync_since(o, now), since0, "... since stays");

    /* its writer died: the records after it are read after a while */
    now += 1000;
    log_append(store, now, NULL);
    log_logout(store, now, 'c', hexid(2), now / 1000);
    for (t = now; t <= now + 5000; t += JPKI_OUTSYNC_PERIOD_MS) {
        poll_at(o, store, t);
        if (marker(mirror, "out", hexid(2), t)[0] != '\0')
            break;
    }
    ok(t > now + 5000, "a record still missing after 2 s is given up with "
       "those after it (not copied)");
    ok(jpki_outsync_since(o, t) > now / 1000, "... a gap: since moves past "
       "the missing record (sessions check the store once)");
    /* after the gap the log is followed again */
    now = t + 1000;
    log_logout(store, now, 'c', hexid(3), now / 1000);
    poll_at(o, store, now);
    ok(marker(mirror, "out", hexid(3), now)[0] != '\0',
       "... and the next record is copied");
    jpki_outsync_free(o);
    tab_close(&st);
    tab_close(&mi);
}

/* The first poll reads the log back: a restart does not send every
 * session to the store. */
static void test_outsync_catchup(jpki_ctx *c)
{
    shm_tab st, mi;
    jpki_shm *store = tab_open(&st, 1 << 20), *mirror = tab_open(&mi, 1 << 20);
    jpki_outsync *o;
    int64_t now = T0;
    long long k;
    unsigned i;

    /* records 1..40: the first 20 expired (nil), 21..40 live */
    for (i = 1; i <= 40; i++)
        log_logout(store, now, 'c', hexid(100 + i), now / 1000);
    for (i = 1; i <= 20; i++)
        op(store, JPKI_STORE_DEL, now, 0, NULL, "jpki:v1:outlog:%u", i);
    o = jpki_outsync_new(c, mirror);
    poll_at(o, store, now);
    ok(marker(mirror, "out", hexid(140), now)[0] != '\0'
       && marker(mirror, "out", hexid(121), now)[0] != '\0',
       "first poll: the live records of the log copied");
    is_int(jpki_outsync_since(o, now), now / 1000 - JPKI_OUTLOG_TTL + 5,
           "... expired ones passed over: since JPKI_OUTLOG_TTL - 5 s back");
    jpki_outsync_free(o);

    /* more than 1024 records, the oldest read still there: older ones may
     * live too, the mirror vouches from the next second only */
    for (i = 41; i <= 1100; i++)
        log_logout(store, now, 'c', hexid(100 + i), now / 1000);
    o = jpki_outsync_new(c, mirror);
    poll_at(o, store, now);
    is_int(jpki_outsync_since(o, now), now / 1000 + 1,
           "a longer log whose oldest read record lives: since the next "
           "second");
    jpki_outsync_free(o);
    /* ... and when that one has expired, so have all older ones */
    op(store, JPKI_STORE_DEL, now, 0, NULL, "jpki:v1:outlog:%u", 1100 - 1024 + 1);
    o = jpki_outsync_new(c, mirror);
    poll_at(o, store, now);
    is_int(jpki_outsync_since(o, now), now / 1000 - JPKI_OUTLOG_TTL + 5,
           "... expired: since JPKI_OUTLOG_TTL - 5 s back");
    jpki_outsync_free(o);

    /* a record numbered at the top, not written yet: waited for */
    k = log_append(store, now, NULL);
    o = jpki_outsync_new(c, mirror);
    poll_at(o, store, now);
    is_int(jpki_outsync_since(o, now + 100), INT64_MAX,
           "a record at the top not written yet: the first poll waits");
    jpki_outsync_free(o);
    (void)k;
    tab_close(&st);
    tab_close(&mi);
}

/* The mirror full: a logout it cannot hold moves since forward. */
static void test_outsync_full(jpki_ctx *c)
{
    shm_tab st, mi;
    size_t small = jpki_shm_min_size();
    jpki_shm *store = tab_open(&st, 1 << 18), *mirror = tab_open(&mi, small);
    jpki_outsync *o = jpki_outsync_new(c, mirror);
    int64_t now = T0, since0;
    size_t i;

    poll_at(o, store, now);
    since0 = jpki_outsync_since(o, now);
    for (i = 0; i < jpki_shm_capacity(mirror); i++)
        op(mirror, JPKI_STORE_SET, now, 0, "x", "jpki:v1:fill:%zu", i);
    ok(jpki_shm_is_full(mirror, now), "the mirror is full");
    now += 2000;
    log_logout(store, now, 'c', hexid(1), now / 1000);
    poll_at(o, store, now);
    is_str(marker(mirror, "out", hexid(1), now), "", "no room for the marker");
    ok(jpki_outsync_since(o, now) > since0
       && jpki_outsync_since(o, now) == now / 1000 + 1,
       "a full mirror moves since to the next second");
    jpki_outsync_free(o);
    tab_close(&st);
    tab_close(&mi);
}

int main(void)
{
    jpki_ctx *c = ctx_with_secret(3);

    test_throttle_over();
    test_peer_id();
    test_account_id();
    test_set_throttle();
    test_audit_admit();
    test_outsync_basics(c);
    test_outsync_nil(c);
    test_outsync_catchup(c);
    test_outsync_full(c);
    jpki_ctx_free(c);
    return done_testing();
}
