/* bench_topology.c -- what topology-aware placement costs: building a topology from its
 * annotation (8 GPUs: tables and every answer precomputed; 16 GPUs: tables only, memo filled
 * lazily), one topo_choose() on a warm memo, the first (cold) query on a free mask of a 16-GPU
 * node, a requirement at a level that is not memoized, the guaranteed query, and the memory
 * each topology holds. Prints a table of medians; runs in a few seconds (use a Release build
 * for real numbers).
 *
 * Topologies: a DGX-1 V100 (8 GPUs, NV1/NV2/SYS), two 8-GPU NVLink islands joined by SYS
 * (16 GPUs, 2 classes), and a seeded random 16-GPU topology with all six classes (the worst
 * case for the memo budget: only 3 of its 6 levels are memoized). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/topology.h"

#include "topo_doc.h"

#define RUNS 9

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), cmp_u64);
    return v[n / 2];
}

typedef const char *link_fn(unsigned a, unsigned b, uint32_t *seed);

static const char *link_dgx1(unsigned a, unsigned b, uint32_t *seed)
{
    static const char *const m[8][8] = {
        {0, "NV1", "NV1", "NV2", "NV2", 0, 0, 0},
        {0, 0, "NV2", "NV1", 0, "NV2", 0, 0},
        {0, 0, 0, "NV2", 0, 0, "NV1", 0},
        {0, 0, 0, 0, 0, 0, 0, "NV1"},
        {0, 0, 0, 0, 0, "NV1", "NV1", "NV2"},
        {0, 0, 0, 0, 0, 0, "NV2", "NV1"},
        {0, 0, 0, 0, 0, 0, 0, "NV2"},
        {0},
    };

    (void)seed;
    return m[a][b];
}

static const char *link_islands(unsigned a, unsigned b, uint32_t *seed)
{
    (void)seed;
    return a / 8 == b / 8 ? "NV12" : "SYS";
}

static const char *link_random(unsigned a, unsigned b, uint32_t *seed)
{
    static const char *const names[] = {"NV2", "NV4", "PIX", "PXB", "PHB", "NODE", "SYS"};

    (void)a;
    (void)b;
    return names[rng_next(seed) % 7];
}

static void make_doc(struct doc *d, unsigned n, link_fn *link)
{
    uint32_t seed = 2024;
    const char *sep = "";

    d->len = 0;
    doc_add(d, "{\"gpus\":[");
    for (unsigned i = 0; i < n; i++)
        doc_add(d, "%s{\"index\":%u,\"uuid\":\"GPU-%u\",\"numa\":%u}", i ? "," : "", i, i,
                i * 2 / n);
    doc_add(d, "],\"links\":[");
    for (unsigned a = 0; a < n; a++) {
        for (unsigned b = a + 1; b < n; b++) {
            const char *name = link(a, b, &seed);
            if (name) {
                doc_add(d, "%s[%u,%u,\"%s\"]", sep, a, b, name);
                sep = ",";
            }
        }
    }
    doc_add(d, "]}");
}

static struct topo *build(const struct doc *d)
{
    struct topo *t;

    if (topo_parse(d->buf, d->len, &t, NULL) != ERR_OK)
        abort();
    return t;
}

static uint64_t build_ns(const struct doc *d)
{
    uint64_t v[RUNS];

    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = now_ns();
        topo_release(build(d));
        v[r] = now_ns() - t0;
    }
    return median(v, RUNS);
}

struct query {
    uint32_t free_mask;
    unsigned k;
    enum topo_class required;
};

/* Random free masks of at least 3 GPUs, k in 2..|F|-1: the memoized cases. */
static void make_queries(struct query *q, size_t n, unsigned gpus, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t F;
        do
            F = (rng_next(&seed) | rng_next(&seed)) & ((1u << gpus) - 1);
        while (__builtin_popcount(F) < 3);
        q[i].free_mask = F;
        q[i].k = 2 + rng_next(&seed) % ((unsigned)__builtin_popcount(F) - 2);
        q[i].required = rng_next(&seed) % 2 ? TOPO_NVLINK : TOPO_SYS;
    }
}

static volatile uint32_t sink;

/* Median over RUNS of the mean ns per call of one pass over q. */
static double warm_ns(const struct topo *t, const struct query *q, size_t n)
{
    uint64_t v[RUNS];

    for (int r = 0; r < RUNS; r++) {
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < n; i++)
            sink += topo_choose(t, q[i].free_mask, q[i].k, q[i].required).set;
        v[r] = now_ns() - t0;
    }
    return (double)median(v, RUNS) / (double)n;
}

