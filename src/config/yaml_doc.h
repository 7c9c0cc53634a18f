/* yaml_doc.h -- private to src/config: turns one YAML document into a small tree of scalar,
 * sequence and mapping nodes, each carrying its 1-based line and column so callers can report
 * "file:line:col". libyaml is used by yaml_doc.c only; nothing here exposes it.
 *
 * It does not interpret scalars (no ints, bools or nulls beyond ydoc_is_null()) and knows no
 * schema. To keep hostile input cheap it caps the node count (YDOC_MAX_NODES) and the nesting
 * depth (YDOC_MAX_DEPTH) and it rejects anchors, aliases and explicit tags outright: none of
 * our files need them, and aliases are the classic way to make a small file expand into a huge
 * tree. A stream may hold at most one document; mapping keys must be scalars. Duplicate keys are
 * kept as written; callers decide whether that is an error (ydoc_map_find() reports them). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/arena.h"
#include "gx/compiler.h"
#include "gx/err.h"

#define YDOC_MAX_DEPTH 64
#define YDOC_MAX_NODES 65536

enum ydoc_kind { YDOC_SCALAR, YDOC_SEQUENCE, YDOC_MAPPING };

/* A node lives in its document's arena until ydoc_destroy(). A mapping's children are its keys
 * (always scalars), in file order, linked through next; each key's value hangs off the key and,
 * once ydoc_parse() has succeeded, is never NULL (`key:` alone gives a null scalar). */
struct ydoc_node {
    enum ydoc_kind kind;
    size_t line; /* 1-based */
    size_t col;  /* 1-based, in characters */
    /* Scalars only: the decoded text, NUL-terminated at len (it may hold NULs of its own when
     * written with "\0" escapes), and whether it was written plain, without quotes or '|'/'>'.
     * Only plain scalars can mean null, true or 42 in YAML. */
    const char *text;
    size_t len;
    bool plain;
    struct ydoc_node *child; /* sequence: first item; mapping: first key */
    size_t count;            /* sequence: items; mapping: keys */
    struct ydoc_node *next;  /* next item of the parent sequence, or next key of the parent map */
    struct ydoc_node *value; /* set on mapping keys only: the value */
};

/* Owns every node. Zero-initialise or pass to ydoc_parse(); free with ydoc_destroy(). */
struct ydoc {
    struct arena arena;
    struct ydoc_node *root; /* NULL when the stream holds no document (empty, comments only) */
    size_t node_count;
};

/* Parses text[0..len) (need not be NUL-terminated) into *doc, which is overwritten. name is
 * used in messages only. On failure returns ERR_PARSE (bad YAML, or a refused construct:
 * anchor, alias, tag, non-scalar key, second document) or ERR_TOO_LARGE (past a cap), with
 * "name:line:col: reason" in eb, and leaves *doc empty; ydoc_destroy() is safe either way. */
enum err ydoc_parse(struct ydoc *doc, const char *name, const char *text, size_t len,
                    struct errbuf *eb) GX_MUST_CHECK;

/* Frees every node; *doc is left empty. NULL is a no-op. */
void ydoc_destroy(struct ydoc *doc);

/* Returns the value of key in map, or NULL when map is not a mapping or lacks the key. When the
 * key appears more than once, the first value is returned and *dup (if not NULL) is set to the
 * second key node, else to NULL, so callers can report the duplicate. */
const struct ydoc_node *ydoc_map_find(const struct ydoc_node *map, const char *key,
                                      const struct ydoc_node **dup);

/* True for a plain scalar that YAML reads as null: empty, "~", "null", "Null" or "NULL". */
bool ydoc_is_null(const struct ydoc_node *n);

/* Names the node's kind for messages: "a mapping", "a sequence", "null" or "a scalar". */
const char *ydoc_kind_name(const struct ydoc_node *n);

/* Copies s[0..len) into out (out_size > 4) as a printable one-line snippet for messages:
 * bytes outside printable ASCII become '?', and long text is cut short with "...". */
void ydoc_snippet(const char *s, size_t len, char *out, size_t out_size);

/* Reads the whole file at path into a malloc'd, NUL-terminated buffer the caller frees.
 * Returns ERR_IO when it cannot be opened or read, ERR_TOO_LARGE past max_bytes, with
 * "path: reason" in eb. *data and *len are written only on success. */
enum err ydoc_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                        struct errbuf *eb) GX_MUST_CHECK;
