/* Fixed-size loops (scripts/bench_suite.sh row "fixed-size loops").
 *
 * The shape of glibc's benchtests/bench-malloc-simple ("glibc-simple" in
 * mimalloc-bench): one thread, a loop that allocates N blocks of 16 bytes,
 * writes every byte of each, then frees them in allocation order; repeated.
 * N takes the values 25, 100, 400 and 1600 in turn (glibc's block counts),
 * each for a quarter of the blocks, so that both a few hot blocks and a
 * working set beyond one slab are covered.
 *
 * Fixed work ("blocks" allocations in all); "seconds=" is its wall time.
 *
 * usage: simple [blocks] [size]   (defaults 40000000 16) */
#include "bench.h"

static const size_t counts[] = {25, 100, 400, 1600};

int main(int argc, char **argv) {
    const char *usage = "simple [blocks] [size]";
    long blocks = argc > 1 ? bench_arg(argv[1], usage) : 40000000;
    size_t size = argc > 2 ? (size_t)bench_arg(argv[2], usage) : 16;
    bench_print_malloc();
    unsigned char *a[1600];
    unsigned check = 0;

    double t0 = bench_now();
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        size_t n = counts[c];
        long loops = blocks / 4 / (long)n;
        for (long l = 0; l < loops; l++) {
            for (size_t j = 0; j < n; j++) {
                unsigned char *p = bench_malloc(size);
                for (size_t b = 0; b < size; b++) p[b] = (unsigned char)(j + b);
                a[j] = p;
            }
            check += a[l % n][size - 1];
            for (size_t j = 0; j < n; j++) free(a[j]);
        }
    }
    double seconds = bench_now() - t0;

    printf("blocks=%ld size=%zu check=%u\n", blocks, size, check);
    bench_print_seconds(seconds);
    return 0;
}
