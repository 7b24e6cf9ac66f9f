/* sink.c - see sink.h. */
#include "sink.h"

#include <stdlib.h>
#include <string.h>

size_t sink_write(char *d, size_t size, size_t nmemb, void *ud)
{
    sink_t *s = ud;
    size_t n = size * nmemb;

    if (n > s->max - s->len) {
        s->over = 1;
        return 0;                       /* aborts the transfer */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        uint8_t *nb;

        while (cap < s->len + n + 1)
            cap = cap > s->max / 2 ? s->max + 1 : cap * 2;
        if ((nb = realloc(s->buf, cap)) == NULL)
            return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, d, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}
