/* routes.c -- the route table, the verbs' handlers and the health endpoints (see routes.h).
 *
 * One table says everything about an endpoint: method, path, whether it sits under the URL
 * prefix, the verb its metrics count under, and its handler. 404 (no row's path matches), 405
 * (a path matches, no method does) and the metrics all come from it, so an endpoint is one
 * row and one handler. Replies go through the codec's helpers, whose statuses come from its
 * one enum err -> status table. */
#include "gx/routes.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/sched.h"

#include "debug.h"
#include "demand.h"
#include "preempt.h"

struct routes {
    char prefix[256]; /* without a trailing '/': "" for the root */
    struct policy_store *policies;
    routes_bind_fn *bind;
    void *bind_ctx;
    char mode[256];
    struct cache *cache;
    bool ops_only;
    bool general_encoder;
    struct debug_ctx debug;
    struct preempt_deps preempt;
    struct demand_memo *demand;
};

/* How a handler left the exchange: replied (with or without an Error the scheduler will
 * see), or deferred, in which case the exchange may already be gone when it returns. */
enum route_result {
    ROUTE_REPLIED,
    ROUTE_REPLIED_ERROR,
    ROUTE_DEFERRED,
};

typedef enum route_result route_fn(struct routes *r, struct exchange *ex);

struct routes *routes_new(const struct routes_config *cfg)
{
    struct routes *r = xcalloc(1, sizeof(*r));
    size_t n;

    snprintf(r->prefix, sizeof(r->prefix), "%s", cfg->url_prefix ? cfg->url_prefix : "");
    n = strlen(r->prefix);
    while (n > 0 && r->prefix[n - 1] == '/')
        r->prefix[--n] = '\0';
    r->policies = cfg->policies;
    r->bind = cfg->bind;
    r->bind_ctx = cfg->bind_ctx;
    r->cache = cfg->cache;
    r->ops_only = cfg->ops_only;
    r->general_encoder = cfg->general_encoder;
    r->demand = demand_memo_new();
    r->debug =
        (struct debug_ctx){.cache = cfg->cache, .policies = cfg->policies, .demand = r->demand};
    r->preempt = (struct preempt_deps){.cache = cfg->cache, .policies = cfg->policies};
    snprintf(r->mode, sizeof(r->mode), "%s", cfg->mode ? cfg->mode : "standalone");
    return r;
}

void routes_free(struct routes *r)
{
    if (r)
        demand_memo_free(r->demand);
    free(r);
}

static enum metrics_outcome status_outcome(int status)
{
    switch (status) {
    case 200:
        return METRICS_OUTCOME_OK;
    case 400:
        return METRICS_OUTCOME_BAD_REQUEST;
    case 404:
        return METRICS_OUTCOME_NOT_FOUND;
    case 405:
        return METRICS_OUTCOME_BAD_METHOD;
    case 413:
        return METRICS_OUTCOME_TOO_LARGE;
    case 503:
        return METRICS_OUTCOME_UNAVAILABLE;
    default:
        return METRICS_OUTCOME_INTERNAL;
    }
}

static void observe(struct exchange *ex, enum metrics_verb verb, bool scheduler_error)
{
    enum metrics_outcome o = status_outcome(ex->status);

    if (o == METRICS_OUTCOME_OK && scheduler_error)
        o = METRICS_OUTCOME_ERROR;
    metrics_request_observe(verb, o, clock_mono_ns() - ex->start_ns);
}

/* ---- filter and prioritize ---- */

static const char no_cache_msg[] =
    "gpu-extender: nodeCacheCapable requests need the cluster cache, and this extender runs "
    "standalone (no API server configured); configure nodeCacheCapable: false";
static const char not_synced_msg[] =
    "gpu-extender: the cluster cache has not synced with the API server yet; retry";
static const char too_large_msg[] = "gpu-extender: request too large for its memory budget";

static bool decode_request(const struct routes *r, struct exchange *ex, struct ext_args *args)
{
    struct errbuf eb = ERRBUF_INIT;
    enum err e = codec_decode_args(&ex->arena, ex->body, ex->body_len, args, &eb);

    if (e != ERR_OK) {
        struct log_q q;
        log_debug("api", "rejected request", "path=%s err=\"%s\"", ex->path, log_quote(&q, eb.msg));
        codec_reply_err(ex, e, eb.msg);
        return false;
    }
    /* The general encoder: as if no name were a plain view into the body. */
    if (r->general_encoder)
        args->names_plain = false;
    return true;
}

