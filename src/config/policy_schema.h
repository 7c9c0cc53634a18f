/* policy_schema.h -- private to src/config: a read-only view of the policy schema table's keys,
 * so a test can check that policy/README.md documents exactly the keys the table knows. The
 * table itself, and everything it drives, stays in policy_schema.c (policy_internal.h has what
 * the other files of the loader share). */
#pragma once

#include <stddef.h>

/* Number of keys in the schema table: every key, section and list of the format. */
size_t policy_schema_count(void);

/* Path of key i, e.g. "scoring.weights.model", "classes" or "rules[].prefer[].weight" (the
 * items of a list are written "[]"); NULL when i >= policy_schema_count(). The string is
 * static. */
const char *policy_schema_key(size_t i);
