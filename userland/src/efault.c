/* efault.c - syscalls handed bad user pointers must fail with EFAULT
 * instead of crashing the process (or the kernel). */
#include <stdio.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include "errname.h"

/* volatile so the compiler cannot see (and warn about) the bad pointer */
static void *volatile BAD = (void *)8;

static void report(const char *what, long r)
{
    int e = errno;
    printf("%s: ret %ld %s%s\n", what, r, r == -1 ? errname(e) : "no error",
           r == -1 && e == EFAULT ? " ok" : "");
}

int main(void)
{
    int fds[2];
    errno = 0;
    report("write(1, bad, 10)", write(1, BAD, 10));
    errno = 0;
    report("uname(bad)", uname(BAD));
    errno = 0;
    report("clock_gettime(MONOTONIC, bad)", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, BAD));
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    if (write(fds[1], "abc", 3) != 3) { perror("write"); return 1; }
    errno = 0;
    report("read(pipe, bad, 10)", read(fds[0], BAD, 10));
    errno = 0;
    report("pipe(bad)", syscall(SYS_pipe, BAD));
    /* the 3 bytes must still be readable after the failed read */
    char buf[8] = {0};
    long n = read(fds[0], buf, sizeof buf);
    printf("read after EFAULT: %ld \"%s\"\n", n, buf);
    printf("survived\n");
    return 0;
}
