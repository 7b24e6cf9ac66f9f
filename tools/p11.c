/*
 * p11.c - the PKCS#11 side of jpki-login (p11.h): dlopen() of the module,
 * C_GetFunctionList, C_Initialize, the token by label (or the only one),
 * a read-only session, C_Login(CKU_USER), the certificate and its private
 * key (same CKA_ID), C_Sign.
 *
 * Bounded everywhere: at most MAX_SLOTS slots and MAX_OBJS objects of a
 * kind are looked at, attribute values are read into buffers of known size
 * (a token announcing more is an error, not an allocation).  Labels are
 * kept printable (other bytes become '?') so that they can be shown.
 *
 * With OpenSC and a My Number Card: the user-authentication certificate and
 * key have CKA_ID 01 ("User Authentication Certificate" / "... Key"), the
 * digital-signature ones 02; the CA certificates (03, 04) have no key.
 */
#include "p11.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLOTS 64
#define MAX_OBJS  64

struct p11 {
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    int initialized;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE session;
    int have_session, logged_in;
    CK_TOKEN_INFO info;
    char label[P11_LABEL_MAX + 1];        /* of the token */
    char model[17];
    CK_OBJECT_HANDLE key;
    char desc[2 * P11_ID_MAX + P11_LABEL_MAX + 32];   /* of the cert */
};

/* ---- small helpers ------------------------------------------------ */

static const char *rv_name(CK_RV rv)
{
    static const struct { CK_RV rv; const char *name; } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
        {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].rv == rv)
            return names[i].name;
    return "CKR_?";
}

/* "C_X failed: CKR_NAME (0x..)" */
static p11_rc fail(char *err, size_t errlen, const char *what, CK_RV rv)
{
    snprintf(err, errlen, "%s failed: %s (0x%lx)", what, rv_name(rv),
             (unsigned long)rv);
    return P11_TOKEN;
}

/* A blank-padded PKCS#11 text field as a printable C string. */
static void fixed_text(const unsigned char *in, size_t n, char *out,
                       size_t outlen)
{
    size_t i, k = 0;

    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
        n--;
    for (i = 0; i < n && k + 1 < outlen; i++)
        out[k++] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
    out[k] = '\0';
}

/* ---- module ------------------------------------------------------- */

p11_rc p11_load(const char *module, p11 **out, char *err, size_t errlen)
{
    CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
    p11 *p;
    CK_RV rv;
    const char *e;

    *out = NULL;
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return P11_TOKEN;
    }
    if ((p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        e = dlerror();
        snprintf(err, errlen, "cannot load the PKCS#11 module %.200s: %.200s",
                 module, e != NULL ? e : "dlopen failed");
        free(p);
        return P11_TOKEN;
    }
    *(void **)&get_list = dlsym(p->dl, "C_GetFunctionList");
    if (get_list == NULL) {
        snprintf(err, errlen, "%.200s is not a PKCS#11 module (no "
                 "C_GetFunctionList)", module);
        p11_close(p);
        return P11_TOKEN;
    }
    rv = get_list(&p->f);
    if (rv != CKR_OK || p->f == NULL) {
        p->f = NULL;
        p11_close(p);
        return fail(err, errlen, "C_GetFunctionList", rv);
    }
    rv = p->f->C_Initialize(NULL);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        p11_close(p);
        return fail(err, errlen, "C_Initialize", rv);
    }
    p->initialized = rv == CKR_OK;
    *out = p;
    return P11_OK;
}

/* ---- token -------------------------------------------------------- */

