/* debug.c -- the endpoints operators read to understand decisions: /debug/nodes (the cache),
 * /debug/policy (the active policy) and /debug/explain (why a pod goes where it goes, or
 * nowhere). They answer with JSON built by cJSON; none of them is on the scheduler's path. */
#include "debug.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/codec.h"
#include "gx/jscan.h"
#include "gx/sched.h"
#include "gx/topology.h"

#include "demand.h"
#include "preempt.h"

/* A JSON string from s, which need not be NUL-terminated. */
static cJSON *str_json(struct str s)
{
    char *tmp = xmalloc(s.len + 1);
    cJSON *j;

    if (s.len)
        memcpy(tmp, s.ptr, s.len);
    tmp[s.len] = '\0';
    j = cJSON_CreateString(tmp);
    free(tmp);
    return j;
}

static void add_str(cJSON *obj, const char *key, struct str s)
{
    cJSON_AddItemToObject(obj, key, str_json(s));
}

static void add_mask(cJSON *obj, const char *key, uint32_t mask)
{
    char text[TOPO_MASK_STR_MAX];

    topo_mask_format(mask, text, sizeof(text));
    cJSON_AddStringToObject(obj, key, text);
}

/* ---- /debug/nodes ---- */

/* Seconds since an RFC 3339 UTC time ("2026-12-05T12:00:00Z"); -1 when it is not one. */
static double age_seconds(const char *rfc3339)
{
    struct tm tm;
    int used = 0;

    memset(&tm, 0, sizeof(tm));
    if (!rfc3339 ||
        sscanf(rfc3339, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used == 0 || rfc3339[used] != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return difftime(time(NULL), timegm(&tm));
}

/* Where the node's GPU facts come from: the node agent (its own line, and how old its facts
 * are), or our own books alone. */
static void add_source(cJSON *o, const struct cache_node *n)
{
    cJSON *a;
    double age;

    if (!n->agent) {
        cJSON_AddStringToObject(o, "gpuFactsSource",
                                n->topo ? "node annotations (no node agent)" : "none: count-only");
        return;
    }
    cJSON_AddStringToObject(o, "gpuFactsSource", "node agent");
    a = cJSON_AddObjectToObject(o, "agent");
    if (n->agent->meta[0])
        cJSON_AddItemToObject(a, "said", cJSON_Parse(n->agent->meta));
    cJSON_AddStringToObject(a, "changedAt", n->agent->changed_at);
    age = age_seconds(n->agent->changed_at);
    if (age >= 0)
        cJSON_AddNumberToObject(a, "ageSeconds", age);
    cJSON_AddBoolToObject(a, "podsKnown", n->agent->pods_known);
    cJSON_AddNumberToObject(a, "podsHoldingGPUs", (double)n->agent->pods);
}

static cJSON *node_json(const struct cache_node *n)
{
    cJSON *o = cJSON_CreateObject();

    add_str(o, "name", n->info.name);
    add_str(o, "model", n->info.model);
    add_str(o, "product", n->info.product);
    add_str(o, "family", n->info.family);
    cJSON_AddNumberToObject(o, "memoryMiB", (double)n->info.gpu_memory_mib);
    cJSON_AddBoolToObject(o, "ready", n->info.ready);
    cJSON_AddBoolToObject(o, "unschedulable", n->info.unschedulable);
    if (n->info.taints.len)
        cJSON_AddItemToObject(o, "taints",
                              cJSON_ParseWithLength(n->info.taints.ptr, n->info.taints.len));
    cJSON_AddNumberToObject(o, "allocatable", (double)n->info.gpu_allocatable);
    cJSON_AddNumberToObject(o, "used", (double)n->gpus_used);
    cJSON_AddNumberToObject(o, "reserved", (double)n->gpus_reserved);
    cJSON_AddNumberToObject(o, "free",
                            (double)(n->info.gpu_allocatable - n->gpus_used - n->gpus_reserved));
    if (n->topo) {
        cJSON *t = cJSON_AddObjectToObject(o, "topology");
        cJSON_AddNumberToObject(t, "gpus", topo_gpu_count(n->topo));
        add_mask(t, "healthy", topo_healthy_mask(n->topo));
        add_mask(t, "taken", n->named_mask);
        add_mask(t, "free", n->free_mask);
        cJSON_AddNumberToObject(t, "takenUnnamed", n->unknown_used);
    } else if (n->topo_error && n->topo_error[0]) {
        cJSON_AddStringToObject(o, "topologyError", n->topo_error);
    }
    add_source(o, n);
    return o;
}

void debug_nodes(const struct debug_ctx *d, struct exchange *ex)
{
    struct cache_snapshot *snap;
    cJSON *doc, *arr;

    if (!d->cache) {
        codec_reply_err(ex, ERR_NOT_FOUND, "no cluster cache in standalone mode");
        return;
    }
    snap = cache_snapshot_acquire(d->cache);
    doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "synced", snap->synced);
    cJSON_AddNumberToObject(doc, "generation", (double)snap->generation);
    arr = cJSON_AddArrayToObject(doc, "nodes");
    for (size_t i = 0; i < snap->node_count; i++)
        cJSON_AddItemToArray(arr, node_json(cache_snapshot_node(snap, i)));
    cache_snapshot_release(snap);
    codec_reply_json(ex, 200, doc);
}

/* ---- /debug/policy ---- */

static cJSON *strlist_json(const struct policy_strlist *l)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < l->count; i++)
        cJSON_AddItemToArray(a, str_json(l->items[i]));
    return a;
}

