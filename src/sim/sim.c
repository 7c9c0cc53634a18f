/* sim.c -- the discrete-event replay (see sim.h).
 *
 * Every decision goes through sched.h as the daemon's do: sched_pod_prepare() once per pod,
 * sched_filter_node() on every node, sched_score_node() on the feasible ones (SIM_POLICY), and
 * sched_choose_gpus() for the GPU set on a node that publishes a topology. A node's facts are
 * a node_info like the cache's, and its state (GPUs used, indices taken) is what the cache
 * would hold after the binds.
 *
 * Waiting pods are retried when GPUs are freed. Only the node that freed them can have become
 * feasible for a pod that fit nowhere before (placements only take GPUs), so a departure
 * retries the waiting pods, in arrival order, on that node alone: the same outcome as trying
 * every node, at a fraction of the cost. */
#include "gx/sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/bits.h"
#include "gx/clock.h"
#include "gx/sched.h"
#include "gx/strmap.h"

#include "groups.h"

struct nstate {
    struct node_info info;
    const struct topo *topo;
    int64_t used;
    uint32_t taken; /* indices taken (topology nodes) */
    int model;      /* index into run.models */
};

struct placed {
    int node; /* -1: not placed */
    uint32_t set;
    double t_start;
};

struct departure {
    double t;
    size_t pod;
};

struct run {
    const struct sim_cluster *c;
    const struct sim_workload *w;
    const struct sim_run_spec *spec;
    const struct sim_options *opt;
    struct sim_result *out;
    struct nstate *nodes;
    struct placed *pl;
    struct sched_pod *sp;
    bool *prepared;
    struct pod_info *pods;
    uint64_t rng;
    int64_t used_total;
    /* departures: a binary min-heap by time */
    struct departure *heap;
    size_t heap_len;
    /* waiting pods, by arrival */
    size_t *queue;
    size_t queue_len;
    /* per model: GPUs, GPUs used, GPU-seconds used */
    int64_t model_gpus[16], model_used[16];
    double model_busy[16];
    double last_t, busy_total; /* for the time-averaged allocation */
    double t_end, next_sample;
    /* waiting times per bucket */
    double *waits[SIM_GPU_BUCKETS];
    size_t wait_len[SIM_GPU_BUCKETS];
    /* nodes by decision state */
    struct groups *groups;
    int *cls; /* per node: its class (model, GPU count, topology) */
    /* The constrained demand of the pods pending and running, as the daemon's cache would hold
     * them (SIM_POLICY with a scarcity weight only; else NULL). */
    struct sched_demand *demand;
    uint64_t *allowed; /* per pod: the models it may use */
    bool demand_stale; /* changed since sched_demand_finish() */
};

/* ---- helpers ---- */

/* When pod arrives in the simulation: its trace time, over speedup and compress. */
static double arrival(const struct run *r, size_t pod)
{
    return r->w->pods[pod].t_create / (r->opt->speedup * r->opt->compress);
}

/* How long it runs, and how long it is willing to wait (< 0: for ever). */
static double run_time(const struct run *r, size_t pod)
{
    return r->w->pods[pod].duration / r->opt->speedup;
}

static double patience(const struct run *r, size_t pod)
{
    const struct sim_pod *p = &r->w->pods[pod];

    return p->t_delete < 0 ? -1 : (p->t_delete - p->t_create) / r->opt->speedup;
}

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int bucket_of(int64_t gpus)
{
    return gpus >= 8 ? 3 : gpus >= 4 ? 2 : gpus >= 2 ? 1 : 0;
}

static double alloc_now(const struct run *r)
{
    return r->out->gpus_total ? (double)r->used_total / (double)r->out->gpus_total : 0.0;
}

static struct sched_node view(const struct nstate *n)
{
    struct sched_node v = {.info = &n->info, .used = n->used, .topo = n->topo};

    if (n->topo)
        v.free_mask = topo_healthy_mask(n->topo) & ~n->taken;
    return v;
}

/* ---- the decision ---- */

/* A pod arrives (delta 1: it is pending, then running) or leaves the cluster (-1). A pod is
 * decided on the demand of the others, so it is counted after its first decision, as the
 * daemon leaves the pod it decides out of the table. */
