/* test_policy.c -- policy_parse()/policy_load() against the schema table: defaults, the shipped
 * policy/default.yaml and policy/examples/, the fields of parsed classes and rules (a table of
 * cases), every class of error with its exact file:line:col, error collection, boundaries of
 * every key, the README-vs-table key check, hostile YAML (which must fail cleanly under
 * ASan/UBSan rather than crash or exhaust memory) and reference counting. */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/policy.h"

#include "check.h"
#include "config/policy_schema.h"

#define HEAD "apiVersion: gpu-extender.io/v1alpha1\nkind: GPUPolicy\n"
/* Lines 3-6. */
#define CLASSES                                                                                    \
    "classes:\n"                                                                                   \
    "  - {name: h100, products: [NVIDIA-H100*]}\n"                                                 \
    "  - {name: a100, families: [ampere]}\n"                                                       \
    "  - {name: t4, products: [Tesla-T4]}\n"
#define KNOWN_TOP "apiVersion, kind, scoring, podOverrides, classes, rules, default"
#define KNOWN_RULE "name, match, allow, forbid, prefer, strategy, topology, podOverrides"
#define KNOWN_DEFAULT "allow, forbid, prefer, strategy, topology, podOverrides"

/* ---- helpers ---- */

static enum err parse(const char *text, struct policy **p, struct policy_diag *diag)
{
    return policy_parse("p.yaml", text, strlen(text), p, diag);
}

static void dump(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "  diag[%zu] = %s\n", i, diag->msgs[i]);
}

/* text must fail with want, producing exactly the messages in msgs, in order, and leaving *out
 * untouched. */
static void expect_errors(const char *text, enum err want, const char *const *msgs, size_t n)
{
    static struct policy sentinel;
    struct policy *p = &sentinel;
    struct policy_diag diag;
    enum err e;

    e = parse(text, &p, &diag);
    if (e != want || diag.count != n) {
        fprintf(stderr, "for:\n%s\n", text);
        dump(&diag);
    }
    CHECK_EQ(e, want);
    CHECK_EQ(diag.count, n);
    for (size_t i = 0; i < n; i++)
        CHECK_STR_EQ(diag.msgs[i], msgs[i]);
    CHECK(p == &sentinel);
}

static void expect_error(const char *text, const char *msg)
{
    expect_errors(text, ERR_INVALID, &msg, 1);
}

static struct policy *expect_ok(const char *text)
{
    struct policy *p = NULL;
    struct policy_diag diag;
    enum err e = parse(text, &p, &diag);

    if (e != ERR_OK) {
        fprintf(stderr, "for:\n%s\n", text);
        dump(&diag);
    }
    CHECK_EQ(e, ERR_OK);
    CHECK_EQ(diag.count, 0);
    CHECK(p != NULL);
    CHECK_EQ(atomic_load(&p->refs), 1);
    return p;
}

/* A malloc'd string from a format, for generated policies. */
static char *fmt(const char *f, ...) GX_PRINTF(1, 2);

static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, f);
    n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    CHECK(n >= 0);
    s = malloc((size_t)n + 1);
    CHECK(s != NULL);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* Appends to a fixed buffer. */
static void cat(char *out, size_t size, const char *f, ...) GX_PRINTF(3, 4);

static void cat(char *out, size_t size, const char *f, ...)
{
    size_t used = strlen(out);
    va_list ap;

    va_start(ap, f);
    vsnprintf(out + used, size - used, f, ap);
    va_end(ap);
}

static void fnv1a_hex(const char *text, size_t len, char out[17])
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3u;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static char *source_path(const char *rel)
{
    const char *root = getenv("GX_SOURCE_DIR");

    CHECK(root != NULL);
    return fmt("%s/%s", root, rel);
}

/* Builds count copies of unit between head and tail into a malloc'd string. */
static char *repeat(const char *head, const char *unit, size_t count, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * count + tl + 1);
    char *w = s;

    CHECK(s != NULL);
    memcpy(w, head, hl);
    w += hl;
    for (size_t i = 0; i < count; i++, w += ul)
        memcpy(w, unit, ul);
    memcpy(w, tail, tl + 1);
    return s;
}

/* ---- rendering parsed classes and rules, so cases compare one line each ---- */

static void render_strlist(char *out, size_t size, const char *key, bool has,
                           const struct policy_strlist *l)
{
    cat(out, size, " %s=", key);
    if (!has) {
        cat(out, size, "-");
        return;
    }
    for (size_t i = 0; i < l->count; i++)
        cat(out, size, "%s%s", i ? "," : "", l->items[i].ptr);
}

static void render_indices(char *out, size_t size, const struct policy *p, const char *key,
                           const uint32_t *idx, size_t n)
{
    cat(out, size, " %s=", key);
    for (size_t i = 0; i < n; i++) {
        CHECK(idx[i] < p->class_count);
        cat(out, size, "%s%s", i ? "," : "", p->classes[idx[i]].name.ptr);
    }
}

static void render_rule(const struct policy *p, const struct policy_rule *r, char *out, size_t size)
{
    out[0] = '\0';
    cat(out, size, "%s", r->name.ptr);
    render_strlist(out, size, "ns", r->has_namespaces, &r->namespaces);
    cat(out, size, " labels=");
    for (size_t i = 0; i < r->label_count; i++)
        cat(out, size, "%s%s:%s", i ? "," : "", r->labels[i].key.ptr, r->labels[i].value.ptr);
    render_strlist(out, size, "pcs", r->has_priority_classes, &r->priority_classes);
    if (r->has_allow)
        render_indices(out, size, p, "allow", r->allow, r->allow_count);
    else
        cat(out, size, " allow=*");
    render_indices(out, size, p, "forbid", r->forbid, r->forbid_count);
    cat(out, size, " prefer=");
    for (size_t i = 0; i < r->prefer_count; i++) {
        CHECK(r->prefer[i].class_index < p->class_count);
        cat(out, size, "%s%s:%" PRId64, i ? "," : "", p->classes[r->prefer[i].class_index].name.ptr,
            r->prefer[i].weight);
    }
    cat(out, size, " %s", policy_strategy_name(r->strategy));
    if (r->topo_min_gpus)
        cat(out, size, " topo=%" PRId64 "/%s", r->topo_min_gpus, policy_link_name(r->topo_require));
    cat(out, size, " ov=%c%c%c line=%zu", r->overrides.strategy ? 's' : '-',
        r->overrides.models ? 'm' : '-', r->overrides.preferred ? 'p' : '-', r->line);
}

static void render_class(const struct policy_class *c, char *out, size_t size)
{
    out[0] = '\0';
    cat(out, size, "%s", c->name.ptr);
    render_strlist(out, size, "products", c->products.count > 0, &c->products);
    render_strlist(out, size, "families", c->families.count > 0, &c->families);
    cat(out, size, " mem=%" PRId64 " line=%zu", c->min_memory_mib, c->line);
}

/* Every field of two policies, except where they came from. */
static void check_same_policy(const struct policy *a, const struct policy *b)
{
    char ra[1024], rb[1024];

    CHECK_EQ(a->strategy, b->strategy);
    CHECK_EQ(a->weight_free_gpus, b->weight_free_gpus);
    CHECK_EQ(a->weight_model, b->weight_model);
    CHECK_EQ(a->weight_topology, b->weight_topology);
    CHECK_EQ(a->overrides.strategy, b->overrides.strategy);
    CHECK_EQ(a->overrides.models, b->overrides.models);
    CHECK_EQ(a->overrides.preferred, b->overrides.preferred);
    CHECK_EQ(a->class_count, b->class_count);
    CHECK_EQ(a->rule_count, b->rule_count);
    for (size_t i = 0; i < a->class_count; i++) {
        render_class(&a->classes[i], ra, sizeof(ra));
        render_class(&b->classes[i], rb, sizeof(rb));
        CHECK_STR_EQ(ra, rb);
    }
    for (size_t i = 0; i <= a->rule_count; i++) {
        render_rule(a, i < a->rule_count ? &a->rules[i] : &a->default_rule, ra, sizeof(ra));
        render_rule(b, i < b->rule_count ? &b->rules[i] : &b->default_rule, rb, sizeof(rb));
        CHECK_STR_EQ(ra, rb);
    }
}

/* ---- defaults and shipped files ---- */

static void check_default_rule(const struct policy_rule *r)
{
    CHECK_STRN_EQ(r->name.ptr, r->name.len, "default");
    CHECK(!r->has_namespaces && !r->has_priority_classes && !r->has_allow);
    CHECK_EQ(r->namespaces.count + r->priority_classes.count + r->label_count, 0);
    CHECK_EQ(r->allow_count + r->forbid_count + r->prefer_count, 0);
    CHECK_EQ(r->strategy, POLICY_BINPACK);
    CHECK_EQ(r->topo_min_gpus, 0);
    CHECK(r->overrides.strategy && r->overrides.models && r->overrides.preferred);
    CHECK_EQ(r->line, 0);
}

