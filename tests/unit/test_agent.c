/* test_agent.c -- what the node agent publishes: device ids mapped to GPU indices, the pods
 * holding them, the merge patch between two states, flags. Pure functions, no NVML. */
#include <stdlib.h>

#include "gx/agent.h"
#include "gx/topology.h"

#include "check.h"

/* Four GPUs, 0-1 and 2-3 NVLinked (NV2), across the pairs SYS. */
static void four(struct gpu_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->n = 4;
    snprintf(f->driver_version, sizeof(f->driver_version), "550.54.15");
    for (unsigned i = 0; i < 4; i++) {
        struct gpu_fact *g = &f->gpu[i];

        g->index = i;
        snprintf(g->uuid, sizeof(g->uuid), "GPU-%u%u%u", i, i, i);
        snprintf(g->name, sizeof(g->name), "NVIDIA A100-SXM4-80GB");
        g->memory_bytes = 81920ull << 20;
        g->numa = i < 2 ? 0 : 1;
        g->cc_major = 8;
        g->cc_minor = 0;
        g->healthy = true;
    }
    f->nvlinks[0][1] = f->nvlinks[1][0] = 2;
    f->nvlinks[2][3] = f->nvlinks[3][2] = 2;
}

static struct podres_device dev(const char *ns, const char *pod, const char *resource,
                                const char *id)
{
    return (struct podres_device){ns, pod, "main", resource, id};
}

static void test_usage(void)
{
    struct gpu_facts f;
    struct podres_device rows[] = {
        dev("ml", "train-b", "nvidia.com/gpu", "GPU-333"),
        dev("ml", "train-a", "nvidia.com/gpu", "GPU-000"),
        dev("ml", "train-b", "nvidia.com/gpu", "GPU-222"),
        dev("ml", "train-a", "example.com/fpga", "GPU-111"), /* another resource */
        dev("web", "share", "nvidia.com/gpu", "GPU-111::3"), /* time-slicing replica */
        dev("web", "share2", "nvidia.com/gpu", "GPU-111::4"),
        dev("ml", "mig", "nvidia.com/gpu", "MIG-4b1c"),  /* not a GPU of ours */
        dev("ml", "prefix", "nvidia.com/gpu", "GPU-00"), /* a prefix is no match */
    };
    struct podres_list l = {rows, GX_ARRAY_LEN(rows), NULL};
    struct agent_usage u;

    four(&f);
    CHECK_EQ(agent_usage_from(&f, &l, &u), ERR_OK);
    CHECK(u.known);
    CHECK_EQ(u.mask, 0xfu);
    CHECK_EQ(u.unknown_ids, 2);
    CHECK_STR_EQ(
        u.pods_json.ptr,
        "{\"ml/train-a\":\"0\",\"ml/train-b\":\"2,3\",\"web/share\":\"1\",\"web/share2\":\"1\"}");
    agent_usage_destroy(&u);

    l.n = 0;
    CHECK_EQ(agent_usage_from(&f, &l, &u), ERR_OK);
    CHECK(u.known);
    CHECK_EQ(u.mask, 0u);
    CHECK_STR_EQ(u.pods_json.ptr, "{}");
    agent_usage_destroy(&u);

    CHECK_EQ(agent_usage_from(&f, NULL, &u), ERR_OK);
    CHECK(!u.known);
    agent_usage_destroy(&u);
}

static void build(const struct gpu_facts *f, const struct podres_list *l, bool gfd,
                  struct agent_state *out)
{
    const struct agent_meta m = {"0.1.0", true, gfd};
    struct agent_usage u;

    CHECK_EQ(agent_usage_from(f, l, &u), ERR_OK);
    CHECK_EQ(agent_state_build(f, &u, &m, out), ERR_OK);
    agent_usage_destroy(&u);
}

