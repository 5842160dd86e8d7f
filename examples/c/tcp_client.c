/* A TCP client: connects to argv[1]:argv[2], sends argv[3] bytes (default 100000) of
 * a pattern, shuts down its sending side, reads the reply until the server closes,
 * and exits 0 if the reply is the same bytes (an echo server). */
#include "common.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s IP PORT [BYTES]\n", argv[0]);
        return 2;
    }
    long len = argc > 3 ? atol(argv[3]) : 100000;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) DIE("socket");
    struct sockaddr_in a = addr_of(argv[1], atoi(argv[2]));
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("connect");
    char *out = malloc(len), *in = malloc(len + 1);
    for (long i = 0; i < len; i++) out[i] = (char)('a' + (i * 7 + i / 13) % 26);
    /* Send and receive at once through poll, so a large echo cannot deadlock. */
    long sent = 0, got = 0;
    int wr_open = 1;
    while (got < len + 1) {
        struct pollfd p = {s, POLLIN | (wr_open ? POLLOUT : 0), 0};
        if (poll(&p, 1, 10000) <= 0) DIE("poll");
        if ((p.revents & POLLOUT) && wr_open) {
            ssize_t n = send(s, out + sent, len - sent > 65536 ? 65536 : len - sent, MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN) DIE("send");
            if (n > 0) sent += n;
            if (sent == len) {
                if (shutdown(s, SHUT_WR) < 0) DIE("shutdown");
                wr_open = 0;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(s, in + got, len + 1 - got, MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN) DIE("recv");
            if (n == 0) break;
            if (n > 0) got += n;
        }
    }
    close(s);
    if (got != len || memcmp(in, out, len) != 0) {
        fprintf(stderr, "reply differs: sent %ld, got %ld\n", len, got);
        return 1;
    }
    printf("ok %ld bytes echoed\n", got);
    return 0;
}
