/* policy.c -- policy YAML -> struct policy, driven by one schema table (see policy.h and
 * STYLE.md 2.7). Every key, section and list has a row: its path ("rules[].prefer[].weight"),
 * its type, where its value goes, its range and default. The walk, the defaults, the
 * "unknown key (known keys here: ...)" lists and the README check all follow from the table.
 * Adding a key means adding a row, a field and a README section.
 *
 * Loading runs in three steps over the ydoc tree:
 *  1. the walk checks every key against the table and stores each valid value into a build
 *     object (struct top_build, class_build, rule_build, pref_build); a list row's hook then
 *     checks one item as a whole (duplicate names, a class with no criterion, a rule that
 *     matches every pod or is shadowed by an earlier one);
 *  2. once every class is known, class names in allow, forbid and prefer are resolved to
 *     indices, and what they say is checked (undefined classes, rules that allow nothing,
 *     preferences that can never apply);
 *  3. with no error at all, the build objects become the policy's arrays.
 * Checking never stops at the first problem: each one becomes a "file:line:col: key.path:
 * message" line, up to POLICY_MAX_ERRORS. Values that fail a check are not stored, and an item
 * with an error is left out of the checks that compare items, so one mistake gives one
 * message rather than a cascade.
 *
 * Where the parts live: the table and the walk (step 1) in policy_schema.c; the item hooks, the
 * class references (step 2) and the run of both over a document in policy_check.c; building the
 * policy (step 3) and its lifecycle here. policy_internal.h holds what they share. */
#include "gx/policy.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/str.h"

#include "policy_internal.h"
#include "yaml_doc.h"

/* Everything a loaded policy holds: a copy of the file (policy_load() caps it at 1 MiB), the
 * strings read from it and the arrays of classes, rules and lists. ydoc's 65536-node cap keeps
 * any file that parses below this; past it the load fails cleanly. */
#define POLICY_ARENA_BYTES ((size_t)4 * 1024 * 1024)
/* The build objects of one load, freed when it ends. */
#define SCRATCH_ARENA_BYTES ((size_t)8 * 1024 * 1024)

/* ---- building the policy ---- */

static struct policy *policy_alloc(void)
{
    struct policy *p = xcalloc(1, sizeof(*p));

    atomic_init(&p->refs, 1);
    arena_init(&p->arena, POLICY_ARENA_BYTES);
    return p;
}

/* A rule's own settings, or the top-level ones where it gives none. */
static void finish_rule(const struct top_build *t, const struct rule_build *b,
                        struct policy_rule *out)
{
    *out = b->r;
    if (!b->has_strategy)
        out->strategy = t->strategy;
    if (!b->has_overrides.strategy)
        out->overrides.strategy = t->overrides.strategy;
    if (!b->has_overrides.models)
        out->overrides.models = t->overrides.models;
    if (!b->has_overrides.preferred)
        out->overrides.preferred = t->overrides.preferred;
    out->line = b->h.node ? b->h.node->line : 0;
}

static void finish(struct checker *k, struct policy *p)
{
    const struct top_build *t = k->top;
    struct policy_class *classes = NULL;
    struct policy_rule *rules = NULL;

    p->strategy = t->strategy;
    p->weight_free_gpus = t->weight_free_gpus;
    p->weight_model = t->weight_model;
    p->weight_topology = t->weight_topology;
    p->weight_scarcity = t->weight_scarcity;
    p->overrides = t->overrides;
    if (t->class_count &&
        (classes = policy_alloc_array(k, k->keep, t->class_count, sizeof(*classes)))) {
        for (size_t i = 0; i < t->class_count; i++) {
            classes[i] = t->classes[i].c;
            classes[i].line = t->classes[i].h.node->line;
        }
    }
    if (t->rule_count && (rules = policy_alloc_array(k, k->keep, t->rule_count, sizeof(*rules)))) {
        for (size_t i = 0; i < t->rule_count; i++)
            finish_rule(t, &t->rules[i], &rules[i]);
    }
    p->classes = classes;
    p->class_count = classes ? t->class_count : 0;
    p->rules = rules;
    p->rule_count = rules ? t->rule_count : 0;
    finish_rule(t, &t->default_rule, &p->default_rule);
    p->default_rule.name = STR_LIT(POLICY_DEFAULT_RULE_NAME);
}

