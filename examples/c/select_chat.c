/* A chat server on select(): every line a client sends goes to every other client.
 * Listens on argv[1] (default 8080); exits 0 once argv[2] clients (default 2) have
 * joined and all of them have left, printing how many lines it relayed. */
#include "common.h"

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int want = argc > 2 ? atoi(argv[2]) : 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) DIE("socket");
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = addr_of("0.0.0.0", port);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("bind");
    if (listen(s, 16) < 0) DIE("listen");
    printf("listening on %d\n", port);
    fflush(stdout);
    int clients[FD_SETSIZE];
    int n = 0, joined = 0, relayed = 0;
    while (joined < want || n > 0) {
        fd_set r;
        FD_ZERO(&r);
        int maxfd = -1;
        if (joined < want) {
            FD_SET(s, &r);
            maxfd = s;
        }
        for (int i = 0; i < n; i++) {
            FD_SET(clients[i], &r);
            if (clients[i] > maxfd) maxfd = clients[i];
        }
        struct timeval tv = {20, 0};
        int k = select(maxfd + 1, &r, NULL, NULL, &tv);
        if (k < 0) {
            if (errno == EINTR) continue;
            DIE("select");
        }
        if (k == 0) {
            fprintf(stderr, "select timed out\n");
            return 1;
        }
        if (joined < want && FD_ISSET(s, &r)) {
            int c = accept(s, NULL, NULL);
            if (c < 0) DIE("accept");
            clients[n++] = c;
            joined++;
            printf("joined %d\n", joined);
            fflush(stdout);
        }
        for (int i = 0; i < n; i++) {
            if (!FD_ISSET(clients[i], &r)) continue;
            char buf[4096];
            ssize_t m = read(clients[i], buf, sizeof buf);
            if (m <= 0) {
                close(clients[i]);
                clients[i] = clients[--n];
                i--;
                continue;
            }
            for (int j = 0; j < n; j++)
                if (j != i) write_all(clients[j], buf, (size_t)m);
            for (ssize_t b = 0; b < m; b++) relayed += buf[b] == '\n';
        }
    }
    close(s);
    printf("relayed %d lines\n", relayed);
    return 0;
}