static void test_state_and_patch(void)
{
    struct gpu_facts f;
    struct podres_device rows[] = {dev("ml", "train", "nvidia.com/gpu", "GPU-222")};
    struct podres_list l = {rows, 1, NULL};
    struct agent_state a = {{0}}, b = {{0}}, none = {{0}};
    struct topo *t = NULL;
    struct buf p;

    four(&f);
    build(&f, &l, false, &a);
    /* The topology is the documented annotation, and the extender reads it back. */
    CHECK(a.v[AGENT_KEY_TOPOLOGY] != NULL);
    CHECK_EQ(topo_parse(a.v[AGENT_KEY_TOPOLOGY], strlen(a.v[AGENT_KEY_TOPOLOGY]), &t, NULL),
             ERR_OK);
    CHECK_EQ(topo_gpu_count(t), 4);
    CHECK_EQ(topo_pair_class(t, 0, 1), TOPO_NVLINK);
    CHECK_EQ(topo_pair_class(t, 1, 2), TOPO_SYS);
    CHECK_EQ(topo_gpu_numa(t, 3), 1);
    topo_release(t);
    CHECK_STR_EQ(a.v[AGENT_KEY_IN_USE], "2");
    CHECK_STR_EQ(a.v[AGENT_KEY_GPU_PODS], "{\"ml/train\":\"2\"}");
    CHECK(strstr(a.v[AGENT_KEY_AGENT], "\"podResources\":\"ok\"") != NULL);
    CHECK(strstr(a.v[AGENT_KEY_AGENT], "\"health\":\"events\"") != NULL);
    CHECK(a.v[AGENT_KEY_LABEL_PRODUCT] == NULL); /* the node has GFD's own */

    buf_init(&p, 1 << 20);
    /* Nothing on the node yet: everything, labels excepted. */
    CHECK_EQ(agent_patch(&a, &none, &p), ERR_OK);
    CHECK(strncmp(p.ptr, "{\"metadata\":{\"annotations\":{\"gpu-extender.io/topology\":", 54) == 0);
    CHECK(strstr(p.ptr, "\"labels\"") == NULL);
    /* The same state: no patch. */
    CHECK_EQ(agent_patch(&a, &a, &p), ERR_OK);
    CHECK_EQ(p.len, 0);

    /* The pod leaves and GPU 1 fails: only what changed, nothing else. */
    f.gpu[1].healthy = false;
    l.n = 0;
    build(&f, &l, false, &b);
    CHECK(!agent_state_same(&a, &b));
    CHECK_EQ(agent_patch(&b, &a, &p), ERR_OK);
    CHECK(strstr(p.ptr, "\"gpu-extender.io/gpus-in-use\":\"\"") != NULL);
    CHECK(strstr(p.ptr, "\"gpu-extender.io/gpu-pods\":\"{}\"") != NULL);
    CHECK(strstr(p.ptr, "\\\"healthy\\\":false") != NULL);
    CHECK(strstr(p.ptr, "gpu-extender.io/agent\"") == NULL); /* unchanged */
    agent_state_clear(&b);

    /* PodResources unavailable: in-use and gpu-pods are removed, not left stale. */
    build(&f, NULL, false, &b);
    CHECK_EQ(agent_patch(&b, &a, &p), ERR_OK);
    CHECK(strstr(p.ptr, "\"gpu-extender.io/gpus-in-use\":null") != NULL);
    CHECK(strstr(p.ptr, "\"gpu-extender.io/gpu-pods\":null") != NULL);
    CHECK(strstr(p.ptr, "\"podResources\\\":\\\"unavailable\\\"") != NULL);
    agent_state_clear(&b);

    /* changed-at alone does not make two states differ. */
    agent_state_copy(&b, &a);
    free(b.v[AGENT_KEY_CHANGED_AT]);
    b.v[AGENT_KEY_CHANGED_AT] = strdup("2026-12-05T12:00:00Z");
    CHECK(agent_state_same(&a, &b));
    agent_state_clear(&b);

    /* Without GPU Feature Discovery the agent writes its labels, and never deletes a label. */
    build(&f, &l, true, &b);
    CHECK(b.v[AGENT_KEY_LABEL_PRODUCT] != NULL);
    CHECK_STR_EQ(b.v[AGENT_KEY_LABEL_PRODUCT], "NVIDIA-A100-SXM4-80GB");
    CHECK_STR_EQ(b.v[AGENT_KEY_LABEL_COUNT], "4");
    CHECK_STR_EQ(b.v[AGENT_KEY_LABEL_FAMILY], "ampere");
    CHECK_STR_EQ(b.v[AGENT_KEY_LABEL_COMPUTE_MAJOR], "8");
    CHECK_STR_EQ(b.v[AGENT_KEY_LABEL_COMPUTE_MINOR], "0");
    CHECK_EQ(agent_patch(&b, &a, &p), ERR_OK);
    CHECK(strstr(p.ptr, "\"labels\":{\"nvidia.com/gpu.product\":\"NVIDIA-A100-SXM4-80GB\"") !=
          NULL);
    CHECK_EQ(agent_patch(&a, &b, &p), ERR_OK);
    CHECK(strstr(p.ptr, "\"labels\"") == NULL);

    /* What --dry-run prints: one JSON object. */
    CHECK_EQ(agent_state_json(&b, &p), ERR_OK);
    CHECK(p.ptr[0] == '{' && p.ptr[p.len - 1] == '}');
    CHECK(strstr(p.ptr, "\"labels\":{") != NULL);
    buf_destroy(&p);
    agent_state_clear(&a);
    agent_state_clear(&b);
}

