/* meminfo_fork.c - /proc/meminfo is readable and has the fields a memory
 * demo needs (values are machine dependent, so only presence is printed);
 * a forked child must see the same set of fields. */
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>

static const char *fields[] = { "MemTotal", "MemFree", "AnonPages", "Mapped", "PageTables" };
#define NF (int)(sizeof fields / sizeof fields[0])

/* returns a bitmask of the fields present, or -1 if unreadable */
static int scan(void)
{
    static char text[65536];
    int fd = open("/proc/meminfo", O_RDONLY);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof text - 1 && (n = read(fd, text + len, sizeof text - 1 - len)) > 0)
        len += n;
    close(fd);
    text[len] = 0;
    int mask = 0;
    for (int i = 0; i < NF; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s:", fields[i]);
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (strncmp(line, key, strlen(key)) == 0)
                mask |= 1 << i;
    }
    return mask;
}

int main(void)
{
    int mask = scan();
    if (mask < 0) {
        printf("/proc/meminfo unreadable\n");
        return 1;
    }
    for (int i = 0; i < NF; i++)
        printf("%s %s\n", fields[i], mask & (1 << i) ? "present" : "missing");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(scan() == mask ? 0 : 1);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child sees same fields: %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");
    return 0;
}