static void test_defaults(void)
{
    struct policy *p = policy_new_default();

    CHECK_EQ(atomic_load(&p->refs), 1);
    CHECK_EQ(p->strategy, POLICY_BINPACK);
    CHECK_EQ(p->weight_free_gpus, 1);
    CHECK_EQ(p->weight_model, 4);
    CHECK_EQ(p->weight_topology, 2);
    CHECK(p->overrides.strategy && p->overrides.models && p->overrides.preferred);
    CHECK_EQ(p->class_count, 0);
    CHECK_EQ(p->rule_count, 0);
    check_default_rule(&p->default_rule);
    CHECK_STR_EQ(p->source, "embedded default");
    CHECK_STR_EQ(p->hash, "0000000000000000");
    CHECK_STR_EQ(p->text, "");
    CHECK_EQ(p->text_len, 0);
    CHECK_EQ(policy_class_find(p, STR_LIT("h100")), -1);
    policy_unref(p);

    CHECK_STR_EQ(policy_strategy_name(POLICY_BINPACK), "binpack");
    CHECK_STR_EQ(policy_strategy_name(POLICY_SPREAD), "spread");
    CHECK_STR_EQ(policy_strategy_name((enum policy_strategy)7), "unknown");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_SYS), "SYS");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_NODE), "NODE");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_PHB), "PHB");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_PXB), "PXB");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_PIX), "PIX");
    CHECK_STR_EQ(policy_link_name(POLICY_LINK_NVLINK), "NVLink");
    CHECK_STR_EQ(policy_link_name((enum policy_link)6), "unknown");
}

/* Loads path and checks what every successful load promises. */
static struct policy *load_ok(const char *path)
{
    struct policy *p = NULL;
    struct policy_diag diag;
    char want_hash[17];
    size_t len;
    char *text = check_read_file(path, &len);
    enum err e = policy_load(path, &p, &diag);

    if (e != ERR_OK)
        dump(&diag);
    CHECK_EQ(e, ERR_OK);
    CHECK_EQ(diag.count, 0);
    CHECK_STR_EQ(p->source, path);
    fnv1a_hex(text, len, want_hash);
    CHECK_STR_EQ(p->hash, want_hash);
    CHECK_EQ(p->text_len, len);
    CHECK(memcmp(p->text, text, len) == 0 && p->text[len] == '\0');
    free(text);
    return p;
}

static void test_default_yaml(void)
{
    char *path = source_path("policy/default.yaml");
    struct policy *p = load_ok(path);
    struct policy *def = policy_new_default();

    check_same_policy(p, def);
    check_default_rule(&p->default_rule);
    policy_unref(def);
    policy_unref(p);
    free(path);
}

/* Every file in policy/examples/ must load: the README points users at them. */
static void test_examples(void)
{
    char *dir = source_path("policy/examples");
    DIR *d = opendir(dir);
    struct dirent *e;
    int loaded = 0;

    CHECK(d != NULL);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        char *path;

        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
            continue;
        path = fmt("%s/%s", dir, e->d_name);
        policy_unref(load_ok(path));
        free(path);
        loaded++;
    }
    closedir(d);
    CHECK(loaded >= 3);
    free(dir);
}

/* The worked example says what issue 4 asked for; check that it means it. */
static void test_example_intent(void)
{
    static const char *const want[] = {
        "ml-train ns=ml-train labels= pcs=- allow=h100,a100-80gb forbid= "
        "prefer=h100:100,a100-80gb:50 binpack topo=4/NVLink ov=s-p line=33",
        "inference ns=inference labels= pcs=- allow=l40s,h100 forbid= prefer=l40s:100,h100:20 "
        "spread ov=smp line=46",
        "ci ns=ci labels= pcs=- allow=* forbid= prefer= binpack ov=smp line=57",
        "default ns=- labels= pcs=- allow=* forbid=t4 prefer= binpack ov=smp line=63",
    };
    char *path = source_path("policy/examples/training-and-inference.yaml");
    struct policy *p = load_ok(path);
    char got[1024];

    CHECK_EQ(p->class_count, 4);
    CHECK_EQ(p->rule_count, 3);
    CHECK_EQ(policy_class_find(p, STR_LIT("t4")), 3);
    CHECK_EQ(policy_class_find(p, STR_LIT("T4")), -1);
    for (size_t i = 0; i <= p->rule_count; i++) {
        render_rule(p, i < p->rule_count ? &p->rules[i] : &p->default_rule, got, sizeof(got));
        CHECK_STR_EQ(got, want[i]);
    }
    policy_unref(p);
    free(path);
}

/* ---- parsed fields, one case per line ---- */

struct field_case {
    const char *yaml; /* after HEAD */
    int index;        /* class or rule index; -1 for the default rule */
    const char *want; /* render_class() / render_rule() */
};

static const struct field_case class_cases[] = {
    {"classes: [{name: h100, products: [NVIDIA-H100-80GB-HBM3, \"NVIDIA-H100*\"]}]\n", 0,
     "h100 products=NVIDIA-H100-80GB-HBM3,NVIDIA-H100* families=- mem=0 line=3"},
    {"classes:\n  - name: hopper\n    families: [hopper, Hopper-Next]\n", 0,
     "hopper products=- families=hopper,Hopper-Next mem=0 line=4"},
    {"classes:\n  - name: big\n    minMemoryMiB: 81920\n", 0,
     "big products=- families=- mem=81920 line=4"},
    {"classes:\n  - {name: a, minMemoryMiB: 1}\n  - name: b-2\n    products: [\"A?00*\"]\n"
     "    families: [ampere]\n    minMemoryMiB: 10000000\n",
     1, "b-2 products=A?00* families=ampere mem=10000000 line=5"},
    {"classes:\n  - {name: 0-a, products: ['x_y.z']}\n", 0,
     "0-a products=x_y.z families=- mem=0 line=4"},
};

static const struct field_case rule_cases[] = {
    /* Defaults of a rule: everything allowed, the top-level strategy and overrides. */
    {CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n", 0,
     "r ns=a labels= pcs=- allow=* forbid= prefer= binpack ov=smp line=8"},
    {"scoring: {strategy: spread}\npodOverrides: {models: false}\n" CLASSES
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n",
     0, "r ns=a labels= pcs=- allow=* forbid= prefer= spread ov=s-p line=10"},
    /* A rule's own settings win; the keys it leaves out are inherited one by one. */
    {"scoring: {strategy: spread}\npodOverrides: {models: false}\n" CLASSES
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    strategy: binpack\n"
     "    podOverrides: {strategy: false, models: true}\n",
     0, "r ns=a labels= pcs=- allow=* forbid= prefer= binpack ov=-mp line=10"},
    {CLASSES "rules:\n  - name: r\n    match:\n      namespaces: [a, b-c]\n"
             "      labels: {team: ml, example.com/tier: \"\"}\n"
             "      priorityClassNames: [high.prio, low]\n",
     0,
     "r ns=a,b-c labels=team:ml,example.com/tier: pcs=high.prio,low allow=* forbid= prefer= "
     "binpack ov=smp line=8"},
    {CLASSES "rules:\n  - name: r\n    match: {labels: {app: x}}\n    allow: [h100, a100]\n"
             "    forbid: [t4]\n",
     0, "r ns=- labels=app:x pcs=- allow=h100,a100 forbid=t4 prefer= binpack ov=smp line=8"},
    /* Prefer weights: given, or round(100 * (n - i) / n). */
    {CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n    prefer:\n"
             "      - class: t4\n      - class: a100\n      - class: h100\n",
     0, "r ns=a labels= pcs=- allow=* forbid= prefer=t4:100,a100:67,h100:33 binpack ov=smp line=8"},
    {CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n    prefer:\n"
             "      - {class: t4, weight: 1}\n      - class: a100\n",
     0, "r ns=a labels= pcs=- allow=* forbid= prefer=t4:1,a100:50 binpack ov=smp line=8"},
    {CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n    topology:\n"
             "      minGPUs: 8\n      require: PIX\n",
     0, "r ns=a labels= pcs=- allow=* forbid= prefer= binpack topo=8/PIX ov=smp line=8"},
    /* Rules keep file order; a narrower rule before a broader one is fine. */
    {CLASSES "rules:\n  - {name: one, match: {namespaces: [a], labels: {x: y}}}\n"
             "  - {name: two, match: {namespaces: [a, b]}}\n",
     1, "two ns=a,b labels= pcs=- allow=* forbid= prefer= binpack ov=smp line=9"},
    /* The default rule: same keys, name "default", and line where it starts. */
    {CLASSES "default:\n  allow: [a100, t4]\n  forbid: [t4]\n  prefer: [{class: a100}]\n"
             "  strategy: spread\n  topology: {minGPUs: 2, require: SYS}\n"
             "  podOverrides: {preferred: false}\n",
     -1,
     "default ns=- labels= pcs=- allow=a100,t4 forbid=t4 prefer=a100:100 spread topo=2/SYS "
     "ov=sm- line=8"},
    {CLASSES "default: {}\n", -1,
     "default ns=- labels= pcs=- allow=* forbid= prefer= binpack ov=smp line=7"},
};

static void test_fields(void)
{
    char got[1024];

    for (size_t i = 0; i < sizeof(class_cases) / sizeof(class_cases[0]); i++) {
        char *text = fmt("%s%s", HEAD, class_cases[i].yaml);
        struct policy *p = expect_ok(text);

        CHECK((size_t)class_cases[i].index < p->class_count);
        render_class(&p->classes[class_cases[i].index], got, sizeof(got));
        CHECK_STR_EQ(got, class_cases[i].want);
        CHECK_EQ(policy_class_find(p, p->classes[class_cases[i].index].name), class_cases[i].index);
        policy_unref(p);
        free(text);
    }
    for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
        const struct field_case *c = &rule_cases[i];
        char *text = fmt("%s%s", HEAD, c->yaml);
        struct policy *p = expect_ok(text);

        CHECK(c->index < (int)p->rule_count);
        render_rule(p, c->index < 0 ? &p->default_rule : &p->rules[c->index], got, sizeof(got));
        CHECK_STR_EQ(got, c->want);
        policy_unref(p);
        free(text);
    }
}

