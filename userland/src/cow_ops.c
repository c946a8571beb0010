/* cow_ops.c - fork scenarios for copy-on-write PTE tables.
 *
 *   cow_ops [PATH_TO_HELLO]
 *
 * Every fork goes through xfork(): a raw clone3 (syscall 435) with
 * CLONE_COW_PGTABLE, falling back to fork() when the kernel rejects the flag
 * (stock Linux: EINVAL; seccomp sandboxes: ENOSYS; minios --cow-pte=never:
 * EINVAL). So the output is the same natively and under minios whatever its
 * policy: only ok/checksum lines, never addresses, pids or times.
 *
 * Memory is private anonymous and spans several 2 MiB PTE tables with both
 * ends inside a table (a 5 MiB region starting 768 KiB into a table). A
 * "touched" page (every STRIDE-th page, plus the last page of every table)
 * holds a full-page pattern derived from (seed, page index); seed 0 means
 * "must read as zero", and a page the current process unmapped is skipped.
 *
 * Scenarios:
 *   a  write after fork in the parent only, the child only, both; the first
 *      write is a tight loop right after the fork on pages read (and written)
 *      just before it, so a stale writable TLB entry would leak the write;
 *      and the kernel writing into shared pages (read() from a pipe)
 *   b  a chain and a binary tree of forks 3 levels deep, writes at each level
 *   c  the sharer exits first; the table owner exits first; the parent unmaps
 *      and remaps everything while the child still reads its old contents
 *   d  one side does munmap / mprotect RO->RW / mremap grow+shrink /
 *      madvise(DONTNEED) / brk shrink+regrow on partial ranges; the other
 *      side's data must be unchanged (done with the parent, then the child,
 *      as the side that changes things)
 *   e  execve (argv[1], the static hello) in a child after a COW fork
 *   f  vfork inside a COW-forked child; threads in a COW-forked child
 *   g  MAP_SHARED stays shared across the fork, MAP_PRIVATE does not, also
 *      when both kinds share one 2 MiB table
 *   h  1 MiB of initialized .data (file-backed pages) and 1 MiB of .bss,
 *      partly touched before the fork, the rest first touched after it
 *   i  48 MiB in the stack's 1 GiB, as a large process has it: the PMD table
 *      fork builds for the child on the way to its stack then holds two dozen
 *      shared PTE tables (minios lends them uncounted); the child reads and
 *      exits, writes and unmaps a whole table, forks a grandchild; the parent
 *      writes while a child still holds the old contents
 * Children report through their exit status (0 = ok) or a pipe; only the
 * original process prints. Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLONE_COW_PGTABLE 0x400000000ULL
#define KB 1024UL
#define MB (1024UL * 1024UL)
#define TBL (2 * MB)                 /* memory covered by one PTE table */
#define PG 4096UL
#define WORDS (PG / 8)
#define STRIDE 8
#define MAXP 1024
#define GONE 0xFFFFFFFFu              /* page unmapped by this process */

extern char **environ;

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static int cow_fallback;             /* clone3 refused the flag: plain fork */
static int failures;

static pid_t xfork(void)
{
    fflush(NULL);
    if (!cow_fallback) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = CLONE_COW_PGTABLE;
        a.exit_signal = SIGCHLD;
        long r = syscall(435, &a, sizeof a);
        if (r >= 0)
            return (pid_t)r;
        if (errno != EINVAL && errno != ENOSYS)
            return -1;
        cow_fallback = 1;
    }
    return fork();
}

/* ------------------------------------------------------------------ regions */

struct region {
    unsigned char *base;
    size_t len;
    int n;                           /* touched pages */
    int idx[MAXP];                   /* their page indices */
    uint32_t seed[MAXP];             /* expected seed, 0 = zero, GONE = skip */
};

static uint64_t word(uint32_t seed, int page, int j)
{
    uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)page << 32) ^ (uint64_t)j;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    return x ^ (x >> 32);
}

static void fill_page(struct region *r, int k, uint32_t seed)
{
    uint64_t *w = (uint64_t *)(r->base + (size_t)r->idx[k] * PG);
    for (int j = 0; j < (int)WORDS; j++)
        w[j] = seed ? word(seed, r->idx[k], j) : 0;
    r->seed[k] = seed;
}

