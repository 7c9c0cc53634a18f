/* sched.c -- rule selection, filter and score decisions (see sched.h). */
#include "gx/sched.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "gx/bits.h"
#include "gx/compiler.h"

/* Policy link classes are topology classes under another name (policy.h cannot depend on the
 * state module); the cast in topo_class_of() relies on these. */
static_assert((int)POLICY_LINK_SYS == (int)TOPO_SYS, "link classes agree");
static_assert((int)POLICY_LINK_NODE == (int)TOPO_NODE, "link classes agree");
static_assert((int)POLICY_LINK_PHB == (int)TOPO_PHB, "link classes agree");
static_assert((int)POLICY_LINK_PXB == (int)TOPO_PXB, "link classes agree");
static_assert((int)POLICY_LINK_PIX == (int)TOPO_PIX, "link classes agree");
static_assert((int)POLICY_LINK_NVLINK == (int)TOPO_NVLINK, "link classes agree");

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

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

bool sched_glob_matches(struct str pat, struct str text)
{
    size_t p = 0, t = 0, star_p = SIZE_MAX, star_t = 0;

    /* Iterative wildcard match with one backtrack point: linear in practice, O(p*t) worst. */
    while (t < text.len) {
        if (p < pat.len && pat.ptr[p] == '*') {
            star_p = p++;
            star_t = t;
        } else if (p < pat.len && (pat.ptr[p] == '?' || lower(pat.ptr[p]) == lower(text.ptr[t]))) {
            p++;
            t++;
        } else if (star_p != SIZE_MAX) {
            p = star_p + 1;
            t = ++star_t;
        } else {
            return false;
        }
    }
    while (p < pat.len && pat.ptr[p] == '*')
        p++;
    return p == pat.len;
}

bool sched_class_matches(const struct policy_class *c, const struct node_info *node)
{
    bool hit = false;

    if (c->products.count) {
        for (size_t i = 0; i < c->products.count && !hit; i++)
            hit = node->product.len && (sched_glob_matches(c->products.items[i], node->product) ||
                                        sched_glob_matches(c->products.items[i], node->model));
        if (!hit)
            return false;
    }
    if (c->families.count) {
        hit = false;
        for (size_t i = 0; i < c->families.count && !hit; i++)
            hit = node->family.len && str_ieq(c->families.items[i], node->family);
        if (!hit)
            return false;
    }
    return c->min_memory_mib <= 0 || node->gpu_memory_mib >= c->min_memory_mib;
}

static bool list_has(const struct policy_strlist *l, struct str s)
{
    for (size_t i = 0; i < l->count; i++) {
        if (str_eq(l->items[i], s))
            return true;
    }
    return false;
}

