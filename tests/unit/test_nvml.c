/* test_nvml.c -- the agent's NVML reader (src/agent/nvml.c) against the fake NVML library
 * (tests/fakes/fake_nvml.c, paths from GX_FAKE_NVML and GX_FAKE_NVML_OLD), and the pure
 * functions over its facts (src/agent/gpu_facts.c).
 *
 * Fixtures (tests/fakes/nvml/, see its README.md): each <name>.conf describes a node to the
 * fake, and <name>.expected.json is the topology annotation written by hand from the
 * hardware's published topology (<name>.old.expected.json: what a driver without the optional
 * entry points gives). Each is collected, formatted, compared byte for byte, and read back by
 * topo_parse() with spot checks of its pair classes. Then: GFD labels, the failures of
 * nvml_open(), events (critical XID, ignored XID, double-bit ECC, per-GPU support), and the
 * edges of the pure functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/gpu_facts.h"
#include "gx/nvml.h"
#include "gx/topology.h"

#include "check.h"

static char tmpdir[] = "/tmp/test_nvml.XXXXXX";

static const char *env(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) {
        fprintf(stderr, "test_nvml: %s is not set (run it through ctest)\n", name);
        abort();
    }
    return v;
}

static void fixture_path(char *out, size_t cap, const char *name, const char *suffix)
{
    snprintf(out, cap, "%s/tests/fakes/nvml/%s%s", env("GX_SOURCE_DIR"), name, suffix);
}

/* The file's text without its trailing newline. */
static char *read_text(const char *path)
{
    size_t len;
    char *text = check_read_file(path, &len);

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    return text;
}

static void write_file(const char *path, const char *mode, const char *text)
{
    FILE *f = fopen(path, mode);

    CHECK(f);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

/* A config written on the fly, for the edge cases no machine has. */
static void use_config_text(const char *text)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/inline.conf", tmpdir);
    write_file(path, "w", text);
    CHECK(setenv("FAKE_NVML_CONFIG", path, 1) == 0);
}

static struct nvml *open_ok(const char *lib)
{
    struct errbuf eb = ERRBUF_INIT;
    struct nvml *n = NULL;
    enum err e = nvml_open(lib, &n, &eb);

    if (e != ERR_OK) {
        fprintf(stderr, "nvml_open(%s): %s: %s\n", lib, err_str(e), eb.msg);
        abort();
    }
    return n;
}

static void collect_fixture(const char *lib, const char *name, struct gpu_facts *f)
{
    struct errbuf eb = ERRBUF_INIT;
    char path[512];
    struct nvml *n;

    fixture_path(path, sizeof(path), name, ".conf");
    CHECK(setenv("FAKE_NVML_CONFIG", path, 1) == 0);
    n = open_ok(lib);
    if (nvml_collect(n, f, &eb) != ERR_OK) {
        fprintf(stderr, "nvml_collect(%s): %s\n", name, eb.msg);
        abort();
    }
    nvml_close(n);
}

/* f's annotation, malloc'd. */
static char *topology_text(const struct gpu_facts *f)
{
    struct buf b;
    char *text;

    buf_init(&b, TOPO_MAX_TEXT_BYTES);
    CHECK_EQ(gpu_facts_topology(f, &b), ERR_OK);
    text = buf_take(&b, NULL);
    CHECK(text);
    return text;
}

static char *labels_text(const struct gpu_facts *f)
{
    struct buf b;
    char *text;

    buf_init(&b, 4096);
    CHECK_EQ(gpu_facts_gfd_labels(f, &b), ERR_OK);
    text = buf_take(&b, NULL);
    return text ? text : calloc(1, 1);
}

struct spot {
    unsigned a, b;
    enum topo_class cls;
    unsigned score;
};

struct fixture {
    const char *name;
    unsigned n;
    bool has_old; /* a <name>.old.expected.json exists */
    const char *labels;
    struct spot spots[4];
    unsigned nspots;
};

