/*
 * conf_issuer.h - the grammar of the issuer directive, parsed once for
 * nginx (`jpki_issuer NAME ...;`) and Apache (`JPKIIssuer NAME ...`):
 *
 *   NAME ca=FILE[,FILE...] [ca=...] [ocsp=http://HOST[:PORT][/PATH]]
 *        (HOST: a name, an IPv4 address or [IPv6] without a zone)
 *        [crl=FILE|DIR]... [policy=OID|none]
 *
 * NAME: 1..63 letters, digits, _ . - ; at most JPKI_ISSUER_CA_MAX CA
 * files and JPKI_ISSUER_CRL_MAX crl= sources (a file, or a directory: its
 * *.crl and *.pem files); ocsp= and policy= once.  The words are checked
 * here, with the same sentences on both servers; the adapter then makes
 * the paths absolute (its server root), loads the files and sets up the
 * OCSP connection.
 */
#ifndef JPKI_CONF_ISSUER_H
#define JPKI_CONF_ISSUER_H

#include "jpki.h"

#define JPKI_ISSUER_CA_MAX   8
#define JPKI_ISSUER_CRL_MAX  8

typedef struct {
    char name[64];                      /* 1..63 characters */
    char *ca[JPKI_ISSUER_CA_MAX];       /* as written */
    size_t n_ca;
    char *crl[JPKI_ISSUER_CRL_MAX];     /* files or directories */
    size_t n_crl;
    char *ocsp;                         /* NULL: none */
    char *ocsp_hostport;                /* HOST[:PORT] of ocsp */
    char *ocsp_path;                    /* "/..." of ocsp */
    char *ocsp_host;                    /* HOST to resolve (no brackets) */
    unsigned ocsp_port;                 /* PORT, 80 when none */
    char *ocsp_host_header;             /* the Host header: HOST, or
                                           HOST:PORT off port 80 (IPv6 in
                                           brackets) */
    char *policy;                       /* NULL: the JPKI default; "": none */
} jpki_conf_issuer;

/* Parses the words after the directive's name (argv[0] is NAME).  On an
 * error, err receives the sentence (without the directive's name) and
 * the spec is freed.  spec: zeroed by the call. */
jpki_err jpki_conf_issuer_parse(jpki_conf_issuer *spec,
                                const char *const *argv, size_t argc,
                                char *err, size_t errlen);
void jpki_conf_issuer_free(jpki_conf_issuer *spec);
/* Makes the paths (ca=, crl=) absolute: abs(ud, path) returns the
 * server's absolute path (any memory: copied) or NULL (an error). */
jpki_err jpki_conf_issuer_paths(jpki_conf_issuer *spec,
                                const char *(*abs)(void *ud, const char *p),
                                void *ud, char *err, size_t errlen);
/* Sets up issuer is of ctx from spec whose paths are absolute: its CA
 * files, OCSP URL, CRL source, policy.  err: why not. */
jpki_err jpki_conf_issuer_apply(const jpki_conf_issuer *spec,
                                jpki_issuer *is, char *err, size_t errlen);
/* The checks of a complete spec at configuration time (paths absolute):
 * the files load; for an issuer with crl= files, warn(ud, sentence) for
 * each CA key no CRL file covers (jpki_crl_coverage_check). */
jpki_err jpki_conf_issuer_check(const jpki_conf_issuer *spec,
                                void (*warn)(void *ud, const char *msg),
                                void *ud, char *err, size_t errlen);

#endif
