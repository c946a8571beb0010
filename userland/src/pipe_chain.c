/* pipe_chain.c - a 3-stage pipeline (producer | uppercase | counter) built
 * with pipe/fork/dup2, EOF propagation when every write end is closed,
 * EPIPE with SIGPIPE ignored, and death by SIGPIPE with the default action. */
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <sys/wait.h>
#include "errname.h"

/* run fn in a child with stdin=in (if >= 0) and stdout=out */
static pid_t spawn(int in, int out, void (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        if (in >= 0)
            dup2(in, 0);
        dup2(out, 1);
        /* close every inherited pipe fd so EOF can propagate */
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        fn();
        _exit(0);
    }
    return pid;
}

static void producer(void)
{
    for (int i = 1; i <= 50; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %d of the quick brown fox\n", i);
        write(1, line, n);
    }
}

static void upper(void)
{
    char buf[100];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = toupper((unsigned char)buf[i]);
        write(1, buf, n);
    }
}

static void counter(void)
{
    char buf[256], last[64] = "";
    long bytes = 0, lines = 0, upper_ok = 1, pos = 0;
    unsigned long h = 5381;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++, bytes++) {
            h = h * 33 + (unsigned char)buf[i];
            upper_ok &= !islower((unsigned char)buf[i]);
            if (buf[i] == '\n') { lines++; last[pos] = 0; pos = 0; }
            else if (pos < 63) last[pos++] = buf[i];
        }
    char out[200];
    int len = snprintf(out, sizeof out, "bytes=%ld lines=%ld hash=%lu all-upper=%ld last=\"%s\"\n",
                       bytes, lines, h, upper_ok, last);
    write(1, out, len);
}

int main(void)
{
    int p1[2], p2[2], p3[2];
    pipe(p1); pipe(p2); pipe(p3);
    fflush(stdout);
    pid_t a = spawn(-1, p1[1], producer);
    pid_t b = spawn(p1[0], p2[1], upper);
    pid_t c = spawn(p2[0], p3[1], counter);
    close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]); close(p3[1]);
    char res[256] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof res - 1 && (n = read(p3[0], res + got, sizeof res - 1 - got)) > 0)
        got += n;
    printf("pipeline result: %s", res);
    printf("EOF on result pipe: %s\n", read(p3[0], res, 1) == 0 ? "yes" : "no");
    close(p3[0]);
    pid_t kids[3] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        printf("stage %d exit %d\n", i, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }

    /* EPIPE with SIGPIPE ignored */
    int q[2];
    pipe(q);
    close(q[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    long r = write(q[1], "x", 1);
    printf("write to closed pipe (SIGPIPE ignored): %ld %s\n", r, errname(errno));

    /* default SIGPIPE kills the writer */
    fflush(stdout);
    pid_t w = fork();
    if (w == 0) {
        signal(SIGPIPE, SIG_DFL);   /* SIG_IGN is inherited; restore default */
        write(q[1], "x", 1);
        _exit(0);
    }
    close(q[1]);
    int st;
    waitpid(w, &st, 0);
    printf("writer WIFSIGNALED=%d WTERMSIG=%d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}
