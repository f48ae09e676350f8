/* The misuse suite (tests/misuse.rs, "Misuse suite" in docs/design.md): one
 * kind of heap misuse per run, at one block size, the way a buggy program
 * would do it, and then the program keeps running realistically (it frees
 * what it misused where that makes sense, churns thousands of blocks of the
 * same and other sizes, and exits normally), so that checks which only look
 * later (a quarantine that verifies its zero fill on eviction, canaries
 * checked on free) get their chance.
 *
 * usage: misuse KIND SIZE      one misuse of a block of SIZE bytes
 *        misuse list           prints "KIND<TAB>what it does" per kind
 *
 * Outcomes (the test classifies them; nothing here writes to stderr, so the
 * allocator's `hakmem:` line is all there is):
 *   exit 3, "harmless: ..." on stdout  the program itself established that
 *                                       the misuse had no effect (the secret
 *                                       was gone, calloc returned NULL, ...)
 *   exit 0, "missed: ..."              the misuse went unnoticed
 *   exit 2                             usage error or a precondition failed
 *                                       before the misuse (a bug of the test)
 *   exit 4                             malloc failed after the misuse
 * Death by SIGABRT with a `hakmem:` line is "caught"; any other death
 * "crashed"; the 10 s alarm set at start turns a hang into death by SIGALRM
 * ("hung").
 *
 * Every misuse goes through launder() (an empty asm the compiler cannot see
 * through) and volatile accesses, so that gcc -O2 neither drops it nor warns
 * about it. Sizes are multiples of 8 (the test uses 8, 4096 and 262144). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lc_common.h"

#define MIB ((size_t)1 << 20)
/* "secret!!" as a little-endian word: what a leak would show. */
#define SECRET 0x2121746572636573ull
#define CHURN 5000

static size_t S; /* the block size under test */

/* Hides where a pointer came from, so that gcc can neither fold the misuse
 * away nor warn about it (-Wuse-after-free, -Wfree-nonheap-object, ...). */
static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

static void outcome(const char *what, int code, const char *fmt, va_list ap) {
    printf("%s: ", what);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    exit(code);
}

__attribute__((format(printf, 1, 2), noreturn)) static void missed(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    outcome("missed", 0, fmt, ap);
    va_end(ap);
    exit(0);
}

__attribute__((format(printf, 1, 2), noreturn)) static void harmless(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    outcome("harmless", 3, fmt, ap);
    va_end(ap);
    exit(3);
}

/* A precondition of the test itself failed, before any misuse. */
__attribute__((format(printf, 1, 2), noreturn)) static void broken(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    outcome("precondition failed", 2, fmt, ap);
    va_end(ap);
    exit(2);
}

static unsigned char *xmalloc(size_t n) {
    unsigned char *p = malloc(n);
    if (!p && n) {
        printf("malloc(%zu) failed\n", n);
        fflush(stdout);
        exit(4);
    }
    return p;
}

static void fill(void *p, size_t n, unsigned char byte) { memset(p, byte, n); }

static void fill_secret(void *p, size_t n) {
    volatile uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++) w[i] = SECRET;
}

/* How many aligned words of p[0..n) hold the secret (volatile reads). */
static size_t secret_words(const void *p, size_t n) {
    const volatile uint64_t *w = p;
    size_t found = 0;
    for (size_t i = 0; i < n / 8; i++) found += w[i] == SECRET;
    return found;
}

/* Whether p[0..n) still holds `byte` everywhere. */
static int intact(const unsigned char *p, size_t n, unsigned char byte) {
    const volatile unsigned char *v = p;
    for (size_t i = 0; i < n; i++)
        if (v[i] != byte) return 0;
    return 1;
}

static void touch(unsigned char *q, size_t n) {
    if (!n) return;
    ((volatile unsigned char *)q)[0] = 1;
    ((volatile unsigned char *)q)[n - 1] = 1;
}

/* The program goes on after the misuse: CHURN malloc/free pairs of `size`,
 * batches of 64 live blocks of it, and blocks of other sizes, all freed. */
