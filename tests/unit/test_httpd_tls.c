/* test_httpd_tls.c -- the HTTPS certificate sets of src/http (httpd_tls.c) without sockets:
 * what start-up refuses and why, reloads (a new set is swapped in, identical files are not,
 * an invalid set is refused and counted while the old one keeps serving), and the watcher
 * following a Kubernetes Secret volume's "..data" symlink swap, counting one refusal per
 * change. Handshakes, client certificates and rotation under load are in
 * tests/integration/test_tls.py. The certificates come from tests/gen_certs.sh (openssl). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gx/metrics.h"

#include "check.h"
#include "http/httpd_tls.h"

static char dir[] = "/tmp/gx-httpd-tls-XXXXXX";

static void sh(const char *fmt, ...) GX_PRINTF(1, 2);

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fprintf(stderr, "command failed: %s\n", cmd);
        abort();
    }
}

/* dir/name, in one of a few rotating buffers so that a call may take several. */
static const char *at(const char *name)
{
    static char paths[8][1024];
    static unsigned next;
    char *p = paths[next++ % 8];

    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

/* The serial number as `openssl x509 -serial` prints it. */
static void openssl_serial(const char *cert, char *out, size_t cap)
{
    char cmd[1200], line[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "openssl x509 -noout -serial -in '%s'", cert);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    CHECK(fgets(line, sizeof(line), p) != NULL);
    CHECK_EQ(pclose(p), 0);
    line[strcspn(line, "\n")] = '\0';
    CHECK(strncmp(line, "serial=", 7) == 0);
    CHECK(strlen(line + 7) < cap);
    memcpy(out, line + 7, strlen(line + 7) + 1);
}

/* The files of a configuration, as paths under dir. */
struct files {
    char cert[1024], key[1024], ca[1024];
};

static const char *under(char *out, size_t cap, const char *name)
{
    if (!name || !name[0])
        return name;
    snprintf(out, cap, "%s/%s", dir, name);
    return out;
}

/* A configuration with the named files (relative to dir; NULL or "" passed as they are). */
static struct httpd_config tls_config(struct files *f, const char *cert, const char *key,
                                      const char *ca, unsigned watch_ms)
{
    struct httpd_config cfg = {
        .name = "test",
        .tls_cert_file = under(f->cert, sizeof(f->cert), cert),
        .tls_key_file = under(f->key, sizeof(f->key), key),
        .tls_client_ca_file = under(f->ca, sizeof(f->ca), ca),
        .tls_watch_ms = watch_ms,
    };

    return cfg;
}

/* Expects tls_server_new() to refuse with a message containing want. */
static void check_refused(const char *cert, const char *key, const char *ca, const char *want)
{
    struct files f;
    struct httpd_config cfg = tls_config(&f, cert, key, ca, 0);
    struct tls_server *t = NULL;
    struct errbuf eb = ERRBUF_INIT;

    CHECK_EQ(tls_server_new(&cfg, &t, &eb), ERR_INVALID);
    CHECK(t == NULL);
    if (!strstr(eb.msg, want)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", want, eb.msg);
        abort();
    }
}

static void test_start_refusals(void)
{
    sh("printf 'not a certificate\\n' > '%s'", at("junk.pem"));
    sh(": > '%s'", at("empty.pem"));
    check_refused("a/server.crt", NULL, NULL, "HTTPS needs both a certificate and a key");
    check_refused("", "a/server.key", NULL, "HTTPS needs both a certificate and a key");
    check_refused("a/missing.crt", "a/server.key", NULL, "cannot open");
    check_refused("a/missing.crt", "a/server.key", NULL, "a/missing.crt");
    check_refused("a/server.crt", "a/missing.key", "a/ca.crt", "key ");
    check_refused("a/server.crt", "a/server.key", "a/missing-ca.crt", "client CA ");
    /* A key that is not the certificate's: GnuTLS says so, and both files are named. */
    check_refused("a/server.crt", "b/server.key", NULL, "do not match");
    check_refused("a/server.crt", "b/server.key", NULL, "b/server.key");
    check_refused("junk.pem", "a/server.key", NULL, "junk.pem");
    check_refused("a/server.crt", "junk.pem", NULL, "junk.pem");
    check_refused("a/server.crt", "a/server.key", "empty.pem", "no certificate in it");
    check_refused("a/server.crt", "a/server.key", "junk.pem", "client CA ");
    /* Over the size cap: 1 MiB and a byte. */
    sh("head -c 1048577 /dev/zero > '%s'", at("huge.pem"));
    check_refused("huge.pem", "a/server.key", NULL, "larger than 1048576 bytes");
}

static void test_start(void)
{
    struct files f;
    struct httpd_config cfg = tls_config(&f, "a/server.crt", "a/server.key", NULL, 0);
    struct tls_server *t = NULL;
    struct errbuf eb = ERRBUF_INIT;
    char got[80], want[80];

    CHECK_EQ(tls_server_new(&cfg, &t, &eb), ERR_OK);
    CHECK(!tls_server_verifies_clients(t));
    tls_server_serial(t, got, sizeof(got));
    openssl_serial(at("a/server.crt"), want, sizeof(want));
    CHECK_STR_EQ(got, want);
    /* libmicrohttpd gets the files' text for its own start-up credentials. */
    CHECK(strstr(tls_server_start_cert(t), "-----BEGIN CERTIFICATE-----") != NULL);
    CHECK(strstr(tls_server_start_key(t), "PRIVATE KEY-----") != NULL);
    tls_server_free(t);

    cfg = tls_config(&f, "a/server.crt", "a/server.key", "a/ca.crt", 0);
    CHECK_EQ(tls_server_new(&cfg, &t, &eb), ERR_OK);
    CHECK(tls_server_verifies_clients(t));
    tls_server_free(t);
    tls_server_free(NULL);
}

/* Explicit reloads, with the watcher too slow to interfere. */
static void test_reload(void)
{
    struct files f;
    struct httpd_config cfg =
        tls_config(&f, "live/tls.crt", "live/tls.key", "live/ca.crt", 3600000);
    struct tls_server *t = NULL;
    struct errbuf eb = ERRBUF_INIT;
    uint64_t reloads = metrics_counter_get(METRICS_TLS_RELOADS);
    uint64_t fails = metrics_counter_get(METRICS_TLS_RELOAD_FAILURES);
    bool swapped = true;
    char got[80], a_serial[80], b_serial[80];

    openssl_serial(at("a/server.crt"), a_serial, sizeof(a_serial));
    openssl_serial(at("b/server.crt"), b_serial, sizeof(b_serial));
    sh("mkdir -p '%s' && cp '%s' '%s' && cp '%s' '%s' && cp '%s' '%s'", at("live"),
       at("a/server.crt"), at("live/tls.crt"), at("a/server.key"), at("live/tls.key"),
       at("a/ca.crt"), at("live/ca.crt"));
    CHECK_EQ(tls_server_new(&cfg, &t, &eb), ERR_OK);

    /* The same bytes: nothing is swapped or counted. */
    CHECK_EQ(tls_server_reload(t, "test", &swapped, &eb), ERR_OK);
    CHECK(!swapped);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOADS), reloads);

    /* A new certificate and key: swapped in. */
    sh("cp '%s' '%s' && cp '%s' '%s'", at("b/server.crt"), at("live/tls.crt"), at("b/server.key"),
       at("live/tls.key"));
    CHECK_EQ(tls_server_reload(t, "test", &swapped, &eb), ERR_OK);
    CHECK(swapped);
    tls_server_serial(t, got, sizeof(got));
    CHECK_STR_EQ(got, b_serial);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOADS), reloads + 1);

    /* A changed client CA alone is a new set too. */
    sh("cp '%s' '%s'", at("b/ca.crt"), at("live/ca.crt"));
    CHECK_EQ(tls_server_reload(t, "test", &swapped, &eb), ERR_OK);
    CHECK(swapped);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOADS), reloads + 2);

    /* Half-way through a non-atomic update (the key is still the old one): refused, counted,
     * and the current set keeps serving. */
    sh("cp '%s' '%s'", at("a/server.crt"), at("live/tls.crt"));
    errbuf_clear(&eb);
    CHECK_EQ(tls_server_reload(t, "test", &swapped, &eb), ERR_INVALID);
    CHECK(!swapped);
    CHECK(strstr(eb.msg, "do not match") != NULL);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOAD_FAILURES), fails + 1);
    tls_server_serial(t, got, sizeof(got));
    CHECK_STR_EQ(got, b_serial);

    /* A deleted file is refused the same way. */
    sh("rm '%s'", at("live/ca.crt"));
    CHECK_EQ(tls_server_reload(t, "test", &swapped, NULL), ERR_INVALID);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOAD_FAILURES), fails + 2);

    /* The update completes: the next reload takes it. */
    sh("cp '%s' '%s' && cp '%s' '%s'", at("a/server.key"), at("live/tls.key"), at("a/ca.crt"),
       at("live/ca.crt"));
    CHECK_EQ(tls_server_reload(t, "test", &swapped, &eb), ERR_OK);
    CHECK(swapped);
    tls_server_serial(t, got, sizeof(got));
    CHECK_STR_EQ(got, a_serial);
    tls_server_free(t);
}

