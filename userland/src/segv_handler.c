/* segv_handler.c - recoverable faults: a SA_SIGINFO SIGSEGV handler checks
 * si_addr (and si_code MAPERR vs ACCERR) and siglongjmps back out; done
 * twice, so the signal mask must be restored by siglongjmp each time. */
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <setjmp.h>
#include <unistd.h>
#include <sys/mman.h>

static sigjmp_buf env;
static void *volatile expected;
static volatile sig_atomic_t code, faults;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    faults++;
    code = si->si_code;
    if (sig == SIGSEGV && si->si_addr == expected)
        write(1, "fault addr ok\n", 14);
    else
        write(1, "fault addr BAD\n", 15);
    siglongjmp(env, 1);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);

    /* 1. unmapped low address -> SEGV_MAPERR */
    expected = (void *)24;
    printf("fault 1: write to unmapped address\n");
    fflush(stdout);
    if (sigsetjmp(env, 1) == 0) {
        *(volatile int *)expected = 1;
        printf("no fault?!\n");
    }
    printf("recovered 1: si_code %s\n", code == SEGV_MAPERR ? "SEGV_MAPERR" : "other");

    /* 2. read-only mapping -> SEGV_ACCERR */
    char *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro == MAP_FAILED) { perror("mmap"); return 1; }
    expected = ro + 4100;
    printf("fault 2: write to read-only page\n");
    fflush(stdout);
    if (sigsetjmp(env, 1) == 0) {
        *(volatile char *)expected = 1;
        printf("no fault?!\n");
    }
    printf("recovered 2: si_code %s\n", code == SEGV_ACCERR ? "SEGV_ACCERR" : "other");

    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("SIGSEGV blocked after siglongjmp: %s\n", sigismember(&cur, SIGSEGV) ? "yes" : "no");
    printf("faults handled: %d\n", (int)faults);
    return 0;
}
