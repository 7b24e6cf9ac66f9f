/* test_crlzone.c - common/crlzone.c: the CRLs in force of a site, in a
 * shared zone (forked readers, a writer swapping CRLs) and in a process's
 * own memory; several CRLs per issuer, one per CA key; the issuer
 * directive's grammar (common/conf_issuer.c). */
#include "internal.h"
#include "crlzone.h"
#include "conf_issuer.h"
#include "pki.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define like(got, want, ...) do {                                          \
        const char *g_ = (got), *w_ = (want);                              \
        if (!ok(g_ != NULL && strstr(g_, w_) != NULL, __VA_ARGS__))        \
            printf("#   got: %s\n#   want: ...%s...\n", g_ ? g_ : "(null)", \
                   w_);                                                    \
    } while (0)

static time_t now;
static const jpki_ctx *ctx;
static const jpki_issuer *jis, *phis;

/* ---- fixtures ----------------------------------------------------- */

#define load_x509(name) ((X509 *)tap_pem_read(name, 0))
#define load_key(name) ((EVP_PKEY *)tap_pem_read(name, 1))

static jpki_cert *cert(const char *name)
{
    uint8_t *buf;
    size_t len;
    jpki_cert *c = NULL;

    if (jpki_load_file(tap_path(name), 1 << 20, &buf, &len) != JPKI_OK)
        return NULL;
    if (jpki_cert_check(ctx, buf, len, now, &c, NULL, 0) != JPKI_OK)
        c = NULL;
    free(buf);
    return c;
}

static jpki_crl_index *index_of(const char *name)
{
    jpki_crl_index *ix = NULL;
    char detail[256];

    if (jpki_crlzone_build(ctx, tap_path(name), now, 0, &ix, detail,
                           sizeof(detail)) != JPKI_OK)
        printf("# %s: %s\n", name, detail);
    return ix;
}

/* CRL generation g of ca2: number 100 + g, thisUpdate now - 600 + g; the
 * serial of x listed when g is even; fill other entries. */
static uint8_t *mk_gen(EVP_PKEY *k, X509 *ca, X509 *x, int g, int fill,
                       size_t *len)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, now - 600 + g);
    ASN1_INTEGER *num = ASN1_INTEGER_new();
    X509V3_CTX v3;
    X509_EXTENSION *aki;
    unsigned char *der = NULL;
    int i, l;

    X509_CRL_set_version(crl, X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_set(t, now + 86400);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_set(t, now - 86400);
    for (i = -1; i < fill; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *s = ASN1_INTEGER_new();

        if (i < 0 && g % 2 != 0) {
            X509_REVOKED_free(r);
            ASN1_INTEGER_free(s);
            continue;
        }
        if (i < 0)
            ASN1_STRING_copy(s, X509_get0_serialNumber(x));
        else
            ASN1_INTEGER_set_int64(s, 0x7E000000LL + g * 100000LL + i);
        X509_REVOKED_set_serialNumber(r, s);
        X509_REVOKED_set_revocationDate(r, t);
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(s);
    }
    ASN1_INTEGER_set(num, 100 + g);
    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
    X509V3_set_ctx(&v3, ca, NULL, NULL, crl, 0);
    aki = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier,
                              "keyid:always");
    X509_CRL_add_ext(crl, aki, -1);
    X509_CRL_sort(crl);
    X509_CRL_sign(crl, k, EVP_sha256());
    l = i2d_X509_CRL(crl, &der);
    *len = l > 0 ? (size_t)l : 0;
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return der;
}

/* One load of f (version v) with index ix: the outcome. */
static int load(jpki_crlzone *z, const jpki_issuer *is,
                const char *path, int v, jpki_crl_index *ix,
                char *msg, size_t ml)
{
    jpki_crlzone_file f = {is, path, &v, sizeof(v)};

    if (!jpki_crlzone_begin(z, &f, now)) {
        jpki_crl_index_free(ix);
        snprintf(msg, ml, "(not begun)");
        return -1;
    }
    return jpki_crlzone_end(z, &f, ix ? JPKI_OK : JPKI_ERR_CRL_PARSE, ix,
                            now, msg, ml);
}

static int status_of(jpki_crlzone *z, jpki_cert *c, jpki_err *e)
{
    jpki_rev_info ri;

    *e = jpki_crlzone_lookup(z, c->issuer, c->issuer_key_hash, c->cert_id,
                             now, 0, &ri);
    return *e == JPKI_OK ? (int)ri.status : -1;
}

