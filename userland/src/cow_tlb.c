/* cow_tlb.c - no stale translation survives a copy-on-write break.
 *
 * Each side reads its pages first, so the CPU caches read-only translations
 * of the shared frames, and only then writes them: by a plain store (a COW
 * fault the CPU retries), by a read-modify-write, or through the kernel
 * (read() from a pipe into the page). Every later read must see the new
 * bytes in the writer, also when the kernel reads them (write() from the
 * page), and never in the other process, which checks its own view
 * afterwards. Both the child and the parent write while the other
 * still shares the pages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPAGES 48
#define PG 4096

static unsigned char *m;

static unsigned long checksum(void)
{
    unsigned long s = 0;
    for (size_t i = 0; i < NPAGES * PG; i += 61)
        s = s * 31 + ((volatile unsigned char *)m)[i];
    return s;
}

/* Read every page, then change each one in one of three ways; check each
 * change is visible at once. Returns the number of bad reads. */
static int scribble(int salt, int pipefd[2])
{
    int bad = 0;
    checksum();                                  /* cache read translations */
    for (int i = 0; i < NPAGES; i++) {
        volatile unsigned char *q = m + (size_t)i * PG;
        unsigned char old = q[100];
        switch (i % 3) {
        case 0: {
            /* The kernel reads the page before and after the store (write()
             * to a pipe from it): its own cached translation must go too. */
            unsigned char b;
            if (write(pipefd[1], (void *)(q + 100), 1) != 1 || read(pipefd[0], &b, 1) != 1)
                return -1;
            q[100] = (unsigned char)(old + salt);
            bad += q[100] != (unsigned char)(old + salt);
            if (write(pipefd[1], (void *)(q + 100), 1) != 1 || read(pipefd[0], &b, 1) != 1)
                return -1;
            bad += b != (unsigned char)(old + salt);
            break;
        }
        case 1:
            q[100] += (unsigned char)salt;       /* read-modify-write */
            bad += q[100] != (unsigned char)(old + salt);
            break;
        default: {
            unsigned char buf[3] = { (unsigned char)salt, 1, 2 };
            if (write(pipefd[1], buf, 3) != 3 || read(pipefd[0], (void *)(q + 100), 3) != 3)
                return -1;
            bad += q[100] != (unsigned char)salt || q[101] != 1 || q[102] != 2;
        }
        }
    }
    return bad;
}

int main(void)
{
    m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < NPAGES * PG; i++)
        m[i] = (unsigned char)(i * 7 + (i >> 12));
    unsigned long orig = checksum();
    int data[2], go[2];
    if (pipe(data) || pipe(go))
        return 1;

    for (int round = 1; round <= 3; round++) {
        /* The child writes while the parent shares the pages. */
        pid_t pid = fork();
        if (pid == 0) {
            int bad = scribble(round, data);
            printf("round %d child: bad %d changed %d\n", round, bad, checksum() != orig);
            fflush(stdout);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        printf("round %d parent after child: unchanged %d\n", round, checksum() == orig);
        fflush(stdout);              /* before the next fork, or the child repeats it */

        /* The parent writes while a child shares them; the child then
         * checks that its view is the old one. */
        char c;
        pid = fork();
        if (pid == 0) {
            checksum();
            if (read(go[0], &c, 1) != 1)
                _exit(2);
            printf("round %d child after parent: unchanged %d\n", round, checksum() == orig);
            fflush(stdout);
            _exit(0);
        }
        unsigned long mine = checksum();
        int bad = scribble(round + 10, data);
        printf("round %d parent: bad %d changed %d\n", round, bad, checksum() != mine);
        fflush(stdout);
        if (write(go[1], "g", 1) != 1)
            return 1;
        waitpid(pid, &st, 0);
        orig = checksum();           /* the parent's pages are the new originals */
    }
    return 0;
}