/* The candidate nodes as decisions see them: their facts (from the request in full-Nodes
 * mode, from the cache for NodeNames) and what is taken on them (from the cache; nothing
 * standalone). A node the cache does not know has info NULL. */
struct candidates {
    struct sched_node *nodes;
    size_t count;
    struct cache_snapshot *snap; /* held while nodes point into it */
};

/* Builds the candidates. ERR_UNAVAILABLE (no cache for a NodeNames request, or a cache not
 * synced yet) and ERR_TOO_LARGE (the arena is spent) fail the whole call; eb says why. The
 * snapshot, if any, is held even on failure: pair with candidates_release(). */
static enum err candidates_resolve(struct routes *r, struct exchange *ex, const struct ext_args *a,
                                   struct candidates *out, struct errbuf *eb)
{
    size_t n = a->full_nodes ? a->node_count : a->name_count;

    memset(out, 0, sizeof(*out));
    if (r->cache) {
        out->snap = cache_snapshot_acquire(r->cache);
        if (!out->snap->synced) {
            errbuf_set(eb, "%s", not_synced_msg);
            return ERR_UNAVAILABLE;
        }
    } else if (!a->full_nodes) {
        errbuf_set(eb, "%s", no_cache_msg);
        return ERR_UNAVAILABLE;
    }
    out->nodes = arena_alloc(&ex->arena, (n + 1) * sizeof(*out->nodes));
    if (!out->nodes) {
        errbuf_set(eb, "%s", too_large_msg);
        return ERR_TOO_LARGE;
    }
    out->count = n;
    if (!a->full_nodes) { /* every name at once: see cache_snapshot_find_all() */
        const struct cache_node **found = arena_alloc(&ex->arena, (n + 1) * sizeof(*found));
        if (!found) {
            errbuf_set(eb, "%s", too_large_msg);
            return ERR_TOO_LARGE;
        }
        cache_snapshot_find_all(out->snap, a->names, n, found);
        for (size_t i = 0; i < n; i++)
            out->nodes[i] = found[i] ? sched_node_of(found[i]) : (struct sched_node){0};
        return ERR_OK;
    }
    for (size_t i = 0; i < n; i++) {
        struct str name = a->nodes[i].name;
        const struct cache_node *cn = out->snap ? cache_snapshot_find(out->snap, name) : NULL;

        /* Usage from the cache, the facts from the request: the cache's model number is not
         * theirs. */
        out->nodes[i] = cn ? sched_node_of(cn) : (struct sched_node){0};
        out->nodes[i].info = &a->nodes[i];
        out->nodes[i].model_id = 0;
    }
    return ERR_OK;
}

/* Works what the model facts decide out once per distinct facts in the snapshot (the pod must
 * be prepared, its demand given). Without the memory for it, nodes are decided one by one. */
static void candidates_memo(struct exchange *ex, const struct candidates *c, struct sched_pod *sp)
{
    struct sched_model_memo *memo;
    size_t n = c->snap ? c->snap->model_count : 0;

    memo = n ? arena_alloc(&ex->arena, n * sizeof(*memo)) : NULL;
    if (memo)
        sched_pod_memo_models(sp, c->snap->models, n, memo);
}

static void candidates_release(struct candidates *c)
{
    if (c->snap)
        cache_snapshot_release(c->snap);
}

/* How many nodes ahead the decision loops ask for a node's record: its counts were read when
 * the names were resolved, but the allocatable count sits on the record's next cache line, and
 * the nodes of a request come in no order the hardware could guess. */
#define NODE_PREFETCH_AHEAD 8

static bool filter_nodes(struct exchange *ex, struct sched_pod *sp, const struct candidates *c,
                         struct codec_filter_result *res)
{
    struct sched_fit *fits = arena_alloc(&ex->arena, (c->count + 1) * sizeof(*fits));
    const struct node_info **infos = arena_alloc(&ex->arena, (c->count + 1) * sizeof(*infos));
    uint64_t counts[3] = {0, 0, 0};

