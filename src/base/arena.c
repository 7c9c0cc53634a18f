/* arena.c -- capped bump allocator. Blocks grow geometrically so a 12 MB request costs a
 * handful of malloc calls, and a request that asks for one huge piece gets a block of
 * exactly that size. */
#include "gx/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

#define ARENA_FIRST_BLOCK 4096u
#define ARENA_ALIGN (alignof(max_align_t))

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a, size_t cap_bytes)
{
    a->head = NULL;
    a->used_bytes = 0;
    a->cap_bytes = cap_bytes;
}

void arena_raise_cap(struct arena *a, size_t extra)
{
    a->cap_bytes = extra > SIZE_MAX - a->cap_bytes ? SIZE_MAX : a->cap_bytes + extra;
}

void arena_destroy(struct arena *a)
{
    struct arena_block *b = a->head;

    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

static struct arena_block *new_block(struct arena *a, size_t need)
{
    size_t size = a->head ? a->head->size * 2 : ARENA_FIRST_BLOCK;
    struct arena_block *b;

    if (size < need)
        size = need;
    if (size > a->cap_bytes - a->used_bytes)
        size = need; /* do not reserve beyond the cap; need itself was checked */
    b = xmalloc(sizeof(*b) + size);
    b->size = size;
    b->used = 0;
    b->next = a->head;
    a->head = b;
    a->used_bytes += sizeof(*b);
    return b;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t rounded = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    struct arena_block *b = a->head;
    void *p;

    /* The last test keeps a new block's header plus rounded from wrapping in new_block(). */
    if (rounded < n || rounded > a->cap_bytes || a->used_bytes > a->cap_bytes - rounded ||
        rounded > SIZE_MAX - sizeof(struct arena_block))
        return NULL;
    if (!b || b->size - b->used < rounded)
        b = new_block(a, rounded);
    p = b->data + b->used;
    b->used += rounded;
    a->used_bytes += rounded;
    return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);

    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
