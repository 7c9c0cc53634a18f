/* test_policy_cases.c -- a table of policy cases, each with its expected verdict per node: one
 * policy file (loaded through the real parser), six nodes of different models, and pods that
 * differ by namespace, labels, priority class, GPU count and annotations. Also the ranking a
 * rule's preference list gives, and the reasons' exact text. */
#include "gx/policy.h"
#include "gx/sched.h"

#include "check.h"

static const char policy_text[] = "apiVersion: gpu-extender.io/v1alpha1\n"
                                  "kind: GPUPolicy\n"
                                  "scoring:\n"
                                  "  strategy: binpack\n"
                                  "classes:\n"
                                  "  - name: h100\n"
                                  "    products: [\"NVIDIA-H100*\"]\n"
                                  "  - name: a100-80gb\n"
                                  "    products: [\"NVIDIA-A100-*-80GB\"]\n"
                                  "  - name: a100\n"
                                  "    families: [ampere]\n"
                                  "    minMemoryMiB: 40000\n"
                                  "  - name: l40s\n"
                                  "    products: [NVIDIA-L40S]\n"
                                  "  - name: t4\n"
                                  "    products: [Tesla-T4]\n"
                                  "rules:\n"
                                  "  - name: ml-train\n"
                                  "    match:\n"
                                  "      namespaces: [ml-train]\n"
                                  "    allow: [h100, a100-80gb]\n"
                                  "    prefer:\n"
                                  "      - class: h100\n"
                                  "        weight: 100\n"
                                  "      - class: a100-80gb\n"
                                  "        weight: 50\n"
                                  "    strategy: spread\n"
                                  "  - name: urgent\n"
                                  "    match:\n"
                                  "      priorityClassNames: [urgent]\n"
                                  "      labels: {team: infra}\n"
                                  "    podOverrides:\n"
                                  "      models: false\n"
                                  "  - name: inference\n"
                                  "    match:\n"
                                  "      namespaces: [inference]\n"
                                  "    forbid: [t4]\n"
                                  "    prefer:\n"
                                  "      - class: l40s\n"
                                  "      - class: a100\n"
                                  "      - class: h100\n"
                                  "  - name: ci\n"
                                  "    match:\n"
                                  "      namespaces: [ci]\n"
                                  "    allow: [t4]\n"
                                  "default:\n"
                                  "  forbid: [t4]\n";

enum { H100, A100_80, A100_40, L40S, T4, BARE, NODES };

static const struct {
    const char *product, *family;
    int64_t memory, gpus;
} node_specs[NODES] = {
    [H100] = {"NVIDIA-H100-80GB-HBM3", "hopper", 81559, 8},
    [A100_80] = {"NVIDIA-A100-SXM4-80GB", "ampere", 81920, 8},
    [A100_40] = {"NVIDIA-A100-PCIE-40GB-SHARED", "ampere", 40960, 4},
    [L40S] = {"NVIDIA-L40S", "ada-lovelace", 46068, 4},
    [T4] = {"Tesla-T4", "turing", 15360, 4},
    [BARE] = {"", "", 0, 2},
};

struct pod_case {
    const char *what;
    const char *ns, *labels, *priority, *gpu_model;
    int64_t gpus;
    const char *verdicts; /* one letter per node: P pass, F FailedNodes, U unresolvable */
    const char *rule;
};

