/* policy_store.h -- the active policy, swapped atomically by reloads.
 *
 * Readers (request threads) take a reference with policy_store_get() and drop it when their
 * request is done, so a reload never frees a policy a request is still deciding with, and no
 * request ever waits for a reload: the lock is held for a pointer copy and a refcount only.
 *
 * A reload reads and validates the whole new file first. An invalid file is refused: the old
 * policy stays active, each error is logged, and gpu_extender_policy_reload_failures_total
 * counts it. A file whose bytes have not changed is not swapped. Reloads come from SIGHUP
 * (main calls policy_store_reload()) and from a watcher thread that notices the file change
 * by polling stat(2): the path is followed through symlinks, so the atomic "..data" symlink
 * swap of a Kubernetes ConfigMap volume is seen as a change like any edit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "gx/compiler.h"
#include "gx/err.h"
#include "gx/policy.h"

struct policy_store;

/* What /debug/policy shows besides the policy itself. */
struct policy_store_info {
    int64_t loaded_unix_ms; /* when the active policy was loaded */
    uint64_t reloads;       /* successful swaps after start */
    uint64_t failures;      /* refused reloads */
    char last_error[256];   /* the first error of the last refused reload; "" when none */
};

/* Takes over the reference to initial. path is the file to reload from; "" (the embedded
 * default) means reloads do nothing. */
struct policy_store *policy_store_new(struct policy *initial, const char *path);
/* Loads path (as policy_load() does, errors in diag) and returns a store for it in *out. Use
 * this rather than policy_load() + policy_store_new(): it notes the file's identity before
 * reading it, so a change made while it loads is not missed by the watcher. */
enum err policy_store_open(const char *path, struct policy_store **out,
                           struct policy_diag *diag) GX_MUST_CHECK;
/* Stops the watcher (if any) and drops the store's reference. NULL is a no-op. */
void policy_store_free(struct policy_store *s);

/* The active policy with a reference held; pair with policy_unref(). Never NULL. */
struct policy *policy_store_get(struct policy_store *s);
void policy_store_info_get(struct policy_store *s, struct policy_store_info *out);

/* Loads the file again (why is logged: "SIGHUP", "file changed"). Returns ERR_OK when the new
 * policy is active or the file is unchanged (*swapped, may be NULL, says which), else the
 * load's error with the old policy still active. Thread-safe; reloads are serialized. */
enum err policy_store_reload(struct policy_store *s, const char *why, bool *swapped) GX_MUST_CHECK;

/* Starts a thread that stats the file every interval_ms and reloads when its identity (device,
 * inode, size, modification time) changes. No-op for the embedded default or interval 0. */
void policy_store_watch(struct policy_store *s, unsigned interval_ms);
