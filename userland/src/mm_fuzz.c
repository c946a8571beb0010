/* mm_fuzz.c - a deterministic random walk of mmap, munmap, mprotect,
 * madvise(DONTNEED), mremap (MAYMOVE|FIXED, growing and shrinking) and
 * stores over a 16 MiB region, in a parent and two forked children at
 * once. Each process then checksums what it can read of the region; the
 * children report theirs through their exit status, so the output is the
 * same whatever order the processes ran in. Page tables, COW sharing and
 * VMA splits must all agree with Linux for the checksums to match.
 *
 *   mm_fuzz [SEED] [STEPS] [REGION_MIB]    (defaults 12345 300 16)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define BASE ((char *)0x200000000UL)

static unsigned long REG = 16UL << 20;

static unsigned long long s;
static sigjmp_buf jb;

static unsigned long long rnd(void)
{
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    return s;
}

static void on_fault(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

/* Sum of the readable bytes, page by page; unreadable pages count apart. */
static unsigned long checksum(void)
{
    unsigned long sum = 0;
    for (unsigned long off = 0; off < REG; off += 4096) {
        volatile unsigned char *p = (unsigned char *)BASE + off;
        if (sigsetjmp(jb, 1)) {
            sum = sum * 31 + 7;
            continue;
        }
        unsigned long page = 0;
        for (int i = 0; i < 4096; i += 64)
            page = page * 131 + p[i];
        sum = sum * 31 + page;
    }
    return sum;
}

int main(int argc, char **argv)
{
    s = argc > 1 ? strtoull(argv[1], 0, 0) : 12345;
    int steps = argc > 2 ? atoi(argv[2]) : 300;
    if (argc > 3)
        REG = strtoul(argv[3], 0, 0) << 20;
    if (mmap(BASE, REG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) != BASE)
        return 1;
    for (unsigned long o = 0; o < REG; o += 4096 * 3)
        BASE[o] = (char)(o >> 12);
    signal(SIGSEGV, on_fault);
    signal(SIGBUS, on_fault);
    fflush(stdout);
    pid_t kids[2] = {0, 0};
    int me = 0;
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            me = k + 1;
            s += 1000 * (k + 1);
            break;
        }
    }
    unsigned long span = REG / 4096 * 600 / 4096;     /* 600 pages in 16 MiB */
    for (int i = 0; i < steps; i++) {
        unsigned long off = (rnd() % (REG / 4096)) * 4096;
        unsigned long len = (rnd() % span + 1) * 4096;
        char *a = BASE + off;
        switch (rnd() % 7) {
        case 0: munmap(a, len); break;
        case 1: mprotect(a, len, rnd() % 4); break;
        case 2: madvise(a, len, MADV_DONTNEED); break;
        case 3: mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0); break;
        case 4: mremap(a, len, (rnd() % span + 1) * 4096, MREMAP_MAYMOVE | MREMAP_FIXED,
                       BASE + (rnd() % (REG / 4096)) * 4096); break;
        default:
            for (int j = 0; j < 8; j++) {
                unsigned long at = rnd() % REG;
                char v = (char)rnd();
                if (sigsetjmp(jb, 1) == 0)
                    BASE[at] = v;
            }
        }
    }
    unsigned long sum = checksum();
    if (me)
        _exit(sum % 251);
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        printf("child %d: %d\n", k + 1, WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    }
    printf("parent: %lu\n", sum % 1000003);
    return 0;
}
