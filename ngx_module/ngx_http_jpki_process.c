/*
 * ngx_http_jpki_process.c - a worker's start and exit: the shared zones
 * attached, the watched files' timer, the logout-log poller (with Redis).
 */

#include "ngx_http_jpki.h"


int64_t
ngx_http_jpki_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + (int64_t) tp->msec;
}


/* This worker's handle over a table zone (the store, the logout mirror). */
static jpki_shm *
ngx_http_jpki_attach(ngx_cycle_t *cycle, ngx_shm_zone_t *zone,
    void **handle)
{
    ngx_slab_pool_t  *shpool;
    jpki_shm_lock     lock;
    jpki_shm         *s;
    size_t            size;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    size = zone->shm.size - zone->shm.size / 8;
    size &= ~(size_t) 7;
    lock.lock = ngx_http_jpki_shm_lock;
    lock.unlock = ngx_http_jpki_shm_unlock;
    lock.ud = shpool;
    *handle = ngx_alloc(jpki_shm_handle_size(), cycle->log);
    if (*handle == NULL) {
        return NULL;
    }
    s = jpki_shm_attach(*handle, zone->data, size, &lock);
    if (s == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "jpki: cannot attach to the shared zone \"%V\"",
                      &zone->shm.name);
    }
    return s;
}


/* The logout log poller (common/outsync.c): one per worker and site, on a
 * timer; its commands go to Redis like a request's, never blocking. */
static void ngx_http_jpki_outsync_run(ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_cmd *cmds, size_t n);

static void
ngx_http_jpki_outsync_done(void *data, jpki_store_result *res, size_t n)
{
    ngx_http_jpki_main_conf_t  *jmcf = data;
    const jpki_store_cmd       *cmds;
    size_t                      next;

    jmcf->outsync_io = NULL;
    cmds = jpki_outsync_feed(jmcf->outsync, res, n,
                             ngx_http_jpki_now_ms(), &next);
    if (cmds != NULL) {
        ngx_http_jpki_outsync_run(jmcf, cmds, next);
    }
}


static void
ngx_http_jpki_outsync_run(ngx_http_jpki_main_conf_t *jmcf,
    const jpki_store_cmd *cmds, size_t n)
{
    size_t  next;

    if (ngx_http_jpki_redis_exec(jmcf, jmcf->outsync_timer.log, cmds, n,
                                 ngx_http_jpki_outsync_done, jmcf,
                                 &jmcf->outsync_io)
        != NGX_AGAIN)
    {
        (void) jpki_outsync_feed(jmcf->outsync, NULL, 0,
                                 ngx_http_jpki_now_ms(), &next);
    }
}


static void
ngx_http_jpki_outsync_timer(ngx_event_t *ev)
{
    ngx_http_jpki_main_conf_t  *jmcf = ev->data;
    const jpki_store_cmd       *cmds;
    size_t                      n;

    if (jmcf->outsync_io == NULL) {
        cmds = jpki_outsync_cmds(jmcf->outsync,
                                 ngx_http_jpki_now_ms(), &n);
        if (cmds != NULL) {
            ngx_http_jpki_outsync_run(jmcf, cmds, n);
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, JPKI_OUTSYNC_PERIOD_MS / 2);
    }
}


static ngx_int_t
ngx_http_jpki_init_site(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    if (jpki_site_shm(jmcf->js)) {
        jmcf->shm = ngx_http_jpki_attach(cycle, jmcf->shm_zone,
                                         &jmcf->shm_handle);
        if (jmcf->shm == NULL) {
            return NGX_ERROR;
        }
    }

    if (jmcf->mirror_zone) {
        jmcf->mirror = ngx_http_jpki_attach(cycle, jmcf->mirror_zone,
                                            &jmcf->mirror_handle);
        jmcf->outsync = jmcf->mirror
                        ? jpki_outsync_new(jmcf->ctx, jmcf->mirror) : NULL;
        if (jmcf->outsync == NULL) {
            return NGX_ERROR;
        }
        jmcf->outsync_timer.handler = ngx_http_jpki_outsync_timer;
        jmcf->outsync_timer.data = jmcf;
        jmcf->outsync_timer.log = cycle->log;
        jmcf->outsync_timer.cancelable = 1;
        ngx_add_timer(&jmcf->outsync_timer, 1);
    }

    /* this site's Redis connections (ngx_http_jpki_io.c: the idle ones, how
     * many are open, the rounds waiting for one and the event that sends
     * them), and the worker's record of the primary the sentinels name */
    ngx_queue_init(&jmcf->redis_idle);
    jmcf->redis_nidle = 0;
    jmcf->redis_nopen = 0;
    ngx_queue_init(&jmcf->redis_waiting);
    jmcf->redis_flush.handler = ngx_http_jpki_redis_flush;
    jmcf->redis_flush.data = jmcf;
    jmcf->redis_flush.log = cycle->log;

    if (jmcf->nsentinels > 0) {
        jmcf->sentinel = jpki_sentinel_new(jmcf->nsentinels);
        if (jmcf->sentinel == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_jpki_crl_init(cycle, jmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    jmcf->map_timer.handler = ngx_http_jpki_files_timer;
    jmcf->map_timer.data = jmcf;
    jmcf->map_timer.log = cycle->log;
    jmcf->map_timer.cancelable = 1;
    ngx_add_timer(&jmcf->map_timer, 1000);

    return NGX_OK;
}


static ngx_int_t
ngx_http_jpki_exit_site(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    /* (a load under way: another worker takes the zone's claim over) */
    ngx_http_jpki_crl_exit(jmcf);

    ngx_free(jmcf->shm_handle);

    if (jmcf->outsync_io) {
        ngx_http_jpki_io_detach(jmcf->outsync_io);
        jmcf->outsync_io = NULL;
    }
    jpki_outsync_free(jmcf->outsync);
    jmcf->outsync = NULL;
    ngx_free(jmcf->mirror_handle);
    jpki_sentinel_free(jmcf->sentinel);
    jmcf->sentinel = NULL;

    return NGX_OK;
}


/* Each site of the cycle's configuration, in a worker. */
static ngx_int_t
ngx_http_jpki_each_site(ngx_cycle_t *cycle,
    ngx_int_t (*fn)(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf))
{
    ngx_http_jpki_sites_t       *sites;
    ngx_http_jpki_main_conf_t  **site;
    ngx_uint_t                   i;

    sites = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_jpki_module);
    site = sites != NULL ? sites->sites.elts : NULL;

    for (i = 0; site != NULL && i < sites->sites.nelts; i++) {
        if (fn(cycle, site[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* Every site's context of this worker uses the shared area, under the
 * zone's mutex. */
static ngx_int_t
ngx_http_jpki_share_site(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_sites_t  *sites;
    jpki_shm_lock           lock;

    sites = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_jpki_module);
    if (sites->shared_zone == NULL || sites->shared_zone->data == NULL) {
        return NGX_OK;
    }

    lock.lock = ngx_http_jpki_shm_lock;
    lock.unlock = ngx_http_jpki_shm_unlock;
    lock.ud = sites->shared_zone->shm.addr;
    jpki_ctx_set_shared(jmcf->ctx, sites->shared_zone->data, &lock);

    return NGX_OK;
}


ngx_int_t
ngx_http_jpki_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_jpki_each_site(cycle, ngx_http_jpki_share_site) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_jpki_each_site(cycle, ngx_http_jpki_init_site);
}


void
ngx_http_jpki_exit_process(ngx_cycle_t *cycle)
{
    (void) ngx_http_jpki_each_site(cycle, ngx_http_jpki_exit_site);
}

