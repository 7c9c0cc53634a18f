/* kube_internal.h -- private to src/kube: the parts of the client (kube_client.c) that other
 * files of this module need to make requests on their own CURL handles, such as the watch
 * (kube_watch_xfer.c), which streams and so cannot go through kube_request(). Nothing outside
 * src/kube includes this; with kube_watch_internal.h it is the only header that sees curl.h. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "gx/kube.h"

#define KUBE_TOKEN_MAX_BYTES 16384
/* Room for "Authorization: Bearer " and the longest token we read. */
#define KUBE_AUTH_HEADER_MAX (KUBE_TOKEN_MAX_BYTES + 64)

/* Writes the Authorization header line for the current token into out (cap bytes, at least
 * KUBE_AUTH_HEADER_MAX); out is empty when the client has no token. The token file is re-read
 * when force_reload is set (after a 401) or when the last read is older than
 * KUBE_TOKEN_MAX_AGE_MS; a failed re-read keeps the old token and logs a warning.
 * Thread-safe. */
void kube_client_auth_header(struct kube_client *kc, bool force_reload, char *out, size_t cap);

/* Applies the client's TLS settings (CA, client certificate and key, insecure flag) to c.
 * Call after curl_easy_reset(); blobs are copied into c. Thread-safe for distinct handles. */
void kube_client_set_tls(const struct kube_client *kc, CURL *c);
