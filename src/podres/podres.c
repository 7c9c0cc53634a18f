/* podres.c -- one unary gRPC call, v1.PodResourcesLister/List, to the kubelet over its unix
 * socket. podres_decode.c turns the reply's message into (namespace, pod, container, resource,
 * device id) rows.
 *
 * Why nghttp2 + protobuf-c and not libgrpc: libgrpc's C core brings a C++ runtime, abseil and
 * threads of its own, and its completion-queue API is built for many concurrent streams, not one
 * unary call a second. One unary call over cleartext HTTP/2 (h2c) is a few hundred lines on
 * nghttp2, the HTTP/2 library curl and h2o use: nghttp2 does the framing, HPACK and flow control,
 * this file does the socket, the deadline and the gRPC rules on top:
 *
 *  - HTTP/2 with prior knowledge: the client preface and SETTINGS, then one stream with HEADERS
 *    (POST /v1.PodResourcesLister/List, content-type application/grpc, te trailers) and one DATA
 *    frame: the gRPC length-prefixed message (a compressed flag of 0, a 4-byte big-endian
 *    length, the encoded ListPodResourcesRequest, which is empty).
 *  - The reply: :status 200, DATA frames that concatenate to one length-prefixed message, then
 *    trailers with grpc-status and grpc-message. A reply with no message ("Trailers-Only") has
 *    grpc-status in its only HEADERS. We never offer compression, so a compressed message is an
 *    error. A length prefix over PODRES_MAX_REPLY_BYTES fails at once, before the body arrives.
 *
 * The nghttp2 session is driven with mem_send/mem_recv, not its socket callbacks, so that
 * podres_parse_reply() can feed it bytes with no socket (tests, fuzzing) through the same code as
 * podres_list(). One deadline covers connect, request and reply; writes use MSG_NOSIGNAL.
 * Nothing here logs or keeps state between calls. */
#include "gx/podres.h"

#include <errno.h>
#include <limits.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/str.h"

#include "podres_decode.h"
#include "podresources.pb-c.h"

#define PODRES_PATH "/v1.PodResourcesLister/List"
/* Flow-control window for the stream and the connection, larger than HTTP/2's default 64 KiB
 * so that a reply of megabytes does not wait on a window update every 32 KiB. */
#define PODRES_WINDOW_BYTES (1 << 20)
#define PODRES_READ_BYTES 16384
#define PODRES_GRPC_MSG_BYTES 512
#define PODRES_H2_ERR_BYTES 160
#define PODRES_GOODBYE_FRAMES 8

/* One call's state: the nghttp2 session, what arrived on our stream, and the first error a
 * callback met (callbacks cannot return an enum err through nghttp2). */
struct call {
    nghttp2_session *h2;
    int32_t stream_id;
    uint8_t req[PODRES_GRPC_PREFIX_BYTES + 16];
    size_t req_len, req_off;
    const uint8_t *out; /* nghttp2's bytes not yet written; valid until the next mem_send */
    size_t out_len;
    size_t in_bytes;  /* received so far */
    struct buf body;  /* our stream's DATA: the length-prefixed reply message */
    int http_status;  /* 0 until :status */
    long grpc_status; /* -1 until grpc-status */
    char grpc_msg[PODRES_GRPC_MSG_BYTES];
    char h2_err[PODRES_H2_ERR_BYTES]; /* nghttp2's word on a protocol error, if any */
    bool closed;                      /* our stream is closed */
    uint32_t close_code;
    enum err err;
    struct errbuf *eb;
};

static const char *const grpc_code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

static const char *grpc_code_name(long code)
{
    if (code < 0 || (size_t)code >= GX_ARRAY_LEN(grpc_code_names))
        return "unknown code";
    return grpc_code_names[code];
}

/* Records the first error of the call and cancels our stream. A callback returns what this
 * returns: 0, since failing the callback itself would leave the session unusable, and the
 * GOAWAY that ends the call would not go out. */
