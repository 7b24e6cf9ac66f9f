/* allow.c - a location's allow-lists of accounts and issuers: parsed,
 * resolved against the site's issuers, checked.  See allow.h. */
#include "allow.h"
#include "internal.h"
#include "siteconf.h"
#include "txn_internal.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISSUER_NAME_MAX 63
#define ISSUER_NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV" \
                          "WXYZ0123456789_.-"

struct jpki_allow {
    jpki_allow_kind kind;
    size_t n;
    char *item[JPKI_ALLOW_ACCOUNTS_MAX];
    /* the items' bytes follow */
};

static jpki_err fail(char *err, size_t errlen, const char *what,
                     const char *word)
{
    jpki_set_detail(err, errlen, what, word);
    return JPKI_ERR_INVALID;
}

/* A word as it may go in a sentence: an invalid one is not quoted as
 * is (control bytes), only said to be invalid. */
static int word_ok(jpki_allow_kind kind, const char *w, size_t len)
{
    if (kind == JPKI_ALLOW_ACCOUNTS)
        return jpki_account_valid(w, len);
    return len > 0 && len <= ISSUER_NAME_MAX
           && strspn(w, ISSUER_NAME_CHARS) == len;
}

static int printable(const char *w)
{
    for (; *w != '\0'; w++)
        if ((unsigned char)*w < 0x20 || *w == 0x7f || *w == '"'
            || *w == '\\')
            return 0;
    return 1;
}

jpki_err jpki_allow_parse(jpki_allow_kind kind, int argc,
                          const char *const *argv, jpki_allow **out,
                          char *err, size_t errlen)
{
    const char *what = kind == JPKI_ALLOW_ACCOUNTS ? "account" : "issuer";
    size_t max = kind == JPKI_ALLOW_ACCOUNTS ? JPKI_ALLOW_ACCOUNTS_MAX
                                             : JPKI_ALLOW_ISSUERS_MAX;
    size_t i, k, len, total = 0;
    jpki_allow *a;
    char *p;

    *out = NULL;
    if (argc <= 0) {
        jpki_set_detail(err, errlen, "needs at least one %s", what);
        return JPKI_ERR_INVALID;
    }
    if ((size_t)argc > max) {
        jpki_set_detail(err, errlen, "must list at most %zu %ss", max, what);
        return JPKI_ERR_INVALID;
    }
    for (i = 0; i < (size_t)argc; i++) {
        len = argv[i] != NULL ? strlen(argv[i]) : 0;
        if (!word_ok(kind, argv[i] != NULL ? argv[i] : "", len)) {
            if (argv[i] != NULL && printable(argv[i]) && len <= 200)
                return fail(err, errlen, kind == JPKI_ALLOW_ACCOUNTS
                            ? "must list valid accounts (\"%s\" is not one)"
                            : "must list issuer names of 1..63 letters, "
                              "digits, _ . - (\"%s\" is not one)", argv[i]);
            jpki_set_detail(err, errlen, "must list valid %ss (word %zu is "
                            "not one)", what, i + 1);
            return JPKI_ERR_INVALID;
        }
        for (k = 0; k < i; k++)
            if (strcmp(argv[k], argv[i]) == 0)
                return fail(err, errlen, "must not list \"%s\" twice", argv[i]);
        total += len + 1;
    }
    a = calloc(1, sizeof(*a) + total);
    if (a == NULL)
        return JPKI_ERR_NOMEM;
    a->kind = kind;
    p = (char *)(a + 1);
    for (i = 0; i < (size_t)argc; i++) {
        len = strlen(argv[i]);
        memcpy(p, argv[i], len + 1);
        a->item[a->n++] = p;
        p += len + 1;
    }
    *out = a;
    return JPKI_OK;
}

void jpki_allow_free(jpki_allow *a)
{
    free(a);
}

jpki_allow_kind jpki_allow_kind_of(const jpki_allow *a)
{
    return a->kind;
}

size_t jpki_allow_count(const jpki_allow *a)
{
    return a != NULL ? a->n : 0;
}

const char *jpki_allow_item(const jpki_allow *a, size_t i)
{
    return a != NULL && i < a->n ? a->item[i] : NULL;
}

int jpki_allow_has(const jpki_allow *a, const char *s)
{
    size_t i;

    if (a == NULL || s == NULL)
        return 0;
    for (i = 0; i < a->n; i++)
        if (strcmp(a->item[i], s) == 0)
            return 1;
    return 0;
}

