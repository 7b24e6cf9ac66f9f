/* test_txn_crlstore.c - the transaction's check against a CRL loaded into
 * the store by `jpkictl crl sync` (docs/store-schema.md "Reading"), with a
 * simulated Redis: the embedded store for strings, a table for the CRL
 * hashes.  A list whose id_check is not the gate's (loaded with another
 * site secret: its entries can never match) must read as unavailable, not
 * as "not listed".  A certificate is looked up in the list of the CA key
 * that issued it (crlptr.h): none of that key, or only the one list per
 * issuer of an older jpkictl, is unavailable too. */
#include "internal.h"
#include "crlptr.h"
#include "tap.h"
#include "pki.h"

#include <stdint.h>
#include <unistd.h>
#include <openssl/pem.h>

static jpki_ctx *ctx;
static void *shm_mem, *shm_h;
static jpki_shm *shm;
static time_t NOW;
static char logbuf[16384];

/* ---- the simulated hashes (HGET) ----------------------------------- */

typedef struct {
    char key[JPKI_STORE_KEY_MAX + 1];
    uint8_t field[64];
    size_t flen;
    uint8_t val[JPKI_STORE_VAL_MAX];
    size_t vlen;
} hent;

static hent hash[16];
static size_t n_hash;
static int hget_error;          /* answer every HGET with an error */
static int n_meta_gets, n_batches_with_both;

static void hash_put(const char *key, const void *field, size_t flen,
                     const void *val, size_t vlen)
{
    hent *h = &hash[n_hash++];
    snprintf(h->key, sizeof(h->key), "%s", key);
    memcpy(h->field, field, flen);
    h->flen = flen;
    memcpy(h->val, val, vlen);
    h->vlen = vlen;
}

static void hget(const jpki_store_cmd *c, jpki_store_result *r)
{
    size_t i;

    memset(r, 0, sizeof(*r));
    r->type = JPKI_STORE_R_NIL;
    if (hget_error) {
        r->type = JPKI_STORE_R_ERROR;
        return;
    }
    for (i = 0; i < n_hash; i++)
        if (strlen(hash[i].key) == c->keylen
            && memcmp(hash[i].key, c->key, c->keylen) == 0
            && hash[i].flen == c->vallen
            && memcmp(hash[i].field, c->val, c->vallen) == 0) {
            r->type = JPKI_STORE_R_VALUE;
            memcpy(r->val, hash[i].val, hash[i].vlen);
            r->vallen = hash[i].vlen;
        }
}

static void exec_store(jpki_txn *t)
{
    size_t n, i;
    const jpki_store_cmd *c = jpki_txn_store_cmds(t, &n);
    jpki_store_result r[JPKI_STORE_BATCH_MAX];
    int meta = 0, info = 0;

    for (i = 0; i < n; i++) {
        if (c[i].op == JPKI_STORE_HGET) {
            hget(&c[i], &r[i]);
            info |= strstr(c[i].key, ":crlinfo:") != NULL;
        } else {
            jpki_shm_exec(shm, &c[i], (int64_t)NOW * 1000, &r[i]);
            meta |= c[i].op == JPKI_STORE_GET
                    && strstr(c[i].key, ":crlmeta:") != NULL;
        }
    }
    n_meta_gets += meta;
    n_batches_with_both += meta && info;
    jpki_txn_feed_store(t, r, n);
}

/* ---- the gate ------------------------------------------------------ */

static void on_log(void *ud, jpki_log_level lvl, const char *msg)
{
    size_t l = strlen(logbuf);
    snprintf(logbuf + l, sizeof(logbuf) - l, "%s\n", msg);
}

static jpki_ctx *make_ctx(uint8_t secret_byte, int fail_open,
                          unsigned pointer_ttl)
{
    uint8_t secret[32];
    char err[256];
    jpki_ctx *c = jpki_ctx_new();
    jpki_issuer *is;
    jpki_policy *p;

    memset(secret, secret_byte, sizeof(secret));
    jpki_ctx_set_secret(c, secret, sizeof(secret));
    jpki_ctx_set_log(c, on_log, NULL);
    is = jpki_ctx_add_issuer(c, "card");
    jpki_issuer_add_certs_file(is, tap_path("ca1.pem"), err, sizeof(err));
    jpki_issuer_add_certs_file(is, tap_path("ca2.pem"), err, sizeof(err));
    p = jpki_ctx_policy(c);
    p->fail_open = (unsigned)fail_open;
    p->rev_policy.src[0] = JPKI_REV_SRC_CRL;
    p->rev_policy.n = 1;
    p->crl_pointer_ttl = pointer_ttl;
    if (jpki_ctx_finish(c, err, sizeof(err)) != JPKI_OK) {
        printf("# finish: %s\n", err);
        exit(1);
    }
    return c;
}

