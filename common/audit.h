/*
 * audit.h - the audit trail: its chain's head in the shared area
 * (shared.h).
 */
#ifndef JPKI_AUDIT_H
#define JPKI_AUDIT_H

#include <stdint.h>

typedef struct {
    uint64_t reserved;
} jpki_audit_area;

#endif /* JPKI_AUDIT_H */
