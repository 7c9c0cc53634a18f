/* test_cache.c -- GPU accounting, relists, reservations, snapshot lifetime and the demand facts
 * snapshots carry. */
#include <pthread.h>

#include "gx/cache.h"
#include "gx/metrics.h"

#include "check.h"

static struct node_info node(const char *name, int64_t gpus)
{
    struct node_info n;

    memset(&n, 0, sizeof(n));
    n.name = str_from_cstr(name);
    n.product = STR_LIT("NVIDIA-A100-SXM4-80GB-SHARED");
    n.model = obj_model_from_product(n.product);
    n.gpu_allocatable = gpus;
    return n;
}

static struct pod_info pod(const char *uid, const char *node_name, int64_t gpus, const char *phase)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.uid = str_from_cstr(uid);
    p.node_name = str_from_cstr(node_name);
    p.gpus = gpus;
    p.phase = str_from_cstr(phase);
    return p;
}

/* used + reserved on a node in a fresh snapshot, or -1 when the node is unknown. */
static int64_t taken(struct cache *c, const char *name)
{
    struct cache_snapshot *s = cache_snapshot_acquire(c);
    const struct cache_node *n = cache_snapshot_find(s, str_from_cstr(name));
    int64_t t = n ? n->gpus_used + n->gpus_reserved : -1;

    cache_snapshot_release(s);
    return t;
}

static void sync_empty(struct cache *c)
{
    cache_nodes_relist_begin(c);
    cache_node_upsert(c, &(struct node_info){0}); /* no name: ignored */
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
}

static void test_accounting(void)
{
    struct cache *c = cache_new();
    struct cache_snapshot *s;
    struct pod_info p;

    s = cache_snapshot_acquire(c);
    CHECK(!s->synced);
    cache_snapshot_release(s);
    sync_empty(c);
    cache_node_upsert(c, &(struct node_info){0});
    {
        struct node_info n = node("a", 8);
        cache_node_upsert(c, &n);
    }
    {
        struct node_info n = node("b", 4);
        cache_node_upsert(c, &n);
    }
    s = cache_snapshot_acquire(c);
    CHECK(s->synced);
    CHECK_EQ(s->node_count, 2);
    CHECK_STRN_EQ(cache_snapshot_find(s, STR_LIT("a"))->info.model.ptr,
                  cache_snapshot_find(s, STR_LIT("a"))->info.model.len, "NVIDIA-A100-SXM4-80GB");
    CHECK(cache_snapshot_find(s, STR_LIT("zz")) == NULL);
    cache_snapshot_release(s);

    p = pod("u1", "", 2, "Pending");
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "a"), 0);
    p = pod("u1", "a", 2, "Pending");
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "a"), 2);
    cache_pod_upsert(c, &p); /* the same update twice counts once */
    CHECK_EQ(taken(c, "a"), 2);
    p = pod("u2", "a", 3, "Running");
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "a"), 5);
    p = pod("u2", "a", 3, "Succeeded");
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "a"), 2);
    p = pod("u3", "b", 0, "Running"); /* no GPUs: not tracked */
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "b"), 0);
    p = pod("u1", "a", 2, "Running");
    p.deleting = true; /* terminating pods keep their GPUs until they are gone */
    cache_pod_upsert(c, &p);
    CHECK_EQ(taken(c, "a"), 2);
    cache_pod_delete(c, &p);
    CHECK_EQ(taken(c, "a"), 0);
    cache_node_delete(c, STR_LIT("b"));
    CHECK_EQ(taken(c, "b"), -1);
    cache_free(c);
}

