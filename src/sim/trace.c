/* trace.c -- the cluster and workload a simulation replays (see sim.h): the public traces'
 * CSV files (../shared/traces/README.md), and generated topologies for their nodes.
 *
 * The CSVs are plain: a header naming the columns, then comma-separated values without quotes
 * (the traces have none). Columns are found by name, so their order does not matter. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/sim.h"

/* Longest line read; the traces' lines are under 200 bytes. */
#define LINE_MAX_BYTES 4096
#define MAX_COLUMNS 32

struct csv {
    FILE *f;
    const char *path;
    size_t line_no;
    char line[LINE_MAX_BYTES];
    char *cols[MAX_COLUMNS];
    size_t ncols;
    char header[MAX_COLUMNS][32];
    size_t nheader;
};

/* Reads the next line and splits it at commas. 1: a row; 0: end of file; -1: an error. */
static int csv_next(struct csv *c, struct errbuf *eb)
{
    size_t len;
    char *p;

    if (!fgets(c->line, sizeof(c->line), c->f))
        return 0;
    c->line_no++;
    len = strlen(c->line);
    if (len == sizeof(c->line) - 1 && c->line[len - 1] != '\n') {
        errbuf_set(eb, "%s:%zu: line longer than %d bytes", c->path, c->line_no,
                   LINE_MAX_BYTES - 1);
        return -1;
    }
    while (len && (c->line[len - 1] == '\n' || c->line[len - 1] == '\r'))
        c->line[--len] = '\0';
    c->ncols = 0;
    p = c->line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (c->ncols == MAX_COLUMNS) {
            errbuf_set(eb, "%s:%zu: more than %d columns", c->path, c->line_no, MAX_COLUMNS);
            return -1;
        }
        c->cols[c->ncols++] = p;
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return 1;
}

static enum err csv_open(struct csv *c, const char *path, struct errbuf *eb)
{
    int r;

