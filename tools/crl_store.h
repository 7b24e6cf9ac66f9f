/*
 * crl_store.h - the Redis layout of loaded CRLs (docs/store-schema.md,
 * "crl"): key names, the pointer value, bucket/field/value encoding, and a
 * pipelined command writer.
 */
#ifndef JPKICTL_CRL_STORE_H
#define JPKICTL_CRL_STORE_H

#include "jpkictl.h"

#define CRL_LID_MAX     24        /* issuer tag (16) [+ ".arl"] */
#define CRL_K_MIN       1
#define CRL_K_MAX       6         /* 16^6 buckets: enumerable */
#define CRL_VALUE_LEN   5         /* reason octet + revoked_at (BE u32) */
#define CRL_REASON_NONE 0xff      /* value octet of an entry without reason */
#define CRL_META_MAX    192       /* pointer value: fits JPKI_STORE_VAL_MAX */

/* One entry as stored: binary cert_id, date, reason (-1 none). */
typedef struct {
    uint8_t id[JPKI_CERT_ID_LEN];
    uint32_t at;
    int8_t reason;
} crl_ent;

/* The pointer jpki:v1:crlmeta:<lid> (a string):
 *     <gen>|<k>|<this_update>|<next_update>|<crl_number>|<entries>|<loaded_at>
 */
typedef struct {
    long long gen;
    unsigned k;
    long long this_update, next_update, crl_number;
    unsigned long long entries;
    long long loaded_at;
} crl_meta;

/* The pointer's text and its length; -1 when it does not fit or would not
 * parse back as the same values (a field out of range). */
int crl_meta_format(const crl_meta *m, char *out, size_t outlen);
/* 0, -1 when s is not a pointer: 7 fields, each of at most 19 digits and
 * within int64 (the cRLNumber may be -1), k within 1..6. */
int crl_meta_parse(const char *s, size_t n, crl_meta *m);

/* Key names; out holds JPKI_STORE_KEY_MAX + 1. */
void crl_key_meta(char *out, const char *lid);
void crl_key_info(char *out, const char *lid);
void crl_key_gen(char *out, const char *lid);
void crl_key_lock(char *out, const char *lid);
/* jpki:v1:crl:<lid>:<gen>:<bucket>, bucket = the first k hex digits of the
 * cert_id (id binary) or the k-digit hex of number b. */
void crl_key_bucket(char *out, const char *lid, long long gen, unsigned k,
                    const uint8_t id[JPKI_CERT_ID_LEN]);
void crl_key_bucket_n(char *out, const char *lid, long long gen, unsigned k,
                      unsigned long b);
/* The field: octets k/2 .. 15 of the binary cert_id. */
const uint8_t *crl_field(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k,
                         size_t *len);
void crl_value_pack(uint8_t out[CRL_VALUE_LEN], int reason, uint32_t at);
/* 0 and reason (-1 none) and date, -1 when malformed. */
int crl_value_unpack(const char *v, size_t n, int *reason, int64_t *at);
/* The first k hex digits of id as a number. */
unsigned long crl_prefix(const uint8_t id[JPKI_CERT_ID_LEN], unsigned k);

/* Pipelined writer: commands are formatted in RESP into a batch; a full
 * batch is sent while the replies of the previous one are read (one batch
 * in flight).  Integer replies are summed; the first error reply is kept. */
typedef struct {
    redisContext *rc;
    char *buf;
    size_t len, cap;
    size_t n;                 /* commands in the batch being built */
    size_t inflight;          /* commands sent whose replies are unread */
    long long sum;            /* sum of integer replies */
    unsigned long long sent;  /* commands sent in all */
    int failed;               /* I/O failure or an error reply */
    char err[160];
} pipe_t;

void pipe_init(pipe_t *p, redisContext *rc);
void pipe_free(pipe_t *p);
/* A command of argc arguments: pipe_begin, then argc pipe_arg calls. */
void pipe_begin(pipe_t *p, size_t argc);
void pipe_arg(pipe_t *p, const void *d, size_t n);
void pipe_arg_str(pipe_t *p, const char *s);
/* Ends a command; sends the batch when it is large.  0, -1 on failure. */
int pipe_end(pipe_t *p);
/* Sends what is left (nothing after a failure) and reads every reply due,
 * leaving the connection in step.  Always call it.  0, -1 on failure. */
int pipe_finish(pipe_t *p);

#endif /* JPKICTL_CRL_STORE_H */
