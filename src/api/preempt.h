/* preempt.h -- private to src/api: the preempt verb and the preemption part of explain.
 *
 * Both build a plan: for each candidate node, the victims sched's preempt_choose() picks from
 * the pods the cache holds there, with the disruption budgets that cover them; then the one
 * best node. The verb replies with that node alone, so kube-scheduler cannot prefer a node
 * whose freed GPUs form a worse set on a tie of its own criteria. */
#pragma once

#include <cjson/cJSON.h>

#include "gx/cache.h"
#include "gx/codec.h"
#include "gx/exchange.h"
#include "gx/policy_store.h"
#include "gx/preempt.h"

struct preempt_deps {
    struct cache *cache; /* NULL: standalone, and preemption is refused with a 503 */
    struct policy_store *policies;
};

/* POST {prefix}/preempt. Returns true when the reply is one kube-scheduler reads as an error
 * (a non-200 status). */
bool preempt_serve(const struct preempt_deps *d, struct exchange *ex);

/* For explain: what preempting would do for sp on each of the n nodes, and which node the
 * verb would keep. NULL when the cache cannot answer (not synced, or the arena is spent). */
cJSON *preempt_explain(struct cache *cache, const struct sched_pod *sp, const struct str *names,
                       size_t n, struct arena *arena);
