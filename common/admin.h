/* admin.h - the admin API's rules (docs/admin.md): who may call it (the
 * client address in the location's list, and the bearer token of its
 * token file), and the grammar of the list. */
#ifndef JPKI_ADMIN_H
#define JPKI_ADMIN_H

#include "jpki.h"

#define JPKI_CIDRS_MAX 16             /* networks in a list at most */

/* list: blank-separated IPv4 or IPv6 addresses or networks ("192.0.2.0/24
 * ::1 2001:db8::/32"), at most JPKI_CIDRS_MAX.  peer NULL: 1 when the
 * list is well formed; otherwise 1 when peer (an address as text) is in
 * it (an IPv4-mapped IPv6 peer counts as IPv4), 0 when not or when
 * either is malformed. */
int jpki_cidr_allows(const char *list, const char *peer);

/* The admin token of a token file (its first line, 32..256 printable
 * characters; the file readable by its owner only): its SHA-256 into
 * hash.  err: a sentence. */
jpki_err jpki_admin_token_file(const char *path, uint8_t hash[32], char *err,
                               size_t errlen);

/* Whether an Authorization header value ("Bearer <token>", len bytes)
 * holds the token whose SHA-256 is hash (compared in constant time). */
int jpki_admin_bearer_ok(const char *auth, size_t len,
                         const uint8_t hash[32]);

/* What a location answering the admin API lacks, in srv's words (its
 * token file, its allow-list): a sentence into out ("needs ..."); 0 when
 * it has both. */
size_t jpki_admin_missing(const jpki_policy *p, int srv, char *out,
                          size_t max);

/* What a location answering the metrics lacks, in srv's words: a
 * sentence into out ("needs ...") when it has neither an allow-list nor a
 * token file; 0 when it has one of them. */
size_t jpki_metrics_missing(const jpki_policy *p, int srv, char *out,
                            size_t max);

#endif
