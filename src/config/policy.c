/* policy.c -- policy YAML -> struct policy, driven by one schema table (see policy.h and
 * STYLE.md 2.7). Every key, section and list has a row: its path ("rules[].prefer[].weight"),
 * its type, where its value goes, its range and default. The walk, the defaults, the
 * "unknown key (known keys here: ...)" lists and the README check all follow from the table.
 * Adding a key means adding a row, a field and a README section.
 *
 * Loading runs in three steps over the ydoc tree:
 *  1. the walk checks every key against the table and stores each valid value into a build
 *     object (struct top_build, class_build, rule_build, pref_build); a list row's hook then
 *     checks one item as a whole (duplicate names, a class with no criterion, a rule that
 *     matches every pod or is shadowed by an earlier one);
 *  2. once every class is known, class names in allow, forbid and prefer are resolved to
 *     indices, and what they say is checked (undefined classes, rules that allow nothing,
 *     preferences that can never apply);
 *  3. with no error at all, the build objects become the policy's arrays.
 * Checking never stops at the first problem: each one becomes a "file:line:col: key.path:
 * message" line, up to POLICY_MAX_ERRORS. Values that fail a check are not stored, and an item
 * with an error is left out of the checks that compare items, so one mistake gives one
 * message rather than a cascade. */
#include "gx/policy.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/k8s.h"
#include "gx/str.h"

#include "policy_schema.h"
#include "yaml_doc.h"

/* Everything a loaded policy holds: a copy of the file (policy_load() caps it at 1 MiB), the
 * strings read from it and the arrays of classes, rules and lists. ydoc's 65536-node cap keeps
 * any file that parses below this; past it the load fails cleanly. */
#define POLICY_ARENA_BYTES ((size_t)4 * 1024 * 1024)
/* The build objects of one load, freed when it ends. */
#define SCRATCH_ARENA_BYTES ((size_t)8 * 1024 * 1024)

/* Long enough for any path in the table, with list indices; longer keys are unknown anyway. */
#define PATH_MAX_CHARS 128
/* How much of the policy name, of an offending value and of a class list a message repeats. */
#define MSG_NAME_CHARS 120
#define SNIPPET_CHARS 40
#define CLASS_LIST_CHARS 100

/* ---- build objects: what the walk fills, before they become the policy ---- */

/* Every object the table writes into starts with this, so offset 0 never names a field and
 * rows use 0 for "no field". */
struct item_head {
    const struct ydoc_node *node; /* the mapping it was read from; NULL when absent */
    bool bad;                     /* an error was reported inside it */
};

struct class_build {
    struct item_head h;
    struct policy_class c;
    struct str raw_name; /* the name as written, even when invalid */
};

struct pref_build {
    struct item_head h;
    struct str class_name;
    int64_t weight;
    bool has_weight;
};

struct rule_build {
    struct item_head h;
    struct policy_rule r;                /* selectors, strategy, topology, overrides */
    struct policy_strlist allow, forbid; /* class names; r.allow and r.forbid once resolved */
    bool has_forbid, has_labels, has_strategy;
    struct policy_overrides has_overrides; /* which podOverrides keys the rule gives */
    size_t pref_count;
    struct pref_build *prefs;
    bool selectors_ok; /* match is given, not empty, and every selector in it is valid */
};

struct top_build {
    struct item_head h;
    enum policy_strategy strategy;
    int64_t weight_free_gpus, weight_model, weight_topology;
    struct policy_overrides overrides;
    bool has_classes;
    size_t class_count;
    struct class_build *classes;
    size_t rule_count;
    struct rule_build *rules;
    struct rule_build default_rule;
};

static_assert(offsetof(struct class_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct pref_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct rule_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct top_build, h) == 0, "rows use offset 0 for no field");
/* store() writes enum fields as 32-bit integers. */
static_assert(sizeof(enum policy_strategy) == sizeof(int32_t), "enum fields are 32 bits");
static_assert(sizeof(enum policy_link) == sizeof(int32_t), "enum fields are 32 bits");

struct checker {
    const char *name;
    struct policy_diag *diag;
    size_t errors;
    bool too_large;       /* an arena cap was hit: the load fails with one message */
    struct arena *keep;   /* the policy's arena */
    struct arena scratch; /* build objects */
    const struct ydoc_node *root;
    struct top_build *top;
};

/* ---- the schema ---- */

enum schema_type {
    SCHEMA_CONST,   /* a string that must be exactly names[0]; stored nowhere (apiVersion, kind) */
    SCHEMA_INT,     /* int64_t, min..max */
    SCHEMA_BOOL,    /* bool; only true and false are accepted */
    SCHEMA_ENUM,    /* enum; names[i] spells value i */
    SCHEMA_TEXT,    /* one string (struct str), checked as `text` says */
    SCHEMA_STRLIST, /* struct policy_strlist of 1..max strings, each checked as `text` says */
    SCHEMA_LABELS,  /* 1..max label key: value pairs; array at offset, count at count_offset */
    SCHEMA_MAP,     /* a mapping of the rows below it; a non-zero offset moves to a new object */
    SCHEMA_LIST,    /* 1..max mappings, each an object of item_size with the rows below path[] */
};

/* How the strings of a TEXT or STRLIST row are checked. */
enum schema_text {
    TEXT_NONE,
    TEXT_NAME,           /* class or rule name: an RFC 1123 label */
    TEXT_NAMESPACE,      /* an RFC 1123 label */
    TEXT_PRIORITY_CLASS, /* an RFC 1123 subdomain */
    TEXT_PATTERN,        /* a product name, with * and ? */
    TEXT_FAMILY,         /* a label value, not empty */
    TEXT_CLASS,          /* a class name, resolved once every class is known */
};

#define ROW_REQUIRED 1u /* must be given when its parent is */
#define ROW_INHERIT 2u  /* no default of its own: absent means the top-level value */
#define ROW_SELECTOR 4u /* a list that selects pods: empty, it selects none */

typedef void item_check_fn(struct checker *k, void *items, size_t i, const char *path);

struct schema_row {
    const char *path; /* "scoring.weights.model", "rules[].prefer[].class" */
    enum schema_type type;
    enum schema_text text;
    size_t offset;             /* of the field in the current object; 0: none */
    size_t size;               /* of the field */
    size_t has_offset;         /* a bool set once a valid value is stored; 0: none */
    size_t count_offset;       /* LABELS, LIST: the size_t count beside the array at offset */
    size_t item_size;          /* LIST: the object each item fills */
    item_check_fn *check_item; /* LIST: checks one item once it has been read */
    int64_t min, max;          /* INT: range; STRLIST, LABELS, LIST: most entries */
    int64_t def;               /* INT, BOOL, ENUM: the default (0/1, index) */
    const char *const *names;  /* ENUM: NULL-terminated spellings; CONST: the one value */
    const char *noun;          /* LIST: what the items are, for messages */
    unsigned flags;
    const char *doc; /* one line; policy/README.md has the long form */
};

#define AT(T, f) .offset = offsetof(T, f), .size = sizeof(((T *)0)->f)
#define HAS(T, f) .has_offset = offsetof(T, f)
#define COUNT(T, f) .count_offset = offsetof(T, f)
#define TOP struct top_build
#define CLS struct class_build
#define RUL struct rule_build
#define PRF struct pref_build

static item_check_fn check_class_item, check_rule_item;

