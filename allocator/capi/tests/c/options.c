/* HAKMEM_* options and counters under LD_PRELOAD (tests/conformance.rs).
 *
 * Prints the options hakmem read from the environment, then churns 64 MiB of
 * small blocks (all freed again) and prints the counters, one "key=value" per
 * line, for the test to compare with what the environment asked for. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "hakmem.h"

int main(void) {
    void (*get_options)(struct hakmem_options *) = dlsym(RTLD_DEFAULT, "hakmem_get_options");
    void (*get_stats)(struct hakmem_stats *) = dlsym(RTLD_DEFAULT, "hakmem_get_stats");
    if (!get_options || !get_stats) {
        fprintf(stderr, "options: libhakmem.so is not loaded\n");
        return 2;
    }
    struct hakmem_options o;
    get_options(&o);
    printf("profile=%s\nmem_lean=%d\nprewarm=%d\nheap_empty_slabs=%u\nretain_superslabs=%u\n"
           "large_cache_bytes=%llu\nrelease_thread=%d\n",
           o.profile, o.mem_lean, o.prewarm, o.heap_empty_slabs, o.retain_superslabs,
           (unsigned long long)o.large_cache_bytes, o.release_thread);

    enum { N = 64 * 1024 };
    static char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(1000);
        p[i][0] = p[i][999] = 1;
    }
    for (int i = 0; i < N; i++) free(p[i]);
    for (int i = 0; i < 8; i++) free(malloc(8 << 20));

    struct hakmem_stats s;
    get_stats(&s);
    printf("mmap=%llu\nmunmap=%llu\nmadvise=%llu\nmapped_bytes=%llu\nsuperslabs=%llu\n"
           "superslabs_released=%llu\nsyscall_failures=%llu\nreserved_bytes=%llu\n"
           "large_cached_bytes=%llu\n",
           (unsigned long long)s.mmap, (unsigned long long)s.munmap,
           (unsigned long long)s.madvise, (unsigned long long)s.mapped_bytes,
           (unsigned long long)s.superslabs, (unsigned long long)s.superslabs_released,
           (unsigned long long)s.syscall_failures, (unsigned long long)s.reserved_bytes,
           (unsigned long long)s.large_cached_bytes);
    return 0;
}
