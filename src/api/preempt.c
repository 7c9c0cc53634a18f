/* preempt.c -- the preempt verb and the preemption part of explain (see preempt.h).
 *
 * kube-scheduler offers the nodes its dry run found victims on (its in-tree filters only,
 * counting GPUs since ignoredByScheduler is false) and those victims. For each node we ask
 * sched's preempt_choose() which pods to evict so that the pod passes our own filter there,
 * from what the cache holds: GPU indices, binds in flight, health, topology, budgets. Nodes
 * where no eviction helps are dropped; of the rest, the best is kept. Offered victims that
 * hold no GPU (kube-scheduler needed them for CPU or memory) are kept as they were offered. */
#include "preempt.h"

#include <stdio.h>
#include <string.h>

#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/sched.h"

/* Budgets one decision weighs (preempt.h); the rest are ignored and logged. */
#define PLAN_MAX_PDBS PREEMPT_MAX_PDBS

struct plan_node {
    struct str name;
    const struct cache_node_pods *np; /* NULL: the cache does not know the node */
    struct preempt_choice choice;
    bool *chosen;            /* one per np->pods */
    struct ext_victim *keep; /* offered victims kept as they are: no GPU of ours */
    size_t keep_count;
    int keep_violations;                  /* what keeping them costs in budgets (as best known) */
    const struct ext_preempt_node *offer; /* NULL in explain */
};

struct plan {
    struct cache_preempt_view view;
    struct plan_node *nodes;
    size_t count;
    size_t best; /* SIZE_MAX: no node helps */
    int32_t pdb_allowed[PLAN_MAX_PDBS];
    size_t pdb_count;
    bool pdbs_cut; /* more budgets than PLAN_MAX_PDBS */
};

static bool has_uid(const struct ext_preempt_node *offer, struct str uid)
{
    for (size_t i = 0; offer && i < offer->victim_count; i++)
        if (str_eq(offer->victims[i].uid, uid))
            return true;
    return false;
}

static bool pod_known(const struct cache_node_pods *np, struct str uid)
{
    for (size_t i = 0; i < np->pod_count; i++)
        if (str_eq(np->pods[i].uid, uid))
            return true;
    return false;
}

/* Which of the plan's budgets cover the pod. Labels too long to keep: every budget of its
 * namespace with a selector is assumed to. */
static uint64_t budgets_of(const struct plan *pl, struct str ns, struct str name, struct str labels,
                           bool labels_unknown)
{
    uint64_t bits = 0;

    for (size_t b = 0; b < pl->pdb_count; b++) {
        const struct pdb_info *pdb = &pl->view.pdbs[b];
        bool covers = labels_unknown ? str_eq(pdb->ns, ns) && pdb->selector.len > 0
                                     : obj_pdb_covers(pdb, ns, name, labels);
        bits |= covers ? UINT64_C(1) << b : 0;
    }
    return bits;
}

/* Offered victims the cache does not hold on that node are kept: in full-Nodes mode only
 * those whose Pod asks for no GPU (one that does is a pod our cache has not seen there yet,
 * and evicting it frees nothing we can count on); in NodeNames mode all of them, since
 * kube-scheduler sees them there and only a pod without GPUs can be missing from our cache.
 * Their budget cost is exact in full mode, and the dry run's own count (at most one per kept
 * pod) in NodeNames mode. */
static bool keep_offered(struct plan *pl, struct plan_node *pn, struct arena *a)
{
    const struct ext_preempt_node *o = pn->offer;
    int32_t allowed[PLAN_MAX_PDBS];
    size_t unknown = 0;

    if (!o || o->victim_count == 0)
        return true;
    pn->keep = arena_alloc(a, o->victim_count * sizeof(*pn->keep));
    if (!pn->keep)
        return false;
    memcpy(allowed, pl->pdb_allowed, sizeof(allowed));
    for (size_t i = 0; i < o->victim_count; i++) {
        const struct ext_victim *v = &o->victims[i];
        if (pod_known(pn->np, v->uid) || (v->pod && v->pod->gpus > 0))
            continue;
        pn->keep[pn->keep_count++] = *v;
        if (!v->pod) {
            unknown++;
            continue;
        }
        {
            uint64_t bits = budgets_of(pl, v->pod->ns, v->pod->name, v->pod->labels, false);
            bool violates = false;
            for (size_t b = 0; b < pl->pdb_count; b++)
                if ((bits >> b) & 1u)
                    violates |= --allowed[b] < 0;
            pn->keep_violations += violates;
        }
    }
    if (unknown)
        pn->keep_violations +=
            (int)(o->pdb_violations < (int64_t)unknown ? o->pdb_violations : (int64_t)unknown);
    return true;
}

