/* Torture scenarios for libhakmem.so (tests/torture.rs): survival and memory
 * return under thread churn and under producer/consumer bursts.
 *
 * usage: lc_torture churn THREADS WAVE OPS LIMIT_KB DEADLINE_MS
 *   THREADS threads in waves of WAVE (a wave is started, then joined); each
 *   does OPS steps on a shared ring of 2^18 pointers: allocate a block (16..1024
 *   bytes, 1 in 5000 of 100..300 KiB), write its header and last byte, swap it
 *   into a random ring slot and check and free what was there (mostly blocks of
 *   earlier, exited threads). Then main frees what is left and polls VmRSS
 *   until it is at most LIMIT_KB or DEADLINE_MS have passed.
 *   Prints "churn: threads=N blocks=B corrupt=C peak_kb=P after_free_kb=R
 *   after_free_ms=T mapped_bytes=M".
 * usage: lc_torture prodcons BURSTS BURST_MB LIMIT_KB DEADLINE_MS
 *   2 producers and 2 consumers, BURSTS bursts: the producers allocate
 *   BURST_MB in all (mixed sizes, 1 in 64 of 2..64 KiB) and queue them; once
 *   the whole burst is queued the consumers check and free it all; then every thread idles on a condition
 *   variable while main sleeps 300 ms and polls VmRSS as above.
 *   Prints "prodcons: bursts=N corrupt=C peak_kb=P idle_kb=a,b,... max_idle_kb=M
 *   max_idle_ms=T".
 * Exits 0 unless a block was corrupted (1). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "lc_common.h"

static long limit_kb, deadline_ms;
static atomic_long corrupt, blocks;

/* Layout: [u32 size][u32 tag] ... last byte = low byte of tag. */
static unsigned char *make(size_t size, uint32_t tag) {
    unsigned char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "torture: malloc(%zu) failed\n", size);
        exit(3);
    }
    uint32_t s32 = (uint32_t)size;
    memcpy(p, &s32, 4);
    memcpy(p + 4, &tag, 4);
    p[size - 1] = (unsigned char)tag;
    atomic_fetch_add_explicit(&blocks, 1, memory_order_relaxed);
    return p;
}

static void check_free(unsigned char *p) {
    uint32_t size, tag;
    memcpy(&size, p, 4);
    memcpy(&tag, p + 4, 4);
    if (size < 8 || size > (1u << 20) || p[size - 1] != (unsigned char)tag)
        atomic_fetch_add(&corrupt, 1);
    free(p);
}

/* ---- churn ---- */

#define RING (1u << 18)
static _Atomic(unsigned char *) *ring;
static int ops;

static void *churner(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 7;
    for (int i = 0; i < ops; i++) {
        uint64_t r = xorshift(&s);
        size_t size = (r >> 40) % 5000 == 0 ? 100000 + (size_t)((r >> 8) % 200000)
                                           : 16 + (size_t)((r >> 8) % 1009);
        unsigned char *old = atomic_exchange(&ring[r % RING], make(size, (uint32_t)(r >> 20)));
        if (old) check_free(old);
    }
    return NULL;
}

static int churn(int threads, int wave) {
    ring = xmap(RING * sizeof *ring);
    pthread_t t[256];
    if (wave < 1 || wave > 256) return 2;
    long peak = 0;
    for (int i = 0; i < threads; i += wave) {
        int n = threads - i < wave ? threads - i : wave;
        for (int j = 0; j < n; j++)
            if (pthread_create(&t[j], NULL, churner, (void *)(uintptr_t)(i + j + 1))) {
                fprintf(stderr, "churn: pthread_create failed\n");
                return 1;
            }
        for (int j = 0; j < n; j++) pthread_join(t[j], NULL);
        long r = rss_kb();
        if (r > peak) peak = r;
    }
    for (unsigned i = 0; i < RING; i++) {
        unsigned char *p = atomic_exchange(&ring[i], NULL);
        if (p) check_free(p);
    }
    xunmap((void *)ring, RING * sizeof *ring);
    long ms, after = wait_rss_kb(limit_kb, deadline_ms, &ms);
    struct hakmem_stats st;
    hakmem_stats(&st);
    printf("churn: threads=%d blocks=%ld corrupt=%ld peak_kb=%ld after_free_kb=%ld "
           "after_free_ms=%ld mapped_bytes=%llu\n",
           threads, atomic_load(&blocks), atomic_load(&corrupt), peak, after, ms,
           (unsigned long long)st.mapped_bytes);
    return atomic_load(&corrupt) ? 1 : 0;
}

/* ---- prodcons ---- */

