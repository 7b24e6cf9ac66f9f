/* test_crlstate.c - what `jpkictl crl sync --state-dir` rests on:
 * SipHash-2-4-128 (the reference vectors), the scan of a CRL
 * (jpki_crl_verify_scan: digests of the entries' encodings, entries the
 * caller knows skipped, the others' cert_ids as foreach gives them), and
 * the state file (crlstate.h: its MAC, bounds and fields). */
#include "internal.h"
#include "crlstate.h"
#include "pki.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

/* ---- SipHash-2-4-128 ----------------------------------------------- */

static void t_siphash128(void)
{
    /* the reference implementation's vectors_sip128, key 00..0f,
     * messages 00 01 02 ... of length 0..4 */
    static const char *want[] = {
        "a3817f04ba25a8e66df67214c7550293",
        "da87c1d86b99af44347659119b22fc45",
        "8177228da4a45dc7fca38bdef60affe4",
        "9c70b60c5267a94e5f33b6b02985ed51",
        "f88164c12d9c8faf7d0f6e7c7bcd5579",
    };
    uint8_t k[16], in[64], out[16];
    char hex[33];
    size_t i;
    int same = 1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);

    for (i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    for (i = 0; i < 64; i++)
        in[i] = (uint8_t)i;
    for (i = 0; i < 5; i++) {
        jpki_siphash24_128(k, in, i, out);
        jpki_hex_encode(out, 16, hex);
        is_str(hex, want[i], "SipHash-2-4-128, reference vector %zu", i);
    }
    /* and OpenSSL's SipHash-2-4 with a 16-octet output, every length of
     * the reference's 64 (its blocks and every tail) */
    for (i = 0; mac != NULL && i < 64; i++) {
        EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
        size_t sz = 16, l = 0;
        OSSL_PARAM p[2] = {
            OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &sz),
            OSSL_PARAM_construct_end()};
        uint8_t o2[16];

        jpki_siphash24_128(k, in, i, out);
        if (c == NULL || EVP_MAC_init(c, k, 16, p) != 1
            || EVP_MAC_update(c, in, i) != 1
            || EVP_MAC_final(c, o2, &l, sizeof(o2)) != 1 || l != 16
            || memcmp(out, o2, 16) != 0)
            same = 0;
        EVP_MAC_CTX_free(c);
    }
    ok(mac == NULL || same, "SipHash-2-4-128 = OpenSSL's SIPHASH (size 16), "
       "lengths 0..63");
    EVP_MAC_free(mac);
    /* the 64-bit output is unchanged (the reference's first vector) */
    ok(jpki_siphash24(k, in, 0) == UINT64_C(0x726fdb47dd0e0e31),
       "SipHash-2-4 (64-bit), reference vector 0");
}

/* Many messages at once (the lanes of AVX-512 where the CPU has it):
 * the digests of one at a time, whatever the lengths side by side (each
 * lane ending on its own: 0..300 octets, over the lanes' 248 too), and
 * however many (not a multiple of the lanes). */
static void t_siphash128_n(void)
{
    enum { N = 21, MAXL = 301 };
    static uint8_t msg[N][MAXL];
    const uint8_t *in[N];
    size_t len[N], i, j, round, bad = 0;
    uint8_t k[16], out[N * 16], one[16];
    uint32_t x = 2463534242u;

    for (i = 0; i < 16; i++)
        k[i] = (uint8_t)(i * 7 + 1);
    for (round = 0; round < 400; round++) {
        for (i = 0; i < N; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            len[i] = round < 300 ? (round + i * 37) % MAXL : x % 48;
            for (j = 0; j < len[i]; j++)
                msg[i][j] = (uint8_t)(x >> (j % 24) ^ j);
            in[i] = msg[i];
        }
        jpki_siphash24_128_n(k, in, len, round % (N + 1), out);
        for (i = 0; i < round % (N + 1); i++) {
            jpki_siphash24_128(k, in[i], len[i], one);
            bad += memcmp(one, out + 16 * i, 16) != 0;
        }
    }
    is_int((int)bad, 0, "SipHash-2-4-128 of many messages at once: the "
           "digests of one at a time (lengths 0..300, 0..21 messages)");
}

