/* libhakmem.so: hakmem's own entry points, beside the standard malloc family
 * it exports. Link with -lhakmem, or look them up with dlsym when hakmem is
 * LD_PRELOADed. */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime options in force (set from HAKMEM_* at start-up). Each field is
 * one knob of docs/design.md's table, under its name there. */
struct hakmem_options {
    const char *profile; /* "speed-first", "balanced", "lean" or "hardened"; static */
    int mem_lean;        /* 1: return free memory to the OS */
    int prewarm;         /* 1: map and pre-fault at start-up */
    uint32_t heap_empty_slabs;
    uint32_t retain_superslabs;
    uint64_t large_cache_bytes;
    /* Appended fields: */
    int release_thread;  /* 1: a background thread returns idle threads' memory */
};

/* The always-on counters (a snapshot; cheap). */
struct hakmem_stats {
    uint64_t mmap, munmap, madvise, mremap; /* syscalls made */
    uint64_t mapped_bytes;        /* bytes in use from the OS now (arena chunks
                                     handed out, direct mappings, metadata) */
    uint64_t superslabs;          /* superslabs in use now */
    uint64_t superslabs_released; /* superslabs given back so far */
    uint64_t large_blocks;        /* large blocks live */
    /* Appended fields: */
    uint64_t syscall_failures;    /* failed munmap/madvise/mremap (0 when healthy) */
    uint64_t reserved_bytes;      /* arena address space (never unmapped: the peak) */
    uint64_t large_cached_bytes;  /* freed large memory kept committed for reuse */
    uint64_t mprotect;            /* syscalls made (guard pages: hardened only) */
};

void hakmem_get_options(struct hakmem_options *out);
void hakmem_get_stats(struct hakmem_stats *out);

#ifdef __cplusplus
}
#endif

#endif
