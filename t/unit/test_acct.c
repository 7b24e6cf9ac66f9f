/* test_acct.c - the layouts of the account records (common/acct.c): the
 * acct: list (16-byte cert_ids, at most 12), mapi: values, the final
 * status of a cached revocation answer. */
#include "jpki.h"
#include "acct.h"
#include "tap.h"

#include <stdint.h>

static void id_of(uint8_t id[16], int k)
{
    memset(id, 0, 16);
    id[0] = (uint8_t)k;
    id[15] = (uint8_t)(0xa0 + k);
}

static void test_list(void)
{
    jpki_acct_list l;
    uint8_t id[16], raw[13 * 16];
    int k;

    ok(jpki_acct_list_read(&l, NULL, 0) && l.n == 0, "absent key: an empty list");
    for (k = 0; k < 13; k++) {
        id_of(raw + 16 * k, k);
    }
    ok(jpki_acct_list_read(&l, raw, 3 * 16) && l.n == 3, "three cert_ids");
    ok(!jpki_acct_list_read(&l, raw, 3 * 16 + 1), "a length not a multiple of 16: not a list");
    ok(!jpki_acct_list_read(&l, raw, 13 * 16), "13 cert_ids: not a list");
    ok(jpki_acct_list_read(&l, raw, 12 * 16) && l.n == 12, "12 cert_ids: a list");
    id_of(id, 12);
    ok(!jpki_acct_list_has(&l, id), "the 13th is not in it");
    ok(jpki_acct_list_add(&l, id) == JPKI_ERR_ACCOUNT_FULL && l.n == 12,
       "adding a 13th: account full, the list unchanged");
    id_of(id, 5);
    ok(jpki_acct_list_add(&l, id) == JPKI_OK && l.n == 12,
       "adding one it holds to a full list: fine, nothing added");
    ok(jpki_acct_list_del(&l, id) && l.n == 11 && !jpki_acct_list_has(&l, id),
       "one taken out");
    id_of(id, 6);
    ok(memcmp(l.id[5], id, 16) == 0, "... the next one moves up, the order kept");
    id_of(id, 5);
    ok(!jpki_acct_list_del(&l, id) && l.n == 11, "taking it out again: not there");
    id_of(id, 12);
    ok(jpki_acct_list_add(&l, id) == JPKI_OK && l.n == 12
       && memcmp(l.id[11], id, 16) == 0, "the 13th added at the end once there is room");
    is_int(jpki_acct_list_len(&l), 192, "its bytes: 16 each");
    /* the bytes are the store's value: read back the same */
    {
        jpki_acct_list back;
        ok(jpki_acct_list_read(&back, l.id[0], jpki_acct_list_len(&l)) && back.n == 12
           && memcmp(back.id, l.id, 192) == 0, "the value read back");
    }
    for (k = 0; k < 12; k++)
        jpki_acct_list_del(&l, l.id[0]);
    is_int(l.n, 0, "all taken out: empty (the key is deleted)");
}

static void test_mapi(void)
{
    char v[JPKI_MAPI_MAX], tag[17];
    int64_t na, ba;
    const char *t = "0123456789abcdef";

    is_int(jpki_mapi_format(v, t, 1795300000, 1700000000), 38, "a mapi value");
    is_str(v, "0123456789abcdef|1795300000|1700000000", "... as the admin API writes it");
    ok(jpki_mapi_parse((uint8_t *)v, strlen(v), tag, &na, &ba)
       && strcmp(tag, t) == 0 && na == 1795300000 && ba == 1700000000, "... read back");
    is_int(jpki_mapi_format(v, NULL, 0, 5), 4, "no tag, not_after unknown");
    is_str(v, "|0|5", "... \"|0|5\" (the admin API's bind by cert_id)");
    ok(jpki_mapi_parse((uint8_t *)v, 4, tag, &na, &ba) && tag[0] == '\0' && na == 0
       && ba == 5, "... read back");
    is_int(jpki_mapi_format(v, "0123456789ABCDEF", 0, 0), 0, "an upper-case tag: refused");
    is_int(jpki_mapi_format(v, "0123", 0, 0), 0, "a short tag: refused");
    is_int(jpki_mapi_format(v, t, -1, 0), 0, "a negative time: refused");
    ok(!jpki_mapi_parse((uint8_t *)"x|1|2", 5, tag, &na, &ba), "a tag that is no tag: malformed");
    ok(!jpki_mapi_parse((uint8_t *)"|1", 2, tag, &na, &ba), "two fields: malformed");
    ok(!jpki_mapi_parse((uint8_t *)"|1|2|3", 6, tag, &na, &ba), "four fields: malformed");
    ok(!jpki_mapi_parse((uint8_t *)"||2", 3, tag, &na, &ba), "an empty time: malformed");
    ok(!jpki_mapi_parse((uint8_t *)"|-1|2", 5, tag, &na, &ba), "a sign: malformed");
    ok(!jpki_mapi_parse((uint8_t *)"|1|99999999999999999999", 23, tag, &na, &ba)
       && na == 0, "20 digits: malformed, the times left 0");
    ok(!jpki_mapi_parse(NULL, 0, tag, &na, &ba), "absent: malformed");
}

static void test_rev(void)
{
    char big[300];

#define FINAL(s) jpki_rev_value_final((const uint8_t *)(s), strlen(s))
    ok(FINAL("revoked|1|1790000000|1795300000|ocsp"), "revoked: final");
    ok(FINAL("revoked|0|1790000000|1795300000|crl"), "revoked, unspecified: final");
    ok(!FINAL("hold|6|1794000000|1795300000|crl"), "certificateHold: not final");
    ok(!FINAL("good|-1|0|1795300000|ocsp"), "good: not revoked");
    ok(!FINAL("unknown|-1|0|1795300000|ocsp"), "unknown: not revoked");
    ok(!FINAL("revoked"), "\"revoked\" alone: does not parse, not revoked");
    ok(!FINAL("revokedx|1"), "another word: not revoked");
    ok(!jpki_rev_value_final(NULL, 0), "absent: not revoked");
    memset(big, 'x', sizeof(big));
    memcpy(big, "revoked|", 8);
    ok(!jpki_rev_value_final((uint8_t *)big, sizeof(big)),
       "over a store value (192 bytes): not read, as the gate does");
#undef FINAL
}

int main(void)
{
    test_list();
    test_mapi();
    test_rev();
    return done_testing();
}
