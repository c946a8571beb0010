/* syscall_loop.c - syscall entry/exit cost: raw syscall(SYS_getpid) N times
 * (argv[1], default 200000). Raw syscall() avoids any libc pid caching.
 * With "clock" as argv[2]: libc's clock_gettime(CLOCK_MONOTONIC) N times
 * instead (through the vDSO when there is one), checking it never goes back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000L;
    if (argc > 2 && !strcmp(argv[2], "clock")) {
        struct timespec a, b;
        long back = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &b);
            back += b.tv_sec < a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec < a.tv_nsec);
            a = b;
        }
        printf("clock went back %ld times\n", back);
        printf("done %ld\n", n);
        return 0;
    }
    long first = syscall(SYS_getpid), same = 1;
    for (long i = 0; i < n; i++)
        if (syscall(SYS_getpid) != first)
            same = 0;
    printf("pid stable %s\n", same ? "yes" : "no");
    printf("done %ld\n", n);
    return 0;
}
