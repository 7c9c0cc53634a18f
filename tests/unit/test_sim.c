/* test_sim.c -- the simulator on hand-sized clusters and traces whose outcomes are worked out
 * by hand: fragmentation (binpack keeps a node whole, spread does not), a model constraint,
 * the scarcity weight leaving a T4 node to the pods that need it,
 * a wait and its retry, a pod withdrawn while waiting, the trace loaders, and agreement with
 * sched.h's own answers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/alloc.h"
#include "gx/policy.h"
#include "gx/sim.h"

#include "check.h"
#include "sim/groups.h"

static struct sim_cluster cluster(size_t n, const char *const *models, const int64_t *gpus)
{
    struct sim_cluster c = {.nodes = xcalloc(n, sizeof(struct sim_node)), .node_count = n};

    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "node-%zu", i);
        c.nodes[i] =
            (struct sim_node){.name = xstrdup(name), .model = xstrdup(models[i]), .gpus = gpus[i]};
    }
    return c;
}

struct pod_spec {
    int64_t gpus;
    const char *models;
    double create, duration, del;
};

static struct sim_workload workload(const struct pod_spec *p, size_t n)
{
    struct sim_workload w = {
        .pods = xcalloc(n, sizeof(struct sim_pod)), .pod_count = n, .has_times = true};

    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "pod-%zu", i);
        w.pods[i] = (struct sim_pod){.name = xstrdup(name),
                                     .models = xstrdup(p[i].models ? p[i].models : ""),
                                     .gpus = p[i].gpus,
                                     .t_create = p[i].create,
                                     .duration = p[i].duration,
                                     .t_delete = p[i].del};
    }
    return w;
}

static struct policy *with_strategy(enum policy_strategy s)
{
    struct policy *p = policy_new_default();

    p->strategy = s;
    p->default_rule.strategy = s;
    return p;
}

static void run(const struct sim_cluster *c, const struct sim_workload *w, enum sim_strategy s,
                const struct policy *pol, enum sim_mode mode, struct sim_result *out)
{
    struct sim_run_spec spec = {.strategy = s, .pol = pol};
    struct sim_options opt = {.mode = mode, .seed = 7, .speedup = 1, .compress = 1};

    snprintf(spec.label, sizeof(spec.label), "t");
    sim_run(c, w, &spec, &opt, out);
}

/* Two 8-GPU nodes, eight 1-GPU pods, then one 8-GPU pod. binpack stacks the small pods on one
 * node (the fuller node scores higher), so the big one fits on the other; spread deals them
 * out four and four, and the big one fits nowhere. */
static void test_fragmentation(void)
{
    static const char *const models[] = {"A100", "A100"};
    static const int64_t gpus[] = {8, 8};
    struct pod_spec p[9];
    struct sim_cluster c = cluster(2, models, gpus);
    struct sim_workload w;
    struct policy *bin = with_strategy(POLICY_BINPACK), *spr = with_strategy(POLICY_SPREAD);
    struct sim_result r;

    for (int i = 0; i < 8; i++)
        p[i] = (struct pod_spec){1, NULL, i, 1000, -1};
    p[8] = (struct pod_spec){8, NULL, 8, 1000, -1};
    w = workload(p, 9);
    run(&c, &w, SIM_POLICY, bin, SIM_FILL, &r);
    CHECK_EQ(r.placed, 9);
    CHECK_EQ(r.bucket_placed[3], 1);
    CHECK_EQ(r.alloc_final, 1.0);
    run(&c, &w, SIM_POLICY, spr, SIM_FILL, &r);
    CHECK_EQ(r.placed, 8);
    CHECK_EQ(r.bucket_placed[3], 0);
    CHECK(fabs(r.alloc_first_fail - 0.5) < 1e-9);
    /* The baselines: best fit packs like binpack; worst fit spreads like spread. */
    run(&c, &w, SIM_BEST_FIT, bin, SIM_FILL, &r);
    CHECK_EQ(r.bucket_placed[3], 1);
    run(&c, &w, SIM_WORST_FIT, bin, SIM_FILL, &r);
    CHECK_EQ(r.bucket_placed[3], 0);
    run(&c, &w, SIM_FIRST_FIT, bin, SIM_FILL, &r);
    CHECK_EQ(r.bucket_placed[3], 1);
    /* In replay the 8-GPU pod waits instead of failing, and nothing leaves before it ends. */
    run(&c, &w, SIM_POLICY, spr, SIM_REPLAY, &r);
    CHECK_EQ(r.never_placed, 0);
    CHECK_EQ(r.wait_p99[3], 1006 - 8); /* until node 0 (pods 0, 2, 4, 6) is empty at t=1006 */
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(bin);
    policy_unref(spr);
}

