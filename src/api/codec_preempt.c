/* codec_preempt.c -- ExtenderPreemptionArgs in, ExtenderPreemptionResult out (see codec.h).
 *
 * The request carries the preemptor and one map of candidate nodes: NodeNameToVictims (full
 * Pods) or NodeNameToMetaVictims (UIDs). Both decode into the same node list; a victim's UID
 * is what identifies it in either mode, and in full mode its Pod's facts come along. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gx/codec.h"

#include "codec_internal.h"

/* Victim lists are short (kube-scheduler offers the fewest pods that make room), so they
 * start small; node lists start as codec.c's do. */
#define VICTIMS_FIRST_CAP 4
#define NODES_FIRST_CAP 64
/* How much of a node name an error message quotes. */
#define NAME_IN_MSG_MAX 64

struct preempt_decode {
    struct arena *arena;
    struct ext_preempt_args out;
    size_t node_cap;
    size_t *key_pos; /* byte offset of each node's key, to report a repeated one */
    size_t key_pos_cap;
    bool has_pod;
    bool has_full; /* NodeNameToVictims was a map */
    bool has_meta; /* NodeNameToMetaVictims was a map */
};

/* Fails with msg unless the next value has type want. At the end of the input (or on a byte
 * that starts no value) the scanner's own syntax error is reported instead, so a truncated
 * request reads as one. */
static bool expect(struct jscan *js, enum jtype want, const char *msg)
{
    enum jtype t = jscan_peek(js);

    if (t == want)
        return true;
    if (t == JSON_NONE && !jscan_failed(js))
        (void)jscan_skip(js, NULL);
    return jscan_fail(js, msg);
}

/* A JSON integer in [min, max]; null leaves *out as it was. */
static bool read_int(struct jscan *js, int64_t min, int64_t max, const char *msg, int64_t *out)
{
    struct str span;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!expect(js, JSON_NUMBER, msg) || !jscan_skip(js, &span))
        return false;
    if (str_to_i64(span, min, max, out) != ERR_OK)
        return jscan_fail(js, msg);
    return true;
}

/* ---- victims ---- */

static const char *const meta_pod_names[] = {"UID"};

struct meta_pod_ctx {
    struct arena *arena;
    struct ext_victim *victim;
};

static bool meta_pod_member(struct jscan *js, int key, void *ctx)
{
    struct meta_pod_ctx *m = ctx;

    (void)key; /* only "UID" is walked */
    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!expect(js, JSON_STRING, "MetaPod UID must be a string or null"))
        return false;
    return jscan_string_decoded(js, m->arena, &m->victim->uid);
}

/* A MetaPod: {"UID": "..."}. */
static bool decode_meta_pod(struct jscan *js, struct arena *arena, struct ext_victim *v)
{
    struct meta_pod_ctx m = {arena, v};

    if (!expect(js, JSON_OBJECT, "MetaPod must be an object"))
        return false;
    return jscan_walk_object(js, meta_pod_names, 1, JSCAN_WALK_ICASE, meta_pod_member, &m);
}

/* A full Pod: its facts go to the arena, and its metadata.uid names the victim. */
static bool decode_full_pod(struct jscan *js, struct arena *arena, struct ext_victim *v)
{
    struct pod_info *pod = arena_alloc(arena, sizeof(*pod));

    if (!pod)
        return jscan_fail_budget(js);
    if (!obj_pod_decode(js, arena, pod))
        return false;
    v->pod = pod;
    v->uid = pod->uid;
    return true;
}

static bool decode_pods(struct jscan *js, struct preempt_decode *d, struct ext_preempt_node *node,
                        bool meta)
{
    size_t cap = 0;
    int r;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!expect(js, JSON_ARRAY, "Pods must be an array or null") || !jscan_enter_array(js))
        return false;
    while ((r = jscan_next_element(js)) == 1) {
        struct ext_victim *v;
        node->victims = codec_grow(d->arena, node->victims, node->victim_count, &cap,
                                   sizeof(*node->victims), VICTIMS_FIRST_CAP);
        if (!node->victims)
            return jscan_fail_budget(js);
        v = &node->victims[node->victim_count];
        memset(v, 0, sizeof(*v));
        if (!(meta ? decode_meta_pod(js, d->arena, v) : decode_full_pod(js, d->arena, v)))
            return false;
        node->victim_count++;
    }
    return r == 0;
}

struct victims_ctx {
    struct preempt_decode *d;
    struct ext_preempt_node *node;
    bool meta;
};

enum victims_key { VK_PODS, VK_PDB };

static bool victims_member(struct jscan *js, int key, void *ctx)
{
    struct victims_ctx *v = ctx;

    if (key == VK_PODS)
        return decode_pods(js, v->d, v->node, v->meta);
    return read_int(js, 0, INT64_MAX, "NumPDBViolations must be an integer in 0..2^63-1",
                    &v->node->pdb_violations);
}

