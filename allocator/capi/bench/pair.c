/* The cost of one malloc+free pair through whatever malloc is preloaded: the
 * fixed per-call overhead (PLT call, thread-local heap lookup, fast path),
 * measured for docs/design.md's TLS note. scripts/bench_preload.sh runs it.
 *
 * usage: pair [size] [iterations]
 * Prints "malloc=<library serving malloc>" and "ns_per_pair=<x>". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CPU time of this thread, not wall time: on a shared machine the loop is
 * descheduled now and then, and that is not the allocator's cost. */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : 32;
    long iters = argc > 2 ? atol(argv[2]) : 50000000;
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    printf("malloc=%s\n", m && dladdr(m, &info) ? info.dli_fname : "?");
    for (long i = 0; i < 100000; i++) free(malloc(size)); /* warm up */
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        void *p = malloc(size);
        /* Keep the pair from being optimised away (also built -fno-builtin). */
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
    double t = now() - t0;
    printf("ns_per_pair=%.2f\n", t * 1e9 / (double)iters);
    return 0;
}
