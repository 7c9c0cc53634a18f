/* kube_watch.c -- list+watch on one thread per watch (see kube.h, "list and watch").
 *
 * The thread alternates two requests on its own CURL handle: a paginated LIST, which ends in
 * a resourceVersion, and a streamed WATCH from that resourceVersion, which is cut into lines
 * as bytes arrive. Transfers run through a private multi handle so that kube_watch_stop() can
 * wake a blocked read at once (curl_multi_wakeup) and so that the loop itself notices a
 * stream on which nothing has arrived for stall_timeout_s. Every size that the server
 * controls is capped below. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/kube.h"
#include "gx/log.h"
#include "gx/str.h"

#include "kube_internal.h"

#define KUBE_WATCH_DEFAULT_PAGE_LIMIT 500
#define KUBE_WATCH_DEFAULT_TIMEOUT_S 300
#define KUBE_WATCH_DEFAULT_BACKOFF_MIN_MS 200
#define KUBE_WATCH_DEFAULT_BACKOFF_MAX_MS 30000
#define KUBE_WATCH_DEFAULT_STALL_S 120
#define KUBE_WATCH_MAX_PAGE_LIMIT 100000
#define KUBE_WATCH_MAX_SECONDS 86400L    /* upper bound for the *_s settings */
#define KUBE_WATCH_MAX_BACKOFF_MS 600000 /* upper bound for the backoff settings */

#define KUBE_WATCH_MAX_EVENT_BYTES (16u << 20) /* one line of the watch stream */
#define KUBE_WATCH_MAX_PAGE_BYTES (64u << 20)  /* one list page, decoded */
#define KUBE_WATCH_MAX_ERROR_BYTES 65536u      /* what we keep of a non-200 body */
#define KUBE_WATCH_MAX_URL_BYTES 65536u
#define KUBE_WATCH_MAX_CONTINUE_BYTES 16384u
#define KUBE_WATCH_RV_MAX 64 /* a resourceVersion, NUL included */
#define KUBE_WATCH_CONNECT_TIMEOUT_MS 10000L
#define KUBE_WATCH_POLL_MS 1000
/* After a long line the line buffer is freed rather than kept for the rest of the stream. */
#define KUBE_WATCH_KEEP_LINE_BYTES (1u << 20)
/* A watch stream that ends (cleanly or not) this soon without a single line is "empty". One
 * empty stream is resumed at once; two in a row count as a failure, so a server that closes
 * every watch at once cannot make us spin. */
#define KUBE_WATCH_MIN_QUIET_MS 1000u

/* What one list or watch attempt leads to. */
enum step {
    STEP_NEXT,   /* go on at once: list complete, or watch ended and can be resumed */
    STEP_RELIST, /* 410 Gone: the resourceVersion is no longer served; list again */
    STEP_AUTH,   /* 401: re-read the token, then retry */
    STEP_FAIL,   /* anything else that went wrong (why says what): back off, then retry */
    STEP_STOP,   /* kube_watch_stop() was called */
};

struct kube_watch {
    struct kube_client *kc;
    struct kube_watch_handler h;
    char *path;
    char *selector; /* URL-escaped fieldSelector, or NULL */
    long page_limit;
    long watch_timeout_s;
    long backoff_min_ms;
    long backoff_max_ms;
    long stall_timeout_s;

    CURL *curl;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock; /* with cond: the interruptible backoff sleep */
    pthread_cond_t cond;
    atomic_bool stop;

    /* Only the watch thread touches what follows. */
    uint64_t rng;
    char rv[KUBE_WATCH_RV_MAX]; /* where the next watch starts; empty: list first */
    long backoff_ms;            /* ceiling of the next backoff sleep */
    long retry_after_ms;        /* the server's Retry-After for the next sleep, or 0 */
    bool synced;                /* a list has completed once */
    bool in_outage;             /* disconnected() was called and nothing has flowed since */
    bool force_token;           /* re-read the token file before the next request */
    unsigned auth_failures;     /* 401s since data last flowed */
    unsigned gone_in_row;       /* 410s since data last flowed */
    unsigned empty_streams;     /* empty watch streams in a row */
};

