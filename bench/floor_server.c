/* floor_server.c -- the floor of the HTTP benchmarks: the least an HTTP/1.1 server on loopback
 * can do per request. It reads each request whole (headers, then Content-Length bytes of
 * body, so a 12 MB body costs its copy through the kernel as it does for gpu-extender) and
 * answers 200 with the 2-byte body {} on the same keep-alive connection. No routing, no
 * parsing beyond Content-Length, no allocation per request: what wrk measures against it is
 * the loopback round trip plus wrk's own cost, on this machine, in the same run.
 * --reply-bytes N answers a JSON body of N bytes instead, built once at start, so that an
 * exchange whose reply is large (a full-Nodes filter echoes megabytes of Nodes) has a floor
 * too: the same body in, the same number of bytes back, nothing done in between.
 *
 *   floor_server [--threads N] [--port-file FILE] [--reply-bytes N]
 *                                                      listens on 127.0.0.1, a free port
 *
 * N threads (default 2) each accept on their own SO_REUSEPORT socket and run an epoll loop,
 * as gpu-extender's libmicrohttpd runs one epoll loop per thread. SIGTERM/SIGINT end it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HDR_MAX 65536
#define MAX_THREADS 64

/* The whole reply, headers and body: the 2-byte {} unless --reply-bytes says otherwise. */
static char *reply;
static size_t reply_len;

struct conn {
    int fd;
    size_t hdr_len;   /* bytes of the current request's headers seen so far */
    size_t body_left; /* body bytes still to read */
    int in_body;
    char hdr[HDR_MAX];
};

static volatile sig_atomic_t stopping;
static unsigned short port;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static int listen_socket(unsigned short want)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(want);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    port = ntohs(sa.sin_port);
    return fd;
}

/* The Content-Length of the headers in c->hdr (NUL-terminated), or 0. */
static size_t content_length(const struct conn *c)
{
    const char *p = c->hdr;

    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "content-length:", 15) == 0)
            return (size_t)strtoull(p + 15, NULL, 10);
    }
    return 0;
}

/* A reply of body_len bytes: {} or {"x":"aaa...a"}, whichever length is asked (at least 2). */
static int build_reply(size_t body_len)
{
    char head[160];
    int h =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                 body_len);

    if (h < 0 || (size_t)h >= sizeof(head) || body_len < 2)
        return -1;
    reply_len = (size_t)h + body_len;
    reply = malloc(reply_len);
    if (!reply)
        return -1;
    memcpy(reply, head, (size_t)h);
    if (body_len < 8) {
        memset(reply + h, ' ', body_len);
        reply[h] = '{';
        reply[reply_len - 1] = '}';
    } else {
        memcpy(reply + h, "{\"x\":\"", 6);
        memset(reply + h + 6, 'a', body_len - 8);
        memcpy(reply + reply_len - 2, "\"}", 2);
    }
    return 0;
}

static int send_reply(int fd)
{
    size_t off = 0;

    while (off < reply_len) {
        ssize_t n = send(fd, reply + off, reply_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* The client reads what it has: wait for room rather than spin. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 30000) <= 0)
                return -1;
            continue;
        }
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Consumes n bytes read from c: header bytes, then body bytes; replies at each request's end. */
static int consume(struct conn *c, const char *buf, size_t n)
{
    while (n > 0) {
        if (c->in_body) {
            size_t k = n < c->body_left ? n : c->body_left;
            c->body_left -= k;
            buf += k;
            n -= k;
        } else {
            /* Copy header bytes one at a time until the blank line (headers are small). */
            char ch = *buf++;
            n--;
            if (c->hdr_len + 1 >= HDR_MAX)
                return -1;
            c->hdr[c->hdr_len++] = ch;
            if (c->hdr_len >= 4 && memcmp(c->hdr + c->hdr_len - 4, "\r\n\r\n", 4) == 0) {
                c->hdr[c->hdr_len] = '\0';
                c->body_left = content_length(c);
                c->in_body = 1;
            }
        }
        if (c->in_body && c->body_left == 0) {
            if (send_reply(c->fd) != 0)
                return -1;
            c->in_body = 0;
            c->hdr_len = 0;
        }
    }
    return 0;
}

static void *serve(void *arg)
{
    int lfd = (int)(long)arg, ep = epoll_create1(0), one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[64];
    static __thread char buf[1 << 20];

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        return NULL;
    while (!stopping) {
        int n = epoll_wait(ep, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept(lfd, NULL, NULL)) >= 0) {
                    struct conn *nc = calloc(1, sizeof(*nc));
                    if (!nc || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
                        free(nc);
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.ptr = nc;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
                if (r > 0 && consume(c, buf, (size_t)r) == 0)
                    continue;
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && errno == EAGAIN)
                    break;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                free(c);
                break;
            }
        }
    }
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    int threads = 2, fds[MAX_THREADS];
    size_t reply_bytes = 2;
    pthread_t tids[MAX_THREADS];
    struct sigaction sa;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = (int)strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--port-file") && i + 1 < argc) {
            port_file = argv[++i];
        } else if (!strcmp(argv[i], "--reply-bytes") && i + 1 < argc) {
            reply_bytes = (size_t)strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr,
                    "usage: floor_server [--threads N] [--port-file FILE] [--reply-bytes N]\n");
            return 2;
        }
    }
    if (build_reply(reply_bytes) != 0) {
        fprintf(stderr, "floor_server: --reply-bytes must be at least 2\n");
        return 2;
    }
    if (threads < 1 || threads > MAX_THREADS)
        threads = 2;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (int i = 0; i < threads; i++) {
        fds[i] = listen_socket(i ? port : 0);
        if (fds[i] < 0) {
            perror("floor_server: listen");
            return 1;
        }
    }
    if (port_file) { /* written whole, then renamed: a reader never sees half a number */
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0)
            return 1;
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, serve, (void *)(long)fds[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
