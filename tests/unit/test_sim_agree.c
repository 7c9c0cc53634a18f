/* test_sim_agree.c -- the simulator's decisions are the daemon's: along a whole fill run, each
 * pod the simulator places is asked of the daemon's own routes (POST /filter and /prioritize
 * in NodeNames mode, on a cluster cache holding the same nodes, the pods placed so far (as our
 * Binding leaves them, read by the watch's decoder) and the pods that arrived and fit nowhere,
 * pending), and the simulator's node must pass filter with the highest score there. Under
 * binpack, spread, and binpack with the scarcity weight, whose demand table the daemon builds
 * from its cache and the simulator from its own state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/cache.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/objects.h"
#include "gx/policy_store.h"
#include "gx/routes.h"
#include "gx/sim.h"

#include "check.h"
#include "exchange_helpers.h"

struct agree {
    struct cache *cache;
    struct routes *routes;
    const struct sim_cluster *c;
    const struct sim_workload *w;
    char names[4096]; /* the NodeNames JSON array */
    size_t checked;
    int *node_of; /* where each pod went; -1 nowhere */
};

static char *call(struct agree *a, const char *path, const char *body)
{
    return exchange_post(a->routes, path, body);
}

/* Is node among the filter reply's NodeNames (before its FailedNodes)? */
static bool passes(const char *filter, const char *node)
{
    const char *names = strstr(filter, "\"NodeNames\":[");
    const char *failed = strstr(filter, "\"FailedNodes\"");
    char quoted[96];
    const char *at;

    snprintf(quoted, sizeof(quoted), "\"%s\"", node);
    at = names ? strstr(names, quoted) : NULL;
    return at && failed && at < failed;
}

/* The score prioritize gave node, or -1 when it is not in the reply. */
static int score_of(const char *reply, const char *node)
{
    char needle[128];
    const char *at;

    snprintf(needle, sizeof(needle), "{\"Host\":\"%s\",\"Score\":", node);
    at = strstr(reply, needle);
    return at ? (int)strtol(at + strlen(needle), NULL, 10) : -1;
}

/* The pod as the watch shows it, decoded by the watch's decoder: pending (node NULL) with its
 * model annotation, or bound as our Binding leaves it: gpu-model is the record of the node's
 * model, the pod's own requirement is in gpu-model-required. */
static void show_pod(struct agree *a, const struct sim_pod *p, const struct sim_node *node)
{
    char doc[2048], ann[512];
    struct pod_info info;
    struct arena arena;
    struct jscan js;

    if (node)
        snprintf(ann, sizeof(ann),
                 "\"gpu-extender.io/gpu-model\":\"%s\",\"gpu-extender.io/gpu-count\":\"%lld\""
                 "%s%s%s",
                 node->model, (long long)p->gpus,
                 p->models[0] ? ",\"gpu-extender.io/gpu-model-required\":\"" : "", p->models,
                 p->models[0] ? "\"" : "");
    else
        snprintf(ann, sizeof(ann), "\"gpu-extender.io/gpu-model\":\"%s\"", p->models);
    snprintf(doc, sizeof(doc),
             "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"sim\",\"uid\":\"%s\","
             "\"annotations\":{%s}},\"spec\":{%s%s%s\"containers\":[{\"name\":\"c\","
             "\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"%lld\"}}}]},"
             "\"status\":{\"phase\":\"%s\"}}",
             p->name, p->name, ann, node ? "\"nodeName\":\"" : "", node ? node->name : "",
             node ? "\"," : "", (long long)p->gpus, node ? "Running" : "Pending");
    arena_init(&arena, 1 << 16);
    jscan_init(&js, doc, strlen(doc), 64);
    CHECK(obj_pod_decode(&js, &arena, &info));
    CHECK(jscan_finish(&js));
    cache_pod_upsert(a->cache, &info);
    arena_destroy(&arena);
}

static void on_arrive(void *ctx, size_t pod)
{
    struct agree *a = ctx;

    show_pod(a, &a->w->pods[pod], NULL);
}