/* One HTTP transfer: a list page or a watch stream. */
struct xfer {
    struct kube_watch *w;
    bool is_watch;
    long status;           /* HTTP status, once known */
    struct buf body;       /* a list page, or the start of a non-200 body */
    struct buf line;       /* watch: the incomplete last line */
    uint64_t start_ms;     /* when the transfer began */
    uint64_t last_byte_ms; /* when the last header or body byte arrived */
    long retry_after_s;    /* a Retry-After header, or 0 */
    size_t lines;          /* watch: events and bookmarks handled */
    bool stalled;          /* no bytes for stall_timeout_s */
    bool too_large;        /* the list page went over KUBE_WATCH_MAX_PAGE_BYTES */
    enum step verdict;     /* set by the stream parser when it ends the transfer itself */
    struct errbuf why;
};

/* ---- small helpers ---- */

static bool is_stopping(struct kube_watch *w)
{
    return atomic_load(&w->stop);
}

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
    while (!is_stopping(w) && pthread_cond_timedwait(&w->cond, &w->lock, &until) == 0)
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

/* Decodes a JSON string (raw, escapes intact) into a resourceVersion. Only characters that
 * need no URL escaping are accepted; real ones are decimal. */
static bool decode_rv(struct str raw, char *out)
{
    size_t n = jstr_decode(raw, out, KUBE_WATCH_RV_MAX);

    if (n == SIZE_MAX || n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = out[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Moves js onto the value found by following keys through nested objects. */
static bool seek(struct jscan *js, const char *const *keys, size_t nkeys)
{
    struct str key;
    int r;

    for (size_t i = 0; i < nkeys; i++) {
        if (jscan_peek(js) != JSON_OBJECT || !jscan_enter_object(js))
            return false;
        while ((r = jscan_next_member(js, &key)) == 1 && !jstr_eq(key, keys[i])) {
            if (!jscan_skip(js, NULL))
                return false;
        }
        if (r != 1)
            return false;
    }
    return true;
}

/* Reads obj.metadata.resourceVersion. */
static bool object_rv(struct str obj, char *out)
{
    static const char *const keys[] = {"metadata", "resourceVersion"};
    struct jscan js;
    struct str raw;

    jscan_init(&js, obj.ptr, obj.len, JSCAN_MAX_DEPTH);
    return seek(&js, keys, GX_ARRAY_LEN(keys)) && jscan_peek(&js) == JSON_STRING &&
           jscan_string(&js, &raw) && decode_rv(raw, out);
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

static void emit_object(struct kube_watch *w, enum kube_event_type type, struct str obj)
{
    if (w->h.object)
        w->h.object(w->h.ctx, type, obj.ptr, obj.len);
}

static void emit_flush(struct kube_watch *w)
{
    mark_fresh(w);
    if (w->h.flush)
        w->h.flush(w->h.ctx);
}

/* ---- one transfer ---- */

static void xfer_init(struct xfer *x, struct kube_watch *w, bool is_watch)
{
    memset(x, 0, sizeof(*x));
    x->w = w;
    x->is_watch = is_watch;
    x->verdict = STEP_NEXT;
    buf_init(&x->body, is_watch ? KUBE_WATCH_MAX_ERROR_BYTES : KUBE_WATCH_MAX_PAGE_BYTES);
    buf_init(&x->line, KUBE_WATCH_MAX_EVENT_BYTES);
}

static void xfer_destroy(struct xfer *x)
{
    buf_destroy(&x->body);
    buf_destroy(&x->line);
}

/* Ends the transfer from inside a callback with a verdict for the main loop. */
static bool xfer_end(struct xfer *x, enum step verdict)
{
    x->verdict = verdict;
    return false;
}

/* The code of a Status object; 410 also when only the reason says Expired or Gone. */
static int64_t status_code(struct str obj)
{
    static const char *const code_key[] = {"code"}, *const reason_key[] = {"reason"};
    struct jscan js;
    struct str v;
    int64_t code;

    jscan_init(&js, obj.ptr, obj.len, JSCAN_MAX_DEPTH);
    if (seek(&js, code_key, 1) && jscan_peek(&js) == JSON_NUMBER && jscan_skip(&js, &v) &&
        str_to_i64(v, 0, 999, &code) == ERR_OK && code != 0)
        return code;
    jscan_init(&js, obj.ptr, obj.len, JSCAN_MAX_DEPTH);
    if (seek(&js, reason_key, 1) && jscan_peek(&js) == JSON_STRING && jscan_string(&js, &v) &&
        (jstr_eq(v, "Expired") || jstr_eq(v, "Gone")))
        return 410;
    return 0;
}

/* The ERROR event of a watch: 410 means list again, anything else means reconnect. */
static bool on_error_event(struct xfer *x, struct str obj)
{
    int64_t code = status_code(obj);
    char msg[160];

    kube_status_message(obj.ptr, obj.len, msg, sizeof(msg));
    if (code == 410) {
        log_debug("kube", "watch expired; listing again", "path=%s rv=%s msg=\"%s\"", x->w->path,
                  x->w->rv, msg);
        return xfer_end(x, STEP_RELIST);
    }
    errbuf_set(&x->why, "watch error event %lld: %s", (long long)code, msg);
    return xfer_end(x, STEP_FAIL);
}

/* Splits one event line into its type and object. */
static bool parse_event(struct str line, struct str *type, struct str *obj, const char **err)
{
    struct jscan js;
    struct str key;
    bool ok = true;

    *type = STR_NULL;
    *obj = STR_NULL;
    jscan_init(&js, line.ptr, line.len, JSCAN_MAX_DEPTH);
    if (jscan_peek(&js) != JSON_OBJECT || !jscan_enter_object(&js))
        jscan_fail(&js, "an event must be a JSON object");
    while (ok && jscan_next_member(&js, &key) == 1) {
        if (jstr_eq(key, "type") && jscan_peek(&js) == JSON_STRING)
            ok = jscan_string(&js, type);
        else if (jstr_eq(key, "object") && jscan_peek(&js) == JSON_OBJECT)
            ok = jscan_skip(&js, obj);
        else
            ok = jscan_skip(&js, NULL);
    }
    if (jscan_finish(&js) && (!type->ptr || !obj->ptr))
        jscan_fail(&js, "an event needs a string type and an object");
    *err = jscan_error(&js, NULL);
    return *err == NULL;
}

static bool is_blank(struct str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] != ' ' && s.ptr[i] != '\t' && s.ptr[i] != '\r')
            return false;
    }
    return true;
}

/* Handles one complete line of the watch stream. Returns false to end the transfer. */
static bool handle_line(struct xfer *x, struct str line)
{
    struct kube_watch *w = x->w;
    struct str type, obj;
    const char *err;

    if (is_blank(line))
        return true;
    if (!parse_event(line, &type, &obj, &err)) {
        /* The stream cannot be trusted past a line we cannot read; only a list can resync. */
        errbuf_set(&x->why, "unreadable watch event: %s", err);
        w->rv[0] = '\0';
        return xfer_end(x, STEP_FAIL);
    }
    if (jstr_eq(type, "ERROR"))
        return on_error_event(x, obj);
    x->lines++;
    if (jstr_eq(type, "ADDED"))
        emit_object(w, KUBE_EVENT_ADDED, obj);
    else if (jstr_eq(type, "MODIFIED"))
        emit_object(w, KUBE_EVENT_MODIFIED, obj);
    else if (jstr_eq(type, "DELETED"))
        emit_object(w, KUBE_EVENT_DELETED, obj);
    else if (!jstr_eq(type, "BOOKMARK"))
        log_debug("kube", "ignoring a watch event of unknown type", "path=%s type=%.*s", w->path,
                  (int)(type.len > 32 ? 32 : type.len), type.ptr);
    if (!object_rv(obj, w->rv))
        log_debug("kube", "watch event without a usable resourceVersion", "path=%s", w->path);
    return true;
}

/* A line over the cap: the stream cannot be followed any further; only a list can resync. */
static bool line_too_long(struct xfer *x)
{
    errbuf_set(&x->why, "watch event longer than %u bytes", KUBE_WATCH_MAX_EVENT_BYTES);
    x->w->rv[0] = '\0';
    return xfer_end(x, STEP_FAIL);
}

/* Keeps the start of a line that has not ended yet. */
static bool keep_partial(struct xfer *x, const char *data, size_t n)
{
    return buf_append(&x->line, data, n) == ERR_OK || line_too_long(x);
}

static void reset_line(struct xfer *x)
{
    if (x->line.alloc > KUBE_WATCH_KEEP_LINE_BYTES)
        buf_destroy(&x->line);
    else
        x->line.len = 0;
}

/* Cuts a chunk of the 200 watch stream into lines. Lines that arrive whole are parsed where
 * they lie; only a line split across chunks is copied. */
static bool watch_data(struct xfer *x, const char *data, size_t n)
{
    size_t before = x->lines;
    bool ok = true;

    while (ok && n > 0 && !is_stopping(x->w)) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;

        if (!nl) {
            ok = keep_partial(x, data, take);
            break;
        }
        if (x->line.len == 0) {
            ok = take <= KUBE_WATCH_MAX_EVENT_BYTES ? handle_line(x, (struct str){data, take})
                                                    : line_too_long(x);
        } else if ((ok = keep_partial(x, data, take))) {
            ok = handle_line(x, (struct str){x->line.ptr, x->line.len});
            reset_line(x);
        }
        data += take + 1;
        n -= take + 1;
    }
    if (x->lines != before && !is_stopping(x->w))
        emit_flush(x->w);
    return ok && !is_stopping(x->w);
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    x->last_byte_ms = clock_mono_ms();
    if (is_stopping(x->w))
        return 0;
    if (x->status == 0)
        curl_easy_getinfo(x->w->curl, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200) {
        /* An error body: its start is enough for the message. */
        size_t room =
            KUBE_WATCH_MAX_ERROR_BYTES -
            (x->body.len < KUBE_WATCH_MAX_ERROR_BYTES ? x->body.len : KUBE_WATCH_MAX_ERROR_BYTES);
        if (buf_append(&x->body, data, n < room ? n : room) != ERR_OK)
            return 0;
        return n;
    }
    if (x->is_watch) {
        bool ok = watch_data(x, data, n);

        /* Time spent in the handler is not the server's silence. */
        x->last_byte_ms = clock_mono_ms();
        return ok ? n : 0;
    }
    if (buf_append(&x->body, data, n) != ERR_OK) {
        x->too_large = true;
        return 0;
    }
    return n;
}

