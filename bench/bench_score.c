/* bench_score.c -- what scoring costs per node, with and without the model-scarcity part, and
 * what building a demand table costs: sched_score_node() over a count-only cluster of N nodes
 * of eight GPU models (no decoding, no encoding, no cache), and sched_demand_*() over G groups
 * of constrained pods.
 *
 *   bench_score [--nodes N] [--groups G] [--runs R]   median and best of R runs, ns per node
 *   bench_score --callgrind MODE                      one pass of MODE (off, scarcity, table)
 *                                                     through measured_pass(), for valgrind
 *       --tool=callgrind --collect-atstart=no --toggle-collect=measured_pass
 *
 * The pod asks one GPU and accepts any model; the demand puts T4 and L40S well above the
 * others, so the part applies to every node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/policy.h"
#include "gx/sched.h"

static const char *const products[] = {"NVIDIA-H100-80GB-HBM3",
                                       "NVIDIA-A100-SXM4-80GB",
                                       "NVIDIA-L40S",
                                       "Tesla-T4",
                                       "NVIDIA-A10",
                                       "NVIDIA-L4",
                                       "Tesla-V100-SXM2-16GB",
                                       "NVIDIA-A100-SXM4-40GB"};
static const char *const wants[] = {"T4", "L40S", "H100,A100", "T4,L40S", "A10,L4", "V100"};

enum mode { MODE_OFF, MODE_SCARCITY, MODE_TABLE };

struct setup {
    struct node_info *infos;
    struct sched_node *nodes;
    size_t n, groups;
    struct policy *off, *on;
    struct sched_demand table;
    int sink;
};

static void setup_init(struct setup *s, size_t n, size_t groups)
{
    s->n = n;
    s->groups = groups;
    s->infos = xcalloc(n, sizeof(*s->infos));
    s->nodes = xcalloc(n, sizeof(*s->nodes));
    for (size_t i = 0; i < n; i++) {
        struct node_info *info = &s->infos[i];
        info->name = STR_LIT("node");
        info->product = str_from_cstr(products[i % 8]);
        info->model = info->product;
        info->gpu_allocatable = i % 8 == 3 ? 4 : 8;
        info->ready = true;
        s->nodes[i] = (struct sched_node){.info = info, .used = (int64_t)(i % 4)};
    }
    s->off = policy_new_default();
    s->on = policy_new_default();
    s->on->weight_scarcity = 4;
}

/* The table a daemon builds once per cache change: every node's model, then each group's
 * allowed models. */
static void build_table(struct setup *s, struct sched_demand *d)
{
    struct errbuf eb = ERRBUF_INIT;

    sched_demand_init(d);
    for (size_t i = 0; i < 8 && i < s->n; i++)
        sched_demand_add_node(d, &s->infos[i]);
    for (size_t g = 0; g < s->groups; g++) {
        struct pod_info p = {.ns = STR_LIT("ns"), .gpus = 1 + (int64_t)(g % 3)};
        struct sched_pod sp;
        p.ann_gpu_model = str_from_cstr(wants[g % 6]);
        if (sched_pod_prepare(&sp, &p, s->on, &eb))
            sched_demand_add(d, sched_demand_allowed(d, &sp), p.gpus * 40);
    }
    sched_demand_finish(d);
}

/* Kept out of line: callgrind counts instructions under this symbol only. */
__attribute__((noinline)) void measured_pass(struct setup *s, enum mode m);
__attribute__((noinline)) void measured_pass(struct setup *s, enum mode m)
{
    struct pod_info p = {.ns = STR_LIT("ns"), .name = STR_LIT("p"), .gpus = 1};
    struct errbuf eb = ERRBUF_INIT;
    struct sched_pod sp;
    int sum = 0;

    if (m == MODE_TABLE) {
        build_table(s, &s->table);
        s->sink += (int)s->table.model_count;
        return;
    }
    if (!sched_pod_prepare(&sp, &p, m == MODE_OFF ? s->off : s->on, &eb))
        exit(1);
    sched_pod_use_demand(&sp, m == MODE_OFF ? NULL : &s->table);
    if (m == MODE_SCARCITY && !sp.demand)
        exit(1);
    for (size_t i = 0; i < s->n; i++)
        sum += sched_score_node(&sp, &s->nodes[i]).score;
    s->sink += sum;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static void time_mode(struct setup *s, enum mode m, const char *name, int runs, size_t per)
{
    uint64_t *t = xcalloc((size_t)runs, sizeof(*t));
    double median;
    size_t mid;

    measured_pass(s, m); /* warm-up */
    for (int i = 0; i < runs; i++) {
        uint64_t t0 = clock_mono_ns();
        measured_pass(s, m);
        t[i] = clock_mono_ns() - t0;
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_u64);
    mid = (size_t)runs / 2;
    median = (double)t[mid];
    printf("%-9s median %8.1f us  best %8.1f us  %6.1f ns per %s (median), %6.1f (best)\n", name,
           median / 1e3, (double)t[0] / 1e3, median / (double)per,
           m == MODE_TABLE ? "group" : "node", (double)t[0] / (double)per);
    free(t);
}

int main(int argc, char **argv)
{
    size_t n = 5000, groups = 64;
    int runs = 201;
    const char *callgrind = NULL;
    struct setup s = {0};

    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--nodes") && v)
            n = (size_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--groups") && v)
            groups = (size_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && v)
            runs = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--callgrind") && v)
            callgrind = argv[++i];
        else {
            fprintf(stderr, "usage: bench_score [--nodes N] [--groups G] [--runs R] "
                            "[--callgrind off|scarcity|table]\n");
            return 2;
        }
    }
    if (n < 8 || runs < 1) {
        fprintf(stderr, "bench_score: at least 8 nodes and 1 run\n");
        return 2;
    }
    setup_init(&s, n, groups);
    build_table(&s, &s.table);
    if (callgrind) {
        enum mode m = !strcmp(callgrind, "off")        ? MODE_OFF
                      : !strcmp(callgrind, "scarcity") ? MODE_SCARCITY
                                                       : MODE_TABLE;
        measured_pass(&s, m);
    } else {
        printf("sched_score_node on %zu nodes of 8 models; a table of %zu groups, %d runs\n", n,
               groups, runs);
        for (int round = 0; round < 3; round++) {
            time_mode(&s, MODE_OFF, "off", runs, n);
            time_mode(&s, MODE_SCARCITY, "scarcity", runs, n);
        }
        time_mode(&s, MODE_TABLE, "table", runs, groups);
    }
    policy_unref(s.off);
    policy_unref(s.on);
    free(s.infos);
    free(s.nodes);
    return s.sink == -1;
}
