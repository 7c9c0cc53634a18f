/* test_podres.c -- podres_list() against tests/fakes/fake_kubelet.py, a real gRPC server on a
 * unix socket whose reply protobuf is encoded by hand in Python: several pods, containers and
 * resources (time-sliced ids, other vendors' devices, long ids), an empty node, pods starting
 * and stopping between calls, a missing socket, a stalled call against the deadline, a gRPC
 * error, a body that is not a message, a reply over 16 MiB, and podres_list_free(). The framing
 * cases a gRPC server will not produce are in test_podres_parse.c. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/podres.h"

#include "check.h"
#include "child_proc.h"

#define START_MS 20000     /* python3 + grpcio start-up on a loaded machine */
#define CALL_MS 10000      /* every call that should succeed */
#define STALL_MS 400       /* the deadline of the stalled call */
#define STALL_SLACK_MS 600 /* how late past it the call may return */

static pid_t fake_pid = -1;
static char tmp_dir[] = "/tmp/test_podres.XXXXXX";
static char sock_path[128], scenario_path[128], ready_path[128];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void fake_stop(void)
{
    child_stop(&fake_pid);
}

/* Replaces the scenario in one step: the fake reads it on every call. */
static void scenario(const char *json)
{
    char tmp[160];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", scenario_path);
    f = fopen(tmp, "w");
    CHECK(f);
    CHECK(fputs(json, f) >= 0);
    CHECK(fclose(f) == 0);
    CHECK(rename(tmp, scenario_path) == 0);
}