/* Victims or MetaVictims: {"Pods": [...], "NumPDBViolations": N}; null is no victims. */
static bool decode_victims(struct jscan *js, struct preempt_decode *d,
                           struct ext_preempt_node *node, bool meta)
{
    static const char *const names[] = {[VK_PODS] = "Pods", [VK_PDB] = "NumPDBViolations"};
    struct victims_ctx v = {d, node, meta};

    if (jscan_peek(js) != JSON_NULL &&
        !expect(js, JSON_OBJECT, "the victims of a node must be an object or null"))
        return false;
    return jscan_walk_object(js, names, GX_ARRAY_LEN(names), JSCAN_WALK_ICASE | JSCAN_WALK_OR_NULL,
                             victims_member, &v);
}

/* ---- the node maps ---- */

/* A map key, decoded: a view of the input when it has no escapes, else a copy in the arena
 * (never longer than the escaped form). */
static bool decode_key(struct jscan *js, struct arena *arena, struct str raw, struct str *out)
{
    char *text;
    size_t n;

    if (jstr_is_plain(raw)) {
        *out = raw;
        return true;
    }
    text = arena_alloc(arena, raw.len + 1);
    if (!text)
        return jscan_fail_budget(js);
    n = jstr_decode(raw, text, raw.len + 1);
    if (n == SIZE_MAX) /* cannot happen: decoding never lengthens */
        return jscan_fail(js, "node name does not decode");
    *out = (struct str){text, n};
    return true;
}

static struct ext_preempt_node *add_node(struct jscan *js, struct preempt_decode *d,
                                         struct str raw_key)
{
    struct ext_preempt_args *a = &d->out;
    size_t pos_cap = d->key_pos_cap;
    struct ext_preempt_node *node;

    a->nodes = codec_grow(d->arena, a->nodes, a->node_count, &d->node_cap, sizeof(*a->nodes),
                          NODES_FIRST_CAP);
    d->key_pos = a->nodes ? codec_grow(d->arena, d->key_pos, a->node_count, &pos_cap,
                                       sizeof(*d->key_pos), NODES_FIRST_CAP)
                          : NULL;
    d->key_pos_cap = pos_cap;
    if (!a->nodes || !d->key_pos) {
        jscan_fail_budget(js);
        return NULL;
    }
    node = &a->nodes[a->node_count];
    memset(node, 0, sizeof(*node));
    if (!decode_key(js, d->arena, raw_key, &node->name))
        return NULL;
    /* raw_key is a view of the input, just inside the key's opening quote. */
    d->key_pos[a->node_count] = (size_t)(raw_key.ptr - js->buf) - 1;
    a->node_count++;
    return node;
}

/* NodeNameToVictims or NodeNameToMetaVictims: {NAME: Victims, ...}. */
static bool decode_node_map(struct jscan *js, struct preempt_decode *d, bool meta)
{
    struct str key;
    int r;

    if (!expect(js, JSON_OBJECT,
                meta ? "NodeNameToMetaVictims must be an object or null"
                     : "NodeNameToVictims must be an object or null") ||
        !jscan_enter_object(js))
        return false;
    while ((r = jscan_next_member(js, &key)) == 1) {
        struct ext_preempt_node *node = add_node(js, d, key);
        if (!node || !decode_victims(js, d, node, meta))
            return false;
    }
    return r == 0;
}

enum preempt_key { PK_POD, PK_FULL, PK_META };

static bool args_member(struct jscan *js, int key, void *ctx)
{
    struct preempt_decode *d = ctx;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    switch (key) {
    case PK_POD:
        d->has_pod = true;
        return obj_pod_decode(js, d->arena, &d->out.pod);
    case PK_FULL:
        d->has_full = true;
        return decode_node_map(js, d, false);
    default:
        d->has_meta = true;
        return decode_node_map(js, d, true);
    }
}

/* ---- checks after the scan ---- */

static int cmp_node_name(const void *pa, const void *pb)
{
    const struct ext_preempt_node *a = *(const struct ext_preempt_node *const *)pa;
    const struct ext_preempt_node *b = *(const struct ext_preempt_node *const *)pb;
    size_t n = a->name.len < b->name.len ? a->name.len : b->name.len;
    int c = n ? memcmp(a->name.ptr, b->name.ptr, n) : 0;

    if (c != 0)
        return c;
    if (a->name.len != b->name.len)
        return a->name.len < b->name.len ? -1 : 1;
    return a < b ? -1 : a > b; /* equal names: request order, so the later one is second */
}

/* A node named twice would have kube-scheduler's decoder keep one entry silently; we refuse
 * instead, naming the second key's offset. Sorting keeps this O(n log n) for any request. */
static enum err check_distinct(const struct preempt_decode *d, struct errbuf *eb)
{
    const struct ext_preempt_args *a = &d->out;
    const struct ext_preempt_node **sorted;
    enum err e = ERR_OK;

