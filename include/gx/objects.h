/* objects.h -- the few facts about Nodes and Pods that decisions need, and the one decoder
 * that reads them from Kubernetes JSON (an extender request's Pod and Nodes today, watch
 * events later). Whole objects are never kept.
 *
 * Strings are views: into the input buffer when the JSON string has no escapes, otherwise
 * into a decoded copy in the arena. Either way they live as long as the buffer and arena. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/arena.h"
#include "gx/compiler.h"
#include "gx/jscan.h"
#include "gx/str.h"

#define OBJ_GPU_RESOURCE "nvidia.com/gpu"
#define OBJ_LABEL_PRODUCT "nvidia.com/gpu.product"
#define OBJ_LABEL_FAMILY "nvidia.com/gpu.family"
#define OBJ_LABEL_MEMORY "nvidia.com/gpu.memory"

/* Pod annotations we read. The gpu-extender.io/ names are a public interface. */
#define OBJ_ANN_GPU_MODEL "gpu-extender.io/gpu-model"
#define OBJ_ANN_GPU_MODEL_PREFERRED "gpu-extender.io/gpu-model-preferred"
#define OBJ_ANN_STRATEGY "gpu-extender.io/strategy"
#define OBJ_ANN_HAMI_USE "nvidia.com/use-gputype"
#define OBJ_ANN_HAMI_NOUSE "nvidia.com/nouse-gputype"
/* Node annotations we read: the GPU interconnect (ours, and HAMi's pair scores) and which GPU
 * indices the node itself reports in use. */
#define OBJ_ANN_TOPOLOGY "gpu-extender.io/topology"
#define OBJ_ANN_HAMI_SCORE "hami.io/node-nvidia-score"
#define OBJ_ANN_GPUS_IN_USE "gpu-extender.io/gpus-in-use"
/* What the node agent (gpu-extender-agent) publishes besides topology and gpus-in-use: which
 * pod holds which GPUs ({"<ns>/<pod>":"0,1",...}), who it is and how it reads the node
 * ({"version":...,"source":...,"podResources":...,"health":...}), and when those facts last
 * changed (RFC 3339). */
#define OBJ_ANN_GPU_PODS "gpu-extender.io/gpu-pods"
#define OBJ_ANN_AGENT "gpu-extender.io/agent"
#define OBJ_ANN_AGENT_CHANGED_AT "gpu-extender.io/agent-changed-at"
/* Annotations we write on the Binding (and so read back on bound pods). The Binding records
 * the model it chose in gpu-extender.io/gpu-model, which overwrites the pod's own requirement
 * there; that requirement, when the pod had one, is kept in gpu-model-required. */
#define OBJ_ANN_GPU_COUNT "gpu-extender.io/gpu-count"
#define OBJ_ANN_GPU_MODEL_REQUIRED "gpu-extender.io/gpu-model-required"
#define OBJ_ANN_GPUS "gpu-extender.io/gpus"
#define OBJ_ANN_GPU_UUIDS "gpu-extender.io/gpu-uuids"
#define OBJ_ANN_POLICY_RULE "gpu-extender.io/policy-rule"

/* The largest GPU count we accept anywhere; more is a malformed request, not a big node. */
#define OBJ_MAX_GPUS 4096

struct node_info {
    struct str name;
    struct str raw;          /* the whole Node object's bytes (echoed in full-Nodes mode) */
    int64_t gpu_allocatable; /* status.allocatable["nvidia.com/gpu"]; 0 when absent */
    struct str product;      /* label nvidia.com/gpu.product as written */
    struct str model;        /* product with -SHARED and -MIG-... stripped (a prefix view) */
    struct str family;       /* label nvidia.com/gpu.family */
    int64_t gpu_memory_mib;  /* label nvidia.com/gpu.memory; 0 when absent or not a number */
    bool unschedulable;      /* spec.unschedulable */
    bool ready;              /* status.conditions: type Ready has status "True" */
    struct str taints;       /* spec.taints as its raw JSON array; empty when none */
    struct str ann_topology; /* raw annotation values; empty when absent */
    struct str ann_hami_score;
    struct str ann_gpus_in_use;
    struct str ann_gpu_pods;
    struct str ann_agent;
    struct str ann_agent_changed_at;
};

