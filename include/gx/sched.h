/* sched.h -- the decisions: which policy rule applies to a pod, does a node fit it, and how
 * well. Pure functions over the facts in objects.h, the GPU state of a node and a policy: no
 * I/O, no locks, no allocation, so they are unit-tested and benchmarked without sockets and
 * are safe to call from any thread.
 *
 * A request is decided in two steps: sched_pod_prepare() once per pod (the rule that selects
 * it, what the pod's annotations may change, the strategy), then sched_filter_node() and
 * sched_score_node() per node. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/cache.h"
#include "gx/err.h"
#include "gx/objects.h"
#include "gx/policy.h"
#include "gx/topology.h"

enum sched_verdict {
    SCHED_PASS = 0,
    SCHED_FAIL,         /* FailedNodes: preemption or time may fix it */
    SCHED_UNRESOLVABLE, /* FailedAndUnresolvableNodes: this node can never run the pod */
};

/* Why a node was rejected. Each maps to one short, stable reason string, because
 * kube-scheduler counts identical reasons together in the pod's event. Reasons from a policy
 * rule are prefixed with the rule's name; reasons about a model name the model. */
#define SCHED_REASON_MAP(X)                                                                        \
    X(NONE, "")                                                                                    \
    X(NO_GPUS, "node has no nvidia.com/gpu")                                                       \
    X(TOO_FEW_GPUS, "node has fewer nvidia.com/gpu than the pod requests")                         \
    X(INSUFFICIENT_FREE, "not enough free nvidia.com/gpu")                                         \
    X(NO_HEALTHY_FREE, "not enough free healthy GPUs")                                             \
    X(NO_MODEL_LABEL, "node has no nvidia.com/gpu.product label")                                  \
    X(MODEL_NOT_REQUIRED, "not in gpu-extender.io/gpu-model")                                      \
    X(MODEL_NOT_USE, "not in nvidia.com/use-gputype")                                              \
    X(MODEL_NOUSE, "excluded by nvidia.com/nouse-gputype")                                         \
    X(POLICY_NOT_ALLOWED, "not allowed")                                                           \
    X(POLICY_FORBIDDEN, "forbidden")                                                               \
    X(TOPO_UNKNOWN, "node publishes no GPU topology")                                              \
    X(TOPO_NEVER, "the node has no such GPU set")                                                  \
    X(TOPO_NOT_NOW, "no such GPU set is free")                                                     \
    X(UNKNOWN_NODE, "node is not in the cluster cache")

enum sched_reason {
#define SCHED_REASON_ENUM(name, text) SCHED_REASON_##name,
    SCHED_REASON_MAP(SCHED_REASON_ENUM)
#undef SCHED_REASON_ENUM
};

struct sched_fit {
    enum sched_verdict verdict;
    enum sched_reason reason;
};

/* Constrained demand and model scarcity: how much of each GPU model the pods that may run on
 * only some models need. Built once per cluster state and policy, then read by every score of
 * that state; never per node per request.
 *
 * A model is a node's nvidia.com/gpu.product without its -SHARED / -MIG suffixes; its capacity
 * is the allocatable GPUs of its nodes. A GPU pod (pending or bound) whose rule and annotations
 * allow only a set S of the cluster's models, S not all of them, is constrained: its GPUs count
 * on every model of S in proportion to the model's capacity, so each model of S gains
 * gpus / capacity(S) of scarcity. A model's scarcity is the sum over such pods, in millionths
 * (1000000: constrained demand equal to the model's GPUs). Pods are summed per set of allowed
 * models before dividing, so the table depends on the pods, not on their order.
 *
 * Which models a pod may use is decided on one node of each model (the first added), with the
 * filter's own rules (sched_model_allowed()). The table is plain data (no pointers), at most
 * SCHED_DEMAND_MAX_MODELS models and SCHED_DEMAND_MAX_SETS distinct sets of allowed models:
 * models past the first are not scored (scarcity 0), sets past the first are not counted. */
#define SCHED_DEMAND_MAX_MODELS 64
#define SCHED_DEMAND_MAX_SETS 256
#define SCHED_DEMAND_NAME_MAX 64 /* label values are at most 63 characters */

