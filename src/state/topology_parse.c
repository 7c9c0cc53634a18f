/* topology_parse.c -- the two annotation parsers of topology.h: gpu-extender.io/topology (ours)
 * and hami.io/node-nvidia-score (HAMi's). Each walks the JSON once with jscan, fills a struct
 * desc and hands it to topo_build(); nothing else in the topology module reads JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gx/jscan.h"
#include "gx/topology.h"

#include "topology_internal.h"

#define JSON_DEPTH 32
#define NV_SCORE_PER_LINK 100
#define NV_MAX_LINKS 18

/* ---- parsing: shared helpers ---- */

struct parser {
    struct jscan js;
    struct errbuf *eb;
    const char *doc; /* "topology" or "hami score", for messages */
};

static bool fail(struct parser *p, const char *fmt, ...) GX_PRINTF(2, 3);

/* Records a semantic error (unless the JSON itself already failed, whose message is better)
 * and stops the scan. Returns false. */
static bool fail(struct parser *p, const char *fmt, ...)
{
    char msg[ERRBUF_LEN];
    va_list ap;

    if (jscan_failed(&p->js))
        return false;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    errbuf_set(p->eb, "%s: %s", p->doc, msg);
    return jscan_fail(&p->js, "invalid content");
}

/* Checks the next value's type. At the end of input or on a stray byte, lets the scanner
 * report that instead, since its message says more. */
static bool check_type(struct parser *p, enum jtype want, const char *ctx, const char *what)
{
    enum jtype got = jscan_peek(&p->js);

    if (got == want)
        return true;
    if (got == JSON_NONE && !jscan_failed(&p->js) && !jscan_skip(&p->js, NULL))
        return false;
    return fail(p, "%s: expected %s", ctx, what);
}

/* Reads an integer in [min, max]; ctx names the field in messages. */
static bool read_int(struct parser *p, const char *ctx, int64_t min, int64_t max, int64_t *out)
{
    struct str span;

    if (!check_type(p, JSON_NUMBER, ctx, "an integer") || !jscan_skip(&p->js, &span))
        return false;
    if (str_to_i64(span, min, max, out) != ERR_OK)
        return fail(p, "%s: expected an integer in %lld..%lld", ctx, (long long)min,
                    (long long)max);
    return true;
}

/* Reads a string of at most TOPO_UUID_MAX bytes without NULs into out. */
static bool read_uuid(struct parser *p, const char *ctx, char out[TOPO_UUID_MAX + 1])
{
    struct str raw;
    size_t len;

    if (!check_type(p, JSON_STRING, ctx, "a string") || !jscan_string(&p->js, &raw))
        return false;
    len = jstr_decode(raw, out, TOPO_UUID_MAX + 1);
    if (len == SIZE_MAX)
        return fail(p, "%s: longer than %d bytes", ctx, TOPO_UUID_MAX);
    if (memchr(out, '\0', len))
        return fail(p, "%s: contains a NUL", ctx);
    return true;
}

static struct topo *finish(struct desc *d)
{
    d->healthy &= (UINT32_C(1) << d->n) - 1;
    return topo_build(d);
}

/* Wraps a parser run: size cap, the JSON-level message, building on success. */
static enum err run_parser(const char *doc, bool (*parse)(struct parser *, struct desc *),
                           const char *text, size_t len, struct topo **out, struct errbuf *eb)
{
    struct parser p = {.eb = eb, .doc = doc};
    struct desc d;
    size_t pos;

    if (len > TOPO_MAX_TEXT_BYTES) {
        errbuf_set(eb, "%s: %zu bytes, more than %u", doc, len, TOPO_MAX_TEXT_BYTES);
        return ERR_TOO_LARGE;
    }
    if (!text || len == 0) {
        errbuf_set(eb, "%s: empty", doc);
        return ERR_PARSE;
    }
    topo_desc_init(&d);
    jscan_init(&p.js, text, len, JSON_DEPTH);
    if (!parse(&p, &d) || !jscan_finish(&p.js)) {
        const char *why = jscan_error(&p.js, &pos);
        errbuf_set(eb, "%s: %s at byte %zu", doc, why ? why : "malformed", pos);
        return ERR_PARSE;
    }
    *out = finish(&d);
    return ERR_OK;
}

/* ---- parsing: gpu-extender.io/topology ---- */

