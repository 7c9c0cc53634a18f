/* test_preempt.c -- the victim choice (sched/preempt.c), table by table: each case is a node,
 * the pods on it and a preemptor, and the victims worked out by hand. */
#include <string.h>

#include "gx/bits.h"
#include "gx/objects.h"
#include "gx/policy.h"
#include "gx/preempt.h"
#include "gx/topology.h"

#include "check.h"

/* Two NVLink quads: 0-3 and 4-7 all NV12 inside, SYS across. */
static const char quads8[] =
    "{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3},{\"index\":4},"
    "{\"index\":5},{\"index\":6},{\"index\":7}],\"links\":[[0,1,\"NV12\"],[0,2,\"NV12\"],"
    "[0,3,\"NV12\"],[1,2,\"NV12\"],[1,3,\"NV12\"],[2,3,\"NV12\"],[4,5,\"NV12\"],[4,6,\"NV12\"],"
    "[4,7,\"NV12\"],[5,6,\"NV12\"],[5,7,\"NV12\"],[6,7,\"NV12\"]]}";

#define BIT(i) (UINT32_C(1) << (i))

static struct topo *parse_topo(const char *text)
{
    struct topo *t = NULL;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(topo_parse(text, strlen(text), &t, &eb), ERR_OK);
    return t;
}

static struct node_info node_of(const char *product, int64_t gpus)
{
    struct node_info n = {.name = STR_LIT("g-1"), .gpu_allocatable = gpus, .ready = true};

    n.product = str_from_cstr(product);
    n.model = obj_model_from_product(n.product);
    return n;
}

/* One case: the node's pods (each holding the GPUs in masks[i], or a count when 0). */
struct table {
    struct node_info info;
    struct topo *topo;
    struct preempt_pod pods[64];
    size_t n;
    int32_t allowed[4];
    size_t pdbs;
    uint32_t reserved_mask;
    int64_t reserved;
};

static struct preempt_pod *add(struct table *t, int64_t gpus, uint32_t mask, int32_t prio)
{
    struct preempt_pod *p = &t->pods[t->n++];

    *p = (struct preempt_pod){.gpus = gpus, .mask = mask, .priority = prio};
    return p;
}

/* Runs the choice; returns the chosen pods as a bit set (pod i is bit i). */
static uint64_t run(struct table *t, const struct sched_pod *sp, struct preempt_choice *out)
{
    struct preempt_node pn = {.pods = t->pods,
                              .pod_count = t->n,
                              .pdb_allowed = t->allowed,
                              .pdb_count = t->pdbs,
                              .reserved_mask = t->reserved_mask};
    uint32_t named = t->reserved_mask;
    bool chosen[64];
    uint64_t bits = 0;
    int64_t used = t->reserved;

    for (size_t i = 0; i < t->n; i++) {
        used += t->pods[i].gpus;
        named |= t->pods[i].mask;
    }
    pn.now = (struct sched_node){.info = &t->info, .used = used, .topo = t->topo};
    if (t->topo) {
        int64_t unknown = used - bits_popcount32(named);
        pn.now.free_mask = topo_healthy_mask(t->topo) & ~named;
        pn.now.unknown_used = unknown > 0 ? (unsigned)unknown : 0;
    }
    preempt_choose(sp, &pn, chosen, out);
    for (size_t i = 0; i < t->n; i++)
        bits |= chosen[i] ? UINT64_C(1) << i : 0;
    return bits;
}

static void prepare(struct sched_pod *sp, struct pod_info *p, const struct policy *pol,
                    int64_t gpus, int32_t prio)
{
    struct errbuf eb = ERRBUF_INIT;

    *p = (struct pod_info){
        .ns = STR_LIT("default"), .name = STR_LIT("high"), .gpus = gpus, .priority = prio};
    CHECK(sched_pod_prepare(sp, p, pol, &eb));
}

/* The count-only case: four 1-GPU pods of priority 100, a 2-GPU pod of 1000. */
static void test_count_only(void)
{
    struct policy *pol = policy_new_default();
    struct table t = {.info = node_of("NVIDIA-A100-SXM4-80GB", 4)};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    uint64_t v;

    for (int i = 0; i < 4; i++)
        add(&t, 1, 0, 100);
    prepare(&sp, &p, pol, 2, 1000);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CHOSEN);
    CHECK_EQ(bits_popcount32((uint32_t)v), 2);
    CHECK_EQ(c.cost.count, 2u);
    CHECK_EQ(c.cost.gpus_freed, 2);
    CHECK_EQ(c.gpus_needed, 2);
    CHECK(c.exhaustive);
    /* Mixed priorities: the two lowest go, whatever their order. */
    t.pods[0].priority = 300;
    t.pods[1].priority = 50;
    t.pods[2].priority = 200;
    t.pods[3].priority = 60;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0xa);
    CHECK_EQ(c.cost.max_priority, 60);
    /* One 2-GPU pod of priority 60 beats two 1-GPU pods when it is the lower priority...
     * and fewer victims win at equal highest priority. */
    t.n = 0;
    add(&t, 1, 0, 50);
    add(&t, 1, 0, 60);
    add(&t, 2, 0, 60);
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0x4); /* max 60 either way; one victim beats two */
    /* A pod of equal or higher priority is never a victim: nothing to do. */
    t.n = 0;
    add(&t, 2, 0, 1000);
    add(&t, 2, 0, 2000);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_NO_LOWER);
    CHECK_EQ(v, (uint64_t)0);
    /* Room already: never evict for nothing. */
    t.n = 0;
    add(&t, 1, 0, 10);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_FITS_NOW);
    CHECK_EQ(v, (uint64_t)0);
    /* Fewest GPUs freed: a 1-GPU pod rather than a 2-GPU one when one GPU is missing. */
    t.n = 0;
    add(&t, 2, 0, 10);
    add(&t, 1, 0, 10);
    prepare(&sp, &p, pol, 2, 1000);
    v = run(&t, &sp, &c); /* 1 free, 1 missing */
    CHECK_EQ(v, (uint64_t)0x2);
    CHECK_EQ(c.cost.gpus_freed, 1);
    policy_unref(pol);
}

