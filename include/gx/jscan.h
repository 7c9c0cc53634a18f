/* jscan.h -- a validating, non-allocating JSON scanner over a byte buffer.
 *
 * It is a cursor, not a tree: the caller walks the document, entering the objects and arrays
 * it cares about and skipping the rest. Every byte is checked exactly once on the way
 * (RFC 8259 grammar, UTF-8 validity, a nesting limit), so a document that has been walked to
 * jscan_finish() without error is valid JSON. Values are handed out as spans of the input,
 * which is how full Node objects are echoed without re-serializing them.
 *
 * Errors are sticky: after the first failure every call fails, and jscan_error() says what
 * and where. The scanner never allocates and never reads outside [buf, buf + len). It is not
 * thread-safe; the buffer must outlive it. Used wherever Kubernetes JSON is read: extender requests
 * and API server replies. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/arena.h"
#include "gx/str.h"

#define JSCAN_MAX_DEPTH 512

enum jtype {
    JSON_NONE = 0, /* end of input, or after an error */
    JSON_OBJECT,
    JSON_ARRAY,
    JSON_STRING,
    JSON_NUMBER,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL,
};

/* What kind of failure stopped a scan: input that is not JSON, JSON of the wrong shape (a
 * wrong type, a duplicate key, a value the caller refused), or the caller's memory budget. */
enum jscan_errkind {
    JSCAN_ERR_NONE = 0,
    JSCAN_ERR_SYNTAX,
    JSCAN_ERR_TYPE,
    JSCAN_ERR_BUDGET,
};

struct jscan {
    const char *buf;
    size_t len;
    size_t pos;
    uint32_t depth;
    uint32_t max_depth;
    bool fresh;      /* just entered a container: no comma expected before the next item */
    bool str_plain;  /* the last string or key scanned has no escape: its raw bytes are its text */
    const char *err; /* static message; NULL while all is well */
    size_t err_pos;
    enum jscan_errkind err_kind;
    uint64_t kinds[JSCAN_MAX_DEPTH / 64]; /* bit set: that level is an object */
};

/* Starts scanning buf[0..len). max_depth is capped at JSCAN_MAX_DEPTH. */
void jscan_init(struct jscan *js, const char *buf, size_t len, uint32_t max_depth);
/* Skips whitespace and says what the next value is, without consuming it. */
enum jtype jscan_peek(struct jscan *js);
/* Validates and consumes the next value; *span (may be NULL) covers all of its bytes. */
bool jscan_skip(struct jscan *js, struct str *span);
/* Consumes '{' or '['. Then iterate with jscan_next_member() / jscan_next_element(). */
bool jscan_enter_object(struct jscan *js);
bool jscan_enter_array(struct jscan *js);
/* Inside an object: returns 1 and the member's raw key (escapes intact, quotes removed) with
 * the cursor on its value, which the caller must consume (skip, read or enter); returns 0
 * after consuming the closing '}'; returns -1 on error. */
int jscan_next_member(struct jscan *js, struct str *key);
/* Inside an array: returns 1 with the cursor on the next element (consume it), 0 after
 * consuming ']', -1 on error. */
int jscan_next_element(struct jscan *js);
/* Consumes a string value; *raw is its content with escapes intact. Fails on other types. */
bool jscan_string(struct jscan *js, struct str *raw);
/* Consumes a string value and hands out its decoded text: a view of the input when it has no
 * escapes, else a copy decoded into the arena (never longer than the escaped form). Fails the
 * scan on other types, and with jscan_fail_budget() when the arena is full. */
bool jscan_string_decoded(struct jscan *js, struct arena *arena, struct str *out);
/* Consumes a boolean value. Fails on other types. */
bool jscan_bool(struct jscan *js, bool *out);
/* jscan_next_element() then jscan_string_decoded(), in one pass for strings with nothing to
 * decode: 1 with *out, 0 at the array's end, -1 on error. *plain: out is a view into the
 * buffer (its quotes are around it there), not decoded into arena. */
int jscan_next_string(struct jscan *js, struct arena *arena, struct str *out, bool *plain);
/* After the top-level value: succeeds only if nothing but whitespace remains. */
bool jscan_finish(struct jscan *js);

/* Marks the scan failed with a static message at the current position (for callers whose
 * own checks fail, such as a wrong type): kind JSCAN_ERR_TYPE. Returns false. */
bool jscan_fail(struct jscan *js, const char *msg);
/* Marks the scan failed because the caller's arena is full: kind JSCAN_ERR_BUDGET, message
 * "request too large for its memory budget". Returns false. */
bool jscan_fail_budget(struct jscan *js);
bool jscan_failed(const struct jscan *js);
/* The first error, or NULL; *pos (may be NULL) gets its byte offset. */
const char *jscan_error(const struct jscan *js, size_t *pos);
/* The kind of the first error; JSCAN_ERR_NONE while all is well. */
enum jscan_errkind jscan_error_kind(const struct jscan *js);

/* ---- walking an object by its keys ---- */

/* Called once per member of a walked object, with the cursor on the member's value, which it
 * must consume (read, enter or skip). key is the index of the member's key in the walk's
 * names, or -1 for any other key (only with JSCAN_WALK_ALL_KEYS). Returns false to stop the
 * walk, after failing the scan (the scanner's own calls do that). */
typedef bool jscan_member_fn(struct jscan *js, int key, void *ctx);

#define JSCAN_WALK_MAX_KEYS 32
/* Keys match ASCII case-insensitively (extender requests: Go's decoder does). */
#define JSCAN_WALK_ICASE 0x1u
/* A null where the object should be is an empty object. */
#define JSCAN_WALK_OR_NULL 0x2u
/* Members whose key is not in names are passed to fn with key -1; else they are skipped. */
#define JSCAN_WALK_ALL_KEYS 0x4u

/* Walks the object at the cursor and consumes it: for each member whose key is names[i]
 * (n <= JSCAN_WALK_MAX_KEYS) calls fn(js, i, ctx); other members are skipped, and so
 * validated, unless JSCAN_WALK_ALL_KEYS. A key of names given twice fails the scan with
 * "duplicate key in object" (kind JSCAN_ERR_TYPE), so no value is silently chosen over
 * another. Returns false when the scan failed. */
bool jscan_walk_object(struct jscan *js, const char *const *names, size_t n, unsigned flags,
                       jscan_member_fn *fn, void *ctx);

/* Compares a raw (escaped) JSON string with a literal after decoding escapes. */
bool jstr_eq(struct str raw, const char *lit);
/* The same, ASCII case-insensitive (extender keys are matched this way, as Go does). */
bool jstr_ieq(struct str raw, const char *lit);
/* True when raw has no escapes, so its bytes are its value. */
bool jstr_is_plain(struct str raw);
/* Decodes raw into out (cap bytes, NUL-terminated). Returns the decoded length, or
 * SIZE_MAX when it does not fit. raw must come from the scanner (already validated). */
size_t jstr_decode(struct str raw, char *out, size_t cap);
