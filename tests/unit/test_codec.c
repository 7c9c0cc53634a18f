/* test_codec.c -- decoding every captured extender request (pretty and raw bytes, both
 * nodeCacheCapable modes) and encoding replies that kube-scheduler's decoder accepts. */
#include "gx/codec.h"
#include "gx/jscan.h"
#include "gx/objects.h"

#include "check.h"
#include "exchange_helpers.h"

static char *fixture(const char *name, size_t *len)
{
    char path[1024];
    const char *dir = getenv("GX_FIXTURES");

    CHECK(dir != NULL);
    snprintf(path, sizeof(path), "%s/extender/%s", dir, name);
    return check_read_file(path, len);
}

static void check_args(const char *file, bool full)
{
    struct arena arena;
    struct ext_args args;
    struct errbuf eb = ERRBUF_INIT;
    size_t len;
    char *body = fixture(file, &len);

    arena_init(&arena, 64u << 20);
    if (codec_decode_args(&arena, body, len, &args, &eb) != ERR_OK) {
        fprintf(stderr, "%s: %s\n", file, eb.msg);
        abort();
    }
    CHECK(args.has_pod);
    CHECK_STRN_EQ(args.pod.ns.ptr, args.pod.ns.len, "default");
    CHECK(args.pod.uid.len == 36);
    CHECK(args.pod.gpus >= 1);
    CHECK_EQ(args.pod.priority, 0); /* written by the admission plugin: no class, so 0 */
    CHECK(!args.pod.preempt_never); /* "PreemptLowerPriority" */
    CHECK_EQ(args.full_nodes, full);
    CHECK_EQ(args.has_names, !full);
    if (full) {
        CHECK(args.node_count >= 1 && args.node_count <= 3);
        for (size_t i = 0; i < args.node_count; i++) {
            const struct node_info *n = &args.nodes[i];
            CHECK(n->name.len == 10 && memcmp(n->name.ptr, "gpu-node-", 9) == 0);
            CHECK_EQ(n->gpu_allocatable, n->name.ptr[9] == '3' ? 4 : 8);
            CHECK_STRN_EQ(n->model.ptr, n->model.len, "NVIDIA-A100-SXM4-80GB");
            CHECK_STRN_EQ(n->family.ptr, n->family.len, "ampere");
            CHECK_EQ(n->gpu_memory_mib, 81920);
            CHECK(n->raw.ptr[0] == '{' && n->raw.ptr[n->raw.len - 1] == '}');
        }
    } else {
        CHECK(args.name_count >= 1 && args.name_count <= 3);
        for (size_t i = 0; i < args.name_count; i++)
            CHECK(memcmp(args.names[i].ptr, "gpu-node-", 9) == 0);
    }
    arena_destroy(&arena);
    free(body);
}

static void test_fixtures_decode(void)
{
    static const char *const verbs[] = {"filter", "filter.failed-nodes", "prioritize"};
    char name[128];

    for (size_t v = 0; v < 3; v++) {
        for (int mode = 0; mode < 2; mode++) {
            const char *m = mode ? "true" : "false";
            snprintf(name, sizeof(name), "%s.args.nodecache-%s.json", verbs[v], m);
            check_args(name, !mode);
            snprintf(name, sizeof(name), "raw/%s.args.nodecache-%s.json", verbs[v], m);
            check_args(name, !mode);
        }
    }
}

static void test_preempt_is_not_filter(void)
{
    struct arena arena;
    struct ext_args args;
    struct errbuf eb = ERRBUF_INIT;
    size_t len;
    char *body = fixture("raw/preempt.args.nodecache-true.json", &len);

    arena_init(&arena, 64u << 20);
    CHECK_EQ(codec_decode_args(&arena, body, len, &args, &eb), ERR_INVALID);
    CHECK_STR_EQ(eb.msg, "ExtenderArgs has neither Nodes nor NodeNames");
    arena_destroy(&arena);
    free(body);
}

static enum err bind_of(struct arena *arena, const char *body, struct ext_bind_args *b)
{
    struct errbuf eb = ERRBUF_INIT;

    return codec_decode_bind(arena, body, strlen(body), b, &eb);
}

