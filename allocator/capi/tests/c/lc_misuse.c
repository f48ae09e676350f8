/* Misuse that must abort with one "hakmem: ..." line naming the pointer
 * (issue 8, items 3, 4 and 11; tests/lifecycle.rs), and a remote-free stress
 * that checks no live block is ever handed out twice.
 *
 * usage: lc_misuse MODE [ARGS]
 * Each misuse mode prints the pointer it misuses as "p=0x..." (flushed) before
 * the misuse. If the process survives the misuse it prints "survived: ..."
 * with what it then saw and exits 0, which the test reports as a failure.
 *   immediate         free(p); free(p)                      (64-byte block)
 *   interleaved       free(p); free(q); free(p)             (another block live)
 *   remote            thread B: free(p); free(q); free(p), p and q main's;
 *                     main waits in pthread_join and, once it returns, writes
 *                     "main: joined" to stderr (it must never get there)
 *   remote_immediate  thread B: free(p); free(p), p main's
 *   large_double      a, p = malloc(200000); free(a); free(p);
 *                     q = malloc(450000) (reuses a's and p's pages); free(p)
 *   large_interior    free() of a pointer 16 bytes into a page of a live 1 MiB
 *                     block, after a fake glibc mmapped-chunk header
 *   small_interior    free(p + 16) of a live 64-byte block
 *   realloc_freed     free(p); realloc(p, 48) (a size p's block would hold)
 *   usable_freed      free(p); malloc_usable_size(p)
 *   remote_stress FREERS BLOCKS
 *                     main allocates BLOCKS blocks (16..512 bytes) in batches
 *                     that FREERS threads free; every pointer malloc returns
 *                     is checked against the set of live ones. Prints
 *                     "stress: blocks=N duplicates=D" and exits 0 iff D == 0. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "lc_common.h"

static void show(const char *name, void *p) {
    printf("%s=%p\n", name, p);
    fflush(stdout);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        exit(3);
    }
    memset(p, 0x11, n);
    return p;
}

static void survived_mallocs(size_t n) {
    void *a = malloc(n), *b = malloc(n), *c = malloc(n), *d = malloc(n);
    printf("survived: next mallocs %p %p %p %p\n", a, b, c, d);
}

static void *remote_p, *remote_q;

static void *remote_frees(void *arg) {
    free(remote_p);
    if (arg) free(remote_q);
    free(remote_p);
    return NULL;
}

/* remote: after the join, count how often 20000 allocations (kept live) give
 * the same block twice; 0 unless the double free corrupted the free list. */
static int remote(int interleaved) {
    void *live = xmalloc(64);
    remote_p = xmalloc(64);
    remote_q = xmalloc(64);
    show("p", remote_p);
    pthread_t t;
    if (pthread_create(&t, NULL, remote_frees, interleaved ? &t : NULL)) return 3;
    pthread_join(t, NULL);
    fprintf(stderr, "main: joined\n");
    enum { N = 20000 };
    static void *got[N];
    long dup = 0;
    for (int i = 0; i < N; i++) {
        got[i] = malloc(64);
        dup += got[i] == remote_p || got[i] == remote_q;
    }
    printf("survived: p or q handed out %ld times in %d mallocs\n", dup, N);
    free(live);
    return 0;
}

/* ---- remote_stress: an open-addressing set of live pointers ---- */

#define SET_BITS 20
#define SET_SIZE (1u << SET_BITS)
static uintptr_t *set;
static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(uintptr_t p) {
    return (size_t)((p * 0x9E3779B97F4A7C15ull) >> (64 - SET_BITS));
}

/* Inserts p; returns 0 if it was already there (a live block handed out twice). */
static int set_insert(uintptr_t p) {
    size_t i = slot_of(p);
    while (set[i]) {
        if (set[i] == p) return 0;
        i = (i + 1) & (SET_SIZE - 1);
    }
    set[i] = p;
    return 1;
}

/* Removes p (backward-shift deletion); returns 0 if it was not there. */
static int set_remove(uintptr_t p) {
    size_t i = slot_of(p);
    while (set[i] != p) {
        if (!set[i]) return 0;
        i = (i + 1) & (SET_SIZE - 1);
    }
    size_t j = i;
    for (;;) {
        j = (j + 1) & (SET_SIZE - 1);
        if (!set[j]) break;
        size_t home = slot_of(set[j]);
        /* Move set[j] into the hole at i unless its home lies in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            set[i] = set[j];
            i = j;
        }
    }
    set[i] = 0;
    return 1;
}

#define BATCH 64
#define RING 256
static void *ring[RING][BATCH];
static long ring_head, ring_tail;
static int ring_done;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cond = PTHREAD_COND_INITIALIZER;
static atomic_long missing;

static void *freer(void *arg) {
    (void)arg;
    void *batch[BATCH];
    for (;;) {
        pthread_mutex_lock(&ring_lock);
        while (ring_head == ring_tail && !ring_done) pthread_cond_wait(&ring_cond, &ring_lock);
        if (ring_head == ring_tail) {
            pthread_mutex_unlock(&ring_lock);
            return NULL;
        }
        memcpy(batch, ring[ring_head % RING], sizeof batch);
        ring_head++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
        /* Out of the live set first, then freed: malloc may return it now. */
        pthread_mutex_lock(&set_lock);
        for (int i = 0; i < BATCH; i++)
            if (!set_remove((uintptr_t)batch[i])) atomic_fetch_add(&missing, 1);
        pthread_mutex_unlock(&set_lock);
        for (int i = 0; i < BATCH; i++) free(batch[i]);
    }
}

