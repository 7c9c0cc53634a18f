/* sim.h -- replay a GPU cluster's workload through the scheduler's own decisions.
 *
 * A cluster (nodes with a GPU count, a model and optionally a topology) and a workload (pods
 * with a GPU count, allowed models, and arrival, start and end times) are replayed as a
 * discrete-event simulation: each arriving pod is filtered and scored over every node by
 * sched.h, exactly as the daemon answers kube-scheduler, and placed on the node kube-scheduler
 * would pick (the highest score; ties by a seeded random choice). Pods that fit nowhere wait,
 * in arrival order, and are tried again whenever GPUs are freed. Next to each policy, classic
 * baselines run on the same filter: random fit, first fit, best fit, worst fit.
 *
 * What is not modelled: CPU and memory (every node has room for every pod but its GPUs), GPU
 * sharing (a pod asking part of a GPU takes a whole one, or is left out with skip_sharing),
 * pods without GPUs (left out), preemption and priorities.
 *
 * Pure: no I/O except in the loaders and writers, no globals; one run per call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/cache.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/policy.h"
#include "gx/topology.h"

/* A node of the simulated cluster. Strings are owned by the cluster. */
struct sim_node {
    char *name;
    char *model;       /* becomes the nvidia.com/gpu.product label */
    int64_t gpus;      /* allocatable nvidia.com/gpu */
    struct topo *topo; /* NULL: count-only; one reference owned */
};

/* A pod of the workload. Times are seconds from the start of the trace. */
struct sim_pod {
    char *name;
    char *models;    /* allowed models, comma-separated (gpu-extender.io/gpu-model); "" any */
    int64_t gpus;    /* whole GPUs taken */
    bool sharing;    /* it asked part of one GPU (trace gpu_milli < 1000) */
    double t_create; /* arrival */
    double duration; /* how long it runs once placed */
    double t_delete; /* withdrawn if still waiting then; < 0: never */
    char *node;      /* a snapshot's bound pod: already on this node (NULL: it arrives) */
    uint32_t mask;   /* and the GPU indices it holds there, when known */
};

struct sim_cluster {
    struct sim_node *nodes;
    size_t node_count;
};

struct sim_workload {
    struct sim_pod *pods; /* by arrival */
    size_t pod_count;
    size_t skipped_cpu_only; /* rows asking no GPU, left out */
    size_t skipped_sharing;  /* GPU-sharing rows left out (skip_sharing) */
    size_t sharing_as_whole; /* GPU-sharing rows counted as one whole GPU */
    bool has_times;          /* the trace gives creation times (else only fill makes sense) */
};

/* How a run picks the node. */
enum sim_strategy {
    SIM_POLICY = 0, /* sched_score_node() with the run's policy: the daemon's answer */
    SIM_RANDOM,     /* any feasible node, uniformly */
    SIM_FIRST_FIT,  /* the first feasible node in cluster order */
    SIM_BEST_FIT,   /* the feasible node left with the fewest free GPUs */
    SIM_WORST_FIT,  /* the most free GPUs left, as a fraction (kube-scheduler's LeastAllocated) */
};

/* One column of the report: a strategy and, for SIM_POLICY, the policy (borrowed). */
struct sim_run_spec {
    char label[64];
    enum sim_strategy strategy;
    const struct policy *pol; /* filter (and for SIM_POLICY, score) use it; never NULL */
};

enum sim_mode {
    SIM_REPLAY = 0, /* arrivals and departures at the trace's times */
    SIM_FILL,       /* arrivals in order, nothing leaves: until the cluster is full */
};

struct sim_options {
    enum sim_mode mode;
    uint64_t seed;
    double speedup;  /* divide every time and duration by this (1: the trace's own) */
    double compress; /* also divide arrival times by this: X times the load (1: none) */
    /* Called at each placement, before the GPUs are taken (may be NULL): for tests that check
     * each decision against the daemon's answers on the same state. */
    void (*on_place)(void *ctx, size_t pod, size_t node);
    void *on_place_ctx;
    /* Called when a pod arrives, before its first decision (may be NULL): for the same tests,
     * to show the daemon's cache the pod pending. Its ctx is on_place_ctx. */
    void (*on_arrive)(void *ctx, size_t pod);
};

