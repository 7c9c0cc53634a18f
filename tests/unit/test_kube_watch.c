/* test_kube_watch.c -- the list+watch client against tests/fake_apiserver.py: paginated list,
 * live events, bookmarks, 410 relists, resumed watches, token rotation, 5xx/429 on the list,
 * a stalled stream, an oversized event, and how fast kube_watch_stop() returns. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/kube.h"
#include "gx/log.h"

#include "check.h"
#include "child_proc.h"

#define WAIT_MS 8000 /* the longest any single expectation may take */
#define HTTP_TIMEOUT_S 15
#define BIG_ANNOTATION_BYTES ((16u << 20) + 4096u) /* just past the watch's event line cap */

/* ---- the fake API server ---- */

static pid_t fake_pid = -1;
static int fake_port;
static char tmp_dir[] = "/tmp/test_kube_watch.XXXXXX";
static char token[64] = "t1";

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void fake_start(void)
{
    const char *src = getenv("GX_SOURCE_DIR"), *fix = getenv("GX_FIXTURES");
    char script[1024], seed[1024], port_file[256], log_file[256];
    uint64_t deadline = clock_mono_ms() + 20000;
    FILE *f;

    CHECK(src && fix);
    snprintf(script, sizeof(script), "%s/tests/fake_apiserver.py", src);
    snprintf(seed, sizeof(seed), "%s/apiserver", fix);
    snprintf(port_file, sizeof(port_file), "%s/port", tmp_dir);
    snprintf(log_file, sizeof(log_file), "%s/fake.log", tmp_dir);
    fake_pid = fork();
    CHECK(fake_pid >= 0);
    if (fake_pid == 0) {
        /* If this test dies (a failed CHECK aborts), the fake goes with it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execlp("python3", "python3", script, "--listen", "127.0.0.1:0", "--port-file", port_file,
               "--token", "t1", "--seed-fixtures", seed, "--log", log_file, (char *)NULL);
        _exit(127);
    }
    for (;;) {
        int status;

        f = fopen(port_file, "r");
        if (f && fscanf(f, "%d", &fake_port) == 1 && fake_port > 0)
            break;
        if (f)
            fclose(f);
        CHECK(waitpid(fake_pid, &status, WNOHANG) == 0); /* it died: see fake.log */
        CHECK(clock_mono_ms() < deadline);
        sleep_ms(50);
    }
    fclose(f);
}

static void fake_stop(void)
{
    child_stop(&fake_pid);
}

/* One HTTP/1.1 request on a fresh connection; returns the status, the body in *resp (malloc'd,
 * NUL-terminated; may be NULL to discard). */
static int http(const char *method, const char *path, const char *ctype, const char *body,
                char **resp)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct timeval tv = {HTTP_TIMEOUT_S, 0};
    size_t body_len = body ? strlen(body) : 0, len = 0, cap = 65536;
    char head[1024], *in = malloc(cap), *p;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0, hn;
    ssize_t n;

    CHECK(fd >= 0 && in);
    sa.sin_port = htons((uint16_t)fake_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    hn = snprintf(head, sizeof(head),
                  "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                  "Connection: close\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                  method, path, token, ctype ? ctype : "application/json", body_len);
    CHECK(hn > 0 && (size_t)hn < sizeof(head));
    CHECK(write(fd, head, (size_t)hn) == hn);
    for (size_t off = 0; off < body_len; off += (size_t)n) {
        n = write(fd, body + off, body_len - off);
        CHECK(n > 0);
    }
    while ((n = read(fd, in + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            cap *= 2;
            in = realloc(in, cap);
            CHECK(in);
        }
    }
    close(fd);
    in[len] = '\0';
    CHECK(sscanf(in, "HTTP/1.%*d %d", &status) == 1);
    p = strstr(in, "\r\n\r\n");
    if (resp) {
        *resp = strdup(p ? p + 4 : "");
        CHECK(*resp);
    }
    free(in);
    return status;
}

static void http_ok(const char *method, const char *path, const char *ctype, const char *body,
                    int want)
{
    int got = http(method, path, ctype, body, NULL);

    if (got != want) {
        fprintf(stderr, "%s %s: HTTP %d, wanted %d\n", method, path, got, want);
        abort();
    }
}

static void admin(const char *what, const char *body)
{
    char path[256];

    snprintf(path, sizeof(path), "/_admin/%s", what);
    http_ok("POST", path, NULL, body, 200);
}

static void create_pod(const char *name)
{
    char body[512];

    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"name\":\"c\","
             "\"image\":\"busybox\"}]}}",
             name);
    http_ok("POST", "/api/v1/namespaces/default/pods", NULL, body, 201);
}