struct sched_demand_model {
    char product[SCHED_DEMAND_NAME_MAX]; /* the first node's nvidia.com/gpu.product, */
    char family[SCHED_DEMAND_NAME_MAX];  /* nvidia.com/gpu.family */
    int64_t memory_mib;                  /* and nvidia.com/gpu.memory */
    uint8_t product_len, model_len, family_len;
    int64_t gpus;         /* allocatable GPUs of the model's nodes */
    int64_t scarcity_ppm; /* constrained demand per GPU of the model, in millionths */
};

struct sched_demand_set {
    uint64_t models; /* bit i: models[i] */
    int64_t gpus;
};

struct sched_demand {
    size_t model_count;
    uint64_t all_models;
    struct sched_demand_model models[SCHED_DEMAND_MAX_MODELS];
    size_t set_count;
    struct sched_demand_set sets[SCHED_DEMAND_MAX_SETS];
    uint64_t keys[SCHED_DEMAND_MAX_MODELS];     /* a fingerprint of each model's name */
    uint8_t slots[2 * SCHED_DEMAND_MAX_MODELS]; /* fingerprint -> model index + 1; 0 empty */
};

/* An empty table. */
void sched_demand_init(struct sched_demand *d);
/* Adds a node's GPUs to its model's capacity (the model's first node is its representative).
 * Nodes without GPUs or without a model label are left out. Add every node before any pod's demand.
 */
void sched_demand_add_node(struct sched_demand *d, const struct node_info *node);
/* Adds gpus (negative: takes them back) to the demand of the pods allowed exactly the models in
 * set. A set of no model or of every model is not a constraint and is ignored. Call
 * sched_demand_finish() before the table is read again. */
void sched_demand_add(struct sched_demand *d, uint64_t set, int64_t gpus);
/* Works the scarcity of every model out from the sets. */
void sched_demand_finish(struct sched_demand *d);
/* The index of model in the table, or -1. */
int sched_demand_find(const struct sched_demand *d, struct str model);

/* What applies to one pod, worked out once per request by sched_pod_prepare(). Borrowed
 * pointers: the pod and the policy must outlive it. */
struct sched_pod {
    const struct pod_info *pod;
    const struct policy *pol;
    const struct policy_rule *rule; /* the rule that selected the pod, or &pol->default_rule */
    enum policy_strategy strategy;  /* the rule's, or the pod's when it may choose */
    bool pod_models;                /* the pod's model annotations narrow the allowed models */
    bool pod_preferred;             /* the pod's gpu-model-preferred replaces the rule's list */
    bool has_preference;            /* a preference applies: the model weight counts */
    bool topo_required;             /* the rule's interconnect requirement applies to this pod */
    /* Scarcity (sched_pod_use_demand()): the table, borrowed, the least and most scarce of the
     * models the pod may use, and the part's value on each model of the table, 0..1e6. demand
     * is NULL when the part does not apply to the pod. */
    const struct sched_demand *demand;
    int64_t scarcity_lo_ppm, scarcity_hi_ppm;
    int32_t scarcity_part_ppm[SCHED_DEMAND_MAX_MODELS];
    /* The fleet-share mark-down (sched_pod_use_demand()), for a pod that may use every model:
     * the table, borrowed, and the pod's least share of a model's GPUs in the fleet (twice its
     * GPUs over the model's, at most 1), in millionths; a node is marked down by how much its
     * model's share exceeds it. share_table is NULL when the mark-down does not apply. */
    const struct sched_demand *share_table;
    int64_t share_least_ppm;
    /* The model memo (sched_pod_memo_models()): what the node's model facts alone decide,
     * worked out once per distinct facts. NULL: every node is worked out on its own. */
    const struct sched_model_memo *memo;
    size_t memo_count;
};

/* What a node's model facts alone decide for a pod: the filter's model checks (policy classes,
 * the pod's model annotations), the model part of the score and the scarcity part. The facts
 * are the ones those checks read: nvidia.com/gpu.product (the model derives from it),
 * nvidia.com/gpu.family and nvidia.com/gpu.memory. Nodes with equal facts get equal answers,
 * so a request works them out once per distinct facts instead of once per node: the cluster
 * cache numbers the distinct facts it holds (sched_node.model_id) and keeps one node_info of
 * each. */
