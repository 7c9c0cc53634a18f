/* policy_store.c -- the active policy and its reloads (see policy_store.h). */
#include "gx/policy_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/filewatch.h"
#include "gx/log.h"
#include "gx/metrics.h"

struct policy_store {
    pthread_mutex_t lock;   /* guards current and info: held for pointer copies only */
    pthread_mutex_t reload; /* serializes reloads, held across the file read */
    struct policy *current;
    struct policy_store_info info;
    char path[1024];
    /* The watcher. */
    pthread_t thread;
    bool watching;
    struct file_nap nap;
    unsigned interval_ms;
    struct file_id seen;
};

static int64_t unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct policy_store *store_new(struct policy *initial, const char *path,
                                      const struct file_id *seen)
{
    struct policy_store *s = xcalloc(1, sizeof(*s));

    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->reload, NULL);
    file_nap_init(&s->nap);
    s->current = initial;
    s->info.loaded_unix_ms = unix_ms();
    snprintf(s->path, sizeof(s->path), "%s", path ? path : "");
    s->seen = *seen;
    return s;
}

struct policy_store *policy_store_new(struct policy *initial, const char *path)
{
    struct file_id seen = path && path[0] ? file_id_get(path) : (struct file_id){0};

    return store_new(initial, path, &seen);
}

enum err policy_store_open(const char *path, struct policy_store **out, struct policy_diag *diag)
{
    /* The file's identity is taken before it is read: a change that lands in between is then
     * seen by the watcher, never lost. */
    struct file_id seen = file_id_get(path);
    struct policy *p = NULL;
    enum err e = policy_load(path, &p, diag);

    if (e == ERR_OK)
        *out = store_new(p, path, &seen);
    return e;
}

void policy_store_free(struct policy_store *s)
{
    if (!s)
        return;
    if (s->watching) {
        file_nap_stop(&s->nap);
        pthread_join(s->thread, NULL);
    }
    policy_unref(s->current);
    file_nap_destroy(&s->nap);
    pthread_mutex_destroy(&s->reload);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct policy *policy_store_get(struct policy_store *s)
{
    struct policy *p;

    pthread_mutex_lock(&s->lock);
    p = policy_ref(s->current);
    pthread_mutex_unlock(&s->lock);
    return p;
}

void policy_store_info_get(struct policy_store *s, struct policy_store_info *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->info;
    pthread_mutex_unlock(&s->lock);
}

static void refuse(struct policy_store *s, const char *why, enum err e,
                   const struct policy_diag *diag)
{
    struct log_q q;

    for (size_t i = 0; i < diag->count; i++)
        log_error("policy", "reload refused; the old policy stays active", "why=\"%s\" err=\"%s\"",
                  why, log_quote(&q, diag->msgs[i]));
    if (diag->count == 0)
        log_error("policy", "reload refused; the old policy stays active", "why=\"%s\" err=%s", why,
                  err_str(e));
    metrics_counter_add(METRICS_POLICY_RELOAD_FAILURES, 1);
    pthread_mutex_lock(&s->lock);
    s->info.failures++;
    snprintf(s->info.last_error, sizeof(s->info.last_error), "%s",
             diag->count ? diag->msgs[0] : err_str(e));
    pthread_mutex_unlock(&s->lock);
}

enum err policy_store_reload(struct policy_store *s, const char *why, bool *swapped)
{
    struct policy_diag diag;
    struct policy *next = NULL, *old;
    bool same;
    enum err e;

    if (swapped)
        *swapped = false;
    if (!s->path[0]) {
        log_info("policy", "reload skipped: running on the embedded default", "why=\"%s\"", why);
        return ERR_OK;
    }
    pthread_mutex_lock(&s->reload);
    e = policy_load(s->path, &next, &diag);
    if (e != ERR_OK) {
        refuse(s, why, e, &diag);
        pthread_mutex_unlock(&s->reload);
        return e;
    }
    pthread_mutex_lock(&s->lock);
    same = strcmp(s->current->hash, next->hash) == 0;
    old = same ? next : s->current;
    if (!same) {
        s->current = next;
        s->info.loaded_unix_ms = unix_ms();
        s->info.reloads++;
        s->info.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    if (!same) {
        metrics_counter_add(METRICS_POLICY_RELOADS, 1);
        log_info("policy", "reloaded", "why=\"%s\" path=%s hash=%s rules=%zu classes=%zu", why,
                 next->source, next->hash, next->rule_count, next->class_count);
    } else {
        /* The file is valid again: an earlier refusal no longer describes it. */
        pthread_mutex_lock(&s->lock);
        s->info.last_error[0] = '\0';
        pthread_mutex_unlock(&s->lock);
        log_info("policy", "reload: the file is unchanged", "why=\"%s\" hash=%s", why, next->hash);
    }
    policy_unref(old);
    pthread_mutex_unlock(&s->reload);
    if (swapped)
        *swapped = !same;
    return ERR_OK;
}

static void *watch_main(void *arg)
{
    struct policy_store *s = arg;

    while (file_nap(&s->nap, s->interval_ms)) {
        struct file_id now = file_id_get(s->path);
        bool swapped;

        if (file_id_same(&now, &s->seen))
            continue;
        s->seen = now;
        if (!now.ok) {
            /* Mid-swap, or deleted: keep the active policy and look again next time. */
            log_warn("policy", "policy file is gone; keeping the active policy", "path=%s",
                     s->path);
            continue;
        }
        /* A refusal is logged and counted inside; the active policy stays. */
        if (policy_store_reload(s, "file changed", &swapped) != ERR_OK)
            continue;
    }
    return NULL;
}

void policy_store_watch(struct policy_store *s, unsigned interval_ms)
{
    if (!s->path[0] || interval_ms == 0 || s->watching)
        return;
    s->interval_ms = interval_ms;
    s->watching = pthread_create(&s->thread, NULL, watch_main, s) == 0;
    if (!s->watching)
        log_error("policy", "cannot start the policy file watcher", "path=%s", s->path);
}