static void demand_update(struct run *r, size_t pod, int delta)
{
    if (!r->demand || !r->prepared[pod])
        return;
    sched_demand_add(r->demand, r->allowed[pod], delta * r->pods[pod].gpus);
    r->demand_stale = true;
}

/* The table as the daemon would build it for the cluster now, given to the pod. */
static void demand_apply(struct run *r, size_t pod)
{
    if (!r->demand)
        return;
    if (r->demand_stale)
        sched_demand_finish(r->demand);
    r->demand_stale = false;
    sched_pod_use_demand(&r->sp[pod], r->demand);
}

static bool feasible(const struct run *r, size_t pod, const struct nstate *n)
{
    struct sched_node v;

    if (n->info.gpu_allocatable - n->used < r->pods[pod].gpus)
        return false; /* filter's own first capacity check, without the call */
    v = view(n);
    return sched_filter_node(&r->sp[pod], &v).verdict == SCHED_PASS;
}

/* GPUs left free as a fraction of the node's, after the pod. */
static double free_after(const struct nstate *n, int64_t k)
{
    return (double)(n->info.gpu_allocatable - n->used - k) / (double)n->info.gpu_allocatable;
}

/* How the run's strategy rates a feasible node (higher is better). */
static double rate(struct run *r, size_t pod, const struct nstate *n)
{
    int64_t k = r->pods[pod].gpus;
    struct sched_node v;

    switch (r->spec->strategy) {
    case SIM_POLICY:
        v = view(n);
        return sched_score_value(&r->sp[pod], &v);
    case SIM_BEST_FIT:
        return -(double)(n->info.gpu_allocatable - n->used - k);
    default:
        return free_after(n, k);
    }
}

/* The node for pod, or SIZE_MAX: every group of nodes in the same state is decided once, by
 * one of its nodes, and the choice is then made among nodes: first fit and best fit take the
 * lowest index among the best, the others a uniform random node among the best (a weighted
 * reservoir over the groups). */
static size_t choose(struct run *r, size_t pod)
{
    enum sim_strategy st = r->spec->strategy;
    size_t ng = groups_count(r->groups), total = 0, chosen = SIZE_MAX, lowest = SIZE_MAX;
    double best = -INFINITY;

    for (size_t i = 0; i < ng; i++) {
        struct group_view gv = groups_at(r->groups, i);
        const struct nstate *n = &r->nodes[groups_node_at(r->groups, gv.id, 0)];
        double s;
        if (!feasible(r, pod, n))
            continue;
        if (st == SIM_FIRST_FIT) {
            size_t m = groups_min_node(r->groups, gv.id);
            lowest = m < lowest ? m : lowest;
            continue;
        }
        s = st == SIM_RANDOM ? 0 : rate(r, pod, n);
        if (s > best) {
            best = s;
            total = 0;
            lowest = SIZE_MAX;
        } else if (s < best) {
            continue;
        }
        total += gv.size;
        if (st == SIM_BEST_FIT) {
            size_t m = groups_min_node(r->groups, gv.id);
            lowest = m < lowest ? m : lowest;
        } else if (next_random(&r->rng) % total < gv.size) {
            chosen = gv.id;
        }
    }
    if (st == SIM_FIRST_FIT || st == SIM_BEST_FIT)
        return lowest;
    if (chosen == SIZE_MAX)
        return SIZE_MAX;
    {
        struct group_view gv;
        for (size_t i = 0; i < ng; i++) {
            gv = groups_at(r->groups, i);
            if (gv.id == chosen)
                return groups_node_at(r->groups, chosen, next_random(&r->rng) % gv.size);
        }
    }
    return SIZE_MAX;
}

static void heap_push(struct run *r, double t, size_t pod)
{
    size_t i = r->heap_len++;

    while (i > 0 && r->heap[(i - 1) / 2].t > t) {
        r->heap[i] = r->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->heap[i] = (struct departure){t, pod};
}

static struct departure heap_pop(struct run *r)
{
    struct departure top = r->heap[0], last = r->heap[--r->heap_len];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->heap_len)
            break;
        if (c + 1 < r->heap_len && r->heap[c + 1].t < r->heap[c].t)
            c++;
        if (r->heap[c].t >= last.t)
            break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (r->heap_len)
        r->heap[i] = last;
    return top;
}

