/* socketpair(AF_UNIX): stream, datagram and seqpacket pairs; send/recv
 * and their flags; shutdown and close seen from the other end; poll;
 * getsockopt, names, fstat; the errors of bad arguments. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, r);
}

static void pair(int type, int sv[2])
{
    if (socketpair(AF_UNIX, type, 0, sv)) {
        perror("socketpair");
        exit(1);
    }
}

static short revents(int fd)
{
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, 0);
    return p.revents;
}

int main(void)
{
    int sv[2];
    char buf[256];
    signal(SIGPIPE, SIG_IGN);

    /* stream: both directions, peek, partial reads */
    pair(SOCK_STREAM, sv);
    show("write a", write(sv[0], "hello", 5));
    show("write b", write(sv[1], "world!", 6));
    show("peek b", recv(sv[1], buf, sizeof buf, MSG_PEEK));
    show("read b (3)", read(sv[1], buf, 3));
    printf("  got %.3s\n", buf);
    show("read b (rest)", read(sv[1], buf, sizeof buf));
    show("recv a", recv(sv[0], buf, sizeof buf, 0));
    printf("  got %.6s\n", buf);
    show("recv a, empty, MSG_DONTWAIT", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT));
    printf("poll fresh a: %#x\n", revents(sv[0]));
    write(sv[1], "x", 1);
    printf("poll a with data: %#x\n", revents(sv[0]));
    read(sv[0], buf, 1);

    /* shutdown(SHUT_WR): the other end reads EOF, writing back still works */
    show("shutdown a WR", shutdown(sv[0], SHUT_WR));
    show("read b after a's SHUT_WR", read(sv[1], buf, sizeof buf));
    show("send a after SHUT_WR, MSG_NOSIGNAL", send(sv[0], "z", 1, MSG_NOSIGNAL));
    show("write b", write(sv[1], "back", 4));
    show("read a", read(sv[0], buf, sizeof buf));
    printf("poll b: %#x\n", revents(sv[1]));
    close(sv[1]);
    printf("poll a after b closed: %#x\n", revents(sv[0]));
    show("read a after b closed", read(sv[0], buf, sizeof buf));
    close(sv[0]);

    /* close with data in flight: the reader gets it, then EOF; the writer EPIPE */
    pair(SOCK_STREAM, sv);
    write(sv[0], "last words", 10);
    close(sv[0]);
    show("read b (data left by a)", read(sv[1], buf, sizeof buf));
    show("read b (then EOF)", read(sv[1], buf, sizeof buf));
    show("write b to closed a", write(sv[1], "?", 1));
    close(sv[1]);

    /* across fork: 200000 bytes in pieces, MSG_WAITALL, EOF */
    pair(SOCK_STREAM, sv);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        static char big[200000];
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (char)(i * 7);
        size_t off = 0;
        while (off < sizeof big) {
            ssize_t w = write(sv[1], big + off, 1 + (off * 13) % 30000);
            if (w <= 0)
                _exit(1);
            off += w;
        }
        _exit(0);
    }
    close(sv[1]);
    static char got[200000];
    ssize_t first = recv(sv[0], got, 150000, MSG_WAITALL);
    size_t total = first > 0 ? first : 0;
    ssize_t r;
    while ((r = read(sv[0], got + total, sizeof got - total)) > 0)
        total += r;
    int ok = 1;
    for (size_t i = 0; i < total; i++)
        ok &= got[i] == (char)(i * 7);
    int st;
    waitpid(pid, &st, 0);
    printf("fork: MSG_WAITALL got %zd, total %zu, intact %d, child exit %d\n", first, total,
           ok, WEXITSTATUS(st));
    close(sv[0]);

    /* epoll: a blocked wait woken by the peer's write, then its close */
    pair(SOCK_STREAM, sv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = sv[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        usleep(50000);
        write(sv[1], "ping", 4);
        read(sv[1], buf, sizeof buf);          /* exit only once the parent has seen it */
        _exit(0);
    }
    close(sv[1]);
    struct epoll_event out;
    int nev = epoll_wait(ep, &out, 1, 5000);
    printf("epoll: %d event(s) %#x\n", nev, out.events);
    show("read", read(sv[0], buf, sizeof buf));
    write(sv[0], "ack", 3);
    nev = epoll_wait(ep, &out, 1, 5000);
    printf("epoll after the peer exited: %d event(s) %#x\n", nev, out.events);
    waitpid(pid, &st, 0);
    close(ep);
    close(sv[0]);

    /* datagrams keep their boundaries; a short buffer drops the rest */
    pair(SOCK_DGRAM, sv);
    send(sv[0], "one", 3, 0);
    send(sv[0], "two", 3, 0);
    send(sv[0], "three", 5, 0);
    send(sv[0], "", 0, 0);
    int dq = -1;
    ioctl(sv[1], FIONREAD, &dq);
    printf("FIONREAD dgram (next message) %d\n", dq);
    show("dgram recv (2-byte buffer)", recv(sv[1], buf, 2, 0));
    printf("  got %.2s\n", buf);
    show("dgram recv", recv(sv[1], buf, sizeof buf, 0));
    show("dgram recv MSG_TRUNC (2-byte buffer)", recv(sv[1], buf, 2, MSG_TRUNC));
    show("dgram recv empty message", recv(sv[1], buf, sizeof buf, 0));
    show("dgram recv nothing, MSG_DONTWAIT", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    close(sv[1]);
    show("dgram send to closed peer", send(sv[0], "x", 1, 0));
    close(sv[0]);

    /* seqpacket: boundaries, and EOF when the peer closes */
    pair(SOCK_SEQPACKET, sv);
    send(sv[0], "abc", 3, 0);
    send(sv[0], "defgh", 5, 0);
    close(sv[0]);
    show("seqpacket recv", recv(sv[1], buf, sizeof buf, 0));
    show("seqpacket recv", recv(sv[1], buf, sizeof buf, 0));
    show("seqpacket recv after close", recv(sv[1], buf, sizeof buf, 0));
    close(sv[1]);

    /* nonblocking pair, options, names, fstat, /proc */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return 1;
    show("nonblocking read", read(sv[0], buf, sizeof buf));
    int v = -1;
    socklen_t len = sizeof v;
    show("SO_TYPE", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len));
    printf("  type %d len %u\n", v, len);
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("SO_DOMAIN %d\n", v);
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &len);
    printf("SO_ERROR %d\n", v);
    len = sizeof v;
    show("SO_PEERCRED-like unknown option", getsockopt(sv[0], SOL_SOCKET, 12345, &v, &len));
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len);
    printf("SO_SNDBUF default %d\n", v);
    v = 10000;
    show("setsockopt SO_SNDBUF 10000", setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v));
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len);
    printf("  SO_SNDBUF now %d\n", v);
    v = 1;
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    len = sizeof v;
    getsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, &len);
    printf("  SO_RCVBUF after asking 1: %d\n", v);
    show("setsockopt short optlen", setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, 2));
    struct sockaddr_un sa;
    len = sizeof sa;
    memset(&sa, 0x55, sizeof sa);
    show("getsockname", getsockname(sv[0], (struct sockaddr *)&sa, &len));
    printf("  family %d len %u\n", sa.sun_family, len);
    len = sizeof sa;
    show("getpeername", getpeername(sv[1], (struct sockaddr *)&sa, &len));
    printf("  family %d len %u\n", sa.sun_family, len);
    struct stat s;
    fstat(sv[0], &s);
    printf("fstat: socket %d\n", S_ISSOCK(s.st_mode));
    show("lseek", lseek(sv[0], 0, SEEK_SET));
    printf("F_GETFL %#x\n", fcntl(sv[0], F_GETFL));
    show("fsync", fsync(sv[0]));
    printf("posix_fadvise %d\n", posix_fadvise(sv[0], 0, 0, POSIX_FADV_NORMAL));
    write(sv[1], "12345", 5);
    int inq = -1;
    ioctl(sv[0], FIONREAD, &inq);
    printf("FIONREAD stream %d\n", inq);
    char link[64], path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", sv[0]);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("/proc/self/fd link is socket:[...]: %d\n", !strncmp(link, "socket:[", 8));
    close(sv[0]);
    close(sv[1]);

    /* bad arguments */
    show("AF_INET pair", socketpair(AF_INET, SOCK_STREAM, 0, sv));
    show("family 999", socketpair(999, SOCK_STREAM, 0, sv));
    show("bad type flags", socketpair(AF_UNIX, SOCK_STREAM | 0x40, 0, sv));
    show("SOCK_PACKET type", socketpair(AF_UNIX, 10, 0, sv));
    show("protocol 7", socketpair(AF_UNIX, SOCK_STREAM, 7, sv));
    show("NULL vector", socketpair(AF_UNIX, SOCK_STREAM, 0, NULL));
    int p[2];
    pipe(p);
    show("send on a pipe", send(p[1], "x", 1, 0));
    show("shutdown bad how", shutdown(p[1], 7));
    return 0;
}
