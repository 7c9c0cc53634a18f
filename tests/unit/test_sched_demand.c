/* test_sched_demand.c -- the constrained-demand table (water-filling, computed by hand), which
 * models a pod may use, and the scarcity part of the score on hand-sized clusters: a pod that
 * accepts any model leaves the only T4 node to the pod that needs it, binpack still keeps an
 * 8-GPU node whole, and a pod bound to one model scores as before; and the fleet-share
 * mark-down, which keeps a pod that accepts any model off a model with few GPUs before any
 * demand for it shows. */
#include <string.h>

#include "gx/objects.h"
#include "gx/sched.h"

#include "check.h"
#include "node_helpers.h"
#include "policy_helpers.h"

static struct node_info node(const char *product, int64_t gpus)
{
    return test_node(product, gpus);
}

static struct pod_info pod(int64_t gpus, const char *models)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.ns = STR_LIT("default");
    p.name = p.uid = STR_LIT("p");
    p.gpus = gpus;
    p.ann_gpu_model = str_from_cstr(models);
    return p;
}

static int64_t scarcity_of(const struct sched_demand *d, const char *model)
{
    int i = sched_demand_find(d, str_from_cstr(model));

    CHECK(i >= 0);
    return d->models[i].scarcity_ppm;
}

/* Adds a pod's GPUs on the models it may use under pol. */
static void add_pod(struct sched_demand *d, const struct policy *pol, struct pod_info p)
{
    struct sched_pod sp;
    struct errbuf eb = ERRBUF_INIT;

    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    sched_demand_add(d, sched_demand_allowed(d, &sp), p.gpus);
}

/* T4: 2 GPUs, A100: 16, V100: 4. */
static void three_models(struct sched_demand *d)
{
    struct node_info t4 = node("Tesla-T4", 2), a100 = node("NVIDIA-A100-SXM4-80GB", 8);
    struct node_info v100 = node("Tesla-V100-SXM2-16GB-SHARED", 4);

    sched_demand_init(d);
    sched_demand_add_node(d, &t4);
    sched_demand_add_node(d, &a100);
    sched_demand_add_node(d, &a100);
    sched_demand_add_node(d, &v100);
    sched_demand_add_node(d, &(struct node_info){.name = STR_LIT("cpu")}); /* no GPUs: left out */
}

