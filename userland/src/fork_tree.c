/* fork_tree.c - copy-on-write isolation across a tree of 15 processes: each
 * process forks 2 children down to depth 3 (heap numbering: root 1, children
 * of n are 2n and 2n+1). Every process stamps its id into a 1 MiB static
 * buffer, a 1 MiB malloc'd buffer (mmap path) and a 16 KiB malloc'd buffer
 * (brk path), and checks that it sees exactly its ancestors' stamps (inherited)
 * and never a sibling's or descendant's. Exit status = number of processes
 * in the subtree whose checks passed; only the root prints. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#define MAXDEPTH 3
#define NBUF 3
static unsigned char gbuf[1 << 20];
static unsigned char *bufs[NBUF];
static const size_t sizes[NBUF] = { 1 << 20, 1 << 20, 16 << 10 };

static int is_ancestor(int a, int id) /* a is a proper ancestor of id */
{
    for (id >>= 1; id; id >>= 1)
        if (id == a)
            return 1;
    return 0;
}

/* slot s (1..15) lives at offset s*stride; byte 1 of every page (and of every
 * stride in the small buffer) holds the id of the last process to scribble */
static int check(int id, int self_written, int scribble)
{
    int ok = 1;
    for (int b = 0; b < NBUF; b++) {
        size_t stride = sizes[b] / 16;
        for (int s = 1; s < 16; s++) {
            int want = is_ancestor(s, id) || (self_written && s == id) ? s : 0;
            ok &= bufs[b][s * stride] == want;
        }
        size_t step = stride < 4096 ? stride : 4096;
        for (size_t off = 1; off < sizes[b]; off += step)
            ok &= bufs[b][off] == scribble;
    }
    return ok;
}

static void stamp(int id)
{
    for (int b = 0; b < NBUF; b++) {
        size_t stride = sizes[b] / 16;
        size_t step = stride < 4096 ? stride : 4096;
        bufs[b][id * stride] = id;
        for (size_t off = 1; off < sizes[b]; off += step)
            bufs[b][off] = id;
    }
}

/* runs process `id`; returns the number of ok processes in its subtree */
static int run(int id, int depth, int *kid_counts)
{
    int ok = check(id, 0, id >> 1);   /* sees parent's scribble, ancestors' stamps */
    stamp(id);
    ok &= check(id, 1, id);
    int total = 0;
    if (depth < MAXDEPTH) {
        pid_t pids[2];
        for (int c = 0; c < 2; c++) {
            pids[c] = fork();
            if (pids[c] < 0) { perror("fork"); exit(255); }
            if (pids[c] == 0)
                _exit(run(2 * id + c, depth + 1, NULL));
        }
        for (int c = 0; c < 2; c++) {
            int st = 0;
            if (waitpid(pids[c], &st, 0) != pids[c] || !WIFEXITED(st))
                st = 0;
            total += WEXITSTATUS(st);
            if (kid_counts)
                kid_counts[c] = WEXITSTATUS(st);
        }
        ok &= check(id, 1, id);        /* children's writes stayed private */
    }
    if (kid_counts)
        kid_counts[2] = ok;
    return total + ok;
}

int main(void)
{
    bufs[0] = gbuf;
    bufs[1] = calloc(1, sizes[1]);
    bufs[2] = calloc(1, sizes[2]);
    if (!bufs[1] || !bufs[2]) { perror("calloc"); return 1; }
    fflush(stdout);
    int kids[3] = {0, 0, 0};
    int total = run(1, 0, kids);
    printf("root checks: %s\n", kids[2] ? "ok" : "FAILED");
    printf("subtree of 2: %d/7 ok\n", kids[0]);
    printf("subtree of 3: %d/7 ok\n", kids[1]);
    printf("total: %d/15 processes ok\n", total);
    return total == 15 ? 0 : 1;
}
