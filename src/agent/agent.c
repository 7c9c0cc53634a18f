/* agent.c -- what the node agent publishes, as pure functions (see agent.h). */
#include "gx/agent.h"

#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/compiler.h"

/* The annotations and labels are a few KiB at most (a 16-GPU topology is under 4 KiB); a pod
 * list of a node is bounded by the pods one kubelet runs. */
#define AGENT_VALUE_CAP (256u << 10)

static const char *const key_names[AGENT_KEY_COUNT] = {
    [AGENT_KEY_TOPOLOGY] = "gpu-extender.io/topology",
    [AGENT_KEY_IN_USE] = "gpu-extender.io/gpus-in-use",
    [AGENT_KEY_GPU_PODS] = AGENT_ANN_GPU_PODS,
    [AGENT_KEY_AGENT] = AGENT_ANN_AGENT,
    [AGENT_KEY_CHANGED_AT] = AGENT_ANN_CHANGED_AT,
    [AGENT_KEY_LABEL_PRODUCT] = "nvidia.com/gpu.product",
    [AGENT_KEY_LABEL_MEMORY] = "nvidia.com/gpu.memory",
    [AGENT_KEY_LABEL_FAMILY] = "nvidia.com/gpu.family",
    [AGENT_KEY_LABEL_COUNT] = "nvidia.com/gpu.count",
    [AGENT_KEY_LABEL_COMPUTE_MAJOR] = "nvidia.com/gpu.compute.major",
    [AGENT_KEY_LABEL_COMPUTE_MINOR] = "nvidia.com/gpu.compute.minor",
};

const char *agent_key_name(enum agent_key k)
{
    return (unsigned)k < AGENT_KEY_COUNT ? key_names[k] : "?";
}

bool agent_key_is_label(enum agent_key k)
{
    return k >= AGENT_KEY_LABEL_PRODUCT && k < AGENT_KEY_COUNT;
}

void agent_state_clear(struct agent_state *s)
{
    for (unsigned k = 0; k < AGENT_KEY_COUNT; k++) {
        free(s->v[k]);
        s->v[k] = NULL;
    }
}

void agent_state_copy(struct agent_state *dst, const struct agent_state *src)
{
    if (dst == src)
        return;
    agent_state_clear(dst);
    for (unsigned k = 0; k < AGENT_KEY_COUNT; k++)
        dst->v[k] = src->v[k] ? xstrdup(src->v[k]) : NULL;
}

static bool value_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool agent_state_same(const struct agent_state *a, const struct agent_state *b)
{
    for (unsigned k = 0; k < AGENT_KEY_COUNT; k++) {
        if (k != AGENT_KEY_CHANGED_AT && !value_same(a->v[k], b->v[k]))
            return false;
    }
    return true;
}

/* ---- GPUs in use ---- */

struct pod_use {
    const char *ns, *pod;
    uint32_t mask;
};

static int pod_use_cmp(const void *a, const void *b)
{
    const struct pod_use *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);

    return c ? c : strcmp(x->pod, y->pod);
}

/* The GPU index whose UUID the device id names: "GPU-x" or, under time-slicing, "GPU-x::n". */
static int gpu_of_id(const struct gpu_facts *f, const char *id)
{
    const char *sep = strstr(id, "::");
    size_t n = sep ? (size_t)(sep - id) : strlen(id);

    for (unsigned i = 0; i < f->n; i++) {
        if (n > 0 && strlen(f->gpu[i].uuid) == n && memcmp(f->gpu[i].uuid, id, n) == 0)
            return (int)i;
    }
    return -1;
}

enum err agent_usage_from(const struct gpu_facts *f, const struct podres_list *list,
                          struct agent_usage *out)
{
    struct pod_use *pods = NULL;
    size_t npods = 0;
    enum err e = ERR_OK;