/* Every node is empty except the T4 node, which has 3 of its 4 GPUs in use. */
static const struct pod_case cases[] = {
    {"training is limited to its classes", "ml-train", NULL, NULL, NULL, 1, "PPUUUU", "ml-train"},
    {"training too big for the H100s", "ml-train", NULL, NULL, NULL, 9, "UUUUUU", "ml-train"},
    {"inference avoids T4 only", "inference", NULL, NULL, NULL, 1, "PPPPUP", "inference"},
    {"CI runs on T4 only, which is nearly full", "ci", NULL, NULL, NULL, 2, "UUUUFU", "ci"},
    {"everyone else: anything but T4", "default", NULL, NULL, NULL, 1, "PPPPUP", "default"},
    {"a pod narrows its rule", "inference", NULL, NULL, "L40S", 1, "UUUPUU", "inference"},
    {"a pod cannot widen its rule", "ml-train", NULL, NULL, "L40S,H100", 1, "PUUUUU", "ml-train"},
    {"priority class and labels both select", "default", "{\"team\":\"infra\"}", "urgent", NULL, 1,
     "PPPPPP", "urgent"},
    {"the label alone does not", "default", "{\"team\":\"infra\"}", NULL, NULL, 1, "PPPPUP",
     "default"},
    {"the first matching rule wins", "ml-train", "{\"team\":\"infra\"}", "urgent", NULL, 1,
     "PPUUUU", "ml-train"},
};

static struct node_info make_node(int i)
{
    struct node_info n;

    memset(&n, 0, sizeof(n));
    n.name = STR_LIT("n");
    n.product = str_from_cstr(node_specs[i].product);
    n.model = obj_model_from_product(n.product);
    n.family = str_from_cstr(node_specs[i].family);
    n.gpu_memory_mib = node_specs[i].memory;
    n.gpu_allocatable = node_specs[i].gpus;
    return n;
}

static struct pod_info make_pod(const struct pod_case *c)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.ns = str_from_cstr(c->ns);
    p.name = STR_LIT("p");
    p.gpus = c->gpus;
    if (c->labels)
        p.labels = str_from_cstr(c->labels);
    if (c->priority)
        p.priority_class = str_from_cstr(c->priority);
    if (c->gpu_model)
        p.ann_gpu_model = str_from_cstr(c->gpu_model);
    return p;
}

static struct policy *load(void)
{
    struct policy *pol = NULL;
    struct policy_diag diag;
    enum err e = policy_parse("cases.yaml", policy_text, sizeof(policy_text) - 1, &pol, &diag);

    for (size_t i = 0; e != ERR_OK && i < diag.count; i++)
        fprintf(stderr, "  %s\n", diag.msgs[i]);
    CHECK_EQ(e, ERR_OK);
    return pol;
}

static void test_table(const struct policy *pol)
{
    static const char letters[] = "PFU";

    for (size_t c = 0; c < GX_ARRAY_LEN(cases); c++) {
        struct pod_info p = make_pod(&cases[c]);
        struct errbuf eb = ERRBUF_INIT;
        struct sched_pod sp;
        char got[NODES + 1];

        CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
        for (int i = 0; i < NODES; i++) {
            struct node_info n = make_node(i);
            struct sched_node sn = {.info = &n, .used = i == T4 ? 3 : 0};
            got[i] = letters[sched_filter_node(&sp, &sn).verdict];
        }
        got[NODES] = '\0';
        if (strcmp(got, cases[c].verdicts) != 0 || !str_eq_cstr(sp.rule->name, cases[c].rule))
            fprintf(stderr, "case \"%s\": rule %.*s, verdicts %s\n", cases[c].what,
                    (int)sp.rule->name.len, sp.rule->name.ptr, got);
        CHECK_STR_EQ(got, cases[c].verdicts);
        CHECK(str_eq_cstr(sp.rule->name, cases[c].rule));
    }
}

static void check_reason(const struct policy *pol, const char *ns, int node, const char *want)
{
    struct pod_case c = {.ns = ns, .gpus = 1};
    struct pod_info p = make_pod(&c);
    struct node_info n = make_node(node);
    struct sched_node sn = {.info = &n};
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;
    struct buf b;

    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    buf_init(&b, 1024);
    CHECK(sched_reason_format(sched_filter_node(&sp, &sn), &sp, &n, &b) == ERR_OK);
    CHECK_STR_EQ(b.ptr, want);
    buf_destroy(&b);
}

static void test_reasons(const struct policy *pol)
{
    check_reason(pol, "ml-train", T4, "gpu-extender: policy ml-train: model Tesla-T4 not allowed");
    check_reason(pol, "inference", T4, "gpu-extender: policy inference: model Tesla-T4 forbidden");
    check_reason(pol, "ci", H100,
                 "gpu-extender: policy ci: model NVIDIA-H100-80GB-HBM3 not allowed");
    check_reason(pol, "ml-train", BARE,
                 "gpu-extender: policy ml-train: model (unlabelled) not "
                 "allowed");
}

