/* metrics.c -- lock-free counters and fixed-bucket histograms, formatted on demand. */
#include "gx/metrics.h"

#include <stdatomic.h>
#include <string.h>

#include "gx/compiler.h"

static const double bucket_le_seconds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
#define BUCKETS (sizeof(bucket_le_seconds) / sizeof(bucket_le_seconds[0]))

/* API server statuses we break bind results down by; anything else is "other". */
static const long bind_statuses[] = {0, 200, 201, 400, 401, 403, 404, 409, 422, 429, 500, 503};
#define BIND_STATUSES (sizeof(bind_statuses) / sizeof(bind_statuses[0]))

static const char *const verb_names[] = {
#define METRICS_VERB_NAME(name, text) text,
    METRICS_VERB_MAP(METRICS_VERB_NAME)
#undef METRICS_VERB_NAME
};
static const char *const outcome_names[] = {
#define METRICS_OUTCOME_NAME(name, text) text,
    METRICS_OUTCOME_MAP(METRICS_OUTCOME_NAME)
#undef METRICS_OUTCOME_NAME
};
static const struct {
    const char *name;
    const char *help;
} counter_defs[] = {
#define METRICS_COUNTER_DEF(name, metric, help) {metric, help},
    METRICS_COUNTER_MAP(METRICS_COUNTER_DEF)
#undef METRICS_COUNTER_DEF
};

static const struct {
    const char *name;
    const char *help;
} gauge_defs[] = {
#define METRICS_GAUGE_DEF(name, metric, help) {metric, help},
    METRICS_GAUGE_MAP(METRICS_GAUGE_DEF)
#undef METRICS_GAUGE_DEF
};

static const struct {
    const char *name;
    const char *type;
    int decimals;
    const char *help;
} cache_defs[] = {
#define METRICS_CACHE_DEF(name, metric, type, decimals, help) {metric, type, decimals, help},
    METRICS_CACHE_MAP(METRICS_CACHE_DEF)
#undef METRICS_CACHE_DEF
};

struct histogram {
    atomic_uint_fast64_t buckets[BUCKETS + 1]; /* last one is +Inf */
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
};

static struct {
    atomic_uint_fast64_t requests[METRICS_VERB_COUNT][METRICS_OUTCOME_COUNT];
    struct histogram duration[METRICS_VERB_COUNT];
    atomic_uint_fast64_t counters[METRICS_COUNTER_COUNT];
    atomic_int_fast64_t gauges[METRICS_GAUGE_COUNT];
    atomic_uint_fast64_t binds[2][BIND_STATUSES + 1];
} reg;

void metrics_reset(void)
{
    memset(&reg, 0, sizeof(reg));
}

