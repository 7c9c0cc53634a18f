/* test_podres_parse.c -- podres_parse_reply(): the kubelet's side of the connection built
 * frame by frame here (HTTP/2 frames, HPACK literals, gRPC prefixes, protobuf fields), for the
 * replies a gRPC server does not produce on demand: split prefixes, Trailers-Only, HTTP errors,
 * compressed or doubled messages, missing or bad grpc-status, resets, truncation, a length
 * prefix over the cap, and replies over the row and decoding caps. test_podres.c runs the real
 * thing against a gRPC server. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/buf.h"
#include "gx/podres.h"

#include "check.h"

#define MAX_FRAME 16384 /* HTTP/2's default SETTINGS_MAX_FRAME_SIZE */
#define BIG (64u << 20)

enum { DATA = 0, HEADERS = 1, RST_STREAM = 3, SETTINGS = 4, GOAWAY = 7 };
enum { END_STREAM = 0x1, END_HEADERS = 0x4 };

static void put(struct buf *b, const void *p, size_t n)
{
    CHECK(buf_append(b, p, n) == ERR_OK);
}

static void put_byte(struct buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;

    put(b, &c, 1);
}

static void put_be32(struct buf *b, uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8)
        put_byte(b, v >> shift);
}

/* ---- protobuf ---- */

static void pb_varint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(b, (unsigned)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    put_byte(b, (unsigned)v);
}

/* A length-delimited field: a string or an embedded message. */
static void pb_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    pb_varint(b, field << 3 | 2);
    pb_varint(b, n);
    put(b, p, n);
}

static void pb_str(struct buf *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

/* ListPodResourcesResponse{pod_resources: [{name, namespace, containers: [{name: container,
 * devices: [{resource_name, device_ids: ids}]}]}]}, field numbers from the kubelet's api.proto. */
static void pb_one_pod(struct buf *out, const char *ns, const char *pod, const char *container,
                       const char *resource, const char *const *ids, size_t n_ids)
{
    struct buf dev, ctr, p;

    buf_init(&dev, BIG);
    buf_init(&ctr, BIG);
    buf_init(&p, BIG);
    pb_str(&dev, 1, resource);
    for (size_t i = 0; i < n_ids; i++)
        pb_str(&dev, 2, ids[i]);
    pb_str(&ctr, 1, container);
    pb_bytes(&ctr, 2, dev.ptr, dev.len);
    pb_str(&p, 1, pod);
    pb_str(&p, 2, ns);
    pb_bytes(&p, 3, ctr.ptr, ctr.len);
    pb_bytes(out, 1, p.ptr, p.len);
    buf_destroy(&dev);
    buf_destroy(&ctr);
    buf_destroy(&p);
}

/* ---- HTTP/2 ---- */

static void frame(struct buf *b, unsigned type, unsigned flags, uint32_t stream, const void *p,
                  size_t n)
{
    CHECK(n <= MAX_FRAME);
    put_byte(b, (unsigned)(n >> 16));
    put_byte(b, (unsigned)(n >> 8));
    put_byte(b, (unsigned)n);
    put_byte(b, type);
    put_byte(b, flags);
    put_be32(b, stream);
    if (n)
        put(b, p, n);
}

/* HEADERS on stream 1 from "name", "value", ... NULL: HPACK literals without indexing and
 * without Huffman coding, which every decoder must take. */
static void headers(struct buf *b, unsigned flags, const char *const *nv)
{
    struct buf block;

    buf_init(&block, MAX_FRAME);
    for (; *nv; nv += 2) {
        CHECK(strlen(nv[0]) < 127 && strlen(nv[1]) < 127);
        put_byte(&block, 0x00);
        put_byte(&block, (unsigned)strlen(nv[0]));
        put(&block, nv[0], strlen(nv[0]));
        put_byte(&block, (unsigned)strlen(nv[1]));
        put(&block, nv[1], strlen(nv[1]));
    }
    frame(b, HEADERS, flags | END_HEADERS, 1, block.ptr, block.len);
    buf_destroy(&block);
}

/* The server's connection preface: an empty SETTINGS frame. */
static void preface(struct buf *b)
{
    frame(b, SETTINGS, 0, 0, NULL, 0);
}

static const char *const ok_headers[] = {":status", "200", "content-type", "application/grpc",
                                         NULL};
static const char *const ok_trailers[] = {"grpc-status", "0", NULL};

/* bytes as DATA frames on stream 1, cut every `step` bytes (at most MAX_FRAME). */
static void data(struct buf *b, const void *p, size_t n, size_t step)
{
    const uint8_t *in = p;

    for (size_t off = 0; off < n; off += step)
        frame(b, DATA, 0, 1, in + off, n - off < step ? n - off : step);
}

/* A gRPC message: compressed flag, 4-byte length, the message. */
static void grpc_frame(struct buf *out, unsigned flag, const struct buf *msg)
{
    put_byte(out, flag);
    put_be32(out, (uint32_t)msg->len);
    if (msg->len)
        put(out, msg->ptr, msg->len);
}

/* The whole reply: preface, HEADERS, the message in DATA frames of `step` bytes, trailers. */
static void reply(struct buf *b, const struct buf *msg, size_t step)
{
    struct buf body;

    buf_init(&body, BIG);
    grpc_frame(&body, 0, msg);
    preface(b);
    headers(b, 0, ok_headers);
    data(b, body.ptr, body.len, step);
    headers(b, END_STREAM, ok_trailers);
    buf_destroy(&body);
}

/* ---- checks ---- */

static void expect_err(const struct buf *wire, enum err want, const char *msg_prefix)
{
    struct podres_list l = {0};
    struct errbuf eb = ERRBUF_INIT;
    enum err e = podres_parse_reply(wire->ptr, wire->len, &l, &eb);

    if (e != want || strncmp(eb.msg, msg_prefix, strlen(msg_prefix)) != 0) {
        fprintf(stderr, "wanted %s \"%s...\", got %s \"%s\"\n", err_str(want), msg_prefix,
                err_str(e), eb.msg);
        abort();
    }
    CHECK(l.n == 0 && l.v == NULL && l.priv == NULL);
}

static const char *const two_ids[] = {"GPU-aaa::0", "GPU-aaa::1"};

/* The prefix and the message cut at every size from 1 byte to whole. */
static void test_any_cut(void)
{
    struct buf msg;

    buf_init(&msg, BIG);
    pb_one_pod(&msg, "default", "train-0", "main", "nvidia.com/gpu", two_ids, 2);
    for (size_t step = 1; step <= msg.len + 5; step++) {
        struct buf wire;
        struct podres_list l = {0};
        struct errbuf eb = ERRBUF_INIT;

        buf_init(&wire, BIG);
        reply(&wire, &msg, step);
        CHECK_EQ(podres_parse_reply(wire.ptr, wire.len, &l, &eb), ERR_OK);
        CHECK_EQ(l.n, 2);
        CHECK_STR_EQ(l.v[0].ns, "default");
        CHECK_STR_EQ(l.v[0].pod, "train-0");
        CHECK_STR_EQ(l.v[0].container, "main");
        CHECK_STR_EQ(l.v[0].resource, "nvidia.com/gpu");
        CHECK_STR_EQ(l.v[0].id, "GPU-aaa::0");
        CHECK_STR_EQ(l.v[1].id, "GPU-aaa::1");
        CHECK_STR_EQ(l.v[1].pod, "train-0");
        podres_list_free(&l);
        buf_destroy(&wire);
    }
    buf_destroy(&msg);
}

static void test_empty_message(void)
{
    struct buf msg, wire;
    struct podres_list l = {0};

    buf_init(&msg, BIG);
    buf_init(&wire, BIG);
    reply(&wire, &msg, MAX_FRAME);
    CHECK_EQ(podres_parse_reply(wire.ptr, wire.len, &l, NULL), ERR_OK);
    CHECK(l.n == 0 && l.v == NULL);
    buf_destroy(&msg);
    buf_destroy(&wire);
}

static void test_trailers_only(void)
{
    static const char *const only[] = {":status",     "200", "content-type", "application/grpc",
                                       "grpc-status", "5",   "grpc-message", "no%20such%zzpod%",
                                       NULL};
    struct buf wire;

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, END_STREAM, only);
    expect_err(&wire, ERR_UPSTREAM, "List: gRPC status 5 (NOT_FOUND): no such%zzpod%");
    buf_destroy(&wire);
}

