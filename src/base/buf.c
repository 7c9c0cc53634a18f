/* buf.c -- capped growable buffer (see buf.h). */
#include "gx/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

void buf_init(struct buf *b, size_t cap_bytes)
{
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    /* The NUL takes a byte past the cap, so the largest cap is SIZE_MAX - 1; more would wrap
     * the sizes in buf_reserve(). */
    b->cap_bytes = cap_bytes < SIZE_MAX ? cap_bytes : SIZE_MAX - 1;
}

void buf_destroy(struct buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
}

enum err buf_reserve(struct buf *b, size_t extra)
{
    size_t need;
    size_t alloc;

    if (extra > b->cap_bytes || b->len > b->cap_bytes - extra)
        return ERR_TOO_LARGE;
    need = b->len + extra + 1;
    if (need <= b->alloc)
        return ERR_OK;
    alloc = b->alloc ? b->alloc : 256;
    while (alloc < need)
        alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
    if (alloc > b->cap_bytes + 1)
        alloc = b->cap_bytes + 1;
    b->ptr = xrealloc(b->ptr, alloc);
    b->alloc = alloc;
    return ERR_OK;
}

enum err buf_append(struct buf *b, const void *data, size_t n)
{
    enum err e = buf_reserve(b, n);

    if (e != ERR_OK)
        return e;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return ERR_OK;
}

enum err buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum err buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    enum err e;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ERR_INVALID;
    e = buf_reserve(b, (size_t)n);
    if (e != ERR_OK)
        return e;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ERR_OK;
}

/* Does c need an escape inside a JSON string? */
static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

enum err buf_append_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    enum err e = buf_reserve(b, n + 2);
    size_t start = 0, i = 0;

    if (e != ERR_OK)
        return e;
    if (n == 0)
        s = ""; /* an empty view may be {NULL, 0}, and NULL + 0 is undefined below */
    b->ptr[b->len++] = '"';
    for (;;) {
        /* Most text has nothing to escape: find the next byte that does, copy up to it. */
        while (i < n && !needs_escape((unsigned char)s[i]))
            i++;
        e = buf_append(b, s + start, i - start);
        if (e != ERR_OK || i == n)
            break;
        if (s[i] == '"' || s[i] == '\\') {
            char esc[2] = {'\\', s[i]};
            e = buf_append(b, esc, sizeof(esc));
        } else {
            unsigned char c = (unsigned char)s[i];
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            e = buf_append(b, esc, sizeof(esc));
        }
        if (e != ERR_OK)
            break;
        start = ++i;
    }
    return e == ERR_OK ? buf_append(b, "\"", 1) : e;
}

char *buf_take(struct buf *b, size_t *len_out)
{
    char *p = b->ptr;

    if (len_out)
        *len_out = b->len;
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
