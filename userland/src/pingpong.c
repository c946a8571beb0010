/* pingpong.c - two processes bounce one byte over two pipes N times:
 * every hop blocks one side and wakes the other (a context switch).
 * Usage: pingpong [N] [-t]; -t prints us per switch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int timing = argc > 2 && strcmp(argv[2], "-t") == 0;
    int a[2], b[2];
    char c = 0;
    if (pipe(a) || pipe(b))
        return 2;
    pid_t p = fork();
    if (p == 0) {
        for (int i = 0; i < n; i++) {
            if (read(a[0], &c, 1) != 1) _exit(3);
            c++;
            if (write(b[1], &c, 1) != 1) _exit(4);
        }
        _exit(0);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1)
            return 5;
        c++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int st;
    waitpid(p, &st, 0);
    printf("rounds %d last byte %d child status %d\n", n, (unsigned char)c, WEXITSTATUS(st));
    if (timing) {
        double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
        printf("switch_us=%.2f\n", us / (2.0 * n));
    }
    return 0;
}
