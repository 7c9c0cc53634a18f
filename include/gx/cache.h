/* cache.h -- cluster state: the GPU facts of every node and of every pod that asks for GPUs,
 * kept from the API server's list and watch, and published as immutable, refcounted
 * snapshots. Watch threads write; request threads only read snapshots. Whole objects are never
 * kept: a node costs its name, model, family strings and a few counters; a GPU pod its UID,
 * node name and count; a pod that asks for no GPU costs nothing.
 *
 * Accounting: free GPUs on a node = allocatable - GPUs of non-terminal pods bound there
 * (a pod being deleted still holds its GPUs until it is gone) - reservations of binds in flight.
 * A reservation is taken before a bind POSTs and turns into ordinary accounting when the watch
 * shows the pod bound, or is released when the bind fails.
 *
 * Locking: one mutex guards the mutable maps; it is held only for in-memory work, never
 * across I/O. Every function is thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/objects.h"

/* A reservation that the watch never confirms (the pod vanished, the watch is down) is
 * dropped after this long, so a leak cannot hold GPUs forever. */
#define CACHE_RESERVATION_TTL_MS (UINT64_C(5) * 60 * 1000)

struct cache;

struct topo;

/* What the node agent (gpu-extender-agent) published on a node. */
struct cache_agent_facts {
    const char *meta;       /* gpu-extender.io/agent as written; "" when absent */
    const char *changed_at; /* gpu-extender.io/agent-changed-at (RFC 3339); "" when absent */
    bool pods_known;        /* gpu-extender.io/gpu-pods was there and readable */
    size_t pods;            /* pods it lists as holding GPUs */
};

struct cache_node {
    /* What every decision reads comes first, with the name and the allocatable count of info
     * right after it: a request touches two adjacent cache lines of each node it names. */
    int64_t gpus_used;     /* non-terminal pods bound here */
    int64_t gpus_reserved; /* binds in flight, not yet seen bound */
    /* GPU indices, when the node publishes a topology (else topo is NULL and the node is
     * count-only). The GPUs known to be taken, by index, are the node's own
     * gpu-extender.io/gpus-in-use, the gpu-extender.io/gpus of pods bound here and the sets
     * of binds in flight. Any GPUs taken beyond those are unknown_used: taken, but nobody
     * said which, so topology assumes the worst about them. */
    const struct topo *topo;
    uint32_t named_mask;   /* indices known taken */
    uint32_t free_mask;    /* healthy and not known taken */
    unsigned unknown_used; /* max(0, used + reserved - |named_mask|) */
    /* The node's model facts (product, family, GPU memory) numbered: 1-based into the
     * snapshot's models; 0 when the cache ran out of numbers (CACHE_MODELS_MAX). */
    uint32_t model_id;
    struct node_info info;  /* strings owned by the snapshot; raw is empty */
    const char *topo_error; /* why the topology annotation was refused; "" when it was not */
    /* The node agent's facts; NULL when no agent publishes on this node. Where it lists the
     * node's pods (pods_known), its gpu-extender.io/gpus-in-use is the taken set for them: a
     * listed pod's own gpu-extender.io/gpus no longer counts in named_mask. */
    const struct cache_agent_facts *agent;
};

/* Distinct model facts the cache numbers; nodes past them are decided one by one. */
#define CACHE_MODELS_MAX 4096

/* What the demand for each GPU model is worked out from (sched.h, "constrained demand"): the
 * GPUs of every model, and the GPU pods grouped by the facts that decide which models they may
 * use. Immutable; shared by the snapshots taken while it does not change.
 *
 * Pending pods keep all those facts (namespace, labels, priority class, model annotations);
 * pods bound and not finished keep all but their labels, which the cache does not hold for
 * running pods. */
struct cache_demand_model {
    struct node_info rep; /* a node of the model (name empty): product, model, family, memory */
    int64_t gpus;         /* allocatable GPUs of the model's nodes */
};

struct cache_demand_group {
    /* ns, priority_class, the model annotations; labels when pending, rule_record when bound */
    struct pod_info pod;
    int64_t gpus; /* of all the group's pods */
    bool pending;
};

struct cache_demand {
    uint64_t generation; /* changes whenever anything below does */
    size_t model_count;
    const struct cache_demand_model *models;
    size_t group_count;
    const struct cache_demand_group *groups;
    size_t pending_count;
    const uint64_t *pending_uids; /* strmap_hash() of each pending pod's UID, ascending */
};

/* Is the pod with this UID one of the pending pods counted in d? */
bool cache_demand_counts_pending(const struct cache_demand *d, struct str uid);

