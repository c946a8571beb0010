/* page_touch.c - demand paging: mmap N anonymous pages (argv[1], default
 * 20000), write one byte per page, read them back and print the sum. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000L;
    size_t len = (size_t)n * 4096;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (long i = 0; i < n; i++)
        p[i * 4096 + (i % 4096)] = (unsigned char)(i * 7 + 1);
    unsigned long sum = 0, zeros = 0;
    for (long i = 0; i < n; i++) {
        sum += p[i * 4096 + (i % 4096)];
        zeros += p[i * 4096 + ((i + 1) % 4096)] == 0;
    }
    printf("pages %ld\n", n);
    printf("sum %lu\n", sum);
    printf("untouched bytes zero %s\n", zeros == (unsigned long)n ? "yes" : "no");
    if (munmap(p, len) != 0) {
        perror("munmap");
        return 1;
    }
    printf("munmap ok\n");
    return 0;
}
