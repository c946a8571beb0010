/* escape.c - sandbox-escape attempts against minios --root/--rw, for
 * tests/test_escape.py.
 *
 *   escape RW OUTSIDE
 *
 * RW is a writable directory as the guest sees it ("-": none), OUTSIDE the
 * host path of a directory outside the guest's root, which holds
 * secret.txt ("SECRET...") and a file named OUTSIDE_MARKER. Every attempt
 * prints "what: result"; whatever it reads is printed too, so the test can
 * check that nothing from OUTSIDE ever shows, and it compares the host's
 * OUTSIDE tree before and after for changes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

static char B[8192];

static void res(const char *what, long r)
{
    if (r < 0)
        printf("%s: errno %d (%s)\n", what, errno, strerror(errno));
    else
        printf("%s: %ld\n", what, r);
}

/* Read what a path or fd gives and print it (so leaks show). */
static void show_fd(const char *what, int fd)
{
    if (fd < 0) { res(what, fd); return; }
    ssize_t n = read(fd, B, sizeof B - 1);
    if (n < 0) { res(what, n); close(fd); return; }
    B[n] = 0;
    for (ssize_t i = 0; i < n; i++) if (B[i] == '\n') B[i] = ' ';
    printf("%s: read \"%s\"\n", what, B);
    close(fd);
}

static void show(const char *what, const char *path)
{
    errno = 0;
    show_fd(what, open(path, O_RDONLY));
}

static void list_fd(const char *what, int dfd)
{
    if (dfd < 0) { res(what, dfd); return; }
    char buf[8192];
    long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
    if (n < 0) { res(what, n); return; }
    printf("%s:", what);
    for (long off = 0; off < n; ) {
        struct { unsigned long ino; long off; unsigned short len; unsigned char type;
                 char name[]; } *d = (void *)(buf + off);
        printf(" %s", d->name);
        off += d->len;
    }
    printf("\n");
}

static void list(const char *what, const char *path)
{
    errno = 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    list_fd(what, fd);
    if (fd >= 0) close(fd);
}

static char P[4096], Q[4096];
static const char *at(char *b, const char *a, const char *c)
{
    snprintf(b, 4096, "%s/%s", a, c);
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: escape RW OUTSIDE\n"); return 2; }
    const char *rw = argv[1], *out = argv[2];
    char outsecret[4096];
    snprintf(outsecret, sizeof outsecret, "%s/secret.txt", out);
    setvbuf(stdout, NULL, _IONBF, 0);

    /* Plain names: the host path means nothing inside the root. */
    show("plain outside path", outsecret);
    list("plain outside dir", out);
    char up[4096] = "";
    for (int i = 0; i < 40; i++) strcat(up, "../");
    strcat(up, outsecret + 1);
    show("dotdot from cwd", up);
    chdir("/");
    res("chdir .. at /", chdir(".."));
    show("dotdot after chdir", outsecret);
    snprintf(P, sizeof P, "/proc/self/root/../../..%s", outsecret);
    show("proc root dotdot", P);
    snprintf(P, sizeof P, "/proc/1/root%s", outsecret);
    show("proc 1 root", P);
    list("dev pts", "/dev/pts");
    res("mknod char device", mknod("/tmp/null2", S_IFCHR | 0666, makedev(1, 3)));

    if (strcmp(rw, "-") == 0) {
        res("mkdir on read-only root", mkdir("/escape_dir", 0755));
        res("symlink on read-only root", symlink(out, "/escape_link"));
        return 0;
    }

    /* Symlinks a guest makes are resolved inside the guest's tree. */
    res("symlink abs", symlink(outsecret, at(P, rw, "abs")));
    show("open abs link", at(P, rw, "abs"));
    snprintf(Q, sizeof Q, "%s%s", "../../../../../../../../../..", outsecret);
    res("symlink rel", symlink(Q, at(P, rw, "rel")));
    show("open rel link", at(P, rw, "rel"));
    res("symlink dir", symlink(out, at(P, rw, "dirlink")));
    list("list dir link", at(P, rw, "dirlink"));
    snprintf(Q, sizeof Q, "%s/dirlink/secret.txt", rw);
    show("open through dir link", Q);
    res("write through abs link", open(at(P, rw, "abs"), O_WRONLY | O_CREAT, 0644));
    res("link to read-only file", link("/etc/passwd", at(P, rw, "hl")));
    res("rename out of rw", rename(at(P, rw, "abs"), "/escaped"));

    /* The reported escape: hold descriptors into rw/d, move d away, put a
     * symlink to OUTSIDE at its name, then use the old descriptors. */
    const char *d = at(Q, rw, "d");
    char dpath[4096], moved[4096], f[4096];
    snprintf(dpath, sizeof dpath, "%s", d);
    snprintf(moved, sizeof moved, "%s/moved", rw);
    snprintf(f, sizeof f, "%s/secret.txt", dpath);
    res("mkdir d", mkdir(dpath, 0755));
    int w = open(f, O_WRONLY | O_CREAT, 0600);
    res("create d/secret.txt", w);
    write(w, "INSIDE", 6);
    close(w);
    int fd = open(f, O_RDONLY);
    int opath = open(f, O_PATH);
    int dfd = open(dpath, O_RDONLY | O_DIRECTORY);
    int dpfd = open(dpath, O_PATH | O_DIRECTORY);
    res("chdir d", chdir(dpath));
    res("rename d away", rename(dpath, moved));
    res("symlink d to outside", symlink(out, dpath));

    snprintf(P, sizeof P, "/proc/self/fd/%d", fd);
    show("reopen fd via proc", P);
    snprintf(P, sizeof P, "/proc/self/fd/%d", opath);
    show("reopen O_PATH via proc", P);
    res("fchmod old fd", fchmod(fd, 0777));
    res("chmod via proc fd", chmod(P, 0777));
    res("truncate via proc fd", truncate(P, 0));
    res("utimes via proc fd", utimes(P, NULL));
    list_fd("getdents old dir fd", dfd);
    show_fd("openat old dir fd", openat(dfd, "secret.txt", O_RDONLY));
    show_fd("openat old O_PATH dir", openat(dpfd, "secret.txt", O_RDONLY));
    res("mkdirat old dir fd", mkdirat(dfd, "made_by_guest", 0755));
    res("symlinkat old dir fd", symlinkat("x", dfd, "link_by_guest"));
    res("unlinkat outside marker", unlinkat(dfd, "OUTSIDE_MARKER", 0));
    res("fchmodat old dir fd", fchmodat(dfd, "secret.txt", 0777, 0));
    res("renameat old dir fd", renameat(dfd, "secret.txt", dfd, "renamed.txt"));
    show("open relative to cwd", "renamed.txt");
    list("list cwd", ".");
    snprintf(P, sizeof P, "/proc/self/fd/%d/renamed.txt", dfd);
    show("proc fd dir path", P);
    list("proc cwd", "/proc/self/cwd");
    show("open through swapped name", f);
    res("fchdir old dir", fchdir(dfd));
    show("open after fchdir", "renamed.txt");
    res("create after fchdir", open("created.txt", O_WRONLY | O_CREAT, 0644));
    list("list moved", moved);
    return 0;
}
