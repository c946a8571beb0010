/* sighandler.c - signal delivery: SA_SIGINFO handler (si_signo, si_pid,
 * si_code for kill()), the handled signal blocked while the handler runs and
 * the mask restored after sigreturn, SA_RESETHAND, and a blocked signal that
 * stays pending until sigprocmask unblocks it. */
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_count, usr2_count, got_signo, got_code,
    pid_ok, blocked_inside;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    sigset_t cur;
    (void)uc;
    usr1_count++;
    got_signo = si->si_signo;
    got_code = si->si_code;
    pid_ok = si->si_pid == getpid() && sig == SIGUSR1;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    blocked_inside = sigismember(&cur, SIGUSR1);
}

static void on_usr2(int sig)
{
    (void)sig;
    usr2_count++;
}

static int is_blocked(int sig)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, sig);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    printf("sigaction SIGUSR1: %d\n", sigaction(SIGUSR1, &sa, NULL));

    kill(getpid(), SIGUSR1);
    printf("usr1 handled %d time(s)\n", (int)usr1_count);
    printf("si_signo=%d si_code=%d (SI_USER=%d) si_pid %s\n", (int)got_signo,
           (int)got_code, SI_USER, pid_ok ? "ok" : "BAD");
    printf("SIGUSR1 blocked inside handler: %s\n", blocked_inside ? "yes" : "no");
    printf("SIGUSR1 blocked after return: %s\n", is_blocked(SIGUSR1) ? "yes" : "no");
    kill(getpid(), SIGUSR1);
    printf("usr1 handled %d time(s)\n", (int)usr1_count);

    /* SA_RESETHAND: runs once, then the disposition is back to SIG_DFL */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    struct sigaction old;
    sigaction(SIGUSR2, NULL, &old);
    printf("SA_RESETHAND: handled %d, reset to default %s\n", (int)usr2_count,
           old.sa_handler == SIG_DFL ? "yes" : "no");

    /* blocked signal stays pending until unblocked */
    usr2_count = 0;
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR2);
    sigpending(&pend);
    printf("while blocked: handled %d, pending %s\n", (int)usr2_count,
           sigismember(&pend, SIGUSR2) ? "yes" : "no");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sigpending(&pend);
    printf("after unblock: handled %d, pending %s\n", (int)usr2_count,
           sigismember(&pend, SIGUSR2) ? "yes" : "no");

    /* ignored signal is discarded */
    signal(SIGUSR2, SIG_IGN);
    kill(getpid(), SIGUSR2);
    printf("ignored SIGUSR2: handled %d, still alive\n", (int)usr2_count);
    return 0;
}
