/* errors.c - reasons and messages of jpki_err. */
#include "jpki.h"

#include <stdio.h>

static const struct {
    const char *reason;
    const char *msg;
} errtab[JPKI__ERR_COUNT] = {
    [JPKI_OK] = {"ok", "success"},
    [JPKI_ERR_NOMEM] = {"no_memory", "out of memory"},
    [JPKI_ERR_INVALID] = {"invalid", "invalid argument or configuration"},
    [JPKI_ERR_PARSE] = {"malformed", "malformed input"},
    [JPKI_ERR_TOO_LARGE] = {"too_large", "input too large"},
    [JPKI_ERR_INTERNAL] = {"internal_error", "internal error"},
    [JPKI_ERR_CERT_PARSE] = {"cert_malformed", "certificate is malformed"},
    [JPKI_ERR_CERT_UNKNOWN_ISSUER] = {"cert_unknown_issuer",
        "certificate not issued by a configured issuer"},
    [JPKI_ERR_CERT_CHAIN] = {"cert_chain_invalid",
        "certificate path to a trust anchor is invalid"},
    [JPKI_ERR_CERT_EXPIRED] = {"cert_expired", "certificate has expired"},
    [JPKI_ERR_CERT_NOT_YET_VALID] = {"cert_not_yet_valid",
        "certificate is not yet valid"},
    [JPKI_ERR_CERT_IS_CA] = {"cert_is_ca",
        "certificate is a CA certificate, not a user certificate"},
    [JPKI_ERR_CERT_KEY_USAGE] = {"cert_key_usage",
        "certificate key usage does not allow digital signatures"},
    [JPKI_ERR_CERT_POLICY] = {"cert_policy",
        "certificate lacks the required policy"},
    [JPKI_ERR_CERT_KEY] = {"cert_key_not_allowed",
        "certificate key type or size not allowed"},
    [JPKI_ERR_CERT_SIG_ALG] = {"cert_signature_algorithm",
        "a certificate of the path is signed with a weak algorithm or key"},
    [JPKI_ERR_SIG_ALG] = {"signature_algorithm",
        "signature algorithm not allowed for this key"},
    [JPKI_ERR_SIG_INVALID] = {"signature_invalid", "signature is invalid"},
    [JPKI_ERR_CHALLENGE_FORMAT] = {"challenge_malformed",
        "challenge is malformed"},
    [JPKI_ERR_CHALLENGE_KEY] = {"challenge_unknown_key",
        "challenge was made with an unknown key"},
    [JPKI_ERR_CHALLENGE_MAC] = {"challenge_tampered",
        "challenge authentication tag is wrong"},
    [JPKI_ERR_CHALLENGE_EXPIRED] = {"challenge_expired",
        "challenge has expired"},
    [JPKI_ERR_CHALLENGE_REPLAY] = {"challenge_replayed",
        "challenge was already used"},
    [JPKI_ERR_CHALLENGE_HOST] = {"challenge_host",
        "challenge was issued for another host"},
    [JPKI_ERR_BAD_HOST] = {"bad_host",
        "the request has no valid Host to bind a challenge to"},
    [JPKI_ERR_OCSP_PARSE] = {"ocsp_malformed", "OCSP response is malformed"},
    [JPKI_ERR_OCSP_STATUS] = {"ocsp_error_status",
        "OCSP responder returned an error status"},
    [JPKI_ERR_OCSP_SIGNER] = {"ocsp_unauthorized_signer",
        "OCSP response signer is not authorized"},
    [JPKI_ERR_OCSP_SIGNATURE] = {"ocsp_bad_signature",
        "OCSP response signature is invalid"},
    [JPKI_ERR_OCSP_NO_ANSWER] = {"ocsp_no_answer",
        "OCSP response has no answer for the certificate"},
    [JPKI_ERR_OCSP_NONCE] = {"ocsp_nonce", "OCSP nonce mismatch"},
    [JPKI_ERR_OCSP_STALE] = {"ocsp_stale",
        "OCSP response outside its validity window"},
    [JPKI_ERR_CRL_PARSE] = {"crl_malformed", "CRL is malformed"},
    [JPKI_ERR_CRL_ISSUER] = {"crl_unknown_issuer",
        "CRL not issued by a configured issuer"},
    [JPKI_ERR_CRL_SIGNATURE] = {"crl_bad_signature",
        "CRL signature is invalid"},
    [JPKI_ERR_CRL_STALE] = {"crl_stale", "CRL is past its next update"},
    [JPKI_ERR_CRL_NOT_YET_VALID] = {"crl_not_yet_valid",
        "CRL is not yet valid"},
    [JPKI_ERR_REVOKED] = {"cert_revoked", "certificate is revoked"},
    [JPKI_ERR_ON_HOLD] = {"cert_on_hold",
        "certificate is suspended (certificateHold)"},
    [JPKI_ERR_REVOCATION_UNKNOWN] = {"cert_status_unknown",
        "revocation status of the certificate is unknown"},
    [JPKI_ERR_REVOCATION_UNAVAILABLE] = {"revocation_unavailable",
        "revocation data is unavailable or stale"},
    [JPKI_ERR_SESSION_FORMAT] = {"session_malformed",
        "session cookie is malformed"},
    [JPKI_ERR_SESSION_KEY] = {"session_unknown_key",
        "session cookie was sealed with an unknown key"},
    [JPKI_ERR_SESSION_MAC] = {"session_tampered",
        "session cookie failed authentication"},
    [JPKI_ERR_SESSION_EXPIRED] = {"session_expired", "session has expired"},
    [JPKI_ERR_SESSION_IDLE] = {"session_idle_timeout",
        "session idle timeout"},
    [JPKI_ERR_SESSION_LOGGED_OUT] = {"session_logged_out",
        "session was logged out"},
    [JPKI_ERR_NOT_MAPPED] = {"account_not_mapped",
        "certificate is not mapped to an account"},
    [JPKI_ERR_ACCOUNT_MISMATCH] = {"account_mismatch",
        "account does not match the certificate"},
    [JPKI_ERR_STORE] = {"store_error", "store error"},
    [JPKI_ERR_STORE_FULL] = {"store_full", "store is full"},
    [JPKI_ERR_IO] = {"io_error", "I/O error"},
    [JPKI_ERR_TIMEOUT] = {"timeout", "timed out"},
    [JPKI_ERR_BAD_REQUEST] = {"bad_request", "bad request"},
    [JPKI_ERR_METHOD] = {"method_not_allowed", "method not allowed"},
    [JPKI_ERR_UNAUTHENTICATED] = {"unauthenticated",
        "authentication required"},
    [JPKI_ERR_NOT_FOUND] = {"not_found", "no such endpoint"},
    [JPKI_ERR_CROSS_ORIGIN] = {"cross_origin",
        "login and logout are accepted from the site's own pages only"},
    [JPKI_ERR_THROTTLED] = {"too_many_attempts",
        "too many failed logins; try again later"},
    [JPKI_ERR_BUSY] = {"busy", "too many logins in progress; try again"},
    [JPKI_ERR_NO_CLIENT_CERT] = {"no_client_cert",
        "no client certificate was presented in the TLS handshake"},
    [JPKI_ERR_TLS_VERSION] = {"tls_version",
        "a login by client certificate needs TLS 1.2: the card signs only "
        "with PKCS#1 v1.5, which TLS 1.3 does not allow"},
    [JPKI_ERR_FLOW_UNKNOWN] = {"flow_unknown",
        "no sign-in is waiting for this code: it expired, was used, or was "
        "never started"},
    [JPKI_ERR_FLOW_MISMATCH] = {"flow_mismatch",
        "this sign-in was started in another browser"},
    [JPKI_ERR_FORBIDDEN] = {"forbidden",
        "this address may not use the admin API"},
    [JPKI_ERR_TOKEN_INVALID] = {"enroll_token_invalid",
        "the enrollment token is malformed or not this site's"},
    [JPKI_ERR_TOKEN_EXPIRED] = {"enroll_token_expired",
        "the enrollment token has expired: sign in again"},
    [JPKI_ERR_TOKEN_USED] = {"enroll_token_used",
        "the enrollment token was already redeemed"},
    [JPKI_ERR_CERT_BOUND] = {"cert_bound_elsewhere",
        "the certificate is bound to another account"},
    [JPKI_ERR_ACCOUNT_FULL] = {"account_full",
        "the account has as many certificates as it can hold"},
    [JPKI_ERR_NOT_BOUND] = {"not_bound",
        "no account is bound to this certificate"},
    [JPKI_ERR_MAP_FILE] = {"mapping_file",
        "this site's mappings are its mapping file (jpkictl map add)"},
    [JPKI_ERR_ACCOUNT_NOT_ALLOWED] = {"account_not_allowed",
        "this account may not use this resource"},
    [JPKI_ERR_ISSUER_NOT_ALLOWED] = {"issuer_not_allowed",
        "certificates of this issuer may not use this resource"},
};