static int page_ok(const struct region *r, int k)
{
    uint32_t seed = r->seed[k];
    if (seed == GONE)
        return 1;
    const volatile uint64_t *w = (const uint64_t *)(r->base + (size_t)r->idx[k] * PG);
    for (int j = 0; j < (int)WORDS; j++)
        if (w[j] != (seed ? word(seed, r->idx[k], j) : 0))
            return 0;
    return 1;
}

/* number of touched pages whose contents are not what this process expects */
static int verify(const struct region *r)
{
    int bad = 0;
    for (int k = 0; k < r->n; k++)
        bad += !page_ok(r, k);
    return bad;
}

static void compute_pages(struct region *r, int stride)
{
    uintptr_t b = (uintptr_t)r->base;
    int np = (int)(r->len / PG);
    r->n = 0;
    for (int i = 0; i < np && r->n < MAXP; i++)
        if (i % stride == 0 || ((b + (i + 1) * PG) % TBL) == 0 || i == np - 1) {
            r->idx[r->n] = i;
            r->seed[r->n] = 0;
            r->n++;
        }
}

/* A private anonymous region of ``len`` bytes starting ``off`` bytes into a
 * 2 MiB table, its touched pages filled with ``seed``. */
static void region_init(struct region *r, size_t len, size_t off, int stride, uint32_t seed)
{
    size_t total = len + off + 2 * TBL;
    unsigned char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    uintptr_t a = (((uintptr_t)p + TBL - 1) & ~(TBL - 1)) + off;
    unsigned char *s = (unsigned char *)a;
    if (s > p)
        munmap(p, s - p);
    if (p + total > s + len)
        munmap(s + len, p + total - (s + len));
    r->base = s;
    r->len = len;
    compute_pages(r, stride);
    for (int k = 0; k < r->n; k++)
        fill_page(r, k, seed);
}

static void region_free(struct region *r)
{
    munmap(r->base, r->len);
}

/* fill touched pages with k % mod == rem (mod 1: all) */
static void fill_some(struct region *r, uint32_t seed, int mod, int rem)
{
    for (int k = 0; k < r->n; k++)
        if (k % mod == rem)
            fill_page(r, k, seed);
}

/* first touched page at or after byte offset ``off`` */
static int first_at(const struct region *r, size_t off)
{
    for (int k = 0; k < r->n; k++)
        if ((size_t)r->idx[k] * PG >= off)
            return k;
    return r->n;
}

/* offset (from base) of the first 2 MiB boundary inside the region, + n tables */
static size_t boundary(const struct region *r, int n)
{
    uintptr_t b = (uintptr_t)r->base;
    return ((b + TBL) & ~(TBL - 1)) - b + (size_t)n * TBL;
}

/* ------------------------------------------------------------------ helpers */

static void put_byte(int fd, unsigned char c)
{
    while (write(fd, &c, 1) != 1)
        if (errno != EINTR)
            _exit(90);
}

static int get_byte(int fd)
{
    unsigned char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
        ;
    return n == 1 ? c : -1;
}

static void xpipe(int p[2])
{
    if (pipe(p) < 0) {
        perror("pipe");
        exit(2);
    }
}

static void read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(91);
        got += r;
    }
}

static void write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(92);
        put += r;
    }
}

/* the contents of page ``page`` filled with ``seed`` */
static const void *pattern(uint32_t seed, int page)
{
    static uint64_t buf[WORDS];
    for (int j = 0; j < (int)WORDS; j++)
        buf[j] = word(seed, page, j);
    return buf;
}

/* child exit code from a mismatch count */
static int code(int bad)
{
    return bad > 100 ? 100 : bad;
}

/* wait for ``pid``; its exit code, or 200 + signal */
static int reap(pid_t pid)
{
    int st;
    if (pid < 0)
        return 255;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 254;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 200 + WTERMSIG(st);
}

static const char *okstr(int bad)
{
    return bad ? "BAD" : "ok";
}

static void report(const char *name, int parent_bad, int child_code)
{
    if (parent_bad || child_code)
        failures++;
    if (child_code < 0)
        printf("%s: parent %s, child BAD (no report)\n", name, okstr(parent_bad));
    else if (child_code == 0)
        printf("%s: parent %s, child ok\n", name, okstr(parent_bad));
    else
        printf("%s: parent %s, child BAD (%d)\n", name, okstr(parent_bad), child_code);
    if (parent_bad)
        printf("  parent mismatching pages: %d\n", parent_bad);
    fflush(stdout);
}

/* --------------------------------------------------------------- scenario a */

static struct region ra;

/* Just before a fork: write (the same value) and read every touched page, so
 * the CPU holds writable translations for all of them. */
