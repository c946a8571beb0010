/* shared_vs_private.c - MAP_SHARED|MAP_ANONYMOUS memory stays shared across
 * fork (both directions), MAP_PRIVATE|MAP_ANONYMOUS memory becomes a private
 * copy-on-write copy. A pipe sequences parent and child. */
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define LEN (3 * 4096)

int main(void)
{
    int *sh = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int *pv = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || pv == MAP_FAILED) { perror("mmap"); return 1; }
    const int last = LEN / sizeof(int) - 1;
    sh[0] = 1; sh[last] = 1;
    pv[0] = 1; pv[last] = 1;

    int go[2];
    pipe(go);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = sh[0] == 1 && pv[0] == 1 && sh[last] == 1 && pv[last] == 1;
        sh[0] = 2; sh[last] = 2;
        pv[0] = 2; pv[last] = 2;
        char c;
        close(go[1]);
        read(go[0], &c, 1);          /* wait for the parent's write */
        ok &= sh[1] == 3;            /* parent's shared write visible */
        ok &= pv[1] == 0;            /* parent's private write is not */
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    sh[1] = 3;
    pv[1] = 3;
    write(go[1], "x", 1);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child checks: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAILED");
    printf("shared sees child write: %s (%d, %d)\n",
           sh[0] == 2 && sh[last] == 2 ? "yes" : "no", sh[0], sh[last]);
    printf("private sees child write: %s (%d, %d)\n",
           pv[0] == 2 || pv[last] == 2 ? "yes" : "no", pv[0], pv[last]);

    /* a shared page first touched after fork by the child only */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        sh[1024] = 77;   /* second page, never touched by the parent */
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("untouched shared page written by child: %d\n", sh[1024]);
    munmap(sh, LEN);
    munmap(pv, LEN);
    return 0;
}