/* Reads the delay-seconds form of Retry-After (the API server never sends the date form). */
static long retry_after_s(const char *line, size_t n)
{
    static const char name[] = "retry-after:";
    size_t i = sizeof(name) - 1;
    long v = 0;

    if (n < i || strncasecmp(line, name, i) != 0)
        return 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    for (; i < n && line[i] >= '0' && line[i] <= '9' && v < KUBE_WATCH_MAX_SECONDS; i++)
        v = v * 10 + (line[i] - '0');
    return v;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    long ra = retry_after_s(data, n);

    x->last_byte_ms = clock_mono_ms();
    if (ra > 0)
        x->retry_after_s = ra;
    return n;
}

/* The CURLcode of the finished transfer. */
static CURLcode done_code(CURLM *m)
{
    CURLMsg *msg;
    int left;
    CURLcode rc = CURLE_RECV_ERROR;

    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            rc = msg->data.result;
    }
    return rc;
}

/* Drives the transfer until it ends, stalls, or the watch is stopped. */
static CURLcode drive(struct kube_watch *w, struct xfer *x)
{
    uint64_t stall_ms = (uint64_t)w->stall_timeout_s * 1000u;
    int running = 1;
    CURLcode rc;

    if (curl_multi_add_handle(w->multi, w->curl) != CURLM_OK)
        return CURLE_FAILED_INIT;
    x->start_ms = x->last_byte_ms = clock_mono_ms();
    for (;;) {
        if (curl_multi_perform(w->multi, &running) != CURLM_OK || !running)
            break;
        if (is_stopping(w))
            break;
        if (clock_mono_ms() - x->last_byte_ms >= stall_ms) {
            x->stalled = true;
            break;
        }
        if (curl_multi_poll(w->multi, NULL, 0, KUBE_WATCH_POLL_MS, NULL) != CURLM_OK)
            break;
    }
    /* Read the result before removing the handle, which discards its message. Removing an
     * unfinished transfer aborts it and closes its connection. */
    rc = running ? CURLE_ABORTED_BY_CALLBACK : done_code(w->multi);
    curl_multi_remove_handle(w->multi, w->curl);
    return rc;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *h)
{
    struct curl_slist *n = curl_slist_append(list, h);

    if (!n) {
        curl_slist_free_all(list);
        return NULL;
    }
    return n;
}

