/* mmap_file.c - mmap of a regular file (this program's own executable):
 * private and shared read-only mappings, an offset, copy-on-write that
 * never reaches the file, two mappings of one file, and a forked child
 * reading the mapping. Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "errname.h"

int main(void)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    struct stat s;
    fstat(fd, &s);
    size_t n = s.st_size;
    char *copy = malloc(n);
    if (pread(fd, copy, n, 0) != (ssize_t)n)
        return 1;
    unsigned char *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("private map: %s\n", p == MAP_FAILED ? errname(errno) : "ok");
    printf("matches the file: %d\n", memcmp(p, copy, n) == 0);
    printf("elf magic: %.3s\n", p + 1);
    unsigned char *o = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 4096);
    printf("shared map at offset 4096: %s, matches: %d\n",
           o == MAP_FAILED ? errname(errno) : "ok", memcmp(o, copy + 4096, 8192) == 0);
    printf("bad offset: %s\n", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 100)
           == MAP_FAILED ? errname(errno) : "mapped");

    unsigned char *w = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *r = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    memcpy(w, "WRITTEN", 7);
    char head[8] = {0};
    pread(fd, head, 7, 0);
    printf("private write: map %.7s, other map %.3s, file %.3s\n", w, r + 1, head + 1);

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        printf("child sees: %.7s and %.3s\n", w, r + 1);
        fflush(stdout);
        _exit(memcmp(r, copy, n) == 0 ? 0 : 1);
    }
    int st;
    waitpid(c, &st, 0);
    printf("child status: %d\n", WEXITSTATUS(st));
    /* Past the page holding the end of the file: SIGBUS, not zeros. */
    size_t span = ((n + 4095) & ~4095UL) + 2 * 4096;
    unsigned char *b = mmap(NULL, span, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("last byte: %d, zero after it in its page: %d\n", b[n - 1] == copy[n - 1],
           (n & 4095) == 0 || b[n] == 0);
    fflush(stdout);
    if ((c = fork()) == 0) {
        volatile unsigned char x = b[span - 1];
        (void)x;
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("touch past EOF: %s\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS ? "SIGBUS" : "no signal");
    printf("munmap: %d %d %d %d %d\n", munmap(p, n), munmap(o, 8192), munmap(w, n), munmap(r, n),
           munmap(b, span));
    return 0;
}
