/* strmap.c -- chained hash map keyed by strings (see strmap.h). */
#include "gx/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

/* Eight bytes at a time: node names and UIDs are 20 to 60 bytes, and byte-at-a-time FNV-1a
 * cost more than the rest of a lookup. Each word is mixed in with a multiply and a shift; the
 * length seeds the state, so "a" and "a\0" differ; the end is murmur3's finalizer. */
static inline uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

uint64_t strmap_hash(struct str key)
{
    const unsigned char *p = (const unsigned char *)key.ptr;
    size_t n = key.len;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);

    for (; n >= 8; p += 8, n -= 8)
        h = mix(h, load8(p));
    /* The last 1..7 bytes: one load ending at the key's end when the key is that long. */
    if (n && key.len >= 8)
        h = mix(h, load8(p + n - 8) >> (8 * (8 - n)));
    else if (n)
        h = mix(h, load_le(p, n));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

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