static const char *const api_versions[] = {"gpu-extender.io/v1alpha1", NULL};
static const char *const kinds[] = {"GPUPolicy", NULL};
static const char *const strategies[] = {"binpack", "spread", NULL};
static const char *const links[] = {"SYS", "NODE", "PHB", "PXB", "PIX", "NVLink", NULL};

/* The table reads best one row per key, so the formatter leaves it alone. */
/* clang-format off */
/* What a rule and the default rule share; P is "rules[]" or "default". */
#define RULE_ROWS(P)                                                                               \
    {.path = P ".allow", .type = SCHEMA_STRLIST, .text = TEXT_CLASS, AT(RUL, allow),               \
     HAS(RUL, r.has_allow), .max = POLICY_MAX_LIST,                                                \
     .doc = "the only classes the selected pods may use; absent: every class"},                    \
    {.path = P ".forbid", .type = SCHEMA_STRLIST, .text = TEXT_CLASS, AT(RUL, forbid),             \
     HAS(RUL, has_forbid), .max = POLICY_MAX_LIST,                                                 \
     .doc = "classes the selected pods may never use; beats allow and pod annotations"},           \
    {.path = P ".prefer", .type = SCHEMA_LIST, AT(RUL, prefs), COUNT(RUL, pref_count),             \
     .item_size = sizeof(PRF), .max = POLICY_MAX_LIST, .noun = "preferences",                      \
     .doc = "preferred classes, most preferred first"},                                            \
    {.path = P ".prefer[].class", .type = SCHEMA_TEXT, .text = TEXT_CLASS, AT(PRF, class_name),    \
     .flags = ROW_REQUIRED, .doc = "the preferred class"},                                         \
    {.path = P ".prefer[].weight", .type = SCHEMA_INT, AT(PRF, weight), HAS(PRF, has_weight),      \
     .min = 1, .max = POLICY_MAX_WEIGHT, .doc = "model score of a node in the class, in percent"}, \
    {.path = P ".strategy", .type = SCHEMA_ENUM, AT(RUL, r.strategy), HAS(RUL, has_strategy),      \
     .names = strategies, .flags = ROW_INHERIT, .doc = "binpack or spread for the selected pods"}, \
    {.path = P ".topology", .type = SCHEMA_MAP,                                                    \
     .doc = "the interconnect multi-GPU pods must get"},                                           \
    {.path = P ".topology.minGPUs", .type = SCHEMA_INT, AT(RUL, r.topo_min_gpus), .min = 2,        \
     .max = 4096, .flags = ROW_REQUIRED, .doc = "pods asking this many GPUs or more"},             \
    {.path = P ".topology.require", .type = SCHEMA_ENUM, AT(RUL, r.topo_require),                  \
     .names = links, .flags = ROW_REQUIRED, .doc = "the weakest link allowed between two GPUs"},   \
    {.path = P ".podOverrides", .type = SCHEMA_MAP,                                                \
     .doc = "what the selected pods may override; absent keys inherit"},                           \
    {.path = P ".podOverrides.strategy", .type = SCHEMA_BOOL, AT(RUL, r.overrides.strategy),       \
     HAS(RUL, has_overrides.strategy), .flags = ROW_INHERIT,                                       \
     .doc = "pods may pick their strategy"},                                                       \
    {.path = P ".podOverrides.models", .type = SCHEMA_BOOL, AT(RUL, r.overrides.models),           \
     HAS(RUL, has_overrides.models), .flags = ROW_INHERIT,                                         \
     .doc = "pods may narrow the allowed models"},                                                 \
    {.path = P ".podOverrides.preferred", .type = SCHEMA_BOOL, AT(RUL, r.overrides.preferred),     \
     HAS(RUL, has_overrides.preferred), .flags = ROW_INHERIT,                                      \
     .doc = "pods may replace the preferred models"}

static const struct schema_row schema[] = {
    {.path = "apiVersion", .type = SCHEMA_CONST, .names = api_versions, .flags = ROW_REQUIRED,
     .doc = "format version; must be gpu-extender.io/v1alpha1"},
    {.path = "kind", .type = SCHEMA_CONST, .names = kinds, .flags = ROW_REQUIRED,
     .doc = "must be GPUPolicy"},
    {.path = "scoring", .type = SCHEMA_MAP, .doc = "how nodes are ranked"},
    {.path = "scoring.strategy", .type = SCHEMA_ENUM, AT(TOP, strategy), .names = strategies,
     .def = POLICY_BINPACK,
     .doc = "binpack fills partly used nodes first; spread prefers the emptiest nodes"},
    {.path = "scoring.weights", .type = SCHEMA_MAP, .doc = "the weights of the partial scores"},
    {.path = "scoring.weights.freeGPUs", .type = SCHEMA_INT, AT(TOP, weight_free_gpus), .min = 0,
     .max = POLICY_MAX_WEIGHT, .def = 1, .doc = "weight of the free-GPU score"},
    {.path = "scoring.weights.model", .type = SCHEMA_INT, AT(TOP, weight_model), .min = 0,
     .max = POLICY_MAX_WEIGHT, .def = 4, .doc = "weight of the GPU-model preference score"},
    {.path = "scoring.weights.topology", .type = SCHEMA_INT, AT(TOP, weight_topology), .min = 0,
     .max = POLICY_MAX_WEIGHT, .def = 2, .doc = "weight of the GPU interconnect score"},
    {.path = "podOverrides", .type = SCHEMA_MAP, .doc = "what pods may override by annotation"},
    {.path = "podOverrides.strategy", .type = SCHEMA_BOOL, AT(TOP, overrides.strategy), .def = 1,
     .doc = "a pod may pick binpack or spread with annotation gpu-extender.io/strategy"},
    {.path = "podOverrides.models", .type = SCHEMA_BOOL, AT(TOP, overrides.models), .def = 1,
     .doc = "a pod may narrow the allowed models with its model annotations"},
    {.path = "podOverrides.preferred", .type = SCHEMA_BOOL, AT(TOP, overrides.preferred),
     .def = 1, .doc = "a pod may replace the preferred models with an annotation"},
    {.path = "classes", .type = SCHEMA_LIST, AT(TOP, classes), COUNT(TOP, class_count),
     HAS(TOP, has_classes), .item_size = sizeof(CLS), .check_item = check_class_item,
     .max = POLICY_MAX_CLASSES, .noun = "classes", .doc = "named sets of GPU models"},
    {.path = "classes[].name", .type = SCHEMA_TEXT, .text = TEXT_NAME, AT(CLS, c.name),
     .flags = ROW_REQUIRED, .doc = "the name rules use for the class"},
    {.path = "classes[].products", .type = SCHEMA_STRLIST, .text = TEXT_PATTERN,
     AT(CLS, c.products), .max = POLICY_MAX_LIST,
     .doc = "nvidia.com/gpu.product values or * ? patterns"},
    {.path = "classes[].families", .type = SCHEMA_STRLIST, .text = TEXT_FAMILY,
     AT(CLS, c.families), .max = POLICY_MAX_LIST, .doc = "nvidia.com/gpu.family values"},
    {.path = "classes[].minMemoryMiB", .type = SCHEMA_INT, AT(CLS, c.min_memory_mib), .min = 1,
     .max = 10000000, .doc = "the least nvidia.com/gpu.memory, in MiB"},
    {.path = "rules", .type = SCHEMA_LIST, AT(TOP, rules), COUNT(TOP, rule_count),
     .item_size = sizeof(RUL), .check_item = check_rule_item, .max = POLICY_MAX_RULES,
     .noun = "rules", .doc = "rules tried in file order; the first that selects a pod applies"},
    {.path = "rules[].name", .type = SCHEMA_TEXT, .text = TEXT_NAME, AT(RUL, r.name),
     .flags = ROW_REQUIRED, .doc = "the rule's name, in messages and decisions"},
    {.path = "rules[].match", .type = SCHEMA_MAP,
     .doc = "which pods the rule selects: all selectors given must match"},
    {.path = "rules[].match.namespaces", .type = SCHEMA_STRLIST, .text = TEXT_NAMESPACE,
     AT(RUL, r.namespaces), HAS(RUL, r.has_namespaces), .max = POLICY_MAX_LIST,
     .flags = ROW_SELECTOR, .doc = "the pod's namespace is one of these"},
    {.path = "rules[].match.labels", .type = SCHEMA_LABELS, AT(RUL, r.labels),
     COUNT(RUL, r.label_count), HAS(RUL, has_labels), .max = POLICY_MAX_LIST,
     .doc = "the pod has every one of these labels"},
    {.path = "rules[].match.priorityClassNames", .type = SCHEMA_STRLIST,
     .text = TEXT_PRIORITY_CLASS, AT(RUL, r.priority_classes),
     HAS(RUL, r.has_priority_classes), .max = POLICY_MAX_LIST, .flags = ROW_SELECTOR,
     .doc = "the pod's priorityClassName is one of these"},
    RULE_ROWS("rules[]"),
    {.path = "default", .type = SCHEMA_MAP, AT(TOP, default_rule),
     .doc = "the rule for pods no rule selects"},
    RULE_ROWS("default"),
};

