/* crlstate.h - the local state `jpkictl crl sync --state-dir` keeps of a
 * list it loaded (docs/operations.md, "Delta syncs"): for each entry of
 * the CRL, in the CRL's order, the keyed digest of its encoding
 * (jpki_crl_verify_scan) and the JPKI_CRL_KEY_LEN octets of its cert_id
 * the list holds; the entries per bucket; the pointer, CRL and list it
 * describes; a MAC over all of it.  With it, the next sync parses and
 * hashes only the entries whose encoding it does not know, and does not
 * read the list back.  No serial, nor anything it could be recovered
 * from without the site secret: digests are keyed, cert_ids are the
 * store's.
 *
 * File: a header of JPKI_CRLSTATE_HDR octets ("JPKICRLSTATE", version,
 * then the jpki_crlstate_hdr fields: strings NUL-padded, numbers
 * big-endian), the counts (nb big-endian u32), the records (n of
 * JPKI_CRLSTATE_REC), then a MAC over everything before it: GMAC
 * (AES-256-GCM, additional data only; several times as fast as
 * HMAC-SHA256 over tens of megabytes) under a key derived from the site
 * secret, with a random nonce of the header's. */
#ifndef JPKI_CRLSTATE_H
#define JPKI_CRLSTATE_H
#include "crlptr.h"

#include <openssl/evp.h>

#define JPKI_CRLSTATE_HDR   368
#define JPKI_CRLSTATE_REC   (JPKI_CRL_DIGEST_LEN + JPKI_CRL_KEY_LEN)
#define JPKI_CRLSTATE_NONCE 12
#define JPKI_CRLSTATE_MAC   16

/* The keys, from the site secret (HKDF-SHA256, "jpki crl state digest
 * v1" and "jpki crl state mac v1"): the entries' digest key and the
 * file's MAC key. */
typedef struct {
    uint8_t digest[16];
    uint8_t mac[32];
} jpki_crlstate_keys;
jpki_err jpki_crlstate_keys_of(const jpki_ctx *ctx, jpki_crlstate_keys *k);

/* What a state describes: the list, its pointer value as read from (or
 * written to) the store, the CRL's sha256 and the list's id_check (its
 * crlinfo), the records, the distinct cert_ids (stored), the buckets. */
typedef struct {
    char lid[JPKI_CRL_LIST_MAX];
    char ptr[JPKI_CRLPTR_MAX + 1];
    char sha[65];
    char id_check[JPKI_CERT_ID_HEX_LEN + 1];
    uint64_t n, stored;
    uint32_t nb;
} jpki_crlstate_hdr;

/* The size of a state file of n records and nb buckets; 0 when too large
 * (over JPKI_CRLSTATE_MAX). */
#define JPKI_CRLSTATE_MAX ((size_t)1 << 31)
size_t jpki_crlstate_size(uint64_t n, uint32_t nb);

/* The header (with a new random nonce) and counts: out holds
 * JPKI_CRLSTATE_HDR + 4 * nb octets, whose counts part the caller fills
 * (jpki_crlstate_count_set).  -1 when a string does not fit. */
int jpki_crlstate_head(const jpki_crlstate_hdr *h, uint8_t *out);
/* The MAC of a file: head (header and counts, as jpki_crlstate_head
 * lays them out) and the records.  0, -1. */
int jpki_crlstate_mac(const jpki_crlstate_keys *k, const uint8_t *head,
                      size_t headlen, const uint8_t *recs, size_t recslen,
                      uint8_t mac[JPKI_CRLSTATE_MAC]);
/* The same in pieces (records written as they are found): begin with
 * the head (NULL on failure), add the records, end (frees c; 0, -1). */
EVP_CIPHER_CTX *jpki_crlstate_mac_begin(const jpki_crlstate_keys *k,
                                        const uint8_t *head, size_t headlen);
int jpki_crlstate_mac_add(EVP_CIPHER_CTX *c, const uint8_t *p, size_t n);
int jpki_crlstate_mac_end(EVP_CIPHER_CTX *c, uint8_t mac[JPKI_CRLSTATE_MAC]);
/* A file read back: its header, its counts and records (in buf), when
 * its size, fields and MAC (compared in constant time) are right.  0; -1
 * with why ("does not parse", "does not verify": tampered, truncated or
 * made with another secret). */
int jpki_crlstate_open(const jpki_crlstate_keys *k, const uint8_t *buf,
                       size_t len, jpki_crlstate_hdr *h,
                       const uint8_t **counts, const uint8_t **recs,
                       const char **why);
/* The same in two steps: the sizes and fields (0, -1: does not parse),
 * whose records may be read (they are bounded) but not trusted before
 * jpki_crlstate_verify (0, -1: does not verify) said yes. */
int jpki_crlstate_parse(const uint8_t *buf, size_t len,
                        jpki_crlstate_hdr *h, const uint8_t **counts,
                        const uint8_t **recs);
int jpki_crlstate_verify(const jpki_crlstate_keys *k, const uint8_t *buf,
                         size_t len, const jpki_crlstate_hdr *h);

uint32_t jpki_crlstate_count(const uint8_t *counts, uint32_t b);
void jpki_crlstate_count_set(uint8_t *counts, uint32_t b, uint32_t v);

#endif /* JPKI_CRLSTATE_H */