/* How often needle occurs in the fake's records of "GET path" requests; extra is appended to
 * the query (such as "&min=1&wait=5" to wait for the first one). */
static int count_requests_q(const char *path, const char *extra, const char *needle)
{
    char url[256], *body, *p;
    int n = 0;

    snprintf(url, sizeof(url), "/_admin/requests?match=%%5EGET%%20%s%%24%s", path, extra);
    CHECK(http("GET", url, NULL, NULL, &body) == 200);
    for (p = body; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(body);
    return n;
}

static int count_requests(const char *path, const char *needle)
{
    return count_requests_q(path, "", needle);
}

/* ---- what the handler saw ---- */

enum kind { K_BEGIN, K_OBJECT, K_END, K_FLUSH, K_DISC };

struct entry {
    enum kind kind;
    enum kube_event_type type;
    char name[64];  /* object: metadata.name */
    char text[256]; /* list_end: resourceVersion; disconnected: why */
    size_t len;
};

struct recorder {
    pthread_mutex_t lock;
    struct entry *e;
    size_t n, cap;
};

static const char *kind_name(enum kind k)
{
    static const char *const names[] = {"list_begin", "object", "list_end", "flush",
                                        "disconnected"};
    return names[k];
}

static void object_name(const char *obj, size_t len, char *out, size_t cap)
{
    struct jscan js;
    struct str key, raw;
    int r;

    out[0] = '\0';
    jscan_init(&js, obj, len, JSCAN_MAX_DEPTH);
    CHECK(jscan_enter_object(&js));
    while ((r = jscan_next_member(&js, &key)) == 1 && !jstr_eq(key, "metadata"))
        CHECK(jscan_skip(&js, NULL));
    CHECK(r == 1 && jscan_enter_object(&js));
    while ((r = jscan_next_member(&js, &key)) == 1 && !jstr_eq(key, "name"))
        CHECK(jscan_skip(&js, NULL));
    CHECK(r == 1 && jscan_string(&js, &raw));
    CHECK(jstr_decode(raw, out, cap) != SIZE_MAX);
}

static void record(struct recorder *r, enum kind kind, enum kube_event_type type, const char *obj,
                   size_t len, const char *text)
{
    struct entry e = {.kind = kind, .type = type, .len = len};

    if (obj)
        object_name(obj, len, e.name, sizeof(e.name));
    if (text)
        snprintf(e.text, sizeof(e.text), "%s", text);
    pthread_mutex_lock(&r->lock);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->e = realloc(r->e, r->cap * sizeof(*r->e));
        CHECK(r->e);
    }
    r->e[r->n++] = e;
    pthread_mutex_unlock(&r->lock);
}

static void on_begin(void *ctx)
{
    record(ctx, K_BEGIN, KUBE_EVENT_ADDED, NULL, 0, NULL);
}

static void on_object(void *ctx, enum kube_event_type type, const char *obj, size_t len)
{
    record(ctx, K_OBJECT, type, obj, len, NULL);
}

static void on_end(void *ctx, const char *rv)
{
    record(ctx, K_END, KUBE_EVENT_ADDED, NULL, 0, rv);
}

static void on_flush(void *ctx)
{
    record(ctx, K_FLUSH, KUBE_EVENT_ADDED, NULL, 0, NULL);
}

