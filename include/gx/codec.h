/* codec.h -- the extender wire format: ExtenderArgs, ExtenderBindingArgs and
 * ExtenderPreemptionArgs in, filter, prioritize, bind and preempt replies out, exactly as in
 * shared/reference/extender-protocol.md.
 *
 * Top-level keys are matched case-insensitively (Go's decoder does), and replies use the
 * PascalCase names. Everything decoded lives in the caller's arena and points into the
 * request body, which must outlive the result. Pure: no I/O, no globals; thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/arena.h"
#include "gx/buf.h"
#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/exchange.h"
#include "gx/objects.h"
#include "gx/sched.h"

#define CODEC_MAX_DEPTH 128

struct ext_args {
    bool has_pod;
    struct pod_info pod;
    bool full_nodes; /* "Nodes" was a NodeList: reply with Node objects */
    struct node_info *nodes;
    size_t node_count;
    bool has_names; /* "NodeNames" was an array: reply with names */
    struct str *names;
    size_t name_count;
    /* Every name is a view into the body that needed no decoding: its JSON string is the name
     * with the quote before and after it, as it came. */
    bool names_plain;
    const char *body_end; /* one past the body's last byte */
};

struct ext_bind_args {
    struct str pod_name;
    struct str pod_namespace;
    struct str pod_uid;
    struct str node;
};

/* Decodes ExtenderArgs (filter and prioritize). Returns ERR_PARSE for malformed JSON or a wrong
 * type, ERR_INVALID for well-formed JSON that is not a usable request (no Pod; neither or both
 * of Nodes and NodeNames), ERR_TOO_LARGE when the arena runs out; eb names the problem and,
 * for syntax errors, the byte offset. */
enum err codec_decode_args(struct arena *arena, const char *body, size_t len, struct ext_args *out,
                           struct errbuf *eb) GX_MUST_CHECK;

/* Decodes ExtenderBindingArgs; all four fields must be non-empty strings except PodUID. */
enum err codec_decode_bind(struct arena *arena, const char *body, size_t len,
                           struct ext_bind_args *out, struct errbuf *eb) GX_MUST_CHECK;

/* ---- preemption (protocol reference 2.9 and 7.5) ---- */

/* A pod kube-scheduler offers to evict on a node, or one a reply names. */
struct ext_victim {
    struct str uid; /* MetaPod.UID, or the full Pod's metadata.uid; never empty once decoded */
    /* NodeNameToVictims mode: the victim Pod's facts (priority, GPUs, node, ...), in the
     * arena. NULL for a MetaPod, which carries its UID only: the cache knows the rest. */
    const struct pod_info *pod;
};

/* A candidate node and its victims: one entry of a request's NodeNameToVictims or
 * NodeNameToMetaVictims map, or of a reply's NodeNameToMetaVictims. */
struct ext_preempt_node {
    struct str name;
    struct ext_victim *victims; /* in request order; NULL when there are none */
    size_t victim_count;
    int64_t pdb_violations; /* NumPDBViolations: >= 0 (absent or null is 0) */
};

struct ext_preempt_args {
    struct pod_info pod; /* the preemptor */
    /* The map was NodeNameToMetaVictims (nodeCacheCapable: true): victims carry UIDs only.
     * Else it was NodeNameToVictims, with a full Pod per victim. */
    bool meta;
    struct ext_preempt_node *nodes; /* in request order; names are distinct */
    size_t node_count;
};

/* Decodes ExtenderPreemptionArgs in either mode. Keys of the request, of Victims and of
 * MetaPod match case-insensitively, as Go's decoder does; node names are map keys and are
 * compared exactly. Everything lives in arena and points into body (or into arena for strings
 * with escapes), so body must outlive the result; *out is written only on success.
 * Returns ERR_PARSE for malformed JSON, a wrong type, a repeated key that is read, a node
 * name given twice, or a NumPDBViolations that is not an integer in 0..INT64_MAX;
 * ERR_INVALID for well-formed JSON that is not a usable request (no Pod; neither or both of
 * NodeNameToVictims and NodeNameToMetaVictims; a victim with no UID); ERR_TOO_LARGE when the
 * arena runs out. eb names the problem and, for ERR_PARSE, the byte offset. A null map reads
 * as absent, a null node entry or Pods list as no victims; an empty map is a valid request
 * with no nodes. */
