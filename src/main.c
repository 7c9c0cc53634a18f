/* main.c -- argv/env -> config -> policy -> API server client -> routes -> HTTP server ->
 * wait for a signal -> drain and stop. The only place that connects modules to each other. */
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/alloc.h"
#include "gx/bind_choice.h"
#include "gx/buf.h"
#include "gx/cache.h"
#include "gx/config.h"
#include "gx/httpd.h"
#include "gx/kube.h"
#include "gx/kubeconfig.h"
#include "gx/log.h"
#include "gx/policy.h"
#include "gx/policy_store.h"
#include "gx/routes.h"
#include "gx/sim.h"

extern char **environ;

enum feed_kind { FEED_NODES, FEED_PODS, FEED_PDBS, FEED_COUNT };

static const char *const feed_paths[FEED_COUNT] = {"/api/v1/nodes", "/api/v1/pods",
                                                   "/apis/policy/v1/poddisruptionbudgets"};
static const char *const feed_names[FEED_COUNT] = {"nodes", "pods", "poddisruptionbudgets"};

/* Feeds one watch into the cache. */
struct watch_feed {
    struct cache *cache;
    enum feed_kind kind;
    bool pods;
    uint64_t bad_objects;
    struct kube_watch *const *pods_watch; /* budgets' feed: where to ask for a pod relist */
};

/* A namespace got its first budget: list the pods again, so that the cache keeps their labels
 * (it keeps them only where a budget may need them). */
static void relist_pods_if_wanted(struct watch_feed *f)
{
    if (f->kind == FEED_PDBS && cache_pods_relist_wanted(f->cache)) {
        log_info("main", "a namespace got its first PodDisruptionBudget; listing pods again", "%s",
                 "");
        kube_watch_relist(*f->pods_watch);
    }
}

struct listener {
    struct routes *routes;
    struct httpd *httpd;
};

struct daemon {
    struct config cfg;
    struct policy_store *policies;
    struct kube_client *kube;
    struct kube_binder *binder;
    struct cache *cache;
    struct bind_choice_ctx choice;
    struct watch_feed feeds[FEED_COUNT];
    struct kube_watch *watches[FEED_COUNT];
    struct httpd_budget *budget; /* request bodies of both listeners */
    struct listener verbs;       /* --listen: the scheduler's verbs, /debug, health */
    struct listener ops;         /* --ops-listen: health and metrics only; may be unused */
};

/* ---- bind glue: routes' bind callback -> the kube binder ---- */

struct bind_call {
    routes_bind_done_fn *done;
    void *done_ctx;
};

static void bind_finished(void *ctx, const struct kube_bind_result *res)
{
    struct bind_call *call = ctx;

    call->done(call->done_ctx, res->ok ? NULL : res->error.msg);
    free(call);
}

static bool copy_field(char *dst, size_t cap, struct str s)
{
    if (s.len >= cap)
        return false;
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return true;
}

static enum err start_bind(void *ctx, const struct ext_bind_args *args, routes_bind_done_fn *done,
                           void *done_ctx, struct errbuf *eb)
{
    struct daemon *d = ctx;
    struct kube_bind_req req;
    struct bind_call *call;
    enum err e;

    if (!copy_field(req.pod_namespace, sizeof(req.pod_namespace), args->pod_namespace) ||
        !copy_field(req.pod_name, sizeof(req.pod_name), args->pod_name) ||
        !copy_field(req.pod_uid, sizeof(req.pod_uid), args->pod_uid) ||
        !copy_field(req.node, sizeof(req.node), args->node)) {
        errbuf_set(eb, "gpu-extender: bind arguments are longer than Kubernetes names can be");
        return ERR_INVALID;
    }
    call = xmalloc(sizeof(*call));
    call->done = done;
    call->done_ctx = done_ctx;
    e = kube_binder_submit(d->binder, &req, bind_finished, call);
    if (e != ERR_OK) {
        free(call);
        errbuf_set(eb, "gpu-extender: every bind worker is busy; retry");
    }
    return e;
}

/* ---- watch glue: API server objects -> cache ---- */

