/*
 * login_device.c - jpki-login --device URL: the signer of a login page's
 * device flow (docs/protocol.md).  The page shows a link, or a QR code of
 * it, https://HOST/P/sign?challenge=C&code=XXXX-XXXX, also as
 * jpki:https://... (a desktop's handler of jpki: links gets it as %u,
 * tools/jpki-login.desktop).  Anyone can write such a link, so it is read
 * strictly (device_url): https (http as for --url), no user info nor
 * fragment, a path ending in /sign, a query of exactly challenge and
 * code; the challenge checked as a login's (check_challenge: issued for
 * the URL's host, current) and the code recomputed from it
 * (jpki_device_code): a link whose code is not its challenge's was
 * altered.  All this before the token is opened: nothing is asked,
 * signed or sent for a link that fails.  The origin and the code are then
 * shown (login_main.c), the card signs the challenge as for a login, and
 * the signature is posted to the URL itself (post_sign); the browser that
 * started the flow gets the session, the signer none.
 */
#include "login.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINK_SCHEME "jpki:"            /* the page's link for a desktop */

/* The query's two parameters, each once, nothing else, into D: 0 or -1
 * said.  Their values are taken as written: base64url and the code's
 * alphabet need no percent-decoding, and a '%' in them fails their
 * checks. */
static int query_params(const char *q, device_t *d)
{
    const char *p = q, *amp, *eq;
    int seen_ch = 0, seen_code = 0, is_ch, is_code;
    size_t n, nlen, vlen;
    char name[33], shown[2 * 33 + 1];

    d->challenge[0] = d->code[0] = '\0';
    do {                                /* each piece, empty ones too */
        amp = strchr(p, '&');
        n = amp != NULL ? (size_t)(amp - p) : strlen(p);
        eq = memchr(p, '=', n);
        nlen = eq != NULL ? (size_t)(eq - p) : n;
        memcpy(name, p, nlen < 32 ? nlen : 32);
        name[nlen < 32 ? nlen : 32] = '\0';
        clean(name, shown, sizeof(shown));
        is_ch = eq != NULL && nlen == 9 && memcmp(p, "challenge", 9) == 0;
        is_code = eq != NULL && nlen == 4 && memcmp(p, "code", 4) == 0;
        if (!is_ch && !is_code) {
            say("--device: the link's query holds \"%s\"%s: a login page's "
                "link has challenge=...&code=... only", shown,
                eq != NULL ? "=..." : "");
            return -1;
        }
        if ((is_ch && seen_ch) || (is_code && seen_code)) {
            say("--device: the link gives the %s twice", shown);
            return -1;
        }
        vlen = n - nlen - 1;
        if (is_ch && vlen > CHALLENGE_MAX) {
            say("--device: not signed: the challenge has %zu characters, "
                "not %d", vlen, JPKI_CHALLENGE_LEN);
            return -1;
        }
        if (is_code && vlen != JPKI_DEVICE_CODE_LEN) {
            say("--device: the code has %zu characters, not %d "
                "(XXXX-XXXX)", vlen, JPKI_DEVICE_CODE_LEN);
            return -1;
        }
        memcpy(is_ch ? d->challenge : d->code, eq + 1, vlen);
        (is_ch ? d->challenge : d->code)[vlen] = '\0';
        seen_ch |= is_ch;
        seen_code |= is_code;
        p = amp != NULL ? amp + 1 : p + n;
    } while (amp != NULL);
    if (!seen_ch || !seen_code) {
        say("--device: the link has no %s (a login page's link ends in "
            "?challenge=...&code=XXXX-XXXX)", seen_ch ? "code" : "challenge");
        return -1;
    }
    return 0;
}

int device_url(const char *arg, int insecure, device_t *d, http_t *x)
{
    char query[URL_MAX + 1], why[512], code[JPKI_DEVICE_CODE_LEN + 1];
    const char *url = arg;
    size_t n, i;
    int cc;

    if (strncasecmp(url, LINK_SCHEME, strlen(LINK_SCHEME)) == 0)
        url += strlen(LINK_SCHEME);
    n = strlen(url);
    for (i = 0; i < n; i++)
        if ((unsigned char)url[i] < 0x21 || (unsigned char)url[i] > 0x7e) {
            say("--device: the link holds a space, a control character or "
                "a byte that is not ASCII (at %zu)", i);
            return -1;
        }
    if (n > URL_MAX) {
        say("--device: the link is longer than %d characters", URL_MAX);
        return -1;
    }
    memcpy(d->url, url, n + 1);
    if (check_url(url, "--device", insecure, x, query, sizeof(query)) != 0)
        return -1;
    n = strlen(x->shown);
    if (n < 5 || strcmp(x->shown + n - 5, "/sign") != 0) {
        say("--device: the link's path does not end in /sign: not a login "
            "page's link");
        return -1;
    }
    if (query_params(query, d) != 0)
        return -1;
    cc = check_challenge(d->challenge, time(NULL), x, &d->expiry, why,
                         sizeof(why));
    if (cc != 0) {
        say("--device: not signed: %s%s", why, cc == -1 ? " (the card "
            "signs nothing but a JPKI login challenge)" : "");
        return -1;
    }
    if (jpki_device_code(d->challenge, strlen(d->challenge), code) != JPKI_OK
        || CRYPTO_memcmp(code, d->code, JPKI_DEVICE_CODE_LEN) != 0) {
        say("--device: the link's code is not its challenge's (%s): the "
            "link was altered; not signed", code);
        return -1;
    }
    return 0;
}

int post_sign(http_t *x, const device_t *d, const char *body)
{
    char what[URL_MAX + 64], shown[64];
    jpki_form_field f[4] = {
        {"status", 15, NULL, 0, JPKI_FORM_STRING, 0},
        {"code", 15, NULL, 0, JPKI_FORM_STRING, 0},
        {"error", 63, NULL, 0, JPKI_FORM_STRING, 0},
        {"message", 511, NULL, 0, JPKI_FORM_STRING, 0}};
    char *scratch = NULL;
    int rc;

    snprintf(what, sizeof(what), "POST %s", x->shown);
    rc = post_answer(x, d->url, what, body, f, 4, &scratch);
    if (rc == 0 && (f[1].value == NULL || strcmp(f[1].value, d->code) != 0)) {
        say("%s: the gate signed in a flow of another code (%s), not %s",
            what, shown_field(&f[1], "none", shown, sizeof(shown)), d->code);
        rc = EXIT_NET;
    }
    free(scratch);
    return rc;
}
