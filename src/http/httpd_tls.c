/* httpd_tls.c -- certificate sets, their reload, and client certificate checks (see
 * httpd_tls.h). */
#include "httpd_tls.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gx/alloc.h"
#include "gx/buf.h"
#include "gx/filewatch.h"
#include "gx/log.h"
#include "gx/metrics.h"

/* A PEM file larger than this is not a certificate chain, key or CA bundle we should load. */
#define TLS_MAX_FILE_BYTES ((size_t)1 << 20)
#define TLS_WATCH_DEFAULT_MS 1000u
#define TLS_DIGEST_BYTES 32 /* SHA-256 */

enum tls_file { TLS_CERT, TLS_KEY, TLS_CA, TLS_FILES };

struct tls_set {
    atomic_uint refs;
    gnutls_certificate_credentials_t cred;
    unsigned char digest[TLS_DIGEST_BYTES]; /* of the three files' bytes: "unchanged" */
    bool has_digest;
    char serial[80]; /* the leaf certificate's, in hex */
    time_t not_before, not_after;
};

struct tls_server {
    char name[32];
    char *path[TLS_FILES];  /* path[TLS_CA] is NULL when clients are not verified */
    char *start_text[2];    /* the first set's certificate and key, for libmicrohttpd */
    pthread_mutex_t lock;   /* guards current: held for a pointer copy and a refcount only */
    pthread_mutex_t reload; /* serializes reloads, held across the file reads */
    struct tls_set *current;
    /* The watcher. */
    struct file_id seen[TLS_FILES];
    pthread_t thread;
    bool watching;
    struct file_nap nap;
    unsigned interval_ms;
};

static const char *const file_role[TLS_FILES] = {"certificate", "key", "client CA"};

/* ---- files ---- */

/* strerror() shares one buffer between threads; a reload runs beside other work. */
static const char *errno_text(int errnum, char *tmp, size_t cap)
{
    if (strerror_r(errnum, tmp, cap) != 0)
        snprintf(tmp, cap, "errno %d", errnum);
    return tmp;
}

/* Reads a whole file of at most TLS_MAX_FILE_BYTES into a NUL-terminated string. */
static enum err read_pem(const char *path, const char *role, char **out, struct errbuf *eb)
{
    char chunk[16384], why[128];
    struct buf b;
    size_t n;
    enum err e = ERR_OK;
    FILE *f = fopen(path, "rb");

