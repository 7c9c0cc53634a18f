/* cache_agent.c -- what the node agent (gpu-extender-agent) publishes on a Node, as the cache
 * keeps it: which pod holds which GPUs, and the agent's own line. The node's
 * gpu-extender.io/gpus-in-use is authoritative for which indices are taken; a pod the agent
 * lists therefore stops adding its own gpu-extender.io/gpus to the node's taken set, and where
 * the two differ (the device plugin picked other GPUs than bind recorded) the difference is
 * counted and logged once per pod, so drift is visible instead of silent. */
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/bits.h"
#include "gx/jscan.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/topology.h"

#include "cache_internal.h"

static int agent_pod_cmp(const void *a, const void *b)
{
    const struct agent_pod *x = a, *y = b;
    uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);

    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Counts the members of {"<ns>/<pod>":"0,1",...} and checks every value; false when it is
 * not such an object. */
static bool pods_count(struct str text, size_t *n)
{
    struct jscan js;
    struct str key, v;
    uint32_t m;
    int r;

    *n = 0;
    jscan_init(&js, text.ptr, text.len, 4);
    if (!jscan_enter_object(&js))
        return false;
    while ((r = jscan_next_member(&js, &key)) == 1) {
        if (!jstr_is_plain(key) || key.len == 0 || !jscan_string(&js, &v) || !jstr_is_plain(v) ||
            !topo_mask_parse(v, &m))
            return false;
        (*n)++;
    }
    return r == 0 && jscan_finish(&js);
}

static void pods_fill(struct agent_rec *a, struct str text, char **t)
{
    struct jscan js;
    struct str key, v;

    jscan_init(&js, text.ptr, text.len, 4);
    (void)jscan_enter_object(&js);
    while (jscan_next_member(&js, &key) == 1 && jscan_string(&js, &v)) {
        struct agent_pod *p = &a->pods[a->pub.pods++];

        p->key = cache_put_string(t, key).ptr;
        p->key_len = (uint32_t)key.len;
        (void)topo_mask_parse(v, &p->mask);
    }
    qsort(a->pods, a->pub.pods, sizeof(*a->pods), agent_pod_cmp);
}

struct agent_rec *cache_agent_parse(const struct node_info *n, const struct agent_rec *prev)
{
    struct str pods = n->ann_gpu_pods.len <= AGENT_PODS_MAX ? n->ann_gpu_pods : STR_NULL;
    struct str meta = n->ann_agent.len <= AGENT_META_MAX ? n->ann_agent : STR_NULL;
    struct str at = n->ann_agent_changed_at.len <= 64 ? n->ann_agent_changed_at : STR_NULL;
    struct agent_rec *a;
    size_t count = 0;
    bool readable;
    char *t;

    if (!n->ann_gpu_pods.len && !n->ann_agent.len)
        return NULL;
    readable = pods.len > 0 && pods_count(pods, &count);
    if (n->ann_gpu_pods.len && !readable && !(prev && !prev->pub.pods_known)) {
        log_warn("state", "node agent's gpu-pods refused; its pods count by their own annotations",
                 "node=%.*s annotation=%s bytes=%zu", (int)n->name.len, n->name.ptr,
                 OBJ_ANN_GPU_PODS, n->ann_gpu_pods.len);
        metrics_counter_add(METRICS_AGENT_INVALID, 1);
    }
    if (!readable)
        count = 0;
    a = xcalloc(1, sizeof(*a) + count * sizeof(struct agent_pod) + (readable ? pods.len : 0) +
                       count + meta.len + at.len + 2);
    a->pods = (struct agent_pod *)(void *)a->text;
    t = a->text + count * sizeof(struct agent_pod);
    a->pub.pods_known = readable;
    if (readable)
        pods_fill(a, pods, &t);
    a->pub.meta = cache_put_string(&t, meta).ptr;
    a->pub.changed_at = cache_put_string(&t, at).ptr;
    return a;
}

bool cache_agent_lookup(const struct agent_rec *a, struct str ns, struct str name, uint32_t *mask)
{
    char key[2 * UINT8_MAX + 2];
    struct agent_pod want, *hit;

    if (!a || !a->pub.pods_known || ns.len + name.len + 1 > sizeof(key))
        return false;
    memcpy(key, ns.ptr, ns.len);
    key[ns.len] = '/';
    memcpy(key + ns.len + 1, name.ptr, name.len);
    want.key = key;
    want.key_len = (uint32_t)(ns.len + 1 + name.len);
    hit = bsearch(&want, a->pods, a->pub.pods, sizeof(*a->pods), agent_pod_cmp);
    if (hit)
        *mask = hit->mask;
    return hit != NULL;
}

static const struct agent_rec *agent_of(struct cache *c, struct str node)
{
    const struct strmap_entry *e = strmap_find(&c->nodes, node);

    return e ? ((const struct node_rec *)e->value)->agent : NULL;
}

void cache_agent_mark(struct cache *c, struct pod_rec *p)
{
    struct str ns = pod_rec_ns(p), name = pod_rec_name(p);
    uint32_t mask = 0;
    bool listed =
        p->counted && ns.len && cache_agent_lookup(agent_of(c, pod_rec_node(p)), ns, name, &mask);
    bool indices = listed && p->mask && mask != p->mask;
    bool count = listed && bits_popcount32(mask) != (unsigned)p->gpus;

    p->agent_listed = listed;
    if (!(indices || count) || p->agent_drift)
        return;
    p->agent_drift = true;
    {
        char ours[TOPO_MASK_STR_MAX], theirs[TOPO_MASK_STR_MAX];

        topo_mask_format(p->mask, ours, sizeof(ours));
        topo_mask_format(mask, theirs, sizeof(theirs));
        log_warn("state", "the node agent disagrees with our books; its GPUs win",
                 "node=%s pod=%.*s/%.*s gpus=%lld recorded=\"%s\" node_reports=\"%s\" kind=%s",
                 p->text, (int)ns.len, ns.ptr, (int)name.len, name.ptr, (long long)p->gpus, ours,
                 theirs, indices ? "indices" : "count");
    }
    metrics_counter_add(indices ? METRICS_AGENT_DISAGREE_INDICES : METRICS_AGENT_DISAGREE_COUNT, 1);
}

void cache_agent_resync(struct cache *c, struct str node)
{
    const struct strmap_entry *e = strmap_find(&c->on_node, node);

    for (struct pod_rec *p = e ? e->value : NULL; p; p = p->node_next) {
        bool was = p->agent_listed;

        cache_agent_mark(c, p);
        if (was != p->agent_listed)
            cache_index_add(c, node, p->mask, p->agent_listed ? -1 : 1);
    }
}
