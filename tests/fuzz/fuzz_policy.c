/* fuzz_policy.c -- libFuzzer target for the policy loader (policy_parse()). Built with clang
 * (GX_FUZZ=ON) it links libFuzzer; otherwise replay_main.c replays the corpus under ctest.
 *
 * Every input must either fail with 1..POLICY_MAX_ERRORS messages or give a policy that keeps
 * the promises of policy.h: counts within their caps, every class index in range, weights in
 * range, the text copied whole, one reference held. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gx/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_list(const struct policy_strlist *l)
{
    if (l->count > POLICY_MAX_LIST || (l->count && !l->items))
        abort();
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].len == 0 || l->items[i].ptr[l->items[i].len] != '\0')
            abort();
    }
}

static void check_indices(const struct policy *p, const uint32_t *idx, size_t n)
{
    if (n > POLICY_MAX_LIST)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= p->class_count)
            abort();
    }
}

static void check_rule(const struct policy *p, const struct policy_rule *r)
{
    if (r->name.len == 0 || r->label_count > POLICY_MAX_LIST)
        abort();
    check_list(&r->namespaces);
    check_list(&r->priority_classes);
    check_indices(p, r->allow, r->allow_count);
    check_indices(p, r->forbid, r->forbid_count);
    if (r->has_allow && r->allow_count == 0)
        abort();
    for (size_t i = 0; i < r->prefer_count; i++) {
        const struct policy_pref *pref = &r->prefer[i];
        if (pref->class_index >= p->class_count || pref->weight < 1 || pref->weight > 100)
            abort();
    }
    if (r->topo_min_gpus != 0 && (r->topo_min_gpus < 2 || r->topo_min_gpus > 4096))
        abort();
    if ((unsigned)r->topo_require > POLICY_LINK_NVLINK || (unsigned)r->strategy > POLICY_SPREAD)
        abort();
}

static void check_policy(const struct policy *p, const uint8_t *data, size_t size)
{
    if (atomic_load(&p->refs) != 1 || p->text_len != size || p->text[size] != '\0' ||
        (size && memcmp(p->text, data, size) != 0))
        abort();
    if (p->class_count > POLICY_MAX_CLASSES || p->rule_count > POLICY_MAX_RULES)
        abort();
    if (p->weight_free_gpus + p->weight_model + p->weight_topology <= 0)
        abort();
    for (size_t i = 0; i < p->class_count; i++) {
        const struct policy_class *c = &p->classes[i];
        if (policy_class_find(p, c->name) != (long)i || c->line == 0)
            abort();
        check_list(&c->products);
        check_list(&c->families);
        if (!c->products.count && !c->families.count && c->min_memory_mib <= 0)
            abort();
    }
    for (size_t i = 0; i < p->rule_count; i++) {
        check_rule(p, &p->rules[i]);
        if (!p->rules[i].has_namespaces && !p->rules[i].has_priority_classes &&
            !p->rules[i].label_count)
            abort(); /* a rule that selects every pod is refused */
    }
    check_rule(p, &p->default_rule);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy *p = NULL;
    struct policy_diag diag;
    enum err e = policy_parse("fuzz.yaml", (const char *)data, size, &p, &diag);

    if (e == ERR_OK) {
        if (diag.count != 0)
            abort();
        check_policy(p, data, size);
        policy_unref(p);
    } else if (diag.count == 0 || diag.count > POLICY_MAX_ERRORS || p != NULL) {
        abort();
    }
    return 0;
}
