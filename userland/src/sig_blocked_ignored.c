/* sig_blocked_ignored.c - an ignored signal that is blocked stays pending
 * (Linux's sig_ignored(): "blocked signals are never ignored"), and one that
 * is not blocked is dropped at once. Also a token passed round a ring of
 * processes over pipes: every hop blocks one process and wakes the next. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

static int pending(int sig)
{
    sigset_t s;
    sigpending(&s);
    return sigismember(&s, sig);
}

static void ring(int n, int laps)
{
    int p[8][2];
    for (int i = 0; i < n; i++)
        if (pipe(p[i]))
            exit(2);
    for (int i = 1; i < n; i++) {
        if (fork() == 0) {
            unsigned char c;
            for (int l = 0; l < laps; l++) {
                if (read(p[i][0], &c, 1) != 1)
                    _exit(3);
                c += i;
                if (write(p[(i + 1) % n][1], &c, 1) != 1)
                    _exit(4);
            }
            _exit(0);
        }
    }
    unsigned char c = 0;
    for (int l = 0; l < laps; l++) {
        if (write(p[1][1], &c, 1) != 1 || read(p[0][0], &c, 1) != 1)
            exit(5);
    }
    int st, ok = 0;
    while (wait(&st) > 0)
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("ring of %d, %d laps: token %d, %d children ok\n", n, laps, c, ok);
}

int main(void)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGWINCH);

    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("SIG_IGN, unblocked: pending %d\n", pending(SIGUSR1));
    raise(SIGWINCH);
    printf("default-ignored, unblocked: pending %d\n", pending(SIGWINCH));

    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    printf("SIG_IGN, blocked: pending %d\n", pending(SIGUSR1));
    raise(SIGWINCH);
    printf("default-ignored, blocked: pending %d\n", pending(SIGWINCH));
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    int st;
    waitpid(c, &st, 0);
    printf("child exit %d, SIGCHLD blocked: pending %d\n", WEXITSTATUS(st), pending(SIGCHLD));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("after unblock: pending %d %d %d\n", pending(SIGUSR1), pending(SIGWINCH), pending(SIGCHLD));

    ring(3, 200);
    ring(8, 50);
    return 0;
}