/* Sends one GET of url and takes in the answer; the outcome is left in x. */
static CURLcode transfer(struct kube_watch *w, const char *url, struct xfer *x)
{
    char auth[KUBE_AUTH_HEADER_MAX];
    struct curl_slist *headers;
    CURL *c = w->curl;
    CURLcode rc;

    kube_client_auth_header(w->kc, w->force_token, auth, sizeof(auth));
    w->force_token = false;
    headers = add_header(NULL, "Accept: application/json");
    if (headers && auth[0])
        headers = add_header(headers, auth);
    if (!headers)
        return CURLE_OUT_OF_MEMORY;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, KUBE_WATCH_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gpu-extender/" GX_VERSION);
    if (!x->is_watch)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    kube_client_set_tls(w->kc, c);
    rc = drive(w, x);
    curl_slist_free_all(headers);
    if (x->status == 0 && rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
    return rc;
}

/* Turns a finished transfer into a step. resumable: a broken 200 stream can be picked up
 * again where it stopped (a watch), so it is not a failure. */
static enum step classify(struct xfer *x, CURLcode rc, bool resumable, struct errbuf *why)
{
    char msg[160];

    if (is_stopping(x->w))
        return STEP_STOP;
    if (x->verdict != STEP_NEXT) {
        errbuf_set(why, "%s", x->why.msg);
        return x->verdict;
    }
    if (x->stalled) {
        errbuf_set(why, "no data from the API server for %ld s", x->w->stall_timeout_s);
        return STEP_FAIL;
    }
    if (x->status == 0) {
        errbuf_set(why, "%s", curl_easy_strerror(rc));
        return STEP_FAIL;
    }
    if (x->status == 401) {
        errbuf_set(why, "401 Unauthorized");
        return STEP_AUTH;
    }
    if (x->status == 410)
        return STEP_RELIST;
    if (x->status != 200) {
        x->w->retry_after_ms = x->retry_after_s * 1000;
        kube_status_message(x->body.ptr ? x->body.ptr : "", x->body.len, msg, sizeof(msg));
        errbuf_set(why, "HTTP %ld%s%s", x->status, msg[0] ? ": " : "", msg);
        return STEP_FAIL;
    }
    if (rc != CURLE_OK && !resumable) {
        errbuf_set(why, "%s", curl_easy_strerror(rc));
        return STEP_FAIL;
    }
    if (rc != CURLE_OK)
        log_debug("kube", "watch stream broke; resuming", "path=%s rv=%s err=\"%s\"", x->w->path,
                  x->w->rv, curl_easy_strerror(rc));
    return STEP_NEXT;
}

/* Appends "&name=value" with value URL-escaped. */
static bool add_param(struct kube_watch *w, struct buf *url, const char *name, const char *value)
{
    char *esc = curl_easy_escape(w->curl, value, 0);
    bool ok = esc && buf_printf(url, "&%s=%s", name, esc) == ERR_OK;

    curl_free(esc);
    return ok;
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
    if (key == META_RV && !decode_rv(raw, pg->rv))
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
        while (jscan_next_element(&js) == 1 && !is_stopping(w)) {
            bool is_obj = jscan_peek(&js) == JSON_OBJECT;

            if (!jscan_skip(&js, &obj))
                break;
            if (is_obj) {
                emit_object(w, KUBE_EVENT_ADDED, obj);
                lr->objects++;
            }
        }
    }
    free(lr->cont);
    lr->cont = pg->cont;
    memcpy(lr->rv, pg->rv, sizeof(lr->rv));
    lr->done = lr->cont == NULL;
    return is_stopping(w) ? STEP_STOP : STEP_NEXT;
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
    xfer_init(&x, w, false);
    if (!list_url(w, lr->cont, &url)) {
        errbuf_set(why, "list URL too long");
        s = STEP_FAIL;
        goto out;
    }
    rc = transfer(w, url.ptr, &x);
    if (x.too_large && !is_stopping(w)) {
        s = shrink_pages(w, why);
        goto out;
    }
    s = classify(&x, rc, false, why);
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
    xfer_destroy(&x);
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
    xfer_init(&x, w, true);
    if (buf_printf(
            &url, "%s%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%ld%s%s",
            kube_client_server(w->kc), w->path, w->rv, w->watch_timeout_s,
            w->selector ? "&fieldSelector=" : "", w->selector ? w->selector : "") != ERR_OK) {
        errbuf_set(why, "watch URL too long");
        s = STEP_FAIL;
        goto out;
    }
    log_debug("kube", "watching", "path=%s rv=%s", w->path, w->rv);
    rc = transfer(w, url.ptr, &x);
    s = classify(&x, rc, true, why);
    if (s == STEP_NEXT) {
        bool empty = x.lines == 0 && clock_mono_ms() - x.start_ms < KUBE_WATCH_MIN_QUIET_MS;

        w->empty_streams = empty ? w->empty_streams + 1 : 0;
        if (w->empty_streams > 1) {
            errbuf_set(why, "the watch keeps ending without any event");
            s = STEP_FAIL;
        }
    }
out:
    xfer_destroy(&x);
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

    while (!is_stopping(w)) {
        enum step s;

        errbuf_clear(&why);
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
