/* test_routes.c -- the HTTP surface without sockets: exchanges built by hand go through
 * routes_handle(), as the transport would send them. */
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

static enum err fake_bind_fn(void *ctx, const struct ext_bind_args *args,
                             routes_bind_done_fn *done, void *done_ctx, struct errbuf *eb)
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
    ex.start_ns = exchange_now_ns();
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
    expect(r, "GET", "/metrics", NULL, 200, "gpu_extender_requests_total{verb=\"filter\"");
    expect(r, "GET", "/nope", NULL, 404, "no such endpoint");
    expect(r, "GET", "/gpu/filter", NULL, 405, "use POST");
    expect(r, "POST", "/healthz", NULL, 405, "use GET");
    expect(r, "POST", "/filter", filter, 404, "no such endpoint");
    expect(r, "POST", "/gpu/filter", filter, 200, "\"items\":[{\"metadata\":{\"name\":\"gpu-node-1\"");
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

static void test_deferred_bind(const struct policy *pol)
{
    struct fake_bind fb = {0};
    struct routes_config rc = {.url_prefix = "/", .policy = pol, .bind = fake_bind_fn,
                               .bind_ctx = &fb, .mode = "https://apiserver"};
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

int main(void)
{
    struct policy pol;
    struct routes_config rc = {.url_prefix = "/gpu/", .policy = &pol, .mode = "standalone"};
    struct routes *r;

    policy_default(&pol);
    r = routes_new(&rc);
    metrics_reset();
    test_dispatch(r);
    test_strategy_error(r);
    test_too_large(r);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_TOO_LARGE), 1);
    CHECK_EQ(metrics_requests_get(METRICS_VERB_FILTER, METRICS_OUTCOME_BAD_REQUEST), 2);
    CHECK(metrics_counter_get(METRICS_FILTER_NODES_PASSED) >= 3);
    routes_free(r);
    test_deferred_bind(&pol);
    printf("test_routes: ok\n");
    return 0;
}
