/* partial_rw.c - read() and write() with a buffer whose tail is unmapped or
 * read-only. Linux moves the accessible prefix of the buffer and returns
 * its length (/dev/zero, pread); a pipe fails the whole call with EFAULT
 * and keeps its data; /dev/null never looks at the buffer. readv, writev,
 * preadv and pwritev follow the same rules over the whole iovec. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%-34s -1 %s\n", what, strerror(errno));
    else
        printf("%-34s %ld\n", what, r);
}

int main(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 2;
    munmap(m + pg, pg);                       /* hole in the middle */
    mprotect(m + 2 * pg, pg, PROT_READ);      /* read-only last page */
    char *edge = m + pg;                      /* first unmapped byte */
    char *ro = m + 2 * pg;

    int p[2];
    if (pipe(p))
        return 2;
    fcntl(p[0], F_SETFL, O_NONBLOCK);         /* an empty drain returns EAGAIN */
    char big[8192];
    memset(big, 'x', sizeof big);
    show("pipe write 8192", write(p[1], big, sizeof big));
    show("read 4096 into 100 mapped", read(p[0], edge - 100, 4096));
    show("read 50 into unmapped", read(p[0], edge, 50));
    show("read 64 into read-only", read(p[0], ro, 64));
    show("read 64 ok", read(p[0], m, 64));
    char rest[16384];
    show("drain", read(p[0], rest, sizeof rest));

    memset(m, 'y', pg);
    show("write 100 from 30 mapped", write(p[1], edge - 30, 100));
    show("write 10 from unmapped", write(p[1], edge, 10));
    show("drain", read(p[0], rest, sizeof rest));

    close(p[0]);                              /* no reader left: */
    show("write 0 bytes, no reader", write(p[1], big, 0));   /* 0, no SIGPIPE */

    int z = open("/dev/zero", O_RDONLY);
    show("/dev/zero read 200 into 50 mapped", read(z, edge - 50, 200));
    show("/dev/zero pread 200, 70 mapped", pread(z, edge - 70, 200, 0));
    int nul = open("/dev/null", O_WRONLY);
    show("/dev/null write 200, 20 mapped", write(nul, edge - 20, 200));
    show("/dev/null write from unmapped", write(nul, edge, 5));

    /* readv and writev: the same rules over the whole iovec, which stops
     * at its first bad byte. */
    int p2[2];
    if (pipe(p2))
        return 2;
    fcntl(p2[0], F_SETFL, O_NONBLOCK);
    show("pipe write 300", write(p2[1], big, 300));
    struct iovec rv[3] = {{m, 10}, {edge - 20, 100}, {m + 64, 10}};
    show("pipe readv 10 + 20 of 100 mapped", readv(p2[0], rv, 3));
    struct iovec rv2[2] = {{m, 10}, {m + 64, 10}};
    show("pipe readv 10 + 10 ok", readv(p2[0], rv2, 2));
    show("drain", read(p2[0], rest, sizeof rest));
    show("/dev/zero readv 10 + 20 of 100", readv(z, rv, 3));
    struct iovec rv3[2] = {{edge, 10}, {m, 10}};
    show("/dev/zero readv, first unmapped", readv(z, rv3, 2));
    struct iovec wv[2] = {{m, 10}, {edge, 10}};
    show("/dev/null writev, second unmapped", writev(nul, wv, 2));
    show("/dev/null writev, first unmapped", writev(nul, rv3, 2));
    show("pipe writev, first unmapped", writev(p2[1], rv3, 2));
    /* preadv and pwritev: as pread and pwrite, over the iovec. */
    show("/dev/zero preadv 10 + 20 of 100", preadv(z, rv, 3, 0));
    show("/dev/zero preadv, first unmapped", preadv(z, rv3, 2, 0));
    show("/dev/null pwritev, second unmapped", pwritev(nul, wv, 2, 0));
    show("/dev/null pwritev, first unmapped", pwritev(nul, rv3, 2, 0));
    show("pipe preadv", preadv(p2[0], rv2, 2, 0));
    show("pipe pwritev", pwritev(p2[1], rv2, 2, 0));
    show("pipe preadv, first unmapped", preadv(p2[0], rv3, 2, 0));   /* ESPIPE first */
    show("pipe pwritev, first unmapped", pwritev(p2[1], rv3, 2, 0));
    show("pipe pread into unmapped", pread(p2[0], edge, 10, 0));
    show("pipe pwrite from unmapped", pwrite(p2[1], edge, 10, 0));
    show("drain", read(p2[0], rest, sizeof rest));

    /* The kernel caches translations of user pages it has touched: after
     * munmap or mprotect they must be gone, as from the CPU's TLB. (A raw
     * syscall: the vDSO would write the page from user mode.) */
    char *q = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("clock_gettime into fresh page", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, q));
    mprotect(q, pg, PROT_READ);
    show("... after mprotect read-only", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, q));
    munmap(q, pg);
    show("... after munmap", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, q));
    return 0;
}
