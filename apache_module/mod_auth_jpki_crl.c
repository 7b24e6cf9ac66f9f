/*
 * mod_auth_jpki_crl.c - the CRLs, Apache's side: the CRL zone's APR shared
 * memory segment and global mutex (kept in the process pool across
 * restarts of the same size), and the per-process CRLs' read-write lock.
 * The grammar, the zone's layout and protocol and the lookups are the
 * core's (common/siteconf.c, common/crlzone.c, common/site.c); the CRL
 * files are watched with the mapping file (mod_auth_jpki_io.c).
 */

#include "mod_auth_jpki.h"
#include "util_mutex.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MJPKI_CRLZ_LIST  "auth_jpki-crlzones"


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


/* The size JPKICRLZone gives the CRLs (0: none). */
static apr_size_t
mjpki_crlz_size(const mjpki_site *site)
{
    const char  *name;

    return (apr_size_t) jpki_siteconf_crl_zone(site->sc, &name);
}


/* A new segment for zone z (its size: the site's). */
static int
mjpki_crlz_create(server_rec *s, mjpki_site *site, mjpki_crl_zone *z)
{
    apr_status_t  rv;

    z->size = mjpki_crlz_size(site) + jpki_crlzone_overhead();
    rv = apr_shm_create(&z->shm, z->size, NULL, s->process->pool);
    if (rv != APR_SUCCESS) {
        z->shm = NULL;
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of CRL zone %s (JPKICRLZone %"
                     APR_SIZE_T_FMT " bytes)", z->name, mjpki_crlz_size(site));
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
                 mjpki_crlz_size(site));

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
        && z->size == mjpki_crlz_size(site) + jpki_crlzone_overhead()
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
                     z->size != mjpki_crlz_size(site) + jpki_crlzone_overhead()
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


/* ---- process setup ---------------------------------------------------- */

/* In the parent: the zone (n: the sites having one so far), the site's
 * handle on its CRLs (its files are read next: mod_auth_jpki_io.c). */
int
mjpki_crl_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                      mjpki_site *site, int *n, int preflight)
{
    if (mjpki_crlz_size(site) > 0 && mjpki_crlz_setup(ptemp, s, site, (*n)++)
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
        jpki_site_set_crls(site->js, site->crls);
    }
}