static void test_http_error(void)
{
    static const char *const h503[] = {":status", "503", "content-type", "text/plain", NULL};
    struct buf wire;

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, h503);
    frame(&wire, DATA, END_STREAM, 1, "busy", 4);
    expect_err(&wire, ERR_UPSTREAM, "the kubelet answered HTTP 503");
    buf_destroy(&wire);
}

static void test_not_grpc(void)
{
    static const char *const html[] = {":status", "200", "content-type", "text/html", NULL};
    struct buf wire;

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, END_STREAM, html);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply is not gRPC");
    buf_destroy(&wire);
}

/* Framing of the message itself: flag, length, count. */
static void test_bad_message_framing(void)
{
    struct buf msg, body, wire;

    buf_init(&msg, BIG);
    pb_one_pod(&msg, "default", "p", "c", "nvidia.com/gpu", two_ids, 2);

    buf_init(&body, BIG);
    grpc_frame(&body, 1, &msg);
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    data(&wire, body.ptr, body.len, MAX_FRAME);
    headers(&wire, END_STREAM, ok_trailers);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply is compressed, which we never offered");
    buf_destroy(&wire);
    buf_destroy(&body);

    /* Two messages where a unary call has one. */
    buf_init(&body, BIG);
    grpc_frame(&body, 0, &msg);
    grpc_frame(&body, 0, &msg);
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    data(&wire, body.ptr, body.len, MAX_FRAME);
    headers(&wire, END_STREAM, ok_trailers);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply holds more than one gRPC message");
    buf_destroy(&wire);

    /* The stream ends inside the message. */
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    data(&wire, body.ptr, msg.len, MAX_FRAME);
    headers(&wire, END_STREAM, ok_trailers);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply is not one gRPC message");
    buf_destroy(&wire);
    buf_destroy(&body);

    /* No message at all, yet OK. */
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    headers(&wire, END_STREAM, ok_trailers);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply is not one gRPC message (0 bytes)");
    buf_destroy(&wire);
    buf_destroy(&msg);
}

