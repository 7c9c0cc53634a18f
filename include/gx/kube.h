/* kube.h -- talking to the Kubernetes API server: every libcurl and TLS (OpenSSL) use lives
 * in this module. A client holds the credentials and the bearer token (re-read from its file
 * at least every minute and after any 401); a session is one thread's connection; a binder
 * runs binds on its own worker threads so that no HTTP request thread ever waits on the
 * API server.
 *
 * Pod and Node replies are read with the shared object decoder (objects.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/k8s.h"
#include "gx/kubeconfig.h"
#include "gx/objects.h"

#define KUBE_TOKEN_MAX_AGE_MS 60000
#define KUBE_MAX_RESPONSE_BYTES (16u << 20)

struct kube_client;
struct kube_session;

/* Copies creds. Fails with ERR_INVALID when the server URL is not http(s), or ERR_IO when a
 * token file named in creds cannot be read. Call once, before any other thread uses libcurl. */
enum err kube_client_new(const struct kubeconfig_creds *creds, struct kube_client **out,
                         struct errbuf *eb) GX_MUST_CHECK;
void kube_client_free(struct kube_client *kc);
const char *kube_client_server(const struct kube_client *kc);

struct kube_response {
    long status; /* HTTP status; 0 when no answer came back */
    char *body;  /* NUL-terminated, malloc'd; free with kube_response_destroy() */
    size_t len;
};

void kube_response_destroy(struct kube_response *r);

/* A connection for one thread at a time; reuses its connection between calls. */
struct kube_session *kube_session_new(struct kube_client *kc);
void kube_session_free(struct kube_session *s);

/* Sends one request (path starts with "/api"). On a 401 it re-reads the token and retries
 * once. Returns ERR_OK whenever an HTTP answer came back, whatever its status; ERR_TIMEOUT or
 * ERR_IO (detail in eb) when none did. */
enum err kube_request(struct kube_session *s, const char *method, const char *path,
                      const char *content_type, const char *body, size_t body_len, long timeout_ms,
                      struct kube_response *out, struct errbuf *eb) GX_MUST_CHECK;

/* Pulls "message" out of a Kubernetes Status body into out (always NUL-terminated). */
void kube_status_message(const char *body, size_t len, char *out, size_t cap);

/* True for a DNS-1123 subdomain (what pod, namespace and node names are): lower-case
 * alphanumerics, '-' and '.', at most K8S_NAME_MAX bytes (k8s_is_dns_subdomain() on a C
 * string). Anything else never reaches a URL. */
bool kube_name_is_valid(const char *name);

/* ---- binding ---- */

struct kube_bind_req {
    char pod_namespace[K8S_NAME_MAX + 1];
    char pod_name[K8S_NAME_MAX + 1];
    char pod_uid[128];
    char node[K8S_NAME_MAX + 1];
};

struct kube_bind_result {
    bool ok;
    long api_status;     /* the status of the decisive API call; 0 when none answered */
    struct errbuf error; /* for the scheduler when !ok */
    char model[128];     /* what we recorded on the pod */
    int64_t gpus;
    char gpu_indices[96]; /* the GPU indices recorded, "" when none were named */
};

/* What a reservation decided, recorded on the Binding as annotations. */
struct kube_bind_choice {
    char gpus[96];        /* gpu-extender.io/gpus: GPU indices, "0,1"; "" when none were named */
    char gpu_uuids[1600]; /* gpu-extender.io/gpu-uuids: their UUIDs in the same order, or "" */
    char rule[128];       /* gpu-extender.io/policy-rule: the policy rule that applied, or "" */
};

/* Reservation hooks: bind takes the pod's GPUs on the node (reserve) after checking the pod
 * and before it POSTs, and gives them back (release) if the bind fails. reserve returns false
 * with a reason in eb when they are not free; on success it may fill choice. lookup is the
 * cluster cache's word on the bind: when it can vouch that req's pod is pending under req's
 * UID, namespace and name, and knows req's node, it fills *pod (strings in arena) and the
 * node's GPU model (model_cap bytes, NUL-terminated) and returns NULL, and bind skips its two
 * GETs; else it returns a short reason (a static string) and bind GETs both. Each may be
 * NULL. Called on worker threads. */
struct kube_bind_hooks {
    const char *(*lookup)(void *ctx, const struct kube_bind_req *req, struct arena *arena,
                          struct pod_info *pod, char *model, size_t model_cap);
    bool (*reserve)(void *ctx, const struct pod_info *pod, const char *node,
                    struct kube_bind_choice *choice, struct errbuf *eb);
    void (*release)(void *ctx, const char *pod_uid, const char *node);
    void *ctx;
};

