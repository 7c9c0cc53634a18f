/* test_strmap.c -- the string-keyed hash map (base/strmap.c): insert, find, overwrite, remove,
 * growth, keys that are prefixes of each other, the empty key, iteration. */
#include "gx/strmap.h"

#include "check.h"

static void test_insert_find(void)
{
    struct strmap m;
    char key[] = "node-1";
    struct strmap_entry *e, *again;
    bool created = false;

    strmap_init(&m);
    CHECK_EQ(m.count, 0);
    CHECK(strmap_find(&m, STR_LIT("node-1")) == NULL);

    e = strmap_upsert(&m, str_from_cstr(key), &created);
    CHECK(e != NULL);
    CHECK(created);
    CHECK(e->value == NULL);
    CHECK_EQ(e->num, 0);
    CHECK_EQ(e->key_len, 6);
    CHECK_STR_EQ(e->key, "node-1");
    CHECK_EQ(m.count, 1);
    /* The map owns a copy of the key: changing the caller's text changes nothing. */
    key[0] = 'X';
    CHECK(strmap_find(&m, STR_LIT("node-1")) == e);
    CHECK(strmap_find(&m, str_from_cstr(key)) == NULL);
    /* A view need not end in a NUL. */
    CHECK(strmap_find(&m, (struct str){"node-123", 6}) == e);
    CHECK(strmap_find(&m, STR_LIT("node-")) == NULL);
    CHECK(strmap_find(&m, STR_LIT("node-12")) == NULL);
    CHECK(strmap_find(&m, STR_LIT("NODE-1")) == NULL);

    /* Upserting an existing key returns the same entry and keeps its value. */
    e->value = &created;
    e->num = 7;
    again = strmap_upsert(&m, STR_LIT("node-1"), &created);
    CHECK(again == e);
    CHECK(!created);
    CHECK(again->value == &created);
    CHECK_EQ(again->num, 7);
    CHECK_EQ(m.count, 1);
    /* created may be NULL. */
    CHECK(strmap_upsert(&m, STR_LIT("node-1"), NULL) == e);
    CHECK(strmap_upsert(&m, STR_LIT("node-2"), NULL) != e);
    CHECK_EQ(m.count, 2);
    strmap_destroy(&m, NULL);
    CHECK_EQ(m.count, 0);
    CHECK(m.buckets == NULL);
}

/* "", "a", "ab", "abc", "abc\0d" and "b" are six different keys. */
static void test_prefixes_and_empty(void)
{
    const struct str keys[] = {STR_LIT(""),    STR_LIT("a"),      STR_LIT("ab"),
                               STR_LIT("abc"), STR_LIT("abc\0d"), STR_LIT("b")};
    struct strmap m;
    bool created;

    strmap_init(&m);
    for (size_t i = 0; i < GX_ARRAY_LEN(keys); i++) {
        struct strmap_entry *e = strmap_upsert(&m, keys[i], &created);
        CHECK(created);
        e->num = (int64_t)i + 100;
    }
    CHECK_EQ(m.count, GX_ARRAY_LEN(keys));
    for (size_t i = 0; i < GX_ARRAY_LEN(keys); i++) {
        struct strmap_entry *e = strmap_find(&m, keys[i]);
        CHECK(e != NULL);
        CHECK_EQ(e->num, (int64_t)i + 100);
        CHECK_EQ(e->key_len, keys[i].len);
        CHECK_EQ(memcmp(e->key, keys[i].ptr, keys[i].len), 0);
        CHECK_EQ(e->key[e->key_len], '\0');
    }
    CHECK_EQ(strmap_find(&m, STR_LIT(""))->num, 100);
    CHECK(strmap_find(&m, STR_LIT("abcd")) == NULL);
    CHECK(strmap_find(&m, STR_LIT("abc\0")) == NULL);

    /* Removing the empty key and a prefix leaves the longer keys alone. */
    CHECK(strmap_remove(&m, STR_LIT("")) == NULL);
    CHECK(strmap_find(&m, STR_LIT("")) == NULL);
    CHECK_EQ(strmap_find(&m, STR_LIT("a"))->num, 101);
    strmap_remove(&m, STR_LIT("ab"));
    CHECK(strmap_find(&m, STR_LIT("ab")) == NULL);
    CHECK_EQ(strmap_find(&m, STR_LIT("abc"))->num, 103);
    CHECK_EQ(m.count, GX_ARRAY_LEN(keys) - 2);
    strmap_destroy(&m, NULL);
}

static void test_remove(void)
{
    struct strmap m;
    int v1 = 1, v2 = 2;

    strmap_init(&m);
    strmap_upsert(&m, STR_LIT("one"), NULL)->value = &v1;
    strmap_upsert(&m, STR_LIT("two"), NULL)->value = &v2;
    CHECK(strmap_remove(&m, STR_LIT("one")) == &v1);
    CHECK_EQ(m.count, 1);
    CHECK(strmap_find(&m, STR_LIT("one")) == NULL);
    CHECK(strmap_find(&m, STR_LIT("two"))->value == &v2);
    /* Absent keys: NULL, and the count does not move. */
    CHECK(strmap_remove(&m, STR_LIT("one")) == NULL);
    CHECK(strmap_remove(&m, STR_LIT("three")) == NULL);
    CHECK_EQ(m.count, 1);
    /* A removed key can come back, as a new entry. */
    CHECK(strmap_upsert(&m, STR_LIT("one"), NULL)->value == NULL);
    CHECK_EQ(m.count, 2);
    strmap_destroy(&m, NULL);
}

