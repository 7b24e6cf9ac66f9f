/*
 * crl_check.c - jpkictl crl status | purge | recheck: what the CRLs loaded
 * into Redis (crl_sync.c) hold, erasing revocation data, and the logins
 * accepted while revocation data was missing checked again.  The layout:
 * docs/store-schema.md; operations and exit codes: docs/operations.md.
 *
 * Nothing printed or stored names a serial number: entries are cert_ids.
 */
#include "crl_store.h"
#include "audit.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SCAN_COUNT       "1000"
#define RECHECK_PAGE     1000            /* soft records looked up at once */

const char usage_purge[] =
"jpkictl purge --revocation (--redis ADDR [...] | --map-file FILE)\n"
"  Erases every revocation record from the store: loaded CRLs\n"
"  (jpki:v1:crl*), cached answers (jpki:v1:rev:*) and soft-pass records\n"
"  (jpki:v1:soft:*), and prints how many keys went.  Stop crl sync jobs\n"
"  first.  Exit 0, 5 store failed.  The embedded store (--map-file) is the\n"
"  servers' shared memory, which jpkictl cannot reach: see\n"
"  docs/operations.md.\n\n";

const char usage_recheck[] =
"jpkictl recheck --redis ADDR [...] --issuer NAME=CAFILE[,...] [--issuer ..]\n"
"                --secret-file FILE\n"
"  Re-checks every login accepted while revocation data was unavailable or\n"
"  stale (jpki:v1:soft:* records) against the newest CRL loaded in the\n"
"  store for the CA key that issued the certificate (the list the record\n"
"  names; a record of an older gate names none: every list of its issuer,\n"
"  and each must be loaded to call it good); lists those whose\n"
"  certificate is now revoked:\n"
"    revoked cert_id=HEX issuer=NAME reason=R revoked_at=T auth_time=T\n"
"            request_id=ID\n"
"  (auth_time: the latest soft pass the record stands for; request_id: the\n"
"  request id of its line in the audit file, jpki_audit_log)\n"
"  and writes jpki:v1:rev:<cert_id> so that their sessions are refused at\n"
"  the next re-check on every node (a CRL that lists it proves it, however\n"
"  old).  Records that cannot be decided (no CRL of the key, not listed\n"
"  in a CRL older than the login, or in one past nextUpdate + --grace,\n"
"  default 172800 s as crl sync) are listed as \"unchecked\".\n"
"  Last line: \"recheck: records=N revoked=N unchecked=N good=N\".\n"
"  Exit 0 none revoked, 1 some revoked, 3 some unchecked (none revoked),\n"
"  2 usage (also: the CRLs were loaded with another secret), 5 store\n"
"  failed.\n\n";

/* ---- SCAN ------------------------------------------------------------- */

/* One page of SCAN: 0 with the next cursor in cursor, -1 with a message.
 * The reply must be an array of the cursor (a string of digits) and an
 * array of key names (strings): anything else, from a proxy or a broken
 * server, is refused, as an integer key would be a NULL name and an
 * integer cursor "(null)", which never ends the scan. */
static int scan_page(redisContext *rc, const char *match,
                     char cursor[32], redisReply **page)
{
    redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT " SCAN_COUNT,
                                 cursor, match), *c, *k;
    size_t i;

    *page = NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        say("redis: SCAN failed: %.120s", r != NULL ? r->str : rc->errstr);
        freeReplyObject(r);
        return -1;
    }
    c = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[0]
                                                          : NULL;
    k = c != NULL ? r->element[1] : NULL;
    for (i = 0; k != NULL && k->type == REDIS_REPLY_ARRAY
                && i < k->elements; i++)
        if (k->element[i]->type != REDIS_REPLY_STRING)
            break;
    if (c == NULL || c->type != REDIS_REPLY_STRING || c->len >= 32
        || !all_digits(c->str, c->len) || k->type != REDIS_REPLY_ARRAY
        || i < k->elements) {
        say("redis: SCAN answered an unexpected reply (not a cursor and an "
            "array of key names)");
        freeReplyObject(r);
        return -1;
    }
    memcpy(cursor, c->str, c->len + 1);
    *page = r;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every key matching, sorted, each once: SCAN may return a key more than
 * once. */
