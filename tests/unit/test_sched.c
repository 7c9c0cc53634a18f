/* test_sched.c -- GPU request rules, model names and matching, filter verdicts, scores. */
#include "gx/objects.h"
#include "gx/sched.h"
#include "gx/topology.h"

#include "check.h"
#include "node_helpers.h"

static int64_t pod_gpus(const char *spec)
{
    char doc[4096];
    struct pod_info pod;
    struct arena arena;
    struct jscan js;
    int64_t gpus;

    snprintf(doc, sizeof(doc), "{\"metadata\":{\"name\":\"p\"},\"spec\":%s}", spec);
    arena_init(&arena, 1 << 20);
    jscan_init(&js, doc, strlen(doc), 64);
    CHECK(obj_pod_decode(&js, &arena, &pod));
    CHECK(jscan_finish(&js));
    gpus = pod.gpus;
    arena_destroy(&arena);
    return gpus;
}

#define C(req) "{\"resources\":{\"requests\":{\"nvidia.com/gpu\":\"" req "\"}}}"
#define L(lim) "{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"" lim "\"}}}"
#define SIDECAR(req)                                                                               \
    "{\"restartPolicy\":\"Always\",\"resources\":{\"requests\":{\"nvidia.com/gpu\":\"" req "\"}}}"

static void test_gpu_request_rules(void)
{
    CHECK_EQ(pod_gpus("{\"containers\":[" C("2") "]}"), 2);
    CHECK_EQ(pod_gpus("{\"containers\":[" L("3") "]}"), 3);
    CHECK_EQ(pod_gpus("{\"containers\":[" C("1") "," L("2") "]}"), 3);
    CHECK_EQ(pod_gpus("{\"containers\":[{\"name\":\"cpu-only\"}]}"), 0);
    /* Init containers: the larger of the biggest one and the sum of the app containers. */
    CHECK_EQ(pod_gpus("{\"initContainers\":[" C("4") "],\"containers\":[" C("1") "," C("1") "]}"),
             4);
    CHECK_EQ(pod_gpus("{\"initContainers\":[" C("1") "],\"containers\":[" C("2") "," C("1") "]}"),
             3);
    /* A restartable init container (sidecar) runs alongside everything after it. */
    CHECK_EQ(
        pod_gpus("{\"initContainers\":[" SIDECAR("1") "," C("2") "],\"containers\":[" C("1") "]}"),
        3);
    CHECK_EQ(
        pod_gpus("{\"initContainers\":[" C("2") "," SIDECAR("1") "],\"containers\":[" C("1") "]}"),
        2);
    CHECK_EQ(pod_gpus("{\"containers\":[" C("2k") "]}"), 2000);
    CHECK_EQ(pod_gpus("{\"containers\":[" C("3000m") "]}"), 3);
}

/* The required models and the rule record decoded from a pod with these annotations (a JSON
 * object's members) and spec.nodeName (NULL: pending), as "MODELS|RULE" into out. */
static void pod_required(const char *annotations, const char *node, char *out, size_t cap)
{
    char doc[4096];
    struct pod_info pod;
    struct arena arena;
    struct jscan js;

    snprintf(doc, sizeof(doc),
             "{\"metadata\":{\"name\":\"p\",\"annotations\":{%s}},\"spec\":{%s%s%s"
             "\"containers\":[" C("1") "]}}",
             annotations, node ? "\"nodeName\":\"" : "", node ? node : "", node ? "\"," : "");
    arena_init(&arena, 1 << 20);
    jscan_init(&js, doc, strlen(doc), 64);
    CHECK(obj_pod_decode(&js, &arena, &pod));
    CHECK(jscan_finish(&js));
    snprintf(out, cap, "%.*s|%.*s", (int)pod.ann_gpu_model.len,
             pod.ann_gpu_model.ptr ? pod.ann_gpu_model.ptr : "", (int)pod.rule_record.len,
             pod.rule_record.ptr ? pod.rule_record.ptr : "");
    arena_destroy(&arena);
}

/* Our Binding writes the model it chose over gpu-extender.io/gpu-model and keeps the pod's own
 * in gpu-model-required: a pod we bound requires what it asked for, not what it got, and was
 * placed by the rule gpu-extender.io/policy-rule names. */