/* Each query timed alone on a fresh topology: the first one per (mask, k) fills the memo. */
static void cold_ns(const struct doc *d, const struct query *q, size_t n, uint64_t *med,
                    uint64_t *p99)
{
    uint64_t *v = malloc(n * sizeof(*v));
    struct topo *t = build(d);

    if (!v)
        abort();
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        sink += topo_choose(t, q[i].free_mask, q[i].k, q[i].required).set;
        v[i] = now_ns() - t0;
    }
    qsort(v, n, sizeof(v[0]), cmp_u64);
    *med = v[n / 2];
    *p99 = v[n * 99 / 100];
    free(v);
    topo_release(t);
}

/* One call, median of RUNS, each on a fresh topology when cold. */
static uint64_t single_ns(const struct doc *d, uint32_t F, unsigned k, enum topo_class req,
                          unsigned used, bool cold)
{
    struct topo *t = build(d);
    uint64_t v[RUNS];

    for (int r = 0; r < RUNS; r++) {
        uint64_t t0;
        if (cold) {
            topo_release(t);
            t = build(d);
        }
        t0 = now_ns();
        sink += topo_choose_guaranteed(t, F, used, k, req, NULL).score;
        v[r] = now_ns() - t0;
        if (!cold && r == 0)
            v[r] = UINT64_MAX; /* the first call fills the memo */
    }
    topo_release(t);
    return median(v, RUNS);
}

enum { QUERIES = 20000 };

static void row_memo(const char *name, const struct doc *d, unsigned gpus, struct query *q)
{
    struct topo *t = build(d);
    char cold[48] = "n/a (filled at build)";
    uint64_t med, p99;

    make_queries(q, QUERIES, gpus, 99);
    if (gpus > 8) {
        cold_ns(d, q, QUERIES, &med, &p99);
        snprintf(cold, sizeof(cold), "%llu / %llu", (unsigned long long)med,
                 (unsigned long long)p99);
    }
    warm_ns(t, q, QUERIES); /* fills the memo */
    printf("| %s | %u | %.1f | %.0f | %s | %.1f |\n", name, gpus, (double)build_ns(d) / 1e3,
           warm_ns(t, q, QUERIES), cold, (double)topo_memory_bytes(t) / 1024.0);
    topo_release(t);
}

int main(void)
{
    static struct query q[QUERIES];
    struct doc dgx1, islands, mixed;

    make_doc(&dgx1, 8, link_dgx1);
    make_doc(&islands, 16, link_islands);
    make_doc(&mixed, 16, link_random);

    printf("| topology | GPUs | build us | choose warm ns | choose cold ns median / p99 | "
           "memory KiB |\n|---|---:|---:|---:|---:|---:|\n");
    row_memo("DGX-1", &dgx1, 8, q);
    row_memo("two NVLink islands", &islands, 16, q);
    row_memo("random, 6 classes", &mixed, 16, q);

    printf("\n| worst cases (16 GPUs, all free) | ns, median |\n|---|---:|\n");
    printf("| choose k=8 cold (C(16,8) = 12,870 candidates) | %llu |\n",
           (unsigned long long)single_ns(&islands, 0xFFFF, 8, TOPO_SYS, 0, true));
    printf("| choose k=8 warm | %llu |\n",
           (unsigned long long)single_ns(&islands, 0xFFFF, 8, TOPO_SYS, 0, false));
    printf("| choose k=8 at a level without memo (NODE on random: a solve per call) | %llu |\n",
           (unsigned long long)single_ns(&mixed, 0xFFFF, 8, TOPO_NODE, 0, false));
    printf("| guaranteed, 4 unknown used, k=4 cold (1,820 cases) | %llu |\n",
           (unsigned long long)single_ns(&islands, 0xFFFF, 4, TOPO_NVLINK, 4, true));
    printf("| guaranteed, 4 unknown used, k=4 warm | %llu |\n",
           (unsigned long long)single_ns(&islands, 0xFFFF, 4, TOPO_NVLINK, 4, false));
    printf("| guaranteed, 8 unknown used (conservative) | %llu |\n",
           (unsigned long long)single_ns(&islands, 0xFFFF, 4, TOPO_NVLINK, 8, false));
    return 0;
}
