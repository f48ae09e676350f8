/* Thread-exit destructors that allocate in every pass (issue 8, item 8;
 * tests/lifecycle.rs and tests/torture.rs).
 *
 * usage: lc_tsd THREADS CONCURRENT [mix]
 * Starts THREADS threads, CONCURRENT at a time. Each sets a pthread key whose
 * destructor frees the key's block, allocates 64 and 4096 bytes, frees the
 * 4096 and sets the key again to the 64-byte block, so glibc runs it in every
 * one of its PTHREAD_DESTRUCTOR_ITERATIONS (4) passes, the last included: the
 * block set in the last pass is never destroyed, so it is also kept in a
 * global slot that main frees after the join. hakmem's own exit hook runs
 * in the same passes, before this key's destructor (its key is older).
 * With "mix", each thread also registers C++-style thread_local destructors
 * (__cxa_thread_atexit_impl) that allocate and free, and churns more sizes.
 * After all threads are joined and the kept blocks freed, waits up to 2 s for
 * at most MAX_SUPERSLABS superslabs (the tests' limit), then prints
 * "tsd: threads=N passes=P mapped_bytes=M superslabs=S rss_kb=R". */
#define _GNU_SOURCE
#define MAX_SUPERSLABS 16
#include <pthread.h>
#include <stdatomic.h>

#include "lc_common.h"

extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso);
extern void *__dso_handle;

static pthread_key_t key;
static void **kept;
static atomic_long passes;
static int mix;
static __thread long my_index;

static void key_dtor(void *v) {
    atomic_fetch_add(&passes, 1);
    free(v);
    void *a = malloc(64), *b = malloc(4096);
    if (!a || !b) abort();
    memset(a, 0x64, 64);
    memset(b, 0x40, 4096);
    free(b);
    kept[my_index] = a;
    if (pthread_setspecific(key, a)) abort();
}

static void tl_dtor(void *arg) {
    size_t n = (size_t)(uintptr_t)arg;
    void *p = malloc(n), *q = malloc(n * 3 + 1);
    if (!p || !q) abort();
    memset(p, 1, n);
    free(q);
    free(p);
}

static void *worker(void *arg) {
    my_index = (long)(uintptr_t)arg;
    if (mix) __cxa_thread_atexit_impl(tl_dtor, (void *)(uintptr_t)100, &__dso_handle);
    void *v = malloc(64);
    if (!v) abort();
    kept[my_index] = v;
    if (pthread_setspecific(key, v)) abort();
    if (mix) {
        __cxa_thread_atexit_impl(tl_dtor, (void *)(uintptr_t)20000, &__dso_handle);
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc((size_t)(i * 211 % 9000) + 1);
        for (int i = 0; i < 64; i++) free(p[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: lc_tsd THREADS CONCURRENT [mix]\n");
        return 2;
    }
    require_hakmem();
    long threads = atol(argv[1]);
    int conc = atoi(argv[2]);
    mix = argc > 3 && !strcmp(argv[3], "mix");
    if (conc < 1 || conc > 64) return 2;
    kept = xmap((size_t)threads * sizeof(void *));
    if (pthread_key_create(&key, key_dtor)) return 2;
    pthread_t t[64];
    for (long i = 0; i < threads; i += conc) {
        int n = threads - i < conc ? (int)(threads - i) : conc;
        for (int j = 0; j < n; j++)
            if (pthread_create(&t[j], NULL, worker, (void *)(uintptr_t)(i + j))) {
                fprintf(stderr, "tsd: pthread_create failed\n");
                return 1;
            }
        for (int j = 0; j < n; j++) pthread_join(t[j], NULL);
    }
    for (long i = 0; i < threads; i++) free(kept[i]);
    /* Memory of exited threads may wait for the release thread (issue 8: back
     * within 2 s): poll until at most MAX_SUPERSLABS remain or 2 s passed. */
    struct hakmem_stats s;
    for (int waited = 0;; waited += 100) {
        hakmem_stats(&s);
        if (s.superslabs <= MAX_SUPERSLABS || waited >= 2000) break;
        usleep(100 * 1000);
    }
    printf("tsd: threads=%ld passes=%ld mapped_bytes=%llu superslabs=%llu rss_kb=%ld\n", threads,
           atomic_load(&passes), (unsigned long long)s.mapped_bytes,
           (unsigned long long)s.superslabs, rss_kb());
    return 0;
}