static void on_disconnected(void *ctx, const char *why)
{
    record(ctx, K_DISC, KUBE_EVENT_ADDED, NULL, 0, why);
}

static struct kube_watch_handler handler_for(struct recorder *r)
{
    struct kube_watch_handler h = {.ctx = r,
                                   .list_begin = on_begin,
                                   .object = on_object,
                                   .list_end = on_end,
                                   .flush = on_flush,
                                   .disconnected = on_disconnected};
    return h;
}

static size_t rec_len(struct recorder *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* A copy of entry i (the array may move while the watch thread appends). */
static struct entry rec_at(struct recorder *r, size_t i)
{
    struct entry e;

    pthread_mutex_lock(&r->lock);
    CHECK(i < r->n);
    e = r->e[i];
    pthread_mutex_unlock(&r->lock);
    return e;
}

static void rec_dump(struct recorder *r, size_t from)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = from; i < r->n; i++)
        fprintf(stderr, "  [%zu] %s type=%d name=%s text=%s len=%zu\n", i, kind_name(r->e[i].kind),
                (int)r->e[i].type, r->e[i].name, r->e[i].text, r->e[i].len);
    pthread_mutex_unlock(&r->lock);
}

static bool matches(const struct entry *e, enum kind kind, int type, const char *name)
{
    return e->kind == kind && (type < 0 || (int)e->type == type) &&
           (!name || strcmp(e->name, name) == 0);
}

/* Waits until an entry at index >= from matches; returns its index. Fails the test after
 * WAIT_MS, printing what was seen. */
static size_t wait_for(struct recorder *r, size_t from, enum kind kind, int type, const char *name)
{
    uint64_t deadline = clock_mono_ms() + WAIT_MS;

    for (;;) {
        size_t n = rec_len(r);
        for (size_t i = from; i < n; i++) {
            struct entry e = rec_at(r, i);
            if (matches(&e, kind, type, name))
                return i;
        }
        if (clock_mono_ms() > deadline) {
            fprintf(stderr, "timed out waiting for %s %s (type %d) from entry %zu; saw:\n",
                    kind_name(kind), name ? name : "", type, from);
            rec_dump(r, from);
            abort();
        }
        sleep_ms(20);
    }
}

static size_t count_between(struct recorder *r, size_t from, size_t to, enum kind kind)
{
    size_t n = 0;

    for (size_t i = from; i < to; i++) {
        struct entry e = rec_at(r, i);
        n += e.kind == kind;
    }
    return n;
}

static void rec_init(struct recorder *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
}

static void rec_destroy(struct recorder *r)
{
    free(r->e);
    pthread_mutex_destroy(&r->lock);
}

/* Stops the watch and checks that it took well under the 1.5 s the contract allows. */
static void stop_quickly(struct kube_watch *w)
{
    uint64_t t0 = clock_mono_ms(), took;

    kube_watch_stop(w);
    took = clock_mono_ms() - t0;
    fprintf(stderr, "kube_watch_stop took %llu ms\n", (unsigned long long)took);
    CHECK(took < 1500);
}

static struct kube_client *client_new(const char *token_file)
{
    struct kubeconfig_creds cr = {0};
    struct kube_client *kc = NULL;
    struct errbuf eb = ERRBUF_INIT;
    char server[64];

    snprintf(server, sizeof(server), "http://127.0.0.1:%d", fake_port);
    cr.server = server;
    if (token_file)
        cr.token_file = (char *)(uintptr_t)token_file;
    else
        cr.token = token;
    CHECK(kube_client_new(&cr, &kc, &eb) == ERR_OK);
    return kc;
}

static void write_file(const char *path, const char *text)
{
    char tmp[300];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    CHECK(f);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(rename(tmp, path) == 0);
}

/* ---- the cases ---- */