    if (a->node_count < 2)
        return ERR_OK;
    sorted = arena_alloc(d->arena, a->node_count * sizeof(*sorted));
    if (!sorted) {
        errbuf_set(eb, "request too large for its memory budget");
        return ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < a->node_count; i++)
        sorted[i] = &a->nodes[i];
    qsort(sorted, a->node_count, sizeof(*sorted), cmp_node_name);
    for (size_t i = 1; i < a->node_count && e == ERR_OK; i++) {
        if (!str_eq(sorted[i - 1]->name, sorted[i]->name))
            continue;
        errbuf_set(eb, "malformed request at byte %zu: node name repeated in %s",
                   d->key_pos[sorted[i] - a->nodes],
                   a->meta ? "NodeNameToMetaVictims" : "NodeNameToVictims");
        e = ERR_PARSE;
    }
    return e;
}

/* Every victim must have a UID: it is all kube-scheduler looks victims up by. */
static enum err check_uids(const struct ext_preempt_args *a, struct errbuf *eb)
{
    for (size_t i = 0; i < a->node_count; i++) {
        const struct ext_preempt_node *n = &a->nodes[i];
        for (size_t j = 0; j < n->victim_count; j++) {
            if (n->victims[j].uid.len > 0)
                continue;
            errbuf_set(eb, "victim %zu on node \"%.*s\" has no UID", j,
                       (int)(n->name.len < NAME_IN_MSG_MAX ? n->name.len : NAME_IN_MSG_MAX),
                       n->name.ptr ? n->name.ptr : "");
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

static enum err check_request(struct preempt_decode *d, struct errbuf *eb)
{
    enum err e;

    if (!d->has_pod) {
        errbuf_set(eb, "ExtenderPreemptionArgs has no Pod");
        return ERR_INVALID;
    }
    if (d->has_full == d->has_meta) {
        errbuf_set(eb, d->has_full ? "ExtenderPreemptionArgs has both NodeNameToVictims and "
                                     "NodeNameToMetaVictims"
                                   : "ExtenderPreemptionArgs has neither NodeNameToVictims nor "
                                     "NodeNameToMetaVictims");
        return ERR_INVALID;
    }
    d->out.meta = d->has_meta;
    e = check_distinct(d, eb);
    return e == ERR_OK ? check_uids(&d->out, eb) : e;
}

enum err codec_decode_preempt(struct arena *arena, const char *body, size_t len,
                              struct ext_preempt_args *out, struct errbuf *eb)
{
    static const char *const names[] = {
        [PK_POD] = "Pod", [PK_FULL] = "NodeNameToVictims", [PK_META] = "NodeNameToMetaVictims"};
    struct preempt_decode d = {.arena = arena};
    struct jscan js;
    enum err e;

    jscan_init(&js, body, len, CODEC_MAX_DEPTH);
    if (jscan_peek(&js) != JSON_OBJECT) {
        jscan_fail(&js, len ? "ExtenderPreemptionArgs must be a JSON object" : "empty body");
        return codec_scan_error(&js, eb);
    }
    if (!jscan_walk_object(&js, names, GX_ARRAY_LEN(names), JSCAN_WALK_ICASE, args_member, &d) ||
        !jscan_finish(&js))
        return codec_scan_error(&js, eb);
    e = check_request(&d, eb);
    if (e == ERR_OK)
        *out = d.out;
    return e;
}

/* ---- the reply ---- */

/* NAME:{"Pods":[{"UID":U},...],"NumPDBViolations":N} */
static enum err append_node(struct buf *b, const struct ext_preempt_node *n)
{
    enum err e = buf_append_json_str(b, n->name.ptr, n->name.len);

    if (e == ERR_OK)
        e = buf_append_str(b, ":{\"Pods\":[");
    for (size_t i = 0; i < n->victim_count && e == ERR_OK; i++) {
        e = buf_append_str(b, i ? ",{\"UID\":" : "{\"UID\":");
        if (e == ERR_OK)
            e = buf_append_json_str(b, n->victims[i].uid.ptr, n->victims[i].uid.len);
        if (e == ERR_OK)
            e = buf_append(b, "}", 1);
    }
    if (e == ERR_OK)
        e = buf_printf(b, "],\"NumPDBViolations\":%" PRId64 "}", n->pdb_violations);
    return e;
}

enum err codec_reply_preempt(struct exchange *ex, const struct codec_preempt_result *res)
{
    struct buf b;
    enum err e;

    buf_init(&b, ex->arena.cap_bytes);
    e = buf_append_str(&b, "{\"NodeNameToMetaVictims\":{");
    for (size_t i = 0; i < res->node_count && e == ERR_OK; i++) {
        if (i)
            e = buf_append(&b, ",", 1);
        if (e == ERR_OK)
            e = append_node(&b, &res->nodes[i]);
    }
    if (e == ERR_OK)
        e = buf_append_str(&b, "}}");
    if (e == ERR_OK)
        e = exchange_reply_copy(ex, 200, "application/json", b.ptr, b.len);
    buf_destroy(&b);
    return e;
}