enum err codec_decode_preempt(struct arena *arena, const char *body, size_t len,
                              struct ext_preempt_args *out, struct errbuf *eb) GX_MUST_CHECK;

/* An ExtenderPreemptionResult: the nodes kept, each with the victims chosen there (their UIDs
 * are what is written). Nodes left out are dropped by kube-scheduler, and no nodes at all
 * ends the pod's preemption. kube-scheduler refuses a node whose victim list is empty, so
 * callers leave such nodes out rather than list them. */
struct codec_preempt_result {
    const struct ext_preempt_node *nodes;
    size_t node_count;
};

/* Encodes res into ex's reply (200) as {"NodeNameToMetaVictims":{NAME:{"Pods":[{"UID":U},
 * ...],"NumPDBViolations":N},...}}, the shape kube-scheduler reads in both modes, with the
 * nodes in the order given. Borrows res; the reply is copied into ex's arena. Returns
 * ERR_TOO_LARGE past the arena's cap. */
enum err codec_reply_preempt(struct exchange *ex,
                             const struct codec_preempt_result *res) GX_MUST_CHECK;

/* A filter verdict per input node, in input order. */
struct codec_filter_result {
    const struct ext_args *args;
    const struct sched_fit *fits;                /* one per node or name */
    const struct node_info *const *reason_nodes; /* node facts for reason text (may hold NULL) */
    const struct sched_pod *sp;                  /* the pod's rule, for reason text */
    const char *error; /* non-NULL: the whole call failed, with this message */
};

/* Encodes an ExtenderFilterResult into ex's reply (200). In full-Nodes mode the passing Node
 * objects are echoed byte for byte by pointing reply segments into the request body. */
enum err codec_reply_filter(struct exchange *ex,
                            const struct codec_filter_result *res) GX_MUST_CHECK;

/* Encodes a HostPriorityList (a bare array) for names[i] with scores[i]. plain_end: when every
 * name is a view into the request body with its quotes around it (ext_args.names_plain), the
 * body's end (ext_args.body_end); else NULL. */
enum err codec_reply_prioritize(struct exchange *ex, const struct str *names, const int *scores,
                                size_t n, const char *plain_end) GX_MUST_CHECK;

/* Encodes an ExtenderBindingResult {"Error": msg}; an empty msg means success. */
enum err codec_reply_bind(struct exchange *ex, const char *msg) GX_MUST_CHECK;

/* ---- replies for every route: none of these can fail ---- */

struct cJSON;

/* The one enum err -> HTTP status table: PARSE and INVALID 400, NOT_FOUND 404, TOO_LARGE 413,
 * UNAVAILABLE 503, anything else 500 (STYLE.md 2.6). */
int codec_status_of(enum err e);
/* Replies {"Error": msg} (msg cut at 1 KiB) with status. With 200 the reply is a whole
 * ExtenderFilterResult whose other keys are null. If even that cannot be stored (the arena is
 * spent), replies a static 500. */
void codec_reply_error(struct exchange *ex, int status, const char *msg);
/* codec_reply_error() with the status of e and msg (err_str(e) when msg is NULL or empty). */
void codec_reply_err(struct exchange *ex, enum err e, const char *msg);
/* Replies with a copy of the NUL-terminated text. */
void codec_reply_text(struct exchange *ex, int status, const char *content_type, const char *text);
/* Replies with doc as compact JSON and deletes doc (NULL is an out-of-memory 500). */
void codec_reply_json(struct exchange *ex, int status, struct cJSON *doc);