static void test_bind_args(void)
{
    static const char *const files[] = {"bind.args.nodecache-false.json",
                                        "raw/bind.args.nodecache-true.json",
                                        "raw/bind.error.args.nodecache-false.json"};
    struct arena arena;
    struct ext_bind_args b;
    struct errbuf eb = ERRBUF_INIT;

    arena_init(&arena, 1 << 20);
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *body = fixture(files[i], &len);
        CHECK_EQ(codec_decode_bind(&arena, body, len, &b, &eb), ERR_OK);
        CHECK_STRN_EQ(b.pod_namespace.ptr, b.pod_namespace.len, "default");
        CHECK_STRN_EQ(b.node.ptr, b.node.len, "gpu-node-1");
        CHECK(b.pod_uid.len == 36);
        free(body);
    }
    /* Keys are case-insensitive, as in Go. */
    CHECK_EQ(bind_of(&arena, "{\"podname\":\"a\",\"PODNAMESPACE\":\"b\",\"node\":\"n\"}", &b),
             ERR_OK);
    CHECK_STRN_EQ(b.pod_name.ptr, b.pod_name.len, "a");
    CHECK_EQ(bind_of(&arena, "{\"PodName\":\"a\",\"PodName\":\"b\"}", &b), ERR_PARSE);
    CHECK_EQ(bind_of(&arena, "{\"PodName\":1}", &b), ERR_PARSE);
    CHECK_EQ(bind_of(&arena, "{\"PodName\":\"a\"}", &b), ERR_INVALID);
    CHECK_EQ(bind_of(&arena, "{\"PodName\":\"a\"} x", &b), ERR_PARSE);
    CHECK_EQ(bind_of(&arena, "[\"PodName\"]", &b), ERR_PARSE);
    CHECK_EQ(
        bind_of(&arena, "{\"PodName\":\"x\\u0000y\",\"PodNamespace\":\"d\",\"Node\":\"n\"}", &b),
        ERR_PARSE);
    arena_destroy(&arena);
}

static void test_bad_args(void)
{
    static const struct {
        const char *body;
        enum err want;
    } cases[] = {
        {"", ERR_PARSE},
        {"[]", ERR_PARSE},
        {"{\"Pod\":\"x\",\"NodeNames\":[]}", ERR_PARSE},
        {"{\"Pod\":{},\"NodeNames\":{}}", ERR_PARSE},
        {"{\"Pod\":{},\"NodeNames\":[1]}", ERR_PARSE},
        {"{\"Pod\":{},\"pod\":{},\"NodeNames\":[]}", ERR_PARSE},
        {"{\"NodeNames\":[\"a\"]}", ERR_INVALID},
        {"{\"Pod\":{},\"NodeNames\":null,\"Nodes\":null}", ERR_INVALID},
        {"{\"Pod\":{},\"NodeNames\":[],\"Nodes\":{\"items\":[]}}", ERR_INVALID},
        {"{\"Pod\":{},\"Nodes\":{\"items\":[{\"metadata\":{}}]}}", ERR_PARSE},
        {"{\"Pod\":{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/"
         "gpu\":1}}}]}},"
         "\"NodeNames\":[]}",
         ERR_PARSE},
        {"{\"Pod\":{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\","
         "\"nvidia.com/gpu\":\"2\"}}}]}},\"NodeNames\":[]}",
         ERR_PARSE},
        {"{\"Pod\":{},\"NodeNames\":[]}", ERR_OK},
        {"{\"pod\":{},\"nodenames\":[\"a\"],\"Extra\":[1,{}]}", ERR_OK},
    };
    struct arena arena;
    struct ext_args args;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct errbuf eb = ERRBUF_INIT;
        enum err got;
        arena_init(&arena, 1 << 20);
        got = codec_decode_args(&arena, cases[i].body, strlen(cases[i].body), &args, &eb);
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: %s: got %s (%s)\n", i, cases[i].body, err_str(got), eb.msg);
            abort();
        }
        arena_destroy(&arena);
    }
}

/* The Nodes of a request are decided on their facts; our annotations on them are skipped
 * (topology and GPU use come from the cache, which reads them from the watch), yet still
 * validated: a broken escape inside one fails the request as before. */
