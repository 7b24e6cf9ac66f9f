/*
 * mod_auth_jpki_io.c - the files the module watches, and its start:
 *  - the mapping file: loaded in the parent (the children share the
 *    pages), re-read by each child when it changes (checked at most once
 *    a second), with the CRL files (mod_auth_jpki_crl.c);
 *  - the health endpoint's JSON (CRLs of this process, store reachable;
 *    written by the core, common/gate.c);
 *  - post_config and child_init: the stores' segments, the poller.
 * The store's commands and Redis are in mod_auth_jpki_redis.c, the shared
 * segments in mod_auth_jpki_store.c, OCSP in mod_auth_jpki_ocsp.c.
 */

#include "mod_auth_jpki.h"
#include "gate.h"

#include "ap_mpm.h"
#include "util_mutex.h"
#include "apr_atomic.h"
#include "apr_poll.h"
#include "apr_portable.h"
#include "apr_thread_proc.h"
#include "apr_hash.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

APLOG_USE_MODULE(auth_jpki);



/* ------------------------------------------------------------------ */
/* OCSP                                                                */
/* ------------------------------------------------------------------ */


/* ------------------------------------------------------------------ */
/* Health (JSON for monitoring)                                        */
/* ------------------------------------------------------------------ */

const char *
mjpki_health_json(mjpki_site *site, request_rec *r, int *ok)
{
    jpki_store_cmd        cmd;
    jpki_store_result     res;
    jpki_health           h;
    apr_int64_t           now = apr_time_sec(apr_time_now());
    jpki_err              store_err;
    char                 *crls, *out;
    apr_size_t            max;

    max = JPKI_HEALTH_CRL_MAX * (mjpki_crl_health(site, NULL) + 1);
    crls = apr_palloc(r->pool, max);
    jpki_health_init(&h, crls, max, now, site->grace,
                     jpki_ctx_get_policy(site->ctx)->clock_skew);
    (void) mjpki_crl_health(site, &h);

    /* the store: full (no room for a new key; Redis answering a write
     * -OOM at maxmemory), or not answering */
    store_err = JPKI_OK;
    if (site->store == JPKI_STORE_SHM) {
        if (site->zone == NULL || site->zone->locked == NULL) {
            store_err = JPKI_ERR_STORE;
        } else if (jpki_shm_is_full(site->zone->locked,
                                    (int64_t) (apr_time_now() / 1000)))
        {
            store_err = JPKI_ERR_STORE_FULL;
        }
    } else {
        jpki_health_probe(&cmd, now);
        store_err = mjpki_store_exec(site, r, &cmd, 1, &res)
                    ? jpki_health_probe_result(&res, 1) : JPKI_ERR_STORE;
    }

    max = h.len + 256;
    out = apr_palloc(r->pool, max);
    if (jpki_health_json(&h, site->store == JPKI_STORE_SHM, store_err, out,
                         max, ok) == 0)
    {
        *ok = 0;
        return "{\"status\":\"degraded\"}";
    }

    return out;
}


/* ------------------------------------------------------------------ */
/* Mapping file                                                        */
/* ------------------------------------------------------------------ */

/* Loads the file when it changed since the last load (mtime, size or
 * inode: a rename-replaced file within the same second counts). */
static void
mjpki_map_load(mjpki_site *site, apr_pool_t *tmp)
{
    apr_finfo_t   fi;
    apr_status_t  rv;
    jpki_map     *m, *old;
    char          why[1024];

    rv = apr_stat(&fi, site->map_file, APR_FINFO_MTIME | APR_FINFO_SIZE
                                       | APR_FINFO_INODE, tmp);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, site->server, "jpki: "
                         "cannot read mapping file \"%s\"", site->map_file);
            site->map_failed = 1;
        }
        return;
    }

    if (site->map != NULL && fi.mtime == site->map_mtime
        && fi.size == site->map_size && fi.inode == site->map_inode)
    {
        return;
    }

    /* common/mapfile.c: the parser nginx and jpkictl use */
    if (jpki_map_read(site->map_file, &m, why, sizeof(why)) != JPKI_OK) {
        if (!site->map_failed) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, site->server, "jpki: %s",
                         why);
            site->map_failed = 1;
        }
        return;
    }
    if (m->bad) {
        jpki_map_warning(m, site->map_file, why, sizeof(why));
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, site->server, "jpki: %s",
                     why);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, site->server, "jpki: mapping file "
                 "\"%s\" loaded, %" APR_SIZE_T_FMT " entries", site->map_file,
                 m->n);

    site->map_failed = 0;
    site->map_mtime = fi.mtime;
    site->map_size = fi.size;
    site->map_inode = fi.inode;

    if (site->map_lock) {
        apr_thread_rwlock_wrlock(site->map_lock);
    }
    old = site->map;
    site->map = m;
    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    jpki_map_free(old);
}


