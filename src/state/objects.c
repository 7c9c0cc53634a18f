/* objects.c -- reads the decision-relevant facts out of Node and Pod JSON (see objects.h).
 *
 * Each reader walks one object level, consumes every member (skipping, and so validating,
 * the ones we do not need) and remembers which wanted keys it has seen, so that a repeated
 * key is an error rather than a silent choice between two values. */
#include "gx/objects.h"

#include <stdint.h>
#include <string.h>

#include "objects_internal.h"

bool obj_read_string(struct jscan *js, struct arena *arena, struct str *out)
{
    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    return jscan_string_decoded(js, arena, out);
}

bool obj_not_object(struct jscan *js, const char *msg)
{
    if (jscan_peek(js) == JSON_NONE && !jscan_failed(js))
        return jscan_skip(js, NULL) && jscan_fail(js, msg);
    return jscan_fail(js, msg);
}

/* Enters an array, or consumes a null. Returns 1 entered, 0 null, -1 error. */
static int enter_array_or_null(struct jscan *js)
{
    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL) ? 0 : -1;
    return jscan_enter_array(js) ? 1 : -1;
}

bool obj_walk(struct jscan *js, const char *const *names, size_t n, jscan_member_fn *fn, void *ctx)
{
    return jscan_walk_object(js, names, n, JSCAN_WALK_OR_NULL | JSCAN_WALK_ALL_KEYS, fn, ctx);
}

static const char *const part_names[] = {"metadata", "spec", "status"};

struct parts_walk {
    const struct obj_parts *parts;
    void *ctx;
};

static bool part_member(struct jscan *js, int idx, void *ctx)
{
    const struct parts_walk *w = ctx;

    if (idx < 0 || !w->parts->fns[idx])
        return jscan_skip(js, NULL);
    return obj_walk(js, w->parts->names[idx], w->parts->counts[idx], w->parts->fns[idx], w->ctx);
}

bool obj_walk_parts(struct jscan *js, const struct obj_parts *parts, void *ctx)
{
    struct parts_walk w = {parts, ctx};

    return obj_walk(js, part_names, GX_ARRAY_LEN(part_names), part_member, &w);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool obj_parse_whole_quantity(struct str q, int64_t max, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mul;
        int64_t div;
    } units[] = {{"", 1, 1},        {"m", 1, 1000},  {"k", 1000, 1},
                 {"M", 1000000, 1}, {"Ki", 1024, 1}, {"Mi", 1048576, 1}};
    size_t digits = 0;
    int64_t v = 0;

    while (digits < q.len && is_digit(q.ptr[digits])) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (q.ptr[digits] - '0');
        digits++;
    }
    if (digits == 0)
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        struct str suffix = {q.ptr + digits, q.len - digits};
        if (!str_eq_cstr(suffix, units[i].suffix))
            continue;
        if (v % units[i].div != 0 || v / units[i].div > max / units[i].mul)
            return false;
        *out = v / units[i].div * units[i].mul;
        return *out <= max;
    }
    return false;
}

struct str obj_model_from_product(struct str product)
{
    static const char shared[] = "-SHARED";
    struct str s = product;
    size_t n = sizeof(shared) - 1;

    if (s.len >= n && str_ieq((struct str){s.ptr + s.len - n, n}, STR_LIT(shared)))
        s.len -= n;
    for (size_t i = 0; i + 5 <= s.len; i++) {
        if (str_ieq((struct str){s.ptr + i, 5}, STR_LIT("-MIG-"))) {
            s.len = i;
            break;
        }
    }
    return s;
}

/* Reads a resource map ({"nvidia.com/gpu": "8", ...}) and returns the GPU quantity. */
struct gpu_qty {
    struct arena *arena;
    int64_t *value;
    bool *present;
};

static const char *const resource_names[] = {OBJ_GPU_RESOURCE};

static bool gpu_qty_member(struct jscan *js, int idx, void *ctx)
{
    struct gpu_qty *q = ctx;
    struct str text = STR_NULL;

    if (idx < 0)
        return jscan_skip(js, NULL);
    if (!obj_read_string(js, q->arena, &text))
        return false;
    if (!obj_parse_whole_quantity(text, OBJ_MAX_GPUS, q->value))
        return jscan_fail(js, "nvidia.com/gpu quantity is not a whole number in range");
    *q->present = true;
    return true;
}

