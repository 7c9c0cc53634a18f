/* routes.c -- dispatch, decisions per verb, and the error-to-status table (see routes.h). */
#include "gx/routes.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/sched.h"

struct routes {
    char prefix[256]; /* without a trailing '/': "" for the root */
    const struct policy *policy;
    routes_bind_fn *bind;
    void *bind_ctx;
    char mode[256];
};

struct routes *routes_new(const struct routes_config *cfg)
{
    struct routes *r = xcalloc(1, sizeof(*r));
    size_t n;

    snprintf(r->prefix, sizeof(r->prefix), "%s", cfg->url_prefix ? cfg->url_prefix : "");
    n = strlen(r->prefix);
    while (n > 0 && r->prefix[n - 1] == '/')
        r->prefix[--n] = '\0';
    r->policy = cfg->policy;
    r->bind = cfg->bind;
    r->bind_ctx = cfg->bind_ctx;
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
    metrics_request_observe(verb, o, exchange_now_ns() - ex->start_ns);
}

/* Replies with a JSON error body; if even that cannot be built, a static one. */
static void reply_error(struct exchange *ex, int status, const char *msg)
{
    if (codec_reply_error(ex, status, msg) != ERR_OK)
        exchange_reply(ex, 500, "application/json", "{\"Error\":\"internal error\"}", 26);
}

static void reply_err(struct exchange *ex, enum err e, const struct errbuf *eb)
{
    reply_error(ex, err_status(e), eb->msg[0] ? eb->msg : err_str(e));
}

/* The cluster cache arrives with the cluster-state issue; until then NodeNames requests
 * cannot be answered, and the scheduler must hear that rather than a guess. */
static const char no_cache_msg[] =
    "gpu-extender: nodeCacheCapable requests need the cluster cache, which this build does not "
    "have yet; configure the extender with nodeCacheCapable: false";

static bool decode_request(struct exchange *ex, struct ext_args *args)
{
    struct errbuf eb = {{0}};
    enum err e = codec_decode_args(&ex->arena, ex->body, ex->body_len, args, &eb);

    if (e != ERR_OK) {
        log_debug("api", "rejected request", "path=%s err=\"%s\"", ex->path, eb.msg);
        reply_err(ex, e, &eb);
        return false;
    }
    return true;
}

static bool filter_nodes(struct exchange *ex, const struct ext_args *args,
                         struct codec_filter_result *res)
{
    struct sched_fit *fits = arena_alloc(&ex->arena, (args->node_count + 1) * sizeof(*fits));
    const struct node_info **nodes =
        arena_alloc(&ex->arena, (args->node_count + 1) * sizeof(*nodes));
    uint64_t counts[3] = {0, 0, 0};

    if (!fits || !nodes)
        return false;
    for (size_t i = 0; i < args->node_count; i++) {
        fits[i] = sched_filter_node(&args->pod, &args->nodes[i], 0);
        nodes[i] = &args->nodes[i];
        counts[fits[i].verdict]++;
    }
    metrics_counter_add(METRICS_FILTER_NODES_PASSED, counts[SCHED_PASS]);
    metrics_counter_add(METRICS_FILTER_NODES_FAILED, counts[SCHED_FAIL]);
    metrics_counter_add(METRICS_FILTER_NODES_UNRESOLVABLE, counts[SCHED_UNRESOLVABLE]);
    res->fits = fits;
    res->reason_nodes = nodes;
    return true;
}

static void handle_filter(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct codec_filter_result res = {.args = &args};
    struct errbuf eb = {{0}};
    enum err e;

    if (!decode_request(ex, &args)) {
        observe(ex, METRICS_VERB_FILTER, false);
        return;
    }
    if (!args.full_nodes)
        res.error = no_cache_msg;
    else if (!sched_pod_check(&args.pod, r->policy, &eb))
        res.error = eb.msg;
    else if (!filter_nodes(ex, &args, &res))
        res.error = "gpu-extender: request too large for its memory budget";
    e = codec_reply_filter(ex, &res);
    if (e != ERR_OK)
        reply_error(ex, err_status(e), "cannot encode the filter reply");
    observe(ex, METRICS_VERB_FILTER, res.error != NULL);
}

