/* agent_main.c -- build/gpu-extender-agent: the node agent's loop (see agent.h).
 *
 *   flags -> NVML (topology, health events) -> every --interval-ms: the kubelet's
 *   PodResources -> what to publish -> once it settled: one merge patch of the Node
 *
 * One thread. NVML events are waited for in slices of at most 200 ms, so SIGTERM and the next
 * poll are never late by more than that. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gx/agent.h"
#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/kubeconfig.h"
#include "gx/log.h"
#include "gx/nvml.h"
#include "gx/podres.h"

#define SLICE_MS 200
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* PodResources failures in a row before GPUs in use are published as unknown; one failure
 * keeps the last answer (a kubelet restart takes a few seconds). */
#define PODRES_FAILS_UNKNOWN 3

extern char **environ;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

struct agent {
    struct agent_config cfg;
    struct gpu_xid_list ignored;
    struct nvml *nvml;
    bool armed;
    struct gpu_facts facts;
    struct podres_list pods; /* the last good answer */
    bool pods_known;
    unsigned pods_fails;
    struct agent_publisher *pub;
    struct agent_state want;
    bool pending, urgent;
    uint64_t first_change_ms, last_change_ms, retry_at_ms;
    long backoff_ms;
    uint64_t patches;
};

static void rfc3339_now(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The liveness probe's file: its mtime says the loop still turns. */
static void touch_health(const struct agent *a)
{
    int fd;

    if (!a->cfg.health_file[0])
        return;
    fd = open(a->cfg.health_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)futimens(fd, NULL);
        close(fd);
    }
}

