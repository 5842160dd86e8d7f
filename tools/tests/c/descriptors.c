/* Descriptor semantics of ustack sockets: dup/close of the original, dup2 onto a
 * chosen number, FD_CLOEXEC per number, EINTR from a blocking recv when a signal
 * handler runs, and a closed socket's number reused by a file. argv: IP PORT of a
 * kernel TCP echo server. */
#include "../../../examples/c/common.h"
#include <signal.h>

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

static void echo(int fd, const char *msg) {
    size_t len = strlen(msg), got = 0;
    char buf[64];
    write_all(fd, msg, len);
    while (got < len) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n <= 0) DIE("read echo");
        got += (size_t)n;
    }
    if (memcmp(buf, msg, len) != 0) {
        fprintf(stderr, "bad echo\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr_of(argv[1], atoi(argv[2]));
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("connect");
    int d = dup(s);
    if (d < 0 || d == s) DIE("dup");
    if (close(s) < 0) DIE("close original");
    echo(d, "via dup\n");
    printf("dup: ok\n");
    int n = dup2(d, 50);
    if (n != 50) DIE("dup2");
    if (fcntl(50, F_GETFD) != 0) { fprintf(stderr, "dup2 copied FD_CLOEXEC\n"); return 1; }
    if (fcntl(50, F_SETFD, FD_CLOEXEC) < 0 || fcntl(50, F_GETFD) != FD_CLOEXEC) DIE("F_SETFD");
    if (fcntl(d, F_GETFD) != 0) { fprintf(stderr, "FD_CLOEXEC is not per number\n"); return 1; }
    close(d);
    echo(50, "via dup2\n");
    printf("dup2/cloexec: ok\n");
    close(50);
    char c = 'x';
    if (write(50, &c, 1) != -1 || errno != EBADF) { fprintf(stderr, "closed number still writable\n"); return 1; }
    /* A closed socket's number goes back to the kernel: the next open gets it. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    if (u < 0) DIE("socket udp");
    close(u);
    int f = open("/dev/null", O_WRONLY);
    if (f != u) { fprintf(stderr, "number %d not reused (got %d)\n", u, f); return 1; }
    if (write(f, "x", 1) != 1) DIE("write /dev/null");
    close(f);
    printf("reuse: ok\n");
    /* A blocking recv is interrupted by a signal whose handler runs. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = addr_of("0.0.0.0", 0);
    if (bind(u, (struct sockaddr *)&any, sizeof any) < 0) DIE("bind");
    alarm(1);
    ssize_t r = recv(u, &c, 1, 0);
    if (r != -1 || errno != EINTR || !alarmed) {
        fprintf(stderr, "recv: %zd errno %d alarmed %d\n", r, errno, alarmed);
        return 1;
    }
    printf("eintr: ok\n");
    return 0;
}