    if (!fits || !infos)
        return false;
    candidates_memo(ex, c, sp);
    for (size_t i = 0; i < c->count; i++) {
        if (i + NODE_PREFETCH_AHEAD < c->count && c->nodes[i + NODE_PREFETCH_AHEAD].info)
            __builtin_prefetch(&c->nodes[i + NODE_PREFETCH_AHEAD].info->gpu_allocatable);
        infos[i] = c->nodes[i].info;
        if (!c->nodes[i].info)
            fits[i] = (struct sched_fit){SCHED_UNRESOLVABLE, SCHED_REASON_UNKNOWN_NODE};
        else
            fits[i] = sched_filter_node(sp, &c->nodes[i]);
        counts[fits[i].verdict]++;
    }
    metrics_counter_add(METRICS_FILTER_NODES_PASSED, counts[SCHED_PASS]);
    metrics_counter_add(METRICS_FILTER_NODES_FAILED, counts[SCHED_FAIL]);
    metrics_counter_add(METRICS_FILTER_NODES_UNRESOLVABLE, counts[SCHED_UNRESOLVABLE]);
    res->fits = fits;
    res->reason_nodes = infos;
    res->sp = sp;
    return true;
}

/* Filter answers every problem after decoding with a 200 and an Error, so that the scheduler
 * shows it on the pod and retries. */
static enum route_result handle_filter(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct codec_filter_result res = {.args = &args};
    struct errbuf eb = ERRBUF_INIT;
    struct candidates c;
    struct sched_pod sp;
    struct policy *pol;
    enum err e;

    if (!decode_request(r, ex, &args))
        return ROUTE_REPLIED;
    pol = policy_store_get(r->policies);
    if (candidates_resolve(r, ex, &args, &c, &eb) != ERR_OK ||
        !sched_pod_prepare(&sp, &args.pod, pol, &eb))
        res.error = eb.msg;
    else if (!filter_nodes(ex, &sp, &c, &res))
        res.error = too_large_msg;
    e = codec_reply_filter(ex, &res);
    candidates_release(&c);
    policy_unref(pol);
    if (e != ERR_OK)
        codec_reply_err(ex, e, NULL);
    return res.error ? ROUTE_REPLIED_ERROR : ROUTE_REPLIED;
}

/* A pod the policy cannot decide (say, an annotation its rule does not permit) scores 0
 * everywhere: filter has already told the scheduler why with an Error. */
static void score_nodes(const struct sched_pod *sp, bool prepared, const struct candidates *c,
                        int *scores)
{
    for (size_t i = 0; i < c->count; i++) {
        if (i + NODE_PREFETCH_AHEAD < c->count && c->nodes[i + NODE_PREFETCH_AHEAD].info) {
            __builtin_prefetch(&c->nodes[i + NODE_PREFETCH_AHEAD].info->gpu_allocatable);
            __builtin_prefetch(c->nodes[i + NODE_PREFETCH_AHEAD].topo); /* NULL is harmless */
        }
        scores[i] = prepared && c->nodes[i].info ? sched_score_value(sp, &c->nodes[i]) : 0;
    }
}

static enum err reply_prioritize(struct routes *r, struct exchange *ex, const struct ext_args *args,
                                 const struct candidates *c, struct policy *pol)
{
    struct str *names = arena_alloc(&ex->arena, (c->count + 1) * sizeof(*names));
    int *scores = arena_alloc(&ex->arena, (c->count + 1) * sizeof(*scores));
    struct errbuf eb = ERRBUF_INIT;
    struct demand_hold hold = {0};
    struct sched_pod sp;
    bool prepared;

    if (!names || !scores)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < c->count; i++)
        names[i] = args->full_nodes ? args->nodes[i].name : args->names[i];
    prepared = sched_pod_prepare(&sp, &args->pod, pol, &eb);
    if (prepared) {
        demand_use(r->demand, c->snap, &sp, &ex->arena, &hold);
        candidates_memo(ex, c, &sp);
    }
    score_nodes(&sp, prepared, c, scores);
    demand_done(&hold);
    return codec_reply_prioritize(ex, names, scores, c->count,
                                  !args->full_nodes && args->names_plain ? args->body_end : NULL);
}

static enum route_result handle_prioritize(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct errbuf eb = ERRBUF_INIT;
    struct candidates c;
    struct policy *pol;
    enum err e;

    if (!decode_request(r, ex, &args))
        return ROUTE_REPLIED;
    e = candidates_resolve(r, ex, &args, &c, &eb);
    if (e == ERR_OK) {
        pol = policy_store_get(r->policies);
        e = reply_prioritize(r, ex, &args, &c, pol);
        policy_unref(pol);
        if (e != ERR_OK)
            errbuf_set(&eb, "cannot encode the prioritize reply");
    }
    if (e != ERR_OK)
        codec_reply_err(ex, e, eb.msg);
    candidates_release(&c);
    return ROUTE_REPLIED;
}