/* clang-format on */

#define SCHEMA_ROWS GX_ARRAY_LEN(schema)
#define WEIGHTS_SECTION "scoring.weights"

/* ---- strings: what each kind of name looks like ---- */

#define NAME_RULE "use 1-63 characters a-z, 0-9 or '-', starting and ending with a letter or digit"
#define LABEL_RULE                                                                                 \
    "1-63 characters A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit"

static const char *check_name(struct str s)
{
    return k8s_is_dns_label(s) ? NULL : NAME_RULE;
}

static const char *check_priority_class(struct str s)
{
    return k8s_is_dns_subdomain(s) ? NULL
                                   : "use up to 253 characters a-z, 0-9, '-' or '.', starting and "
                                     "ending with a letter or digit";
}

/* A pattern is tried against label values, so any other character could never match. */
static const char *check_pattern(struct str s)
{
    size_t literal = 0;

    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!k8s_is_label_char(c) && c != '*' && c != '?')
            return "a product label has only A-Z, a-z, 0-9, '-', '_' and '.' (and * ? here)";
        literal += c != '*';
    }
    if (literal > K8S_LABEL_VALUE_MAX)
        return "it can never match: a product label has at most 63 characters";
    return NULL;
}

static const char *check_family(struct str s)
{
    return k8s_is_label_name(s) ? NULL : "use " LABEL_RULE;
}

struct text_kind {
    const char *one;                    /* for "expected a class name" */
    const char *many;                   /* for "expected a list of class names" */
    const char *what;                   /* for "invalid class name "x"" */
    const char *(*check)(struct str s); /* NULL when s is fine, else what a valid one is like */
    bool caseless;                      /* duplicates ignore ASCII case */
};

static const struct text_kind text_kinds[] = {
    [TEXT_NONE] = {"a string", "strings", "string", NULL, false},
    [TEXT_NAME] = {"a name", "names", "name", check_name, false},
    [TEXT_NAMESPACE] = {"a namespace", "namespaces", "namespace", check_name, false},
    [TEXT_PRIORITY_CLASS] = {"a priority class name", "priority class names", "priority class name",
                             check_priority_class, false},
    [TEXT_PATTERN] = {"a product name or pattern", "product names or patterns", "pattern",
                      check_pattern, true},
    [TEXT_FAMILY] = {"a GPU family", "GPU families", "family", check_family, true},
    [TEXT_CLASS] = {"a class name", "class names", "class name", NULL, false},
};

/* ---- messages ---- */

static void report(struct checker *k, const struct ydoc_node *at, const char *path, const char *fmt,
                   ...) GX_PRINTF(4, 5);

static void report(struct checker *k, const struct ydoc_node *at, const char *path, const char *fmt,
                   ...)
{
    size_t size = sizeof(k->diag->msgs[0]);
    va_list ap;
    char *slot;
    int n;

    k->errors++;
    if (!k->diag || k->diag->count >= POLICY_MAX_ERRORS)
        return;
    slot = k->diag->msgs[k->diag->count++];
    n = snprintf(slot, size, "%.*s:%zu:%zu: %s%s", MSG_NAME_CHARS, k->name, at ? at->line : 1,
                 at ? at->col : 1, path, path[0] ? ": " : "");
    if (n < 0 || (size_t)n >= size)
        return;
    va_start(ap, fmt);
    vsnprintf(slot + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool is_full(const struct checker *k)
{
    return k->errors >= POLICY_MAX_ERRORS;
}

static void add_message(struct policy_diag *diag, const char *msg)
{
    if (diag && diag->count < POLICY_MAX_ERRORS)
        snprintf(diag->msgs[diag->count++], sizeof(diag->msgs[0]), "%s", msg);
}

static void snippet(struct str s, char out[SNIPPET_CHARS])
{
    ydoc_snippet(s.ptr, s.len, out, SNIPPET_CHARS);
}

static struct str node_str(const struct ydoc_node *n)
{
    return (struct str){n->text, n->len};
}

/* ---- memory ---- */

static void *alloc_array(struct checker *k, struct arena *a, size_t count, size_t size)
{
    void *p = NULL;

    if (count > 0 && size <= SIZE_MAX / count)
        p = arena_zalloc(a, count * size);
    if (!p)
        k->too_large = true;
    return p;
}

static bool copy_str(struct checker *k, const struct ydoc_node *v, struct str *out)
{
    char *s = arena_strndup(k->keep, v->text, v->len);

    if (!s) {
        k->too_large = true;
        return false;
    }
    *out = (struct str){s, v->len};
    return true;
}

/* ---- storing values into the current object ---- */

static void set_has(unsigned char *base, const struct schema_row *r)
{
    bool yes = true;

    if (r->has_offset)
        memcpy(base + r->has_offset, &yes, sizeof(yes));
}

static void store(unsigned char *base, const struct schema_row *r, int64_t v)
{
    unsigned char *dst = base + r->offset;
    int32_t v32 = (int32_t)v;
    bool b = v != 0;

    if (r->offset == 0)
        return;
    if (r->type == SCHEMA_BOOL)
        memcpy(dst, &b, sizeof(b));
    else if (r->size == sizeof(v32))
        memcpy(dst, &v32, sizeof(v32));
    else
        memcpy(dst, &v, sizeof(v));
}

static int64_t load_int(const unsigned char *base, const struct schema_row *r)
{
    int64_t v;

    assert(r->type == SCHEMA_INT && r->size == sizeof(v));
    memcpy(&v, base + r->offset, sizeof(v));
    return v;
}

/* An array and its count, for LABELS and LIST rows. */
static void store_array(unsigned char *base, const struct schema_row *r, void *items, size_t n)
{
    assert(r->size == sizeof(items));
    memcpy(base + r->offset, &items, sizeof(items));
    memcpy(base + r->count_offset, &n, sizeof(n));
    set_has(base, r);
}

/* ---- the table ---- */

/* Is r directly below prefix ("" is the top level)? *seg is then its last path segment. */
static bool row_is_child(const struct schema_row *r, const char *prefix, const char **seg)
{
    size_t n = strlen(prefix);
    const char *rest = r->path;

    if (n > 0) {
        if (strncmp(r->path, prefix, n) != 0 || r->path[n] != '.')
            return false;
        rest = r->path + n + 1;
    }
    if (strchr(rest, '.'))
        return false;
    if (seg)
        *seg = rest;
    return true;
}

static const struct schema_row *find_row(const char *path)
{
    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (strcmp(schema[i].path, path) == 0)
            return &schema[i];
    }
    return NULL;
}

/* Lists the keys allowed directly under prefix, for "unknown key" messages. */
static void list_children(const char *prefix, char *out, size_t out_size)
{
    size_t used = 0;
    const char *seg;

    out[0] = '\0';
    for (size_t i = 0; i < SCHEMA_ROWS && used < out_size; i++) {
        int n;

        if (!row_is_child(&schema[i], prefix, &seg))
            continue;
        n = snprintf(out + used, out_size - used, "%s%s", used ? ", " : "", seg);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Stores the defaults of the rows in one object: the scalars below prefix, through sections
 * but not into lists, whose items are objects of their own. */
static void apply_defaults(const char *prefix, unsigned char *base)
{
    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        const struct schema_row *r = &schema[i];

        if (!row_is_child(r, prefix, NULL))
            continue;
        if (r->type == SCHEMA_MAP)
            apply_defaults(r->path, base + r->offset);
        else if ((r->type == SCHEMA_INT || r->type == SCHEMA_BOOL || r->type == SCHEMA_ENUM) &&
                 !(r->flags & ROW_INHERIT))
            store(base, r, r->def);
    }
}

/* Formats a key path into out (PATH_MAX_CHARS). A path cut short only shortens a message. */
static void pathf(char *out, const char *fmt, ...) GX_PRINTF(2, 3);

static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX_CHARS, fmt, ap);
    va_end(ap);
}