/* ---- the scan -------------------------------------------------------- */

#define MAXE 64

typedef struct {
    size_t n, began, asked;
    uint8_t dg[MAXE][JPKI_CRL_DIGEST_LEN];
    char id[MAXE][JPKI_CERT_ID_HEX_LEN + 1];
    int reason[MAXE];
    /* known: the digests answered 1 */
    const uint8_t (*known)[JPKI_CRL_DIGEST_LEN];
    size_t nknown;
    int begin_says;
} scan_rec;

static int rec_begin(void *ud, const jpki_crl_info *info)
{
    scan_rec *r = ud;

    r->began += info != NULL && info->issuer != NULL;
    return r->begin_says;
}

static int rec_known(void *ud, const uint8_t *d)
{
    scan_rec *r = ud;
    size_t i;

    r->asked++;
    for (i = 0; i < r->nknown; i++)
        if (memcmp(r->known[i], d, JPKI_CRL_DIGEST_LEN) == 0)
            return 1;
    return 0;
}

static int rec_entry(void *ud, const jpki_crl_scan_entry *e)
{
    scan_rec *r = ud;

    if (r->n == MAXE)
        return 1;
    if (e->digest != NULL)
        memcpy(r->dg[r->n], e->digest, JPKI_CRL_DIGEST_LEN);
    jpki_hex_encode(e->cert_id, JPKI_CERT_ID_LEN, r->id[r->n]);
    r->reason[r->n] = e->reason;
    r->n++;
    return 0;
}

static int signer_cb(void *ud, const jpki_crl_entry *e)
{
    scan_rec *r = ud;

    if (r->n == MAXE)
        return 1;
    snprintf(r->id[r->n], sizeof(r->id[0]), "%s", e->cert_id);
    r->reason[r->n++] = e->reason;
    return 0;
}

/* digests made ahead (the scan's ahead): the first ahead_n of ahead_dg */
static const uint8_t *ahead_dg;
static const uint32_t *ahead_len;
static size_t ahead_n, ahead_asked;

static size_t rec_ahead(void *ud, const uint8_t **out, const uint32_t **lens)
{
    (void)ud;
    ahead_asked++;
    *out = ahead_dg;
    *lens = ahead_len;
    return ahead_n;
}

static jpki_err scan(const jpki_ctx *ctx, const uint8_t *der, size_t len,
                     const uint8_t *key, scan_rec *r, jpki_crl_info *info)
{
    jpki_crl_scan_fns f = {key, rec_begin, rec_known, rec_entry, r,
                           ahead_dg != NULL ? rec_ahead : NULL};

    return jpki_crl_verify_scan(ctx, der, len, time(NULL), 0, info, NULL, 0,
                                &f);
}

/* jpki_crl_digests: the scan's digests, in its order, made without the
 * scan; and a scan given them ahead (all, or the first few: it makes
 * the others) finds what it finds without them. */