bool sched_rule_selects(const struct policy_rule *rule, const struct pod_info *pod)
{
    char buf[256];
    struct str v;

    if (rule->has_namespaces && !list_has(&rule->namespaces, pod->ns))
        return false;
    if (rule->has_priority_classes && !list_has(&rule->priority_classes, pod->priority_class))
        return false;
    for (size_t i = 0; i < rule->label_count; i++) {
        if (!obj_label_get(pod->labels, rule->labels[i].key, buf, sizeof(buf), &v) ||
            !str_eq(v, rule->labels[i].value))
            return false;
    }
    return true;
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

static bool pod_constrains_model(const struct pod_info *pod)
{
    return sched_model_list_count(pod->ann_gpu_model) > 0 ||
           sched_model_list_count(pod->ann_use_gputype) > 0 ||
           sched_model_list_count(pod->ann_nouse_gputype) > 0;
}

static bool refuse_override(const struct policy_rule *rule, const char *ann, const char *key,
                            struct errbuf *eb)
{
    errbuf_set(eb, "pod annotation %s is not allowed by policy rule %.*s (podOverrides.%s)", ann,
               (int)rule->name.len, rule->name.ptr, key);
    return false;
}

const struct policy_rule *sched_select_rule(const struct policy *pol, const struct pod_info *pod)
{
    /* A pod we bound names the rule that placed it: the cache keeps no labels of bound pods,
     * so a rule that selects by label could not select it again. */
    if (pod->rule_record.len) {
        if (str_eq(pod->rule_record, pol->default_rule.name))
            return &pol->default_rule;
        for (size_t i = 0; i < pol->rule_count; i++)
            if (str_eq(pod->rule_record, pol->rules[i].name))
                return &pol->rules[i];
    }
    for (size_t i = 0; i < pol->rule_count; i++) {
        if (sched_rule_selects(&pol->rules[i], pod))
            return &pol->rules[i];
    }
    return &pol->default_rule;
}

/* Fills *sp, which sched_pod_prepare() hands out only on success. */
static bool prepare(struct sched_pod *sp, const struct pod_info *pod, const struct policy *pol,
                    struct errbuf *eb)
{
    const struct policy_rule *rule = sched_select_rule(pol, pod);
    const struct policy_overrides *ov = &rule->overrides;
    enum policy_strategy s;

    *sp = (struct sched_pod){.pod = pod, .pol = pol, .rule = rule, .strategy = rule->strategy};
    if (pod->ann_strategy.len && !strategy_parse(pod->ann_strategy, &s)) {
        errbuf_set(eb, "pod annotation %s: must be binpack or spread, got \"%.*s\"",
                   OBJ_ANN_STRATEGY, (int)(pod->ann_strategy.len > 32 ? 32 : pod->ann_strategy.len),
                   pod->ann_strategy.ptr);
        return false;
    }
    if (pod->ann_strategy.len) {
        if (!ov->strategy)
            return refuse_override(rule, OBJ_ANN_STRATEGY, "strategy", eb);
        sp->strategy = s;
    }
    if (pod_constrains_model(pod)) {
        if (!ov->models)
            return refuse_override(rule, OBJ_ANN_GPU_MODEL, "models", eb);
        sp->pod_models = true;
    }
    if (sched_model_list_count(pod->ann_gpu_model_preferred) > 0) {
        if (!ov->preferred)
            return refuse_override(rule, OBJ_ANN_GPU_MODEL_PREFERRED, "preferred", eb);
        sp->pod_preferred = true;
    }
    sp->has_preference = sp->pod_preferred || rule->prefer_count > 0;
    sp->topo_required = rule->topo_min_gpus > 0 && pod->gpus >= rule->topo_min_gpus;
    return true;
}

bool sched_pod_prepare(struct sched_pod *sp, const struct pod_info *pod, const struct policy *pol,
                       struct errbuf *eb)
{
    struct sched_pod tmp;

    if (!prepare(&tmp, pod, pol, eb))
        return false;
    *sp = tmp;
    return true;
}

static struct sched_fit fit(enum sched_verdict v, enum sched_reason r)
{
    return (struct sched_fit){v, r};
}

/* The pod's own annotations: only ever narrower than the rule. */
static struct sched_fit filter_pod_models(const struct pod_info *pod, const struct node_info *node)
{
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

static bool in_any_class(const struct policy *pol, const uint32_t *idx, size_t n,
                         const struct node_info *node)
{
    for (size_t i = 0; i < n; i++) {
        if (sched_class_matches(&pol->classes[idx[i]], node))
            return true;
    }
    return false;
}

/* The rule first, then the pod: forbid beats everything, and a wrong model is permanent, so
 * saying so keeps preemption away. */
static inline struct sched_fit filter_models(const struct sched_pod *sp,
                                             const struct node_info *node)
{
    const struct policy_rule *rule = sp->rule;

    if (in_any_class(sp->pol, rule->forbid, rule->forbid_count, node))
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_POLICY_FORBIDDEN);
    if (rule->has_allow && !in_any_class(sp->pol, rule->allow, rule->allow_count, node))
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_POLICY_NOT_ALLOWED);
    if (sp->pod_models)
        return filter_pod_models(sp->pod, node);
    return fit(SCHED_PASS, SCHED_REASON_NONE);
}

bool sched_model_allowed(const struct sched_pod *sp, const struct node_info *node)
{
    return filter_models(sp, node).verdict == SCHED_PASS;
}

/* The fleet-share mark-down's input (see struct sched_pod). A model with few GPUs in the whole
 * fleet can be used up by a few pods that could have run anywhere, before any pod that needs
 * it has arrived to show demand for it; a pod that may use every model loses nothing by
 * going elsewhere. Measured against the pod's least share, so that a fleet of equal pools
 * marks nothing down. */
static int64_t fleet_share(const struct sched_pod *sp, const struct sched_demand_model *m)
{
    int64_t k2 = 2 * sp->pod->gpus;

    return k2 >= m->gpus ? PPM : k2 * PPM / m->gpus;
}

