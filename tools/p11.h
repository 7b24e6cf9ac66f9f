/*
 * p11.h - the PKCS#11 side of jpki-login: a module loaded with dlopen(),
 * one token, one session, the user logged in, one certificate and its
 * private key, one signature.  No PKCS#11 type leaks out of p11.c.
 *
 * Every call returns a p11_rc and, when it is not P11_OK, a sentence in
 * err (no PIN, no serial number, no key material in it).  The rc is the
 * exit status jpki-login gives for the failure.
 */
#ifndef JPKI_P11_H
#define JPKI_P11_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    P11_OK = 0,
    P11_USAGE = 2,        /* the command line must say more (--token, --id) */
    P11_TOKEN = 3         /* module, token, PIN, certificate or key problem */
} p11_rc;

/* How the chosen token wants its user logged in. */
typedef enum {
    P11_LOGIN_PIN,        /* C_Login with a PIN */
    P11_LOGIN_PINPAD,     /* the PIN is typed on the reader */
    P11_LOGIN_NONE        /* no login needed */
} p11_login_kind;

typedef enum { P11_MECH_RSA_PKCS, P11_MECH_ECDSA } p11_mech;

#define P11_LABEL_MAX  64          /* token / object labels kept (bytes) */
#define P11_ID_MAX     64          /* CKA_ID bytes */
#define P11_CERT_MAX   (32 * 1024) /* CKA_VALUE of the certificate */
#define P11_SIG_MAX    1024        /* signature bytes (RSA 8192) */

typedef struct p11 p11;

/* Loads MODULE (a path for dlopen), C_Initialize. */
p11_rc p11_load(const char *module, p11 **out, char *err, size_t errlen);

/* Picks the token labelled LABEL, or (LABEL NULL) the only initialised
 * token present; several without LABEL is P11_USAGE with their labels in
 * err.  Opens a read-only session on it. */
p11_rc p11_open_token(p11 *p, const char *label, char *err, size_t errlen);

/* The chosen token: label (printable), model, login kind, PIN length
 * bounds (0 when the token does not say). */
const char *p11_token_label(const p11 *p);
const char *p11_token_model(const p11 *p);
p11_login_kind p11_login_kind_of(const p11 *p);
void p11_pin_len(const p11 *p, size_t *min, size_t *max);

/* The PIN's state, read before it is asked: P11_TOKEN when it is already
 * locked.  Else *final_try is 1 when the token says that the next wrong
 * PIN locks it (CKF_USER_PIN_FINAL_TRY: the caller asks before trying),
 * and *warning is a sentence to show before asking ("a wrong PIN was
 * entered...", "one try left...") or NULL.  A token that does not keep
 * count (SoftHSM never sets FINAL_TRY) looks the same at every try. */
p11_rc p11_pin_state(p11 *p, int *final_try, const char **warning,
                     char *err, size_t errlen);

/* C_Login(CKU_USER).  PIN NULL for a PIN pad.  The caller wipes the PIN. */
p11_rc p11_login(p11 *p, const char *pin, size_t pinlen, char *err,
                 size_t errlen);

/* The certificate to sign in with: the one with CKA_ID ID (IDLEN > 0), or
 * labelled LABEL, or the only certificate whose private key (same CKA_ID)
 * is on the token.  *der (malloc'ed, P11_CERT_MAX at most) is its DER;
 * its CKA_ID and label are kept for p11_sign and p11_cert_desc. */
p11_rc p11_find_cert(p11 *p, const uint8_t *id, size_t idlen,
                     const char *label, uint8_t **der, size_t *derlen,
                     char *err, size_t errlen);

/* "id=01 label=auth" of the certificate found. */
const char *p11_cert_desc(const p11 *p);

/* C_Sign with the private key of the certificate found. */
p11_rc p11_sign(p11 *p, p11_mech mech, const uint8_t *in, size_t inlen,
                uint8_t *sig, size_t *siglen, char *err, size_t errlen);

/* Logout, close the session, C_Finalize, dlclose.  NULL is fine. */
void p11_close(p11 *p);

#endif