static void join(char *out, const char *prefix, const char *seg)
{
    pathf(out, "%s%s%s", prefix, prefix[0] ? "." : "", seg);
}

/* Builds prefix.key into path. A key holding '.', '[', ']' or NUL, or one too long, cannot name
 * anything in the table, so it yields false and the caller reports it as unknown. */
static bool make_path(const char *prefix, const struct ydoc_node *key, char *path)
{
    if (strcspn(key->text, ".[]") != key->len)
        return false;
    if (strlen(prefix) + 1 + key->len >= PATH_MAX_CHARS)
        return false;
    join(path, prefix, key->text);
    return true;
}

/* Renders the spellings of an enum as "a or b" / "a, b or c". */
static void list_names(const char *const *names, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; names[i] && used < out_size; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
        int n = snprintf(out + used, out_size - used, "%s%s", sep, names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

static void describe_expected(const struct schema_row *r, char *out, size_t out_size)
{
    switch (r->type) {
    case SCHEMA_INT:
        snprintf(out, out_size, "an integer %" PRId64 "..%" PRId64, r->min, r->max);
        break;
    case SCHEMA_BOOL:
        snprintf(out, out_size, "true or false");
        break;
    case SCHEMA_CONST:
    case SCHEMA_ENUM:
        list_names(r->names, out, out_size);
        break;
    case SCHEMA_TEXT:
        snprintf(out, out_size, "%s", text_kinds[r->text].one);
        break;
    case SCHEMA_STRLIST:
        snprintf(out, out_size, "a list of %s", text_kinds[r->text].many);
        break;
    case SCHEMA_LABELS:
        snprintf(out, out_size, "a mapping of label keys to values");
        break;
    case SCHEMA_MAP:
        snprintf(out, out_size, "a mapping");
        break;
    case SCHEMA_LIST:
        snprintf(out, out_size, "a list of %s", r->noun);
        break;
    }
}

static void report_type(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                        const char *path)
{
    char want[160];
    char snip[SNIPPET_CHARS];

    describe_expected(r, want, sizeof(want));
    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report(k, v, path, "expected %s, got %s", want, ydoc_kind_name(v));
        return;
    }
    snippet(node_str(v), snip);
    if (r->type == SCHEMA_STRLIST)
        report(k, v, path, "expected %s, got \"%s\"; write [%s] for a list of one", want, snip,
               snip);
    else
        report(k, v, path, "expected %s, got %s\"%s\"", want, v->plain ? "" : "quoted ", snip);
}

/* ---- scalars ---- */

static bool decode_int(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                       const char *path, int64_t *out)
{
    char snip[SNIPPET_CHARS];
    enum err e;

    if (!v->plain) {
        report_type(k, r, v, path);
        return false;
    }
    e = str_to_i64(node_str(v), INT64_MIN, INT64_MAX, out);
    if (e == ERR_PARSE) {
        report_type(k, r, v, path);
        return false;
    }
    if (e != ERR_OK || *out < r->min || *out > r->max) {
        snippet(node_str(v), snip);
        report(k, v, path, "must be %" PRId64 "..%" PRId64 ", got %s", r->min, r->max, snip);
        return false;
    }
    return true;
}

/* Looks v up among names (exact, case-sensitive); *out is the index. */
static bool match_name(const char *const *names, const struct ydoc_node *v, int64_t *out)
{
    for (int64_t i = 0; names[i]; i++) {
        if (strlen(names[i]) == v->len && memcmp(names[i], v->text, v->len) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* YAML 1.1 would also read yes/no/on/off as booleans; we take only true and false so that
 * nobody has to know which YAML version a reader follows. */
static bool decode_bool(const struct ydoc_node *v, int64_t *out)
{
    static const char *const bools[] = {"false", "true", NULL};

    return v->plain && match_name(bools, v, out);
}

static void check_scalar(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                         const char *path, unsigned char *base)
{
    int64_t x = 0;
    bool ok;

    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report_type(k, r, v, path);
        return;
    }
    if (r->type == SCHEMA_INT)
        ok = decode_int(k, r, v, path, &x); /* reports by itself: not a number, or out of range */
    else if (r->type == SCHEMA_BOOL)
        ok = decode_bool(v, &x);
    else
        ok = match_name(r->names, v, &x);
    if (!ok && r->type != SCHEMA_INT)
        report_type(k, r, v, path);
    if (!ok)
        return;
    store(base, r, x);
    set_has(base, r);
}

/* A string of the given kind: reports and returns false when it is not one. */
static bool check_text(struct checker *k, enum schema_text t, const struct ydoc_node *v,
                       const char *path)
{
    const struct text_kind *tk = &text_kinds[t];
    char snip[SNIPPET_CHARS];
    const char *why;

    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report(k, v, path, "expected %s, got %s", tk->one, ydoc_kind_name(v));
        return false;
    }
    if (v->len == 0) {
        report(k, v, path, "empty; expected %s", tk->one);
        return false;
    }
    why = tk->check ? tk->check(node_str(v)) : NULL;
    if (why) {
        snippet(node_str(v), snip);
        report(k, v, path, "invalid %s \"%s\": %s", tk->what, snip, why);
        return false;
    }
    return true;
}

static void check_text_row(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                           const char *path, unsigned char *base)
{
    struct str s;

    if (!check_text(k, r->text, v, path) || !copy_str(k, v, &s))
        return;
    assert(r->size == sizeof(s));
    memcpy(base + r->offset, &s, sizeof(s));
    set_has(base, r);
}

/* ---- lists and maps of strings ---- */

/* The last segment of a path, for "first at allow[0]". */
static const char *last_segment(const char *path)
{
    const char *dot = strrchr(path, '.');

    return dot ? dot + 1 : path;
}

/* Reports an empty list or one past max; returns false for either. */
static bool check_count(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                        const char *path)
{
    if (v->count == 0 && (r->flags & ROW_SELECTOR)) {
        report(k, v, path, "empty, so the rule can never match; remove the key instead");
        return false;
    }
    if (v->count == 0) {
        report(k, v, path, "empty; remove the key or give at least one entry");
        return false;
    }
    if (v->count > (size_t)r->max) {
        report(k, v, path, "%zu entries; at most %" PRId64 " are allowed", v->count, r->max);
        return false;
    }
    return true;
}

/* Is item a repeat of an earlier one? *first is then the earlier one's index. */
static bool is_repeat(const struct ydoc_node *list, const struct ydoc_node *item, bool caseless,
                      size_t *first)
{
    size_t i = 0;

    for (const struct ydoc_node *o = list->child; o && o != item; o = o->next, i++) {
        if (o->kind != YDOC_SCALAR || ydoc_is_null(o))
            continue;
        if (caseless ? str_ieq(node_str(o), node_str(item)) : str_eq(node_str(o), node_str(item))) {
            *first = i;
            return true;
        }
    }
    return false;
}

static void check_strlist(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                          const char *path, unsigned char *base)
{
    const struct text_kind *tk = &text_kinds[r->text];
    char ipath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];
    size_t before = k->errors, i = 0, first;
    struct policy_strlist list;
    struct str *items;

    if (v->kind != YDOC_SEQUENCE) {
        report_type(k, r, v, path);
        return;
    }
    if (!check_count(k, r, v, path) || !(items = alloc_array(k, k->keep, v->count, sizeof(*items))))
        return;
    for (const struct ydoc_node *c = v->child; c && !is_full(k); c = c->next, i++) {
        pathf(ipath, "%s[%zu]", path, i);
        if (!check_text(k, r->text, c, ipath))
            continue;
        if (is_repeat(v, c, tk->caseless, &first)) {
            snippet(node_str(c), snip);
            report(k, c, ipath, "duplicate entry \"%s\" (first at %s[%zu])", snip,
                   last_segment(path), first);
        } else {
            copy_str(k, c, &items[i]);
        }
    }
    if (k->errors != before || k->too_large)
        return;
    list = (struct policy_strlist){v->count, items};
    assert(r->size == sizeof(list));
    memcpy(base + r->offset, &list, sizeof(list));
    set_has(base, r);
}

static bool check_label(struct checker *k, const struct ydoc_node *key, const char *path)
{
    const struct ydoc_node *v = key->value;
    char snip[SNIPPET_CHARS];

    if (!k8s_is_label_key(node_str(key))) {
        report(k, key, path,
               "invalid label key: use name or prefix/name, the prefix a DNS "
               "subdomain and the name " LABEL_RULE);
        return false;
    }
    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report(k, v, path, "expected a label value, got %s; write \"\" for an empty value",
               ydoc_kind_name(v));
        return false;
    }
    if (!k8s_is_label_value(node_str(v))) {
        snippet(node_str(v), snip);
        report(k, v, path, "invalid label value \"%s\": use \"\" or " LABEL_RULE, snip);
        return false;
    }
    return true;
}