/* Advances the clock: GPU-seconds per model and in total. */
static void advance(struct run *r, double t)
{
    double dt = t - r->last_t;

    if (dt > 0) {
        for (size_t m = 0; m < r->out->model_count; m++)
            r->model_busy[m] += dt * (double)r->model_used[m];
        r->busy_total += dt * (double)r->used_total;
        r->last_t = t;
    }
    while (r->opt->mode == SIM_REPLAY && r->t_end > 0 && t >= r->next_sample &&
           r->out->series_len < SIM_SERIES_MAX) {
        r->out->series_x[r->out->series_len] = r->next_sample;
        r->out->series_y[r->out->series_len++] = alloc_now(r);
        r->next_sample += r->t_end / SIM_SERIES_MAX;
    }
}

/* The best interconnect a node could give k GPUs when empty. */
static void note_topology(struct run *r, const struct nstate *n, int64_t k, uint32_t set)
{
    struct topo_pick best;

    if (!n->topo || k < 2 || k > TOPO_MAX_GPUS)
        return;
    r->out->topo_pods++;
    best = topo_choose(n->topo, topo_healthy_mask(n->topo), (unsigned)k, TOPO_SYS);
    if (set && best.ok && topo_set_score(n->topo, set) >= best.score)
        r->out->topo_best++;
}

static void place(struct run *r, size_t pod, int node, double t)
{
    struct nstate *n = &r->nodes[node];
    int64_t k = r->pods[pod].gpus;
    struct sched_node v = view(n);
    uint32_t set = n->topo ? sched_choose_gpus(&r->sp[pod], &v) : 0;
    const struct sched_pod *sp = &r->sp[pod];
    int b = bucket_of(k);

    if (r->opt->on_place)
        r->opt->on_place(r->opt->on_place_ctx, pod, (size_t)node);
    if (n->topo && !set) {
        /* No set chosen (more GPUs than topology tracks): take the lowest free indices. */
        uint32_t free = v.free_mask;
        for (int64_t i = 0; i < k && free; i++) {
            set |= free & (~free + 1);
            free &= free - 1;
        }
    }
    n->used += k;
    n->taken |= set;
    groups_set(r->groups, (size_t)node, (uint32_t)r->cls[node], n->used, n->taken);
    r->used_total += k;
    r->model_used[n->model] += k;
    r->pl[pod] = (struct placed){node, set, t};
    r->out->placed++;
    r->out->bucket_placed[b]++;
    r->out->demand_placed += k;
    note_topology(r, n, k, set);
    if (r->spec->strategy == SIM_POLICY) {
        size_t ri = sp->rule == &sp->pol->default_rule ? sp->pol->rule_count
                                                       : (size_t)(sp->rule - sp->pol->rules);
        r->out->decided_by_rule[ri < 63 ? ri : 63]++;
    }
    r->waits[b][r->wait_len[b]++] = t - arrival(r, pod);
    if (r->opt->mode == SIM_REPLAY)
        heap_push(r, t + run_time(r, pod), pod);
    r->out->events++;
}

static void unplace(struct run *r, size_t pod)
{
    struct nstate *n = &r->nodes[r->pl[pod].node];
    int64_t k = r->pods[pod].gpus;

    n->used -= k;
    n->taken &= ~r->pl[pod].set;
    groups_set(r->groups, (size_t)r->pl[pod].node, (uint32_t)r->cls[r->pl[pod].node], n->used,
               n->taken);
    r->used_total -= k;
    r->model_used[n->model] -= k;
    r->out->events++;
}

/* Tries every node; places the pod and returns true when one fits. */
static bool try_all(struct run *r, size_t pod, double t)
{
    size_t node;

    if (!r->prepared[pod])
        return false;
    demand_apply(r, pod);
    node = choose(r, pod);
    if (node == SIZE_MAX)
        return false;
    place(r, pod, (int)node, t);
    return true;
}

/* GPUs were freed on node: the waiting pods, in arrival order, may now fit there. */
static void retry_on(struct run *r, int node, double t)
{
    size_t keep = 0;

    for (size_t i = 0; i < r->queue_len; i++) {
        size_t pod = r->queue[i];
        double wait = patience(r, pod);
        if (wait >= 0 && arrival(r, pod) + wait <= t) {
            r->out->never_placed++; /* withdrawn while waiting */
            demand_update(r, pod, -1);
            continue;
        }
        if (feasible(r, pod, &r->nodes[node])) {
            place(r, pod, node, t);
            continue;
        }
        r->queue[keep++] = pod;
    }
    r->queue_len = keep;
}

