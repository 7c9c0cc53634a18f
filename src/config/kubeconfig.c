/* kubeconfig.c -- a kubeconfig file, or the in-cluster environment, turned into struct
 * kubeconfig_creds (see kubeconfig.h). Only what a long-running daemon can use is accepted: a
 * static token, a token file, or a client certificate. Plugins (exec, auth-provider) would mean
 * running programs and refreshing credentials, which we do not do, so they are refused with a clear
 * message instead of failing later with a 401. */
#include "gx/kubeconfig.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gx/alloc.h"
#include "gx/str.h"

#include "base64.h"
#include "yaml_doc.h"

/* Far beyond any real kubeconfig (a thousand clusters with CA data is about 4 MiB). */
#define KUBECONFIG_MAX_FILE_BYTES ((size_t)16 * 1024 * 1024)

struct loader {
    const char *path; /* the kubeconfig, for messages */
    size_t dir_len;   /* length of path's directory part, for relative file names */
    bool has_dir;     /* path contains a '/' */
    char section[96]; /* what is being read, e.g. `user "admin"`, for messages */
    struct errbuf *eb;
};

enum field_kind { FIELD_STRING, FIELD_PATH, FIELD_BASE64 };

/* One kubeconfig key copied into struct kubeconfig_creds. PATH values are resolved against the
 * kubeconfig's directory; BASE64 values are decoded and their length stored at len_off. */
struct field {
    const char *key;
    enum field_kind kind;
    size_t off;
    size_t len_off;
};

#define NO_LEN SIZE_MAX

static const struct field cluster_fields[] = {
    {"tls-server-name", FIELD_STRING, offsetof(struct kubeconfig_creds, tls_server_name), NO_LEN},
    {"certificate-authority", FIELD_PATH, offsetof(struct kubeconfig_creds, ca_file), NO_LEN},
    {"certificate-authority-data", FIELD_BASE64, offsetof(struct kubeconfig_creds, ca_data),
     offsetof(struct kubeconfig_creds, ca_data_len)},
};

static const struct field user_fields[] = {
    {"token", FIELD_STRING, offsetof(struct kubeconfig_creds, token), NO_LEN},
    {"tokenFile", FIELD_PATH, offsetof(struct kubeconfig_creds, token_file), NO_LEN},
    {"client-certificate", FIELD_PATH, offsetof(struct kubeconfig_creds, client_cert_file), NO_LEN},
    {"client-certificate-data", FIELD_BASE64, offsetof(struct kubeconfig_creds, client_cert_data),
     offsetof(struct kubeconfig_creds, client_cert_data_len)},
    {"client-key", FIELD_PATH, offsetof(struct kubeconfig_creds, client_key_file), NO_LEN},
    {"client-key-data", FIELD_BASE64, offsetof(struct kubeconfig_creds, client_key_data),
     offsetof(struct kubeconfig_creds, client_key_data_len)},
};

/* User keys that name an auth method we refuse, and how to say so. */
static const struct {
    const char *key;
    const char *method;
} unsupported_auth[] = {
    {"exec", "exec plugin"},
    {"auth-provider", "auth-provider plugin"},
    {"username", "basic (username/password)"},
    {"password", "basic (username/password)"},
};

static enum err bad(const struct loader *l, const struct ydoc_node *at, enum err e, const char *fmt,
                    ...) GX_PRINTF(4, 5);

/* Formats "path:line:col: section: reason", leaving out the parts that are unknown. */
static enum err bad(const struct loader *l, const struct ydoc_node *at, enum err e, const char *fmt,
                    ...)
{
    char reason[ERRBUF_LEN];
    char where[64] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (at)
        snprintf(where, sizeof(where), ":%zu:%zu", at->line, at->col);
    errbuf_set(l->eb, "%s%s: %s%s%s", l->path, where, l->section, l->section[0] ? ": " : "",
               reason);
    return e;
}

static void set_section(struct loader *l, const char *kind, const char *name)
{
    char snip[64];

    ydoc_snippet(name ? name : "", name ? strlen(name) : 0, snip, sizeof(snip));
    snprintf(l->section, sizeof(l->section), "%s \"%s\"", kind, snip);
}

/* Reads key of map as a string: *out is NULL when the key is absent, null or "". */
static enum err get_str(const struct loader *l, const struct ydoc_node *map, const char *key,
                        const char **out)
{
    const struct ydoc_node *dup;
    const struct ydoc_node *v = ydoc_map_find(map, key, &dup);

    *out = NULL;
    if (dup)
        return bad(l, dup, ERR_INVALID, "duplicate key %s", key);
    if (!v || ydoc_is_null(v))
        return ERR_OK;
    if (v->kind != YDOC_SCALAR)
        return bad(l, v, ERR_INVALID, "%s: expected a string, got %s", key, ydoc_kind_name(v));
    if (strlen(v->text) != v->len)
        return bad(l, v, ERR_INVALID, "%s: contains a NUL character", key);
    if (v->len > 0)
        *out = v->text;
    return ERR_OK;
}

