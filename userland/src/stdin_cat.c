/* stdin_cat.c - copies stdin to stdout with raw read/write (handles short
 * writes); prints the byte count to stderr. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    long total = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            perror("read");
            return 1;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, n - off);
            if (w <= 0) {
                perror("write");
                return 1;
            }
            off += w;
        }
        total += n;
    }
    fprintf(stderr, "bytes %ld\n", total);
    return 0;
}
