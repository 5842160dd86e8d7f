/* Sends argv[3] datagrams (default 5) "datagram N" to argv[1]:argv[2] with sendto. */
#include "common.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s IP PORT [COUNT]\n", argv[0]);
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 5;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) DIE("socket");
    struct sockaddr_in a = addr_of(argv[1], atoi(argv[2]));
    for (int i = 0; i < count; i++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "datagram %d", i);
        if (sendto(s, msg, len, 0, (struct sockaddr *)&a, sizeof a) != len) DIE("sendto");
        usleep(10000);
    }
    close(s);
    printf("sent %d\n", count);
    return 0;
}
