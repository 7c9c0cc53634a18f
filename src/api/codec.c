/* codec.c -- extender request decoding and reply encoding (see codec.h). */
#include "gx/codec.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <strings.h>

#include "codec_internal.h"

#define ERROR_JSON_MAX 1024

enum err codec_scan_error(struct jscan *js, struct errbuf *eb)
{
    size_t pos;
    const char *msg = jscan_error(js, &pos);

    if (jscan_error_kind(js) == JSCAN_ERR_BUDGET) {
        errbuf_set(eb, "%s", msg);
        return ERR_TOO_LARGE;
    }
    errbuf_set(eb, "malformed request at byte %zu: %s", pos, msg ? msg : "invalid JSON");
    return ERR_PARSE;
}

void *codec_grow(struct arena *arena, void *items, size_t count, size_t *cap, size_t elem,
                 size_t first)
{
    void *bigger;

    if (count < *cap)
        return items;
    *cap = *cap ? *cap * 2 : first;
    bigger = arena_alloc(arena, *cap * elem);
    if (bigger && count)
        memcpy(bigger, items, count * elem);
    return bigger;
}

struct decode_ctx {
    struct arena *arena;
    struct ext_args *out;
};

static bool decode_items(struct jscan *js, struct arena *arena, struct ext_args *out)
{
    size_t cap = 0;
    int r;

    if (!jscan_enter_array(js))
        return false;
    while ((r = jscan_next_element(js)) == 1) {
        out->nodes = codec_grow(arena, out->nodes, out->node_count, &cap, sizeof(*out->nodes), 64);
        if (!out->nodes)
            return jscan_fail_budget(js);
        if (!obj_node_decode_facts(js, arena, &out->nodes[out->node_count]))
            return false;
        out->node_count++;
    }
    return r == 0;
}

static bool node_list_member(struct jscan *js, int key, void *ctx)
{
    struct decode_ctx *d = ctx;

    (void)key; /* only "items" is walked */
    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    return decode_items(js, d->arena, d->out);
}

/* Nodes: {"metadata":{},"items":[...]} as kube-scheduler builds it (no kind/apiVersion). */
static bool decode_node_list(struct jscan *js, struct decode_ctx *d)
{
    static const char *const names[] = {"items"};

    if (!jscan_walk_object(js, names, 1, 0, node_list_member, d))
        return false;
    d->out->full_nodes = true;
    return true;
}

/* Each name is decoded straight into its slot, which is made room for first: copying a name
 * that the scanner has just stored field by field, as one 16-byte load, waits for the stores
 * to reach the cache (a failed store-to-load forward, about a tenth of a 5,000-name call). */
static bool decode_names(struct jscan *js, struct arena *arena, struct ext_args *out)
{
    size_t cap = 0;
    bool all_plain = true, plain;
    int r;

    if (!jscan_enter_array(js))
        return false;
    for (;;) {
        if (out->name_count == cap) {
            out->names =
                codec_grow(arena, out->names, out->name_count, &cap, sizeof(*out->names), 256);
            if (!out->names)
                return jscan_fail_budget(js);
        }
        r = jscan_next_string(js, arena, &out->names[out->name_count], &plain);
        if (r != 1)
            break;
        out->name_count++;
        all_plain = all_plain && plain;
    }
    out->has_names = true;
    out->names_plain = all_plain;
    out->body_end = js->buf + js->len;
    return r == 0;
}

enum top_key { TOP_POD, TOP_NODES, TOP_NAMES };

static bool args_member(struct jscan *js, int key, void *ctx)
{
    struct decode_ctx *d = ctx;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    switch (key) {
    case TOP_POD:
        d->out->has_pod = true;
        return obj_pod_decode(js, d->arena, &d->out->pod);
    case TOP_NODES:
        if (jscan_peek(js) != JSON_OBJECT)
            return jscan_fail(js, "Nodes must be a NodeList object or null");
        return decode_node_list(js, d);
    default:
        if (jscan_peek(js) != JSON_ARRAY)
            return jscan_fail(js, "NodeNames must be an array of strings or null");
        return decode_names(js, d->arena, d->out);
    }
}

