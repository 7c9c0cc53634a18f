/* kube_watch.c -- list+watch on one thread per watch (see kube.h, "list and watch").
 *
 * The thread alternates two requests on its own CURL handle: a paginated LIST, which ends in
 * a resourceVersion, and a streamed WATCH from that resourceVersion, which is cut into lines
 * as bytes arrive. Transfers run through a private multi handle so that kube_watch_stop() can
 * wake a blocked read at once (curl_multi_wakeup) and so that the loop itself notices a
 * stream on which nothing has arrived for stall_timeout_s. Every size that the server
 * controls is capped, here and in kube_watch_xfer.c, which holds one transfer: the GET, the
 * stream cut into lines and the events parsed. This file holds the list+watch state machine,
 * its backoff and its thread. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/kube.h"
#include "gx/log.h"
#include "gx/str.h"

#include "kube_watch_internal.h"

#define KUBE_WATCH_DEFAULT_PAGE_LIMIT 500
#define KUBE_WATCH_DEFAULT_TIMEOUT_S 300
#define KUBE_WATCH_DEFAULT_BACKOFF_MIN_MS 200
#define KUBE_WATCH_DEFAULT_BACKOFF_MAX_MS 30000
#define KUBE_WATCH_DEFAULT_STALL_S 120
#define KUBE_WATCH_MAX_PAGE_LIMIT 100000
#define KUBE_WATCH_MAX_BACKOFF_MS 600000 /* upper bound for the backoff settings */
#define KUBE_WATCH_MAX_URL_BYTES 65536u
#define KUBE_WATCH_MAX_CONTINUE_BYTES 16384u
/* A watch stream that ends (cleanly or not) this soon without a single line is "empty". One
 * empty stream is resumed at once; two in a row count as a failure, so a server that closes
 * every watch at once cannot make us spin. */
#define KUBE_WATCH_MIN_QUIET_MS 1000u

/* ---- small helpers ---- */

/* xorshift64*, seeded per watch. Only spreads reconnects out; nothing secret depends on it. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seed_random(const void *p)
{
    struct timespec ts;
    uint64_t z;

    clock_gettime(CLOCK_REALTIME, &ts);
    /* One splitmix64 round spreads the few bits that differ between watches. */
    z = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)p;
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 0x853C49E6748FEA9BULL;
}

/* Sleeps ms milliseconds, or less if kube_watch_stop() is called meanwhile. */
static void sleep_unless_stopped(struct kube_watch *w, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!kube_watch_is_stopping(w) && pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&w->lock);
}

/* Full jitter: a uniform sleep in [0, ceiling], then the ceiling doubles up to the maximum.
 * A Retry-After from the server (429, 503) is a floor, capped at the maximum. */
static void backoff_sleep(struct kube_watch *w)
{
    long ceiling = w->backoff_ms;
    long ms = (long)(next_random(&w->rng) % ((uint64_t)ceiling + 1u));

    if (ms < w->retry_after_ms)
        ms = w->retry_after_ms < w->backoff_max_ms ? w->retry_after_ms : w->backoff_max_ms;
    w->retry_after_ms = 0;
    w->backoff_ms = ceiling > w->backoff_max_ms / 2 ? w->backoff_max_ms : ceiling * 2;
    log_debug("kube", "watch backing off", "path=%s sleep_ms=%ld", w->path, ms);
    sleep_unless_stopped(w, ms);
}

/* ---- handler calls, and what they say about the connection ---- */

/* Data flows again: the outage (if any) is over and the backoff starts afresh. */
static void mark_fresh(struct kube_watch *w)
{
    if (w->in_outage && w->synced)
        log_info("kube", "watch recovered", "path=%s rv=%s", w->path, w->rv);
    w->in_outage = false;
    w->backoff_ms = w->backoff_min_ms;
    w->auth_failures = 0;
    w->gone_in_row = 0;
    w->empty_streams = 0;
}

/* Reports a failure: the first one of an outage goes to the handler and the log as a warning,
 * the retries that follow only to the debug log. */
static void note_failure(struct kube_watch *w, const char *why)
{
    struct log_q q;

    if (w->in_outage) {
        log_debug("kube", "watch still failing", "path=%s why=\"%s\"", w->path, log_quote(&q, why));
        return;
    }
    w->in_outage = true;
    log_warn("kube", "watch disconnected", "path=%s why=\"%s\"", w->path, log_quote(&q, why));
    if (w->h.disconnected)
        w->h.disconnected(w->h.ctx, why);
}

void kube_watch_emit_object(struct kube_watch *w, enum kube_event_type type, struct str obj)
{
    if (w->h.object)
        w->h.object(w->h.ctx, type, obj.ptr, obj.len);
}