static void fake_exec(void)
{
    const char *src = getenv("GX_SOURCE_DIR"), *py = getenv("GX_GRPC_PYTHON3");
    char script[1024];

    /* If the test dies (a failed CHECK aborts), the fake goes with it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
    snprintf(script, sizeof(script), "%s/tests/fakes/fake_kubelet.py", src);
    if (!py || !*py)
        py = "python3";
    execlp(py, py, script, "--socket", sock_path, "--scenario", scenario_path, "--ready",
           ready_path, (char *)NULL);
    fprintf(stderr, "test_podres: cannot run %s: %s\n", py, strerror(errno));
    _exit(127);
}

static void fake_start(void)
{
    uint64_t deadline = clock_mono_ms() + START_MS;
    struct stat st;

    scenario("{\"mode\":\"ok\",\"pods\":[]}");
    fake_pid = fork();
    CHECK(fake_pid >= 0);
    if (fake_pid == 0)
        fake_exec();
    while (stat(ready_path, &st) != 0) {
        int status;

        if (waitpid(fake_pid, &status, WNOHANG) == fake_pid) {
            fprintf(stderr,
                    "test_podres: the fake kubelet exited (status %d) before listening: it needs "
                    "python3 with grpcio (python3-grpcio, scripts/deps.sh; set GX_GRPC_PYTHON3 "
                    "or -DGX_GRPC_PYTHON3 to pick the interpreter)\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            fake_pid = -1;
            abort();
        }
        CHECK(clock_mono_ms() < deadline);
        sleep_ms(20);
    }
}

/* The rows, one line each: "ns pod container resource id\n". */
static char *render(const struct podres_list *l)
{
    struct buf b;
    char *s;

    buf_init(&b, 1 << 20);
    CHECK(buf_append(&b, "", 0) == ERR_OK);
    for (size_t i = 0; i < l->n; i++) {
        const struct podres_device *d = &l->v[i];

        CHECK(buf_printf(&b, "%s %s %s %s %s\n", d->ns, d->pod, d->container, d->resource, d->id) ==
              ERR_OK);
    }
    s = buf_take(&b, NULL);
    CHECK(s);
    return s;
}

static void list_ok(struct podres_list *out)
{
    struct errbuf eb = ERRBUF_INIT;
    enum err e = podres_list(sock_path, CALL_MS, out, &eb);

    if (e != ERR_OK) {
        fprintf(stderr, "podres_list: %s: %s\n", err_str(e), eb.msg);
        abort();
    }
    CHECK(!errbuf_is_set(&eb));
}

/* Calls List and compares every row with want. */
static void expect_rows(const char *want)
{
    struct podres_list l = {0};
    char *got;

    list_ok(&l);
    got = render(&l);
    CHECK_STR_EQ(got, want);
    free(got);
    podres_list_free(&l);
}

/* A call that must fail: the error, the start of its message, and *out left as it was. */
static void expect_err(const char *path, long timeout_ms, enum err want, const char *msg_prefix)
{
    struct podres_device sentinel_row = {"ns", "pod", "c", "r", "id"};
    struct podres_list l = {&sentinel_row, 7, &sentinel_row};
    struct errbuf eb = ERRBUF_INIT;
    enum err e = podres_list(path, timeout_ms, &l, &eb);

    if (e != want || strncmp(eb.msg, msg_prefix, strlen(msg_prefix)) != 0) {
        fprintf(stderr, "podres_list: wanted %s \"%s...\", got %s \"%s\"\n", err_str(want),
                msg_prefix, err_str(e), eb.msg);
        abort();
    }
    CHECK(l.v == &sentinel_row && l.n == 7 && l.priv == &sentinel_row);
}

static void test_pods(void)
{
    struct buf want;
    char long_id[201], *w;

    /* A long id makes each enclosing message's length a multi-byte varint. */
    memset(long_id, 'f', sizeof(long_id) - 1);
    memcpy(long_id, "GPU-", 4);
    long_id[sizeof(long_id) - 1] = '\0';
    buf_init(&want, 1 << 16);
    CHECK(buf_printf(
              &want,
              "{\"mode\":\"ok\",\"pods\":["
              "{\"namespace\":\"default\",\"name\":\"train-0\",\"containers\":["
              " {\"name\":\"main\",\"devices\":["
              "  {\"resource\":\"nvidia.com/gpu\",\"ids\":[\"GPU-aaa\",\"GPU-bbb\"]},"
              "  {\"resource\":\"example.com/foo\",\"ids\":[\"foo-1\"]}]},"
              " {\"name\":\"sidecar\",\"devices\":[]}]},"
              "{\"namespace\":\"kube-system\",\"name\":\"dcgm-exporter\",\"containers\":["
              " {\"name\":\"exporter\"}]},"
              "{\"namespace\":\"batch\",\"name\":\"no-containers\",\"containers\":[]},"
              "{\"namespace\":\"ml\",\"name\":\"infer-1\",\"containers\":["
              " {\"name\":\"warmup\",\"devices\":[{\"resource\":\"nvidia.com/gpu\",\"ids\":[]}]},"
              " {\"name\":\"server\",\"cpu_ids\":[2,3,130],\"devices\":["
              "  {\"resource\":\"nvidia.com/gpu\",\"ids\":[\"GPU-ccc::0\",\"GPU-ccc::1\"]}]},"
              " {\"name\":\"tokenizer\",\"devices\":["
              "  {\"resource\":\"nvidia.com/gpu\",\"ids\":[\"GPU-ccc::2\"]},"
              "  {\"resource\":\"example.com/foo\",\"ids\":[\"foo-2\",\"%s\"]}]}]}]}",
              long_id) == ERR_OK);
    scenario(want.ptr);
    buf_destroy(&want);
    buf_init(&want, 1 << 16);
    CHECK(buf_printf(&want,
                     "default train-0 main nvidia.com/gpu GPU-aaa\n"
                     "default train-0 main nvidia.com/gpu GPU-bbb\n"
                     "default train-0 main example.com/foo foo-1\n"
                     "ml infer-1 server nvidia.com/gpu GPU-ccc::0\n"
                     "ml infer-1 server nvidia.com/gpu GPU-ccc::1\n"
                     "ml infer-1 tokenizer nvidia.com/gpu GPU-ccc::2\n"
                     "ml infer-1 tokenizer example.com/foo foo-2\n"
                     "ml infer-1 tokenizer example.com/foo %s\n",
                     long_id) == ERR_OK);
    w = buf_take(&want, NULL);
    expect_rows(w);
    free(w);
}

/* Three hundred time-sliced replicas of one GPU in one container. */
static void test_many_replicas(void)
{
    struct buf json, want;

    buf_init(&json, 1 << 20);
    buf_init(&want, 1 << 20);
    CHECK(buf_append_str(&json, "{\"pods\":[{\"namespace\":\"sweep\",\"name\":\"replicas\","
                                "\"containers\":[{\"name\":\"c\",\"devices\":[{\"resource\":"
                                "\"nvidia.com/gpu\",\"ids\":[") == ERR_OK);
    for (int i = 0; i < 300; i++) {
        CHECK(buf_printf(&json, "%s\"GPU-ddd::%d\"", i ? "," : "", i) == ERR_OK);
        CHECK(buf_printf(&want, "sweep replicas c nvidia.com/gpu GPU-ddd::%d\n", i) == ERR_OK);
    }
    CHECK(buf_append_str(&json, "]}]}]}]}") == ERR_OK);
    scenario(json.ptr);
    expect_rows(want.ptr);
    buf_destroy(&json);
    buf_destroy(&want);
}

static void test_empty_node(void)
{
    struct podres_list l = {0};

    scenario("{\"mode\":\"ok\",\"pods\":[]}");
    list_ok(&l);
    CHECK(l.n == 0 && l.v == NULL && l.priv == NULL);
    /* Pods whose containers hold no devices are an empty node too. */
    scenario("{\"pods\":[{\"namespace\":\"a\",\"name\":\"b\",\"containers\":[{\"name\":\"c\"}]}]}");
    list_ok(&l);
    CHECK(l.n == 0 && l.v == NULL && l.priv == NULL);
}

#define POD_A                                                                                      \
    "{\"namespace\":\"default\",\"name\":\"train-0\",\"containers\":[{\"name\":\"main\","          \
    "\"devices\":[{\"resource\":\"nvidia.com/gpu\",\"ids\":[\"GPU-aaa\"]}]}]}"
#define POD_B                                                                                      \
    "{\"namespace\":\"default\",\"name\":\"train-1\",\"containers\":[{\"name\":\"main\","          \
    "\"devices\":[{\"resource\":\"nvidia.com/gpu\",\"ids\":[\"GPU-bbb\",\"GPU-ccc\"]}]}]}"

/* The node changes between calls; each call sees the node as it is. */
static void test_pods_come_and_go(void)
{
    scenario("{\"pods\":[" POD_A "]}");
    expect_rows("default train-0 main nvidia.com/gpu GPU-aaa\n");
    scenario("{\"pods\":[" POD_A "," POD_B "]}");
    expect_rows("default train-0 main nvidia.com/gpu GPU-aaa\n"
                "default train-1 main nvidia.com/gpu GPU-bbb\n"
                "default train-1 main nvidia.com/gpu GPU-ccc\n");
    scenario("{\"pods\":[" POD_B "]}");
    expect_rows("default train-1 main nvidia.com/gpu GPU-bbb\n"
                "default train-1 main nvidia.com/gpu GPU-ccc\n");
    scenario("{\"pods\":[]}");
    expect_rows("");
}

static void test_no_kubelet(void)
{
    char path[160], want[200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/missing.sock", tmp_dir);
    snprintf(want, sizeof(want), "connect %s: No such file or directory", path);
    expect_err(path, CALL_MS, ERR_IO, want);
    /* Something at the path, but nobody listening. */
    snprintf(path, sizeof(path), "%s/not-a-socket", tmp_dir);
    f = fopen(path, "w");
    CHECK(f && fclose(f) == 0);
    expect_err(path, CALL_MS, ERR_IO, "connect ");
    unlink(path);
}

static void test_bad_arguments(void)
{
    char path[200];

    expect_err(sock_path, 0, ERR_INVALID, "timeout_ms must be positive");
    expect_err(sock_path, -5, ERR_INVALID, "timeout_ms must be positive");
    memset(path, 'x', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    expect_err(path, CALL_MS, ERR_INVALID, "socket path too long");
}

static void test_stall(void)
{
    uint64_t t0, took;

    scenario("{\"mode\":\"stall\",\"pods\":[" POD_A "]}");
    t0 = clock_mono_ms();
    expect_err(sock_path, STALL_MS, ERR_TIMEOUT, "the kubelet did not answer in time");
    took = clock_mono_ms() - t0;
    if (took < STALL_MS || took > STALL_MS + STALL_SLACK_MS) {
        fprintf(stderr, "a %d ms deadline returned after %llu ms\n", STALL_MS,
                (unsigned long long)took);
        abort();
    }
    /* The kubelet recovers; so does the next call. */
    scenario("{\"pods\":[" POD_A "]}");
    expect_rows("default train-0 main nvidia.com/gpu GPU-aaa\n");
}

/* A unix socket listening at path; nobody accepts unless a child does. */
static int listen_at(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    CHECK(fd >= 0 && strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(fd, 16) == 0);
    return fd;
}

/* Connected, then silence: the connection is queued but never accepted. */
static void test_silent_listener(void)
{
    char path[160];
    uint64_t t0 = clock_mono_ms(), took;
    int fd;

    snprintf(path, sizeof(path), "%s/silent.sock", tmp_dir);
    fd = listen_at(path);
    expect_err(path, STALL_MS, ERR_TIMEOUT, "the kubelet did not answer in time");
    took = clock_mono_ms() - t0;
    CHECK(took >= STALL_MS && took <= STALL_MS + STALL_SLACK_MS);
    close(fd);
    unlink(path);
}

/* A peer that accepts and closes at once: ERR_IO, whichever of our writes and its close comes
 * first, and never SIGPIPE (the client's parting GOAWAY goes to a closed socket). */
static void test_peer_closes(void)
{
    char path[160];
    pid_t pid;
    int fd, status;

    snprintf(path, sizeof(path), "%s/closer.sock", tmp_dir);
    fd = listen_at(path);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            int c = accept(fd, NULL, NULL);

            if (c >= 0)
                close(c);
        }
    }
    close(fd);
    for (int i = 0; i < 20; i++) {
        struct podres_list l = {0};
        struct errbuf eb = ERRBUF_INIT;

        CHECK_EQ(podres_list(path, CALL_MS, &l, &eb), ERR_IO);
        CHECK(errbuf_is_set(&eb));
        CHECK(l.n == 0 && l.priv == NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    unlink(path);
}

static void test_grpc_error(void)
{
    scenario("{\"mode\":\"error\"}");
    expect_err(sock_path, CALL_MS, ERR_UPSTREAM,
               "List: gRPC status 14 (UNAVAILABLE): PodResources API is not ready: 100% of the "
               "device manager is restarting");
    scenario("{\"mode\":\"error\",\"message\":\"tab\\there, newline\\nthere\"}");
    expect_err(sock_path, CALL_MS, ERR_UPSTREAM,
               "List: gRPC status 14 (UNAVAILABLE): tab?here, newline?there");
}

static void test_garbage(void)
{
    scenario("{\"mode\":\"garbage\"}");
    expect_err(sock_path, CALL_MS, ERR_PARSE,
               "the kubelet's reply is not a valid ListPodResourcesResponse");
}

static void test_huge(void)
{
    scenario("{\"mode\":\"huge\"}");
    expect_err(sock_path, CALL_MS, ERR_TOO_LARGE, "the kubelet's reply is over 16 MiB");
    /* The connection was dropped mid-reply; the fake serves the next call. */
    scenario("{\"pods\":[" POD_B "]}");
    expect_rows("default train-1 main nvidia.com/gpu GPU-bbb\n"
                "default train-1 main nvidia.com/gpu GPU-ccc\n");
}

static void test_free(void)
{
    struct podres_list l = {0}, zero = {0};

    podres_list_free(&l);
    podres_list_free(NULL);
    scenario("{\"pods\":[" POD_A "," POD_B "]}");
    list_ok(&l);
    CHECK_EQ(l.n, 3);
    CHECK_STR_EQ(l.v[2].id, "GPU-ccc");
    podres_list_free(&l);
    CHECK(memcmp(&l, &zero, sizeof(l)) == 0);
    podres_list_free(&l);
    CHECK(memcmp(&l, &zero, sizeof(l)) == 0);
}

int main(void)
{
    /* SIGPIPE keeps its default action: a write without MSG_NOSIGNAL to a closed peer would
     * kill the test (test_peer_closes). */
    CHECK(getenv("GX_SOURCE_DIR")); /* ctest sets it: the fake is found from there */
    CHECK(mkdtemp(tmp_dir));
    snprintf(sock_path, sizeof(sock_path), "%s/kubelet.sock", tmp_dir);
    snprintf(scenario_path, sizeof(scenario_path), "%s/scenario.json", tmp_dir);
    snprintf(ready_path, sizeof(ready_path), "%s/ready", tmp_dir);
    atexit(fake_stop);
    fake_start();

    test_pods();
    test_many_replicas();
    test_empty_node();
    test_pods_come_and_go();
    test_no_kubelet();
    test_bad_arguments();
    test_stall();
    test_silent_listener();
    test_peer_closes();
    test_grpc_error();
    test_garbage();
    test_huge();
    test_free();

    fake_stop();
    unlink(sock_path);
    unlink(scenario_path);
    unlink(ready_path);
    rmdir(tmp_dir);
    printf("test_podres: ok\n");
    return 0;
}
