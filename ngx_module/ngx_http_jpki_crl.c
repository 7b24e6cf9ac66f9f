/*
 * ngx_http_jpki_crl.c - the issuers and their CRLs, nginx's side: the
 * jpki_issuer and jpki_crl_zone directives, the zone's shared memory and
 * lock, the CRL files watched on the workers' 1 s timer and parsed in
 * threads of nginx's default pool.  The grammar, the zone's layout and
 * protocol, the lookups and what is logged are the core's (common/
 * conf_issuer.c, common/crlzone.c).
 */

#include "ngx_http_jpki.h"
#include "site.h"


/* ---- jpki_issuer NAME ca=FILE[,FILE...] [ocsp=URL] [crl=FILE|DIR]...
 *                  [policy=OID|none] ------------------------------------ */

static const char *
ngx_http_jpki_issuer_abs(void *ud, const char *path)
{
    ngx_conf_t  *cf = ud;
    ngx_str_t    s;

    s.len = ngx_strlen(path);
    s.data = ngx_pnalloc(cf->pool, s.len + 1);
    if (s.data == NULL) {
        return NULL;
    }
    (void) ngx_cpystrn(s.data, (u_char *) path, s.len + 1);

    if (ngx_conf_full_name(cf->cycle, &s, 1) != NGX_OK) {
        return NULL;
    }

    return (const char *) s.data;
}


static void
ngx_http_jpki_issuer_warn(void *ud, const char *msg)
{
    ngx_conf_log_error(NGX_LOG_WARN, (ngx_conf_t *) ud, 0, "jpki: %s", msg);
}


/* The OCSP responder's address (resolved now) and request line: the host,
 * port, path and Host header are the core's (jpki_conf_issuer_parse). */
static char *
ngx_http_jpki_issuer_ocsp(ngx_conf_t *cf, ngx_http_jpki_issuer_t *iss,
    jpki_conf_issuer *spec)
{
    ngx_str_t  hh, path;

    hh.len = ngx_strlen(spec->ocsp_host_header);
    hh.data = (u_char *) spec->ocsp_host_header;
    path.len = ngx_strlen(spec->ocsp_path);
    path.data = (u_char *) spec->ocsp_path;

    iss->ocsp_host.data = ngx_pstrdup(cf->pool, &hh);
    iss->ocsp_host.len = hh.len;
    iss->ocsp_uri.data = ngx_pstrdup(cf->pool, &path);
    iss->ocsp_uri.len = path.len;
    if (iss->ocsp_host.data == NULL || iss->ocsp_uri.data == NULL) {
        return NGX_CONF_ERROR;
    }

    iss->ocsp_url.url = iss->ocsp_host;
    iss->ocsp_url.default_port = (in_port_t) spec->ocsp_port;

    if (ngx_parse_url(cf->pool, &iss->ocsp_url) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "jpki: OCSP URL \"%s\": %s", spec->ocsp,
                           iss->ocsp_url.err ? iss->ocsp_url.err : "invalid");
        return NGX_CONF_ERROR;
    }

    if (iss->ocsp_url.naddrs == 0) {
        return "has an OCSP URL whose host does not resolve";
    }

    return NGX_CONF_OK;
}


