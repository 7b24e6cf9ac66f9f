/* guard.c - what keeps one client from hurting the others: the failed-login
 * throttle (sliding-window counters held in the store, so that they hold
 * across nodes), the rate limit of refusal audit lines (per process), and
 * the store names of a client address and of an account.
 *
 * Throttle counters (docs/store-schema.md "thr"): one INCR'ed key per
 * subject and window, jpki:v1:thr:<kind>:<id>:<window number>, living two
 * windows.  The count over the sliding window is estimated the usual way:
 * the current window's count plus the previous one's, weighted by how much
 * of the previous window the sliding window still covers. */
#include "internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names -------------------------------------------------------- */

static void keyed_id(const jpki_ctx *ctx, const char *label, const char *v,
                     size_t len, size_t bytes, char *out)
{
    uint8_t mac[32];

    if (!jpki_hmac_sha256(ctx->secret, ctx->secret_len,
                          (const uint8_t *)label, strlen(label),
                          (const uint8_t *)v, len, mac)) {
        memset(mac, 0, sizeof(mac));    /* cannot happen with a valid key */
    }
    jpki_hex_encode(mac, bytes, out);
}

/* The account id is computed on every gated request (the account's
 * logout marker is looked up there): two SipHash-2-4 under keys derived
 * from the site secret, not an HMAC (OpenSSL's costs microseconds). */
int jpki_account_key(const jpki_ctx *ctx, uint8_t key[32])
{
    return jpki_hkdf(ctx->secret, ctx->secret_len, "jpki account id", key,
                     32);
}

jpki_err jpki_account_id(const jpki_ctx *ctx, const char *account,
                         size_t len, char out[JPKI_ACCOUNT_ID_HEX_LEN + 1])
{
    uint8_t key[32], h[16];
    uint64_t v[2];
    int i, j;

    if (ctx == NULL || ctx->secret_len == 0 || account == NULL
        || !jpki_account_valid(account, len))
        return JPKI_ERR_INVALID;
    if (ctx->finished)
        memcpy(key, ctx->account_key, sizeof(key));
    else if (!jpki_account_key(ctx, key))
        return JPKI_ERR_INTERNAL;
    for (i = 0; i < 2; i++) {
        v[i] = jpki_siphash24(key + 16 * i, (const uint8_t *)account, len);
        for (j = 0; j < 8; j++)
            h[8 * i + j] = (uint8_t)(v[i] >> (56 - 8 * j));
    }
    OPENSSL_cleanse(key, sizeof(key));
    jpki_hex_encode(h, sizeof(h), out);
    return JPKI_OK;
}

/* The throttle's name of a client address: IPv4 as it is, IPv6 by its /64
 * (one host commonly holds a whole /64), keyed with the site secret so that
 * the store holds no addresses.  0 when peer is not an address. */
