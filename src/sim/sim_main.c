/* sim_main.c -- `gpu-extender simulate`: flags, the columns (baselines, binpack, spread, each
 * policy file), both modes per column, and the report (markdown, JSON, gnuplot plots). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gx/alloc.h"
#include "gx/clock.h"
#include "gx/sim.h"

#define MAX_POLICIES 8
#define MAX_COLUMNS (7 + MAX_POLICIES)

static const char usage[] =
    "usage: gpu-extender simulate --nodes FILE --pods FILE [--policy FILE]... [options]\n"
    "\n"
    "Replays a workload on a cluster through gpu-extender's own filter and score, next to\n"
    "baselines (random, first fit, best fit, worst fit), binpack and spread.\n"
    "\n"
    "  --nodes FILE      the cluster: a node CSV (columns sn, gpu, model), or a snapshot\n"
    "                    (gpu-extender snapshot --kubeconfig F > cluster.json)\n"
    "  --pods FILE       the workload: a pod CSV (name, num_gpu, gpu_milli, gpu_spec,\n"
    "                    creation_time, scheduled_time, deletion_time), or a snapshot: its\n"
    "                    bound pods stay where they are, its pending pods arrive at once\n"
    "  --policy FILE     a policy file to compare (repeatable, up to 8)\n"
    "  --scarcity W      also run binpack with scoring.weights.scarcity W (1..100), the\n"
    "                    column \"binpack+scarcity\" (policy/examples/scarcity.yaml: 4)\n"
    "  --topology        give 2-, 4- and 8-GPU nodes a generated topology (DGX-1, HGX, PCIe)\n"
    "  --skip-sharing    leave out pods that ask part of a GPU (default: one whole GPU each)\n"
    "  --speedup X       divide the trace's times and durations by X (default 1)\n"
    "  --compress X      divide arrival times by X, durations unchanged: X times the load\n"
    "  --seed N          the random choices (ties, random fit); default 1\n"
    "  --no-baselines    only binpack, spread and the policies\n"
    "  --json            print the results as JSON instead of the markdown report\n"
    "  --out DIR         also write report.md, results.json and PNG plots (gnuplot) there\n";

struct column {
    struct sim_run_spec spec;
    struct sim_result fill, replay;
};

struct args {
    const char *nodes, *pods, *out;
    const char *policies[MAX_POLICIES];
    size_t policy_count;
    bool topology, skip_sharing, json, baselines;
    double speedup, compress;
    uint64_t seed;
    long scarcity; /* 0: no binpack+scarcity column */
};

static int bad_usage(const char *msg)
{
    fprintf(stderr, "gpu-extender simulate: %s\n\n%s", msg, usage);
    return 2;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.speedup = 1, .compress = 1, .seed = 1, .baselines = true};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(f, "--topology") == 0) {
            a->topology = true, takes = false;
        } else if (strcmp(f, "--skip-sharing") == 0) {
            a->skip_sharing = true, takes = false;
        } else if (strcmp(f, "--json") == 0) {
            a->json = true, takes = false;
        } else if (strcmp(f, "--no-baselines") == 0) {
            a->baselines = false, takes = false;
        } else if (!v) {
            return bad_usage("a flag is missing its value");
        } else if (strcmp(f, "--nodes") == 0) {
            a->nodes = v;
        } else if (strcmp(f, "--pods") == 0) {
            a->pods = v;
        } else if (strcmp(f, "--out") == 0) {
            a->out = v;
        } else if (strcmp(f, "--policy") == 0) {
            if (a->policy_count == MAX_POLICIES)
                return bad_usage("at most 8 --policy files");
            a->policies[a->policy_count++] = v;
        } else if (strcmp(f, "--speedup") == 0) {
            char *end;
            a->speedup = strtod(v, &end);
            if (*end || !(a->speedup > 0))
                return bad_usage("--speedup must be a positive number");
        } else if (strcmp(f, "--compress") == 0) {
            char *end;
            a->compress = strtod(v, &end);
            if (*end || !(a->compress > 0))
                return bad_usage("--compress must be a positive number");
        } else if (strcmp(f, "--scarcity") == 0) {
            char *end;
            a->scarcity = strtol(v, &end, 10);
            if (*end || a->scarcity < 1 || a->scarcity > POLICY_MAX_WEIGHT)
                return bad_usage("--scarcity must be a whole number 1..100");
        } else if (strcmp(f, "--seed") == 0) {
            char *end;
            a->seed = strtoull(v, &end, 10);
            if (*end)
                return bad_usage("--seed must be a whole number");
        } else {
            return bad_usage("unknown flag");
        }
        i += takes;
    }
    if (!a->nodes || !a->pods)
        return bad_usage("--nodes and --pods are required");
    return -1;
}

