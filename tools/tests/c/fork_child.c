/* fork with a ustack connection open: the child's inherited ustack descriptor fails
 * with EBADF (read, write, poll gives POLLNVAL) and close frees it, while the parent's
 * connection keeps working (echo through a kernel echo server at argv[1]:argv[2]). */
#include "../../../examples/c/common.h"
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) DIE("socket");
    struct sockaddr_in a = addr_of(argv[1], atoi(argv[2]));
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) DIE("connect");
    pid_t pid = fork();
    if (pid < 0) DIE("fork");
    if (pid == 0) {
        char c = 'x';
        if (write(s, &c, 1) != -1 || errno != EBADF) _exit(10);
        if (read(s, &c, 1) != -1 || errno != EBADF) _exit(11);
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLNVAL)) _exit(12);
        if (close(s) != 0) _exit(13);
        printf("child: EBADF on the inherited socket\n");
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) DIE("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed: status %d\n", status);
        return 1;
    }
    write_all(s, "after fork\n", 11);
    char buf[32];
    size_t got = 0;
    while (got < 11) {
        ssize_t n = read(s, buf + got, sizeof buf - got);
        if (n <= 0) DIE("read echo");
        got += (size_t)n;
    }
    if (memcmp(buf, "after fork\n", 11) != 0) return 1;
    printf("parent: connection intact\n");
    close(s);
    return 0;
}
