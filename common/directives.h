/*
 * directives.h - the simple directives of the core's table (common/conf.h:
 * one value each, its grammar, limits and default in jpki_directives[]),
 * with their names on each server and their help, listed once.  Each
 * adapter builds its own table from these lists with a macro of its own:
 *
 *   X(id, nginx name, Apache name, words, help)
 *
 * words: 1 for one value, 0 for one or more words (joined by one blank).
 * Adding such a directive is a row in jpki_directives[] (common/conf.c)
 * and a row here; the adapters' tables take it from here.  The site's own
 * directives (the secret, issuers, the store...) are listed here too.
 */
#ifndef JPKI_DIRECTIVES_H
#define JPKI_DIRECTIVES_H

#include "conf.h"
#include "siteconf.h"

/* The site's own directives, read by jpki_siteconf_set (siteconf.h): each
 * adapter has one setter for them all.
 *
 *   X(jpki_sc_directive, nginx name, Apache name, words, help)
 *
 * words: how many words nginx's table takes (TAKE1, TAKE12, 1MORE, 2MORE:
 * its NGX_CONF_<words>); Apache takes any and the core counts them. */
#define JPKI_SITE_OWN_DIRECTIVES(X)                                           \
    X(JPKI_SC_SECRET, "jpki_secret_file", "JPKISecretFile", TAKE1,            \
      "the site secret file (secret <hex>, key <id> <hex> [current])")        \
    X(JPKI_SC_ISSUER, "jpki_issuer", "JPKIIssuer", 2MORE,                     \
      "NAME ca=FILE[,FILE...] [ocsp=http://...] [crl=FILE|DIR]... "           \
      "[policy=OID|none]")                                                    \
    X(JPKI_SC_STORE, "jpki_store", "JPKIStore", 1MORE,                        \
      "shm [zone=NAME] [size=10M] | redis=HOST:PORT|unix:/path | "            \
      "sentinel=HOST:PORT,... master=NAME; [db=N] [user=U] "                  \
      "[password_file=FILE] [keepalive=N] [tls=on tls_ca=FILE "               \
      "[tls_name=NAME] [tls_cert=FILE tls_key=FILE]] [mirror=1M]")            \
    X(JPKI_SC_CRL_ZONE, "jpki_crl_zone", "JPKICRLZone", TAKE1,                \
      "off | SIZE | NAME:SIZE (e.g. 64M): CRL files parsed once, by one "     \
      "process, into shared memory every worker or child answers from "       \
      "[off]")                                                                \
    X(JPKI_SC_MAP, "jpki_map_file", "JPKIMapFile", TAKE1,                     \
      "mappings \"<cert_id> <account>\" (re-read when it changes)")           \
    X(JPKI_SC_AUDIT_LOG, "jpki_audit_log", "JPKIAuditLog", TAKE12,            \
      "FILE [key_file=FILE]: one HMAC-chained JSON line per verification "    \
      "and admin action (absolute path) [none: the error log]")

/* A site's (nginx http or server block, Apache server or virtual host). */
#define JPKI_SITE_DIRECTIVES(X)                                               \
    X(JPKI_D_REDIS_TIMEOUT, "jpki_redis_timeout", "JPKIRedisTimeout", 1,      \
      "bound of one Redis round trip [1s]")                                   \
    X(JPKI_D_REDIS_CONNECT_TIMEOUT, "jpki_redis_connect_timeout",             \
      "JPKIRedisConnectTimeout", 1, "bound of a Redis connect [1s]")          \
    X(JPKI_D_OCSP_TIMEOUT, "jpki_ocsp_timeout", "JPKIOCSPTimeout", 1,         \
      "bound of an OCSP exchange, connect and whole answer [3s]")             \
    X(JPKI_D_CRL_GRACE, "jpki_crl_grace", "JPKICRLGrace", 1,                  \
      "a CRL is stale after nextUpdate + this; auto: thisUpdate + 72 h "      \
      "[auto]")                                                               \
    X(JPKI_D_CHALLENGE_TTL, "jpki_challenge_ttl", "JPKIChallengeTTL", 1,      \
      "challenge validity [120s]")                                            \
    X(JPKI_D_CLOCK_SKEW, "jpki_clock_skew", "JPKIClockSkew", 1,               \
      "tolerance for OCSP/CRL times [300s]")                                  \
    X(JPKI_D_OCSP_CACHE_GOOD, "jpki_ocsp_cache_good", "JPKIOCSPCacheGood",    \
      1, "cache of a \"good\" answer at most [1h]")                           \
    X(JPKI_D_OCSP_CACHE_HOLD, "jpki_ocsp_cache_hold", "JPKIOCSPCacheHold",    \
      1, "cache of a certificateHold answer [5m]")                            \
    X(JPKI_D_OCSP_CACHE_REVOKED, "jpki_ocsp_cache_revoked",                   \
      "JPKIOCSPCacheRevoked", 1, "cache of a final revocation [30d]")         \
    X(JPKI_D_CRL_POINTER_TTL, "jpki_crl_pointer_ttl", "JPKICRLPointerTTL",    \
      1, "how long a process keeps the pointer of a CRL in Redis [10s]")      \
    X(JPKI_D_OCSP_NONCE, "jpki_ocsp_nonce", "JPKIOCSPNonce", 1,               \
      "on: OCSP requests carry a nonce the answer must echo (a responder "    \
      "that ignores nonces then fails every query) [off]")

