/* test_routes.c -- the HTTP surface without sockets: exchanges built by hand go through
 * routes_handle(), as the transport would send them. Plain request/response pairs are golden
 * cases in tests/data/routes (run by test_routes_golden.c); what stays here cannot be one:
 * bodies that change by build or run (/version, /metrics), the request metrics, deferred
 * binds, and replies that depend on the cluster cache's state. */
#include "gx/clock.h"
#include "gx/metrics.h"
#include "gx/routes.h"

#include "check.h"
#include "exchange_helpers.h"

struct fake_bind {
    int calls;
    routes_bind_done_fn *done;
    void *done_ctx;
    struct ext_bind_args args;
};

/* Keeps what the bind was asked for and the callback, for the test to finish it later. */
static enum err fake_bind_fn(void *ctx, const struct ext_bind_args *args, routes_bind_done_fn *done,
                             void *done_ctx, struct errbuf *eb)
{
    struct fake_bind *fb = ctx;

    (void)eb;
    fb->calls++;
    fb->args = *args;
    fb->done = done;
    fb->done_ctx = done_ctx;
    return ERR_OK;
}

static int completions;

static void on_complete(struct exchange *ex)
{
    (void)ex;
    completions++;
}

/* Runs one request; returns the status and (caller frees) the body, and the content type
 * when ctype is not NULL. */
static int run_typed(struct routes *r, const char *method, const char *path, const char *body,
                     char **reply, const char **ctype)
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
    *reply = exchange_reply_join(&ex, NULL);
    if (ctype)
        *ctype = ex.content_type;
    arena_destroy(&ex.arena);
    return status;
}

static int run(struct routes *r, const char *method, const char *path, const char *body,
               char **reply)
{
    return run_typed(r, method, path, body, reply, NULL);
}

/* Runs one request whose reply a golden case already checks; returns only the status. */
static int status_of(struct routes *r, const char *method, const char *path, const char *body)
{
    char *reply;
    int status = run(r, method, path, body, &reply);

    free(reply);
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

/* /version and /metrics change from build to build and run to run: status, content type and a
 * line each is known to hold. */
static void test_varying_bodies(struct routes *r)
{
    const char *ctype;
    char *reply;

    CHECK_EQ(run_typed(r, "GET", "/version", NULL, &reply, &ctype), 200);
    CHECK_STR_EQ(ctype, "application/json");
    CHECK(strstr(reply, "\"version\"") != NULL);
    free(reply);
    CHECK_EQ(run_typed(r, "GET", "/metrics", NULL, &reply, &ctype), 200);
    CHECK_STR_EQ(ctype, "text/plain; version=0.0.4; charset=utf-8");
    CHECK(strstr(reply, "gpu_extender_requests_total{verb=\"filter\"") != NULL);
    free(reply);
}

/* A body over the transport's limit, which the transport did not read. */
static int too_large_status(struct routes *r)
{
    struct exchange ex;
    int status;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1 << 20);
    ex.method = "POST";
    ex.path = "/gpu/filter";
    ex.body = "";
    ex.body_too_large = true;
    ex.body_limit = 1024;
    routes_handle(r, &ex);
    status = ex.status;
    arena_destroy(&ex.arena);
    return status;
}

/* Each request is counted once by verb and outcome, and filter counts nodes by verdict. The
 * replies themselves are golden cases (filter-full, filter-truncated, filter-no-pod,
 * filter-too-large, filter-bad-strategy). */