static int touch_all(struct region *r)
{
    for (int k = 0; k < r->n; k++)
        if (r->seed[k] != GONE)
            ((volatile uint64_t *)(r->base + (size_t)r->idx[k] * PG))[0] =
                r->seed[k] ? word(r->seed[k], r->idx[k], 0) : 0;
    return verify(r);
}

/* The first write after the fork: one word per touched page, tight loop. */
static void poke_all(struct region *r, uint32_t seed)
{
    for (int k = 0; k < r->n; k++)
        ((volatile uint64_t *)(r->base + (size_t)r->idx[k] * PG))[0] = word(seed, r->idx[k], 0);
}

static void scenario_a(void)
{
    int p[2];
    pid_t pid;
    int bad, c;

    region_init(&ra, 5 * MB, 768 * KB, STRIDE, 1);

    /* a1: only the parent writes */
    xpipe(p);
    bad = touch_all(&ra);                      /* just before the fork */
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        get_byte(p[0]);                        /* the parent has written */
        _exit(code(verify(&ra)));
    }
    poke_all(&ra, 2);
    fill_some(&ra, 2, 1, 0);
    put_byte(p[1], 1);
    close(p[0]);
    close(p[1]);
    bad += verify(&ra);
    c = reap(pid);
    bad += verify(&ra);
    report("a1 parent writes", bad, c);

    /* a2: only the child writes */
    xpipe(p);
    bad = touch_all(&ra);
    pid = xfork();
    if (pid == 0) {
        poke_all(&ra, 3);
        fill_some(&ra, 3, 1, 0);
        int b = verify(&ra);
        put_byte(p[1], 1);
        _exit(code(b));
    }
    close(p[1]);
    get_byte(p[0]);                            /* the child has written */
    close(p[0]);
    bad += verify(&ra);
    c = reap(pid);
    bad += verify(&ra);
    report("a2 child writes", bad, c);

    /* a3: both write, every page, then half of them again */
    xpipe(p);
    bad = touch_all(&ra);
    pid = xfork();
    if (pid == 0) {
        poke_all(&ra, 5);
        fill_some(&ra, 5, 1, 0);
        put_byte(p[1], 1);
        fill_some(&ra, 7, 2, 1);
        _exit(code(verify(&ra)));
    }
    poke_all(&ra, 4);
    fill_some(&ra, 4, 1, 0);
    get_byte(p[0]);
    fill_some(&ra, 6, 2, 0);
    close(p[0]);
    close(p[1]);
    bad += verify(&ra);
    c = reap(pid);
    bad += verify(&ra);
    report("a3 both write", bad, c);

    /* a4: both write alternate pages, leaving the rest shared */
    bad = touch_all(&ra);
    pid = xfork();
    if (pid == 0) {
        poke_all(&ra, 8);
        fill_some(&ra, 8, 3, 0);
        for (int k = 0; k < ra.n; k++)          /* undo the pokes elsewhere */
            if (k % 3)
                fill_page(&ra, k, ra.seed[k]);
        _exit(code(verify(&ra)));
    }
    fill_some(&ra, 9, 3, 1);
    c = reap(pid);
    bad += verify(&ra);
    report("a4 alternate pages", bad, c);

    /* a5: the kernel writes into COW-shared pages (read() from a pipe):
     * the child reads into the even pages, then the parent into the odd */
    int q[2], self[2];
    xpipe(p);
    xpipe(q);
    xpipe(self);
    bad = touch_all(&ra);
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        close(q[0]);
        for (int k = 0; k < ra.n; k += 2) {
            read_full(p[0], ra.base + (size_t)ra.idx[k] * PG, PG);
            ra.seed[k] = 10;
        }
        int b = verify(&ra);
        put_byte(q[1], 1);
        get_byte(p[0]);                         /* the parent has read */
        b += verify(&ra);
        _exit(code(b));
    }
    close(p[0]);
    close(q[1]);
    for (int k = 0; k < ra.n; k += 2)
        write_full(p[1], pattern(10, ra.idx[k]), PG);
    get_byte(q[0]);
    bad += verify(&ra);
    for (int k = 1; k < ra.n; k += 2) {
        write_full(self[1], pattern(11, ra.idx[k]), PG);
        read_full(self[0], ra.base + (size_t)ra.idx[k] * PG, PG);
        ra.seed[k] = 11;
    }
    put_byte(p[1], 1);
    c = reap(pid);
    bad += verify(&ra);
    report("a5 read() into shared pages", bad, c);
    close(p[1]);
    close(q[0]);
    close(self[0]);
    close(self[1]);
    region_free(&ra);
}

