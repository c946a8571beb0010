/* Passing descriptors over socketpairs (SCM_RIGHTS): to a forked child,
 * several at once into too little room (MSG_CTRUNC), dropped by a plain
 * recv or by closing the receiver (the pipe then sees end of file), a
 * stream read stopping after the send that carried them, datagrams,
 * MSG_CMSG_CLOEXEC, and the errors of bad control data. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

static int send_fds(int s, const char *data, size_t len, const int *fds, int n)
{
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec io = {(void *)data, len};
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    if (n) {
        memset(ctl, 0, sizeof ctl);
        m.msg_control = ctl;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    return sendmsg(s, &m, 0);
}

/* Receive into buf; up to room descriptors into fds; returns the count,
 * *nfds the descriptors received, *flags msg_flags. */
static long recv_fds(int s, char *buf, size_t len, int *fds, int room, int *nfds, int *flags,
                     int rflags)
{
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec io = {buf, len};
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = room ? CMSG_LEN(sizeof(int) * room) : 0;
    long r = recvmsg(s, &m, rflags);
    *nfds = 0;
    *flags = m.msg_flags;
    if (r >= 0 && m.msg_controllen)
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                memcpy(fds + *nfds, CMSG_DATA(c), sizeof(int) * n);
                *nfds += n;
            }
    return r;
}

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, r);
}

int main(void)
{
    int sv[2], p[2], fds[8], n, fl;
    char buf[64];

    /* a pipe's write end to a forked child, which writes through it */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        long r = recv_fds(sv[1], buf, sizeof buf, fds, 1, &n, &fl, 0);
        if (r != 4 || n != 1)
            _exit(1);
        write(fds[0], "hello via a passed fd", 21);
        _exit(0);
    }
    close(sv[1]);
    show("send the pipe's write end", send_fds(sv[0], "take", 4, &p[1], 1));
    close(p[1]);
    int st;
    waitpid(pid, &st, 0);
    ssize_t r = read(p[0], buf, sizeof buf);
    printf("child exit %d, pipe says: %.*s\n", WEXITSTATUS(st), (int)(r > 0 ? r : 0), buf);
    printf("then end of file: %zd\n", read(p[0], buf, sizeof buf));
    close(p[0]);
    close(sv[0]);

    /* three at once into room for two: MSG_CTRUNC, the third closed */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int q[3][2];
    for (int i = 0; i < 3; i++)
        pipe(q[i]);
    int ends[3] = {q[0][1], q[1][1], q[2][1]};
    show("send three", send_fds(sv[0], "3", 1, ends, 3));
    for (int i = 0; i < 3; i++)
        close(q[i][1]);
    show("recvmsg with room for two", recv_fds(sv[1], buf, sizeof buf, fds, 2, &n, &fl, 0));
    printf("  received %d, MSG_CTRUNC %d\n", n, !!(fl & MSG_CTRUNC));
    printf("  third pipe at end of file: %zd\n", read(q[2][0], buf, sizeof buf));
    for (int i = 0; i < n; i++)
        close(fds[i]);
    printf("  first pipe at end of file once its end is closed: %zd\n",
           read(q[0][0], buf, sizeof buf));

    /* a plain recv drops them */
    pipe(p);
    send_fds(sv[0], "x", 1, &p[1], 1);
    close(p[1]);
    show("plain recv of a message with an fd", recv(sv[1], buf, sizeof buf, 0));
    printf("  the pipe at end of file: %zd\n", read(p[0], buf, sizeof buf));
    close(p[0]);

    /* a stream read stops after the send that carried descriptors */
    pipe(p);
    write(sv[0], "AAAA", 4);
    send_fds(sv[0], "BBBB", 4, &p[0], 1);
    write(sv[0], "CCCC", 4);
    r = recv_fds(sv[1], buf, sizeof buf, fds, 1, &n, &fl, MSG_CMSG_CLOEXEC);
    printf("stream recvmsg: %zd \"%.*s\", %d fd, cloexec %d\n", r, (int)r, buf, n,
           n ? fcntl(fds[0], F_GETFD) & FD_CLOEXEC : -1);
    if (n)
        close(fds[0]);
    r = recv(sv[1], buf, sizeof buf, 0);
    printf("then: %zd \"%.*s\"\n", r, (int)r, buf);
    close(p[0]);
    close(p[1]);

    /* in flight when the receiver closes: released */
    pipe(p);
    send_fds(sv[0], "y", 1, &p[1], 1);
    close(p[1]);
    close(sv[1]);
    printf("receiver closed with an fd in flight, pipe at end of file: %zd\n",
           read(p[0], buf, sizeof buf));
    close(p[0]);
    close(sv[0]);

    /* datagrams carry theirs */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    pipe(p);
    send_fds(sv[0], "d1", 2, &p[1], 1);
    send(sv[0], "d2", 2, 0);
    r = recv_fds(sv[1], buf, sizeof buf, fds, 4, &n, &fl, 0);
    printf("dgram: %zd with %d fd; ", r, n);
    r = recv_fds(sv[1], buf, sizeof buf, fds + 1, 4, &n, &fl, 0);
    printf("%zd with %d fd\n", r, n);

    /* bad control data */
    int bad = 999;
    show("SCM_RIGHTS with a bad fd", send_fds(sv[0], "z", 1, &bad, 1));
    struct msghdr m = {0};
    struct iovec io = {"z", 1};
    char ctl[64] = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = 8;
    show("control shorter than a header", sendmsg(sv[0], &m, 0));
    struct cmsghdr *c = (struct cmsghdr *)ctl;
    c->cmsg_len = CMSG_LEN(0);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    m.msg_controllen = CMSG_SPACE(0);
    show("SCM_RIGHTS with no fd", sendmsg(sv[0], &m, 0));
    c->cmsg_type = 77;
    show("unknown SOL_SOCKET message", sendmsg(sv[0], &m, 0));
    return 0;
}