struct cache_snapshot {
    size_t node_count; /* cache_snapshot_node(snap, 0 .. node_count - 1), in no particular order */
    bool synced;       /* both nodes and pods have been listed once */
    uint64_t generation;               /* grows with every change published */
    const struct cache_demand *demand; /* never NULL; lives as long as the snapshot */
    /* One node_info per distinct model facts (product, model, family, GPU memory; nothing
     * else is set): models[id - 1] for cache_node.model_id. Lives as long as the cache. */
    const struct node_info *const *models;
    size_t model_count;
};

struct cache_status {
    bool synced;
    bool connected; /* no watch is in an outage */
    int64_t age_ms; /* since the last word from the API server; -1 before any */
    size_t nodes;
    size_t gpu_pods;
    size_t reservations;
    uint64_t events; /* objects applied since start */
    uint64_t relists;
    uint64_t snapshots_whole;   /* built node by node */
    uint64_t snapshots_patched; /* only the nodes events touched rebuilt */
    size_t topologies;          /* distinct node topology annotations held */
    size_t topology_shapes;     /* distinct links-and-health among them: shared tables */
    size_t topology_bytes;      /* memory they take, shared tables counted once */
};

struct cache *cache_new(void);
void cache_free(struct cache *c);

/* ---- writer side (watch threads) ---- */

/* A full list of nodes (or pods) starts: entries not seen again before *_relist_end() are
 * removed then. */
void cache_nodes_relist_begin(struct cache *c);
void cache_nodes_relist_end(struct cache *c);
void cache_pods_relist_begin(struct cache *c);
void cache_pods_relist_end(struct cache *c);
/* Adds or replaces one node; strings are copied. */
void cache_node_upsert(struct cache *c, const struct node_info *n);
void cache_node_delete(struct cache *c, struct str name);
/* Adds, replaces or removes (deleted) one pod. Pods without GPUs are ignored. */
void cache_pod_upsert(struct cache *c, const struct pod_info *p);
void cache_pod_delete(struct cache *c, const struct pod_info *p);

/* One Node or Pod object as the API server sent it (a list item or a watch event's object),
 * decoded with the shared object decoder and applied: upserted, or deleted when deleted is
 * true. Returns ERR_PARSE (the object was not applied; eb says why) for an object the decoder
 * cannot read, which the caller should count and skip: one odd object must not stop the
 * cache. */
enum err cache_apply_json(struct cache *c, bool pod, bool deleted, const char *json, size_t len,
                          struct errbuf *eb) GX_MUST_CHECK;
/* The stream is alive (bookmark or events), or not (why: one line). */
void cache_contact(struct cache *c);
void cache_disconnected(struct cache *c, const char *why);

/* PodDisruptionBudgets (policy/v1), which preemption counts. Their watch is apart from the
 * nodes' and pods': a cache without them is still synced, and preemption then counts no
 * violations (the view says so). */
void cache_pdbs_relist_begin(struct cache *c);
void cache_pdbs_relist_end(struct cache *c);
/* True once after a namespace got its first budget while the cache held pods whose labels it
 * had no reason to keep: the caller should list the pods again (kube_watch_relist()). */
bool cache_pods_relist_wanted(struct cache *c);
/* One PodDisruptionBudget object, applied (or removed when deleted). ERR_PARSE as for
 * cache_apply_json(). */
enum err cache_pdb_apply_json(struct cache *c, bool deleted, const char *json, size_t len,
                              struct errbuf *eb) GX_MUST_CHECK;

/* ---- reader side (request threads) ---- */

/* The current snapshot, with a reference held; never NULL. Pair with cache_snapshot_release(). */
struct cache_snapshot *cache_snapshot_acquire(struct cache *c);
void cache_snapshot_release(struct cache_snapshot *snap);
/* The i-th node of the snapshot, i < node_count. */
const struct cache_node *cache_snapshot_node(const struct cache_snapshot *snap, size_t i);
/* The node named name, or NULL. */
const struct cache_node *cache_snapshot_find(const struct cache_snapshot *snap, struct str name);
/* out[i] = cache_snapshot_find(snap, names[i]) for every i < n, faster for many names. */
void cache_snapshot_find_all(const struct cache_snapshot *snap, const struct str *names, size_t n,
                             const struct cache_node **out);

/* Chooses the GPU indices a bind takes on node (a cache_node as it is right now, every other
 * reservation counted), or returns 0 to take a count only. The mask must lie within
 * node->free_mask and hold exactly the requested count; anything else is ignored. Called
 * with the cache lock held: it must be quick and must not call back into the cache. */
typedef uint32_t cache_choose_fn(void *ctx, const struct cache_node *node);

/* Reserves gpus on node for the pod pod_uid, if that many are free now counting every other
 * reservation. choose (may be NULL) picks which GPU indices; *mask (may be NULL) gets them,
 * 0 when none were named. A reservation belongs to one pod on one node: two binds of the same pod
 * to two nodes hold two, and each bind releases only its own. Returns ERR_OK (also when this pod
 * already holds a reservation or is already counted on that node), ERR_UNAVAILABLE when they
 * are not free or the cache is not synced, ERR_NOT_FOUND for a node the cache does not know;
 * eb says why. */