/* cert_id of a PKI certificate under context c */
static void cert_id(jpki_ctx *c, const char *cert, char out[33])
{
    jpki_cert *x = NULL;
    uint8_t *der;
    size_t len;

    out[0] = '\0';
    jpki_load_file(tap_path(cert), 1 << 16, &der, &len);
    if (jpki_cert_check(c, der, len, NOW, &x, NULL, 0) == JPKI_OK)
        snprintf(out, 33, "%s", jpki_cert_id_hex(x));
    jpki_cert_free(x);
    free(der);
}

static void map(const char *cert, const char *account)
{
    jpki_store_cmd cmd = {0};
    jpki_store_result r;
    char id[33];

    cert_id(ctx, cert, id);
    cmd.op = JPKI_STORE_SET;
    cmd.keylen = (size_t)snprintf(cmd.key, sizeof(cmd.key), "jpki:v1:map:%s",
                                  id);
    cmd.vallen = strlen(account);
    memcpy(cmd.val, account, cmd.vallen);
    jpki_shm_exec(shm, &cmd, (int64_t)NOW * 1000, &r);
}

/* The list name of the CA key in PKI file ca ("ca1.pem", "ca2.pem"), as
 * `crl sync` names it for a CRL signed by that key; with old 1, the one
 * list per issuer of jpkictl before lists per key (the issuer tag); with
 * old 2, the "<issuer tag>.<key tag>" of jpkictl 06b82fb. */
#define LIST_NAME_MAX 40
static void list_of(const char *ca, int old, char out[LIST_NAME_MAX])
{
    const char *tag = jpki_issuer_tag(jpki_ctx_issuer(ctx, 0));
    FILE *f = fopen(tap_path(ca), "r");
    X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    uint8_t kh[20];
    char key[JPKI_CRL_TAG_LEN + 1];

    out[0] = '\0';
    if (old == 1)
        snprintf(out, LIST_NAME_MAX, "%s", tag);
    else if (x != NULL && jpki_key_hash_sha1(x, kh) && old == 2
             && jpki_crl_key_tag(kh, key) == 0)
        snprintf(out, LIST_NAME_MAX, "%s.%s", tag, key);
    else if (x != NULL && jpki_key_hash_sha1(x, kh) && old == 0)
        jpki_crl_list_name(out, LIST_NAME_MAX, tag, kh, 0);
    X509_free(x);
    if (f != NULL)
        fclose(f);
}

/* The layout load_list writes: 2 (this jpkictl's: "b3", 3 bits of bucket,
 * the first 8 octets of cert_id), 1 (an older jpkictl's: k = 1, 16
 * octets), or -1: layout 2's pointer over layout 1's entries (a reader
 * that took the shape for anything else would find them). */
static int layout = 1;

/* What `crl sync` leaves in list lid: the pointer (generation 1, the
 * shape of `layout`),
 * the entry of cert (revoked, keyCompromise) keyed by its cert_id under
 * the secret of `loader`, and crlinfo's id_check (NULL: none).  The
 * hashes of other lists stay unless fresh (then the table is emptied). */