/* A pod that may only use T4 goes to the T4 node even where first fit and binpack would rather
 * take the A10 listed first; a pod asking a model nobody has is never placed. */
static void test_model_constraint(void)
{
    static const char *const models[] = {"A10", "Tesla-T4"};
    static const int64_t gpus[] = {1, 1};
    static const struct pod_spec p[] = {{1, "T4", 0, 100, -1}, {1, "H100", 1, 100, -1}};
    struct sim_cluster c = cluster(2, models, gpus);
    struct sim_workload w = workload(p, 2);
    struct policy *bin = with_strategy(POLICY_BINPACK);
    struct sim_result r;

    run(&c, &w, SIM_FIRST_FIT, bin, SIM_REPLAY, &r);
    CHECK_EQ(r.placed, 1);
    CHECK_EQ(r.never_placed, 1);
    CHECK_EQ(r.model_count, 2);
    CHECK(strcmp(r.models[1], "Tesla-T4") == 0);
    CHECK(r.model_util[1] > 0.9); /* busy from t=0 to the last arrival */
    CHECK_EQ(r.model_util[0], 0);
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(bin);
}

/* One T4 node (2 GPUs) and one A100 node (8). A pod that may only use T4 comes first, a pod
 * that accepts any model next, then a second T4-only pod. Binpack sends the second pod to the
 * T4 node (score 10 against 1), and the last one fits nowhere. With the scarcity weight the
 * running T4-only pod makes T4 the scarce model: the second pod scores 0 there (binpack's 2,
 * less 6 for the fleet-share mark-down: it would take 2/2 of T4 against 2/8 of A100) against 8
 * on the A100 node, and the last one gets the T4 GPU left. */
static void test_scarcity(void)
{
    static const char *const models[] = {"Tesla-T4", "NVIDIA-A100-SXM4-80GB"};
    static const int64_t gpus[] = {2, 8};
    static const struct pod_spec p[] = {
        {1, "T4", 0, 1000, -1}, {1, NULL, 1, 1000, -1}, {1, "T4", 2, 1000, 50}};
    struct sim_cluster c = cluster(2, models, gpus);
    struct sim_workload w = workload(p, 3);
    struct policy *bin = with_strategy(POLICY_BINPACK), *scarce = with_strategy(POLICY_BINPACK);
    struct sim_result r;

    scarce->weight_scarcity = 4;
    run(&c, &w, SIM_POLICY, bin, SIM_FILL, &r);
    CHECK_EQ(r.placed, 2);
    CHECK(fabs(r.alloc_first_fail - 0.2) < 1e-9); /* 2 GPUs of 10 */
    run(&c, &w, SIM_POLICY, scarce, SIM_FILL, &r);
    CHECK_EQ(r.placed, 3);
    run(&c, &w, SIM_POLICY, bin, SIM_REPLAY, &r);
    CHECK_EQ(r.never_placed, 1);
    run(&c, &w, SIM_POLICY, scarce, SIM_REPLAY, &r);
    CHECK_EQ(r.never_placed, 0);
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(bin);
    policy_unref(scarce);
}

/* One GPU. A runs 0..100; B arrives at 10 and waits 90 s; C arrives at 20 and is withdrawn at
 * 50 while waiting; D arrives at 30 and gets the GPU once B is done. */