/* --check-health FILE: 0 when the loop touched it recently enough. */
static int check_health(const struct agent_config *cfg)
{
    struct stat st;
    struct timespec now;
    double age;

    if (stat(cfg->check_health, &st) != 0) {
        fprintf(stderr, "gpu-extender-agent: %s: %s\n", cfg->check_health, strerror(errno));
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    age = difftime(now.tv_sec, st.st_mtim.tv_sec);
    if (age * 1000 > (double)cfg->health_max_age_ms) {
        fprintf(stderr, "gpu-extender-agent: the loop last turned %.0f s ago\n", age);
        return 1;
    }
    return 0;
}

/* Reads the kubelet; a failure keeps the last answer for a while (see PODRES_FAILS_UNKNOWN). */
static void poll_pods(struct agent *a)
{
    struct errbuf eb = ERRBUF_INIT;
    struct podres_list l = {0};
    enum err e;

    if (!a->cfg.pod_resources_socket[0])
        return;
    e = podres_list(a->cfg.pod_resources_socket, a->cfg.timeout_ms, &l, &eb);
    if (e == ERR_OK) {
        if (a->pods_fails >= PODRES_FAILS_UNKNOWN)
            log_info("agent", "the kubelet's PodResources API answers again", "socket=%s",
                     a->cfg.pod_resources_socket);
        podres_list_free(&a->pods);
        a->pods = l;
        a->pods_known = true;
        a->pods_fails = 0;
        return;
    }
    a->pods_fails++;
    if (a->pods_fails == 1 || a->pods_fails == PODRES_FAILS_UNKNOWN) {
        struct log_q q;

        log_warn("agent", "the kubelet's PodResources API failed", "socket=%s err=%s why=\"%s\"%s",
                 a->cfg.pod_resources_socket, err_str(e), log_quote(&q, eb.msg),
                 a->pods_fails == PODRES_FAILS_UNKNOWN ? " gpus_in_use=unknown" : "");
    }
    if (a->pods_fails >= PODRES_FAILS_UNKNOWN)
        a->pods_known = false;
}

/* Reads the GPUs again, keeping the health that events took away. */
static enum err collect(struct agent *a, struct errbuf *eb)
{
    struct gpu_facts fresh;
    enum err e = nvml_collect(a->nvml, &fresh, eb);

    if (e != ERR_OK)
        return e;
    (void)gpu_facts_keep_health(&fresh, &a->facts);
    a->facts = fresh;
    return ERR_OK;
}

/* Rebuilds what to publish; a difference starts (or extends) the settling window. */
static enum err rebuild(struct agent *a, uint64_t now)
{
    const struct agent_meta meta = {
        .version = GX_VERSION,
        .health_events = a->armed,
        .gfd_labels = !a->pub || !agent_publisher_node_has_gfd(a->pub),
    };
    struct agent_usage u;
    struct agent_state next = {{0}};
    char stamp[32];
    enum err e;

    e = agent_usage_from(&a->facts, a->pods_known ? &a->pods : NULL, &u);
    if (e == ERR_OK)
        e = agent_state_build(&a->facts, &u, &meta, &next);
    agent_usage_destroy(&u);
    if (e != ERR_OK)
        return e;
    if (a->want.v[AGENT_KEY_TOPOLOGY] && agent_state_same(&next, &a->want)) {
        agent_state_clear(&next);
        return ERR_OK;
    }
    rfc3339_now(stamp, sizeof(stamp));
    next.v[AGENT_KEY_CHANGED_AT] = xstrdup(stamp);
    agent_state_clear(&a->want);
    a->want = next;
    if (!a->pending)
        a->first_change_ms = now;
    a->pending = true;
    a->last_change_ms = now;
    return ERR_OK;
}

static bool due(const struct agent *a, uint64_t now)
{
    if (!a->pending || now < a->retry_at_ms)
        return false;
    return a->cfg.once || a->urgent || now - a->last_change_ms >= (uint64_t)a->cfg.settle_ms ||
           now - a->first_change_ms >= (uint64_t)a->cfg.max_delay_ms;
}

/* Prints (--dry-run) or patches the Node. */
static enum err publish(struct agent *a, uint64_t now)
{
    struct errbuf eb = ERRBUF_INIT;
    bool patched = false;
    enum err e;

    if (a->cfg.dry_run) {
        struct buf b;

        buf_init(&b, 8u << 20);
        e = agent_state_json(&a->want, &b);
        if (e == ERR_OK) {
            fprintf(stdout, "%s\n", b.ptr);
            fflush(stdout);
        }
        buf_destroy(&b);
        a->pending = a->urgent = false;
        return e;
    }
    e = agent_publisher_sync(a->pub, &a->want, &patched, &eb);
    if (e != ERR_OK) {
        struct log_q q;
        long jitter = a->backoff_ms / 4 ? rand() % (a->backoff_ms / 4) : 0;

        log_warn("agent", "publishing failed; retrying", "node=%s err=%s why=\"%s\" retry_ms=%ld",
                 a->cfg.node_name, err_str(e), log_quote(&q, eb.msg), a->backoff_ms + jitter);
        a->retry_at_ms = now + (uint64_t)(a->backoff_ms + jitter);
        a->backoff_ms = a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2;
        return e;
    }
    a->backoff_ms = BACKOFF_MIN_MS;
    a->pending = a->urgent = false;
    if (patched) {
        a->patches++;
        log_info("agent", "published", "node=%s in_use=\"%s\" patches=%llu", a->cfg.node_name,
                 a->want.v[AGENT_KEY_IN_USE] ? a->want.v[AGENT_KEY_IN_USE] : "unknown",
                 (unsigned long long)a->patches);
    }
    return ERR_OK;
}

static void on_event(struct agent *a, const struct nvml_event *ev)
{
    struct log_q q;

    if (!gpu_facts_apply_event(&a->facts, ev, &a->ignored)) {
        log_debug("agent", "GPU event ignored", "gpu=%u xid=%llu dbe=%d", ev->index, ev->xid,
                  ev->dbe);
        return;
    }
    log_warn("agent", "GPU is unhealthy: no longer offered to new pods",
             "gpu=%u uuid=%s xid=%llu dbe=%d", ev->index,
             ev->index < a->facts.n ? log_quote(&q, a->facts.gpu[ev->index].uuid) : "", ev->xid,
             ev->dbe);
    a->urgent = true;
}

/* Waits until the next thing to do (or SIGTERM), taking NVML events meanwhile. */
static void wait_until(struct agent *a, uint64_t until)
{
    for (uint64_t now = clock_mono_ms(); now < until && !stopping; now = clock_mono_ms()) {
        unsigned slice = until - now > SLICE_MS ? SLICE_MS : (unsigned)(until - now);
        struct errbuf eb = ERRBUF_INIT;
        struct nvml_event ev;
        int r;

        if (!a->armed) {
            struct timespec ts = {0, (long)slice * 1000000L};

            nanosleep(&ts, NULL);
            continue;
        }
        r = nvml_events_wait(a->nvml, slice, &ev, &eb);
        if (r == 1) {
            on_event(a, &ev);
            return; /* publish health at once */
        }
        if (r < 0) {
            struct log_q q;

            log_warn("agent", "NVML events failed; health is no longer watched", "why=\"%s\"",
                     log_quote(&q, eb.msg));
            a->armed = false;
        }
    }
}

static int run(struct agent *a)
{
    uint64_t next_poll = 0, next_collect;
    struct errbuf eb = ERRBUF_INIT;
    enum err e;

    next_collect = clock_mono_ms() + (uint64_t)a->cfg.recollect_ms;
    while (!stopping) {
        uint64_t now = clock_mono_ms(), until;

        touch_health(a);
        if (now >= next_poll) {
            poll_pods(a);
            next_poll = now + (uint64_t)a->cfg.interval_ms;
        }
        if (now >= next_collect) {
            e = collect(a, &eb);
            if (e != ERR_OK) {
                struct log_q q;

                log_warn("agent", "reading NVML again failed; keeping what was read", "why=\"%s\"",
                         log_quote(&q, eb.msg));
                errbuf_clear(&eb);
            }
            next_collect = now + (uint64_t)a->cfg.recollect_ms;
        }
        e = rebuild(a, now);
        if (e != ERR_OK) {
            log_error("agent", "cannot build the annotations", "err=%s", err_str(e));
            return 1;
        }
        if (due(a, now)) {
            e = publish(a, now);
            if (a->cfg.once)
                return e == ERR_OK ? 0 : 1;
        }
        until = next_poll < next_collect ? next_poll : next_collect;
        if (a->pending) {
            uint64_t settle = a->last_change_ms + (uint64_t)a->cfg.settle_ms;
            uint64_t cap = a->first_change_ms + (uint64_t)a->cfg.max_delay_ms;
            uint64_t at = settle < cap ? settle : cap;

            at = at < a->retry_at_ms ? a->retry_at_ms : at;
            until = at < until ? at : until;
        }
        wait_until(a, until);
    }
    log_info("agent", "stopping", "node=%s patches=%llu", a->cfg.node_name,
             (unsigned long long)a->patches);
    return 0;
}

static enum err connect_api(struct agent *a, struct errbuf *eb)
{
    struct kubeconfig_creds creds = {0};
    enum err e;

    e = a->cfg.kubeconfig[0] ? kubeconfig_load(a->cfg.kubeconfig, NULL, &creds, eb)
                             : kubeconfig_in_cluster(a->cfg.serviceaccount_dir, &creds, eb);
    if (e == ERR_OK)
        e = agent_publisher_new(&creds, a->cfg.node_name, a->cfg.timeout_ms, &a->pub, eb);
    kubeconfig_creds_destroy(&creds);
    return e;
}

int main(int argc, char **argv)
{
    static struct agent a;
    struct errbuf eb = ERRBUF_INIT;
    struct sigaction sa;
    enum log_level level;
    int rc = 1;
    enum err e;

    e = agent_config_parse(argc, argv, environ, &a.cfg, &eb);
    if (e != ERR_OK) {
        fprintf(stderr, "gpu-extender-agent: %s\n", eb.msg);
        return 2;
    }
    if (a.cfg.help) {
        agent_config_usage(stdout);
        return 0;
    }
    if (a.cfg.check_health[0])
        return check_health(&a.cfg);
    if (a.cfg.version) {
        printf("gpu-extender-agent %s (%s)\n", GX_VERSION, GX_GIT_VERSION);
        return 0;
    }
    if (!log_level_parse(a.cfg.log_level, &level)) {
        fprintf(stderr, "gpu-extender-agent: --log-level: expected error, warn, info or debug\n");
        return 2;
    }
    log_set_level(level);
    if (gpu_xid_list_parse(str_from_cstr(a.cfg.ignored_xids), &a.ignored, &eb) != ERR_OK) {
        fprintf(stderr, "gpu-extender-agent: --ignored-xids: %s\n", eb.msg);
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)clock_mono_ns());
    a.backoff_ms = BACKOFF_MIN_MS;

    e = nvml_open(a.cfg.nvml_lib, &a.nvml, &eb);
    if (e == ERR_OK)
        e = collect(&a, &eb);
    if (e != ERR_OK) {
        struct log_q q;

        log_error("agent", "cannot read the GPUs through NVML", "lib=%s err=%s why=\"%s\"",
                  a.cfg.nvml_lib, err_str(e), log_quote(&q, eb.msg));
        goto out;
    }
    errbuf_clear(&eb);
    a.armed = nvml_events_arm(a.nvml, &eb) == ERR_OK;
    if (!a.armed) {
        struct log_q q;

        log_warn("agent", "NVML health events unavailable: GPUs are published healthy",
                 "why=\"%s\"", log_quote(&q, eb.msg));
    }
    errbuf_clear(&eb);
    if (!a.cfg.dry_run) {
        e = connect_api(&a, &eb);
        if (e != ERR_OK) {
            struct log_q q;

            log_error("agent", "no API server", "err=%s why=\"%s\"", err_str(e),
                      log_quote(&q, eb.msg));
            goto out;
        }
        /* A failure here is retried by the first publish. */
        if (agent_publisher_refresh(a.pub, &eb) != ERR_OK) {
            struct log_q q;

            log_warn("agent", "cannot read the Node yet", "node=%s why=\"%s\"", a.cfg.node_name,
                     log_quote(&q, eb.msg));
        }
    }
    log_info("agent", "started", "node=%s gpus=%u driver=%s health_events=%d dry_run=%d",
             a.cfg.node_name, a.facts.n, a.facts.driver_version, a.armed, a.cfg.dry_run);
    rc = run(&a);
out:
    agent_publisher_free(a.pub);
    agent_state_clear(&a.want);
    podres_list_free(&a.pods);
    nvml_close(a.nvml);
    return rc;
}
