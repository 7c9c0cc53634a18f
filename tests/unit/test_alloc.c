/* test_alloc.c -- the allocation wrappers that never return NULL (base/alloc.c). Running out
 * aborts by design and is not tested here: under ASan the sanitizer would abort first. */
#include "gx/alloc.h"

#include "check.h"

static void test_zero_sizes(void)
{
    void *p = xmalloc(0);
    void *q = xcalloc(0, 8);
    void *r = xcalloc(8, 0);
    void *s = xrealloc(NULL, 0);

    /* Zero bytes still give a non-NULL pointer that free() takes. */
    CHECK(p != NULL);
    CHECK(q != NULL);
    CHECK(r != NULL);
    CHECK(s != NULL);
    free(p);
    free(q);
    free(r);
    free(s);
}

static void test_calloc_realloc(void)
{
    unsigned char *p = xcalloc(100, 3);

    for (size_t i = 0; i < 300; i++)
        CHECK_EQ(p[i], 0);
    memset(p, 7, 300);
    p = xrealloc(p, 100000);
    for (size_t i = 0; i < 300; i++)
        CHECK_EQ(p[i], 7);
    p[99999] = 1;
    p = xrealloc(p, 10);
    CHECK_EQ(p[9], 7);
    free(p);
}

static void test_strdup(void)
{
    char *s = xstrdup("gpu-node-1");
    char *t = xstrndup("abcdef", 3);
    char *u = xstrndup("a\0b", 3);
    char *v = xstrndup("", 0);

    CHECK_STR_EQ(s, "gpu-node-1");
    CHECK_STR_EQ(t, "abc");
    CHECK_EQ(memcmp(u, "a\0b\0", 4), 0);
    CHECK_STR_EQ(v, "");
    free(s);
    free(t);
    free(u);
    free(v);
}

int main(void)
{
    test_zero_sizes();
    test_calloc_realloc();
    test_strdup();
    printf("test_alloc: ok\n");
    return 0;
}
