/* mapfile.h - the mapping file (docs/configuration.md, "Mapping file"):
 * "<cert_id> <account>" lines, '#' comments.  One parser (both adapters
 * and `jpkictl map list`) and one writer (`jpkictl map add|remove`), with
 * one set of limits and messages.  Sans-I/O except jpki_map_read, which
 * loads the file as jpki_load_file_msg does. */
#ifndef JPKI_MAPFILE_H
#define JPKI_MAPFILE_H
#include "jpki.h"

#define JPKI_MAP_FILE_MAX   (64u * 1024 * 1024)   /* bytes of the file */
#define JPKI_MAP_BAD_SHOWN  4     /* malformed lines named in the warning */

/* An entry is small (a national table has millions: they are sorted):
 * the binary cert_id, the account in the table's pool. */
typedef struct {
    uint8_t id[JPKI_CERT_ID_LEN];              /* binary cert_id */
    uint32_t off;                              /* account: accounts + off */
    uint32_t line;                             /* where it was read */
    uint8_t len;                               /* of account: 1..128 */
} jpki_map_entry;

/* Why a line was ignored. */
typedef enum {
    JPKI_MAPLINE_OK = 0,
    JPKI_MAPLINE_CERT_ID,       /* not 32 lower-case hex digits then ' ' */
    JPKI_MAPLINE_NO_ACCOUNT,    /* nothing after the cert_id */
    JPKI_MAPLINE_ACCOUNT_LONG,  /* over JPKI_ACCOUNT_MAX bytes */
    JPKI_MAPLINE_ACCOUNT_CHARS, /* control character, '"', '\\', not UTF-8 */
    JPKI_MAPLINE_DUPLICATE      /* cert_id mapped on an earlier line */
} jpki_mapline_why;

typedef struct {
    uint32_t line;              /* 1-based */
    uint32_t first;             /* DUPLICATE: the line that stands */
    jpki_mapline_why why;
} jpki_map_bad;

typedef struct jpki_map {
    jpki_map_entry *e;          /* sorted by cert_id, each cert_id once */
    size_t n;
    char *accounts;             /* NUL-terminated, one after the other */
    size_t bad;                 /* malformed lines ignored */
    jpki_map_bad shown[JPKI_MAP_BAD_SHOWN];    /* the first of them */
} jpki_map;

/* Parses data (len bytes, at most JPKI_MAP_FILE_MAX, NUL bytes allowed:
 * they make a line malformed).  Trailing blanks and '\r' of a line are
 * ignored; empty lines and lines starting with '#' are comments.  A
 * malformed line is counted and ignored (the others still apply); when a
 * cert_id is on several lines, the first stands and the others are
 * malformed.  JPKI_OK and *out (free with jpki_map_free), or
 * JPKI_ERR_TOO_LARGE, JPKI_ERR_NOMEM. */
jpki_err jpki_map_parse(const uint8_t *data, size_t len, jpki_map **out);
/* Loads path (jpki_load_file_msg, "mapping file") and parses it; on
 * failure the sentence is in why. */
jpki_err jpki_map_read(const char *path, jpki_map **out, char *why,
                       size_t whylen);
void jpki_map_free(jpki_map *m);
/* The account of cert_id (32 hex digits) into out (JPKI_ACCOUNT_MAX + 1
 * bytes): its length, 0 when not mapped (or m is NULL). */
size_t jpki_map_lookup(const jpki_map *m, const char *cert_id, char *out);
/* The warning for m's malformed lines (empty when none):
 * mapping file "PATH": N malformed lines ignored (expected "<cert_id>
 * <account>"): line 3: <why>; line 7: <why>[; ...] */
void jpki_map_warning(const jpki_map *m, const char *path, char *out,
                      size_t outlen);
const char *jpki_mapline_text(jpki_mapline_why why);

/* The writer: the new content of a mapping file whose content is old
 * (oldlen bytes, at most JPKI_MAP_FILE_MAX): every line of cert_id (one
 * starting with "<cert_id> ", malformed or not) left out, then, when
 * account is not NULL, the line "<cert_id> <account>\n".  Other lines
 * (comments, malformed ones) are kept byte for byte; a last line without
 * its newline gets one.  *out is malloc'ed (free it); *found says whether
 * a line of cert_id was there.  JPKI_ERR_INVALID when cert_id or account
 * is not valid, JPKI_ERR_TOO_LARGE when the result would be over
 * JPKI_MAP_FILE_MAX, JPKI_ERR_NOMEM. */
jpki_err jpki_map_edit(const uint8_t *old, size_t oldlen, const char *cert_id,
                       const char *account, uint8_t **out, size_t *outlen,
                       int *found);
/* The same for many cert_ids at once (one rewrite of a large file): every
 * line of any ch[i].cert_id left out, then the lines "<cert_id>
 * <account>\n" of the changes whose account is not NULL, in the order of
 * ch.  *found: the number of lines left out.  The same errors; a cert_id
 * given twice is JPKI_ERR_INVALID. */
typedef struct {
    const char *cert_id;        /* 32 lower-case hex digits */
    const char *account;        /* NULL: removed */
} jpki_map_change;
jpki_err jpki_map_edit_many(const uint8_t *old, size_t oldlen,
                            const jpki_map_change *ch, size_t n,
                            uint8_t **out, size_t *outlen, size_t *found);
/* 1 when s is a cert_id as the mapping file holds it: 32 lower-case hex
 * digits (n bytes given). */
int jpki_map_cert_id_valid(const char *s, size_t n);
#endif
