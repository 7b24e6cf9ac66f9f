/*
 * cert_cmds.c - jpkictl's commands on files, checked as the gate checks
 * them: sig-verify (a signature), cert-check (a login certificate) and
 * crl inspect (a CRL).
 */
#include "jpkictl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_FILE_MAX   (1024 * 1024)
#define MSG_FILE_MAX   (64 * 1024 * 1024)
#define SIG_FILE_MAX   (64 * 1024)

const char usage_sig[] =
"jpkictl sig-verify (--cert FILE | --pubkey FILE) --alg ALG --msg FILE\n"
"                   --sig FILE [--allow-sha1]\n"
"  Verifies a signature strictly; prints \"signature valid\" (exit 0) or\n"
"  \"signature invalid: REASON\" (exit 1; REASON signature_invalid or\n"
"  signature_algorithm).\n"
"  --cert FILE    the signer's certificate (PEM, DER or base64); no path\n"
"                 check is made (see cert-check)\n"
"  --pubkey FILE  or its public key (PEM \"PUBLIC KEY\" or DER\n"
"                 SubjectPublicKeyInfo: openssl x509 -pubkey -noout);\n"
"                 either option accepts either form\n"
"  --alg ALG      rsa-pkcs1-sha256 | rsa-pkcs1-sha384 | rsa-pkcs1-sha512 |\n"
"                 rsa-pkcs1-sha1 | ecdsa-sha256 | ecdsa-sha384; an ALG that\n"
"                 does not fit the key type gives signature_algorithm\n"
"  --msg FILE     the exact bytes signed (a login signs the 100 ASCII\n"
"                 characters of the challenge: no newline, no quotes)\n"
"  --sig FILE     raw binary, or base64 (standard or URL alphabet, line\n"
"                 breaks allowed); hex is not accepted\n"
"  --allow-sha1   accept rsa-pkcs1-sha1 (to examine old signatures; the\n"
"                 gate always refuses SHA-1).  Without it: exit 1, reason\n"
"                 signature_algorithm, as at the gate.\n"
"  Strict: an RSA signature is exactly as long as the modulus and its\n"
"  DigestInfo byte for byte the DER of RFC 8017 (no BER, no missing NULL\n"
"  parameter, no trailing bytes).  An ECDSA signature is a DER\n"
"  ECDSA-Sig-Value (as openssl dgst -sign writes); raw r||s (WebCrypto,\n"
"  PKCS#11 CKM_ECDSA) must be converted to DER by the client.\n\n";

const char usage_cert[] =
"jpkictl cert-check --cert FILE --issuer NAME=CAFILE[,CAFILE...]\n"
"                   [--issuer ...] [--policy NAME=OID|none] [--at TIME]\n"
"                   [--secret-file FILE]\n"
"  Validates a login certificate (PEM, DER or base64) as the gate does:\n"
"  path to a trust anchor, validity, not a CA, digitalSignature, the\n"
"  issuer's policy, RSA >= 2048 bits or EC P-256/P-384; every certificate\n"
"  of the path (leaf, link, intermediate; not an anchor's self-signature)\n"
"  signed with SHA-256 or stronger by a CA key of RSA >= 2048 bits or EC\n"
"  >= P-256.  Prints\n"
"    OK issuer=NAME cert_id=HEX not_after=TIME   (exit 0; not_after: the\n"
"                                                 earliest of the path)\n"
"    FAIL REASON: DETAIL                         (exit 1)\n"
"  REASON: cert_malformed cert_unknown_issuer cert_chain_invalid\n"
"  cert_expired cert_not_yet_valid cert_is_ca cert_key_usage cert_policy\n"
"  cert_key_not_allowed cert_signature_algorithm\n"
"  --issuer NAME=CAFILE,...  one issuer, as in the gate's configuration:\n"
"                 self-signed CA certificates become trust anchors, others\n"
"                 (link certificates) intermediates; PEM bundles allowed.\n"
"                 NAME: 1..63 of A-Z a-z 0-9 _ - . (no ',' in CAFILE)\n"
"  --policy NAME=OID|none  policy issuer NAME requires (default\n"
"                 1.2.392.200149.8.5.1.3.30, JPKI user authentication)\n"
"  --at TIME      check at TIME, not now: YYYY-MM-DDTHH:MM:SSZ (UTC) or\n"
"                 seconds since the epoch\n"
"  --secret-file FILE  the site secret file (mode 600): cert_id is then the\n"
"                 one the gate uses.  Without it a random secret is used\n"
"                 and cert_id changes on every run.\n"
"\n";

