/* C API conformance of libhakmem.so, run under LD_PRELOAD by tests/conformance.rs.
 *
 * Built with -fno-builtin so that the compiler cannot fold malloc/free pairs or
 * impossible sizes away: every call below must reach the allocator.
 * Prints "conformance: N checks passed" and exits 0, or lists each failed
 * check and exits 1. It first proves that malloc really is hakmem's, so a
 * broken preload cannot pass by testing glibc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The suite uses blocks after a *failed* realloc on purpose (they must be left
 * intact), which GCC 12+ warns about. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

static int checks, failures;

#define CHECK(cond)                                                           \
    do {                                                                      \
        checks++;                                                             \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                     \
    } while (0)

/* Sizes no allocator can serve; volatile so nothing is known at compile time. */
static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2 + 1;
/* 256 TiB: more than the 47-bit user address space, so no mapping can succeed. */
static volatile size_t beyond_vm = (size_t)1 << 48;

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Whether symbol `name`, as the program resolves it, lives in libhakmem.so. */
static int in_hakmem(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    return f && dladdr(f, &info) && info.dli_fname && strstr(info.dli_fname, "libhakmem");
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31)) return 0;
    return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void test_really_hakmem(void) {
    static const char *names[] = {
        "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
        "free_sized", "free_aligned_sized", "cfree", "__libc_malloc", "__libc_free",
        "__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
        "__libc_pvalloc", "hakmem_get_options", "hakmem_get_stats",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (!in_hakmem(names[i])) {
            fprintf(stderr, "FAILED: %s does not resolve into libhakmem.so\n", names[i]);
            exit(2); /* nothing below would test hakmem */
        }
    }
    /* The program's own calls go through the same symbol. */
    Dl_info info;
    CHECK(dladdr((void *)&malloc, &info) && strstr(info.dli_fname, "libhakmem"));
}

static void test_malloc(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    free(NULL);

    for (size_t n = 1; n <= 4096; n += (n < 64 ? 1 : n / 8)) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(aligned(p, n < 16 ? 8 : 16));
        CHECK(malloc_usable_size(p) >= n);
        fill(p, n, (unsigned)n);
        CHECK(intact(p, n, (unsigned)n));
        free(p);
    }
    static const size_t big[] = {65536, 300000, 1 << 20, 5 << 20, 33 << 20};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        unsigned char *p = malloc(big[i]);
        CHECK(p && aligned(p, 16) && malloc_usable_size(p) >= big[i]);
        if (!p) continue;
        fill(p, big[i], 7);
        CHECK(intact(p, big[i], 7));
        free(p);
    }

    static volatile size_t impossible[3];
    impossible[0] = huge;
    impossible[1] = half;
    impossible[2] = beyond_vm;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        CHECK(malloc(impossible[i]) == NULL && errno == ENOMEM);
    }
    CHECK(malloc_usable_size(NULL) == 0);
}

/* Many live blocks at once, each filled to its whole malloc_usable_size: none
 * may overlap another, so every usable byte really is the block's. */
static void test_many_live(void) {
    enum { N = 20000 };
    static unsigned char *p[N];
    static size_t usable[N];
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245 + 12345;
        size_t n = (x >> 8) % (i % 100 == 0 ? 20000 : 600);
        p[i] = malloc(n);
        CHECK(p[i] != NULL);
        if (!p[i]) continue;
        usable[i] = malloc_usable_size(p[i]);
        CHECK(usable[i] >= n);
        fill(p[i], usable[i], (unsigned)i);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) bad += p[i] && !intact(p[i], usable[i], (unsigned)i);
    CHECK(bad == 0);
    for (int i = 0; i < N; i += 2) free(p[i]);
    for (int i = 1; i < N; i += 2) {
        bad += p[i] && !intact(p[i], usable[i], (unsigned)i);
        free(p[i]);
    }
    CHECK(bad == 0);
}

