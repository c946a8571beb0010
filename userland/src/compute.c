/* compute.c - CPU-bound integer loop (LCG + xorshift/multiply mixing) over
 * N iterations (argv[1], default 20000000); prints the final hash only. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000000L;
    uint64_t x = 0x9E3779B97F4A7C15ULL, h = 0;
    uint32_t acc32 = 1;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t z = x ^ (x >> 29);
        z *= 0xBF58476D1CE4E5B9ULL;
        z ^= z >> 32;
        h = (h << 5 | h >> 59) ^ z;
        acc32 = acc32 * 31u + (uint32_t)(z >> 7) / ((uint32_t)i | 1u);
    }
    printf("iterations %ld\n", n);
    printf("hash %016llx\n", (unsigned long long)h);
    printf("acc32 %08x\n", acc32);
    return 0;
}
