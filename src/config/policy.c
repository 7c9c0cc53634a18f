/* policy.c -- policy YAML -> struct policy, driven by one schema table (see policy.h and
 * STYLE.md 2.7). Adding a key means adding a row below and a field to struct policy; the walk,
 * the defaults, the messages and the README check all follow from the table.
 *
 * Checking never stops at the first problem: every key is looked at and each problem becomes one
 * "file:line:col: key.path: message" line, up to POLICY_MAX_ERRORS, so a user fixes a file in one
 * pass. Values that fail a check are not stored, so later cross-field checks see defaults rather
 * than garbage. */
#include "gx/policy.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/str.h"
#include "policy_schema.h"
#include "yaml_doc.h"

enum schema_type {
    SCHEMA_CONST, /* a string that must be exactly names[0]; stored nowhere (apiVersion, kind) */
    SCHEMA_INT,   /* int64_t field, min..max */
    SCHEMA_BOOL,  /* bool field; only true and false are accepted */
    SCHEMA_ENUM,  /* enum field; names[i] spells value i */
};

struct schema_row {
    const char *path; /* dotted, e.g. "scoring.weights.model"; the parents are implied */
    enum schema_type type;
    size_t offset; /* of the field in struct policy, or NO_FIELD */
    size_t size;   /* of the field */
    int64_t min, max;
    int64_t def;              /* the default: integer, 0/1 for bools, index for enums */
    const char *const *names; /* ENUM: NULL-terminated spellings; CONST: the one value */
    bool required;
    const char *doc; /* one line; policy/README.md has the long form */
};

#define NO_FIELD SIZE_MAX
#define FIELD(f) offsetof(struct policy, f), sizeof(((struct policy *)0)->f)

#define ROW_CONST(path, names, doc) {path, SCHEMA_CONST, NO_FIELD, 0, 0, 0, 0, names, true, doc}
#define ROW_INT(path, field, lo, hi, def, doc)                                                     \
    {path, SCHEMA_INT, FIELD(field), lo, hi, def, NULL, false, doc}
#define ROW_BOOL(path, field, def, doc)                                                            \
    {path, SCHEMA_BOOL, FIELD(field), 0, 1, def, NULL, false, doc}
#define ROW_ENUM(path, field, names, def, doc)                                                     \
    {path, SCHEMA_ENUM, FIELD(field), 0, 0, def, names, false, doc}

static const char *const api_versions[] = {"gpu-extender.io/v1alpha1", NULL};
static const char *const kinds[] = {"GPUPolicy", NULL};
static const char *const strategies[] = {"binpack", "spread", NULL};

static const struct schema_row schema[] = {
    ROW_CONST("apiVersion", api_versions, "format version; must be gpu-extender.io/v1alpha1"),
    ROW_CONST("kind", kinds, "must be GPUPolicy"),
    ROW_ENUM("scoring.strategy", strategy, strategies, POLICY_BINPACK,
             "binpack fills partly used nodes first; spread prefers the emptiest nodes"),
    ROW_INT("scoring.weights.freeGPUs", weight_free_gpus, 0, POLICY_MAX_WEIGHT, 1,
            "weight of the free-GPU score"),
    ROW_INT("scoring.weights.model", weight_model, 0, POLICY_MAX_WEIGHT, 4,
            "weight of the GPU-model match score"),
    ROW_BOOL("podOverrides.strategy", pod_may_set_strategy, 1,
             "a pod may pick binpack or spread with annotation gpu-extender.io/strategy"),
};

#define SCHEMA_ROWS GX_ARRAY_LEN(schema)
#define WEIGHTS_SECTION "scoring.weights"

/* store() writes enum fields as 32-bit integers. */
static_assert(sizeof(enum policy_strategy) == sizeof(int32_t), "enum fields are 32 bits");

/* Long enough for any key in the table; longer paths are unknown keys anyway. */
#define PATH_MAX_CHARS 128
/* How much of the policy name and of an offending value a message repeats. */
#define MSG_NAME_CHARS 120
#define SNIPPET_CHARS 40

struct checker {
    const char *name;
    struct policy_diag *diag;
    size_t errors;
    struct policy *p;
    bool seen[SCHEMA_ROWS];
};

static void report(struct checker *k, const struct ydoc_node *at, const char *path,
                   const char *fmt, ...) GX_PRINTF(4, 5);