static int score_on(const struct policy *pol, const char *ns, int node, int64_t used)
{
    struct pod_case c = {.ns = ns, .gpus = 1};
    struct pod_info p = make_pod(&c);
    struct node_info n = make_node(node);
    struct sched_node sn = {.info = &n, .used = used};
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;

    CHECK(sched_pod_prepare(&sp, &p, pol, &eb));
    return sched_score_node(&sp, &sn).score;
}

/* The preference list ranks models in bands; free GPUs only order nodes within a band. */
static void test_preference_order(const struct policy *pol)
{
    /* ml-train: h100 (weight 100) over a100-80gb (50), spread. */
    CHECK(score_on(pol, "ml-train", H100, 7) > score_on(pol, "ml-train", A100_80, 0));
    CHECK(score_on(pol, "ml-train", H100, 0) > score_on(pol, "ml-train", H100, 7));
    /* inference: l40s, then a100 (either size: family ampere, 40 GB or more), then h100. */
    CHECK(score_on(pol, "inference", L40S, 3) > score_on(pol, "inference", A100_40, 0));
    CHECK(score_on(pol, "inference", A100_40, 3) > score_on(pol, "inference", H100, 0));
    CHECK(score_on(pol, "inference", A100_80, 0) > score_on(pol, "inference", H100, 0));
    /* No preference in the default rule: the free-GPU part alone, binpack. */
    CHECK_EQ(score_on(pol, "default", H100, 7), 10);
}

static void test_override_refused(const struct policy *pol)
{
    struct pod_case c = {.ns = "default",
                         .labels = "{\"team\":\"infra\"}",
                         .priority = "urgent",
                         .gpu_model = "H100",
                         .gpus = 1};
    struct pod_info p = make_pod(&c);
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;

    CHECK(!sched_pod_prepare(&sp, &p, pol, &eb));
    CHECK_STR_EQ(eb.msg, "pod annotation gpu-extender.io/gpu-model is not allowed by policy rule "
                         "urgent (podOverrides.models)");
}

static const char *rule_of(const struct policy *pol, const char *ns, const char *labels,
                           const char *record)
{
    static char name[64];
    struct pod_info p = {.ns = str_from_cstr(ns), .gpus = 1};

    if (labels)
        p.labels = str_from_cstr(labels);
    if (record)
        p.rule_record = str_from_cstr(record);
    snprintf(name, sizeof(name), "%.*s", (int)sched_select_rule(pol, &p)->name.len,
             sched_select_rule(pol, &p)->name.ptr);
    return name;
}

/* A pod we bound is judged by the rule its record names (the cache keeps no labels of bound
 * pods), while the policy has a rule of that name; else the rules select it as before. */
static void test_rule_record(const struct policy *pol)
{
    CHECK_STR_EQ(rule_of(pol, "default", "{\"team\":\"infra\"}", NULL), "default");
    CHECK_STR_EQ(rule_of(pol, "default", NULL, "urgent"), "urgent");
    CHECK_STR_EQ(rule_of(pol, "ci", NULL, "inference"), "inference");
    CHECK_STR_EQ(rule_of(pol, "ci", NULL, "default"), "default");
    CHECK_STR_EQ(rule_of(pol, "ci", NULL, "removed-since"), "ci");
    CHECK_STR_EQ(rule_of(pol, "ci", NULL, "Inference"), "ci"); /* names are exact */
    CHECK_STR_EQ(rule_of(pol, "default", NULL, "ml-trai"), "default");
}

int main(void)
{
    struct policy *pol = load();

    test_table(pol);
    test_reasons(pol);
    test_preference_order(pol);
    test_override_refused(pol);
    test_rule_record(pol);
    policy_unref(pol);
    printf("test_policy_cases: ok\n");
    return 0;
}
