/* pdb.c -- PodDisruptionBudgets as preemption counts them, and label selectors (see
 * objects.h). The reading is kube-scheduler's (filterPodsWithPDBViolation and
 * metav1.LabelSelectorAsSelector): a budget covers a pod in its namespace that has labels,
 * that its selector matches, and that is not already in its status.disruptedPods. */
#include <string.h>

#include "gx/objects.h"

#include "objects_internal.h"

/* Room for a decoded label key (prefix 253 + '/' + name 63) or value (63): more never
 * matches, since the API server refuses longer ones. */
#define LABEL_TEXT_MAX 320

struct pdb_ctx {
    struct arena *arena;
    struct pdb_info *pdb;
};

static const char *const pdb_meta_names[] = {"name", "namespace"};

static bool pdb_meta(struct jscan *js, int idx, void *ctx)
{
    struct pdb_ctx *c = ctx;

    if (idx == 0)
        return obj_read_string(js, c->arena, &c->pdb->name);
    if (idx == 1)
        return obj_read_string(js, c->arena, &c->pdb->ns);
    return jscan_skip(js, NULL);
}

static const char *const pdb_spec_names[] = {"selector"};

static bool pdb_spec(struct jscan *js, int idx, void *ctx)
{
    struct pdb_ctx *c = ctx;

    if (idx == 0) {
        /* null and "{}" both leave it empty: a selector that covers no pod. */
        return obj_read_raw(js, JSON_OBJECT, "pdb spec.selector is not an object",
                            &c->pdb->selector);
    }
    return jscan_skip(js, NULL);
}

static const char *const pdb_status_names[] = {"disruptionsAllowed", "disruptedPods"};

static bool pdb_status(struct jscan *js, int idx, void *ctx)
{
    struct pdb_ctx *c = ctx;
    struct str span;
    int64_t v;

    if (idx == 0) {
        if (jscan_peek(js) == JSON_NULL)
            return jscan_skip(js, NULL);
        if (jscan_peek(js) != JSON_NUMBER || !jscan_skip(js, &span) ||
            str_to_i64(span, INT32_MIN, INT32_MAX, &v) != ERR_OK)
            return jscan_fail(js, "pdb status.disruptionsAllowed is not an int32");
        c->pdb->allowed = (int32_t)v;
        return true;
    }
    if (idx == 1)
        return obj_read_raw(js, JSON_OBJECT, "pdb status.disruptedPods is not an object",
                            &c->pdb->disrupted);
    return jscan_skip(js, NULL);
}

static const struct obj_parts pdb_parts = {
    .names = {pdb_meta_names, pdb_spec_names, pdb_status_names},
    .counts = {GX_ARRAY_LEN(pdb_meta_names), GX_ARRAY_LEN(pdb_spec_names),
               GX_ARRAY_LEN(pdb_status_names)},
    .fns = {pdb_meta, pdb_spec, pdb_status}};

bool obj_pdb_decode(struct jscan *js, struct arena *arena, struct pdb_info *out)
{
    struct pdb_ctx c = {.arena = arena, .pdb = out};

    memset(out, 0, sizeof(*out));
    if (jscan_peek(js) != JSON_OBJECT)
        return obj_not_object(js, "pdb is not an object");
    return obj_walk_parts(js, &pdb_parts, &c);
}

/* ---- label selectors ---- */

/* A string value decoded into buf; false for another type or text that does not fit. */
static bool string_into(struct jscan *js, char *buf, size_t cap, struct str *out)
{
    struct str raw;
    size_t n;

    if (jscan_peek(js) != JSON_STRING || !jscan_string(js, &raw))
        return false;
    if (jstr_is_plain(raw)) {
        *out = raw;
        return true;
    }
    n = jstr_decode(raw, buf, cap);
    if (n == SIZE_MAX)
        return false;
    *out = (struct str){buf, n};
    return true;
}

enum sel_op { SEL_IN, SEL_NOT_IN, SEL_EXISTS, SEL_NOT_EXISTS };

/* Walks "values" of one expression: *count gets how many, *hit whether want is among them. */
static bool values_scan(struct jscan *js, struct str want, bool have, size_t *count, bool *hit)
{
    char buf[LABEL_TEXT_MAX];
    struct str v;
    int r;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL);
    if (!jscan_enter_array(js))
        return false;
    while ((r = jscan_next_element(js)) == 1) {
        if (!string_into(js, buf, sizeof(buf), &v))
            return false;
        (*count)++;
        *hit |= have && str_eq(v, want);
    }
    return r == 0;
}

/* One matchExpressions entry: 1 matches, 0 does not, -1 invalid (the selector matches
 * nothing). The key must come before the values for a one-pass read; the API server writes
 * them in that order, and anything else is treated as invalid. */
