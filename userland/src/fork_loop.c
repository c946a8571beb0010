/* fork_loop.c - cost of fork + _exit + waitpid of a small process.
 * Usage: fork_loop [N]. Prints the count; with -t also the mean in us
 * (timing lines are for benchmarks, not differential tests). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    int timing = argc > 2 && strcmp(argv[2], "-t") == 0;
    int ok = 0;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0)
            _exit(i & 0x7f);
        int st;
        if (waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == (i & 0x7f))
            ok++;
    }
    double t1 = now_us();
    printf("forks %d ok %d\n", n, ok);
    if (timing)
        printf("fork_exit_wait_us=%.1f\n", (t1 - t0) / n);
    return ok == n ? 0 : 1;
}
