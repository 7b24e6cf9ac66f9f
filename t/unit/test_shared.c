/* test_shared.c - the shared area (common/shared.c): set up once, kept by
 * a second set-up (a reload), refused when too small. */
#include "jpki.h"
#include "shared.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>

int main(void)
{
    size_t n = jpki_shared_size();
    uint8_t *mem = malloc(n + 64);
    jpki_shared *sh, *again;

    ok(n >= 16, "the area has a size");
    ok(jpki_shared_init(mem, n - 1) == NULL, "one byte short: refused");
    ok(jpki_shared_init(NULL, n) == NULL, "no memory: refused");
    memset(mem, 0xa5, n + 64);
    sh = jpki_shared_init(mem, n);
    ok(sh == (jpki_shared *)mem, "set up in place");
    /* the last byte of the area: zeroed by the set-up */
    ok(mem[n - 1] == 0, "a new area starts zeroed");
    mem[n - 1] = 7;                      /* state kept by a process */
    again = jpki_shared_init(mem, n + 64);
    ok(again == sh && mem[n - 1] == 7, "a second set-up keeps the area");
    mem[0] ^= 1;                         /* another layout's area */
    again = jpki_shared_init(mem, n);
    ok(again == sh && mem[n - 1] == 0, "another magic: set up anew");
    free(mem);
    return done_testing();
}
