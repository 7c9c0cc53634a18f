/* preempt.c -- the victim choice (see preempt.h).
 *
 * The node after a set of evictions is the node now with those pods' GPUs given back: their
 * count leaves `used`, and their indices (when known) leave the taken set, including the
 * node's own in-use report, which describes the same GPUs. Whether the pod then fits is
 * sched_filter_node()'s answer, so preemption can never disagree with filter. */
#include "gx/preempt.h"

#include <string.h>

#include "gx/bits.h"
#include "gx/topology.h"

/* The eligible pods (lower priority than the preemptor), as indices into node->pods. */
struct search {
    const struct sched_pod *sp;
    const struct preempt_node *node;
    size_t idx[PREEMPT_EXHAUSTIVE_MAX];
    size_t n;
    int64_t free_now; /* allocatable - used */
};

struct sched_node preempt_node_after(const struct preempt_node *in, const bool *gone)
{
    struct sched_node after = in->now;
    uint32_t gone_mask = 0, kept_mask = 0, named;
    int64_t freed = 0, unknown;

    for (size_t i = 0; i < in->pod_count; i++) {
        if (gone[i]) {
            freed += in->pods[i].gpus;
            gone_mask |= in->pods[i].mask;
        } else {
            kept_mask |= in->pods[i].mask;
        }
    }
    after.used = in->now.used - freed;
    if (!after.topo)
        return after;
    named = (in->in_use_mask & ~gone_mask) | kept_mask | in->reserved_mask;
    after.free_mask = topo_healthy_mask(after.topo) & ~named;
    unknown = after.used - (int64_t)bits_popcount32(named);
    after.unknown_used = unknown > 0 ? (unsigned)(unknown > 32 ? 32 : unknown) : 0;
    return after;
}

static bool fits(const struct sched_pod *sp, const struct sched_node *n)
{
    return sched_filter_node(sp, n).verdict == SCHED_PASS;
}

/* The cost of evicting gone[], except set_score (which needs the node after). */
static struct preempt_cost cost_of(const struct preempt_node *in, const bool *gone)
{
    int32_t allowed[PREEMPT_MAX_PDBS];
    size_t npdb = in->pdb_count < PREEMPT_MAX_PDBS ? in->pdb_count : PREEMPT_MAX_PDBS;
    struct preempt_cost c = {.max_priority = INT32_MIN};

    if (npdb)
        memcpy(allowed, in->pdb_allowed, npdb * sizeof(*allowed));
    for (size_t i = 0; i < in->pod_count; i++) {
        const struct preempt_pod *p = &in->pods[i];
        bool violates = false;
        if (!gone[i])
            continue;
        c.listed++;
        c.gpus_freed += p->deleting ? 0 : p->gpus;
        c.not_offered += !p->offered;
        if (p->deleting)
            continue;
        c.count++;
        c.priority_sum += p->priority;
        if (p->priority > c.max_priority)
            c.max_priority = p->priority;
        /* kube-scheduler's count: each covering budget gives one disruption; a pod that takes
         * any budget below zero is a violation. */
        for (size_t b = 0; b < npdb; b++)
            if ((p->pdbs >> b) & 1u)
                violates |= --allowed[b] < 0;
        c.violations += violates;
    }
    return c;
}

/* Compares the parts that do not need the node after: 1-4 of preempt.h. */
static int cmp_main(const struct preempt_cost *a, const struct preempt_cost *b)
{
    if (a->violations != b->violations)
        return a->violations < b->violations ? -1 : 1;
    if (a->max_priority != b->max_priority)
        return a->max_priority < b->max_priority ? -1 : 1;
    if (a->count != b->count)
        return a->count < b->count ? -1 : 1;
    if (a->gpus_freed != b->gpus_freed)
        return a->gpus_freed < b->gpus_freed ? -1 : 1;
    return 0;
}

int preempt_cost_cmp(const struct preempt_cost *a, const struct preempt_cost *b)
{
    int r = cmp_main(a, b);

    if (r)
        return r;
    if (a->set_score != b->set_score)
        return a->set_score > b->set_score ? -1 : 1;
    if (a->not_offered != b->not_offered)
        return a->not_offered < b->not_offered ? -1 : 1;
    if (a->priority_sum != b->priority_sum)
        return a->priority_sum < b->priority_sum ? -1 : 1;
    if (a->listed != b->listed)
        return a->listed < b->listed ? -1 : 1;
    return 0;
}

/* Fills the cost's set_score and returns true when the pod fits once gone[] are evicted. */
static bool evaluate(const struct search *s, const bool *gone, struct preempt_cost *c,
                     uint32_t *set)
{
    struct sched_node after = preempt_node_after(s->node, gone);

    if (!fits(s->sp, &after))
        return false;
    *set = sched_choose_gpus(s->sp, &after);
    c->set_score = *set && after.topo ? topo_set_score(after.topo, *set) : 0;
    return true;
}

static void set_from_mask(const struct search *s, uint32_t m, bool *gone)
{
    memset(gone, 0, s->node->pod_count * sizeof(*gone));
    for (size_t j = 0; j < s->n; j++)
        gone[s->idx[j]] = (m >> j) & 1u;
}

