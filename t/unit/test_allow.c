/* test_allow.c - a location's allow-lists (common/allow.h): the words'
 * grammar and bounds, the issuer names resolved against a site's
 * issuers, the decision for an account and its session's issuer, the
 * lists merged down the levels (siteconf.h), and the refusal's answer
 * (edge.h). */
#include "allow.h"
#include "siteconf.h"
#include "edge.h"
#include "pki.h"

#include <stdio.h>
#include <string.h>

static jpki_allow *parse(jpki_allow_kind k, int argc, const char *const *v,
                         char *err, size_t errlen)
{
    jpki_allow *a = NULL;

    err[0] = '\0';
    if (jpki_allow_parse(k, argc, v, &a, err, errlen) != JPKI_OK)
        return NULL;
    return a;
}

static void test_grammar(void)
{
    static const char *const accts[] = {"alice", "bob smith", "田中"};
    const char *argv[JPKI_ALLOW_ACCOUNTS_MAX + 2];
    char names[JPKI_ALLOW_ACCOUNTS_MAX + 2][16], err[256], big[200];
    jpki_allow *a;
    size_t i;

    a = parse(JPKI_ALLOW_ACCOUNTS, 3, accts, err, sizeof(err));
    ok(a != NULL, "three accounts (one with a blank, one in UTF-8)");
    is_int((long long)jpki_allow_count(a), 3, "three on the list");
    ok(jpki_allow_has(a, "bob smith"), "the account with a blank is one");
    ok(!jpki_allow_has(a, "bob"), "... not its first word");
    ok(jpki_allow_has(a, "田中"), "a UTF-8 account");
    ok(!jpki_allow_has(a, "Alice"), "the same bytes only (no case folding)");
    ok(!jpki_allow_has(a, "alic"), "no prefix match");
    ok(!jpki_allow_has(a, NULL), "no account: not on it");
    is_str(jpki_allow_item(a, 1), "bob smith", "item 1");
    ok(jpki_allow_item(a, 3) == NULL, "item out of range");
    jpki_allow_free(a);

    ok(parse(JPKI_ALLOW_ACCOUNTS, 0, accts, err, sizeof(err)) == NULL,
       "no account refused");
    is_str(err, "needs at least one account", "... its sentence");
    ok(parse(JPKI_ALLOW_ISSUERS, 0, accts, err, sizeof(err)) == NULL,
       "no issuer refused");
    is_str(err, "needs at least one issuer", "... its sentence");

    for (i = 0; i < JPKI_ALLOW_ACCOUNTS_MAX + 1; i++) {
        snprintf(names[i], sizeof(names[i]), "user%zu", i);
        argv[i] = names[i];
    }
    a = parse(JPKI_ALLOW_ACCOUNTS, JPKI_ALLOW_ACCOUNTS_MAX, argv, err,
              sizeof(err));
    ok(a != NULL, "64 accounts taken");
    ok(jpki_allow_has(a, "user63") && !jpki_allow_has(a, "user64"),
       "the 64th is on it");
    jpki_allow_free(a);
    ok(parse(JPKI_ALLOW_ACCOUNTS, JPKI_ALLOW_ACCOUNTS_MAX + 1, argv, err,
             sizeof(err)) == NULL, "65 accounts refused");
    is_str(err, "must list at most 64 accounts", "... its sentence");
    ok(parse(JPKI_ALLOW_ISSUERS, JPKI_ALLOW_ISSUERS_MAX + 1, argv, err,
             sizeof(err)) == NULL, "17 issuers refused");
    is_str(err, "must list at most 16 issuers", "... its sentence");

    argv[0] = "alice";
    argv[1] = "ali\"ce";
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "an account with a quote refused (jpki_account_valid)");
    is_str(err, "must list valid accounts (word 2 is not one)",
           "... not quoted back as is");
    argv[1] = "a\tb";
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "a control byte refused");
    argv[1] = "\xff\xfe";
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "invalid UTF-8 refused");
    argv[1] = "";
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "an empty account refused");
    memset(big, 'x', 129);
    big[129] = '\0';
    argv[1] = big;
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "an account over 128 bytes refused");
    big[128] = '\0';
    a = parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err));
    ok(a != NULL, "an account of 128 bytes taken");
    jpki_allow_free(a);
    argv[1] = "alice";
    ok(parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err)) == NULL,
       "an account twice refused");
    is_str(err, "must not list \"alice\" twice", "... its sentence");

    argv[0] = "card";
    argv[1] = "phone-2023.v1_x";
    a = parse(JPKI_ALLOW_ISSUERS, 2, argv, err, sizeof(err));
    ok(a != NULL && jpki_allow_kind_of(a) == JPKI_ALLOW_ISSUERS,
       "issuer names taken");
    jpki_allow_free(a);
    argv[1] = "bad name";
    ok(parse(JPKI_ALLOW_ISSUERS, 2, argv, err, sizeof(err)) == NULL,
       "an issuer name with a blank refused");
    is_str(err, "must list issuer names of 1..63 letters, digits, _ . - "
           "(\"bad name\" is not one)", "... its sentence");
    memset(big, 'a', 64);
    big[64] = '\0';
    argv[1] = big;
    ok(parse(JPKI_ALLOW_ISSUERS, 2, argv, err, sizeof(err)) == NULL,
       "an issuer name of 64 characters refused");
}