/* "NV1".."NV18", "PIX", "PXB", "PHB", "NODE", "SYS" (or legacy "SOC"), case-insensitive. */
static bool link_from_name(struct str raw, enum topo_class *cls, unsigned *score)
{
    static const struct {
        const char *name;
        enum topo_class cls;
        unsigned score;
    } pcie[] = {{"PIX", TOPO_PIX, 50},   {"PXB", TOPO_PXB, 40}, {"PHB", TOPO_PHB, 30},
                {"NODE", TOPO_NODE, 20}, {"SYS", TOPO_SYS, 10}, {"SOC", TOPO_SYS, 10}};
    char name[8];
    size_t len = jstr_decode(raw, name, sizeof(name));
    unsigned links = 0;

    if (len == SIZE_MAX || len < 3)
        return false;
    for (size_t i = 0; i < GX_ARRAY_LEN(pcie); i++) {
        if (str_ieq_cstr((struct str){name, len}, pcie[i].name)) {
            *cls = pcie[i].cls;
            *score = pcie[i].score;
            return true;
        }
    }
    if ((name[0] | 0x20) != 'n' || (name[1] | 0x20) != 'v' || len > 4 || name[2] == '0')
        return false;
    for (size_t i = 2; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        links = links * 10 + (unsigned)(name[i] - '0');
    }
    if (links < 1 || links > NV_MAX_LINKS)
        return false;
    *cls = TOPO_NVLINK;
    *score = NV_SCORE_PER_LINK * links;
    return true;
}

/* The keys of one element of gpus; the walk refuses any of them given twice. */
static const char *const gpu_keys[] = {"index", "uuid", "numa", "healthy"};

struct gpu_in {
    struct parser *p;
    unsigned pos; /* the element's place in gpus, for messages */
    int64_t index, numa;
    bool healthy;
    char uuid[TOPO_UUID_MAX + 1];
};

static bool parse_gpu_member(struct jscan *js, int key, void *arg)
{
    struct gpu_in *g = arg;
    struct parser *p = g->p;
    char ctx[48];

    snprintf(ctx, sizeof(ctx), "gpus[%u].%s", g->pos, gpu_keys[key]);
    switch (key) {
    case 0:
        return read_int(p, ctx, 0, TOPO_MAX_GPUS - 1, &g->index);
    case 1:
        return read_uuid(p, ctx, g->uuid);
    case 2:
        return read_int(p, ctx, -1, 65535, &g->numa);
    default:
        if (jscan_peek(js) != JSON_TRUE && jscan_peek(js) != JSON_FALSE)
            return fail(p, "%s: expected a boolean", ctx);
        return jscan_bool(js, &g->healthy);
    }
}

static bool parse_gpu(struct parser *p, unsigned pos, struct desc *d, uint32_t *seen)
{
    struct gpu_in g = {.p = p, .pos = pos, .index = -1, .numa = -1, .healthy = true};
    char ctx[32];
    unsigned i;

    snprintf(ctx, sizeof(ctx), "gpus[%u]", pos);
    if (!check_type(p, JSON_OBJECT, ctx, "an object") ||
        !jscan_walk_object(&p->js, gpu_keys, GX_ARRAY_LEN(gpu_keys), 0, parse_gpu_member, &g))
        return false;
    if (g.index < 0)
        return fail(p, "%s: missing index", ctx);
    i = (unsigned)g.index;
    if (*seen >> i & 1)
        return fail(p, "%s: index %u given twice", ctx, i);
    *seen |= UINT32_C(1) << i;
    d->numa[i] = (int)g.numa;
    memcpy(d->uuid[i], g.uuid, sizeof(g.uuid));
    if (g.healthy)
        d->healthy |= UINT32_C(1) << i;
    return true;
}

static bool parse_gpus(struct parser *p, struct desc *d)
{
    uint32_t seen = 0;
    unsigned count = 0;
    int r;

    if (!check_type(p, JSON_ARRAY, "gpus", "an array") || !jscan_enter_array(&p->js))
        return false;
    while ((r = jscan_next_element(&p->js)) == 1) {
        if (count == TOPO_MAX_GPUS)
            return fail(p, "gpus: more than %d", TOPO_MAX_GPUS);
        if (!parse_gpu(p, count++, d, &seen))
            return false;
    }
    if (r < 0)
        return false;
    if (count == 0)
        return fail(p, "gpus: empty");
    if (seen != (UINT32_C(1) << count) - 1)
        return fail(p, "gpus: indices must be 0..%u, got %u", count - 1,
                    31 - (unsigned)__builtin_clz(seen));
    d->n = count;
    return true;
}

struct link_in {
    uint8_t a, b;
    enum topo_class cls;
    unsigned score;
};

