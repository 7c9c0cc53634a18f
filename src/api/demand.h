/* demand.h -- private to src/api: the constrained-demand table of sched.h for the cluster
 * cache's demand (cache.h) and the active policy. Built once per change of either and shared
 * by every request scored against them; a pod that the cache counts as pending is scored on
 * the demand of the others, so whether the watch has seen it yet changes nothing. */
#pragma once

#include "gx/arena.h"
#include "gx/cache.h"
#include "gx/sched.h"

struct demand_memo;
struct demand_table;

/* A request's hold on a table, from demand_use() until demand_done(). */
struct demand_hold {
    struct demand_table *table;
    const struct sched_demand *d; /* the table the pod was scored on; NULL when none */
};

struct demand_memo *demand_memo_new(void);
/* Frees the memo; tables that requests still hold live until their demand_done(). */
void demand_memo_free(struct demand_memo *m);

/* Gives the prepared pod the scarcity part's table (sched_pod_use_demand()): the memo's for
 * snap->demand and sp->pol, built now if it is not the current one; when snap counts the pod
 * itself as pending, a copy in arena with the pod taken out; hold->d is that table, whether the
 * part applies to the pod or not. Nothing happens when snap is NULL (standalone), when the
 * policy's scarcity weight is 0 or when the pod asks no GPU. The table stays valid until
 * demand_done(hold); hold is always safe to pass there. Thread-safe. */
void demand_use(struct demand_memo *m, const struct cache_snapshot *snap, struct sched_pod *sp,
                struct arena *arena, struct demand_hold *hold);
/* The table for snap's demand and pol, held in hold as demand_use() holds it: what every pod
 * is scored on, before its own demand is taken out (for /metrics). */
const struct sched_demand *demand_table(struct demand_memo *m, const struct cache_snapshot *snap,
                                        const struct policy *pol, struct demand_hold *hold);
void demand_done(struct demand_hold *hold);