/* --------------------------------------------------------------- scenario b */

static struct region rb;

/* chain: each level writes its own slice, forks the next, writes more,
 * verifies after the child is done. Returns processes that verified ok. */
static int chain(int level)
{
    fill_some(&rb, 20 + level, 4, level % 4);
    int below = 0;
    if (level < 3) {
        pid_t pid = xfork();
        if (pid == 0)
            _exit(chain(level + 1));
        fill_some(&rb, 30 + level, 5, level);   /* writes after the fork too */
        below = reap(pid);
        if (below > 3)
            below = 0;
    }
    return below + (verify(&rb) == 0);
}

/* tree: node ``id`` (1-based, heap order) at ``level`` forks two children */
static int tree(int id, int level)
{
    fill_some(&rb, 100 + id, 7, id % 7);
    int ok = 0;
    if (level < 3) {
        pid_t l = xfork();
        if (l == 0)
            _exit(tree(2 * id, level + 1));
        pid_t r = xfork();
        if (r == 0)
            _exit(tree(2 * id + 1, level + 1));
        fill_some(&rb, 200 + id, 11, id % 11);
        int a = reap(l), b = reap(r);
        ok += (a < 16 ? a : 0) + (b < 16 ? b : 0);
    }
    return ok + (verify(&rb) == 0);
}

static void scenario_b(void)
{
    region_init(&rb, 5 * MB, 768 * KB, 2 * STRIDE, 10);
    int n = chain(0);
    int bad = verify(&rb);
    printf("b chain: %d/4 processes ok\n", n);
    if (n != 4 || bad)
        failures++;

    int t = tree(1, 0);
    printf("b tree: %d/15 processes ok\n", t);
    if (t != 15 || verify(&rb))
        failures++;
    fflush(stdout);
    region_free(&rb);
}

/* --------------------------------------------------------------- scenario c */

static struct region rc;

static void scenario_c(void)
{
    int p[2], q[2];
    pid_t pid;
    int bad, c;

    region_init(&rc, 5 * MB, 768 * KB, STRIDE, 40);

    /* c1: the sharer (child) only reads and exits; the owner writes after */
    pid = xfork();
    if (pid == 0)
        _exit(code(verify(&rc)));
    c = reap(pid);
    fill_some(&rc, 41, 1, 0);
    bad = verify(&rc);
    report("c1 sharer exits first", bad, c);

    /* c2: the child writes half, then exits; the parent reads, then writes */
    pid = xfork();
    if (pid == 0) {
        fill_some(&rc, 42, 2, 0);
        _exit(code(verify(&rc)));
    }
    c = reap(pid);
    bad = verify(&rc);
    fill_some(&rc, 43, 2, 1);
    bad += verify(&rc);
    report("c2 writer child exits first", bad, c);

    /* c3: the owner exits first: M rewrites everything (private tables),
     * forks G sharing them, exits; G then reads, writes and reports. */
    xpipe(p);
    xpipe(q);
    pid = xfork();
    if (pid == 0) {
        fill_some(&rc, 44, 1, 0);
        pid_t g = xfork();
        if (g == 0) {
            close(p[1]);
            close(q[0]);
            if (get_byte(p[0]) != 7)             /* M is gone */
                _exit(1);
            int b = verify(&rc);
            fill_some(&rc, 45, 3, 0);
            b += verify(&rc);
            region_free(&rc);
            put_byte(q[1], (unsigned char)code(b));
            _exit(0);
        }
        _exit(g < 0 ? 99 : code(verify(&rc)));
    }
    close(p[0]);
    close(q[1]);
    c = reap(pid);
    put_byte(p[1], 7);
    int g = get_byte(q[0]);
    close(p[1]);
    close(q[0]);
    bad = verify(&rc);
    report("c3 owner exits first (middle)", bad, c);
    report("c3 owner exits first (grandchild)", 0, g);

    /* c4: the parent unmaps everything and maps new memory in its place while
     * the child still reads its original contents */
    xpipe(p);
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        int b = verify(&rc);
        get_byte(p[0]);
        b += verify(&rc);
        _exit(code(b));
    }
    close(p[0]);
    region_free(&rc);
    if (mmap(rc.base, rc.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) != rc.base) {
        perror("mmap fixed");
        exit(2);
    }
    bad = 0;
    for (int k = 0; k < rc.n; k++)               /* fresh memory reads zero */
        rc.seed[k] = 0;
    bad += verify(&rc);
    fill_some(&rc, 46, 1, 0);
    put_byte(p[1], 1);
    close(p[1]);
    c = reap(pid);
    bad += verify(&rc);
    report("c4 parent remaps all, child reads", bad, c);
    region_free(&rc);
}

