/* test_arena.c -- the capped bump allocator (base/arena.c): alignment, filling to exactly the
 * cap, one byte over, sizes that would wrap, zeroing and string copies. */
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "gx/arena.h"

#include "check.h"

#define ALIGN alignof(max_align_t)

static bool is_aligned(const void *p)
{
    return (uintptr_t)p % ALIGN == 0;
}

static void test_empty(void)
{
    struct arena a;

    arena_init(&a, 1024);
    CHECK(a.head == NULL);
    CHECK_EQ(a.used_bytes, 0);
    CHECK_EQ(a.cap_bytes, 1024);
    arena_destroy(&a);
    arena_destroy(&a);
    CHECK_EQ(a.used_bytes, 0);
}

/* Every pointer is aligned for any type, whatever sizes came before, and no two overlap. */
static void test_alignment(void)
{
    enum { N = 200 };
    struct arena a;
    unsigned char *p[N];

    arena_init(&a, 1 << 20);
    for (size_t i = 0; i < N; i++) {
        size_t n = i % 37 + 1;
        p[i] = arena_alloc(&a, n);
        CHECK(p[i] != NULL);
        CHECK(is_aligned(p[i]));
        memset(p[i], (int)i, n);
    }
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < i % 37 + 1; j++)
            CHECK_EQ(p[i][j], (unsigned char)i);
    }
    /* A zero-byte request gets an aligned pointer too. */
    CHECK(is_aligned(arena_alloc(&a, 0)));
    arena_destroy(&a);
}

/* The cap counts sizes rounded up to the alignment, and block headers. */
static void test_cap_exact(void)
{
    struct arena a;
    size_t header, rest;
    void *p;

    /* One allocation of exactly the cap fits; then not one byte more. Its block's header is
     * counted after the check, so used_bytes ends one header past the cap. */
    arena_init(&a, 4096);
    p = arena_alloc(&a, 4096);
    CHECK(p != NULL);
    memset(p, 0xab, 4096);
    header = a.used_bytes - 4096;
    CHECK(header >= sizeof(size_t));
    CHECK_EQ(header % ALIGN, 0);
    CHECK(arena_alloc(&a, 1) == NULL);
    CHECK(arena_alloc(&a, 0) == NULL);
    CHECK_EQ(a.used_bytes, 4096 + header);
    arena_destroy(&a);

    /* One byte over the cap from empty fails, and leaves the arena usable. */
    arena_init(&a, 4096);
    CHECK(arena_alloc(&a, 4097) == NULL);
    CHECK(a.head == NULL);
    CHECK_EQ(a.used_bytes, 0);
    CHECK(arena_alloc(&a, 4096) != NULL);
    arena_destroy(&a);

    /* Two allocations that end exactly at the cap, the first block's header included. */
    arena_init(&a, 4096);
    CHECK(arena_alloc(&a, 16) != NULL);
    CHECK_EQ(a.used_bytes, header + 16);
    rest = 4096 - a.used_bytes;
    /* One byte more than what is left rounds up past the cap: refused, nothing counted. */
    CHECK(arena_alloc(&a, rest + 1) == NULL);
    CHECK_EQ(a.used_bytes, 4096 - rest);
    p = arena_alloc(&a, rest);
    CHECK(p != NULL);
    memset(p, 0xcd, rest);
    CHECK_EQ(a.used_bytes, 4096);
    CHECK(arena_alloc(&a, 1) == NULL);
    CHECK(arena_alloc(&a, ALIGN) == NULL);
    CHECK_EQ(a.used_bytes, 4096);
    arena_destroy(&a);

    /* A cap that is not a multiple of the alignment: the rounded size must fit. */
    arena_init(&a, 100);
    CHECK(arena_alloc(&a, 100) == NULL);
    CHECK(arena_alloc(&a, 97) == NULL);
    CHECK(arena_alloc(&a, 96) != NULL);
    arena_destroy(&a);
}

