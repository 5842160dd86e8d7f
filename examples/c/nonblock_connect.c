/* A non-blocking connect: O_NONBLOCK with fcntl, connect gives EINPROGRESS, poll
 * for POLLOUT, SO_ERROR says how it went. Connects to argv[1]:argv[2] (must succeed,
 * then sends "hello\n" and waits for the echo) and, if given, argv[1]:argv[3] (must
 * be refused). Exits 0 when both behave. */
#include "common.h"

static int try_connect(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) DIE("socket");
    int fl = fcntl(s, F_GETFL);
    if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0) DIE("fcntl");
    if (!(fcntl(s, F_GETFL) & O_NONBLOCK)) {
        fprintf(stderr, "O_NONBLOCK did not stick\n");
        exit(1);
    }
    struct sockaddr_in a = addr_of(ip, port);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    if (r == 0) return s;
    if (errno != EINPROGRESS) DIE("connect");
    printf("connect: EINPROGRESS\n");
    struct pollfd p = {s, POLLOUT, 0};
    if (poll(&p, 1, 10000) != 1) DIE("poll");
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0) DIE("getsockopt");
    if (err != 0) {
        printf("port %d: %s\n", port, strerror(err));
        close(s);
        errno = err;
        return -1;
    }
    printf("port %d: connected\n", port);
    return s;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s IP PORT [CLOSED_PORT]\n", argv[0]);
        return 2;
    }
    int s = try_connect(argv[1], atoi(argv[2]));
    if (s < 0) return 1;
    write_all(s, "hello\n", 6);
    char buf[16];
    size_t got = 0;
    while (got < 6) {
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) DIE("poll echo");
        ssize_t n = read(s, buf + got, sizeof buf - got);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0) DIE("read");
        got += (size_t)n;
    }
    if (memcmp(buf, "hello\n", 6) != 0) {
        fprintf(stderr, "bad echo\n");
        return 1;
    }
    printf("echo ok\n");
    close(s);
    if (argc > 3) {
        if (try_connect(argv[1], atoi(argv[3])) >= 0 || errno != ECONNREFUSED) {
            fprintf(stderr, "expected ECONNREFUSED\n");
            return 1;
        }
    }
    return 0;
}
