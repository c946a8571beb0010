/* threads_mutex.c - pthreads (clone with CLONE_VM|CLONE_THREAD|..., futex,
 * TLS): 4 threads each add 1 to a shared counter 100000 times under a mutex;
 * join returns each thread's value; thread ids are distinct and nonzero. */
#include <stdio.h>
#include <stdint.h>
#include <pthread.h>

#define NT 4
#define ITERS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static pthread_t self_ids[NT];
static __thread int tls_value = 5;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    self_ids[id] = pthread_self();
    tls_value += id;   /* each thread has its own copy */
    for (int i = 0; i < ITERS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return (void *)(intptr_t)(id * 10 + tls_value);
}

int main(void)
{
    pthread_t th[NT];
    for (int i = 0; i < NT; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < NT; i++) {
        void *ret;
        int r = pthread_join(th[i], &ret);
        printf("join %d: %d, returned %ld\n", i, r, (long)(intptr_t)ret);
    }
    printf("counter = %ld (expected %d)\n", counter, NT * ITERS);
    int distinct = 1;
    pthread_t me = pthread_self();
    for (int i = 0; i < NT; i++) {
        distinct &= self_ids[i] != 0 && !pthread_equal(self_ids[i], me);
        for (int j = 0; j < i; j++)
            distinct &= !pthread_equal(self_ids[i], self_ids[j]);
    }
    printf("pthread_self nonzero: %s\n", me != 0 ? "yes" : "no");
    printf("thread ids distinct: %s\n", distinct ? "yes" : "no");
    printf("main tls_value still %d\n", tls_value);
    return counter == NT * ITERS ? 0 : 1;
}
