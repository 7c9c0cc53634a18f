/* filewatch.c -- file identities and a stoppable sleep for watcher threads (see
 * filewatch.h). */
#include "gx/filewatch.h"

#include <sys/stat.h>

struct file_id file_id_get(const char *path)
{
    struct file_id id = {0};
    struct stat st;

    if (!path || stat(path, &st) != 0)
        return id;
    id.ok = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.size = st.st_size;
    id.mtime = st.st_mtim;
    return id;
}

bool file_id_same(const struct file_id *a, const struct file_id *b)
{
    return a->ok == b->ok && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

void file_nap_init(struct file_nap *n)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    n->stopping = false;
}

void file_nap_destroy(struct file_nap *n)
{
    pthread_cond_destroy(&n->wake);
    pthread_mutex_destroy(&n->lock);
}

bool file_nap(struct file_nap *n, unsigned ms)
{
    struct timespec until;
    bool go_on;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&n->lock);
    while (!n->stopping && pthread_cond_timedwait(&n->wake, &n->lock, &until) == 0)
        ;
    go_on = !n->stopping;
    pthread_mutex_unlock(&n->lock);
    return go_on;
}

void file_nap_stop(struct file_nap *n)
{
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
}
