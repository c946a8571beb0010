/* vfork_exit.c - vfork(): the child shares the parent's memory (Linux
 * CLONE_VM|CLONE_VFORK semantics) and the parent is suspended until the child
 * calls _exit(5); the parent then sees the status and the child's store. */
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

static volatile int shared_flag = 0;

int main(void)
{
    printf("before vfork\n");
    fflush(stdout);
    pid_t pid = vfork();
    if (pid < 0) { perror("vfork"); return 1; }
    if (pid == 0) {
        shared_flag = 99;   /* visible to the parent: same address space */
        _exit(5);
    }
    /* we only resume after the child has exited */
    printf("parent resumed, child store visible: %s (%d)\n",
           shared_flag == 99 ? "yes" : "no", shared_flag);
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    printf("waitpid matched: %s\n", w == pid ? "yes" : "no");
    printf("WIFEXITED=%d WEXITSTATUS=%d\n", WIFEXITED(status), WEXITSTATUS(status));

    /* a second vfork to check the parent survives repeated use */
    pid = vfork();
    if (pid == 0)
        _exit(6);
    waitpid(pid, &status, 0);
    printf("second vfork: WEXITSTATUS=%d\n", WEXITSTATUS(status));
    return 0;
}
