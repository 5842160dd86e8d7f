/* Shared by the examples: the system headers, then (with -DUSTACK_API) ustack.h
 * mapping the plain socket names to the ustack_ ones, so each example builds both
 * for `ustack run` (plain libc names, interposed) and linked to libustack_preload. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef USTACK_API
#define USTACK_REDEFINE_LIBC
#include "ustack.h"
#endif

#define DIE(what) do { fprintf(stderr, "%s: %s\n", what, strerror(errno)); exit(1); } while (0)

__attribute__((unused)) static struct sockaddr_in addr_of(const char *ip, int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", ip);
        exit(2);
    }
    return a;
}

/* Writes all of buf (write may be partial). */
__attribute__((unused)) static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            DIE("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}