static void report(struct checker *k, const struct ydoc_node *at, const char *path,
                   const char *fmt, ...)
{
    size_t size = sizeof(k->diag->msgs[0]);
    va_list ap;
    char *slot;
    int n;

    k->errors++;
    if (!k->diag || k->diag->count >= POLICY_MAX_ERRORS)
        return;
    slot = k->diag->msgs[k->diag->count++];
    n = snprintf(slot, size, "%.*s:%zu:%zu: %s%s", MSG_NAME_CHARS, k->name, at ? at->line : 1,
                 at ? at->col : 1, path, path[0] ? ": " : "");
    if (n < 0 || (size_t)n >= size)
        return;
    va_start(ap, fmt);
    vsnprintf(slot + n, size - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool is_full(const struct checker *k)
{
    return k->errors >= POLICY_MAX_ERRORS;
}

static void add_message(struct policy_diag *diag, const char *msg)
{
    if (diag && diag->count < POLICY_MAX_ERRORS)
        snprintf(diag->msgs[diag->count++], sizeof(diag->msgs[0]), "%s", msg);
}

static void store(struct policy *p, const struct schema_row *r, int64_t v)
{
    unsigned char *dst;
    int32_t v32 = (int32_t)v;
    bool b = v != 0;

    if (r->offset == NO_FIELD)
        return;
    dst = (unsigned char *)p + r->offset;
    if (r->type == SCHEMA_BOOL)
        memcpy(dst, &b, sizeof(b));
    else if (r->size == sizeof(v32))
        memcpy(dst, &v32, sizeof(v32));
    else
        memcpy(dst, &v, sizeof(v));
}

static int64_t load_int(const struct policy *p, const struct schema_row *r)
{
    int64_t v;

    assert(r->type == SCHEMA_INT && r->size == sizeof(v));
    memcpy(&v, (const unsigned char *)p + r->offset, sizeof(v));
    return v;
}

static long find_row(const char *path)
{
    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (strcmp(schema[i].path, path) == 0)
            return (long)i;
    }
    return -1;
}

/* Does a row sit below prefix ("" is the top level)? Then prefix names a section. */
static bool row_has_prefix(const struct schema_row *r, const char *prefix)
{
    size_t n = strlen(prefix);

    if (n == 0)
        return true;
    return strncmp(r->path, prefix, n) == 0 && r->path[n] == '.';
}

static bool is_section(const char *path)
{
    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (row_has_prefix(&schema[i], path))
            return true;
    }
    return false;
}

/* The path segment of r just below prefix: "weights" for scoring.weights.model under scoring.
 * Only for rows that row_has_prefix() accepts. */
static struct str child_segment(const struct schema_row *r, const char *prefix)
{
    size_t skip = prefix[0] ? strlen(prefix) + 1 : 0;
    const char *seg = r->path + skip;
    const char *dot = strchr(seg, '.');

    return (struct str){seg, dot ? (size_t)(dot - seg) : strlen(seg)};
}