/* GFD label values written from GFD's rules (k8s-device-plugin internal/lm/resource.go). */
static const struct fixture fixtures[] = {
    {"dgx1-v100",
     8,
     true,
     "\"nvidia.com/gpu.product\":\"Tesla-V100-SXM2-16GB\",\"nvidia.com/gpu.memory\":\"16160\","
     "\"nvidia.com/gpu.family\":\"volta\",\"nvidia.com/gpu.count\":\"8\","
     "\"nvidia.com/gpu.compute.major\":\"7\",\"nvidia.com/gpu.compute.minor\":\"0\"",
     {{0, 3, TOPO_NVLINK, 200},
      {0, 1, TOPO_NVLINK, 100},
      {0, 5, TOPO_SYS, 10},
      {3, 7, TOPO_NVLINK, 100}},
     4},
    {"hgx-h100",
     8,
     true,
     "\"nvidia.com/gpu.product\":\"NVIDIA-H100-80GB-HBM3\",\"nvidia.com/gpu.memory\":\"81559\","
     "\"nvidia.com/gpu.family\":\"hopper\",\"nvidia.com/gpu.count\":\"8\","
     "\"nvidia.com/gpu.compute.major\":\"9\",\"nvidia.com/gpu.compute.minor\":\"0\"",
     {{0, 7, TOPO_NVLINK, 1800}, {3, 4, TOPO_NVLINK, 1800}},
     2},
    {"pcie4",
     4,
     false,
     "\"nvidia.com/gpu.product\":\"NVIDIA-L40S\",\"nvidia.com/gpu.memory\":\"46068\","
     "\"nvidia.com/gpu.family\":\"ada-lovelace\",\"nvidia.com/gpu.count\":\"4\","
     "\"nvidia.com/gpu.compute.major\":\"8\",\"nvidia.com/gpu.compute.minor\":\"9\"",
     {{0, 1, TOPO_PIX, 50}, {1, 2, TOPO_SYS, 10}, {2, 3, TOPO_PIX, 50}},
     3},
    {"mig-a100",
     1,
     true,
     "\"nvidia.com/gpu.product\":\"NVIDIA-A100-SXM4-40GB\",\"nvidia.com/gpu.memory\":\"40960\","
     "\"nvidia.com/gpu.family\":\"ampere\",\"nvidia.com/gpu.count\":\"1\","
     "\"nvidia.com/gpu.compute.major\":\"8\",\"nvidia.com/gpu.compute.minor\":\"0\"",
     {{0, 0, TOPO_NVLINK, 0}},
     1},
    {"pcie-levels",
     4,
     false,
     "\"nvidia.com/gpu.product\":\"Tesla-K80\",\"nvidia.com/gpu.memory\":\"11441\","
     "\"nvidia.com/gpu.family\":\"kepler\",\"nvidia.com/gpu.count\":\"2\","
     "\"nvidia.com/gpu.compute.major\":\"3\",\"nvidia.com/gpu.compute.minor\":\"7\"",
     {{0, 1, TOPO_PIX, 50}, {0, 2, TOPO_PXB, 40}, {1, 3, TOPO_PHB, 30}, {2, 3, TOPO_NODE, 20}},
     4},
};

/* The annotation equals the hand-written one and reads back with the right classes. */
static void check_annotation(const struct fixture *fx, const struct gpu_facts *f,
                             const char *suffix)
{
    struct errbuf eb = ERRBUF_INIT;
    struct topo *t = NULL;
    char path[512];
    char *got = topology_text(f), *want;

    fixture_path(path, sizeof(path), fx->name, suffix);
    want = read_text(path);
    CHECK_STR_EQ(got, want);
    if (topo_parse(got, strlen(got), &t, &eb) != ERR_OK) {
        fprintf(stderr, "%s: topo_parse: %s\n", fx->name, eb.msg);
        abort();
    }
    CHECK_EQ(topo_gpu_count(t), fx->n);
    for (unsigned i = 0; i < fx->nspots; i++) {
        const struct spot *s = &fx->spots[i];

        CHECK_EQ(topo_pair_class(t, s->a, s->b), s->cls);
        CHECK_EQ(topo_pair_score(t, s->a, s->b), s->score);
    }
    for (unsigned i = 0; i < f->n; i++) {
        CHECK_STR_EQ(topo_gpu_uuid(t, i), f->gpu[i].uuid);
        CHECK_EQ(topo_gpu_numa(t, i), f->gpu[i].numa);
    }
    CHECK_EQ(topo_healthy_mask(t), (UINT32_C(1) << fx->n) - 1);
    topo_release(t);
    free(got);
    free(want);
}

