/* test_codec_preempt.c -- the preempt verb's wire format: the captured ExtenderPreemptionArgs
 * of both nodeCacheCapable modes (pretty and raw bytes), replies that match the captured ones,
 * and hostile requests. */
#include "gx/codec.h"

#include "check.h"
#include "exchange_helpers.h"

#define BIG_ARENA (64u << 20)

static char *fixture(const char *name, size_t *len)
{
    char path[1024];
    const char *dir = getenv("GX_FIXTURES");

    CHECK(dir != NULL);
    snprintf(path, sizeof(path), "%s/extender/%s", dir, name);
    return check_read_file(path, len);
}

static enum err decode(struct arena *arena, const char *body, size_t len,
                       struct ext_preempt_args *out, struct errbuf *eb)
{
    return codec_decode_preempt(arena, body, len, out, eb);
}

/* What the captured requests hold: three candidate nodes with one victim each, no PDBs. */
struct expect_node {
    const char *name;
    const char *uid;
    const char *pod_name; /* full mode */
    int64_t gpus;         /* full mode */
};

static const struct expect_node full_nodes[] = {
    {"gpu-node-1", "6f2ba016-1efb-4ffd-a263-a549d591b9f0", "low-a", 8},
    {"gpu-node-2", "bf8f2573-1859-4f13-b943-3bfe8342ce2d", "low-b", 8},
    {"gpu-node-3", "39604342-ba43-4977-bf63-e26c9ad3df9f", "low-c", 4},
};

static const struct expect_node meta_nodes[] = {
    {"gpu-node-1", "8318e4ac-1c1f-46f8-a4bd-6a2138cecc53", NULL, 0},
    {"gpu-node-2", "8addcd21-1a30-4a62-836a-15691b65bae6", NULL, 0},
    {"gpu-node-3", "5cb0c899-8d4b-4ca5-acc3-d448cad469dc", NULL, 0},
};

static void check_preemptor(const struct pod_info *p, bool meta)
{
    CHECK_STRN_EQ(p->name.ptr, p->name.len, "high-1");
    CHECK_STRN_EQ(p->ns.ptr, p->ns.len, "default");
    CHECK_STRN_EQ(p->uid.ptr, p->uid.len,
                  meta ? "be398e58-5169-456f-a4fe-bbf6fce46fb8"
                       : "ade332b0-f7d2-481e-b2c0-2daf00101224");
    CHECK_STRN_EQ(p->priority_class.ptr, p->priority_class.len, "gpu-high");
    CHECK_EQ(p->priority, 1000000);
    CHECK(!p->preempt_never);
    CHECK_EQ(p->gpus, 4);
    CHECK_EQ(p->node_name.len, 0);
}

static void check_victims(const struct ext_preempt_args *a, bool meta)
{
    const struct expect_node *want = meta ? meta_nodes : full_nodes;

    CHECK_EQ(a->meta, meta);
    CHECK_EQ(a->node_count, 3);
    for (size_t i = 0; i < 3; i++) {
        const struct ext_preempt_node *n = &a->nodes[i];
        const struct ext_victim *v = &n->victims[0];
        CHECK_STRN_EQ(n->name.ptr, n->name.len, want[i].name);
        CHECK_EQ(n->pdb_violations, 0);
        CHECK_EQ(n->victim_count, 1);
        CHECK_STRN_EQ(v->uid.ptr, v->uid.len, want[i].uid);
        if (meta) {
            CHECK(v->pod == NULL);
            continue;
        }
        CHECK(v->pod != NULL);
        CHECK(v->pod->uid.ptr == v->uid.ptr);
        CHECK_STRN_EQ(v->pod->name.ptr, v->pod->name.len, want[i].pod_name);
        CHECK_STRN_EQ(v->pod->node_name.ptr, v->pod->node_name.len, want[i].name);
        CHECK_EQ(v->pod->gpus, want[i].gpus);
        CHECK_EQ(v->pod->priority, 0);
        CHECK(!v->pod->preempt_never);
        CHECK_EQ(v->pod->priority_class.len, 0);
    }
}

