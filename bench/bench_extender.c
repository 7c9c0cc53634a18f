/* bench_extender.c -- filter and prioritize without sockets, on the generated cluster data of
 * bench/gen/gencluster.py: each request body named on the command line goes through
 * routes_handle() (decode, decide, encode: exactly what an HTTP thread runs) and, separately,
 * through codec_decode_args() alone. Bodies with NodeNames need the cluster cache: it is
 * filled from --cluster (a full-Nodes request body holding every node of the cluster) and
 * --pods (the generator's pods-N.tsv: namespace, name, uid, node, gpus, phase).
 *
 * Prints one JSON line per body and verb, with every sample, for bench/scripts/bench.py:
 *   {"file":..., "verb":"filter", "mode":"names"|"full", "nodes":N, "body_bytes":B,
 *    "total_ns":[...], "decode_ns":[...], "arena_bytes":A, "reply_bytes":R, "maxrss_kb":K}
 *
 * --verb filter|prioritize runs only that verb.
 * --policy FILE decides with that policy instead of the built-in default.
 * --constrain K gives every K-th pod of --pods a gpu-extender.io/gpu-model annotation, in
 *   turn T4, L40S, H100 or A100, T4 or L40S: demand for the scarcity part of the score
 *   (scoring.weights.scarcity), which pods without such constraints leave off.
 * --after-event changes one pod in the cache before each timed call (a watch event), so that
 *   every call pays for what the first request after an event pays; the same call without an
 *   event is timed right after each one (quiet_ns), for the ratio within one process.
 * --callgrind N runs N calls per verb through measured_call() and nothing else, for
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured_call
 * so the instruction count covers exactly N calls of routes_handle(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gx/cache.h"
#include "gx/clock.h"
#include "gx/codec.h"
#include "gx/exchange.h"
#include "gx/jscan.h"
#include "gx/objects.h"
#include "gx/policy.h"
#include "gx/policy_store.h"
#include "gx/routes.h"

#define ARENA_BASE_BYTES (16u << 20) /* as the HTTP layer: 16 MB plus half the body */

static const char *const verbs[] = {"/filter", "/prioritize"};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "bench_extender: cannot read %s\n", path);
        exit(1);
    }
    data = malloc((size_t)n + 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "bench_extender: cannot read %s\n", path);
        exit(1);
    }
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* One exchange as the HTTP layer builds it; the caller destroys the arena. */
static void exchange_prepare(struct exchange *ex, const char *path, const char *body, size_t len)
{
    memset(ex, 0, sizeof(*ex));
    arena_init(&ex->arena, ARENA_BASE_BYTES + len / 2);
    ex->method = "POST";
    ex->path = path;
    ex->body = body;
    ex->body_len = len;
    ex->start_ns = clock_mono_ns();
}

/* Kept out of line: callgrind counts instructions under this symbol only. */
__attribute__((noinline)) void measured_call(struct routes *r, struct exchange *ex);
__attribute__((noinline)) void measured_call(struct routes *r, struct exchange *ex)
{
    routes_handle(r, ex);
}

static void check_reply(const struct exchange *ex, const char *file, const char *verb)
{
    if (ex->status != 200) {
        const struct exchange_iov *v = ex->iov_count ? &ex->iov[0] : NULL;
        fprintf(stderr, "bench_extender: %s %s answered %d: %.*s\n", verb, file, ex->status,
                v ? (int)(v->len > 300 ? 300 : v->len) : 0, v ? (const char *)v->base : "");
        exit(1);
    }
}

static size_t reply_bytes(const struct exchange *ex)
{
    size_t n = 0;

    for (size_t i = 0; i < ex->iov_count; i++)
        n += ex->iov[i].len;
    return n;
}

/* --after-event: the cache to change before each call, and a node to change it on. */
static struct cache *event_cache;
static char event_node[256];

/* One watch event: a pod on event_node holds one GPU, then two, then one again. */
static void watch_event(int i)
{
    struct pod_info p;

    memset(&p, 0, sizeof(p));
    p.ns = STR_LIT("bench");
    p.name = p.uid = STR_LIT("bench-event");
    p.node_name = str_from_cstr(event_node);
    p.gpus = 1 + i % 2;
    p.phase = STR_LIT("Running");
    cache_pod_upsert(event_cache, &p);
}

/* Model constraints --constrain hands out in turn. */
static const char *const constraints[] = {"T4", "L40S", "H100,A100", "T4,L40S"};

/* Fills the cache from a full-Nodes request body and the pods TSV, then marks both listed;
 * every constrain-th pod (0: none) gets a model annotation. */