static void test_valid(void)
{
    struct policy *p;

    p = expect_ok(HEAD);
    CHECK_EQ(p->weight_model, 4);
    CHECK_STR_EQ(p->source, "p.yaml");
    CHECK_EQ(strlen(p->hash), 16);
    CHECK_EQ(strspn(p->hash, "0123456789abcdef"), 16);
    CHECK_STR_EQ(p->text, HEAD);
    policy_unref(p);

    p = expect_ok(HEAD "scoring:\n"
                       "  strategy: \"spread\"\n"
                       "  weights: {freeGPUs: 0, model: 100, topology: 0}\n"
                       "podOverrides:\n"
                       "  strategy: false\n"
                       "  models: false\n"
                       "  preferred: false\n");
    CHECK_EQ(p->strategy, POLICY_SPREAD);
    CHECK_EQ(p->weight_free_gpus, 0);
    CHECK_EQ(p->weight_model, 100);
    CHECK_EQ(p->weight_topology, 0);
    CHECK(!p->overrides.strategy && !p->overrides.models && !p->overrides.preferred);
    CHECK(!p->default_rule.overrides.strategy && !p->default_rule.overrides.models);
    CHECK_EQ(p->default_rule.strategy, POLICY_SPREAD);
    policy_unref(p);

    p = expect_ok("# comment first\n" HEAD "scoring: {weights: {freeGPUs: 100, model: 0}}\n");
    CHECK_EQ(p->weight_free_gpus, 100);
    CHECK_EQ(p->weight_model, 0);
    CHECK_EQ(p->weight_topology, 2);
    policy_unref(p);

    /* Only the topology weight above 0 is still a valid policy. */
    p = expect_ok(HEAD "scoring: {weights: {freeGPUs: 0, model: 0}}\n");
    policy_unref(p);
}

/* ---- boundaries: every integer key at min, max, min-1, max+1 and wrong types ---- */

struct int_case {
    const char *path;
    const char *yaml; /* after HEAD; %s is where the value goes */
    int64_t min, max;
};

static const struct int_case int_cases[] = {
    {"scoring.weights.freeGPUs", "scoring:\n  weights:\n    freeGPUs: %s\n", 0, 100},
    {"scoring.weights.model", "scoring:\n  weights:\n    model: %s\n", 0, 100},
    {"scoring.weights.topology", "scoring:\n  weights:\n    topology: %s\n", 0, 100},
    {"classes[0].minMemoryMiB", "classes:\n  - name: a\n    minMemoryMiB: %s\n", 1, 10000000},
    {"rules[0].prefer[0].weight",
     CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n    prefer:\n"
             "      - class: h100\n        weight: %s\n",
     1, 100},
    {"rules[0].topology.minGPUs",
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    topology:\n      require: NVLink\n"
     "      minGPUs: %s\n",
     2, 4096},
    {"default.prefer[1].weight",
     CLASSES "default:\n  prefer:\n    - class: a100\n    - class: h100\n      weight: %s\n", 1,
     100},
    {"default.topology.minGPUs", "default:\n  topology: {require: PHB, minGPUs: %s}\n", 2, 4096},
};

/* The 1-based line and column of the first %s in a template placed after HEAD. */
static void placeholder_at(const char *yaml, size_t *line, size_t *col)
{
    const char *at = strstr(yaml, "%s");

    *line = 3;
    *col = 1;
    for (const char *c = yaml; c < at; c++) {
        if (*c == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static char *with_value(const char *yaml, const char *value)
{
    const char *at = strstr(yaml, "%s");

    return fmt("%s%.*s%s%s", HEAD, (int)(at - yaml), yaml, value, at + 2);
}

static void expect_value_error(const char *yaml, const char *path, const char *value,
                               const char *msg)
{
    char *text = with_value(yaml, value);
    size_t line, col;
    char *want;

    placeholder_at(yaml, &line, &col);
    want = fmt("p.yaml:%zu:%zu: %s: %s", line, col, path, msg);
    expect_error(text, want);
    free(want);
    free(text);
}

static void expect_value_ok(const char *yaml, const char *value)
{
    char *text = with_value(yaml, value);

    policy_unref(expect_ok(text));
    free(text);
}

static void test_int_boundaries(void)
{
    for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
        const struct int_case *c = &int_cases[i];
        char lo[32], hi[32], below[32], above[32], quoted[40];
        char *range, *msg;

        snprintf(lo, sizeof(lo), "%" PRId64, c->min);
        snprintf(hi, sizeof(hi), "%" PRId64, c->max);
        snprintf(below, sizeof(below), "%" PRId64, c->min - 1);
        snprintf(above, sizeof(above), "%" PRId64, c->max + 1);
        snprintf(quoted, sizeof(quoted), "\"%s\"", hi);
        expect_value_ok(c->yaml, lo);
        expect_value_ok(c->yaml, hi);
        range = fmt("%s..%s", lo, hi);
        msg = fmt("must be %s, got %s", range, below);
        expect_value_error(c->yaml, c->path, below, msg);
        free(msg);
        msg = fmt("must be %s, got %s", range, above);
        expect_value_error(c->yaml, c->path, above, msg);
        free(msg);
        msg = fmt("must be %s, got 99999999999999999999", range);
        expect_value_error(c->yaml, c->path, "99999999999999999999", msg);
        free(msg);
        msg = fmt("expected an integer %s, got \"abc\"", range);
        expect_value_error(c->yaml, c->path, "abc", msg);
        free(msg);
        msg = fmt("expected an integer %s, got quoted \"%s\"", range, hi);
        expect_value_error(c->yaml, c->path, quoted, msg);
        free(msg);
        msg = fmt("expected an integer %s, got \"2.5\"", range);
        expect_value_error(c->yaml, c->path, "2.5", msg);
        free(msg);
        msg = fmt("expected an integer %s, got a sequence", range);
        expect_value_error(c->yaml, c->path, "[3]", msg);
        free(msg);
        free(range);
    }
}

struct choice_case {
    const char *path;
    const char *yaml;
    const char *const *good; /* NULL-terminated */
    const char *expected;    /* for "expected X, got ..." */
};

static const char *const bools[] = {"true", "false", NULL};
static const char *const strategies[] = {"binpack", "spread", NULL};
static const char *const links[] = {"SYS", "NODE", "PHB", "PXB", "PIX", "NVLink", NULL};

static const struct choice_case choice_cases[] = {
    {"scoring.strategy", "scoring:\n  strategy: %s\n", strategies, "binpack or spread"},
    {"podOverrides.strategy", "podOverrides:\n  strategy: %s\n", bools, "true or false"},
    {"podOverrides.models", "podOverrides:\n  models: %s\n", bools, "true or false"},
    {"podOverrides.preferred", "podOverrides:\n  preferred: %s\n", bools, "true or false"},
    {"rules[0].strategy", "rules:\n  - name: r\n    match: {namespaces: [a]}\n    strategy: %s\n",
     strategies, "binpack or spread"},
    {"rules[0].topology.require",
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    topology: {minGPUs: 2, require: %s}\n",
     links, "SYS, NODE, PHB, PXB, PIX or NVLink"},
    {"rules[0].podOverrides.strategy",
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    podOverrides: {strategy: %s}\n", bools,
     "true or false"},
    {"rules[0].podOverrides.models",
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    podOverrides: {models: %s}\n", bools,
     "true or false"},
    {"rules[0].podOverrides.preferred",
     "rules:\n  - name: r\n    match: {namespaces: [a]}\n    podOverrides: {preferred: %s}\n",
     bools, "true or false"},
    {"default.strategy", "default:\n  strategy: %s\n", strategies, "binpack or spread"},
    {"default.topology.require", "default:\n  topology: {minGPUs: 2, require: %s}\n", links,
     "SYS, NODE, PHB, PXB, PIX or NVLink"},
    {"default.podOverrides.strategy", "default:\n  podOverrides: {strategy: %s}\n", bools,
     "true or false"},
    {"default.podOverrides.models", "default:\n  podOverrides: {models: %s}\n", bools,
     "true or false"},
    {"default.podOverrides.preferred", "default:\n  podOverrides: {preferred: %s}\n", bools,
     "true or false"},
};

/* Booleans and enums: every spelling works; others, case variants, quotes and null do not. */
static void test_choice_boundaries(void)
{
    static const char *const bad[] = {"yes", "True", "nvlink", "BINPACK", "1", NULL};

    for (size_t i = 0; i < sizeof(choice_cases) / sizeof(choice_cases[0]); i++) {
        const struct choice_case *c = &choice_cases[i];
        char *msg;

        for (size_t j = 0; c->good[j]; j++)
            expect_value_ok(c->yaml, c->good[j]);
        for (size_t j = 0; bad[j]; j++) {
            msg = fmt("expected %s, got \"%s\"", c->expected, bad[j]);
            expect_value_error(c->yaml, c->path, bad[j], msg);
            free(msg);
        }
        if (c->good == bools) {
            msg = fmt("expected %s, got quoted \"true\"", c->expected);
            expect_value_error(c->yaml, c->path, "'true'", msg);
            free(msg);
        }
        msg = fmt("expected %s, got a mapping", c->expected);
        expect_value_error(c->yaml, c->path, "{a: b}", msg);
        free(msg);
        msg = fmt("expected %s, got null", c->expected);
        expect_value_error(c->yaml, c->path, "~", msg);
        free(msg);
    }
}

/* Strings: the longest valid one, one past it, and wrong types. */
struct text_case {
    const char *path;
    const char *yaml;
    const char *ok_long; /* the longest valid value */
    const char *too_long;
    const char *too_long_msg; /* after "path: " */
    const char *wrong_msg;    /* for a mapping */
};

#define C63 "abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefgh"
#define C64 C63 "x"
#define C64_SNIP "abcdefghij-abcdefghij-abcdefghij-abc..." /* as messages cut it */
#define NAME_RULE "use 1-63 characters a-z, 0-9 or '-', starting and ending with a letter or digit"
#define LABEL_RULE                                                                                 \
    "1-63 characters A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit"
#define LABEL_KEY_RULE                                                                             \
    "invalid label key: use name or prefix/name, the prefix a DNS subdomain and the "              \
    "name " LABEL_RULE

static const struct text_case text_cases[] = {
    {"classes[0].name", "classes:\n  - name: %s\n    families: [x]\n", C63, C64,
     "invalid name \"" C64_SNIP "\": " NAME_RULE, "expected a name, got a mapping"},
    {"rules[0].name", "rules:\n  - name: %s\n    match: {namespaces: [a]}\n", C63, C64,
     "invalid name \"" C64_SNIP "\": " NAME_RULE, "expected a name, got a mapping"},
    {"rules[0].match.namespaces[0]", "rules:\n  - name: r\n    match: {namespaces: [%s]}\n", C63,
     C64, "invalid namespace \"" C64_SNIP "\": " NAME_RULE, "expected a namespace, got a mapping"},
    {"classes[0].families[0]", "classes:\n  - name: a\n    families: [%s]\n", C63, C64,
     "invalid family \"" C64_SNIP "\": use " LABEL_RULE, "expected a GPU family, got a mapping"},
    {"classes[0].products[0]", "classes:\n  - name: a\n    products: [%s]\n", C63 "*", C64 "*",
     "invalid pattern \"" C64_SNIP
     "\": it can never match: a product label has at most 63 characters",
     "expected a product name or pattern, got a mapping"},
    {"rules[0].match.labels.team", "rules:\n  - name: r\n    match: {labels: {team: %s}}\n", C63,
     C64, "invalid label value \"" C64_SNIP "\": use \"\" or " LABEL_RULE,
     "expected a label value, got a mapping; write \"\" for an empty value"},
};

static void test_text_boundaries(void)
{
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        const struct text_case *c = &text_cases[i];

        expect_value_ok(c->yaml, c->ok_long);
        expect_value_ok(c->yaml, "a");
        expect_value_error(c->yaml, c->path, c->too_long, c->too_long_msg);
        expect_value_error(c->yaml, c->path, "{x: y}", c->wrong_msg);
    }
    /* Priority class names are DNS subdomains: up to 253 characters, dots allowed. */
    {
        static const char yaml[] = "rules:\n  - name: r\n    match: {priorityClassNames: [%s]}\n";
        char long_name[300];

        memset(long_name, 'a', 253);
        for (size_t i = 63; i < 253; i += 64)
            long_name[i] = '.';
        long_name[253] = '\0';
        expect_value_ok(yaml, long_name);
        expect_value_ok(yaml, "system-node-critical");
        long_name[253] = 'a';
        long_name[254] = '\0';
        expect_value_error(
            yaml, "rules[0].match.priorityClassNames[0]", long_name,
            "invalid priority class name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
            "use up to 253 characters a-z, 0-9, '-' or '.', starting and ending "
            "with a letter or digit");
    }
    /* Label keys: a prefix of up to 253 characters, then a name of up to 63. */
    {
        static const char yaml[] =
            "rules:\n  - name: r\n    match:\n      labels:\n        %s: v\n";
        char *key = fmt("a.example.com/%s", C63);

        expect_value_ok(yaml, key);
        expect_value_ok(yaml, "A_b.C-9");
        free(key);
        key = fmt("a.example.com/%s", C64);
        expect_value_error(yaml, "rules[0].match.labels.a.example.com/abcdefghij-abcdefghij-...",
                           key, LABEL_KEY_RULE);
        free(key);
    }
}

/* Lists: 1..POLICY_MAX_LIST entries (classes and rules: 1..256). */
static void test_list_boundaries(void)
{
    static const char *const lists[] = {
        "rules:\n  - name: r\n    match:\n      namespaces: [%s]\n",
        "rules:\n  - name: r\n    match:\n      priorityClassNames: [%s]\n",
        "classes:\n  - name: c\n    products: [%s]\n",
        "classes:\n  - name: c\n    families: [%s]\n",
    };
    char items[64 * 8 + 16];

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        items[0] = '\0';
        for (int j = 0; j < POLICY_MAX_LIST; j++)
            cat(items, sizeof(items), "%sx%d", j ? ", " : "", j);
        expect_value_ok(lists[i], items);
        cat(items, sizeof(items), ", x64");
        {
            char *text = with_value(lists[i], items);
            struct policy *p = NULL;
            struct policy_diag diag;

            CHECK_EQ(parse(text, &p, &diag), ERR_INVALID);
            CHECK_EQ(diag.count, 1);
            CHECK(strstr(diag.msgs[0], ": 65 entries; at most 64 are allowed") != NULL);
            free(text);
        }
    }
}

