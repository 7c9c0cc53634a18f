/* test_config.c -- the flag table (config/config.c): defaults, flag over environment over
 * default, both value forms, the exact errors, and that --help and the README's "## Flags"
 * table list the same flags as the table. */
#include <stdarg.h>

#include "gx/config.h"

#include "check.h"

#define MAX_ARGS 16
#define MAX_ARG_BYTES 512

/* Mutable copies of the arguments and variables: config_parse takes char **, like main(). */
static char arg_pool[MAX_ARGS + 1][MAX_ARG_BYTES];
static char env_pool[8][MAX_ARG_BYTES];

/* Parses "gpu-extender" plus the NULL-terminated arguments, with the variables in env
 * (NULL-terminated "K=V" strings). */
static enum err parse(const char *const *env, struct config *cfg, struct errbuf *eb, ...)
{
    char *argv[MAX_ARGS + 2];
    char *envp[GX_ARRAY_LEN(env_pool) + 1];
    int argc = 0;
    size_t n = 0;
    va_list ap;

    snprintf(arg_pool[argc], MAX_ARG_BYTES, "gpu-extender");
    argv[argc] = arg_pool[argc];
    argc++;
    va_start(ap, eb);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL; argc++) {
        CHECK(argc <= MAX_ARGS);
        CHECK(strlen(a) < MAX_ARG_BYTES);
        snprintf(arg_pool[argc], MAX_ARG_BYTES, "%s", a);
        argv[argc] = arg_pool[argc];
    }
    va_end(ap);
    argv[argc] = NULL;
    for (; env[n]; n++) {
        CHECK(n < GX_ARRAY_LEN(env_pool));
        snprintf(env_pool[n], MAX_ARG_BYTES, "%s", env[n]);
        envp[n] = env_pool[n];
    }
    envp[n] = NULL;
    errbuf_clear(eb);
    return config_parse(argc, argv, envp, cfg, eb);
}

static const char *const no_env[] = {NULL};

/* Expects parse() to fail with ERR_INVALID and exactly this message. */
#define CHECK_PARSE_FAILS(env, want, ...)                                                          \
    do {                                                                                           \
        struct config cfg_;                                                                        \
        struct errbuf eb_ = ERRBUF_INIT;                                                           \
        CHECK_EQ(parse(env, &cfg_, &eb_, __VA_ARGS__, (const char *)NULL), ERR_INVALID);           \
        CHECK_STR_EQ(eb_.msg, want);                                                               \
    } while (0)

static void check_defaults(const struct config *c)
{
    CHECK_STR_EQ(c->listen, "127.0.0.1:8888");
    CHECK_STR_EQ(c->port_file, "");
    CHECK_STR_EQ(c->tls_cert, "");
    CHECK_STR_EQ(c->tls_key, "");
    CHECK_STR_EQ(c->tls_client_ca, "");
    CHECK_STR_EQ(c->url_prefix, "/");
    CHECK_STR_EQ(c->kubeconfig, "");
    CHECK_STR_EQ(c->serviceaccount_dir, "/var/run/secrets/kubernetes.io/serviceaccount");
    CHECK_STR_EQ(c->policy, "");
    CHECK_STR_EQ(c->log_level, "info");
    CHECK_STR_EQ(c->check_policy, "");
    CHECK_STR_EQ(c->ops_listen, "");
    CHECK_STR_EQ(c->ops_port_file, "");
    CHECK_EQ(c->max_body_bytes, 268435456);
    CHECK_EQ(c->max_inflight_bytes, 536870912);
    CHECK_EQ(c->max_connections, 10000);
    CHECK_EQ(c->max_connections_per_client, 64);
    CHECK_EQ(c->header_timeout_ms, 10000);
    CHECK_EQ(c->body_timeout_ms, 60000);
    CHECK_EQ(c->idle_timeout_ms, 120000);
    CHECK_EQ(c->bind_timeout_ms, 4000);
    CHECK_EQ(c->bind_workers, 16);
    CHECK_EQ(c->threads, 0);
    CHECK_EQ(c->drain_timeout_ms, 10000);
    CHECK_EQ(c->policy_watch_ms, 1000);
    CHECK(!c->help);
    CHECK(!c->version);
}

