/* fork with fork handlers that allocate (issue 8, item 2; tests/lifecycle.rs
 * and tests/torture.rs).
 *
 * usage: lc_fork lib|after MAIN_FORKS FORKERS FORKS_EACH BUSY
 *   lib:   the program is linked against lc_atfork_lib.so, whose handlers
 *          (registered before hakmem's) allocate and free; checks that they
 *          ran once per fork.
 *   after: main registers its own allocating handlers with pthread_atfork,
 *          after hakmem's.
 * The main thread forks MAIN_FORKS times on its own; then FORKERS threads
 * fork FORKS_EACH times each while BUSY threads allocate and free (some frees
 * cross threads). Every child allocates (up to a large block), frees, also
 * frees a block inherited from its parent, and _exit(0)s; an alarm turns a
 * deadlock in a child into a failure. A deadlock in the parent is caught by
 * the test's deadline.
 * Prints "fork: forks=N failed=F prepare=P rss_kb=R" and exits 0 when every
 * child exited 0 (1 otherwise). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "lc_common.h"

#define HANDOFF 64

static atomic_int stop, forks_done, failed;
static _Atomic(void *) handoff[HANDOFF];
static atomic_long after_calls;
/* Atomic slots: see lc_atfork_lib.c (handlers of concurrent forks overlap). */
static _Atomic(void *) after_cache[8];

static void after_prepare(void) {
    for (int i = 0; i < 8; i++) free(atomic_exchange(&after_cache[i], NULL));
    free(malloc(300000));
    atomic_fetch_add(&after_calls, 1);
}

static void after_refill(void) {
    for (int i = 0; i < 8; i++) {
        if (atomic_load(&after_cache[i])) continue;
        void *p = malloc(24 + (size_t)i * 300), *none = NULL;
        if (!p) abort();
        if (!atomic_compare_exchange_strong(&after_cache[i], &none, p)) free(p);
    }
}

static void *busy(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    void *own[64] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = xorshift(&s);
        int k = (int)(r % 64);
        if (own[k]) {
            if (r & (1 << 20))
                free(atomic_exchange(&handoff[(r >> 32) % HANDOFF], own[k]));
            else
                free(own[k]);
            own[k] = NULL;
        } else {
            size_t n = 16 + (r >> 40) % 2000;
            if ((r >> 24) % 300 == 0) n = 200000 + (r >> 50) % 100000;
            own[k] = malloc(n);
            if (!own[k]) abort();
            memset(own[k], 1, n);
        }
    }
    for (int k = 0; k < 64; k++) free(own[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 500; i++) free(malloc((size_t)(i % 700) + 1));
    return NULL;
}

static int child(char *inherited) {
    alarm(20);
    if (memcmp(inherited, "parent", 7)) return 3;
    free(inherited);
    void *p[300];
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i * 13 % 3000) + 1;
        if (i % 100 == 99) n = 300000;
        p[i] = malloc(n);
        if (!p[i]) return 4;
        memset(p[i], 2, n);
    }
    for (int i = 0; i < 300; i++) free(p[i]);
    free(calloc(1, 1 << 20));
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) || pthread_join(t, NULL)) return 5;
    return 0;
}

static void fork_once(void) {
    char *inherited = malloc(64);
    if (!inherited) abort();
    strcpy(inherited, "parent");
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        atomic_fetch_add(&failed, 1);
        free(inherited);
        return;
    }
    if (pid == 0) _exit(child(inherited));
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "fork: a child failed (status 0x%x)\n", status);
        atomic_fetch_add(&failed, 1);
    }
    free(inherited);
    atomic_fetch_add(&forks_done, 1);
}

static int forks_each;

static void *forker(void *arg) {
    (void)arg;
    for (int i = 0; i < forks_each; i++) fork_once();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: lc_fork lib|after MAIN_FORKS FORKERS FORKS_EACH BUSY\n");
        return 2;
    }
    require_hakmem();
    int lib = !strcmp(argv[1], "lib");
    int main_forks = atoi(argv[2]), forkers = atoi(argv[3]), busy_n = atoi(argv[5]);
    forks_each = atoi(argv[4]);
    long (*lib_calls)(int) = (long (*)(int))dlsym(RTLD_DEFAULT, "lc_atfork_lib_calls");
    if (lib && !lib_calls) {
        fprintf(stderr, "fork: lc_atfork_lib.so is not linked\n");
        return 2;
    }
    if (!lib) {
        after_refill();
        if (pthread_atfork(after_prepare, after_refill, after_refill)) return 2;
    }
    for (int i = 0; i < main_forks; i++) fork_once();

    pthread_t b[64], f[64];
    if (busy_n > 64 || forkers > 64) return 2;
    for (int i = 0; i < busy_n; i++)
        if (pthread_create(&b[i], NULL, busy, (void *)(uintptr_t)(i + 1))) return 2;
    for (int i = 0; i < forkers; i++)
        if (pthread_create(&f[i], NULL, forker, NULL)) return 2;
    for (int i = 0; i < forkers; i++) pthread_join(f[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < busy_n; i++) pthread_join(b[i], NULL);
    for (int i = 0; i < HANDOFF; i++) free(atomic_exchange(&handoff[i], NULL));

    int want = main_forks + forkers * forks_each;
    long prepare = lib ? lib_calls(0) : atomic_load(&after_calls);
    long rss = wait_rss_kb(40 * 1024, 3000, NULL);
    printf("fork: forks=%d failed=%d prepare=%ld rss_kb=%ld\n", atomic_load(&forks_done),
           atomic_load(&failed), prepare, rss);
    return atomic_load(&forks_done) == want && !atomic_load(&failed) && prepare == want ? 0 : 1;
}
