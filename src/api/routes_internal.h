/* routes_internal.h -- private to src/api: the routes object and the reply helpers that the
 * verb handlers (routes.c) and the debug endpoints (debug.c) share. */
#pragma once

#include <cjson/cJSON.h>

#include "gx/routes.h"

struct routes {
    char prefix[256]; /* without a trailing '/': "" for the root */
    struct policy_store *policies;
    routes_bind_fn *bind;
    void *bind_ctx;
    char mode[256];
    struct cache *cache;
};

/* Replies with a JSON error body {"Error": msg}; if even that cannot be built, a static one. */
void routes_reply_error(struct exchange *ex, int status, const char *msg);
/* Replies 200 with doc as compact JSON, and deletes doc. */
void routes_reply_json(struct exchange *ex, cJSON *doc);

/* GET /debug/nodes: what the cache believes about every node. */
void debug_nodes(struct routes *r, struct exchange *ex);
/* GET /debug/policy: the active policy, its hash, when it was loaded, and reload history. */
void debug_policy(struct routes *r, struct exchange *ex);
/* GET /debug/explain/NAMESPACE/NAME (a pending pod from the cache) or POST /debug/explain
 * with a Pod object: for every node in the cache, the verdict, the rule and the score parts. */
void debug_explain(struct routes *r, struct exchange *ex);
