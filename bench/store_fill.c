/* store_fill.c - what the embedded store holds: a 16 MiB zone filled
 * through the core's store commands (jpki_shm_exec), one kind of key at a
 * time, written as the gate writes them, until the store refuses a write
 * (R_FULL).  Kinds: a login's challenge (SETNX ch:<id> "1"), a logout
 * marker (SET out:<cert_id> <time>), a throttle counter (INCR then PEXPIRE
 * of thr:fa:<address id>:<window>, soft: it stops at 3/4 of the table, the
 * rest kept for challenges and markers).  The zone is nginx's
 * (`jpki_store shm size=16m`: the table is 7/8 of it, the rest nginx's
 * slab allocator's) and Apache's (`JPKIStore shm size=16M`: all of it).
 * Prints "figure: NAME = VALUE" lines: bytes of zone per entry, entries a
 * zone holds. */
#include "jpki.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONE   ((size_t)16 << 20)
#define NOW_MS INT64_C(1800000000000)

enum { K_CHALLENGE, K_MARKER, K_COUNTER, K_N };

static const char *const names[K_N] = {"challenge", "logout_marker",
                                        "throttle_counter"};
static const char *const plural[K_N] = {"challenges", "logout_markers",
                                        "throttle_counters"};

static void cmd_key(jpki_store_cmd *c, jpki_store_op op, const char *kind,
                    unsigned long i)
{
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->keylen = (size_t)snprintf(c->key, sizeof(c->key), "%s%s:%032lx",
                                 JPKI_STORE_PREFIX, kind, i);
}

/* The i-th write of kind k: 1 stored, 0 refused for lack of room, -1 any
 * other answer. */
static int put(jpki_shm *s, int k, unsigned long i)
{
    jpki_store_cmd c[2];
    jpki_store_result r[2];
    char id[17];
    size_t n = 1;

    switch (k) {
    case K_CHALLENGE:                /* txn_login.c: the login's commit */
        cmd_key(&c[0], JPKI_STORE_SETNX, "ch", i);
        c[0].val[0] = '1';
        c[0].vallen = 1;
        c[0].ttl_ms = 420 * 1000;
        break;
    case K_MARKER:                   /* txn_session.c: txn_marker_put */
        cmd_key(&c[0], JPKI_STORE_SET, "out", i);
        c[0].vallen = (size_t)snprintf((char *)c[0].val, sizeof(c[0].val),
                                       "%lld", (long long)(NOW_MS / 1000));
        c[0].ttl_ms = 30u * 86400u * 1000u;
        break;
    default:                         /* txn_login.c: thr_cmd */
        snprintf(id, sizeof(id), "%016lx", i);
        memset(c, 0, sizeof(c));
        c[0].op = JPKI_STORE_INCR;
        c[0].keylen = jpki_throttle_key(c[0].key, sizeof(c[0].key), "fa", id,
                                        NOW_MS / 1000 / 60);
        c[0].soft = 1;
        c[1] = c[0];
        c[1].op = JPKI_STORE_PEXPIRE;
        c[1].ttl_ms = 121 * 1000;
        n = 2;
        break;
    }
    jpki_shm_exec_batch(s, c, n, NOW_MS, r);
    if (r[0].type == JPKI_STORE_R_FULL)
        return 0;
    if (r[0].type != JPKI_STORE_R_INT || (n == 2 && r[1].type
                                          != JPKI_STORE_R_INT))
        return -1;
    return 1;
}

/* Entries of kind k a table of size bytes takes before it refuses one
 * (0 on a failure). */
static unsigned long fill(void *mem, size_t size, int k)
{
    void *h = malloc(jpki_shm_handle_size());
    jpki_shm *s;
    unsigned long i = 0;
    int rc;

    if (h == NULL || jpki_shm_init(mem, size, 0) != JPKI_OK
        || (s = jpki_shm_attach(h, mem, size, NULL)) == NULL) {
        free(h);
        return 0;
    }
    while ((rc = put(s, k, i)) == 1)
        i++;
    if (rc < 0 || i == 0 || jpki_shm_count(s, NOW_MS) != i)
        i = 0;
    free(h);
    return i;
}

int main(void)
{
    void *mem = aligned_alloc(64, ZONE);
    unsigned long ngx, apache;
    int k;

    if (mem == NULL)
        return 1;
    for (k = 0; k < K_N; k++) {
        ngx = fill(mem, ZONE - ZONE / 8, k);
        apache = fill(mem, ZONE, k);
        if (ngx == 0 || apache == 0) {
            fprintf(stderr, "store_fill: %s: the store failed\n", names[k]);
            free(mem);
            return 1;
        }
        printf("figure: store.bytes_per_%s = %.1f\n", names[k],
               (double)ZONE / (double)ngx);
        printf("figure: store.%s_per_16mib = %lu\n", plural[k], ngx);
        printf("figure: store.%s_per_16mib.apache = %lu\n", plural[k],
               apache);
    }
    free(mem);
    return 0;
}
