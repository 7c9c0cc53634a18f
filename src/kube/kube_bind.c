/* kube_bind.c -- binding a pod through the API server, and the worker pool that runs binds
 * off the HTTP threads (see kube.h).
 *
 * Why check the pod at all: kube-apiserver 1.26 wipes metadata.uid from a posted Binding (see
 * the fixture post-binding.201-stale-uid-accepted.json), so a pod deleted and recreated under
 * the same name would be bound silently. The bind must check the UID itself.
 *
 * Two ways to check it:
 *   - Fast (one round trip, the common case): the cluster cache (hooks->lookup) holds the pod
 *     as pending under the bind's UID, namespace and name, not being deleted, and knows the
 *     node's GPU model. The bind then POSTs the Binding straight away. The UID is checked
 *     against the watch's view of the pod, so the window in which a pod deleted and recreated
 *     under the same name could be bound by mistake is the watch's lag (the time from the
 *     delete reaching the API server to its event reaching the cache: milliseconds on a
 *     healthy watch; the cache refuses to vouch during an outage or before it has synced).
 *   - Slow (three round trips): GET the pod, GET the node, POST. The window is the time
 *     between the GET's answer and the POST's arrival (about one round trip). Everything the
 *     cache cannot vouch for takes it: no UID in the request, the cache not synced or in an
 *     outage, a pod it does not hold as pending (unknown, a non-GPU pod, already bound, being
 *     deleted), a UID that names another pod (then the GET sees the mismatch and it errors
 *     as before), an unknown node; and every bind when no lookup hook is given
 *     (--bind-always-get).
 * Neither closes the window: only an API server that honours the Binding's UID can. The fast
 * path trades a round-trip-sized window for a watch-lag-sized one; both are far shorter than
 * the scheduling cycle that precedes them, in which kube-scheduler itself acts on its own
 * (watch-fed) view of the pod.
 *
 * After the POST both ways are the same: 201 is success; 409 (already assigned, or being
 * deleted) and a lost answer (timeout, I/O) are settled by a GET of the pod: on this node
 * with this UID is success (a retried bind that had worked, or our own POST that landed),
 * anything else an error; every other status (404 included) is an error. Everything counts
 * against the one budget, timeout_ms, from start to answer.
 *
 * Connections: each worker keeps its own kube_session (libcurl easy handle, keep-alive), so
 * 16 workers hold 16 warm connections: a pool with one connection per bind in flight.
 * HTTP/2 multiplexing is not used: it would save connections, not round trips. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/arena.h"
#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/kube.h"
#include "gx/log.h"
#include "gx/metrics.h"
#include "gx/objects.h"

#define BIND_ARENA_BYTES (32u << 20)

struct bind_ctx {
    struct kube_session *s;
    const struct kube_bind_req *req;
    const struct kube_bind_hooks *hooks;
    struct kube_bind_result *out;
    uint64_t deadline_ms;
    struct arena arena;
    char uid[128]; /* the pod's UID as the API server reported it */
};

static long remaining(const struct bind_ctx *b)
{
    uint64_t now = clock_mono_ms();

    return now >= b->deadline_ms ? 0 : (long)(b->deadline_ms - now);
}

static void fail(struct bind_ctx *b, long status, const char *fmt, ...) GX_PRINTF(3, 4);

