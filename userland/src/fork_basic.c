/* fork_basic.c - fork(): the child gets a private copy of memory (its write
 * to a global is invisible to the parent) and its exit status (7) reaches
 * the parent through waitpid(). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

static int global = 1;
static char buf[8192] = "parent data";

int main(void)
{
    printf("before fork: global=%d\n", global);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        printf("child: fork returned 0, global=%d buf=%s\n", global, buf);
        global = 42;
        snprintf(buf, sizeof buf, "child data");
        printf("child: set global=%d buf=%s\n", global, buf);
        exit(7);
    }
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    printf("parent: waitpid returned child pid: %s\n", w == pid ? "yes" : "no");
    printf("parent: WIFEXITED=%d WEXITSTATUS=%d\n", WIFEXITED(status), WEXITSTATUS(status));
    printf("parent: global=%d buf=%s (%s)\n", global, buf,
           global == 1 ? "unchanged" : "CHANGED");
    return 0;
}
