/* libhakmem.so loaded after start-up with dlopen (tests/conformance.rs).
 *
 * usage: dlopen PATH-TO-libhakmem.so
 * The process runs on glibc's malloc until the dlopen, so it then holds glibc
 * blocks that are handed to hakmem's free/realloc/malloc_usable_size: the
 * "pointers allocated before hakmem was loaded" case. Also checks that
 * hakmem's initial-exec TLS slot works in a dlopen'ed library, on the thread
 * that loaded it and on threads started before and after. Prints "dlopen: ok". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *(*hk_malloc)(size_t);
static void (*hk_free)(void *);
static void *(*hk_realloc)(void *, size_t);
static size_t (*hk_usable)(void *);
static int failures;

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            failures++;                                                  \
            fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                \
    } while (0)

/* Uses hakmem's functions on this thread: its own blocks and glibc's. */
static void *use_hakmem(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i % 900) + 1;
        char *p = hk_malloc(n);
        CHECK(p && hk_usable(p) >= n);
        memset(p, 'h', n);
        char *q = hk_realloc(p, n * 2);
        CHECK(q && q[n - 1] == 'h');
        hk_free(q);
        char *g = malloc(n); /* glibc's: hakmem is not interposed */
        memset(g, 'g', n);
        if (i % 2) {
            hk_free(g);
        } else {
            char *h = hk_realloc(g, n + 100);
            CHECK(h && h[n - 1] == 'g' && hk_usable(h) >= n + 100);
            hk_free(h);
        }
    }
    return NULL;
}

static void *wait_then_use(void *go) {
    pthread_mutex_lock(go);
    pthread_mutex_unlock(go);
    return use_hakmem(NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    enum { N = 300 };
    char *before[N];
    for (int i = 0; i < N; i++) {
        before[i] = malloc((size_t)i * 7 + 1);
        memset(before[i], 'b', (size_t)i * 7 + 1);
    }
    /* A thread that exists before the library is loaded. */
    static pthread_mutex_t go = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&go);
    pthread_t early;
    pthread_create(&early, NULL, wait_then_use, &go);

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    hk_malloc = dlsym(h, "malloc");
    hk_free = dlsym(h, "free");
    hk_realloc = dlsym(h, "realloc");
    hk_usable = dlsym(h, "malloc_usable_size");
    CHECK(hk_malloc && hk_malloc != (void *)malloc);

    for (int i = 0; i < N; i++) {
        size_t n = (size_t)i * 7 + 1;
        CHECK(hk_usable(before[i]) >= n);
        if (i % 2) {
            hk_free(before[i]);
        } else {
            char *q = hk_realloc(before[i], n * 3);
            CHECK(q && q[0] == 'b' && q[n - 1] == 'b');
            hk_free(q);
        }
    }
    pthread_mutex_unlock(&go);
    use_hakmem(NULL);
    pthread_t late[4];
    for (int i = 0; i < 4; i++) pthread_create(&late[i], NULL, use_hakmem, NULL);
    for (int i = 0; i < 4; i++) pthread_join(late[i], NULL);
    pthread_join(early, NULL);
    if (failures) return 1;
    printf("dlopen: ok\n");
    return 0;
}
