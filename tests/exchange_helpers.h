/* exchange_helpers.h -- what the socket-free route tests share: a reply's segments joined
 * into one string. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "gx/exchange.h"

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
