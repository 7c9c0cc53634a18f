/* snapshot.c -- a live cluster as the simulator's input (see sim.h): `gpu-extender snapshot`
 * writes the nodes and GPU pods the cache holds as one JSON document, and the simulator reads
 * it back as a cluster (the nodes, their models and topologies) and a workload (the pending
 * pods, arriving at once, beside the bound pods, which stay where they are).
 *
 *   {"apiVersion":"gpu-extender.io/v1alpha1","kind":"GPUClusterSnapshot",
 *    "nodes":[{"name":"g-1","product":"NVIDIA-A100-SXM4-80GB","gpus":8,"topology":"{...}"}],
 *    "pods":[{"namespace":"ml","name":"train-1","gpus":2,"node":"g-1","gpuIndices":"0,1"},
 *            {"namespace":"ml","name":"train-2","gpus":4,"models":"A100"}]} */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/arena.h"
#include "gx/jscan.h"
#include "gx/sim.h"

/* A snapshot file larger than this is refused (150,000 pods take about 20 MB). */
#define SNAPSHOT_MAX_BYTES (512u << 20)

/* ---- writing ---- */

static enum err put_str(struct buf *b, const char *key, struct str v, bool comma)
{
    enum err e = buf_printf(b, "%s\"%s\":", comma ? "," : "", key);

    return e == ERR_OK ? buf_append_json_str(b, v.ptr, v.len) : e;
}

struct pod_writer {
    struct buf *b;
    bool first;
    enum err e;
};

static void write_pod(void *ctx, const struct cache_pod_facts *p)
{
    struct pod_writer *w = ctx;
    char idx[TOPO_MASK_STR_MAX];
    enum err e = w->e;

    if (e != ERR_OK || p->deleting)
        return; /* a pod being deleted is leaving: not part of the state to replay */
    if (e == ERR_OK)
        e = buf_append_str(w->b, w->first ? "{" : ",{");
    if (e == ERR_OK)
        e = put_str(w->b, "namespace", p->ns, false);
    if (e == ERR_OK)
        e = put_str(w->b, "name", p->name, true);
    if (e == ERR_OK)
        e = buf_printf(w->b, ",\"gpus\":%lld,\"priority\":%d", (long long)p->gpus,
                       (int)p->priority);
    if (e == ERR_OK && p->node.len)
        e = put_str(w->b, "node", p->node, true);
    if (e == ERR_OK && p->mask) {
        size_t n = topo_mask_format(p->mask, idx, sizeof(idx));
        e = put_str(w->b, "gpuIndices", (struct str){idx, n}, true);
    }
    if (e == ERR_OK && p->models.len)
        e = put_str(w->b, "models", p->models, true);
    if (e == ERR_OK)
        e = buf_append_str(w->b, "}");
    w->first = false;
    w->e = e;
}

enum err sim_snapshot_write(struct cache *c, struct buf *out)
{
    struct cache_snapshot *snap = cache_snapshot_acquire(c);
    struct pod_writer pw = {.b = out, .first = true};
    struct buf topo;
    enum err e = buf_append_str(
        out, "{\"apiVersion\":\"gpu-extender.io/v1alpha1\",\"kind\":\"GPUClusterSnapshot\","
             "\"nodes\":[");

    buf_init(&topo, 1u << 20);
    for (size_t i = 0; i < snap->node_count && e == ERR_OK; i++) {
        const struct cache_node *n = cache_snapshot_node(snap, i);
        if (n->info.gpu_allocatable <= 0)
            continue;
        e = buf_append_str(out, pw.first ? "{" : ",{");
        pw.first = false;
        if (e == ERR_OK)
            e = put_str(out, "name", n->info.name, false);
        if (e == ERR_OK)
            e = put_str(out, "product", n->info.product, true);
        if (e == ERR_OK && n->info.family.len)
            e = put_str(out, "family", n->info.family, true);
        if (e == ERR_OK)
            e = buf_printf(out, ",\"gpus\":%lld", (long long)n->info.gpu_allocatable);
        if (e == ERR_OK && n->topo) {
            topo.len = 0; /* reused: the text of one topology at a time */
            e = topo_format(n->topo, &topo);
            if (e == ERR_OK)
                e = put_str(out, "topology", (struct str){topo.ptr, topo.len}, true);
        }
        if (e == ERR_OK)
            e = buf_append_str(out, "}");
    }
    buf_destroy(&topo);
    cache_snapshot_release(snap);
    if (e == ERR_OK)
        e = buf_append_str(out, "],\"pods\":[");
    pw.first = true;
    pw.e = e;
    if (e == ERR_OK)
        cache_each_gpu_pod(c, write_pod, &pw);
    e = pw.e;
    return e == ERR_OK ? buf_append_str(out, "]}\n") : e;
}

/* ---- reading ---- */

struct item {
    struct arena *arena;
    struct str name, product, topology, ns, node, models, indices;
    int64_t gpus;
};

static bool read_int(struct jscan *js, int64_t max, int64_t *out)
{
    struct str span;

    if (jscan_peek(js) != JSON_NUMBER || !jscan_skip(js, &span))
        return jscan_fail(js, "expected a whole number");
    if (str_to_i64(span, 0, max, out) != ERR_OK)
        return jscan_fail(js, "a number out of range");
    return true;
}

static bool read_text(struct jscan *js, struct arena *a, struct str *out)
{
    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    return jscan_string_decoded(js, a, out);
}

static const char *const item_keys[] = {"name",      "product", "gpus",   "topology",
                                        "namespace", "node",    "models", "gpuIndices"};