/* Only keys before this one count, so the second occurrence is the one reported. */
static bool is_duplicate(const struct ydoc_node *map, const struct ydoc_node *key)
{
    for (const struct ydoc_node *k = map->child; k && k != key; k = k->next) {
        if (str_eq(node_str(k), node_str(key)))
            return true;
    }
    return false;
}

static void check_labels(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                         const char *path, unsigned char *base)
{
    char lpath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];
    size_t before = k->errors, i = 0;
    struct policy_label *labels;

    if (v->kind != YDOC_MAPPING) {
        report_type(k, r, v, path);
        return;
    }
    if (!check_count(k, r, v, path) ||
        !(labels = alloc_array(k, k->keep, v->count, sizeof(*labels))))
        return;
    for (const struct ydoc_node *key = v->child; key && !is_full(k); key = key->next, i++) {
        snippet(node_str(key), snip);
        join(lpath, path, snip);
        if (is_duplicate(v, key))
            report(k, key, lpath, "duplicate key");
        else if (check_label(k, key, lpath) && copy_str(k, key, &labels[i].key))
            copy_str(k, key->value, &labels[i].value);
    }
    if (k->errors == before && !k->too_large)
        store_array(base, r, labels, v->count);
}

/* ---- mappings and lists of mappings ---- */

static void walk_map(struct checker *k, const struct ydoc_node *map, const char *spath,
                     const char *mpath, unsigned char *base);

/* Walks one object: the mapping v, whose rows are below spath, into base. */
static void walk_object(struct checker *k, const struct ydoc_node *v, const char *spath,
                        const char *mpath, unsigned char *base)
{
    struct item_head *h = (struct item_head *)(void *)base;
    size_t before = k->errors;

    h->node = v;
    walk_map(k, v, spath, mpath, base);
    h->bad = k->errors != before;
}

static void check_map(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                      const char *path, unsigned char *base)
{
    if (v->kind != YDOC_MAPPING)
        report_type(k, r, v, path);
    else if (r->offset)
        walk_object(k, v, r->path, path, base + r->offset);
    else
        walk_map(k, v, r->path, path, base);
}

static void check_list(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                       const char *path, unsigned char *base)
{
    char spath[PATH_MAX_CHARS], ipath[PATH_MAX_CHARS];
    unsigned char *items;
    size_t i = 0;

    if (v->kind != YDOC_SEQUENCE) {
        report_type(k, r, v, path);
        return;
    }
    if (!check_count(k, r, v, path) ||
        !(items = alloc_array(k, &k->scratch, v->count, r->item_size)))
        return;
    store_array(base, r, items, v->count);
    pathf(spath, "%s[]", r->path);
    for (const struct ydoc_node *c = v->child; c && !is_full(k); c = c->next, i++) {
        unsigned char *item = items + i * r->item_size;

        pathf(ipath, "%s[%zu]", path, i);
        if (c->kind != YDOC_MAPPING) {
            report(k, c, ipath, "expected a mapping, got %s", ydoc_kind_name(c));
            continue;
        }
        apply_defaults(spath, item);
        walk_object(k, c, spath, ipath, item);
        if (r->check_item)
            r->check_item(k, items, i, ipath);
    }
}

static void walk_value(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                       const char *path, unsigned char *base)
{
    switch (r->type) {
    case SCHEMA_CONST:
    case SCHEMA_INT:
    case SCHEMA_BOOL:
    case SCHEMA_ENUM:
        check_scalar(k, r, v, path, base);
        break;
    case SCHEMA_TEXT:
        check_text_row(k, r, v, path, base);
        break;
    case SCHEMA_STRLIST:
        check_strlist(k, r, v, path, base);
        break;
    case SCHEMA_LABELS:
        check_labels(k, r, v, path, base);
        break;
    case SCHEMA_MAP:
        check_map(k, r, v, path, base);
        break;
    case SCHEMA_LIST:
        check_list(k, r, v, path, base);
        break;
    }
}

