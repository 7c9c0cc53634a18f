/* fuzz_http.c -- libFuzzer target for the HTTP layer: the real server (httpd over the routes,
 * standalone, default policy) runs in this process, and each input is written as raw bytes to
 * a fresh TCP connection, which is then half-closed. The reply is read until the server closes
 * or a bound passes. Invariants, each an abort with a line on stderr:
 *  - the server answers or closes within FUZZ_REPLY_BOUND_MS (it must never hang a client);
 *  - a reply starts with "HTTP/1.1 " and a status from 100 to 599;
 *  - afterwards, no request is in flight, no body byte is reserved from the budget and no
 *    connection is open (each polled for FUZZ_SETTLE_MS).
 * The server is started once, on the first input, with short deadlines and a body budget below
 * the body cap, so the deadline, 413 and 503 paths are reachable from small inputs. Built with
 * clang (GX_FUZZ=ON) it links libFuzzer; otherwise replay_main.c replays the corpus. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gx/clock.h"
#include "gx/httpd.h"
#include "gx/log.h"
#include "gx/policy.h"
#include "gx/policy_store.h"
#include "gx/routes.h"

/* The server's deadlines; its guard checks them every 200 ms, so a connection it has to cut
 * goes within deadline + 200 ms. The bounds leave room for a sanitized build on a loaded
 * machine: with two cores shared under a load average of 8, single requests took 400 ms. */
#define FUZZ_DEADLINE_MS 200
#define FUZZ_REPLY_BOUND_MS 2000
#define FUZZ_SETTLE_MS 2000
#define FUZZ_CONNECT_BOUND_MS 5000
/* Bodies over the cap get 413 unread; the budget is below it, so some announced lengths get
 * 503, and a chunked body that grows past its first 64 KiB buffer is refused mid-upload. */
#define FUZZ_MAX_BODY_BYTES (128u << 10)
#define FUZZ_BUDGET_BYTES (96u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct server {
    struct policy_store *policies;
    struct routes *routes;
    struct httpd_budget *budget;
    struct httpd *httpd;
};

/* The one server of this process: libFuzzer gives a target no other place to keep it. */
static struct server server;

static void fail(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_http: %s (input of %zu bytes)\n", what, size);
    abort();
}

static void handle(void *ctx, struct exchange *ex)
{
    routes_handle(ctx, ex);
}

static void server_stop(void)
{
    httpd_stop(server.httpd, 1000);
    routes_free(server.routes);
    httpd_budget_free(server.budget);
    policy_store_free(server.policies);
}

static void server_start(void)
{
    struct routes_config rc = {.url_prefix = "/", .mode = "standalone"};
    struct httpd_config hc = {
        .name = "fuzz",
        .listen = "127.0.0.1:0",
        .max_body_bytes = FUZZ_MAX_BODY_BYTES,
        .threads = 2,
        .header_timeout_ms = FUZZ_DEADLINE_MS,
        .body_timeout_ms = FUZZ_DEADLINE_MS,
        .idle_timeout_ms = FUZZ_DEADLINE_MS,
        .max_connections = 64,
        .max_connections_per_client = 64,
        .handler = handle,
    };
    struct errbuf eb = ERRBUF_INIT;

    log_set_level(LOG_ERROR); /* libmicrohttpd warns about every malformed request */
    server.policies = policy_store_new(policy_new_default(), "");
    rc.policies = server.policies;
    server.routes = routes_new(&rc);
    server.budget = httpd_budget_new(FUZZ_BUDGET_BYTES);
    hc.budget = server.budget;
    hc.handler_ctx = server.routes;
    if (httpd_start(&hc, &server.httpd, &eb) != ERR_OK) {
        fprintf(stderr, "fuzz_http: cannot start the server: %s\n", eb.msg);
        abort();
    }
    atexit(server_stop);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits for events on fd until deadline_ms; returns the events, 0 when the time is up. A
 * signal (libFuzzer's timeout timer) does not end the wait. */
static short wait_fd(int fd, short events, uint64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        uint64_t now = clock_mono_ms();
        int n;

        if (now >= deadline_ms)
            return 0;
        n = poll(&p, 1, (int)(deadline_ms - now));
        if (n > 0)
            return p.revents;
        if (n == 0 || errno != EINTR)
            return 0;
    }
}

/* A non-blocking connection to the server, once the kernel has completed it: that part is
 * not the server's doing, so it has its own, longer bound. Ephemeral ports may run short for a
 * moment when connections are opened this fast; that is retried, anything else is a failure. */
static int connect_server(size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(httpd_port(server.httpd))};
    int fd = -1, err = 0;
    socklen_t len = sizeof(err);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            fail("socket() failed", size);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS)
            break;
        err = errno;
        close(fd);
        fd = -1;
        if (err != EADDRNOTAVAIL && err != EAGAIN)
            fail("cannot connect to the server", size);
        sleep_ms(10);
    }
    err = 0;
    if (fd < 0)
        fail("no ephemeral port for a connection", size);
    if (!wait_fd(fd, POLLOUT, clock_mono_ms() + FUZZ_CONNECT_BOUND_MS) ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        fail("the connection was not established", size);
    return fd;
}

