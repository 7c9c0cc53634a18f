/* routes.c -- dispatch, decisions per verb, and the error-to-status table (see routes.h). */
#include "gx/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/sched.h"

#include "routes_internal.h"

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
    snprintf(r->mode, sizeof(r->mode), "%s", cfg->mode ? cfg->mode : "standalone");
    return r;
}

void routes_free(struct routes *r)
{
    free(r);
}

/* The only enum err -> HTTP status table (STYLE.md 2.6). */
static int err_status(enum err e)
{
    switch (e) {
    case ERR_PARSE:
    case ERR_INVALID:
        return 400;
    case ERR_TOO_LARGE:
        return 413;
    case ERR_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
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

void routes_reply_error(struct exchange *ex, int status, const char *msg)
{
    if (codec_reply_error(ex, status, msg) != ERR_OK)
        exchange_reply(ex, 500, "application/json", "{\"Error\":\"internal error\"}", 26);
}

static void reply_error(struct exchange *ex, int status, const char *msg)
{
    routes_reply_error(ex, status, msg);
}

static void reply_err(struct exchange *ex, enum err e, const struct errbuf *eb)
{
    reply_error(ex, err_status(e), eb->msg[0] ? eb->msg : err_str(e));
}

static const char no_cache_msg[] =
    "gpu-extender: nodeCacheCapable requests need the cluster cache, and this extender runs "
    "standalone (no API server configured); configure nodeCacheCapable: false";
static const char not_synced_msg[] =
    "gpu-extender: the cluster cache has not synced with the API server yet; retry";

static bool decode_request(struct exchange *ex, struct ext_args *args)
{
    struct errbuf eb = {{0}};
    enum err e = codec_decode_args(&ex->arena, ex->body, ex->body_len, args, &eb);

    if (e != ERR_OK) {
        struct log_q q;
        log_debug("api", "rejected request", "path=%s err=\"%s\"", ex->path, log_quote(&q, eb.msg));
        reply_err(ex, e, &eb);
        return false;
    }
    return true;
}

/* The candidate nodes as decisions see them: their facts (from the request in full-Nodes
 * mode, from the cache for NodeNames) and what is taken on them (from the cache; nothing
 * standalone). info is NULL for a name the cache does not know. */
struct views {
    struct sched_node *v;
    size_t n;
    struct cache_snapshot *snap; /* held while the views point into it */
    const char *error;           /* set: the whole call fails with this */
};

/* Builds the views; false only when the arena is exhausted. */
static bool resolve_nodes(struct routes *r, struct exchange *ex, const struct ext_args *a,
                          struct views *out)
{
    size_t n = a->full_nodes ? a->node_count : a->name_count;

    memset(out, 0, sizeof(*out));
    if (r->cache) {
        out->snap = cache_snapshot_acquire(r->cache);
        if (!out->snap->synced) {
            out->error = not_synced_msg;
            return true;
        }
    } else if (!a->full_nodes) {
        out->error = no_cache_msg;
        return true;
    }
    out->v = arena_alloc(&ex->arena, (n + 1) * sizeof(*out->v));
    if (!out->v)
        return false;
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        struct str name = a->full_nodes ? a->nodes[i].name : a->names[i];
        const struct cache_node *cn = out->snap ? cache_snapshot_find(out->snap, name) : NULL;

        /* Usage from the cache; in full-Nodes mode the facts come from the request. */
        out->v[i] = cn ? sched_node_of(cn) : (struct sched_node){0};
        if (a->full_nodes)
            out->v[i].info = &a->nodes[i];
    }
    return true;
}

static void views_release(struct views *v)
{
    if (v->snap)
        cache_snapshot_release(v->snap);
}

static bool filter_nodes(struct exchange *ex, const struct sched_pod *sp, const struct views *v,
                         struct codec_filter_result *res)
{
    struct sched_fit *fits = arena_alloc(&ex->arena, (v->n + 1) * sizeof(*fits));
    const struct node_info **nodes = arena_alloc(&ex->arena, (v->n + 1) * sizeof(*nodes));
    uint64_t counts[3] = {0, 0, 0};

    if (!fits || !nodes)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        nodes[i] = v->v[i].info;
        if (!v->v[i].info)
            fits[i] = (struct sched_fit){SCHED_UNRESOLVABLE, SCHED_REASON_UNKNOWN_NODE};
        else
            fits[i] = sched_filter_node(sp, &v->v[i]);
        counts[fits[i].verdict]++;
    }
    metrics_counter_add(METRICS_FILTER_NODES_PASSED, counts[SCHED_PASS]);
    metrics_counter_add(METRICS_FILTER_NODES_FAILED, counts[SCHED_FAIL]);
    metrics_counter_add(METRICS_FILTER_NODES_UNRESOLVABLE, counts[SCHED_UNRESOLVABLE]);
    res->fits = fits;
    res->reason_nodes = nodes;
    res->sp = sp;
    return true;
}