static void churn(size_t size) {
    for (int i = 0; i < CHURN; i++) {
        unsigned char *q = xmalloc(size);
        touch(q, size);
        free(q);
    }
    unsigned char *live[64];
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 64; i++) {
            live[i] = xmalloc(size);
            touch(live[i], size);
        }
        for (int i = 0; i < 64; i++) free(live[i]);
    }
    static const size_t other[] = {16, 100, 1000, 4096, 20000, 100000, 300000};
    for (size_t k = 0; k < sizeof other / sizeof *other; k++)
        for (int i = 0; i < 200; i++) {
            unsigned char *q = xmalloc(other[k]);
            touch(q, other[k]);
            free(q);
        }
}

/* An offset into a block of S bytes that is no block boundary: the middle,
 * at least 8 (so 8 for S = 8: inside its 16-byte block, 8-aligned). */
static size_t interior(void) { return S / 2 > 8 ? S / 2 : 8; }

/* ---- overflows and underflows ---------------------------------------------- */

/* A block with live neighbours allocated before and after it (so that what
 * lies around it is other objects, not untouched memory); the misuse writes
 * through `p`, then everything is freed and the program churns. */
struct nb {
    unsigned char *before[4], *p, *after[4];
};

static void nb_alloc(struct nb *n) {
    for (int i = 0; i < 4; i++) fill(n->before[i] = xmalloc(S), S, 0x33);
    fill(n->p = xmalloc(S), S, 0x11);
    for (int i = 0; i < 4; i++) fill(n->after[i] = xmalloc(S), S, 0x33);
}

static void nb_free_and_churn(struct nb *n, const char *what) {
    free(n->p);
    for (int i = 0; i < 4; i++) {
        free(n->before[i]);
        free(n->after[i]);
    }
    churn(S);
    missed("%s", what);
}

/* Writes `len` bytes of 0x41 at p + off, byte by byte. */
static void poke(unsigned char *p, ptrdiff_t off, size_t len) {
    volatile unsigned char *v = launder(p);
    for (size_t i = 0; i < len; i++) v[off + (ptrdiff_t)i] = 0x41;
}

static void overflow(size_t by) {
    struct nb n;
    nb_alloc(&n);
    if (by >= MIB)
        memset((unsigned char *)launder(n.p) + S, 0x41, by);
    else
        poke(n.p, (ptrdiff_t)S, by);
    nb_free_and_churn(&n, "wrote past the end, freed, churned");
}

static void underflow(size_t by) {
    struct nb n;
    nb_alloc(&n);
    if (by >= MIB)
        memset((unsigned char *)launder(n.p) - by, 0x41, by);
    else
        poke(n.p, -(ptrdiff_t)by, by);
    nb_free_and_churn(&n, "wrote before the start, freed, churned");
}

/* A source of S + 1 MiB bytes for the memcpy cases (not from malloc). */
static unsigned char *source(void) {
    unsigned char *src = xmap(S + MIB);
    memset(src, 0x41, S + MIB);
    return src;
}

static void memcpy_overflow(size_t by) {
    unsigned char *src = source();
    struct nb n;
    nb_alloc(&n);
    memcpy(launder(n.p), src, S + by);
    nb_free_and_churn(&n, "memcpy past the end, freed, churned");
}

static void memcpy_underflow(size_t by) {
    unsigned char *src = source();
    struct nb n;
    nb_alloc(&n);
    memcpy((unsigned char *)launder(n.p) - by, src, S + by);
    nb_free_and_churn(&n, "memcpy from before the start, freed, churned");
}

static void k_overflow_1(void) { overflow(1); }
static void k_overflow_32(void) { overflow(32); }
static void k_overflow_1m(void) { overflow(MIB); }
static void k_memcpy_overflow_1(void) { memcpy_overflow(1); }
static void k_memcpy_overflow_32(void) { memcpy_overflow(32); }
static void k_memcpy_overflow_1m(void) { memcpy_overflow(MIB); }
static void k_underflow_1(void) { underflow(1); }
static void k_underflow_32(void) { underflow(32); }
static void k_underflow_1m(void) { underflow(MIB); }
static void k_memcpy_underflow_1(void) { memcpy_underflow(1); }
static void k_memcpy_underflow_32(void) { memcpy_underflow(32); }
static void k_memcpy_underflow_1m(void) { memcpy_underflow(MIB); }

