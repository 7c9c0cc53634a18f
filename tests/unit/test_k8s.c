/* test_k8s.c -- Kubernetes name and label syntax: every rule at its length limits and at the
 * characters each end and the middle may hold. */
#include <stdbool.h>

#include "gx/k8s.h"

#include "check.h"

/* A view of n bytes of c, from a buffer big enough for every case below. */
static struct str repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    return (struct str){buf, n};
}

/* Checks pred on each C string in good (accepted) and bad (refused); names a failing case. */
static void check_all(bool (*pred)(struct str), const char *what, const char *const *good,
                      size_t ngood, const char *const *bad, size_t nbad)
{
    for (size_t i = 0; i < ngood; i++) {
        if (!pred(str_from_cstr(good[i]))) {
            fprintf(stderr, "%s refused \"%s\"\n", what, good[i]);
            abort();
        }
    }
    for (size_t i = 0; i < nbad; i++) {
        if (pred(str_from_cstr(bad[i]))) {
            fprintf(stderr, "%s accepted \"%s\"\n", what, bad[i]);
            abort();
        }
    }
}

#define CHECK_ALL(pred, good, bad)                                                                 \
    check_all(pred, #pred, good, sizeof(good) / sizeof(good[0]), bad, sizeof(bad) / sizeof(bad[0]))

static void test_dns_label(void)
{
    static const char *const good[] = {"a", "0", "default", "gpu-node-1", "a--b", "9a", "a9"};
    static const char *const bad[] = {"",   "-a", "a-",  "-",   "A",   "aB", "a.b",
                                      ".a", "a.", "a_b", "a b", "a/b", "ü",  "a%2f"};
    char buf[300];
    struct str s;

    CHECK_ALL(k8s_is_dns_label, good, bad);
    CHECK(k8s_is_dns_label(repeat(buf, 'a', K8S_DNS_LABEL_MAX)));
    CHECK(!k8s_is_dns_label(repeat(buf, 'a', K8S_DNS_LABEL_MAX + 1)));
    CHECK(!k8s_is_dns_label(STR_NULL));
    /* A view ends at its length, whatever follows in memory. */
    s = (struct str){"ab-", 2};
    CHECK(k8s_is_dns_label(s));
    s = (struct str){"a\0b", 3};
    CHECK(!k8s_is_dns_label(s));
}

static void test_dns_subdomain(void)
{
    static const char *const good[] = {"a", "0", "default", "a.b", "x1.y-2.z", "a-b.c-d", "1.2.3"};
    static const char *const bad[] = {"",     ".",    "..",   "-x",   "x-",   "a..b", ".a",
                                      "a.",   "A",    "a.B",  "a/b",  "a b",  "a_b",  "a%2f",
                                      "a.-b", "a-.b", "-a.b", "a.b-", "a.b.", ".a.b"};
    char buf[300];
    struct str s;

    CHECK_ALL(k8s_is_dns_subdomain, good, bad);
    CHECK(k8s_is_dns_subdomain(repeat(buf, 'a', K8S_NAME_MAX)));
    CHECK(!k8s_is_dns_subdomain(repeat(buf, 'a', K8S_NAME_MAX + 1)));
    CHECK(!k8s_is_dns_subdomain(STR_NULL));
    /* 253 with dots: parts of 63, 63, 63 and 61. */
    s = repeat(buf, 'a', K8S_NAME_MAX);
    for (size_t i = 63; i < K8S_NAME_MAX; i += 64)
        buf[i] = '.';
    CHECK(k8s_is_dns_subdomain(s));
    buf[K8S_NAME_MAX] = 'a';
    s.len++;
    CHECK(!k8s_is_dns_subdomain(s));
    /* Kubernetes does not hold a part of a subdomain to 63 characters, and neither do we. */
    s = repeat(buf, 'a', 100);
    buf[70] = '.';
    CHECK(k8s_is_dns_subdomain(s));
    /* A view ends at its length, whatever follows in memory. */
    s = (struct str){"a.b.", 3};
    CHECK(k8s_is_dns_subdomain(s));
    s = (struct str){"a\0b", 3};
    CHECK(!k8s_is_dns_subdomain(s));
}

static void test_label_name_and_value(void)
{
    static const char *const good[] = {"a", "A", "0", "app", "App.Name_1-x", "a.b", "a_b", "Z9"};
    static const char *const bad[] = {"",   "-a",  "a-",  "_a",  "a_",  ".a",
                                      "a.", "a b", "a/b", "a:b", "a*b", "é"};
    static const char *const good_values[] = {"", "a", "H100", "NVIDIA-H100-80GB-HBM3", "v1.2_3"};
    static const char *const bad_values[] = {"-", "a-", "_a", "a b", "a/b", "a\"b"};
    char buf[300];

    CHECK_ALL(k8s_is_label_name, good, bad);
    CHECK_ALL(k8s_is_label_value, good_values, bad_values);
    CHECK(k8s_is_label_name(repeat(buf, 'A', K8S_LABEL_NAME_MAX)));
    CHECK(!k8s_is_label_name(repeat(buf, 'A', K8S_LABEL_NAME_MAX + 1)));
    CHECK(k8s_is_label_value(repeat(buf, 'z', K8S_LABEL_VALUE_MAX)));
    CHECK(!k8s_is_label_value(repeat(buf, 'z', K8S_LABEL_VALUE_MAX + 1)));
    CHECK(k8s_is_label_value(STR_NULL));
    CHECK(!k8s_is_label_name(STR_NULL));
    for (int c = 0; c < 256; c++) {
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
        CHECK_EQ(k8s_is_label_char((char)c), want);
    }
}

static void test_label_key(void)
{
    static const char *const good[] = {
        "app", "App_Name.x-1", "example.com/app", "nvidia.com/gpu.product", "gpu-extender.io/Model",
        "a/b", "k8s.io/A"};
    static const char *const bad[] = {"",
                                      "/",
                                      "/app",
                                      "example.com/",
                                      "Example.com/app",
                                      "example..com/app",
                                      "-example.com/app",
                                      "example.com./app",
                                      "a/b/c",
                                      "example.com/-app",
                                      "example.com/app-",
                                      "example.com/a b",
                                      "-app",
                                      "app_",
                                      "a:b"};
    char buf[400];
    struct str s;

    CHECK_ALL(k8s_is_label_key, good, bad);
    CHECK(!k8s_is_label_key(STR_NULL));
    /* Without a prefix: the name's own limit. */
    CHECK(k8s_is_label_key(repeat(buf, 'x', K8S_LABEL_NAME_MAX)));
    CHECK(!k8s_is_label_key(repeat(buf, 'x', K8S_LABEL_NAME_MAX + 1)));
    /* A prefix of 253, then a name of 63: the longest key. */
    s = repeat(buf, 'p', K8S_NAME_MAX + 1 + K8S_LABEL_NAME_MAX);
    buf[K8S_NAME_MAX] = '/';
    CHECK(k8s_is_label_key(s));
    /* The name part one too long. */
    s = repeat(buf, 'p', K8S_NAME_MAX + 1 + K8S_LABEL_NAME_MAX + 1);
    buf[K8S_NAME_MAX] = '/';
    CHECK(!k8s_is_label_key(s));
    /* The prefix one too long. */
    s = repeat(buf, 'p', K8S_NAME_MAX + 1 + 1 + 5);
    buf[K8S_NAME_MAX + 1] = '/';
    CHECK(!k8s_is_label_key(s));
    /* The prefix is a subdomain, so lower case only; the name may be either case. */
    CHECK(k8s_is_label_key(STR_LIT("a.b/CamelCase")));
    CHECK(!k8s_is_label_key(STR_LIT("A.b/name")));
}

int main(void)
{
    test_dns_label();
    test_dns_subdomain();
    test_label_name_and_value();
    test_label_key();
    printf("test_k8s: ok\n");
    return 0;
}