static bool read_gpu_quantity(struct jscan *js, struct arena *arena, int64_t *value, bool *present)
{
    struct gpu_qty q = {arena, value, present};

    return obj_walk(js, resource_names, 1, gpu_qty_member, &q);
}

/* ---- Nodes ---- */

static const char *const node_label_names[] = {OBJ_LABEL_PRODUCT, OBJ_LABEL_FAMILY,
                                               OBJ_LABEL_MEMORY};

struct node_ctx {
    struct arena *arena;
    struct node_info *node;
    bool annotations; /* read ours; else skip them (validated all the same) */
};

static bool node_label(struct jscan *js, int idx, void *ctx)
{
    struct node_ctx *c = ctx;
    struct str memory = STR_NULL;
    int64_t mib;

    switch (idx) {
    case 0:
        if (!obj_read_string(js, c->arena, &c->node->product))
            return false;
        c->node->model = obj_model_from_product(c->node->product);
        return true;
    case 1:
        return obj_read_string(js, c->arena, &c->node->family);
    case 2:
        /* A label we cannot read as MiB is treated as absent, never as an error: labels
         * are free text and other tools write them (KAI #706). */
        if (!obj_read_string(js, c->arena, &memory))
            return false;
        if (str_to_i64(memory, 0, INT64_MAX, &mib) == ERR_OK)
            c->node->gpu_memory_mib = mib;
        return true;
    default:
        return jscan_skip(js, NULL);
    }
}

static const char *const node_ann_names[] = {OBJ_ANN_TOPOLOGY,    OBJ_ANN_HAMI_SCORE,
                                             OBJ_ANN_GPUS_IN_USE, OBJ_ANN_GPU_PODS,
                                             OBJ_ANN_AGENT,       OBJ_ANN_AGENT_CHANGED_AT};

static bool node_annotation(struct jscan *js, int idx, void *ctx)
{
    struct node_ctx *c = ctx;
    struct str *slots[] = {&c->node->ann_topology,    &c->node->ann_hami_score,
                           &c->node->ann_gpus_in_use, &c->node->ann_gpu_pods,
                           &c->node->ann_agent,       &c->node->ann_agent_changed_at};

    if (idx < 0)
        return jscan_skip(js, NULL);
    return obj_read_string(js, c->arena, slots[idx]);
}

static const char *const node_meta_names[] = {"name", "labels", "annotations"};

static bool node_meta(struct jscan *js, int idx, void *ctx)
{
    struct node_ctx *c = ctx;

    switch (idx) {
    case 0:
        return obj_read_string(js, c->arena, &c->node->name);
    case 1:
        return obj_walk(js, node_label_names, GX_ARRAY_LEN(node_label_names), node_label, c);
    case 2:
        if (!c->annotations)
            return jscan_skip(js, NULL);
        return obj_walk(js, node_ann_names, GX_ARRAY_LEN(node_ann_names), node_annotation, c);
    default:
        return jscan_skip(js, NULL);
    }
}

bool obj_read_raw(struct jscan *js, enum jtype want, const char *msg, struct str *out)
{
    enum jtype t = jscan_peek(js);
    struct str span;

    if (t == JSON_NULL)
        return jscan_skip(js, NULL);
    if (t != want)
        return jscan_fail(js, msg);
    if (!jscan_skip(js, &span))
        return false;
    if (span.len > 2)
        *out = span;
    return true;
}

static const char *const node_spec_names[] = {"unschedulable", "taints"};

static bool node_spec(struct jscan *js, int idx, void *ctx)
{
    struct node_ctx *c = ctx;

    if (idx == 0 && jscan_peek(js) != JSON_NULL)
        return jscan_bool(js, &c->node->unschedulable);
    if (idx == 1)
        return obj_read_raw(js, JSON_ARRAY, "node spec.taints is not an array", &c->node->taints);
    return jscan_skip(js, NULL);
}

struct condition {
    struct arena *arena;
    struct str type;
    struct str status;
};