static void test_wait_and_retry(void)
{
    static const char *const models[] = {"T4"};
    static const int64_t gpus[] = {1};
    static const struct pod_spec p[] = {
        {1, NULL, 0, 100, -1}, {1, NULL, 10, 50, -1}, {1, NULL, 20, 50, 50}, {1, NULL, 30, 10, -1}};
    struct sim_cluster c = cluster(1, models, gpus);
    struct sim_workload w = workload(p, 4);
    struct policy *bin = with_strategy(POLICY_BINPACK);
    struct sim_result r;

    run(&c, &w, SIM_POLICY, bin, SIM_REPLAY, &r);
    CHECK_EQ(r.placed, 3);
    CHECK_EQ(r.never_placed, 1);
    /* Waits: A 0, B 90, D 120 (B ends at 150). */
    CHECK_EQ(r.wait_p50[0], 90);
    CHECK_EQ(r.wait_p99[0], 120);
    CHECK(fabs(r.alloc_mean - 1.0) < 1e-9); /* busy until the last arrival (t=30) */
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(bin);
}

/* Generated topologies: an 8-GPU HGX-shaped node gives a 4-GPU pod an all-NVLink set, which is
 * the best such a node has. */
static void test_topology(void)
{
    static const char *const models[] = {"A100", "A100"};
    static const int64_t gpus[] = {8, 4};
    static const struct pod_spec p[] = {{4, NULL, 0, 10, -1}, {2, NULL, 1, 10, -1}};
    struct sim_cluster c = cluster(2, models, gpus);
    struct sim_workload w = workload(p, 2);
    struct policy *bin = with_strategy(POLICY_BINPACK);
    struct sim_result r;

    sim_add_topologies(&c);
    CHECK(c.nodes[0].topo && c.nodes[1].topo);
    run(&c, &w, SIM_POLICY, bin, SIM_REPLAY, &r);
    CHECK_EQ(r.topo_pods, 2);
    CHECK_EQ(r.topo_best, 2);
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(bin);
}

static char *write_temp(const char *text)
{
    char *path = xstrdup("/tmp/gx-test-sim-XXXXXX");
    int fd = mkstemp(path);
    size_t n = strlen(text);

    CHECK(fd >= 0);
    CHECK_EQ(write(fd, text, n), (long long)n);
    close(fd);
    return path;
}

static void test_loaders(void)
{
    char *nodes = write_temp("sn,cpu_milli,memory_mib,gpu,model\n"
                             "n0,64000,262144,2,P100\nn1,96000,1,0,\nn2,1,1,8,G2\n");
    char *pods = write_temp(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
        "deletion_time,scheduled_time\n"
        "p0,1,1,1,1000,,LS,Running,5,105,5\n"
        "p1,1,1,0,0,,LS,Running,1,2,1\n"
        "p2,1,1,1,460,T4|P100,BE,Pending,3,40,\n"
        "p3,1,1,8,1000,,LS,Running,4,30,10\n");
    char *bad = write_temp("name,num_gpu,creation_time\np0,1.5,3\n");
    struct errbuf eb = ERRBUF_INIT;
    struct sim_cluster c;
    struct sim_workload w;

    CHECK_EQ(sim_load_nodes_csv(nodes, &c, &eb), ERR_OK);
    CHECK_EQ(c.node_count, 2); /* the CPU-only row is left out */
    CHECK(strcmp(c.nodes[1].model, "G2") == 0);
    CHECK_EQ(c.nodes[1].gpus, 8);
    sim_cluster_free(&c);
    CHECK_EQ(sim_load_pods_csv(pods, false, &w, &eb), ERR_OK);
    CHECK_EQ(w.pod_count, 3);
    CHECK_EQ(w.skipped_cpu_only, 1);
    CHECK_EQ(w.sharing_as_whole, 1);
    /* Arrival order: p2 (3), p3 (4), p0 (5). p2 was never scheduled: it runs 37 s from arrival. */
    CHECK(strcmp(w.pods[0].name, "p2") == 0 && strcmp(w.pods[0].models, "T4,P100") == 0);
    CHECK_EQ(w.pods[0].duration, 37);
    CHECK_EQ(w.pods[1].duration, 20); /* deletion - scheduled */
    sim_workload_free(&w);
    CHECK_EQ(sim_load_pods_csv(pods, true, &w, &eb), ERR_OK);
    CHECK_EQ(w.pod_count, 2);
    CHECK_EQ(w.skipped_sharing, 1);
    sim_workload_free(&w);
    CHECK_EQ(sim_load_pods_csv(bad, false, &w, &eb), ERR_PARSE);
    CHECK(strstr(eb.msg, ":2:") != NULL);
    CHECK_EQ(sim_load_nodes_csv("/nonexistent/nodes.csv", &c, &eb), ERR_IO);
    {
        /* A node without a name is refused, with its line (the fuzzer found one). */
        char *nameless = write_temp("sn,gpu,model\nn0,2,T4\n,8,G2\n");
        struct errbuf fresh = ERRBUF_INIT;
        CHECK_EQ(sim_load_nodes_csv(nameless, &c, &fresh), ERR_PARSE);
        CHECK(strstr(fresh.msg, ":3: sn (the node's name) is empty") != NULL);
        unlink(nameless);
        free(nameless);
    }
    unlink(nodes);
    unlink(pods);
    unlink(bad);
    free(nodes);
    free(pods);
    free(bad);
}