static void test_resolve_check(void)
{
    jpki_ctx *ctx = tap_pki_ctx(7, NULL, NULL);
    const char *card_tag, *phone_tag;
    const char *argv[3];
    jpki_allow *accounts, *issuers, *bad;
    char err[256], msg[400];

    ok(ctx != NULL, "a site with issuers jpki and phone");
    if (ctx == NULL)
        return;
    card_tag = jpki_issuer_tag(jpki_ctx_issuer(ctx, 0));
    phone_tag = jpki_issuer_tag(jpki_ctx_issuer(ctx, 1));

    argv[0] = "jpki";
    issuers = parse(JPKI_ALLOW_ISSUERS, 1, argv, err, sizeof(err));
    ok(jpki_allow_resolve(issuers, ctx, err, sizeof(err)) == JPKI_OK,
       "a name of the site's issuers resolves");
    ok(jpki_allow_resolve(NULL, ctx, err, sizeof(err)) == JPKI_OK,
       "no list: nothing to resolve");
    argv[0] = "phone";
    argv[1] = "card";
    bad = parse(JPKI_ALLOW_ISSUERS, 2, argv, err, sizeof(err));
    ok(jpki_allow_resolve(bad, ctx, err, sizeof(err)) == JPKI_ERR_INVALID,
       "an unknown issuer name refused");
    is_str(err, "must name the site's issuers: \"card\" is none of them "
           "(jpki, phone)", "... with the site's names");
    jpki_allow_free(bad);

    argv[0] = "alice";
    argv[1] = "bob";
    accounts = parse(JPKI_ALLOW_ACCOUNTS, 2, argv, err, sizeof(err));

    is_int(jpki_allow_check(NULL, NULL, ctx, "mallory", phone_tag, msg,
                            sizeof(msg)), JPKI_OK, "no rule: anyone");
    is_int(jpki_allow_check(accounts, NULL, ctx, "alice", card_tag, msg,
                            sizeof(msg)), JPKI_OK, "alice on the list");
    is_int(jpki_allow_check(accounts, NULL, NULL, "bob", NULL, msg,
                            sizeof(msg)), JPKI_OK,
           "bob on the list (no site needed for accounts)");
    is_int(jpki_allow_check(accounts, NULL, ctx, "carol", card_tag, msg,
                            sizeof(msg)), JPKI_ERR_ACCOUNT_NOT_ALLOWED,
           "carol refused");
    is_str(msg, "account \"carol\" is not on the location's allow-list",
           "... the log sentence");
    is_int(jpki_allow_check(accounts, NULL, ctx, NULL, card_tag, msg,
                            sizeof(msg)), JPKI_ERR_ACCOUNT_NOT_ALLOWED,
           "no account refused");
    is_int(jpki_allow_check(accounts, NULL, ctx, "ali\"ce", card_tag, msg,
                            sizeof(msg)), JPKI_ERR_ACCOUNT_NOT_ALLOWED,
           "an invalid account refused");
    ok(strchr(msg, '"') == NULL || strstr(msg, "ali\"ce") == NULL,
       "... not written in the sentence");

    is_int(jpki_allow_check(NULL, issuers, ctx, "alice", card_tag, msg,
                            sizeof(msg)), JPKI_OK, "the card's issuer allowed");
    is_int(jpki_allow_check(NULL, issuers, ctx, "alice", phone_tag, msg,
                            sizeof(msg)), JPKI_ERR_ISSUER_NOT_ALLOWED,
           "the phone's issuer refused");
    is_str(msg, "account \"alice\" signed in with issuer \"phone\", not on "
           "the location's allow-list of issuers", "... the log sentence");
    is_int(jpki_allow_check(NULL, issuers, ctx, "alice", "0123456789abcdef",
                            msg, sizeof(msg)), JPKI_ERR_ISSUER_NOT_ALLOWED,
           "an issuer the site no longer has refused");
    is_int(jpki_allow_check(NULL, issuers, ctx, "alice", NULL, msg,
                            sizeof(msg)), JPKI_ERR_ISSUER_NOT_ALLOWED,
           "no issuer refused");
    is_int(jpki_allow_check(NULL, issuers, NULL, "alice", card_tag, msg,
                            sizeof(msg)), JPKI_ERR_ISSUER_NOT_ALLOWED,
           "no site to name the issuer: refused (fails closed)");
    is_int(jpki_allow_check(accounts, issuers, ctx, "bob", phone_tag, msg,
                            sizeof(msg)), JPKI_ERR_ISSUER_NOT_ALLOWED,
           "both lists: an allowed account with a refused issuer");
    is_int(jpki_allow_check(accounts, issuers, ctx, "carol", card_tag, msg,
                            sizeof(msg)), JPKI_ERR_ACCOUNT_NOT_ALLOWED,
           "both lists: a refused account with an allowed issuer");
    is_int(jpki_allow_check(accounts, issuers, ctx, "bob", card_tag, msg,
                            sizeof(msg)), JPKI_OK, "both lists: both allowed");

    jpki_allow_free(accounts);
    jpki_allow_free(issuers);
    jpki_ctx_free(ctx);
}

