/* podres_decode.c -- the kubelet's List reply, one gRPC message, into flat rows: the message's
 * framing, protobuf-c's unpacking under an allocation budget, and one block holding the rows and
 * their strings. No I/O; podres.c gets the message off the wire. */
#include "podres_decode.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"

#include "podresources.pb-c.h"

/* protobuf-c's allocations while unpacking one reply, counted with a per-allocation overhead:
 * generous for any reply under the caps, but a reply of millions of empty fields cannot make
 * unpacking take gigabytes. */
#define PODRES_UNPACK_BUDGET_BYTES ((size_t)PODRES_MAX_REPLY_BYTES * 8)
#define PODRES_ALLOC_OVERHEAD_BYTES 16u

/* unpack's allocations, counted against PODRES_UNPACK_BUDGET_BYTES. */
struct budget {
    ProtobufCAllocator pc;
    size_t left;
    bool exceeded;
};

static void *budget_alloc(void *data, size_t size)
{
    struct budget *b = data;

    if (size > b->left || b->left - size < PODRES_ALLOC_OVERHEAD_BYTES) {
        b->exceeded = true;
        return NULL;
    }
    b->left -= size + PODRES_ALLOC_OVERHEAD_BYTES;
    return xmalloc(size);
}

static void budget_free(void *data, void *p)
{
    (void)data;
    free(p);
}

/* The flat list is one block: the rows, then every string they point to. Strings are copied
 * once per pod, container and resource entry, and only for those that yield rows. */
struct flat {
    struct podres_device *rows;
    size_t n;
    char *str;
};

static size_t entry_bytes(const V1__ContainerDevices *d)
{
    size_t bytes = strlen(d->resource_name) + 1;

    for (size_t i = 0; i < d->n_device_ids; i++)
        bytes += strlen(d->device_ids[i]) + 1;
    return bytes;
}

/* Counts a container's rows and the bytes of their strings (the container's name included). */
static size_t container_measure(const V1__ContainerResources *c, size_t *bytes)
{
    size_t rows = 0, b = 0;

    for (size_t i = 0; i < c->n_devices; i++) {
        if (c->devices[i]->n_device_ids == 0)
            continue;
        rows += c->devices[i]->n_device_ids;
        b += entry_bytes(c->devices[i]);
    }
    if (rows > 0)
        *bytes += b + strlen(c->name) + 1;
    return rows;
}

static size_t pod_measure(const V1__PodResources *p, size_t *bytes)
{
    size_t rows = 0, b = 0;

    for (size_t i = 0; i < p->n_containers; i++)
        rows += container_measure(p->containers[i], &b);
    if (rows > 0)
        *bytes += b + strlen(p->namespace_) + 1 + strlen(p->name) + 1;
    return rows;
}

static const char *flat_str(struct flat *f, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = f->str;

    memcpy(p, s, n);
    f->str += n;
    return p;
}

/* Appends one row per device id of c; row holds the pod's strings. */
static void container_fill(struct flat *f, const V1__ContainerResources *c,
                           struct podres_device row)
{
    row.container = flat_str(f, c->name);
    for (size_t i = 0; i < c->n_devices; i++) {
        const V1__ContainerDevices *d = c->devices[i];

        if (d->n_device_ids == 0)
            continue;
        row.resource = flat_str(f, d->resource_name);
        for (size_t j = 0; j < d->n_device_ids; j++) {
            row.id = flat_str(f, d->device_ids[j]);
            f->rows[f->n++] = row;
        }
    }
}

static void pod_fill(struct flat *f, const V1__PodResources *p)
{
    struct podres_device row = {0};
    size_t ignored = 0;

    for (size_t i = 0; i < p->n_containers; i++) {
        if (container_measure(p->containers[i], &ignored) == 0)
            continue;
        if (!row.pod) {
            row.ns = flat_str(f, p->namespace_);
            row.pod = flat_str(f, p->name);
        }
        container_fill(f, p->containers[i], row);
    }
}

static enum err flatten(const V1__ListPodResourcesResponse *r, struct podres_list *out,
                        struct errbuf *eb)
{
    size_t rows = 0, bytes = 0;
    struct flat f;

    for (size_t i = 0; i < r->n_pod_resources; i++) {
        rows += pod_measure(r->pod_resources[i], &bytes);
        if (rows > PODRES_MAX_DEVICES) {
            errbuf_set(eb, "the kubelet's reply lists over %u devices", PODRES_MAX_DEVICES);
            return ERR_TOO_LARGE;
        }
    }
    memset(out, 0, sizeof(*out));
    if (rows == 0)
        return ERR_OK;
    f.rows = xmalloc(rows * sizeof(*f.rows) + bytes);
    f.n = 0;
    f.str = (char *)(f.rows + rows);
    for (size_t i = 0; i < r->n_pod_resources; i++)
        pod_fill(&f, r->pod_resources[i]);
    out->v = f.rows;
    out->n = f.n;
    out->priv = f.rows;
    return ERR_OK;
}

/* The DATA of a reply with grpc-status 0: exactly one uncompressed message. */
enum err podres_decode_message(const uint8_t *p, size_t len, struct podres_list *out,
                               struct errbuf *eb)
{
    struct budget b = {{budget_alloc, budget_free, NULL}, PODRES_UNPACK_BUDGET_BYTES, false};
    V1__ListPodResourcesResponse *r;
    enum err e;

    if (len < PODRES_GRPC_PREFIX_BYTES || p[0] != 0 ||
        len != PODRES_GRPC_PREFIX_BYTES + (size_t)podres_be32(p + 1)) {
        errbuf_set(eb, "the kubelet's reply is not one gRPC message (%zu bytes)", len);
        return ERR_PARSE;
    }
    b.pc.allocator_data = &b;
    r = v1__list_pod_resources_response__unpack(&b.pc, len - PODRES_GRPC_PREFIX_BYTES,
                                                p + PODRES_GRPC_PREFIX_BYTES);
    if (!r && b.exceeded) {
        errbuf_set(eb, "decoding the kubelet's reply needs over %zu MiB",
                   PODRES_UNPACK_BUDGET_BYTES >> 20);
        return ERR_TOO_LARGE;
    }
    if (!r) {
        errbuf_set(eb, "the kubelet's reply is not a valid ListPodResourcesResponse");
        return ERR_PARSE;
    }
    e = flatten(r, out, eb);
    v1__list_pod_resources_response__free_unpacked(r, &b.pc);
    return e;
}