static const char *const condition_names[] = {"type", "status"};

static bool condition_member(struct jscan *js, int idx, void *ctx)
{
    struct condition *cond = ctx;

    if (idx == 0)
        return obj_read_string(js, cond->arena, &cond->type);
    if (idx == 1)
        return obj_read_string(js, cond->arena, &cond->status);
    return jscan_skip(js, NULL);
}

static bool read_conditions(struct jscan *js, struct node_ctx *c)
{
    int r = enter_array_or_null(js);

    if (r <= 0)
        return r == 0;
    while ((r = jscan_next_element(js)) == 1) {
        struct condition cond = {.arena = c->arena};

        if (jscan_peek(js) != JSON_OBJECT)
            return jscan_fail(js, "node condition is not an object");
        if (!obj_walk(js, condition_names, 2, condition_member, &cond))
            return false;
        if (str_eq_cstr(cond.type, "Ready"))
            c->node->ready = str_eq_cstr(cond.status, "True");
    }
    return r == 0;
}

static const char *const node_status_names[] = {"allocatable", "conditions"};

static bool node_status(struct jscan *js, int idx, void *ctx)
{
    struct node_ctx *c = ctx;
    bool present = false;

    if (idx == 0)
        return read_gpu_quantity(js, c->arena, &c->node->gpu_allocatable, &present);
    if (idx == 1)
        return read_conditions(js, c);
    return jscan_skip(js, NULL);
}

static const struct obj_parts node_parts = {
    .names = {node_meta_names, node_spec_names, node_status_names},
    .counts = {GX_ARRAY_LEN(node_meta_names), GX_ARRAY_LEN(node_spec_names),
               GX_ARRAY_LEN(node_status_names)},
    .fns = {node_meta, node_spec, node_status}};

static bool node_decode(struct jscan *js, struct arena *arena, struct node_info *out,
                        bool annotations)
{
    struct node_ctx c = {arena, out, annotations};
    size_t start;

    memset(out, 0, sizeof(*out));
    if (jscan_peek(js) != JSON_OBJECT)
        return obj_not_object(js, "node is not an object");
    start = js->pos;
    if (!obj_walk_parts(js, &node_parts, &c))
        return false;
    out->raw = (struct str){js->buf + start, js->pos - start};
    if (out->name.len == 0)
        return jscan_fail(js, "node has no metadata.name");
    return true;
}

bool obj_node_decode(struct jscan *js, struct arena *arena, struct node_info *out)
{
    return node_decode(js, arena, out, true);
}

bool obj_node_decode_facts(struct jscan *js, struct arena *arena, struct node_info *out)
{
    return node_decode(js, arena, out, false);
}

/* ---- Pods ---- */

struct container_acc {
    int64_t app_sum;     /* app containers plus restartable (sidecar) init containers */
    int64_t sidecar_sum; /* restartable init containers seen so far */
    int64_t init_max;    /* max over init containers of (its request + sidecars before it) */
};

struct container {
    struct arena *arena;
    int64_t req;
    int64_t lim;
    bool has_req;
    bool has_lim;
    bool restartable;
};

static const char *const resources_names[] = {"requests", "limits"};

static bool resources_member(struct jscan *js, int idx, void *ctx)
{
    struct container *c = ctx;

    if (idx == 0)
        return read_gpu_quantity(js, c->arena, &c->req, &c->has_req);
    if (idx == 1)
        return read_gpu_quantity(js, c->arena, &c->lim, &c->has_lim);
    return jscan_skip(js, NULL);
}

static const char *const container_names[] = {"resources", "restartPolicy"};

static bool container_member(struct jscan *js, int idx, void *ctx)
{
    struct container *c = ctx;
    struct str policy = STR_NULL;

    if (idx == 0)
        return obj_walk(js, resources_names, 2, resources_member, c);
    if (idx == 1) {
        if (!obj_read_string(js, c->arena, &policy))
            return false;
        c->restartable = str_eq_cstr(policy, "Always");
        return true;
    }
    return jscan_skip(js, NULL);
}