static void test_fixtures(void)
{
    for (size_t i = 0; i < GX_ARRAY_LEN(fixtures); i++) {
        const struct fixture *fx = &fixtures[i];
        struct gpu_facts f;
        char *labels;

        collect_fixture(env("GX_FAKE_NVML"), fx->name, &f);
        CHECK_EQ(f.n, fx->n);
        check_annotation(fx, &f, ".expected.json");
        labels = labels_text(&f);
        CHECK_STR_EQ(labels, fx->labels);
        free(labels);
        if (fx->has_old) {
            collect_fixture(env("GX_FAKE_NVML_OLD"), fx->name, &f);
            check_annotation(fx, &f, ".old.expected.json");
            for (unsigned g = 0; g < f.n; g++) {
                CHECK(!f.gpu[g].mig_enabled); /* no nvmlDeviceGetMigMode */
                CHECK_EQ(f.gpu[g].numa, -1);  /* no nvmlDeviceGetMemoryAffinity */
            }
        }
    }
}

/* Every field nvml_collect() fills, on the HGX H100. */
static void test_collect_fields(void)
{
    struct gpu_facts f;

    collect_fixture(env("GX_FAKE_NVML"), "hgx-h100", &f);
    CHECK_STR_EQ(f.driver_version, "550.54.15");
    for (unsigned i = 0; i < f.n; i++) {
        const struct gpu_fact *g = &f.gpu[i];

        CHECK_EQ(g->index, i);
        CHECK_STR_EQ(g->name, "NVIDIA H100 80GB HBM3");
        CHECK_EQ(g->memory_bytes, 81559ULL << 20);
        CHECK_EQ(g->cc_major, 9);
        CHECK_EQ(g->cc_minor, 0);
        CHECK(!g->mig_enabled);
        CHECK(g->healthy);
        CHECK_EQ(g->last_xid, 0);
        CHECK_EQ(g->numa, i < 4 ? 0 : 1);
        CHECK_EQ(f.nvlinks[i][i], 0);
    }
    CHECK_STR_EQ(f.gpu[0].pci_bus_id, "00000000:18:00.0");
    CHECK_STR_EQ(f.gpu[7].pci_bus_id, "00000000:DB:00.0");
    CHECK_EQ(f.nvlinks[2][5], 18);
    CHECK_EQ(f.pcie[0][1], TOPO_NODE);
    CHECK_EQ(f.pcie[0][4], TOPO_SYS);

    collect_fixture(env("GX_FAKE_NVML"), "mig-a100", &f);
    CHECK(f.gpu[0].mig_enabled);
    collect_fixture(env("GX_FAKE_NVML"), "pcie-levels", &f);
    CHECK_EQ(f.gpu[3].numa, -1); /* its affinity names two nodes */
    CHECK_EQ(f.gpu[2].cc_major, 7);
    CHECK_EQ(f.gpu[2].cc_minor, 5);
}

/* A GPU without a compute capability, MIG or NVLink answer, and no driver version. */
static void test_collect_unknowns(void)
{
    struct errbuf eb = ERRBUF_INIT;
    struct gpu_facts f;
    struct nvml *n;

    use_config_text("gpu 0 uuid=GPU-u0 name=\"Tesla T4\" bus=00000000:01:00.0\n"
                    "gpu 1 uuid=GPU-u1 name=\"Tesla T4\" bus=00000000:02:00.0 links=4\n");
    n = open_ok(env("GX_FAKE_NVML"));
    CHECK_EQ(nvml_collect(n, &f, &eb), ERR_OK);
    nvml_close(n);
    CHECK_EQ(f.n, 2);
    CHECK_STR_EQ(f.driver_version, "");
    CHECK_EQ(f.gpu[0].cc_major, -1);
    CHECK_EQ(f.gpu[0].cc_minor, -1);
    CHECK_EQ(f.gpu[0].numa, -1);
    CHECK_EQ(f.gpu[0].memory_bytes, 0);
    CHECK(!f.gpu[0].mig_enabled);
    CHECK_EQ(f.nvlinks[0][1], 0); /* GPU 1's links are all inactive */
    CHECK_EQ(f.pcie[0][1], TOPO_SYS);
    char *labels = labels_text(&f);
    /* No memory, family or compute labels without the facts behind them. */
    CHECK_STR_EQ(labels, "\"nvidia.com/gpu.product\":\"Tesla-T4\",\"nvidia.com/gpu.count\":\"2\"");
    free(labels);

    use_config_text("");
    n = open_ok(env("GX_FAKE_NVML"));
    CHECK_EQ(nvml_collect(n, &f, &eb), ERR_OK);
    nvml_close(n);
    CHECK_EQ(f.n, 0);
    labels = labels_text(&f);
    CHECK_STR_EQ(labels, "");
    free(labels);
    struct buf b;
    buf_init(&b, 1024);
    CHECK_EQ(gpu_facts_topology(&f, &b), ERR_INVALID); /* no GPU: no annotation */
    buf_destroy(&b);
}