static void test_defaults(void)
{
    static const char *const unrelated[] = {"PATH=/usr/bin",           "GPU_EXTENDER=x",
                                            "GPU_EXTENDER_THREADSX=5", "GPU_EXTENDER_THREAD=5",
                                            "gpu_extender_threads=5",  NULL};
    struct config c;
    struct errbuf eb = ERRBUF_INIT;

    memset(&c, 0x5a, sizeof(c));
    CHECK_EQ(parse(no_env, &c, &eb, (const char *)NULL), ERR_OK);
    check_defaults(&c);
    CHECK(!errbuf_is_set(&eb));
    /* env may be NULL, and so may argv when argc is 0. */
    memset(&c, 0x5a, sizeof(c));
    CHECK_EQ(config_parse(0, NULL, NULL, &c, NULL), ERR_OK);
    check_defaults(&c);
    /* Variables that only look like ours change nothing: names match whole, case and all. */
    CHECK_EQ(parse(unrelated, &c, &eb, (const char *)NULL), ERR_OK);
    check_defaults(&c);
}

/* A flag beats its variable, which beats the default. */
static void test_precedence(void)
{
    static const char *const env[] = {"GPU_EXTENDER_THREADS=8", "GPU_EXTENDER_LISTEN=0.0.0.0:9000",
                                      "GPU_EXTENDER_URL_PREFIX=/gpu",
                                      "GPU_EXTENDER_MAX_BODY_BYTES=1024", NULL};
    struct config c;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(parse(env, &c, &eb, (const char *)NULL), ERR_OK);
    CHECK_EQ(c.threads, 8);
    CHECK_STR_EQ(c.listen, "0.0.0.0:9000");
    CHECK_STR_EQ(c.url_prefix, "/gpu");
    CHECK_EQ(c.max_body_bytes, 1024);
    CHECK_EQ(c.bind_workers, 16);

    CHECK_EQ(parse(env, &c, &eb, "--threads", "4", "--listen=127.0.0.1:0", (const char *)NULL),
             ERR_OK);
    CHECK_EQ(c.threads, 4);
    CHECK_STR_EQ(c.listen, "127.0.0.1:0");
    CHECK_STR_EQ(c.url_prefix, "/gpu");
    CHECK_EQ(c.max_body_bytes, 1024);
}

static void test_value_forms(void)
{
    struct config c;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(parse(no_env, &c, &eb, "--bind-workers=3", "--drain-timeout-ms", "0", "--policy",
                   "/etc/p.yaml", "--port-file=/tmp/port", "--log-level", "debug",
                   (const char *)NULL),
             ERR_OK);
    CHECK_EQ(c.bind_workers, 3);
    CHECK_EQ(c.drain_timeout_ms, 0);
    CHECK_STR_EQ(c.policy, "/etc/p.yaml");
    CHECK_STR_EQ(c.port_file, "/tmp/port");
    CHECK_STR_EQ(c.log_level, "debug");

    /* The value after '=' is everything after the first '=', and may be empty. */
    CHECK_EQ(parse(no_env, &c, &eb, "--kubeconfig=a=b", "--port-file=", (const char *)NULL),
             ERR_OK);
    CHECK_STR_EQ(c.kubeconfig, "a=b");
    CHECK_STR_EQ(c.port_file, "");
    /* The next argument is the value, taken as it is, even when it looks like a flag. */
    CHECK_EQ(parse(no_env, &c, &eb, "--policy", "--help", (const char *)NULL), ERR_OK);
    CHECK_STR_EQ(c.policy, "--help");
    CHECK(!c.help);
    /* The last of a repeated flag wins. */
    CHECK_EQ(parse(no_env, &c, &eb, "--threads", "1", "--threads=2", (const char *)NULL), ERR_OK);
    CHECK_EQ(c.threads, 2);
    /* Range ends are inclusive. */
    CHECK_EQ(parse(no_env, &c, &eb, "--max-body-bytes", "1024", "--bind-timeout-ms=60000",
                   (const char *)NULL),
             ERR_OK);
    CHECK_EQ(c.max_body_bytes, 1024);
    CHECK_EQ(c.bind_timeout_ms, 60000);
    CHECK_EQ(parse(no_env, &c, &eb, "--max-body-bytes=4294967296", (const char *)NULL), ERR_OK);
    CHECK_EQ(c.max_body_bytes, 4294967296LL);
}