/* Parses a command line of space-separated words with the environment env ("K=V;K=V"). */
static enum err parse(const char *line, const char *env, struct agent_config *c, struct errbuf *eb)
{
    char argbuf[512], envbuf[512], *argv[16], *envp[8], *save = NULL;
    int argc = 0, envc = 0;

    snprintf(argbuf, sizeof(argbuf), "%s", line);
    snprintf(envbuf, sizeof(envbuf), "%s", env);
    for (char *t = strtok_r(argbuf, " ", &save); t && argc < 15; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    for (char *t = strtok_r(envbuf, ";", &save); t && envc < 7; t = strtok_r(NULL, ";", &save))
        envp[envc++] = t;
    envp[envc] = NULL;
    errbuf_clear(eb);
    return agent_config_parse(argc, argv, envp, c, eb);
}

static void test_flags(void)
{
    const char *env = "NODE_NAME=gpu-7;GPU_EXTENDER_AGENT_INTERVAL_MS=250";
    struct agent_config c;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(parse("agent --once --dry-run --ignored-xids 13,31", env, &c, &eb), ERR_OK);
    CHECK_STR_EQ(c.node_name, "gpu-7");
    CHECK_EQ(c.interval_ms, 250);
    CHECK(c.once && c.dry_run);
    CHECK_STR_EQ(c.ignored_xids, "13,31");
    CHECK_STR_EQ(c.pod_resources_socket, "/var/lib/kubelet/pod-resources/kubelet.sock");
    CHECK_STR_EQ(c.nvml_lib, "libnvidia-ml.so.1");
    /* A flag beats its variable, which beats NODE_NAME. */
    CHECK_EQ(parse("agent --node-name n1", "GPU_EXTENDER_AGENT_NODE_NAME=n2;NODE_NAME=n3", &c, &eb),
             ERR_OK);
    CHECK_STR_EQ(c.node_name, "n1");
    CHECK_EQ(parse("agent", "GPU_EXTENDER_AGENT_NODE_NAME=n2;NODE_NAME=n3", &c, &eb), ERR_OK);
    CHECK_STR_EQ(c.node_name, "n2");
    /* No node name is fine for a dry run or a probe, not for publishing. */
    CHECK_EQ(parse("agent --dry-run", "", &c, &eb), ERR_OK);
    CHECK_EQ(parse("agent --check-health /tmp/x", "", &c, &eb), ERR_OK);
    CHECK_EQ(parse("agent", "", &c, &eb), ERR_INVALID);
    CHECK(strstr(eb.msg, "NODE_NAME") != NULL);
    CHECK_EQ(parse("agent --interval-ms 5", env, &c, &eb), ERR_INVALID);
    CHECK(strstr(eb.msg, "--interval-ms") != NULL);
    CHECK_EQ(parse("agent --settle-ms 9000 --max-delay-ms 100", env, &c, &eb), ERR_INVALID);
    CHECK(strstr(eb.msg, "--max-delay-ms") != NULL);
    CHECK_EQ(parse("agent --once=maybe", env, &c, &eb), ERR_INVALID);
    CHECK_EQ(parse("agent --no-such-flag", env, &c, &eb), ERR_INVALID);
    CHECK(strstr(eb.msg, "--no-such-flag") != NULL);
}

int main(void)
{
    test_usage();
    test_state_and_patch();
    test_flags();
    printf("test_agent: ok\n");
    return 0;
}
