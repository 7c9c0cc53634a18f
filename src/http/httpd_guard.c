/* httpd_guard.c -- the connection guard (see httpd_internal.h): every open connection is on a
 * list with its phase and when the phase began; a watchdog thread shuts down the socket of
 * one that overstays its phase's deadline, and libmicrohttpd then closes it as it would any
 * connection the peer closed. Slow or silent clients (slowloris) thus hold a connection for a
 * bounded time, whatever they send. The shutdown happens under the list's lock, and a
 * connection leaves the list (MHD's CLOSED notification, which takes the lock) before its
 * descriptor is closed, so the watchdog never touches a descriptor that was reused. */
#include <microhttpd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/metrics.h"

#include "httpd_internal.h"

#define GUARD_TICK_MS 200

/* What a deadline's close counts under; BUSY has no deadline. */
static const enum metrics_counter phase_metric[] = {
    METRICS_HTTP_HEADER_TIMEOUTS, METRICS_HTTP_BODY_TIMEOUTS, METRICS_COUNTER_COUNT,
    METRICS_HTTP_IDLE_CLOSES};

static unsigned pick(unsigned v, unsigned dflt)
{
    return v ? v : dflt;
}

/* After a flood, the memory of thousands of closed connections sits in malloc's free lists;
 * give it back to the system once the count of open connections has fallen this far. */
#define GUARD_TRIM_AFTER 256

/* Shuts down every connection past its deadline. Called with the lock held. */
static void sweep(struct guard *g, uint64_t now)
{
    for (struct conn *c = g->head; c; c = c->next) {
        unsigned limit = g->timeout_ms[c->phase];
        if (c->closing || limit == 0 || now - c->since_ms < limit)
            continue;
        c->closing = true;
        shutdown(c->fd, SHUT_RDWR);
        metrics_counter_add(phase_metric[c->phase], 1);
    }
}

static void *watchdog(void *arg)
{
    struct guard *g = arg;

    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
        sweep(g, clock_mono_ms());
        if (g->open + GUARD_TRIM_AFTER <= g->peak) {
            g->peak = g->open;
            alloc_trim();
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

bool guard_start(struct guard *g, const struct httpd_config *cfg)
{
    pthread_condattr_t ca;

    g->timeout_ms[CONN_HEADERS] = pick(cfg->header_timeout_ms, 10000);
    g->timeout_ms[CONN_BODY] = pick(cfg->body_timeout_ms, 60000);
    g->timeout_ms[CONN_BUSY] = 0;
    g->timeout_ms[CONN_IDLE] = pick(cfg->idle_timeout_ms, 120000);
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    g->running = pthread_create(&g->thread, NULL, watchdog, g) == 0;
    return g->running;
}

void guard_stop(struct guard *g)
{
    struct conn *next;

    if (g->running) {
        pthread_mutex_lock(&g->lock);
        g->stop = true;
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->thread, NULL);
        g->running = false;
    }
    for (struct conn *c = g->head; c; c = next) {
        next = c->next;
        free(c);
    }
    g->head = NULL;
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
}

static void conn_open(struct guard *g, struct MHD_Connection *mc, void **socket_context)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct conn *c = xcalloc(1, sizeof(*c));

    c->fd = info ? info->connect_fd : -1;
    c->phase = CONN_HEADERS;
    c->since_ms = clock_mono_ms();
    pthread_mutex_lock(&g->lock);
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    if (++g->open > g->peak)
        g->peak = g->open;
    pthread_mutex_unlock(&g->lock);
    metrics_gauge_add(METRICS_GAUGE_HTTP_CONNECTIONS, 1);
    *socket_context = c;
}

static void conn_close(struct guard *g, struct conn *c)
{
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->open--;
    pthread_mutex_unlock(&g->lock);
    metrics_gauge_add(METRICS_GAUGE_HTTP_CONNECTIONS, -1);
    free(c);
}

void guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context, int started)
{
    struct guard *g = cls;

    if (started)
        conn_open(g, mc, socket_context);
    else if (*socket_context)
        conn_close(g, *socket_context);
}

void guard_phase(struct guard *g, struct MHD_Connection *mc, enum conn_phase phase)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = info ? info->socket_context : NULL;

    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->phase = phase;
    c->since_ms = clock_mono_ms();
    pthread_mutex_unlock(&g->lock);
}

/* ---- the memory budget ---- */

struct httpd_budget {
    atomic_size_t used;
    size_t max; /* 0: unlimited */
};

struct httpd_budget *httpd_budget_new(size_t max_bytes)
{
    struct httpd_budget *b = xcalloc(1, sizeof(*b));

    b->max = max_bytes;
    return b;
}

void httpd_budget_free(struct httpd_budget *b)
{
    free(b);
}

size_t httpd_budget_used(const struct httpd_budget *b)
{
    return b ? atomic_load(&((struct httpd_budget *)(uintptr_t)b)->used) : 0;
}

bool budget_take(struct httpd_budget *b, size_t n)
{
    size_t used;

    if (!b)
        return true;
    used = atomic_load(&b->used);
    do {
        if (b->max && (n > b->max || used > b->max - n))
            return false;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    metrics_gauge_add(METRICS_GAUGE_HTTP_BODY_BYTES, (int64_t)n);
    return true;
}

bool budget_fits(const struct httpd_budget *b, size_t n)
{
    return !b || b->max == 0 || n <= b->max;
}

void budget_give(struct httpd_budget *b, size_t n)
{
    if (!b || n == 0)
        return;
    atomic_fetch_sub(&b->used, n);
    metrics_gauge_add(METRICS_GAUGE_HTTP_BODY_BYTES, -(int64_t)n);
}
