/* segv_ro.c - reading a PROT_READ mapping works, writing it must kill the
 * process with SIGSEGV (shell status 139). */
#include <stdio.h>
#include <sys/mman.h>

int main(void)
{
    volatile unsigned char *p = mmap(NULL, 4096, PROT_READ,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("read-only byte = %d\n", p[100]);
    printf("about to write read-only page\n");
    fflush(stdout);
    p[100] = 1;
    printf("still alive?!\n");
    return 0;
}