static void t_digests(const jpki_ctx *ctx, const uint8_t *der, size_t len,
                      const uint8_t *key, const scan_rec *all)
{
    uint8_t dg[16 * 16];
    uint32_t lens[16];
    size_t n, i, c, sum = 0;
    int same;
    jpki_crl_info info;

    n = jpki_crl_digests(key, der, len, dg, lens, 16);
    same = n == all->n;
    for (i = 0; same && i < n; i++)
        same = memcmp(dg + 16 * i, all->dg[i], 16) == 0;
    ok(same, "jpki_crl_digests: the scan's 7 digests, in its order");
    for (i = 0; i < n; i++)
        sum += lens[i] >= 20 && lens[i] < 200 && der[0] == 0x30 ? lens[i]
                                                                 : len;
    ok(sum > 7 * 20 && sum < len, "... and their entries' lengths (%zu "
       "octets in all)", sum);
    is_int((int)jpki_crl_digests(key, der, len, dg, NULL, 3), 3,
           "jpki_crl_digests: at most max of them (no lengths asked)");
    is_int((int)jpki_crl_digests(key, der, len - 1, dg, lens, 16), 0,
           "jpki_crl_digests of a truncated CRL: none");
    /* 4 of them ahead, all 7, all 7 without their lengths (each entry
     * read then) */
    for (c = 0; c < 3; c++) {
        scan_rec part;

        memset(&part, 0, sizeof(part));
        part.begin_says = 1;
        part.known = (const uint8_t (*)[JPKI_CRL_DIGEST_LEN])all->dg + 2;
        part.nknown = 3;
        ahead_dg = dg;
        ahead_len = c < 2 ? lens : NULL;
        ahead_n = c == 0 ? 4 : n;
        ahead_asked = 0;
        memset(&info, 0, sizeof(info));
        scan(ctx, der, len, key, &part, &info);
        ahead_dg = NULL;
        same = part.n == 4 && ahead_asked == 1 && info.entries == 7
               && part.asked == 7;
        for (i = 0; same && i < part.n; i++)
            same = memcmp(part.dg[i], all->dg[i < 2 ? i : i + 3], 16) == 0
                   && strcmp(part.id[i], all->id[i < 2 ? i : i + 3]) == 0;
        ok(same, "scan with %zu of 7 digests ahead%s (asked once): the 4 "
           "entries not known, their digests and cert_ids, 7 counted, each "
           "asked once", ahead_n, c < 2 ? " and their lengths" : "");
    }
    {
        /* a length ahead beyond the list: malformed, not read past */
        scan_rec bad;
        uint32_t big[16];

        memcpy(big, lens, sizeof(big));
        big[3] = (uint32_t)len;
        memset(&bad, 0, sizeof(bad));
        bad.begin_says = 1;
        bad.known = (const uint8_t (*)[JPKI_CRL_DIGEST_LEN])all->dg;
        bad.nknown = 7;
        ahead_dg = dg;
        ahead_len = big;
        ahead_n = n;
        is_int(scan(ctx, der, len, key, &bad, NULL), JPKI_ERR_CRL_PARSE,
               "scan: a length ahead past the list's end: crl_parse");
        ahead_dg = NULL;
    }
}