struct visit {
    size_t calls;
    int64_t sum;
    bool *seen;
};

static void visit_entry(struct strmap_entry *e, void *ctx)
{
    struct visit *v = ctx;

    v->calls++;
    v->sum += e->num;
    CHECK(!v->seen[e->num]);
    v->seen[e->num] = true;
}

/* Many more keys than the 64 first buckets: the map grows and keeps every entry, and removing
 * every other key unlinks entries from the middle of chains. */
static void test_growth(void)
{
    enum { N = 10000 };
    struct strmap m;
    char key[32];
    struct visit v = {0, 0, calloc(N, sizeof(bool))};

    strmap_init(&m);
    CHECK_EQ(m.nbuckets, 64);
    for (int i = 0; i < N; i++) {
        bool created;
        snprintf(key, sizeof(key), "node-%d", i);
        strmap_upsert(&m, str_from_cstr(key), &created)->num = i;
        CHECK(created);
    }
    CHECK_EQ(m.count, N);
    CHECK(m.nbuckets >= N);
    CHECK_EQ(m.nbuckets & (m.nbuckets - 1), 0);
    for (int i = 0; i < N; i++) {
        struct strmap_entry *e;
        snprintf(key, sizeof(key), "node-%d", i);
        e = strmap_find(&m, str_from_cstr(key));
        CHECK(e != NULL);
        CHECK_EQ(e->num, i);
    }
    strmap_each(&m, visit_entry, &v);
    CHECK_EQ(v.calls, N);
    CHECK_EQ(v.sum, (int64_t)N * (N - 1) / 2);

    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "node-%d", i);
        strmap_remove(&m, str_from_cstr(key));
    }
    CHECK_EQ(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        struct strmap_entry *e;
        snprintf(key, sizeof(key), "node-%d", i);
        e = strmap_find(&m, str_from_cstr(key));
        if (i % 2 == 0) {
            CHECK(e == NULL);
        } else {
            CHECK(e != NULL);
            CHECK_EQ(e->num, i);
        }
    }
    free(v.seen);
    strmap_destroy(&m, NULL);
}

static int freed;

static void count_free(void *value)
{
    freed++;
    free(value);
}

/* strmap_destroy hands every value to free_value, NULL ones included. */
static void test_destroy_values(void)
{
    struct strmap m;

    strmap_init(&m);
    strmap_upsert(&m, STR_LIT("a"), NULL)->value = malloc(8);
    strmap_upsert(&m, STR_LIT("b"), NULL)->value = malloc(8);
    strmap_upsert(&m, STR_LIT("c"), NULL);
    freed = 0;
    strmap_destroy(&m, count_free);
    CHECK_EQ(freed, 3);
}

static void test_each_empty(void)
{
    struct strmap m;
    struct visit v = {0, 0, NULL};

    strmap_init(&m);
    strmap_each(&m, visit_entry, &v);
    CHECK_EQ(v.calls, 0);
    strmap_destroy(&m, NULL);
}

/* STR_NULL is the empty key too, as str_eq() has it. Looking it up used to pass NULL to
 * memcmp (UBSan: "null pointer passed as argument 2") once the map held an empty key. */
static void test_null_view(void)
{
    struct strmap m;
    struct strmap_entry *e;

    strmap_init(&m);
    CHECK(strmap_find(&m, STR_NULL) == NULL);
    e = strmap_upsert(&m, STR_LIT(""), NULL);
    e->num = 5;
    CHECK(strmap_find(&m, STR_NULL) == e);
    CHECK(strmap_upsert(&m, STR_NULL, NULL) == e);
    CHECK_EQ(m.count, 1);
    strmap_remove(&m, STR_NULL);
    CHECK_EQ(m.count, 0);
    CHECK(strmap_find(&m, STR_LIT("")) == NULL);
    e = strmap_upsert(&m, STR_NULL, NULL);
    CHECK_EQ(e->key_len, 0);
    CHECK_STR_EQ(e->key, "");
    CHECK(strmap_find(&m, STR_LIT("")) == e);
    strmap_destroy(&m, NULL);
}

/* The hash reads exactly the view's bytes, and entries carry the hash of their key. */
static void test_hash(void)
{
    struct strmap m;

    CHECK(strmap_hash(STR_LIT("")) == strmap_hash(STR_NULL));
    CHECK(strmap_hash((struct str){"foobarbaz", 6}) == strmap_hash(STR_LIT("foobar")));
    CHECK(strmap_hash(STR_LIT("a")) != strmap_hash(STR_LIT("b")));
    CHECK(strmap_hash(STR_LIT("ab")) != strmap_hash(STR_LIT("ba")));
    CHECK(strmap_hash(STR_LIT("a")) != strmap_hash(STR_LIT("a\0")));
    strmap_init(&m);
    CHECK(strmap_upsert(&m, STR_LIT("gpu-node-1"), NULL)->hash ==
          strmap_hash(STR_LIT("gpu-node-1")));
    strmap_destroy(&m, NULL);
}

int main(void)
{
    test_insert_find();
    test_prefixes_and_empty();
    test_remove();
    test_growth();
    test_destroy_values();
    test_each_empty();
    test_null_view();
    test_hash();
    printf("test_strmap: ok\n");
    return 0;
}
