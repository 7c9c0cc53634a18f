/* test_demand.c -- the daemon's demand tables (src/api/demand.h): built from the cache's
 * demand facts and the policy, shared while neither changes, and without the pod being
 * scored when the cache counts it as pending; through the prioritize and explain routes; under
 * threads while the cache changes. */
#include <pthread.h>
#include <string.h>

#include "gx/cache.h"
#include "gx/clock.h"
#include "gx/metrics.h"
#include "gx/policy.h"
#include "gx/policy_store.h"
#include "gx/routes.h"
#include "gx/sched.h"

#include "api/demand.h"
#include "check.h"
#include "exchange_helpers.h"

static void add_node(struct cache *c, const char *name, const char *product, int64_t gpus)
{
    struct node_info n = {.name = str_from_cstr(name),
                          .product = str_from_cstr(product),
                          .gpu_allocatable = gpus,
                          .ready = true};

    n.model = obj_model_from_product(n.product);
    cache_node_upsert(c, &n);
}

static struct pod_info pod(const char *uid, const char *node, int64_t gpus, const char *models)
{
    struct pod_info p = {0};

    p.uid = p.name = str_from_cstr(uid);
    p.ns = STR_LIT("default");
    p.node_name = str_from_cstr(node);
    p.phase = node[0] ? STR_LIT("Running") : STR_LIT("Pending");
    p.gpus = gpus;
    p.ann_gpu_model = str_from_cstr(models);
    return p;
}

/* A10 4 GPUs, T4 4, A100 8; a running T4-only pod holds 2 T4 GPUs (T4 at 0.5). */
static struct cache *cluster(void)
{
    struct cache *c = cache_new();
    struct pod_info running = pod("run", "t4", 2, "T4");

    cache_nodes_relist_begin(c);
    add_node(c, "a10", "NVIDIA-A10", 4);
    add_node(c, "t4", "Tesla-T4", 4);
    add_node(c, "a100", "NVIDIA-A100-SXM4-80GB", 8);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    cache_pod_upsert(c, &running);
    cache_pods_relist_end(c);
    return c;
}

/* Prepares p under pol and gives it its table; the caller ends the hold. */
static struct sched_pod use(struct demand_memo *m, const struct cache_snapshot *s,
                            const struct policy *pol, const struct pod_info *p, struct arena *a,
                            struct demand_hold *hold)
{
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;

    CHECK(sched_pod_prepare(&sp, p, pol, &eb));
    demand_use(m, s, &sp, a, hold);
    return sp;
}

static void test_own_demand_left_out(void)
{
    struct cache *c = cluster();
    struct demand_memo *m = demand_memo_new();
    struct policy *pol = policy_new_default(), *off = policy_new_default();
    /* Q may use A10 or T4 and is pending. Counted, its 4 GPUs would fill A10 up to T4's
     * level: (4 + 0.5 * 4) / 8 = 0.75 on both, and it would see nothing to choose between. */
    struct pod_info q = pod("q", "", 4, "A10,T4"), any = pod("any", "", 1, "");
    struct demand_hold h1, h2;
    struct cache_snapshot *s;
    struct sched_pod sp;
    struct arena a;

    pol->weight_scarcity = 4;
    arena_init(&a, 1 << 20);
    cache_pod_upsert(c, &q);
    s = cache_snapshot_acquire(c);
    sp = use(m, s, pol, &q, &a, &h1);
    CHECK(sp.demand != NULL);
    CHECK_EQ(sp.scarcity_lo_ppm, 0); /* A10, as if q were not there */
    CHECK_EQ(sp.scarcity_hi_ppm, 500000);
    /* A pod the cache does not hold sees everyone's demand, q's included: A10 and T4 at 0.75,
     * A100 at 0. The table is the memo's own, shared with q's request. */
    sp = use(m, s, pol, &any, &a, &h2);
    CHECK(sp.demand != NULL);
    CHECK_EQ(sp.scarcity_lo_ppm, 0);
    CHECK_EQ(sp.scarcity_hi_ppm, 750000);
    CHECK(h1.table == h2.table);
    demand_done(&h2);
    /* No weight, no table. */
    sp = use(m, s, off, &any, &a, &h2);
    CHECK(sp.demand == NULL && h2.table == NULL);
    demand_done(&h2);
    /* Standalone (no snapshot): no demand known. */
    sp = use(m, NULL, pol, &any, &a, &h2);
    CHECK(sp.demand == NULL);
    demand_done(&h2);
    cache_snapshot_release(s);
    /* Once q is bound it counts for everyone, itself included (it is no longer scored). A new
     * cache state builds a new table; the old one lives while h1 holds it. */
    q.node_name = STR_LIT("a10");
    q.phase = STR_LIT("Running");
    cache_pod_upsert(c, &q);
    s = cache_snapshot_acquire(c);
    sp = use(m, s, pol, &any, &a, &h2);
    CHECK(h2.table != h1.table);
    CHECK_EQ(sp.scarcity_hi_ppm, 750000);
    demand_done(&h2);
    demand_done(&h1);
    /* Another policy, another table. */
    {
        struct policy *other = policy_new_default();
        struct demand_hold h3;
        other->weight_scarcity = 2;
        CHECK(use(m, s, pol, &any, &a, &h2).demand != NULL);
        CHECK(use(m, s, other, &any, &a, &h3).demand != NULL);
        CHECK(h2.table != h3.table);
        demand_done(&h2);
        demand_done(&h3);
        policy_unref(other);
    }
    cache_snapshot_release(s);
    arena_destroy(&a);
    policy_unref(pol);
    policy_unref(off);
    demand_memo_free(m);
    cache_free(c);
}

