/* execveat_check.c - execveat's argument checks and errnos, natively and
 * under minios: an empty path without AT_EMPTY_PATH, unknown flags, a
 * directory with AT_EMPTY_PATH, a final symlink with AT_SYMLINK_NOFOLLOW,
 * then a real execveat of this program through /proc/self/exe. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT"; case EINVAL: return "EINVAL"; case EACCES: return "EACCES";
    case ELOOP: return "ELOOP"; case EFAULT: return "EFAULT"; case ENOTDIR: return "ENOTDIR";
    default: { static char b[16]; snprintf(b, sizeof b, "E%d", e); return b; }
    }
}

static char *child_argv[] = {"execveat_check", "child", NULL};
static char *no_env[] = {NULL};

static void try(const char *what, int dirfd, const char *path, int flags)
{
    errno = 0;
    long r = syscall(SYS_execveat, dirfd, path, child_argv, no_env, flags);
    printf("%s: %ld %s\n", what, r, r < 0 ? ename(errno) : "");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("child ran\n");
        return 0;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    try("empty path, AT_FDCWD", AT_FDCWD, "", 0);
    try("empty path, a directory fd", root, "", 0);
    try("unknown flag", AT_FDCWD, "/proc/self/exe", 0x8000);
    try("AT_EMPTY_PATH on a directory", root, "", AT_EMPTY_PATH);
    try("AT_SYMLINK_NOFOLLOW on a symlink", AT_FDCWD, "/proc/self/exe", AT_SYMLINK_NOFOLLOW);
    try("missing", root, "no/such/file", 0);
    try("the program itself", AT_FDCWD, "/proc/self/exe", 0);
    return 1;
}