    memset(out, 0, sizeof(*out));
    buf_init(&out->pods_json, AGENT_VALUE_CAP);
    if (!list)
        return ERR_OK;
    out->known = true;
    if (list->n)
        pods = xcalloc(list->n, sizeof(*pods));
    for (size_t i = 0; i < list->n; i++) {
        const struct podres_device *d = &list->v[i];
        struct pod_use *p = NULL;
        int gpu;

        if (strcmp(d->resource, AGENT_GPU_RESOURCE) != 0)
            continue;
        gpu = gpu_of_id(f, d->id);
        if (gpu < 0) {
            out->unknown_ids++;
            continue;
        }
        out->mask |= 1u << gpu;
        for (size_t j = 0; j < npods && !p; j++) {
            if (strcmp(pods[j].ns, d->ns) == 0 && strcmp(pods[j].pod, d->pod) == 0)
                p = &pods[j];
        }
        if (!p) {
            p = &pods[npods++];
            p->ns = d->ns;
            p->pod = d->pod;
        }
        p->mask |= 1u << gpu;
    }
    if (npods)
        qsort(pods, npods, sizeof(*pods), pod_use_cmp);
    e = buf_append_str(&out->pods_json, "{");
    for (size_t j = 0; j < npods && e == ERR_OK; j++) {
        char key[512], mask[TOPO_MASK_STR_MAX];

        snprintf(key, sizeof(key), "%s/%s", pods[j].ns, pods[j].pod);
        topo_mask_format(pods[j].mask, mask, sizeof(mask));
        e = buf_append_str(&out->pods_json, j ? "," : "");
        if (e == ERR_OK)
            e = buf_append_json_str(&out->pods_json, key, strlen(key));
        if (e == ERR_OK)
            e = buf_printf(&out->pods_json, ":\"%s\"", mask);
    }
    if (e == ERR_OK)
        e = buf_append_str(&out->pods_json, "}");
    free(pods);
    return e;
}

void agent_usage_destroy(struct agent_usage *u)
{
    buf_destroy(&u->pods_json);
    memset(u, 0, sizeof(*u));
}

/* ---- the state to publish ---- */

static char *take_or_empty(struct buf *b)
{
    size_t len;
    char *s = buf_take(b, &len);

    return s ? s : xstrdup("");
}

/* GFD's labels, those gpu_facts_gfd() gives a value. */
static enum err put_labels(const struct gpu_facts *f, struct agent_state *out)
{
    struct gpu_gfd_labels l;
    const struct {
        enum agent_key key;
        const char *value;
    } labels[] = {{AGENT_KEY_LABEL_PRODUCT, l.product},
                  {AGENT_KEY_LABEL_MEMORY, l.memory},
                  {AGENT_KEY_LABEL_FAMILY, l.family},
                  {AGENT_KEY_LABEL_COUNT, l.count},
                  {AGENT_KEY_LABEL_COMPUTE_MAJOR, l.compute_major},
                  {AGENT_KEY_LABEL_COMPUTE_MINOR, l.compute_minor}};
    enum err e = gpu_facts_gfd(f, &l);

    for (size_t i = 0; i < GX_ARRAY_LEN(labels) && e == ERR_OK; i++) {
        if (labels[i].value[0])
            out->v[labels[i].key] = xstrdup(labels[i].value);
    }
    return e;
}

