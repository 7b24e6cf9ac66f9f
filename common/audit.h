/*
 * audit.h - the audit trail (issue 13): one JSON line per verification and
 * per admin action, in a file of its own (jpki_audit_log /
 * JPKIAuditLog), each line chained to the one before by an HMAC:
 *
 *   {"seq":N,"prev":"<64 hex>",<the verdict's fields>,"mac":"<64 hex>"}
 *
 * mac = HMAC-SHA256(key, the line's bytes before ",\"mac\":"); prev is the
 * MAC of the line before (64 zeros: a chain start, seq 1).  The key is
 * HKDF(site secret, "jpki audit v1"), or HKDF(the key file's bytes, the
 * same label).  The head of each file's chain (its last seq and MAC) is
 * kept in the shared area (shared.h), under its lock: the workers or
 * children of a server write one chain, one whole line per write(2) on an
 * O_APPEND descriptor, and a reload, a graceful restart or a log rotation
 * keeps the chain (the first line of a new file links to the last of the
 * old).  A cold start takes the head from the file's last line.
 *
 * The formatting, the chain, the parsing and the verifier are here; the
 * adapters open the file, say where it is, and hand the verdict's fields
 * (jpki_verdict.audit) over.  docs/operations.md "Audit trail".
 */
#ifndef JPKI_AUDIT_H
#define JPKI_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "jpki.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the shared area's part (shared_area.h) ------------------------- */

#define JPKI_AUDIT_CHAINS 16        /* audit files of one server */

typedef struct {
    uint64_t file;                  /* hash of the file's path; 0: free */
    uint64_t seq;                   /* the last line's (0: none yet) */
    uint8_t mac[32];                /* the last line's MAC (zeros: none) */
    int64_t used;                   /* last written or set up, seconds */
    uint32_t flags;                 /* JPKI_AUDIT_F_* */
    uint32_t pad;
} jpki_audit_chain;

/* the file ends in a part of a line: the next line starts on a new one */
#define JPKI_AUDIT_F_NEWLINE 1u

typedef struct {
    jpki_audit_chain chain[JPKI_AUDIT_CHAINS];
} jpki_audit_area;

/* ---- the lines ------------------------------------------------------ */

#define JPKI_AUDIT_LINE_MAX   2048  /* a chained line, newline included */
#define JPKI_AUDIT_RID_MAX    40    /* a request id's characters */
#define JPKI_AUDIT_KEY_MIN    32    /* a key file's bytes at least */
#define JPKI_AUDIT_KEY_LABEL  "jpki audit v1"

/* The head of a chain: the last line's seq and MAC (seq 0, zeros: none,
 * the next line starts a chain). */
typedef struct {
    uint64_t seq;
    uint8_t mac[32];
} jpki_audit_head;

/* A request id as it goes into a line: 1..JPKI_AUDIT_RID_MAX characters of
 * A-Z a-z 0-9 and @ . _ : + / = - (nginx's $request_id, Apache's
 * UNIQUE_ID or log id). */
int jpki_audit_rid_ok(const char *s, size_t n);
/* A request id made by the core: 32 hex digits, random. 0: no
 * randomness. */
int jpki_audit_rid_make(char out[JPKI_AUDIT_RID_MAX + 1]);

/* The fields of a verdict's line (the txn's; a string NULL: ""). */
typedef struct {
    int64_t ts;                     /* seconds since the epoch */
    const char *event;              /* login, check, logout, admin */
    const char *action;             /* admin: bind, unbind...; else NULL */
    const char *result;             /* ok, denied, error */
    const char *reason;
    const char *account, *cert_id, *issuer;
    const char *revocation;         /* ocsp, crl, cache, soft, none */
    int64_t revocation_age;         /* s since the answer was produced;
                                       < 0: null */
    int soft_pass;
    const char *peer;               /* the client's address */
    const char *request_id;
    const char *location;           /* the request's path: cut at '?',
                                       escaped, at most 256 bytes */
    unsigned suppressed;            /* refusals left out before it */
} jpki_audit_fields;

/* The verdict's JSON object (one line, no newline) into out: its length,
 * 0 when it does not fit.  Strings are escaped: a location's bytes outside
 * printable ASCII percent-encoded; never a serial, key or signature (the
 * caller has none to give). */
size_t jpki_audit_body(char *out, size_t max, const jpki_audit_fields *f);

/* The key of a chain: HKDF-SHA256(material, JPKI_AUDIT_KEY_LABEL). */
int jpki_audit_key(const uint8_t *material, size_t len, uint8_t key[32]);
/* The key of the site's secret (ctx's, finished or loaded). */
int jpki_audit_key_of_ctx(const jpki_ctx *ctx, uint8_t key[32]);
/* A key file (key_file=, jpkictl --key-file): a regular file, not
 * readable by others, its bytes (trailing blanks and newlines left out)
 * at least JPKI_AUDIT_KEY_MIN and at most 4096.  err: a sentence. */
jpki_err jpki_audit_key_file(const char *path, uint8_t key[32], char *err,
                             size_t errlen);

