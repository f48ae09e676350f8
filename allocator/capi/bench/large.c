/* Big-buffer replacement (scripts/bench_suite.sh row "big buffers").
 *
 * The shape of mimalloc-bench's malloc-large: 20 live buffers of 5 to 25 MiB
 * (uniform); each replacement picks a random buffer, allocates a new
 * zero-initialised one of a random size (calloc here; malloc-large's
 * std::make_unique<char[]> zeroes with memset) and then frees the old one, so
 * up to 21 are live at once. The program then uses the new buffer: it checks
 * and writes one byte in every 4 KiB page, so that every allocator pays for
 * the pages it hands out (as the memset of the original does), and an
 * allocator that reuses committed memory saves the page faults.
 *
 * The buffers start empty (replacing an empty one only allocates). Fixed
 * work; "seconds=" is the wall time of all replacements and of freeing the
 * last buffers.
 *
 * usage: large [replacements] [buffers] [min_mib] [max_mib]
 *        (defaults 2000 20 5 25) */
#include "bench.h"

#define PAGE 4096

int main(int argc, char **argv) {
    const char *usage = "large [replacements] [buffers] [min_mib] [max_mib]";
    long replacements = argc > 1 ? bench_arg(argv[1], usage) : 2000;
    size_t buffers = argc > 2 ? (size_t)bench_arg(argv[2], usage) : 20;
    size_t min = (argc > 3 ? (size_t)bench_arg(argv[3], usage) : 5) << 20;
    size_t max = (argc > 4 ? (size_t)bench_arg(argv[4], usage) : 25) << 20;
    if (min > max) {
        fprintf(stderr, "large: min > max\n");
        return 2;
    }
    bench_print_malloc();
    unsigned char **buf = calloc(buffers, sizeof *buf);
    if (!buf) abort();
    uint64_t r = 42;
    unsigned sum = 0;

    double t0 = bench_now();
    for (long i = 0; i < replacements; i++) {
        size_t k = (size_t)(splitmix64(&r) % buffers);
        size_t n = min + (size_t)(splitmix64(&r) % (max - min + 1));
        unsigned char *p = calloc(n, 1);
        if (!p) abort();
        for (size_t off = 0; off < n; off += PAGE) {
            sum += p[off];
            p[off] = (unsigned char)i;
        }
        sum += p[n - 1];
        p[n - 1] = (unsigned char)i;
        free(buf[k]);
        buf[k] = p;
    }
    for (size_t k = 0; k < buffers; k++) free(buf[k]);
    double seconds = bench_now() - t0;

    free(buf);
    if (sum != 0) {
        fprintf(stderr, "large: calloc returned non-zero memory\n");
        return 1;
    }
    printf("replacements=%ld buffers=%zu sizes=%zu..%zu MiB\n", replacements, buffers, min >> 20,
           max >> 20);
    bench_print_seconds(seconds);
    return 0;
}