/* Reads containers[] or initContainers[] and folds their GPU requests into acc. */
static bool read_containers(struct jscan *js, struct arena *arena, bool init,
                            struct container_acc *acc)
{
    int r = enter_array_or_null(js);

    if (r <= 0)
        return r == 0;
    while ((r = jscan_next_element(js)) == 1) {
        struct container c = {.arena = arena};
        int64_t gpus;

        if (jscan_peek(js) != JSON_OBJECT)
            return jscan_fail(js, "container is not an object");
        if (!obj_walk(js, container_names, 2, container_member, &c))
            return false;
        /* Extended resources must have requests equal to limits; requests win if both. */
        gpus = c.has_req ? c.req : (c.has_lim ? c.lim : 0);
        if (!init) {
            acc->app_sum += gpus;
        } else if (c.restartable) {
            acc->sidecar_sum += gpus;
            acc->app_sum += gpus;
            if (acc->sidecar_sum > acc->init_max)
                acc->init_max = acc->sidecar_sum;
        } else if (gpus + acc->sidecar_sum > acc->init_max) {
            acc->init_max = gpus + acc->sidecar_sum;
        }
        if (acc->app_sum > OBJ_MAX_GPUS || acc->init_max > OBJ_MAX_GPUS)
            return jscan_fail(js, "pod requests more nvidia.com/gpu than any node can have");
    }
    return r == 0;
}

struct pod_ctx {
    struct arena *arena;
    struct pod_info *pod;
    struct container_acc acc;
    struct str gpu_count;      /* our bind's record: present on a pod we bound */
    struct str model_required; /* the requirement that record's gpu-model replaced */
    struct str rule;           /* the rule the record names */
};

static const char *const pod_ann_names[] = {
    OBJ_ANN_GPU_MODEL,          OBJ_ANN_GPU_MODEL_PREFERRED, OBJ_ANN_STRATEGY,
    OBJ_ANN_HAMI_USE,           OBJ_ANN_HAMI_NOUSE,          OBJ_ANN_GPUS,
    OBJ_ANN_GPU_MODEL_REQUIRED, OBJ_ANN_GPU_COUNT,           OBJ_ANN_POLICY_RULE};

static bool pod_annotation(struct jscan *js, int idx, void *ctx)
{
    struct pod_ctx *c = ctx;
    struct str *slots[] = {&c->pod->ann_gpu_model,
                           &c->pod->ann_gpu_model_preferred,
                           &c->pod->ann_strategy,
                           &c->pod->ann_use_gputype,
                           &c->pod->ann_nouse_gputype,
                           &c->pod->ann_gpus,
                           &c->model_required,
                           &c->gpu_count,
                           &c->rule};

    if (idx < 0)
        return jscan_skip(js, NULL);
    return obj_read_string(js, c->arena, slots[idx]);
}

static const char *const pod_meta_names[] = {"name",        "namespace",         "uid",
                                             "annotations", "deletionTimestamp", "labels"};

static bool pod_meta(struct jscan *js, int idx, void *ctx)
{
    struct pod_ctx *c = ctx;

    switch (idx) {
    case 0:
        return obj_read_string(js, c->arena, &c->pod->name);
    case 1:
        return obj_read_string(js, c->arena, &c->pod->ns);
    case 2:
        return obj_read_string(js, c->arena, &c->pod->uid);
    case 3:
        return obj_walk(js, pod_ann_names, GX_ARRAY_LEN(pod_ann_names), pod_annotation, c);
    case 4:
        c->pod->deleting = jscan_peek(js) != JSON_NULL;
        return jscan_skip(js, NULL);
    case 5:
        return obj_read_raw(js, JSON_OBJECT, "pod metadata.labels is not an object",
                            &c->pod->labels);
    default:
        return jscan_skip(js, NULL);
    }
}

/* spec.priority: an integer in int32 range, or null (left as 0). */
static bool read_priority(struct jscan *js, int32_t *out)
{
    enum jtype t = jscan_peek(js);
    struct str span;
    int64_t v;

    if (t == JSON_NULL)
        return jscan_skip(js, NULL);
    if (t != JSON_NUMBER)
        return jscan_fail(js, "pod spec.priority is not an integer");
    if (!jscan_skip(js, &span))
        return false;
    if (str_to_i64(span, INT32_MIN, INT32_MAX, &v) != ERR_OK)
        return jscan_fail(js, "pod spec.priority is not an integer in int32 range");
    *out = (int32_t)v;
    return true;
}