static void on_place(void *ctx, size_t pod, size_t node)
{
    struct agree *a = ctx;
    const struct sim_pod *p = &a->w->pods[pod];
    char body[8192];
    char *filter, *prio;
    int best = -1, mine;

    snprintf(body, sizeof(body),
             "{\"Pod\":{\"metadata\":{\"name\":\"%s\",\"namespace\":\"sim\",\"uid\":\"%s\","
             "\"annotations\":{\"gpu-extender.io/gpu-model\":\"%s\"}},\"spec\":{\"containers\":"
             "[{\"name\":\"c\",\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"%lld\"}}}]}},"
             "\"NodeNames\":%s}",
             p->name, p->name, p->models, (long long)p->gpus, a->names);
    filter = call(a, "/filter", body);
    CHECK(passes(filter, a->c->nodes[node].name));
    prio = call(a, "/prioritize", body);
    for (size_t i = 0; i < a->c->node_count; i++) {
        if (passes(filter, a->c->nodes[i].name)) {
            int s = score_of(prio, a->c->nodes[i].name);
            best = s > best ? s : best;
        }
    }
    mine = score_of(prio, a->c->nodes[node].name);
    if (mine != best) {
        fprintf(stderr, "pod %s: simulator chose %s (score %d), daemon's best is %d\n%s\n%s\n",
                p->name, a->c->nodes[node].name, mine, best, filter, prio);
        abort();
    }
    free(filter);
    free(prio);
    /* The bind, as the watch would show it. */
    show_pod(a, p, &a->c->nodes[node]);
    a->node_of[pod] = (int)node;
    a->checked++;
}

/* Runs a fill of w on c under pol, asking the daemon about every placement; node_of[i] gets
 * where pod i went (-1: nowhere). */
static void check_fill(const struct sim_cluster *c, const struct sim_workload *w,
                       struct policy *pol, int *node_of, struct sim_result *r)
{
    struct policy_store *store = policy_store_new(policy_ref(pol), "");
    struct routes_config rc = {.url_prefix = "/", .mode = "test", .policies = store};
    struct sim_run_spec spec = {.strategy = SIM_POLICY, .pol = pol, .label = "agree"};
    struct sim_options opt = {.mode = SIM_FILL,
                              .seed = 3,
                              .speedup = 1,
                              .compress = 1,
                              .on_place = on_place,
                              .on_place_ctx = NULL,
                              .on_arrive = on_arrive};
    struct agree a = {.cache = cache_new(), .c = c, .w = w, .node_of = node_of};
    size_t len = 0;

    opt.on_place_ctx = &a;
    rc.cache = a.cache;
    a.routes = routes_new(&rc);
    for (size_t i = 0; i < w->pod_count; i++)
        node_of[i] = -1;
    cache_nodes_relist_begin(a.cache);
    len += (size_t)snprintf(a.names + len, sizeof(a.names) - len, "[");
    for (size_t i = 0; i < c->node_count; i++) {
        struct node_info n = {.name = str_from_cstr(c->nodes[i].name),
                              .product = str_from_cstr(c->nodes[i].model),
                              .gpu_allocatable = c->nodes[i].gpus,
                              .ready = true};
        n.model = obj_model_from_product(n.product);
        cache_node_upsert(a.cache, &n);
        len += (size_t)snprintf(a.names + len, sizeof(a.names) - len, "%s\"%s\"", i ? "," : "",
                                c->nodes[i].name);
    }
    snprintf(a.names + len, sizeof(a.names) - len, "]");
    cache_nodes_relist_end(a.cache);
    cache_pods_relist_begin(a.cache);
    cache_pods_relist_end(a.cache);
    sim_run(c, w, &spec, &opt, r);
    CHECK_EQ(a.checked, r->placed);
    routes_free(a.routes);
    cache_free(a.cache);
    policy_store_free(store);
}

static struct sim_cluster cluster(size_t n, const char *const *models, const int64_t *gpus)
{
    struct sim_cluster c = {.nodes = xcalloc(n, sizeof(struct sim_node)), .node_count = n};

    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "gpu-node-%zu", i);
        c.nodes[i] =
            (struct sim_node){.name = xstrdup(name), .model = xstrdup(models[i]), .gpus = gpus[i]};
    }
    return c;
}