/* Class references and labels: 64 entries load, 65 do not. */
static void test_reference_list_boundaries(void)
{
    static const char *const lists[] = {"default:\n  allow: [%s]\n", "default:\n  forbid: [%s]\n",
                                        "default:\n  prefer: [%s]\n",
                                        "rules:\n  - name: r\n    match: {labels: {%s}}\n"};
    static const char *const before[] = {"c", "c", "{class: c", "k"};
    static const char *const after[] = {"", "", "}", ": v"};
    char classes[2048] = "classes:\n", items[2048];

    for (int i = 0; i <= POLICY_MAX_LIST; i++)
        cat(classes, sizeof(classes), "  - {name: c%d, families: [f]}\n", i);
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char *yaml = fmt("%s%s", classes, lists[i]);
        char *text;
        struct policy *p = NULL;
        struct policy_diag diag;

        items[0] = '\0';
        for (int j = 0; j < POLICY_MAX_LIST; j++)
            cat(items, sizeof(items), "%s%s%d%s", j ? ", " : "", before[i], j, after[i]);
        expect_value_ok(yaml, items);
        cat(items, sizeof(items), ", %s%d%s", before[i], POLICY_MAX_LIST, after[i]);
        text = with_value(yaml, items);
        CHECK_EQ(parse(text, &p, &diag), ERR_INVALID);
        CHECK_EQ(diag.count, 1);
        CHECK(strstr(diag.msgs[0], ": 65 entries; at most 64 are allowed") != NULL);
        free(text);
        free(yaml);
    }
}

static char *many_rules(size_t n)
{
    char *text = fmt("%s%s", HEAD, CLASSES "rules:\n");

    for (size_t i = 0; i < n; i++) {
        char *next = fmt("%s  - {name: r%zu, match: {namespaces: [n%zu]}, allow: [h100], "
                         "prefer: [{class: h100}]}\n",
                         text, i, i);
        free(text);
        text = next;
    }
    return text;
}

static char *many_classes(size_t n)
{
    char *text = fmt("%s%s", HEAD, "classes:\n"), *out;

    for (size_t i = 0; i < n; i++) {
        char *next = fmt("%s  - {name: c%zu, products: [P%zu]}\n", text, i, i);
        free(text);
        text = next;
    }
    out = fmt("%sdefault: {allow: [c0, c%zu]}\n", text, n - 1);
    free(text);
    return out;
}

static void test_count_boundaries(void)
{
    struct policy *p;
    char *text;

    text = many_rules(POLICY_MAX_RULES);
    p = expect_ok(text);
    CHECK_EQ(p->rule_count, POLICY_MAX_RULES);
    CHECK_STRN_EQ(p->rules[255].name.ptr, p->rules[255].name.len, "r255");
    policy_unref(p);
    free(text);
    text = many_rules(POLICY_MAX_RULES + 1);
    expect_error(text, "p.yaml:8:3: rules: 257 entries; at most 256 are allowed");
    free(text);

    text = many_classes(POLICY_MAX_CLASSES);
    p = expect_ok(text);
    CHECK_EQ(p->class_count, POLICY_MAX_CLASSES);
    CHECK_EQ(p->default_rule.allow[1], 255);
    CHECK_EQ(policy_class_find(p, STR_LIT("c255")), 255);
    policy_unref(p);
    free(text);
    /* The list is refused as a whole, and the names in it are not reported again. */
    text = many_classes(POLICY_MAX_CLASSES + 1);
    expect_error(text, "p.yaml:4:3: classes: 257 entries; at most 256 are allowed");
    free(text);
}

/* ---- one test per class of error ---- */