static cJSON *class_refs_json(const struct policy *p, const uint32_t *idx, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, str_json(p->classes[idx[i]].name));
    return a;
}

static cJSON *overrides_json(const struct policy_overrides *o)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddBoolToObject(j, "strategy", o->strategy);
    cJSON_AddBoolToObject(j, "models", o->models);
    cJSON_AddBoolToObject(j, "preferred", o->preferred);
    return j;
}

static cJSON *rule_json(const struct policy *p, const struct policy_rule *rule)
{
    cJSON *j = cJSON_CreateObject(), *m, *prefs;

    add_str(j, "name", rule->name);
    cJSON_AddNumberToObject(j, "line", (double)rule->line);
    m = cJSON_AddObjectToObject(j, "match");
    if (rule->has_namespaces)
        cJSON_AddItemToObject(m, "namespaces", strlist_json(&rule->namespaces));
    if (rule->has_priority_classes)
        cJSON_AddItemToObject(m, "priorityClassNames", strlist_json(&rule->priority_classes));
    if (rule->label_count) {
        cJSON *labels = cJSON_AddObjectToObject(m, "labels");
        for (size_t i = 0; i < rule->label_count; i++) {
            char key[320];
            snprintf(key, sizeof(key), "%.*s", (int)rule->labels[i].key.len,
                     rule->labels[i].key.ptr);
            add_str(labels, key, rule->labels[i].value);
        }
    }
    if (rule->has_allow)
        cJSON_AddItemToObject(j, "allow", class_refs_json(p, rule->allow, rule->allow_count));
    cJSON_AddItemToObject(j, "forbid", class_refs_json(p, rule->forbid, rule->forbid_count));
    prefs = cJSON_AddArrayToObject(j, "prefer");
    for (size_t i = 0; i < rule->prefer_count; i++) {
        cJSON *e = cJSON_CreateObject();
        add_str(e, "class", p->classes[rule->prefer[i].class_index].name);
        cJSON_AddNumberToObject(e, "weight", (double)rule->prefer[i].weight);
        cJSON_AddItemToArray(prefs, e);
    }
    cJSON_AddStringToObject(j, "strategy", policy_strategy_name(rule->strategy));
    if (rule->topo_min_gpus > 0) {
        cJSON *t = cJSON_AddObjectToObject(j, "topology");
        cJSON_AddNumberToObject(t, "minGPUs", (double)rule->topo_min_gpus);
        cJSON_AddStringToObject(t, "require", policy_link_name(rule->topo_require));
    }
    cJSON_AddItemToObject(j, "podOverrides", overrides_json(&rule->overrides));
    return j;
}