/* FNV-1a, 64 bits: cheap, and good enough to tell two policy files apart in logs. */
static void hash_text(const char *text, size_t len, char out[17])
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; text && i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= UINT64_C(0x100000001b3);
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* Turns the outcome of the checks into the result: the policy, or why not. */
static enum err conclude(struct checker *k, struct policy *p, const char *text, size_t len)
{
    char *copy;

    if (k->errors == 0 && !k->too_large) {
        finish(k, p);
        copy = arena_strndup(&p->arena, text ? text : "", text ? len : 0);
        k->too_large = k->too_large || !copy;
        p->text = copy;
        p->text_len = len;
    }
    if (k->too_large) {
        if (k->diag)
            k->diag->count = 0;
        policy_report(k, NULL, "",
                      "the policy is too large: it needs more than %zu MiB once loaded",
                      POLICY_ARENA_BYTES >> 20);
        return ERR_PARSE;
    }
    if (k->errors > 0)
        return ERR_INVALID;
    snprintf(p->source, sizeof(p->source), "%s", k->name);
    hash_text(text, len, p->hash);
    return ERR_OK;
}

struct policy *policy_new_default(void)
{
    struct top_build top;
    struct policy *p = policy_alloc();
    struct checker k = {.name = "embedded default", .keep = &p->arena, .top = &top};

    memset(&top, 0, sizeof(top));
    policy_apply_defaults("", (unsigned char *)&top);
    finish(&k, p);
    assert(!k.too_large);
    snprintf(p->source, sizeof(p->source), "embedded default");
    snprintf(p->hash, sizeof(p->hash), "0000000000000000");
    p->text = "";
    p->text_len = 0;
    return p;
}

enum err policy_parse(const char *name, const char *text, size_t len, struct policy **out,
                      struct policy_diag *diag)
{
    struct checker k = {.name = name ? name : "(policy)", .diag = diag};
    struct top_build top;
    struct policy *p;
    struct errbuf eb = ERRBUF_INIT;
    struct ydoc doc;
    enum err e;

    if (diag)
        diag->count = 0;
    errbuf_clear(&eb);
    /* The tree cannot be built: policy_report why (its caps included) as a parse error. */
    if (ydoc_parse(&doc, k.name, text, len, &eb) != ERR_OK) {
        policy_add_message(diag, eb.msg);
        return ERR_PARSE;
    }
    p = policy_alloc();
    memset(&top, 0, sizeof(top));
    k.keep = &p->arena;
    k.top = &top;
    arena_init(&k.scratch, SCRATCH_ARENA_BYTES);
    policy_apply_defaults("", (unsigned char *)&top);
    policy_check_document(&k, doc.root);
    e = conclude(&k, p, text, len);
    arena_destroy(&k.scratch);
    ydoc_destroy(&doc);
    if (e != ERR_OK) {
        policy_unref(p);
        return e;
    }
    *out = p;
    return ERR_OK;
}

enum err policy_load(const char *path, struct policy **out, struct policy_diag *diag)
{
    struct errbuf eb = ERRBUF_INIT;
    char *text;
    size_t len;
    enum err e;

    if (diag)
        diag->count = 0;
    e = ydoc_read_file(path, POLICY_MAX_FILE_BYTES, &text, &len, &eb);
    if (e != ERR_OK) {
        policy_add_message(diag, eb.msg);
        return e;
    }
    e = policy_parse(path, text, len, out, diag);
    free(text);
    return e;
}

struct policy *policy_ref(struct policy *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void policy_unref(struct policy *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    arena_destroy(&p->arena);
    free(p);
}

long policy_class_find(const struct policy *p, struct str name)
{
    for (size_t i = 0; i < p->class_count; i++) {
        if (str_eq(p->classes[i].name, name))
            return (long)i;
    }
    return -1;
}