static void report_unknown(struct checker *k, const struct ydoc_node *key, const char *spath,
                           const char *mpath)
{
    char snip[SNIPPET_CHARS];
    char known[160];
    char path[PATH_MAX_CHARS];

    snippet(node_str(key), snip);
    join(path, mpath, snip);
    list_children(spath, known, sizeof(known));
    report(k, key, path, "unknown key (known keys here: %s)", known);
}

static void walk_key(struct checker *k, const struct ydoc_node *map, const struct ydoc_node *key,
                     const char *spath, const char *mpath, unsigned char *base)
{
    char sp[PATH_MAX_CHARS], mp[PATH_MAX_CHARS];
    const struct schema_row *r = NULL;

    if (make_path(spath, key, sp))
        r = find_row(sp);
    if (!r) {
        report_unknown(k, key, spath, mpath);
        return;
    }
    join(mp, mpath, key->text);
    if (is_duplicate(map, key))
        report(k, key, mp, "duplicate key");
    else
        walk_value(k, r, key->value, mp, base);
}

static void check_required(struct checker *k, const struct ydoc_node *map, const char *spath,
                           const char *mpath)
{
    char path[PATH_MAX_CHARS];
    const char *seg;

    for (size_t i = 0; i < SCHEMA_ROWS && !is_full(k); i++) {
        if (!(schema[i].flags & ROW_REQUIRED) || !row_is_child(&schema[i], spath, &seg))
            continue;
        if (ydoc_map_find(map, seg, NULL))
            continue;
        join(path, mpath, seg);
        report(k, map, path, "required key is missing");
    }
}

/* Recursion follows the table's sections, so it is as deep as the deepest key, not the input. */
static void walk_map(struct checker *k, const struct ydoc_node *map, const char *spath,
                     const char *mpath, unsigned char *base)
{
    for (const struct ydoc_node *key = map->child; key && !is_full(k); key = key->next)
        walk_key(k, map, key, spath, mpath, base);
    check_required(k, map, spath, mpath);
}

/* ---- checks on one class or rule, once it is read ---- */

static size_t key_line(const struct ydoc_node *map, const char *key)
{
    const struct ydoc_node *v = ydoc_map_find(map, key, NULL);

    return v ? v->line : map->line;
}

static void check_class_item(struct checker *k, void *items, size_t i, const char *path)
{
    struct class_build *cls = items, *c = &cls[i];
    const struct ydoc_node *name = ydoc_map_find(c->h.node, "name", NULL);
    char npath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];

    if (name && name->kind == YDOC_SCALAR)
        c->raw_name = node_str(name);
    /* With an error in the item (a misspelt criterion, say), this would only repeat it. */
    if (!c->h.bad && !ydoc_map_find(c->h.node, "products", NULL) &&
        !ydoc_map_find(c->h.node, "families", NULL) &&
        !ydoc_map_find(c->h.node, "minMemoryMiB", NULL))
        report(k, c->h.node, path,
               "matches no node: give at least one of products, families or minMemoryMiB");
    if (c->c.name.len == 0)
        return;
    for (size_t j = 0; j < i; j++) {
        if (!str_eq(cls[j].c.name, c->c.name))
            continue;
        join(npath, path, "name");
        snippet(c->c.name, snip);
        report(k, name, npath, "duplicate class name \"%s\" (first at line %zu)", snip,
               key_line(cls[j].h.node, "name"));
        return;
    }
}

static void check_rule_name(struct checker *k, struct rule_build *rules, size_t i, const char *path)
{
    struct rule_build *b = &rules[i];
    const struct ydoc_node *name = ydoc_map_find(b->h.node, "name", NULL);
    char npath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];

    if (b->r.name.len == 0)
        return;
    join(npath, path, "name");
    snippet(b->r.name, snip);
    if (str_eq_cstr(b->r.name, POLICY_DEFAULT_RULE_NAME)) {
        report(k, name, npath, "\"%s\" is reserved; write the default rule under the key default",
               snip);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        if (str_eq(rules[j].r.name, b->r.name)) {
            report(k, name, npath, "duplicate rule name \"%s\" (first at line %zu)", snip,
                   key_line(rules[j].h.node, "name"));
            return;
        }
    }
}

/* A rule with no selector would take every pod, and every rule after it would be dead. */
static void check_rule_match(struct checker *k, struct rule_build *b, const char *path)
{
    const struct ydoc_node *m = ydoc_map_find(b->h.node, "match", NULL);
    char mpath[PATH_MAX_CHARS];
    size_t given;

    if (!m) {
        report(k, b->h.node, path, "no match, so the rule matches every pod; put it under default");
        return;
    }
    if (m->kind != YDOC_MAPPING)
        return; /* reported by the walk */
    if (m->count == 0) {
        join(mpath, path, "match");
        report(k, m, mpath, "empty, so the rule matches every pod; put it under default");
        return;
    }
    given = (size_t)b->r.has_namespaces + (size_t)b->r.has_priority_classes + (size_t)b->has_labels;
    b->selectors_ok = given == m->count;
}

/* Is every item of sub also in super? Lists are short (POLICY_MAX_LIST). */
static bool is_subset(const struct policy_strlist *sub, const struct policy_strlist *super)
{
    for (size_t i = 0; i < sub->count; i++) {
        size_t j = 0;

        while (j < super->count && !str_eq(sub->items[i], super->items[j]))
            j++;
        if (j == super->count)
            return false;
    }
    return true;
}

static bool has_label(const struct policy_rule *r, const struct policy_label *l)
{
    for (size_t i = 0; i < r->label_count; i++) {
        if (str_eq(r->labels[i].key, l->key) && str_eq(r->labels[i].value, l->value))
            return true;
    }
    return false;
}

/* Does a select every pod that b selects? Each selector a gives must be at least as broad. */
static bool selects_all_of(const struct policy_rule *a, const struct policy_rule *b)
{
    if (a->has_namespaces && !(b->has_namespaces && is_subset(&b->namespaces, &a->namespaces)))
        return false;
    if (a->has_priority_classes &&
        !(b->has_priority_classes && is_subset(&b->priority_classes, &a->priority_classes)))
        return false;
    for (size_t i = 0; i < a->label_count; i++) {
        if (!has_label(b, &a->labels[i]))
            return false;
    }
    return true;
}

static void check_shadowed(struct checker *k, const struct rule_build *rules, size_t i,
                           const char *path)
{
    char snip[SNIPPET_CHARS];

    for (size_t j = 0; j < i; j++) {
        const struct rule_build *a = &rules[j];

        if (!a->selectors_ok || a->r.name.len == 0 || !selects_all_of(&a->r, &rules[i].r))
            continue;
        snippet(a->r.name, snip);
        report(k, rules[i].h.node, path,
               "can never match: rule \"%s\" (line %zu) selects every pod this one does", snip,
               a->h.node->line);
        return;
    }
}

static void check_rule_item(struct checker *k, void *items, size_t i, const char *path)
{
    struct rule_build *rules = items;

    check_rule_name(k, rules, i, path);
    check_rule_match(k, &rules[i], path);
    if (rules[i].selectors_ok)
        check_shadowed(k, rules, i, path);
}

/* ---- class references, once every class is known ---- */

static bool is_named_before(const struct top_build *t, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (str_eq(t->classes[j].c.name, t->classes[i].c.name))
            return true;
    }
    return false;
}

