/* test_policy.c -- policy_parse()/policy_load() building policies: defaults, the shipped
 * policy/default.yaml and policy/examples/, the fields of parsed classes and rules (a table of
 * cases), the README-vs-table key check and reference counting. Every class of error with its
 * exact file:line:col is in test_policy_errors.c; boundaries and hostile input are in
 * test_policy_limits.c. */
#include <dirent.h>
#include <pthread.h>

#include "gx/policy.h"

#include "check.h"
#include "config/policy_schema.h"
#include "policy_helpers.h"

/* ---- helpers ---- */

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
    CHECK_EQ(a->weight_scarcity, b->weight_scarcity);
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
    CHECK_EQ(p->weight_scarcity, 0); /* off: bench/results/sim/README.md says why */
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

    /* The scarcity weight, at both ends of its range; alone above 0 it is a valid policy. */
    p = expect_ok(HEAD "scoring: {weights: {scarcity: 4}}\n");
    CHECK_EQ(p->weight_scarcity, 4);
    CHECK_EQ(p->weight_free_gpus, 1);
    policy_unref(p);
    p = expect_ok(HEAD "scoring: {weights: {freeGPUs: 0, model: 0, topology: 0, scarcity: 100}}\n");
    CHECK_EQ(p->weight_scarcity, 100);
    policy_unref(p);
    p = expect_ok(HEAD "scoring: {weights: {scarcity: 0}}\n");
    CHECK_EQ(p->weight_scarcity, 0);
    policy_unref(p);
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
    test_readme_matches_schema();
    test_refcount();
    printf("test_policy: ok\n");
    return 0;
}