static void test_bool_flags(void)
{
    static const char *const env[] = {"GPU_EXTENDER_HELP=true", "GPU_EXTENDER_VERSION=true", NULL};
    struct config c;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(parse(no_env, &c, &eb, "--help", (const char *)NULL), ERR_OK);
    CHECK(c.help);
    CHECK(!c.version);
    CHECK_EQ(parse(no_env, &c, &eb, "--version", (const char *)NULL), ERR_OK);
    CHECK(c.version);
    CHECK(!c.help);
    /* A bool flag takes no separate value: what follows is the next argument. */
    CHECK_EQ(parse(no_env, &c, &eb, "--help", "--threads", "3", (const char *)NULL), ERR_OK);
    CHECK(c.help);
    CHECK_EQ(c.threads, 3);
    CHECK_EQ(parse(no_env, &c, &eb, "--help=true", (const char *)NULL), ERR_OK);
    CHECK(c.help);
    CHECK_EQ(parse(no_env, &c, &eb, "--help=false", (const char *)NULL), ERR_OK);
    CHECK(!c.help);
    /* --help and --version have no variables. */
    CHECK_EQ(parse(env, &c, &eb, (const char *)NULL), ERR_OK);
    CHECK(!c.help);
    CHECK(!c.version);
}

static void test_errors(void)
{
    static const char *const bad_env[] = {"GPU_EXTENDER_THREADS=2000", NULL};
    static const char *const empty_env[] = {"GPU_EXTENDER_BIND_WORKERS=", NULL};
    static const char *const junk_env[] = {"GPU_EXTENDER_DRAIN_TIMEOUT_MS=soon", NULL};
    static const char *long_env[] = {NULL, NULL};
    char long_value[300];
    struct config c;

    CHECK_PARSE_FAILS(no_env, "unknown argument \"--nope\" (see --help)", "--nope");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--nope=1\" (see --help)", "--nope=1");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"-h\" (see --help)", "-h");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"serve\" (see --help)", "serve");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--\" (see --help)", "--");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--THREADS\" (see --help)", "--THREADS", "1");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--thread\" (see --help)", "--thread", "1");
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--threadsx=1\" (see --help)", "--threadsx=1");
    /* The first error stops the parse, and is the one reported. */
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--a\" (see --help)", "--a", "--b");

    CHECK_PARSE_FAILS(no_env, "--threads needs a value", "--threads");
    CHECK_PARSE_FAILS(no_env, "--listen needs a value", "--help", "--listen");

    /* A bad variable is reported by its name, even when a flag would have replaced it. */
    CHECK_PARSE_FAILS(bad_env, "GPU_EXTENDER_THREADS: expected an integer in 0..1024, got \"2000\"",
                      "--threads=1");
    CHECK_PARSE_FAILS(
        empty_env, "GPU_EXTENDER_BIND_WORKERS: expected an integer in 1..1024, got \"\"", "--help");
    CHECK_PARSE_FAILS(
        junk_env, "GPU_EXTENDER_DRAIN_TIMEOUT_MS: expected an integer in 0..600000, got \"soon\"",
        "--help");

    /* Strings must fit their field with its NUL: listen holds 255 bytes. */
    memset(long_value, 'h', sizeof(long_value));
    memcpy(long_value, "GPU_EXTENDER_LISTEN=", 20);
    long_value[20 + 255] = '\0';
    long_env[0] = long_value;
    CHECK_EQ(parse(long_env, &c, NULL, (const char *)NULL), ERR_OK);
    CHECK_EQ(strlen(c.listen), 255);
    long_value[20 + 255] = 'h';
    long_value[20 + 256] = '\0';
    CHECK_PARSE_FAILS(long_env, "GPU_EXTENDER_LISTEN: value is too long", "--help");

    /* eb may be NULL. */
    CHECK_EQ(parse(no_env, &c, NULL, "--nope", (const char *)NULL), ERR_INVALID);
}

/* --tls-cert and --tls-key go together, and --tls-client-ca needs them; a variable counts
 * like its flag. */
