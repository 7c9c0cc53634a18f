/* bind_choice.c -- the reservation a bind makes before it POSTs (see bind_choice.h). */
#include "gx/bind_choice.h"

#include <stdio.h>
#include <string.h>

#include "gx/sched.h"
#include "gx/topology.h"

struct choose_ctx {
    const struct sched_pod *sp; /* NULL: the policy could not decide the pod; count only */
    struct kube_bind_choice *choice;
};

/* Writes the UUIDs of set's GPUs, comma-separated, into out; "" when any of them has no
 * UUID (a set is recorded whole or not at all) or they do not fit. */
static void format_uuids(const struct topo *t, uint32_t set, char *out, size_t cap)
{
    size_t used = 0;

    out[0] = '\0';
    for (unsigned i = 0; set && i < TOPO_MAX_GPUS; i++) {
        const char *uuid = (set & (1u << i)) ? topo_gpu_uuid(t, i) : NULL;
        size_t n;

        if (!uuid)
            continue;
        n = strlen(uuid);
        if (n == 0 || used + (used ? 1 : 0) + n >= cap) {
            out[0] = '\0';
            return;
        }
        if (used)
            out[used++] = ',';
        memcpy(out + used, uuid, n + 1);
        used += n;
    }
}

/* cache_choose_fn: the GPU set for the bind, under the cache lock. */
static uint32_t choose_gpus(void *ctx, const struct cache_node *cn)
{
    struct choose_ctx *cc = ctx;
    struct sched_node view = sched_node_of(cn);
    uint32_t set = cc->sp ? sched_choose_gpus(cc->sp, &view) : 0;

    format_uuids(cn->topo, set, cc->choice->gpu_uuids, sizeof(cc->choice->gpu_uuids));
    topo_mask_format(set, cc->choice->gpus, sizeof(cc->choice->gpus));
    return set;
}

enum err bind_choice_reserve(struct bind_choice_ctx *ctx, const struct pod_info *pod,
                             const char *node, struct kube_bind_choice *choice, struct errbuf *eb)
{
    struct policy *pol = policy_store_get(ctx->policies);
    struct errbuf unused = ERRBUF_INIT;
    struct sched_pod sp;
    struct choose_ctx cc = {.choice = choice};
    uint32_t mask = 0;
    enum err e;

    memset(choice, 0, sizeof(*choice));
    if (sched_pod_prepare(&sp, pod, pol, &unused)) {
        cc.sp = &sp;
        snprintf(choice->rule, sizeof(choice->rule), "%.*s", (int)sp.rule->name.len,
                 sp.rule->name.ptr);
    }
    e = cache_reserve(ctx->cache, pod->uid, str_from_cstr(node), pod->gpus, choose_gpus, &cc, &mask,
                      eb);
    policy_unref(pol);
    if (e != ERR_OK)
        return e;
    if (mask == 0)
        choice->gpus[0] = choice->gpu_uuids[0] = '\0';
    else if (!choice->gpus[0]) /* a retried bind: its reservation already held this set */
        topo_mask_format(mask, choice->gpus, sizeof(choice->gpus));
    return ERR_OK;
}

void bind_choice_release(struct bind_choice_ctx *ctx, const char *pod_uid, const char *node)
{
    cache_release(ctx->cache, str_from_cstr(pod_uid), str_from_cstr(node));
}

static bool hook_reserve(void *ctx, const struct pod_info *pod, const char *node,
                         struct kube_bind_choice *choice, struct errbuf *eb)
{
    return bind_choice_reserve(ctx, pod, node, choice, eb) == ERR_OK;
}

static void hook_release(void *ctx, const char *pod_uid, const char *node)
{
    bind_choice_release(ctx, pod_uid, node);
}

static const char *hook_lookup(void *ctx, const struct kube_bind_req *req, struct arena *arena,
                               struct pod_info *pod, char *model, size_t model_cap)
{
    struct bind_choice_ctx *bc = ctx;
    struct cache_bind_facts facts;
    const char *why =
        cache_bind_facts(bc->cache, str_from_cstr(req->pod_uid), str_from_cstr(req->pod_namespace),
                         str_from_cstr(req->pod_name), str_from_cstr(req->node), arena, &facts);

    if (why)
        return why;
    if (strlen(facts.model) >= model_cap)
        return "the node's model is too long";
    memcpy(model, facts.model, strlen(facts.model) + 1);
    *pod = facts.pod;
    return NULL;
}

struct kube_bind_hooks bind_choice_hooks(struct bind_choice_ctx *ctx)
{
    return (struct kube_bind_hooks){
        .lookup = hook_lookup, .reserve = hook_reserve, .release = hook_release, .ctx = ctx};
}
