/* yaml_doc.c -- libyaml's event stream turned into a node tree (see yaml_doc.h). Open
 * collections sit on an explicit, fixed-size stack rather than the C stack, so the depth cap
 * is also what bounds memory for deeply nested input, and no recursion is involved. */
#include "yaml_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "gx/buf.h"

/* Node memory is bounded by YDOC_MAX_NODES and scalar copies by the caller's input cap; this
 * only stops a bug from eating the pod's memory. */
#define YDOC_ARENA_BYTES ((size_t)256 * 1024 * 1024)
#define READ_CHUNK_BYTES 16384

struct frame {
    struct ydoc_node *node;
    struct ydoc_node *tail; /* last child, so appending is O(1) */
    struct ydoc_node *key;  /* mapping only: the key still waiting for its value */
};

struct builder {
    struct ydoc *doc;
    const char *name;
    struct errbuf *eb;
    struct frame stack[YDOC_MAX_DEPTH];
    size_t depth;
    size_t documents;
};

static enum err fail(struct builder *b, size_t line, size_t col, enum err e, const char *fmt, ...)
    GX_PRINTF(5, 6);

static enum err fail(struct builder *b, size_t line, size_t col, enum err e, const char *fmt, ...)
{
    char reason[ERRBUF_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    errbuf_set(b->eb, "%s:%zu:%zu: %s", b->name, line, col, reason);
    return e;
}

/* Reader errors (bad UTF-8, control characters) carry a byte offset but no mark. */
static void offset_to_line_col(const char *text, size_t len, size_t offset, size_t *line,
                               size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static enum err syntax_error(struct builder *b, const yaml_parser_t *p, const char *text,
                             size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown problem";
    size_t line = p->problem_mark.line + 1;
    size_t col = p->problem_mark.column + 1;

    if (p->error == YAML_MEMORY_ERROR)
        return fail(b, 1, 1, ERR_NOMEM, "out of memory while parsing YAML");
    if (p->error == YAML_READER_ERROR) {
        offset_to_line_col(text, len, p->problem_offset, &line, &col);
        return fail(b, line, col, ERR_PARSE, "invalid YAML: %s", problem);
    }
    if (p->context)
        return fail(b, line, col, ERR_PARSE, "invalid YAML: %s (%s at %zu:%zu)", problem,
                    p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(b, line, col, ERR_PARSE, "invalid YAML: %s", problem);
}

/* Anchors are refused along with aliases: an anchor is only useful to an alias, and saying so
 * at the anchor points the user at the right line. Explicit tags would change how a scalar is
 * read, and none of our formats use them. */
static enum err check_properties(struct builder *b, const yaml_event_t *ev,
                                 const yaml_char_t *anchor, const yaml_char_t *tag)
{
    size_t line = ev->start_mark.line + 1;
    size_t col = ev->start_mark.column + 1;
    char snip[48];

    if (anchor) {
        ydoc_snippet((const char *)anchor, strlen((const char *)anchor), snip, sizeof(snip));
        return fail(b, line, col, ERR_PARSE, "YAML anchors (&%s) are not supported", snip);
    }
    if (tag) {
        ydoc_snippet((const char *)tag, strlen((const char *)tag), snip, sizeof(snip));
        return fail(b, line, col, ERR_PARSE, "YAML tags (%s) are not supported", snip);
    }
    return ERR_OK;
}

static enum err new_node(struct builder *b, enum ydoc_kind kind, const yaml_mark_t *mark,
                         struct ydoc_node **out)
{
    struct ydoc_node *n;

    if (b->doc->node_count >= YDOC_MAX_NODES)
        return fail(b, mark->line + 1, mark->column + 1, ERR_TOO_LARGE,
                    "document has more than %d nodes", YDOC_MAX_NODES);
    n = arena_zalloc(&b->doc->arena, sizeof(*n));
    if (!n)
        return fail(b, mark->line + 1, mark->column + 1, ERR_TOO_LARGE, "document too large");
    n->kind = kind;
    n->line = mark->line + 1;
    n->col = mark->column + 1;
    b->doc->node_count++;
    *out = n;
    return ERR_OK;
}

static void append_child(struct frame *f, struct ydoc_node *n)
{
    if (f->tail)
        f->tail->next = n;
    else
        f->node->child = n;
    f->tail = n;
    f->node->count++;
}

/* Hangs n under the innermost open collection: as an item, a key, or the pending key's value. */
static enum err attach(struct builder *b, struct ydoc_node *n)
{
    struct frame *f;

    if (b->depth == 0) {
        b->doc->root = n;
        return ERR_OK;
    }
    f = &b->stack[b->depth - 1];
    if (f->node->kind == YDOC_SEQUENCE) {
        append_child(f, n);
    } else if (f->key) {
        f->key->value = n;
        f->key = NULL;
    } else if (n->kind != YDOC_SCALAR) {
        return fail(b, n->line, n->col, ERR_PARSE, "mapping keys must be plain strings");
    } else {
        append_child(f, n);
        f->key = n;
    }
    return ERR_OK;
}

static enum err on_scalar(struct builder *b, const yaml_event_t *ev)
{
    struct ydoc_node *n;
    enum err e;

    e = check_properties(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
    if (e == ERR_OK)
        e = new_node(b, YDOC_SCALAR, &ev->start_mark, &n);
    if (e != ERR_OK)
        return e;
    /* new_node() sets n whenever it returns ERR_OK; the analyzer does not follow that. */
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
    n->len = ev->data.scalar.length;
    n->text = arena_strndup(&b->doc->arena, (const char *)ev->data.scalar.value, n->len);
    if (!n->text)
        return fail(b, n->line, n->col, ERR_TOO_LARGE, "document too large");
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    return attach(b, n);
}

static enum err on_collection_start(struct builder *b, const yaml_event_t *ev, enum ydoc_kind kind,
                                    const yaml_char_t *anchor, const yaml_char_t *tag)
{
    struct ydoc_node *n;
    enum err e;

    e = check_properties(b, ev, anchor, tag);
    if (e != ERR_OK)
        return e;
    if (b->depth == YDOC_MAX_DEPTH)
        return fail(b, ev->start_mark.line + 1, ev->start_mark.column + 1, ERR_TOO_LARGE,
                    "nesting is deeper than %d levels", YDOC_MAX_DEPTH);
    e = new_node(b, kind, &ev->start_mark, &n);
    if (e == ERR_OK)
        e = attach(b, n); /* NOLINT(clang-analyzer-core.CallAndMessage): set on ERR_OK */
    if (e != ERR_OK)
        return e;
    b->stack[b->depth++] = (struct frame){.node = n};
    return ERR_OK;
}

static enum err on_event(struct builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (b->documents++ > 0)
            return fail(b, ev->start_mark.line + 1, ev->start_mark.column + 1, ERR_PARSE,
                        "only one YAML document is allowed");
        return ERR_OK;
    case YAML_ALIAS_EVENT:
        return fail(b, ev->start_mark.line + 1, ev->start_mark.column + 1, ERR_PARSE,
                    "YAML aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, ev, YDOC_SEQUENCE, ev->data.sequence_start.anchor,
                                   ev->data.sequence_start.tag);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, YDOC_MAPPING, ev->data.mapping_start.anchor,
                                   ev->data.mapping_start.tag);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        /* libyaml pairs every end with a start, so depth is never 0 here. */
        if (b->depth > 0)
            b->depth--;
        return ERR_OK;
    default:
        return ERR_OK;
    }
}

static enum err run_parser(struct builder *b, yaml_parser_t *p, const char *text, size_t len)
{
    yaml_event_t ev;
    enum err e = ERR_OK;
    bool done = false;

    while (e == ERR_OK && !done) {
        if (!yaml_parser_parse(p, &ev))
            return syntax_error(b, p, text, len);
        done = ev.type == YAML_STREAM_END_EVENT;
        e = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    return e;
}

enum err ydoc_parse(struct ydoc *doc, const char *name, const char *text, size_t len,
                    struct errbuf *eb)
{
    struct builder b = {.doc = doc, .name = name ? name : "(yaml)", .eb = eb};
    yaml_parser_t parser;
    enum err e;

    doc->root = NULL;
    doc->node_count = 0;
    arena_init(&doc->arena, YDOC_ARENA_BYTES);
    if (!yaml_parser_initialize(&parser))
        return fail(&b, 1, 1, ERR_NOMEM, "out of memory");
    /* libyaml asserts on a NULL input even when the length is 0. */
    if (!text)
        text = "";
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    e = run_parser(&b, &parser, text, len);
    yaml_parser_delete(&parser);
    if (e != ERR_OK)
        ydoc_destroy(doc);
    return e;
}

void ydoc_destroy(struct ydoc *doc)
{
    if (!doc)
        return;
    arena_destroy(&doc->arena);
    doc->root = NULL;
    doc->node_count = 0;
}

const struct ydoc_node *ydoc_map_find(const struct ydoc_node *map, const char *key,
                                      const struct ydoc_node **dup)
{
    const struct ydoc_node *found = NULL;
    size_t key_len = strlen(key);

    if (dup)
        *dup = NULL;
    if (!map || map->kind != YDOC_MAPPING)
        return NULL;
    for (const struct ydoc_node *k = map->child; k; k = k->next) {
        if (k->len != key_len || memcmp(k->text, key, key_len) != 0)
            continue;
        if (!found) {
            found = k->value;
        } else {
            if (dup)
                *dup = k;
            break;
        }
    }
    return found;
}

bool ydoc_is_null(const struct ydoc_node *n)
{
    if (!n || n->kind != YDOC_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const char *ydoc_kind_name(const struct ydoc_node *n)
{
    if (!n)
        return "nothing";
    if (n->kind == YDOC_MAPPING)
        return "a mapping";
    if (n->kind == YDOC_SEQUENCE)
        return "a sequence";
    return ydoc_is_null(n) ? "null" : "a scalar";
}

void ydoc_snippet(const char *s, size_t len, char *out, size_t out_size)
{
    size_t room = out_size - 1;
    size_t n = len <= room ? len : room - 3;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : (char)'?';
    }
    if (n < len) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* strerror() shares one buffer between threads; a reload may run beside other work. */
static const char *errno_text(int errnum, char *tmp, size_t tmp_len)
{
    if (strerror_r(errnum, tmp, tmp_len) != 0)
        snprintf(tmp, tmp_len, "errno %d", errnum);
    return tmp;
}

static enum err read_stream(FILE *f, struct buf *b)
{
    char chunk[READ_CHUNK_BYTES];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        enum err e = buf_append(b, chunk, n);
        if (e != ERR_OK)
            return e;
    }
    return ferror(f) ? ERR_IO : ERR_OK;
}

enum err ydoc_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                        struct errbuf *eb)
{
    char why[128];
    struct buf b;
    FILE *f;
    enum err e;

    f = fopen(path, "rb");
    if (!f) {
        errbuf_set(eb, "%s: cannot open: %s", path, errno_text(errno, why, sizeof(why)));
        return ERR_IO;
    }
    buf_init(&b, max_bytes);
    e = read_stream(f, &b);
    if (e == ERR_IO)
        errbuf_set(eb, "%s: cannot read: %s", path, errno_text(errno, why, sizeof(why)));
    else if (e == ERR_TOO_LARGE)
        errbuf_set(eb, "%s: file is larger than %zu bytes", path, max_bytes);
    fclose(f);
    /* Appending nothing still allocates, so an empty file yields "" rather than NULL. */
    if (e == ERR_OK)
        e = buf_append(&b, "", 0);
    if (e == ERR_OK)
        *data = buf_take(&b, len);
    buf_destroy(&b);
    return e;
}