static void use_fleet_share(struct sched_pod *sp, const struct sched_demand *d)
{
    int64_t least = PPM, most = 0;

    for (size_t i = 0; i < d->model_count; i++) {
        int64_t h = fleet_share(sp, &d->models[i]);
        least = h < least ? h : least;
        most = h > most ? h : most;
    }
    if (most > least) { /* else no model is worse than another */
        sp->share_table = d;
        sp->share_least_ppm = least;
    }
}

void sched_pod_use_demand(struct sched_pod *sp, const struct sched_demand *d)
{
    uint64_t set;
    int64_t lo = INT64_MAX, hi = INT64_MIN;

    sp->demand = NULL;
    sp->share_table = NULL;
    if (!d || sp->pol->weight_scarcity <= 0 || sp->pod->gpus <= 0)
        return;
    set = sched_demand_allowed(d, sp);
    if (set == d->all_models)
        use_fleet_share(sp, d);
    for (size_t i = 0; i < d->model_count; i++) {
        if (!(set >> i & 1))
            continue;
        int64_t v = d->models[i].scarcity_ppm;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (hi <= lo)
        return; /* one model, or all equally scarce: nothing to choose between */
    sp->demand = d;
    sp->scarcity_lo_ppm = lo;
    sp->scarcity_hi_ppm = hi;
    /* Worked out once here, so that scoring a node costs a lookup. */
    for (size_t i = 0; i < d->model_count; i++) {
        int64_t v = d->models[i].scarcity_ppm;
        v = v <= lo ? PPM : v >= hi ? 0 : (hi - v) * PPM / (hi - lo);
        sp->scarcity_part_ppm[i] = (int32_t)v;
    }
}

static enum topo_class topo_class_of(enum policy_link l)
{
    return (enum topo_class)l;
}

/* The best set the node can surely give the pod now: with GPUs taken that nobody named, the
 * worst case over which ones they are. */
static struct topo_pick pick_now(const struct sched_node *n, unsigned k, enum topo_class req)
{
    bool conservative = false;

    if (n->unknown_used == 0)
        return topo_choose(n->topo, n->free_mask, k, req);
    return topo_choose_guaranteed(n->topo, n->free_mask, n->unknown_used, k, req, &conservative);
}

static struct sched_fit filter_topology(const struct sched_pod *sp, const struct sched_node *n)
{
    unsigned k = (unsigned)sp->pod->gpus;
    enum topo_class req = topo_class_of(sp->rule->topo_require);
    uint32_t healthy;

    if (!n->topo)
        return sp->topo_required ? fit(SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_UNKNOWN)
                                 : fit(SCHED_PASS, SCHED_REASON_NONE);
    healthy = n->free_healthy ? n->free_mask : topo_healthy_mask(n->topo);
    if (bits_popcount32(n->free_mask & healthy) < k + n->unknown_used)
        return fit(SCHED_FAIL, SCHED_REASON_NO_HEALTHY_FREE);
    if (!sp->topo_required)
        return fit(SCHED_PASS, SCHED_REASON_NONE);
    healthy = topo_healthy_mask(n->topo);
    if (topo_best_min_class(n->topo, healthy, k) < req)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_NEVER);
    if (!pick_now(n, k, req).ok)
        return fit(SCHED_FAIL, SCHED_REASON_TOPO_NOT_NOW);
    return fit(SCHED_PASS, SCHED_REASON_NONE);
}

/* The memo's entry for the node, or NULL when the node must be worked out on its own. */
static inline const struct sched_model_memo *memo_of(const struct sched_pod *sp,
                                                     const struct sched_node *n)
{
    return sp->memo && n->model_id - 1u < sp->memo_count ? &sp->memo[n->model_id - 1] : NULL;
}

struct sched_fit sched_filter_node(const struct sched_pod *sp, const struct sched_node *n)
{
    const struct node_info *node = n->info;
    const struct sched_model_memo *m;
    int64_t k = sp->pod->gpus;
    struct sched_fit f;

    if (k <= 0)
        return fit(SCHED_PASS, SCHED_REASON_NONE);
    if (node->gpu_allocatable <= 0)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_NO_GPUS);
    m = memo_of(sp, n);
    f = m ? m->fit : filter_models(sp, node);
    if (f.verdict != SCHED_PASS)
        return f;
    if (node->gpu_allocatable < k)
        return fit(SCHED_UNRESOLVABLE, SCHED_REASON_TOO_FEW_GPUS);
    if (node->gpu_allocatable - n->used < k)
        return fit(SCHED_FAIL, SCHED_REASON_INSUFFICIENT_FREE);
    if (k > TOPO_MAX_GPUS)
        return sp->topo_required ? fit(SCHED_UNRESOLVABLE, SCHED_REASON_TOPO_NEVER)
                                 : fit(SCHED_PASS, SCHED_REASON_NONE);
    return filter_topology(sp, n);
}