static int scan_keys(redisContext *rc, const char *match, char ***keys,
                     size_t *n)
{
    char cursor[32] = "0";
    size_t cap = 0, i, j;

    *keys = NULL;
    *n = 0;
    do {
        redisReply *r;

        if (scan_page(rc, match, cursor, &r) != 0)
            return -1;
        for (i = 0; i < r->element[1]->elements; i++) {
            if (*n == cap) {
                char **nk = realloc(*keys, (cap = cap ? cap * 2 : 64)
                                           * sizeof(char *));
                if (nk == NULL) {
                    freeReplyObject(r);
                    return -1;
                }
                *keys = nk;
            }
            if (((*keys)[*n] = strdup(r->element[1]->element[i]->str))
                == NULL) {
                freeReplyObject(r);
                return -1;
            }
            (*n)++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (*n > 1)
        qsort(*keys, *n, sizeof(char *), str_cmp);
    for (i = 1, j = 0; i < *n; i++) {
        if (strcmp((*keys)[i], (*keys)[j]) == 0)
            free((*keys)[i]);
        else
            (*keys)[++j] = (*keys)[i];
    }
    if (*n > 0)
        *n = j + 1;
    return 0;
}

static void free_keys(char **keys, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* ---- status ----------------------------------------------------------- */

/* "missing" for each CA key of the issuer without a list among keys (the
 * pointers found, plen: their prefix); 1 when one is. */
static int status_missing(const jpki_issuer *is, char **keys, size_t n,
                          size_t plen)
{
    jpki_crl_key k[JPKI_CRL_KEYS_MAX];
    size_t nk = jpki_crl_issuer_keys(is, k, JPKI_CRL_KEYS_MAX), i, x;
    char lid[CRL_LID_MAX];
    int bad = 0, found;

    for (x = 0; x < nk; x++) {
        if (list_id(is, k[x].hash, 0, lid) != 0)
            continue;
        for (i = 0, found = 0; i < n && !found; i++)
            found = strcmp(keys[i] + plen, lid) == 0;
        if (!found) {
            printf("missing issuer=%s list=%s ca=\"%s\"\n",
                   jpki_issuer_name(is), lid, k[x].subject);
            bad = 1;
        }
    }
    return bad;
}

/* What a list's record says it is: 1 the list of the record's issuer_tag
 * and key_tag (its name made of them), 0 one list per issuer of an older
 * jpkictl (a record without key_tag, or none), -1 a name its record does
 * not make. */
static int list_layout(const char *lid, int arl, const list_state *st)
{
    char want[CRL_LID_MAX];

    if (st->key_tag[0] == '\0')
        return 0;
    return jpki_crl_list_of(want, sizeof(want), st->issuer_tag, st->key_tag,
                            arl) > 0 && strcmp(want, lid) == 0 ? 1 : -1;
}

/* The line of one pointer found (lid: its list name): 0 fresh, 1 not
 * (stale, outdated, broken, mismatch), -1 store failure. */
static int status_list(redisContext *rc, const args_t *a, jpki_ctx *ctx,
                       const char *lid, unsigned grace)
{
    const char *name = NULL;
    const jpki_issuer *is = NULL;
    char idc[JPKI_CERT_ID_HEX_LEN + 1], t1[32], t2[32], t3[32];
    list_state st;
    size_t j;
    int s, arl;

    s = jpki_crl_list_parse(lid, &arl);
    if (s <= 0) {
        /* the lists per key of jpkictl 06b82fb, named "<issuer tag>.<key
         * tag>": the gate reads each under its list tag */
        printf("%s list=%.40s detail=\"%s\"\n", s == 0 ? "outdated"
               : "broken", lid, s == 0 ? "a list per key named by an older "
               "jpkictl: the gate does not read it; run crl sync with the "
               "CRL of each CA key, then jpkictl purge --revocation removes "
               "it" : "not a list name");
        return 1;
    }
    s = read_state(rc, lid, &st);
    if (s == -1)
        return -1;
    if (s == -2 || !st.have) {
        printf("broken list=%s detail=\"the pointer does not parse\"\n", lid);
        return 1;
    }
    if ((s = list_layout(lid, arl, &st)) <= 0) {
        /* the one list per issuer of an older jpkictl (no key in its
         * record): the gate reads the list of each CA key and fails
         * closed without it */
        printf("%s list=%s detail=\"%s\"\n", s == 0 ? "outdated" : "broken",
               lid, s == 0 ? "one list per issuer, loaded by an older "
               "jpkictl: the gate does not read it; run crl sync with the "
               "CRL of each CA key, then jpkictl purge --revocation removes "
               "it" : "its record (crlinfo issuer_tag, key_tag) names "
               "another list");
        return 1;
    }
    for (j = 0; ctx != NULL && j < jpki_ctx_issuer_count(ctx); j++)
        if (strcmp(st.issuer_tag, jpki_issuer_tag(jpki_ctx_issuer(ctx, j)))
            == 0) {
            is = jpki_ctx_issuer(ctx, j);
            name = jpki_issuer_name(is);
        }
    /* the gate refuses a list whose id_check is not its own: with the
     * gate's secret file, say so rather than "fresh" */
    if (is != NULL && a->val[O_SECRET] != NULL
        && (jpki_cert_id_from_serial_text(ctx, is, JPKI_CRL_ID_CHECK_SERIAL,
                                          idc) != JPKI_OK
            || strcmp(idc, st.id_check) != 0)) {
        printf("mismatch issuer=%s list=%s kind=%s detail=\"%s: loaded "
               "with another --secret-file or other CA files; the gate "
               "treats it as unavailable; run crl sync with the gate's "
               "files\"\n", name, lid, st.kind[0] ? st.kind : "crl",
               st.id_check[0] ? "id_check differs" : "no id_check");
        return 1;
    }
    s = stale_at(&st.m, a->now, grace);
    printf("%s issuer=%s list=%s kind=%s crl_number=%lld this_update=%s "
           "next_update=%s age=%llds entries=%llu loaded_at=%s "
           "source=%s\n", s ? "stale" : "fresh",
           name ? name : st.issuer[0] ? st.issuer : "?", lid,
           st.kind[0] ? st.kind : "crl", (long long)st.m.crl_number,
           iso8601(st.m.this_update, t1),
           st.m.next_update ? iso8601(st.m.next_update, t2) : "none",
           (long long)a->now - st.m.this_update,
           (unsigned long long)st.m.entries,
           iso8601(st.m.loaded_at, t3), st.source[0] ? st.source : "?");
    return s;
}

int run_crl_status(const args_t *a)
{
    unsigned long long grace;
    size_t plen = strlen(JPKI_STORE_PREFIX "crlmeta:"), n = 0, i, j;
    char **keys = NULL;
    jpki_ctx *ctx = NULL;
    redisContext *rc;
    int bad = 0, rc_ = EXIT_STORE, s;

    if (opt_uint(a, O_GRACE, 0, GRACE_MAX, DEFAULT_GRACE, &grace))
        return SHOW_USAGE;
    if (a->val[O_SECRET] != NULL && a->n_issuer == 0) {
        say("--secret-file needs the gate's --issuer");
        return SHOW_USAGE;
    }
    if (a->n_issuer > 0 && (ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if ((rc = redis_open(a)) == NULL)
        goto out;
    if (scan_keys(rc, JPKI_STORE_PREFIX "crlmeta:*", &keys, &n) != 0)
        goto out;
    for (i = 0; i < n; i++) {
        if (strlen(keys[i]) <= plen)
            continue;
        if ((s = status_list(rc, a, ctx, keys[i] + plen, (unsigned)grace))
            < 0)
            goto out;
        bad |= s;
    }
    for (j = 0; ctx != NULL && j < jpki_ctx_issuer_count(ctx); j++)
        bad |= status_missing(jpki_ctx_issuer(ctx, j), keys, n, plen);
    if (n == 0 && ctx == NULL) {
        printf("missing detail=\"no CRL loaded\"\n");
        bad = 1;
    }
    rc_ = bad ? EXIT_INVALID : EXIT_VALID;
out:
    free_keys(keys, n);
    redisFree(rc);
    jpki_ctx_free(ctx);
    return rc_;
}

/* ---- purge --revocation ------------------------------------------------ */

/* SCAN MATCH pattern + UNLINK of each page; the keys unlinked are added to
 * *total as they go, also when a later page fails.  0, -1 on failure. */
static int unlink_matching(redisContext *rc, const char *match,
                           long long *total)
{
    char cursor[32] = "0";

    do {
        redisReply *r, *u;
        const char **argv;
        size_t *lens, i, nk;

        if (scan_page(rc, match, cursor, &r) != 0)
            return -1;
        nk = r->element[1]->elements;
        if (nk > 0) {
            argv = malloc((nk + 1) * sizeof(char *));
            lens = malloc((nk + 1) * sizeof(size_t));
            if (argv == NULL || lens == NULL) {
                free(argv);
                free(lens);
                freeReplyObject(r);
                return -1;
            }
            argv[0] = "UNLINK";
            lens[0] = 6;
            for (i = 0; i < nk; i++) {
                argv[i + 1] = r->element[1]->element[i]->str;
                lens[i + 1] = r->element[1]->element[i]->len;
            }
            u = redisCommandArgv(rc, (int)nk + 1, argv, lens);
            free(argv);
            free(lens);
            if (u == NULL || u->type != REDIS_REPLY_INTEGER) {
                say("redis: UNLINK failed%s%.120s", u && u->str ? ": " : "",
                    u && u->str ? u->str : "");
                freeReplyObject(u);
                freeReplyObject(r);
                return -1;
            }
            *total += u->integer;       /* a key SCAN repeats counts once */
            freeReplyObject(u);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int run_purge(const args_t *a)
{
    static const char *const pat[3] = {JPKI_STORE_PREFIX "crl*",
                                       JPKI_STORE_PREFIX "rev:*",
                                       JPKI_STORE_PREFIX "soft:*"};
    long long n[3] = {0, 0, 0};
    redisContext *rc;
    int i;

    if (!!a->val[O_REDIS] + !!a->val[O_MAP_FILE] != 1) {
        say("give one of --redis or --map-file");
        return SHOW_USAGE;
    }
    if (a->val[O_MAP_FILE] != NULL) {
        printf("nothing to purge: the mapping file holds no revocation data; "
               "with the embedded store, cached answers and soft-pass records "
               "live in the servers' shared memory (restart the servers to "
               "erase them) and CRLs in the files the modules load (delete "
               "them)\n");
        return EXIT_VALID;
    }
    if ((rc = redis_open(a)) == NULL)
        return EXIT_STORE;
    for (i = 0; i < 3; i++)
        if (unlink_matching(rc, pat[i], &n[i]) != 0) {
            redisFree(rc);
            printf("store_failed purged %lld keys before the failure: "
                   "crl=%lld rev=%lld soft=%lld (run it again)\n",
                   n[0] + n[1] + n[2], n[0], n[1], n[2]);
            return EXIT_STORE;
        }
    redisFree(rc);
    printf("purged %lld keys: crl=%lld rev=%lld soft=%lld\n",
           n[0] + n[1] + n[2], n[0], n[1], n[2]);
    return EXIT_VALID;
}

/* ---- recheck ---------------------------------------------------------- */

/* The list of one CA key of a configured issuer (crlptr.h); the lists of
 * an issuer are next to each other. */
typedef struct {
    char tag[17];             /* the issuer's */
    char lid[CRL_LID_MAX];
    const jpki_issuer *is;
    int state;                /* 0 unknown, 1 loaded, 2 no CRL */
    int stale;                /* loaded, past nextUpdate + --grace */
    jpki_crlptr m;
} rc_list;

typedef struct {
    char key[JPKI_STORE_KEY_MAX + 1];
    char cert_id[JPKI_CERT_ID_HEX_LEN + 1];
    uint8_t id[JPKI_CERT_ID_LEN];
    long long auth_time;
    /* the lists that may hold it: the one the record names (its issuing
     * key's), or, from a gate before lists per key, all of its issuer's */
    rc_list *list;            /* the first */
    size_t nlists;
    const char *unchecked;    /* why it could not be decided */
    char rid[JPKI_AUDIT_RID_MAX + 1];  /* its audit line's request id ("":
                                          a record of an older gate) */
    int listed;               /* in the CRL: reason (-1 none), date */
    int reason;
    int64_t at;
} soft_rec;

/* jpki:v1:soft:<cert_id>:<day> (the day's first second, UTC; older gates
 * wrote the time of the pass) */
static int parse_soft_key(const char *k, soft_rec *s)
{
    size_t pl = strlen(JPKI_STORE_PREFIX "soft:"), n;
    const char *id = k + pl, *t;

    if (strlen(k) <= pl + JPKI_CERT_ID_HEX_LEN + 1
        || strspn(id, "0123456789abcdef") != JPKI_CERT_ID_HEX_LEN
        || id[JPKI_CERT_ID_HEX_LEN] != ':')
        return -1;
    t = id + JPKI_CERT_ID_HEX_LEN + 1;
    if (!all_digits(t, strlen(t)) || strlen(t) > 12)
        return -1;
    memcpy(s->cert_id, id, JPKI_CERT_ID_HEX_LEN);
    s->cert_id[JPKI_CERT_ID_HEX_LEN] = '\0';
    s->auth_time = strtoll(t, NULL, 10);
    return jpki_hex_decode(id, JPKI_CERT_ID_HEX_LEN, s->id, sizeof(s->id),
                           &n) == JPKI_OK && n == sizeof(s->id) ? 0 : -1;
}

/* The string value of a soft record's JSON field name ("name":"<value>"):
 * 0 with value (at most max - 1 characters of [0-9a-f.]), -1. */
static int soft_field(const char *json, size_t n, const char *name,
                      char *value, size_t max)
{
    char pat[16];
    const char *p, *end = json + n;
    size_t i;

    snprintf(pat, sizeof(pat), "\"%s\":\"", name);
    if ((p = memmem(json, n, pat, strlen(pat))) == NULL)
        return -1;
    p += strlen(pat);
    for (i = 0; p + i < end && i < max && p[i] != '"'; i++)
        if (strchr("0123456789abcdef.", p[i]) == NULL)
            return -1;
    if (p + i >= end || i >= max || i == 0)
        return -1;
    memcpy(value, p, i);
    value[i] = '\0';
    return 0;
}

/* The request id of the audit line of a soft record's latest pass
 * ("rid":"..."), or "" (an older gate's record, or not an id). */
static void soft_rid(const char *json, size_t n, char out[JPKI_AUDIT_RID_MAX + 1])
{
    static const char pat[] = "\"rid\":\"";
    const char *p = memmem(json, n, pat, sizeof(pat) - 1), *end = json + n;
    size_t i;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += sizeof(pat) - 1;
    for (i = 0; p + i < end && p[i] != '"' && i <= JPKI_AUDIT_RID_MAX; i++)
        ;
    if (p + i >= end || !jpki_audit_rid_ok(p, i))
        return;
    memcpy(out, p, i);
    out[i] = '\0';
}

/* The lists a soft record (its JSON) is looked up in: *first, *n; why not
 * as an "unchecked" word. */
static const char *soft_lists(const char *json, size_t len, rc_list *l,
                              size_t nl, rc_list **first, size_t *n)
{
    char tag[17], lid[CRL_LID_MAX];
    size_t j;
    int arl;

    *first = NULL;
    *n = 0;
    if (soft_field(json, len, "issuer", tag, sizeof(tag)) != 0
        || strlen(tag) != 16)
        return "malformed_record";
    /* a list name too long for this layout (the "<issuer tag>.<key tag>"
     * a gate of 06b82fb wrote) is no list: all of the issuer's, as for a
     * record without one.  The gate names CRL lists only (soft_field
     * takes no ".arl", and no ARL list is among l) */
    if (soft_field(json, len, "list", lid, sizeof(lid)) == 0) {
        if (jpki_crl_list_parse(lid, &arl) != 1)
            return "malformed_record";
        for (j = 0; j < nl && strcmp(l[j].lid, lid) != 0; j++)
            ;
        if (j < nl && strcmp(l[j].tag, tag) != 0)
            return "malformed_record";      /* another issuer's list */
        if (j < nl) {
            *first = &l[j];
            *n = 1;
        }
    } else {
        for (j = 0; j < nl && strcmp(l[j].tag, tag) != 0; j++)
            ;
        *first = j < nl ? &l[j] : NULL;
        for (; j < nl && strcmp(l[j].tag, tag) == 0; j++)
            (*n)++;
    }
    return *n == 0 ? "issuer_not_configured" : NULL;
}

/* The latest soft pass a record stands for: its JSON "ts" (the gate keeps
 * one record per certificate and day, rewritten by each pass), never
 * before the key's time. */
static long long soft_latest(const char *json, size_t n, long long key_time)
{
    static const char pat[] = "\"ts\":";
    const char *p = memmem(json, n, pat, sizeof(pat) - 1);
    long long ts = 0;
    size_t i;

    if (p == NULL)
        return key_time;
    p += sizeof(pat) - 1;
    for (i = 0; p + i < json + n && i < 12 && p[i] >= '0' && p[i] <= '9'; i++)
        ts = ts * 10 + (p[i] - '0');
    return i > 0 && ts > key_time ? ts : key_time;
}

/* Reads the pointer of each CA key of each configured issuer and checks
 * that its cert_ids were made with this secret and these CA files.  0, -1
 * store, -2 mismatch. */
static int recheck_lists(redisContext *rc, jpki_ctx *ctx, rc_list *l,
                         size_t nl)
{
    size_t i;

    for (i = 0; i < nl; i++) {
        char idc[JPKI_CERT_ID_HEX_LEN + 1];
        list_state st;
        int s = read_state(rc, l[i].lid, &st);

        if (s == -1)
            return -1;
        l[i].state = s == 0 && st.have ? 1 : 2;
        l[i].m = st.m;
        /* as the gate: a list without its id_check proves nothing either */
        if (l[i].state == 1
            && (st.id_check[0] == '\0'
                || jpki_cert_id_from_serial_text(ctx, l[i].is,
                                                 JPKI_CRL_ID_CHECK_SERIAL, idc)
                   != JPKI_OK
                || strcmp(idc, st.id_check) != 0)) {
            say("the CRL of issuer %s %s: its cert_ids cannot be trusted to "
                "match; give the gate's (and crl sync's) secret file and CA "
                "files, and sync it again", jpki_issuer_name(l[i].is),
                st.id_check[0] ? "was loaded with another --secret-file or "
                "other CA files" : "has no id_check");
            return -2;
        }
    }
    return 0;
}

typedef struct {
    unsigned long long records, revoked, unchecked, good;
} rc_count;

/* The page's soft records (GET, pipelined): each one's lists and latest
 * soft pass, or why it cannot be checked. */
static int recheck_records(redisContext *rc, rc_list *l, size_t nl,
                           char **keys, soft_rec *s, size_t nk)
{
    size_t i;

    for (i = 0; i < nk; i++) {
        snprintf(s[i].key, sizeof(s[i].key), "%s", keys[i]);
        if (parse_soft_key(keys[i], &s[i]) != 0)
            s[i].unchecked = "malformed_record";
        else if (redisAppendCommand(rc, "GET %s", keys[i]) != REDIS_OK)
            return -1;
    }
    for (i = 0; i < nk; i++) {                  /* the records' JSON */
        redisReply *r = NULL;

        if (s[i].unchecked != NULL)
            continue;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_STRING)
            s[i].unchecked = r->type == REDIS_REPLY_NIL ? "expired"
                                                          : "malformed_record";
        else {
            s[i].unchecked = soft_lists(r->str, r->len, l, nl, &s[i].list,
                                        &s[i].nlists);
            s[i].auth_time = soft_latest(r->str, r->len, s[i].auth_time);
            soft_rid(r->str, r->len, s[i].rid);
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Not listed in any of its lists: why that proves nothing, or NULL (good):
 * a list missing (its key may be the certificate's), older than the
 * latest soft pass, or stale (as stale as what the login had). */
static const char *not_listed(const soft_rec *s)
{
    size_t j;

    for (j = 0; j < s->nlists; j++)
        if (s->list[j].state != 1)
            return "no_crl";
    for (j = 0; j < s->nlists; j++)
        if (s->list[j].m.this_update < s->auth_time)
            return "crl_older_than_login";
    for (j = 0; j < s->nlists; j++)
        if (s->list[j].stale)
            return "crl_stale";
    return NULL;
}

/* The records' cert_ids looked up in their lists (HGET, pipelined): one
 * that lists it proves it revoked, however old. */
static int recheck_lookup(redisContext *rc, soft_rec *s, size_t nk)
{
    size_t i, j;

    for (i = 0; i < nk; i++) {                  /* the CRL lookups */
        for (j = 0; s[i].unchecked == NULL && j < s[i].nlists; j++) {
            const rc_list *l = &s[i].list[j];
            char key[JPKI_STORE_KEY_MAX + 1];
            const char *argv[3] = {"HGET", key, NULL};
            size_t lens[3], fl;

            if (l->state != 1)
                continue;
            crl_key_bucket(key, l->lid, l->m.gen, &l->m.shape, s[i].id);
            argv[2] = (const char *)jpki_crl_field(s[i].id, &l->m.shape, &fl);
            lens[0] = 4;
            lens[1] = strlen(key);
            lens[2] = fl;
            if (redisAppendCommandArgv(rc, 3, argv, lens) != REDIS_OK)
                return -1;
        }
    }
    for (i = 0; i < nk; i++) {                  /* their answers */
        const char *bad = NULL;

        for (j = 0; s[i].unchecked == NULL && j < s[i].nlists; j++) {
            redisReply *r = NULL;

            if (s[i].list[j].state != 1)
                continue;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
                return -1;
            if (r->type == REDIS_REPLY_STRING && !s[i].listed
                && jpki_crl_value_unpack((const uint8_t *)r->str, r->len,
                                         &s[i].reason, &s[i].at) == 0)
                s[i].listed = 1;
            else if (r->type != REDIS_REPLY_NIL && !s[i].listed)
                bad = "malformed_crl_entry";
            freeReplyObject(r);
        }
        if (s[i].unchecked == NULL && !s[i].listed)
            s[i].unchecked = bad != NULL ? bad : not_listed(&s[i]);
    }
    return 0;
}

/* The lines of the page, counted; a revoked certificate's state cached
 * (rev:<cert_id>) for every node's next re-check. */
static int recheck_report(redisContext *rc, const jpki_policy *pol,
                          const soft_rec *s, size_t nk, time_t now,
                          rc_count *cnt)
{
    char t1[32], t2[32];
    size_t i;

    for (i = 0; i < nk; i++) {                  /* report, cache */
        char key[JPKI_STORE_KEY_MAX + 1], val[128];
        unsigned long long ttl;
        redisReply *w;
        int hold, reason = s[i].reason, ok;

        if (s[i].unchecked != NULL && strcmp(s[i].unchecked, "expired") == 0)
            continue;
        cnt->records++;
        if (s[i].unchecked != NULL) {
            printf("unchecked cert_id=%s auth_time=%s why=%s%s%s\n",
                   s[i].cert_id, iso8601(s[i].auth_time, t1),
                   s[i].unchecked, s[i].rid[0] ? " request_id=" : "",
                   s[i].rid);
            cnt->unchecked++;
            continue;
        }
        if (!s[i].listed) {
            cnt->good++;
            continue;
        }
        hold = reason == JPKI_REASON_CERTIFICATE_HOLD;
        if (reason < 0)
            reason = JPKI_REASON_UNSPECIFIED;
        printf("revoked cert_id=%s issuer=%s reason=%s revoked_at=%s "
               "auth_time=%s%s%s\n", s[i].cert_id,
               jpki_issuer_name(s[i].list->is), jpki_reason_name(reason),
               iso8601(s[i].at, t1), iso8601(s[i].auth_time, t2),
               s[i].rid[0] ? " request_id=" : "", s[i].rid);
        cnt->revoked++;
        ttl = (unsigned long long)(hold ? pol->ocsp_hold_ttl
                                        : pol->ocsp_revoked_ttl) * 1000;
        if (ttl == 0)
            continue;
        if (ttl > 0xffffffffULL)
            ttl = 0xffffffffULL;
        snprintf(key, sizeof(key), JPKI_STORE_PREFIX "rev:%s", s[i].cert_id);
        snprintf(val, sizeof(val), "%s|%d|%lld|%lld|crl",
                 hold ? "hold" : "revoked", reason, (long long)s[i].at,
                 (long long)now);
        w = redisCommand(rc, "SET %s %s PX %llu", key, val, ttl);
        ok = w != NULL && w->type == REDIS_REPLY_STATUS;
        freeReplyObject(w);
        if (!ok) {
            say("redis: writing %s failed", key);
            return -1;
        }
    }
    return 0;
}

static int recheck_page(redisContext *rc, jpki_ctx *ctx, rc_list *l,
                        size_t nl, char **keys, size_t nk, time_t now,
                        rc_count *cnt)
{
    soft_rec *s = calloc(nk ? nk : 1, sizeof(soft_rec));
    int ret = -1;

    if (s != NULL && recheck_records(rc, l, nl, keys, s, nk) == 0
        && recheck_lookup(rc, s, nk) == 0
        && recheck_report(rc, jpki_ctx_get_policy(ctx), s, nk, now, cnt) == 0)
        ret = 0;
    free(s);
    return ret;
}

/* The lists of every CA key of every configured issuer. */
static rc_list *recheck_list_ids(const jpki_ctx *ctx, size_t *nl)
{
    size_t ni = jpki_ctx_issuer_count(ctx), i, k, nkey;
    jpki_crl_key keys[JPKI_CRL_KEYS_MAX];
    rc_list *l = calloc(ni * JPKI_CRL_KEYS_MAX + 1, sizeof(*l));

    *nl = 0;
    for (i = 0; l != NULL && i < ni; i++) {
        const jpki_issuer *is = jpki_ctx_issuer(ctx, i);

        nkey = jpki_crl_issuer_keys(is, keys, JPKI_CRL_KEYS_MAX);
        for (k = 0; k < nkey; k++) {
            rc_list *x = &l[*nl];

            x->is = is;
            snprintf(x->tag, sizeof(x->tag), "%s", jpki_issuer_tag(is));
            if (list_id(is, keys[k].hash, 0, x->lid) == 0)
                (*nl)++;
        }
    }
    return l;
}

int run_recheck(const args_t *a)
{
    rc_list *l = NULL;
    rc_count cnt = {0, 0, 0, 0};
    jpki_ctx *ctx;
    redisContext *rc = NULL;
    char **keys = NULL;
    unsigned long long grace;
    size_t nl, nk = 0, i;
    int rc_ = EXIT_STORE, s;

    if (opt_uint(a, O_GRACE, 0, GRACE_MAX, DEFAULT_GRACE, &grace) != 0)
        return SHOW_USAGE;
    if ((ctx = build_ctx(a, 0)) == NULL)
        return EXIT_USAGE;
    if ((l = recheck_list_ids(ctx, &nl)) == NULL
        || (rc = redis_open(a)) == NULL)
        goto out;
    s = recheck_lists(rc, ctx, l, nl);
    if (s != 0) {
        rc_ = s == -2 ? EXIT_USAGE : EXIT_STORE;
        goto out;
    }
    for (i = 0; i < nl; i++)
        l[i].stale = l[i].state == 1 && stale_at(&l[i].m, a->now,
                                                 (unsigned)grace);
    /* every record once (SCAN may return a key twice), then by pages */
    if (scan_keys(rc, JPKI_STORE_PREFIX "soft:*", &keys, &nk) != 0)
        goto out;
    for (i = 0; i < nk; i += RECHECK_PAGE) {
        if (recheck_page(rc, ctx, l, nl, keys + i, nk - i < RECHECK_PAGE
                         ? nk - i : RECHECK_PAGE, a->now, &cnt) != 0) {
            say("redis: the re-check failed part way (%s)",
                rc->err ? rc->errstr : "a command failed");
            goto out;
        }
    }
    printf("recheck: records=%llu revoked=%llu unchecked=%llu good=%llu\n",
           cnt.records, cnt.revoked, cnt.unchecked, cnt.good);
    rc_ = cnt.revoked > 0 ? EXIT_INVALID
          : cnt.unchecked > 0 ? EXIT_NOT_NEWER : EXIT_VALID;
out:
    free_keys(keys, nk);
    free(l);
    redisFree(rc);
    jpki_ctx_free(ctx);
    return rc_;
}
