/* segv.c - a write to an unmapped low address must kill the process with
 * SIGSEGV (a shell reports exit status 139). */
#include <stdio.h>

int main(void)
{
    volatile int *volatile p = (volatile int *)16;
    printf("about to fault\n");
    fflush(stdout);
    *p = 1;
    printf("still alive?!\n");
    return 0;
}