static int call_fail(struct call *c, enum err e, const char *fmt, ...) GX_PRINTF(3, 4);
static int call_fail(struct call *c, enum err e, const char *fmt, ...)
{
    char msg[ERRBUF_LEN];
    va_list ap;

    if (c->err == ERR_OK) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        c->err = e;
        errbuf_set(c->eb, "%s", msg);
        (void)nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_CANCEL);
    }
    return 0;
}

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded UTF-8. It ends up in log lines, so control bytes become '?'. */
static void grpc_msg_decode(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        uint8_t ch = v[i];

        if (ch == '%' && i + 2 < len && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
            ch = (uint8_t)(hexval(v[i + 1]) << 4 | hexval(v[i + 2]));
            i += 2;
        }
        dst[n++] = (char)(ch < 0x20 || ch == 0x7f ? '?' : ch);
    }
    dst[n] = '\0';
}

/* content-type is "application/grpc", optionally followed by "+proto", ";..." and the like. */
static bool is_grpc_type(struct str v)
{
    static const char grpc[] = "application/grpc";

    if (!str_has_prefix(v, grpc))
        return false;
    return v.len == sizeof(grpc) - 1 || v.ptr[sizeof(grpc) - 1] == '+' ||
           v.ptr[sizeof(grpc) - 1] == ';';
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    struct call *c = user_data;
    struct str n = {(const char *)name, namelen}, v = {(const char *)value, valuelen};
    int64_t num;

    (void)h2;
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c->stream_id ||
        c->err != ERR_OK)
        return 0;
    if (str_eq_cstr(n, ":status")) {
        /* nghttp2 has checked it is three digits. */
        if (str_to_i64(v, 100, 999, &num) == ERR_OK)
            c->http_status = (int)num;
    } else if (str_eq_cstr(n, "grpc-status")) {
        if (str_to_i64(v, 0, INT32_MAX, &num) != ERR_OK)
            return call_fail(c, ERR_PARSE, "the kubelet's grpc-status is not a number");
        c->grpc_status = (long)num;
    } else if (str_eq_cstr(n, "grpc-message")) {
        grpc_msg_decode(c->grpc_msg, sizeof(c->grpc_msg), value, valuelen);
    } else if (str_eq_cstr(n, "content-type") && c->http_status == 200 && !is_grpc_type(v)) {
        /* An HTTP error's page may have any type; a 200 must be gRPC. */
        return call_fail(c, ERR_PARSE, "the kubelet's reply is not gRPC (content-type)");
    }
    return 0;
}

/* Checks the 5-byte prefix as soon as it is here, so a huge or compressed reply fails before
 * its body arrives. */
static int body_check_prefix(struct call *c)
{
    const uint8_t *p = (const uint8_t *)c->body.ptr;
    uint32_t declared;

    if (c->body.len < PODRES_GRPC_PREFIX_BYTES)
        return 0;
    declared = podres_be32(p + 1);
    if (p[0] != 0)
        return call_fail(c, ERR_PARSE,
                         p[0] == 1 ? "the kubelet's reply is compressed, which we "
                                     "never offered"
                                   : "the kubelet's reply has a bad gRPC prefix");
    if (declared > PODRES_MAX_REPLY_BYTES)
        return call_fail(c, ERR_TOO_LARGE, "the kubelet's reply is over %u MiB",
                         PODRES_MAX_REPLY_BYTES >> 20);
    if (c->body.len > PODRES_GRPC_PREFIX_BYTES + declared)
        return call_fail(c, ERR_PARSE, "the kubelet's reply holds more than one gRPC message");
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data)
{
    struct call *c = user_data;

    (void)h2;
    (void)flags;
    if (stream_id != c->stream_id || c->err != ERR_OK)
        return 0;
    if (buf_append(&c->body, data, len) != ERR_OK)
        return call_fail(c, ERR_TOO_LARGE, "the kubelet's reply is over %u MiB",
                         PODRES_MAX_REPLY_BYTES >> 20);
    return body_check_prefix(c);
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct call *c = user_data;

    (void)h2;
    if (stream_id == c->stream_id) {
        c->closed = true;
        c->close_code = error_code;
    }
    return 0;
}

