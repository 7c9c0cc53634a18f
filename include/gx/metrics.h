/* metrics.h -- the process-wide metrics registry, served as Prometheus text. Counters and
 * histograms are declared once in the tables below; updates are lock-free atomics, so any
 * thread may record at any time. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/err.h"
#include "gx/str.h"

/* Verbs we time. The order is the label order in the exposition. */
#define METRICS_VERB_MAP(X)                                                                        \
    X(FILTER, "filter")                                                                            \
    X(PRIORITIZE, "prioritize")                                                                    \
    X(BIND, "bind")                                                                                \
    X(PREEMPT, "preempt")                                                                          \
    X(OTHER, "other")

enum metrics_verb {
#define METRICS_VERB_ENUM(name, text) METRICS_VERB_##name,
    METRICS_VERB_MAP(METRICS_VERB_ENUM)
#undef METRICS_VERB_ENUM
        METRICS_VERB_COUNT
};

/* How a request ended, from the scheduler's point of view. */
#define METRICS_OUTCOME_MAP(X)                                                                     \
    X(OK, "ok")                   /* 200 and no Error */                                           \
    X(ERROR, "error")             /* 200 with a non-empty Error */                                 \
    X(BAD_REQUEST, "bad_request") /* 400 */                                                        \
    X(TOO_LARGE, "too_large")     /* 413 */                                                        \
    X(UNAVAILABLE, "unavailable") /* 503 */                                                        \
    X(INTERNAL, "internal")       /* 500 */                                                        \
    X(NOT_FOUND, "not_found")     /* 404 */                                                        \
    X(BAD_METHOD, "bad_method")   /* 405 */

enum metrics_outcome {
#define METRICS_OUTCOME_ENUM(name, text) METRICS_OUTCOME_##name,
    METRICS_OUTCOME_MAP(METRICS_OUTCOME_ENUM)
#undef METRICS_OUTCOME_ENUM
        METRICS_OUTCOME_COUNT
};

