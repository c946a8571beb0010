/* wait_status.c - wait status encoding: normal exits (0, 1, 255), deaths by
 * SIGKILL, SIGTERM and SIGSEGV, WNOHANG on a still-running child, getppid()
 * in the child, and ECHILD once everything has been reaped. */
#include <stdio.h>
#include <signal.h>
#include <errno.h>
#include <unistd.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include "errname.h"

static void describe(const char *what, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: other status\n", what);
}

static pid_t child(int action)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    switch (action) {
    case 0: _exit(0);
    case 1: _exit(1);
    case 2: _exit(255);
    case 3: kill(getpid(), SIGKILL); break;
    case 4: kill(getpid(), SIGTERM); break;
    case 5: {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);   /* no core file natively */
        volatile int *volatile bad = NULL;
        *bad = 1;
        break;
    }
    }
    _exit(100);   /* not reached */
}

int main(void)
{
    static const char *names[] = { "exit(0)", "exit(1)", "exit(255)",
                                   "SIGKILL", "SIGTERM", "SIGSEGV" };
    pid_t pids[6];
    for (int i = 0; i < 6; i++)
        pids[i] = child(i);
    for (int i = 0; i < 6; i++) {
        int st = 0;
        pid_t w = waitpid(pids[i], &st, 0);
        if (w != pids[i])
            printf("%s: waitpid returned wrong pid\n", names[i]);
        describe(names[i], st);
    }

    /* WNOHANG while the child is blocked reading a pipe */
    int p[2];
    pipe(p);
    pid_t parent = getpid();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        int ok = getppid() == parent;
        if (read(p[0], &c, 1) != 1)
            _exit(2);
        _exit(ok ? 0 : 1);
    }
    close(p[0]);
    int st = 0;
    pid_t w = waitpid(pid, &st, WNOHANG);
    printf("WNOHANG on running child: %d\n", (int)w);
    write(p[1], "g", 1);
    close(p[1]);
    w = waitpid(-1, &st, 0);
    printf("waitpid(-1) got that child: %s\n", w == pid ? "yes" : "no");
    printf(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ppid ok\n" : "ppid BAD\n");

    errno = 0;
    w = waitpid(-1, &st, 0);
    printf("waitpid with no children: %d %s\n", (int)w, errname(errno));
    errno = 0;
    w = waitpid(-1, &st, WNOHANG);
    printf("WNOHANG with no children: %d %s\n", (int)w, errname(errno));
    return 0;
}