static void test_table(void)
{
    struct policy *pol = policy_new_default();
    struct sched_demand d, again;

    three_models(&d);
    CHECK_EQ(d.model_count, 3);
    CHECK_EQ(d.models[sched_demand_find(&d, STR_LIT("NVIDIA-A100-SXM4-80GB"))].gpus, 16);
    /* The model drops -SHARED: the V100 node counts as Tesla-V100-SXM2-16GB. */
    CHECK(sched_demand_find(&d, STR_LIT("Tesla-V100-SXM2-16GB")) >= 0);
    CHECK_EQ(sched_demand_find(&d, STR_LIT("Tesla-V100-SXM2-16GB-SHARED")), -1);
    /* Pods that may use every model, or none, are no constraint. */
    add_pod(&d, pol, pod(3, ""));
    add_pod(&d, pol, pod(3, "H100"));
    add_pod(&d, pol, pod(3, "T4,A100,V100"));
    CHECK_EQ(d.set_count, 0);
    /* By hand: {T4} 1 GPU on 2 -> 0.5. {T4, A100} 6 GPUs pour into A100, the emptier, and
     * need 8 to reach T4's 0.5: A100 ends at 6/16 = 0.375. {V100} 2 GPUs on 4 -> 0.5. */
    add_pod(&d, pol, pod(6, "T4,A100"));
    add_pod(&d, pol, pod(1, "T4"));
    add_pod(&d, pol, pod(2, "V100"));
    sched_demand_finish(&d);
    CHECK_EQ(scarcity_of(&d, "Tesla-T4"), 500000);
    CHECK_EQ(scarcity_of(&d, "NVIDIA-A100-SXM4-80GB"), 375000);
    CHECK_EQ(scarcity_of(&d, "Tesla-V100-SXM2-16GB"), 500000);
    /* 6 more on {T4, A100}: A100 reaches 0.5 with 2 of them, then both rise together:
     * (1 + 12 + 4 * 0) / 18 ... exactly: mass 13 GPUs over 18 GPUs -> 722222. */
    add_pod(&d, pol, pod(6, "T4,A100"));
    sched_demand_finish(&d);
    CHECK_EQ(scarcity_of(&d, "Tesla-T4"), 722222);
    CHECK_EQ(scarcity_of(&d, "NVIDIA-A100-SXM4-80GB"), 722222);
    /* The same pods in another order, with the models added in another order: the same
     * table. */
    {
        struct node_info t4 = node("Tesla-T4", 2), a100 = node("NVIDIA-A100-SXM4-80GB", 16);
        struct node_info v100 = node("Tesla-V100-SXM2-16GB", 4);
        sched_demand_init(&again);
        sched_demand_add_node(&again, &v100);
        sched_demand_add_node(&again, &a100);
        sched_demand_add_node(&again, &t4);
        add_pod(&again, pol, pod(2, "V100"));
        add_pod(&again, pol, pod(12, "A100,T4"));
        add_pod(&again, pol, pod(1, "T4"));
        sched_demand_finish(&again);
        CHECK_EQ(scarcity_of(&again, "Tesla-T4"), 722222);
        CHECK_EQ(scarcity_of(&again, "NVIDIA-A100-SXM4-80GB"), 722222);
        CHECK_EQ(scarcity_of(&again, "Tesla-V100-SXM2-16GB"), 500000);
    }
    /* Taking the pods back empties the table. */
    add_pod(&d, pol, pod(-12, "T4,A100"));
    add_pod(&d, pol, pod(-1, "T4"));
    add_pod(&d, pol, pod(-2, "V100"));
    sched_demand_finish(&d);
    CHECK_EQ(scarcity_of(&d, "Tesla-T4") + scarcity_of(&d, "NVIDIA-A100-SXM4-80GB") +
                 scarcity_of(&d, "Tesla-V100-SXM2-16GB"),
             0);
    policy_unref(pol);
}

/* The policy's rules and HAMi's annotations narrow the models as the filter does. */
static void test_allowed(void)
{
    struct policy *pol = expect_ok(HEAD "classes:\n"
                                        "  - {name: t4, products: [Tesla-T4]}\n"
                                        "  - {name: big, products: [NVIDIA-A100*]}\n"
                                        "rules:\n"
                                        "  - name: ci\n"
                                        "    match: {namespaces: [ci]}\n"
                                        "    allow: [t4]\n"
                                        "default:\n"
                                        "  forbid: [t4]\n");
    struct sched_demand d;
    struct sched_pod sp;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info p = pod(1, "");
    int t4, a100, v100;

    three_models(&d);
    t4 = sched_demand_find(&d, STR_LIT("Tesla-T4"));
    a100 = sched_demand_find(&d, STR_LIT("NVIDIA-A100-SXM4-80GB"));
    v100 = sched_demand_find(&d, STR_LIT("Tesla-V100-SXM2-16GB"));
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_demand_allowed(&d, &sp), (UINT64_C(1) << a100) | (UINT64_C(1) << v100));
    p.ns = STR_LIT("ci");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_demand_allowed(&d, &sp), UINT64_C(1) << t4);
    p.ns = STR_LIT("default");
    p.ann_use_gputype = STR_LIT("v100");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_demand_allowed(&d, &sp), UINT64_C(1) << v100);
    p.ann_use_gputype = STR_NULL;
    p.ann_nouse_gputype = STR_LIT("v100");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_demand_allowed(&d, &sp), UINT64_C(1) << a100);
    policy_unref(pol);
}

static struct policy *weights(int64_t free_gpus, int64_t scarcity)
{
    struct policy *pol = policy_new_default();

    pol->weight_free_gpus = free_gpus;
    pol->weight_scarcity = scarcity;
    return pol;
}

static struct sched_score score(const struct sched_pod *sp, const struct node_info *n, int64_t used)
{
    struct sched_node sn = {.info = n, .used = used};

    return sched_score_node(sp, &sn);
}

/* The fleet-share mark-down on an empty n: its levels, and in *excess the share beyond the
 * pod's least. */