/* ---- columns ---- */

static struct policy *strategy_policy(enum policy_strategy s)
{
    struct policy *p = policy_new_default();

    p->strategy = s;
    p->default_rule.strategy = s;
    return p;
}

static size_t add(struct column *cols, size_t n, const char *label, enum sim_strategy s,
                  const struct policy *pol)
{
    cols[n].spec.strategy = s;
    cols[n].spec.pol = pol;
    snprintf(cols[n].spec.label, sizeof(cols[n].spec.label), "%s", label);
    return n + 1;
}

/* ---- the report ---- */

static const char *const bucket_names[SIM_GPU_BUCKETS] = {"1 GPU", "2-3 GPUs", "4-7 GPUs",
                                                          "8+ GPUs"};
static const int thresholds_pct[SIM_THRESHOLDS] = {70, 85, 95};

static void row_head(FILE *f, const char *name)
{
    fprintf(f, "| %s |", name);
}

static double pct(double x)
{
    return 100.0 * x;
}

/* A row of percentages: the double at offset in each column's fill or replay result. */
static void row_share(FILE *f, const char *name, const struct column *cols, size_t n, bool fill,
                      size_t offset)
{
    row_head(f, name);
    for (size_t i = 0; i < n; i++) {
        const struct sim_result *r = fill ? &cols[i].fill : &cols[i].replay;
        double v;
        memcpy(&v, (const char *)r + offset, sizeof(v));
        fprintf(f, " %.1f%% |", pct(v));
    }
    fprintf(f, "\n");
}

