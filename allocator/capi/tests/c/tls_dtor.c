/* malloc/free from TLS destructors on libhakmem.so (tests/stress.rs).
 *
 * At thread exit glibc first runs the thread_local destructors registered with
 * __cxa_thread_atexit_impl (what C++ thread_local and Rust use), newest first,
 * then the pthread key destructors, in key order and for several passes, and
 * finally frees the thread's own TLS blocks. hakmem's own per-thread teardown
 * is one of those destructors, so some of ours run after it and must still be
 * able to allocate and free. This registers destructors of both kinds before
 * and after the thread's first malloc, keys created both before and after
 * hakmem started, and key destructors that re-arm themselves for a second pass;
 * each destructor allocates, checks and frees blocks (some allocated by other
 * threads) and leaves one block for the main thread to free afterwards.
 * The main thread does the same at exit() via atexit and a destructor.
 * Prints "tls: ok" and exits 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso);
extern void *__dso_handle;

#define THREADS 16
#define ROUNDS 8

static pthread_key_t key_early, key_late;
static atomic_int dtor_runs, bad;
static _Atomic(void *) left_over[THREADS * ROUNDS * 8];
static atomic_int left_count;

/* Allocates a spread of sizes (tiny to large), checks and frees them, and
 * hands one block on to be freed later by the main thread. */
static void churn(int tag) {
    static const size_t sizes[] = {1, 8, 24, 100, 512, 1000, 4096, 70000, 1 << 20};
    void *keep[sizeof sizes / sizeof *sizes];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        keep[i] = malloc(sizes[i]);
        if (!keep[i]) {
            atomic_fetch_add(&bad, 1);
            return;
        }
        memset(keep[i], tag, sizes[i]);
    }
    void *r = realloc(keep[2], 3000);
    if (!r || ((unsigned char *)r)[23] != (unsigned char)tag) atomic_fetch_add(&bad, 1);
    keep[2] = r;
    for (size_t i = 1; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = keep[i];
        if (p[0] != (unsigned char)tag || p[sizes[i] - 1] != (unsigned char)tag) atomic_fetch_add(&bad, 1);
        free(p);
    }
    int slot = atomic_fetch_add(&left_count, 1);
    if (slot < (int)(sizeof left_over / sizeof *left_over))
        atomic_store(&left_over[slot], keep[0]);
    else
        free(keep[0]);
    atomic_fetch_add(&dtor_runs, 1);
}

static void thread_dtor(void *arg) { churn((int)(uintptr_t)arg); }

/* Checks and frees this key's value, churns, and re-arms the key once so that
 * glibc runs the destructor a second time. */
static void key_dtor(pthread_key_t key, unsigned char *v) {
    if (v[0] != 0x77) atomic_fetch_add(&bad, 1);
    int pass = v[1];
    free(v);
    churn(0x33);
    if (pass == 0) {
        unsigned char *again = malloc(64);
        again[0] = 0x77;
        again[1] = 1;
        if (pthread_setspecific(key, again)) atomic_fetch_add(&bad, 1);
    }
}

static void early_dtor(void *v) { key_dtor(key_early, v); }
static void late_dtor(void *v) { key_dtor(key_late, v); }

static void *worker(void *arg) {
    /* Registered before this thread's first malloc (registration itself calls
     * calloc, so hakmem's thread heap starts inside it). */
    __cxa_thread_atexit_impl(thread_dtor, (void *)(uintptr_t)0x11, &__dso_handle);
    void *first = malloc(100);
    memset(first, 1, 100);
    /* Registered after: runs before hakmem's own teardown if hakmem uses the
     * same mechanism, after it if hakmem uses a key. */
    __cxa_thread_atexit_impl(thread_dtor, (void *)(uintptr_t)0x22, &__dso_handle);
    unsigned char *a = malloc(32), *b = malloc(48);
    a[0] = b[0] = 0x77;
    a[1] = b[1] = 0;
    pthread_setspecific(key_early, a);
    pthread_setspecific(key_late, b);
    free(first);
    (void)arg;
    return NULL;
}

/* After main returned: a failure can only be reported by the exit status. */
static void churn_or_die(int tag) {
    churn(tag);
    if (atomic_load(&bad)) {
        fprintf(stderr, "tls: churn at exit failed\n");
        _exit(1);
    }
}
static void at_exit_churn(void) { churn_or_die(0x44); }
__attribute__((destructor)) static void dtor_churn(void) { churn_or_die(0x55); }

int main(void) {
    /* key_early may be created before or after hakmem's own key (if any);
     * key_late surely after: its destructor runs after hakmem's. */
    pthread_key_create(&key_early, early_dtor);
    free(malloc(1));
    pthread_key_create(&key_late, late_dtor);
    atexit(at_exit_churn);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    }
    int n = atomic_load(&left_count);
    if (n > (int)(sizeof left_over / sizeof *left_over)) n = (int)(sizeof left_over / sizeof *left_over);
    for (int i = 0; i < n; i++) free(atomic_exchange(&left_over[i], NULL));
    /* Per thread: two thread_local destructors, two passes of two keys. */
    int want = ROUNDS * THREADS * 6;
    if (atomic_load(&bad) || atomic_load(&dtor_runs) != want) {
        fprintf(stderr, "tls: %d bad, %d destructor runs (want %d)\n", atomic_load(&bad),
                atomic_load(&dtor_runs), want);
        return 1;
    }
    printf("tls: ok\n");
    fflush(stdout);
    return 0;
}