int jpki_peer_id(const jpki_ctx *ctx, const char *peer, char out[17])
{
    uint8_t a6[16];
    char text[64];
    struct in_addr a4;
    size_t n;

    if (peer == NULL || (n = strlen(peer)) == 0 || n >= sizeof(text))
        return 0;
    memcpy(text, peer, n + 1);
    if (text[0] == '[' && text[n - 1] == ']') {      /* "[v6]" */
        memmove(text, text + 1, n - 2);
        text[n - 2] = '\0';
    }
    if (inet_pton(AF_INET, text, &a4) == 1) {
        keyed_id(ctx, "jpki-peer4:", (const char *)&a4, 4, 8, out);
        return 1;
    }
    if (inet_pton(AF_INET6, text, a6) != 1)
        return 0;
    if (memcmp(a6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
        keyed_id(ctx, "jpki-peer4:", (const char *)a6 + 12, 4, 8, out);
        return 1;
    }
    keyed_id(ctx, "jpki-peer6:", (const char *)a6, 8, 8, out);
    return 1;
}

/* ---- throttle counters ------------------------------------------- */

size_t jpki_throttle_key(char *out, size_t max, const char *kind,
                         const char *id, int64_t window_no)
{
    int n = snprintf(out, max, "%sthr:%s:%s:%lld", JPKI_STORE_PREFIX, kind,
                     id, (long long)window_no);
    return n < 0 || (size_t)n >= max ? 0 : (size_t)n;
}

/* The sliding count at now + dt when nothing more is counted: cur and prev
 * are the counts of windows w = now / win and w - 1. */
static double estimate(uint64_t cur, uint64_t prev, int64_t now, int64_t dt,
                       unsigned win)
{
    int64_t t = now + dt, w = now / win, tw = t / win;
    double left = (double)(win - (unsigned)(t % win)) / win;

    if (tw == w)
        return (double)cur + (double)prev * left;
    if (tw == w + 1)
        return (double)cur * left;
    return 0;
}

unsigned jpki_throttle_over(uint64_t cur, uint64_t prev, int64_t now,
                            unsigned win, unsigned limit)
{
    int64_t lo, hi, mid;

    if (limit == 0 || win == 0 || estimate(cur, prev, now, 0, win) < limit)
        return 0;
    /* the first second at which the count is under the limit again (the
     * estimate only falls as time passes) */
    lo = 1;
    hi = 2 * (int64_t)win;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (estimate(cur, prev, now, mid, win) < limit)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (unsigned)lo;
}

/* ---- audit lines: at most `limit` refusals per cert_id and per address
 * a window (the throttle's limits and window; at least AUDIT_MIN lines),
 * per process; the
 * ones left out are counted and the count goes into the next line written
 * for that certificate or address ("suppressed"), or into a log line of
 * its own when its slot is taken by another key.  Nothing is dropped
 * silently. ------------------------------------------------------------ */

#define AUDIT_MIN     10

static uint64_t fnv1a(const char *kind, const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    const char *p;

    for (p = kind; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    for (p = s; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    return h | 1;                        /* 0 marks a free slot */
}

/* The slot of one key, taken over (with a log line for what it still
 * counted) when another key holds it: certificates in the first half of
 * the table, addresses in the other (a certificate and an address never
 * take each other's slot).  Caller holds audit_mu. */
static jpki_audit_slot *audit_slot(jpki_ctx *ctx, int half, const char *kind,
                                   const char *id, int64_t now,
                                   unsigned window)
{
    uint64_t h = fnv1a(kind, id);
    jpki_audit_slot *sl = &ctx->audit[half * (JPKI_AUDIT_SLOTS / 2)
                                      + h % (JPKI_AUDIT_SLOTS / 2)];

    if (sl->h != h) {
        if (sl->h != 0 && sl->suppressed > 0)
            jpki_log(ctx, JPKI_LOG_WARN, "jpki audit: %u refused logins of "
                     "%s %s were not logged (rate limit)", sl->suppressed,
                     sl->kind, sl->id);
        memset(sl, 0, sizeof(*sl));
        sl->h = h;
        snprintf(sl->kind, sizeof(sl->kind), "%s", kind);
        snprintf(sl->id, sizeof(sl->id), "%s", id);
    }
    if (now - sl->window >= (int64_t)window || now < sl->window) {
        sl->window = now;
        sl->lines = 0;
    }
    return sl;
}

int jpki_audit_admit(const jpki_ctx *cctx, const char *cert_id,
                     unsigned cert_limit, const char *peer,
                     unsigned peer_limit, unsigned window, int64_t now,
                     unsigned *suppressed)
{
    jpki_ctx *ctx = (jpki_ctx *)cctx;   /* the limiter's table only */
    jpki_audit_slot *s[2] = {NULL, NULL};
    unsigned lim[2];
    int i, admit = 1;

    *suppressed = 0;
    lim[0] = cert_limit > AUDIT_MIN ? cert_limit : AUDIT_MIN;
    lim[1] = peer_limit > AUDIT_MIN ? peer_limit : AUDIT_MIN;
    pthread_mutex_lock(&ctx->audit_mu);
    if (cert_id != NULL && cert_id[0] != '\0' && cert_limit > 0)
        s[0] = audit_slot(ctx, 0, "cert_id", cert_id, now, window);
    if (peer != NULL && peer[0] != '\0' && peer_limit > 0)
        s[1] = audit_slot(ctx, 1, "peer", peer, now, window);
    for (i = 0; i < 2; i++)
        if (s[i] != NULL && s[i]->lines >= lim[i])
            admit = 0;
    for (i = 0; i < 2; i++) {
        if (s[i] == NULL)
            continue;
        if (!admit) {
            s[i]->suppressed++;
            continue;
        }
        s[i]->lines++;
        if (s[i]->suppressed > *suppressed)
            *suppressed = s[i]->suppressed;
        s[i]->suppressed = 0;
    }
    pthread_mutex_unlock(&ctx->audit_mu);
    return admit;
}

/* ---- the throttle's directive grammar (both servers) ---------------- */

/* "off", or any of window=<n>[s|m] cert=<n> addr=<n> logins=<n>
 * concurrency=<n>, separated by blanks; a limit of 0 is off. */
jpki_err jpki_throttle_parse(const char *args, jpki_throttle *t,
                             char *errbuf, size_t errlen)
{
    static const char *const names[] = {"window=", "cert=", "addr=",
                                        "logins=", "concurrency="};
    const char *s = args, *e;
    unsigned long v;
    size_t i, nl;
    char *end;

    memset(t, 0, sizeof(*t));
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0') {
        jpki_set_detail(errbuf, errlen, "throttle: expects off, or window=, "
                        "cert=, addr=, logins=, concurrency=");
        return JPKI_ERR_INVALID;
    }
    if (strncmp(s, "off", 3) == 0 && strspn(s + 3, " \t") == strlen(s + 3)) {
        /* every limit off; the window stays */
        t->set = ~(1u << JPKI_THR_WINDOW) & ((1u << JPKI__THR_COUNT) - 1);
        return JPKI_OK;
    }
    while (*s != '\0') {
        for (e = s; *e != '\0' && *e != ' ' && *e != '\t'; e++)
            ;
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            nl = strlen(names[i]);
            if ((size_t)(e - s) > nl && strncmp(s, names[i], nl) == 0)
                break;
        }
        if (i == sizeof(names) / sizeof(names[0])) {
            jpki_set_detail(errbuf, errlen, "throttle: unknown setting "
                            "\"%.*s\" (off, or window= cert= addr= logins= "
                            "concurrency=)", (int)(e - s > 40 ? 40 : e - s),
                            s);
            return JPKI_ERR_INVALID;
        }
        v = 0;
        if (s[nl] >= '0' && s[nl] <= '9')
            v = strtoul(s + nl, &end, 10);
        else
            end = (char *)s + nl;
        if (end == s + nl || v > 1000000
            || !(end == e || (i == 0 && end + 1 == e
                              && (*end == 's' || *end == 'm')))) {
            jpki_set_detail(errbuf, errlen, "throttle: \"%.*s\" needs a "
                            "number up to 1000000%s", (int)(e - s > 40 ? 40
                            : e - s), s, i == 0 ? " (seconds, or 2m)" : "");
            return JPKI_ERR_INVALID;
        }
        if (i == 0 && end != e && *end == 'm')
            v *= 60;
        t->set |= 1u << i;
        t->v[i] = (unsigned)v;
        for (s = e; *s == ' ' || *s == '\t'; s++)
            ;
    }
    if ((t->set & (1u << JPKI_THR_WINDOW))
        && (t->v[JPKI_THR_WINDOW] < 1 || t->v[JPKI_THR_WINDOW] > 3600)) {
        jpki_set_detail(errbuf, errlen, "throttle: window must be 1 s to "
                        "1 hour");
        return JPKI_ERR_INVALID;
    }
    return JPKI_OK;
}

void jpki_throttle_apply(const jpki_throttle *t, jpki_policy *p)
{
    unsigned *f[JPKI__THR_COUNT];
    size_t i;

    f[JPKI_THR_WINDOW] = &p->throttle_window;
    f[JPKI_THR_CERT] = &p->throttle_cert;
    f[JPKI_THR_ADDR] = &p->throttle_addr;
    f[JPKI_THR_LOGINS] = &p->login_limit_cert;
    f[JPKI_THR_CONCURRENCY] = &p->login_concurrency;
    for (i = 0; i < JPKI__THR_COUNT; i++)
        if (t->set & (1u << i))
            *f[i] = t->v[i];
}

void jpki_throttle_merge(jpki_throttle *child, const jpki_throttle *parent)
{
    size_t i;

    for (i = 0; i < JPKI__THR_COUNT; i++)
        if (!(child->set & (1u << i)) && (parent->set & (1u << i))) {
            child->set |= 1u << i;
            child->v[i] = parent->v[i];
        }
}

jpki_err jpki_policy_set_throttle(jpki_policy *p, const char *args,
                                  char *errbuf, size_t errlen)
{
    jpki_throttle t;
    jpki_err e = jpki_throttle_parse(args, &t, errbuf, errlen);

    if (e == JPKI_OK)
        jpki_throttle_apply(&t, p);
    return e;
}
