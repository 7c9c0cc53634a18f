/* test_concurrency.c -- filter, prioritize, preempt and reservations racing against watch
 * updates (nodes, pods bound, pending and nominated, disruption budgets).
 * Run under ThreadSanitizer as its own CI step (ctest -L tsan); under ASan with the rest. */
#include <pthread.h>
#include <stdatomic.h>

#include "gx/log.h"
#include "gx/routes.h"

#include "check.h"

#define NODES 50
#define ROUNDS 400

static struct cache *cache;
static struct routes *routes;
static char *names_body;
static char *preempt_body;
static atomic_bool stop;
static atomic_long requests;

/* Every node publishes the same 8-GPU topology, so reservations name GPU sets. */
static const char topology[] =
    "{\"gpus\":[{\"index\":0},{\"index\":1},{\"index\":2},{\"index\":3},{\"index\":4},"
    "{\"index\":5},{\"index\":6},{\"index\":7}],\"links\":[[0,1,\"NV2\"],[2,3,\"NV2\"],"
    "[4,5,\"NV2\"],[6,7,\"NV2\"]]}";

/* The GPU indices each node's live reservations hold, as the reservers saw them granted. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t held[NODES];

static void node_name(char *out, size_t cap, int i)
{
    snprintf(out, cap, "gpu-node-%d", i);
}

/* The watch: nodes change, pods come, bind and go. */
static void *writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char name[32], uid[32];

    for (int round = 0; round < ROUNDS; round++) {
        int i = (int)(rand_r(&seed) % NODES);
        struct node_info n = {.gpu_allocatable = 8, .product = STR_LIT("NVIDIA-H100-80GB-HBM3")};
        struct pod_info p = {.gpus = 1 + (int64_t)(rand_r(&seed) % 2), .phase = STR_LIT("Running")};

        node_name(name, sizeof(name), i);
        n.name = str_from_cstr(name);
        n.model = n.product;
        n.ann_topology = STR_LIT(topology);
        cache_node_upsert(cache, &n);
        snprintf(uid, sizeof(uid), "w%u-%d", seed % 7, round);
        p.uid = str_from_cstr(uid);
        p.node_name = n.name;
        cache_pod_upsert(cache, &p);
        if (round % 3 == 0)
            cache_pod_delete(cache, &p);
        if (round % 5 == 0) {
            /* A pending pod an earlier preemption nominated to this node, and a budget. */
            static const char pdb[] = "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns\"},"
                                      "\"spec\":{\"selector\":{\"matchLabels\":{\"a\":\"b\"}}}}";
            struct pod_info nom = {.gpus = 2, .priority = 7, .phase = STR_LIT("Pending")};
            snprintf(uid, sizeof(uid), "n%u-%d", seed % 7, round);
            nom.uid = str_from_cstr(uid);
            nom.nominated_node = n.name;
            cache_pod_upsert(cache, &nom);
            if (round % 10 == 0)
                cache_pod_delete(cache, &nom);
            CHECK_EQ(cache_pdb_apply_json(cache, round % 10 == 0, pdb, sizeof(pdb) - 1, NULL),
                     ERR_OK);
        }
        cache_contact(cache);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        for (int v = 0; v < 3; v++) {
            static const char *const paths[] = {"/filter", "/prioritize", "/preempt"};
            struct exchange ex;
            memset(&ex, 0, sizeof(ex));
            arena_init(&ex.arena, 16u << 20);
            ex.method = "POST";
            ex.path = paths[v];
            ex.body = v == 2 ? preempt_body : names_body;
            ex.body_len = strlen(ex.body);
            routes_handle(routes, &ex);
            CHECK_EQ(ex.status, 200);
            arena_destroy(&ex.arena);
            atomic_fetch_add(&requests, 1);
        }
    }
    return NULL;
}

/* Takes the lowest free GPU, as a bind's chooser would take some free set. */
static uint32_t lowest_free(void *ctx, const struct cache_node *n)
{
    (void)ctx;
    return n->free_mask & (~n->free_mask + 1);
}

/* Binds in flight: a reservation must never push a node past its allocatable GPUs, and two
 * live reservations must never hold the same GPU. */
static void *reserver(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char name[32], uid[32];

    for (int round = 0; round < ROUNDS; round++) {
        int i = (int)(rand_r(&seed) % NODES);
        uint32_t mask = 0;

        node_name(name, sizeof(name), i);
        snprintf(uid, sizeof(uid), "r%u-%d", seed, round);
        if (cache_reserve(cache, str_from_cstr(uid), str_from_cstr(name), 1, lowest_free, NULL,
                          &mask, NULL) != ERR_OK)
            continue;
        pthread_mutex_lock(&held_lock);
        CHECK_EQ(held[i] & mask, 0);
        held[i] |= mask;
        pthread_mutex_unlock(&held_lock);
        if (round % 2 == 0) {
            pthread_mutex_lock(&held_lock);
            held[i] &= ~mask;
            /* Released under the test's lock, so no other reserver sees the GPU free while it
             * is still marked held here. */
            cache_release(cache, str_from_cstr(uid), str_from_cstr(name));
            pthread_mutex_unlock(&held_lock);
        }
    }
    return NULL;
}

int main(void)
{
    char path[1024];
    struct policy_store *policies = policy_store_new(policy_new_default(), "");
    struct routes_config rc = {.url_prefix = "/", .policies = policies, .mode = "test"};
    pthread_t w[2], r[3], b[2];
    struct cache_snapshot *snap;

    snprintf(path, sizeof(path), "%s/extender/raw/filter.args.nodecache-true.json",
             getenv("GX_FIXTURES"));
    log_set_level(LOG_WARN); /* one info line per preempt call is noise here */
    names_body = check_read_file(path, NULL);
    snprintf(path, sizeof(path), "%s/extender/raw/preempt.args.nodecache-true.json",
             getenv("GX_FIXTURES"));
    preempt_body = check_read_file(path, NULL);
    cache = cache_new();
    rc.cache = cache;
    routes = routes_new(&rc);
    cache_nodes_relist_begin(cache);
    cache_nodes_relist_end(cache);
    cache_pods_relist_begin(cache);
    cache_pods_relist_end(cache);
    for (int i = 0; i < 3; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    for (int i = 0; i < 2; i++) {
        pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)(i + 1));
        pthread_create(&b[i], NULL, reserver, (void *)(uintptr_t)(i + 11));
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i], NULL);
        pthread_join(b[i], NULL);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(r[i], NULL);
    snap = cache_snapshot_acquire(cache);
    for (size_t i = 0; i < snap->node_count; i++)
        CHECK(cache_snapshot_node(snap, i)->gpus_reserved <=
              cache_snapshot_node(snap, i)->info.gpu_allocatable);
    cache_snapshot_release(snap);
    CHECK(atomic_load(&requests) > 0);
    routes_free(routes);
    cache_free(cache);
    policy_store_free(policies);
    free(names_body);
    free(preempt_body);
    printf("test_concurrency: ok (%ld requests)\n", atomic_load(&requests));
    return 0;
}
