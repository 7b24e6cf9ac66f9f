/* fuzz_login.c - libFuzzer target: a LOGIN transaction on an arbitrary body
 * (the first byte chooses JSON or a form), as a client would send it: body
 * parsing, challenge, base64, certificate parsing and checks, signature.
 * Store steps are answered with a timeout (the transaction must then end
 * fail-closed); the verdict must be an error or, never here, a login. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t body[JPKI_BODY_MAX + JPKI_CHALLENGE_LEN];
    jpki_txn_request rq;
    const jpki_verdict *v;
    jpki_txn *t = NULL;
    jpki_step s;
    int guard = 0;
    size_t blen;
    const uint8_t *mark;

    fz_init();
    if (size < 1 || size > JPKI_BODY_MAX + 1)
        return 0;
    /* "@CH@" stands for a fresh challenge of the site, so that inputs get
     * past the challenge to the certificate and signature checks */
    blen = size - 1;
    memcpy(body, data + 1, blen);
    mark = memmem(body, blen, "@CH@", 4);
    if (mark != NULL) {
        char ch[JPKI_CHALLENGE_LEN + 1];
        size_t at = (size_t)(mark - body);
        jpki_challenge_issue(fz_ctx, fz_now, "gate.example", 12, ch, NULL);
        memmove(body + at + JPKI_CHALLENGE_LEN, body + at + 4, blen - at - 4);
        memcpy(body + at, ch, JPKI_CHALLENGE_LEN);
        blen += JPKI_CHALLENGE_LEN - 4;
    }
    memset(&rq, 0, sizeof(rq));
    rq.op = JPKI_OP_LOGIN;
    rq.now = fz_now;
    rq.is_post = 1;
    rq.wants_json = data[0] & 1;
    rq.content_type = data[0] & 2 ? "application/x-www-form-urlencoded"
                                  : "application/json";
    rq.content_type_len = strlen(rq.content_type);
    rq.host = "Gate.Example:443";       /* the challenges' host */
    rq.host_len = 16;
    rq.body = body;
    rq.body_len = blen;
    rq.peer = "127.0.0.1";
    if (jpki_txn_new(fz_ctx, &rq, &t) != JPKI_OK)
        abort();
    while ((s = jpki_txn_step(t)) != JPKI_STEP_DONE && guard++ < 8) {
        if (s == JPKI_STEP_STORE)
            jpki_txn_feed_store(t, NULL, 0);
        else if (s == JPKI_STEP_OCSP)
            jpki_txn_feed_ocsp(t, 0, NULL, 0);
        else
            jpki_txn_feed_crl(t, JPKI_ERR_REVOCATION_UNAVAILABLE, NULL);
    }
    v = jpki_txn_verdict(t);
    /* nothing stored, nothing asked: no login can pass */
    if (s != JPKI_STEP_DONE || v == NULL || v->http_status == 200
        || v->set_cookie != NULL)
        abort();
    jpki_txn_free(t);
    return 0;
}