static bool parse_link(struct parser *p, unsigned pos, struct link_in *out)
{
    char ctx[32];
    int64_t a, b;
    struct str name;

    snprintf(ctx, sizeof(ctx), "links[%u]", pos);
    if (!check_type(p, JSON_ARRAY, ctx, "[a, b, \"TYPE\"]") || !jscan_enter_array(&p->js))
        return false;
    if (jscan_next_element(&p->js) != 1 || !read_int(p, ctx, 0, TOPO_MAX_GPUS - 1, &a) ||
        jscan_next_element(&p->js) != 1 || !read_int(p, ctx, 0, TOPO_MAX_GPUS - 1, &b) ||
        jscan_next_element(&p->js) != 1 || !check_type(p, JSON_STRING, ctx, "a link name") ||
        !jscan_string(&p->js, &name))
        return fail(p, "%s: expected [a, b, \"TYPE\"]", ctx);
    if (jscan_next_element(&p->js) != 0)
        return fail(p, "%s: expected [a, b, \"TYPE\"]", ctx);
    if (!link_from_name(name, &out->cls, &out->score))
        return fail(p, "%s: unknown link type \"%.*s\"", ctx, (int)(name.len < 16 ? name.len : 16),
                    name.ptr);
    if (a == b)
        return fail(p, "%s: GPU %lld linked to itself", ctx, (long long)a);
    out->a = (uint8_t)a;
    out->b = (uint8_t)b;
    return true;
}

static bool parse_links(struct parser *p, struct link_in *links, unsigned *count)
{
    int r;

    if (!check_type(p, JSON_ARRAY, "links", "an array") || !jscan_enter_array(&p->js))
        return false;
    while ((r = jscan_next_element(&p->js)) == 1) {
        if (*count == MAX_LINKS)
            return fail(p, "links: more than %d", MAX_LINKS);
        if (!parse_link(p, *count, &links[*count]))
            return false;
        (*count)++;
    }
    return r == 0;
}

/* Links may come before gpus in the object, so they are checked once both are known. */
static bool apply_links(struct parser *p, struct desc *d, const struct link_in *links,
                        unsigned count)
{
    uint32_t listed[TOPO_MAX_GPUS] = {0};

    for (unsigned i = 0; i < count; i++) {
        unsigned a = links[i].a, b = links[i].b;

        if (a >= d->n || b >= d->n)
            return fail(p, "links[%u]: GPU %u does not exist", i, a >= d->n ? a : b);
        if (listed[a] >> b & 1)
            return fail(p, "links[%u]: pair %u-%u listed twice", i, a, b);
        listed[a] |= UINT32_C(1) << b;
        listed[b] |= UINT32_C(1) << a;
        topo_desc_link(d, a, b, links[i].cls, links[i].score);
    }
    return true;
}

enum { NATIVE_GPUS, NATIVE_LINKS };

struct native_in {
    struct parser *p;
    struct desc *d;
    struct link_in links[MAX_LINKS];
    unsigned nlinks;
    bool have_gpus;
};

static bool parse_native_member(struct jscan *js, int key, void *arg)
{
    struct native_in *in = arg;

    (void)js; /* it is &in->p->js, which the parsers read through */
    if (key == NATIVE_GPUS) {
        in->have_gpus = true;
        return parse_gpus(in->p, in->d);
    }
    return parse_links(in->p, in->links, &in->nlinks);
}

static bool parse_native(struct parser *p, struct desc *d)
{
    static const char *const names[] = {[NATIVE_GPUS] = "gpus", [NATIVE_LINKS] = "links"};
    struct native_in in = {.p = p, .d = d};

    if (!check_type(p, JSON_OBJECT, "document", "an object") ||
        !jscan_walk_object(&p->js, names, GX_ARRAY_LEN(names), 0, parse_native_member, &in))
        return false;
    if (!in.have_gpus)
        return fail(p, "gpus: missing");
    return apply_links(p, d, in.links, in.nlinks);
}

enum err topo_parse(const char *text, size_t len, struct topo **out, struct errbuf *eb)
{
    return run_parser("topology", parse_native, text, len, out, eb);
}

/* ---- parsing: hami.io/node-nvidia-score ---- */

#define HAMI_NONE (-1)

struct hami {
    struct str scores[TOPO_MAX_GPUS]; /* each device's "score" object, validated; may be empty */
    int32_t dir[TOPO_MAX_GPUS][TOPO_MAX_GPUS]; /* score i gives j; HAMI_NONE when absent */
};