/* (1) initial list of the three fixture nodes, (4) bookmarks, (10) a quick stop. */
static void test_nodes_list_bookmarks_stop(struct kube_client *kc)
{
    struct kube_watch_config cfg = {.path = "/api/v1/nodes", .stall_timeout_s = 5};
    struct recorder r;
    struct kube_watch_handler h;
    struct kube_watch *w;
    size_t b, e, f;

    rec_init(&r);
    h = handler_for(&r);
    w = kube_watch_start(kc, &cfg, &h);
    CHECK(w);
    b = wait_for(&r, 0, K_BEGIN, -1, NULL);
    e = wait_for(&r, b, K_END, -1, NULL);
    CHECK_EQ(b, 0);
    CHECK_EQ(e, 4);
    CHECK_STR_EQ(rec_at(&r, 1).name, "gpu-node-1");
    CHECK_STR_EQ(rec_at(&r, 2).name, "gpu-node-2");
    CHECK_STR_EQ(rec_at(&r, 3).name, "gpu-node-3");
    for (size_t i = 1; i < 4; i++)
        CHECK_EQ(rec_at(&r, i).type, KUBE_EVENT_ADDED);
    CHECK(rec_at(&r, e).text[0] != '\0');
    /* Nothing happens to nodes, so what follows is bookmarks: flushes without objects. */
    f = wait_for(&r, e + 1, K_FLUSH, -1, NULL);
    f = wait_for(&r, f + 1, K_FLUSH, -1, NULL);
    CHECK_EQ(count_between(&r, e + 1, f + 1, K_OBJECT), 0);
    CHECK_EQ(count_between(&r, 0, rec_len(&r), K_DISC), 0);
    stop_quickly(w);
    rec_destroy(&r);
    fprintf(stderr, "ok: nodes list, bookmarks, stop\n");
}

/* (8) 503, 503, then 429 on the list: one disconnected(), then the list arrives, no sooner
 * than the 429's Retry-After: 1 allows. */
static void test_list_5xx(struct kube_client *kc)
{
    struct kube_watch_config cfg = {
        .path = "/api/v1/nodes", .backoff_min_ms = 50, .backoff_max_ms = 2000};
    struct recorder r;
    struct kube_watch_handler h;
    struct kube_watch *w;
    size_t d, e;
    uint64_t t0;

    admin("fault", "[{\"match\":\"^GET /api/v1/nodes$\",\"query\":\"limit=\",\"action\":\"status\","
                   "\"status\":503,\"times\":2},"
                   "{\"match\":\"^GET /api/v1/nodes$\",\"query\":\"limit=\",\"action\":\"status\","
                   "\"status\":429,\"times\":1}]");
    rec_init(&r);
    h = handler_for(&r);
    t0 = clock_mono_ms();
    w = kube_watch_start(kc, &cfg, &h);
    CHECK(w);
    d = wait_for(&r, 0, K_DISC, -1, NULL);
    CHECK(strstr(rec_at(&r, d).text, "503") != NULL);
    e = wait_for(&r, d, K_END, -1, NULL);
    CHECK(clock_mono_ms() - t0 >= 1000);
    CHECK_EQ(count_between(&r, 0, e, K_DISC), 1); /* once per outage, not per retry */
    CHECK_EQ(count_between(&r, d, e, K_BEGIN), 1);
    CHECK_EQ(count_between(&r, d, e, K_OBJECT), 3);
    CHECK(count_requests("/api/v1/nodes", "\"status\":429") >= 1);
    stop_quickly(w);
    rec_destroy(&r);
    http_ok("DELETE", "/_admin/fault", NULL, NULL, 200);
    fprintf(stderr, "ok: 5xx and 429 on the list\n");
}