static int share(const struct sched_pod *sp, const struct node_info *n, int64_t *excess)
{
    struct sched_score s = score(sp, n, 0);

    return sched_share_levels(sp, n, &s, excess);
}

static int64_t excess_of(const struct sched_pod *sp, const struct node_info *n)
{
    int64_t excess;

    (void)share(sp, n, &excess);
    return excess;
}

static int levels_of(const struct sched_pod *sp, const struct node_info *n)
{
    int64_t excess;

    return share(sp, n, &excess);
}

/* One T4 node (2 GPUs) and one A100 node (8 GPUs). A pod that may only use T4 is pending;
 * then comes a one-GPU pod that accepts any model. Binpack sends it to the T4 node, which it
 * half fills (score 5, against 1 for breaking into the A100 node), and the T4 pod could then
 * never run there. With the scarcity part, T4 is the scarcer model (1 GPU wanted of 2, A100
 * none): the T4 node scores round(2 * 0.5) + 8 * 0 = 1 and the A100 node round(2 * 0.125) +
 * 8 * 1 = 8, so the pod goes to the A100 node. The fleet-share mark-down agrees: the pod would
 * take half of T4's GPUs and an eighth of A100's, so T4 loses round(8 * (1 - 2/8)) = 6 more
 * levels, to 0. */
static void test_leaves_t4(void)
{
    struct node_info t4 = node("Tesla-T4", 2), a100 = node("NVIDIA-A100-SXM4-80GB", 8);
    struct policy *binpack = policy_new_default(), *pol = weights(1, 4);
    struct pod_info any = pod(1, ""), only = pod(1, "T4");
    struct errbuf eb = ERRBUF_INIT;
    struct sched_demand d;
    struct sched_pod sp;

    sched_demand_init(&d);
    sched_demand_add_node(&d, &t4);
    sched_demand_add_node(&d, &a100);
    add_pod(&d, pol, only);
    sched_demand_finish(&d);
    CHECK_EQ(scarcity_of(&d, "Tesla-T4"), 500000);

    CHECK(sched_pod_prepare(&sp, &any, binpack, &eb));
    sched_pod_use_demand(&sp, &d); /* scarcity weight 0: the part stays off */
    CHECK(sp.demand == NULL);
    CHECK_EQ(score(&sp, &t4, 0).score, 5);
    CHECK_EQ(score(&sp, &a100, 0).score, 1);

    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.demand == &d);
    CHECK(sp.share_table == &d);
    CHECK_EQ(score(&sp, &t4, 0).score, 0);
    CHECK_EQ(score(&sp, &t4, 0).scarcity_ppm, 0);
    CHECK_EQ(excess_of(&sp, &t4), 750000);
    CHECK_EQ(levels_of(&sp, &t4), 6);
    CHECK_EQ(levels_of(&sp, &a100), 0);
    CHECK_EQ(score(&sp, &a100, 0).score, 8);
    CHECK_EQ(score(&sp, &a100, 0).scarcity_ppm, 1000000);
    CHECK_EQ(score(&sp, &a100, 0).w_scarcity, 4);
    /* The T4 pod itself may use one model: nothing to choose, it scores as under binpack. */
    CHECK(sched_pod_prepare(&sp, &only, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.demand == NULL);
    CHECK(sp.share_table == NULL); /* nor the mark-down: it may not go elsewhere */
    CHECK_EQ(score(&sp, &t4, 1).score, 10);
    CHECK_EQ(score(&sp, &t4, 1).w_scarcity, 0);
    /* No demand at all: every model equally scarce, the part stays off; the mark-down still
     * takes its 6 levels off binpack's 5 on the T4 node, against 1 on the A100 node. */
    sched_demand_add(&d, sched_demand_allowed(&d, &sp), -1);
    sched_demand_finish(&d);
    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.demand == NULL);
    CHECK_EQ(score(&sp, &t4, 0).score, 0);
    CHECK_EQ(levels_of(&sp, &t4), 6);
    CHECK_EQ(score(&sp, &a100, 0).score, 1);
    policy_unref(binpack);
    policy_unref(pol);
}

