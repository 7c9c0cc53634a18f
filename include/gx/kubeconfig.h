/* kubeconfig.h -- where the API server is and how to authenticate to it: from a kubeconfig
 * file (YAML) or from the in-cluster service-account mount. This module only reads files and
 * fills a plain struct; it makes no connection (that is kube.h's job, with libcurl). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "gx/compiler.h"
#include "gx/err.h"

#define KUBECONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Everything heap-owned by the struct; free with kubeconfig_creds_destroy(). Fields are NULL when
 * absent. *_data fields hold PEM bytes (already base64-decoded from a kubeconfig's *-data). */
struct kubeconfig_creds {
    char *server;          /* "https://host:port" with any trailing '/' removed */
    char *tls_server_name; /* kubeconfig cluster.tls-server-name */
    bool insecure_skip_tls_verify;
    char *ca_file;
    char *ca_data;
    size_t ca_data_len;
    char *client_cert_file;
    char *client_cert_data;
    size_t client_cert_data_len;
    char *client_key_file;
    char *client_key_data;
    size_t client_key_data_len;
    char *token;      /* a static bearer token (kubeconfig user.token) */
    char *token_file; /* a token file to re-read (user.tokenFile, or the SA token in-cluster) */
    char *source;     /* what this came from, for logs: the kubeconfig path or "in-cluster" */
};

/* Reads the kubeconfig at path and resolves the context (NULL: current-context) to a cluster
 * and a user. Relative file paths are resolved against the kubeconfig's directory. Returns
 * ERR_IO when the file cannot be read, ERR_PARSE for bad YAML or base64, ERR_INVALID for a
 * missing context/cluster/user/server or an unsupported auth method (exec, auth-provider),
 * with the detail in eb. On success *out is filled and owned by the caller.
 * Also: ERR_TOO_LARGE for a file over 16 MiB; ERR_PARSE for YAML anchors, aliases or tags, which
 * are refused. Keys this module does not read are ignored. A user entry with no credentials at
 * all is accepted (anonymous, e.g. through `kubectl proxy`). When both a file and *-data are
 * given for the same item, both fields are filled; client-go gives *-data precedence. */
enum err kubeconfig_load(const char *path, const char *context, struct kubeconfig_creds *out,
                         struct errbuf *eb) GX_MUST_CHECK;

/* In-cluster config: server from KUBERNETES_SERVICE_HOST/PORT (IPv6 hosts get brackets),
 * token_file and ca_file under sa_dir (pass KUBECONFIG_SA_DIR; tests pass their own). Returns
 * ERR_NOT_FOUND when KUBERNETES_SERVICE_HOST is unset. The token is not read here.
 * An unset or empty KUBERNETES_SERVICE_PORT means 443; a port outside 1..65535, or a host holding
 * characters that would change the URL ("/@?#" and the like), gives ERR_INVALID. NULL sa_dir
 * means KUBECONFIG_SA_DIR. */
enum err kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig_creds *out,
                               struct errbuf *eb) GX_MUST_CHECK;

/* Frees every field; the struct is left zeroed. NULL is a no-op. */
void kubeconfig_creds_destroy(struct kubeconfig_creds *c);