static void test_tls_flags(void)
{
    static const char *const key_env[] = {"GPU_EXTENDER_TLS_KEY=/k.pem", NULL};
    static const char *const ca_env[] = {"GPU_EXTENDER_TLS_CLIENT_CA=/ca.pem", NULL};
    struct config c;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(parse(no_env, &c, &eb, "--tls-cert", "/c.pem", "--tls-key=/k.pem", (const char *)NULL),
             ERR_OK);
    CHECK_STR_EQ(c.tls_cert, "/c.pem");
    CHECK_STR_EQ(c.tls_key, "/k.pem");
    CHECK_STR_EQ(c.tls_client_ca, "");
    CHECK_EQ(parse(ca_env, &c, &eb, "--tls-cert", "/c.pem", "--tls-key=/k.pem", (const char *)NULL),
             ERR_OK);
    CHECK_STR_EQ(c.tls_client_ca, "/ca.pem");
    CHECK_EQ(parse(key_env, &c, &eb, "--tls-cert", "/c.pem", (const char *)NULL), ERR_OK);
    CHECK_STR_EQ(c.tls_key, "/k.pem");

    CHECK_PARSE_FAILS(no_env, "--tls-cert and --tls-key go together: give both or neither",
                      "--tls-cert", "/c.pem");
    CHECK_PARSE_FAILS(key_env, "--tls-cert and --tls-key go together: give both or neither",
                      "--threads", "1");
    CHECK_PARSE_FAILS(no_env, "--tls-cert and --tls-key go together: give both or neither",
                      "--tls-cert", "/c.pem", "--tls-key=");
    CHECK_PARSE_FAILS(ca_env,
                      "--tls-client-ca needs --tls-cert and --tls-key (client certificates are "
                      "checked only over HTTPS)",
                      "--threads", "1");
    CHECK_PARSE_FAILS(no_env,
                      "--tls-client-ca needs --tls-cert and --tls-key (client certificates are "
                      "checked only over HTTPS)",
                      "--tls-client-ca", "/ca.pem");
    /* A bad flag is still the error reported, before the pairing is looked at. */
    CHECK_PARSE_FAILS(no_env, "unknown argument \"--tls\" (see --help)", "--tls-cert", "/c.pem",
                      "--tls");
}

/* A bad value names the flag, in both forms, and not the value: with "--listen VALUE" the
 * message used to start with the value, and with a long "--listen=VALUE" the reason was cut
 * off the end of the errbuf. */
static void test_flag_value_errors(void)
{
    char long_value[300];

    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"1025\"",
                      "--threads", "1025");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"1025\"",
                      "--threads=1025");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"-1\"",
                      "--threads=-1");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"\"", "--threads=");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"\"", "--threads",
                      "");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \"4k\"", "--threads",
                      "4k");
    CHECK_PARSE_FAILS(no_env, "--threads: expected an integer in 0..1024, got \" 4\"",
                      "--threads= 4");
    CHECK_PARSE_FAILS(no_env,
                      "--max-body-bytes: expected an integer in 1024..4294967296, got \"1023\"",
                      "--max-body-bytes", "1023");
    CHECK_PARSE_FAILS(
        no_env, "--max-body-bytes: expected an integer in 1024..4294967296, got \"4294967297\"",
        "--max-body-bytes=4294967297");
    CHECK_PARSE_FAILS(no_env, "--bind-workers: expected an integer in 1..1024, got \"0\"",
                      "--bind-workers", "0");
    CHECK_PARSE_FAILS(no_env, "--bind-timeout-ms: expected an integer in 100..60000, got \"99\"",
                      "--bind-timeout-ms=99");
    CHECK_PARSE_FAILS(no_env,
                      "--policy-watch-ms: expected an integer in 0..3600000, got \"3600001\"",
                      "--policy-watch-ms", "3600001");
    CHECK_PARSE_FAILS(no_env,
                      "--drain-timeout-ms: expected an integer in 0..600000, got \"600001\"",
                      "--drain-timeout-ms=600001");

    memset(long_value, 'h', sizeof(long_value));
    memcpy(long_value, "--listen=", 9);
    long_value[9 + 256] = '\0';
    CHECK_PARSE_FAILS(no_env, "--listen: value is too long", long_value);
    CHECK_PARSE_FAILS(no_env, "--listen: value is too long", "--listen", long_value + 9);
}

