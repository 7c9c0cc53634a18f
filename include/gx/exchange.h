/* exchange.h -- one HTTP request and its reply, as the protocol layer sees it: no sockets and
 * no libmicrohttpd types. The transport (httpd) fills the request half and frees everything
 * after the reply is sent; a handler fills the reply half. Tests build exchanges by hand, so
 * every route runs without a socket.
 *
 * Ownership: the body, the arena and everything the reply points at belong to the exchange
 * and live until the transport's on_complete hook has sent the reply. Reply segments may
 * point into the request body (that is how Node objects are echoed without copying). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/arena.h"
#include "gx/compiler.h"
#include "gx/err.h"

struct exchange_iov {
    const void *base;
    size_t len;
};

struct exchange {
    /* Request, set by the transport. */
    const char *method; /* NUL-terminated */
    const char *path;   /* NUL-terminated, without the query string */
    const char *body;
    size_t body_len;
    bool body_too_large;   /* the transport refused to read a body over its limit */
    size_t body_limit;     /* that limit, for the error message */
    bool body_over_budget; /* the body would overrun the server's memory budget: not read */
    uint64_t start_ns;     /* clock_mono_ns() when the request arrived */
    struct arena arena;    /* request scope */
    /* Transport hook for deferred replies; called once by exchange_complete(). */
    void (*on_complete)(struct exchange *ex);
    void *transport;

    /* Reply, set by the handler. */
    int status;
    const char *content_type;
    struct exchange_iov *iov;
    size_t iov_count;
    unsigned retry_after_s; /* non-zero: a Retry-After header with this many seconds */
    bool deferred;
};

/* Sets a reply of one segment. data must live as long as the exchange (arena or static). */
void exchange_reply(struct exchange *ex, int status, const char *content_type, const void *data,
                    size_t len);
/* Copies data into the arena and sets it as the reply. Returns ERR_TOO_LARGE past the cap. */
enum err exchange_reply_copy(struct exchange *ex, int status, const char *content_type,
                             const void *data, size_t len) GX_MUST_CHECK;
/* The handler will reply later, from any thread: set the reply, then exchange_complete(). */
void exchange_defer(struct exchange *ex);
/* Hands a deferred reply back to the transport. */
void exchange_complete(struct exchange *ex);
