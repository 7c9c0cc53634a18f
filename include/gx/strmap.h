/* strmap.h -- a string-keyed hash map (chained, power-of-two buckets) that owns copies of its
 * keys. Values are caller pointers or integers. Not thread-safe; the owner locks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gx/str.h"

struct strmap_entry {
    struct strmap_entry *next;
    uint64_t hash;
    void *value;
    int64_t num;
    size_t key_len;
    char key[]; /* NUL-terminated copy */
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets;
    size_t count;
};

void strmap_init(struct strmap *m);
/* Frees every entry; free_value (may be NULL) is called on each value first. */
void strmap_destroy(struct strmap *m, void (*free_value)(void *value));
/* Returns the entry for key, or NULL. */
struct strmap_entry *strmap_find(const struct strmap *m, struct str key);
/* Returns the entry for key, creating it (value NULL, num 0) when absent; *created says which. */
struct strmap_entry *strmap_upsert(struct strmap *m, struct str key, bool *created);
/* Removes key; returns its value (NULL if absent). */
void *strmap_remove(struct strmap *m, struct str key);
/* Calls fn on every entry; fn may not modify the map. */
void strmap_each(const struct strmap *m, void (*fn)(struct strmap_entry *e, void *ctx), void *ctx);

/* Eight bytes at a time: node names and UIDs are 20 to 60 bytes, and byte-at-a-time FNV-1a
 * cost more than the rest of a lookup. Each word is mixed in with a multiply and a shift; the
 * length seeds the state, so "a" and "a\0" differ; the end is murmur3's finalizer. */
static inline uint64_t strmap_load_le_(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t strmap_load8_(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t strmap_mix_(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

/* The hash of key (every map's, and the cluster snapshot's name index). */
static inline uint64_t strmap_hash(struct str key)
{
    const unsigned char *p = (const unsigned char *)key.ptr;
    size_t n = key.len;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);

    for (; n >= 8; p += 8, n -= 8)
        h = strmap_mix_(h, strmap_load8_(p));
    /* The last 1..7 bytes: one load ending at the key's end when the key is that long. */
    if (n && key.len >= 8)
        h = strmap_mix_(h, strmap_load8_(p + n - 8) >> (8 * (8 - n)));
    else if (n)
        h = strmap_mix_(h, strmap_load_le_(p, n));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}
