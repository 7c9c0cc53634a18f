/* arena.h -- a bump allocator with a hard cap, one per request. Everything decoded for a
 * request, its scratch space and its encoded reply come from it and are freed together by
 * arena_destroy(). Not thread-safe: an arena belongs to one request at a time. */
#pragma once

#include <stddef.h>

#include "gx/compiler.h"

struct arena_block;

struct arena {
    struct arena_block *head;
    size_t used_bytes; /* bytes handed out plus block overhead */
    size_t cap_bytes;  /* arena_alloc() fails past this */
};

/* Prepares an empty arena that may grow to cap_bytes. Allocates nothing yet. */
void arena_init(struct arena *a, size_t cap_bytes);
/* Lets the arena grow extra bytes further (saturating), e.g. once a request's body size is
 * known. */
void arena_raise_cap(struct arena *a, size_t extra);
/* Frees every block; the arena may be initialized again. */
void arena_destroy(struct arena *a);
/* Returns n bytes aligned for any type, or NULL when the cap would be exceeded.
 * The memory lives until arena_destroy(). */
void *arena_alloc(struct arena *a, size_t n) GX_MUST_CHECK;
/* Same as arena_alloc(), zero-filled. */
void *arena_zalloc(struct arena *a, size_t n) GX_MUST_CHECK;
/* Returns a NUL-terminated copy of s[0..n), or NULL past the cap. */
char *arena_strndup(struct arena *a, const char *s, size_t n) GX_MUST_CHECK;
