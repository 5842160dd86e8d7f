/* A TCP echo server: socket, bind, listen, accept, read, write, close on port 8080
 * (or argv[1]). It serves argv[2] clients (default 1) one after the other, echoing
 * each until it closes, then prints the bytes echoed and exits 0. */
#include "common.h"

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int clients = argc > 2 ? atoi(argv[2]) : 1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) DIE("socket");
    int one = 1;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) DIE("setsockopt");
    struct sockaddr_in a = addr_of("0.0.0.0", port);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("bind");
    if (listen(s, 16) < 0) DIE("listen");
    printf("listening on %d\n", port);
    fflush(stdout);
    long total = 0;
    for (int i = 0; i < clients; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int c = accept(s, (struct sockaddr *)&peer, &plen);
        if (c < 0) DIE("accept");
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        printf("client %s:%d\n", ip, ntohs(peer.sin_port));
        fflush(stdout);
        char buf[16384];
        for (;;) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                DIE("read");
            }
            if (n == 0) break;
            write_all(c, buf, (size_t)n);
            total += n;
        }
        if (close(c) < 0) DIE("close");
    }
    close(s);
    printf("echoed %ld bytes\n", total);
    return 0;
}
