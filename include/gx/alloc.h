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