/* Keeps nghttp2's first word on a protocol error, for the message if the call fails of it. */
static void note_h2_err(struct call *c, const char *msg, size_t len)
{
    size_t n = 0;

    if (c->h2_err[0])
        return;
    for (; n < len && n + 1 < sizeof(c->h2_err); n++) {
        unsigned char ch = (unsigned char)msg[n];

        c->h2_err[n] = (char)(ch < 0x20 || ch >= 0x7f ? '?' : ch);
    }
    c->h2_err[n] = '\0';
}

static int on_invalid_frame(nghttp2_session *h2, const nghttp2_frame *frame, int lib_error_code,
                            void *user_data)
{
    const char *msg = nghttp2_strerror(lib_error_code);

    (void)h2;
    (void)frame;
    note_h2_err(user_data, msg, strlen(msg));
    return 0;
}

static int on_h2_error(nghttp2_session *h2, int lib_error_code, const char *msg, size_t len,
                       void *user_data)
{
    (void)h2;
    (void)lib_error_code;
    note_h2_err(user_data, msg, len);
    return 0;
}

/* nghttp2 answers a protocol error of the kubelet's with a GOAWAY or RST_STREAM of its own. */
static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data)
{
    struct call *c = user_data;
    const nghttp2_goaway *g = &frame->goaway;
    char msg[PODRES_H2_ERR_BYTES];

    (void)h2;
    if (frame->hd.type == NGHTTP2_GOAWAY && g->error_code != NGHTTP2_NO_ERROR) {
        int n = g->opaque_data_len < 100 ? (int)g->opaque_data_len : 100;

        snprintf(msg, sizeof(msg), "%s (%.*s)", nghttp2_http2_strerror(g->error_code), n,
                 n > 0 ? (const char *)g->opaque_data : "");
        note_h2_err(c, msg, strlen(msg));
    } else if (frame->hd.type == NGHTTP2_RST_STREAM && frame->hd.stream_id == c->stream_id) {
        const char *why = nghttp2_http2_strerror(frame->rst_stream.error_code);

        note_h2_err(c, why, strlen(why));
    }
    return 0;
}

static ssize_t read_request(nghttp2_session *h2, int32_t stream_id, uint8_t *dst, size_t len,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct call *c = user_data;
    size_t n = c->req_len - c->req_off;

    (void)h2;
    (void)stream_id;
    (void)source;
    if (n > len)
        n = len;
    memcpy(dst, c->req + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* nghttp2 only reads the names and values (NGHTTP2_NV_FLAG_NO_COPY_*), but its struct is not
 * const-qualified. */
static nghttp2_nv header(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, strlen(name),
                     strlen(value), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};

    return nv;
}

static enum err h2_error(struct call *c, int rv)
{
    if (rv == NGHTTP2_ERR_NOMEM) {
        errbuf_set(c->eb, "nghttp2: %s", nghttp2_strerror(rv));
        return ERR_NOMEM;
    }
    errbuf_set(c->eb, "HTTP/2: %s", nghttp2_strerror(rv));
    return ERR_PARSE;
}

static enum err call_new_session(struct call *c)
{
    nghttp2_session_callbacks *cbs;
    int rv = nghttp2_session_callbacks_new(&cbs);

    if (rv != 0)
        return h2_error(c, rv);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_h2_error);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    rv = nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        c->h2 = NULL;
        return h2_error(c, rv);
    }
    return ERR_OK;
}

