/* test_gate.c - the gate's shared HTTP rules (common/gate.c). */
#include "gate.h"
#include "tap.h"

static void test_headers(void)
{
    ok(jpki_header_name_eq("X-JPKI-Account", "x_jpki_account", 14),
       "'_' reads as '-', case does not count");
    ok(!jpki_header_name_eq("X-JPKI-Accoun", "x-jpki-account", 14),
       "a shorter name (NUL inside n) differs");
    ok(!jpki_header_name_eq("X-JPKI-Bccount", "x-jpki-account", 14),
       "one byte differs");
    ok(jpki_is_gate_header("X-Jpki-Anything", 15, NULL, 0),
       "any X-JPKI-* is the gate's");
    ok(jpki_is_gate_header("x_jpki_cert_id", 14, "X-Remote-User", 13),
       "X_JPKI_ in underscores too");
    ok(jpki_is_gate_header("x_remote_user", 13, "X-Remote-User", 13),
       "the account header, in any spelling");
    ok(!jpki_is_gate_header("X-Remote-Users", 14, "X-Remote-User", 13),
       "a longer name is not the account header");
    ok(!jpki_is_gate_header("X-Remote", 8, "X-Remote-User", 13),
       "a prefix of it is not either");
    ok(!jpki_is_gate_header("X-JPKI", 6, NULL, 0), "X-JPKI alone is not");
    ok(!jpki_is_gate_header("Accept", 6, NULL, 0), "other headers are not");
}

static void test_accept(void)
{
    ok(jpki_accept_wants_json(NULL, 0), "no Accept: JSON");
    ok(jpki_accept_wants_json("*/*", 3), "*/*: JSON");
    ok(!jpki_accept_wants_json("text/html,application/xhtml+xml", 32),
       "a browser: a page");
    ok(jpki_accept_wants_json("TEXT/HTML, Application/JSON", 27),
       "JSON named, in any case: JSON");
    ok(jpki_accept_wants_json("text/htm", 8), "text/htm is not text/html");
    ok(!jpki_accept_wants_json("text/html", 9), "the length bounds the search");
    ok(jpki_accept_wants_json("text/htmlxx", 8),
       "the search stops at len (text/htm)");
}

static void test_endpoint(void)
{
    jpki_op op = JPKI_OP_CHECK;

    ok(jpki_endpoint_op("/jpki/challenge", 15, 1, &op) && op == JPKI_OP_CHALLENGE,
       "/jpki/challenge");
    ok(jpki_endpoint_op("/a/b/login//", 12, 1, &op) && op == JPKI_OP_LOGIN,
       "trailing slashes ignored");
    ok(jpki_endpoint_op("logout", 6, 1, &op) && op == JPKI_OP_LOGOUT,
       "a path without '/'");
    ok(jpki_endpoint_op("/x/status", 9, 1, &op) && op == JPKI_OP_STATUS,
       "/x/status");
    op = JPKI_OP_CHECK;
    ok(!jpki_endpoint_op("/jpki/login2", 12, 1, &op) && op == JPKI_OP_CHECK,
       "another name: none");
    ok(!jpki_endpoint_op("/jpki/logi", 10, 1, &op), "a prefix of a name: none");
    ok(!jpki_endpoint_op("/jpki/login", 10, 1, &op),
       "the length bounds the path (/jpki/logi)");
    ok(!jpki_endpoint_op("/", 1, 1, &op) && !jpki_endpoint_op("", 0, 1, &op),
       "no segment: none");
    ok(jpki_endpoint_op("/jpki/login", 11, 0, &op) && op == JPKI_OP_PAGE,
       "login without POST: the login page");
    ok(jpki_endpoint_op("/jpki/page.css", 14, 0, &op) && op == JPKI_OP_ASSET
       && jpki_endpoint_op("/jpki/page.js", 13, 0, &op)
       && op == JPKI_OP_ASSET, "page.css, page.js: the assets");
    ok(jpki_endpoint_op("/jpki/device", 12, 1, &op)
       && op == JPKI_OP_DEVICE_START, "device: a flow started");
    ok(jpki_endpoint_op("/jpki/sign", 10, 1, &op) && op == JPKI_OP_DEVICE_SIGN,
       "sign: the signer's login");
    ok(jpki_endpoint_op("/jpki/poll", 10, 0, &op) && op == JPKI_OP_DEVICE_POLL,
       "poll: the page's wait");
    ok(!jpki_endpoint_op("/jpki/page.cs", 13, 0, &op), "page.cs: none");
}