/* "h100, a100-80gb, t4", cut short with "..." */
static void list_classes(const struct top_build *t, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < t->class_count; i++) {
        const struct str *n = &t->classes[i].c.name;
        int w;

        if (n->len == 0 || is_named_before(t, i))
            continue;
        if (used + n->len + 2 > CLASS_LIST_CHARS) {
            snprintf(out + used, out_size - used, ", ...");
            return;
        }
        w = snprintf(out + used, out_size - used, "%s%.*s", used ? ", " : "", (int)n->len, n->ptr);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* The index of the class called name, or -1 after reporting it as undefined. A name that only
 * a class with an error of its own carries is not reported again. */
static long lookup_class(struct checker *k, struct str name, const struct ydoc_node *at,
                         const char *path)
{
    const struct top_build *t = k->top;
    char snip[SNIPPET_CHARS], known[CLASS_LIST_CHARS + 8];

    for (size_t i = 0; i < t->class_count; i++) {
        if (t->classes[i].c.name.len && str_eq(t->classes[i].c.name, name))
            return (long)i;
    }
    for (size_t i = 0; i < t->class_count; i++) {
        if (t->classes[i].h.bad && str_eq(t->classes[i].raw_name, name))
            return -1;
    }
    /* classes itself is broken: every name would be reported. */
    if (ydoc_map_find(k->root, "classes", NULL) && !t->has_classes)
        return -1;
    snippet(name, snip);
    list_classes(t, known, sizeof(known));
    if (known[0])
        report(k, at, path, "undefined class \"%s\" (defined classes: %s)", snip, known);
    else
        report(k, at, path, "undefined class \"%s\" (no classes are defined)", snip);
    return -1;
}

/* Resolves the names in allow or forbid into indices; false when one is undefined. */
static bool resolve_names(struct checker *k, const struct rule_build *b, const char *key,
                          const char *path, const struct policy_strlist *names, size_t *count,
                          const uint32_t **out)
{
    const struct ydoc_node *seq = ydoc_map_find(b->h.node, key, NULL);
    const struct ydoc_node *item = seq ? seq->child : NULL;
    char ipath[PATH_MAX_CHARS];
    uint32_t *idx;
    bool ok = true;

    if (names->count == 0)
        return true;
    if (!(idx = alloc_array(k, k->keep, names->count, sizeof(*idx))))
        return false;
    for (size_t i = 0; i < names->count; i++, item = item ? item->next : NULL) {
        long c;

        pathf(ipath, "%s.%s[%zu]", path, key, i);
        c = lookup_class(k, names->items[i], item ? item : seq, ipath);
        ok = ok && c >= 0;
        idx[i] = c >= 0 ? (uint32_t)c : 0;
    }
    *out = idx;
    *count = names->count;
    return ok;
}

static bool index_in(const uint32_t *list, size_t n, uint32_t c)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == c)
            return true;
    }
    return false;
}

/* Checks one preference against the ones before it and against allow and forbid. */
static void check_pref(struct checker *k, const struct policy_rule *r, const long *idx, size_t j,
                       bool lists_ok, const struct ydoc_node *at, const char *path)
{
    const struct str *name = &k->top->classes[idx[j]].c.name;
    uint32_t c = (uint32_t)idx[j];
    char snip[SNIPPET_CHARS];

    snippet(*name, snip);
    for (size_t i = 0; i < j; i++) {
        if (idx[i] == idx[j]) {
            report(k, at, path, "duplicate class \"%s\" (first at prefer[%zu])", snip, i);
            return;
        }
    }
    if (!lists_ok)
        return;
    if (index_in(r->forbid, r->forbid_count, c))
        report(k, at, path, "can never apply: class \"%s\" is in forbid", snip);
    else if (r->has_allow && !index_in(r->allow, r->allow_count, c))
        report(k, at, path, "can never apply: class \"%s\" is not in allow", snip);
}

/* With no weight given, the i-th of n preferences weighs round(100 * (n - i) / n). */
static int64_t default_weight(size_t i, size_t n)
{
    return (int64_t)((200 * (n - i) + n) / (2 * n));
}

static void resolve_prefs(struct checker *k, struct rule_build *b, const char *path, bool lists_ok)
{
    long idx[POLICY_MAX_LIST];
    char cpath[PATH_MAX_CHARS];
    struct policy_pref *out;

    if (b->pref_count == 0 || !(out = alloc_array(k, k->keep, b->pref_count, sizeof(*out))))
        return;
    for (size_t j = 0; j < b->pref_count && !is_full(k); j++) {
        const struct pref_build *p = &b->prefs[j];
        const struct ydoc_node *at = p->h.node ? ydoc_map_find(p->h.node, "class", NULL) : NULL;

        idx[j] = -1;
        if (p->class_name.len == 0)
            continue; /* missing or invalid: reported by the walk */
        pathf(cpath, "%s.prefer[%zu].class", path, j);
        idx[j] = lookup_class(k, p->class_name, at, cpath);
        if (idx[j] < 0)
            continue;
        check_pref(k, &b->r, idx, j, lists_ok, at, cpath);
        out[j].class_index = (uint32_t)idx[j];
        out[j].weight = p->has_weight ? p->weight : default_weight(j, b->pref_count);
    }
    b->r.prefer = out;
    b->r.prefer_count = b->pref_count;
}

static bool allows_nothing(const struct policy_rule *r)
{
    for (size_t i = 0; i < r->allow_count; i++) {
        if (!index_in(r->forbid, r->forbid_count, r->allow[i]))
            return false;
    }
    return true;
}

static void resolve_rule(struct checker *k, struct rule_build *b, const char *path)
{
    struct policy_rule *r = &b->r;
    char apath[PATH_MAX_CHARS];
    bool allow_ok, forbid_ok;

    allow_ok = resolve_names(k, b, "allow", path, &b->allow, &r->allow_count, &r->allow);
    forbid_ok = resolve_names(k, b, "forbid", path, &b->forbid, &r->forbid_count, &r->forbid);
    if (r->has_allow && allow_ok && forbid_ok && allows_nothing(r)) {
        join(apath, path, "allow");
        report(k, ydoc_map_find(b->h.node, "allow", NULL), apath,
               "allows nothing: every class in it is also in forbid");
    }
    resolve_prefs(k, b, path, allow_ok && forbid_ok);
}

static void resolve_rules(struct checker *k)
{
    struct top_build *t = k->top;
    char path[PATH_MAX_CHARS];

    for (size_t i = 0; i < t->rule_count && !is_full(k); i++) {
        if (!t->rules[i].h.node)
            continue; /* not a mapping: reported by the walk */
        pathf(path, "rules[%zu]", i);
        resolve_rule(k, &t->rules[i], path);
    }
    if (t->default_rule.h.node && !is_full(k))
        resolve_rule(k, &t->default_rule, "default");
}

/* ---- the document ---- */

/* Follows a dotted path of mapping keys from root; NULL when any step is missing. */
static const struct ydoc_node *node_at(const struct ydoc_node *root, const char *path)
{
    struct str rest = str_from_cstr(path), seg;
    char key[PATH_MAX_CHARS];
    const struct ydoc_node *n = root;

    while (n && str_split(&rest, '.', &seg)) {
        snprintf(key, sizeof(key), "%.*s", (int)seg.len, seg.ptr);
        n = ydoc_map_find(n, key, NULL);
    }
    return n;
}