/* --------------------------------------------------------------- scenario d */

static struct region rm, rp, rx, rd, rh;
static uintptr_t brk0;

static void heap_init(void)
{
    brk0 = (uintptr_t)syscall(SYS_brk, 0);
    uintptr_t start = (brk0 + PG - 1) & ~(PG - 1);
    uintptr_t want = brk0 + 6 * MB;
    if ((uintptr_t)syscall(SYS_brk, want) != want) {
        printf("brk grow failed\n");
        exit(2);
    }
    rh.base = (unsigned char *)start;
    rh.len = (want - start) & ~(PG - 1);
    compute_pages(&rh, STRIDE);
    for (int k = 0; k < rh.n; k++)
        fill_page(&rh, k, 60);
}

static void d_init(void)
{
    region_init(&rm, 5 * MB, 768 * KB, STRIDE, 50);
    region_init(&rp, 5 * MB, 1 * MB + 12 * KB, STRIDE, 51);
    region_init(&rx, 5 * MB, 768 * KB, STRIDE, 52);
    region_init(&rd, 5 * MB, 1536 * KB, STRIDE, 53);
}

static int d_verify_all(void)
{
    return verify(&rm) + verify(&rp) + verify(&rx) + verify(&rd) + verify(&rh);
}

/* mark touched pages in [lo, hi) (offsets) with ``seed`` without touching them */
static void mark(struct region *r, size_t lo, size_t hi, uint32_t seed)
{
    for (int k = first_at(r, lo); k < r->n && (size_t)r->idx[k] * PG < hi; k++)
        r->seed[k] = seed;
}

/* All the changes, in this process; returns mismatches it sees afterwards. */
static int d_ops(void)
{
    int bad = 0;
    size_t b;

    /* munmap 16 pages either side of the first table boundary */
    b = boundary(&rm, 0);
    if (munmap(rm.base + b - 16 * PG, 32 * PG) != 0)
        bad += 1000;
    mark(&rm, b - 16 * PG, b + 16 * PG, GONE);
    bad += verify(&rm);

    /* mprotect a range across the second boundary RO, read, RW, write */
    b = boundary(&rp, 1);
    size_t lo = b - 24 * PG, hi = b + 40 * PG;
    if (mprotect(rp.base + lo, hi - lo, PROT_READ) != 0)
        bad += 1000;
    bad += verify(&rp);
    if (mprotect(rp.base + lo, hi - lo, PROT_READ | PROT_WRITE) != 0)
        bad += 1000;
    for (int k = first_at(&rp, lo); k < rp.n && (size_t)rp.idx[k] * PG < hi; k++)
        fill_page(&rp, k, 54);
    bad += verify(&rp);

    /* mremap: grow by 3 MiB (may move), write the new tail, shrink by 1 MiB */
    unsigned char *nb = mremap(rx.base, rx.len, rx.len + 3 * MB, MREMAP_MAYMOVE);
    if (nb == MAP_FAILED) {
        bad += 1000;
    } else {
        rx.base = nb;
        bad += verify(&rx);
        volatile uint64_t *tail = (uint64_t *)(nb + rx.len);
        for (size_t i = 0; i < 3 * MB / 8; i += WORDS * 4)
            tail[i] = i + 1;
        for (size_t i = 0; i < 3 * MB / 8; i += WORDS * 4)
            if (tail[i] != i + 1)
                bad++;
        size_t newlen = rx.len - 1 * MB;
        if (mremap(nb, rx.len + 3 * MB, newlen, 0) != nb)
            bad += 1000;
        mark(&rx, newlen, rx.len, GONE);
        rx.len = newlen;
        bad += verify(&rx);
    }

    /* madvise DONTNEED across the first boundary: private anon reads zero */
    b = boundary(&rd, 0);
    lo = b - 8 * PG;
    hi = b + 100 * PG;
    if (madvise(rd.base + lo, hi - lo, MADV_DONTNEED) != 0)
        bad += 1000;
    mark(&rd, lo, hi, 0);
    bad += verify(&rd);
    for (int k = first_at(&rd, lo); k < rd.n && (size_t)rd.idx[k] * PG < hi; k += 2)
        fill_page(&rd, k, 55);
    bad += verify(&rd);

    /* brk: shrink by 5 MiB, grow back: the regrown part reads zero */
    uintptr_t mid = brk0 + 1 * MB, top = brk0 + 6 * MB;
    if ((uintptr_t)syscall(SYS_brk, mid) != mid)
        bad += 1000;
    size_t cut = ((mid + PG - 1) & ~(PG - 1)) - (uintptr_t)rh.base;
    mark(&rh, cut, rh.len, GONE);
    bad += verify(&rh);
    if ((uintptr_t)syscall(SYS_brk, top) != top)
        bad += 1000;
    mark(&rh, cut, rh.len, 0);
    bad += verify(&rh);
    fill_some(&rh, 56, 5, 0);
    bad += verify(&rh);
    return bad;
}