static void test_fixtures_decode(void)
{
    static const char *const prefixes[] = {"", "raw/"};
    char name[128];

    for (size_t p = 0; p < 2; p++) {
        for (int meta = 0; meta < 2; meta++) {
            struct arena arena;
            struct ext_preempt_args a;
            struct errbuf eb = ERRBUF_INIT;
            size_t len;
            char *body;
            snprintf(name, sizeof(name), "%spreempt.args.nodecache-%s.json", prefixes[p],
                     meta ? "true" : "false");
            body = fixture(name, &len);
            arena_init(&arena, BIG_ARENA);
            if (decode(&arena, body, len, &a, &eb) != ERR_OK) {
                fprintf(stderr, "%s: %s\n", name, eb.msg);
                abort();
            }
            check_preemptor(&a.pod, meta);
            check_victims(&a, meta);
            arena_destroy(&arena);
            free(body);
        }
    }
}

/* The other verbs' requests are not preempt requests. */
static void test_other_verbs_refused(void)
{
    static const char *const files[] = {"raw/filter.args.nodecache-true.json",
                                        "raw/filter.args.nodecache-false.json",
                                        "raw/bind.args.nodecache-true.json"};
    for (size_t i = 0; i < 3; i++) {
        struct arena arena;
        struct ext_preempt_args a;
        struct errbuf eb = ERRBUF_INIT;
        size_t len;
        char *body = fixture(files[i], &len);
        arena_init(&arena, BIG_ARENA);
        CHECK_EQ(decode(&arena, body, len, &a, &eb), ERR_INVALID);
        CHECK_STR_EQ(eb.msg, i < 2 ? "ExtenderPreemptionArgs has neither NodeNameToVictims nor "
                                     "NodeNameToMetaVictims"
                                   : "ExtenderPreemptionArgs has no Pod");
        arena_destroy(&arena);
        free(body);
    }
}

/* A reply has the shape of a meta-mode request without its Pod: giving it one lets the
 * request decoder read replies, ours and the captured ones alike. */
static enum err decode_reply(struct arena *arena, const char *reply, size_t len,
                             struct ext_preempt_args *out)
{
    static const char head[] = "{\"Pod\":{},";
    const char *brace = memchr(reply, '{', len);
    struct errbuf eb = ERRBUF_INIT;
    size_t rest;
    char *body;
    enum err e;

    CHECK(brace != NULL);
    rest = len - (size_t)(brace + 1 - reply);
    body = arena_alloc(arena, sizeof(head) - 1 + rest);
    CHECK(body != NULL);
    memcpy(body, head, sizeof(head) - 1);
    memcpy(body + sizeof(head) - 1, brace + 1, rest);
    e = decode(arena, body, sizeof(head) - 1 + rest, out, &eb);
    if (e != ERR_OK)
        fprintf(stderr, "reply: %s\n", eb.msg);
    return e;
}

static const struct ext_preempt_node *find_node(const struct ext_preempt_args *a, struct str name)
{
    for (size_t i = 0; i < a->node_count; i++) {
        if (str_eq(a->nodes[i].name, name))
            return &a->nodes[i];
    }
    return NULL;
}

static bool has_uid(const struct ext_preempt_node *n, struct str uid)
{
    for (size_t i = 0; i < n->victim_count; i++) {
        if (str_eq(n->victims[i].uid, uid))
            return true;
    }
    return false;
}

/* Semantic equality: the same nodes, each with the same UIDs and NumPDBViolations. */
static void check_same(const struct ext_preempt_args *x, const struct ext_preempt_args *y)
{
    CHECK_EQ(x->node_count, y->node_count);
    for (size_t i = 0; i < x->node_count; i++) {
        const struct ext_preempt_node *a = &x->nodes[i], *b = find_node(y, a->name);
        CHECK(b != NULL);
        CHECK_EQ(a->pdb_violations, b->pdb_violations);
        CHECK_EQ(a->victim_count, b->victim_count);
        for (size_t j = 0; j < a->victim_count; j++)
            CHECK(has_uid(b, a->victims[j].uid));
    }
}

