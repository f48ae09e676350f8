// C++ new/delete on libhakmem.so. hakmem does not export the operators:
// libstdc++'s own ones call malloc/aligned_alloc/free (ours), and keep C++'s
// semantics (new_handler, std::bad_alloc). This checks both halves.
// Built with -O0: the compiler may otherwise elide new/delete pairs.
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

static int checks, failures;
#define CHECK(cond)                                                           \
    do {                                                                      \
        checks++;                                                             \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            std::fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                     \
    } while (0)

static volatile std::size_t huge = SIZE_MAX / 2;
static int handler_calls;

struct alignas(4096) Page {
    char bytes[4096];
};
struct alignas(64) Line {
    char bytes[64];
};

int main() {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!m || !dladdr(m, &info) || !std::strstr(info.dli_fname, "libhakmem")) {
        std::fprintf(stderr, "FAILED: malloc is not libhakmem.so's\n");
        return 2;
    }

    std::vector<std::string> v;
    for (int i = 0; i < 20000; i++) v.push_back(std::string(static_cast<std::size_t>(i % 300), 'x'));
    for (int i = 0; i < 20000; i++) CHECK(v[static_cast<std::size_t>(i)].size() == static_cast<std::size_t>(i % 300));
    v.clear();
    v.shrink_to_fit();

    for (int i = 1; i < 2000; i++) {
        int *a = new int[static_cast<std::size_t>(i)];
        a[i - 1] = i;
        // operator new is malloc underneath: malloc_usable_size knows the block.
        CHECK(malloc_usable_size(a) >= sizeof(int) * static_cast<std::size_t>(i));
        delete[] a;
        long *one = new long(i);
        CHECK(*one == i);
        delete one; // sized delete (-fsized-deallocation is on by default)
    }

    Page *pg = new Page;
    CHECK((reinterpret_cast<std::uintptr_t>(pg) & 4095) == 0);
    delete pg;
    Page *pages = new Page[3];
    CHECK((reinterpret_cast<std::uintptr_t>(pages) & 4095) == 0);
    delete[] pages;
    Line *l = new (std::nothrow) Line;
    CHECK(l && (reinterpret_cast<std::uintptr_t>(l) & 63) == 0);
    delete l;

    CHECK(::operator new(huge, std::nothrow) == nullptr);
    CHECK(::operator new[](huge, std::nothrow) == nullptr);
    CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr);

    bool thrown = false;
    try {
        void *p = ::operator new(huge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);

    // The new_handler runs before bad_alloc is thrown.
    std::set_new_handler([] {
        handler_calls++;
        std::set_new_handler(nullptr);
    });
    thrown = false;
    try {
        void *p = ::operator new(huge, std::align_val_t(128));
        ::operator delete(p, std::align_val_t(128));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 1);

    if (failures) {
        std::fprintf(stderr, "cxx: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    std::printf("cxx: %d checks passed\n", checks);
    return 0;
}