/* Two A100 nodes, one empty and one with 3 GPUs taken, and a scarce T4 node: the one-GPU pod
 * goes to the partly used A100 node (round(2 * 4/8) + 8 = 9) and leaves the empty one whole
 * (round(2 * 1/8) + 8 = 8). The scarcity part holds at most 8 of the 10 points, so no weight
 * takes the difference away; with a light weight the strategy has more points. On the T4 node
 * the fleet-share mark-down (the pod would take 2/2 of T4 against 2/16 of A100: 0.875 of the
 * part's levels) leaves nothing. */
static void test_keeps_whole_node(void)
{
    struct node_info t4 = node("Tesla-T4", 2), a100 = node("NVIDIA-A100-SXM4-80GB", 8);
    struct pod_info any = pod(1, "");
    struct errbuf eb = ERRBUF_INIT;
    struct sched_demand d;
    struct sched_pod sp;
    static const struct {
        int64_t w;
        int empty, partly, t4;
    } cases[] = {
        {1, 6, 8, 0},  /* S = 5: round(5/8) + 5, round(5 * 4/8) + 5, round(5 * 1/2) - 4 */
        {4, 8, 9, 0},  /* S = 8: T4 round(2 * 1/2) - 7 */
        {100, 8, 9, 0} /* S would be 10; held to 8 */
    };

    sched_demand_init(&d);
    sched_demand_add_node(&d, &t4);
    sched_demand_add_node(&d, &a100);
    sched_demand_add_node(&d, &a100);
    sched_demand_add(&d, UINT64_C(1) << sched_demand_find(&d, STR_LIT("Tesla-T4")), 2);
    sched_demand_finish(&d);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy *pol = weights(1, cases[i].w);
        CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
        sched_pod_use_demand(&sp, &d);
        CHECK_EQ(score(&sp, &a100, 0).score, cases[i].empty);
        CHECK_EQ(score(&sp, &a100, 3).score, cases[i].partly);
        CHECK_EQ(score(&sp, &t4, 0).score, cases[i].t4);
        CHECK_EQ(levels_of(&sp, &a100), 0);
        CHECK(score(&sp, &a100, 3).score > score(&sp, &a100, 0).score);
        policy_unref(pol);
    }
    /* Only the scarcity weight: it takes all 10 points. */
    {
        struct policy *pol = weights(0, 3);
        CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
        sched_pod_use_demand(&sp, &d);
        CHECK_EQ(score(&sp, &a100, 0).score, 10);
        CHECK_EQ(score(&sp, &t4, 0).score, 0);
        policy_unref(pol);
    }
}

/* Between the least and the most scarce model, the part is in proportion. */
static void test_proportion(void)
{
    struct sched_demand d;
    struct policy *pol = weights(1, 4);
    struct pod_info any = pod(1, "");
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;

    three_models(&d);
    /* T4 1.0, V100 0.5, A100 0. */
    add_pod(&d, pol, pod(2, "T4"));
    add_pod(&d, pol, pod(2, "V100"));
    sched_demand_finish(&d);
    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK_EQ(sp.scarcity_lo_ppm, 0);
    CHECK_EQ(sp.scarcity_hi_ppm, 1000000);
    {
        struct node_info v100 = node("Tesla-V100-SXM2-16GB", 4);
        struct sched_score s = score(&sp, &v100, 0);
        CHECK_EQ(s.scarcity_ppm, 500000);
        /* round(2 * 1/4) + round(8 * 0.5), less the mark-down: the pod would take 2/4 of
         * V100's GPUs against 2/16 of A100's, round(8 * 0.375) = 3 levels. */
        CHECK_EQ(excess_of(&sp, &v100), 375000);
        CHECK_EQ(s.score, 1 + 4 - 3);
    }
    /* A pod that may not use T4 sees V100 as its most scarce model. */
    any.ann_gpu_model = STR_LIT("V100,A100");
    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK_EQ(sp.scarcity_hi_ppm, 500000);
    CHECK(sp.share_table == NULL);
    {
        struct node_info v100 = node("Tesla-V100-SXM2-16GB", 4);
        CHECK_EQ(score(&sp, &v100, 0).scarcity_ppm, 0);
    }
    policy_unref(pol);
}