/* n pods, pod i asking sizes[i % k] GPUs of the models wants[i % k], arriving in order. */
static struct sim_workload workload(size_t n, const char *const *wants, const int64_t *sizes,
                                    size_t k)
{
    struct sim_workload w = {
        .pods = xcalloc(n, sizeof(struct sim_pod)), .pod_count = n, .has_times = true};

    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "pod-%03zu", i);
        w.pods[i] = (struct sim_pod){.name = xstrdup(name),
                                     .models = xstrdup(wants[i % k]),
                                     .gpus = sizes[i % k],
                                     .t_create = (double)i,
                                     .duration = 1e9,
                                     .t_delete = -1};
    }
    return w;
}

int main(void)
{
    static const char *const models[] = {
        "NVIDIA-A100-SXM4-80GB", "Tesla-T4", "Tesla-T4", "Tesla-V100-SXM2-16GB",
        "NVIDIA-A100-SXM4-80GB", "A10"};
    static const int64_t gpus[] = {8, 4, 4, 2, 8, 1};
    static const char *const wants[] = {"", "", "T4", "", "A100", "V100,A10", ""};
    static const int64_t sizes[] = {1, 2, 1, 4, 1, 8, 2};
    /* A mixed fleet where many pods may use only some models, and some several of them. */
    static const char *const models2[] = {"Tesla-T4",
                                          "NVIDIA-A100-SXM4-80GB",
                                          "Tesla-T4",
                                          "A10",
                                          "Tesla-V100-SXM2-16GB",
                                          "Tesla-P100-PCIE-16GB",
                                          "NVIDIA-A100-SXM4-80GB",
                                          "Tesla-T4",
                                          "A10",
                                          "Tesla-V100-SXM2-16GB",
                                          "NVIDIA-L4",
                                          "Tesla-P100-PCIE-16GB",
                                          "NVIDIA-A100-SXM4-80GB",
                                          "Tesla-T4"};
    static const int64_t gpus2[] = {2, 8, 2, 1, 4, 2, 8, 4, 1, 8, 2, 2, 8, 2};
    static const char *const wants2[] = {
        "", "T4",    "", "A10,T4", "P100,V100", "", "T4,V100,P100", "A100",
        "", "L4,T4", "", "V100",   "P100",      "", "T4",           "A10,L4,A100"};
    static const int64_t sizes2[] = {1, 1, 2, 1, 1, 1, 2, 4, 1, 1, 8, 1, 1, 1, 1, 2};
    struct sim_cluster c = cluster(6, models, gpus), c2 = cluster(14, models2, gpus2);
    struct sim_workload w = workload(40, wants, sizes, 7), w2 = workload(160, wants2, sizes2, 16);
    int binpack_node_of[160], node_of[160];
    struct sim_result r;

    /* binpack, spread, binpack with the scarcity weight */
    for (int strategy = 0; strategy < 3; strategy++) {
        struct policy *pol = policy_new_default();
        pol->strategy = pol->default_rule.strategy = strategy == 1 ? POLICY_SPREAD : POLICY_BINPACK;
        pol->weight_scarcity = strategy == 2 ? 4 : 0;
        check_fill(&c, &w, pol, node_of, &r);
        /* 27 GPUs against about 110 asked: the run fills the cluster (binpack places 15). */
        CHECK(r.placed >= 10 && r.placed < 40);
        CHECK(r.alloc_final > 0.8);
        /* The scarcity weight changed decisions: the check covered its part of the score. */
        if (strategy == 0)
            memcpy(binpack_node_of, node_of, 40 * sizeof(int));
        if (strategy == 2)
            CHECK(memcmp(binpack_node_of, node_of, 40 * sizeof(int)) != 0);
        policy_unref(pol);
    }
    /* The mixed fleet, with every weight of the scarcity part that holds a different share. */
    for (int64_t weight = 0; weight <= 8; weight += 2) {
        struct policy *pol = policy_new_default();
        pol->weight_scarcity = weight;
        check_fill(&c2, &w2, pol, node_of, &r);
        CHECK(r.alloc_final > 0.8);
        if (weight == 0)
            memcpy(binpack_node_of, node_of, sizeof(node_of));
        else
            CHECK(memcmp(binpack_node_of, node_of, sizeof(node_of)) != 0);
        policy_unref(pol);
    }
    sim_workload_free(&w);
    sim_workload_free(&w2);
    sim_cluster_free(&c);
    sim_cluster_free(&c2);
    printf("test_sim_agree: ok\n");
    return 0;
}