static void test_grpc_status(void)
{
    static const char *const none[] = {"grpc-message", "hm", NULL};
    static const char *const bad[] = {"grpc-status", "0x1", NULL};
    struct buf wire;

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    frame(&wire, DATA, 0, 1, "\0\0\0\0\0", 5);
    headers(&wire, END_STREAM, none);
    expect_err(&wire, ERR_PARSE, "the kubelet's reply has no grpc-status");
    buf_destroy(&wire);

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    frame(&wire, DATA, 0, 1, "\0\0\0\0\0", 5);
    headers(&wire, END_STREAM, bad);
    expect_err(&wire, ERR_PARSE, "the kubelet's grpc-status is not a number");
    buf_destroy(&wire);
}

static void test_reset_and_cut(void)
{
    static const uint8_t internal_error[4] = {0, 0, 0, 2};
    struct buf wire;

    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    frame(&wire, RST_STREAM, 0, 1, internal_error, 4);
    expect_err(&wire, ERR_UPSTREAM, "the kubelet reset the stream: INTERNAL_ERROR");
    buf_destroy(&wire);

    /* The bytes end before the stream does: the connection closed. */
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    frame(&wire, DATA, 0, 1, "\0\0\0", 3);
    expect_err(&wire, ERR_IO, "the kubelet closed the connection before the reply ended");
    buf_destroy(&wire);

    buf_init(&wire, BIG);
    expect_err(&wire, ERR_IO, "the kubelet closed the connection before the reply ended");
    buf_destroy(&wire);
}

static void test_not_http2(void)
{
    struct buf wire;

    buf_init(&wire, BIG);
    put(&wire, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
    expect_err(&wire, ERR_PARSE, "the kubelet does not speak HTTP/2");
    buf_destroy(&wire);

    /* A DATA frame on stream 0 is a connection error. */
    buf_init(&wire, BIG);
    preface(&wire);
    frame(&wire, DATA, 0, 0, "x", 1);
    expect_err(&wire, ERR_PARSE, "HTTP/2: ");
    buf_destroy(&wire);
}

/* The length prefix alone says too much: refused before any of the body arrives. */
static void test_prefix_over_cap(void)
{
    struct buf wire, body;

    buf_init(&body, BIG);
    put_byte(&body, 0);
    put_be32(&body, PODRES_MAX_REPLY_BYTES + 1);
    buf_init(&wire, BIG);
    preface(&wire);
    headers(&wire, 0, ok_headers);
    data(&wire, body.ptr, body.len, MAX_FRAME);
    expect_err(&wire, ERR_TOO_LARGE, "the kubelet's reply is over 16 MiB");
    buf_destroy(&wire);
    buf_destroy(&body);
}

/* n empty device ids in one container: 2 bytes each on the wire. */
static void many_ids_reply(struct buf *wire, size_t n)
{
    const char **ids = calloc(n, sizeof(*ids));
    struct buf msg;

    CHECK(ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = "";
    buf_init(&msg, BIG);
    pb_one_pod(&msg, "default", "p", "c", "example.com/foo", ids, n);
    reply(wire, &msg, MAX_FRAME);
    buf_destroy(&msg);
    free(ids);
}

static void test_row_cap(void)
{
    struct buf wire;
    struct podres_list l = {0};

    buf_init(&wire, BIG);
    many_ids_reply(&wire, PODRES_MAX_DEVICES);
    CHECK_EQ(podres_parse_reply(wire.ptr, wire.len, &l, NULL), ERR_OK);
    CHECK_EQ(l.n, PODRES_MAX_DEVICES);
    CHECK_STR_EQ(l.v[PODRES_MAX_DEVICES - 1].id, "");
    CHECK_STR_EQ(l.v[PODRES_MAX_DEVICES - 1].resource, "example.com/foo");
    podres_list_free(&l);
    buf_destroy(&wire);

    buf_init(&wire, BIG);
    many_ids_reply(&wire, PODRES_MAX_DEVICES + 1);
    expect_err(&wire, ERR_TOO_LARGE, "the kubelet's reply lists over 1048576 devices");
    buf_destroy(&wire);
}

/* Under 16 MiB on the wire, but millions of allocations to decode. */
static void test_decode_budget(void)
{
    struct buf wire;

    buf_init(&wire, BIG);
    many_ids_reply(&wire, 15u << 19); /* 7.5 M ids, 15 MiB */
    expect_err(&wire, ERR_TOO_LARGE, "decoding the kubelet's reply needs over");
    buf_destroy(&wire);
}

int main(void)
{
    test_any_cut();
    test_empty_message();
    test_trailers_only();
    test_http_error();
    test_not_grpc();
    test_bad_message_framing();
    test_grpc_status();
    test_reset_and_cut();
    test_not_http2();
    test_prefix_over_cap();
    test_row_cap();
    test_decode_budget();
    printf("test_podres_parse: ok\n");
    return 0;
}