void
mjpki_files_refresh(mjpki_site *site)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());
    apr_pool_t   *tmp;

    if (apr_atomic_read32(&site->files_checked) == now
        || site->files_mutex == NULL)
    {
        return;
    }

    /* one thread checks; the others go on with the tables they have */
    if (apr_thread_mutex_trylock(site->files_mutex) != APR_SUCCESS) {
        return;
    }

    if (apr_atomic_read32(&site->files_checked) != now) {
        apr_atomic_set32(&site->files_checked, now);
        if (apr_pool_create_unmanaged_ex(&tmp, NULL, NULL) == APR_SUCCESS) {
            if (site->map_file) {
                mjpki_map_load(site, tmp);
            }
            mjpki_crls_load(site, tmp);
            apr_pool_destroy(tmp);
        }
    }

    apr_thread_mutex_unlock(site->files_mutex);
}


size_t
mjpki_map_lookup(void *ud, const char *cert_id, char *out)
{
    mjpki_site  *site = ud;
    size_t      len;

    if (site->map_lock) {
        apr_thread_rwlock_rdlock(site->map_lock);
    }
    len = jpki_map_lookup(site->map, cert_id, out);
    if (site->map_lock) {
        apr_thread_rwlock_unlock(site->map_lock);
    }

    return len;
}


static apr_status_t
mjpki_map_cleanup(void *data)
{
    mjpki_site  *site = data;

    jpki_map_free(site->map);
    site->map = NULL;

    return APR_SUCCESS;
}


/* ------------------------------------------------------------------ */
/* Process setup                                                       */
/* ------------------------------------------------------------------ */

int
mjpki_io_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    server_rec  *sv;
    mjpki_site   *site;
    const char  *name, *mutex_id;
    apr_ssize_t  klen;
    int          preflight, ncrlz = 0;

    preflight = ap_state_query(AP_SQ_MAIN_STATE)
                == AP_SQ_MS_CREATE_PRE_CONFIG;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (!site->built || site->io_ready) {
            continue;
        }
        site->io_ready = 1;

        if (site->store == JPKI_STORE_SHM) {
            site->zone = mjpki_zone_setup(ptemp, sv, site->shm_zone,
                                         site->shm_zone, site->shm_size,
                                         "store zone");
            if (site->zone == NULL) {
                return !OK;
            }
        }

        if (site->store == JPKI_STORE_REDIS) {
            /* one per Redis server and db: the sites on it share it (a
             * marker is keyed by a cert_id of one site secret) */
            name = apr_psprintf(ptemp, "logouts:%s/%d", site->redis_addr,
                                site->redis_db);
            klen = APR_HASH_KEY_STRING;
            mutex_id = apr_psprintf(ptemp, "logouts-%08x",
                                    apr_hashfunc_default(name, &klen));
            site->mirror = mjpki_zone_setup(ptemp, sv, name, mutex_id,
                                           site->mirror_size, "logout mirror");
            if (site->mirror == NULL) {
                return !OK;
            }
        }

        /* the CRLs: once in the parent (mod_auth_jpki_crl.c) */
        if (mjpki_crl_post_config(pconf, ptemp, sv, site, &ncrlz, preflight)
            != OK)
        {
            return !OK;
        }

        if (preflight) {
            /* the real start follows: load the files then, once */
            continue;
        }

        if (site->map_file) {
            mjpki_map_load(site, ptemp);
            apr_pool_cleanup_register(pconf, site, mjpki_map_cleanup,
                                      apr_pool_cleanup_null);
        }
        apr_atomic_set32(&site->files_checked,
                         (apr_uint32_t) apr_time_sec(apr_time_now()));
    }

    if (!preflight) {
        mjpki_crl_post_config_done(s);
    }

    return OK;
}


void
mjpki_io_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec    *sv;
    mjpki_site     *site;

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (!site->built || site->child_ready) {
            continue;
        }
        site->child_ready = 1;

        mjpki_zone_child_init(site->zone, pchild, sv, "store zone");
        mjpki_zone_child_init(site->mirror, pchild, sv, "logout mirror");

        mjpki_crl_child_init(pchild, sv, site);

        apr_thread_mutex_create(&site->redis_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->files_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->flight_mutex,
                                APR_THREAD_MUTEX_DEFAULT, pchild);
        apr_thread_cond_create(&site->flight_cond, pchild);
        apr_thread_rwlock_create(&site->map_lock, pchild);

        /* idle Redis connections are closed when the child exits */
        apr_pool_cleanup_register(pchild, site, mjpki_redis_pool_cleanup,
                                  apr_pool_cleanup_null);

        mjpki_poller_start(site, pchild, sv);
    }
}