/* Writes as much of the input as the server takes before the deadline, then half-closes. The
 * server may close first (a refused body): the rest is dropped, the reply still read. Returns
 * the bytes sent. */
static size_t send_input(int fd, const uint8_t *data, size_t size, uint64_t deadline_ms)
{
    size_t off = 0;

    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) &&
            wait_fd(fd, POLLOUT, deadline_ms))
            continue;
        break;
    }
    shutdown(fd, SHUT_WR);
    return off;
}

/* Reads until the server closes or the deadline. Returns the bytes read; the first few are
 * kept in head. *closed says whether the server closed (EOF or reset). */
static size_t read_reply(int fd, char *head, size_t head_cap, bool *closed, uint64_t deadline_ms)
{
    static char buf[64 << 10];
    size_t total = 0;

    *closed = false;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (total < head_cap)
                memcpy(head + total, buf,
                       (size_t)n < head_cap - total ? (size_t)n : head_cap - total);
            total += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            *closed = true;
            return total;
        }
        if (!wait_fd(fd, POLLIN, deadline_ms))
            return total;
    }
}

static bool is_status_line(const char *head, size_t len)
{
    int status;

    if (len < 12 || memcmp(head, "HTTP/1.1 ", 9) != 0)
        return false;
    for (int i = 9; i < 12; i++)
        if (head[i] < '0' || head[i] > '9')
            return false;
    status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    return status >= 100 && status <= 599;
}

/* Polls until the server holds nothing for this input, or FUZZ_SETTLE_MS. */
static void check_settled(size_t size)
{
    uint64_t deadline = clock_mono_ms() + FUZZ_SETTLE_MS;

    while (httpd_in_flight(server.httpd) != 0 || httpd_budget_used(server.budget) != 0 ||
           httpd_connections(server.httpd) != 0) {
        if (clock_mono_ms() >= deadline) {
            fprintf(stderr, "fuzz_http: in_flight=%u budget_used=%zu connections=%u\n",
                    httpd_in_flight(server.httpd), httpd_budget_used(server.budget),
                    httpd_connections(server.httpd));
            fail("the server still holds a request, body bytes or a connection", size);
        }
        sleep_ms(1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char head[16];
    bool closed;
    size_t sent, got;
    int fd;
    uint64_t deadline;

    if (!server.httpd)
        server_start();
    fd = connect_server(size);
    deadline = clock_mono_ms() + FUZZ_REPLY_BOUND_MS;
    sent = send_input(fd, data, size, deadline);
    got = read_reply(fd, head, sizeof(head), &closed, deadline);
    close(fd);
    if (!closed && got == 0) {
        fprintf(stderr, "fuzz_http: sent=%zu in_flight=%u connections=%u\n", sent,
                httpd_in_flight(server.httpd), httpd_connections(server.httpd));
        fail("no reply and no close within the bound", size);
    }
    if (got > 0 && !is_status_line(head, got < sizeof(head) ? got : sizeof(head)))
        fail("the reply does not start with \"HTTP/1.1 \" and a status", size);
    check_settled(size);
    return 0;
}
