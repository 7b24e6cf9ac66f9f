/* crlptr.h - the layout of the CRLs `jpkictl crl sync` loads into Redis
 * (docs/store-schema.md, "crl"): the pointer value, bucket keys, fields
 * and values.  One writer and one reader for jpkictl (tools/crl_*.c) and
 * the gate (common/txn.c): the same checks on both sides. */
#ifndef JPKI_CRLPTR_H
#define JPKI_CRLPTR_H
#include "jpki.h"

#define JPKI_CRLPTR_MAX       192     /* pointer value, bytes */
#define JPKI_CRL_K_MIN        1       /* layout 1 (below): hex digits */
#define JPKI_CRL_K_MAX        6
#define JPKI_CRL_TAG_LEN      16      /* hex digits of a key or list tag */
/* "<list tag>[.arl]", NUL: no longer than the one list per issuer of
 * jpkictl before lists per key, as every bucket key holds it */
#define JPKI_CRL_LIST_MAX     (JPKI_CRL_TAG_LEN + 4 + 1)
#define JPKI_CRL_KEYS_MAX     16      /* CA keys of an issuer looked at */
#define JPKI_CRL_VALUE_LEN    5       /* reason octet + revoked_at (BE u32) */
#define JPKI_CRL_REASON_NONE  0xff    /* value octet of an entry without one */

/* A list is the CRLs (or, apart, the ARLs) one CA key of an issuer signs:
 * a certificate is looked up in the list of the key that issued it, as in
 * the CRL zone (crlzone.h), and no list of that key is revocation data
 * unavailable.  Its name is one tag, so that the name in each of the
 * list's bucket keys is no longer than the issuer tag of one list per
 * issuer was: "<list tag>", ".arl" appended for an ARL.
 *
 * The key tag: the first 8 octets, in hex, of SHA-256 over "jpki crl key"
 * and the key's SHA-1 hash (jpki_crl_info.key_hash, jpki_txn_issuer_key).
 * The list tag: the first 8 octets, in hex, of SHA-256 over "jpki crl
 * list", the issuer tag and the key tag.  No key in clear; the issuer and
 * key tags of a list are in its record (crlinfo: issuer_tag, key_tag),
 * which jpki_crl_list_of checks against the name. */

/* The key tag of a key hash into out; 0, -1 (a digest failure). */
int jpki_crl_key_tag(const uint8_t key_hash[20],
                     char out[JPKI_CRL_TAG_LEN + 1]);
/* The list name of an issuer tag and a key tag into out: its length, -1
 * when a tag is not 16 lower-case hex digits or out is too small. */
int jpki_crl_list_of(char *out, size_t outlen, const char *issuer_tag,
                     const char *key_tag, int arl);
/* The same from the key's SHA-1 hash. */
int jpki_crl_list_name(char *out, size_t outlen, const char *issuer_tag,
                       const uint8_t key_hash[20], int arl);
/* What a list name's shape is (*arl: it ends in ".arl"): 1 this layout,
 * "<16 hex>[.arl]", which is also the shape of one list per issuer of
 * jpkictl before lists per key (the record tells them apart: only a list
 * of this layout holds a key_tag); 0 "<16 hex>.<16 hex>[.arl]", the list
 * per key named "<issuer tag>.<key tag>" by the jpkictl of 06b82fb, which
 * no gate of this version reads; -1 neither. */
int jpki_crl_list_parse(const char *name, int *arl);

/* A CA key of an issuer: its SHA-1 hash and the subject of a CA
 * certificate holding it (for messages). */
typedef struct {
    uint8_t hash[20];
    char subject[160];
} jpki_crl_key;
/* The distinct keys of the issuer's CA certificates (a link certificate
 * adds none), at most max, in the order of the CA files: the lists the
 * gate may read for it. */
size_t jpki_crl_issuer_keys(const jpki_issuer *is, jpki_crl_key *keys,
                            size_t max);

/* How the entries of a generation are laid out (docs/store-schema.md,
 * "Buckets, fields, values"): its bucket is the first `bits` bits of the
 * cert_id, its field the cert_id's octets bits/8 .. key_len - 1.
 *   layout 2 (written by this jpkictl): key_len JPKI_CRL_KEY_LEN (8: the
 *     first 64 bits of the cert_id name an entry), bits
 *     JPKI_CRL_BITS_MIN..JPKI_CRL_BITS_MAX; in text "b<bits>" ("b14");
 *   layout 1 (jpkictl before it, still read): key_len JPKI_CERT_ID_LEN
 *     (16), bits 4k for k hex digits JPKI_CRL_K_MIN..JPKI_CRL_K_MAX; in
 *     text "<k>" ("4").
 * A bucket's name holds it as ceil(bits/4) lower-case hex digits. */