static void test_relist_sweeps(void)
{
    struct cache *c = cache_new();
    struct cache_status st;
    struct pod_info p1 = pod("u1", "a", 1, "Running"), p2 = pod("u2", "a", 2, "Running");

    sync_empty(c);
    {
        struct node_info n = node("a", 8);
        cache_node_upsert(c, &n);
    }
    {
        struct node_info n = node("gone", 8);
        cache_node_upsert(c, &n);
    }
    cache_pod_upsert(c, &p1);
    cache_pod_upsert(c, &p2);
    CHECK_EQ(taken(c, "a"), 3);
    /* A relist (after 410 Gone) that no longer has "gone" or u2. */
    cache_nodes_relist_begin(c);
    {
        struct node_info n = node("a", 8);
        cache_node_upsert(c, &n);
    }
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pod_upsert(c, &p1);
    cache_pods_relist_end(c);
    CHECK_EQ(taken(c, "gone"), -1);
    CHECK_EQ(taken(c, "a"), 1);
    cache_status_get(c, &st);
    CHECK(st.synced && st.connected);
    CHECK_EQ(st.nodes, 1);
    CHECK_EQ(st.gpu_pods, 1);
    CHECK_EQ(st.relists, 4);
    cache_free(c);
}

static void test_reservations(void)
{
    struct cache *c = cache_new();
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info bound = pod("r1", "a", 2, "Pending");

    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("a"), 2, NULL, NULL, NULL, &eb),
             ERR_UNAVAILABLE);
    sync_empty(c);
    {
        struct node_info n = node("a", 4);
        cache_node_upsert(c, &n);
    }
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("nope"), 1, NULL, NULL, NULL, &eb),
             ERR_NOT_FOUND);
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("a"), 2, NULL, NULL, NULL, &eb), ERR_OK);
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("a"), 2, NULL, NULL, NULL, &eb),
             ERR_OK); /* idempotent */
    CHECK_EQ(taken(c, "a"), 2);
    CHECK_EQ(cache_reserve(c, STR_LIT("r2"), STR_LIT("a"), 2, NULL, NULL, NULL, &eb), ERR_OK);
    errbuf_clear(&eb);
    CHECK_EQ(cache_reserve(c, STR_LIT("r3"), STR_LIT("a"), 1, NULL, NULL, NULL, &eb),
             ERR_UNAVAILABLE);
    CHECK_STR_EQ(eb.msg, "node a has 0 free nvidia.com/gpu, the pod needs 1");
    /* r2's bind failed: its GPUs come back. */
    cache_release(c, STR_LIT("r2"), STR_LIT("a"));
    CHECK_EQ(taken(c, "a"), 2);
    /* r1 shows up bound: reservation becomes accounting, never counted twice. */
    cache_pod_upsert(c, &bound);
    CHECK_EQ(taken(c, "a"), 2);
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("a"), 2, NULL, NULL, NULL, &eb), ERR_OK);
    CHECK_EQ(taken(c, "a"), 2);
    cache_free(c);
}

/* A pod bound twice in flight (the scheduler retried after a timeout) holds two
 * reservations; the losing bind gives back only its own. */
static void test_second_bind_keeps_first_reservation(void)
{
    struct cache *c = cache_new();
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info p = pod("p", "a", 8, "Running");

    sync_empty(c);
    {
        struct node_info n = node("a", 8);
        cache_node_upsert(c, &n);
    }
    {
        struct node_info n = node("b", 8);
        cache_node_upsert(c, &n);
    }
    CHECK_EQ(cache_reserve(c, STR_LIT("p"), STR_LIT("a"), 8, NULL, NULL, NULL, &eb), ERR_OK);
    CHECK_EQ(cache_reserve(c, STR_LIT("p"), STR_LIT("b"), 8, NULL, NULL, NULL, &eb), ERR_OK);
    CHECK_EQ(taken(c, "a"), 8);
    CHECK_EQ(taken(c, "b"), 8);
    cache_release(c, STR_LIT("p"), STR_LIT("b")); /* that bind got a 409 */
    CHECK_EQ(taken(c, "a"), 8);
    CHECK_EQ(taken(c, "b"), 0);
    CHECK_EQ(cache_reserve(c, STR_LIT("q"), STR_LIT("a"), 8, NULL, NULL, NULL, &eb),
             ERR_UNAVAILABLE);
    cache_pod_upsert(c, &p); /* the watch shows p bound on a */
    CHECK_EQ(taken(c, "a"), 8);
    cache_pod_delete(c, &p);
    CHECK_EQ(taken(c, "a"), 0);
    cache_free(c);
}

