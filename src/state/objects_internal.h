/* objects_internal.h -- private to src/state: the readers objects.c and pdb.c share. Each
 * consumes the value at the cursor, or fails the scan with a message. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/arena.h"
#include "gx/jscan.h"
#include "gx/str.h"

/* A string value, decoded; null leaves *out as it was. */
bool obj_read_string(struct jscan *js, struct arena *arena, struct str *out);
/* A value kept as its raw JSON text (taints, labels, selectors): null and empty containers
 * leave out empty; any other type than want fails with msg. */
bool obj_read_raw(struct jscan *js, enum jtype want, const char *msg, struct str *out);
/* Fails on a value that should have been an object. At the end of the input, skipping yields
 * the precise syntax error ("unexpected end of input") instead of a type complaint. */
bool obj_not_object(struct jscan *js, const char *msg);
/* Walks one object level: fn sees every member, with -1 for keys not in names. A null in
 * place of the object reads as an empty one; a repeated wanted key fails the scan. */
bool obj_walk(struct jscan *js, const char *const *names, size_t n, jscan_member_fn *fn, void *ctx);

/* How to read an API object's metadata, spec and status (in that order; a NULL fn skips
 * that part). */
struct obj_parts {
    const char *const *names[3];
    size_t counts[3];
    jscan_member_fn *fns[3];
};

/* Walks the object at the cursor by its parts; other top-level keys are skipped. */
bool obj_walk_parts(struct jscan *js, const struct obj_parts *parts, void *ctx);
