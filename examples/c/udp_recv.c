/* Binds argv[1] (UDP), receives argv[2] datagrams (default 5) with recvfrom, prints
 * each with its sender, answers each with "ack <datagram>", and exits 0. */
#include "common.h"

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9000;
    int count = argc > 2 ? atoi(argv[2]) : 5;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) DIE("socket");
    struct sockaddr_in a = addr_of("0.0.0.0", port);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("bind");
    printf("bound %d\n", port);
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        char buf[2048];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &flen);
        if (n < 0) DIE("recvfrom");
        buf[n] = 0;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        printf("from %s:%d: %s\n", ip, ntohs(from.sin_port), buf);
        fflush(stdout);
        char ack[2100];
        int len = snprintf(ack, sizeof ack, "ack %s", buf);
        if (sendto(s, ack, len, 0, (struct sockaddr *)&from, flen) != len) DIE("sendto");
    }
    close(s);
    return 0;
}
