/*
 * ngx_http_jpki_crl.c - the CRLs, nginx's side: the jpki_crl_zone's shared
 * memory and lock, a worker's handle, the CRL files watched on the
 * workers' 1 s timer and parsed in threads of nginx's default pool.  The
 * grammar, the zone's layout and protocol, the files watched, the lookups
 * and what is logged are the core's (common/siteconf.c, common/site.c,
 * common/crlzone.c, common/watch.c).
 */

#include "ngx_http_jpki.h"
#include "site.h"


/* ---- jpki_crl_zone off | SIZE | NAME:SIZE ------------------------------ */

/* The zone: a block of the slab pool, laid out by the core (a reload finds
 * it again: the CRLs in force stay). */
static ngx_int_t
ngx_http_jpki_init_crl_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    size_t            size = *(size_t *) shm_zone->data;
    void             *mem;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    mem = ngx_slab_alloc(shpool, size);
    if (mem == NULL || jpki_crlzone_format(mem, size) < 0) {
        return NGX_ERROR;
    }

    shpool->data = mem;
    shm_zone->data = mem;

    return NGX_OK;
}


/* The zone of the size the core read (none: off), named as written or
 * after where it is written (a reload finds it again). */
char *
ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf)
{
    const char  *given;
    ngx_str_t    name;
    size_t       size;
    u_char       buf[NGX_MAX_PATH + 32];

    size = (size_t) jpki_siteconf_crl_zone(jmcf->sc, &given);
    if (size == 0) {
        return NGX_CONF_OK;
    }

    name.data = buf;
    name.len = (given[0] ? ngx_snprintf(buf, sizeof(buf), "%s", given)
                         : ngx_snprintf(buf, sizeof(buf), "jpki_crl@%V:%ui",
                                        &cf->conf_file->file.name,
                                        cf->conf_file->line))
               - buf;
    name.data = ngx_pstrdup(cf->pool, &name);

    /* the core's header and the slab pool's page descriptors come on top
     * of the size asked for the CRLs */
    jmcf->crl_zone_bytes = ngx_align(size + jpki_crlzone_overhead(),
                                     ngx_pagesize);
    size = jmcf->crl_zone_bytes
           + ngx_align((jmcf->crl_zone_bytes / ngx_pagesize + 64)
                       * sizeof(ngx_slab_page_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    jmcf->crl_zone = name.data != NULL
                     ? ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_jpki_module)
                     : NULL;
    if (jmcf->crl_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jmcf->crl_zone->data) {
        return "names a zone already used";
    }

    /* until the zone's init: the size of the block it takes */
    jmcf->crl_zone->data = &jmcf->crl_zone_bytes;
    jmcf->crl_zone->init = ngx_http_jpki_init_crl_zone;

    return NGX_CONF_OK;
}


/* ---- a worker's CRLs ------------------------------------------------- */

static int
ngx_http_jpki_crl_alive(void *ud, long pid)
{
    return kill((ngx_pid_t) pid, 0) == 0 || ngx_errno == NGX_EPERM;
}


/* The worker's handle on the site's CRLs: the zone, or its own memory;
 * the CRL files and the mapping file watched (the core's site), the CRLs
 * read a first time (in threads), the mapping file here: the first
 * requests need its table (later in a thread: the files timer). */
ngx_int_t
ngx_http_jpki_crl_init(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    jpki_crlzone_ops   ops;
    jpki_crlzone      *z;
    ngx_shm_zone_t    *zone = jmcf->crl_zone;
    u_char             name[64];

    ngx_memzero(&ops, sizeof(ops));

    if (zone) {
        ops.lock = ngx_http_jpki_shm_lock;
        ops.unlock = ngx_http_jpki_shm_unlock;
        ops.alive = ngx_http_jpki_crl_alive;
        ops.ud = zone->shm.addr;
        (void) ngx_cpystrn(name, zone->shm.name.data,
                           ngx_min(zone->shm.name.len + 1, sizeof(name)));
        z = jpki_crlzone_attach(zone->data, jmcf->crl_zone_bytes,
                                (char *) name, &ops, (long) ngx_pid);
    } else {
        z = jpki_crlzone_local(&ops);
    }

    if (z == NULL || jpki_site_watch(jmcf->js, z, ngx_http_jpki_log,
                                     NGX_HTTP_JPKI_WATCH_LOG, NULL, -1) != 0)
    {
        jpki_crlzone_free(z);
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "jpki: cannot set up "
                      "the CRLs%s", zone && z == NULL
                                    ? " (zone of another layout)" : "");
        return NGX_ERROR;
    }

    jpki_mapwatch_load(jpki_site_mapwatch(jmcf->js));
    ngx_http_jpki_load_crls(jmcf);

    return NGX_OK;
}