static void test_bound_pod_requirement(void)
{
    const char *record = "\"gpu-extender.io/gpu-model\":\"NVIDIA-A100-SXM4-80GB\","
                         "\"gpu-extender.io/gpu-count\":\"1\","
                         "\"gpu-extender.io/policy-rule\":\"ml\"";
    char buf[256], with_required[512];

    snprintf(with_required, sizeof(with_required), "%s,%s", record,
             "\"gpu-extender.io/gpu-model-required\":\"A100,H100\"");
    pod_required(with_required, "n1", buf, sizeof(buf));
    CHECK_STR_EQ(buf, "A100,H100|ml");
    pod_required(record, "n1", buf, sizeof(buf)); /* it asked for no model */
    CHECK_STR_EQ(buf, "|ml");
    /* Bound without our record (another scheduler): its annotations are its own. */
    pod_required("\"gpu-extender.io/gpu-model\":\"T4\",\"gpu-extender.io/policy-rule\":\"ml\"",
                 "n1", buf, sizeof(buf));
    CHECK_STR_EQ(buf, "T4|");
    /* Pending with a copied record (a manifest saved from a bound pod): gpu-model is what the
     * filter will hold it to, so it stays the requirement, and its rule is chosen afresh. */
    pod_required(with_required, NULL, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "NVIDIA-A100-SXM4-80GB|");
    pod_required("\"gpu-extender.io/gpu-model\":\"T4\"", NULL, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "T4|");
}

static void test_bad_quantities(void)
{
    static const char *const bad[] = {"1.5", "-1", "abc", "", "1500m", "99999", "1Gi"};
    int64_t v;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!obj_parse_whole_quantity(str_from_cstr(bad[i]), OBJ_MAX_GPUS, &v));
    CHECK(obj_parse_whole_quantity(STR_LIT("0"), OBJ_MAX_GPUS, &v));
    CHECK_EQ(v, 0);
    CHECK(obj_parse_whole_quantity(STR_LIT("4096"), OBJ_MAX_GPUS, &v));
}

static void check_model(const char *product, const char *model)
{
    struct str m = obj_model_from_product(str_from_cstr(product));

    CHECK_STRN_EQ(m.ptr, m.len, model);
}

static void test_model_names(void)
{
    check_model("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB");
    check_model("NVIDIA-A100-SXM4-80GB-SHARED", "NVIDIA-A100-SXM4-80GB");
    check_model("nvidia-a100-sxm4-40gb-shared", "nvidia-a100-sxm4-40gb");
    check_model("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "NVIDIA-A100-SXM4-40GB");
    check_model("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED", "NVIDIA-A100-SXM4-40GB");
    check_model("Tesla-T4", "Tesla-T4");
}

static bool m(const char *entry, const char *model)
{
    return sched_model_matches(str_from_cstr(entry), str_from_cstr(model));
}

static void test_model_matching(void)
{
    CHECK(m("A100", "NVIDIA-A100-SXM4-80GB"));
    CHECK(m("a100-sxm4-80gb", "NVIDIA-A100-SXM4-80GB"));
    CHECK(m("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"));
    CHECK(m(" H100 ", "NVIDIA-H100-80GB-HBM3"));
    CHECK(!m("A10", "NVIDIA-A100-SXM4-80GB"));
    CHECK(!m("L4", "NVIDIA-L40S"));
    CHECK(!m("A100-80GB", "NVIDIA-A100-SXM4-80GB"));
    CHECK(!m("", "NVIDIA-A100-SXM4-80GB"));
    CHECK_EQ(sched_model_list_find(STR_LIT("H100, A100"), STR_LIT("NVIDIA-A100-PCIE-40GB"), false),
             1);
    CHECK_EQ(sched_model_list_find(STR_LIT(",,T4,"), STR_LIT("Tesla-T4"), false), 0);
    CHECK_EQ(sched_model_list_find(STR_LIT("l4"), STR_LIT("NVIDIA-L40S"), true), 0);
    CHECK_EQ(sched_model_list_count(STR_LIT(" a, ,b,,")), 2);
}

static struct node_info node(const char *product, int64_t gpus)
{
    return test_node(product, gpus);
}

static struct pod_info pod(int64_t gpus)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.gpus = gpus;
    p.ns = STR_LIT("default");
    return p;
}

static void check_fit(struct sched_fit f, enum sched_verdict v, enum sched_reason r)
{
    if (f.verdict != v || f.reason != r)
        fprintf(stderr, "  got verdict %d reason %d\n", (int)f.verdict, (int)f.reason);
    CHECK_EQ(f.verdict, v);
    CHECK_EQ(f.reason, r);
}

/* Decides p on n with used GPUs taken, under pol (count-only node). */
static struct sched_fit decide(const struct pod_info *p, const struct node_info *n, int64_t used,
                               const struct policy *pol)
{
    struct sched_pod sp;
    struct sched_node sn = {.info = n, .used = used};
    struct errbuf eb = ERRBUF_INIT;

    CHECK(sched_pod_prepare(&sp, p, pol, &eb));
    return sched_filter_node(&sp, &sn);
}

