/* preempt.h -- which pods to evict on a node so that a higher-priority GPU pod can run there.
 * Pure, like the rest of sched: the node, its pods and the budgets come in as plain facts, the
 * choice goes out; no I/O, no locks, no allocation.
 *
 * A node is worth preempting on only if evicting pods of lower priority makes the preemptor
 * placeable under the very rules filter applies (model and policy, healthy GPUs, the GPU
 * indices taken, binds in flight, the topology requirement): sched_filter_node() decides, on
 * the node as it would be after the evictions. Among the sets of victims that do, the choice
 * minimizes, in this order:
 *   1. PodDisruptionBudget violations,
 *   2. the highest priority among the victims,
 *   3. the number of victims,
 *   4. the GPUs freed (so the fewest beyond the need),
 * then prefers the best connected GPU set for the preemptor, the victims kube-scheduler's own
 * dry run chose, and the lowest sum of priorities. Pods already being deleted are leaving
 * anyway: they cost nothing in 1-4 and are listed only when they are needed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/sched.h"

/* Up to this many pods of lower priority, every set is weighed (2^16 at most, pruned); past
 * it, the choice is kube-scheduler's "evict all, then reprieve" over the same rules. Every
 * node with a published topology (16 GPUs at most) is searched exhaustively. */
#define PREEMPT_EXHAUSTIVE_MAX 16
/* Budgets one decision weighs; pods covered by others count as covered by none. */
#define PREEMPT_MAX_PDBS 64

/* A GPU pod counted on the node. */
struct preempt_pod {
    int64_t gpus;
    uint32_t mask; /* the indices it holds, when known; 0 otherwise */
    int32_t priority;
    bool deleting; /* already leaving */
    bool offered;  /* kube-scheduler's dry run chose it */
    uint64_t pdbs; /* bit i: budget i covers it (and it is not already disrupted) */
};

struct preempt_node {
    struct sched_node now;  /* the node as filter sees it now */
    uint32_t in_use_mask;   /* indices the node itself reports taken */
    uint32_t reserved_mask; /* indices binds in flight hold */
    const struct preempt_pod *pods;
    size_t pod_count;
    const int32_t *pdb_allowed; /* disruptions each budget allows */
    size_t pdb_count;
    /* GPUs promised to other pods nominated to this node (by an earlier preemption) whose
     * priority is not below the preemptor's: kube-scheduler keeps them free for those, so they
     * are taken here, whoever leaves. */
    int64_t nominated_gpus;
};

enum preempt_outcome {
    PREEMPT_CHOSEN = 0, /* victims chosen: evicting them makes the pod fit */
    PREEMPT_FITS_NOW,   /* it fits without evicting anyone */
    PREEMPT_NO_LOWER,   /* no GPU pod of lower priority is here */
    PREEMPT_CANNOT_FIT, /* even with every lower-priority pod gone it does not fit: see fit */
};

/* What one choice costs, compared by preempt_cost_cmp(). */
struct preempt_cost {
    int violations;       /* PodDisruptionBudget violations */
    int32_t max_priority; /* highest priority among victims not already leaving */
    unsigned count;       /* victims not already leaving */
    int64_t gpus_freed;   /* GPUs they free */
    uint32_t set_score;   /* topo_set_score() of the set the pod would get; 0 count-only */
    unsigned not_offered; /* victims the dry run did not choose */
    int64_t priority_sum;
    unsigned listed; /* every victim, those already leaving included */
};

struct preempt_choice {
    enum preempt_outcome outcome;
    struct sched_fit fit; /* CANNOT_FIT: why, with every lower-priority pod gone */
    struct preempt_cost cost;
    int64_t gpus_needed; /* GPUs the pod lacks now (requested - free) */
    uint32_t gpu_set;    /* the GPUs it would get (topology nodes; 0 otherwise) */
    bool exhaustive;     /* every set was weighed */
};

/* Chooses the victims on node for the prepared pod sp; chosen[i] (node->pod_count entries)
 * says whether node->pods[i] goes. Only pods of lower priority than sp->pod are ever chosen.
 * The caller handles preemptionPolicy: Never. */
void preempt_choose(const struct sched_pod *sp, const struct preempt_node *node, bool *chosen,
                    struct preempt_choice *out);

/* The node as it would be with the pods in gone[] (node->pod_count entries) evicted. */
struct sched_node preempt_node_after(const struct preempt_node *in, const bool *gone);

/* <0 when a is the better (cheaper) choice, >0 when b is, 0 when they tie. */
int preempt_cost_cmp(const struct preempt_cost *a, const struct preempt_cost *b);

/* "fits without evicting", "no GPU pod of lower priority", ... for logs and explain. */
const char *preempt_outcome_text(enum preempt_outcome o);
