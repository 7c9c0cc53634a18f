/* kube_watch_xfer.c -- one HTTP transfer of a watch (see kube_watch.c): a list page, taken in
 * whole, or a watch stream, cut into lines as bytes arrive, each line parsed as an event and
 * handed to the handler. The transfer runs on the watch's own CURL handle through its private
 * multi handle, so that kube_watch_stop() wakes a blocked read at once and a stream on which
 * nothing arrives for stall_timeout_s is noticed. */
#include <curl/curl.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/kube.h"
#include "gx/log.h"
#include "gx/str.h"

#include "kube_internal.h"
#include "kube_watch_internal.h"

#define KUBE_WATCH_MAX_EVENT_BYTES (16u << 20) /* one line of the watch stream */
#define KUBE_WATCH_MAX_ERROR_BYTES 65536u      /* what we keep of a non-200 body */
#define KUBE_WATCH_CONNECT_TIMEOUT_MS 10000L
#define KUBE_WATCH_POLL_MS 1000
/* After a long line the line buffer is freed rather than kept for the rest of the stream. */
#define KUBE_WATCH_KEEP_LINE_BYTES (1u << 20)

/* ---- resourceVersions and Status objects ---- */

/* Decodes a JSON string (raw, escapes intact) into a resourceVersion. Only characters that
 * need no URL escaping are accepted; real ones are decimal. */
bool kube_watch_decode_rv(struct str raw, char *out)
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
           jscan_string(&js, &raw) && kube_watch_decode_rv(raw, out);
}

/* ---- one transfer ---- */

void kube_watch_xfer_init(struct xfer *x, struct kube_watch *w, bool is_watch)
{
    memset(x, 0, sizeof(*x));
    x->w = w;
    x->is_watch = is_watch;
    x->verdict = STEP_NEXT;
    buf_init(&x->body, is_watch ? KUBE_WATCH_MAX_ERROR_BYTES : KUBE_WATCH_MAX_PAGE_BYTES);
    buf_init(&x->line, KUBE_WATCH_MAX_EVENT_BYTES);
}

void kube_watch_xfer_destroy(struct xfer *x)
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
        kube_watch_emit_object(w, KUBE_EVENT_ADDED, obj);
    else if (jstr_eq(type, "MODIFIED"))
        kube_watch_emit_object(w, KUBE_EVENT_MODIFIED, obj);
    else if (jstr_eq(type, "DELETED"))
        kube_watch_emit_object(w, KUBE_EVENT_DELETED, obj);
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

    while (ok && n > 0 && !kube_watch_is_stopping(x->w)) {
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
    if (x->lines != before && !kube_watch_is_stopping(x->w))
        kube_watch_emit_flush(x->w);
    return ok && !kube_watch_is_stopping(x->w);
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    x->last_byte_ms = clock_mono_ms();
    if (kube_watch_is_stopping(x->w))
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
        if (kube_watch_is_stopping(w) || (x->is_watch && atomic_load(&w->relist)))
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
CURLcode kube_watch_transfer(struct kube_watch *w, const char *url, struct xfer *x)
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
enum step kube_watch_classify(struct xfer *x, CURLcode rc, bool resumable, struct errbuf *why)
{
    char msg[160];

    if (kube_watch_is_stopping(x->w))
        return STEP_STOP;
    if (x->is_watch && atomic_load(&x->w->relist))
        return STEP_NEXT; /* ended on purpose: the thread lists again */
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