void
ngx_http_jpki_crl_exit(ngx_http_jpki_main_conf_t *jmcf)
{
    jpki_crlzone  *z = jpki_site_crls(jmcf->js);

    jpki_site_unwatch(jmcf->js);
    jpki_crlzone_free(z);
}


/* ---- loading --------------------------------------------------------- */

#if (NGX_THREADS)

/* A CRL parsed in a thread of nginx's default pool: a national-size file
 * never stalls the worker (`thread_pool default threads=N;` in the main
 * context sizes the pool; 32 threads when not declared). */
static void
ngx_http_jpki_crl_thread(void *data, ngx_log_t *log)
{
    jpki_crlfile_build(*(jpki_crlfile **) data);
}


static void
ngx_http_jpki_crl_thread_done(ngx_event_t *ev)
{
    jpki_crlfile_end(*(jpki_crlfile **) ev->data, ngx_time());
}


/* The context of a task of nginx's default thread pool, allocated once
 * in *task (size bytes of context), with its handlers; NULL when there is
 * no pool (read the file in the worker). */
void *
ngx_http_jpki_task(ngx_http_jpki_main_conf_t *jmcf, ngx_thread_task_t **task,
    size_t size, void (*handler)(void *data, ngx_log_t *log),
    ngx_event_handler_pt done, ngx_log_t *log)
{
    if (jmcf->threads == NULL) {
        return NULL;
    }

    if (*task == NULL) {
        *task = ngx_thread_task_alloc(ngx_cycle->pool, size);
        if (*task == NULL) {
            return NULL;
        }
    }

    (*task)->handler = handler;
    (*task)->event.handler = done;
    (*task)->event.data = (*task)->ctx;
    (*task)->event.log = log;

    return (*task)->ctx;
}


/* The watcher hands a parse over: posted to the pool, in the task kept
 * with the file's record (0), or -1: parsed in the worker. */
static int
ngx_http_jpki_crl_post(void *ud, jpki_crlfile *f)
{
    ngx_http_jpki_main_conf_t   *jmcf = ud;
    ngx_thread_task_t           *task = *jpki_crlfile_data(f);
    jpki_crlfile               **ct;

    ct = ngx_http_jpki_task(jmcf, &task, sizeof(jpki_crlfile *),
                            ngx_http_jpki_crl_thread,
                            ngx_http_jpki_crl_thread_done, ngx_cycle->log);
    if (ct == NULL) {
        return -1;
    }

    *jpki_crlfile_data(f) = task;
    *ct = f;

    return ngx_thread_task_post(jmcf->threads, task) == NGX_OK ? 0 : -1;
}

#endif


/* The issuers' CRL files that changed since they were tried (all of them
 * at start), parsed in threads (common/watch.c: which files, which
 * versions, what is logged).  A file that does not verify, is stale or
 * older than the CRL of its key in force leaves that one in place (which
 * then goes stale itself: checks that need it fail closed); it is tried
 * again once it changes. */
void
ngx_http_jpki_load_crls(ngx_http_jpki_main_conf_t *jmcf)
{
#if (NGX_THREADS)
    jpki_crlwatch_pass(jpki_site_crlwatch(jmcf->js), jpki_site_crls(jmcf->js),
                       ngx_time(), ngx_http_jpki_crl_post, jmcf);
#else
    jpki_crlwatch_pass(jpki_site_crlwatch(jmcf->js), jpki_site_crls(jmcf->js),
                       ngx_time(), NULL, NULL);
#endif
}