/* "score": an object, kept as a span for the second pass; null (a nil Go map) means none. */
static bool read_hami_score_span(struct parser *p, unsigned pos, struct hami *h)
{
    char ctx[32];

    snprintf(ctx, sizeof(ctx), "[%u].score", pos);
    if (jscan_peek(&p->js) == JSON_NULL)
        return jscan_skip(&p->js, NULL);
    return check_type(p, JSON_OBJECT, ctx, "an object") && jscan_skip(&p->js, &h->scores[pos]);
}

enum { HAMI_DEVICE_UUID, HAMI_DEVICE_SCORE };

struct hami_device_in {
    struct parser *p;
    unsigned pos;
    struct desc *d;
    struct hami *h;
};

static bool parse_hami_device_member(struct jscan *js, int key, void *arg)
{
    struct hami_device_in *in = arg;
    char ctx[32];

    (void)js; /* it is &in->p->js, which the readers read through */
    if (key == HAMI_DEVICE_SCORE)
        return read_hami_score_span(in->p, in->pos, in->h);
    snprintf(ctx, sizeof(ctx), "[%u].uuid", in->pos);
    return read_uuid(in->p, ctx, in->d->uuid[in->pos]);
}

static bool parse_hami_device(struct parser *p, unsigned pos, struct desc *d, struct hami *h)
{
    static const char *const names[] = {[HAMI_DEVICE_UUID] = "uuid", [HAMI_DEVICE_SCORE] = "score"};
    struct hami_device_in in = {.p = p, .pos = pos, .d = d, .h = h};
    char ctx[32];

    snprintf(ctx, sizeof(ctx), "[%u]", pos);
    if (!check_type(p, JSON_OBJECT, ctx, "an object") ||
        !jscan_walk_object(&p->js, names, GX_ARRAY_LEN(names), 0, parse_hami_device_member, &in))
        return false;
    if (!d->uuid[pos][0])
        return fail(p, "[%u]: missing or empty uuid", pos);
    for (unsigned j = 0; j < pos; j++) {
        if (strcmp(d->uuid[j], d->uuid[pos]) == 0)
            return fail(p, "[%u]: uuid %s repeats [%u]", pos, d->uuid[pos], j);
    }
    return true;
}

/* A score: any JSON integer, clamped to 0..TOPO_MAX_PAIR_SCORE however many digits it has. */
static bool read_score(struct parser *p, const char *ctx, int32_t *out)
{
    struct str span;
    bool neg;
    int64_t v;

    if (!check_type(p, JSON_NUMBER, ctx, "an integer") || !jscan_skip(&p->js, &span))
        return false;
    neg = span.ptr[0] == '-';
    for (size_t i = neg; i < span.len; i++) {
        if (span.ptr[i] < '0' || span.ptr[i] > '9')
            return fail(p, "%s: expected an integer", ctx);
    }
    if (neg)
        v = 0;
    else if (span.len > 4 || str_to_i64(span, 0, INT64_MAX, &v) != ERR_OK)
        v = TOPO_MAX_PAIR_SCORE;
    *out = (int32_t)(v > TOPO_MAX_PAIR_SCORE ? TOPO_MAX_PAIR_SCORE : v);
    return true;
}

struct hami_scores_in {
    struct parser *sub;
    unsigned i; /* whose scores these are */
    struct hami *h;
};

/* One member of device i's scores: key is the walk's index of another device's UUID, or -1
 * for i's own UUID or one that names no device, whose score is read and then ignored. */
static bool parse_hami_score_member(struct jscan *js, int key, void *arg)
{
    struct hami_scores_in *in = arg;
    unsigned i = in->i;
    char ctx[48];
    int32_t v = 0;

    (void)js; /* it is &in->sub->js, which read_score() reads through */
    snprintf(ctx, sizeof(ctx), "[%u].score", i);
    if (!read_score(in->sub, ctx, &v))
        return false;
    if (key >= 0)
        in->h->dir[i][(unsigned)key < i ? (unsigned)key : (unsigned)key + 1] = v;
    return true;
}

/* Second pass over device i's "score" object, now that every UUID is known. The walk matches
 * the UUIDs of the other devices, so one of them given twice fails it; i's own UUID and
 * unknown ones are read, ignored and may repeat. */
static bool parse_hami_scores(struct parser *p, const struct desc *d, unsigned i, struct hami *h)
{
    struct parser sub = {.eb = p->eb, .doc = p->doc};
    struct hami_scores_in in = {.sub = &sub, .i = i, .h = h};
    const char *others[TOPO_MAX_GPUS];
    size_t n = 0;

    for (unsigned j = 0; j < d->n; j++) {
        if (j != i)
            others[n++] = d->uuid[j];
    }
    jscan_init(&sub.js, h->scores[i].ptr, h->scores[i].len, JSON_DEPTH);
    if (jscan_walk_object(&sub.js, others, n, JSCAN_WALK_ALL_KEYS, parse_hami_score_member, &in))
        return true;
    /* The span was checked as JSON in the first pass: a bad score has said so through fail();
     * what is left is the walk's own message, a UUID given twice. */
    errbuf_set(p->eb, "%s: [%u].score: %s", p->doc, i, jscan_error(&sub.js, NULL));
    return false;
}