/* Plain counters without labels: name, help. */
#define METRICS_COUNTER_MAP(X)                                                                     \
    X(FILTER_NODES_PASSED, "gpu_extender_filter_nodes_passed_total", "Nodes that passed filter.")  \
    X(FILTER_NODES_FAILED, "gpu_extender_filter_nodes_failed_total",                               \
      "Nodes rejected for what is taken now (free GPUs, healthy GPUs, a free linked set).")        \
    X(FILTER_NODES_UNRESOLVABLE, "gpu_extender_filter_nodes_unresolvable_total",                   \
      "Nodes rejected for good (model, policy, too few GPUs, no such GPU set).")                   \
    X(PREEMPT_NODES_KEPT, "gpu_extender_preempt_nodes_kept_total",                                 \
      "Candidate nodes a preempt reply kept (at most one per call).")                              \
    X(PREEMPT_NODES_DROPPED, "gpu_extender_preempt_nodes_dropped_total",                           \
      "Candidate nodes a preempt reply dropped: no eviction helps there, or another is better.")   \
    X(PREEMPT_VICTIMS, "gpu_extender_preempt_victims_total",                                       \
      "Pods preempt replies named for eviction.")                                                  \
    X(BIND_QUEUE_FULL, "gpu_extender_bind_queue_full_total",                                       \
      "Binds refused because every bind worker was busy and the queue was full.")                  \
    X(BIND_FAST_PATH, "gpu_extender_bind_fast_path_total",                                         \
      "Binds the cache vouched for (pod pending with that UID, node known): one POST, no GET.")    \
    X(BIND_SLOW_PATH, "gpu_extender_bind_slow_path_total",                                         \
      "Binds that GET the pod and the node before they POST (the cache could not vouch).")         \
    X(APISERVER_TOKEN_RELOADS, "gpu_extender_apiserver_token_reloads_total",                       \
      "Times the bearer token file was read again (periodic or after a 401).")                     \
    X(TOPOLOGY_INVALID, "gpu_extender_topology_invalid_total",                                     \
      "Node topology annotations that could not be read (the node is then count-only).")           \
    X(AGENT_DISAGREE_INDICES, "gpu_extender_agent_disagreements_indices_total",                    \
      "Pods whose GPU indices the node agent reports differently from the ones bind recorded.")    \
    X(AGENT_DISAGREE_COUNT, "gpu_extender_agent_disagreements_count_total",                        \
      "Pods for which the node agent reports a different number of GPUs than they requested.")     \
    X(AGENT_INVALID, "gpu_extender_agent_invalid_total",                                           \
      "Node agent gpu-pods annotations that could not be read (the node's pods then count by "     \
      "their own annotations).")                                                                   \
    X(POLICY_RELOADS, "gpu_extender_policy_reloads_total",                                         \
      "Policy files loaded and swapped in after start (SIGHUP or a file change).")                 \
    X(POLICY_RELOAD_FAILURES, "gpu_extender_policy_reload_failures_total",                         \
      "Policy reloads refused because the new file was invalid; the old policy stays active.")     \
    X(HTTP_HEADER_TIMEOUTS, "gpu_extender_http_header_timeouts_total",                             \
      "Connections closed because their request headers did not arrive in time.")                  \
    X(HTTP_BODY_TIMEOUTS, "gpu_extender_http_body_timeouts_total",                                 \
      "Connections closed because their request body did not arrive in time.")                     \
    X(HTTP_IDLE_CLOSES, "gpu_extender_http_idle_closes_total",                                     \
      "Kept-alive connections closed after the idle timeout.")                                     \
    X(HTTP_BUDGET_REFUSALS, "gpu_extender_http_budget_refusals_total",                             \
      "Requests refused with 503 because their body would overrun --max-inflight-bytes.")          \
    X(TLS_RELOADS, "gpu_extender_tls_reloads_total",                                               \
      "Certificate sets (--tls-cert, --tls-key, --tls-client-ca) swapped in after start.")         \
    X(TLS_RELOAD_FAILURES, "gpu_extender_tls_reload_failures_total",                               \
      "Certificate reloads refused because a changed file was invalid; the old set serves.")       \
    X(TLS_CLIENT_REFUSALS, "gpu_extender_tls_client_refusals_total",                               \
      "Requests refused with 403: no client certificate, or one --tls-client-ca does not trust.")  \
    X(TLS_HANDSHAKE_FAILURES, "gpu_extender_tls_handshake_failures_total",                         \
      "TLS handshakes that failed: plain HTTP, a TLS version below 1.2, no common cipher.")

enum metrics_counter {
#define METRICS_COUNTER_ENUM(name, metric, help) METRICS_##name,
    METRICS_COUNTER_MAP(METRICS_COUNTER_ENUM)
#undef METRICS_COUNTER_ENUM
        METRICS_COUNTER_COUNT
};

/* Gauges any module may move: name, help. */
#define METRICS_GAUGE_MAP(X)                                                                       \
    X(HTTP_CONNECTIONS, "gpu_extender_http_connections", "HTTP connections open, every listener.") \
    X(HTTP_BODY_BYTES, "gpu_extender_http_body_bytes",                                             \
      "Request body bytes held now, against --max-inflight-bytes.")

enum metrics_gauge {
#define METRICS_GAUGE_ENUM(name, metric, help) METRICS_GAUGE_##name,
    METRICS_GAUGE_MAP(METRICS_GAUGE_ENUM)
#undef METRICS_GAUGE_ENUM
        METRICS_GAUGE_COUNT
};

/* Figures the cluster cache owns, sampled when /metrics is served: name, type, decimals of
 * the value, help. The caller reads the cache and passes one value per row. */
