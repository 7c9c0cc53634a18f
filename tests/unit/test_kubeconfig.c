/* test_kubeconfig.c -- kubeconfig_load(), kubeconfig_in_cluster() and the base64 decoder under
 * them. Kubeconfigs are written into a mkdtemp() directory at run time, so relative paths in
 * them resolve against a directory the test knows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gx/kubeconfig.h"

#include "check.h"
#include "config/base64.h"

#define CA_PEM "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n"
#define CERT_B64                                                                                   \
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNMSUVOVAotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg=="
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
#define KEY_B64 "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCktFWQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg=="

/* One kubeconfig with several contexts; most tests pick a context out of it. Keys we do not use
 * (preferences, extensions, namespace) are there on purpose: they must be ignored. */
static const char main_config[] = "apiVersion: v1\n"
                                  "kind: Config\n"
                                  "preferences: {}\n"
                                  "current-context: dev\n"
                                  "clusters:\n"
                                  "- name: prod\n"
                                  "  cluster:\n"
                                  "    server: https://prod.example.com:6443/\n"
                                  "    certificate-authority-data: " CA_B64 "\n"
                                  "    tls-server-name: api.prod.internal\n"
                                  "    extensions:\n"
                                  "    - name: vendor\n"
                                  "      extension: {a: b}\n"
                                  "- name: dev\n"
                                  "  cluster:\n"
                                  "    server: \"https://10.0.0.1:6443\"\n"
                                  "    certificate-authority: ca.crt\n"
                                  "- name: lab\n"
                                  "  cluster:\n"
                                  "    server: https://lab:6443//\n"
                                  "    insecure-skip-tls-verify: true\n"
                                  "users:\n"
                                  "- name: dev-user\n"
                                  "  user:\n"
                                  "    tokenFile: tokens/dev\n"
                                  "- name: prod-user\n"
                                  "  user:\n"
                                  "    client-certificate-data: " CERT_B64 "\n"
                                  "    client-key-data: |\n"
                                  "      LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\n"
                                  "      CktFWQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==\n"
                                  "- name: lab-user\n"
                                  "  user:\n"
                                  "    token: lab-token\n"
                                  "- name: file-user\n"
                                  "  user:\n"
                                  "    client-certificate: /etc/certs/client.crt\n"
                                  "    client-key: keys/client.key\n"
                                  "contexts:\n"
                                  "- name: dev\n"
                                  "  context: {cluster: dev, user: dev-user, namespace: gpu}\n"
                                  "- name: prod\n"
                                  "  context: {cluster: prod, user: prod-user}\n"
                                  "- name: lab\n"
                                  "  context:\n"
                                  "    cluster: lab\n"
                                  "    user: lab-user\n"
                                  "- name: files\n"
                                  "  context: {cluster: dev, user: file-user}\n"
                                  "- name: no-user\n"
                                  "  context: {cluster: dev, user: ghost}\n"
                                  "- name: no-cluster\n"
                                  "  context: {cluster: ghost, user: dev-user}\n"
                                  "- name: user-unset\n"
                                  "  context: {cluster: dev}\n";

#define MAX_FILES 32

/* The temporary directory and every file written into it, removed at the end. */
struct fixture {
    char dir[256];
    char paths[MAX_FILES][512];
    size_t count;
};

static void fixture_init(struct fixture *fx)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(fx->dir, sizeof(fx->dir), "%s/gx-kubeconfig-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(fx->dir) != NULL);
    fx->count = 0;
}

static void fixture_destroy(struct fixture *fx)
{
    while (fx->count > 0)
        CHECK_EQ(unlink(fx->paths[--fx->count]), 0);
    CHECK_EQ(rmdir(fx->dir), 0);
}

/* Writes content to dir/name and returns the full path, valid until fixture_destroy(). */
static const char *write_file(struct fixture *fx, const char *name, const char *content)
{
    char full[sizeof(fx->paths[0])];
    char *path;
    FILE *f;

    CHECK(fx->count < MAX_FILES);
    snprintf(full, sizeof(full), "%s/%s", fx->dir, name);
    path = fx->paths[fx->count++];
    memcpy(path, full, sizeof(full));
    f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ(fwrite(content, 1, strlen(content), f), strlen(content));
    CHECK_EQ(fclose(f), 0);
    return path;
}

static void load_ok(const char *path, const char *context, struct kubeconfig_creds *c)
{
    struct errbuf eb = ERRBUF_INIT;
    enum err e;

    errbuf_clear(&eb);
    e = kubeconfig_load(path, context, c, &eb);
    if (e != ERR_OK)
        fprintf(stderr, "unexpected failure: %s\n", eb.msg);
    CHECK_EQ(e, ERR_OK);
}

