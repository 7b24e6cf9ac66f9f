/* acct.h - the layouts of the store's account records
 * (docs/store-schema.md), for whoever writes or reads them besides the
 * admin API (jpkictl map import | export | prune):
 *   acct:<account_id>  the account's cert_ids, JPKI_CERT_ID_LEN bytes
 *                      each, at most JPKI_ACCOUNT_CERTS, binary;
 *   mapi:<cert_id>     "<issuer tag>|<not_after>|<bound_at>" (tag: 16 hex
 *                      characters or empty; times: decimal seconds, 0 =
 *                      unknown);
 *   rev:<cert_id>      the cached revocation answer "<status>|..."; only
 *                      its status word is read here. */
#ifndef JPKI_ACCT_H
#define JPKI_ACCT_H
#include "jpki.h"

#define JPKI_ACCT_LIST_MAX (JPKI_ACCOUNT_CERTS * JPKI_CERT_ID_LEN)

/* An account's list (what acct: holds), n cert_ids of 16 bytes. */
typedef struct {
    uint8_t id[JPKI_ACCOUNT_CERTS][JPKI_CERT_ID_LEN];
    size_t n;
} jpki_acct_list;

/* The list of an acct: value (len bytes; val NULL: the key is absent, an
 * empty list).  0 when the value is not a list: its length is not a
 * multiple of 16, or over JPKI_ACCT_LIST_MAX. */
int jpki_acct_list_read(jpki_acct_list *l, const uint8_t *val, size_t len);
/* 1 when id (16 bytes) is in l. */
int jpki_acct_list_has(const jpki_acct_list *l, const uint8_t *id);
/* id added at the end of l (nothing when it is there already): JPKI_OK,
 * or JPKI_ERR_ACCOUNT_FULL when l holds JPKI_ACCOUNT_CERTS others. */
jpki_err jpki_acct_list_add(jpki_acct_list *l, const uint8_t *id);
/* id taken out of l, the others kept in order; 1 when it was there. */
int jpki_acct_list_del(jpki_acct_list *l, const uint8_t *id);
/* The bytes of l as acct: holds them (16 * l->n; 0: delete the key). */
size_t jpki_acct_list_len(const jpki_acct_list *l);

#define JPKI_MAPI_MAX 64              /* a mapi value with its NUL */
/* mapi's value into out (JPKI_MAPI_MAX bytes); tag NULL or "": none.
 * Its length, 0 when tag is not 16 lower-case hex characters or a time
 * is negative. */
size_t jpki_mapi_format(char out[JPKI_MAPI_MAX], const char *tag,
                        int64_t not_after, int64_t bound_at);
/* A mapi value (len bytes) read: tag (17 bytes: "" when none), the
 * times.  0 when malformed (not three fields, a tag that is not 16
 * lower-case hex characters, a time that is not 1..19 digits). */
int jpki_mapi_parse(const uint8_t *val, size_t len, char tag[17],
                    int64_t *not_after, int64_t *bound_at);

/* 1 when a cached revocation answer (rev:'s value, len bytes) says the
 * certificate is revoked for good: its status is "revoked" (certificate-
 * Hold is "hold", not final; "good", "unknown" and what does not parse
 * are not revoked). */
int jpki_rev_value_final(const uint8_t *val, size_t len);

#endif
