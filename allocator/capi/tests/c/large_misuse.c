/* Misuse of large blocks through the C ABI (tests/conformance.rs): a pointer
 * into hakmem's memory that is no live block must end in hakmem's abort with a
 * `hakmem:` line, never reach glibc's free (which, given crafted bytes before
 * the pointer, would unmap or corrupt memory).
 *
 * Usage: large_misuse MODE, MODE one of
 *   interior-run    a pointer into the third chunk of an 8 MiB block, after
 *                   bytes crafted to look like a glibc mmapped chunk;
 *   interior-page   the same inside a 300,000-byte block;
 *   double-reused   a 100 KiB block freed twice, its pages reused meanwhile by
 *                   a 200 KiB block that starts at another offset;
 *   double-evicted  an 8 MiB block freed twice, its memory gone back to
 *                   hakmem's arena meanwhile.
 * Prints "survived" and exits 0 if the bad free returned. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes the 16 bytes before q look like a glibc chunk header of an mmapped
 * chunk (prev_size, size | IS_MMAPPED). */
static void craft(unsigned char *q) {
    size_t hdr[2] = {0, (size_t)(1 << 20) | 2};
    memcpy(q - sizeof hdr, hdr, sizeof hdr);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "interior-run")) {
        unsigned char *p = malloc(8 << 20);
        unsigned char *q = p + (5 << 20);
        craft(q);
        free(q);
    } else if (!strcmp(mode, "interior-page")) {
        unsigned char *p = malloc(300000);
        unsigned char *q = p + 65536;
        craft(q);
        free(q);
    } else if (!strcmp(mode, "double-reused")) {
        unsigned char *a = malloc(100 << 10);
        unsigned char *b = malloc(100 << 10);
        unsigned char *c = malloc(100 << 10);
        free(b);
        free(a);
        unsigned char *d = malloc(200 << 10);
        if (!(d < b && b < d + (200 << 10))) {
            printf("precondition failed: a %p b %p c %p d %p\n", (void *)a, (void *)b, (void *)c,
                   (void *)d);
            return 3;
        }
        memset(d, 0x5a, 200 << 10);
        free(b);
    } else if (!strcmp(mode, "double-evicted")) {
        unsigned char *p = malloc(8 << 20);
        memset(p, 1, 8 << 20);
        free(p);
        /* Enough other big blocks freed to push p's run out of any cache. */
        void *q[8];
        for (int i = 0; i < 8; i++) q[i] = malloc(8 << 20);
        for (int i = 0; i < 8; i++) free(q[i]);
        free(p);
    } else {
        fprintf(stderr, "large_misuse: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("survived\n");
    return 0;
}