/* Loading must fail with want, say needle in its message, and leave *out alone. */
static void load_fails(const char *path, const char *context, enum err want, const char *needle)
{
    struct kubeconfig_creds c = {0};
    struct errbuf eb = ERRBUF_INIT;
    enum err e;

    errbuf_clear(&eb);
    e = kubeconfig_load(path, context, &c, &eb);
    if (e != want || !strstr(eb.msg, needle))
        fprintf(stderr, "got %s: \"%s\", wanted %s with \"%s\"\n", err_str(e), eb.msg,
                err_str(want), needle);
    CHECK_EQ(e, want);
    CHECK(strstr(eb.msg, needle) != NULL);
    CHECK(c.server == NULL && c.source == NULL);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    CHECK(p != NULL);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void test_current_context_token_file(const struct fixture *fx, const char *path)
{
    struct kubeconfig_creds c = {0};
    char *want_token = join(fx->dir, "tokens/dev");
    char *want_ca = join(fx->dir, "ca.crt");

    load_ok(path, "", &c); /* "" means current-context, as NULL does */
    CHECK_STR_EQ(c.server, "https://10.0.0.1:6443");
    CHECK_STR_EQ(c.token_file, want_token);
    CHECK_STR_EQ(c.ca_file, want_ca);
    CHECK_STR_EQ(c.source, path);
    CHECK(c.token == NULL && c.ca_data == NULL && c.client_cert_file == NULL);
    CHECK(!c.insecure_skip_tls_verify);
    kubeconfig_creds_destroy(&c);
    CHECK(c.server == NULL);
    free(want_token);
    free(want_ca);
}

static void test_data_fields(const char *path)
{
    struct kubeconfig_creds c = {0};

    load_ok(path, "prod", &c);
    CHECK_STR_EQ(c.server, "https://prod.example.com:6443");
    CHECK_STR_EQ(c.tls_server_name, "api.prod.internal");
    CHECK_STRN_EQ(c.ca_data, c.ca_data_len, CA_PEM);
    CHECK_STRN_EQ(c.client_cert_data, c.client_cert_data_len, CERT_PEM);
    CHECK_STRN_EQ(c.client_key_data, c.client_key_data_len, KEY_PEM);
    CHECK(c.ca_file == NULL && c.client_cert_file == NULL && c.token == NULL);
    kubeconfig_creds_destroy(&c);
}

static void test_token_and_insecure(const char *path)
{
    struct kubeconfig_creds c = {0};

    load_ok(path, "lab", &c);
    CHECK_STR_EQ(c.server, "https://lab:6443");
    CHECK_STR_EQ(c.token, "lab-token");
    CHECK(c.insecure_skip_tls_verify);
    CHECK(c.token_file == NULL && c.ca_file == NULL);
    kubeconfig_creds_destroy(&c);
}

static void test_cert_files(const struct fixture *fx, const char *path)
{
    struct kubeconfig_creds c = {0};
    char *want_key = join(fx->dir, "keys/client.key");

    load_ok(path, "files", &c);
    CHECK_STR_EQ(c.client_cert_file, "/etc/certs/client.crt");
    CHECK_STR_EQ(c.client_key_file, want_key);
    CHECK(c.client_cert_data == NULL && c.client_key_data == NULL);
    kubeconfig_creds_destroy(&c);
    free(want_key);
}

static void test_missing_references(const char *path)
{
    load_fails(path, "nope", ERR_INVALID, "context \"nope\": not found in contexts");
    load_fails(path, "no-user", ERR_INVALID, "user \"ghost\": not found in users");
    load_fails(path, "no-cluster", ERR_INVALID, "cluster \"ghost\": not found in clusters");
    load_fails(path, "user-unset", ERR_INVALID, "no user set");
}

/* A one-context kubeconfig whose user body the caller appends, indented by four spaces. */
static const char user_head[] = "current-context: c\n"
                                "clusters: [{name: k, cluster: {server: https://k}}]\n"
                                "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                                "users:\n"
                                "- name: u\n"
                                "  user:\n";

static const char *write_user(struct fixture *fx, const char *name, const char *user_body)
{
    char text[1024];

    snprintf(text, sizeof(text), "%s%s", user_head, user_body);
    return write_file(fx, name, text);
}

static void test_unsupported_auth(struct fixture *fx)
{
    const char *path;

    path = write_user(fx, "exec.yaml", "    exec:\n      command: aws\n      args: [eks]\n");
    load_fails(path, NULL, ERR_INVALID, "exec plugin authentication is not supported");
    load_fails(path, NULL, ERR_INVALID, "use a token, a tokenFile or a client certificate");
    load_fails(path, NULL, ERR_INVALID, "exec.yaml:8:7: user \"u\": exec plugin");

    path = write_user(fx, "provider.yaml", "    auth-provider: {name: gcp}\n");
    load_fails(path, NULL, ERR_INVALID, "auth-provider plugin authentication is not supported");

    path = write_user(fx, "basic.yaml", "    username: admin\n    password: secret\n");
    load_fails(path, NULL, ERR_INVALID, "basic (username/password) authentication");
}

static void test_user_credentials(struct fixture *fx)
{
    struct kubeconfig_creds c = {0};
    const char *path;

    path = write_user(fx, "halfcert.yaml", "    client-certificate: a.crt\n");
    load_fails(path, NULL, ERR_INVALID, "client-certificate given without client-key");

    path = write_user(fx, "halfkey.yaml", "    client-key-data: " KEY_B64 "\n");
    load_fails(path, NULL, ERR_INVALID, "client-key given without client-certificate");

    path = write_user(fx, "badb64.yaml",
                      "    client-certificate-data: " CERT_B64 "\n"
                      "    client-key-data: 'not*base64'\n");
    load_fails(path, NULL, ERR_PARSE,
               "badb64.yaml:8:22: user \"u\": client-key-data: invalid base64");

    /* An empty user is anonymous access, e.g. through `kubectl proxy`: allowed. */
    path = write_user(fx, "anon.yaml", "    {}\n");
    load_ok(path, NULL, &c);
    CHECK_STR_EQ(c.server, "https://k");
    CHECK(c.token == NULL && c.token_file == NULL && c.client_cert_data == NULL);
    kubeconfig_creds_destroy(&c);
}

static void test_bad_files(struct fixture *fx)
{
    const char *path;

    load_fails("/nonexistent/gx/kubeconfig", NULL, ERR_IO,
               "/nonexistent/gx/kubeconfig: cannot open");
    path = write_file(fx, "empty.yaml", "");
    load_fails(path, NULL, ERR_INVALID, "no context given and current-context is not set");
    path = write_file(fx, "broken.yaml", "clusters:\n- name: a\n  cluster: {server: x\n");
    load_fails(path, NULL, ERR_PARSE, "broken.yaml:4:1: invalid YAML");
    path = write_file(fx, "list.yaml", "- a\n- b\n");
    load_fails(path, NULL, ERR_INVALID, "expected a mapping at the top level");
    path = write_file(fx, "alias.yaml", "current-context: &c dev\nx: *c\n");
    load_fails(path, NULL, ERR_PARSE, "anchors");
    path = write_file(fx, "noserver.yaml",
                      "current-context: c\n"
                      "clusters: [{name: k, cluster: {server: /}}]\n"
                      "users: [{name: u, user: {token: t}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    load_fails(path, NULL, ERR_INVALID, "cluster \"k\": no server set");
    path = write_file(fx, "insecure-ca.yaml",
                      "current-context: c\n"
                      "clusters: [{name: k, cluster: {server: https://k, "
                      "insecure-skip-tls-verify: true, certificate-authority: ca.crt}}]\n"
                      "users: [{name: u, user: {token: t}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    load_fails(path, NULL, ERR_INVALID, "insecure-skip-tls-verify cannot be combined");
    path = write_file(fx, "dupname.yaml",
                      "current-context: c\n"
                      "clusters: [{name: k, cluster: {server: https://a}},\n"
                      "           {name: k, cluster: {server: https://b}}]\n"
                      "users: [{name: u, user: {token: t}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    load_fails(path, NULL, ERR_INVALID,
               "dupname.yaml:3:12: cluster \"k\": clusters: more than one");
    path = write_file(fx, "badtype.yaml",
                      "current-context: c\n"
                      "clusters: [{name: k, cluster: {server: [https://a]}}]\n"
                      "users: [{name: u, user: {token: t}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
    load_fails(path, NULL, ERR_INVALID, "server: expected a string, got a sequence");
}

/* A kubeconfig named without any '/' sits in the current directory, so relative paths in it
 * stay relative: they already resolve against the right directory. */
static void test_no_directory(const struct fixture *fx)
{
    struct kubeconfig_creds c = {0};
    char cwd[1024];

    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_EQ(chdir(fx->dir), 0);
    load_ok("config", "dev", &c);
    CHECK_EQ(chdir(cwd), 0);
    CHECK_STR_EQ(c.token_file, "tokens/dev");
    CHECK_STR_EQ(c.ca_file, "ca.crt");
    CHECK_STR_EQ(c.source, "config");
    kubeconfig_creds_destroy(&c);
}

static void test_base64(void)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: must fail */
    } cases[] = {
        {"", ""},
        {"aGVsbG8=", "hello"},
        {"aGk=", "hi"},
        {"aA==", "h"},
        {" aG\nVs\r\nbG8\t= \n", "hello"},
        {"aGVsbG8", NULL},  /* missing padding */
        {"aA=", NULL},      /* short padding */
        {"a===", NULL},     /* too much padding */
        {"aA==aA==", NULL}, /* data after padding */
        {"aG=k", NULL},     /* data after '=' inside a group */
        {"aGVs*G8=", NULL}, /* not in the alphabet */
        {"aGVs-G8=", NULL}, /* the URL-safe alphabet is not base64 here */
        {"aGVsbG8=\x80", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        size_t len = 0;
        enum err e = base64_decode(cases[i].in, strlen(cases[i].in), &out, &len);

        if (!cases[i].out) {
            CHECK_EQ(e, ERR_PARSE);
            CHECK(out == NULL);
            continue;
        }
        CHECK_EQ(e, ERR_OK);
        CHECK_STRN_EQ(out, len, cases[i].out);
        CHECK_EQ(out[len], '\0');
        free(out);
    }
}

static void set_env(const char *name, const char *value)
{
    if (value)
        CHECK_EQ(setenv(name, value, 1), 0);
    else
        CHECK_EQ(unsetenv(name), 0);
}

static void in_cluster_ok(const char *host, const char *port, const char *want_server)
{
    struct kubeconfig_creds c = {0};
    struct errbuf eb = ERRBUF_INIT;

    set_env("KUBERNETES_SERVICE_HOST", host);
    set_env("KUBERNETES_SERVICE_PORT", port);
    errbuf_clear(&eb);
    CHECK_EQ(kubeconfig_in_cluster("/sa/dir/", &c, &eb), ERR_OK);
    CHECK_STR_EQ(c.server, want_server);
    CHECK_STR_EQ(c.token_file, "/sa/dir/token");
    CHECK_STR_EQ(c.ca_file, "/sa/dir/ca.crt");
    CHECK_STR_EQ(c.source, "in-cluster");
    CHECK(c.token == NULL && c.ca_data == NULL);
    kubeconfig_creds_destroy(&c);
}

static void in_cluster_fails(const char *host, const char *port, enum err want)
{
    struct kubeconfig_creds c = {0};
    struct errbuf eb = ERRBUF_INIT;

    set_env("KUBERNETES_SERVICE_HOST", host);
    set_env("KUBERNETES_SERVICE_PORT", port);
    errbuf_clear(&eb);
    CHECK_EQ(kubeconfig_in_cluster(KUBECONFIG_SA_DIR, &c, &eb), want);
    CHECK(errbuf_is_set(&eb));
    CHECK(c.server == NULL);
}

static void test_in_cluster(void)
{
    struct kubeconfig_creds c = {0};

    in_cluster_ok("10.96.0.1", "443", "https://10.96.0.1:443");
    in_cluster_ok("10.96.0.1", "6443", "https://10.96.0.1:6443");
    in_cluster_ok("fd00:10:96::1", NULL, "https://[fd00:10:96::1]:443");
    in_cluster_ok("kubernetes.default.svc", "", "https://kubernetes.default.svc:443");
    in_cluster_fails(NULL, "443", ERR_NOT_FOUND);
    in_cluster_fails("", NULL, ERR_NOT_FOUND);
    in_cluster_fails("10.96.0.1", "0", ERR_INVALID);
    in_cluster_fails("10.96.0.1", "https", ERR_INVALID);
    in_cluster_fails("evil.example/path", "443", ERR_INVALID);

    set_env("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    set_env("KUBERNETES_SERVICE_PORT", NULL);
    CHECK_EQ(kubeconfig_in_cluster(KUBECONFIG_SA_DIR, &c, NULL), ERR_OK);
    CHECK_STR_EQ(c.token_file, KUBECONFIG_SA_DIR "/token");
    kubeconfig_creds_destroy(&c);
    kubeconfig_creds_destroy(&c); /* destroying twice is harmless: the struct was zeroed */
    kubeconfig_creds_destroy(NULL);
}

int main(void)
{
    struct fixture fx;
    const char *path;

    fixture_init(&fx);
    path = write_file(&fx, "config", main_config);
    test_current_context_token_file(&fx, path);
    test_data_fields(path);
    test_token_and_insecure(path);
    test_cert_files(&fx, path);
    test_missing_references(path);
    test_unsupported_auth(&fx);
    test_user_credentials(&fx);
    test_bad_files(&fx);
    test_no_directory(&fx);
    test_base64();
    test_in_cluster();
    fixture_destroy(&fx);
    printf("test_kubeconfig: ok\n");
    return 0;
}