static void fail(struct bind_ctx *b, long status, const char *fmt, ...)
{
    char detail[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    b->out->ok = false;
    b->out->api_status = status;
    /* The last failure is the one that decided (a lost POST, then the GET that settles it). */
    errbuf_clear(&b->out->error);
    errbuf_set(&b->out->error, "gpu-extender: bind %s/%s to %s: %s", b->req->pod_namespace,
               b->req->pod_name, b->req->node, detail);
}

/* Describes an unexpected API answer: "apiserver 403: <message>". */
static void fail_api(struct bind_ctx *b, const char *what, const struct kube_response *r)
{
    char msg[400];

    kube_status_message(r->body, r->len, msg, sizeof(msg));
    fail(b, r->status, "%s: apiserver %ld: %s", what, r->status, msg[0] ? msg : "(no message)");
}

/* GETs path and decodes it with decode(); returns true with the object, or false with out set. */
static bool get_object(struct bind_ctx *b, const char *path, const char *what, bool is_pod,
                       void *obj, struct kube_response *resp)
{
    struct errbuf eb = ERRBUF_INIT;
    struct jscan js;
    enum err e = kube_request(b->s, "GET", path, NULL, NULL, 0, remaining(b), resp, &eb);
    bool ok;

    if (e != ERR_OK) {
        fail(b, 0, "GET %s: %s", what, eb.msg);
        return false;
    }
    if (resp->status != 200) {
        fail_api(b, is_pod ? "GET pod" : "GET node", resp);
        return false;
    }
    jscan_init(&js, resp->body, resp->len, 128);
    ok = is_pod ? obj_pod_decode(&js, &b->arena, obj) : obj_node_decode(&js, &b->arena, obj);
    if (!ok || !jscan_finish(&js)) {
        fail(b, resp->status, "GET %s: unreadable reply: %s", what, jscan_error(&js, NULL));
        return false;
    }
    return true;
}

/* Checks the pod before binding. Returns 1 to go on, 0 when it is already bound here
 * (success), -1 on a failure (out set). */
static int check_pod(struct bind_ctx *b, const struct pod_info *pod)
{
    const struct kube_bind_req *req = b->req;

    if (req->pod_uid[0] && !str_eq_cstr(pod->uid, req->pod_uid)) {
        fail(b, 200, "pod UID is %.*s, not %s: the pod was recreated", (int)pod->uid.len,
             pod->uid.ptr, req->pod_uid);
        return -1;
    }
    if (pod->node_name.len) {
        if (str_eq_cstr(pod->node_name, req->node))
            return 0;
        fail(b, 200, "pod is already bound to node %.*s", (int)pod->node_name.len,
             pod->node_name.ptr);
        return -1;
    }
    if (pod->deleting) {
        fail(b, 200, "pod is being deleted");
        return -1;
    }
    return 1;
}

/* Appends ,"key":"value" when value is not empty. */
static enum err append_annotation(struct buf *out, const char *key, struct str value)
{
    enum err e;

    if (!value.len)
        return ERR_OK;
    e = buf_printf(out, ",\"%s\":", key);
    return e == ERR_OK ? buf_append_json_str(out, value.ptr, value.len) : e;
}

static enum err binding_body(const struct bind_ctx *b, const char *model,
                             const struct pod_info *pod, const struct kube_bind_choice *choice,
                             struct buf *out)
{
    const struct kube_bind_req *req = b->req;
    char count[32];
    enum err e;

    snprintf(count, sizeof(count), "%lld", (long long)pod->gpus);
    e = buf_printf(out,
                   "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":\"%s\","
                   "\"namespace\":\"%s\",",
                   req->pod_name, req->pod_namespace);
    if (e == ERR_OK && req->pod_uid[0]) {
        e = buf_append_str(out, "\"uid\":");
        if (e == ERR_OK)
            e = buf_append_json_str(out, req->pod_uid, strlen(req->pod_uid));
        if (e == ERR_OK)
            e = buf_append(out, ",", 1);
    }
    if (e == ERR_OK)
        e = buf_append_str(out, "\"annotations\":{\"" OBJ_ANN_GPU_MODEL "\":");
    if (e == ERR_OK)
        e = buf_append_json_str(out, model, strlen(model));
    if (e == ERR_OK)
        e = buf_printf(out, ",\"" OBJ_ANN_GPU_COUNT "\":\"%s\"", count);
    if (e == ERR_OK && pod->ann_gpu_model.len) /* the requirement the record above replaces */
        e = append_annotation(out, OBJ_ANN_GPU_MODEL_REQUIRED, pod->ann_gpu_model);
    if (e == ERR_OK)
        e = append_annotation(out, OBJ_ANN_GPUS, str_from_cstr(choice->gpus));
    if (e == ERR_OK)
        e = append_annotation(out, OBJ_ANN_GPU_UUIDS, str_from_cstr(choice->gpu_uuids));
    if (e == ERR_OK)
        e = append_annotation(out, OBJ_ANN_POLICY_RULE, str_from_cstr(choice->rule));
    if (e == ERR_OK)
        e = buf_printf(out,
                       "}},\"target\":{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"name\":\"%s\"}}",
                       req->node);
    return e;
}

/* After a 409 or a lost reply: is the pod on our node now? */
static bool confirm_bound(struct bind_ctx *b, const char *pod_path)
{
    struct kube_response resp = {0};
    struct pod_info pod;
    struct bind_ctx probe = *b;
    struct kube_bind_result scratch = {0};
    bool ok;

    probe.out = &scratch;
    ok = get_object(&probe, pod_path, "pod", true, &pod, &resp) &&
         str_eq_cstr(pod.node_name, b->req->node) &&
         (!b->req->pod_uid[0] || str_eq_cstr(pod.uid, b->req->pod_uid));
    kube_response_destroy(&resp);
    return ok;
}

static void post_binding(struct bind_ctx *b, const char *pod_path, const struct buf *body)
{
    char path[1100];
    struct kube_response resp = {0};
    struct errbuf eb = ERRBUF_INIT;
    enum err e;

    snprintf(path, sizeof(path), "%s/binding", pod_path);
    e = kube_request(b->s, "POST", path, "application/json", body->ptr, body->len, remaining(b),
                     &resp, &eb);
    if (e != ERR_OK) {
        /* The POST may have landed before the answer was lost: look before saying no. */
        if (remaining(b) > 0 && confirm_bound(b, pod_path))
            b->out->ok = true;
        else
            fail(b, 0, "POST binding: %s", eb.msg);
    } else if (resp.status == 201) {
        b->out->ok = true;
        b->out->api_status = 201;
    } else if (resp.status == 409 && confirm_bound(b, pod_path)) {
        b->out->ok = true;
        b->out->api_status = 409;
    } else {
        fail_api(b, "POST binding", &resp);
    }
    kube_response_destroy(&resp);
}

/* Takes the pod's GPUs on the node before the POST, so two binds in flight can never both
 * get the last free GPUs (kubernetes #82359). Returns false with out set when they are gone. */
static bool reserve(struct bind_ctx *b, const struct pod_info *pod, struct kube_bind_choice *choice)
{
    struct errbuf why = ERRBUF_INIT;

    snprintf(b->uid, sizeof(b->uid), "%.*s", (int)pod->uid.len, pod->uid.ptr);
    if (!b->hooks || !b->hooks->reserve || pod->gpus <= 0)
        return true;
    if (b->hooks->reserve(b->hooks->ctx, pod, b->req->node, choice, &why))
        return true;
    fail(b, 0, "%s", why.msg[0] ? why.msg : "the GPUs are no longer free");
    return false;
}

/* Reserves, POSTs the Binding and gives the reservation back if that failed. */
static void reserve_and_post(struct bind_ctx *b, const char *pod_path, const struct pod_info *pod)
{
    struct kube_bind_choice choice;
    struct buf body;

    memset(&choice, 0, sizeof(choice));
    b->out->gpus = pod->gpus;
    if (!reserve(b, pod, &choice))
        return;
    snprintf(b->out->gpu_indices, sizeof(b->out->gpu_indices), "%s", choice.gpus);
    /* Our fields fit in 64 KiB; the pod's own gpu-model, copied into gpu-model-required, may
     * take up to six bytes per byte escaped. */
    buf_init(&body, (size_t)64 * 1024 + 6 * pod->ann_gpu_model.len);
    if (binding_body(b, b->out->model, pod, &choice, &body) == ERR_OK)
        post_binding(b, pod_path, &body);
    else
        fail(b, 0, "cannot build the Binding");
    buf_destroy(&body);
    if (!b->out->ok && b->hooks && b->hooks->release)
        b->hooks->release(b->hooks->ctx, b->uid, b->req->node);
}

/* The cache vouches for the pod and the node: fills *pod and out->model and returns true. */
static bool cache_vouches(struct bind_ctx *b, struct pod_info *pod)
{
    const char *why;

    if (!b->hooks || !b->hooks->lookup || !b->req->pod_uid[0])
        return false;
    why = b->hooks->lookup(b->hooks->ctx, b->req, &b->arena, pod, b->out->model,
                           sizeof(b->out->model));
    if (why) {
        b->out->model[0] = '\0';
        log_debug("kube", "bind takes the slow path", "pod=%s/%s node=%s why=\"%s\"",
                  b->req->pod_namespace, b->req->pod_name, b->req->node, why);
        return false;
    }
    return true;
}

/* GET the pod and the node, check the pod, then reserve and POST. */
static void bind_slow(struct bind_ctx *b, const char *pod_path)
{
    char node_path[300];
    struct kube_response pod_resp = {0}, node_resp = {0};
    struct pod_info pod;
    struct node_info node;
    int r;

    snprintf(node_path, sizeof(node_path), "/api/v1/nodes/%s", b->req->node);
    if (!get_object(b, pod_path, "pod", true, &pod, &pod_resp))
        goto out_free;
    b->out->gpus = pod.gpus;
    r = check_pod(b, &pod);
    if (r <= 0) {
        b->out->ok = r == 0;
        b->out->api_status = 200;
        goto out_free;
    }
    if (!get_object(b, node_path, "node", false, &node, &node_resp))
        goto out_free;
    snprintf(b->out->model, sizeof(b->out->model), "%.*s", (int)node.model.len, node.model.ptr);
    reserve_and_post(b, pod_path, &pod);
out_free:
    kube_response_destroy(&node_resp);
    kube_response_destroy(&pod_resp);
}

static void bind_run(struct bind_ctx *b)
{
    const struct kube_bind_req *req = b->req;
    char pod_path[1024];
    struct pod_info pod;

    snprintf(pod_path, sizeof(pod_path), "/api/v1/namespaces/%s/pods/%s", req->pod_namespace,
             req->pod_name);
    if (cache_vouches(b, &pod)) {
        metrics_counter_add(METRICS_BIND_FAST_PATH, 1);
        reserve_and_post(b, pod_path, &pod);
    } else {
        metrics_counter_add(METRICS_BIND_SLOW_PATH, 1);
        bind_slow(b, pod_path);
    }
}

void kube_bind(struct kube_session *s, const struct kube_bind_req *req, long timeout_ms,
               const struct kube_bind_hooks *hooks, struct kube_bind_result *out)
{
    struct bind_ctx b = {.s = s, .req = req, .hooks = hooks, .out = out};
    struct log_q q;

    memset(out, 0, sizeof(*out));
    if (!kube_name_is_valid(req->pod_namespace) || !kube_name_is_valid(req->pod_name) ||
        !kube_name_is_valid(req->node)) {
        fail(&b, 0, "namespace, pod and node names must be DNS-1123 names");
        return;
    }
    b.deadline_ms = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    arena_init(&b.arena, BIND_ARENA_BYTES);
    bind_run(&b);
    arena_destroy(&b.arena);
    metrics_bind_observe(out->ok, out->api_status);
    if (out->ok)
        log_info("kube", "bound",
                 "pod=%s/%s node=%s model=\"%s\" gpus=%lld indices=\"%s\" status=%ld",
                 req->pod_namespace, req->pod_name, req->node, out->model, (long long)out->gpus,
                 out->gpu_indices, out->api_status);
    else
        log_warn("kube", "bind failed", "pod=%s/%s node=%s status=%ld err=\"%s\"",
                 req->pod_namespace, req->pod_name, req->node, out->api_status,
                 log_quote(&q, out->error.msg));
}

/* ---- the worker pool ---- */

struct bind_job {
    struct kube_bind_req req;
    kube_bind_done_fn *done;
    void *ctx;
    uint64_t queued_ms; /* the bind's time budget starts here, not when a worker is free */
};

struct kube_binder {
    struct kube_client *kc;
    long timeout_ms;
    struct kube_bind_hooks hooks;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct bind_job *queue; /* ring buffer */
    unsigned cap, head, count;
    bool stopping;
    bool joined;
    unsigned nworkers;
    pthread_t *workers;
};

static bool next_job(struct kube_binder *b, struct bind_job *job)
{
    bool have;

    pthread_mutex_lock(&b->lock);
    while (b->count == 0 && !b->stopping)
        pthread_cond_wait(&b->wake, &b->lock);
    have = b->count > 0;
    if (have) {
        *job = b->queue[b->head];
        b->head = (b->head + 1) % b->cap;
        b->count--;
    }
    pthread_mutex_unlock(&b->lock);
    return have;
}

static void *worker_main(void *arg)
{
    struct kube_binder *b = arg;
    struct kube_session *s = kube_session_new(b->kc);
    struct bind_job job;

    while (next_job(b, &job)) {
        struct kube_bind_result res;
        long left = b->timeout_ms - (long)(clock_mono_ms() - job.queued_ms);
        if (s && left > 0) {
            kube_bind(s, &job.req, left, &b->hooks, &res);
        } else if (s) {
            memset(&res, 0, sizeof(res));
            errbuf_set(&res.error,
                       "gpu-extender: bind %s/%s to %s: waited %ld ms for a bind worker; retry",
                       job.req.pod_namespace, job.req.pod_name, job.req.node, b->timeout_ms - left);
            metrics_bind_observe(0, 0);
        } else {
            memset(&res, 0, sizeof(res));
            errbuf_set(&res.error, "gpu-extender: cannot create an HTTP client");
        }
        job.done(job.ctx, &res);
    }
    kube_session_free(s);
    return NULL;
}

struct kube_binder *kube_binder_new(struct kube_client *kc, unsigned workers, unsigned queue_cap,
                                    long timeout_ms, const struct kube_bind_hooks *hooks)
{
    struct kube_binder *b = xcalloc(1, sizeof(*b));

    if (hooks)
        b->hooks = *hooks;
    b->kc = kc;
    b->timeout_ms = timeout_ms;
    b->cap = queue_cap ? queue_cap : 1;
    b->queue = xcalloc(b->cap, sizeof(*b->queue));
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    b->workers = xcalloc(workers ? workers : 1, sizeof(*b->workers));
    for (unsigned i = 0; i < (workers ? workers : 1); i++) {
        if (pthread_create(&b->workers[i], NULL, worker_main, b) != 0)
            break;
        b->nworkers++;
    }
    return b;
}

enum err kube_binder_submit(struct kube_binder *b, const struct kube_bind_req *req,
                            kube_bind_done_fn *done, void *ctx)
{
    enum err e = ERR_OK;

    pthread_mutex_lock(&b->lock);
    if (b->stopping || b->count == b->cap || b->nworkers == 0) {
        e = ERR_UNAVAILABLE;
    } else {
        struct bind_job *job = &b->queue[(b->head + b->count) % b->cap];
        job->req = *req;
        job->done = done;
        job->ctx = ctx;
        job->queued_ms = clock_mono_ms();
        b->count++;
        pthread_cond_signal(&b->wake);
    }
    pthread_mutex_unlock(&b->lock);
    if (e != ERR_OK)
        metrics_counter_add(METRICS_BIND_QUEUE_FULL, 1);
    return e;
}

void kube_binder_stop(struct kube_binder *b)
{
    bool joined;

    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    joined = b->joined;
    b->joined = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    if (joined)
        return;
    for (unsigned i = 0; i < b->nworkers; i++)
        pthread_join(b->workers[i], NULL);
}

void kube_binder_free(struct kube_binder *b)
{
    if (!b)
        return;
    kube_binder_stop(b);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b->workers);
    free(b->queue);
    free(b);
}