/* GPUs kube-scheduler keeps for the other pods nominated to the node: those whose priority
 * is not below the pod's (addNominatedPods in its filters). */
static int64_t nominated_gpus(const struct cache_node_pods *np, const struct pod_info *pod)
{
    int64_t n = 0;

    for (size_t i = 0; i < np->nominated_count; i++) {
        const struct cache_bound_pod *o = &np->nominated[i];
        if (o->priority >= pod->priority && !str_eq(o->uid, pod->uid))
            n += o->gpus;
    }
    return n;
}

static bool plan_node(struct plan *pl, const struct sched_pod *sp, struct plan_node *pn,
                      struct arena *a)
{
    const struct cache_node_pods *np = pn->np;
    struct preempt_pod *pods = arena_alloc(a, (np->pod_count + 1) * sizeof(*pods));
    struct preempt_node in = {.now = sched_node_of(np->node),
                              .in_use_mask = np->in_use_mask,
                              .reserved_mask = np->reserved_mask,
                              .pods = pods,
                              .pod_count = np->pod_count,
                              .pdb_allowed = pl->pdb_allowed,
                              .pdb_count = pl->pdb_count,
                              .nominated_gpus = nominated_gpus(np, sp->pod)};

    pn->chosen = arena_alloc(a, (np->pod_count + 1) * sizeof(*pn->chosen));
    if (!pods || !pn->chosen)
        return false;
    for (size_t i = 0; i < np->pod_count; i++) {
        const struct cache_bound_pod *b = &np->pods[i];
        pods[i] = (struct preempt_pod){
            .gpus = b->gpus,
            .mask = b->mask,
            .priority = b->priority,
            .deleting = b->deleting,
            .offered = has_uid(pn->offer, b->uid),
            .pdbs = b->priority < sp->pod->priority
                        ? budgets_of(pl, b->ns, b->name, b->labels, b->labels_unknown)
                        : 0};
    }
    preempt_choose(sp, &in, pn->chosen, &pn->choice);
    if (pn->choice.outcome != PREEMPT_CHOSEN)
        return true;
    return keep_offered(pl, pn, a);
}

/* The cost kube-scheduler will see: ours plus the kept offered victims. */
static struct preempt_cost full_cost(const struct plan_node *pn)
{
    struct preempt_cost c = pn->choice.cost;

    c.violations += pn->keep_violations;
    c.count += (unsigned)pn->keep_count;
    c.listed += (unsigned)pn->keep_count;
    return c;
}

/* Builds the plan for sp on names (with offer, the request's map in the same order, or NULL).
 * The view's snapshot is held on success; release with plan_release(). */
static enum err plan_build(struct cache *cache, const struct sched_pod *sp,
                           const struct ext_preempt_args *offer, const struct str *names, size_t n,
                           struct arena *a, struct plan *pl)
{
    enum err e;

    memset(pl, 0, sizeof(*pl));
    pl->best = SIZE_MAX;
    e = cache_preempt_view(cache, names, n, a, &pl->view);
    if (e != ERR_OK)
        return e;
    pl->pdb_count = pl->view.pdb_count < PLAN_MAX_PDBS ? pl->view.pdb_count : PLAN_MAX_PDBS;
    pl->pdbs_cut = pl->view.pdb_count > PLAN_MAX_PDBS;
    for (size_t b = 0; b < pl->pdb_count; b++)
        pl->pdb_allowed[b] = pl->view.pdbs[b].allowed;
    pl->nodes = arena_zalloc(a, (n + 1) * sizeof(*pl->nodes));
    if (!pl->nodes)
        return ERR_TOO_LARGE;
    pl->count = n;
    for (size_t i = 0; i < n; i++) {
        struct plan_node *pn = &pl->nodes[i];
        pn->name = names[i];
        pn->offer = offer && i < offer->node_count ? &offer->nodes[i] : NULL;
        if (!pl->view.nodes[i].node)
            continue;
        pn->np = &pl->view.nodes[i];
        if (!plan_node(pl, sp, pn, a))
            return ERR_TOO_LARGE;
        if (pn->choice.outcome != PREEMPT_CHOSEN)
            continue;
        if (pl->best == SIZE_MAX) {
            pl->best = i;
        } else {
            struct preempt_cost c = full_cost(pn), b = full_cost(&pl->nodes[pl->best]);
            if (preempt_cost_cmp(&c, &b) < 0)
                pl->best = i;
        }
    }
    return ERR_OK;
}