void kube_watch_emit_flush(struct kube_watch *w)
{
    mark_fresh(w);
    if (w->h.flush)
        w->h.flush(w->h.ctx);
}

/* ---- list ---- */

struct list_run {
    char *cont; /* continue token for the next page, or NULL */
    bool begun; /* list_begin() has been called */
    bool done;  /* the last page has been delivered */
    size_t objects;
    char rv[KUBE_WATCH_RV_MAX];
};

struct page {
    struct str items; /* the items array, or empty */
    char rv[KUBE_WATCH_RV_MAX];
    char *cont; /* malloc'd, or NULL on the last page */
};

/* Appends "&name=value" with value URL-escaped. */
static bool add_param(struct kube_watch *w, struct buf *url, const char *name, const char *value)
{
    char *esc = curl_easy_escape(w->curl, value, 0);
    bool ok = esc && buf_printf(url, "&%s=%s", name, esc) == ERR_OK;

    curl_free(esc);
    return ok;
}

static bool list_url(struct kube_watch *w, const char *cont, struct buf *url)
{
    if (buf_printf(url, "%s%s?limit=%ld", kube_client_server(w->kc), w->path, w->page_limit) !=
        ERR_OK)
        return false;
    if (cont && !add_param(w, url, "continue", cont))
        return false;
    return !w->selector || buf_printf(url, "&fieldSelector=%s", w->selector) == ERR_OK;
}

enum { META_RV, META_CONTINUE };

/* One member of the list's metadata: resourceVersion or continue (other types are skipped). */
static bool page_meta_member(struct jscan *js, int key, void *ctx)
{
    struct page *pg = ctx;
    struct str raw;

    if (jscan_peek(js) != JSON_STRING)
        return jscan_skip(js, NULL);
    if (!jscan_string(js, &raw))
        return false;
    if (key == META_RV && !kube_watch_decode_rv(raw, pg->rv))
        return jscan_fail(js, "unusable metadata.resourceVersion");
    if (key == META_CONTINUE && raw.len > 0) {
        if (raw.len > KUBE_WATCH_MAX_CONTINUE_BYTES)
            return jscan_fail(js, "metadata.continue is too long");
        free(pg->cont);
        pg->cont = xmalloc(raw.len + 1);
        jstr_decode(raw, pg->cont, raw.len + 1);
    }
    return true;
}

enum { PAGE_METADATA, PAGE_ITEMS };

static bool page_member(struct jscan *js, int key, void *ctx)
{
    static const char *const meta_names[] = {
        [META_RV] = "resourceVersion", [META_CONTINUE] = "continue"};
    struct page *pg = ctx;

    if (key == PAGE_METADATA) {
        if (jscan_peek(js) != JSON_OBJECT)
            return jscan_fail(js, "metadata must be an object");
        return jscan_walk_object(js, meta_names, 2, 0, page_meta_member, pg);
    }
    return jscan_skip(js, jscan_peek(js) == JSON_ARRAY ? &pg->items : NULL);
}

/* Checks a whole page before anything of it is delivered. */
static bool parse_page(const char *p, size_t len, struct page *pg, struct errbuf *why)
{
    static const char *const names[] = {[PAGE_METADATA] = "metadata", [PAGE_ITEMS] = "items"};
    struct jscan js;

    jscan_init(&js, p, len, JSCAN_MAX_DEPTH);
    if (jscan_peek(&js) != JSON_OBJECT)
        jscan_fail(&js, "a list must be a JSON object");
    else if (jscan_walk_object(&js, names, 2, 0, page_member, pg) && jscan_finish(&js) &&
             !pg->rv[0])
        jscan_fail(&js, "the list has no metadata.resourceVersion");
    if (jscan_failed(&js)) {
        errbuf_set(why, "unreadable list: %s", jscan_error(&js, NULL));
        return false;
    }
    return true;
}

static enum step deliver_page(struct kube_watch *w, struct list_run *lr, const struct page *pg)
{
    struct jscan js;
    struct str obj;

    if (!lr->begun) {
        lr->begun = true;
        if (w->h.list_begin)
            w->h.list_begin(w->h.ctx);
    }
    if (pg->items.len > 0) {
        jscan_init(&js, pg->items.ptr, pg->items.len, JSCAN_MAX_DEPTH);
        jscan_enter_array(&js);
        while (jscan_next_element(&js) == 1 && !kube_watch_is_stopping(w)) {
            bool is_obj = jscan_peek(&js) == JSON_OBJECT;

            if (!jscan_skip(&js, &obj))
                break;
            if (is_obj) {
                kube_watch_emit_object(w, KUBE_EVENT_ADDED, obj);
                lr->objects++;
            }
        }
    }
    free(lr->cont);
    lr->cont = pg->cont;
    memcpy(lr->rv, pg->rv, sizeof(lr->rv));
    lr->done = lr->cont == NULL;
    return kube_watch_is_stopping(w) ? STEP_STOP : STEP_NEXT;
}