static void test_locconf(void)
{
    jpki_ctx *ctx = tap_pki_ctx(7, NULL, NULL);
    jpki_locconf top, loc, other;
    jpki_allow *a1, *a2, *i1, *dup;
    const char *argv[2] = {"alice", "phone"};
    char err[256];

    jpki_locconf_init(&top);
    jpki_locconf_init(&loc);
    jpki_locconf_init(&other);
    ok(!jpki_locconf_any(&loc), "nothing written");
    ok(jpki_locconf_allow(&top, 0, 1, argv, &a1, err, sizeof(err))
       == JPKI_OK, "accounts at the top level");
    ok(jpki_locconf_any(&top), "... written");
    ok(jpki_locconf_allow(&top, 0, 1, argv, &dup, err, sizeof(err))
       == JPKI_ERR_INVALID && dup == NULL, "twice at one level refused");
    is_str(err, "is duplicate", "... is duplicate");
    ok(jpki_locconf_allow(&top, 1, 1, argv + 1, &i1, err, sizeof(err))
       == JPKI_OK, "issuers at the top level");
    argv[0] = "bob";
    ok(jpki_locconf_allow(&loc, 0, 1, argv, &a2, err, sizeof(err))
       == JPKI_OK, "accounts in a location");

    jpki_locconf_merge(&loc, &top);
    jpki_locconf_merge(&other, &top);
    ok(loc.accounts == a2, "the location's own accounts stay");
    ok(loc.issuers == i1, "the issuers come down");
    ok(other.accounts == a1 && other.issuers == i1,
       "a location without lists takes both");
    ok(ctx != NULL && jpki_locconf_resolve(&loc, ctx, err, sizeof(err))
       == JPKI_OK, "phone resolves against the site");

    jpki_allow_free(a1);
    jpki_allow_free(a2);
    jpki_allow_free(i1);
    jpki_ctx_free(ctx);
}

static void test_refusal(void)
{
    jpki_verdict v;
    char buf[JPKI_EDGE_REFUSAL_MAX];

    jpki_edge_refusal(&v, JPKI_ERR_ACCOUNT_NOT_ALLOWED, buf);
    is_int(v.http_status, 403, "account refused: 403 (not a login problem)");
    is_str(v.reason, "account_not_allowed", "... account_not_allowed");
    ok(strstr(v.body, "\"account_not_allowed\"") != NULL, "... in the JSON");
    ok(v.location == NULL && v.set_cookie == NULL,
       "... no login page, no cookie");
    ok(!jpki_edge_passes(JPKI_OP_CHECK, &v), "... does not pass");
    jpki_edge_refusal(&v, JPKI_ERR_ISSUER_NOT_ALLOWED, buf);
    is_int(v.http_status, 403, "issuer refused: 403");
    is_str(v.reason, "issuer_not_allowed", "... issuer_not_allowed");
    ok(strstr(v.body, "\"issuer_not_allowed\"") != NULL, "... in the JSON");
}

int main(void)
{
    test_grammar();
    test_resolve_check();
    test_locconf();
    test_refusal();
    return done_testing();
}