static void test_request_metrics(struct routes *r)
{
    const char *strategy =
        "{\"Pod\":{\"metadata\":{\"annotations\":{\"gpu-extender.io/strategy\":\"best\"}},"
        "\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"nvidia.com/gpu\":\"1\"}}}]}},"
        "\"Nodes\":{\"items\":[]}}";
    char *full = fixture("filter.args.nodecache-false.json");

    metrics_reset();
    CHECK_EQ(status_of(r, "POST", "/gpu/filter", full), 200);
    CHECK_EQ(status_of(r, "POST", "/gpu/filter", "{\"Pod\":"), 400);
    CHECK_EQ(status_of(r, "POST", "/gpu/filter", "{\"NodeNames\":[]}"), 400);
    CHECK_EQ(status_of(r, "POST", "/gpu/filter", strategy), 200);
    CHECK_EQ(too_large_status(r), 413);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_OK), 1);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_BAD_REQUEST), 2);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_ERROR), 1);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_TOO_LARGE), 1);
    /* All three captured nodes pass. */
    CHECK_EQ(metrics_counter_get(METRICS_FILTER_NODES_PASSED), 3);
    CHECK_EQ(metrics_counter_get(METRICS_FILTER_NODES_FAILED), 0);
    free(full);
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
    reply = exchange_reply_join(&ex, NULL);
    CHECK_STR_EQ(reply, "{\"Error\":\"gpu-extender: bind x: apiserver 409: conflict\"}");
    free(reply);
    arena_destroy(&ex.arena);
    /* A full queue answering at once is the golden case bind-refused. */
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
    struct errbuf eb = ERRBUF_INIT;

    /* Before the first sync: not ready, and filter asks the scheduler to retry. */
    expect(r, "GET", "/readyz", NULL, 503, "\"synced\":false");
    expect(r, "POST", "/filter", names, 200, "has not synced");
    load_nodes(c);
    cache_pods_relist_begin(c);
    cache_pods_relist_end(c);
    expect(r, "GET", "/readyz", NULL, 200, "\"nodes\":3");
    expect(r, "POST", "/filter", names, 200,
           "\"NodeNames\":[\"gpu-node-2\",\"gpu-node-3\",\"gpu-node-1\"],\"FailedNodes\":{}");
    /* gpu-node-3's 4 GPUs are taken. Still unresolvable to kube-scheduler's preemption, whose
     * dry run could find no victim on a node its own filters pass (codec.c), in both modes. */
    cache_pod_upsert(c, &big);
    expect(r, "POST", "/filter", names, 200,
           "\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{\"gpu-node-3\":\"gpu-extender: not "
           "enough free nvidia.com/gpu\"}");
    expect(r, "POST", "/filter", full, 200,
           "\"FailedNodes\":{},\"FailedAndUnresolvableNodes\":{\"gpu-node-3\":\"gpu-extender: not "
           "enough free nvidia.com/gpu\"}");
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
           "cluster cache\",\"gpu-node-3\":");
    expect(r, "GET", "/metrics", NULL, 200, "gpu_extender_cache_nodes 2");
    expect(r, "GET", "/debug/nodes", NULL, 200,
           "\"allocatable\":4,\"used\":4,\"reserved\":0,\"free\":0,\"gpuFactsSource\":\"none: "
           "count-only\"}");
    free(names);
    free(full);
    routes_free(r);
    cache_free(c);
}

/* A copy of s (caller frees) with the first from replaced by to. */
static char *replace_once(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    size_t head, len;
    char *out;

    CHECK(at);
    head = (size_t)(at - s);
    len = strlen(s) - strlen(from) + strlen(to);
    out = malloc(len + 1);
    CHECK(out);
    snprintf(out, len + 1, "%.*s%s%s", (int)head, s, to, at + strlen(from));
    return out;
}

/* Applies each victim Pod of the captured full-mode preempt request to the cache, with its
 * UID replaced by uids[i] when uids is not NULL (the NodeNames capture's victims). */
static void load_victims(struct cache *c, const char *full, const char *const *uids)
{
    static const char *const captured[] = {"6f2ba016-1efb-4ffd-a263-a549d591b9f0",
                                           "bf8f2573-1859-4f13-b943-3bfe8342ce2d",
                                           "39604342-ba43-4977-bf63-e26c9ad3df9f"};
    struct errbuf eb = ERRBUF_INIT;
    struct ext_preempt_args args;
    struct arena arena;

    arena_init(&arena, 64u << 20);
    CHECK_EQ(codec_decode_preempt(&arena, full, strlen(full), &args, &eb), ERR_OK);
    CHECK_EQ(args.node_count, 3);
    cache_pods_relist_begin(c);
    for (size_t i = 0; i < 3; i++) {
        struct pod_info p = *args.nodes[i].victims[0].pod;
        CHECK(str_eq_cstr(p.uid, captured[i]));
        if (uids)
            p.uid = str_from_cstr(uids[i]);
        cache_pod_upsert(c, &p);
    }
    cache_pods_relist_end(c);
    arena_destroy(&arena);
}

/* POST /preempt on the captured requests: gpu-node-1 and -2 (8 GPUs) and gpu-node-3 (4) are
 * each full with one low pod; the preemptor wants 4. Evicting on gpu-node-3 frees the fewest
 * GPUs beyond the need, so it is the node kept, in both modes. */