static enum topo_class class_from_score(unsigned score)
{
    static const unsigned lowest[TOPO_CLASS_COUNT] = {0, 20, 30, 40, 50, 100};
    int c = TOPO_CLASS_COUNT - 1;

    while (c > 0 && score < lowest[c])
        c--;
    return (enum topo_class)c;
}

static void hami_pairs(struct desc *d, const struct hami *h)
{
    for (unsigned a = 0; a < d->n; a++) {
        for (unsigned b = a + 1; b < d->n; b++) {
            int32_t x = h->dir[a][b], y = h->dir[b][a];
            int32_t s = x == HAMI_NONE ? y : y == HAMI_NONE ? x : x < y ? x : y;
            unsigned score = s == HAMI_NONE ? 10 : (unsigned)s;

            topo_desc_link(d, a, b, class_from_score(score), score);
        }
    }
}

static bool parse_hami(struct parser *p, struct desc *d)
{
    struct hami h;
    int r;

    memset(&h, 0, sizeof(h));
    for (unsigned a = 0; a < TOPO_MAX_GPUS; a++) {
        for (unsigned b = 0; b < TOPO_MAX_GPUS; b++)
            h.dir[a][b] = HAMI_NONE;
    }
    if (!check_type(p, JSON_ARRAY, "document", "an array") || !jscan_enter_array(&p->js))
        return false;
    while ((r = jscan_next_element(&p->js)) == 1) {
        if (d->n == TOPO_MAX_GPUS)
            return fail(p, "more than %d devices", TOPO_MAX_GPUS);
        if (!parse_hami_device(p, d->n, d, &h))
            return false;
        d->n++;
    }
    if (r < 0 || !jscan_finish(&p->js))
        return false;
    if (d->n == 0)
        return fail(p, "no devices");
    for (unsigned i = 0; i < d->n; i++) {
        if (h.scores[i].ptr && !parse_hami_scores(p, d, i, &h))
            return false;
    }
    hami_pairs(d, &h);
    d->healthy = UINT32_MAX;
    return true;
}

enum err topo_parse_hami(const char *text, size_t len, struct topo **out, struct errbuf *eb)
{
    return run_parser("hami score", parse_hami, text, len, out, eb);
}

/* ---- back to text ---- */

enum err topo_format(const struct topo *t, struct buf *out)
{
    unsigned n = topo_gpu_count(t);
    uint32_t healthy = topo_healthy_mask(t);
    bool first = true;
    enum err e = buf_append_str(out, "{\"gpus\":[");

    for (unsigned i = 0; i < n && e == ERR_OK; i++) {
        const char *uuid = topo_gpu_uuid(t, i);
        e = buf_printf(out, "%s{\"index\":%u,\"numa\":%d", i ? "," : "", i, topo_gpu_numa(t, i));
        if (e == ERR_OK && uuid[0]) {
            e = buf_append_str(out, ",\"uuid\":");
            if (e == ERR_OK)
                e = buf_append_json_str(out, uuid, strlen(uuid));
        }
        if (e == ERR_OK)
            e = buf_append_str(out, healthy & (UINT32_C(1) << i) ? "}" : ",\"healthy\":false}");
    }
    if (e == ERR_OK)
        e = buf_append_str(out, "],\"links\":[");
    for (unsigned a = 0; a < n && e == ERR_OK; a++) {
        for (unsigned b = a + 1; b < n && e == ERR_OK; b++) {
            enum topo_class c = topo_pair_class(t, a, b);
            unsigned links = topo_pair_score(t, a, b) / NV_SCORE_PER_LINK;
            if (c == TOPO_SYS)
                continue; /* the meaning of a pair left out */
            if (c == TOPO_NVLINK)
                e = buf_printf(out, "%s[%u,%u,\"NV%u\"]", first ? "" : ",", a, b,
                               links ? (links > NV_MAX_LINKS ? NV_MAX_LINKS : links) : 1);
            else
                e = buf_printf(out, "%s[%u,%u,\"%s\"]", first ? "" : ",", a, b, topo_class_name(c));
            first = false;
        }
    }
    return e == ERR_OK ? buf_append_str(out, "]}") : e;
}