#define SIM_GPU_BUCKETS 4 /* 1, 2, 4, 8+ GPUs */
#define SIM_THRESHOLDS 3  /* 70, 85, 95 % allocation */
#define SIM_SERIES_MAX 512

/* What one run measured. */
struct sim_result {
    char label[64];
    size_t pods;             /* pods in the workload */
    size_t placed;           /* placed at least once */
    size_t never_placed;     /* withdrawn while waiting, or still waiting at the end */
    int64_t gpus_total;      /* GPUs in the cluster */
    int64_t demand_arrived;  /* GPUs asked by pods that arrived (fill: until the end) */
    int64_t demand_placed;   /* GPUs of those placed */
    double alloc_first_fail; /* fill: allocation when the first pod could not be placed */
    double alloc_final;      /* fill: allocation at the end */
    double alloc_mean;       /* replay: time-averaged GPU allocation */
    /* Per GPU bucket: waiting time percentiles (replay, seconds), pods, and (fill) the share of
     * requests placed once allocation had passed each threshold. */
    double wait_p50[SIM_GPU_BUCKETS], wait_p95[SIM_GPU_BUCKETS], wait_p99[SIM_GPU_BUCKETS];
    double wait_cdf[101]; /* replay: the wait at each percentile 0..100, every pod placed */
    size_t bucket_pods[SIM_GPU_BUCKETS];
    size_t bucket_placed[SIM_GPU_BUCKETS]; /* placed at least once */
    size_t after_tried[SIM_GPU_BUCKETS][SIM_THRESHOLDS];
    size_t after_placed[SIM_GPU_BUCKETS][SIM_THRESHOLDS];
    /* Multi-GPU pods placed on a node with a topology, and how many of those got a set as well
     * connected as the best the node could have offered on an empty node. */
    size_t topo_pods, topo_best;
    size_t decided_by_rule[64]; /* SIM_POLICY: pods placed per rule (index: policy rule, last
                                   counted slot the default rule) */
    /* Allocation over time: (time, allocation) samples; fill: (demand arrived, placed). */
    size_t series_len;
    double series_x[SIM_SERIES_MAX], series_y[SIM_SERIES_MAX];
    /* Per model: GPU-seconds used over GPU-seconds available, until the last arrival. */
    size_t model_count;
    char models[16][32];
    double model_util[16];
    double events_per_s; /* simulated events (arrivals, placements, departures) per second */
    uint64_t events;
};

/* Loaders. The trace's CSVs (../shared/traces/README.md): nodes sn,gpu,model (other columns
 * ignored; rows with no GPU are left out); pods name,num_gpu and optionally gpu_milli,
 * gpu_spec, creation_time, scheduled_time, deletion_time (others ignored; without
 * creation_time the rows arrive in file order and never leave). eb says which line is wrong. */
enum err sim_load_nodes_csv(const char *path, struct sim_cluster *out,
                            struct errbuf *eb) GX_MUST_CHECK;
enum err sim_load_pods_csv(const char *path, bool skip_sharing, struct sim_workload *out,
                           struct errbuf *eb) GX_MUST_CHECK;
/* A live cluster: `gpu-extender snapshot` writes the nodes (with their topology) and GPU pods
 * the cache holds; read back, bound pods stay where they are and pending ones arrive at once. */
enum err sim_snapshot_write(struct cache *c, struct buf *out) GX_MUST_CHECK;
bool sim_is_snapshot(const char *path);
enum err sim_load_snapshot(const char *path, struct sim_cluster *c, struct sim_workload *w,
                           struct errbuf *eb) GX_MUST_CHECK;
void sim_cluster_free(struct sim_cluster *c);
void sim_workload_free(struct sim_workload *w);

/* Gives the 8-GPU nodes a DGX-1 (V100-class: hybrid cube mesh), HGX (all NVLink through
 * NVSwitch) or PCIe (two switches per NUMA node) topology, by model, deterministically; 4-GPU
 * nodes two NVLink pairs; 2-GPU nodes one PIX pair. */
void sim_add_topologies(struct sim_cluster *c);

/* Runs one column. */
void sim_run(const struct sim_cluster *c, const struct sim_workload *w,
             const struct sim_run_spec *spec, const struct sim_options *opt,
             struct sim_result *out);

/* `gpu-extender simulate ...`: parses argv (argv[0] is "simulate"), runs every column, writes
 * the report. Returns the process exit code. */
int sim_main(int argc, char **argv);