/* Keeping every offered victim reproduces the reply the capture recorded, in both modes. */
static void test_round_trip(void)
{
    for (int meta = 0; meta < 2; meta++) {
        struct exchange ex;
        struct ext_preempt_args args, ours, captured;
        struct codec_preempt_result res;
        struct errbuf eb = ERRBUF_INIT;
        char name[128];
        size_t len, rlen, clen;
        char *body, *reply, *want;

        snprintf(name, sizeof(name), "raw/preempt.args.nodecache-%s.json", meta ? "true" : "false");
        body = fixture(name, &len);
        snprintf(name, sizeof(name), "preempt.reply.nodecache-%s.json", meta ? "true" : "false");
        want = fixture(name, &clen);
        memset(&ex, 0, sizeof(ex));
        arena_init(&ex.arena, BIG_ARENA);
        CHECK_EQ(decode(&ex.arena, body, len, &args, &eb), ERR_OK);
        res = (struct codec_preempt_result){args.nodes, args.node_count};
        CHECK_EQ(codec_reply_preempt(&ex, &res), ERR_OK);
        CHECK_EQ(ex.status, 200);
        CHECK_STR_EQ(ex.content_type, "application/json");
        reply = exchange_reply_join(&ex, &rlen);
        CHECK_EQ(decode_reply(&ex.arena, reply, rlen, &ours), ERR_OK);
        CHECK_EQ(decode_reply(&ex.arena, want, clen, &captured), ERR_OK);
        CHECK(ours.meta && captured.meta);
        check_same(&ours, &captured);
        check_same(&captured, &ours);
        check_same(&args, &ours);
        if (meta)
            CHECK_STR_EQ(reply, "{\"NodeNameToMetaVictims\":{"
                                "\"gpu-node-1\":{\"Pods\":[{\"UID\":\"8318e4ac-1c1f-46f8-a4bd-"
                                "6a2138cecc53\"}],\"NumPDBViolations\":0},"
                                "\"gpu-node-2\":{\"Pods\":[{\"UID\":\"8addcd21-1a30-4a62-836a-"
                                "15691b65bae6\"}],\"NumPDBViolations\":0},"
                                "\"gpu-node-3\":{\"Pods\":[{\"UID\":\"5cb0c899-8d4b-4ca5-acc3-"
                                "d448cad469dc\"}],\"NumPDBViolations\":0}}}");
        free(reply);
        free(want);
        free(body);
        arena_destroy(&ex.arena);
    }
}

static char *reply_of(const struct ext_preempt_node *nodes, size_t n)
{
    struct exchange ex;
    struct codec_preempt_result res = {nodes, n};
    char *text;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1 << 20);
    CHECK_EQ(codec_reply_preempt(&ex, &res), ERR_OK);
    text = exchange_reply_join(&ex, NULL);
    arena_destroy(&ex.arena);
    return text;
}

static void test_reply_shapes(void)
{
    struct ext_victim v[2] = {{STR_LIT("u\"1"), NULL}, {STR_LIT("u2"), NULL}};
    struct ext_preempt_node nodes[3] = {
        {STR_LIT("b"), v, 2, 3},
        {STR_LIT("a\n"), v + 1, 1, INT64_MAX},
        {STR_LIT("c"), NULL, 0, 0},
    };
    struct exchange ex;
    struct codec_preempt_result res = {nodes, 2};
    char *text;

    /* No node: kube-scheduler ends this pod's preemption. */
    text = reply_of(NULL, 0);
    CHECK_STR_EQ(text, "{\"NodeNameToMetaVictims\":{}}");
    free(text);
    /* The order given, escapes, the whole int64 range. */
    text = reply_of(nodes, 2);
    CHECK_STR_EQ(text, "{\"NodeNameToMetaVictims\":{\"b\":{\"Pods\":[{\"UID\":\"u\\\"1\"},{\"UID\":"
                       "\"u2\"}],\"NumPDBViolations\":3},\"a\\u000a\":{\"Pods\":[{\"UID\":\"u2\"}],"
                       "\"NumPDBViolations\":9223372036854775807}}}");
    free(text);
    /* A node without victims is written as given (kube-scheduler refuses it: callers drop
     * such nodes). */
    text = reply_of(nodes + 2, 1);
    CHECK_STR_EQ(text, "{\"NodeNameToMetaVictims\":{\"c\":{\"Pods\":[],\"NumPDBViolations\":0}}}");
    free(text);
    /* Past the arena's cap. */
    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 16);
    CHECK_EQ(codec_reply_preempt(&ex, &res), ERR_TOO_LARGE);
    arena_destroy(&ex.arena);
}

struct bad_case {
    const char *body;
    enum err want;
    const char *msg; /* NULL: not checked */
};

#define POD "\"Pod\":{}"
#define META(m) "{" POD ",\"NodeNameToMetaVictims\":" m "}"
#define FULL(m) "{" POD ",\"NodeNameToVictims\":" m "}"

