/* test_sched.c -- GPU request rules, model names and matching, filter verdicts, scores. */
#include "gx/objects.h"
#include "gx/sched.h"

#include "check.h"

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
    CHECK_EQ(pod_gpus("{\"initContainers\":[" SIDECAR("1") "," C("2") "],\"containers\":[" C("1")
                      "]}"),
             3);
    CHECK_EQ(pod_gpus("{\"initContainers\":[" C("2") "," SIDECAR("1") "],\"containers\":[" C("1")
                      "]}"),
             2);
    CHECK_EQ(pod_gpus("{\"containers\":[" C("2k") "]}"), 2000);
    CHECK_EQ(pod_gpus("{\"containers\":[" C("3000m") "]}"), 3);
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
    struct node_info n;

    memset(&n, 0, sizeof(n));
    n.name = STR_LIT("n");
    n.product = str_from_cstr(product);
    n.model = obj_model_from_product(n.product);
    n.gpu_allocatable = gpus;
    return n;
}

static struct pod_info pod(int64_t gpus)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.gpus = gpus;
    return p;
}

static void check_fit(struct sched_fit f, enum sched_verdict v, enum sched_reason r)
{
    CHECK_EQ(f.verdict, v);
    CHECK_EQ(f.reason, r);
}

static void test_filter(void)
{
    struct node_info a100 = node("NVIDIA-A100-SXM4-80GB", 8);
    struct node_info t4 = node("Tesla-T4", 4);
    struct node_info none = node("", 0);
    struct node_info unlabelled = node("", 8);
    struct pod_info p = pod(2), zero = pod(0), big = pod(6);

    check_fit(sched_filter_node(&p, &a100, 0), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(sched_filter_node(&zero, &none, 0), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(sched_filter_node(&p, &none, 0), SCHED_UNRESOLVABLE, SCHED_REASON_NO_GPUS);
    check_fit(sched_filter_node(&big, &t4, 0), SCHED_UNRESOLVABLE, SCHED_REASON_TOO_FEW_GPUS);
    check_fit(sched_filter_node(&p, &a100, 7), SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE);
    check_fit(sched_filter_node(&p, &a100, 6), SCHED_PASS, SCHED_REASON_NONE);
    p.ann_gpu_model = STR_LIT("A100,H100");
    check_fit(sched_filter_node(&p, &a100, 0), SCHED_PASS, SCHED_REASON_NONE);
    check_fit(sched_filter_node(&p, &t4, 0), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED);
    check_fit(sched_filter_node(&p, &unlabelled, 0), SCHED_UNRESOLVABLE,
              SCHED_REASON_NO_MODEL_LABEL);
    /* A model mismatch wins over a full node: it is the permanent reason. */
    check_fit(sched_filter_node(&p, &t4, 4), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED);
    p.ann_gpu_model = STR_NULL;
    p.ann_use_gputype = STR_LIT("a100");
    check_fit(sched_filter_node(&p, &t4, 0), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_USE);
    p.ann_use_gputype = STR_NULL;
    p.ann_nouse_gputype = STR_LIT("t4");
    check_fit(sched_filter_node(&p, &t4, 0), SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOUSE);
    check_fit(sched_filter_node(&p, &a100, 0), SCHED_PASS, SCHED_REASON_NONE);
}

static void test_reason_text(void)
{
    struct node_info t4 = node("Tesla-T4-SHARED", 4);
    struct buf b;

    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_UNRESOLVABLE,
                                                 SCHED_REASON_MODEL_NOT_REQUIRED},
                              &t4, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: model Tesla-T4 not in gpu-extender.io/gpu-model");
    buf_destroy(&b);
    buf_init(&b, 1024);
    CHECK(sched_reason_format((struct sched_fit){SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE}, &t4,
                              &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, "gpu-extender: not enough free nvidia.com/gpu");
    buf_destroy(&b);
}

static int score(const struct pod_info *p, const struct node_info *n, int64_t used,
                 const struct policy *pol)
{
    return sched_score_node(p, n, used, pol).score;
}

static void test_scores(void)
{
    struct policy pol;
    struct node_info eight = node("NVIDIA-A100-SXM4-80GB", 8);
    struct node_info four = node("NVIDIA-H100-80GB-HBM3", 4);
    struct node_info t4 = node("Tesla-T4", 4);
    struct pod_info p = pod(2);
    struct errbuf eb = {{0}};

    policy_default(&pol);
    /* binpack: 10 * (used + k) / allocatable */
    CHECK_EQ(score(&p, &eight, 0, &pol), 3); /* 2.5 rounds up */
    CHECK_EQ(score(&p, &eight, 6, &pol), 10);
    CHECK_EQ(score(&p, &four, 0, &pol), 5);
    /* spread: 10 * (allocatable - used - k) / allocatable */
    pol.strategy = POLICY_SPREAD;
    CHECK_EQ(score(&p, &eight, 0, &pol), 8);
    CHECK_EQ(score(&p, &eight, 6, &pol), 0);
    /* The pod may choose, when the policy allows it. */
    p.ann_strategy = STR_LIT("binpack");
    CHECK_EQ(sched_pod_strategy(&p, &pol), POLICY_BINPACK);
    CHECK(sched_pod_check(&p, &pol, &eb));
    pol.pod_may_set_strategy = false;
    CHECK_EQ(sched_pod_strategy(&p, &pol), POLICY_SPREAD);
    CHECK(!sched_pod_check(&p, &pol, &eb));
    p.ann_strategy = STR_LIT("best");
    pol.pod_may_set_strategy = true;
    CHECK(!sched_pod_check(&p, &pol, &eb));
    p.ann_strategy = STR_NULL;
    /* Preferences form bands: w_free 1, w_model 4, two preferred models. */
    policy_default(&pol);
    p.ann_gpu_model_preferred = STR_LIT("H100,A100");
    CHECK_EQ(sched_score_node(&p, &four, 0, &pol).model_rank, 1);
    CHECK_EQ(score(&p, &four, 0, &pol), 9);   /* (0.5 + 4) / 5 = 0.9 */
    CHECK_EQ(score(&p, &eight, 6, &pol), 6);  /* (1 + 2) / 5 = 0.6 */
    CHECK_EQ(score(&p, &eight, 0, &pol), 5);  /* (0.25 + 2) / 5 = 0.45 */
    CHECK_EQ(score(&p, &t4, 2, &pol), 2);     /* (1 + 0) / 5 = 0.2 */
    /* No GPUs requested: no opinion. */
    CHECK_EQ(score(&(struct pod_info){0}, &eight, 0, &pol), 0);
}

int main(void)
{
    test_gpu_request_rules();
    test_bad_quantities();
    test_model_names();
    test_model_matching();
    test_filter();
    test_reason_text();
    test_scores();
    printf("test_sched: ok\n");
    return 0;
}