/* A table of the given nodes' models and no demand. */
static void fleet(struct sched_demand *d, const struct node_info *const *nodes, size_t n)
{
    sched_demand_init(d);
    for (size_t i = 0; i < n; i++)
        sched_demand_add_node(d, nodes[i]);
    sched_demand_finish(d);
}

/* The fleet's only A10 GPUs are two 1-GPU nodes; G2 has two 8-GPU nodes. No pod has asked for
 * a model yet, so the scarcity part is off; the first pods on openb's trace used to take the
 * A10 GPUs here, long before the pods that may only use A10 or T4 arrived. A one-GPU pod that
 * accepts any model would take 2/2 of A10 (twice its GPUs over the model's, at most 1) against
 * 2/16 of G2: the A10 node loses round(8 * 0.875) = 7 of binpack's 10. */
static void test_fleet_share(void)
{
    struct node_info a10 = node("NVIDIA-A10", 1), g2 = node("G2", 8), t4 = node("Tesla-T4", 2);
    struct policy *pol = weights(1, 4);
    struct pod_info any = pod(1, ""), either = pod(1, "A10,T4"), big = pod(8, "");
    struct errbuf eb = ERRBUF_INIT;
    struct sched_demand d;
    struct sched_pod sp;

    fleet(&d, (const struct node_info *[]){&a10, &a10, &g2, &g2}, 4);
    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.demand == NULL);
    CHECK(sp.share_table == &d);
    CHECK_EQ(excess_of(&sp, &a10), 875000);
    CHECK_EQ(levels_of(&sp, &a10), 7);
    CHECK_EQ(score(&sp, &a10, 0).score, 3);
    /* A partly used G2 node wins (round(10 * 6/8) = 8); only a G2 node with at most one GPU
     * taken does not: breaking into a whole 8-GPU node still costs more than the mark-down. */
    CHECK_EQ(score(&sp, &g2, 5).score, 8);
    CHECK_EQ(score(&sp, &g2, 1).score, 3);
    CHECK_EQ(score(&sp, &g2, 0).score, 1);
    CHECK_EQ(levels_of(&sp, &g2), 0);
    /* The binpack policy (weight 0): no mark-down, the A10 node's exact fit wins. */
    {
        struct policy *binpack = policy_new_default();
        CHECK(sched_pod_prepare(&sp, &any, binpack, &eb));
        sched_pod_use_demand(&sp, &d);
        CHECK(sp.share_table == NULL);
        CHECK_EQ(score(&sp, &a10, 0).score, 10);
        policy_unref(binpack);
    }
    /* An 8-GPU pod, which no A10 node can hold, would take all of G2's 16 GPUs too (twice its
     * 8 is 16): no model is worse than another, nothing is marked down. */
    CHECK(sched_pod_prepare(&sp, &big, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.share_table == NULL);

    /* With a T4 node (2 GPUs), a pod that may use A10 or T4 is not marked down: its rule or
     * annotation chose those models, and the scarcity part weighs it against their demand. */
    fleet(&d, (const struct node_info *[]){&a10, &a10, &t4, &g2, &g2}, 5);
    CHECK(sched_pod_prepare(&sp, &either, pol, &eb));
    CHECK_EQ(sched_demand_allowed(&d, &sp), UINT64_C(3)); /* A10 and T4, added first */
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.share_table == NULL);
    CHECK_EQ(score(&sp, &a10, 0).score, 10);
    /* Equal pools mark nothing down: 2 A10 GPUs against 2 T4 GPUs. */
    fleet(&d, (const struct node_info *[]){&a10, &a10, &t4}, 3);
    CHECK(sched_pod_prepare(&sp, &any, pol, &eb));
    sched_pod_use_demand(&sp, &d);
    CHECK(sp.share_table == NULL);
    CHECK_EQ(score(&sp, &a10, 0).score, 10);
    policy_unref(pol);
}

int main(void)
{
    test_table();
    test_allowed();
    test_leaves_t4();
    test_keeps_whole_node();
    test_proportion();
    test_fleet_share();
    printf("test_sched_demand: ok\n");
    return 0;
}
