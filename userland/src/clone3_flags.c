/* clone3_flags.c - raw clone3 (syscall 435): a fork-like child with
 * exit_signal=SIGCHLD, CLONE_PARENT_SETTID / CLONE_CHILD_SETTID, and the
 * kernel's argument validation (size, EFAULT, flag/signal/stack checks). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <signal.h>
#include <errno.h>
#include <unistd.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "errname.h"

#ifndef CLONE_PARENT_SETTID
#define CLONE_PARENT_SETTID 0x00100000
#endif

struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* big, zeroed, so oversized `size` values still point at readable memory */
static union { struct clone_args a; char pad[8192]; } buf;

static long clone3(void *args, size_t size)
{
    long r = syscall(435, args, size);
    if (r == 0)                      /* a child that should not exist */
        syscall(SYS_exit_group, 99);
    return r;
}

static void expect_fail(const char *what, uint64_t flags, uint64_t sig,
                        uint64_t stack, void *args, size_t size)
{
    memset(&buf, 0, sizeof buf);
    buf.a.flags = flags;
    buf.a.exit_signal = sig;
    buf.a.stack = stack;
    errno = 0;
    long r = clone3(args ? args : &buf, size);
    int e = errno;
    if (r > 0)
        waitpid(r, NULL, 0);
    printf("%-40s -> %ld %s\n", what, r, r == -1 ? errname(e) : "(child created!)");
}

int main(void)
{
    /* plain fork-like clone3 */
    memset(&buf, 0, sizeof buf);
    buf.a.exit_signal = SIGCHLD;
    fflush(stdout);
    long pid = syscall(435, &buf.a, sizeof(struct clone_args));
    if (pid == 0) {
        write(1, "child: hello from clone3\n", 25);
        _exit(3);
    }
    int st = 0;
    long w = waitpid(pid, &st, 0);
    printf("clone3 fork: pid>0 %s, waitpid match %s, exit %d\n", pid > 0 ? "yes" : "no",
           w == pid ? "yes" : "no", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* CLONE_PARENT_SETTID (in parent memory) + CLONE_CHILD_SETTID (in child) */
    static volatile int ptid, ctid;
    memset(&buf, 0, sizeof buf);
    buf.a.flags = CLONE_PARENT_SETTID | CLONE_CHILD_SETTID;
    buf.a.exit_signal = SIGCHLD;
    buf.a.parent_tid = (uintptr_t)&ptid;
    buf.a.child_tid = (uintptr_t)&ctid;
    fflush(stdout);
    pid = syscall(435, &buf.a, sizeof(struct clone_args));
    if (pid == 0)
        _exit(ctid == syscall(SYS_getpid) ? 0 : 1);
    waitpid(pid, &st, 0);
    printf("CLONE_PARENT_SETTID: parent_tid == pid %s\n", ptid == pid ? "yes" : "no");
    printf("CLONE_CHILD_SETTID: child saw its tid %s\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");
    printf("child_tid untouched in parent %s\n", ctid == 0 ? "yes" : "no");

    /* validation */
    const size_t SZ = sizeof(struct clone_args);
    expect_fail("size 63", 0, SIGCHLD, 0, NULL, 63);
    expect_fail("size 4097", 0, SIGCHLD, 0, NULL, 4097);
    expect_fail("args pointer 8", 0, SIGCHLD, 0, (void *)8, SZ);
    expect_fail("flag bit 40", 1ULL << 40, SIGCHLD, 0, NULL, SZ);
    expect_fail("exit_signal 65", 0, 65, 0, NULL, SZ);
    expect_fail("CLONE_THREAD without CLONE_SIGHAND", CLONE_THREAD | CLONE_VM, 0, 0, NULL, SZ);
    expect_fail("CLONE_SIGHAND without CLONE_VM", CLONE_SIGHAND, SIGCHLD, 0, NULL, SZ);
    expect_fail("stack without stack_size", 0, SIGCHLD, 0x10000, NULL, SZ);
    expect_fail("THREAD|SIGHAND|VM with exit_signal", CLONE_THREAD | CLONE_SIGHAND | CLONE_VM,
                SIGCHLD, 0, NULL, SZ);
    errno = 0;
    w = waitpid(-1, &st, WNOHANG);
    printf("no stray children: %s\n", w == -1 && errno == ECHILD ? "yes" : "no");
    return 0;
}