static void test_type_errors(void)
{
    expect_error(HEAD "scoring: 5\n", "p.yaml:3:10: scoring: expected a mapping, got \"5\"");
    expect_error(HEAD "scoring:\n", "p.yaml:3:9: scoring: expected a mapping, got null");
    expect_error(HEAD "classes: {name: a}\n",
                 "p.yaml:3:10: classes: expected a list of classes, got a mapping");
    expect_error(HEAD "classes:\n  - h100\n", "p.yaml:4:5: classes[0]: expected a mapping, got a "
                                              "scalar");
    expect_error(HEAD "rules: x\n", "p.yaml:3:8: rules: expected a list of rules, got \"x\"");
    expect_error(HEAD "default: [a]\n", "p.yaml:3:10: default: expected a mapping, got a sequence");
    expect_error(HEAD "default:\n  prefer: [h100]\n",
                 "p.yaml:4:12: default.prefer[0]: expected a mapping, got a scalar");
    expect_error(HEAD "default:\n  prefer: {class: h100}\n",
                 "p.yaml:4:11: default.prefer: expected a list of preferences, got a mapping");
    expect_error(HEAD "default:\n  allow: t4\n",
                 "p.yaml:4:10: default.allow: expected a list of class names, got \"t4\"; write "
                 "[t4] for a list of one");
    expect_error(HEAD "default:\n  forbid: [[t4]]\n",
                 "p.yaml:4:12: default.forbid[0]: expected a class name, got a sequence");
    expect_error(HEAD "rules:\n  - name: r\n    match: {labels: [a]}\n",
                 "p.yaml:5:21: rules[0].match.labels: expected a mapping of label keys to values, "
                 "got a sequence");
    expect_error(HEAD "rules:\n  - name: r\n    match: {labels: {a: }}\n",
                 "p.yaml:5:25: rules[0].match.labels.a: expected a label value, got null; write "
                 "\"\" for an empty value");
    expect_error(HEAD "rules:\n  - name: r\n    match: x\n",
                 "p.yaml:5:12: rules[0].match: expected a mapping, got \"x\"");
    expect_error(HEAD "rules:\n  - name: [r]\n    match: {namespaces: [a]}\n",
                 "p.yaml:4:11: rules[0].name: expected a name, got a sequence");
    expect_error(HEAD "classes:\n  - {name: a, products: [~]}\n",
                 "p.yaml:4:26: classes[0].products[0]: expected a product name or pattern, got "
                 "null");
}

static void test_enum_errors(void)
{
    expect_error(HEAD "scoring:\n  strategy: fill\n",
                 "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"fill\"");
    expect_error(HEAD "default:\n  topology: {minGPUs: 2, require: nvlink}\n",
                 "p.yaml:4:35: default.topology.require: expected SYS, NODE, PHB, PXB, PIX or "
                 "NVLink, got \"nvlink\"");
    expect_error("apiVersion: v1\nkind: GPUPolicy\n",
                 "p.yaml:1:13: apiVersion: expected gpu-extender.io/v1alpha1, got \"v1\"");
    expect_error("apiVersion: gpu-extender.io/v1alpha1\nkind: Deployment\n",
                 "p.yaml:2:7: kind: expected GPUPolicy, got \"Deployment\"");
}

static void test_key_errors(void)
{
    expect_error(HEAD "foo: 1\n", "p.yaml:3:1: foo: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "scoring:\n  weights:\n    gpus: 1\n",
                 "p.yaml:5:5: scoring.weights.gpus: unknown key (known keys here: freeGPUs, "
                 "model, topology)");
    expect_error(HEAD "scoring: {strategi: spread}\n",
                 "p.yaml:3:11: scoring.strategi: unknown key (known keys here: strategy, "
                 "weights)");
    expect_error(HEAD "podOverrides: {model: false}\n",
                 "p.yaml:3:16: podOverrides.model: unknown key (known keys here: strategy, "
                 "models, preferred)");
    expect_error(HEAD "scoring.strategy: spread\n",
                 "p.yaml:3:1: scoring.strategy: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "rules[]: 1\n",
                 "p.yaml:3:1: rules[]: unknown key (known keys here: " KNOWN_TOP ")");
    expect_error(HEAD "classes:\n  - {name: a, family: [x]}\n",
                 "p.yaml:4:15: classes[0].family: unknown key (known keys here: name, products, "
                 "families, minMemoryMiB)");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, allowed: [x]}\n",
                 "p.yaml:4:41: rules[0].allowed: unknown key (known keys here: " KNOWN_RULE ")");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespace: [a]}}\n",
                 "p.yaml:4:23: rules[0].match.namespace: unknown key (known keys here: "
                 "namespaces, labels, priorityClassNames)");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, topology: {gpus: 2, "
                      "minGPUs: 2, require: PIX}}\n",
                 "p.yaml:4:52: rules[0].topology.gpus: unknown key (known keys here: minGPUs, "
                 "require)");
    expect_error(HEAD "default: {name: x}\n",
                 "p.yaml:3:11: default.name: unknown key (known keys here: " KNOWN_DEFAULT ")");
    expect_error(HEAD CLASSES "default: {prefer: [{class: h100, wieght: 1}]}\n",
                 "p.yaml:7:34: default.prefer[0].wieght: unknown key (known keys here: class, "
                 "weight)");
    expect_error(HEAD "default: {podOverrides: {model: true}}\n",
                 "p.yaml:3:26: default.podOverrides.model: unknown key (known keys here: "
                 "strategy, models, preferred)");

    expect_error(HEAD "kind: GPUPolicy\n", "p.yaml:3:1: kind: duplicate key");
    expect_error(HEAD "scoring:\n  weights: {model: 1, model: 2}\n",
                 "p.yaml:4:23: scoring.weights.model: duplicate key");
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a]}, name: s}\n",
                 "p.yaml:4:41: rules[0].name: duplicate key");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a: b, a: c}}}\n",
                 "p.yaml:4:38: rules[0].match.labels.a: duplicate key");

    expect_error("kind: GPUPolicy\n", "p.yaml:1:1: apiVersion: required key is missing");
    expect_error("# a policy\n\napiVersion: gpu-extender.io/v1alpha1\n",
                 "p.yaml:3:1: kind: required key is missing");
    expect_error(HEAD "classes:\n  - products: [x]\n",
                 "p.yaml:4:5: classes[0].name: required key is missing");
    expect_error(HEAD "rules:\n  - match: {namespaces: [a]}\n",
                 "p.yaml:4:5: rules[0].name: required key is missing");
    expect_error(HEAD "default:\n  prefer:\n    - weight: 5\n",
                 "p.yaml:5:7: default.prefer[0].class: required key is missing");
    expect_error(HEAD "default:\n  topology:\n    minGPUs: 4\n",
                 "p.yaml:5:5: default.topology.require: required key is missing");
    expect_error(HEAD "default:\n  topology: {require: NVLink}\n",
                 "p.yaml:4:13: default.topology.minGPUs: required key is missing");
}

static void test_name_errors(void)
{
    expect_error(HEAD "classes:\n  - {name: H100, products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"H100\": " NAME_RULE);
    expect_error(HEAD "classes:\n  - {name: -a, products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"-a\": " NAME_RULE);
    expect_error(HEAD "classes:\n  - {name: \"\", products: [x]}\n",
                 "p.yaml:4:12: classes[0].name: empty; expected a name");
    expect_error(HEAD "rules:\n  - {name: ml_train, match: {namespaces: [a]}}\n",
                 "p.yaml:4:12: rules[0].name: invalid name \"ml_train\": " NAME_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [ML]}}\n",
                 "p.yaml:4:36: rules[0].match.namespaces[0]: invalid namespace \"ML\": " NAME_RULE);
    expect_error(
        HEAD "rules:\n  - {name: r, match: {namespaces: [a.b]}}\n",
        "p.yaml:4:36: rules[0].match.namespaces[0]: invalid namespace \"a.b\": " NAME_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {priorityClassNames: [a..b]}}\n",
                 "p.yaml:4:44: rules[0].match.priorityClassNames[0]: invalid priority class name "
                 "\"a..b\": use up to 253 characters a-z, 0-9, '-' or '.', starting and ending "
                 "with a letter or digit");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {-team: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.-team: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {Example.com/team: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.Example.com/team: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a/b/c: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.a/b/c: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {a_b.c/d: ml}}}\n",
                 "p.yaml:4:32: rules[0].match.labels.a_b.c/d: " LABEL_KEY_RULE);
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {team: m l}}}\n",
                 "p.yaml:4:38: rules[0].match.labels.team: invalid label value \"m l\": use \"\" "
                 "or " LABEL_RULE);
    expect_error(
        HEAD "classes:\n  - {name: a, families: [hop per]}\n",
        "p.yaml:4:26: classes[0].families[0]: invalid family \"hop per\": use " LABEL_RULE);
}

