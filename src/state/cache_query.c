/* cache_query.c -- what explain and preemption read from the cache (see cache.h). These
 * scan or gather under the lock, away from the per-request snapshot path. */
#include <string.h>

#include "gx/bits.h"

#include "cache_internal.h"

static struct str entry_str(const struct strmap_entry *e)
{
    return (struct str){e->key, e->key_len};
}

struct pending_scan {
    struct str ns, name;
    const struct pod_info *hit;
};

static void find_pending(struct strmap_entry *e, void *ctx)
{
    struct pending_scan *ps = ctx;
    const struct pod_rec *r = e->value;

    if (!ps->hit && r->pending && str_eq(r->pending->ns, ps->ns) &&
        str_eq(r->pending->name, ps->name))
        ps->hit = r->pending;
}

static bool arena_str(struct arena *a, struct str *s)
{
    char *p;

    if (s->len == 0)
        return true;
    p = arena_strndup(a, s->ptr, s->len);
    if (!p)
        return false;
    s->ptr = p;
    return true;
}

static bool copy_pending(struct arena *arena, const struct pod_info *src, struct pod_info *out)
{
    struct str *fields[PENDING_STRINGS];
    bool ok = true;

    *out = *src;
    cache_pending_strings(out, fields);
    for (size_t i = 0; i < PENDING_STRINGS && ok; i++)
        ok = arena_str(arena, fields[i]);
    return ok;
}

bool cache_pending_pod(struct cache *c, struct str ns, struct str name, struct arena *arena,
                       struct pod_info *out)
{
    struct pending_scan ps = {.ns = ns, .name = name};
    bool ok = false;

    pthread_mutex_lock(&c->lock);
    strmap_each(&c->pods, find_pending, &ps);
    if (ps.hit)
        ok = copy_pending(arena, ps.hit, out);
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* ---- what a bind takes on the cache's word ---- */

static const char *bind_facts_locked(struct cache *c, struct str uid, struct str ns,
                                     struct str name, struct str node, struct arena *arena,
                                     struct cache_bind_facts *out)
{
    const struct strmap_entry *pe, *ne;
    const struct pod_rec *r;
    const struct node_rec *n;

    if (!(c->nodes_listed && c->pods_listed))
        return "the cache has not synced";
    if (!c->connected)
        return "a watch is in an outage";
    pe = strmap_find(&c->pods, uid);
    r = pe ? pe->value : NULL;
    if (!r)
        return "no GPU pod with that UID in the cache";
    if (!r->pending)
        return "the pod is not pending in the cache";
    if (!str_eq(r->pending->ns, ns) || !str_eq(r->pending->name, name))
        return "the UID belongs to another pod";
    ne = strmap_find(&c->nodes, node);
    if (!ne)
        return "the node is not in the cache";
    n = ne->value;
    if (n->info.model.len >= sizeof(out->model))
        return "the node's model is too long";
    memcpy(out->model, n->info.model.ptr, n->info.model.len);
    out->model[n->info.model.len] = '\0';
    if (!copy_pending(arena, r->pending, &out->pod))
        return "out of memory";
    return NULL;
}

const char *cache_bind_facts(struct cache *c, struct str uid, struct str ns, struct str name,
                             struct str node, struct arena *arena, struct cache_bind_facts *out)
{
    const char *why;

    memset(out, 0, sizeof(*out));
    if (uid.len == 0)
        return "the bind names no UID";
    pthread_mutex_lock(&c->lock);
    why = bind_facts_locked(c, uid, ns, name, node, arena, out);
    pthread_mutex_unlock(&c->lock);
    return why;
}

/* ---- preemption ---- */

static bool copy_pod(struct arena *a, const struct pod_rec *r, struct cache_bound_pod *out)
{
    *out = (struct cache_bound_pod){.uid = str_from_cstr(r->uid),
                                    .ns = pod_rec_ns(r),
                                    .name = pod_rec_name(r),
                                    .labels = pod_rec_labels(r),
                                    .gpus = r->gpus,
                                    .mask = r->mask,
                                    .priority = r->priority,
                                    .deleting = r->deleting,
                                    .labels_unknown = r->labels_unknown};
    return arena_str(a, &out->uid) && arena_str(a, &out->ns) && arena_str(a, &out->name) &&
           arena_str(a, &out->labels);
}

static bool copy_nominated(struct arena *a, const struct pod_rec *r, struct cache_bound_pod *out)
{
    const struct pod_info *p = r->pending;

    *out = (struct cache_bound_pod){
        .uid = p->uid, .ns = p->ns, .name = p->name, .gpus = p->gpus, .priority = p->priority};
    return arena_str(a, &out->uid) && arena_str(a, &out->ns) && arena_str(a, &out->name);
}

static bool gather_nominated(struct cache *c, struct str name, struct arena *a,
                             struct cache_node_pods *out)
{
    const struct strmap_entry *le = strmap_find(&c->nominated_on, name);
    const struct pod_rec *r;
    size_t n = 0;