    if (!f) {
        errbuf_set(eb, "%s %s: cannot open: %s", role, path, errno_text(errno, why, sizeof(why)));
        return ERR_INVALID;
    }
    buf_init(&b, TLS_MAX_FILE_BYTES);
    while (e == ERR_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        e = buf_append(&b, chunk, n);
    if (e != ERR_OK) {
        errbuf_set(eb, "%s %s: larger than %zu bytes", role, path, TLS_MAX_FILE_BYTES);
    } else if (ferror(f)) {
        errbuf_set(eb, "%s %s: cannot read: %s", role, path, errno_text(errno, why, sizeof(why)));
        e = ERR_IO;
    }
    fclose(f);
    /* Appending nothing still allocates, so an empty file yields "" rather than NULL. */
    if (e == ERR_OK)
        e = buf_append(&b, "", 0);
    if (e == ERR_OK)
        *out = buf_take(&b, NULL);
    buf_destroy(&b);
    return e == ERR_OK ? ERR_OK : ERR_INVALID;
}

/* ---- certificate sets ---- */

static gnutls_datum_t datum(const char *text)
{
    gnutls_datum_t d;

    /* GnuTLS takes a non-const pointer but only reads PEM input. */
    d.data = (unsigned char *)(uintptr_t)text;
    d.size = (unsigned)strlen(text);
    return d;
}

static void set_free(struct tls_set *set)
{
    if (set->cred)
        gnutls_certificate_free_credentials(set->cred);
    free(set);
}

void tls_set_release(struct tls_set *set)
{
    if (set && atomic_fetch_sub(&set->refs, 1) == 1)
        set_free(set);
}

/* The credentials: the chain and its key (GnuTLS checks that they match), and the CA bundle
 * client certificates must chain to. */
static enum err set_credentials(struct tls_set *set, const struct tls_server *t,
                                char *const text[TLS_FILES], struct errbuf *eb)
{
    gnutls_datum_t cert = datum(text[TLS_CERT]), key = datum(text[TLS_KEY]), ca;
    int rc = gnutls_certificate_allocate_credentials(&set->cred);

    if (rc < 0) {
        errbuf_set(eb, "cannot allocate TLS credentials: %s", gnutls_strerror(rc));
        return ERR_NOMEM;
    }
    rc = gnutls_certificate_set_x509_key_mem2(set->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        errbuf_set(eb, "certificate %s with key %s: %s", t->path[TLS_CERT], t->path[TLS_KEY],
                   gnutls_strerror(rc));
        return ERR_INVALID;
    }
    if (!t->path[TLS_CA])
        return ERR_OK;
    ca = datum(text[TLS_CA]);
    rc = gnutls_certificate_set_x509_trust_mem(set->cred, &ca, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) {
        errbuf_set(eb, "client CA %s: %s", t->path[TLS_CA],
                   rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        return ERR_INVALID;
    }
    return ERR_OK;
}

/* As `openssl x509 -serial` prints it: upper-case hex without the DER sign byte. */
static void hex_serial(const unsigned char *raw, size_t n, char *out, size_t cap)
{
    size_t i = 0, at = 0;

    while (i + 1 < n && raw[i] == 0)
        i++;
    for (; i < n && at + 3 <= cap; i++, at += 2)
        snprintf(out + at, 3, "%02X", raw[i]);
}

/* Serial number and validity of the leaf certificate, for logs and tests. */
static void set_describe(struct tls_set *set)
{
    gnutls_datum_t der;
    gnutls_x509_crt_t crt;
    unsigned char serial[32];
    size_t n = sizeof(serial);

    if (gnutls_certificate_get_crt_raw(set->cred, 0, 0, &der) < 0)
        return;
    if (gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) >= 0) {
        if (gnutls_x509_crt_get_serial(crt, serial, &n) >= 0)
            hex_serial(serial, n, set->serial, sizeof(set->serial));
        set->not_before = gnutls_x509_crt_get_activation_time(crt);
        set->not_after = gnutls_x509_crt_get_expiration_time(crt);
    }
    gnutls_x509_crt_deinit(crt);
}

static void set_digest(struct tls_set *set, char *const text[TLS_FILES])
{
    gnutls_hash_hd_t h;

    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return;
    set->has_digest = true;
    for (int i = 0; i < TLS_FILES; i++)
        if (gnutls_hash(h, text[i], strlen(text[i]) + 1) < 0) /* the NUL separates the files */
            set->has_digest = false;
    gnutls_hash_deinit(h, set->digest);
}

/* Whether two sets were made from the same bytes (unknown counts as different). */
static bool same_files(const struct tls_set *a, const struct tls_set *b)
{
    return a->has_digest && b->has_digest && memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

/* Frees text that may hold a private key, wiping it first. NULL is a no-op. */
static void free_secret(char *text)
{
    if (!text)
        return;
    gnutls_memset(text, 0, strlen(text));
    free(text);
}

/* Reads the three files and builds a set with one reference. When first is given, the
 * certificate and key text are handed out through it (for libmicrohttpd). */
static enum err set_load(const struct tls_server *t, struct tls_set **out, char *first[2],
                         struct errbuf *eb)
{
    char *text[TLS_FILES] = {NULL, NULL, NULL};
    struct tls_set *set = xcalloc(1, sizeof(*set));
    enum err e = ERR_OK;

    atomic_init(&set->refs, 1);
    set->not_before = set->not_after = (time_t)-1;
    for (int i = 0; i < TLS_FILES && e == ERR_OK; i++) {
        if (t->path[i])
            e = read_pem(t->path[i], file_role[i], &text[i], eb);
        else
            text[i] = xstrdup("");
    }
    if (e == ERR_OK)
        e = set_credentials(set, t, text, eb);
    if (e == ERR_OK) {
        set_describe(set);
        set_digest(set, text);
        *out = set;
    } else {
        set_free(set);
    }
    if (e == ERR_OK && first) {
        first[0] = text[TLS_CERT];
        first[1] = text[TLS_KEY];
        text[TLS_CERT] = text[TLS_KEY] = NULL;
    }
    for (int i = 0; i < TLS_FILES; i++)
        free_secret(text[i]);
    return e;
}

static const char *format_time(time_t when, char *out, size_t cap)
{
    struct tm tm;

    if (when == (time_t)-1 || !gmtime_r(&when, &tm) ||
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "unknown");
    return out;
}

static void log_set(const struct tls_server *t, const struct tls_set *set, const char *msg,
                    const char *why)
{
    char from[32], until[32];
    time_t now = time(NULL);

    log_info("http", msg, "listener=%s why=\"%s\" serial=%s not_before=%s not_after=%s cert=%s",
             t->name, why, set->serial, format_time(set->not_before, from, sizeof(from)),
             format_time(set->not_after, until, sizeof(until)), t->path[TLS_CERT]);
    if (set->not_after != (time_t)-1 && (now < set->not_before || now > set->not_after))
        log_warn("http", "the serving certificate is outside its validity period",
                 "listener=%s serial=%s not_before=%s not_after=%s", t->name, set->serial, from,
                 until);
}

/* ---- the server ---- */

static void note_identities(const struct tls_server *t, struct file_id ids[TLS_FILES])
{
    for (int i = 0; i < TLS_FILES; i++)
        ids[i] = file_id_get(t->path[i]);
}

static bool nonempty(const char *s)
{
    return s && s[0];
}

static void *watch_main(void *arg);

enum err tls_server_new(const struct httpd_config *cfg, struct tls_server **out, struct errbuf *eb)
{
    struct tls_server *t;
    enum err e;

    if (!nonempty(cfg->tls_cert_file) || !nonempty(cfg->tls_key_file)) {
        errbuf_set(eb, "HTTPS needs both a certificate and a key");
        return ERR_INVALID;
    }
    t = xcalloc(1, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", cfg->name ? cfg->name : "");
    t->path[TLS_CERT] = xstrdup(cfg->tls_cert_file);
    t->path[TLS_KEY] = xstrdup(cfg->tls_key_file);
    if (nonempty(cfg->tls_client_ca_file))
        t->path[TLS_CA] = xstrdup(cfg->tls_client_ca_file);
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->reload, NULL);
    file_nap_init(&t->nap);
    /* The identities are taken before the files are read: a change that lands in between is
     * then seen by the watcher, never lost. */
    note_identities(t, t->seen);
    e = set_load(t, &t->current, t->start_text, eb);
    if (e != ERR_OK) {
        tls_server_free(t);
        return e;
    }
    log_set(t, t->current, "serving HTTPS", "start");
    t->interval_ms = cfg->tls_watch_ms ? cfg->tls_watch_ms : TLS_WATCH_DEFAULT_MS;
    t->watching = pthread_create(&t->thread, NULL, watch_main, t) == 0;
    if (!t->watching)
        log_error("http", "cannot start the TLS file watcher; certificates will not be reloaded",
                  "listener=%s", t->name);
    *out = t;
    return ERR_OK;
}

void tls_server_free(struct tls_server *t)
{
    if (!t)
        return;
    if (t->watching) {
        file_nap_stop(&t->nap);
        pthread_join(t->thread, NULL);
    }
    tls_set_release(t->current);
    for (int i = 0; i < TLS_FILES; i++)
        free(t->path[i]);
    free(t->start_text[0]);
    free_secret(t->start_text[1]);
    file_nap_destroy(&t->nap);
    pthread_mutex_destroy(&t->reload);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

const char *tls_server_start_cert(const struct tls_server *t)
{
    return t->start_text[0];
}

const char *tls_server_start_key(const struct tls_server *t)
{
    return t->start_text[1];
}

bool tls_server_verifies_clients(const struct tls_server *t)
{
    return t->path[TLS_CA] != NULL;
}

void tls_server_serial(struct tls_server *t, char *out, size_t cap)
{
    pthread_mutex_lock(&t->lock);
    snprintf(out, cap, "%s", t->current->serial);
    pthread_mutex_unlock(&t->lock);
}

enum err tls_server_reload(struct tls_server *t, const char *why, bool *swapped, struct errbuf *eb)
{
    struct errbuf detail = ERRBUF_INIT;
    struct tls_set *next = NULL, *old;
    struct log_q q;
    enum err e;

    if (swapped)
        *swapped = false;
    pthread_mutex_lock(&t->reload);
    e = set_load(t, &next, NULL, &detail);
    if (e != ERR_OK) {
        log_error("http", "TLS reload refused; the current certificates keep serving",
                  "listener=%s why=\"%s\" err=\"%s\"", t->name, why, log_quote(&q, detail.msg));
        metrics_counter_add(METRICS_TLS_RELOAD_FAILURES, 1);
        errbuf_set(eb, "%s", detail.msg);
        pthread_mutex_unlock(&t->reload);
        return e;
    }
    /* Only reloads replace current, and they hold t->reload: reading it here needs no lock. */
    if (same_files(next, t->current)) {
        log_info("http", "TLS reload: the files are unchanged", "listener=%s why=\"%s\"", t->name,
                 why);
        tls_set_release(next);
        pthread_mutex_unlock(&t->reload);
        return ERR_OK;
    }
    pthread_mutex_lock(&t->lock);
    old = t->current;
    t->current = next;
    pthread_mutex_unlock(&t->lock);
    tls_set_release(old); /* freed once the last connection that uses it closes */
    metrics_counter_add(METRICS_TLS_RELOADS, 1);
    log_set(t, next, "TLS certificates reloaded", why);
    pthread_mutex_unlock(&t->reload);
    if (swapped)
        *swapped = true;
    return ERR_OK;
}

/* Whether any file changed since last seen; notes what is seen now, and which file, if any,
 * is gone. */
static bool files_changed(struct tls_server *t, int *gone)
{
    struct file_id now[TLS_FILES];
    bool changed = false;

    note_identities(t, now);
    *gone = -1;
    for (int i = 0; i < TLS_FILES; i++) {
        changed = changed || !file_id_same(&now[i], &t->seen[i]);
        if (t->path[i] && !now[i].ok)
            *gone = i;
        t->seen[i] = now[i];
    }
    return changed;
}

static void *watch_main(void *arg)
{
    struct tls_server *t = arg;

    while (file_nap(&t->nap, t->interval_ms)) {
        int gone;

        if (!files_changed(t, &gone))
            continue;
        if (gone >= 0) {
            /* Deleted, or mid-way through a non-atomic update: keep serving and look again. */
            log_warn("http", "a TLS file is gone; the current certificates keep serving",
                     "listener=%s file=\"%s\" path=%s", t->name, file_role[gone], t->path[gone]);
            continue;
        }
        /* A refusal is logged and counted inside; the current set keeps serving. */
        if (tls_server_reload(t, "file changed", NULL, NULL) != ERR_OK)
            continue;
    }
    return NULL;
}

/* ---- connections ---- */

static gnutls_session_t session_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);

    return info ? info->tls_session : NULL;
}

struct tls_set *tls_conn_open(struct tls_server *t, struct MHD_Connection *mc)
{
    gnutls_session_t session = session_of(mc);
    struct tls_set *set;

