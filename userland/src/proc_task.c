/* /proc/PID/task: one directory per thread, named by TID, holding the
 * thread's maps, comm and status; it follows threads coming and going. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] >= '0' && e->d_name[0] <= '9';
    closedir(d);
    return n;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static pthread_barrier_t start, stop;
static pid_t thread_tid;

static void *thread(void *arg)
{
    (void)arg;
    thread_tid = syscall(SYS_gettid);
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&stop);
    return NULL;
}

int main(void)
{
    char path[128];
    pid_t tid = syscall(SYS_gettid);
    printf("threads: %d\n", count_tasks());
    snprintf(path, sizeof path, "/proc/self/task/%d/maps", tid);
    printf("own maps has [stack]: %d\n", file_has(path, "[stack]"));
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", getpid(), tid);
    printf("own status has Name: %d\n", file_has(path, "Name:"));
    snprintf(path, sizeof path, "/proc/self/task/%d/task", tid);
    printf("no task/ below a thread: %d\n", access(path, F_OK) != 0);
    printf("no such thread: %d\n", access("/proc/self/task/999999", F_OK) != 0);

    pthread_t th;
    pthread_barrier_init(&start, NULL, 2);
    pthread_barrier_init(&stop, NULL, 2);
    if (pthread_create(&th, NULL, thread, NULL))
        return 1;
    pthread_barrier_wait(&start);
    printf("threads with one more: %d\n", count_tasks());
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", thread_tid);
    printf("thread's comm is proc_task: %d\n", file_has(path, "proc_task"));
    pthread_barrier_wait(&stop);
    pthread_join(th, NULL);
    printf("threads after join: %d\n", count_tasks());
    return 0;
}