static void d_free(void)
{
    munmap(rm.base, rm.len);
    munmap(rp.base, rp.len);
    munmap(rx.base, rx.len);
    munmap(rd.base, rd.len);
    syscall(SYS_brk, brk0);
}

static void scenario_d(void)
{
    int p[2];
    pid_t pid;
    int bad, c;

    /* d1: the parent changes things, the child checks it still sees its data */
    d_init();
    heap_init();
    xpipe(p);
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        int b = d_verify_all();
        get_byte(p[0]);
        b += d_verify_all();
        _exit(code(b));
    }
    close(p[0]);
    bad = d_ops();
    put_byte(p[1], 1);
    close(p[1]);
    c = reap(pid);
    bad += d_verify_all();
    d_free();
    report("d1 parent munmap/mprotect/mremap/madvise/brk", bad, c);

    /* d2: the child changes things, the parent checks */
    d_init();
    heap_init();
    bad = d_verify_all();
    pid = xfork();
    if (pid == 0) {
        int b = d_ops();
        b += d_verify_all();
        _exit(code(b));
    }
    c = reap(pid);
    bad += d_verify_all();
    d_free();
    report("d2 child munmap/mprotect/mremap/madvise/brk", bad, c);
}

/* --------------------------------------------------------------- scenario e */

static struct region re;

static void scenario_e(const char *prog)
{
    if (!prog) {
        printf("e exec: skipped (no program given)\n");
        fflush(stdout);
        return;
    }
    region_init(&re, 5 * MB, 768 * KB, STRIDE, 70);
    int bad = verify(&re);

    /* e1: the child execs at once, while every table is still shared */
    pid_t pid = xfork();
    if (pid == 0) {
        char *argv[] = { (char *)prog, NULL };
        execve(prog, argv, environ);
        _exit(127);
    }
    fill_some(&re, 71, 2, 0);
    int c = reap(pid);
    bad += verify(&re);
    report("e1 exec in child, tables shared", bad, c);

    /* e2: the child writes some tables first, then execs */
    pid = xfork();
    if (pid == 0) {
        fill_some(&re, 72, 3, 0);
        char *argv[] = { (char *)prog, NULL };
        execve(prog, argv, environ);
        _exit(127);
    }
    c = reap(pid);
    bad = verify(&re);
    fill_some(&re, 73, 1, 0);
    bad += verify(&re);
    report("e2 exec in child after writes", bad, c);
    region_free(&re);
}

/* --------------------------------------------------------------- scenario f */

static struct region rf;
static volatile int vfork_store;
static int thread_count;

#define NTHREADS 4

static void *thread_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int k = 0; k < rf.n; k++)
        if (k % NTHREADS == t) {
            fill_page(&rf, k, 90 + t);
            __atomic_fetch_add(&thread_count, 1, __ATOMIC_SEQ_CST);
        }
    return NULL;
}