static cJSON *class_json(const struct policy_class *c)
{
    cJSON *j = cJSON_CreateObject();

    add_str(j, "name", c->name);
    cJSON_AddItemToObject(j, "products", strlist_json(&c->products));
    cJSON_AddItemToObject(j, "families", strlist_json(&c->families));
    cJSON_AddNumberToObject(j, "minMemoryMiB", (double)c->min_memory_mib);
    return j;
}

static void add_time(cJSON *obj, const char *key, int64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char text[40];

    gmtime_r(&t, &tm);
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(obj, key, text);
}

void debug_policy(const struct debug_ctx *d, struct exchange *ex)
{
    struct policy *p = policy_store_get(d->policies);
    struct policy_store_info info;
    cJSON *doc = cJSON_CreateObject(), *w, *arr;

    policy_store_info_get(d->policies, &info);
    cJSON_AddStringToObject(doc, "source", p->source);
    cJSON_AddStringToObject(doc, "hash", p->hash);
    add_time(doc, "loadedAt", info.loaded_unix_ms);
    cJSON_AddNumberToObject(doc, "reloads", (double)info.reloads);
    cJSON_AddNumberToObject(doc, "reloadFailures", (double)info.failures);
    cJSON_AddStringToObject(doc, "lastReloadError", info.last_error);
    cJSON_AddStringToObject(doc, "strategy", policy_strategy_name(p->strategy));
    w = cJSON_AddObjectToObject(doc, "weights");
    cJSON_AddNumberToObject(w, "freeGPUs", (double)p->weight_free_gpus);
    cJSON_AddNumberToObject(w, "model", (double)p->weight_model);
    cJSON_AddNumberToObject(w, "topology", (double)p->weight_topology);
    cJSON_AddNumberToObject(w, "scarcity", (double)p->weight_scarcity);
    cJSON_AddItemToObject(doc, "podOverrides", overrides_json(&p->overrides));
    arr = cJSON_AddArrayToObject(doc, "classes");
    for (size_t i = 0; i < p->class_count; i++)
        cJSON_AddItemToArray(arr, class_json(&p->classes[i]));
    arr = cJSON_AddArrayToObject(doc, "rules");
    for (size_t i = 0; i < p->rule_count; i++)
        cJSON_AddItemToArray(arr, rule_json(p, &p->rules[i]));
    cJSON_AddItemToObject(doc, "default", rule_json(p, &p->default_rule));
    cJSON_AddStringToObject(doc, "text", p->text ? p->text : "");
    policy_unref(p);
    codec_reply_json(ex, 200, doc);
}

/* ---- /debug/explain ---- */

/* What the filter reply says: every rejection is in FailedAndUnresolvableNodes (codec.c).
 * "takenNow" tells the rejections for what is taken now (free GPUs, healthy GPUs, a free
 * linked set) from those for good. */
static const char *const verdict_names[] = {"pass", "FailedAndUnresolvableNodes",
                                            "FailedAndUnresolvableNodes"};

static double ppm(int64_t v)
{
    return (double)v / 1e6;
}