static void test_snapshots_are_immutable(void)
{
    struct cache *c = cache_new();
    struct cache_snapshot *old, *now;
    const struct cache_node *n;
    struct pod_info p = pod("u", "a", 3, "Running");

    sync_empty(c);
    {
        struct node_info x = node("a", 8);
        cache_node_upsert(c, &x);
    }
    old = cache_snapshot_acquire(c);
    cache_pod_upsert(c, &p);
    {
        struct node_info x = node("a", 16);
        cache_node_upsert(c, &x);
    }
    cache_node_delete(c, STR_LIT("a"));
    now = cache_snapshot_acquire(c);
    n = cache_snapshot_find(old, STR_LIT("a"));
    CHECK(n != NULL);
    CHECK_EQ(n->info.gpu_allocatable, 8);
    CHECK_EQ(n->gpus_used, 0);
    CHECK_STRN_EQ(n->info.name.ptr, n->info.name.len, "a");
    CHECK(cache_snapshot_find(now, STR_LIT("a")) == NULL);
    CHECK(now->generation > old->generation);
    cache_snapshot_release(old);
    cache_snapshot_release(now);
    cache_free(c);
}

/* Many threads race to reserve one node's GPUs: exactly as many succeed as fit. */
struct race {
    struct cache *c;
    int id;
    int won;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    char uid[32];

    for (int i = 0; i < 50; i++) {
        snprintf(uid, sizeof(uid), "t%d-%d", r->id, i);
        if (cache_reserve(r->c, str_from_cstr(uid), STR_LIT("a"), 1, NULL, NULL, NULL, NULL) ==
            ERR_OK)
            r->won++;
        cache_snapshot_release(cache_snapshot_acquire(r->c));
    }
    return NULL;
}

static void test_reservation_race(void)
{
    struct cache *c = cache_new();
    struct race r[8];
    pthread_t t[8];
    int won = 0;

    sync_empty(c);
    {
        struct node_info x = node("a", 37);
        cache_node_upsert(c, &x);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){c, i, 0};
        pthread_create(&t[i], NULL, racer, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        won += r[i].won;
    }
    CHECK_EQ(won, 37);
    CHECK_EQ(taken(c, "a"), 37);
    cache_free(c);
}

static const char box4[] =
    "{\"gpus\":[{\"index\":0,\"uuid\":\"GPU-a\"},{\"index\":1,\"uuid\":\"GPU-b\"},"
    "{\"index\":2,\"uuid\":\"GPU-c\"},{\"index\":3,\"uuid\":\"GPU-d\",\"healthy\":false}],"
    "\"links\":[[0,1,\"NV4\"],[2,3,\"NV4\"]]}";

/* The node as the current snapshot shows it; the snapshot is released at once, so only the
 * numbers may be used. */
static struct cache_node view(struct cache *c, const char *name)
{
    struct cache_snapshot *s = cache_snapshot_acquire(c);
    const struct cache_node *n = cache_snapshot_find(s, str_from_cstr(name));
    struct cache_node out = *n;

    cache_snapshot_release(s);
    out.topo = NULL;
    return out;
}

static uint32_t take_pair(void *ctx, const struct cache_node *n)
{
    (void)ctx;
    return (n->free_mask & 0x3u) == 0x3u ? 0x3u : 0;
}

