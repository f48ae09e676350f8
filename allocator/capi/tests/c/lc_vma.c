/* Many live large blocks (issue 8, item 9; tests/lifecycle.rs).
 *
 * usage: lc_vma BLOCKS SIZE
 * Allocates BLOCKS blocks of SIZE bytes (100,000 of 100 KiB in the test) and
 * writes one byte in each, then starts and joins a thread, frees every block
 * and counts the process's mappings again.
 * Prints "vma: blocks=N failed=F live_maps=M vmsize_kb=V pthread_create=E
 * freed_maps=M2 rss_kb=R"; E is pthread_create's result (0 or an errno). */
#define _GNU_SOURCE
#include <pthread.h>

#include "lc_common.h"

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: lc_vma BLOCKS SIZE\n");
        return 2;
    }
    require_hakmem();
    long n = atol(argv[1]);
    size_t size = (size_t)atol(argv[2]);
    char **p = xmap((size_t)n * sizeof(char *));
    long failed = 0;
    for (long i = 0; i < n; i++) {
        p[i] = malloc(size);
        if (p[i])
            p[i][i % size] = 1;
        else
            failed++;
    }
    long live_maps = maps_count(), vmsize = vmsize_kb();
    pthread_t t;
    int e = pthread_create(&t, NULL, nothing, NULL);
    if (!e) pthread_join(t, NULL);
    for (long i = 0; i < n; i++) free(p[i]);
    xunmap(p, (size_t)n * sizeof(char *));
    printf("vma: blocks=%ld failed=%ld live_maps=%ld vmsize_kb=%ld pthread_create=%d "
           "freed_maps=%ld rss_kb=%ld\n",
           n, failed, live_maps, vmsize, e, maps_count(), rss_kb());
    return 0;
}
