/* test_concurrency.c -- filter, prioritize and reservations racing against watch updates.
 * Run under ThreadSanitizer as its own CI step (ctest -L tsan); under ASan with the rest. */
#include <pthread.h>
#include <stdatomic.h>

#include "gx/routes.h"

#include "check.h"

#define NODES 50
#define ROUNDS 400

static struct cache *cache;
static struct routes *routes;
static char *names_body;
static atomic_bool stop;
static atomic_long requests;

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
        cache_node_upsert(cache, &n);
        snprintf(uid, sizeof(uid), "w%u-%d", seed % 7, round);
        p.uid = str_from_cstr(uid);
        p.node_name = n.name;
        cache_pod_upsert(cache, &p);
        if (round % 3 == 0)
            cache_pod_delete(cache, &p);
        cache_contact(cache);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        for (int v = 0; v < 2; v++) {
            struct exchange ex;
            memset(&ex, 0, sizeof(ex));
            arena_init(&ex.arena, 16u << 20);
            ex.method = "POST";
            ex.path = v ? "/prioritize" : "/filter";
            ex.body = names_body;
            ex.body_len = strlen(names_body);
            routes_handle(routes, &ex);
            CHECK_EQ(ex.status, 200);
            arena_destroy(&ex.arena);
            atomic_fetch_add(&requests, 1);
        }
    }
    return NULL;
}

/* Binds in flight: a reservation must never push a node past its allocatable GPUs. */
static void *reserver(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char name[32], uid[32];

    for (int round = 0; round < ROUNDS; round++) {
        node_name(name, sizeof(name), (int)(rand_r(&seed) % NODES));
        snprintf(uid, sizeof(uid), "r%u-%d", seed, round);
        if (cache_reserve(cache, str_from_cstr(uid), str_from_cstr(name), 1, NULL, NULL, NULL, NULL) == ERR_OK &&
            round % 2 == 0)
            cache_release(cache, str_from_cstr(uid), str_from_cstr(name));
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
    names_body = check_read_file(path, NULL);
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
        CHECK(snap->nodes[i].gpus_reserved <= snap->nodes[i].info.gpu_allocatable);
    cache_snapshot_release(snap);
    CHECK(atomic_load(&requests) > 0);
    routes_free(routes);
    cache_free(cache);
    policy_store_free(policies);
    free(names_body);
    printf("test_concurrency: ok (%ld requests)\n", atomic_load(&requests));
    return 0;
}
