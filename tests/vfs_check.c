/* vfs_check.c - file syscalls and their errnos, for tests/test_vfs.py.
 *
 *   vfs_check rw DIR     operations in a writable directory: the output is
 *                        compared with the same program run natively
 *   vfs_check ro PATH    a file on a read-only tree: EROFS expected
 *   vfs_check wait       poll/ppoll/select/pselect6 on pipes, timeouts, EINTR
 *
 * Each line is "what: result" where result is a value or an errno name.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EINTR: return "EINTR";
    case EBADF: return "EBADF"; case EACCES: return "EACCES"; case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV"; case ENOTDIR: return "ENOTDIR"; case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL"; case ESPIPE: return "ESPIPE"; case EROFS: return "EROFS";
    case ELOOP: return "ELOOP"; case ENOTEMPTY: return "ENOTEMPTY"; case EBUSY: return "EBUSY";
    case ENOEXEC: return "ENOEXEC"; case ENAMETOOLONG: return "ENAMETOOLONG";
    case EAGAIN: return "EAGAIN"; case EFAULT: return "EFAULT"; case ENXIO: return "ENXIO";
    default: { static char b[32]; snprintf(b, sizeof b, "E%d", e); return b; }
    }
}

#define R(what, expr) do { errno = 0; long _r = (long)(expr); \
    if (_r < 0) printf("%s: %s\n", what, ename(errno)); else printf("%s: %ld\n", what, _r); \
    } while (0)

static char P[4096];
static const char *pth(const char *dir, const char *name)
{
    snprintf(P, sizeof P, "%s/%s", dir, name);
    return P;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char **)a, *(char **)b);
}

static void listdir(const char *what, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) { printf("%s: %s\n", what, ename(errno)); return; }
    char *names[64]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("%s:", what);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

static int rw(const char *W)
{
    char a[4096], b[4096], c[4096];
    struct stat s;
    if (chdir(W) != 0) { perror("chdir"); return 1; }
    snprintf(a, sizeof a, "%s/f", W);
    int fd = open("f", O_CREAT | O_EXCL | O_RDWR, 0640);
    R("open creat", fd >= 0 ? 0 : -1);
    R("open excl again", open("f", O_CREAT | O_EXCL | O_RDWR, 0640));
    R("write", write(fd, "hello world\n", 12));
    R("lseek cur", lseek(fd, 0, SEEK_CUR));
    R("lseek end+4", lseek(fd, 4, SEEK_END));
    R("write past end", write(fd, "X", 1));
    R("fstat size", fstat(fd, &s) ? -1 : s.st_size);
    printf("mode: %o\n", s.st_mode & 07777);
    char buf[64] = {0};
    R("pread", pread(fd, buf, 5, 6));
    printf("pread data: %.5s\n", buf);
    R("pwrite", pwrite(fd, "W", 1, 0));
    R("lseek neg", lseek(fd, -100, SEEK_SET));
    R("ftruncate", ftruncate(fd, 3));
    R("pread after truncate", pread(fd, buf, 64, 0));
    printf("data: %.3s\n", buf);
    R("fchmod", fchmod(fd, 0600));
    R("stat mode", stat("f", &s) ? -1 : (long)(s.st_mode & 07777));
    R("close", close(fd));
    R("close again", close(fd));
    R("read bad fd", read(fd, buf, 1));
    fd = open("f", O_RDONLY);
    R("write to O_RDONLY", write(fd, "x", 1));
    R("ftruncate O_RDONLY", ftruncate(fd, 0));
    close(fd);
    fd = open("f", O_WRONLY | O_APPEND);
    R("append", write(fd, "yz", 2));
    R("read from O_WRONLY", read(fd, buf, 1));
    close(fd);
    R("size after append", stat("f", &s) ? -1 : s.st_size);
    R("truncate path", truncate("f", 10));
    R("size after truncate", stat("f", &s) ? -1 : s.st_size);
    R("truncate dir", truncate(".", 0));
    R("open dir for write", open(".", O_WRONLY));
    R("open O_DIRECTORY on file", open("f", O_RDONLY | O_DIRECTORY));
    R("open missing", open("missing", O_RDONLY));
    R("open missing/x", open("missing/x", O_RDONLY));
    R("open f/x", open("f/x", O_RDONLY));
    R("open creat trailing slash", open("new/", O_CREAT | O_WRONLY, 0644));
    R("mkdir", mkdir("d", 0755));
    R("mkdir again", mkdir("d", 0755));
    R("mkdir missing parent", mkdir("no/d", 0755));
    R("mkdir trailing slash", mkdir("d2/", 0700));
    R("rmdir d2", rmdir("d2"));
    R("creat in d", close(creat("d/g", 0644)));
    R("rmdir nonempty", rmdir("d"));
    R("rmdir file", rmdir("f"));
    R("rmdir dot", rmdir("d/."));
    R("unlink dir", unlink("d"));
    R("unlink missing", unlink("missing"));
    R("symlink", symlink("f", "l"));
    R("symlink exists", symlink("f", "l"));
    R("readlink", readlink("l", buf, sizeof buf));
    printf("readlink data: %.1s\n", buf);
    R("readlink file", readlink("f", buf, sizeof buf));
    R("readlink short", readlink("l", buf, 0));
    R("lstat is link", lstat("l", &s) ? -1 : S_ISLNK(s.st_mode));
    R("stat follows", stat("l", &s) ? -1 : s.st_size);
    R("symlink loop", symlink("loop", "loop"));
    R("open loop", open("loop", O_RDONLY));
    R("open nofollow", open("l", O_RDONLY | O_NOFOLLOW));
    R("dangling creat", symlink("target_of_dangling", "dangling"));
    fd = open("dangling", O_CREAT | O_WRONLY, 0644);
    R("creat through dangling", fd >= 0 ? 0 : -1);
    close(fd);
    R("target exists", access("target_of_dangling", F_OK));
    R("link", link("f", "hard"));
    R("nlink", stat("f", &s) ? -1 : s.st_nlink);
    R("link exists", link("f", "hard"));
    R("link dir", link("d", "dlink"));
    R("rename", rename("hard", "d/hard2"));
    R("rename over file", rename("d/hard2", "d/g"));
    R("nlink after", stat("f", &s) ? -1 : s.st_nlink);
    R("rename dir into itself", rename("d", "d/sub"));
    R("rename file over dir", rename("f", "d"));
    R("mkdir e", mkdir("e", 0755));
    R("rename dir over empty dir", rename("e", "d2"));
    R("rename dir over nonempty", rename("d2", "d"));
    R("rename missing", rename("missing", "x"));
    R("renameat2 noreplace", syscall(SYS_renameat2, AT_FDCWD, "l", AT_FDCWD, "f", 1));
    fd = open("f", O_RDONLY);
    R("unlink open file", unlink("f"));
    R("read unlinked", read(fd, buf, 3));
    R("fstat unlinked nlink", fstat(fd, &s) ? -1 : s.st_nlink);
    close(fd);
    R("stat dangling now", stat("l", &s));
    listdir("list", ".");
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    R("openat rel", close(openat(dfd, "g", O_RDONLY)));
    R("fstatat", fstatat(dfd, "g", &s, 0));
    R("mkdirat", mkdirat(dfd, "m", 0700));
    R("unlinkat removedir", unlinkat(dfd, "m", AT_REMOVEDIR));
    R("unlinkat file as dir", unlinkat(dfd, "g", AT_REMOVEDIR));
    R("symlinkat", symlinkat("g", dfd, "gl"));
    R("readlinkat", readlinkat(dfd, "gl", buf, sizeof buf));
    R("faccessat", faccessat(dfd, "gl", R_OK | W_OK, 0));
    R("openat on file fd", openat(open("d/g", O_RDONLY), "x", O_RDONLY));
    struct timespec ts[2] = { { 1000000000, 5 }, { 1200000000, 7 } };
    R("utimensat", utimensat(dfd, "g", ts, 0));
    R("mtime", fstatat(dfd, "g", &s, 0) ? -1 : s.st_mtim.tv_sec);
    R("atime nsec", s.st_atim.tv_nsec);
    struct timespec omit[2] = { { 0, UTIME_OMIT }, { 1300000000, 0 } };
    R("utimensat omit", utimensat(dfd, "g", omit, 0));
    R("atime kept", fstatat(dfd, "g", &s, 0) ? -1 : s.st_atim.tv_sec);
    R("fchdir", fchdir(dfd));
    R("getcwd", getcwd(c, sizeof c) ? (long)strlen(c) - (long)strlen(W) : -1);
    R("chdir ..", chdir(".."));
    R("chdir file", chdir("d/g"));
    R("chdir missing", chdir("nope"));
    R("access X_OK on 0644", access("d/g", X_OK));
    R("access dir X_OK", access("d", X_OK));
    R("access bad mode", access("d", 8));
    fd = open("d/g", O_RDWR | O_TRUNC);
    write(fd, "0123456789", 10);
    int p[2];
    pipe(p);
    off_t off = 2;
    R("sendfile to pipe", sendfile(p[1], fd, &off, 5));
    R("sendfile offset", off);
    R("read pipe", read(p[0], buf, 64));
    printf("sendfile data: %.5s\n", buf);
    R("lseek pipe", lseek(p[0], 0, SEEK_SET));
    R("pread pipe", pread(p[0], buf, 1, 0));
    R("ftruncate pipe", ftruncate(p[1], 0));
    close(fd);
    close(p[0]);
    close(p[1]);
    snprintf(b, sizeof b, "%s/d/script", W);
    fd = open(b, O_CREAT | O_WRONLY, 0755);
    write(fd, "just text\n", 10);
    close(fd);
    char *av[] = { "x", NULL };
    R("execve text", execve(b, av, av + 1));
    R("execve dir", execve(W, av, av + 1));
    R("execve missing", execve(pth(W, "missing"), av, av + 1));
    R("execve not executable", execve(pth(W, "d/g"), av, av + 1));
    R("execve through file", execve(pth(W, "d/g/x"), av, av + 1));
    char longname[300];
    memset(longname, 'n', 299);
    longname[299] = 0;
    R("name too long", open(longname, O_RDONLY));
    R("rmdir cleanup", rmdir("d2"));
    unlink("d/gl"); unlink("d/g"); unlink("d/script"); rmdir("d");
    unlink("l"); unlink("loop"); unlink("dangling"); unlink("target_of_dangling");
    listdir("empty again", ".");
    (void)a; (void)c;
    return 0;
}

static int ro(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    R("open O_WRONLY", open(path, O_WRONLY));
    R("open O_RDWR", open(path, O_RDWR));
    R("open O_TRUNC", open(path, O_RDONLY | O_TRUNC));
    R("open O_RDONLY", open(path, O_RDONLY) >= 0 ? 0 : -1);
    R("creat beside", open(pth(dir, "new"), O_CREAT | O_WRONLY, 0644));
    R("mkdir beside", mkdir(pth(dir, "newdir"), 0755));
    R("unlink", unlink(path));
    R("rename", rename(path, pth(dir, "renamed")));
    R("symlink", symlink("x", pth(dir, "sl")));
    R("chmod", chmod(path, 0777));
    R("truncate", truncate(path, 0));
    R("utimensat", utimensat(AT_FDCWD, path, NULL, 0));
    R("access W_OK", access(path, W_OK));
    R("access R_OK", access(path, R_OK));
    R("access W_OK /dev/null", access("/dev/null", W_OK));
    R("access W_OK /tmp", access("/tmp", W_OK));
    R("rmdir /tmp", rmdir("/tmp"));
    R("rename /tmp", rename("/tmp", "/tmp2"));
    R("write /dev/null", write(open("/dev/null", O_WRONLY), "x", 1));
    R("rename tmp to ro", rename("/tmp", pth(dir, "x")));
    int fd = open("/tmp/xdev", O_CREAT | O_WRONLY, 0644);
    close(fd);
    R("rename across mounts", rename("/tmp/xdev", pth(dir, "x")));
    R("link across mounts", link("/tmp/xdev", pth(dir, "x")));
    R("proc write", open("/proc/self/status", O_WRONLY));
    R("proc creat", open("/proc/newfile", O_CREAT | O_WRONLY, 0644));
    return 0;
}

static volatile int got;
static void on_alarm(int s) { (void)s; got++; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int waits(void)
{
    int p[2];
    pipe(p);
    struct pollfd pf[3] = { { p[0], POLLIN, 0 }, { p[1], POLLOUT, 0 }, { 99, POLLIN, 0 } };
    R("poll ready", poll(pf, 3, -1));
    printf("revents: %x %x %x\n", pf[0].revents, pf[1].revents, pf[2].revents);
    double t0 = now();
    R("poll timeout", poll(pf, 1, 100));
    double dt = now() - t0;
    printf("waited enough: %d\n", dt >= 0.09 && dt < 2);
    pid_t c = fork();
    if (c == 0) {
        usleep(50000);
        write(p[1], "z", 1);
        _exit(0);
    }
    R("poll woken by writer", poll(pf, 1, 5000));
    printf("revents: %x\n", pf[0].revents);
    char ch;
    read(p[0], &ch, 1);
    waitpid(c, NULL, 0);
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(p[0], &r); FD_SET(p[1], &w);
    struct timeval tv = { 0, 100000 };
    R("select write ready", select(p[1] + 1, &r, &w, NULL, &tv));
    printf("isset: %d %d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &w));
    FD_ZERO(&r); FD_SET(p[0], &r);
    tv.tv_sec = 0; tv.tv_usec = 50000;
    R("select timeout", select(p[0] + 1, &r, NULL, NULL, &tv));
    /* A descriptor just closed is certainly not open, whatever the
     * environment that started us left open (a fixed number was not). */
    int bad[2];
    pipe(bad);
    close(bad[0]); close(bad[1]);
    FD_ZERO(&r); FD_SET(bad[1], &r);
    R("select bad fd", select(bad[1] + 1, &r, NULL, NULL, &tv));
    struct timespec ts = { 0, 50000000 };
    FD_ZERO(&r); FD_SET(p[0], &r);
    R("pselect6 timeout", pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL));
    R("ppoll timeout", ppoll(pf, 1, &ts, NULL));
    signal(SIGALRM, on_alarm);
    struct itimerval it = { { 0, 0 }, { 0, 50000 } };
    sigset_t block, empty;
    sigemptyset(&block); sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigemptyset(&empty);
    c = fork();
    if (c == 0) {
        usleep(50000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    signal(SIGUSR1, on_alarm);
    R("ppoll EINTR by unblocked signal", ppoll(pf, 1, NULL, &empty));
    printf("handled: %d\n", got);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("mask restored: %d\n", sigismember(&cur, SIGUSR1));
    waitpid(c, NULL, 0);
    (void)it;
    close(p[1]);
    R("poll hangup", poll(pf, 1, 1000));
    printf("revents: %x\n", pf[0].revents);
    R("read eof", read(p[0], &ch, 1));
    int q[2];
    pipe(q);
    close(q[0]);
    signal(SIGPIPE, SIG_IGN);
    struct pollfd pw = { q[1], POLLOUT, 0 };
    R("poll no reader", poll(&pw, 1, 0));
    printf("revents: %x\n", pw.revents);
    R("write no reader", write(q[1], "x", 1));
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "rw"))
        return rw(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "ro"))
        return ro(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "wait"))
        return waits();
    fprintf(stderr, "usage: vfs_check rw DIR | ro PATH | wait\n");
    return 2;
}
