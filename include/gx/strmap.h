/* strmap.h -- a string-keyed hash map (chained, power-of-two buckets) that owns copies of its
 * keys. Values are caller pointers or integers. Not thread-safe; the owner locks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
uint64_t strmap_hash(struct str key);