p11_rc p11_open_token(p11 *p, const char *label, char *err, size_t errlen)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG nslots = MAX_SLOTS, i;
    CK_TOKEN_INFO ti;
    char names[512] = "", name[P11_LABEL_MAX + 1];
    size_t ntok = 0, nmatch = 0, used = 0;
    CK_RV rv;

    rv = p->f->C_GetSlotList(CK_TRUE, slots, &nslots);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        snprintf(err, errlen, "more than %d slots with a token", MAX_SLOTS);
        return P11_TOKEN;
    }
    if (rv != CKR_OK)
        return fail(err, errlen, "C_GetSlotList", rv);
    for (i = 0; i < nslots; i++) {
        if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK
            || !(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        fixed_text(ti.label, sizeof(ti.label), name, sizeof(name));
        ntok++;
        if (used < sizeof(names)) {
            int n = snprintf(names + used, sizeof(names) - used, "%s\"%s\"",
                             used ? ", " : "", name);
            used = n < 0 ? sizeof(names) : used + (size_t)n;
        }
        if (label != NULL && strcmp(label, name) != 0)
            continue;
        if (nmatch++ == 0) {
            p->slot = slots[i];
            p->info = ti;
        }
    }
    if (ntok == 0) {
        snprintf(err, errlen, "no token present (is the card in the "
                 "reader?)");
        return P11_TOKEN;
    }
    if (label != NULL && nmatch == 0) {
        snprintf(err, errlen, "no token labelled \"%.64s\"; tokens: %s",
                 label, names);
        return P11_TOKEN;
    }
    if (nmatch > 1 && label != NULL) {
        snprintf(err, errlen, "%zu tokens are labelled \"%.64s\"", nmatch,
                 label);
        return P11_USAGE;
    }
    if (nmatch > 1) {
        snprintf(err, errlen, "%zu tokens present, choose one with --token "
                 "LABEL: %s", nmatch, names);
        return P11_USAGE;
    }
    fixed_text(p->info.label, sizeof(p->info.label), p->label,
               sizeof(p->label));
    fixed_text(p->info.model, sizeof(p->info.model), p->model,
               sizeof(p->model));
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL,
                             &p->session);
    if (rv != CKR_OK)
        return fail(err, errlen, "C_OpenSession", rv);
    p->have_session = 1;
    return P11_OK;
}

const char *p11_token_label(const p11 *p) { return p->label; }
const char *p11_token_model(const p11 *p) { return p->model; }

p11_login_kind p11_login_kind_of(const p11 *p)
{
    if (p->info.flags & CKF_PROTECTED_AUTHENTICATION_PATH)
        return P11_LOGIN_PINPAD;
    return p->info.flags & CKF_LOGIN_REQUIRED ? P11_LOGIN_PIN
                                              : P11_LOGIN_NONE;
}

void p11_pin_len(const p11 *p, size_t *min, size_t *max)
{
    CK_ULONG lo = p->info.ulMinPinLen, hi = p->info.ulMaxPinLen;

    /* some tokens leave these 0 or CK_UNAVAILABLE_INFORMATION */
    if (hi == 0 || hi == CK_UNAVAILABLE_INFORMATION || lo > hi || hi > 4096) {
        *min = *max = 0;
        return;
    }
    *min = (size_t)lo;
    *max = (size_t)hi;
}

p11_rc p11_pin_state(p11 *p, int *final_try, const char **warning,
                     char *err, size_t errlen)
{
    CK_TOKEN_INFO ti;

    *warning = NULL;
    *final_try = 0;
    if (p->f->C_GetTokenInfo(p->slot, &ti) != CKR_OK)
        return P11_OK;                  /* C_Login will tell */
    if (ti.flags & CKF_USER_PIN_LOCKED) {
        snprintf(err, errlen, "the PIN of token \"%s\" is locked (too many "
                 "wrong tries); not tried", p->label);
        return P11_TOKEN;
    }
    /* only FINAL_TRY means that a wrong PIN locks: COUNT_LOW says that
     * one was wrong since the last good one (a card of 3 tries: 2 left) */
    *final_try = (ti.flags & CKF_USER_PIN_FINAL_TRY) != 0;
    if (*final_try)
        *warning = "one try left before the PIN locks";
    else if (ti.flags & CKF_USER_PIN_COUNT_LOW)
        *warning = "a wrong PIN was entered since the last good one";
    return P11_OK;
}

