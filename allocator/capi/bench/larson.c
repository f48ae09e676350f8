/* Server simulation with thread churn (scripts/bench_suite.sh rows "server
 * with thread churn" and "... sized free").
 *
 * The shape of the Larson & Krishnan server benchmark ("larson" and
 * "larson-sized" in mimalloc-bench): each of `threads` workers owns an array of
 * `slots` blocks; one replacement picks a random slot, frees its block and
 * puts a fresh one of a random size in [min, max] there (first and last byte
 * written). After `replacements` of them the worker starts a successor thread
 * on the same array and exits, so the successor frees blocks that a thread
 * which no longer exists allocated; each chain runs `generations` threads.
 * The arrays are filled by the main thread before the clock starts (Larson's
 * warm-up), so the first generation frees blocks of yet another thread.
 *
 * Unlike Larson, the work is fixed (threads x generations x replacements),
 * not the time: "seconds=" is the wall time from the first worker's start to
 * the last chain's end. With -z, blocks are released with their size: the
 * sized free of the preloaded library (see bench.h; the C counterpart of
 * larson-sized's sized operator delete), printed as "free_sized=<function>".
 *
 * usage: larson [-z] [-t threads] [-g generations] [-n replacements]
 *               [-c slots] [-m min] [-M max]
 *        (defaults: 2 threads, 20 generations, 100000 replacements,
 *         5000 slots, sizes 8..1000) */
#include "bench.h"

#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

typedef struct {
    void **slot;
    size_t *size;
    uint64_t rng;
    long generations_left;
} chain;

static struct {
    int threads, sized;
    long generations, replacements;
    size_t slots, min, max;
} cfg = {2, 0, 20, 100000, 5000, 8, 1000};

static bench_sized_free_fn sized_free;
static sem_t done;

static void *worker(void *arg) {
    chain *c = arg;
    size_t span = cfg.max - cfg.min + 1;
    /* A local copy: the chains share a cache line, and a generator advanced
     * in place there made the two threads' every operation fight over it. */
    uint64_t rng = c->rng;
    for (long i = 0; i < cfg.replacements; i++) {
        size_t k = (size_t)(splitmix64(&rng) % cfg.slots);
        if (cfg.sized)
            sized_free(c->slot[k], c->size[k]);
        else
            free(c->slot[k]);
        size_t n = cfg.min + (size_t)(splitmix64(&rng) % span);
        unsigned char *p = bench_malloc(n);
        p[0] = (unsigned char)k;
        p[n - 1] = (unsigned char)k;
        c->slot[k] = p;
        c->size[k] = n;
    }
    c->rng = rng;
    if (--c->generations_left > 0) {
        /* Larson's churn: the successor is started by the thread that exits. */
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker, c)) abort();
        pthread_attr_destroy(&attr);
    } else {
        sem_post(&done);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "larson [-z] [-t threads] [-g generations] [-n replacements] [-c slots] "
                        "[-m min] [-M max]";
    int opt;
    while ((opt = getopt(argc, argv, "zt:g:n:c:m:M:")) != -1) {
        switch (opt) {
        case 'z': cfg.sized = 1; break;
        case 't': cfg.threads = (int)bench_arg(optarg, usage); break;
        case 'g': cfg.generations = bench_arg(optarg, usage); break;
        case 'n': cfg.replacements = bench_arg(optarg, usage); break;
        case 'c': cfg.slots = (size_t)bench_arg(optarg, usage); break;
        case 'm': cfg.min = (size_t)bench_arg(optarg, usage); break;
        case 'M': cfg.max = (size_t)bench_arg(optarg, usage); break;
        default: fprintf(stderr, "usage: %s\n", usage); return 2;
        }
    }
    if (cfg.min > cfg.max) {
        fprintf(stderr, "larson: min > max\n");
        return 2;
    }
    bench_print_malloc();
    const char *free_name = "free";
    if (cfg.sized) {
        sized_free = bench_sized_free(&free_name);
        printf("free_sized=%s\n", free_name);
    }

    /* Larson's warm-up, not timed: the main thread fills every array. */
    uint64_t seed = 4141;
    chain *chains = bench_malloc(sizeof *chains * (size_t)cfg.threads);
    size_t span = cfg.max - cfg.min + 1;
    for (int i = 0; i < cfg.threads; i++) {
        chain *c = &chains[i];
        c->slot = bench_malloc(sizeof *c->slot * cfg.slots);
        c->size = bench_malloc(sizeof *c->size * cfg.slots);
        c->rng = splitmix64(&seed);
        c->generations_left = cfg.generations;
        for (size_t k = 0; k < cfg.slots; k++) {
            c->size[k] = cfg.min + (size_t)(splitmix64(&seed) % span);
            c->slot[k] = bench_malloc(c->size[k]);
            memset(c->slot[k], 1, c->size[k]);
        }
    }
    sem_init(&done, 0, 0);

    double t0 = bench_now();
    for (int i = 0; i < cfg.threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, &chains[i])) abort();
        pthread_detach(t);
    }
    for (int i = 0; i < cfg.threads; i++)
        while (sem_wait(&done)) {
        }
    double seconds = bench_now() - t0;

    for (int i = 0; i < cfg.threads; i++) {
        for (size_t k = 0; k < cfg.slots; k++) free(chains[i].slot[k]);
        free(chains[i].slot);
        free(chains[i].size);
    }
    free(chains);
    printf("threads=%d generations=%ld replacements=%ld slots=%zu sizes=%zu..%zu\n", cfg.threads,
           cfg.generations, cfg.replacements, cfg.slots, cfg.min, cfg.max);
    bench_print_seconds(seconds);
    return 0;
}