static void test_pattern_errors(void)
{
    expect_error(HEAD "classes:\n  - {name: a, products: [\"\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: empty; expected a product name or pattern");
    expect_error(HEAD "classes:\n  - {name: a, products: [\"NVIDIA H100\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: invalid pattern \"NVIDIA H100\": a product "
                 "label has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
    expect_error(HEAD "classes:\n  - {name: a, products: [\"H100[0-9]\"]}\n",
                 "p.yaml:4:26: classes[0].products[0]: invalid pattern \"H100[0-9]\": a product "
                 "label has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
}

static void test_class_errors(void)
{
    expect_error(HEAD "classes:\n  - name: a\n",
                 "p.yaml:4:5: classes[0]: matches no node: give at least one of products, "
                 "families or minMemoryMiB");
    expect_error(HEAD "classes:\n  - {name: a, products: [x]}\n  - {name: b, products: [y]}\n"
                      "  - {name: a, families: [z]}\n",
                 "p.yaml:6:12: classes[2].name: duplicate class name \"a\" (first at line 4)");
    /* An invalid criterion is one error, not also "no criterion". */
    expect_error(HEAD "classes:\n  - {name: a, minMemoryMiB: 0}\n",
                 "p.yaml:4:29: classes[0].minMemoryMiB: must be 1..10000000, got 0");
}

static void test_rule_name_errors(void)
{
    expect_error(HEAD "rules:\n  - {name: default, match: {namespaces: [a]}}\n",
                 "p.yaml:4:12: rules[0].name: \"default\" is reserved; write the default rule "
                 "under the key default");
    expect_error(HEAD "rules:\n  - {name: a, match: {namespaces: [a]}}\n"
                      "  - {name: a, match: {namespaces: [b]}}\n",
                 "p.yaml:5:12: rules[1].name: duplicate rule name \"a\" (first at line 4)");
}

static void test_undefined_classes(void)
{
    expect_error(HEAD CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n"
                              "    allow: [h100, h10]\n",
                 "p.yaml:10:19: rules[0].allow[1]: undefined class \"h10\" (defined classes: h100, "
                 "a100, t4)");
    expect_error(HEAD CLASSES "default:\n  forbid: [T4]\n",
                 "p.yaml:8:12: default.forbid[0]: undefined class \"T4\" (defined classes: h100, "
                 "a100, t4)");
    expect_error(HEAD CLASSES "default:\n  prefer:\n    - class: h200\n",
                 "p.yaml:9:14: default.prefer[0].class: undefined class \"h200\" (defined "
                 "classes: h100, a100, t4)");
    expect_error(HEAD "default:\n  allow: [t4]\n",
                 "p.yaml:4:11: default.allow[0]: undefined class \"t4\" (no classes are defined)");
    /* A class with an error of its own is not reported again where it is used. */
    expect_error(HEAD "classes:\n  - {name: t4, products: [\"T 4\"]}\ndefault:\n  allow: [t4]\n",
                 "p.yaml:4:27: classes[0].products[0]: invalid pattern \"T 4\": a product label "
                 "has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)");
    expect_error(HEAD "classes:\n  - {name: T4, products: [x]}\ndefault:\n  allow: [T4]\n",
                 "p.yaml:4:12: classes[0].name: invalid name \"T4\": " NAME_RULE);
    /* A long class list is cut short. */
    {
        char *text = fmt("%sclasses:\n%sdefault: {allow: [nope]}\n", HEAD,
                         "  - {name: class-number-one, families: [a]}\n"
                         "  - {name: class-number-two, families: [a]}\n"
                         "  - {name: class-number-three, families: [a]}\n"
                         "  - {name: class-number-four, families: [a]}\n"
                         "  - {name: class-number-five, families: [a]}\n"
                         "  - {name: class-number-six, families: [a]}\n");
        expect_error(text, "p.yaml:10:19: default.allow[0]: undefined class \"nope\" (defined "
                           "classes: class-number-one, class-number-two, class-number-three, "
                           "class-number-four, class-number-five, ...)");
        free(text);
    }
}

static void test_list_errors(void)
{
    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: []}}\n",
                 "p.yaml:4:35: rules[0].match.namespaces: empty, so the rule can never match; "
                 "remove the key instead");
    expect_error(HEAD "rules:\n  - {name: r, match: {priorityClassNames: []}}\n",
                 "p.yaml:4:43: rules[0].match.priorityClassNames: empty, so the rule can never "
                 "match; remove the key instead");
    expect_error(HEAD "rules:\n  - {name: r, match: {labels: {}}}\n",
                 "p.yaml:4:31: rules[0].match.labels: empty; remove the key or give at least one "
                 "entry");
    expect_error(HEAD "default: {allow: []}\n",
                 "p.yaml:3:18: default.allow: empty; remove the key or give at least one entry");
    expect_error(HEAD "default: {prefer: []}\n",
                 "p.yaml:3:19: default.prefer: empty; remove the key or give at least one entry");
    expect_error(HEAD "classes: []\n",
                 "p.yaml:3:10: classes: empty; remove the key or give at least one entry");
    expect_error(HEAD "rules: []\n",
                 "p.yaml:3:8: rules: empty; remove the key or give at least one entry");
    expect_error(HEAD "classes:\n  - {name: a, products: []}\n",
                 "p.yaml:4:25: classes[0].products: empty; remove the key or give at least one "
                 "entry");

    expect_error(HEAD "rules:\n  - {name: r, match: {namespaces: [a, b, a]}}\n",
                 "p.yaml:4:42: rules[0].match.namespaces[2]: duplicate entry \"a\" (first at "
                 "namespaces[0])");
    expect_error(HEAD CLASSES "default: {forbid: [t4, h100, t4]}\n",
                 "p.yaml:7:30: default.forbid[2]: duplicate entry \"t4\" (first at forbid[0])");
    /* Products and families ignore case, as matching does. */
    expect_error(HEAD "classes:\n  - {name: a, products: [Tesla-T4, TESLA-t4]}\n",
                 "p.yaml:4:36: classes[0].products[1]: duplicate entry \"TESLA-t4\" (first at "
                 "products[0])");
    expect_error(HEAD "classes:\n  - {name: a, families: [ampere, Ampere]}\n",
                 "p.yaml:4:34: classes[0].families[1]: duplicate entry \"Ampere\" (first at "
                 "families[0])");
}

static void test_match_errors(void)
{
    expect_error(HEAD "rules:\n  - name: r\n    strategy: spread\n",
                 "p.yaml:4:5: rules[0]: no match, so the rule matches every pod; put it under "
                 "default");
    expect_error(HEAD "rules:\n  - name: r\n    match: {}\n",
                 "p.yaml:5:12: rules[0].match: empty, so the rule matches every pod; put it under "
                 "default");
    /* A broken selector is one error: the rule is neither "every pod" nor compared. */
    expect_error(HEAD "rules:\n  - {name: a, match: {namespace: [x]}}\n"
                      "  - {name: b, match: {namespaces: [x]}}\n",
                 "p.yaml:4:23: rules[0].match.namespace: unknown key (known keys here: "
                 "namespaces, labels, priorityClassNames)");
}

static void test_shadowed_rules(void)
{
    static const char *const shadowed[] = {
        /* Same namespaces. */
        "  - {name: ml-all, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml]}}\n",
        /* A subset of namespaces, and B adds a label. */
        "  - {name: ml-all, match: {namespaces: [ml, ml-dev]}}\n"
        "  - {name: b, match: {namespaces: [ml-dev], labels: {team: x}}}\n",
        /* A selects on labels only; B has them and more. */
        "  - {name: ml-all, match: {labels: {team: ml}}}\n"
        "  - {name: b, match: {labels: {team: ml, stage: train}, namespaces: [x]}}\n",
        /* Priority classes. */
        "  - {name: ml-all, match: {priorityClassNames: [high, low]}}\n"
        "  - {name: b, match: {priorityClassNames: [low], namespaces: [x]}}\n",
    };
    static const char *const fine[] = {
        /* B is broader: A has namespaces, B has none. */
        "  - {name: a, match: {namespaces: [ml], labels: {team: x}}}\n"
        "  - {name: b, match: {labels: {team: x}}}\n",
        /* Different namespaces. */
        "  - {name: a, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml-dev]}}\n",
        /* B has a namespace A lacks. */
        "  - {name: a, match: {namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml, other]}}\n",
        /* Same label key, another value. */
        "  - {name: a, match: {labels: {team: x}}}\n"
        "  - {name: b, match: {labels: {team: y}}}\n",
        /* A needs a priority class B does not ask for. */
        "  - {name: a, match: {priorityClassNames: [high], namespaces: [ml]}}\n"
        "  - {name: b, match: {namespaces: [ml]}}\n",
    };

    for (size_t i = 0; i < sizeof(shadowed) / sizeof(shadowed[0]); i++) {
        char *text = fmt("%srules:\n%s", HEAD, shadowed[i]);
        expect_error(text, "p.yaml:5:5: rules[1]: can never match: rule \"ml-all\" (line 4) "
                           "selects every pod this one does");
        free(text);
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        char *text = fmt("%srules:\n%s", HEAD, fine[i]);
        policy_unref(expect_ok(text));
        free(text);
    }
    /* Only the first rule that shadows is named. */
    expect_error(HEAD "rules:\n  - {name: x, match: {namespaces: [a]}}\n"
                      "  - {name: y, match: {namespaces: [a, b]}}\n"
                      "  - {name: z, match: {namespaces: [a]}}\n",
                 "p.yaml:6:5: rules[2]: can never match: rule \"x\" (line 4) selects every pod "
                 "this one does");
}

static void test_allow_errors(void)
{
    expect_error(HEAD CLASSES "rules:\n  - name: r\n    match: {namespaces: [a]}\n"
                              "    allow: [t4, a100]\n    forbid: [a100, t4, h100]\n",
                 "p.yaml:10:12: rules[0].allow: allows nothing: every class in it is also in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  allow: [t4]\n  forbid: [t4]\n",
                 "p.yaml:8:10: default.allow: allows nothing: every class in it is also in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  forbid: [t4]\n  prefer:\n    - class: h100\n"
                              "    - class: t4\n",
                 "p.yaml:11:14: default.prefer[1].class: can never apply: class \"t4\" is in "
                 "forbid");
    expect_error(HEAD CLASSES "default:\n  allow: [h100]\n  prefer:\n    - class: a100\n",
                 "p.yaml:10:14: default.prefer[0].class: can never apply: class \"a100\" is not "
                 "in allow");
    expect_error(HEAD CLASSES "default:\n  prefer:\n    - class: a100\n    - class: h100\n"
                              "    - {class: a100, weight: 3}\n",
                 "p.yaml:11:15: default.prefer[2].class: duplicate class \"a100\" (first at "
                 "prefer[0])");
    expect_error(HEAD "default: {topology: {minGPUs: 1, require: NVLink}}\n",
                 "p.yaml:3:31: default.topology.minGPUs: must be 2..4096, got 1");
}

