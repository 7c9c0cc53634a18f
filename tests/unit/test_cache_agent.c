/* test_cache_agent.c -- what the node agent publishes, as the cache uses it: its
 * gpus-in-use is authoritative for the pods it lists, disagreements with our books are
 * counted once per pod, and an unreadable list leaves our books as they were. */
#include "gx/arena.h"
#include "gx/cache.h"
#include "gx/metrics.h"

#include "check.h"

/* Four GPUs, two NVLink pairs (0-1, 2-3), all healthy. */
static const char quad[] = "{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3}],"
                           "\"links\":[[0,1,\"NV4\"],[2,3,\"NV4\"]]}";

static struct node_info node(const char *name)
{
    struct node_info n;

    memset(&n, 0, sizeof(n));
    n.name = str_from_cstr(name);
    n.product = STR_LIT("NVIDIA-A100-SXM4-80GB");
    n.model = obj_model_from_product(n.product);
    n.gpu_allocatable = 4;
    n.ann_topology = str_from_cstr(quad);
    return n;
}

static struct pod_info bound(const char *uid, const char *name, int64_t gpus, const char *gpus_ann)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.uid = str_from_cstr(uid);
    p.ns = STR_LIT("ml");
    p.name = str_from_cstr(name);
    p.node_name = STR_LIT("n1");
    p.gpus = gpus;
    p.phase = STR_LIT("Running");
    p.ann_gpus = gpus_ann ? str_from_cstr(gpus_ann) : STR_NULL;
    return p;
}

struct seen {
    uint32_t named, free;
    unsigned unknown;
    bool agent, pods_known;
    size_t pods;
    char changed_at[64];
};

static struct seen look(struct cache *c)
{
    struct cache_snapshot *s = cache_snapshot_acquire(c);
    const struct cache_node *n = cache_snapshot_find(s, STR_LIT("n1"));
    struct seen out = {
        n->named_mask, n->free_mask, n->unknown_used, n->agent != NULL, false, 0, ""};

    if (n->agent) {
        out.pods_known = n->agent->pods_known;
        out.pods = n->agent->pods;
        snprintf(out.changed_at, sizeof(out.changed_at), "%s", n->agent->changed_at);
    }
    cache_snapshot_release(s);
    return out;
}

static void synced(struct cache *c)
{
    cache_nodes_relist_begin(c);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
}

