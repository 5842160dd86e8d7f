/* IP header options through `ustack run`: IP_TTL as an int and IP_TOS as one byte (Linux
 * takes either length), read back with getsockopt, then a datagram to a kernel peer
 * that answers with the TTL and TOS it read from the IP header.
 * argv: IP PORT of that kernel peer. */
#include "../../../examples/c/common.h"

static int get_int(int s, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(s, level, name, &v, &len) < 0) DIE("getsockopt");
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) DIE("socket");
    if (get_int(s, IPPROTO_IP, IP_TTL) != 64) { fprintf(stderr, "default TTL not 64\n"); return 1; }
    int ttl = 9;
    unsigned char tos = 0x28;
    if (setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) < 0) DIE("IP_TTL");
    if (setsockopt(s, IPPROTO_IP, IP_TOS, &tos, sizeof tos) < 0) DIE("IP_TOS");
    int zero = 0;
    if (setsockopt(s, IPPROTO_IP, IP_TTL, &zero, sizeof zero) == 0 || errno != EINVAL) {
        fprintf(stderr, "IP_TTL 0 was not EINVAL\n");
        return 1;
    }
    printf("getsockopt: ttl %d tos %d\n", get_int(s, IPPROTO_IP, IP_TTL), get_int(s, IPPROTO_IP, IP_TOS));
    struct sockaddr_in a = addr_of(argv[1], atoi(argv[2]));
    if (sendto(s, "hi", 2, 0, (struct sockaddr *)&a, sizeof a) != 2) DIE("sendto");
    char buf[64];
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    if (n < 0) DIE("recv");
    buf[n] = 0;
    printf("kernel saw: %s\n", buf);
    return 0;
}
