/* exchange.c -- reply helpers for the transport-neutral request (see exchange.h). */
#include "gx/exchange.h"

#include <string.h>

void exchange_reply(struct exchange *ex, int status, const char *content_type, const void *data,
                    size_t len)
{
    struct exchange_iov *iov = arena_alloc(&ex->arena, sizeof(*iov));

    ex->status = status;
    ex->content_type = content_type;
    if (!iov) {
        /* Only a request that already spent its whole budget gets here; reply empty. */
        ex->iov = NULL;
        ex->iov_count = 0;
        return;
    }
    iov->base = data;
    iov->len = len;
    ex->iov = iov;
    ex->iov_count = 1;
}

enum err exchange_reply_copy(struct exchange *ex, int status, const char *content_type,
                             const void *data, size_t len)
{
    char *copy = arena_alloc(&ex->arena, len ? len : 1);

    if (!copy)
        return ERR_TOO_LARGE;
    if (len)
        memcpy(copy, data, len);
    exchange_reply(ex, status, content_type, copy, len);
    return ERR_OK;
}

void exchange_defer(struct exchange *ex)
{
    ex->deferred = true;
}

void exchange_complete(struct exchange *ex)
{
    if (ex->on_complete)
        ex->on_complete(ex);
}
