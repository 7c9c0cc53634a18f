/* test_alloc.c -- the allocation wrappers that never return NULL (base/alloc.c). Running out
 * aborts by design and is not tested here: under ASan the sanitizer would abort first. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gx/alloc.h"

#include "check.h"

static void test_zero_sizes(void)
{
    void *p = xmalloc(0);
    void *q = xcalloc(0, 8);
    void *r = xcalloc(8, 0);
    void *s = xrealloc(NULL, 0);

    /* Zero bytes still give a non-NULL pointer that free() takes. */
    CHECK(p != NULL);
    CHECK(q != NULL);
    CHECK(r != NULL);
    CHECK(s != NULL);
    free(p);
    free(q);
    free(r);
    free(s);
}

static void test_calloc_realloc(void)
{
    unsigned char *p = xcalloc(100, 3);

    for (size_t i = 0; i < 300; i++)
        CHECK_EQ(p[i], 0);
    memset(p, 7, 300);
    p = xrealloc(p, 100000);
    for (size_t i = 0; i < 300; i++)
        CHECK_EQ(p[i], 7);
    p[99999] = 1;
    p = xrealloc(p, 10);
    CHECK_EQ(p[9], 7);
    free(p);
}

static void test_strdup(void)
{
    char *s = xstrdup("gpu-node-1");
    char *t = xstrndup("abcdef", 3);
    char *u = xstrndup("a\0b", 3);
    char *v = xstrndup("", 0);

    CHECK_STR_EQ(s, "gpu-node-1");
    CHECK_STR_EQ(t, "abc");
    CHECK_EQ(memcmp(u, "a\0b\0", 4), 0);
    CHECK_STR_EQ(v, "");
    free(s);
    free(t);
    free(u);
    free(v);
}

/* The first alloc_trim() of a process, on eight threads at once, as the watch threads and the
 * HTTP watchdog may call it at start. Under ASan glibc's malloc was never used, and its first
 * malloc_trim() initialized the arenas while another thread already walked them: a crash in
 * mtrim about one time in eight (tests/integration's test_bind caught it in CI). Each try is a
 * child process, so that each is a first call. */
#define TRIM_THREADS 8
#define TRIM_TRIES 40

static pthread_barrier_t trim_start;

static void *trim_thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&trim_start);
    alloc_trim();
    return NULL;
}

static void test_trim_first_calls_at_once(void)
{
    for (int t = 0; t < TRIM_TRIES; t++) {
        int status = 0;
        pid_t pid = fork();

        CHECK(pid >= 0);
        if (pid == 0) {
            pthread_t th[TRIM_THREADS];
            pthread_barrier_init(&trim_start, NULL, TRIM_THREADS);
            for (int i = 0; i < TRIM_THREADS; i++)
                if (pthread_create(&th[i], NULL, trim_thread, NULL) != 0)
                    _exit(2);
            for (int i = 0; i < TRIM_THREADS; i++)
                pthread_join(th[i], NULL);
            _exit(0);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    alloc_trim(); /* and in this process, once everything is initialized */
}

int main(void)
{
    test_trim_first_calls_at_once();
    test_zero_sizes();
    test_calloc_realloc();
    test_strdup();
    printf("test_alloc: ok\n");
    return 0;
}