static void test_request_node_annotations(void)
{
    static const char node[] =
        "{\"metadata\":{\"name\":\"n1\",\"annotations\":{\"gpu-extender.io/topology\":"
        "\"{\\\"gpus\\\":[]}\",\"gpu-extender.io/gpus-in-use\":\"0,1\"}},"
        "\"status\":{\"allocatable\":{\"nvidia.com/gpu\":\"8\"}}}";
    char body[1024];
    struct arena arena;
    struct ext_args args;
    struct errbuf eb = ERRBUF_INIT;
    struct node_info cached;
    struct jscan js;

    snprintf(body, sizeof(body), "{\"Pod\":{},\"Nodes\":{\"items\":[%s]}}", node);
    arena_init(&arena, 1 << 20);
    CHECK_EQ(codec_decode_args(&arena, body, strlen(body), &args, &eb), ERR_OK);
    CHECK_EQ(args.node_count, 1);
    CHECK_STRN_EQ(args.nodes[0].name.ptr, args.nodes[0].name.len, "n1");
    CHECK_EQ(args.nodes[0].gpu_allocatable, 8);
    CHECK_EQ(args.nodes[0].ann_topology.len, 0);
    CHECK_EQ(args.nodes[0].ann_gpus_in_use.len, 0);
    CHECK(args.nodes[0].raw.len == strlen(node));
    /* the cache's decoder, on the same object, keeps them */
    jscan_init(&js, node, strlen(node), 64);
    CHECK(obj_node_decode(&js, &arena, &cached));
    CHECK_STRN_EQ(cached.ann_topology.ptr, cached.ann_topology.len, "{\"gpus\":[]}");
    CHECK_STRN_EQ(cached.ann_gpus_in_use.ptr, cached.ann_gpus_in_use.len, "0,1");
    arena_destroy(&arena);

    snprintf(body, sizeof(body),
             "{\"Pod\":{},\"Nodes\":{\"items\":[{\"metadata\":{\"name\":\"n1\",\"annotations\":"
             "{\"gpu-extender.io/topology\":\"\\q\"}}}]}}");
    arena_init(&arena, 1 << 20);
    CHECK_EQ(codec_decode_args(&arena, body, strlen(body), &args, &eb), ERR_PARSE);
    arena_destroy(&arena);
}

/* The preemption facts of a Pod: spec.priority (int32; absent or null is 0) and
 * spec.preemptionPolicy (only "Never" forbids preempting). */
static void test_pod_priority(void)
{
    static const struct {
        const char *spec;
        enum err want;
        int32_t priority;
        bool never;
        const char *msg;
    } cases[] = {
        {"{}", ERR_OK, 0, false, NULL},
        {"{\"priority\":1000000}", ERR_OK, 1000000, false, NULL},
        {"{\"priority\":null,\"preemptionPolicy\":null}", ERR_OK, 0, false, NULL},
        {"{\"priority\":-5}", ERR_OK, -5, false, NULL},
        {"{\"priority\":-0}", ERR_OK, 0, false, NULL},
        {"{\"priority\":2147483647}", ERR_OK, INT32_MAX, false, NULL},
        {"{\"priority\":-2147483648}", ERR_OK, INT32_MIN, false, NULL},
        {"{\"preemptionPolicy\":\"Never\",\"priority\":7}", ERR_OK, 7, true, NULL},
        {"{\"preemptionPolicy\":\"PreemptLowerPriority\"}", ERR_OK, 0, false, NULL},
        {"{\"preemptionPolicy\":\"N\\u0065ver\"}", ERR_OK, 0, true, NULL},
        /* API values are case-sensitive: "never" is not Never (the API server refuses it). */
        {"{\"preemptionPolicy\":\"never\"}", ERR_OK, 0, false, NULL},
        {"{\"priority\":2147483648}", ERR_PARSE, 0, false,
         "malformed request at byte 37: pod spec.priority is not an integer in int32 range"},
        {"{\"priority\":-2147483649}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":99999999999999999999999}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":1.0}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":1e3}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":\"5\"}", ERR_PARSE, 0, false,
         "malformed request at byte 27: pod spec.priority is not an integer"},
        {"{\"priority\":true}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":[1]}", ERR_PARSE, 0, false, NULL},
        {"{\"priority\":1,\"priority\":2}", ERR_PARSE, 0, false, NULL},
        {"{\"preemptionPolicy\":1}", ERR_PARSE, 0, false, NULL},
        {"{\"preemptionPolicy\":\"Never\",\"preemptionPolicy\":\"Never\"}", ERR_PARSE, 0, false,
         NULL},
    };
    char body[256];
    struct arena arena;
    struct ext_args args;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct errbuf eb = ERRBUF_INIT;
        enum err got;
        snprintf(body, sizeof(body), "{\"Pod\":{\"spec\":%s},\"NodeNames\":[]}", cases[i].spec);
        arena_init(&arena, 1 << 20);
        got = codec_decode_args(&arena, body, strlen(body), &args, &eb);
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu: %s: got %s (%s)\n", i, body, err_str(got), eb.msg);
            abort();
        }
        if (got == ERR_OK) {
            CHECK_EQ(args.pod.priority, cases[i].priority);
            CHECK_EQ(args.pod.preempt_never, cases[i].never);
        }
        if (cases[i].msg)
            CHECK_STR_EQ(eb.msg, cases[i].msg);
        arena_destroy(&arena);
    }
}

