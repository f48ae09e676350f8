/* Many-thread churn with cross-thread transfers (scripts/bench_suite.sh row
 * "32-thread churn").
 *
 * The shape of xmalloc-test (mimalloc-bench's "xmalloc-testN": threads that
 * allocate blocks other threads free), as fixed work with thread churn:
 * `rounds` times, `threads` fresh threads are started and joined. Each makes
 * `allocs` allocations of mixed sizes (75% 16..128 bytes, 20% 129..1024, 5%
 * 1025..8192; first and last byte written). Half of them it frees itself,
 * oldest first, once 128 are held; the other half it links into batches of 32
 * and hands each batch to the next of the other threads in turn, through that
 * thread's mailbox (a lock-free stack the owner empties in one exchange).
 * Every 64 allocations, and at its start and end, a thread frees what its
 * mailbox holds. Batches that arrive after a thread ended wait for the thread
 * that takes its place next round, so blocks are freed by threads other than
 * their allocating one, some of which have exited.
 *
 * Fixed work; "seconds=" is the wall time of all rounds and of the final
 * emptying of the mailboxes.
 *
 * usage: xchurn [threads] [rounds] [allocs]   (defaults 32 20 20000) */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>

#define BATCH 32
#define KEEP 128
#define DRAIN_EVERY 64

typedef struct block {
    struct block *next;
} block;

typedef struct {
    _Alignas(128) _Atomic(block *) head;
} mailbox;

static int threads;
static long rounds, allocs;
static mailbox *boxes;

static void drain(mailbox *m) {
    block *b = atomic_exchange_explicit(&m->head, NULL, memory_order_acquire);
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

static void send(mailbox *m, block *first, block *last) {
    block *old = atomic_load_explicit(&m->head, memory_order_relaxed);
    do {
        last->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&m->head, &old, first, memory_order_release,
                                                    memory_order_relaxed));
}

static size_t pick_size(uint64_t *r) {
    uint64_t x = splitmix64(r);
    unsigned class = (unsigned)(x % 100);
    x >>= 8;
    if (class < 75) return 16 + (size_t)(x % 113);
    if (class < 95) return 129 + (size_t)(x % 896);
    return 1025 + (size_t)(x % 7168);
}

typedef struct {
    int index;
    long round;
} task;

static void *worker(void *arg) {
    task *t = arg;
    int me = t->index, others = threads - 1, next = 0;
    uint64_t r = ((uint64_t)t->round << 32) ^ (uint64_t)me ^ 0x5eedull;
    block *keep[KEEP];
    size_t held = 0, oldest = 0;
    block *first = NULL, *last = NULL;
    int batched = 0;
    drain(&boxes[me]);
    for (long i = 0; i < allocs; i++) {
        size_t n = pick_size(&r);
        block *b = bench_malloc(n);
        ((unsigned char *)b)[n - 1] = (unsigned char)i;
        b->next = NULL;
        if (others == 0 || splitmix64(&r) & 1) {
            if (held == KEEP) {
                free(keep[oldest]);
                keep[oldest] = b;
                oldest = (oldest + 1) % KEEP;
            } else {
                keep[held++] = b;
            }
        } else {
            if (!first) last = b;
            b->next = first;
            first = b;
            if (++batched == BATCH) {
                send(&boxes[(me + 1 + next) % threads], first, last);
                next = (next + 1) % others;
                first = last = NULL;
                batched = 0;
            }
        }
        if (i % DRAIN_EVERY == DRAIN_EVERY - 1) drain(&boxes[me]);
    }
    if (first) send(&boxes[(me + 1 + next) % threads], first, last);
    for (size_t k = 0; k < held; k++) free(keep[k]);
    drain(&boxes[me]);
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "xchurn [threads] [rounds] [allocs]";
    threads = argc > 1 ? (int)bench_arg(argv[1], usage) : 32;
    rounds = argc > 2 ? bench_arg(argv[2], usage) : 20;
    allocs = argc > 3 ? bench_arg(argv[3], usage) : 20000;
    bench_print_malloc();
    boxes = aligned_alloc(128, sizeof *boxes * (size_t)threads);
    pthread_t *t = bench_malloc(sizeof *t * (size_t)threads);
    task *tasks = bench_malloc(sizeof *tasks * (size_t)threads);
    if (!boxes) abort();
    for (int i = 0; i < threads; i++) atomic_init(&boxes[i].head, NULL);

    double t0 = bench_now();
    for (long round = 0; round < rounds; round++) {
        for (int i = 0; i < threads; i++) {
            tasks[i] = (task){i, round};
            if (pthread_create(&t[i], NULL, worker, &tasks[i])) abort();
        }
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    for (int i = 0; i < threads; i++) drain(&boxes[i]);
    double seconds = bench_now() - t0;

    free(tasks);
    free(t);
    free(boxes);
    printf("threads=%d rounds=%ld allocs=%ld\n", threads, rounds, allocs);
    bench_print_seconds(seconds);
    return 0;
}