/* Every subset of the eligible pods, pruned by cost before the fit is checked. gone is
 * scratch, and holds the best set on return. */
static void search_all(const struct search *s, bool *gone, struct preempt_choice *out)
{
    uint32_t best = 0;

    for (uint32_t m = 1; m < (UINT32_C(1) << s->n); m++) {
        struct preempt_cost c;
        int64_t freed = 0;
        uint32_t set = 0;

        for (size_t j = 0; j < s->n; j++)
            freed += (m >> j) & 1u ? s->node->pods[s->idx[j]].gpus : 0;
        if (s->free_now + freed < s->sp->pod->gpus)
            continue; /* not even the count: no need to ask the rules */
        set_from_mask(s, m, gone);
        c = cost_of(s->node, gone);
        if (best && cmp_main(&c, &out->cost) > 0)
            continue;
        if (!evaluate(s, gone, &c, &set))
            continue;
        if (best && preempt_cost_cmp(&c, &out->cost) >= 0)
            continue;
        best = m;
        out->cost = c;
        out->gpu_set = set;
    }
    set_from_mask(s, best, gone);
}

/* Reprieve order: budget-covered pods first (pass 0), then the rest; within a pass by
 * priority, highest first, then by position. The next pod after *last (NULL: the first),
 * among the pods still gone; SIZE_MAX when none is left. */
static bool before(const struct preempt_pod *pods, size_t a, size_t b)
{
    return pods[a].priority > pods[b].priority || (pods[a].priority == pods[b].priority && a < b);
}

static size_t next_to_reprieve(const struct preempt_node *in, const bool *gone, int pass,
                               const size_t *last)
{
    size_t pick = SIZE_MAX;

    for (size_t i = 0; i < in->pod_count; i++) {
        const struct preempt_pod *p = &in->pods[i];
        if (!gone[i] || p->deleting || (pass == 0) != (p->pdbs != 0))
            continue;
        if (last && !before(in->pods, *last, i))
            continue; /* already tried */
        if (pick == SIZE_MAX || before(in->pods, i, pick))
            pick = i;
    }
    return pick;
}

/* kube-scheduler's way, for nodes with many small pods: evict every eligible pod (gone holds
 * them), then give back (reprieve) each one the pod can do without, in the order above. */
static void reprieve(const struct search *s, bool *gone, struct preempt_choice *out)
{
    const struct preempt_node *in = s->node;

    for (int pass = 0; pass < 2; pass++) {
        size_t i = next_to_reprieve(in, gone, pass, NULL);
        while (i != SIZE_MAX) {
            struct sched_node after;
            size_t tried = i;
            gone[i] = false;
            after = preempt_node_after(in, gone);
            if (!fits(s->sp, &after))
                gone[i] = true;
            i = next_to_reprieve(in, gone, pass, &tried);
        }
    }
    out->cost = cost_of(in, gone);
    (void)evaluate(s, gone, &out->cost, &out->gpu_set);
}

void preempt_choose(const struct sched_pod *sp, const struct preempt_node *node, bool *chosen,
                    struct preempt_choice *out)
{
    struct search s = {.sp = sp, .node = node};
    size_t eligible = 0;

    memset(out, 0, sizeof(*out));
    memset(chosen, 0, node->pod_count * sizeof(*chosen));
    s.free_now = node->now.info->gpu_allocatable - node->now.used;
    out->gpus_needed = sp->pod->gpus - (s.free_now > 0 ? s.free_now : 0);
    if (fits(sp, &node->now)) {
        out->outcome = PREEMPT_FITS_NOW;
        return;
    }
    for (size_t i = 0; i < node->pod_count; i++) {
        if (node->pods[i].priority >= sp->pod->priority)
            continue;
        chosen[i] = true;
        if (eligible < PREEMPT_EXHAUSTIVE_MAX)
            s.idx[eligible] = i;
        eligible++;
    }
    if (eligible == 0) {
        out->outcome = PREEMPT_NO_LOWER;
        return;
    }
    {
        struct sched_node all_gone = preempt_node_after(node, chosen);
        out->fit = sched_filter_node(sp, &all_gone);
        if (out->fit.verdict != SCHED_PASS) {
            memset(chosen, 0, node->pod_count * sizeof(*chosen));
            out->outcome = PREEMPT_CANNOT_FIT;
            return;
        }
    }
    out->outcome = PREEMPT_CHOSEN;
    s.n = eligible;
    if (eligible <= PREEMPT_EXHAUSTIVE_MAX) {
        out->exhaustive = true;
        search_all(&s, chosen, out);
        return;
    }
    reprieve(&s, chosen, out);
}

const char *preempt_outcome_text(enum preempt_outcome o)
{
    switch (o) {
    case PREEMPT_CHOSEN:
        return "victims chosen";
    case PREEMPT_FITS_NOW:
        return "fits without evicting anyone";
    case PREEMPT_NO_LOWER:
        return "no GPU pod of lower priority here";
    case PREEMPT_CANNOT_FIT:
        return "does not fit even with every lower-priority pod gone";
    }
    return "?";
}