/* Reads key of map as a bool; absent or null reads as false. */
static enum err get_bool(const struct loader *l, const struct ydoc_node *map, const char *key,
                         bool *out)
{
    const struct ydoc_node *dup;
    const struct ydoc_node *v = ydoc_map_find(map, key, &dup);

    *out = false;
    if (dup)
        return bad(l, dup, ERR_INVALID, "duplicate key %s", key);
    if (!v || ydoc_is_null(v))
        return ERR_OK;
    if (v->kind == YDOC_SCALAR && v->plain && strcmp(v->text, "true") == 0) {
        *out = true;
        return ERR_OK;
    }
    if (v->kind == YDOC_SCALAR && v->plain && strcmp(v->text, "false") == 0)
        return ERR_OK;
    return bad(l, v, ERR_INVALID, "%s: expected true or false", key);
}

/* A mapping, or null standing for an empty one (kubectl writes `user: {}` but people write
 * `user:`). */
static enum err expect_map(const struct loader *l, const struct ydoc_node *n, const char *what)
{
    if (!n || ydoc_is_null(n) || n->kind == YDOC_MAPPING)
        return ERR_OK;
    return bad(l, n, ERR_INVALID, "%s: expected a mapping, got %s", what, ydoc_kind_name(n));
}

/* Returns, in *found, the entry of list `<kind>s` whose name is name; duplicates are an error
 * because kubectl and we might then disagree about which one counts. */
static enum err find_entry(const struct loader *l, const struct ydoc_node *root, const char *kind,
                           const char *name, const struct ydoc_node **found)
{
    char list_key[16];
    const struct ydoc_node *dup;
    const struct ydoc_node *list;
    const char *entry_name;
    enum err e;

    *found = NULL;
    snprintf(list_key, sizeof(list_key), "%ss", kind);
    list = ydoc_map_find(root, list_key, &dup);
    if (dup)
        return bad(l, dup, ERR_INVALID, "duplicate key %s", list_key);
    if (list && !ydoc_is_null(list) && list->kind != YDOC_SEQUENCE)
        return bad(l, list, ERR_INVALID, "%s: expected a sequence, got %s", list_key,
                   ydoc_kind_name(list));
    for (const struct ydoc_node *item = list ? list->child : NULL; item; item = item->next) {
        if (item->kind != YDOC_MAPPING)
            return bad(l, item, ERR_INVALID, "%s: entries must be mappings", list_key);
        e = get_str(l, item, "name", &entry_name);
        if (e != ERR_OK)
            return e;
        if (!entry_name || !name || strcmp(entry_name, name) != 0)
            continue;
        if (*found)
            return bad(l, item, ERR_INVALID, "%s: more than one named this", list_key);
        *found = item;
    }
    if (!*found)
        return bad(l, NULL, ERR_INVALID, "not found in %s", list_key);
    return ERR_OK;
}

/* Finds `<kind>s[name=name].<kind>`, the body of a named context, cluster or user. */
static enum err find_body(struct loader *l, const struct ydoc_node *root, const char *kind,
                          const char *name, const struct ydoc_node **body)
{
    const struct ydoc_node *entry;
    const struct ydoc_node *dup;
    enum err e;

    set_section(l, kind, name);
    e = find_entry(l, root, kind, name, &entry);
    if (e != ERR_OK)
        return e;
    *body = ydoc_map_find(entry, kind, &dup);
    if (dup)
        return bad(l, dup, ERR_INVALID, "duplicate key %s", kind);
    return expect_map(l, *body, kind);
}

static char *resolve_path(const struct loader *l, const char *file)
{
    size_t file_len = strlen(file);
    char *p;

    if (file[0] == '/' || !l->has_dir)
        return xstrdup(file);
    p = xmalloc(l->dir_len + 1 + file_len + 1);
    memcpy(p, l->path, l->dir_len);
    p[l->dir_len] = '/';
    memcpy(p + l->dir_len + 1, file, file_len + 1);
    return p;
}

