/* test_routes.c -- the HTTP surface without sockets: exchanges built by hand go through
 * routes_handle(), as the transport would send them. */
#include "gx/clock.h"
#include "gx/metrics.h"
#include "gx/routes.h"

#include "check.h"

struct fake_bind {
    int calls;
    routes_bind_done_fn *done;
    void *done_ctx;
    struct ext_bind_args args;
    enum err result;
};

static enum err fake_bind_fn(void *ctx, const struct ext_bind_args *args, routes_bind_done_fn *done,
                             void *done_ctx, struct errbuf *eb)
{
    struct fake_bind *fb = ctx;

    fb->calls++;
    fb->args = *args;
    fb->done = done;
    fb->done_ctx = done_ctx;
    if (fb->result != ERR_OK)
        errbuf_set(eb, "queue full");
    return fb->result;
}

static int completions;

static void on_complete(struct exchange *ex)
{
    (void)ex;
    completions++;
}

static char *reply_of(struct exchange *ex)
{
    size_t n = 0;
    char *out;

    for (size_t i = 0; i < ex->iov_count; i++)
        n += ex->iov[i].len;
    out = calloc(1, n + 1);
    n = 0;
    for (size_t i = 0; i < ex->iov_count; i++) {
        memcpy(out + n, ex->iov[i].base, ex->iov[i].len);
        n += ex->iov[i].len;
    }
    return out;
}

/* Runs one request; returns the status and (caller frees) the body. */
static int run(struct routes *r, const char *method, const char *path, const char *body,
               char **reply)
{
    struct exchange ex;
    int status;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 64u << 20);
    ex.method = method;
    ex.path = path;
    ex.body = body ? body : "";
    ex.body_len = body ? strlen(body) : 0;
    ex.start_ns = clock_mono_ns();
    ex.on_complete = on_complete;
    routes_handle(r, &ex);
    CHECK(!ex.deferred);
    status = ex.status;
    *reply = reply_of(&ex);
    arena_destroy(&ex.arena);
    return status;
}

static char *fixture(const char *name)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/extender/raw/%s", getenv("GX_FIXTURES"), name);
    return check_read_file(path, NULL);
}

static void expect(struct routes *r, const char *method, const char *path, const char *body,
                   int status, const char *needle)
{
    char *reply;
    int got = run(r, method, path, body, &reply);

    if (got != status || !strstr(reply, needle)) {
        fprintf(stderr, "%s %s: got %d %s, want %d containing %s\n", method, path, got, reply,
                status, needle);
        abort();
    }
    free(reply);
}

static void test_dispatch(struct routes *r)
{
    char *filter = fixture("filter.args.nodecache-false.json");
    char *names = fixture("filter.args.nodecache-true.json");
    char *bind = fixture("bind.args.nodecache-true.json");

    expect(r, "GET", "/healthz", NULL, 200, "ok");
    expect(r, "GET", "/readyz", NULL, 200, "\"mode\":\"standalone\"");
    expect(r, "GET", "/version", NULL, 200, "\"version\"");
    expect(r, "GET", "/debug/nodes", NULL, 404, "standalone");
    expect(r, "GET", "/metrics", NULL, 200, "gpu_extender_requests_total{verb=\"filter\"");
    expect(r, "GET", "/nope", NULL, 404, "no such endpoint");
    expect(r, "GET", "/gpu/filter", NULL, 405, "use POST");
    expect(r, "POST", "/healthz", NULL, 405, "use GET");
    expect(r, "POST", "/filter", filter, 404, "no such endpoint");
    expect(r, "POST", "/gpu/filter", filter, 200,
           "\"items\":[{\"metadata\":{\"name\":\"gpu-node-1\"");
    expect(r, "POST", "/gpu/filter", names, 200, "\"Error\":\"gpu-extender: nodeCacheCapable");
    expect(r, "POST", "/gpu/prioritize", filter, 200, "{\"Host\":\"gpu-node-3\",\"Score\":3}");
    expect(r, "POST", "/gpu/prioritize", names, 503, "nodeCacheCapable");
    expect(r, "POST", "/gpu/bind", bind, 200, "standalone mode");
    expect(r, "POST", "/gpu/filter", "{\"Pod\":", 400, "unexpected end of input");
    expect(r, "POST", "/gpu/filter", "{\"NodeNames\":[]}", 400, "has no Pod");
    expect(r, "POST", "/gpu/bind", "{}", 400, "PodName is missing");
    free(filter);
    free(names);
    free(bind);
}