struct sched_model_memo {
    struct sched_fit fit; /* filter_models(): PASS, or the model or policy rejection */
    int model_rank;       /* as in struct sched_score */
    int32_t share_ppm;    /* fleet-share excess, 0..1e6: meaningful when sp->share_table is set */
    int64_t model_ppm;
    int64_t scarcity_ppm; /* meaningful when sp->demand is set */
};

/* Works the memo out for models[0..count) (the facts numbered 1..count) into memo, which must
 * hold count entries and outlive sp's use, and points sp at it. Call after
 * sched_pod_use_demand(). With count 0 the pod keeps deciding node by node. */
void sched_pod_memo_models(struct sched_pod *sp, const struct node_info *const *models,
                           size_t count, struct sched_model_memo *memo);

/* The rule that applies to pod: the first in file order that selects it, else the default
 * rule; but for a pod we bound (pod->rule_record), the rule that placed it while pol still has
 * a rule of that name. Never NULL; borrowed from pol. */
const struct policy_rule *sched_select_rule(const struct policy *pol, const struct pod_info *pod);
/* Chooses the rule for pod (sched_select_rule()) and checks the pod's annotations against it
 * once, before any node. Returns false with a message in eb when one is unusable: an unknown
 * strategy, or an annotation the rule does not let pods set. The scheduler must see that as an
 * Error: every node would fail the same way. *sp is written only on success. */
bool sched_pod_prepare(struct sched_pod *sp, const struct pod_info *pod, const struct policy *pol,
                       struct errbuf *eb);

/* Gives a prepared pod the scarcity of the models it may use, for sched_score_node(). The part
 * applies only with scoring.weights.scarcity above 0, to a pod asking GPUs that may use models
 * of different scarcity; otherwise sp->demand stays NULL. With the same weight, a pod that may
 * use every model of the table also gets the fleet-share mark-down (sp->share_table), whatever
 * the demand. d (may be NULL) is borrowed: it must outlive sp's use. */
void sched_pod_use_demand(struct sched_pod *sp, const struct sched_demand *d);

/* Do the pod's rule and annotations let it use the node's model (the filter's model checks
 * alone, without GPUs or topology)? */
bool sched_model_allowed(const struct sched_pod *sp, const struct node_info *node);
/* The models of the table the pod may use (bit i: models[i]); each is judged on its first
 * node with sched_model_allowed(). */
uint64_t sched_demand_allowed(const struct sched_demand *d, const struct sched_pod *sp);

/* Does rule select pod? (exposed for tests and the explain endpoint) */
bool sched_rule_selects(const struct policy_rule *rule, const struct pod_info *pod);
/* Is the node in class c? See struct policy_class for the matching rules. */
bool sched_class_matches(const struct policy_class *c, const struct node_info *node);

/* One node as decisions see it: its facts and what is known to be taken on it. */
struct sched_node {
    const struct node_info *info;
    int64_t used;            /* GPUs taken: pods bound there plus binds in flight */
    const struct topo *topo; /* NULL: no (usable) topology, the node is count-only */
    uint32_t free_mask;      /* healthy GPUs not known to be taken (meaningful with topo) */
    unsigned unknown_used;   /* taken GPUs whose indices nobody told us (with topo) */
    uint32_t model_id;       /* the node's model facts, numbered by the cache (1-based); 0: none */
    bool free_healthy;       /* free_mask holds healthy GPUs only (the cache's views): the
                                filter need not read the topology to count free healthy GPUs */
};

/* A cached node as decisions see it. */
static inline struct sched_node sched_node_of(const struct cache_node *cn)
{
    return (struct sched_node){.info = &cn->info,
                               .used = cn->gpus_used + cn->gpus_reserved,
                               .topo = cn->topo,
                               .free_mask = cn->free_mask,
                               .unknown_used = cn->unknown_used,
                               .model_id = cn->model_id,
                               .free_healthy = true};
}

/* Decides one node. A pod that requests no GPU fits everywhere: it is not ours to steer. */
struct sched_fit sched_filter_node(const struct sched_pod *sp, const struct sched_node *node);