static const struct bad_case bad_cases[] = {
    {"", ERR_PARSE, "malformed request at byte 0: empty body"},
    {"[]", ERR_PARSE, "malformed request at byte 0: ExtenderPreemptionArgs must be a JSON object"},
    {"{\"Pod\":{},\"NodeNameToMetaVictims\":{}} x", ERR_PARSE, NULL},
    {"{\"Pod\":{},\"NodeNameToMetaVictims\":{}", ERR_PARSE,
     "malformed request at byte 36: expected ',' or '}' in object"},
    {"{\"NodeNameToMetaVictims\":{}}", ERR_INVALID, "ExtenderPreemptionArgs has no Pod"},
    {"{\"Pod\":null,\"NodeNameToMetaVictims\":{}}", ERR_INVALID, NULL},
    {"{" POD "}", ERR_INVALID,
     "ExtenderPreemptionArgs has neither NodeNameToVictims nor NodeNameToMetaVictims"},
    {"{" POD ",\"NodeNameToVictims\":null,\"NodeNameToMetaVictims\":null}", ERR_INVALID, NULL},
    {"{" POD ",\"NodeNameToVictims\":{},\"NodeNameToMetaVictims\":{}}", ERR_INVALID,
     "ExtenderPreemptionArgs has both NodeNameToVictims and NodeNameToMetaVictims"},
    /* Repeated keys. */
    {"{\"Pod\":{},\"pod\":{},\"NodeNameToMetaVictims\":{}}", ERR_PARSE,
     "malformed request at byte 16: duplicate key in object"},
    {"{" POD ",\"NodeNameToMetaVictims\":{},\"nodenametometavictims\":{}}", ERR_PARSE, NULL},
    {META("{\"a\":{},\"b\":{},\"a\":{}}"), ERR_PARSE,
     "malformed request at byte 49: node name repeated in NodeNameToMetaVictims"},
    {FULL("{\"a\":null,\"\\u0061\":null}"), ERR_PARSE,
     "malformed request at byte 40: node name repeated in NodeNameToVictims"},
    {META("{\"n\":{\"Pods\":[],\"pods\":[]}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"NumPDBViolations\":0,\"NumPDBViolations\":0}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"Pods\":[{\"UID\":\"u\",\"uid\":\"v\"}]}}"), ERR_PARSE, NULL},
    /* Wrong types. */
    {META("[]"), ERR_PARSE,
     "malformed request at byte 34: NodeNameToMetaVictims must be an object or null"},
    {FULL("\"x\""), ERR_PARSE, NULL},
    {META("{\"n\":[]}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"Pods\":{}}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"Pods\":[\"u\"]}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"Pods\":[null]}}"), ERR_PARSE, NULL},
    {FULL("{\"n\":{\"Pods\":[null]}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"Pods\":[{\"UID\":1}]}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"NumPDBViolations\":\"1\"}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"NumPDBViolations\":1.5}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"NumPDBViolations\":1e2}}"), ERR_PARSE, NULL},
    {META("{\"n\":{\"NumPDBViolations\":-1}}"), ERR_PARSE,
     "malformed request at byte 61: NumPDBViolations must be an integer in 0..2^63-1"},
    {META("{\"n\":{\"NumPDBViolations\":9223372036854775808}}"), ERR_PARSE, NULL},
    {FULL("{\"n\":{\"Pods\":[{\"metadata\":{\"uid\":\"u\"},\"spec\":{\"priority\":\"1\"}}]}}"),
     ERR_PARSE, NULL},
    {"{\"Pod\":[],\"NodeNameToMetaVictims\":{}}", ERR_PARSE, NULL},
    /* Victims with no UID. */
    {META("{\"n\":{\"Pods\":[{}]}}"), ERR_INVALID, "victim 0 on node \"n\" has no UID"},
    {META("{\"n\":{\"Pods\":[{\"UID\":\"u\"},{\"UID\":null}]}}"), ERR_INVALID,
     "victim 1 on node \"n\" has no UID"},
    {META("{\"n\":{\"Pods\":[{\"UID\":\"\"}]}}"), ERR_INVALID, NULL},
    {FULL("{\"n\":{\"Pods\":[{\"metadata\":{\"name\":\"p\"}}]}}"), ERR_INVALID, NULL},
    /* Nesting past the limit, inside a key we skip. */
    {"{\"Pod\":{},\"NodeNameToMetaVictims\":{},\"x\":"
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     ERR_PARSE, NULL},
};

