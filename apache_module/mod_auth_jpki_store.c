/*
 * mod_auth_jpki_store.c - the embedded store: the core's table in an APR
 * shared memory segment with a global mutex, kept in the process pool so
 * that it survives restarts of the same size.
 */

#include "mod_auth_jpki.h"

#include "util_mutex.h"

#include <stdlib.h>
#include <string.h>

APLOG_USE_MODULE(auth_jpki);


mjpki_srv_conf *
mjpki_srv(server_rec *s)
{
    return ap_get_module_config(s->module_config, &auth_jpki_module);
}


/* ------------------------------------------------------------------ */
/* Embedded store                                                      */
/* ------------------------------------------------------------------ */

/* The shared table called name (what: "store zone", "logout mirror"),
 * found again in the process pool at a restart and kept when its size did
 * not change; mutex_id names its mutex (a lock file name). */
mjpki_zone *
mjpki_zone_setup(apr_pool_t *ptemp, server_rec *s, const char *name,
                const char *mutex_id, apr_size_t size, const char *what)
{
    apr_pool_t   *pp = s->process->pool;
    mjpki_zone    *zone = NULL;
    const char   *key;
    apr_status_t  rv;
    int           gen = ap_state_query(AP_SQ_CONFIG_GEN);

    key = apr_pstrcat(ptemp, "auth_jpki-zone-", name, NULL);
    apr_pool_userdata_get((void **) &zone, key, pp);

    if (zone != NULL && zone->generation == gen && zone->size != size) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: JPKIStore shm "
                     "zone=%s is used with two sizes (give the stores "
                     "different zone= names)", name);
        return NULL;
    }

    if (zone != NULL && zone->size == size && zone->store) {
        zone->generation = gen;
        return zone;
    }

    if (zone == NULL) {
        zone = apr_pcalloc(pp, sizeof(mjpki_zone));
        zone->name = apr_pstrdup(pp, name);
        rv = ap_global_mutex_create(&zone->mutex, &zone->lockfile,
                                    JPKI_MUTEX_TYPE, mutex_id, s, pp, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                         "the mutex of %s %s", what, zone->name);
            return NULL;
        }
        apr_pool_userdata_set(zone, apr_pstrdup(pp, key),
                              apr_pool_cleanup_null, pp);
    } else {
        /* another size: a new table (the children of the previous
         * generation keep their own mapping of the old one) */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "jpki: %s %s "
                     "resized: its entries are lost", what, zone->name);
        if (zone->shm) {
            apr_shm_destroy(zone->shm);
            zone->shm = NULL;
        }
        zone->store = NULL;
    }

    zone->size = size;
    rv = apr_shm_create(&zone->shm, zone->size, NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared memory of %s %s (%" APR_SIZE_T_FMT
                     " bytes)", what, zone->name, zone->size);
        return NULL;
    }

    zone->mem = apr_shm_baseaddr_get(zone->shm);
    zone->memsize = apr_shm_size_get(zone->shm) & ~(apr_size_t) 7;

    if (jpki_shm_init(zone->mem, zone->memsize, 0) != JPKI_OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: %s %s is "
                     "too small", what, zone->name);
        return NULL;
    }

    zone->handle = apr_palloc(pp, jpki_shm_handle_size());
    /* no lock in the handle: a batch of commands runs under the zone's
     * global mutex (see mjpki_store_exec); each child attaches another
     * handle that takes it (mjpki_zone_child_init) */
    zone->store = jpki_shm_attach(zone->handle, zone->mem, zone->memsize,
                                  NULL);
    if (zone->store == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: cannot attach to "
                     "%s %s", what, zone->name);
        return NULL;
    }

    zone->generation = gen;

    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "jpki: %s %s: %"
                 APR_SIZE_T_FMT " entries", what, zone->name,
                 jpki_shm_capacity(zone->store));

    return zone;
}


static void
mjpki_zone_lock(void *ud)
{
    mjpki_zone     *zone = ud;
    apr_status_t   rv;

    rv = apr_global_mutex_lock(zone->mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, NULL, "jpki: cannot lock "
                     "the mutex of %s", zone->name);
    }
}