static void plan_release(struct plan *pl)
{
    if (pl->view.snap)
        cache_snapshot_release(pl->view.snap);
    pl->view.snap = NULL;
}

/* ---- the verb ---- */

static const char no_cache_msg[] =
    "gpu-extender: preemption needs the cluster cache, and this extender runs standalone (no "
    "API server configured)";
static const char not_synced_msg[] =
    "gpu-extender: the cluster cache has not synced with the API server yet; retry";

/* The reply: the best node, its victims (ours, then the kept offered ones). */
static enum err reply_plan(struct exchange *ex, const struct plan *pl)
{
    const struct plan_node *pn;
    struct ext_preempt_node out = {0};
    struct codec_preempt_result res = {.nodes = &out, .node_count = 0};
    size_t k = 0;

    if (pl->best == SIZE_MAX)
        return codec_reply_preempt(ex, &res);
    pn = &pl->nodes[pl->best];
    out.name = pn->name;
    out.victims =
        arena_alloc(&ex->arena, (pn->np->pod_count + pn->keep_count + 1) * sizeof(*out.victims));
    if (!out.victims)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < pn->np->pod_count; i++)
        if (pn->chosen[i])
            out.victims[k++] = (struct ext_victim){.uid = pn->np->pods[i].uid};
    for (size_t i = 0; i < pn->keep_count; i++)
        out.victims[k++] = pn->keep[i];
    out.victim_count = k;
    out.pdb_violations = full_cost(pn).violations;
    res.node_count = 1;
    return codec_reply_preempt(ex, &res);
}

/* One line per decision: the node kept and its victims, or why none was. */
static void log_plan(const struct sched_pod *sp, const struct plan *pl, size_t offered)
{
    const struct plan_node *pn;
    char victims[512];
    size_t len = 0;

    if (pl->best == SIZE_MAX) {
        log_info("preempt", "no node where evicting helps; nothing evicted",
                 "pod=%.*s/%.*s priority=%d offered=%zu", (int)sp->pod->ns.len, sp->pod->ns.ptr,
                 (int)sp->pod->name.len, sp->pod->name.ptr, (int)sp->pod->priority, offered);
        return;
    }
    pn = &pl->nodes[pl->best];
    victims[0] = '\0';
    for (size_t i = 0; i < pn->np->pod_count && len < sizeof(victims) - 1; i++) {
        const struct cache_bound_pod *b = &pn->np->pods[i];
        int w;
        if (!pn->chosen[i])
            continue;
        w = snprintf(victims + len, sizeof(victims) - len, "%s%.*s/%.*s", len ? "," : "",
                     (int)b->ns.len, b->ns.ptr, (int)b->name.len, b->name.ptr);
        len = w < 0 ? len : len + (size_t)w;
        if (len >= sizeof(victims))
            len = sizeof(victims) - 1;
    }
    log_info("preempt", "victims chosen",
             "pod=%.*s/%.*s priority=%d node=%.*s victims=%s kept_offered=%zu "
             "max_victim_priority=%d pdb_violations=%d gpus_freed=%lld gpus_needed=%lld "
             "offered_nodes=%zu",
             (int)sp->pod->ns.len, sp->pod->ns.ptr, (int)sp->pod->name.len, sp->pod->name.ptr,
             (int)sp->pod->priority, (int)pn->name.len, pn->name.ptr, victims, pn->keep_count,
             (int)pn->choice.cost.max_priority, full_cost(pn).violations,
             (long long)pn->choice.cost.gpus_freed, (long long)pn->choice.gpus_needed, offered);
}