static enum err read_field(const struct loader *l, const struct ydoc_node *map,
                           const struct field *f, struct kubeconfig_creds *c)
{
    char **slot = (char **)((char *)c + f->off);
    const char *text;
    size_t len;
    enum err e;

    e = get_str(l, map, f->key, &text);
    if (e != ERR_OK || !text)
        return e;
    if (f->kind == FIELD_STRING) {
        *slot = xstrdup(text);
    } else if (f->kind == FIELD_PATH) {
        *slot = resolve_path(l, text);
    } else {
        if (base64_decode(text, strlen(text), slot, &len) != ERR_OK)
            return bad(l, ydoc_map_find(map, f->key, NULL), ERR_PARSE, "%s: invalid base64",
                       f->key);
        *(size_t *)((char *)c + f->len_off) = len;
    }
    return ERR_OK;
}

static enum err read_fields(const struct loader *l, const struct ydoc_node *map,
                            const struct field *fields, size_t count, struct kubeconfig_creds *c)
{
    for (size_t i = 0; i < count; i++) {
        enum err e = read_field(l, map, &fields[i], c);
        if (e != ERR_OK)
            return e;
    }
    return ERR_OK;
}

static enum err read_cluster(const struct loader *l, const struct ydoc_node *cluster,
                             struct kubeconfig_creds *c)
{
    const char *server;
    size_t len;
    enum err e;

    e = get_str(l, cluster, "server", &server);
    if (e != ERR_OK)
        return e;
    len = server ? strlen(server) : 0;
    while (len > 0 && server[len - 1] == '/')
        len--;
    if (len == 0)
        return bad(l, NULL, ERR_INVALID, "no server set");
    c->server = xstrndup(server, len);
    e = get_bool(l, cluster, "insecure-skip-tls-verify", &c->insecure_skip_tls_verify);
    if (e == ERR_OK)
        e = read_fields(l, cluster, cluster_fields, GX_ARRAY_LEN(cluster_fields), c);
    if (e == ERR_OK && c->insecure_skip_tls_verify && (c->ca_file || c->ca_data))
        return bad(l, NULL, ERR_INVALID,
                   "insecure-skip-tls-verify cannot be combined with a certificate authority");
    return e;
}

static enum err check_auth_method(const struct loader *l, const struct ydoc_node *user)
{
    for (size_t i = 0; i < GX_ARRAY_LEN(unsupported_auth); i++) {
        const struct ydoc_node *v = ydoc_map_find(user, unsupported_auth[i].key, NULL);
        if (v && !ydoc_is_null(v))
            return bad(l, v, ERR_INVALID,
                       "%s authentication is not supported; use a token, a tokenFile or a "
                       "client certificate",
                       unsupported_auth[i].method);
    }
    return ERR_OK;
}

static enum err read_user(const struct loader *l, const struct ydoc_node *user,
                          struct kubeconfig_creds *c)
{
    enum err e;

    e = check_auth_method(l, user);
    if (e == ERR_OK)
        e = read_fields(l, user, user_fields, GX_ARRAY_LEN(user_fields), c);
    if (e != ERR_OK)
        return e;
    if ((c->client_cert_file || c->client_cert_data) && !(c->client_key_file || c->client_key_data))
        return bad(l, NULL, ERR_INVALID, "client-certificate given without client-key");
    if ((c->client_key_file || c->client_key_data) && !(c->client_cert_file || c->client_cert_data))
        return bad(l, NULL, ERR_INVALID, "client-key given without client-certificate");
    return ERR_OK;
}

static enum err pick_context(const struct loader *l, const struct ydoc_node *root,
                             const char *wanted, const char **name)
{
    enum err e;

    if (root && !ydoc_is_null(root) && root->kind != YDOC_MAPPING)
        return bad(l, root, ERR_INVALID, "expected a mapping at the top level, got %s",
                   ydoc_kind_name(root));
    /* An empty --context flag means "not given", as it does for kubectl. */
    *name = wanted && wanted[0] ? wanted : NULL;
    if (!*name) {
        e = get_str(l, root, "current-context", name);
        if (e != ERR_OK)
            return e;
    }
    if (!*name || !(*name)[0])
        return bad(l, NULL, ERR_INVALID, "no context given and current-context is not set");
    return ERR_OK;
}

/* Reads a context's cluster and user names; both must be there. */
static enum err read_context(struct loader *l, const struct ydoc_node *root, const char *name,
                             const char **cluster, const char **user)
{
    const struct ydoc_node *ctx;
    enum err e;

    e = find_body(l, root, "context", name, &ctx);
    if (e == ERR_OK)
        e = get_str(l, ctx, "cluster", cluster);
    if (e == ERR_OK && !*cluster)
        e = bad(l, ctx, ERR_INVALID, "no cluster set");
    if (e == ERR_OK)
        e = get_str(l, ctx, "user", user);
    if (e == ERR_OK && !*user)
        e = bad(l, ctx, ERR_INVALID, "no user set");
    return e;
}