static void check_open_fails(const char *lib, enum err want, const char *needle1,
                             const char *needle2)
{
    struct errbuf eb = ERRBUF_INIT;
    struct nvml *n = (struct nvml *)0x1;

    CHECK_EQ(nvml_open(lib, &n, &eb), want);
    CHECK(n == (struct nvml *)0x1); /* untouched */
    if (!strstr(eb.msg, needle1) || (needle2 && !strstr(eb.msg, needle2))) {
        fprintf(stderr, "message \"%s\" lacks \"%s\" / \"%s\"\n", eb.msg, needle1,
                needle2 ? needle2 : "");
        abort();
    }
}

static void test_open_failures(void)
{
    char conf[512], many[4096];
    size_t len = 0;

    /* No library: the path and dlerror()'s reason. */
    check_open_fails("/nonexistent/gx/libnvidia-ml.so.1", ERR_UNAVAILABLE,
                     "/nonexistent/gx/libnvidia-ml.so.1", "cannot open shared object");
    /* A library that is not NVML: the first required symbol it lacks. */
    check_open_fails("libc.so.6", ERR_UNAVAILABLE, "libc.so.6", "nvmlInit_v2");
    /* nvmlInit_v2 fails: no driver (no config for the fake), or the code the config gives. */
    CHECK(unsetenv("FAKE_NVML_CONFIG") == 0);
    check_open_fails(env("GX_FAKE_NVML"), ERR_UNAVAILABLE, "nvmlInit_v2", "Driver Not Loaded");
    use_config_text("init_error 4\n");
    check_open_fails(env("GX_FAKE_NVML"), ERR_UNAVAILABLE, "nvmlInit_v2",
                     "Insufficient Permissions");
    /* More GPUs than an annotation holds. */
    for (unsigned i = 0; i < 17; i++) {
        len += (size_t)snprintf(many + len, sizeof(many) - len,
                                "gpu %u uuid=GPU-%u name=T4 bus=00000000:%02X:00.0\n", i, i, i + 1);
    }
    use_config_text(many);
    check_open_fails(env("GX_FAKE_NVML"), ERR_TOO_LARGE, "17 GPUs", "at most 16");
    /* A malformed config: the fake's nvmlInit_v2 fails (and says why on stderr). */
    fprintf(stderr, "(a complaint from the fake on the next line is expected)\n");
    use_config_text("gpu 0 uuid=GPU-0 name=T4\n");
    check_open_fails(env("GX_FAKE_NVML"), ERR_UNAVAILABLE, "nvmlInit_v2", "Unknown Error");
    /* The fake library can be opened twice in a row: nvml_close() shut it down cleanly. */
    fixture_path(conf, sizeof(conf), "pcie4", ".conf");
    CHECK(setenv("FAKE_NVML_CONFIG", conf, 1) == 0);
    nvml_close(open_ok(env("GX_FAKE_NVML")));
    nvml_close(open_ok(env("GX_FAKE_NVML")));
    nvml_close(NULL);
}

static int wait_event(struct nvml *n, unsigned timeout_ms, struct nvml_event *ev)
{
    struct errbuf eb = ERRBUF_INIT;
    int r = nvml_events_wait(n, timeout_ms, ev, &eb);

    if (r < 0) {
        fprintf(stderr, "nvml_events_wait: %s\n", eb.msg);
        abort();
    }
    return r;
}

