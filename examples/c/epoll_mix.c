/* epoll over a ustack UDP socket, a pipe and an AF_UNIX socketpair at once, level-
 * or edge-triggered (argv[3]: "lt" or "et"). Each source is made ready in turn and
 * epoll_wait must name exactly it; a second wait without reading must name it again
 * (LT) or time out (ET). Then EPOLLONESHOT fires once until re-armed. The UDP data
 * comes from an echo server at argv[1]:argv[2]. Exits 0 when all of it holds. */
#include "common.h"
#include <sys/epoll.h>

static int ep, et;

static void expect(const char *what, int fd) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, 5000);
    if (n != 1 || ev[0].data.fd != fd) {
        fprintf(stderr, "%s: %d events, first fd %d, want fd %d\n", what, n, n > 0 ? ev[0].data.fd : -1, fd);
        exit(1);
    }
    n = epoll_wait(ep, ev, 4, 200);
    if (et ? n != 0 : (n != 1 || ev[0].data.fd != fd)) {
        fprintf(stderr, "%s again (%s): %d events\n", what, et ? "ET" : "LT", n);
        exit(1);
    }
    printf("%s: ok\n", what);
}

static void add(int fd, unsigned events) {
    struct epoll_event ev = {.events = events | (et ? EPOLLET : 0), .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) DIE("epoll_ctl");
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s IP PORT lt|et\n", argv[0]);
        return 2;
    }
    et = strcmp(argv[3], "et") == 0;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) DIE("epoll_create1");
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (udp < 0) DIE("socket");
    int pfd[2], sv[2];
    if (pipe(pfd) < 0) DIE("pipe");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) DIE("socketpair");
    add(udp, EPOLLIN);
    add(pfd[0], EPOLLIN);
    add(sv[0], EPOLLIN);
    struct epoll_event ev[4];
    if (epoll_wait(ep, ev, 4, 100) != 0) {
        fprintf(stderr, "something ready at start\n");
        return 1;
    }
    char buf[64];
    write_all(pfd[1], "p", 1);
    expect("pipe", pfd[0]);
    if (read(pfd[0], buf, sizeof buf) != 1) DIE("read pipe");
    write_all(sv[1], "u", 1);
    expect("unix", sv[0]);
    if (read(sv[0], buf, sizeof buf) != 1) DIE("read unix");
    struct sockaddr_in to = addr_of(argv[1], atoi(argv[2]));
    if (sendto(udp, "d1", 2, 0, (struct sockaddr *)&to, sizeof to) != 2) DIE("sendto");
    expect("udp", udp);
    if (recv(udp, buf, sizeof buf, 0) != 2) DIE("recv udp");
    if (epoll_wait(ep, ev, 4, 200) != 0) {
        fprintf(stderr, "udp still ready after reading\n");
        return 1;
    }
    /* One-shot: reported once, silent until EPOLL_CTL_MOD re-arms it. */
    struct epoll_event one = {.events = EPOLLIN | EPOLLONESHOT, .data.fd = udp};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, udp, &one) < 0) DIE("epoll_ctl MOD");
    if (sendto(udp, "d2", 2, 0, (struct sockaddr *)&to, sizeof to) != 2) DIE("sendto");
    int n = epoll_wait(ep, ev, 4, 5000);
    if (n != 1 || ev[0].data.fd != udp) {
        fprintf(stderr, "oneshot: %d events\n", n);
        return 1;
    }
    if (epoll_wait(ep, ev, 4, 200) != 0) {
        fprintf(stderr, "oneshot fired twice\n");
        return 1;
    }
    if (epoll_ctl(ep, EPOLL_CTL_MOD, udp, &one) < 0) DIE("epoll_ctl re-arm");
    if (epoll_wait(ep, ev, 4, 5000) != 1) {
        fprintf(stderr, "re-armed oneshot not reported\n");
        return 1;
    }
    printf("oneshot: ok\n");
    printf("epoll %s ok\n", et ? "ET" : "LT");
    return 0;
}