static void t_scan(const jpki_ctx *ctx)
{
    static const uint8_t key[16] = {1, 2, 3}, key2[16] = {4, 5, 6};
    scan_rec all, fs, none, skip, other, part;
    jpki_crl_info info, vinfo;
    uint8_t *der = NULL;
    size_t len = 0, i, j;
    int same = 1, distinct = 1;

    memset(&all, 0, sizeof(all));
    memset(&fs, 0, sizeof(fs));
    all.begin_says = 1;
    if (!ok(jpki_load_file(tap_path("ca2.crl"), 1 << 20, &der, &len)
            == JPKI_OK, "ca2.crl reads"))
        return;
    is_int(scan(ctx, der, len, key, &all, &info), JPKI_OK, "scan: ok");
    jpki_crl_verify(ctx, der, len, time(NULL), 0, &vinfo, NULL, 0);
    ok(info.entries == vinfo.entries && info.crl_number == vinfo.crl_number
       && memcmp(info.key_hash, vinfo.key_hash, 20) == 0,
       "scan: the info jpki_crl_verify gives");
    is_int((int)all.began, 1, "scan: begin told the CRL's issuer once");
    is_int((int)all.asked, 7, "scan: each of the 7 entries' digests asked");
    jpki_crl_foreach_signer(ctx, der, len, signer_cb, &fs);
    is_int((int)all.n, 7, "scan: nothing known, 7 entries given");
    for (i = 0; i < all.n && i < fs.n; i++)
        same &= strcmp(all.id[i], fs.id[i]) == 0
                && all.reason[i] == fs.reason[i];
    ok(same && all.n == fs.n, "scan: the cert_ids and reasons of "
       "foreach_signer, in its order");
    for (i = 0; i < all.n; i++)
        for (j = i + 1; j < all.n; j++)
            distinct &= memcmp(all.dg[i], all.dg[j], 16) != 0;
    ok(distinct, "scan: 7 distinct digests");
    t_digests(ctx, der, len, key, &all);

    /* every digest known: nothing parsed or given, all still counted */
    memset(&skip, 0, sizeof(skip));
    skip.begin_says = 1;
    skip.known = (const uint8_t (*)[JPKI_CRL_DIGEST_LEN])all.dg;
    skip.nknown = all.n;
    is_int(scan(ctx, der, len, key, &skip, &info), JPKI_OK,
           "scan, all known: ok");
    is_int((int)skip.n, 0, "scan, all known: no entry given");
    ok(info.entries == 7, "scan, all known: 7 entries counted");
    /* some known: the others given */
    memset(&part, 0, sizeof(part));
    part.begin_says = 1;
    part.known = (const uint8_t (*)[JPKI_CRL_DIGEST_LEN])all.dg + 2;
    part.nknown = 3;
    scan(ctx, der, len, key, &part, &info);
    ok(part.n == 4 && strcmp(part.id[0], all.id[0]) == 0
       && strcmp(part.id[2], all.id[5]) == 0,
       "scan, 3 known: the 4 others given (%zu)", part.n);
    /* another key: other digests (none known) */
    memset(&other, 0, sizeof(other));
    other.begin_says = 1;
    other.known = skip.known;
    other.nknown = all.n;
    scan(ctx, der, len, key2, &other, &info);
    ok(other.n == 7 && memcmp(other.dg[0], all.dg[0], 16) != 0,
       "scan under another key: other digests, none known");
    /* begin says no: a plain verification */
    memset(&none, 0, sizeof(none));
    is_int(scan(ctx, der, len, key, &none, &info), JPKI_OK,
           "scan, begin 0: ok");
    ok(none.n == 0 && none.asked == 0 && info.entries == 7,
       "scan, begin 0: no digest asked, no entry given, 7 counted");
    /* a forged CRL: nothing begins */
    der[len - 5] ^= 1;
    memset(&none, 0, sizeof(none));
    none.begin_says = 1;
    is_int(scan(ctx, der, len, key, &none, &info), JPKI_ERR_CRL_SIGNATURE,
           "scan of a forged CRL: crl_bad_signature");
    ok(none.began == 0 && none.n == 0, "... nothing begun or given");
    free(der);
}

/* ---- the state file --------------------------------------------------- */

static size_t mkstate(const jpki_crlstate_keys *k, uint8_t *buf, size_t n,
                      uint32_t nb)
{
    jpki_crlstate_hdr h;
    size_t hl = JPKI_CRLSTATE_HDR + 4 * (size_t)nb, i;

    memset(&h, 0, sizeof(h));
    snprintf(h.lid, sizeof(h.lid), "0123456789abcdef");
    snprintf(h.ptr, sizeof(h.ptr), "1|b4|100|200|7|%zu|300", n);
    memset(h.sha, 'a', 64);
    memset(h.id_check, 'b', 32);
    h.n = n;
    h.stored = n;
    h.nb = nb;
    if (jpki_crlstate_head(&h, buf) != 0)
        return 0;
    for (i = 0; i < nb; i++)
        jpki_crlstate_count_set(buf + JPKI_CRLSTATE_HDR, (uint32_t)i,
                                (uint32_t)i * 1000 + 7);
    for (i = 0; i < n * JPKI_CRLSTATE_REC; i++)
        buf[hl + i] = (uint8_t)(i * 31);
    if (jpki_crlstate_mac(k, buf, hl, buf + hl, n * JPKI_CRLSTATE_REC,
                          buf + hl + n * JPKI_CRLSTATE_REC) != 0)
        return 0;
    return jpki_crlstate_size(n, nb);
}