static int expression_matches(struct jscan *js, struct str labels)
{
    char kbuf[LABEL_TEXT_MAX], lbuf[LABEL_TEXT_MAX], obuf[32];
    struct str key = STR_NULL, op = STR_NULL, mk, label = STR_NULL;
    bool have_key = false, have = false, hit = false, values_seen = false;
    size_t count = 0;
    enum sel_op o;
    int r;

    if (!jscan_enter_object(js))
        return -1;
    while ((r = jscan_next_member(js, &mk)) == 1) {
        if (str_eq_cstr(mk, "key")) {
            if (have_key || values_seen || !string_into(js, kbuf, sizeof(kbuf), &key))
                return -1;
            have_key = true;
            have = obj_label_get(labels, key, lbuf, sizeof(lbuf), &label);
        } else if (str_eq_cstr(mk, "operator")) {
            if (!string_into(js, obuf, sizeof(obuf), &op))
                return -1;
        } else if (str_eq_cstr(mk, "values")) {
            if (!have_key || values_seen || !values_scan(js, label, have, &count, &hit))
                return -1;
            values_seen = true;
        } else if (!jscan_skip(js, NULL)) {
            return -1;
        }
    }
    if (r != 0 || !have_key || key.len == 0)
        return -1;
    if (str_eq_cstr(op, "In"))
        o = SEL_IN;
    else if (str_eq_cstr(op, "NotIn"))
        o = SEL_NOT_IN;
    else if (str_eq_cstr(op, "Exists"))
        o = SEL_EXISTS;
    else if (str_eq_cstr(op, "DoesNotExist"))
        o = SEL_NOT_EXISTS;
    else
        return -1;
    if ((o == SEL_IN || o == SEL_NOT_IN) != (count > 0))
        return -1; /* In and NotIn need values; Exists and DoesNotExist take none */
    switch (o) {
    case SEL_IN:
        return hit;
    case SEL_NOT_IN:
        return !have || !hit;
    case SEL_EXISTS:
        return have;
    default:
        return !have;
    }
}

/* matchLabels: every pair must be a label of the pod. Counts the pairs into *terms. */
static int match_labels(struct jscan *js, struct str labels, size_t *terms)
{
    char kbuf[LABEL_TEXT_MAX], vbuf[LABEL_TEXT_MAX], lbuf[LABEL_TEXT_MAX];
    struct str k, key, want, have;
    int r, all = 1;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL) ? 1 : -1;
    if (!jscan_enter_object(js))
        return -1;
    while ((r = jscan_next_member(js, &k)) == 1) {
        size_t n = jstr_decode(k, kbuf, sizeof(kbuf));
        if (n == SIZE_MAX || !string_into(js, vbuf, sizeof(vbuf), &want))
            return -1;
        key = (struct str){kbuf, n};
        (*terms)++;
        if (!obj_label_get(labels, key, lbuf, sizeof(lbuf), &have) || !str_eq(have, want))
            all = 0;
    }
    return r == 0 ? all : -1;
}

static int match_expressions(struct jscan *js, struct str labels, size_t *terms)
{
    int r, all = 1;

    if (jscan_peek(js) == JSON_NULL)
        return jscan_skip(js, NULL) ? 1 : -1;
    if (!jscan_enter_array(js))
        return -1;
    while ((r = jscan_next_element(js)) == 1) {
        int m = expression_matches(js, labels);
        if (m < 0)
            return -1;
        (*terms)++;
        all &= m;
    }
    return r == 0 ? all : -1;
}

bool obj_selector_matches(struct str selector, struct str labels)
{
    struct jscan js;
    struct str k;
    size_t terms = 0;
    int r, all = 1;

    if (selector.len == 0)
        return false;
    jscan_init(&js, selector.ptr, selector.len, 8);
    if (!jscan_enter_object(&js))
        return false;
    while ((r = jscan_next_member(&js, &k)) == 1) {
        int m;
        if (str_eq_cstr(k, "matchLabels"))
            m = match_labels(&js, labels, &terms);
        else if (str_eq_cstr(k, "matchExpressions"))
            m = match_expressions(&js, labels, &terms);
        else
            m = jscan_skip(&js, NULL) ? 1 : -1;
        if (m < 0)
            return false;
        all &= m;
    }
    /* An empty selector selects everything to the API but nothing to preemption. */
    return r == 0 && terms > 0 && all;
}

/* Is name a key of the raw JSON object disrupted? */
static bool disrupted_has(struct str disrupted, struct str name)
{
    char buf[LABEL_TEXT_MAX];
    struct jscan js;
    struct str k;

    if (disrupted.len == 0)
        return false;
    jscan_init(&js, disrupted.ptr, disrupted.len, 4);
    if (!jscan_enter_object(&js))
        return false;
    while (jscan_next_member(&js, &k) == 1) {
        size_t n = jstr_decode(k, buf, sizeof(buf));
        if (n != SIZE_MAX && str_eq((struct str){buf, n}, name))
            return true;
        if (!jscan_skip(&js, NULL))
            return false;
    }
    return false;
}

bool obj_pdb_covers(const struct pdb_info *pdb, struct str ns, struct str name, struct str labels)
{
    return labels.len > 0 && str_eq(pdb->ns, ns) && obj_selector_matches(pdb->selector, labels) &&
           !disrupted_has(pdb->disrupted, name);
}
