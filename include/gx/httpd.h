/* httpd.h -- the HTTP/1.1 server (libmicrohttpd: epoll, a thread pool sized to the cores).
 * It reads request bodies up to a cap, hands each request to one handler as an exchange, and
 * sends whatever reply the handler set, now or later (deferred replies suspend the
 * connection, so a bind waiting on the API server holds no thread). It knows nothing about
 * the extender protocol. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/exchange.h"

typedef void httpd_handler_fn(void *ctx, struct exchange *ex);

struct httpd_config {
    const char *listen;      /* "HOST:PORT", "[v6]:PORT"; port 0 picks a free one */
    size_t max_body_bytes;   /* larger bodies are not read: body_too_large is set */
    unsigned threads;        /* 0: one per core */
    unsigned idle_timeout_s; /* close idle keep-alive connections after this */
    httpd_handler_fn *handler;
    void *handler_ctx;
};

struct httpd;

/* Binds and starts serving. Returns ERR_INVALID for a bad listen address, ERR_IO when the
 * address cannot be bound; eb says which. */
enum err httpd_start(const struct httpd_config *cfg, struct httpd **out,
                     struct errbuf *eb) GX_MUST_CHECK;
/* The port actually bound (useful with port 0). */
uint16_t httpd_port(const struct httpd *h);
/* Requests started and not yet finished (deferred ones included). */
unsigned httpd_in_flight(const struct httpd *h);
/* Stops accepting connections and waits up to drain_ms for requests in flight to finish.
 * Connections already open are still served. NULL is a no-op. */
void httpd_quiesce(struct httpd *h, unsigned drain_ms);
/* Waits up to drain_ms more for requests in flight, then stops and frees everything. Every
 * deferred reply must have been completed by then (libmicrohttpd cannot stop with a suspended
 * connection): stop whatever completes them first. NULL is a no-op. */
void httpd_stop(struct httpd *h, unsigned drain_ms);