    for (r = le ? le->value : NULL; r; r = r->node_next)
        n++;
    if (n == 0)
        return true;
    out->nominated = arena_alloc(a, n * sizeof(*out->nominated));
    if (!out->nominated)
        return false;
    for (r = le->value; r; r = r->node_next)
        if (!copy_nominated(a, r, &out->nominated[out->nominated_count++]))
            return false;
    return true;
}

static bool gather_node(struct cache *c, const struct snapshot_impl *s, struct str name,
                        struct arena *a, struct cache_node_pods *out)
{
    const struct strmap_entry *ne = strmap_find(&c->nodes, name);
    const struct strmap_entry *le = strmap_find(&c->on_node, name);
    const struct pod_rec *r;
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    out->node = cache_snapshot_find(&s->pub, name);
    if (!out->node || !ne)
        return true;
    out->in_use_mask = ((const struct node_rec *)ne->value)->in_use_mask;
    out->reserved_mask = cache_reserved_mask(c, name);
    for (r = le ? le->value : NULL; r; r = r->node_next)
        n++;
    out->pods = arena_alloc(a, (n + 1) * sizeof(*out->pods));
    if (!out->pods)
        return false;
    for (r = le ? le->value : NULL; r; r = r->node_next) {
        struct cache_bound_pod *bp = &out->pods[out->pod_count++];
        uint32_t m;

        if (!copy_pod(a, r, bp))
            return false;
        /* Where the node agent lists the pod, its GPUs are the ones the node reports. */
        if (r->agent_listed &&
            cache_agent_lookup(((const struct node_rec *)ne->value)->agent, bp->ns, bp->name, &m))
            bp->mask = bits_popcount32(m) == (unsigned)bp->gpus ? m : 0;
    }
    return gather_nominated(c, name, a, out);
}

struct pdb_gather {
    struct arena *arena;
    const struct cache_preempt_view *view;
    struct pdb_info *out;
    size_t n, cap;
    bool ok;
};

static bool namespace_wanted(const struct cache_preempt_view *v, struct str ns)
{
    for (size_t i = 0; i < v->node_count; i++)
        for (size_t j = 0; j < v->nodes[i].pod_count; j++)
            if (str_eq(v->nodes[i].pods[j].ns, ns))
                return true;
    return false;
}

static void add_pdb(struct strmap_entry *e, void *ctx)
{
    struct pdb_gather *g = ctx;
    const struct pdb_rec *r = e->value;
    struct pdb_info *p;

    if (!g->ok || g->n == g->cap || !namespace_wanted(g->view, r->info.ns))
        return;
    p = &g->out[g->n++];
    *p = r->info;
    g->ok = arena_str(g->arena, &p->ns) && arena_str(g->arena, &p->name) &&
            arena_str(g->arena, &p->selector) && arena_str(g->arena, &p->disrupted);
}

static enum err gather_locked(struct cache *c, const struct str *names, size_t n,
                              struct arena *arena, struct cache_preempt_view *out)
{
    struct pdb_gather g = {.arena = arena, .view = out, .ok = true};
    struct snapshot_impl *s;

    if (!(c->nodes_listed && c->pods_listed))
        return ERR_UNAVAILABLE;
    s = cache_snapshot_current(c);
    out->snap = &s->pub;
    out->nodes = arena_alloc(arena, (n + 1) * sizeof(*out->nodes));
    if (!out->nodes)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++, out->node_count++)
        if (!gather_node(c, s, names[i], arena, &out->nodes[i]))
            return ERR_TOO_LARGE;
    g.cap = c->pdbs.count;
    g.out = out->pdbs = arena_alloc(arena, (g.cap + 1) * sizeof(*out->pdbs));
    if (!g.out)
        return ERR_TOO_LARGE;
    strmap_each(&c->pdbs, add_pdb, &g);
    out->pdb_count = g.n;
    out->pdbs_synced = c->pdbs_listed;
    return g.ok ? ERR_OK : ERR_TOO_LARGE;
}

enum err cache_preempt_view(struct cache *c, const struct str *names, size_t n, struct arena *arena,
                            struct cache_preempt_view *out)
{
    enum err e;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->lock);
    e = gather_locked(c, names, n, arena, out);
    pthread_mutex_unlock(&c->lock);
    if (e != ERR_OK && out->snap) {
        cache_snapshot_release(out->snap);
        out->snap = NULL;
    }
    return e;
}

/* ---- every GPU pod, for snapshots ---- */

struct each_pod {
    cache_pod_fn *fn;
    void *ctx;
};

static void visit_pod(struct strmap_entry *e, void *ctx)
{
    const struct each_pod *ep = ctx;
    const struct pod_rec *r = e->value;
    struct cache_pod_facts f = {
        .uid = entry_str(e), .gpus = r->gpus, .priority = r->priority, .deleting = r->deleting};

    if (r->pending) {
        f.ns = r->pending->ns;
        f.name = r->pending->name;
        f.models = r->pending->ann_gpu_model;
    } else if (r->counted) {
        f.ns = pod_rec_ns(r);
        f.name = pod_rec_name(r);
        f.node = pod_rec_node(r);
        f.mask = r->mask;
        f.models = cache_demand_models(r);
    } else {
        return; /* finished, or being deleted before it was bound: holds nothing */
    }
    ep->fn(ep->ctx, &f);
}

void cache_each_gpu_pod(struct cache *c, cache_pod_fn *fn, void *ctx)
{
    struct each_pod ep = {fn, ctx};

    pthread_mutex_lock(&c->lock);
    strmap_each(&c->pods, visit_pod, &ep);
    pthread_mutex_unlock(&c->lock);
}