    memset(c, 0, sizeof(*c));
    c->path = path;
    c->f = fopen(path, "r");
    if (!c->f) {
        errbuf_set(eb, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    r = csv_next(c, eb);
    if (r <= 0) {
        if (r == 0)
            errbuf_set(eb, "%s: empty file (a header line is needed)", path);
        fclose(c->f);
        return ERR_PARSE;
    }
    for (size_t i = 0; i < c->ncols; i++)
        snprintf(c->header[i], sizeof(c->header[i]), "%s", c->cols[i]);
    c->nheader = c->ncols;
    return ERR_OK;
}

/* The column named name, or -1. */
static int csv_column(const struct csv *c, const char *name)
{
    for (size_t i = 0; i < c->nheader; i++)
        if (strcmp(c->header[i], name) == 0)
            return (int)i;
    return -1;
}

static const char *cell(const struct csv *c, int col)
{
    return col >= 0 && (size_t)col < c->ncols ? c->cols[col] : "";
}

static bool parse_number(const char *s, double *out)
{
    char *end;

    if (!*s)
        return false;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && *end == '\0';
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 1024;
    return xrealloc(p, *cap * size);
}

enum err sim_load_nodes_csv(const char *path, struct sim_cluster *out, struct errbuf *eb)
{
    struct csv c;
    int name_col, gpu_col, model_col, r;
    size_t cap = 0;
    enum err e = csv_open(&c, path, eb);

    memset(out, 0, sizeof(*out));
    if (e != ERR_OK)
        return e;
    name_col = csv_column(&c, "sn");
    gpu_col = csv_column(&c, "gpu");
    model_col = csv_column(&c, "model");
    if (name_col < 0 || gpu_col < 0 || model_col < 0) {
        errbuf_set(eb, "%s: the header must name the columns sn, gpu and model", path);
        fclose(c.f);
        return ERR_PARSE;
    }
    while ((r = csv_next(&c, eb)) == 1) {
        double gpus;
        struct sim_node *n;
        if (!parse_number(cell(&c, gpu_col), &gpus) || gpus < 0 || gpus > 4096 ||
            gpus != (double)(int64_t)gpus) {
            errbuf_set(eb, "%s:%zu: gpu is not a whole number in 0..4096", path, c.line_no);
            r = -1;
            break;
        }
        if (gpus == 0)
            continue;
        if (!*cell(&c, name_col)) {
            errbuf_set(eb, "%s:%zu: sn (the node's name) is empty", path, c.line_no);
            r = -1;
            break;
        }
        out->nodes = grow(out->nodes, &cap, out->node_count, sizeof(*out->nodes));
        n = &out->nodes[out->node_count++];
        *n = (struct sim_node){.name = xstrdup(cell(&c, name_col)),
                               .model = xstrdup(cell(&c, model_col)),
                               .gpus = (int64_t)gpus};
    }
    fclose(c.f);
    if (r < 0) {
        sim_cluster_free(out);
        return ERR_PARSE;
    }
    return ERR_OK;
}

/* gpu_spec "V100M16|V100M32" is a comma list for gpu-extender.io/gpu-model. */
static char *models_of(const char *spec)
{
    char *m = xstrdup(spec);

    for (char *p = m; *p; p++)
        if (*p == '|')
            *p = ',';
    return m;
}

struct pod_cols {
    int name, gpus, milli, spec, create, sched, del;
};

static bool pod_row(const struct csv *c, const struct pod_cols *k, struct sim_pod *p, bool *sharing,
                    struct errbuf *eb)
{
    double gpus = 0, milli = 1000, create = (double)c->line_no, sched, del = -1;

    if (!parse_number(cell(c, k->gpus), &gpus) || gpus < 0 || gpus > 4096 ||
        gpus != (double)(int64_t)gpus ||
        (k->milli >= 0 && *cell(c, k->milli) && !parse_number(cell(c, k->milli), &milli)) ||
        (k->create >= 0 && (!parse_number(cell(c, k->create), &create) || create < 0)) ||
        (*cell(c, k->del) && !parse_number(cell(c, k->del), &del))) {
        errbuf_set(eb, "%s:%zu: num_gpu, gpu_milli, creation_time or deletion_time is not a number",
                   c->path, c->line_no);
        return false;
    }
    if (!(k->sched >= 0 && parse_number(cell(c, k->sched), &sched)))
        sched = create; /* never scheduled in the trace: it would have run from its arrival */
    *sharing = gpus == 1 && milli < 1000;
    *p = (struct sim_pod){.gpus = (int64_t)gpus,
                          .sharing = *sharing,
                          .t_create = create,
                          .t_delete = del,
                          .duration = k->create < 0  ? INFINITY
                                      : del >= sched ? del - sched
                                                     : 0};
    return true;
}

enum err sim_load_pods_csv(const char *path, bool skip_sharing, struct sim_workload *out,
                           struct errbuf *eb)
{
    struct pod_cols k;
    struct csv c;
    size_t cap = 0;
    int r;
    enum err e = csv_open(&c, path, eb);

    memset(out, 0, sizeof(*out));
    if (e != ERR_OK)
        return e;
    k = (struct pod_cols){csv_column(&c, "name"),          csv_column(&c, "num_gpu"),
                          csv_column(&c, "gpu_milli"),     csv_column(&c, "gpu_spec"),
                          csv_column(&c, "creation_time"), csv_column(&c, "scheduled_time"),
                          csv_column(&c, "deletion_time")};
    out->has_times = k.create >= 0;
    if (k.name < 0 || k.gpus < 0) {
        errbuf_set(eb, "%s: the header must name at least the columns name and num_gpu", path);
        fclose(c.f);
        return ERR_PARSE;
    }
    while ((r = csv_next(&c, eb)) == 1) {
        struct sim_pod p;
        bool sharing;
        if (!pod_row(&c, &k, &p, &sharing, eb)) {
            r = -1;
            break;
        }
        if (p.gpus == 0) {
            out->skipped_cpu_only++;
            continue;
        }
        if (sharing && skip_sharing) {
            out->skipped_sharing++;
            continue;
        }
        out->sharing_as_whole += sharing;
        p.name = xstrdup(cell(&c, k.name));
        p.models = models_of(cell(&c, k.spec));
        out->pods = grow(out->pods, &cap, out->pod_count, sizeof(*out->pods));
        out->pods[out->pod_count++] = p;
    }
    fclose(c.f);
    if (r < 0) {
        sim_workload_free(out);
        return ERR_PARSE;
    }
    /* Arrival order (stable: equal times keep the file's order). */
    for (size_t i = 1; i < out->pod_count; i++) {
        struct sim_pod x = out->pods[i];
        size_t j = i;
        while (j > 0 && out->pods[j - 1].t_create > x.t_create) {
            out->pods[j] = out->pods[j - 1];
            j--;
        }
        out->pods[j] = x;
    }
    return ERR_OK;
}

void sim_cluster_free(struct sim_cluster *c)
{
    for (size_t i = 0; i < c->node_count; i++) {
        free(c->nodes[i].name);
        free(c->nodes[i].model);
        topo_release(c->nodes[i].topo);
    }
    free(c->nodes);
    memset(c, 0, sizeof(*c));
}

void sim_workload_free(struct sim_workload *w)
{
    for (size_t i = 0; i < w->pod_count; i++) {
        free(w->pods[i].name);
        free(w->pods[i].models);
        free(w->pods[i].node);
    }
    free(w->pods);
    memset(w, 0, sizeof(*w));
}

/* ---- generated topologies ---- */

/* Appends a link to a topology document. */
static void link_add(char *doc, size_t cap, size_t *len, unsigned a, unsigned b, const char *kind)
{
    int n = snprintf(doc + *len, cap - *len, "%s[%u,%u,\"%s\"]", doc[*len - 1] == '[' ? "" : ",", a,
                     b, kind);

    if (n > 0 && (size_t)n < cap - *len)
        *len += (size_t)n;
}

/* The link between a and b of an n-GPU node of shape s. */
static const char *link_of(int shape, unsigned n, unsigned a, unsigned b)
{
    /* DGX-1 (V100): hybrid cube mesh; NV2 pairs, NV1 pairs, the rest across the SMP link. */
    static const char *const dgx1[8][8] = {{0, "NV1", "NV1", "NV2", "NV2", "SYS", "SYS", "SYS"},
                                           {0, 0, "NV2", "NV1", "SYS", "NV2", "SYS", "SYS"},
                                           {0, 0, 0, "NV2", "SYS", "SYS", "NV1", "SYS"},
                                           {0, 0, 0, 0, "SYS", "SYS", "SYS", "NV1"},
                                           {0, 0, 0, 0, 0, "NV1", "NV1", "NV2"},
                                           {0, 0, 0, 0, 0, 0, "NV2", "NV1"},
                                           {0, 0, 0, 0, 0, 0, 0, "NV2"},
                                           {0}};

    if (n == 8 && shape == 0)
        return dgx1[a][b];
    if (n == 8 && shape == 1)
        return "NV12"; /* HGX: every pair through NVSwitch */
    if (n == 8)        /* PCIe: pairs on a switch, quads on a NUMA node */
        return a / 2 == b / 2 ? "PIX" : a / 4 == b / 4 ? "NODE" : "SYS";
    if (n == 4)
        return a / 2 == b / 2 ? "NV2" : "SYS";
    return "PIX";
}

/* A stable bit of a node's name: how generated 8-GPU nodes split between HGX and PCIe. */
static unsigned name_parity(const char *name)
{
    size_t n = strlen(name);

    return (unsigned)(n + (n ? (unsigned char)name[n - 1] : 0)) % 2;
}

void sim_add_topologies(struct sim_cluster *c)
{
    /* One topology per shape, shared by its nodes (as the daemon's cache shares identical
     * annotations): [shape][n / 2 - 1] for n = 2, 4, 8. */
    struct topo *made[3][4] = {{0}};

    for (size_t i = 0; i < c->node_count; i++) {
        struct sim_node *node = &c->nodes[i];
        unsigned n = (unsigned)node->gpus;
        char doc[4096];
        size_t len;
        int shape;
        struct errbuf eb = ERRBUF_INIT;

        if (node->topo || (n != 2 && n != 4 && n != 8))
            continue;
        /* V100 and P100 generations were DGX-1 shaped; the rest of the 8-GPU nodes split
         * between HGX and PCIe servers by name, deterministically. */
        if (n != 8 || strstr(node->model, "V100") || strstr(node->model, "P100"))
            shape = 0; /* 2- and 4-GPU nodes have one shape each */
        else
            shape = name_parity(node->name) ? 1 : 2;
        if (made[shape][n / 2 - 1]) {
            node->topo = topo_acquire(made[shape][n / 2 - 1]);
            continue;
        }
        len = (size_t)snprintf(doc, sizeof(doc), "{\"gpus\":[");
        for (unsigned g = 0; g < n; g++)
            len +=
                (size_t)snprintf(doc + len, sizeof(doc) - len, "%s{\"index\":%u}", g ? "," : "", g);
        len += (size_t)snprintf(doc + len, sizeof(doc) - len, "],\"links\":[");
        for (unsigned a = 0; a < n; a++)
            for (unsigned b = a + 1; b < n; b++)
                link_add(doc, sizeof(doc), &len, a, b, link_of(shape, n, a, b));
        len += (size_t)snprintf(doc + len, sizeof(doc) - len, "]}");
        if (topo_parse(doc, len, &node->topo, &eb) != ERR_OK)
            node->topo = NULL; /* cannot happen for these shapes; count-only then */
        made[shape][n / 2 - 1] = node->topo;
    }
}
