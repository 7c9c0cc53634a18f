/* bind_choice.h -- what a bind decides before it POSTs: the policy rule that applies, and on
 * a node that publishes its topology, the GPU set, chosen under the cache lock against every
 * other bind in flight (the same choice prioritize scored), so that two binds never name the
 * same GPUs. It is the reservation half of the kube binder's hooks (kube.h): the kube module
 * talks to the API server, this one decides, and main.c connects the two.
 *
 * Thread-safe: the hooks run on the binder's worker threads, many at once. */
#pragma once

#include "gx/cache.h"
#include "gx/err.h"
#include "gx/kube.h"
#include "gx/objects.h"
#include "gx/policy_store.h"

struct bind_choice_ctx {
    struct cache *cache;           /* borrowed; must outlive the binder */
    struct policy_store *policies; /* borrowed; must outlive the binder */
};

/* Reserves pod's GPUs on node in the cache and fills choice with what the Binding records:
 * the rule's name (empty when the policy cannot decide the pod), and the GPU indices and
 * UUIDs when a set was named (empty for a count-only reservation, and UUIDs empty when any
 * GPU of the set has none). A retried bind keeps the set its reservation already holds.
 * Returns ERR_OK, or cache_reserve()'s error with eb saying why. */
enum err bind_choice_reserve(struct bind_choice_ctx *ctx, const struct pod_info *pod,
                             const char *node, struct kube_bind_choice *choice,
                             struct errbuf *eb) GX_MUST_CHECK;
/* Gives back the pod's reservation on node (its bind failed). */
void bind_choice_release(struct bind_choice_ctx *ctx, const char *pod_uid, const char *node);
/* The binder's hooks over ctx, which must outlive the binder: reserve and release as above,
 * and lookup from the cache (cache_bind_facts()), which lets a bind skip its GETs. */
struct kube_bind_hooks bind_choice_hooks(struct bind_choice_ctx *ctx);
