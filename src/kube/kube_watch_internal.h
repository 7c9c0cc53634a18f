/* kube_watch_internal.h -- private to src/kube: what the two halves of the watch share.
 * kube_watch.c holds the list+watch state machine, its backoff and its thread; kube_watch_xfer.c
 * holds one HTTP transfer on the watch's CURL handle: sending the GET, cutting a watch stream
 * into lines and parsing its events, and turning the outcome into a step. Nothing outside
 * src/kube includes this. */
#pragma once

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gx/buf.h"
#include "gx/err.h"
#include "gx/kube.h"
#include "gx/str.h"

#define KUBE_WATCH_MAX_SECONDS 86400L         /* upper bound for the *_s settings */
#define KUBE_WATCH_MAX_PAGE_BYTES (64u << 20) /* one list page, decoded */
#define KUBE_WATCH_RV_MAX 64                  /* a resourceVersion, NUL included */

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
    atomic_bool relist; /* kube_watch_relist(): end the watch and list again */

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

static inline bool kube_watch_is_stopping(struct kube_watch *w)
{
    return atomic_load(&w->stop);
}

/* ---- kube_watch.c: the handler calls ---- */

/* Hands one object of a list page or a watch event to the handler. */
void kube_watch_emit_object(struct kube_watch *w, enum kube_event_type type, struct str obj);

/* Tells the handler that a batch of events has been delivered; data flows again, so the
 * outage (if any) is over and the backoff starts afresh. */
void kube_watch_emit_flush(struct kube_watch *w);

/* ---- kube_watch_xfer.c: one transfer ---- */

/* Decodes a JSON string (raw, escapes intact) into a resourceVersion in out
 * (KUBE_WATCH_RV_MAX bytes). Only characters that need no URL escaping are accepted. */
bool kube_watch_decode_rv(struct str raw, char *out);

/* Prepares x for one transfer of w: a watch stream (is_watch) or a list page. Pair with
 * kube_watch_xfer_destroy(). */
void kube_watch_xfer_init(struct xfer *x, struct kube_watch *w, bool is_watch);
void kube_watch_xfer_destroy(struct xfer *x);

/* Sends one GET of url on w's handle and takes in the answer; the outcome is left in x.
 * Watch events are handed to the handler as they arrive. */
CURLcode kube_watch_transfer(struct kube_watch *w, const char *url, struct xfer *x);

/* Turns a finished transfer into a step; why says what went wrong. resumable: a broken 200
 * stream can be picked up again where it stopped (a watch), so it is not a failure. */
enum step kube_watch_classify(struct xfer *x, CURLcode rc, bool resumable, struct errbuf *why);