/* Echo: every passing node's bytes appear in the reply exactly as they were sent. */
static void test_filter_echo(void)
{
    struct exchange ex;
    struct ext_args args;
    struct sched_fit fits[3] = {
        {SCHED_PASS, 0}, {SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE}, {SCHED_PASS, 0}};
    const struct node_info *nodes[3];
    struct codec_filter_result res = {.args = &args, .fits = fits, .reason_nodes = nodes};
    struct errbuf eb = ERRBUF_INIT;
    struct jscan js;
    struct str key, span;
    size_t len, rlen, item = 0;
    char *body = fixture("raw/filter.args.nodecache-false.json", &len), *reply;
    int r;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 64u << 20);
    CHECK_EQ(codec_decode_args(&ex.arena, body, len, &args, &eb), ERR_OK);
    CHECK_EQ(args.node_count, 3);
    for (size_t i = 0; i < 3; i++)
        nodes[i] = &args.nodes[i];
    CHECK_EQ(codec_reply_filter(&ex, &res), ERR_OK);
    CHECK_EQ(ex.status, 200);
    reply = exchange_reply_join(&ex, &rlen);
    jscan_init(&js, reply, rlen, 128);
    CHECK(jscan_enter_object(&js));
    while ((r = jscan_next_member(&js, &key)) == 1) {
        if (!jstr_eq(key, "Nodes")) {
            CHECK(jscan_skip(&js, &span));
            /* Every rejection is unresolvable to kube-scheduler's preemption (codec.c). */
            if (jstr_eq(key, "FailedNodes"))
                CHECK_STRN_EQ(span.ptr, span.len, "{}");
            if (jstr_eq(key, "FailedAndUnresolvableNodes"))
                CHECK_STRN_EQ(span.ptr, span.len,
                              "{\"gpu-node-2\":\"gpu-extender: not enough free nvidia.com/gpu\"}");
            if (jstr_eq(key, "NodeNames"))
                CHECK_STRN_EQ(span.ptr, span.len, "null");
            continue;
        }
        CHECK(jscan_enter_object(&js));
        while ((r = jscan_next_member(&js, &key)) == 1) {
            if (!jstr_eq(key, "items")) {
                CHECK(jscan_skip(&js, NULL));
                continue;
            }
            CHECK(jscan_enter_array(&js));
            while (jscan_next_element(&js) == 1) {
                size_t want = item == 0 ? 0 : 2;
                CHECK(jscan_skip(&js, &span));
                CHECK_EQ(span.len, args.nodes[want].raw.len);
                CHECK(memcmp(span.ptr, args.nodes[want].raw.ptr, span.len) == 0);
                item++;
            }
        }
    }
    CHECK(jscan_finish(&js));
    CHECK_EQ(item, 2);
    free(reply);
    arena_destroy(&ex.arena);
    free(body);
}

static void test_names_reply_and_prioritize(void)
{
    struct exchange ex;
    struct str names[2] = {STR_LIT("a\"b"), STR_LIT("c")};
    struct ext_args args = {.has_names = true, .names = names, .name_count = 2};
    struct sched_fit fits[2] = {{SCHED_PASS, 0}, {SCHED_UNRESOLVABLE, SCHED_REASON_NO_GPUS}};
    const struct node_info *nodes[2] = {NULL, NULL};
    struct codec_filter_result res = {.args = &args, .fits = fits, .reason_nodes = nodes};
    int scores[2] = {10, 0};
    size_t len;
    char *text;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1 << 20);
    CHECK_EQ(codec_reply_filter(&ex, &res), ERR_OK);
    text = exchange_reply_join(&ex, &len);
    CHECK_STR_EQ(text, "{\"Nodes\":null,\"NodeNames\":[\"a\\\"b\"],\"FailedNodes\":{},"
                       "\"FailedAndUnresolvableNodes\":{\"c\":\"gpu-extender: node has no "
                       "nvidia.com/gpu\"},\"Error\":\"\"}");
    free(text);
    CHECK_EQ(codec_reply_prioritize(&ex, names, scores, 2, NULL), ERR_OK);
    text = exchange_reply_join(&ex, &len);
    CHECK_STR_EQ(text, "[{\"Host\":\"a\\\"b\",\"Score\":10},{\"Host\":\"c\",\"Score\":0}]");
    free(text);
    CHECK_EQ(codec_reply_bind(&ex, ""), ERR_OK);
    text = exchange_reply_join(&ex, &len);
    CHECK_STR_EQ(text, "{\"Error\":\"\"}");
    free(text);
    arena_destroy(&ex.arena);
}

int main(void)
{
    test_fixtures_decode();
    test_preempt_is_not_filter();
    test_bind_args();
    test_bad_args();
    test_request_node_annotations();
    test_pod_priority();
    test_filter_echo();
    test_names_reply_and_prioritize();
    printf("test_codec: ok\n");
    return 0;
}
