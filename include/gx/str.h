/* str.h -- string views over wire data, which is never assumed NUL-terminated, and
 * range-checked number parsing. Pure functions; thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"

struct str {
    const char *ptr;
    size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})
#define STR_NULL ((struct str){NULL, 0})

struct str str_from_cstr(const char *s);
bool str_eq(struct str a, struct str b);
bool str_eq_cstr(struct str a, const char *b);
/* ASCII case-insensitive equality. */
bool str_ieq(struct str a, struct str b);
bool str_ieq_cstr(struct str a, const char *b);
/* ASCII case-insensitive: does needle occur in hay? An empty needle occurs everywhere. */
bool str_icontains(struct str hay, struct str needle);
bool str_has_prefix(struct str s, const char *prefix);
/* Strips ASCII spaces and tabs from both ends. */
struct str str_trim(struct str s);
/* Splits off the text before the first sep; *rest becomes what follows (empty at the end).
 * Returns false once s is empty. Iterates comma lists: while (str_split(&s, ',', &item)). */
bool str_split(struct str *s, char sep, struct str *item);

/* Parses a whole decimal integer (optional sign) within [min, max]. */
enum err str_to_i64(struct str s, int64_t min, int64_t max, int64_t *out) GX_MUST_CHECK;
enum err str_to_i64_cstr(const char *s, int64_t min, int64_t max, int64_t *out) GX_MUST_CHECK;