/* Reads the 8 bytes just past the end, the neighbours holding the secret:
 * harmless unless they are another object's data (slack, a canary or a
 * guard page that stops the read are not). */
static void k_read_overflow(void) {
    unsigned char *before[16], *after[16];
    for (int i = 0; i < 16; i++) fill_secret(before[i] = xmalloc(S), S);
    unsigned char *p = xmalloc(S);
    fill(p, S, 0x11);
    for (int i = 0; i < 16; i++) fill_secret(after[i] = xmalloc(S), S);
    size_t leaked = secret_words((unsigned char *)launder(p) + S, 8);
    free(p);
    for (int i = 0; i < 16; i++) {
        free(before[i]);
        free(after[i]);
    }
    if (leaked) missed("the 8 bytes past the end are another block's secret");
    harmless("the 8 bytes past the end hold no other block's data");
}

static void aligned_overflow(unsigned char *p, const char *how) {
    if (!p) broken("%s(%zu) returned NULL", how, S);
    fill(p, S, 0x11);
    poke(p, (ptrdiff_t)S, 1);
    free(p);
    churn(S);
    missed("wrote 1 byte past the end of a %s block, freed, churned", how);
}

static void k_memalign_overflow_1(void) { aligned_overflow(memalign(64, S), "memalign"); }

static void k_posix_memalign_overflow_1(void) {
    void *p = NULL;
    if (posix_memalign(&p, 4096, S)) p = NULL;
    aligned_overflow(p, "posix_memalign");
}

/* realloc shrinks the block to S/2; a write at the old size's middle (the
 * new end) must be seen as the overflow it now is. */
static void k_realloc_shrink_overflow(void) {
    unsigned char *p = xmalloc(S);
    fill(p, S, 0x11);
    unsigned char *r = realloc(p, S / 2);
    if (!r) broken("realloc(p, %zu) returned NULL", S / 2);
    poke(r, (ptrdiff_t)(S / 2), 1);
    free(r);
    churn(S);
    missed("wrote 1 byte past the new end of a shrunk block, freed, churned");
}

/* Writes up to malloc_usable_size(p): allowed by its contract. Harmless when
 * it is allowed indeed (no abort, the neighbours intact); missed if it
 * corrupted a neighbour. An abort here is hakmem contradicting its own
 * malloc_usable_size. */
static void k_usable_size_overflow(void) {
    struct nb n;
    nb_alloc(&n);
    size_t u = malloc_usable_size(n.p);
    if (u < S) broken("malloc_usable_size %zu < %zu", u, S);
    memset(launder(n.p), 0x41, u);
    free(n.p);
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        ok &= intact(n.before[i], S, 0x33) & intact(n.after[i], S, 0x33);
        free(n.before[i]);
        free(n.after[i]);
    }
    churn(S);
    if (!ok) missed("writing malloc_usable_size (%zu) bytes corrupted a neighbour", u);
    harmless("wrote malloc_usable_size (%zu) bytes, neighbours intact", u);
}

/* ---- use after free ------------------------------------------------------ */

static void k_use_after_free_read(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    fill_secret(p, S);
    free(p);
    size_t left = secret_words(launder(p), S);
    free(live);
    if (left) missed("%zu of %zu words of the freed block still hold the secret", left, S / 8);
    harmless("the freed block no longer holds the secret");
}

static void k_write_after_free(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    fill(p, S, 0x11);
    free(p);
    memset(launder(p), 0x41, S);
    churn(S);
    free(live);
    missed("wrote all of a freed block, churned");
}

/* Writes the first 8 bytes of a block after 100 other blocks of its size
 * were freed after it (deeper in any quarantine, or reused meanwhile). */
