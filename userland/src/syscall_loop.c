/* syscall_loop.c - syscall entry/exit cost: raw syscall(SYS_getpid) N times
 * (argv[1], default 200000). Raw syscall() avoids any libc pid caching. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000L;
    long first = syscall(SYS_getpid), same = 1;
    for (long i = 0; i < n; i++)
        if (syscall(SYS_getpid) != first)
            same = 0;
    printf("pid stable %s\n", same ? "yes" : "no");
    printf("done %ld\n", n);
    return 0;
}
