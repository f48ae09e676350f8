/* dlclose of libhakmem.so while a thread that used it is still alive (issue
 * 8, item 10; tests/lifecycle.rs and tests/torture.rs).
 *
 * usage: lc_dlclose PATH-TO-libhakmem.so CYCLES THREADS
 * Not preloaded: each cycle dlopen()s the library, dlsym()s its malloc and
 * free, and starts THREADS threads that allocate and free through them (so
 * hakmem gives each a heap and arms its thread-exit hook) and then wait. Half
 * of the threads exit before the dlclose, the others only after it: their
 * exit must not run code of the unloaded library. Every block is freed before
 * the dlclose. Prints "dlclose: cycles=N rss_kb=R" and exits 0. */
#define _GNU_SOURCE
#include <pthread.h>

#include "lc_common.h"

static void *(*hk_malloc)(size_t);
static void (*hk_free)(void *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int used, go_early, go_late;

static void *user(void *arg) {
    int late = arg != NULL;
    void *p[256];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 256; i++) {
            size_t n = (size_t)(i * 37 % 5000) + 1;
            if (i == 255) n = 200000;
            p[i] = hk_malloc(n);
            if (!p[i]) abort();
            memset(p[i], i, n);
        }
        for (int i = 0; i < 256; i++) hk_free(p[i]);
    }
    pthread_mutex_lock(&lock);
    used++;
    pthread_cond_broadcast(&cond);
    while (!(late ? go_late : go_early)) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lc_dlclose PATH CYCLES THREADS\n");
        return 2;
    }
    int cycles = atoi(argv[2]), threads = atoi(argv[3]);
    if (threads < 1 || threads > 64) return 2;
    for (int c = 0; c < cycles; c++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        hk_malloc = (void *(*)(size_t))dlsym(h, "malloc");
        hk_free = (void (*)(void *))dlsym(h, "free");
        if (!hk_malloc || !hk_free || hk_malloc == malloc) {
            fprintf(stderr, "dlclose: libhakmem.so's malloc not found\n");
            return 1;
        }
        used = go_early = go_late = 0;
        pthread_t t[64];
        for (int i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, user, i % 2 ? (void *)1 : NULL)) return 1;
        pthread_mutex_lock(&lock);
        while (used < threads) pthread_cond_wait(&cond, &lock);
        go_early = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        for (int i = 0; i < threads; i += 2) pthread_join(t[i], NULL);
        if (dlclose(h)) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            return 1;
        }
        hk_malloc = NULL;
        hk_free = NULL;
        pthread_mutex_lock(&lock);
        go_late = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        for (int i = 1; i < threads; i += 2) pthread_join(t[i], NULL);
    }
    printf("dlclose: cycles=%d rss_kb=%ld\n", cycles, rss_kb());
    return 0;
}