/* The XID fixture: what pcie4-xid.events does to the README's PCIe box. */
static void test_events_fixture(void)
{
    static const struct {
        unsigned long long xid;
        unsigned index;
        bool dbe;
        bool changes;
    } want[] = {
        {31, 1, false, false}, /* GPU memory page fault: the application's, ignored */
        {79, 2, false, true},  /* fallen off the bus */
        {0, 0, true, true},    /* double-bit ECC */
        {48, 0, false, false}, /* already unhealthy: the first cause stays */
        {13, 3, false, false}, /* graphics engine exception: ignored */
    };
    struct errbuf eb = ERRBUF_INIT;
    struct gpu_xid_list ignored;
    struct nvml_event ev;
    struct gpu_facts f;
    char conf[512], events[512], path[512];
    char *lines, *got, *expect;
    struct nvml *n;

    CHECK_EQ(gpu_xid_list_parse(str_from_cstr(GPU_XID_IGNORED_DEFAULT), &ignored, &eb), ERR_OK);
    snprintf(events, sizeof(events), "%s/events", tmpdir);
    /* A line written before the set exists is not delivered (NVML records nothing earlier). */
    write_file(events, "w", "xid 2 79\n");
    CHECK(setenv("FAKE_NVML_EVENTS", events, 1) == 0);
    fixture_path(conf, sizeof(conf), "pcie4", ".conf");
    CHECK(setenv("FAKE_NVML_CONFIG", conf, 1) == 0);
    n = open_ok(env("GX_FAKE_NVML"));
    CHECK_EQ(nvml_events_watched(n), 0);
    CHECK_EQ(nvml_collect(n, &f, &eb), ERR_OK);
    CHECK_EQ(nvml_events_arm(n, &eb), ERR_OK);
    CHECK_EQ(nvml_events_arm(n, &eb), ERR_OK); /* once armed, nothing more */
    CHECK_EQ(nvml_events_watched(n), 0xF);
    CHECK_EQ(wait_event(n, 30, &ev), 0);

    fixture_path(path, sizeof(path), "pcie4-xid", ".events");
    lines = check_read_file(path, NULL);
    write_file(events, "a", lines);
    free(lines);
    for (size_t i = 0; i < GX_ARRAY_LEN(want); i++) {
        CHECK_EQ(wait_event(n, 2000, &ev), 1);
        CHECK_EQ(ev.index, want[i].index);
        CHECK_EQ(ev.dbe, want[i].dbe);
        CHECK_EQ(ev.xid, want[i].xid);
        CHECK_EQ(gpu_facts_apply_event(&f, &ev, &ignored), want[i].changes);
    }
    CHECK_EQ(wait_event(n, 30, &ev), 0);
    CHECK_EQ(f.gpu[2].last_xid, 79);
    CHECK_EQ(f.gpu[0].last_xid, 0);
    fixture_path(path, sizeof(path), "pcie4-xid", ".expected.json");
    got = topology_text(&f);
    expect = read_text(path);
    CHECK_STR_EQ(got, expect);
    free(got);
    free(expect);

    /* NVML failing the wait is an error with its message. */
    write_file(events, "a", "lost\n");
    CHECK_EQ(nvml_events_wait(n, 2000, &ev, &eb), -1);
    CHECK(strstr(eb.msg, "GPU is lost"));
    nvml_close(n);
}

/* Events as each GPU supports them, and drivers or GPUs with none. */
static void test_events_support(void)
{
    struct errbuf eb = ERRBUF_INIT;
    struct nvml_event ev;
    char events[512];
    struct nvml *n;

    snprintf(events, sizeof(events), "%s/events2", tmpdir);
    write_file(events, "w", "");
    CHECK(setenv("FAKE_NVML_EVENTS", events, 1) == 0);
    use_config_text("gpu 0 uuid=GPU-e0 name=T4 bus=00000000:01:00.0 events=dbe\n"
                    "gpu 1 uuid=GPU-e1 name=T4 bus=00000000:02:00.0 events=none\n");
    n = open_ok(env("GX_FAKE_NVML"));
    CHECK_EQ(nvml_events_wait(n, 10, &ev, &eb), -1); /* not armed */
    CHECK(strstr(eb.msg, "not armed"));
    CHECK_EQ(nvml_events_arm(n, &eb), ERR_OK);
    CHECK_EQ(nvml_events_watched(n), 0x1);
    /* GPU 0 is registered for ECC only, GPU 1 for nothing. */
    write_file(events, "a", "xid 0 79\nxid 1 79\n");
    CHECK_EQ(wait_event(n, 50, &ev), 0);
    write_file(events, "a", "dbe 0\n");
    CHECK_EQ(wait_event(n, 2000, &ev), 1);
    CHECK_EQ(ev.index, 0);
    CHECK(ev.dbe);
    CHECK_EQ(ev.xid, 0);
    nvml_close(n);

    errbuf_clear(&eb);
    use_config_text("gpu 0 uuid=GPU-e0 name=T4 bus=00000000:01:00.0 events=none\n");
    n = open_ok(env("GX_FAKE_NVML"));
    CHECK_EQ(nvml_events_arm(n, &eb), ERR_UNAVAILABLE);
    CHECK(strstr(eb.msg, "no GPU supports"));
    CHECK_EQ(nvml_events_watched(n), 0);
    nvml_close(n);
}

