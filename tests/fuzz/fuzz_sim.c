/* fuzz_sim.c -- libFuzzer target for what `gpu-extender simulate` reads from operators' files:
 * the trace CSV loaders and the snapshot reader, on any bytes; whatever loads is then run
 * through a fill on a small fixed cluster (and a snapshot's own cluster), so the engine meets
 * odd workloads too. The loaders take paths, so each input goes through one scratch file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/alloc.h"
#include "gx/policy.h"
#include "gx/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fill(const struct sim_cluster *c, const struct sim_workload *w)
{
    struct policy *pol = policy_new_default();
    struct sim_run_spec spec = {.label = "fuzz", .strategy = SIM_POLICY, .pol = pol};
    struct sim_options opt = {.mode = SIM_FILL, .seed = 1, .speedup = 1, .compress = 1};
    struct sim_result *r = xcalloc(1, sizeof(*r));

    if (w->pod_count <= 2000 && c->node_count <= 2000) {
        sim_run(c, w, &spec, &opt, r);
        if (r->placed > r->pods || r->alloc_final < 0 || r->alloc_final > 1.0 + 1e-9)
            abort();
        opt.mode = SIM_REPLAY;
        sim_run(c, w, &spec, &opt, r);
        if (r->placed + r->never_placed > r->pods + r->pods)
            abort();
    }
    free(r);
    policy_unref(pol);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static const char *const models[] = {"A100", "T4"};
    struct sim_cluster fixed = {0}, c;
    struct sim_workload w;
    struct errbuf eb = ERRBUF_INIT;
    FILE *f;

    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/gx-fuzz-sim-%d", (int)getpid());
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    fixed.nodes = xcalloc(2, sizeof(*fixed.nodes));
    fixed.node_count = 2;
    for (size_t i = 0; i < 2; i++)
        fixed.nodes[i] = (struct sim_node){
            .name = xstrdup(models[i]), .model = xstrdup(models[i]), .gpus = i ? 2 : 8};
    if (sim_load_nodes_csv(path, &c, &eb) == ERR_OK) {
        for (size_t i = 0; i < c.node_count; i++)
            if (c.nodes[i].gpus <= 0 || c.nodes[i].gpus > 4096 || !c.nodes[i].name)
                abort();
        sim_add_topologies(&c);
        sim_cluster_free(&c);
    }
    if (sim_load_pods_csv(path, false, &w, &eb) == ERR_OK) {
        for (size_t i = 0; i < w.pod_count; i++)
            if (w.pods[i].gpus <= 0 || (i && w.pods[i].t_create < w.pods[i - 1].t_create))
                abort(); /* rows asking no GPU are left out; the rest in arrival order */
        fill(&fixed, &w);
        sim_workload_free(&w);
    }
    if (sim_load_snapshot(path, &c, &w, &eb) == ERR_OK) {
        fill(&c, &w);
        fill(&fixed, &w);
        sim_workload_free(&w);
        sim_cluster_free(&c);
    }
    sim_cluster_free(&fixed);
    unlink(path);
    return 0;
}
