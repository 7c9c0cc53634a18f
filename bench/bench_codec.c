/* bench_codec.c -- filter and prioritize without sockets: decode, decide, encode, for
 * full-Nodes requests of 100 to 5,000 nodes built at run time from the captured request
 * (tests/fixtures/kube-1.26/extender/raw/filter.args.nodecache-false.json): its Pod, and its
 * first Node repeated under new names. Prints a table of median and p99 per call and per node.
 * ctest sets GX_FIXTURES; run by hand, it reads tests/fixtures/kube-1.26 from the current
 * directory (the repository root).
 *
 * This is a first micro-benchmark; the benchmark issue adds realistic 12 KB nodes, HTTP
 * macro-benchmarks and the Go baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/exchange.h"
#include "gx/routes.h"

#define RUNS 41

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Cuts the Pod object and the first Node object out of the captured request. */
static void split_fixture(const char *body, size_t len, struct str *pod, struct str *node)
{
    struct jscan js;
    struct str key;

    jscan_init(&js, body, len, 128);
    if (!jscan_enter_object(&js))
        abort();
    while (jscan_next_member(&js, &key) == 1) {
        if (jstr_eq(key, "Pod")) {
            if (!jscan_skip(&js, pod))
                abort();
        } else if (jstr_eq(key, "Nodes")) {
            if (!jscan_enter_object(&js))
                abort();
            while (jscan_next_member(&js, &key) == 1) {
                if (!jstr_eq(key, "items")) {
                    if (!jscan_skip(&js, NULL))
                        abort();
                    continue;
                }
                if (!jscan_enter_array(&js) || jscan_next_element(&js) != 1 ||
                    !jscan_skip(&js, node))
                    abort();
                return;
            }
        } else if (!jscan_skip(&js, NULL)) {
            abort();
        }
    }
}

/* Builds {"Pod":...,"Nodes":{"metadata":{},"items":[node x n]},"NodeNames":null} with node
 * names bench-node-<i> (the captured name "gpu-node-1" is replaced in place). */
static char *build_request(struct str pod, struct str node, size_t n, size_t *len)
{
    struct buf b;
    static const char key[] = "\"name\":\"gpu-node-1\"";
    const char *name = strstr(node.ptr, key);
    size_t head, tail;

    if (!name || name > node.ptr + node.len)
        abort();
    head = (size_t)(name - node.ptr) + 7; /* through "name": */
    tail = node.len - (size_t)(name - node.ptr) - (sizeof(key) - 1);

    buf_init(&b, 1u << 30);
    if (buf_append_str(&b, "{\"Pod\":") || buf_append(&b, pod.ptr, pod.len) ||
        buf_append_str(&b, ",\"Nodes\":{\"metadata\":{},\"items\":["))
        abort();
    for (size_t i = 0; i < n; i++) {
        if ((i && buf_append(&b, ",", 1)) || buf_append(&b, node.ptr, head) ||
            buf_printf(&b, "\"bench-node-%zu\"", i) || buf_append(&b, name + sizeof(key) - 1, tail))
            abort();
    }
    if (buf_append_str(&b, "]},\"NodeNames\":null}"))
        abort();
    return buf_take(&b, len);
}

static uint64_t run_once(struct routes *r, const char *path, const char *body, size_t len)
{
    struct exchange ex;
    uint64_t t0 = clock_mono_ns(), dt;

    memset(&ex, 0, sizeof(ex));
    arena_init(&ex.arena, 1u << 30);
    ex.method = "POST";
    ex.path = path;
    ex.body = body;
    ex.body_len = len;
    ex.start_ns = t0;
    routes_handle(r, &ex);
    dt = clock_mono_ns() - t0;
    if (ex.status != 200)
        abort();
    arena_destroy(&ex.arena);
    return dt;
}

int main(void)
{
    static const size_t sizes[] = {100, 1000, 5000};
    static const char *const verbs[] = {"/filter", "/prioritize"};
    char path[1024];
    struct str pod, node;
    struct policy_store *pol = policy_store_new(policy_new_default(), "");
    struct routes_config rc = {.url_prefix = "/", .policies = pol, .mode = "bench"};
    struct routes *r;
    size_t flen;
    char *fixture;
    const char *dir = getenv("GX_FIXTURES");
    FILE *f;

    snprintf(path, sizeof(path), "%s/extender/raw/filter.args.nodecache-false.json",
             dir ? dir : "tests/fixtures/kube-1.26");
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_codec: cannot open %s (set GX_FIXTURES)\n", path);
        return 1;
    }
    fixture = calloc(1, (1 << 20) + 1);
    flen = fread(fixture, 1, 1 << 20, f);
    fclose(f);
    split_fixture(fixture, flen, &pod, &node);
    r = routes_new(&rc);
    printf("| verb | nodes | body MB | median ms | p99 ms | ns/node (median) |\n"
           "|---|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len;
        char *body = build_request(pod, node, sizes[s], &len);
        for (size_t v = 0; v < 2; v++) {
            uint64_t t[RUNS];
            for (int i = 0; i < RUNS; i++)
                t[i] = run_once(r, verbs[v], body, len);
            qsort(t, RUNS, sizeof(t[0]), cmp_u64);
            printf("| %s | %zu | %.1f | %.3f | %.3f | %.0f |\n", verbs[v] + 1, sizes[s],
                   (double)len / 1e6, (double)t[RUNS / 2] / 1e6, (double)t[RUNS - 1] / 1e6,
                   (double)t[RUNS / 2] / (double)sizes[s]);
        }
        free(body);
    }
    routes_free(r);
    policy_store_free(pol);
    free(fixture);
    return 0;
}