/* A location's (merged down: nginx http, server, location; Apache server,
 * <Location>, <Directory>). */
#define JPKI_LOCATION_DIRECTIVES(X)                                           \
    X(JPKI_D_HEADER, "jpki_header", "JPKIHeader", 1,                          \
      "request header carrying the account upstream [X-JPKI-Account]")        \
    X(JPKI_D_SESSION_LIFETIME, "jpki_session_lifetime",                       \
      "JPKISessionLifetime", 1, "session lifetime [8h]")                      \
    X(JPKI_D_SESSION_IDLE, "jpki_session_idle", "JPKISessionIdle", 1,         \
      "idle timeout, 0 for none [30m]")                                       \
    X(JPKI_D_RECHECK_INTERVAL, "jpki_recheck_interval",                       \
      "JPKIRecheckInterval", 1,                                               \
      "revocation re-check of sessions, 0 for every request [5m]")            \
    X(JPKI_D_COOKIE_NAME, "jpki_cookie_name", "JPKICookieName", 1,            \
      "session cookie name [jpki_session]")                                   \
    X(JPKI_D_COOKIE_PATH, "jpki_cookie_path", "JPKICookiePath", 1,            \
      "session cookie path [/]")                                              \
    X(JPKI_D_COOKIE_SAMESITE, "jpki_cookie_samesite", "JPKICookieSameSite",   \
      1, "Strict, Lax or None [Lax]")                                         \
    X(JPKI_D_COOKIE_SECURE, "jpki_cookie_secure", "JPKICookieSecure", 1,      \
      "Secure attribute of the session cookie [on]")                          \
    X(JPKI_D_PASS_COOKIE, "jpki_pass_cookie", "JPKIPassCookie", 1,            \
      "the session cookie goes on to the upstream in Cookie [off]")           \
    X(JPKI_D_REVOCATION, "jpki_revocation", "JPKIRevocation", 1,              \
      "ocsp, crl, ocsp,crl or crl,ocsp: the sources asked, in order "         \
      "[ocsp]")                                                               \
    X(JPKI_D_FAILURE, "jpki_failure", "JPKIFailure", 1,                       \
      "closed or open: what to do without revocation data [closed]")          \
    X(JPKI_D_LOGIN_PAGE, "jpki_login_page", "JPKILoginPage", 1,               \
      "where browsers go when not signed in [none: 401]")                     \
    X(JPKI_D_TRUSTED_ORIGINS, "jpki_trusted_origins", "JPKITrustedOrigins",   \
      0, "origins (https://host[:port]) besides the gate's own whose pages "  \
      "may post logins and logouts [none]")                                   \
    X(JPKI_D_REQUIRE_ACCOUNT, "jpki_require_account", "JPKIRequireAccount",   \
      1, "the login must name the account [off]")                             \
    X(JPKI_D_LOGIN_METHODS, "jpki_login_methods", "JPKILoginMethods", 0,      \
      "what the gate's login page offers: tls, device, or none "             \
      "[tls device]")                                                         \
    X(JPKI_D_ENROLL_PAGE, "jpki_enroll_page", "JPKIEnrollPage", 1,            \
      "where a card no account has yet is sent, with an enrollment token "  \
      "[none: 403 account_not_mapped]")                                      \
    X(JPKI_D_ADMIN_ALLOW, "jpki_admin_allow", "JPKIAdminAllow", 0,            \
      "the client addresses and networks the admin API answers [none]")     \
    X(JPKI_D_ENROLL_TTL, "jpki_enroll_ttl", "JPKIEnrollTTL", 1,              \
      "how long an enrollment token can be redeemed, 5s..1h [10m]")          \
    X(JPKI_D_STORE_OUTAGE, "jpki_store_outage", "JPKIStoreOutage", 1,         \
      "closed or sessions: while Redis does not answer, a session whose "     \
      "re-check is not due passes (sessions) or not [closed]")

/* The name of directive id on server srv (for tests and messages). */
const char *jpki_directive_name(jpki_server srv, jpki_directive_id id);

#endif /* JPKI_DIRECTIVES_H */