static void test_topology_books(void)
{
    struct cache *c = cache_new();
    struct node_info n = node("t", 4), twin = node("u", 4), bad = node("v", 4);
    struct pod_info named = pod("p1", "t", 1, "Running"), unnamed = pod("p2", "t", 1, "Running");
    struct cache_status st;
    struct cache_node v;
    struct errbuf eb = ERRBUF_INIT;
    uint32_t mask = 0;
    uint64_t invalid = metrics_counter_get(METRICS_TOPOLOGY_INVALID);

    sync_empty(c);
    n.ann_topology = str_from_cstr(box4);
    twin.ann_topology = str_from_cstr(box4);
    bad.ann_topology = STR_LIT("{\"gpus\":[{\"index\":5}]}");
    cache_node_upsert(c, &n);
    cache_node_upsert(c, &twin);
    cache_node_upsert(c, &bad);
    cache_node_upsert(c, &bad); /* the same bad text again: logged and counted once */
    CHECK_EQ(metrics_counter_get(METRICS_TOPOLOGY_INVALID), invalid + 1);
    cache_status_get(c, &st);
    CHECK_EQ(st.topologies, 1); /* two nodes share one */
    v = view(c, "v");
    CHECK(v.topo_error[0] != '\0');
    v = view(c, "t");
    CHECK_EQ(v.free_mask, 0x7u); /* GPU 3 is unhealthy */
    /* A pod we bound names its GPU; one someone else bound does not. */
    named.ann_gpus = STR_LIT("2");
    cache_pod_upsert(c, &named);
    v = view(c, "t");
    CHECK_EQ(v.named_mask, 0x4u);
    CHECK_EQ(v.free_mask, 0x3u);
    CHECK_EQ(v.unknown_used, 0);
    cache_pod_upsert(c, &unnamed);
    v = view(c, "t");
    CHECK_EQ(v.unknown_used, 1);
    /* The node's own report is authoritative: it names the other pod's GPU. */
    n.ann_gpus_in_use = STR_LIT("0,2");
    cache_node_upsert(c, &n);
    v = view(c, "t");
    CHECK_EQ(v.named_mask, 0x5u);
    CHECK_EQ(v.free_mask, 0x2u);
    CHECK_EQ(v.unknown_used, 0);
    /* A chooser's set is kept only when it is free and the right size. */
    n.ann_gpus_in_use = STR_NULL;
    cache_node_upsert(c, &n);
    cache_pod_delete(c, &unnamed);
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("t"), 2, take_pair, NULL, &mask, &eb), ERR_OK);
    CHECK_EQ(mask, 0x3u);
    v = view(c, "t");
    CHECK_EQ(v.free_mask, 0u);
    CHECK_EQ(v.gpus_reserved, 2);
    /* Asked again (a retried bind), the same reservation and set come back. */
    mask = 0;
    CHECK_EQ(cache_reserve(c, STR_LIT("r1"), STR_LIT("t"), 2, take_pair, NULL, &mask, &eb), ERR_OK);
    CHECK_EQ(mask, 0x3u);
    cache_release(c, STR_LIT("r1"), STR_LIT("t"));
    v = view(c, "t");
    CHECK_EQ(v.free_mask, 0x3u);
    /* A set that does not match the count is not recorded; the count still is. */
    CHECK_EQ(cache_reserve(c, STR_LIT("r2"), STR_LIT("t"), 1, take_pair, NULL, &mask, &eb), ERR_OK);
    CHECK_EQ(mask, 0u);
    cache_release(c, STR_LIT("r2"), STR_LIT("t"));
    /* A bad gpus annotation (wrong count) names nothing. */
    named.ann_gpus = STR_LIT("0,1");
    cache_pod_upsert(c, &named);
    v = view(c, "t");
    CHECK_EQ(v.named_mask, 0u);
    CHECK_EQ(v.unknown_used, 1);
    cache_node_delete(c, STR_LIT("u"));
    cache_node_delete(c, STR_LIT("t"));
    cache_status_get(c, &st);
    CHECK_EQ(st.topologies, 0);
    cache_free(c);
}

static void test_pending_pods(void)
{
    struct cache *c = cache_new();
    struct pod_info p = pod("q1", "", 2, "Pending"), out;
    struct arena a;

    sync_empty(c);
    p.ns = STR_LIT("ml");
    p.name = STR_LIT("train");
    p.labels = STR_LIT("{\"team\":\"ml\"}");
    p.priority_class = STR_LIT("high");
    cache_pod_upsert(c, &p);
    arena_init(&a, 1 << 16);
    CHECK(cache_pending_pod(c, STR_LIT("ml"), STR_LIT("train"), &a, &out));
    CHECK_EQ(out.gpus, 2);
    CHECK_STRN_EQ(out.labels.ptr, out.labels.len, "{\"team\":\"ml\"}");
    CHECK_STRN_EQ(out.priority_class.ptr, out.priority_class.len, "high");
    CHECK(!cache_pending_pod(c, STR_LIT("ml"), STR_LIT("other"), &a, &out));
    /* Bound: no longer pending. */
    p.node_name = STR_LIT("somewhere");
    cache_pod_upsert(c, &p);
    CHECK(!cache_pending_pod(c, STR_LIT("ml"), STR_LIT("train"), &a, &out));
    arena_destroy(&a);
    cache_free(c);
}

