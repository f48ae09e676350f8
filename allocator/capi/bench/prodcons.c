/* Cross-thread producer/consumer with bulk frees (scripts/bench_suite.sh row
 * "producer/consumer").
 *
 * The shape of the producer/consumer benchmarks of public allocator suites
 * (xmalloc-test's writer and reader threads): `pairs` producer threads each allocate `blocks` small blocks
 * (16..128 bytes uniform, every byte written), link them into batches of
 * `batch` and pass each batch through a bounded queue (64 batches) to their
 * consumer thread, which frees the whole batch at once: every free is of a
 * block another thread allocated, and they arrive in bulk. Producers stall
 * when their queue is full, so memory stays bounded.
 *
 * Fixed work; "seconds=" is the wall time until every consumer is done.
 *
 * usage: prodcons [blocks] [pairs] [batch]   (defaults 10000000 1 1000) */
#include "bench.h"

#include <pthread.h>
#include <semaphore.h>

#define QUEUE 64

typedef struct block {
    struct block *next;
} block;

typedef struct {
    sem_t free_slots, full_slots;
    block *ring[QUEUE];
    uint64_t seed;
    long freed;
} pair;

static long blocks, batch;

static void *producer(void *arg) {
    pair *q = arg;
    uint64_t r = q->seed;
    size_t tail = 0;
    block *chain = NULL;
    long in_chain = 0;
    for (long i = 0; i < blocks; i++) {
        size_t n = 16 + (size_t)(splitmix64(&r) % 113);
        block *b = bench_malloc(n);
        memset(b, (int)i, n);
        b->next = chain;
        chain = b;
        if (++in_chain == batch || i + 1 == blocks) {
            while (sem_wait(&q->free_slots)) {
            }
            q->ring[tail++ % QUEUE] = chain;
            sem_post(&q->full_slots);
            chain = NULL;
            in_chain = 0;
        }
    }
    while (sem_wait(&q->free_slots)) {
    }
    q->ring[tail % QUEUE] = NULL; /* end of stream */
    sem_post(&q->full_slots);
    return NULL;
}

static void *consumer(void *arg) {
    pair *q = arg;
    size_t head = 0;
    long freed = 0;
    for (;;) {
        while (sem_wait(&q->full_slots)) {
        }
        block *b = q->ring[head++ % QUEUE];
        sem_post(&q->free_slots);
        if (!b) break;
        while (b) {
            block *next = b->next;
            free(b);
            freed++;
            b = next;
        }
    }
    q->freed = freed;
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "prodcons [blocks] [pairs] [batch]";
    blocks = argc > 1 ? bench_arg(argv[1], usage) : 10000000;
    int pairs = argc > 2 ? (int)bench_arg(argv[2], usage) : 1;
    batch = argc > 3 ? bench_arg(argv[3], usage) : 1000;
    bench_print_malloc();
    pair *q = bench_malloc(sizeof *q * (size_t)pairs);
    pthread_t *t = bench_malloc(sizeof *t * 2 * (size_t)pairs);
    for (int i = 0; i < pairs; i++) {
        sem_init(&q[i].free_slots, 0, QUEUE);
        sem_init(&q[i].full_slots, 0, 0);
        q[i].seed = 42 + (uint64_t)i;
    }

    double t0 = bench_now();
    for (int i = 0; i < pairs; i++) {
        if (pthread_create(&t[2 * i], NULL, producer, &q[i])) abort();
        if (pthread_create(&t[2 * i + 1], NULL, consumer, &q[i])) abort();
    }
    for (int i = 0; i < 2 * pairs; i++) pthread_join(t[i], NULL);
    double seconds = bench_now() - t0;

    for (int i = 0; i < pairs; i++) {
        if (q[i].freed != blocks) {
            fprintf(stderr, "prodcons: pair %d freed %ld of %ld blocks\n", i, q[i].freed, blocks);
            return 1;
        }
        sem_destroy(&q[i].free_slots);
        sem_destroy(&q[i].full_slots);
    }
    free(t);
    free(q);
    printf("blocks=%ld pairs=%d batch=%ld\n", blocks, pairs, batch);
    bench_print_seconds(seconds);
    return 0;
}
