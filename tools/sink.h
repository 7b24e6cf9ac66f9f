/* sink.h - a bounded in-memory buffer for libcurl answers, shared by the
 * command-line tools.  Past max bytes the transfer is aborted (over = 1);
 * the buffer is kept NUL-terminated. */
#ifndef JPKI_TOOLS_SINK_H
#define JPKI_TOOLS_SINK_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf;                       /* malloc'ed; NULL until data */
    size_t len, cap, max;
    int over;                           /* more than max was sent */
} sink_t;

/* CURLOPT_WRITEFUNCTION (CURLOPT_WRITEDATA: a sink_t). */
size_t sink_write(char *d, size_t size, size_t nmemb, void *ud);
#endif