static void test_bad_requests(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct arena arena;
        struct ext_preempt_args a, before;
        struct errbuf eb = ERRBUF_INIT;
        enum err got;
        memset(&a, 0x5a, sizeof(a));
        before = a;
        arena_init(&arena, 1 << 20);
        got = decode(&arena, c->body, strlen(c->body), &a, &eb);
        if (got != c->want || (c->msg && strcmp(eb.msg, c->msg) != 0)) {
            fprintf(stderr, "case %zu: %s: got %s (%s)\n", i, c->body, err_str(got), eb.msg);
            abort();
        }
        CHECK(eb.msg[0] != '\0');
        CHECK(memcmp(&a, &before, sizeof(a)) == 0); /* *out is written only on success */
        arena_destroy(&arena);
    }
}

static void test_good_requests(void)
{
    static const char lower[] =
        "{\"pod\":{\"spec\":{\"priority\":-3,\"preemptionPolicy\":\"Never\"}},"
        "\"nodenametovictims\":{\"a\":{\"pods\":[{\"metadata\":{\"uid\":\"u1\"}},"
        "{\"metadata\":{\"uid\":\"u\\u0032\"},\"spec\":{\"priority\":5}}],"
        "\"numpdbviolations\":2},\"A\":null,\"b\":{\"Pods\":null}},"
        "\"NodeNameToMetaVictims\":null,\"Other\":[1,{\"Pods\":2}]}";
    static const char meta[] = "{\"Pod\":{},\"NodeNameToMetaVictims\":{\"n\\u00e9\":{\"Pods\":[{"
                               "\"uid\":\"x\",\"Extra\":1}],\"NumPDBViolations\":"
                               "9223372036854775807}},\"NodeNameToVictims\":null}";
    struct arena arena;
    struct ext_preempt_args a;
    struct errbuf eb = ERRBUF_INIT;

    arena_init(&arena, 1 << 20);
    CHECK_EQ(decode(&arena, lower, sizeof(lower) - 1, &a, &eb), ERR_OK);
    CHECK(!a.meta);
    CHECK_EQ(a.pod.priority, -3);
    CHECK(a.pod.preempt_never);
    CHECK_EQ(a.node_count, 3); /* node names are exact: "a" and "A" differ */
    CHECK_STRN_EQ(a.nodes[0].name.ptr, a.nodes[0].name.len, "a");
    CHECK_EQ(a.nodes[0].pdb_violations, 2);
    CHECK_EQ(a.nodes[0].victim_count, 2);
    CHECK_STRN_EQ(a.nodes[0].victims[1].uid.ptr, a.nodes[0].victims[1].uid.len, "u2");
    CHECK_EQ(a.nodes[0].victims[1].pod->priority, 5);
    CHECK_STRN_EQ(a.nodes[1].name.ptr, a.nodes[1].name.len, "A");
    CHECK_EQ(a.nodes[1].victim_count + a.nodes[2].victim_count, 0);
    CHECK(a.nodes[1].victims == NULL);
    CHECK_EQ(decode(&arena, meta, sizeof(meta) - 1, &a, &eb), ERR_OK);
    CHECK(a.meta);
    CHECK_EQ(a.node_count, 1);
    CHECK_STRN_EQ(a.nodes[0].name.ptr, a.nodes[0].name.len, "n\xc3\xa9");
    CHECK_EQ(a.nodes[0].pdb_violations, INT64_MAX);
    CHECK_STRN_EQ(a.nodes[0].victims[0].uid.ptr, a.nodes[0].victims[0].uid.len, "x");
    arena_destroy(&arena);
}

/* Every strict prefix of a captured request is malformed, never accepted and never a crash. */
static void test_truncated(void)
{
    for (int meta = 0; meta < 2; meta++) {
        char name[128];
        size_t len;
        char *body;
        snprintf(name, sizeof(name), "raw/preempt.args.nodecache-%s.json", meta ? "true" : "false");
        body = fixture(name, &len);
        for (size_t n = 0; n < len; n++) {
            struct arena arena;
            struct ext_preempt_args a;
            struct errbuf eb = ERRBUF_INIT;
            char *copy = malloc(n ? n : 1); /* exactly n bytes, so ASan sees any overread */
            CHECK(copy != NULL);
            memcpy(copy, body, n);
            arena_init(&arena, BIG_ARENA);
            CHECK_EQ(decode(&arena, copy, n, &a, &eb), ERR_PARSE);
            CHECK(strncmp(eb.msg, "malformed request at byte ", 26) == 0);
            arena_destroy(&arena);
            free(copy);
        }
        free(body);
    }
}