enum err agent_state_build(const struct gpu_facts *f, const struct agent_usage *u,
                           const struct agent_meta *m, struct agent_state *out)
{
    struct buf b;
    enum err e;

    memset(out, 0, sizeof(*out));
    buf_init(&b, AGENT_VALUE_CAP);
    e = gpu_facts_topology(f, &b);
    if (e != ERR_OK)
        goto fail;
    out->v[AGENT_KEY_TOPOLOGY] = take_or_empty(&b);
    if (u->known) {
        char mask[TOPO_MASK_STR_MAX];

        topo_mask_format(u->mask, mask, sizeof(mask));
        out->v[AGENT_KEY_IN_USE] = xstrdup(mask);
        out->v[AGENT_KEY_GPU_PODS] = xstrndup(u->pods_json.ptr ? u->pods_json.ptr : "{}",
                                              u->pods_json.ptr ? u->pods_json.len : 2);
    }
    e = buf_printf(&b,
                   "{\"version\":\"%s\",\"source\":\"nvml+podresources\",\"podResources\":\"%s\","
                   "\"health\":\"%s\",%s\"driver\":",
                   m->version, u->known ? "ok" : "unavailable",
                   m->health_events ? "events" : "assumed",
                   m->gfd_labels ? "\"gfdLabels\":true," : "");
    if (e == ERR_OK)
        e = buf_append_json_str(&b, f->driver_version, strlen(f->driver_version));
    if (e == ERR_OK)
        e = buf_append_str(&b, "}");
    if (e != ERR_OK)
        goto fail;
    out->v[AGENT_KEY_AGENT] = take_or_empty(&b);
    if (m->gfd_labels) {
        e = put_labels(f, out);
        if (e != ERR_OK)
            goto fail;
    }
    buf_destroy(&b);
    return ERR_OK;
fail:
    buf_destroy(&b);
    agent_state_clear(out);
    return e;
}

/* ---- the patch ---- */

static enum err members(struct buf *out, const struct agent_state *want,
                        const struct agent_state *have, bool labels, bool *any)
{
    enum err e = ERR_OK;
    bool first = true;

    for (unsigned k = 0; k < AGENT_KEY_COUNT && e == ERR_OK; k++) {
        const char *w = want->v[k], *h = have ? have->v[k] : NULL;

        if (agent_key_is_label(k) != labels || (have && value_same(w, h)) || (!have && !w))
            continue;
        /* A label the agent never wrote is not the agent's to delete. */
        if (labels && !w)
            continue;
        e = buf_append_str(out, first ? "" : ",");
        if (e == ERR_OK)
            e = buf_append_json_str(out, key_names[k], strlen(key_names[k]));
        if (e == ERR_OK)
            e = buf_append_str(out, ":");
        if (e == ERR_OK)
            e = w ? buf_append_json_str(out, w, strlen(w)) : buf_append_str(out, "null");
        first = false;
    }
    *any = !first;
    return e;
}

enum err agent_patch(const struct agent_state *want, const struct agent_state *have,
                     struct buf *out)
{
    struct buf ann, lab;
    bool any_ann = false, any_lab = false;
    enum err e;

    out->len = 0;
    if (out->ptr)
        out->ptr[0] = '\0';
    buf_init(&ann, (size_t)AGENT_VALUE_CAP * 4);
    buf_init(&lab, AGENT_VALUE_CAP);
    e = members(&ann, want, have, false, &any_ann);
    if (e == ERR_OK)
        e = members(&lab, want, have, true, &any_lab);
    if (e == ERR_OK && (any_ann || any_lab)) {
        e = buf_append_str(out, "{\"metadata\":{");
        if (e == ERR_OK && any_ann)
            e = buf_printf(out, "\"annotations\":{%s}", ann.ptr);
        if (e == ERR_OK && any_lab)
            e = buf_printf(out, "%s\"labels\":{%s}", any_ann ? "," : "", lab.ptr);
        if (e == ERR_OK)
            e = buf_append_str(out, "}}");
    }
    buf_destroy(&ann);
    buf_destroy(&lab);
    return e;
}

enum err agent_state_json(const struct agent_state *s, struct buf *out)
{
    struct buf lab;
    bool any_ann = false, any_lab = false;
    enum err e;

    buf_init(&lab, AGENT_VALUE_CAP);
    e = buf_append_str(out, "{");
    if (e == ERR_OK)
        e = members(out, s, NULL, false, &any_ann);
    if (e == ERR_OK)
        e = members(&lab, s, NULL, true, &any_lab);
    if (e == ERR_OK && any_lab)
        e = buf_printf(out, "%s\"labels\":{%s}", any_ann ? "," : "", lab.ptr);
    if (e == ERR_OK)
        e = buf_append_str(out, "}");
    buf_destroy(&lab);
    return e;
}