static const char too_large_msg[] = "gpu-extender: request too large for its memory budget";

static void handle_filter(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct codec_filter_result res = {.args = &args};
    struct errbuf eb = {{0}};
    struct sched_pod sp;
    struct policy *pol;
    struct views v;
    enum err e;

    if (!decode_request(ex, &args)) {
        observe(ex, METRICS_VERB_FILTER, false);
        return;
    }
    pol = policy_store_get(r->policies);
    if (!resolve_nodes(r, ex, &args, &v))
        res.error = too_large_msg;
    else if (v.error)
        res.error = v.error;
    else if (!sched_pod_prepare(&sp, &args.pod, pol, &eb))
        res.error = eb.msg;
    else if (!filter_nodes(ex, &sp, &v, &res))
        res.error = too_large_msg;
    e = codec_reply_filter(ex, &res);
    views_release(&v);
    policy_unref(pol);
    if (e != ERR_OK)
        reply_error(ex, err_status(e), "cannot encode the filter reply");
    observe(ex, METRICS_VERB_FILTER, res.error != NULL);
}

/* A pod the policy cannot decide (say, an annotation its rule does not permit) scores 0
 * everywhere: filter has already told the scheduler why with an Error. */
static void score_nodes(const struct sched_pod *sp, bool prepared, const struct views *v,
                        int *scores)
{
    for (size_t i = 0; i < v->n; i++)
        scores[i] = prepared && v->v[i].info ? sched_score_node(sp, &v->v[i]).score : 0;
}

static void handle_prioritize(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct errbuf eb = {{0}};
    struct sched_pod sp;
    struct policy *pol;
    struct views v;
    struct str *names;
    int *scores;

    if (!decode_request(ex, &args)) {
        observe(ex, METRICS_VERB_PRIORITIZE, false);
        return;
    }
    if (!resolve_nodes(r, ex, &args, &v) || v.error) {
        reply_error(ex, v.error ? 503 : 413, v.error ? v.error : "request too large");
        views_release(&v);
        observe(ex, METRICS_VERB_PRIORITIZE, false);
        return;
    }
    pol = policy_store_get(r->policies);
    names = arena_alloc(&ex->arena, (v.n + 1) * sizeof(*names));
    scores = arena_alloc(&ex->arena, (v.n + 1) * sizeof(*scores));
    if (names && scores) {
        for (size_t i = 0; i < v.n; i++)
            names[i] = args.full_nodes ? args.nodes[i].name : args.names[i];
        score_nodes(&sp, sched_pod_prepare(&sp, &args.pod, pol, &eb), &v, scores);
    }
    if (!names || !scores || codec_reply_prioritize(ex, names, scores, v.n) != ERR_OK)
        reply_error(ex, 413, "cannot encode the prioritize reply");
    views_release(&v);
    policy_unref(pol);
    observe(ex, METRICS_VERB_PRIORITIZE, false);
}

static void bind_done(void *done_ctx, const char *error)
{
    struct exchange *ex = done_ctx;

    if (codec_reply_bind(ex, error ? error : "") != ERR_OK)
        reply_error(ex, 500, "cannot encode the bind reply");
    observe(ex, METRICS_VERB_BIND, error && error[0]);
    exchange_complete(ex);
}

static void handle_bind(struct routes *r, struct exchange *ex)
{
    struct ext_bind_args args;
    struct errbuf eb = {{0}};
    enum err e = codec_decode_bind(&ex->arena, ex->body, ex->body_len, &args, &eb);

    if (e != ERR_OK) {
        reply_err(ex, e, &eb);
        observe(ex, METRICS_VERB_BIND, false);
        return;
    }
    if (!r->bind) {
        metrics_bind_observe(0, 0);
        if (codec_reply_bind(ex, "gpu-extender: no API server configured (standalone mode); "
                                 "start it with --kubeconfig or in a cluster to bind") != ERR_OK)
            reply_error(ex, 500, "cannot encode the bind reply");
        observe(ex, METRICS_VERB_BIND, true);
        return;
    }
    exchange_defer(ex);
    e = r->bind(r->bind_ctx, &args, bind_done, ex, &eb);
    if (e != ERR_OK) {
        ex->deferred = false;
        if (codec_reply_bind(ex, eb.msg[0] ? eb.msg : err_str(e)) != ERR_OK)
            reply_error(ex, 500, "cannot encode the bind reply");
        observe(ex, METRICS_VERB_BIND, true);
    }
}