static void fill_cache(struct cache *c, const char *cluster_path, const char *pods_path,
                       long constrain)
{
    size_t len, plen;
    char *body = read_file(cluster_path, &len);
    char *pods = pods_path ? read_file(pods_path, &plen) : NULL;
    struct arena a;
    struct ext_args args;
    struct errbuf eb = ERRBUF_INIT;
    size_t n_pods = 0, n_topo = 0;

    arena_init(&a, ARENA_BASE_BYTES + len);
    if (codec_decode_args(&a, body, len, &args, &eb) != ERR_OK || !args.full_nodes ||
        !args.node_count) {
        fprintf(stderr, "bench_extender: %s: not a full-Nodes request: %s\n", cluster_path, eb.msg);
        exit(1);
    }
    cache_nodes_relist_begin(c);
    for (size_t i = 0; i < args.node_count; i++) {
        /* A request's Nodes are decoded without our annotations; the cache takes them as the
         * watch does, topologies included: each Node's own bytes again, with the watch's decoder.
         */
        struct node_info n;
        struct jscan js;
        jscan_init(&js, args.nodes[i].raw.ptr, args.nodes[i].raw.len, JSCAN_MAX_DEPTH);
        if (!obj_node_decode(&js, &a, &n)) {
            fprintf(stderr, "bench_extender: %s: node %zu: %s\n", cluster_path, i,
                    jscan_error(&js, NULL));
            exit(1);
        }
        cache_node_upsert(c, &n);
        n_topo += n.ann_topology.len > 0;
    }
    snprintf(event_node, sizeof(event_node), "%.*s", (int)args.nodes[0].name.len,
             args.nodes[0].name.ptr);
    cache_nodes_relist_end(c);
    cache_pods_relist_begin(c);
    for (char *line = pods; line && *line;) {
        char *end = strchr(line, '\n'), *f[6];
        struct pod_info p;
        int k = 0;

        if (end)
            *end = '\0';
        for (char *s = line; k < 6; k++) {
            f[k] = s;
            s = strchr(s, '\t');
            if (!s)
                break;
            *s++ = '\0';
        }
        if (k != 5) {
            fprintf(stderr, "bench_extender: %s: bad line %zu\n", pods_path, n_pods + 1);
            exit(1);
        }
        memset(&p, 0, sizeof(p));
        p.ns = str_from_cstr(f[0]);
        p.name = str_from_cstr(f[1]);
        p.uid = str_from_cstr(f[2]);
        p.node_name = str_from_cstr(f[3]);
        p.gpus = strtol(f[4], NULL, 10);
        p.phase = str_from_cstr(f[5]);
        if (constrain > 0 && n_pods % (size_t)constrain == 0)
            p.ann_gpu_model = str_from_cstr(constraints[(n_pods / (size_t)constrain) % 4]);
        cache_pod_upsert(c, &p);
        n_pods++;
        line = end ? end + 1 : NULL;
    }
    cache_pods_relist_end(c);
    fprintf(stderr,
            "bench_extender: cache holds %zu nodes (%zu with a topology) and %zu pods (%s)\n",
            args.node_count, n_topo, n_pods, cluster_path);
    arena_destroy(&a);
    free(body);
    free(pods);
}

static void print_samples(const char *key, const uint64_t *t, int n)
{
    printf(",\"%s\":[", key);
    for (int i = 0; i < n; i++)
        printf("%s%llu", i ? "," : "", (unsigned long long)t[i]);
    printf("]");
}

