/* exitcode.c - exit status propagation: exits with atoi(argv[1]), default 3. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 3;
    printf("exiting with %d\n", code);
    return code;
}