static void t_state(const jpki_ctx *ctx, const jpki_ctx *other)
{
    jpki_crlstate_keys k, k2;
    jpki_crlstate_hdr h;
    const uint8_t *counts, *recs;
    const char *why;
    uint8_t buf[4096];
    size_t len, i, bad = 0;

    ok(jpki_crlstate_keys_of(ctx, &k) == JPKI_OK
       && jpki_crlstate_keys_of(other, &k2) == JPKI_OK
       && memcmp(k.mac, k2.mac, 32) != 0
       && memcmp(k.digest, k2.digest, 16) != 0,
       "state keys: from the secret (another secret, other keys)");
    len = mkstate(&k, buf, 40, 16);
    ok(len == JPKI_CRLSTATE_HDR + 64 + 40 * JPKI_CRLSTATE_REC
       + JPKI_CRLSTATE_MAC, "a state of 40 records and 16 buckets: %zu "
       "octets", len);
    is_int(jpki_crlstate_open(&k, buf, len, &h, &counts, &recs, &why), 0,
           "it opens");
    ok(strcmp(h.lid, "0123456789abcdef") == 0
       && strcmp(h.ptr, "1|b4|100|200|7|40|300") == 0 && h.n == 40
       && h.stored == 40 && h.nb == 16 && strlen(h.sha) == 64
       && strlen(h.id_check) == 32, "... its fields as written");
    ok(jpki_crlstate_count(counts, 15) == 15007 && recs[1] == 31
       && counts == buf + JPKI_CRLSTATE_HDR,
       "... its counts and records in place");
    /* every octet counts: each one changed, the MAC does not verify */
    for (i = 0; i < len; i++) {
        buf[i] ^= 0x20;
        bad += jpki_crlstate_open(&k, buf, len, &h, &counts, &recs, &why)
               == 0;
        buf[i] ^= 0x20;
    }
    is_int((int)bad, 0, "no octet of it changes unnoticed (%zu)", len);
    buf[JPKI_CRLSTATE_HDR + 70] ^= 1;
    jpki_crlstate_open(&k, buf, len, &h, &counts, &recs, &why);
    is_str(why, "does not verify", "a record changed: does not verify");
    buf[JPKI_CRLSTATE_HDR + 70] ^= 1;
    ok(jpki_crlstate_open(&k2, buf, len, &h, &counts, &recs, &why) != 0
       && strcmp(why, "does not verify") == 0,
       "under another secret's key: does not verify");
    ok(jpki_crlstate_open(&k, buf, len - 1, &h, &counts, &recs, &why) != 0
       && strcmp(why, "does not parse") == 0,
       "one octet short: does not parse (sizes checked before the MAC)");
    ok(jpki_crlstate_open(&k, buf, 10, &h, &counts, &recs, &why) != 0,
       "10 octets: refused");
    ok(jpki_crlstate_size(1, (1u << JPKI_CRL_BITS_MAX) + 1) == 0
       && jpki_crlstate_size(UINT64_MAX / 2, 16) == 0,
       "sizes out of range: 0");
    {
        /* two states of the same content: other nonces, other MACs */
        uint8_t b2[4096];

        mkstate(&k, b2, 40, 16);
        ok(memcmp(buf + len - 16, b2 + len - 16, 16) != 0,
           "each state its own nonce (and MAC)");
    }
}

int main(void)
{
    jpki_ctx *ctx = tap_pki_ctx(0x5a, NULL, NULL);
    jpki_ctx *other = tap_pki_ctx(0x33, NULL, NULL);

    t_siphash128();
    t_siphash128_n();
    if (ok(ctx != NULL && other != NULL, "test PKI loads (%s)",
           tap_pki_dir())) {
        t_scan(ctx);
        t_state(ctx, other);
    }
    jpki_ctx_free(ctx);
    jpki_ctx_free(other);
    return done_testing();
}