static void reply_text(struct exchange *ex, int status, const char *ctype, const char *text)
{
    if (exchange_reply_copy(ex, status, ctype, text, strlen(text)) != ERR_OK)
        exchange_reply(ex, 500, "text/plain", "internal error\n", 15);
}

static enum err append_cache_metrics(struct buf *b, struct cache *cache)
{
    struct cache_status st;

    if (!cache)
        return ERR_OK;
    cache_status_get(cache, &st);
    return buf_printf(
        b,
        "# HELP gpu_extender_cache_synced 1 once nodes and pods have been listed.\n"
        "# TYPE gpu_extender_cache_synced gauge\ngpu_extender_cache_synced %d\n"
        "# HELP gpu_extender_cache_connected 0 while a watch is in an outage.\n"
        "# TYPE gpu_extender_cache_connected gauge\ngpu_extender_cache_connected %d\n"
        "# HELP gpu_extender_cache_age_seconds Time since the last word from the API server.\n"
        "# TYPE gpu_extender_cache_age_seconds gauge\ngpu_extender_cache_age_seconds %.3f\n"
        "# HELP gpu_extender_cache_nodes Nodes in the cache.\n"
        "# TYPE gpu_extender_cache_nodes gauge\ngpu_extender_cache_nodes %zu\n"
        "# HELP gpu_extender_cache_gpu_pods Pods with GPU requests in the cache.\n"
        "# TYPE gpu_extender_cache_gpu_pods gauge\ngpu_extender_cache_gpu_pods %zu\n"
        "# HELP gpu_extender_cache_reservations Binds in flight holding GPUs.\n"
        "# TYPE gpu_extender_cache_reservations gauge\ngpu_extender_cache_reservations %zu\n"
        "# HELP gpu_extender_cache_events_total Node and pod objects applied.\n"
        "# TYPE gpu_extender_cache_events_total counter\ngpu_extender_cache_events_total %lu\n"
        "# HELP gpu_extender_cache_relists_total Full lists (start-up, 410 Gone).\n"
        "# TYPE gpu_extender_cache_relists_total counter\ngpu_extender_cache_relists_total %lu\n"
        "# HELP gpu_extender_cache_topologies Distinct node topology annotations held.\n"
        "# TYPE gpu_extender_cache_topologies gauge\ngpu_extender_cache_topologies %zu\n"
        "# HELP gpu_extender_cache_topology_shapes Distinct GPU interconnects (shared tables).\n"
        "# TYPE gpu_extender_cache_topology_shapes gauge\ngpu_extender_cache_topology_shapes %zu\n"
        "# HELP gpu_extender_cache_topology_bytes Memory of topologies and their tables.\n"
        "# TYPE gpu_extender_cache_topology_bytes gauge\ngpu_extender_cache_topology_bytes %zu\n",
        st.synced, st.connected, st.age_ms < 0 ? -1.0 : (double)st.age_ms / 1000.0, st.nodes,
        st.gpu_pods, st.reservations, (unsigned long)st.events, (unsigned long)st.relists,
        st.topologies, st.topology_shapes, st.topology_bytes);
}

static void handle_metrics(struct routes *r, struct exchange *ex)
{
    struct buf b;

    buf_init(&b, 4u << 20);
    if (metrics_format(&b) == ERR_OK && append_cache_metrics(&b, r->cache) == ERR_OK)
        reply_text(ex, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr);
    else
        reply_error(ex, 500, "cannot format metrics");
    buf_destroy(&b);
}

void routes_reply_json(struct exchange *ex, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);

    cJSON_Delete(doc);
    if (text)
        reply_text(ex, 200, "application/json", text);
    else
        reply_error(ex, 500, "out of memory");
    cJSON_free(text);
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
static void handle_readyz(struct routes *r, struct exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();
    bool ready = true;
    char *text;

    struct policy *pol = policy_store_get(r->policies);

    cJSON_AddStringToObject(doc, "mode", r->mode);
    cJSON_AddStringToObject(doc, "policy", pol->source);
    cJSON_AddStringToObject(doc, "policyHash", pol->hash);
    policy_unref(pol);
    add_cache_status(doc, r->cache, &ready);
    cJSON_AddStringToObject(doc, "status", ready ? "ok" : "cache not synced");
    text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (text)
        reply_text(ex, ready ? 200 : 503, "application/json", text);
    else
        reply_error(ex, 500, "out of memory");
    cJSON_free(text);
}