void metrics_request_observe(enum metrics_verb verb, enum metrics_outcome outcome,
                             uint64_t duration_ns)
{
    struct histogram *h = &reg.duration[verb];
    double seconds = (double)duration_ns / 1e9;
    size_t i = 0;

    atomic_fetch_add_explicit(&reg.requests[verb][outcome], 1, memory_order_relaxed);
    while (i < BUCKETS && seconds > bucket_le_seconds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, duration_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void metrics_counter_add(enum metrics_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&reg.counters[c], n, memory_order_relaxed);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
    atomic_fetch_add_explicit(&reg.gauges[g], delta, memory_order_relaxed);
}

int64_t metrics_gauge_get(enum metrics_gauge g)
{
    return atomic_load_explicit(&reg.gauges[g], memory_order_relaxed);
}

uint64_t metrics_counter_get(enum metrics_counter c)
{
    return atomic_load_explicit(&reg.counters[c], memory_order_relaxed);
}

uint64_t metrics_requests_get(enum metrics_verb verb, enum metrics_outcome outcome)
{
    return atomic_load_explicit(&reg.requests[verb][outcome], memory_order_relaxed);
}

void metrics_bind_observe(int success, long api_status)
{
    size_t i = 0;

    while (i < BIND_STATUSES && bind_statuses[i] != api_status)
        i++;
    atomic_fetch_add_explicit(&reg.binds[success ? 1 : 0][i], 1, memory_order_relaxed);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static enum err format_requests(struct buf *out)
{
    enum err e = buf_append_str(out, "# HELP gpu_extender_requests_total Extender HTTP requests "
                                     "by verb and outcome.\n"
                                     "# TYPE gpu_extender_requests_total counter\n");

    for (size_t v = 0; v < METRICS_VERB_COUNT && e == ERR_OK; v++) {
        for (size_t o = 0; o < METRICS_OUTCOME_COUNT && e == ERR_OK; o++) {
            e = buf_printf(out, "gpu_extender_requests_total{verb=\"%s\",outcome=\"%s\"} %lu\n",
                           verb_names[v], outcome_names[o],
                           (unsigned long)load(&reg.requests[v][o]));
        }
    }
    return e;
}

static enum err format_histogram(struct buf *out, const char *verb, struct histogram *h)
{
    uint64_t cumulative = 0;
    enum err e = ERR_OK;

    for (size_t i = 0; i < BUCKETS && e == ERR_OK; i++) {
        cumulative += load(&h->buckets[i]);
        e = buf_printf(out,
                       "gpu_extender_request_duration_seconds_bucket{verb=\"%s\",le=\"%g\"} %lu\n",
                       verb, bucket_le_seconds[i], (unsigned long)cumulative);
    }
    cumulative += load(&h->buckets[BUCKETS]);
    if (e == ERR_OK)
        e = buf_printf(out,
                       "gpu_extender_request_duration_seconds_bucket{verb=\"%s\",le=\"+Inf\"} %lu\n"
                       "gpu_extender_request_duration_seconds_sum{verb=\"%s\"} %.9f\n"
                       "gpu_extender_request_duration_seconds_count{verb=\"%s\"} %lu\n",
                       verb, (unsigned long)cumulative, verb, (double)load(&h->sum_ns) / 1e9, verb,
                       (unsigned long)load(&h->count));
    return e;
}

static enum err format_binds(struct buf *out)
{
    enum err e = buf_append_str(out, "# HELP gpu_extender_bind_total Bind results by API server "
                                     "HTTP status (0: no answer).\n"
                                     "# TYPE gpu_extender_bind_total counter\n");

    for (int s = 0; s < 2 && e == ERR_OK; s++) {
        for (size_t i = 0; i <= BIND_STATUSES && e == ERR_OK; i++) {
            uint64_t n = load(&reg.binds[s][i]);
            if (n == 0)
                continue;
            if (i < BIND_STATUSES)
                e = buf_printf(out, "gpu_extender_bind_total{result=\"%s\",status=\"%ld\"} %lu\n",
                               s ? "success" : "error", bind_statuses[i], (unsigned long)n);
            else
                e = buf_printf(out, "gpu_extender_bind_total{result=\"%s\",status=\"other\"} %lu\n",
                               s ? "success" : "error", (unsigned long)n);
        }
    }
    return e;
}

enum err metrics_format(struct buf *out)
{
    enum err e = format_requests(out);

    if (e == ERR_OK)
        e = buf_append_str(out, "# HELP gpu_extender_request_duration_seconds Time from the "
                                "first byte of a request to its reply.\n"
                                "# TYPE gpu_extender_request_duration_seconds histogram\n");
    for (size_t v = 0; v < METRICS_VERB_COUNT && e == ERR_OK; v++)
        e = format_histogram(out, verb_names[v], &reg.duration[v]);
    if (e == ERR_OK)
        e = format_binds(out);
    for (size_t c = 0; c < METRICS_COUNTER_COUNT && e == ERR_OK; c++) {
        e = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", counter_defs[c].name,
                       counter_defs[c].help, counter_defs[c].name, counter_defs[c].name,
                       (unsigned long)load(&reg.counters[c]));
    }
    for (size_t g = 0; g < METRICS_GAUGE_COUNT && e == ERR_OK; g++) {
        e = buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_defs[g].name,
                       gauge_defs[g].help, gauge_defs[g].name, gauge_defs[g].name,
                       (long long)atomic_load_explicit(&reg.gauges[g], memory_order_relaxed));
    }
    return e;
}

/* A label value: backslash, double quote and line feed escaped. */
static enum err append_label_value(struct buf *out, struct str v)
{
    enum err e = ERR_OK;

    for (size_t i = 0; i < v.len && e == ERR_OK; i++) {
        char c = v.ptr[i];
        e = c == '\\'   ? buf_append(out, "\\\\", 2)
            : c == '"'  ? buf_append(out, "\\\"", 2)
            : c == '\n' ? buf_append(out, "\\n", 2)
                        : buf_append(out, &c, 1);
    }
    return e;
}

enum err metrics_format_models(struct buf *out, const struct metrics_model *models, size_t count)
{
    static const struct {
        const char *name, *help;
    } defs[] = {
        {"gpu_extender_model_gpus", "GPUs of each model in the cluster cache"},
        {"gpu_extender_model_scarcity",
         "Demand of the GPU pods that may use only some models, per GPU of the model, as the "
         "scarcity part weighs it (1: they could fill it)"},
    };
    enum err e = ERR_OK;

    if (count == 0)
        return ERR_OK;
    for (size_t d = 0; d < GX_ARRAY_LEN(defs) && e == ERR_OK; d++) {
        e = buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", defs[d].name, defs[d].help,
                       defs[d].name);
        for (size_t i = 0; i < count && e == ERR_OK; i++) {
            e = buf_printf(out, "%s{model=\"", defs[d].name);
            if (e == ERR_OK)
                e = append_label_value(out, models[i].name);
            if (e == ERR_OK)
                e = buf_printf(out, "\"} %.6g\n", d == 0 ? models[i].gpus : models[i].scarcity);
        }
    }
    return e;
}

enum err metrics_format_cache(struct buf *out, const double values[METRICS_CACHE_COUNT])
{
    enum err e = ERR_OK;

    for (size_t i = 0; i < METRICS_CACHE_COUNT && e == ERR_OK; i++) {
        e = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.*f\n", cache_defs[i].name,
                       cache_defs[i].help, cache_defs[i].name, cache_defs[i].type,
                       cache_defs[i].name, cache_defs[i].decimals, values[i]);
    }
    return e;
}
