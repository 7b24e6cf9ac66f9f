/* tap.h - a tiny TAP producer for the C unit tests (run by prove). */
#ifndef JPKI_TAP_H
#define JPKI_TAP_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) do {                                        \
        long long g_ = (long long)(got), w_ = (long long)(want);           \
        if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__))            \
            printf("#   got %lld, want %lld\n", g_, w_);                   \
    } while (0)
#define is_str(got, want, ...) do {                                        \
        const char *g_ = (got), *w_ = (want);                              \
        int e_ = g_ && w_ && strcmp(g_, w_) == 0;                          \
        if (!tap_ok(e_, __FILE__, __LINE__, __VA_ARGS__))                  \
            printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)",       \
                   w_ ? w_ : "(null)");                                    \
    } while (0)

__attribute__((format(printf, 4, 5)))
static int tap_ok(int c, const char *f, int l, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%s %d - ", c ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!c) {
        tap_failed++;
        printf("#   failed at %s line %d\n", f, l);
    }
    fflush(stdout);
    return c;
}

__attribute__((unused)) static void diag(const char *m) { printf("# %s\n", m); }

static int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

/* Test data directory (the test PKI): $JPKI_TEST_PKI or build/pki. */
static const char *tap_pki_dir(void)
{
    const char *d = getenv("JPKI_TEST_PKI");
    return d && *d ? d : "build/pki";
}

__attribute__((unused)) static char *tap_path(const char *name)
{
    static char buf[8][1024];
    static int i;
    char *b = buf[i++ & 7];
    snprintf(b, sizeof(buf[0]), "%s/%s", tap_pki_dir(), name);
    return b;
}
#endif