static void test_strategy_error(struct routes *r)
{
    const char *body =
        "{\"Pod\":{\"metadata\":{\"annotations\":{\"gpu-extender.io/strategy\":\"best\"}},"
        "\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}]}},"
        "\"Nodes\":{\"items\":[]}}";

    expect(r, "POST", "/gpu/filter", body, 200, "must be binpack or spread");
}

static void test_too_large(struct routes *r)
{
    struct exchange ex;
    char *reply;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1 << 20);
    ex.method = "POST";
    ex.path = "/gpu/filter";
    ex.body = "";
    ex.body_too_large = true;
    ex.body_limit = 1024;
    routes_handle(r, &ex);
    CHECK_EQ(ex.status, 413);
    reply = reply_of(&ex);
    CHECK(strstr(reply, "limit of 1024 bytes") != NULL);
    free(reply);
    arena_destroy(&ex.arena);
}

static void test_deferred_bind(struct policy_store *pol)
{
    struct fake_bind fb = {0};
    struct routes_config rc = {.url_prefix = "/",
                               .policies = pol,
                               .bind = fake_bind_fn,
                               .bind_ctx = &fb,
                               .mode = "https://apiserver"};
    struct routes *r = routes_new(&rc);
    char *body = fixture("bind.args.nodecache-false.json"), *reply;
    struct exchange ex;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1 << 20);
    ex.method = "POST";
    ex.path = "/bind";
    ex.body = body;
    ex.body_len = strlen(body);
    ex.on_complete = on_complete;
    completions = 0;
    routes_handle(r, &ex);
    CHECK(ex.deferred);
    CHECK_EQ(fb.calls, 1);
    CHECK_STRN_EQ(fb.args.node.ptr, fb.args.node.len, "gpu-node-1");
    fb.done(fb.done_ctx, "gpu-extender: bind x: apiserver 409: conflict");
    CHECK_EQ(completions, 1);
    reply = reply_of(&ex);
    CHECK_STR_EQ(reply, "{\"Error\":\"gpu-extender: bind x: apiserver 409: conflict\"}");
    free(reply);
    arena_destroy(&ex.arena);
    /* A full queue answers at once with an Error. */
    fb.result = ERR_UNAVAILABLE;
    expect(r, "POST", "/bind", body, 200, "queue full");
    free(body);
    routes_free(r);
}

/* Loads the captured NodeList into a cache, as the node watch would. */
static void load_nodes(struct cache *c)
{
    char path[1024];
    char *body;
    size_t len;
    struct jscan js;
    struct str key;
    struct arena arena;

    snprintf(path, sizeof(path), "%s/apiserver/raw/list-nodes.200.json", getenv("GX_FIXTURES"));
    body = check_read_file(path, &len);
    arena_init(&arena, 1 << 20);
    jscan_init(&js, body, len, 64);
    cache_nodes_relist_begin(c);
    CHECK(jscan_enter_object(&js));
    while (jscan_next_member(&js, &key) == 1) {
        if (!jstr_eq(key, "items")) {
            CHECK(jscan_skip(&js, NULL));
            continue;
        }
        CHECK(jscan_enter_array(&js));
        while (jscan_next_element(&js) == 1) {
            struct node_info n;
            CHECK(obj_node_decode(&js, &arena, &n));
            cache_node_upsert(c, &n);
        }
    }
    CHECK(jscan_finish(&js));
    cache_nodes_relist_end(c);
    arena_destroy(&arena);
    free(body);
}