const char usage_crl[] =
"jpkictl crl inspect --crl FILE --issuer NAME=CAFILE[,CAFILE...]\n"
"                    [--issuer ...] [--at TIME] [--grace SECONDS]\n"
"  Verifies a CRL (DER or PEM) as the gate does.  Prints issuer,\n"
"  thisUpdate, nextUpdate (UTC), crlNumber, entries and \"signature: ok\"\n"
"  when the signature verified, else only \"signature: REASON: DETAIL\";\n"
"  then \"fresh: yes|stale|not_yet_valid|unknown\".  Exit 0 when valid\n"
"  and fresh, 1 otherwise.\n"
"  --grace SECONDS  stale after nextUpdate + SECONDS (0 or absent: the\n"
"                 clock skew, 300 s)\n"
"  --issuer, --at  as for cert-check\n\n";

/* ---- sig-verify --------------------------------------------------- */

/* 2: base64 character (either alphabet, or '='), 1: whitespace, 0: other */
static int b64_class(uint8_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || (c != 0 && strchr("+/-_=", c)))
        return 2;
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Base64 when the file holds only base64 characters and whitespace (a raw
 * signature of only those bytes is vanishingly unlikely), raw otherwise.
 * buf is compacted in place; *out is buf itself when raw. */
static int decode_sig(uint8_t *buf, size_t len, uint8_t **out,
                      size_t *outlen, int *was_b64)
{
    size_t i, n = 0;

    for (i = 0; i < len && b64_class(buf[i]) != 0; i++)
        ;
    *was_b64 = i == len;
    *out = buf;
    *outlen = len;
    if (!*was_b64)
        return 0;
    for (i = 0; i < len; i++)
        if (b64_class(buf[i]) == 2)
            buf[n++] = buf[i];
    *out = malloc(jpki_b64_decoded_max(n) + 1);
    if (*out != NULL && n > 0
        && jpki_b64_decode((const char *)buf, n, *out, outlen) == JPKI_OK
        && *outlen > 0)
        return 0;
    free(*out);
    *out = NULL;
    say("the signature file looks like base64 but does not decode");
    return -1;
}

static void sig_hint(jpki_err e, jpki_sig_alg alg, int allow_sha1)
{
    if (e == JPKI_ERR_SIG_ALG && alg == JPKI_SIG_RSA_PKCS1_SHA1 && !allow_sha1)
        say("hint: rsa-pkcs1-sha1 is refused, as the gate refuses it; "
            "--allow-sha1 accepts it here, to examine old signatures");
    else if (e == JPKI_ERR_SIG_ALG)
        say("hint: %s does not fit the key: RSA keys take rsa-pkcs1-*, EC "
            "keys ecdsa-*", jpki_sig_alg_name(alg));
    else
        say("hint: other key or message, hash other than ALG's, length not "
            "the modulus', DigestInfo not DER, or raw r||s ECDSA");
}

static int verify_files(const args_t *a, const char *keypath,
                        jpki_sig_alg alg)
{
    uint8_t *key = NULL, *msg = NULL, *raw = NULL, *sig = NULL;
    size_t keylen, msglen, rawlen, siglen;
    int rc = EXIT_USAGE, b64 = 0, sha1 = (a->seen & BIT(O_ALLOW_SHA1)) != 0;
    jpki_err e;

    if (load("key", keypath, KEY_FILE_MAX, &key, &keylen) != 0
        || load("message", a->val[O_MSG], MSG_FILE_MAX, &msg, &msglen) != 0
        || load("signature", a->val[O_SIG], SIG_FILE_MAX, &raw, &rawlen) != 0)
        goto out;
    if (rawlen == 0) {
        say("the signature file is empty");
        goto out;
    }
    if (decode_sig(raw, rawlen, &sig, &siglen, &b64) != 0)
        goto out;
    e = jpki_sig_verify_pubkey(key, keylen, alg, sha1, msg, msglen, sig,
                               siglen);
    if (e == JPKI_OK) {
        printf("signature valid\n");
        rc = EXIT_VALID;
    } else if (e == JPKI_ERR_SIG_ALG || e == JPKI_ERR_SIG_INVALID) {
        printf("signature invalid: %s\n", jpki_reason(e));
        say("%s (%s, signature of %zu bytes read as %s)", jpki_strerror(e),
            jpki_sig_alg_name(alg), siglen, b64 ? "base64" : "raw binary");
        sig_hint(e, alg, sha1);
        rc = EXIT_INVALID;
    } else if (e == JPKI_ERR_PARSE) {
        say("\"%s\" holds no usable public key or certificate (PEM \"PUBLIC "
            "KEY\" or \"CERTIFICATE\", DER or base64)", keypath);
    } else {
        say("verification failed: %s", jpki_strerror(e));
    }
out:
    if (sig != raw)
        free(sig);
    free(raw);
    free(msg);
    free(key);
    return rc;
}