static void test_document_errors(void)
{
    static const char *const missing[] = {
        "p.yaml:1:1: apiVersion: required key is missing",
        "p.yaml:1:1: kind: required key is missing",
    };
    const char *msg;
    struct policy *p = NULL;
    struct policy_diag diag;

    expect_error("", "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("# only a comment\n",
                 "p.yaml:1:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("---\n", "p.yaml:2:1: the policy is empty; it needs at least apiVersion and kind");
    expect_error("- a\n- b\n", "p.yaml:1:1: expected a mapping at the top level, got a sequence");
    expect_errors("{}\n", ERR_INVALID, missing, 2);
    expect_error(HEAD "scoring:\n  weights:\n    freeGPUs: 0\n    model: 0\n    topology: 0\n",
                 "p.yaml:5:5: scoring.weights: every weight is 0, so all nodes would score the "
                 "same; set at least one above 0");

    msg = "p.yaml:4:1: invalid YAML: could not find expected ':' (while scanning a simple key at "
          "3:1)";
    expect_errors(HEAD "scoring\nfoo: 1\n", ERR_PARSE, &msg, 1);
    msg = "p.yaml:3:1: only one YAML document is allowed";
    expect_errors(HEAD "---\n" HEAD, ERR_PARSE, &msg, 1);

    /* policy_parse() takes a length, not a C string. */
    CHECK_EQ(policy_parse("p.yaml", HEAD "scoring: {strategy: spread}", strlen(HEAD), &p, &diag),
             ERR_OK);
    CHECK_EQ(p->strategy, POLICY_BINPACK);
    CHECK_EQ(p->text_len, strlen(HEAD));
    CHECK_STR_EQ(p->text, HEAD);
    policy_unref(p);
    CHECK_EQ(policy_parse("p.yaml", HEAD, strlen(HEAD), &p, NULL), ERR_OK);
    policy_unref(p);
    CHECK_EQ(policy_parse("p.yaml", "kind: x", 7, &p, NULL), ERR_INVALID);
    CHECK_EQ(policy_parse("p.yaml", NULL, 0, &p, &diag), ERR_INVALID);
    CHECK_EQ(diag.count, 1);
}

/* Every problem in one pass, in file order, then the checks that need the whole file. */
static void test_many_errors(void)
{
    static const char text[] = HEAD "scoring:\n"                                   /* 3 */
                                    "  strategy: sideways\n"                       /* 4 */
                                    "  weights:\n"                                 /* 5 */
                                    "    freeGPUs: 101\n"                          /* 6 */
                                    "    model: many\n"                            /* 7 */
                                    "    extra: 1\n"                               /* 8 */
                                    "podOverrides:\n"                              /* 9 */
                                    "  strategy: maybe\n"                          /* 10 */
                                    "classes:\n"                                   /* 11 */
                                    "  - {name: h100, products: [NVIDIA-H100*]}\n" /* 12 */
                                    "  - {name: h100, families: [hopper]}\n"       /* 13 */
                                    "  - {name: t4}\n"                             /* 14 */
                                    "rules:\n"                                     /* 15 */
                                    "  - name: ml\n"                               /* 16 */
                                    "    match: {namespaces: [ml]}\n"              /* 17 */
                                    "    allow: [h100, a100]\n"                    /* 18 */
                                    "  - name: ml-train\n"                         /* 19 */
                                    "    match: {namespaces: [ml], labels: {a: b}}\n"
                                    "    topology: {minGPUs: 1, require: NVLink}\n" /* 21 */
                                    "colour: blue\n";                               /* 22 */
    static const char *const msgs[] = {
        "p.yaml:4:13: scoring.strategy: expected binpack or spread, got \"sideways\"",
        "p.yaml:6:15: scoring.weights.freeGPUs: must be 0..100, got 101",
        "p.yaml:7:12: scoring.weights.model: expected an integer 0..100, got \"many\"",
        "p.yaml:8:5: scoring.weights.extra: unknown key (known keys here: freeGPUs, model, "
        "topology)",
        "p.yaml:10:13: podOverrides.strategy: expected true or false, got \"maybe\"",
        "p.yaml:13:12: classes[1].name: duplicate class name \"h100\" (first at line 12)",
        "p.yaml:14:5: classes[2]: matches no node: give at least one of products, families or "
        "minMemoryMiB",
        "p.yaml:21:25: rules[1].topology.minGPUs: must be 2..4096, got 1",
        "p.yaml:19:5: rules[1]: can never match: rule \"ml\" (line 16) selects every pod this one "
        "does",
        "p.yaml:22:1: colour: unknown key (known keys here: " KNOWN_TOP ")",
        "p.yaml:18:19: rules[0].allow[1]: undefined class \"a100\" (defined classes: h100, t4)",
    };

    expect_errors(text, ERR_INVALID, msgs, sizeof(msgs) / sizeof(msgs[0]));
}

/* Past POLICY_MAX_ERRORS the rest is dropped, but the load still fails. */
static void test_error_cap(void)
{
    char text[4096];
    size_t used = (size_t)snprintf(text, sizeof(text), "%s", HEAD);
    struct policy *p = NULL;
    struct policy_diag diag;

    for (int i = 0; i < 50; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "unknown%d: 1\n", i);
    CHECK_EQ(parse(text, &p, &diag), ERR_INVALID);
    CHECK_EQ(diag.count, POLICY_MAX_ERRORS);
    CHECK_STR_EQ(diag.msgs[POLICY_MAX_ERRORS - 1],
                 "p.yaml:22:1: unknown19: unknown key (known keys here: " KNOWN_TOP ")");
    CHECK(p == NULL);
}

static void test_names(void)
{
    char name[1000];
    struct policy *p = NULL;
    struct policy_diag diag;

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    CHECK_EQ(policy_parse(name, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
    CHECK_EQ(strlen(p->source), sizeof(p->source) - 1);
    policy_unref(p);
    CHECK_EQ(policy_parse(name, "x: 1", 4, &p, &diag), ERR_INVALID);
    CHECK(strlen(diag.msgs[0]) < sizeof(diag.msgs[0]));
    CHECK(strstr(diag.msgs[0], ":1:1: x: unknown key") != NULL);
    CHECK_EQ(policy_parse(NULL, HEAD, strlen(HEAD), &p, &diag), ERR_OK);
    CHECK_STR_EQ(p->source, "(policy)");
    policy_unref(p);
}

static void test_load_errors(void)
{
    char dir[] = "/tmp/gx-policy-XXXXXX";
    char path[64];
    struct policy *p = NULL;
    struct policy_diag diag;
    FILE *f;

    CHECK_EQ(policy_load("/nonexistent/gx/policy.yaml", &p, &diag), ERR_IO);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "/nonexistent/gx/policy.yaml: cannot open") != NULL);

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    fputs(HEAD, f);
    for (size_t i = 0; i < POLICY_MAX_FILE_BYTES / 16; i++)
        fputs("# padding line.\n", f); /* 16 bytes; with HEAD just past the cap */
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(policy_load(path, &p, &diag), ERR_TOO_LARGE);
    CHECK_EQ(diag.count, 1);
    CHECK(strstr(diag.msgs[0], "file is larger than 1048576 bytes") != NULL);
    CHECK_EQ(policy_load(dir, &p, &diag), ERR_IO); /* a directory cannot be read */
    CHECK(p == NULL);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(rmdir(dir), 0);
}

/* ---- the README's "Keys" section documents exactly the schema's keys, each with the six
 * fields ---- */

static size_t schema_index(const char *key)
{
    size_t i;

    for (i = 0; i < policy_schema_count(); i++) {
        if (strcmp(policy_schema_key(i), key) == 0)
            break;
    }
    if (i == policy_schema_count())
        fprintf(stderr, "README documents a key the schema lacks: %s\n", key);
    CHECK(i < policy_schema_count());
    return i;
}

/* The section body runs to the next heading; it must hold each field once, Name first. */
static void check_section(const char *key, const char *body)
{
    static const char *const fields[] = {"- **Name:** ",  "- **Type:** ",        "- **Default:** ",
                                         "- **Range:** ", "- **Description:** ", "- **Example:**"};
    char *name = fmt("- **Name:** `%s`\n", key);

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *at = strstr(body, fields[i]);
        if (!at)
            fprintf(stderr, "README section %s lacks %s\n", key, fields[i]);
        CHECK(at != NULL);
        CHECK(strstr(at + 1, fields[i]) == NULL);
    }
    if (strncmp(body, name, strlen(name)) != 0)
        fprintf(stderr, "README section %s does not start with %s", key, name);
    CHECK(strncmp(body, name, strlen(name)) == 0);
    free(name);
}

/* Where the section that starts at from ends: the next heading of level 2 or 3. */
static const char *section_end(const char *from)
{
    const char *h2 = strstr(from, "\n## "), *h3 = strstr(from, "\n### ");

    if (!h2 || (h3 && h3 < h2))
        h2 = h3;
    return h2 ? h2 : from + strlen(from);
}

static void test_readme_matches_schema(void)
{
    char *path = source_path("policy/README.md");
    char *text = check_read_file(path, NULL);
    size_t documented = 0;
    bool seen[128] = {false};
    const char *keys = strstr(text, "\n## Keys\n");

    CHECK(keys != NULL);
    CHECK(policy_schema_count() <= sizeof(seen) / sizeof(seen[0]));
    for (const char *h = strstr(keys, "\n### "); h; h = strstr(h + 1, "\n### ")) {
        const char *key = h + 5, *eol = strchr(key, '\n'), *body;
        char *k, *b;
        size_t i;

        CHECK(eol != NULL);
        body = eol + strspn(eol, "\n");
        k = fmt("%.*s", (int)(eol - key), key);
        b = fmt("%.*s", (int)(section_end(eol) - body), body);
        i = schema_index(k);
        CHECK(!seen[i]);
        seen[i] = true;
        documented++;
        check_section(k, b);
        free(k);
        free(b);
    }
    for (size_t i = 0; i < policy_schema_count(); i++) {
        if (!seen[i])
            fprintf(stderr, "README does not document schema key %s\n", policy_schema_key(i));
        CHECK(seen[i]);
    }
    CHECK_EQ(documented, policy_schema_count());
    CHECK(policy_schema_key(policy_schema_count()) == NULL);
    free(text);
    free(path);
}

