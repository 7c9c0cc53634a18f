/* cache_internal.h -- the cache's records and the helpers its files share (cache.c: nodes,
 * pods, snapshots; cache_resv.c: reservations and GPU indices; cache_pdb.c: disruption
 * budgets; cache_query.c: what explain and preemption read). Every helper expects the
 * cache lock held. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gx/cache.h"
#include "gx/k8s.h"
#include "gx/strmap.h"

/* Room for a topology's intern key: "<t|h>:<length>:<hash>:<hash>". */
#define TOPO_KEY_MAX 64
/* Taints longer than this are not kept (they are only shown, never decided on). */
#define TAINTS_MAX_BYTES 2048
#define TOPO_ERROR_MAX 160
/* GPU indices the books track per node: masks are 32 bits. */
#define INDEX_SLOTS 32

/* What the node agent published about a node: which pod holds which GPUs, who it is and when
 * its facts last changed. One allocation; keys ("<ns>/<pod>") and strings live in text. */
struct agent_pod {
    const char *key;
    uint32_t key_len;
    uint32_t mask;
};

struct agent_rec {
    struct cache_agent_facts pub; /* first: what snapshots show */
    struct agent_pod *pods;       /* pub.pods of them, sorted by key */
    char text[];
};

/* Longest agent annotations kept: the meta is a few dozen bytes, a node's pod list a few KiB. */
#define AGENT_META_MAX 512
#define AGENT_PODS_MAX (256u << 10)

struct node_rec {
    atomic_int refs;
    bool seen; /* during a relist; guarded by the cache lock */
    struct node_info info;
    struct topo *topo;           /* one reference, counted in c->topos; NULL: count-only */
    char topo_key[TOPO_KEY_MAX]; /* of the annotation text; "" when there is none */
    char *topo_error;            /* NULL unless the annotation was refused (malloc'd) */
    uint32_t in_use_mask;        /* gpu-extender.io/gpus-in-use */
    uint32_t model_id;           /* its model facts in c->models, 1-based; 0: none */
    struct agent_rec *agent;     /* NULL: no node agent publishes here */
    char strings[];
};

/* One GPU pod. A bound one also keeps what preemption weighs: its priority, whether it is
 * already leaving, its namespace and name, and its labels where disruption budgets need them.
 * Kept small: there is one per GPU pod in the cluster. */
struct pod_rec {
    int64_t gpus;
    struct pod_info *pending; /* unbound pods only: what explain needs; NULL otherwise */
    /* Counted pods of the same node, a list headed in c->on_node; or, for a pending pod with
     * status.nominatedNodeName, the pods nominated to that node (c->nominated_on). */
    struct pod_rec *node_prev, *node_next;
    const char *uid; /* the key of its entry in c->pods, which lives as long as the record */
    uint32_t mask;   /* gpu-extender.io/gpus when it names exactly gpus indices */
    int32_t priority;
    uint16_t labels_len;
    uint8_t ns_len, name_len;
    bool counted : 1;        /* bound and not terminal: its GPUs are in use */
    bool seen : 1;           /* during a relist */
    bool deleting : 1;       /* metadata.deletionTimestamp is set */
    bool labels_unknown : 1; /* bound, but its labels were not kept (see cache_pod_labels_kept) */
    /* The node agent lists this pod in its gpu-extender.io/gpu-pods: the node's own in-use
     * mask covers its GPUs, so its mask is not counted in c->named (the agent is
     * authoritative; where the two disagree, ours would mark free GPUs taken). */
    bool agent_listed : 1;
    bool agent_drift : 1;       /* the agent's GPUs for it differ from ours (counted once) */
    struct demand_group *group; /* its demand group (cache_demand.c), while pending or counted */
    /* The node name and a NUL; then, for bound pods, namespace, name and labels, unterminated. */
    char text[];
};

static inline struct str pod_rec_node(const struct pod_rec *r)
{
    return str_from_cstr(r->text);
}

static inline struct str pod_rec_ns(const struct pod_rec *r)
{
    return (struct str){r->text + strlen(r->text) + 1, r->ns_len};
}

static inline struct str pod_rec_name(const struct pod_rec *r)
{
    struct str ns = pod_rec_ns(r);

    return (struct str){ns.ptr + ns.len, r->name_len};
}

