/* Descriptor semantics of ustack sockets: dup/close of the original, dup2 onto a
 * chosen number, FD_CLOEXEC per number, EINTR from a blocking recv when a signal
 * handler runs (and SA_RESTART), and a closed socket's number reused by a file.
 * argv: IP PORT [PORT2] of kernel TCP echo servers. */
#include "../../../examples/c/common.h"
#include <pthread.h>
#include <signal.h>

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

/* Writes to the echo connection two seconds later, from another thread. */
static void *late_writer(void *arg) {
    sleep(2);
    write_all(*(int *)arg, "late\n", 5);
    return NULL;
}

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
    /* With SA_RESTART the blocking recv goes on after the handler: the alarm fires at
     * 1 s, the echo of a write made at 2 s ends it. */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct sockaddr_in a2 = addr_of(argv[1], atoi(argc > 3 ? argv[3] : argv[2]));
    int t = socket(AF_INET, SOCK_STREAM, 0);
    if (t < 0 || connect(t, (struct sockaddr *)&a2, sizeof a2) < 0) DIE("connect 2");
    pthread_t th;
    pthread_create(&th, NULL, late_writer, &t);
    alarmed = 0;
    alarm(1);
    char buf[8];
    r = recv(t, buf, 5, MSG_WAITALL);
    pthread_join(th, NULL);
    if (r != 5 || memcmp(buf, "late\n", 5) != 0 || !alarmed) {
        fprintf(stderr, "SA_RESTART recv: %zd errno %d alarmed %d\n", r, errno, alarmed);
        return 1;
    }
    printf("sa_restart: ok\n");
    close(t);
    return 0;
}
