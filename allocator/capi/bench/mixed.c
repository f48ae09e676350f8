/* SPEC section 4's mixed tiny workload in C, for comparing malloc
 * implementations under LD_PRELOAD (scripts/bench_preload.sh).
 *
 * A port of workload/src/lib.rs, operation for operation, so figures compare
 * with the Rust benchmarks: per worker thread `working_set` slots and a
 * SplitMix64 PRNG seeded with seed + thread index. Each step draws r; slot
 * k = r % working_set; a full slot is freed, an empty one gets malloc(size),
 * size uniform in [min, max] (one more draw), first and last byte written.
 * With remote_free_ratio > 0 a free draws once more and that share of frees is
 * handed, round robin, to another worker's lock-free inbox (a bounded MPSC
 * ring); workers drain their inbox every 512 steps and count those frees.
 * Every malloc and every free is one operation.
 *
 * usage: mixed [-t threads] [-d seconds] [-r remote_free_ratio]
 *              [-w working_set] [-m min_size] [-M max_size] [-s seed]
 * Prints "malloc=<library serving malloc>", "ops_per_sec=<n>" (wall clock, the
 * definition) and "ops_per_cpu_sec=<n>" (ops * threads / process CPU time: what
 * the threads would do with a core each, steadier on a shared machine, since
 * workers never block). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PUBLISH_EVERY 512
#define INBOX_CAPACITY 4096

/* D. Vyukov's bounded MPMC queue, used with a single consumer. */
typedef struct {
    _Atomic size_t seq;
    void *ptr;
} cell;

typedef struct {
    _Alignas(128) _Atomic size_t tail;
    _Alignas(128) size_t head;
    cell *cells;
    size_t mask;
    _Alignas(128) _Atomic uint64_t ops;
    double end; /* when the worker stopped; read after join */
} worker_state;

static struct {
    int threads;
    double seconds, remote;
    uint64_t working_set, min, max, seed;
} cfg = {1, 1.0, 0.0, 400, 16, 1024, 0x5eed4a4b6d656d00ull};

static worker_state *workers;
static atomic_int stop;

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double unit(uint64_t r) { return (double)(r >> 11) * (1.0 / (double)(1ull << 53)); }

static int push(worker_state *w, void *p) {
    size_t pos = atomic_load_explicit(&w->tail, memory_order_relaxed);
    for (;;) {
        cell *c = &w->cells[pos & w->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&w->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->ptr = p;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return 1;
            }
        } else if (diff < 0) {
            return 0; /* full: the sender frees it itself */
        } else {
            pos = atomic_load_explicit(&w->tail, memory_order_relaxed);
        }
    }
}

static void *pop(worker_state *w) {
    cell *c = &w->cells[w->head & w->mask];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != w->head + 1) return NULL;
    void *p = c->ptr;
    atomic_store_explicit(&c->seq, w->head + w->mask + 1, memory_order_release);
    w->head++;
    return p;
}

static double clock_s(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static void *worker(void *arg) {
    size_t idx = (size_t)(uintptr_t)arg;
    worker_state *me = &workers[idx];
    uint64_t rng = cfg.seed + idx;
    uint64_t ws = cfg.working_set, span = cfg.max - cfg.min + 1;
    int remote = cfg.remote > 0.0 && cfg.threads > 1;
    size_t others = (size_t)cfg.threads - 1, next_target = 0;
    void **slots = calloc(ws, sizeof *slots);
    uint64_t ops = 0;
    for (;;) {
        for (int i = 0; i < PUBLISH_EVERY; i++) {
            size_t k = (size_t)(splitmix64(&rng) % ws);
            void *b = slots[k];
            if (b) {
                slots[k] = NULL;
                if (remote && unit(splitmix64(&rng)) < cfg.remote) {
                    size_t target = (idx + 1 + next_target) % (size_t)cfg.threads;
                    next_target = (next_target + 1) % others;
                    if (!push(&workers[target], b)) {
                        free(b);
                        ops++;
                    }
                } else {
                    free(b);
                    ops++;
                }
            } else {
                size_t size = (size_t)(cfg.min + splitmix64(&rng) % span);
                unsigned char *p = malloc(size);
                if (!p) abort();
                p[0] = (unsigned char)k;
                p[size - 1] = (unsigned char)k;
                slots[k] = p;
                ops++;
            }
        }
        if (remote) {
            void *b;
            while ((b = pop(me))) {
                free(b);
                ops++;
            }
        }
        atomic_store_explicit(&me->ops, ops, memory_order_relaxed);
        if (atomic_load_explicit(&stop, memory_order_relaxed)) break;
    }
    me->end = now();
    /* Not timed nor counted: what the worker still holds. Inboxes are emptied by main. */
    for (uint64_t k = 0; k < ws; k++) free(slots[k]);
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "t:d:r:w:m:M:s:")) != -1) {
        switch (opt) {
        case 't': cfg.threads = atoi(optarg); break;
        case 'd': cfg.seconds = atof(optarg); break;
        case 'r': cfg.remote = atof(optarg); break;
        case 'w': cfg.working_set = strtoull(optarg, NULL, 0); break;
        case 'm': cfg.min = strtoull(optarg, NULL, 0); break;
        case 'M': cfg.max = strtoull(optarg, NULL, 0); break;
        case 's': cfg.seed = strtoull(optarg, NULL, 0); break;
        default:
            fprintf(stderr, "usage: mixed [-t threads] [-d seconds] [-r remote_free_ratio] "
                            "[-w working_set] [-m min] [-M max] [-s seed]\n");
            return 2;
        }
    }
    if (cfg.threads < 1 || cfg.working_set < 1 || cfg.min < 1 || cfg.min > cfg.max ||
        cfg.remote < 0 || cfg.remote > 1) {
        fprintf(stderr, "mixed: parameters out of range\n");
        return 2;
    }
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    printf("malloc=%s\n", m && dladdr(m, &info) ? info.dli_fname : "?");

    /* Set up before the clock starts, like the Rust harness. */
    workers = aligned_alloc(128, sizeof *workers * (size_t)cfg.threads);
    size_t cap = cfg.threads > 1 ? INBOX_CAPACITY : 1;
    for (int i = 0; i < cfg.threads; i++) {
        worker_state *w = &workers[i];
        atomic_init(&w->tail, 0);
        w->head = 0;
        w->mask = cap - 1;
        w->cells = malloc(cap * sizeof *w->cells);
        for (size_t c = 0; c < cap; c++) atomic_init(&w->cells[c].seq, c);
        atomic_init(&w->ops, 0);
    }
    pthread_t *t = malloc(sizeof *t * (size_t)cfg.threads);

    double cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    double t0 = now();
    for (int i = 0; i < cfg.threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    struct timespec d = {(time_t)cfg.seconds, (long)((cfg.seconds - (double)(time_t)cfg.seconds) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&stop, 1);
    double last = t0;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(t[i], NULL);
        if (workers[i].end > last) last = workers[i].end;
    }
    double elapsed = last - t0;
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;

    uint64_t ops = 0;
    for (int i = 0; i < cfg.threads; i++) {
        void *b;
        while ((b = pop(&workers[i]))) free(b);
        ops += atomic_load(&workers[i].ops);
        free(workers[i].cells);
    }
    free(t);
    free(workers);
    printf("threads=%d remote_free_ratio=%g ops=%llu seconds=%.3f\n", cfg.threads, cfg.remote,
           (unsigned long long)ops, elapsed);
    printf("ops_per_sec=%.0f\n", (double)ops / elapsed);
    printf("ops_per_cpu_sec=%.0f\n", (double)ops * cfg.threads / cpu);
    return 0;
}