static inline struct str pod_rec_labels(const struct pod_rec *r)
{
    struct str name = pod_rec_name(r);

    return (struct str){name.ptr + name.len, r->labels_len};
}

/* Labels are kept only for bound pods in namespaces that have a disruption budget (the only
 * use of them), and only this long. A pod whose labels were not kept counts as covered by every
 * budget of its namespace; when a namespace gets its first budget, the cache asks for the pods
 * to be listed again (cache_pods_relist_wanted), which brings their labels. */
#define CACHE_LABELS_MAX 4096

struct resv {
    char uid[128];
    char node[K8S_NAME_MAX + 1];
    int64_t gpus;
    uint32_t mask; /* the GPU indices it holds; 0 when it holds a count only */
    uint64_t created_ms;
};

/* How many pods and reservations hold each GPU index of a node. */
struct index_refs {
    uint16_t refs[INDEX_SLOTS];
};

/* A snapshot's nodes live in chunks of SNAP_CHUNK views, each chunk refcounted and shared by
 * the snapshots that did not change it: after a watch event the next snapshot copies the chunk
 * pointers and rebuilds only the chunks of the nodes the event touched. The frame (which node
 * is where, the name index, the names) is shared the same way until nodes come or go. */
#define SNAP_CHUNK 64

struct snap_chunk {
    atomic_int refs;
    struct cache_node nodes[SNAP_CHUNK];
    struct node_rec *recs[SNAP_CHUNK]; /* one reference each; NULL past the last node */
};

struct snap_frame {
    atomic_int refs;
    size_t count;
    char *names;     /* every node's name, NUL-terminated, one after another */
    uint64_t *index; /* open addressing: hash's high 32 bits << 32 | node position + 1; 0 empty */
    size_t index_mask;
};

struct snapshot_impl {
    struct cache_snapshot pub; /* first: the public view */
    atomic_int refs;
    struct snap_frame *frame;
    struct snap_chunk **chunks;
    size_t chunk_count;
};

/* The view at position pos of a snapshot. */
static inline const struct cache_node *snap_node(const struct snapshot_impl *s, size_t pos)
{
    return &s->chunks[pos / SNAP_CHUNK]->nodes[pos % SNAP_CHUNK];
}

struct cache {
    pthread_mutex_t lock;
    struct strmap nodes;        /* name -> struct node_rec * */
    struct strmap usage;        /* node name -> num: GPUs of counted pods */
    struct strmap reserved;     /* node name -> num: GPUs reserved */
    struct strmap pods;         /* uid -> struct pod_rec * */
    struct strmap resv;         /* "<pod uid>@<node>" -> struct resv * */
    struct strmap named;        /* node name -> struct index_refs *: indices taken by name */
    struct strmap topos;        /* topology key -> struct topo *, num = nodes using it */
    struct strmap on_node;      /* node name -> struct pod_rec *: the first counted pod there */
    struct strmap nominated_on; /* node name -> struct pod_rec *: the first pod nominated there */
    struct strmap pdbs;         /* "<namespace>/<name>" -> struct pdb_rec * */
    struct strmap pdb_ns;       /* namespace -> num: budgets there */
    /* Demand (cache_demand.c): model -> struct demand_model *, group key -> struct
     * demand_group *, pending pod UID -> num (its GPUs); the current published cache_demand. */
    struct strmap demand_models;
    struct strmap demand_groups;
    struct strmap demand_pending;
    uint64_t demand_generation;
    struct demand_impl *demand_current;
    uint64_t pdb_events;
    uint64_t generation;
    struct snapshot_impl *current;
    /* What changed since current was built: the nodes whose views may differ (name -> NULL),
     * and (reshaped, below) whether nodes came or went: then the next snapshot is built
     * whole. */
    struct strmap touched;
    uint64_t snapshots_whole, snapshots_patched;
    /* The distinct model facts of nodes (sched.h, struct sched_model_memo): key -> num, the
     * 1-based id; models[id - 1] holds them. Entries are never changed or freed before the
     * cache, so a snapshot shares the array and reads the first models it counted. */
    struct strmap model_ids;
    struct node_info **models;
    size_t model_count;
    uint64_t last_contact_ms;
    uint64_t events, relists;
    bool demand_dirty;
    bool pdbs_listed;
    bool relist_pods; /* a namespace got its first budget after the pods were listed */
    bool nodes_listed, pods_listed;
    bool dirty;
    bool reshaped;
    bool connected;
    char last_error[200]; /* why the last outage began */
};

