/* agent.h -- the node agent (build/gpu-extender-agent): what it publishes on its Node and how.
 *
 * The agent reads the node's GPUs through NVML (nvml.h), the devices each pod holds through
 * the kubelet's PodResources API (podres.h), and publishes, on its own Node object:
 *
 *   gpu-extender.io/topology          the GPUs, their health and links (topology.h's format)
 *   gpu-extender.io/gpus-in-use       indices held by containers, "0,3"
 *   gpu-extender.io/gpu-pods          which pod holds which: {"<ns>/<pod>":"0,1",...}
 *   gpu-extender.io/agent             {"version":...,"source":"nvml+podresources",
 *                                      "podResources":"ok"|"unavailable","health":"events"|...}
 *   gpu-extender.io/agent-changed-at  RFC 3339 UTC: when the facts above last changed
 *
 * and GPU Feature Discovery's labels (nvidia.com/gpu.product, .memory, .family, .count,
 * .compute.major, .compute.minor) when
 * the node has none of its own. The extender reads all of these (objects.h, cache.h).
 *
 * The functions here are pure: they turn facts into annotation values and two sets of values
 * into the merge patch that moves one to the other. The loop, NVML and the API live in
 * agent_main.c, nvml.c and publish.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gx/buf.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/gpu_facts.h"
#include "gx/kubeconfig.h"
#include "gx/podres.h"

#define AGENT_ANN_GPU_PODS "gpu-extender.io/gpu-pods"
#define AGENT_ANN_AGENT "gpu-extender.io/agent"
#define AGENT_ANN_CHANGED_AT "gpu-extender.io/agent-changed-at"
#define AGENT_GPU_RESOURCE "nvidia.com/gpu"

/* ---- settings ---- */

struct agent_config {
    char node_name[256];
    char kubeconfig[1024];
    char serviceaccount_dir[1024];
    char nvml_lib[1024];
    char pod_resources_socket[1024];
    char ignored_xids[256];
    char log_level[16];
    char health_file[1024];  /* touched by every turn of the loop */
    char check_health[1024]; /* probe mode: is this file fresh? */
    long long health_max_age_ms;
    long long interval_ms;
    long long settle_ms;
    long long max_delay_ms;
    long long recollect_ms;
    long long timeout_ms;
    bool once;
    bool dry_run;
    bool help;
    bool version;
};

/* Flags, their environment twins (GPU_EXTENDER_AGENT_<NAME>; --node-name also reads NODE_NAME,
 * which the downward API sets) and defaults. ERR_INVALID with the reason in eb. */
enum err agent_config_parse(int argc, char **argv, char **env, struct agent_config *out,
                            struct errbuf *eb) GX_MUST_CHECK;
void agent_config_usage(FILE *out);

/* ---- what to publish ---- */

/* One published key: a Node annotation, or a label (GFD's). NULL value: absent. */
enum agent_key {
    AGENT_KEY_TOPOLOGY = 0,
    AGENT_KEY_IN_USE,
    AGENT_KEY_GPU_PODS,
    AGENT_KEY_AGENT,
    AGENT_KEY_CHANGED_AT, /* never compared: it moves only when another key does */
    AGENT_KEY_LABEL_PRODUCT,
    AGENT_KEY_LABEL_MEMORY,
    AGENT_KEY_LABEL_FAMILY,
    AGENT_KEY_LABEL_COUNT,
    AGENT_KEY_LABEL_COMPUTE_MAJOR,
    AGENT_KEY_LABEL_COMPUTE_MINOR,
    AGENT_KEY_COUNT
};

/* The name of a key ("gpu-extender.io/topology", "nvidia.com/gpu.product", ...). */
const char *agent_key_name(enum agent_key k);
/* True for the GFD labels, which live under metadata.labels. */
bool agent_key_is_label(enum agent_key k);

struct agent_state {
    char *v[AGENT_KEY_COUNT]; /* malloc'd, or NULL: absent */
};

void agent_state_clear(struct agent_state *s);
void agent_state_copy(struct agent_state *dst, const struct agent_state *src);
/* Same values for every key but AGENT_KEY_CHANGED_AT. */
bool agent_state_same(const struct agent_state *a, const struct agent_state *b);

/* What the PodResources API said, mapped onto the node's GPUs. */
struct agent_usage {
    bool known;           /* false: PodResources unavailable; in-use and gpu-pods are unsaid */
    uint32_t mask;        /* GPU indices held by any container */
    size_t unknown_ids;   /* nvidia.com/gpu device ids that are no GPU of NVML's (MIG, stale) */
    struct buf pods_json; /* {"<ns>/<pod>":"0,1",...}, pods sorted by name */
};

/* Maps every nvidia.com/gpu device of the list onto GPU indices by UUID ("GPU-x", or
 * "GPU-x::n" under time-slicing, both meaning GPU-x). list NULL: unknown. */
enum err agent_usage_from(const struct gpu_facts *f, const struct podres_list *list,
                          struct agent_usage *out) GX_MUST_CHECK;
void agent_usage_destroy(struct agent_usage *u);

struct agent_meta {
    const char *version;
    bool health_events; /* NVML events armed: health is watched, not assumed */
    bool gfd_labels;    /* publish GFD's labels (the node has none of its own) */
};

/* Everything to publish, changed-at excepted (the caller stamps it). */
enum err agent_state_build(const struct gpu_facts *f, const struct agent_usage *u,
                           const struct agent_meta *m, struct agent_state *out) GX_MUST_CHECK;

/* The JSON merge patch (RFC 7386) of the Node that turns have into want: the keys whose
 * values differ, null for the ones want lacks. Empty (len 0) when they are the same. */
enum err agent_patch(const struct agent_state *want, const struct agent_state *have,
                     struct buf *out) GX_MUST_CHECK;

/* want's annotations as one JSON object (what --dry-run prints), labels under "labels"
 * when there are any. */
enum err agent_state_json(const struct agent_state *s, struct buf *out) GX_MUST_CHECK;

/* ---- publishing (publish.c) ---- */

struct agent_publisher;

/* A publisher for the Node node_name, through the API server in creds. */
enum err agent_publisher_new(const struct kubeconfig_creds *creds, const char *node_name,
                             long timeout_ms, struct agent_publisher **out,
                             struct errbuf *eb) GX_MUST_CHECK;
void agent_publisher_free(struct agent_publisher *p);
/* Reads the Node as it is now: what it carries of ours, and whether it has GFD's labels.
 * Called at start and after every failed patch, so that nothing is lost across a restart or
 * an outage: the next patch is the difference from what the Node really holds. */
enum err agent_publisher_refresh(struct agent_publisher *p, struct errbuf *eb) GX_MUST_CHECK;
/* True when the Node carries GFD's product label that the agent did not write. */
bool agent_publisher_node_has_gfd(const struct agent_publisher *p);
/* What the Node holds of ours, as last read or patched. */
const struct agent_state *agent_publisher_have(const struct agent_publisher *p);
/* Patches the difference between want and what the Node holds; *patched says whether a
 * request was made. ERR_UPSTREAM (status in eb) or ERR_IO / ERR_TIMEOUT on failure. */
enum err agent_publisher_sync(struct agent_publisher *p, const struct agent_state *want,
                              bool *patched, struct errbuf *eb) GX_MUST_CHECK;
