/* policy_schema.c -- the policy schema table and the walk that checks a document against it
 * (step 1 of the load; see policy.c for the whole design). Every key, section and list has a
 * row; the walk checks each key of the ydoc tree against its row, reports what is wrong and
 * stores what is valid into the build objects of policy_internal.h. Checks that need a whole
 * class or rule are the list rows' hooks, in policy_check.c. */
#include "policy_schema.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gx/compiler.h"
#include "gx/k8s.h"
#include "gx/str.h"

#include "policy_internal.h"
#include "yaml_doc.h"

/* How much of the policy name a message repeats. */
#define MSG_NAME_CHARS 120

/* store() writes enum fields as 32-bit integers. */
static_assert(sizeof(enum policy_strategy) == sizeof(int32_t), "enum fields are 32 bits");
static_assert(sizeof(enum policy_link) == sizeof(int32_t), "enum fields are 32 bits");

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
    {.path = "scoring.weights.scarcity", .type = SCHEMA_INT, AT(TOP, weight_scarcity), .min = 0,
     .max = POLICY_MAX_WEIGHT, .def = 0,
     .doc = "weight of the model-scarcity score, for pods that may use several models"},
    {.path = "podOverrides", .type = SCHEMA_MAP, .doc = "what pods may override by annotation"},
    {.path = "podOverrides.strategy", .type = SCHEMA_BOOL, AT(TOP, overrides.strategy), .def = 1,
     .doc = "a pod may pick binpack or spread with annotation gpu-extender.io/strategy"},
    {.path = "podOverrides.models", .type = SCHEMA_BOOL, AT(TOP, overrides.models), .def = 1,
     .doc = "a pod may narrow the allowed models with its model annotations"},
    {.path = "podOverrides.preferred", .type = SCHEMA_BOOL, AT(TOP, overrides.preferred),
     .def = 1, .doc = "a pod may replace the preferred models with an annotation"},
    {.path = "classes", .type = SCHEMA_LIST, AT(TOP, classes), COUNT(TOP, class_count),
     HAS(TOP, has_classes), .item_size = sizeof(CLS), .check_item = policy_check_class_item,
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
     .item_size = sizeof(RUL), .check_item = policy_check_rule_item, .max = POLICY_MAX_RULES,
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

void policy_report(struct checker *k, const struct ydoc_node *at, const char *path, const char *fmt,
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

bool policy_is_full(const struct checker *k)
{
    return k->errors >= POLICY_MAX_ERRORS;
}

void policy_add_message(struct policy_diag *diag, const char *msg)
{
    if (diag && diag->count < POLICY_MAX_ERRORS)
        snprintf(diag->msgs[diag->count++], sizeof(diag->msgs[0]), "%s", msg);
}

void policy_snippet(struct str s, char out[SNIPPET_CHARS])
{
    ydoc_snippet(s.ptr, s.len, out, SNIPPET_CHARS);
}

struct str policy_node_str(const struct ydoc_node *n)
{
    return (struct str){n->text, n->len};
}

/* ---- memory ---- */

void *policy_alloc_array(struct checker *k, struct arena *a, size_t count, size_t size)
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
void policy_apply_defaults(const char *prefix, unsigned char *base)
{
    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        const struct schema_row *r = &schema[i];

        if (!row_is_child(r, prefix, NULL))
            continue;
        if (r->type == SCHEMA_MAP)
            policy_apply_defaults(r->path, base + r->offset);
        else if ((r->type == SCHEMA_INT || r->type == SCHEMA_BOOL || r->type == SCHEMA_ENUM) &&
                 !(r->flags & ROW_INHERIT))
            store(base, r, r->def);
    }
}

/* Formats a key path into out (PATH_MAX_CHARS). A path cut short only shortens a message. */
void policy_pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX_CHARS, fmt, ap);
    va_end(ap);
}

void policy_join(char *out, const char *prefix, const char *seg)
{
    policy_pathf(out, "%s%s%s", prefix, prefix[0] ? "." : "", seg);
}

/* Builds prefix.key into path. A key holding '.', '[', ']' or NUL, or one too long, cannot name
 * anything in the table, so it yields false and the caller reports it as unknown. */
