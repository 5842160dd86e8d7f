/* A wait the library does not intercept: a kernel epoll driven by raw syscall(2)s
 * (as some runtimes do) over a ustack UDP socket. The socket's eventfd mirrors its
 * readability: the raw epoll reports it when a datagram arrives (echoed by a kernel
 * server at argv[1]:argv[2]) and stops once it is read. */
#include "../../../examples/c/common.h"
#include <sys/epoll.h>
#include <sys/syscall.h>

static int raw_wait(int ep, int ms) {
    struct epoll_event ev[2];
    return (int)syscall(SYS_epoll_pwait, ep, ev, 2, ms, NULL, 8);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (u < 0) DIE("socket");
    int ep = (int)syscall(SYS_epoll_create1, 0);
    if (ep < 0) DIE("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = u};
    if (syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, u, &ev) < 0) DIE("raw epoll_ctl");
    if (raw_wait(ep, 100) != 0) { fprintf(stderr, "readable before any data\n"); return 1; }
    struct sockaddr_in to = addr_of(argv[1], atoi(argv[2]));
    if (sendto(u, "x", 1, 0, (struct sockaddr *)&to, sizeof to) != 1) DIE("sendto");
    if (raw_wait(ep, 5000) != 1) { fprintf(stderr, "raw epoll missed the datagram\n"); return 1; }
    char buf[8];
    if (recv(u, buf, sizeof buf, 0) != 1) DIE("recv");
    if (recv(u, buf, sizeof buf, 0) != -1 || errno != EAGAIN) DIE("second recv");
    if (raw_wait(ep, 100) != 0) { fprintf(stderr, "still readable after reading\n"); return 1; }
    printf("raw epoll: ok\n");
    return 0;
}