static void test_cache_mode(struct policy_store *pol)
{
    struct cache *c = cache_new();
    struct routes_config rc = {
        .url_prefix = "/", .policies = pol, .mode = "https://apiserver", .cache = c};
    struct routes *r = routes_new(&rc);
    char *names = fixture("filter.args.nodecache-true.json");
    char *full = fixture("filter.args.nodecache-false.json");
    struct pod_info big = {.uid = STR_LIT("x"),
                           .node_name = STR_LIT("gpu-node-3"),
                           .gpus = 4,
                           .phase = STR_LIT("Running")};
    struct errbuf eb = {{0}};

    /* Before the first sync: not ready, and filter asks the scheduler to retry. */
    expect(r, "GET", "/readyz", NULL, 503, "\"synced\":false");
    expect(r, "POST", "/filter", names, 200, "has not synced");
    load_nodes(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
    expect(r, "GET", "/readyz", NULL, 200, "\"nodes\":3");
    expect(r, "POST", "/filter", names, 200,
           "\"NodeNames\":[\"gpu-node-2\",\"gpu-node-3\",\"gpu-node-1\"],\"FailedNodes\":{}");
    /* gpu-node-3's 4 GPUs are taken: preemption could help, so FailedNodes, in both modes. */
    cache_pod_upsert(c, &big);
    expect(r, "POST", "/filter", names, 200,
           "\"FailedNodes\":{\"gpu-node-3\":\"gpu-extender: not enough free nvidia.com/gpu\"}");
    expect(r, "POST", "/filter", full, 200,
           "\"FailedNodes\":{\"gpu-node-3\":\"gpu-extender: not enough free nvidia.com/gpu\"}");
    expect(r, "POST", "/prioritize", names, 200, "{\"Host\":\"gpu-node-3\",\"Score\":10}");
    /* A reservation counts like a bound pod: 7 of gpu-node-1's 8 are reserved. */
    CHECK_EQ(cache_reserve(c, STR_LIT("r"), STR_LIT("gpu-node-1"), 8, NULL, NULL, NULL, &eb),
             ERR_OK);
    expect(r, "POST", "/filter", names, 200, "\"gpu-node-1\":\"gpu-extender: not enough free");
    cache_release(c, STR_LIT("r"), STR_LIT("gpu-node-1"));
    /* A name the cache does not know. */
    cache_node_delete(c, STR_LIT("gpu-node-2"));
    expect(r, "POST", "/filter", names, 200,
           "\"FailedAndUnresolvableNodes\":{\"gpu-node-2\":\"gpu-extender: node is not in the "
           "cluster cache\"}");
    expect(r, "GET", "/metrics", NULL, 200, "gpu_extender_cache_nodes 2");
    expect(r, "GET", "/debug/nodes", NULL, 200,
           "\"allocatable\":4,\"used\":4,\"reserved\":0,\"free\":0}");
    free(names);
    free(full);
    routes_free(r);
    cache_free(c);
}

int main(void)
{
    struct policy_store *pol = policy_store_new(policy_new_default(), "");
    struct routes_config rc = {.url_prefix = "/gpu/", .policies = pol, .mode = "standalone"};
    struct routes *r;

    r = routes_new(&rc);
    metrics_reset();
    test_dispatch(r);
    test_strategy_error(r);
    test_too_large(r);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_TOO_LARGE), 1);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_BAD_REQUEST), 2);
    CHECK(metrics_counter_get(METRICS_FILTER_NODES_PASSED) >= 3);
    routes_free(r);
    test_deferred_bind(pol);
    test_cache_mode(pol);
    policy_store_free(pol);
    printf("test_routes: ok\n");
    return 0;
}