/* ---- the pure functions ---- */

static void facts_init(struct gpu_facts *f, unsigned n)
{
    memset(f, 0, sizeof(*f));
    f->n = n;
    for (unsigned i = 0; i < n; i++) {
        f->gpu[i].index = i;
        f->gpu[i].numa = -1;
        f->gpu[i].cc_major = f->gpu[i].cc_minor = -1;
        f->gpu[i].healthy = true;
        snprintf(f->gpu[i].uuid, sizeof(f->gpu[i].uuid), "GPU-%u", i);
        snprintf(f->gpu[i].name, sizeof(f->gpu[i].name), "NVIDIA A10");
    }
}

static void check_topology_refused(const struct gpu_facts *f, enum err want, size_t cap)
{
    struct buf b;

    buf_init(&b, cap);
    CHECK(buf_append_str(&b, "kept") == ERR_OK);
    CHECK_EQ(gpu_facts_topology(f, &b), want);
    CHECK_STRN_EQ(b.ptr, b.len, "kept");
    buf_destroy(&b);
}

static void test_topology_edges(void)
{
    struct gpu_facts f;
    char *text;

    facts_init(&f, 2);
    f.gpu[0].uuid[0] = '\0';
    f.gpu[1].mig_enabled = true;
    f.gpu[1].healthy = false;
    f.gpu[1].numa = 3;
    snprintf(f.gpu[1].uuid, sizeof(f.gpu[1].uuid), "GPU-\"q\"");
    f.pcie[0][1] = f.pcie[1][0] = TOPO_PHB;
    text = topology_text(&f);
    CHECK_STR_EQ(text,
                 "{\"gpus\":[{\"index\":0},{\"index\":1,\"uuid\":\"GPU-\\\"q\\\"\",\"numa\":3,"
                 "\"healthy\":false,\"mig\":true}],\"links\":[[0,1,\"PHB\"]]}");
    free(text);
    f.nvlinks[0][1] = f.nvlinks[1][0] = 4; /* NVLink wins over the PCIe class */
    text = topology_text(&f);
    CHECK(strstr(text, "[[0,1,\"NV4\"]]"));
    free(text);

    facts_init(&f, 0);
    check_topology_refused(&f, ERR_INVALID, 1024);
    facts_init(&f, 2);
    f.n = GPU_FACTS_MAX + 1;
    check_topology_refused(&f, ERR_INVALID, 1024);
    facts_init(&f, 2);
    f.gpu[1].index = 0;
    check_topology_refused(&f, ERR_INVALID, 1024);
    facts_init(&f, 2);
    f.nvlinks[0][1] = 2;
    check_topology_refused(&f, ERR_INVALID, 1024); /* asymmetric */
    facts_init(&f, 2);
    f.nvlinks[0][1] = f.nvlinks[1][0] = 19;
    check_topology_refused(&f, ERR_INVALID, 1024);
    facts_init(&f, 2);
    f.pcie[0][1] = f.pcie[1][0] = TOPO_NVLINK;
    check_topology_refused(&f, ERR_INVALID, 1024);
    /* Too small a buffer: refused, and what it held is kept. */
    facts_init(&f, 2);
    check_topology_refused(&f, ERR_TOO_LARGE, 30);
}

static void check_product(const char *name, const char *want)
{
    struct gpu_facts f;
    char *labels, expect[256];

    facts_init(&f, 1);
    snprintf(f.gpu[0].name, sizeof(f.gpu[0].name), "%s", name);
    labels = labels_text(&f);
    if (want[0]) {
        snprintf(expect, sizeof(expect),
                 "\"nvidia.com/gpu.product\":\"%s\",\"nvidia.com/gpu.count\":\"1\"", want);
    } else {
        snprintf(expect, sizeof(expect), "\"nvidia.com/gpu.count\":\"1\"");
    }
    CHECK_STR_EQ(labels, expect);
    free(labels);
}

