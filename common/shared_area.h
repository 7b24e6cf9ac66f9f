/*
 * shared_area.h - the layout of the shared area (shared.h), for the files
 * of common/ that keep state there.  Each part's structure is declared by
 * its owner: metrics.h (jpki_metrics_area), audit.h (jpki_audit_area).
 */
#ifndef JPKI_SHARED_AREA_H
#define JPKI_SHARED_AREA_H

#include "shared.h"
#include "metrics.h"
#include "audit.h"

#include <stdint.h>

struct jpki_shared {
    uint64_t magic;               /* JPKI_SHARED_MAGIC */
    uint64_t layout;              /* sizeof(struct jpki_shared) */
    jpki_metrics_area metrics;
    jpki_audit_area audit;
};

#endif /* JPKI_SHARED_AREA_H */
