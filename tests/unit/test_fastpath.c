/* test_fastpath.c -- the NodeNames fast path against the general one, on generated clusters
 * of every size the benchmark sends (3 to 15,000 names against a 15,000-node cache):
 *
 * - decisions: every node's filter verdict and every part of its score, worked out with the
 *   per-request model memo (sched_pod_memo_models()) and node by node, must be equal;
 * - replies: filter and prioritize through routes_handle(), encoded by copying plain names
 *   from the body and by the general encoder (routes_config.general_encoder), must be the same
 *   bytes, for requests whose names are all plain, with one escaped (the general decoder's
 *   path) and with names the cache does not know.
 *
 * The cluster is seeded and varied where the memo could go wrong: products with -SHARED and
 * -MIG suffixes, one product in two families and two memory sizes, unlabelled nodes, nodes
 * without GPUs, topologies, GPUs in use, and pending pods bound to models (scarcity). The pod
 * is the captured one, with its namespace, GPU count and annotations changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/cache.h"
#include "gx/codec.h"
#include "gx/policy.h"
#include "gx/policy_store.h"
#include "gx/routes.h"
#include "gx/sched.h"

#include "check.h"
#include "exchange_helpers.h"
#include "topology_fixtures.h"

#define CLUSTER 15000

static uint32_t seed = 20261205;

static uint32_t pick(uint32_t n)
{
    return rng_next(&seed) % n;
}

struct model_kind {
    const char *product, *family;
    int64_t memory_mib;
};

static const struct model_kind kinds[] = {
    {"NVIDIA-H100-80GB-HBM3", "hopper", 81559},
    {"NVIDIA-A100-SXM4-80GB", "ampere", 81920},
    {"NVIDIA-A100-SXM4-80GB-SHARED", "ampere", 81920},
    {"NVIDIA-A100-SXM4-40GB", "ampere", 40960},
    {"NVIDIA-A100-SXM4-40GB", "ampere", 40536}, /* same product, another memory label */
    {"NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "ampere", 4864},
    {"NVIDIA-L40S", "ada-lovelace", 46068},
    {"NVIDIA-L40S", "", 46068}, /* no family label */
    {"Tesla-T4", "turing", 15360},
    {"Tesla-V100-SXM2-16GB", "volta", 16384},
    {"", "", 0}, /* no product label */
};

static const char POLICY[] = "apiVersion: gpu-extender.io/v1alpha1\n"
                             "kind: GPUPolicy\n"
                             "scoring:\n"
                             "  strategy: binpack\n"
                             "  weights: {freeGPUs: 1, model: 4, topology: 2, scarcity: 3}\n"
                             "classes:\n"
                             "  - {name: h100, products: [\"NVIDIA-H100*\"]}\n"
                             "  - {name: a100-80, products: [\"NVIDIA-A100-SXM4-80GB\"]}\n"
                             "  - {name: ampere-big, families: [ampere], minMemoryMiB: 40000}\n"
                             "  - {name: l40s, products: [NVIDIA-L40S]}\n"
                             "  - {name: t4, products: [Tesla-T4]}\n"
                             "rules:\n"
                             "  - name: ml-train\n"
                             "    match: {namespaces: [ml-train]}\n"
                             "    allow: [h100, a100-80, ampere-big]\n"
                             "    prefer: [{class: h100}, {class: ampere-big}]\n"
                             "    topology: {minGPUs: 4, require: NVLink}\n"
                             "  - name: inference\n"
                             "    match: {namespaces: [inference]}\n"
                             "    allow: [l40s, h100, t4]\n"
                             "    prefer: [{class: l40s, weight: 100}, {class: t4, weight: 30}]\n"
                             "    strategy: spread\n"
                             "default:\n"
                             "  forbid: [t4]\n"
                             "  podOverrides: {models: true, preferred: true, strategy: true}\n";

static char *node_name(char *buf, size_t cap, unsigned i)
{
    snprintf(buf, cap, "gpu-node-%05u", i);
    return buf;
}

static char *topology_text(int64_t gpus)
{
    static struct doc d8, d4;
    struct spec s;

    if (gpus == 8) {
        spec_init(&s, 8);
        spec_clique(&s, 0, 4, "NV12");
        spec_clique(&s, 4, 8, "NV12");
        s.link[0][4] = s.link[1][5] = "PIX";
        spec_json(&s, &d8);
        return d8.buf;
    }
    spec_init(&s, 4);
    s.link[0][1] = s.link[2][3] = "PIX";
    s.link[0][2] = s.link[1][3] = "SYS";
    spec_json(&s, &d4);
    return d4.buf;
}