struct pod_info {
    struct str ns;
    struct str name;
    struct str uid;
    struct str node_name; /* spec.nodeName; empty while pending */
    struct str phase;     /* status.phase */
    bool deleting;        /* metadata.deletionTimestamp is set */
    int64_t gpus;         /* effective nvidia.com/gpu request, Kubernetes rules */
    /* The pod's required models: gpu-extender.io/gpu-model, except on a pod we bound (spec.nodeName
     * set and our gpu-count record present), whose gpu-model is our record of the model it got:
     * there, gpu-model-required. Raw annotation values, like the ones below; empty when absent. */
    struct str ann_gpu_model;
    struct str ann_gpu_model_preferred;
    struct str ann_strategy;
    struct str ann_use_gputype;
    struct str ann_nouse_gputype;
    struct str ann_gpus; /* gpu-extender.io/gpus: indices we bound the pod to */
    /* gpu-extender.io/policy-rule on a pod we bound (as for ann_gpu_model): the rule that placed
     * it. Empty otherwise. */
    struct str rule_record;
    struct str labels;         /* metadata.labels as its raw JSON object; empty when none */
    struct str priority_class; /* spec.priorityClassName */
    /* spec.priority. The Priority admission plugin fills it from priorityClassName (or the
     * globalDefault class); absent or null reads as 0, as kube-scheduler's PodPriority() does
     * for pods created when no default class existed. Any int32 is accepted: user classes
     * go up to 1e9, system ones to 2e9, and negative values are allowed. */
    int32_t priority;
    /* spec.preemptionPolicy is "Never": the pod may not evict others (it can still be
     * evicted). Absent means PreemptLowerPriority, kube-scheduler's reading and the API's
     * default. */
    bool preempt_never;
    /* status.nominatedNodeName: the node an earlier preemption freed for this pod; empty
     * when none. */
    struct str nominated_node;
};

/* Decodes the Node object at the scanner's cursor and consumes it. Unknown fields are
 * skipped (and validated). Fails the scan with a message on a wrong type, a duplicate key
 * that we read, or a GPU quantity that is not a whole number in 0..OBJ_MAX_GPUS. */
bool obj_node_decode(struct jscan *js, struct arena *arena, struct node_info *out) GX_MUST_CHECK;
/* The same, without our annotations (validated, not kept: the ann_ fields stay empty). For the
 * Nodes of an extender request, which are decided on their facts while topology and GPU use
 * come from the cache; their topology annotation, JSON escaped in a string, was a sixth of
 * decoding a 1,000-node request. */
bool obj_node_decode_facts(struct jscan *js, struct arena *arena,
                           struct node_info *out) GX_MUST_CHECK;

/* Decodes the Pod object at the cursor and consumes it; the same rules as for Nodes, and
 * spec.priority must be an integer in int32 range (Go's decoder refuses 1.0 and "5"). The
 * GPU request is max(sum of app containers and restartable init containers, the largest
 * init container plus the restartable ones started before it), reading requests and falling
 * back to limits, as kube-scheduler computes it. */
bool obj_pod_decode(struct jscan *js, struct arena *arena, struct pod_info *out) GX_MUST_CHECK;

/* Looks key up in a raw JSON object of string values (struct pod_info.labels). On a hit,
 * *value is the decoded value: a view into labels, or a copy in buf (cap bytes) when it has
 * escapes. False when absent, when the value does not fit buf, or when labels is not such an
 * object. */
bool obj_label_get(struct str labels, struct str key, char *buf, size_t cap, struct str *value);

/* A PodDisruptionBudget (policy/v1), as preemption counts it. Raw parts are views of the
 * object's bytes. */
struct pdb_info {
    struct str ns;
    struct str name;
    struct str selector;  /* spec.selector as raw JSON; empty when absent, null or {} */
    struct str disrupted; /* status.disruptedPods as raw JSON (pod name -> time); empty if none */
    int32_t allowed;      /* status.disruptionsAllowed; 0 until the controller says more */
};

/* Decodes the PodDisruptionBudget at the cursor and consumes it. */
bool obj_pdb_decode(struct jscan *js, struct arena *arena, struct pdb_info *out) GX_MUST_CHECK;

/* Does the raw metav1.LabelSelector match the raw labels object (struct pod_info.labels)?
 * matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) must all hold. As for
 * kube-scheduler's preemption, an empty, absent or invalid selector matches nothing. */
bool obj_selector_matches(struct str selector, struct str labels);

/* Does pdb count against evicting the pod (namespace ns, name, raw labels)? kube-scheduler's
 * rule: same namespace, the pod has labels, the selector matches them, and the pod is not
 * already in the budget's disruptedPods. */
bool obj_pdb_covers(const struct pdb_info *pdb, struct str ns, struct str name, struct str labels);

/* Strips the GPU Feature Discovery suffixes -SHARED and -MIG-<profile> (case-insensitive)
 * from a product label. The result is a prefix view of product. */
struct str obj_model_from_product(struct str product);

/* Parses a Kubernetes quantity that must be a whole number (e.g. "8", "2k", "3000m").
 * Returns false for fractions, garbage and values outside [0, max]. */
bool obj_parse_whole_quantity(struct str q, int64_t max, int64_t *out);