enum err codec_decode_args(struct arena *arena, const char *body, size_t len, struct ext_args *out,
                           struct errbuf *eb)
{
    static const char *const names[] = {
        [TOP_POD] = "Pod", [TOP_NODES] = "Nodes", [TOP_NAMES] = "NodeNames"};
    struct decode_ctx d = {.arena = arena, .out = out};
    struct jscan js;

    memset(out, 0, sizeof(*out));
    jscan_init(&js, body, len, CODEC_MAX_DEPTH);
    if (jscan_peek(&js) != JSON_OBJECT) {
        jscan_fail(&js, len ? "ExtenderArgs must be a JSON object" : "empty body");
        return codec_scan_error(&js, eb);
    }
    if (!jscan_walk_object(&js, names, GX_ARRAY_LEN(names), JSCAN_WALK_ICASE, args_member, &d) ||
        !jscan_finish(&js))
        return codec_scan_error(&js, eb);
    if (!out->has_pod) {
        errbuf_set(eb, "ExtenderArgs has no Pod");
        return ERR_INVALID;
    }
    if (out->full_nodes == out->has_names) {
        errbuf_set(eb, out->full_nodes ? "ExtenderArgs has both Nodes and NodeNames"
                                       : "ExtenderArgs has neither Nodes nor NodeNames");
        return ERR_INVALID;
    }
    return ERR_OK;
}

/* ---- bind args ---- */

/* Reads one string field, decoded; a NUL inside it is refused, because C strings would cut it
 * and the name used would not be the name sent. */
static bool bind_field(struct jscan *js, struct arena *arena, struct str *out)
{
    if (jscan_peek(js) != JSON_STRING)
        return jscan_fail(js, "ExtenderBindingArgs fields must be strings");
    if (!jscan_string_decoded(js, arena, out))
        return false;
    if (out->len && memchr(out->ptr, '\0', out->len))
        return jscan_fail(js, "NUL character in an ExtenderBindingArgs field");
    return true;
}

static const char *const bind_names[] = {"PodName", "PodNamespace", "PodUID", "Node"};

struct bind_decode {
    struct arena *arena;
    struct str *slots[4]; /* one per bind_names[] */
};

static bool bind_member(struct jscan *js, int key, void *ctx)
{
    struct bind_decode *d = ctx;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    return bind_field(js, d->arena, d->slots[key]);
}

enum err codec_decode_bind(struct arena *arena, const char *body, size_t len,
                           struct ext_bind_args *out, struct errbuf *eb)
{
    struct bind_decode d = {arena,
                            {&out->pod_name, &out->pod_namespace, &out->pod_uid, &out->node}};
    struct jscan js;

