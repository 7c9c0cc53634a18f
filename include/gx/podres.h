/* podres.h -- the kubelet's PodResources API (podresources v1, gRPC over a unix socket): which
 * devices each container of each pod on this node holds. Every use of nghttp2 and protobuf-c
 * lives in src/podres.
 *
 * Thread safety: calls share nothing; one call per thread at a time. */
#pragma once

#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"

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
 * (containers and pods without devices do not appear). Errors: ERR_IO (cannot connect),
 * ERR_TIMEOUT, ERR_UPSTREAM (a gRPC status other than OK, with its message), ERR_PARSE (a reply
 * that is not a valid ListPodResourcesResponse), ERR_TOO_LARGE (a reply over 16 MiB). */
enum err podres_list(const char *socket_path, long timeout_ms, struct podres_list *out,
                     struct errbuf *eb) GX_MUST_CHECK;
/* Frees what podres_list() filled and empties *l. Idempotent. */
void podres_list_free(struct podres_list *l);