/* Queues the client's SETTINGS and the request; nothing is sent yet. */
static enum err call_submit(struct call *c)
{
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PODRES_WINDOW_BYTES},
    };
    const nghttp2_nv hdrs[] = {
        header(":method", "POST"),
        header(":scheme", "http"),
        header(":path", PODRES_PATH),
        header(":authority", "localhost"),
        header("content-type", "application/grpc"),
        header("te", "trailers"),
        header("user-agent", "gpu-extender-agent/" GX_VERSION),
    };
    nghttp2_data_provider body = {.read_callback = read_request};
    V1__ListPodResourcesRequest req = V1__LIST_POD_RESOURCES_REQUEST__INIT;
    size_t msg_len = v1__list_pod_resources_request__get_packed_size(&req);
    int rv;

    if (msg_len > sizeof(c->req) - PODRES_GRPC_PREFIX_BYTES) {
        errbuf_set(c->eb, "the ListPodResourcesRequest does not fit its buffer");
        return ERR_INVALID;
    }
    c->req[0] = 0; /* not compressed */
    podres_put_be32(c->req + 1, (uint32_t)msg_len);
    c->req_len = PODRES_GRPC_PREFIX_BYTES +
                 v1__list_pod_resources_request__pack(&req, c->req + PODRES_GRPC_PREFIX_BYTES);
    rv = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, GX_ARRAY_LEN(settings));
    if (rv == 0)
        rv =
            nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, PODRES_WINDOW_BYTES);
    if (rv != 0)
        return h2_error(c, rv);
    c->stream_id = nghttp2_submit_request(c->h2, NULL, hdrs, GX_ARRAY_LEN(hdrs), &body, NULL);
    if (c->stream_id < 0)
        return h2_error(c, c->stream_id);
    return ERR_OK;
}

static enum err call_init(struct call *c, struct errbuf *eb)
{
    enum err e;

    memset(c, 0, sizeof(*c));
    c->grpc_status = -1;
    c->eb = eb;
    buf_init(&c->body, PODRES_MAX_REPLY_BYTES + PODRES_GRPC_PREFIX_BYTES);
    e = call_new_session(c);
    if (e != ERR_OK)
        return e;
    return call_submit(c);
}

static void call_destroy(struct call *c)
{
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    buf_destroy(&c->body);
}

/* Takes the next bytes nghttp2 wants sent into c->out, once the previous ones are gone. */
static enum err call_take_output(struct call *c)
{
    ssize_t n;

    if (c->out_len > 0)
        return ERR_OK;
    n = nghttp2_session_mem_send(c->h2, &c->out);
    if (n < 0)
        return h2_error(c, (int)n);
    c->out_len = (size_t)n;
    return ERR_OK;
}

/* Hands received bytes to nghttp2. Once our stream is closed, what follows does not matter.
 * The server's first frame must be SETTINGS (RFC 9113 3.4); nghttp2 would skip anything else as
 * an unknown frame type, and an HTTP/1 reply would end in a confusing ERR_IO. */
static enum err call_feed(struct call *c, const uint8_t *in, size_t len)
{
    ssize_t rv;

    if (c->in_bytes <= 3 && c->in_bytes + len > 3 && in[3 - c->in_bytes] != NGHTTP2_SETTINGS) {
        errbuf_set(c->eb, "the kubelet does not speak HTTP/2: its first frame is not SETTINGS");
        return ERR_PARSE;
    }
    c->in_bytes += len;
    rv = nghttp2_session_mem_recv(c->h2, in, len);
    if (c->err != ERR_OK)
        return c->err;
    if (rv < 0 && !c->closed)
        return h2_error(c, (int)rv);
    return ERR_OK;
}

/* The session ended (or the bytes did) with our stream still open. */
static enum err call_cut_short(struct call *c)
{
    if (c->h2_err[0]) {
        errbuf_set(c->eb, "HTTP/2: %s", c->h2_err);
        return ERR_PARSE;
    }
    errbuf_set(c->eb, "the kubelet closed the connection before the reply ended");
    return ERR_IO;
}

