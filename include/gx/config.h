/* config.h -- daemon settings from the command line and the environment. Every flag has an
 * environment twin (GPU_EXTENDER_<NAME>); a flag beats its variable, which beats the default.
 * One table in config.c declares each setting once: its flag, variable, default and help. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "gx/compiler.h"
#include "gx/err.h"

struct config {
    char listen[256];
    char port_file[1024];
    char tls_cert[1024];      /* --tls-cert: PEM chain; with tls_key, HTTPS on --listen */
    char tls_key[1024];       /* --tls-key */
    char tls_client_ca[1024]; /* --tls-client-ca: PEM bundle client certificates must verify against
                               */
    char ops_listen[256];
    char ops_port_file[1024];
    char url_prefix[256];
    char kubeconfig[1024];
    char serviceaccount_dir[1024];
    char policy[1024];
    char log_level[16];
    char check_policy[1024]; /* --check-policy FILE: validate and exit */
    long long max_body_bytes;
    long long max_inflight_bytes;
    long long max_connections;
    long long max_connections_per_client;
    long long header_timeout_ms;
    long long body_timeout_ms;
    long long idle_timeout_ms;
    long long bind_timeout_ms;
    long long bind_workers;
    bool bind_always_get; /* never take the cache's word on a bind (see kube_bind.c) */
    long long threads;
    long long drain_timeout_ms;
    long long policy_watch_ms;
    bool help;
    bool version;
};

/* Fills *out from argv and the environment (env is NULL-terminated "K=V" strings). Returns
 * ERR_INVALID with the detail in eb for an unknown flag, a missing value, a number out of
 * range, or flags that only make sense together given alone (--tls-cert and --tls-key;
 * --tls-client-ca needs both). */
enum err config_parse(int argc, char **argv, char **env, struct config *out,
                      struct errbuf *eb) GX_MUST_CHECK;
/* Prints --help: every flag, its variable, default and meaning. */
void config_usage(FILE *out);
