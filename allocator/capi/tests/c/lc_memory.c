/* Memory going back to the OS (issue 8, items 5, 6, 7 and 11; tests/lifecycle.rs).
 *
 * usage: lc_memory MODE LIMIT_KB DEADLINE_MS
 * The memory-return modes poll VmRSS every 100 ms until it is at most LIMIT_KB
 * or DEADLINE_MS have passed, and print the reading ("..._kb=") and the time
 * it took ("..._ms="); the test compares the reading with the limit.
 *   exited          4 threads each allocate ~100 MB of 256-byte blocks, hand
 *                   them to main and exit; main frees them all (after_free);
 *                   then 4 new short threads allocate a little and exit
 *                   (after_new_threads)
 *   idle_producer   a producer thread builds ~100 MB of 256-byte blocks and
 *                   blocks on a condition variable; a consumer thread frees
 *                   them all; measured while the producer still idles
 *   idle_threads    8 threads each allocate ~10 MB of mixed sizes (16..1024,
 *                   some 2..64 KiB), free them all and block; measured while
 *                   they sleep
 *   fork_reclaim    a thread T allocates ~100 MB of 256-byte blocks and
 *                   blocks; main forks; the child frees all of T's blocks and
 *                   measures its own RSS
 *   trim            main allocates 200 MB of 256-byte blocks and frees them;
 *                   then malloc_trim(0): its result and VmRSS right after it
 *   mallinfo        main holds 50 MB of 256-byte blocks and prints mallinfo2()
 *   malloc_stats    main holds a few blocks and calls malloc_stats()
 * The bookkeeping arrays are mmap'ed, not malloc'ed, and unmapped before
 * memory is measured. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>

#include "lc_common.h"

#define MB (1024L * 1024)
#define BLOCKS_100MB (100 * MB / 256)

static long limit_kb, deadline_ms;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int built, released;

static void wait_for(int *flag, int value) {
    pthread_mutex_lock(&lock);
    while (*flag < value) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

static void bump(int *flag) {
    pthread_mutex_lock(&lock);
    ++*flag;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Allocates n 256-byte blocks into p, writing every block. */
static void fill_256(void **p, long n) {
    for (long i = 0; i < n; i++) {
        p[i] = malloc(256);
        if (!p[i]) {
            fprintf(stderr, "malloc(256) failed after %ld blocks\n", i);
            exit(3);
        }
        memset(p[i], (int)(i & 0xff), 256);
    }
}

static void free_all(void **p, long n) {
    for (long i = 0; i < n; i++) free(p[i]);
}

/* ---- exited ---- */

static void *exiting_allocator(void *arg) {
    fill_256(arg, BLOCKS_100MB);
    return NULL;
}

static void *short_thread(void *arg) {
    (void)arg;
    void *p[200];
    for (int i = 0; i < 200; i++) p[i] = malloc((size_t)(16 + i * 5));
    for (int i = 0; i < 200; i++) free(p[i]);
    return NULL;
}

static int exited(void) {
    void **p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = xmap(BLOCKS_100MB * sizeof(void *));
        if (pthread_create(&t[i], NULL, exiting_allocator, p[i])) return 3;
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    long peak = rss_kb(), ms1, ms2;
    for (int i = 0; i < 4; i++) {
        free_all(p[i], BLOCKS_100MB);
        xunmap(p[i], BLOCKS_100MB * sizeof(void *));
    }
    long after_free = wait_rss_kb(limit_kb, deadline_ms, &ms1);
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, short_thread, NULL)) return 3;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    long after_new = wait_rss_kb(limit_kb, deadline_ms, &ms2);
    printf("exited: peak_kb=%ld after_free_kb=%ld after_free_ms=%ld after_new_threads_kb=%ld "
           "after_new_threads_ms=%ld\n",
           peak, after_free, ms1, after_new, ms2);
    return 0;
}

/* ---- idle_producer and fork_reclaim ---- */

static void **shared;

static void *producer(void *arg) {
    (void)arg;
    fill_256(shared, BLOCKS_100MB);
    bump(&built);
    wait_for(&released, 1); /* idles: neither allocates nor frees */
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    wait_for(&built, 1);
    free_all(shared, BLOCKS_100MB);
    return NULL;
}

static int idle_producer(void) {
    shared = xmap(BLOCKS_100MB * sizeof(void *));
    pthread_t prod, cons;
    if (pthread_create(&prod, NULL, producer, NULL)) return 3;
    if (pthread_create(&cons, NULL, consumer, NULL)) return 3;
    wait_for(&built, 1);
    long peak = rss_kb(), ms;
    pthread_join(cons, NULL);
    xunmap(shared, BLOCKS_100MB * sizeof(void *));
    long after = wait_rss_kb(limit_kb, deadline_ms, &ms);
    bump(&released);
    pthread_join(prod, NULL);
    printf("idle_producer: peak_kb=%ld after_free_kb=%ld after_free_ms=%ld\n", peak, after, ms);
    return 0;
}