/* What the closed stream says. */
static enum err call_result(struct call *c, struct podres_list *out)
{
    if (c->close_code != NGHTTP2_NO_ERROR && c->h2_err[0]) {
        errbuf_set(c->eb, "HTTP/2: %s", c->h2_err);
        return ERR_PARSE;
    }
    if (c->close_code != NGHTTP2_NO_ERROR) {
        errbuf_set(c->eb, "the kubelet reset the stream: %s",
                   nghttp2_http2_strerror(c->close_code));
        return ERR_UPSTREAM;
    }
    if (c->http_status != 200) {
        errbuf_set(c->eb, "the kubelet answered HTTP %d", c->http_status);
        return ERR_UPSTREAM;
    }
    if (c->grpc_status < 0) {
        errbuf_set(c->eb, "the kubelet's reply has no grpc-status");
        return ERR_PARSE;
    }
    if (c->grpc_status != 0) {
        errbuf_set(c->eb, "List: gRPC status %ld (%s): %s", c->grpc_status,
                   grpc_code_name(c->grpc_status), c->grpc_msg);
        return ERR_UPSTREAM;
    }
    return podres_decode_message((const uint8_t *)c->body.ptr, c->body.len, out, c->eb);
}

enum err podres_parse_reply(const void *bytes, size_t len, struct podres_list *out,
                            struct errbuf *eb)
{
    const uint8_t *in = bytes;
    struct call c;
    enum err e = call_init(&c, eb);

    for (size_t off = 0; e == ERR_OK && !c.closed;) {
        size_t n = len - off < PODRES_READ_BYTES ? len - off : PODRES_READ_BYTES;

        /* What the client would send goes nowhere. */
        while ((e = call_take_output(&c)) == ERR_OK && c.out_len > 0)
            c.out_len = 0;
        if (e != ERR_OK)
            break;
        if (n == 0 || !nghttp2_session_want_read(c.h2)) {
            e = call_cut_short(&c);
            break;
        }
        e = call_feed(&c, in + off, n);
        off += n;
    }
    if (e == ERR_OK)
        e = call_result(&c, out);
    call_destroy(&c);
    return e;
}

/* ---- the socket ---- */

/* strerror() shares one buffer between threads; the agent's caller may have others. */
static void set_errno(struct errbuf *eb, const char *what, int errnum)
{
    char tmp[128];

    if (strerror_r(errnum, tmp, sizeof(tmp)) != 0)
        snprintf(tmp, sizeof(tmp), "errno %d", errnum);
    errbuf_set(eb, "%s: %s", what, tmp);
}

static int remaining_ms(uint64_t deadline_ms)
{
    uint64_t now = clock_mono_ms();

    if (now >= deadline_ms)
        return 0;
    return deadline_ms - now > INT_MAX ? INT_MAX : (int)(deadline_ms - now);
}

/* Waits for events on fd until the deadline; *revents is 0 on ERR_TIMEOUT. */
static enum err wait_fd(int fd, short events, uint64_t deadline_ms, short *revents,
                        struct errbuf *eb)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int ms = remaining_ms(deadline_ms), rv;

        if (ms == 0)
            break;
        rv = poll(&pfd, 1, ms);
        if (rv > 0) {
            *revents = pfd.revents;
            return ERR_OK;
        }
        if (rv < 0 && errno != EINTR) {
            set_errno(eb, "poll", errno);
            return ERR_IO;
        }
    }
    *revents = 0;
    errbuf_set(eb, "the kubelet did not answer in time");
    return ERR_TIMEOUT;
}

/* A unix socket's connect() completes at once or fails with EAGAIN when the listener's backlog
 * is full; then it is retried until the deadline. */
static enum err sock_connect(const char *path, uint64_t deadline_ms, int *fd_out, struct errbuf *eb)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char what[sizeof(sa.sun_path) + 16];
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errbuf_set(eb, "socket path too long: %s", path);
        return ERR_INVALID;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_errno(eb, "socket", errno);
        return ERR_IO;
    }
    while (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int errnum = errno;

        if (errnum == EINTR)
            continue;
        if (errnum == EAGAIN && remaining_ms(deadline_ms) > 0) {
            (void)poll(NULL, 0, 10);
            continue;
        }
        close(fd);
        if (errnum == EAGAIN) {
            errbuf_set(eb, "connect %s: the kubelet's backlog stayed full", path);
            return ERR_TIMEOUT;
        }
        snprintf(what, sizeof(what), "connect %s", path);
        set_errno(eb, what, errnum);
        return ERR_IO;
    }
    *fd_out = fd;
    return ERR_OK;
}

