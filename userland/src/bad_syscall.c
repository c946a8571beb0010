/* bad_syscall.c - an unknown syscall number must fail with -ENOSYS (38). */
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include "errname.h"

int main(void)
{
    errno = 0;
    long r = syscall(9999);
    int e = errno;
    printf("syscall(9999) = %ld errno %d %s\n", r, e, errname(e));
    errno = 0;
    r = syscall(-1L);
    e = errno;
    printf("syscall(-1) = %ld errno %d %s\n", r, e, errname(e));
    printf("still running\n");
    return 0;
}