static void markdown(FILE *f, const struct args *a, const struct sim_cluster *c,
                     const struct sim_workload *w, const struct column *cols, size_t n)
{
    fprintf(f, "# gpu-extender simulate\n\n");
    fprintf(f, "Cluster `%s`: %zu GPU nodes, %lld GPUs%s. Workload `%s`: %zu GPU pods", a->nodes,
            c->node_count, (long long)cols[0].fill.gpus_total,
            a->topology ? ", generated topologies" : "", a->pods, w->pod_count);
    fprintf(f,
            " (%zu asking no GPU left out; GPU-sharing pods: %zu counted as one whole GPU, "
            "%zu left out). Seed %llu, speedup %g, arrivals compressed %gx.\n\n",
            w->skipped_cpu_only, w->sharing_as_whole, w->skipped_sharing,
            (unsigned long long)a->seed, a->speedup, a->compress);
    fprintf(f, "|  |");
    for (size_t i = 0; i < n; i++)
        fprintf(f, " %s |", cols[i].spec.label);
    fprintf(f, "\n|---|");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "---:|");
    fprintf(f, "\n");
    row_share(f, "**fill** (arrival order, nothing leaves): GPU allocation at the first failure",
              cols, n, true, offsetof(struct sim_result, alloc_first_fail));
    row_share(f, "fill: GPU allocation at the end", cols, n, true,
              offsetof(struct sim_result, alloc_final));
    row_head(f, "fill: GPU demand placed");
    for (size_t i = 0; i < n; i++)
        fprintf(f, " %.1f%% |",
                cols[i].fill.demand_arrived
                    ? pct((double)cols[i].fill.demand_placed / (double)cols[i].fill.demand_arrived)
                    : 0);
    fprintf(f, "\n");
    for (int b = 0; b < SIM_GPU_BUCKETS; b++) {
        char name[128];
        if (!cols[0].fill.bucket_pods[b])
            continue;
        snprintf(name, sizeof(name), "fill: %s requests placed", bucket_names[b]);
        row_head(f, name);
        for (size_t i = 0; i < n; i++)
            fprintf(
                f, " %zu/%zu (%.0f%%) |", cols[i].fill.bucket_placed[b],
                cols[i].fill.bucket_pods[b],
                pct((double)cols[i].fill.bucket_placed[b] / (double)cols[i].fill.bucket_pods[b]));
        fprintf(f, "\n");
    }
    for (int b = 2; b < SIM_GPU_BUCKETS; b++) {
        for (int t = 0; t < SIM_THRESHOLDS; t++) {
            char name[128];
            snprintf(name, sizeof(name), "fill: %s requests placed once allocation passed %d%%",
                     bucket_names[b], thresholds_pct[t]);
            row_head(f, name);
            for (size_t i = 0; i < n; i++) {
                const struct sim_result *r = &cols[i].fill;
                if (r->after_tried[b][t])
                    fprintf(f, " %zu/%zu |", r->after_placed[b][t], r->after_tried[b][t]);
                else
                    fprintf(f, " - |");
            }
            fprintf(f, "\n");
        }
    }
    if (!w->has_times) {
        fprintf(f, "\nThe workload gives no creation times: only the fill experiment applies.\n\n");
        return;
    }
    row_share(f, "**replay** (the trace's times): mean GPU allocation", cols, n, false,
              offsetof(struct sim_result, alloc_mean));
    row_head(f, "replay: pods never placed");
    for (size_t i = 0; i < n; i++)
        fprintf(f, " %zu |", cols[i].replay.never_placed);
    fprintf(f, "\n");
    for (int b = 0; b < SIM_GPU_BUCKETS; b++) {
        char name[128];
        if (!cols[0].replay.bucket_pods[b])
            continue;
        snprintf(name, sizeof(name), "replay: wait p50 / p95 / p99, %s (%zu pods), s",
                 bucket_names[b], cols[0].replay.bucket_pods[b]);
        row_head(f, name);
        for (size_t i = 0; i < n; i++)
            fprintf(f, " %.0f / %.0f / %.0f |", cols[i].replay.wait_p50[b],
                    cols[i].replay.wait_p95[b], cols[i].replay.wait_p99[b]);
        fprintf(f, "\n");
    }
    for (size_t m = 0; m < cols[0].replay.model_count; m++) {
        char name[96];
        snprintf(name, sizeof(name), "replay: utilization of %s GPUs", cols[0].replay.models[m]);
        row_head(f, name);
        for (size_t i = 0; i < n; i++)
            fprintf(f, " %.1f%% |", pct(cols[i].replay.model_util[m]));
        fprintf(f, "\n");
    }
    if (a->topology) {
        row_head(f, "replay: multi-GPU pods given the best-connected set the node has");
        for (size_t i = 0; i < n; i++)
            fprintf(f, " %zu/%zu |", cols[i].replay.topo_best, cols[i].replay.topo_pods);
        fprintf(f, "\n");
    }
    row_head(f, "events per second (replay)");
    for (size_t i = 0; i < n; i++)
        fprintf(f, " %.0f |", cols[i].replay.events_per_s);
    fprintf(f, "\n\n");
    for (size_t i = 0; i < n; i++) {
        const struct sim_run_spec *s = &cols[i].spec;
        if (s->strategy != SIM_POLICY || s->pol->rule_count == 0)
            continue;
        fprintf(f, "Pods placed per rule, `%s`:", s->label);
        for (size_t r = 0; r <= s->pol->rule_count && r < 64; r++) {
            const struct policy_rule *rule =
                r < s->pol->rule_count ? &s->pol->rules[r] : &s->pol->default_rule;
            fprintf(f, " %.*s %zu;", (int)rule->name.len, rule->name.ptr,
                    cols[i].replay.decided_by_rule[r]);
        }
        fprintf(f, "\n\n");
    }
}

static void json_result(FILE *f, const struct sim_result *r)
{
    fprintf(f,
            "{\"pods\":%zu,\"placed\":%zu,\"neverPlaced\":%zu,\"gpus\":%lld,"
            "\"demandArrived\":%lld,\"demandPlaced\":%lld,\"allocFirstFailure\":%.6f,"
            "\"allocFinal\":%.6f,\"allocMean\":%.6f,\"topologyPods\":%zu,\"topologyBest\":%zu,"
            "\"events\":%llu,\"eventsPerSecond\":%.0f,\"buckets\":[",
            r->pods, r->placed, r->never_placed, (long long)r->gpus_total,
            (long long)r->demand_arrived, (long long)r->demand_placed, r->alloc_first_fail,
            r->alloc_final, r->alloc_mean, r->topo_pods, r->topo_best,
            (unsigned long long)r->events, r->events_per_s);
    for (int b = 0; b < SIM_GPU_BUCKETS; b++) {
        fprintf(f,
                "%s{\"name\":\"%s\",\"pods\":%zu,\"placed\":%zu,\"waitP50\":%.3f,"
                "\"waitP95\":%.3f,\"waitP99\":%.3f,\"placedAfter\":[",
                b ? "," : "", bucket_names[b], r->bucket_pods[b], r->bucket_placed[b],
                r->wait_p50[b], r->wait_p95[b], r->wait_p99[b]);
        for (int t = 0; t < SIM_THRESHOLDS; t++)
            fprintf(f, "%s{\"allocation\":%d,\"tried\":%zu,\"placed\":%zu}", t ? "," : "",
                    thresholds_pct[t], r->after_tried[b][t], r->after_placed[b][t]);
        fprintf(f, "]}");
    }
    fprintf(f, "],\"models\":{");
    for (size_t m = 0; m < r->model_count; m++)
        fprintf(f, "%s\"%s\":%.6f", m ? "," : "", r->models[m], r->model_util[m]);
    fprintf(f, "}}");
}

