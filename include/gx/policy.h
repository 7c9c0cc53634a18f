/* policy.h -- the scheduling policy: an immutable, refcounted object loaded from a YAML file
 * (libyaml) and validated against a schema, or the embedded default. Readers take a reference
 * for as long as they decide; a reload builds a new policy and swaps it in, and the old one is
 * freed when its last reader lets go.
 *
 * What it says (policy/README.md documents every key):
 *  - model classes: which nodes count as "h100" or "t4", by nvidia.com/gpu.product (exact
 *    names or * ? patterns), nvidia.com/gpu.family and a minimum nvidia.com/gpu.memory;
 *  - rules: which pods they apply to (namespace, labels, priorityClassName), which classes
 *    those pods may use, may not use, and prefer in order, their node strategy, and a GPU
 *    interconnect requirement for multi-GPU pods;
 *  - a default rule for pods no rule selects;
 *  - the score weights, and which parts of a rule a pod may override with its annotations.
 *
 * The policy only holds data. Deciding (which rule selects a pod, which class a node is in)
 * is sched's job: see sched.h. All strings are views into memory the policy owns. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/arena.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/str.h"

enum policy_strategy { POLICY_BINPACK = 0, POLICY_SPREAD = 1 };

/* An interconnect class that every pair of a pod's GPUs must reach, weakest first. The order
 * and values are those of enum topo_class in topology.h (sched checks that they agree):
 * "SYS" < "NODE" < "PHB" < "PXB" < "PIX" < "NVLink". */
enum policy_link {
    POLICY_LINK_SYS = 0,
    POLICY_LINK_NODE,
    POLICY_LINK_PHB,
    POLICY_LINK_PXB,
    POLICY_LINK_PIX,
    POLICY_LINK_NVLINK,
};

#define POLICY_MAX_WEIGHT 100
#define POLICY_MAX_FILE_BYTES ((size_t)1024 * 1024)
#define POLICY_MAX_ERRORS 20
#define POLICY_MAX_CLASSES 256
#define POLICY_MAX_RULES 256
#define POLICY_MAX_LIST 64 /* entries in any one list (products, namespaces, allow, ...) */
#define POLICY_DEFAULT_RULE_NAME "default"

struct policy_strlist {
    size_t count;
    const struct str *items;
};

struct policy_label {
    struct str key;
    struct str value;
};

/* A set of GPU models. A node belongs to the class when every criterion given matches (at
 * least one is given): products (any of them; exact or with * and ?, ASCII case-insensitive;
 * tried against both the full nvidia.com/gpu.product label and the model, i.e. the label
 * without -SHARED / -MIG-... suffixes), families (any of them, case-insensitive), and
 * nvidia.com/gpu.memory >= min_memory_mib. A node without the label a criterion reads is not
 * in the class. */
struct policy_class {
    struct str name;
    struct policy_strlist products;
    struct policy_strlist families;
    int64_t min_memory_mib; /* 0: no memory criterion */
    size_t line;            /* where it is defined in the file; 0 for built-ins */
};

/* A preferred class and its weight (1..100): a node in the first preferred class it matches
 * scores weight/100 for the model part. When the file gives no weight, the i-th of n entries
 * (0-based) gets round(100 * (n - i) / n). */
struct policy_pref {
    uint32_t class_index; /* into policy.classes */
    int64_t weight;
};

/* Which parts of a rule a pod may change with its own annotations. */
struct policy_overrides {
    bool strategy;  /* gpu-extender.io/strategy picks binpack or spread */
    bool models;    /* gpu-extender.io/gpu-model and HAMi's nvidia.com/use-gputype and
                     * nouse-gputype narrow the allowed models; they never widen them, and a
                     * forbidden class stays forbidden */
    bool preferred; /* gpu-extender.io/gpu-model-preferred replaces the rule's prefer list */
};