static void feed_list_begin(void *ctx)
{
    struct watch_feed *f = ctx;

    if (f->kind == FEED_PDBS)
        cache_pdbs_relist_begin(f->cache);
    else if (f->pods)
        cache_pods_relist_begin(f->cache);
    else
        cache_nodes_relist_begin(f->cache);
}

static void feed_list_end(void *ctx, const char *rv)
{
    struct watch_feed *f = ctx;

    if (f->kind == FEED_PDBS) {
        cache_pdbs_relist_end(f->cache);
        relist_pods_if_wanted(f);
    } else if (f->pods)
        cache_pods_relist_end(f->cache);
    else
        cache_nodes_relist_end(f->cache);
    log_debug("main", "listed", "resource=%s rv=%s", feed_names[f->kind], rv);
}

/* An object we cannot read is skipped and counted, never fatal: the API server is the source
 * of truth, and one odd object must not stop the cache. */
static void feed_object(void *ctx, enum kube_event_type type, const char *obj, size_t len)
{
    struct watch_feed *f = ctx;
    struct errbuf eb = ERRBUF_INIT;
    struct log_q q;

    bool deleted = type == KUBE_EVENT_DELETED;
    enum err e = f->kind == FEED_PDBS ? cache_pdb_apply_json(f->cache, deleted, obj, len, &eb)
                                      : cache_apply_json(f->cache, f->pods, deleted, obj, len, &eb);

    if (e != ERR_OK && f->bad_objects++ % 1000 == 0)
        log_warn("main", "skipped an object the decoder could not read", "resource=%s err=\"%s\"",
                 feed_names[f->kind], log_quote(&q, eb.msg));
}

static void feed_flush(void *ctx)
{
    struct watch_feed *f = ctx;

    if (f->kind != FEED_PDBS)
        cache_contact(f->cache);
    relist_pods_if_wanted(f);
}

/* The budgets' watch is apart: without it (say, RBAC does not grant list on
 * poddisruptionbudgets) scheduling goes on, and preemption counts no violations it cannot
 * see. It says so, once per outage, at warning level. */
static void feed_disconnected(void *ctx, const char *why)
{
    struct watch_feed *f = ctx;
    struct log_q q;

    if (f->kind != FEED_PDBS) {
        cache_disconnected(f->cache, why);
        return;
    }
    if (f->bad_objects++ % 100 == 0)
        log_warn("main", "cannot watch PodDisruptionBudgets; preemption counts none it cannot see",
                 "err=\"%s\"", log_quote(&q, why));
}

static void start_watches(struct daemon *d)
{
    for (int i = 0; i < FEED_COUNT; i++) {
        struct kube_watch_config wc = {.path = feed_paths[i]};
        struct kube_watch_handler h = {
            .ctx = &d->feeds[i],
            .list_begin = feed_list_begin,
            .object = feed_object,
            .list_end = feed_list_end,
            .flush = feed_flush,
            .disconnected = feed_disconnected,
        };
        d->feeds[i] = (struct watch_feed){.cache = d->cache,
                                          .kind = (enum feed_kind)i,
                                          .pods = i == FEED_PODS,
                                          .pods_watch = &d->watches[FEED_PODS]};
        d->watches[i] = kube_watch_start(d->kube, &wc, &h);
    }
}

/* ---- gpu-extender snapshot ---- */

/* Lists and watches like the daemon, waits for the cache to sync, writes what it holds for
 * `gpu-extender simulate` (sim.h) on stdout, and exits. Takes the daemon's flags. */
