/*
 * audit_verify.c - the verifier of audit files (audit.h, jpkictl audit
 * verify): the lines of one or more files in order, each checked against
 * the chain so far with one line of look-ahead, so that what was done to
 * the file is named:
 *   - a line that is no audit line: "inserted/foreign line", or
 *     "truncated last line" when it ends the file without a newline;
 *   - a line whose MAC does not verify: "mac mismatch (edited)" when it
 *     sits where the chain expects it (its seq and prev, or the next line
 *     linking to it), "inserted/foreign line" when the next line takes
 *     that place or it fits nowhere;
 *   - a verified line whose seq jumps: "seq gap: lines N..M removed"
 *     (said at the end, once no later line fills the gap), a seq already
 *     passed: "out of order" (and the gap it fills closed);
 *   - the first line of a file that does not link to the last of the file
 *     before: "chain break between files";
 *   - a chain start (seq 1, prev zeros) after other lines: "chain
 *     restart" (files out of order, or a cold start without the head);
 *   - notes, not errors: the chain start of the first line, a chain that
 *     began before the first file given.
 * Removing whole lines from the end leaves nothing to see in the file:
 * the operator's recorded head (last_seq) shows it.
 */
#include "audit.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define GAPS_MAX 64

typedef struct {
    int valid;                       /* an audit line's frame */
    jpki_audit_parsed p;
    size_t file;
    uint64_t line;
    int no_newline;
    int first_in_file;
} entry;

typedef struct {
    uint64_t lo, hi;                 /* seqs missing */
    size_t file;
    uint64_t line;                   /* where the jump was seen */
} gap;

struct jpki_audit_verifier {
    uint8_t key[32];
    jpki_audit_report_fn report;
    void *ud;
    char **files;
    size_t n_files;
    uint64_t line;                   /* in the current file */
    int first_pending;               /* the next line starts a file */
    entry pend;
    int have_pend;
    int have_last;
    uint64_t last_seq;
    uint8_t last_mac[32];
    size_t last_file;                /* the file of the last line taken */
    gap gaps[GAPS_MAX];
    size_t n_gaps;
    jpki_audit_summary sum;
    int have_first;
    uint64_t verified;               /* lines whose MAC verifies */
};

__attribute__((format(printf, 5, 6)))
static void say(jpki_audit_verifier *v, int error, size_t file,
                uint64_t line, const char *fmt, ...)
{
    char what[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (error)
        v->sum.errors++;
    if (v->report != NULL)
        v->report(v->ud, error, file < v->n_files ? v->files[file] : "-",
                  line, what);
}

jpki_audit_verifier *jpki_audit_verifier_new(const uint8_t key[32],
                                             jpki_audit_report_fn report,
                                             void *ud)
{
    jpki_audit_verifier *v = calloc(1, sizeof(*v));

    if (v == NULL)
        return NULL;
    memcpy(v->key, key, 32);
    v->report = report;
    v->ud = ud;
    return v;
}

void jpki_audit_verifier_free(jpki_audit_verifier *v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < v->n_files; i++)
        free(v->files[i]);
    free(v->files);
    OPENSSL_cleanse(v->key, sizeof(v->key));
    free(v);
}

static void take(jpki_audit_verifier *v, const entry *e, const uint8_t *mac)
{
    v->have_last = 1;
    v->last_seq = e->p.seq;
    memcpy(v->last_mac, mac, 32);
    v->last_file = e->file;
    if (!v->have_first) {
        v->have_first = 1;
        v->sum.first_seq = e->p.seq;
    }
    v->sum.last_seq = e->p.seq;
}

/* Whether p sits where the chain expects the next line. */
static int fits(const jpki_audit_verifier *v, const jpki_audit_parsed *p)
{
    return v->have_last && p->seq == v->last_seq + 1
           && CRYPTO_memcmp(p->prev, v->last_mac, 32) == 0;
}