static void scenario_f(void)
{
    region_init(&rf, 5 * MB, 768 * KB, STRIDE, 80);

    /* f1: the COW-forked child vforks; the grandchild writes to the (shared
     * with the child, COW-shared with us) memory and _exits(9) */
    pid_t pid = xfork();
    if (pid == 0) {
        int b = 0;
        pid_t g = vfork();
        if (g == 0) {
            vfork_store = 1234;
            rf.seed[0] = 81;                    /* same memory as the child */
            fill_page(&rf, 0, 81);
            _exit(9);
        }
        int st = reap(g);
        if (st != 9)
            b += 1;
        if (vfork_store != 1234)
            b += 2;
        b += verify(&rf) * 4;
        _exit(code(b));
    }
    int c = reap(pid);
    int bad = verify(&rf) + (vfork_store != 0);
    report("f1 vfork in a COW-forked child", bad, c);

    /* f2: threads in a COW-forked child write their pages */
    pid = xfork();
    if (pid == 0) {
        pthread_t th[NTHREADS];
        int b = 0;
        for (int i = 0; i < NTHREADS; i++)
            if (pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) != 0)
                b += 10;
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        if (thread_count != rf.n)
            b += 20;
        b += verify(&rf);
        _exit(code(b));
    }
    fill_some(&rf, 85, 2, 1);
    c = reap(pid);
    bad = verify(&rf) + (thread_count != 0);
    report("f2 threads in a COW-forked child", bad, c);
    region_free(&rf);
}

/* --------------------------------------------------------------- scenario g */

static struct region rs, rv;

static void scenario_g(void)
{
    int p[2], q[2];
    pid_t pid;
    int bad, c;

    /* g1: a MAP_SHARED region and a MAP_PRIVATE one */
    rs.len = 5 * MB;
    rs.base = mmap(NULL, rs.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rs.base == MAP_FAILED) {
        perror("mmap shared");
        exit(2);
    }
    compute_pages(&rs, STRIDE);
    fill_some(&rs, 110, 1, 0);
    region_init(&rv, 5 * MB, 768 * KB, STRIDE, 111);
    xpipe(p);
    xpipe(q);
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        close(q[0]);
        fill_some(&rs, 112, 2, 0);
        fill_some(&rv, 113, 2, 0);
        put_byte(q[1], 1);                       /* child wrote */
        get_byte(p[0]);                          /* parent wrote */
        fill_some(&rs, 114, 2, 1);               /* what the parent wrote */
        for (int k = 0; k < rs.n; k++)
            if (k % 2)
                rs.seed[k] = 114;
        _exit(code(verify(&rs) + verify(&rv)));
    }
    close(p[0]);
    close(q[1]);
    get_byte(q[0]);
    for (int k = 0; k < rs.n; k++)               /* shared: we see the child's */
        if (k % 2 == 0)
            rs.seed[k] = 112;
    bad = verify(&rs) + verify(&rv);
    fill_some(&rs, 114, 2, 1);
    put_byte(p[1], 1);
    close(p[1]);
    close(q[0]);
    c = reap(pid);
    bad += verify(&rs) + verify(&rv);
    report("g1 MAP_SHARED shared, MAP_PRIVATE not", bad, c);
    munmap(rs.base, rs.len);

    /* g2: MAP_SHARED pages in the middle of a private region, inside the
     * same 2 MiB tables */
    size_t off = boundary(&rv, 0) - 64 * PG, slen = 160 * PG;
    unsigned char *s = mmap(rv.base + off, slen, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (s != rv.base + off) {
        perror("mmap shared fixed");
        exit(2);
    }
    mark(&rv, off, off + slen, 0);              /* new shared memory: zero */
    for (int k = first_at(&rv, off); k < rv.n && (size_t)rv.idx[k] * PG < off + slen; k++)
        fill_page(&rv, k, 115);
    fill_some(&rv, 116, 4, 0);                  /* some private, some shared */
    xpipe(q);
    pid = xfork();
    if (pid == 0) {
        close(q[0]);
        for (int k = 0; k < rv.n; k++)
            fill_page(&rv, k, 117);
        put_byte(q[1], 1);
        _exit(code(verify(&rv)));
    }
    close(q[1]);
    get_byte(q[0]);
    close(q[0]);
    for (int k = first_at(&rv, off); k < rv.n && (size_t)rv.idx[k] * PG < off + slen; k++)
        rv.seed[k] = 117;                       /* the shared part changed */
    bad = verify(&rv);
    c = reap(pid);
    bad += verify(&rv);
    report("g2 shared pages inside private tables", bad, c);
    region_free(&rv);
}

/* --------------------------------------------------------------- scenario h */

/* 1 MiB of initialized data (file-backed, private) and 1 MiB of bss: pages
 * first touched after the fork come from the file / demand-zero through PTE
 * tables that are still shared. */
#define HWORDS (1 << 17)
#define HINIT 0x0123456789ABCDEFULL
static uint64_t hdata[HWORDS] = { [0 ... HWORDS - 1] = HINIT };
static uint64_t hbss[HWORDS];

