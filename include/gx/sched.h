/* sched.h -- the decisions: does a node fit a pod, and how well. Pure functions over the
 * facts in objects.h and a policy: no I/O, no locks, no allocation, so they are unit-tested
 * and benchmarked without sockets and are safe to call from any thread.
 *
 * used_gpus is what the caller knows to be taken on the node already: 0 until the cluster
 * cache exists, when kube-scheduler's own NodeResourcesFit check guards the count. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/objects.h"
#include "gx/policy.h"

enum sched_verdict {
    SCHED_PASS = 0,
    SCHED_FAIL,         /* FailedNodes: preemption or time may fix it */
    SCHED_UNRESOLVABLE, /* FailedAndUnresolvableNodes: this node can never run the pod */
};

/* Why a node was rejected. Each maps to one short, stable reason string, because
 * kube-scheduler counts identical reasons together in the pod's event. */
#define SCHED_REASON_MAP(X)                                                                        \
    X(NONE, "")                                                                                    \
    X(NO_GPUS, "node has no nvidia.com/gpu")                                                       \
    X(TOO_FEW_GPUS, "node has fewer nvidia.com/gpu than the pod requests")                         \
    X(INSUFFICIENT_FREE, "not enough free nvidia.com/gpu")                                         \
    X(NO_MODEL_LABEL, "node has no nvidia.com/gpu.product label")                                  \
    X(MODEL_NOT_REQUIRED, "not in gpu-extender.io/gpu-model")                                      \
    X(MODEL_NOT_USE, "not in nvidia.com/use-gputype")                                              \
    X(MODEL_NOUSE, "excluded by nvidia.com/nouse-gputype")                                         \
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

/* Checks the pod's annotations once per request, before any node: returns false with a
 * message in eb when one is unusable (an unknown strategy, say). The scheduler must see that
 * as an Error: every node would fail the same way. */
bool sched_pod_check(const struct pod_info *pod, const struct policy *pol, struct errbuf *eb);

/* Decides one node. A pod that requests no GPU fits everywhere: it is not ours to steer. */
struct sched_fit sched_filter_node(const struct pod_info *pod, const struct node_info *node,
                                   int64_t used_gpus);

/* Appends the reason text for fit (verdict != PASS), prefixed "gpu-extender: ", e.g.
 * "gpu-extender: model Tesla-T4 not in gpu-extender.io/gpu-model". */
enum err sched_reason_format(struct sched_fit fit, const struct node_info *node, struct buf *out)
    GX_MUST_CHECK;

/* The parts of a score, for explanations and tests. Fractions are in millionths. */
struct sched_score {
    int score;                     /* 0..10, what prioritize returns */
    enum policy_strategy strategy; /* the one that applied */
    int64_t free_ppm;              /* free-GPU component, 0..1e6 */
    int64_t model_ppm;             /* model-preference component, 0..1e6 */
    int model_rank;                /* 1-based position in gpu-model-preferred; 0 = no match */
};

/* Scores a node that passed filter. The formula is in the README:
 *   f = binpack: (used + k) / allocatable   spread: (allocatable - used - k) / allocatable
 *   m = (n - i) / n for the i-th (0-based) of n preferred models the node matches, else 0
 *   score = round(10 * (w_free * f + w_model * m) / (w_free + w_model)), where w_model counts
 *   only when the pod names preferred models. */
struct sched_score sched_score_node(const struct pod_info *pod, const struct node_info *node,
                                    int64_t used_gpus, const struct policy *pol);

/* The strategy for this pod: its gpu-extender.io/strategy annotation when the policy lets
 * pods choose and the value is valid, else the policy's. */
enum policy_strategy sched_pod_strategy(const struct pod_info *pod, const struct policy *pol);

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