static enum err format_topo_reason(struct sched_fit f, const struct sched_pod *sp, struct buf *out)
{
    enum policy_link req = sp->rule->topo_require;
    const char *link = policy_link_name(req);
    const char *how = req == POLICY_LINK_NVLINK ? "by" : "at";
    const char *better = req == POLICY_LINK_NVLINK ? "" : " or better";
    long long k = (long long)sp->pod->gpus;

    if (f.reason == SCHED_REASON_TOPO_NEVER)
        return buf_printf(out, "node has no %lld GPUs all linked %s %s%s", k, how, link, better);
    return buf_printf(out, "no %lld free GPUs all linked %s %s%s", k, how, link, better);
}

bool sched_reason_names_model(enum sched_reason r)
{
    return r == SCHED_REASON_MODEL_NOT_REQUIRED || r == SCHED_REASON_MODEL_NOT_USE ||
           r == SCHED_REASON_MODEL_NOUSE || r == SCHED_REASON_POLICY_NOT_ALLOWED ||
           r == SCHED_REASON_POLICY_FORBIDDEN;
}

enum err sched_reason_format(struct sched_fit f, const struct sched_pod *sp,
                             const struct node_info *node, struct buf *out)
{
    struct str model = node && node->model.len ? node->model : STR_LIT("(unlabelled)");
    struct str rule = sp ? sp->rule->name : STR_LIT("default");
    enum err e;

    switch (f.reason) {
    case SCHED_REASON_MODEL_NOT_REQUIRED:
    case SCHED_REASON_MODEL_NOT_USE:
    case SCHED_REASON_MODEL_NOUSE:
        /* The model name is part of the reason: it is what the user has to change. */
        return buf_printf(out, "gpu-extender: model %.*s %s", (int)model.len, model.ptr,
                          reason_text[f.reason]);
    case SCHED_REASON_POLICY_NOT_ALLOWED:
    case SCHED_REASON_POLICY_FORBIDDEN:
        return buf_printf(out, "gpu-extender: policy %.*s: model %.*s %s", (int)rule.len, rule.ptr,
                          (int)model.len, model.ptr, reason_text[f.reason]);
    case SCHED_REASON_TOPO_UNKNOWN:
    case SCHED_REASON_TOPO_NEVER:
    case SCHED_REASON_TOPO_NOT_NOW:
        e = buf_printf(out, "gpu-extender: policy %.*s: ", (int)rule.len, rule.ptr);
        if (e != ERR_OK)
            return e;
        /* The requirement and the GPU count make the reason precise, when the pod is known. */
        if (f.reason != SCHED_REASON_TOPO_UNKNOWN && sp)
            return format_topo_reason(f, sp, out);
        return buf_append_str(out, reason_text[f.reason]);
    default:
        return buf_printf(out, "gpu-extender: %s", reason_text[f.reason]);
    }
}

/* Model part: the pod's own ranked list when it may give one, else the rule's classes. */
static void score_model(const struct sched_pod *sp, const struct node_info *node,
                        struct sched_score *s)
{
    const struct policy_rule *rule = sp->rule;

    if (sp->pod_preferred) {
        int n = sched_model_list_count(sp->pod->ann_gpu_model_preferred);
        int i = node->model.len
                    ? sched_model_list_find(sp->pod->ann_gpu_model_preferred, node->model, false)
                    : -1;
        if (i >= 0 && n > 0) { /* a model found in the list: n >= 1 */
            s->model_rank = i + 1;
            s->model_ppm = (int64_t)(n - i) * PPM / n;
        }
        return;
    }
    for (size_t i = 0; i < rule->prefer_count; i++) {
        if (sched_class_matches(&sp->pol->classes[rule->prefer[i].class_index], node)) {
            s->model_rank = (int)i + 1;
            s->model_ppm = rule->prefer[i].weight * PPM / 100;
            return;
        }
    }
}

/* Scarcity part: 1 on the least scarce of the models the pod may use, 0 on the most; 1 on a
 * model the table does not hold (nobody's demand names it). */
static int64_t scarcity_ppm(const struct sched_pod *sp, const struct node_info *node)
{
    int i = sched_demand_find(sp->demand, node->model);

    return i >= 0 ? sp->scarcity_part_ppm[i] : PPM;
}