/* The site's issuers' names, "card, phone", into out. */
static void issuer_names(const jpki_ctx *ctx, char *out, size_t outlen)
{
    size_t i, o = 0;
    int n;

    out[0] = '\0';
    for (i = 0; i < jpki_ctx_issuer_count(ctx) && o < outlen; i++) {
        n = snprintf(out + o, outlen - o, "%s%s", i ? ", " : "",
                     jpki_issuer_name(jpki_ctx_issuer(ctx, i)));
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

jpki_err jpki_allow_resolve(const jpki_allow *issuers, const jpki_ctx *ctx,
                            char *err, size_t errlen)
{
    char names[JPKI_MAX_ISSUERS * (ISSUER_NAME_MAX + 2) + 1];
    size_t i, k;

    if (issuers == NULL)
        return JPKI_OK;
    for (i = 0; i < issuers->n; i++) {
        for (k = 0; k < jpki_ctx_issuer_count(ctx); k++)
            if (strcmp(jpki_issuer_name(jpki_ctx_issuer(ctx, k)),
                       issuers->item[i]) == 0)
                break;
        if (k == jpki_ctx_issuer_count(ctx)) {
            issuer_names(ctx, names, sizeof(names));
            jpki_set_detail(err, errlen, "must name the site's issuers: "
                            "\"%s\" is none of them (%s)", issuers->item[i],
                            names[0] ? names : "none");
            return JPKI_ERR_INVALID;
        }
    }
    return JPKI_OK;
}

/* The site's issuer of tag (16 hex characters); NULL: none. */
static const jpki_issuer *issuer_of_tag(const jpki_ctx *ctx, const char *tag)
{
    size_t i;

    for (i = 0; tag != NULL && i < jpki_ctx_issuer_count(ctx); i++)
        if (strcmp(jpki_issuer_tag(jpki_ctx_issuer(ctx, i)), tag) == 0)
            return jpki_ctx_issuer(ctx, i);
    return NULL;
}

jpki_err jpki_allow_check(const jpki_allow *accounts,
                          const jpki_allow *issuers, const jpki_ctx *ctx,
                          const char *account, const char *issuer_tag,
                          char *msg, size_t msglen)
{
    const jpki_issuer *is;
    const char *a = account != NULL && jpki_account_valid(account,
                        strlen(account)) ? account : NULL;

    if (msglen > 0)
        msg[0] = '\0';
    if (accounts != NULL && (a == NULL || !jpki_allow_has(accounts, a))) {
        if (a != NULL)
            jpki_set_detail(msg, msglen, "account \"%s\" is not on the "
                            "location's allow-list", a);
        else
            jpki_set_detail(msg, msglen, "a request without a valid account"
                            " is not on the location's allow-list");
        return JPKI_ERR_ACCOUNT_NOT_ALLOWED;
    }
    if (issuers != NULL) {
        is = ctx != NULL ? issuer_of_tag(ctx, issuer_tag) : NULL;
        if (is == NULL || !jpki_allow_has(issuers, jpki_issuer_name(is))) {
            jpki_set_detail(msg, msglen, "account \"%s\" signed in with "
                            "%s%s%s, not on the location's allow-list of "
                            "issuers", a != NULL ? a : "",
                            is != NULL ? "issuer \"" : "an issuer the site "
                            "no longer has",
                            is != NULL ? jpki_issuer_name(is) : "",
                            is != NULL ? "\"" : "");
            return JPKI_ERR_ISSUER_NOT_ALLOWED;
        }
    }
    return JPKI_OK;
}

const char *jpki_txn_issuer_tag(const jpki_txn *t)
{
    if (t == NULL || !t->have_session || t->s.issuer_tag[0] == '\0')
        return NULL;
    return t->s.issuer_tag;
}

/* ---- a location's lists (siteconf.h) ------------------------------- */

jpki_err jpki_locconf_allow(jpki_locconf *lc, int issuers, int argc,
                            const char *const *argv,
                            struct jpki_allow **loaded, char *err,
                            size_t errlen)
{
    jpki_err e;

    *loaded = NULL;
    if (issuers ? lc->issuers_here : lc->accounts_here) {
        jpki_set_detail(err, errlen, "is duplicate");
        return JPKI_ERR_INVALID;
    }
    e = jpki_allow_parse(issuers ? JPKI_ALLOW_ISSUERS : JPKI_ALLOW_ACCOUNTS,
                         argc, argv, loaded, err, errlen);
    if (e != JPKI_OK)
        return e;
    if (issuers) {
        lc->issuers = *loaded;
        lc->issuers_here = 1;
    } else {
        lc->accounts = *loaded;
        lc->accounts_here = 1;
    }
    return JPKI_OK;
}

jpki_err jpki_locconf_resolve(const jpki_locconf *lc, const jpki_ctx *ctx,
                              char *err, size_t errlen)
{
    return jpki_allow_resolve(lc->issuers, ctx, err, errlen);
}

jpki_err jpki_locconf_allows(const jpki_locconf *lc, const jpki_ctx *ctx,
                             const jpki_txn *t, char *msg, size_t msglen)
{
    const jpki_verdict *v;
    jpki_err e = JPKI_OK;

    if (lc->accounts != NULL || lc->issuers != NULL) {
        v = jpki_txn_verdict(t);
        e = jpki_allow_check(lc->accounts, lc->issuers, ctx,
                             v != NULL ? v->account : NULL,
                             jpki_txn_issuer_tag(t), msg, msglen);
    }
    jpki_metrics_gated(ctx, e);          /* a gated request's answer */
    return e;
}