static void
mjpki_zone_unlock(void *ud)
{
    mjpki_zone  *zone = ud;

    apr_global_mutex_unlock(zone->mutex);
}


/* In a child, once per zone: its mutex, and a handle that takes it (the
 * core reads and writes there itself, outside mjpki_store_exec). */
void
mjpki_zone_child_init(mjpki_zone *zone, apr_pool_t *pchild, server_rec *s,
                     const char *what)
{
    jpki_shm_lock  lock;
    apr_status_t   rv;

    if (zone == NULL || zone->child_ready) {
        return;
    }
    zone->child_ready = 1;

    rv = apr_global_mutex_child_init(&zone->mutex, zone->lockfile, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: cannot attach "
                     "the mutex of %s %s", what, zone->name);
        return;
    }

    lock.lock = mjpki_zone_lock;
    lock.unlock = mjpki_zone_unlock;
    lock.ud = zone;
    zone->locked = jpki_shm_attach(apr_palloc(pchild, jpki_shm_handle_size()),
                                   zone->mem, zone->memsize, &lock);
}



/* ------------------------------------------------------------------ */
/* The shared area: metrics, audit chain                               */
/* ------------------------------------------------------------------ */

typedef struct {
    apr_shm_t           *shm;
    jpki_shared         *area;
    mjpki_zone           lock;         /* its name, mutex and lock file */
} mjpki_shared;

#define MJPKI_SHARED_KEY "auth_jpki-shared"


static mjpki_shared *
mjpki_shared_get(server_rec *s)
{
    mjpki_shared  *sh = NULL;

    apr_pool_userdata_get((void **) &sh, MJPKI_SHARED_KEY, s->process->pool);
    return sh;
}


int
mjpki_shared_setup(apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t    *pp = s->process->pool;
    mjpki_shared  *sh = mjpki_shared_get(s);
    apr_status_t   rv;

    if (sh != NULL) {
        return OK;                         /* a restart: kept */
    }

    sh = apr_pcalloc(pp, sizeof(mjpki_shared));
    sh->lock.name = "shared area";
    rv = ap_global_mutex_create(&sh->lock.mutex, &sh->lock.lockfile,
                                JPKI_MUTEX_TYPE,
                                "shared", s, pp, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the mutex of the shared area");
        return !OK;
    }

    rv = apr_shm_create(&sh->shm, jpki_shared_size(), NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "jpki: cannot create "
                     "the shared area (%" APR_SIZE_T_FMT " bytes)",
                     jpki_shared_size());
        return !OK;
    }

    sh->area = jpki_shared_init(apr_shm_baseaddr_get(sh->shm),
                                apr_shm_size_get(sh->shm));
    if (sh->area == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "jpki: the shared area "
                     "is too small");
        return !OK;
    }

    apr_pool_userdata_set(sh, MJPKI_SHARED_KEY, apr_pool_cleanup_null, pp);
    return OK;
}


void
mjpki_shared_child_init(apr_pool_t *pchild, server_rec *s)
{
    mjpki_shared   *sh = mjpki_shared_get(s);
    jpki_shm_lock   lock;
    server_rec     *sv;
    mjpki_site      *site;
    apr_status_t    rv;

    if (sh == NULL) {
        return;
    }

    if (!sh->lock.child_ready) {
        sh->lock.child_ready = 1;
        rv = apr_global_mutex_child_init(&sh->lock.mutex, sh->lock.lockfile,
                                         pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "jpki: cannot attach "
                         "the mutex of the shared area");
            return;
        }
    }

    lock.lock = mjpki_zone_lock;
    lock.unlock = mjpki_zone_unlock;
    lock.ud = &sh->lock;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (site->js != NULL && site->ctx != NULL) {
            jpki_ctx_set_shared(site->ctx, sh->area, &lock);
        }
    }
}


int
mjpki_shared_area(server_rec *s, jpki_shared **area, jpki_shm_lock *lock)
{
    mjpki_shared  *sh = mjpki_shared_get(s);

    if (sh == NULL || sh->area == NULL) {
        return !OK;
    }

    *area = sh->area;
    lock->lock = mjpki_zone_lock;
    lock->unlock = mjpki_zone_unlock;
    lock->ud = &sh->lock;

    return OK;
}