/* Fleet-share excess on the node's model; 0 on a model the table does not hold. */
static int64_t share_ppm(const struct sched_pod *sp, const struct node_info *node)
{
    int i = sched_demand_find(sp->share_table, node->model);

    return i >= 0 ? fleet_share(sp, &sp->share_table->models[i]) - sp->share_least_ppm : 0;
}

/* Interconnect quality of a set: the mean over its pairs of min(pair score, 100) / 100. */
static int64_t set_quality_ppm(const struct topo *t, uint32_t set)
{
    int64_t sum = 0, pairs = 0;

    for (uint32_t as = set; as; as &= as - 1) {
        unsigned a = (unsigned)__builtin_ctz(as);
        for (uint32_t bs = set & ~((2u << a) - 1); bs; bs &= bs - 1) {
            unsigned ps = topo_pair_score(t, a, (unsigned)__builtin_ctz(bs));
            sum += (int64_t)(ps > 100 ? 100 : ps) * (PPM / 100);
            pairs++;
        }
    }
    return pairs ? sum / pairs : 0;
}

static void score_topology(const struct sched_pod *sp, const struct sched_node *n,
                           struct sched_score *s)
{
    unsigned k = (unsigned)sp->pod->gpus;
    enum topo_class req = sp->topo_required ? topo_class_of(sp->rule->topo_require) : TOPO_SYS;
    struct topo_pick pick;

    if (!n->topo || k > TOPO_MAX_GPUS)
        return;
    pick = pick_now(n, k, req);
    if (!pick.ok)
        return;
    s->topo_set = n->unknown_used ? 0 : pick.set;
    s->topo_ppm = set_quality_ppm(n->topo, pick.set);
}

/* The scarcity part holds its share of the 10 levels, rounded to whole levels and at most
 * SCARCITY_MAX_LEVELS; the other parts share the rest and are rounded apart from it. Nodes of
 * one model get the same scarcity part, so among them the other parts keep their whole
 * resolution whatever the weight: with at least 2 levels left, binpack still ranks an empty
 * 8-GPU node below one partly used. */
#define SCARCITY_MAX_LEVELS 8

static int64_t scarcity_levels(int64_t w_scarcity, int64_t w_rest)
{
    int64_t w_all = w_rest + w_scarcity;
    int64_t levels = (10 * w_scarcity + w_all / 2) / w_all;

    return levels > SCARCITY_MAX_LEVELS && w_rest > 0 ? SCARCITY_MAX_LEVELS : levels;
}

/* The fleet-share mark-down: up to the levels the scarcity part holds, taken off whatever else
 * the node earns; all of them where the pod would take half the model's GPUs more than on the
 * model where it takes least. */
static int share_cut(int64_t levels, int64_t excess_ppm)
{
    return (int)((levels * excess_ppm + PPM / 2) / PPM);
}

/* The score with a scarcity weight: the part's levels where it applies (sp->demand), else the
 * weighted average; less the fleet-share mark-down where that applies (sp->share_table). Out
 * of line, so that the scoring loop of a policy without the weight stays as it was. */
static GX_NOINLINE int scarcity_score(const struct sched_pod *sp, const struct sched_node *n,
                                      const struct sched_score *s, int64_t sum, int64_t w_rest)
{
    int64_t levels = scarcity_levels(sp->pol->weight_scarcity, w_rest), score = 0;

    if (!s->w_scarcity) { /* the part does not apply: the weighted average */
        score = (10 * sum + w_rest * PPM / 2) / (w_rest * PPM);
    } else {
        /* s->w_scarcity is the policy's weight, so levels are the part's */
        if (w_rest > 0)
            score = ((10 - levels) * sum + w_rest * PPM / 2) / (w_rest * PPM);
        score += (levels * s->scarcity_ppm + PPM / 2) / PPM;
    }
    if (sp->share_table) {
        const struct sched_model_memo *m = memo_of(sp, n);
        int cut = share_cut(levels, m ? m->share_ppm : share_ppm(sp, n->info));
        score = score > cut ? score - cut : 0;
    }
    return (int)score;
}

/* Scores n into *out. Inlined into both entry points, so the one that wants only the score
 * (prioritize, once per node) does not keep the parts. */
static GX_ALWAYS_INLINE void score_node(const struct sched_pod *sp, const struct sched_node *n,
                                        struct sched_score *out)
{
    const struct policy *pol = sp->pol;
    const struct node_info *node = n->info;
    struct sched_score s = {.strategy = sp->strategy};
    int64_t alloc = node->gpu_allocatable, k = sp->pod->gpus;
    int64_t taken = n->used + k, w_rest, sum;