static void test_calloc(void) {
    /* Reuse a dirtied block so that zeroing is really exercised. */
    for (size_t n = 8; n <= (1 << 20); n *= 4) {
        unsigned char *d = malloc(n);
        memset(d, 0xAA, n);
        free(d);
        unsigned char *z = calloc(n / 8, 8);
        CHECK(z && all_zero(z, n) && malloc_usable_size(z) >= n);
        free(z);
    }
    void *a = calloc(0, 16), *b = calloc(16, 0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    errno = 0;
    CHECK(calloc(half, 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(huge / 3 + 1, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(1, huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(beyond_vm, 1) == NULL && errno == ENOMEM);
    unsigned char *big = calloc(3, 5 << 20);
    CHECK(big && all_zero(big, (size_t)3 * (5 << 20)));
    free(big);
}

static void test_realloc(void) {
    unsigned char *p = realloc(NULL, 8);
    CHECK(p != NULL);
    fill(p, 8, 3);
    /* Grow step by step through every size range, keeping the contents. */
    size_t n = 8;
    while (n < (8 << 20)) {
        size_t m = n * 2 + 5;
        unsigned char *q = realloc(p, m);
        CHECK(q != NULL);
        if (!q) break;
        CHECK(aligned(q, 16) && malloc_usable_size(q) >= m);
        CHECK(intact(q, n, 3));
        fill(q, m, 3);
        p = q;
        n = m;
    }
    /* Shrink back down, keeping the prefix. */
    while (n > 4) {
        size_t m = n / 3;
        unsigned char *q = realloc(p, m);
        CHECK(q && intact(q, m, 3) && malloc_usable_size(q) >= m);
        if (!q) break;
        CHECK(aligned(q, m < 16 ? 8 : 16));
        p = q;
        n = m;
    }
    /* Impossible growth fails with ENOMEM and leaves the block alone. */
    errno = 0;
    CHECK(realloc(p, huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(realloc(p, beyond_vm) == NULL && errno == ENOMEM);
    CHECK(intact(p, n, 3));
    /* realloc(p, 0) frees p and returns NULL, as glibc does. */
    CHECK(realloc(p, 0) == NULL);
    /* realloc(NULL, 0) is malloc(0). */
    void *z = realloc(NULL, 0);
    CHECK(z != NULL);
    free(z);
    /* A small block that grows keeps C's 16-byte alignment. */
    for (int i = 0; i < 100; i++) {
        void *s = malloc(8);
        void *t = realloc(s, 32);
        CHECK(t && aligned(t, 16));
        free(t);
    }
    /* An over-aligned block can be resized too. */
    void *a = aligned_alloc(4096, 100);
    fill(a, 100, 9);
    unsigned char *b = realloc(a, 10000);
    CHECK(b && intact(b, 100, 9));
    free(b);
}

static void test_reallocarray(void) {
    unsigned char *p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL);
    fill(p, 100, 4);
    unsigned char *q = reallocarray(p, 100, 100);
    CHECK(q && intact(q, 100, 4) && malloc_usable_size(q) >= 10000);
    errno = 0;
    CHECK(reallocarray(q, half, 2) == NULL && errno == ENOMEM);
    CHECK(intact(q, 100, 4));
    CHECK(reallocarray(q, 0, 8) == NULL); /* realloc(q, 0): freed */
}

static void test_posix_memalign(void) {
    for (size_t a = sizeof(void *); a <= (4 << 20); a *= 2) {
        static const size_t sizes[] = {0, 1, 15, 16, 100, 4096, 100000};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            void *p = (void *)1;
            CHECK(posix_memalign(&p, a, sizes[i]) == 0);
            CHECK(p != NULL && aligned(p, a) && malloc_usable_size(p) >= sizes[i]);
            if (p) memset(p, 0x5A, sizes[i]);
            free(p);
        }
    }
    void *keep = (void *)0x1234;
    static const size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(posix_memalign(&keep, bad[i], 16) == EINVAL && keep == (void *)0x1234);
    CHECK(posix_memalign(&keep, 64, huge) == ENOMEM && keep == (void *)0x1234);
    CHECK(posix_memalign(&keep, 4096, beyond_vm) == ENOMEM && keep == (void *)0x1234);
    CHECK(posix_memalign(&keep, half, 16) == ENOMEM && keep == (void *)0x1234);
}

static void test_aligned_alloc(void) {
    for (size_t a = 1; a <= (2 << 20); a *= 2) {
        void *p = aligned_alloc(a, 3 * a + 1); /* size need not be a multiple */
        CHECK(p && aligned(p, a) && malloc_usable_size(p) >= 3 * a + 1);
        free(p);
    }
    void *z = aligned_alloc(64, 0);
    CHECK(z && aligned(z, 64));
    free(z);
    static const size_t bad[] = {0, 3, 24, 100, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        CHECK(aligned_alloc(bad[i], 64) == NULL && errno == EINVAL);
    }
    errno = 0;
    CHECK(aligned_alloc(64, huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(aligned_alloc(half, 1) == NULL && errno == ENOMEM);
}

static void test_memalign_valloc(void) {
    long page = sysconf(_SC_PAGESIZE);
    /* Alignments up to 16 are plain malloc; others round up to a power of two. */
    static const size_t al[] = {0, 1, 8, 16, 24, 32, 100, 4096, 1 << 21};
    static const size_t want[] = {8, 8, 8, 16, 32, 32, 128, 4096, 1 << 21};
    for (size_t i = 0; i < sizeof al / sizeof *al; i++) {
        void *p = memalign(al[i], 40);
        CHECK(p && aligned(p, want[i]) && malloc_usable_size(p) >= 40);
        free(p);
    }
    errno = 0;
    CHECK(memalign(half + 1, 8) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(huge, 8) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(64, huge) == NULL && errno == ENOMEM);

    void *v = valloc(1);
    CHECK(v && aligned(v, (size_t)page));
    free(v);
    v = valloc(3 * (size_t)page + 1);
    CHECK(v && aligned(v, (size_t)page) && malloc_usable_size(v) >= 3 * (size_t)page + 1);
    free(v);
    errno = 0;
    CHECK(valloc(huge) == NULL && errno == ENOMEM);

    void *pv = pvalloc(1);
    CHECK(pv && aligned(pv, (size_t)page) && malloc_usable_size(pv) >= (size_t)page);
    free(pv);
    pv = pvalloc((size_t)page + 1);
    CHECK(pv && aligned(pv, (size_t)page) && malloc_usable_size(pv) >= 2 * (size_t)page);
    free(pv);
    errno = 0;
    CHECK(pvalloc(huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(pvalloc(huge - (size_t)page) == NULL && errno == ENOMEM);
}

/* The C23 frees, cfree and the __libc_* aliases: glibc 2.36's headers lack
 * some of them (and cfree is a compat symbol), so they are looked up. */
static void test_aliases(void) {
    void (*free_sized_)(void *, size_t) = dlsym(RTLD_DEFAULT, "free_sized");
    void (*free_aligned_sized_)(void *, size_t, size_t) = dlsym(RTLD_DEFAULT, "free_aligned_sized");
    void (*cfree_)(void *) = dlsym(RTLD_DEFAULT, "cfree");
    void *(*l_malloc)(size_t) = dlsym(RTLD_DEFAULT, "__libc_malloc");
    void (*l_free)(void *) = dlsym(RTLD_DEFAULT, "__libc_free");
    void *(*l_calloc)(size_t, size_t) = dlsym(RTLD_DEFAULT, "__libc_calloc");
    void *(*l_realloc)(void *, size_t) = dlsym(RTLD_DEFAULT, "__libc_realloc");
    void *(*l_memalign)(size_t, size_t) = dlsym(RTLD_DEFAULT, "__libc_memalign");
    void *(*l_valloc)(size_t) = dlsym(RTLD_DEFAULT, "__libc_valloc");
    void *(*l_pvalloc)(size_t) = dlsym(RTLD_DEFAULT, "__libc_pvalloc");
    long page = sysconf(_SC_PAGESIZE);

    void *p = malloc(100);
    free_sized_(p, 100);
    free_sized_(NULL, 0);
    p = aligned_alloc(256, 1000);
    free_aligned_sized_(p, 256, 1000);
    cfree_(malloc(10));
    cfree_(NULL);

    unsigned char *m = l_malloc(50);
    CHECK(m && malloc_usable_size(m) >= 50);
    fill(m, 50, 1);
    unsigned char *r = l_realloc(m, 5000);
    CHECK(r && intact(r, 50, 1));
    free(r); /* mixing the alias and the plain name is fine */
    unsigned char *c = l_calloc(10, 10);
    CHECK(c && all_zero(c, 100));
    l_free(c);
    void *a = l_memalign(128, 10);
    CHECK(a && aligned(a, 128));
    l_free(a);
    void *v = l_valloc(10);
    CHECK(v && aligned(v, (size_t)page));
    l_free(v);
    v = l_pvalloc(10);
    CHECK(v && aligned(v, (size_t)page) && malloc_usable_size(v) >= (size_t)page);
    l_free(v);
    errno = 0;
    CHECK(l_malloc(huge) == NULL && errno == ENOMEM);
}

/* Blocks from glibc's own malloc (as a process holds when hakmem is loaded
 * after start-up) must be accepted by free, realloc and malloc_usable_size. */
static void test_foreign(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    CHECK(libc != NULL);
    if (!libc) return;
    void *(*g_malloc)(size_t) = dlsym(libc, "malloc");
    CHECK(g_malloc && (void *)g_malloc != dlsym(RTLD_DEFAULT, "malloc"));

    enum { N = 2000 };
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        size_t n = 16 + (size_t)(i % 50) * 37 + (i % 500 == 0 ? 300000 : 0);
        p[i] = g_malloc(n);
        fill(p[i], n, (unsigned)i);
        CHECK(malloc_usable_size(p[i]) >= n);
        if (i % 3 == 0) {
            free(p[i]);
        } else if (i % 3 == 1) {
            unsigned char *q = realloc(p[i], n * 3);
            CHECK(q && intact(q, n, (unsigned)i) && malloc_usable_size(q) >= n * 3);
            free(q);
        } else {
            unsigned char *q = realloc(p[i], n / 2 + 1);
            CHECK(q && intact(q, n / 2 + 1, (unsigned)i));
            free(q);
        }
    }
    CHECK(realloc(g_malloc(40), 0) == NULL);
    /* glibc's heap is still consistent (it aborts on a corrupted one). */
    void (*g_free)(void *) = dlsym(libc, "free");
    for (int i = 0; i < 1000; i++) g_free(g_malloc((size_t)i * 8));
}

int main(void) {
    test_really_hakmem();
    test_malloc();
    test_many_live();
    test_calloc();
    test_realloc();
    test_reallocarray();
    test_posix_memalign();
    test_aligned_alloc();
    test_memalign_valloc();
    test_aliases();
    test_foreign();
    if (failures) {
        fprintf(stderr, "conformance: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("conformance: %d checks passed\n", checks);
    return 0;
}
