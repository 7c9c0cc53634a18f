/* agent_config.c -- the node agent's flags (see agent.h). */
#include <stdio.h>
#include <string.h>

#include "gx/agent.h"
#include "gx/flags.h"
#include "gx/gpu_facts.h"

#define A struct agent_config

static const struct flag_def settings[] = {
    FLAG_STR(A, "node-name", "GPU_EXTENDER_AGENT_NODE_NAME", node_name, "",
             "the Node to publish on (default: $NODE_NAME, which the DaemonSet sets from "
             "spec.nodeName)"),
    FLAG_STR(A, "kubeconfig", "GPU_EXTENDER_AGENT_KUBECONFIG", kubeconfig, "",
             "kubeconfig for the API server; without it the in-cluster config"),
    FLAG_STR(A, "serviceaccount-dir", "GPU_EXTENDER_AGENT_SERVICEACCOUNT_DIR", serviceaccount_dir,
             "/var/run/secrets/kubernetes.io/serviceaccount",
             "in-cluster token and ca.crt directory"),
    FLAG_STR(A, "nvml-lib", "GPU_EXTENDER_AGENT_NVML_LIB", nvml_lib, "libnvidia-ml.so.1",
             "the NVML library to dlopen (the host driver's, as the NVIDIA container toolkit "
             "mounts it)"),
    FLAG_STR(A, "pod-resources-socket", "GPU_EXTENDER_AGENT_POD_RESOURCES_SOCKET",
             pod_resources_socket, "/var/lib/kubelet/pod-resources/kubelet.sock",
             "the kubelet's PodResources API socket (empty: do not read GPUs in use)"),
    FLAG_STR(A, "ignored-xids", "GPU_EXTENDER_AGENT_IGNORED_XIDS", ignored_xids,
             GPU_XID_IGNORED_DEFAULT,
             "XIDs that do not make a GPU unhealthy: the ones applications cause (comma "
             "list; empty: every critical XID counts)"),
    FLAG_INT(A, "interval-ms", "GPU_EXTENDER_AGENT_INTERVAL_MS", interval_ms, "1000", 100, 3600000,
             "how often to ask the kubelet which pods hold which GPUs"),
    FLAG_INT(A, "settle-ms", "GPU_EXTENDER_AGENT_SETTLE_MS", settle_ms, "1000", 0, 600000,
             "publish a change once nothing else changed for this long (a burst of pod starts "
             "is one patch); health changes are published at once"),
    FLAG_INT(A, "max-delay-ms", "GPU_EXTENDER_AGENT_MAX_DELAY_MS", max_delay_ms, "5000", 0, 600000,
             "but never hold a change back longer than this"),
    FLAG_INT(A, "recollect-ms", "GPU_EXTENDER_AGENT_RECOLLECT_MS", recollect_ms, "60000", 1000,
             86400000, "how often to read the GPUs and links from NVML again"),
    FLAG_INT(A, "timeout-ms", "GPU_EXTENDER_AGENT_TIMEOUT_MS", timeout_ms, "5000", 100, 600000,
             "time budget of one call to the kubelet or the API server"),
    FLAG_STR(A, "log-level", "GPU_EXTENDER_AGENT_LOG_LEVEL", log_level, "info",
             "error, warn, info or debug"),
    FLAG_STR(A, "health-file", "GPU_EXTENDER_AGENT_HEALTH_FILE", health_file, "",
             "touch this file on every turn of the loop (at least every --interval-ms), for a "
             "liveness probe"),
    FLAG_STR(A, "check-health", NULL, check_health, "",
             "probe mode: exit 0 when FILE was touched within --health-max-age-ms, else 1"),
    FLAG_INT(A, "health-max-age-ms", "GPU_EXTENDER_AGENT_HEALTH_MAX_AGE_MS", health_max_age_ms,
             "30000", 1000, 3600000, "what --check-health accepts"),
    FLAG_BOOL(A, "once", "GPU_EXTENDER_AGENT_ONCE", once,
              "collect once, publish (or print), exit: 0 when it worked"),
    FLAG_BOOL(A, "dry-run", "GPU_EXTENDER_AGENT_DRY_RUN", dry_run,
              "publish nothing: print the annotations it would publish, one JSON object per "
              "line on stdout, each time they change (needs no API server)"),
    FLAG_BOOL(A, "help", NULL, help, "print this help and exit"),
    FLAG_BOOL(A, "version", NULL, version, "print the version and exit"),
};

#undef A

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

enum err agent_config_parse(int argc, char **argv, char **env, struct agent_config *out,
                            struct errbuf *eb)
{
    const char *node = flags_env(env, "NODE_NAME");
    enum err e = flags_parse(settings, NSETTINGS, out, sizeof(*out), argc, argv, env, eb);

    if (e != ERR_OK || out->help || out->version || out->check_health[0])
        return e;
    if (!out->node_name[0] && node) {
        if (strlen(node) >= sizeof(out->node_name)) {
            errbuf_set(eb, "NODE_NAME: value is too long");
            return ERR_INVALID;
        }
        memcpy(out->node_name, node, strlen(node) + 1);
    }
    if (!out->node_name[0] && !out->dry_run) {
        errbuf_set(eb, "no node name: give --node-name or set NODE_NAME (the DaemonSet sets it "
                       "from spec.nodeName)");
        return ERR_INVALID;
    }
    if (out->max_delay_ms < out->settle_ms) {
        errbuf_set(eb, "--max-delay-ms (%lld) must be at least --settle-ms (%lld)",
                   out->max_delay_ms, out->settle_ms);
        return ERR_INVALID;
    }
    return ERR_OK;
}

void agent_config_usage(FILE *out)
{
    fprintf(out, "usage: gpu-extender-agent [flags]\n\n"
                 "The gpu-extender node agent: publishes this node's GPU topology, health and "
                 "GPUs in use\non its Node object, for gpu-extender to schedule by.\n\n");
    flags_usage(settings, NSETTINGS, out);
}
