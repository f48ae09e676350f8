/* The heap slow paths under how processes live (issue 9; tests/slow_paths.rs):
 * the owner's lock entry without an atomic against the threads that lock its
 * heap (the release thread's pass over idle heaps, fork's prepare handler),
 * full slabs coming back to allocation, and the release pass an allocating
 * thread runs itself.
 *
 * usage: lc_slowpath owners ROUNDS
 *        lc_slowpath single_return LIMIT_KB DEADLINE_MS
 *
 *   owners         4 workers, replaced by fresh threads every round (thread
 *                  churn: a successor frees its predecessor's blocks), each
 *                  replacing random slots of 8..2000 bytes in its own array
 *                  (slabs fill up and come back at random, both slow paths
 *                  all the time), handing every 16th block to the next
 *                  worker's exchange slots (remote frees), idling 1.2 s once
 *                  per round (each worker at another point) so that the
 *                  release thread's pass takes its caches and parks its
 *                  inbox while the others go on. Main forks every
 *                  50 ms meanwhile; each child allocates, frees a block it
 *                  inherited and exits. Every block carries a stamp of its
 *                  address and size in its first and last 8 bytes, checked
 *                  before it is freed: a block handed out twice, or freed
 *                  into the wrong list, breaks a stamp. Prints
 *                  "owners: rounds=R ops=N forks=F failed=C corrupt=K".
 *   single_return  one thread (no release thread): 60 MiB of 512 KiB blocks,
 *                  all freed (they stay in the large cache, which only the
 *                  release pass decays), then small allocations of mixed
 *                  sizes (slow paths, and the pass they run now and then)
 *                  until VmRSS is at most LIMIT_KB or DEADLINE_MS have
 *                  passed. Prints "single_return: before_kb=B after_kb=A
 *                  after_ms=T".
 * The bookkeeping arrays are mmap'ed, not malloc'ed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "lc_common.h"

#define WORKERS 4
#define SLOTS 4096
#define EXCHANGE 256
#define OPS_PER_ROUND 150000

typedef struct {
    unsigned char **slot;
    size_t *size;
    uint64_t rng;
} array;

static array arrays[WORKERS];
static _Atomic(unsigned char *) exchange[WORKERS][EXCHANGE];
static atomic_long ops, corrupt;
static atomic_int stop;

static uint64_t stamp(const unsigned char *p, size_t n) {
    return ((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15u) ^ n;
}

static unsigned char *make(size_t n) {
    unsigned char *p = malloc(n);
    if (!p) abort();
    uint64_t s = stamp(p, n);
    memcpy(p, &s, 8);
    memcpy(p + n - 8, &s, 8);
    return p;
}

static void check_and_free(unsigned char *p, size_t n) {
    uint64_t s = stamp(p, n), a, b;
    memcpy(&a, p, 8);
    memcpy(&b, p + n - 8, 8);
    if (a != s || b != s) atomic_fetch_add(&corrupt, 1);
    free(p);
}

/* Checks and frees a block `hand_over` left in an exchange slot (or none). */
static void free_handed(unsigned char *p) {
    if (!p) return;
    size_t n;
    uint64_t s;
    memcpy(&n, p, sizeof n);
    memcpy(&s, p + n - 8, 8);
    if (s != stamp(p, n)) atomic_fetch_add(&corrupt, 1);
    free(p);
}