static void k_write_after_free_late(void) {
    unsigned char *others[100];
    unsigned char *p = xmalloc(S);
    fill(p, S, 0x11);
    for (int i = 0; i < 100; i++) fill(others[i] = xmalloc(S), S, 0x22);
    free(p);
    for (int i = 0; i < 100; i++) free(others[i]);
    *(volatile uint64_t *)launder(p) = 0x4141414141414141ull;
    churn(S);
    missed("wrote the first 8 bytes of a block freed 100 frees earlier, churned");
}

/* A freed block is not handed out again by the next 16 mallocs of its size,
 * so a dangling pointer cannot reach a new object at once. */
static void k_reuse_after_free(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    free(p);
    unsigned char *q[16];
    int reused = -1;
    for (int i = 0; i < 16; i++) {
        q[i] = xmalloc(S);
        if (q[i] == launder(p) && reused < 0) reused = i;
    }
    for (int i = 0; i < 16; i++) free(q[i]);
    free(live);
    if (reused >= 0) missed("the freed block came back from malloc number %d after it", reused + 1);
    harmless("no malloc of the next 16 returned the freed block");
}

/* Blocks filled with the secret and freed; after churn, 200 new blocks of
 * the same size must show none of it. */
static void k_zero_on_malloc(void) {
    unsigned char *b[100];
    for (int i = 0; i < 100; i++) fill_secret(b[i] = xmalloc(S), S);
    for (int i = 0; i < 100; i++) free(b[i]);
    churn(S);
    static unsigned char *n[200];
    size_t leaked = 0;
    for (int i = 0; i < 200; i++) leaked += secret_words(n[i] = xmalloc(S), S);
    for (int i = 0; i < 200; i++) free(n[i]);
    if (leaked) missed("new blocks show %zu words of freed blocks' secret", leaked);
    harmless("no new block shows the secret");
}

/* ---- double frees -------------------------------------------------------- */

static void k_double_free(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    free(p);
    free(launder(p));
    churn(S);
    free(live);
    missed("freed a block twice in a row, churned");
}

static void k_double_free_interleaved(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S), *q = xmalloc(S);
    free(p);
    free(q);
    free(launder(p));
    churn(S);
    free(live);
    missed("free(p); free(q); free(p), churned");
}

static void k_double_free_after_churn(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    free(p);
    churn(S);
    free(launder(p));
    churn(S);
    free(live);
    missed("freed a block again after churning its size");
}

static void *free_it(void *p) {
    free(launder(p));
    return NULL;
}

static void k_double_free_cross_thread(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    free(p);
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, p)) broken("pthread_create");
    pthread_join(t, NULL);
    churn(S);
    free(live);
    missed("another thread freed the block again");
}

/* The old pointer of a realloc that moved the block is freed. */
static void k_double_free_after_realloc(void) {
    unsigned char *p = xmalloc(S);
    fill(p, S, 0x11);
    /* A size in another class or kind, so the block must move. */
    size_t grow = S < 65536 ? 8 * S : 8 * MIB;
    unsigned char *q = realloc(p, grow);
    if (!q) broken("realloc(p, %zu) returned NULL", grow);
    if (q == launder(p)) broken("realloc(p, %zu) did not move the block", grow);
    free(launder(p));
    free(q);
    churn(S);
    missed("freed the old pointer of a moved realloc");
}

static void k_realloc_after_free(void) {
    unsigned char *live = xmalloc(S), *p = xmalloc(S);
    free(p);
    unsigned char *r = realloc(launder(p), 2 * S);
    free(r);
    churn(S);
    free(live);
    missed("realloc of a freed block returned %p", (void *)r);
}

/* ---- invalid frees ------------------------------------------------------- */

static void k_free_interior(void) {
    unsigned char *p = xmalloc(S);
    free((unsigned char *)launder(p) + interior());
    free(p);
    churn(S);
    missed("free(p + %zu) returned", interior());
}

static void k_free_unaligned(void) {
    unsigned char *p = xmalloc(S);
    free((unsigned char *)launder(p) + 1);
    free(p);
    churn(S);
    missed("free(p + 1) returned");
}

