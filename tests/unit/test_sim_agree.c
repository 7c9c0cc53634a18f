/* test_sim_agree.c -- the simulator's decisions are the daemon's: along a whole fill run, each
 * pod the simulator places is asked of the daemon's own routes (POST /filter and /prioritize
 * in NodeNames mode, on a cluster cache holding the same nodes and the pods placed so far),
 * and the simulator's node must pass filter with the highest score there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/cache.h"
#include "gx/clock.h"
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
};

static char *call(struct agree *a, const char *path, const char *body)
{
    struct exchange ex;
    char *reply;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 16u << 20);
    ex.method = "POST";
    ex.path = path;
    ex.body = body;
    ex.body_len = strlen(body);
    ex.start_ns = clock_mono_ns();
    routes_handle(a->routes, &ex);
    CHECK_EQ(ex.status, 200);
    reply = exchange_reply_join(&ex, NULL);
    arena_destroy(&ex.arena);
    return reply;
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

static void on_place(void *ctx, size_t pod, size_t node)
{
    struct agree *a = ctx;
    const struct sim_pod *p = &a->w->pods[pod];
    char body[8192];
    char *filter, *prio;
    int best = -1, mine;
    struct pod_info bound = {0};

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
    bound.uid = str_from_cstr(p->name);
    bound.ns = STR_LIT("sim");
    bound.name = bound.uid;
    bound.node_name = str_from_cstr(a->c->nodes[node].name);
    bound.gpus = p->gpus;
    bound.phase = STR_LIT("Running");
    cache_pod_upsert(a->cache, &bound);
    a->checked++;
}

int main(void)
{
    static const char *const models[] = {
        "NVIDIA-A100-SXM4-80GB", "Tesla-T4", "Tesla-T4", "Tesla-V100-SXM2-16GB",
        "NVIDIA-A100-SXM4-80GB", "A10"};
    static const int64_t gpus[] = {8, 4, 4, 2, 8, 1};
    static const char *const wants[] = {"", "", "T4", "", "A100", "V100,A10", ""};
    static const int64_t sizes[] = {1, 2, 1, 4, 1, 8, 2};
    struct sim_cluster c = {.nodes = xcalloc(6, sizeof(struct sim_node)), .node_count = 6};
    struct sim_workload w = {
        .pods = xcalloc(40, sizeof(struct sim_pod)), .pod_count = 40, .has_times = true};
    struct policy_store *store;
    struct routes_config rc = {.url_prefix = "/", .mode = "test"};
    struct agree a = {0};
    size_t len = 0;

    for (size_t i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof(name), "gpu-node-%zu", i);
        c.nodes[i] =
            (struct sim_node){.name = xstrdup(name), .model = xstrdup(models[i]), .gpus = gpus[i]};
    }
    for (size_t i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "pod-%02zu", i);
        w.pods[i] = (struct sim_pod){.name = xstrdup(name),
                                     .models = xstrdup(wants[i % 7]),
                                     .gpus = sizes[i % 7],
                                     .t_create = (double)i,
                                     .duration = 1e9,
                                     .t_delete = -1};
    }
    for (int strategy = 0; strategy < 2; strategy++) {
        struct policy *pol = policy_new_default();
        struct sim_run_spec spec = {.strategy = SIM_POLICY, .pol = pol, .label = "agree"};
        struct sim_options opt = {.mode = SIM_FILL,
                                  .seed = 3,
                                  .speedup = 1,
                                  .compress = 1,
                                  .on_place = on_place,
                                  .on_place_ctx = &a};
        struct sim_result r;

        pol->strategy = pol->default_rule.strategy = strategy ? POLICY_SPREAD : POLICY_BINPACK;
        store = policy_store_new(pol, "");
        a = (struct agree){.cache = cache_new(), .c = &c, .w = &w};
        rc.policies = store;
        rc.cache = a.cache;
        a.routes = routes_new(&rc);
        cache_nodes_relist_begin(a.cache);
        len = 0;
        len += (size_t)snprintf(a.names + len, sizeof(a.names) - len, "[");
        for (size_t i = 0; i < 6; i++) {
            struct node_info n = {.name = str_from_cstr(c.nodes[i].name),
                                  .product = str_from_cstr(c.nodes[i].model),
                                  .gpu_allocatable = c.nodes[i].gpus,
                                  .ready = true};
            n.model = obj_model_from_product(n.product);
            cache_node_upsert(a.cache, &n);
            len += (size_t)snprintf(a.names + len, sizeof(a.names) - len, "%s\"%s\"", i ? "," : "",
                                    c.nodes[i].name);
        }
        snprintf(a.names + len, sizeof(a.names) - len, "]");
        cache_nodes_relist_end(a.cache);
        cache_pods_relist_begin(a.cache);
        cache_pods_relist_end(a.cache);
        sim_run(&c, &w, &spec, &opt, &r);
        CHECK_EQ(a.checked, r.placed);
        /* 27 GPUs against about 110 asked: the run fills the cluster (binpack places 15). */
        CHECK(r.placed >= 10 && r.placed < 40);
        CHECK(r.alloc_final > 0.8);
        routes_free(a.routes);
        cache_free(a.cache);
        policy_store_free(store);
    }
    sim_workload_free(&w);
    sim_cluster_free(&c);
    printf("test_sim_agree: ok\n");
    return 0;
}