p11_rc p11_login(p11 *p, const char *pin, size_t pinlen, char *err,
                 size_t errlen)
{
    CK_TOKEN_INFO ti;
    const char *after = "";
    CK_RV rv;

    rv = p->f->C_Login(p->session, CKU_USER, (CK_UTF8CHAR_PTR)pin,
                       pin != NULL ? (CK_ULONG)pinlen : 0);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        p->logged_in = rv == CKR_OK;
        return P11_OK;
    }
    if (p->f->C_GetTokenInfo(p->slot, &ti) == CKR_OK) {
        if (ti.flags & CKF_USER_PIN_LOCKED)
            after = "; the PIN is now locked";
        else if (ti.flags & CKF_USER_PIN_FINAL_TRY)
            after = "; one try left before the PIN locks";
        else if (ti.flags & CKF_USER_PIN_COUNT_LOW)
            after = "; few tries left";
    }
    switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
        snprintf(err, errlen, "PIN refused by the token \"%s\"%s", p->label,
                 after);
        return P11_TOKEN;
    case CKR_PIN_LOCKED:
        snprintf(err, errlen, "the PIN of token \"%s\" is locked (too many "
                 "wrong tries)", p->label);
        return P11_TOKEN;
    case CKR_PIN_EXPIRED:
        snprintf(err, errlen, "the PIN of token \"%s\" has expired: change "
                 "it first", p->label);
        return P11_TOKEN;
    case CKR_USER_PIN_NOT_INITIALIZED:
        snprintf(err, errlen, "token \"%s\" has no user PIN set", p->label);
        return P11_TOKEN;
    case CKR_FUNCTION_CANCELED:
        snprintf(err, errlen, "PIN entry cancelled");
        return P11_TOKEN;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
        snprintf(err, errlen, "the token was removed");
        return P11_TOKEN;
    default:
        return fail(err, errlen, "C_Login", rv);
    }
}

/* ---- objects ------------------------------------------------------ */

/* Handles of the objects matching TMPL (at most MAX_OBJS). */
static p11_rc find(p11 *p, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
                   CK_OBJECT_HANDLE *h, CK_ULONG *n, char *err,
                   size_t errlen)
{
    CK_RV rv;

    *n = 0;
    rv = p->f->C_FindObjectsInit(p->session, tmpl, ntmpl);
    if (rv != CKR_OK)
        return fail(err, errlen, "C_FindObjectsInit", rv);
    rv = p->f->C_FindObjects(p->session, h, MAX_OBJS, n);
    p->f->C_FindObjectsFinal(p->session);
    if (rv != CKR_OK || *n > MAX_OBJS) {
        *n = 0;
        return fail(err, errlen, "C_FindObjects", rv);
    }
    return P11_OK;
}

/* Attribute TYPE of object H into BUF (CAP bytes); -1 when absent, not
 * readable or larger than CAP. */
static int get_attr(p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                    void *buf, size_t cap, size_t *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};

    if (p->f->C_GetAttributeValue(p->session, h, &a, 1) != CKR_OK
        || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)
        return -1;
    a.pValue = buf;
    if (p->f->C_GetAttributeValue(p->session, h, &a, 1) != CKR_OK
        || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > cap)
        return -1;
    *len = (size_t)a.ulValueLen;
    return 0;
}

typedef struct {
    CK_OBJECT_HANDLE h, key;
    uint8_t id[P11_ID_MAX];
    size_t idlen;
    char label[P11_LABEL_MAX + 1];
} cert_t;

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void describe(const cert_t *c, char *out, size_t outlen)
{
    char h[2 * P11_ID_MAX + 1];

    hex(c->id, c->idlen, h);
    snprintf(out, outlen, "id=%s label=\"%s\"", c->idlen ? h : "(none)",
             c->label);
}

