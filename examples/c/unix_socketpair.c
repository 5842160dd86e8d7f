/* An AF_UNIX socketpair stays on the kernel even with the ustack library loaded and
 * its stack attached: a UDP socket is opened first, then the pair talks both ways,
 * poll() waits on the pair and the UDP socket together, and SO_DOMAIN says AF_UNIX. */
#include "common.h"

int main(void) {
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0) DIE("socket AF_INET");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) DIE("socketpair");
    if (sv[0] == udp || sv[1] == udp) {
        fprintf(stderr, "descriptor numbers collide\n");
        return 1;
    }
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) DIE("getsockopt");
    if (domain != AF_UNIX) {
        fprintf(stderr, "SO_DOMAIN %d, not AF_UNIX\n", domain);
        return 1;
    }
    write_all(sv[0], "ping", 4);
    struct pollfd p[2] = {{sv[1], POLLIN, 0}, {udp, POLLIN, 0}};
    int k = poll(p, 2, 5000);
    if (k != 1 || !(p[0].revents & POLLIN) || p[1].revents != 0) {
        fprintf(stderr, "poll: %d, revents %x %x\n", k, p[0].revents, p[1].revents);
        return 1;
    }
    char buf[8];
    if (read(sv[1], buf, sizeof buf) != 4 || memcmp(buf, "ping", 4) != 0) DIE("read ping");
    write_all(sv[1], "pong", 4);
    if (read(sv[0], buf, sizeof buf) != 4 || memcmp(buf, "pong", 4) != 0) DIE("read pong");
    close(sv[0]);
    close(sv[1]);
    close(udp);
    printf("socketpair ok\n");
    return 0;
}