const char *jpki_reason(jpki_err e)
{
    if ((unsigned)e >= JPKI__ERR_COUNT || errtab[e].reason == NULL)
        return "unknown_error";
    return errtab[e].reason;
}

const char *jpki_strerror(jpki_err e)
{
    if ((unsigned)e >= JPKI__ERR_COUNT || errtab[e].msg == NULL)
        return "unknown error";
    return errtab[e].msg;
}

size_t jpki_error_json(jpki_err e, char *buf, size_t len)
{
    int n = snprintf(buf, len, "{\"error\":\"%s\",\"message\":\"%s\"}",
                     jpki_reason(e), jpki_strerror(e));
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

const jpki_header jpki_answer_headers[] = {
    {"Cache-Control", "no-store"},
    {"X-Content-Type-Options", "nosniff"},
    {NULL, NULL}
};

const jpki_header jpki_pass_cookie_headers[] = {
    {"Cache-Control", "private"},
    {NULL, NULL}
};

const char *jpki_reason_name(int reason)
{
    static const char *const names[] = {
        "unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
        "superseded", "cessationOfOperation", "certificateHold", NULL,
        "removeFromCRL", "privilegeWithdrawn", "aACompromise"};
    if (reason < 0 || reason > 10 || names[reason] == NULL)
        return "none";
    return names[reason];
}