/* Sizes near SIZE_MAX would wrap when rounded; they fail instead. */
static void test_huge(void)
{
    struct arena a;

    arena_init(&a, 1 << 20);
    CHECK(arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(arena_alloc(&a, SIZE_MAX - ALIGN + 2) == NULL);
    CHECK(arena_alloc(&a, SIZE_MAX / 2) == NULL);
    CHECK(arena_zalloc(&a, SIZE_MAX) == NULL);
    CHECK(arena_alloc(&a, (1 << 20) + 1) == NULL);
    CHECK_EQ(a.used_bytes, 0);
    arena_destroy(&a);
}

/* With no practical cap (SIZE_MAX), a size near SIZE_MAX plus its block header would wrap:
 * it used to get a 16-byte block and a heap overflow writing the header. (A size that does not
 * wrap goes to xmalloc, which aborts when it cannot have it, by design.) */
static void test_huge_uncapped(void)
{
    struct arena a;

    arena_init(&a, SIZE_MAX);
    CHECK(arena_alloc(&a, SIZE_MAX - ALIGN + 1) == NULL);
    CHECK(arena_strndup(&a, "x", SIZE_MAX - ALIGN) == NULL);
    CHECK_EQ(a.used_bytes, 0);
    CHECK(arena_alloc(&a, 100) != NULL);
    arena_destroy(&a);
}

/* Many small pieces over several blocks, and one piece bigger than any block so far: every
 * byte handed out is usable (ASan checks). The check against the cap is made before a new
 * block's header is counted, so used_bytes may end up to one header past the cap, never more:
 * once past it, everything fails. */
static void test_growth(void)
{
    enum { CAP = 1 << 20, PIECE = 100 };
    struct arena a;
    unsigned char *big;
    size_t count = 0, header = 0;
    uint32_t *p, *first = NULL;

    arena_init(&a, 64u << 20);
    CHECK(arena_alloc(&a, 8) != NULL);
    big = arena_alloc(&a, 12u << 20);
    CHECK(big != NULL);
    CHECK(is_aligned(big));
    memset(big, 1, 12u << 20);
    arena_destroy(&a);

    arena_init(&a, CAP);
    while ((p = arena_alloc(&a, PIECE)) != NULL) {
        CHECK(is_aligned(p));
        memset(p, 0, PIECE);
        *p = (uint32_t)count++;
        if (!first) {
            first = p;
            header = a.used_bytes - (PIECE + ALIGN - 1) / ALIGN * ALIGN;
        }
        CHECK(a.used_bytes <= CAP + header);
    }
    CHECK(count > CAP / 2 / PIECE);
    CHECK(count <= CAP / PIECE);
    CHECK_EQ(*first, 0);
    arena_destroy(&a);
}

static void test_zalloc(void)
{
    struct arena a;
    unsigned char *p;

    arena_init(&a, 1 << 20);
    /* Dirty the first block, then ask for zeroed memory after it. */
    p = arena_alloc(&a, 1000);
    CHECK(p != NULL);
    memset(p, 0xff, 1000);
    p = arena_zalloc(&a, 3000);
    CHECK(p != NULL);
    for (size_t i = 0; i < 3000; i++)
        CHECK_EQ(p[i], 0);
    p = arena_zalloc(&a, 100000);
    CHECK(p != NULL);
    for (size_t i = 0; i < 100000; i++)
        CHECK_EQ(p[i], 0);
    arena_destroy(&a);
}

static void test_strndup(void)
{
    struct arena a;
    char *s;

    arena_init(&a, 4096);
    s = arena_strndup(&a, "abcdef", 3);
    CHECK_STR_EQ(s, "abc");
    CHECK(is_aligned(s));
    s = arena_strndup(&a, "", 0);
    CHECK_STR_EQ(s, "");
    s = arena_strndup(&a, "a\0b", 3);
    CHECK(s != NULL);
    CHECK_EQ(memcmp(s, "a\0b\0", 4), 0);
    arena_destroy(&a);

    /* The copy and its NUL must fit: n + 1 bytes, rounded. */
    arena_init(&a, 64);
    CHECK(arena_strndup(&a, "0123456789012345678901234567890123456789012345678901234567890123",
                        64) == NULL);
    s = arena_strndup(&a, "012345678901234567890123456789012345678901234567890123456789012", 63);
    CHECK_STR_EQ(s, "012345678901234567890123456789012345678901234567890123456789012");
    arena_destroy(&a);
}

/* After arena_destroy() the same struct can be initialized and used again. */
static void test_reuse(void)
{
    struct arena a;

    arena_init(&a, 4096);
    CHECK(arena_alloc(&a, 4096) != NULL);
    arena_destroy(&a);
    CHECK(a.head == NULL);
    CHECK_EQ(a.used_bytes, 0);
    arena_init(&a, 8192);
    CHECK(arena_alloc(&a, 8192) != NULL);
    CHECK(arena_alloc(&a, 1) == NULL);
    arena_destroy(&a);
}

int main(void)
{
    test_empty();
    test_alignment();
    test_cap_exact();
    test_huge();
    test_huge_uncapped();
    test_growth();
    test_zalloc();
    test_strndup();
    test_reuse();
    printf("test_arena: ok\n");
    return 0;
}