static char *call(struct routes *r, const char *path, const char *body)
{
    return exchange_post(r, path, body);
}

static void expect_in(const char *reply, const char *needle)
{
    if (!strstr(reply, needle)) {
        fprintf(stderr, "want %s in %s\n", needle, reply);
        abort();
    }
}

/* Through the routes: prioritize scores with the table, explain shows the part. The T4 node
 * (4 GPUs, 2 taken by the T4-only pod) against the A10 one (4, empty) for a one-GPU pod that
 * accepts any model: T4 is the scarce model, so round(2 * 3/4) + 0 = 2 against
 * round(2 * 1/4) + 8 = 9. The fleet-share mark-down takes round(8 * (2/4 - 2/8)) = 2 off both:
 * the pod would take 1 of A10's or T4's 4 GPUs, against 1 of A100's 8. So 0 against 7.
 * Without the weight, binpack: 8 against 3. */
static void test_routes(void)
{
    static const char pod[] =
        "{\"Pod\":{\"metadata\":{\"name\":\"any\",\"namespace\":\"default\",\"uid\":"
        "\"u-any\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":"
        "{\"nvidia.com/gpu\":\"1\"}}}]}},\"NodeNames\":[\"t4\",\"a10\"]}";
    static const char explain[] =
        "{\"metadata\":{\"name\":\"any\",\"namespace\":\"default\"},\"spec\":{\"containers\":"
        "[{\"name\":\"c\",\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}]}}";
    struct cache *c = cluster();
    struct policy *pol = policy_new_default();
    struct policy_store *store;
    struct routes_config rc = {.url_prefix = "/", .mode = "test", .cache = c};
    struct routes *r;
    char *reply;

    pol->weight_scarcity = 4;
    store = policy_store_new(pol, "");
    rc.policies = store;
    r = routes_new(&rc);
    reply = call(r, "/prioritize", pod);
    expect_in(reply, "{\"Host\":\"t4\",\"Score\":0}");
    expect_in(reply, "{\"Host\":\"a10\",\"Score\":7}");
    free(reply);
    reply = call(r, "/debug/explain", explain);
    expect_in(reply, "\"scarcity\":{\"weight\":4,\"value\":0}");
    expect_in(reply, "\"scarcity\":{\"weight\":4,\"value\":1}");
    expect_in(reply, "\"fleetShare\":{\"excess\":0.25,\"levels\":2}");
    expect_in(reply, "\"applies\":true,\"fleetShare\":true");
    free(reply);
    /* /metrics: each model's GPUs and scarcity (T4: 2 of its 4 GPUs asked by T4-only pods). */
    reply = exchange_call(r, "GET", "/metrics", NULL);
    expect_in(reply, "# TYPE gpu_extender_model_scarcity gauge\n");
    expect_in(reply, "gpu_extender_model_gpus{model=\"Tesla-T4\"} 4\n");
    expect_in(reply, "gpu_extender_model_scarcity{model=\"Tesla-T4\"} 0.5\n");
    expect_in(reply, "gpu_extender_model_scarcity{model=\"NVIDIA-A10\"} 0\n");
    expect_in(reply, "gpu_extender_model_gpus{model=\"NVIDIA-A100-SXM4-80GB\"} 8\n");
    free(reply);
    routes_free(r);
    policy_store_free(store);
    /* The default policy: binpack alone, and no scarcity part in explain. */
    store = policy_store_new(policy_new_default(), "");
    rc.policies = store;
    r = routes_new(&rc);
    reply = call(r, "/prioritize", pod);
    expect_in(reply, "{\"Host\":\"t4\",\"Score\":8}");
    expect_in(reply, "{\"Host\":\"a10\",\"Score\":3}");
    free(reply);
    reply = call(r, "/debug/explain", explain);
    CHECK(strstr(reply, "scarcity") == NULL);
    CHECK(strstr(reply, "fleetShare") == NULL);
    free(reply);
    /* /metrics shows the figures without the weight too, before anyone turns the part on. */
    reply = exchange_call(r, "GET", "/metrics", NULL);
    expect_in(reply, "gpu_extender_model_scarcity{model=\"Tesla-T4\"} 0.5\n");
    free(reply);
    routes_free(r);
    policy_store_free(store);
    cache_free(c);
}