static void load_list(jpki_ctx *loader, const char *id_check, const char *lid,
                      const char *cert, int fresh)
{
    jpki_store_cmd cmd = {0};
    jpki_store_result r;
    char key[JPKI_STORE_KEY_MAX + 1], id[33];
    uint8_t raw[16], val[5] = {1, 0, 0, 0, 0};
    uint32_t at = (uint32_t)(NOW - 3600);
    size_t n;

    if (fresh)
        n_hash = 0;
    cmd.op = JPKI_STORE_SET;
    cmd.keylen = (size_t)snprintf(cmd.key, sizeof(cmd.key),
                                  "jpki:v1:crlmeta:%s", lid);
    cmd.vallen = (size_t)snprintf((char *)cmd.val, sizeof(cmd.val),
                                  "1|%s|%lld|%lld|2|1|%lld",
                                  layout == 1 ? "1" : "b3",
                                  (long long)NOW - 60, (long long)NOW + 86400,
                                  (long long)NOW);
    jpki_shm_exec(shm, &cmd, (int64_t)NOW * 1000, &r);
    cert_id(loader, cert, id);
    jpki_hex_decode(id, 32, raw, sizeof(raw), &n);
    val[1] = (uint8_t)(at >> 24);
    val[2] = (uint8_t)(at >> 16);
    val[3] = (uint8_t)(at >> 8);
    val[4] = (uint8_t)at;
    if (layout == 2) {
        snprintf(key, sizeof(key), "jpki:v1:crl:%s:1:%x", lid, raw[0] >> 5);
        hash_put(key, raw, 8, val, 5);
    } else {
        snprintf(key, sizeof(key), "jpki:v1:crl:%s:1:%c", lid, id[0]);
        hash_put(key, raw, 16, val, 5);
    }
    if (id_check != NULL) {
        snprintf(key, sizeof(key), "jpki:v1:crlinfo:%s", lid);
        hash_put(key, "id_check", 8, id_check, strlen(id_check));
    }
}

static void unload_list(const char *lid)
{
    jpki_store_cmd cmd = {0};
    jpki_store_result r;

    cmd.op = JPKI_STORE_DEL;
    cmd.keylen = (size_t)snprintf(cmd.key, sizeof(cmd.key),
                                  "jpki:v1:crlmeta:%s", lid);
    jpki_shm_exec(shm, &cmd, (int64_t)NOW * 1000, &r);
}

/* ca2's CRL (it revokes rev-keyCompromise, a ca2 certificate), alone. */
static void load_crl(jpki_ctx *loader, const char *id_check)
{
    char lid[LIST_NAME_MAX];

    list_of("ca1.pem", 0, lid);
    unload_list(lid);
    list_of("ca2.pem", 0, lid);
    load_list(loader, id_check, lid, "rev-keyCompromise.pem", 1);
}

static const jpki_verdict *login(const char *who, jpki_txn **tp)
{
    static char body[16384];
    char ch[JPKI_CHALLENGE_LEN + 1], cert[64], key[64];
    jpki_txn_request rq = {0};
    jpki_txn *t;
    jpki_step s;
    int guard = 0;

    snprintf(cert, sizeof(cert), "%s.der", who);
    snprintf(key, sizeof(key), "%s.key", who);
    jpki_challenge_issue(ctx, NOW, "gate.example", 12, ch, NULL);
    snprintf(body, sizeof(body), "{\"challenge\":\"%s\",\"certificate\":"
             "\"%s\",\"signature\":\"%s\"}", ch, tap_file_b64(cert),
             tap_sign_b64(ch, key, "sha256"));
    tap_json_login(&rq, NOW, body);
    rq.host = "gate.example:443";
    rq.host_len = 16;
    rq.crl_in_store = 1;
    *tp = NULL;
    if (jpki_txn_new(ctx, &rq, &t) != JPKI_OK)
        return NULL;
    while ((s = jpki_txn_step(t)) != JPKI_STEP_DONE && guard++ < 10) {
        if (s == JPKI_STEP_STORE)
            exec_store(t);
        else if (s == JPKI_STEP_CRL)
            jpki_txn_feed_crl(t, JPKI_ERR_REVOCATION_UNAVAILABLE, NULL);
        else
            jpki_txn_feed_ocsp(t, 0, NULL, 0);
    }
    *tp = t;
    return jpki_txn_verdict(t);
}

#define EXPECT(who, st_, rs_, name) do {                                     \
        jpki_txn *t_;                                                        \
        const jpki_verdict *v_ = login(who, &t_);                            \
        is_int(v_ ? v_->http_status : -1, st_, "%s: status", name);          \
        is_str(v_ ? v_->reason : NULL, rs_, "%s: reason", name);             \
        jpki_txn_free(t_);                                                   \
    } while (0)