static int remote_stress(int freers, long blocks) {
    set = xmap(SET_SIZE * sizeof *set);
    pthread_t t[16];
    if (freers < 1 || freers > 16) return 2;
    for (int i = 0; i < freers; i++)
        if (pthread_create(&t[i], NULL, freer, NULL)) return 3;
    uint64_t s = 0x5eed;
    long dup = 0, made = 0;
    /* Some blocks stay with main for a while, freed locally later. */
    static void *kept[4096];
    while (made < blocks) {
        void *batch[BATCH];
        for (int i = 0; i < BATCH; i++) {
            size_t n = 16 + (size_t)(xorshift(&s) % 497);
            void *p = xmalloc(n);
            pthread_mutex_lock(&set_lock);
            int fresh = set_insert((uintptr_t)p);
            pthread_mutex_unlock(&set_lock);
            if (!fresh) {
                if (dup++ < 5) fprintf(stderr, "stress: live block %p handed out again\n", p);
            }
            size_t k = (size_t)(xorshift(&s) % 4096);
            if (i % 4 == 0) {
                void *old = kept[k];
                kept[k] = p;
                p = old;
                if (p) {
                    pthread_mutex_lock(&set_lock);
                    if (!set_remove((uintptr_t)p)) atomic_fetch_add(&missing, 1);
                    pthread_mutex_unlock(&set_lock);
                    free(p);
                }
                p = xmalloc(16);
                pthread_mutex_lock(&set_lock);
                if (!set_insert((uintptr_t)p) && dup++ < 5)
                    fprintf(stderr, "stress: live block %p handed out again\n", p);
                pthread_mutex_unlock(&set_lock);
            }
            batch[i] = p;
        }
        made += BATCH;
        pthread_mutex_lock(&ring_lock);
        while (ring_tail - ring_head == RING) pthread_cond_wait(&ring_cond, &ring_lock);
        memcpy(ring[ring_tail % RING], batch, sizeof batch);
        ring_tail++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
    }
    pthread_mutex_lock(&ring_lock);
    ring_done = 1;
    pthread_cond_broadcast(&ring_cond);
    pthread_mutex_unlock(&ring_lock);
    for (int i = 0; i < freers; i++) pthread_join(t[i], NULL);
    for (int k = 0; k < 4096; k++) free(kept[k]);
    printf("stress: blocks=%ld duplicates=%ld missing=%ld\n", made, dup, atomic_load(&missing));
    return dup || atomic_load(&missing) ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lc_misuse MODE [ARGS]\n");
        return 2;
    }
    require_hakmem();
    const char *m = argv[1];
    if (!strcmp(m, "immediate")) {
        void *live = xmalloc(64), *p = xmalloc(64);
        show("p", p);
        free(p);
        free(p);
        survived_mallocs(64);
        free(live);
    } else if (!strcmp(m, "interleaved")) {
        void *live = xmalloc(64), *p = xmalloc(64), *q = xmalloc(64);
        show("p", p);
        free(p);
        free(q);
        free(p);
        survived_mallocs(64);
        free(live);
    } else if (!strcmp(m, "remote")) {
        return remote(1);
    } else if (!strcmp(m, "remote_immediate")) {
        return remote(0);
    } else if (!strcmp(m, "large_double")) {
        /* Two neighbouring large blocks are freed; a bigger block then reuses
         * their memory from a's start, so p is no block start any more: the
         * second free(p) hits the inside of q. (Should q start at p itself,
         * p would be live again and the check could not be made.) */
        void *a = xmalloc(200000);
        void *p = xmalloc(200000);
        free(a);
        free(p);
        void *q = xmalloc(450000);
        if (q == p) return 3;
        memset(q, 0x22, 450000);
        show("q", q);
        show("p", p);
        free(p);
        unsigned char *c = q;
        long bad = 0;
        for (size_t i = 0; i < 450000; i++) bad += c[i] != 0x22;
        printf("survived: q has %ld changed bytes\n", bad);
        free(q);
    } else if (!strcmp(m, "large_interior")) {
        unsigned char *p = xmalloc(1 << 20);
        uintptr_t page = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
        unsigned char *chunk = (unsigned char *)page + 2 * 4096;
        /* glibc's chunk header: prev_size 0, size 4096 | IS_MMAPPED. */
        ((size_t *)chunk)[0] = 0;
        ((size_t *)chunk)[1] = 0x1002;
        void *interior = chunk + 16;
        show("p", interior);
        free(interior);
        long sum = 0;
        for (size_t i = 0; i < (1 << 20); i += 4096) sum += p[i];
        printf("survived: block still readable (sum %ld)\n", sum);
        free(p);
    } else if (!strcmp(m, "small_interior")) {
        unsigned char *p = xmalloc(64);
        show("p", p + 16);
        free(p + 16);
        printf("survived\n");
    } else if (!strcmp(m, "realloc_freed")) {
        void *live = xmalloc(64), *p = xmalloc(64);
        show("p", p);
        free(p);
        void *r = realloc(p, 48);
        printf("survived: realloc returned %p\n", r);
        free(live);
    } else if (!strcmp(m, "usable_freed")) {
        void *live = xmalloc(64), *p = xmalloc(64);
        show("p", p);
        free(p);
        size_t n = malloc_usable_size(p);
        printf("survived: malloc_usable_size returned %zu\n", n);
        free(live);
    } else if (!strcmp(m, "remote_stress") && argc == 4) {
        return remote_stress(atoi(argv[2]), atol(argv[3]));
    } else {
        fprintf(stderr, "lc_misuse: unknown mode %s\n", m);
        return 2;
    }
    fflush(stdout);
    return 0;
}