static cJSON *score_json(const struct sched_score *s)
{
    cJSON *parts = cJSON_CreateObject(), *f, *m, *t;

    f = cJSON_AddObjectToObject(parts, "freeGPUs");
    cJSON_AddNumberToObject(f, "weight", (double)s->w_free);
    cJSON_AddNumberToObject(f, "value", ppm(s->free_ppm));
    cJSON_AddStringToObject(f, "strategy", policy_strategy_name(s->strategy));
    m = cJSON_AddObjectToObject(parts, "model");
    cJSON_AddNumberToObject(m, "weight", (double)s->w_model);
    cJSON_AddNumberToObject(m, "value", ppm(s->model_ppm));
    cJSON_AddNumberToObject(m, "rank", s->model_rank);
    t = cJSON_AddObjectToObject(parts, "topology");
    cJSON_AddNumberToObject(t, "weight", (double)s->w_topo);
    cJSON_AddNumberToObject(t, "value", ppm(s->topo_ppm));
    add_mask(t, "gpus", s->topo_set);
    if (s->w_scarcity) { /* only where it applies: other answers stay as they were */
        t = cJSON_AddObjectToObject(parts, "scarcity");
        cJSON_AddNumberToObject(t, "weight", (double)s->w_scarcity);
        cJSON_AddNumberToObject(t, "value", ppm(s->scarcity_ppm));
    }
    return parts;
}

struct explained {
    const struct cache_node *cn;
    struct sched_fit fit;
    int score;
};

/* Passing nodes first, best score first; then those rejected for what is taken now, then
 * those rejected for good; by name within each group, so the answer is stable. */
static int explained_cmp(const void *a, const void *b)
{
    const struct explained *x = a, *y = b;
    size_t n;
    int c;

    if (x->fit.verdict != y->fit.verdict)
        return (int)x->fit.verdict - (int)y->fit.verdict;
    if (x->score != y->score)
        return y->score - x->score;
    n = x->cn->info.name.len < y->cn->info.name.len ? x->cn->info.name.len : y->cn->info.name.len;
    c = memcmp(x->cn->info.name.ptr, y->cn->info.name.ptr, n);
    return c ? c : (int)x->cn->info.name.len - (int)y->cn->info.name.len;
}

static cJSON *explain_node(const struct sched_pod *sp, const struct explained *e)
{
    struct sched_node view = sched_node_of(e->cn);
    cJSON *o = cJSON_CreateObject();
    struct buf reason;

    add_str(o, "name", e->cn->info.name);
    add_str(o, "model", e->cn->info.model);
    cJSON_AddNumberToObject(o, "allocatable", (double)e->cn->info.gpu_allocatable);
    cJSON_AddNumberToObject(o, "free", (double)(e->cn->info.gpu_allocatable - view.used));
    cJSON_AddStringToObject(o, "verdict", verdict_names[e->fit.verdict]);
    add_source(o, e->cn);
    if (e->fit.verdict != SCHED_PASS) {
        cJSON_AddBoolToObject(o, "takenNow", e->fit.verdict == SCHED_FAIL);
        buf_init(&reason, 4096);
        if (sched_reason_format(e->fit, sp, &e->cn->info, &reason) == ERR_OK)
            cJSON_AddStringToObject(o, "reason", reason.ptr);
        buf_destroy(&reason);
        return o;
    }
    {
        struct sched_score s = sched_score_node(sp, &view);
        int64_t excess;
        int levels = sched_share_levels(sp, &e->cn->info, &s, &excess);
        cJSON *parts = score_json(&s);
        if (excess > 0) { /* the fleet-share mark-down, where the node's model has any */
            cJSON *f = cJSON_AddObjectToObject(parts, "fleetShare");
            cJSON_AddNumberToObject(f, "excess", ppm(excess));
            cJSON_AddNumberToObject(f, "levels", levels);
        }
        cJSON_AddNumberToObject(o, "score", s.score);
        cJSON_AddItemToObject(o, "parts", parts);
    }
    return o;
}

/* Explain weighs preemption on at most this many nodes (those rejected for what is taken
 * now, in the order shown), so that it stays quick on a large cluster. */
#define EXPLAIN_PREEMPT_MAX 256

/* What preemption would do: on the nodes rejected for what is taken now, since only there can
 * evicting pods help. */
