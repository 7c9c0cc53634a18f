/* policy_internal.h -- private to src/config: what the three files of the policy loader share.
 * policy_schema.c holds the schema table and the walk that checks a document against it and
 * fills the build objects below; policy_check.c holds the checks on a whole class or rule and
 * on class references, and runs a document through both; policy.c turns the build objects into
 * a struct policy and owns its lifecycle. policy.c's opening comment describes the design.
 * Nothing outside src/config includes this. */
#pragma once

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/arena.h"
#include "gx/compiler.h"
#include "gx/policy.h"
#include "gx/str.h"

#include "yaml_doc.h"

/* Long enough for any path in the table, with list indices; longer keys are unknown anyway. */
#define PATH_MAX_CHARS 128
/* How much of an offending value a message repeats. */
#define SNIPPET_CHARS 40

/* ---- build objects: what the walk fills, before they become the policy ---- */

/* Every object the table writes into starts with this, so offset 0 never names a field and
 * rows use 0 for "no field". */
struct item_head {
    const struct ydoc_node *node; /* the mapping it was read from; NULL when absent */
    bool bad;                     /* an error was reported inside it */
};

struct class_build {
    struct item_head h;
    struct policy_class c;
    struct str raw_name; /* the name as written, even when invalid */
};

struct pref_build {
    struct item_head h;
    struct str class_name;
    int64_t weight;
    bool has_weight;
};

struct rule_build {
    struct item_head h;
    struct policy_rule r;                /* selectors, strategy, topology, overrides */
    struct policy_strlist allow, forbid; /* class names; r.allow and r.forbid once resolved */
    bool has_forbid, has_labels, has_strategy;
    struct policy_overrides has_overrides; /* which podOverrides keys the rule gives */
    size_t pref_count;
    struct pref_build *prefs;
    bool selectors_ok; /* match is given, not empty, and every selector in it is valid */
};

struct top_build {
    struct item_head h;
    enum policy_strategy strategy;
    int64_t weight_free_gpus, weight_model, weight_topology, weight_scarcity;
    struct policy_overrides overrides;
    bool has_classes;
    size_t class_count;
    struct class_build *classes;
    size_t rule_count;
    struct rule_build *rules;
    struct rule_build default_rule;
};

static_assert(offsetof(struct class_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct pref_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct rule_build, h) == 0, "rows use offset 0 for no field");
static_assert(offsetof(struct top_build, h) == 0, "rows use offset 0 for no field");

/* One load (or the building of the default policy): where its messages go, how many there
 * were, the arenas values are copied into, and the build objects being filled. */
struct checker {
    const char *name;
    struct policy_diag *diag;
    size_t errors;
    bool too_large;       /* an arena cap was hit: the load fails with one message */
    struct arena *keep;   /* the policy's arena */
    struct arena scratch; /* build objects */
    const struct ydoc_node *root;
    struct top_build *top;
};

/* ---- the walk and its helpers (policy_schema.c) ---- */

/* Reports one error at at (NULL: line 1, column 1) under path ("" for none), formatted
 * "name:line:col: path: message" into k->diag; counts it even when diag is full or NULL. */
void policy_report(struct checker *k, const struct ydoc_node *at, const char *path, const char *fmt,
                   ...) GX_PRINTF(4, 5);
/* Have POLICY_MAX_ERRORS been reported? Then checking stops. */
bool policy_is_full(const struct checker *k);
/* Adds msg as it is (no location) to diag, which may be NULL. */
void policy_add_message(struct policy_diag *diag, const char *msg);
/* s as a printable one-line snippet of under SNIPPET_CHARS (ydoc_snippet()), for messages. */
void policy_snippet(struct str s, char out[SNIPPET_CHARS]);
/* A node's text as a view. */
struct str policy_node_str(const struct ydoc_node *n);
/* count (> 0) zeroed items of size bytes from a; NULL, with k->too_large set, when a is full
 * or count * size overflows. */
void *policy_alloc_array(struct checker *k, struct arena *a, size_t count, size_t size);
/* Formats a key path into out (PATH_MAX_CHARS bytes); one cut short only shortens a message. */
void policy_pathf(char *out, const char *fmt, ...) GX_PRINTF(2, 3);
/* Writes prefix.seg into out (PATH_MAX_CHARS bytes), or seg alone when prefix is "". */
void policy_join(char *out, const char *prefix, const char *seg);
/* Stores the defaults of the rows of one object into base: the scalars below prefix ("" for the
 * top level), through sections but not into lists, whose items are objects of their own. */
void policy_apply_defaults(const char *prefix, unsigned char *base);
/* Walks the mapping v against the rows below spath into the object base (a build object),
 * naming keys mpath.key in messages; sets the object's item_head. */
void policy_walk_object(struct checker *k, const struct ydoc_node *v, const char *spath,
                        const char *mpath, unsigned char *base);
/* Reports a policy whose scoring weights, as walked into k->top, are all 0. */
void policy_check_weights(struct checker *k, const struct ydoc_node *root);

/* ---- checks on whole items and class references (policy_check.c) ---- */

/* The hooks of the classes and rules rows: check item i of items (an array of class_build or
 * rule_build) once the walk has read it, against the items before it. */
void policy_check_class_item(struct checker *k, void *items, size_t i, const char *path);
void policy_check_rule_item(struct checker *k, void *items, size_t i, const char *path);
/* Steps 1 and 2 of the load: walks root into k->top, then checks the weights and resolves
 * every class reference. Every error goes through policy_report(). */
void policy_check_document(struct checker *k, const struct ydoc_node *root);