/* Lists the keys allowed directly under prefix, each once, for "unknown key" messages. */
static void list_children(const char *prefix, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < SCHEMA_ROWS && used < out_size; i++) {
        struct str seg;
        bool dup = false;
        int n;

        if (!row_has_prefix(&schema[i], prefix))
            continue;
        seg = child_segment(&schema[i], prefix);
        for (size_t j = 0; j < i && !dup; j++)
            dup = row_has_prefix(&schema[j], prefix) &&
                  str_eq(child_segment(&schema[j], prefix), seg);
        if (dup)
            continue;
        n = snprintf(out + used, out_size - used, "%s%.*s", used ? ", " : "", (int)seg.len,
                     seg.ptr);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Builds prefix.key into path. A key holding '.' or NUL, or one too long, cannot name anything
 * in the table, so it yields false and the caller reports it as unknown. */
static bool make_path(const char *prefix, const struct ydoc_node *key, char *path)
{
    size_t plen = strlen(prefix);

    if (memchr(key->text, '.', key->len) || memchr(key->text, '\0', key->len))
        return false;
    if (plen + 1 + key->len >= PATH_MAX_CHARS)
        return false;
    snprintf(path, PATH_MAX_CHARS, "%s%s%s", prefix, plen ? "." : "", key->text);
    return true;
}

static void report_unknown(struct checker *k, const struct ydoc_node *key, const char *prefix)
{
    char snip[SNIPPET_CHARS];
    char known[160];
    char path[PATH_MAX_CHARS + SNIPPET_CHARS];

    ydoc_snippet(key->text, key->len, snip, sizeof(snip));
    snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", snip);
    list_children(prefix, known, sizeof(known));
    report(k, key, path, "unknown key (known keys here: %s)", known);
}

/* Only keys before this one count, so the second occurrence is the one reported. */
static bool is_duplicate(const struct ydoc_node *map, const struct ydoc_node *key)
{
    for (const struct ydoc_node *k = map->child; k && k != key; k = k->next) {
        if (k->len == key->len && memcmp(k->text, key->text, key->len) == 0)
            return true;
    }
    return false;
}

/* Renders the spellings of an enum as "a or b" / "a, b or c". */
static void list_names(const char *const *names, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; names[i] && used < out_size; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
        int n = snprintf(out + used, out_size - used, "%s%s", sep, names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

static void describe_expected(const struct schema_row *r, char *out, size_t out_size)
{
    char names[128];

    switch (r->type) {
    case SCHEMA_INT:
        snprintf(out, out_size, "an integer %" PRId64 "..%" PRId64, r->min, r->max);
        break;
    case SCHEMA_BOOL:
        snprintf(out, out_size, "true or false");
        break;
    default:
        list_names(r->names, names, sizeof(names));
        snprintf(out, out_size, "%s", names);
        break;
    }
}

static void report_type(struct checker *k, const struct schema_row *r, const struct ydoc_node *v)
{
    char want[160];
    char snip[SNIPPET_CHARS];

    describe_expected(r, want, sizeof(want));
    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report(k, v, r->path, "expected %s, got %s", want, ydoc_kind_name(v));
        return;
    }
    ydoc_snippet(v->text, v->len, snip, sizeof(snip));
    report(k, v, r->path, "expected %s, got %s\"%s\"", want, v->plain ? "" : "quoted ", snip);
}

static bool decode_int(struct checker *k, const struct schema_row *r, const struct ydoc_node *v,
                       int64_t *out)
{
    char snip[SNIPPET_CHARS];
    enum err e;

    if (!v->plain) {
        report_type(k, r, v);
        return false;
    }
    e = str_to_i64((struct str){v->text, v->len}, INT64_MIN, INT64_MAX, out);
    if (e == ERR_PARSE) {
        report_type(k, r, v);
        return false;
    }
    if (e != ERR_OK || *out < r->min || *out > r->max) {
        ydoc_snippet(v->text, v->len, snip, sizeof(snip));
        report(k, v, r->path, "must be %" PRId64 "..%" PRId64 ", got %s", r->min, r->max, snip);
        return false;
    }
    return true;
}

/* Looks v up among names (exact, case-sensitive); *out is the index. */
static bool match_name(const char *const *names, const struct ydoc_node *v, int64_t *out)
{
    for (int64_t i = 0; names[i]; i++) {
        if (strlen(names[i]) == v->len && memcmp(names[i], v->text, v->len) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* YAML 1.1 would also read yes/no/on/off as booleans; we take only true and false so that
 * nobody has to know which YAML version a reader follows. */
static bool decode_bool(const struct ydoc_node *v, int64_t *out)
{
    static const char *const bools[] = {"false", "true", NULL};

    return v->plain && match_name(bools, v, out);
}

static void check_value(struct checker *k, size_t row, const struct ydoc_node *v)
{
    const struct schema_row *r = &schema[row];
    int64_t x = 0;
    bool ok;

    k->seen[row] = true;
    if (v->kind != YDOC_SCALAR || ydoc_is_null(v)) {
        report_type(k, r, v);
        return;
    }
    if (r->type == SCHEMA_INT) {
        /* Reports by itself, since it tells "not a number" from "out of range". */
        if (decode_int(k, r, v, &x))
            store(k->p, r, x);
        return;
    }
    ok = r->type == SCHEMA_BOOL ? decode_bool(v, &x) : match_name(r->names, v, &x);
    if (ok)
        store(k->p, r, x);
    else
        report_type(k, r, v);
}

static void walk_map(struct checker *k, const struct ydoc_node *map, const char *prefix);

static void walk_key(struct checker *k, const struct ydoc_node *map, const struct ydoc_node *key,
                     const char *prefix)
{
    char path[PATH_MAX_CHARS];
    long row = -1;
    bool section = false;

    if (make_path(prefix, key, path)) {
        row = find_row(path);
        section = row < 0 && is_section(path);
    }
    if (row < 0 && !section) {
        report_unknown(k, key, prefix);
        return;
    }
    if (is_duplicate(map, key)) {
        report(k, key, path, "duplicate key");
        return;
    }
    if (row >= 0)
        check_value(k, (size_t)row, key->value);
    else if (key->value->kind == YDOC_MAPPING)
        walk_map(k, key->value, path);
    else
        report(k, key->value, path, "expected a mapping, got %s", ydoc_kind_name(key->value));
}

/* Recursion follows the table's sections, so it is as deep as the deepest key, not the input. */
static void walk_map(struct checker *k, const struct ydoc_node *map, const char *prefix)
{
    for (const struct ydoc_node *key = map->child; key && !is_full(k); key = key->next)
        walk_key(k, map, key, prefix);
}

static void check_required(struct checker *k, const struct ydoc_node *root)
{
    for (size_t i = 0; i < SCHEMA_ROWS && !is_full(k); i++) {
        if (schema[i].required && !k->seen[i])
            report(k, root, schema[i].path, "required key is missing");
    }
}

/* Follows a dotted path of mapping keys from root; NULL when any step is missing. */
static const struct ydoc_node *node_at(const struct ydoc_node *root, const char *path)
{
    struct str rest = str_from_cstr(path), seg;
    char key[PATH_MAX_CHARS];
    const struct ydoc_node *n = root;

    while (n && str_split(&rest, '.', &seg)) {
        snprintf(key, sizeof(key), "%.*s", (int)seg.len, seg.ptr);
        n = ydoc_map_find(n, key, NULL);
    }
    return n;
}

/* With every weight at 0 all nodes score the same, which is never what anyone meant. */
static void check_weights(struct checker *k, const struct ydoc_node *root)
{
    int64_t sum = 0;

    for (size_t i = 0; i < SCHEMA_ROWS; i++) {
        if (schema[i].type == SCHEMA_INT && row_has_prefix(&schema[i], WEIGHTS_SECTION))
            sum += load_int(k->p, &schema[i]);
    }
    if (sum == 0)
        report(k, node_at(root, WEIGHTS_SECTION), WEIGHTS_SECTION,
               "every weight is 0, so all nodes would score the same; set at least one above 0");
}

static void check_document(struct checker *k, const struct ydoc_node *root)
{
    if (!root || ydoc_is_null(root)) {
        report(k, root, "", "the policy is empty; it needs at least apiVersion and kind");
        return;
    }
    if (root->kind != YDOC_MAPPING) {
        report(k, root, "", "expected a mapping at the top level, got %s", ydoc_kind_name(root));
        return;
    }
    walk_map(k, root, "");
    check_required(k, root);
    if (!is_full(k))
        check_weights(k, root);
}

/* FNV-1a, 64 bits: cheap, and good enough to tell two policy files apart in logs. */
static void hash_text(const char *text, size_t len, char out[17])
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= UINT64_C(0x100000001b3);
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

void policy_default(struct policy *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < SCHEMA_ROWS; i++)
        store(out, &schema[i], schema[i].def);
    snprintf(out->source, sizeof(out->source), "embedded default");
    snprintf(out->hash, sizeof(out->hash), "0000000000000000");
}

enum err policy_parse(const char *name, const char *text, size_t len, struct policy *out,
                      struct policy_diag *diag)
{
    struct checker k = {.name = name ? name : "(policy)", .diag = diag};
    struct policy p;
    struct errbuf eb;
    struct ydoc doc;

    if (diag)
        diag->count = 0;
    errbuf_clear(&eb);
    /* The tree cannot be built: report why (its caps included) as a parse error. */
    if (ydoc_parse(&doc, k.name, text, len, &eb) != ERR_OK) {
        add_message(diag, eb.msg);
        return ERR_PARSE;
    }
    policy_default(&p);
    k.p = &p;
    check_document(&k, doc.root);
    ydoc_destroy(&doc);
    if (k.errors > 0)
        return ERR_INVALID;
    snprintf(p.source, sizeof(p.source), "%s", k.name);
    hash_text(text, len, p.hash);
    *out = p;
    return ERR_OK;
}

enum err policy_load(const char *path, struct policy *out, struct policy_diag *diag)
{
    struct errbuf eb;
    char *text;
    size_t len;
    enum err e;

    if (diag)
        diag->count = 0;
    errbuf_clear(&eb);
    e = ydoc_read_file(path, POLICY_MAX_FILE_BYTES, &text, &len, &eb);
    if (e != ERR_OK) {
        add_message(diag, eb.msg);
        return e;
    }
    e = policy_parse(path, text, len, out, diag);
    free(text);
    return e;
}

const char *policy_strategy_name(enum policy_strategy s)
{
    if ((size_t)s >= GX_ARRAY_LEN(strategies) - 1)
        return "unknown";
    return strategies[s];
}

size_t policy_schema_count(void)
{
    return SCHEMA_ROWS;
}

const char *policy_schema_key(size_t i)
{
    return i < SCHEMA_ROWS ? schema[i].path : NULL;
}
