/*
 * audit_cmds.c - jpkictl audit verify: the audit files of the gate
 * (jpki_audit_log / JPKIAuditLog, common/audit.h) checked line by line
 * against their MAC chain, in the order given (a rotated file, then the
 * one after it).  The verifier is the core's (common/audit_verify.c);
 * here the files are read, a line at a time, bounded.
 */
#include "jpkictl.h"
#include "audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

const char usage_audit[] =
"jpkictl audit verify (--secret-file FILE | --key-file FILE) [--last-seq N]\n"
"                FILE...\n"
"  Checks audit files (jpki_audit_log, JPKIAuditLog) against their MAC\n"
"  chain, in the order given (\"old new\": a rotated file first).  The key:\n"
"  the gate's site secret file, or the key_file= of the directive.  Says\n"
"  each line that is wrong, as FILE:LINE: error: ... (\"mac mismatch\n"
"  (edited)\", \"seq gap: lines N..M removed\", \"out of order\", \"inserted/\n"
"  foreign line\", \"truncated last line\", \"chain break between files\",\n"
"  \"chain restart\"), notes (the chain start, a chain going on from a file\n"
"  not given), then \"audit verify: lines=N first_seq=A last_seq=B chains=C\n"
"  errors=E ok|FAILED\".  --last-seq N: the head recorded elsewhere (a\n"
"  chain ending before it lost its last lines; without it, whole lines\n"
"  removed from the end cannot be seen in the file).\n"
"  Exit: 0 the whole chain verifies; 1 it does not; 2 usage, key or an\n"
"  unreadable file.\n\n";

static void report(void *ud, int error, const char *file, uint64_t line,
                   const char *what)
{
    (void)ud;
    if (line > 0)
        printf("%s:%llu: %s: %s\n", file, (unsigned long long)line,
               error ? "error" : "note", what);
    else
        printf("%s: %s: %s\n", file, error ? "error" : "note", what);
}

/* The lines of f into v; 0, -1 on a read error. */
static int feed(jpki_audit_verifier *v, FILE *f)
{
    char *buf = malloc(JPKI_AUDIT_LINE_MAX + 2);
    size_t n = 0;
    int c, over = 0;

    if (buf == NULL)
        return -1;
    while ((c = getc(f)) != EOF) {
        if (c == '\n') {
            jpki_audit_verify_line(v, buf, over ? JPKI_AUDIT_LINE_MAX + 1 : n,
                                   0);
            n = 0;
            over = 0;
            continue;
        }
        if (n <= JPKI_AUDIT_LINE_MAX)
            buf[n++] = (char)c;
        else
            over = 1;                 /* too long: no audit line */
    }
    if (n > 0 || over)
        jpki_audit_verify_line(v, buf, over ? JPKI_AUDIT_LINE_MAX + 1 : n, 1);
    free(buf);
    return ferror(f) ? -1 : 0;
}

static int audit_key(const args_t *a, uint8_t key[32])
{
    char err[600] = "";
    jpki_ctx *ctx;
    int ok;

    if ((a->val[O_KEY_FILE] != NULL) == (a->val[O_SECRET] != NULL)) {
        say("give one of --secret-file and --key-file");
        return -1;
    }
    if (a->val[O_KEY_FILE] != NULL) {
        if (jpki_audit_key_file(a->val[O_KEY_FILE], key, err, sizeof(err))
            == JPKI_OK)
            return 0;
        say("%s", err);
        return -1;
    }
    if ((ctx = jpki_ctx_new()) == NULL) {
        say("out of memory");
        return -1;
    }
    ok = jpki_ctx_load_secret_file(ctx, a->val[O_SECRET], err, sizeof(err))
         == JPKI_OK && jpki_audit_key_of_ctx(ctx, key);
    if (!ok)
        say("%s", err[0] ? err : "the audit key cannot be derived");
    jpki_ctx_free(ctx);
    return ok ? 0 : -1;
}

int run_audit_verify(const args_t *a)
{
    jpki_audit_verifier *v;
    jpki_audit_summary sum;
    unsigned long long last;
    uint8_t key[32];
    uint64_t errors;
    size_t i;
    FILE *f;

    if (opt_uint(a, O_LAST_SEQ, 1, UINT64_MAX / 2, 0, &last) != 0)
        return SHOW_USAGE;
    if (a->n_files == 0) {
        say("a FILE argument is required");
        return SHOW_USAGE;
    }
    if (audit_key(a, key) != 0)
        return EXIT_USAGE;
    v = jpki_audit_verifier_new(key, report, NULL);
    OPENSSL_cleanse(key, sizeof(key));
    if (v == NULL) {
        say("out of memory");
        return EXIT_USAGE;
    }
    for (i = 0; i < a->n_files; i++) {
        f = strcmp(a->files[i], "-") == 0 ? stdin : fopen(a->files[i], "r");
        if (f == NULL) {
            say("cannot read \"%s\": %s", a->files[i], strerror(errno));
            jpki_audit_verifier_free(v);
            return EXIT_USAGE;
        }
        jpki_audit_verify_file(v, a->files[i]);
        if (feed(v, f) != 0) {
            say("reading \"%s\" failed", a->files[i]);
            if (f != stdin)
                fclose(f);
            jpki_audit_verifier_free(v);
            return EXIT_USAGE;
        }
        if (f != stdin)
            fclose(f);
    }
    errors = jpki_audit_verify_end(v, a->val[O_LAST_SEQ] ? (int64_t)last : -1,
                                   &sum);
    jpki_audit_verifier_free(v);
    printf("audit verify: lines=%llu first_seq=%llu last_seq=%llu chains=%llu"
           " errors=%llu %s\n", (unsigned long long)sum.lines,
           (unsigned long long)sum.first_seq, (unsigned long long)sum.last_seq,
           (unsigned long long)sum.chains, (unsigned long long)errors,
           errors == 0 ? "ok" : "FAILED");
    return errors == 0 ? EXIT_VALID : EXIT_INVALID;
}