#define BATCH 256
#define PRODUCERS 2
#define CONSUMERS 2

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int burst;          /* the burst the threads may work on (1-based) */
static int produced_in[2]; /* producers done with the current burst */
static int consumed_in;    /* consumers done with the current burst */
static int producing_done; /* the burst's queue is complete */
static int quit;
static unsigned char ***queue; /* batches, mmap'ed */
static long queued, taken, queue_cap;
static long burst_bytes;

static void *producer(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 3;
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (burst == seen && !quit) pthread_cond_wait(&cond, &lock);
        if (quit) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        seen = burst;
        pthread_mutex_unlock(&lock);
        long bytes = 0;
        while (bytes < burst_bytes / PRODUCERS) {
            unsigned char **b = xmap(BATCH * sizeof *b);
            for (int i = 0; i < BATCH; i++) {
                uint64_t r = xorshift(&s);
                size_t size = r % 64 == 0 ? 2048 + (size_t)((r >> 8) % 63489)
                                          : 16 + (size_t)((r >> 8) % 1009);
                b[i] = make(size, (uint32_t)(r >> 16));
                memset(b[i] + 8, (int)(r >> 16), size - 9);
                bytes += (long)size;
            }
            pthread_mutex_lock(&lock);
            if (queued == queue_cap) abort();
            queue[queued++] = b;
            pthread_cond_broadcast(&cond);
            pthread_mutex_unlock(&lock);
        }
        pthread_mutex_lock(&lock);
        if (++produced_in[0] == PRODUCERS) producing_done = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
}

static void *consumer(void *arg) {
    (void)arg;
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (burst == seen && !quit) pthread_cond_wait(&cond, &lock);
        if (quit) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        seen = burst;
        /* The whole burst is live before the first free: its blocks then go
         * back to producers that have gone idle. */
        while (!producing_done) pthread_cond_wait(&cond, &lock);
        for (;;) {
            if (taken == queued) break;
            unsigned char **b = queue[taken++];
            pthread_mutex_unlock(&lock);
            for (int i = 0; i < BATCH; i++) check_free(b[i]);
            xunmap(b, BATCH * sizeof *b);
            pthread_mutex_lock(&lock);
        }
        consumed_in++;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
}

static int prodcons(int bursts) {
    queue_cap = burst_bytes / (BATCH * 16) + 16;
    queue = xmap((size_t)queue_cap * sizeof *queue);
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (int i = 0; i < PRODUCERS; i++)
        if (pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)(i + 1))) return 1;
    for (int i = 0; i < CONSUMERS; i++)
        if (pthread_create(&c[i], NULL, consumer, NULL)) return 1;
    long peak = 0, max_idle = 0, max_ms = 0;
    char idle[1024] = "";
    for (int k = 1; k <= bursts; k++) {
        pthread_mutex_lock(&lock);
        queued = taken = 0;
        produced_in[0] = consumed_in = producing_done = 0;
        burst = k;
        pthread_cond_broadcast(&cond);
        while (consumed_in < CONSUMERS) {
            pthread_mutex_unlock(&lock);
            long r = rss_kb();
            if (r > peak) peak = r;
            sleep_ms(20);
            pthread_mutex_lock(&lock);
        }
        pthread_mutex_unlock(&lock);
        /* Idle phase: every thread blocks until the next burst. */
        sleep_ms(300);
        long ms, r = wait_rss_kb(limit_kb, deadline_ms, &ms);
        ms += 300;
        if (r > max_idle) max_idle = r;
        if (ms > max_ms) max_ms = ms;
        size_t len = strlen(idle);
        snprintf(idle + len, sizeof idle - len, "%s%ld", k > 1 ? "," : "", r);
    }
    pthread_mutex_lock(&lock);
    quit = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
    printf("prodcons: bursts=%d blocks=%ld corrupt=%ld peak_kb=%ld idle_kb=%s max_idle_kb=%ld "
           "max_idle_ms=%ld\n",
           bursts, atomic_load(&blocks), atomic_load(&corrupt), peak, idle, max_idle, max_ms);
    return atomic_load(&corrupt) ? 1 : 0;
}

int main(int argc, char **argv) {
    require_hakmem();
    if (argc == 7 && !strcmp(argv[1], "churn")) {
        ops = atoi(argv[4]);
        limit_kb = atol(argv[5]);
        deadline_ms = atol(argv[6]);
        return churn(atoi(argv[2]), atoi(argv[3]));
    }
    if (argc == 6 && !strcmp(argv[1], "prodcons")) {
        burst_bytes = atol(argv[3]) * 1024 * 1024;
        limit_kb = atol(argv[4]);
        deadline_ms = atol(argv[5]);
        return prodcons(atoi(argv[2]));
    }
    fprintf(stderr, "usage: lc_torture churn THREADS WAVE OPS LIMIT_KB DEADLINE_MS\n"
                    "       lc_torture prodcons BURSTS BURST_MB LIMIT_KB DEADLINE_MS\n");
    return 2;
}