static void k_realloc_interior(void) {
    unsigned char *p = xmalloc(S);
    unsigned char *r = realloc((unsigned char *)launder(p) + interior(), 2 * S);
    free(r);
    free(p);
    churn(S);
    missed("realloc(p + %zu) returned %p", interior(), (void *)r);
}

/* A pointer into hakmem's memory that no malloc ever returned: 32 bytes into
 * the 2 MiB chunk that holds a live block (hakmem keeps a superslab's header,
 * a page chunk's bitmaps or a large block's header there; never a block). */
static void k_free_never_allocated(void) {
    unsigned char *p = xmalloc(S);
    uintptr_t chunk = (uintptr_t)p & ~(uintptr_t)(2 * MIB - 1);
    if (chunk + 32 == (uintptr_t)p) broken("the block starts 32 bytes into its chunk");
    free(launder((void *)(chunk + 32)));
    free(p);
    churn(S);
    missed("free(%p) (inside hakmem's chunk, never a block) returned", (void *)(chunk + 32));
}

/* The foreign frees: memory that is not the allocator's at all. The 16
 * bytes before the pointer are zero (what a chunk header would be). */
static void foreign_free(unsigned char *mem, const char *what) {
    memset(mem, 0, S + 16);
    free(launder(mem + 16));
    churn(S);
    missed("free() of %s memory returned", what);
}

static void k_free_stack(void) {
    unsigned char frame[S + 32] __attribute__((aligned(16)));
    foreign_free(frame, "stack");
    /* Keep the frame alive past the call. */
    __asm__ volatile("" : : "r"(frame) : "memory");
}

static unsigned char global_block[262144 + 64] __attribute__((aligned(4096)));

static void k_free_global(void) { foreign_free(global_block, "global"); }

static void k_free_mmap(void) {
    /* The pointer is 16 bytes into a fresh mapping (its header bytes mapped
     * and zero), never from malloc. */
    foreign_free(xmap(S + 4096), "mmap'ed");
}

/* ---- zero-size blocks and calloc ------------------------------------------- */

static void k_zero_size_read(void) {
    unsigned char *p = malloc(0);
    if (!p) harmless("malloc(0) returned NULL");
    uint64_t v = *(volatile uint64_t *)launder(p);
    free(p);
    missed("read 8 bytes of a malloc(0) block (%#llx)", (unsigned long long)v);
}

static void k_zero_size_write(void) {
    unsigned char *p = malloc(0);
    if (!p) harmless("malloc(0) returned NULL");
    *(volatile uint64_t *)launder(p) = 0x4141414141414141ull;
    free(p);
    churn(0);
    missed("wrote 8 bytes into a malloc(0) block, freed, churned");
}

static void k_calloc_overflow(void) {
    /* (SIZE_MAX / S + 2) * S wraps around to S. */
    size_t n = (size_t)(uintptr_t)launder((void *)(uintptr_t)(SIZE_MAX / S + 2));
    void *p = calloc(n, S);
    if (!p) harmless("calloc(%zu, %zu) returned NULL", n, S);
    free(p);
    missed("calloc(%zu, %zu) (an overflowing product) returned %p", n, S, p);
}

/* ---- the list ------------------------------------------------------------ */

struct kind {
    const char *name;
    void (*run)(void);
    const char *what;
};

