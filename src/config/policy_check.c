/* policy_check.c -- the policy checks that need more than one key: a class or rule as a whole
 * once the walk has read it (the list rows' hooks), class names once every class is known
 * (steps 1 and 2 of the load; see policy.c), and the run of both over a document. */
#include <stdio.h>

#include "gx/str.h"

#include "policy_internal.h"
#include "yaml_doc.h"

/* How much of a class list a message repeats. */
#define CLASS_LIST_CHARS 100

/* ---- checks on one class or rule, once it is read ---- */

static size_t key_line(const struct ydoc_node *map, const char *key)
{
    const struct ydoc_node *v = ydoc_map_find(map, key, NULL);

    return v ? v->line : map->line;
}

void policy_check_class_item(struct checker *k, void *items, size_t i, const char *path)
{
    struct class_build *cls = items, *c = &cls[i];
    const struct ydoc_node *name = ydoc_map_find(c->h.node, "name", NULL);
    char npath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];

    if (name && name->kind == YDOC_SCALAR)
        c->raw_name = policy_node_str(name);
    /* With an error in the item (a misspelt criterion, say), this would only repeat it. */
    if (!c->h.bad && !ydoc_map_find(c->h.node, "products", NULL) &&
        !ydoc_map_find(c->h.node, "families", NULL) &&
        !ydoc_map_find(c->h.node, "minMemoryMiB", NULL))
        policy_report(k, c->h.node, path,
                      "matches no node: give at least one of products, families or minMemoryMiB");
    if (c->c.name.len == 0)
        return;
    for (size_t j = 0; j < i; j++) {
        if (!str_eq(cls[j].c.name, c->c.name))
            continue;
        policy_join(npath, path, "name");
        policy_snippet(c->c.name, snip);
        policy_report(k, name, npath, "duplicate class name \"%s\" (first at line %zu)", snip,
                      key_line(cls[j].h.node, "name"));
        return;
    }
}

static void check_rule_name(struct checker *k, struct rule_build *rules, size_t i, const char *path)
{
    struct rule_build *b = &rules[i];
    const struct ydoc_node *name = ydoc_map_find(b->h.node, "name", NULL);
    char npath[PATH_MAX_CHARS], snip[SNIPPET_CHARS];

    if (b->r.name.len == 0)
        return;
    policy_join(npath, path, "name");
    policy_snippet(b->r.name, snip);
    if (str_eq_cstr(b->r.name, POLICY_DEFAULT_RULE_NAME)) {
        policy_report(k, name, npath,
                      "\"%s\" is reserved; write the default rule under the key default", snip);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        if (str_eq(rules[j].r.name, b->r.name)) {
            policy_report(k, name, npath, "duplicate rule name \"%s\" (first at line %zu)", snip,
                          key_line(rules[j].h.node, "name"));
            return;
        }
    }
}

/* A rule with no selector would take every pod, and every rule after it would be dead. */
static void check_rule_match(struct checker *k, struct rule_build *b, const char *path)
{
    const struct ydoc_node *m = ydoc_map_find(b->h.node, "match", NULL);
    char mpath[PATH_MAX_CHARS];
    size_t given;

    if (!m) {
        policy_report(k, b->h.node, path,
                      "no match, so the rule matches every pod; put it under default");
        return;
    }
    if (m->kind != YDOC_MAPPING)
        return; /* reported by the walk */
    if (m->count == 0) {
        policy_join(mpath, path, "match");
        policy_report(k, m, mpath, "empty, so the rule matches every pod; put it under default");
        return;
    }
    given = (size_t)b->r.has_namespaces + (size_t)b->r.has_priority_classes + (size_t)b->has_labels;
    b->selectors_ok = given == m->count;
}

/* Is every item of sub also in super? Lists are short (POLICY_MAX_LIST). */
static bool is_subset(const struct policy_strlist *sub, const struct policy_strlist *super)
{
    for (size_t i = 0; i < sub->count; i++) {
        size_t j = 0;

        while (j < super->count && !str_eq(sub->items[i], super->items[j]))
            j++;
        if (j == super->count)
            return false;
    }
    return true;
}

static bool has_label(const struct policy_rule *r, const struct policy_label *l)
{
    for (size_t i = 0; i < r->label_count; i++) {
        if (str_eq(r->labels[i].key, l->key) && str_eq(r->labels[i].value, l->value))
            return true;
    }
    return false;
}