/* (10) stop also interrupts a request that the server holds without answering. */
static void test_stop_during_stalled_list(struct kube_client *kc)
{
    struct kube_watch_config cfg = {.path = "/api/v1/nodes", .stall_timeout_s = 60};
    struct recorder r;
    struct kube_watch_handler h;
    struct kube_watch *w;

    admin("fault", "{\"match\":\"^GET /api/v1/nodes$\",\"action\":\"stall\",\"seconds\":60,"
                   "\"times\":1}");
    CHECK(http("DELETE", "/_admin/requests", NULL, NULL, NULL) == 200);
    rec_init(&r);
    h = handler_for(&r);
    w = kube_watch_start(kc, &cfg, &h);
    CHECK(w);
    CHECK(count_requests_q("/api/v1/nodes", "&min=1&wait=5", "\"limit\":\"500\"") == 1);
    sleep_ms(200);
    stop_quickly(w);
    CHECK_EQ(rec_len(&r), 0);
    rec_destroy(&r);
    http_ok("DELETE", "/_admin/fault", NULL, NULL, 200);
    fprintf(stderr, "ok: stop during a stalled list\n");
}

/* (2) pagination with limit=1 over six pods. */
static size_t test_pods_paginated(struct recorder *r)
{
    static const char *const names[] = {"cpu-pod-1", "gpu-pod-1", "page-1",
                                        "page-2",    "page-3",    "unscheduled-a"};
    size_t b, e;

    b = wait_for(r, 0, K_BEGIN, -1, NULL);
    e = wait_for(r, b, K_END, -1, NULL);
    CHECK_EQ(e - b - 1, GX_ARRAY_LEN(names));
    for (size_t i = 0; i < GX_ARRAY_LEN(names); i++)
        CHECK_STR_EQ(rec_at(r, b + 1 + i).name, names[i]);
    /* Six pages: the first without a continue token, five with one. */
    CHECK(count_requests("/api/v1/pods", "\"limit\":\"1\"") >= 6);
    CHECK(count_requests("/api/v1/pods", "\"continue\":") >= 5);
    fprintf(stderr, "ok: paginated list\n");
    return e;
}

/* (3) create, merge-patch and delete a pod: ADDED, MODIFIED, DELETED in that order. */
static void test_live_events(struct recorder *r, size_t from)
{
    size_t a, m, d;

    create_pod("ev-1");
    http_ok("PATCH", "/api/v1/namespaces/default/pods/ev-1", "application/merge-patch+json",
            "{\"metadata\":{\"labels\":{\"changed\":\"yes\"}}}", 200);
    http_ok("DELETE", "/api/v1/namespaces/default/pods/ev-1?gracePeriodSeconds=0", NULL, NULL, 200);
    a = wait_for(r, from, K_OBJECT, KUBE_EVENT_ADDED, "ev-1");
    m = wait_for(r, a, K_OBJECT, KUBE_EVENT_MODIFIED, "ev-1");
    d = wait_for(r, m, K_OBJECT, KUBE_EVENT_DELETED, "ev-1");
    CHECK(a < m && m < d);
    wait_for(r, d, K_FLUSH, -1, NULL);
    fprintf(stderr, "ok: live events\n");
}

/* The watch ends every timeoutSeconds (3 s here) and is resumed without a list. */
static void test_rewatch_on_timeout(struct recorder *r, size_t since_end)
{
    uint64_t deadline = clock_mono_ms() + WAIT_MS;
    size_t f;

    while (count_requests("/api/v1/pods", "\"watch\":\"1\"") < 2) {
        CHECK(clock_mono_ms() < deadline);
        sleep_ms(100);
    }
    f = wait_for(r, rec_len(r), K_FLUSH, -1, NULL);
    CHECK_EQ(count_between(r, since_end, f, K_BEGIN), 0);
    CHECK_EQ(count_between(r, since_end, f, K_DISC), 0);
    fprintf(stderr, "ok: re-watch after timeoutSeconds without a list\n");
}