static void new_gate(int fail_open, unsigned pointer_ttl)
{
    jpki_ctx_free(ctx);
    ctx = make_ctx(7, fail_open, pointer_ttl);
    map("user1.pem", "alice");
    map("rev-keyCompromise.pem", "x");
    map("user-old.pem", "old");
    map("user-old-revoked.pem", "old-revoked");
}

/* The soft-pass record of cert (today's), or "". */
static const char *soft_record(const char *cert)
{
    static jpki_store_result r;
    jpki_store_cmd cmd = {0};
    char id[33];

    cert_id(ctx, cert, id);
    cmd.op = JPKI_STORE_GET;
    cmd.keylen = (size_t)snprintf(cmd.key, sizeof(cmd.key),
                                  "jpki:v1:soft:%s:%lld", id,
                                  (long long)(NOW - NOW % 86400));
    memset(&r, 0, sizeof(r));
    jpki_shm_exec(shm, &cmd, (int64_t)NOW * 1000, &r);
    r.val[r.type == JPKI_STORE_R_VALUE ? r.vallen : 0] = '\0';
    return (const char *)r.val;
}

/* Lists per CA key: ca1 and ca2 configured, a certificate looked up in the
 * list of the key that issued it (the CRL zone's rule, crlzone.h). */
static void test_lists_per_key(const char *idc_gate)
{
    char l1[LIST_NAME_MAX], l2[LIST_NAME_MAX], old[LIST_NAME_MAX];
    char old2[LIST_NAME_MAX], want[64];
    const jpki_verdict *v;
    jpki_txn *t;

    list_of("ca1.pem", 0, l1);
    list_of("ca2.pem", 0, l2);
    list_of("ca1.pem", 1, old);
    list_of("ca2.pem", 2, old2);
    ok(strlen(l1) == 16 && strlen(l2) == 16 && strcmp(l1, l2) != 0
       && strcmp(l1, old) != 0 && strcmp(l2, old) != 0,
       "two lists: a list tag each, neither the issuer tag");
    ok(strlen(old2) == 33, "the 06b82fb name: <issuer tag>.<key tag>");
    {
        const struct jpki_issuer *is = jpki_ctx_issuer(ctx, 0);
        uint8_t kh[20];
        char a[LIST_NAME_MAX], b[LIST_NAME_MAX];
        size_t k, found = 0;

        for (k = 0; k < is->n_lists; k++)
            found += !strcmp(is->lists[k].list, l1)
                     + !strcmp(is->lists[k].list, l2);
        ok(is->n_lists == 2 && found == 2,
           "each CA key's list name made once, at finish");
        memset(kh, 0x5a, sizeof(kh));
        ok(jpki_issuer_crl_list(is, kh, a, sizeof(a)) == 0
           && jpki_crl_list_name(b, sizeof(b), is->tag, kh, 0) > 0
           && !strcmp(a, b), "a key it did not list: made now, the same");
        ok(jpki_issuer_crl_list(is, is->lists[0].kh, a, 4) == -1,
           "no room: -1");
    }

    /* only ca2's CRL synced: a ca1 certificate has no CRL of its key, also
     * when ca2's list answers "not listed" for its cert_id */
    new_gate(0, 0);
    unload_list(l1);
    load_list(ctx, idc_gate, l2, "rev-keyCompromise.pem", 1);
    logbuf[0] = '\0';
    EXPECT("user-old-revoked", 503, "revocation_unavailable",
           "ca2's list only: a ca1 certificate revoked on ca1's CRL fails "
           "closed (before: 200)");
    snprintf(want, sizeof(want), "(list %s)", l1);
    ok(strstr(logbuf, "for the CA key that issued the certificate") != NULL
       && strstr(logbuf, want) != NULL && strstr(logbuf, "older jpkictl"),
       "... the log names the key's list and the upgrade");
    EXPECT("user-old", 503, "revocation_unavailable",
           "... a good ca1 certificate too");
    EXPECT("user1", 200, "ok", "... a ca2 certificate is answered by ca2's");
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "... and refused when ca2's lists it");

    /* ca1's CRL synced next to it */
    load_list(ctx, idc_gate, l1, "user-old-revoked.pem", 0);
    EXPECT("user-old-revoked", 403, "cert_revoked",
           "ca1's list synced: revoked by it");
    EXPECT("user-old", 200, "ok", "... a good ca1 certificate passes");
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "... ca2's list still answers for ca2");

    /* a ca1 entry in ca2's list does not answer for ca1 */
    load_list(ctx, idc_gate, l2, "user-old-revoked.pem", 1);
    load_list(ctx, idc_gate, l1, "rev-keyCompromise.pem", 0);
    EXPECT("user-old-revoked", 200, "ok",
           "an entry under another key's list is not read");

    /* the pointer cache holds each key's pointer apart */
    new_gate(0, 30);
    unload_list(l1);
    load_list(ctx, idc_gate, l2, "rev-keyCompromise.pem", 1);
    EXPECT("user1", 200, "ok", "cache: ca2's pointer cached");
    n_meta_gets = 0;
    EXPECT("user-old", 503, "revocation_unavailable",
           "cache: ca2's cached pointer does not answer for ca1");
    is_int(n_meta_gets, 1, "... ca1's pointer is read from the store");
    EXPECT("user1", 200, "ok", "cache: ca2 again");
    is_int(n_meta_gets, 1, "... from the cache");
    load_list(ctx, idc_gate, l1, "user-old-revoked.pem", 0);
    EXPECT("user-old-revoked", 403, "cert_revoked",
           "cache: ca1's list synced: a missing pointer is not cached");

    /* a store of jpkictl before lists per key: one pointer per issuer,
     * entries of every key: never read, fail closed until synced again */
    new_gate(0, 0);
    unload_list(l1);
    unload_list(l2);
    load_list(ctx, idc_gate, old, "user-old-revoked.pem", 1);
    EXPECT("user-old-revoked", 503, "revocation_unavailable",
           "old layout: not read (fails closed, never good)");
    EXPECT("user1", 503, "revocation_unavailable", "old layout: ca2 too");
    unload_list(old);
    /* the lists per key of jpkictl 06b82fb, named "<issuer tag>.<key
     * tag>": not read either */
    load_list(ctx, idc_gate, old2, "rev-keyCompromise.pem", 1);
    EXPECT("rev-keyCompromise", 503, "revocation_unavailable",
           "the 06b82fb names: not read (fails closed, never revoked or good)");
    EXPECT("user1", 503, "revocation_unavailable", "... nor good");
    unload_list(old2);

    /* fail open: the soft-pass record names the key's list, for
     * `jpkictl recheck` */
    new_gate(1, 0);
    v = login("user-old", &t);
    ok(v && v->http_status == 200 && v->soft_pass, "fail open: a soft pass");
    jpki_txn_free(t);
    snprintf(want, sizeof(want), "\"list\":\"%s\"", l1);
    ok(strstr(soft_record("user-old.pem"), want) != NULL,
       "... its record names the list of the certificate's key");
}