static int snapshot_main(int argc, char **argv)
{
    struct daemon d;
    struct kubeconfig_creds creds = {0};
    struct errbuf eb = ERRBUF_INIT;
    struct cache_status st;
    struct buf out;
    enum err e;
    int waited_ms = 0, rc = 1;

    memset(&d, 0, sizeof(d));
    if (config_parse(argc, argv, environ, &d.cfg, &eb) != ERR_OK) {
        fprintf(stderr, "gpu-extender snapshot: %s\n", eb.msg);
        return 2;
    }
    log_set_level(LOG_WARN);
    e = d.cfg.kubeconfig[0] ? kubeconfig_load(d.cfg.kubeconfig, NULL, &creds, &eb)
                            : kubeconfig_in_cluster(d.cfg.serviceaccount_dir, &creds, &eb);
    if (e == ERR_OK)
        e = kube_client_new(&creds, &d.kube, &eb);
    kubeconfig_creds_destroy(&creds);
    if (e != ERR_OK) {
        fprintf(stderr,
                "gpu-extender snapshot: needs an API server (--kubeconfig, or run in a "
                "cluster): %s\n",
                eb.msg[0] ? eb.msg : err_str(e));
        return 1;
    }
    d.cache = cache_new();
    start_watches(&d);
    for (;;) {
        cache_status_get(d.cache, &st);
        if (st.synced || waited_ms >= 120000)
            break;
        usleep(50 * 1000);
        waited_ms += 50;
    }
    if (!st.synced) {
        fprintf(stderr, "gpu-extender snapshot: the cache did not sync within 120 s\n");
    } else {
        buf_init(&out, (size_t)1 << 30);
        if (sim_snapshot_write(d.cache, &out) == ERR_OK &&
            fwrite(out.ptr, 1, out.len, stdout) == out.len && fflush(stdout) == 0) {
            fprintf(stderr, "gpu-extender snapshot: %zu nodes, %zu GPU pods\n", st.nodes,
                    st.gpu_pods);
            rc = 0;
        } else {
            fprintf(stderr, "gpu-extender snapshot: cannot write the snapshot\n");
        }
        buf_destroy(&out);
    }
    for (int i = 0; i < FEED_COUNT; i++)
        kube_watch_stop(d.watches[i]);
    cache_free(d.cache);
    kube_client_free(d.kube);
    return rc;
}

/* ---- start-up ---- */

static int check_policy(const char *path)
{
    struct policy *p = NULL;
    struct policy_diag diag = {0};
    enum err e = policy_load(path, &p, &diag);

    for (size_t i = 0; i < diag.count; i++)
        printf("%s\n", diag.msgs[i]);
    if (e != ERR_OK && diag.count == 0)
        printf("%s: %s\n", path, err_str(e));
    if (e == ERR_OK)
        printf("%s: ok (%zu classes, %zu rules, strategy %s, hash %s)\n", path, p->class_count,
               p->rule_count, policy_strategy_name(p->strategy), p->hash);
    policy_unref(p);
    return e == ERR_OK ? 0 : 1;
}

static bool load_policy(struct daemon *d)
{
    struct policy_diag diag = {0};
    struct log_q q;

    if (!d->cfg.policy[0]) {
        d->policies = policy_store_new(policy_new_default(), "");
        return true;
    }
    if (policy_store_open(d->cfg.policy, &d->policies, &diag) == ERR_OK) {
        policy_store_watch(d->policies, (unsigned)d->cfg.policy_watch_ms);
        return true;
    }
    for (size_t i = 0; i < diag.count; i++)
        log_error("main", "invalid policy", "detail=\"%s\"", log_quote(&q, diag.msgs[i]));
    if (diag.count == 0)
        log_error("main", "cannot read the policy", "path=%s", d->cfg.policy);
    return false;
}

/* Chooses how to reach the API server: --kubeconfig, else in-cluster, else none. */
static bool connect_apiserver(struct daemon *d)
{
    struct kube_bind_hooks hooks;
    struct kubeconfig_creds creds = {0};
    struct errbuf eb = ERRBUF_INIT;
    enum err e;

    if (d->cfg.kubeconfig[0])
        e = kubeconfig_load(d->cfg.kubeconfig, NULL, &creds, &eb);
    else
        e = kubeconfig_in_cluster(d->cfg.serviceaccount_dir, &creds, &eb);
    if (e == ERR_NOT_FOUND && !d->cfg.kubeconfig[0]) {
        log_info("main", "no API server configured: standalone mode; bind answers with an Error",
                 "%s", "");
        return true;
    }
    if (e == ERR_OK)
        e = kube_client_new(&creds, &d->kube, &eb);
    kubeconfig_creds_destroy(&creds);
    if (e != ERR_OK) {
        struct log_q q;
        log_error("main", "cannot configure the API server client", "err=\"%s\"",
                  log_quote(&q, eb.msg));
        return false;
    }
    d->cache = cache_new();
    d->choice = (struct bind_choice_ctx){.cache = d->cache, .policies = d->policies};
    hooks = bind_choice_hooks(&d->choice);
    if (d->cfg.bind_always_get)
        hooks.lookup = NULL;
    d->binder =
        kube_binder_new(d->kube, (unsigned)d->cfg.bind_workers, (unsigned)d->cfg.bind_workers * 64,
                        (long)d->cfg.bind_timeout_ms, &hooks);
    start_watches(d);
    log_info("main", "API server configured; listing nodes and pods", "server=%s",
             kube_client_server(d->kube));
    return true;
}