/* mismatching pages: page i of hdata/hbss must hold the pattern of seed
 * dmark[i]/bmark[i] (the last write this process saw), else the initial value */
static int h_verify(const uint32_t *dmark, const uint32_t *bmark)
{
    int bad = 0;
    for (int i = 0; i < HWORDS / (int)WORDS; i++) {
        const volatile uint64_t *d = &hdata[i * WORDS], *b = &hbss[i * WORDS];
        for (int j = 0; j < (int)WORDS; j += 61) {
            uint64_t wd = dmark[i] ? word(dmark[i], i, j) : HINIT;
            uint64_t wb = bmark[i] ? word(bmark[i], i, j) : 0;
            if (d[j] != wd || b[j] != wb) {
                bad++;
                break;
            }
        }
    }
    return bad;
}

static void h_write(uint32_t *dmark, uint32_t *bmark, uint32_t seed, int mod, int rem)
{
    for (int i = 0; i < HWORDS / (int)WORDS; i++)
        if (i % mod == rem) {
            for (int j = 0; j < (int)WORDS; j += 61) {
                hdata[i * WORDS + j] = word(seed, i, j);
                hbss[i * WORDS + j] = word(seed, i, j);
            }
            dmark[i] = bmark[i] = seed;
        }
}

static uint32_t hdm[HWORDS / WORDS], hbm[HWORDS / WORDS];

static void scenario_h(void)
{
    /* the parent touches only every third page before the fork */
    h_write(hdm, hbm, 120, 3, 0);
    pid_t pid = xfork();
    if (pid == 0) {
        int b = h_verify(hdm, hbm);             /* faults in untouched pages */
        h_write(hdm, hbm, 121, 2, 0);
        b += h_verify(hdm, hbm);
        _exit(code(b));
    }
    h_write(hdm, hbm, 122, 5, 1);
    int c = reap(pid);
    int bad = h_verify(hdm, hbm);
    report("h file-backed .data and .bss", bad, c);
}

/* --------------------------------------------------------------------- main */

/* --------------------------------------------------------------- scenario i */

static struct region ri;

static void scenario_i(void)
{
    int p[2];
    pid_t pid;
    int bad, c;

    region_init(&ri, 48 * MB, 0, 256, 90);
    size_t t3 = boundary(&ri, 3);

    /* i1: the child only reads and exits; the parent writes after */
    pid = xfork();
    if (pid == 0)
        _exit(code(verify(&ri)));
    c = reap(pid);
    fill_some(&ri, 91, 2, 0);
    bad = verify(&ri);
    report("i1 large: reader child exits", bad, c);

    /* i2: the child writes a third, unmaps one whole table, exits */
    pid = xfork();
    if (pid == 0) {
        fill_some(&ri, 92, 3, 0);
        munmap(ri.base + t3, TBL);
        mark(&ri, t3, t3 + TBL, GONE);
        _exit(code(verify(&ri)));
    }
    c = reap(pid);
    bad = verify(&ri);
    report("i2 large: child writes and unmaps a table", bad, c);

    /* i3: the child forks a grandchild that writes; each checks its own */
    pid = xfork();
    if (pid == 0) {
        pid_t g = xfork();
        if (g == 0) {
            fill_some(&ri, 93, 4, 1);
            _exit(code(verify(&ri)));
        }
        int gc = reap(g);
        _exit(gc ? 100 : code(verify(&ri)));
    }
    c = reap(pid);
    bad = verify(&ri);
    report("i3 large: grandchild writes", bad, c);

    /* i4: the parent writes everything while the child waits to read */
    xpipe(p);
    pid = xfork();
    if (pid == 0) {
        close(p[1]);
        get_byte(p[0]);
        _exit(code(verify(&ri)));
    }
    close(p[0]);
    fill_some(&ri, 94, 1, 0);
    put_byte(p[1], 1);
    close(p[1]);
    c = reap(pid);
    bad = verify(&ri);
    report("i4 large: parent writes first", bad, c);
    region_free(&ri);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOFBF, 1 << 14);
    printf("cow_ops\n");
    fflush(stdout);
    scenario_a();
    scenario_b();
    scenario_c();
    scenario_d();
    scenario_e(argc > 1 ? argv[1] : NULL);
    scenario_f();
    scenario_g();
    scenario_h();
    scenario_i();
    if (failures)
        printf("FAILED: %d checks\n", failures);
    else
        printf("all ok\n");
    return failures ? 1 : 0;
}