/* Binds one pod, synchronously, within timeout_ms. When hooks->lookup vouches for the pod and
 * the node (the common case), one POST of a v1 Binding; otherwise first GET the pod (it must
 * exist, have the same UID, not be deleting; already on this node is success, on another
 * node an error) and GET the node (its GPU model). The Binding's annotations record the
 * decision (gpu-extender.io/gpu-model, gpu-count, and when the reservation named them gpus,
 * gpu-uuids and policy-rule). Success only on 201, or on 409 or a lost answer when a fresh
 * GET shows the pod on this same node. */
void kube_bind(struct kube_session *s, const struct kube_bind_req *req, long timeout_ms,
               const struct kube_bind_hooks *hooks, struct kube_bind_result *out);

typedef void kube_bind_done_fn(void *ctx, const struct kube_bind_result *res);

struct kube_binder;

/* Starts workers threads, each with its own session, and a queue of queue_cap binds. hooks
 * (may be NULL) is copied. A bind's timeout_ms counts from kube_binder_submit(): one that
 * waited out its budget in the queue answers with an Error without calling the API server. */
struct kube_binder *kube_binder_new(struct kube_client *kc, unsigned workers, unsigned queue_cap,
                                    long timeout_ms, const struct kube_bind_hooks *hooks);
/* Queues a bind; done runs on a worker thread when it has finished. Returns ERR_UNAVAILABLE
 * when the queue is full or the binder is stopping (done is then never called). */
enum err kube_binder_submit(struct kube_binder *b, const struct kube_bind_req *req,
                            kube_bind_done_fn *done, void *ctx) GX_MUST_CHECK;
/* Refuses new binds (submit answers ERR_UNAVAILABLE), finishes the ones already queued and
 * joins the workers, so every done callback has run when it returns. Idempotent; NULL is a
 * no-op. Safe while other threads still call kube_binder_submit(). */
void kube_binder_stop(struct kube_binder *b);
/* Stops (see above) and frees. No thread may use b afterwards. NULL is a no-op. */
void kube_binder_free(struct kube_binder *b);

/* ---- list and watch ---- */

enum kube_event_type { KUBE_EVENT_ADDED = 0, KUBE_EVENT_MODIFIED, KUBE_EVENT_DELETED };

/* What a watch reports. Every callback runs on the watch's own thread, one at a time; obj
 * points at one object's JSON and is valid only during the call. */
struct kube_watch_handler {
    void *ctx;
    /* A full list starts (at start-up, and again after 410 Gone or when a watch cannot be
     * resumed). Objects until list_end() are the complete set; anything not in it is gone. */
    void (*list_begin)(void *ctx);
    /* One object: type ADDED for list items, or a watch event's type. */
    void (*object)(void *ctx, enum kube_event_type type, const char *obj, size_t len);
    /* The list is complete at resource_version; watch events follow. */
    void (*list_end)(void *ctx, const char *resource_version);
    /* A batch of events was delivered (one network read's worth): a good moment to publish.
     * Also called for bookmarks, so the receiver knows the stream is alive. */
    void (*flush)(void *ctx);
    /* The API server cannot be reached or the stream broke; state is now stale until the next
     * list_end() or flush(). why is a one-line reason. */
    void (*disconnected)(void *ctx, const char *why);
};

struct kube_watch_config {
    const char *path;           /* "/api/v1/nodes" or "/api/v1/pods" */
    const char *field_selector; /* NULL, or e.g. "status.phase!=Succeeded" (URL-escaped by us) */
    long page_limit;            /* list page size (limit=); 0: 500 */
    long watch_timeout_s;       /* timeoutSeconds= for each watch request; 0: 300 */
    long backoff_min_ms;        /* reconnect backoff, doubling with jitter; 0: 200 */
    long backoff_max_ms;        /* 0: 30000 */
    long stall_timeout_s; /* no bytes (not even a bookmark) for this long: reconnect; 0: 120 */
};

struct kube_watch;

/* Starts a thread that lists (paginated with limit/continue), then watches from the list's
 * resourceVersion with allowWatchBookmarks, parsing the event stream as it arrives. It
 * reconnects with backoff and jitter, lists again on 410 Gone (from the list or as a watch
 * ERROR event), and re-reads the token on 401 (kube_request's rule). Never gives up. */
struct kube_watch *kube_watch_start(struct kube_client *kc, const struct kube_watch_config *cfg,
                                    const struct kube_watch_handler *h);
/* Asks the thread to end its watch and list again (objects it no longer sees are then gone, as
 * after any list), within about a poll interval; a list in progress is followed by another.
 * Thread-safe; NULL: no-op. */
void kube_watch_relist(struct kube_watch *w);
/* Stops the thread (interrupting a blocked read within about a second) and frees. NULL: no-op. */
void kube_watch_stop(struct kube_watch *w);