static bool write_port_file(const char *path, uint16_t port)
{
    char tmp[1100];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return false;
    fprintf(f, "%u\n", (unsigned)port);
    if (fclose(f) != 0)
        return false;
    return rename(tmp, path) == 0;
}

static void handle_request(void *ctx, struct exchange *ex)
{
    routes_handle(ctx, ex);
}

/* One listener: its routes, its server, and its port file. Only the verbs listener (not
 * ops_only) takes --tls-*: probes and Prometheus stay on plain HTTP. */
static bool start_listener(struct daemon *d, const char *name, const char *listen,
                           const char *port_file, bool ops_only, struct listener *out)
{
    struct routes_config rc = {
        .url_prefix = d->cfg.url_prefix,
        .policies = d->policies,
        .bind = d->binder ? start_bind : NULL,
        .bind_ctx = d,
        .mode = d->kube ? kube_client_server(d->kube) : "standalone",
        .cache = d->cache,
        .ops_only = ops_only,
    };
    struct httpd_config hc = {
        .name = name,
        .listen = listen,
        .max_body_bytes = (size_t)d->cfg.max_body_bytes,
        .budget = d->budget,
        .threads = (unsigned)d->cfg.threads,
        .header_timeout_ms = (unsigned)d->cfg.header_timeout_ms,
        .body_timeout_ms = (unsigned)d->cfg.body_timeout_ms,
        .idle_timeout_ms = (unsigned)d->cfg.idle_timeout_ms,
        .max_connections = (unsigned)d->cfg.max_connections,
        .max_connections_per_client = (unsigned)d->cfg.max_connections_per_client,
        .tls_cert_file = ops_only ? NULL : d->cfg.tls_cert,
        .tls_key_file = ops_only ? NULL : d->cfg.tls_key,
        .tls_client_ca_file = ops_only ? NULL : d->cfg.tls_client_ca,
        .handler = handle_request,
    };
    struct errbuf eb = ERRBUF_INIT;

    out->routes = routes_new(&rc);
    hc.handler_ctx = out->routes;
    if (httpd_start(&hc, &out->httpd, &eb) != ERR_OK) {
        log_error("main", "cannot start the HTTP server", "listener=%s err=\"%s\"", name, eb.msg);
        return false;
    }
    if (port_file[0] && !write_port_file(port_file, httpd_port(out->httpd))) {
        log_error("main", "cannot write the port file", "path=%s err=\"%s\"", port_file,
                  strerror(errno));
        return false;
    }
    return true;
}

static bool start_http(struct daemon *d)
{
    struct policy *pol;

    if (d->cfg.max_inflight_bytes < d->cfg.max_body_bytes)
        log_warn("main",
                 "--max-inflight-bytes is below --max-body-bytes: the largest bodies "
                 "will be refused with 503",
                 "max_inflight_bytes=%lld max_body_bytes=%lld", d->cfg.max_inflight_bytes,
                 d->cfg.max_body_bytes);
    d->budget = httpd_budget_new((size_t)d->cfg.max_inflight_bytes);
    if (!start_listener(d, "verbs", d->cfg.listen, d->cfg.port_file, false, &d->verbs))
        return false;
    if (d->cfg.ops_listen[0] &&
        !start_listener(d, "ops", d->cfg.ops_listen, d->cfg.ops_port_file, true, &d->ops))
        return false;
    pol = policy_store_get(d->policies);
    log_info("main", "serving",
             "listen=%s port=%u scheme=%s client_certs=%s ops_listen=%s ops_port=%u prefix=%s "
             "policy=\"%s\" hash=%s rules=%zu",
             d->cfg.listen, (unsigned)httpd_port(d->verbs.httpd),
             d->cfg.tls_cert[0] ? "https" : "http", d->cfg.tls_client_ca[0] ? "required" : "no",
             d->cfg.ops_listen, d->ops.httpd ? (unsigned)httpd_port(d->ops.httpd) : 0u,
             d->cfg.url_prefix, pol->source, pol->hash, pol->rule_count);
    policy_unref(pol);
    return true;
}