/* The topology case: an 8-GPU node of two NVLink quads full of 1-GPU low pods, and
 * a 4-GPU pod whose rule requires NVLink: exactly the four pods of one quad go. */
static void test_nvlink_quads(void)
{
    struct policy *pol = policy_new_default();
    struct table t = {.info = node_of("NVIDIA-A100-SXM4-80GB", 8), .topo = parse_topo(quads8)};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    uint64_t v;

    pol->default_rule.topo_min_gpus = 4;
    pol->default_rule.topo_require = POLICY_LINK_NVLINK;
    /* The lowest priorities sit on both quads: a count-only choice takes pods 0, 1, 4, 5 and
     * the pod still cannot run. */
    for (int i = 0; i < 8; i++)
        add(&t, 1, BIT(i), (i % 4) < 2 ? 10 : 20);
    prepare(&sp, &p, pol, 4, 1000);
    CHECK(sp.topo_required);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CHOSEN);
    CHECK(v == 0x0f || v == 0xf0);
    CHECK_EQ(c.gpu_set, (uint32_t)v);
    CHECK_EQ(c.cost.count, 4u);
    CHECK_EQ(c.cost.max_priority, 20);
    /* One quad holds a pod of priority 30: the other quad goes. */
    t.pods[2].priority = 30;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0xf0);
    CHECK_EQ(c.gpu_set, 0xf0u);
    /* Without the requirement any four pods do: priority comes before topology, so the four
     * of priority 10 go, two on each quad. */
    pol->default_rule.topo_min_gpus = 0;
    t.pods[2].priority = 20;
    prepare(&sp, &p, pol, 4, 1000);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.cost.max_priority, 10);
    CHECK_EQ(v, (uint64_t)0x33);
    /* With equal priorities everywhere, the best connected set breaks the tie: a quad. */
    for (int i = 0; i < 8; i++)
        t.pods[i].priority = 10;
    v = run(&t, &sp, &c);
    CHECK(v == 0x0f || v == 0xf0);
    CHECK_EQ(c.cost.set_score, 6u * 1200u);
    /* A pod that needs NVLink on a quad where one GPU is held by a higher-priority pod and
     * the other quad by a bind in flight: no choice of victims helps, so the node is dropped. */
    pol->default_rule.topo_min_gpus = 4;
    prepare(&sp, &p, pol, 4, 1000);
    t.n = 0;
    add(&t, 1, BIT(0), 5000);
    add(&t, 1, BIT(1), 10);
    add(&t, 1, BIT(2), 10);
    add(&t, 1, BIT(3), 10);
    t.reserved_mask = BIT(4);
    t.reserved = 1;
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CANNOT_FIT);
    CHECK_EQ(c.fit.reason, SCHED_REASON_TOPO_NOT_NOW);
    CHECK_EQ(v, (uint64_t)0);
    /* Take the high pod off quad 0: its three low pods go, GPU 0 being free already. */
    t.pods[0].priority = 1;
    t.n = 0;
    add(&t, 1, BIT(1), 10);
    add(&t, 1, BIT(2), 10);
    add(&t, 1, BIT(3), 10);
    add(&t, 1, BIT(5), 10);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CHOSEN);
    CHECK_EQ(v, (uint64_t)0x7);
    CHECK_EQ(c.gpu_set, 0x0fu);
    topo_release(t.topo);
    policy_unref(pol);
}

