/* fork from a multi-threaded process on libhakmem.so (tests/stress.rs).
 *
 * usage: fork FORKS
 * 8 threads allocate and free without pause (some frees cross threads) while
 * the main thread forks FORKS times. Each child, which has only the forking
 * thread, allocates, frees (also blocks inherited from the parent), starts a
 * thread that does the same, and exits 0; an alarm turns a deadlock into a
 * failure. Prints "fork: ok" and exits 0 when every child exited 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUSY 8
#define HANDOFF 64

static atomic_int stop;
static _Atomic(void *) handoff[HANDOFF];
static void *inherited[16];

static void *busy(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    void *own[64] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        int k = (int)(s % 64);
        if (own[k]) {
            if (s & (1 << 20)) {
                free(atomic_exchange(&handoff[(s >> 32) % HANDOFF], own[k]));
            } else {
                free(own[k]);
            }
            own[k] = NULL;
        } else {
            size_t n = 16 + (s >> 40) % 2000;
            if ((s >> 24) % 200 == 0) n = 300000; /* the large path too */
            own[k] = malloc(n);
            memset(own[k], 1, n);
        }
    }
    for (int k = 0; k < 64; k++) free(own[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) free(malloc((size_t)(i % 700) + 1));
    return NULL;
}

static int child(void) {
    alarm(20);
    for (int i = 0; i < 16; i++) {
        if (memcmp(inherited[i], "parent", 7)) return 3;
        free(inherited[i]);
    }
    void *p[500];
    for (int i = 0; i < 500; i++) {
        p[i] = malloc((size_t)(i * 13 % 3000) + 1);
        if (!p[i]) return 4;
        memset(p[i], 2, (size_t)(i * 13 % 3000) + 1);
    }
    for (int i = 0; i < 500; i++) free(p[i]);
    void *big = calloc(1, 1 << 20);
    free(big);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) || pthread_join(t, NULL)) return 5;
    return 0;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t t[BUSY];
    for (int i = 0; i < BUSY; i++) pthread_create(&t[i], NULL, busy, (void *)(uintptr_t)(i + 1));
    int failed = 0;
    for (int f = 0; f < forks; f++) {
        for (int i = 0; i < 16; i++) {
            inherited[i] = malloc((size_t)(i * 100) + 8);
            strcpy(inherited[i], "parent");
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) exit(child());
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "fork: child %d failed (status 0x%x)\n", f, status);
            failed++;
        }
        for (int i = 0; i < 16; i++) free(inherited[i]);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < HANDOFF; i++) free(atomic_exchange(&handoff[i], NULL));
    if (failed) return 1;
    printf("fork: ok\n");
    return 0;
}