/* A PodDisruptionBudget: its decoded facts, strings in text. */
struct pdb_rec {
    bool seen; /* during a relist */
    struct pdb_info info;
    char text[];
};

/* The strings a pending pod keeps for explain. */
#define PENDING_STRINGS 12

/* ---- cache.c ---- */

/* A node as decisions see it, with used and reserved GPUs; out points into r. */
void cache_node_view(struct cache *c, const struct node_rec *r, int64_t used, int64_t reserved,
                     struct cache_node *out);
void cache_pending_strings(struct pod_info *p, struct str *out[PENDING_STRINGS]);
/* The current snapshot, rebuilt first if anything changed, with a reference added. */
struct snapshot_impl *cache_snapshot_current(struct cache *c);
/* Notes that node's view (usage, reservations, named GPUs, its record) may have changed. */
void cache_touch(struct cache *c, struct str node);
/* Copies s to *p and advances it past a NUL. */
struct str cache_put_string(char **p, struct str s);

/* ---- cache_resv.c ---- */

/* Counts the indices in mask as taken (delta 1) or given back (-1) on node. */
void cache_index_add(struct cache *c, struct str node, uint32_t mask, int delta);
/* The key of one pod's reservation on one node. */
struct str cache_resv_key(char *buf, size_t cap, struct str uid, struct str node);
void cache_drop_reservation(struct cache *c, struct str key);
/* Drops every reservation of a pod (it is gone). */
void cache_drop_pod_reservations(struct cache *c, struct str uid);
/* Drops reservations the watch never confirmed. */
void cache_expire_reservations(struct cache *c);
int64_t cache_num_of(const struct strmap *m, struct str key);
/* The union of the GPU indices reservations hold on node. */
uint32_t cache_reserved_mask(struct cache *c, struct str node);

/* ---- cache_demand.c ---- */

struct demand_group;
struct demand_impl;

void cache_demand_init(struct cache *c);
void cache_demand_free(struct cache *c);
/* A node's GPUs join (delta 1) or leave (-1) its model's capacity. */
void cache_demand_node(struct cache *c, const struct node_info *n, int delta);
/* Gives a new pod record the demand group its facts put it in (pending or counted pods). */
void cache_demand_attach(struct cache *c, struct pod_rec *r, const struct pod_info *p);
/* The record's GPUs join (delta 1) or leave (-1) its group's demand. */
void cache_demand_account(struct cache *c, struct pod_rec *r, int delta);
/* The record is being freed: it leaves its group. */
void cache_demand_detach(struct cache *c, struct pod_rec *r);
/* The models the record's pod requires (its group's gpu-extender.io/gpu-model); empty if none. */
struct str cache_demand_models(const struct pod_rec *r);
/* The published demand, rebuilt first if anything changed, with a reference added. */
const struct cache_demand *cache_demand_acquire(struct cache *c);
void cache_demand_release(const struct cache_demand *d);

/* ---- cache_pdb.c ---- */

void cache_pdbs_init(struct cache *c);
/* Does the namespace have a disruption budget? */
bool cache_ns_has_pdb(struct cache *c, struct str ns);
void cache_pdbs_free(struct cache *c);

/* ---- the node agent's facts (cache_agent.c) ---- */

/* Reads what the agent published on n; NULL when it published nothing there. A gpu-pods
 * annotation that cannot be read counts as absent (logged and counted once per change). */
struct agent_rec *cache_agent_parse(const struct node_info *n, const struct agent_rec *prev);
/* The GPUs the agent says the pod ns/name holds; false when it does not list the pod. */
bool cache_agent_lookup(const struct agent_rec *a, struct str ns, struct str name, uint32_t *mask);
/* Does the agent of p's node list p? Sets p->agent_listed, and counts and logs a
 * disagreement with our own books the first time it appears for p. The caller holds the
 * lock. */
void cache_agent_mark(struct cache *c, struct pod_rec *p);
/* The node's agent facts changed: re-marks every pod counted there, moving their masks in or
 * out of c->named. The caller holds the lock. */
void cache_agent_resync(struct cache *c, struct str node);
