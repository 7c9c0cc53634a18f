/* httpd_internal.h -- private to src/http: the server object, and the connection guard
 * (httpd_guard.c) that enforces deadlines, tracks open connections and keeps the memory
 * budget. HTTPS is httpd_tls.h. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gx/httpd.h"

struct MHD_Daemon;
struct MHD_Connection;
struct tls_server;
struct tls_set;

/* Where a connection is in its life; each phase but BUSY has a deadline. */
enum conn_phase {
    CONN_HEADERS, /* connected, request headers not complete */
    CONN_BODY,    /* headers in, body not complete */
    CONN_BUSY,    /* the handler has the request (a deferred bind may take a while) */
    CONN_IDLE,    /* replied; kept alive, waiting for the next request's headers */
};

struct conn {
    struct conn *prev, *next;
    int fd;
    enum conn_phase phase;
    uint64_t since_ms; /* when the phase began */
    bool closing;      /* the guard shut the socket down */
    /* HTTPS only; touched only by the connection's own processing and its notifications,
     * never at the same time, so not under the lock. */
    struct tls_set *tls; /* the certificate set its session was given (a reference) */
    bool peer_ok;        /* its client certificate has been checked and verified */
};

/* The watchdog and its list of open connections. */
struct guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, stop;
    struct conn *head;
    unsigned open;
    unsigned peak;          /* most open since the last trim */
    unsigned timeout_ms[4]; /* per phase; 0: none */
};

struct httpd {
    struct MHD_Daemon *daemon;
    struct httpd_config cfg;
    uint16_t port;
    atomic_uint in_flight; /* requests begun and not yet finished */
    atomic_uint uploading; /* of those, still receiving their body */
    bool quiesced;
    struct guard guard;
    struct tls_server *tls;             /* NULL: plain HTTP */
    _Atomic uint64_t refusal_logged_ms; /* when a 403 for a client certificate was last logged */
};

/* Starts the watchdog with cfg's timeouts (defaults applied). Returns false when the thread
 * cannot be started. */
bool guard_start(struct guard *g, const struct httpd_config *cfg);
/* Stops the watchdog and frees what is left of the list. */
void guard_stop(struct guard *g);
/* MHD's connection notifications: a connection opened or closed. */
void guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context, int started);
/* Moves the connection of mc to phase, from now. */
void guard_phase(struct guard *g, struct MHD_Connection *mc, enum conn_phase phase);

/* Reserves n body bytes; false (nothing reserved) when the budget would overrun. NULL: no
 * budget, always true. */
bool budget_take(struct httpd_budget *b, size_t n);
/* Could n bytes ever fit, with nothing else reserved? NULL: always. */
bool budget_fits(const struct httpd_budget *b, size_t n);
/* Returns n reserved bytes. */
void budget_give(struct httpd_budget *b, size_t n);
