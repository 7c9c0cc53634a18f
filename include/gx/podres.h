/* podres.h -- the kubelet's PodResources API (podresources v1, gRPC over a unix socket): which
 * devices each container of each pod on this node holds. Every use of nghttp2 and protobuf-c
 * lives in src/podres.
 *
 * Thread safety: calls share nothing; one call per thread at a time. */
#pragma once

#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"

/* The largest gRPC message accepted from the kubelet: a bigger reply fails with ERR_TOO_LARGE
 * as soon as its length prefix arrives. */
#define PODRES_MAX_REPLY_BYTES (16u << 20)
/* The most device rows one reply may yield (a node has tens to thousands); past it,
 * ERR_TOO_LARGE. */
#define PODRES_MAX_DEVICES (1u << 20)

/* One device held by one container: one (pod, container, resource, device id) row of the
 * List reply. Strings are NUL-terminated and live as long as the list. */
struct podres_device {
    const char *ns;
    const char *pod;
    const char *container;
    const char *resource; /* "nvidia.com/gpu" */
    const char *id;       /* "GPU-8c1...", or "GPU-8c1...::3" with time-slicing */
};

struct podres_list {
    struct podres_device *v;
    size_t n;
    void *priv; /* storage; podres_list_free() frees it */
};

/* Calls v1.PodResourcesLister/List on the unix socket at socket_path within timeout_ms
 * (connect, request and whole reply). On success *out holds every device of every container
 * (containers and pods without devices do not appear), one row per device id, in the order of
 * the reply; an empty node gives n == 0 and v == NULL. *out is written only on success; the
 * caller frees it with podres_list_free(). Errors: ERR_INVALID (timeout_ms <= 0, or a path too
 * long for a unix socket), ERR_IO (cannot connect; the connection failed or closed before the
 * reply ended), ERR_TIMEOUT, ERR_UPSTREAM (a gRPC status other than OK, with its code and
 * message; an HTTP status other than 200; the stream reset by the kubelet), ERR_PARSE (bad
 * HTTP/2 or gRPC framing, or a reply that is not a valid ListPodResourcesResponse),
 * ERR_TOO_LARGE (a reply over PODRES_MAX_REPLY_BYTES or with over PODRES_MAX_DEVICES rows),
 * ERR_NOMEM (nghttp2 could not allocate). */
enum err podres_list(const char *socket_path, long timeout_ms, struct podres_list *out,
                     struct errbuf *eb) GX_MUST_CHECK;
/* Frees what podres_list() filled and empties *l. Idempotent; accepts an all-zero list. */
void podres_list_free(struct podres_list *l);

/* For tests and fuzzers: what podres_list() does with the bytes the kubelet sends back, with no
 * socket. bytes is the server's side of the connection (its SETTINGS, then the reply to the
 * client's request on stream 1); its end stands for the connection closing. Same results and
 * errors as podres_list(), less ERR_TIMEOUT and ERR_INVALID. */
enum err podres_parse_reply(const void *bytes, size_t len, struct podres_list *out,
                            struct errbuf *eb) GX_MUST_CHECK;
