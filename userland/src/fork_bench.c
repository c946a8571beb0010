/* fork_bench.c - fork latency with and without copy-on-write PTE tables.
 *
 *   fork_bench SIZE_MB MODE [ITER] [STRIDE_KB]
 *
 * Maps SIZE_MB MiB of anonymous private memory (2 MiB aligned, so it fills
 * SIZE_MB / 2 whole PTE tables), writes one byte per 4 KiB page, then forks
 * ITER times (default 3) and reports the minimum.
 *
 * MODE:
 *   plain        syscall(SYS_fork); times the fork in the parent -> fork_us=
 *   cow          raw clone3 with CLONE_COW_PGTABLE (0x400000000) -> fork_us=
 *   plain+cow    ITER plain forks, then ITER COW forks, in one process (the
 *                two minimums are taken a second apart, not a whole run:
 *                a host whose speed drifts skews them less)
 *                -> fork_us_plain= and fork_us_cow=
 *   plain-write  as plain, but the child writes one byte every STRIDE_KB KiB
 *   cow-write    (default 4: every page) before exiting; the parent times
 *                fork + waitpid -> fork_write_us=, and the child times its
 *                write loop alone (reported through a MAP_SHARED page,
 *                mapped in these modes only)
 *                -> child_write_us=. With STRIDE_KB 2048 the child writes one
 *                byte per PTE table: the cow - plain difference of
 *                child_write_us over SIZE_MB / 2 is the cost of one break.
 *
 * The child always leaves with syscall(SYS_exit_group, 0) (no atexit work).
 * A kernel without CLONE_COW_PGTABLE (stock Linux) rejects the flag with
 * EINVAL: the cow modes then print "cow unsupported" and exit 0.
 *
 * Prints times, so its output is not deterministic: it is a benchmark, not
 * a differential test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CLONE_COW_PGTABLE 0x400000000ULL

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long do_fork(int cow)
{
    if (!cow)
        return syscall(SYS_fork);
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_COW_PGTABLE;
    a.exit_signal = SIGCHLD;
    return syscall(435, &a, sizeof a);
}

/* ITER forks (plain or COW); the best fork latency (write mode: fork +
 * child's writes + waitpid) into *best, the child's best write loop into
 * *best_child. Returns 0, 1 on error, or 3 when the kernel rejects the COW
 * flag. */
static int forks(int cow, int write_mode, int iter, volatile unsigned char *p, size_t len,
                 size_t stride, volatile double *shared, double *best, double *best_child)
{
    *best = *best_child = -1;
    for (int i = 0; i < iter; i++) {
        double t0 = now_us();
        long pid = do_fork(cow);
        double t1 = now_us();
        if (pid == 0) {
            if (write_mode) {
                double c0 = now_us();
                for (size_t off = 0; off < len; off += stride)
                    p[off] = 2;
                shared[0] = now_us() - c0;
            }
            syscall(SYS_exit_group, 0);
        }
        if (pid < 0) {
            if (cow && errno == EINVAL)
                return 3;
            perror("fork");
            return 1;
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "fork_bench: child failed (status %#x)\n", st);
            return 1;
        }
        double t2 = now_us();
        double dt = write_mode ? t2 - t0 : t1 - t0;
        if (*best < 0 || dt < *best)
            *best = dt;
        if (write_mode && (*best_child < 0 || shared[0] < *best_child))
            *best_child = shared[0];
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SIZE_MB plain|cow|plain+cow|plain-write|cow-write [ITER] [STRIDE_KB]\n", argv[0]);
        return 2;
    }
    long size_mb = atol(argv[1]);
    const char *mode = argv[2];
    int iter = argc > 3 ? atoi(argv[3]) : 3;
    long stride_kb = argc > 4 ? atol(argv[4]) : 4;
    int cow = 0, write_mode = 0, both = 0;
    if (!strcmp(mode, "plain+cow"))
        both = 1;
    else if (!strcmp(mode, "cow"))
        cow = 1;
    else if (!strcmp(mode, "plain-write"))
        write_mode = 1;
    else if (!strcmp(mode, "cow-write"))
        cow = 1, write_mode = 1;
    else if (strcmp(mode, "plain")) {
        fprintf(stderr, "fork_bench: unknown mode %s\n", mode);
        return 2;
    }
    if (size_mb < 0 || iter < 1 || stride_kb < 1) {
        fprintf(stderr, "fork_bench: bad SIZE_MB, ITER or STRIDE_KB\n");
        return 2;
    }

    size_t len = (size_t)size_mb << 20, stride = (size_t)stride_kb << 10;
    volatile unsigned char *p = NULL;
    if (len) {
        /* over-map by 2 MiB and trim, so the region starts on a PTE table */
        size_t align = 2 << 20;
        char *m = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        uintptr_t start = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
        if (start > (uintptr_t)m)
            munmap(m, start - (uintptr_t)m);
        if ((uintptr_t)m + len + align > start + len)
            munmap((char *)start + len, (uintptr_t)m + len + align - (start + len));
        p = (volatile unsigned char *)start;
        for (size_t off = 0; off < len; off += 4096)
            p[off] = 1;
    }
    /* The child's write-loop time comes back through this page. Only the
     * write modes map it: the latency modes fork a process holding the
     * region and nothing else (a MAP_SHARED mapping is never COW-shared,
     * so the tables on the way down to it are built for the child). */
    volatile double *shared = NULL;
    if (write_mode) {
        shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED) {
            perror("mmap shared");
            return 1;
        }
    }
    printf("mode=%s size_mb=%ld iter=%d%s", mode, size_mb, iter, write_mode ? "" : "\n");
    if (write_mode)
        printf(" stride_kb=%ld\n", stride_kb);
    fflush(stdout);

    double best, best_child;
    if (both) {
        double best_plain;
        int r = forks(0, 0, iter, p, len, stride, shared, &best_plain, &best_child);
        if (r == 0)
            r = forks(1, 0, iter, p, len, stride, shared, &best, &best_child);
        if (r == 3)
            printf("cow unsupported\n");
        if (r)
            return r == 3 ? 0 : r;
        printf("fork_us_plain=%.1f\nfork_us_cow=%.1f\n", best_plain, best);
        return 0;
    }
    int r = forks(cow, write_mode, iter, p, len, stride, shared, &best, &best_child);
    if (r == 3)
        printf("cow unsupported\n");
    if (r)
        return r == 3 ? 0 : r;
    printf("%s=%.1f\n", write_mode ? "fork_write_us" : "fork_us", best);
    if (write_mode)
        printf("child_write_us=%.1f\n", best_child);
    return 0;
}