/* What a bind may take on the cache's word: only a pending pod under the same UID, namespace
 * and name, on a known node, in a synced cache with its watches up. */
static void test_bind_facts(void)
{
    struct cache *c = cache_new();
    struct pod_info p = pod("u1", "", 1, "Pending");
    struct node_info n = node("n1", 8);
    struct cache_bind_facts f;
    struct arena a;

    arena_init(&a, 1 << 16);
    p.ns = STR_LIT("ml");
    p.name = STR_LIT("train");
    p.ann_gpu_model = STR_LIT("NVIDIA-A100-SXM4-80GB");
    cache_pod_upsert(c, &p);
    cache_node_upsert(c, &n);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    cache_nodes_relist_begin(c);
    cache_node_upsert(c, &n);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pod_upsert(c, &p);
    cache_pods_relist_end(c);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) == NULL);
    CHECK_STR_EQ(f.model, "NVIDIA-A100-SXM4-80GB");
    CHECK_STRN_EQ(f.pod.uid.ptr, f.pod.uid.len, "u1");
    CHECK_STRN_EQ(f.pod.name.ptr, f.pod.name.len, "train");
    CHECK_STRN_EQ(f.pod.ann_gpu_model.ptr, f.pod.ann_gpu_model.len, "NVIDIA-A100-SXM4-80GB");
    CHECK_EQ(f.pod.gpus, 1);
    CHECK(!f.pod.deleting && f.pod.node_name.len == 0);
    /* No UID, another UID, another name or namespace, an unknown node. */
    CHECK(cache_bind_facts(c, STR_NULL, p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    CHECK(cache_bind_facts(c, STR_LIT("u2"), p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, STR_LIT("other"), STR_LIT("n1"), &a, &f) !=
          NULL);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), STR_LIT("default"), p.name, STR_LIT("n1"), &a, &f) !=
          NULL);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n2"), &a, &f) != NULL);
    /* A watch outage: no word until the stream is back. */
    cache_disconnected(c, "test");
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    cache_contact(c);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) == NULL);
    /* Being deleted, then bound: not pending. */
    p.deleting = true;
    cache_pod_upsert(c, &p);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    p.deleting = false;
    p.node_name = STR_LIT("n1");
    cache_pod_upsert(c, &p);
    CHECK(cache_bind_facts(c, STR_LIT("u1"), p.ns, p.name, STR_LIT("n1"), &a, &f) != NULL);
    arena_destroy(&a);
    cache_free(c);
}

/* The demand group holding pods of namespace ns and annotation gpu-model models, or NULL. */
static const struct cache_demand_group *group(const struct cache_demand *d, const char *ns,
                                              const char *models, bool pending)
{
    for (size_t i = 0; i < d->group_count; i++) {
        const struct cache_demand_group *g = &d->groups[i];
        if (g->pending == pending && str_eq_cstr(g->pod.ns, ns) &&
            str_eq_cstr(g->pod.ann_gpu_model, models))
            return g;
    }
    return NULL;
}

static const struct cache_demand_model *model(const struct cache_demand *d, const char *name)
{
    for (size_t i = 0; i < d->model_count; i++) {
        if (str_eq_cstr(d->models[i].rep.model, name))
            return &d->models[i];
    }
    return NULL;
}

/* What the scarcity part is worked out from: each model's GPUs as nodes come and go, and the
 * GPU pods grouped by their facts, pending ones apart and with their labels. */