/* Waiting pods whose deletion time has passed leave, and their demand with them: the daemon's
 * cache sees a deleted pod go at once. (Without a demand table nothing depends on when: the
 * next retry notices them.) */
static void withdraw_until(struct run *r, double t)
{
    size_t keep = 0;

    if (!r->demand)
        return;
    for (size_t i = 0; i < r->queue_len; i++) {
        size_t pod = r->queue[i];
        double wait = patience(r, pod);
        if (wait >= 0 && arrival(r, pod) + wait <= t) {
            r->out->never_placed++;
            demand_update(r, pod, -1);
            continue;
        }
        r->queue[keep++] = pod;
    }
    r->queue_len = keep;
}

static void depart_until(struct run *r, double t)
{
    while (r->heap_len && r->heap[0].t <= t) {
        struct departure d = heap_pop(r);
        int node = r->pl[d.pod].node;
        advance(r, d.t);
        unplace(r, d.pod);
        demand_update(r, d.pod, -1);
        retry_on(r, node, d.t);
    }
}

/* ---- measures ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

/* The waits of every placed pod, as 101 percentiles. */
static void wait_cdf(struct run *r)
{
    size_t n = 0;
    double *all;

    for (int b = 0; b < SIM_GPU_BUCKETS; b++)
        n += r->wait_len[b];
    if (n == 0)
        return;
    all = xmalloc(n * sizeof(*all));
    n = 0;
    for (int b = 0; b < SIM_GPU_BUCKETS; b++) {
        memcpy(all + n, r->waits[b], r->wait_len[b] * sizeof(*all));
        n += r->wait_len[b];
    }
    qsort(all, n, sizeof(*all), cmp_double);
    for (int p = 0; p <= 100; p++)
        r->out->wait_cdf[p] = p == 0 ? all[0] : percentile(all, n, (double)p / 100.0);
    free(all);
}

static void finish(struct run *r)
{
    struct sim_result *o = r->out;

    wait_cdf(r);
    for (int b = 0; b < SIM_GPU_BUCKETS; b++) {
        qsort(r->waits[b], r->wait_len[b], sizeof(double), cmp_double);
        o->wait_p50[b] = percentile(r->waits[b], r->wait_len[b], 0.50);
        o->wait_p95[b] = percentile(r->waits[b], r->wait_len[b], 0.95);
        o->wait_p99[b] = percentile(r->waits[b], r->wait_len[b], 0.99);
    }
    if (r->opt->mode == SIM_REPLAY) {
        o->never_placed += r->queue_len;
    } else {
        o->alloc_final = alloc_now(r);
        o->never_placed = o->pods - o->placed;
    }
}

/* ---- set-up ---- */

static int model_index(struct run *r, const char *model)
{
    struct sim_result *o = r->out;

    for (size_t m = 0; m < o->model_count; m++)
        if (strcmp(o->models[m], model) == 0)
            return (int)m;
    if (o->model_count == 16)
        return 15; /* more models than the report lists: the last row holds the rest */
    snprintf(o->models[o->model_count], sizeof(o->models[0]), "%s", model);
    return (int)o->model_count++;
}

/* Node i's class: the first node with the same model, GPU count and topology (reps holds one
 * node per class seen so far). */
static int class_of(const struct sim_cluster *c, size_t *reps, size_t *nreps, size_t i)
{
    for (size_t k = 0; k < *nreps; k++) {
        const struct sim_node *x = &c->nodes[reps[k]];
        if (x->gpus == c->nodes[i].gpus && x->topo == c->nodes[i].topo &&
            strcmp(x->model, c->nodes[i].model) == 0)
            return (int)k;
    }
    reps[(*nreps)++] = i;
    return (int)(*nreps - 1);
}