/* Bind recorded GPUs 0,1 for train-0; the device plugin gave it 2,3, and the agent says so. */
static void test_agent_wins(void)
{
    struct cache *c = cache_new();
    struct node_info n = node("n1");
    struct pod_info p = bound("u1", "train-0", 2, "0,1");
    uint64_t drift = metrics_counter_get(METRICS_AGENT_DISAGREE_INDICES);
    struct seen v;

    synced(c);
    cache_node_upsert(c, &n);
    cache_pod_upsert(c, &p);
    v = look(c);
    CHECK(!v.agent);
    CHECK_EQ(v.named, 0x3u); /* our books alone */

    n.ann_gpus_in_use = STR_LIT("2,3");
    n.ann_gpu_pods = STR_LIT("{\"ml/train-0\":\"2,3\"}");
    n.ann_agent = STR_LIT("{\"version\":\"0.1.0\",\"source\":\"nvml+podresources\"}");
    n.ann_agent_changed_at = STR_LIT("2026-12-05T12:00:00Z");
    cache_node_upsert(c, &n);
    v = look(c);
    CHECK(v.agent);
    CHECK(v.pods_known);
    CHECK_EQ(v.pods, 1);
    CHECK_STR_EQ(v.changed_at, "2026-12-05T12:00:00Z");
    CHECK_EQ(v.named, 0xcu); /* the node's report, not 0,1 as well */
    CHECK_EQ(v.free, 0x3u);
    CHECK_EQ(v.unknown, 0);
    CHECK_EQ(metrics_counter_get(METRICS_AGENT_DISAGREE_INDICES), drift + 1);

    /* The same facts again, and an update of the pod: counted once. */
    cache_node_upsert(c, &n);
    cache_pod_upsert(c, &p);
    CHECK_EQ(look(c).named, 0xcu);
    CHECK_EQ(metrics_counter_get(METRICS_AGENT_DISAGREE_INDICES), drift + 1);

    /* A pod bound since the agent last looked counts by its own annotation until it is listed. */
    {
        struct pod_info q = bound("u2", "train-1", 1, "0");

        cache_pod_upsert(c, &q);
        v = look(c);
        CHECK_EQ(v.named, 0xdu);
        CHECK_EQ(v.free, 0x2u);
        n.ann_gpus_in_use = STR_LIT("0,2,3");
        n.ann_gpu_pods = STR_LIT("{\"ml/train-0\":\"2,3\",\"ml/train-1\":\"0\"}");
        cache_node_upsert(c, &n);
        CHECK_EQ(look(c).named, 0xdu);
        CHECK_EQ(metrics_counter_get(METRICS_AGENT_DISAGREE_INDICES), drift + 1);
        cache_pod_delete(c, &q);
        /* Gone from the API server, still in the node's report until the agent looks again. */
        CHECK_EQ(look(c).named, 0xdu);
        n.ann_gpus_in_use = STR_LIT("2,3");
        n.ann_gpu_pods = STR_LIT("{\"ml/train-0\":\"2,3\"}");
        cache_node_upsert(c, &n);
        CHECK_EQ(look(c).named, 0xcu);
    }

    /* Preemption weighs the victim's real GPUs. */
    {
        struct arena a;
        struct cache_preempt_view pv;
        struct str name = STR_LIT("n1");

        arena_init(&a, 1 << 16);
        CHECK_EQ(cache_preempt_view(c, &name, 1, &a, &pv), ERR_OK);
        CHECK_EQ(pv.nodes[0].pod_count, 1);
        CHECK_EQ(pv.nodes[0].pods[0].mask, 0xcu);
        cache_snapshot_release(pv.snap);
        arena_destroy(&a);
    }

    /* The agent goes away: our own books again. */
    n.ann_gpus_in_use = n.ann_gpu_pods = n.ann_agent = n.ann_agent_changed_at = STR_NULL;
    cache_node_upsert(c, &n);
    v = look(c);
    CHECK(!v.agent);
    CHECK_EQ(v.named, 0x3u);
    cache_free(c);
}

/* A node that reports a different number of GPUs than the pod asked for; an unreadable list. */
static void test_count_and_unreadable(void)
{
    struct cache *c = cache_new();
    struct node_info n = node("n1");
    struct pod_info p = bound("u1", "solo", 1, NULL);
    uint64_t count = metrics_counter_get(METRICS_AGENT_DISAGREE_COUNT);
    uint64_t invalid = metrics_counter_get(METRICS_AGENT_INVALID);
    struct seen v;

    synced(c);
    cache_node_upsert(c, &n);
    cache_pod_upsert(c, &p);
    CHECK_EQ(look(c).unknown, 1); /* nobody said which */
    n.ann_gpus_in_use = STR_LIT("1,2");
    n.ann_gpu_pods = STR_LIT("{\"ml/solo\":\"1,2\"}");
    cache_node_upsert(c, &n);
    v = look(c);
    CHECK_EQ(v.named, 0x6u);
    CHECK_EQ(v.unknown, 0);
    CHECK_EQ(metrics_counter_get(METRICS_AGENT_DISAGREE_COUNT), count + 1);

    /* Unreadable lists: the pods count by their own annotations, the refusal is counted once. */
    {
        static const char *const bad[] = {"[]", "{\"ml/solo\":1}", "{\"ml/solo\":\"x\"}",
                                          "{\"a\":", "{\"ml/solo\":\"0\"} trailing"};

        for (size_t i = 0; i < GX_ARRAY_LEN(bad); i++) {
            n.ann_gpu_pods = str_from_cstr(bad[i]);
            cache_node_upsert(c, &n);
            v = look(c);
            CHECK(v.agent);
            CHECK(!v.pods_known);
            CHECK_EQ(v.named, 0x6u); /* gpus-in-use still names 1,2 */
        }
        CHECK_EQ(metrics_counter_get(METRICS_AGENT_INVALID), invalid + 1);
    }
    cache_free(c);
}

int main(void)
{
    test_agent_wins();
    test_count_and_unreadable();
    printf("test_cache_agent: ok\n");
    return 0;
}
