/*
 * allow.h - a location's allow-lists, once for both servers: the accounts
 * (nginx jpki_allow_accounts, Apache JPKIAllowAccounts and Require
 * jpki-account) and the issuers (jpki_allow_issuers, JPKIAllowIssuers:
 * the site's issuer names, card only or phone too) that may pass a gate.
 *
 * The words are parsed here (bounds, accounts checked with
 * jpki_account_valid, issuer names with the issuer directive's grammar),
 * the issuer names are resolved against the site's issuers when the
 * configuration is checked (an unknown name is refused at startup), and a
 * gated request that passed its session check is decided here with the
 * account and the issuer its session carries.  The adapter answers a
 * refusal with jpki_edge_refusal (403, the same JSON on both servers) and
 * logs the sentence it gets.
 */
#ifndef JPKI_ALLOW_H
#define JPKI_ALLOW_H

#include "jpki.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JPKI_ALLOW_ACCOUNTS_MAX 64
#define JPKI_ALLOW_ISSUERS_MAX  JPKI_MAX_ISSUERS

typedef enum {
    JPKI_ALLOW_ACCOUNTS = 0,
    JPKI_ALLOW_ISSUERS
} jpki_allow_kind;

typedef struct jpki_allow jpki_allow;

/* The directive's words argv[0..argc-1] (one account or issuer name each,
 * as the server split them: an account may hold blanks).  *out: a new
 * list (jpki_allow_free).  JPKI_ERR_INVALID and a sentence: "needs at
 * least one account", "must list at most 64 accounts", "must list valid
 * accounts (\"x\" is not one)", "must not list \"x\" twice"...;
 * JPKI_ERR_NOMEM. */
jpki_err jpki_allow_parse(jpki_allow_kind kind, int argc,
                          const char *const *argv, jpki_allow **out,
                          char *err, size_t errlen);
void jpki_allow_free(jpki_allow *a);

jpki_allow_kind jpki_allow_kind_of(const jpki_allow *a);
size_t jpki_allow_count(const jpki_allow *a);
const char *jpki_allow_item(const jpki_allow *a, size_t i);
/* 1 when s is on the list (the same bytes). */
int jpki_allow_has(const jpki_allow *a, const char *s);

/* An issuer list against the site's issuers (ctx): each name must be one
 * of them.  JPKI_ERR_INVALID and the sentence "must name the site's
 * issuers: \"x\" is none of them (card, phone)". */
jpki_err jpki_allow_resolve(const jpki_allow *issuers, const jpki_ctx *ctx,
                            char *err, size_t errlen);

/* Whether account, signed in with a certificate of the issuer of tag
 * issuer_tag (the session's, jpki_issuer_tag), may pass: accounts and
 * issuers are the location's lists (NULL: no rule).  JPKI_OK;
 * JPKI_ERR_ACCOUNT_NOT_ALLOWED or JPKI_ERR_ISSUER_NOT_ALLOWED with the
 * log sentence in msg ("account \"bob\" is not on the location's
 * allow-list", "account \"alice\" signed in with issuer \"phone\", not
 * allowed here"): no certificate data in it. */
jpki_err jpki_allow_check(const jpki_allow *accounts,
                          const jpki_allow *issuers, const jpki_ctx *ctx,
                          const char *account, const char *issuer_tag,
                          char *msg, size_t msglen);

/* The issuer tag of the session a transaction opened or made (a gated
 * request's, a login's); NULL when it has none. */
const char *jpki_txn_issuer_tag(const jpki_txn *t);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_ALLOW_H */
