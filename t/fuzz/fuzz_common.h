/* fuzz_common.h - what the libFuzzer targets share: a finished context over
 * the test PKI ($JPKI_TEST_PKI, as the unit tests) built once, and the
 * test time (inside the test certificates' validity). */
#ifndef JPKI_FUZZ_COMMON_H
#define JPKI_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jpki.h"
#include "../unit/tap.h"
#include "../unit/pki.h"

static jpki_ctx *fz_ctx;
static time_t fz_now;

static void fz_quiet(void *ud, jpki_log_level level, const char *msg)
{
    (void)ud; (void)level; (void)msg;
}

static void fz_init(void)
{
    if (fz_ctx != NULL)
        return;
    fz_ctx = tap_pki_ctx(7, NULL, NULL);
    if (fz_ctx == NULL) {
        fprintf(stderr, "fuzz: no test PKI in %s (make pki)\n", tap_pki_dir());
        exit(1);
    }
    jpki_ctx_set_log(fz_ctx, fz_quiet, NULL);
    fz_now = time(NULL);
}

/* The file NAME of the test PKI, whole (NULL when missing). */
__attribute__((unused))
static uint8_t *fz_file(const char *name, size_t *len)
{
    uint8_t *d = NULL;
    return jpki_load_file(tap_path(name), 1 << 24, &d, len) == JPKI_OK ? d
                                                                      : NULL;
}
#endif