int run_sig_verify(const args_t *a)
{
    int alg;

    if (!(a->seen & BIT(O_CERT)) == !(a->seen & BIT(O_PUBKEY))) {
        say("give exactly one of --cert and --pubkey");
        return SHOW_USAGE;
    }
    alg = jpki_sig_alg_from_name(a->val[O_ALG], strlen(a->val[O_ALG]));
    if (alg < 0) {
        say("unknown --alg \"%.64s\"", a->val[O_ALG]);
        return SHOW_USAGE;
    }
    return verify_files(a, a->val[O_CERT] ? a->val[O_CERT] : a->val[O_PUBKEY],
                        (jpki_sig_alg)alg);
}

/* ---- cert-check --------------------------------------------------- */

int run_cert_check(const args_t *a)
{
    char detail[512] = "", t[32];
    jpki_ctx *ctx = NULL;
    jpki_cert *c = NULL;
    uint8_t *buf = NULL;
    size_t len;
    jpki_err e;
    int rc = EXIT_USAGE;

    if (load("certificate", a->val[O_CERT], CERT_FILE_MAX, &buf, &len) != 0
        || (ctx = build_ctx(a, 1)) == NULL)
        goto out;
    e = jpki_cert_check(ctx, buf, len, a->now, &c, detail, sizeof(detail));
    if (e == JPKI_OK) {
        printf("OK issuer=%s cert_id=%s not_after=%s\n",
               jpki_issuer_name(jpki_cert_issuer(c)), jpki_cert_id_hex(c),
               iso8601((int64_t)jpki_cert_not_after(c), t));
        rc = EXIT_VALID;
    } else {
        printf("FAIL %s: %s\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
        rc = EXIT_INVALID;
    }
out:
    jpki_cert_free(c);
    jpki_ctx_free(ctx);
    free(buf);
    return rc;
}

/* ---- crl inspect -------------------------------------------------- */

static void print_crl(jpki_err e, const jpki_crl_info *info,
                      const char *detail)
{
    char t[32];

    if (e != JPKI_OK && e != JPKI_ERR_CRL_STALE
        && e != JPKI_ERR_CRL_NOT_YET_VALID) {     /* nothing else is known */
        printf("signature: %s: %s\nfresh: unknown\n", jpki_reason(e),
               detail[0] ? detail : jpki_strerror(e));
        return;
    }
    printf("issuer: %s\n",
           info->issuer != NULL ? jpki_issuer_name(info->issuer) : "?");
    printf("thisUpdate: %s\n", iso8601(info->this_update, t));
    printf("nextUpdate: %s\n",
           info->next_update != 0 ? iso8601(info->next_update, t) : "none");
    if (info->crl_number >= 0)
        printf("crlNumber: %lld\n", (long long)info->crl_number);
    else
        printf("crlNumber: none\n");
    printf("entries: %llu\nsignature: ok\n",
           (unsigned long long)info->entries);
    printf("fresh: %s\n", e == JPKI_OK ? "yes"
           : e == JPKI_ERR_CRL_STALE ? "stale" : "not_yet_valid");
    if (e != JPKI_OK)
        say("%s", detail[0] ? detail : jpki_strerror(e));
}

int run_crl_inspect(const args_t *a)
{
    const char *g = a->val[O_GRACE];
    char detail[512] = "";
    jpki_crl_info info;
    jpki_ctx *ctx = NULL;
    uint8_t *buf = NULL;
    size_t len;
    jpki_err e;
    int rc = EXIT_USAGE;

    if (g != NULL && (!all_digits(g, strlen(g)) || strlen(g) > 10
                      || strtoull(g, NULL, 10) > GRACE_MAX)) {
        say("--grace: expected seconds, 0..%u", GRACE_MAX);
        return SHOW_USAGE;
    }
    if (load("CRL", a->val[O_CRL], JPKI_CRL_MAX, &buf, &len) != 0
        || (ctx = build_ctx(a, 0)) == NULL)
        goto out;
    memset(&info, 0, sizeof(info));
    e = jpki_crl_verify(ctx, buf, len, a->now,
                        g != NULL ? (unsigned)strtoul(g, NULL, 10) : 0, &info,
                        detail, sizeof(detail));
    print_crl(e, &info, detail);
    rc = e == JPKI_OK ? EXIT_VALID : EXIT_INVALID;
out:
    jpki_ctx_free(ctx);
    free(buf);
    return rc;
}