static void test_preempt(struct policy_store *pol)
{
    static const char *const meta_uids[] = {"8318e4ac-1c1f-46f8-a4bd-6a2138cecc53",
                                            "8addcd21-1a30-4a62-836a-15691b65bae6",
                                            "5cb0c899-8d4b-4ca5-acc3-d448cad469dc"};
    struct cache *c = cache_new();
    struct routes_config rc = {
        .url_prefix = "/", .policies = pol, .mode = "https://apiserver", .cache = c};
    struct routes_config solo = {.url_prefix = "/", .policies = pol, .mode = "standalone"};
    struct routes *r = routes_new(&rc), *standalone = routes_new(&solo);
    char *full = fixture("preempt.args.nodecache-false.json");
    char *meta = fixture("preempt.args.nodecache-true.json");
    char *never = replace_once(full, "\"preemptionPolicy\":\"PreemptLowerPriority\"",
                               "\"preemptionPolicy\":\"Never\"");
    struct errbuf eb = ERRBUF_INIT;
    const char *pdb;

    expect(standalone, "POST", "/preempt", meta, 503, "preemption needs the cluster cache");
    expect(r, "POST", "/preempt", meta, 503, "has not synced");
    load_nodes(c);
    load_victims(c, full, NULL);
    expect(r, "POST", "/preempt", full, 200,
           "{\"NodeNameToMetaVictims\":{\"gpu-node-3\":{\"Pods\":[{\"UID\":"
           "\"39604342-ba43-4977-bf63-e26c9ad3df9f\"}],\"NumPDBViolations\":0}}}");
    /* A budget that allows no disruption covers low-c: the choice moves to gpu-node-1. */
    pdb = "{\"metadata\":{\"name\":\"keep-c\",\"namespace\":\"default\"},\"spec\":"
          "{\"selector\":{\"matchLabels\":{\"app\":\"gpu-test\"}}},\"status\":"
          "{\"disruptionsAllowed\":2}}";
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb, strlen(pdb), &eb), ERR_OK);
    /* Allowed 2: still no violation anywhere, gpu-node-3 still wins. */
    expect(r, "POST", "/preempt", full, 200, "\"gpu-node-3\"");
    pdb = "{\"metadata\":{\"name\":\"keep-c\",\"namespace\":\"default\"},\"spec\":"
          "{\"selector\":{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\","
          "\"values\":[\"gpu-test\"]}]}},\"status\":{\"disruptionsAllowed\":0}}";
    CHECK_EQ(cache_pdb_apply_json(c, false, pdb, strlen(pdb), &eb), ERR_OK);
    /* Every victim now violates it: the tie between equal violations goes to the fewest GPUs
     * freed again, and the violation is reported. */
    expect(r, "POST", "/preempt", full, 200,
           "\"gpu-node-3\":{\"Pods\":[{\"UID\":"
           "\"39604342-ba43-4977-bf63-e26c9ad3df9f\"}],"
           "\"NumPDBViolations\":1}");
    CHECK_EQ(cache_pdb_apply_json(c, true, pdb, strlen(pdb), &eb), ERR_OK);
    /* preemptionPolicy: Never: no node, nothing evicted. */
    expect(r, "POST", "/preempt", never, 200, "{\"NodeNameToMetaVictims\":{}}");
    /* The NodeNames capture: the same pods under that run's UIDs. */
    load_victims(c, full, meta_uids);
    expect(r, "POST", "/preempt", meta, 200,
           "{\"NodeNameToMetaVictims\":{\"gpu-node-3\":{\"Pods\":[{\"UID\":"
           "\"5cb0c899-8d4b-4ca5-acc3-d448cad469dc\"}],\"NumPDBViolations\":0}}}");
    /* Explain shows what preemption would do for the pending preemptor. */
    {
        struct ext_preempt_args args;
        struct arena arena;
        arena_init(&arena, 64u << 20);
        CHECK_EQ(codec_decode_preempt(&arena, full, strlen(full), &args, &eb), ERR_OK);
        cache_pod_upsert(c, &args.pod);
        arena_destroy(&arena);
    }
    expect(r, "GET", "/debug/explain/default/high-1", NULL, 200,
           "\"preemption\":{\"mayPreempt\":true,\"priority\":1000000,\"node\":\"gpu-node-3\"");
    expect(r, "GET", "/debug/explain/default/high-1", NULL, 200,
           "\"victims\":[{\"namespace\":\"default\",\"name\":\"low-c\",\"priority\":0,"
           "\"gpus\":4,\"leaving\":false}]");
    /* Malformed bodies are 400s, like every verb. */
    expect(r, "POST", "/preempt", "{\"Pod\":", 400, "Error");
    expect(r, "POST", "/preempt", "{\"Pod\":{},\"NodeNameToMetaVictims\":{\"n\":{\"Pods\":7}}}",
           400, "Error");
    free(never);
    free(meta);
    free(full);
    routes_free(standalone);
    routes_free(r);
    cache_free(c);
}

int main(void)
{
    struct policy_store *pol = policy_store_new(policy_new_default(), "");
    struct routes_config rc = {.url_prefix = "/gpu/", .policies = pol, .mode = "standalone"};
    struct routes *r;

    r = routes_new(&rc);
    test_varying_bodies(r);
    test_request_metrics(r);
    routes_free(r);
    test_deferred_bind(pol);
    test_cache_mode(pol);
    test_preempt(pol);
    policy_store_free(pol);
    printf("test_routes: ok\n");
    return 0;
}
