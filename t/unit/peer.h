/* peer.h - the unit tests' peer at the other end of a socketpair
 * (test_conn.c, test_sentinel.c): the gate's end pair[0], the peer's
 * pair[1], both non-blocking. */
#ifndef JPKI_TEST_PEER_H
#define JPKI_TEST_PEER_H
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int pair[2];                 /* [0] the gate's end, [1] the peer's */

__attribute__((unused)) static void new_pair(void)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
        exit(2);
    fcntl(pair[0], F_SETFL, O_NONBLOCK);
    fcntl(pair[1], F_SETFL, O_NONBLOCK);
}

__attribute__((unused)) static void close_pair(void)
{
    close(pair[0]);
    if (pair[1] >= 0)
        close(pair[1]);
}

/* What the gate sent so far (NUL-terminated). */
__attribute__((unused)) static size_t peer_read(int fd, char *buf, size_t max)
{
    ssize_t n;
    size_t got = 0;

    while (got + 1 < max && (n = read(fd, buf + got, max - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

__attribute__((unused)) static void peer_write(int fd, const char *s, size_t len)
{
    if (write(fd, s, len) != (ssize_t)len)
        exit(3);
}

#define PEER_SAYS(s) peer_write(pair[1], s, strlen(s))

#endif