/* ---- hostile input ---- */

static void expect_parse_error_containing(const char *text, size_t len, const char *needle)
{
    struct policy *p = NULL;
    struct policy_diag diag;

    CHECK_EQ(policy_parse("h.yaml", text, len, &p, &diag), ERR_PARSE);
    CHECK_EQ(diag.count, 1);
    if (!strstr(diag.msgs[0], needle))
        dump(&diag);
    CHECK(strstr(diag.msgs[0], needle) != NULL);
    CHECK(p == NULL);
}

static void test_hostile_structure(void)
{
    char *s;
    char *closers;

    closers = repeat("", "]", 200, "");
    s = repeat(HEAD "x: ", "[", 200, closers);
    expect_parse_error_containing(s, strlen(s), "h.yaml:3:67: nesting is deeper than 64 levels");
    free(s);
    free(closers);

    s = repeat("", "{a: ", 100000, "");
    expect_parse_error_containing(s, strlen(s), "nesting is deeper than 64 levels");
    free(s);

    {
        size_t size = 100 * 210, used = 0;
        char *lines = malloc(size);
        CHECK(lines != NULL);
        for (int d = 0; d < 100; d++)
            used += (size_t)snprintf(lines + used, size - used, "%*sk:\n", 2 * d, "");
        expect_parse_error_containing(lines, used, "h.yaml:65:129: nesting is deeper than 64");
        free(lines);
    }

    s = repeat(HEAD "x: [", "0,", 100000, "0]\n");
    expect_parse_error_containing(s, strlen(s), "document has more than 65536 nodes");
    free(s);
}

static void test_hostile_yaml_features(void)
{
    static const char laughs[] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                 "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    static const char alias_only[] = HEAD "scoring: *s\n";
    static const char tagged[] = HEAD "scoring:\n  weights:\n    model: !!int 4\n";
    static const char key_map[] = HEAD "? [a, b]\n: 1\n";
    static const char nul[] = "apiVersion: gpu\0extender\n";
    static const char bad_utf8[] = HEAD "kind: \xff\xfe\n";
    static const char nul_key[] = HEAD "\"rul\\0es\": []\n";

    expect_parse_error_containing(laughs, strlen(laughs),
                                  "h.yaml:1:4: YAML anchors (&a) are not supported");
    expect_parse_error_containing(alias_only, strlen(alias_only),
                                  "h.yaml:3:10: YAML aliases (*name) are not supported");
    expect_parse_error_containing(
        tagged, strlen(tagged), "h.yaml:5:12: YAML tags (tag:yaml.org,2002:int) are not supported");
    expect_parse_error_containing(key_map, strlen(key_map),
                                  "h.yaml:3:3: mapping keys must be plain strings");
    expect_parse_error_containing(nul, sizeof(nul) - 1, "h.yaml:1:16: invalid YAML");
    expect_parse_error_containing(bad_utf8, sizeof(bad_utf8) - 1, "h.yaml:3:7: invalid YAML");
    expect_error(nul_key, "p.yaml:3:1: rul?es: unknown key (known keys here: " KNOWN_TOP ")");
    /* A NUL inside a class name is refused, and never matches a reference. */
    expect_error(HEAD "classes: [{name: \"h1\\0\", products: [x]}]\n",
                 "p.yaml:3:18: classes[0].name: invalid name \"h1?\": " NAME_RULE);
    expect_error(HEAD "classes: [{name: h1, products: [x]}]\ndefault: {allow: [\"h1\\0\"]}\n",
                 "p.yaml:4:19: default.allow[0]: undefined class \"h1?\" (defined classes: h1)");
}

/* The biggest policy the caps let through still loads or fails with one message. */
static void test_hostile_size(void)
{
    static const char *const units[] = {
        "  - {name: c, products: [" C63 "," C63 "," C63 "," C63 "]}\n",
        "  - {name: r, match: {labels: {a: b, c: d, e: f, g: h, i: j}}}\n",
    };
    size_t budget = POLICY_MAX_FILE_BYTES - 200;

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        char *s = repeat(HEAD "x:\n", units[i], budget / strlen(units[i]), "");
        struct policy *p = NULL;
        struct policy_diag diag;
        enum err e = parse(s, &p, &diag);

        CHECK(e == ERR_INVALID || e == ERR_PARSE);
        CHECK(diag.count >= 1 && diag.count <= POLICY_MAX_ERRORS);
        CHECK(p == NULL);
        free(s);
    }
    /* policy_parse() has no file cap of its own; past the policy's memory cap it fails with
     * one message. */
    {
        char *s = repeat(HEAD "# ", "x", (size_t)5 << 20, "\n");
        expect_parse_error_containing(s, strlen(s),
                                      "h.yaml:1:1: the policy is too large: it "
                                      "needs more than 4 MiB once loaded");
        free(s);
    }
}

static uint32_t xorshift(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Success comes without messages; failure always says why. */
static void check_outcome(enum err e, struct policy *p, const struct policy_diag *diag)
{
    if (e == ERR_OK) {
        CHECK_EQ(diag->count, 0);
        CHECK(p != NULL);
        policy_unref(p);
    } else {
        CHECK(diag->count >= 1 && diag->count <= POLICY_MAX_ERRORS);
    }
}

/* Random bytes, YAML punctuation soup and single-byte mutations of a valid policy: none may
 * crash, leak or trip a sanitizer. Byte soup must never be accepted. */
static void test_garbage(void)
{
    static const char soup[] = "[]{}:,-?&*!|>'\"#%@`\n\n\n    \tab0~.";
    static const char valid[] = HEAD "scoring: {strategy: spread, weights: {freeGPUs: 2}}\n"
                                     "classes:\n  - {name: h100, products: [H100*], families: "
                                     "[hopper], minMemoryMiB: 80}\n  - {name: t4, families: "
                                     "[turing]}\nrules:\n  - name: ml\n    match: {namespaces: "
                                     "[ml], labels: {a: b}}\n    allow: [h100]\n    prefer: "
                                     "[{class: h100, weight: 9}]\n    topology: {minGPUs: 4, "
                                     "require: NVLink}\ndefault: {forbid: [t4]}\n";
    uint32_t seed = 0x9e3779b9u;
    char buf[600];
    struct policy *p = NULL;
    struct policy_diag diag;
    enum err e;

    for (int round = 0; round < 3000; round++) {
        size_t len = xorshift(&seed) % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(xorshift(&seed) & 0xff);
        CHECK(policy_parse("g.yaml", buf, len, &p, &diag) != ERR_OK);
        CHECK(diag.count >= 1 && diag.count <= POLICY_MAX_ERRORS);

        for (size_t i = 0; i < len; i++)
            buf[i] = soup[xorshift(&seed) % (sizeof(soup) - 1)];
        p = NULL;
        e = policy_parse("g.yaml", buf, len, &p, &diag);
        check_outcome(e, p, &diag);

        memcpy(buf, valid, sizeof(valid) - 1);
        buf[xorshift(&seed) % (sizeof(valid) - 1)] = (char)(xorshift(&seed) & 0xff);
        p = NULL;
        e = policy_parse("g.yaml", buf, sizeof(valid) - 1, &p, &diag);
        check_outcome(e, p, &diag);
    }
}

/* ---- reference counting ---- */

static void *ref_worker(void *arg)
{
    struct policy *p = arg;

    for (int i = 0; i < 10000; i++)
        policy_unref(policy_ref(p));
    policy_unref(p); /* the reference the starter took for this thread */
    return NULL;
}

static void test_refcount(void)
{
    struct policy *p = expect_ok(HEAD CLASSES);
    pthread_t threads[4];

    CHECK(policy_ref(p) == p);
    CHECK_EQ(atomic_load(&p->refs), 2);
    policy_unref(p);
    CHECK_EQ(atomic_load(&p->refs), 1);
    policy_unref(NULL);
    CHECK(policy_ref(NULL) == NULL);
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&threads[i], NULL, ref_worker, policy_ref(p)), 0);
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
    CHECK_EQ(atomic_load(&p->refs), 1);
    /* Still whole: the threads let go of their references only. */
    CHECK_EQ(policy_class_find(p, STR_LIT("t4")), 2);
    policy_unref(p); /* the last one frees it; ASan reports a leak or a double free */
}

int main(void)
{
    test_defaults();
    test_default_yaml();
    test_examples();
    test_example_intent();
    test_fields();
    test_valid();
    test_int_boundaries();
    test_choice_boundaries();
    test_text_boundaries();
    test_list_boundaries();
    test_reference_list_boundaries();
    test_count_boundaries();
    test_type_errors();
    test_enum_errors();
    test_key_errors();
    test_name_errors();
    test_pattern_errors();
    test_class_errors();
    test_rule_name_errors();
    test_undefined_classes();
    test_list_errors();
    test_match_errors();
    test_shadowed_rules();
    test_allow_errors();
    test_document_errors();
    test_many_errors();
    test_error_cap();
    test_names();
    test_load_errors();
    test_readme_matches_schema();
    test_hostile_structure();
    test_hostile_yaml_features();
    test_hostile_size();
    test_garbage();
    test_refcount();
    printf("test_policy: ok\n");
    return 0;
}
