/*
 * mod_auth_jpki_io.c - the files the module watches, and its start:
 *  - the watched files, the mapping file and the CRL files (common/
 *    watch.c): read in the parent (the children share the pages), read
 *    again by each child when they change (checked at most once a second
 *    from requests, by one thread);
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


static apr_status_t
mjpki_sentinel_cleanup(void *data)
{
    jpki_sentinel_free(data);
    return APR_SUCCESS;
}


/* ------------------------------------------------------------------ */
/* The watched files: the mapping file, the CRL files (common/watch.c) */
/* ------------------------------------------------------------------ */

/* Their sentences, about the site's server: a file put in force at notice
 * (seen at the default level). */
static void
mjpki_watch_log(void *ud, jpki_log_level level, const char *msg)
{
    static const int  map[] = {
        APLOG_ERR, APLOG_WARNING, APLOG_NOTICE, APLOG_DEBUG
    };

    ap_log_error(APLOG_MARK, map[(unsigned) level < 4 ? level : 3], 0,
                 ((mjpki_site *) ud)->server, "jpki: %s", msg);
}


static apr_status_t
mjpki_watch_cleanup(void *data)
{
    jpki_site_unwatch(((mjpki_site *) data)->js);
    return APR_SUCCESS;
}


/* In the parent: the site's files watched (the core's), and read a first
 * time (the CRLs with a zone: unless they are there already). */
static int
mjpki_watch_start(apr_pool_t *pconf, mjpki_site *site)
{
    jpki_watch_lock  lock = { mjpki_rwlock_rd, mjpki_rwlock_wr,
                              mjpki_rwlock_un, &site->watch_lock };

    apr_pool_cleanup_register(pconf, site, mjpki_watch_cleanup,
                              apr_pool_cleanup_null);

    if (jpki_site_watch(site->js, site->crls, mjpki_watch_log, site, &lock,
                        apr_time_sec(apr_time_now())) != 0)
    {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, site->server, "jpki: cannot "
                     "watch the CRL and mapping files (out of memory)");
        return !OK;
    }

    return OK;
}


/* At most once a second, from requests: one thread of the child reads the
 * files that changed; the others go on with the tables they have. */
void
mjpki_files_refresh(mjpki_site *site)
{
    apr_uint32_t  now = (apr_uint32_t) apr_time_sec(apr_time_now());

    if (apr_atomic_read32(&site->files_checked) == now
        || site->files_mutex == NULL)
    {
        return;
    }

    if (apr_thread_mutex_trylock(site->files_mutex) != APR_SUCCESS) {
        return;
    }

    if (apr_atomic_read32(&site->files_checked) != now) {
        apr_atomic_set32(&site->files_checked, now);
        jpki_mapwatch_load(jpki_site_mapwatch(site->js));
        jpki_crlwatch_pass(jpki_site_crlwatch(site->js), site->crls, now,
                           NULL, NULL);
    }

    apr_thread_mutex_unlock(site->files_mutex);
}


/* ------------------------------------------------------------------ */
/* Process setup                                                       */
/* ------------------------------------------------------------------ */

int
mjpki_io_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
{
    server_rec             *sv;
    mjpki_site              *site;
    const jpki_store_spec  *st;
    const char             *name, *mutex_id;
    apr_ssize_t  klen;
    int          preflight, ncrlz = 0;

    preflight = ap_state_query(AP_SQ_MAIN_STATE)
                == AP_SQ_MS_CREATE_PRE_CONFIG;

    if (mjpki_shared_setup(ptemp, s) != OK) {
        return !OK;
    }

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (site->js == NULL || site->io_ready) {
            continue;
        }
        site->io_ready = 1;
        st = jpki_site_store(site->js);

        if (st->kind == JPKI_STORE_KIND_SHM) {
            site->zone = mjpki_zone_setup(ptemp, sv, st->zone, st->zone,
                                         (apr_size_t) st->size, "store zone");
            if (site->zone == NULL) {
                return !OK;
            }
        }

        if (st->kind == JPKI_STORE_KIND_REDIS) {
            /* one per Redis server and db: the sites on it share it (a
             * marker is keyed by a cert_id of one site secret) */
            name = apr_psprintf(ptemp, "logouts:%s/%d", st->addr, st->db);
            klen = APR_HASH_KEY_STRING;
            mutex_id = apr_psprintf(ptemp, "logouts-%08x",
                                    apr_hashfunc_default(name, &klen));
            site->mirror = mjpki_zone_setup(ptemp, sv, name, mutex_id,
                                           (apr_size_t) st->mirror,
                                           "logout mirror");
            if (site->mirror == NULL) {
                return !OK;
            }
        }

        /* the CRL zone, the handle on it (mod_auth_jpki_crl.c) */
        if (mjpki_crl_post_config(pconf, ptemp, sv, site, &ncrlz, preflight)
            != OK)
        {
            return !OK;
        }

        /* the audit file, opened again at each start and restart */
        if (mjpki_audit_post_config(pconf, sv, site) != OK) {
            return !OK;
        }

        if (preflight) {
            /* the real start follows: load the files then, once */
            continue;
        }

        if (mjpki_watch_start(pconf, site) != OK) {
            return !OK;
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

    mjpki_shared_child_init(pchild, s);

    for (sv = s; sv; sv = sv->next) {
        site = mjpki_srv(sv)->site;
        if (site->js == NULL || site->child_ready) {
            continue;
        }
        site->child_ready = 1;

        mjpki_zone_child_init(site->zone, pchild, sv, "store zone");
        mjpki_zone_child_init(site->mirror, pchild, sv, "logout mirror");

        mjpki_crl_child_init(pchild, sv, site);

        apr_thread_mutex_create(&site->redis_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        if (jpki_site_store(site->js)->n_sentinels > 0) {
            apr_thread_mutex_create(&site->discover_mutex,
                                    APR_THREAD_MUTEX_DEFAULT, pchild);
            site->sentinel = jpki_sentinel_new(
                jpki_site_store(site->js)->n_sentinels);
            if (site->sentinel != NULL) {
                apr_pool_cleanup_register(pchild, site->sentinel,
                                          mjpki_sentinel_cleanup,
                                          apr_pool_cleanup_null);
            }
        }
        apr_thread_mutex_create(&site->files_mutex, APR_THREAD_MUTEX_DEFAULT,
                                pchild);
        apr_thread_mutex_create(&site->flight_mutex,
                                APR_THREAD_MUTEX_DEFAULT, pchild);
        apr_thread_cond_create(&site->flight_cond, pchild);
        apr_thread_rwlock_create(&site->watch_lock, pchild);

        /* idle Redis connections are closed when the child exits */
        apr_pool_cleanup_register(pchild, site, mjpki_redis_pool_cleanup,
                                  apr_pool_cleanup_null);

        mjpki_poller_start(site, pchild, sv);
    }
}
