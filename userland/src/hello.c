/* hello.c - the smallest test: static binary startup, one write, exit 0. */
#include <stdio.h>

int main(void)
{
    printf("hello, world\n");
    return 0;
}