/* The flags the test knows, in table order, with the variable each has (NULL: none). */
static const struct {
    const char *flag;
    const char *env;
} known[] = {
    {"listen", "GPU_EXTENDER_LISTEN"},
    {"port-file", "GPU_EXTENDER_PORT_FILE"},
    {"tls-cert", "GPU_EXTENDER_TLS_CERT"},
    {"tls-key", "GPU_EXTENDER_TLS_KEY"},
    {"tls-client-ca", "GPU_EXTENDER_TLS_CLIENT_CA"},
    {"ops-listen", "GPU_EXTENDER_OPS_LISTEN"},
    {"ops-port-file", "GPU_EXTENDER_OPS_PORT_FILE"},
    {"url-prefix", "GPU_EXTENDER_URL_PREFIX"},
    {"kubeconfig", "GPU_EXTENDER_KUBECONFIG"},
    {"serviceaccount-dir", "GPU_EXTENDER_SERVICEACCOUNT_DIR"},
    {"policy", "GPU_EXTENDER_POLICY"},
    {"policy-watch-ms", "GPU_EXTENDER_POLICY_WATCH_MS"},
    {"max-body-bytes", "GPU_EXTENDER_MAX_BODY_BYTES"},
    {"max-inflight-bytes", "GPU_EXTENDER_MAX_INFLIGHT_BYTES"},
    {"max-connections", "GPU_EXTENDER_MAX_CONNECTIONS"},
    {"max-connections-per-client", "GPU_EXTENDER_MAX_CONNECTIONS_PER_CLIENT"},
    {"header-timeout-ms", "GPU_EXTENDER_HEADER_TIMEOUT_MS"},
    {"body-timeout-ms", "GPU_EXTENDER_BODY_TIMEOUT_MS"},
    {"idle-timeout-ms", "GPU_EXTENDER_IDLE_TIMEOUT_MS"},
    {"log-level", "GPU_EXTENDER_LOG_LEVEL"},
    {"bind-timeout-ms", "GPU_EXTENDER_BIND_TIMEOUT_MS"},
    {"bind-workers", "GPU_EXTENDER_BIND_WORKERS"},
    {"bind-always-get", "GPU_EXTENDER_BIND_ALWAYS_GET"},
    {"threads", "GPU_EXTENDER_THREADS"},
    {"drain-timeout-ms", "GPU_EXTENDER_DRAIN_TIMEOUT_MS"},
    {"check-policy", NULL},
    {"help", NULL},
    {"version", NULL},
};

/* One flag as config_usage() prints it. */
struct usage_flag {
    char name[64];
    char env[64];
    char def[128];
};

static char *usage_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    CHECK(f != NULL);
    config_usage(f);
    CHECK_EQ(fclose(f), 0);
    return text;
}

/* Reads "  --name[ VALUE]\n      help[ (default D)][\n      env: VAR]\n" entries. */
static size_t parse_usage(const char *text, struct usage_flag *out, size_t max)
{
    size_t n = 0;
    const char *p = text;

    while ((p = strstr(p, "\n  --")) != NULL) {
        const char *name = p + 5, *end = name + strcspn(name, " \n");
        const char *next = strstr(name, "\n  --");
        const char *env = strstr(name, "\n      env: ");
        const char *def = strstr(name, " (default ");
        size_t stop = next ? (size_t)(next - name) : strlen(name);

        CHECK(n < max);
        memset(&out[n], 0, sizeof(out[n]));
        snprintf(out[n].name, sizeof(out[n].name), "%.*s", (int)(end - name), name);
        if (env && (size_t)(env - name) < stop)
            snprintf(out[n].env, sizeof(out[n].env), "%.*s", (int)strcspn(env + 12, "\n"),
                     env + 12);
        if (def && (size_t)(def - name) < stop)
            snprintf(out[n].def, sizeof(out[n].def), "%.*s", (int)strcspn(def + 10, ")"), def + 10);
        n++;
        p = name;
    }
    return n;
}

