/* mmap_ops.c - address-space syscalls: anonymous private mmap, mprotect
 * RO/RW, munmap of a middle page (splitting a mapping), mremap grow
 * (MREMAP_MAYMOVE) and shrink, MAP_FIXED over an existing mapping,
 * madvise(MADV_DONTNEED) zeroing, and EINVAL error cases. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include "errname.h"

#define PG 4096
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static int all(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void err(const char *what, long r)
{
    int e = errno;
    printf("%s -> %ld %s\n", what, r, r == -1 ? errname(e) : "OK");
}

int main(void)
{
    /* 1. mmap + write/read */
    unsigned char *p = mmap(NULL, 4 * PG, RW, ANON, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    printf("fresh mapping zero: %s\n", all(p, 4 * PG, 0) ? "yes" : "no");
    for (int i = 0; i < 4; i++)
        memset(p + i * PG, 'A' + i, PG);
    printf("pages: %c %c %c %c\n", p[0], p[PG + 5], p[2 * PG + 9], p[4 * PG - 1]);

    /* 2. mprotect RO then RW again */
    printf("mprotect RO: %d\n", mprotect(p, 4 * PG, PROT_READ));
    printf("read under RO: %c\n", p[3 * PG]);
    printf("mprotect RW: %d\n", mprotect(p, 4 * PG, RW));
    p[3 * PG] = 'z';
    printf("write after RW: %c\n", p[3 * PG]);

    /* 3. munmap the middle page: two pieces remain, the hole is unmapped */
    printf("munmap middle: %d\n", munmap(p + PG, PG));
    printf("piece 0 intact: %s\n", all(p, PG, 'A') ? "yes" : "no");
    printf("piece 2 intact: %s\n", all(p + 2 * PG, PG, 'C') ? "yes" : "no");
    errno = 0;
    err("mprotect on hole", mprotect(p + PG, PG, PROT_READ));
    printf("munmap rest: %d %d\n", munmap(p, PG), munmap(p + 2 * PG, 2 * PG));

    /* 4. mremap grow (may move) keeps contents, new part is zero; shrink */
    unsigned char *q = mmap(NULL, 2 * PG, RW, ANON, -1, 0);
    memset(q, 'q', 2 * PG);
    unsigned char *g = mremap(q, 2 * PG, 16 * PG, MREMAP_MAYMOVE);
    if (g == MAP_FAILED) { perror("mremap grow"); return 1; }
    printf("mremap grow: contents kept %s, tail zero %s\n",
           all(g, 2 * PG, 'q') ? "yes" : "no", all(g + 2 * PG, 14 * PG, 0) ? "yes" : "no");
    memset(g + 15 * PG, 'x', PG);
    unsigned char *s = mremap(g, 16 * PG, PG, 0);
    printf("mremap shrink: in place %s, contents kept %s\n",
           s == g ? "yes" : "no", all(s, PG, 'q') ? "yes" : "no");
    errno = 0;
    err("mprotect on shrunk tail", mprotect(g + PG, PG, PROT_READ));
    munmap(s, PG);

    /* 5. MAP_FIXED over an existing mapping replaces just that page */
    unsigned char *f = mmap(NULL, 3 * PG, RW, ANON, -1, 0);
    memset(f, 0xAA, 3 * PG);
    unsigned char *f1 = mmap(f + PG, PG, RW, ANON | MAP_FIXED, -1, 0);
    printf("MAP_FIXED same address: %s\n", f1 == f + PG ? "yes" : "no");
    printf("MAP_FIXED page zero: %s, neighbours kept: %s\n",
           all(f + PG, PG, 0) ? "yes" : "no",
           all(f, PG, 0xAA) && all(f + 2 * PG, PG, 0xAA) ? "yes" : "no");

    /* 6. madvise(MADV_DONTNEED) on anonymous private memory zeroes it */
    printf("madvise DONTNEED: %d\n", madvise(f + 2 * PG, PG, MADV_DONTNEED));
    printf("after DONTNEED zero: %s, page 0 kept: %s\n",
           all(f + 2 * PG, PG, 0) ? "yes" : "no", all(f, PG, 0xAA) ? "yes" : "no");
    munmap(f, 3 * PG);

    /* 7. error cases, as raw syscalls so libc cannot round or pre-check */
    errno = 0;
    err("munmap unaligned", syscall(SYS_munmap, f + 1, PG));
    errno = 0;
    err("mmap length 0", syscall(SYS_mmap, NULL, 0, RW, ANON, -1, 0));
    errno = 0;
    err("mprotect unaligned", syscall(SYS_mprotect, f + 1, PG, PROT_READ));
    errno = 0;
    err("mmap no SHARED/PRIVATE", syscall(SYS_mmap, NULL, PG, RW, MAP_ANONYMOUS, -1, 0));
    errno = 0;
    err("munmap length 0", syscall(SYS_munmap, f, 0));
    /* 8. madvise lengths that wrap: EINVAL, and nothing above is touched
     * (the stack included: a wrapped end once zapped it) */
    unsigned char *h = mmap(NULL, PG, RW, ANON, -1, 0);
    h[0] = 0x5A;
    errno = 0;
    err("madvise length -1", syscall(SYS_madvise, h, (size_t)-1, MADV_DONTNEED));
    errno = 0;
    err("madvise length -4096", syscall(SYS_madvise, h, (size_t)-4096, MADV_DONTNEED));
    errno = 0;
    err("madvise length 0", syscall(SYS_madvise, h, 0, MADV_DONTNEED));
    printf("after wrapped madvise kept: %s\n", h[0] == 0x5A ? "yes" : "no");
    return 0;
}