static void setup(struct run *r)
{
    const struct sim_cluster *c = r->c;
    const struct sim_workload *w = r->w;
    size_t *reps = xcalloc(c->node_count + 1, sizeof(*reps)), nreps = 0;

    r->nodes = xcalloc(c->node_count + 1, sizeof(*r->nodes));
    r->cls = xcalloc(c->node_count + 1, sizeof(*r->cls));
    r->groups = groups_new(c->node_count);
    for (size_t i = 0; i < c->node_count; i++) {
        struct nstate *n = &r->nodes[i];
        n->info.name = str_from_cstr(c->nodes[i].name);
        n->info.product = str_from_cstr(c->nodes[i].model);
        n->info.model = obj_model_from_product(n->info.product);
        n->info.gpu_allocatable = c->nodes[i].gpus;
        n->info.ready = true;
        n->topo = c->nodes[i].topo;
        n->model = model_index(r, c->nodes[i].model);
        r->model_gpus[n->model] += c->nodes[i].gpus;
        r->out->gpus_total += c->nodes[i].gpus;
        r->cls[i] = class_of(c, reps, &nreps, i);
        groups_set(r->groups, i, (uint32_t)r->cls[i], 0, 0);
    }
    free(reps);
    if (r->spec->strategy == SIM_POLICY && r->spec->pol->weight_scarcity > 0) {
        r->demand = xmalloc(sizeof(*r->demand));
        sched_demand_init(r->demand);
        for (size_t i = 0; i < c->node_count; i++)
            sched_demand_add_node(r->demand, &r->nodes[i].info);
        r->allowed = xcalloc(w->pod_count + 1, sizeof(*r->allowed));
    }
    r->pl = xcalloc(w->pod_count + 1, sizeof(*r->pl));
    r->sp = xcalloc(w->pod_count + 1, sizeof(*r->sp));
    r->pods = xcalloc(w->pod_count + 1, sizeof(*r->pods));
    r->prepared = xcalloc(w->pod_count + 1, sizeof(*r->prepared));
    r->heap = xcalloc(w->pod_count + 1, sizeof(*r->heap));
    r->queue = xcalloc(w->pod_count + 1, sizeof(*r->queue));
    for (int b = 0; b < SIM_GPU_BUCKETS; b++)
        r->waits[b] = xcalloc(w->pod_count + 1, sizeof(double));
    for (size_t i = 0; i < w->pod_count; i++) {
        struct errbuf eb = ERRBUF_INIT;
        struct pod_info *p = &r->pods[i];
        p->ns = STR_LIT("sim");
        p->name = str_from_cstr(w->pods[i].name);
        p->uid = p->name;
        p->gpus = w->pods[i].gpus;
        p->ann_gpu_model = str_from_cstr(w->pods[i].models);
        r->pl[i].node = -1;
        r->prepared[i] = sched_pod_prepare(&r->sp[i], p, r->spec->pol, &eb);
        if (r->demand && r->prepared[i])
            r->allowed[i] = sched_demand_allowed(r->demand, &r->sp[i]);
        if (!w->pods[i].node) {
            r->out->bucket_pods[bucket_of(p->gpus)]++;
            r->out->pods++;
        }
        if (w->pods[i].t_create / r->opt->speedup + w->pods[i].duration / r->opt->speedup >
            r->t_end)
            r->t_end =
                w->pods[i].t_create / r->opt->speedup + w->pods[i].duration / r->opt->speedup;
    }
}

static void teardown(struct run *r)
{
    free(r->nodes);
    free(r->cls);
    groups_free(r->groups);
    free(r->pl);
    free(r->sp);
    free(r->pods);
    free(r->prepared);
    free(r->heap);
    free(r->queue);
    for (int b = 0; b < SIM_GPU_BUCKETS; b++)
        free(r->waits[b]);
    free(r->demand);
    free(r->allowed);
}

/* A snapshot's bound pods are the cluster's state: they take their GPUs before anything
 * arrives, stay, and count in no measure of the workload. */
static void preplace(struct run *r)
{
    struct strmap by_name;

    strmap_init(&by_name);
    for (size_t i = 0; i < r->c->node_count; i++)
        strmap_upsert(&by_name, str_from_cstr(r->c->nodes[i].name), NULL)->num = (int64_t)i;
    for (size_t i = 0; i < r->w->pod_count; i++) {
        const struct sim_pod *p = &r->w->pods[i];
        const struct strmap_entry *e =
            p->node ? strmap_find(&by_name, str_from_cstr(p->node)) : NULL;
        struct nstate *n;
        if (!e)
            continue;
        n = &r->nodes[e->num];
        n->used += p->gpus;
        n->taken |= p->mask;
        r->used_total += p->gpus;
        r->model_used[n->model] += p->gpus;
        r->pl[i] = (struct placed){(int)e->num, p->mask, 0};
        demand_update(r, i, 1);
        groups_set(r->groups, (size_t)e->num, (uint32_t)r->cls[e->num], n->used, n->taken);
    }
    strmap_destroy(&by_name, NULL);
}