static void handle_version(struct exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddStringToObject(doc, "version", GX_VERSION);
    cJSON_AddStringToObject(doc, "git", GX_GIT_VERSION);
    routes_reply_json(ex, doc);
}

enum route_id {
    R_NONE,
    R_FILTER,
    R_PRIORITIZE,
    R_BIND,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_VERSION,
    R_DEBUG_NODES,
    R_DEBUG_POLICY,
    R_DEBUG_EXPLAIN,
};

static enum route_id match_route(const struct routes *r, const char *path, bool *is_post)
{
    static const struct {
        const char *name;
        enum route_id id;
    } verbs[] = {{"/filter", R_FILTER}, {"/prioritize", R_PRIORITIZE}, {"/bind", R_BIND}},
      gets[] = {{"/healthz", R_HEALTHZ},         {"/readyz", R_READYZ},
                {"/metrics", R_METRICS},         {"/version", R_VERSION},
                {"/debug/nodes", R_DEBUG_NODES}, {"/debug/policy", R_DEBUG_POLICY}};
    size_t plen = strlen(r->prefix);

    *is_post = true;
    if (strncmp(path, r->prefix, plen) == 0) {
        for (size_t i = 0; i < GX_ARRAY_LEN(verbs); i++) {
            if (strcmp(path + plen, verbs[i].name) == 0)
                return verbs[i].id;
        }
    }
    /* Explain takes a posted Pod, or names a cached one in the path. */
    if (strcmp(path, "/debug/explain") == 0)
        return R_DEBUG_EXPLAIN;
    *is_post = false;
    for (size_t i = 0; i < GX_ARRAY_LEN(gets); i++) {
        if (strcmp(path, gets[i].name) == 0)
            return gets[i].id;
    }
    if (strncmp(path, "/debug/explain/", 15) == 0)
        return R_DEBUG_EXPLAIN;
    return R_NONE;
}

static enum metrics_verb route_verb(enum route_id id)
{
    switch (id) {
    case R_FILTER:
        return METRICS_VERB_FILTER;
    case R_PRIORITIZE:
        return METRICS_VERB_PRIORITIZE;
    case R_BIND:
        return METRICS_VERB_BIND;
    default:
        return METRICS_VERB_OTHER;
    }
}

static bool check_request(struct exchange *ex, enum route_id id, bool is_post)
{
    char msg[160];

    if (id == R_NONE) {
        snprintf(msg, sizeof(msg), "no such endpoint: %.100s", ex->path);
        reply_error(ex, 404, msg);
    } else if (strcmp(ex->method, is_post ? "POST" : "GET") != 0 &&
               !(!is_post && strcmp(ex->method, "HEAD") == 0)) {
        snprintf(msg, sizeof(msg), "method %.16s not allowed; use %s", ex->method,
                 is_post ? "POST" : "GET");
        reply_error(ex, 405, msg);
    } else if (ex->body_too_large) {
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes (--max-body-bytes)",
                 ex->body_limit);
        reply_error(ex, 413, msg);
    } else {
        return true;
    }
    observe(ex, route_verb(id), false);
    return false;
}

void routes_handle(struct routes *r, struct exchange *ex)
{
    bool is_post;
    enum route_id id = match_route(r, ex->path, &is_post);

    if (!check_request(ex, id, is_post))
        return;
    switch (id) {
    case R_FILTER:
        handle_filter(r, ex);
        return;
    case R_PRIORITIZE:
        handle_prioritize(r, ex);
        return;
    case R_BIND:
        handle_bind(r, ex);
        return;
    case R_HEALTHZ:
        reply_text(ex, 200, "text/plain", "ok\n");
        break;
    case R_READYZ:
        handle_readyz(r, ex);
        break;
    case R_METRICS:
        handle_metrics(r, ex);
        break;
    case R_DEBUG_NODES:
        debug_nodes(r, ex);
        break;
    case R_DEBUG_POLICY:
        debug_policy(r, ex);
        break;
    case R_DEBUG_EXPLAIN:
        debug_explain(r, ex);
        break;
    default:
        handle_version(ex);
        break;
    }
    observe(ex, METRICS_VERB_OTHER, false);
}