/* ---- bind ---- */

static void reply_bind(struct exchange *ex, const char *error)
{
    enum err e = codec_reply_bind(ex, error);

    if (e != ERR_OK)
        codec_reply_err(ex, e, NULL);
}

static void bind_done(void *done_ctx, const char *error)
{
    struct exchange *ex = done_ctx;

    reply_bind(ex, error ? error : "");
    observe(ex, METRICS_VERB_BIND, error && error[0]);
    exchange_complete(ex);
}

static enum route_result handle_bind(struct routes *r, struct exchange *ex)
{
    struct ext_bind_args args;
    struct errbuf eb = ERRBUF_INIT;
    enum err e = codec_decode_bind(&ex->arena, ex->body, ex->body_len, &args, &eb);

    if (e != ERR_OK) {
        codec_reply_err(ex, e, eb.msg);
        return ROUTE_REPLIED;
    }
    if (!r->bind) {
        metrics_bind_observe(0, 0);
        reply_bind(ex, "gpu-extender: no API server configured (standalone mode); "
                       "start it with --kubeconfig or in a cluster to bind");
        return ROUTE_REPLIED_ERROR;
    }
    exchange_defer(ex);
    e = r->bind(r->bind_ctx, &args, bind_done, ex, &eb);
    if (e == ERR_OK)
        return ROUTE_DEFERRED; /* bind_done observes; ex may already be gone */
    ex->deferred = false;
    reply_bind(ex, eb.msg[0] ? eb.msg : err_str(e));
    return ROUTE_REPLIED_ERROR;
}

/* ---- preempt (preempt.c) ---- */

static enum route_result handle_preempt(struct routes *r, struct exchange *ex)
{
    return preempt_serve(&r->preempt, ex) ? ROUTE_REPLIED_ERROR : ROUTE_REPLIED;
}

/* ---- health, metrics, version ---- */

static enum route_result handle_healthz(struct routes *r, struct exchange *ex)
{
    (void)r;
    codec_reply_text(ex, 200, "text/plain", "ok\n");
    return ROUTE_REPLIED;
}

static enum err append_cache_metrics(struct buf *b, struct cache *cache)
{
    double v[METRICS_CACHE_COUNT];
    struct cache_status st;

    if (!cache)
        return ERR_OK;
    cache_status_get(cache, &st);
    v[METRICS_CACHE_SYNCED] = st.synced;
    v[METRICS_CACHE_CONNECTED] = st.connected;
    v[METRICS_CACHE_AGE_SECONDS] = st.age_ms < 0 ? -1.0 : (double)st.age_ms / 1000.0;
    v[METRICS_CACHE_NODES] = (double)st.nodes;
    v[METRICS_CACHE_GPU_PODS] = (double)st.gpu_pods;
    v[METRICS_CACHE_RESERVATIONS] = (double)st.reservations;
    v[METRICS_CACHE_EVENTS] = (double)st.events;
    v[METRICS_CACHE_RELISTS] = (double)st.relists;
    v[METRICS_CACHE_SNAPSHOTS_WHOLE] = (double)st.snapshots_whole;
    v[METRICS_CACHE_SNAPSHOTS_PATCHED] = (double)st.snapshots_patched;
    v[METRICS_CACHE_TOPOLOGIES] = (double)st.topologies;
    v[METRICS_CACHE_TOPOLOGY_SHAPES] = (double)st.topology_shapes;
    v[METRICS_CACHE_TOPOLOGY_BYTES] = (double)st.topology_bytes;
    return metrics_format_cache(b, v);
}

/* Each model's GPUs and scarcity, from the table the scarcity part reads (built for the active
 * policy whatever its weight, so that the figures are there before the part is turned on). */
static enum err append_model_metrics(struct buf *b, struct routes *r)
{
    struct metrics_model rows[SCHED_DEMAND_MAX_MODELS];
    struct cache_snapshot *snap;
    const struct sched_demand *d;
    struct demand_hold hold;
    struct policy *pol;
    enum err e;

