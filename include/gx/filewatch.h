/* filewatch.h -- what the watchers of files (the policy file, the TLS certificates) share:
 * a file's identity as stat() sees it through symlinks, so that a Kubernetes volume's atomic
 * "..data" swap counts as a change, and a sleeper that a stop wakes at once. libc and
 * pthreads only. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* A file's identity: device, inode, size and modification time. */
struct file_id {
    bool ok; /* stat succeeded */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* The identity of path now (through symlinks); ok is false when it cannot be read or path
 * is NULL. */
struct file_id file_id_get(const char *path);
/* True when a and b describe the same file in the same state. */
bool file_id_same(const struct file_id *a, const struct file_id *b);

/* Sleeps for a watcher thread; another thread stops it. Thread-safe. */
struct file_nap {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

void file_nap_init(struct file_nap *n);
void file_nap_destroy(struct file_nap *n);
/* Sleeps ms milliseconds (on the monotonic clock), or less when file_nap_stop() is called.
 * Returns false once stopping. */
bool file_nap(struct file_nap *n, unsigned ms);
/* Wakes the sleeper and makes every later file_nap() return false at once. */
void file_nap_stop(struct file_nap *n);