static void test_labels_edges(void)
{
    static const char long_name[] = "NVIDIA Quite Long Product Name That Keeps Going And Going "
                                    "Past Sixty-Three";
    struct gpu_facts f;
    char *labels;
    struct buf b;

    check_product("NVIDIA GeForce RTX 4090", "NVIDIA-GeForce-RTX-4090");
    check_product("  Tesla   K80 (rev a1)! ", "Tesla-K80-rev-a1");
    check_product("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB");
    /* Cut to 63 characters, then to an alphanumeric end: "...-Sixty-" loses its '-'. */
    check_product(long_name, "NVIDIA-Quite-Long-Product-Name-That-Keeps-Going-And-Going-Past");
    check_product("-_. (*)", "");
    check_product("", "");

    /* Mixed models: the first GPU's, counted among its own model only. */
    facts_init(&f, 3);
    snprintf(f.gpu[1].name, sizeof(f.gpu[1].name), "NVIDIA H100 80GB HBM3");
    f.gpu[0].memory_bytes = 24ULL << 30;
    f.gpu[0].cc_major = 8;
    f.gpu[0].cc_minor = 6;
    labels = labels_text(&f);
    CHECK_STR_EQ(labels, "\"nvidia.com/gpu.product\":\"NVIDIA-A10\",\"nvidia.com/gpu.memory\":"
                         "\"24576\",\"nvidia.com/gpu.family\":\"ampere\",\"nvidia.com/gpu.count\":"
                         "\"2\",\"nvidia.com/gpu.compute.major\":\"8\","
                         "\"nvidia.com/gpu.compute.minor\":\"6\"");
    free(labels);
    buf_init(&b, 40);
    CHECK(buf_append_str(&b, "kept") == ERR_OK);
    CHECK_EQ(gpu_facts_gfd_labels(&f, &b), ERR_TOO_LARGE);
    CHECK_STRN_EQ(b.ptr, b.len, "kept");
    f.n = GPU_FACTS_MAX + 1;
    CHECK_EQ(gpu_facts_gfd_labels(&f, &b), ERR_INVALID);
    buf_destroy(&b);

    CHECK_STR_EQ(gpu_facts_family(3, 7), "kepler");
    CHECK_STR_EQ(gpu_facts_family(6, 1), "pascal");
    CHECK_STR_EQ(gpu_facts_family(7, 0), "volta");
    CHECK_STR_EQ(gpu_facts_family(7, 5), "turing");
    CHECK_STR_EQ(gpu_facts_family(8, 6), "ampere");
    CHECK_STR_EQ(gpu_facts_family(8, 9), "ada-lovelace");
    CHECK_STR_EQ(gpu_facts_family(9, 0), "hopper");
    CHECK_STR_EQ(gpu_facts_family(10, 0), "blackwell");
    CHECK_STR_EQ(gpu_facts_family(12, 0), "blackwell");
    CHECK_STR_EQ(gpu_facts_family(4, 0), "undefined");
    CHECK_STR_EQ(gpu_facts_family(-1, -1), "undefined");
}

static void check_xid_list(const char *text, unsigned n, unsigned first)
{
    struct errbuf eb = ERRBUF_INIT;
    struct gpu_xid_list l;

    if (gpu_xid_list_parse(str_from_cstr(text), &l, &eb) != ERR_OK) {
        fprintf(stderr, "\"%s\": %s\n", text, eb.msg);
        abort();
    }
    CHECK_EQ(l.n, n);
    if (n)
        CHECK_EQ(l.xid[0], first);
}

static void check_xid_error(const char *text, enum err want, const char *needle)
{
    struct errbuf eb = ERRBUF_INIT;
    struct gpu_xid_list l = {.n = 77};

    CHECK_EQ(gpu_xid_list_parse(str_from_cstr(text), &l, &eb), want);
    CHECK_EQ(l.n, 77); /* untouched */
    if (!strstr(eb.msg, needle)) {
        fprintf(stderr, "\"%s\": message \"%s\" lacks \"%s\"\n", text, eb.msg, needle);
        abort();
    }
}

