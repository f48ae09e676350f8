/* Multi-threaded stress for libhakmem.so (tests/stress.rs).
 *
 * usage: stress ROUNDS THREADS OPS
 * Each round starts THREADS fresh threads (so thread heaps are created and torn
 * down every round). Each thread does OPS steps on its own slots: sizes 8..512,
 * 1% of them 100x larger. Half the frees go through a shared buffer: the block
 * is swapped into a random shared slot and whatever was there (usually another
 * thread's block, possibly one of a thread that has exited) is freed instead.
 * Every block carries a pattern derived from a per-block tag, checked in full
 * before it is freed. Prints "stress: ok" and exits 0, or exits 1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARED 4096
#define SLOTS 256

static _Atomic(unsigned char *) shared[SHARED];
static atomic_long corrupt, allocated, remote_frees;
static int ops;

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Layout: [u32 size][u32 tag][pattern bytes...]; blocks are >= 8 bytes. */
static unsigned char *make(size_t size, uint32_t tag) {
    unsigned char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "stress: malloc(%zu) failed\n", size);
        exit(1);
    }
    uint32_t s32 = (uint32_t)size;
    memcpy(p, &s32, 4);
    memcpy(p + 4, &tag, 4);
    for (size_t i = 8; i < size; i++) p[i] = (unsigned char)(tag + i * 7);
    atomic_fetch_add_explicit(&allocated, 1, memory_order_relaxed);
    return p;
}

static void check_free(unsigned char *p) {
    uint32_t size, tag;
    memcpy(&size, p, 4);
    memcpy(&tag, p + 4, 4);
    int bad = size < 8 || size > 512 * 100;
    for (size_t i = 8; !bad && i < size; i++) bad = p[i] != (unsigned char)(tag + i * 7);
    if (bad) atomic_fetch_add(&corrupt, 1);
    free(p);
}

static void *worker(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    unsigned char *slot[SLOTS] = {0};
    long remote = 0;
    for (int i = 0; i < ops; i++) {
        uint64_t r = next(&seed);
        int k = (int)(r % SLOTS);
        if (slot[k]) {
            if ((r >> 20) & 1) {
                /* Hand it over: another thread will check and free it. */
                unsigned char *old = atomic_exchange(&shared[(r >> 32) % SHARED], slot[k]);
                if (old) {
                    check_free(old);
                    remote++;
                }
            } else {
                check_free(slot[k]);
            }
            slot[k] = NULL;
        } else {
            size_t size = 8 + (size_t)((r >> 24) % 505);
            if ((r >> 40) % 100 == 0) size *= 100;
            slot[k] = make(size, (uint32_t)(r >> 8));
        }
    }
    for (int k = 0; k < SLOTS; k++)
        if (slot[k]) check_free(slot[k]);
    atomic_fetch_add(&remote_frees, remote);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: stress ROUNDS THREADS OPS\n");
        return 2;
    }
    int rounds = atoi(argv[1]), threads = atoi(argv[2]);
    ops = atoi(argv[3]);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < threads; i++) {
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(r * threads + i + 1))) {
                fprintf(stderr, "stress: pthread_create failed\n");
                return 1;
            }
        }
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    for (int i = 0; i < SHARED; i++) {
        unsigned char *p = atomic_exchange(&shared[i], NULL);
        if (p) check_free(p);
    }
    free(t);
    printf("stress: %ld blocks, %ld freed by another thread, %ld corrupt\n",
           atomic_load(&allocated), atomic_load(&remote_frees), atomic_load(&corrupt));
    if (atomic_load(&corrupt) || atomic_load(&remote_frees) == 0) return 1;
    printf("stress: ok\n");
    return 0;
}