enum err cache_reserve(struct cache *c, struct str pod_uid, struct str node, int64_t gpus,
                       cache_choose_fn *choose, void *choose_ctx, uint32_t *mask,
                       struct errbuf *eb) GX_MUST_CHECK;
/* Drops the pod's reservation on node (that bind failed). No-op when there is none. */
void cache_release(struct cache *c, struct str pod_uid, struct str node);

void cache_status_get(struct cache *c, struct cache_status *out);

/* ---- every GPU pod, for snapshots ---- */

/* A GPU pod the cache holds: bound (node set; its GPU indices in mask when known) or pending
 * (node empty). models is its gpu-extender.io/gpu-model, on a pod we bound the one it was bound
 * with (objects.h). Strings are valid during the call. */
struct cache_pod_facts {
    struct str uid, ns, name, node, models;
    int64_t gpus;
    uint32_t mask;
    int32_t priority;
    bool deleting;
};

typedef void cache_pod_fn(void *ctx, const struct cache_pod_facts *p);

/* Calls fn on every pod bound and holding GPUs, and every pending GPU pod, under the lock (fn
 * must not call into the cache). Scans every GPU pod: for snapshots, not for requests. */
void cache_each_gpu_pod(struct cache *c, cache_pod_fn *fn, void *ctx);

/* ---- what preemption reads ---- */

/* A GPU pod counted on a node, as preemption weighs it. Strings live in the view's arena. */
struct cache_bound_pod {
    struct str uid, ns, name;
    struct str labels; /* raw JSON object; empty when none (or not kept) */
    int64_t gpus;
    uint32_t mask; /* the GPU indices it holds, when gpu-extender.io/gpus names them; else 0 */
    int32_t priority;
    bool deleting; /* already leaving */
    /* Its labels were not kept (too long, or no budget in its namespace when it was last seen):
     * assume every budget of its namespace covers it. */
    bool labels_unknown;
};

/* One node and every GPU pod counted there, at one moment. */
struct cache_node_pods {
    const struct cache_node *node; /* in the view's snapshot; NULL: the cache does not know it */
    uint32_t in_use_mask;          /* the node's own gpu-extender.io/gpus-in-use */
    uint32_t reserved_mask;        /* indices held by binds in flight */
    struct cache_bound_pod *pods;
    size_t pod_count;
    /* Pending GPU pods an earlier preemption nominated to this node (status.nominatedNodeName):
     * kube-scheduler keeps room for those of equal or higher priority. No labels, no mask. */
    struct cache_bound_pod *nominated;
    size_t nominated_count;
};

struct cache_preempt_view {
    struct cache_snapshot *snap;   /* held; release with cache_snapshot_release() */
    struct cache_node_pods *nodes; /* one per name asked, in the same order */
    size_t node_count;
    struct pdb_info *pdbs; /* every budget in the namespaces of those pods */
    size_t pdb_count;
    bool pdbs_synced; /* budgets have been listed once */
};

/* Gathers, under one hold of the lock, the named nodes (from a snapshot current at that
 * moment), the GPU pods counted on each and the disruption budgets that may cover them, into
 * arena. ERR_UNAVAILABLE before the cache has synced; ERR_TOO_LARGE when the arena runs out.
 * out->snap is set on success only. */
enum err cache_preempt_view(struct cache *c, const struct str *names, size_t n, struct arena *arena,
                            struct cache_preempt_view *out) GX_MUST_CHECK;

/* Finds a pending (not yet bound) GPU pod by namespace and name and copies what decisions
 * need into *out, its strings in arena. False when there is none or the arena is full. Scans
 * every GPU pod: meant for the explain endpoint, not for the hot path. */
bool cache_pending_pod(struct cache *c, struct str ns, struct str name, struct arena *arena,
                       struct pod_info *out);

/* What a bind may take on the cache's word instead of GETting the pod and the node. */
struct cache_bind_facts {
    struct pod_info pod; /* the pending pod as the watch last showed it; strings in the arena */
    char model[128];     /* the node's GPU model (its gpu-extender.io/gpu-model value) */
};

/* Fills *out when the cache can vouch for a bind of the pod uid (named ns/name) to node: the
 * cache is synced and no watch is in an outage, the pod is held as pending (not bound, not
 * being deleted, not finished) under that UID, namespace and name, and the node is known.
 * Returns NULL then, else a short reason it cannot (for the log). One lookup by UID under
 * the lock: cheap enough for every bind. */
const char *cache_bind_facts(struct cache *c, struct str uid, struct str ns, struct str name,
                             struct str node, struct arena *arena, struct cache_bind_facts *out);
