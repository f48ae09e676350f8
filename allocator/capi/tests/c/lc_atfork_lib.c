/* A shared library with fork handlers that allocate (tests/lifecycle.rs,
 * tests/torture.rs), built with `cc -shared -fPIC` and linked into lc_fork as
 * a DT_NEEDED dependency.
 *
 * Its constructor runs before that of a preloaded libhakmem.so and registers
 * the handlers first, so glibc runs this prepare handler after hakmem's (in
 * reverse order of registration): an allocator whose prepare handler takes its
 * locks and keeps them until fork returns deadlocks here. The prepare handler
 * frees the blocks the library keeps cached and does a malloc(300000)/free;
 * the parent and child handlers allocate the cache again, the child's also a
 * large block. The registration comes before the first allocation, so that
 * allocating cannot start hakmem's initialisation (and its registration)
 * first. lc_atfork_lib_calls() reports how often each handler ran.
 *
 * glibc does not serialise the handlers of forks made by several threads at
 * once (it drops its lock around each handler), so the cache slots are
 * atomic: a slot is emptied with an exchange before its block is freed, and
 * filled with a compare-and-swap (the loser frees its block). A mutex would
 * not do: a child forked while another thread held it could never take it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE 32

static _Atomic(void *) cache[CACHE];
static atomic_long calls[3];

static void fill_cache(void) {
    for (int i = 0; i < CACHE; i++) {
        if (!atomic_load(&cache[i])) {
            size_t n = 16 + (size_t)i * 97;
            void *p = malloc(n), *none = NULL;
            if (!p) abort();
            memset(p, 0x5c, n);
            if (!atomic_compare_exchange_strong(&cache[i], &none, p)) free(p);
        }
    }
}

static void prepare(void) {
    for (int i = 0; i < CACHE; i += 2) free(atomic_exchange(&cache[i], NULL));
    void *big = malloc(300000);
    if (!big) abort();
    memset(big, 1, 300000);
    free(big);
    atomic_fetch_add(&calls[0], 1);
}

static void parent(void) {
    fill_cache();
    atomic_fetch_add(&calls[1], 1);
}

static void child(void) {
    fill_cache();
    void *big = malloc(300000);
    if (!big) abort();
    memset(big, 2, 300000);
    free(big);
    atomic_fetch_add(&calls[2], 1);
}

__attribute__((constructor)) static void lc_atfork_lib_init(void) {
    if (pthread_atfork(prepare, parent, child)) abort();
    fill_cache();
}

/* 0: prepare, 1: parent, 2: child handler runs in this process. */
long lc_atfork_lib_calls(int which) { return atomic_load(&calls[which]); }