/* The chained line of body (a JSON object: '{' ... '}') after head into
 * out (max bytes): "{\"seq\":N,\"prev\":\"...\"," body's fields
 * ",\"mac\":\"...\"}\n"; head is not changed, *next is the head after it.
 * The line's length, 0 when body is not an object or it does not fit. */
size_t jpki_audit_line(const jpki_audit_head *head, const uint8_t key[32],
                       const char *body, size_t body_len, char *out,
                       size_t max, jpki_audit_head *next);

/* A line read back (without its newline). */
typedef struct {
    uint64_t seq;
    uint8_t prev[32];
    uint8_t mac[32];                /* the one it carries */
    int mac_ok;                     /* it is the line's under the key */
    int chain_start;                /* seq 1, prev zeros */
} jpki_audit_parsed;

/* 0 and p when line[0..len) has the chained line's frame (seq, prev, a
 * JSON object, mac last) and p->mac_ok when its MAC verifies (compared in
 * constant time); -1 when it is no audit line. */
int jpki_audit_parse(const char *line, size_t len, const uint8_t key[32],
                     jpki_audit_parsed *p);

/* What a cold start finds at the end of a file (jpki_audit_recover). */
typedef enum {
    JPKI_AUDIT_TAIL_EMPTY = 0,      /* no line: a chain starts */
    JPKI_AUDIT_TAIL_LINKED,         /* the last line verifies: linked to */
    JPKI_AUDIT_TAIL_UNVERIFIED,     /* it does not (another key, edited,
                                       no audit line): a chain starts */
} jpki_audit_tail;

/* The head a chain continues from, read from the last bytes of a file
 * (tail[0..len); whole: they are the whole file): the last complete line
 * if it verifies under key.  *partial: the bytes end in a part of a line
 * (a crash, a truncation): the next line must start on a new one. */
jpki_audit_tail jpki_audit_tail_head(const char *tail, size_t len, int whole,
                                     const uint8_t key[32],
                                     jpki_audit_head *head, int *partial);

/* ---- the chains of a server (the shared area) ----------------------- */

/* The hash a file's chain is kept under (never 0). */
uint64_t jpki_audit_file_hash(const char *path);

/* In the parent, at configuration (a start, a reload, a graceful
 * restart): the chain of the file at path in area (under lock): kept when
 * the area has it, else a slot taken (the one used longest ago when all
 * are) and its head read from the file's last line (at most 64 KiB from
 * its end).  JPKI_OK and, in msg, a sentence to log when the chain starts
 * anew or the file ends in a part of a line ("" otherwise); an error and
 * its sentence when the file cannot be read. */
struct jpki_shared;
jpki_err jpki_audit_recover(struct jpki_shared *sh, const jpki_shm_lock *lock,
                            const char *path, const uint8_t key[32],
                            int64_t now, char *msg, size_t msglen);

/* In a worker or child: the line of body chained in area and written to
 * the file at path, under lock: one write(2) of the whole line on fd (the
 * adapter's descriptor, opened O_APPEND); when the file at path is no
 * longer fd's (rotated, not yet reopened by this process), path is opened
 * for that line, so that every line after the rotation goes to the new
 * file.  The head moves only once the line is written.  0, or -1 with
 * errno and a sentence in err. */
int jpki_audit_append(struct jpki_shared *sh, const jpki_shm_lock *lock,
                      const char *path, const uint8_t key[32], int fd,
                      const char *body, int64_t now, char *err,
                      size_t errlen);

/* ---- the verifier (jpkictl audit verify) ---------------------------- */

typedef struct jpki_audit_verifier jpki_audit_verifier;

/* A finding: error 1 (the chain does not verify there), 0 a note (a chain
 * start, a chain continued from before the files); file and line where
 * (line 0: the file as a whole); what, a sentence. */
typedef void (*jpki_audit_report_fn)(void *ud, int error, const char *file,
                                     uint64_t line, const char *what);

jpki_audit_verifier *jpki_audit_verifier_new(const uint8_t key[32],
                                             jpki_audit_report_fn report,
                                             void *ud);
void jpki_audit_verifier_free(jpki_audit_verifier *v);
/* The files in order (the rotated one first): each file named, then its
 * lines (without the newline; last_no_newline: the file's last bytes had
 * none). */
void jpki_audit_verify_file(jpki_audit_verifier *v, const char *name);
void jpki_audit_verify_line(jpki_audit_verifier *v, const char *line,
                            size_t len, int no_newline);
/* The end: the findings still open said; last_seq >= 0: the seq the
 * operator recorded as the head (a chain ending before it: lines removed
 * from the end).  The numbers in *sum; the count of errors. */
typedef struct {
    uint64_t lines, first_seq, last_seq, chains, errors;
} jpki_audit_summary;
uint64_t jpki_audit_verify_end(jpki_audit_verifier *v, int64_t last_seq,
                               jpki_audit_summary *sum);

#ifdef __cplusplus
}
#endif
#endif /* JPKI_AUDIT_H */