/* Appends the reason text for fit (verdict != PASS), prefixed "gpu-extender: ", e.g.
 * "gpu-extender: policy ml-train: model Tesla-T4 not allowed" or
 * "gpu-extender: policy train-4: no 4 free GPUs all linked by NVLink". sp and node may be
 * NULL: the rule is then "default", the model "(unlabelled)", and topology reasons omit the
 * GPU count and the interconnect. */
enum err sched_reason_format(struct sched_fit fit, const struct sched_pod *sp,
                             const struct node_info *node, struct buf *out) GX_MUST_CHECK;

/* Does the text of reason r name the node's model? (Every other part of a reason depends only
 * on the pod and its rule, so callers may format each distinct reason once per request.) */
bool sched_reason_names_model(enum sched_reason r);

/* The parts of a score, for explanations and tests. Fractions are in millionths. */
struct sched_score {
    int score;                       /* 0..10, what prioritize returns */
    enum policy_strategy strategy;   /* the one that applied */
    int64_t free_ppm;                /* free-GPU component, 0..1e6 */
    int64_t model_ppm;               /* model-preference component, 0..1e6 */
    int64_t topo_ppm;                /* interconnect component, 0..1e6 */
    int64_t scarcity_ppm;            /* model-scarcity component, 0..1e6 */
    int64_t w_free, w_model, w_topo; /* the weights that counted (0 when a part did not) */
    int64_t w_scarcity;
    int model_rank;    /* 1-based position in the preference list; 0 = no match */
    uint32_t topo_set; /* the GPU set topology chose (indices as bits); 0 = none */
};

/* Scores a node that passed filter. The formula is in the README:
 *   f = binpack: (used + k) / allocatable   spread: (allocatable - used - k) / allocatable
 *   m = weight / 100 of the first preferred class the node is in (rule), or (n - i) / n for
 *       the i-th (0-based) of n models in the pod's gpu-model-preferred; else 0
 *   t = interconnect quality of the GPU set the node would give: the mean over its pairs of
 *       min(pair score, 100) / 100 (any NVLink 1, PIX 0.5, ..., SYS 0.1)
 *   score = round(10 * (wf*f + wm*m + wt*t) / (wf + wm + wt)), where wm counts only when a
 *   preference applies, and wt only for pods asking 2 or more GPUs on a node that publishes
 *   its topology. With a scarcity weight, the scarcity part holds S of the 10 levels
 *   (sp->demand), and the fleet-share mark-down takes up to S off (sp->share_table):
 *   policy/README.md, "How nodes are scored". */
struct sched_score sched_score_node(const struct sched_pod *sp, const struct sched_node *node);
/* The fleet-share mark-down in a score s that sched_score_node() gave on node: the levels it
 * took off s->score, and in *excess_ppm the share of the node's model beyond the pod's least
 * (0..1e6). 0 and 0 where it does not apply. (Kept out of struct sched_score, which every
 * prioritize builds per node, for explanations and tests.) */
int sched_share_levels(const struct sched_pod *sp, const struct node_info *node,
                       const struct sched_score *s, int64_t *excess_ppm);
/* sched_score_node(...).score, without the parts. */
int sched_score_value(const struct sched_pod *sp, const struct sched_node *node);

/* The GPU set to record on a bind: the set topology chooses for the pod on this node, honouring
 * the rule's requirement. 0 when the node has no topology or no set fits. */
uint32_t sched_choose_gpus(const struct sched_pod *sp, const struct sched_node *node);

/* Model matching, exposed for tests and the explain endpoint.
 * Ours (gpu-extender.io/gpu-model*): an entry matches when, ignoring ASCII case, it equals a
 * run of whole dash-separated tokens of the model: "A100" and "A100-SXM4-80GB" match
 * "NVIDIA-A100-SXM4-80GB"; "A10" and "L4" do not match "A100" or "L40S".
 * HAMi's (nvidia.com/use-gputype, nouse-gputype): case-insensitive substring, as HAMi does. */
bool sched_model_matches(struct str entry, struct str model);
/* The 0-based index of the first entry in a comma list that matches model, or -1. */
int sched_model_list_find(struct str list, struct str model, bool substring);
/* The number of non-empty entries in a comma list. */
int sched_model_list_count(struct str list);
/* Glob match with * and ?, ASCII case-insensitive (class product patterns). */
bool sched_glob_matches(struct str pattern, struct str text);