/* Order matters: stop accepting and let requests finish; then finish every bind, which
 * completes the replies that wait on them; only then may the HTTP server stop, since
 * libmicrohttpd cannot stop with a connection still suspended. */
static void stop_all(struct daemon *d)
{
    httpd_quiesce(d->ops.httpd, 0); /* probes see the end at once; the verbs drain */
    httpd_quiesce(d->verbs.httpd, (unsigned)d->cfg.drain_timeout_ms);
    kube_binder_stop(d->binder);
    httpd_stop(d->verbs.httpd, 2000);
    httpd_stop(d->ops.httpd, 0);
    kube_binder_free(d->binder);
    for (int i = 0; i < FEED_COUNT; i++)
        kube_watch_stop(d->watches[i]);
    cache_free(d->cache);
    kube_client_free(d->kube);
    routes_free(d->verbs.routes);
    routes_free(d->ops.routes);
    httpd_budget_free(d->budget);
    policy_store_free(d->policies);
}

/* Blocks until SIGTERM or SIGINT; SIGHUP reloads the policy. The signals are blocked in
 * every thread, so only this sigwait sees them. */
static void wait_for_signal(struct daemon *d, const sigset_t *set)
{
    int sig = 0;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* A refusal is logged and counted by the store; the old policy keeps serving. */
            if (policy_store_reload(d->policies, "SIGHUP", NULL) != ERR_OK)
                log_warn("main", "SIGHUP: the policy was not reloaded", "%s", "");
            continue;
        }
        log_info("main", "stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
}

/* glibc gives each thread that allocates its own malloc arena, up to 8 per core. The watch
 * threads fill theirs with a whole cluster's records, and the pages freed around them stay
 * with each arena: at 15,000 nodes and 150,000 pods, two arenas hold the cache in 55 to 61 MB
 * where one per thread took 65 MB (bench/scripts/cache_rss.py; README, "Cluster cache"). Requests
 * allocate once each (their arena), so two are enough for them. MALLOC_ARENA_MAX, when set, is the
 * operator's. */
static void limit_malloc_arenas(void)
{
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 2);
#endif
}

int main(int argc, char **argv)
{
    struct daemon d;
    struct errbuf eb = ERRBUF_INIT;
    enum log_level level;
    sigset_t set;
    int rc = 1;

    memset(&d, 0, sizeof(d));
    limit_malloc_arenas();
    if (argc > 1 && strcmp(argv[1], "simulate") == 0)
        return sim_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "snapshot") == 0)
        return snapshot_main(argc - 1, argv + 1);
    if (config_parse(argc, argv, environ, &d.cfg, &eb) != ERR_OK) {
        fprintf(stderr, "gpu-extender: %s\n", eb.msg);
        return 2;
    }
    if (d.cfg.help) {
        config_usage(stdout);
        return 0;
    }
    if (d.cfg.version) {
        printf("gpu-extender %s (%s)\n", GX_VERSION, GX_GIT_VERSION);
        return 0;
    }
    if (d.cfg.check_policy[0])
        return check_policy(d.cfg.check_policy);
    if (!log_level_parse(d.cfg.log_level, &level)) {
        fprintf(stderr, "gpu-extender: --log-level: expected error, warn, info or debug\n");
        return 2;
    }
    log_set_level(level);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (load_policy(&d) && connect_apiserver(&d) && start_http(&d)) {
        wait_for_signal(&d, &set);
        rc = 0;
    }
    stop_all(&d);
    log_info("main", "stopped", "code=%d", rc);
    return rc;
}