/* Model names are label values: escaped as the text format says. */
static void test_model_metrics_escaped(void)
{
    struct metrics_model rows[] = {{STR_LIT("a\"b\\c\nd"), 2, 0.25}};
    struct buf b;

    buf_init(&b, 1 << 16);
    CHECK_EQ(metrics_format_models(&b, rows, 1), ERR_OK);
    expect_in(b.ptr, "gpu_extender_model_gpus{model=\"a\\\"b\\\\c\\nd\"} 2\n");
    expect_in(b.ptr, "gpu_extender_model_scarcity{model=\"a\\\"b\\\\c\\nd\"} 0.25\n");
    buf_destroy(&b);
    buf_init(&b, 1 << 16);
    CHECK_EQ(metrics_format_models(&b, rows, 0), ERR_OK);
    CHECK_EQ(b.len, 0);
    buf_destroy(&b);
}

/* Request threads take tables while the watch changes the cache: every table they get is
 * whole (ThreadSanitizer checks the sharing in a GX_TSAN build). */
struct worker {
    struct cache *c;
    struct demand_memo *m;
    const struct policy *pol;
    int seen;
};

static void *score_loop(void *arg)
{
    struct worker *w = arg;
    struct pod_info any = pod("any", "", 1, "");
    struct arena a;

    arena_init(&a, 16 << 20);
    for (int i = 0; i < 300; i++) {
        struct cache_snapshot *s = cache_snapshot_acquire(w->c);
        struct demand_hold h;
        struct sched_pod sp = use(w->m, s, w->pol, &any, &a, &h);
        if (sp.demand) {
            CHECK(sp.scarcity_hi_ppm > sp.scarcity_lo_ppm);
            w->seen++;
        }
        demand_done(&h);
        cache_snapshot_release(s);
    }
    arena_destroy(&a);
    return NULL;
}

static void test_threads(void)
{
    struct cache *c = cluster();
    struct demand_memo *m = demand_memo_new();
    struct policy *pol = policy_new_default();
    struct worker w[4];
    pthread_t t[4];

    pol->weight_scarcity = 4;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){c, m, pol, 0};
        CHECK_EQ(pthread_create(&t[i], NULL, score_loop, &w[i]), 0);
    }
    for (int i = 0; i < 200; i++) {
        char uid[32];
        struct pod_info p;
        snprintf(uid, sizeof(uid), "p%d", i);
        p = pod(uid, "", 1 + i % 3, i % 2 ? "T4" : "A100,A10");
        cache_pod_upsert(c, &p);
        if (i % 3 == 0)
            cache_pod_delete(c, &p);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK(w[i].seen > 0);
    }
    policy_unref(pol);
    demand_memo_free(m);
    cache_free(c);
}

int main(void)
{
    test_own_demand_left_out();
    test_routes();
    test_model_metrics_escaped();
    test_threads();
    printf("test_demand: ok\n");
    return 0;
}