/* A Secret volume: dir/secret/tls.crt -> ..data/tls.crt, ..data -> ..vN (kubelet swaps
 * ..data atomically). */
static void secret_version(const char *version, const char *pki, const char *key_pki)
{
    sh("d='%s/secret/%s' && mkdir -p \"$d\" && cp '%s/%s/server.crt' \"$d/tls.crt\" && "
       "cp '%s/%s/server.key' \"$d/tls.key\" && cp '%s/%s/ca.crt' \"$d/ca.crt\"",
       dir, version, dir, pki, dir, key_pki, dir, pki);
}

static void secret_publish(const char *version)
{
    sh("cd '%s/secret' && ln -sfn '%s' ..data_tmp && mv -T ..data_tmp ..data", dir, version);
}

static bool wait_serial(struct tls_server *t, const char *want, unsigned ms)
{
    char got[80];
    struct timespec nap = {0, 10 * 1000000L};

    for (unsigned waited = 0; waited <= ms; waited += 10) {
        tls_server_serial(t, got, sizeof(got));
        if (strcmp(got, want) == 0)
            return true;
        nanosleep(&nap, NULL);
    }
    return false;
}

static bool wait_counter(enum metrics_counter c, uint64_t want, unsigned ms)
{
    struct timespec nap = {0, 10 * 1000000L};

    for (unsigned waited = 0; waited <= ms; waited += 10) {
        if (metrics_counter_get(c) >= want)
            return true;
        nanosleep(&nap, NULL);
    }
    return false;
}