    if (k <= 0 || alloc <= 0) {
        *out = s;
        return;
    }
    if (taken > alloc)
        taken = alloc;
    s.free_ppm = (s.strategy == POLICY_BINPACK ? taken : alloc - taken) * PPM / alloc;
    s.w_free = pol->weight_free_gpus;
    if (sp->has_preference) {
        const struct sched_model_memo *m = memo_of(sp, n);
        s.w_model = pol->weight_model;
        if (m) {
            s.model_rank = m->model_rank;
            s.model_ppm = m->model_ppm;
        } else {
            score_model(sp, node, &s);
        }
    }
    /* Interconnect matters from two GPUs on, and only a node that publishes its topology can
     * be judged on it; the others are scored on the other parts alone, not marked down. */
    if (k >= 2 && n->topo && k <= TOPO_MAX_GPUS) {
        s.w_topo = pol->weight_topology;
        score_topology(sp, n, &s);
    }
    if (sp->demand) {
        const struct sched_model_memo *m = memo_of(sp, n);
        s.w_scarcity = pol->weight_scarcity;
        s.scarcity_ppm = m ? m->scarcity_ppm : scarcity_ppm(sp, node);
    }
    w_rest = s.w_free + s.w_model + s.w_topo;
    if (w_rest + s.w_scarcity <= 0) {
        *out = s;
        return;
    }
    sum = s.w_free * s.free_ppm + s.w_model * s.model_ppm + s.w_topo * s.topo_ppm;
    if (!s.w_scarcity && !sp->share_table) /* the weighted average, as without the weight */
        s.score = (int)((10 * sum + w_rest * PPM / 2) / (w_rest * PPM));
    else
        s.score = scarcity_score(sp, n, &s, sum, w_rest);
    *out = s;
}

int sched_share_levels(const struct sched_pod *sp, const struct node_info *node,
                       const struct sched_score *s, int64_t *excess_ppm)
{
    int64_t w_rest = s->w_free + s->w_model + s->w_topo;

    *excess_ppm = 0;
    /* where score_node() stops before any part: no pod GPUs, no node GPUs, no weight */
    if (!sp->share_table || sp->pod->gpus <= 0 || node->gpu_allocatable <= 0 ||
        w_rest + s->w_scarcity <= 0)
        return 0;
    *excess_ppm = share_ppm(sp, node);
    return share_cut(scarcity_levels(sp->pol->weight_scarcity, w_rest), *excess_ppm);
}

struct sched_score sched_score_node(const struct sched_pod *sp, const struct sched_node *n)
{
    struct sched_score s;

    score_node(sp, n, &s);
    return s;
}

int sched_score_value(const struct sched_pod *sp, const struct sched_node *n)
{
    struct sched_score s;

    score_node(sp, n, &s);
    return s.score;
}

void sched_pod_memo_models(struct sched_pod *sp, const struct node_info *const *models,
                           size_t count, struct sched_model_memo *memo)
{
    sp->memo = NULL;
    sp->memo_count = 0;
    if (count == 0)
        return;
    for (size_t i = 0; i < count; i++) {
        struct sched_score s = {0};
        if (sp->has_preference)
            score_model(sp, models[i], &s);
        memo[i] = (struct sched_model_memo){
            .fit = filter_models(sp, models[i]),
            .model_rank = s.model_rank,
            .model_ppm = s.model_ppm,
            .scarcity_ppm = sp->demand ? scarcity_ppm(sp, models[i]) : 0,
            .share_ppm = sp->share_table ? (int32_t)share_ppm(sp, models[i]) : 0,
        };
    }
    sp->memo = memo;
    sp->memo_count = count;
}

uint32_t sched_choose_gpus(const struct sched_pod *sp, const struct sched_node *n)
{
    unsigned k = (unsigned)sp->pod->gpus;
    enum topo_class req = sp->topo_required ? topo_class_of(sp->rule->topo_require) : TOPO_SYS;
    struct topo_pick pick;

    /* GPUs taken by pods nobody named could be any of the free ones: naming a set would be a
     * guess, so the node's device plugin chooses. */
    if (!n->topo || n->unknown_used > 0 || k == 0 || k > TOPO_MAX_GPUS)
        return 0;
    pick = topo_choose(n->topo, n->free_mask, k, req);
    return pick.ok ? pick.set : 0;
}