static bool item_member(struct jscan *js, int key, void *ctx)
{
    struct item *it = ctx;
    struct str *slots[] = {&it->name, &it->product, NULL,        &it->topology,
                           &it->ns,   &it->node,    &it->models, &it->indices};

    if (key < 0)
        return jscan_skip(js, NULL);
    if (key == 2)
        return read_int(js, 4096, &it->gpus);
    return read_text(js, it->arena, slots[key]);
}

static char *dup_str(struct str s)
{
    return xstrndup(s.ptr ? s.ptr : "", s.len);
}

static bool add_node(struct item *it, struct sim_cluster *c, size_t *cap, struct jscan *js)
{
    struct sim_node *n;
    struct errbuf eb = ERRBUF_INIT;

    if (it->name.len == 0 || it->gpus <= 0)
        return jscan_fail(js, "a node needs a name and gpus > 0");
    if (c->node_count == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        c->nodes = xrealloc(c->nodes, *cap * sizeof(*c->nodes));
    }
    n = &c->nodes[c->node_count++];
    *n = (struct sim_node){
        .name = dup_str(it->name), .model = dup_str(it->product), .gpus = it->gpus};
    if (it->topology.len && topo_parse(it->topology.ptr, it->topology.len, &n->topo, &eb) != ERR_OK)
        n->topo = NULL; /* the cache held it, so this cannot fail; count-only if it does */
    return true;
}

static bool add_pod(struct item *it, struct sim_workload *w, size_t *cap, struct jscan *js)
{
    struct sim_pod *p;
    char name[600];
    uint32_t mask = 0;

    if (it->name.len == 0 || it->gpus <= 0)
        return jscan_fail(js, "a pod needs a name and gpus > 0");
    if (w->pod_count == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        w->pods = xrealloc(w->pods, *cap * sizeof(*w->pods));
    }
    snprintf(name, sizeof(name), "%.*s/%.*s", (int)it->ns.len, it->ns.ptr ? it->ns.ptr : "",
             (int)it->name.len, it->name.ptr);
    if (it->indices.len && !topo_mask_parse(it->indices, &mask))
        mask = 0;
    p = &w->pods[w->pod_count++];
    *p = (struct sim_pod){.name = xstrdup(name),
                          .models = dup_str(it->models),
                          .gpus = it->gpus,
                          .t_create = 0,
                          .duration = INFINITY,
                          .t_delete = -1,
                          .node = it->node.len ? dup_str(it->node) : NULL,
                          .mask = mask};
    return true;
}

struct doc {
    struct arena *arena;
    struct sim_cluster *c;
    struct sim_workload *w;
    size_t node_cap, pod_cap;
};

static bool read_list(struct jscan *js, struct doc *d, bool nodes)
{
    int r;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!jscan_enter_array(js))
        return false;
    while ((r = jscan_next_element(js)) == 1) {
        struct item it = {.arena = d->arena};
        if (jscan_peek(js) != JSON_OBJECT)
            return jscan_fail(js, nodes ? "a node is not an object" : "a pod is not an object");
        if (!jscan_walk_object(js, item_keys, GX_ARRAY_LEN(item_keys), JSCAN_WALK_ALL_KEYS,
                               item_member, &it))
            return false;
        if (!(nodes ? add_node(&it, d->c, &d->node_cap, js) : add_pod(&it, d->w, &d->pod_cap, js)))
            return false;
    }
    return r == 0;
}

static const char *const doc_keys[] = {"nodes", "pods"};

static bool doc_member(struct jscan *js, int key, void *ctx)
{
    if (key < 0)
        return jscan_skip(js, NULL);
    return read_list(js, ctx, key == 0);
}

static char *read_whole(const char *path, size_t *len, struct errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0;

    *len = 0;
    if (!f) {
        errbuf_set(eb, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t n;
        if (*len == cap) {
            if (cap >= SNAPSHOT_MAX_BYTES) {
                errbuf_set(eb, "%s: larger than %u MiB", path, SNAPSHOT_MAX_BYTES >> 20);
                free(data);
                fclose(f);
                return NULL;
            }
            cap = cap ? cap * 2 : 1u << 16;
            data = xrealloc(data, cap + 1);
        }
        n = fread(data + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    data[*len] = '\0';
    return data;
}

bool sim_is_snapshot(const char *path)
{
    FILE *f = fopen(path, "rb");
    int ch;

    if (!f)
        return false;
    do
        ch = fgetc(f);
    while (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n');
    fclose(f);
    return ch == '{';
}

enum err sim_load_snapshot(const char *path, struct sim_cluster *c, struct sim_workload *w,
                           struct errbuf *eb)
{
    struct arena arena;
    struct doc d = {.arena = &arena, .c = c, .w = w};
    struct jscan js;
    size_t len;
    char *data = read_whole(path, &len, eb);
    bool ok;

    memset(c, 0, sizeof(*c));
    memset(w, 0, sizeof(*w));
    if (!data)
        return ERR_IO;
    arena_init(&arena, len + (1u << 20));
    jscan_init(&js, data, len, 16);
    ok = jscan_peek(&js) == JSON_OBJECT &&
         jscan_walk_object(&js, doc_keys, GX_ARRAY_LEN(doc_keys), JSCAN_WALK_ALL_KEYS, doc_member,
                           &d) &&
         jscan_finish(&js);
    if (!ok) {
        size_t at = 0;
        const char *why = jscan_error(&js, &at);
        errbuf_set(eb, "%s: not a snapshot at byte %zu: %s", path, at,
                   why ? why : "expected a JSON object");
        sim_cluster_free(c);
        sim_workload_free(w);
    }
    w->has_times = true;
    arena_destroy(&arena);
    free(data);
    return ok ? ERR_OK : ERR_PARSE;
}