    if (!r->cache || !r->demand)
        return ERR_OK;
    snap = cache_snapshot_acquire(r->cache);
    pol = policy_store_get(r->policies);
    d = demand_table(r->demand, snap, pol, &hold);
    for (size_t i = 0; i < d->model_count; i++)
        rows[i] = (struct metrics_model){.name = {d->models[i].product, d->models[i].model_len},
                                         .gpus = (double)d->models[i].gpus,
                                         .scarcity = (double)d->models[i].scarcity_ppm / 1e6};
    e = metrics_format_models(b, rows, d->model_count);
    demand_done(&hold);
    policy_unref(pol);
    cache_snapshot_release(snap);
    return e;
}

static enum route_result handle_metrics(struct routes *r, struct exchange *ex)
{
    struct buf b;
    enum err e;

    buf_init(&b, 4u << 20);
    e = metrics_format(&b);
    if (e == ERR_OK)
        e = append_cache_metrics(&b, r->cache);
    if (e == ERR_OK)
        e = append_model_metrics(&b, r);
    if (e == ERR_OK)
        codec_reply_text(ex, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr);
    else
        codec_reply_err(ex, e, "cannot format metrics");
    buf_destroy(&b);
    return ROUTE_REPLIED;
}

static void add_cache_status(cJSON *doc, struct cache *cache, bool *ready)
{
    struct cache_status st;
    cJSON *c;

    if (!cache) {
        cJSON_AddStringToObject(doc, "cache", "none (standalone): free GPUs are allocatable GPUs");
        return;
    }
    cache_status_get(cache, &st);
    *ready = st.synced;
    c = cJSON_AddObjectToObject(doc, "cache");
    cJSON_AddBoolToObject(c, "synced", st.synced);
    cJSON_AddBoolToObject(c, "connected", st.connected);
    cJSON_AddNumberToObject(c, "ageSeconds", st.age_ms < 0 ? -1.0 : (double)st.age_ms / 1000.0);
    cJSON_AddNumberToObject(c, "nodes", (double)st.nodes);
    cJSON_AddNumberToObject(c, "gpuPods", (double)st.gpu_pods);
    cJSON_AddNumberToObject(c, "reservations", (double)st.reservations);
}

/* Ready once the cache has synced (always, standalone). While the API server is unreachable
 * after that, we stay ready and serve from the last known state; ageSeconds says how old. */
static enum route_result handle_readyz(struct routes *r, struct exchange *ex)
{
    struct policy *pol = policy_store_get(r->policies);
    cJSON *doc = cJSON_CreateObject();
    bool ready = true;

    cJSON_AddStringToObject(doc, "mode", r->mode);
    cJSON_AddStringToObject(doc, "policy", pol->source);
    cJSON_AddStringToObject(doc, "policyHash", pol->hash);
    policy_unref(pol);
    add_cache_status(doc, r->cache, &ready);
    cJSON_AddStringToObject(doc, "status", ready ? "ok" : "cache not synced");
    codec_reply_json(ex, ready ? 200 : 503, doc);
    return ROUTE_REPLIED;
}

static enum route_result handle_version(struct routes *r, struct exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();

    (void)r;
    cJSON_AddStringToObject(doc, "version", GX_VERSION);
    cJSON_AddStringToObject(doc, "git", GX_GIT_VERSION);
    codec_reply_json(ex, 200, doc);
    return ROUTE_REPLIED;
}

/* ---- the debug endpoints (debug.c) ---- */

static enum route_result handle_debug_nodes(struct routes *r, struct exchange *ex)
{
    debug_nodes(&r->debug, ex);
    return ROUTE_REPLIED;
}

static enum route_result handle_debug_policy(struct routes *r, struct exchange *ex)
{
    debug_policy(&r->debug, ex);
    return ROUTE_REPLIED;
}

static enum route_result handle_debug_explain(struct routes *r, struct exchange *ex)
{
    debug_explain(&r->debug, ex);
    return ROUTE_REPLIED;
}

/* ---- the table ---- */

/* Where a route is served. */
#define ROUTE_UNDER_PREFIX 0x1u /* under --url-prefix (the scheduler's verbs) */
#define ROUTE_PATH_PREFIX 0x2u  /* path is a prefix: the handler reads the rest */
#define ROUTE_OPS 0x4u          /* also on the operations listener (--ops-listen) */