static void fill_cache(struct cache *c)
{
    static const int64_t sizes[] = {0, 1, 2, 4, 4, 8, 8, 8};
    char name[64], uid[64], gpus_ann[32];

    cache_nodes_relist_begin(c);
    for (unsigned i = 0; i < CLUSTER; i++) {
        const struct model_kind *k = &kinds[pick(GX_ARRAY_LEN(kinds))];
        struct node_info n = {0};
        n.name = str_from_cstr(node_name(name, sizeof(name), i));
        n.product = str_from_cstr(k->product);
        n.model = obj_model_from_product(n.product);
        n.family = str_from_cstr(k->family);
        n.gpu_memory_mib = k->memory_mib;
        n.gpu_allocatable = sizes[pick(GX_ARRAY_LEN(sizes))];
        n.ready = true;
        if ((n.gpu_allocatable == 8 || n.gpu_allocatable == 4) && pick(3))
            n.ann_topology = str_from_cstr(topology_text(n.gpu_allocatable));
        cache_node_upsert(c, &n);
    }
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    for (unsigned i = 0; i < CLUSTER; i++) {
        unsigned pods = pick(3);
        for (unsigned j = 0; j < pods; j++) {
            struct pod_info p = {0};
            snprintf(uid, sizeof(uid), "uid-%u-%u", i, j);
            p.ns = STR_LIT("default");
            p.name = p.uid = str_from_cstr(uid);
            p.node_name = str_from_cstr(node_name(name, sizeof(name), i));
            p.phase = STR_LIT("Running");
            p.gpus = 1 + pick(2);
            if (pick(2)) { /* the GPUs it holds, by index, as our bind records them */
                snprintf(gpus_ann, sizeof(gpus_ann), "%u", 2 * j);
                p.ann_gpus = str_from_cstr(gpus_ann);
                p.gpus = 1;
            }
            cache_pod_upsert(c, &p);
        }
    }
    /* Pending pods bound to models: the demand that the scarcity part weighs. */
    for (unsigned i = 0; i < 200; i++) {
        static const char *const wants[] = {"T4", "A100-SXM4-40GB", "L40S", "H100,A100"};
        struct pod_info p = {0};
        snprintf(uid, sizeof(uid), "pending-%u", i);
        p.ns = STR_LIT("default");
        p.name = p.uid = str_from_cstr(uid);
        p.phase = STR_LIT("Pending");
        p.gpus = 1 + pick(4);
        p.ann_gpu_model = str_from_cstr(wants[pick(GX_ARRAY_LEN(wants))]);
        cache_pod_upsert(c, &p);
    }
    cache_pods_relist_end(c);
}

/* ---- decisions ---- */

static void check_same_score(struct sched_score a, struct sched_score b)
{
    CHECK_EQ(a.score, b.score);
    CHECK_EQ(a.free_ppm, b.free_ppm);
    CHECK_EQ(a.model_ppm, b.model_ppm);
    CHECK_EQ(a.topo_ppm, b.topo_ppm);
    CHECK_EQ(a.scarcity_ppm, b.scarcity_ppm);
    CHECK_EQ(a.w_model, b.w_model);
    CHECK_EQ(a.w_scarcity, b.w_scarcity);
    CHECK_EQ(a.model_rank, b.model_rank);
    CHECK_EQ(a.topo_set, b.topo_set);
}

/* Every node of the snapshot, memo against node by node. Returns how many passed. */
static size_t check_decisions(const struct cache_snapshot *snap, const struct pod_info *pod,
                              const struct policy *pol, const struct sched_demand *demand)
{
    struct sched_model_memo *memo = calloc(snap->model_count + 1, sizeof(*memo));
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod plain, fast;
    size_t passed = 0;

    CHECK(memo);
    if (!sched_pod_prepare(&plain, pod, pol, &eb)) {
        free(memo);
        return 0;
    }
    sched_pod_use_demand(&plain, demand);
    fast = plain;
    sched_pod_memo_models(&fast, snap->models, snap->model_count, memo);
    CHECK(fast.memo != NULL);
    for (size_t i = 0; i < snap->node_count; i++) {
        struct sched_node n = sched_node_of(cache_snapshot_node(snap, i));
        struct sched_fit a = sched_filter_node(&plain, &n), b = sched_filter_node(&fast, &n);
        CHECK(n.model_id >= 1 && n.model_id <= snap->model_count);
        CHECK_EQ(a.verdict, b.verdict);
        CHECK_EQ(a.reason, b.reason);
        if (a.verdict == SCHED_PASS) {
            passed++;
            check_same_score(sched_score_node(&plain, &n), sched_score_node(&fast, &n));
            /* What prioritize calls: the score alone, the same number. */
            CHECK_EQ(sched_score_value(&fast, &n), sched_score_node(&plain, &n).score);
        }
    }
    free(memo);
    return passed;
}