/* The private key with CKA_ID ID (the first one), 0 when none. */
static p11_rc key_of(p11 *p, const uint8_t *id, size_t idlen,
                     CK_OBJECT_HANDLE *key, char *err, size_t errlen)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)},
                         {CKA_ID, (void *)id, (CK_ULONG)idlen}};
    CK_OBJECT_HANDLE h[MAX_OBJS];
    CK_ULONG n;
    p11_rc rc;

    *key = CK_INVALID_HANDLE;
    if (idlen == 0)                     /* no id: nothing ties a key to it */
        return P11_OK;
    if ((rc = find(p, t, 2, h, &n, err, errlen)) != P11_OK)
        return rc;
    if (n > 0)
        *key = h[0];
    return P11_OK;
}

p11_rc p11_find_cert(p11 *p, const uint8_t *id, size_t idlen,
                     const char *label, uint8_t **der, size_t *derlen,
                     char *err, size_t errlen)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE, kcls = CKO_PRIVATE_KEY;
    CK_CERTIFICATE_TYPE ctype = CKC_X_509;
    CK_ATTRIBUTE t[3] = {{CKA_CLASS, &cls, sizeof(cls)},
                         {CKA_CERTIFICATE_TYPE, &ctype, sizeof(ctype)},
                         {0, NULL, 0}};
    CK_ATTRIBUTE kt[1] = {{CKA_CLASS, &kcls, sizeof(kcls)}};
    CK_OBJECT_HANDLE h[MAX_OBJS];
    CK_ULONG n, nkeys, i;
    cert_t *c = NULL, *pick = NULL;
    size_t len, ncand = 0, nt = 2;
    char list[768] = "", one[2 * P11_ID_MAX + P11_LABEL_MAX + 32];
    size_t used = 0;
    p11_rc rc;

    *der = NULL;
    if (idlen > 0) {
        t[2].type = CKA_ID;
        t[2].pValue = (void *)id;
        t[2].ulValueLen = (CK_ULONG)idlen;
        nt = 3;
    } else if (label != NULL) {
        t[2].type = CKA_LABEL;
        t[2].pValue = (void *)label;
        t[2].ulValueLen = (CK_ULONG)strlen(label);
        nt = 3;
    }
    if ((rc = find(p, t, nt, h, &n, err, errlen)) != P11_OK)
        return rc;
    if (n > 0 && (c = calloc(n, sizeof(*c))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return P11_TOKEN;
    }
    for (i = 0; i < n; i++) {
        unsigned char lb[P11_LABEL_MAX];

        c[i].h = h[i];
        if (get_attr(p, h[i], CKA_ID, c[i].id, sizeof(c[i].id),
                     &c[i].idlen) != 0)
            c[i].idlen = 0;
        if (get_attr(p, h[i], CKA_LABEL, lb, sizeof(lb), &len) != 0)
            len = 0;
        fixed_text(lb, len, c[i].label, sizeof(c[i].label));
        if ((rc = key_of(p, c[i].id, c[i].idlen, &c[i].key, err, errlen))
            != P11_OK)
            goto out;
        if (c[i].key != CK_INVALID_HANDLE) {
            ncand++;
            if (pick == NULL)
                pick = &c[i];
            describe(&c[i], one, sizeof(one));
            if (used < sizeof(list)) {
                int k = snprintf(list + used, sizeof(list) - used, "%s%s",
                                 used ? "; " : "", one);
                used = k < 0 ? sizeof(list) : used + (size_t)k;
            }
        }
    }
    rc = P11_TOKEN;
    if (nt == 3 && n == 0) {
        char hx[2 * P11_ID_MAX + 1];

        hex(id, idlen, hx);
        snprintf(err, errlen, "token \"%s\" has no certificate with %s "
                 "\"%.64s\"", p->label, idlen ? "id" : "label",
                 idlen ? hx : label);
    } else if (nt == 3 && ncand == 0) {
        describe(&c[0], one, sizeof(one));
        snprintf(err, errlen, "token \"%s\": certificate %s has no private "
                 "key with its CKA_ID", p->label, one);
    } else if (n == 0) {
        if (find(p, kt, 1, h, &nkeys, err, errlen) == P11_OK && nkeys > 0)
            snprintf(err, errlen, "token \"%s\" has a private key but no "
                     "certificate (write the certificate to the token with "
                     "the key's CKA_ID)", p->label);
        else
            snprintf(err, errlen, "token \"%s\" has no certificate and no "
                     "private key", p->label);
    } else if (ncand == 0) {
        snprintf(err, errlen, "token \"%s\": no certificate has a private "
                 "key with its CKA_ID", p->label);
    } else if (ncand > 1) {
        snprintf(err, errlen, "token \"%s\" has %zu certificates with a "
                 "private key, choose one with --id HEX or --label LABEL: %s",
                 p->label, ncand, list);
        rc = P11_USAGE;
    } else {
        rc = P11_OK;
    }
    if (rc != P11_OK)
        goto out;
    *der = malloc(P11_CERT_MAX);
    if (*der == NULL
        || get_attr(p, pick->h, CKA_VALUE, *der, P11_CERT_MAX, derlen) != 0
        || *derlen == 0) {
        free(*der);
        *der = NULL;
        describe(pick, one, sizeof(one));
        snprintf(err, errlen, "token \"%s\": cannot read the value of "
                 "certificate %s (empty or larger than %d bytes)", p->label,
                 one, P11_CERT_MAX);
        rc = P11_TOKEN;
        goto out;
    }
    p->key = pick->key;
    describe(pick, p->desc, sizeof(p->desc));
out:
    free(c);
    return rc;
}

