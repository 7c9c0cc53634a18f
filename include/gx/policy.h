/* policy.h -- the scheduling policy: an immutable struct loaded from a YAML file (libyaml)
 * and validated against a schema table, or the embedded default. Readers hold a reference
 * while they decide; a reload builds a new policy and swaps it in.
 *
 * This is the subset the protocol issue needs (strategy and score weights). Model classes,
 * rules and pod selectors come with the policy issue and extend the same schema table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"

enum policy_strategy { POLICY_BINPACK = 0, POLICY_SPREAD = 1 };

#define POLICY_MAX_WEIGHT 100
#define POLICY_MAX_FILE_BYTES (1024 * 1024)
#define POLICY_MAX_ERRORS 20

struct policy {
    enum policy_strategy strategy; /* scoring.strategy, default binpack */
    int64_t weight_free_gpus;      /* scoring.weights.freeGPUs, 0..100, default 1 */
    int64_t weight_model;          /* scoring.weights.model, 0..100, default 4 */
    bool pod_may_set_strategy;     /* podOverrides.strategy, default true */
    char source[256];              /* the file path, or "embedded default" */
    char hash[17];                 /* 16 hex digits of a 64-bit FNV-1a hash of the file bytes */
};

/* Diagnostics from one load: up to POLICY_MAX_ERRORS messages, each formatted
 * "file:line:col: key.path: message". */
struct policy_diag {
    size_t count;
    char msgs[POLICY_MAX_ERRORS][256];
};

/* Fills *out with the built-in defaults (identical to policy/default.yaml). */
void policy_default(struct policy *out);

/* Parses and validates text (len bytes; need not be NUL-terminated). name is used in
 * messages, usually the file path. Every error is collected in diag (up to the limit) in one
 * pass: unknown keys, wrong types, out-of-range values, bad enum values. Returns ERR_OK and
 * fills *out, or ERR_INVALID/ERR_PARSE with *out untouched. diag may be NULL.
 * ERR_INVALID also covers duplicate keys, a missing apiVersion or kind, every weight at 0 and an
 * empty document. ERR_PARSE (bad YAML, or input past the parser's caps: 64 levels of nesting,
 * 65536 nodes; anchors, aliases and tags are refused) comes with exactly one message. diag is
 * reset first. source is name, truncated to fit. Pure; thread-safe. */
enum err policy_parse(const char *name, const char *text, size_t len, struct policy *out,
                      struct policy_diag *diag) GX_MUST_CHECK;

/* Reads path (capped at POLICY_MAX_FILE_BYTES: ERR_TOO_LARGE) and calls policy_parse().
 * ERR_IO when the file cannot be opened or read. Those two come with one "path: reason" message
 * in diag (no line:col). */
enum err policy_load(const char *path, struct policy *out, struct policy_diag *diag) GX_MUST_CHECK;

const char *policy_strategy_name(enum policy_strategy s);