static const char *const pod_spec_names[] = {"containers", "initContainers",
                                             "nodeName",   "priorityClassName",
                                             "priority",   "preemptionPolicy"};

static bool pod_spec(struct jscan *js, int idx, void *ctx)
{
    struct pod_ctx *c = ctx;
    struct str policy = STR_NULL;

    switch (idx) {
    case 0:
        return read_containers(js, c->arena, false, &c->acc);
    case 1:
        return read_containers(js, c->arena, true, &c->acc);
    case 2:
        return obj_read_string(js, c->arena, &c->pod->node_name);
    case 3:
        return obj_read_string(js, c->arena, &c->pod->priority_class);
    case 4:
        return read_priority(js, &c->pod->priority);
    case 5:
        if (!obj_read_string(js, c->arena, &policy))
            return false;
        c->pod->preempt_never = str_eq_cstr(policy, "Never");
        return true;
    default:
        return jscan_skip(js, NULL);
    }
}

static const char *const pod_status_names[] = {"phase", "nominatedNodeName"};

static bool pod_status(struct jscan *js, int idx, void *ctx)
{
    struct pod_ctx *c = ctx;

    if (idx == 0)
        return obj_read_string(js, c->arena, &c->pod->phase);
    if (idx == 1)
        return obj_read_string(js, c->arena, &c->pod->nominated_node);
    return jscan_skip(js, NULL);
}

static const struct obj_parts pod_parts = {
    .names = {pod_meta_names, pod_spec_names, pod_status_names},
    .counts = {GX_ARRAY_LEN(pod_meta_names), GX_ARRAY_LEN(pod_spec_names),
               GX_ARRAY_LEN(pod_status_names)},
    .fns = {pod_meta, pod_spec, pod_status}};

bool obj_pod_decode(struct jscan *js, struct arena *arena, struct pod_info *out)
{
    struct pod_ctx c = {.arena = arena, .pod = out};

    memset(out, 0, sizeof(*out));
    if (jscan_peek(js) != JSON_OBJECT)
        return obj_not_object(js, "pod is not an object");
    if (!obj_walk_parts(js, &pod_parts, &c))
        return false;
    out->gpus = c.acc.app_sum > c.acc.init_max ? c.acc.app_sum : c.acc.init_max;
    /* On a pod we bound, gpu-model names the model it got, not the ones it asked for: read as
     * a requirement it would pin every running pod to its node's model, and the scarcity part
     * would count all of them as demand for exactly that model. */
    if (out->node_name.len && c.gpu_count.len) {
        out->ann_gpu_model = c.model_required;
        out->rule_record = c.rule;
    }
    return true;
}

/* Compares a raw (escaped) JSON key with key; keys longer than any label key never match. */
static bool raw_key_eq(struct str raw, struct str key)
{
    char buf[320];
    size_t n;

    if (jstr_is_plain(raw))
        return str_eq(raw, key);
    n = jstr_decode(raw, buf, sizeof(buf));
    return n != SIZE_MAX && str_eq((struct str){buf, n}, key);
}

bool obj_label_get(struct str labels, struct str key, char *buf, size_t cap, struct str *value)
{
    struct jscan js;
    struct str k, raw;
    size_t n;

    if (labels.len == 0)
        return false;
    jscan_init(&js, labels.ptr, labels.len, 2);
    if (!jscan_enter_object(&js))
        return false;
    while (jscan_next_member(&js, &k) == 1) {
        if (!raw_key_eq(k, key)) {
            if (!jscan_skip(&js, NULL))
                return false;
            continue;
        }
        if (jscan_peek(&js) != JSON_STRING || !jscan_string(&js, &raw))
            return false;
        if (jstr_is_plain(raw)) {
            *value = raw;
            return true;
        }
        n = jstr_decode(raw, buf, cap);
        if (n == SIZE_MAX)
            return false;
        *value = (struct str){buf, n};
        return true;
    }
    return false;
}
