/* gdb_target.c - the program tests/test_gdb.py debugs through the GDB stub
 * (python3 -m minios run --gdb HOST:PORT). Built with -O0 -g (per-target rule
 * in the Makefile) so lines, locals and globals are what the source says.
 *
 *   gdb_target            compute, print "total=N", exit 7
 *   gdb_target segv       write to address 16 in crash() -> SIGSEGV (139)
 *   gdb_target fork       fork; the child sets counter to 5, prints and exits
 *                         5; the parent waits, adds 1 to counter (42 -> 43),
 *                         prints and exits 6
 *
 * The line markers (LINE_*) are looked up by the tests with grep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int counter;                    /* a global the tests watch */
long total = 100;               /* a global the tests print */

static int add(int a, int b)
{
    int sum = a + b;            /* LINE_ADD_BODY */
    return sum;
}

static void crash(void)
{
    volatile int *volatile p = (volatile int *)16;
    *p = 1;                     /* LINE_CRASH */
}

static int in_child(void)
{
    int v = add(2, 3);          /* LINE_CHILD */
    counter = v;                /* LINE_CHILD_WATCH */
    printf("child v=%d counter=%d\n", v, counter);
    return v;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "plain";
    int local = 40;             /* LINE_MAIN_FIRST */
    local = add(local, 2);      /* LINE_CALL_ADD */
    counter = local;            /* LINE_WATCH_HIT */
    total += counter;           /* LINE_AFTER_WATCH */
    if (strcmp(mode, "segv") == 0)
        crash();
    if (strcmp(mode, "fork") == 0) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            return in_child();
        int status = 0;
        waitpid(pid, &status, 0);
        counter += 1;           /* LINE_PARENT_WATCH */
        printf("parent: child exited %d, counter=%d\n", WEXITSTATUS(status), counter);
        return 6;
    }
    printf("total=%ld\n", total);
    return 7;
}
