/* httpd.h -- the HTTP/1.1 server (libmicrohttpd: poll, a thread pool sized to the cores).
 * It reads request bodies up to a cap, hands each request to one handler as an exchange, and
 * sends whatever reply the handler set, now or later (deferred replies suspend the
 * connection, so a bind waiting on the API server holds no thread). It knows nothing about
 * the extender protocol.
 *
 * It protects itself from its clients: a connection must finish its request headers within
 * header_timeout_ms of connecting (or of its previous reply, on a kept-alive connection:
 * idle_timeout_ms), and its body within body_timeout_ms of the headers, else it is closed;
 * at most max_connections are open at once, and max_connections_per_client from one address;
 * body bytes are reserved from a memory budget as they arrive (never from the announced
 * length), and a request that would overrun it is refused with body_over_budget set. Several
 * servers may share one budget.
 *
 * With a certificate and key it serves HTTPS (GnuTLS inside libmicrohttpd; TLS 1.2 and 1.3
 * only). With a client CA bundle as well, a request is served only on a connection whose
 * client certificate verifies against that bundle for client authentication; any other gets
 * 403 with a one-line reason, before its body is read, and the connection is closed. The
 * three files are checked for changes (identity through symlinks: device, inode, size,
 * mtime) every tls_watch_ms; when one changes all three are loaded again and, if valid,
 * serve every connection opened from then on. Connections already open keep the set they
 * started with, so a reload drops nothing and refuses nothing. An invalid set is refused:
 * the old one keeps serving, and the refusal is logged once and counted. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/exchange.h"

typedef void httpd_handler_fn(void *ctx, struct exchange *ex);

/* Body bytes held by every request in flight of the servers that share it. Thread-safe. */
struct httpd_budget;

/* A budget of max_bytes (0: unlimited). Never fails. */
struct httpd_budget *httpd_budget_new(size_t max_bytes);
/* NULL is a no-op; every server using it must have stopped. */
void httpd_budget_free(struct httpd_budget *b);
/* Bytes reserved now. */
size_t httpd_budget_used(const struct httpd_budget *b);

struct httpd_config {
    const char *name;            /* for logs: "verbs", "ops" */
    const char *listen;          /* "HOST:PORT", "[v6]:PORT"; port 0 picks a free one */
    size_t max_body_bytes;       /* larger bodies are not read: body_too_large is set */
    struct httpd_budget *budget; /* may be NULL: no budget; borrowed, must outlive the server */
    unsigned threads;            /* 0: one per core */
    unsigned header_timeout_ms;  /* 0: 10000 */
    unsigned body_timeout_ms;    /* 0: 60000 */
    unsigned idle_timeout_ms;    /* kept-alive connection with no request; 0: 120000 */
    unsigned max_connections;    /* 0: 10000; lowered to what the descriptor limit allows */
    unsigned max_connections_per_client; /* 0: 64 */
    /* HTTPS: PEM paths (copied), NULL or "" for plain HTTP; cert and key go together. */
    const char *tls_cert_file;      /* the certificate chain, leaf first */
    const char *tls_key_file;       /* its private key (PKCS#1, PKCS#8 or SEC1, unencrypted) */
    const char *tls_client_ca_file; /* NULL or "": no client certificate is asked for */
    unsigned tls_watch_ms;          /* how often the files are checked; 0: 1000 */
    httpd_handler_fn *handler;
    void *handler_ctx;
};

struct httpd;

/* Binds and starts serving. Returns ERR_INVALID for a bad listen address or TLS files that
 * cannot be read or do not make a valid set (a key that does not match the certificate, a
 * CA file without a certificate), ERR_IO when the address cannot be bound; eb says which.
 * Raises the process's soft descriptor limit to its hard limit if it has to. */
enum err httpd_start(const struct httpd_config *cfg, struct httpd **out,
                     struct errbuf *eb) GX_MUST_CHECK;
/* The port actually bound (useful with port 0). */
uint16_t httpd_port(const struct httpd *h);
/* Requests started and not yet finished (deferred ones included). */
unsigned httpd_in_flight(const struct httpd *h);
/* Connections open now. */
unsigned httpd_connections(const struct httpd *h);
/* Stops accepting connections and waits up to drain_ms for requests in flight to finish.
 * Connections already open are still served. NULL is a no-op. */
void httpd_quiesce(struct httpd *h, unsigned drain_ms);
/* Waits up to drain_ms more for requests in flight, then stops and frees everything. Every
 * deferred reply must have been completed by then (libmicrohttpd cannot stop with a suspended
 * connection): stop whatever completes them first. NULL is a no-op. */
void httpd_stop(struct httpd *h, unsigned drain_ms);