static void test_xid_lists(void)
{
    struct errbuf eb = ERRBUF_INIT;
    struct gpu_xid_list l;
    char many[1200];
    size_t len = 0;

    CHECK_EQ(gpu_xid_list_parse(str_from_cstr(GPU_XID_IGNORED_DEFAULT), &l, &eb), ERR_OK);
    CHECK_EQ(l.n, 6);
    CHECK(gpu_xid_list_has(&l, 13) && gpu_xid_list_has(&l, 31) && gpu_xid_list_has(&l, 43));
    CHECK(gpu_xid_list_has(&l, 45) && gpu_xid_list_has(&l, 68) && gpu_xid_list_has(&l, 109));
    CHECK(!gpu_xid_list_has(&l, 79) && !gpu_xid_list_has(&l, 48) && !gpu_xid_list_has(NULL, 13));
    check_xid_list("", 0, 0);
    check_xid_list("  ", 0, 0);
    check_xid_list(" 79 , 13 ", 2, 79);
    check_xid_list("13,13,13", 1, 13);
    check_xid_list("65535", 1, 65535);

    check_xid_error("13,,31", ERR_PARSE, "item 2 is empty");
    check_xid_error("13,", ERR_PARSE, "item 2 is empty");
    check_xid_error(",13", ERR_PARSE, "item 1 is empty");
    check_xid_error("13, ,31", ERR_PARSE, "item 2 is empty");
    check_xid_error("13,abc", ERR_PARSE, "item 2 \"abc\" is not an XID");
    check_xid_error("0", ERR_PARSE, "item 1 \"0\"");
    check_xid_error("65536", ERR_PARSE, "1..65535");
    check_xid_error("-5", ERR_PARSE, "\"-5\"");
    check_xid_error("all", ERR_PARSE, "\"all\"");
    check_xid_error("1 3", ERR_PARSE, "\"1 3\"");
    for (unsigned i = 1; i <= GPU_XID_LIST_MAX + 1; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "%s%u", i > 1 ? "," : "", i);
    check_xid_error(many, ERR_TOO_LARGE, "more than 64");
    memset(many, ' ', sizeof(many) - 1);
    many[sizeof(many) - 1] = '\0';
    check_xid_error(many, ERR_TOO_LARGE, "at most 1024");
}

static void test_apply_and_keep(void)
{
    struct gpu_xid_list ignored = {.n = 1, .xid = {31}};
    struct gpu_facts f, later;
    struct nvml_event ev = {.index = 1, .dbe = false, .xid = 31};

    facts_init(&f, 3);
    CHECK(!gpu_facts_apply_event(&f, &ev, &ignored)); /* ignored */
    CHECK(gpu_facts_apply_event(&f, &ev, NULL));      /* nothing ignored */
    CHECK(!f.gpu[1].healthy);
    CHECK_EQ(f.gpu[1].last_xid, 31);
    ev = (struct nvml_event){.index = 3, .xid = 79};
    CHECK(!gpu_facts_apply_event(&f, &ev, &ignored)); /* no GPU 3 */
    ev = (struct nvml_event){.index = 2};
    CHECK(!gpu_facts_apply_event(&f, &ev, &ignored)); /* neither XID nor ECC */
    CHECK(f.gpu[2].healthy);
    ev.dbe = true;
    CHECK(gpu_facts_apply_event(&f, &ev, &ignored));
    CHECK(!f.gpu[2].healthy);
    CHECK_EQ(f.gpu[2].last_xid, 0);

    /* A fresh reading, GPUs in another order and one unknown: health follows the UUIDs. */
    facts_init(&later, 3);
    snprintf(later.gpu[0].uuid, sizeof(later.gpu[0].uuid), "GPU-2");
    snprintf(later.gpu[1].uuid, sizeof(later.gpu[1].uuid), "GPU-9");
    snprintf(later.gpu[2].uuid, sizeof(later.gpu[2].uuid), "GPU-1");
    CHECK_EQ(gpu_facts_keep_health(&later, &f), 2);
    CHECK(!later.gpu[0].healthy && later.gpu[0].last_xid == 0);
    CHECK(later.gpu[1].healthy);
    CHECK(!later.gpu[2].healthy && later.gpu[2].last_xid == 31);
    CHECK_EQ(gpu_facts_keep_health(&later, &f), 0); /* already carried */
}

int main(void)
{
    CHECK(mkdtemp(tmpdir));
    test_fixtures();
    test_collect_fields();
    test_collect_unknowns();
    test_open_failures();
    test_events_fixture();
    test_events_support();
    test_topology_edges();
    test_labels_edges();
    test_xid_lists();
    test_apply_and_keep();

    char path[256];
    snprintf(path, sizeof(path), "%s/inline.conf", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/events", tmpdir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/events2", tmpdir);
    unlink(path);
    CHECK(rmdir(tmpdir) == 0);
    printf("test_nvml: ok\n");
    return 0;
}
