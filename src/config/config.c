/* config.c -- flags and environment variables (see config.h). */
#include "gx/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/flags.h"

#define STR_SETTING(flag, env, field, def, help)                                                   \
    FLAG_STR(struct config, flag, env, field, def, help)
#define INT_SETTING(flag, env, field, def, min, max, help)                                         \
    FLAG_INT(struct config, flag, env, field, def, min, max, help)
#define BOOL_SETTING(flag, field, help) FLAG_BOOL(struct config, flag, NULL, field, help)

static const struct flag_def settings[] = {
    STR_SETTING("listen", "GPU_EXTENDER_LISTEN", listen, "127.0.0.1:8888",
                "HOST:PORT to serve on; port 0 picks a free port"),
    STR_SETTING("port-file", "GPU_EXTENDER_PORT_FILE", port_file, "",
                "write the port actually bound to this file"),
    STR_SETTING("tls-cert", "GPU_EXTENDER_TLS_CERT", tls_cert, "",
                "PEM certificate chain: with --tls-key, --listen serves HTTPS (TLS 1.2 and 1.3); "
                "reloaded when the file changes"),
    STR_SETTING("tls-key", "GPU_EXTENDER_TLS_KEY", tls_key, "",
                "PEM private key of --tls-cert; reloaded when the file changes"),
    STR_SETTING("tls-client-ca", "GPU_EXTENDER_TLS_CLIENT_CA", tls_client_ca, "",
                "PEM CA bundle: --listen then serves only clients whose certificate verifies "
                "against it (others get 403); reloaded when the file changes"),
    STR_SETTING("ops-listen", "GPU_EXTENDER_OPS_LISTEN", ops_listen, "",
                "HOST:PORT of a second listener with only /healthz, /readyz, /metrics and "
                "/version, for probes and Prometheus (empty: none)"),
    STR_SETTING("ops-port-file", "GPU_EXTENDER_OPS_PORT_FILE", ops_port_file, "",
                "write the port the operations listener bound to this file"),
    STR_SETTING("url-prefix", "GPU_EXTENDER_URL_PREFIX", url_prefix, "/",
                "path prefix of filter, prioritize and bind (the scheduler's urlPrefix path)"),
    STR_SETTING("kubeconfig", "GPU_EXTENDER_KUBECONFIG", kubeconfig, "",
                "kubeconfig for the API server; without it: in-cluster config when "
                "KUBERNETES_SERVICE_HOST is set, else standalone"),
    STR_SETTING("serviceaccount-dir", "GPU_EXTENDER_SERVICEACCOUNT_DIR", serviceaccount_dir,
                "/var/run/secrets/kubernetes.io/serviceaccount",
                "in-cluster token and ca.crt directory (the token is re-read every minute)"),
    STR_SETTING("policy", "GPU_EXTENDER_POLICY", policy, "",
                "policy YAML file; without it the embedded default"),
    INT_SETTING("policy-watch-ms", "GPU_EXTENDER_POLICY_WATCH_MS", policy_watch_ms, "1000", 0,
                3600000, "how often to check the policy file for changes (0: only on SIGHUP)"),
    INT_SETTING("max-body-bytes", "GPU_EXTENDER_MAX_BODY_BYTES", max_body_bytes, "268435456", 1024,
                4LL << 30, "largest request body read; larger ones get 413"),
    INT_SETTING("max-inflight-bytes", "GPU_EXTENDER_MAX_INFLIGHT_BYTES", max_inflight_bytes,
                "536870912", 1024, 64LL << 30,
                "request body bytes all requests in flight may hold; past it, 503 with "
                "Retry-After"),
    INT_SETTING("max-connections", "GPU_EXTENDER_MAX_CONNECTIONS", max_connections, "10000", 16,
                1000000, "connections open at once, per listener"),
    INT_SETTING("max-connections-per-client", "GPU_EXTENDER_MAX_CONNECTIONS_PER_CLIENT",
                max_connections_per_client, "64", 1, 1000000,
                "connections open at once from one client address"),
    INT_SETTING("header-timeout-ms", "GPU_EXTENDER_HEADER_TIMEOUT_MS", header_timeout_ms, "10000",
                100, 3600000, "a new connection's request headers must arrive within this"),
    INT_SETTING("body-timeout-ms", "GPU_EXTENDER_BODY_TIMEOUT_MS", body_timeout_ms, "60000", 100,
                3600000, "a request body must arrive within this after its headers"),
    INT_SETTING("idle-timeout-ms", "GPU_EXTENDER_IDLE_TIMEOUT_MS", idle_timeout_ms, "120000", 1000,
                3600000,
                "a kept-alive connection is closed when its next request has not come within "
                "this (kube-scheduler's own idle timeout is 90 s)"),
    STR_SETTING("log-level", "GPU_EXTENDER_LOG_LEVEL", log_level, "info",
                "error, warn, info or debug"),
    INT_SETTING("bind-timeout-ms", "GPU_EXTENDER_BIND_TIMEOUT_MS", bind_timeout_ms, "4000", 100,
                60000,
                "time budget for one bind against the API server (keep it under the "
                "scheduler's httpTimeout)"),
    INT_SETTING("bind-workers", "GPU_EXTENDER_BIND_WORKERS", bind_workers, "16", 1, 1024,
                "binds run at once"),
    FLAG_BOOL(struct config, "bind-always-get", "GPU_EXTENDER_BIND_ALWAYS_GET", bind_always_get,
              "GET the pod and the node before every bind (three API calls) even when the "
              "cache already knows both (one call)"),
    INT_SETTING("threads", "GPU_EXTENDER_THREADS", threads, "0", 0, 1024,
                "HTTP threads; 0 means one per core"),
    INT_SETTING("drain-timeout-ms", "GPU_EXTENDER_DRAIN_TIMEOUT_MS", drain_timeout_ms, "10000", 0,
                600000, "on SIGTERM, how long to wait for requests in flight"),
    STR_SETTING("check-policy", NULL, check_policy, "",
                "validate a policy file, print every error, exit 1 if there are any"),
    BOOL_SETTING("help", help, "print this help and exit"),
    BOOL_SETTING("version", version, "print the version and exit"),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Settings that are only meaningful together. */
static enum err check_together(const struct config *cfg, struct errbuf *eb)
{
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        errbuf_set(eb, "--tls-cert and --tls-key go together: give both or neither");
        return ERR_INVALID;
    }
    if (cfg->tls_client_ca[0] && !cfg->tls_cert[0]) {
        errbuf_set(eb, "--tls-client-ca needs --tls-cert and --tls-key (client certificates "
                       "are checked only over HTTPS)");
        return ERR_INVALID;
    }
    return ERR_OK;
}

enum err config_parse(int argc, char **argv, char **env, struct config *out, struct errbuf *eb)
{
    enum err e = flags_parse(settings, NSETTINGS, out, sizeof(*out), argc, argv, env, eb);

    return e == ERR_OK ? check_together(out, eb) : e;
}

void config_usage(FILE *out)
{
    fprintf(out, "usage: gpu-extender [flags]\n\n"
                 "A Kubernetes scheduler extender for NVIDIA GPUs: filter, prioritize, bind.\n\n");
    flags_usage(settings, NSETTINGS, out);
}
