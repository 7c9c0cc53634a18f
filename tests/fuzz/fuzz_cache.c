/* fuzz_cache.c -- libFuzzer target for what the cache makes of a Node object from the API
 * server: the decoder, the topology and in-use annotations, and the node agent's gpu-pods and
 * meta, with pods of our own bound there before and after. Every snapshot must keep its
 * invariants: free GPUs are healthy and not taken, the agent's pod count is bounded by the
 * input, and deleting everything leaves nothing behind (LeakSanitizer checks the rest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/cache.h"
#include "gx/log.h"
#include "gx/topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two pods on node "n": train holds GPUs 0,1 by its own annotation, solo one unnamed GPU. */
static const char pod_train[] =
    "{\"metadata\":{\"name\":\"train\",\"namespace\":\"ml\",\"uid\":\"u-train\","
    "\"annotations\":{\"gpu-extender.io/gpus\":\"0,1\"}},\"spec\":{\"nodeName\":\"n\","
    "\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"2\"}}}]},"
    "\"status\":{\"phase\":\"Running\"}}";
static const char pod_solo[] =
    "{\"metadata\":{\"name\":\"solo\",\"namespace\":\"ml\",\"uid\":\"u-solo\"},"
    "\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":"
    "{\"nvidia.com/gpu\":\"1\"}}}]},\"status\":{\"phase\":\"Running\"}}";

static void check(struct cache *c, size_t size)
{
    struct cache_snapshot *s = cache_snapshot_acquire(c);

    for (size_t i = 0; i < s->node_count; i++) {
        const struct cache_node *n = cache_snapshot_node(s, i);

        if (n->free_mask & n->named_mask)
            abort();
        if (n->topo && (n->free_mask & ~topo_healthy_mask(n->topo)))
            abort();
        if (n->agent && (n->agent->pods > size || !n->agent->meta || !n->agent->changed_at))
            abort();
    }
    cache_snapshot_release(s);
}

static void apply(struct cache *c, bool pod, bool deleted, const char *json, size_t len)
{
    struct errbuf eb = ERRBUF_INIT;

    /* Refusing an object is one of the outcomes being fuzzed; the cache must stay whole. */
    if (cache_apply_json(c, pod, deleted, json, len, &eb) != ERR_OK && !errbuf_is_set(&eb))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cache *c = cache_new();
    const char *json = (const char *)data;

    log_set_level(LOG_ERROR);
    cache_nodes_relist_begin(c);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
    apply(c, true, false, pod_train, sizeof(pod_train) - 1);
    apply(c, false, false, json, size);
    check(c, size);
    apply(c, true, false, pod_solo, sizeof(pod_solo) - 1);
    apply(c, false, false, json, size); /* the same Node again */
    check(c, size);
    apply(c, true, true, pod_train, sizeof(pod_train) - 1);
    check(c, size);
    apply(c, false, true, json, size);
    apply(c, true, true, pod_solo, sizeof(pod_solo) - 1);
    check(c, size);
    cache_free(c);
    return 0;
}
