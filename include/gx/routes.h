/* routes.h -- the extender's HTTP surface over exchanges (no sockets): POST {prefix}/filter,
 * {prefix}/prioritize, {prefix}/bind; GET /healthz, /readyz, /metrics, /version. Maps errors
 * to statuses (the only place that does), records metrics, and runs the decisions.
 *
 * Binding needs the API server, which this module does not know: the caller hands in a bind
 * function. Thread-safe: routes_handle() may run on many threads at once. */
#pragma once

#include <stdbool.h>

#include "gx/cache.h"
#include "gx/codec.h"
#include "gx/exchange.h"
#include "gx/policy_store.h"

/* Called once when a bind has finished: error is NULL or "" on success, else the message for
 * the scheduler. May be called from any thread, and before the bind function returns. */
typedef void routes_bind_done_fn(void *done_ctx, const char *error);

/* Starts a bind. Returns ERR_OK when done will be called, or an error (a full queue, say) with
 * the detail in eb, in which case done is never called. */
typedef enum err routes_bind_fn(void *ctx, const struct ext_bind_args *args,
                                routes_bind_done_fn *done, void *done_ctx, struct errbuf *eb);

struct routes_config {
    const char *url_prefix;        /* "/" or "/something"; a trailing '/' is ignored */
    struct policy_store *policies; /* borrowed; must outlive the routes */
    routes_bind_fn *bind;          /* NULL: standalone, bind answers with an Error */
    void *bind_ctx;
    const char *mode;     /* "standalone" or the API server URL, shown by /readyz */
    struct cache *cache;  /* NULL: standalone, no cluster state (free GPUs = allocatable) */
    bool ops_only;        /* the operations listener: /healthz, /readyz, /metrics, /version and
                             nothing else (the verbs and /debug answer 404 there) */
    bool general_encoder; /* NodeNames replies encoded the general way, every name escaped,
                             instead of copied from the body (test_fastpath compares the two) */
};

struct routes;

/* Copies what it needs from cfg. Never fails. */
struct routes *routes_new(const struct routes_config *cfg);
void routes_free(struct routes *r);
/* Handles one exchange: sets its reply, or defers it (bind) and completes it later. */
void routes_handle(struct routes *r, struct exchange *ex);
