/* test_policy_limits.c -- policy_parse() at the edges: every integer key at min, max, min-1,
 * max+1 and with wrong types, every spelling of booleans and enums, the longest valid strings,
 * list and count limits, and hostile YAML (deep nesting, anchors, huge and random input), which
 * must fail cleanly under ASan/UBSan rather than crash or exhaust memory. */
#include "gx/policy.h"

#include "check.h"
#include "policy_helpers.h"

/* ---- helpers ---- */

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
    {"scoring.weights.scarcity", "scoring:\n  weights:\n    scarcity: %s\n", 0, 100},
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

int main(void)
{
    test_int_boundaries();
    test_choice_boundaries();
    test_text_boundaries();
    test_list_boundaries();
    test_reference_list_boundaries();
    test_count_boundaries();
    test_hostile_structure();
    test_hostile_yaml_features();
    test_hostile_size();
    test_garbage();
    printf("test_policy_limits: ok\n");
    return 0;
}
