/* shared.c - the gate's shared area (shared.h): its layout checked and set
 * up once, and the contexts of a process pointed at it. */
#include "internal.h"
#include "shared_area.h"
#include "metrics.h"

#include <string.h>

#define JPKI_SHARED_MAGIC 0x6a706b6973686172ULL  /* "jpkishar" */

size_t jpki_shared_size(void)
{
    return sizeof(struct jpki_shared);
}

jpki_shared *jpki_shared_init(void *mem, size_t size)
{
    struct jpki_shared *sh = mem;

    if (mem == NULL || size < sizeof(*sh))
        return NULL;
    if (sh->magic == JPKI_SHARED_MAGIC && sh->layout == sizeof(*sh))
        return sh;                       /* kept across a reload */
    memset(sh, 0, sizeof(*sh));
    sh->layout = sizeof(*sh);
    sh->magic = JPKI_SHARED_MAGIC;
    return sh;
}

void jpki_ctx_set_shared(jpki_ctx *ctx, jpki_shared *sh,
                         const jpki_shm_lock *lock)
{
    ctx->shared = sh;
    if (lock != NULL)
        ctx->shared_lock = *lock;
    else
        memset(&ctx->shared_lock, 0, sizeof(ctx->shared_lock));
    jpki_metrics_attach(ctx);
}
