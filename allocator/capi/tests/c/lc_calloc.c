/* Issue 8, item 1: calloc must return zeroed memory even when it recycles
 * slabs a thread dirtied and gave back at exit (tests/lifecycle.rs).
 *
 * A thread fills ~3 slabs of 64-byte blocks with 0xAA and frees them, then
 * allocates and frees 8 blocks of 200 bytes, and exits. The main thread then
 * calls calloc(1, 1000) 4000 times (keeping every block) and counts the blocks
 * and bytes that are not zero.
 * Prints "calloc: blocks=4000 nonzero_blocks=N nonzero_bytes=M aa_bytes=K". */
#define _GNU_SOURCE
#include <pthread.h>

#include "lc_common.h"

#define DIRTY 3072 /* three 64 KiB slabs of 64-byte blocks */
#define CALLOCS 4000

static void *dirty(void *arg) {
    (void)arg;
    static void *p[DIRTY];
    for (int i = 0; i < DIRTY; i++) {
        p[i] = malloc(64);
        if (!p[i]) exit(3);
        memset(p[i], 0xAA, 64);
    }
    for (int i = 0; i < DIRTY; i++) free(p[i]);
    void *q[8];
    for (int i = 0; i < 8; i++) {
        q[i] = malloc(200);
        if (!q[i]) exit(3);
        memset(q[i], 0xAA, 200);
    }
    for (int i = 0; i < 8; i++) free(q[i]);
    return NULL;
}

int main(void) {
    require_hakmem();
    pthread_t t;
    if (pthread_create(&t, NULL, dirty, NULL) || pthread_join(t, NULL)) return 3;
    static unsigned char *c[CALLOCS];
    long nonzero_blocks = 0, nonzero_bytes = 0, aa_bytes = 0;
    for (int i = 0; i < CALLOCS; i++) {
        c[i] = calloc(1, 1000);
        if (!c[i]) return 3;
        long bad = 0;
        for (int j = 0; j < 1000; j++) {
            bad += c[i][j] != 0;
            aa_bytes += c[i][j] == 0xAA;
        }
        nonzero_blocks += bad != 0;
        nonzero_bytes += bad;
    }
    for (int i = 0; i < CALLOCS; i++) free(c[i]);
    printf("calloc: blocks=%d nonzero_blocks=%ld nonzero_bytes=%ld aa_bytes=%ld\n", CALLOCS,
           nonzero_blocks, nonzero_bytes, aa_bytes);
    return 0;
}
