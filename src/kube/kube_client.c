/* kube_client.c -- credentials, the bearer token, and one HTTP request at a time per session
 * (see kube.h). The only place besides kube_bind.c that includes curl.h. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/clock.h"
#include "gx/jscan.h"
#include "gx/k8s.h"
#include "gx/kube.h"
#include "gx/log.h"
#include "gx/metrics.h"

#include "kube_internal.h"

#define TOKEN_MAX_BYTES KUBE_TOKEN_MAX_BYTES

struct kube_client {
    struct kubeconfig_creds creds; /* our own deep copy */
    pthread_mutex_t token_lock;
    char *token;            /* current bearer token, or NULL */
    uint64_t token_read_ms; /* when token_file was last read */
};

struct kube_session {
    struct kube_client *kc;
    CURL *curl;
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char *dup_bytes(const char *p, size_t n)
{
    return p ? xstrndup(p, n) : NULL;
}

static void copy_creds(struct kubeconfig_creds *dst, const struct kubeconfig_creds *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->server = dup_or_null(src->server);
    dst->tls_server_name = dup_or_null(src->tls_server_name);
    dst->insecure_skip_tls_verify = src->insecure_skip_tls_verify;
    dst->ca_file = dup_or_null(src->ca_file);
    dst->ca_data = dup_bytes(src->ca_data, src->ca_data_len);
    dst->ca_data_len = src->ca_data_len;
    dst->client_cert_file = dup_or_null(src->client_cert_file);
    dst->client_cert_data = dup_bytes(src->client_cert_data, src->client_cert_data_len);
    dst->client_cert_data_len = src->client_cert_data_len;
    dst->client_key_file = dup_or_null(src->client_key_file);
    dst->client_key_data = dup_bytes(src->client_key_data, src->client_key_data_len);
    dst->client_key_data_len = src->client_key_data_len;
    dst->token = dup_or_null(src->token);
    dst->token_file = dup_or_null(src->token_file);
    dst->source = dup_or_null(src->source);
}

/* Reads the token file; the caller holds token_lock. */
static enum err reload_token(struct kube_client *kc, struct errbuf *eb)
{
    FILE *f = fopen(kc->creds.token_file, "rb");
    char buf[TOKEN_MAX_BYTES + 1];
    size_t n;

    if (!f) {
        errbuf_set(eb, "cannot read token file %s", kc->creds.token_file);
        return ERR_IO;
    }
    n = fread(buf, 1, TOKEN_MAX_BYTES, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    free(kc->token);
    kc->token = xstrdup(buf);
    kc->token_read_ms = clock_mono_ms();
    metrics_counter_add(METRICS_APISERVER_TOKEN_RELOADS, 1);
    return ERR_OK;
}

/* Formats the Authorization header for the current token into out (empty: none). */
void kube_client_auth_header(struct kube_client *kc, bool force_reload, char *out, size_t cap)
{
    struct errbuf eb = ERRBUF_INIT;
    struct log_q q;

    out[0] = '\0';
    pthread_mutex_lock(&kc->token_lock);
    if (kc->creds.token_file && (force_reload || !kc->token ||
                                 clock_mono_ms() - kc->token_read_ms >= KUBE_TOKEN_MAX_AGE_MS)) {
        if (reload_token(kc, &eb) != ERR_OK)
            log_warn("kube", "token reload failed; keeping the old token", "err=\"%s\"",
                     log_quote(&q, eb.msg));
    }
    if (kc->token && kc->token[0])
        snprintf(out, cap, "Authorization: Bearer %s", kc->token);
    pthread_mutex_unlock(&kc->token_lock);
}

enum err kube_client_new(const struct kubeconfig_creds *creds, struct kube_client **out,
                         struct errbuf *eb)
{
    struct kube_client *kc;
    enum err e = ERR_OK;