struct policy_rule {
    struct str name; /* POLICY_DEFAULT_RULE_NAME for the default rule */
    /* Selectors. A pod is selected when every selector given matches; the default rule has
     * none and selects every pod. has_* is false when the key is absent. */
    bool has_namespaces, has_priority_classes;
    struct policy_strlist namespaces;       /* pod's namespace is one of these */
    struct policy_strlist priority_classes; /* pod's spec.priorityClassName is one of these */
    size_t label_count;                     /* every label must be on the pod, value equal */
    const struct policy_label *labels;
    /* What the selected pods may use. */
    bool has_allow; /* false: every model is allowed (unless forbidden) */
    size_t allow_count;
    const uint32_t *allow; /* class indices */
    size_t forbid_count;
    const uint32_t *forbid;
    size_t prefer_count; /* ordered: the first is the most preferred */
    const struct policy_pref *prefer;
    enum policy_strategy strategy; /* the rule's, else scoring.strategy */
    /* Multi-GPU interconnect requirement: a pod asking min_gpus or more GPUs must get a set
     * whose every pair is at least topo_require. topo_min_gpus == 0: no requirement. */
    int64_t topo_min_gpus;
    enum policy_link topo_require;
    struct policy_overrides overrides; /* the rule's, else the top-level podOverrides */
    size_t line;                       /* where it is defined; 0 for the built-in default */
};

struct policy {
    atomic_int refs;
    enum policy_strategy strategy;     /* scoring.strategy, default binpack */
    int64_t weight_free_gpus;          /* scoring.weights.freeGPUs, 0..100, default 1 */
    int64_t weight_model;              /* scoring.weights.model, 0..100, default 4 */
    int64_t weight_topology;           /* scoring.weights.topology, 0..100, default 2 */
    int64_t weight_scarcity;           /* scoring.weights.scarcity, 0..100, default 0 */
    struct policy_overrides overrides; /* podOverrides.*, each default true */
    size_t class_count;
    const struct policy_class *classes;
    size_t rule_count; /* in file order, which is the order they are tried in */
    const struct policy_rule *rules;
    struct policy_rule default_rule; /* key `default`; allows everything when absent */
    char source[256];                /* the file path, or "embedded default" */
    char hash[17];                   /* 16 hex digits of a 64-bit FNV-1a hash of the bytes */
    const char *text;                /* the file's bytes, NUL-terminated ("" for the default) */
    size_t text_len;
    struct arena arena; /* owns every string and array above */
};

/* Diagnostics from one load: up to POLICY_MAX_ERRORS messages, each formatted
 * "file:line:col: key.path: message". */
struct policy_diag {
    size_t count;
    char msgs[POLICY_MAX_ERRORS][256];
};

/* A new policy with the built-in defaults (identical to what policy/default.yaml loads to),
 * with one reference held. Never NULL (allocation failure aborts, as everywhere). */
struct policy *policy_new_default(void);

/* Parses and validates text (len bytes; need not be NUL-terminated). name is used in messages,
 * usually the file path. Every error is collected in diag (up to the limit) in one pass.
 * Returns ERR_OK and *out (one reference held), or ERR_INVALID/ERR_PARSE with *out untouched.
 *
 * ERR_INVALID: unknown keys, wrong types, out-of-range values, bad enum values, duplicate keys,
 * duplicate class or rule names, references to undefined classes, rules that can never match
 * (an empty selector list, a rule shadowed by an earlier one that selects every pod it would),
 * rules that allow nothing, preferences that can never apply, a missing apiVersion or kind,
 * every weight at 0, and an empty document.
 * ERR_PARSE: bad YAML, or input past the parser's caps (64 levels of nesting, 65536 nodes;
 * anchors, aliases and tags are refused), with exactly one message.
 * diag may be NULL and is reset first. source is name, truncated to fit. Pure; thread-safe. */
enum err policy_parse(const char *name, const char *text, size_t len, struct policy **out,
                      struct policy_diag *diag) GX_MUST_CHECK;

/* Reads path (capped at POLICY_MAX_FILE_BYTES: ERR_TOO_LARGE) and calls policy_parse().
 * ERR_IO when the file cannot be opened or read. Those two come with one "path: reason" message
 * in diag (no line:col). */
enum err policy_load(const char *path, struct policy **out, struct policy_diag *diag) GX_MUST_CHECK;

/* Reference counting; both are thread-safe. policy_unref(NULL) is a no-op. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The index of the class called name, or -1. */
long policy_class_find(const struct policy *p, struct str name);

const char *policy_strategy_name(enum policy_strategy s);
/* "SYS", "NODE", "PHB", "PXB", "PIX" or "NVLink". */
const char *policy_link_name(enum policy_link l);
