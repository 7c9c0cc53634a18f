/* buf.h -- a growable byte buffer with a hard size cap (after curl's dynbuf). Appends fail
 * with ERR_TOO_LARGE instead of growing past the cap. The buffer owns its memory until
 * buf_take() hands it out or buf_destroy() frees it. Not thread-safe. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"

struct buf {
    char *ptr; /* always NUL-terminated when non-NULL */
    size_t len;
    size_t alloc;
    size_t cap_bytes;
};

void buf_init(struct buf *b, size_t cap_bytes);
void buf_destroy(struct buf *b);
/* Makes room for at least extra more bytes. */
enum err buf_reserve(struct buf *b, size_t extra) GX_MUST_CHECK;
enum err buf_append(struct buf *b, const void *data, size_t n) GX_MUST_CHECK;
enum err buf_append_str(struct buf *b, const char *s) GX_MUST_CHECK;
enum err buf_printf(struct buf *b, const char *fmt, ...) GX_PRINTF(2, 3) GX_MUST_CHECK;
/* Appends s as a JSON string literal, quotes included, escaping what JSON requires. */
enum err buf_append_json_str(struct buf *b, const char *s, size_t n) GX_MUST_CHECK;
/* Hands the bytes to the caller (free() them) and leaves b empty. Returns NULL if empty. */
char *buf_take(struct buf *b, size_t *len_out);
