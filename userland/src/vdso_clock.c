/* The vDSO and the clocks: libc's clock_gettime (through the vDSO when
 * there is one) and the raw system call must read one clock, in order;
 * the vDSO must be a mapped ELF image named in auxv and in
 * /proc/self/maps; and a forked child must read on from its parent. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long sys_ns(clockid_t c)
{
    struct timespec t;
    if (syscall(SYS_clock_gettime, c, &t) != 0)
        return -1;
    return ns(t);
}

static long long libc_ns(clockid_t c)
{
    struct timespec t;
    if (clock_gettime(c, &t) != 0)
        return -1;
    return ns(t);
}

int main(void)
{
    const unsigned char *eh = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    printf("AT_SYSINFO_EHDR: %s\n", eh ? "present" : "absent");
    if (eh) {
        const Elf64_Ehdr *h = (const Elf64_Ehdr *)eh;
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(eh + h->e_phoff);
        int load = 0, dyn = 0;
        for (int i = 0; i < h->e_phnum; i++) {
            load += ph[i].p_type == PT_LOAD;
            dyn += ph[i].p_type == PT_DYNAMIC;
        }
        printf("vdso: ELF %s, x86-64 %s, PT_LOAD %s, PT_DYNAMIC %d\n",
               memcmp(eh, ELFMAG, SELFMAG) ? "no" : "yes",
               h->e_machine == EM_X86_64 ? "yes" : "no", load ? "yes" : "no", dyn);
        char line[512], want[32];
        snprintf(want, sizeof want, "%lx-", (unsigned long)eh);
        FILE *f = fopen("/proc/self/maps", "r");
        int named = 0;
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, want, strlen(want)) && strstr(line, "[vdso]")
                && strstr(line, "r-xp"))
                named = 1;
        if (f)
            fclose(f);
        printf("maps: [vdso] r-xp at AT_SYSINFO_EHDR: %s\n", named ? "yes" : "no");
    }

    static const struct { clockid_t id; const char *name; } clocks[] = {
        {CLOCK_REALTIME, "REALTIME"}, {CLOCK_MONOTONIC, "MONOTONIC"},
        {CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"}, {CLOCK_BOOTTIME, "BOOTTIME"},
        {CLOCK_TAI, "TAI"}, {CLOCK_PROCESS_CPUTIME_ID, "PROCESS_CPUTIME_ID"},
    };
    for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        int ordered = 1;
        for (int k = 0; k < 200; k++) {
            long long a = libc_ns(clocks[i].id), s = sys_ns(clocks[i].id);
            long long b = libc_ns(clocks[i].id);
            if (a < 0 || s < 0 || b < 0 || a > s || s > b)
                ordered = 0;
        }
        printf("%s: libc <= syscall <= libc: %s\n", clocks[i].name, ordered ? "yes" : "no");
    }

    long long prev = libc_ns(CLOCK_MONOTONIC), back = 0;
    for (int k = 0; k < 20000; k++) {
        long long now = libc_ns(CLOCK_MONOTONIC);
        back += now < prev;
        prev = now;
    }
    printf("MONOTONIC went back: %lld times\n", back);

    struct timeval tv;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int r = gettimeofday(&tv, NULL);
    /* Linux's time() reads the last tick's second: it may lag gettimeofday
     * by one across a second boundary. */
    time_t t = time(NULL);
    long long d = (tv.tv_sec * 1000000LL + tv.tv_usec) - ns(ts) / 1000;
    printf("gettimeofday: %d, usec in range %s, after clock_gettime %s, time() agrees %s\n", r,
           tv.tv_usec >= 0 && tv.tv_usec < 1000000 ? "yes" : "no",
           d >= 0 && d < 1000000 ? "yes" : "no",
           t - tv.tv_sec >= -1 && t - tv.tv_sec <= 1 ? "yes" : "no");

    errno = 0;
    r = clock_gettime(99, &ts);
    printf("clock 99: %d %s\n", r, strerror(errno));
    /* clockid_t is an int: the kernel ignores the register's upper half */
    printf("clock 0x100000001 (raw syscalls): %ld %ld %ld\n",
           syscall(SYS_clock_gettime, 0x100000001L, &ts),
           syscall(SYS_clock_getres, 0x100000001L, &ts),
           syscall(SYS_clock_nanosleep, 0x100000001L, 0, &(struct timespec){0, 1000}, NULL));
    clock_getres(CLOCK_MONOTONIC, &ts);
    printf("MONOTONIC resolution: %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);

    long long before = libc_ns(CLOCK_MONOTONIC);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        long long c = libc_ns(CLOCK_MONOTONIC);
        printf("child reads on from the parent: %s\n", c >= before ? "yes" : "no");
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent after wait: %s\n", libc_ns(CLOCK_MONOTONIC) >= before ? "yes" : "no");
    return 0;
}
