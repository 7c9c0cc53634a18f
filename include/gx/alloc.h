/* alloc.h -- allocation that never returns NULL. On exhaustion it logs and aborts:
 * every size that input controls is capped before allocating, so running out means a
 * bug or a starved pod, and Kubernetes restarts us. */
#pragma once

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Hands the pages free() kept back to the system (glibc's malloc_trim), for after a flood or a
 * full relist. A no-op where it cannot help: without glibc, and under ASan or TSan, which serve
 * malloc themselves; there glibc's own arenas hold nothing of ours, and the first malloc_trim()
 * initializes them, racing with any other first call on another thread (a crash in mtrim). */
void alloc_trim(void);
