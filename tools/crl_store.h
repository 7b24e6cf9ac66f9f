/*
 * crl_store.h - the Redis layout of loaded CRLs (docs/store-schema.md,
 * "crl"): key names, the pointer value, bucket/field/value encoding, and a
 * pipelined command writer.
 */
#ifndef JPKICTL_CRL_STORE_H
#define JPKICTL_CRL_STORE_H

#include "jpkictl.h"
#include "crlptr.h"

/* The pointer, bucket names, fields and values: common/crlptr.h (one
 * reader and writer for jpkictl and the gate). */
#define CRL_LID_MAX     JPKI_CRL_LIST_MAX

/* One entry as stored: the first JPKI_CRL_KEY_LEN octets of the binary
 * cert_id (all a layout-2 bucket and field hold), date, reason (-1
 * none). */
typedef struct {
    uint8_t id[JPKI_CRL_KEY_LEN];
    uint32_t at;
    int8_t reason;
} crl_ent;

/* A set of entries (sorted by ent_cmp order once complete). */
typedef struct {
    crl_ent *e;
    size_t n, cap;
    int nomem;
} ents_t;

/* Room for one more entry; NULL (nomem set) when out of memory. */
crl_ent *ents_add(ents_t *s);
/* A revocation date as an entry holds it (1970..2106). */
uint32_t ent_at(int64_t t);

/* The changes of a delta sync to the loaded generation: entries to
 * write (new ones and ones whose value changed) and to remove, each
 * sorted by cert_id. */
typedef struct {
    long long gen;
    jpki_crl_shape sh;
    ents_t put, del;
    size_t put_new;           /* of put, those not in the loaded set */
} delta_t;

/* Key names; out holds JPKI_STORE_KEY_MAX + 1. */
void crl_key_meta(char *out, const char *lid);
void crl_key_info(char *out, const char *lid);
void crl_key_gen(char *out, const char *lid);
void crl_key_lock(char *out, const char *lid);
/* jpki:v1:crl:<lid>:<gen>:<bucket> (jpki_crl_bucket_name), bucket = the
 * first sh->bits bits of the cert_id (id binary) or the number b; empty
 * when out of range. */
void crl_key_bucket(char *out, const char *lid, long long gen,
                    const jpki_crl_shape *sh, const uint8_t *id);
void crl_key_bucket_n(char *out, const char *lid, long long gen,
                      const jpki_crl_shape *sh, unsigned long b);

#define DEFAULT_GRACE   (48u * 3600)     /* a J-LIS CRL: 72 h validity */

/* What the store holds for one list: its pointer and crl sync's record. */
typedef struct {
    int have;                 /* a pointer exists */
    char raw[JPKI_CRLPTR_MAX + 1];
    jpki_crlptr m;
    char sha[65];
    char id_check[JPKI_CERT_ID_HEX_LEN + 1];
    char issuer[64];
    char issuer_tag[JPKI_CRL_TAG_LEN + 1];  /* "": a list of an older jpkictl */
    char key_tag[JPKI_CRL_TAG_LEN + 1];
    char kind[8];
    char source[512];
    long long loading_gen, prev_gen;
    jpki_crl_shape loading_shape, prev_shape;   /* {0, 0}: none */
} list_state;

/* A command whose reply is only checked for errors (a message when it
 * fails); the reply in *keep when keep is not NULL.  0, -1. */
int cmd_ok(redisContext *rc, int argc, const char **argv, const size_t *lens,
           redisReply **keep);
int cmd2(redisContext *rc, const char *c, const char *k, redisReply **keep);
/* Two commands of two arguments each (c[0] k[0], c[1] k[1]) sent
 * together, one round trip, each then as cmd2; both replies read
 * whatever the first answered (the connection stays in step).  0 when
 * neither failed (keep[i]: its reply), -1 (those that came freed). */
int cmd2x2(redisContext *rc, const char *const c[2], const char *const k[2],
           redisReply *keep[2]);
/* The list id of the CRLs (arl: ARLs) of one CA key of an issuer
 * (jpki_crl_list_name: "<list tag>[.arl]").  0, -1. */
int list_id(const jpki_issuer *is, const uint8_t key_hash[20], int arl,
            char lid[CRL_LID_MAX]);
/* 1 when the list is past nextUpdate + grace at now. */
int stale_at(const jpki_crlptr *m, time_t now, unsigned grace);
/* 0 when the CRL (DER) has no cRLNumber or one within 0..2^63-1 (what
 * the pointer and the gate hold), -1 otherwise (crl_store.c). */
int crl_number_fits(const uint8_t *der, size_t len);
/* GET crlmeta + HGETALL crlinfo.  0, -1 store failure, -2 a pointer that
 * does not parse. */
int read_state(redisContext *rc, const char *lid, list_state *st);

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
    size_t batch;             /* bytes sent at once (0: PIPE_BATCH) */
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

/* The entries of generation gen of a list (laid out as sh, layout 2),
 * read bucket by bucket (HGETALL, pipelined), into *out, sorted by
 * cert_id.  0; -1 a store failure (said); -2 a bucket that is not what
 * crl sync writes (a field or value of another length or content, or in
 * the wrong bucket), with why in *why. */
int read_gen(redisContext *rc, const char *lid, long long gen,
             const jpki_crl_shape *sh, ents_t *out, const char **why);

/* ---- a list's generations, its lock, a new set's shape (crl_gen.c) -- */

#define LOCK_TTL_MS      300000
#define LOCK_REFRESH_S   60
#define LISTPACK_ENTRIES 128             /* redis.conf's value */
#define BUCKET_MAX       128             /* fields per bucket at most */

/* The lock is refreshed and released only by the sync holding it: the token
 * is compared and the lock acted on in one step (a GET then a DEL could
 * delete the lock another sync took in between, after ours expired). */
#define LOCK_REFRESH_LUA                                                    \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                        \
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
#define LOCK_RELEASE_LUA                                                    \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                        \
    "return redis.call('del', KEYS[1]) end return 0"

/* cmd (UNLINK, or EXPIRE with arg) on every bucket a generation may have;
 * the sum of the replies. */
long long crl_gen_op(redisContext *rc, const char *cmd, const char *arg,
                     const char *lid, long long gen,
                     const jpki_crl_shape *sh);
/* HDEL of up to three fields of the list's info hash (f3 may be NULL). */
int crl_hdel(redisContext *rc, const char *lid, const char *f1,
             const char *f2, const char *f3);
/* The leftovers of an earlier run removed or given their expiry. */
int crl_recover(redisContext *rc, const char *lid, list_state *st,
                unsigned keep_old);
/* The list's lock: 0 taken (token filled), -2 held by another sync, -1 a
 * store failure; released only by its token. */
int crl_lock_take(redisContext *rc, const char *lid, char token[33]);
void crl_lock_release(redisContext *rc, const char *lid,
                      const char *token);
/* The entries sorted by cert_id, duplicates dropped; -1 no memory. */
int crl_sort_unique(ents_t *s);
/* The largest bucket of the (sorted) entries under sh. */
size_t crl_bucket_max(const ents_t *s, const jpki_crl_shape *sh);
/* The shape of a new set: buckets of at most limit fields. */
jpki_crl_shape crl_choose_shape(const ents_t *s, unsigned long limit);
/* The fields a bucket may hold and stay a listpack on this server. */
unsigned long crl_listpack_limit(redisContext *rc);

#endif /* JPKICTL_CRL_STORE_H */
