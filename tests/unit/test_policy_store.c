/* test_policy_store.c -- reloads: a valid change is swapped in, an invalid one is refused and
 * counted while the old policy keeps serving, an unchanged file is not swapped, readers keep
 * their policy alive across a swap, and the watcher follows a ConfigMap-style symlink swap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gx/metrics.h"
#include "gx/policy_store.h"

#include "check.h"

#define HEAD "apiVersion: gpu-extender.io/v1alpha1\nkind: GPUPolicy\n"

static void write_file(const char *path, const char *text)
{
    char tmp[1024];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(rename(tmp, path) == 0);
}

static enum policy_strategy active_strategy(struct policy_store *s)
{
    struct policy *p = policy_store_get(s);
    enum policy_strategy v = p->strategy;

    policy_unref(p);
    return v;
}

static struct policy *load(const char *path)
{
    struct policy *p = NULL;
    struct policy_diag diag;

    CHECK_EQ(policy_load(path, &p, &diag), ERR_OK);
    return p;
}

static void test_reload(const char *dir)
{
    char path[1024];
    struct policy_store *s;
    struct policy_store_info info;
    struct policy *held;
    bool swapped = true;
    uint64_t fails = metrics_counter_get(METRICS_POLICY_RELOAD_FAILURES);

    snprintf(path, sizeof(path), "%s/policy.yaml", dir);
    write_file(path, HEAD "scoring:\n  strategy: binpack\n");
    s = policy_store_new(load(path), path);
    CHECK_EQ(active_strategy(s), POLICY_BINPACK);
    /* Unchanged: no swap. */
    CHECK_EQ(policy_store_reload(s, "test", &swapped), ERR_OK);
    CHECK(!swapped);
    /* A reader holds the old policy across the swap; it stays valid until released. */
    held = policy_store_get(s);
    write_file(path, HEAD "scoring:\n  strategy: spread\n");
    CHECK_EQ(policy_store_reload(s, "test", &swapped), ERR_OK);
    CHECK(swapped);
    CHECK_EQ(active_strategy(s), POLICY_SPREAD);
    CHECK_EQ(held->strategy, POLICY_BINPACK);
    policy_unref(held);
    /* Invalid: refused, counted, and the old policy keeps serving. */
    write_file(path, HEAD "scoring:\n  strategy: sideways\n");
    CHECK(policy_store_reload(s, "test", &swapped) != ERR_OK);
    CHECK(!swapped);
    CHECK_EQ(active_strategy(s), POLICY_SPREAD);
    CHECK_EQ(metrics_counter_get(METRICS_POLICY_RELOAD_FAILURES), fails + 1);
    policy_store_info_get(s, &info);
    CHECK_EQ(info.reloads, 1);
    CHECK_EQ(info.failures, 1);
    CHECK(strstr(info.last_error, "scoring.strategy") != NULL);
    /* A missing file is refused the same way. */
    CHECK(unlink(path) == 0);
    CHECK(policy_store_reload(s, "test", NULL) != ERR_OK);
    CHECK_EQ(active_strategy(s), POLICY_SPREAD);
    policy_store_free(s);
}

/* Waits up to 5 s for the watcher to make want the active strategy. */
static bool wait_strategy(struct policy_store *s, enum policy_strategy want)
{
    for (int i = 0; i < 500; i++) {
        if (active_strategy(s) == want)
            return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

/* A ConfigMap volume: the file is a symlink through "..data" to a timestamped directory, and
 * an update swaps "..data" atomically (rename of a new symlink over it). */
static void test_configmap_swap(const char *dir)
{
    char v1[256], v2[256], data[256], tmp[256], link[256], file[512];
    struct policy_store *s;

    snprintf(v1, sizeof(v1), "%s/..2026_11_23_v1", dir);
    snprintf(v2, sizeof(v2), "%s/..2026_11_23_v2", dir);
    snprintf(data, sizeof(data), "%s/..data", dir);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(link, sizeof(link), "%s/policy.yaml", dir);
    CHECK(mkdir(v1, 0755) == 0);
    CHECK(mkdir(v2, 0755) == 0);
    snprintf(file, sizeof(file), "%s/policy.yaml", v1);
    write_file(file, HEAD "scoring:\n  strategy: binpack\n");
    snprintf(file, sizeof(file), "%s/policy.yaml", v2);
    write_file(file, HEAD "scoring:\n  strategy: spread\n");
    CHECK(symlink("..2026_11_23_v1", data) == 0);
    CHECK(symlink("..data/policy.yaml", link) == 0);
    s = policy_store_new(load(link), link);
    policy_store_watch(s, 20);
    CHECK_EQ(active_strategy(s), POLICY_BINPACK);
    CHECK(symlink("..2026_11_23_v2", tmp) == 0);
    CHECK(rename(tmp, data) == 0);
    CHECK(wait_strategy(s, POLICY_SPREAD));
    policy_store_free(s);
}

int main(void)
{
    char dir[] = "/tmp/gx-policy-store-XXXXXX";
    char cmd[256];

    CHECK(mkdtemp(dir) != NULL);
    test_reload(dir);
    test_configmap_swap(dir);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    printf("test_policy_store: ok\n");
    return 0;
}
