/* strmap.c -- chained hash map keyed by strings (see strmap.h). */
#include "gx/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

/* Is e's key the bytes of key? An empty key may be {NULL, 0}, which memcmp may not see. */
static inline bool key_eq(const struct strmap_entry *e, uint64_t h, struct str key)
{
    return e->hash == h && e->key_len == key.len &&
           (key.len == 0 || memcmp(e->key, key.ptr, key.len) == 0);
}

void strmap_init(struct strmap *m)
{
    m->nbuckets = 64;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
    m->count = 0;
}

void strmap_destroy(struct strmap *m, void (*free_value)(void *value))
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

struct strmap_entry *strmap_find(const struct strmap *m, struct str key)
{
    uint64_t h = strmap_hash(key);
    struct strmap_entry *e = m->buckets[h & (m->nbuckets - 1)];

    for (; e; e = e->next) {
        if (key_eq(e, h, key))
            return e;
    }
    return NULL;
}

static void grow(struct strmap *m)
{
    size_t n = m->nbuckets * 2;
    struct strmap_entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i];
        while (e) {
            struct strmap_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

struct strmap_entry *strmap_upsert(struct strmap *m, struct str key, bool *created)
{
    struct strmap_entry *e = strmap_find(m, key);

    if (created)
        *created = e == NULL;
    if (e)
        return e;
    if (m->count + 1 > m->nbuckets)
        grow(m);
    e = xcalloc(1, sizeof(*e) + key.len + 1);
    e->hash = strmap_hash(key);
    e->key_len = key.len;
    if (key.len)
        memcpy(e->key, key.ptr, key.len);
    e->next = m->buckets[e->hash & (m->nbuckets - 1)];
    m->buckets[e->hash & (m->nbuckets - 1)] = e;
    m->count++;
    return e;
}

void *strmap_remove(struct strmap *m, struct str key)
{
    uint64_t h = strmap_hash(key);
    struct strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->next) {
        struct strmap_entry *e = *pp;
        void *v;
        if (!key_eq(e, h, key))
            continue;
        *pp = e->next;
        v = e->value;
        free(e);
        m->count--;
        return v;
    }
    return NULL;
}

void strmap_each(const struct strmap *m, void (*fn)(struct strmap_entry *e, void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct strmap_entry *e = m->buckets[i]; e; e = e->next)
            fn(e, ctx);
    }
}
