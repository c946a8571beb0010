/* malloc_churn.c - heap allocator stress: many small blocks (brk path),
 * large blocks >= 256 KiB (mmap path), realloc growth; every block is filled
 * with a seeded pattern and verified by checksum before it is freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static uint32_t rng = 12345;
static uint32_t next(void) { rng = rng * 1103515245u + 12345u; return rng >> 8; }

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 131 + (i >> 8));
}

static int verify(const unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 131 + (i >> 8)))
            return 0;
    return 1;
}

static uint64_t sum(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

#define NSMALL 2000
static unsigned char *sp[NSMALL];
static size_t ssz[NSMALL];

int main(void)
{
    uint64_t total = 0;
    int bad = 0;

    /* small: allocate, free a random half, re-allocate, verify all */
    for (int i = 0; i < NSMALL; i++) {
        ssz[i] = 1 + next() % 2048;
        sp[i] = malloc(ssz[i]);
        fill(sp[i], ssz[i], i);
    }
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < NSMALL; i++) {
            if (next() % 2 == 0)
                continue;
            bad += !verify(sp[i], ssz[i], i);
            free(sp[i]);
            ssz[i] = 1 + next() % 2048;
            sp[i] = malloc(ssz[i]);
            fill(sp[i], ssz[i], i);
        }
    for (int i = 0; i < NSMALL; i++) {
        bad += !verify(sp[i], ssz[i], i);
        total += sum(sp[i], ssz[i]);
        free(sp[i]);
    }
    printf("small blocks %d checksum %016llx\n", NSMALL, (unsigned long long)total);

    /* large: 256 KiB .. 4 MiB, above every libc's mmap threshold */
    uint64_t ltotal = 0;
    for (int i = 0; i < 12; i++) {
        size_t n = (256u << 10) + (next() % 16) * (240u << 10);
        unsigned char *p = malloc(n);
        if (!p) { printf("large malloc failed\n"); return 1; }
        fill(p, n, 1000 + i);
        uint64_t s = sum(p, n);
        unsigned char *q = malloc(n);
        fill(q, n, 1000 + i);
        if (memcmp(p, q, n) != 0 || sum(q, n) != s)
            bad++;
        ltotal += s;
        free(q);
        free(p);
    }
    printf("large blocks 12 checksum %016llx\n", (unsigned long long)ltotal);

    /* realloc growth from 16 bytes to 8 MiB, contents must survive moves */
    size_t n = 16;
    unsigned char *r = malloc(n);
    fill(r, n, 77);
    int steps = 0;
    while (n < (8u << 20)) {
        size_t nn = n * 2 + 8;
        unsigned char *r2 = realloc(r, nn);
        if (!r2) { printf("realloc failed\n"); return 1; }
        bad += !verify(r2, n, 77);
        r = r2;
        fill(r, nn, 77);
        n = nn;
        steps++;
    }
    printf("realloc steps %d final size %zu checksum %016llx\n", steps, n,
           (unsigned long long)sum(r, n));
    r = realloc(r, 100);   /* shrink */
    bad += !verify(r, 100, 77);
    printf("shrunk checksum %016llx\n", (unsigned long long)sum(r, 100));
    free(r);

    void *z = calloc(1000, 1000);
    size_t nz = 0;
    for (size_t i = 0; i < 1000000; i++)
        nz += ((unsigned char *)z)[i] != 0;
    free(z);
    printf("calloc nonzero bytes %zu\n", nz);
    printf("mismatches %d\n", bad);
    return bad != 0;
}