/* A page over KUBE_WATCH_MAX_PAGE_BYTES: ask again for the same page in smaller pieces. */
static enum step shrink_pages(struct kube_watch *w, struct errbuf *why)
{
    if (w->page_limit <= 1) {
        errbuf_set(why, "one object is larger than %u bytes", KUBE_WATCH_MAX_PAGE_BYTES);
        return STEP_FAIL;
    }
    w->page_limit /= 2;
    log_warn("kube", "list page too large; asking for fewer items", "path=%s limit=%ld", w->path,
             w->page_limit);
    return STEP_NEXT;
}

static enum step list_page(struct kube_watch *w, struct list_run *lr, struct errbuf *why)
{
    struct page pg = {.cont = NULL};
    struct xfer x;
    struct buf url;
    enum step s;
    CURLcode rc;

    buf_init(&url, KUBE_WATCH_MAX_URL_BYTES);
    kube_watch_xfer_init(&x, w, false);
    if (!list_url(w, lr->cont, &url)) {
        errbuf_set(why, "list URL too long");
        s = STEP_FAIL;
        goto out;
    }
    rc = kube_watch_transfer(w, url.ptr, &x);
    if (x.too_large && !kube_watch_is_stopping(w)) {
        s = shrink_pages(w, why);
        goto out;
    }
    s = kube_watch_classify(&x, rc, false, why);
    if (s != STEP_NEXT)
        goto out;
    if (!parse_page(x.body.ptr ? x.body.ptr : "", x.body.len, &pg, why)) {
        free(pg.cont);
        s = STEP_FAIL;
        goto out;
    }
    log_debug("kube", "list page", "path=%s bytes=%zu more=%d", w->path, x.body.len,
              pg.cont != NULL);
    s = deliver_page(w, lr, &pg);
out:
    kube_watch_xfer_destroy(&x);
    buf_destroy(&url);
    return s;
}

static void finish_list(struct kube_watch *w, const struct list_run *lr)
{
    memcpy(w->rv, lr->rv, sizeof(w->rv));
    if (!w->synced)
        log_info("kube", "watch synced", "path=%s objects=%zu rv=%s", w->path, lr->objects, w->rv);
    else
        log_debug("kube", "listed again", "path=%s objects=%zu rv=%s", w->path, lr->objects, w->rv);
    mark_fresh(w);
    w->synced = true;
    if (w->h.list_end)
        w->h.list_end(w->h.ctx, w->rv);
}

/* Lists every page. Any failure starts the next attempt from the first page (the handler sees
 * list_begin() again); so does a 410 on a continue token. */
static enum step list_all(struct kube_watch *w, struct errbuf *why)
{
    struct list_run lr = {.cont = NULL};
    enum step s;

    do
        s = list_page(w, &lr, why);
    while (s == STEP_NEXT && !lr.done);
    free(lr.cont);
    if (s == STEP_NEXT)
        finish_list(w, &lr);
    return s;
}

/* ---- watch ---- */

static enum step watch_once(struct kube_watch *w, struct errbuf *why)
{
    struct xfer x;
    struct buf url;
    enum step s;
    CURLcode rc;

    buf_init(&url, KUBE_WATCH_MAX_URL_BYTES);
    kube_watch_xfer_init(&x, w, true);
    if (buf_printf(
            &url, "%s%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%ld%s%s",
            kube_client_server(w->kc), w->path, w->rv, w->watch_timeout_s,
            w->selector ? "&fieldSelector=" : "", w->selector ? w->selector : "") != ERR_OK) {
        errbuf_set(why, "watch URL too long");
        s = STEP_FAIL;
        goto out;
    }
    log_debug("kube", "watching", "path=%s rv=%s", w->path, w->rv);
    rc = kube_watch_transfer(w, url.ptr, &x);
    s = kube_watch_classify(&x, rc, true, why);
    if (s == STEP_NEXT) {
        bool empty = x.lines == 0 && clock_mono_ms() - x.start_ms < KUBE_WATCH_MIN_QUIET_MS;

        w->empty_streams = empty ? w->empty_streams + 1 : 0;
        if (w->empty_streams > 1) {
            errbuf_set(why, "the watch keeps ending without any event");
            s = STEP_FAIL;
        }
    }
out:
    kube_watch_xfer_destroy(&x);
    buf_destroy(&url);
    return s;
}

/* ---- the thread ---- */

