/* Threads: a thread-per-connection TCP echo server on port argv[1] serving argv[2]
 * clients at once, each worker blocking in read/write on its own ustack socket while
 * the others do the same; exits 0 after all of them finished, printing the total. */
#include "../../../examples/c/common.h"
#include <pthread.h>

static long totals[64];

static void *worker(void *arg) {
    long i = (long)arg;
    int c = (int)(totals[i]);
    totals[i] = 0;
    char buf[8192];
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        write_all(c, buf, (size_t)n);
        totals[i] += n;
    }
    close(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int n = atoi(argv[2]);
    if (n < 1 || n > 64) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = addr_of("0.0.0.0", atoi(argv[1]));
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) DIE("listen");
    printf("listening\n");
    fflush(stdout);
    pthread_t th[64];
    for (long i = 0; i < n; i++) {
        int c = accept(s, NULL, NULL);
        if (c < 0) DIE("accept");
        totals[i] = c;
        pthread_create(&th[i], NULL, worker, (void *)i);
    }
    long sum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        sum += totals[i];
    }
    close(s);
    printf("threads echoed %ld bytes\n", sum);
    return 0;
}
