/* exchange_helpers.h -- what the socket-free route tests share: a reply's segments joined
 * into one string, and one POST through the route table. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "gx/clock.h"
#include "gx/exchange.h"
#include "gx/routes.h"

#include "check.h"

/* The reply's segments joined into one malloc'd, NUL-terminated buffer (the caller frees it);
 * *len (may be NULL) gets its length without the NUL. */
static inline char *exchange_reply_join(const struct exchange *ex, size_t *len)
{
    size_t n = 0;
    char *out;

    for (size_t i = 0; i < ex->iov_count; i++)
        n += ex->iov[i].len;
    out = malloc(n + 1);
    CHECK(out != NULL);
    n = 0;
    for (size_t i = 0; i < ex->iov_count; i++) {
        memcpy(out + n, ex->iov[i].base, ex->iov[i].len);
        n += ex->iov[i].len;
    }
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

/* Sends body (NULL: none) to path with method through the route table with no socket; the reply
 * must be a 200. Returns it joined (the caller frees it). */
static inline char *exchange_call(struct routes *r, const char *method, const char *path,
                                  const char *body)
{
    struct exchange ex;
    char *reply;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 16u << 20);
    ex.method = method;
    ex.path = path;
    ex.body = body ? body : "";
    ex.body_len = body ? strlen(body) : 0;
    ex.start_ns = clock_mono_ns();
    routes_handle(r, &ex);
    CHECK_EQ(ex.status, 200);
    reply = exchange_reply_join(&ex, NULL);
    arena_destroy(&ex.arena);
    return reply;
}

static inline char *exchange_post(struct routes *r, const char *path, const char *body)
{
    return exchange_call(r, "POST", path, body);
}