static void after_step(struct kube_watch *w, enum step s, const char *why)
{
    switch (s) {
    case STEP_NEXT:
    case STEP_STOP:
        return;
    case STEP_RELIST:
        w->rv[0] = '\0';
        /* The first 410 lists again at once; 410 after 410 means we cannot keep up. */
        if (++w->gone_in_row <= 1)
            return;
        note_failure(w, "the API server keeps answering 410 Gone");
        break;
    case STEP_AUTH:
        /* A rotated token: read the file again and retry once at once, then back off. */
        w->force_token = true;
        if (++w->auth_failures <= 1) {
            log_debug("kube", "watch got 401; re-reading the token", "path=%s", w->path);
            return;
        }
        note_failure(w, why);
        break;
    case STEP_FAIL:
        note_failure(w, why);
        break;
    }
    backoff_sleep(w);
}

static void *watch_main(void *arg)
{
    struct kube_watch *w = arg;
    struct errbuf why = ERRBUF_INIT;

    while (!kube_watch_is_stopping(w)) {
        enum step s;

        errbuf_clear(&why);
        if (atomic_exchange(&w->relist, false)) {
            log_debug("kube", "listing again on request", "path=%s", w->path);
            w->rv[0] = '\0';
        }
        s = w->rv[0] ? watch_once(w, &why) : list_all(w, &why);
        after_step(w, s, why.msg);
    }
    log_debug("kube", "watch stopped", "path=%s", w->path);
    return NULL;
}

static long pick(long v, long dflt, long max)
{
    if (v <= 0)
        return dflt;
    return v > max ? max : v;
}

static void apply_config(struct kube_watch *w, const struct kube_watch_config *cfg)
{
    w->page_limit = pick(cfg->page_limit, KUBE_WATCH_DEFAULT_PAGE_LIMIT, KUBE_WATCH_MAX_PAGE_LIMIT);
    w->watch_timeout_s =
        pick(cfg->watch_timeout_s, KUBE_WATCH_DEFAULT_TIMEOUT_S, KUBE_WATCH_MAX_SECONDS);
    w->backoff_min_ms =
        pick(cfg->backoff_min_ms, KUBE_WATCH_DEFAULT_BACKOFF_MIN_MS, KUBE_WATCH_MAX_BACKOFF_MS);
    w->backoff_max_ms =
        pick(cfg->backoff_max_ms, KUBE_WATCH_DEFAULT_BACKOFF_MAX_MS, KUBE_WATCH_MAX_BACKOFF_MS);
    if (w->backoff_max_ms < w->backoff_min_ms)
        w->backoff_max_ms = w->backoff_min_ms;
    w->stall_timeout_s =
        pick(cfg->stall_timeout_s, KUBE_WATCH_DEFAULT_STALL_S, KUBE_WATCH_MAX_SECONDS);
    w->backoff_ms = w->backoff_min_ms;
}

static bool init_sync(struct kube_watch *w)
{
    pthread_condattr_t ca;
    bool ok;

    if (pthread_condattr_init(&ca) != 0)
        return false;
    ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&w->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pthread_mutex_init(&w->lock, NULL) != 0) {
        pthread_cond_destroy(&w->cond);
        ok = false;
    }
    return ok;
}

static void free_handles(struct kube_watch *w)
{
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->curl)
        curl_easy_cleanup(w->curl);
    curl_free(w->selector);
    free(w->path);
    free(w);
}

struct kube_watch *kube_watch_start(struct kube_client *kc, const struct kube_watch_config *cfg,
                                    const struct kube_watch_handler *h)
{
    struct kube_watch *w;

    if (!cfg->path || cfg->path[0] != '/' || strpbrk(cfg->path, "?#")) {
        log_error("kube", "watch path must be an absolute API path", "path=\"%s\"",
                  cfg->path ? cfg->path : "");
        return NULL;
    }
    w = xcalloc(1, sizeof(*w));
    w->kc = kc;
    w->h = *h;
    w->path = xstrdup(cfg->path);
    apply_config(w, cfg);
    atomic_init(&w->stop, false);
    atomic_init(&w->relist, false);
    w->rng = seed_random(w);
    w->curl = curl_easy_init();
    w->multi = curl_multi_init();
    if (w->curl && cfg->field_selector && cfg->field_selector[0])
        w->selector = curl_easy_escape(w->curl, cfg->field_selector, 0);
    if (!w->curl || !w->multi || (cfg->field_selector && cfg->field_selector[0] && !w->selector))
        goto out_free;
    if (!init_sync(w))
        goto out_free;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
        goto out_destroy_sync;
    return w;

out_destroy_sync:
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
out_free:
    log_error("kube", "cannot start a watch", "path=%s", cfg->path);
    free_handles(w);
    return NULL;
}

void kube_watch_relist(struct kube_watch *w)
{
    if (w)
        atomic_store(&w->relist, true);
}

void kube_watch_stop(struct kube_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop, true);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    /* Wakes curl_multi_poll() now, or makes the next call return at once. */
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free_handles(w);
}
