/* SPEC section 4's mixed tiny workload, one thread, a fixed number of
 * operations: for exact instruction counts under callgrind
 * (scripts/callgrind_ab.sh), where a timed run would count time, not work.
 * Same PRNG (SplitMix64, seed 42) and steps as allocator/capi/bench/mixed.c.
 *
 * usage: fixed [ops] [min_size] [max_size]   (defaults 2000000 16 1024) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WORKING_SET 400

static uint64_t state = 42;

static uint64_t next(void) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 2000000;
    size_t lo = argc > 2 ? (size_t)atol(argv[2]) : 16;
    size_t hi = argc > 3 ? (size_t)atol(argv[3]) : 1024;
    char *slot[WORKING_SET] = {0};
    for (long i = 0; i < ops; i++) {
        int k = next() % WORKING_SET;
        if (slot[k]) {
            free(slot[k]);
            slot[k] = NULL;
        } else {
            size_t n = lo + next() % (hi - lo + 1);
            char *p = malloc(n);
            p[0] = 1;
            p[n - 1] = 2;
            slot[k] = p;
        }
    }
    for (int k = 0; k < WORKING_SET; k++) free(slot[k]);
    printf("ops=%ld\n", ops);
    return 0;
}
