/*
 * mod_auth_jpki_crl.c - the issuers and their CRLs, Apache's side: the
 * JPKIIssuer directive, the CRL zone's APR shared memory segment and
 * global mutex (kept in the process pool across restarts of the same
 * size), and the per-process CRLs' read-write lock.  The grammar, the
 * zone's layout and protocol and the lookups are the core's (common/
 * conf_issuer.c, common/crlzone.c); the CRL files are watched with the
 * mapping file (mod_auth_jpki_io.c, common/watch.c).
 */

#include "mod_auth_jpki.h"
#include "conf_issuer.h"
#include "util_mutex.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MJPKI_CRLZ_LIST  "auth_jpki-crlzones"


/* ---- JPKIIssuer NAME ca=FILE[,FILE...] [ocsp=URL] [crl=FILE|DIR]...
 *                 [policy=OID|none] ------------------------------------- */

static const char *
mjpki_issuer_abs(void *ud, const char *path)
{
    return ap_server_root_relative(((cmd_parms *) ud)->pool, path);
}


static void
mjpki_issuer_warn(void *ud, const char *msg)
{
    /* Apache reads its configuration twice when it starts: the warning
     * goes with the pass it runs (and with a configuration test), once */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        && ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_CONFIG_TEST)
    {
        return;
    }

    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ((cmd_parms *) ud)->server,
                 "jpki: %s", msg);
}


static apr_status_t
mjpki_issuer_free(void *data)
{
    jpki_conf_issuer_free(data);
    return APR_SUCCESS;
}


const char *
mjpki_cmd_issuer(cmd_parms *cmd, void *dconf, int argc, char *const argv[])
{
    mjpki_site         *site = mjpki_cmd_site(cmd);
    mjpki_issuer_spec  *spec;
    jpki_conf_issuer   *cs;
    char               buf[512];
    int                i;

    cs = apr_pcalloc(cmd->pool, sizeof(jpki_conf_issuer));
    if (jpki_conf_issuer_parse(cs, (const char *const *) argv,
                               (size_t) argc, buf, sizeof(buf)) != JPKI_OK)
    {
        return apr_psprintf(cmd->pool, "JPKIIssuer: %s", buf);
    }
    apr_pool_cleanup_register(cmd->pool, cs, mjpki_issuer_free,
                              apr_pool_cleanup_null);

    for (i = 0; site->issuers != NULL && i < site->issuers->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(site->issuers, i, mjpki_issuer_spec).name,
                   cs->name) == 0)
        {
            return apr_psprintf(cmd->pool, "JPKIIssuer: duplicate issuer "
                                "name \"%s\"", cs->name);
        }
    }

    /* as nginx does: the issuer one too many is refused where it is */
    if (site->issuers != NULL
        && jpki_site_issuers_full((size_t) site->issuers->nelts))
    {
        return "JPKIIssuer " JPKI_SITE_ISSUER_NAME;
    }

    /* the files load, and each CA key has a CRL (a warning) */
    if (jpki_conf_issuer_paths(cs, mjpki_issuer_abs, cmd, buf, sizeof(buf))
            != JPKI_OK
        || jpki_conf_issuer_check(cs, mjpki_issuer_warn, cmd, buf,
                                  sizeof(buf)) != JPKI_OK)
    {
        return apr_psprintf(cmd->pool, "JPKIIssuer: %s", buf);
    }

    if (site->issuers == NULL) {
        site->issuers = apr_array_make(cmd->pool, 4,
                                       sizeof(mjpki_issuer_spec));
    }
    spec = apr_array_push(site->issuers);
    spec->name = cs->name;
    spec->cs = cs;
    spec->ocsp_url = cs->ocsp;
    spec->crl = apr_array_make(cmd->pool, (int) cs->n_crl + 1,
                               sizeof(const char *));
    for (i = 0; i < (int) cs->n_crl; i++) {
        APR_ARRAY_PUSH(spec->crl, const char *) = cs->crl[i];
    }

    return NULL;
}


/* ---- the zone: an APR segment, a global mutex ------------------------ */

static void
mjpki_crlz_lock(void *ud)
{
    (void) apr_global_mutex_lock(((mjpki_crl_zone *) ud)->mutex);
}


static void
mjpki_crlz_unlock(void *ud)
{
    (void) apr_global_mutex_unlock(((mjpki_crl_zone *) ud)->mutex);
}