static bool make_path(const char *prefix, const struct ydoc_node *key, char *path)
{
    if (strcspn(key->text, ".[]") != key->len)
        return false;
    if (strlen(prefix) + 1 + key->len >= PATH_MAX_CHARS)
        return false;
    policy_join(path, prefix, key->text);
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
        policy_report(k, v, path, "expected %s, got %s", want, ydoc_kind_name(v));
        return;
    }
    policy_snippet(policy_node_str(v), snip);
    if (r->type == SCHEMA_STRLIST)
        policy_report(k, v, path, "expected %s, got \"%s\"; write [%s] for a list of one", want,
                      snip, snip);
    else
        policy_report(k, v, path, "expected %s, got %s\"%s\"", want, v->plain ? "" : "quoted ",
                      snip);
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
    e = str_to_i64(policy_node_str(v), INT64_MIN, INT64_MAX, out);
    if (e == ERR_PARSE) {
        report_type(k, r, v, path);
        return false;
    }
    if (e != ERR_OK || *out < r->min || *out > r->max) {
        policy_snippet(policy_node_str(v), snip);
        policy_report(k, v, path, "must be %" PRId64 "..%" PRId64 ", got %s", r->min, r->max, snip);
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
        policy_report(k, v, path, "expected %s, got %s", tk->one, ydoc_kind_name(v));
        return false;
    }
    if (v->len == 0) {
        policy_report(k, v, path, "empty; expected %s", tk->one);
        return false;
    }
    why = tk->check ? tk->check(policy_node_str(v)) : NULL;
    if (why) {
        policy_snippet(policy_node_str(v), snip);
        policy_report(k, v, path, "invalid %s \"%s\": %s", tk->what, snip, why);
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
        policy_report(k, v, path, "empty, so the rule can never match; remove the key instead");
        return false;
    }
    if (v->count == 0) {
        policy_report(k, v, path, "empty; remove the key or give at least one entry");
        return false;
    }
    if (v->count > (size_t)r->max) {
        policy_report(k, v, path, "%zu entries; at most %" PRId64 " are allowed", v->count, r->max);
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
        if (caseless ? str_ieq(policy_node_str(o), policy_node_str(item))
                     : str_eq(policy_node_str(o), policy_node_str(item))) {
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
    if (!check_count(k, r, v, path) ||
        !(items = policy_alloc_array(k, k->keep, v->count, sizeof(*items))))
        return;
    for (const struct ydoc_node *c = v->child; c && !policy_is_full(k); c = c->next, i++) {
        policy_pathf(ipath, "%s[%zu]", path, i);
        if (!check_text(k, r->text, c, ipath))
            continue;
        if (is_repeat(v, c, tk->caseless, &first)) {
            policy_snippet(policy_node_str(c), snip);
            policy_report(k, c, ipath, "duplicate entry \"%s\" (first at %s[%zu])", snip,
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

    if (!k8s_is_label_key(policy_node_str(key))) {
        policy_report(k, key, path,
                      "invalid label key: use name or prefix/name, the prefix a DNS "
                      "subdomain and the name " LABEL_RULE);
        return false;
    }
    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        policy_report(k, v, path, "expected a label value, got %s; write \"\" for an empty value",
                      ydoc_kind_name(v));
        return false;
    }
    if (!k8s_is_label_value(policy_node_str(v))) {
        policy_snippet(policy_node_str(v), snip);
        policy_report(k, v, path, "invalid label value \"%s\": use \"\" or " LABEL_RULE, snip);
        return false;
    }
    return true;
}

/* Only keys before this one count, so the second occurrence is the one reported. */
static bool is_duplicate(const struct ydoc_node *map, const struct ydoc_node *key)
{
    for (const struct ydoc_node *k = map->child; k && k != key; k = k->next) {
        if (str_eq(policy_node_str(k), policy_node_str(key)))
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
        !(labels = policy_alloc_array(k, k->keep, v->count, sizeof(*labels))))
        return;
    for (const struct ydoc_node *key = v->child; key && !policy_is_full(k); key = key->next, i++) {
        policy_snippet(policy_node_str(key), snip);
        policy_join(lpath, path, snip);
        if (is_duplicate(v, key))
            policy_report(k, key, lpath, "duplicate key");
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
void policy_walk_object(struct checker *k, const struct ydoc_node *v, const char *spath,
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
        policy_walk_object(k, v, r->path, path, base + r->offset);
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
        !(items = policy_alloc_array(k, &k->scratch, v->count, r->item_size)))
        return;
    store_array(base, r, items, v->count);
    policy_pathf(spath, "%s[]", r->path);
    for (const struct ydoc_node *c = v->child; c && !policy_is_full(k); c = c->next, i++) {
        unsigned char *item = items + i * r->item_size;

        policy_pathf(ipath, "%s[%zu]", path, i);
        if (c->kind != YDOC_MAPPING) {
            policy_report(k, c, ipath, "expected a mapping, got %s", ydoc_kind_name(c));
            continue;
        }
        policy_apply_defaults(spath, item);
        policy_walk_object(k, c, spath, ipath, item);
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

    policy_snippet(policy_node_str(key), snip);
    policy_join(path, mpath, snip);
    list_children(spath, known, sizeof(known));
    policy_report(k, key, path, "unknown key (known keys here: %s)", known);
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
    policy_join(mp, mpath, key->text);
    if (is_duplicate(map, key))
        policy_report(k, key, mp, "duplicate key");
    else
        walk_value(k, r, key->value, mp, base);
}

static void check_required(struct checker *k, const struct ydoc_node *map, const char *spath,
                           const char *mpath)
{
    char path[PATH_MAX_CHARS];
    const char *seg;

    for (size_t i = 0; i < SCHEMA_ROWS && !policy_is_full(k); i++) {
        if (!(schema[i].flags & ROW_REQUIRED) || !row_is_child(&schema[i], spath, &seg))
            continue;
        if (ydoc_map_find(map, seg, NULL))
            continue;
        policy_join(path, mpath, seg);
        policy_report(k, map, path, "required key is missing");
    }
}

/* Recursion follows the table's sections, so it is as deep as the deepest key, not the input. */
static void walk_map(struct checker *k, const struct ydoc_node *map, const char *spath,
                     const char *mpath, unsigned char *base)
{
    for (const struct ydoc_node *key = map->child; key && !policy_is_full(k); key = key->next)
        walk_key(k, map, key, spath, mpath, base);
    check_required(k, map, spath, mpath);
}

/* ---- the weights: a check the table drives ---- */

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
void policy_check_weights(struct checker *k, const struct ydoc_node *root)
{
    int64_t sum = 0;

    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (schema[i].type == SCHEMA_INT && row_is_child(&schema[i], WEIGHTS_SECTION, NULL))
            sum += load_int((const unsigned char *)k->top, &schema[i]);
    }
    if (sum == 0)
        policy_report(
            k, node_at(root, WEIGHTS_SECTION), WEIGHTS_SECTION,
            "every weight is 0, so all nodes would score the same; set at least one above 0");
}

/* ---- the table, seen from outside ---- */

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