    if (!creds->server ||
        (strncmp(creds->server, "https://", 8) != 0 && strncmp(creds->server, "http://", 7) != 0)) {
        errbuf_set(eb, "API server URL \"%s\" is not http(s)://",
                   creds->server ? creds->server : "");
        return ERR_INVALID;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        errbuf_set(eb, "libcurl failed to initialize");
        return ERR_IO;
    }
    kc = xcalloc(1, sizeof(*kc));
    copy_creds(&kc->creds, creds);
    pthread_mutex_init(&kc->token_lock, NULL);
    if (kc->creds.token)
        kc->token = xstrdup(kc->creds.token);
    if (kc->creds.token_file)
        e = reload_token(kc, eb);
    if (e != ERR_OK) {
        kube_client_free(kc);
        return e;
    }
    if (kc->creds.tls_server_name)
        log_warn("kube", "tls-server-name is not supported; the server URL's host is verified",
                 "name=%s", kc->creds.tls_server_name);
    *out = kc;
    return ERR_OK;
}

void kube_client_free(struct kube_client *kc)
{
    if (!kc)
        return;
    kubeconfig_creds_destroy(&kc->creds);
    pthread_mutex_destroy(&kc->token_lock);
    free(kc->token);
    free(kc);
    curl_global_cleanup();
}

const char *kube_client_server(const struct kube_client *kc)
{
    return kc->creds.server;
}

void kube_response_destroy(struct kube_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static void set_blob(CURL *c, CURLoption opt, const char *data, size_t len)
{
    struct curl_blob blob = {(void *)(uintptr_t)data, len, CURL_BLOB_COPY};

    curl_easy_setopt(c, opt, &blob);
}

/* TLS options: the cluster CA is always verified unless the kubeconfig says insecure. */
static void set_tls(CURL *c, const struct kubeconfig_creds *cr)
{
    if (cr->insecure_skip_tls_verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cr->ca_data)
        set_blob(c, CURLOPT_CAINFO_BLOB, cr->ca_data, cr->ca_data_len);
    else if (cr->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cr->ca_file);
    if (cr->client_cert_data)
        set_blob(c, CURLOPT_SSLCERT_BLOB, cr->client_cert_data, cr->client_cert_data_len);
    else if (cr->client_cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, cr->client_cert_file);
    if (cr->client_key_data)
        set_blob(c, CURLOPT_SSLKEY_BLOB, cr->client_key_data, cr->client_key_data_len);
    else if (cr->client_key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, cr->client_key_file);
}

void kube_client_set_tls(const struct kube_client *kc, CURL *c)
{
    set_tls(c, &kc->creds);
}

struct kube_session *kube_session_new(struct kube_client *kc)
{
    struct kube_session *s = xcalloc(1, sizeof(*s));

    s->kc = kc;
    s->curl = curl_easy_init();
    if (!s->curl) {
        free(s);
        return NULL;
    }
    return s;
}

void kube_session_free(struct kube_session *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    free(s);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;

    /* Returning less than n makes libcurl fail the transfer: the cap is a hard stop. */
    return buf_append(b, data, n) == ERR_OK ? n : 0;
}

static CURLcode perform(struct kube_session *s, const char *method, const char *url,
                        struct curl_slist *headers, const char *body, size_t body_len,
                        long timeout_ms, struct buf *resp, long *status)
{
    CURL *c = s->curl;
    CURLcode rc;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gpu-extender/" GX_VERSION);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    set_tls(c, &s->kc->creds);
    rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return rc;
}

static enum err request_once(struct kube_session *s, const char *method, const char *url,
                             const char *content_type, const char *body, size_t body_len,
                             long timeout_ms, bool force_token, struct kube_response *out,
                             struct errbuf *eb)
{
    char auth[TOKEN_MAX_BYTES + 64], ctype[128];
    struct curl_slist *headers = NULL;
    struct buf resp;
    CURLcode rc;

    kube_client_auth_header(s->kc, force_token, auth, sizeof(auth));
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type ? content_type : "");
    headers = curl_slist_append(headers, "Accept: application/json");
    if (auth[0])
        headers = curl_slist_append(headers, auth);
    if (content_type)
        headers = curl_slist_append(headers, ctype);
    buf_init(&resp, KUBE_MAX_RESPONSE_BYTES);
    rc = perform(s, method, url, headers, body, body_len, timeout_ms, &resp, &out->status);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        buf_destroy(&resp);
        errbuf_set(eb, "%s %s: %s", method, url, curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT : ERR_IO;
    }
    if (!resp.ptr && buf_append(&resp, "", 0) != ERR_OK) {
        buf_destroy(&resp);
        return ERR_NOMEM;
    }
    out->body = buf_take(&resp, &out->len);
    return ERR_OK;
}

enum err kube_request(struct kube_session *s, const char *method, const char *path,
                      const char *content_type, const char *body, size_t body_len, long timeout_ms,
                      struct kube_response *out, struct errbuf *eb)
{
    char url[2048];
    uint64_t start = clock_mono_ms();
    enum err e;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "%s%s", s->kc->creds.server, path);
    e = request_once(s, method, url, content_type, body, body_len, timeout_ms, false, out, eb);
    if (e != ERR_OK || out->status != 401 || !s->kc->creds.token_file)
        return e;
    /* A rotated service-account token: read the file again and retry once in what is left. */
    log_info("kube", "API server answered 401; re-reading the token", "path=%s", path);
    kube_response_destroy(out);
    timeout_ms -= (long)(clock_mono_ms() - start);
    return request_once(s, method, url, content_type, body, body_len, timeout_ms, true, out, eb);
}

struct status_message {
    char *out;
    size_t cap;
};

static bool status_member(struct jscan *js, int key, void *ctx)
{
    struct status_message *m = ctx;
    struct str raw;

    (void)key; /* only "message" is walked */
    if (jscan_peek(js) != JSON_STRING)
        return jscan_skip(js, NULL);
    if (jscan_string(js, &raw) && jstr_decode(raw, m->out, m->cap) == SIZE_MAX)
        snprintf(m->out, m->cap, "%.*s", (int)(m->cap > 4 ? m->cap - 4 : 0), raw.ptr);
    return true;
}

void kube_status_message(const char *body, size_t len, char *out, size_t cap)
{
    static const char *const names[] = {"message"};
    struct status_message m = {out, cap};
    struct jscan js;

    out[0] = '\0';
    jscan_init(&js, body, len, 64);
    if (jscan_peek(&js) == JSON_OBJECT)
        (void)jscan_walk_object(&js, names, 1, 0, status_member, &m);
}

/* RFC 1123 subdomain, as Kubernetes validates names. So ".", "..", "-x" and "a..b" never reach
 * a URL, where a client would collapse dot segments into another path. */
bool kube_name_is_valid(const char *name)
{
    return k8s_is_dns_subdomain(str_from_cstr(name));
}