/* ---- several CRLs per issuer -------------------------------------- */

static void t_keys(jpki_crlzone *z, const char *what)
{
    jpki_cert *uo = cert("user-old.pem"), *uor = cert("user-old-revoked.pem");
    jpki_cert *u1 = cert("user1.pem"), *kc = cert("rev-keyCompromise.pem");
    jpki_cert *ph = cert("phone-user.pem");
    char msg[512];
    jpki_err e;

    ok(uo && uor && u1 && kc && ph, "%s: certificates check", what);
    if (!(uo && uor && u1 && kc && ph))
        return;
    is_int(load(z, jis, "/x/ca2.crl", 1, index_of("ca2.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_LOADED, "%s: ca2.crl loaded", what);
    like(msg, "CRL \"/x/ca2.crl\" of issuer \"jpki\" loaded: 7 entries",
         "%s: the sentence", what);
    is_int(status_of(z, u1, &e), JPKI_REV_GOOD, "%s: user1 good", what);
    is_int(status_of(z, kc, &e), JPKI_REV_REVOKED, "%s: keyCompromise "
           "revoked", what);
    /* the bug: a ca1 certificate answered by ca2's CRL */
    is_int(status_of(z, uor, &e), -1, "%s: user-old-revoked (ca1) with "
           "ca2.crl only: no answer", what);
    is_int(e, JPKI_ERR_REVOCATION_UNAVAILABLE, "%s: ... revocation "
           "unavailable (no CRL of ca1's key)", what);
    is_int(status_of(z, uo, &e), -1, "%s: user-old too", what);
    is_int(status_of(z, ph, &e), -1, "%s: phone: no CRL", what);

    is_int(load(z, jis, "/x/ca1.crl", 1, index_of("ca1.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_LOADED, "%s: ca1.crl loaded beside",
           what);
    is_int(status_of(z, uor, &e), JPKI_REV_REVOKED, "%s: user-old-revoked "
           "revoked by ca1.crl", what);
    is_int(status_of(z, uo, &e), JPKI_REV_GOOD, "%s: user-old good", what);
    is_int(status_of(z, kc, &e), JPKI_REV_REVOKED, "%s: ca2.crl still in "
           "force", what);

    /* the same version again: not begun; an older CRL of a key refused */
    is_int(load(z, jis, "/x/ca2.crl", 1, index_of("ca2-released.crl"), msg,
                sizeof(msg)), -1, "%s: a version tried is not loaded again",
           what);
    is_int(load(z, jis, "/x/ca2.crl", 2, index_of("ca2-released.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_LOADED, "%s: a newer version "
           "replaces it", what);
    is_int(load(z, jis, "/x/b.crl", 1, index_of("ca2.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_REFUSED, "%s: an older CRL of the "
           "key, another file: refused", what);
    like(msg, "refused: crl_stale (older than the CRL loaded)",
         "%s: ... crl_stale", what);
    is_int(load(z, jis, "/x/c.crl", 1, index_of("phone-ca.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_REFUSED, "%s: another issuer's "
           "CRL refused", what);
    like(msg, "crl_unknown_issuer (a CRL of issuer \"phone\", not of "
         "\"jpki\")", "%s: ... crl_unknown_issuer", what);
    is_int(load(z, jis, "/x/d.crl", 1, NULL, msg, sizeof(msg)),
           JPKI_CRLZONE_REFUSED, "%s: a file that does not parse", what);
    is_int(load(z, phis, "/x/p.crl", 1, index_of("phone-ca.crl"), msg,
                sizeof(msg)), JPKI_CRLZONE_LOADED, "%s: phone's CRL", what);
    is_int(status_of(z, ph, &e), JPKI_REV_GOOD, "%s: phone-user good", what);
    is_int(jpki_crlzone_unreadable(z, jis, "/x/ca1.crl"), 1,
           "%s: unreadable: logged once", what);
    is_int(jpki_crlzone_unreadable(z, jis, "/x/ca1.crl"), 0, "%s: ... once",
           what);
    is_int(status_of(z, uor, &e), JPKI_REV_REVOKED, "%s: ca1's CRL stays in "
           "force", what);
    jpki_cert_free(uo);
    jpki_cert_free(uor);
    jpki_cert_free(u1);
    jpki_cert_free(kc);
    jpki_cert_free(ph);
}

static void t_health(jpki_crlzone *z, const char *what)
{
    char buf[2048];
    jpki_health h;

    jpki_health_init(&h, buf, sizeof(buf), now, 0, 300);
    jpki_crlzone_health(z, jis, "/x/ca2.crl", NULL, &h);
    ok(h.ok, "%s: health of ca2.crl ok", what);
    like(buf, "{\"issuer\":\"jpki\",\"loaded\":true,", "%s: loaded", what);
    like(buf, "\"crl_number\":3,", "%s: crl number 3", what);
    like(buf, "\"last_load\":\"ok\"", "%s: last load ok", what);
    jpki_crlzone_health(z, jis, "/x/b.crl", "b.crl", &h);
    ok(!h.ok, "%s: the refused file: degraded", what);
    like(buf, "\"file\":\"b.crl\",\"loaded\":false,\"error\":\"crl_stale\"",
         "%s: ... crl_stale", what);
    jpki_health_init(&h, buf, sizeof(buf), now, 0, 300);
    jpki_crlzone_health(z, jis, "/x/none.crl", NULL, &h);
    ok(!h.ok && strstr(buf, "revocation_unavailable") != NULL,
       "%s: a file never tried: not loaded", what);
}

/* ---- a shared zone: layout, claim, room ---------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int dead;                           /* a pid alive() says is gone */
} shlock;

static void sh_lock(void *ud) { pthread_mutex_lock(&((shlock *)ud)->mu); }
static void sh_unlock(void *ud) { pthread_mutex_unlock(&((shlock *)ud)->mu); }
static int sh_alive(void *ud, long pid)
{
    return pid != ((shlock *)ud)->dead && kill((pid_t)pid, 0) == 0;
}

static shlock *shlock_new(void)
{
    shlock *l = mmap(NULL, sizeof(shlock), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t a;

    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&l->mu, &a);
    l->dead = -1;
    return l;
}

static void t_shared(void)
{
    size_t size = jpki_crlzone_overhead() + 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shlock *l = shlock_new();
    jpki_crlzone_ops ops = {sh_lock, sh_unlock, NULL, NULL, sh_alive, l};
    jpki_crlzone *z, *z2;
    char msg[512];
    int v = 1;
    jpki_crlzone_file f = {NULL, "/x/big.crl", &v, sizeof(v)};

    is_int(jpki_crlzone_format(mem, 100), -1, "format: too small");
    is_int(jpki_crlzone_format(mem, size), 0, "format: laid out");
    is_int(jpki_crlzone_format(mem, size), 1, "format again: kept");
    ok(jpki_crlzone_attach(mem, size - 64, "z", &ops, getpid()) == NULL,
       "attach with another size: refused");
    z = jpki_crlzone_attach(mem, size, "z", &ops, getpid());
    ok(z != NULL && jpki_crlzone_shared(z), "attached");
    t_keys(z, "shared");
    t_health(z, "shared");

    /* another live process loads: no claim; a dead one is taken over */
    z2 = jpki_crlzone_attach(mem, size, "z", &ops, getppid());
    f.issuer = jis;
    ok(jpki_crlzone_begin(z2, &f, now), "another process begins a load");
    is_int(jpki_crlzone_begin(z, &f, now), 0, "... the claim is its own");
    f.path = "/x/big2.crl";
    is_int(jpki_crlzone_begin(z, &f, now), 0, "... for every file");
    l->dead = getppid();
    ok(jpki_crlzone_begin(z, &f, now), "it died: taken over");
    jpki_crlzone_end(z, &f, JPKI_ERR_IO, NULL, now, msg, sizeof(msg));
    l->dead = -1;
    /* the first loader ends after all: its CRL is not put in force, and
     * its file is not counted as tried (the one who took over loads it) */
    f.path = "/x/big.crl";
    is_int(jpki_crlzone_end(z2, &f, JPKI_OK, index_of("ca2-empty.crl"), now,
                            msg, sizeof(msg)), JPKI_CRLZONE_FAILED,
           "the loader taken over: its CRL not put in force");
    like(msg, "another process took the loading over", "... said");
    ok(jpki_crlzone_begin(z, &f, now), "... the file is loaded by another");
    jpki_crlzone_end(z, &f, JPKI_ERR_IO, NULL, now, msg, sizeof(msg));
    jpki_crlzone_free(z2);

    /* a zone too small for a CRL: its key fails closed, logged */
    {
        EVP_PKEY *k = load_key("ca2.key");
        X509 *ca = load_x509("ca2.pem"), *x = load_x509("user1.pem");
        size_t len;
        uint8_t *der = mk_gen(k, ca, x, 50, 4000, &len);
        jpki_crl_index *ix = NULL;

        is_int(jpki_crl_index_build(ctx, der, len, now, 0, &ix, NULL, 0),
               JPKI_OK, "a CRL of 4000 entries builds");
        v = 9;
        is_int(load(z, jis, "/x/ca2.crl", 9, ix, msg, sizeof(msg)),
               JPKI_CRLZONE_FAILED, "too big for the zone: not loaded");
        like(msg, "CRL zone \"z\" too small: CRL \"/x/ca2.crl\" of issuer "
             "\"jpki\" needs 96064 bytes", "... the sentence");
        like(msg, "the CRL loaded before stays in force", "... which says "
             "the CRL in force stays");
        OPENSSL_free(der);
        EVP_PKEY_free(k);
        X509_free(ca);
        X509_free(x);
    }

    /* the issuers no longer configured: released */
    {
        const jpki_issuer *keep[1] = {phis};
        jpki_cert *kc = cert("rev-keyCompromise.pem"), *ph = cert(
            "phone-user.pem");
        jpki_err e;

        jpki_crlzone_retain(z, keep, 1);
        is_int(status_of(z, kc, &e), -1, "retain: jpki's CRLs released");
        is_int(status_of(z, ph, &e), JPKI_REV_GOOD, "retain: phone's kept");
        jpki_cert_free(kc);
        jpki_cert_free(ph);
    }
    jpki_crlzone_tick(z);
    jpki_crlzone_free(z);
    munmap(mem, size);
    munmap(l, sizeof(*l));
}

/* ---- a local zone ------------------------------------------------- */

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static void rw_w(void *ud) { pthread_rwlock_wrlock(&rw); }
static void rw_r(void *ud) { pthread_rwlock_rdlock(&rw); }
static void rw_u(void *ud) { pthread_rwlock_unlock(&rw); }

static void t_local(void)
{
    jpki_crlzone_ops ops = {rw_w, rw_u, rw_r, rw_u, NULL, NULL};
    jpki_crlzone *z = jpki_crlzone_local(&ops);

    ok(z != NULL && !jpki_crlzone_shared(z), "a local zone");
    t_keys(z, "local");
    t_health(z, "local");
    jpki_crlzone_free(z);
}

/* ---- concurrent swaps --------------------------------------------- */

#define GENS 40

/* Readers (forked) look X and user1 up while the writer swaps the
 * generations, each of another size (blocks move and are reused): every
 * answer must be a whole generation's (X revoked iff its thisUpdate says
 * an even generation), user1 always good, never an error. */
static int reader(jpki_crlzone *z, jpki_cert *x, jpki_cert *good,
                  volatile int *stop)
{
    jpki_rev_info ri;
    long n = 0, bad = 0, gens[2] = {0, 0};
    pid_t parent = getppid();
    jpki_err e;
    int g;

    /* (the writer gone, say killed by a sanitizer: the readers end too) */
    while (!*stop && getppid() == parent) {
        e = jpki_crlzone_lookup(z, x->issuer, x->issuer_key_hash, x->cert_id,
                                now, 0, &ri);
        g = (int)(ri.this_update - (now - 600));
        if (e != JPKI_OK || g < 0 || g > GENS
            || (ri.status == JPKI_REV_REVOKED) != (g % 2 == 0)
            || (ri.status != JPKI_REV_REVOKED && ri.status != JPKI_REV_GOOD))
            bad++;
        else
            gens[g % 2]++;
        e = jpki_crlzone_lookup(z, good->issuer, good->issuer_key_hash,
                                good->cert_id, now, 0, &ri);
        if (e != JPKI_OK || ri.status != JPKI_REV_GOOD)
            bad++;
        n++;
    }
    printf("# reader %d: %ld lookups, %ld even, %ld odd, %ld bad\n",
           (int)getpid(), n, gens[0], gens[1], bad);
    return bad == 0 && gens[0] > 0 && gens[1] > 0 ? 0 : 1;
}

static void t_swaps(void)
{
    size_t room = 256 * 1024, size = jpki_crlzone_overhead() + room;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile int *stop = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shlock *l = shlock_new();
    jpki_crlzone_ops ops = {sh_lock, sh_unlock, NULL, NULL, sh_alive, l};
    EVP_PKEY *k = load_key("ca2.key");
    X509 *ca = load_x509("ca2.pem"), *xx = load_x509("rev-keyCompromise.pem");
    jpki_cert *x = cert("rev-keyCompromise.pem"), *good = cert("user1.pem");
    jpki_crl_index *ix[GENS + 1];
    jpki_crlzone *z;
    pid_t kids[3];
    int g, i, st, fails = 0, loaded = 0, round;
    char msg[512];

    jpki_crlzone_format(mem, size);
    z = jpki_crlzone_attach(mem, size, "swap", &ops, getpid());
    for (g = 0; g <= GENS; g++) {
        size_t len;
        /* 0 .. 3900 other entries: up to 94 KB, 3 of them fill the room */
        uint8_t *der = mk_gen(k, ca, xx, g, 300 * ((g * 7) % 13), &len);

        ix[g] = NULL;
        jpki_crl_index_build(ctx, der, len, now, 0, &ix[g], NULL, 0);
        OPENSSL_free(der);
        fails += ix[g] == NULL;
    }
    is_int(fails, 0, "%d CRL generations built", GENS + 1);
    is_int(load(z, jis, "/x/swap.crl", 0, ix[0], msg, sizeof(msg)),
           JPKI_CRLZONE_LOADED, "generation 0 in force");
    ix[0] = NULL;
    for (i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            jpki_crlzone *rz = jpki_crlzone_attach(mem, size, "swap", &ops,
                                                   getpid());
            _exit(reader(rz, x, good, stop));
        }
    }
    /* each generation once, then again from a copy (the same entries at
     * other offsets): GENS * 4 swaps */
    for (round = 0; round < 4; round++) {
        for (g = 1; g <= GENS; g++) {
            jpki_crl_index *c = calloc(1, sizeof(*c));

            /* a copy of generation g as a new CRL: numbers go up */
            *c = *ix[g];
            c->e = malloc(ix[g]->n * sizeof(ix_entry) + 1);
            if (ix[g]->n > 0)
                memcpy(c->e, ix[g]->e, ix[g]->n * sizeof(ix_entry));
            c->cap = c->n;
            c->info.crl_number = 1000 + round * 100 + g;
            loaded += load(z, jis, "/x/swap.crl", round * 100 + g, c, msg,
                           sizeof(msg)) == JPKI_CRLZONE_LOADED;
            usleep(2000);
        }
    }
    *stop = 1;
    for (i = 0, fails = 0; i < 3; i++) {
        waitpid(kids[i], &st, 0);
        fails += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    is_int(loaded, GENS * 4, "every swap put its CRL in force (the blocks "
           "replaced were reclaimed: the room holds 3 of them)");
    is_int(fails, 0, "3 readers: every answer a whole generation's, user1 "
           "always good, both verdicts seen");
    for (g = 0; g <= GENS; g++)
        jpki_crl_index_free(ix[g]);
    jpki_crlzone_free(z);
    jpki_cert_free(x);
    jpki_cert_free(good);
    EVP_PKEY_free(k);
    X509_free(ca);
    X509_free(xx);
    munmap(mem, size);
}

/* ---- files and coverage -------------------------------------------- */

static void warn_cb(void *ud, const char *msg)
{
    char *out = ud;

    snprintf(out + strlen(out), 2048 - strlen(out), "%s\n", msg);
}

static void t_files(void)
{
    char dir[] = "/tmp/crlzone-XXXXXX", p[512], *files[8], warned[2048];
    const char *src[2];
    int n;

    ok(mkdtemp(dir) != NULL, "a directory");
    snprintf(p, sizeof(p), "cp %s %s %s/ && touch %s/README %s/.x.crl",
             tap_path("ca1.crl"), tap_path("ca2.crl.pem"), dir, dir, dir);
    ok(system(p) == 0, "two CRLs and other files in it");
    n = jpki_crl_source_files(dir, files, 8);
    is_int(n, 2, "a directory: its *.crl and *.pem files");
    if (n == 2)
        ok(strstr(files[0], "/ca1.crl") && strstr(files[1], "/ca2.crl.pem"),
           "... sorted");
    jpki_crl_source_files_free(files, n > 0 ? (size_t)n : 0);
    is_int(jpki_crl_source_files("/nonexistent", files, 8), -1,
           "a missing source: -1");

    warned[0] = '\0';
    src[0] = tap_path("ca2.crl");
    is_int(jpki_crl_coverage_check(ctx, jis, src, 1, warn_cb, warned), 1,
           "ca2.crl only: one CA key without a CRL");
    like(warned, "issuer \"jpki\": no CRL file covers the CA key ",
         "... the warning");
    like(warned, "certificates it issued will fail closed", "... says what");
    warned[0] = '\0';
    src[1] = tap_path("ca1.crl");
    is_int(jpki_crl_coverage_check(ctx, jis, src, 2, warn_cb, warned), 0,
           "ca2.crl and ca1.crl: every key covered");
    src[0] = dir;
    is_int(jpki_crl_coverage_check(ctx, jis, src, 1, warn_cb, warned), 0,
           "the directory: every key covered");
    is_str(warned, "", "... no warning");
    snprintf(p, sizeof(p), "rm -rf %s", dir);
    (void)system(p);
}

/* ---- the issuer directive's grammar -------------------------------- */

static jpki_err parse(const char *line, jpki_conf_issuer *s, char *err)
{
    const char *argv[16];
    char buf[1024], *tok, *save;
    size_t n = 0;

    snprintf(buf, sizeof(buf), "%s", line);
    for (tok = strtok_r(buf, " ", &save); tok && n < 16;
         tok = strtok_r(NULL, " ", &save))
        argv[n++] = tok;
    err[0] = '\0';
    return jpki_conf_issuer_parse(s, argv, n, err, 256);
}

static void t_grammar(void)
{
    static const struct { const char *line, *err; } bad[] = {
        {"card", "issuer \"card\": needs ca=FILE[,FILE...]"},
        {"bad/name ca=a", "needs a name of 1..63 letters"},
        {"card ca=a,,b", "issuer \"card\": has an empty CA file name"},
        {"card ca=a oscp=http://x/", "issuer \"card\": invalid parameter "
         "\"oscp=http://x/\" (expected ca=, ocsp=, crl= or policy=)"},
        {"card ca=a ocsp=https://x/", "needs an http:// OCSP URL"},
        {"card ca=a ocsp=http://x/ ocsp=http://y/", "has ocsp= twice"},
        {"card ca=a crl=", "has crl= without a file or directory name"},
        {"card ca=a policy=x.y", "invalid policy OID \"x.y\""},
        {"card ca=a policy=none policy=none", "has policy= twice"},
        {"card ca=1,2,3,4,5,6,7,8,9", "has more than 8 CA files"},
        {"card ca=a crl=1 crl=2 crl=3 crl=4 crl=5 crl=6 crl=7 crl=8 crl=9",
         "has more than 8 crl= sources"},
    };
    jpki_conf_issuer s;
    char err[256];
    size_t i;

    is_int(parse("card ca=a.pem,b.pem ca=c.pem crl=x.crl crl=dir "
                 "ocsp=http://127.0.0.1:8888/ocsp policy=none", &s, err),
           JPKI_OK, "a full issuer parses");
    ok(s.n_ca == 3 && strcmp(s.ca[2], "c.pem") == 0, "three CA files");
    ok(s.n_crl == 2 && strcmp(s.crl[1], "dir") == 0, "two crl= sources");
    ok(s.ocsp && strcmp(s.ocsp_hostport, "127.0.0.1:8888") == 0
       && strcmp(s.ocsp_path, "/ocsp") == 0, "the OCSP URL, split");
    ok(s.policy && s.policy[0] == '\0', "policy none");
    jpki_conf_issuer_free(&s);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(parse(bad[i].line, &s, err), JPKI_ERR_INVALID, "refused: %s",
               bad[i].line);
        like(err, bad[i].err, "... %s", bad[i].err);
    }
}

int main(void)
{
    jpki_ctx *c;

    now = time(NULL);
    c = tap_pki_ctx(0x42, NULL, NULL);
    if (!ok(c != NULL, "context"))
        return done_testing();
    ctx = c;
    jis = jpki_ctx_issuer(ctx, 0);
    phis = jpki_ctx_issuer(ctx, 1);
    t_local();
    t_shared();
    t_swaps();
    t_files();
    t_grammar();
    jpki_ctx_free(c);
    return done_testing();
}
