/* demand.c -- the demand table for the cache's state and the policy (see demand.h).
 *
 * One table is current at a time, keyed by the generation of the cache's demand and by the
 * policy it was built with (held, so that its address cannot be reused while the key names
 * it). The first request after a change builds the new one under the memo's lock; the others
 * wait for it rather than build the same table again. Building costs the models times the
 * groups of pods, not the nodes or the pods (cache.h keeps those sums). */
#include "demand.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gx/alloc.h"
#include "gx/policy.h"

struct demand_table {
    atomic_int refs;
    uint64_t generation;
    struct policy *pol; /* one reference */
    struct sched_demand d;
};

struct demand_memo {
    pthread_mutex_t lock;
    struct demand_table *current;
};

static void table_release(struct demand_table *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        policy_unref(t->pol);
        free(t);
    }
}

/* Every group's GPUs on the models its policy rule and annotations allow it. A group the policy
 * refuses (say, an annotation its rule does not permit) can never be placed and is left out. */
static struct demand_table *table_build(const struct cache_demand *cd, struct policy *pol)
{
    struct demand_table *t = xmalloc(sizeof(*t));

    atomic_init(&t->refs, 1);
    t->generation = cd->generation;
    t->pol = policy_ref(pol);
    sched_demand_init(&t->d);
    for (size_t i = 0; i < cd->model_count; i++) {
        struct node_info rep = cd->models[i].rep;
        rep.gpu_allocatable = cd->models[i].gpus;
        sched_demand_add_node(&t->d, &rep);
    }
    for (size_t i = 0; i < cd->group_count; i++) {
        struct pod_info pod = cd->groups[i].pod;
        struct sched_pod sp;
        pod.gpus = cd->groups[i].gpus;
        if (sched_pod_prepare(&sp, &pod, pol, NULL))
            sched_demand_add(&t->d, sched_demand_allowed(&t->d, &sp), pod.gpus);
    }
    sched_demand_finish(&t->d);
    return t;
}

struct demand_memo *demand_memo_new(void)
{
    struct demand_memo *m = xcalloc(1, sizeof(*m));

    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void demand_memo_free(struct demand_memo *m)
{
    if (!m)
        return;
    table_release(m->current);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct demand_table *table_get(struct demand_memo *m, const struct cache_demand *cd,
                                      const struct policy *pol)
{
    struct demand_table *t;

    pthread_mutex_lock(&m->lock);
    t = m->current;
    if (!t || t->generation != cd->generation || t->pol != pol) {
        /* policy_ref() takes a mutable pointer; the table only reads the policy. */
        t = table_build(cd, (struct policy *)(uintptr_t)pol);
        table_release(m->current);
        m->current = t;
    }
    atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&m->lock);
    return t;
}

void demand_use(struct demand_memo *m, const struct cache_snapshot *snap, struct sched_pod *sp,
                struct arena *arena, struct demand_hold *hold)
{
    const struct sched_demand *d;
    struct sched_demand *own;

    hold->table = NULL;
    hold->d = NULL;
    if (!m || !snap || sp->pol->weight_scarcity <= 0 || sp->pod->gpus <= 0)
        return;
    hold->table = table_get(m, snap->demand, sp->pol);
    d = &hold->table->d;
    if (cache_demand_counts_pending(snap->demand, sp->pod->uid)) {
        uint64_t set = sched_demand_allowed(d, sp);
        /* Only a constrained pod adds to the table; the others need no copy. */
        if (set && set != d->all_models && (own = arena_alloc(arena, sizeof(*own)))) {
            *own = *d;
            sched_demand_add(own, set, -sp->pod->gpus);
            sched_demand_finish(own);
            d = own;
        }
    }
    hold->d = d;
    sched_pod_use_demand(sp, d);
}

const struct sched_demand *demand_table(struct demand_memo *m, const struct cache_snapshot *snap,
                                        const struct policy *pol, struct demand_hold *hold)
{
    hold->table = table_get(m, snap->demand, pol);
    hold->d = &hold->table->d;
    return hold->d;
}

void demand_done(struct demand_hold *hold)
{
    table_release(hold->table);
    hold->table = NULL;
    hold->d = NULL;
}