const char *p11_cert_desc(const p11 *p) { return p->desc; }

p11_rc p11_sign(p11 *p, p11_mech mech, const uint8_t *in, size_t inlen,
                uint8_t *sig, size_t *siglen, char *err, size_t errlen)
{
    CK_MECHANISM m = {mech == P11_MECH_ECDSA ? CKM_ECDSA : CKM_RSA_PKCS,
                      NULL, 0};
    CK_ULONG n = (CK_ULONG)*siglen;
    CK_RV rv;

    rv = p->f->C_SignInit(p->session, &m, p->key);
    if (rv != CKR_OK) {
        if (rv == CKR_MECHANISM_INVALID || rv == CKR_KEY_TYPE_INCONSISTENT
            || rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
            snprintf(err, errlen, "token \"%s\" does not sign with %s and "
                     "this key (%s)", p->label, mech == P11_MECH_ECDSA
                     ? "CKM_ECDSA" : "CKM_RSA_PKCS", rv_name(rv));
            return P11_TOKEN;
        }
        return fail(err, errlen, "C_SignInit", rv);
    }
    rv = p->f->C_Sign(p->session, (CK_BYTE_PTR)in, (CK_ULONG)inlen, sig, &n);
    if (rv == CKR_USER_NOT_LOGGED_IN) {
        snprintf(err, errlen, "token \"%s\" wants the PIN again for each "
                 "signature (CKA_ALWAYS_AUTHENTICATE): not supported",
                 p->label);
        return P11_TOKEN;
    }
    if (rv != CKR_OK)
        return fail(err, errlen, "C_Sign", rv);
    if (n == 0 || n > *siglen) {
        snprintf(err, errlen, "C_Sign returned %lu bytes", (unsigned long)n);
        return P11_TOKEN;
    }
    *siglen = (size_t)n;
    return P11_OK;
}

void p11_close(p11 *p)
{
    if (p == NULL)
        return;
    if (p->f != NULL) {
        if (p->logged_in)
            p->f->C_Logout(p->session);
        if (p->have_session)
            p->f->C_CloseSession(p->session);
        if (p->initialized)
            p->f->C_Finalize(NULL);
    }
    if (p->dl != NULL)
        dlclose(p->dl);
    memset(p, 0, sizeof(*p));
    free(p);
}