static bool arrives(const struct run *r, size_t i)
{
    return !r->w->pods[i].node;
}

/* ---- the two modes ---- */

/* Means over the arrival window (the first arrival to the last), where the workload is: the
 * traces' last pods run on for weeks in an emptying cluster, which says nothing of a policy. */
static void window_means(struct run *r)
{
    struct sim_result *o = r->out;

    o->alloc_mean =
        r->last_t > 0 && o->gpus_total ? r->busy_total / (r->last_t * (double)o->gpus_total) : 0;
    for (size_t m = 0; m < o->model_count; m++)
        o->model_util[m] = r->last_t > 0 && r->model_gpus[m]
                               ? r->model_busy[m] / (r->last_t * (double)r->model_gpus[m])
                               : 0;
}

static void replay(struct run *r)
{
    preplace(r);
    for (size_t i = 0; i < r->w->pod_count; i++) {
        double t = arrival(r, i);
        bool placed;
        if (!arrives(r, i))
            continue;
        depart_until(r, t);
        withdraw_until(r, t);
        advance(r, t);
        r->out->events++;
        r->out->demand_arrived += r->pods[i].gpus;
        if (r->opt->on_arrive)
            r->opt->on_arrive(r->opt->on_place_ctx, i);
        placed = try_all(r, i, t);
        demand_update(r, i, 1); /* after its own decision, which weighs the others' demand */
        if (placed)
            continue;
        if (r->prepared[i])
            r->queue[r->queue_len++] = i;
        else
            r->out->never_placed++; /* its policy refuses it (an Error from filter): no retry */
    }
    window_means(r);
    depart_until(r, INFINITY);
}

static void fill(struct run *r)
{
    static const double thresholds[SIM_THRESHOLDS] = {0.70, 0.85, 0.95};
    bool failed = false;

    preplace(r);
    for (size_t i = 0; i < r->w->pod_count; i++) {
        double a = alloc_now(r);
        if (!arrives(r, i))
            continue;
        int b = bucket_of(r->pods[i].gpus);
        bool ok;
        r->out->events++;
        r->out->demand_arrived += r->pods[i].gpus;
        if (r->opt->on_arrive)
            r->opt->on_arrive(r->opt->on_place_ctx, i);
        ok = try_all(r, i, arrival(r, i));
        /* Placed or not, it counts from now on: a pod that fits nowhere stays pending, as in
         * a cluster. */
        demand_update(r, i, 1);
        if (!ok && !failed) {
            failed = true;
            r->out->alloc_first_fail = a;
        }
        for (int th = 0; th < SIM_THRESHOLDS; th++) {
            if (a < thresholds[th])
                continue;
            r->out->after_tried[b][th]++;
            r->out->after_placed[b][th] += ok;
        }
        if (r->out->series_len < SIM_SERIES_MAX &&
            (i % (r->w->pod_count / SIM_SERIES_MAX + 1) == 0 || i + 1 == r->w->pod_count)) {
            r->out->series_x[r->out->series_len] = (double)r->out->demand_arrived;
            r->out->series_y[r->out->series_len++] = (double)r->out->demand_placed;
        }
    }
    if (!failed)
        r->out->alloc_first_fail = alloc_now(r);
}

void sim_run(const struct sim_cluster *c, const struct sim_workload *w,
             const struct sim_run_spec *spec, const struct sim_options *opt, struct sim_result *out)
{
    struct sim_options o = *opt;
    struct run r = {.c = c, .w = w, .spec = spec, .opt = &o, .out = out, .rng = opt->seed};
    uint64_t t0 = clock_mono_ns();
    double secs;

    if (!(o.speedup > 0))
        o.speedup = 1;
    if (!(o.compress > 0))
        o.compress = 1;
    memset(out, 0, sizeof(*out));
    snprintf(out->label, sizeof(out->label), "%s", spec->label);
    setup(&r);
    if (o.mode == SIM_FILL)
        fill(&r);
    else
        replay(&r);
    finish(&r);
    teardown(&r);
    secs = (double)(clock_mono_ns() - t0) / 1e9;
    out->events_per_s = secs > 0 ? (double)out->events / secs : 0;
}