static int
mjpki_crlz_alive(void *ud, long pid)
{
    return kill((pid_t) pid, 0) == 0 || errno == EPERM;
}


/* A child's read-write lock for the core (ud: where it is, NULL until
 * child_init: none in the parent, which reads before the children are
 * forked): the per-process CRLs (no zone), the watched files' tables. */
void
mjpki_rwlock_wr(void *ud)
{
    apr_thread_rwlock_t  *lock = *(apr_thread_rwlock_t **) ud;

    if (lock) {
        apr_thread_rwlock_wrlock(lock);
    }
}


void
mjpki_rwlock_rd(void *ud)
{
    apr_thread_rwlock_t  *lock = *(apr_thread_rwlock_t **) ud;

    if (lock) {
        apr_thread_rwlock_rdlock(lock);
    }
}


void
mjpki_rwlock_un(void *ud)
{
    apr_thread_rwlock_t  *lock = *(apr_thread_rwlock_t **) ud;

    if (lock) {
        apr_thread_rwlock_unlock(lock);
    }
}


static jpki_crlzone *
mjpki_crlz_attach(mjpki_site *site)
{
    mjpki_crl_zone     *z = site->crlz;
    jpki_crlzone_ops   ops;

    memset(&ops, 0, sizeof(ops));
    if (z == NULL) {
        ops.lock = mjpki_rwlock_wr;
        ops.unlock = mjpki_rwlock_un;
        ops.rdlock = mjpki_rwlock_rd;
        ops.rdunlock = mjpki_rwlock_un;
        ops.ud = &site->crl_lock;
        return jpki_crlzone_local(&ops);
    }

    ops.lock = mjpki_crlz_lock;
    ops.unlock = mjpki_crlz_unlock;
    ops.alive = mjpki_crlz_alive;
    ops.ud = z;
    return jpki_crlzone_attach(z->hdr, z->size, z->name, &ops,
                               (long) getpid());
}


/* A new segment for zone z (its size: the site's). */
static int
mjpki_crlz_create(server_rec *s, mjpki_site *site, mjpki_crl_zone *z)
{
    apr_status_t  rv;

    z->size = site->crl_zone_size + jpki_crlzone_overhead();
    rv = apr_shm_create(&z->shm, z->size, NULL, s->process->pool);
    if (rv != APR_SUCCESS) {
        z->shm = NULL;
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of CRL zone %s (JPKICRLZone %"
                     APR_SIZE_T_FMT " bytes)", z->name, site->crl_zone_size);
        return !OK;
    }

    z->hdr = apr_shm_baseaddr_get(z->shm);
    if (jpki_crlzone_format(z->hdr, z->size) < 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: CRL zone %s "
                     "unusable (%" APR_SIZE_T_FMT " bytes)", z->name, z->size);
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        return !OK;
    }

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s: %"
                 APR_SIZE_T_FMT " bytes for the CRLs", z->name,
                 site->crl_zone_size);

    return OK;
}


/* The zone of the n-th site having one (in the order of the servers):
 * found again at a restart, kept when its size did not change (the CRLs in
 * force stay; the core releases those of issuers no longer configured). */
static int
mjpki_crlz_setup(apr_pool_t *ptemp, server_rec *s, mjpki_site *site, int n)
{
    apr_pool_t          *pp = s->process->pool;
    apr_array_header_t  *all = NULL;
    mjpki_crl_zone       *z = NULL;
    const char          *key;
    apr_status_t         rv;

    key = apr_psprintf(ptemp, "auth_jpki-crlzone-%d", n);
    apr_pool_userdata_get((void **) &z, key, pp);

    if (z == NULL) {
        z = apr_pcalloc(pp, sizeof(mjpki_crl_zone));
        z->name = apr_psprintf(pp, "crl-%d", n);
        rv = ap_global_mutex_create(&z->mutex, &z->lockfile, JPKI_MUTEX_TYPE,
                                    z->name, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                         "the mutex of CRL zone %s", z->name);
            return !OK;
        }
        apr_pool_userdata_set(z, apr_pstrdup(pp, key), apr_pool_cleanup_null,
                              pp);
        apr_pool_userdata_get((void **) &all, MJPKI_CRLZ_LIST, pp);
        if (all == NULL) {
            all = apr_array_make(pp, 4, sizeof(mjpki_crl_zone *));
            apr_pool_userdata_set(all, MJPKI_CRLZ_LIST,
                                  apr_pool_cleanup_null, pp);
        }
        APR_ARRAY_PUSH(all, mjpki_crl_zone *) = z;
    }

    z->generation = ap_state_query(AP_SQ_CONFIG_GEN);
    site->crlz = z;

    if (z->shm != NULL
        && z->size == site->crl_zone_size + jpki_crlzone_overhead()
        && jpki_crlzone_format(z->hdr, z->size) == 1)
    {
        return OK;                  /* a restart: the CRLs in force stay */
    }

    if (z->shm != NULL) {
        /* another size (or the layout of another version of the module):
         * a new segment (the children of the previous generation keep
         * their own mapping of the old one) */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "jpki: CRL zone %s "
                     "%s: its CRLs are loaded again", z->name,
                     z->size != site->crl_zone_size + jpki_crlzone_overhead()
                     ? "resized" : "laid out by another version of the "
                                   "module");
        apr_shm_destroy(z->shm);
        z->shm = NULL;
        z->hdr = NULL;
    }

    return mjpki_crlz_create(s, site, z);
}