/* --help lists every flag in the table, in order, with its variable and default. */
static void test_usage(void)
{
    struct usage_flag flags[32];
    char *text = usage_text();
    size_t n = parse_usage(text, flags, GX_ARRAY_LEN(flags));

    CHECK_EQ(strncmp(text, "usage: gpu-extender [flags]\n", 28), 0);
    CHECK_EQ(n, GX_ARRAY_LEN(known));
    for (size_t i = 0; i < n; i++) {
        CHECK_STR_EQ(flags[i].name, known[i].flag);
        CHECK_STR_EQ(flags[i].env, known[i].env ? known[i].env : "");
    }
    CHECK(strstr(text, "  --listen VALUE\n") != NULL);
    CHECK(strstr(text, "  --help\n") != NULL);
    CHECK_STR_EQ(flags[0].def, "127.0.0.1:8888");
    CHECK_STR_EQ(flags[1].def, "");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(flags[i].name, "max-body-bytes") == 0)
            CHECK_STR_EQ(flags[i].def, "268435456");
        if (strcmp(flags[i].name, "ops-listen") == 0)
            CHECK_STR_EQ(flags[i].def, "");
        if (strcmp(flags[i].name, "idle-timeout-ms") == 0)
            CHECK_STR_EQ(flags[i].def, "120000");
    }
    free(text);
}

/* Returns the README's "## Flags" section (caller frees the whole file via *whole). */
static const char *readme_flags(char **whole)
{
    char path[1024];
    const char *dir = getenv("GX_SOURCE_DIR");
    char *start, *end;

    CHECK(dir != NULL);
    snprintf(path, sizeof(path), "%s/README.md", dir);
    *whole = check_read_file(path, NULL);
    start = strstr(*whole, "\n## Flags\n");
    CHECK(start != NULL);
    end = strstr(start + 1, "\n## ");
    if (end)
        *end = '\0';
    return start;
}

/* The README row for --name ("| `--name" then a space or a backtick), or NULL. */
static const char *readme_row(const char *section, const char *name, char *row, size_t cap)
{
    char head[80];
    const char *p = section;
    size_t hn;

    hn = (size_t)snprintf(head, sizeof(head), "\n| `--%s", name);
    while ((p = strstr(p, head)) != NULL) {
        char after = p[hn];
        if (after == ' ' || after == '`') {
            snprintf(row, cap, "%.*s", (int)strcspn(p + 1, "\n"), p + 1);
            return row;
        }
        p += hn;
    }
    return NULL;
}

/* Copies the k-th cell (1-based) of a "| a | b |" row, trimmed of spaces, into out. */
static void row_cell(const char *row, int k, char *out, size_t cap)
{
    const char *p = row;
    size_t len;

    for (int i = 0; i < k; i++) {
        p = strchr(p, '|');
        CHECK(p != NULL);
        p++;
    }
    p += strspn(p, " ");
    len = strcspn(p, "|");
    while (len > 0 && p[len - 1] == ' ')
        len--;
    snprintf(out, cap, "%.*s", (int)len, p);
}

/* Every flag of the table has a row in the README's table with its variable and default,
 * and every row there is a flag of the table. */
static void test_readme(void)
{
    struct usage_flag flags[32];
    char *text = usage_text(), *whole;
    size_t n = parse_usage(text, flags, GX_ARRAY_LEN(flags));
    const char *section = readme_flags(&whole), *p;
    size_t rows = 0;
    char row[512], env[140], want_env[140], def[140];

    for (size_t i = 0; i < n; i++) {
        if (!readme_row(section, flags[i].name, row, sizeof(row))) {
            fprintf(stderr, "README.md ## Flags has no row for --%s\n", flags[i].name);
            abort();
        }
        row_cell(row, 2, env, sizeof(env));
        row_cell(row, 3, def, sizeof(def));
        snprintf(want_env, sizeof(want_env), flags[i].env[0] ? "`%s`" : "%s", flags[i].env);
        if (strcmp(env, want_env) != 0 || !strstr(def, flags[i].def)) {
            fprintf(stderr,
                    "README.md row for --%s should name \"%s\" and the default \"%s\":\n%s\n",
                    flags[i].name, want_env, flags[i].def, row);
            abort();
        }
    }
    for (p = section; (p = strstr(p, "\n| `--")) != NULL; p++) {
        const char *name = p + 6;
        size_t len = strcspn(name, " `");
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0;
        if (!found) {
            fprintf(stderr, "README.md ## Flags lists --%.*s, which is not a flag\n", (int)len,
                    name);
            abort();
        }
        rows++;
    }
    CHECK_EQ(rows, n);
    free(whole);
    free(text);
}

int main(void)
{
    test_defaults();
    test_precedence();
    test_value_forms();
    test_bool_flags();
    test_errors();
    test_flag_value_errors();
    test_tls_flags();
    test_usage();
    test_readme();
    printf("test_config: ok\n");
    return 0;
}