/* Counts and logs what became of every offered node. */
static void observe_plan(const struct sched_pod *sp, const struct plan *pl)
{
    size_t kept = pl->best == SIZE_MAX ? 0 : 1, victims = 0;

    for (size_t i = 0; i < pl->count; i++) {
        const struct plan_node *pn = &pl->nodes[i];
        if (i == pl->best) {
            victims = pn->choice.cost.listed + pn->keep_count;
            continue;
        }
        log_debug("preempt", "node dropped", "pod=%.*s/%.*s node=%.*s why=\"%s\"",
                  (int)sp->pod->ns.len, sp->pod->ns.ptr, (int)sp->pod->name.len, sp->pod->name.ptr,
                  (int)pn->name.len, pn->name.ptr,
                  !pn->np ? "not in the cluster cache"
                  : pn->choice.outcome == PREEMPT_CHOSEN
                      ? "another node needs fewer or lower-priority victims"
                      : preempt_outcome_text(pn->choice.outcome));
    }
    metrics_counter_add(METRICS_PREEMPT_NODES_KEPT, kept);
    metrics_counter_add(METRICS_PREEMPT_NODES_DROPPED, pl->count - kept);
    metrics_counter_add(METRICS_PREEMPT_VICTIMS, victims);
    if (pl->pdbs_cut)
        log_warn("preempt", "more disruption budgets than one decision weighs; some ignored",
                 "budgets=%zu weighed=%d", pl->view.pdb_count, PLAN_MAX_PDBS);
}

/* Is the pod already promised a node (an earlier preemption) that will fit it once the pods
 * leaving it are gone, beside the other pods nominated there that kube-scheduler puts first?
 * Then evicting more, anywhere, would be for nothing: kube-scheduler retries the pod there as
 * soon as they are. */
static bool nominated_will_fit(struct cache *cache, const struct sched_pod *sp, struct arena *a)
{
    struct str name = sp->pod->nominated_node;
    struct cache_preempt_view v;
    bool fits = false;

    if (name.len == 0 || cache_preempt_view(cache, &name, 1, a, &v) != ERR_OK)
        return false;
    if (v.nodes[0].node) {
        const struct cache_node_pods *np = &v.nodes[0];
        struct preempt_pod *pods = arena_alloc(a, (np->pod_count + 1) * sizeof(*pods));
        bool *gone = arena_alloc(a, (np->pod_count + 1) * sizeof(*gone));
        struct preempt_node in = {.now = sched_node_of(np->node),
                                  .in_use_mask = np->in_use_mask,
                                  .reserved_mask = np->reserved_mask,
                                  .pods = pods,
                                  .pod_count = np->pod_count,
                                  .nominated_gpus = nominated_gpus(np, sp->pod)};
        if (pods && gone) {
            struct sched_node after;
            for (size_t i = 0; i < np->pod_count; i++) {
                pods[i] = (struct preempt_pod){.gpus = np->pods[i].gpus, .mask = np->pods[i].mask};
                gone[i] = np->pods[i].deleting;
            }
            after = preempt_node_after(&in, gone);
            fits = sched_filter_node(sp, &after).verdict == SCHED_PASS;
        }
    }
    cache_snapshot_release(v.snap);
    return fits;
}

bool preempt_serve(const struct preempt_deps *d, struct exchange *ex)
{
    struct ext_preempt_args args;
    struct errbuf eb = ERRBUF_INIT;
    struct policy *pol;
    struct sched_pod sp;
    struct str *names;
    struct plan pl;
    enum err e;

    e = codec_decode_preempt(&ex->arena, ex->body, ex->body_len, &args, &eb);
    if (e != ERR_OK) {
        codec_reply_err(ex, e, eb.msg);
        return true;
    }
    if (!d->cache) {
        codec_reply_err(ex, ERR_UNAVAILABLE, no_cache_msg);
        return true;
    }
    pol = policy_store_get(d->policies);
    memset(&pl, 0, sizeof(pl));
    pl.best = SIZE_MAX;
    names = arena_alloc(&ex->arena, (args.node_count + 1) * sizeof(*names));
    if (!names) {
        e = ERR_TOO_LARGE;
    } else if (args.pod.preempt_never || !sched_pod_prepare(&sp, &args.pod, pol, &eb)) {
        /* kube-scheduler does not ask for a Never pod; a pod our policy refuses cannot be
         * placed anywhere, so no eviction is worth it. Either way: no node. */
        log_info("preempt", "pod may not preempt; nothing evicted", "pod=%.*s/%.*s why=\"%s\"",
                 (int)args.pod.ns.len, args.pod.ns.ptr, (int)args.pod.name.len, args.pod.name.ptr,
                 args.pod.preempt_never ? "preemptionPolicy: Never" : eb.msg);
        e = reply_plan(ex, &pl);
    } else if (nominated_will_fit(d->cache, &sp, &ex->arena)) {
        log_info("preempt",
                 "the nominated node will fit once its leaving pods are gone; "
                 "nothing more evicted",
                 "pod=%.*s/%.*s node=%.*s", (int)args.pod.ns.len, args.pod.ns.ptr,
                 (int)args.pod.name.len, args.pod.name.ptr, (int)args.pod.nominated_node.len,
                 args.pod.nominated_node.ptr);
        e = reply_plan(ex, &pl);
    } else {
        for (size_t i = 0; i < args.node_count; i++)
            names[i] = args.nodes[i].name;
        e = plan_build(d->cache, &sp, &args, names, args.node_count, &ex->arena, &pl);
        if (e == ERR_OK) {
            observe_plan(&sp, &pl);
            log_plan(&sp, &pl, args.node_count);
            e = reply_plan(ex, &pl);
        }
    }
    plan_release(&pl);
    policy_unref(pol);
    if (e == ERR_OK)
        return false;
    codec_reply_err(ex, e, e == ERR_UNAVAILABLE ? not_synced_msg : NULL);
    return true;
}