static void add_preemption(const struct debug_ctx *d, const struct sched_pod *sp,
                           const struct explained *rows, size_t n, struct arena *arena, cJSON *doc)
{
    struct str *names = arena_alloc(arena, (EXPLAIN_PREEMPT_MAX + 1) * sizeof(*names));
    size_t k = 0, taken = 0;
    cJSON *p;

    if (!names)
        return;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].fit.verdict != SCHED_FAIL)
            continue;
        if (k < EXPLAIN_PREEMPT_MAX)
            names[k++] = rows[i].cn->info.name;
        taken++;
    }
    p = preempt_explain(d->cache, sp, names, k, arena);
    if (!p)
        return;
    cJSON_AddNumberToObject(p, "nodesWeighed", (double)k);
    cJSON_AddNumberToObject(p, "nodesTakenNow", (double)taken);
    cJSON_AddItemToObject(doc, "preemption", p);
}

/* The demand table the pod was scored on: each model's GPUs and scarcity, and whether the pod
 * may use it. It says why the scarcity part favours a model, or why it does not apply. */
static void add_scarcity(const struct sched_pod *sp, const struct sched_demand *d, cJSON *doc)
{
    uint64_t allowed = sched_demand_allowed(d, sp);
    cJSON *o = cJSON_AddObjectToObject(doc, "scarcity"), *arr;

    cJSON_AddBoolToObject(o, "applies", sp->demand != NULL);
    cJSON_AddBoolToObject(o, "fleetShare", sp->share_table != NULL);
    arr = cJSON_AddArrayToObject(o, "models");
    for (size_t i = 0; i < d->model_count; i++) {
        const struct sched_demand_model *m = &d->models[i];
        cJSON *e = cJSON_CreateObject();
        add_str(e, "model", (struct str){m->product, m->model_len});
        cJSON_AddNumberToObject(e, "gpus", (double)m->gpus);
        cJSON_AddNumberToObject(e, "scarcity", ppm(m->scarcity_ppm));
        cJSON_AddBoolToObject(e, "allowed", (allowed >> i & 1) != 0);
        cJSON_AddItemToArray(arr, e);
    }
}

static cJSON *explain_doc(const struct debug_ctx *d, const struct sched_pod *sp,
                          const struct sched_demand *demand, const struct cache_snapshot *snap,
                          struct explained *rows, struct arena *arena)
{
    cJSON *doc = cJSON_CreateObject(), *pod, *arr, *sum;
    size_t counts[3] = {0, 0, 0};

    pod = cJSON_AddObjectToObject(doc, "pod");
    add_str(pod, "namespace", sp->pod->ns);
    add_str(pod, "name", sp->pod->name);
    cJSON_AddNumberToObject(pod, "gpus", (double)sp->pod->gpus);
    add_str(doc, "rule", sp->rule->name);
    cJSON_AddNumberToObject(doc, "ruleLine", (double)sp->rule->line);
    cJSON_AddStringToObject(doc, "strategy", policy_strategy_name(sp->strategy));
    cJSON_AddStringToObject(doc, "policyHash", sp->pol->hash);
    if (demand)
        add_scarcity(sp, demand, doc);
    for (size_t i = 0; i < snap->node_count; i++) {
        struct sched_node view = sched_node_of(cache_snapshot_node(snap, i));
        rows[i].cn = cache_snapshot_node(snap, i);
        rows[i].fit = sched_filter_node(sp, &view);
        rows[i].score = rows[i].fit.verdict == SCHED_PASS ? sched_score_node(sp, &view).score : 0;
        counts[rows[i].fit.verdict]++;
    }
    qsort(rows, snap->node_count, sizeof(*rows), explained_cmp);
    sum = cJSON_AddObjectToObject(doc, "summary");
    cJSON_AddNumberToObject(sum, "pass", (double)counts[SCHED_PASS]);
    cJSON_AddNumberToObject(sum, "FailedAndUnresolvableNodes",
                            (double)(counts[SCHED_FAIL] + counts[SCHED_UNRESOLVABLE]));
    cJSON_AddNumberToObject(sum, "takenNow", (double)counts[SCHED_FAIL]);
    arr = cJSON_AddArrayToObject(doc, "nodes");
    for (size_t i = 0; i < snap->node_count; i++)
        cJSON_AddItemToArray(arr, explain_node(sp, &rows[i]));
    if (counts[SCHED_PASS] == 0)
        add_preemption(d, sp, rows, snap->node_count, arena, doc);
    return doc;
}