/* Picks the context (the one asked for, else current-context) and reads its cluster and user. */
static enum err resolve(struct loader *l, const struct ydoc_node *root, const char *wanted,
                        struct kubeconfig_creds *c)
{
    const struct ydoc_node *cluster = NULL, *user = NULL;
    const char *context = NULL, *cluster_name = NULL, *user_name = NULL;
    enum err e;

    e = pick_context(l, root, wanted, &context);
    if (e == ERR_OK)
        e = read_context(l, root, context, &cluster_name, &user_name);
    if (e == ERR_OK)
        e = find_body(l, root, "cluster", cluster_name, &cluster);
    if (e == ERR_OK)
        e = read_cluster(l, cluster, c);
    if (e == ERR_OK)
        e = find_body(l, root, "user", user_name, &user);
    if (e == ERR_OK)
        e = read_user(l, user, c);
    return e;
}

enum err kubeconfig_load(const char *path, const char *context, struct kubeconfig_creds *out,
                         struct errbuf *eb)
{
    struct loader l = {.path = path, .eb = eb};
    struct kubeconfig_creds c = {0};
    const char *slash = strrchr(path, '/');
    struct ydoc doc;
    char *text;
    size_t len;
    enum err e;

    l.has_dir = slash != NULL;
    l.dir_len = slash ? (size_t)(slash - path) : 0;
    e = ydoc_read_file(path, KUBECONFIG_MAX_FILE_BYTES, &text, &len, eb);
    if (e != ERR_OK)
        return e;
    e = ydoc_parse(&doc, path, text, len, eb);
    free(text);
    if (e != ERR_OK)
        return e;
    e = resolve(&l, doc.root, context, &c);
    ydoc_destroy(&doc);
    if (e != ERR_OK) {
        kubeconfig_creds_destroy(&c);
        return e;
    }
    c.source = xstrdup(path);
    *out = c;
    return ERR_OK;
}

/* The host comes from the pod environment, but it still ends up inside a URL: refuse anything
 * that could change the URL's meaning. */
static bool is_host_ok(const char *host)
{
    for (const char *p = host; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7f || strchr("/@?#[]\\", ch))
            return false;
    }
    return true;
}

static enum err in_cluster_server(const char *host, const char *port, char **server,
                                  struct errbuf *eb)
{
    int64_t port_num;
    const char *lbr = "", *rbr = "";
    size_t n;

    if (!is_host_ok(host)) {
        errbuf_set(eb, "in-cluster: KUBERNETES_SERVICE_HOST is not a host name or address");
        return ERR_INVALID;
    }
    if (str_to_i64_cstr(port, 1, 65535, &port_num) != ERR_OK) {
        errbuf_set(eb, "in-cluster: KUBERNETES_SERVICE_PORT must be 1..65535");
        return ERR_INVALID;
    }
    /* An IPv6 literal needs brackets in a URL, or its colons read as the port. */
    if (strchr(host, ':')) {
        lbr = "[";
        rbr = "]";
    }
    n = strlen("https://[]:65535") + strlen(host) + 1;
    *server = xmalloc(n);
    snprintf(*server, n, "https://%s%s%s:%lld", lbr, host, rbr, (long long)port_num);
    return ERR_OK;
}

static char *join_dir(const char *dir, const char *file)
{
    size_t dir_len = strlen(dir);
    size_t file_len = strlen(file);
    char *p;

    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--;
    p = xmalloc(dir_len + 1 + file_len + 1);
    snprintf(p, dir_len + 1 + file_len + 1, "%.*s/%s", (int)dir_len, dir, file);
    return p;
}

enum err kubeconfig_in_cluster(const char *sa_dir, struct kubeconfig_creds *out, struct errbuf *eb)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    struct kubeconfig_creds c = {0};
    enum err e;

    if (!host || !host[0]) {
        errbuf_set(eb, "in-cluster: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)");
        return ERR_NOT_FOUND;
    }
    if (!port || !port[0])
        port = "443";
    e = in_cluster_server(host, port, &c.server, eb);
    if (e != ERR_OK)
        return e;
    if (!sa_dir)
        sa_dir = KUBECONFIG_SA_DIR;
    c.token_file = join_dir(sa_dir, "token");
    c.ca_file = join_dir(sa_dir, "ca.crt");
    c.source = xstrdup("in-cluster");
    *out = c;
    return ERR_OK;
}

void kubeconfig_creds_destroy(struct kubeconfig_creds *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->tls_server_name);
    free(c->ca_file);
    free(c->ca_data);
    free(c->client_cert_file);
    free(c->client_cert_data);
    free(c->client_key_file);
    free(c->client_key_data);
    free(c->token);
    free(c->token_file);
    free(c->source);
    memset(c, 0, sizeof(*c));
}