/* Does a select every pod that b selects? Each selector a gives must be at least as broad. */
static bool selects_all_of(const struct policy_rule *a, const struct policy_rule *b)
{
    if (a->has_namespaces && !(b->has_namespaces && is_subset(&b->namespaces, &a->namespaces)))
        return false;
    if (a->has_priority_classes &&
        !(b->has_priority_classes && is_subset(&b->priority_classes, &a->priority_classes)))
        return false;
    for (size_t i = 0; i < a->label_count; i++) {
        if (!has_label(b, &a->labels[i]))
            return false;
    }
    return true;
}

static void check_shadowed(struct checker *k, const struct rule_build *rules, size_t i,
                           const char *path)
{
    char snip[SNIPPET_CHARS];

    for (size_t j = 0; j < i; j++) {
        const struct rule_build *a = &rules[j];

        if (!a->selectors_ok || a->r.name.len == 0 || !selects_all_of(&a->r, &rules[i].r))
            continue;
        policy_snippet(a->r.name, snip);
        policy_report(k, rules[i].h.node, path,
                      "can never match: rule \"%s\" (line %zu) selects every pod this one does",
                      snip, a->h.node->line);
        return;
    }
}

void policy_check_rule_item(struct checker *k, void *items, size_t i, const char *path)
{
    struct rule_build *rules = items;

    check_rule_name(k, rules, i, path);
    check_rule_match(k, &rules[i], path);
    if (rules[i].selectors_ok)
        check_shadowed(k, rules, i, path);
}

/* ---- class references, once every class is known ---- */

static bool is_named_before(const struct top_build *t, size_t i)
{
    for (size_t j = 0; j < i; j++) {
        if (str_eq(t->classes[j].c.name, t->classes[i].c.name))
            return true;
    }
    return false;
}

/* "h100, a100-80gb, t4", cut short with "..." */
static void list_classes(const struct top_build *t, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < t->class_count; i++) {
        const struct str *n = &t->classes[i].c.name;
        int w;

        if (n->len == 0 || is_named_before(t, i))
            continue;
        if (used + n->len + 2 > CLASS_LIST_CHARS) {
            snprintf(out + used, out_size - used, ", ...");
            return;
        }
        w = snprintf(out + used, out_size - used, "%s%.*s", used ? ", " : "", (int)n->len, n->ptr);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* The index of the class called name, or -1 after reporting it as undefined. A name that only
 * a class with an error of its own carries is not reported again. */
static long lookup_class(struct checker *k, struct str name, const struct ydoc_node *at,
                         const char *path)
{
    const struct top_build *t = k->top;
    char snip[SNIPPET_CHARS], known[CLASS_LIST_CHARS + 8];

    for (size_t i = 0; i < t->class_count; i++) {
        if (t->classes[i].c.name.len && str_eq(t->classes[i].c.name, name))
            return (long)i;
    }
    for (size_t i = 0; i < t->class_count; i++) {
        if (t->classes[i].h.bad && str_eq(t->classes[i].raw_name, name))
            return -1;
    }
    /* classes itself is broken: every name would be reported. */
    if (ydoc_map_find(k->root, "classes", NULL) && !t->has_classes)
        return -1;
    policy_snippet(name, snip);
    list_classes(t, known, sizeof(known));
    if (known[0])
        policy_report(k, at, path, "undefined class \"%s\" (defined classes: %s)", snip, known);
    else
        policy_report(k, at, path, "undefined class \"%s\" (no classes are defined)", snip);
    return -1;
}

/* Resolves the names in allow or forbid into indices; false when one is undefined. */
static bool resolve_names(struct checker *k, const struct rule_build *b, const char *key,
                          const char *path, const struct policy_strlist *names, size_t *count,
                          const uint32_t **out)
{
    const struct ydoc_node *seq = ydoc_map_find(b->h.node, key, NULL);
    const struct ydoc_node *item = seq ? seq->child : NULL;
    char ipath[PATH_MAX_CHARS];
    uint32_t *idx;
    bool ok = true;

    if (names->count == 0)
        return true;
    if (!(idx = policy_alloc_array(k, k->keep, names->count, sizeof(*idx))))
        return false;
    for (size_t i = 0; i < names->count; i++, item = item ? item->next : NULL) {
        long c;

        policy_pathf(ipath, "%s.%s[%zu]", path, key, i);
        c = lookup_class(k, names->items[i], item ? item : seq, ipath);
        ok = ok && c >= 0;
        idx[i] = c >= 0 ? (uint32_t)c : 0;
    }
    *out = idx;
    *count = names->count;
    return ok;
}

static bool index_in(const uint32_t *list, size_t n, uint32_t c)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == c)
            return true;
    }
    return false;
}