/* After a restart: the segments no site uses any more are released. */
static void
mjpki_crlz_sweep(server_rec *s)
{
    apr_array_header_t  *all = NULL;
    mjpki_crl_zone       *z;
    int                  i, gen = ap_state_query(AP_SQ_CONFIG_GEN);

    apr_pool_userdata_get((void **) &all, MJPKI_CRLZ_LIST, s->process->pool);

    for (i = 0; all && i < all->nelts; i++) {
        z = APR_ARRAY_IDX(all, i, mjpki_crl_zone *);
        if (z->shm != NULL && z->generation != gen) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: CRL zone %s is "
                         "no longer used: released", z->name);
            apr_shm_destroy(z->shm);
            z->shm = NULL;
            z->hdr = NULL;
        }
    }
}


static apr_status_t
mjpki_crl_cleanup(void *data)
{
    mjpki_site  *site = data;

    jpki_crlzone_free(site->crls);
    site->crls = NULL;

    return APR_SUCCESS;
}


jpki_err
mjpki_crl_lookup(mjpki_site *site, jpki_txn *t, jpki_rev_info *info)
{
    return jpki_crlzone_lookup(site->crls, jpki_txn_issuer(t),
                               jpki_txn_issuer_key(t), jpki_txn_cert_id(t),
                               time(NULL), site->grace, info);
}


/* ---- process setup ---------------------------------------------------- */

/* In the parent: the zone (n: the sites having one so far), the site's
 * handle on its CRLs (its files are read next: mod_auth_jpki_io.c). */
int
mjpki_crl_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                      mjpki_site *site, int *n, int preflight)
{
    const jpki_issuer  *list[16];
    mjpki_issuer_rt     *rt = (mjpki_issuer_rt *) site->rt_issuers->elts;
    int                 i;

    if (site->crl_zone_size > 0 && mjpki_crlz_setup(ptemp, s, site, (*n)++)
                                   != OK)
    {
        return !OK;
    }

    if (preflight) {
        return OK;                  /* the real start follows */
    }

    site->crls = mjpki_crlz_attach(site);
    if (site->crls == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: cannot set up the "
                     "CRLs");
        return !OK;
    }
    apr_pool_cleanup_register(pconf, site, mjpki_crl_cleanup,
                              apr_pool_cleanup_null);

    for (i = 0; i < site->rt_issuers->nelts && i < 16; i++) {
        list[i] = rt[i].issuer;
    }
    jpki_crlzone_retain(site->crls, list, (size_t) i);

    return OK;
}


void
mjpki_crl_post_config_done(server_rec *s)
{
    mjpki_crlz_sweep(s);
}


/* In a child: the zone's mutex, and a handle of the child's own (the
 * parent's was inherited); the per-process CRLs' lock. */
void
mjpki_crl_child_init(apr_pool_t *pchild, server_rec *s, mjpki_site *site)
{
    mjpki_crl_zone  *z = site->crlz;
    apr_status_t    rv;

    apr_thread_rwlock_create(&site->crl_lock, pchild);

    if (z != NULL) {
        if (!z->child_ready) {
            z->child_ready = 1;
            rv = apr_global_mutex_child_init(&z->mutex, z->lockfile, pchild);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: cannot "
                             "attach the mutex of CRL zone %s", z->name);
            }
        }
        jpki_crlzone_free(site->crls);
        site->crls = mjpki_crlz_attach(site);
    }
}
