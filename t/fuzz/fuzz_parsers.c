/* fuzz_parsers.c - libFuzzer target over the parsers that read what others
 * send (the first byte chooses one): certificates (DER/PEM/base64 and the
 * checks), CRLs (the DER walker and index, and crl sync's scan: 1), OCSP
 * responses (for a real certificate of the test PKI), the OCSP
 * responder's HTTP answer, Redis replies and the CRL pointer read from
 * Redis (a pointer that parses is written back byte for byte) and crl
 * sync's state file (4), session cookies and challenges, audit files (a
 * line's frame, the verifier, a cold start's tail: 7), a sentinel's
 * answer and ROLE's (8). */
#include "fuzz_common.h"
#include "audit.h"
#include "sentinel.h"
#include "crlptr.h"
#include "crlstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* crl sync's scan: every other digest known, the others given */
static int fz_known(void *ud, const uint8_t *d)
{
    (void)ud;
    return d[0] & 1;
}

static int fz_entry(void *ud, const jpki_crl_scan_entry *e)
{
    ++*(size_t *)ud;
    return e->digest == NULL;
}

static jpki_cert *fz_user;

static void fz_user_init(void)
{
    size_t len;
    uint8_t *der;

    if (fz_user != NULL)
        return;
    der = fz_file("user1.der", &len);
    if (der == NULL
        || jpki_cert_check(fz_ctx, der, len, fz_now, &fz_user, NULL, 0)
           != JPKI_OK) {
        fprintf(stderr, "fuzz: user1.der does not check\n");
        exit(1);
    }
    free(der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    fz_init();
    fz_user_init();
    if (size < 1 || size > (1 << 20))
        return 0;

    switch (data[0] % 9) {
    case 0: {
        jpki_cert *c = NULL;
        char detail[256];
        if (jpki_cert_check(fz_ctx, in, n, fz_now, &c, detail,
                            sizeof(detail)) == JPKI_OK
            && c == NULL)
            abort();
        jpki_cert_free(c);
        break;
    }
    case 1: {
        jpki_crl_index *ix = NULL;
        jpki_rev_info info;
        char detail[256];
        if (jpki_crl_index_build(fz_ctx, in, n, fz_now, JPKI_CRL_GRACE_VALIDITY,
                                 &ix, detail, sizeof(detail)) == JPKI_OK) {
            (void)jpki_crl_index_lookup(ix, jpki_cert_id_hex(fz_user), fz_now,
                                        0, &info);
        }
        jpki_crl_index_free(ix);
        {
            static const uint8_t key[16] = {1};
            size_t given = 0;
            jpki_crl_scan_fns f = {key, NULL, fz_known, fz_entry, &given,
                                   NULL};

            uint8_t dg[64 * JPKI_CRL_DIGEST_LEN];
            uint32_t lens[64];

            (void)jpki_crl_verify_scan(fz_ctx, in, n, fz_now,
                                       JPKI_CRL_GRACE_VALIDITY, NULL, NULL,
                                       0, &f);
            /* the digests made ahead: the same framing, unchecked */
            if (jpki_crl_digests(key, in, n, dg, lens, 64) > 64)
                abort();
        }
        break;
    }
    case 2: {
        jpki_ocsp_state st;
        jpki_rev_info info;
        memset(&st, 0, sizeof(st));
        (void)jpki_ocsp_check(fz_ctx, fz_user, &st, in, n, fz_now, &info);
        break;
    }
    case 3: {
        int status = 0;
        const uint8_t *body = NULL;
        size_t blen = 0;
        int r = jpki_http_response_parse(in, n, 1, &status, &body, &blen);
        if (r == 1 && (body < in || body + blen > in + n))
            abort();
        (void)jpki_http_response_parse(in, n, 0, &status, &body, &blen);
        break;
    }
    case 4: {
        jpki_resp_reader *rd = jpki_resp_reader_new();
        jpki_store_cmd cmd;
        jpki_store_result res;
        int k = 0;
        memset(&cmd, 0, sizeof(cmd));
        cmd.op = (jpki_store_op)(n > 0 ? in[0] % 10 : 0);
        if (rd != NULL && jpki_resp_reader_feed(rd, (const char *)in, n)
                          == JPKI_OK)
            while (k++ < 64 && jpki_resp_reader_next(rd, &cmd, &res) == 1) {
                uint64_t used, max;
                (void)jpki_store_info_memory(&res, &used, &max);
            }
        jpki_resp_reader_free(rd);
        {
            jpki_crlptr p;
            jpki_crl_shape sh;
            char out[JPKI_CRLPTR_MAX + 1];
            int m;

            if (jpki_crlptr_parse((const char *)in, n, &p) == 0
                && ((m = jpki_crlptr_format(&p, out, sizeof(out))) < 0
                    || (size_t)m != n || memcmp(out, in, n) != 0))
                abort();
            (void)jpki_crl_shape_parse((const char *)in, n < 4 ? n : 4, &sh);
        }
        {
            /* a state file of crl sync (its MAC key: the context's) */
            jpki_crlstate_keys k;
            jpki_crlstate_hdr h;
            const uint8_t *counts, *recs;
            const char *why;

            if (jpki_crlstate_keys_of(fz_ctx, &k) == JPKI_OK
                && jpki_crlstate_open(&k, in, n, &h, &counts, &recs, &why)
                   == 0 && (counts + 4 * (size_t)h.nb != recs
                            || jpki_crlstate_size(h.n, h.nb) != n))
                abort();
        }
        break;
    }
    case 5: {
        jpki_session s;
        (void)jpki_session_open(fz_ctx, (const char *)in, n, fz_now, &s);
        break;
    }
    case 7: {
        static const uint8_t key[32] = {7};
        jpki_audit_verifier *v = jpki_audit_verifier_new(key, NULL, NULL);
        jpki_audit_head head;
        jpki_audit_parsed p;
        const char *l = (const char *)in, *nl;
        size_t rest = n;
        int partial;

        (void)jpki_audit_tail_head((const char *)in, n, 1, key, &head,
                                   &partial);
        (void)jpki_audit_parse((const char *)in, n, key, &p);
        jpki_audit_verify_file(v, "a");
        while (v != NULL && rest > 0) {
            nl = memchr(l, '\n', rest);
            jpki_audit_verify_line(v, l, nl ? (size_t)(nl - l) : rest, !nl);
            if (nl == NULL)
                break;
            rest -= (size_t)(nl - l) + 1;
            l = nl + 1;
        }
        if (v != NULL)
            (void)jpki_audit_verify_end(v, 5, NULL);
        jpki_audit_verifier_free(v);
        break;
    }
    case 8: {
        jpki_sentinel_addr a;
        char why[128], role[80];
        size_t used = 0, k;
        int r = 0;
        /* every prefix as the bytes come, then ROLE's answer */
        for (k = 0; k <= n && k <= 600 && r == 0; k += 1 + k / 16)
            r = jpki_sentinel_answer((const char *)in, k, &a, why,
                                     sizeof(why));
        if (r == 1 && (a.port == 0 || a.port > 65535 || a.host[0] == '\0'))
            abort();
        r = jpki_role_answer((const char *)in, n, &used, role, sizeof(role));
        if (r == 1 && (used == 0 || used > n))
            abort();
        break;
    }
    default: {
        char id[JPKI_CHALLENGE_ID_HEX + 1];
        uint8_t hh[8];
        time_t exp;
        /* the input as a Host value too (canonicalization) */
        (void)jpki_challenge_host_hash((const char *)in, n, hh);
        if (jpki_challenge_check(fz_ctx, (const char *)in, n, fz_now,
                                 (const char *)in, n, id, &exp)
            == JPKI_OK)
            abort();          /* a MAC no one made */
        break;
    }
    }
    return 0;
}
