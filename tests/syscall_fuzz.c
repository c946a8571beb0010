/* syscall_fuzz.c - random system calls with random arguments, for minios
 * only (tests/test_badinput.py): the emulator must never fail with an
 * internal error, whatever a guest asks. NEVER run it natively: as root,
 * random calls can change the host (its clock, its name, its mounts).
 *
 *   syscall_fuzz SEED COUNT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <signal.h>
static unsigned long long s;
static unsigned long long rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static long arg(void) {
    switch (rnd() % 8) {
    case 0: return 0;
    case 1: return rnd() % 16;
    case 2: return -(long)(rnd() % 16);
    case 3: return (long)rnd();
    case 4: return 0x7fffffffe000 - (rnd() % 4096);     /* near the stack */
    case 5: return 0x400000 + (rnd() % 0x100000);        /* text/data */
    case 6: return (long)(rnd() % 0x10000);
    default: return 0xffffffffffffffffL;
    }
}
int main(int argc, char **argv) {
    s = argc > 1 ? strtoull(argv[1], 0, 0) : 1;
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    for (int sig = 1; sig < 32; sig++) signal(sig, SIG_IGN);
    for (int i = 0; i < n; i++) {
        long nr = rnd() % 460;
        switch (nr) {   /* minios only: end, replace, stop or sleep the process */
        case SYS_exit: case SYS_exit_group: case SYS_execve: case SYS_execveat: case SYS_rt_sigreturn:
        case SYS_fork: case SYS_vfork: case SYS_clone: case SYS_clone3: case SYS_pause:
        case SYS_kill: case SYS_tkill: case SYS_tgkill: case SYS_rt_sigsuspend:
        case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_select: case SYS_pselect6:
        case SYS_poll: case SYS_ppoll: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2:
        case SYS_futex: case SYS_rt_sigtimedwait: case SYS_alarm: case SYS_setitimer:
        case SYS_munmap: case SYS_mremap: case SYS_mprotect: case SYS_arch_prctl: case SYS_rt_sigprocmask:
            continue;
        }
        syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
    }
    printf("survived\n");
    return 0;
}