static enum err sock_write(struct call *c, int fd)
{
    ssize_t n = send(fd, c->out, c->out_len, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return ERR_OK;
    if (n < 0) {
        set_errno(c->eb, "send to the kubelet", errno);
        return ERR_IO;
    }
    c->out += n;
    c->out_len -= (size_t)n;
    return ERR_OK;
}

static enum err sock_read(struct call *c, int fd)
{
    uint8_t in[PODRES_READ_BYTES];
    ssize_t n = recv(fd, in, sizeof(in), 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return ERR_OK;
    if (n < 0) {
        set_errno(c->eb, "recv from the kubelet", errno);
        return ERR_IO;
    }
    if (n == 0)
        return call_cut_short(c);
    return call_feed(c, in, (size_t)n);
}

/* Sends and receives until our stream closes, an error, or the deadline. */
static enum err call_run(struct call *c, int fd, uint64_t deadline_ms)
{
    enum err e = ERR_OK;

    while (e == ERR_OK && !c->closed) {
        short revents;

        e = call_take_output(c);
        if (e != ERR_OK)
            break;
        if (c->out_len == 0 && !nghttp2_session_want_read(c->h2))
            return call_cut_short(c);
        e = wait_fd(fd, (short)(POLLIN | (c->out_len > 0 ? POLLOUT : 0)), deadline_ms, &revents,
                    c->eb);
        if (e == ERR_OK && (revents & POLLOUT))
            e = sock_write(c, fd);
        if (e == ERR_OK && (revents & (POLLIN | POLLHUP | POLLERR)))
            e = sock_read(c, fd);
    }
    return e;
}

/* Best effort, never blocking: what nghttp2 still has queued (a RST_STREAM that cancels our
 * stream, window updates) and a GOAWAY, so the kubelet sees the connection end cleanly rather
 * than cut. nghttp2 hands out a frame at a time; a short write ends it, since the socket is
 * closed next anyway. Skipped when a frame is already half-written. */
static void call_goodbye(struct call *c, int fd)
{
    if (!c->h2 || c->out_len > 0)
        return;
    if (nghttp2_session_terminate_session(c->h2, c->closed ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL))
        return;
    for (int i = 0; i < PODRES_GOODBYE_FRAMES; i++) {
        if (call_take_output(c) != ERR_OK || c->out_len == 0)
            return;
        if (send(fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)c->out_len)
            return;
        c->out_len = 0;
    }
}

enum err podres_list(const char *socket_path, long timeout_ms, struct podres_list *out,
                     struct errbuf *eb)
{
    struct errbuf scratch = ERRBUF_INIT;
    uint64_t deadline_ms;
    struct call c;
    int fd = -1;
    enum err e;

    if (timeout_ms <= 0) {
        errbuf_set(eb, "timeout_ms must be positive, got %ld", timeout_ms);
        return ERR_INVALID;
    }
    deadline_ms = clock_mono_ms() + (uint64_t)timeout_ms;
    e = sock_connect(socket_path, deadline_ms, &fd, eb);
    if (e != ERR_OK)
        return e;
    e = call_init(&c, eb);
    if (e == ERR_OK)
        e = call_run(&c, fd, deadline_ms);
    if (e == ERR_OK)
        e = call_result(&c, out);
    /* The goodbye's own failures are of no interest to the caller. */
    c.eb = &scratch;
    call_goodbye(&c, fd);
    call_destroy(&c);
    close(fd);
    return e;
}

void podres_list_free(struct podres_list *l)
{
    if (!l)
        return;
    free(l->priv);
    memset(l, 0, sizeof(*l));
}