/* The grouping the simulator decides by: members, lowest index, moves, emptied groups. */
static void test_groups(void)
{
    struct groups *g = groups_new(200);
    struct group_view v;
    size_t seen = 0;

    for (size_t i = 0; i < 200; i++)
        groups_set(g, i, (uint32_t)(i % 2), 0, 0);
    CHECK_EQ(groups_count(g), 2);
    for (size_t k = 0; k < groups_count(g); k++) {
        v = groups_at(g, k);
        CHECK_EQ(v.size, 100);
        CHECK_EQ(groups_min_node(g, v.id), v.cls); /* 0 for the even class, 1 for the odd */
        for (size_t j = 0; j < v.size; j++)
            seen += groups_node_at(g, v.id, j) % 2 == v.cls;
    }
    CHECK_EQ(seen, 200);
    /* Nodes 0 and 2 take GPUs: a new group; the even group's lowest is now 4. */
    groups_set(g, 0, 0, 1, 0x1);
    groups_set(g, 2, 0, 1, 0x1);
    CHECK_EQ(groups_count(g), 3);
    for (size_t k = 0; k < groups_count(g); k++) {
        v = groups_at(g, k);
        if (v.cls == 0 && v.used == 0)
            CHECK_EQ(groups_min_node(g, v.id), 4);
        if (v.used == 1)
            CHECK(v.size == 2 && groups_min_node(g, v.id) == 0);
    }
    /* Back: the used group empties and drops out of the iteration. */
    groups_set(g, 0, 0, 0, 0);
    groups_set(g, 2, 0, 0, 0);
    CHECK_EQ(groups_count(g), 2);
    for (size_t k = 0; k < groups_count(g); k++) {
        v = groups_at(g, k);
        CHECK_EQ(groups_min_node(g, v.id), v.cls);
    }
    groups_free(g);
}

/* A pod the policy refuses (its model annotation where the rule lets pods set none) is never
 * placed, and never retried. */
static void test_refused_pod(void)
{
    static const char *const models[] = {"T4"};
    static const int64_t gpus[] = {1};
    static const struct pod_spec p[] = {
        {1, NULL, 0, 100, -1}, {1, "T4", 1, 10, -1}, {1, NULL, 2, 10, -1}};
    struct sim_cluster c = cluster(1, models, gpus);
    struct sim_workload w = workload(p, 3);
    struct policy *pol = with_strategy(POLICY_BINPACK);
    struct sim_result r;

    pol->default_rule.overrides.models = false;
    run(&c, &w, SIM_POLICY, pol, SIM_REPLAY, &r);
    CHECK_EQ(r.placed, 2);
    CHECK_EQ(r.never_placed, 1);
    run(&c, &w, SIM_POLICY, pol, SIM_FILL, &r);
    CHECK_EQ(r.placed, 1);
    sim_workload_free(&w);
    sim_cluster_free(&c);
    policy_unref(pol);
}

int main(void)
{
    test_refused_pod();
    test_groups();
    test_fragmentation();
    test_model_constraint();
    test_scarcity();
    test_wait_and_retry();
    test_topology();
    test_loaders();
    printf("test_sim: ok\n");
    return 0;
}