static const struct kind kinds[] = {
    {"overflow-1", k_overflow_1, "writes 1 byte past the end"},
    {"overflow-32", k_overflow_32, "writes the 32 bytes past the end"},
    {"overflow-1m", k_overflow_1m, "memset of the 1 MiB past the end"},
    {"memcpy-overflow-1", k_memcpy_overflow_1, "memcpy of size + 1 bytes into the block"},
    {"memcpy-overflow-32", k_memcpy_overflow_32, "memcpy of size + 32 bytes into the block"},
    {"memcpy-overflow-1m", k_memcpy_overflow_1m, "memcpy of size + 1 MiB bytes into the block"},
    {"underflow-1", k_underflow_1, "writes the byte before the start"},
    {"underflow-32", k_underflow_32, "writes the 32 bytes before the start"},
    {"underflow-1m", k_underflow_1m, "memset of the 1 MiB before the start"},
    {"memcpy-underflow-1", k_memcpy_underflow_1, "memcpy of size + 1 bytes to p - 1"},
    {"memcpy-underflow-32", k_memcpy_underflow_32, "memcpy of size + 32 bytes to p - 32"},
    {"memcpy-underflow-1m", k_memcpy_underflow_1m, "memcpy of size + 1 MiB bytes to p - 1 MiB"},
    {"read-overflow", k_read_overflow,
     "reads the 8 bytes past the end; harmless if they are no neighbour's secret"},
    {"memalign-overflow-1", k_memalign_overflow_1, "writes 1 byte past a memalign(64) block"},
    {"posix-memalign-overflow-1", k_posix_memalign_overflow_1,
     "writes 1 byte past a posix_memalign(4096) block"},
    {"realloc-shrink-overflow", k_realloc_shrink_overflow,
     "realloc to size/2, then writes 1 byte past the new end"},
    {"usable-size-overflow", k_usable_size_overflow,
     "writes malloc_usable_size bytes (allowed); harmless if the neighbours survive"},
    {"use-after-free-read", k_use_after_free_read,
     "reads a freed block; harmless if its secret is gone"},
    {"write-after-free", k_write_after_free, "writes all of a freed block, then churns"},
    {"write-after-free-late", k_write_after_free_late,
     "writes 8 bytes of a block freed 100 frees earlier, then churns"},
    {"reuse-after-free", k_reuse_after_free,
     "harmless if none of the next 16 mallocs returns the freed block"},
    {"zero-on-malloc", k_zero_on_malloc,
     "harmless if no new block shows the secret of freed ones"},
    {"double-free", k_double_free, "free(p); free(p)"},
    {"double-free-interleaved", k_double_free_interleaved, "free(p); free(q); free(p)"},
    {"double-free-after-churn", k_double_free_after_churn,
     "free(p), churn of its size, free(p)"},
    {"double-free-cross-thread", k_double_free_cross_thread,
     "free(p), then another thread frees p"},
    {"double-free-after-realloc", k_double_free_after_realloc,
     "frees the old pointer of a realloc that moved"},
    {"realloc-after-free", k_realloc_after_free, "realloc of a freed block"},
    {"free-interior", k_free_interior, "free(p + size/2), at least p + 8"},
    {"free-unaligned", k_free_unaligned, "free(p + 1)"},
    {"realloc-interior", k_realloc_interior, "realloc(p + size/2), at least p + 8"},
    {"free-never-allocated", k_free_never_allocated,
     "free of 32 bytes into the 2 MiB chunk of a live block (metadata, never a block)"},
    {"free-stack", k_free_stack, "free of a stack buffer"},
    {"free-global", k_free_global, "free of a static buffer"},
    {"free-mmap", k_free_mmap, "free of memory from mmap, never from malloc"},
    {"zero-size-read", k_zero_size_read, "reads 8 bytes of malloc(0) (size unused)"},
    {"zero-size-write", k_zero_size_write, "writes 8 bytes into malloc(0) (size unused)"},
    {"calloc-overflow", k_calloc_overflow,
     "calloc whose product wraps to size; harmless if NULL"},
};

int main(int argc, char **argv) {
    size_t count = sizeof kinds / sizeof *kinds;
    if (argc == 2 && !strcmp(argv[1], "list")) {
        for (size_t i = 0; i < count; i++) printf("%s\t%s\n", kinds[i].name, kinds[i].what);
        return 0;
    }
    if (argc != 3) {
        printf("usage: misuse KIND SIZE | misuse list\n");
        return 2;
    }
    char *end;
    S = strtoul(argv[2], &end, 10);
    if (*end || S < 8 || S % 8 || S > 262144) broken("SIZE must be 8..262144, a multiple of 8");
    require_hakmem();
    alarm(10);
    for (size_t i = 0; i < count; i++)
        if (!strcmp(argv[1], kinds[i].name)) {
            kinds[i].run();
            broken("%s returned without an outcome", kinds[i].name);
        }
    broken("unknown kind %s", argv[1]);
}