int main(void)
{
    const char *mismatch_msg = "was loaded with another site secret or "
                               "other CA files";
    char idc_gate[33], idc_other[33];
    jpki_ctx *other;
    const jpki_verdict *v;
    jpki_txn *t;

    NOW = time(NULL);
    shm_mem = calloc(1, 1 << 20);
    shm_h = calloc(1, jpki_shm_handle_size());
    jpki_shm_init(shm_mem, 1 << 20, 0);
    shm = jpki_shm_attach(shm_h, shm_mem, 1 << 20, NULL);
    ok(shm != NULL, "embedded store attached");

    new_gate(0, 0);
    other = make_ctx(9, 0, 0);                   /* another site secret */
    jpki_cert_id_from_serial_text(ctx, jpki_ctx_issuer(ctx, 0),
                                  JPKI_CRL_ID_CHECK_SERIAL, idc_gate);
    jpki_cert_id_from_serial_text(other, jpki_ctx_issuer(other, 0),
                                  JPKI_CRL_ID_CHECK_SERIAL, idc_other);
    ok(strcmp(idc_gate, idc_other) != 0, "id_check depends on the secret");
    ok(strcmp(jpki_issuer_tag(jpki_ctx_issuer(ctx, 0)),
              jpki_issuer_tag(jpki_ctx_issuer(other, 0))) == 0,
       "the list key (issuer tag) does not");

    /* loaded with the gate's secret */
    load_crl(ctx, idc_gate);
    n_meta_gets = n_batches_with_both = 0;
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "same secret: revoked certificate refused");
    is_int(n_batches_with_both, 1, "the pointer and id_check in one batch");
    EXPECT("user1", 200, "ok", "same secret: good certificate passes");
    ok(strstr(logbuf, "id_check") == NULL, "no id_check complaint");

    /* loaded with another secret: the list is found, its entries never
     * match, and "not listed" must not read as good */
    load_crl(other, idc_other);
    logbuf[0] = '\0';
    EXPECT("rev-keyCompromise", 503, "revocation_unavailable",
           "other secret: revoked certificate fails closed (not 200)");
    EXPECT("user1", 503, "revocation_unavailable",
           "other secret: the list is unavailable for every certificate");
    ok(strstr(logbuf, mismatch_msg) != NULL
       && strstr(logbuf, "issuer \"card\"") != NULL
       && strstr(logbuf, "jpkictl crl sync") != NULL
       && strstr(logbuf, "--secret-file") != NULL,
       "the log names the issuer, the cause and the remedy");
    ok(strstr(logbuf, idc_other) == NULL && strstr(logbuf, idc_gate) == NULL,
       "the log carries no id_check value");

    /* no id_check at all */
    load_crl(ctx, NULL);
    logbuf[0] = '\0';
    EXPECT("rev-keyCompromise", 503, "revocation_unavailable",
           "no id_check: fails closed");
    ok(strstr(logbuf, "id_check is missing") != NULL, "... the log says so");

    /* id_check of another length (a prefix of the right value) */
    {
        char half[17];
        memcpy(half, idc_gate, 16);
        half[16] = '\0';
        load_crl(ctx, half);
        EXPECT("user1", 503, "revocation_unavailable",
               "a truncated id_check does not match");
    }

    /* HGET of id_check answered with an error (WRONGTYPE, ACL) */
    load_crl(ctx, idc_gate);
    hget_error = 1;
    logbuf[0] = '\0';
    EXPECT("user1", 503, "revocation_unavailable",
           "id_check lookup failed: fails closed");
    ok(strstr(logbuf, "CRL lookup in the store failed") != NULL,
       "... logged as a store failure");
    hget_error = 0;

    /* fail-open: a soft pass, as for any missing revocation data */
    new_gate(1, 0);
    load_crl(other, idc_other);
    v = login("rev-keyCompromise", &t);
    is_int(v ? v->http_status : -1, 200, "fail open: other secret passes");
    ok(v && v->soft_pass, "... as a soft pass");
    jpki_txn_free(t);

    test_lists_per_key(idc_gate);

    /* the layout of this jpkictl: the bucket is the first bits of the
     * cert_id, the field its first 8 octets past them */
    new_gate(0, 0);
    layout = 2;
    load_crl(ctx, idc_gate);
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "layout 2 (b3, 8 octets): revoked certificate refused");
    EXPECT("user1", 200, "ok", "layout 2: good certificate passes");
    layout = -1;
    load_crl(ctx, idc_gate);
    EXPECT("rev-keyCompromise", 200, "ok",
           "layout 2's pointer over 16-octet fields: not found (the reader "
           "follows the pointer's shape)");
    layout = 1;
    load_crl(ctx, idc_gate);
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "layout 1 (an older jpkictl's store) is still read");

    /* the pointer cache: a pointer is kept only once its id_check matched */
    new_gate(0, 30);
    load_crl(other, idc_other);
    n_meta_gets = 0;
    EXPECT("user1", 503, "revocation_unavailable", "cache: other secret");
    EXPECT("user1", 503, "revocation_unavailable", "cache: again");
    is_int(n_meta_gets, 2, "a refused pointer is not cached");
    load_crl(ctx, idc_gate);
    EXPECT("rev-keyCompromise", 403, "cert_revoked",
           "cache: synced again with the gate's secret: applies at once");
    n_meta_gets = 0;
    EXPECT("user1", 200, "ok", "cache: good certificate");
    is_int(n_meta_gets, 0, "a matching pointer is cached");

    jpki_ctx_free(other);
    jpki_ctx_free(ctx);
    free(shm_mem);
    free(shm_h);
    return done_testing();
}