#define JPKI_CRL_BITS_MIN     1
#define JPKI_CRL_BITS_MAX     24      /* 16M buckets: enumerable */
#define JPKI_CRL_KEY_LEN      8       /* octets of cert_id kept (layout 2) */
#define JPKI_CRL_SHAPE_MAX    4       /* "b24", NUL */
typedef struct {
    unsigned bits;                    /* bucket: the first bits bits */
    unsigned key_len;                 /* octets of cert_id kept */
} jpki_crl_shape;

/* 1 when sh is one of the two layouts above. */
int jpki_crl_shape_ok(const jpki_crl_shape *sh);
/* The shape's text ("b14", "4") into out (JPKI_CRL_SHAPE_MAX); its
 * length, -1 when the shape is not valid. */
int jpki_crl_shape_format(const jpki_crl_shape *sh,
                          char out[JPKI_CRL_SHAPE_MAX]);
/* 0 and *sh, or -1 when s (n bytes) is not exactly such a text (no
 * leading zero, no sign, nothing else). */
int jpki_crl_shape_parse(const char *s, size_t n, jpki_crl_shape *sh);

/* The pointer jpki:v1:crlmeta:<list> (a string):
 *     <gen>|<shape>|<this_update>|<next_update>|<crl_number>|<entries>|<loaded_at>
 */
typedef struct {
    int64_t gen;                      /* >= 1 (INCR) */
    jpki_crl_shape shape;             /* jpki_crl_shape_ok */
    int64_t this_update, next_update; /* next_update 0: none */
    int64_t crl_number;               /* -1: none */
    uint64_t entries;
    int64_t loaded_at;
} jpki_crlptr;

/* The pointer's text into out and its length; -1 when it does not fit
 * (outlen, JPKI_CRLPTR_MAX) or would not parse back as the same values
 * (a field out of range): nothing is written that a reader refuses. */
int jpki_crlptr_format(const jpki_crlptr *p, char *out, size_t outlen);
/* 0, or -1 when s (n bytes) is not a pointer: 7 fields, the second a
 * shape (jpki_crl_shape_parse), the others decimal digits, each at most
 * 19 digits, within int64 and without a leading zero (only crl_number may
 * be negative, and only -1); gen >= 1; at most JPKI_CRLPTR_MAX bytes. */
int jpki_crlptr_parse(const char *s, size_t n, jpki_crlptr *p);

/* The bucket of a binary cert_id (at least sh->key_len octets): its
 * first sh->bits bits as a number; 0 for a shape that is not valid. */
unsigned long jpki_crl_bucket(const uint8_t *id, const jpki_crl_shape *sh);
/* "<list>:<gen>:<bucket>" (bucket: ceil(bits/4) lower-case hex digits):
 * the bucket's store key after "jpki:v1:crl:".  Its length, -1 when it
 * does not fit in outlen or an argument is out of range. */
int jpki_crl_bucket_name(char *out, size_t outlen, const char *list,
                         int64_t gen, const jpki_crl_shape *sh,
                         unsigned long bucket);
/* The field of a cert_id in its bucket: octets bits/8 .. key_len - 1 of
 * the binary cert_id (*len of them); NULL (*len 0) for a shape that is
 * not valid. */
const uint8_t *jpki_crl_field(const uint8_t *id, const jpki_crl_shape *sh,
                              size_t *len);
/* A value: the CRLReason octet (0..10 but 7; JPKI_CRL_REASON_NONE for an
 * entry without reason: reason < 0, or one that is no CRLReason), then
 * the revocation date, seconds since the epoch, big-endian u32. */
void jpki_crl_value_pack(uint8_t out[JPKI_CRL_VALUE_LEN], int reason,
                         uint32_t at);
/* 0 and *reason (-1: none) and *at; -1 when v is not such a value. */
int jpki_crl_value_unpack(const uint8_t *v, size_t n, int *reason,
                          int64_t *at);
#endif