/* A growable request text for the size tests. */
struct text {
    char *ptr;
    size_t len, cap;
};

static void put(struct text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->ptr = realloc(t->ptr, t->cap);
        CHECK(t->ptr != NULL);
    }
    memcpy(t->ptr + t->len, s, n + 1);
    t->len += n;
}

/* {"Pod":{},"NodeNameToMetaVictims":{"n0":{"Pods":[{"UID":"v0"},...]},...}} */
static struct text many(size_t nodes, size_t victims, bool repeat_last)
{
    struct text t = {0};
    char item[64];

    put(&t, "{\"Pod\":{},\"NodeNameToMetaVictims\":{");
    for (size_t i = 0; i < nodes; i++) {
        snprintf(item, sizeof(item), "%s\"n%zu\":{\"Pods\":[", i ? "," : "",
                 repeat_last && i == nodes - 1 ? (size_t)0 : i);
        put(&t, item);
        for (size_t j = 0; j < victims; j++) {
            snprintf(item, sizeof(item), "%s{\"UID\":\"v%zu\"}", j ? "," : "", j);
            put(&t, item);
        }
        put(&t, "]}");
    }
    put(&t, "}}");
    return t;
}

static void test_sizes(void)
{
    struct text t = many(1, 200000, false);
    struct arena arena;
    struct ext_preempt_args a;
    struct errbuf eb = ERRBUF_INIT;
    char want[128];
    const char *second;

    /* Many victims on one node: all kept, or a clean 413 when the arena cannot hold them. */
    arena_init(&arena, BIG_ARENA);
    errbuf_clear(&eb);
    CHECK_EQ(decode(&arena, t.ptr, t.len, &a, &eb), ERR_OK);
    CHECK_EQ(a.node_count, 1);
    CHECK_EQ(a.nodes[0].victim_count, 200000);
    CHECK_STRN_EQ(a.nodes[0].victims[199999].uid.ptr, a.nodes[0].victims[199999].uid.len,
                  "v199999");
    arena_destroy(&arena);
    arena_init(&arena, 1 << 20);
    errbuf_clear(&eb);
    CHECK_EQ(decode(&arena, t.ptr, t.len, &a, &eb), ERR_TOO_LARGE);
    CHECK_STR_EQ(eb.msg, "request too large for its memory budget");
    arena_destroy(&arena);
    free(t.ptr);

    /* Many nodes: a name repeated at the very end is found, at its own offset. */
    t = many(50000, 1, false);
    arena_init(&arena, BIG_ARENA);
    errbuf_clear(&eb);
    CHECK_EQ(decode(&arena, t.ptr, t.len, &a, &eb), ERR_OK);
    CHECK_EQ(a.node_count, 50000);
    CHECK_STRN_EQ(a.nodes[49999].name.ptr, a.nodes[49999].name.len, "n49999");
    arena_destroy(&arena);
    free(t.ptr);
    t = many(50000, 1, true);
    second = strstr(t.ptr + 40, "\"n0\"");
    CHECK(second != NULL);
    snprintf(want, sizeof(want),
             "malformed request at byte %zu: node name repeated in NodeNameToMetaVictims",
             (size_t)(second - t.ptr));
    arena_init(&arena, BIG_ARENA);
    errbuf_clear(&eb);
    CHECK_EQ(decode(&arena, t.ptr, t.len, &a, &eb), ERR_PARSE);
    CHECK_STR_EQ(eb.msg, want);
    arena_destroy(&arena);
    free(t.ptr);
}

/* A captured request in a small arena: ERR_TOO_LARGE, in both modes. */
static void test_budget(void)
{
    for (int meta = 0; meta < 2; meta++) {
        struct arena arena;
        struct ext_preempt_args a;
        struct errbuf eb = ERRBUF_INIT;
        char name[128];
        size_t len;
        char *body;
        snprintf(name, sizeof(name), "raw/preempt.args.nodecache-%s.json", meta ? "true" : "false");
        body = fixture(name, &len);
        arena_init(&arena, 512);
        CHECK_EQ(decode(&arena, body, len, &a, &eb), ERR_TOO_LARGE);
        arena_destroy(&arena);
        free(body);
    }
}

int main(void)
{
    test_fixtures_decode();
    test_other_verbs_refused();
    test_round_trip();
    test_reply_shapes();
    test_bad_requests();
    test_good_requests();
    test_truncated();
    test_sizes();
    test_budget();
    printf("test_codec_preempt: ok\n");
    return 0;
}