/* A demand table from the snapshot's models with a few constrained sets, so that the scarcity
 * part differs between models. */
static void demand_of(const struct cache_snapshot *snap, struct sched_demand *d)
{
    sched_demand_init(d);
    for (size_t i = 0; i < snap->node_count; i++)
        sched_demand_add_node(d, &cache_snapshot_node(snap, i)->info);
    if (d->model_count >= 3) {
        sched_demand_add(d, 1u, 40);
        sched_demand_add(d, 2u | 4u, 90);
    }
    sched_demand_finish(d);
}

/* ---- replies ---- */

static char *fixture_pod_args(void)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/extender/raw/filter.args.nodecache-true.json",
             getenv("GX_FIXTURES"));
    return check_read_file(path, NULL);
}

/* s with every from replaced by to (the caller frees). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t n = 0, fl = strlen(from), tl = strlen(to);
    const char *p;
    char *out, *o;

    for (p = strstr(s, from); p; p = strstr(p + fl, from))
        n++;
    CHECK(n > 0);
    out = malloc(strlen(s) + n * tl + 1);
    CHECK(out);
    o = out;
    while ((p = strstr(s, from))) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, tl);
        o += tl;
        s = p + fl;
    }
    memcpy(o, s, strlen(s) + 1);
    return out;
}

struct pod_variant {
    const char *ns;
    int gpus;
    const char *annotations; /* JSON members, or "" */
};

static const struct pod_variant variants[] = {
    {"default", 1, ""},
    {"default", 2, "\"gpu-extender.io/gpu-model-preferred\":\"H100,A100\""},
    {"default", 4, "\"gpu-extender.io/gpu-model\":\"A100,L40S\""},
    {"default", 1, "\"nvidia.com/use-gputype\":\"a100\",\"nvidia.com/nouse-gputype\":\"40GB\""},
    {"default", 2, "\"gpu-extender.io/strategy\":\"spread\""},
    {"ml-train", 8, ""},
    {"ml-train", 4, ""},
    {"inference", 1, ""},
    {"inference", 3, ""},
    {"ml-train", 2, "\"gpu-extender.io/gpu-model\":\"H100\""}, /* refused: an Error */
};

/* The request: the captured pod as the variant says, and names: the first n of a shuffled
 * cluster, every 97th replaced by a node the cache does not know, and with escaped, the
 * first name's first letter written as \u0067. */
static char *request(const char *fixture, const struct pod_variant *v, size_t n, bool escaped)
{
    char gpus[64], ns[128], meta[1024], name[64];
    char *a, *b, *c, *d, *out;
    size_t cap = n * 32 + 64, len = 0;
    char *names = malloc(cap);

    CHECK(names);
    len += (size_t)snprintf(names + len, cap - len, "\"NodeNames\":[");
    for (size_t i = 0; i < n; i++) {
        unsigned idx = (unsigned)((i * 7919u + 13u) % CLUSTER);
        if (i % 97 == 96)
            snprintf(name, sizeof(name), "not-a-node-%zu", i);
        else
            node_name(name, sizeof(name), idx);
        len += (size_t)snprintf(names + len, cap - len, "%s\"%s%s\"", i ? "," : "",
                                escaped && i == 0 ? "\\u0067" : "", name + (escaped && i == 0));
    }
    snprintf(names + len, cap - len, "]");
    snprintf(gpus, sizeof(gpus), "\"nvidia.com/gpu\":\"%d\"", v->gpus);
    snprintf(ns, sizeof(ns), "\"namespace\":\"%s\"", v->ns);
    snprintf(meta, sizeof(meta), "\"metadata\":{\"name\":\"gpu-pod-1\",%s%s%s", "\"annotations\":{",
             v->annotations, "},");
    a = replace_all(fixture, "\"nvidia.com/gpu\":\"1\"", gpus);
    b = replace_all(a, "\"namespace\":\"default\"", ns);
    c = replace_all(b, "\"metadata\":{\"name\":\"gpu-pod-1\",", meta);
    d = replace_all(c, "\"NodeNames\":[\"gpu-node-2\",\"gpu-node-3\",\"gpu-node-1\"]", names);
    out = d;
    free(a);
    free(b);
    free(c);
    free(names);
    return out;
}