    if (!session)
        return NULL;
    pthread_mutex_lock(&t->lock);
    set = t->current;
    atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&t->lock);
    /* Replaces the daemon's credentials, which libmicrohttpd gave the session when it made
     * it; the handshake has not started (it runs after the open notification). */
    if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, set->cred) < 0) {
        tls_set_release(set);
        return NULL;
    }
    /* Asked for, not required: a client without one completes the handshake and is told
     * why it is refused in a 403, rather than seeing the connection close. */
    if (tls_server_verifies_clients(t))
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
    return set;
}

/* GnuTLS's description of a verification status, on one line without trailing spaces. */
static void status_text(unsigned status, char *why, size_t cap)
{
    gnutls_datum_t text = {NULL, 0};
    size_t n;

    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) < 0) {
        snprintf(why, cap, "verification status 0x%x", status);
        return;
    }
    snprintf(why, cap, "%s", (const char *)text.data);
    gnutls_free(text.data);
    n = strlen(why);
    while (n > 0 && why[n - 1] == ' ')
        why[--n] = '\0';
}

bool tls_conn_verify(const struct tls_server *t, const struct tls_set *set,
                     struct MHD_Connection *mc, char *why, size_t cap)
{
    unsigned char client_auth[] = GNUTLS_KP_TLS_WWW_CLIENT;
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = client_auth, .size = 0};
    gnutls_session_t session = session_of(mc);
    unsigned n = 0, status = 0;
    int rc;

    if (!tls_server_verifies_clients(t))
        return true;
    if (!set || !session) {
        snprintf(why, cap, "the TLS session was not set up");
        return false;
    }
    if (!gnutls_certificate_get_peers(session, &n) || n == 0) {
        snprintf(why, cap, "no client certificate was sent");
        return false;
    }
    /* Against the trust list of the session's credentials: the CA bundle of set. */
    rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
    if (rc < 0) {
        snprintf(why, cap, "cannot verify the client certificate: %s", gnutls_strerror(rc));
        return false;
    }
    if (status != 0) {
        status_text(status, why, cap);
        return false;
    }
    return true;
}