static void test_watch_secret_swap(void)
{
    struct files f;
    struct httpd_config cfg =
        tls_config(&f, "secret/tls.crt", "secret/tls.key", "secret/ca.crt", 20);
    struct tls_server *t = NULL;
    struct errbuf eb = ERRBUF_INIT;
    uint64_t fails = metrics_counter_get(METRICS_TLS_RELOAD_FAILURES);
    char a_serial[80], b_serial[80];
    struct timespec settle = {0, 300 * 1000000L};

    openssl_serial(at("a/server.crt"), a_serial, sizeof(a_serial));
    openssl_serial(at("b/server.crt"), b_serial, sizeof(b_serial));
    secret_version("..v1", "a", "a");
    secret_publish("..v1");
    sh("cd '%s/secret' && for f in tls.crt tls.key ca.crt; do ln -s ..data/$f $f; done", dir);
    CHECK_EQ(tls_server_new(&cfg, &t, &eb), ERR_OK);
    CHECK(wait_serial(t, a_serial, 0));

    secret_version("..v2", "b", "b");
    secret_publish("..v2");
    CHECK(wait_serial(t, b_serial, 5000));

    /* An invalid version: refused once, however many times the watcher looks. */
    secret_version("..v3", "a", "b");
    secret_publish("..v3");
    CHECK(wait_counter(METRICS_TLS_RELOAD_FAILURES, fails + 1, 5000));
    nanosleep(&settle, NULL);
    CHECK_EQ(metrics_counter_get(METRICS_TLS_RELOAD_FAILURES), fails + 1);
    CHECK(wait_serial(t, b_serial, 0));

    secret_version("..v4", "a", "a");
    secret_publish("..v4");
    CHECK(wait_serial(t, a_serial, 5000));
    tls_server_free(t);
}

int main(void)
{
    const char *src = getenv("GX_SOURCE_DIR");

    CHECK(src != NULL);
    CHECK(mkdtemp(dir) != NULL);
    sh("bash '%s/tests/gen_certs.sh' '%s/a' >/dev/null && bash '%s/tests/gen_certs.sh' '%s/b' "
       ">/dev/null",
       src, dir, src, dir);
    test_start_refusals();
    test_start();
    test_reload();
    test_watch_secret_swap();
    sh("rm -rf '%s'", dir);
    printf("test_httpd_tls: ok\n");
    return 0;
}
