/* epoll_ops.c - epoll and eventfd on pipes, as event loops (Go's runtime,
 * libuv) use them: errors, level- and edge-triggered reports, one-shot
 * re-arming, hang-up, a blocking wait woken by another process, and an
 * entry that goes away with its file. Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "errname.h"

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, r);
}

static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return epoll_ctl(ep, op, fd, &ev);
}

/* One epoll_wait; prints how many, and each (events, data). */
static void wait_show(const char *what, int ep, int timeout)
{
    struct epoll_event evs[4];
    int n = epoll_wait(ep, evs, 4, timeout);
    show(what, n);
    for (int i = 0; i < n; i++)
        printf("  events %x data %llu\n", evs[i].events, (unsigned long long)evs[i].data.u64);
}

int main(void)
{
    int p[2], q[2];
    char buf[16];
    pipe(p);
    pipe(q);
    show("epoll_create1 bad flags", epoll_create1(1));
    show("epoll_create size 0", epoll_create(0));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("cloexec: %d\n", (fcntl(ep, F_GETFD) & FD_CLOEXEC) != 0);

    int file = open("/proc/self/exe", O_RDONLY);
    show("add regular file", ctl(ep, EPOLL_CTL_ADD, file, EPOLLIN, 0));
    show("add to a non-epoll fd", ctl(p[0], EPOLL_CTL_ADD, q[0], EPOLLIN, 0));
    show("add epoll to itself", ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 0));
    show("add bad fd", ctl(ep, EPOLL_CTL_ADD, 999, EPOLLIN, 0));
    show("mod missing", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN, 0));
    show("del missing", ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0));
    show("bad op", ctl(ep, 9, p[0], EPOLLIN, 0));
    show("add pipe", ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 11));
    show("add again", ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 11));
    show("maxevents 0", epoll_wait(ep, (struct epoll_event[1]){0}, 0, 0));
    wait_show("nothing ready", ep, 0);

    /* Level-triggered: reported while data is there. */
    write(p[1], "ab", 2);
    wait_show("level 1", ep, 0);
    wait_show("level 2", ep, 0);
    read(p[0], buf, 2);
    wait_show("level drained", ep, 0);

    /* Edge-triggered: once per arrival into an empty pipe. */
    show("mod to edge", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 12));
    write(p[1], "c", 1);
    wait_show("edge 1", ep, 0);
    wait_show("edge 2", ep, 0);
    read(p[0], buf, 1);
    write(p[1], "d", 1);
    wait_show("edge after drain", ep, 0);
    read(p[0], buf, 1);

    /* One-shot: silent after one report until re-armed. */
    show("mod to oneshot", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 13));
    write(p[1], "e", 1);
    wait_show("oneshot 1", ep, 0);
    wait_show("oneshot 2", ep, 0);
    show("re-arm", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 14));
    wait_show("oneshot re-armed", ep, 0);
    read(p[0], buf, 1);

    /* Write end: writable; hang-up when the reader goes. */
    show("add write end", ctl(ep, EPOLL_CTL_ADD, q[1], EPOLLOUT, 21));
    show("del pipe", ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0));
    wait_show("writable", ep, 0);
    close(q[0]);
    wait_show("reader gone", ep, 0);
    show("del write end", ctl(ep, EPOLL_CTL_DEL, q[1], 0, 0));

    /* eventfd: counter semantics, non-blocking read of zero, semaphore. */
    int efd = eventfd(3, EFD_NONBLOCK);
    uint64_t v = 0;
    show("eventfd read", read(efd, &v, 8));
    printf("  value %llu\n", (unsigned long long)v);
    show("eventfd read empty", read(efd, &v, 8));
    show("eventfd short read", read(efd, &v, 4));
    v = 5;
    show("eventfd write", write(efd, &v, 8));
    v = UINT64_MAX;
    show("eventfd write max", write(efd, &v, 8));
    show("add eventfd", ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN | EPOLLOUT, 31));
    wait_show("eventfd ready", ep, 0);
    int sem = eventfd(2, EFD_SEMAPHORE);
    read(sem, &v, 8);
    printf("semaphore read: %llu\n", (unsigned long long)v);
    show("bad eventfd flags", eventfd(0, 0x10));
    show("del eventfd", ctl(ep, EPOLL_CTL_DEL, efd, 0, 0));

    /* A blocking eventfd read, woken by a child's write. */
    int bfd = eventfd(0, 0);
    fflush(stdout);
    if (fork() == 0) {
        usleep(50000);
        v = 7;
        write(bfd, &v, 8);
        _exit(0);
    }
    v = 0;
    show("blocking eventfd read", read(bfd, &v, 8));
    printf("  value %llu\n", (unsigned long long)v);
    wait(NULL);

    /* A blocking wait, woken by a child writing later. */
    int r[2];
    pipe(r);
    ctl(ep, EPOLL_CTL_ADD, r[0], EPOLLIN, 41);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        write(r[1], "z", 1);
        _exit(0);
    }
    wait_show("blocking wait", ep, 5000);
    waitpid(c, NULL, 0);

    /* A duplicate keeps the file, and its entry, alive; closing the last
     * descriptor of it removes the entry. */
    int d = dup(r[0]);
    close(r[0]);
    write(r[1], "y", 1);
    wait_show("closed, duplicate open", ep, 0);
    close(d);
    signal(SIGPIPE, SIG_IGN);
    show("write, no reader", write(r[1], "x", 1));
    wait_show("after last close", ep, 0);
    return 0;
}
