/* sched.c -- filter and score decisions (see sched.h). */
#include "gx/sched.h"

#include <string.h>

static const char *const reason_text[] = {
#define SCHED_REASON_TEXT(name, text) text,
    SCHED_REASON_MAP(SCHED_REASON_TEXT)
#undef SCHED_REASON_TEXT
};

#define PPM 1000000

static bool is_token_edge(struct str model, size_t pos)
{
    return pos == 0 || pos == model.len || model.ptr[pos] == '-' || model.ptr[pos - 1] == '-';
}

bool sched_model_matches(struct str entry, struct str model)
{
    entry = str_trim(entry);
    if (entry.len == 0 || entry.len > model.len)
        return false;
    for (size_t i = 0; i + entry.len <= model.len; i++) {
        if (!(i == 0 || model.ptr[i - 1] == '-'))
            continue;
        if (!is_token_edge(model, i + entry.len))
            continue;
        if (str_ieq((struct str){model.ptr + i, entry.len}, entry))
            return true;
    }
    return false;
}

int sched_model_list_find(struct str list, struct str model, bool substring)
{
    struct str item;
    int idx = 0;

    while (str_split(&list, ',', &item)) {
        item = str_trim(item);
        if (item.len == 0)
            continue;
        if (substring ? str_icontains(model, item) : sched_model_matches(item, model))
            return idx;
        idx++;
    }
    return -1;
}

int sched_model_list_count(struct str list)
{
    struct str item;
    int n = 0;

    while (str_split(&list, ',', &item))
        n += str_trim(item).len > 0;
    return n;
}

static bool strategy_parse(struct str s, enum policy_strategy *out)
{
    s = str_trim(s);
    if (str_ieq_cstr(s, "binpack")) {
        *out = POLICY_BINPACK;
        return true;
    }
    if (str_ieq_cstr(s, "spread")) {
        *out = POLICY_SPREAD;
        return true;
    }
    return false;
}

bool sched_pod_check(const struct pod_info *pod, const struct policy *pol, struct errbuf *eb)
{
    enum policy_strategy s;

    if (pod->ann_strategy.len && !strategy_parse(pod->ann_strategy, &s)) {
        errbuf_set(eb, "pod annotation %s: must be binpack or spread, got \"%.*s\"",
                   OBJ_ANN_STRATEGY, (int)(pod->ann_strategy.len > 32 ? 32 : pod->ann_strategy.len),
                   pod->ann_strategy.ptr);
        return false;
    }
    if (pod->ann_strategy.len && !pol->pod_may_set_strategy) {
        errbuf_set(eb, "pod annotation %s is not allowed by the policy (podOverrides.strategy)",
                   OBJ_ANN_STRATEGY);
        return false;
    }
    return true;
}

enum policy_strategy sched_pod_strategy(const struct pod_info *pod, const struct policy *pol)
{
    enum policy_strategy s;

    if (pol->pod_may_set_strategy && strategy_parse(pod->ann_strategy, &s))
        return s;
    return pol->strategy;
}

static bool pod_constrains_model(const struct pod_info *pod)
{
    return sched_model_list_count(pod->ann_gpu_model) > 0 ||
           sched_model_list_count(pod->ann_use_gputype) > 0 ||
           sched_model_list_count(pod->ann_nouse_gputype) > 0;
}

static struct sched_fit fit(enum sched_verdict v, enum sched_reason r)
{
    return (struct sched_fit){v, r};
}

/* Model rules first: a wrong model is permanent, and saying so keeps preemption away. */
static struct sched_fit filter_model(const struct pod_info *pod, const struct node_info *node)
{
    if (!pod_constrains_model(pod))
        return fit(SCHED_PASS, SCHED_REASON_NONE);
    if (node->model.len == 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_NO_MODEL_LABEL);
    if (sched_model_list_count(pod->ann_gpu_model) > 0 &&
        sched_model_list_find(pod->ann_gpu_model, node->model, false) < 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_REQUIRED);
    if (sched_model_list_count(pod->ann_use_gputype) > 0 &&
        sched_model_list_find(pod->ann_use_gputype, node->model, true) < 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOT_USE);
    if (sched_model_list_find(pod->ann_nouse_gputype, node->model, true) >= 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_MODEL_NOUSE);
    return fit(SCHED_PASS, SCHED_REASON_NONE);
}

struct sched_fit sched_filter_node(const struct pod_info *pod, const struct node_info *node,
                                   int64_t used_gpus)
{
    struct sched_fit f;

    if (pod->gpus <= 0)
        return fit(SCHED_PASS, SCHED_REASON_NONE);
    if (node->gpu_allocatable <= 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_NO_GPUS);
    f = filter_model(pod, node);
    if (f.verdict != SCHED_PASS)
        return f;
    if (node->gpu_allocatable < pod->gpus)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_TOO_FEW_GPUS);
    if (node->gpu_allocatable - used_gpus < pod->gpus)
        return fit(SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE);
    return fit(SCHED_PASS, SCHED_REASON_NONE);
}

enum err sched_reason_format(struct sched_fit f, const struct node_info *node, struct buf *out)
{
    switch (f.reason) {
    case SCHED_REASON_MODEL_NOT_REQUIRED:
    case SCHED_REASON_MODEL_NOT_USE:
    case SCHED_REASON_MODEL_NOUSE:
        /* The model name is part of the reason: it is what the user has to change. */
        return buf_printf(out, "gpu-extender: model %.*s %s", (int)node->model.len,
                          node->model.ptr, reason_text[f.reason]);
    default:
        return buf_printf(out, "gpu-extender: %s", reason_text[f.reason]);
    }
}

struct sched_score sched_score_node(const struct pod_info *pod, const struct node_info *node,
                                    int64_t used_gpus, const struct policy *pol)
{
    struct sched_score s = {.strategy = sched_pod_strategy(pod, pol)};
    int64_t alloc = node->gpu_allocatable, k = pod->gpus;
    int64_t taken = used_gpus + k, w_total = pol->weight_free_gpus;
    int n_pref = sched_model_list_count(pod->ann_gpu_model_preferred);

    if (k <= 0 || alloc <= 0)
        return s;
    if (taken > alloc)
        taken = alloc;
    s.free_ppm = (s.strategy == POLICY_BINPACK ? taken : alloc - taken) * PPM / alloc;
    if (n_pref > 0 && node->model.len) {
        int i = sched_model_list_find(pod->ann_gpu_model_preferred, node->model, false);
        if (i >= 0) {
            s.model_rank = i + 1;
            s.model_ppm = (int64_t)(n_pref - i) * PPM / n_pref;
        }
    }
    if (n_pref > 0)
        w_total += pol->weight_model;
    if (w_total <= 0)
        return s;
    s.score = (int)((10 * (pol->weight_free_gpus * s.free_ppm + pol->weight_model * s.model_ppm) +
                     w_total * PPM / 2) /
                    (w_total * PPM));
    return s;
}
