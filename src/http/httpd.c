/* httpd.c -- libmicrohttpd glue (see httpd.h). HTTPS details are in httpd_tls.c. */
#include "gx/httpd.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/log.h"
#include "gx/metrics.h"

#include "httpd_internal.h"
#include "httpd_tls.h"

/* The arena of a request may use this much beyond half its body (decoded nodes, the reply). */
#define HTTPD_ARENA_BASE_BYTES (16u << 20)

/* At shutdown a request still uploading gets this long to finish its body: on loopback a
 * live upload takes milliseconds, and a dead or half-closed client must not hold us up. */
#define HTTPD_UPLOAD_GRACE_MS 1000

/* A refused client certificate is logged at warn at most this often; the rest at debug. */
#define HTTPD_REFUSAL_LOG_MS 10000

/* One request's state, MHD's per-request context. */
struct request {
    struct exchange ex;
    struct httpd *h;
    struct MHD_Connection *conn;
    char *body;
    size_t body_len;
    size_t body_alloc; /* reserved from the budget, all of it */
    size_t announced;  /* Content-Length; 0 when none was given */
    bool handled;      /* the handler has run */
    bool suspended;    /* we suspended the connection waiting for a deferred reply */
    bool done;         /* the reply is set (immediately or by exchange_complete) */
    pthread_mutex_t lock;
};

static void request_free(struct request *rq)
{
    budget_give(rq->h->cfg.budget, rq->body_alloc);
    arena_destroy(&rq->ex.arena);
    pthread_mutex_destroy(&rq->lock);
    free(rq->body);
    free(rq);
}

/* Called by exchange_complete() on whatever thread finished a deferred reply. */
static void on_deferred_complete(struct exchange *ex)
{
    struct request *rq = ex->transport;

    pthread_mutex_lock(&rq->lock);
    rq->done = true;
    if (rq->suspended) {
        rq->suspended = false;
        MHD_resume_connection(rq->conn);
    }
    pthread_mutex_unlock(&rq->lock);
}

/* A copy in the request's arena, freed with it. libmicrohttpd caps the request line far below
 * the arena's base budget, so the "" fallback is never seen in practice. */
static const char *request_str(struct request *rq, const char *s)
{
    const char *copy = arena_strndup(&rq->ex.arena, s, strlen(s));

    return copy ? copy : "";
}

static struct request *request_new(struct httpd *h, struct MHD_Connection *conn, const char *method,
                                   const char *url)
{
    struct request *rq = xcalloc(1, sizeof(*rq));

    rq->h = h;
    rq->conn = conn;
    pthread_mutex_init(&rq->lock, NULL);
    arena_init(&rq->ex.arena, HTTPD_ARENA_BASE_BYTES);
    rq->ex.method = request_str(rq, method);
    rq->ex.path = request_str(rq, url);
    rq->ex.start_ns = clock_mono_ns();
    rq->ex.body_limit = h->cfg.max_body_bytes;
    rq->ex.on_complete = on_deferred_complete;
    rq->ex.transport = rq;
    atomic_fetch_add(&h->in_flight, 1);
    atomic_fetch_add(&h->uploading, 1);
    return rq;
}

/* Reads Content-Length: a body over the cap, or over the whole memory budget, is refused
 * before any of it is read. Nothing is reserved from the announced length: a client that
 * announces 256 MiB and sends one byte holds one buffer's worth. */
static void request_check_length(struct request *rq)
{
    const char *cl =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n;

    if (!cl)
        return;
    n = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0')
        return;
    if (n > rq->h->cfg.max_body_bytes) {
        rq->ex.body_too_large = true;
    } else if (!budget_fits(rq->h->cfg.budget, (size_t)n + 1)) {
        rq->ex.body_over_budget = true;
        metrics_counter_add(METRICS_HTTP_BUDGET_REFUSALS, 1);
    } else {
        rq->announced = (size_t)n;
    }
}