static void json(FILE *f, const struct column *cols, size_t n)
{
    fprintf(f, "{\"columns\":[");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"label\":\"%s\",\"fill\":", i ? "," : "", cols[i].spec.label);
        json_result(f, &cols[i].fill);
        fprintf(f, ",\"replay\":");
        json_result(f, &cols[i].replay);
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
}

/* ---- plots ---- */

static bool write_series(const char *dir, const char *name, const struct column *cols, size_t n,
                         bool fill)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct sim_result *r = fill ? &cols[i].fill : &cols[i].replay;
        fprintf(f, "# %s\n", cols[i].spec.label);
        for (size_t k = 0; k < r->series_len; k++)
            fprintf(f, "%.6g %.6g\n", fill ? r->series_x[k] : r->series_x[k] / 86400.0,
                    fill ? r->series_y[k] : 100.0 * r->series_y[k]);
        fprintf(f, "\n\n");
    }
    return fclose(f) == 0;
}

/* The replay's wait CDF per column: (seconds, percent) points. */
static bool write_cdf(const char *dir, const struct column *cols, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/waits.dat", dir);
    f = fopen(path, "w");
    if (!f)
        return false;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "# %s\n", cols[i].spec.label);
        for (int p = 0; p <= 100; p++)
            fprintf(f, "%.6g %d\n",
                    cols[i].replay.wait_cdf[p] > 0.1 ? cols[i].replay.wait_cdf[p] : 0.1, p);
        fprintf(f, "\n\n");
    }
    return fclose(f) == 0;
}

/* One plot of the series in dat, a line per column. Labels lose any quote. */
static void plot(FILE *f, const char *dir, const char *png, const char *title, const char *xlabel,
                 const char *ylabel, const char *dat, const struct column *cols, size_t n)
{
    fprintf(f, "set output '%s/%s'\nset title '%s'\nset xlabel '%s'\nset ylabel '%s'\nplot ", dir,
            png, title, xlabel, ylabel);
    for (size_t i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof(label), "%s", cols[i].spec.label);
        for (char *q = label; *q; q++)
            *q = *q == '\'' ? '_' : *q;
        fprintf(f, "%s'%s/%s' index %zu with lines title '%s'", i ? ", " : "", dir, dat, i, label);
    }
    fprintf(f, "\n");
}

static void plots(const char *dir, const struct column *cols, size_t n)
{
    char path[4096], cmd[8192];
    FILE *f;

    if (strchr(dir, '\'')) {
        fprintf(stderr, "gpu-extender simulate: no plots: the --out path has a quote in it\n");
        return;
    }
    if (!write_series(dir, "alloc.dat", cols, n, false) ||
        !write_series(dir, "placed.dat", cols, n, true) || !write_cdf(dir, cols, n))
        return;
    snprintf(path, sizeof(path), "%s/plots.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "set terminal pngcairo size 1000,600\nset key outside right\nset grid\n");
    plot(f, dir, "allocation.png", "GPU allocation over time (replay)", "days",
         "% of GPUs allocated", "alloc.dat", cols, n);
    plot(f, dir, "placed.png", "GPU demand placed as the cluster fills",
         "GPUs asked (arrival order)", "GPUs placed", "placed.dat", cols, n);
    fprintf(f, "set logscale x\n");
    plot(f, dir, "waits.png", "Waiting time, every pod placed (replay; CDF)",
         "seconds waited (log scale; 0 drawn at 0.1)", "% of pods", "waits.dat", cols, n);
    fprintf(f, "\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>/dev/null", path);
    if (system(cmd) != 0)
        fprintf(stderr,
                "gpu-extender simulate: gnuplot did not draw the plots (is it installed?)\n");
}

static bool write_file(const char *dir, const char *name, const struct args *a,
                       const struct sim_cluster *c, const struct sim_workload *w,
                       const struct column *cols, size_t n, bool as_json)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "gpu-extender simulate: %s: %s\n", path, strerror(errno));
        return false;
    }
    if (as_json)
        json(f, cols, n);
    else
        markdown(f, a, c, w, cols, n);
    return fclose(f) == 0;
}

/* ---- main ---- */

