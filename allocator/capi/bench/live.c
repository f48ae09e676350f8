/* Many live objects on one thread (scripts/bench_suite.sh row "many live
 * objects").
 *
 * The shape of the single-threaded random alloc/free tests of public
 * allocator benchmarks (alloc-test in mimalloc-bench): one thread, a large
 * and changing number of live objects of random, mostly small sizes, freed in
 * random order. The program keeps its live objects in a dense array; each
 * operation either allocates one (sizes: 70% 8..64 bytes, 25% 65..256, 5%
 * 257..2048; first and last byte written) or frees a random live one (the
 * last one moves into its place). It alternates a growing phase (70% of
 * operations allocate) until `max_live` objects are live and a shrinking
 * phase (30% allocate) down to max_live / 8, so the live set sweeps from
 * tens of thousands to `max_live` (512k by default, about 60 MiB).
 *
 * Fixed work; "seconds=" is the wall time of all operations and of freeing
 * what is left.
 *
 * usage: live [operations] [max_live]   (defaults 8000000 524288) */
#include "bench.h"

static size_t pick_size(uint64_t *r) {
    uint64_t x = splitmix64(r);
    unsigned class = (unsigned)(x % 100);
    x >>= 8;
    if (class < 70) return 8 + (size_t)(x % 57);
    if (class < 95) return 65 + (size_t)(x % 192);
    return 257 + (size_t)(x % 1792);
}

int main(int argc, char **argv) {
    const char *usage = "live [operations] [max_live]";
    long ops = argc > 1 ? bench_arg(argv[1], usage) : 8000000;
    size_t max_live = argc > 2 ? (size_t)bench_arg(argv[2], usage) : 524288;
    bench_print_malloc();
    unsigned char **live = bench_malloc(sizeof *live * max_live);
    size_t n = 0, peak = 0;
    int growing = 1;
    uint64_t r = 42;

    double t0 = bench_now();
    for (long i = 0; i < ops; i++) {
        uint64_t x = splitmix64(&r);
        if (growing ? n >= max_live : n <= max_live / 8) growing = !growing;
        int alloc = n == 0 || (n < max_live && x % 100 < (growing ? 70u : 30u));
        if (alloc) {
            size_t size = pick_size(&r);
            unsigned char *p = bench_malloc(size);
            p[0] = (unsigned char)i;
            p[size - 1] = (unsigned char)i;
            live[n++] = p;
            if (n > peak) peak = n;
        } else {
            size_t k = (size_t)((x >> 8) % n);
            free(live[k]);
            live[k] = live[--n];
        }
    }
    for (size_t k = 0; k < n; k++) free(live[k]);
    double seconds = bench_now() - t0;

    free(live);
    printf("operations=%ld max_live=%zu peak_live=%zu\n", ops, max_live, peak);
    bench_print_seconds(seconds);
    return 0;
}
