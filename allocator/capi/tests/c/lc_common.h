/* Helpers shared by the lifecycle and torture programs (tests/lifecycle.rs,
 * tests/torture.rs): memory readings from /proc/self, polling for memory to
 * come back, hakmem's counters, and bookkeeping memory that is not hakmem's.
 *
 * Nothing here allocates through malloc: /proc files are read with open/read
 * into stack buffers, and the pointer arrays the programs need live in their
 * own mmap'ed memory, so they neither disturb nor depend on the allocator under
 * test. Every function is `static inline` so that a program may use any subset
 * (unused ones do not trip -Werror). */
#ifndef LC_COMMON_H
#define LC_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

/* A "Name:   value kB" field of /proc/self/status, in kB; -1 if missing. */
static inline long status_kb(const char *field) {
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    size_t len = strlen(field);
    for (char *l = buf; *l;) {
        if (!strncmp(l, field, len) && l[len] == ':') return strtol(l + len + 1, NULL, 10);
        char *nl = strchr(l, '\n');
        if (!nl) break;
        l = nl + 1;
    }
    return -1;
}

static inline long rss_kb(void) { return status_kb("VmRSS"); }
static inline long vmsize_kb(void) { return status_kb("VmSize"); }

/* Lines of /proc/self/maps: the process's mappings (VMAs). */
static inline long maps_count(void) {
    char buf[65536];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long lines = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) lines += buf[i] == '\n';
    close(fd);
    return lines;
}

static inline long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts)) {
    }
}

/* Polls VmRSS every 100 ms until it is at most `limit_kb` or `deadline_ms`
 * have passed; returns the last reading and stores the time it took. */
static inline long wait_rss_kb(long limit_kb, long deadline_ms, long *elapsed_ms) {
    long start = now_ms(), rss;
    for (;;) {
        rss = rss_kb();
        long t = now_ms() - start;
        if (rss <= limit_kb || t >= deadline_ms) {
            if (elapsed_ms) *elapsed_ms = t;
            return rss;
        }
        sleep_ms(100);
    }
}

/* Bookkeeping memory from mmap, not from the allocator under test. */
static inline void *xmap(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

static inline void xunmap(void *p, size_t bytes) { munmap(p, bytes); }

/* hakmem's counters; exits 2 when libhakmem.so is not loaded, so that a
 * failed LD_PRELOAD cannot pass a test on glibc. */
static inline void hakmem_stats(struct hakmem_stats *s) {
    void (*get)(struct hakmem_stats *) =
        (void (*)(struct hakmem_stats *))dlsym(RTLD_DEFAULT, "hakmem_get_stats");
    if (!get) {
        fprintf(stderr, "libhakmem.so is not loaded\n");
        exit(2);
    }
    get(s);
}

static inline void require_hakmem(void) {
    struct hakmem_stats s;
    hakmem_stats(&s);
}

static inline uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#endif
