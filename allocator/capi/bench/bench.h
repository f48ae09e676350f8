/* Shared by the workload programs of scripts/bench_suite.sh: the proof of
 * which library serves malloc, a wall clock, a PRNG, the timing line, and the
 * sized free of whichever allocator is preloaded.
 *
 * Every program prints "malloc=<library serving malloc>" (dladdr, as mixed.c
 * does) first and "seconds=<wall time of the measured part>" last. The work
 * is fixed, not the time, so a lower time is better. */
#ifndef HAKMEM_BENCH_H
#define HAKMEM_BENCH_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The file name of the object that defines `fn`, or "?". */
static inline const char *bench_object_of(void *fn) {
    Dl_info info;
    return fn && dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "?";
}

/* Prints "malloc=<library>"; scripts/bench_suite.sh checks it. */
static inline void bench_print_malloc(void) {
    printf("malloc=%s\n", bench_object_of(dlsym(RTLD_DEFAULT, "malloc")));
    fflush(stdout);
}

static inline void bench_print_seconds(double seconds) { printf("seconds=%.4f\n", seconds); }

/* A strictly positive integer argument, or exit 2 with the usage line. */
static inline long bench_arg(const char *s, const char *usage) {
    char *end;
    long v = strtol(s, &end, 0);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "usage: %s\n", usage);
        exit(2);
    }
    return v;
}

static inline void *bench_malloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        abort();
    }
    return p;
}

/* Sized free: C23 free_sized where the preloaded library defines it (hakmem),
 * else that library's own sized free (mimalloc's mi_free_size, jemalloc's
 * sdallocx), else plain free (glibc 2.36 has none). A symbol only counts if it
 * lives in the object that serves malloc, so that a sized free of another
 * allocator can never receive this one's blocks. */
typedef void (*bench_sized_free_fn)(void *, size_t);
static void (*bench_sdallocx)(void *, size_t, int);
static inline void bench_sdallocx_adapter(void *p, size_t n) { bench_sdallocx(p, n, 0); }
static inline void bench_plain_free(void *p, size_t n) {
    (void)n;
    free(p);
}

static inline bench_sized_free_fn bench_sized_free(const char **name) {
    const char *owner = bench_object_of(dlsym(RTLD_DEFAULT, "malloc"));
    void *f;
    if ((f = dlsym(RTLD_DEFAULT, "free_sized")) && !strcmp(bench_object_of(f), owner)) {
        *name = "free_sized";
        return (bench_sized_free_fn)f;
    }
    if ((f = dlsym(RTLD_DEFAULT, "mi_free_size")) && !strcmp(bench_object_of(f), owner)) {
        *name = "mi_free_size";
        return (bench_sized_free_fn)f;
    }
    if ((f = dlsym(RTLD_DEFAULT, "sdallocx")) && !strcmp(bench_object_of(f), owner)) {
        *name = "sdallocx";
        bench_sdallocx = (void (*)(void *, size_t, int))f;
        return bench_sdallocx_adapter;
    }
    *name = "free";
    return bench_plain_free;
}

#endif