/* --nodes and --pods: the trace's CSVs, or a snapshot (the same file, or either one). */
static bool load_inputs(const struct args *a, struct sim_cluster *c, struct sim_workload *w,
                        struct errbuf *eb)
{
    struct sim_cluster spare_c;
    bool same = strcmp(a->nodes, a->pods) == 0;

    if (sim_is_snapshot(a->nodes)) {
        if (sim_load_snapshot(a->nodes, c, w, eb) != ERR_OK)
            return false;
        if (same)
            return true;
        sim_workload_free(w);
    } else if (sim_load_nodes_csv(a->nodes, c, eb) != ERR_OK) {
        return false;
    }
    if (sim_is_snapshot(a->pods)) {
        if (sim_load_snapshot(a->pods, &spare_c, w, eb) == ERR_OK) {
            sim_cluster_free(&spare_c);
            return true;
        }
    } else if (sim_load_pods_csv(a->pods, a->skip_sharing, w, eb) == ERR_OK) {
        return true;
    }
    sim_cluster_free(c);
    return false;
}

int sim_main(int argc, char **argv)
{
    struct policy *owned[MAX_POLICIES + 3] = {0};
    struct column *cols = xcalloc(MAX_COLUMNS, sizeof(*cols));
    struct sim_cluster cluster;
    struct sim_workload work;
    struct errbuf eb = ERRBUF_INIT;
    struct args a;
    size_t n = 0, npol = 0;
    int rc = parse_args(argc, argv, &a);

    if (rc >= 0) {
        free(cols);
        return rc;
    }
    if (!load_inputs(&a, &cluster, &work, &eb)) {
        fprintf(stderr, "gpu-extender simulate: %s\n", eb.msg);
        free(cols);
        return 1;
    }
    if (a.topology)
        sim_add_topologies(&cluster);
    owned[npol++] = strategy_policy(POLICY_BINPACK);
    owned[npol++] = strategy_policy(POLICY_SPREAD);
    if (a.baselines) {
        n = add(cols, n, "random", SIM_RANDOM, owned[0]);
        n = add(cols, n, "first fit", SIM_FIRST_FIT, owned[0]);
        n = add(cols, n, "best fit", SIM_BEST_FIT, owned[0]);
        n = add(cols, n, "worst fit", SIM_WORST_FIT, owned[0]);
    }
    n = add(cols, n, "binpack", SIM_POLICY, owned[0]);
    n = add(cols, n, "spread", SIM_POLICY, owned[1]);
    if (a.scarcity) {
        owned[npol] = strategy_policy(POLICY_BINPACK);
        owned[npol]->weight_scarcity = a.scarcity;
        n = add(cols, n, "binpack+scarcity", SIM_POLICY, owned[npol++]);
    }
    for (size_t i = 0; i < a.policy_count; i++) {
        struct policy_diag diag = {0};
        if (policy_load(a.policies[i], &owned[npol], &diag) != ERR_OK) {
            for (size_t d = 0; d < diag.count; d++)
                fprintf(stderr, "%s\n", diag.msgs[d]);
            rc = 1;
            goto out;
        }
        n = add(cols, n, a.policies[i], SIM_POLICY, owned[npol++]);
    }
    for (size_t i = 0; i < n; i++) {
        struct sim_options fill = {
            .mode = SIM_FILL, .seed = a.seed, .speedup = a.speedup, .compress = a.compress};
        struct sim_options replay = {
            .mode = SIM_REPLAY, .seed = a.seed, .speedup = a.speedup, .compress = a.compress};
        sim_run(&cluster, &work, &cols[i].spec, &fill, &cols[i].fill);
        if (work.has_times)
            sim_run(&cluster, &work, &cols[i].spec, &replay, &cols[i].replay);
        fprintf(stderr, "gpu-extender simulate: %s: %llu events, %.0f events/s\n",
                cols[i].spec.label, (unsigned long long)cols[i].replay.events,
                cols[i].replay.events_per_s);
    }
    if (a.json)
        json(stdout, cols, n);
    else
        markdown(stdout, &a, &cluster, &work, cols, n);
    rc = 0;
    if (a.out) {
        if (mkdir(a.out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "gpu-extender simulate: %s: %s\n", a.out, strerror(errno));
            rc = 1;
        } else if (!write_file(a.out, "report.md", &a, &cluster, &work, cols, n, false) ||
                   !write_file(a.out, "results.json", &a, &cluster, &work, cols, n, true)) {
            rc = 1;
        } else {
            plots(a.out, cols, n);
        }
    }
out:
    for (size_t i = 0; i < npol; i++)
        policy_unref(owned[i]);
    sim_workload_free(&work);
    sim_cluster_free(&cluster);
    free(cols);
    return rc;
}
