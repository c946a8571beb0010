/* fileio.c - a grab bag of simple syscalls: write, writev to stdout, pipe +
 * writev/readv scatter-gather, uname, clock_gettime(MONOTONIC), getrandom,
 * uid/gid queries, prlimit64(RLIMIT_STACK), nanosleep, sched_yield. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include <sys/uio.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

int main(void)
{
    /* raw write and writev on stdout (no stdio buffering involved) */
    write(1, "write ok\n", 9);
    struct iovec wv[3] = {
        { "writev ", 7 }, { "three ", 6 }, { "pieces\n", 7 },
    };
    ssize_t wn = writev(1, wv, 3);
    printf("writev returned %zd\n", wn);

    /* scatter/gather through a pipe */
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    struct iovec pw[2] = { { "hello ", 6 }, { "readv world", 11 } };
    ssize_t w = writev(fds[1], pw, 2);
    char a[5] = {0}, b[13] = {0};
    struct iovec rv[2] = { { a, 4 }, { b, 12 } };
    ssize_t r = readv(fds[0], rv, 2);
    printf("pipe writev %zd readv %zd: [%s] [%s]\n", w, r, a, b);
    close(fds[0]);
    close(fds[1]);

    struct utsname u;
    if (uname(&u) == 0)
        printf("sysname %s machine %s\n", u.sysname, u.machine);

    struct timespec t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    int mono = t2.tv_sec > t1.tv_sec ||
               (t2.tv_sec == t1.tv_sec && t2.tv_nsec >= t1.tv_nsec);
    printf(mono ? "monotonic ok\n" : "monotonic BROKEN\n");

    unsigned char rnd[16];
    printf("getrandom %zd\n", getrandom(rnd, sizeof rnd, 0));

    printf(getuid() == geteuid() && getgid() == getegid()
           ? "ids consistent\n" : "ids differ\n");

    struct rlimit rl = {0, 0};
    long pr = syscall(SYS_prlimit64, 0, RLIMIT_STACK, NULL, &rl);
    printf(pr == 0 && rl.rlim_cur > 0 ? "stack limit ok\n" : "stack limit BAD\n");

    struct timespec ms = { 0, 1000000 };
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int ns = nanosleep(&ms, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    long el = (t2.tv_sec - t1.tv_sec) * 1000000000L + (t2.tv_nsec - t1.tv_nsec);
    printf("nanosleep %d%s\n", ns, el >= 1000000 ? ", slept" : ", too short");

    printf("sched_yield %d\n", sched_yield());
    return 0;
}