static void handle_prioritize(struct routes *r, struct exchange *ex)
{
    struct ext_args args;
    struct str *names;
    int *scores;

    if (!decode_request(ex, &args)) {
        observe(ex, METRICS_VERB_PRIORITIZE, false);
        return;
    }
    if (!args.full_nodes) {
        reply_error(ex, 503, no_cache_msg);
        observe(ex, METRICS_VERB_PRIORITIZE, false);
        return;
    }
    names = arena_alloc(&ex->arena, (args.node_count + 1) * sizeof(*names));
    scores = arena_alloc(&ex->arena, (args.node_count + 1) * sizeof(*scores));
    if (!names || !scores) {
        reply_error(ex, 413, "request too large for its memory budget");
        observe(ex, METRICS_VERB_PRIORITIZE, false);
        return;
    }
    for (size_t i = 0; i < args.node_count; i++) {
        names[i] = args.nodes[i].name;
        scores[i] = sched_score_node(&args.pod, &args.nodes[i], 0, r->policy).score;
    }
    if (codec_reply_prioritize(ex, names, scores, args.node_count) != ERR_OK)
        reply_error(ex, 413, "cannot encode the prioritize reply");
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

static void handle_metrics(struct exchange *ex)
{
    struct buf b;

    buf_init(&b, 4u << 20);
    if (metrics_format(&b) == ERR_OK)
        reply_text(ex, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr);
    else
        reply_error(ex, 500, "cannot format metrics");
    buf_destroy(&b);
}

static void reply_json_doc(struct exchange *ex, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);

    cJSON_Delete(doc);
    if (text)
        reply_text(ex, 200, "application/json", text);
    else
        reply_error(ex, 500, "out of memory");
    cJSON_free(text);
}

static void handle_readyz(struct routes *r, struct exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddStringToObject(doc, "status", "ok");
    cJSON_AddStringToObject(doc, "mode", r->mode);
    cJSON_AddStringToObject(doc, "policy", r->policy->source);
    cJSON_AddStringToObject(doc, "cache", "none: free GPUs are allocatable GPUs");
    reply_json_doc(ex, doc);
}

static void handle_version(struct exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddStringToObject(doc, "version", GX_VERSION);
    cJSON_AddStringToObject(doc, "git", GX_GIT_VERSION);
    reply_json_doc(ex, doc);
}

enum route_id { R_NONE, R_FILTER, R_PRIORITIZE, R_BIND, R_HEALTHZ, R_READYZ, R_METRICS, R_VERSION };

static enum route_id match_route(const struct routes *r, const char *path, bool *is_post)
{
    static const struct {
        const char *name;
        enum route_id id;
    } verbs[] = {{"/filter", R_FILTER}, {"/prioritize", R_PRIORITIZE}, {"/bind", R_BIND}},
      gets[] = {{"/healthz", R_HEALTHZ}, {"/readyz", R_READYZ}, {"/metrics", R_METRICS},
                {"/version", R_VERSION}};
    size_t plen = strlen(r->prefix);

    *is_post = true;
    if (strncmp(path, r->prefix, plen) == 0) {
        for (size_t i = 0; i < GX_ARRAY_LEN(verbs); i++) {
            if (strcmp(path + plen, verbs[i].name) == 0)
                return verbs[i].id;
        }
    }
    *is_post = false;
    for (size_t i = 0; i < GX_ARRAY_LEN(gets); i++) {
        if (strcmp(path, gets[i].name) == 0)
            return gets[i].id;
    }
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
        handle_metrics(ex);
        break;
    default:
        handle_version(ex);
        break;
    }
    observe(ex, METRICS_VERB_OTHER, false);
}