/* (6) the stream drops; a pod created before the watch is back still arrives, and no list. */
static void test_resume_after_drop(struct recorder *r)
{
    size_t mark = rec_len(r), a;

    /* Hold the re-watch for a second so that the pod is surely created while we are away. */
    admin("fault", "{\"match\":\"^GET /api/v1/pods$\",\"query\":\"watch=1\",\"action\":\"stall\","
                   "\"seconds\":1,\"times\":1}");
    admin("close-watches", "{}");
    create_pod("rw-1");
    a = wait_for(r, mark, K_OBJECT, KUBE_EVENT_ADDED, "rw-1");
    CHECK_EQ(count_between(r, mark, a, K_BEGIN), 0);
    CHECK_EQ(count_between(r, mark, a, K_DISC), 0);
    http_ok("DELETE", "/_admin/fault", NULL, NULL, 200);
    fprintf(stderr, "ok: resumed watch from the last resourceVersion\n");
}

/* (5) the resourceVersion is compacted away while we are disconnected: 410, then a new list. */
static void test_gone_relists(struct recorder *r)
{
    size_t mark = rec_len(r), b, e, i;
    bool seen = false;

    admin("fault", "{\"match\":\"^GET /api/v1/pods$\",\"query\":\"watch=1\",\"action\":\"stall\","
                   "\"seconds\":1,\"times\":1}");
    admin("close-watches", "{}");
    create_pod("gone-1");
    admin("compact", "{\"keep\":0}");
    b = wait_for(r, mark, K_BEGIN, -1, NULL);
    e = wait_for(r, b, K_END, -1, NULL);
    for (i = b + 1; i < e; i++)
        seen |= strcmp(rec_at(r, i).name, "gone-1") == 0;
    CHECK(seen);
    CHECK_EQ(count_between(r, mark, e, K_DISC), 0);
    CHECK_EQ(count_between(r, mark, b, K_OBJECT), 0); /* gone-1 came only with the list */
    http_ok("DELETE", "/_admin/fault", NULL, NULL, 200);
    fprintf(stderr, "ok: 410 Gone leads to a new list\n");
}

/* (9) a watch that sends nothing for stall_timeout_s (2 s) is dropped and reconnected. */
static void test_stall(struct recorder *r)
{
    size_t mark, d;
    uint64_t t0;

    wait_for(r, rec_len(r), K_FLUSH, -1, NULL);
    mark = rec_len(r);
    admin("fault", "{\"match\":\"^GET /api/v1/pods$\",\"query\":\"watch=1\",\"action\":\"stall\","
                   "\"seconds\":60,\"times\":1}");
    admin("close-watches", "{}");
    t0 = clock_mono_ms();
    d = wait_for(r, mark, K_DISC, -1, NULL);
    fprintf(stderr, "stall noticed after %llu ms: %s\n", (unsigned long long)(clock_mono_ms() - t0),
            rec_at(r, d).text);
    CHECK(strstr(rec_at(r, d).text, "no data") != NULL);
    wait_for(r, d, K_FLUSH, -1, NULL);
    create_pod("st-1");
    wait_for(r, d, K_OBJECT, KUBE_EVENT_ADDED, "st-1");
    CHECK_EQ(count_between(r, mark, rec_len(r), K_BEGIN), 0);
    http_ok("DELETE", "/_admin/fault", NULL, NULL, 200);
    fprintf(stderr, "ok: stalled stream reconnected\n");
}

/* (7) the token rotates: the server answers 401 until the file is read again. */
static void test_token_rotation(struct recorder *r, const char *token_file)
{
    size_t mark = rec_len(r), a;

    CHECK(http("DELETE", "/_admin/requests", NULL, NULL, NULL) == 200);
    write_file(token_file, "t2\n");
    admin("token", "{\"token\":\"t2\"}");
    snprintf(token, sizeof(token), "t2");
    admin("close-watches", "{}");
    create_pod("tok-1");
    a = wait_for(r, mark, K_OBJECT, KUBE_EVENT_ADDED, "tok-1");
    CHECK_EQ(count_between(r, mark, a, K_BEGIN), 0);
    CHECK(count_requests("/api/v1/pods", "\"status\":401") >= 1);
    fprintf(stderr, "ok: token rotation\n");
}