/* Drops the body and its reservation: the request will be refused, whatever else arrives. */
static void request_refuse_budget(struct request *rq)
{
    budget_give(rq->h->cfg.budget, rq->body_alloc);
    free(rq->body);
    rq->body = NULL;
    rq->body_len = rq->body_alloc = 0;
    rq->ex.body_over_budget = true;
    metrics_counter_add(METRICS_HTTP_BUDGET_REFUSALS, 1);
}

/* The next buffer size: doubling from 64 KiB, never past the announced length or the cap. */
static size_t next_alloc(const struct request *rq, size_t need)
{
    size_t max = rq->h->cfg.max_body_bytes + 1;
    size_t want = rq->body_alloc ? rq->body_alloc * 2 : (size_t)64 * 1024;

    while (want < need)
        want *= 2;
    if (rq->announced && rq->announced + 1 >= need && want > rq->announced + 1)
        want = rq->announced + 1;
    return want > max ? max : want;
}

static void request_append(struct request *rq, const char *data, size_t n)
{
    size_t max = rq->h->cfg.max_body_bytes;

    if (rq->ex.body_too_large || rq->ex.body_over_budget)
        return;
    if (n > max || rq->body_len > max - n) {
        rq->ex.body_too_large = true;
        return;
    }
    if (rq->body_len + n + 1 > rq->body_alloc) {
        size_t need = rq->body_len + n + 1, want = next_alloc(rq, need);
        /* Doubling is a convenience, not a right: a body that fits the budget exactly (say a
         * chunked one, whose length nobody announced) gets exactly what it needs. */
        if (!budget_take(rq->h->cfg.budget, want - rq->body_alloc)) {
            want = need;
            if (!budget_take(rq->h->cfg.budget, want - rq->body_alloc)) {
                request_refuse_budget(rq);
                return;
            }
        }
        rq->body = xrealloc(rq->body, want);
        rq->body_alloc = want;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
}

static enum MHD_Result queue_reply(struct request *rq)
{
    struct exchange *ex = &rq->ex;
    struct MHD_IoVec *iov = NULL;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (ex->iov_count) {
        iov = arena_alloc(&ex->arena, ex->iov_count * sizeof(*iov));
        if (!iov)
            return MHD_NO;
        for (size_t i = 0; i < ex->iov_count; i++) {
            iov[i].iov_base = ex->iov[i].base;
            iov[i].iov_len = ex->iov[i].len;
        }
    }
    resp = MHD_create_response_from_iovec(iov, (unsigned)ex->iov_count, NULL, NULL);
    if (!resp)
        return MHD_NO;
    if (ex->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ex->content_type);
    if (ex->retry_after_s) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%u", ex->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    ret = MHD_queue_response(rq->conn, (unsigned)(ex->status ? ex->status : 500), resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Runs the handler once the whole body is in (or refused), then queues or suspends. */
static enum MHD_Result dispatch(struct request *rq)
{
    struct httpd *h = rq->h;

    rq->handled = true;
    atomic_fetch_sub(&h->uploading, 1);
    guard_phase(&h->guard, rq->conn, CONN_BUSY);
    rq->ex.body = rq->body ? rq->body : "";
    rq->ex.body_len = rq->body_len;
    if (rq->ex.body_len)
        arena_raise_cap(&rq->ex.arena, rq->ex.body_len / 2);
    h->cfg.handler(h->cfg.handler_ctx, &rq->ex);
    if (!rq->ex.deferred)
        return queue_reply(rq);
    pthread_mutex_lock(&rq->lock);
    if (!rq->done) {
        rq->suspended = true;
        MHD_suspend_connection(rq->conn);
    }
    pthread_mutex_unlock(&rq->lock);
    return rq->suspended ? MHD_YES : queue_reply(rq);
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

/* With a client CA, a request is served only on a connection whose client certificate
 * verified; that is checked on the connection's first request. */
static bool peer_allowed(struct httpd *h, struct MHD_Connection *mc, char *why, size_t cap)
{
    struct conn *c;

    if (!h->tls || !tls_server_verifies_clients(h->tls))
        return true;
    c = conn_of(mc);
    if (!c) {
        snprintf(why, cap, "the connection is not tracked");
        return false;
    }
    if (!c->peer_ok)
        c->peer_ok = tls_conn_verify(h->tls, c->tls, mc, why, cap);
    return c->peer_ok;
}

static const char *client_address(struct MHD_Connection *mc, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    socklen_t len =
        sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    if (!sa || getnameinfo(sa, len, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, cap, "unknown");
    return out;
}

/* Any client can be refused, as often as it likes: one line at warn per period, the rest at
 * debug. */
static void log_refusal(struct httpd *h, struct MHD_Connection *mc, const char *why)
{
    uint64_t now = clock_mono_ms();
    uint64_t last = atomic_load(&h->refusal_logged_ms);
    char addr[INET6_ADDRSTRLEN + 8];
    struct log_q q;
    bool warn = (last == 0 || now - last >= HTTPD_REFUSAL_LOG_MS) &&
                atomic_compare_exchange_strong(&h->refusal_logged_ms, &last, now);

    log_at(warn ? LOG_WARN : LOG_DEBUG, "http",
           "refused a client without a trusted certificate (403)",
           "listener=%s client=%s why=\"%s\"", h->cfg.name ? h->cfg.name : "",
           client_address(mc, addr, sizeof(addr)), log_quote(&q, why));
}

/* 403 with the reason, before any of the body is read; the connection closes after it. */
static enum MHD_Result refuse_peer(struct httpd *h, struct MHD_Connection *mc, const char *why)
{
    char body[384];
    int n = snprintf(body, sizeof(body), "gpu-extender: client certificate refused: %s\n", why);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    metrics_counter_add(METRICS_TLS_CLIENT_REFUSALS, 1);
    log_refusal(h, mc, why);
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(mc, MHD_HTTP_FORBIDDEN, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct httpd *h = cls;
    struct request *rq = *req_cls;
    bool done;

    (void)version;
    if (!rq) {
        char why[256];
        if (!peer_allowed(h, conn, why, sizeof(why)))
            return refuse_peer(h, conn, why);
        rq = request_new(h, conn, method, url);
        *req_cls = rq;
        guard_phase(&h->guard, conn, CONN_BODY);
        request_check_length(rq);
        /* A body we will not read is refused now; MHD then closes the connection. */
        return rq->ex.body_too_large || rq->ex.body_over_budget ? dispatch(rq) : MHD_YES;
    }
    if (*upload_data_size) {
        request_append(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* A chunked body that crosses the cap, or a body that overruns the budget, is read to
         * its end and dropped, then refused: libmicrohttpd 0.9.75 cannot queue a reply in
         * the middle of an upload. Nothing past the cap is kept, and the body deadline
         * bounds how long that takes. */
        return MHD_YES;
    }
    if (!rq->handled)
        return dispatch(rq);
    /* Resumed after a deferred reply. */
    pthread_mutex_lock(&rq->lock);
    done = rq->done;
    pthread_mutex_unlock(&rq->lock);
    return done ? queue_reply(rq) : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct httpd *h = cls;
    struct request *rq = *req_cls;

    if (!rq)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_debug("http", "request ended early", "path=%s code=%d", rq->ex.path, (int)toe);
    if (!rq->handled)
        atomic_fetch_sub(&h->uploading, 1);
    guard_phase(&h->guard, conn, CONN_IDLE);
    request_free(rq);
    *req_cls = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) GX_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct httpd *h = cls;
    const char *name = h && h->cfg.name ? h->cfg.name : "";
    char msg[512];
    struct log_q q;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    /* libmicrohttpd 0.9.75's only word on a failed TLS handshake (plain HTTP on the HTTPS
     * port, TLS below 1.2, no common cipher, a client that left mid-handshake). Any client
     * can cause one, so it is counted and logged at debug only. */
    if (strstr(msg, "handshake message out of context")) {
        metrics_counter_add(METRICS_TLS_HANDSHAKE_FAILURES, 1);
        log_debug("http", "TLS handshake failed", "listener=%s", name);
        return;
    }
    log_warn("http", "libmicrohttpd", "listener=%s detail=\"%s\"", name, log_quote(&q, msg));
}

/* Splits "host:port" or "[v6]:port" and resolves it to a socket address. */
static enum err parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *ss_len,
                             struct errbuf *eb)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hlen;
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc;

    if (!colon || colon[1] == '\0') {
        errbuf_set(eb, "listen address \"%s\" is not HOST:PORT", listen);
        return ERR_INVALID;
    }
    hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host)) {
        errbuf_set(eb, "listen host is too long");
        return ERR_INVALID;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    rc = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        errbuf_set(eb, "listen address \"%s\": %s", listen, gai_strerror(rc));
        return ERR_INVALID;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = res->ai_addrlen;
    freeaddrinfo(res);
    return ERR_OK;
}

/* Descriptors kept for everything but client connections: the API client, log, files. */
#define HTTPD_RESERVED_FDS 256

/* libmicrohttpd's memory per connection (request line, headers, read buffer), so that open
 * connections cost at most max_connections times this, whatever clients send: headers larger
 * than fit get 431. kube-scheduler's requests use under 1 KiB of it. */
#define HTTPD_CONNECTION_MEMORY_BYTES ((size_t)32 * 1024)

/* The connection limit the descriptor limit allows: past it, accept() would fail with EMFILE,
 * which libmicrohttpd 0.9.75 does not recover from (it stops accepting and stops closing the
 * connections its clients have left; the daemon is wedged until restarted). The soft limit is
 * raised to the hard one first; each of two listeners may then use half of it. */
static unsigned connection_limit(const struct httpd_config *cfg)
{
    unsigned want = cfg->max_connections ? cfg->max_connections : 10000;
    struct rlimit rl;
    rlim_t room;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    room =
        rl.rlim_cur > (rlim_t)2 * HTTPD_RESERVED_FDS ? (rl.rlim_cur - HTTPD_RESERVED_FDS) / 2 : 16;
    if (rl.rlim_cur != RLIM_INFINITY && want > room) {
        log_warn("http", "fewer connections than asked: the descriptor limit is too low",
                 "listener=%s asked=%u allowed=%lu nofile=%lu", cfg->name ? cfg->name : "", want,
                 (unsigned long)room, (unsigned long)rl.rlim_cur);
        want = (unsigned)room;
    }
    return want;
}

static unsigned pool_size(unsigned threads)
{
    long n;

    if (threads)
        return threads;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Neither notification runs while the connection is being processed: STARTED comes before
 * its TLS handshake, CLOSED after libmicrohttpd has deinitialised its TLS session. */
static void notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct httpd *h = cls;
    struct conn *c = *socket_context;

    if (toe != MHD_CONNECTION_NOTIFY_STARTED && c)
        tls_set_release(c->tls);
    guard_notify(&h->guard, mc, socket_context, toe == MHD_CONNECTION_NOTIFY_STARTED);
    c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED && c && h->tls)
        c->tls = tls_conn_open(h->tls, mc);
}

static struct MHD_Daemon *start_daemon(struct httpd *h, const struct sockaddr_storage *ss)
{
    const struct httpd_config *cfg = &h->cfg;
    /* poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll loop, once a flood has
     * taken it to its connection limit, stops seeing the peers of the connections it holds
     * close (they stay in CLOSE-WAIT) and never accepts again; with poll() it recovers as
     * soon as the flood ends (tests/integration/test_hardening.py keeps that true). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    unsigned per_client = cfg->max_connections_per_client ? cfg->max_connections_per_client : 64;
    /* libmicrohttpd's own inactivity timeout backs the guard up, at the longest deadline. */
    unsigned backstop_s = (h->guard.timeout_ms[CONN_IDLE] + 999) / 1000 + 1;
    /* The HTTPS options come last: for plain HTTP the list ends where they would begin. */
    enum MHD_OPTION tls_first = h->tls ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END;
    const char *cert = h->tls ? tls_server_start_cert(h->tls) : NULL;
    const char *key = h->tls ? tls_server_start_key(h->tls) : NULL;

    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (h->tls)
        flags |= MHD_USE_TLS;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss, MHD_OPTION_THREAD_POOL_SIZE,
        pool_size(cfg->threads), MHD_OPTION_CONNECTION_LIMIT, connection_limit(cfg),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_client, MHD_OPTION_CONNECTION_TIMEOUT, backstop_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_CONNECTION_MEMORY_BYTES,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, tls_first, HTTPD_TLS_PRIORITIES, MHD_OPTION_HTTPS_MEM_CERT, cert,
        MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
}

enum err httpd_start(const struct httpd_config *cfg, struct httpd **out, struct errbuf *eb)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    struct httpd *h;
    const union MHD_DaemonInfo *info;
    enum err e = parse_listen(cfg->listen, &ss, &ss_len, eb);

    if (e != ERR_OK)
        return e;
    h = xcalloc(1, sizeof(*h));
    h->cfg = *cfg;
    h->cfg.tls_cert_file = h->cfg.tls_key_file = h->cfg.tls_client_ca_file = NULL; /* copied */
    if ((cfg->tls_cert_file && cfg->tls_cert_file[0]) ||
        (cfg->tls_key_file && cfg->tls_key_file[0])) {
        e = tls_server_new(cfg, &h->tls, eb);
        if (e != ERR_OK) {
            free(h);
            return e;
        }
    }
    if (!guard_start(&h->guard, cfg)) {
        errbuf_set(eb, "cannot start the connection watchdog thread");
        e = ERR_IO;
        goto out_stop_guard;
    }
    if (h->tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        errbuf_set(eb, "this libmicrohttpd was built without TLS");
        e = ERR_INVALID;
        goto out_stop_guard;
    }
    h->daemon = start_daemon(h, &ss);
    if (!h->daemon) {
        errbuf_set(eb, "cannot listen on %s (address in use or not local?%s)", cfg->listen,
                   h->tls ? " or TLS set-up failed: see libmicrohttpd's log line" : "");
        e = ERR_IO;
        goto out_stop_guard;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return ERR_OK;

out_stop_guard:
    guard_stop(&h->guard);
    tls_server_free(h->tls);
    free(h);
    return e;
}

unsigned httpd_connections(const struct httpd *h)
{
    struct guard *g = (struct guard *)(uintptr_t)&h->guard;
    unsigned n;

    pthread_mutex_lock(&g->lock);
    n = g->open;
    pthread_mutex_unlock(&g->lock);
    return n;
}

uint16_t httpd_port(const struct httpd *h)
{
    return h->port;
}

unsigned httpd_in_flight(const struct httpd *h)
{
    return atomic_load(&((struct httpd *)(uintptr_t)h)->in_flight);
}

/* Waits until no dispatched request is unfinished and no upload is pending (uploads get
 * upload_grace_ms), or drain_ms has passed. */
static void wait_in_flight(struct httpd *h, unsigned drain_ms, unsigned upload_grace_ms)
{
    unsigned waited = 0;

    while (waited < drain_ms) {
        unsigned all = atomic_load(&h->in_flight), up = atomic_load(&h->uploading);
        if (all == 0 || (all == up && waited >= upload_grace_ms))
            break;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
        waited += 10;
    }
}

void httpd_quiesce(struct httpd *h, unsigned drain_ms)
{
    MHD_socket fd;

    if (!h || h->quiesced)
        return;
    h->quiesced = true;
    fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    wait_in_flight(h, drain_ms, HTTPD_UPLOAD_GRACE_MS);
}

void httpd_stop(struct httpd *h, unsigned drain_ms)
{
    if (!h)
        return;
    httpd_quiesce(h, 0);
    wait_in_flight(h, drain_ms, 0); /* uploads had their grace in httpd_quiesce() */
    if (atomic_load(&h->in_flight) > 0)
        log_warn("http", "stopping with requests in flight", "count=%u uploading=%u",
                 atomic_load(&h->in_flight), atomic_load(&h->uploading));
    MHD_stop_daemon(h->daemon); /* closes every connection: each drops its certificate set */
    guard_stop(&h->guard);
    tls_server_free(h->tls);
    free(h);
}
