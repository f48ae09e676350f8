/* Stress with thread churn (scripts/bench_suite.sh row "stress with thread
 * churn").
 *
 * The shape of mimalloc's test-stress ("mstress" in mimalloc-bench), written
 * anew: every round starts `threads` fresh threads and joins them, so the
 * threads are torn down and re-created each round. Thread `tid` makes
 * 100 x scale x (tid % 8 + 1) allocations (some threads do more) plus half as
 * many it retains to its end. Object sizes are 1 << (0..4) words, retained
 * ones 1 << (0..6) words; 1% are 100 times larger and 0.1% 1000 times (up to
 * 512 KiB). Objects come from calloc, are checked to be zero, filled with a
 * pattern and checked again when freed. Each step, with 66% chance, a random
 * live object of the thread is freed, and with 25% one is exchanged with a
 * random slot of a shared array of 1000 (atomic exchange), so other threads
 * free it, in this round or a later one. Between rounds the main thread frees
 * half of the shared slots, and all of them at the end.
 *
 * Fixed work; "seconds=" is the wall time of all rounds.
 *
 * usage: mstress [threads] [scale] [rounds]   (defaults 2 50 25) */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>

#define TRANSFERS 1000
#define COOKIE 0xbf58476d1ce4e5b9ull

static long scale;
static _Atomic(uintptr_t *) transfer[TRANSFERS];

static inline int chance(unsigned percent, uint64_t *r) { return splitmix64(r) % 1000 < percent * 10; }

static uintptr_t *alloc_items(size_t items, uint64_t *r) {
    uint64_t x = splitmix64(r) % 1000;
    if (x < 1)
        items *= 1000;
    else if (x < 10)
        items *= 100;
    uintptr_t *p = calloc(items, sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < items; i++) {
        if (p[i] != 0) {
            fprintf(stderr, "mstress: calloc returned non-zero memory\n");
            abort();
        }
        p[i] = (items - i) ^ COOKIE;
    }
    return p;
}

static void free_items(uintptr_t *p) {
    if (!p) return;
    size_t items = p[0] ^ COOKIE;
    for (size_t i = 0; i < items; i++) {
        if ((p[i] ^ COOKIE) != items - i) {
            fprintf(stderr, "mstress: an object was corrupted\n");
            abort();
        }
    }
    free(p);
}

static void *stress(void *arg) {
    uintptr_t tid = (uintptr_t)arg;
    uint64_t r = (tid + 1) * 43;
    size_t allocs = 100 * (size_t)scale * (tid % 8 + 1);
    size_t retain = allocs / 2, retain_top = 0;
    uintptr_t **retained = calloc(retain, sizeof *retained);
    uintptr_t **data = NULL;
    size_t data_size = 0, data_top = 0;
    if (!retained) abort();
    while (allocs > 0 || retain > 0) {
        if (retain == 0 || (allocs > 0 && chance(50, &r))) {
            allocs--;
            if (data_top >= data_size) {
                data_size += 100000;
                data = realloc(data, data_size * sizeof *data);
                if (!data) abort();
            }
            data[data_top++] = alloc_items((size_t)1 << (splitmix64(&r) % 5), &r);
        } else {
            retained[retain_top++] = alloc_items((size_t)1 << (splitmix64(&r) % 7), &r);
            retain--;
        }
        if (data_top > 0 && chance(66, &r)) {
            size_t i = (size_t)(splitmix64(&r) % data_top);
            free_items(data[i]);
            data[i] = NULL;
        }
        if (data_top > 0 && chance(25, &r)) {
            size_t i = (size_t)(splitmix64(&r) % data_top);
            size_t t = (size_t)(splitmix64(&r) % TRANSFERS);
            data[i] = atomic_exchange(&transfer[t], data[i]);
        }
    }
    for (size_t i = 0; i < retain_top; i++) free_items(retained[i]);
    for (size_t i = 0; i < data_top; i++) free_items(data[i]);
    free(retained);
    free(data);
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "mstress [threads] [scale] [rounds]";
    int threads = argc > 1 ? (int)bench_arg(argv[1], usage) : 2;
    scale = argc > 2 ? bench_arg(argv[2], usage) : 50;
    long rounds = argc > 3 ? bench_arg(argv[3], usage) : 25;
    bench_print_malloc();
    pthread_t *t = bench_malloc(sizeof *t * (size_t)threads);
    uint64_t r = 42;

    double t0 = bench_now();
    for (long round = 0; round < rounds; round++) {
        for (int i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, stress, (void *)(uintptr_t)i)) abort();
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < TRANSFERS; i++)
            if (round + 1 == rounds || chance(50, &r)) free_items(atomic_exchange(&transfer[i], NULL));
    }
    double seconds = bench_now() - t0;

    free(t);
    printf("threads=%d scale=%ld rounds=%ld\n", threads, scale, rounds);
    bench_print_seconds(seconds);
    return 0;
}
