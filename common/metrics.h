/*
 * metrics.h - the gate's counters, summed across workers or children in
 * the shared area (shared.h).
 */
#ifndef JPKI_METRICS_H
#define JPKI_METRICS_H

#include <stdint.h>

typedef struct {
    uint64_t reserved;
} jpki_metrics_area;

#endif /* JPKI_METRICS_H */