/* An event line over 16 MiB is refused (no unbounded buffer); a list resyncs. */
static void test_oversized_event(struct recorder *r)
{
    size_t mark = rec_len(r), d, b, e, m, n = BIG_ANNOTATION_BYTES + 512;
    char *body = malloc(n);
    int k;

    CHECK(body);
    k = snprintf(body, n,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"big-1\","
                 "\"namespace\":\"default\",\"annotations\":{\"big\":\"");
    CHECK(k > 0);
    memset(body + k, 'x', BIG_ANNOTATION_BYTES);
    snprintf(body + (size_t)k + BIG_ANNOTATION_BYTES, n - (size_t)k - BIG_ANNOTATION_BYTES,
             "\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}");
    http_ok("POST", "/api/v1/namespaces/default/pods", NULL, body, 201);
    free(body);
    d = wait_for(r, mark, K_DISC, -1, NULL);
    CHECK(strstr(rec_at(r, d).text, "longer than") != NULL);
    b = wait_for(r, d, K_BEGIN, -1, NULL);
    e = wait_for(r, b, K_END, -1, NULL);
    CHECK(wait_for(r, b, K_OBJECT, KUBE_EVENT_ADDED, "big-1") < e);
    CHECK(rec_at(r, wait_for(r, b, K_OBJECT, KUBE_EVENT_ADDED, "big-1")).len >
          BIG_ANNOTATION_BYTES);
    /* Shrunk again, the pod's next event fits. */
    http_ok("PATCH", "/api/v1/namespaces/default/pods/big-1", "application/merge-patch+json",
            "{\"metadata\":{\"annotations\":{\"big\":null}}}", 200);
    m = wait_for(r, e, K_OBJECT, KUBE_EVENT_MODIFIED, "big-1");
    CHECK(rec_at(r, m).len < 65536);
    fprintf(stderr, "ok: oversized event forces a list\n");
}

static void test_pods(void)
{
    struct kube_watch_config cfg = {.path = "/api/v1/pods",
                                    .page_limit = 1,
                                    .watch_timeout_s = 3,
                                    .backoff_min_ms = 50,
                                    .backoff_max_ms = 500,
                                    .stall_timeout_s = 2};
    char token_file[300];
    struct kube_client *kc;
    struct recorder r;
    struct kube_watch_handler h;
    struct kube_watch *w;
    size_t e;

    snprintf(token_file, sizeof(token_file), "%s/token", tmp_dir);
    write_file(token_file, "t1\n");
    kc = client_new(token_file);
    create_pod("page-1");
    create_pod("page-2");
    create_pod("page-3");
    rec_init(&r);
    h = handler_for(&r);
    w = kube_watch_start(kc, &cfg, &h);
    CHECK(w);
    e = test_pods_paginated(&r);
    test_live_events(&r, e);
    test_rewatch_on_timeout(&r, e);
    test_resume_after_drop(&r);
    test_gone_relists(&r);
    test_stall(&r);
    test_token_rotation(&r, token_file);
    test_oversized_event(&r);
    stop_quickly(w);
    rec_destroy(&r);
    kube_client_free(kc);
}

int main(void)
{
    struct kube_client *kc;
    char rm[128];

    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: python3 is not installed; the fake API server needs it\n");
        return 77;
    }
    if (!getenv("GX_SOURCE_DIR") || !getenv("GX_FIXTURES")) {
        fprintf(stderr, "run through ctest: GX_SOURCE_DIR and GX_FIXTURES must be set\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_INFO);
    CHECK(mkdtemp(tmp_dir) != NULL);
    fprintf(stderr, "scratch directory %s (kept if a check fails)\n", tmp_dir);
    fake_start();
    kc = client_new(NULL);
    test_nodes_list_bookmarks_stop(kc);
    test_list_5xx(kc);
    test_stop_during_stalled_list(kc);
    kube_client_free(kc);
    test_pods();
    fake_stop();
    snprintf(rm, sizeof(rm), "rm -rf %s", tmp_dir);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    fprintf(stderr, "test_kube_watch: all ok\n");
    return 0;
}