/* With every weight at 0 all nodes score the same, which is never what anyone meant. */
static void check_weights(struct checker *k, const struct ydoc_node *root)
{
    int64_t sum = 0;

    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (schema[i].type == SCHEMA_INT && row_is_child(&schema[i], WEIGHTS_SECTION, NULL))
            sum += load_int((const unsigned char *)k->top, &schema[i]);
    }
    if (sum == 0)
        report(k, node_at(root, WEIGHTS_SECTION), WEIGHTS_SECTION,
               "every weight is 0, so all nodes would score the same; set at least one above 0");
}

static void check_document(struct checker *k, const struct ydoc_node *root)
{
    if (!root || ydoc_is_null(root)) {
        report(k, root, "", "the policy is empty; it needs at least apiVersion and kind");
        return;
    }
    if (root->kind != YDOC_MAPPING) {
        report(k, root, "", "expected a mapping at the top level, got %s", ydoc_kind_name(root));
        return;
    }
    k->root = root;
    walk_object(k, root, "", "", (unsigned char *)k->top);
    if (!is_full(k))
        check_weights(k, root);
    if (!is_full(k))
        resolve_rules(k);
}

/* ---- building the policy ---- */

static struct policy *policy_alloc(void)
{
    struct policy *p = xcalloc(1, sizeof(*p));

    atomic_init(&p->refs, 1);
    arena_init(&p->arena, POLICY_ARENA_BYTES);
    return p;
}

/* A rule's own settings, or the top-level ones where it gives none. */
static void finish_rule(const struct top_build *t, const struct rule_build *b,
                        struct policy_rule *out)
{
    *out = b->r;
    if (!b->has_strategy)
        out->strategy = t->strategy;
    if (!b->has_overrides.strategy)
        out->overrides.strategy = t->overrides.strategy;
    if (!b->has_overrides.models)
        out->overrides.models = t->overrides.models;
    if (!b->has_overrides.preferred)
        out->overrides.preferred = t->overrides.preferred;
    out->line = b->h.node ? b->h.node->line : 0;
}

static void finish(struct checker *k, struct policy *p)
{
    const struct top_build *t = k->top;
    struct policy_class *classes = NULL;
    struct policy_rule *rules = NULL;

    p->strategy = t->strategy;
    p->weight_free_gpus = t->weight_free_gpus;
    p->weight_model = t->weight_model;
    p->weight_topology = t->weight_topology;
    p->overrides = t->overrides;
    if (t->class_count && (classes = alloc_array(k, k->keep, t->class_count, sizeof(*classes)))) {
        for (size_t i = 0; i < t->class_count; i++) {
            classes[i] = t->classes[i].c;
            classes[i].line = t->classes[i].h.node->line;
        }
    }
    if (t->rule_count && (rules = alloc_array(k, k->keep, t->rule_count, sizeof(*rules)))) {
        for (size_t i = 0; i < t->rule_count; i++)
            finish_rule(t, &t->rules[i], &rules[i]);
    }
    p->classes = classes;
    p->class_count = classes ? t->class_count : 0;
    p->rules = rules;
    p->rule_count = rules ? t->rule_count : 0;
    finish_rule(t, &t->default_rule, &p->default_rule);
    p->default_rule.name = STR_LIT(POLICY_DEFAULT_RULE_NAME);
}

/* FNV-1a, 64 bits: cheap, and good enough to tell two policy files apart in logs. */
static void hash_text(const char *text, size_t len, char out[17])
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= UINT64_C(0x100000001b3);
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* Turns the outcome of the checks into the result: the policy, or why not. */
static enum err conclude(struct checker *k, struct policy *p, const char *text, size_t len)
{
    char *copy;

    if (k->errors == 0 && !k->too_large) {
        finish(k, p);
        copy = arena_strndup(&p->arena, text ? text : "", text ? len : 0);
        k->too_large = k->too_large || !copy;
        p->text = copy;
        p->text_len = len;
    }
    if (k->too_large) {
        if (k->diag)
            k->diag->count = 0;
        report(k, NULL, "", "the policy is too large: it needs more than %zu MiB once loaded",
               POLICY_ARENA_BYTES >> 20);
        return ERR_PARSE;
    }
    if (k->errors > 0)
        return ERR_INVALID;
    snprintf(p->source, sizeof(p->source), "%s", k->name);
    hash_text(text, len, p->hash);
    return ERR_OK;
}

struct policy *policy_new_default(void)
{
    struct top_build top;
    struct policy *p = policy_alloc();
    struct checker k = {.name = "embedded default", .keep = &p->arena, .top = &top};

    memset(&top, 0, sizeof(top));
    apply_defaults("", (unsigned char *)&top);
    finish(&k, p);
    assert(!k.too_large);
    snprintf(p->source, sizeof(p->source), "embedded default");
    snprintf(p->hash, sizeof(p->hash), "0000000000000000");
    p->text = "";
    p->text_len = 0;
    return p;
}

enum err policy_parse(const char *name, const char *text, size_t len, struct policy **out,
                      struct policy_diag *diag)
{
    struct checker k = {.name = name ? name : "(policy)", .diag = diag};
    struct top_build top;
    struct policy *p;
    struct errbuf eb;
    struct ydoc doc;
    enum err e;

    if (diag)
        diag->count = 0;
    errbuf_clear(&eb);
    /* The tree cannot be built: report why (its caps included) as a parse error. */
    if (ydoc_parse(&doc, k.name, text, len, &eb) != ERR_OK) {
        add_message(diag, eb.msg);
        return ERR_PARSE;
    }
    p = policy_alloc();
    memset(&top, 0, sizeof(top));
    k.keep = &p->arena;
    k.top = &top;
    arena_init(&k.scratch, SCRATCH_ARENA_BYTES);
    apply_defaults("", (unsigned char *)&top);
    check_document(&k, doc.root);
    e = conclude(&k, p, text, len);
    arena_destroy(&k.scratch);
    ydoc_destroy(&doc);
    if (e != ERR_OK) {
        policy_unref(p);
        return e;
    }
    *out = p;
    return ERR_OK;
}

enum err policy_load(const char *path, struct policy **out, struct policy_diag *diag)
{
    struct errbuf eb;
    char *text;
    size_t len;
    enum err e;

    if (diag)
        diag->count = 0;
    errbuf_clear(&eb);
    e = ydoc_read_file(path, POLICY_MAX_FILE_BYTES, &text, &len, &eb);
    if (e != ERR_OK) {
        add_message(diag, eb.msg);
        return e;
    }
    e = policy_parse(path, text, len, out, diag);
    free(text);
    return e;
}

struct policy *policy_ref(struct policy *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void policy_unref(struct policy *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    arena_destroy(&p->arena);
    free(p);
}

long policy_class_find(const struct policy *p, struct str name)
{
    for (size_t i = 0; i < p->class_count; i++) {
        if (str_eq(p->classes[i].name, name))
            return (long)i;
    }
    return -1;
}

const char *policy_strategy_name(enum policy_strategy s)
{
    if ((size_t)s >= GX_ARRAY_LEN(strategies) - 1)
        return "unknown";
    return strategies[s];
}

const char *policy_link_name(enum policy_link l)
{
    if ((size_t)l >= GX_ARRAY_LEN(links) - 1)
        return "unknown";
    return links[l];
}

size_t policy_schema_count(void)
{
    return SCHEMA_ROWS;
}

const char *policy_schema_key(size_t i)
{
    return i < SCHEMA_ROWS ? schema[i].path : NULL;
}
