/* debug.h -- private to src/api: the endpoints operators read to understand decisions. The
 * router (routes.c) calls them; they reply through the codec and know nothing of the router.
 * None of them is on the scheduler's path. */
#pragma once

#include "gx/cache.h"
#include "gx/exchange.h"
#include "gx/policy_store.h"

/* What the debug endpoints read; both borrowed, and must outlive the routes. */
struct demand_memo;

struct debug_ctx {
    struct cache *cache; /* NULL: standalone, so /debug/nodes and explain answer 404 */
    struct policy_store *policies;
    struct demand_memo *demand; /* the scarcity tables prioritize uses (demand.h) */
};

/* GET /debug/nodes: what the cache believes about every node. */
void debug_nodes(const struct debug_ctx *d, struct exchange *ex);
/* GET /debug/policy: the active policy, its hash, when it was loaded, and reload history. */
void debug_policy(const struct debug_ctx *d, struct exchange *ex);
/* GET /debug/explain/NAMESPACE/NAME (a pending pod from the cache) or POST /debug/explain
 * with a Pod object: for every node in the cache, the verdict, the rule and the score parts. */
void debug_explain(const struct debug_ctx *d, struct exchange *ex);