static void test_filter(void)
{
    struct policy *pol = policy_new_default();
    struct node_info a100 = node("NVIDIA-A100-SXM4-80GB", 8);
    struct node_info t4 = node("Tesla-T4", 4);
    struct node_info none = node("", 0);
    struct node_info unlabelled = node("", 8);
    struct pod_info p = pod(2), zero = pod(0), big = pod(6);

    check_fit(decide(&p, &a100, 0, pol), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(decide(&zero, &none, 0, pol), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(decide(&p, &none, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_NO_GPUS);
    check_fit(decide(&big, &t4, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_TOO_FEW_GPUS);
    check_fit(decide(&p, &a100, 7, pol), SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE);
    check_fit(decide(&p, &a100, 6, pol), SCHED_PASS, SCHED_REASON_NONE);
    p.ann_gpu_model = STR_LIT("A100,H100");
    check_fit(decide(&p, &a100, 0, pol), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(decide(&p, &t4, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED);
    check_fit(decide(&p, &unlabelled, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_NO_MODEL_LABEL);
    /* A model mismatch wins over a full node: it is the permanent reason. */
    check_fit(decide(&p, &t4, 4, pol), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED);
    p.ann_gpu_model = STR_NULL;
    p.ann_use_gputype = STR_LIT("a100");
    check_fit(decide(&p, &t4, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_USE);
    p.ann_use_gputype = STR_NULL;
    p.ann_nouse_gputype = STR_LIT("t4");
    check_fit(decide(&p, &t4, 0, pol), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOUSE);
    check_fit(decide(&p, &a100, 0, pol), SCHED_PASS, SCHED_REASON_NONE);
    policy_unref(pol);
}

static void test_reason_text(void)
{
    struct policy *pol = policy_new_default();
    struct node_info t4 = node("Tesla-T4-SHARED", 4);
    struct pod_info p = pod(1);
    struct sched_pod sp;
    struct errbuf eb = ERRBUF_INIT;
    struct buf b;

    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    buf_init(&b, 1024);
    CHECK(
        sched_reason_format((struct sched_fit){SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED},
                            &sp, &t4, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: model Tesla-T4 not in gpu-extender.io/gpu-model");
    buf_destroy(&b);
    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE}, &sp,
                              &t4, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: not enough free nvidia.com/gpu");
    buf_destroy(&b);
    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_UNRESOLVABLE, SCHED_REASON_POLICY_FORBIDDEN},
                              &sp, &t4, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: policy default: model Tesla-T4 forbidden");
    buf_destroy(&b);
    /* Without a prepared pod (sp NULL) every reason still formats: topology ones in short. */
    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_NEVER}, NULL,
                              &t4, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: policy default: the node has no such GPU set");
    buf_destroy(&b);
    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_FAIL, SCHED_REASON_TOPO_NOT_NOW}, NULL, NULL,
                              &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: policy default: no such GPU set is free");
    buf_destroy(&b);
    policy_unref(pol);
}

static int score(const struct pod_info *p, const struct node_info *n, int64_t used,
                 const struct policy *pol)
{
    struct sched_pod sp;
    struct sched_node sn = {.info = n, .used = used};
    struct errbuf eb = ERRBUF_INIT;

    CHECK(sched_pod_prepare(&sp, p, pol, &eb));
    CHECK_EQ(sched_score_value(&sp, &sn), sched_score_node(&sp, &sn).score);
    return sched_score_node(&sp, &sn).score;
}

/* The default rule's strategy and overrides, as a file would set them. */
static void set_strategy(struct policy *pol, enum policy_strategy s, bool pod_may)
{
    pol->strategy = pol->default_rule.strategy = s;
    pol->overrides.strategy = pol->default_rule.overrides.strategy = pod_may;
}

static void test_scores(void)
{
    struct policy *pol = policy_new_default();
    struct node_info eight = node("NVIDIA-A100-SXM4-80GB", 8);
    struct node_info four = node("NVIDIA-H100-80GB-HBM3", 4);
    struct node_info t4 = node("Tesla-T4", 4);
    struct pod_info p = pod(2);
    struct sched_pod sp;
    struct sched_node sn = {.info = &four};
    struct errbuf eb = ERRBUF_INIT;

    /* Count-only nodes: the free-GPU part alone. binpack: 10 * (used + k) / allocatable */
    CHECK_EQ(score(&p, &eight, 0, pol), 3); /* 2.5 rounds up */
    CHECK_EQ(score(&p, &eight, 6, pol), 10);
    CHECK_EQ(score(&p, &four, 0, pol), 5);
    /* One GPU: topology does not count. */
    p.gpus = 1;
    CHECK_EQ(score(&p, &eight, 7, pol), 10);
    CHECK_EQ(score(&p, &eight, 3, pol), 5);
    set_strategy(pol, POLICY_SPREAD, true);
    CHECK_EQ(score(&p, &eight, 0, pol), 9); /* 7/8 = 0.875 */
    CHECK_EQ(score(&p, &eight, 7, pol), 0);
    /* The pod may choose, when its rule allows it. */
    p.ann_strategy = STR_LIT("binpack");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sp.strategy, POLICY_BINPACK);
    set_strategy(pol, POLICY_SPREAD, false);
    CHECK(!sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK(strstr(eb.msg, "not allowed by policy rule default (podOverrides.strategy)") != NULL);
    p.ann_strategy = STR_LIT("best");
    set_strategy(pol, POLICY_SPREAD, true);
    CHECK(!sched_pod_prepare(&sp, &p, pol, &eb));
    p.ann_strategy = STR_NULL;
    policy_unref(pol);
    /* Preferences form bands: w_free 1, w_model 4, two preferred models, one GPU. */
    pol = policy_new_default();
    p.ann_gpu_model_preferred = STR_LIT("H100,A100");
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_score_node(&sp, &sn).model_rank, 1);
    CHECK_EQ(score(&p, &four, 0, pol), 9);  /* (0.25 + 4) / 5 = 0.85 */
    CHECK_EQ(score(&p, &eight, 7, pol), 6); /* (1 + 2) / 5 = 0.6 */
    CHECK_EQ(score(&p, &eight, 0, pol), 4); /* (0.125 + 2) / 5 = 0.425 */
    CHECK_EQ(score(&p, &t4, 3, pol), 2);    /* (1 + 0) / 5 = 0.2 */
    /* No GPUs requested: no opinion. */
    CHECK_EQ(score(&(struct pod_info){0}, &eight, 0, pol), 0);
    policy_unref(pol);
}

static bool g(const char *pattern, const char *text)
{
    return sched_glob_matches(str_from_cstr(pattern), str_from_cstr(text));
}

static void test_glob(void)
{
    CHECK(g("NVIDIA-H100*", "NVIDIA-H100-80GB-HBM3"));
    CHECK(g("nvidia-h100*", "NVIDIA-H100-80GB-HBM3"));
    CHECK(g("*A100*80GB", "NVIDIA-A100-SXM4-80GB"));
    CHECK(!g("*A100*80GB", "NVIDIA-A100-SXM4-40GB"));
    CHECK(g("Tesla-T?", "Tesla-T4"));
    CHECK(!g("Tesla-T?", "Tesla-T40"));
    CHECK(g("*", ""));
    CHECK(!g("", "x"));
    CHECK(g("a*b*c", "aXbYbZc"));
    CHECK(!g("a*b*c", "aXbYbZ"));
}

/* A 4-GPU PCIe box: 0-1 and 2-3 share a switch (PIX), the halves sit on two NUMA nodes. */
static const char pcie4[] =
    "{\"gpus\":[{\"index\":0,\"numa\":0},{\"index\":1,\"numa\":0},{\"index\":2,\"numa\":1},"
    "{\"index\":3,\"numa\":1}],\"links\":[[0,1,\"PIX\"],[2,3,\"PIX\"]]}";
/* Two NVLink islands of four: 0-3 and 4-7 all NV2 inside, SYS across. */
static const char islands8[] =
    "{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3},{\"index\":4},"
    "{\"index\":5},{\"index\":6},{\"index\":7}],\"links\":[[0,1,\"NV2\"],[0,2,\"NV2\"],"
    "[0,3,\"NV2\"],[1,2,\"NV2\"],[1,3,\"NV2\"],[2,3,\"NV2\"],[4,5,\"NV2\"],[4,6,\"NV2\"],"
    "[4,7,\"NV2\"],[5,6,\"NV2\"],[5,7,\"NV2\"],[6,7,\"NV2\"]]}";

static struct topo *parse_topo(const char *text)
{
    struct topo *t = NULL;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(topo_parse(text, strlen(text), &t, &eb), ERR_OK);
    return t;
}

/* A rule that wants 4 or more GPUs all on NVLink. */
static void require_nvlink(struct policy *pol)
{
    pol->default_rule.topo_min_gpus = 4;
    pol->default_rule.topo_require = POLICY_LINK_NVLINK;
}

static void test_topology(void)
{
    struct policy *pol = policy_new_default();
    struct topo *box = parse_topo(pcie4), *isl = parse_topo(islands8);
    struct node_info a = node("NVIDIA-A100-SXM4-80GB", 8), l = node("NVIDIA-L40S", 4);
    struct sched_node n8 = {.info = &a, .topo = isl, .free_mask = 0xff};
    struct sched_node n4 = {.info = &l, .topo = box, .free_mask = 0xf};
    struct pod_info p = pod(2);
    struct errbuf eb = ERRBUF_INIT;
    struct sched_score sc;
    struct sched_pod sp;
    struct buf b;

    /* Two GPUs: the NVLinked pair scores full topology; the PCIe box gives its PIX pair. */
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    sc = sched_score_node(&sp, &n8);
    CHECK_EQ(sc.topo_ppm, 1000000);
    CHECK_EQ(sc.w_topo, 2);
    CHECK_EQ(sc.score, 8); /* 10 * (0.25 + 2) / 3 = 7.5 rounds up */
    sc = sched_score_node(&sp, &n4);
    CHECK_EQ(sc.topo_set, 0x3u);
    CHECK_EQ(sc.topo_ppm, 500000);
    CHECK_EQ(sc.score, 5); /* (0.5 + 1) / 3 = 0.5 */
    /* The box with one GPU of each pair taken can only give a SYS pair. */
    n4.free_mask = 0xa;
    n4.used = 2;
    sc = sched_score_node(&sp, &n4);
    CHECK_EQ(sc.topo_set, 0xau);
    CHECK_EQ(sc.topo_ppm, 100000);
    /* A 1-GPU pod takes the least connected GPU and leaves whole pairs alone. */
    p.gpus = 1;
    n4.free_mask = 0xe; /* GPU 0 taken: 1 is alone, 2-3 still a pair */
    n4.used = 1;
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_EQ(sched_choose_gpus(&sp, &n4), 0x2u);
    /* Unhealthy or taken GPUs beyond the count: filter says so. */
    n4.unknown_used = 3;
    check_fit(sched_filter_node(&sp, &n4), SCHED_FAIL, SCHED_REASON_NO_HEALTHY_FREE);
    n4.unknown_used = 0;
    /* GPUs taken by pods nobody named: no set is recorded on a bind. */
    n4.unknown_used = 1;
    CHECK_EQ(sched_choose_gpus(&sp, &n4), 0u);
    n4.unknown_used = 0;
    /* A rule requiring NVLink for 4+ GPUs. */
    require_nvlink(pol);
    p.gpus = 4;
    n4.free_mask = 0xf;
    n4.used = 0;
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK(sp.topo_required);
    check_fit(sched_filter_node(&sp, &n8), SCHED_PASS, SCHED_REASON_NONE);
    CHECK_EQ(sched_choose_gpus(&sp, &n8), 0x0fu);
    check_fit(sched_filter_node(&sp, &n4), SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_NEVER);
    /* One GPU taken in each island: 6 free, but no 4 on NVLink; they could come back. */
    n8.free_mask = 0xee;
    n8.used = 2;
    check_fit(sched_filter_node(&sp, &n8), SCHED_FAIL, SCHED_REASON_TOPO_NOT_NOW);
    buf_init(&b, 1024);
    CHECK(sched_reason_format(sched_filter_node(&sp, &n8), &sp, &a, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: policy default: no 4 free GPUs all linked by NVLink");
    buf_destroy(&b);
    buf_init(&b, 1024);
    CHECK(sched_reason_format(sched_filter_node(&sp, &n4), &sp, &l, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: policy default: node has no 4 GPUs all linked by NVLink");
    buf_destroy(&b);
    /* A node without topology cannot promise NVLink. */
    n8.topo = NULL;
    check_fit(sched_filter_node(&sp, &n8), SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_UNKNOWN);
    /* Below the rule's threshold the requirement does not apply. */
    p.gpus = 2;
    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK(!sp.topo_required);
    check_fit(sched_filter_node(&sp, &n4), SCHED_PASS, SCHED_REASON_NONE);
    topo_release(box);
    topo_release(isl);
    policy_unref(pol);
}

int main(void)
{
    test_gpu_request_rules();
    test_bad_quantities();
    test_bound_pod_requirement();
    test_model_names();
    test_model_matching();
    test_filter();
    test_reason_text();
    test_scores();
    test_glob();
    test_topology();
    printf("test_sched: ok\n");
    return 0;
}