static void gap_say(jpki_audit_verifier *v, const gap *g)
{
    if (g->lo == g->hi)
        say(v, 1, g->file, g->line, "seq gap: line %llu removed (before "
            "this line)", (unsigned long long)g->lo);
    else
        say(v, 1, g->file, g->line, "seq gap: lines %llu..%llu removed "
            "(before this line)", (unsigned long long)g->lo,
            (unsigned long long)g->hi);
}

static void gap_add(jpki_audit_verifier *v, uint64_t lo, uint64_t hi,
                    const entry *e)
{
    if (v->n_gaps == GAPS_MAX) {             /* the oldest said now */
        gap_say(v, &v->gaps[0]);
        memmove(&v->gaps[0], &v->gaps[1], (GAPS_MAX - 1) * sizeof(gap));
        v->n_gaps--;
    }
    v->gaps[v->n_gaps].lo = lo;
    v->gaps[v->n_gaps].hi = hi;
    v->gaps[v->n_gaps].file = e->file;
    v->gaps[v->n_gaps].line = e->line;
    v->n_gaps++;
}

/* A seq found late: the gap it was missing from closed around it (1), or
 * none had it (0). */
static int gap_fill(jpki_audit_verifier *v, uint64_t seq)
{
    size_t i;
    gap *g;

    for (i = 0; i < v->n_gaps; i++) {
        g = &v->gaps[i];
        if (seq < g->lo || seq > g->hi)
            continue;
        if (g->lo == g->hi) {
            memmove(g, g + 1, (v->n_gaps - i - 1) * sizeof(gap));
            v->n_gaps--;
        } else if (seq == g->lo) {
            g->lo++;
        } else if (seq == g->hi) {
            g->hi--;
        } else if (v->n_gaps < GAPS_MAX) {
            v->gaps[v->n_gaps] = *g;
            v->gaps[v->n_gaps].lo = seq + 1;
            g->hi = seq - 1;
            v->n_gaps++;
        } else {
            g->hi = seq - 1;                 /* no room: the rest dropped */
        }
        return 1;
    }
    return 0;
}

/* A line whose MAC does not verify, with the next one (n, NULL: none). */
static void decide_forged(jpki_audit_verifier *v, const entry *e,
                          const entry *n)
{
    int n_here = n != NULL && n->valid && n->p.mac_ok && fits(v, &n->p);
    int n_links = n != NULL && n->valid && n->p.seq == e->p.seq + 1
                  && CRYPTO_memcmp(n->p.prev, e->p.mac, 32) == 0;
    int n_next = n != NULL && n->valid && n->p.seq == e->p.seq + 1;

    if (!n_here && (fits(v, &e->p) || n_links)) {
        say(v, 1, e->file, e->line, "mac mismatch (edited): seq %llu",
            (unsigned long long)e->p.seq);
        /* the chain goes on from the MAC the next line links to */
        take(v, e, n_next ? n->p.prev : e->p.mac);
        return;
    }
    say(v, 1, e->file, e->line, "inserted/foreign line (mac mismatch, seq "
        "%llu)", (unsigned long long)e->p.seq);
}