/* The spec's CRL sources, kept for the workers. */
static char *
ngx_http_jpki_issuer_crls(ngx_conf_t *cf, ngx_http_jpki_issuer_t *iss,
    jpki_conf_issuer *spec)
{
    ngx_str_t   *src;
    ngx_uint_t   i;

    if (spec->n_crl == 0) {
        return NGX_CONF_OK;
    }

    iss->crl_sources = ngx_array_create(cf->pool, spec->n_crl,
                                        sizeof(ngx_str_t));
    if (iss->crl_sources == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < spec->n_crl; i++) {
        src = ngx_array_push(iss->crl_sources);
        if (src == NULL) {
            return NGX_CONF_ERROR;
        }
        src->len = ngx_strlen(spec->crl[i]);
        src->data = ngx_pnalloc(cf->pool, src->len + 1);
        if (src->data == NULL) {
            return NGX_CONF_ERROR;
        }
        (void) ngx_cpystrn(src->data, (u_char *) spec->crl[i], src->len + 1);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_jpki_issuer_setup(ngx_conf_t *cf, ngx_http_jpki_main_conf_t *jmcf,
    jpki_conf_issuer *spec)
{
    ngx_http_jpki_issuer_t  *iss;
    char                     err[512], *rv;

    if (jpki_conf_issuer_paths(spec, ngx_http_jpki_issuer_abs, cf, err,
                               sizeof(err)) != JPKI_OK
        || jpki_conf_issuer_check(spec, ngx_http_jpki_issuer_warn, cf, err,
                                  sizeof(err)) != JPKI_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    iss = ngx_array_push(&jmcf->issuers);
    if (iss == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memzero(iss, sizeof(ngx_http_jpki_issuer_t));

    iss->name.len = ngx_strlen(spec->name);
    iss->name.data = ngx_pstrdup(cf->pool, &(ngx_str_t) { iss->name.len,
                                                    (u_char *) spec->name });
    if (iss->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    if (jpki_site_issuer(jmcf->ctx, spec, &iss->issuer, err, sizeof(err))
        != JPKI_OK)
    {
        if (iss->issuer == NULL) {
            jmcf->issuers.nelts--;
            return JPKI_SITE_ISSUER_NAME;
        }
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    if (spec->ocsp != NULL) {
        rv = ngx_http_jpki_issuer_ocsp(cf, iss, spec);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    return ngx_http_jpki_issuer_crls(cf, iss, spec);
}


char *
ngx_http_jpki_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts;
    jpki_conf_issuer            spec;
    const char                 *argv[64];
    ngx_uint_t                  i, n;
    char                        err[512], *rv;

    n = cf->args->nelts - 1;
    if (n > 64) {
        return "has more than 63 parameters";
    }
    for (i = 0; i < n; i++) {
        argv[i] = (const char *) value[i + 1].data;     /* NUL-terminated */
    }

    if (jpki_conf_issuer_parse(&spec, argv, n, err, sizeof(err)) != JPKI_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "jpki: %s", err);
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_jpki_issuer_setup(cf, jmcf, &spec);
    jpki_conf_issuer_free(&spec);

    if (rv == NGX_CONF_OK) {
        jmcf->configured = 1;
    }

    return rv;
}


/* ---- jpki_crl_zone NAME:SIZE ------------------------------------------ */

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


char *
ngx_http_jpki_crl_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_jpki_main_conf_t  *jmcf = conf;
    ngx_str_t                  *value = cf->args->elts, name, sz;
    u_char                     *colon;
    ssize_t                     size;

    ngx_http_jpki_site_note(cf, cmd, conf);

    if (jmcf->crl_zone) {
        return "is duplicate";
    }

    colon = ngx_strlchr(value[1].data, value[1].data + value[1].len, ':');
    if (colon == NULL) {
        return "expects NAME:SIZE";
    }

    name.data = value[1].data;
    name.len = colon - name.data;
    sz.data = colon + 1;
    sz.len = value[1].data + value[1].len - sz.data;
    size = ngx_parse_size(&sz);

    if (name.len == 0 || size == NGX_ERROR || size < JPKI_CRLZONE_MIN) {
        return "expects NAME:SIZE with a size of at least 32k";
    }

    /* the core's header and the slab pool's page descriptors come on top
     * of the size asked for the CRLs */
    jmcf->crl_zone_bytes = ngx_align(size + jpki_crlzone_overhead(),
                                     ngx_pagesize);
    size = jmcf->crl_zone_bytes
           + ngx_align((jmcf->crl_zone_bytes / ngx_pagesize + 64)
                       * sizeof(ngx_slab_page_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    jmcf->crl_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_jpki_module);
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


/* The CRL files of the site, watched by the worker (common/watch.c):
 * each issuer's crl= files and directories. */
static ngx_int_t
ngx_http_jpki_crl_watch(ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
    ngx_str_t               *src;
    const char              *paths[JPKI_ISSUER_CRL_MAX];
    ngx_uint_t               i, k;

    jmcf->crlw = jpki_crlwatch_new(jmcf->ctx, (unsigned) jmcf->crl_grace,
                                   ngx_http_jpki_log, NGX_HTTP_JPKI_WATCH_LOG,
                                   NULL);
    if (jmcf->crlw == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < jmcf->issuers.nelts; i++) {
        if (iss[i].crl_sources == NULL) {
            continue;
        }

        src = iss[i].crl_sources->elts;
        for (k = 0; k < iss[i].crl_sources->nelts && k < JPKI_ISSUER_CRL_MAX;
             k++)
        {
            paths[k] = (const char *) src[k].data;      /* NUL-terminated */
        }

        if (jpki_crlwatch_issuer(jmcf->crlw, iss[i].issuer, paths, k) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* The worker's handle on the site's CRLs: the zone, or its own memory;
 * the CRL files read a first time. */
ngx_int_t
ngx_http_jpki_crl_init(ngx_cycle_t *cycle, ngx_http_jpki_main_conf_t *jmcf)
{
    ngx_http_jpki_issuer_t  *iss = jmcf->issuers.elts;
    const jpki_issuer       *list[16];
    jpki_crlzone_ops         ops;
    ngx_shm_zone_t          *zone = jmcf->crl_zone;
    ngx_uint_t               i;
    u_char                   name[64];

    ngx_memzero(&ops, sizeof(ops));

    if (zone) {
        ops.lock = ngx_http_jpki_shm_lock;
        ops.unlock = ngx_http_jpki_shm_unlock;
        ops.alive = ngx_http_jpki_crl_alive;
        ops.ud = zone->shm.addr;
        (void) ngx_cpystrn(name, zone->shm.name.data,
                           ngx_min(zone->shm.name.len + 1, sizeof(name)));
        jmcf->crlz = jpki_crlzone_attach(zone->data, jmcf->crl_zone_bytes,
                                         (char *) name, &ops, (long) ngx_pid);
    } else {
        jmcf->crlz = jpki_crlzone_local(&ops);
    }

    if (jmcf->crlz == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "jpki: cannot set up "
                      "the CRLs%s", zone ? " (zone of another layout)" : "");
        return NGX_ERROR;
    }

    if (ngx_http_jpki_crl_watch(jmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a new configuration: the CRLs of issuers gone are released */
    for (i = 0; i < jmcf->issuers.nelts && i < 16; i++) {
        list[i] = iss[i].issuer;
    }
    jpki_crlzone_retain(jmcf->crlz, list, i);

    ngx_http_jpki_load_crls(jmcf);

    return NGX_OK;
}


void
ngx_http_jpki_crl_exit(ngx_http_jpki_main_conf_t *jmcf)
{
    jpki_crlwatch_free(jmcf->crlw);
    jmcf->crlw = NULL;

    jpki_crlzone_free(jmcf->crlz);
    jmcf->crlz = NULL;
}


/* The status of the certificate of txn in the CRL of the key that issued
 * it (the core's verdict: fail closed without one). */
jpki_err
ngx_http_jpki_crl_lookup(ngx_http_jpki_main_conf_t *jmcf, jpki_txn *txn,
    jpki_rev_info *info)
{
    return jpki_crlzone_lookup(jmcf->crlz, jpki_txn_issuer(txn),
                               jpki_txn_issuer_key(txn),
                               jpki_txn_cert_id(txn), ngx_time(),
                               (unsigned) jmcf->crl_grace, info);
}


/* The CRL files of the site the worker watches. */
ngx_uint_t
ngx_http_jpki_crl_count(ngx_http_jpki_main_conf_t *jmcf)
{
    return jpki_crlwatch_count(jmcf->crlw);
}


/* Every CRL file of the site in the health answer (a file's own label when
 * its issuer has several). */
void
ngx_http_jpki_crl_health(ngx_http_jpki_main_conf_t *jmcf, jpki_health *h)
{
    jpki_crlwatch_health(jmcf->crlw, jmcf->crlz, h);
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
    jpki_crlwatch_pass(jmcf->crlw, jmcf->crlz, ngx_time(),
                       ngx_http_jpki_crl_post, jmcf);
#else
    jpki_crlwatch_pass(jmcf->crlw, jmcf->crlz, ngx_time(), NULL, NULL);
#endif
}