struct route {
    const char *method; /* "GET" also answers HEAD */
    const char *path;
    unsigned flags;
    enum metrics_verb verb;
    route_fn *fn;
};

static const struct route route_table[] = {
    {"POST", "/filter", ROUTE_UNDER_PREFIX, METRICS_VERB_FILTER, handle_filter},
    {"POST", "/prioritize", ROUTE_UNDER_PREFIX, METRICS_VERB_PRIORITIZE, handle_prioritize},
    {"POST", "/bind", ROUTE_UNDER_PREFIX, METRICS_VERB_BIND, handle_bind},
    {"POST", "/preempt", ROUTE_UNDER_PREFIX, METRICS_VERB_PREEMPT, handle_preempt},
    {"GET", "/healthz", ROUTE_OPS, METRICS_VERB_OTHER, handle_healthz},
    {"GET", "/readyz", ROUTE_OPS, METRICS_VERB_OTHER, handle_readyz},
    {"GET", "/metrics", ROUTE_OPS, METRICS_VERB_OTHER, handle_metrics},
    {"GET", "/version", ROUTE_OPS, METRICS_VERB_OTHER, handle_version},
    {"GET", "/debug/nodes", 0, METRICS_VERB_OTHER, handle_debug_nodes},
    {"GET", "/debug/policy", 0, METRICS_VERB_OTHER, handle_debug_policy},
    /* Explain takes a posted Pod, or names a cached one in the path. */
    {"POST", "/debug/explain", 0, METRICS_VERB_OTHER, handle_debug_explain},
    {"GET", "/debug/explain/", ROUTE_PATH_PREFIX, METRICS_VERB_OTHER, handle_debug_explain},
};

static bool path_matches(const struct routes *r, const struct route *rt, const char *path)
{
    size_t plen = strlen(r->prefix);

    if (rt->flags & ROUTE_UNDER_PREFIX) {
        if (strncmp(path, r->prefix, plen) != 0)
            return false;
        path += plen;
    }
    if (rt->flags & ROUTE_PATH_PREFIX)
        return strncmp(path, rt->path, strlen(rt->path)) == 0;
    return strcmp(path, rt->path) == 0;
}

static bool method_matches(const struct route *rt, const char *method)
{
    return strcmp(method, rt->method) == 0 ||
           (strcmp(rt->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* The row for this request; NULL with *path_row set to the first row whose path matched (a
 * 405) or NULL (a 404). */
static const struct route *find_route(const struct routes *r, const struct exchange *ex,
                                      const struct route **path_row)
{
    *path_row = NULL;
    for (size_t i = 0; i < GX_ARRAY_LEN(route_table); i++) {
        const struct route *rt = &route_table[i];
        if ((r->ops_only && !(rt->flags & ROUTE_OPS)) || !path_matches(r, rt, ex->path))
            continue;
        if (method_matches(rt, ex->method))
            return rt;
        if (!*path_row)
            *path_row = rt;
    }
    return NULL;
}

void routes_handle(struct routes *r, struct exchange *ex)
{
    const struct route *path_row;
    const struct route *rt = find_route(r, ex, &path_row);
    char msg[160];

    if (!rt && !path_row) {
        snprintf(msg, sizeof(msg), "no such endpoint: %.100s", ex->path);
        codec_reply_err(ex, ERR_NOT_FOUND, msg);
    } else if (!rt) {
        snprintf(msg, sizeof(msg), "method %.16s not allowed; use %s", ex->method,
                 path_row->method);
        codec_reply_error(ex, 405, msg); /* routing, not an error of ours: no enum err */
    } else if (ex->body_too_large) {
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes (--max-body-bytes)",
                 ex->body_limit);
        codec_reply_err(ex, ERR_TOO_LARGE, msg);
    } else if (ex->body_over_budget) {
        ex->retry_after_s = 1;
        codec_reply_err(ex, ERR_UNAVAILABLE,
                        "gpu-extender: request bodies in flight fill the memory budget "
                        "(--max-inflight-bytes); retry");
    } else {
        enum route_result res = rt->fn(r, ex);
        if (res != ROUTE_DEFERRED)
            observe(ex, rt->verb, res == ROUTE_REPLIED_ERROR);
        return;
    }
    rt = rt ? rt : path_row;
    observe(ex, rt ? rt->verb : METRICS_VERB_OTHER, false);
}