    memset(out, 0, sizeof(*out));
    jscan_init(&js, body, len, CODEC_MAX_DEPTH);
    if (jscan_peek(&js) != JSON_OBJECT) {
        jscan_fail(&js, len ? "ExtenderBindingArgs must be a JSON object" : "empty body");
        return codec_scan_error(&js, eb);
    }
    if (!jscan_walk_object(&js, bind_names, GX_ARRAY_LEN(bind_names), JSCAN_WALK_ICASE, bind_member,
                           &d) ||
        !jscan_finish(&js))
        return codec_scan_error(&js, eb);
    for (size_t i = 0; i < GX_ARRAY_LEN(bind_names); i++) {
        if (i != 2 && d.slots[i]->len == 0) {
            errbuf_set(eb, "ExtenderBindingArgs.%s is missing or empty", bind_names[i]);
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

/* ---- replies ---- */

/* Moves a built buffer into the arena as the next reply segment. */
static enum err push_segment(struct exchange *ex, struct exchange_iov *iov, size_t *n,
                             const void *data, size_t len, bool copy)
{
    void *p = (void *)(uintptr_t)data;

    if (copy) {
        p = arena_alloc(&ex->arena, len ? len : 1);
        if (!p)
            return ERR_TOO_LARGE;
        memcpy(p, data, len);
    }
    iov[*n].base = p;
    iov[*n].len = len;
    (*n)++;
    return ERR_OK;
}

/* Reasons repeat: thousands of nodes share a handful of texts. Each distinct one is formatted
 * and escaped once per reply, keyed by the reason and (for reasons that name it) the model. */
#define REASON_MEMO 16

struct reason_memo {
    size_t n;
    struct {
        enum sched_reason reason;
        struct str model;
        struct buf json; /* the escaped, quoted text */
    } e[REASON_MEMO];
};

static void reason_memo_destroy(struct reason_memo *m)
{
    for (size_t i = 0; i < m->n; i++)
        buf_destroy(&m->e[i].json);
}

/* The memo's quoted reason for node i, formatting it when it is new. ERR_NOT_FOUND: the memo
 * is full and the reason is not in it. */
static enum err reason_json(const struct codec_filter_result *res, size_t i, struct reason_memo *m,
                            struct str *json)
{
    const struct node_info *node = res->reason_nodes[i];
    enum sched_reason r = res->fits[i].reason;
    struct str model = sched_reason_names_model(r) && node ? node->model : STR_NULL;
    struct buf text, *out;
    enum err e;

    for (size_t j = 0; j < m->n; j++) {
        if (m->e[j].reason == r && str_eq(m->e[j].model, model)) {
            *json = (struct str){m->e[j].json.ptr, m->e[j].json.len};
            return ERR_OK;
        }
    }
    if (m->n == REASON_MEMO)
        return ERR_NOT_FOUND;
    buf_init(&text, 4096);
    out = &m->e[m->n].json;
    buf_init(out, 8192);
    e = sched_reason_format(res->fits[i], res->sp, node, &text);
    if (e == ERR_OK)
        e = buf_append_json_str(out, text.ptr, text.len);
    buf_destroy(&text);
    if (e != ERR_OK) {
        buf_destroy(out);
        return e;
    }
    m->e[m->n].reason = r;
    m->e[m->n].model = model;
    m->n++;
    *json = (struct str){out->ptr, out->len};
    return ERR_OK;
}

/* Appends the quoted reason for node i, from the memo when it has been seen. */
static enum err append_reason(struct buf *b, const struct codec_filter_result *res, size_t i,
                              struct reason_memo *m)
{
    const struct node_info *node = res->reason_nodes[i];
    enum sched_reason r = res->fits[i].reason;
    struct str model = sched_reason_names_model(r) && node ? node->model : STR_NULL;
    struct buf text;
    enum err e;

    for (size_t j = 0; j < m->n; j++) {
        if (m->e[j].reason == r && str_eq(m->e[j].model, model))
            return buf_append(b, m->e[j].json.ptr, m->e[j].json.len);
    }
    buf_init(&text, 4096);
    e = sched_reason_format(res->fits[i], res->sp, node, &text);
    if (e == ERR_OK && m->n < REASON_MEMO) {
        struct buf *json = &m->e[m->n].json;
        buf_init(json, 8192);
        e = buf_append_json_str(json, text.ptr, text.len);
        if (e == ERR_OK) {
            m->e[m->n].reason = r;
            m->e[m->n].model = model;
            m->n++;
            e = buf_append(b, json->ptr, json->len);
        } else {
            buf_destroy(json);
        }
    } else if (e == ERR_OK) {
        e = buf_append_json_str(b, text.ptr, text.len);
    }
    buf_destroy(&text);
    return e;
}

/* Every rejected node, with its reason. */
static enum err append_reason_map(struct buf *b, const struct codec_filter_result *res)
{
    const struct ext_args *a = res->args;
    size_t n = a->full_nodes ? a->node_count : a->name_count;
    struct reason_memo memo = {0};
    bool first = true;
    enum err e = buf_append(b, "{", 1);

    for (size_t i = 0; i < n && e == ERR_OK; i++) {
        struct str name = a->full_nodes ? a->nodes[i].name : a->names[i];
        if (res->fits[i].verdict == SCHED_PASS)
            continue;
        if (!first)
            e = buf_append(b, ",", 1);
        first = false;
        if (e == ERR_OK)
            e = buf_append_json_str(b, name.ptr, name.len);
        if (e == ERR_OK)
            e = buf_append(b, ":", 1);
        if (e == ERR_OK)
            e = append_reason(b, res, i, &memo);
    }
    reason_memo_destroy(&memo);
    return e == ERR_OK ? buf_append(b, "}", 1) : e;
}

/* Every rejection goes to FailedAndUnresolvableNodes, none to FailedNodes. kube-scheduler's
 * preemption dry run runs its in-tree filters only, and every node we see has passed them, so
 * on a node we put in FailedNodes it would find no victim: an error ("expected at least one
 * victim pod on node") that fails the pod's whole preemption when no other node has victims.
 * The nodes where evicting pods frees GPUs are the ones kube-scheduler itself rejects for
 * "Insufficient nvidia.com/gpu" (ignoredByScheduler: false); they reach preemption, and our
 * preempt verb, by that road. */
static enum err append_tail(struct buf *b, const struct codec_filter_result *res)
{
    enum err e = buf_append_str(b, ",\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":");

    if (e == ERR_OK)
        e = append_reason_map(b, res);
    if (e == ERR_OK)
        e = buf_append_str(b, ",\"Error\":\"\"}");
    return e;
}

static enum err append_names(struct buf *b, const struct codec_filter_result *res)
{
    const struct ext_args *a = res->args;
    bool first = true;
    enum err e = buf_append_str(b, "{\"Nodes\":null,\"NodeNames\":[");

    for (size_t i = 0; i < a->name_count && e == ERR_OK; i++) {
        if (res->fits[i].verdict != SCHED_PASS)
            continue;
        if (!first)
            e = buf_append(b, ",", 1);
        first = false;
        if (e == ERR_OK)
            e = buf_append_json_str(b, a->names[i].ptr, a->names[i].len);
    }
    return e == ERR_OK ? buf_append(b, "]", 1) : e;
}

/* ---- NodeNames replies without escaping ----
 *
 * When every name came plain (ext_args.names_plain), its JSON string is already in the body,
 * quotes included: the reply is sized first, then written with plain copies into the arena,
 * where the transport sends it from. Anything else takes the general encoder. */

static inline char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* The name's JSON string as it is in the body. */
static inline struct str quoted_name(struct str name)
{
    return (struct str){name.ptr - 1, name.len + 2};
}

/* Copies the quoted name q to p. Most node names fit 16 bytes with their quotes: one fixed
 * copy does those (the output has 16 bytes of slack, and the body holds 16 from q.ptr on),
 * instead of a call per name. */
static inline char *put_quoted(char *p, struct str q, const char *body_end)
{
    if (q.len <= 16 && body_end - q.ptr >= 16) {
        memcpy(p, q.ptr, 16);
        return p + q.len;
    }
    return put(p, q.ptr, q.len);
}

static enum err fast_filter_names(struct exchange *ex, const struct codec_filter_result *res)
{
    static const char head[] = "{\"Nodes\":null,\"NodeNames\":[";
    static const char mid[] = "],\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{";
    static const char tail[] = "},\"Error\":\"\"}";
    const struct ext_args *a = res->args;
    struct reason_memo memo = {0};
    struct str *reasons = arena_alloc(&ex->arena, (a->name_count + 1) * sizeof(*reasons));
    size_t size = sizeof(head) + sizeof(mid) + sizeof(tail) + 16; /* put_quoted()'s slack */
    enum err e = reasons ? ERR_OK : ERR_TOO_LARGE;
    char *out, *p;
    bool first;

    for (size_t i = 0; i < a->name_count && e == ERR_OK; i++) {
        size += a->names[i].len + 3; /* the quotes and a separator */
        if (res->fits[i].verdict != SCHED_PASS) {
            e = reason_json(res, i, &memo, &reasons[i]);
            size += reasons[i].len + 1;
        }
    }
    out = e == ERR_OK ? arena_alloc(&ex->arena, size) : NULL;
    if (e == ERR_OK && !out)
        e = ERR_TOO_LARGE;
    if (e != ERR_OK) {
        reason_memo_destroy(&memo);
        return e;
    }
    p = PUT_LIT(out, head);
    first = true;
    for (size_t i = 0; i < a->name_count; i++) {
        struct str q = quoted_name(a->names[i]);
        if (res->fits[i].verdict != SCHED_PASS)
            continue;
        if (!first)
            *p++ = ',';
        first = false;
        p = put_quoted(p, q, a->body_end);
    }
    p = PUT_LIT(p, mid);
    first = true;
    for (size_t i = 0; i < a->name_count; i++) {
        struct str q = quoted_name(a->names[i]);
        if (res->fits[i].verdict == SCHED_PASS)
            continue;
        if (!first)
            *p++ = ',';
        first = false;
        p = put_quoted(p, q, a->body_end);
        *p++ = ':';
        p = put(p, reasons[i].ptr, reasons[i].len);
    }
    p = PUT_LIT(p, tail);
    reason_memo_destroy(&memo);
    exchange_reply(ex, 200, "application/json", out, (size_t)(p - out));
    return ERR_OK;
}

/* Full-Nodes mode: head, then runs of consecutive passing nodes as single segments pointing
 * into the request (the separators between them come along), then the tail. */
static enum err reply_full(struct exchange *ex, const struct codec_filter_result *res,
                           struct buf *tail)
{
    static const char head[] = "{\"Nodes\":{\"metadata\":{},\"items\":[";
    static const char close_items[] = "]},\"NodeNames\":null";
    const struct ext_args *a = res->args;
    size_t n = 0, max_iov = 2 * a->node_count + 4;
    struct exchange_iov *iov = arena_alloc(&ex->arena, max_iov * sizeof(*iov));
    enum err e;
    bool any = false;

    if (!iov)
        return ERR_TOO_LARGE;
    e = push_segment(ex, iov, &n, head, sizeof(head) - 1, false);
    for (size_t i = 0; i < a->node_count && e == ERR_OK;) {
        size_t j = i;
        if (res->fits[i].verdict != SCHED_PASS) {
            i++;
            continue;
        }
        while (j + 1 < a->node_count && res->fits[j + 1].verdict == SCHED_PASS)
            j++;
        if (any)
            e = push_segment(ex, iov, &n, ",", 1, false);
        any = true;
        if (e == ERR_OK)
            e = push_segment(
                ex, iov, &n, a->nodes[i].raw.ptr,
                (size_t)(a->nodes[j].raw.ptr + a->nodes[j].raw.len - a->nodes[i].raw.ptr), false);
        i = j + 1;
    }
    if (e == ERR_OK)
        e = push_segment(ex, iov, &n, close_items, sizeof(close_items) - 1, false);
    if (e == ERR_OK)
        e = push_segment(ex, iov, &n, tail->ptr, tail->len, true);
    if (e != ERR_OK)
        return e;
    ex->status = 200;
    ex->content_type = "application/json";
    ex->iov = iov;
    ex->iov_count = n;
    return ERR_OK;
}

/* {"Error":msg} (with every ExtenderFilterResult key before it when filter_keys), as Go
 * writes them; the message is cut at ERROR_JSON_MAX bytes. */
static enum err append_error_object(struct buf *b, bool filter_keys, const char *msg)
{
    static const char keys[] =
        "{\"Nodes\":null,\"NodeNames\":null,\"FailedNodes\":null,\"FailedAndUnresolvableNodes\":"
        "null,\"Error\":";
    enum err e =
        filter_keys ? buf_append(b, keys, sizeof(keys) - 1) : buf_append_str(b, "{\"Error\":");

    if (e == ERR_OK)
        e = buf_append_json_str(b, msg, strnlen(msg, ERROR_JSON_MAX));
    return e == ERR_OK ? buf_append(b, "}", 1) : e;
}

static enum err reply_error_object(struct exchange *ex, int status, bool filter_keys,
                                   const char *msg)
{
    struct buf b;
    enum err e;

    buf_init(&b, ERROR_JSON_MAX * 6 + 256);
    e = append_error_object(&b, filter_keys, msg);
    if (e == ERR_OK)
        e = exchange_reply_copy(ex, status, "application/json", b.ptr, b.len);
    buf_destroy(&b);
    return e;
}

enum err codec_reply_filter(struct exchange *ex, const struct codec_filter_result *res)
{
    struct buf b;
    enum err e;

    if (res->error)
        return reply_error_object(ex, 200, true, res->error);
    if (!res->args->full_nodes && res->args->names_plain) {
        e = fast_filter_names(ex, res);
        if (e != ERR_NOT_FOUND)
            return e;
    }
    buf_init(&b, ex->arena.cap_bytes);
    if (res->args->full_nodes) {
        e = append_tail(&b, res);
        if (e == ERR_OK)
            e = reply_full(ex, res, &b);
    } else {
        e = append_names(&b, res);
        if (e == ERR_OK)
            e = append_tail(&b, res);
        if (e == ERR_OK)
            e = exchange_reply_copy(ex, 200, "application/json", b.ptr, b.len);
    }
    buf_destroy(&b);
    return e;
}

/* ,"Score":N} without printf: prioritize writes one per node. */
static enum err append_score(struct buf *b, int score)
{
    char text[32] = ",\"Score\":";
    size_t len = 9;
    char digits[12];
    size_t nd = 0;
    unsigned v = score < 0 ? 0u - (unsigned)score : (unsigned)score;

    if (score < 0)
        text[len++] = '-';
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (nd)
        text[len++] = digits[--nd];
    text[len++] = '}';
    return buf_append(b, text, len);
}

/* ,"Score":N} for 0..10, the only scores prioritize gives, without division. */
static inline char *put_score(char *p, int score)
{
    p = PUT_LIT(p, ",\"Score\":");
    if (score >= 10)
        *p++ = (char)('0' + score / 10 % 10);
    *p++ = (char)('0' + score % 10);
    *p++ = '}';
    return p;
}

static enum err fast_prioritize(struct exchange *ex, const struct str *names, const int *scores,
                                size_t n, const char *body_end)
{
    static const char host[] = ",{\"Host\":";
    size_t size = 3 + 16; /* put_quoted()'s slack */
    char *out, *p;

    for (size_t i = 0; i < n; i++)
        size += names[i].len + 2 + sizeof(host) + 16;
    out = arena_alloc(&ex->arena, size);
    if (!out)
        return ERR_TOO_LARGE;
    p = out;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        struct str q = quoted_name(names[i]);
        p = i ? PUT_LIT(p, host) : PUT_LIT(p, "{\"Host\":");
        p = put_quoted(p, q, body_end);
        p = put_score(p, scores[i]);
    }
    *p++ = ']';
    exchange_reply(ex, 200, "application/json", out, (size_t)(p - out));
    return ERR_OK;
}

enum err codec_reply_prioritize(struct exchange *ex, const struct str *names, const int *scores,
                                size_t n, const char *plain_end)
{
    struct buf b;
    enum err e;
    bool small = true;

    for (size_t i = 0; i < n && small; i++)
        small = scores[i] >= 0 && scores[i] <= 99;
    if (plain_end && small)
        return fast_prioritize(ex, names, scores, n, plain_end);

    buf_init(&b, ex->arena.cap_bytes);
    e = buf_append(&b, "[", 1);
    for (size_t i = 0; i < n && e == ERR_OK; i++) {
        e = buf_append_str(&b, i ? ",{\"Host\":" : "{\"Host\":");
        if (e == ERR_OK)
            e = buf_append_json_str(&b, names[i].ptr, names[i].len);
        if (e == ERR_OK)
            e = append_score(&b, scores[i]);
    }
    if (e == ERR_OK)
        e = buf_append(&b, "]", 1);
    if (e == ERR_OK)
        e = exchange_reply_copy(ex, 200, "application/json", b.ptr, b.len);
    buf_destroy(&b);
    return e;
}

enum err codec_reply_bind(struct exchange *ex, const char *msg)
{
    return reply_error_object(ex, 200, false, msg);
}

int codec_status_of(enum err e)
{
    switch (e) {
    case ERR_PARSE:
    case ERR_INVALID:
        return 400;
    case ERR_NOT_FOUND:
        return 404;
    case ERR_TOO_LARGE:
        return 413;
    case ERR_UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

void codec_reply_error(struct exchange *ex, int status, const char *msg)
{
    static const char fallback[] = "{\"Error\":\"internal error\"}";

    /* A 200 error is a filter's: it keeps every ExtenderFilterResult key. */
    if (reply_error_object(ex, status, status == 200, msg) != ERR_OK)
        exchange_reply(ex, 500, "application/json", fallback, sizeof(fallback) - 1);
}

void codec_reply_err(struct exchange *ex, enum err e, const char *msg)
{
    codec_reply_error(ex, codec_status_of(e), msg && msg[0] ? msg : err_str(e));
}

void codec_reply_text(struct exchange *ex, int status, const char *content_type, const char *text)
{
    enum err e = exchange_reply_copy(ex, status, content_type, text, strlen(text));

    if (e != ERR_OK)
        codec_reply_err(ex, e, "cannot copy the reply into the request's memory budget");
}

void codec_reply_json(struct exchange *ex, int status, struct cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;

    cJSON_Delete(doc);
    if (text)
        codec_reply_text(ex, status, "application/json", text);
    else
        codec_reply_err(ex, ERR_NOMEM, NULL);
    cJSON_free(text);
}