/* The same request through routes as shipped (fast) and through routes set to the general
 * encoder: the same bytes. */
static void check_replies(struct routes *r, struct routes *reference, const char *body)
{
    static const char *const verbs[] = {"/filter", "/prioritize"};

    for (size_t v = 0; v < 2; v++) {
        char *fast = exchange_post(r, verbs[v], body);
        char *general = exchange_post(reference, verbs[v], body);
        if (strcmp(fast, general) != 0) {
            fprintf(stderr,
                    "%s: the fast reply differs from the general one\nfast:    %.300s\n"
                    "general: %.300s\n",
                    verbs[v], fast, general);
            abort();
        }
        free(fast);
        free(general);
    }
}

int main(void)
{
    static const size_t sizes[] = {3, 100, 420, 500, 750, 1000, 5000, 15000};
    struct policy *pol = NULL, *def = policy_new_default();
    struct policy_diag diag = {0};
    struct cache *c = cache_new();
    struct cache_snapshot *snap;
    struct policy_store *store;
    struct routes *r;
    struct sched_demand *demand = malloc(sizeof(*demand));
    char *fixture = fixture_pod_args();
    size_t passed = 0;

    CHECK(demand);
    CHECK_EQ(policy_parse("fastpath.yaml", POLICY, strlen(POLICY), &pol, &diag), ERR_OK);
    fill_cache(c);
    snap = cache_snapshot_acquire(c);
    CHECK_EQ(snap->node_count, CLUSTER);
    /* Each row of kinds is its own model facts (the two A100-40GB rows differ in memory),
     * shared by the nodes that drew it. */
    CHECK_EQ(snap->model_count, GX_ARRAY_LEN(kinds));
    demand_of(snap, demand);

    /* Decisions: every pod variant, both policies, with and without demand. */
    for (size_t v = 0; v < GX_ARRAY_LEN(variants); v++) {
        char *body = request(fixture, &variants[v], 3, false);
        struct ext_args args;
        struct arena arena;
        struct errbuf eb = ERRBUF_INIT;
        arena_init(&arena, 1u << 20);
        CHECK_EQ(codec_decode_args(&arena, body, strlen(body), &args, &eb), ERR_OK);
        passed += check_decisions(snap, &args.pod, pol, demand);
        passed += check_decisions(snap, &args.pod, pol, NULL);
        passed += check_decisions(snap, &args.pod, def, NULL);
        arena_destroy(&arena);
        free(body);
    }
    CHECK(passed > 10000); /* the comparisons covered passing nodes, not only rejections */
    cache_snapshot_release(snap);

    /* Replies: every size, both policies. */
    for (int p = 0; p < 2; p++) {
        struct routes_config rc = {.url_prefix = "/", .mode = "https://apiserver", .cache = c};
        struct routes *ref;
        store = policy_store_new(p ? pol : def, ""); /* takes the reference over */
        rc.policies = store;
        r = routes_new(&rc);
        rc.general_encoder = true;
        ref = routes_new(&rc);
        for (size_t s = 0; s < GX_ARRAY_LEN(sizes); s++) {
            size_t nv = sizes[s] >= 5000 ? 2 : GX_ARRAY_LEN(variants);
            for (size_t v = 0; v < nv; v++) {
                char *body =
                    request(fixture, &variants[(v + s) % GX_ARRAY_LEN(variants)], sizes[s], false);
                check_replies(r, ref, body);
                free(body);
            }
            {
                char *body = request(fixture, &variants[1], sizes[s], true);
                check_replies(r, ref, body);
                free(body);
            }
        }
        routes_free(r);
        routes_free(ref);
        policy_store_free(store);
    }
    free(demand);
    free(fixture);
    cache_free(c);
    printf("test_fastpath: ok (%zu passing nodes compared)\n", passed);
    return 0;
}