static void bench_file(struct routes *r, const char *file, int runs, int callgrind,
                       const char *only)
{
    size_t len;
    char *body = read_file(file, &len);
    uint64_t *total = calloc((size_t)runs, sizeof(*total));
    uint64_t *decode = calloc((size_t)runs, sizeof(*decode));
    uint64_t *quiet = calloc((size_t)runs, sizeof(*quiet));

    if (!total || !decode)
        exit(1);
    for (size_t v = 0; v < 2; v++) {
        struct exchange ex;
        struct ext_args args;
        size_t arena_used = 0, out_bytes = 0, nodes;
        bool names;

        if (only && strcmp(only, verbs[v] + 1) != 0)
            continue;
        /* One decode tells the shape and size, and warms the caches. */
        exchange_prepare(&ex, verbs[v], body, len);
        if (codec_decode_args(&ex.arena, body, len, &args, NULL) != ERR_OK) {
            fprintf(stderr, "bench_extender: %s does not decode\n", file);
            exit(1);
        }
        names = !args.full_nodes;
        nodes = names ? args.name_count : args.node_count;
        arena_destroy(&ex.arena);

        if (callgrind) {
            for (int i = 0; i < runs; i++) {
                exchange_prepare(&ex, verbs[v], body, len);
                if (event_cache)
                    watch_event(i);
                measured_call(r, &ex);
                check_reply(&ex, file, verbs[v]);
                arena_destroy(&ex.arena);
            }
            printf("{\"file\":\"%s\",\"verb\":\"%s\",\"calls\":%d}\n", file, verbs[v] + 1, runs);
            continue;
        }
        exchange_prepare(&ex, verbs[v], body, len); /* warm-up */
        routes_handle(r, &ex);
        check_reply(&ex, file, verbs[v]);
        arena_destroy(&ex.arena);
        for (int i = 0; i < runs; i++) {
            uint64_t t0;

            exchange_prepare(&ex, verbs[v], body, len);
            if (event_cache)
                watch_event(i);
            t0 = clock_mono_ns();
            routes_handle(r, &ex);
            total[i] = clock_mono_ns() - t0;
            check_reply(&ex, file, verbs[v]);
            arena_used = ex.arena.used_bytes;
            out_bytes = reply_bytes(&ex);
            arena_destroy(&ex.arena);

            exchange_prepare(&ex, verbs[v], body, len);
            t0 = clock_mono_ns();
            if (codec_decode_args(&ex.arena, body, len, &args, NULL) != ERR_OK)
                exit(1);
            decode[i] = clock_mono_ns() - t0;
            arena_destroy(&ex.arena);

            if (event_cache) { /* the same call with no event before it, interleaved */
                exchange_prepare(&ex, verbs[v], body, len);
                t0 = clock_mono_ns();
                routes_handle(r, &ex);
                quiet[i] = clock_mono_ns() - t0;
                arena_destroy(&ex.arena);
            }
        }
        {
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            printf("{\"file\":\"%s\",\"verb\":\"%s\",\"mode\":\"%s\",\"nodes\":%zu,"
                   "\"body_bytes\":%zu,\"runs\":%d,\"after_event\":%s",
                   file, verbs[v] + 1, names ? "names" : "full", nodes, len, runs,
                   event_cache ? "true" : "false");
            print_samples("total_ns", total, runs);
            print_samples("decode_ns", decode, runs);
            if (event_cache)
                print_samples("quiet_ns", quiet, runs);
            printf(",\"arena_bytes\":%zu,\"reply_bytes\":%zu,\"maxrss_kb\":%ld}\n", arena_used,
                   out_bytes, ru.ru_maxrss);
        }
        fflush(stdout);
    }
    free(total);
    free(decode);
    free(quiet);
    free(body);
}

int main(int argc, char **argv)
{
    const char *cluster = NULL, *pods = NULL, *only = NULL, *policy_path = NULL;
    int runs = 15, callgrind = 0, i;
    long constrain = 0;
    bool after_event = false;
    struct policy_store *pol;
    struct policy *initial;
    struct routes_config rc = {.url_prefix = "/", .mode = "bench"};
    struct routes *r;
    struct cache *c = NULL;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = (int)strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--callgrind") && i + 1 < argc) {
            runs = (int)strtol(argv[++i], NULL, 10);
            callgrind = 1;
        } else if (!strcmp(argv[i], "--cluster") && i + 1 < argc) {
            cluster = argv[++i];
        } else if (!strcmp(argv[i], "--pods") && i + 1 < argc) {
            pods = argv[++i];
        } else if (!strcmp(argv[i], "--verb") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--policy") && i + 1 < argc) {
            policy_path = argv[++i];
        } else if (!strcmp(argv[i], "--after-event")) {
            after_event = true;
        } else if (!strcmp(argv[i], "--constrain") && i + 1 < argc) {
            constrain = strtol(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_extender [--runs N | --callgrind N] [--verb filter|"
                            "prioritize] [--policy FILE] [--cluster FULL.json [--pods PODS.tsv "
                            "[--constrain K]] [--after-event]] REQUEST.json...\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100000 || i >= argc) {
        fprintf(stderr, "bench_extender: nothing to do (see --help)\n");
        return 2;
    }
    initial = policy_new_default();
    if (policy_path) {
        struct policy_diag diag = {0};
        policy_unref(initial);
        if (policy_load(policy_path, &initial, &diag) != ERR_OK) {
            for (size_t d = 0; d < diag.count; d++)
                fprintf(stderr, "%s\n", diag.msgs[d]);
            return 1;
        }
    }
    pol = policy_store_new(initial, "");
    rc.policies = pol;
    if (cluster) {
        c = cache_new();
        fill_cache(c, cluster, pods, constrain);
        rc.cache = c;
        event_cache = after_event ? c : NULL;
    }
    r = routes_new(&rc);
    for (; i < argc; i++)
        bench_file(r, argv[i], runs, callgrind, only);
    routes_free(r);
    if (c)
        cache_free(c);
    policy_store_free(pol);
    return 0;
}