static void test_health(void)
{
    char buf[2048], out[4096];
    jpki_health h;
    jpki_crl_info info = {0};
    jpki_store_cmd cmd;
    jpki_store_result res = {0};
    int ok_ = 0;
    size_t n;

    jpki_health_init(&h, buf, sizeof(buf), 1000000, JPKI_CRL_GRACE_VALIDITY,
                     300);
    info.this_update = 1000000 - 3600;
    info.next_update = 1000000 + 3600;
    info.crl_number = 7;
    info.entries = 3;
    jpki_health_add_crl(&h, "jpki\"x", NULL, &info, JPKI_OK, 999990);
    n = jpki_health_json(&h, 1, JPKI_OK, out, sizeof(out), &ok_);
    ok(n > 0 && ok_, "one fresh CRL and the store: ok");
    ok(strstr(out, "\"status\":\"ok\"") != NULL, "status ok");
    ok(strstr(out, "{\"issuer\":\"jpkix\",\"loaded\":true,\"this_update\":"
                   "996400,\"next_update\":1003600,\"age\":3600,\"entries\":3,"
                   "\"crl_number\":7,\"fresh\":true,\"stale_at\":1255600,"
                   "\"loaded_at\":999990,\"last_load\":\"ok\"}") != NULL,
       "the CRL's entry (a '\"' in a label left out): %s", out);
    ok(strstr(out, "\"store\":{\"type\":\"shm\",\"ok\":true}") != NULL,
       "the store's entry");

    jpki_health_add_crl(&h, "ca2", "ca2-g2.crl", NULL, JPKI_OK, 0);
    n = jpki_health_json(&h, 0, JPKI_OK, out, sizeof(out), &ok_);
    ok(n > 0 && !ok_, "a CRL not loaded: degraded");
    ok(strstr(out, ",{\"issuer\":\"ca2\",\"file\":\"ca2-g2.crl\",\"loaded\":"
                   "false,\"error\":\"revocation_unavailable\"}") != NULL,
       "its entry names the file: %s", out);

    jpki_health_init(&h, buf, sizeof(buf), 1000000 + 73 * 3600,
                     JPKI_CRL_GRACE_VALIDITY, 300);
    jpki_health_add_crl(&h, "ca1", NULL, &info, JPKI_OK, 999990);
    jpki_health_json(&h, 1, JPKI_OK, out, sizeof(out), &ok_);
    ok(!ok_ && strstr(out, "\"fresh\":false") != NULL,
       "a CRL past its validity: stale, degraded");

    jpki_health_init(&h, buf, sizeof(buf), 1000000, 0, 300);
    jpki_health_add_crl(&h, "ca1", NULL, &info, JPKI_ERR_CRL_SIGNATURE, 1);
    jpki_health_json(&h, 1, JPKI_OK, out, sizeof(out), &ok_);
    ok(!ok_, "a good CRL whose last reload failed: degraded");

    jpki_health_init(&h, buf, sizeof(buf), 1000000, 0, 300);
    jpki_health_json(&h, 0, JPKI_ERR_STORE_FULL, out, sizeof(out), &ok_);
    ok(!ok_ && strstr(out, "\"store\":{\"type\":\"redis\",\"ok\":false,"
                           "\"error\":\"store_full\"}") != NULL,
       "a full store: degraded, store_full");
    jpki_health_json(&h, 0, JPKI_ERR_TIMEOUT, out, sizeof(out), &ok_);
    ok(!ok_ && strstr(out, "\"error\":\"store_error\"") != NULL,
       "a store that does not answer: store_error");
    ok(jpki_health_json(&h, 0, JPKI_OK, out, 20, &ok_) == 0,
       "too small a buffer: 0, no overrun");

    jpki_health_probe(&cmd, 42);
    ok(cmd.op == JPKI_STORE_SET && cmd.ttl_ms > 0
       && strcmp(cmd.key, JPKI_STORE_PREFIX "health") == 0,
       "the probe is a SET with a TTL");
    res.type = JPKI_STORE_R_FULL;
    is_int(jpki_health_probe_result(&res, 1), JPKI_ERR_STORE_FULL, "-OOM: full");
    res.type = JPKI_STORE_R_ERROR;
    is_int(jpki_health_probe_result(&res, 1), JPKI_ERR_STORE, "error");
    is_int(jpki_health_probe_result(NULL, 0), JPKI_ERR_STORE, "no answer");
    res.type = JPKI_STORE_R_NIL;
    is_int(jpki_health_probe_result(&res, 1), JPKI_ERR_STORE,
           "an answer a SET never gets");
    res.type = JPKI_STORE_R_INT;
    is_int(jpki_health_probe_result(&res, 1), JPKI_OK, "+OK");
}

static void test_prelude(void)
{
    char out[256];
    unsigned count = 9;
    size_t n;

    n = jpki_redis_prelude(NULL, NULL, 0, out, sizeof(out), &count);
    ok(n == 0 && count == 0, "nothing to send");
    n = jpki_redis_prelude("gate", "pw", 3, out, sizeof(out), &count);
    is_str(out, "*3\r\n$4\r\nAUTH\r\n$4\r\ngate\r\n$2\r\npw\r\n"
                "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n", "AUTH user pw, SELECT");
    ok(n == strlen(out) && count == 2, "two replies due");
    n = jpki_redis_prelude(NULL, "pw", 0, out, sizeof(out), &count);
    is_str(out, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", "AUTH without a user");
    ok(count == 1, "one reply due");
    ok(jpki_redis_prelude("gate", "pw", 3, out, 20, &count) == (size_t)-1,
       "too small a buffer is refused");
}

int main(void)
{
    test_headers();
    test_accept();
    test_endpoint();
    test_health();
    test_prelude();
    return done_testing();
}