/* The node's own in-use report names GPUs; a victim whose indices we know frees them. */
static void test_in_use_report(void)
{
    struct policy *pol = policy_new_default();
    struct table t = {.info = node_of("NVIDIA-A100-SXM4-80GB", 8), .topo = parse_topo(quads8)};
    struct preempt_node pn = {0};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    bool chosen[8];

    pol->default_rule.topo_min_gpus = 4;
    pol->default_rule.topo_require = POLICY_LINK_NVLINK;
    prepare(&sp, &p, pol, 4, 1000);
    for (int i = 0; i < 8; i++)
        add(&t, 1, BIT(i), i < 4 ? 10 : 20);
    pn = (struct preempt_node){.pods = t.pods, .pod_count = 8, .in_use_mask = 0xff};
    pn.now = (struct sched_node){.info = &t.info, .used = 8, .topo = t.topo, .free_mask = 0};
    preempt_choose(&sp, &pn, chosen, &c);
    CHECK_EQ(c.outcome, PREEMPT_CHOSEN);
    CHECK(chosen[0] && chosen[1] && chosen[2] && chosen[3] && !chosen[4]);
    /* Pods whose GPUs nobody named free a count only: topology cannot promise a quad. */
    for (int i = 0; i < 8; i++)
        t.pods[i].mask = 0;
    preempt_choose(&sp, &pn, chosen, &c);
    CHECK_EQ(c.outcome, PREEMPT_CANNOT_FIT);
    topo_release(t.topo);
    policy_unref(pol);
}

/* PodDisruptionBudgets come first; pods already leaving cost nothing. */
static void test_budgets_and_leaving(void)
{
    struct policy *pol = policy_new_default();
    struct table t = {.info = node_of("Tesla-T4", 4)};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    uint64_t v;

    prepare(&sp, &p, pol, 2, 1000);
    /* Pods 0 and 1 are the lowest but covered by a budget that allows no disruption. */
    add(&t, 1, 0, 10)->pdbs = 1;
    add(&t, 1, 0, 10)->pdbs = 1;
    add(&t, 1, 0, 50);
    add(&t, 1, 0, 60);
    t.allowed[0] = 0;
    t.pdbs = 1;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0xc);
    CHECK_EQ(c.cost.violations, 0);
    CHECK_EQ(c.cost.max_priority, 60);
    /* A budget allowing one disruption: one covered pod may go, the other would violate. */
    t.allowed[0] = 1;
    v = run(&t, &sp, &c);
    CHECK_EQ(c.cost.violations, 0);
    CHECK_EQ(c.cost.max_priority, 50);
    CHECK(v == 0x5 || v == 0x6);
    /* Only covered pods are lower: the violation is reported, not hidden. */
    t.pods[2].priority = t.pods[3].priority = 5000;
    t.allowed[0] = 0;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0x3);
    CHECK_EQ(c.cost.violations, 2);
    /* A pod already being deleted frees its GPU soon: taking it costs nothing, so only one
     * more pod goes, and no budget is touched. */
    t.n = 0;
    add(&t, 1, 0, 10)->pdbs = 1;
    add(&t, 1, 0, 900)->deleting = true;
    add(&t, 1, 0, 20);
    add(&t, 1, 0, 30);
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0x6);
    CHECK_EQ(c.cost.count, 1u);
    CHECK_EQ(c.cost.listed, 2u);
    CHECK_EQ(c.cost.max_priority, 20);
    policy_unref(pol);
}

/* The dry run's choice breaks ties; a wrong model is never worth an eviction. */
static void test_offered_and_models(void)
{
    struct policy *pol = policy_new_default();
    struct errbuf eb = ERRBUF_INIT;
    struct table t = {.info = node_of("Tesla-T4", 4)};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    uint64_t v;

    prepare(&sp, &p, pol, 1, 1000);
    for (int i = 0; i < 4; i++)
        add(&t, 1, 0, 10);
    t.pods[2].offered = true;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0x4);
    CHECK_EQ(c.cost.not_offered, 0u);
    /* A pod that asks for an A100 gains nothing from a T4 node. */
    p.ann_gpu_model = STR_LIT("A100");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CANNOT_FIT);
    CHECK_EQ(c.fit.reason, SCHED_REASON_MODEL_NOT_REQUIRED);
    CHECK_EQ(v, (uint64_t)0);
    policy_unref(pol);
}

/* Past PREEMPT_EXHAUSTIVE_MAX eligible pods the reprieve still finds a minimal set. */
static void test_many_pods(void)
{
    struct policy *pol = policy_new_default();
    struct table t = {.info = node_of("Tesla-T4", 40)};
    struct preempt_choice c;
    struct sched_pod sp;
    struct pod_info p;
    uint64_t v;

    prepare(&sp, &p, pol, 3, 1000);
    for (int i = 0; i < 40; i++)
        add(&t, 1, 0, 100 + i);
    v = run(&t, &sp, &c);
    CHECK_EQ(c.outcome, PREEMPT_CHOSEN);
    CHECK(!c.exhaustive);
    CHECK_EQ(v, (uint64_t)0x7); /* the three lowest */
    CHECK_EQ(c.cost.max_priority, 102);
    /* Budget-covered pods are reprieved first. */
    t.pods[0].pdbs = 1;
    t.allowed[0] = 0;
    t.pdbs = 1;
    v = run(&t, &sp, &c);
    CHECK_EQ(v, (uint64_t)0xe);
    CHECK_EQ(c.cost.violations, 0);
    policy_unref(pol);
}

int main(void)
{
    test_count_only();
    test_nvlink_quads();
    test_in_use_report();
    test_budgets_and_leaving();
    test_offered_and_models();
    test_many_pods();
    printf("test_preempt: ok\n");
    return 0;
}
