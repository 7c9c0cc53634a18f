/* test_bind_choice.c -- the reservation a bind makes before it POSTs: the rule it records,
 * the GPU set it names (the best-connected, as prioritize scored it), UUIDs only when every
 * GPU of the set has one, a retried bind keeping its set, and a refusal when the GPUs are
 * gone. */
#include "gx/bind_choice.h"
#include "gx/policy.h"

#include "check.h"

/* 4 GPUs: 0-1 and 2-3 joined by NVLink, the pairs across by SYS. GPU 3 has no UUID. */
static const char topology[] =
    "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-a\"},{\"index\":1,\"uuid\":\"GPU-b\"},"
    "{\"index\":2,\"uuid\":\"GPU-c\"},{\"index\":3}],"
    "\"links\":[[0,1,\"NV4\"],[2,3,\"NV4\"]]}";

static const char policy_text[] = "apiVersion: gpu-extender.io/v1alpha1\n"
                                  "kind: GPUPolicy\n"
                                  "rules:\n"
                                  "  - name: train\n"
                                  "    match: {namespaces: [ml]}\n";

static void add_node(struct cache *c, const char *name, int64_t gpus, const char *topo)
{
    struct node_info n = {.gpu_allocatable = gpus, .product = STR_LIT("NVIDIA-H100-80GB-HBM3")};

    n.name = str_from_cstr(name);
    n.model = n.product;
    n.ann_topology = topo ? str_from_cstr(topo) : STR_NULL;
    cache_node_upsert(c, &n);
}

static struct cache *synced_cache(void)
{
    struct cache *c = cache_new();

    cache_nodes_relist_begin(c);
    add_node(c, "topo", 4, topology);
    add_node(c, "plain", 4, NULL);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
    return c;
}

static struct pod_info pod(const char *ns, const char *uid, int64_t gpus)
{
    struct pod_info p = {.gpus = gpus, .phase = STR_LIT("Pending")};

    p.ns = str_from_cstr(ns);
    p.name = str_from_cstr(uid);
    p.uid = str_from_cstr(uid);
    return p;
}

static struct policy_store *store(void)
{
    struct policy *pol = NULL;

    CHECK_EQ(policy_parse("test", policy_text, sizeof(policy_text) - 1, &pol, NULL), ERR_OK);
    return policy_store_new(pol, "");
}

static enum err reserve(struct bind_choice_ctx *ctx, const struct pod_info *p, const char *node,
                        struct kube_bind_choice *choice, struct errbuf *eb)
{
    return bind_choice_reserve(ctx, p, node, choice, eb);
}

static void test_named_sets(struct bind_choice_ctx *ctx)
{
    struct kube_bind_choice ch;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info a = pod("ml", "a", 2), b = pod("default", "b", 2), c = pod("ml", "c", 1);

    /* Two GPUs: an NVLink pair; the lowest mask among equals is 0,1, whose UUIDs are known. */
    CHECK_EQ(reserve(ctx, &a, "topo", &ch, &eb), ERR_OK);
    CHECK_STR_EQ(ch.gpus, "0,1");
    CHECK_STR_EQ(ch.gpu_uuids, "GPU-a,GPU-b");
    CHECK_STR_EQ(ch.rule, "train");
    /* The other pair holds GPU 3, which has no UUID: the set is recorded by index only. */
    CHECK_EQ(reserve(ctx, &b, "topo", &ch, &eb), ERR_OK);
    CHECK_STR_EQ(ch.gpus, "2,3");
    CHECK_STR_EQ(ch.gpu_uuids, "");
    CHECK_STR_EQ(ch.rule, "default");
    /* A retried bind of the same pod keeps the set its reservation holds. */
    CHECK_EQ(reserve(ctx, &a, "topo", &ch, &eb), ERR_OK);
    CHECK_STR_EQ(ch.gpus, "0,1");
    /* Nothing is left: refused, with the reason. */
    CHECK_EQ(reserve(ctx, &c, "topo", &ch, &eb), ERR_UNAVAILABLE);
    CHECK(eb.msg[0] != '\0');
    /* A failed bind gives its GPUs back, and the next pod gets them. */
    bind_choice_release(ctx, "b", "topo");
    errbuf_clear(&eb);
    CHECK_EQ(reserve(ctx, &c, "topo", &ch, &eb), ERR_OK);
    CHECK(strcmp(ch.gpus, "2") == 0 || strcmp(ch.gpus, "3") == 0);
}

static void test_count_only(struct bind_choice_ctx *ctx)
{
    struct kube_bind_choice ch;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info p = pod("ml", "d", 3);

    /* No topology: a count-only reservation names no GPUs. */
    CHECK_EQ(reserve(ctx, &p, "plain", &ch, &eb), ERR_OK);
    CHECK_STR_EQ(ch.gpus, "");
    CHECK_STR_EQ(ch.gpu_uuids, "");
    CHECK_STR_EQ(ch.rule, "train");
    CHECK_EQ(reserve(ctx, &(struct pod_info){.uid = STR_LIT("e"), .gpus = 2}, "plain", &ch, &eb),
             ERR_UNAVAILABLE);
    errbuf_clear(&eb);
    CHECK_EQ(reserve(ctx, &p, "nowhere", &ch, &eb), ERR_NOT_FOUND);
}

/* A pod whose annotation its rule does not accept is still reserved, by count, with no rule:
 * filter has already told the scheduler; the bind must not name a set it did not decide. */
static void test_undecided_pod(struct bind_choice_ctx *ctx)
{
    struct kube_bind_choice ch;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info p = pod("ml", "f", 1);

    p.ann_strategy = STR_LIT("fastest");
    bind_choice_release(ctx, "c", "topo");
    CHECK_EQ(reserve(ctx, &p, "topo", &ch, &eb), ERR_OK);
    CHECK_STR_EQ(ch.rule, "");
    CHECK_STR_EQ(ch.gpus, "");
}

static void test_hooks(struct bind_choice_ctx *ctx)
{
    struct kube_bind_hooks h = bind_choice_hooks(ctx);
    struct kube_bind_choice ch;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info p = pod("ml", "g", 8);

    CHECK(h.ctx == ctx);
    CHECK(!h.reserve(h.ctx, &p, "topo", &ch, &eb));
    CHECK(eb.msg[0] != '\0');
    h.release(h.ctx, "g", "topo"); /* none held: a no-op */
}

int main(void)
{
    struct bind_choice_ctx ctx = {.cache = synced_cache(), .policies = store()};

    test_named_sets(&ctx);
    test_count_only(&ctx);
    test_undecided_pod(&ctx);
    test_hooks(&ctx);
    cache_free(ctx.cache);
    policy_store_free(ctx.policies);
    printf("test_bind_choice: ok\n");
    return 0;
}