/* ---- explain ---- */

static cJSON *mask_json(uint32_t mask)
{
    cJSON *arr = cJSON_CreateArray();

    for (unsigned i = 0; i < 32; i++)
        if (mask & (UINT32_C(1) << i))
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(i));
    return arr;
}

static cJSON *str_json(struct str s)
{
    char buf[2 * 256 + 2];

    snprintf(buf, sizeof(buf), "%.*s", (int)s.len, s.ptr);
    return cJSON_CreateString(buf);
}

static cJSON *plan_node_json(const struct sched_pod *sp, const struct plan_node *pn, bool best)
{
    cJSON *o = cJSON_CreateObject(), *v;
    struct buf reason;

    cJSON_AddItemToObject(o, "name", str_json(pn->name));
    cJSON_AddStringToObject(o, "outcome", preempt_outcome_text(pn->choice.outcome));
    if (pn->choice.outcome == PREEMPT_CANNOT_FIT) {
        buf_init(&reason, 4096);
        if (sched_reason_format(pn->choice.fit, sp, &pn->np->node->info, &reason) == ERR_OK)
            cJSON_AddStringToObject(o, "reason", reason.ptr);
        buf_destroy(&reason);
    }
    if (pn->choice.outcome != PREEMPT_CHOSEN)
        return o;
    cJSON_AddBoolToObject(o, "chosen", best);
    v = cJSON_AddArrayToObject(o, "victims");
    for (size_t i = 0; i < pn->np->pod_count; i++) {
        const struct cache_bound_pod *b = &pn->np->pods[i];
        cJSON *p;
        if (!pn->chosen[i])
            continue;
        p = cJSON_CreateObject();
        cJSON_AddItemToObject(p, "namespace", str_json(b->ns));
        cJSON_AddItemToObject(p, "name", str_json(b->name));
        cJSON_AddNumberToObject(p, "priority", b->priority);
        cJSON_AddNumberToObject(p, "gpus", (double)b->gpus);
        cJSON_AddBoolToObject(p, "leaving", b->deleting);
        cJSON_AddItemToArray(v, p);
    }
    cJSON_AddNumberToObject(o, "pdbViolations", pn->choice.cost.violations);
    cJSON_AddNumberToObject(o, "maxVictimPriority", pn->choice.cost.max_priority);
    cJSON_AddNumberToObject(o, "gpusNeeded", (double)pn->choice.gpus_needed);
    cJSON_AddNumberToObject(o, "gpusFreed", (double)pn->choice.cost.gpus_freed);
    cJSON_AddItemToObject(o, "gpusForPod", mask_json(pn->choice.gpu_set));
    return o;
}

cJSON *preempt_explain(struct cache *cache, const struct sched_pod *sp, const struct str *names,
                       size_t n, struct arena *arena)
{
    cJSON *doc, *arr;
    struct plan pl;

    if (plan_build(cache, sp, NULL, names, n, arena, &pl) != ERR_OK) {
        plan_release(&pl);
        return NULL;
    }
    doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "mayPreempt", !sp->pod->preempt_never);
    cJSON_AddNumberToObject(doc, "priority", sp->pod->priority);
    if (pl.best != SIZE_MAX)
        cJSON_AddItemToObject(doc, "node", str_json(pl.nodes[pl.best].name));
    else
        cJSON_AddNullToObject(doc, "node");
    cJSON_AddBoolToObject(doc, "budgetsKnown", pl.view.pdbs_synced);
    arr = cJSON_AddArrayToObject(doc, "nodes");
    for (size_t i = 0; i < pl.count; i++)
        if (pl.nodes[i].np)
            cJSON_AddItemToArray(arr, plan_node_json(sp, &pl.nodes[i], i == pl.best));
    plan_release(&pl);
    return doc;
}