static void test_demand(void)
{
    struct cache *c = cache_new();
    struct node_info a = node("a", 8), b = node("b", 8), t = node("t", 2);
    struct pod_info p1 = pod("u1", "", 1, "Pending"), p2 = pod("u2", "a", 2, "Running");
    struct pod_info p3 = pod("u3", "a", 3, "Running");
    struct cache_snapshot *s, *s2;
    const struct cache_demand *d;
    uint64_t gen;

    t.product = STR_LIT("Tesla-T4");
    t.model = t.product;
    t.family = STR_LIT("turing");
    sync_empty(c);
    cache_node_upsert(c, &a);
    cache_node_upsert(c, &b);
    cache_node_upsert(c, &t);
    p1.ns = p2.ns = p3.ns = STR_LIT("ml");
    p1.labels = STR_LIT("{\"team\":\"ml\"}");
    p2.labels = p1.labels;
    p1.ann_gpu_model = p2.ann_gpu_model = p3.ann_gpu_model = STR_LIT("T4");
    p3.priority_class = STR_LIT("high");
    cache_pod_upsert(c, &p1);
    cache_pod_upsert(c, &p2);
    cache_pod_upsert(c, &p3);
    s = cache_snapshot_acquire(c);
    d = s->demand;
    CHECK_EQ(d->model_count, 2);
    CHECK_EQ(model(d, "NVIDIA-A100-SXM4-80GB")->gpus, 16);
    CHECK_EQ(model(d, "Tesla-T4")->gpus, 2);
    CHECK_STRN_EQ(model(d, "Tesla-T4")->rep.family.ptr, model(d, "Tesla-T4")->rep.family.len,
                  "turing");
    /* Running pods keep no labels, so u2 and u3 differ only by their priority class. */
    CHECK_EQ(d->group_count, 3);
    CHECK_EQ(group(d, "ml", "T4", true)->gpus, 1);
    CHECK_STRN_EQ(group(d, "ml", "T4", true)->pod.labels.ptr,
                  group(d, "ml", "T4", true)->pod.labels.len, "{\"team\":\"ml\"}");
    CHECK_EQ(group(d, "ml", "T4", false)->pod.labels.len, 0);
    CHECK_EQ(d->pending_count, 1);
    CHECK(cache_demand_counts_pending(d, STR_LIT("u1")));
    CHECK(!cache_demand_counts_pending(d, STR_LIT("u2")));
    gen = d->generation;
    /* A status update of a running pod changes nothing the demand holds. */
    p2.phase = STR_LIT("Running");
    cache_pod_upsert(c, &p2);
    s2 = cache_snapshot_acquire(c);
    CHECK(s2->generation > s->generation);
    CHECK_EQ(s2->demand->generation, gen);
    cache_snapshot_release(s2);
    /* The pending pod is bound: it joins u2's group and is no longer pending. */
    p1.node_name = STR_LIT("b");
    p1.phase = STR_LIT("Running");
    cache_pod_upsert(c, &p1);
    /* A finished pod, a deleted node: their GPUs leave. */
    p3.phase = STR_LIT("Succeeded");
    cache_pod_upsert(c, &p3);
    cache_node_delete(c, STR_LIT("a"));
    s2 = cache_snapshot_acquire(c);
    d = s2->demand;
    CHECK(d->generation > gen);
    CHECK_EQ(d->group_count, 1);
    CHECK_EQ(group(d, "ml", "T4", false)->gpus, 3);
    CHECK_EQ(d->pending_count, 0);
    CHECK(!cache_demand_counts_pending(d, STR_LIT("u1")));
    CHECK_EQ(model(d, "NVIDIA-A100-SXM4-80GB")->gpus, 8);
    /* The older snapshot still holds what it was built with. */
    CHECK_EQ(s->demand->group_count, 3);
    CHECK_EQ(model(s->demand, "NVIDIA-A100-SXM4-80GB")->gpus, 16);
    cache_snapshot_release(s);
    cache_pod_delete(c, &p1);
    cache_pod_delete(c, &p2);
    cache_node_delete(c, STR_LIT("b"));
    cache_node_delete(c, STR_LIT("t"));
    s = cache_snapshot_acquire(c);
    CHECK_EQ(s->demand->group_count + s->demand->model_count, 0);
    cache_snapshot_release(s);
    cache_snapshot_release(s2);
    cache_free(c);
}