static void decide(jpki_audit_verifier *v, const entry *e, const entry *n)
{
    int crossed = v->have_last && e->first_in_file && e->file != v->last_file;
    uint64_t want = v->last_seq + 1;

    if (!e->valid) {
        if (e->no_newline)
            say(v, 1, e->file, e->line, "truncated last line");
        else
            say(v, 1, e->file, e->line, "inserted/foreign line (not an "
                "audit line)");
        return;
    }
    if (!e->p.mac_ok) {
        decide_forged(v, e, n);
        return;
    }
    if (e->no_newline)                       /* whole, its newline cut */
        say(v, 1, e->file, e->line, "truncated last line (its newline "
            "removed)");
    if (e->p.chain_start) {
        v->sum.chains++;
        say(v, v->have_last, e->file, e->line, v->have_last
            ? "chain restart: a new chain starts here, not linked to the "
              "line before (files out of order, or the gate started without "
              "the previous head: lines between cannot be proved complete)"
            : "chain start");
        take(v, e, e->p.mac);
        return;
    }
    if (!v->have_last) {
        v->sum.chains++;
        say(v, 0, e->file, e->line, "the chain continues from a line before "
            "these files (first seq %llu)", (unsigned long long)e->p.seq);
        take(v, e, e->p.mac);
        return;
    }
    if (e->p.seq == want) {
        if (CRYPTO_memcmp(e->p.prev, v->last_mac, 32) != 0 && crossed)
            say(v, 1, e->file, e->line, "chain break between files: does "
                "not link to the last line of %s (seq %llu)",
                v->files[v->last_file], (unsigned long long)v->last_seq);
        else if (CRYPTO_memcmp(e->p.prev, v->last_mac, 32) != 0)
            say(v, 1, e->file, e->line, "prev mismatch: does not link to seq "
                "%llu (a fork or a replaced line)",
                (unsigned long long)v->last_seq);
        take(v, e, e->p.mac);
        return;
    }
    if (e->p.seq > want) {
        if (crossed)
            say(v, 1, e->file, e->line, "chain break between files: %s ends "
                "at seq %llu, this file begins at seq %llu (lines %llu..%llu "
                "missing)", v->files[v->last_file],
                (unsigned long long)v->last_seq,
                (unsigned long long)e->p.seq, (unsigned long long)want,
                (unsigned long long)(e->p.seq - 1));
        else
            gap_add(v, want, e->p.seq - 1, e);
        take(v, e, e->p.mac);
        return;
    }
    /* a seq already passed */
    gap_fill(v, e->p.seq);
    say(v, 1, e->file, e->line, "out of order: seq %llu after seq %llu",
        (unsigned long long)e->p.seq, (unsigned long long)v->last_seq);
}

void jpki_audit_verify_file(jpki_audit_verifier *v, const char *name)
{
    char **f = realloc(v->files, (v->n_files + 1) * sizeof(char *));

    if (f == NULL)
        return;
    v->files = f;
    v->files[v->n_files] = strdup(name != NULL ? name : "-");
    if (v->files[v->n_files] == NULL)
        return;
    v->n_files++;
    v->line = 0;
    v->first_pending = 1;
}

void jpki_audit_verify_line(jpki_audit_verifier *v, const char *line,
                            size_t len, int no_newline)
{
    entry e;

    memset(&e, 0, sizeof(e));
    e.valid = jpki_audit_parse(line, len, v->key, &e.p) == 0;
    v->verified += e.valid && e.p.mac_ok;
    e.file = v->n_files > 0 ? v->n_files - 1 : 0;
    e.line = ++v->line;
    e.no_newline = no_newline;
    e.first_in_file = v->first_pending;
    v->first_pending = 0;
    v->sum.lines++;
    if (v->have_pend)
        decide(v, &v->pend, &e);
    v->pend = e;
    v->have_pend = 1;
}

uint64_t jpki_audit_verify_end(jpki_audit_verifier *v, int64_t last_seq,
                               jpki_audit_summary *sum)
{
    size_t i;

    if (v->have_pend)
        decide(v, &v->pend, NULL);
    v->have_pend = 0;
    for (i = 0; i < v->n_gaps; i++)
        gap_say(v, &v->gaps[i]);
    v->n_gaps = 0;
    if (v->sum.lines == 0)
        say(v, 1, v->n_files > 0 ? v->n_files - 1 : 0, 0, "no audit line");
    else if (v->verified == 0)
        say(v, 1, v->n_files > 0 ? v->n_files - 1 : 0, 0, "no line verifies "
            "under this key (another key, or not an audit file)");
    if (last_seq >= 0 && (!v->have_last || v->last_seq < (uint64_t)last_seq))
        say(v, 1, v->n_files > 0 ? v->n_files - 1 : 0, 0, "tail truncated: "
            "the chain ends at seq %llu, the recorded head is %lld (lines "
            "%llu..%lld removed from the end)",
            (unsigned long long)(v->have_last ? v->last_seq : 0),
            (long long)last_seq,
            (unsigned long long)(v->have_last ? v->last_seq + 1 : 1),
            (long long)last_seq);
    if (sum != NULL)
        *sum = v->sum;
    return v->sum.errors;
}