#define METRICS_CACHE_MAP(X)                                                                       \
    X(SYNCED, "gpu_extender_cache_synced", "gauge", 0, "1 once nodes and pods have been listed.")  \
    X(CONNECTED, "gpu_extender_cache_connected", "gauge", 0, "0 while a watch is in an outage.")   \
    X(AGE_SECONDS, "gpu_extender_cache_age_seconds", "gauge", 3,                                   \
      "Time since the last word from the API server.")                                             \
    X(NODES, "gpu_extender_cache_nodes", "gauge", 0, "Nodes in the cache.")                        \
    X(GPU_PODS, "gpu_extender_cache_gpu_pods", "gauge", 0, "Pods with GPU requests in the cache.") \
    X(RESERVATIONS, "gpu_extender_cache_reservations", "gauge", 0,                                 \
      "Binds in flight holding GPUs.")                                                             \
    X(EVENTS, "gpu_extender_cache_events_total", "counter", 0, "Node and pod objects applied.")    \
    X(RELISTS, "gpu_extender_cache_relists_total", "counter", 0,                                   \
      "Full lists (start-up, 410 Gone).")                                                          \
    X(SNAPSHOTS_WHOLE, "gpu_extender_cache_snapshots_whole_total", "counter", 0,                   \
      "Snapshots built node by node (the first, and after nodes came or went).")                   \
    X(SNAPSHOTS_PATCHED, "gpu_extender_cache_snapshots_patched_total", "counter", 0,               \
      "Snapshots that rebuilt only the nodes events touched.")                                     \
    X(TOPOLOGIES, "gpu_extender_cache_topologies", "gauge", 0,                                     \
      "Distinct node topology annotations held.")                                                  \
    X(TOPOLOGY_SHAPES, "gpu_extender_cache_topology_shapes", "gauge", 0,                           \
      "Distinct GPU interconnects (shared tables).")                                               \
    X(TOPOLOGY_BYTES, "gpu_extender_cache_topology_bytes", "gauge", 0,                             \
      "Memory of topologies and their tables.")

enum metrics_cache {
#define METRICS_CACHE_ENUM(name, metric, type, decimals, help) METRICS_CACHE_##name,
    METRICS_CACHE_MAP(METRICS_CACHE_ENUM)
#undef METRICS_CACHE_ENUM
        METRICS_CACHE_COUNT
};

/* Records one finished request: its verb, outcome and wall time. */
void metrics_request_observe(enum metrics_verb verb, enum metrics_outcome outcome,
                             uint64_t duration_ns);
void metrics_counter_add(enum metrics_counter c, uint64_t n);
/* Moves a gauge by delta (negative to lower it). */
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
/* Reads one gauge (for tests). */
int64_t metrics_gauge_get(enum metrics_gauge g);
/* Records the result of one bind: "success" or "error", with the API server's HTTP status
 * (0 when no answer came back: timeout, connection refused, TLS failure, no API server). */
void metrics_bind_observe(int success, long api_status);
/* Appends the whole registry in Prometheus text format 0.0.4. */
enum err metrics_format(struct buf *out) GX_MUST_CHECK;
/* Appends the cache's figures, values[row] for each row of METRICS_CACHE_MAP. */
enum err metrics_format_cache(struct buf *out,
                              const double values[METRICS_CACHE_COUNT]) GX_MUST_CHECK;
/* One GPU model's row of the scarcity part's demand table. */
struct metrics_model {
    struct str name;
    double gpus;     /* the cluster's GPUs of the model */
    double scarcity; /* the constrained demand it gets per GPU */
};
/* Appends gpu_extender_model_gpus and gpu_extender_model_scarcity, one sample per model
 * (label model, escaped as the text format says). */
enum err metrics_format_models(struct buf *out, const struct metrics_model *models,
                               size_t count) GX_MUST_CHECK;
/* Test hook: sets every value back to zero. */
void metrics_reset(void);
/* Reads one counter (for tests). */
uint64_t metrics_counter_get(enum metrics_counter c);
/* Reads a request count for a verb and outcome (for tests). */
uint64_t metrics_requests_get(enum metrics_verb verb, enum metrics_outcome outcome);