/* A bound pod's group keys on the rule that placed it (it has no labels to select one by);
 * a pending pod's never does: its labels still select its rule. */
static void test_demand_rule_record(void)
{
    struct cache *c = cache_new();
    struct node_info a = node("a", 8);
    struct pod_info p = pod("u1", "a", 2, "Running"), q = pod("u2", "a", 1, "Running");
    struct pod_info r = pod("u3", "", 4, "Pending");
    struct cache_snapshot *s;
    const struct cache_demand *d;
    size_t recorded = 0;

    sync_empty(c);
    cache_node_upsert(c, &a);
    p.ns = q.ns = r.ns = STR_LIT("ml");
    p.rule_record = r.rule_record = STR_LIT("ml-train");
    cache_pod_upsert(c, &p);
    cache_pod_upsert(c, &q);
    cache_pod_upsert(c, &r);
    s = cache_snapshot_acquire(c);
    d = s->demand;
    CHECK_EQ(d->group_count, 3);
    for (size_t i = 0; i < d->group_count; i++) {
        const struct cache_demand_group *g = &d->groups[i];
        if (g->pod.rule_record.len) {
            CHECK(!g->pending);
            CHECK_STRN_EQ(g->pod.rule_record.ptr, g->pod.rule_record.len, "ml-train");
            CHECK_EQ(g->gpus, 2);
            recorded++;
        }
    }
    CHECK_EQ(recorded, 1);
    CHECK_EQ(group(d, "ml", "", true)->gpus, 4);
    cache_snapshot_release(s);
    cache_free(c);
}

/* ---- snapshots patched after events against snapshots built whole ---- */

enum op_kind {
    OP_POD,
    OP_POD_DELETE,
    OP_RESERVE,
    OP_RELEASE,
    OP_NODE,
    OP_NODE_ADD,
    OP_NODE_DELETE
};

struct op {
    enum op_kind kind;
    unsigned node, pod;
    int64_t gpus;
    unsigned index; /* the GPU index a pod names, 0: none */
};

#define PATCH_NODES 200

static void apply(struct cache *c, const struct op *o)
{
    char name[32], uid[32], idx[16];
    struct errbuf eb = ERRBUF_INIT;
    struct node_info n;
    struct pod_info p;

    snprintf(name, sizeof(name), "node-%u", o->node);
    snprintf(uid, sizeof(uid), "pod-%u", o->pod);
    switch (o->kind) {
    case OP_POD:
    case OP_POD_DELETE:
        p = pod(uid, name, o->gpus, "Running");
        if (o->index) {
            snprintf(idx, sizeof(idx), "%u", o->index - 1);
            p.ann_gpus = str_from_cstr(idx);
        }
        if (o->kind == OP_POD)
            cache_pod_upsert(c, &p);
        else
            cache_pod_delete(c, &p);
        break;
    case OP_RESERVE:
        if (cache_reserve(c, str_from_cstr(uid), str_from_cstr(name), o->gpus, NULL, NULL, NULL,
                          &eb) != ERR_OK)
            errbuf_clear(&eb); /* not free, or already reserved: the same in both caches */
        break;
    case OP_RELEASE:
        cache_release(c, str_from_cstr(uid), str_from_cstr(name));
        break;
    case OP_NODE:
    case OP_NODE_ADD:
        n = node(name, o->gpus);
        if (o->index)
            n.ann_topology = STR_LIT(box4);
        cache_node_upsert(c, &n);
        break;
    case OP_NODE_DELETE:
        cache_node_delete(c, str_from_cstr(name));
        break;
    }
}

/* PATCH_NODES nodes of 8 GPUs (every other one with a topology), listed, and no pods. */
static void start_cluster(struct cache *c)
{
    cache_nodes_relist_begin(c);
    for (unsigned i = 0; i < PATCH_NODES; i++) {
        struct op o = {.kind = OP_NODE_ADD, .node = i, .gpus = 8, .index = i % 2};
        apply(c, &o);
    }
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
}