/* Checks one preference against the ones before it and against allow and forbid. */
static void check_pref(struct checker *k, const struct policy_rule *r, const long *idx, size_t j,
                       bool lists_ok, const struct ydoc_node *at, const char *path)
{
    const struct str *name = &k->top->classes[idx[j]].c.name;
    uint32_t c = (uint32_t)idx[j];
    char snip[SNIPPET_CHARS];

    policy_snippet(*name, snip);
    for (size_t i = 0; i < j; i++) {
        if (idx[i] == idx[j]) {
            policy_report(k, at, path, "duplicate class \"%s\" (first at prefer[%zu])", snip, i);
            return;
        }
    }
    if (!lists_ok)
        return;
    if (index_in(r->forbid, r->forbid_count, c))
        policy_report(k, at, path, "can never apply: class \"%s\" is in forbid", snip);
    else if (r->has_allow && !index_in(r->allow, r->allow_count, c))
        policy_report(k, at, path, "can never apply: class \"%s\" is not in allow", snip);
}

/* With no weight given, the i-th of n preferences weighs round(100 * (n - i) / n). */
static int64_t default_weight(size_t i, size_t n)
{
    return (int64_t)((200 * (n - i) + n) / (2 * n));
}

static void resolve_prefs(struct checker *k, struct rule_build *b, const char *path, bool lists_ok)
{
    long idx[POLICY_MAX_LIST];
    char cpath[PATH_MAX_CHARS];
    struct policy_pref *out;

    if (b->pref_count == 0 || !(out = policy_alloc_array(k, k->keep, b->pref_count, sizeof(*out))))
        return;
    for (size_t j = 0; j < b->pref_count && !policy_is_full(k); j++) {
        const struct pref_build *p = &b->prefs[j];
        const struct ydoc_node *at = p->h.node ? ydoc_map_find(p->h.node, "class", NULL) : NULL;

        idx[j] = -1;
        if (p->class_name.len == 0)
            continue; /* missing or invalid: reported by the walk */
        policy_pathf(cpath, "%s.prefer[%zu].class", path, j);
        idx[j] = lookup_class(k, p->class_name, at, cpath);
        if (idx[j] < 0)
            continue;
        check_pref(k, &b->r, idx, j, lists_ok, at, cpath);
        out[j].class_index = (uint32_t)idx[j];
        out[j].weight = p->has_weight ? p->weight : default_weight(j, b->pref_count);
    }
    b->r.prefer = out;
    b->r.prefer_count = b->pref_count;
}

static bool allows_nothing(const struct policy_rule *r)
{
    for (size_t i = 0; i < r->allow_count; i++) {
        if (!index_in(r->forbid, r->forbid_count, r->allow[i]))
            return false;
    }
    return true;
}

static void resolve_rule(struct checker *k, struct rule_build *b, const char *path)
{
    struct policy_rule *r = &b->r;
    char apath[PATH_MAX_CHARS];
    bool allow_ok, forbid_ok;

    allow_ok = resolve_names(k, b, "allow", path, &b->allow, &r->allow_count, &r->allow);
    forbid_ok = resolve_names(k, b, "forbid", path, &b->forbid, &r->forbid_count, &r->forbid);
    if (r->has_allow && allow_ok && forbid_ok && allows_nothing(r)) {
        policy_join(apath, path, "allow");
        policy_report(k, ydoc_map_find(b->h.node, "allow", NULL), apath,
                      "allows nothing: every class in it is also in forbid");
    }
    resolve_prefs(k, b, path, allow_ok && forbid_ok);
}

static void resolve_rules(struct checker *k)
{
    struct top_build *t = k->top;
    char path[PATH_MAX_CHARS];

    for (size_t i = 0; i < t->rule_count && !policy_is_full(k); i++) {
        if (!t->rules[i].h.node)
            continue; /* not a mapping: reported by the walk */
        policy_pathf(path, "rules[%zu]", i);
        resolve_rule(k, &t->rules[i], path);
    }
    if (t->default_rule.h.node && !policy_is_full(k))
        resolve_rule(k, &t->default_rule, "default");
}

/* ---- the document ---- */

void policy_check_document(struct checker *k, const struct ydoc_node *root)
{
    if (!root || ydoc_is_null(root)) {
        policy_report(k, root, "", "the policy is empty; it needs at least apiVersion and kind");
        return;
    }
    if (root->kind != YDOC_MAPPING) {
        policy_report(k, root, "", "expected a mapping at the top level, got %s",
                      ydoc_kind_name(root));
        return;
    }
    k->root = root;
    policy_walk_object(k, root, "", "", (unsigned char *)k->top);
    if (!policy_is_full(k))
        policy_check_weights(k, root);
    if (!policy_is_full(k))
        resolve_rules(k);
}