/* A block handed to another worker carries its size in the stamp's place. */
static void hand_over(int to, unsigned char *p, size_t n) {
    uint64_t s = stamp(p, n);
    memcpy(p, &n, sizeof n);
    memcpy(p + n - 8, &s, 8);
    free_handed(atomic_exchange(&exchange[to][(size_t)(uintptr_t)p % EXCHANGE], p));
}

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg;
    array *a = &arrays[w];
    /* Each worker idles at another point of its round, so the others go on
     * (and free into its heap) while the release thread finds it idle. */
    long idle_at = OPS_PER_ROUND / (WORKERS + 1) * (w + 1);
    for (long i = 0; i < OPS_PER_ROUND; i++) {
        if (i == idle_at) sleep_ms(1200);
        uint64_t x = xorshift(&a->rng);
        size_t k = x % SLOTS;
        if (a->slot[k]) {
            if ((x >> 20) % 16 == 0)
                hand_over((w + 1) % WORKERS, a->slot[k], a->size[k]);
            else
                check_and_free(a->slot[k], a->size[k]);
        }
        size_t n = 16 + (x >> 32) % 1985;
        a->slot[k] = make(n);
        a->size[k] = n;
    }
    atomic_fetch_add(&ops, OPS_PER_ROUND);
    return NULL;
}

static void *forker(void *arg) {
    long *forks = arg;
    while (!atomic_load(&stop)) {
        sleep_ms(50);
        unsigned char *inherited = make(100);
        pid_t c = fork();
        if (c == 0) {
            alarm(10);
            for (int i = 0; i < 64; i++) free(make(24 + (size_t)i * 40));
            check_and_free(inherited, 100);
            _exit(atomic_load(&corrupt) ? 3 : 0);
        }
        int st;
        if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) forks[1]++;
        forks[0]++;
        check_and_free(inherited, 100);
    }
    return NULL;
}

static int owners(int rounds) {
    for (int w = 0; w < WORKERS; w++) {
        arrays[w].slot = xmap(SLOTS * sizeof *arrays[w].slot);
        arrays[w].size = xmap(SLOTS * sizeof *arrays[w].size);
        arrays[w].rng = 0x1234567u + (uint64_t)w * 7919;
    }
    long forks[2] = {0, 0};
    pthread_t f;
    if (pthread_create(&f, NULL, forker, forks)) abort();
    for (int r = 0; r < rounds; r++) {
        pthread_t t[WORKERS];
        for (int w = 0; w < WORKERS; w++)
            if (pthread_create(&t[w], NULL, worker, (void *)(intptr_t)w)) abort();
        for (int w = 0; w < WORKERS; w++) pthread_join(t[w], NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(f, NULL);
    for (int w = 0; w < WORKERS; w++) {
        for (size_t k = 0; k < SLOTS; k++)
            if (arrays[w].slot[k]) check_and_free(arrays[w].slot[k], arrays[w].size[k]);
        for (size_t e = 0; e < EXCHANGE; e++) free_handed(atomic_exchange(&exchange[w][e], NULL));
    }
    printf("owners: rounds=%d ops=%ld forks=%ld failed=%ld corrupt=%ld\n", rounds,
           atomic_load(&ops), forks[0], forks[1], atomic_load(&corrupt));
    return 0;
}

static int single_return(long limit_kb, long deadline_ms) {
    enum { BLOCKS = 120, SIZE = 512 * 1024 };
    void *big[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        big[i] = malloc(SIZE);
        if (!big[i]) abort();
        memset(big[i], 1, SIZE);
    }
    for (int i = 0; i < BLOCKS; i++) free(big[i]);
    long before = rss_kb(), start = now_ms(), rss = before;
    void *small[4096];
    uint64_t r = 99;
    while ((rss = rss_kb()) > limit_kb && now_ms() - start < deadline_ms) {
        for (int i = 0; i < 4096; i++) small[i] = malloc(16 + xorshift(&r) % 3000);
        for (int i = 0; i < 4096; i++) free(small[i]);
        sleep_ms(20);
    }
    printf("single_return: before_kb=%ld after_kb=%ld after_ms=%ld\n", before, rss,
           now_ms() - start);
    return 0;
}

int main(int argc, char **argv) {
    require_hakmem();
    if (argc == 3 && !strcmp(argv[1], "owners")) return owners(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "single_return"))
        return single_return(atol(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: lc_slowpath owners ROUNDS | single_return LIMIT_KB DEADLINE_MS\n");
    return 2;
}