/* Every view of a against the same node in b. */
static void check_same_views(struct cache_snapshot *a, struct cache_snapshot *b)
{
    CHECK_EQ(a->node_count, b->node_count);
    for (size_t i = 0; i < b->node_count; i++) {
        const struct cache_node *y = cache_snapshot_node(b, i);
        const struct cache_node *x = cache_snapshot_find(a, y->info.name);
        CHECK(x != NULL);
        CHECK(str_eq(x->info.name, y->info.name));
        CHECK_EQ(x->gpus_used, y->gpus_used);
        CHECK_EQ(x->gpus_reserved, y->gpus_reserved);
        CHECK_EQ(x->named_mask, y->named_mask);
        CHECK_EQ(x->free_mask, y->free_mask);
        CHECK_EQ(x->unknown_used, y->unknown_used);
        CHECK_EQ(x->info.gpu_allocatable, y->info.gpu_allocatable);
        CHECK_EQ(x->topo != NULL, y->topo != NULL);
        CHECK(str_eq(x->info.product, y->info.product));
    }
}

/* A cache that takes a snapshot after every event patches the previous one; a cache that
 * takes the events without any reader builds its first snapshot whole. At checkpoints both
 * must show every node alike. An old snapshot is held across many events, to check that the
 * chunks it shares outlive the newer snapshots' changes (ASan). */
static void test_patched_snapshots(void)
{
    static struct op ops[3000];
    struct cache *a = cache_new();
    struct cache_snapshot *held = NULL;
    uint32_t seed = 7;
    unsigned nodes = PATCH_NODES;

    for (size_t i = 0; i < GX_ARRAY_LEN(ops); i++) {
        unsigned r = (seed = seed * 1103515245u + 12345u) >> 8;
        struct op *o = &ops[i];
        o->node = r % nodes;
        o->pod = (r >> 8) % 400;
        o->gpus = 1 + (int64_t)((r >> 4) % 3);
        o->index = (r >> 12) % 3 == 0 ? 1 + (r >> 14) % 4 : 0;
        switch ((r >> 16) % 20) {
        case 0:
            o->kind = OP_NODE;
            o->gpus = 4 + (int64_t)((r >> 4) % 5);
            break;
        case 1:
            o->kind = OP_NODE_ADD;
            o->node = nodes++;
            o->gpus = 8;
            break;
        case 2:
            o->kind = i % 200 == 2 ? OP_NODE_DELETE : OP_POD;
            break;
        case 3:
        case 4:
            o->kind = OP_RESERVE;
            break;
        case 5:
            o->kind = OP_RELEASE;
            break;
        case 6:
        case 7:
        case 8:
            o->kind = OP_POD_DELETE;
            break;
        default:
            o->kind = OP_POD;
        }
    }
    start_cluster(a);
    for (size_t i = 0; i < GX_ARRAY_LEN(ops); i++) {
        struct cache_snapshot *s;
        apply(a, &ops[i]);
        s = cache_snapshot_acquire(a);
        if (i % 500 == 0) {
            cache_snapshot_release(held);
            held = cache_snapshot_acquire(a);
        }
        if (i % 250 == 249) {
            struct cache *b = cache_new();
            struct cache_snapshot *whole;
            start_cluster(b);
            for (size_t k = 0; k <= i; k++)
                apply(b, &ops[k]);
            whole = cache_snapshot_acquire(b);
            check_same_views(s, whole);
            cache_snapshot_release(whole);
            cache_free(b);
        }
        cache_snapshot_release(s);
    }
    cache_snapshot_release(held);
    {
        struct cache_status st;
        cache_status_get(a, &st);
        /* Most events patched the snapshot; nodes coming and going rebuilt it whole. */
        CHECK(st.snapshots_patched > 2000);
        CHECK(st.snapshots_whole > 50);
    }
    cache_free(a);
}

int main(void)
{
    test_patched_snapshots();
    test_bind_facts();
    test_demand();
    test_demand_rule_record();
    test_topology_books();
    test_pending_pods();
    test_accounting();
    test_relist_sweeps();
    test_reservations();
    test_second_bind_keeps_first_reservation();
    test_snapshots_are_immutable();
    test_reservation_race();
    printf("test_cache: ok\n");
    return 0;
}