/* The pod to explain: a posted Pod object, or a pending one the cache holds. */
static bool explain_pod(const struct debug_ctx *d, struct exchange *ex, struct pod_info *pod)
{
    const char *rest = ex->path + strlen("/debug/explain");
    struct str ns, name, tail;
    struct jscan js;

    if (strcmp(ex->method, "POST") == 0) {
        jscan_init(&js, ex->body, ex->body_len, 128);
        if (!obj_pod_decode(&js, &ex->arena, pod) || !jscan_finish(&js)) {
            struct errbuf eb = ERRBUF_INIT;
            bool budget = jscan_error_kind(&js) == JSCAN_ERR_BUDGET;

            errbuf_set(&eb, "the body is not a Pod: %s", jscan_error(&js, NULL));
            codec_reply_err(ex, budget ? ERR_TOO_LARGE : ERR_PARSE, eb.msg);
            return false;
        }
        return true;
    }
    tail = str_from_cstr(rest[0] == '/' ? rest + 1 : rest);
    if (!str_split(&tail, '/', &ns) || !str_split(&tail, '/', &name) || ns.len == 0 ||
        name.len == 0 || tail.len != 0) {
        codec_reply_err(ex, ERR_NOT_FOUND, "use GET /debug/explain/NAMESPACE/NAME or POST a Pod");
        return false;
    }
    if (!cache_pending_pod(d->cache, ns, name, &ex->arena, pod)) {
        codec_reply_err(ex, ERR_NOT_FOUND,
                        "no pending GPU pod with that namespace and name in the "
                        "cache (bound pods are not explained; POST the Pod instead)");
        return false;
    }
    return true;
}

/* The pod's rule when its annotations are unusable: the error the scheduler sees. */
static cJSON *refused_doc(const struct policy *pol, const struct pod_info *pod, const char *error)
{
    cJSON *doc = cJSON_CreateObject();

    add_str(doc, "rule", sched_select_rule(pol, pod)->name);
    cJSON_AddStringToObject(doc, "error", error);
    return doc;
}

void debug_explain(const struct debug_ctx *d, struct exchange *ex)
{
    struct cache_snapshot *snap;
    struct explained *rows;
    struct errbuf eb = ERRBUF_INIT;
    struct pod_info pod;
    struct sched_pod sp;
    struct policy *pol;

    if (!d->cache) {
        codec_reply_err(ex, ERR_NOT_FOUND,
                        "explain needs the cluster cache; standalone mode has none");
        return;
    }
    if (!explain_pod(d, ex, &pod))
        return;
    snap = cache_snapshot_acquire(d->cache);
    pol = policy_store_get(d->policies);
    rows = arena_alloc(&ex->arena, (snap->node_count + 1) * sizeof(*rows));
    if (!rows)
        codec_reply_err(ex, ERR_TOO_LARGE, NULL);
    else if (!sched_pod_prepare(&sp, &pod, pol, &eb))
        codec_reply_json(ex, 200, refused_doc(pol, &pod, eb.msg));
    else {
        struct demand_hold hold;
        demand_use(d->demand, snap, &sp, &ex->arena, &hold);
        codec_reply_json(ex, 200, explain_doc(d, &sp, hold.d, snap, rows, &ex->arena));
        demand_done(&hold);
    }
    policy_unref(pol);
    cache_snapshot_release(snap);
}