static int fork_reclaim(void) {
    shared = xmap(BLOCKS_100MB * sizeof(void *));
    pthread_t prod;
    if (pthread_create(&prod, NULL, producer, NULL)) return 3;
    wait_for(&built, 1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 3;
    if (pid == 0) {
        long before = rss_kb(), ms;
        free_all(shared, BLOCKS_100MB);
        xunmap(shared, BLOCKS_100MB * sizeof(void *));
        long after = wait_rss_kb(limit_kb, deadline_ms, &ms);
        printf("fork_reclaim: child_before_kb=%ld child_after_kb=%ld child_after_ms=%ld\n", before,
               after, ms);
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 3;
    bump(&released);
    pthread_join(prod, NULL);
    free_all(shared, BLOCKS_100MB);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "fork_reclaim: child failed (status 0x%x)\n", status);
        return 1;
    }
    return 0;
}

/* ---- idle_threads ---- */

#define IDLE_THREADS 8
static int freed;

static void *idler(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    long cap = 10 * MB / 16;
    void **p = xmap((size_t)cap * sizeof(void *));
    long n = 0, bytes = 0;
    while (bytes < 10 * MB && n < cap) {
        uint64_t r = xorshift(&s);
        size_t size = r % 64 == 0 ? 2048 + (size_t)((r >> 8) % (65536 - 2048 + 1))
                                  : 16 + (size_t)((r >> 8) % (1024 - 16 + 1));
        p[n] = malloc(size);
        if (!p[n]) exit(3);
        memset(p[n], (int)r, size);
        bytes += (long)size;
        n++;
    }
    free_all(p, n);
    xunmap(p, (size_t)cap * sizeof(void *));
    bump(&freed);
    wait_for(&released, 1); /* sleeps holding whatever the allocator kept */
    return NULL;
}

static int idle_threads(void) {
    pthread_t t[IDLE_THREADS];
    for (int i = 0; i < IDLE_THREADS; i++)
        if (pthread_create(&t[i], NULL, idler, (void *)(uintptr_t)(i + 1))) return 3;
    wait_for(&freed, IDLE_THREADS);
    long ms, after = wait_rss_kb(limit_kb, deadline_ms, &ms);
    bump(&released);
    for (int i = 0; i < IDLE_THREADS; i++) pthread_join(t[i], NULL);
    printf("idle_threads: after_free_kb=%ld after_free_ms=%ld\n", after, ms);
    return 0;
}

/* ---- malloc_trim, mallinfo2, malloc_stats ---- */

static int trim(void) {
    long n = 200 * MB / 256;
    void **p = xmap((size_t)n * sizeof(void *));
    fill_256(p, n);
    long peak = rss_kb();
    free_all(p, n);
    xunmap(p, (size_t)n * sizeof(void *));
    long before = rss_kb();
    int ret = malloc_trim(0);
    long after = rss_kb();
    printf("trim: peak_kb=%ld before_trim_kb=%ld ret=%d after_trim_kb=%ld\n", peak, before, ret,
           after);
    return 0;
}

static int info(void) {
    long n = 50 * MB / 256;
    void **p = xmap((size_t)n * sizeof(void *));
    fill_256(p, n);
    struct mallinfo2 mi = mallinfo2();
    printf("mallinfo: arena=%zu hblkhd=%zu uordblks=%zu fordblks=%zu\n", mi.arena, mi.hblkhd,
           mi.uordblks, mi.fordblks);
    free_all(p, n);
    return 0;
}

static int stats(void) {
    void *p[100];
    for (int i = 0; i < 100; i++) p[i] = malloc((size_t)(i * 100 + 1));
    malloc_stats();
    for (int i = 0; i < 100; i++) free(p[i]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lc_memory MODE LIMIT_KB DEADLINE_MS\n");
        return 2;
    }
    require_hakmem();
    limit_kb = atol(argv[2]);
    deadline_ms = atol(argv[3]);
    const char *m = argv[1];
    int rc = !strcmp(m, "exited")          ? exited()
             : !strcmp(m, "idle_producer") ? idle_producer()
             : !strcmp(m, "idle_threads")  ? idle_threads()
             : !strcmp(m, "fork_reclaim")  ? fork_reclaim()
             : !strcmp(m, "trim")          ? trim()
             : !strcmp(m, "mallinfo")      ? info()
             : !strcmp(m, "malloc_stats")  ? stats()
                                           : 2;
    fflush(stdout);
    return rc;
}
